//! The Prometheus text exposition of the latest run and the cells' migration states, named
//! as the Prometheus guide asks: base units in the name (`_seconds`), `_info` metrics for what
//! identifies a build or a run, and only bounded labels on everything else.
//!
//! Never: a run id on any metric but `billshadow_run_info` (a label per run is a new series
//! per run, for ever); an amount summed across currencies; over- and under-billing netted
//! against each other.

use std::collections::BTreeMap;
use std::io::{self, Write};

use billshadow_comparisons::Verdict;

use crate::view::{CellView, RunView};

/// Every migration stage a cell can be in, in order: `billshadow_cell_state` has one series
/// per stage for each cell (a state set), so a dashboard sees 0 as well as 1.
pub const STAGES: [&str; 6] = [
    "legacy",
    "shadow",
    "canary",
    "cutover",
    "decommissioned",
    "rolled_back",
];

/// What this binary is: `billshadow_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: String,
    pub commit: String,
}

/// A cell's place in the migration, as the controller stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellMigration {
    /// One of [`STAGES`].
    pub stage: String,
    pub held: bool,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct Exposition<'a> {
    pub build: &'a BuildInfo,
    /// The newest run.
    pub view: &'a RunView,
    /// When the newest run that finished (completed or not) finished, in Unix seconds: the
    /// staleness signal (`time() - billshadow_last_run_finished_timestamp_seconds`).
    pub last_finished_seconds: Option<i64>,
    /// When the newest run started, in Unix seconds.
    pub started_seconds: Option<i64>,
    /// Each cell's migration state, by cell name (`p0/us-east-1`).
    pub migration: &'a BTreeMap<String, CellMigration>,
    /// The newest run's signatures with failing diffs, by whether the shadow run before it
    /// had the same signature (`known`) or not (`new`; all of them when there is none).
    pub signatures: SignatureCounts,
}

/// Signatures with failing diffs, new since the previous shadow run or known from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignatureCounts {
    pub new: u64,
    pub known: u64,
}

/// Writes the exposition.
pub fn write(out: &mut dyn Write, e: Exposition<'_>) -> io::Result<()> {
    write_info(out, e)?;
    write_run(out, e.view)?;
    write_cells(out, e.view)?;
    write_money(out, e.view)?;
    write_signatures(out, e.signatures)?;
    write_migration(out, e.view, e.migration)
}

/// The newest run's causes: new ones since the previous shadow run, and known ones.
fn write_signatures(out: &mut dyn Write, s: SignatureCounts) -> io::Result<()> {
    metric(
        out,
        "billshadow_run_signatures",
        "Signatures (causes) of the newest run's failing diffs: new (not in the shadow run before it; all of them when there is none) or known.",
    )?;
    writeln!(out, "billshadow_run_signatures{{status=\"new\"}} {}", s.new)?;
    writeln!(
        out,
        "billshadow_run_signatures{{status=\"known\"}} {}",
        s.known
    )
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric's `# HELP` and `# TYPE` lines.
fn metric(out: &mut dyn Write, name: &str, help: &str) -> io::Result<()> {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge")
}

/// A cell's labels: `partition="p0",region="us-east-1"`.
fn cell(c: &CellView) -> String {
    format!(
        "partition=\"{}\",region=\"{}\"",
        label(&c.partition),
        label(&c.region)
    )
}

fn write_info(out: &mut dyn Write, e: Exposition<'_>) -> io::Result<()> {
    metric(
        out,
        "billshadow_build_info",
        "The billshadow build serving these metrics (always 1).",
    )?;
    writeln!(
        out,
        "billshadow_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        label(&e.build.version),
        label(&e.build.commit)
    )?;
    let v = e.view;
    metric(
        out,
        "billshadow_run_info",
        "The newest run (always 1): the only metric labelled with a run id.",
    )?;
    writeln!(
        out,
        "billshadow_run_info{{run_id=\"{}\",kind=\"{}\",status=\"{}\"}} 1",
        label(&v.run_id),
        label(&v.kind_label),
        label(&v.status)
    )?;
    if let Some(t) = e.started_seconds {
        metric(
            out,
            "billshadow_run_started_timestamp_seconds",
            "When the newest run started, in Unix seconds.",
        )?;
        writeln!(out, "billshadow_run_started_timestamp_seconds {t}")?;
    }
    if let Some(t) = e.last_finished_seconds {
        metric(
            out,
            "billshadow_last_run_finished_timestamp_seconds",
            "When the newest finished run finished, in Unix seconds (alert when it grows old).",
        )?;
        writeln!(out, "billshadow_last_run_finished_timestamp_seconds {t}")?;
    }
    Ok(())
}

/// The newest run as a whole: its verdict (a state set), whether it is complete, its accounts.
fn write_run(out: &mut dyn Write, view: &RunView) -> io::Result<()> {
    metric(
        out,
        "billshadow_run_verdict",
        "The newest run's verdict, one series per verdict (1 for its current one): parity only when every account of the cohort was compared.",
    )?;
    for verdict in [Verdict::Parity, Verdict::Mismatch, Verdict::Incomplete] {
        writeln!(
            out,
            "billshadow_run_verdict{{verdict=\"{verdict}\"}} {}",
            u8::from(view.summary.verdict == verdict)
        )?;
    }
    metric(
        out,
        "billshadow_run_complete",
        "1 when the newest run finished and every account of its cohort has a verdict, else 0.",
    )?;
    writeln!(
        out,
        "billshadow_run_complete {}",
        u8::from(view.completeness.complete)
    )?;
    metric(
        out,
        "billshadow_run_accounts",
        "Accounts of the newest run's cohort: total, done (with an outcome), compared, errored, pending (no outcome yet).",
    )?;
    let c = &view.completeness;
    for (state, n) in [
        ("total", c.accounts_total),
        ("done", c.accounts_done),
        ("compared", c.accounts_compared),
        ("errored", c.accounts_errored),
        ("pending", c.accounts_pending),
    ] {
        writeln!(out, "billshadow_run_accounts{{state=\"{state}\"}} {n}")?;
    }
    Ok(())
}

/// Each cell's accounts by outcome, and its parity ratio where any account was compared.
fn write_cells(out: &mut dyn Write, view: &RunView) -> io::Result<()> {
    metric(
        out,
        "billshadow_accounts",
        "Accounts of the newest run by cell and outcome (pending: no outcome yet).",
    )?;
    for c in &view.cells {
        for (status, n) in [
            ("parity", c.at_parity),
            ("mismatch", c.mismatched),
            ("stack_error", c.errored),
            ("pending", c.pending),
        ] {
            writeln!(
                out,
                "billshadow_accounts{{{},status=\"{status}\"}} {n}",
                cell(c)
            )?;
        }
    }
    metric(
        out,
        "billshadow_parity_ratio",
        "Share of the newest run's compared accounts at parity, by cell (0 to 1).",
    )?;
    for c in &view.cells {
        if let Some(r) = &c.parity_ratio {
            writeln!(out, "billshadow_parity_ratio{{{}}} {r}", cell(c))?;
        }
    }
    Ok(())
}

/// Money, per currency and never across currencies: over- and under-billing apart per cell,
/// and the absolute difference of the run's totals.
fn write_money(out: &mut dyn Write, view: &RunView) -> io::Result<()> {
    for (name, help, amounts) in [
        (
            "billshadow_overbilled_amount",
            "Sum over the cell's accounts billed more by modern than by legacy of the difference, per currency, in its major unit (USD: dollars).",
            (|c: &CellView| &c.overbilled) as fn(&CellView) -> &BTreeMap<String, String>,
        ),
        (
            "billshadow_underbilled_amount",
            "Sum over the cell's accounts billed less by modern than by legacy of the difference, per currency, in its major unit (USD: dollars).",
            |c: &CellView| &c.underbilled,
        ),
    ] {
        metric(out, name, help)?;
        for c in &view.cells {
            for (currency, amount) in amounts(c) {
                writeln!(
                    out,
                    "{name}{{{},currency=\"{}\"}} {amount}",
                    cell(c),
                    label(currency)
                )?;
            }
        }
    }
    metric(
        out,
        "billshadow_total_delta_abs_amount",
        "|modern total − legacy total| of the newest run, per currency, in its major unit.",
    )?;
    for (currency, totals) in &view.summary.currencies {
        writeln!(
            out,
            "billshadow_total_delta_abs_amount{{currency=\"{}\"}} {}",
            label(currency.code()),
            totals.delta_abs
        )?;
    }
    Ok(())
}

/// Each cell's migration stage as a state set, and whether it is held.
fn write_migration(
    out: &mut dyn Write,
    view: &RunView,
    migration: &BTreeMap<String, CellMigration>,
) -> io::Result<()> {
    if migration.is_empty() {
        return Ok(());
    }
    metric(
        out,
        "billshadow_cell_state",
        "Each cell's migration stage, one series per stage (1 for its current one).",
    )?;
    for c in &view.cells {
        if let Some(m) = migration.get(&c.cell) {
            for stage in STAGES {
                writeln!(
                    out,
                    "billshadow_cell_state{{{},state=\"{stage}\"}} {}",
                    cell(c),
                    u8::from(m.stage == stage)
                )?;
            }
        }
    }
    metric(
        out,
        "billshadow_cell_held",
        "1 when the controller holds the cell where it is, else 0.",
    )?;
    for c in &view.cells {
        if let Some(m) = migration.get(&c.cell) {
            writeln!(
                out,
                "billshadow_cell_held{{{}}} {}",
                cell(c),
                u8::from(m.held)
            )?;
        }
    }
    Ok(())
}
