//! The terminal report: a summary table, then the failing and waived diffs grouped by
//! account (the first few accounts, with a count of the rest).

use std::io::{self, Write};

use crate::causes::CausesView;
use billshadow_comparisons::{Comparison, Diff, DiffClass, Scope, Summary, Verdict};

use crate::clean;
use crate::{Inputs, thousands};

/// How the text report looks.
#[derive(Debug, Clone, Copy)]
pub struct TextOptions {
    /// ANSI colour (only on a terminal, and never with `NO_COLOR` set).
    pub color: bool,
    /// Accounts (or customers) whose diffs are listed; the rest are counted.
    pub accounts_shown_max: usize,
    /// Diffs listed per account.
    pub diffs_per_account_max: usize,
    /// How many accounts have failing or waived diffs, when the comparison holds only the
    /// first ones' diffs (a stored run read back in part).
    pub accounts_with_diffs: Option<usize>,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            color: false,
            accounts_shown_max: 20,
            diffs_per_account_max: 10,
            accounts_with_diffs: None,
        }
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// Writes the text report.
/// The first lines of a text report: what was compared, and warnings about completeness.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub title: String,
    pub warnings: Vec<String>,
    /// For an incomplete stored run, `Completeness::describe()`: shown on the verdict line,
    /// which then never says PARITY.
    pub incomplete: Option<String>,
}

impl Header {
    /// The header of `billshadow diff`.
    pub fn for_inputs(inputs: &Inputs) -> Header {
        let title = format!(
            "billshadow diff {} ({}, {} lines) vs {} ({}, {} lines)",
            inputs.legacy.path,
            inputs.legacy.format,
            thousands(inputs.legacy.lines),
            inputs.modern.path,
            inputs.modern.format,
            thousands(inputs.modern.lines),
        );
        let mut warnings = Vec::new();
        if inputs.legacy.bad_rows + inputs.modern.bad_rows > 0 {
            warnings.push(format!(
                "incomplete: {} legacy and {} modern rows were quarantined{} and are not compared",
                thousands(inputs.legacy.bad_rows),
                thousands(inputs.modern.bad_rows),
                inputs
                    .quarantine
                    .as_deref()
                    .map(|q| format!(" (see {q})"))
                    .unwrap_or_default(),
            ));
        }
        Header {
            title,
            warnings,
            incomplete: None,
        }
    }
}

/// Writes the text report: the verdict, the counts, diffs by class, totals per currency,
/// expired waivers, then the diffs by account.
pub fn write(
    out: &mut dyn Write,
    header: &Header,
    comparison: &Comparison,
    options: TextOptions,
) -> io::Result<()> {
    write_with_causes(out, header, comparison, None, None, options)
}

/// [`write`], with the causes (signatures) right after the verdict, before the counts;
/// `explain_run` names the stored run `explain` reads an example from.
pub fn write_with_causes(
    out: &mut dyn Write,
    header: &Header,
    comparison: &Comparison,
    causes: Option<&CausesView>,
    explain_run: Option<&str>,
    options: TextOptions,
) -> io::Result<()> {
    let p = Paint { on: options.color };
    let s = &comparison.summary;
    write_verdict(out, header, s, &p)?;
    if let Some(causes) = causes {
        writeln!(out)?;
        crate::causes::write_text(out, causes, crate::causes::TEXT_SIGNATURES_MAX, explain_run)?;
    }
    write_counts(out, s)?;
    write_classes(out, s, &p)?;
    write_currencies(out, s, &p)?;
    write_expired_waivers(out, s, &p)?;
    write_diffs(out, comparison, options, &p)
}

/// The title, the verdict line and what qualifies it: warnings, rows left out, accounts
/// with no verdict.
fn write_verdict(out: &mut dyn Write, header: &Header, s: &Summary, p: &Paint) -> io::Result<()> {
    writeln!(out, "{}", p.bold(&clean(&header.title)))?;
    writeln!(out)?;
    // PARITY only when the summary says so and nothing fails; an incomplete comparison says
    // so on the verdict line, with done / total.
    let incomplete = header.incomplete.as_deref().map(|i| p.yellow(i));
    let verdict = if s.diffs_failing > 0 || s.verdict == Verdict::Mismatch {
        let mismatch = p.red(&format!(
            "MISMATCH ({} failing diffs)",
            thousands(s.diffs_failing)
        ));
        match incomplete {
            Some(i) => format!("{mismatch} · {i}"),
            None => mismatch,
        }
    } else if s.verdict == Verdict::Parity && incomplete.is_none() {
        p.green("PARITY")
    } else {
        incomplete.unwrap_or_else(|| p.yellow(&s.verdict.as_str().to_uppercase()))
    };
    writeln!(out, "  verdict    {verdict}")?;
    for warning in &header.warnings {
        writeln!(out, "             {}", p.yellow(&clean(warning)))?;
    }
    if s.rows_quarantined > 0 {
        let mut money: Vec<String> = s
            .quarantined_money
            .iter()
            .map(|(c, a)| format!("{} {}", c.present(*a), c.code()))
            .collect();
        if s.rows_quarantined_unpriced > 0 {
            money.push(format!(
                "{} rows with no readable amount",
                thousands(s.rows_quarantined_unpriced)
            ));
        }
        let line = format!(
            "{} rows left out of the comparison: {}",
            thousands(s.rows_quarantined),
            money.join(" · ")
        );
        writeln!(out, "             {}", p.yellow(&line))?;
    }
    if s.accounts_errored > 0 {
        let line = format!(
            "{} accounts have no verdict: a stack failed for them (stack_error)",
            thousands(s.accounts_errored)
        );
        writeln!(out, "             {}", p.yellow(&line))?;
    }
    Ok(())
}

fn write_counts(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    writeln!(
        out,
        "  accounts   {} compared · {} at parity · {} mismatched{}",
        thousands(s.accounts_compared),
        thousands(s.accounts_at_parity),
        thousands(s.accounts_mismatched),
        if s.accounts_waived > 0 {
            format!(
                " · {} at parity thanks to waivers",
                thousands(s.accounts_waived)
            )
        } else {
            String::new()
        },
    )?;
    if s.customers_compared > 0 {
        writeln!(
            out,
            "  customers  {} compared · {} with drift no single bill shows",
            thousands(s.customers_compared),
            thousands(s.customers_mismatched)
        )?;
    }
    writeln!(
        out,
        "  lines      {} legacy · {} modern · {} paired · {} paired with a mismatch",
        thousands(s.lines_legacy),
        thousands(s.lines_modern),
        thousands(s.lines_matched),
        thousands(s.lines_mismatched),
    )?;
    Ok(())
}

fn write_classes(out: &mut dyn Write, s: &Summary, p: &Paint) -> io::Result<()> {
    if !s.by_class.is_empty() {
        writeln!(out)?;
        writeln!(out, "  {:<28} {:>10}", p.dim("class"), p.dim("diffs"))?;
        for (class, count) in &s.by_class {
            let name = if class.is_informational() {
                format!("{} (info)", class.as_str())
            } else {
                class.as_str().to_owned()
            };
            writeln!(out, "  {name:<28} {:>10}", thousands(*count))?;
        }
        if s.waived > 0 {
            writeln!(
                out,
                "  {:<28} {:>10}",
                "of which waived",
                thousands(s.waived)
            )?;
        }
    }
    Ok(())
}

fn write_currencies(out: &mut dyn Write, s: &Summary, p: &Paint) -> io::Result<()> {
    if !s.currencies.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "  {:<8} {:>22} {:>22} {:>16}",
            p.dim("currency"),
            p.dim("legacy total"),
            p.dim("modern total"),
            p.dim("|delta|")
        )?;
        for (currency, t) in &s.currencies {
            writeln!(
                out,
                "  {:<8} {:>22} {:>22} {:>16}",
                currency.code(),
                t.legacy_total.to_string(),
                t.modern_total.to_string(),
                t.delta_abs.to_string()
            )?;
        }
    }
    Ok(())
}

fn write_expired_waivers(out: &mut dyn Write, s: &Summary, p: &Paint) -> io::Result<()> {
    for w in &s.waivers {
        if w.expired {
            let line = format!(
                "waiver {} expired on {} (owner {}, ticket {}): it waives nothing{}",
                w.id,
                w.expires,
                w.owner,
                w.ticket,
                if w.matched_while_expired > 0 {
                    format!(
                        "; {} diffs it matches fail",
                        thousands(w.matched_while_expired)
                    )
                } else {
                    String::new()
                }
            );
            writeln!(out, "  {}", p.yellow(&clean(&line)))?;
        }
    }
    Ok(())
}

fn write_diffs(
    out: &mut dyn Write,
    comparison: &Comparison,
    options: TextOptions,
    p: &Paint,
) -> io::Result<()> {
    // Group consecutive diffs of one account (or customer); the engine emits them so.
    let shown: Vec<&Diff> = comparison
        .diffs
        .iter()
        .filter(|d| !d.class.is_informational())
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut groups: Vec<(String, Vec<&Diff>)> = Vec::new();
    for diff in shown {
        let owner = match diff.scope {
            Scope::Customer => format!("customer {}", diff.customer_id.as_deref().unwrap_or("?")),
            _ => diff.account_id.clone().unwrap_or_default(),
        };
        match groups.last_mut() {
            Some((o, list)) if *o == owner => list.push(diff),
            _ => groups.push((owner, vec![diff])),
        }
    }
    for (owner, diffs) in groups.iter().take(options.accounts_shown_max) {
        let failing = diffs.iter().filter(|d| d.is_failing()).count();
        let note = if failing == 0 {
            p.dim("(waived)")
        } else {
            p.red(&format!("({failing} failing)"))
        };
        writeln!(out, "{} {note}", p.bold(&clean(owner)))?;
        for diff in diffs.iter().take(options.diffs_per_account_max) {
            writeln!(out, "  {}", diff_line(diff, p))?;
        }
        if diffs.len() > options.diffs_per_account_max {
            writeln!(
                out,
                "  {}",
                p.dim(&format!(
                    "… and {} more diffs",
                    diffs.len() - options.diffs_per_account_max
                ))
            )?;
        }
    }
    let accounts = options
        .accounts_with_diffs
        .unwrap_or(groups.len())
        .max(groups.len());
    if accounts > options.accounts_shown_max {
        let rest = accounts - options.accounts_shown_max;
        writeln!(
            out,
            "{}",
            p.dim(&format!(
                "… and {} more accounts with diffs (use --format json for all)",
                thousands(rest as u64)
            ))
        )?;
    }
    Ok(())
}

fn diff_line(diff: &Diff, p: &Paint) -> String {
    let class = match diff.class {
        DiffClass::TotalMismatch | DiffClass::AmountMismatch | DiffClass::CurrencyMismatch => {
            p.red(diff.class.as_str())
        }
        _ => p.yellow(diff.class.as_str()),
    };
    let what = match diff.scope {
        Scope::Line => {
            let mut parts = vec![diff.charge_code.clone().unwrap_or_default()];
            parts.extend(
                diff.key
                    .iter()
                    .filter(|(k, _)| !k.starts_with("period"))
                    .map(|(_, v)| v.to_owned()),
            );
            parts.join(" ")
        }
        Scope::Invoice => format!("invoice {} total", diff.key.get("invoice_id").unwrap_or("")),
        Scope::Bill => format!(
            "bill total {}..{}",
            diff.key.get("period_start").unwrap_or(""),
            diff.key.get("period_end").unwrap_or("")
        ),
        Scope::Customer => "customer total".to_owned(),
        Scope::Account => diff.detail.clone().unwrap_or_default(),
    };
    let amount = |side: &Option<billshadow_comparisons::Evidence>| {
        side.as_ref()
            .and_then(|e| e.fields.get("amount").map(str::to_owned))
            .unwrap_or_else(|| "—".to_owned())
    };
    let currency = diff.currency.map(|c| c.code()).unwrap_or("");
    let delta = diff
        .delta
        .map(|d| {
            if d.is_sign_negative() {
                d.to_string()
            } else {
                format!("+{d}")
            }
        })
        .unwrap_or_default();
    let waiver = diff
        .waiver
        .as_deref()
        .map(|w| format!("  waived by {w}"))
        .unwrap_or_default();
    format!(
        "{class:<30} {}  legacy {}  modern {}  Δ {delta} {currency}  [{}]{}",
        clean(&what),
        clean(&amount(&diff.legacy)),
        clean(&amount(&diff.modern)),
        clean(&diff.fields.join(", ")),
        p.dim(&clean(&waiver))
    )
}
