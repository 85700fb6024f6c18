//! End-to-end tests of the migration controller: real runs of the sample stacks in a real
//! SQLite store, then `billshadow migrate` as real processes.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{BILLSHADOW, Run, billshadow_env, cohort, free_port, redact, write_spec};
use chrono::{DateTime, Datelike, TimeDelta, Utc};

const POLICY: &str = r#"
max_in_flight = 30
canary_steps = ["1", "5"]

[[cells]]
partitions = ["p0..p3"]
regions = ["us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-northeast-1", "me-south-1"]

[gate]
min_accounts = 20
min_coverage = "0.95"
max_mismatch_rate = "0.05"
critical_amount = { USD = "500", EUR = "460", GBP = "395", JPY = "75000", BHD = "188" }
consecutive_passing_runs = 1
max_stack_error_rate = "0.01"
approvals = 1

[[freeze]]
days_before_month_end = 2
days_after_month_start = 3
time_zone = "UTC"

[rollback]
on_critical_diff = true
"#;

/// A time after every run of the test and outside any freeze window.
fn open_time() -> DateTime<Utc> {
    let mut t = Utc::now() + TimeDelta::hours(2);
    while !(4..=26).contains(&t.day()) {
        t += TimeDelta::days(1);
    }
    t
}

/// The last day of `open_time`'s month, at noon: inside the month-end freeze.
fn frozen_time() -> DateTime<Utc> {
    let mut t = open_time();
    while (t + TimeDelta::days(1)).month() == t.month() {
        t += TimeDelta::days(1);
    }
    t
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// 1,200 accounts (about 50 per cell) run once through the sample stacks.
    fn new(extra_spec: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        cohort(dir.path(), 1200);
        write_spec(dir.path(), free_port(), "", "", extra_spec);
        std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
        let f = Fixture { dir };
        f.run_stacks(&[]);
        assert_eq!(f.migrate(&["init"], open_time()).code, 0);
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run_stacks(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ];
        args.extend_from_slice(extra);
        let run = billshadow_env(&args, self.path(), &[]);
        assert!(run.code == 0 || run.code == 1, "{}", run.transcript());
        run
    }

    fn migrate_as(&self, args: &[&str], now: DateTime<Utc>, actor: &str) -> Run {
        let mut all = args.to_vec();
        all.extend(["--as", actor]);
        self.migrate_env(&all, now, &[])
    }

    /// `migrate ARGS` on the fixture's policy and store at `now`, with `env` set.
    fn migrate_env(&self, args: &[&str], now: DateTime<Utc>, env: &[(&str, &str)]) -> Run {
        let now = now.to_rfc3339();
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        all.extend(["--policy", "policy.toml", "--store", "s.db", "--now", &now]);
        billshadow_env(&all, self.path(), env)
    }

    fn migrate(&self, args: &[&str], now: DateTime<Utc>) -> Run {
        self.migrate_as(args, now, "ops-bot")
    }

    fn state(&self, cell: &str) -> serde_json::Value {
        let status = self.migrate(&["status", "--format", "json"], open_time());
        let doc = status.json();
        doc["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cell"] == cell)
            .unwrap()
            .clone()
    }
}

const HEALTHY: &str = "p0/us-east-1";

impl Fixture {
    /// Runs SQL on the run store, as someone with access to the database could.
    fn exec(&self, sql: &str) {
        let db = self.path().join("s.db");
        crate::support::runtime().block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let done = sqlx::query(sql).execute(&pool).await.unwrap();
            assert!(done.rows_affected() > 0, "{sql} changed nothing");
            pool.close().await;
        })
    }
}

#[test]
fn insufficient_data_holds_a_cell_and_never_passes_it() {
    let f = Fixture::new("");
    std::fs::write(
        f.path().join("policy.toml"),
        POLICY.replace("min_accounts = 20", "min_accounts = 100000"),
    )
    .unwrap();
    assert_eq!(f.migrate(&["advance", HEALTHY], open_time()).code, 0); // legacy → shadow needs no gate
    let run = f.migrate(&["advance", HEALTHY], open_time());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("held at shadow: min_accounts"),
        "{}",
        run.stdout
    );
    let cell = f.state(HEALTHY);
    assert_eq!(cell["state"], "shadow");
    assert!(
        cell["held"]["reason"]
            .as_str()
            .unwrap()
            .contains("min_accounts")
    );
    let gate = f.migrate(&["gate", HEALTHY], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
}

#[test]
fn an_inconclusive_cell_is_held_then_passes_only_on_a_new_passing_run() {
    let f = Fixture::new("");
    std::fs::write(
        f.path().join("policy.toml"),
        POLICY.replace(
            "consecutive_passing_runs = 1",
            "consecutive_passing_runs = 2",
        ),
    )
    .unwrap();
    let t = open_time();
    f.migrate(&["advance", HEALTHY], t);
    let run = f.migrate(&["advance", HEALTHY], t);
    assert!(
        run.stdout.contains("consecutive_passing_runs: 1 spanning"),
        "{}",
        run.stdout
    );
    assert_eq!(f.state(HEALTHY)["verdict"], "inconclusive");
    // Releasing without new evidence stays held.
    assert_eq!(f.migrate(&["release", HEALTHY], t).code, 1);
    f.run_stacks(&[]);
    let run = f.migrate(&["advance", HEALTHY], t + TimeDelta::minutes(1));
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(f.state(HEALTHY)["state"], "canary");
    assert!(f.state(HEALTHY)["held"].is_null());
}

#[test]
fn an_expired_waiver_in_the_evidence_blocks_the_gate() {
    // p2/eu-west-1's proration defect, waived until the end of next year's January.
    let waiver = r#"
[[waiver]]
id = "W-PRORATION"
partition = "p2"
region = "eu-west-1"
reason = "modern prorates on 30-day months; fix in BILL-77"
ticket = "BILL-77"
owner = "billing@example.com"
expires = "2099-01-31"
"#;
    let f = Fixture::new(waiver);
    let cell = "p2/eu-west-1";
    let t = open_time();
    f.migrate(&["advance", cell], t);
    let before = f.migrate(&["gate", cell], t);
    assert_eq!(before.code, 0, "{}", before.transcript());
    let after_expiry = "2099-02-10T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let gate = f.migrate(&["gate", cell], after_expiry);
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout.contains("FAIL no_expired_waiver") && gate.stdout.contains("W-PRORATION"),
        "{}",
        gate.stdout
    );
}

/// Drives a healthy cell to its last canary step.
fn to_last_canary(f: &Fixture) {
    for _ in 0..3 {
        let run = f.migrate(&["advance", HEALTHY], open_time());
        assert_eq!(run.code, 0, "{}", run.transcript());
    }
    assert_eq!(f.state(HEALTHY)["label"], "canary(5%)");
}

#[test]
fn approvals_are_tied_to_evidence_and_never_by_the_initiator() {
    let f = Fixture::new("");
    to_last_canary(&f);
    let t = open_time();
    // Without approval: blocked.
    let run = f.migrate_as(&["advance", HEALTHY], t, "bob");
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("needs 1 approval(s)"), "{}", run.stdout);
    // The initiator's own approval does not count.
    assert_eq!(f.migrate_as(&["approve", HEALTHY], t, "bob").code, 0);
    let run = f.migrate_as(&["advance", HEALTHY], t, "bob");
    assert_eq!(run.code, 1, "{}", run.stdout);
    // Alice approves, then new evidence arrives: her approval is stale.
    assert_eq!(f.migrate_as(&["approve", HEALTHY], t, "alice").code, 0);
    f.run_stacks(&[]);
    let run = f.migrate_as(&["advance", HEALTHY], t + TimeDelta::minutes(1), "bob");
    assert_eq!(run.code, 1, "a stale approval was accepted: {}", run.stdout);
    // Alice approves the new evidence: bob's step goes through.
    assert_eq!(
        f.migrate_as(&["approve", HEALTHY], t + TimeDelta::minutes(2), "alice")
            .code,
        0
    );
    let run = f.migrate_as(&["advance", HEALTHY], t + TimeDelta::minutes(3), "bob");
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(f.state(HEALTHY)["state"], "cutover");
}

#[test]
fn a_month_end_freeze_blocks_advance_and_approval_but_not_rollback() {
    let f = Fixture::new("");
    f.migrate(&["advance", HEALTHY], open_time());
    f.migrate(&["advance", HEALTHY], open_time());
    assert_eq!(f.state(HEALTHY)["state"], "canary");
    let frozen = frozen_time();
    let run = f.migrate(&["advance", HEALTHY], frozen);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("freeze:"), "{}", run.stdout);
    assert!(
        f.migrate_as(&["approve", HEALTHY], frozen, "alice")
            .stdout
            .contains("freeze:")
    );
    let run = f.migrate(&["rollback", HEALTHY, "--reason", "INC-1"], frozen);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let routes = f.migrate(&["routes", "--format", "json"], frozen).json();
    let route = routes["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cell"] == HEALTHY)
        .unwrap()
        .clone();
    assert_eq!(route["authoritative"], "legacy");
    assert_eq!(route["state"], "rolled_back");
}

#[test]
fn a_critical_diff_in_canary_rolls_the_cell_back_automatically() {
    let f = Fixture::new("");
    f.migrate(&["advance", HEALTHY], open_time());
    f.migrate(&["advance", HEALTHY], open_time());
    assert_eq!(f.state(HEALTHY)["state"], "canary");
    // The modern stack starts answering with a fixed one-dollar bill: every account is far off.
    write_spec(f.path(), free_port(), "\"--echo\"", "", "");
    f.run_stacks(&[]);
    let run = f.migrate(&["advance", "--all"], open_time() + TimeDelta::minutes(5));
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains(&format!(
            "{HEALTHY}: canary(1%) → rolled_back (automatic rollback: run"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(f.state(HEALTHY)["state"], "rolled_back");
    let audit = f.migrate(&["audit"], open_time()).json();
    let last = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|a| a["cell"] == HEALTHY)
        .unwrap()
        .clone();
    assert_eq!(last["action"], "rollback");
    assert!(last["reason"].as_str().unwrap().contains("critical"));
}

#[test]
fn two_controllers_advancing_one_cell_at_once_never_both_win() {
    let f = Fixture::new("");
    let now = open_time().to_rfc3339();
    for round in 0..12 {
        // Back to shadow, then race two real processes to canary.
        if round > 0 {
            assert_eq!(f.migrate(&["rollback", HEALTHY], open_time()).code, 0);
        }
        assert_eq!(
            f.migrate(&["advance", HEALTHY, "--to", "shadow"], open_time())
                .code,
            0
        );
        let spawn = |actor: &str| {
            Command::new(BILLSHADOW)
                .args([
                    "migrate",
                    "advance",
                    HEALTHY,
                    "--to",
                    "canary",
                    "--policy",
                    "policy.toml",
                    "--store",
                    "s.db",
                    "--now",
                    &now,
                    "--as",
                    actor,
                ])
                .current_dir(f.path())
                .env("BILLSHADOW_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("controller-a"), spawn("controller-b"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = [a.status.code(), b.status.code()];
        let won = codes.iter().filter(|c| **c == Some(0)).count();
        assert_eq!(
            won,
            1,
            "round {round}: exactly one must win: {codes:?}\n{}\n{}",
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout)
        );
        let loser = if codes[0] == Some(0) { &b } else { &a };
        assert_eq!(
            loser.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&loser.stderr)
        );
        assert_eq!(f.state(HEALTHY)["label"], "canary(1%)");
    }
    assert_eq!(f.migrate(&["audit", "--verify"], open_time()).code, 0);
}

#[test]
fn editing_or_deleting_an_audit_record_is_detected() {
    let f = Fixture::new("");
    for _ in 0..3 {
        f.migrate(&["advance", HEALTHY], open_time());
    }
    let verify = f.migrate(&["audit", "--verify"], open_time());
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    assert!(
        verify.stdout.contains("audit log intact: 3 records"),
        "{}",
        verify.stdout
    );

    let db = f.path().join("s.db");
    let exec = |sql: &str| {
        crate::support::runtime().block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        })
    };
    exec("UPDATE audit SET actor = 'mallory' WHERE seq = 2");
    let verify = f.migrate(&["audit", "--verify"], open_time());
    assert_eq!(verify.code, 1);
    assert!(
        verify
            .stderr
            .contains("record 2 (advance p0/us-east-1 by mallory"),
        "{}",
        verify.stderr
    );
    exec("UPDATE audit SET actor = 'ops-bot' WHERE seq = 2");
    assert_eq!(f.migrate(&["audit", "--verify"], open_time()).code, 0);
    exec("DELETE FROM audit WHERE seq = 3");
    let verify = f.migrate(&["audit", "--verify"], open_time());
    assert_eq!(verify.code, 1);
    assert!(
        verify.stderr.contains("records were deleted"),
        "{}",
        verify.stderr
    );
}

#[test]
fn gate_output_in_every_format() {
    let f = Fixture::new("");
    let t = open_time();
    f.migrate(&["advance", "p3/us-east-1"], t);
    let junit = f.path().join("gate.xml");
    let text = f.migrate(
        &["gate", "p3/us-east-1", "--junit", junit.to_str().unwrap()],
        t,
    );
    assert_eq!(text.code, 1);
    insta::assert_snapshot!("gate_text", redact(&text.stdout));
    let md = f.migrate(&["gate", "p3/us-east-1", "--format", "md"], t);
    insta::assert_snapshot!("gate_md", redact(&md.stdout));
    let json = f.migrate(&["gate", "p3/us-east-1", "--format", "json"], t);
    let doc = json.json();
    assert_eq!(doc["verdict"], "fail");
    assert_eq!(doc["state"], "shadow");
    insta::assert_snapshot!("gate_json", redact(&json.stdout));

    // The JUnit file parses back and carries the numbers.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let suite = parsed
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("p3/us-east-1"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let mismatch = cases
        .iter()
        .find(|c| c.attribute("name") == Some("max_mismatch_rate"))
        .unwrap();
    let failure = mismatch
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    let message = failure.attribute("message").unwrap();
    assert!(
        message.contains("needs <= 0.05") && message.contains("accounts"),
        "{message}"
    );
    assert!(
        cases
            .iter()
            .any(|c| c.attribute("name") == Some("min_accounts")
                && c.children().all(|n| !n.has_tag_name("failure")))
    );
    insta::assert_snapshot!("gate_junit", redact(&xml));
}

#[test]
fn lint_points_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        POLICY.replace("time_zone = \"UTC\"", "time_zone = \"Mars/Olympus\""),
    )
    .unwrap();
    let run = billshadow_env(
        &["migrate", "lint", "--policy", "policy.toml"],
        dir.path(),
        &[],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("policy.toml:18:1: `Mars/Olympus` is not an IANA time zone"),
        "{}",
        run.stderr
    );
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let run = billshadow_env(
        &["migrate", "lint", "--policy", "policy.toml"],
        dir.path(),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn a_failing_hook_stops_the_transition_and_is_recorded() {
    let f = Fixture::new("");
    std::fs::write(
        f.path().join("policy.toml"),
        format!("hook = [\"false\", \"{{cell}}\", \"{{to}}\"]\n{POLICY}"),
    )
    .unwrap();
    let run = f.migrate(&["advance", HEALTHY], open_time());
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("the transition hook failed, so p0/us-east-1 stays legacy"),
        "{}",
        run.stderr
    );
    assert_eq!(f.state(HEALTHY)["state"], "legacy");
    let audit = f.migrate(&["audit"], open_time()).json();
    assert_eq!(audit["audit"][0]["action"], "advance_stopped");
    assert_eq!(f.migrate(&["audit", "--verify"], open_time()).code, 0);

    std::fs::write(
        f.path().join("policy.toml"),
        format!("hook = [\"true\", \"{{cell}}\"]\n{POLICY}"),
    )
    .unwrap();
    assert_eq!(f.migrate(&["advance", HEALTHY], open_time()).code, 0);
    assert_eq!(f.state(HEALTHY)["state"], "shadow");
}

const W_PRORATION: &str = r#"
[[waiver]]
id = "W-PRORATION"
partition = "p2"
region = "eu-west-1"
reason = "modern prorates on 30-day months; fix in BILL-77"
ticket = "BILL-77"
owner = "billing@example.com"
expires = "2099-01-31"
"#;

#[test]
fn a_stored_spec_that_does_not_parse_holds_the_gate_instead_of_hiding_an_expired_waiver() {
    let f = Fixture::new(W_PRORATION);
    let cell = "p2/eu-west-1";
    assert_eq!(f.migrate(&["advance", cell], open_time()).code, 0);
    // The spec the run stored is damaged: whether its waiver has expired cannot be known.
    f.exec("UPDATE runs SET spec_text = '[legacy' || spec_text");
    let after_expiry = "2099-02-10T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let gate = f.migrate(&["gate", cell], after_expiry);
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout.contains("wait evidence")
            && gate.stdout.contains("its stored spec does not parse")
            && gate.stdout.contains("W-PRORATION"),
        "{}",
        gate.stdout
    );
    let json = f
        .migrate(&["gate", cell, "--format", "json"], open_time())
        .json();
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    // Advancing holds the cell with the reason; a rollback stays possible.
    let advance = f.migrate(&["advance", cell], open_time());
    assert_eq!(advance.code, 1, "{}", advance.transcript());
    assert!(
        advance
            .stdout
            .contains("held at shadow: evidence: cannot be read"),
        "{}",
        advance.stdout
    );
    assert_eq!(f.state(cell)["state"], "shadow");
}

#[test]
fn an_unknown_stored_status_holds_the_gate() {
    let f = Fixture::new("");
    assert_eq!(f.migrate(&["advance", HEALTHY], open_time()).code, 0);
    assert_eq!(f.migrate(&["gate", HEALTHY], open_time()).code, 0);
    f.exec(
        "UPDATE outcomes SET status = 'PARITY' WHERE account_id = (SELECT o.account_id FROM outcomes o \
         JOIN cohort c ON c.run_id = o.run_id AND c.account_id = o.account_id \
         WHERE c.partition = 'p0' AND c.region = 'us-east-1' ORDER BY o.account_id LIMIT 1)",
    );
    let gate = f.migrate(&["gate", HEALTHY], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout
            .contains("1 of its outcomes have the unknown status `PARITY` in the store"),
        "{}",
        gate.stdout
    );
    // A run whose status was mangled does not drop out of the evidence unseen.
    f.exec("UPDATE outcomes SET status = 'parity' WHERE status = 'PARITY'");
    assert_eq!(f.migrate(&["gate", HEALTHY], open_time()).code, 0);
    f.exec("UPDATE runs SET status = 'complete'");
    let gate = f.migrate(&["gate", HEALTHY], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout.contains("unknown status `complete`"),
        "{}",
        gate.stdout
    );
}

#[test]
fn a_critical_amount_applies_to_its_own_currency_and_a_currency_without_one_holds() {
    let f = Fixture::new("");
    // Only a EUR threshold; p1/ap-northeast-1 bills in JPY and mismatches (all-units tiers).
    let eur_only = POLICY
        .replace(
            r#"critical_amount = { USD = "500", EUR = "460", GBP = "395", JPY = "75000", BHD = "188" }"#,
            r#"critical_amount = { EUR = "90.00" }"#,
        )
        .replace(r#"max_mismatch_rate = "0.05""#, r#"max_mismatch_rate = "1""#);
    assert_ne!(eur_only, POLICY);
    std::fs::write(f.path().join("policy.toml"), eur_only).unwrap();
    let yen = "p1/ap-northeast-1";
    assert_eq!(f.migrate(&["advance", yen], open_time()).code, 0);
    let gate = f.migrate(&["gate", yen, "--format", "json"], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    let doc = gate.json();
    assert_eq!(doc["verdict"], "inconclusive", "{doc}");
    let critical: Vec<&serde_json::Value> = doc["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "critical_diff")
        .collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert!(
        critical[0]["measured"].as_str().unwrap().ends_with(" JPY")
            && critical[0]["threshold"] == "a critical_amount in JPY (the policy has none)"
            && critical[0]["inconclusive"] == true,
        "{critical:?}"
    );
    // A EUR cell with diffs is judged against the EUR threshold, and passes under it.
    let euro = "p2/eu-west-1";
    assert_eq!(f.migrate(&["advance", euro], open_time()).code, 0);
    let gate = f.migrate(&["gate", euro, "--format", "json"], open_time());
    let doc = gate.json();
    let c = doc["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "critical_diff")
        .unwrap()
        .clone();
    assert!(c["measured"].as_str().unwrap().ends_with(" EUR"), "{c}");
    assert_eq!(c["threshold"], "< 90.00 EUR");
    assert_eq!(c["passed"], true, "{c}");
    assert_eq!(gate.code, 0, "{}", gate.transcript());

    // A threshold without a currency is refused where it is written.
    std::fs::write(
        f.path().join("policy.toml"),
        POLICY.replace(
            r#"critical_amount = { USD = "500", EUR = "460", GBP = "395", JPY = "75000", BHD = "188" }"#,
            r#"critical_amount = "500""#,
        ),
    )
    .unwrap();
    let lint = billshadow_env(
        &["migrate", "lint", "--policy", "policy.toml"],
        f.path(),
        &[],
    );
    assert_eq!(lint.code, 2, "{}", lint.transcript());
    assert!(
        lint.stderr
            .contains("policy.toml:13:19: [gate] critical_amount: `500` has no currency"),
        "{}",
        lint.stderr
    );
}

/// Issue 16: with no `--as` and no `USER`, the audit log said "unknown".
#[test]
fn the_actor_comes_from_the_ci_user_and_nothing_naming_one_is_refused_never_unknown() {
    let f = Fixture::new("");
    let advance = |env: &[(&str, &str)]| f.migrate_env(&["advance", HEALTHY], open_time(), env);
    let refused = advance(&[("USER", "")]);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(
        refused.stderr.contains("pass --as NAME"),
        "{}",
        refused.stderr
    );
    assert_eq!(f.state(HEALTHY)["state"], "legacy", "nothing moved");

    let moved = advance(&[("GITHUB_ACTOR", "octocat")]);
    assert_eq!(moved.code, 0, "{}", moved.transcript());
    let audit = f.migrate(&["audit"], open_time());
    assert!(audit.stdout.contains("octocat"), "{}", audit.stdout);
    assert!(!audit.stdout.contains("unknown"), "{}", audit.stdout);
}
