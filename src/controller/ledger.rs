//! The controller's part of the store: cell states written by compare-and-set, approvals, the
//! hash-chained audit log, and each cell's evidence read from the stored runs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

use super::machine::{CellState, Hold, RunEvidence, Stage};
use super::policy::CellId;
use crate::exit::Conflict;
use crate::store::{Store, now};
use crate::support::sha256_hex;

/// One audit record, before it is chained.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct AuditEntry {
    pub(crate) actor: String,
    pub(crate) cell: String,
    pub(crate) action: String,
    pub(crate) from_state: String,
    pub(crate) to_state: String,
    pub(crate) reason: String,
    pub(crate) policy_hash: String,
    pub(crate) evidence: serde_json::Value,
}

fn record_hash(prev: &str, seq: i64, at: &str, e: &AuditEntry) -> String {
    let body = serde_json::json!({
        "seq": seq, "at": at, "actor": e.actor, "cell": e.cell, "action": e.action, "from": e.from_state,
        "to": e.to_state, "reason": e.reason, "policy_hash": e.policy_hash, "evidence": e.evidence.to_string(),
    });
    sha256_hex(format!("{prev}\n{body}").as_bytes())
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn state_of(cell: &str, row: &sqlx::any::AnyRow) -> anyhow::Result<CellState> {
    let stage: String = row.try_get("stage")?;
    let reason: String = row.try_get("held_reason")?;
    let since: String = row.try_get("held_since")?;
    let after_run: String = row.try_get("held_run")?;
    let step: i64 = row.try_get("step")?;
    let held = if reason.is_empty() {
        None
    } else {
        Some(Hold {
            reason,
            since: parse_time(&since).with_context(|| {
                format!("the cell {cell} is held since `{since}`, which is not a time")
            })?,
            after_run,
        })
    };
    Ok(CellState {
        stage: Stage::parse(&stage).ok_or_else(|| {
            anyhow!("the cell {cell} has the unknown stage `{stage}` in the store")
        })?,
        step: usize::try_from(step)
            .with_context(|| format!("the cell {cell} has the step {step} in the store"))?,
        held,
        version: row.try_get("version")?,
    })
}

impl Store {
    /// Creates the policy's cells that do not exist yet (in `legacy`); returns how many.
    pub(crate) async fn init_cells(&self, cells: &[CellId]) -> anyhow::Result<usize> {
        let mut created = 0;
        for cell in cells {
            let done = sqlx::query(
                "INSERT INTO cells (cell, partition, region, stage, step, held_reason, held_since, held_run, version, updated_at) \
                 SELECT $1, $2, $3, 'legacy', 0, '', '', '', 1, $4 WHERE NOT EXISTS (SELECT 1 FROM cells WHERE cell = $1)",
            )
            .bind(cell.name())
            .bind(cell.partition.as_str())
            .bind(cell.region.as_str())
            .bind(now())
            .execute(self.pool())
            .await?;
            created += done.rows_affected() as usize;
        }
        Ok(created)
    }

    pub(crate) async fn cell_states(&self) -> anyhow::Result<BTreeMap<String, CellState>> {
        let rows = sqlx::query(
            "SELECT cell, stage, step, held_reason, held_since, held_run, version FROM cells",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let cell: String = r.try_get("cell")?;
                let state = state_of(&cell, r)?;
                Ok((cell, state))
            })
            .collect()
    }

    /// Writes `next` if the cell is still at `expected_version`, with its audit record, in one
    /// transaction; `hook` runs before the commit and its failure stops the transition.
    pub(crate) async fn transition(
        &self,
        cell: &str,
        expected_version: i64,
        next: &CellState,
        entry: &AuditEntry,
        hook: impl AsyncFnOnce() -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        let (reason, since, after_run) = match &next.held {
            Some(h) => (h.reason.clone(), h.since.to_rfc3339(), h.after_run.clone()),
            None => (String::new(), String::new(), String::new()),
        };
        let updated = sqlx::query(
            "UPDATE cells SET stage = $1, step = $2, held_reason = $3, held_since = $4, held_run = $8, version = version + 1, \
             updated_at = $5 WHERE cell = $6 AND version = $7",
        )
        .bind(next.stage.as_str())
        .bind(next.step as i64)
        .bind(reason)
        .bind(since)
        .bind(now())
        .bind(cell)
        .bind(expected_version)
        .bind(after_run)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(Conflict(format!(
                "the cell {cell} was changed by another controller since version {expected_version}; nothing was written, run the command again"
            ))
            .into());
        }
        append_audit(&mut tx, entry).await?;
        if let Err(e) = hook().await {
            tx.rollback().await?;
            let mut failed = entry.clone();
            failed.action = format!("{}_stopped", entry.action);
            failed.reason = format!("the hook failed, the transition did not happen: {e}");
            self.audit(&failed).await?;
            anyhow::bail!(
                "the transition hook failed, so {cell} stays {}: {e}",
                entry.from_state
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends an audit record on its own (approvals, refusals, hook failures).
    pub(crate) async fn audit(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn approve(
        &self,
        cell: &str,
        target: &str,
        approver: &str,
        evidence_hash: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO approvals (cell, target, approver, evidence_hash, approved_at) SELECT $1, $2, $3, $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM approvals WHERE cell = $1 AND target = $2 AND approver = $3 AND evidence_hash = $4)",
        )
        .bind(cell)
        .bind(target)
        .bind(approver)
        .bind(evidence_hash)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Approvers of a step on exactly this evidence.
    pub(crate) async fn approvers(
        &self,
        cell: &str,
        target: &str,
        evidence_hash: &str,
    ) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT approver FROM approvals WHERE cell = $1 AND target = $2 AND evidence_hash = $3 ORDER BY approver")
            .bind(cell)
            .bind(target)
            .bind(evidence_hash)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// Re-computes the chain; names the first record that was edited, or the gap a deletion left.
    pub(crate) async fn verify_audit(&self) -> anyhow::Result<Result<u64, String>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, cell, action, from_state, to_state, reason, policy_hash, evidence, prev_hash, hash FROM audit ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        let (head_seq, head_hash): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
        let mut prev = String::new();
        let mut expected_seq = 1;
        for r in &rows {
            let seq: i64 = r.try_get(0)?;
            if seq != expected_seq {
                return Ok(Err(format!(
                    "record {expected_seq} is missing (the next record is {seq}): the log was cut"
                )));
            }
            let evidence: String = r.try_get(9)?;
            let Ok(evidence) = serde_json::from_str(&evidence) else {
                return Ok(Err(format!(
                    "record {seq} was edited: its evidence is not JSON"
                )));
            };
            let entry = AuditEntry {
                actor: r.try_get(2)?,
                cell: r.try_get(3)?,
                action: r.try_get(4)?,
                from_state: r.try_get(5)?,
                to_state: r.try_get(6)?,
                reason: r.try_get(7)?,
                policy_hash: r.try_get(8)?,
                evidence,
            };
            let at: String = r.try_get(1)?;
            let stored_prev: String = r.try_get(10)?;
            let stored: String = r.try_get(11)?;
            if stored_prev != prev || record_hash(&prev, seq, &at, &entry) != stored {
                return Ok(Err(format!(
                    "record {seq} ({} {} by {} at {at}) was edited: its hash does not match",
                    entry.action, entry.cell, entry.actor
                )));
            }
            prev = stored;
            expected_seq += 1;
        }
        if head_seq != expected_seq - 1 || head_hash != prev {
            return Ok(Err(format!(
                "the log ends at record {} but its head says {head_seq}: records were deleted",
                expected_seq - 1
            )));
        }
        Ok(Ok(rows.len() as u64))
    }

    pub(crate) async fn audit_log(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let rows = sqlx::query("SELECT seq, at, actor, cell, action, from_state, to_state, reason, hash FROM audit ORDER BY seq")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "seq": r.try_get::<i64, _>(0)?, "at": r.try_get::<String, _>(1)?, "actor": r.try_get::<String, _>(2)?,
                    "cell": r.try_get::<String, _>(3)?, "action": r.try_get::<String, _>(4)?, "from": r.try_get::<String, _>(5)?,
                    "to": r.try_get::<String, _>(6)?, "reason": r.try_get::<String, _>(7)?, "hash": r.try_get::<String, _>(8)?,
                }))
            })
            .collect()
    }

    /// What the newest completed shadow runs (up to `limit`) say about one cell, newest first.
    ///
    /// Every stored value the gate depends on is decoded strictly: a run status or kind, an
    /// outcome status, a total, a delta, a waiver or a spec that does not decode is an error
    /// naming the run, never a default (the controller then holds the cell).
    pub(crate) async fn cell_evidence(
        &self,
        cell: &CellId,
        limit: usize,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<Vec<RunEvidence>> {
        // A run whose status or kind was mangled would drop out of the evidence unseen,
        // leaving older runs to pass the gate.
        let unknown = sqlx::query(
            "SELECT DISTINCT r.id, r.status, r.kind FROM runs r JOIN cohort c ON c.run_id = r.id \
             WHERE c.partition = $1 AND c.region = $2 \
             AND (r.status NOT IN ('running', 'completed', 'interrupted', 'failed') OR r.kind NOT IN ('shadow', 'calibration'))",
        )
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
            "SELECT r.id, r.started_at, r.finished_at, r.spec_path, r.spec_text, COUNT(*) FROM runs r JOIN cohort c ON c.run_id = r.id \
             WHERE r.status = 'completed' AND r.kind = 'shadow' AND c.partition = $1 AND c.region = $2 \
             GROUP BY r.id, r.started_at, r.finished_at, r.spec_path, r.spec_text ORDER BY r.started_at DESC, r.id DESC LIMIT $3",
        )
        .bind(cell.partition.as_str())
        .bind(cell.region.as_str())
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in &runs {
            let run_id: String = r.try_get(0)?;
            let e = self
                .run_evidence(cell, r, today)
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
        today: chrono::NaiveDate,
    ) -> anyhow::Result<RunEvidence> {
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
            delta: BTreeMap::new(),
            largest_unwaived: BTreeMap::new(),
            expired_waivers: Vec::new(),
        };
        self.count_outcomes(cell, &mut e).await?;
        self.add_total_drift(cell, &mut e).await?;
        let waivers_used = self.add_unwaived_diffs(cell, &mut e).await?;
        if !waivers_used.is_empty() {
            e.expired_waivers = expired_waivers(&spec_path, &spec_text, &waivers_used, today)?;
        }
        Ok(e)
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

/// Which of the waivers a run used had expired by `today`, judged by the run's own stored
/// spec: a spec that does not parse, or that does not define a waiver used, is an error.
fn expired_waivers(
    spec_path: &str,
    spec_text: &str,
    waivers_used: &BTreeSet<String>,
    today: chrono::NaiveDate,
) -> anyhow::Result<Vec<String>> {
    let spec = crate::spec::Spec::parse(std::path::Path::new(spec_path), spec_text).map_err(
        |err| {
            anyhow!(
                "its stored spec does not parse, so the waivers its diffs use ({}) cannot be checked for expiry: {err}",
                waivers_used.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        },
    )?;
    let mut expired = Vec::new();
    for id in waivers_used {
        let waiver = spec.waivers.iter().find(|w| &w.id == id).ok_or_else(|| {
            anyhow!("its diffs use the waiver {id}, which its stored spec does not define")
        })?;
        if waiver.is_expired(today) {
            expired.push(id.clone());
        }
    }
    Ok(expired)
}

async fn append_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &AuditEntry,
) -> anyhow::Result<()> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    let (seq, prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
    let at = now();
    let hash = record_hash(&prev, seq + 1, &at, entry);
    let moved = sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
        .bind(seq + 1)
        .bind(hash.as_str())
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    if moved.rows_affected() != 1 {
        return Err(Conflict(
            "another controller appended to the audit log at the same time; nothing was written"
                .to_owned(),
        )
        .into());
    }
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, cell, action, from_state, to_state, reason, policy_hash, evidence, prev_hash, hash) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(seq + 1)
    .bind(at)
    .bind(entry.actor.as_str())
    .bind(entry.cell.as_str())
    .bind(entry.action.as_str())
    .bind(entry.from_state.as_str())
    .bind(entry.to_state.as_str())
    .bind(entry.reason.as_str())
    .bind(entry.policy_hash.as_str())
    .bind(entry.evidence.to_string())
    .bind(prev)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
