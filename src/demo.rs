//! `billshadow demo`: the whole loop on the sample stacks, in one command.
//!
//! Generates a cohort with usage, writes a comparison spec for the sample legacy batch
//! program (the `command` adapter) and the sample modern HTTP service (the `http` adapter,
//! started for the duration of the run), runs the shadow run into a SQLite store, and prints
//! the summary, the parity per partition and region, and the commands to look deeper.
//! Everything lands in one folder, so the run can be repeated or extended by hand.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use crate::cli::{DemoArgs, RunArgs, TableFormat};
use crate::exit::{Code, Outcome, input};

/// The format mapping of the modern sample's responses, written beside the spec.
const MODERN_MAPPING: &str = include_str!("../examples/stacks/modern-bill.toml");

/// The demo's migration policy: every cell of the sample, a gate the healthy cells pass on one
/// run, and the mismatching ones do not.
const DEMO_POLICY: &str = r#"# The demo's migration policy. Try:
#   billshadow migrate status --policy policy.toml --store billshadow.db
max_in_flight = 24
canary_steps = ["1", "5", "25"]

[[cells]]
partitions = ["p0..p3"]
regions = ["us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-northeast-1", "me-south-1"]

[gate]
min_accounts = 50
min_coverage = "0.99"
# With ~400 accounts a cell cannot prove better than about 1 % at 95 % confidence.
max_mismatch_rate = "0.02"
confidence = "0.95"
# Per currency: a diff is compared with its own currency's threshold only. An unwaived diff in
# a currency listed here is never judged against another's; one in a currency not listed
# holds the cell (the gate cannot judge it).
critical_amount = { USD = "1000.00", EUR = "920.00", GBP = "790.00", JPY = "150000", BHD = "377.000" }
consecutive_passing_runs = 1
max_stack_error_rate = "0.01"
approvals = 1
approvals_for = ["cutover", "decommissioned"]

[rollback]
on_critical_diff = true
max_stack_error_rate = "0.05"
"#;

fn sample_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the billshadow executable")?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow!("the executable has no folder"))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(anyhow!(
            "{} is missing: build the sample stacks with `cargo build --release --locked --bins`",
            path.display()
        ))
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// A TOML basic string: JSON's string escapes are valid TOML ones.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Writes spec.toml and the modern mapping into `dir`.
fn write_spec(dir: &Path, legacy: &Path, modern: &Path, port: u16) -> anyhow::Result<PathBuf> {
    let spec = format!(
        r#"# The demo's comparison spec. Paths are relative to this file; run it again with
#   billshadow run --spec spec.toml --cohort cohort.csv --store billshadow.db

[legacy]
# The legacy stack: a batch program, run per batch of accounts, printing canonical CSV.
kind = "command"
program = {legacy}
args = ["--data", "data", "{{account_ids}}"]
batch_size = 250
format = "canonical"
timeout_ms = 30000
concurrency = 2

[modern]
# The modern stack: an HTTP service, started for the duration of the run.
kind = "http"
url = "http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill?period_start={{period_start}}"
format = "modern-bill.toml"
timeout_ms = 5000
retries = 3
backoff_ms = 20
concurrency = 64
start = {{ program = {modern}, args = ["--data", "data", "--listen", "127.0.0.1:{port}", "--watch-stdin"], ready_address = "127.0.0.1:{port}" }}

[match]
key = ["account_id", "period", "charge_code", "line_type"]

[compare]
# The two stacks word descriptions their own way.
ignore = ["description"]
"#,
        legacy = toml_string(&legacy.display().to_string()),
        modern = toml_string(&modern.display().to_string()),
    );
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::write(dir.join("modern-bill.toml"), MODERN_MAPPING)
        .context("cannot write modern-bill.toml")?;
    Ok(path)
}

pub(crate) fn run(args: DemoArgs) -> Outcome {
    let legacy = sample_binary("billshadow-sample-legacy").map_err(input)?;
    let modern = sample_binary("billshadow-sample-modern").map_err(input)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(input)?;
    let store = dir.join("billshadow.db");
    for stale in ["billshadow.db", "billshadow.db-wal", "billshadow.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    eprintln!(
        "demo: generating {} accounts in {} …",
        args.accounts,
        dir.display()
    );
    crate::sample::write_cohort(dir, args.accounts, args.seed).map_err(input)?;
    let port = free_port().map_err(input)?;
    let spec = write_spec(dir, &legacy, &modern, port).map_err(input)?;
    eprintln!(
        "demo: shadow-running them through the legacy batch program and the modern HTTP service …"
    );
    let started = std::time::Instant::now();
    let run = RunArgs {
        spec: Some(spec),
        cohort: Some(dir.join("cohort.csv")),
        store: Some(store.display().to_string()),
        concurrency: 512,
        resume: None,
        retry_errors: false,
        calibrate: false,
        as_of: None,
        format: TableFormat::Text,
        limit: 5,
        no_progress: false,
    };
    let code = crate::run_cmd::run(run)?;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, DEMO_POLICY)
        .with_context(|| format!("cannot write {}", policy.display()))
        .map_err(input)?;
    crate::outln!();
    crate::outln!(
        "demo: the migration controller over this run ({}):",
        policy.display()
    );
    let migrate = |command: crate::cli::MigrateCommand| {
        crate::migrate(crate::cli::MigrateArgs {
            command,
            policy: policy.clone(),
            store: Some(store.display().to_string()),
            actor: Some("demo".to_owned()),
            now: None,
            format: crate::cli::MigrateFormat::Text,
        })
    };
    migrate(crate::cli::MigrateCommand::Init)?;
    // Every cell starts shadowing (no gate: customers see nothing), then the gate decides.
    migrate(crate::cli::MigrateCommand::Advance {
        cell: None,
        all: true,
        to: None,
    })?;
    migrate(crate::cli::MigrateCommand::Advance {
        cell: None,
        all: true,
        to: None,
    })?;
    let html = dir.join("report.html");
    crate::report_cmd::report(crate::cli::ReportArgs {
        run: "latest".to_owned(),
        format: crate::cli::ReportFormat::Html,
        out: Some(html.clone()),
        store: Some(store.display().to_string()),
        policy: Some(policy.clone()),
        template: None,
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let store_arg = store.display();
    crate::outln!();
    crate::outln!(
        "demo: {} accounts shadow-run in {seconds:.1} s; the seeded defects of the modern stack show above, per partition and region.",
        args.accounts
    );
    crate::outln!("The dashboard: {}", html.display());
    crate::outln!("Everything is in {}. To look deeper:", dir.display());
    crate::outln!(
        "  billshadow show latest --store {store_arg}                 # this summary again"
    );
    crate::outln!(
        "  billshadow show latest --store {store_arg} --format json   # every diff, as JSON"
    );
    crate::outln!("  billshadow runs --store {store_arg}");
    crate::outln!(
        "  billshadow explain ACCOUNT --store {store_arg}                # one account's two bills side by side"
    );
    crate::outln!(
        "  billshadow migrate status --policy {} --store {store_arg}",
        dir.join("policy.toml").display()
    );
    crate::outln!(
        "  billshadow run --spec {} --cohort {} --store {store_arg}   # run it again",
        dir.join("spec.toml").display(),
        dir.join("cohort.csv").display()
    );
    // The demo succeeds when the run completed; its verdict (mismatches, by design) is above.
    Ok(if code == Code::Stack {
        Code::Stack
    } else {
        Code::Parity
    })
}
