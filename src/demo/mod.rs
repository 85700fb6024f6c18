//! The demo's material: the sample stacks' data and spec, the demo's policy, and the
//! generators of cohorts and export pairs (`generate`). The `demo` command itself
//! (`cli::demo`) generates a cohort with usage, writes a comparison spec for the sample legacy batch
//! program (the `command` adapter) and the sample modern HTTP service (the `http` adapter,
//! started for the duration of the run), runs the shadow run into a SQLite store, and prints
//! the summary, the parity per partition and region, and the commands to look deeper.
//! Everything lands in one folder, so the run can be repeated or extended by hand.

use std::path::{Path, PathBuf};

pub(crate) mod generate;
pub(crate) mod sample;

use anyhow::{Context, anyhow};

/// The format mapping of the modern sample's responses, written beside the spec.
const MODERN_MAPPING: &str = include_str!("../../examples/stacks/modern-bill.toml");

/// The demo's migration policy: every cell of the sample, a gate the healthy cells pass on one
/// run, and the mismatching ones do not.
pub(crate) const DEMO_POLICY: &str = r#"# The demo's migration policy. Try:
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

pub(crate) fn sample_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the billshadow executable")?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow!("the executable has no folder"))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(anyhow!(
            "{} is missing: build the sample stacks with `cargo build --release --locked` in a clone of billshadow (they are its `examples/stacks` package, not installed with it)",
            path.display()
        ))
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// A TOML basic string: JSON's string escapes are valid TOML ones.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Writes spec.toml and the modern mapping into `dir`.
pub(crate) fn write_spec(
    dir: &Path,
    legacy: &Path,
    modern: &Path,
    port: u16,
) -> anyhow::Result<PathBuf> {
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
# Each run records what the program reports as its version.
version = {{ args = ["--version"] }}

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
# Each run records the version the service reports, here a response header of an endpoint.
version = {{ url = "http://127.0.0.1:{port}/version", header = "x-service-version" }}

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
