//! The controller's tables: cell states, pending transitions, signed approvals and the audit
//! chain. Every write takes the controller lock row first, so a check made inside the
//! transaction (a policy limit, a compare-and-set) holds until the commit against every other
//! controller, on SQLite and on PostgreSQL alike. How records are hashed and signed is the
//! controller's: the store asks its `Sealed` of each record it appends.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, now, parse_time};
use crate::cell::{CellId, CellState, Hold, Pending, Stage};
use crate::exit::Conflict;

/// One audit record, before it is chained.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

/// A record as it is chained: what its hash covers.
pub(crate) struct AuditLink<'a> {
    pub(crate) prev: &'a str,
    pub(crate) seq: i64,
    pub(crate) at: &'a str,
    pub(crate) entry: &'a AuditEntry,
}

/// A record's hash and the signatures of the record and of the head it makes ('' unsigned).
pub(crate) struct Sealed {
    pub(crate) hash: String,
    pub(crate) signature: String,
    pub(crate) head_signature: String,
}

/// How the controller seals each record the store appends.
pub(crate) type Seal<'a> = &'a (dyn Fn(&AuditLink<'_>) -> anyhow::Result<Sealed> + Sync);

/// A stored audit record.
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord {
    pub(crate) seq: i64,
    pub(crate) at: String,
    /// `None`: its evidence is not JSON (it was edited).
    pub(crate) entry: Option<AuditEntry>,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
    pub(crate) signature: String,
}

/// The chain's head as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Head {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) signature: String,
}

/// One stored approval.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRow {
    pub(crate) approver: String,
    pub(crate) fingerprint: String,
    pub(crate) signature: String,
}

type Tx<'t> = sqlx::Transaction<'t, sqlx::Any>;

fn optional_time(cell: &str, what: &str, s: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    if s.is_empty() {
        return Ok(None);
    }
    parse_time(s)
        .map(Some)
        .with_context(|| format!("the cell {cell} has the {what} `{s}`, which is not a time"))
}

fn time_text(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

const CELL_COLUMNS: &str = "cell, stage, step, held_reason, held_since, held_run, version, entered_at, fresh_after, pending";

fn state_of(cell: &str, row: &sqlx::any::AnyRow) -> anyhow::Result<CellState> {
    let stage: String = row.try_get("stage")?;
    let reason: String = row.try_get("held_reason")?;
    let since: String = row.try_get("held_since")?;
    let step: i64 = row.try_get("step")?;
    let held = if reason.is_empty() {
        None
    } else {
        Some(Hold {
            reason,
            since: optional_time(cell, "hold time", &since)?
                .with_context(|| format!("the cell {cell} is held but has no hold time"))?,
            after_run: row.try_get("held_run")?,
        })
    };
    let pending: String = row.try_get("pending")?;
    let pending = if pending.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Pending>(&pending).with_context(|| {
            format!("the cell {cell} has a pending transition that does not read")
        })?)
    };
    let entered: String = row.try_get("entered_at")?;
    let fresh: String = row.try_get("fresh_after")?;
    Ok(CellState {
        stage: Stage::parse(&stage).ok_or_else(|| {
            anyhow!("the cell {cell} has the unknown stage `{stage}` in the store")
        })?,
        step: usize::try_from(step)
            .with_context(|| format!("the cell {cell} has the step {step} in the store"))?,
        held,
        version: row.try_get("version")?,
        entered_at: optional_time(cell, "step time", &entered)?,
        fresh_after: optional_time(cell, "evidence time", &fresh)?,
        pending,
    })
}

async fn states_in(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
) -> anyhow::Result<BTreeMap<String, CellState>> {
    let rows = sqlx::query(&format!("SELECT {CELL_COLUMNS} FROM cells"))
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|r| {
            let cell: String = r.try_get("cell")?;
            let state = state_of(&cell, r)?;
            Ok((cell, state))
        })
        .collect()
}

/// Every audit record, in sequence order.
async fn records_in(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
) -> anyhow::Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, cell, action, from_state, to_state, reason, policy_hash, evidence, prev_hash, hash, signature FROM audit ORDER BY seq",
    )
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            let raw_evidence: String = r.try_get(9)?;
            let entry = serde_json::from_str(&raw_evidence)
                .ok()
                .map(|evidence| -> anyhow::Result<AuditEntry> {
                    Ok(AuditEntry {
                        actor: r.try_get(2)?,
                        cell: r.try_get(3)?,
                        action: r.try_get(4)?,
                        from_state: r.try_get(5)?,
                        to_state: r.try_get(6)?,
                        reason: r.try_get(7)?,
                        policy_hash: r.try_get(8)?,
                        evidence,
                    })
                })
                .transpose()?;
            Ok(AuditRecord {
                seq: r.try_get(0)?,
                at: r.try_get(1)?,
                entry,
                prev_hash: r.try_get(10)?,
                hash: r.try_get(11)?,
                signature: r.try_get(12)?,
            })
        })
        .collect()
}

async fn head_in(executor: impl sqlx::Executor<'_, Database = sqlx::Any>) -> anyhow::Result<Head> {
    let r = sqlx::query("SELECT seq, hash, signature FROM audit_head WHERE id = 1")
        .fetch_one(executor)
        .await?;
    Ok(Head {
        seq: r.try_get(0)?,
        hash: r.try_get(1)?,
        signature: r.try_get(2)?,
    })
}

/// What a write's check sees, under the controller lock: every cell, and the audit log with
/// its head when asked for.
pub(crate) struct Snapshot {
    pub(crate) states: BTreeMap<String, CellState>,
    pub(crate) log: Option<(Vec<AuditRecord>, Head)>,
}

/// Takes the controller lock: the first statement of every controller write, so concurrent
/// controllers queue here (a row lock on PostgreSQL, the write lock on SQLite) and every
/// check after it sees what the others committed.
async fn lock(tx: &mut Tx<'_>) -> anyhow::Result<()> {
    sqlx::query("UPDATE controller_lock SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_state(
    tx: &mut Tx<'_>,
    cell: &str,
    expected_version: i64,
    s: &CellState,
) -> anyhow::Result<()> {
    let (reason, since, after_run) = match &s.held {
        Some(h) => (h.reason.clone(), h.since.to_rfc3339(), h.after_run.clone()),
        None => (String::new(), String::new(), String::new()),
    };
    let pending = match &s.pending {
        Some(p) => serde_json::to_string(p)?,
        None => String::new(),
    };
    let updated = sqlx::query(
        "UPDATE cells SET stage = $1, step = $2, held_reason = $3, held_since = $4, held_run = $5, \
         entered_at = $6, fresh_after = $7, pending = $8, version = version + 1, updated_at = $9 \
         WHERE cell = $10 AND version = $11",
    )
    .bind(s.stage.as_str())
    .bind(s.step as i64)
    .bind(reason)
    .bind(since)
    .bind(after_run)
    .bind(time_text(s.entered_at))
    .bind(time_text(s.fresh_after))
    .bind(pending)
    .bind(now())
    .bind(cell)
    .bind(expected_version)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Conflict(format!(
            "the cell {cell} was changed by another controller since version {expected_version}; nothing was written, run the command again"
        ))
        .into());
    }
    Ok(())
}

async fn append(tx: &mut Tx<'_>, entry: &AuditEntry, seal: Seal<'_>) -> anyhow::Result<()> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    let (seq, prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
    let at = now();
    let sealed = seal(&AuditLink {
        prev: &prev,
        seq: seq + 1,
        at: &at,
        entry,
    })?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2, signature = $3 WHERE id = 1")
        .bind(seq + 1)
        .bind(sealed.hash.as_str())
        .bind(sealed.head_signature.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, cell, action, from_state, to_state, reason, policy_hash, evidence, prev_hash, hash, signature) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
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
    .bind(sealed.hash)
    .bind(sealed.signature)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Creates the cells that do not exist yet (in `legacy`); returns how many.
    pub(crate) async fn init_cells(&self, cells: &[CellId]) -> anyhow::Result<usize> {
        let mut tx = self.pool().begin().await?;
        lock(&mut tx).await?;
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
            .execute(&mut *tx)
            .await?;
            created += done.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn cell_states(&self) -> anyhow::Result<BTreeMap<String, CellState>> {
        states_in(self.pool()).await
    }

    /// Writes `next` (a state with its pending transition, or a finished one) if the cell is
    /// still at `next.version` (the write bumps it), with its audit record, in one transaction
    /// under the controller lock. `check` sees every cell (and with `read_log` the audit log) as
    /// committed by then and may refuse the write (a policy limit, a log that does not
    /// verify): the refusal is a `Conflict` with its reason, and nothing is written.
    pub(crate) async fn write_cell(
        &self,
        cell: &str,
        next: &CellState,
        entry: &AuditEntry,
        seal: Seal<'_>,
        read_log: bool,
        check: impl FnOnce(&Snapshot) -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        lock(&mut tx).await?;
        let states = states_in(&mut *tx).await?;
        let log = if read_log {
            Some((records_in(&mut *tx).await?, head_in(&mut *tx).await?))
        } else {
            None
        };
        if let Err(reason) = check(&Snapshot { states, log }) {
            tx.rollback().await?;
            return Err(Conflict(reason).into());
        }
        write_state(&mut tx, cell, next.version, next).await?;
        append(&mut tx, entry, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a verified approval and its audit record, in one transaction.
    pub(crate) async fn approve(
        &self,
        cell: &str,
        target: &str,
        evidence_hash: &str,
        approval: &ApprovalRow,
        entry: &AuditEntry,
        seal: Seal<'_>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        lock(&mut tx).await?;
        sqlx::query(
            "DELETE FROM approvals WHERE cell = $1 AND target = $2 AND approver = $3 AND evidence_hash = $4",
        )
        .bind(cell)
        .bind(target)
        .bind(approval.approver.as_str())
        .bind(evidence_hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO approvals (cell, target, approver, evidence_hash, approved_at, fingerprint, policy_hash, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(cell)
        .bind(target)
        .bind(approval.approver.as_str())
        .bind(evidence_hash)
        .bind(now())
        .bind(approval.fingerprint.as_str())
        .bind(entry.policy_hash.as_str())
        .bind(approval.signature.as_str())
        .execute(&mut *tx)
        .await?;
        append(&mut tx, entry, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Approvals of a step on exactly this evidence.
    pub(crate) async fn approvals(
        &self,
        cell: &str,
        target: &str,
        evidence_hash: &str,
    ) -> anyhow::Result<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT approver, fingerprint, signature FROM approvals WHERE cell = $1 AND target = $2 AND evidence_hash = $3 ORDER BY approver",
        )
        .bind(cell)
        .bind(target)
        .bind(evidence_hash)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalRow {
                    approver: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    signature: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Every audit record, in sequence order.
    pub(crate) async fn audit_records(&self) -> anyhow::Result<Vec<AuditRecord>> {
        records_in(self.pool()).await
    }

    pub(crate) async fn audit_head(&self) -> anyhow::Result<Head> {
        head_in(self.pool()).await
    }

    /// The log, its head and every cell as one consistent snapshot (one transaction; repeatable
    /// read on PostgreSQL), so a verification never mistakes a concurrent write for tampering.
    pub(crate) async fn audit_snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut tx = self.pool().begin().await?;
        if !self.sqlite {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let states = states_in(&mut *tx).await?;
        let records = records_in(&mut *tx).await?;
        let head = head_in(&mut *tx).await?;
        tx.commit().await?;
        Ok(Snapshot {
            states,
            log: Some((records, head)),
        })
    }
}
