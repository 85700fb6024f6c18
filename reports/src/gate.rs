//! A cell's gate verdict as JSON for other programs (progressive-delivery controllers such as
//! Argo Rollouts and Flagger): every measured value and threshold a JSON number they can
//! compare, beside the text people read.
//!
//! The numbers are read from the verdict's own text, never recomputed: a criterion whose text
//! holds no number (a policy without a threshold for a currency) has `null` there.

use serde_json::{Number, Value, json};

use crate::view::{CriterionView, GateView};

/// The first decimal number in `text` (`0.0012 (share; 3 of 2500 accounts)` → 0.0012,
/// `<= 10.00 USD` → 10.00), exactly as written: a JSON number keeps every digit.
pub fn first_number(text: &str) -> Option<Number> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';' | ':')))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_digit() || c == '-'))
        .find_map(|w| {
            let plain = w.strip_prefix('-').unwrap_or(w);
            let decimal = !plain.is_empty()
                && plain.chars().all(|c| c.is_ascii_digit() || c == '.')
                && plain.chars().filter(|c| *c == '.').count() <= 1
                && !plain.ends_with('.');
            decimal
                .then(|| serde_json::from_str::<Number>(w).ok())
                .flatten()
        })
}

/// The comparison a threshold states (`>=`, `<=`, `<`, `>`), when it starts with one.
fn operator(threshold: &str) -> Option<&'static str> {
    [">=", "<=", "<", ">"]
        .into_iter()
        .find(|op| threshold.starts_with(op))
}

/// The ISO 4217 code a value is in, when its text ends with one (`12.50 USD`).
fn currency(text: &str) -> Option<&str> {
    text.split_whitespace()
        .last()
        .filter(|w| w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))
}

fn criterion(c: &CriterionView) -> Value {
    json!({
        "name": c.name,
        "passed": c.passed,
        "inconclusive": c.inconclusive,
        "measured": first_number(&c.measured),
        "threshold": first_number(&c.threshold),
        "operator": operator(&c.threshold),
        "currency": currency(&c.threshold).or_else(|| currency(&c.measured)),
        "measured_text": c.measured,
        "threshold_text": c.threshold,
    })
}

/// The JSON a gate endpoint answers with for one cell.
pub fn json(gate: &GateView) -> Value {
    let (partition, region) = gate.cell.split_once('/').unwrap_or((&gate.cell, ""));
    json!({
        "cell": gate.cell,
        "partition": partition,
        "region": region,
        "target": gate.target,
        "passed": gate.passed,
        "verdict": if gate.passed { "pass" } else { "blocked" },
        "blocks": gate.blocks,
        "criteria": gate.criteria.iter().map(criterion).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    fn check(text: &str, expected: Option<&str>) {
        let got = super::first_number(text).map(|n| n.to_string());
        assert_eq!(got.as_deref(), expected, "{text:?}");
    }

    #[test]
    fn numbers_are_read_from_the_verdicts_text() {
        check("600", Some("600"));
        check(">= 500", Some("500"));
        check(">= 0.98", Some("0.98"));
        check("0.0012 (share; 3 of 2500 accounts)", Some("0.0012"));
        check("<= 10.00 USD", Some("10.00"));
        check("-3.50 EUR", Some("-3.50"));
        check("largest unwaived diff 120.00 USD", Some("120.00"));
        check("3 spanning 72 h", Some("3"));
        check("a max_delta in JPY (the policy has none)", None);
        check("newest run r-20261125", None);
        check("1.2.3", None);
    }

    #[test]
    fn a_criterion_has_numbers_an_operator_and_its_currency() {
        let c = crate::view::CriterionView {
            name: "max_delta".into(),
            measured: "12.50 USD".into(),
            threshold: "<= 10.00 USD".into(),
            passed: false,
            inconclusive: false,
        };
        let v = super::criterion(&c);
        assert_eq!(v["measured"].to_string(), "12.50");
        assert_eq!(v["threshold"].to_string(), "10.00");
        assert_eq!(v["operator"], "<=");
        assert_eq!(v["currency"], "USD");
    }
}
