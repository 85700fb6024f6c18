//! The ledger's logic over the store's tables: how audit records are hashed and signed with
//! the controller's key, how the chain, its signatures, an exported checkpoint and the cells
//! it implies are verified, and each cell's evidence with its waivers judged.
//!
//! A transition leaves three kinds of record: `ACTION_begun` (written with the pending state,
//! before the hook runs), then `ACTION_completed` (the state taken) or `ACTION_abandoned` /
//! `ACTION_reverted` (the pending state dropped). Each bumps the cell's version, so the chain
//! implies every cell's state and version exactly. Stores from before pending transitions
//! hold bare `ACTION` records, each a taken state.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use ssh_key::PrivateKey;

use super::keys;
use super::machine::RunEvidence;
use super::policy::{CellId, Policy};
use crate::cell::CellState;
use crate::store::Store;
use crate::store::cells::{AuditEntry, AuditLink, AuditRecord, Head, Sealed, Snapshot};
use crate::support::sha256_hex;

/// The store with the controller's key: what appends and verifies records.
pub(crate) struct Ledger<'a> {
    pub(crate) store: &'a Store,
    pub(crate) policy: &'a Policy,
    pub(crate) key: Option<PrivateKey>,
}

fn record_hash(link: &AuditLink<'_>) -> String {
    let e = link.entry;
    let body = serde_json::json!({
        "seq": link.seq, "at": link.at, "actor": e.actor, "cell": e.cell, "action": e.action, "from": e.from_state,
        "to": e.to_state, "reason": e.reason, "policy_hash": e.policy_hash, "evidence": e.evidence.to_string(),
    });
    sha256_hex(format!("{}\n{body}", link.prev).as_bytes())
}

fn record_message(seq: i64, hash: &str) -> String {
    format!("billshadow audit record v1\nseq {seq}\nhash {hash}\n")
}

fn head_message(seq: i64, hash: &str) -> String {
    format!("billshadow audit head v1\nseq {seq}\nhash {hash}\n")
}

impl Ledger<'_> {
    /// Hashes a record into the chain and signs it and the head it makes.
    pub(crate) fn seal(&self, link: &AuditLink<'_>) -> anyhow::Result<Sealed> {
        let hash = record_hash(link);
        let (signature, head_signature) = match &self.key {
            Some(key) => (
                keys::sign(key, &record_message(link.seq, &hash))?,
                keys::sign(key, &head_message(link.seq, &hash))?,
            ),
            None => (String::new(), String::new()),
        };
        Ok(Sealed {
            hash,
            signature,
            head_signature,
        })
    }

    /// The newest completed shadow runs (up to `limit`) about one cell, newest first, each
    /// with the waivers it used that have expired by `today`.
    pub(crate) async fn evidence(
        &self,
        cell: &CellId,
        limit: usize,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<Vec<RunEvidence>> {
        let mut out = Vec::new();
        for stored in self.store.cell_evidence(cell, limit).await? {
            let mut e = stored.evidence;
            // A stored spec that does not parse holds the cell for that reason (its waivers
            // are unknown, below): its customers are not judged here.
            if crate::spec::Spec::parse(std::path::Path::new(&stored.spec_path), &stored.spec_text)
                .is_ok()
            {
                let run = self.store.resolve(&e.run_id).await?;
                let pending = e.cohort.saturating_sub(e.compared + e.errored);
                let cell = (cell.partition.as_str(), cell.region.as_str());
                e.customers_mismatched =
                    crate::run::report::customer_counts(self.store, &run, pending, Some(cell))
                        .await?
                        .failing;
            }
            if !stored.waivers_used.is_empty() {
                e.expired_waivers = expired_waivers(
                    &stored.spec_path,
                    &stored.spec_text,
                    &stored.waivers_used,
                    today,
                )
                .map_err(|err| anyhow!("run {}: {err:#}", e.run_id))?;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Checks the chain (every hash, and with the policy's `[audit] public_key` every
    /// signature), the head, the checkpoint `since` if given, and that every cell is exactly
    /// what the chain implies. `Ok(Err(problem))` names the first record or cell that is wrong.
    pub(crate) async fn verify(&self, since: Option<&Head>) -> anyhow::Result<Result<u64, String>> {
        let snapshot = self.store.audit_snapshot().await?;
        Ok(self.verify_snapshot(&snapshot, since))
    }

    /// `verify` over a snapshot read in one transaction (or under the controller lock).
    pub(crate) fn verify_snapshot(
        &self,
        snapshot: &Snapshot,
        since: Option<&Head>,
    ) -> Result<u64, String> {
        let Some((records, head)) = &snapshot.log else {
            return Err("the snapshot has no log".to_owned());
        };
        self.verify_chain(records, head)?;
        if let Some(checkpoint) = since {
            match records.iter().find(|r| r.seq == checkpoint.seq) {
                None => {
                    return Err(format!(
                        "the checkpoint names record {} but the log ends at record {}: records after it were cut",
                        checkpoint.seq, head.seq
                    ));
                }
                Some(r) if r.hash != checkpoint.hash => {
                    return Err(format!(
                        "record {} is not the one the checkpoint names (hash {} there, {} now): the log was rewritten",
                        r.seq,
                        short(&checkpoint.hash),
                        short(&r.hash)
                    ));
                }
                Some(_) => {}
            }
        }
        self.verify_cells(records, &snapshot.states)?;
        Ok(records.len() as u64)
    }

    fn verify_chain(&self, records: &[AuditRecord], head: &Head) -> Result<(), String> {
        let mut prev = String::new();
        let mut expected_seq = 1;
        for r in records {
            if r.seq != expected_seq {
                return Err(format!(
                    "record {expected_seq} is missing (the next record is {}): the log was cut",
                    r.seq
                ));
            }
            let Some(entry) = &r.entry else {
                return Err(format!(
                    "record {} was edited: its evidence is not JSON",
                    r.seq
                ));
            };
            let link = AuditLink {
                prev: &prev,
                seq: r.seq,
                at: &r.at,
                entry,
            };
            if r.prev_hash != prev || record_hash(&link) != r.hash {
                return Err(format!(
                    "record {} ({} {} by {} at {}) was edited: its hash does not match",
                    r.seq, entry.action, entry.cell, entry.actor, r.at
                ));
            }
            if let Err(why) = self.signed(&r.signature, &record_message(r.seq, &r.hash)) {
                return Err(format!(
                    "record {} ({} {} by {} at {}) {why}: the chain was recomputed without the controller key",
                    r.seq, entry.action, entry.cell, entry.actor, r.at
                ));
            }
            prev = r.hash.clone();
            expected_seq += 1;
        }
        if head.seq != expected_seq - 1 || head.hash != prev {
            return Err(format!(
                "the log ends at record {} but its head says {}: records were deleted",
                expected_seq - 1,
                head.seq
            ));
        }
        if head.seq > 0
            && let Err(why) = self.signed(&head.signature, &head_message(head.seq, &head.hash))
        {
            return Err(format!(
                "the head (record {}) {why}: the log's end was moved",
                head.seq
            ));
        }
        Ok(())
    }

    /// Whether `signature` is the controller's over `message` (always, without a key).
    fn signed(&self, signature: &str, message: &str) -> Result<(), &'static str> {
        let Some(expected) = &self.policy.audit_key else {
            return Ok(());
        };
        if signature.is_empty() {
            return Err("is not signed");
        }
        match keys::signer(signature, message) {
            Ok(k) if k.key_data() == expected.key_data() => Ok(()),
            Ok(_) => Err("is signed by another key than the policy's [audit] public_key"),
            Err(_) => Err("has a signature that does not verify"),
        }
    }

    /// Replays the chain per cell and compares with the `cells` table: each transition starts
    /// from the state the previous one left (or it was forged), and every cell is exactly the
    /// state, pending transition and version the log implies.
    fn verify_cells(
        &self,
        records: &[AuditRecord],
        states: &BTreeMap<String, CellState>,
    ) -> Result<(), String> {
        let mut implied: BTreeMap<&str, Implied> = BTreeMap::new();
        for r in records {
            let Some(e) = &r.entry else { continue };
            let cell = implied.entry(e.cell.as_str()).or_default();
            cell.replay(r.seq, e)?;
        }
        for (name, state) in states {
            let want = implied.remove(name.as_str()).unwrap_or_default();
            want.matches(name, state, self.policy)?;
        }
        if let Some((name, _)) = implied.iter().find(|(_, i)| i.version > 0) {
            return Err(format!(
                "the audit log records changes of the cell {name}, which is not in the store: it was deleted"
            ));
        }
        Ok(())
    }
}

/// What the chain implies about one cell.
#[derive(Default, Clone)]
struct Implied {
    label: Option<String>,
    /// The state as the last record that set it wrote it (records since pending transitions).
    state: Option<serde_json::Value>,
    /// The pending transition's target label and, when recorded, the whole of it.
    pending: Option<(String, Option<serde_json::Value>)>,
    version: i64,
}

impl Implied {
    fn current_label(&self) -> &str {
        self.label.as_deref().unwrap_or("legacy")
    }

    /// One record of this cell, in order.
    fn replay(&mut self, seq: i64, e: &AuditEntry) -> Result<(), String> {
        let forged = |what: &str| {
            format!(
                "record {seq} ({} {}) {what}: it does not follow from the records before it",
                e.action, e.cell
            )
        };
        if e.action.ends_with("_begun") {
            if self.pending.is_some() {
                return Err(forged("begins while another transition is pending"));
            }
            if e.from_state != self.current_label() {
                return Err(forged(&format!(
                    "starts from {} but the cell was {}",
                    e.from_state,
                    self.current_label()
                )));
            }
            self.pending = Some((e.to_state.clone(), e.evidence.get("pending").cloned()));
            self.version += 1;
        } else if e.action.ends_with("_completed") {
            match &self.pending {
                Some((to, _)) if *to == e.to_state => {}
                _ => return Err(forged("completes a transition that was not begun")),
            }
            self.label = Some(e.to_state.clone());
            self.state = e.evidence.get("state").cloned();
            self.pending = None;
            self.version += 1;
        } else if e.action.ends_with("_abandoned") || e.action.ends_with("_reverted") {
            if self.pending.is_none() {
                return Err(forged("ends a transition that was not begun"));
            }
            self.state = e.evidence.get("state").cloned().or(self.state.take());
            self.pending = None;
            self.version += 1;
        } else if matches!(
            e.action.as_str(),
            "advance" | "rollback" | "hold" | "release"
        ) {
            self.label = Some(e.to_state.clone());
            self.state = None;
            self.version += 1;
        }
        Ok(())
    }

    /// Whether the stored `state` is what the log implies.
    fn matches(&self, name: &str, state: &CellState, policy: &Policy) -> Result<(), String> {
        let edited = |what: String| format!("the cell {name} {what}: the cells table was edited");
        let label = state.label(policy);
        if label != self.current_label() {
            return Err(edited(format!(
                "is {label} in the store but the audit log says {}",
                self.current_label()
            )));
        }
        let pending = state.pending.as_ref().map(|p| p.to_label.clone());
        let want_pending = self.pending.as_ref().map(|(to, _)| to.clone());
        if pending != want_pending {
            return Err(edited(format!(
                "has the pending transition {} in the store but the audit log says {}",
                pending.as_deref().unwrap_or("none"),
                want_pending.as_deref().unwrap_or("none")
            )));
        }
        if let (Some(p), Some((_, Some(recorded)))) = (&state.pending, &self.pending)
            && serde_json::to_value(p).ok().as_ref() != Some(recorded)
        {
            return Err(edited(
                "has a pending transition other than the one the audit log recorded".to_owned(),
            ));
        }
        if let Some(recorded) = &self.state
            && &state_record(state) != recorded
        {
            return Err(edited(format!(
                "is not the state the audit log recorded (its hold, step time or evidence time differs: {} in the store, {recorded} in the log)",
                state_record(state)
            )));
        }
        if state.version != 1 + self.version {
            return Err(edited(format!(
                "is at version {} but the audit log records {} changes",
                state.version, self.version
            )));
        }
        Ok(())
    }
}

/// A cell's state as transition records carry it (everything but its version and pending
/// transition).
pub(crate) fn state_record(s: &CellState) -> serde_json::Value {
    serde_json::json!({
        "stage": s.stage,
        "step": s.step,
        "held": s.held,
        "entered_at": s.entered_at,
        "fresh_after": s.fresh_after,
    })
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
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
