//! `billshadow migrate`: the migration controller. Cells (partition × region) move from the
//! legacy stack to the modern one only when the policy's gate passes on stored evidence; every
//! change is compare-and-set on the cell's version and leaves a hash-chained audit record.

mod judged;
pub(crate) mod ledger;
pub(crate) mod machine;
pub(crate) mod policy;
mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::args::{MigrateArgs, MigrateCommand, MigrateFormat};
use crate::exit::{Code, Failure, NotNextStep, Outcome, input};
use crate::store::{Access, Store};
use crate::support::runtime;
use billshadow_reports::view::GateView;
use judged::Judged;
use ledger::AuditEntry;

use machine::{
    Action, CellState, Context, Decision, Outcome as GateOutcome, RunEvidence, Stage, Verdict,
};
use policy::{CellId, CellPolicy, Policy};

/// Runs evaluated per cell for the consecutive-runs criterion.
const EVIDENCE_RUNS: usize = 20;

struct Controller<'a> {
    store: &'a Store,
    policy: Policy,
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
    let policy = Policy::load(&args.policy)?;
    let now = args.now.unwrap_or_else(Utc::now);
    let actor = crate::actor::resolve(args.actor.as_deref())?;
    runtime()?.block_on(async move {
        let store = Store::open_named(args.store.as_deref(), access).await?;
        let controller = Controller {
            store: &store,
            policy,
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
        policy: policy.clone(),
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
                render::status(&judged, &self.policy, format)?;
                Ok(Code::Parity)
            }
            MigrateCommand::Plan => {
                let judged = self.plan().await?;
                render::plan(&judged, &self.policy);
                Ok(Code::Parity)
            }
            MigrateCommand::Gate { cell, to, junit } => {
                let id = cell;
                let j = self.judge(&id, to.as_deref()).await?;
                let passes = matches!(j.decision, Decision::Move(_));
                if let Some(path) = junit {
                    render::write_junit(&path, &j, &self.policy).map_err(input)?;
                }
                render::gate(&j, &self.policy, format)?;
                Ok(if passes { Code::Parity } else { Code::Mismatch })
            }
            MigrateCommand::Advance { cell, all, to } => self.advance(cell, all, to).await,
            MigrateCommand::Rollback { cell, reason } => {
                let id = cell;
                self.act(&id, &Action::Rollback, "rollback", &reason).await
            }
            MigrateCommand::Hold { cell, reason } => {
                let id = cell;
                self.act(&id, &Action::Hold(reason.clone()), "hold", &reason)
                    .await
            }
            MigrateCommand::Release { cell } => {
                let id = cell;
                self.act(&id, &Action::Release, "release", "").await
            }
            MigrateCommand::Approve { cell, to } => self.approve(&cell, to.as_deref()).await,
            MigrateCommand::Routes => {
                let states = self.store.cell_states().await?;
                render::routes(&states, &self.policy, self.now, format)?;
                Ok(Code::Parity)
            }
            MigrateCommand::Audit { verify } => {
                if verify {
                    match self.store.verify_audit().await? {
                        Ok(n) => {
                            crate::outln!("audit log intact: {n} records, every hash matches");
                            Ok(Code::Parity)
                        }
                        Err(problem) => {
                            eprintln!("audit log tampered with: {problem}");
                            Ok(Code::Mismatch)
                        }
                    }
                } else {
                    let log = self.store.audit_log().await?;
                    crate::outln!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "audit": log }))
                            .unwrap_or_default()
                    );
                    Ok(Code::Parity)
                }
            }
        }
    }

    async fn state(&self, id: &CellId) -> Result<CellState, Failure> {
        let states = self.store.cell_states().await?;
        states.get(&id.name()).cloned().ok_or_else(|| {
            crate::usage!("the cell {} is not in the store; is it in the policy, and did `billshadow migrate init` run?", id.name())
        }).map_err(Into::into)
    }

    /// Judges one cell for its next step (or `to`).
    async fn judge(&self, id: &CellId, to: Option<&str>) -> Result<Judged, Failure> {
        let cell_policy = self
            .policy
            .cell(id)
            .ok_or_else(|| crate::usage!("the cell {} is not in the policy", id.name()))?;
        let state = self.state(id).await?;
        let states = self.store.cell_states().await?;
        let target = machine::next(state.stage, state.step, &self.policy);
        if let Some(to) = to {
            self.check_next_step(id, &state, target, to)?;
        }
        let (evidence, verdict) = self.read_verdict(id, &state).await;
        let approvals = self.approvals_by_others(id, target, &verdict).await?;
        let cx = Context {
            policy: &self.policy,
            now: self.now,
            verdict: &verdict,
            approvals: approvals.len() as u32,
            waiting_for: waiting_for(cell_policy, &states),
            in_flight: in_flight_besides(id, &states),
        };
        let decision = machine::decide(&state, &Action::Advance, &cx);
        let streak = passing_streak(&verdict);
        Ok(Judged {
            cell: id.clone(),
            state,
            target,
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
        to: &str,
    ) -> Result<(), Failure> {
        if target == Some(self.wanted_step(to)?) {
            return Ok(());
        }
        let next = target.map_or("none".to_owned(), |(s, step)| {
            CellState {
                stage: s,
                step,
                held: None,
                version: 0,
            }
            .label(&self.policy)
        });
        Err(anyhow::Error::new(NotNextStep(format!(
            "{} is {}; its next step is {next}, not {to}",
            id.name(),
            state.label(&self.policy)
        )))
        .into())
    }

    /// The step `--to` names: `canary` is the first canary step; `canary:5` the step of 5 %.
    fn wanted_step(&self, to: &str) -> Result<(Stage, usize), Failure> {
        let (name, percent) = to.split_once(':').map_or((to, None), |(n, p)| (n, Some(p)));
        let wanted = Stage::parse(name).ok_or_else(|| {
            crate::usage!("--to `{to}` is not a state (shadow, canary, canary:PERCENT, cutover, decommissioned)")
        })?;
        let step = match (wanted, percent) {
            (Stage::Canary, Some(p)) => {
                let p: rust_decimal::Decimal = p
                    .parse()
                    .map_err(|_| crate::usage!("--to `{to}`: `{p}` is not a percentage"))?;
                self.policy
                    .canary_steps
                    .iter()
                    .position(|s| *s == p)
                    .ok_or_else(|| {
                        crate::usage!("--to `{to}`: the policy has no canary step of {p} %")
                    })?
            }
            _ => 0,
        };
        Ok((wanted, step))
    }

    /// The cell's newest runs and the gate's verdict on them. Evidence that cannot be read
    /// holds the cell, with the reason; it never passes, and a rollback (which needs no gate)
    /// stays possible.
    async fn read_verdict(&self, id: &CellId, state: &CellState) -> (Vec<RunEvidence>, Verdict) {
        match self
            .store
            .cell_evidence(id, EVIDENCE_RUNS, self.now.date_naive())
            .await
        {
            Ok(evidence) => {
                let verdict = machine::evaluate(&self.policy.gate, &evidence, state.held.as_ref());
                (evidence, verdict)
            }
            Err(e) => (Vec::new(), machine::unreadable(&format!("{e:#}"))),
        }
    }

    /// Who approved the step on exactly this evidence, the actor aside: nobody approves their
    /// own step.
    async fn approvals_by_others(
        &self,
        id: &CellId,
        target: Option<(Stage, usize)>,
        verdict: &Verdict,
    ) -> Result<Vec<String>, Failure> {
        let target_name = target.map_or("", |(s, _)| s.as_str());
        Ok(self
            .store
            .approvers(&id.name(), target_name, &verdict.evidence_hash)
            .await?
            .into_iter()
            .filter(|a| *a != self.actor)
            .collect())
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
                let in_flight = self
                    .store
                    .cell_states()
                    .await?
                    .values()
                    .filter(|s| matches!(s.stage, Stage::Canary | Stage::Cutover))
                    .count();
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
        from: &CellState,
        to: &CellState,
        reason: &str,
        verdict: Option<&Verdict>,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor.clone(),
            cell: cell.name(),
            action: action.to_owned(),
            from_state: from.label(&self.policy),
            to_state: to.label(&self.policy),
            reason: reason.to_owned(),
            policy_hash: self.policy.hash.clone(),
            evidence: verdict.map_or(serde_json::Value::Null, |v| {
                serde_json::json!({"runs": v.runs, "evidence_hash": v.evidence_hash, "outcome": v.outcome, "criteria": v.criteria})
            }),
        }
    }

    /// Writes a decision: a move or a hold, CAS on the version, audited, hooked.
    async fn apply(
        &self,
        j: &Judged,
        next: &CellState,
        action: &str,
        reason: &str,
    ) -> Result<(), Failure> {
        let entry = self.entry(&j.cell, action, &j.state, next, reason, Some(&j.verdict));
        let hook = self.policy.hook.clone();
        let (cell, from, to) = (
            j.cell.name(),
            j.state.label(&self.policy),
            next.label(&self.policy),
        );
        let actor = self.actor.clone();
        let result = self
            .store
            .transition(
                &j.cell.name(),
                j.state.version,
                next,
                &entry,
                async move || run_hook(&hook, &cell, &from, &to, &actor).await,
            )
            .await;
        // A lost compare-and-set (`Conflict`) is exit code 1 by its type (`exit.rs`).
        result.map_err(Failure::from)
    }

    async fn advance(&self, cell: Option<CellId>, all: bool, to: Option<String>) -> Outcome {
        let judged = match (cell, all) {
            (Some(id), false) => {
                match self.judge(&id, to.as_deref()).await {
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
        for j in &judged {
            match &j.decision {
                Decision::Move(next) => {
                    if let Err(f) = self.apply(j, next, "advance", "the gate passed").await {
                        if f.code == Code::Mismatch {
                            crate::outln!("{}: not moved: {:#}", j.cell.name(), f.error);
                            code = Code::Mismatch;
                            continue;
                        }
                        return Err(f);
                    }
                    crate::outln!(
                        "{}: {} → {}",
                        j.cell.name(),
                        j.state.label(&self.policy),
                        next.label(&self.policy)
                    );
                }
                Decision::Hold(next) => {
                    if j.state.held.as_ref().map(|h| &h.reason)
                        != next.held.as_ref().map(|h| &h.reason)
                    {
                        self.apply(
                            j,
                            next,
                            "hold",
                            &next
                                .held
                                .as_ref()
                                .map(|h| h.reason.clone())
                                .unwrap_or_default(),
                        )
                        .await?;
                    }
                    crate::outln!(
                        "{}: held at {}: {}",
                        j.cell.name(),
                        j.state.stage.as_str(),
                        next.held.as_ref().map_or("", |h| h.reason.as_str())
                    );
                    if !all {
                        code = Code::Mismatch;
                    }
                }
                Decision::Blocked(reason) => {
                    crate::outln!(
                        "{}: stays {}: {reason}",
                        j.cell.name(),
                        j.state.label(&self.policy)
                    );
                    if !all {
                        code = Code::Mismatch;
                    }
                }
            }
        }
        Ok(code)
    }

    /// Rolls back, automatically, every cell in canary or cutover whose newest run shows what
    /// the policy's rollback triggers name.
    async fn automatic_rollbacks(&self) -> Result<(), Failure> {
        let rollback = &self.policy.rollback;
        for c in &self.policy.cells {
            let state = self.state(&c.cell).await?;
            if !state.stage.modern_authoritative() {
                continue;
            }
            let evidence = match self
                .store
                .cell_evidence(&c.cell, 1, self.now.date_naive())
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
            if reasons.is_empty() {
                continue;
            }
            let next = CellState {
                stage: Stage::RolledBack,
                step: 0,
                held: None,
                version: state.version,
            };
            let verdict = machine::evaluate(&self.policy.gate, &evidence, None);
            let j = Judged {
                cell: c.cell.clone(),
                state: state.clone(),
                target: None,
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
                state.label(&self.policy)
            );
        }
        Ok(())
    }

    async fn act(&self, id: &CellId, action: &Action, name: &str, reason: &str) -> Outcome {
        let mut j = self.judge(id, None).await?;
        let cx = Context {
            policy: &self.policy,
            now: self.now,
            verdict: &j.verdict,
            approvals: 0,
            waiting_for: Vec::new(),
            in_flight: 0,
        };
        // Release judges the step the cell is at, not the next one: the hold is on that.
        j.decision = machine::decide(&j.state, action, &cx);
        match &j.decision {
            Decision::Move(next) | Decision::Hold(next) => {
                self.apply(&j, next, name, reason).await?;
                crate::outln!(
                    "{}: {} → {}",
                    id.name(),
                    j.state.label(&self.policy),
                    next.label(&self.policy)
                );
                Ok(Code::Parity)
            }
            Decision::Blocked(why) => {
                crate::outln!(
                    "{}: stays {}: {why}",
                    id.name(),
                    j.state.label(&self.policy)
                );
                Ok(Code::Mismatch)
            }
        }
    }

    async fn approve(&self, id: &CellId, to: Option<&str>) -> Outcome {
        if let Some(freeze) = machine::frozen(&self.policy.freezes, self.now) {
            crate::outln!("{}: not approved: {freeze}", id.name());
            return Ok(Code::Mismatch);
        }
        let j = self.judge(id, to).await?;
        let Some((target, _)) = j.target else {
            return Err(crate::usage!("{} has no next step to approve", id.name()).into());
        };
        if j.verdict.outcome != GateOutcome::Pass {
            crate::outln!(
                "{}: not approved: the gate does not pass on the current evidence ({})",
                id.name(),
                j.verdict.reasons().join("; ")
            );
            return Ok(Code::Mismatch);
        }
        self.store
            .approve(
                &id.name(),
                target.as_str(),
                &self.actor,
                &j.verdict.evidence_hash,
            )
            .await?;
        let entry = self.entry(
            id,
            "approve",
            &j.state,
            &j.state,
            &format!(
                "approved {} on evidence {}",
                target.as_str(),
                &j.verdict.evidence_hash[..12]
            ),
            Some(&j.verdict),
        );
        self.store.audit(&entry).await?;
        crate::outln!(
            "{}: {} approved {} on the current evidence ({})",
            id.name(),
            self.actor,
            target.as_str(),
            &j.verdict.evidence_hash[..12]
        );
        Ok(Code::Parity)
    }
}

/// The cells this one comes `after` that are not in cutover (or beyond) yet.
fn waiting_for(cell_policy: &CellPolicy, states: &BTreeMap<String, CellState>) -> Vec<String> {
    cell_policy
        .after
        .iter()
        .filter(|dep| {
            states
                .get(&dep.name())
                .is_none_or(|s| !matches!(s.stage, Stage::Cutover | Stage::Decommissioned))
        })
        .map(CellId::name)
        .collect()
}

/// Cells other than `id` in canary or cutover.
fn in_flight_besides(id: &CellId, states: &BTreeMap<String, CellState>) -> usize {
    states
        .iter()
        .filter(|(name, s)| {
            **name != id.name() && matches!(s.stage, Stage::Canary | Stage::Cutover)
        })
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

/// Runs the policy's hook (argv, no shell) for a transition; its failure stops the transition.
async fn run_hook(
    hook: &[String],
    cell: &str,
    from: &str,
    to: &str,
    actor: &str,
) -> Result<(), String> {
    let Some((program, args)) = hook.split_first() else {
        return Ok(());
    };
    let fill = |t: &str| {
        t.replace("{cell}", cell)
            .replace("{from}", from)
            .replace("{to}", to)
            .replace("{actor}", actor)
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
