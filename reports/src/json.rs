//! `--format json` (one document) and `--format jsonl` (one diff per line, then the
//! summary). Amounts are always strings.

use std::io::{self, Write};

use billshadow_comparisons::{Comparison, Diff, Summary};
use serde::Serialize;

use crate::Inputs;

/// The schema id of the JSON document.
pub const SCHEMA: &str = "billshadow.diff/v1";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    inputs: &'a Inputs,
    summary: &'a Summary,
    diffs: &'a [Diff],
}

/// Writes the whole comparison as one JSON document.
pub fn write_document(
    out: &mut dyn Write,
    inputs: &Inputs,
    comparison: &Comparison,
) -> io::Result<()> {
    let doc = Document {
        schema: SCHEMA,
        inputs,
        summary: &comparison.summary,
        diffs: &comparison.diffs,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

#[derive(Serialize)]
struct DiffRecord<'a> {
    record: &'static str,
    #[serde(flatten)]
    diff: &'a Diff,
}

#[derive(Serialize)]
struct SummaryRecord<'a> {
    record: &'static str,
    schema: &'static str,
    inputs: &'a Inputs,
    summary: &'a Summary,
}

/// Writes one line per diff (`"record": "diff"`), then one summary line
/// (`"record": "summary"`), so a reader can stream a very large result.
pub fn write_lines(
    out: &mut dyn Write,
    inputs: &Inputs,
    comparison: &Comparison,
) -> io::Result<()> {
    for diff in &comparison.diffs {
        serde_json::to_writer(
            &mut *out,
            &DiffRecord {
                record: "diff",
                diff,
            },
        )?;
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
