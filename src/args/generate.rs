//! The options of `generate cohort` and `generate pair`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Write a cohort with usage for the sample stacks: cohort.csv plus data/ (accounts, usage,
/// price book).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  billshadow generate cohort --accounts 1000 --seed 7 --out /tmp/cohort"
)]
pub(crate) struct CohortArgs {
    /// Accounts in the cohort.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) accounts: u32,
    /// The random seed (the same seed, the same data).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) seed: u64,
    /// The folder to write cohort.csv and data/ into.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// Write a legacy/modern canonical pair with known injected differences of every class,
/// and an answer file (answers.json) listing them.
///
/// The modern file has its columns in another order, its numbers spelled differently and its
/// lines shuffled within windows of 15,000 accounts: a pair of any size (50 M lines per side
/// included) is made in about 200 MB of memory.
///
/// With --defects, systematic defects instead (a rounding rule, a price, a tax rate, a
/// proration convention, ...), each into many accounts, with one-off noise on others; the
/// answer file then names each defect's rule and every line it changed.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  billshadow generate pair --accounts 2000 --seed 7 --out /tmp/pair
  billshadow diff --legacy /tmp/pair/legacy.csv --modern /tmp/pair/modern.csv
  # Ten systematic defects in 6,000 accounts, one-off noise on 5 % of them
  billshadow generate pair --accounts 6000 --defects all \\
      --inject-percent 5 --out /tmp/defects
  billshadow generate pair --defects tax-rate,proration --out /tmp/two")]
pub(crate) struct PairArgs {
    /// Accounts in each file.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub(crate) accounts: u32,
    /// Bill lines per account.
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub(crate) lines_per_account: u32,
    /// The random seed (the same seed, the same files).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) seed: u64,
    /// Share of accounts (0-100) that get an injected difference (with --defects: the noise,
    /// one-off differences on accounts without a defect).
    #[arg(long, value_name = "PERCENT", default_value_t = 10)]
    pub(crate) inject_percent: u32,
    /// Systematic defects to inject instead of one difference of every class, each into many
    /// accounts (comma-separated; `all` for every kind).
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub(crate) defects: Vec<DefectKind>,
    /// With --defects: share of accounts (0-100) that get one of the defects.
    #[arg(long, value_name = "PERCENT", default_value_t = 40)]
    pub(crate) defect_percent: u32,
    /// With --defects: where to write the answer file (default: answers.json in --out).
    #[arg(long, value_name = "FILE")]
    pub(crate) answers: Option<PathBuf>,
    /// The folder to write legacy.csv, modern.csv and answers.json into.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// A systematic defect `generate pair --defects` injects: one rule modern gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum DefectKind {
    /// Every kind below.
    All,
    /// USD usage amounts rounded half even instead of half up.
    RoundingMode,
    /// BHD amounts rounded to 2 decimals instead of 3.
    Decimals,
    /// GBP compute.hours priced 23/20 of legacy's unit price.
    PriceRatio,
    /// EUR VAT at 21 % instead of 20 %.
    TaxRate,
    /// The platform fee of a part month prorated over 30 days instead of 31.
    Proration,
    /// JPY platform fee 300 higher.
    FeeOffset,
    /// The promo.credit line booked as a charge.
    SignFlip,
    /// egress.gb lines not billed.
    MissingSku,
    /// period_end one day later (an exclusive end).
    PeriodEndShift,
    /// Region eu-west-1 named eu-west.
    RegionRename,
}
