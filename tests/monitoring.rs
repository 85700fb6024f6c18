//! The monitoring kit (`reports/monitoring/`) against what the binary really exposes: the alert
//! rules checked and unit-tested by `promtool`, the Grafana dashboard's documented check, and
//! the exposition named as the Prometheus guide asks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::report::{policy_report, promtool_passes, stored_run};
use crate::support::{repo, tool};

fn monitoring() -> PathBuf {
    repo().join("reports/monitoring")
}

/// `promtool ARGS` in `dir`, required to succeed.
fn promtool(args: &[&str], dir: &Path) -> String {
    tool("promtool", args, dir, None)
}

/// Every `billshadow_*` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("billshadow_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `billshadow_overbilled_amount` in prose is a name; `billshadow_` alone is not.
        if name.len() > "billshadow_".len() {
            names.insert(name);
        }
    }
    names
}

/// The dashboard's PromQL expressions, in panel order.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring().join("grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = monitoring();
    let check = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(check.contains("SUCCESS: 7 rules found"), "{check}");
    let test = promtool(&["test", "rules", "alerts.test.yml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");
}

/// The documented check of `grafana-dashboard.json` (reports/monitoring/README.md): the fields
/// Grafana needs to import it, panels that do not overlap a 24-column grid, a datasource
/// variable rather than a fixed datasource, and every query valid PromQL (`promtool check
/// rules` on the queries as recording rules).
#[test]
fn the_grafana_dashboard_passes_its_documented_check() {
    let text = std::fs::read_to_string(monitoring().join("grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in ["title", "uid", "schemaVersion", "panels", "templating"] {
        assert!(!dash[field].is_null(), "the dashboard has no {field}");
    }
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids repeat");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "panel {} is wider than the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {} overlaps another",
                    p["title"]
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:panel{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.yml"], dir.path());
}

/// Issue 16: the run id was a label on every metric (a new series per run), deltas of all
/// currencies shared a metric with netted signs, and nothing said how old the data was.
#[test]
fn the_exposition_has_bounded_labels_and_every_metric_the_kit_uses() {
    let dir = stored_run();
    let d = dir.path();
    let prom = policy_report(d, "prom");
    assert_eq!(prom.code, 1, "{}", prom.transcript());
    let text = &prom.stdout;
    promtool_passes(text, d);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if !line.starts_with("billshadow_run_info{") {
            assert!(
                !line.contains("run_id=") && !line.contains("run="),
                "{line}"
            );
        }
    }
    let finished = text
        .lines()
        .find_map(|l| l.strip_prefix("billshadow_last_run_finished_timestamp_seconds "))
        .expect("the staleness signal is exposed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - finished.parse::<u64>().unwrap() < 3600, "{finished}");
    assert!(text.contains("billshadow_build_info{version=\"0.1.0\",commit=\""));
    // A state set: six stages per cell, exactly one of them 1.
    let p0: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("billshadow_cell_state{partition=\"p0\",region=\"us-east-1\""))
        .collect();
    assert_eq!(p0.len(), 6, "{p0:?}");
    assert!(p0.contains(
        &"billshadow_cell_state{partition=\"p0\",region=\"us-east-1\",state=\"legacy\"} 1"
    ));
    assert_eq!(p0.iter().filter(|l| l.ends_with(" 1")).count(), 1, "{p0:?}");
    // Over- and under-billing apart, one series per cell and currency, never negative.
    for metric in [
        "billshadow_overbilled_amount{",
        "billshadow_underbilled_amount{",
    ] {
        let values: Vec<&str> = text.lines().filter(|l| l.starts_with(metric)).collect();
        assert!(!values.is_empty(), "{metric}: {text}");
        for line in values {
            assert!(line.contains(",currency=\""), "{line}");
            assert!(!line.rsplit(' ').next().unwrap().starts_with('-'), "{line}");
        }
    }
    let exposed = metric_names(text);
    let alerts = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    for name in metric_names(&alerts)
        .into_iter()
        .chain(dashboard_exprs().iter().flat_map(|e| metric_names(e)))
    {
        assert!(exposed.contains(&name), "{name} is not exposed:\n{text}");
    }
}
