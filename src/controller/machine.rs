//! The controller's pure core: cell states, the gate, freeze windows, and which transition an
//! action leads to. No I/O and no clock: evidence and the time are inputs, so tests can set any
//! date and any evidence.
//!
//! Invariants (property-tested): a cell enters `canary` or `cutover` only on a passing gate over
//! its current evidence; too little data or an inconclusive verdict holds a cell, never passes
//! it; a held cell leaves `held` only on a passing verdict over evidence newer than the hold;
//! rollback of a cell where the modern stack is authoritative is always possible, frozen or not.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::policy::{Freeze, Gate, Policy};
pub(crate) use crate::cell::{CellState, Hold, RunEvidence, Stage};

impl CellState {
    pub(crate) fn label(&self, policy: &Policy) -> String {
        let base = match self.stage {
            Stage::Canary => format!(
                "canary({}%)",
                policy
                    .canary_steps
                    .get(self.step)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            ),
            other => other.as_str().to_owned(),
        };
        match &self.held {
            Some(h) => format!("held({}) at {base}", h.reason),
            None => base,
        }
    }

    /// The share of accounts the modern stack bills, in percent.
    pub(crate) fn modern_percent(&self, policy: &Policy) -> Decimal {
        match self.stage {
            Stage::Canary => policy
                .canary_steps
                .get(self.step)
                .copied()
                .unwrap_or_default(),
            Stage::Cutover | Stage::Decommissioned => Decimal::ONE_HUNDRED,
            _ => Decimal::ZERO,
        }
    }
}

/// A step as the command line names it: `canary:5` for the canary step of 5 %, else the
/// stage's name.
pub(crate) fn step_label(stage: Stage, step: usize, policy: &Policy) -> String {
    match (stage, policy.canary_steps.get(step)) {
        (Stage::Canary, Some(p)) => format!("canary:{p}"),
        _ => stage.as_str().to_owned(),
    }
}

/// The step after `stage`/`step`, if any.
pub(crate) fn next(stage: Stage, step: usize, policy: &Policy) -> Option<(Stage, usize)> {
    match stage {
        Stage::Legacy | Stage::RolledBack => Some((Stage::Shadow, 0)),
        Stage::Shadow => Some((Stage::Canary, 0)),
        Stage::Canary if step + 1 < policy.canary_steps.len() => Some((Stage::Canary, step + 1)),
        Stage::Canary => Some((Stage::Cutover, 0)),
        Stage::Cutover => Some((Stage::Decommissioned, 0)),
        Stage::Decommissioned => None,
    }
}

/// One gate criterion, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Criterion {
    pub(crate) name: &'static str,
    pub(crate) measured: String,
    pub(crate) threshold: String,
    pub(crate) passed: bool,
    /// Too little data to judge: the cell is held, not failed.
    pub(crate) inconclusive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Pass,
    Fail,
    /// Too little data, or not yet enough passing runs: held, never a pass.
    Inconclusive,
}

/// A gate's judgement of a cell's evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Verdict {
    pub(crate) outcome: Outcome,
    pub(crate) criteria: Vec<Criterion>,
    /// The runs judged, newest first.
    pub(crate) runs: Vec<String>,
    /// What the verdict is over: a hash of the runs and their metrics. Approvals are tied to it.
    pub(crate) evidence_hash: String,
}

impl Verdict {
    pub(crate) fn reasons(&self) -> Vec<String> {
        self.criteria
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {} (needs {})", c.name, c.measured, c.threshold))
            .collect()
    }
}

fn criterion(
    name: &'static str,
    measured: String,
    threshold: String,
    passed: bool,
    inconclusive: bool,
) -> Criterion {
    Criterion {
        name,
        measured,
        threshold,
        passed,
        inconclusive: inconclusive && !passed,
    }
}

/// The per-run criteria of the gate over one run's evidence.
fn run_criteria(gate: &Gate, run: &RunEvidence) -> Vec<Criterion> {
    let mut out = Vec::new();
    out.push(criterion(
        "min_accounts",
        run.compared.to_string(),
        format!(">= {}", gate.min_accounts),
        run.compared >= gate.min_accounts,
        true,
    ));
    let coverage = ratio(run.compared, run.cohort);
    out.push(criterion(
        "min_coverage",
        coverage.round_dp(4).to_string(),
        format!(">= {}", gate.min_coverage),
        coverage >= gate.min_coverage,
        true,
    ));
    let (rate, label) = match gate.confidence {
        Some(c) => (
            upper_bound(run.mismatched, run.compared, c),
            format!("upper bound at {c}"),
        ),
        None => (ratio(run.mismatched, run.compared), "share".to_owned()),
    };
    out.push(criterion(
        "max_mismatch_rate",
        format!(
            "{} ({label}; {} of {} accounts)",
            rate.round_dp(6),
            run.mismatched,
            run.compared
        ),
        format!("<= {}", gate.max_mismatch_rate),
        run.compared > 0 && rate <= gate.max_mismatch_rate,
        run.compared == 0,
    ));
    for (currency, max) in &gate.max_delta {
        let delta = run.delta.get(currency).copied().unwrap_or_default().abs();
        out.push(criterion(
            "max_delta",
            format!("{delta} {currency}"),
            format!("<= {max} {currency}"),
            delta <= *max,
            false,
        ));
    }
    if !gate.max_delta.is_empty() {
        // Drift in a currency the policy sets no limit for cannot be judged against another
        // currency's: the cell is held.
        for (currency, delta) in &run.delta {
            if !delta.is_zero() && !gate.max_delta.contains_key(currency) {
                out.push(criterion(
                    "max_delta",
                    format!("{} {currency}", delta.abs()),
                    format!("a max_delta in {currency} (the policy has none)"),
                    false,
                    true,
                ));
            }
        }
    }
    if let Some(critical) = &gate.critical_amount {
        out.extend(critical_criteria(critical, run));
    }
    out.push(criterion(
        "no_customer_mismatch",
        format!(
            "{} customers whose total across the run fails",
            run.customers_mismatched
        ),
        "<= 0".to_owned(),
        run.customers_mismatched == 0,
        false,
    ));
    let error_rate = ratio(run.errored, run.cohort);
    out.push(criterion(
        "max_stack_error_rate",
        format!("{} ({} accounts)", error_rate.round_dp(6), run.errored),
        format!("<= {}", gate.max_stack_error_rate),
        error_rate <= gate.max_stack_error_rate,
        false,
    ));
    out.push(criterion(
        "no_expired_waiver",
        if run.expired_waivers.is_empty() {
            "none".to_owned()
        } else {
            run.expired_waivers.join(", ")
        },
        "none".to_owned(),
        run.expired_waivers.is_empty(),
        false,
    ));
    out
}

/// The critical-diff criteria: one per currency with an unwaived diff, each judged against
/// that currency's threshold only. A currency the policy has no threshold for cannot be
/// judged: inconclusive (the cell is held), never a pass. Amounts in different currencies are
/// never compared.
fn critical_criteria(critical: &BTreeMap<String, Decimal>, run: &RunEvidence) -> Vec<Criterion> {
    if run.largest_unwaived.is_empty() {
        let thresholds: Vec<String> = critical.iter().map(|(c, a)| format!("< {a} {c}")).collect();
        return vec![criterion(
            "critical_diff",
            "no unwaived diff with an amount".to_owned(),
            thresholds.join(", "),
            true,
            false,
        )];
    }
    run.largest_unwaived
        .iter()
        .map(|(currency, largest)| match critical.get(currency) {
            Some(max) => criterion(
                "critical_diff",
                format!("largest unwaived diff {largest} {currency}"),
                format!("< {max} {currency}"),
                largest < max,
                false,
            ),
            None => criterion(
                "critical_diff",
                format!("largest unwaived diff {largest} {currency}"),
                format!("a critical_amount in {currency} (the policy has none)"),
                false,
                true,
            ),
        })
        .collect()
}

/// Judges evidence that could not be read: held, with the reason, never passed.
pub(crate) fn unreadable(reason: &str) -> Verdict {
    Verdict {
        outcome: Outcome::Inconclusive,
        criteria: vec![criterion(
            "evidence",
            format!("cannot be read: {reason}"),
            "readable stored runs".to_owned(),
            false,
            true,
        )],
        runs: Vec::new(),
        evidence_hash: evidence_hash(&[]),
    }
}

/// Judges a cell's evidence (runs newest first). `held_since`: the verdict passes only if the
/// newest run finished after it.
pub(crate) fn evaluate(gate: &Gate, runs: &[RunEvidence], held: Option<&Hold>) -> Verdict {
    let evidence_hash = evidence_hash(runs);
    let Some(latest) = runs.first() else {
        let c = criterion(
            "evidence",
            "no completed run covers this cell".to_owned(),
            "at least one run".to_owned(),
            false,
            true,
        );
        return Verdict {
            outcome: Outcome::Inconclusive,
            criteria: vec![c],
            runs: Vec::new(),
            evidence_hash,
        };
    };
    let mut criteria = run_criteria(gate, latest);
    let mut streak = 0;
    let mut oldest = latest.started_at;
    for run in runs {
        if run_criteria(gate, run).iter().all(|c| c.passed) {
            streak += 1;
            oldest = run.started_at;
        } else {
            break;
        }
        if streak >= gate.consecutive_passing_runs as usize {
            break;
        }
    }
    let span_hours = (latest.finished_at - oldest).num_minutes() / 60;
    criteria.push(criterion(
        "consecutive_passing_runs",
        format!("{streak} spanning {span_hours} h"),
        format!(
            ">= {} spanning >= {} h",
            gate.consecutive_passing_runs, gate.min_span_hours
        ),
        streak >= gate.consecutive_passing_runs as usize
            && span_hours >= i64::from(gate.min_span_hours),
        true,
    ));
    if let Some(hold) = held {
        criteria.push(criterion(
            "fresh_evidence",
            format!("newest run {}", latest.run_id),
            format!(
                "a run newer than {} (held {})",
                if hold.after_run.is_empty() {
                    "none"
                } else {
                    &hold.after_run
                },
                hold.since.to_rfc3339()
            ),
            latest.run_id != hold.after_run,
            true,
        ));
    }
    let outcome = if criteria.iter().all(|c| c.passed) {
        Outcome::Pass
    } else if criteria.iter().any(|c| !c.passed && !c.inconclusive) {
        Outcome::Fail
    } else {
        Outcome::Inconclusive
    };
    Verdict {
        outcome,
        criteria,
        runs: runs.iter().map(|r| r.run_id.clone()).collect(),
        evidence_hash,
    }
}

fn evidence_hash(runs: &[RunEvidence]) -> String {
    crate::support::sha256_hex(serde_json::to_string(runs).unwrap_or_default().as_bytes())
}

fn ratio(part: u64, whole: u64) -> Decimal {
    if whole == 0 {
        Decimal::ZERO
    } else {
        Decimal::from(part) / Decimal::from(whole)
    }
}

/// The Wilson score upper bound of a proportion at a two-sided confidence. Rates, not money:
/// this is the one place the controller computes in floating point.
fn upper_bound(failures: u64, trials: u64, confidence: Decimal) -> Decimal {
    if trials == 0 {
        return Decimal::ONE;
    }
    let c: f64 = confidence.to_string().parse().unwrap_or(0.95);
    let z = inverse_normal(1.0 - (1.0 - c) / 2.0);
    let n = trials as f64;
    let p = failures as f64 / n;
    let centre = p + z * z / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let bound = ((centre + margin) / (1.0 + z * z / n)).clamp(0.0, 1.0);
    Decimal::from_f64_retain(bound)
        .unwrap_or(Decimal::ONE)
        .round_dp(8)
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inverse_normal(1.0 - p)
    }
}

/// Whether `now` falls in a freeze window.
pub(crate) fn frozen(freezes: &[Freeze], now: DateTime<Utc>) -> Option<String> {
    for f in freezes {
        let local = now.with_timezone(&f.time_zone);
        let day = local.day();
        let days_in_month = days_in_month(local.year(), local.month());
        if day > days_in_month.saturating_sub(f.last_days) || day <= f.first_days {
            return Some(format!(
                "freeze: {} is within the last {} or first {} days of the month ({})",
                local.format("%Y-%m-%d %H:%M %Z"),
                f.last_days,
                f.first_days,
                f.time_zone
            ));
        }
    }
    None
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// What an action asks of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Advance,
    Rollback,
    Hold(String),
    Release,
}

/// What the controller decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Move to this state.
    Move(CellState),
    /// Hold the cell (the gate did not pass): a state change, recorded.
    Hold(CellState),
    /// Nothing changes, for this reason.
    Blocked(String),
}

/// Everything a decision depends on besides the cell itself.
pub(crate) struct Context<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) now: DateTime<Utc>,
    pub(crate) verdict: &'a Verdict,
    /// Approvals of the step by people other than the actor, on the current evidence.
    pub(crate) approvals: u32,
    /// Dependencies (`after`) not yet in cutover.
    pub(crate) waiting_for: Vec<String>,
    /// Cells other than this one in canary or cutover.
    pub(crate) in_flight: usize,
    /// Runs that started after the cell took its current step (and after every run that step
    /// was judged on): the only evidence for the next step out of canary or cutover.
    pub(crate) fresh_runs: usize,
}

/// Decides what `action` does to `cell`.
pub(crate) fn decide(cell: &CellState, action: &Action, cx: &Context<'_>) -> Decision {
    if let Some(p) = &cell.pending
        && *action != Action::Rollback
    {
        return Decision::Blocked(format!(
            "the transition {} → {} by {} since {} is pending (its hook may or may not have run): `billshadow migrate reconcile` completes or reverts it",
            p.from_label,
            p.to_label,
            p.actor,
            seconds(p.since)
        ));
    }
    match action {
        Action::Rollback => roll_back(cell),
        Action::Hold(reason) => Decision::Hold(CellState {
            held: Some(Hold {
                reason: reason.clone(),
                since: cx.now,
                after_run: cx.verdict.runs.first().cloned().unwrap_or_default(),
            }),
            ..cell.clone()
        }),
        Action::Release => release(cell, cx),
        Action::Advance => advance(cell, cx),
    }
}

/// Back to the legacy stack, from wherever the modern one is authoritative.
fn roll_back(cell: &CellState) -> Decision {
    if cell.stage.modern_authoritative() {
        Decision::Move(CellState {
            stage: Stage::RolledBack,
            step: 0,
            held: None,
            ..cell.clone()
        })
    } else {
        Decision::Blocked(format!(
            "nothing to roll back: the cell is {} and the legacy stack is authoritative",
            cell.stage.as_str()
        ))
    }
}

/// A hold ends only when the gate passes on the current evidence.
fn release(cell: &CellState, cx: &Context<'_>) -> Decision {
    if cell.held.is_none() {
        return Decision::Blocked("the cell is not held".to_owned());
    }
    if cx.verdict.outcome == Outcome::Pass {
        Decision::Move(CellState {
            held: None,
            ..cell.clone()
        })
    } else {
        Decision::Blocked(format!("still held: {}", cx.verdict.reasons().join("; ")))
    }
}

/// The next step, checked in order: something left to advance to, no freeze, (shadowing
/// needs nothing more) dependencies in cutover, room in flight, the gate, approvals.
fn advance(cell: &CellState, cx: &Context<'_>) -> Decision {
    let policy = cx.policy;
    let Some((stage, step)) = next(cell.stage, cell.step, policy) else {
        return Decision::Blocked(
            "the cell is decommissioned: nothing is left to advance".to_owned(),
        );
    };
    if let Some(freeze) = frozen(&policy.freezes, cx.now) {
        return Decision::Blocked(freeze);
    }
    let target = CellState {
        stage,
        step,
        held: None,
        ..cell.clone()
    };
    if stage == Stage::Shadow {
        // Shadowing changes nothing for customers: no gate.
        return Decision::Move(target);
    }
    if !cx.waiting_for.is_empty() {
        return Decision::Blocked(format!(
            "waiting for {} to reach cutover",
            cx.waiting_for.join(", ")
        ));
    }
    if cell.stage == Stage::Shadow && cx.in_flight >= policy.max_in_flight {
        return Decision::Blocked(format!(
            "{} cells are already in canary or cutover (max_in_flight = {})",
            cx.in_flight, policy.max_in_flight
        ));
    }
    if let Some(wait) = too_soon(cell, cx) {
        return Decision::Blocked(wait);
    }
    match cx.verdict.outcome {
        Outcome::Pass => {}
        Outcome::Fail | Outcome::Inconclusive => return held_by_gate(cell, cx),
    }
    if needs_approvals(stage, policy) && cx.approvals < policy.gate.approvals {
        return Decision::Blocked(format!(
            "needs {} approval(s) of the current evidence by someone other than the initiator; has {}",
            policy.gate.approvals, cx.approvals
        ));
    }
    Decision::Move(target)
}

/// Out of a canary step or cutover, each step earns its own evidence and waits its dwell
/// time: a run started since the step was taken, and `min_step_hours` at the step.
fn too_soon(cell: &CellState, cx: &Context<'_>) -> Option<String> {
    if !matches!(cell.stage, Stage::Canary | Stage::Cutover) {
        return None;
    }
    let here = step_label(cell.stage, cell.step, cx.policy);
    let mut waits = Vec::new();
    if cx.fresh_runs == 0 {
        waits.push(format!(
            "no completed run has started since {here} was taken{}: each step needs evidence of its own",
            cell.fresh_after
                .map(|t| format!(" (runs after {})", seconds(t)))
                .unwrap_or_default()
        ));
    }
    let min = i64::from(cx.policy.gate.min_step_hours);
    match cell.entered_at {
        Some(at) if (cx.now - at).num_minutes() >= min * 60 => {}
        Some(at) => waits.push(format!(
            "min_step_hours = {min}: {here} was taken {} h ago, at {}",
            (cx.now - at).num_hours(),
            seconds(at)
        )),
        None => waits.push(format!(
            "when {here} was taken is not recorded, so min_step_hours = {min} cannot be met"
        )),
    }
    (!waits.is_empty()).then(|| waits.join("; "))
}

/// A time as messages show it: RFC 3339, to the second.
fn seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The gate did not pass: the cell is held with the verdict's reasons, since the hold it is
/// already under (if any) began.
fn held_by_gate(cell: &CellState, cx: &Context<'_>) -> Decision {
    let reason = cx.verdict.reasons().join("; ");
    let (since, after_run) = match &cell.held {
        Some(h) => (h.since, h.after_run.clone()),
        None => (cx.now, cx.verdict.runs.first().cloned().unwrap_or_default()),
    };
    Decision::Hold(CellState {
        held: Some(Hold {
            reason,
            since,
            after_run,
        }),
        ..cell.clone()
    })
}

/// Whether entering `stage` needs approvals under the policy's gate.
pub(crate) fn needs_approvals(stage: Stage, policy: &Policy) -> bool {
    policy.gate.approvals > 0
        && policy
            .gate
            .approvals_for
            .iter()
            .any(|s| s == stage.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        let text = r#"
[[cells]]
partitions = ["p0"]
regions = ["r"]
[gate]
min_accounts = 10
min_coverage = "0.5"
max_mismatch_rate = "0.1"
critical_amount = { EUR = "90.00" }
approvals = 1
[[freeze]]
days_before_month_end = 2
days_after_month_start = 3
time_zone = "UTC"
"#;
        let text = format!("{text}{}", super::super::policy::TEST_APPROVERS);
        Policy::parse("p.toml", &text).unwrap()
    }

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    }

    fn run(id: &str, finished: DateTime<Utc>, compared: u64, mismatched: u64) -> RunEvidence {
        RunEvidence {
            run_id: id.to_owned(),
            started_at: finished - chrono::TimeDelta::hours(1),
            finished_at: finished,
            cohort: 100,
            compared,
            mismatched,
            errored: 0,
            customers_mismatched: 0,
            delta: BTreeMap::new(),
            largest_unwaived: BTreeMap::new(),
            expired_waivers: Vec::new(),
            stack_versions: Default::default(),
        }
    }

    fn state(stage: Stage) -> CellState {
        CellState {
            stage,
            step: 0,
            held: None,
            version: 1,
            entered_at: Some(at(1)),
            fresh_after: None,
            pending: None,
        }
    }

    fn cx<'a>(
        policy: &'a Policy,
        verdict: &'a Verdict,
        now: DateTime<Utc>,
        approvals: u32,
    ) -> Context<'a> {
        Context {
            policy,
            now,
            verdict,
            approvals,
            waiting_for: Vec::new(),
            in_flight: 0,
            fresh_runs: 1,
        }
    }

    #[test]
    fn too_little_data_holds_and_never_passes() {
        let p = policy();
        let v = evaluate(&p.gate, &[run("r1", at(10), 5, 0)], None);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &v, at(10), 1)
            ),
            Decision::Hold(_)
        ));
        let none = evaluate(&p.gate, &[], None);
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &none, at(10), 1)
            ),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn a_held_cell_passes_only_on_a_newer_run() {
        let p = policy();
        let held = CellState {
            held: Some(Hold {
                reason: "x".into(),
                since: at(10),
                after_run: "r1".into(),
            }),
            ..state(Stage::Shadow)
        };
        let old = evaluate(&p.gate, &[run("r1", at(9), 90, 0)], held.held.as_ref());
        assert_eq!(old.outcome, Outcome::Inconclusive);
        assert!(matches!(
            decide(&held, &Action::Advance, &cx(&p, &old, at(11), 1)),
            Decision::Hold(_)
        ));
        let fresh = evaluate(
            &p.gate,
            &[run("r2", at(11), 90, 0), run("r1", at(9), 90, 0)],
            held.held.as_ref(),
        );
        assert_eq!(fresh.outcome, Outcome::Pass);
        assert!(
            matches!(decide(&held, &Action::Advance, &cx(&p, &fresh, at(12), 1)), Decision::Move(s) if s.stage == Stage::Canary)
        );
    }

    #[test]
    fn a_freeze_blocks_advance_but_not_rollback() {
        let p = policy();
        let v = evaluate(&p.gate, &[run("r1", at(9), 90, 0)], None);
        for day in [1, 2, 3, 29, 30] {
            assert!(
                matches!(decide(&state(Stage::Shadow), &Action::Advance, &cx(&p, &v, at(day), 1)), Decision::Blocked(m) if m.starts_with("freeze")),
                "day {day}"
            );
            assert!(
                matches!(decide(&state(Stage::Canary), &Action::Rollback, &cx(&p, &v, at(day), 0)), Decision::Move(s) if s.stage == Stage::RolledBack)
            );
        }
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &v, at(4), 1)
            ),
            Decision::Move(_)
        ));
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &v, at(28), 1)
            ),
            Decision::Move(_)
        ));
    }

    #[test]
    fn cutover_needs_approvals() {
        let p = policy();
        let v = evaluate(&p.gate, &[run("r1", at(9), 90, 0)], None);
        let last_canary = CellState {
            step: p.canary_steps.len() - 1,
            ..state(Stage::Canary)
        };
        assert!(
            matches!(decide(&last_canary, &Action::Advance, &cx(&p, &v, at(10), 0)), Decision::Blocked(m) if m.contains("approval"))
        );
        assert!(
            matches!(decide(&last_canary, &Action::Advance, &cx(&p, &v, at(10), 1)), Decision::Move(s) if s.stage == Stage::Cutover)
        );
    }

    #[test]
    fn critical_amounts_are_judged_per_currency_and_a_currency_without_one_holds() {
        let p = policy();
        let with = |diffs: &[(&str, i64)]| {
            let mut r = run("r1", at(9), 90, 0);
            r.largest_unwaived = diffs
                .iter()
                .map(|(c, d)| ((*c).to_owned(), Decimal::new(*d, 2)))
                .collect();
            evaluate(&p.gate, &[r], None)
        };
        assert_eq!(with(&[]).outcome, Outcome::Pass);
        assert_eq!(with(&[("EUR", 8999)]).outcome, Outcome::Pass);
        assert_eq!(with(&[("EUR", 9000)]).outcome, Outcome::Fail);
        // 5,000 JPY is not judged against 90 EUR, either way: held.
        let yen = with(&[("EUR", 100), ("JPY", 500_000)]);
        assert_eq!(yen.outcome, Outcome::Inconclusive);
        let c = yen
            .criteria
            .iter()
            .find(|c| c.name == "critical_diff" && c.measured.ends_with("JPY"))
            .unwrap();
        assert!(c.inconclusive && !c.passed, "{c:?}");
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &yen, at(10), 1)
            ),
            Decision::Hold(_)
        ));
        assert_eq!(with(&[("JPY", 1)]).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn drift_in_a_currency_without_a_max_delta_holds() {
        let text = "[[cells]]\npartitions = [\"p0\"]\nregions = [\"r\"]\n[gate]\nmin_accounts = 10\nmax_mismatch_rate = \"0.1\"\nmax_delta = { EUR = \"5.00\" }\n";
        let p = Policy::parse("p.toml", text).unwrap();
        let with = |delta: &[(&str, i64)]| {
            let mut r = run("r1", at(9), 90, 0);
            r.delta = delta
                .iter()
                .map(|(c, d)| ((*c).to_owned(), Decimal::new(*d, 0)))
                .collect();
            evaluate(&p.gate, &[r], None).outcome
        };
        assert_eq!(with(&[("EUR", -4), ("JPY", 0)]), Outcome::Pass);
        assert_eq!(with(&[("EUR", 6)]), Outcome::Fail);
        assert_eq!(with(&[("EUR", 1), ("JPY", 3)]), Outcome::Inconclusive);
    }

    #[test]
    fn unreadable_evidence_holds() {
        let p = policy();
        let v = unreadable("run r1: its stored spec does not parse");
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(matches!(
            decide(
                &state(Stage::Shadow),
                &Action::Advance,
                &cx(&p, &v, at(10), 1)
            ),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn wilson_upper_bound() {
        let b = upper_bound(0, 100, Decimal::new(95, 2));
        assert!(b > Decimal::new(36, 3) && b < Decimal::new(38, 3), "{b}");
        assert_eq!(upper_bound(0, 0, Decimal::new(95, 2)), Decimal::ONE);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Act(u8),
        Run { compared: u64, mismatched: u64 },
        Day(u32),
        Approve,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0u8..4).prop_map(Event::Act),
            (0u64..100, 0u64..20).prop_map(|(compared, mismatched)| Event::Run {
                compared,
                mismatched: mismatched.min(compared)
            }),
            (1u32..=30).prop_map(Event::Day),
            Just(Event::Approve),
        ]
    }

    proptest! {
        #[test]
        fn no_cell_reaches_canary_or_cutover_without_a_passing_gate(events in prop::collection::vec(event(), 1..80)) {
            let p = policy();
            let mut cell = state(Stage::Legacy);
            let mut runs: Vec<RunEvidence> = Vec::new();
            let mut day = 10;
            let mut hour = 0i64;
            let mut approvals = 0;
            for e in events {
                hour += 1;
                let now = at(day) + chrono::TimeDelta::hours(hour);
                match e {
                    Event::Run { compared, mismatched } => {
                        runs.insert(0, run(&format!("r{}", runs.len()), now, compared, mismatched));
                        approvals = 0; // New evidence: older approvals are stale.
                    }
                    Event::Day(d) => { day = d; hour = 0; }
                    Event::Approve => approvals += 1,
                    Event::Act(a) => {
                        let action = match a { 0 | 1 => Action::Advance, 2 => Action::Rollback, _ => Action::Hold("manual".into()) };
                        let verdict = evaluate(&p.gate, &runs, cell.held.as_ref());
                        let before = cell.clone();
                        let decision = decide(&cell, &action, &cx(&p, &verdict, now, approvals));
                        if action == Action::Rollback && before.stage.modern_authoritative() {
                            prop_assert!(matches!(decision, Decision::Move(ref s) if s.stage == Stage::RolledBack), "rollback refused: {decision:?}");
                        }
                        if let Decision::Move(next) | Decision::Hold(next) = decision {
                            let entered = next.stage != before.stage || next.step != before.step;
                            if entered && matches!(next.stage, Stage::Canary | Stage::Cutover) {
                                prop_assert_eq!(verdict.outcome, Outcome::Pass, "entered {:?} without a pass", next.stage);
                                prop_assert!(frozen(&p.freezes, now).is_none());
                            }
                            cell = next;
                        }
                    }
                }
            }
        }
    }
}
