//! Where read records go: the store being filled, the counts of what was read, and the bad
//! rows (an error at once, or quarantined and counted within the allowance). `Sink::take` is
//! the one path every record takes, CSV or JSON: filter, convert, push, or quarantine.

use std::io::Write;

use billshadow_comparisons::model::NewLine;
use billshadow_comparisons::{Currency, Field, LineStore};
use rust_decimal::Decimal;

use super::compile::Compiled;
use super::convert::{Converted, Scratch};
use super::error::{ReadError, RowError, locate};
use super::record::{Problem, Record};

/// How to treat bad rows.
#[derive(Default)]
pub struct ReadOptions<'q> {
    /// Bad rows tolerated (written to `quarantine` and counted) before the read fails.
    pub max_bad_rows: u64,
    pub quarantine: Option<&'q mut dyn Write>,
    /// Threads converting a CSV file's records besides the one reading it (0: the reading
    /// thread converts them itself). The lines, their order, their line numbers and the bad
    /// rows are the same whatever the number.
    pub workers: usize,
    /// Records per batch handed to a converting thread (0: the default, 2,048).
    pub batch_records: usize,
    /// Where the lines go once the store holds `Spill::threshold` bytes of them (an
    /// out-of-core diff), instead of all being held: the store is handed over, then emptied.
    pub spill: Option<&'q mut dyn Spill>,
}

/// Takes the lines of a read in batches, so that the read holds no more than a batch.
pub trait Spill {
    /// The bytes of lines (`LineStore::used_bytes`) a batch reaches before it is handed over.
    fn threshold(&self) -> usize;
    /// Takes a batch of lines, in the order they were read.
    fn spill(&mut self, lines: &LineStore) -> std::io::Result<()>;
}

/// What a read saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    /// Source records (rows or JSON line items) read.
    pub records: u64,
    /// Records turned into lines.
    pub lines: u64,
    /// Records left out by the mapping's filters.
    pub filtered: u64,
    /// Records quarantined.
    pub bad_rows: u64,
    /// The money of the quarantined records whose amount and currency could still be read,
    /// per currency code: what the comparison left out.
    pub bad_rows_money: std::collections::BTreeMap<Currency, Decimal>,
    /// Quarantined records whose amount or currency could not be read.
    pub bad_rows_unpriced: u64,
}

pub(super) struct Sink<'q> {
    pub(super) origin: String,
    pub(super) store: LineStore,
    pub(super) stats: ReadStats,
    pub(super) options: ReadOptions<'q>,
    pub(super) first_bad: Option<Box<RowError>>,
    /// Added to the line a diff refers to (never to an error's, which names its part): the
    /// lines of the parts before this one, less their headers, so that a line of an export in
    /// parts is numbered as in the export read as one file.
    pub(super) line_offset: u64,
    /// The lines of the part being read that the next part's lines follow (its header not
    /// counted), set by the reader at the part's end.
    pub(super) part_lines: u64,
}

impl Sink<'_> {
    /// Takes one source record, CSV or JSON: counts it, then keeps it out when the mapping's
    /// filters say so, or converts it and pushes its line, or, when a value is bad, records
    /// a bad row located at `line` (and by `header`'s column names for CSV). `raw` gives the
    /// record's text for the quarantine, asked for only when it is needed.
    pub(super) fn take(
        &mut self,
        compiled: &Compiled<'_>,
        record: &Record<'_>,
        scratch: &mut Scratch,
        line: u64,
        header: Option<&[String]>,
        raw: impl FnOnce() -> String,
    ) -> Result<(), ReadError> {
        self.stats.records += 1;
        let place = Place {
            origin: &self.origin,
            line,
            line_offset: self.line_offset,
            header,
        };
        match convert_record(&mut self.store, compiled, record, scratch, &place) {
            Outcome::Pushed => {
                self.stats.lines += 1;
                self.maybe_spill()
            }
            Outcome::Filtered => {
                self.stats.filtered += 1;
                Ok(())
            }
            Outcome::Bad(error, money) => self.bad_row(*error, &raw(), money),
        }
    }

    /// Hands the lines over once there are enough of them (see `ReadOptions::spill`).
    pub(super) fn maybe_spill(&mut self) -> Result<(), ReadError> {
        if let Some(spill) = self.options.spill.as_deref_mut()
            && self.store.used_bytes() >= spill.threshold()
        {
            spill.spill(&self.store).map_err(ReadError::Spill)?;
            self.store.clear();
        }
        Ok(())
    }

    /// Takes what a batch of records gave (`convert_record`, on another thread or this
    /// one): its bad rows in file order, as `take` would have taken them one by one, then
    /// its counts; `tally` is left empty. The lines are already in the store, or are
    /// appended by the caller.
    pub(super) fn absorb(&mut self, tally: &mut Tally) -> Result<(), ReadError> {
        for bad in tally.bad.drain(..) {
            self.stats.records += 1;
            self.bad_row(bad.error, &bad.raw, bad.money)?;
        }
        self.stats.records += std::mem::take(&mut tally.records);
        self.stats.lines += std::mem::take(&mut tally.lines);
        self.stats.filtered += std::mem::take(&mut tally.filtered);
        Ok(())
    }

    /// Records a bad row: fails at once without an allowance, else quarantines it.
    /// `money`: the row's amount and currency, when they could be read.
    pub(super) fn bad_row(
        &mut self,
        error: RowError,
        raw: &str,
        money: Option<(Currency, rust_decimal::Decimal)>,
    ) -> Result<(), ReadError> {
        if self.options.max_bad_rows == 0 {
            return Err(ReadError::Row(Box::new(error)));
        }
        self.stats.bad_rows += 1;
        match money {
            Some((currency, amount)) => {
                *self.stats.bad_rows_money.entry(currency).or_default() += amount;
            }
            None => self.stats.bad_rows_unpriced += 1,
        }
        if let Some(q) = self.options.quarantine.as_mut() {
            let record = serde_json::json!({
                "file": error.origin, "line": error.line, "column": error.column,
                "column_name": error.column_name, "error": error.message, "record": raw,
            });
            writeln!(q, "{record}").map_err(ReadError::Quarantine)?;
        }
        let first = self
            .first_bad
            .get_or_insert_with(|| Box::new(error))
            .clone();
        if self.stats.bad_rows > self.options.max_bad_rows {
            return Err(ReadError::TooManyBadRows {
                origin: self.origin.clone(),
                limit: self.options.max_bad_rows,
                first,
            });
        }
        Ok(())
    }
}

/// What one batch of records gave, kept apart from the sink while it is converted: counts,
/// and the bad rows in file order (the quarantine and the allowance are the sink's).
#[derive(Default)]
pub(super) struct Tally {
    /// Records turned into lines or filtered out (bad rows are counted when absorbed).
    pub(super) records: u64,
    pub(super) lines: u64,
    pub(super) filtered: u64,
    pub(super) bad: Vec<BadRow>,
}

impl Tally {
    /// Takes one record's outcome; `raw` gives its text, asked for only for a bad row.
    pub(super) fn count(&mut self, outcome: Outcome, raw: impl FnOnce() -> String) {
        match outcome {
            Outcome::Pushed => {
                self.records += 1;
                self.lines += 1;
            }
            Outcome::Filtered => {
                self.records += 1;
                self.filtered += 1;
            }
            Outcome::Bad(error, money) => self.bad.push(BadRow {
                error: *error,
                raw: raw(),
                money,
            }),
        }
    }
}

/// A bad row waiting for the sink: the error, the record as read, its money when readable.
pub(super) struct BadRow {
    pub(super) error: RowError,
    pub(super) raw: String,
    pub(super) money: Option<(Currency, Decimal)>,
}

/// Where a record comes from, to locate it: its file, its line, the lines of the parts
/// before it (added to the line a diff refers to), and its CSV header.
pub(super) struct Place<'a> {
    pub(super) origin: &'a str,
    pub(super) line: u64,
    pub(super) line_offset: u64,
    pub(super) header: Option<&'a [String]>,
}

/// What became of one record.
pub(super) enum Outcome {
    Pushed,
    Filtered,
    Bad(Box<RowError>, Option<(Currency, Decimal)>),
}

/// The one path of every record: filtered out, or converted and pushed into `store`, or a
/// bad row located at its place (with its money, when that much can still be read).
pub(super) fn convert_record(
    store: &mut LineStore,
    compiled: &Compiled<'_>,
    record: &Record<'_>,
    scratch: &mut Scratch,
    place: &Place<'_>,
) -> Outcome {
    let result = compiled.keeps(record).and_then(|keep| {
        if !keep {
            return Ok(false);
        }
        let converted = compiled.convert(record, scratch)?;
        push_line(store, scratch, converted, place.line + place.line_offset).map(|()| true)
    });
    match result {
        Ok(true) => Outcome::Pushed,
        Ok(false) => Outcome::Filtered,
        Err(problem) => {
            let money = compiled.money(record, scratch);
            let error = locate(place.origin, place.line, problem, place.header);
            Outcome::Bad(Box::new(error), money)
        }
    }
}

/// Pushes the line `scratch` holds, numbered `line`.
fn push_line(
    store: &mut LineStore,
    scratch: &Scratch,
    converted: Converted,
    line: u64,
) -> Result<(), Problem> {
    let text: [&str; Field::COUNT] = std::array::from_fn(|i| scratch.text[i].as_str());
    store
        .push(NewLine {
            text,
            amount: converted.amount,
            line_type: converted.line_type,
            currency: converted.currency,
            source_line: u32::try_from(line).unwrap_or(u32::MAX),
        })
        .map_err(|e| Problem {
            column: None,
            message: e.to_string(),
        })
}
