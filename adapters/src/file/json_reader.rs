//! JSON lines and JSON documents: each line (through `read_json_line`, which bounds its
//! values and itself while it is read) or the document parsed, then each of its line items
//! (the mapping's `records` path) taken as one record.

use std::io::{BufReader, Read};

use crate::guard::{self, read_json_line};
use crate::limits::JSON_DOCUMENT_BYTES_MAX;
use crate::mapping::Mapping;

use super::compile::Compiled;
use super::convert::Scratch;
use super::error::{ReadError, RowError, too_long};
use super::record::Record;
use super::sink::Sink;

/// Reads JSON lines: one document per line, blank lines skipped, a line that is not JSON a
/// bad row.
pub(super) fn read_jsonl(
    reader: impl Read,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let compiled = Compiled::new(mapping, None, &origin)?;
    let mut scratch = Scratch::new();
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    let mut documents = 0u64;
    loop {
        let read = read_json_line(&mut reader, &mut buffer, line_number + 1).map_err(|source| {
            match guard::too_long(&source) {
                Some(found) => too_long(&origin, found, None),
                None => ReadError::Io {
                    origin: origin.clone(),
                    source,
                },
            }
        })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let text = if line_number == 1 {
            buffer.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buffer)
        } else {
            &buffer[..]
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        documents += 1;
        let raw = String::from_utf8_lossy(text).trim_end().to_owned();
        let document: serde_json::Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                let row = RowError {
                    origin: origin.clone(),
                    line: line_number,
                    column: Some(e.column()),
                    column_name: None,
                    message: format!("not valid JSON: {e}"),
                };
                sink.stats.records += 1;
                sink.bad_row(row, &raw, None)?;
                continue;
            }
        };
        read_document(
            &document,
            &compiled,
            mapping,
            line_number,
            &raw,
            &mut scratch,
            sink,
        )?;
    }
    if documents == 0 {
        return Err(ReadError::Empty {
            origin,
            expected: "one JSON object per line".to_owned(),
        });
    }
    Ok(())
}

/// Reads one JSON document (bounded by `JSON_DOCUMENT_BYTES_MAX`): an object, or an array
/// of them.
pub(super) fn read_json(
    reader: impl Read,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let compiled = Compiled::new(mapping, None, &origin)?;
    let mut text = Vec::new();
    reader
        .take(JSON_DOCUMENT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|source| ReadError::Io {
            origin: origin.clone(),
            source,
        })?;
    if text.len() > JSON_DOCUMENT_BYTES_MAX {
        return Err(ReadError::Row(Box::new(RowError {
            origin,
            line: 1,
            column: None,
            column_name: None,
            message: format!(
                "the document is longer than {JSON_DOCUMENT_BYTES_MAX} bytes; write it as JSON lines instead"
            ),
        })));
    }
    let body = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&text);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty {
            origin,
            expected: "a JSON document".to_owned(),
        });
    }
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ReadError::Row(Box::new(RowError {
            origin: origin.clone(),
            line: e.line() as u64,
            column: Some(e.column()),
            column_name: None,
            message: format!("not valid JSON: {e}"),
        }))
    })?;
    let mut scratch = Scratch::new();
    let documents: Vec<&serde_json::Value> = match &document {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for (i, doc) in documents.into_iter().enumerate() {
        read_document(
            doc,
            &compiled,
            mapping,
            i as u64 + 1,
            "",
            &mut scratch,
            sink,
        )?;
    }
    Ok(())
}

/// Turns one JSON document into lines: the document itself, or each item of its `records`
/// array.
fn read_document(
    document: &serde_json::Value,
    compiled: &Compiled<'_>,
    mapping: &Mapping,
    line: u64,
    raw: &str,
    scratch: &mut Scratch,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let records: Vec<&serde_json::Value> = match &mapping.records {
        None => vec![document],
        Some(path) => {
            let mut node = Some(document);
            for segment in path.split('.') {
                node = node.and_then(|n| n.get(segment));
            }
            match node {
                Some(serde_json::Value::Array(items)) => items.iter().collect(),
                _ => {
                    sink.stats.records += 1;
                    let row = RowError {
                        origin,
                        line,
                        column: None,
                        column_name: Some(path.clone()),
                        message: format!("expected an array of line items at `{path}`"),
                    };
                    return sink.bad_row(row, raw, None);
                }
            }
        }
    };
    for record in records {
        let view = Record::Json {
            record,
            document,
            nulls: &mapping.null_values,
        };
        // A document read whole has no line of its own: the record is its raw text.
        let raw = || {
            if raw.is_empty() {
                record.to_string()
            } else {
                raw.to_owned()
            }
        };
        sink.take(compiled, &view, scratch, line, None, raw)?;
    }
    Ok(())
}
