//! The file adapter: reads CSV, JSON lines or a JSON document through a format mapping into
//! a [`LineStore`], streaming.
//!
//! Bad input never panics and is never half-read silently: a bad row is an error naming the
//! file, the line, the column and what was expected; with a bad-row allowance it is written
//! to a quarantine file instead and counted.
//!
//! One concern per module, arrows pointing down the list:
//! - `input`: an input as delivered — `-`, files, a directory or a glob of parts — each
//!   part opened and decoded by its first bytes (gzip, zstd), bounded against bombs;
//! - `csv_reader`, `json_reader`, `parquet_reader`: read records (CSV through `CsvGuard`, JSON lines through
//!   `read_json_line`, both bounded while read) and hand each to the sink;
//! - `sink`: the one path of every record — filter, convert, push, or quarantine — and the
//!   read's counts;
//! - `compile`: the mapping resolved against a header or JSON paths, once per file;
//! - `convert`: a record's values into a line's canonical values; `dates` for dates;
//! - `record`: a CSV row or JSON record as the mapping reads it;
//! - `error`: bad rows located by file, line, column and column name.

mod compile;
mod convert;
mod csv_reader;
mod dates;
mod error;
mod input;
mod json_reader;
mod parquet_reader;
mod record;
mod sink;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use billshadow_comparisons::LineStore;

use crate::limits::PREALLOCATE_BYTES_MAX;
use crate::mapping::{InputKind, Mapping};

pub use crate::limits::{FIELD_BYTES_MAX, JSON_DOCUMENT_BYTES_MAX};
use csv_reader::{PartHeader, read_csv};
pub use error::{ReadError, RowError};
pub use input::{Encoding, Input, STDIN_ORIGIN};
use input::{Opened, open_part};
use json_reader::{JsonInput, read_json};
use sink::Sink;
pub use sink::{ReadOptions, ReadStats, Spill};

/// Reads a file through a mapping (gzip and zstd decoded, Parquet read, by its first bytes).
pub fn read_path(
    path: &Path,
    mapping: &Mapping,
    options: ReadOptions<'_>,
) -> Result<(LineStore, ReadStats), ReadError> {
    read_input(&Input::file(path), mapping, options, None)
}

/// Reads every part of an input, in order, into one store: each part decoded by its first
/// bytes, every CSV or Parquet part's header the first part's, bad rows located by the part
/// and its own line. The raw bytes read are added to `progress` as they are read.
pub fn read_input(
    input: &Input,
    mapping: &Mapping,
    options: ReadOptions<'_>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(LineStore, ReadStats), ReadError> {
    let mut size_hint = input.stored_bytes().unwrap_or(0) as usize;
    if let Some(spill) = &options.spill {
        // Lines held in batches: no more room than a batch.
        size_hint = size_hint.min(spill.threshold());
    }
    let mut sink = new_sink(input.name(), size_hint, options);
    let mut first: PartHeader = None;
    match input {
        Input::Stdin { head } => {
            sink.origin = STDIN_ORIGIN.to_owned();
            let opened = open_part(STDIN_ORIGIN, None, Some(head.clone()), progress.clone())?;
            read_part(opened, mapping, &mut sink, &mut first, progress.as_ref())?;
        }
        Input::Parts { parts, .. } => {
            for part in parts {
                sink.origin = part.display().to_string();
                let opened = open_part(&sink.origin, Some(part), None, progress.clone())?;
                read_part(opened, mapping, &mut sink, &mut first, progress.as_ref())?;
                sink.line_offset += std::mem::take(&mut sink.part_lines);
            }
        }
    }
    Ok((sink.store, sink.stats))
}

fn read_part(
    opened: Opened,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
    first: &mut PartHeader,
    progress: Option<&Arc<AtomicU64>>,
) -> Result<(), ReadError> {
    match (opened, mapping.input) {
        (Opened::Parquet(file), _) => {
            parquet_reader::read_parquet(file, mapping, sink, first, progress)
        }
        (Opened::Text(reader), InputKind::Csv) => read_csv(reader, mapping, sink, first),
        (Opened::Text(reader), InputKind::Jsonl) => {
            read_json(reader, mapping, JsonInput::Lines, sink)
        }
        (Opened::Text(reader), InputKind::Json) => {
            read_json(reader, mapping, JsonInput::Document, sink)
        }
    }
}

/// The first bytes of an input's first part, decoded (at most `max` of them), to tell its
/// format; for Parquet, its column names instead.
pub fn input_head(input: &Input, max: usize) -> Result<Head, ReadError> {
    let (origin, opened) = match input {
        Input::Stdin { head } => (
            STDIN_ORIGIN.to_owned(),
            input::open_head(STDIN_ORIGIN, head)?,
        ),
        Input::Parts { parts, name } => {
            let part = parts.first().ok_or_else(|| ReadError::Parts {
                origin: name.clone(),
                message: "no parts".to_owned(),
            })?;
            let origin = part.display().to_string();
            let opened = open_part(&origin, Some(part), None, None)?;
            (origin, opened)
        }
    };
    match opened {
        Opened::Text(reader) => {
            let mut head = Vec::new();
            // A head cut short by truncated compressed data is still a head.
            let mut reader = reader.take(max as u64);
            let mut chunk = [0u8; 1 << 14];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            Ok(Head::Text(head))
        }
        Opened::Parquet(file) => parquet_reader::columns(file, &origin).map(Head::Columns),
    }
}

/// What tells an input's format: its first bytes, or a Parquet file's column names.
#[derive(Debug, Clone)]
pub enum Head {
    Text(Vec<u8>),
    Columns(Vec<String>),
}

fn new_sink<'q>(origin: &str, size_hint: usize, options: ReadOptions<'q>) -> Sink<'q> {
    // Canonical CSV keeps nearly all its bytes as text; a store sized to the file (up to a
    // bound: a size is a hint, not a promise) rarely has to double.
    let preallocate = size_hint.min(PREALLOCATE_BYTES_MAX);
    Sink {
        origin: origin.to_owned(),
        store: LineStore::with_capacity(preallocate, preallocate / 64),
        stats: ReadStats::default(),
        options,
        first_bad: None,
        line_offset: 0,
        part_lines: 0,
    }
}

/// Reads from any reader; `origin` names it in errors, `size_hint` sizes the store.
pub fn read_from(
    origin: &str,
    reader: impl Read,
    size_hint: usize,
    mapping: &Mapping,
    options: ReadOptions<'_>,
) -> Result<(LineStore, ReadStats), ReadError> {
    let mut sink = new_sink(origin, size_hint, options);
    match mapping.input {
        InputKind::Csv => read_csv(reader, mapping, &mut sink, &mut None)?,
        InputKind::Jsonl => read_json(reader, mapping, JsonInput::Lines, &mut sink)?,
        InputKind::Json => read_json(reader, mapping, JsonInput::Document, &mut sink)?,
    }
    Ok((sink.store, sink.stats))
}

#[cfg(test)]
mod tests {
    use billshadow_comparisons::Field;

    use super::dates::write_date;
    use super::*;
    use crate::mapping::DateFormat;

    fn check_date(value: &str, format: DateFormat, shift: i64, expected: Result<&str, &str>) {
        let mut out = String::new();
        let got =
            write_date(value, &format, shift, false, &mut out).map(|()| out.as_str().to_owned());
        match expected {
            Ok(e) => assert_eq!(got.as_deref(), Ok(e), "{value}"),
            Err(fragment) => assert!(
                got.as_ref().is_err_and(|m| m.contains(fragment)),
                "{value}: {got:?}"
            ),
        }
    }

    /// Reads `input` through a mapping made of `fields` (TOML lines under `[fields]`, after
    /// `head`, lines above it) and renders each line as `field=value` pairs for `shown`.
    fn read(input_kind: &str, head: &str, fields: &str, input: &str, shown: &[Field]) -> String {
        let toml = format!("name = \"t\"\ninput = \"{input_kind}\"\n{head}\n[fields]\n{fields}");
        let mapping = match Mapping::from_toml("t.toml", &toml) {
            Ok(m) => m,
            Err(e) => return format!("mapping error: {e}"),
        };
        match read_from("in", input.as_bytes(), 0, &mapping, ReadOptions::default()) {
            Err(e) => format!("read error: {e}"),
            Ok((store, _)) => store
                .lines()
                .map(|line| {
                    let mut out: Vec<String> = shown
                        .iter()
                        .map(|f| format!("{}={}", f.name(), line.get(*f)))
                        .collect();
                    out.extend(line.attributes().map(|(n, v)| format!("@{n}={v}")));
                    out.join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    const CSV_FIELDS: &str = r#"
account_id = "acct"
period_start = "start"
period_end = "end"
charge_code = "sku"
currency = "cur"
"#;

    fn check_amount(amount: &str, cur: &str, raw: &str, expected: &str) {
        let fields = format!("{CSV_FIELDS}amount = {amount}");
        let input = format!("acct,start,end,sku,cur,raw\na,2026-10-01,2026-10-31,s,{cur},{raw}\n");
        let got = read(
            "csv",
            "attributes = \"none\"",
            &fields,
            &input,
            &[Field::Amount],
        );
        assert_eq!(got, expected, "{amount} {cur} {raw}");
    }

    #[test]
    fn amounts_in_the_minor_unit_of_their_own_currency() {
        let minor = r#"{ column = "raw", scale = "minor" }"#;
        check_amount(minor, "USD", "1000", "amount=10.00");
        check_amount(minor, "JPY", "1000", "amount=1000");
        check_amount(minor, "BHD", "1005", "amount=1.005");
        check_amount(minor, "EUR", "-250", "amount=-2.50");
        // Stripe counts ISK in hundredths although ISO 4217 gives it no decimals.
        let isk = r#"{ column = "raw", scale = "minor", minor_units = { ISK = 2 } }"#;
        check_amount(isk, "ISK", "50000", "amount=500.00");
        check_amount(isk, "USD", "50000", "amount=500.00");
        check_amount(minor, "ISK", "500", "amount=500");
        check_amount(
            minor,
            "USD",
            "12.5x",
            "read error: in, line 2, column 6 (`raw`): `12.5x` is not a decimal number (expected digits with an optional `.`, sign and exponent, such as 12.50 or -1.5E+2)",
        );
        let bad = r#"{ column = "raw", scale = "minor", minor_units = { isk = 2 } }"#;
        assert!(check_error(bad).contains("minor_units: `isk` is not an ISO 4217 currency code"));
        let bad = r#"{ column = "raw", scale = "cents", minor_units = { ISK = 2 } }"#;
        assert!(check_error(bad).contains("`minor_units` goes with `scale = \"minor\"` only"));
    }

    fn check_error(amount: &str) -> String {
        let fields = format!("{CSV_FIELDS}amount = {amount}");
        read("csv", "", &fields, "x\n", &[])
    }

    #[test]
    fn null_values_read_as_empty() {
        let fields = format!(
            "{CSV_FIELDS}amount = \"raw\"\nregion = {{ column = \"region\", default = \"global\" }}"
        );
        let input = "acct,start,end,sku,cur,raw,region,note\na,2026-10-01,2026-10-31,s,USD,1,NULL,NULL\na,2026-10-01,2026-10-31,s,USD,2,,x\n";
        let got = read(
            "csv",
            "null_values = [\"NULL\"]",
            &fields,
            input,
            &[Field::Region],
        );
        assert_eq!(got, "region=global\nregion=global @note=x");
        let got = read("csv", "", &fields, input, &[Field::Region]);
        assert_eq!(got, "region=NULL @note=NULL\nregion=global @note=x");
    }

    #[test]
    fn characters_removed_before_reading() {
        let amount = r#"{ column = "raw", remove = "$, " }"#;
        check_amount(amount, "USD", "\"$10,000.50 \"", "amount=10000.50");
        check_amount(
            "\"raw\"",
            "USD",
            "\"$10,000.50\"",
            "read error: in, line 2, column 6 (`raw`): `$10,000.50` is not a decimal number (expected digits with an optional `.`, sign and exponent, such as 12.50 or -1.5E+2)",
        );
    }

    #[test]
    fn attributes_renamed() {
        let fields = format!("{CSV_FIELDS}amount = \"raw\"");
        let input = "acct,start,end,sku,cur,raw,lineItem/ResourceId,other\na,2026-10-01,2026-10-31,s,USD,1,i-1,z\n";
        let head = "attributes = { resource = \"lineItem/ResourceId\" }";
        assert_eq!(read("csv", head, &fields, input, &[]), "@resource=i-1");
        let head = "attributes = [\"other\"]";
        assert_eq!(read("csv", head, &fields, input, &[]), "@other=z");
    }

    fn check_end(end: &str, start: &str, format: &str, expected: &str) {
        let fields = format!(
            "account_id = \"acct\"\ncharge_code = \"sku\"\ncurrency = {{ constant = \"USD\" }}\namount = {{ constant = \"1\" }}\nperiod_start = {{ column = \"start\", date_format = \"{format}\" }}\nperiod_end = {{ column = \"end\", date_format = \"{format}\", exclusive_end = true }}"
        );
        let input = format!("acct,sku,start,end\na,s,{start},{end}\n");
        let got = read(
            "csv",
            "",
            &fields,
            &input,
            &[Field::PeriodStart, Field::PeriodEnd],
        );
        assert_eq!(got, expected, "{start} {end} {format}");
    }

    #[test]
    fn exclusive_ends() {
        let month = "period_start=2026-10-01 period_end=2026-10-31";
        check_end("2026-11-01", "2026-10-01", "iso", month);
        check_end("2026-11-01T00:00:00Z", "2026-10-01T00:00:00Z", "iso", month);
        check_end("2026-11-01T00:00:00.000+02:00", "2026-10-01", "iso", month);
        check_end("2026-11-01 00:00:00", "2026-10-01", "iso", month);
        check_end("2026-10-31T23:59:59Z", "2026-10-01", "iso", month);
        check_end("2026-10-31T12:00:00Z", "2026-10-01", "iso", month);
        // A charge at one instant: its end equals its start, and stays on that day.
        let day = "period_start=2026-10-15 period_end=2026-10-15";
        check_end("2026-10-15", "2026-10-15", "iso", day);
        check_end("2026-10-15T00:00:00Z", "2026-10-15T00:00:00Z", "iso", day);
        // Unix seconds: 2026-11-01T00:00:00Z is 1793491200.
        check_end("1793491200", "1790812800", "unix", month);
        check_end("1793491199", "1790812800", "unix", month);
        check_end("1793491200000", "1790812800000", "unix_ms", month);
        check_end("1792065600", "1792065600", "unix", day);
        check_end("11/01/2026", "10/01/2026", "%m/%d/%Y", month);
    }

    #[test]
    fn exclusive_end_is_for_ends_only() {
        let fields = format!(
            "{CSV_FIELDS}amount = {{ column = \"raw\" }}\nusage_start = {{ column = \"u\", exclusive_end = true }}"
        );
        assert!(
            read("csv", "", &fields, "x\n", &[])
                .contains("`exclusive_end` applies to period_end and usage_end only"),
        );
        let fields = CSV_FIELDS.replace(
            "period_end = \"end\"",
            "period_end = { column = \"end\", exclusive_end = true, shift_days = -1 }",
        );
        let fields = format!("{fields}amount = \"raw\"");
        assert!(
            read("csv", "", &fields, "x\n", &[])
                .contains("give `exclusive_end` or `shift_days`, not both")
        );
    }

    #[test]
    fn rows_of_a_crlf_file_are_located_on_their_own_line() {
        let fields = format!("{CSV_FIELDS}amount = \"raw\"");
        let cases = [
            (
                "a,2026-10-01,2026-10-31,s,USD,x",
                "read error: in, line 3, column 6 (`raw`)",
            ),
            (
                "a,2026-10-01",
                "read error: in, line 3: the row has 2 fields",
            ),
        ];
        for (ending, name) in [("\n", "lf"), ("\r\n", "crlf")] {
            for (bad_row, expected) in cases {
                let input = [
                    "acct,start,end,sku,cur,raw",
                    "a,2026-10-01,2026-10-31,s,USD,1",
                    bad_row,
                    "",
                ]
                .join(ending);
                let got = read("csv", "", &fields, &input, &[]);
                assert!(got.starts_with(expected), "{name}: {got}");
            }
        }
    }

    #[test]
    fn dates() {
        check_date("2026-10-01", DateFormat::Iso, 0, Ok("2026-10-01"));
        check_date("2026-10-01T00:00:00Z", DateFormat::Iso, 0, Ok("2026-10-01"));
        check_date(
            "2026-11-01T00:00:00Z",
            DateFormat::Iso,
            -1,
            Ok("2026-10-31"),
        );
        check_date("2026-02-30", DateFormat::Iso, 0, Err("is not a date"));
        check_date("2026-1-01", DateFormat::Iso, 0, Err("is not a date"));
        check_date("2026-10-01x", DateFormat::Iso, 0, Err("is not a date"));
        check_date(
            "10/31/2026",
            DateFormat::Pattern("%m/%d/%Y".into()),
            0,
            Ok("2026-10-31"),
        );
        check_date("1700000000", DateFormat::UnixSeconds, 0, Ok("2023-11-14"));
        check_date("1700000000000", DateFormat::UnixMillis, 0, Ok("2023-11-14"));
        check_date(
            "soon",
            DateFormat::UnixSeconds,
            0,
            Err("not a Unix timestamp"),
        );
    }

    const JSONL_FIELDS: &str = r#"
account_id = "a"
period_start = "s"
period_end = "e"
charge_code = "c"
currency = "cur"
amount = "amt"
"#;

    /// A JSON line with `charge_code` set to `charge_code` (raw JSON text), after a good line.
    fn read_jsonl_charge_code(charge_code: &str) -> String {
        let good = r#"{"a":"x","s":"2026-10-01","e":"2026-10-31","c":"k","cur":"USD","amt":"1"}"#;
        let input = format!(
            "{good}\n{{\"a\":\"x\",\"s\":\"2026-10-01\",\"e\":\"2026-10-31\",\"c\":{charge_code},\"cur\":\"USD\",\"amt\":\"1\"}}\n"
        );
        read("jsonl", "", JSONL_FIELDS, &input, &[Field::ChargeCode])
    }

    #[test]
    fn json_lines_are_bounded_per_field_and_per_line_as_csv_is() {
        let at = |n: usize| format!("\"{}\"", "x".repeat(n));
        // Within the limit, however escaped (six bytes for one here), up to what a line can
        // carry (65,535 bytes of text).
        let escaped = format!("\"{}\"", "\\u0041".repeat(60_000));
        assert_eq!(
            read_jsonl_charge_code(&escaped),
            format!("charge_code=k\ncharge_code={}", "A".repeat(60_000))
        );
        // Over it once unescaped: the exact check, located by the field's path.
        assert_eq!(
            read_jsonl_charge_code(&at(FIELD_BYTES_MAX + 1)),
            "read error: in, line 2, field `c`: the field is 65537 bytes long; the limit is 65536"
        );
        // Far over it: refused while the line is read, by line and column, before it is kept.
        assert_eq!(
            read_jsonl_charge_code(&at(64 << 20)),
            "read error: in, line 2, column 48: the value is longer than 65536 bytes (the limit); refused while reading"
        );
        let number = "1".repeat(7 * FIELD_BYTES_MAX);
        assert!(
            read_jsonl_charge_code(&number)
                .starts_with("read error: in, line 2, column 48: the value is longer than")
        );
        // A line of more values than a CSV record may have fields, each short.
        let values = format!("[{}0]", "0,".repeat(crate::limits::RECORD_FIELDS_MAX));
        assert_eq!(
            read_jsonl_charge_code(&values),
            "read error: in, line 2: the line has more than 100000 values (the limit); refused while reading"
        );
        // A line longer than a CSV record may be, of values each within the limit.
        let long = format!("[{}\"\"]", format!("{},", at(60_000)).repeat(300));
        assert_eq!(
            read_jsonl_charge_code(&long),
            "read error: in, line 2: the line is longer than 16777216 bytes (the limit); refused while reading"
        );
    }
}
