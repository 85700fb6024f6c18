//! The dashboard's charts: inline SVG drawn here, with labelled axes and the values written
//! on them, so a screenshot or a printout reads without a script or a tooltip.
//!
//! - `parity_strip`: parity of each cell over the last runs (a heat strip, one row per cell).
//! - `classes_over_runs`: diffs by class in each of the last runs (stacked columns).
//! - `money_by_signature`: Σ |Δ| of each signature, one panel per currency (amounts in two
//!   currencies are never on one axis).
//!
//! Every text comes from data and is escaped here; every coordinate is an integer computed
//! without floating point, money included.

use std::collections::BTreeMap;
use std::fmt::Write;

use rust_decimal::Decimal;
use serde::Serialize;

/// One of the last runs as the charts draw it, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRun {
    pub run_id: String,
    pub started_at: String,
    /// Diffs per class (every diff, informational and waived ones included).
    pub classes: BTreeMap<String, u64>,
    /// Parity ratio (0..=1, as text) of each cell compared in that run.
    pub parity: BTreeMap<String, String>,
    /// Diffs per signature id, when the run's causes are stored (`None`: not stored, as for
    /// a run stored by an earlier release).
    pub signatures: Option<BTreeMap<String, u64>>,
}

/// One signature's money in one currency.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureMoney {
    pub id: String,
    pub hypothesis: String,
    pub currency: String,
    /// Σ |Δ|.
    pub gross: Decimal,
    /// Σ Δ.
    pub net: Decimal,
}

/// Rows a heat strip draws at most (the rest are named in a note under it).
pub const STRIP_ROWS_MAX: usize = 60;
/// Signatures drawn per currency panel.
pub const SIGNATURE_BARS_MAX: usize = 8;

const FONT: &str = "font-family=\"system-ui, sans-serif\" font-size=\"12\"";
const INK: &str = "#24292f";
const MUTED: &str = "#57606a";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A run's label on an axis, two lines: the day and the time it started (`10-31`,
/// `14:05:09`), else its id.
fn run_label(r: &HistoryRun) -> (String, String) {
    // Stored times read `2026-10-31T14:05:09Z` (RFC 3339).
    match (r.started_at.get(5..10), r.started_at.get(11..19)) {
        (Some(day), Some(time)) => (day.to_owned(), time.to_owned()),
        _ => (clip(&r.run_id, 11), String::new()),
    }
}

/// A run's two-line label centred on `x`, its first line at `y`.
fn write_run_label(s: &mut String, r: &HistoryRun, x: usize, y: usize) {
    let (day, time) = run_label(r);
    let _ = write!(
        s,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" fill=\"{INK}\"><title>{}</title><tspan x=\"{x}\">{}</tspan><tspan x=\"{x}\" dy=\"14\">{}</tspan></text>",
        esc(&r.run_id),
        esc(&day),
        esc(&time)
    );
}

/// A ratio's fill: the dashboard grid's colours, by the same thresholds.
fn parity_fill(ratio: Decimal) -> &'static str {
    if ratio >= Decimal::ONE {
        "#2da44e"
    } else if ratio >= Decimal::new(99, 2) {
        "#a2d9a5"
    } else if ratio >= Decimal::new(90, 2) {
        "#f2cc60"
    } else {
        "#e5534b"
    }
}

/// `99.52%`, truncated (never rounded up to 100%).
fn percent(ratio: Decimal) -> String {
    let p = (ratio * Decimal::ONE_HUNDRED)
        .trunc_with_scale(2)
        .normalize();
    format!("{p}%")
}

/// The heat strip's legend at `ly`: the colours' thresholds, and the cells left out.
fn write_parity_legend(s: &mut String, ly: usize, left_off: usize) {
    let mut x = 4;
    for (fill, label) in [
        ("#2da44e", "100%"),
        ("#a2d9a5", "≥ 99%"),
        ("#f2cc60", "≥ 90%"),
        ("#e5534b", "< 90%"),
        ("#eaeef2", "not compared"),
    ] {
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{fill}\"/><text x=\"{}\" y=\"{}\" fill=\"{MUTED}\">{label}</text>",
            ly - 10,
            x + 16,
            ly
        );
        x += 28 + label.chars().count() * 7;
    }
    if left_off > 0 {
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{ly}\" fill=\"{MUTED}\">and {left_off} more cells (see the grid)</text>"
        );
    }
}

/// Parity of each cell over the last runs: one row per cell, one column per run (oldest on
/// the left), the percentage written in each box. Empty when fewer than one run is known.
pub fn parity_strip(history: &[HistoryRun]) -> String {
    if history.is_empty() {
        return String::new();
    }
    let mut cells: Vec<&str> = history
        .iter()
        .flat_map(|r| r.parity.keys().map(String::as_str))
        .collect();
    cells.sort_unstable();
    cells.dedup();
    let left_off = cells.len().saturating_sub(STRIP_ROWS_MAX);
    cells.truncate(STRIP_ROWS_MAX);

    let (label_w, col_w, row_h, top) = (170usize, 76usize, 22usize, 58usize);
    let width = (label_w + col_w * history.len() + 10).max(600);
    let height = top + row_h * cells.len() + 40;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" id=\"chart-parity\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Parity of each cell over the last {} runs\" {FONT}>",
        history.len()
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"14\" fill=\"{MUTED}\">run started (UTC), oldest → newest</text>",
        label_w
    );
    let _ = write!(
        s,
        "<text x=\"4\" y=\"{}\" fill=\"{MUTED}\" font-weight=\"600\">cell</text>",
        top - 8
    );
    for (i, r) in history.iter().enumerate() {
        write_run_label(&mut s, r, label_w + i * col_w + col_w / 2, top - 22);
    }
    for (row, cell) in cells.iter().enumerate() {
        let y = top + row * row_h;
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{}\" fill=\"{INK}\">{}</text>",
            y + 15,
            esc(&clip(cell, 24))
        );
        for (i, r) in history.iter().enumerate() {
            let x = label_w + i * col_w;
            match r.parity.get(*cell).and_then(|v| v.parse::<Decimal>().ok()) {
                Some(ratio) => {
                    let _ = write!(
                        s,
                        "<g class=\"box\" data-cell=\"{c}\" data-run=\"{run}\"><title>{c} in run {run}: {p} of accounts at parity</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{fill}\" stroke=\"#ffffff\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{INK}\">{p}</text></g>",
                        c = esc(cell),
                        run = esc(&r.run_id),
                        p = percent(ratio),
                        w = col_w - 2,
                        h = row_h - 2,
                        fill = parity_fill(ratio),
                        tx = x + col_w / 2 - 1,
                        ty = y + 15,
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<g class=\"box none\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"#eaeef2\" stroke=\"#ffffff\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{MUTED}\">—</text></g>",
                        w = col_w - 2,
                        h = row_h - 2,
                        tx = x + col_w / 2 - 1,
                        ty = y + 15,
                    );
                }
            }
        }
    }
    write_parity_legend(&mut s, top + row_h * cells.len() + 16, left_off);
    s.push_str("</svg>");
    s
}

/// The causes of this run over the last runs: one row per signature (this run's first
/// `SIGNATURE_BARS_MAX`), one column per run, the signature's diffs written in each box (0
/// when the run did not have it, `—` when the run's causes are not stored).
pub fn signatures_over_runs(history: &[HistoryRun], rows: &[(String, String)]) -> String {
    if history.len() < 2 || rows.is_empty() {
        return String::new();
    }
    let rows = &rows[..rows.len().min(SIGNATURE_BARS_MAX)];
    let (label_w, col_w, row_h, top) = (420usize, 76usize, 34usize, 58usize);
    let width = (label_w + col_w * history.len() + 10).max(760);
    let height = top + row_h * rows.len() + 10;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" id=\"chart-signatures\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Diffs of each cause over the last {} runs\" {FONT}>",
        history.len()
    );
    let _ = write!(
        s,
        "<text x=\"{label_w}\" y=\"14\" fill=\"{MUTED}\">diffs in each run started (UTC), oldest → newest</text><text x=\"4\" y=\"{}\" fill=\"{MUTED}\" font-weight=\"600\">cause (signature)</text>",
        top - 8
    );
    for (i, r) in history.iter().enumerate() {
        write_run_label(&mut s, r, label_w + i * col_w + col_w / 2, top - 22);
    }
    for (row, (id, hypothesis)) in rows.iter().enumerate() {
        let y = top + row * row_h;
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{}\" fill=\"{INK}\" font-family=\"ui-monospace, monospace\"><title>{}</title>{}</text><text x=\"4\" y=\"{}\" fill=\"{MUTED}\">{}</text>",
            y + 12,
            esc(hypothesis),
            esc(id),
            y + 27,
            esc(&clip(hypothesis, 64))
        );
        for (i, r) in history.iter().enumerate() {
            let x = label_w + i * col_w;
            let (text, fill) = match &r.signatures {
                None => ("—".to_owned(), "#eaeef2"),
                Some(m) => match m.get(id) {
                    Some(&n) if n > 0 => (n.to_string(), "#ffd8d3"),
                    _ => ("0".to_owned(), "#dafbe1"),
                },
            };
            let _ = write!(
                s,
                "<g class=\"box\" data-signature=\"{sig}\" data-run=\"{run}\" data-diffs=\"{text}\"><title>{sig} in run {run}: {text} diffs</title><rect x=\"{x}\" y=\"{ry}\" width=\"{w}\" height=\"{h}\" fill=\"{fill}\" stroke=\"#ffffff\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{INK}\">{text}</text></g>",
                sig = esc(id),
                run = esc(&r.run_id),
                ry = y + 4,
                w = col_w - 2,
                h = row_h - 8,
                tx = x + col_w / 2 - 1,
                ty = y + 21,
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A class's colour: fixed per class, so the same class has the same colour in every run.
fn class_fill(class: &str) -> &'static str {
    const PALETTE: [&str; 10] = [
        "#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#1b7c83", "#953800",
        "#57606a", "#4d2d00",
    ];
    // FNV-1a over the name: stable across runs and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in class.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    PALETTE[(h % PALETTE.len() as u64) as usize]
}

/// A "nice" axis step (1, 2 or 5 × 10ⁿ) giving at most five ticks up to `max`.
fn nice_step(max: u64) -> u64 {
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if max.div_ceil(step) <= 5 {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

/// Diffs by class in each of the last runs: stacked columns, the total written on each, a
/// y axis with ticks, and a legend of the classes.
pub fn classes_over_runs(history: &[HistoryRun]) -> String {
    if history.is_empty() {
        return String::new();
    }
    let mut classes: Vec<&str> = history
        .iter()
        .flat_map(|r| r.classes.keys().map(String::as_str))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let totals: Vec<u64> = history.iter().map(|r| r.classes.values().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let step = nice_step(max);
    let axis_max = max.div_ceil(step) * step;

    let (left, top, plot_h, col_w, bar_w) = (70usize, 24usize, 200usize, 76usize, 44usize);
    let legend_w = 190usize;
    let plot_w = (col_w * history.len()).max(240);
    let width = left + plot_w + 20 + legend_w;
    let height = (top + plot_h + 66).max(top + 18 * classes.len() + 20);
    let y_of = |v: u64| -> usize { top + plot_h - (v * plot_h as u64 / axis_max) as usize };

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" id=\"chart-classes\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Diffs by class in the last {} runs\" {FONT}>",
        history.len()
    );
    // Y axis: ticks, grid lines and its title.
    let mut v = 0;
    while v <= axis_max {
        let y = y_of(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#d0d7de\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED}\">{v}</text>",
            left + plot_w,
            left - 6,
            y + 4
        );
        v += step;
    }
    let _ = write!(
        s,
        "<text x=\"14\" y=\"{}\" fill=\"{MUTED}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">diffs</text>",
        top + plot_h / 2,
        top + plot_h / 2
    );
    for (i, r) in history.iter().enumerate() {
        let x = left + i * col_w + (col_w - bar_w) / 2;
        let mut base = 0u64;
        for class in &classes {
            let n = r.classes.get(*class).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let (y1, y0) = (y_of(base + n), y_of(base));
            let _ = write!(
                s,
                "<rect class=\"segment\" data-class=\"{c}\" data-run=\"{run}\" data-count=\"{n}\" x=\"{x}\" y=\"{y1}\" width=\"{bar_w}\" height=\"{h}\" fill=\"{fill}\"><title>{c}: {n} diffs in run {run}</title></rect>",
                c = esc(class),
                run = esc(&r.run_id),
                h = (y0 - y1).max(1),
                fill = class_fill(class),
            );
            base += n;
        }
        let _ = write!(
            s,
            "<text class=\"total\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{INK}\" font-weight=\"600\">{}</text>",
            x + bar_w / 2,
            y_of(totals[i]) - 4,
            totals[i]
        );
        write_run_label(&mut s, r, x + bar_w / 2, top + plot_h + 16);
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{MUTED}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\">run started (UTC), oldest → newest</text>",
        left + plot_w,
        left + plot_w / 2,
        top + plot_h + 52,
        y = top + plot_h
    );
    // Legend.
    let lx = left + plot_w + 20;
    for (i, class) in classes.iter().enumerate() {
        let y = top + i * 18;
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"{INK}\">{}</text>",
            class_fill(class),
            lx + 18,
            y + 11,
            esc(class)
        );
    }
    s.push_str("</svg>");
    s
}

/// Σ |Δ| per signature, one panel per currency, the largest first; each bar labelled with
/// the signature, its hypothesis, and its gross and net amounts.
pub fn money_by_signature(rows: &[SignatureMoney]) -> String {
    let mut by_currency: BTreeMap<&str, Vec<&SignatureMoney>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.gross.is_zero()) {
        by_currency.entry(r.currency.as_str()).or_default().push(r);
    }
    let mut out = String::new();
    for (currency, mut bars) in by_currency {
        bars.sort_by(|a, b| b.gross.cmp(&a.gross).then_with(|| a.id.cmp(&b.id)));
        let left_off = bars.len().saturating_sub(SIGNATURE_BARS_MAX);
        bars.truncate(SIGNATURE_BARS_MAX);
        let max = bars[0].gross;
        let (label_w, bar_max, row_h, top) = (420usize, 300usize, 34usize, 24usize);
        let width = label_w + bar_max + 250;
        let height = top + row_h * bars.len() + 44;
        let _ = write!(
            out,
            "<svg class=\"chart\" id=\"chart-money-{cur}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Money by signature in {cur}\" {FONT}>",
            cur = esc(currency)
        );
        let _ = write!(
            out,
            "<text x=\"4\" y=\"14\" fill=\"{INK}\" font-weight=\"600\">{}</text>",
            esc(currency)
        );
        for (i, b) in bars.iter().enumerate() {
            let y = top + i * row_h;
            // Bar length: gross / max of the panel, in whole pixels, at least one.
            let len = (b.gross * Decimal::from(bar_max as u64) / max)
                .trunc()
                .try_into()
                .unwrap_or(0u64)
                .max(1) as usize;
            let _ = write!(
                out,
                "<g class=\"signature\" data-signature=\"{id}\" data-currency=\"{cur}\" data-gross=\"{gross}\"><title>{id}: {hyp}</title><text x=\"4\" y=\"{ty}\" fill=\"{INK}\" font-family=\"ui-monospace, monospace\">{id}</text><text x=\"4\" y=\"{ty2}\" fill=\"{MUTED}\">{hyp_short}</text><rect x=\"{label_w}\" y=\"{ry}\" width=\"{len}\" height=\"18\" fill=\"#cf222e\"/><text x=\"{vx}\" y=\"{vy}\" fill=\"{INK}\">{shown} {cur} (net {net})</text></g>",
                id = esc(&b.id),
                cur = esc(currency),
                gross = b.gross.normalize(),
                shown = b.gross,
                net = b.net,
                hyp = esc(&b.hypothesis),
                hyp_short = esc(&clip(&b.hypothesis, 64)),
                ty = y + 12,
                ty2 = y + 27,
                ry = y + 6,
                vx = label_w + len + 6,
                vy = y + 19,
            );
        }
        let ay = top + row_h * bars.len() + 6;
        let _ = write!(
            out,
            "<line x1=\"{label_w}\" y1=\"{ay}\" x2=\"{}\" y2=\"{ay}\" stroke=\"{MUTED}\"/><text x=\"{label_w}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\">Σ |Δ| in {}</text>",
            label_w + bar_max,
            ay + 16,
            label_w + bar_max,
            ay + 16,
            max,
            label_w + bar_max / 2,
            ay + 32,
            esc(currency)
        );
        if left_off > 0 {
            let _ = write!(
                out,
                "<text x=\"4\" y=\"{}\" fill=\"{MUTED}\">and {left_off} smaller signatures</text>",
                ay + 32
            );
        }
        out.push_str("</svg>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: &str, classes: &[(&str, u64)], parity: &[(&str, &str)]) -> HistoryRun {
        HistoryRun {
            run_id: id.to_owned(),
            started_at: at.to_owned(),
            classes: classes.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect(),
            parity: parity
                .iter()
                .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
                .collect(),
            signatures: None,
        }
    }

    #[test]
    fn the_strip_writes_each_runs_percentage_truncated_and_names_the_axes() {
        let h = [
            run("r1", "2026-10-31T14:05:09Z", &[], &[("p0/eu", "0.99999")]),
            run(
                "r2",
                "2026-11-01T09:00:00Z",
                &[],
                &[("p0/eu", "1"), ("p1/us", "0.5")],
            ),
        ];
        let svg = parity_strip(&h);
        assert!(svg.contains(">99.99%<"), "never rounded up to 100%: {svg}");
        assert!(svg.contains(">100%<") && svg.contains(">50%<"));
        assert!(svg.contains(">10-31<") && svg.contains(">14:05:09<"));
        assert!(svg.contains(">11-01<") && svg.contains(">09:00:00<"));
        assert!(svg.contains("oldest → newest") && svg.contains(">cell<"));
        // p1/us was not compared in r1.
        assert_eq!(svg.matches("class=\"box none\"").count(), 1);
    }

    #[test]
    fn columns_stack_every_class_and_write_their_totals_on_a_nice_axis() {
        let h = [
            run(
                "r1",
                "2026-10-31T14:05:09Z",
                &[("amount_mismatch", 7), ("missing_in_modern", 3)],
                &[],
            ),
            run("r2", "2026-11-01T09:00:00Z", &[("amount_mismatch", 2)], &[]),
        ];
        let svg = classes_over_runs(&h);
        assert!(svg.contains("class=\"total\"") && svg.contains(">10<") && svg.contains(">2<"));
        assert_eq!(svg.matches("class=\"segment\"").count(), 3);
        assert!(svg.contains(">amount_mismatch<") && svg.contains(">missing_in_modern<"));
        assert!(svg.contains(">diffs<"));
        assert_eq!(nice_step(10), 2);
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(7_340), 2_000);
    }

    #[test]
    fn money_is_drawn_per_currency_largest_first_and_escaped() {
        let m = |id: &str, cur: &str, gross: i64| SignatureMoney {
            id: id.to_owned(),
            hypothesis: "modern <rounds> & more".to_owned(),
            currency: cur.to_owned(),
            gross: Decimal::new(gross, 3),
            net: Decimal::new(-gross, 3),
        };
        let svg = money_by_signature(&[
            m("sig-a", "BHD", 1500),
            m("sig-b", "BHD", 45_250),
            m("sig-c", "USD", 10),
        ]);
        assert_eq!(svg.matches("<svg").count(), 2, "one panel per currency");
        let (a, b) = (svg.find("sig-a").unwrap(), svg.find("sig-b").unwrap());
        assert!(b < a, "largest first");
        assert!(
            svg.contains("45.250 BHD (net -45.250)"),
            "amounts as the currency writes them"
        );
        assert!(svg.contains("modern &lt;rounds&gt; &amp; more"));
        assert!(!svg.contains("<rounds>"));
    }
}
