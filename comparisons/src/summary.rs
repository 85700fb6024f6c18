//! The summary of a comparison: accounts, lines, classes, totals per currency, waivers.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::config::CompareConfig;
use crate::difference::{Diff, DiffClass};
use crate::money::Currency;

/// Totals of one currency over everything compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CurrencyTotals {
    pub legacy_total: Decimal,
    pub modern_total: Decimal,
    /// |modern_total − legacy_total|: the drift the whole comparison adds up to.
    pub delta_abs: Decimal,
}

/// How a waiver was used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaiverUse {
    pub id: String,
    pub owner: String,
    pub ticket: String,
    pub reason: String,
    pub expires: String,
    pub expired: bool,
    /// Diffs it waived.
    pub waived: u64,
    /// Diffs it would have waived had it not expired: they fail.
    pub matched_while_expired: u64,
}

/// A comparison's verdict. `Parity` only when every account in scope was compared and
/// nothing was left out; `Mismatch` whenever a failing diff is known; else `Incomplete`.
/// Written as `parity`, `mismatch`, `incomplete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Parity,
    Mismatch,
    Incomplete,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Parity => "parity",
            Verdict::Mismatch => "mismatch",
            Verdict::Incomplete => "incomplete",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a comparison found, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// `parity`, `mismatch` or `incomplete`. `parity` only when every account in scope was
    /// compared and no row was left out; `mismatch` whenever a failing diff is known.
    pub verdict: Verdict,
    pub accounts_compared: u64,
    pub accounts_at_parity: u64,
    pub accounts_mismatched: u64,
    pub accounts_errored: u64,
    /// At parity only because waivers cover their diffs.
    pub accounts_waived: u64,
    pub customers_compared: u64,
    /// Customers whose totals drift although none of their bills does.
    pub customers_mismatched: u64,
    pub lines_legacy: u64,
    pub lines_modern: u64,
    pub lines_matched: u64,
    pub lines_mismatched: u64,
    pub by_class: BTreeMap<DiffClass, u64>,
    pub currencies: BTreeMap<Currency, CurrencyTotals>,
    /// Diffs covered by a live waiver.
    pub waived: u64,
    /// Diffs that fail: not informational, not waived.
    pub diffs_failing: u64,
    pub waivers: Vec<WaiverUse>,
    /// Rows read but left out of the comparison (quarantined by `--max-bad-rows`).
    pub rows_quarantined: u64,
    /// Their money per currency, where a row's amount and currency could still be read.
    pub quarantined_money: BTreeMap<Currency, Decimal>,
    /// Quarantined rows whose amount or currency could not be read.
    pub rows_quarantined_unpriced: u64,
}

impl Summary {
    /// Records rows left out of the comparison: the verdict can no longer be parity.
    pub fn leave_out(
        &mut self,
        rows: u64,
        money: impl IntoIterator<Item = (Currency, Decimal)>,
        unpriced: u64,
    ) {
        self.rows_quarantined += rows;
        for (currency, amount) in money {
            *self.quarantined_money.entry(currency).or_default() += amount;
        }
        self.rows_quarantined_unpriced += unpriced;
        if self.rows_quarantined > 0 && self.verdict == Verdict::Parity {
            self.verdict = Verdict::Incomplete;
        }
    }

    pub fn is_parity(&self) -> bool {
        self.verdict == Verdict::Parity
    }
}

/// Per-customer totals in one currency: each side's lines counted to that side's own
/// customer. Totals of several comparisons (a run's accounts) add up (`add`) to the
/// customer's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerTotals {
    pub legacy: Decimal,
    pub modern: Decimal,
    /// The customer's bills that were not themselves a total mismatch, per side.
    pub unflagged_legacy: Decimal,
    pub unflagged_modern: Decimal,
}

impl CustomerTotals {
    /// Adds another part of the same customer's totals (another account's).
    pub fn add(&mut self, other: &CustomerTotals) {
        self.legacy += other.legacy;
        self.modern += other.modern;
        self.unflagged_legacy += other.unflagged_legacy;
        self.unflagged_modern += other.unflagged_modern;
    }
}

/// Counters gathered while comparing; merged across threads, then finished.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) accounts_compared: u64,
    pub(crate) accounts_at_parity: u64,
    pub(crate) accounts_mismatched: u64,
    pub(crate) accounts_waived: u64,
    pub(crate) customers_mismatched: u64,
    pub(crate) lines_legacy: u64,
    pub(crate) lines_modern: u64,
    pub(crate) lines_matched: u64,
    pub(crate) lines_mismatched: u64,
    pub(crate) by_class: [u64; DiffClass::ALL.len()],
    pub(crate) currencies: BTreeMap<Currency, (Decimal, Decimal)>,
    pub(crate) waived: u64,
    pub(crate) diffs_failing: u64,
    pub(crate) waiver_hits: Vec<u64>,
    pub(crate) waiver_expired_hits: Vec<u64>,
    customers: FxHashMap<(String, Currency), CustomerTotals>,
    /// Customers compared apart from `customers`, group by group (an out-of-core diff's).
    customers_judged_apart: u64,
}

impl Tally {
    pub(crate) fn new(config: &CompareConfig) -> Tally {
        Tally {
            accounts_compared: 0,
            accounts_at_parity: 0,
            accounts_mismatched: 0,
            accounts_waived: 0,
            customers_mismatched: 0,
            lines_legacy: 0,
            lines_modern: 0,
            lines_matched: 0,
            lines_mismatched: 0,
            by_class: [0; DiffClass::ALL.len()],
            currencies: BTreeMap::new(),
            waived: 0,
            diffs_failing: 0,
            waiver_hits: vec![0; config.waivers.len()],
            waiver_expired_hits: vec![0; config.waivers.len()],
            customers: FxHashMap::default(),
            customers_judged_apart: 0,
        }
    }

    pub(crate) fn count_diff(&mut self, diff: &Diff) {
        self.by_class[diff.class.index()] += 1;
    }

    /// Counts one account once all its diffs are known.
    pub(crate) fn count_account(&mut self, diffs: &[Diff]) {
        self.accounts_compared += 1;
        if diffs.iter().any(Diff::is_failing) {
            self.accounts_mismatched += 1;
        } else {
            self.accounts_at_parity += 1;
            if diffs.iter().any(|d| d.waiver.is_some()) {
                self.accounts_waived += 1;
            }
        }
    }

    pub(crate) fn add_currency_totals(
        &mut self,
        currency: Currency,
        legacy: Decimal,
        modern: Decimal,
    ) {
        let entry = self.currencies.entry(currency).or_default();
        entry.0 += legacy;
        entry.1 += modern;
    }

    /// Adds one side's amount to a customer's total: each side counts toward its own
    /// customer ids.
    pub(crate) fn add_customer_amount(
        &mut self,
        customer: &str,
        currency: Currency,
        is_legacy: bool,
        flagged: bool,
        amount: Decimal,
    ) {
        let entry = self
            .customers
            .entry((customer.to_owned(), currency))
            .or_default();
        match (is_legacy, flagged) {
            (true, false) => {
                entry.legacy += amount;
                entry.unflagged_legacy += amount;
            }
            (true, true) => entry.legacy += amount,
            (false, false) => {
                entry.modern += amount;
                entry.unflagged_modern += amount;
            }
            (false, true) => entry.modern += amount,
        }
    }

    /// About how many bytes the customers' totals take: the map's slots, and each
    /// customer's id on the heap (ids of up to 24 bytes, as most are). An estimate for
    /// memory limits, not a measure.
    pub(crate) fn customer_bytes(&self) -> (usize, usize) {
        const ID_ON_HEAP: usize = 40;
        let slot = std::mem::size_of::<((String, Currency), CustomerTotals)>() + 1;
        let bytes = self.customers.capacity() * slot + self.customers.len() * ID_ON_HEAP;
        (self.customers.len(), bytes)
    }

    /// The customers' totals, taken out: they are compared later, across comparisons.
    pub(crate) fn take_customers(&mut self) -> Vec<((String, Currency), CustomerTotals)> {
        let mut all: Vec<_> = std::mem::take(&mut self.customers).into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Adds customers' totals taken out of other tallies (parts of one customer add up).
    pub(crate) fn add_customer_parts(
        &mut self,
        parts: impl IntoIterator<Item = ((String, Currency), CustomerTotals)>,
    ) {
        for (key, totals) in parts {
            self.customers.entry(key).or_default().add(&totals);
        }
    }

    /// How many customers the totals held belong to (a customer may have several currencies).
    fn customer_count(&self) -> u64 {
        let customers: std::collections::BTreeSet<&str> =
            self.customers.keys().map(|(c, _)| c.as_str()).collect();
        customers.len() as u64
    }

    /// Counts a group of customers judged on its own (`PartitionedComparison`): its
    /// customers, its customer diffs and their waivers; its totals are dropped.
    pub(crate) fn merge_judged_customers(&mut self, mut group: Tally) {
        self.customers_judged_apart += group.customer_count();
        self.customers_mismatched += group.customers_mismatched;
        group.customers = FxHashMap::default();
        self.merge(group);
    }

    pub(crate) fn customers_sorted(&self) -> Vec<((String, Currency), CustomerTotals)> {
        let mut all: Vec<_> = self
            .customers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.accounts_compared += other.accounts_compared;
        self.accounts_at_parity += other.accounts_at_parity;
        self.accounts_mismatched += other.accounts_mismatched;
        self.accounts_waived += other.accounts_waived;
        self.lines_matched += other.lines_matched;
        self.lines_mismatched += other.lines_mismatched;
        for (mine, theirs) in self.by_class.iter_mut().zip(other.by_class) {
            *mine += theirs;
        }
        for (currency, (l, m)) in other.currencies {
            self.add_currency_totals(currency, l, m);
        }
        self.waived += other.waived;
        self.diffs_failing += other.diffs_failing;
        for (mine, theirs) in self.waiver_hits.iter_mut().zip(other.waiver_hits) {
            *mine += theirs;
        }
        for (mine, theirs) in self
            .waiver_expired_hits
            .iter_mut()
            .zip(other.waiver_expired_hits)
        {
            *mine += theirs;
        }
        self.add_customer_parts(other.customers);
        self.customers_judged_apart += other.customers_judged_apart;
    }

    pub(crate) fn finish(self, config: &CompareConfig) -> Summary {
        let customers_compared = self.customer_count() + self.customers_judged_apart;
        Summary {
            verdict: if self.diffs_failing == 0 {
                Verdict::Parity
            } else {
                Verdict::Mismatch
            },
            accounts_compared: self.accounts_compared,
            accounts_at_parity: self.accounts_at_parity,
            accounts_mismatched: self.accounts_mismatched,
            accounts_errored: 0,
            accounts_waived: self.accounts_waived,
            customers_compared,
            customers_mismatched: self.customers_mismatched,
            lines_legacy: self.lines_legacy,
            lines_modern: self.lines_modern,
            lines_matched: self.lines_matched,
            lines_mismatched: self.lines_mismatched,
            by_class: DiffClass::ALL
                .into_iter()
                .filter(|c| self.by_class[c.index()] > 0)
                .map(|c| (c, self.by_class[c.index()]))
                .collect(),
            currencies: self
                .currencies
                .into_iter()
                .map(|(c, (l, m))| {
                    let totals = CurrencyTotals {
                        legacy_total: c.present(l),
                        modern_total: c.present(m),
                        delta_abs: c.present((m - l).abs()),
                    };
                    (c, totals)
                })
                .collect(),
            waived: self.waived,
            diffs_failing: self.diffs_failing,
            rows_quarantined: 0,
            quarantined_money: BTreeMap::new(),
            rows_quarantined_unpriced: 0,
            waivers: config
                .waivers
                .iter()
                .enumerate()
                .map(|(i, w)| WaiverUse {
                    id: w.id.clone(),
                    owner: w.owner.clone(),
                    ticket: w.ticket.clone(),
                    reason: w.reason.clone(),
                    expires: w.expires.to_string(),
                    expired: w.is_expired(config.today),
                    waived: self.waiver_hits[i],
                    matched_while_expired: self.waiver_expired_hits[i],
                })
                .collect(),
        }
    }
}
