//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Every `--store`'s description: where it comes from when not given.
const STORE_HELP: &str = "The run store: a SQLite file or a postgres:// URL [env: BILLSHADOW_STORE; default: ./billshadow.db]";

mod diff;
mod generate;
pub(crate) use diff::{DiffArgs, OutputFormat, date};
pub(crate) use generate::{CohortArgs, DefectKind, PairArgs};

/// A shard as `--shard` takes it: `I/N`.
fn shard(s: &str) -> Result<crate::shard::Shard, String> {
    s.parse()
}

/// A run id as `--run-id` takes it: it names the run in every command, report and URL.
fn run_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok && s != "latest" {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a run id: letters, digits, `.`, `_` and `-` (not first), up to 128, and not `latest`"
        ))
    }
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
#[command(name = "billshadow", version = VERSION, max_term_width = 100)]
#[command(after_help = "Examples:
  billshadow demo
  billshadow diff --legacy examples/legacy.csv --modern examples/modern.csv
  billshadow run --spec spec.toml --cohort cohort.csv --store shadow.db
  billshadow report latest --format html --out report.html
  billshadow migrate status --policy policy.toml
  billshadow help run")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `billshadow --version`: the version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BILLSHADOW_COMMIT"),
    ")"
);

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print only errors on standard error: no progress bar, no log line below `error`.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// More log lines: -v for debug, -vv for trace [BILLSHADOW_LOG, when set, decides instead,
    /// e.g. BILLSHADOW_LOG=billshadow=debug].
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// When to colour output and log lines: auto colours a terminal only, unless NO_COLOR is
    /// set (not empty); CLICOLOR_FORCE (set, not 0) colours even a file or pipe.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
    /// Log lines as text, or as JSON objects, one per line (for a log collector).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
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
    Compare(CompareArgs),
    Metrics(MetricsArgs),
    Serve(ServeArgs),
    CheckSpec(CheckSpecArgs),
    /// List the built-in format mappings.
    #[command(after_help = "Examples:
  billshadow formats
  billshadow diff --legacy cur.csv --legacy-format aws-cur \\
      --modern focus.csv --modern-format focus")]
    Formats,
    #[command(subcommand)]
    Generate(Generate),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Validate a comparison spec and the format mappings it names.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  billshadow check-spec spec.toml")]
pub(crate) struct CheckSpecArgs {
    /// The comparison spec (TOML).
    pub(crate) file: PathBuf,
}

/// Generate data for tests, benchmarks and the demo.
#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:
  billshadow generate pair --accounts 2000 --seed 7 --out /tmp/pair
  billshadow generate cohort --accounts 1000 --seed 7 --out /tmp/cohort")]
pub(crate) enum Generate {
    Pair(PairArgs),
    Cohort(CohortArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TableFormat {
    /// For people: tables and aligned columns.
    Text,
    /// One JSON document.
    Json,
}

/// Replay a cohort through the legacy and the modern stack, compare every account to the
/// cent, and keep every outcome in the run store.
///
/// Each account's outcome is stored as soon as it is known; kill the process at any moment and
/// `--resume` finishes what is left, counting no account twice.
///
/// Several workers can do one run. On PostgreSQL, `--join RUN` adds a worker: workers lease
/// pages of pending accounts (`--lease`), and the accounts of a worker that dies are taken
/// by another once its lease ends; each worker ends once no account of the run is pending.
/// On any store, `--shard I/N` takes only the accounts whose FNV-1a 64 hash of the id (UTF-8
/// bytes), mod N, is I; a worker done with its shard while others are pending exits 4 (no
/// verdict yet; the worker that completes the run prints it and exits with its code).
/// `--run-id ID` lets every worker start with the same command: the first creates the run,
/// the others (same spec and cohort) join it.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow run --spec spec.toml --cohort cohort.csv
  billshadow run --resume latest
  # Replay legacy twice: which fields are noise?
  billshadow run --spec spec.toml --cohort cohort.csv --calibrate
  export BILLSHADOW_STORE=postgres://billing@db/shadow
  billshadow run --spec spec.toml --cohort cohort.csv
  # One more worker on a run under way (PostgreSQL)
  billshadow run --join run-20261125T101500.000Z-1a2b
  # Worker 0 of 4: every worker the same command but its index
  billshadow run --spec spec.toml --cohort cohort.csv \\
    --run-id nightly-2026-11-25 --shard 0/4")]
pub(crate) struct RunArgs {
    /// The comparison spec, with `kind = "command" | "http" | "sql"` on both sides.
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: Option<PathBuf>,
    /// The accounts to replay (CSV: account_id, customer_id, partition, region, period_start, period_end).
    #[arg(long, value_name = "FILE")]
    pub(crate) cohort: Option<PathBuf>,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// Accounts in flight at most (each stack also has its own cap in the spec).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) concurrency: usize,
    /// Finish an interrupted run (an id, or `latest`) instead of starting one.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["spec", "cohort", "calibrate"])]
    pub(crate) resume: Option<String>,
    /// Work on a run other workers are doing (an id): on PostgreSQL take its pending
    /// accounts with them, leased; on any store, with --shard, take this worker's shard.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["spec", "cohort", "calibrate", "resume", "run_id"])]
    pub(crate) join: Option<String>,
    /// The new run's id instead of one made from the time (letters, digits, `.`, `_`, `-`;
    /// up to 128). A run with this id already in the store, started with the same spec and
    /// cohort, is joined instead.
    #[arg(long, value_name = "ID", value_parser = run_id, conflicts_with = "resume")]
    pub(crate) run_id: Option<String>,
    /// Take only shard I of N (0 ≤ I < N): the accounts whose FNV-1a 64 hash of the id's
    /// UTF-8 bytes, mod N, is I.
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub(crate) shard: Option<crate::shard::Shard>,
    /// How long a worker's lease on the accounts it took lasts, in seconds (PostgreSQL): a
    /// live worker renews it every third of it, so a slow batch keeps its accounts; a worker
    /// killed mid-run has them taken by another once it ends.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) lease: u64,
    /// With --resume or --join: also redo the accounts whose outcome is `stack_error`,
    /// replacing it.
    #[arg(long)]
    pub(crate) retry_errors: bool,
    /// Replay the legacy stack twice and report the fields that differ (noise).
    #[arg(long)]
    pub(crate) calibrate: bool,
    /// Judge waiver expiry as of this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", value_parser = date)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// How the output is written.
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
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// How the output is written.
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
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// How the output is written.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    /// Accounts listed in the text output; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
}

/// Run the whole thing on sample stacks: generate a cohort, start a legacy batch program and a
/// modern HTTP service, shadow-run every account through both, store and summarise.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  billshadow demo\n  billshadow demo --accounts 2000 --dir /tmp/demo\n  billshadow demo --force      # again, replacing the runs of the last demo"
)]
pub(crate) struct DemoArgs {
    /// Accounts in the generated cohort.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(crate) accounts: u32,
    /// Where the cohort, usage, spec and store go (kept, so the run can be repeated by hand).
    #[arg(long, value_name = "DIR", default_value = "billshadow-demo")]
    pub(crate) dir: PathBuf,
    /// Delete the runs already in DIR's store and start again (without it, a store that holds
    /// runs is left alone and the demo stops).
    #[arg(long)]
    pub(crate) force: bool,
    /// The random seed of the generated cohort and usage (the same seed, the same data).
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MigrateFormat {
    /// For people.
    Text,
    /// For programs.
    Json,
    /// Markdown, for a CI step summary or a pull-request comment.
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
  # CI: exit 0 pass, 1 blocked, 2 configuration error
  billshadow migrate gate p1/eu-west-1 --junit gate.xml
  # A scheduled job: moves every cell whose gate passes
  billshadow migrate advance --all
  billshadow migrate approve p1/eu-west-1 --to cutover --key ~/.ssh/id_ed25519
  billshadow migrate rollback p1/eu-west-1 --reason \"INC-812\"
  # After a controller was killed mid-transition
  billshadow migrate reconcile
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
    #[arg(long, global = true, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// Who acts [default: BILLSHADOW_ACTOR, else the CI system's user (GITHUB_ACTOR,
    /// GITLAB_USER_LOGIN, …), else USER]; approvals by the initiator of a step do not count.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// The time to act at (RFC 3339), instead of now: for tests and dry runs of a freeze.
    #[arg(long, global = true, value_name = "TIME", value_parser = time)]
    pub(crate) now: Option<chrono::DateTime<chrono::Utc>>,
    /// How the output is written.
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
    #[command(
        after_help = "Example:\n  billshadow migrate init --policy policy.toml --store shadow.db"
    )]
    Init,
    /// Validate the policy; errors point at the line.
    #[command(after_help = "Example:\n  billshadow migrate lint --policy policy.toml")]
    Lint,
    /// Every cell: state, evidence, verdict, what blocks the next step.
    #[command(
        after_help = "Examples:\n  billshadow migrate status --policy policy.toml --store shadow.db\n  billshadow migrate status --format json"
    )]
    Status,
    /// What `advance --all` would do and why; changes nothing.
    #[command(
        after_help = "Example:\n  billshadow migrate plan --policy policy.toml --store shadow.db"
    )]
    Plan,
    /// Judge one cell's next step, read-only: exit 0 pass, 1 blocked, 2 configuration error.
    #[command(
        after_help = "Examples:\n  billshadow migrate gate p1/eu-west-1\n  billshadow migrate gate p1/eu-west-1 --junit gate.xml --format md"
    )]
    Gate {
        /// The cell: PARTITION/REGION.
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
  billshadow migrate advance p1/eu-west-1 --to cutover \\
    --key ~/.ssh/id_ed25519
  billshadow migrate advance --all")]
    Advance {
        /// The cell: PARTITION/REGION.
        cell: Option<crate::cell::CellId>,
        /// Every cell whose gate passes and needs no approval.
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
    #[command(after_help = "Example:\n  billshadow migrate rollback p1/eu-west-1 --reason INC-812")]
    Rollback {
        /// The cell: PARTITION/REGION.
        cell: crate::cell::CellId,
        /// Why, for the audit log (an incident id, say).
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Approve a cell's next step on its current evidence, signed with an approver's key.
    ///
    /// The signature covers the cell, the step, the evidence hash and the policy hash; an
    /// approval counts only for exactly those.
    #[command(after_help = "Examples:
  billshadow migrate approve p1/eu-west-1 --to cutover --key ~/.ssh/id_ed25519
  # With a passphrase or ssh-agent: sign the message with ssh-keygen
  billshadow migrate approve p1/eu-west-1 --to cutover --print-message > msg
  ssh-keygen -Y sign -n billshadow -f ~/.ssh/id_ed25519 msg
  billshadow migrate approve p1/eu-west-1 --to cutover --signature msg.sig")]
    Approve {
        /// The cell: PARTITION/REGION.
        cell: crate::cell::CellId,
        /// The step approved (must be the cell's next one).
        #[arg(long, value_name = "STEP")]
        to: Option<crate::cell::StepName>,
        #[command(flatten)]
        signing: Signing,
        /// Print the message to sign (for `ssh-keygen -Y sign -n billshadow`) and exit.
        #[arg(long, conflicts_with_all = ["key", "signature"])]
        print_message: bool,
    },
    /// Hold a cell where it is.
    #[command(
        after_help = "Example:\n  billshadow migrate hold p1/eu-west-1 --reason \"month-end close\""
    )]
    Hold {
        /// The cell: PARTITION/REGION.
        cell: crate::cell::CellId,
        /// Why, for the audit log and `status`.
        #[arg(long)]
        reason: String,
    },
    /// Release a held cell (only on a passing verdict over evidence newer than the hold).
    #[command(after_help = "Example:\n  billshadow migrate release p1/eu-west-1")]
    Release {
        /// The cell: PARTITION/REGION.
        cell: crate::cell::CellId,
    },
    /// Finish or revert a transition left pending when a controller stopped mid-step.
    ///
    /// The controller writes a transition as pending before its hook runs and completes it
    /// after; `reconcile` runs the idempotent hook again and completes it (or reverts it).
    #[command(after_help = "Examples:
  # Completes every pending transition
  billshadow migrate reconcile
  # Puts the router back and drops the pending transition
  billshadow migrate reconcile p1/eu-west-1 --revert")]
    Reconcile {
        /// The cell: PARTITION/REGION (default: every cell with a pending transition).
        cell: Option<crate::cell::CellId>,
        /// Revert instead: the hook moves the router back to the state the cell is in.
        #[arg(long)]
        revert: bool,
    },
    /// The routing table for the production router (`--format json`).
    #[command(
        after_help = "Examples:\n  billshadow migrate routes\n  billshadow migrate routes --format json > routes.json"
    )]
    Routes,
    /// The audit log; `--verify` checks its hash chain, signatures and the cells it implies.
    #[command(after_help = "Examples:
  # Export the head to a ticket or a CI artifact
  billshadow migrate audit --head > head.json
  # Nothing before it rewritten, nothing cut
  billshadow migrate audit --verify --since head.json")]
    Audit {
        /// Check the chain, its signatures and that the cells are what it implies: exit 1 if a
        /// record was edited, deleted, inserted or cut, or a cell was edited.
        #[arg(long)]
        verify: bool,
        /// Print the chain's head (sequence and hash) as JSON, for a checkpoint kept elsewhere.
        #[arg(long, conflicts_with = "verify")]
        head: bool,
        /// With --verify: a head printed earlier by `audit --head`.
        #[arg(long, requires = "verify", value_name = "HEAD_FILE")]
        since: Option<PathBuf>,
    },
    /// Make an OpenSSH ed25519 key pair (FILE, FILE.pub) for the controller or an approver.
    #[command(after_help = "Examples:
  billshadow migrate keygen /secure/billshadow-controller
  export BILLSHADOW_CONTROLLER_KEY=/secure/billshadow-controller")]
    Keygen {
        /// The private key's file (it must not exist); the public key goes to FILE.pub.
        #[arg(value_name = "FILE")]
        out: PathBuf,
        /// The comment the public key carries (who or what it is).
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
  billshadow report latest --format md --policy policy.toml \\
      >> \"$GITHUB_STEP_SUMMARY\"
  billshadow report run-20261125T101500.000Z-1a2b --format csv --out diffs.csv
  billshadow report --format prom")]
pub(crate) struct ReportArgs {
    /// A run id, or `latest`.
    #[arg(default_value = "latest")]
    pub(crate) run: String,
    /// How the report is written.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub(crate) format: ReportFormat,
    /// Write the report here (whole, or not at all) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
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
    after_help = "Examples:\n  billshadow explain acct-000042\n  billshadow explain run-20261125T101500.000Z-1a2b acct-000042 \\\n      --format json"
)]
pub(crate) struct ExplainArgs {
    /// The run (default `latest`), or the account when only one value is given.
    pub(crate) first: String,
    /// The account.
    pub(crate) second: Option<String>,
    /// How the output is written.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
}

/// The causes of a stored run's diffs: signatures (class, fields, scope and the shape of the
/// difference, such as fewer decimals, another day count or a constant ratio), ranked, each with
/// a hypothesis, counts, money per currency, cells and example accounts.
///
/// Exit 1 when a signature has failing diffs, 0 otherwise.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  billshadow causes --store shadow.db\n  billshadow causes latest --store shadow.db --format json"
)]
pub(crate) struct CausesArgs {
    /// A run id, or `latest`.
    #[arg(default_value = "latest")]
    pub(crate) run: String,
    /// How the output is written.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub(crate) format: TableFormat,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// Signatures shown in text (JSON lists every kept one, up to 200).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
}

/// What changed between two stored runs: accounts newly mismatched, newly at parity and
/// still mismatched; signatures (causes, by their stable id) new, grown, shrunk and gone, with
/// their counts and money in each run.
///
/// Exit 1 when run B is worse somewhere (an account newly mismatched, or a new or grown
/// signature with failing diffs), 0 otherwise; 2 for a run that is not there.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow compare --store shadow.db
  billshadow compare previous latest --store shadow.db --format json
  billshadow compare run-20261124T101500.000Z-1a2b latest \\
      --store shadow.db --format md >> \"$GITHUB_STEP_SUMMARY\"")]
pub(crate) struct CompareArgs {
    /// The earlier run: a run id, `previous` (the shadow run before the newest) or `latest`.
    #[arg(default_value = "previous")]
    pub(crate) run_a: String,
    /// The later run: a run id, `latest` or `previous`.
    #[arg(default_value = "latest")]
    pub(crate) run_b: String,
    /// How the output is written.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub(crate) format: CompareFormat,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompareFormat {
    /// For people: accounts, then each signature that changed.
    Text,
    /// One JSON document (schema billshadow.compare/v1).
    Json,
    /// Markdown, for a CI step summary or a pull-request comment.
    Md,
}

/// Serve the latest run's metrics on /metrics (Prometheus text exposition).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  billshadow metrics --listen 127.0.0.1:9464 --store shadow.db")]
pub(crate) struct MetricsArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) listen: String,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// A migration policy: adds each cell's migration stage.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// Serve the migration gate to other controllers, with the metrics and a health check.
///
/// GET /gate/{partition}/{region} answers 200 when the cell's gate passes for its next step,
/// 409 when the step is blocked, 404 for a cell the policy or the store does not have, 503
/// when the store fails; the JSON body gives every criterion with its measured value and
/// threshold as numbers. GET /metrics is the latest run's Prometheus text, GET /healthz `ok`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow serve --policy policy.toml --store shadow.db
  # 200 pass, 409 blocked
  curl -s http://127.0.0.1:9464/gate/p1/eu-west-1
  billshadow serve --listen 0.0.0.0:9464 --policy policy.toml \\
      --store postgres://billshadow@db/shadow")]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) listen: String,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    pub(crate) store: Option<String>,
    /// The migration policy whose gate is served (read once, at start).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: PathBuf,
}

/// Print a completion script for a shell, generated from these definitions.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow completions bash > /etc/bash_completion.d/billshadow
  billshadow completions zsh > \"${fpath[1]}/_billshadow\"
  billshadow completions fish > ~/.config/fish/completions/billshadow.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Write the manual pages (roff), one per command, generated from these definitions.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow man --out /usr/local/share/man/man1
  man -l billshadow-migrate-gate.1")]
pub(crate) struct ManArgs {
    /// The folder to write billshadow.1, billshadow-diff.1, … into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) out: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and subcommand below `command`, with its path (`billshadow migrate gate`).
    fn walk(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_owned(), command.clone()));
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    fn commands() -> Vec<(String, clap::Command)> {
        let mut root = super::Cli::command();
        root.build();
        let mut out = Vec::new();
        walk(&root, "billshadow", &mut out);
        out
    }

    #[test]
    fn every_command_has_examples_that_fit_80_columns() {
        for (path, command) in commands() {
            let after = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(after.starts_with("Example"), "{path} has no examples");
            for line in after.lines().skip(1) {
                // Help is wrapped to the terminal: at 80 columns, no example is cut mid-command.
                assert!(line.chars().count() <= 78, "{path}: {line:?} is too long");
                assert!(line.starts_with("  "), "{path}: {line:?} is not indented");
            }
        }
    }

    #[test]
    fn every_option_and_argument_is_described() {
        for (path, command) in commands() {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.is_empty(), "{path}: `{id}` has no description");
            }
        }
    }

    #[test]
    fn every_store_option_names_its_environment_variable() {
        for (path, command) in commands() {
            if let Some(store) = command.get_arguments().find(|a| a.get_id() == "store") {
                let help = store
                    .get_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert!(help.contains("BILLSHADOW_STORE"), "{path}: {help}");
            }
        }
    }
}
