//! `billshadow compare RUN_A RUN_B`: what changed between two stored runs — accounts newly
//! mismatched, newly at parity, still broken; signatures (by their stable id) new, grown,
//! shrunk, gone — as text, JSON (`billshadow.compare/v1`, `reports/SCHEMA.md`) and Markdown.
//! It only renders what it is given: the binary reads both runs from the store.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::causes::{CausesView, MoneyJson, SignatureJson};
use crate::{clean, thousands};

/// The schema id of `billshadow compare --format json`.
pub const COMPARE_SCHEMA: &str = "billshadow.compare/v1";

/// Example accounts listed per kind of move.
pub const EXAMPLES_MAX: usize = 10;

/// Accounts of both runs, by how their outcome moved from run A to run B.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountMoves {
    /// Mismatched in B, at parity in A.
    pub newly_mismatched: u64,
    /// At parity in B, mismatched in A.
    pub newly_at_parity: u64,
    /// Mismatched in both.
    pub still_mismatched: u64,
    /// At parity in both.
    pub still_at_parity: u64,
    /// A stack error in either run: no verdict to compare.
    pub errored: u64,
    /// In one run only.
    pub only_in_a: u64,
    pub only_in_b: u64,
    /// The first accounts (by id) of each move, at most `EXAMPLES_MAX`.
    pub examples: BTreeMap<&'static str, Vec<String>>,
}

/// How one signature (one cause, by its stable id) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// In B only.
    New,
    /// More diffs in B.
    Grown,
    /// Fewer diffs in B.
    Shrunk,
    /// In A only.
    Gone,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Grown => "grown",
            Change::Shrunk => "shrunk",
            Change::Gone => "gone",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One signature's figures in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub diffs: u64,
    pub failing: u64,
    pub accounts: u64,
    pub money: BTreeMap<String, MoneyJson>,
}

impl From<&SignatureJson> for Figures {
    fn from(s: &SignatureJson) -> Figures {
        Figures {
            diffs: s.diffs,
            failing: s.failing,
            accounts: s.accounts,
            money: s.money.clone(),
        }
    }
}

/// One signature compared across the two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureChange {
    pub id: String,
    pub change: Change,
    pub hypothesis: String,
    pub class: String,
    pub rule: String,
    /// Its figures in run A and in run B (null where it is absent).
    pub a: Option<Figures>,
    pub b: Option<Figures>,
}

/// What changed from run A to run B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunChange {
    pub schema: &'static str,
    pub run_a: String,
    pub run_b: String,
    pub accounts: AccountMoves,
    /// Ranked: new, grown, shrunk, gone, unchanged; within each as run B (then A) ranks them.
    pub signatures: Vec<SignatureChange>,
    /// Signatures left off either run's list (past its cap): their change is unknown.
    pub signatures_left_off: u64,
}

impl RunChange {
    /// Matches two runs' signatures by id.
    pub fn new(
        run_a: &str,
        run_b: &str,
        accounts: AccountMoves,
        a: &CausesView,
        b: &CausesView,
    ) -> RunChange {
        let in_a: BTreeMap<&str, (usize, &SignatureJson)> = (a.signatures.iter().enumerate())
            .map(|(i, s)| (s.id.as_str(), (i, s)))
            .collect();
        let in_b: BTreeMap<&str, (usize, &SignatureJson)> = (b.signatures.iter().enumerate())
            .map(|(i, s)| (s.id.as_str(), (i, s)))
            .collect();
        let mut ranked: Vec<(Change, usize, SignatureChange)> = Vec::new();
        for (id, (rank, s)) in &in_b {
            let before = in_a.get(id).map(|(_, s)| *s);
            let change = match before {
                None => Change::New,
                Some(old) if s.diffs > old.diffs => Change::Grown,
                Some(old) if s.diffs < old.diffs => Change::Shrunk,
                Some(_) => Change::Unchanged,
            };
            ranked.push((change, *rank, changed(s, change, before, Some(s))));
        }
        for (id, (rank, s)) in &in_a {
            if !in_b.contains_key(id) {
                ranked.push((Change::Gone, *rank, changed(s, Change::Gone, Some(s), None)));
            }
        }
        ranked.sort_by(|x, y| (x.0, x.1, &x.2.id).cmp(&(y.0, y.1, &y.2.id)));
        RunChange {
            schema: COMPARE_SCHEMA,
            run_a: run_a.to_owned(),
            run_b: run_b.to_owned(),
            accounts,
            signatures: ranked.into_iter().map(|(_, _, c)| c).collect(),
            signatures_left_off: a.left_off + b.left_off,
        }
    }

    /// Whether run B is worse somewhere: accounts newly mismatched, or a new or grown
    /// signature with failing diffs.
    pub fn worse(&self) -> bool {
        self.accounts.newly_mismatched > 0
            || self.signatures.iter().any(|s| {
                matches!(s.change, Change::New | Change::Grown)
                    && s.b.as_ref().is_some_and(|f| f.failing > 0)
            })
    }
}

fn changed(
    s: &SignatureJson,
    change: Change,
    a: Option<&SignatureJson>,
    b: Option<&SignatureJson>,
) -> SignatureChange {
    SignatureChange {
        id: s.id.clone(),
        change,
        hypothesis: s.hypothesis.clone(),
        class: s.class.clone(),
        rule: s.rule.clone(),
        a: a.map(Figures::from),
        b: b.map(Figures::from),
    }
}

pub fn write_json(out: &mut dyn Write, change: &RunChange) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, change)?;
    out.write_all(b"\n")
}

fn money_text(f: Option<&Figures>) -> String {
    let Some(f) = f else {
        return "-".to_owned();
    };
    let money: Vec<String> = f
        .money
        .iter()
        .map(|(c, m)| format!("{c} {}", m.gross))
        .collect();
    if money.is_empty() {
        "-".to_owned()
    } else {
        money.join(", ")
    }
}

fn count_text(f: Option<&Figures>, pick: fn(&Figures) -> u64) -> String {
    f.map_or_else(|| "-".to_owned(), |f| thousands(pick(f)))
}

/// The change as text: accounts first, then each signature that changed (unchanged ones are
/// counted).
pub fn write_text(out: &mut dyn Write, change: &RunChange) -> io::Result<()> {
    writeln!(
        out,
        "billshadow compare {} → {}",
        clean(&change.run_a),
        clean(&change.run_b)
    )?;
    writeln!(out)?;
    let a = &change.accounts;
    writeln!(out, "Accounts:")?;
    for (label, key, n) in [
        ("newly mismatched", "newly_mismatched", a.newly_mismatched),
        ("newly at parity", "newly_at_parity", a.newly_at_parity),
        ("still mismatched", "still_mismatched", a.still_mismatched),
    ] {
        let examples = a.examples.get(key).filter(|e| !e.is_empty());
        let examples = examples.map_or(String::new(), |e| {
            format!("  e.g. {}", clean(&e.join(", ")))
        });
        writeln!(out, "  {label:<18} {:>9}{examples}", thousands(n))?;
    }
    writeln!(
        out,
        "  {:<18} {:>9}",
        "still at parity",
        thousands(a.still_at_parity)
    )?;
    if a.errored + a.only_in_a + a.only_in_b > 0 {
        writeln!(
            out,
            "  not compared       {} with a stack error, {} in run A only, {} in run B only",
            thousands(a.errored),
            thousands(a.only_in_a),
            thousands(a.only_in_b)
        )?;
    }
    writeln!(out)?;
    let moved: Vec<&SignatureChange> = (change.signatures.iter())
        .filter(|s| s.change != Change::Unchanged)
        .collect();
    let unchanged = change.signatures.len() - moved.len();
    writeln!(
        out,
        "Signatures: {} changed, {} unchanged",
        moved.len(),
        unchanged
    )?;
    for s in moved {
        writeln!(
            out,
            "  {:<9} {}  {}",
            s.change.as_str(),
            s.id,
            clean(&s.hypothesis)
        )?;
        writeln!(
            out,
            "            diffs {} → {} · accounts {} → {} · money {} → {}",
            count_text(s.a.as_ref(), |f| f.diffs),
            count_text(s.b.as_ref(), |f| f.diffs),
            count_text(s.a.as_ref(), |f| f.accounts),
            count_text(s.b.as_ref(), |f| f.accounts),
            money_text(s.a.as_ref()),
            money_text(s.b.as_ref()),
        )?;
    }
    if change.signatures_left_off > 0 {
        writeln!(
            out,
            "  … {} signatures past either run's cap are not compared",
            thousands(change.signatures_left_off)
        )?;
    }
    Ok(())
}

/// Markdown cells: no pipe or line break from data breaks the table.
fn md(text: &str) -> String {
    clean(text).replace('|', "\\|").replace('\n', " ")
}

/// The change as Markdown (a CI step summary or a pull-request comment).
pub fn markdown(change: &RunChange) -> String {
    let mut s = String::new();
    let a = &change.accounts;
    s.push_str(&format!(
        "## billshadow compare `{}` → `{}`\n\n",
        md(&change.run_a),
        md(&change.run_b)
    ));
    s.push_str("| accounts | count |\n|---|---:|\n");
    for (label, n) in [
        ("newly mismatched", a.newly_mismatched),
        ("newly at parity", a.newly_at_parity),
        ("still mismatched", a.still_mismatched),
        ("still at parity", a.still_at_parity),
        (
            "not compared (stack error, one run only)",
            a.errored + a.only_in_a + a.only_in_b,
        ),
    ] {
        s.push_str(&format!("| {label} | {} |\n", thousands(n)));
    }
    s.push_str("\n| change | signature | hypothesis | diffs | accounts | money (gross) |\n");
    s.push_str("|---|---|---|---:|---:|---|\n");
    for c in &change.signatures {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} → {} | {} → {} | {} → {} |\n",
            c.change.as_str(),
            md(&c.id),
            md(&c.hypothesis),
            count_text(c.a.as_ref(), |f| f.diffs),
            count_text(c.b.as_ref(), |f| f.diffs),
            count_text(c.a.as_ref(), |f| f.accounts),
            count_text(c.b.as_ref(), |f| f.accounts),
            md(&money_text(c.a.as_ref())),
            md(&money_text(c.b.as_ref())),
        ));
    }
    s
}
