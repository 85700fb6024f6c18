//! Reports of a stored run: the HTML dashboard and the Markdown summary (templates a user can
//! read and override), CSV of diffs and JUnit.

use std::io::Write;

use billshadow_comparisons::{Diff, DiffClass, Scope};
use minijinja::Environment;
use serde::Serialize;

use crate::view::{CellView, RunView};

/// The dashboard template shipped with billshadow.
pub const DASHBOARD: &str = include_str!("../templates/dashboard.html");
/// The Markdown summary template.
pub const SUMMARY: &str = include_str!("../templates/summary.md");

/// Rows listed at most in the HTML tables: a million diffs stay a few hundred KiB.
const ROWS_MAX: usize = 200;
/// The Markdown summary's size limit (a CI step summary or a pull-request comment).
pub const MARKDOWN_BYTES_MAX: usize = 64 * 1024;

#[derive(Serialize)]
struct GridCell {
    cell: String,
    class: &'static str,
    ratio: String,
    at_parity: u64,
    compared: u64,
    errored: u64,
    pending: u64,
    cohort: u64,
    state: String,
    trend: String,
}

#[derive(Serialize)]
struct GridRow {
    partition: String,
    cells: Vec<Option<GridCell>>,
}

#[derive(Serialize)]
struct DiffRow {
    account: String,
    class: &'static str,
    what: String,
    legacy: String,
    modern: String,
    delta: String,
    waiver: String,
    owner: String,
    ticket: String,
    expires: String,
    detail: String,
}

#[derive(Serialize)]
struct ClassRow<'a> {
    #[serde(flatten)]
    class: &'a crate::view::ClassView,
    width: u64,
}

#[derive(Serialize)]
struct CurrencyRow {
    code: &'static str,
    legacy_total: String,
    modern_total: String,
    delta_abs: String,
}

/// What the dashboard template sees.
#[derive(Serialize)]
struct DashboardContext<'a> {
    run: &'a RunView,
    s: &'a billshadow_comparisons::Summary,
    parity_percent: String,
    currencies: Vec<CurrencyRow>,
    regions: Vec<String>,
    grid: Vec<GridRow>,
    classes: Vec<ClassRow<'a>>,
    gates: &'a [crate::view::GateView],
    worst: &'a [crate::view::WorstAccounts],
    failing: Vec<DiffRow>,
    /// Mismatched accounts (`s.accounts_mismatched`, the summary's count) not in `failing`.
    failing_more: u64,
    waived: Vec<DiffRow>,
    errors: Vec<DiffRow>,
    #[serde(flatten)]
    charts: Charts,
}

/// The dashboard's inline SVG charts (`crate::charts`), escaped there: the template writes
/// them with `safe`.
#[derive(Serialize)]
struct Charts {
    chart_parity: String,
    chart_classes: String,
    chart_money: String,
    chart_signatures: String,
}

impl Charts {
    fn of(view: &RunView) -> Charts {
        Charts {
            chart_parity: crate::charts::parity_strip(&view.history),
            chart_classes: if view.history.len() > 1 {
                crate::charts::classes_over_runs(&view.history)
            } else {
                String::new()
            },
            chart_signatures: crate::charts::signatures_over_runs(
                &view.history,
                &view
                    .signatures
                    .iter()
                    .map(|s| (s.id.clone(), s.hypothesis.clone()))
                    .collect::<Vec<_>>(),
            ),
            chart_money: crate::charts::money_by_signature(
                &view
                    .signatures
                    .iter()
                    .flat_map(|sig| {
                        sig.money
                            .iter()
                            .map(|(currency, m)| crate::charts::SignatureMoney {
                                id: sig.id.clone(),
                                hypothesis: sig.hypothesis.clone(),
                                currency: currency.clone(),
                                gross: m.gross,
                                net: m.net,
                            })
                    })
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// What the Markdown template sees.
#[derive(Serialize)]
struct SummaryContext<'a> {
    run: &'a RunView,
    s: &'a billshadow_comparisons::Summary,
    parity_percent: String,
    cells: &'a [CellView],
    gates: &'a [crate::view::GateView],
    top: Vec<DiffRow>,
    /// Mismatched accounts (`s.accounts_mismatched`, the summary's count) not in `top`.
    more: u64,
}

/// Mismatched accounts not among those `rows` list: every "and N more" counts from the
/// summary's `accounts_mismatched`, the store's count of accounts whose outcome is a mismatch
/// (one with a failing diff other than a stack error).
fn mismatched_not_listed(view: &RunView, rows: &[DiffRow]) -> u64 {
    let listed: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.class != DiffClass::StackError.as_str() && r.waiver.is_empty())
        .map(|r| r.account.as_str())
        .collect();
    view.summary
        .accounts_mismatched
        .saturating_sub(listed.len() as u64)
}

fn what(d: &Diff) -> String {
    match d.scope {
        Scope::Line => d.charge_code.clone().unwrap_or_default(),
        Scope::Bill => "bill total".to_owned(),
        Scope::Invoice => format!("invoice {}", d.key.get("invoice_id").unwrap_or("")),
        Scope::Customer => format!("customer {} total", d.customer_id.as_deref().unwrap_or("")),
        Scope::Account => "the account".to_owned(),
    }
}

fn diff_row(d: &Diff, view: &RunView) -> DiffRow {
    let amount = |e: &Option<billshadow_comparisons::Evidence>| {
        e.as_ref()
            .and_then(|e| e.fields.get("amount").map(str::to_owned))
            .unwrap_or_default()
    };
    let waiver = d
        .waiver
        .as_ref()
        .and_then(|w| view.summary.waivers.iter().find(|u| &u.id == w));
    DiffRow {
        account: d
            .account_id
            .clone()
            .or_else(|| d.customer_id.clone())
            .unwrap_or_default(),
        class: d.class.as_str(),
        what: what(d),
        legacy: amount(&d.legacy),
        modern: amount(&d.modern),
        delta: d
            .delta
            .map(|x| format!("{x} {}", d.currency.map(|c| c.code()).unwrap_or("")))
            .unwrap_or_default(),
        waiver: d.waiver.clone().unwrap_or_default(),
        owner: waiver.map(|w| w.owner.clone()).unwrap_or_default(),
        ticket: waiver.map(|w| w.ticket.clone()).unwrap_or_default(),
        expires: waiver.map(|w| w.expires.clone()).unwrap_or_default(),
        detail: d.detail.clone().unwrap_or_default(),
    }
}

fn trend_points(trend: &[Option<String>]) -> String {
    if trend.len() < 2 {
        return String::new();
    }
    let step = 96 / (trend.len() - 1).max(1);
    trend
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let ratio: rust_decimal::Decimal = r.as_deref()?.parse().ok()?;
            let y = (rust_decimal::Decimal::ONE - ratio) * rust_decimal::Decimal::from(16);
            Some(format!(
                "{},{}",
                2 + i * step,
                (y.round_dp(1) + rust_decimal::Decimal::from(2))
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn grid(cells: &[CellView]) -> (Vec<String>, Vec<GridRow>) {
    let mut regions: Vec<String> = cells.iter().map(|c| c.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let mut partitions: Vec<String> = cells.iter().map(|c| c.partition.clone()).collect();
    partitions.sort();
    partitions.dedup();
    let rows = partitions
        .into_iter()
        .map(|p| {
            let cells = regions
                .iter()
                .map(|r| {
                    cells
                        .iter()
                        .find(|c| c.partition == p && &c.region == r)
                        .map(|c| GridCell {
                            cell: c.cell.clone(),
                            class: match c.parity_percent {
                                Some(100) => "p100",
                                Some(99) => "p99",
                                Some(_) => "p90",
                                None => "pnone",
                            },
                            ratio: c.parity_percent.map_or("—".to_owned(), |p| format!("{p}%")),
                            at_parity: c.at_parity,
                            compared: c.at_parity + c.mismatched,
                            errored: c.errored,
                            pending: c.pending,
                            cohort: c.cohort,
                            state: c.state.clone().unwrap_or_default(),
                            trend: trend_points(&c.trend),
                        })
                })
                .collect();
            GridRow {
                partition: p,
                cells,
            }
        })
        .collect();
    (regions, rows)
}

fn environment(
    template_name: &'static str,
    source: String,
) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // `.html` templates escape every value; the Markdown one escapes by hand.
    env.add_template_owned(template_name, source)?;
    Ok(env)
}

fn percent(view: &RunView) -> String {
    let s = &view.summary;
    if s.accounts_compared == 0 {
        return "—".to_owned();
    }
    let p = rust_decimal::Decimal::from(s.accounts_at_parity * 100)
        / rust_decimal::Decimal::from(s.accounts_compared);
    format!("{}%", p.round_dp(2))
}

/// Renders the HTML dashboard with `template` (the shipped one, or a user's).
pub fn html(view: &RunView, template: Option<String>) -> Result<String, minijinja::Error> {
    let env = environment(
        "dashboard.html",
        template.unwrap_or_else(|| DASHBOARD.to_owned()),
    )?;
    let (regions, grid) = grid(&view.cells);
    let failing_all: Vec<&Diff> = view
        .diffs
        .iter()
        .filter(|d| d.is_failing() && d.class != DiffClass::StackError)
        .collect();
    let failing: Vec<DiffRow> = failing_all
        .iter()
        .take(ROWS_MAX)
        .map(|d| diff_row(d, view))
        .collect();
    let failing_more = mismatched_not_listed(view, &failing);
    let waived: Vec<DiffRow> = view
        .diffs
        .iter()
        .filter(|d| d.waiver.is_some())
        .take(ROWS_MAX)
        .map(|d| diff_row(d, view))
        .collect();
    let errors: Vec<DiffRow> = view
        .diffs
        .iter()
        .filter(|d| d.class == DiffClass::StackError)
        .take(ROWS_MAX)
        .map(|d| diff_row(d, view))
        .collect();
    let widest = view
        .classes
        .iter()
        .map(|c| c.count)
        .max()
        .unwrap_or(1)
        .max(1);
    let classes: Vec<ClassRow<'_>> = view
        .classes
        .iter()
        .map(|c| ClassRow {
            class: c,
            width: (c.count * 200) / widest,
        })
        .collect();
    let currencies: Vec<CurrencyRow> = view
        .summary
        .currencies
        .iter()
        .map(|(c, t)| CurrencyRow {
            code: c.code(),
            legacy_total: t.legacy_total.to_string(),
            modern_total: t.modern_total.to_string(),
            delta_abs: t.delta_abs.to_string(),
        })
        .collect();
    let ctx = DashboardContext {
        run: view,
        s: &view.summary,
        parity_percent: percent(view),
        currencies,
        regions,
        grid,
        classes,
        gates: &view.gates,
        worst: &view.worst,
        failing,
        failing_more,
        waived,
        errors,
        charts: Charts::of(view),
    };
    env.get_template("dashboard.html")?
        .render(minijinja::value::Serde(&ctx))
}

/// Escapes text for a Markdown table cell: table and inline syntax is backslash-escaped, line
/// ends become spaces, control characters are dropped, `&` is written `&amp;` (so no entity in
/// data turns into `@` or `<`), and a zero-width space (`&#8203;`) follows every `@` and breaks
/// every `://` and `www.`, so no `@team` is a mention and no URL or e-mail address becomes a
/// link (GitHub's autolinks and mentions; angle-bracket autolinks are escaped with `\<`).
pub fn md_escape(value: &str) -> String {
    const ZWSP: &str = "&#8203;";
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            '@' => {
                out.push('@');
                out.push_str(ZWSP);
            }
            ':' if after.starts_with("//") => {
                out.push(':');
                out.push_str(ZWSP);
            }
            'w' | 'W' if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("www.") => {
                out.push_str(&rest[..3]);
                out.push_str(ZWSP);
                out.push('.');
                rest = &rest[4..];
                continue;
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
        rest = after;
    }
    out
}

/// The Markdown summary, within 64 KiB (lists shrink until it fits).
pub fn markdown(view: &RunView, template: Option<String>) -> Result<String, minijinja::Error> {
    let mut env = environment("summary.md", template.unwrap_or_else(|| SUMMARY.to_owned()))?;
    env.add_filter("md", |v: String| md_escape(&v));
    let mut rows = 20usize;
    loop {
        let top: Vec<DiffRow> = view
            .diffs
            .iter()
            .filter(|d| d.is_failing())
            .take(rows)
            .map(|d| diff_row(d, view))
            .collect();
        let more = mismatched_not_listed(view, &top);
        let ctx = SummaryContext {
            run: view,
            s: &view.summary,
            parity_percent: percent(view),
            cells: &view.cells,
            gates: &view.gates,
            top,
            more,
        };
        let text = env
            .get_template("summary.md")?
            .render(minijinja::value::Serde(&ctx))?;
        if text.len() <= MARKDOWN_BYTES_MAX || rows == 0 {
            return Ok(text);
        }
        rows /= 2;
    }
}

/// Every diff as a CSV row.
pub fn csv_header(out: &mut csv::Writer<&mut dyn Write>) -> csv::Result<()> {
    out.write_record([
        "account_id",
        "customer_id",
        "class",
        "scope",
        "charge_code",
        "partition",
        "region",
        "currency",
        "delta",
        "legacy_amount",
        "modern_amount",
        "fields",
        "waiver",
        "legacy_line",
        "modern_line",
        "detail",
    ])
}

/// Neutralises a CSV cell a spreadsheet would run as a formula (OWASP "CSV injection"): a
/// value starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading single
/// quote, so it is shown as text. A plain decimal (`-12.50`, `-0.00`: an optional minus sign,
/// digits, an optional fraction) is a number, not a formula, and is written as it is.
pub fn csv_cell(value: String) -> String {
    let risky = matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && !plain_decimal(&value) {
        let mut quoted = String::with_capacity(value.len() + 1);
        quoted.push('\'');
        quoted.push_str(&value);
        quoted
    } else {
        value
    }
}

/// `-?digits(.digits)?`: how the store writes an amount or a delta.
fn plain_decimal(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

pub fn csv_row(out: &mut csv::Writer<&mut dyn Write>, d: &Diff) -> csv::Result<()> {
    let amount = |e: &Option<billshadow_comparisons::Evidence>| {
        e.as_ref()
            .and_then(|e| e.fields.get("amount").map(str::to_owned))
            .unwrap_or_default()
    };
    out.write_record(
        [
            d.account_id.clone().unwrap_or_default(),
            d.customer_id.clone().unwrap_or_default(),
            d.class.as_str().to_owned(),
            format!("{:?}", d.scope).to_lowercase(),
            d.charge_code.clone().unwrap_or_default(),
            d.partition.clone().unwrap_or_default(),
            d.region.clone().unwrap_or_default(),
            d.currency.map(|c| c.code().to_owned()).unwrap_or_default(),
            d.delta.map(|x| x.to_string()).unwrap_or_default(),
            amount(&d.legacy),
            amount(&d.modern),
            d.fields.join(" "),
            d.waiver.clone().unwrap_or_default(),
            d.legacy_line.map(|l| l.to_string()).unwrap_or_default(),
            d.modern_line.map(|l| l.to_string()).unwrap_or_default(),
            d.detail.clone().unwrap_or_default(),
        ]
        .map(csv_cell),
    )
}

#[cfg(test)]
mod tests {
    use super::{csv_cell, md_escape};

    #[test]
    fn csv_cells_a_spreadsheet_would_run_are_text() {
        for (value, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+2", "'+1+2"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-", "'-"),
            ("-12.50", "-12.50"),
            ("-0.00", "-0.00"),
            ("12.50", "12.50"),
            ("acct-1", "acct-1"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(value.to_owned()), written, "{value:?}");
        }
    }

    #[test]
    fn markdown_breaks_mentions_and_links() {
        assert_eq!(md_escape("@team"), "@&#8203;team");
        assert_eq!(md_escape("https://x.io"), "https:&#8203;//x.io");
        assert_eq!(md_escape("WWW.x.io"), "WWW&#8203;.x.io");
        assert_eq!(md_escape("<http://x>"), "\\<http:&#8203;//x\\>");
        assert_eq!(md_escape("a|b"), "a\\|b");
        assert_eq!(md_escape("&#64;team"), "&amp;\\#64;team");
        assert_eq!(md_escape("a\u{1b}[2Jb\nc"), "a\\[2Jb c");
    }
}
