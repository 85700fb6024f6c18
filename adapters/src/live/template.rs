//! Templates for argv entries, URLs, request bodies and SQL parameters: `{account_id}` and
//! friends. A value is never spliced into a shell or into SQL text: argv entries are passed
//! as they are, URL values are percent-encoded, body values JSON-escaped, SQL values bound.

use std::fmt;

/// The variables a template may use: an account's fields, and the batch's ids.
pub const VARIABLES: [&str; 7] = {
    let f = AccountRequest::FIELDS;
    [f[0], f[1], f[2], f[3], f[4], f[5], "account_ids"]
};

/// One account to bill: what a cohort row says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    pub account_id: String,
    pub customer_id: String,
    pub partition: String,
    pub region: String,
    pub period_start: String,
    pub period_end: String,
}

impl AccountRequest {
    /// Its fields by name, in the order a cohort file's header has them: the one list the
    /// templates' variables and the cohort's columns are spelled from.
    pub const FIELDS: [&'static str; 6] = [
        "account_id",
        "customer_id",
        "partition",
        "region",
        "period_start",
        "period_end",
    ];

    /// Its fields' values, in the order of `FIELDS`.
    pub fn values(&self) -> [&str; 6] {
        [
            &self.account_id,
            &self.customer_id,
            &self.partition,
            &self.region,
            &self.period_start,
            &self.period_end,
        ]
    }

    /// The value of the field `name` (one of `FIELDS`), empty for any other name.
    pub fn variable(&self, name: &str) -> &str {
        AccountRequest::FIELDS
            .iter()
            .position(|field| *field == name)
            .map_or("", |i| self.values()[i])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {problem}")]
pub struct TemplateError {
    pub template: String,
    pub problem: String,
}

/// How values are escaped when a template is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Passed as is (an argv entry, a bound SQL parameter).
    None,
    /// Percent-encoded as a URL path segment or query value.
    Url,
    /// Escaped for the inside of a JSON string.
    Json,
}

impl Template {
    /// Parses `text`; `{{` and `}}` are literal braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let error = |problem: String| TemplateError {
            template: text.to_owned(),
            problem,
        };
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    if !VARIABLES.contains(&name.as_str()) {
                        return Err(error(format!(
                            "`{{{name}}}` is not a variable (expected one of {})",
                            VARIABLES.join(", ")
                        )));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Variable(name));
                }
                '}' => {
                    return Err(error(
                        "a `}` without its `{` (write `}}` for a brace)".to_owned(),
                    ));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: text.to_owned(),
            segments,
        })
    }

    /// True when the template is exactly `{account_ids}`: one argv entry per account.
    pub fn is_account_list(&self) -> bool {
        matches!(self.segments.as_slice(), [Segment::Variable(v)] if v == "account_ids")
    }

    /// The variables the template uses, in order (with repeats).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Variable(v) => Some(v.as_str()),
            Segment::Literal(_) => None,
        })
    }

    pub fn uses(&self, variable: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Variable(v) if v == variable))
    }

    pub fn render(&self, account: &AccountRequest, escape: Escape) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Variable(v) => {
                    let value = account.variable(v);
                    match escape {
                        Escape::None => out.push_str(value),
                        Escape::Url => percent_encode(value, &mut out),
                        Escape::Json => json_escape(value, &mut out),
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn json_escape(value: &str, out: &mut String) {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    out.push_str(&quoted[1..quoted.len().saturating_sub(1).max(1)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> AccountRequest {
        AccountRequest {
            account_id: id.to_owned(),
            customer_id: "c".to_owned(),
            partition: "p1".to_owned(),
            region: "eu-west-1".to_owned(),
            period_start: "2026-10-01".to_owned(),
            period_end: "2026-10-31".to_owned(),
        }
    }

    fn check(template: &str, id: &str, escape: Escape, expected: &str) {
        assert_eq!(
            Template::parse(template)
                .unwrap()
                .render(&account(id), escape),
            expected
        );
    }

    #[test]
    fn values_are_escaped_for_where_they_go() {
        let hostile = "a b\"c;$(rm -rf /)\n€";
        check("{account_id}", hostile, Escape::None, hostile);
        check(
            "/bills/{account_id}?p={period_start}",
            hostile,
            Escape::Url,
            "/bills/a%20b%22c%3B%24%28rm%20-rf%20%2F%29%0A%E2%82%AC?p=2026-10-01",
        );
        check(
            r#"{{"id": "{account_id}"}}"#,
            hostile,
            Escape::Json,
            r#"{"id": "a b\"c;$(rm -rf /)\n€"}"#,
        );
    }

    #[test]
    fn unknown_variables_and_stray_braces_are_errors() {
        assert!(
            Template::parse("{acount_id}")
                .unwrap_err()
                .problem
                .contains("not a variable")
        );
        assert!(Template::parse("a}b").is_err());
        assert!(Template::parse("{account_ids}").unwrap().is_account_list());
        assert!(!Template::parse("x{account_ids}").unwrap().is_account_list());
    }
}
