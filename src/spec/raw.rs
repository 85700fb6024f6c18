//! The spec file as written: the TOML structures serde reads, before validation.

use std::collections::BTreeMap;

use billshadow_comparisons::config::Tolerance;
use billshadow_comparisons::parse_decimal;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub(crate) legacy: Option<Spanned<RawSide>>,
    pub(crate) modern: Option<Spanned<RawSide>>,
    pub(crate) r#match: Option<RawMatch>,
    pub(crate) compare: Option<RawCompare>,
    pub(crate) tolerance: Option<RawTolerances>,
    #[serde(default)]
    pub(crate) waiver: Vec<Spanned<RawWaiver>>,
    pub(crate) cohort: Option<RawCohort>,
}

/// `[cohort]`: `allow_leading_dash = true` lets cohort values start with `-` (refused by
/// default: a stack's argv parser would read such an id as an option).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCohort {
    #[serde(default)]
    pub(crate) allow_leading_dash: bool,
}

/// One side of the spec: a file (`format`, `path`) or a live stack (`kind` and its settings).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSide {
    pub(crate) kind: Option<String>,
    pub(crate) format: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) program: Option<String>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) method: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, RawHeader>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff_ms: Option<u64>,
    pub(crate) backoff_max_ms: Option<u64>,
    pub(crate) breaker_failures: Option<u32>,
    pub(crate) probe_ms: Option<u64>,
    pub(crate) outage_max_ms: Option<u64>,
    pub(crate) max_response_bytes: Option<u64>,
    pub(crate) ca_file: Option<String>,
    pub(crate) dsn_env: Option<String>,
    pub(crate) query: Option<String>,
    pub(crate) params: Option<Vec<String>>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) rate_per_second: Option<u32>,
    pub(crate) start: Option<RawStart>,
    pub(crate) version: Option<RawVersion>,
}

/// Where the stack reports its version: `args` for a command stack, `url` (and `header`) for
/// an HTTP stack.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVersion {
    pub(crate) args: Option<Vec<String>>,
    pub(crate) url: Option<String>,
    pub(crate) header: Option<String>,
}

/// A header whose value comes from an environment variable (never from the spec itself).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeader {
    pub(crate) env: String,
    #[serde(default)]
    pub(crate) prefix: String,
}

/// How to start a stack for the duration of a run.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStart {
    pub(crate) program: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    pub(crate) ready_address: Option<String>,
    pub(crate) ready_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub(crate) key: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    #[serde(default)]
    pub(crate) ignore: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTolerances {
    pub(crate) default: Option<Spanned<RawTolerance>>,
    pub(crate) total: Option<Spanned<RawTolerance>>,
    #[serde(default)]
    pub(crate) line_type: BTreeMap<String, Spanned<RawTolerance>>,
    #[serde(default)]
    pub(crate) charge_code: BTreeMap<String, Spanned<RawTolerance>>,
}

/// A tolerance as written: an amount as a string (`"0.05"`) or `{ minor_units = N }`.
pub(crate) enum RawTolerance {
    Amount(String),
    MinorUnits { minor_units: u32 },
}

/// What a tolerance must look like, in every error about one.
const TOLERANCE_EXPECTED: &str =
    "a tolerance is an amount as a string, such as \"0.05\", or { minor_units = N }";

impl<'de> Deserialize<'de> for RawTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ToleranceVisitor)
    }
}

/// Reads a tolerance, saying what is expected instead of "did not match any variant".
struct ToleranceVisitor;

impl<'de> serde::de::Visitor<'de> for ToleranceVisitor {
    type Value = RawTolerance;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TOLERANCE_EXPECTED)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTolerance, E> {
        Ok(RawTolerance::Amount(v.to_owned()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawTolerance, E> {
        Err(E::custom(format!(
            "{TOLERANCE_EXPECTED}: write \"{v}\" (an amount, quoted) or {{ minor_units = {v} }}"
        )))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawTolerance, E> {
        Err(E::custom(format!(
            "{TOLERANCE_EXPECTED}: write \"{v}\", quoted (a TOML number is a float, and no amount is ever a float)"
        )))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawTolerance, A::Error> {
        use serde::de::Error;
        let mut minor_units = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "minor_units" {
                return Err(A::Error::custom(format!(
                    "{TOLERANCE_EXPECTED}: `{key}` is not `minor_units`"
                )));
            }
            let n: i64 = map.next_value()?;
            let n = u32::try_from(n).map_err(|_| {
                A::Error::custom(format!(
                    "{TOLERANCE_EXPECTED}: minor_units is a whole number from 0 to {}, not {n}",
                    u32::MAX
                ))
            })?;
            minor_units = Some(n);
        }
        minor_units
            .map(|minor_units| RawTolerance::MinorUnits { minor_units })
            .ok_or_else(|| {
                A::Error::custom(format!("{TOLERANCE_EXPECTED}: minor_units is missing"))
            })
    }
}

#[cfg(test)]
mod tolerance_tests {
    /// The message a `[tolerance] default = VALUE` gets, or `ok`.
    fn check(value: &str, expected: &str) {
        let text = format!("default = {value}\n");
        #[derive(serde::Deserialize)]
        struct Table {
            #[expect(dead_code, reason = "only whether it reads is checked")]
            default: super::RawTolerance,
        }
        let got = match toml::from_str::<Table>(&text) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.message().to_owned(),
        };
        assert!(got.contains(expected), "{value}: {got}");
        assert!(!got.contains("untagged"), "{value}: {got}");
    }

    #[test]
    fn a_bad_tolerance_says_what_is_expected() {
        check("\"0.05\"", "ok");
        check("{ minor_units = 3 }", "ok");
        check("{ minor_unit = 1 }", "`minor_unit` is not `minor_units`");
        check("0.5", "write \"0.5\", quoted");
        check(
            "2",
            "write \"2\" (an amount, quoted) or { minor_units = 2 }",
        );
        check("{ minor_units = -1 }", "minor_units is a whole number");
        check("{ }", "minor_units is missing");
        check("true", "a tolerance is an amount as a string");
    }
}

impl RawTolerance {
    pub(crate) fn validate(self) -> Result<Tolerance, String> {
        match self {
            RawTolerance::MinorUnits { minor_units } => Ok(Tolerance::MinorUnits(minor_units)),
            RawTolerance::Amount(a) => {
                let value = parse_decimal(&a).map_err(|e| format!("tolerance: {e}"))?;
                if value.is_sign_negative() {
                    return Err(format!("tolerance `{a}` is negative"));
                }
                Ok(Tolerance::Amount(value))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWaiver {
    pub(crate) id: String,
    pub(crate) class: Option<String>,
    pub(crate) charge_code: Option<String>,
    pub(crate) account_id: Option<String>,
    pub(crate) partition: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) max_delta: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) reason: String,
    pub(crate) ticket: String,
    pub(crate) owner: String,
    pub(crate) expires: String,
}
