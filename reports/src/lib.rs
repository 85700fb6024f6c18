//! Renderers of billshadow results: a terminal summary, JSON and JSON lines, CSV, Markdown, an
//! HTML dashboard (minijinja templates in `reports/templates/`), Prometheus text, `explain`, and
//! for CI systems a diff as Markdown and JUnit and a run as JUnit (`ci`).
//!
//! Renderers only format what they are given; they never compare anything themselves.
//! The JSON shapes are versioned (`billshadow.diff/v2`) and documented in
//! `reports/SCHEMA.md`.

pub mod causes;
pub mod charts;
pub mod ci;
pub mod compare;
pub mod explain;
pub mod gate;
pub mod json;
pub mod prometheus;
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

/// Text from data made safe for a terminal: every control character (C0 but the line feed in
/// multi-line text, DEL, C1 such as the one-byte CSI and OSC) and every bidirectional override
/// is written as a visible escape (`\u{1b}`), so no value can move the cursor, set the
/// window title, write a hyperlink or reorder what is shown. Other text is returned as it is.
pub fn clean(value: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !value.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`clean`] for text of several lines: line feeds are kept.
pub fn clean_lines(value: &str) -> String {
    value.split('\n').map(clean).collect::<Vec<_>>().join("\n")
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
    fn clean() {
        assert_eq!(super::clean("acct-1"), "acct-1");
        assert_eq!(
            super::clean("a\u{1b}]0;owned\u{7}b\u{9b}2J\r"),
            "a\\u{1b}]0;owned\\u{7}b\\u{9b}2J\\u{d}"
        );
        assert_eq!(super::clean("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(super::clean_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }

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
