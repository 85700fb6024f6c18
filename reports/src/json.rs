//! `--format json` (one document) and `--format jsonl` (one diff per line, then the
//! summary). Amounts are always strings.

use std::io::{self, Write};

use billshadow_comparisons::{Causes, Comparison, Diff, Evidence, Fields, Scope, Summary};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::Inputs;
use crate::causes::{SignatureJson, signatures_json};

/// The schema id of the JSON document.
pub const SCHEMA: &str = "billshadow.diff/v2";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    inputs: &'a Inputs,
    summary: &'a Summary,
    /// The causes, ranked.
    signatures: Vec<SignatureJson>,
    signatures_left_off: u64,
    diffs: Vec<DiffJson<'a>>,
}

/// A diff with the id of its signature.
fn with_signature<'a>(diff: &'a Diff, causes: &'a Causes, index: usize) -> DiffJson<'a> {
    DiffJson {
        signature: causes.signature_of(index),
        ..DiffJson::from(diff)
    }
}

/// Writes the whole comparison as one JSON document, its signatures beside the summary and
/// each diff with its signature's id.
pub fn write_document(
    out: &mut dyn Write,
    inputs: &Inputs,
    comparison: &Comparison,
    causes: &Causes,
) -> io::Result<()> {
    let doc = Document {
        schema: SCHEMA,
        inputs,
        summary: &comparison.summary,
        signatures: signatures_json(causes),
        signatures_left_off: causes.left_off,
        diffs: (comparison.diffs.iter().enumerate())
            .map(|(i, d)| with_signature(d, causes, i))
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

#[derive(Serialize)]
struct DiffRecord<'a> {
    record: &'static str,
    #[serde(flatten)]
    diff: DiffJson<'a>,
}

#[derive(Serialize)]
pub struct SignatureRecord<'a> {
    pub record: &'static str,
    #[serde(flatten)]
    pub signature: &'a SignatureJson,
}

#[derive(Serialize)]
struct SummaryRecord<'a> {
    record: &'static str,
    schema: &'static str,
    inputs: &'a Inputs,
    summary: &'a Summary,
}

/// Writes one line per diff (`"record": "diff"`, with its `signature`), one per signature
/// (`"record": "signature"`), then one summary line (`"record": "summary"`), so a reader can
/// stream a very large result.
pub fn write_lines(
    out: &mut dyn Write,
    inputs: &Inputs,
    comparison: &Comparison,
    causes: &Causes,
) -> io::Result<()> {
    for (i, diff) in comparison.diffs.iter().enumerate() {
        serde_json::to_writer(
            &mut *out,
            &DiffRecord {
                record: "diff",
                diff: with_signature(diff, causes, i),
            },
        )?;
        out.write_all(b"\n")?;
    }
    for signature in &signatures_json(causes) {
        let record = SignatureRecord {
            record: "signature",
            signature,
        };
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    let summary = SummaryRecord {
        record: "summary",
        schema: SCHEMA,
        inputs,
        summary: &comparison.summary,
    };
    serde_json::to_writer(&mut *out, &summary)?;
    out.write_all(b"\n")
}

/// A diff as `billshadow.diff/v2` writes it: the schema's own shape, kept apart from the
/// engine's `Diff` so that the engine can change without changing the schema (a change here
/// is a change of the public schema: `reports/SCHEMA.md`). Fields in the schema's order.
#[derive(Debug, Serialize)]
pub struct DiffJson<'a> {
    pub account_id: Option<&'a str>,
    pub class: &'static str,
    pub scope: &'static str,
    pub charge_code: Option<&'a str>,
    pub key: &'a Fields,
    pub legacy: Option<EvidenceJson<'a>>,
    pub modern: Option<EvidenceJson<'a>>,
    /// modern − legacy, written as a string (never a JSON number).
    pub delta: Option<Decimal>,
    pub currency: Option<&'static str>,
    pub fields: &'a [String],
    pub waiver: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modern_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// The id of the diff's signature (its cause), when signatures were found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
}

/// One side's evidence in `billshadow.diff/v2`: its fields, then its attributes when any.
#[derive(Debug, Serialize)]
pub struct EvidenceJson<'a> {
    #[serde(flatten)]
    pub fields: &'a Fields,
    #[serde(skip_serializing_if = "no_attributes")]
    pub attributes: &'a Fields,
}

fn no_attributes(attributes: &&Fields) -> bool {
    attributes.is_empty()
}

/// Diffs written as `billshadow.diff/v2` writes them, for a type that carries the engine's
/// diffs (`view::RunView`, which templates read): they see the schema, not the engine.
pub fn serialize_diffs<S: serde::Serializer>(
    diffs: &[Diff],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(diffs.iter().map(DiffJson::from))
}

impl<'a> From<&'a Diff> for DiffJson<'a> {
    fn from(d: &'a Diff) -> DiffJson<'a> {
        DiffJson {
            account_id: d.account_id.as_deref(),
            class: d.class.as_str(),
            scope: scope_name(d.scope),
            charge_code: d.charge_code.as_deref(),
            key: &d.key,
            legacy: d.legacy.as_ref().map(EvidenceJson::from),
            modern: d.modern.as_ref().map(EvidenceJson::from),
            delta: d.delta,
            currency: d.currency.map(|c| c.code()),
            fields: &d.fields,
            waiver: d.waiver.as_deref(),
            customer_id: d.customer_id.as_deref(),
            partition: d.partition.as_deref(),
            region: d.region.as_deref(),
            legacy_line: d.legacy_line,
            modern_line: d.modern_line,
            detail: d.detail.as_deref(),
            signature: None,
        }
    }
}

impl<'a> From<&'a Evidence> for EvidenceJson<'a> {
    fn from(e: &'a Evidence) -> EvidenceJson<'a> {
        EvidenceJson {
            fields: &e.fields,
            attributes: &e.attributes,
        }
    }
}

/// A scope's name in the schema.
fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Line => "line",
        Scope::Bill => "bill",
        Scope::Invoice => "invoice",
        Scope::Customer => "customer",
        Scope::Account => "account",
    }
}

#[cfg(test)]
mod tests {
    use billshadow_comparisons::{Currency, DiffClass};

    use super::*;

    /// A diff in `billshadow.diff/v2`, with and without its optional fields, written as the
    /// schema says (`reports/SCHEMA.md`), whatever the engine's `Diff` becomes.
    #[test]
    fn a_diff_is_written_in_the_schema() {
        let evidence = |attributes: &[(&str, &str)]| Evidence {
            fields: Fields::from([("amount", "1.50")]),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let bare = Diff::new(DiffClass::TotalMismatch, Scope::Bill);
        let full = Diff {
            account_id: Some("acct-1".to_owned()),
            class: DiffClass::AmountMismatch,
            charge_code: Some("sku".to_owned()),
            key: Fields::from([("period_start", "2026-10-01")]),
            legacy: Some(evidence(&[])),
            modern: Some(evidence(&[("region", "eu")])),
            delta: Some(Decimal::new(-150, 2)),
            currency: Some("USD".parse::<Currency>().unwrap()),
            fields: vec!["amount".to_owned()],
            waiver: Some("w-1".to_owned()),
            customer_id: Some("c".to_owned()),
            partition: Some("p0".to_owned()),
            region: Some("r".to_owned()),
            legacy_line: Some(2),
            modern_line: Some(3),
            detail: Some("x\"y".to_owned()),
            ..bare.clone()
        };
        let written = |d: &Diff| serde_json::to_string(&DiffJson::from(d)).unwrap();
        assert_eq!(
            written(&bare),
            r#"{"account_id":null,"class":"total_mismatch","scope":"bill","charge_code":null,"key":{},"legacy":null,"modern":null,"delta":null,"currency":null,"fields":[],"waiver":null}"#
        );
        assert_eq!(
            written(&full),
            r#"{"account_id":"acct-1","class":"amount_mismatch","scope":"bill","charge_code":"sku","key":{"period_start":"2026-10-01"},"legacy":{"amount":"1.50"},"modern":{"amount":"1.50","attributes":{"region":"eu"}},"delta":"-1.50","currency":"USD","fields":["amount"],"waiver":"w-1","customer_id":"c","partition":"p0","region":"r","legacy_line":2,"modern_line":3,"detail":"x\"y"}"#
        );
        // Every scope by its name in the schema (the stored form is held to these documents
        // byte for byte by the store's own test, `store::diff`).
        for (scope, name) in [
            (Scope::Line, "line"),
            (Scope::Bill, "bill"),
            (Scope::Invoice, "invoice"),
            (Scope::Customer, "customer"),
            (Scope::Account, "account"),
        ] {
            for diff in [&bare, &full] {
                let moved = Diff {
                    scope,
                    ..diff.clone()
                };
                let scoped = format!(r#""scope":"{name}""#);
                assert_eq!(
                    written(&moved),
                    written(diff).replacen(r#""scope":"bill""#, &scoped, 1)
                );
            }
        }
    }
}
