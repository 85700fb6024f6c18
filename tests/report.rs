//! Reports of stored runs: HTML opened in a real headless Chromium, Prometheus text checked by
//! `promtool`, JUnit parsed back, Markdown, CSV and `explain` snapshot-tested.

#[expect(dead_code, reason = "the database helpers serve tests/run.rs")]
mod support;

use std::path::Path;
use std::process::Command;

use support::{Run, billshadow_env, cohort, free_port, redact, write_spec};

const POLICY: &str = r#"
[[cells]]
partitions = ["p0..p3"]
regions = ["us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-northeast-1", "me-south-1"]

[gate]
min_accounts = 5
max_mismatch_rate = "0.05"
consecutive_passing_runs = 1
"#;

fn run_in(dir: &Path, args: &[&str]) -> Run {
    billshadow_env(args, dir, &[])
}

/// A shadow run of 600 accounts through the sample stacks, with the controller initialised.
fn stored_run() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 600);
    write_spec(d, free_port(), "", "", "");
    std::fs::write(d.join("policy.toml"), POLICY).unwrap();
    let run = run_in(
        d,
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(
        run_in(
            d,
            &[
                "migrate",
                "init",
                "--policy",
                "policy.toml",
                "--store",
                "s.db"
            ]
        )
        .code,
        0
    );
    dir
}

fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
    ]);
    command.arg(format!("--user-data-dir={}", profile.path().display()));
    command
        .args(args)
        .output()
        .expect("chromium runs (installed by .ci/run from the OS packages)")
}

#[test]
fn the_html_dashboard_opens_in_chromium_with_the_cells_and_headline_numbers() {
    let dir = stored_run();
    let d = dir.path();
    let run = run_in(
        d,
        &[
            "report",
            "latest",
            "--store",
            "s.db",
            "--policy",
            "policy.toml",
            "--format",
            "html",
            "--out",
            "report.html",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(!html.contains("<script"), "the dashboard carries no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is fetched from the network"
    );
    let url = format!("file://{}", d.join("report.html").display());

    let shot = d.join("report.png");
    let out = chromium(&[&format!("--screenshot={}", shot.display()), &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "a blank page"
    );

    let dom = chromium(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    let show = run_in(
        d,
        &["show", "latest", "--store", "s.db", "--format", "json"],
    )
    .json();
    let s = &show["summary"];
    for text in [
        "MISMATCH".to_owned(),
        format!(
            "{} of {} compared",
            s["accounts_at_parity"], s["accounts_compared"]
        ),
        "Parity by partition and region".to_owned(),
        "me-south-1".to_owned(),
        "p3".to_owned(),
        "missing_in_modern".to_owned(),
        "Worst accounts".to_owned(),
    ] {
        assert!(dom.contains(&text), "the page lacks {text:?}");
    }
    for cell in show["cells"].as_array().unwrap() {
        assert!(
            dom.contains(&format!("title=\"{}\"", cell["cell"].as_str().unwrap())),
            "{}",
            cell["cell"]
        );
    }
}

#[test]
fn an_account_id_that_is_a_script_is_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cohort.csv"), "account_id,partition,region,period_start,period_end\n<script>alert(1)</script>,p0,us-east-1,2026-10-01,2026-10-31\nplain,p0,us-east-1,2026-10-01,2026-10-31\n").unwrap();
    std::fs::create_dir_all(d.join("data")).unwrap();
    // Legacy bills one dollar, modern fails for every account: the id shows among stack errors.
    write_spec(
        d,
        free_port(),
        "\"--echo\", \"--fail-rate\", \"1\"",
        "\"--echo\",",
        "",
    );
    let run = run_in(
        d,
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.transcript());
    let report = run_in(
        d,
        &[
            "report", "--store", "s.db", "--format", "html", "--out", "x.html",
        ],
    );
    assert_eq!(report.code, 3, "{}", report.transcript());
    let html = std::fs::read_to_string(d.join("x.html")).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped"
    );
    let dom = chromium(&[
        "--dump-dom",
        &format!("file://{}", d.join("x.html").display()),
    ]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the id is on the page as text"
    );
    assert!(!dom.contains("<script"), "no script element was created");
}

#[test]
fn prometheus_output_passes_promtool() {
    let dir = stored_run();
    let d = dir.path();
    let run = run_in(
        d,
        &[
            "report",
            "--store",
            "s.db",
            "--policy",
            "policy.toml",
            "--format",
            "prom",
            "--out",
            "metrics.prom",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let text = std::fs::read_to_string(d.join("metrics.prom")).unwrap();
    assert!(text.contains("billshadow_parity_ratio{"), "{text}");
    assert!(
        text.contains(
            "billshadow_cell_state{partition=\"p0\",region=\"us-east-1\",state=\"legacy\"} 1"
        ),
        "{text}"
    );
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(d.join("metrics.prom")).unwrap())
        .output()
        .expect("promtool runs (from the OS package prometheus, installed by .ci/run)");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_metrics_endpoint_serves_the_latest_run() {
    let dir = stored_run();
    let d = dir.path();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_billshadow"))
        .args([
            "metrics",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            "s.db",
        ])
        .current_dir(d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = support::runtime().block_on(async {
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
                return r.text().await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the metrics endpoint never answered");
    });
    server.kill().unwrap();
    let _ = server.wait();
    assert!(body.contains("# TYPE billshadow_accounts gauge"), "{body}");
}

#[test]
fn junit_of_a_run_parses_back_with_the_numbers() {
    let dir = stored_run();
    let d = dir.path();
    run_in(
        d,
        &[
            "report",
            "--store",
            "s.db",
            "--policy",
            "policy.toml",
            "--format",
            "junit",
            "--out",
            "run.xml",
        ],
    );
    let xml = std::fs::read_to_string(d.join("run.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 24);
    let broken = suites
        .iter()
        .find(|s| s.attribute("name") == Some("p0/me-south-1"))
        .unwrap();
    let failure = broken
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    let message = failure.attribute("message").unwrap();
    assert!(
        message.starts_with("measured ")
            && message.contains("accounts")
            && message.contains("needs <= 0.05"),
        "{message}"
    );
}

#[test]
fn markdown_csv_and_explain_snapshots() {
    let dir = stored_run();
    let d = dir.path();
    let md = run_in(
        d,
        &[
            "report",
            "--store",
            "s.db",
            "--policy",
            "policy.toml",
            "--format",
            "md",
        ],
    );
    assert!(md.stdout.len() <= 64 * 1024);
    insta::assert_snapshot!("report_md", redact(&md.stdout));
    let csv = run_in(d, &["report", "--store", "s.db", "--format", "csv"]);
    let head: String = csv
        .stdout
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("report_csv_head", head);
    assert_eq!(
        csv.stdout.lines().count() as u64 - 1,
        run_in(d, &["show", "--store", "s.db", "--format", "json"]).json()["diffs"]
            .as_array()
            .unwrap()
            .len() as u64
    );
    // The first account with a diff, explained.
    let account = csv
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let explain = run_in(d, &["explain", &account, "--store", "s.db"]);
    assert_eq!(explain.code, 1, "{}", explain.transcript());
    insta::assert_snapshot!("explain_text", explain.stdout);
    let json = run_in(
        d,
        &[
            "explain", "latest", &account, "--store", "s.db", "--format", "json",
        ],
    )
    .json();
    assert_eq!(json["account_id"], account);
    assert!(
        json["unified_diff"]
            .as_str()
            .unwrap()
            .contains("--- legacy")
    );
    let show = run_in(d, &["show", "latest", "--store", "s.db", "--limit", "3"]);
    let text: String = show
        .stdout
        .lines()
        .map(|l| {
            if l.starts_with("billshadow run ") {
                "billshadow run [run] ([redacted])\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    insta::assert_snapshot!("show_text", text);
    let missing = run_in(d, &["explain", "nobody", "--store", "s.db"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("the account `nobody` is not in run"),
        "{}",
        missing.stderr
    );
}
