//! Each run records what each stack reports as its version: the sample legacy program run with
//! `--version` (a real child process) and the sample modern service's `/version` endpoint (real
//! HTTP on 127.0.0.1), shown by `runs`, `show`, the reports and the gate's evidence.

use std::path::Path;

use crate::support::{billshadow, cohort, free_port, write_spec};

/// The sample stacks' spec with a `version` table on each side.
fn spec_with_versions(d: &Path, port: u16, modern_version: &str) {
    let spec = write_spec(d, port, "", "", "");
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text
        .replacen(
            "concurrency = 2\n",
            "concurrency = 2\nversion = { args = [\"--version\"] }\n",
            1,
        )
        .replacen(
            "\n[match]",
            &format!("version = {modern_version}\n\n[match]"),
            1,
        );
    std::fs::write(&spec, text).unwrap();
}

fn run(d: &Path) -> crate::support::Run {
    billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
            "--no-progress",
        ],
        d,
    )
}

#[test]
fn a_run_records_each_stacks_reported_version_and_shows_it_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 40);
    let port = free_port();
    spec_with_versions(
        d,
        port,
        &format!("{{ url = \"http://127.0.0.1:{port}/version\", header = \"x-service-version\" }}"),
    );
    let done = run(d);
    assert_eq!(done.code, 1, "{}", done.transcript());

    let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d);
    let versions = &runs.json()["runs"][0]["stack_versions"];
    assert_eq!(
        versions,
        &serde_json::json!({
            "legacy": {"version": "billshadow-sample-legacy 0.1.0"},
            "modern": {"version": "billshadow-sample-modern 0.1.0"},
        }),
        "{}",
        runs.transcript()
    );
    let one_line = "legacy billshadow-sample-legacy 0.1.0, modern billshadow-sample-modern 0.1.0";
    let listed = billshadow(&["runs", "--store", "s.db"], d);
    assert!(listed.stdout.contains(one_line), "{}", listed.transcript());
    let shown = billshadow(&["show", "latest", "--store", "s.db"], d);
    assert!(
        shown.stdout.contains(&format!("stacks: {one_line}")),
        "{}",
        shown.transcript()
    );
    let md = billshadow(
        &["report", "latest", "--store", "s.db", "--format", "md"],
        d,
    );
    assert!(
        md.stdout
            .contains("Stacks: legacy `billshadow-sample-legacy 0.1.0`, modern `billshadow-sample-modern 0.1.0`."),
        "{}",
        md.transcript()
    );
    let html = billshadow(
        &["report", "latest", "--store", "s.db", "--format", "html"],
        d,
    );
    assert!(
        html.stdout.contains("id=\"stack-versions\"")
            && html
                .stdout
                .contains("<code>billshadow-sample-modern 0.1.0</code>"),
        "{}",
        html.transcript()
    );

    // The gate's evidence: the newest judged run's versions.
    std::fs::write(
        d.join("policy.toml"),
        "[[cells]]\npartitions = [\"p0..p3\"]\nregions = [\"us-east-1\", \"eu-west-1\", \"eu-central-1\", \"eu-west-2\", \"ap-northeast-1\", \"me-south-1\"]\n\n[gate]\nmin_accounts = 1\nmax_mismatch_rate = \"0.5\"\n",
    )
    .unwrap();
    let init = billshadow(
        &[
            "migrate",
            "init",
            "--policy",
            "policy.toml",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(init.code, 0, "{}", init.transcript());
    let status = billshadow(
        &[
            "migrate",
            "status",
            "--policy",
            "policy.toml",
            "--store",
            "s.db",
            "--format",
            "json",
        ],
        d,
    );
    let cells = status.json()["cells"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let judged: Vec<_> = cells
        .iter()
        .filter(|c| !c["stack_versions"].is_null())
        .collect();
    assert!(!judged.is_empty(), "{}", status.transcript());
    for cell in judged {
        assert_eq!(
            cell["stack_versions"]["modern"],
            "billshadow-sample-modern 0.1.0",
            "{}",
            status.transcript()
        );
    }
}

#[test]
fn a_stack_that_does_not_report_its_version_is_recorded_as_unreported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 10);
    let port = free_port();
    // The service has no such endpoint: 404.
    spec_with_versions(
        d,
        port,
        &format!("{{ url = \"http://127.0.0.1:{port}/no-version-here\" }}"),
    );
    let done = run(d);
    assert_eq!(done.code, 1, "{}", done.transcript());
    let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d);
    let modern = &runs.json()["runs"][0]["stack_versions"]["modern"];
    assert!(modern["version"].is_null(), "{}", runs.transcript());
    assert!(
        modern["error"]
            .as_str()
            .is_some_and(|e| e.contains("/no-version-here") && e.contains("404")),
        "{}",
        runs.transcript()
    );
    assert_eq!(
        runs.json()["runs"][0]["stack_versions"]["legacy"]["version"],
        "billshadow-sample-legacy 0.1.0"
    );
}

#[test]
fn a_version_table_that_does_not_fit_the_stack_is_refused_when_the_spec_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 5);
    // An http stack's version is an endpoint, not arguments.
    spec_with_versions(d, free_port(), "{ args = [\"--version\"] }");
    let refused = run(d);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(
        refused
            .stderr
            .contains("an http stack's `version` takes `url`"),
        "{}",
        refused.transcript()
    );
}
