//! `billshadow migrate`: the migration controller. Cells (partition × region) move from the
//! legacy stack to the modern one only when the policy's gate passes on stored evidence; every
//! change is compare-and-set on the cell's version under the controller lock, is pending
//! while its hook runs, and leaves signed, hash-chained audit records.

mod approval;
mod judged;
pub(crate) mod keys;
mod ledger;
pub(crate) mod machine;
pub(crate) mod policy;
mod render;
mod transition;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::args::{MigrateArgs, MigrateCommand, MigrateFormat};
use crate::cell::StepName;
use crate::exit::{Code, Failure, NotNextStep, Outcome, input};
use crate::store::cells::{AuditEntry, Head};
use crate::store::{Access, Store};
use crate::support::runtime;
use billshadow_reports::view::GateView;
use judged::Judged;
use ledger::Ledger;

use machine::{Action, CellState, Context, Decision, RunEvidence, Stage, Verdict};
use policy::{CellId, CellPolicy, Policy};

/// Runs evaluated per cell for the consecutive-runs criterion.
const EVIDENCE_RUNS: usize = 20;

struct Controller<'a> {
    store: &'a Store,
    ledger: Ledger<'a>,
    policy: &'a Policy,
    now: DateTime<Utc>,
    actor: String,
}

pub(crate) fn run(args: MigrateArgs, access: Access) -> Outcome {
    if let MigrateCommand::Lint = args.command {
        let policy = Policy::load(&args.policy)?;
        crate::outln!(
            "{}: ok ({} cells, canary steps {:?} %, {} freeze window(s))",
            args.policy.display(),
            policy.cells.len(),
            policy
                .canary_steps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            policy.freezes.len()
        );
        return Ok(Code::Parity);
    }
    if let MigrateCommand::Keygen { out, comment } = &args.command {
        let key = keys::generate(out, comment).map_err(input)?;
        crate::outln!(
            "wrote {} and {}.pub ({})\n{}",
            out.display(),
            out.display(),
            keys::fingerprint(&key),
            key.to_openssh().unwrap_or_default()
        );
        return Ok(Code::Parity);
    }
    let policy = Policy::load(&args.policy)?;
    let now = args.now.unwrap_or_else(Utc::now);
    let signs = !matches!(access, Access::ReadOnly);
    if signs && args.now.is_some() && std::env::var("BILLSHADOW_FAKE_CLOCK").as_deref() != Ok("1") {
        // A clock set by hand would let a write skip a dwell time or a freeze window.
        return Err(crate::usage!(
            "--now on a command that changes the store needs BILLSHADOW_FAKE_CLOCK=1 (tests and rehearsals on a copy); every record it writes names both clocks"
        )
        .into());
    }
    // `init` only creates cells in `legacy`: it appends no record, so it needs no key.
    let appends = signs && !matches!(args.command, MigrateCommand::Init);
    let key = if appends {
        keys::controller_key(args.controller_key.as_deref(), policy.audit_key.as_ref())
            .map_err(input)?
    } else {
        None
    };
    // Who acts is recorded by every command that appends a record; the others record nothing.
    let actor = if appends {
        crate::actor::resolve(args.actor.as_deref())?
    } else {
        crate::actor::resolve(args.actor.as_deref()).unwrap_or_else(|_| "reader".to_owned())
    };
    runtime()?.block_on(async move {
        let store = Store::open_named(args.store.as_deref(), access).await?;
        let controller = Controller {
            store: &store,
            ledger: Ledger {
                store: &store,
                policy: &policy,
                key,
            },
            policy: &policy,
            now,
            actor,
        };
        let result = controller.command(args.command, args.format).await;
        store.close().await;
        result
    })
}

/// Every cell's gate verdict for its next step, now, for reports.
pub(crate) async fn gate_views(store: &Store, policy: &Policy) -> anyhow::Result<Vec<GateView>> {
    let controller = Controller {
        store,
        ledger: Ledger {
            store,
            policy,
            key: None,
        },
        policy,
        now: Utc::now(),
        actor: "report".to_owned(),
    };
    let states = store.cell_states().await?;
    let mut out = Vec::new();
    for c in &policy.cells {
        if !states.contains_key(&c.cell.name()) {
            continue;
        }
        let j = controller.judge(&c.cell, None).await.map_err(|f| f.error)?;
        out.push(render::gate_view(&j));
    }
    Ok(out)
}

impl Controller<'_> {
    async fn command(&self, command: MigrateCommand, format: MigrateFormat) -> Outcome {
        match command {
            MigrateCommand::Lint => Ok(Code::Parity),
            MigrateCommand::Init => {
                let ids: Vec<CellId> = self.policy.cells.iter().map(|c| c.cell.clone()).collect();
                let created = self.store.init_cells(&ids).await?;
                crate::outln!(
                    "{created} cells created in legacy; {} already existed",
                    ids.len() - created
                );
                Ok(Code::Parity)
            }
            MigrateCommand::Status => {
                let judged = self.judge_all().await?;
                render::status(&judged, self.policy, format)?;
                Ok(Code::Parity)
            }
            MigrateCommand::Plan => {
                let judged = self.plan().await?;
                render::plan(&judged, self.policy);
                Ok(Code::Parity)
            }
            MigrateCommand::Gate { cell, to, junit } => {
                let j = self.judge(&cell, to.as_ref()).await?;
                let passes = matches!(j.decision, Decision::Move(_));
                if let Some(path) = junit {
                    render::write_junit(&path, &j, self.policy).map_err(input)?;
                }
                render::gate(&j, self.policy, format)?;
                Ok(if passes { Code::Parity } else { Code::Mismatch })
            }
            MigrateCommand::Advance {
                cell,
                all,
                to,
                signing,
            } => self.advance(cell, all, to, &signing).await,
            MigrateCommand::Rollback { cell, reason } => {
                self.act(&cell, &Action::Rollback, "rollback", &reason)
                    .await
            }
            MigrateCommand::Hold { cell, reason } if reason.trim().is_empty() => {
                Err(crate::usage!(
                    "hold {}: --reason must say why (it is the hold)",
                    cell.name()
                )
                .into())
            }
            MigrateCommand::Hold { cell, reason } => {
                self.act(&cell, &Action::Hold(reason.clone()), "hold", &reason)
                    .await
            }
            MigrateCommand::Release { cell } => {
                self.act(&cell, &Action::Release, "release", "").await
            }
            MigrateCommand::Approve {
                cell,
                to,
                signing,
                print_message,
            } => {
                self.approve(&cell, to.as_ref(), &signing, print_message)
                    .await
            }
            MigrateCommand::Reconcile { cell, revert } => self.reconcile(cell, revert).await,
            MigrateCommand::Routes => {
                let states = self.store.cell_states().await?;
                render::routes(&states, self.policy, self.now, format)?;
                Ok(Code::Parity)
            }
            MigrateCommand::Audit {
                verify,
                head,
                since,
            } => self.audit(verify, head, since.as_deref()).await,
            MigrateCommand::Keygen { .. } => Ok(Code::Parity),
        }
    }

    async fn audit(&self, verify: bool, head: bool, since: Option<&std::path::Path>) -> Outcome {
        if head {
            let head = self.store.audit_head().await?;
            crate::outln!("{}", serde_json::to_string(&head).unwrap_or_default());
            return Ok(Code::Parity);
        }
        if !verify {
            let log: Vec<serde_json::Value> = self
                .store
                .audit_records()
                .await?
                .into_iter()
                .map(|r| {
                    let e = r.entry.as_ref();
                    serde_json::json!({
                        "seq": r.seq, "at": r.at, "actor": e.map(|e| &e.actor), "cell": e.map(|e| &e.cell),
                        "action": e.map(|e| &e.action), "from": e.map(|e| &e.from_state), "to": e.map(|e| &e.to_state),
                        "reason": e.map(|e| &e.reason), "hash": r.hash, "signed": !r.signature.is_empty(),
                    })
                })
                .collect();
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "audit": log }))
                    .unwrap_or_default()
            );
            return Ok(Code::Parity);
        }
        let checkpoint = match since {
            Some(path) => {
                let text = crate::support::read_named(path).map_err(input)?;
                let head: Head = serde_json::from_str(&text).map_err(|e| {
                    crate::usage!(
                        "{} is not a head printed by `billshadow migrate audit --head`: {e}",
                        path.display()
                    )
                })?;
                Some(head)
            }
            None => None,
        };
        match self.ledger.verify(checkpoint.as_ref()).await? {
            Ok(n) => {
                let how = if self.policy.audit_key.is_some() {
                    "every hash and signature matches"
                } else {
                    "every hash matches (unsigned: the policy has no [audit] public_key, so anyone who can write the store could recompute the chain)"
                };
                crate::outln!(
                    "audit log intact: {n} records, {how}; every cell is what the log says{}",
                    if checkpoint.is_some() {
                        "; the checkpoint is in the log"
                    } else {
                        ""
                    }
                );
                Ok(Code::Parity)
            }
            Err(problem) => {
                eprintln!("audit log tampered with: {problem}");
                Ok(Code::Mismatch)
            }
        }
    }

    async fn state(&self, id: &CellId) -> Result<CellState, Failure> {
        let states = self.store.cell_states().await?;
        states.get(&id.name()).cloned().ok_or_else(|| {
            crate::usage!("the cell {} is not in the store; is it in the policy, and did `billshadow migrate init` run?", id.name())
        }).map_err(Into::into)
    }

    /// Judges one cell for its next step (or `to`). Approvals are counted for the step as
    /// signed by anyone but `initiator` (the key of who advances).
    async fn judge(&self, id: &CellId, to: Option<&StepName>) -> Result<Judged, Failure> {
        self.judge_as(id, to, None).await
    }

    async fn judge_as(
        &self,
        id: &CellId,
        to: Option<&StepName>,
        initiator: Option<&policy::Approver>,
    ) -> Result<Judged, Failure> {
        let cell_policy = self
            .policy
            .cell(id)
            .ok_or_else(|| crate::usage!("the cell {} is not in the policy", id.name()))?;
        let states = self.store.cell_states().await?;
        let state = states.get(&id.name()).cloned().ok_or_else(|| {
            crate::usage!("the cell {} is not in the store; is it in the policy, and did `billshadow migrate init` run?", id.name())
        })?;
        let target = machine::next(state.stage, state.step, self.policy);
        if let Some(to) = to {
            self.check_next_step(id, &state, target, to)?;
        }
        let next = target.map_or("none".to_owned(), |(s, step)| {
            machine::step_label(s, step, self.policy)
        });
        let (evidence, fresh_runs, verdict) = self.read_verdict(id, &state).await;
        let approvals = self.approvals(id, &next, &verdict, initiator).await?;
        let cx = Context {
            policy: self.policy,
            now: self.now,
            verdict: &verdict,
            approvals: approvals.len() as u32,
            waiting_for: waiting_for(cell_policy, &states),
            in_flight: in_flight_besides(id, &states),
            fresh_runs,
        };
        let decision = machine::decide(&state, &Action::Advance, &cx);
        let streak = passing_streak(&verdict);
        Ok(Judged {
            cell: id.clone(),
            state,
            target,
            next,
            latest: evidence.into_iter().next(),
            verdict,
            decision,
            approvals,
            streak,
        })
    }

    /// Refuses `--to` unless it names the cell's next step (`NotNextStep`: someone else may
    /// have made that step already).
    fn check_next_step(
        &self,
        id: &CellId,
        state: &CellState,
        target: Option<(Stage, usize)>,
        to: &StepName,
    ) -> Result<(), Failure> {
        let wanted = match to.percent {
            None if to.stage == Stage::Canary => (Stage::Canary, 0),
            None => (to.stage, 0),
            Some(p) => (
                Stage::Canary,
                self.policy
                    .canary_steps
                    .iter()
                    .position(|s| *s == p)
                    .ok_or_else(|| {
                        crate::usage!("--to `{}`: the policy has no canary step of {p} %", to.text)
                    })?,
            ),
        };
        if target == Some(wanted) {
            return Ok(());
        }
        let next = target.map_or("none".to_owned(), |(s, step)| {
            machine::step_label(s, step, self.policy)
        });
        Err(anyhow::Error::new(NotNextStep(format!(
            "{} is {}; its next step is {next}, not {}",
            id.name(),
            state.label(self.policy),
            to.text
        )))
        .into())
    }

    /// The cell's newest runs (all of them, newest first, for what status shows), how many of
    /// them are fresh for its next step, and the gate's verdict on those. Out of a canary step or cutover only runs started after the step was taken
    /// (and after the runs it was taken on) are evidence. Evidence that cannot be read holds
    /// the cell, with the reason; it never passes, and a rollback (which needs no gate) stays
    /// possible.
    async fn read_verdict(
        &self,
        id: &CellId,
        state: &CellState,
    ) -> (Vec<RunEvidence>, usize, Verdict) {
        match self
            .ledger
            .evidence(id, EVIDENCE_RUNS, self.now.date_naive())
            .await
        {
            Ok(evidence) => {
                let fresh: Vec<RunEvidence> = match state.fresh_after {
                    Some(after) if matches!(state.stage, Stage::Canary | Stage::Cutover) => {
                        evidence
                            .iter()
                            .filter(|e| e.started_at > after)
                            .cloned()
                            .collect()
                    }
                    _ => evidence.clone(),
                };
                let verdict = machine::evaluate(&self.policy.gate, &fresh, state.held.as_ref());
                (evidence, fresh.len(), verdict)
            }
            Err(e) => (Vec::new(), 0, machine::unreadable(&format!("{e:#}"))),
        }
    }

    async fn judge_all(&self) -> Result<Vec<Judged>, Failure> {
        let mut cells: Vec<&CellPolicy> = self.policy.cells.iter().collect();
        cells.sort_by(|a, b| (a.order, &a.cell).cmp(&(b.order, &b.cell)));
        let mut out = Vec::new();
        for c in cells {
            out.push(self.judge(&c.cell, None).await?);
        }
        Ok(out)
    }

    /// What `advance --all` would do, in order; cells entering canary count against
    /// `max_in_flight` for the cells after them.
    async fn plan(&self) -> Result<Vec<Judged>, Failure> {
        let mut judged = self.judge_all().await?;
        let in_flight = self
            .store
            .cell_states()
            .await?
            .values()
            .filter(|s| in_flight(s))
            .count();
        let mut entering = 0;
        for j in &mut judged {
            if j.state.stage == Stage::RolledBack {
                j.decision = Decision::Blocked(
                    "rolled back: advance it by name to shadow it again".to_owned(),
                );
                continue;
            }
            if let Decision::Move(next) = &j.decision
                && j.state.stage == Stage::Shadow
                && next.stage == Stage::Canary
            {
                if in_flight + entering >= self.policy.max_in_flight {
                    j.decision = Decision::Blocked(format!(
                        "max_in_flight = {} would be exceeded",
                        self.policy.max_in_flight
                    ));
                } else {
                    entering += 1;
                }
            }
        }
        Ok(judged)
    }

    fn entry(
        &self,
        cell: &CellId,
        action: &str,
        (from, to): (&str, &str),
        reason: &str,
        verdict: Option<&Verdict>,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor.clone(),
            cell: cell.name(),
            action: action.to_owned(),
            from_state: from.to_owned(),
            to_state: to.to_owned(),
            reason: reason.to_owned(),
            policy_hash: self.policy.hash.clone(),
            evidence: {
                let mut e = verdict.map_or(serde_json::json!({}), |v| {
                    serde_json::json!({"runs": v.runs, "evidence_hash": v.evidence_hash, "outcome": v.outcome, "criteria": v.criteria})
                });
                // A clock set with --now is recorded beside the real one.
                let real = Utc::now();
                if (self.now - real).num_seconds().abs() > 60 {
                    e["clock"] = serde_json::json!({"now": self.now, "real": real});
                }
                e
            },
        }
    }
}

/// Whether a cell counts against `max_in_flight`: in canary or cutover, or on its way there.
fn in_flight(s: &CellState) -> bool {
    matches!(s.stage, Stage::Canary | Stage::Cutover)
        || s.pending
            .as_ref()
            .is_some_and(|p| matches!(p.stage, Stage::Canary | Stage::Cutover))
}

/// The cells this one comes `after` that are not in cutover (or beyond) yet.
fn waiting_for(cell_policy: &CellPolicy, states: &BTreeMap<String, CellState>) -> Vec<String> {
    cell_policy
        .after
        .iter()
        .filter(|dep| {
            // A dependency with a transition pending (a rollback, say) is not there yet.
            states.get(&dep.name()).is_none_or(|s| {
                s.pending.is_some() || !matches!(s.stage, Stage::Cutover | Stage::Decommissioned)
            })
        })
        .map(CellId::name)
        .collect()
}

/// Cells other than `id` in canary or cutover, or on their way there.
fn in_flight_besides(id: &CellId, states: &BTreeMap<String, CellState>) -> usize {
    states
        .iter()
        .filter(|(name, s)| **name != id.name() && in_flight(s))
        .count()
}

/// The consecutive-runs criterion's measure, as the status table shows it.
fn passing_streak(verdict: &Verdict) -> String {
    verdict
        .criteria
        .iter()
        .find(|c| c.name == "consecutive_passing_runs")
        .map(|c| c.measured.clone())
        .unwrap_or_default()
}
