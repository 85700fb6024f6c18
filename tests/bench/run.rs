//! The shadow-run throughput benchmark: `cargo bench --bench run` (see BENCHMARKS.md).
//!
//! Both stacks are HTTP services on 127.0.0.1 doing trivial work (the sample modern stack in
//! `--echo` mode, twice), so what is measured is the harness: requests, comparison, and the
//! run store. Cohorts of growing size show whether throughput and memory stay flat. Each size
//! is run on a SQLite store, then, when `BILLSHADOW_BENCH_POSTGRES` names a server (a URL whose
//! user may create databases), on a new PostgreSQL database there; `BILLSHADOW_BENCH_STORE`
//! (`sqlite` or `postgres`) keeps one of the two.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "postgres.rs"]
mod postgres;
#[path = "../support/stacks.rs"]
mod stacks;
use postgres::database;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

fn spec(dir: &Path) {
    let modern = &stacks::paths().1;
    let side = |port: u16| {
        format!(
            r#"kind = "http"
url = "http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill"
format = "echo.toml"
timeout_ms = 5000
concurrency = 64
start = {{ program = {modern:?}, args = ["--echo", "--listen", "127.0.0.1:{port}", "--watch-stdin"], ready_address = "127.0.0.1:{port}" }}
"#
        )
    };
    let text = format!(
        "[legacy]\n{}\n[modern]\n{}\n",
        side(free_port()),
        side(free_port())
    );
    std::fs::write(dir.join("spec.toml"), text).expect("spec");
    std::fs::write(
        dir.join("echo.toml"),
        "name = \"echo\"\ninput = \"json\"\nrecords = \"lines\"\n[fields]\naccount_id = \"$doc.account_id\"\nperiod_start = \"period_start\"\n\
         period_end = \"period_end\"\ncharge_code = \"charge_code\"\nline_type = \"line_type\"\namount = \"amount\"\ncurrency = \"currency\"\n",
    )
    .expect("mapping");
}

/// What one `billshadow run` took.
struct Measured {
    /// From starting the process to its end: starting both stacks included.
    wall: f64,
    /// From the run's `started_at` to its `finished_at` as the store records them: creating
    /// the run and its cohort, and every account, without the stacks' start-up (about half
    /// a second, a tenth of a 20,000-account run).
    run: f64,
    peak_kib: f64,
}

/// The seconds between a stored run's start and end (`billshadow runs --format json`).
fn run_seconds(binary: &str, dir: &Path, store: &str) -> f64 {
    let output = Command::new(binary)
        .args(["runs", "--store", store, "--format", "json"])
        .current_dir(dir)
        .output()
        .expect("billshadow runs");
    let runs: serde_json::Value = serde_json::from_slice(&output.stdout).expect("runs as JSON");
    let run = &runs["runs"][0];
    let at = |key: &str| {
        let text = run[key].as_str().expect("a stored time");
        chrono::DateTime::parse_from_rfc3339(text).expect("an RFC 3339 time")
    };
    (at("finished_at") - at("started_at")).num_milliseconds() as f64 / 1000.0
}

/// One `billshadow run` of the cohort in `dir` on `store`.
fn measure(binary: &str, dir: &Path, store: &str) -> Measured {
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args([
            "-f",
            "%M",
            binary,
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
        .output()
        .expect("/usr/bin/time runs billshadow");
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let peak_kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Measured {
        wall: seconds,
        run: run_seconds(binary, dir, store),
        peak_kib,
    }
}

fn main() {
    let binary = env!("CARGO_BIN_EXE_billshadow");
    let postgres = std::env::var("BILLSHADOW_BENCH_POSTGRES").ok();
    // BILLSHADOW_BENCH_STORE=sqlite or postgres measures one store only.
    let only = std::env::var("BILLSHADOW_BENCH_STORE").ok();
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>14} {:>12}",
        "store", "accounts", "wall s", "run s", "accounts/s", "peak MiB"
    );
    // BILLSHADOW_BENCH_ACCOUNTS=100000,500000 measures other cohort sizes.
    let sizes: Vec<u32> = std::env::var("BILLSHADOW_BENCH_ACCOUNTS")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("BILLSHADOW_BENCH_ACCOUNTS: numbers, e.g. 100000,500000")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![20_000, 50_000, 100_000]);
    for accounts in sizes {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let d = dir.path();
        let status = Command::new(binary)
            .args([
                "generate",
                "cohort",
                "--accounts",
                &accounts.to_string(),
                "--out",
            ])
            .arg(d)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("generate");
        assert!(status.success());
        spec(d);
        let mut stores = Vec::new();
        if only.as_deref() != Some("postgres") {
            stores.push(("SQLite", "bench.db".to_owned()));
        }
        if let Some(admin) = &postgres
            && only.as_deref() != Some("sqlite")
        {
            stores.push(("PostgreSQL", database(admin, "bench_run")));
        }
        for (name, store) in stores {
            let m = measure(binary, d, &store);
            // Accounts per second of the run itself (its stored start and end).
            println!(
                "{name:<11} {accounts:>9} {:>9.2} {:>9.2} {:>14.0} {:>12.0}",
                m.wall,
                m.run,
                f64::from(accounts) / m.run,
                m.peak_kib / 1024.0
            );
        }
    }
}
