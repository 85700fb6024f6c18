//! The report benchmark: `cargo bench --bench report` (see BENCHMARKS.md).
//!
//! Stores a run with 1,000,000 diffs (500,000 accounts whose two echo stacks disagree on every
//! bill: an amount mismatch and a bill total mismatch each), then times rendering it as HTML,
//! Markdown, CSV and JSON lines, and reports each file's size.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "../support/stacks.rs"]
mod stacks;
const ACCOUNTS: u32 = 500_000;
/// Where the stored run is kept between runs of the benchmark (storing it takes two minutes).
const STORE_DIR: &str = "target/bench-data/report-1m";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

fn spec(dir: &Path) {
    let modern = &stacks::paths().1;
    let side = |port: u16, mapping: &str| {
        format!(
            "kind = \"http\"\nurl = \"http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill\"\nformat = \"{mapping}\"\nconcurrency = 64\n\
             start = {{ program = {modern:?}, args = [\"--echo\", \"--listen\", \"127.0.0.1:{port}\", \"--watch-stdin\"], ready_address = \"127.0.0.1:{port}\" }}\n"
        )
    };
    std::fs::write(
        dir.join("spec.toml"),
        format!(
            "[legacy]\n{}\n[modern]\n{}\n",
            side(free_port(), "echo.toml"),
            side(free_port(), "doubled.toml")
        ),
    )
    .expect("spec");
    let mapping = |amount: &str| {
        format!(
            "name = \"echo\"\ninput = \"json\"\nrecords = \"lines\"\n[fields]\naccount_id = \"$doc.account_id\"\nperiod_start = \"period_start\"\n\
             period_end = \"period_end\"\ncharge_code = \"charge_code\"\nline_type = \"line_type\"\namount = {amount}\ncurrency = \"currency\"\n"
        )
    };
    std::fs::write(dir.join("echo.toml"), mapping("\"amount\"")).expect("mapping");
    // The modern side reads every amount doubled: every account differs.
    std::fs::write(
        dir.join("doubled.toml"),
        mapping("{ column = \"amount\", scale = \"2\" }"),
    )
    .expect("mapping");
}

fn main() {
    let binary = env!("CARGO_BIN_EXE_billshadow");
    let d = &Path::new(env!("CARGO_MANIFEST_DIR")).join(STORE_DIR);
    if d.join("big.db").exists() {
        println!("reusing the stored run in {}", d.display());
    } else {
        std::fs::create_dir_all(d).expect("a folder");
        let status = Command::new(binary)
            .args([
                "generate",
                "cohort",
                "--accounts",
                &ACCOUNTS.to_string(),
                "--out",
            ])
            .arg(d)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("generate");
        assert!(status.success());
        spec(d);
        let start = Instant::now();
        let run = Command::new(binary)
            .args([
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                "big.db",
                "--no-progress",
            ])
            .current_dir(d)
            .env("BILLSHADOW_LOG", "warn")
            .output()
            .expect("run");
        assert_eq!(
            run.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        println!(
            "stored a run of {ACCOUNTS} accounts in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    println!("{:<8} {:>9} {:>12}", "format", "seconds", "size");
    for format in ["html", "md", "csv", "jsonl"] {
        let out = d.join(format!("report.{format}"));
        let start = Instant::now();
        let status = Command::new(binary)
            .args(["report", "--store", "big.db", "--format", format, "--out"])
            .arg(&out)
            .current_dir(d)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("report");
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(status.code(), Some(1));
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        println!(
            "{format:<8} {seconds:>9.2} {:>9.0} KiB",
            size as f64 / 1024.0
        );
        if format == "csv" {
            let rows = std::fs::read_to_string(&out)
                .map(|t| t.lines().count() - 1)
                .unwrap_or(0);
            println!("         ({rows} diffs)");
        }
    }
}
