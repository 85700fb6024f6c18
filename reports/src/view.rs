//! What a run report shows, as read from the store by the binary: renderers take this and
//! never compute a comparison themselves.

use std::collections::BTreeMap;

use billshadow_comparisons::{Diff, Summary};
use serde::Serialize;

/// What a run of this kind is, as every report names it: `shadow`, or `calibration (A/A)` for
/// a run that replays the legacy stack twice (its parity says nothing about the modern stack).
pub fn kind_label(kind: &str) -> String {
    match kind {
        "calibration" => "calibration (A/A)".to_owned(),
        other => other.to_owned(),
    }
}

/// How much of a run's cohort has a verdict. A run is complete only when it finished
/// (`completed`), every account of its cohort has an outcome and no outcome is a stack error;
/// an incomplete run is never at parity, whatever its compared accounts say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completeness {
    pub complete: bool,
    /// The run's status: `running`, `completed`, `interrupted` or `failed`.
    pub status: String,
    /// Accounts in the run's cohort.
    pub accounts_total: u64,
    /// Accounts with an outcome (compared, or a stack failed for them).
    pub accounts_done: u64,
    /// Accounts with a verdict: at parity or mismatched.
    pub accounts_compared: u64,
    /// Accounts a stack failed for (`stack_error`): no verdict.
    pub accounts_errored: u64,
    /// Accounts with no outcome yet.
    pub accounts_pending: u64,
}

impl Completeness {
    pub fn new(
        status: &str,
        accounts_total: u64,
        accounts_done: u64,
        accounts_compared: u64,
        accounts_errored: u64,
    ) -> Completeness {
        let accounts_pending = accounts_total.saturating_sub(accounts_done);
        Completeness {
            complete: status == "completed" && accounts_pending == 0 && accounts_errored == 0,
            status: status.to_owned(),
            accounts_total,
            accounts_done,
            accounts_compared,
            accounts_errored,
            accounts_pending,
        }
    }

    /// `INCOMPLETE: 512 of 5,386 accounts compared (4,874 pending, 0 stack errors; run
    /// interrupted)`, or nothing for a complete run.
    pub fn describe(&self) -> Option<String> {
        (!self.complete).then(|| {
            format!(
                "INCOMPLETE: {} of {} accounts compared ({} pending, {} stack errors; run {})",
                crate::thousands(self.accounts_compared),
                crate::thousands(self.accounts_total),
                crate::thousands(self.accounts_pending),
                crate::thousands(self.accounts_errored),
                self.status
            )
        })
    }
}

/// A stored run, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub kind: String,
    /// `shadow` or `calibration (A/A)` (`kind_label`).
    pub kind_label: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Per side (`legacy`, `modern`), the version its stack reported when the run started
    /// (`unreported (why)` when it gave none); empty when the spec names no version source.
    pub stack_versions: std::collections::BTreeMap<String, String>,
    pub accounts_total: i64,
    pub accounts_done: i64,
    /// How much of the cohort has a verdict; `summary.verdict` is `incomplete` (or
    /// `mismatch`) unless it is complete.
    pub completeness: Completeness,
    /// `completeness.describe()`: the line every format shows for an incomplete run.
    pub incomplete: Option<String>,
    pub summary: Summary,
    pub cells: Vec<CellView>,
    /// The first diffs (of the first accounts with failing or waived diffs), as the schema
    /// writes them.
    #[serde(serialize_with = "crate::json::serialize_diffs")]
    pub diffs: Vec<Diff>,
    /// Per currency (never across currencies), the accounts whose total differs most in it,
    /// with both bills.
    pub worst: Vec<WorstAccounts>,
    /// Per class: count and sum of |delta| per currency.
    pub classes: Vec<ClassView>,
    /// Gate verdicts per cell, when a policy was given.
    pub gates: Vec<GateView>,
    /// The last completed shadow runs (this one included when it is one), oldest first, for
    /// the dashboard's charts.
    pub history: Vec<crate::charts::HistoryRun>,
    /// The run's causes, ranked (`billshadow.diff/v2`'s signature objects): every format
    /// leads with them.
    pub signatures: Vec<crate::causes::SignatureJson>,
    /// Signatures past the cap, counted but not listed.
    pub signatures_left_off: u64,
    /// Where the full list of diffs is (a CSV export command), for "and N more".
    pub csv_hint: String,
    /// `--store URL` as a shell reads it (the URL's password masked), for the closing hints.
    pub store_arg: String,
}

/// The accounts whose total differs most in one currency, largest |Δ| first.
#[derive(Debug, Clone, Serialize)]
pub struct WorstAccounts {
    pub currency: String,
    pub accounts: Vec<AccountView>,
}

/// One partition in one region.
#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub cell: String,
    pub partition: String,
    pub region: String,
    /// Accounts of the cell in the run's cohort.
    pub cohort: u64,
    /// Accounts of the cell with no outcome yet.
    pub pending: u64,
    /// Accounts of the cell with an outcome.
    pub accounts: u64,
    pub at_parity: u64,
    pub mismatched: u64,
    pub errored: u64,
    /// at_parity / compared, as a decimal string.
    pub parity_ratio: Option<String>,
    /// Parity as a whole percent, for colouring.
    pub parity_percent: Option<u32>,
    pub delta: BTreeMap<String, String>,
    /// Per currency, the sum of (modern − legacy) over the accounts modern bills more.
    pub overbilled: BTreeMap<String, String>,
    /// Per currency, the sum of (legacy − modern) over the accounts modern bills less.
    pub underbilled: BTreeMap<String, String>,
    /// The controller's state label, when the store has one.
    pub state: Option<String>,
    /// The parity ratio of this cell in the last runs, oldest first (for the trend line).
    pub trend: Vec<Option<String>>,
}

/// An account with both of its bills.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub partition: String,
    pub region: String,
    /// |modern − legacy| of the total in the currency it is ranked in.
    pub delta: String,
    pub currency: String,
    pub rows: Vec<BillRow>,
}

/// One line of a bill side by side: the legacy and modern values of each field.
#[derive(Debug, Clone, Serialize)]
pub struct BillRow {
    pub key: String,
    pub class: String,
    pub fields: Vec<FieldPair>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldPair {
    pub name: String,
    pub legacy: String,
    pub modern: String,
    pub differs: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassView {
    pub class: String,
    pub informational: bool,
    pub count: u64,
    /// Sum of |delta| per currency.
    pub money: BTreeMap<String, String>,
}

/// A gate verdict for one cell.
#[derive(Debug, Clone, Serialize)]
pub struct GateView {
    pub cell: String,
    pub target: String,
    pub passed: bool,
    pub blocks: String,
    pub criteria: Vec<CriterionView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CriterionView {
    pub name: String,
    pub measured: String,
    pub threshold: String,
    pub passed: bool,
    pub inconclusive: bool,
}

impl CriterionView {
    /// The criterion as a JUnit case: a success, a failure, or an error when it could not be
    /// judged, with what was measured and what was needed.
    pub fn junit_case(&self) -> quick_junit::TestCase {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus};
        let status = if self.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(if self.inconclusive {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            });
            s.set_message(format!(
                "measured {}, needs {}",
                self.measured, self.threshold
            ));
            s.set_type(if self.inconclusive {
                "inconclusive"
            } else {
                "failed"
            });
            s
        };
        TestCase::new(self.name.clone(), status)
    }
}

/// Both bills of one account, aligned by the diffs' match keys.
pub fn bill_rows(diffs: &[Diff]) -> Vec<BillRow> {
    diffs
        .iter()
        .map(|d| {
            let empty = billshadow_comparisons::Fields::new();
            let legacy = d.legacy.as_ref().map_or(&empty, |e| &e.fields);
            let modern = d.modern.as_ref().map_or(&empty, |e| &e.fields);
            let mut names: Vec<&str> = legacy.keys().chain(modern.keys()).collect();
            names.sort();
            names.dedup();
            let fields = names
                .into_iter()
                .map(|n| {
                    let (l, m) = (
                        legacy.get(n).unwrap_or_default().to_owned(),
                        modern.get(n).unwrap_or_default().to_owned(),
                    );
                    FieldPair {
                        name: n.to_owned(),
                        differs: d.fields.iter().any(|f| f == n)
                            || (l != m && d.class.as_str().starts_with("missing")),
                        legacy: l,
                        modern: m,
                    }
                })
                .collect();
            let mut key = d
                .charge_code
                .clone()
                .unwrap_or_else(|| format!("{:?}", d.scope).to_lowercase());
            for (k, v) in &d.key {
                key.push_str(&format!(" {k}={v}"));
            }
            BillRow {
                key,
                class: d.class.as_str().to_owned(),
                fields,
            }
        })
        .collect()
}
