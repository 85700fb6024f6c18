//! A diff and a bill as the run store holds them: the `body` of a `diffs` row and of an
//! `evidence` row. Their own types, with field names frozen to what stores already contain,
//! so the engine's `Diff` and `Evidence` can change without a store made by an earlier release
//! failing to read back, and without a new release writing something else.
//!
//! A change here is a change of every store's contents: bodies already written must still
//! read back (the fixtures in `tests/fixtures/stores/`), and `report --format jsonl` prints a
//! body as a `billshadow.diff/v2` record, so the stored form is also held to the schema.
//! Nothing here may name the engine's serde: only these types are (de)serialised.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use billshadow_comparisons::{Currency, Diff, DiffClass, Evidence, Field, LineStore, Scope};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Each scope by the name the store holds: the one table both ways read.
const SCOPE_NAMES: [(Scope, &str); 5] = [
    (Scope::Line, "line"),
    (Scope::Bill, "bill"),
    (Scope::Invoice, "invoice"),
    (Scope::Customer, "customer"),
    (Scope::Account, "account"),
];

/// A diff as stored, fields in the order stores hold them.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredDiff {
    account_id: Option<String>,
    /// `DiffClass::as_str`, the engine's stable class name (the `class` column holds it too).
    class: String,
    scope: String,
    charge_code: Option<String>,
    key: BTreeMap<String, String>,
    legacy: Option<StoredEvidence>,
    modern: Option<StoredEvidence>,
    /// modern − legacy as a decimal string, never a JSON number.
    delta: Option<String>,
    /// The ISO 4217 code.
    currency: Option<String>,
    fields: Vec<String>,
    waiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    legacy_line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modern_line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// One side's line or total as stored: its fields, then its attributes when any.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEvidence {
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
}

impl From<&Diff> for StoredDiff {
    fn from(d: &Diff) -> StoredDiff {
        StoredDiff {
            account_id: d.account_id.clone(),
            class: d.class.as_str().to_owned(),
            scope: scope_name(d.scope).to_owned(),
            charge_code: d.charge_code.clone(),
            key: owned(&d.key),
            legacy: d.legacy.as_ref().map(StoredEvidence::from),
            modern: d.modern.as_ref().map(StoredEvidence::from),
            delta: d.delta.map(|delta| delta.to_string()),
            currency: d.currency.map(|c| c.code().to_owned()),
            fields: d.fields.clone(),
            waiver: d.waiver.clone(),
            customer_id: d.customer_id.clone(),
            partition: d.partition.clone(),
            region: d.region.clone(),
            legacy_line: d.legacy_line,
            modern_line: d.modern_line,
            detail: d.detail.clone(),
        }
    }
}

impl TryFrom<StoredDiff> for Diff {
    type Error = anyhow::Error;

    fn try_from(s: StoredDiff) -> anyhow::Result<Diff> {
        let class = DiffClass::from_name(&s.class)
            .ok_or_else(|| anyhow!("the store holds an unknown diff class `{}`", s.class))?;
        let scope = SCOPE_NAMES
            .into_iter()
            .find(|(_, name)| *name == s.scope)
            .map(|(scope, _)| scope)
            .ok_or_else(|| anyhow!("the store holds an unknown diff scope `{}`", s.scope))?;
        let delta = s
            .delta
            .map(|d| {
                d.parse::<Decimal>()
                    .with_context(|| format!("the store holds a delta that is not a decimal: {d}"))
            })
            .transpose()?;
        let currency = s
            .currency
            .map(|c| {
                c.parse::<Currency>()
                    .map_err(|e| anyhow!("the store holds the currency `{c}`: {e}"))
            })
            .transpose()?;
        Ok(Diff {
            account_id: s.account_id,
            class,
            scope,
            charge_code: s.charge_code,
            key: s.key.into_iter().collect(),
            legacy: s.legacy.map(Evidence::from),
            modern: s.modern.map(Evidence::from),
            delta,
            currency,
            fields: s.fields,
            waiver: s.waiver,
            customer_id: s.customer_id,
            partition: s.partition,
            region: s.region,
            legacy_line: s.legacy_line,
            modern_line: s.modern_line,
            detail: s.detail,
        })
    }
}

impl From<&Evidence> for StoredEvidence {
    fn from(e: &Evidence) -> StoredEvidence {
        StoredEvidence {
            fields: owned(&e.fields),
            attributes: owned(&e.attributes),
        }
    }
}

impl From<StoredEvidence> for Evidence {
    fn from(e: StoredEvidence) -> Evidence {
        Evidence {
            fields: e.fields.into_iter().collect(),
            attributes: e.attributes.into_iter().collect(),
        }
    }
}

fn scope_name(scope: Scope) -> &'static str {
    // Exhaustive: a new scope does not compile until it is given a stored name above.
    let (Scope::Line | Scope::Bill | Scope::Invoice | Scope::Customer | Scope::Account) = scope;
    SCOPE_NAMES
        .into_iter()
        .find(|(s, _)| *s == scope)
        .map_or("", |(_, name)| name)
}

/// A diff's stored body.
pub(super) fn diff_body(diff: &Diff) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&StoredDiff::from(diff))?)
}

/// A diff read back from its stored body (a JSON value, as `Store::account_detail` hands it).
pub(crate) fn diff_of_value(body: serde_json::Value) -> anyhow::Result<Diff> {
    serde_json::from_value::<StoredDiff>(body)?.try_into()
}

/// A diff read back from its stored body as text (`Store::for_each_diff` hands it so).
pub(crate) fn diff_of_str(body: &str) -> anyhow::Result<Diff> {
    serde_json::from_str::<StoredDiff>(body)?.try_into()
}

/// A bill as the store keeps it for a mismatched account: a JSON array of its lines, each its
/// stored evidence with its account and source line number.
pub(crate) fn bill_body(store: &LineStore) -> String {
    let lines: Vec<serde_json::Value> = store
        .lines()
        .map(|line| {
            let evidence = StoredEvidence::from(&Evidence::of_line(&line));
            let mut value = serde_json::to_value(evidence).unwrap_or_default();
            value["account_id"] = line.get(Field::AccountId).into();
            value["source_line"] = line.source_line().into();
            value
        })
        .collect();
    serde_json::Value::Array(lines).to_string()
}

/// A diff's names and values as the store writes them.
fn owned(fields: &billshadow_comparisons::Fields) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use billshadow_reports::json::DiffJson;

    use super::*;

    /// Bodies as stores hold them: the first three from the store commit 1c69bf0 wrote
    /// (`tests/fixtures/stores/store-1c69bf0.db`), the last with every optional field.
    const BODIES: [&str; 4] = [
        r#"{"account_id":"acct-000007","class":"amount_mismatch","scope":"line","charge_code":"compute.hours","key":{"line_type":"usage","period_end":"2026-10-31","period_start":"2026-10-01"},"legacy":{"amount":"15.382","charge_code":"compute.hours","currency":"BHD","customer_id":"cust-00002","description":"Compute","line_type":"usage","partition":"p3","period_end":"2026-10-31","period_start":"2026-10-01","quantity":"1065.6","region":"me-south-1","unit":"h"},"modern":{"amount":"15.380","charge_code":"compute.hours","currency":"BHD","customer_id":"cust-00002","description":"Compute","line_type":"usage","partition":"p3","period_end":"2026-10-31","period_start":"2026-10-01","quantity":"1065.6","region":"me-south-1","unit":"h"},"delta":"-0.002","currency":"BHD","fields":["amount"],"waiver":null,"customer_id":"cust-00002","partition":"p3","region":"me-south-1","legacy_line":36,"modern_line":1}"#,
        r#"{"account_id":"acct-000035","class":"missing_in_modern","scope":"line","charge_code":"promo.welcome10","key":{"line_type":"credit","period_end":"2026-10-31","period_start":"2026-10-01"},"legacy":{"amount":"-440","charge_code":"promo.welcome10","currency":"JPY","customer_id":"cust-00011","description":"Promotion WELCOME10","line_type":"credit","partition":"p3","period_end":"2026-10-31","period_start":"2026-10-01","region":"ap-northeast-1"},"modern":null,"delta":"440","currency":"JPY","fields":["line"],"waiver":null,"customer_id":"cust-00011","partition":"p3","region":"ap-northeast-1","legacy_line":164}"#,
        r#"{"account_id":"acct-000007","class":"total_mismatch","scope":"bill","charge_code":null,"key":{"period_end":"2026-10-31","period_start":"2026-10-01"},"legacy":{"amount":"162.746"},"modern":{"amount":"162.750"},"delta":"0.004","currency":"BHD","fields":["total"],"waiver":null,"customer_id":"cust-00002","partition":"p3","region":"me-south-1"}"#,
        r#"{"account_id":null,"class":"stack_error","scope":"account","charge_code":null,"key":{},"legacy":{"amount":"1.50","attributes":{"tier":"gold"}},"modern":null,"delta":null,"currency":null,"fields":[],"waiver":"w-1","detail":"x\"y"}"#,
    ];

    fn read(body: &str) -> Diff {
        diff_of_value(serde_json::from_str(body).unwrap()).unwrap()
    }

    /// What is stored does not move when the engine's `Diff` does: each body reads back and is
    /// written again byte for byte.
    #[test]
    fn a_stored_diff_round_trips_byte_for_byte() {
        for body in BODIES {
            assert_eq!(diff_body(&read(body)).unwrap(), body);
        }
    }

    /// `report --format jsonl` prints stored bodies as `billshadow.diff/v2` records, so the
    /// stored form is the schema's, byte for byte, for every scope.
    #[test]
    fn a_stored_diff_is_written_as_the_schema_writes_it() {
        for body in BODIES {
            for (scope, _) in SCOPE_NAMES {
                let diff = Diff {
                    scope,
                    ..read(body)
                };
                let stored = diff_body(&diff).unwrap();
                assert_eq!(
                    serde_json::to_string(&DiffJson::from(&diff)).unwrap(),
                    stored
                );
                assert_eq!(read(&stored), diff);
            }
        }
    }

    /// A body that does not read back is an error naming what the store holds, never a default.
    #[test]
    fn a_stored_diff_that_does_not_read_back_is_an_error() {
        let check = |from: &str, to: &str, expected: &str| {
            let body = BODIES[2].replacen(from, to, 1);
            let err = diff_of_value(serde_json::from_str(&body).unwrap()).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        };
        check(
            "total_mismatch",
            "total_mismatched",
            "unknown diff class `total_mismatched`",
        );
        check(
            r#""scope":"bill""#,
            r#""scope":"bills""#,
            "unknown diff scope `bills`",
        );
        check(
            r#""delta":"0.004""#,
            r#""delta":"0,004""#,
            "not a decimal: 0,004",
        );
        check(
            r#""currency":"BHD""#,
            r#""currency":"XYZ1""#,
            "the currency `XYZ1`",
        );
        check(r#""fields":["total"],"#, "", "missing field `fields`");
    }
}
