//! Line numbers of CSV records as an editor shows them, whatever the line ends: LF, CRLF,
//! CR alone, a file that switches from one to another, blank lines. The csv crate counts
//! `\n` only and starts a CRLF file's record at the `\n` of the previous line end
//! (BurntSushi/rust-csv#395); a `LineCounter` reads the bytes as they go by and turns a
//! record's byte offset into its line.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

#[derive(Default)]
struct Breaks {
    /// Line ends read but not yet passed by a record: where each begins (its first `\r` or
    /// `\n`) and where the next line starts (after a CRLF's `\n`, a lone CR or a lone LF).
    ahead: VecDeque<(u64, u64)>,
    /// Line ends passed.
    passed: u64,
    /// Bytes read so far.
    offset: u64,
    /// The last byte read was `\r`.
    after_cr: bool,
}

/// Wraps a reader; `Lines` (from `new`) tells the line of a byte offset. Memory is bounded by
/// the line ends read ahead of the last record asked about (the readers' buffers).
pub struct LineCounter<R> {
    inner: R,
    breaks: Rc<RefCell<Breaks>>,
}

/// The line numbers of a `LineCounter`'s bytes.
#[derive(Clone)]
pub struct Lines(Rc<RefCell<Breaks>>);

impl<R: Read> LineCounter<R> {
    pub fn new(inner: R) -> (LineCounter<R>, Lines) {
        let breaks = Rc::new(RefCell::new(Breaks::default()));
        (
            LineCounter {
                inner,
                breaks: breaks.clone(),
            },
            Lines(breaks),
        )
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut b = self.breaks.borrow_mut();
        // Only line ends matter: jump from one to the next (most bytes are neither).
        let mut last: Option<usize> = None;
        for i in memchr::memchr2_iter(b'\n', b'\r', &buf[..n]) {
            let follows = match last {
                Some(l) => i == l + 1,
                None => i == 0,
            };
            if !follows {
                // Other bytes came between: a `\n` here is no CRLF's.
                b.after_cr = false;
            }
            last = Some(i);
            let at = b.offset + i as u64;
            match buf[i] {
                b'\n' if b.after_cr => {
                    // The `\n` of a CRLF: the next line starts after it.
                    if let Some(last) = b.ahead.back_mut() {
                        last.1 = at + 1;
                    }
                    b.after_cr = false;
                }
                b'\n' => b.ahead.push_back((at, at + 1)),
                _ => {
                    b.ahead.push_back((at, at + 1));
                    b.after_cr = true;
                }
            }
        }
        if n > 0 && last != Some(n - 1) {
            b.after_cr = false;
        }
        b.offset += n as u64;
        Ok(n)
    }
}

impl Lines {
    /// The line `line_at` would give for `offset`, without moving past it: for a look ahead
    /// at where the next record starts.
    pub fn peek_line_at(&self, offset: u64) -> u64 {
        let b = self.0.borrow();
        let (mut at, mut passed) = (offset, b.passed);
        for &(begins, next) in &b.ahead {
            if begins > at {
                break;
            }
            passed += 1;
            at = at.max(next);
        }
        passed + 1
    }

    /// The 1-based line of the record the csv crate places at `offset`: the csv crate places
    /// a record where it started looking for it, which may be a CRLF's `\n` or blank lines
    /// before it, so line ends right at `offset` are skipped. Offsets must be asked in
    /// increasing order.
    pub fn line_at(&self, offset: u64) -> u64 {
        let mut b = self.0.borrow_mut();
        let mut at = offset;
        while let Some(&(begins, next)) = b.ahead.front() {
            if begins > at {
                break;
            }
            b.ahead.pop_front();
            b.passed += 1;
            at = at.max(next);
        }
        b.passed + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<u64> {
        let (counter, lines) = LineCounter::new(input);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(counter);
        let mut out = Vec::new();
        for record in reader.records() {
            let record = record.unwrap();
            out.push(lines.line_at(record.position().unwrap().byte()));
        }
        out
    }

    #[test]
    fn every_line_end() {
        assert_eq!(lines_of(b"h\na\nb\n"), [2, 3]);
        assert_eq!(lines_of(b"h\r\na\r\nb\r\n"), [2, 3]);
        assert_eq!(lines_of(b"h\ra\rb\r"), [2, 3]);
        assert_eq!(lines_of(b"h\na\r\nb\r\nc"), [2, 3, 4]);
        assert_eq!(lines_of(b"h\r\na\n\n\nb\r\n\r\nc\rd"), [2, 5, 7, 8]);
        assert_eq!(lines_of(b"h\n\"a\nb\"\nc\n"), [2, 4]);
    }
}
