//! CSV reading: the header checked (UTF-8, duplicates, required columns), every record read
//! through `CsvGuard` (fields and records bounded while read) and located by its line.

use std::io::{BufReader, Read};
use std::rc::Rc;

use crate::guard::{self, CsvGuard};
use crate::lines::{LineCounter, Lines};
use crate::mapping::Mapping;

use super::compile::Compiled;
use super::convert::Scratch;
use super::error::{ReadError, RowError, read_failed};
use super::record::Record;
use super::sink::Sink;

/// Reads a CSV file: its header, then every record, each taken by the sink.
pub(super) fn read_csv(
    reader: impl Read,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
    first: &mut PartHeader,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let reader = BufReader::with_capacity(1 << 16, reader);
    // A record's line from its byte offset: right with LF, CRLF, CR alone, a file switching
    // between them and blank lines (`lines.rs`).
    let (reader, lines) = LineCounter::new(reader);
    let record_start = guard::record_start();
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(mapping.delimiter)
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(CsvGuard::new(
            reader,
            mapping.delimiter,
            Rc::clone(&record_start),
        ));
    let header_record = match csv.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(&origin, e, &lines)),
    };
    // The guard follows a record byte by byte only once it grows long; it learns where each
    // record starts from here.
    let next_record = |csv: &csv::Reader<_>| {
        let p = csv.position();
        record_start.set((p.byte(), lines.peek_line_at(p.byte())));
    };
    next_record(&csv);
    let header = read_header(&origin, &header_record, mapping)?;
    check_part_header(&origin, &header, first)?;
    let compiled = Compiled::new(mapping, Some(&header), &origin)?;
    let mut scratch = Scratch::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let read = csv.read_byte_record(&mut record);
        next_record(&csv);
        match read {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
                // The rows after the header so far, a quoted line break in a field counted.
                let breaks = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
                sink.part_lines = (line + breaks).saturating_sub(1);
                let view = Record::Csv(
                    &record,
                    std::str::from_utf8(record.as_slice()).ok(),
                    &mapping.null_values,
                );
                let raw = || as_read(&record, mapping.delimiter);
                sink.take(&compiled, &view, &mut scratch, line, Some(&header), raw)?;
            }
            // The reader resynchronises at the next record; a field-count error does not
            // leave it mid-record.
            Err(e) => unreadable_record(e, &record, mapping.delimiter, &header, &lines, sink)?,
        }
    }
}

/// The first part's name and header, once a part of the input has been read: every later
/// part must have the same columns in the same order.
pub(super) type PartHeader = Option<(String, Vec<String>)>;

/// Checks a part's header against the first part's (or makes it the first); the error names
/// both files and the first column that differs.
pub(super) fn check_part_header(
    origin: &str,
    header: &[String],
    first: &mut PartHeader,
) -> Result<(), ReadError> {
    let Some((first_origin, first_header)) = first else {
        *first = Some((origin.to_owned(), header.to_vec()));
        return Ok(());
    };
    if first_header.as_slice() == header {
        return Ok(());
    }
    let detail = match header
        .iter()
        .zip(first_header.iter())
        .position(|(a, b)| a != b)
    {
        Some(i) => format!(
            "column {} is `{}` here and `{}` there",
            i + 1,
            header[i],
            first_header[i]
        ),
        None => format!(
            "it has {} columns, the first part {}",
            header.len(),
            first_header.len()
        ),
    };
    Err(ReadError::PartHeader {
        origin: origin.to_owned(),
        first: first_origin.clone(),
        detail,
    })
}

/// The header's column names, trimmed (a byte-order mark too): the file is empty without
/// one; each must be UTF-8 and appear once.
fn read_header(
    origin: &str,
    header_record: &csv::ByteRecord,
    mapping: &Mapping,
) -> Result<Vec<String>, ReadError> {
    if header_record.is_empty()
        || (header_record.len() == 1 && header_record[0].trim_ascii().is_empty())
    {
        let names: Vec<&str> = mapping
            .fields
            .iter()
            .flat_map(|f| f.source.columns())
            .collect();
        return Err(ReadError::Empty {
            origin: origin.to_owned(),
            expected: format!("a header row with the columns {}", names.join(", ")),
        });
    }
    let mut header: Vec<String> = Vec::with_capacity(header_record.len());
    for (i, name) in header_record.iter().enumerate() {
        let name = std::str::from_utf8(name).map_err(|_| {
            ReadError::Row(Box::new(RowError {
                origin: origin.to_owned(),
                line: 1,
                column: Some(i + 1),
                column_name: None,
                message: "invalid UTF-8 in the header; expected UTF-8 text".to_owned(),
            }))
        })?;
        let name = name.trim_start_matches('\u{feff}').trim().to_owned();
        if let Some(first) = header.iter().position(|h| *h == name) {
            return Err(ReadError::DuplicateColumn {
                origin: origin.to_owned(),
                column: name,
                index: i + 1,
                first: first + 1,
            });
        }
        header.push(name);
    }
    Ok(header)
}

/// A record the csv crate could not read: a limit the guard refused, or an I/O error, ends
/// the read; a malformed record (its field count, its UTF-8) is a bad row.
fn unreadable_record(
    error: csv::Error,
    record: &csv::ByteRecord,
    delimiter: u8,
    header: &[String],
    lines: &Lines,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    if let csv::ErrorKind::Io(_) = error.kind() {
        let csv::ErrorKind::Io(source) = error.into_kind() else {
            unreachable!()
        };
        return Err(read_failed(&sink.origin, source, Some(header)));
    }
    let raw = as_read(record, delimiter);
    let row = match csv_error(&sink.origin, error, lines) {
        ReadError::Row(row) => *row,
        other => return Err(other),
    };
    sink.stats.records += 1;
    sink.bad_row(row, &raw, None)
}

/// A CSV record as it was read: its fields with the file's delimiter, quoted where they
/// need it, so the quarantined row reads back as the same fields.
pub(super) fn as_read(record: &csv::ByteRecord, delimiter: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let written = writer
        .write_byte_record(record)
        .ok()
        .and_then(|()| writer.into_inner().ok());
    match written {
        Some(mut bytes) => {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => String::from_utf8_lossy(record.as_slice()).into_owned(),
    }
}

/// A csv crate error as a located row error.
fn csv_error(origin: &str, error: csv::Error, lines: &Lines) -> ReadError {
    let line = error.position().map_or(1, |p| lines.line_at(p.byte()));
    let column = match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => Some(err.field() + 1),
        _ => None,
    };
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("the row has {len} fields; expected {expected_len}, as many as the header")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8; expected UTF-8 text".to_owned(),
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => read_failed(origin, source, None),
        _ => ReadError::Row(Box::new(RowError {
            origin: origin.to_owned(),
            line,
            column,
            column_name: None,
            message,
        })),
    }
}
