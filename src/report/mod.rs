//! Stored runs as reports: the views HTML, Markdown, JUnit, CSV, JSON and Prometheus render,
//! read from the store. Nothing is compared again.

pub(crate) mod metrics_server;
pub(crate) mod prom;
pub(crate) mod summary;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use billshadow_comparisons::Diff;
use billshadow_reports::charts::HistoryRun;
use billshadow_reports::view::{
    AccountView, CellView, ClassView, RunView, WorstAccounts, bill_rows,
};
use rust_decimal::Decimal;

use crate::args::ReportFormat;
use crate::controller::policy::Policy;
use crate::exit::{Outcome, unavailable};
use crate::run::report::{CellStats, RunReport};
use crate::store::{OutcomeStatus, RunKind, RunStatus, StatusCounts};
use crate::store::{RunRow, Store};

/// Accounts whose diffs an HTML or Markdown report lists.
const LISTED_ACCOUNTS: usize = 100;
/// Accounts shown with both bills, per currency.
const WORST_ACCOUNTS: usize = 10;
/// Runs in a cell's trend line.
const TREND_RUNS: usize = 10;

pub(crate) async fn render(
    store: &Store,
    run: RunRow,
    policy: Option<&Policy>,
    format: ReportFormat,
    template: Option<String>,
    out: &mut dyn Write,
) -> Outcome {
    let io =
        |e: std::io::Error| unavailable(anyhow::Error::new(e).context("cannot write the report"));
    match format {
        ReportFormat::Json => {
            let report = RunReport::load(store, run, None).await?;
            summary::write_json(out, &report).map_err(io)?;
            Ok(summary::exit_code(&report))
        }
        ReportFormat::Jsonl => {
            let run_id = run.id.clone();
            let report = RunReport::load(store, run, Some(0)).await?;
            let causes = &report.causes;
            store
                .for_each_diff(&run_id, |body, account, seq, column| {
                    let mut v: serde_json::Value =
                        serde_json::from_str(body).context("a stored diff does not read back")?;
                    v["record"] = "diff".into();
                    if let Some(id) = causes.signature_of(account, seq, column) {
                        v["signature"] = id.into();
                    }
                    writeln!(out, "{v}")?;
                    Ok(())
                })
                .await?;
            for signature in &causes.view.signatures {
                let record = billshadow_reports::json::SignatureRecord {
                    record: "signature",
                    signature,
                };
                serde_json::to_writer(&mut *out, &record)
                    .map_err(std::io::Error::other)
                    .map_err(io)?;
                writeln!(out).map_err(io)?;
            }
            let mut summary = summary::json_head(&report);
            summary["signatures_left_off"] = causes.view.left_off.into();
            summary["record"] = "summary".into();
            writeln!(out, "{summary}").map_err(io)?;
            Ok(summary::exit_code(&report))
        }
        ReportFormat::Csv => {
            let run_id = run.id.clone();
            let report = RunReport::load(store, run, Some(0)).await?;
            let mut writer = csv::Writer::from_writer(out);
            billshadow_reports::run::csv_header(&mut writer).map_err(|e| crate::failed!(e))?;
            store
                .for_each_diff(&run_id, |body, _, _, _| {
                    let diff = crate::store::diff_of_str(body)
                        .context("a stored diff does not read back")?;
                    billshadow_reports::run::csv_row(&mut writer, &diff)?;
                    Ok(())
                })
                .await?;
            writer.flush().map_err(io)?;
            Ok(summary::exit_code(&report))
        }
        ReportFormat::Html | ReportFormat::Md | ReportFormat::Prom | ReportFormat::Junit => {
            let (view, report) = run_view(store, run, policy).await?;
            match format {
                ReportFormat::Html => {
                    let html = billshadow_reports::run::html(&view, template)
                        .map_err(|e| crate::usage!("the HTML template: {e:#}"))?;
                    out.write_all(html.as_bytes()).map_err(io)?;
                }
                ReportFormat::Md => {
                    let md = billshadow_reports::run::markdown(&view, template)
                        .map_err(|e| crate::usage!("the Markdown template: {e:#}"))?;
                    out.write_all(md.as_bytes()).map_err(io)?;
                }
                ReportFormat::Prom => {
                    let text = prom::exposition(store, &view).await?;
                    out.write_all(text.as_bytes()).map_err(io)?;
                }
                _ => out.write_all(junit(&view)?.as_bytes()).map_err(io)?,
            }
            Ok(summary::exit_code(&report))
        }
    }
}

/// A JUnit report of a run (`billshadow_reports::ci::run_junit`), timed by the run's duration.
fn junit(view: &RunView) -> anyhow::Result<String> {
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let duration = view
        .finished_at
        .as_deref()
        .and_then(at)
        .zip(at(&view.started_at))
        .and_then(|(end, start)| (end - start).to_std().ok())
        .unwrap_or_default();
    Ok(billshadow_reports::ci::run_junit(view, duration)?)
}

/// `--store URL` as a shell reads it: quoted when the URL has a character a shell would act on.
pub(crate) fn store_arg(url: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/:@=+-%,".contains(c);
    if url.chars().all(plain) {
        format!("--store {url}")
    } else {
        format!("--store '{}'", url.replace('\'', "'\\''"))
    }
}

/// Everything a report shows, read from the store.
async fn run_view(
    store: &Store,
    run: RunRow,
    policy: Option<&Policy>,
) -> anyhow::Result<(RunView, RunReport)> {
    let report = RunReport::load(store, run.clone(), Some(LISTED_ACCOUNTS)).await?;
    let states = cell_labels(store, policy).await?;
    let history = history(store).await?;
    let trends = trends(&history);
    let drift = store.cell_drift(&report.run.id).await?;
    let cells: Vec<CellView> = report
        .cells
        .iter()
        .map(|c| cell_view(c, states.get(&c.cell).cloned(), &trends, &drift))
        .collect();
    let worst_views = worst_accounts(store, &report.run.id).await?;
    let classes = class_views(store, &report).await?;
    let gates = match policy {
        Some(p) => crate::controller::gate_views(store, p).await?,
        None => Vec::new(),
    };
    let view = RunView {
        run_id: report.run.id.clone(),
        kind: report.run.kind.to_string(),
        kind_label: billshadow_reports::view::kind_label(report.run.kind.as_str()),
        status: report.run.status.to_string(),
        started_at: report.run.started_at.clone(),
        finished_at: report.run.finished_at.clone(),
        stack_versions: report
            .run
            .stack_versions
            .iter()
            .map(|(side, v)| (side.clone(), v.shown()))
            .collect(),
        accounts_total: report.run.accounts_total,
        accounts_done: report.run.accounts_done,
        completeness: report.completeness.clone(),
        incomplete: report.completeness.describe(),
        summary: report.comparison.summary.clone(),
        cells,
        diffs: report.comparison.diffs.clone(),
        worst: worst_views,
        classes,
        gates,
        history,
        signatures: report.causes.view.signatures.clone(),
        signatures_left_off: report.causes.view.left_off,
        csv_hint: format!(
            "`billshadow report {} {} --format csv` lists every diff",
            report.run.id,
            store_arg(&store.url)
        ),
        store_arg: store_arg(&store.url),
    };
    Ok((view, report))
}

/// Each cell's state as a report names it (`canary(5%)`, `shadow, held`).
async fn cell_labels(
    store: &Store,
    policy: Option<&Policy>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let states = store.cell_states().await?;
    let label = |s: &crate::controller::machine::CellState| {
        let stage = match (policy, s.stage) {
            (Some(p), crate::controller::machine::Stage::Canary) => {
                match p.canary_steps.get(s.step) {
                    Some(percent) => format!("canary({percent}%)"),
                    // The policy given is not the one the cell moved under: say so.
                    None => format!("canary(step {}, not in this policy)", s.step + 1),
                }
            }
            (_, stage) => stage.as_str().to_owned(),
        };
        if s.held.is_some() {
            format!("{stage}, held")
        } else {
            stage
        }
    };
    Ok(states
        .iter()
        .map(|(name, s)| (name.clone(), label(s)))
        .collect())
}

/// The last completed shadow runs, oldest first: each cell's parity and the diffs by class.
async fn history(store: &Store) -> anyhow::Result<Vec<HistoryRun>> {
    let mut runs: Vec<RunRow> = store
        .runs()
        .await?
        .into_iter()
        .filter(|r| r.status == RunStatus::Completed && r.kind == RunKind::Shadow)
        .take(TREND_RUNS)
        .collect();
    runs.reverse();
    let mut history = Vec::with_capacity(runs.len());
    for r in runs {
        let mut per_cell: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for o in store.outcome_counts(&r.id).await? {
            let status: OutcomeStatus =
                o.status.parse().with_context(|| format!("run {}", r.id))?;
            per_cell
                .entry(format!("{}/{}", o.partition, o.region))
                .or_default()
                .add(status, o.accounts as u64);
        }
        let parity = per_cell
            .into_iter()
            .filter(|(_, c)| c.parity + c.mismatch > 0)
            .map(|(cell, c)| {
                let ratio = Decimal::from(c.parity) / Decimal::from(c.parity + c.mismatch);
                // Unrounded: a chart truncates it, so 99.996% never reads 100%.
                (cell, ratio.normalize().to_string())
            })
            .collect();
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for d in store.diff_counts(&r.id).await? {
            *classes.entry(d.class).or_default() += d.count as u64;
        }
        let signatures = store.stored_causes(&r.id).await?.map(|c| {
            c.signatures
                .into_iter()
                .map(|s| (s.id, s.diffs))
                .collect::<BTreeMap<String, u64>>()
        });
        history.push(HistoryRun {
            run_id: r.id,
            started_at: r.started_at,
            classes,
            parity,
            signatures,
        });
    }
    Ok(history)
}

/// Trends: the parity of each cell in the last completed runs, oldest first.
fn trends(history: &[HistoryRun]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut trends: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (i, r) in history.iter().enumerate() {
        for (cell, ratio) in &r.parity {
            trends
                .entry(cell.clone())
                .or_insert_with(|| vec![None; history.len()])[i] = Some(ratio.clone());
        }
    }
    trends
}

/// A cell as a report shows it.
fn cell_view(
    c: &CellStats,
    state: Option<String>,
    trends: &BTreeMap<String, Vec<Option<String>>>,
    drift: &BTreeMap<(String, String, String), (Decimal, Decimal)>,
) -> CellView {
    let compared = c.at_parity + c.mismatched;
    let (mut overbilled, mut underbilled) = (BTreeMap::new(), BTreeMap::new());
    for ((partition, region, currency), (over, under)) in drift {
        if *partition == c.partition && *region == c.region {
            overbilled.insert(currency.clone(), over.to_string());
            underbilled.insert(currency.clone(), under.to_string());
        }
    }
    CellView {
        cell: c.cell.clone(),
        partition: c.partition.clone(),
        region: c.region.clone(),
        cohort: c.cohort,
        pending: c.pending,
        accounts: c.accounts,
        at_parity: c.at_parity,
        mismatched: c.mismatched,
        errored: c.errored,
        parity_ratio: c.parity_ratio.clone(),
        // A whole percent, rounded down (so 99.99 % is not shown as 100 %).
        parity_percent: (compared > 0)
            .then(|| u32::try_from(c.at_parity * 100 / compared).unwrap_or(100)),
        delta: c.delta.clone(),
        overbilled,
        underbilled,
        state,
        trend: trends.get(&c.cell).cloned().unwrap_or_default(),
    }
}

/// Per currency, the accounts whose total differs most in it, with both bills.
async fn worst_accounts(store: &Store, run_id: &str) -> anyhow::Result<Vec<WorstAccounts>> {
    let mut worst_views = Vec::new();
    for (currency, accounts) in store
        .worst_accounts_by_currency(run_id, WORST_ACCOUNTS)
        .await?
    {
        let mut views = Vec::with_capacity(accounts.len());
        for (account, delta) in accounts {
            let (diffs, _) = store.account_detail(run_id, &account).await?;
            let diffs: Vec<Diff> = diffs
                .into_iter()
                .map(crate::store::diff_of_value)
                .collect::<anyhow::Result<_>>()
                .with_context(|| format!("a stored diff of {account} does not read back"))?;
            let (partition, region) =
                store
                    .cohort_cell(run_id, &account)
                    .await?
                    .with_context(|| {
                        format!(
                            "{account} has an outcome in run {} but is not in its cohort",
                            run_id
                        )
                    })?;
            views.push(AccountView {
                account_id: account,
                partition,
                region,
                delta: delta.to_string(),
                currency: currency.clone(),
                rows: bill_rows(&diffs),
            });
        }
        worst_views.push(WorstAccounts {
            currency,
            accounts: views,
        });
    }

    Ok(worst_views)
}

/// The diff classes of a run with their counts and money per currency.
async fn class_views(store: &Store, report: &RunReport) -> anyhow::Result<Vec<ClassView>> {
    let money = store.class_money(&report.run.id).await?;
    Ok(report
        .comparison
        .summary
        .by_class
        .iter()
        .map(|(class, count)| ClassView {
            class: class.as_str().to_owned(),
            informational: class.is_informational(),
            count: *count,
            money: money
                .iter()
                .filter(|((c, _), _)| c == class.as_str())
                .map(|((_, cur), v)| (cur.clone(), v.to_string()))
                .collect(),
        })
        .collect())
}

/// The latest run's Prometheus exposition, read from `store`.
pub(crate) async fn metrics_text(store: &Store, policy: Option<&Path>) -> anyhow::Result<String> {
    let run = store.resolve("latest").await?;
    let policy = policy.map(Policy::load).transpose()?;
    let (view, _) = run_view(store, run, policy.as_ref()).await?;
    prom::exposition(store, &view).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_arg_is_quoted_only_when_a_shell_would_act_on_it() {
        for (url, arg) in [
            ("s.db", "--store s.db"),
            (
                "/var/lib/billshadow/shadow.db",
                "--store /var/lib/billshadow/shadow.db",
            ),
            (
                "postgres://app:***@db:5432/shadow",
                "--store 'postgres://app:***@db:5432/shadow'",
            ),
            ("my runs.db", "--store 'my runs.db'"),
            ("it's.db", "--store 'it'\\''s.db'"),
        ] {
            assert_eq!(super::store_arg(url), arg);
        }
    }
}
