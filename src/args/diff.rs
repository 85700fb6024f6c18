//! The options of `diff`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A summary table and the diffs grouped by account.
    Text,
    /// One JSON document (schema billshadow.diff/v2).
    Json,
    /// One diff per line, then a summary line.
    Jsonl,
    /// Markdown for a CI step summary or a pull-request comment (at most 64 KiB).
    Md,
    /// JUnit XML: parity, completeness and a case per failing class, worst accounts in failures.
    Junit,
}

/// A date as `--as-of` takes it: YYYY-MM-DD.
pub(crate) fn date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

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
    #[arg(long, value_name = "DATE", value_parser = date)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// Accounts listed in the text report; the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// Threads used to compare (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Memory the diff may use (512MiB, 2GiB; default: half the machine's). Once a side's
    /// lines need more than an eighth of it, both inputs are split by account into temporary
    /// files and compared a partition at a time (or merged in one pass when they come
    /// ordered by account), with the same report.
    #[arg(long, value_name = "SIZE", value_parser = memory_size)]
    pub(crate) memory_limit: Option<u64>,
    /// Where the temporary files of a diff over --memory-limit go (partitions, customers'
    /// totals; default: the system's temporary directory); removed when the diff ends, even
    /// on Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DIR")]
    pub(crate) temp_dir: Option<PathBuf>,
    /// Both inputs list their lines by account, accounts in ascending byte order: they are
    /// merged in one pass in bounded memory, no partition file (a line out of order is an
    /// error). Without it, files whose size says a side will not fit an eighth of
    /// --memory-limit are merged so while they come ordered; at the first line out of order
    /// they are read again from the start, partitioned.
    #[arg(long)]
    pub(crate) sorted_by_account: bool,
}

/// Parses a size: a whole number with an optional unit, `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
/// `G`/`GB`/`GiB` (powers of 1024 all: a memory size).
fn memory_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let expected = "expected a size such as 512MiB, 2GiB or 800M";
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size; {expected}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("`{other}` is not a unit of size; {expected}")),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < 1024 {
        return Err(format!("`{s}`: the memory limit is at least 1KiB"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_powers_of_1024() {
        assert_eq!(memory_size("512MiB"), Ok(512 << 20));
        assert_eq!(memory_size("2G"), Ok(2 << 30));
        assert_eq!(memory_size("64kb"), Ok(64 << 10));
        assert_eq!(memory_size("1048576"), Ok(1 << 20));
        for bad in ["", "MiB", "12 parsecs", "-1G", "1.5G", "512B"] {
            assert!(memory_size(bad).is_err(), "{bad}");
        }
    }
}
