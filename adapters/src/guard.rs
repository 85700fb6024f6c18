//! A reader that refuses an over-long CSV field or record while it is being read, before the
//! csv crate buffers it whole.
//!
//! The csv crate copies each record into a `ByteRecord` whose buffers double as the record
//! grows: a 1 GB field would cost gigabytes before any per-field check could see it. This
//! reader follows the CSV quoting (a quote opens a quoted field only at a field's start; `""`
//! inside is an escaped quote) and fails the read, with the line and column where the field
//! starts, as soon as:
//! - a field's raw bytes pass `FIELD_RAW_MAX` (twice the per-field limit plus its quotes, so
//!   that no field within the limit once unescaped is refused; the exact check stays in
//!   `file.rs`),
//! - a record passes `RECORD_BYTES_MAX` bytes or `RECORD_FIELDS_MAX` fields.
//!
//! Memory per record is so bounded by a small multiple of `RECORD_BYTES_MAX`.

use std::fmt;
use std::io::{self, Read};

use crate::file::FIELD_BYTES_MAX;

/// The raw bytes a field may take (quotes and doubled quotes included).
pub const FIELD_RAW_MAX: usize = 2 * FIELD_BYTES_MAX + 2;
/// The bytes one record may take.
pub const RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The fields one record may have.
pub const RECORD_FIELDS_MAX: usize = 100_000;

/// Why the guard stopped the read: where, and which limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// The 1-based line where the field (or record) starts.
    pub line: u64,
    /// The 1-based column of the field; `None` for a record limit.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TooLong {}

/// The guard's finding in an I/O error, if it is one.
pub fn too_long(error: &io::Error) -> Option<&TooLong> {
    error.get_ref().and_then(|e| e.downcast_ref::<TooLong>())
}

pub struct CsvGuard<R> {
    inner: R,
    delimiter: u8,
    in_quotes: bool,
    /// The previous byte closed a quoted section (a `"` now is an escaped quote).
    after_quote: bool,
    field: usize,
    record: usize,
    column: usize,
    line: u64,
    field_line: u64,
    record_line: u64,
    failed: Option<TooLong>,
}

impl<R: Read> CsvGuard<R> {
    pub fn new(inner: R, delimiter: u8) -> CsvGuard<R> {
        CsvGuard {
            inner,
            delimiter,
            in_quotes: false,
            after_quote: false,
            field: 0,
            record: 0,
            column: 1,
            line: 1,
            field_line: 1,
            record_line: 1,
            failed: None,
        }
    }

    fn end_record(&mut self) {
        self.column = 1;
        self.field = 0;
        self.record = 0;
        self.field_line = self.line;
        self.record_line = self.line;
    }

    /// Follows `bytes`; the first limit passed, if any.
    fn scan(&mut self, bytes: &[u8]) -> Option<TooLong> {
        for &b in bytes {
            let after_quote = std::mem::take(&mut self.after_quote);
            if self.in_quotes {
                match b {
                    b'"' => {
                        self.in_quotes = false;
                        self.after_quote = true;
                    }
                    b'\n' => self.line += 1,
                    _ => {}
                }
                self.field += 1;
                self.record += 1;
            } else if b == b'"' && (self.field == 0 || after_quote) {
                self.in_quotes = true;
                self.field += 1;
                self.record += 1;
            } else if b == self.delimiter {
                self.column += 1;
                self.field = 0;
                self.field_line = self.line;
                self.record += 1;
                if self.column > RECORD_FIELDS_MAX {
                    return Some(TooLong {
                        line: self.record_line,
                        column: None,
                        message: format!(
                            "the record has more than {RECORD_FIELDS_MAX} fields; refused while reading"
                        ),
                    });
                }
                continue;
            } else if b == b'\n' {
                self.line += 1;
                self.end_record();
                continue;
            } else if b == b'\r' {
                self.end_record();
                continue;
            } else {
                self.field += 1;
                self.record += 1;
            }
            if self.field > FIELD_RAW_MAX {
                return Some(TooLong {
                    line: self.field_line,
                    column: Some(self.column),
                    message: format!(
                        "the field is longer than {FIELD_BYTES_MAX} bytes (the limit); refused while reading"
                    ),
                });
            }
            if self.record > RECORD_BYTES_MAX {
                return Some(TooLong {
                    line: self.record_line,
                    column: None,
                    message: format!(
                        "the record is longer than {RECORD_BYTES_MAX} bytes (the limit); refused while reading"
                    ),
                });
            }
        }
        None
    }
}

impl<R: Read> Read for CsvGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, failed.clone()));
        }
        let n = self.inner.read(buf)?;
        if let Some(failed) = self.scan(&buf[..n]) {
            self.failed = Some(failed.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, failed));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Result<(), TooLong> {
        let mut guard = CsvGuard::new(text, b',');
        let mut out = Vec::new();
        guard
            .read_to_end(&mut out)
            .map(|_| ())
            .map_err(|e| too_long(&e).cloned().expect("a guard error"))
    }

    #[test]
    fn fields_within_the_limit_pass_whatever_their_quoting() {
        let long = "x".repeat(FIELD_BYTES_MAX);
        let quoted = format!("\"{}\"", "\"\"".repeat(FIELD_BYTES_MAX));
        let text = format!("a,b\n{long},{quoted}\n\"multi\nline\",5\" screen\r\n");
        assert_eq!(read_all(text.as_bytes()), Ok(()));
    }

    #[test]
    fn an_over_long_field_is_refused_with_its_line_and_column() {
        let text = format!("a,b\r\n1,2\n3,\"x\n{}", "y".repeat(FIELD_RAW_MAX));
        let err = read_all(text.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (3, Some(2)));
        assert!(err.message.contains("65536"), "{}", err.message);
    }

    #[test]
    fn an_over_wide_record_is_refused() {
        let text = ",".repeat(RECORD_FIELDS_MAX + 1);
        let err = read_all(text.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (1, None));
    }
}
