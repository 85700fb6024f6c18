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
use crate::store::cells::{AuditLink, AuditRecord, Head, Sealed};
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
        let records = self.store.audit_records().await?;
        let head = self.store.audit_head().await?;
        if let Err(problem) = self.verify_chain(&records, &head) {
            return Ok(Err(problem));
        }
        if let Some(checkpoint) = since {
            let at = records.iter().find(|r| r.seq == checkpoint.seq);
            match at {
                None => {
                    return Ok(Err(format!(
                        "the checkpoint names record {} but the log ends at record {}: records after it were cut",
                        checkpoint.seq, head.seq
                    )));
                }
                Some(r) if r.hash != checkpoint.hash => {
                    return Ok(Err(format!(
                        "record {} is not the one the checkpoint names (hash {} there, {} now): the log was rewritten",
                        r.seq,
                        short(&checkpoint.hash),
                        short(&r.hash)
                    )));
                }
                Some(_) => {}
            }
        }
        let states = self.store.cell_states().await?;
        if let Err(problem) = self.verify_cells(&records, &states) {
            return Ok(Err(problem));
        }
        Ok(Ok(records.len() as u64))
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

    /// Replays the chain per cell and compares with the `cells` table.
    fn verify_cells(
        &self,
        records: &[AuditRecord],
        states: &BTreeMap<String, CellState>,
    ) -> Result<(), String> {
        let mut implied: BTreeMap<&str, Implied> = BTreeMap::new();
        for r in records {
            let Some(e) = &r.entry else { continue };
            let cell = implied.entry(e.cell.as_str()).or_default();
            if let Some(action) = e.action.strip_suffix("_begun") {
                cell.pending = Some((action.to_owned(), e.to_state.clone()));
                cell.version += 1;
            } else if e.action.ends_with("_completed") {
                cell.label = Some(e.to_state.clone());
                cell.pending = None;
                cell.version += 1;
            } else if e.action.ends_with("_abandoned") || e.action.ends_with("_reverted") {
                cell.pending = None;
                cell.version += 1;
            } else if matches!(
                e.action.as_str(),
                "advance" | "rollback" | "hold" | "release"
            ) {
                cell.label = Some(e.to_state.clone());
                cell.version += 1;
            }
        }
        for (name, state) in states {
            let want = implied.remove(name.as_str()).unwrap_or_default();
            let label = state.label(self.policy);
            let want_label = want.label.clone().unwrap_or_else(|| "legacy".to_owned());
            if label != want_label {
                return Err(format!(
                    "the cell {name} is {label} in the store but the audit log says {want_label}: the cells table was edited"
                ));
            }
            let pending = state.pending.as_ref().map(|p| p.to_label.clone());
            if pending != want.pending.as_ref().map(|(_, to)| to.clone()) {
                return Err(format!(
                    "the cell {name} has the pending transition {} in the store but the audit log says {}: the cells table was edited",
                    pending.as_deref().unwrap_or("none"),
                    want.pending.as_ref().map_or("none", |(_, to)| to.as_str())
                ));
            }
            if state.version != 1 + want.version {
                return Err(format!(
                    "the cell {name} is at version {} but the audit log records {} changes: the cells table was edited",
                    state.version, want.version
                ));
            }
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
    pending: Option<(String, String)>,
    version: i64,
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
