//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A date as the command line takes it (parsed once, here).
fn date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// A time as the command line takes it (parsed once, here).
fn time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("`{s}` is not an RFC 3339 time such as 2026-11-25T10:00:00Z"))
}

/// Compare a legacy and a modern billing stack to the cent.
///
/// Exit codes: 0 parity, 1 mismatches beyond tolerance, 2 usage, configuration or input
/// error, 3 a stack or store failure prevented a verdict.
#[derive(Debug, Parser)]
#[command(name = "billshadow", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Diff(DiffArgs),
    Run(RunArgs),
    Runs(RunsArgs),
    Show(ShowArgs),
    Demo(DemoArgs),
    Migrate(MigrateArgs),
    Report(ReportArgs),
    Explain(ExplainArgs),
    Causes(CausesArgs),
    Metrics(MetricsArgs),
    CheckSpec(CheckSpecArgs),
    /// List the built-in format mappings.
    Formats,
    #[command(subcommand)]
    Generate(Generate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A summary table and the diffs grouped by account.
    Text,
    /// One JSON document (schema billshadow.diff/v1).
    Json,
    /// One diff per line, then a summary line.
    Jsonl,
}

/// Compare two exported bill files line by line, to the cent.
///
/// Lines are paired by a match key (default: account, billing period, charge code, line
/// type, usage period, region); duplicates are paired to minimise the total difference.
/// Bill and customer totals are compared too.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow diff --legacy examples/legacy.csv --modern examples/modern.csv
  billshadow diff --legacy old.csv --modern new.jsonl --modern-format canonical-jsonl --format json --out diff.json
  billshadow diff --spec spec.toml --format jsonl --max-bad-rows 10")]
pub(crate) struct DiffArgs {
    /// The legacy stack's export (default: the spec's [legacy] path).
    #[arg(long, value_name = "PATH")]
    pub(crate) legacy: Option<PathBuf>,
    /// The modern stack's export (default: the spec's [modern] path).
    #[arg(long, value_name = "PATH")]
    pub(crate) modern: Option<PathBuf>,
    /// A catalog format (see `billshadow formats`), `auto`, or a mapping file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) legacy_format: Option<String>,
    /// A catalog format (see `billshadow formats`), `auto`, or a mapping file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) modern_format: Option<String>,
    /// A comparison spec: match key, tolerances, ignored fields, waivers.
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Tolerate up to N malformed rows per file: they are written to the quarantine file,
    /// counted, and the verdict says it is incomplete.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_bad_rows: u64,
    /// Where quarantined rows go (JSON lines).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "billshadow-quarantine.jsonl"
    )]
    pub(crate) quarantine: PathBuf,
    /// Judge waiver expiry as of this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", value_parser = date)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// Accounts listed in the text report; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// Threads used to compare (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

/// Validate a comparison spec and the format mappings it names.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  billshadow check-spec spec.toml")]
pub(crate) struct CheckSpecArgs {
    pub(crate) file: PathBuf,
}

/// Generate data for tests, benchmarks and the demo.
#[derive(Debug, Subcommand)]
pub(crate) enum Generate {
    Pair(PairArgs),
    Cohort(CohortArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TableFormat {
    Text,
    Json,
}

/// Replay a cohort through the legacy and the modern stack, compare every account to the
/// cent, and keep every outcome in the run store.
///
/// Each account's outcome is stored as soon as it is known; kill the process at any moment and
/// `--resume` finishes what is left, counting no account twice.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow run --spec spec.toml --cohort cohort.csv
  billshadow run --resume latest
  billshadow run --spec spec.toml --cohort cohort.csv --calibrate     # replay legacy twice: what is nondeterministic?
  BILLSHADOW_STORE=postgres://billing@db/shadow billshadow run --spec spec.toml --cohort cohort.csv")]
pub(crate) struct RunArgs {
    /// The comparison spec, with `kind = "command" | "http" | "sql"` on both sides.
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: Option<PathBuf>,
    /// The accounts to replay (CSV: account_id, customer_id, partition, region, period_start, period_end).
    #[arg(long, value_name = "FILE")]
    pub(crate) cohort: Option<PathBuf>,
    /// The run store: a SQLite file or postgres:// URL (default: BILLSHADOW_STORE, else ./billshadow.db).
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Accounts in flight at most (each stack also has its own cap in the spec).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) concurrency: usize,
    /// Finish an interrupted run (an id, or `latest`) instead of starting one.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["spec", "cohort", "calibrate"])]
    pub(crate) resume: Option<String>,
    /// With --resume: also redo the accounts whose outcome is `stack_error`, replacing it.
    #[arg(long)]
    pub(crate) retry_errors: bool,
    /// Replay the legacy stack twice and report the fields that differ (noise).
    #[arg(long)]
    pub(crate) calibrate: bool,
    /// Judge waiver expiry as of this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", value_parser = date)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    /// Accounts listed in the text report; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// No progress bar (log lines still come every few seconds when not on a terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// List the runs in the store.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  billshadow runs --store billshadow.db")]
pub(crate) struct RunsArgs {
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
}

/// Print a stored run's summary, cells and diffs (JSON in the shape of `diff --format json`).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  billshadow show latest\n  billshadow show run-20261125T101500.000Z-1a2b --format json"
)]
pub(crate) struct ShowArgs {
    /// A run id, or `latest`.
    #[arg(default_value = "latest")]
    pub(crate) run: String,
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
}

/// Run the whole thing on sample stacks: generate a cohort, start a legacy batch program and a
/// modern HTTP service, shadow-run every account through both, store and summarise.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  billshadow demo\n  billshadow demo --accounts 2000 --dir /tmp/demo"
)]
pub(crate) struct DemoArgs {
    #[arg(long, default_value_t = 10_000)]
    pub(crate) accounts: u32,
    /// Where the cohort, usage, spec and store go (kept, so the run can be repeated by hand).
    #[arg(long, value_name = "DIR", default_value = "billshadow-demo")]
    pub(crate) dir: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
}

/// Write a cohort with usage for the sample stacks: cohort.csv plus data/ (accounts, usage,
/// price book).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  billshadow generate cohort --accounts 1000 --seed 7 --out /tmp/cohort"
)]
pub(crate) struct CohortArgs {
    #[arg(long, default_value_t = 1000)]
    pub(crate) accounts: u32,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// Write a legacy/modern canonical pair with known injected differences of every class,
/// and an answer file (answers.json) listing them.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  billshadow generate pair --accounts 2000 --lines-per-account 12 --seed 7 --out /tmp/pair"
)]
pub(crate) struct PairArgs {
    #[arg(long, default_value_t = 2000)]
    pub(crate) accounts: u32,
    #[arg(long, default_value_t = 12)]
    pub(crate) lines_per_account: u32,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Share of accounts (0-100) that get an injected difference.
    #[arg(long, default_value_t = 10)]
    pub(crate) inject_percent: u32,
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MigrateFormat {
    Text,
    Json,
    Md,
}

/// Move partitions and regions to the modern stack only when parity holds.
///
/// Cells (partition × region) go legacy → shadow → canary (steps) → cutover → decommissioned;
/// a gate over the stored runs decides each step; too little data holds a cell, never passes it.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow migrate lint --policy policy.toml
  billshadow migrate init --policy policy.toml --store shadow.db
  billshadow migrate status --policy policy.toml --store shadow.db
  billshadow migrate gate p1/eu-west-1 --junit gate.xml        # CI: exit 0 pass, 1 blocked, 2 configuration error
  billshadow migrate advance --all                              # a scheduled job: moves every cell whose gate passes
  billshadow migrate approve p1/eu-west-1 --to cutover --key ~/.ssh/id_ed25519
  billshadow migrate rollback p1/eu-west-1 --reason \"INC-812\"
  billshadow migrate reconcile                                  # after a controller was killed mid-transition
  billshadow migrate routes --format json
  billshadow migrate audit --verify --since head.json")]
pub(crate) struct MigrateArgs {
    #[command(subcommand)]
    pub(crate) command: MigrateCommand,
    /// The migration policy.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "policy.toml"
    )]
    pub(crate) policy: PathBuf,
    /// The run store (default: BILLSHADOW_STORE, else ./billshadow.db).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Who acts (default: $USER); approvals by the initiator of a step do not count.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// The time to act at (RFC 3339), instead of now: for tests and dry runs of a freeze.
    #[arg(long, global = true, value_name = "TIME", value_parser = time)]
    pub(crate) now: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long, global = true, value_enum, default_value_t = MigrateFormat::Text)]
    pub(crate) format: MigrateFormat,
    /// The controller's private key, when the policy has an `[audit] public_key` (default:
    /// the file BILLSHADOW_CONTROLLER_KEY names).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) controller_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Create the policy's cells in the store (in `legacy`).
    Init,
    /// Validate the policy; errors point at the line.
    Lint,
    /// Every cell: state, evidence, verdict, what blocks the next step.
    Status,
    /// What `advance --all` would do and why; changes nothing.
    Plan,
    /// Judge one cell's next step, read-only: exit 0 pass, 1 blocked, 2 configuration error.
    Gate {
        cell: crate::cell::CellId,
        /// The step to judge (must be the cell's next one).
        #[arg(long, value_name = "STEP")]
        to: Option<crate::cell::StepName>,
        /// Also write the verdict as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Move a cell (or every cell whose gate passes) one step.
    ///
    /// Out of a canary step or cutover, a step needs a run started since the last step and
    /// `min_step_hours` at it. A step that needs approvals is signed by its initiator
    /// (`--key` or `--signature`), whose own approval does not count.
    #[command(after_help = "Examples:
  billshadow migrate advance p1/eu-west-1 --to canary:5
  billshadow migrate advance p1/eu-west-1 --to cutover --key ~/.ssh/id_ed25519
  billshadow migrate advance --all")]
    Advance {
        cell: Option<crate::cell::CellId>,
        #[arg(long, conflicts_with = "cell")]
        all: bool,
        /// Move only if this is the cell's next step (so a repeated command never moves twice):
        /// shadow, canary (the first step), canary:PERCENT, cutover, decommissioned.
        #[arg(long, conflicts_with = "all", value_name = "STEP")]
        to: Option<crate::cell::StepName>,
        #[command(flatten)]
        signing: Signing,
    },
    /// Make the legacy stack authoritative again; never blocked by a freeze.
    Rollback {
        cell: crate::cell::CellId,
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Approve a cell's next step on its current evidence, signed with an approver's key.
    ///
    /// The signature covers the cell, the step, the evidence hash and the policy hash; an
    /// approval counts only for exactly those.
    #[command(after_help = "Examples:
  billshadow migrate approve p1/eu-west-1 --to cutover --key ~/.ssh/id_ed25519
  billshadow migrate approve p1/eu-west-1 --to cutover --print-message > msg
  ssh-keygen -Y sign -n billshadow -f ~/.ssh/id_ed25519 msg        # writes msg.sig (works with ssh-agent and passphrases)
  billshadow migrate approve p1/eu-west-1 --to cutover --signature msg.sig")]
    Approve {
        cell: crate::cell::CellId,
        #[arg(long, value_name = "STEP")]
        to: Option<crate::cell::StepName>,
        #[command(flatten)]
        signing: Signing,
        /// Print the message to sign (for `ssh-keygen -Y sign -n billshadow`) and exit.
        #[arg(long, conflicts_with_all = ["key", "signature"])]
        print_message: bool,
    },
    /// Hold a cell where it is.
    Hold {
        cell: crate::cell::CellId,
        #[arg(long)]
        reason: String,
    },
    /// Release a held cell (only on a passing verdict over evidence newer than the hold).
    Release { cell: crate::cell::CellId },
    /// Finish or revert transitions left pending (the controller stopped between writing a
    /// transition and completing it): the idempotent hook runs again.
    #[command(after_help = "Examples:
  billshadow migrate reconcile                       # completes every pending transition
  billshadow migrate reconcile p1/eu-west-1 --revert # puts the router back and drops it")]
    Reconcile {
        cell: Option<crate::cell::CellId>,
        /// Revert instead: the hook moves the router back to the state the cell is in.
        #[arg(long)]
        revert: bool,
    },
    /// The routing table for the production router (`--format json`).
    Routes,
    /// The audit log; `--verify` checks its hash chain, signatures and the cells it implies.
    #[command(after_help = "Examples:
  billshadow migrate audit --head > head.json          # export to a ticket or a CI artifact
  billshadow migrate audit --verify --since head.json  # nothing before it rewritten, nothing cut")]
    Audit {
        #[arg(long)]
        verify: bool,
        /// Print the chain's head (sequence and hash) as JSON, for a checkpoint kept elsewhere.
        #[arg(long, conflicts_with = "verify")]
        head: bool,
        /// With --verify: a head printed earlier by `audit --head`.
        #[arg(long, requires = "verify", value_name = "HEAD_FILE")]
        since: Option<PathBuf>,
    },
    /// Make an OpenSSH ed25519 key pair (FILE and FILE.pub): for the controller's
    /// `[audit] public_key`, or an approver.
    Keygen {
        /// The private key's file (it must not exist); the public key goes to FILE.pub.
        #[arg(value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value = "billshadow")]
        comment: String,
    },
}

/// How a person signs an approval or the initiation of a step that needs approvals.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Signing {
    /// An unencrypted OpenSSH ed25519 private key to sign with.
    #[arg(long, value_name = "FILE", conflicts_with = "signature")]
    pub(crate) key: Option<PathBuf>,
    /// A signature made with `ssh-keygen -Y sign -n billshadow` over `--print-message`.
    #[arg(long, value_name = "FILE")]
    pub(crate) signature: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// A self-contained dashboard (inline CSS and SVG; no script, font or image from the network).
    Html,
    /// A summary for a CI step summary or a pull-request comment (at most 64 KiB).
    Md,
    /// The run as one JSON document (as `show --format json`).
    Json,
    /// One diff per line, then a summary line: for very large runs.
    Jsonl,
    /// Every diff, one per row.
    Csv,
    /// JUnit XML: a suite per cell, a case per gate criterion (with --policy).
    Junit,
    /// Prometheus text exposition.
    Prom,
}

/// Render a stored run for people and for CI, from the store, never by comparing again.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow report latest --format html --out report.html
  billshadow report latest --format md --policy policy.toml >> \"$GITHUB_STEP_SUMMARY\"
  billshadow report run-20261125T101500.000Z-1a2b --format csv --out diffs.csv
  billshadow report --format prom")]
pub(crate) struct ReportArgs {
    /// A run id, or `latest`.
    #[arg(default_value = "latest")]
    pub(crate) run: String,
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub(crate) format: ReportFormat,
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// A migration policy: adds the gate verdicts and the cells' migration states.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Your own template instead of `reports/templates/dashboard.html` (or `summary.md`).
    #[arg(long, value_name = "FILE")]
    pub(crate) template: Option<PathBuf>,
}

/// One account's two bills side by side, the differing fields marked, each diff with its class
/// and delta, and a unified diff of the rendered bills.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  billshadow explain acct-000042\n  billshadow explain run-20261125T101500.000Z-1a2b acct-000042 --format json"
)]
pub(crate) struct ExplainArgs {
    /// The run (default `latest`), or the account when only one value is given.
    pub(crate) first: String,
    /// The account.
    pub(crate) second: Option<String>,
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
}

/// The causes of a stored run's diffs: signatures (class, fields, scope and the shape of the
/// difference, such as fewer decimals, another day count or a constant ratio), ranked, each with
/// a hypothesis, counts, money per currency, cells and example accounts.
///
/// Exit 1 when a signature has failing diffs, 0 otherwise.
#[derive(Debug, Args)]
pub(crate) struct CausesArgs {
    /// A run id, or `latest`.
    #[arg(default_value = "latest")]
    pub(crate) run: String,
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Signatures shown in text (JSON lists every kept one, up to 200).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
}

/// Serve the latest run's metrics on /metrics (Prometheus text exposition).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  billshadow metrics --listen 127.0.0.1:9464 --store shadow.db")]
pub(crate) struct MetricsArgs {
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) listen: String,
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}
