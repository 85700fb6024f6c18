//! The options of `diff`.

use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;

/// Compare two exported bill files line by line, to the cent.
///
/// Lines are paired by a match key (default: account, billing period, charge code, line
/// type, usage period, region); duplicates are paired to minimise the total difference.
/// Bill and customer totals are compared too.
///
/// Exports are read as delivered: gzip, zstd and Parquet are told by their first bytes,
/// not their names; a directory's files are read in name order (part-2 before part-10)
/// as one export, every part with the first part's header; `-` is standard input. A bar
/// shows bytes per second and the time left on a terminal (not with -q).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow diff --legacy examples/legacy.csv --modern examples/modern.csv
  billshadow diff --legacy old.csv --modern new.jsonl \\
      --modern-format canonical-jsonl --format json --out diff.json
  billshadow diff --spec spec.toml --format jsonl --max-bad-rows 10
  billshadow diff --spec spec.toml --format junit --out diff.xml
  billshadow diff --spec spec.toml --format md >> \"$GITHUB_STEP_SUMMARY\"
  billshadow diff --legacy cur/ --legacy-format aws-cur2 \\
      --modern 'focus/part-*.parquet' --modern-format focus
  zcat old.csv.gz | billshadow diff --legacy - --modern new.csv.zst
  # Bounded memory: larger inputs are diffed a partition at a time
  billshadow diff --legacy big-old/ --modern big-new/ \\
      --memory-limit 512MiB --temp-dir /var/tmp
  billshadow diff --legacy old-sorted.csv.gz --modern new-sorted.csv.gz \\
      --sorted-by-account --memory-limit 256MiB")]
pub(crate) struct DiffArgs {
    /// The legacy stack's export (default: the spec's [legacy] path): files, a directory
    /// or a glob of parts, or `-` for standard input; gzip, zstd and Parquet are read as
    /// such, whatever their names.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub(crate) legacy: Vec<PathBuf>,
    /// The modern stack's export (default: the spec's [modern] path), named as --legacy's.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub(crate) modern: Vec<PathBuf>,
    /// A catalog format (see `billshadow formats`), `auto`, or a mapping file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) legacy_format: Option<String>,
    /// A catalog format (see `billshadow formats`), `auto`, or a mapping file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) modern_format: Option<String>,
    /// A comparison spec: match key, tolerances, ignored fields, waivers.
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: Option<PathBuf>,
    /// How the report is written.
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
    #[arg(long, value_name = "DATE", value_parser = super::date)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// Accounts listed in the text report; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// Threads used to compare (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Memory the diff may use (512MiB, 2GiB; default: half the machine's). Inputs that
    /// need more are split by account into temporary files and compared a partition at a
    /// time, with the same report.
    #[arg(long, value_name = "SIZE", value_parser = crate::outofcore::parse_size)]
    pub(crate) memory_limit: Option<u64>,
    /// Where the partitions of a diff over --memory-limit go (default: the system's
    /// temporary directory); removed when the diff ends, even on Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DIR")]
    pub(crate) temp_dir: Option<PathBuf>,
    /// Both inputs list their lines by account, accounts in ascending byte order: they are
    /// merged in one pass in bounded memory, no temporary file (a line out of order is an
    /// error).
    #[arg(long)]
    pub(crate) sorted_by_account: bool,
}
