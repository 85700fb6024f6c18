//! Signatures (the causes of a comparison's diffs) as text and JSON: the section at the top of
//! `diff`'s output, the `signatures` list of `billshadow.diff/v2`, and `billshadow causes`.
//!
//! `SignatureJson` is the schema's own shape of a signature (`reports/SCHEMA.md`), converted
//! from the engine's `Signature`, so the engine can change without moving the schema.

use std::collections::BTreeMap;
use std::io::{self, Write};

use billshadow_comparisons::signature::{Causes, EXAMPLES_MAX, Money, SIGNATURES_MAX};
use billshadow_comparisons::{Currency, Signature};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::{clean, thousands};

/// At most this many signatures in a text section (the JSON has every kept one).
pub const TEXT_SIGNATURES_MAX: usize = 10;

/// Net and gross money of a signature in one currency, as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoneyJson {
    pub net: Decimal,
    pub gross: Decimal,
}

/// A signature as `billshadow.diff/v2` writes it, and as the run store keeps it: owned, so
/// that a stored run's signatures read back render exactly as freshly found ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureJson {
    pub id: String,
    pub hypothesis: String,
    pub class: String,
    pub fields: Vec<String>,
    /// The shape's kind (`proration`, `ratio`, …).
    pub shape: String,
    /// The shape with its values, as in the id's recipe (`proration:31:30`, `ratio:21/20`).
    pub rule: String,
    pub charge_code: Option<String>,
    pub line_type: Option<String>,
    pub currency: Option<String>,
    pub cell: Option<String>,
    pub diffs: u64,
    pub follow_on: u64,
    pub failing: u64,
    pub accounts: u64,
    pub money: BTreeMap<String, MoneyJson>,
    pub cells: Vec<String>,
    pub cells_total: u64,
    pub examples: Vec<String>,
}

impl From<&Signature> for SignatureJson {
    fn from(s: &Signature) -> SignatureJson {
        SignatureJson {
            id: s.id.clone(),
            hypothesis: s.hypothesis.clone(),
            class: s.class.as_str().to_owned(),
            fields: s.fields.clone(),
            shape: s.shape.kind().to_owned(),
            rule: s.shape.key(),
            charge_code: s.charge_code.clone(),
            line_type: s.line_type.clone(),
            currency: s.currency.clone(),
            cell: s.cell.clone(),
            diffs: s.diffs,
            follow_on: s.follow_on,
            failing: s.failing,
            accounts: s.accounts,
            money: s
                .money
                .iter()
                .map(|(c, m)| (c.clone(), money_json(c, m)))
                .collect(),
            cells: s.cells.clone(),
            cells_total: s.cells_total,
            examples: s.examples.clone(),
        }
    }
}

fn money_json(currency: &str, m: &Money) -> MoneyJson {
    let present = |v: Decimal| currency.parse::<Currency>().map_or(v, |c| c.present(v));
    MoneyJson {
        net: present(m.net),
        gross: present(m.gross),
    }
}

/// A comparison's or a run's signatures as reports show them: ranked, at most
/// `SIGNATURES_MAX`, and how many were left off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CausesView {
    pub signatures: Vec<SignatureJson>,
    pub left_off: u64,
}

impl From<&Causes> for CausesView {
    fn from(causes: &Causes) -> CausesView {
        CausesView {
            signatures: signatures_json(causes),
            left_off: causes.left_off,
        }
    }
}

/// Every kept signature as the schema writes it.
pub fn signatures_json(causes: &Causes) -> Vec<SignatureJson> {
    causes.signatures.iter().map(SignatureJson::from).collect()
}

/// `billshadow causes --format json`: the run, its signatures and how many were left off.
#[derive(Serialize)]
struct CausesDocument<'a> {
    schema: &'static str,
    run_id: Option<&'a str>,
    signatures: &'a [SignatureJson],
    signatures_left_off: u64,
}

/// The schema id of `billshadow causes --format json`.
pub const CAUSES_SCHEMA: &str = "billshadow.causes/v1";

pub fn write_json(
    out: &mut dyn Write,
    run_id: Option<&str>,
    causes: &CausesView,
) -> io::Result<()> {
    let doc = CausesDocument {
        schema: CAUSES_SCHEMA,
        run_id,
        signatures: &causes.signatures,
        signatures_left_off: causes.left_off,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

/// The causes as text: one block per signature, ranked, at most `shown_max`; how many more
/// there are; `explain` named with `explain_run` when the diffs come from a stored run.
pub fn write_text(
    out: &mut dyn Write,
    causes: &CausesView,
    shown_max: usize,
    explain_run: Option<&str>,
) -> io::Result<()> {
    let total = causes.signatures.len() as u64 + causes.left_off;
    if total == 0 {
        return writeln!(out, "Causes: none (no diffs)");
    }
    writeln!(out, "Causes ({} signatures, ranked):", thousands(total))?;
    for (rank, s) in causes.signatures.iter().take(shown_max).enumerate() {
        write_signature(out, rank + 1, s, explain_run)?;
    }
    let more = total.saturating_sub(shown_max.min(causes.signatures.len()) as u64);
    if more > 0 {
        writeln!(
            out,
            "  … {} more signatures (`billshadow causes --format json` lists up to {SIGNATURES_MAX})",
            thousands(more)
        )?;
    }
    writeln!(out)
}

fn write_signature(
    out: &mut dyn Write,
    rank: usize,
    s: &SignatureJson,
    explain_run: Option<&str>,
) -> io::Result<()> {
    let informational = if s.failing == 0 {
        " (informational or waived)"
    } else {
        ""
    };
    writeln!(out, "  {rank}. {}{informational}", clean(&s.hypothesis))?;
    let follow = if s.follow_on > 0 {
        format!(
            " ({} follow-on: tax, totals, derived credits)",
            thousands(s.follow_on)
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "     {} · {} · {} diffs{follow} in {} accounts",
        s.id,
        s.class,
        thousands(s.diffs),
        thousands(s.accounts)
    )?;
    let money: Vec<String> = s
        .money
        .iter()
        .map(|(c, m)| format!("{c} net {} gross {}", m.net, m.gross))
        .collect();
    if !money.is_empty() {
        writeln!(out, "     money: {}", money.join(", "))?;
    }
    if !s.cells.is_empty() {
        let more = s.cells_total.saturating_sub(s.cells.len() as u64);
        let more = if more > 0 {
            format!(" … {more} more")
        } else {
            String::new()
        };
        writeln!(out, "     cells: {}{more}", clean(&s.cells.join(", ")))?;
    }
    if !s.examples.is_empty() {
        let examples = clean(&s.examples.join(", ")).into_owned();
        let upto = if s.accounts as usize > EXAMPLES_MAX {
            " (first by id)"
        } else {
            ""
        };
        writeln!(out, "     examples{upto}: {examples}")?;
        if let (Some(run), Some(first)) = (explain_run, s.examples.first()) {
            writeln!(
                out,
                "     explain: billshadow explain {} {}",
                clean(run),
                clean(first)
            )?;
        }
    }
    Ok(())
}
