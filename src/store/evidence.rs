//! What the stored runs say about one cell: the controller's evidence, every stored value the
//! gate depends on decoded strictly.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use rust_decimal::Decimal;
use sqlx::Row;

use super::{RunKind, RunStatus, Store, parse_time};
use crate::cell::{CellId, RunEvidence};

/// One run's evidence about a cell, with what judging its waivers needs: the waivers its
/// diffs used and the spec it ran with.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvidence {
    pub(crate) evidence: RunEvidence,
    pub(crate) waivers_used: BTreeSet<String>,
    pub(crate) spec_path: String,
    pub(crate) spec_text: String,
}

/// `'a', 'b'`: stored words for an SQL `IN` list (words of the store's own vocabulary, never
/// input).
fn word_list<'a>(words: impl Iterator<Item = &'a str>) -> String {
    words
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// What the newest completed shadow runs (up to `limit`) say about one cell, newest first.
    ///
    /// Every stored value the gate depends on is decoded strictly: a run status or kind, an
    /// outcome status, a total, a delta, a waiver or a spec that does not decode is an error
    /// naming the run, never a default (the controller then holds the cell).
    pub(crate) async fn cell_evidence(
        &self,
        cell: &CellId,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredEvidence>> {
        // A run whose status or kind was mangled would drop out of the evidence unseen,
        // leaving older runs to pass the gate.
        let unknown = sqlx::query(&format!(
            "SELECT DISTINCT r.id, r.status, r.kind FROM runs r JOIN cohort c ON c.run_id = r.id \
             WHERE c.partition = $1 AND c.region = $2 \
             AND (r.status NOT IN ({statuses}) OR r.kind NOT IN ({kinds}))",
            statuses = word_list(RunStatus::ALL.iter().map(|s| s.as_str())),
            kinds = word_list(RunKind::ALL.iter().map(|k| k.as_str())),
        ))
        .bind(cell.partition.as_str())
        .bind(cell.region.as_str())
        .fetch_all(self.pool())
        .await?;
        if let Some(r) = unknown.first() {
            let (id, status, kind): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            anyhow::bail!(
                "run {id} has the unknown status `{status}` or kind `{kind}` in the store"
            );
        }
        let runs = sqlx::query(
            "SELECT r.id, r.started_at, r.finished_at, r.spec_path, r.spec_text, COUNT(*), r.stack_versions FROM runs r JOIN cohort c ON c.run_id = r.id \
             WHERE r.status = $4 AND r.kind = $5 AND c.partition = $1 AND c.region = $2 \
             GROUP BY r.id, r.started_at, r.finished_at, r.spec_path, r.spec_text, r.stack_versions ORDER BY r.started_at DESC, r.id DESC LIMIT $3",
        )
        .bind(cell.partition.as_str())
        .bind(cell.region.as_str())
        .bind(limit as i64)
        .bind(RunStatus::Completed.as_str())
        .bind(RunKind::Shadow.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in &runs {
            let run_id: String = r.try_get(0)?;
            let e = self
                .run_evidence(cell, r)
                .await
                .with_context(|| format!("run {run_id}"))?;
            out.push(e);
        }
        Ok(out)
    }

    /// One completed run's evidence about one cell: its outcomes counted, its totals' drift,
    /// its largest unwaived diff per currency and the waivers it used that have expired.
    async fn run_evidence(
        &self,
        cell: &CellId,
        r: &sqlx::any::AnyRow,
    ) -> anyhow::Result<StoredEvidence> {
        let run_id: String = r.try_get(0)?;
        let started: String = r.try_get(1)?;
        let finished: Option<String> = r.try_get(2)?;
        let (spec_path, spec_text): (String, String) = (r.try_get(3)?, r.try_get(4)?);
        let mut e = RunEvidence {
            run_id: run_id.clone(),
            started_at: parse_time(&started)
                .with_context(|| format!("its start time `{started}` does not parse"))?,
            finished_at: finished
                .as_deref()
                .and_then(parse_time)
                .context("it is completed but has no finish time")?,
            cohort: u64::try_from(r.try_get::<i64, _>(5)?)?,
            compared: 0,
            mismatched: 0,
            errored: 0,
            customers_mismatched: 0,
            delta: BTreeMap::new(),
            largest_unwaived: BTreeMap::new(),
            expired_waivers: Vec::new(),
            stack_versions: crate::versions::from_stored(&r.try_get::<String, _>(6)?)?,
        };
        self.count_outcomes(cell, &mut e).await?;
        self.add_total_drift(cell, &mut e).await?;
        let waivers_used = self.add_unwaived_diffs(cell, &mut e).await?;
        Ok(StoredEvidence {
            evidence: e,
            waivers_used,
            spec_path,
            spec_text,
        })
    }

    /// The cell's outcomes in the run: compared (parity or mismatch), mismatched, errored.
    async fn count_outcomes(&self, cell: &CellId, e: &mut RunEvidence) -> anyhow::Result<()> {
        let counts = self
            .cell_status_counts(&e.run_id, cell.partition.as_str(), cell.region.as_str())
            .await?;
        e.compared += counts.compared();
        e.mismatched += counts.mismatch;
        e.errored += counts.stack_error;
        Ok(())
    }

    /// Per currency, how far the cell's modern total drifted from its legacy total.
    async fn add_total_drift(&self, cell: &CellId, e: &mut RunEvidence) -> anyhow::Result<()> {
        let totals = sqlx::query(
            "SELECT currency, legacy_total, modern_total FROM cell_totals WHERE run_id = $1 AND partition = $2 AND region = $3",
        )
        .bind(&e.run_id)
        .bind(cell.partition.as_str())
        .bind(cell.region.as_str())
        .fetch_all(self.pool())
        .await?;
        for t in &totals {
            let (currency, l, m): (String, String, String) =
                (t.try_get(0)?, t.try_get(1)?, t.try_get(2)?);
            let amount = |text: &str| {
                text.parse::<Decimal>()
                    .with_context(|| format!("its {currency} total `{text}` is not a decimal"))
            };
            let (l, m) = (amount(&l)?, amount(&m)?);
            *e.delta.entry(currency).or_default() += m - l;
        }
        Ok(())
    }

    /// Per currency, the largest failing diff no waiver covers; returns the waivers the
    /// cell's diffs used.
    async fn add_unwaived_diffs(
        &self,
        cell: &CellId,
        e: &mut RunEvidence,
    ) -> anyhow::Result<BTreeSet<String>> {
        let diffs = sqlx::query(
            "SELECT d.delta, d.currency, d.waiver, d.failing, d.account_id FROM diffs d \
             JOIN cohort c ON c.run_id = d.run_id AND c.account_id = d.account_id \
             WHERE d.run_id = $1 AND c.partition = $2 AND c.region = $3 AND (d.failing <> 0 OR d.waiver <> '')",
        )
        .bind(&e.run_id)
        .bind(cell.partition.as_str())
        .bind(cell.region.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut waivers_used = BTreeSet::new();
        for d in &diffs {
            let (delta, currency, waiver, failing, account): (String, String, String, i64, String) = (
                d.try_get(0)?,
                d.try_get(1)?,
                d.try_get(2)?,
                d.try_get(3)?,
                d.try_get(4)?,
            );
            match failing {
                0 => {}
                1 if delta.is_empty() => {} // No amount: a currency mismatch, a stack error.
                1 => {
                    let v: Decimal = delta.parse().with_context(|| {
                        format!("a diff of {account} has the delta `{delta}`, not a decimal")
                    })?;
                    if currency.is_empty() {
                        anyhow::bail!("a diff of {account} has the delta {delta} but no currency");
                    }
                    let largest = e.largest_unwaived.entry(currency).or_default();
                    *largest = (*largest).max(v.abs());
                }
                other => anyhow::bail!("a diff of {account} has the failing flag {other}"),
            }
            if !waiver.is_empty() {
                waivers_used.insert(waiver);
            }
        }
        Ok(waivers_used)
    }
}
