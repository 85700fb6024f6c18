//! What can go wrong reading a file: a bad row located by file, line, column and column name
//! (`RowError`), and the errors that end a read (`ReadError`).

use std::fmt;

use crate::guard::TooLong;

use super::record::{ColumnRef, Problem};

/// A bad row, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub origin: String,
    /// The line (CSV, JSON lines) or record number (JSON document), 1-based.
    pub line: u64,
    /// The 1-based column number (CSV) when known.
    pub column: Option<usize>,
    /// The column's header name or JSON path, when known.
    pub column_name: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, line {}", self.origin, self.line)?;
        match (self.column, &self.column_name) {
            (Some(c), Some(n)) => write!(f, ", column {c} (`{n}`)")?,
            (Some(c), None) => write!(f, ", column {c}")?,
            (None, Some(n)) => write!(f, ", field `{n}`")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a file could not be read into lines.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{origin}: cannot read the file")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: the file is empty; expected {expected}")]
    Empty { origin: String, expected: String },
    #[error(
        "{origin}: the required column `{column}` (for the canonical field `{field}`) is missing from the header of this `{format}` file; the header has: {header}"
    )]
    MissingColumn {
        origin: String,
        format: String,
        column: String,
        field: String,
        header: String,
    },
    #[error(
        "{origin}, line 1, column {index}: the column `{column}` appears twice in the header (first at column {first})"
    )]
    DuplicateColumn {
        origin: String,
        column: String,
        /// 1-based, the repeat and the first.
        index: usize,
        first: usize,
    },
    #[error("{0}")]
    Row(Box<RowError>),
    #[error("{origin}: more than {limit} bad rows (see the quarantine file); the first: {first}")]
    TooManyBadRows {
        origin: String,
        limit: u64,
        first: Box<RowError>,
    },
    #[error("cannot write the quarantine file")]
    Quarantine(#[source] std::io::Error),
    /// The lines read could not be handed over (`ReadOptions::spill`): written to the
    /// out-of-core diff's temporary files, or out of the order the read was declared in.
    #[error("{0}")]
    Spill(std::io::Error),
    /// An input named by a directory, a glob or `-` that cannot be read as parts.
    #[error("{origin}: {message}")]
    Parts { origin: String, message: String },
    /// A part whose header is not the first part's: every part of an export has the same
    /// columns in the same order.
    #[error(
        "{origin}, line 1: the header differs from that of the first part, {first}: {detail}; every part of an export must have the same columns in the same order"
    )]
    PartHeader {
        origin: String,
        first: String,
        detail: String,
    },
    /// Compressed or Parquet data that cannot be decoded, or would decode past the limits.
    #[error("{origin}: {message}")]
    Decode {
        origin: String,
        format: &'static str,
        message: String,
    },
}

pub(super) fn locate(
    origin: &str,
    line: u64,
    problem: Problem,
    header: Option<&[String]>,
) -> RowError {
    let (column, column_name) = match problem.column {
        Some(ColumnRef::Csv(i)) => (Some(i + 1), header.and_then(|h| h.get(i)).cloned()),
        Some(ColumnRef::Path(p)) => (None, Some(p)),
        None => (None, None),
    };
    RowError {
        origin: origin.to_owned(),
        line,
        column,
        column_name,
        message: problem.message,
    }
}

/// Reading failed: a field or record the guard refused (located, as `too_long`), else the
/// I/O error itself.
pub(super) fn read_failed(
    origin: &str,
    source: std::io::Error,
    header: Option<&[String]>,
) -> ReadError {
    if let Some(problem) = decode_problem(&source) {
        return ReadError::Decode {
            origin: origin.to_owned(),
            format: problem.format,
            message: problem.message.clone(),
        };
    }
    match crate::guard::too_long(&source) {
        Some(found) => too_long(origin, found, header),
        None => ReadError::Io {
            origin: origin.to_owned(),
            source,
        },
    }
}

/// A field or record the guard refused while reading, located (by its header name too when
/// the header is known).
pub(super) fn too_long(origin: &str, found: &TooLong, header: Option<&[String]>) -> ReadError {
    ReadError::Row(Box::new(RowError {
        origin: origin.to_owned(),
        line: found.line,
        column: found.column,
        column_name: found
            .column
            .and_then(|c| header.and_then(|h| h.get(c - 1)).cloned()),
        message: found.message.clone(),
    }))
}

/// A decoding problem carried through an `io::Error` (`decode_problem` finds it).
#[derive(Debug)]
pub(super) struct DecodeProblem {
    pub(super) format: &'static str,
    pub(super) message: String,
}

impl std::fmt::Display for DecodeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeProblem {}

pub(super) fn decode_problem(error: &std::io::Error) -> Option<&DecodeProblem> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<DecodeProblem>())
}
