//! Several workers on one run: `cargo bench --bench workers` (see BENCHMARKS.md).
//!
//! The same cohort shadow-run by 1 worker on SQLite, then by 1, 2 and 4 workers at once
//! (`--run-id`, leasing their accounts) on one PostgreSQL server, every worker on this
//! machine. Both stacks are the sample modern service in `--echo` mode, started once here and
//! shared by the workers, so what is measured is the harness and the store. The server is
//! named by `BILLSHADOW_BENCH_POSTGRES` (a URL whose user may create databases: each
//! measurement gets a new one).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../support/stacks.rs"]
mod stacks;
const BILLSHADOW: &str = env!("CARGO_BIN_EXE_billshadow");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// An echo stack on `port`, once it accepts connections.
fn echo(port: u16) -> Child {
    let child = Command::new(&stacks::paths().1)
        .args(["--echo", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the echo stack starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the echo stack does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn spec(dir: &Path, legacy: u16, modern: u16) {
    let side = |port: u16| {
        format!(
            "kind = \"http\"\nurl = \"http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill\"\n\
             format = \"echo.toml\"\ntimeout_ms = 5000\nconcurrency = 64\n"
        )
    };
    let text = format!("[legacy]\n{}\n[modern]\n{}\n", side(legacy), side(modern));
    std::fs::write(dir.join("spec.toml"), text).expect("spec");
    std::fs::write(
        dir.join("echo.toml"),
        "name = \"echo\"\ninput = \"json\"\nrecords = \"lines\"\n[fields]\naccount_id = \"$doc.account_id\"\nperiod_start = \"period_start\"\n\
         period_end = \"period_end\"\ncharge_code = \"charge_code\"\nline_type = \"line_type\"\namount = \"amount\"\ncurrency = \"currency\"\n",
    )
    .expect("mapping");
}

/// A new database on the server `admin` names; its URL.
fn database(admin: &str, name: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("BILLSHADOW_BENCH_POSTGRES answers");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .expect("drop");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create");
    });
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// `workers` workers on `store` at once; the seconds until the last one ends.
fn measure(dir: &Path, store: &str, workers: usize) -> f64 {
    let start = Instant::now();
    let children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(BILLSHADOW)
                .args([
                    "run",
                    "--spec",
                    "spec.toml",
                    "--cohort",
                    "cohort.csv",
                    "--run-id",
                    "bench",
                    "--no-progress",
                    "--store",
                    store,
                ])
                .current_dir(dir)
                .env("BILLSHADOW_LOG", "warn")
                .env("BILLSHADOW_ACTOR", "bench")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("billshadow runs")
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("a worker ends");
        assert_eq!(status.code(), Some(0), "a worker failed");
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let admin = std::env::var("BILLSHADOW_BENCH_POSTGRES").expect(
        "BILLSHADOW_BENCH_POSTGRES: a PostgreSQL URL whose user may create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres",
    );
    let accounts: u32 = std::env::var("BILLSHADOW_BENCH_ACCOUNTS")
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .expect("BILLSHADOW_BENCH_ACCOUNTS: a number")
        })
        .unwrap_or(100_000);
    let counts: Vec<usize> = std::env::var("BILLSHADOW_BENCH_WORKERS")
        .unwrap_or_else(|_| "1,2,4".to_owned())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BILLSHADOW_BENCH_WORKERS: numbers, e.g. 1,2,4")
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let d = dir.path();
    let status = Command::new(BILLSHADOW)
        .args([
            "generate",
            "cohort",
            "--accounts",
            &accounts.to_string(),
            "--out",
        ])
        .arg(d)
        .stderr(Stdio::null())
        .status()
        .expect("generate");
    assert!(status.success());
    let (legacy, modern) = (free_port(), free_port());
    let mut stacks = [echo(legacy), echo(modern)];
    spec(d, legacy, modern);
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>12}",
        "store", "workers", "accounts", "seconds", "accounts/s"
    );
    let report = |store: &str, workers: usize, seconds: f64| {
        println!(
            "{store:<12} {workers:>8} {accounts:>9} {seconds:>9.2} {:>12.0}",
            f64::from(accounts) / seconds
        );
    };
    let seconds = measure(d, "sqlite.db", 1);
    report("SQLite", 1, seconds);
    for workers in counts {
        let store = database(&admin, &format!("bench_workers_{workers}"));
        let seconds = measure(d, &store, workers);
        report("PostgreSQL", workers, seconds);
    }
    for stack in &mut stacks {
        let _ = stack.kill();
        let _ = stack.wait();
    }
}
