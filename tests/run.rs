//! End-to-end tests of shadow runs: the real binary, the sample stacks as real child processes
//! and a real HTTP service on 127.0.0.1, real SQLite files and a real PostgreSQL server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    BILLSHADOW, billshadow, billshadow_env, cohort, free_port, modern, postgres::Postgres,
    wait_for_listener, write_spec,
};
use serde_json::Value;

fn show(dir: &Path, store: &str) -> Value {
    let run = billshadow(
        &["show", "latest", "--store", store, "--format", "json"],
        dir,
    );
    run.json()
}

/// The parts of a shown run that must not depend on how it was run.
fn verdict_of(doc: &Value) -> Value {
    // Where a line sat in a stack's answer (`legacy_line`, `modern_line`) depends on the batch
    // it was asked in, and a resumed run batches what was pending: evidence, not verdict.
    let mut diffs = doc["diffs"].clone();
    if let Some(list) = diffs.as_array_mut() {
        for diff in list {
            if let Some(map) = diff.as_object_mut() {
                map.remove("legacy_line");
                map.remove("modern_line");
            }
        }
    }
    serde_json::json!({"summary": doc["summary"], "cells": doc["cells"], "diffs": diffs})
}

/// Waits until nothing accepts connections on 127.0.0.1:`port`.
fn wait_until_closed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "port {port} is still taken");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_shadow_run_finds_the_seeded_defects_cell_by_cell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 600);
    write_spec(d, free_port(), "", "", "");
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "shadow.db",
        ],
        d,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stdout.contains("MISMATCH"), "{}", run.stdout);

    let doc = show(d, "shadow.db");
    let s = &doc["summary"];
    assert_eq!(s["accounts_compared"], 600);
    assert_eq!(s["accounts_errored"], 0);
    let cells: Vec<&Value> = doc["cells"].as_array().unwrap().iter().collect();
    let cell = |name: &str| {
        *cells
            .iter()
            .find(|c| c["cell"] == name)
            .unwrap_or_else(|| panic!("no cell {name}"))
    };
    // Healthy cells are at parity; each defect shows where it was seeded.
    for healthy in [
        "p0/us-east-1",
        "p0/eu-west-1",
        "p1/eu-central-1",
        "p2/ap-northeast-1",
    ] {
        assert_eq!(
            cell(healthy)["mismatched"],
            0,
            "{healthy}: {}",
            cell(healthy)
        );
    }
    for broken in [
        "p0/me-south-1",
        "p1/me-south-1",
        "p2/eu-west-1",
        "p1/ap-northeast-1",
        "p3/us-east-1",
    ] {
        assert!(
            cell(broken)["mismatched"].as_u64().unwrap() > 0,
            "{broken}: {}",
            cell(broken)
        );
    }
    let by_class = s["by_class"].as_object().unwrap();
    for class in ["amount_mismatch", "missing_in_modern", "total_mismatch"] {
        assert!(
            by_class.contains_key(class),
            "{class} missing from {by_class:?}"
        );
    }
    // The missing credits are p3's WELCOME10 promotions, and only those.
    for d in doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == "missing_in_modern")
    {
        assert_eq!(d["charge_code"], "promo.welcome10");
        assert_eq!(d["partition"], "p3");
    }

    let runs = billshadow(&["runs", "--store", "shadow.db", "--format", "json"], d).json();
    assert_eq!(runs["runs"][0]["accounts_done"], 600);
    assert_eq!(runs["runs"][0]["status"], "completed");
}

#[test]
fn a_run_killed_with_sigkill_resumes_with_every_account_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 2000);
    // Slow enough that the kill lands mid-run.
    let port = free_port();
    write_spec(
        d,
        port,
        "\"--slow-rate\", \"1\", \"--slow-ms\", \"15\"",
        "",
        "",
    );
    let mut child = Command::new(BILLSHADOW)
        .args([
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "killed.db",
            "--no-progress",
        ])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("killed.stderr")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        // Until the run has created its store, `runs` says there is none (and creates none).
        let runs = billshadow(&["runs", "--store", "killed.db", "--format", "json"], d);
        let done = if runs.code == 0 {
            runs.json()["runs"][0]["accounts_done"]
                .as_u64()
                .unwrap_or(0)
        } else {
            0
        };
        if done >= 200 {
            assert!(done < 2000, "the run finished before it could be killed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run made no progress: {}",
            std::fs::read_to_string(d.join("killed.stderr")).unwrap_or_default()
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let runs = billshadow(&["runs", "--store", "killed.db", "--format", "json"], d).json();
    assert_eq!(
        runs["runs"][0]["status"], "running",
        "a killed run cannot have marked itself"
    );
    let done_at_kill = runs["runs"][0]["accounts_done"].as_u64().unwrap();

    // The orphaned modern stack stops by itself when its stdin closes; wait for its port
    // (a resume refuses to start a stack on an address something still answers on).
    wait_until_closed(port);
    let resumed = billshadow(&["run", "--resume", "latest", "--store", "killed.db"], d);
    assert_eq!(resumed.code, 1, "{}", resumed.transcript());
    assert!(
        resumed
            .stderr
            .contains(&format!("{} of 2000 accounts to do", 2000 - done_at_kill)),
        "{}",
        resumed.stderr
    );
    let killed = show(d, "killed.db");
    assert_eq!(killed["run"]["accounts_done"], 2000);
    assert_eq!(killed["run"]["status"], "completed");
    let s = &killed["summary"];
    assert_eq!(
        s["accounts_compared"].as_u64().unwrap() + s["accounts_errored"].as_u64().unwrap(),
        2000
    );

    // The same run, uninterrupted, on a fresh store: the same verdict to the last diff.
    write_spec(d, free_port(), "", "", "");
    let whole = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "whole.db",
        ],
        d,
    );
    assert_eq!(whole.code, 1, "{}", whole.transcript());
    assert_eq!(verdict_of(&killed), verdict_of(&show(d, "whole.db")));
}

#[test]
fn a_flaky_stack_loses_no_account_and_says_how_many_have_no_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 1000);
    let faults = "\"--echo\", \"--fail-rate\", \"0.1\", \"--slow-rate\", \"0.03\", \"--slow-ms\", \"3000\", \"--malformed-rate\", \"0.02\", \"--crash-after\", \"900\"";
    write_spec(d, free_port(), faults, "\"--echo\",", "");
    // The crash is an outage: waited out for 1.5 s, then the run stops. The breaker opens
    // after 3 failures in a row, before an account can spend its own 3 attempts on the
    // crash even on a loaded machine (with 10, a few accounts could, and became stack errors).
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    std::fs::write(
        d.join("spec.toml"),
        spec.replace(
            "retries = 2",
            "retries = 2\nprobe_ms = 100\noutage_max_ms = 1500\nbreaker_failures = 3",
        ),
    )
    .unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "flaky.db",
        ],
        d,
    );
    // Every compared account is at parity (both stacks echo); some have no verdict (broken
    // answers), the rest are pending since the stack crashed for good.
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("the modern stack has been down for more than 1.5 s"),
        "{}",
        run.stderr
    );
    let doc = show(d, "flaky.db");
    assert_eq!(doc["run"]["status"], "interrupted");
    let s = &doc["summary"];
    let (compared, errored) = (
        s["accounts_compared"].as_u64().unwrap(),
        s["accounts_errored"].as_u64().unwrap(),
    );
    let pending = doc["completeness"]["accounts_pending"].as_u64().unwrap();
    assert_eq!(compared + errored + pending, 1000, "{s}");
    assert!(pending > 0, "{}", doc["completeness"]);
    assert_eq!(s["accounts_mismatched"], 0);
    assert!(errored > 0 && compared > 500, "{s}");
    assert_eq!(s["by_class"]["stack_error"].as_u64().unwrap(), errored);
    assert!(
        doc["retries"].as_u64().unwrap() > 0,
        "retries are counted: {}",
        doc["retries"]
    );
    assert!(
        run.stdout
            .contains(&format!("{errored} accounts have no verdict")),
        "{}",
        run.stdout
    );
    let details: Vec<&str> = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["detail"].as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|m| m.contains("not valid JSON") || m.contains("EOF")),
        "malformed answers: {details:?}"
    );
    assert!(
        !details.iter().any(|m| m.contains("request failed")),
        "the crash is no verdict: {details:?}"
    );
}

const HOSTILE: [&str; 9] = [
    "plain",
    "with space",
    "quote\"d",
    "semi;colon",
    "$(touch CANARY)",
    "`touch CANARY`",
    "ünïcødé-€",
    "slash/and\\back",
    "percent%2F&amp=1?x#y",
];

fn hostile_cohort(dir: &Path) {
    let mut w = csv::Writer::from_path(dir.join("cohort.csv")).unwrap();
    w.write_record([
        "account_id",
        "customer_id",
        "partition",
        "region",
        "period_start",
        "period_end",
    ])
    .unwrap();
    for id in HOSTILE {
        w.write_record([id, "", "p0", "us-east-1", "2026-10-01", "2026-10-31"])
            .unwrap();
    }
    w.flush().unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
}

fn assert_all_intact(doc: &Value, dir: &Path) {
    assert_eq!(
        doc["summary"]["accounts_at_parity"],
        HOSTILE.len(),
        "{}",
        doc["summary"]
    );
    assert_eq!(doc["summary"]["lines_matched"], HOSTILE.len());
    assert!(!dir.join("CANARY").exists(), "a command was executed");
}

/// Unmounts what a test mounted, even when the test fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(args: &[&str], target: &Path) -> Option<Mounted> {
    std::fs::create_dir_all(target).unwrap();
    let ok = Command::new("mount")
        .args(args)
        .arg(target)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mounted(target.to_path_buf()))
}

/// Issue 11, item 5: a store that cannot be written (read-only, full, in a folder that cannot
/// be created) fails the run at once with exit 3, naming the store, instead of a pool that
/// times out. The read-only and full cases need `mount` (a read-only bind mount: root ignores
/// file permissions; a 256 KiB tmpfs filled up); without it only the folder case runs.
#[test]
fn a_store_that_cannot_be_written_fails_at_once_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 20);
    write_spec(d, free_port(), "", "", "");
    let run = |store: &str| {
        let started = Instant::now();
        let out = billshadow(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                store,
            ],
            d,
        );
        (out, started.elapsed())
    };
    let (first, _) = run("s.db");
    assert_eq!(first.code, 1, "{}", first.transcript());

    // /proc takes no new folders, whoever asks.
    let mut stores = vec![std::path::PathBuf::from(
        "/proc/billshadow-no-such-folder/s.db",
    )];
    let ro = d.join("ro");
    let full = d.join("full");
    std::fs::create_dir_all(d.join("ro-src")).unwrap();
    std::fs::copy(d.join("s.db"), d.join("ro-src/s.db")).unwrap();
    let _ro = mount(
        &["--bind", "-o", "ro", d.join("ro-src").to_str().unwrap()],
        &ro,
    );
    let _full = mount(&["-t", "tmpfs", "-o", "size=256k", "tmpfs"], &full);
    if _ro.is_some() {
        stores.push(ro.join("s.db"));
        stores.push(ro.join("new.db"));
    }
    if _full.is_some() {
        let _ = std::fs::write(full.join("fill"), vec![0u8; 1 << 20]);
        stores.push(full.join("new.db"));
    }
    for store in &stores {
        let store = store.to_str().unwrap();
        let (out, took) = run(store);
        assert_eq!(out.code, 3, "{store}: {}", out.transcript());
        assert!(
            out.stderr.contains(&format!("the run store {store}")),
            "{store}: {}",
            out.transcript()
        );
        assert!(
            !out.stderr.contains("pool timed out"),
            "{}",
            out.transcript()
        );
        assert!(took < Duration::from_secs(8), "{store}: took {took:?}");
    }
    eprintln!("stores tested: {stores:?}");

    // A disk that fills while the run and its cohort are recorded: the store's failure (3),
    // named, not an input error.
    let full = d.join("fills");
    if let Some(_fills) = mount(&["-t", "tmpfs", "-o", "size=400k", "tmpfs"], &full) {
        let big = billshadow(
            &[
                "generate",
                "cohort",
                "--accounts",
                "20000",
                "--seed",
                "5",
                "--out",
                "big",
            ],
            d,
        );
        assert_eq!(big.code, 0, "{}", big.transcript());
        let store = full.join("s.db");
        let store = store.to_str().unwrap();
        let started = Instant::now();
        let out = billshadow(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "big/cohort.csv",
                "--store",
                store,
            ],
            d,
        );
        assert_eq!(out.code, 3, "{}", out.transcript());
        assert!(
            out.stderr
                .contains(&format!("the run store {store} failed")),
            "{}",
            out.transcript()
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }
}

/// Values a stack would read as something else are refused when the cohort is read, with the
/// cohort's line and column, before any stack is started or asked.
#[test]
fn hostile_cohort_values_are_refused_with_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    write_spec(d, free_port(), "", "", "");
    let header = "account_id,customer_id,partition,region,period_start,period_end\n";
    let ok = "acct-1,,p0,us-east-1,2026-10-01,2026-10-31\n";
    for (name, row, expected) in [
        (
            "an id read as an option",
            "--echo,,p0,us-east-1,2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 1 (`account_id`): `--echo` starts with `-`",
        ),
        (
            "a NUL byte",
            "a\0b,,p0,us-east-1,2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 1 (`account_id`): `a\\u{0}b` contains the control character U+0000",
        ),
        (
            "a line end inside quotes",
            "\"new\nline\",,p0,us-east-1,2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 1 (`account_id`): `new\\u{a}line` contains the control character U+000A",
        ),
        (
            "an escape sequence",
            "acct-2,,p0,\"\x1b]0;owned\x07\",2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 4 (`region`): `\\u{1b}]0;owned\\u{7}` contains the control character U+001B",
        ),
        (
            "a partition read as an option",
            "acct-2,,-p,us-east-1,2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 3 (`partition`): `-p` starts with `-`",
        ),
        (
            "a customer read as an option",
            "acct-2,--help,p0,us-east-1,2026-10-01,2026-10-31\n",
            "cohort.csv, line 3, column 2 (`customer_id`): `--help` starts with `-`",
        ),
        (
            "an id too long",
            &format!("{},,p0,us-east-1,2026-10-01,2026-10-31\n", "a".repeat(257)),
            "cohort.csv, line 3, column 1 (`account_id`): the value is 257 bytes long; at most 256",
        ),
    ] {
        std::fs::write(d.join("cohort.csv"), format!("{header}{ok}{row}")).unwrap();
        let run = billshadow(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                "s.db",
            ],
            d,
        );
        assert_eq!(run.code, 2, "{name}: {}", run.transcript());
        assert!(
            run.stderr.contains(expected),
            "{name}: {}",
            run.transcript()
        );
        assert!(
            !run.stderr.contains('\x1b'),
            "{name}: raw escape in {}",
            run.transcript()
        );
        assert!(!d.join("s.db").exists(), "{name}: a store was created");
    }
}

/// `[cohort] allow_leading_dash = true` lets a cohort value start with `-`; it still reaches
/// the stacks as one argv entry and one URL segment.
#[test]
fn a_leading_dash_passes_when_the_spec_opts_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(
        d.join("cohort.csv"),
        "account_id,customer_id,partition,region,period_start,period_end\nplain,,p0,us-east-1,2026-10-01,2026-10-31\n-dash-led,,p0,us-east-1,2026-10-01,2026-10-31\n",
    )
    .unwrap();
    write_spec(
        d,
        free_port(),
        "\"--echo\"",
        "\"--echo\",",
        "[cohort]\nallow_leading_dash = true\n",
    );
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let doc = show(d, "s.db");
    assert_eq!(
        doc["summary"]["accounts_at_parity"], 2,
        "{}",
        doc["summary"]
    );
}

#[test]
fn hostile_account_ids_pass_unchanged_through_argv_and_urls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hostile_cohort(d);
    write_spec(d, free_port(), "\"--echo\"", "\"--echo\",", "");
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_all_intact(&show(d, "s.db"), d);
}

fn sql_rows(ids: &[&str]) -> Vec<[String; 7]> {
    ids.iter()
        .map(|id| {
            [
                (*id).to_owned(),
                "2026-10-01".into(),
                "2026-10-31".into(),
                "echo".into(),
                "fee".into(),
                "1.00".into(),
                "USD".into(),
            ]
        })
        .collect()
}

const SQL_MAPPING: &str = r#"name = "bill-rows"
input = "jsonl"
[fields]
account_id = "account_id"
period_start = "period_start"
period_end = "period_end"
charge_code = "charge_code"
line_type = "line_type"
amount = "amount"
currency = "currency"
"#;

fn sql_spec(dir: &Path, port: u16, placeholder: (&str, &str)) {
    let modern = modern();
    let spec = format!(
        r#"
[legacy]
kind = "sql"
dsn_env = "LEGACY_DSN"
query = "SELECT account_id, period_start, period_end, charge_code, line_type, amount, currency FROM bill_lines WHERE account_id = {} AND period_start = {}"
params = ["{{account_id}}", "{{period_start}}"]
format = "rows.toml"

[modern]
kind = "http"
url = "http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill"
format = "modern-bill.toml"
start = {{ program = {modern:?}, args = ["--data", "data", "--listen", "127.0.0.1:{port}", "--watch-stdin", "--echo"], ready_address = "127.0.0.1:{port}" }}

[match]
key = ["account_id", "period", "charge_code", "line_type"]
"#,
        placeholder.0, placeholder.1
    );
    write_spec(dir, port, "", "", "");
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    std::fs::write(dir.join("rows.toml"), SQL_MAPPING).unwrap();
}

#[test]
fn hostile_account_ids_pass_unchanged_through_sql_binds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hostile_cohort(d);
    let db = d.join("legacy.sqlite");
    crate::support::sqlite_bill_lines(&db, &sql_rows(&HOSTILE));
    sql_spec(d, free_port(), ("$1", "$2"));
    let dsn = format!("sqlite://{}", db.display());
    let run = billshadow_env(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
        &[("LEGACY_DSN", &dsn)],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_all_intact(&show(d, "s.db"), d);
}

#[test]
fn postgres_serves_as_both_an_sql_stack_and_the_run_store() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hostile_cohort(d);
    let mut rows = sql_rows(&HOSTILE);
    rows[1][5] = "1.01".into(); // One account billed a cent more by the legacy stack.
    pg.bill_lines("legacy", &rows);
    pg.create_database("store");
    sql_spec(d, free_port(), ("$1", "$2"));
    let store = pg.url("store");
    let run = billshadow_env(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            &store,
        ],
        d,
        &[("LEGACY_DSN", &pg.url("legacy"))],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let doc = show(d, &store);
    assert_eq!(doc["summary"]["accounts_mismatched"], 1);
    assert_eq!(doc["summary"]["accounts_at_parity"], HOSTILE.len() - 1);
    let amount = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["class"] == "amount_mismatch")
        .unwrap();
    assert_eq!(amount["account_id"], HOSTILE[1]);
    assert_eq!(amount["delta"], "-0.01");
    assert!(!d.join("CANARY").exists());
}

#[test]
fn bad_set_ups_fail_before_any_work_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 10);
    let port = free_port();
    write_spec(d, port, "", "", "");
    // Nothing recorded: no store at all (a failed set-up creates none), or one without runs.
    let no_runs = |d: &Path| {
        if d.join("s.db").exists() {
            let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d);
            assert_eq!(runs.json()["runs"], serde_json::json!([]));
        }
    };

    let bad_cohorts = [
        (
            "account_id,partition,region\na,p0,us-east-1\n",
            "bad-cohort.csv: the cohort has no `period_start` column",
        ),
        (
            "account_id,partition,region,period_start,period_end\na,p0,us-east-1,2026-10-01,31/10/2026\n",
            "bad-cohort.csv, line 2, column 5 (`period_end`): `31/10/2026` is not a date",
        ),
        (
            "account_id,partition,region,period_start,period_end\na,p0,us-east-1,2026-10-01,2026-10-31\na,p1,us-east-1,2026-10-01,2026-10-31\n",
            "the cohort lists an account twice",
        ),
    ];
    for (cohort, expected) in bad_cohorts {
        std::fs::write(d.join("bad-cohort.csv"), cohort).unwrap();
        let run = billshadow(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "bad-cohort.csv",
                "--store",
                "s.db",
            ],
            d,
        );
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(
            run.stderr.contains(expected),
            "expected {expected:?} in {}",
            run.stderr
        );
    }

    // A stack nobody listens for.
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    let unstarted = spec
        .lines()
        .filter(|l| !l.starts_with("start ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("unreachable.toml"), &unstarted).unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "unreachable.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("the modern stack is unreachable: cannot connect to 127.0.0.1"),
        "{}",
        run.stderr
    );

    // A header secret from an unset variable.
    let secret = spec.replace("retries = 2", "retries = 2\nheaders = { Authorization = { env = \"BILLSHADOW_TEST_UNSET_TOKEN\", prefix = \"Bearer \" } }");
    std::fs::write(d.join("secret.toml"), secret).unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "secret.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("[modern]: the environment variable BILLSHADOW_TEST_UNSET_TOKEN is not set"),
        "{}",
        run.stderr
    );

    // A misspelt setting points at the spec's line.
    std::fs::write(d.join("typo.toml"), spec.replace("batch_size", "batchsize")).unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "typo.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("typo.toml:6:1: unknown field `batchsize`"),
        "{}",
        run.stderr
    );
    no_runs(d);
}

#[test]
fn calibration_replays_legacy_twice_and_finds_no_noise_in_a_deterministic_stack() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 100);
    write_spec(d, free_port(), "", "", "");
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "c.db",
            "--calibrate",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("two replays of the legacy stack agree on every field"),
        "{}",
        run.stdout
    );
    let runs = billshadow(&["runs", "--store", "c.db", "--format", "json"], d).json();
    assert_eq!(runs["runs"][0]["kind"], "calibration");
}

/// Issue 9, item 12, on PostgreSQL: a command that only reads migrated whatever database it was
/// pointed at, creating the run store's tables in it.
#[test]
fn read_only_commands_never_migrate_a_postgres_database_that_is_not_a_store() {
    let pg = Postgres::start();
    pg.create_database("other");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("policy.toml"),
        "[[cells]]\npartitions = [\"p0\"]\nregions = [\"us-east-1\"]\n\n[gate]\nmin_accounts = 5\nmax_mismatch_rate = \"0.05\"\nconsecutive_passing_runs = 1\n",
    )
    .unwrap();
    let url = pg.url("other");
    for args in [
        vec!["show", "latest", "--store", &url],
        vec!["runs", "--store", &url],
        vec!["report", "--format", "md", "--store", &url],
        vec![
            "migrate",
            "status",
            "--policy",
            "policy.toml",
            "--store",
            &url,
        ],
        vec![
            "migrate",
            "advance",
            "--all",
            "--policy",
            "policy.toml",
            "--store",
            &url,
        ],
    ] {
        let run = billshadow(&args, d);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        assert!(
            run.stderr
                .contains("is a database but not a billshadow run store"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let tables: i64 = crate::support::runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n
    });
    assert_eq!(tables, 0, "nothing was created in the database");
}

/// A command stack that bills each account it is given for the period it was asked for, and
/// logs every invocation (`PERIOD_START ACCOUNT…`).
const PERIOD_STACK: &str = r#"log=$1; start=$2; end=$3; shift 3
echo "$start $*" >> "$log"
echo "account_id,period_start,period_end,charge_code,line_type,amount,currency"
for a in "$@"; do
  case "$start" in 2026-10-*) amount=10.00 ;; *) amount=20.00 ;; esac
  echo "$a,$start,$end,plan,recurring,$amount,USD"
done
"#;

#[test]
fn a_cohort_mixing_periods_bills_each_account_for_its_own_period() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("period-stack.sh"), PERIOD_STACK).unwrap();
    let mut cohort =
        String::from("account_id,customer_id,partition,region,period_start,period_end\n");
    let mut periods = std::collections::BTreeMap::new();
    for i in 0..10 {
        let (start, end) = if i % 2 == 0 {
            ("2026-10-01", "2026-10-31")
        } else {
            ("2026-11-01", "2026-11-30")
        };
        cohort.push_str(&format!("acct-{i},c{i},p0,us-east-1,{start},{end}\n"));
        periods.insert(format!("acct-{i}"), start.to_owned());
    }
    std::fs::write(d.join("cohort.csv"), cohort).unwrap();
    // Legacy bills a batch per invocation, modern one account per invocation: the same
    // billing either way.
    std::fs::write(
        d.join("spec.toml"),
        r#"
[legacy]
kind = "command"
program = "sh"
args = ["period-stack.sh", "legacy.log", "{period_start}", "{period_end}", "{account_ids}"]
batch_size = 4

[modern]
kind = "command"
program = "sh"
args = ["period-stack.sh", "modern.log", "{period_start}", "{period_end}", "{account_id}"]

[match]
key = ["account_id", "period", "charge_code", "line_type"]
"#,
    )
    .unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let doc = show(d, "s.db");
    assert_eq!(
        doc["summary"]["accounts_at_parity"], 10,
        "{}",
        doc["summary"]
    );
    // Every legacy invocation was for one period, that of each account it billed.
    let log = std::fs::read_to_string(d.join("legacy.log")).unwrap();
    let mut billed = 0;
    for line in log.lines() {
        let mut words = line.split(' ');
        let start = words.next().unwrap();
        for account in words {
            assert_eq!(
                periods[account], start,
                "{account} billed for {start}: {log}"
            );
            billed += 1;
        }
    }
    assert_eq!(billed, 10, "{log}");
    assert!(log.lines().count() < 10, "batches were used: {log}");
}

#[test]
fn a_leftover_server_on_the_ready_address_is_refused_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hostile_cohort(d);
    let port = free_port();
    write_spec(d, port, "\"--echo\"", "\"--echo\",", "");
    // A server from an earlier run still answers on the port the spec's stack would use.
    let address = format!("127.0.0.1:{port}");
    let mut leftover = Command::new(modern())
        .args(["--data", "data", "--listen", &address, "--echo"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(port, "the leftover server");
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    leftover.kill().unwrap();
    leftover.wait().unwrap();
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!(
            "cannot start the modern stack: {address} is already taken"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("PARITY"), "{}", run.stdout);
    // No run was recorded: the store holds none, or was never made.
    let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d);
    if runs.code == 0 {
        assert_eq!(
            runs.json()["runs"],
            serde_json::json!([]),
            "no run was recorded"
        );
    } else {
        assert_eq!(runs.code, 2, "{}", runs.transcript());
        assert!(runs.stderr.contains("does not exist"), "{}", runs.stderr);
    }

    // With the address free, the same spec runs.
    wait_until_closed(port);
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// Issue 11: the spec without `start` for the modern stack (the test runs it, to kill and
/// restart it), with the outage settings given.
fn outage_spec(dir: &Path, port: u16, outage: &str) {
    write_spec(dir, port, "", "", "");
    let spec = std::fs::read_to_string(dir.join("spec.toml")).unwrap();
    let spec = spec
        .lines()
        .filter(|l| !l.starts_with("start ="))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("retries = 2", &format!("retries = 2\n{outage}"));
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
}

/// The sample modern stack on 127.0.0.1:`port`, once it accepts connections.
fn start_modern(dir: &Path, port: u16, args: &[&str]) -> std::process::Child {
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(modern())
        .args(["--data", "data", "--listen", &address])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(port, "the modern stack");
    child
}

/// `billshadow run` in the background, its stderr kept in `name.stderr`.
fn spawn_run(dir: &Path, store: &str, name: &str) -> std::process::Child {
    Command::new(BILLSHADOW)
        .args([
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            store,
            "--no-progress",
        ])
        .current_dir(dir)
        .env("BILLSHADOW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until the run in `store` has at least `done` outcomes; returns how many it has.
fn wait_for_progress(dir: &Path, store: &str, done: u64, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let runs = billshadow(&["runs", "--store", store, "--format", "json"], dir);
        let now = if runs.code == 0 {
            runs.json()["runs"][0]["accounts_done"]
                .as_u64()
                .unwrap_or(0)
        } else {
            0
        };
        if now >= done {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the run made no progress: {}",
            std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
        );
    }
}

/// Exit code of a child, waiting at most `seconds`.
fn wait_code(child: &mut std::process::Child, seconds: u64, dir: &Path, name: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the run did not end within {seconds} s: {}",
                std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_modern_stack_restarted_mid_run_is_waited_out_with_no_stack_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 1000);
    let port = free_port();
    outage_spec(d, port, "breaker_failures = 3\nprobe_ms = 100");
    let slow = ["--slow-rate", "1", "--slow-ms", "30"];
    let mut modern = start_modern(d, port, &slow);
    let mut run = spawn_run(d, "s.db", "restart");
    let done = wait_for_progress(d, "s.db", 100, "restart");
    assert!(done < 1000, "the run finished before the stack was killed");
    modern.kill().unwrap();
    modern.wait().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let mut modern = start_modern(d, port, &slow);
    let code = wait_code(&mut run, 60, d, "restart");
    modern.kill().unwrap();
    modern.wait().unwrap();
    let stderr = std::fs::read_to_string(d.join("restart.stderr")).unwrap();
    assert_eq!(
        code, 1,
        "the seeded defects, every account compared: {stderr}"
    );
    assert!(stderr.contains("answers again"), "{stderr}");
    let doc = show(d, "s.db");
    assert_eq!(doc["run"]["status"], "completed");
    assert_eq!(
        doc["summary"]["accounts_compared"], 1000,
        "{}",
        doc["summary"]
    );
    assert_eq!(doc["summary"]["accounts_errored"], 0, "{}", doc["summary"]);
    assert!(doc["retries"].as_u64().unwrap() > 0, "{}", doc["retries"]);
}

#[test]
fn a_stack_down_for_good_stops_the_run_with_its_accounts_pending_then_resume_finishes_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 1000);
    let port = free_port();
    outage_spec(
        d,
        port,
        "breaker_failures = 3\nprobe_ms = 100\noutage_max_ms = 1500",
    );
    let slow = ["--slow-rate", "1", "--slow-ms", "30"];
    let mut modern = start_modern(d, port, &slow);
    let started = Instant::now();
    let mut run = spawn_run(d, "s.db", "down");
    wait_for_progress(d, "s.db", 100, "down");
    modern.kill().unwrap();
    modern.wait().unwrap();
    let killed = Instant::now();
    let code = wait_code(&mut run, 30, d, "down");
    let stderr = std::fs::read_to_string(d.join("down.stderr")).unwrap();
    assert_eq!(code, 3, "{stderr}");
    assert!(
        killed.elapsed() >= Duration::from_millis(1400),
        "the outage was waited out first ({:?} after the kill, {:?} in all)",
        killed.elapsed(),
        started.elapsed()
    );
    assert!(
        stderr.contains("the modern stack has been down for more than 1.5 s"),
        "{stderr}"
    );
    let doc = show(d, "s.db");
    assert_eq!(doc["run"]["status"], "interrupted");
    let s = &doc["summary"];
    assert_eq!(s["accounts_errored"], 0, "no outage became a verdict: {s}");
    let done = doc["run"]["accounts_done"].as_u64().unwrap();
    assert!(done < 1000, "accounts are left pending: {done}");
    assert!(
        stderr.contains(&format!("{} accounts pending", 1000 - done)),
        "{stderr}"
    );

    let mut modern = start_modern(d, port, &[]);
    let resumed = billshadow(&["run", "--resume", "latest", "--store", "s.db"], d);
    modern.kill().unwrap();
    modern.wait().unwrap();
    assert_eq!(resumed.code, 1, "{}", resumed.transcript());
    assert!(
        resumed
            .stderr
            .contains(&format!("{} of 1000 accounts to do", 1000 - done)),
        "{}",
        resumed.stderr
    );
    let doc = show(d, "s.db");
    assert_eq!(doc["run"]["status"], "completed");
    assert_eq!(doc["run"]["accounts_done"], 1000);
    assert_eq!(doc["summary"]["accounts_compared"], 1000);
    assert_eq!(doc["summary"]["accounts_errored"], 0);
}

/// Every request a test server saw: the account asked for, and when.
type RequestLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

/// A modern stack that bills every account one echo line, `delay` after it was asked, and logs
/// when each request came; with `rate_limited`, it first answers each account with 429 and
/// `Retry-After: 1`.
fn test_stack(rate_limited: bool, delay: Duration) -> (u16, RequestLog) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Instant)>::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let account = path
                .trim_start_matches("/v1/accounts/")
                .split('/')
                .next()
                .unwrap_or("")
                .to_owned();
            let first = {
                let mut log = seen.lock().unwrap();
                let first = !log.iter().any(|(a, _)| *a == account);
                log.push((account.clone(), Instant::now()));
                first
            };
            std::thread::sleep(delay);
            let response = if rate_limited && first {
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow".to_owned()
            } else {
                let body = serde_json::json!({"account_id": account, "lines": [{
                    "period_start": "2026-10-01", "period_end": "2026-10-31", "charge_code": "echo",
                    "line_type": "fee", "amount": "1.00", "currency": "USD",
                    "partition": "p0", "region": "us-east-1"}]})
                .to_string();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, log)
}

#[test]
fn a_429_with_retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("cohort.csv"),
        "account_id,customer_id,partition,region,period_start,period_end\n\
         a1,,p0,us-east-1,2026-10-01,2026-10-31\n\
         a2,,p0,us-east-1,2026-10-01,2026-10-31\n\
         a3,,p0,us-east-1,2026-10-01,2026-10-31\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("data")).unwrap();
    let (port, log) = test_stack(true, Duration::ZERO);
    write_spec(d, port, "", "\"--echo\",", "");
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    let spec = spec
        .lines()
        .filter(|l| !l.starts_with("start ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let log = log.lock().unwrap().clone();
    for account in ["a1", "a2", "a3"] {
        let times: Vec<Instant> = log
            .iter()
            .filter(|(a, _)| a == account)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(times.len(), 2, "{account}: asked twice: {log:?}");
        let waited = times[1] - times[0];
        assert!(
            waited >= Duration::from_millis(950),
            "{account}: retried after {waited:?}, not after Retry-After: 1"
        );
    }
    let doc = show(d, "s.db");
    assert_eq!(doc["summary"]["accounts_at_parity"], 3);
    assert_eq!(doc["retries"], 3);
}

#[test]
fn retry_errors_turns_stack_errors_into_verdicts_and_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hostile_cohort(d);
    let port = free_port();
    outage_spec(d, port, "");
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    let spec = spec.replace(
        "args = [\"--data\", \"data\",  \"{account_ids}\"]",
        "args = [\"--data\", \"data\", \"--echo\", \"{account_ids}\"]",
    );
    assert!(spec.contains("\"--echo\", \"{account_ids}\""), "{spec}");
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    // Both stacks echo; the modern one first answers half its requests with broken JSON.
    let mut modern = start_modern(
        d,
        port,
        &["--echo", "--malformed-rate", "0.5", "--seed", "3"],
    );
    let run = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
    );
    modern.kill().unwrap();
    modern.wait().unwrap();
    assert_eq!(run.code, 3, "{}", run.transcript());
    let before = show(d, "s.db");
    let errored = before["summary"]["accounts_errored"].as_u64().unwrap();
    assert!(errored > 0, "{}", before["summary"]);

    // A plain resume has nothing left to do; --retry-errors redoes the stack errors only.
    let mut modern = start_modern(d, port, &["--echo"]);
    let plain = billshadow(&["run", "--resume", "latest", "--store", "s.db"], d);
    assert_eq!(plain.code, 3, "{}", plain.transcript());
    assert!(
        plain
            .stderr
            .contains(&format!("0 of {} accounts to do", HOSTILE.len())),
        "{}",
        plain.stderr
    );
    let again = billshadow(
        &[
            "run",
            "--resume",
            "latest",
            "--retry-errors",
            "--store",
            "s.db",
        ],
        d,
    );
    modern.kill().unwrap();
    modern.wait().unwrap();
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(
        again
            .stderr
            .contains(&format!("{errored} of {} accounts to do", HOSTILE.len())),
        "{}",
        again.stderr
    );
    let after = show(d, "s.db");
    let s = &after["summary"];
    assert_eq!(s["accounts_errored"], 0, "{s}");
    assert_eq!(s["accounts_at_parity"], HOSTILE.len(), "{s}");
    assert_eq!(after["run"]["accounts_done"], HOSTILE.len());
    assert!(s["by_class"].get("stack_error").is_none(), "{s}");
    // The totals added up per cell as outcomes were stored hold every account once.
    let total = format!("{}.00", HOSTILE.len());
    assert_eq!(s["currencies"]["USD"]["legacy_total"], total, "{s}");
    assert_eq!(s["currencies"]["USD"]["modern_total"], total, "{s}");
    // --retry-errors needs --resume.
    let bad = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--retry-errors",
        ],
        d,
    );
    assert_eq!(bad.code, 2, "{}", bad.transcript());
    assert!(
        bad.stderr.contains("it needs --resume RUN"),
        "{}",
        bad.stderr
    );
}

#[test]
fn sigterm_mid_run_exits_130_with_the_run_interrupted_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 1000);
    let port = free_port();
    write_spec(
        d,
        port,
        "\"--slow-rate\", \"1\", \"--slow-ms\", \"15\"",
        "",
        "",
    );
    let mut run = spawn_run(d, "s.db", "term");
    wait_for_progress(d, "s.db", 100, "term");
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let code = wait_code(&mut run, 30, d, "term");
    let stderr = std::fs::read_to_string(d.join("term.stderr")).unwrap();
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("terminated (SIGTERM)"), "{stderr}");
    let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d).json();
    assert_eq!(runs["runs"][0]["status"], "interrupted");
    let done = runs["runs"][0]["accounts_done"].as_u64().unwrap();
    assert!(done < 1000, "{done}");

    wait_until_closed(port);
    let resumed = billshadow(&["run", "--resume", "latest", "--store", "s.db"], d);
    assert_eq!(resumed.code, 1, "{}", resumed.transcript());
    assert!(
        resumed
            .stderr
            .contains(&format!("{} of 1000 accounts to do", 1000 - done)),
        "{}",
        resumed.stderr
    );
    let doc = show(d, "s.db");
    assert_eq!(doc["run"]["status"], "completed");
    assert_eq!(doc["run"]["accounts_done"], 1000);
    assert_eq!(doc["summary"]["accounts_errored"], 0);
}

#[test]
fn a_failed_store_stops_the_stacks_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let accounts = 6000;
    let mut cohort =
        String::from("account_id,customer_id,partition,region,period_start,period_end\n");
    for i in 0..accounts {
        cohort.push_str(&format!("a{i},,p0,us-east-1,2026-10-01,2026-10-31\n"));
    }
    std::fs::write(d.join("cohort.csv"), cohort).unwrap();
    std::fs::create_dir_all(d.join("data")).unwrap();
    // About 200 accounts a second: all of them would take half a minute.
    let (port, log) = test_stack(false, Duration::from_millis(5));
    write_spec(d, port, "", "\"--echo\",", "");
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    let spec = spec
        .lines()
        .filter(|l| !l.starts_with("start ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    let mut run = spawn_run(d, "s.db", "store");
    wait_for_progress(d, "s.db", 100, "store");
    // From now on every outcome the store is given fails to be written.
    crate::support::runtime().block_on(async {
        let url = format!("sqlite://{}", d.join("s.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER broken BEFORE INSERT ON outcomes BEGIN SELECT RAISE(ABORT, 'the disk is gone'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let broken = log.lock().unwrap().len();
    let code = wait_code(&mut run, 30, d, "store");
    let stderr = std::fs::read_to_string(d.join("store.stderr")).unwrap();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("the disk is gone"), "{stderr}");
    assert!(stderr.contains("resume with --resume"), "{stderr}");
    // Once the store failed, nothing more was asked than what was in flight or queued.
    // (Requests sent before the run ended may still wait in the test server's backlog.)
    std::thread::sleep(Duration::from_millis(500));
    let served = log.lock().unwrap().len();
    assert!(
        served < broken + 1000,
        "{served} of {accounts} accounts were asked for, {broken} when the store broke: {stderr}"
    );
    let runs = billshadow(&["runs", "--store", "s.db", "--format", "json"], d).json();
    assert_eq!(runs["runs"][0]["status"], "failed");
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so split after its closing paren.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            out.push(child);
        }
    }
    out
}

#[test]
fn sigterm_while_a_stack_starts_exits_130_and_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 20);
    let port = free_port();
    write_spec(d, port, "", "", "");
    // A modern stack that never becomes ready: the run waits in its set-up.
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    let spec: String = spec
        .lines()
        .map(|l| {
            if l.starts_with("start =") {
                format!("start = {{ program = \"sleep\", args = [\"300\"], ready_address = \"127.0.0.1:{port}\", ready_timeout_ms = 120000 }}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    let mut run = spawn_run(d, "s.db", "setup");
    let deadline = Instant::now() + Duration::from_secs(30);
    let started = loop {
        let children = children_of(run.id());
        if !children.is_empty() {
            break children;
        }
        assert!(Instant::now() < deadline, "the stack was never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let code = wait_code(&mut run, 20, d, "setup");
    let stderr = std::fs::read_to_string(d.join("setup.stderr")).unwrap();
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("interrupted while setting up the run"),
        "{stderr}"
    );
    // The stack started for the run is stopped with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.iter().any(|pid| {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }) {
        assert!(
            Instant::now() < deadline,
            "a started stack outlived the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sample legacy program is started per batch and reads only its batch's rows, through an
/// index of each data file that is rebuilt when the file changes; rows of one account apart
/// are refused rather than half read.
#[test]
fn the_sample_legacy_program_reads_its_batch_through_an_index_rebuilt_when_its_data_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 30);
    let bill = |ids: &[&str]| {
        Command::new(crate::support::legacy())
            .args(["--data", "data"])
            .args(ids)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let first = bill(&["acct-000003", "acct-000029", "acct-nope"]);
    assert!(first.status.success(), "{first:?}");
    let first = String::from_utf8(first.stdout).unwrap();
    assert!(first.contains("acct-000003,cust-00001,"), "{first}");
    assert!(first.contains("acct-000029,cust-00009,"), "{first}");
    assert!(!first.contains("acct-nope"), "{first}");
    assert!(d.join("data/accounts.idx").is_file() && d.join("data/usage.idx").is_file());

    // The data changes under the index: the next batch reads the new rows.
    let accounts = std::fs::read_to_string(d.join("data/accounts.csv")).unwrap();
    std::fs::write(
        d.join("data/accounts.csv"),
        accounts.replace("acct-000003,cust-00001,", "acct-000003,cust-moved-here,"),
    )
    .unwrap();
    let second = String::from_utf8(bill(&["acct-000003"]).stdout).unwrap();
    assert!(second.contains("acct-000003,cust-moved-here,"), "{second}");
    assert!(!second.contains("cust-00001"), "{second}");

    // A usage row of an account apart from the account's other rows.
    let mut usage = std::fs::read_to_string(d.join("data/usage.csv")).unwrap();
    let used = usage
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    usage.push_str(&format!("{used},storage.gb,1.0\n"));
    std::fs::write(d.join("data/usage.csv"), usage).unwrap();
    let refused = bill(&[used.as_str()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("usage.csv: line")
            && stderr.contains(&format!("the rows of account {used} are not together")),
        "{stderr}"
    );
}
