//! Parquet reading, for the formats delivered as Parquet (FOCUS, AWS CUR 2.0): the file's
//! top-level columns are the header, each row a record whose values are written as text the
//! way a CSV export writes them, then taken by the sink like a CSV row.
//!
//! Values as text: strings as they are; integers and exact decimals (DECIMAL) exactly;
//! doubles as the shortest decimal that reads back as the same double (what the writer
//! converted from text); dates as `YYYY-MM-DD`; timestamps as RFC 3339 in UTC; nested values
//! (maps, lists, structs) as JSON; a null as an empty field.
//!
//! A row is located as in the file's CSV twin: the header is line 1, the first row line 2.
//!
//! Bounded before reading: the number of columns (`RECORD_FIELDS_MAX`) and each column
//! chunk's declared decompressed size (the ratio and `PARQUET_CHUNK_BYTES_MAX`), from the
//! file's index; each value's text (`FIELD_BYTES_MAX`) as it is read.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::basic::{LogicalType, TimeUnit};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as Value;

use crate::limits::{
    DECOMPRESSION_FLOOR_BYTES, DECOMPRESSION_RATIO_MAX, FIELD_BYTES_MAX, PARQUET_CHUNK_BYTES_MAX,
    RECORD_FIELDS_MAX,
};
use crate::mapping::{InputKind, Mapping};

use super::compile::Compiled;
use super::convert::Scratch;
use super::csv_reader::{PartHeader, as_read, check_part_header};
use super::error::{ReadError, RowError};
use super::record::Record;
use super::sink::Sink;

/// Reads a Parquet file's rows into the sink. A panic inside the Parquet crate on a malformed
/// file is caught and said as the file being malformed.
pub(super) fn read_parquet(
    file: std::fs::File,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
    first: &mut PartHeader,
    progress: Option<&Arc<AtomicU64>>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    if mapping.input != InputKind::Csv {
        return Err(malformed(
            &origin,
            format!(
                "the file is Parquet, but the format `{}` reads JSON; Parquet is read through the CSV formats (focus, aws-cur2, …)",
                mapping.name
            ),
        ));
    }
    let stored = file.metadata().map(|m| m.len()).unwrap_or(0);
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        read_rows(file, stored, mapping, sink, first, progress)
    })) {
        Ok(result) => result,
        Err(_) => Err(malformed(
            &origin,
            "the file is not a well-formed Parquet file (the reader gave up on it)".to_owned(),
        )),
    }
}

/// A Parquet file's top-level column names: what tells its format.
pub(super) fn columns(file: std::fs::File, origin: &str) -> Result<Vec<String>, ReadError> {
    let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
        SerializedFileReader::new(file).map(|reader| header_of(&reader))
    }));
    match read {
        Ok(Ok(header)) => Ok(header),
        Ok(Err(e)) => Err(malformed(
            origin,
            format!("the file is not a readable Parquet file ({e})"),
        )),
        Err(_) => Err(malformed(
            origin,
            "the file is not a well-formed Parquet file (the reader gave up on it)".to_owned(),
        )),
    }
}

fn header_of(reader: &SerializedFileReader<std::fs::File>) -> Vec<String> {
    reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect()
}

fn malformed(origin: &str, message: String) -> ReadError {
    ReadError::Decode {
        origin: origin.to_owned(),
        format: "Parquet",
        message,
    }
}

fn read_rows(
    file: std::fs::File,
    stored: u64,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
    first: &mut PartHeader,
    progress: Option<&Arc<AtomicU64>>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let reader = SerializedFileReader::new(file).map_err(|e| {
        malformed(
            &origin,
            format!("the file is not a readable Parquet file ({e})"),
        )
    })?;
    let metadata = reader.metadata();
    let header = header_of(&reader);
    if header.len() > RECORD_FIELDS_MAX {
        return Err(malformed(
            &origin,
            format!(
                "the file has {} columns; the limit is {RECORD_FIELDS_MAX}",
                header.len()
            ),
        ));
    }
    refuse_bombs(&origin, metadata)?;
    if header.is_empty() {
        return Err(ReadError::Empty {
            origin,
            expected: "a Parquet schema with columns".to_owned(),
        });
    }
    check_part_header(&origin, &header, first)?;
    let nanos = nanos_columns(metadata);
    let total_rows = metadata.file_metadata().num_rows().max(1) as u64;
    let compiled = Compiled::new(mapping, Some(&header), &origin)?;
    let mut scratch = Scratch::new();
    let mut record = csv::ByteRecord::new();
    let mut text = String::new();
    let mut reported = 0u64;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| malformed(&origin, format!("cannot read its rows ({e})")))?;
    for (index, row) in rows.enumerate() {
        // Numbered as in the file's CSV twin: the header is line 1, the first row line 2.
        let line = index as u64 + 2;
        sink.part_lines = line - 1;
        let row = row.map_err(|e| {
            malformed(
                &origin,
                format!(
                    "row {} cannot be read ({e}); the file is corrupt or truncated",
                    line - 1
                ),
            )
        })?;
        row_as_record(&row, &nanos, &origin, line, &header, &mut record, &mut text)?;
        let view = Record::Csv(
            &record,
            std::str::from_utf8(record.as_slice()).ok(),
            &mapping.null_values,
        );
        let raw = || as_read(&record, b',');
        sink.take(&compiled, &view, &mut scratch, line, Some(&header), raw)?;
        if let Some(progress) = progress
            && line % 4096 == 0
        {
            let done = stored.saturating_mul(line - 1) / total_rows;
            progress.fetch_add(done - reported, Ordering::Relaxed);
            reported = done;
        }
    }
    if let Some(progress) = progress {
        progress.fetch_add(stored.saturating_sub(reported), Ordering::Relaxed);
    }
    Ok(())
}

/// Refuses a file whose column chunks declare they decompress past the limits, from its
/// index, before any page is read.
fn refuse_bombs(origin: &str, metadata: &ParquetMetaData) -> Result<(), ReadError> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let compressed = column.compressed_size().max(0) as u64;
            let declared = column.uncompressed_size().max(0) as u64;
            let bomb = declared > PARQUET_CHUNK_BYTES_MAX
                || (declared > DECOMPRESSION_FLOOR_BYTES
                    && declared / compressed.max(1) > DECOMPRESSION_RATIO_MAX);
            if bomb {
                return Err(malformed(
                    origin,
                    format!(
                        "refused as a decompression bomb: column `{}` of row group {} declares {declared} bytes decompressed from {compressed} (the limits: {DECOMPRESSION_RATIO_MAX} times past the first {DECOMPRESSION_FLOOR_BYTES}, {PARQUET_CHUNK_BYTES_MAX} a column chunk)",
                        column.column_path(),
                        g + 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Which top-level columns are TIMESTAMP(NANOS): the record reader gives them as their bare
/// integer (pyarrow's default for nanosecond data), written as timestamps here.
fn nanos_columns(metadata: &ParquetMetaData) -> Vec<bool> {
    metadata
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| {
            matches!(
                f.get_basic_info().logical_type_ref(),
                Some(LogicalType::Timestamp {
                    unit: TimeUnit::NANOS,
                    ..
                })
            )
        })
        .collect()
}

/// A row's values as the text fields of a CSV record, each bounded by `FIELD_BYTES_MAX`.
fn row_as_record(
    row: &parquet::record::Row,
    nanos: &[bool],
    origin: &str,
    line: u64,
    header: &[String],
    record: &mut csv::ByteRecord,
    text: &mut String,
) -> Result<(), ReadError> {
    record.clear();
    for (column, (_, value)) in row.get_column_iter().enumerate() {
        text.clear();
        let value = match value {
            Value::Long(ns) if nanos.get(column) == Some(&true) => {
                &Value::TimestampMicros(ns.div_euclid(1000))
            }
            other => other,
        };
        write_value(value, text)
            .map_err(|message| row_error(origin, line, column, header, message.to_owned()))?;
        if text.len() > FIELD_BYTES_MAX {
            return Err(row_error(
                origin,
                line,
                column,
                header,
                format!(
                    "the value is {} bytes long; the limit is {FIELD_BYTES_MAX}",
                    text.len()
                ),
            ));
        }
        record.push_field(text.as_bytes());
    }
    Ok(())
}

fn row_error(
    origin: &str,
    line: u64,
    column: usize,
    header: &[String],
    message: String,
) -> ReadError {
    ReadError::Row(Box::new(RowError {
        origin: origin.to_owned(),
        line,
        column: Some(column + 1),
        column_name: header.get(column).cloned(),
        message,
    }))
}

/// One Parquet value as an export writes it in text (see the module's documentation).
fn write_value(value: &Value, out: &mut String) -> Result<(), &'static str> {
    use std::fmt::Write;
    let _ = match value {
        Value::Null => Ok(()),
        Value::Bool(v) => write!(out, "{v}"),
        Value::Byte(v) => write!(out, "{v}"),
        Value::Short(v) => write!(out, "{v}"),
        Value::Int(v) => write!(out, "{v}"),
        Value::Long(v) => write!(out, "{v}"),
        Value::UByte(v) => write!(out, "{v}"),
        Value::UShort(v) => write!(out, "{v}"),
        Value::UInt(v) => write!(out, "{v}"),
        Value::ULong(v) => write!(out, "{v}"),
        // Rust writes the shortest decimal that reads back as the same float, never with an
        // exponent: 0.1 stays `0.1`.
        Value::Float16(v) => write!(out, "{}", f32::from(*v)),
        Value::Float(v) => write!(out, "{v}"),
        Value::Double(v) => write!(out, "{v}"),
        Value::Decimal(d) => {
            let bytes = d.data();
            if bytes.is_empty() || bytes.len() > 16 || !(0..=28).contains(&d.scale()) {
                return Err("a DECIMAL value out of the range an amount can take (28 digits)");
            }
            let mut padded = [if bytes[0] & 0x80 != 0 { 0xff } else { 0 }; 16];
            padded[16 - bytes.len()..].copy_from_slice(bytes);
            let unscaled = i128::from_be_bytes(padded);
            let decimal =
                rust_decimal::Decimal::try_from_i128_with_scale(unscaled, d.scale() as u32)
                    .map_err(|_| "a DECIMAL value out of the range an amount can take")?;
            write!(out, "{decimal}")
        }
        Value::Str(s) => {
            out.push_str(s);
            Ok(())
        }
        Value::Bytes(b) => {
            let s = b
                .as_utf8()
                .map_err(|_| "binary data that is not UTF-8 text")?;
            out.push_str(s);
            Ok(())
        }
        Value::Date(days) => {
            let date = chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
                .ok_or("a DATE out of range")?;
            write!(out, "{}", date.format("%Y-%m-%d"))
        }
        Value::TimestampMillis(ms) => {
            let t =
                chrono::DateTime::from_timestamp_millis(*ms).ok_or("a TIMESTAMP out of range")?;
            write!(
                out,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        }
        Value::TimestampMicros(us) => {
            let t =
                chrono::DateTime::from_timestamp_micros(*us).ok_or("a TIMESTAMP out of range")?;
            write!(
                out,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        }
        Value::TimeMillis(_) | Value::TimeMicros(_) => write!(out, "{value}"),
        Value::Group(_) | Value::ListInternal(_) | Value::MapInternal(_) => {
            write!(out, "{}", value.to_json_value())
        }
    };
    Ok(())
}
