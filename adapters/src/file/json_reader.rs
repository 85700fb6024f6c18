//! JSON lines and JSON documents: each line (through `read_json_line`, which bounds its
//! values and itself while it is read) or the document parsed, then each of its line items
//! (the mapping's `records` path) taken as one record.

use std::io::{BufReader, Read};

use crate::guard::read_json_line;
use crate::limits::JSON_DOCUMENT_BYTES_MAX;
use crate::mapping::Mapping;

use super::compile::Compiled;
use super::convert::Scratch;
use super::error::{ReadError, RowError, read_failed};
use super::record::Record;
use super::sink::Sink;

/// How a JSON input holds its documents.
#[derive(Debug, Clone, Copy)]
pub(super) enum JsonInput {
    /// One document per line (`jsonl`).
    Lines,
    /// One document, read whole (`json`).
    Document,
}

/// Reads JSON lines or one JSON document: the mapping is compiled once for either, then each
/// document read through `Documents::read`.
pub(super) fn read_json(
    reader: impl Read,
    mapping: &Mapping,
    input: JsonInput,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let mut documents = Documents {
        compiled: Compiled::new(mapping, None, &sink.origin)?,
        mapping,
        scratch: Scratch::new(),
    };
    match input {
        JsonInput::Lines => read_lines(reader, &mut documents, sink),
        JsonInput::Document => read_whole(reader, &mut documents, sink),
    }
}

/// JSON lines: one document per line, blank lines skipped, a line that is not JSON a bad row.
fn read_lines(
    reader: impl Read,
    documents: &mut Documents<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    let mut read_any = false;
    loop {
        let read = read_json_line(&mut reader, &mut buffer, line_number + 1)
            .map_err(|source| read_failed(&sink.origin, source, None))?;
        if read == 0 {
            break;
        }
        line_number += 1;
        sink.part_lines = line_number;
        let text = if line_number == 1 {
            buffer.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buffer)
        } else {
            &buffer[..]
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read_any = true;
        let raw = String::from_utf8_lossy(text).trim_end().to_owned();
        match serde_json::from_slice(text) {
            Ok(document) => documents.read(&document, line_number, &raw, sink)?,
            Err(e) => {
                sink.stats.records += 1;
                sink.bad_row(not_json(&sink.origin, line_number, &e), &raw, None)?;
            }
        }
    }
    if !read_any {
        return Err(ReadError::Empty {
            origin: sink.origin.clone(),
            expected: "one JSON object per line".to_owned(),
        });
    }
    Ok(())
}

/// One JSON document (bounded by `JSON_DOCUMENT_BYTES_MAX`): an object, or an array of them.
fn read_whole(
    reader: impl Read,
    documents: &mut Documents<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let mut text = Vec::new();
    reader
        .take(JSON_DOCUMENT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|source| read_failed(&origin, source, None))?;
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
    let document: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ReadError::Row(Box::new(not_json(&origin, e.line() as u64, &e))))?;
    let items: Vec<&serde_json::Value> = match &document {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for (i, item) in items.into_iter().enumerate() {
        documents.read(item, i as u64 + 1, "", sink)?;
    }
    Ok(())
}

/// A line or document that does not parse, located where the parser stopped.
fn not_json(origin: &str, line: u64, e: &serde_json::Error) -> RowError {
    RowError {
        origin: origin.to_owned(),
        line,
        column: Some(e.column()),
        column_name: None,
        message: format!("not valid JSON: {e}"),
    }
}

/// What reading a document needs, set up once per file: the mapping compiled against its JSON
/// paths, and the conversion's scratch space.
struct Documents<'m> {
    compiled: Compiled<'m>,
    mapping: &'m Mapping,
    scratch: Scratch,
}

impl Documents<'_> {
    /// Turns one JSON document into lines: the document itself, or each item of its
    /// `records` array.
    fn read(
        &mut self,
        document: &serde_json::Value,
        line: u64,
        raw: &str,
        sink: &mut Sink<'_>,
    ) -> Result<(), ReadError> {
        let records: Vec<&serde_json::Value> = match &self.mapping.records {
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
                            origin: sink.origin.clone(),
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
                nulls: &self.mapping.null_values,
            };
            // A document read whole has no line of its own: the record is its raw text.
            let raw = || {
                if raw.is_empty() {
                    record.to_string()
                } else {
                    raw.to_owned()
                }
            };
            sink.take(&self.compiled, &view, &mut self.scratch, line, None, raw)?;
        }
        Ok(())
    }
}
