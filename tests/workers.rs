//! Several workers on one run (issue 14): the same cohort run on SQLite, on PostgreSQL, split
//! in two static shards in parallel and shared by three workers that lease their accounts
//! gives the same summary, cells, diffs and customer totals; a worker killed with SIGKILL
//! mid-run has its accounts taken by another once its lease ends, and every account is
//! stored exactly once. Real processes, a real PostgreSQL server, the sample stacks.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    billshadow, cohort, command, free_port, postgres::Postgres, wait_for_listener, write_spec,
};
use serde_json::Value;

/// The sample stacks' spec with the modern service started by the test (once, for every
/// worker: a worker started from the stored spec would start another on the same address).
fn shared_spec(dir: &Path, port: u16) {
    write_spec(dir, port, "", "", "");
    let spec = std::fs::read_to_string(dir.join("spec.toml")).unwrap();
    let spec: Vec<&str> = spec.lines().filter(|l| !l.starts_with("start =")).collect();
    std::fs::write(dir.join("spec.toml"), spec.join("\n")).unwrap();
}

/// The sample modern service on 127.0.0.1:`port`, answering each request after `slow_ms`.
fn modern(dir: &Path, port: u16, slow_ms: u32) -> Child {
    let address = format!("127.0.0.1:{port}");
    let slow = slow_ms.to_string();
    let child = Command::new(crate::support::modern())
        .args(["--data", "data", "--listen", &address])
        .args(["--slow-rate", "1", "--slow-ms", &slow])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(port, "the modern stack");
    child
}

/// `billshadow run ARGS --store STORE` started, its stderr kept in `NAME.stderr`.
/// A PostgreSQL store, a cohort of `accounts` and the modern stack answering in `slow_ms`,
/// for leasing workers that all run the same command (`leased_args`).
struct Leased {
    pg: Postgres,
    dir: tempfile::TempDir,
    port: u16,
    stack: Child,
    store: String,
}

fn leased(accounts: u32, slow_ms: u32) -> Leased {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, accounts);
    let port = free_port();
    shared_spec(d, port);
    let stack = modern(d, port, slow_ms);
    pg.create_database("store");
    let store = pg.url("store");
    Leased {
        pg,
        dir,
        port,
        stack,
        store,
    }
}

/// Every worker the same command (`--run-id`): one creates the run, the others join it.
fn leased_args<'a>(run: &'a str, lease: &'a str, concurrency: &'a str) -> [&'a str; 10] {
    [
        "--spec",
        "spec.toml",
        "--cohort",
        "cohort.csv",
        "--run-id",
        run,
        "--lease",
        lease,
        "--concurrency",
        concurrency,
    ]
}

fn worker(dir: &Path, store: &str, name: &str, args: &[&str]) -> Child {
    command(&["run", "--store", store, "--no-progress"], dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for a worker's end; its exit code.
fn finish(mut child: Child, dir: &Path, name: &str) -> i32 {
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    status.code().unwrap_or(-1)
}

fn stderr_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
}

/// What a run shows that must not depend on how many workers did it, nor which.
fn shown(dir: &Path, store: &str, run: &str) -> Value {
    let show = billshadow(&["show", run, "--store", store, "--format", "json"], dir);
    assert_eq!(show.code, 1, "{}", show.transcript());
    let doc = show.json();
    assert_eq!(doc["run"]["status"], "completed", "{doc:#}");
    let mut diffs = doc["diffs"].clone();
    // Where a line sat in a stack's answer depends on the batch it was asked in.
    for diff in diffs.as_array_mut().unwrap() {
        let map = diff.as_object_mut().unwrap();
        map.remove("legacy_line");
        map.remove("modern_line");
    }
    serde_json::json!({"summary": doc["summary"], "cells": doc["cells"], "diffs": diffs})
}

/// The outcomes a PostgreSQL store holds per account: each must be there exactly once.
fn outcomes_per_account(store: &str) -> Vec<(String, i64)> {
    crate::support::runtime().block_on(async {
        let pool = sqlx::PgPool::connect(store).await.unwrap();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.account_id, CAST(COUNT(o.account_id) AS BIGINT) FROM cohort c \
             LEFT JOIN outcomes o ON o.run_id = c.run_id AND o.account_id = c.account_id \
             GROUP BY c.account_id ORDER BY c.account_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    })
}

#[test]
fn one_run_split_every_way_gives_the_same_summary_diffs_and_customer_totals() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 600);
    let port = free_port();
    shared_spec(d, port);
    let mut stack = modern(d, port, 0);
    let new = ["--spec", "spec.toml", "--cohort", "cohort.csv"];

    // One worker, SQLite.
    let one = worker(d, "one.db", "one", &[&new[..], &["--run-id", "r"]].concat());
    assert_eq!(finish(one, d, "one"), 1, "{}", stderr_of(d, "one"));
    let reference = shown(d, "one.db", "r");
    assert_eq!(reference["summary"]["accounts_compared"], 600);
    assert!(reference["summary"]["customers_compared"].as_u64().unwrap() > 100);

    // One worker, PostgreSQL.
    pg.create_database("single");
    let single = pg.url("single");
    let w = worker(
        d,
        &single,
        "single",
        &[&new[..], &["--run-id", "r"]].concat(),
    );
    assert_eq!(finish(w, d, "single"), 1, "{}", stderr_of(d, "single"));
    assert_eq!(shown(d, &single, "r"), reference);

    // Two static shards in parallel, PostgreSQL and SQLite: the last one to end completes
    // the run; the first says its shard is done and exits 4 (no verdict yet), never 0.
    pg.create_database("shards");
    for store in [pg.url("shards"), "shards.db".to_owned()] {
        let shards: Vec<Child> = ["0/2", "1/2"]
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let args = [&new[..], &["--run-id", "r", "--shard", shard]].concat();
                worker(d, &store, &format!("shard{i}"), &args)
            })
            .collect();
        let mut codes: Vec<i32> = shards
            .into_iter()
            .enumerate()
            .map(|(i, child)| finish(child, d, &format!("shard{i}")))
            .collect();
        codes.sort_unstable();
        // Both may end at once, each seeing the other's accounts in: then both report.
        assert!(
            codes == [1, 4] || codes == [1, 1],
            "{codes:?}\n{}\n{}",
            stderr_of(d, "shard0"),
            stderr_of(d, "shard1")
        );
        let both = stderr_of(d, "shard0") + &stderr_of(d, "shard1");
        assert!(
            both.contains("shard 0/2") && both.contains("shard 1/2"),
            "{both}"
        );
        assert_eq!(shown(d, &store, "r"), reference, "{store}");
    }

    // Three workers leasing accounts: one creates the run, two join it.
    pg.create_database("joined");
    let joined = pg.url("joined");
    let first = worker(
        d,
        &joined,
        "w0",
        &[&new[..], &["--run-id", "r", "--concurrency", "16"]].concat(),
    );
    wait_for_run(d, &joined);
    let others: Vec<Child> = (1..3)
        .map(|i| {
            worker(
                d,
                &joined,
                &format!("w{i}"),
                &["--join", "r", "--concurrency", "16"],
            )
        })
        .collect();
    assert_eq!(finish(first, d, "w0"), 1, "{}", stderr_of(d, "w0"));
    for (i, child) in others.into_iter().enumerate() {
        let name = format!("w{}", i + 1);
        assert_eq!(finish(child, d, &name), 1, "{}", stderr_of(d, &name));
    }
    assert_eq!(shown(d, &joined, "r"), reference);
    assert!(outcomes_per_account(&joined).iter().all(|(_, n)| *n == 1));

    // A SQLite run has one worker: a second one without a shard is refused, named.
    let refused = billshadow(&["run", "--join", "r", "--store", "one.db"], d);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(refused.stderr.contains("--shard"), "{}", refused.stderr);
    // A run id taken by a run with another cohort is not joined.
    std::fs::write(
        d.join("other.csv"),
        std::fs::read_to_string(d.join("cohort.csv"))
            .unwrap()
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let other = billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "other.csv",
            "--run-id",
            "r",
            "--store",
            "one.db",
        ],
        d,
    );
    assert_eq!(other.code, 2, "{}", other.transcript());
    assert!(other.stderr.contains("another cohort"), "{}", other.stderr);
    stack.kill().unwrap();
    stack.wait().unwrap();
}

/// Waits until the store holds a run (a worker created it).
fn wait_for_run(dir: &Path, store: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = billshadow(&["runs", "--store", store, "--format", "json"], dir);
        if runs.code == 0
            && runs.json()["runs"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            return;
        }
        assert!(Instant::now() < deadline, "no run was created");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accounts with an outcome in the store's only run.
fn done(dir: &Path, store: &str) -> u64 {
    let runs = billshadow(&["runs", "--store", store, "--format", "json"], dir);
    if runs.code != 0 {
        return 0;
    }
    runs.json()["runs"][0]["accounts_done"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_worker_killed_with_sigkill_has_its_accounts_taken_by_another_once_its_lease_ends() {
    // Slow enough that the kill lands mid-run with accounts leased to the killed worker.
    let Leased {
        pg: _pg,
        dir,
        port,
        mut stack,
        store,
    } = leased(1500, 60);
    let d = dir.path();
    let args = leased_args("k", "2", "32");
    let mut workers: Vec<Child> = (0..3)
        .map(|i| worker(d, &store, &format!("k{i}"), &args))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = done(d, &store);
        if now >= 200 {
            assert!(
                now < 1500,
                "the run finished before a worker could be killed"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {}",
            stderr_of(d, "k0")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut killed = workers.remove(1);
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let at_kill = done(d, &store);
    for (i, child) in workers.into_iter().enumerate() {
        let name = format!("k{}", [0, 2][i]);
        assert_eq!(finish(child, d, &name), 1, "{}", stderr_of(d, &name));
    }
    assert!(
        at_kill < 1500,
        "every account was in when the worker was killed"
    );
    let counts = outcomes_per_account(&store);
    assert_eq!(counts.len(), 1500);
    assert!(
        counts.iter().all(|(_, n)| *n == 1),
        "an account has no or two outcomes"
    );
    let show = billshadow(&["show", "k", "--store", &store, "--format", "json"], d).json();
    assert_eq!(show["run"]["status"], "completed");
    assert_eq!(show["run"]["accounts_done"], 1500);
    let s = &show["summary"];
    assert_eq!(
        s["accounts_compared"].as_u64().unwrap() + s["accounts_errored"].as_u64().unwrap(),
        1500
    );

    // The same cohort by one worker on SQLite: the same verdict to the last diff and total.
    stack.kill().unwrap();
    stack.wait().unwrap();
    let mut stack = modern(d, port, 0);
    let one = worker(
        d,
        "one.db",
        "one",
        &[
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--run-id",
            "k",
        ],
    );
    assert_eq!(finish(one, d, "one"), 1, "{}", stderr_of(d, "one"));
    assert_eq!(shown(d, &store, "k"), shown(d, "one.db", "k"));
    stack.kill().unwrap();
    stack.wait().unwrap();
}

/// `billshadow run ARGS --store STORE` run to its end with the log at `info`: its exit code
/// and its stderr.
fn run_logged(dir: &Path, store: &str, args: &[&str]) -> (i32, String) {
    let out = command(&["run", "--store", store, "--no-progress"], dir)
        .args(args)
        .env("BILLSHADOW_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_shard_worker_done_before_the_run_is_complete_exits_4_never_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 80);
    let port = free_port();
    shared_spec(d, port);
    let mut stack = modern(d, port, 0);
    let new = [
        "--spec",
        "spec.toml",
        "--cohort",
        "cohort.csv",
        "--run-id",
        "r",
    ];
    // Shard 0 alone: its accounts are in, shard 1's are pending: no verdict yet.
    let (code, stderr) = run_logged(d, "s.db", &[&new[..], &["--shard", "0/2"]].concat());
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("no verdict yet"), "{stderr}");
    // Shard 0 again: nothing left to take, and still no verdict.
    let (code, stderr) = run_logged(d, "s.db", &["--join", "r", "--shard", "0/2"]);
    assert_eq!(code, 4, "{stderr}");
    // Shard 1 completes the run: the verdict's code, as `show` gives it.
    let (last, stderr) = run_logged(d, "s.db", &["--join", "r", "--shard", "1/2"]);
    assert!(last == 0 || last == 1, "{last} {stderr}");
    let show = billshadow(&["show", "r", "--store", "s.db"], d);
    assert_eq!(show.code, last, "{}", show.transcript());
    // A worker that finds nothing left in a completed run: the verdict is known, its code.
    let (code, stderr) = run_logged(d, "s.db", &["--join", "r", "--shard", "0/2"]);
    assert_eq!(code, last, "{stderr}");
    stack.kill().unwrap();
    stack.wait().unwrap();
}

#[test]
fn a_slow_worker_renews_its_leases_so_no_account_is_done_twice() {
    // Every modern answer takes 1.5 s, the lease 1 s: the first worker claims every account
    // (a page of 50) and takes about 4.5 s over them (16 at a time); without its heartbeat
    // the second would take them over once their leases end, and do them again.
    let Leased {
        pg: _pg,
        dir,
        mut stack,
        store,
        ..
    } = leased(48, 1500);
    let d = dir.path();
    let args = leased_args("s", "1", "8");
    let spawn = |name: &str| {
        command(&["run", "--store", &store, "--no-progress"], d)
            .args(args)
            .env("BILLSHADOW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .unwrap()
    };
    let first = spawn("a");
    wait_for_run(d, &store);
    let second = spawn("b");
    let (a, b) = (finish(first, d, "a"), finish(second, d, "b"));
    let logs = stderr_of(d, "a") + &stderr_of(d, "b");
    assert!(a == b && (a == 0 || a == 1), "{a} {b}\n{logs}");
    // An account done twice is stored once, and its worker says so: nothing of the kind.
    assert!(!logs.contains("already stored by another worker"), "{logs}");
    let counts = outcomes_per_account(&store);
    assert_eq!(counts.len(), 48);
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
    stack.kill().unwrap();
    stack.wait().unwrap();
}
