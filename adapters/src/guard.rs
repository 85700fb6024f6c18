//! Readers that refuse an over-long field or record while it is being read, before it is
//! buffered whole: `CsvGuard` for CSV (before the csv crate copies a record) and
//! `read_json_line` for JSON lines (before a line is kept and parsed), with the same limits
//! (`crate::limits`) and the same located error (`TooLong`).
//!
//! The csv crate copies each record into a `ByteRecord` whose buffers double as the record
//! grows: a 1 GB field would cost gigabytes before any per-field check could see it. This
//! reader follows the CSV quoting (a quote opens a quoted field only at a field's start; `""`
//! inside is an escaped quote) and fails the read, with the line and column where the field
//! starts, as soon as:
//! - a field's raw bytes pass `FIELD_RAW_MAX` (twice the per-field limit plus its quotes, so
//!   that no field within the limit once unescaped is refused; the exact check stays in
//!   `file/record.rs`),
//! - a record passes `RECORD_BYTES_MAX` bytes or `RECORD_FIELDS_MAX` fields.
//!
//! Memory per record is so bounded by a small multiple of `RECORD_BYTES_MAX`.
//!
//! Following the quoting byte by byte costs as much as parsing, so it is done only for a record
//! that grows long: the reader is told where the current record starts (`RecordStart`, set by
//! the CSV loop after each record) and keeps the bytes it handed out since then (at most
//! `FIELD_RAW_MAX` plus one read). No field can be too long in a record shorter than
//! `FIELD_RAW_MAX`; once a record passes it, the kept bytes are scanned from the record's start
//! and every later byte too, until the next record starts.
//!
//! A JSON line is followed byte by byte from its start (strings a run at a time): a JSON
//! lines file has no cheaper way to know where a value ends, and parsing it costs more. A
//! value's raw bytes are bounded by `JSON_VALUE_RAW_MAX` (six times the field limit: `\u0001`
//! is six bytes for one), a line by `RECORD_BYTES_MAX` bytes and `RECORD_FIELDS_MAX` values,
//! so the parsed line is bounded too.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

pub use crate::limits::{
    FIELD_BYTES_MAX, FIELD_RAW_MAX, JSON_VALUE_RAW_MAX, RECORD_BYTES_MAX, RECORD_FIELDS_MAX,
};

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

/// Where the record being read starts: its byte offset and its 1-based line. Shared between
/// the CSV loop (which sets it after each record) and the guard.
pub type RecordStart = Rc<Cell<(u64, u64)>>;

/// The first record's start: byte 0, line 1.
pub fn record_start() -> RecordStart {
    Rc::new(Cell::new((0, 1)))
}

pub struct CsvGuard<R> {
    inner: R,
    start: RecordStart,
    /// Bytes handed out so far.
    handed: u64,
    /// The bytes handed out from offset `kept_from` on.
    kept: Vec<u8>,
    kept_from: u64,
    /// Scanning byte by byte, from the record that started at this offset.
    exact_from: Option<u64>,
    delimiter: u8,
    /// The bytes looked at one by one outside quotes: the delimiter, `"`, `\n`, `\r`.
    special: [bool; 256],
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
    pub fn new(inner: R, delimiter: u8, start: RecordStart) -> CsvGuard<R> {
        let mut special = [false; 256];
        for b in [delimiter, b'"', b'\n', b'\r'] {
            special[usize::from(b)] = true;
        }
        CsvGuard {
            inner,
            start,
            handed: 0,
            kept: Vec::new(),
            kept_from: 0,
            exact_from: None,
            delimiter,
            special,
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

    /// Follows `bytes`; the first limit passed, if any. Runs of ordinary bytes are counted
    /// at once; only delimiters, quotes and line ends are looked at one by one.
    fn scan(&mut self, bytes: &[u8]) -> Option<TooLong> {
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let run = if self.in_quotes {
                rest.iter().position(|&b| b == b'"' || b == b'\n')
            } else {
                rest.iter().position(|&b| self.special[usize::from(b)])
            }
            .unwrap_or(rest.len());
            if run > 0 {
                self.after_quote = false;
                self.field += run;
                self.record += run;
                i += run;
            } else {
                i += 1;
                if let Some(found) = self.special_byte(rest[0]) {
                    return Some(found);
                }
            }
            if let Some(found) = self.over_limit() {
                return Some(found);
            }
        }
        None
    }

    /// A delimiter, quote or line end.
    fn special_byte(&mut self, b: u8) -> Option<TooLong> {
        let after_quote = std::mem::take(&mut self.after_quote);
        if self.in_quotes {
            if b == b'"' {
                self.in_quotes = false;
                self.after_quote = true;
            } else if b == b'\n' {
                self.line += 1;
            }
            self.field += 1;
            self.record += 1;
        } else if b == b'"' {
            // A quote opens a quoted section only at a field's start or right after one
            // closed (`""`); elsewhere it is text.
            if self.field == 0 || after_quote {
                self.in_quotes = true;
            }
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
        } else if b == b'\n' {
            self.line += 1;
            self.end_record();
        } else if b == b'\r' {
            self.end_record();
        }
        None
    }

    fn over_limit(&self) -> Option<TooLong> {
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
        None
    }
}

impl<R: Read> CsvGuard<R> {
    /// Follows the bytes just handed out (`new`), scanning exactly once the current record
    /// is long.
    fn follow(&mut self, new: &[u8]) -> Option<TooLong> {
        let (record_start, record_line) = self.start.get();
        if self.exact_from.is_some_and(|from| from != record_start) {
            // The long record ended. Nothing was kept while it was followed: a record that
            // started in the bytes already handed out is followed from what comes next (its
            // line may then be approximate; its memory is bounded all the same).
            self.exact_from = None;
            self.kept.clear();
            self.kept_from = self.handed;
        }
        if self.exact_from.is_some() {
            self.handed += new.len() as u64;
            return self.scan(new);
        }
        // Keep the bytes from the record's start on.
        let drop = usize::try_from(record_start.saturating_sub(self.kept_from))
            .unwrap_or(usize::MAX)
            .min(self.kept.len());
        if drop > 0 {
            self.kept.drain(..drop);
            self.kept_from += drop as u64;
        }
        if self.kept_from < record_start {
            // The record starts in bytes not kept (a read ahead past them): nothing kept.
            self.kept.clear();
            self.kept_from = record_start.min(self.handed);
        }
        self.kept.extend_from_slice(new);
        self.handed += new.len() as u64;
        if self.handed - record_start <= FIELD_RAW_MAX as u64 {
            return None;
        }
        // A long record: follow it exactly from its start.
        self.exact_from = Some(record_start);
        self.in_quotes = false;
        self.after_quote = false;
        self.field = 0;
        self.record = 0;
        self.column = 1;
        self.line = record_line;
        self.field_line = record_line;
        self.record_line = record_line;
        let skip = usize::try_from(record_start.saturating_sub(self.kept_from))
            .unwrap_or(0)
            .min(self.kept.len());
        let kept = std::mem::take(&mut self.kept);
        let found = self.scan(&kept[skip..]);
        self.kept_from += kept.len() as u64;
        found
    }
}

impl<R: Read> Read for CsvGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, failed.clone()));
        }
        let n = self.inner.read(buf)?;
        if let Some(failed) = self.follow(&buf[..n]) {
            self.failed = Some(failed.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, failed));
        }
        Ok(n)
    }
}

/// Follows one JSON line as it is read, so that an over-long value or line is refused
/// before its bytes are kept: strings are skipped a run at a time (to the next quote or
/// backslash), other bytes looked at one by one.
#[derive(Default)]
struct JsonLineScan {
    /// Bytes of the line so far, its line feed not counted.
    bytes: usize,
    /// Values begun so far: strings, numbers, literals, objects and arrays (keys not
    /// counted: each comes with a value).
    values: usize,
    /// The open objects (`true`) and arrays.
    open: Vec<bool>,
    /// The next string is an object's key.
    expect_key: bool,
    in_string: bool,
    escaped: bool,
    /// In a number or literal.
    in_scalar: bool,
    /// Raw bytes of the current string, number or literal.
    value_bytes: usize,
    /// The 1-based byte column where it starts.
    value_column: usize,
}

impl JsonLineScan {
    /// Follows `bytes`; the first limit passed, if any.
    fn scan(&mut self, bytes: &[u8], line: u64) -> Option<TooLong> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string && !self.escaped {
                let rest = &bytes[i..];
                let run = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                let step = if run > 0 {
                    run
                } else {
                    self.in_string = rest[0] != b'"';
                    self.escaped = rest[0] == b'\\';
                    1
                };
                self.bytes += step;
                self.value_bytes += step;
                i += step;
            } else if self.in_string {
                self.escaped = false;
                self.bytes += 1;
                self.value_bytes += 1;
                i += 1;
            } else {
                self.structural(bytes[i]);
                i += 1;
            }
            if let Some(found) = self.over_limit(line) {
                return Some(found);
            }
        }
        None
    }

    /// A byte outside strings.
    fn structural(&mut self, b: u8) {
        if b == b'\n' {
            self.in_scalar = false;
            return;
        }
        self.bytes += 1;
        let starts_value = match b {
            b'"' => {
                self.in_string = true;
                self.in_scalar = false;
                !std::mem::take(&mut self.expect_key)
            }
            b'{' | b'[' => {
                self.open.push(b == b'{');
                self.expect_key = b == b'{';
                self.in_scalar = false;
                true
            }
            b'}' | b']' | b':' | b',' | b' ' | b'\t' | b'\r' => {
                if b == b'}' || b == b']' {
                    self.open.pop();
                }
                self.expect_key = b == b',' && self.open.last() == Some(&true);
                self.in_scalar = false;
                false
            }
            _ if self.in_scalar => {
                self.value_bytes += 1;
                false
            }
            _ => {
                self.in_scalar = true;
                true
            }
        };
        if b == b'"' || (self.in_scalar && starts_value) {
            self.value_bytes = 1;
            self.value_column = self.bytes;
        }
        if starts_value {
            self.values += 1;
        }
    }

    fn over_limit(&self, line: u64) -> Option<TooLong> {
        if (self.in_string || self.in_scalar) && self.value_bytes > JSON_VALUE_RAW_MAX {
            return Some(TooLong {
                line,
                column: Some(self.value_column),
                message: format!(
                    "the value is longer than {FIELD_BYTES_MAX} bytes (the limit); refused while reading"
                ),
            });
        }
        if self.bytes > RECORD_BYTES_MAX {
            return Some(TooLong {
                line,
                column: None,
                message: format!(
                    "the line is longer than {RECORD_BYTES_MAX} bytes (the limit); refused while reading"
                ),
            });
        }
        if self.values > RECORD_FIELDS_MAX {
            return Some(TooLong {
                line,
                column: None,
                message: format!(
                    "the line has more than {RECORD_FIELDS_MAX} values (the limit); refused while reading"
                ),
            });
        }
        None
    }
}

/// Reads one line of a JSON lines file into `buffer` (cleared first, the line feed kept),
/// following it as it comes: a value whose raw bytes pass `JSON_VALUE_RAW_MAX` (so longer
/// than `FIELD_BYTES_MAX` once unescaped), a line past `RECORD_BYTES_MAX` bytes or with more
/// than `RECORD_FIELDS_MAX` values is refused before its bytes are kept, as an
/// `io::Error` holding a [`TooLong`] located at `line` (and the value's column), as
/// [`CsvGuard`] refuses a CSV record. The bytes read; 0 at the end of the input.
pub fn read_json_line(
    reader: &mut impl BufRead,
    buffer: &mut Vec<u8>,
    line: u64,
) -> io::Result<usize> {
    buffer.clear();
    let mut scan = JsonLineScan::default();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(buffer.len());
        }
        let (chunk, ends_line) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        if let Some(found) = scan.scan(chunk, line) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, found));
        }
        buffer.extend_from_slice(chunk);
        let taken = chunk.len();
        reader.consume(taken);
        if ends_line {
            return Ok(buffer.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads with no record ever ending (the worst case: every byte is one record's).
    fn read_all(text: &[u8]) -> Result<(), TooLong> {
        let mut guard = CsvGuard::new(text, b',', record_start());
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
        // Past the field count, and long enough to be followed byte by byte.
        let text = format!(
            "{}{}",
            ",".repeat(RECORD_FIELDS_MAX + 1),
            "x".repeat(FIELD_RAW_MAX)
        );
        let err = read_all(text.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (1, None));
    }

    /// Reads every line of `text` through `read_json_line`: how many, or the first refusal.
    fn json_lines(text: &str) -> Result<usize, TooLong> {
        let mut reader = io::BufReader::with_capacity(64, text.as_bytes());
        let mut buffer = Vec::new();
        let mut lines = 0;
        loop {
            match read_json_line(&mut reader, &mut buffer, lines + 1) {
                Ok(0) => return Ok(lines as usize),
                Ok(_) => lines += 1,
                Err(e) => return Err(too_long(&e).cloned().expect("a guard error")),
            }
        }
    }

    #[test]
    fn json_lines_pass_whatever_their_strings_hold() {
        let text = "{\"a\":\"}{[\\\"\\\\\",\"b\":[1,-2.5e3,{\"c\":null}]}\n\n{\"x\":true}";
        assert_eq!(json_lines(text), Ok(3));
        let within = format!("{{\"k\":\"{}\"}}", "\\u0041".repeat(FIELD_BYTES_MAX));
        assert_eq!(json_lines(&within), Ok(1));
    }

    #[test]
    fn an_over_long_json_value_is_refused_with_its_line_and_column() {
        let text = format!(
            "{{\"a\":1}}\n{{\"key\": \"{}\"}}\n",
            "y".repeat(JSON_VALUE_RAW_MAX)
        );
        let err = json_lines(&text).unwrap_err();
        assert_eq!((err.line, err.column), (2, Some(9)));
        assert!(err.message.contains("65536"), "{}", err.message);
        let text = format!("[1, {}]", "7".repeat(JSON_VALUE_RAW_MAX + 1));
        let err = json_lines(&text).unwrap_err();
        assert_eq!((err.line, err.column), (1, Some(5)));
    }

    #[test]
    fn a_json_line_counts_values_not_keys() {
        // One object and its values: as many as a CSV record may have fields.
        let object: Vec<String> = (1..RECORD_FIELDS_MAX)
            .map(|i| format!("\"k{i}\":0"))
            .collect();
        assert_eq!(json_lines(&format!("{{{}}}", object.join(","))), Ok(1));
        // One more: an array and its items.
        let array = format!("[{}]", vec!["0"; RECORD_FIELDS_MAX].join(","));
        let err = json_lines(&array).unwrap_err();
        assert_eq!((err.line, err.column), (1, None));
        assert!(err.message.contains("100000 values"), "{}", err.message);
    }
}
