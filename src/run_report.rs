//! A stored run, read back: its summary (in the same shape as `diff`), its cells (partition ×
//! region) and its diffs. Rendered from the store, never by comparing again.

use std::collections::BTreeMap;

use anyhow::Context;
use billshadow_comparisons::{
    Comparison, Currency, CurrencyTotals, Diff, DiffClass, Summary, WaiverUse,
};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::store::{RunRow, Store};

/// Parity of one partition in one region.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CellStats {
    pub(crate) cell: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) accounts: u64,
    pub(crate) at_parity: u64,
    pub(crate) mismatched: u64,
    pub(crate) errored: u64,
    /// at_parity / (at_parity + mismatched), as a decimal string; null without compared accounts.
    pub(crate) parity_ratio: Option<String>,
    /// Per currency, modern − legacy over the cell's accounts.
    pub(crate) delta: BTreeMap<String, String>,
    pub(crate) by_class: BTreeMap<String, u64>,
}

/// A run read back from the store.
#[derive(Debug, Clone)]
pub(crate) struct RunReport {
    pub(crate) run: RunRow,
    pub(crate) comparison: Comparison,
    pub(crate) cells: Vec<CellStats>,
    pub(crate) retries: u64,
}

impl RunReport {
    pub(crate) async fn load(store: &Store, run: RunRow) -> anyhow::Result<RunReport> {
        let outcomes = store.outcomes(&run.id).await?;
        let stored_diffs = store.diffs(&run.id).await?;
        let totals = store.totals(&run.id).await?;
        let mut diffs = Vec::with_capacity(stored_diffs.len());
        for (account, body) in stored_diffs {
            let diff: Diff = serde_json::from_value(body)
                .with_context(|| format!("a stored diff of {account} does not read back"))?;
            diffs.push(diff);
        }

        let mut cells: BTreeMap<(String, String), CellStats> = BTreeMap::new();
        let mut cell_of: BTreeMap<&str, (String, String)> = BTreeMap::new();
        let (mut at_parity, mut mismatched, mut errored, mut waived_accounts) = (0, 0, 0, 0);
        let (
            mut lines_legacy,
            mut lines_modern,
            mut lines_matched,
            mut lines_mismatched,
            mut retries,
        ) = (0, 0, 0, 0, 0);
        for o in &outcomes {
            let key = (o.partition.clone(), o.region.clone());
            cell_of.insert(o.account_id.as_str(), key.clone());
            let cell = cells.entry(key).or_insert_with(|| CellStats {
                cell: format!("{}/{}", o.partition, o.region),
                partition: o.partition.clone(),
                region: o.region.clone(),
                accounts: 0,
                at_parity: 0,
                mismatched: 0,
                errored: 0,
                parity_ratio: None,
                delta: BTreeMap::new(),
                by_class: BTreeMap::new(),
            });
            cell.accounts += 1;
            match o.status.as_str() {
                "parity" => {
                    at_parity += 1;
                    cell.at_parity += 1;
                    if o.waived > 0 {
                        waived_accounts += 1;
                    }
                }
                "mismatch" => {
                    mismatched += 1;
                    cell.mismatched += 1;
                }
                _ => {
                    errored += 1;
                    cell.errored += 1;
                }
            }
            lines_legacy += o.lines_legacy as u64;
            lines_modern += o.lines_modern as u64;
            lines_matched += o.lines_matched as u64;
            lines_mismatched += o.lines_mismatched as u64;
            retries += o.retries as u64;
        }

        let mut currencies: BTreeMap<Currency, (Decimal, Decimal)> = BTreeMap::new();
        let mut cell_delta: BTreeMap<(String, String), BTreeMap<String, Decimal>> = BTreeMap::new();
        for (account, code, legacy, modern) in &totals {
            let currency: Currency = code
                .parse()
                .with_context(|| format!("the store holds an unknown currency {code}"))?;
            let entry = currencies.entry(currency).or_default();
            entry.0 += *legacy;
            entry.1 += *modern;
            if let Some(cell) = cell_of.get(account.as_str()) {
                *cell_delta
                    .entry(cell.clone())
                    .or_default()
                    .entry(code.clone())
                    .or_default() += *modern - *legacy;
            }
        }
        let mut by_class: BTreeMap<DiffClass, u64> = BTreeMap::new();
        let mut waiver_hits: BTreeMap<String, u64> = BTreeMap::new();
        let (mut failing, mut waived) = (0, 0);
        for d in &diffs {
            *by_class.entry(d.class).or_default() += 1;
            if d.is_failing() {
                failing += 1;
            }
            if let Some(w) = &d.waiver {
                waived += 1;
                *waiver_hits.entry(w.clone()).or_default() += 1;
            }
            if let Some(cell) = d
                .account_id
                .as_deref()
                .and_then(|a| cell_of.get(a))
                .and_then(|k| cells.get_mut(k))
            {
                *cell
                    .by_class
                    .entry(d.class.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        for (key, cell) in cells.iter_mut() {
            let compared = cell.at_parity + cell.mismatched;
            cell.parity_ratio = (compared > 0).then(|| {
                (Decimal::from(cell.at_parity) / Decimal::from(compared))
                    .round_dp(4)
                    .to_string()
            });
            if let Some(deltas) = cell_delta.get(key) {
                cell.delta = deltas
                    .iter()
                    .map(|(c, d)| (c.clone(), d.to_string()))
                    .collect();
            }
        }

        let waivers = waiver_uses(store, &run, &waiver_hits).await;
        let summary = Summary {
            verdict: if failing == 0 && errored == 0 {
                "parity"
            } else if mismatched > 0 {
                "mismatch"
            } else if errored > 0 {
                "incomplete"
            } else {
                "mismatch"
            },
            accounts_compared: at_parity + mismatched,
            accounts_at_parity: at_parity,
            accounts_mismatched: mismatched,
            accounts_errored: errored,
            accounts_waived: waived_accounts,
            customers_compared: 0,
            customers_mismatched: 0,
            lines_legacy,
            lines_modern,
            lines_matched,
            lines_mismatched,
            by_class,
            currencies: currencies
                .into_iter()
                .map(|(c, (l, m))| {
                    (
                        c,
                        CurrencyTotals {
                            legacy_total: c.present(l),
                            modern_total: c.present(m),
                            delta_abs: c.present((m - l).abs()),
                        },
                    )
                })
                .collect(),
            waived,
            diffs_failing: failing,
            waivers,
        };
        Ok(RunReport {
            run,
            comparison: Comparison { summary, diffs },
            cells: cells.into_values().collect(),
            retries,
        })
    }

    /// Accounts with no outcome yet.
    pub(crate) fn accounts_pending(&self) -> i64 {
        self.run.accounts_total - self.run.accounts_done
    }
}

/// The spec's waivers, with how often each waived a diff in this run.
async fn waiver_uses(store: &Store, run: &RunRow, hits: &BTreeMap<String, u64>) -> Vec<WaiverUse> {
    let Ok(text) = store.spec_text(&run.id).await else {
        return Vec::new();
    };
    let Ok(spec) = crate::spec::Spec::parse(std::path::Path::new(&run.spec_path), &text) else {
        return Vec::new();
    };
    let today = chrono::NaiveDate::parse_from_str(&run.as_of, "%Y-%m-%d")
        .unwrap_or_else(|_| chrono::Utc::now().date_naive());
    spec.waivers
        .iter()
        .map(|w| WaiverUse {
            id: w.id.clone(),
            owner: w.owner.clone(),
            ticket: w.ticket.clone(),
            reason: w.reason.clone(),
            expires: w.expires.to_string(),
            expired: w.is_expired(today),
            waived: hits.get(&w.id).copied().unwrap_or(0),
            matched_while_expired: 0,
        })
        .collect()
}
