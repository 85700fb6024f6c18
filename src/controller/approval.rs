//! Approvals are signatures: an approver signs (cell, step, evidence hash, policy hash) with a
//! key the policy lists; a step that needs approvals is signed by its initiator too, and only
//! distinct approver keys other than the initiator's count.

use super::Controller;
use super::judged::Judged;
use super::keys;
use super::machine::{self, Outcome as GateOutcome, Verdict};
use super::policy::{Approver, CellId};
use crate::args::Signing;
use crate::cell::StepName;
use crate::exit::{Code, Failure, Outcome, input};
use crate::store::cells::ApprovalRow;

impl Controller<'_> {
    /// The approvers whose signed approvals of `step` on this evidence still verify, each key
    /// once, the initiator's aside.
    pub(super) async fn approvals(
        &self,
        id: &CellId,
        step: &str,
        verdict: &Verdict,
        initiator: Option<&Approver>,
    ) -> Result<Vec<String>, Failure> {
        let message =
            keys::approval_message(&id.name(), step, &verdict.evidence_hash, &self.policy.hash);
        let mut names: Vec<String> = Vec::new();
        for row in self
            .store
            .approvals(&id.name(), step, &verdict.evidence_hash)
            .await?
        {
            let Ok(key) = keys::signer(&row.signature, &message) else {
                continue;
            };
            let Some(approver) = self.policy.approver(&key) else {
                continue;
            };
            if initiator.is_some_and(|i| i.fingerprint == approver.fingerprint)
                || names.contains(&approver.name)
            {
                continue;
            }
            names.push(approver.name.clone());
        }
        Ok(names)
    }

    /// A signature over `message` from `--key` (signed here) or `--signature` (a file).
    pub(super) fn signature(
        &self,
        signing: &Signing,
        message: &str,
    ) -> Result<Option<String>, Failure> {
        if let Some(path) = &signing.key {
            let key = keys::read_private(path).map_err(input)?;
            return Ok(Some(keys::sign(&key, message).map_err(input)?));
        }
        if let Some(path) = &signing.signature {
            return Ok(Some(crate::support::read_named(path).map_err(input)?));
        }
        Ok(None)
    }

    /// Who signed the initiation of `j`'s next step, if anyone did: an approver of the policy.
    pub(super) fn initiator(
        &self,
        j: &Judged,
        signing: &Signing,
    ) -> Result<Option<&Approver>, String> {
        let message = keys::advance_message(
            &j.cell.name(),
            &j.next,
            &j.verdict.evidence_hash,
            &self.policy.hash,
        );
        let Ok(Some(signature)) = self.signature(signing, &message) else {
            if signing.key.is_some() || signing.signature.is_some() {
                return Err("the key or signature given cannot be read".to_owned());
            }
            return Ok(None);
        };
        let key = keys::signer(&signature, &message)?;
        self.policy.approver(&key).map(Some).ok_or_else(|| {
            format!(
                "the key {} that signed the step is not an approver in the policy",
                keys::fingerprint(&key)
            )
        })
    }

    pub(super) async fn approve(
        &self,
        id: &CellId,
        to: Option<&StepName>,
        signing: &Signing,
        print_message: bool,
    ) -> Outcome {
        if let Some(freeze) = machine::frozen(&self.policy.freezes, self.now) {
            crate::outln!("{}: not approved: {freeze}", id.name());
            return Ok(Code::Mismatch);
        }
        let j = self.judge(id, to).await?;
        if j.target.is_none() {
            return Err(crate::usage!("{} has no next step to approve", id.name()).into());
        }
        let message = keys::approval_message(
            &id.name(),
            &j.next,
            &j.verdict.evidence_hash,
            &self.policy.hash,
        );
        if print_message {
            crate::outln!("{}", message.trim_end_matches('\n'));
            return Ok(Code::Parity);
        }
        if j.verdict.outcome != GateOutcome::Pass {
            crate::outln!(
                "{}: not approved: the gate does not pass on the current evidence ({})",
                id.name(),
                j.verdict.reasons().join("; ")
            );
            return Ok(Code::Mismatch);
        }
        let Some(signature) = self.signature(signing, &message)? else {
            return Err(crate::usage!(
                "an approval is signed: pass --key FILE, or --signature FILE made with `ssh-keygen -Y sign -n billshadow` over `--print-message`"
            )
            .into());
        };
        let key = match keys::signer(&signature, &message) {
            Ok(key) => key,
            Err(why) => {
                crate::outln!("{}: not approved: {why}", id.name());
                return Ok(Code::Mismatch);
            }
        };
        let Some(approver) = self.policy.approver(&key) else {
            crate::outln!(
                "{}: not approved: the key {} is not an approver in the policy",
                id.name(),
                keys::fingerprint(&key)
            );
            return Ok(Code::Mismatch);
        };
        let label = j.state.label(self.policy);
        let mut entry = self.entry(
            id,
            "approve",
            (&label, &label),
            &format!(
                "{} ({}) approved {} on evidence {}",
                approver.name,
                approver.fingerprint,
                j.next,
                &j.verdict.evidence_hash[..12]
            ),
            Some(&j.verdict),
        );
        entry.actor = approver.name.clone();
        let row = ApprovalRow {
            approver: approver.name.clone(),
            fingerprint: approver.fingerprint.clone(),
            signature,
        };
        let seal = |link: &crate::store::cells::AuditLink<'_>| self.ledger.seal(link);
        self.store
            .approve(
                &id.name(),
                &j.next,
                &j.verdict.evidence_hash,
                &row,
                &entry,
                &seal,
            )
            .await?;
        crate::outln!(
            "{}: {} approved {} on the current evidence ({})",
            id.name(),
            approver.name,
            j.next,
            &j.verdict.evidence_hash[..12]
        );
        Ok(Code::Parity)
    }
}
