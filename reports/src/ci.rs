//! Reports for CI systems: a diff as Markdown (a step summary or a pull-request comment) and
//! as JUnit, and a stored run as JUnit. Every JUnit case has a `classname` and a `time`, and a
//! failure's body lists the worst accounts, so a CI page shows where to look first.
//!
//! Never: an amount compared or summed across currencies (worst accounts are ranked per
//! currency); a value from data in Markdown that is not escaped (`md_escape`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use billshadow_comparisons::{Comparison, Currency, Diff};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use rust_decimal::Decimal;

use crate::Inputs;
use crate::causes::CausesView;
use crate::run::{MARKDOWN_BYTES_MAX, md_escape};
use crate::view::RunView;

/// Failing diffs listed in the Markdown, and worst accounts in a failure body.
const DIFFS_LISTED: usize = 50;
const WORST_LISTED: usize = 10;

/// Per currency, the accounts whose largest failing |Δ| is largest (largest first, then by
/// account), with how many failing diffs each has.
fn worst_accounts<'a>(
    diffs: impl Iterator<Item = &'a Diff>,
) -> BTreeMap<Currency, Vec<(String, Decimal, u64)>> {
    let mut sums: BTreeMap<Currency, BTreeMap<String, (Decimal, u64)>> = BTreeMap::new();
    for d in diffs.filter(|d| d.is_failing()) {
        let (Some(currency), Some(account)) = (d.currency, &d.account_id) else {
            continue;
        };
        let entry = sums
            .entry(currency)
            .or_default()
            .entry(account.clone())
            .or_default();
        // The largest, not the sum: a line's diff and its bill's total diff are one problem.
        entry.0 = entry.0.max(d.delta.unwrap_or_default().abs());
        entry.1 += 1;
    }
    sums.into_iter()
        .map(|(currency, accounts)| {
            let mut ranked: Vec<(String, Decimal, u64)> =
                accounts.into_iter().map(|(a, (s, n))| (a, s, n)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(WORST_LISTED);
            (currency, ranked)
        })
        .collect()
}

/// The worst accounts as a failure body: one line per account, per currency.
fn worst_body(worst: &BTreeMap<Currency, Vec<(String, Decimal, u64)>>) -> String {
    let mut body = String::from("worst accounts (largest |Δ| of a failing diff, per currency):\n");
    for (currency, accounts) in worst {
        for (account, sum, n) in accounts {
            let _ = writeln!(
                body,
                "  {account}: {} {} in {n} failing diff(s)",
                currency.present(*sum),
                currency.code()
            );
        }
    }
    body
}

fn case(name: &str, classname: &str, time: Duration, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(name.to_owned(), status);
    case.set_classname(classname.to_owned()).set_time(time);
    case
}

fn failure(message: String, body: Option<String>) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(message);
    if let Some(body) = body {
        s.set_description(body);
    }
    s
}

/// A diff as JUnit: a `parity` case (its failure body lists the worst accounts), a
/// `complete` case (failing when rows were left out), and a case per failing class.
/// `time` is how long reading and comparing took.
pub fn diff_junit(
    inputs: &Inputs,
    comparison: &Comparison,
    causes: &CausesView,
    time: Duration,
) -> String {
    let s = &comparison.summary;
    let classname = "billshadow.diff";
    let mut suite = TestSuite::new(format!("{} vs {}", inputs.legacy.path, inputs.modern.path));
    suite.set_time(time);
    let worst = worst_accounts(comparison.diffs.iter());
    let parity = if s.diffs_failing == 0 {
        TestCaseStatus::success()
    } else {
        failure(
            format!(
                "{} failing diffs in {} of {} accounts",
                s.diffs_failing, s.accounts_mismatched, s.accounts_compared
            ),
            Some(worst_body(&worst)),
        )
    };
    suite.add_test_case(case("parity", classname, time, parity));
    let complete = if s.rows_quarantined == 0 {
        TestCaseStatus::success()
    } else {
        failure(
            format!(
                "{} rows quarantined: not compared ({})",
                s.rows_quarantined,
                quarantined_money(s)
            ),
            None,
        )
    };
    suite.add_test_case(case("complete", classname, Duration::ZERO, complete));
    let mut classes: BTreeMap<&str, Vec<&Diff>> = BTreeMap::new();
    for d in comparison.diffs.iter().filter(|d| d.is_failing()) {
        classes.entry(d.class.as_str()).or_default().push(d);
    }
    for (class, diffs) in classes {
        let worst = worst_accounts(diffs.iter().copied());
        let status = failure(
            format!("{} failing diffs", diffs.len()),
            Some(worst_body(&worst)),
        );
        suite.add_test_case(case(class, "billshadow.diff.class", Duration::ZERO, status));
    }
    let mut report = Report::new("billshadow diff");
    report.add_test_suite(causes_suite(&causes.signatures));
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

/// A diff as Markdown: verdict, counts, totals per currency, the worst accounts per currency
/// and the first failing diffs, at most `MARKDOWN_BYTES_MAX` bytes.
pub fn diff_markdown(inputs: &Inputs, comparison: &Comparison, causes: &CausesView) -> String {
    let s = &comparison.summary;
    let mut md = String::new();
    let verdict = s.verdict.as_str().to_uppercase();
    let _ = writeln!(
        md,
        "## billshadow diff: {verdict} ({} failing diffs)\n",
        s.diffs_failing
    );
    let _ = writeln!(
        md,
        "legacy `{}` ({}, {} lines) · modern `{}` ({}, {} lines)\n",
        md_escape(&inputs.legacy.path),
        md_escape(&inputs.legacy.format),
        inputs.legacy.lines,
        md_escape(&inputs.modern.path),
        md_escape(&inputs.modern.format),
        inputs.modern.lines
    );
    md.push_str("| accounts compared | at parity | mismatched | failing diffs | waived | rows quarantined |\n|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} |\n",
        s.accounts_compared,
        s.accounts_at_parity,
        s.accounts_mismatched,
        s.diffs_failing,
        s.waived,
        s.rows_quarantined
    );
    if s.rows_quarantined > 0 {
        let _ = writeln!(
            md,
            "**Incomplete:** {} rows left out of the comparison: {}.\n",
            s.rows_quarantined,
            quarantined_money(s)
        );
    }
    write_causes(&mut md, causes);
    md.push_str("### Totals per currency\n\n| currency | legacy | modern | \\|Δ\\| |\n|---|---:|---:|---:|\n");
    for (c, t) in &s.currencies {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.code(),
            c.present(t.legacy_total),
            c.present(t.modern_total),
            c.present(t.delta_abs)
        );
    }
    let worst = worst_accounts(comparison.diffs.iter());
    if !worst.is_empty() {
        md.push_str("\n### Worst accounts, per currency\n\n| account | currency | largest \\|Δ\\| | failing diffs |\n|---|---|---:|---:|\n");
        for (currency, accounts) in &worst {
            for (account, sum, n) in accounts {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {n} |",
                    md_escape(account),
                    currency.code(),
                    currency.present(*sum)
                );
            }
        }
    }
    write_failing_diffs(&mut md, comparison);
    if md.len() > MARKDOWN_BYTES_MAX {
        let mut end = MARKDOWN_BYTES_MAX - 200;
        while !md.is_char_boundary(end) {
            end -= 1;
        }
        md.truncate(end);
        md.push_str("\n\n… cut at 64 KiB: `--format csv` or `json` has every diff.\n");
    }
    md
}

/// The money of the rows a diff quarantined, per currency, and how many had no readable
/// amount: what the verdict could not look at.
fn quarantined_money(s: &billshadow_comparisons::Summary) -> String {
    let mut parts: Vec<String> = (s.quarantined_money.iter())
        .map(|(c, a)| format!("{} {}", c.present(*a), c.code()))
        .collect();
    if s.rows_quarantined_unpriced > 0 {
        parts.push(format!(
            "{} rows with no readable amount",
            s.rows_quarantined_unpriced
        ));
    }
    parts.join(" · ")
}

/// The causes, first after the counts: the ten first signatures, ranked.
fn write_causes(md: &mut String, causes: &CausesView) {
    if causes.signatures.is_empty() {
        return;
    }
    md.push_str("### Causes\n\n| # | hypothesis | signature | diffs | accounts | money (net / gross) |\n|---:|---|---|---:|---:|---|\n");
    for (i, sig) in causes.signatures.iter().take(10).enumerate() {
        let money: Vec<String> = (sig.money.iter())
            .map(|(c, m)| format!("{} {} / {}", md_escape(c), m.net, m.gross))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {} |",
            i + 1,
            md_escape(&sig.hypothesis),
            md_escape(&sig.id),
            sig.diffs,
            sig.accounts,
            money.join(", ")
        );
    }
    let all = causes.signatures.len() as u64 + causes.left_off;
    if all > 10 {
        let _ = writeln!(
            md,
            "\n… {all} signatures in all: `--format json` lists them."
        );
    }
    md.push('\n');
}

fn write_failing_diffs(md: &mut String, comparison: &Comparison) {
    let failing: Vec<&Diff> = comparison.diffs.iter().filter(|d| d.is_failing()).collect();
    if failing.is_empty() {
        return;
    }
    md.push_str("\n### Failing diffs\n\n| account | class | charge code | legacy | modern | Δ |\n|---|---|---|---:|---:|---:|\n");
    let amount = |e: &Option<billshadow_comparisons::Evidence>| {
        e.as_ref()
            .and_then(|e| e.fields.get("amount").map(str::to_owned))
            .unwrap_or_default()
    };
    for d in failing.iter().take(DIFFS_LISTED) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            md_escape(d.account_id.as_deref().unwrap_or("")),
            d.class.as_str(),
            md_escape(d.charge_code.as_deref().unwrap_or("")),
            md_escape(&amount(&d.legacy)),
            md_escape(&amount(&d.modern)),
            d.delta.map(|x| x.to_string()).unwrap_or_default()
        );
    }
    if failing.len() > DIFFS_LISTED {
        let _ = writeln!(
            md,
            "\n… and {} more: `--format csv` or `json` lists every diff.",
            failing.len() - DIFFS_LISTED
        );
    }
}

/// A stored run as JUnit: a `run` suite (its `complete` case fails for an incomplete run), then
/// a suite per cell: a case per gate criterion with a policy, else a `parity` case. Every
/// failure's body lists the cell's worst accounts; `time` is the run's duration.
pub fn run_junit(
    view: &RunView,
    duration: Duration,
) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new(format!(
        "billshadow {} run {}",
        view.kind_label, view.run_id
    ));
    let mut run_suite = TestSuite::new("run");
    run_suite.set_time(duration);
    let complete = match &view.incomplete {
        None => TestCaseStatus::success(),
        Some(incomplete) => failure(incomplete.clone(), None),
    };
    run_suite.add_test_case(case("complete", "billshadow.run", duration, complete));
    if view.kind == "calibration" {
        let mut s = TestCaseStatus::skipped();
        s.set_message(
            "calibration (A/A): the legacy stack replayed twice; no verdict on the modern stack",
        );
        run_suite.add_test_case(case(
            "calibration (A/A)",
            "billshadow.run",
            Duration::ZERO,
            s,
        ));
    }
    report.add_test_suite(run_suite);
    report.add_test_suite(causes_suite(&view.signatures));
    for cell in &view.cells {
        let classname = format!("billshadow.cell.{}", cell.cell);
        let body = cell_worst(view, &cell.partition, &cell.region);
        let mut suite = TestSuite::new(cell.cell.clone());
        match view.gates.iter().find(|g| g.cell == cell.cell) {
            Some(gate) => {
                for c in &gate.criteria {
                    let status = if c.passed {
                        TestCaseStatus::success()
                    } else {
                        let mut s = failure(
                            format!("measured {}, needs {}", c.measured, c.threshold),
                            body.clone(),
                        );
                        if c.inconclusive {
                            s = TestCaseStatus::non_success(NonSuccessKind::Error);
                            s.set_message(format!(
                                "measured {}, needs {}",
                                c.measured, c.threshold
                            ));
                        }
                        s
                    };
                    suite.add_test_case(case(&c.name, &classname, Duration::ZERO, status));
                }
            }
            None => {
                let status = if cell.mismatched == 0 && cell.errored == 0 && cell.pending == 0 {
                    TestCaseStatus::success()
                } else {
                    failure(
                        format!(
                            "{} of {} accounts mismatched, {} without a verdict, {} pending",
                            cell.mismatched, cell.cohort, cell.errored, cell.pending
                        ),
                        body,
                    )
                };
                suite.add_test_case(case("parity", &classname, Duration::ZERO, status));
            }
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

/// The run's causes, first after the run itself: one case per signature, failing when it
/// has failing diffs (its hypothesis the message, its figures the body).
fn causes_suite(signatures: &[crate::causes::SignatureJson]) -> TestSuite {
    let mut suite = TestSuite::new("causes");
    for sig in signatures {
        let status = if sig.failing == 0 {
            TestCaseStatus::success()
        } else {
            let money: Vec<String> = (sig.money.iter())
                .map(|(c, m)| format!("{c} net {} gross {}", m.net, m.gross))
                .collect();
            failure(
                sig.hypothesis.clone(),
                Some(format!(
                    "{} diffs ({} failing) in {} accounts; money: {}; cells: {}; examples: {}",
                    sig.diffs,
                    sig.failing,
                    sig.accounts,
                    money.join(", "),
                    sig.cells.join(", "),
                    sig.examples.join(", ")
                )),
            )
        };
        suite.add_test_case(case(&sig.id, "billshadow.causes", Duration::ZERO, status));
    }
    suite
}

/// The run's worst accounts in one cell, as a failure body (none when the cell has none).
fn cell_worst(view: &RunView, partition: &str, region: &str) -> Option<String> {
    let mut body = String::new();
    for w in &view.worst {
        for a in w
            .accounts
            .iter()
            .filter(|a| a.partition == partition && a.region == region)
        {
            let _ = writeln!(body, "  {}: |Δ| {} {}", a.account_id, a.delta, w.currency);
        }
    }
    (!body.is_empty())
        .then(|| format!("worst accounts (|Δ| of the bill total, per currency):\n{body}"))
}
