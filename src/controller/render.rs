//! How the controller shows itself: status table, plan, gate verdicts (text, JSON, Markdown,
//! JUnit) and the routing table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use billshadow_reports::view::{CriterionView, GateView};
use chrono::{DateTime, Utc};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::judged::Judged;
use super::machine::{self, CellState, Decision, Stage};
use super::policy::Policy;
use crate::args::MigrateFormat;

fn blocks(j: &Judged) -> String {
    match &j.decision {
        Decision::Move(_) => format!("ready: → {}", j.next),
        Decision::Hold(next) => format!(
            "held: {}",
            next.held.as_ref().map_or("", |h| h.reason.as_str())
        ),
        Decision::Blocked(reason) => reason.clone(),
    }
}

/// What stands before the next step, naming it (`canary:5: …`), as the status table shows it.
fn next_step(j: &Judged) -> String {
    match &j.decision {
        Decision::Move(_) => blocks(j),
        _ => format!("{}: {}", j.next, blocks(j)),
    }
}

/// A gate verdict as a report shows it.
pub(super) fn gate_view(j: &Judged) -> GateView {
    GateView {
        cell: j.cell.name(),
        target: j.next.clone(),
        passed: matches!(j.decision, Decision::Move(_)),
        blocks: blocks(j),
        criteria: j
            .verdict
            .criteria
            .iter()
            .map(|c| CriterionView {
                name: c.name.to_owned(),
                measured: c.measured.clone(),
                threshold: c.threshold.clone(),
                passed: c.passed,
                inconclusive: c.inconclusive,
            })
            .collect(),
    }
}

fn verdict_word(j: &Judged) -> &'static str {
    match j.verdict.outcome {
        machine::Outcome::Pass => "pass",
        machine::Outcome::Fail => "fail",
        machine::Outcome::Inconclusive => "inconclusive",
    }
}

fn cell_json(j: &Judged, policy: &Policy) -> serde_json::Value {
    let latest = j.latest.as_ref();
    serde_json::json!({
        "cell": j.cell.name(),
        "partition": j.cell.partition,
        "region": j.cell.region,
        "state": j.state.stage.as_str(),
        "label": j.state.label(policy),
        "step": if j.state.stage == Stage::Canary { Some(j.state.step) } else { None },
        "modern_percent": j.state.modern_percent(policy).to_string(),
        "held": j.state.held.as_ref().map(|h| serde_json::json!({"reason": h.reason, "since": h.since.to_rfc3339()})),
        "version": j.state.version,
        "next": j.target.map(|_| j.next.as_str()),
        "pending": j.state.pending,
        "accounts": latest.map(|l| l.compared),
        "mismatched": latest.map(|l| l.mismatched),
        "delta": latest.map(|l| l.delta.iter().map(|(c, d)| (c.clone(), d.to_string())).collect::<BTreeMap<_, _>>()),
        "stack_versions": latest.map(|l| l.stack_versions.iter().map(|(side, v)| (side.clone(), v.shown())).collect::<BTreeMap<_, _>>()),
        "passing_streak": j.streak,
        "verdict": verdict_word(j),
        "criteria": j.verdict.criteria,
        "evidence_hash": j.verdict.evidence_hash,
        "approvals": j.approvals,
        "blocks": blocks(j),
    })
}

pub(super) fn status(
    judged: &[Judged],
    policy: &Policy,
    format: MigrateFormat,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == MigrateFormat::Json {
        let cells: Vec<_> = judged.iter().map(|j| cell_json(j, policy)).collect();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "policy_hash": policy.hash, "cells": cells }),
        )?;
        return writeln!(out);
    }
    writeln!(
        out,
        "{:<22} {:<26} {:>8} {:>10} {:<18} {:<18} {:<13} next step",
        "cell", "state", "accounts", "mismatch", "delta", "streak", "verdict"
    )?;
    for j in judged {
        let latest = j.latest.as_ref();
        let rate = latest.map_or("-".to_owned(), |l| {
            if l.compared == 0 {
                "-".to_owned()
            } else {
                let rate = rust_decimal::Decimal::from(l.mismatched)
                    * rust_decimal::Decimal::ONE_HUNDRED
                    / rust_decimal::Decimal::from(l.compared);
                format!("{:.2}%", rate.round_dp(2))
            }
        });
        let delta = latest.map_or("-".to_owned(), |l| {
            let parts: Vec<String> = l
                .delta
                .iter()
                .filter(|(_, d)| !d.is_zero())
                .map(|(c, d)| format!("{d} {c}"))
                .collect();
            if parts.is_empty() {
                "0".to_owned()
            } else {
                parts.join(", ")
            }
        });
        let mut label = j.state.label(policy);
        if label.len() > 26 {
            label = format!("held at {}", j.state.stage.as_str());
        }
        writeln!(
            out,
            "{:<22} {:<26} {:>8} {:>10} {:<18} {:<18} {:<13} {}",
            j.cell.name(),
            label,
            latest.map_or("-".to_owned(), |l| l.compared.to_string()),
            rate,
            delta,
            j.streak,
            verdict_word(j),
            next_step(j)
        )?;
    }
    Ok(())
}

pub(super) fn plan(judged: &[Judged], policy: &Policy) {
    for j in judged {
        let line = match &j.decision {
            Decision::Move(next) => format!(
                "advance {} → {} ({}; the gate passes)",
                j.state.label(policy),
                next.label(policy),
                j.next
            ),
            Decision::Hold(next) => format!(
                "hold at {} before {}: {}",
                j.state.stage.as_str(),
                j.next,
                next.held.as_ref().map_or("", |h| h.reason.as_str())
            ),
            Decision::Blocked(reason) => format!("nothing ({} blocked): {reason}", j.next),
        };
        crate::outln!("{:<22} {line}", j.cell.name());
    }
}

pub(super) fn gate(j: &Judged, policy: &Policy, format: MigrateFormat) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        MigrateFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &cell_json(j, policy))?;
            writeln!(out)
        }
        MigrateFormat::Md => writeln!(out, "{}", gate_markdown(j, policy)),
        MigrateFormat::Text => {
            let target = j.target.map_or("nothing", |_| j.next.as_str());
            writeln!(
                out,
                "gate {} → {target}: {} ({})",
                j.cell.name(),
                if matches!(j.decision, Decision::Move(_)) {
                    "PASS"
                } else {
                    "BLOCKED"
                },
                blocks(j)
            )?;
            for c in &j.verdict.criteria {
                let mark = if c.passed {
                    "ok  "
                } else if c.inconclusive {
                    "wait"
                } else {
                    "FAIL"
                };
                writeln!(
                    out,
                    "  {mark} {:<26} {} (needs {})",
                    c.name, c.measured, c.threshold
                )?;
            }
            writeln!(
                out,
                "  runs judged: {}",
                if j.verdict.runs.is_empty() {
                    "none".to_owned()
                } else {
                    j.verdict.runs.join(", ")
                }
            )?;
            match latest_versions(j) {
                Some(versions) => writeln!(out, "  stacks of the newest run: {versions}"),
                None => Ok(()),
            }
        }
    }
}

/// The versions the stacks of the newest judged run reported, when it recorded any.
fn latest_versions(j: &Judged) -> Option<String> {
    j.latest
        .as_ref()
        .filter(|l| !l.stack_versions.is_empty())
        .map(|l| crate::versions::one_line(&l.stack_versions))
}

fn gate_markdown(j: &Judged, policy: &Policy) -> String {
    let passed = matches!(j.decision, Decision::Move(_));
    let mut md = format!(
        "### Gate {} → {}: {}\n\n{}\n\n| criterion | measured | needs | |\n|---|---|---|---|\n",
        j.cell.name(),
        j.target.map_or("nothing", |_| j.next.as_str()),
        if passed { "✅ pass" } else { "⛔ blocked" },
        blocks(j).replace('|', "\\|"),
    );
    for c in &j.verdict.criteria {
        let mark = if c.passed {
            "✅"
        } else if c.inconclusive {
            "⏳"
        } else {
            "❌"
        };
        md.push_str(&format!(
            "| {} | {} | {} | {mark} |\n",
            c.name,
            c.measured.replace('|', "\\|"),
            c.threshold.replace('|', "\\|")
        ));
    }
    if let Some(versions) = latest_versions(j) {
        md.push_str(&format!(
            "\nStacks of the newest run: {}\n",
            versions.replace('|', "\\|")
        ));
    }
    md.push_str(&format!(
        "\nState: {} · policy {} · evidence {}\n",
        j.state.label(policy),
        &policy.hash[..12],
        &j.verdict.evidence_hash[..12]
    ));
    md
}

/// A JUnit report: one suite per cell, one case per criterion, failures with the measured
/// value and the threshold.
pub(super) fn write_junit(path: &Path, j: &Judged, policy: &Policy) -> anyhow::Result<()> {
    let mut report = Report::new("billshadow migrate gate");
    let mut suite = TestSuite::new(j.cell.name());
    for c in gate_view(j).criteria {
        let mut case = c.junit_case();
        case.set_classname(format!("gate.{}", j.cell.name()));
        case.add_property(("measured", c.measured.as_str()));
        case.add_property(("threshold", c.threshold.as_str()));
        suite.add_test_case(case);
    }
    if let Decision::Blocked(reason) = &j.decision {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(reason.clone());
        suite.add_test_case(TestCase::new(format!("transition to {}", j.next), s));
    }
    suite.add_property(("next_step", j.next.as_str()));
    suite.add_property(("policy_hash", policy.hash.as_str()));
    suite.add_property(("evidence_hash", j.verdict.evidence_hash.as_str()));
    report.add_test_suite(suite);
    let xml = report.to_string()?;
    std::fs::write(path, xml).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The routing table: which stack is authoritative for each cell, and the canary share.
pub(super) fn routes(
    states: &BTreeMap<String, CellState>,
    policy: &Policy,
    now: DateTime<Utc>,
    format: MigrateFormat,
) -> std::io::Result<()> {
    let cells: Vec<serde_json::Value> = policy
        .cells
        .iter()
        .map(|c| {
            let state = states.get(&c.cell.name());
            let percent = state.map(|s| s.modern_percent(policy)).unwrap_or_default();
            let authoritative = if percent.is_zero() {
                "legacy"
            } else if percent == rust_decimal::Decimal::ONE_HUNDRED {
                "modern"
            } else {
                "split"
            };
            serde_json::json!({
                "cell": c.cell.name(), "partition": c.cell.partition, "region": c.cell.region,
                "state": state.map_or("uninitialised", |s| s.stage.as_str()),
                "authoritative": authoritative, "modern_percent": percent.to_string(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schema": "billshadow.routes/v1",
        "generated_at": now.to_rfc3339(),
        "policy_hash": policy.hash,
        "canary_selection": "an account is billed by the modern stack when the first 8 bytes of sha256(account_id), read as a big-endian integer, modulo 10000, are below modern_percent × 100",
        "cells": cells,
    });
    let mut out = std::io::stdout().lock();
    match format {
        MigrateFormat::Json | MigrateFormat::Md => {
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)
        }
        MigrateFormat::Text => {
            for c in doc["cells"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{:<22} {:<14} {:<8} {}%",
                    c["cell"].as_str().unwrap_or(""),
                    c["state"].as_str().unwrap_or(""),
                    c["authoritative"].as_str().unwrap_or(""),
                    c["modern_percent"].as_str().unwrap_or("")
                )?;
            }
            Ok(())
        }
    }
}
