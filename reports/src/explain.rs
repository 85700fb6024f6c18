//! `explain`: one account's two bills side by side, aligned by match key, the differing fields
//! marked, each diff with its class and delta, then a unified diff of the two rendered bills.

use std::io::{self, Write};

use billshadow_comparisons::Diff;

use crate::clean;
use crate::json::DiffJson;
use serde_json::Value;

/// The fields a rendered bill line shows, in order.
const FIELDS: [&str; 9] = [
    "charge_code",
    "line_type",
    "usage_start",
    "region",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
];

/// One line of a bill as text, for the unified diff.
fn render_line(line: &Value) -> String {
    FIELDS
        .iter()
        .map(|f| line[*f].as_str().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_owned()
}

/// A bill as text: its lines sorted (order never matters to a comparison).
pub fn render_bill(lines: &[Value]) -> String {
    let mut rendered: Vec<String> = lines.iter().map(render_line).collect();
    rendered.sort();
    rendered.iter().map(|l| format!("{l}\n")).collect()
}

/// The unified diff of the two rendered bills.
pub fn unified(legacy: &[Value], modern: &[Value]) -> String {
    let (l, m) = (render_bill(legacy), render_bill(modern));
    similar::TextDiff::from_lines(&l, &m)
        .unified_diff()
        .context_radius(2)
        .header("legacy", "modern")
        .to_string()
}

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Writes the text explanation: a title, each diff with its fields side by side, then the
/// two bills as a unified diff.
pub fn write_text(
    out: &mut dyn Write,
    account: &str,
    diffs: &[Diff],
    legacy: &[Value],
    modern: &[Value],
    color: bool,
) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        paint(
            color,
            "1",
            &format!(
                "account {}: {} legacy lines, {} modern lines, {} diffs",
                clean(account),
                legacy.len(),
                modern.len(),
                diffs.len()
            )
        )
    )?;
    for d in diffs {
        write_diff_heading(out, d, color)?;
        write_fields(out, d, color)?;
    }
    write_bills(out, legacy, modern, color)
}

/// A diff's class, what it is about, its key, delta and waiver, and its detail.
fn write_diff_heading(out: &mut dyn Write, d: &Diff, color: bool) -> io::Result<()> {
    let what = d
        .charge_code
        .clone()
        .unwrap_or_else(|| format!("{:?}", d.scope).to_lowercase());
    let key: Vec<String> = d.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let delta = d
        .delta
        .map(|x| format!(" Δ {x} {}", d.currency.map(|c| c.code()).unwrap_or("")))
        .unwrap_or_default();
    let class = if d.class.is_informational() {
        paint(color, "33", d.class.as_str())
    } else {
        paint(color, "31", d.class.as_str())
    };
    writeln!(out)?;
    writeln!(
        out,
        "  {class}  {}  {}{delta}{}",
        clean(&what),
        clean(&key.join(" ")),
        clean(
            &d.waiver
                .as_deref()
                .map(|w| format!("  (waived by {w})"))
                .unwrap_or_default()
        )
    )?;
    if let Some(detail) = &d.detail {
        writeln!(out, "    {}", clean(detail))?;
    }
    Ok(())
}

/// Each field of the two sides' evidence, side by side; the fields that differ marked.
fn write_fields(out: &mut dyn Write, d: &Diff, color: bool) -> io::Result<()> {
    let empty = billshadow_comparisons::Fields::new();
    let l = d.legacy.as_ref().map_or(&empty, |e| &e.fields);
    let m = d.modern.as_ref().map_or(&empty, |e| &e.fields);
    let mut names: Vec<&str> = l.keys().chain(m.keys()).collect();
    names.sort();
    names.dedup();
    writeln!(out, "    {:<14} {:>22} {:>22}", "field", "legacy", "modern")?;
    for name in names {
        let (a, b) = (l.get(name).unwrap_or("—"), m.get(name).unwrap_or("—"));
        let differs = d.fields.iter().any(|f| f == name);
        let row = format!(
            "    {:<14} {:>22} {:>22}{}",
            clean(name),
            clean(a),
            clean(b),
            if differs { "  ←" } else { "" }
        );
        writeln!(
            out,
            "{}",
            if differs {
                paint(color, "1;31", &row)
            } else {
                row
            }
        )?;
    }
    Ok(())
}

/// The two bills, rendered, as a unified diff.
fn write_bills(
    out: &mut dyn Write,
    legacy: &[Value],
    modern: &[Value],
    color: bool,
) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{}", paint(color, "1", "the two bills, line by line:"))?;
    let diff = unified(legacy, modern);
    if diff.is_empty() {
        writeln!(out, "  (identical when rendered)")?;
    }
    for line in diff.lines() {
        let line = &*clean(line);
        let colored = match line.chars().next() {
            Some('-') if !line.starts_with("---") => paint(color, "31", line),
            Some('+') if !line.starts_with("+++") => paint(color, "32", line),
            _ => line.to_owned(),
        };
        writeln!(out, "  {colored}")?;
    }
    Ok(())
}

/// The same as JSON.
pub fn to_json(account: &str, diffs: &[Diff], legacy: &[Value], modern: &[Value]) -> Value {
    serde_json::json!({
        "schema": "billshadow.explain/v1",
        "account_id": account,
        "diffs": diffs.iter().map(DiffJson::from).collect::<Vec<_>>(),
        "legacy": legacy,
        "modern": modern,
        "unified_diff": unified(legacy, modern),
    })
}
