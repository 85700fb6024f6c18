//! A run's summary as the `run` and `show` commands print it: text for people, JSON for
//! machines, and the exit code its verdict maps to.

use std::io::Write;

use billshadow_reports::json::DiffJson;

use crate::args::TableFormat;
use crate::exit::{Code, Failure, unavailable};
use crate::run::report::RunReport;

/// 1 when mismatches are known, else 3 when the run is incomplete (accounts pending or
/// without a verdict, or the run did not complete), else 0.
pub(crate) fn exit_code(report: &RunReport) -> Code {
    let s = &report.comparison.summary;
    if s.accounts_mismatched > 0 || s.verdict == billshadow_comparisons::Verdict::Mismatch {
        Code::Mismatch
    } else if !report.completeness.complete || s.verdict != billshadow_comparisons::Verdict::Parity
    {
        Code::Stack
    } else {
        Code::Parity
    }
}

pub(crate) fn print(
    report: &RunReport,
    format: TableFormat,
    limit: usize,
    calibrate: bool,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        TableFormat::Json => write_json(&mut out, report),
        TableFormat::Text => write_text(&mut out, report, limit, calibrate),
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other
            .map_err(|e| unavailable(anyhow::Error::new(e).context("cannot write the report")))
            .map_err(Into::into),
    }
}

/// What every JSON form of a run starts with: the schema, the run, how complete it is, its
/// summary and its cells.
pub(crate) fn json_head(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "schema": billshadow_reports::json::SCHEMA,
        "run": report.run,
        "run_label": billshadow_reports::view::kind_label(report.run.kind.as_str()),
        "completeness": report.completeness,
        "incomplete": report.completeness.describe(),
        "summary": report.comparison.summary,
        "cells": report.cells,
    })
}

pub(crate) fn write_json(out: &mut dyn Write, report: &RunReport) -> std::io::Result<()> {
    let mut doc = json_head(report);
    doc["retries"] = report.retries.into();
    doc["signatures"] = serde_json::to_value(&report.causes.view.signatures)?;
    doc["signatures_left_off"] = report.causes.view.left_off.into();
    let diffs: Vec<DiffJson<'_>> = (report.comparison.diffs.iter())
        .zip(&report.diff_signatures)
        .map(|(d, signature)| DiffJson {
            signature: signature.as_deref(),
            ..DiffJson::from(d)
        })
        .collect();
    doc["diffs"] = serde_json::to_value(diffs)?;
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The text report's header: the run, its stacks, and its warnings.
fn text_header(report: &RunReport) -> billshadow_reports::text::Header {
    let run = &report.run;
    let mut warnings = Vec::new();
    if report.accounts_pending() > 0 {
        warnings.push(format!(
            "{} of {} accounts have no outcome yet (status {}); finish with `billshadow run --resume {}`",
            report.accounts_pending(),
            report.completeness.accounts_total,
            run.status,
            run.id
        ));
    }
    if run.kind == crate::store::RunKind::Calibration {
        warnings.push(
            "calibration (A/A): the legacy stack replayed twice; this says nothing about the modern stack"
                .to_owned(),
        );
    }
    let stacks = if run.stack_versions.is_empty() {
        String::new()
    } else {
        format!(
            "; stacks: {}",
            crate::versions::one_line(&run.stack_versions)
        )
    };
    billshadow_reports::text::Header {
        title: format!(
            "billshadow run {} ({}, {}, started {} by {}{stacks})",
            run.id,
            billshadow_reports::view::kind_label(run.kind.as_str()),
            run.status,
            run.started_at,
            run.started_by
        ),
        warnings,
        incomplete: report.completeness.describe(),
    }
}

pub(crate) fn write_text(
    out: &mut dyn Write,
    report: &RunReport,
    limit: usize,
    calibrate: bool,
) -> std::io::Result<()> {
    let run = &report.run;
    let header = text_header(report);
    let color = crate::output::stdout_colour();
    let options = billshadow_reports::text::TextOptions {
        color,
        accounts_shown_max: limit,
        accounts_with_diffs: Some(report.accounts_with_diffs as usize),
        ..Default::default()
    };
    // The causes lead, right after the verdict.
    billshadow_reports::text::write_with_causes(
        out,
        &header,
        &report.comparison,
        Some(&report.causes.view),
        Some(&run.id),
        options,
    )?;
    if report.retries > 0 {
        writeln!(
            out,
            "\n  retries    {} requests were retried",
            billshadow_reports::thousands(report.retries)
        )?;
    }
    if calibrate {
        write_noise(out, report)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:<28} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8}  delta",
        "cell", "accounts", "parity", "mismatched", "errors", "pending", "ratio"
    )?;
    for c in &report.cells {
        let delta: Vec<String> = c
            .delta
            .iter()
            .filter(|(_, d)| {
                d.parse::<rust_decimal::Decimal>()
                    .is_ok_and(|d| !d.is_zero())
            })
            .map(|(cur, d)| format!("{d} {cur}"))
            .collect();
        writeln!(
            out,
            "  {:<28} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8}  {}",
            c.cell,
            c.cohort,
            c.at_parity,
            c.mismatched,
            c.errored,
            c.pending,
            c.parity_ratio.as_deref().unwrap_or("-"),
            if delta.is_empty() {
                "0".to_owned()
            } else {
                delta.join(", ")
            }
        )?;
    }
    Ok(())
}

/// For a calibration run: which fields differ between two replays of the same stack.
fn write_noise(out: &mut dyn Write, report: &RunReport) -> std::io::Result<()> {
    let mut fields: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for d in &report.comparison.diffs {
        for f in &d.fields {
            *fields.entry(f.as_str()).or_default() += 1;
        }
    }
    writeln!(out)?;
    if fields.is_empty() {
        writeln!(
            out,
            "  calibration: two replays of the legacy stack agree on every field; nothing is nondeterministic"
        )?;
    } else {
        writeln!(
            out,
            "  calibration: fields that differ between two replays of the legacy stack (nondeterministic):"
        )?;
        for (field, n) in &fields {
            writeln!(out, "    {field:<24} {n} diffs")?;
        }
        writeln!(
            out,
            "  add the cosmetic ones to `[compare] ignore` in the spec; amounts cannot be ignored"
        )?;
    }
    Ok(())
}
