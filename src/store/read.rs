//! Reading runs back: the run list, counts and totals added up by the store, diffs paged or
//! streamed, one account's detail. Nothing here writes.

use super::*;

impl Store {
    /// Per cell and currency, the run's legacy and modern totals (added up as outcomes were stored).
    pub(crate) async fn cell_totals(
        &self,
        run_id: &str,
    ) -> anyhow::Result<Vec<(String, String, String, Decimal, Decimal)>> {
        let rows = sqlx::query("SELECT partition, region, currency, legacy_total, modern_total FROM cell_totals WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let (l, m): (String, String) = (r.try_get(3)?, r.try_get(4)?);
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    l.parse()?,
                    m.parse()?,
                ))
            })
            .collect()
    }

    /// Per cell and currency, over- and under-billing apart: the sums of (modern − legacy)
    /// over the accounts modern bills more, and of (legacy − modern) over those it bills less.
    /// Only differing totals are streamed, and added up exactly in Rust.
    pub(crate) async fn cell_drift(
        &self,
        run_id: &str,
    ) -> anyhow::Result<BTreeMap<(String, String, String), (Decimal, Decimal)>> {
        use futures_util::TryStreamExt;
        let mut drift: BTreeMap<(String, String, String), (Decimal, Decimal)> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT c.partition, c.region, t.currency, t.legacy_total, t.modern_total FROM totals t \
             JOIN cohort c ON c.run_id = t.run_id AND c.account_id = t.account_id \
             WHERE t.run_id = $1 AND t.legacy_total <> t.modern_total",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (l, m): (String, String) = (r.try_get(3)?, r.try_get(4)?);
            let parse = |v: &str| {
                v.parse::<Decimal>()
                    .with_context(|| format!("the store holds a total that is not a decimal: {v}"))
            };
            let delta = parse(&m)? - parse(&l)?;
            let entry = drift
                .entry((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                .or_default();
            if delta.is_sign_positive() {
                entry.0 += delta;
            } else {
                entry.1 -= delta;
            }
        }
        Ok(drift)
    }

    /// Per currency, the `limit` accounts whose total differs most in that currency (largest
    /// |modern − legacy| first, then by account id). Money is only ever compared within one
    /// currency; the differing totals are streamed and compared exactly.
    pub(crate) async fn worst_accounts_by_currency(
        &self,
        run_id: &str,
        limit: usize,
    ) -> anyhow::Result<BTreeMap<String, Vec<(String, Decimal)>>> {
        use futures_util::TryStreamExt;
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // A min-heap of the best `limit` so far per currency (largest |Δ|, then smallest
        // account id): the weakest on top.
        type Ranked = Reverse<(Decimal, Reverse<String>)>;
        let mut heaps: BTreeMap<String, BinaryHeap<Ranked>> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT account_id, currency, legacy_total, modern_total FROM totals WHERE run_id = $1 AND legacy_total <> modern_total",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (account, currency, l, m): (String, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let parse = |v: &str| {
                v.parse::<Decimal>().with_context(|| {
                    format!("the store holds a total of {account} that is not a decimal: {v}")
                })
            };
            let delta = (parse(&m)? - parse(&l)?).abs();
            if delta.is_zero() || limit == 0 {
                continue;
            }
            let heap = heaps.entry(currency).or_default();
            let entry = Reverse((delta, Reverse(account)));
            if heap.len() < limit {
                heap.push(entry);
            } else if heap.peek().is_some_and(|weakest| entry < *weakest) {
                heap.pop();
                heap.push(entry);
            }
        }
        Ok(heaps
            .into_iter()
            .map(|(currency, heap)| {
                let mut accounts: Vec<(String, Decimal)> = heap
                    .into_iter()
                    .map(|Reverse((delta, Reverse(account)))| (account, delta))
                    .collect();
                accounts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (currency, accounts)
            })
            .collect())
    }

    pub(crate) async fn runs(&self) -> anyhow::Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.status, r.started_at, r.finished_at, r.started_by, r.spec_path, r.spec_hash, r.cohort_path, \
             r.cohort_hash, r.accounts_total, r.as_of, (SELECT COUNT(*) FROM outcomes o WHERE o.run_id = r.id) AS done, r.stack_versions \
             FROM runs r ORDER BY r.started_at DESC, r.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_of_row).collect()
    }

    /// A run by id, or for `latest` the newest shadow run and for `previous` the one before
    /// it (a run that is not there is a usage error): a calibration (A/A) run replays
    /// the legacy stack twice and says nothing about the modern one, so it is only ever read
    /// by its id.
    pub(crate) async fn resolve(&self, which: &str) -> anyhow::Result<RunRow> {
        let runs = self.runs().await?;
        if runs.is_empty() {
            return Err(crate::usage!("the store {} has no runs yet", self.url));
        }
        if which == "previous" {
            // The shadow run before the newest one.
            return runs
                .into_iter()
                .filter(|r| r.kind == RunKind::Shadow)
                .nth(1)
                .ok_or_else(|| {
                    crate::usage!(
                        "the store {} has fewer than two shadow runs, so none is `previous`",
                        self.url
                    )
                });
        }
        if which == "latest" {
            let calibrations = runs.iter().filter(|r| r.kind != RunKind::Shadow).count();
            return runs.into_iter().find(|r| r.kind == RunKind::Shadow).ok_or_else(|| {
                crate::usage!(
                    "the store {} has no shadow run yet, only {calibrations} calibration (A/A) run(s); name one by its id (see `billshadow runs`)",
                    self.url
                )
            });
        }
        runs.into_iter().find(|r| r.id == which).ok_or_else(|| {
            crate::usage!(
                "no run `{which}` in the store {} (see `billshadow runs`)",
                self.url
            )
        })
    }

    /// Each customer's totals per currency over the run's accounts (added up exactly here, the
    /// rows streamed in customer order, one customer at a time in memory), handed to `each`
    /// in that order.
    pub(crate) async fn for_each_customer_total(
        &self,
        run_id: &str,
        cell: Option<(&str, &str)>,
        mut each: impl FnMut(
            &str,
            Currency,
            &billshadow_comparisons::CustomerTotals,
        ) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use futures_util::TryStreamExt;
        // With a cell: the customers any of whose accounts is in the cell, all their accounts.
        let in_cell = if cell.is_some() {
            " AND customer_id IN (SELECT t.customer_id FROM customer_totals t JOIN cohort c \
             ON c.run_id = t.run_id AND c.account_id = t.account_id \
             WHERE t.run_id = $1 AND c.partition = $2 AND c.region = $3)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT customer_id, currency, legacy_total, modern_total, legacy_unflagged, modern_unflagged \
             FROM customer_totals WHERE run_id = $1{in_cell} ORDER BY customer_id, currency"
        );
        let mut query = sqlx::query(&sql).bind(run_id);
        if let Some((partition, region)) = cell {
            query = query.bind(partition).bind(region);
        }
        let mut rows = query.fetch(&self.pool);
        let mut current: Option<(String, String, billshadow_comparisons::CustomerTotals)> = None;
        let flush = |current: Option<(String, String, billshadow_comparisons::CustomerTotals)>,
                     each: &mut dyn FnMut(
            &str,
            Currency,
            &billshadow_comparisons::CustomerTotals,
        ) -> anyhow::Result<()>|
         -> anyhow::Result<()> {
            if let Some((customer, code, totals)) = current {
                let currency: Currency = code
                    .parse()
                    .with_context(|| format!("the store holds an unknown currency {code}"))?;
                each(&customer, currency, &totals)?;
            }
            Ok(())
        };
        while let Some(r) = rows.try_next().await? {
            let (customer, code): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let amount = |i: usize| -> anyhow::Result<Decimal> {
                let v: String = r.try_get(i)?;
                v.parse().with_context(|| {
                    format!(
                        "the store holds a customer total of {customer} that is not a decimal: {v}"
                    )
                })
            };
            let part = billshadow_comparisons::CustomerTotals {
                legacy: amount(2)?,
                modern: amount(3)?,
                unflagged_legacy: amount(4)?,
                unflagged_modern: amount(5)?,
            };
            match &mut current {
                Some((c, k, totals)) if *c == customer && *k == code => totals.add(&part),
                _ => {
                    flush(current.take(), &mut each)?;
                    current = Some((customer, code, part));
                }
            }
        }
        flush(current, &mut each)
    }

    /// Per run, its outcomes counted by status (`parity`, `mismatch`, `stack_error`).
    pub(crate) async fn outcome_status_counts(
        &self,
    ) -> anyhow::Result<BTreeMap<String, StatusCounts>> {
        let rows =
            sqlx::query("SELECT run_id, status, COUNT(*) FROM outcomes GROUP BY run_id, status")
                .fetch_all(&self.pool)
                .await?;
        let mut out: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for r in &rows {
            let (run, status, n): (String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let status: OutcomeStatus = status.parse().with_context(|| format!("run {run}"))?;
            out.entry(run).or_default().add(status, n as u64);
        }
        Ok(out)
    }

    /// One cell's outcomes in a run, counted by status.
    pub(crate) async fn cell_status_counts(
        &self,
        run_id: &str,
        partition: &str,
        region: &str,
    ) -> anyhow::Result<StatusCounts> {
        let rows = sqlx::query(
            "SELECT o.status, COUNT(*) FROM outcomes o JOIN cohort c ON c.run_id = o.run_id AND c.account_id = o.account_id \
             WHERE o.run_id = $1 AND c.partition = $2 AND c.region = $3 GROUP BY o.status",
        )
        .bind(run_id)
        .bind(partition)
        .bind(region)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = StatusCounts::default();
        for r in &rows {
            let (word, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            let status = word.parse().map_err(|_| {
                anyhow!("{n} of its outcomes have the unknown status `{word}` in the store")
            })?;
            counts.add(status, u64::try_from(n)?);
        }
        Ok(counts)
    }

    /// A run's cohort counted per cell: how many accounts each cell has to compare.
    pub(crate) async fn cohort_counts(
        &self,
        run_id: &str,
    ) -> anyhow::Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query(
            "SELECT partition, region, COUNT(*) FROM cohort WHERE run_id = $1 GROUP BY partition, region ORDER BY partition, region",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<i64, _>(2)? as u64)))
            .collect()
    }

    pub(crate) async fn spec_text(&self, run_id: &str) -> anyhow::Result<String> {
        let row = sqlx::query("SELECT spec_text FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }

    /// Outcomes counted per cell and status, with their line and retry sums: the store adds
    /// up, so reading a run back does not grow with its cohort.
    pub(crate) async fn outcome_counts(&self, run_id: &str) -> anyhow::Result<Vec<OutcomeCount>> {
        let rows = sqlx::query(
            "SELECT c.partition, c.region, o.status, COUNT(*), CAST(SUM(o.lines_legacy) AS BIGINT), \
             CAST(SUM(o.lines_modern) AS BIGINT), CAST(SUM(o.lines_matched) AS BIGINT), CAST(SUM(o.lines_mismatched) AS BIGINT), \
             CAST(SUM(o.retries) AS BIGINT), CAST(SUM(CASE WHEN o.waived > 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM outcomes o JOIN cohort c ON c.run_id = o.run_id AND c.account_id = o.account_id \
             WHERE o.run_id = $1 GROUP BY c.partition, c.region, o.status ORDER BY c.partition, c.region, o.status",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeCount {
                    partition: r.try_get(0)?,
                    region: r.try_get(1)?,
                    status: r.try_get(2)?,
                    accounts: r.try_get(3)?,
                    lines_legacy: r.try_get(4)?,
                    lines_modern: r.try_get(5)?,
                    lines_matched: r.try_get(6)?,
                    lines_mismatched: r.try_get(7)?,
                    retries: r.try_get(8)?,
                    waived_accounts: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Diffs counted per cell, class, failing and waiver.
    pub(crate) async fn diff_counts(&self, run_id: &str) -> anyhow::Result<Vec<DiffCount>> {
        let rows = sqlx::query(
            "SELECT c.partition, c.region, d.class, d.failing, d.waiver, COUNT(*) FROM diffs d \
             JOIN cohort c ON c.run_id = d.run_id AND c.account_id = d.account_id WHERE d.run_id = $1 \
             GROUP BY c.partition, c.region, d.class, d.failing, d.waiver",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DiffCount {
                    partition: r.try_get(0)?,
                    region: r.try_get(1)?,
                    class: r.try_get(2)?,
                    failing: r.try_get::<i64, _>(3)? != 0,
                    waiver: r.try_get(4)?,
                    count: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Calls `each` with every diff of a run (JSON text), its account, its sequence number
    /// and the signature its row names, in account order, streamed.
    pub(crate) async fn for_each_diff(
        &self,
        run_id: &str,
        mut each: impl FnMut(&str, &str, i64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT body, account_id, seq, signature FROM diffs WHERE run_id = $1 ORDER BY account_id, seq",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (body, account, seq, signature): (String, String, i64, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            each(&body, &account, seq, &signature)?;
        }
        Ok(())
    }

    /// Per class and currency, the sum of |delta| over a run's diffs (added up in Rust, exactly:
    /// the store only groups equal deltas).
    pub(crate) async fn class_money(
        &self,
        run_id: &str,
    ) -> anyhow::Result<BTreeMap<(String, String), Decimal>> {
        use futures_util::TryStreamExt;
        let mut out: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT class, currency, delta, COUNT(*) FROM diffs WHERE run_id = $1 AND delta <> '' GROUP BY class, currency, delta",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (class, currency, delta, n): (String, String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let d: Decimal = delta.parse().with_context(|| {
                format!("the store holds a delta that is not a decimal: {delta}")
            })?;
            *out.entry((class, currency)).or_default() += d.abs() * Decimal::from(n);
        }
        Ok(out)
    }

    /// One account's diffs, and both its bills when they were kept.
    pub(crate) async fn account_detail(
        &self,
        run_id: &str,
        account_id: &str,
    ) -> anyhow::Result<(Vec<serde_json::Value>, Option<(String, String)>)> {
        let rows = sqlx::query(
            "SELECT body FROM diffs WHERE run_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let diffs = rows
            .iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sides =
            sqlx::query("SELECT side, body FROM evidence WHERE run_id = $1 AND account_id = $2")
                .bind(run_id)
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        let (mut legacy, mut modern) = (None, None);
        for r in &sides {
            let (side, body): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if side == "legacy" {
                legacy = Some(body)
            } else {
                modern = Some(body)
            }
        }
        Ok((diffs, legacy.zip(modern)))
    }

    /// Whether the run's cohort holds the account, and its cell.
    pub(crate) async fn cohort_cell(
        &self,
        run_id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT partition, region FROM cohort WHERE run_id = $1 AND account_id = $2",
        )
        .bind(run_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}

/// The classes that never fail, as an SQL condition on `class` (from `DiffClass::ALL`, so a
/// new class is never missed).
pub(super) fn not_informational() -> String {
    let names: Vec<String> = DiffClass::ALL
        .into_iter()
        .filter(|c| c.is_informational())
        .map(|c| format!("'{}'", c.as_str()))
        .collect();
    format!("class NOT IN ({})", names.join(", "))
}

/// Outcomes of one cell with one status, added up.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeCount {
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) status: String,
    pub(crate) accounts: i64,
    pub(crate) lines_legacy: i64,
    pub(crate) lines_modern: i64,
    pub(crate) lines_matched: i64,
    pub(crate) lines_mismatched: i64,
    pub(crate) retries: i64,
    pub(crate) waived_accounts: i64,
}

/// Diffs of one cell, class, failing flag and waiver, counted.
#[derive(Debug, Clone)]
pub(crate) struct DiffCount {
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) class: String,
    pub(crate) failing: bool,
    pub(crate) waiver: String,
    pub(crate) count: i64,
}

pub(super) fn account_of_row(r: &sqlx::any::AnyRow) -> anyhow::Result<AccountRequest> {
    let get = |i: usize| {
        r.try_get::<String, _>(i)
            .with_context(|| format!("a cohort row's column {i} cannot be read"))
    };
    Ok(AccountRequest {
        account_id: get(0)?,
        customer_id: get(1)?,
        partition: get(2)?,
        region: get(3)?,
        period_start: get(4)?,
        period_end: get(5)?,
    })
}

pub(super) fn run_of_row(r: &sqlx::any::AnyRow) -> anyhow::Result<RunRow> {
    Ok(RunRow {
        id: r.try_get(0)?,
        kind: r.try_get::<String, _>(1)?.parse()?,
        status: r.try_get::<String, _>(2)?.parse()?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        started_by: r.try_get(5)?,
        spec_path: r.try_get(6)?,
        spec_hash: r.try_get(7)?,
        cohort_path: r.try_get(8)?,
        cohort_hash: r.try_get(9)?,
        accounts_total: r.try_get(10)?,
        as_of: r.try_get(11)?,
        accounts_done: r.try_get(12)?,
        stack_versions: crate::versions::from_stored(&r.try_get::<String, _>(13)?)
            .with_context(|| format!("run {}", r.try_get::<String, _>(0).unwrap_or_default()))?,
    })
}
