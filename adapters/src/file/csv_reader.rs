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
use super::sink::{BadRow, Place, Sink, Tally, convert_record};
use billshadow_comparisons::LineStore;

/// Records per batch, when the options leave it to the reader: enough to make a hand-over
/// between threads rare, few enough to keep a batch in cache.
const BATCH_RECORDS: usize = 2048;

/// Reads a CSV file: its header, then every record, each converted into the sink's store.
///
/// One thread (this one) parses the file with the csv crate, in batches of records; the
/// records are converted (validated, turned into lines) on this thread, or, with
/// `options.workers` above 0, on that many other threads, batch `n` on worker `n % workers`,
/// and their lines and bad rows taken back in batch order. So the store, the line numbers,
/// the bad rows and the first error are the same whatever the number of threads: the file is
/// split into records by one parser, which follows quotes, never at a guessed byte.
pub(super) fn read_csv(
    reader: impl Read,
    mapping: &Mapping,
    sink: &mut Sink<'_>,
    first: &mut PartHeader,
) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let mut source = Source::new(reader, mapping);
    let header_record = match source.csv.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(&origin, e, &source.lines)),
    };
    source.next_record();
    let header = read_header(&origin, &header_record, mapping)?;
    check_part_header(&origin, &header, first)?;
    let compiled = Compiled::new(mapping, Some(&header), &origin)?;
    let context = Context {
        compiled: &compiled,
        mapping,
        header: &header,
        origin: &origin,
        line_offset: sink.line_offset,
    };
    let batch_records = match sink.options.batch_records {
        0 => BATCH_RECORDS,
        n => n,
    };
    let ended = match sink.options.workers {
        0 => convert_here(&mut source, &context, sink, batch_records),
        workers => convert_on_workers(&mut source, &context, sink, batch_records, workers),
    };
    sink.part_lines = source.part_lines;
    ended
}

/// The csv reader over the file, and what locates its records.
struct Source<R: Read> {
    csv: csv::Reader<CsvGuard<crate::lines::LineCounter<BufReader<R>>>>,
    lines: Lines,
    record_start: guard::RecordStart,
    /// The rows after the header so far, a quoted line break in a field counted.
    part_lines: u64,
}

impl<R: Read> Source<R> {
    fn new(reader: R, mapping: &Mapping) -> Source<R> {
        let reader = BufReader::with_capacity(1 << 16, reader);
        // A record's line from its byte offset: right with LF, CRLF, CR alone, a file
        // switching between them and blank lines (`lines.rs`).
        let (reader, lines) = LineCounter::new(reader);
        let record_start = guard::record_start();
        let csv = csv::ReaderBuilder::new()
            .delimiter(mapping.delimiter)
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(1 << 16)
            .from_reader(CsvGuard::new(
                reader,
                mapping.delimiter,
                Rc::clone(&record_start),
            ));
        Source {
            csv,
            lines,
            record_start,
            part_lines: 0,
        }
    }

    /// The guard follows a record byte by byte only once it grows long; it learns where
    /// each record starts from here.
    fn next_record(&self) {
        let p = self.csv.position();
        self.record_start
            .set((p.byte(), self.lines.peek_line_at(p.byte())));
    }

    /// Reads up to `max` records into `batch` (emptied first), each with its line, or as a
    /// bad row when the csv crate could not read it. `Ok(false)` at the end of the file; an
    /// error that ends the read (I/O, a limit refused while reading) after the records
    /// before it, which are in the batch.
    fn fill(
        &mut self,
        batch: &mut Batch,
        max: usize,
        context: &Context<'_, '_>,
    ) -> Result<bool, ReadError> {
        batch.items.clear();
        while batch.items.len() < max {
            let slot = batch.items.len();
            if batch.records.len() <= slot {
                batch.records.push(csv::ByteRecord::new());
            }
            let record = &mut batch.records[slot];
            let read = self.csv.read_byte_record(record);
            self.next_record();
            match read {
                Ok(false) => return Ok(false),
                Ok(true) => {
                    let line = record
                        .position()
                        .map_or(0, |p| self.lines.line_at(p.byte()));
                    let breaks = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
                    self.part_lines = (line + breaks).saturating_sub(1);
                    batch.items.push(Item::Record(line));
                }
                // The reader resynchronises at the next record; a field-count error does not
                // leave it mid-record.
                Err(e) => {
                    let (error, raw) = unreadable_record(e, record, context, &self.lines)?;
                    batch.items.push(Item::Unreadable(Box::new(error), raw));
                }
            }
        }
        Ok(true)
    }
}

/// What every batch of a file is converted with.
struct Context<'c, 'm> {
    compiled: &'c Compiled<'m>,
    mapping: &'m Mapping,
    header: &'c [String],
    origin: &'c str,
    line_offset: u64,
}

/// Records read in file order: `records[i]` goes with `items[i]`; the records are kept from
/// batch to batch, so their buffers are reused.
#[derive(Default)]
struct Batch {
    records: Vec<csv::ByteRecord>,
    items: Vec<Item>,
}

enum Item {
    /// A record read, and its line.
    Record(u64),
    /// A record the csv crate could not read (its field count, its UTF-8), and its text.
    Unreadable(Box<RowError>, String),
}

/// Converts a batch's records into `store`, their counts and bad rows into `tally`.
fn convert_batch(
    batch: &Batch,
    context: &Context<'_, '_>,
    scratch: &mut Scratch,
    store: &mut LineStore,
    tally: &mut Tally,
) {
    let delimiter = context.mapping.delimiter;
    for (record, item) in batch.records.iter().zip(&batch.items) {
        match item {
            Item::Record(line) => {
                let view = Record::Csv(
                    record,
                    std::str::from_utf8(record.as_slice()).ok(),
                    &context.mapping.null_values,
                );
                let place = Place {
                    origin: context.origin,
                    line: *line,
                    line_offset: context.line_offset,
                    header: Some(context.header),
                };
                let outcome = convert_record(store, context.compiled, &view, scratch, &place);
                tally.count(outcome, || as_read(record, delimiter));
            }
            Item::Unreadable(error, raw) => tally.bad.push(BadRow {
                error: (**error).clone(),
                raw: raw.clone(),
                money: None,
            }),
        }
    }
}

/// Reads and converts every record on this thread.
fn convert_here<R: Read>(
    source: &mut Source<R>,
    context: &Context<'_, '_>,
    sink: &mut Sink<'_>,
    batch_records: usize,
) -> Result<(), ReadError> {
    let mut scratch = Scratch::new();
    let mut batch = Batch::default();
    let mut tally = Tally::default();
    loop {
        let filled = source.fill(&mut batch, batch_records, context);
        convert_batch(&batch, context, &mut scratch, &mut sink.store, &mut tally);
        sink.absorb(&mut tally)?;
        sink.maybe_spill()?;
        if !filled? {
            return Ok(());
        }
    }
}

/// A batch on its way to a worker and back, with the store and tally it is converted into.
type Job = (Batch, LineStore, Tally);

/// Reads on this thread and converts on `workers` others; at most two batches per worker
/// are in flight, so memory is bounded whatever the file's size.
fn convert_on_workers<R: Read>(
    source: &mut Source<R>,
    context: &Context<'_, '_>,
    sink: &mut Sink<'_>,
    batch_records: usize,
    workers: usize,
) -> Result<(), ReadError> {
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(workers);
        let mut from_workers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<Job>();
            scope.spawn(move || {
                let mut scratch = Scratch::new();
                for (batch, mut store, mut tally) in job_rx {
                    convert_batch(&batch, context, &mut scratch, &mut store, &mut tally);
                    if done_tx.send((batch, store, tally)).is_err() {
                        return;
                    }
                }
            });
            to_workers.push(job_tx);
            from_workers.push(done_rx);
        }
        // Batches sent and taken back, by number; jobs whose buffers are free again.
        let (mut sent, mut taken) = (0usize, 0usize);
        let mut free: Vec<Job> = Vec::new();
        let mut take_back = |taken: &mut usize, free: &mut Vec<Job>| -> Result<(), ReadError> {
            let (batch, mut store, mut tally) = from_workers[*taken % workers]
                .recv()
                .map_err(|_| worker_lost(context.origin))?;
            *taken += 1;
            sink.absorb(&mut tally)?;
            sink.store.append(&mut store);
            sink.maybe_spill()?;
            free.push((batch, store, tally));
            Ok(())
        };
        let mut ended = Ok(());
        loop {
            let (mut batch, store, tally) = free.pop().unwrap_or_default();
            let filled = source.fill(&mut batch, batch_records, context);
            to_workers[sent % workers]
                .send((batch, store, tally))
                .map_err(|_| worker_lost(context.origin))?;
            sent += 1;
            if sent - taken >= 2 * workers {
                take_back(&mut taken, &mut free)?;
            }
            match filled {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    ended = Err(e);
                    break;
                }
            }
        }
        while taken < sent {
            take_back(&mut taken, &mut free)?;
        }
        ended
    })
}

/// A converting thread that stopped answering: it panicked (a bug), which is reported rather
/// than hidden.
fn worker_lost(origin: &str) -> ReadError {
    read_failed(
        origin,
        std::io::Error::other("a thread converting the file's records stopped"),
        None,
    )
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
/// the read; a malformed record (its field count, its UTF-8) is a bad row, returned with its
/// text.
fn unreadable_record(
    error: csv::Error,
    record: &csv::ByteRecord,
    context: &Context<'_, '_>,
    lines: &Lines,
) -> Result<(RowError, String), ReadError> {
    if let csv::ErrorKind::Io(_) = error.kind() {
        let csv::ErrorKind::Io(source) = error.into_kind() else {
            unreachable!()
        };
        return Err(read_failed(context.origin, source, Some(context.header)));
    }
    let raw = as_read(record, context.mapping.delimiter);
    match csv_error(context.origin, error, lines) {
        ReadError::Row(row) => Ok((*row, raw)),
        other => Err(other),
    }
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

#[cfg(test)]
mod tests {
    use billshadow_comparisons::Field;

    use super::super::{ReadOptions, read_from};
    use crate::mapping::Mapping;

    const MAPPING: &str = r#"
name = "t"
input = "csv"
[fields]
account_id = "acct"
period_start = "start"
period_end = "end"
charge_code = "sku"
currency = "cur"
amount = "amt"
description = { column = "note", optional = true }
"#;

    /// A file whose descriptions carry quoted line breaks (LF and CRLF), quoted delimiters
    /// and quotes, every fifth row two lines long, with bad rows of both kinds: a value the
    /// conversion refuses, and a row of the wrong field count the csv crate refuses.
    fn file() -> String {
        let mut out = String::from("acct,start,end,sku,cur,amt,note\n");
        for i in 0..120 {
            let note = match i % 5 {
                0 => format!("\"first line {i}\nsecond, line\""),
                1 => format!("\"a \"\"quoted\"\" word\r\nand a CRLF {i}\""),
                2 => String::new(),
                3 => format!("\"\n\n{i}\n\""),
                _ => format!("plain {i}"),
            };
            let amount = match i {
                17 | 64 => "12.x".to_owned(),
                _ => format!("{}.{:02}", i, i % 100),
            };
            if i == 41 || i == 99 {
                out.push_str(&format!("acct-{i},2026-10-01\n"));
                continue;
            }
            out.push_str(&format!(
                "acct-{},2026-10-01,2026-10-31,sku-{},USD,{amount},{note}\n",
                i % 7,
                i % 3
            ));
        }
        out
    }

    /// Every line as its fields and line number, the counts, the quarantine; or the error.
    fn read(input: &str, max_bad_rows: u64, workers: usize, batch_records: usize) -> String {
        let mapping = Mapping::from_toml("t.toml", MAPPING).expect("mapping");
        let mut quarantine = Vec::new();
        let options = ReadOptions {
            max_bad_rows,
            quarantine: Some(&mut quarantine),
            workers,
            batch_records,
            spill: None,
        };
        let result = read_from("in.csv", input.as_bytes(), 0, &mapping, options);
        let quarantine = String::from_utf8(quarantine).expect("utf-8");
        match result {
            Err(e) => format!("error: {e}\nquarantine:\n{quarantine}"),
            Ok((store, stats)) => {
                let lines: Vec<String> = store
                    .lines()
                    .map(|l| {
                        let fields: Vec<&str> = Field::ALL.iter().map(|f| l.get(*f)).collect();
                        format!("{} {} {:?}", l.source_line(), l.amount(), fields)
                    })
                    .collect();
                format!("{stats:?}\n{}\nquarantine:\n{quarantine}", lines.join("\n"))
            }
        }
    }

    #[test]
    fn records_split_across_batches_and_threads_read_as_on_one_thread() {
        let input = file();
        for max_bad_rows in [100, 0, 2] {
            let one_thread = read(&input, max_bad_rows, 0, 0);
            for workers in [1, 2, 3] {
                // Batches of 1 to 7 records: a record with quoted line breaks lands on both
                // sides of a batch's end many times over.
                for batch_records in 1..=7 {
                    let got = read(&input, max_bad_rows, workers, batch_records);
                    assert_eq!(
                        got, one_thread,
                        "{workers} workers, batches of {batch_records}, {max_bad_rows} bad rows allowed"
                    );
                }
            }
            let inline_batches = read(&input, max_bad_rows, 0, 3);
            assert_eq!(inline_batches, one_thread);
        }
    }

    #[test]
    fn bad_rows_keep_their_lines_when_read_on_several_threads() {
        let input = file();
        let got = read(&input, 100, 2, 3);
        // Row i starts after the header and the line breaks of the rows before it.
        let line_of = |row: usize| -> usize {
            let mut line = 2;
            for i in 0..row {
                line += if i == 41 || i == 99 {
                    1
                } else {
                    match i % 5 {
                        0 | 1 => 2,
                        3 => 4,
                        _ => 1,
                    }
                };
            }
            line
        };
        for row in [17, 64, 41, 99] {
            let expected = format!("\"line\":{}", line_of(row));
            assert!(got.contains(&expected), "row {row}: {expected} in\n{got}");
        }
        assert!(got.contains("bad_rows: 4"), "{got}");
        // No allowance: the first bad row in the file is the error, however the file was
        // split.
        let first = read(&input, 0, 3, 2);
        assert!(
            first.starts_with(&format!("error: in.csv, line {}, column 6", line_of(17))),
            "{first}"
        );
    }
}
