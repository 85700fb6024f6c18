//! Renderers of billshadow results: a terminal summary, JSON and JSON lines, CSV, Markdown, an
//! HTML dashboard (minijinja templates in `reports/templates/`), Prometheus text, `explain`.
//!
//! Renderers only format what they are given; they never compare anything themselves.
//! The JSON shapes are versioned (`billshadow.diff/v1`) and documented in
//! `reports/SCHEMA.md`.

pub mod explain;
pub mod json;
pub mod run;
pub mod text;
pub mod view;

use serde::Serialize;

/// Where one side's lines came from, for the report's header.
#[derive(Debug, Clone, Serialize)]
pub struct SideInput {
    pub path: String,
    pub format: String,
    pub records: u64,
    pub lines: u64,
    pub filtered: u64,
    pub bad_rows: u64,
}

/// The inputs of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    pub legacy: SideInput,
    pub modern: SideInput,
    /// Where quarantined rows were written, when any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
}

/// Formats an integer with thousands separators: 1234567 → 1,234,567.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(super::thousands(n), s);
        }
    }
}
