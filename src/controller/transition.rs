//! How a decision becomes a cell's new state, so that the router and the store never silently
//! disagree: the transition is written as pending (with its `_begun` record, the policy's
//! limits checked under the controller lock), the hook runs outside any transaction, then
//! the transition is completed (`_completed`) or, when the hook failed, abandoned
//! (`_abandoned`). A controller that dies in between leaves the pending transition for
//! `migrate status` to show and `migrate reconcile` to finish or revert.

use std::collections::BTreeMap;

use super::judged::Judged;
use super::machine::{self, Action, CellState, Context, Decision, Stage};
use super::policy::CellId;
use super::{Controller, in_flight};
use crate::args::Signing;
use crate::cell::{Pending, StepName};
use crate::exit::{Code, Failure, NotNextStep, Outcome};
use crate::store::cells::{AuditLink, Snapshot};

impl Controller<'_> {
    /// Writes a decision: pending, hooked, completed.
    pub(super) async fn apply(
        &self,
        j: &Judged,
        next: &CellState,
        action: &str,
        reason: &str,
    ) -> Result<(), Failure> {
        let (from, to) = (j.state.label(self.policy), next.label(self.policy));
        let moves = j.state.moves_to(next);
        // Evidence for the step after this one: runs started after this step is taken and
        // after every run it was judged on. Run start times are the clock's, so this is too
        // (not `--now`, which only sets the time the policy's windows are judged at).
        let newest_run = j.latest.as_ref().map(|e| e.started_at);
        let taken = chrono::Utc::now();
        let fresh_after = if moves {
            Some(newest_run.map_or(taken, |r| r.max(taken)))
        } else {
            j.state.fresh_after
        };
        let pending = Pending {
            action: action.to_owned(),
            stage: next.stage,
            step: next.step,
            held: next.held.clone(),
            from_label: from.clone(),
            to_label: to.clone(),
            since: self.now,
            actor: self.actor.clone(),
            reason: reason.to_owned(),
            fresh_after,
        };
        let begun = CellState {
            pending: Some(pending.clone()),
            ..j.state.clone()
        };
        let mut entry = self.entry(
            &j.cell,
            &format!("{action}_begun"),
            (&from, &to),
            reason,
            Some(&j.verdict),
        );
        entry.evidence["pending"] = serde_json::to_value(&pending).unwrap_or_default();
        entry.evidence["approved_by"] = serde_json::json!(j.approvals);
        let check = |snapshot: &Snapshot| {
            self.ledger.verify_snapshot(snapshot, None).map_err(|problem| {
                format!("not moved: the audit log does not verify, so nothing is changed until it is looked into: {problem}")
            })?;
            self.limits(&j.cell, &j.state, next, &snapshot.states)
        };
        let seal = |link: &AuditLink<'_>| self.ledger.seal(link);
        self.store
            .write_cell(&j.cell.name(), &begun, &entry, &seal, true, check)
            .await?;
        let hooked = self.hook(&j.cell, &from, &to).await;
        self.finish(&j.cell, &begun, hooked).await
    }

    /// The policy limits that depend on other cells, checked against every cell as committed
    /// under the controller lock: no transition of this cell pending, `max_in_flight`, `after`.
    fn limits(
        &self,
        cell: &CellId,
        from: &CellState,
        next: &CellState,
        states: &BTreeMap<String, CellState>,
    ) -> Result<(), String> {
        let name = cell.name();
        // Nothing, a rollback included, overtakes a pending transition: its hook may still be
        // moving the router.
        if let Some(p) = states.get(&name).and_then(|s| s.pending.as_ref()) {
            return Err(format!(
                "not moved: the transition {} → {} is pending; `billshadow migrate reconcile` finishes it (or `--revert`s it)",
                p.from_label, p.to_label
            ));
        }
        if states.get(&name).is_some_and(|s| s.version >= i64::MAX / 2) {
            return Err(format!(
                "not moved: the cell {name} has a version no controller wrote"
            ));
        }
        let entering = matches!(next.stage, Stage::Canary | Stage::Cutover)
            && !matches!(from.stage, Stage::Canary | Stage::Cutover);
        if entering {
            let others = states
                .iter()
                .filter(|(n, s)| **n != name && in_flight(s))
                .count();
            if others >= self.policy.max_in_flight {
                return Err(format!(
                    "not moved: {others} cells are already in canary or cutover (max_in_flight = {}), counted when the move was to be written",
                    self.policy.max_in_flight
                ));
            }
        }
        if matches!(next.stage, Stage::Canary | Stage::Cutover)
            && let Some(policy) = self.policy.cell(cell)
        {
            let waiting = super::waiting_for(policy, states);
            if !waiting.is_empty() {
                return Err(format!(
                    "not moved: waiting for {} to reach cutover",
                    waiting.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Completes a pending transition after its hook succeeded, or abandons it after it failed.
    async fn finish(
        &self,
        cell: &CellId,
        begun: &CellState,
        hooked: Result<(), String>,
    ) -> Result<(), Failure> {
        let Some(p) = &begun.pending else {
            return Ok(());
        };
        let pending = CellState {
            version: begun.version.saturating_add(1),
            ..begun.clone()
        };
        match hooked {
            Ok(()) => {
                self.settle(cell, &pending, Settle::Completed, &p.reason, false)
                    .await
            }
            Err(e) => {
                let reason = format!("the hook failed, the transition did not happen: {e}");
                self.settle(cell, &pending, Settle::Abandoned, &reason, false)
                    .await?;
                Err(anyhow::anyhow!(
                    "the transition hook failed, so {} stays {}: {e}",
                    cell.name(),
                    p.from_label
                )
                .into())
            }
        }
    }

    /// Ends `state`'s pending transition as `how`, with its audit record. A reconcile (`verify`)
    /// first checks, under the lock, that the log verifies and records this very transition.
    async fn settle(
        &self,
        cell: &CellId,
        state: &CellState,
        how: Settle,
        reason: &str,
        verify: bool,
    ) -> Result<(), Failure> {
        let Some(p) = &state.pending else {
            return Ok(());
        };
        let (next, record) = match how {
            Settle::Completed => (completed(state, p), "completed"),
            Settle::Abandoned | Settle::Reverted => {
                let back = CellState {
                    pending: None,
                    ..state.clone()
                };
                (
                    back,
                    if how == Settle::Reverted {
                        "reverted"
                    } else {
                        "abandoned"
                    },
                )
            }
        };
        let labels = (p.from_label.as_str(), p.to_label.as_str());
        let mut entry = self.entry(
            cell,
            &format!("{}_{record}", p.action),
            labels,
            reason,
            None,
        );
        entry.evidence["state"] = super::ledger::state_record(&next);
        let seal = |link: &AuditLink<'_>| self.ledger.seal(link);
        let check = |snapshot: &Snapshot| {
            if verify {
                self.ledger.verify_snapshot(snapshot, None).map_err(|problem| {
                    format!("not reconciled: the audit log does not verify, so a pending transition in the store cannot be trusted: {problem}")
                })?;
            }
            Ok(())
        };
        self.store
            .write_cell(&cell.name(), &next, &entry, &seal, verify, check)
            .await?;
        Ok(())
    }

    /// `migrate reconcile`: every pending transition (or `cell`'s) completed by running its
    /// hook again, or with `revert` dropped after the hook put the router back.
    pub(super) async fn reconcile(&self, cell: Option<CellId>, revert: bool) -> Outcome {
        let states = self.store.cell_states().await?;
        let mut code = Code::Parity;
        let mut found = 0;
        for (name, state) in &states {
            let Some(p) = &state.pending else { continue };
            let Some(id) = CellId::parse(name) else {
                continue;
            };
            if cell.as_ref().is_some_and(|c| *c != id) {
                continue;
            }
            found += 1;
            let (from, to) = (&p.from_label, &p.to_label);
            let (hook_from, hook_to, how) = if revert {
                (to, from, Settle::Reverted)
            } else {
                (from, to, Settle::Completed)
            };
            match self.hook(&id, hook_from, hook_to).await {
                Ok(()) => {
                    let reason = if revert {
                        "reconciled: reverted, the hook put the router back"
                    } else {
                        "reconciled: the hook ran again and succeeded"
                    };
                    self.settle(&id, state, how, reason, true).await?;
                    if revert {
                        crate::outln!("{name}: {to} reverted; stays {from}");
                    } else {
                        crate::outln!("{name}: {from} → {to} completed");
                    }
                }
                Err(e) => {
                    crate::outln!(
                        "{name}: still pending: the hook failed: {e} (fix it and run reconcile again, or reconcile {})",
                        if revert {
                            "without --revert"
                        } else {
                            "--revert"
                        }
                    );
                    code = Code::Mismatch;
                }
            }
        }
        if found == 0 {
            crate::outln!("no pending transition");
        }
        Ok(code)
    }

    pub(super) async fn advance(
        &self,
        cell: Option<CellId>,
        all: bool,
        to: Option<StepName>,
        signing: &Signing,
    ) -> Outcome {
        let judged = match (cell, all) {
            (Some(id), false) => {
                match self.judge(&id, to.as_ref()).await {
                    Ok(j) => vec![j],
                    // The cell has moved on: someone else made this step already.
                    Err(f) if to.is_some() && f.error.chain().any(|e| e.is::<NotNextStep>()) => {
                        crate::outln!("{}: not moved: {}", id.name(), f.error);
                        return Ok(Code::Mismatch);
                    }
                    Err(f) => return Err(f),
                }
            }
            (None, true) => {
                self.automatic_rollbacks().await?;
                self.plan().await?
            }
            _ => return Err(crate::usage!("name a cell, or pass --all").into()),
        };
        let mut code = Code::Parity;
        for j in judged {
            let name = j.cell.name();
            let j = match self.with_initiator(j, signing).await {
                Ok(j) => j,
                Err(why) => {
                    crate::outln!("{name}: not moved: {why}");
                    code = Code::Mismatch;
                    continue;
                }
            };
            if !self.carry_out(&j, all).await? {
                code = Code::Mismatch;
            }
        }
        Ok(code)
    }

    /// `j`, judged again with its initiator when its step needs approvals (only approvals by
    /// other keys count); an error when nobody (or a key not in the policy) signed the step.
    async fn with_initiator(&self, j: Judged, signing: &Signing) -> Result<Judged, String> {
        let Decision::Move(next) = &j.decision else {
            return Ok(j);
        };
        if !machine::needs_approvals(next.stage, self.policy) {
            return Ok(j);
        }
        let Some(initiator) = self.initiator(&j, signing)? else {
            return Err(format!(
                "{} needs approvals, so its initiator signs it: pass --key FILE, or --signature FILE over `billshadow migrate approve --print-message` with `advance` for `approval` in its first line",
                j.next
            ));
        };
        let again = self
            .judge_as(&j.cell, None, Some(initiator))
            .await
            .map_err(|f| format!("{:#}", f.error))?;
        if again.verdict.evidence_hash != j.verdict.evidence_hash {
            return Err(
                "the evidence changed while the step was being signed; sign it again".to_owned(),
            );
        }
        Ok(again)
    }

    /// Carries out one judged decision; false when the cell did not move as asked.
    async fn carry_out(&self, j: &Judged, all: bool) -> Result<bool, Failure> {
        match &j.decision {
            Decision::Move(next) => {
                if let Err(f) = self.apply(j, next, "advance", "the gate passed").await {
                    if f.code == Code::Mismatch {
                        crate::outln!("{}: not moved: {:#}", j.cell.name(), f.error);
                        return Ok(false);
                    }
                    return Err(f);
                }
                crate::outln!(
                    "{}: {} → {}",
                    j.cell.name(),
                    j.state.label(self.policy),
                    next.label(self.policy)
                );
                Ok(true)
            }
            Decision::Hold(next) => {
                if j.state.held.as_ref().map(|h| &h.reason) != next.held.as_ref().map(|h| &h.reason)
                {
                    let reason = next
                        .held
                        .as_ref()
                        .map(|h| h.reason.clone())
                        .unwrap_or_default();
                    self.apply(j, next, "hold", &reason).await?;
                }
                crate::outln!(
                    "{}: held at {}: {}",
                    j.cell.name(),
                    j.state.stage.as_str(),
                    next.held.as_ref().map_or("", |h| h.reason.as_str())
                );
                Ok(all)
            }
            Decision::Blocked(reason) => {
                crate::outln!(
                    "{}: stays {}: {reason}",
                    j.cell.name(),
                    j.state.label(self.policy)
                );
                Ok(all)
            }
        }
    }

    /// Rolls back, automatically, every cell in canary or cutover whose newest run shows what
    /// the policy's rollback triggers name.
    async fn automatic_rollbacks(&self) -> Result<(), Failure> {
        for c in &self.policy.cells {
            let state = self.state(&c.cell).await?;
            if !state.stage.modern_authoritative() {
                continue;
            }
            let evidence = match self
                .ledger
                .evidence(&c.cell, 1, self.now.date_naive())
                .await
            {
                Ok(evidence) => evidence,
                Err(e) => {
                    // Not rolled back on unreadable evidence; the gate holds the cell below.
                    crate::outln!(
                        "{}: cannot check the rollback triggers: the evidence cannot be read: {e:#}",
                        c.cell.name()
                    );
                    continue;
                }
            };
            let Some(latest) = evidence.first() else {
                continue;
            };
            let reasons = self.rollback_reasons(latest);
            if reasons.is_empty() {
                continue;
            }
            let next = CellState {
                stage: Stage::RolledBack,
                step: 0,
                held: None,
                ..state.clone()
            };
            let verdict = machine::evaluate(&self.policy.gate, &evidence, None);
            let j = Judged {
                cell: c.cell.clone(),
                state: state.clone(),
                target: None,
                next: "none".to_owned(),
                verdict,
                decision: Decision::Move(next.clone()),
                approvals: Vec::new(),
                latest: None,
                streak: String::new(),
            };
            let reason = format!("automatic rollback: {}", reasons.join("; "));
            self.apply(&j, &next, "rollback", &reason).await?;
            crate::outln!(
                "{}: {} → rolled_back ({reason})",
                c.cell.name(),
                state.label(self.policy)
            );
        }
        Ok(())
    }

    /// What the policy's rollback triggers find in a run.
    fn rollback_reasons(&self, latest: &machine::RunEvidence) -> Vec<String> {
        let rollback = &self.policy.rollback;
        let mut reasons = Vec::new();
        if rollback.on_critical_diff
            && let Some(critical) = &self.policy.gate.critical_amount
        {
            // Each currency against its own threshold; a currency without one holds the
            // gate but does not trigger a rollback.
            for (currency, largest) in &latest.largest_unwaived {
                if let Some(max) = critical.get(currency)
                    && largest >= max
                {
                    reasons.push(format!(
                        "run {} has an unwaived diff of {largest} {currency} (critical: {max} {currency})",
                        latest.run_id
                    ));
                }
            }
        }
        if let Some(max) = rollback.max_stack_error_rate {
            let rate = if latest.cohort == 0 {
                rust_decimal::Decimal::ZERO
            } else {
                rust_decimal::Decimal::from(latest.errored)
                    / rust_decimal::Decimal::from(latest.cohort)
            };
            if rate > max {
                reasons.push(format!(
                    "run {} has a stack error rate of {} (limit {max})",
                    latest.run_id,
                    rate.round_dp(4)
                ));
            }
        }
        reasons
    }

    pub(super) async fn act(
        &self,
        id: &CellId,
        action: &Action,
        name: &str,
        reason: &str,
    ) -> Outcome {
        let mut j = self.judge(id, None).await?;
        let cx = Context {
            policy: self.policy,
            now: self.now,
            verdict: &j.verdict,
            approvals: 0,
            waiting_for: Vec::new(),
            in_flight: 0,
            fresh_runs: 0,
        };
        // Release judges the step the cell is at, not the next one: the hold is on that.
        j.decision = machine::decide(&j.state, action, &cx);
        match &j.decision {
            Decision::Move(next) | Decision::Hold(next) => {
                self.apply(&j, next, name, reason).await?;
                crate::outln!(
                    "{}: {} → {}",
                    id.name(),
                    j.state.label(self.policy),
                    next.label(self.policy)
                );
                Ok(Code::Parity)
            }
            Decision::Blocked(why) => {
                crate::outln!("{}: stays {}: {why}", id.name(), j.state.label(self.policy));
                Ok(Code::Mismatch)
            }
        }
    }

    /// Runs the policy's hook (argv, no shell) for a transition; its failure stops it.
    async fn hook(&self, cell: &CellId, from: &str, to: &str) -> Result<(), String> {
        let Some((program, args)) = self.policy.hook.split_first() else {
            return Ok(());
        };
        let name = cell.name();
        let fill = |t: &str| {
            t.replace("{cell}", &name)
                .replace("{from}", from)
                .replace("{to}", to)
                .replace("{actor}", &self.actor)
        };
        let mut command = tokio::process::Command::new(fill(program));
        command
            .args(args.iter().map(|a| fill(a)))
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .map_err(|_| format!("{program} timed out after 60 s"))?
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

/// How a pending transition ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// The hook ran: the cell takes the pending state.
    Completed,
    /// The hook failed: the cell stays.
    Abandoned,
    /// `reconcile --revert`: the hook put the router back; the cell stays.
    Reverted,
}

/// The state a pending transition leads to.
fn completed(begun: &CellState, p: &Pending) -> CellState {
    let moves = (begun.stage, begun.step) != (p.stage, p.step);
    CellState {
        stage: p.stage,
        step: p.step,
        held: p.held.clone(),
        version: begun.version,
        entered_at: if moves {
            Some(p.since)
        } else {
            begun.entered_at
        },
        fresh_after: p.fresh_after,
        pending: None,
    }
}
