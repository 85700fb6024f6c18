//! What a run report shows, as read from the store by the binary: renderers take this and
//! never compute a comparison themselves.

use std::collections::BTreeMap;

use billshadow_comparisons::{Diff, Summary};
use serde::Serialize;

/// A stored run, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub kind: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub accounts_total: i64,
    pub accounts_done: i64,
    pub summary: Summary,
    pub cells: Vec<CellView>,
    /// The first diffs (of the first accounts with failing or waived diffs).
    pub diffs: Vec<Diff>,
    /// How many accounts have failing or waived diffs, listed or not.
    pub accounts_with_diffs: u64,
    /// The accounts with the largest |total delta|, with both bills.
    pub worst: Vec<AccountView>,
    /// Per class: count and sum of |delta| per currency.
    pub classes: Vec<ClassView>,
    /// Gate verdicts per cell, when a policy was given.
    pub gates: Vec<GateView>,
    /// Where the full list of diffs is (a CSV export command), for "and N more".
    pub csv_hint: String,
}

/// One partition in one region.
#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub cell: String,
    pub partition: String,
    pub region: String,
    pub accounts: u64,
    pub at_parity: u64,
    pub mismatched: u64,
    pub errored: u64,
    /// at_parity / compared, as a decimal string.
    pub parity_ratio: Option<String>,
    /// Parity as a whole percent, for colouring.
    pub parity_percent: Option<u32>,
    pub delta: BTreeMap<String, String>,
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
    /// |modern − legacy| per currency.
    pub delta: BTreeMap<String, String>,
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

/// Both bills of one account, aligned by the diffs' match keys.
pub fn bill_rows(diffs: &[Diff]) -> Vec<BillRow> {
    diffs
        .iter()
        .map(|d| {
            let empty = BTreeMap::new();
            let legacy = d.legacy.as_ref().map_or(&empty, |e| &e.fields);
            let modern = d.modern.as_ref().map_or(&empty, |e| &e.fields);
            let mut names: Vec<&String> = legacy.keys().chain(modern.keys()).collect();
            names.sort();
            names.dedup();
            let fields = names
                .into_iter()
                .map(|n| {
                    let (l, m) = (
                        legacy.get(n).cloned().unwrap_or_default(),
                        modern.get(n).cloned().unwrap_or_default(),
                    );
                    FieldPair {
                        name: n.clone(),
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
