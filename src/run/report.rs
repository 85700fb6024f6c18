//! A stored run, read back: its summary (in the same shape as `diff`), its cells (partition ×
//! region) and its diffs. Rendered from the store, never by comparing again.

use std::collections::BTreeMap;

use anyhow::Context;
use billshadow_comparisons::{
    Comparison, Currency, CurrencyTotals, DiffClass, Summary, Verdict, WaiverUse,
};
use billshadow_reports::view::Completeness;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::run::causes::RunCauses;
use crate::store::{OutcomeStatus, RunRow, StatusCounts, Store};

/// Parity of one partition in one region.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CellStats {
    pub(crate) cell: String,
    pub(crate) partition: String,
    pub(crate) region: String,
    /// Accounts of the cell in the run's cohort.
    pub(crate) cohort: u64,
    /// Accounts of the cell with no outcome yet.
    pub(crate) pending: u64,
    /// Accounts of the cell with an outcome.
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
    /// The summary, and the diffs read back (all of them, or the first accounts' only).
    pub(crate) comparison: Comparison,
    pub(crate) cells: Vec<CellStats>,
    pub(crate) retries: u64,
    /// Accounts with a failing or waived diff, whether or not their diffs were read back:
    /// mismatched + at parity thanks to waivers + stack errors, from the same outcome counts
    /// as the summary.
    pub(crate) accounts_with_diffs: u64,
    /// How much of the cohort has a verdict.
    pub(crate) completeness: Completeness,
    /// The run's causes (stored, or computed on read).
    pub(crate) causes: RunCauses,
    /// The signature of each diff of `comparison.diffs`, in order.
    pub(crate) diff_signatures: Vec<Option<String>>,
}

/// The verdict of a stored run: `mismatch` as soon as one account is mismatched (that much
/// is known whatever the rest says), else `parity` only for a complete run, else
/// `incomplete`.
pub(crate) fn verdict(mismatched: u64, completeness: &Completeness) -> Verdict {
    if mismatched > 0 {
        Verdict::Mismatch
    } else if completeness.complete {
        Verdict::Parity
    } else {
        Verdict::Incomplete
    }
}

fn new_cell(partition: &str, region: &str) -> CellStats {
    CellStats {
        cell: format!("{partition}/{region}"),
        partition: partition.to_owned(),
        region: region.to_owned(),
        cohort: 0,
        pending: 0,
        accounts: 0,
        at_parity: 0,
        mismatched: 0,
        errored: 0,
        parity_ratio: None,
        delta: BTreeMap::new(),
        by_class: BTreeMap::new(),
    }
}

type CellKey = (String, String);

/// The cell of `partition`/`region`, made empty the first time it is met.
fn cell_of<'a>(
    cells: &'a mut BTreeMap<CellKey, CellStats>,
    partition: &str,
    region: &str,
) -> &'a mut CellStats {
    cells
        .entry((partition.to_owned(), region.to_owned()))
        .or_insert_with(|| new_cell(partition, region))
}

/// A run's outcomes counted by status (the one place that does), and their line counts.
#[derive(Default)]
struct OutcomeTally {
    counts: StatusCounts,
    waived_accounts: u64,
    lines_legacy: u64,
    lines_modern: u64,
    lines_matched: u64,
    lines_mismatched: u64,
    retries: u64,
}

impl OutcomeTally {
    async fn read(
        store: &Store,
        run: &RunRow,
        cells: &mut BTreeMap<CellKey, CellStats>,
    ) -> anyhow::Result<OutcomeTally> {
        let mut t = OutcomeTally::default();
        for o in store.outcome_counts(&run.id).await? {
            let status: OutcomeStatus = o
                .status
                .parse()
                .with_context(|| format!("run {} in {}/{}", run.id, o.partition, o.region))?;
            let cell = cell_of(cells, &o.partition, &o.region);
            let n = o.accounts as u64;
            cell.accounts += n;
            let mut counted = StatusCounts::default();
            counted.add(status, n);
            cell.at_parity += counted.parity;
            cell.mismatched += counted.mismatch;
            cell.errored += counted.stack_error;
            t.counts.add(status, n);
            if status == OutcomeStatus::Parity {
                t.waived_accounts += o.waived_accounts as u64;
            }
            t.lines_legacy += o.lines_legacy as u64;
            t.lines_modern += o.lines_modern as u64;
            t.lines_matched += o.lines_matched as u64;
            t.lines_mismatched += o.lines_mismatched as u64;
            t.retries += o.retries as u64;
        }
        Ok(t)
    }
}

/// Each cell's cohort and pending accounts; the cohort's size.
async fn add_cohort(
    store: &Store,
    run_id: &str,
    cells: &mut BTreeMap<CellKey, CellStats>,
) -> anyhow::Result<u64> {
    let mut cohort_total = 0u64;
    for (partition, region, n) in store.cohort_counts(run_id).await? {
        cell_of(cells, &partition, &region).cohort = n;
        cohort_total += n;
    }
    for cell in cells.values_mut() {
        cell.pending = cell.cohort.saturating_sub(cell.accounts);
    }
    Ok(cohort_total)
}

/// The totals per currency, and each cell's delta per currency.
async fn add_totals(
    store: &Store,
    run_id: &str,
    cells: &mut BTreeMap<CellKey, CellStats>,
) -> anyhow::Result<BTreeMap<Currency, CurrencyTotals>> {
    let mut currencies: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    let mut cell_delta: BTreeMap<CellKey, BTreeMap<String, Decimal>> = BTreeMap::new();
    for (partition, region, currency, legacy, modern) in store.cell_totals(run_id).await? {
        let entry = currencies.entry(currency.clone()).or_default();
        entry.0 += legacy;
        entry.1 += modern;
        *cell_delta
            .entry((partition, region))
            .or_default()
            .entry(currency)
            .or_default() += modern - legacy;
    }
    for (key, deltas) in cell_delta {
        cell_of(cells, &key.0, &key.1).delta = deltas
            .iter()
            .map(|(c, d)| (c.clone(), d.to_string()))
            .collect();
    }
    let mut currency_totals = BTreeMap::new();
    for (code, (l, m)) in currencies {
        let c: Currency = code
            .parse()
            .with_context(|| format!("the store holds an unknown currency {code}"))?;
        currency_totals.insert(
            c,
            CurrencyTotals {
                legacy_total: c.present(l),
                modern_total: c.present(m),
                delta_abs: c.present((m - l).abs()),
            },
        );
    }
    Ok(currency_totals)
}

/// A run's diffs counted by class, failing and waived, and each waiver's uses.
#[derive(Default)]
struct ClassTally {
    by_class: BTreeMap<DiffClass, u64>,
    waiver_hits: BTreeMap<String, u64>,
    failing: u64,
    waived: u64,
}

impl ClassTally {
    async fn read(
        store: &Store,
        run_id: &str,
        cells: &mut BTreeMap<CellKey, CellStats>,
    ) -> anyhow::Result<ClassTally> {
        let mut t = ClassTally::default();
        for d in store.diff_counts(run_id).await? {
            let class = DiffClass::from_name(&d.class)
                .with_context(|| format!("the store holds an unknown diff class {}", d.class))?;
            let n = d.count as u64;
            *t.by_class.entry(class).or_default() += n;
            if d.failing {
                t.failing += n;
            }
            if !d.waiver.is_empty() {
                t.waived += n;
                *t.waiver_hits.entry(d.waiver.clone()).or_default() += n;
            }
            *cell_of(cells, &d.partition, &d.region)
                .by_class
                .entry(d.class.clone())
                .or_default() += n;
        }
        Ok(t)
    }
}

/// The stored diffs of the first `diff_accounts` accounts (all when none), each with its
/// signature, and the run's causes.
async fn diffs_and_causes(
    store: &Store,
    run_id: &str,
    diff_accounts: Option<usize>,
) -> anyhow::Result<(
    Vec<billshadow_comparisons::Diff>,
    Vec<Option<String>>,
    RunCauses,
)> {
    let keyed = store
        .keyed_diffs(run_id, diff_accounts)
        .await
        .with_context(|| format!("a stored diff of run {run_id} does not read back"))?;
    let causes = RunCauses::load(store, run_id).await?;
    let diff_signatures: Vec<Option<String>> = keyed
        .iter()
        .map(|k| {
            causes
                .signature_of(&k.account_id, k.seq, &k.signature)
                .map(str::to_owned)
        })
        .collect();
    let diffs: Vec<billshadow_comparisons::Diff> = keyed.into_iter().map(|k| k.diff).collect();
    Ok((diffs, diff_signatures, causes))
}

impl RunReport {
    /// Reads a run back. The summary and cells are added up by the store and by a paged pass
    /// over the totals; `diff_accounts` limits the diffs read to those of the first accounts.
    pub(crate) async fn load(
        store: &Store,
        run: RunRow,
        diff_accounts: Option<usize>,
    ) -> anyhow::Result<RunReport> {
        let mut cells: BTreeMap<CellKey, CellStats> = BTreeMap::new();
        let outcomes = OutcomeTally::read(store, &run, &mut cells).await?;
        let (at_parity, mismatched, errored, waived_accounts) = (
            outcomes.counts.parity,
            outcomes.counts.mismatch,
            outcomes.counts.stack_error,
            outcomes.waived_accounts,
        );

        let cohort_total = add_cohort(store, &run.id, &mut cells).await?;
        let currency_totals = add_totals(store, &run.id, &mut cells).await?;
        let classes = ClassTally::read(store, &run.id, &mut cells).await?;
        for cell in cells.values_mut() {
            let compared = cell.at_parity + cell.mismatched;
            cell.parity_ratio = (compared > 0).then(|| {
                (Decimal::from(cell.at_parity) / Decimal::from(compared))
                    .round_dp(4)
                    .to_string()
            });
        }

        let (diffs, mut diff_signatures, causes) =
            diffs_and_causes(store, &run.id, diff_accounts).await?;

        if i64::try_from(cohort_total).ok() != Some(run.accounts_total) {
            anyhow::bail!(
                "run {} records {} accounts but the store holds {cohort_total} in its cohort",
                run.id,
                run.accounts_total
            );
        }
        let done = at_parity + mismatched + errored;
        let completeness = Completeness::new(
            run.status.as_str(),
            cohort_total,
            done,
            at_parity + mismatched,
            errored,
        );
        let (spec, today) = stored_spec(store, &run).await?;
        let mut classes = classes;
        let customers = if completeness.accounts_pending == 0 {
            CustomerTally::read(store, &run.id, None, &spec, today).await?
        } else {
            CustomerTally::default()
        };
        customers.add_to(&mut classes);
        let waivers = waiver_uses(&spec, today, &run, &classes.waiver_hits)?;
        let mut diffs = diffs;
        diffs.extend(customers.diffs.iter().cloned());
        // Customer totals are judged on read, after the run's causes were found: no signature.
        diff_signatures.resize(diffs.len(), None);
        let summary = Summary {
            verdict: if customers.failing > 0 {
                Verdict::Mismatch
            } else {
                verdict(mismatched, &completeness)
            },
            accounts_compared: at_parity + mismatched,
            accounts_at_parity: at_parity,
            accounts_mismatched: mismatched,
            accounts_errored: errored,
            accounts_waived: waived_accounts,
            customers_compared: customers.compared,
            customers_mismatched: customers.diffs.len() as u64,
            lines_legacy: outcomes.lines_legacy,
            lines_modern: outcomes.lines_modern,
            lines_matched: outcomes.lines_matched,
            lines_mismatched: outcomes.lines_mismatched,
            by_class: classes.by_class,
            currencies: currency_totals,
            waived: classes.waived,
            diffs_failing: classes.failing,
            waivers,
            rows_quarantined: 0,
            quarantined_money: BTreeMap::new(),
            rows_quarantined_unpriced: 0,
        };
        Ok(RunReport {
            run,
            comparison: Comparison { summary, diffs },
            cells: cells.into_values().collect(),
            retries: outcomes.retries,
            accounts_with_diffs: mismatched + waived_accounts + errored,
            completeness,
            causes,
            diff_signatures,
        })
    }

    /// Accounts with no outcome yet.
    pub(crate) fn accounts_pending(&self) -> u64 {
        self.completeness.accounts_pending
    }
}

/// Customers' totals across a run's accounts, compared as `diff` compares them
/// (`customer_total_diff`), from the amounts each account's outcome stored, whichever worker
/// did it: only once no account is pending, so a customer is never judged on part of its
/// accounts.
#[derive(Default)]
struct CustomerTally {
    /// Customers compared (distinct ids).
    compared: u64,
    /// The customer `total_mismatch` diffs, in customer and currency order.
    diffs: Vec<billshadow_comparisons::Diff>,
    failing: u64,
}

impl CustomerTally {
    async fn read(
        store: &Store,
        run_id: &str,
        cell: Option<(&str, &str)>,
        spec: &crate::spec::Spec,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<CustomerTally> {
        let mut config = billshadow_comparisons::CompareConfig::new(today);
        config.tolerances = spec.tolerances.clone();
        config.ignored = spec.ignored.clone();
        config.waivers = spec.waivers.clone();
        let mut t = CustomerTally::default();
        let mut last: Option<String> = None;
        store
            .for_each_customer_total(run_id, cell, |customer, currency, totals| {
                if last.as_deref() != Some(customer) {
                    t.compared += 1;
                    last = Some(customer.to_owned());
                }
                if let Some(diff) =
                    billshadow_comparisons::customer_total_diff(customer, currency, totals, &config)
                {
                    t.failing += u64::from(diff.is_failing());
                    t.diffs.push(diff);
                }
                Ok(())
            })
            .await
            .with_context(|| format!("cannot compare the customers of run {run_id}"))?;
        // The store's collation orders the rows; the diffs come in one order on every backend.
        t.diffs.sort_by(|a, b| {
            (&a.customer_id, a.currency.map(|c| c.code()))
                .cmp(&(&b.customer_id, b.currency.map(|c| c.code())))
        });
        Ok(t)
    }

    /// Counts the customer diffs with the run's others.
    fn add_to(&self, classes: &mut ClassTally) {
        for diff in &self.diffs {
            *classes.by_class.entry(diff.class).or_default() += 1;
            if diff.is_failing() {
                classes.failing += 1;
            }
            if let Some(waiver) = &diff.waiver {
                classes.waived += 1;
                *classes.waiver_hits.entry(waiver.clone()).or_default() += 1;
            }
        }
    }
}

/// A run's customers as its summary counts them: compared across its accounts, with a
/// customer diff, and with a failing one (no waiver covers it). With a cell, the customers
/// any of whose accounts is in the cell (all their accounts counted). All zero while the
/// run has accounts pending: a customer is never judged on part of its accounts.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CustomerCounts {
    pub(crate) compared: u64,
    pub(crate) mismatched: u64,
    pub(crate) failing: u64,
}

pub(crate) async fn customer_counts(
    store: &Store,
    run: &RunRow,
    pending: u64,
    cell: Option<(&str, &str)>,
) -> anyhow::Result<CustomerCounts> {
    if pending > 0 {
        return Ok(CustomerCounts::default());
    }
    let (spec, today) = stored_spec(store, run).await?;
    let t = CustomerTally::read(store, &run.id, cell, &spec, today).await?;
    Ok(CustomerCounts {
        compared: t.compared,
        mismatched: t.diffs.len() as u64,
        failing: t.failing,
    })
}

/// The spec stored with a run, and the date its waivers are judged against. A spec or date
/// that does not read back is an error: a report without its waivers would hide evidence.
async fn stored_spec(
    store: &Store,
    run: &RunRow,
) -> anyhow::Result<(crate::spec::Spec, chrono::NaiveDate)> {
    let text = store
        .spec_text(&run.id)
        .await
        .with_context(|| format!("cannot read the spec of run {}", run.id))?;
    // A stored spec that does not read back is the store's failure (3), not the user's input.
    let spec = crate::spec::Spec::parse(std::path::Path::new(&run.spec_path), &text)
        .with_context(|| {
            format!(
                "the spec stored with run {} does not parse, so its waivers are unknown",
                run.id
            )
        })
        .map_err(|e| anyhow::Error::new(crate::exit::Unavailable(e)))?;
    let today = chrono::NaiveDate::parse_from_str(&run.as_of, "%Y-%m-%d").with_context(|| {
        format!(
            "run {} has an as-of date `{}` that is not a date (YYYY-MM-DD)",
            run.id, run.as_of
        )
    })?;
    Ok((spec, today))
}

/// The spec's waivers, with how often each waived a diff in this run.
fn waiver_uses(
    spec: &crate::spec::Spec,
    today: chrono::NaiveDate,
    run: &RunRow,
    hits: &BTreeMap<String, u64>,
) -> anyhow::Result<Vec<WaiverUse>> {
    let unknown: Vec<&String> = hits
        .keys()
        .filter(|id| !spec.waivers.iter().any(|w| &w.id == *id))
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "run {} has diffs waived by {unknown:?}, which its stored spec does not list",
            run.id
        );
    }
    Ok(spec
        .waivers
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
        .collect())
}
