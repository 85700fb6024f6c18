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

/// People with keys, made by `billshadow migrate keygen` in each fixture; the policy lists the
/// first three as approvers (mallory is not in it).
const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "mallory"];

/// A day of dwell at a step, and a little more.
const DWELL: TimeDelta = TimeDelta::hours(25);

/// A time after every run of the test and outside any freeze window, even a few days of
/// dwell time later.
fn open_time() -> DateTime<Utc> {
    let mut t = Utc::now() + TimeDelta::hours(2);
    while !(4..=20).contains(&t.day()) {
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
    /// The run store's URL: `s.db` in the fixture's folder, or a PostgreSQL database.
    store: String,
}

impl Fixture {
    /// 1,200 accounts (about 50 per cell) run once through the sample stacks.
    fn new(extra_spec: &str) -> Fixture {
        Fixture::with_store(extra_spec, "s.db")
    }

    fn with_store(extra_spec: &str, store: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        cohort(dir.path(), 1200);
        write_spec(dir.path(), free_port(), "", "", extra_spec);
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        for who in PEOPLE.iter().chain(&["controller"]) {
            let key = format!("keys/{who}");
            let made = billshadow_env(
                &["migrate", "keygen", &key, "--comment", who],
                dir.path(),
                &[],
            );
            assert_eq!(made.code, 0, "{}", made.transcript());
        }
        let f = Fixture {
            dir,
            store: store.to_owned(),
        };
        f.write_policy(POLICY);
        f.run_stacks(&[]);
        assert_eq!(f.migrate(&["init"], open_time()).code, 0);
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn public_key(&self, who: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("keys/{who}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Writes `policy` with the approvers alice, bob and carol and the controller's key.
    fn write_policy(&self, policy: &str) {
        let mut text = policy.to_owned();
        for who in &PEOPLE[..3] {
            text.push_str(&format!(
                "\n[[approvers]]\nname = \"{who}\"\nkey = \"{}\"\n",
                self.public_key(who)
            ));
        }
        text.push_str(&format!(
            "\n[audit]\npublic_key = \"{}\"\n",
            self.public_key("controller")
        ));
        std::fs::write(self.path().join("policy.toml"), text).unwrap();
    }

    fn run_stacks(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            &self.store,
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
        all.extend([
            "--policy",
            "policy.toml",
            "--store",
            &self.store,
            "--now",
            &now,
            "--controller-key",
            "keys/controller",
        ]);
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
    f.write_policy(&POLICY.replace("min_accounts = 20", "min_accounts = 100000"));
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
    f.write_policy(&POLICY.replace(
        "consecutive_passing_runs = 1",
        "consecutive_passing_runs = 2",
    ));
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

/// Drives a healthy cell to its last canary step (a fresh run and a day at canary:1 before
/// canary:5); returns the time it got there.
fn to_last_canary(f: &Fixture) -> DateTime<Utc> {
    for _ in 0..2 {
        let run = f.migrate(&["advance", HEALTHY], open_time());
        assert_eq!(run.code, 0, "{}", run.transcript());
    }
    f.run_stacks(&[]);
    let t = open_time() + DWELL;
    let run = f.migrate(&["advance", HEALTHY, "--to", "canary:5"], t);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(f.state(HEALTHY)["label"], "canary(5%)");
    t
}

#[test]
fn approvals_are_signed_tied_to_evidence_and_never_by_the_initiator() {
    let f = Fixture::new("");
    f.write_policy(&POLICY.replace("approvals = 1", "approvals = 2"));
    let reached = to_last_canary(&f);
    f.run_stacks(&[]);
    let t = reached + DWELL;
    let approve = |who: &str, t: DateTime<Utc>| {
        f.migrate_as(
            &[
                "approve",
                HEALTHY,
                "--to",
                "cutover",
                "--key",
                &format!("keys/{who}"),
            ],
            t,
            who,
        )
    };
    let advance = |t: DateTime<Utc>| {
        f.migrate_as(
            &["advance", HEALTHY, "--to", "cutover", "--key", "keys/bob"],
            t,
            "bob",
        )
    };
    // Without approvals: blocked; without the initiator's signature: refused.
    let run = advance(t);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stdout.contains("needs 2 approval(s)"), "{}", run.stdout);
    // The initiator's own approval is stored but does not count.
    assert_eq!(approve("bob", t).code, 0);
    assert_eq!(approve("alice", t).code, 0);
    let run = advance(t);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("has 1"), "{}", run.stdout);
    // A key the policy does not list is refused.
    let run = approve("mallory", t);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("is not an approver in the policy"),
        "{}",
        run.stdout
    );
    // A forged signature: carol's signature over another message, passed as hers.
    let message = f.migrate_as(
        &["approve", HEALTHY, "--to", "cutover", "--print-message"],
        t,
        "carol",
    );
    assert_eq!(message.code, 0);
    assert!(
        message
            .stdout
            .starts_with("billshadow approval v1\ncell p0/us-east-1\nstep cutover\n"),
        "{}",
        message.stdout
    );
    let carol = ssh_key::PrivateKey::read_openssh_file(&f.path().join("keys/carol")).unwrap();
    let other = message.stdout.replace("cutover", "decommissioned");
    let forged = carol
        .sign("billshadow", ssh_key::HashAlg::Sha512, other.as_bytes())
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap();
    std::fs::write(f.path().join("forged.sig"), forged).unwrap();
    let run = f.migrate_as(
        &[
            "approve",
            HEALTHY,
            "--to",
            "cutover",
            "--signature",
            "forged.sig",
        ],
        t,
        "carol",
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("the signature does not verify"),
        "{}",
        run.stdout
    );
    // Carol approves the new evidence properly, with ssh-keygen's signature of the message.
    std::fs::write(f.path().join("msg.txt"), &message.stdout).unwrap();
    let signed = Command::new("ssh-keygen")
        .args([
            "-Y",
            "sign",
            "-n",
            "billshadow",
            "-f",
            "keys/carol",
            "msg.txt",
        ])
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let run = f.migrate_as(
        &[
            "approve",
            HEALTHY,
            "--to",
            "cutover",
            "--signature",
            "msg.txt.sig",
        ],
        t,
        "carol",
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    // New evidence makes every approval stale.
    f.run_stacks(&[]);
    let t2 = t + TimeDelta::minutes(5);
    let run = advance(t2);
    assert_eq!(run.code, 1, "a stale approval was accepted: {}", run.stdout);
    // Two valid approvals by other keys on the current evidence let bob's step through.
    assert_eq!(approve("alice", t2).code, 0);
    assert_eq!(approve("carol", t2).code, 0);
    let unsigned = f.migrate_as(&["advance", HEALTHY, "--to", "cutover"], t2, "bob");
    assert_eq!(unsigned.code, 1, "{}", unsigned.transcript());
    assert!(
        unsigned.stdout.contains("its initiator signs it"),
        "{}",
        unsigned.stdout
    );
    let run = advance(t2);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(f.state(HEALTHY)["state"], "cutover");
    let verify = f.migrate(&["audit", "--verify"], t2);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}

#[test]
fn each_step_needs_a_fresh_run_and_its_dwell_time() {
    let f = Fixture::new("");
    let t = open_time();
    assert_eq!(f.migrate(&["advance", HEALTHY], t).code, 0);
    assert_eq!(
        f.migrate(&["advance", HEALTHY, "--to", "canary"], t).code,
        0
    );
    // The same evidence again, at once: refused, naming both reasons.
    let run = f.migrate(
        &["advance", HEALTHY, "--to", "canary:5"],
        t + TimeDelta::hours(1),
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("no completed run has started since canary:1 was taken")
            && run
                .stdout
                .contains("min_step_hours = 24: canary:1 was taken 1 h ago"),
        "{}",
        run.stdout
    );
    let status = f.state(HEALTHY);
    assert_eq!(status["next"], "canary:5", "{status}");
    // After the dwell time, still the same evidence: refused for the run alone.
    let run = f.migrate(&["advance", HEALTHY, "--to", "canary:5"], t + DWELL);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("no completed run has started")
            && !run.stdout.contains("min_step_hours"),
        "{}",
        run.stdout
    );
    // A new passing run, after the dwell time: it advances.
    f.run_stacks(&[]);
    let run = f.migrate(&["advance", HEALTHY, "--to", "canary:5"], t + DWELL);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(f.state(HEALTHY)["label"], "canary(5%)");
    let gate = f.migrate(&["gate", HEALTHY, "--format", "json"], t + DWELL);
    assert!(gate.stdout.contains("\"cutover\""), "{}", gate.stdout);
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
    assert_eq!(last["action"], "rollback_completed");
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
                    "--controller-key",
                    "keys/controller",
                ])
                .current_dir(f.path())
                .env("BILLSHADOW_LOG", "warn")
                .env("BILLSHADOW_FAKE_CLOCK", "1")
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

/// The store's three files, copied aside and back: each tamper starts from the same store.
fn snapshot(dir: &Path, from: &str, to: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let source = dir.join(format!("{from}{suffix}"));
        let target = dir.join(format!("{to}{suffix}"));
        let _ = std::fs::remove_file(&target);
        if source.exists() {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

/// The record hash as the controller computes it (the chain's documented form).
fn record_hash(prev: &str, r: &sqlx::sqlite::SqliteRow) -> String {
    use sha2::Digest;
    use sqlx::Row;
    let body = serde_json::json!({
        "seq": r.get::<i64, _>("seq"), "at": r.get::<String, _>("at"), "actor": r.get::<String, _>("actor"),
        "cell": r.get::<String, _>("cell"), "action": r.get::<String, _>("action"), "from": r.get::<String, _>("from_state"),
        "to": r.get::<String, _>("to_state"), "reason": r.get::<String, _>("reason"), "policy_hash": r.get::<String, _>("policy_hash"),
        "evidence": r.get::<String, _>("evidence"),
    });
    let digest = sha2::Sha256::digest(format!("{prev}\n{body}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Recomputes every hash of the chain and the head, as someone with write access but
/// without the controller's key could.
fn recompute_chain(f: &Fixture) {
    let db = f.path().join("s.db");
    crate::support::runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query("SELECT * FROM audit ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        let mut prev = String::new();
        let mut seq = 0;
        for r in &rows {
            use sqlx::Row;
            seq = r.get::<i64, _>("seq");
            let hash = record_hash(&prev, r);
            sqlx::query("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?")
                .bind(&prev)
                .bind(&hash)
                .bind(seq)
                .execute(&pool)
                .await
                .unwrap();
            prev = hash;
        }
        sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
            .bind(seq)
            .bind(&prev)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    })
}

#[test]
fn every_kind_of_tampering_with_the_audit_log_or_the_cells_is_detected() {
    let f = Fixture::new("");
    let t = open_time();
    for _ in 0..2 {
        assert_eq!(f.migrate(&["advance", HEALTHY], t).code, 0);
    }
    // The head as exported before the last record (an approval, which changes no cell).
    let checkpoint = f.migrate(&["audit", "--head"], t);
    assert_eq!(checkpoint.code, 0, "{}", checkpoint.transcript());
    std::fs::write(f.path().join("head.json"), &checkpoint.stdout).unwrap();
    let cell = "p1/us-east-1";
    assert_eq!(f.migrate(&["advance", cell], t).code, 0);
    f.run_stacks(&[]);
    snapshot(f.path(), "s.db", "before-approval.db");
    let approve = f.migrate_as(&["approve", HEALTHY, "--key", "keys/alice"], t, "alice");
    assert_eq!(approve.code, 0, "{}", approve.transcript());
    let final_head = f.migrate(&["audit", "--head"], t).stdout;
    std::fs::write(f.path().join("final-head.json"), &final_head).unwrap();
    let verify = f.migrate(&["audit", "--verify", "--since", "head.json"], t);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    assert!(
        verify
            .stdout
            .contains("audit log intact: 7 records, every hash and signature matches"),
        "{}",
        verify.stdout
    );
    snapshot(f.path(), "s.db", "clean.db");

    let head_before_approval: (i64, String, String) = crate::support::runtime().block_on(async {
        use sqlx::Row;
        let db = f.path().join("before-approval.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let r = sqlx::query("SELECT seq, hash, signature FROM audit_head")
            .fetch_one(&pool)
            .await
            .unwrap();
        let head = (r.get(0), r.get(1), r.get(2));
        pool.close().await;
        head
    });
    type Tamper<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Tamper, &str, &str)> = vec![
        (
            "edit",
            Box::new(|| f.exec("UPDATE audit SET actor = 'mallory' WHERE seq = 2")),
            "",
            "record 2 (advance_completed p0/us-east-1 by mallory",
        ),
        (
            "delete",
            Box::new(|| f.exec("DELETE FROM audit WHERE seq = 3")),
            "",
            "record 3 is missing",
        ),
        (
            "insert",
            Box::new(|| {
                f.exec("INSERT INTO audit SELECT seq + 1, at, actor, cell, action, from_state, to_state, reason, policy_hash, evidence, hash, hash, signature FROM audit WHERE seq = 7")
            }),
            "",
            "record 8 (approve p0/us-east-1 by alice",
        ),
        (
            "reorder",
            Box::new(|| {
                f.exec("UPDATE audit SET seq = 100 WHERE seq = 2");
                f.exec("UPDATE audit SET seq = 2 WHERE seq = 3");
                f.exec("UPDATE audit SET seq = 3 WHERE seq = 100");
            }),
            "",
            "record 2 (advance_begun p0/us-east-1",
        ),
        (
            "recompute the chain without the key",
            Box::new(|| {
                f.exec("UPDATE audit SET reason = 'nothing to see' WHERE seq = 2");
                recompute_chain(&f);
            }),
            "",
            "record 2 (advance_completed p0/us-east-1 by ops-bot",
        ),
        (
            "edit a cell",
            Box::new(|| f.exec("UPDATE cells SET stage = 'cutover' WHERE cell = 'p0/us-east-1'")),
            "",
            "the cell p0/us-east-1 is cutover in the store but the audit log says canary(1%)",
        ),
        (
            "edit when a cell took its step",
            Box::new(|| {
                f.exec("UPDATE cells SET entered_at = '2020-01-01T00:00:00+00:00', fresh_after = '2020-01-01T00:00:00+00:00' WHERE cell = 'p0/us-east-1'")
            }),
            "",
            "the cell p0/us-east-1 is not the state the audit log recorded",
        ),
        (
            "forge a pending transition",
            Box::new(|| {
                f.exec(r#"UPDATE cells SET pending = '{"action":"advance","stage":"cutover","step":0,"held":null,"from_label":"shadow","to_label":"cutover","since":"2026-11-25T21:32:50Z","actor":"alice","reason":"the gate passed","fresh_after":null}' WHERE cell = 'p1/us-east-1'"#)
            }),
            "",
            "the cell p1/us-east-1 has the pending transition cutover in the store but the audit log says none",
        ),
        (
            "move a cell's version",
            Box::new(|| {
                f.exec("UPDATE cells SET version = version + 1 WHERE cell = 'p1/us-east-1'")
            }),
            "",
            "the cell p1/us-east-1 is at version 4 but the audit log records 2 changes",
        ),
        (
            "truncate the tail, with the head it had then",
            Box::new(|| {
                f.exec("DELETE FROM audit WHERE seq = 7");
                f.exec("DELETE FROM approvals");
                let (seq, hash, signature) = &head_before_approval;
                f.exec(&format!(
                    "UPDATE audit_head SET seq = {seq}, hash = '{hash}', signature = '{signature}'"
                ));
            }),
            "final-head.json",
            "the checkpoint names record 7 but the log ends at record 6",
        ),
    ];
    for (name, tamper, checkpoint, expected) in &cases {
        snapshot(f.path(), "clean.db", "s.db");
        tamper();
        let mut args = vec!["audit", "--verify"];
        if !checkpoint.is_empty() {
            // Without the checkpoint the truncated log is a valid shorter one.
            let plain = f.migrate(&args, t);
            assert_eq!(plain.code, 0, "{name}: {}", plain.transcript());
            args.extend(["--since", checkpoint]);
        }
        let verify = f.migrate(&args, t);
        assert_eq!(
            verify.code,
            1,
            "{name} went unnoticed: {}",
            verify.transcript()
        );
        assert!(
            verify.stderr.contains(expected),
            "{name}: {}",
            verify.stderr
        );
    }
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
    std::fs::write(
        dir.path().join("policy.toml"),
        POLICY.replace("approvals = 1", "approvals = 0"),
    )
    .unwrap();
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
    f.write_policy(&format!(
        "hook = [\"false\", \"{{cell}}\", \"{{to}}\"]\n{POLICY}"
    ));
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
    assert_eq!(audit["audit"][0]["action"], "advance_begun");
    assert_eq!(audit["audit"][1]["action"], "advance_abandoned");
    assert_eq!(f.migrate(&["audit", "--verify"], open_time()).code, 0);

    f.write_policy(&format!("hook = [\"true\", \"{{cell}}\"]\n{POLICY}"));
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

/// Issue 9, item 10: a stored diff the gate cannot read must hold it, not drop out of the
/// evidence (a damaged flag or delta read as "not failing" would pass the cell).
#[test]
fn a_stored_diff_that_does_not_read_back_holds_the_gate() {
    let f = Fixture::new(W_PRORATION);
    let cell = "p2/eu-west-1";
    assert_eq!(f.migrate(&["advance", cell], open_time()).code, 0);
    assert_eq!(f.migrate(&["gate", cell], open_time()).code, 0);
    // The waived diffs' failing flag damaged: whether they fail cannot be known.
    f.exec("UPDATE diffs SET failing = 2 WHERE waiver = 'W-PRORATION'");
    let gate = f.migrate(&["gate", cell], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout.contains("has the failing flag 2"),
        "{}",
        gate.stdout
    );
    let json = f
        .migrate(&["gate", cell, "--format", "json"], open_time())
        .json();
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    // A failing diff whose delta is not a decimal: its size cannot be judged.
    f.exec("UPDATE diffs SET failing = 0 WHERE failing = 2");
    f.exec(
        "UPDATE diffs SET failing = 1, delta = '1,50' WHERE rowid = \
         (SELECT MIN(rowid) FROM diffs WHERE waiver = 'W-PRORATION')",
    );
    let gate = f.migrate(&["gate", cell], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    assert!(
        gate.stdout.contains("has the delta `1,50`, not a decimal"),
        "{}",
        gate.stdout
    );
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
    f.write_policy(&eur_only);
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

/// A `billshadow migrate` process, started (not waited for).
fn spawn_migrate(f: &Fixture, args: &[&str], actor: &str) -> std::process::Child {
    let now = open_time().to_rfc3339();
    Command::new(BILLSHADOW)
        .arg("migrate")
        .args(args)
        .args([
            "--policy",
            "policy.toml",
            "--store",
            &f.store,
            "--now",
            &now,
            "--as",
            actor,
        ])
        .args(["--controller-key", "keys/controller"])
        .current_dir(f.path())
        .env("BILLSHADOW_LOG", "warn")
        .env("BILLSHADOW_FAKE_CLOCK", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// 100 rounds of three real controllers at once: two cells advancing into canary with room
/// for one more (`max_in_flight`), and an approval of a third cell's step. The limit is never
/// exceeded, every approval that succeeded has its audit record, and the log verifies.
fn racing_controllers_never_exceed_a_limit_or_lose_an_audit_record(f: &Fixture) {
    f.write_policy(&POLICY.replace("max_in_flight = 30", "max_in_flight = 2"));
    let t = open_time();
    let (racers, approved) = (["p1/us-east-1", "p2/us-east-1"], HEALTHY);
    for cell in [HEALTHY, racers[0], racers[1]] {
        assert_eq!(f.migrate(&["advance", cell, "--to", "shadow"], t).code, 0);
    }
    assert_eq!(
        f.migrate(&["advance", HEALTHY, "--to", "canary"], t).code,
        0
    );
    // A run after the step: the evidence HEALTHY's next step (canary:5) is approved on.
    f.run_stacks(&[]);
    let mut approvals = 0;
    for round in 0..100 {
        let children = [
            spawn_migrate(f, &["advance", racers[0], "--to", "canary"], "controller-a"),
            spawn_migrate(f, &["advance", racers[1], "--to", "canary"], "controller-b"),
            spawn_migrate(
                f,
                &[
                    "approve",
                    approved,
                    "--to",
                    "canary:5",
                    "--key",
                    "keys/alice",
                ],
                "alice",
            ),
        ];
        let out: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let codes: Vec<_> = out.iter().map(|o| o.status.code()).collect();
        let shown = || {
            out.iter()
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            codes.iter().all(|c| matches!(c, Some(0 | 1))),
            "round {round}: {codes:?}\n{}",
            shown()
        );
        let status = f.migrate(&["status", "--format", "json"], t).json();
        let in_flight = status["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "canary" || c["state"] == "cutover")
            .count();
        assert!(
            in_flight <= 2,
            "round {round}: max_in_flight exceeded: {in_flight}\n{}",
            shown()
        );
        let winners: Vec<&str> = racers
            .iter()
            .zip(&codes)
            .filter(|(_, c)| **c == Some(0))
            .map(|(cell, _)| *cell)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {codes:?}\n{}", shown());
        if codes[2] == Some(0) {
            approvals += 1;
        } else {
            panic!("round {round}: the approval failed: {}", shown());
        }
        assert_eq!(f.migrate(&["rollback", winners[0]], t).code, 0);
        assert_eq!(
            f.migrate(&["advance", winners[0], "--to", "shadow"], t)
                .code,
            0
        );
    }
    let audit = f.migrate(&["audit"], t).json();
    let recorded = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "approve" && r["cell"] == approved)
        .count();
    assert_eq!(
        recorded, approvals,
        "every approval that succeeded has its audit record, and no other"
    );
    assert_eq!(approvals, 100, "an approval failed in a race");
    let verify = f.migrate(&["audit", "--verify"], t);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}

#[test]
fn racing_controllers_on_sqlite() {
    racing_controllers_never_exceed_a_limit_or_lose_an_audit_record(&Fixture::new(""));
}

#[test]
fn racing_controllers_on_postgres() {
    let pg = crate::support::postgres::Postgres::start();
    pg.create_database("races");
    let f = Fixture::with_store("", &pg.url("races"));
    racing_controllers_never_exceed_a_limit_or_lose_an_audit_record(&f);
}

#[test]
fn a_controller_killed_after_its_hook_leaves_a_pending_transition_that_reconcile_completes() {
    let f = Fixture::new("");
    // The hook writes the router's route for the cell, then waits while `slow` exists.
    std::fs::write(
        f.path().join("hook.sh"),
        "printf '%s' \"$2\" > \"route-$(echo \"$1\" | tr / _)\"\nwhile [ -e slow ]; do sleep 0.05; done\n",
    )
    .unwrap();
    f.write_policy(&format!(
        "hook = [\"sh\", \"hook.sh\", \"{{cell}}\", \"{{to}}\"]\n{POLICY}"
    ));
    let t = open_time();
    assert_eq!(f.migrate(&["advance", HEALTHY], t).code, 0);
    std::fs::write(f.path().join("slow"), "").unwrap();
    let route = f.path().join("route-p0_us-east-1");
    let mut child = spawn_migrate(&f, &["advance", HEALTHY, "--to", "canary"], "ops-bot");
    let waited = std::time::Instant::now();
    while std::fs::read_to_string(&route).unwrap_or_default() != "canary(1%)" {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the hook never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: after the hook, before completion
    child.wait().unwrap();
    std::fs::remove_file(f.path().join("slow")).unwrap();
    // The router says canary, the store says shadow with the transition pending: visible.
    let cell = f.state(HEALTHY);
    assert_eq!(cell["state"], "shadow", "{cell}");
    assert_eq!(cell["pending"]["to_label"], "canary(1%)", "{cell}");
    let status = f.migrate(&["status"], t);
    assert!(
        status.stdout.contains("is pending") && status.stdout.contains("reconcile"),
        "{}",
        status.stdout
    );
    // Nothing else moves the cell meanwhile.
    let blocked = f.migrate(&["advance", HEALTHY], t);
    assert_eq!(blocked.code, 1, "{}", blocked.transcript());
    assert_eq!(f.migrate(&["audit", "--verify"], t).code, 0);
    let reconcile = f.migrate(&["reconcile"], t);
    assert_eq!(reconcile.code, 0, "{}", reconcile.transcript());
    assert!(
        reconcile.stdout.contains("shadow → canary(1%) completed"),
        "{}",
        reconcile.stdout
    );
    let cell = f.state(HEALTHY);
    assert_eq!(cell["label"], "canary(1%)");
    assert!(cell["pending"].is_null());
    assert_eq!(
        std::fs::read_to_string(&route).unwrap(),
        cell["label"].as_str().unwrap()
    );
    let routes = f.migrate(&["routes", "--format", "json"], t).json();
    let r = routes["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cell"] == HEALTHY)
        .unwrap()
        .clone();
    assert_eq!(r["state"], "canary", "{r}");
    let verify = f.migrate(&["audit", "--verify"], t);
    assert_eq!(verify.code, 0, "{}", verify.transcript());

    // Killed again, holding the cell: `reconcile --revert` puts the router back instead.
    std::fs::write(f.path().join("slow"), "").unwrap();
    let mut child = spawn_migrate(&f, &["hold", HEALTHY, "--reason", "INC-9"], "ops-bot");
    let waited = std::time::Instant::now();
    while !std::fs::read_to_string(&route)
        .unwrap_or_default()
        .starts_with("held(INC-9)")
    {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the hook never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(f.path().join("slow")).unwrap();
    let revert = f.migrate(&["reconcile", HEALTHY, "--revert"], t);
    assert_eq!(revert.code, 0, "{}", revert.transcript());
    assert!(
        revert.stdout.contains("reverted; stays canary(1%)"),
        "{}",
        revert.stdout
    );
    assert_eq!(std::fs::read_to_string(&route).unwrap(), "canary(1%)");
    let cell = f.state(HEALTHY);
    assert_eq!(cell["label"], "canary(1%)", "{cell}");
    assert!(
        cell["pending"].is_null() && cell["held"].is_null(),
        "{cell}"
    );
    let verify = f.migrate(&["audit", "--verify"], t);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
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

#[test]
fn a_forged_pending_transition_is_never_reconciled_and_edits_stop_every_move() {
    let f = Fixture::new("");
    let t = open_time();
    let cell = "p1/us-east-1";
    assert_eq!(f.migrate(&["advance", cell], t).code, 0);
    f.exec(r#"UPDATE cells SET pending = '{"action":"advance","stage":"cutover","step":0,"held":null,"from_label":"shadow","to_label":"cutover","since":"2026-11-25T21:32:50Z","actor":"alice","reason":"the gate passed","fresh_after":null}' WHERE cell = 'p1/us-east-1'"#);
    let reconcile = f.migrate(&["reconcile"], t);
    assert_eq!(reconcile.code, 1, "{}", reconcile.transcript());
    assert!(
        reconcile
            .transcript()
            .contains("not reconciled: the audit log does not verify"),
        "{}",
        reconcile.transcript()
    );
    assert_eq!(f.state(cell)["state"], "shadow");
    // Edits that would skip a step's evidence or dwell time stop every move.
    f.exec("UPDATE cells SET pending = '' WHERE cell = 'p1/us-east-1'");
    assert_eq!(f.migrate(&["audit", "--verify"], t).code, 0);
    assert_eq!(f.migrate(&["advance", HEALTHY], t).code, 0);
    assert_eq!(f.migrate(&["advance", HEALTHY], t).code, 0);
    f.exec("UPDATE cells SET entered_at = '2020-01-01T00:00:00+00:00', fresh_after = '2020-01-01T00:00:00+00:00' WHERE cell = 'p0/us-east-1'");
    f.run_stacks(&[]);
    let advance = f.migrate(&["advance", HEALTHY, "--to", "canary:5"], t);
    assert_eq!(advance.code, 1, "{}", advance.transcript());
    assert!(
        advance.stdout.contains("the audit log does not verify"),
        "{}",
        advance.transcript()
    );
    assert_eq!(f.state(HEALTHY)["label"], "canary(1%)");
    // A hold needs its reason.
    let hold = f.migrate(&["hold", cell, "--reason", " "], t);
    assert_eq!(hold.code, 2, "{}", hold.transcript());
    // A clock set by hand moves nothing unless the run says it is a rehearsal.
    let now = t.to_rfc3339();
    let mut advance = crate::support::command(
        &[
            "migrate",
            "advance",
            cell,
            "--policy",
            "policy.toml",
            "--store",
            "s.db",
        ],
        f.path(),
    );
    advance.args(["--now", &now, "--controller-key", "keys/controller"]);
    advance.env_remove("BILLSHADOW_FAKE_CLOCK");
    let out = advance.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs BILLSHADOW_FAKE_CLOCK=1"));
}

#[test]
fn a_customer_total_mismatch_alone_blocks_the_gate_and_is_counted_in_runs() {
    let f = Fixture::new("");
    assert_eq!(f.migrate(&["advance", HEALTHY], open_time()).code, 0);
    let gate = f.migrate(&["gate", HEALTHY, "--format", "json"], open_time());
    assert_eq!(gate.code, 0, "{}", gate.transcript());
    let counted = |f: &Fixture| {
        let dir = f.path();
        let runs =
            crate::support::billshadow(&["runs", "--store", &f.store, "--format", "json"], dir)
                .json();
        let show = crate::support::billshadow(
            &["show", "latest", "--store", &f.store, "--format", "json"],
            dir,
        )
        .json();
        let run = &runs["runs"][0];
        let summary = &show["summary"];
        assert_eq!(run["customers_compared"], summary["customers_compared"]);
        assert_eq!(run["customers_mismatched"], summary["customers_mismatched"]);
        assert_eq!(run["verdict"], summary["verdict"]);
        assert!(summary["customers_compared"].as_u64().unwrap() > 100);
        summary["customers_mismatched"].as_u64().unwrap()
    };
    let before = counted(&f);
    // One account of the healthy cell: its own outcome untouched (parity), but its
    // customer's amount 7 more on the modern side, as a customer drifting across its
    // accounts would be.
    f.exec(
        "UPDATE customer_totals SET modern_total = CAST(CAST(modern_total AS REAL) + 7 AS TEXT), \
         modern_unflagged = CAST(CAST(modern_unflagged AS REAL) + 7 AS TEXT) \
         WHERE account_id = (SELECT account_id FROM cohort WHERE partition = 'p0' AND region = 'us-east-1' \
         ORDER BY account_id LIMIT 1)",
    );
    assert_eq!(counted(&f), before + 1);
    let gate = f.migrate(&["gate", HEALTHY, "--format", "json"], open_time());
    assert_eq!(gate.code, 1, "{}", gate.transcript());
    let doc = gate.json();
    let failing: Vec<&str> = doc["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The customer alone blocks it: the accounts' criteria still pass.
    assert!(failing.contains(&"no_customer_mismatch"), "{doc:#}");
    assert!(
        !failing
            .iter()
            .any(|c| c.starts_with("max_") || c.starts_with("min_")),
        "{doc:#}"
    );
}
