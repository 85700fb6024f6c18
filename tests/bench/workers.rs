//! Several workers on one run: `cargo bench --bench workers` (see BENCHMARKS.md).
//!
//! The same cohort shadow-run by 1 worker on SQLite, then by 1, 2 and 4 workers at once
//! (`--run-id`, leasing their accounts) on one PostgreSQL server, every worker on this
//! machine. Both stacks are the sample modern service in `--echo` mode, started once here and
//! shared by the workers, so what is measured is the harness and the store. The server is
//! named by `BILLSHADOW_BENCH_POSTGRES` (a URL whose user may create databases: each
//! measurement gets a new one). Besides accounts per second, it prints where the CPU went per
//! 1,000 accounts: the workers (each under `/usr/bin/time`), the two stacks, and the server
//! (its postmaster's own and its ended backends' CPU time from `/proc`, when it runs here).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "postgres.rs"]
mod postgres;
#[path = "../support/stacks.rs"]
mod stacks;
use postgres::database;
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

/// CPU seconds a process has used (`utime + stime`), with those of the children it has
/// waited for (`cutime + cstime`): for the PostgreSQL server's postmaster, every backend
/// that has ended. `None` where `/proc` does not tell.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime, stime, cutime, cstime are fields 14–17 of the line, 12–15 after the name.
    let ticks: f64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<f64>().ok())
        .sum::<Option<f64>>()?;
    Some(ticks / 100.0)
}

/// CPU seconds of the PostgreSQL server whose postmaster is `pid`: the postmaster's with its
/// ended backends' (`cpu_seconds`), and its live processes' (checkpointer, WAL writer,
/// autovacuum, backends still connected).
fn server_cpu_seconds(pid: u32) -> Option<f64> {
    let mut total = cpu_seconds(pid)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"));
        if parent.map(str::trim) == Some(pid.to_string().as_str()) {
            // A live process: its own time only (its children are not waited for yet).
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if let Some(close) = stat.rfind(')') {
                let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
                let own: f64 = fields
                    .get(11..13)
                    .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
                    .unwrap_or(0.0);
                total += own / 100.0;
            }
        }
    }
    Some(total)
}

/// The process id of the PostgreSQL server (the postmaster) behind `url`, when it runs on
/// this machine: the parent of the backend serving a connection.
fn postmaster(url: &str) -> Option<u32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let backend: i32 = runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
        let row = sqlx::query("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .ok()?;
        row.try_get(0).ok()
    })?;
    let status = std::fs::read_to_string(format!("/proc/{backend}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// What `workers` workers on one store took.
struct Measured {
    /// Until the last worker ended.
    seconds: f64,
    /// CPU seconds of the workers, of the two echo stacks, and of the PostgreSQL server
    /// (`None` for SQLite, which works inside the workers, or a server elsewhere).
    workers_cpu: f64,
    stacks_cpu: f64,
    server_cpu: Option<f64>,
    /// The largest peak resident memory of one worker, in KiB.
    peak_kib: f64,
}

/// `workers` workers on `store` at once, each under `/usr/bin/time`.
fn measure(
    dir: &Path,
    store: &str,
    workers: usize,
    stacks: &[u32],
    server: Option<u32>,
) -> Measured {
    let stacks_before: f64 = stacks.iter().filter_map(|p| cpu_seconds(*p)).sum();
    let server_before = server.and_then(server_cpu_seconds);
    let start = Instant::now();
    let children: Vec<Child> = (0..workers)
        .map(|i| {
            Command::new("/usr/bin/time")
                .arg("-o")
                .arg(dir.join(format!("time-{i}.txt")))
                .args(["-f", "%U %S %M", BILLSHADOW])
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
    let seconds = start.elapsed().as_secs_f64();
    let (mut workers_cpu, mut peak_kib) = (0.0, 0.0f64);
    for i in 0..workers {
        let text = std::fs::read_to_string(dir.join(format!("time-{i}.txt"))).expect("times");
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|f| f.parse().expect("a number from /usr/bin/time"))
            .collect();
        workers_cpu += v[0] + v[1];
        peak_kib = peak_kib.max(v[2]);
    }
    let stacks_after: f64 = stacks.iter().filter_map(|p| cpu_seconds(*p)).sum();
    Measured {
        seconds,
        workers_cpu,
        stacks_cpu: stacks_after - stacks_before,
        server_cpu: server_before.and_then(|b| Some(server_cpu_seconds(server?)? - b)),
        peak_kib,
    }
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
        "{:<12} {:>8} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "store",
        "workers",
        "accounts",
        "seconds",
        "accounts/s",
        "harness",
        "stacks",
        "server",
        "peak MiB"
    );
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>11} {:>29} {:>9}",
        "", "", "", "", "", "(CPU ms per 1,000 accounts)", "(worker)"
    );
    let pids: Vec<u32> = stacks.iter().map(Child::id).collect();
    let report = |store: &str, workers: usize, m: &Measured| {
        let per_thousand = |cpu: f64| format!("{:.0}", cpu * 1e6 / f64::from(accounts));
        println!(
            "{store:<12} {workers:>8} {accounts:>9} {:>9.2} {:>11.0} {:>9} {:>9} {:>9} {:>9.0}",
            m.seconds,
            f64::from(accounts) / m.seconds,
            per_thousand(m.workers_cpu),
            per_thousand(m.stacks_cpu),
            m.server_cpu.map_or_else(|| "-".to_owned(), per_thousand),
            m.peak_kib / 1024.0
        );
    };
    let m = measure(d, "sqlite.db", 1, &pids, None);
    report("SQLite", 1, &m);
    let server = postmaster(&admin);
    for workers in counts {
        let store = database(&admin, &format!("bench_workers_{workers}"));
        let m = measure(d, &store, workers, &pids, server);
        report("PostgreSQL", workers, &m);
    }
    for stack in &mut stacks {
        let _ = stack.kill();
        let _ = stack.wait();
    }
}
