//! The file adapter: reads CSV, JSON lines or a JSON document through a format mapping into
//! a [`LineStore`], streaming.
//!
//! Bad input never panics and is never half-read silently: a bad row is an error naming the
//! file, the line, the column and what was expected; with a bad-row allowance it is written
//! to a quarantine file instead and counted.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use billshadow_comparisons::model::{NewLine, encode_attributes};
use billshadow_comparisons::money::DecimalError;
use billshadow_comparisons::{Currency, Field, LineStore, LineType, parse_decimal};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::lines::{LineCounter, Lines};
use crate::mapping::{
    Attributes, Condition, DateFormat, FieldMapping, InputKind, Mapping, Scale, Source, Target,
};

/// The largest single field accepted, in bytes.
pub const FIELD_BYTES_MAX: usize = 64 * 1024;

/// The most a reader pre-allocates for the lines it will hold, whatever the file's size: the
/// store grows past it as lines come, never on the strength of a size alone.
pub const PREALLOCATE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest JSON line or document accepted, in bytes.
pub const JSON_DOCUMENT_BYTES_MAX: usize = 64 * 1024 * 1024;

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
}

/// How to treat bad rows.
#[derive(Default)]
pub struct ReadOptions<'q> {
    /// Bad rows tolerated (written to `quarantine` and counted) before the read fails.
    pub max_bad_rows: u64,
    pub quarantine: Option<&'q mut dyn Write>,
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

/// Reads a file through a mapping.
pub fn read_path(
    path: &Path,
    mapping: &Mapping,
    options: ReadOptions<'_>,
) -> Result<(LineStore, ReadStats), ReadError> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        origin: origin.clone(),
        source,
    })?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    read_from(&origin, file, size, mapping, options)
}

/// Reads from any reader; `origin` names it in errors, `size_hint` sizes the store.
pub fn read_from(
    origin: &str,
    reader: impl Read,
    size_hint: usize,
    mapping: &Mapping,
    options: ReadOptions<'_>,
) -> Result<(LineStore, ReadStats), ReadError> {
    // Canonical CSV keeps nearly all its bytes as text; a store sized to the file (up to a
    // bound: a size is a hint, not a promise) rarely has to double.
    let preallocate = size_hint.min(PREALLOCATE_BYTES_MAX);
    let mut sink = Sink {
        origin: origin.to_owned(),
        store: LineStore::with_capacity(preallocate, preallocate / 64),
        stats: ReadStats::default(),
        options,
        first_bad: None,
    };
    match mapping.input {
        InputKind::Csv => read_csv(reader, mapping, &mut sink)?,
        InputKind::Jsonl => read_jsonl(reader, mapping, &mut sink)?,
        InputKind::Json => read_json(reader, mapping, &mut sink)?,
    }
    Ok((sink.store, sink.stats))
}

struct Sink<'q> {
    origin: String,
    store: LineStore,
    stats: ReadStats,
    options: ReadOptions<'q>,
    first_bad: Option<Box<RowError>>,
}

impl Sink<'_> {
    /// Records a bad row: fails at once without an allowance, else quarantines it.
    /// `money`: the row's amount and currency, when they could be read.
    fn bad_row(
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

/// A value's problem, before it is located.
struct Problem {
    /// Index into the compiled sources of the column at fault, when one is.
    column: Option<ColumnRef>,
    message: String,
}

#[derive(Clone)]
enum ColumnRef {
    Csv(usize),
    Path(String),
}

/// Where a compiled source reads from.
#[derive(Debug, Clone)]
enum Access {
    Csv(usize),
    Json {
        path: Vec<String>,
        from_document: bool,
        text: String,
    },
    Absent,
}

struct CompiledField<'m> {
    mapping: &'m FieldMapping,
    /// The value is used as read: no default, translation or case change.
    plain: bool,
    access: Vec<Access>,
    negate_if: Option<CompiledCondition<'m>>,
}

struct CompiledCondition<'m> {
    condition: &'m Condition,
    access: Access,
}

struct Compiled<'m> {
    fields: Vec<CompiledField<'m>>,
    skip: Vec<CompiledCondition<'m>>,
    keep: Vec<CompiledCondition<'m>>,
    /// (name, access) of the columns kept as attributes.
    attributes: Vec<(String, Access)>,
    parentheses_negative: bool,
    /// The mapping's name, and whether its records are JSON (where a value can be missing
    /// from one record only, so an error names the format as a missing CSV column does).
    format: &'m str,
    json: bool,
}

/// One source record, CSV or JSON.
enum Record<'r> {
    /// A CSV row, and its text when the whole row is valid UTF-8 (checked once per row).
    Csv(&'r csv::ByteRecord, Option<&'r str>, &'r [String]),
    Json {
        record: &'r serde_json::Value,
        document: &'r serde_json::Value,
        nulls: &'r [String],
    },
}

impl<'r> Record<'r> {
    /// A source value; the mapping's null values (such as `NULL`) read as absent.
    fn get(&self, access: &Access) -> Result<Option<Cow<'r, str>>, Problem> {
        let nulls = match self {
            Record::Csv(_, _, nulls) | Record::Json { nulls, .. } => *nulls,
        };
        let value = self.get_raw(access)?;
        Ok(value.filter(|v| nulls.is_empty() || !nulls.iter().any(|n| n == v.as_ref())))
    }

    fn get_raw(&self, access: &Access) -> Result<Option<Cow<'r, str>>, Problem> {
        match (self, access) {
            (_, Access::Absent) => Ok(None),
            (Record::Csv(rec, text, _), Access::Csv(i)) => {
                // The row's text sliced at the field's bounds: valid unless a field boundary
                // splits a character, which the per-field check below then reports.
                let range = rec.range(*i).unwrap_or(0..0);
                if range.len() <= FIELD_BYTES_MAX
                    && let Some(field) = text.and_then(|t| t.get(range))
                {
                    return Ok(Some(Cow::Borrowed(field)));
                }
                let bytes = rec.get(*i).unwrap_or_default();
                if bytes.len() > FIELD_BYTES_MAX {
                    return Err(Problem {
                        column: Some(ColumnRef::Csv(*i)),
                        message: format!(
                            "the field is {} bytes long; the limit is {FIELD_BYTES_MAX}",
                            bytes.len()
                        ),
                    });
                }
                std::str::from_utf8(bytes)
                    .map(|s| Some(Cow::Borrowed(s)))
                    .map_err(|e| Problem {
                        column: Some(ColumnRef::Csv(*i)),
                        message: format!(
                            "invalid UTF-8 at byte {} of the field; expected UTF-8 text",
                            e.valid_up_to() + 1
                        ),
                    })
            }
            (
                Record::Json {
                    record, document, ..
                },
                Access::Json {
                    path,
                    from_document,
                    text,
                },
            ) => {
                let mut node: &serde_json::Value = if *from_document { document } else { record };
                for segment in path {
                    let next = match node {
                        serde_json::Value::Object(map) => map.get(segment),
                        serde_json::Value::Array(items) => {
                            segment.parse::<usize>().ok().and_then(|i| items.get(i))
                        }
                        _ => None,
                    };
                    match next {
                        Some(n) => node = n,
                        None => return Ok(None),
                    }
                }
                match node {
                    serde_json::Value::Null => Ok(None),
                    serde_json::Value::String(s) => Ok(Some(Cow::Borrowed(s.as_str()))),
                    serde_json::Value::Number(n) => Ok(Some(Cow::Owned(n.to_string()))),
                    serde_json::Value::Bool(b) => {
                        Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" })))
                    }
                    _ => Err(Problem {
                        column: Some(ColumnRef::Path(text.clone())),
                        message: "expected a string, number or boolean, found an object or array"
                            .to_owned(),
                    }),
                }
            }
            _ => Ok(None),
        }
    }
}

impl<'m> Compiled<'m> {
    /// Resolves every source against a CSV header, or against JSON paths.
    fn new(
        mapping: &'m Mapping,
        header: Option<&[String]>,
        origin: &str,
    ) -> Result<Compiled<'m>, ReadError> {
        let resolve = |name: &str| -> Access {
            match header {
                Some(h) => h
                    .iter()
                    .position(|c| c == name)
                    .map_or(Access::Absent, Access::Csv),
                None => {
                    let (from_document, rest) = match name.strip_prefix("$doc.") {
                        Some(rest) => (true, rest),
                        None => (false, name),
                    };
                    Access::Json {
                        path: rest.split('.').map(str::to_owned).collect(),
                        from_document,
                        text: name.to_owned(),
                    }
                }
            }
        };
        let condition = |c: &'m Condition| CompiledCondition {
            condition: c,
            access: resolve(&c.column),
        };
        let mut fields = Vec::new();
        for field in &mapping.fields {
            let access: Vec<Access> = field.source.columns().into_iter().map(resolve).collect();
            let missing = access
                .iter()
                .zip(field.source.columns())
                .find(|(a, _)| matches!(a, Access::Absent));
            if let (Some((_, column)), Some(h)) = (missing, header) {
                let all_missing = access.iter().all(|a| matches!(a, Access::Absent));
                let tolerated = field.optional
                    || field.default.is_some()
                    || (matches!(field.source, Source::Coalesce(_) | Source::Join(..))
                        && !all_missing);
                if !tolerated {
                    return Err(ReadError::MissingColumn {
                        origin: origin.to_owned(),
                        format: mapping.name.clone(),
                        column: column.to_owned(),
                        field: field.target.name().to_owned(),
                        header: h.join(", "),
                    });
                }
            }
            let plain = field.default.is_none()
                && field.map.is_empty()
                && !field.upper_case
                && !field.lower_case
                && field.remove.is_empty();
            fields.push(CompiledField {
                mapping: field,
                plain,
                access,
                negate_if: field.negate_if.as_ref().map(condition),
            });
        }
        let attributes = match (&mapping.attributes, header) {
            (Attributes::None, _) | (Attributes::Unmapped, None) => Vec::new(),
            (Attributes::Unmapped, Some(h)) => {
                let used: Vec<&str> = mapping
                    .fields
                    .iter()
                    .flat_map(|f| f.source.columns())
                    .collect();
                h.iter()
                    .enumerate()
                    .filter(|(_, name)| !used.contains(&name.as_str()))
                    .map(|(i, name)| (name.clone(), Access::Csv(i)))
                    .collect()
            }
            (Attributes::List(list), _) => list
                .iter()
                .map(|(name, column)| (name.clone(), resolve(column)))
                .collect(),
        };
        Ok(Compiled {
            fields,
            skip: mapping.skip.iter().map(condition).collect(),
            keep: mapping.keep.iter().map(condition).collect(),
            attributes,
            parentheses_negative: mapping.parentheses_negative,
            format: &mapping.name,
            json: header.is_none(),
        })
    }

    /// Why a required value is empty: in JSON, the record lacks the path the format reads.
    fn empty(&self, target: Target, expected: &str) -> String {
        if self.json {
            format!(
                "no value; the `{}` format reads the required field `{}` here, expected {expected}",
                self.format,
                target.name()
            )
        } else {
            format!("empty value; expected {expected}")
        }
    }
}

/// Reusable buffers for turning one record into one line.
struct Scratch {
    text: [String; Field::COUNT],
    attributes: String,
    /// The last currency text seen and what it parsed to: exports repeat it on every row.
    currency_memo: Option<(String, Currency)>,
    /// Per date field, the last source text and the canonical date it became.
    date_memo: [(String, String); Field::COUNT],
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            text: std::array::from_fn(|_| String::new()),
            attributes: String::new(),
            currency_memo: None,
            date_memo: std::array::from_fn(|_| (String::new(), String::new())),
        }
    }
}

/// The canonical values of one record.
struct Converted {
    amount: Decimal,
    currency: Currency,
    line_type: LineType,
}

impl Compiled<'_> {
    /// Whether the mapping's filters keep this record.
    fn keeps(&self, record: &Record<'_>) -> Result<bool, Problem> {
        for c in &self.skip {
            if holds(c, record)? {
                return Ok(false);
            }
        }
        for c in &self.keep {
            if !holds(c, record)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn convert(&self, record: &Record<'_>, scratch: &mut Scratch) -> Result<Converted, Problem> {
        self.convert_fields(record, scratch, false)
    }

    /// The amount and currency of a record that could not be converted whole, when those two
    /// can be read: the money a quarantine leaves out.
    fn money(
        &self,
        record: &Record<'_>,
        scratch: &mut Scratch,
    ) -> Option<(Currency, rust_decimal::Decimal)> {
        self.convert_fields(record, scratch, true)
            .ok()
            .map(|c| (c.currency, c.amount))
    }

    fn convert_fields(
        &self,
        record: &Record<'_>,
        scratch: &mut Scratch,
        only_money: bool,
    ) -> Result<Converted, Problem> {
        for text in &mut scratch.text {
            text.clear();
        }
        let mut amount = None;
        let mut currency = None;
        let mut line_type = LineType::Usage;
        // Amount, quantity and unit price read in minor units: (field, value, column).
        let mut in_minor: [InMinorUnits<'_, '_>; 3] = [None; 3];
        for field in &self.fields {
            if only_money
                && !matches!(
                    field.mapping.target,
                    Target::Currency | Target::Text(Field::Amount)
                )
            {
                continue;
            }
            let (value, column) = Compiled::source_value(field, record)?;
            let value = if field.plain {
                value
            } else {
                transform(field.mapping, value)
            };
            let fault = |message: String| Problem {
                column: field.access.get(column).and_then(column_ref),
                message,
            };
            let value = value.as_ref().trim_ascii_end();
            match field.mapping.target {
                Target::Currency => {
                    if value.is_empty() {
                        return Err(fault(
                            self.empty(Target::Currency, "an ISO 4217 currency code"),
                        ));
                    }
                    currency = Some(match &scratch.currency_memo {
                        Some((text, parsed)) if text == value => *parsed,
                        _ => {
                            let parsed = value
                                .parse::<Currency>()
                                .map_err(|e| fault(e.to_string()))?;
                            scratch.currency_memo = Some((value.to_owned(), parsed));
                            parsed
                        }
                    });
                }
                Target::LineType => {
                    if !value.is_empty() {
                        line_type = value.parse().map_err(
                            |e: billshadow_comparisons::model::LineTypeError| fault(e.to_string()),
                        )?;
                    }
                }
                Target::Text(f @ (Field::Amount | Field::Quantity | Field::UnitPrice)) => {
                    if value.is_empty() {
                        if f == Field::Amount {
                            return Err(fault(
                                self.empty(field.mapping.target, "an amount such as 12.50"),
                            ));
                        }
                        continue;
                    }
                    let negate = field.mapping.negate
                        || match &field.negate_if {
                            Some(c) => holds(c, record)?,
                            None => false,
                        };
                    let (factor, in_minor_units) = match &field.mapping.scale {
                        Some(Scale::Factor(factor)) => (Some(*factor), false),
                        Some(Scale::Minor { .. }) => (None, true),
                        None => (None, false),
                    };
                    let (parsed, changed) = self
                        .decimal(value, f == Field::Amount && !in_minor_units, factor, negate)
                        .map_err(|e| fault(e.to_string()))?;
                    if in_minor_units {
                        // Scaled once the record's currency is known, after this loop.
                        let slot = match f {
                            Field::Amount => 0,
                            Field::Quantity => 1,
                            _ => 2,
                        };
                        in_minor[slot] = Some((field, parsed, column));
                        continue;
                    }
                    let out = &mut scratch.text[f as usize];
                    if changed {
                        use std::fmt::Write as _;
                        let _ = write!(out, "{parsed}");
                    } else {
                        out.push_str(value.trim_ascii());
                    }
                    if f == Field::Amount {
                        amount = Some(parsed);
                    }
                }
                Target::Text(f) if Target::Text(f).is_date_field() => {
                    if value.is_empty() {
                        if matches!(f, Field::PeriodStart | Field::PeriodEnd) {
                            return Err(fault(
                                self.empty(field.mapping.target, "a date (YYYY-MM-DD)"),
                            ));
                        }
                        continue;
                    }
                    let (memo_text, memo_date) = &mut scratch.date_memo[f as usize];
                    if memo_text.as_str() != value || memo_text.is_empty() {
                        memo_date.clear();
                        write_date(
                            value,
                            &field.mapping.date_format,
                            field.mapping.shift_days,
                            field.mapping.exclusive_end,
                            memo_date,
                        )
                        .map_err(fault)?;
                        memo_text.clear();
                        memo_text.push_str(value);
                    }
                    scratch.text[f as usize].push_str(memo_date);
                }
                Target::Text(f) => {
                    if value.is_empty() && matches!(f, Field::AccountId | Field::ChargeCode) {
                        return Err(fault(if self.json {
                            self.empty(field.mapping.target, "a value")
                        } else {
                            format!("empty value; `{}` is required", f.name())
                        }));
                    }
                    scratch.text[f as usize].push_str(value);
                }
            }
        }
        if let Some(currency) = currency
            && let Some(units) = write_minor_units(&in_minor, currency, &mut scratch.text)?
        {
            amount = Some(units);
        }
        for field in self.fields.iter().filter(|f| f.mapping.exclusive_end) {
            clamp_end(field.mapping.target, &mut scratch.text);
        }
        // Both are YYYY-MM-DD here, so text order is date order.
        let (start, end) = (
            &scratch.text[Field::PeriodStart as usize],
            &scratch.text[Field::PeriodEnd as usize],
        );
        if !start.is_empty() && !end.is_empty() && end < start {
            let column = self
                .fields
                .iter()
                .find(|f| f.mapping.target == Target::Text(Field::PeriodEnd))
                .and_then(|f| f.access.first())
                .and_then(column_ref);
            return Err(Problem {
                column,
                message: format!("period_end {end} is before period_start {start}"),
            });
        }
        if !only_money && !self.attributes.is_empty() {
            let mut pairs: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(self.attributes.len());
            for (name, access) in &self.attributes {
                if let Some(v) = record.get(access)? {
                    pairs.push((name.as_str(), v));
                }
            }
            encode_attributes(
                pairs.iter().map(|(n, v)| (*n, v.as_ref())),
                &mut scratch.attributes,
            );
            scratch.text[Field::Attributes as usize].push_str(&scratch.attributes);
        }
        let (Some(amount), Some(currency)) = (amount, currency) else {
            return Err(Problem {
                column: None,
                message: "the record has no amount or no currency".to_owned(),
            });
        };
        Ok(Converted {
            amount,
            currency,
            line_type,
        })
    }

    /// The raw value of a field's source, and which column it came from.
    /// The raw value of a field's source, and the index (in `field.access`) of the column it
    /// came from, for error messages.
    fn source_value<'a>(
        field: &CompiledField<'a>,
        record: &Record<'a>,
    ) -> Result<(Cow<'a, str>, usize), Problem> {
        let value = match &field.mapping.source {
            Source::Constant(c) => (Cow::Borrowed(c.as_str()), usize::MAX),
            Source::Column(_) => (record.get(&field.access[0])?.unwrap_or_default(), 0),
            Source::Coalesce(_) => {
                let mut found = (Cow::Borrowed(""), 0);
                for (i, access) in field.access.iter().enumerate() {
                    if let Some(v) = record.get(access)?.filter(|v| !v.is_empty()) {
                        found = (v, i);
                        break;
                    }
                }
                found
            }
            Source::Join(_, separator) => {
                let mut parts = Vec::new();
                for access in &field.access {
                    if let Some(v) = record.get(access)?.filter(|v| !v.is_empty()) {
                        parts.push(v);
                    }
                }
                (Cow::Owned(parts.join(separator.as_str())), 0)
            }
        };
        Ok(value)
    }

    /// Parses a decimal, applying the mapping's scale and sign; says whether the value
    /// differs from its source text (which is kept as is when it does not).
    fn decimal(
        &self,
        value: &str,
        is_amount: bool,
        scale: Option<Decimal>,
        negate: bool,
    ) -> Result<(Decimal, bool), DecimalError> {
        let trimmed = value.trim_ascii();
        let (text, parenthesised) =
            match trimmed.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
                Some(inner) if self.parentheses_negative => (inner, true),
                _ => (trimmed, false),
            };
        let mut d = parse_decimal(text)?;
        let changed = scale.is_some() || negate || parenthesised;
        if let Some(s) = scale {
            d = d
                .checked_mul(s)
                .ok_or_else(|| DecimalError::OutOfRange(value.to_owned()))?;
        }
        if negate != parenthesised && !d.is_zero() {
            d.set_sign_negative(!d.is_sign_negative());
        }
        if is_amount && d.abs() >= billshadow_comparisons::money::AMOUNT_ABS_LIMIT {
            return Err(DecimalError::OutOfRange(value.to_owned()));
        }
        Ok((d, changed))
    }
}

/// A field read in minor units: the field, its value as written, the column it came from.
type InMinorUnits<'a, 'm> = Option<(&'a CompiledField<'m>, Decimal, usize)>;

/// Writes the fields read in minor units once the record's currency is known; returns the
/// amount when it is one of them.
fn write_minor_units(
    in_minor: &[InMinorUnits<'_, '_>],
    currency: Currency,
    text: &mut [String; Field::COUNT],
) -> Result<Option<Decimal>, Problem> {
    let mut amount = None;
    for (field, value, column) in in_minor.iter().flatten() {
        let units = from_minor_units(field.mapping, *value, currency).map_err(|e| Problem {
            column: field.access.get(*column).and_then(column_ref),
            message: e.to_string(),
        })?;
        if let Target::Text(f) = field.mapping.target {
            use std::fmt::Write as _;
            let _ = write!(text[f as usize], "{units}");
            if f == Field::Amount {
                amount = Some(units);
            }
        }
    }
    Ok(amount)
}

/// A value written in minor units of `currency`, in units: 1000 USD cents → 10.00, 1000 JPY
/// → 1000, 1000 BHD fils → 1.000 (or by the mapping's exponent for that currency).
fn from_minor_units(
    mapping: &FieldMapping,
    value: Decimal,
    currency: Currency,
) -> Result<Decimal, DecimalError> {
    let exponent = match &mapping.scale {
        Some(Scale::Minor { exponents }) => exponents.get(currency.code()).copied(),
        _ => None,
    }
    .unwrap_or_else(|| currency.minor_unit_exponent());
    let units = value
        .checked_mul(Decimal::new(1, exponent))
        .ok_or_else(|| DecimalError::OutOfRange(value.to_string()))?;
    if mapping.target == Target::Text(Field::Amount)
        && units.abs() >= billshadow_comparisons::money::AMOUNT_ABS_LIMIT
    {
        return Err(DecimalError::OutOfRange(value.to_string()));
    }
    Ok(units)
}

/// An end read as exclusive never falls before the start it ends: a charge at one instant
/// (Stripe's one-off items, Kill Bill's fixed items) has its start and end equal, and the day
/// before its end would precede its start.
fn clamp_end(target: Target, text: &mut [String; Field::COUNT]) {
    let (start, end) = match target {
        Target::Text(Field::PeriodEnd) => (Field::PeriodStart, Field::PeriodEnd),
        Target::Text(Field::UsageEnd) => (Field::UsageStart, Field::UsageEnd),
        _ => return,
    };
    // Both are YYYY-MM-DD here, so text order is date order.
    if !text[start as usize].is_empty() && text[end as usize] < text[start as usize] {
        let start = text[start as usize].clone();
        text[end as usize] = start;
    }
}

impl Target {
    fn is_date_field(self) -> bool {
        matches!(
            self,
            Target::Text(
                Field::PeriodStart | Field::PeriodEnd | Field::UsageStart | Field::UsageEnd
            )
        )
    }
}

fn column_ref(access: &Access) -> Option<ColumnRef> {
    match access {
        Access::Csv(i) => Some(ColumnRef::Csv(*i)),
        Access::Json { text, .. } => Some(ColumnRef::Path(text.clone())),
        Access::Absent => None,
    }
}

fn holds(c: &CompiledCondition<'_>, record: &Record<'_>) -> Result<bool, Problem> {
    let value = record.get(&c.access)?.unwrap_or_default();
    let value = value.as_ref();
    Ok((c.condition.empty && value.is_empty())
        || c.condition.equals.iter().any(|e| e == value)
        || c.condition
            .matches
            .as_ref()
            .is_some_and(|p| p.matches(value)))
}

fn transform<'v>(mapping: &FieldMapping, value: Cow<'v, str>) -> Cow<'v, str> {
    let mut value = value;
    if value.is_empty()
        && let Some(d) = &mapping.default
    {
        value = Cow::Owned(d.clone());
    }
    if let Some(mapped) = mapping.map.get(value.as_ref()) {
        value = Cow::Owned(mapped.clone());
    }
    if !mapping.remove.is_empty() {
        value = Cow::Owned(
            value
                .chars()
                .filter(|c| !mapping.remove.contains(*c))
                .collect(),
        );
    }
    if mapping.upper_case {
        value = Cow::Owned(value.to_uppercase());
    } else if mapping.lower_case {
        value = Cow::Owned(value.to_lowercase());
    }
    value
}

/// Writes a date as `YYYY-MM-DD`; an exclusive end bound at midnight becomes the day before.
fn write_date(
    value: &str,
    format: &DateFormat,
    shift_days: i64,
    exclusive_end: bool,
    out: &mut String,
) -> Result<(), String> {
    let value = value.trim_ascii();
    let (date, midnight) = match format {
        DateFormat::Iso => {
            let date_part = value.get(..10).unwrap_or(value);
            let rest = value.get(10..).unwrap_or("");
            if !rest.is_empty() && !rest.starts_with(['T', ' ']) {
                return Err(format!("`{value}` is not a date; expected YYYY-MM-DD"));
            }
            let date = parse_iso_date(date_part)
                .ok_or_else(|| format!("`{value}` is not a date; expected YYYY-MM-DD"))?;
            (date, iso_time_is_midnight(rest))
        }
        DateFormat::Pattern(p) => {
            let midnight = chrono::NaiveTime::MIN;
            NaiveDate::parse_from_str(value, p)
                .map(|d| (d, true))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(value, p)
                        .map(|dt| (dt.date(), dt.time() == midnight))
                })
                .or_else(|_| {
                    chrono::DateTime::parse_from_str(value, p).map(|dt| {
                        let utc = dt.naive_utc();
                        (utc.date(), utc.time() == midnight)
                    })
                })
                .map_err(|e| format!("`{value}` does not match the date format `{p}`: {e}"))?
        }
        DateFormat::UnixSeconds | DateFormat::UnixMillis => {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a Unix timestamp"))?;
            let per_second = if matches!(format, DateFormat::UnixMillis) {
                1000
            } else {
                1
            };
            let date = chrono::DateTime::from_timestamp(n.div_euclid(per_second), 0)
                .ok_or_else(|| format!("`{value}` is out of the range of dates"))?
                .date_naive();
            (date, n.rem_euclid(86_400 * per_second) == 0)
        }
    };
    let shift_days = if exclusive_end && midnight {
        -1
    } else {
        shift_days
    };
    let date = date
        .checked_add_signed(chrono::TimeDelta::days(shift_days))
        .ok_or_else(|| {
            format!("`{value}` shifted by {shift_days} days is out of the range of dates")
        })?;
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    );
    Ok(())
}

/// Whether the time after an ISO date (`""`, `T00:00:00Z`, ` 00:00:00.000+02:00` …) is
/// midnight: a date alone is.
fn iso_time_is_midnight(rest: &str) -> bool {
    let time = rest.get(1..).unwrap_or("");
    let time = time
        .find(['Z', 'z', '+', '-'])
        .map_or(time, |end| &time[..end]);
    time.bytes().all(|b| matches!(b, b'0' | b':' | b'.'))
}

/// `YYYY-MM-DD` with a real calendar date.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )
}

fn locate(origin: &str, line: u64, problem: Problem, header: Option<&[String]>) -> RowError {
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

fn push_line(
    sink: &mut Sink<'_>,
    scratch: &Scratch,
    converted: Converted,
    line: u64,
) -> Result<(), Problem> {
    let text: [&str; Field::COUNT] = std::array::from_fn(|i| scratch.text[i].as_str());
    sink.store
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
        })?;
    sink.stats.lines += 1;
    Ok(())
}

fn read_csv(reader: impl Read, mapping: &Mapping, sink: &mut Sink<'_>) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let io_error = |source| ReadError::Io {
        origin: origin.clone(),
        source,
    };
    let reader = BufReader::with_capacity(1 << 16, reader);
    // A record's line from its byte offset: right with LF, CRLF, CR alone, a file switching
    // between them and blank lines (`lines.rs`).
    let (reader, lines) = LineCounter::new(reader);
    let record_start = crate::guard::record_start();
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(mapping.delimiter)
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(crate::guard::CsvGuard::new(
            reader,
            mapping.delimiter,
            std::rc::Rc::clone(&record_start),
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
    let expected_header = || {
        let names: Vec<&str> = mapping
            .fields
            .iter()
            .flat_map(|f| f.source.columns())
            .collect();
        format!("a header row with the columns {}", names.join(", "))
    };
    if header_record.is_empty()
        || (header_record.len() == 1 && header_record[0].trim_ascii().is_empty())
    {
        return Err(ReadError::Empty {
            origin: origin.clone(),
            expected: expected_header(),
        });
    }
    let mut header = Vec::with_capacity(header_record.len());
    for (i, name) in header_record.iter().enumerate() {
        let name = std::str::from_utf8(name).map_err(|_| {
            ReadError::Row(Box::new(RowError {
                origin: origin.clone(),
                line: 1,
                column: Some(i + 1),
                column_name: None,
                message: "invalid UTF-8 in the header; expected UTF-8 text".to_owned(),
            }))
        })?;
        let name = name.trim_start_matches('\u{feff}').trim().to_owned();
        if let Some(first) = header.iter().position(|h| *h == name) {
            return Err(ReadError::DuplicateColumn {
                origin: origin.clone(),
                column: name,
                index: i + 1,
                first: first + 1,
            });
        }
        header.push(name);
    }
    let compiled = Compiled::new(mapping, Some(&header), &origin)?;
    let mut scratch = Scratch::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let read = csv.read_byte_record(&mut record);
        next_record(&csv);
        match read {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    let csv::ErrorKind::Io(source) = e.into_kind() else {
                        unreachable!()
                    };
                    if let Some(found) = crate::guard::too_long(&source) {
                        return Err(too_long(&origin, found, Some(header.as_slice())));
                    }
                    return Err(io_error(source));
                }
                let line = e.position().map_or(0, |p| p.line());
                let raw = as_read(&record, mapping.delimiter);
                let row = match csv_error(&origin, e, &lines) {
                    ReadError::Row(row) => *row,
                    other => return Err(other),
                };
                sink.stats.records += 1;
                sink.bad_row(row, &raw, None)?;
                // The reader resynchronises at the next record; a field-count error does
                // not leave it mid-record.
                let _ = line;
                continue;
            }
        }
        sink.stats.records += 1;
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        let view = Record::Csv(
            &record,
            std::str::from_utf8(record.as_slice()).ok(),
            &mapping.null_values,
        );
        let result = compiled.keeps(&view).and_then(|keep| {
            if !keep {
                return Ok(false);
            }
            let converted = compiled.convert(&view, &mut scratch)?;
            push_line(sink, &scratch, converted, line).map(|()| true)
        });
        match result {
            Ok(true) => {}
            Ok(false) => sink.stats.filtered += 1,
            Err(problem) => {
                let raw = as_read(&record, mapping.delimiter);
                let money = compiled.money(&view, &mut scratch);
                sink.bad_row(locate(&origin, line, problem, Some(&header)), &raw, money)?;
            }
        }
    }
    Ok(())
}

/// A CSV record as it was read: its fields with the file's delimiter, quoted where they
/// need it, so the quarantined row reads back as the same fields.
fn as_read(record: &csv::ByteRecord, delimiter: u8) -> String {
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
        csv::ErrorKind::Io(source) => match crate::guard::too_long(&source) {
            Some(found) => too_long(origin, found, None),
            None => ReadError::Io {
                origin: origin.to_owned(),
                source,
            },
        },
        _ => ReadError::Row(Box::new(RowError {
            origin: origin.to_owned(),
            line,
            column,
            column_name: None,
            message,
        })),
    }
}

/// A field or record the guard refused while reading, located (by its header name too when
/// the header is known).
fn too_long(origin: &str, found: &crate::guard::TooLong, header: Option<&[String]>) -> ReadError {
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

fn read_jsonl(reader: impl Read, mapping: &Mapping, sink: &mut Sink<'_>) -> Result<(), ReadError> {
    let origin = sink.origin.clone();
    let compiled = Compiled::new(mapping, None, &origin)?;
    let mut scratch = Scratch::new();
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    let mut documents = 0u64;
    loop {
        buffer.clear();
        let read = (&mut reader)
            .take(JSON_DOCUMENT_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|source| ReadError::Io {
                origin: origin.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        if buffer.len() > JSON_DOCUMENT_BYTES_MAX {
            let error = RowError {
                origin: origin.clone(),
                line: line_number,
                column: None,
                column_name: None,
                message: format!("the line is longer than {JSON_DOCUMENT_BYTES_MAX} bytes"),
            };
            return Err(ReadError::Row(Box::new(error)));
        }
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

fn read_json(reader: impl Read, mapping: &Mapping, sink: &mut Sink<'_>) -> Result<(), ReadError> {
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
        sink.stats.records += 1;
        let view = Record::Json {
            record,
            document,
            nulls: &mapping.null_values,
        };
        let result = compiled.keeps(&view).and_then(|keep| {
            if !keep {
                return Ok(false);
            }
            let converted = compiled.convert(&view, scratch)?;
            push_line(sink, scratch, converted, line).map(|()| true)
        });
        match result {
            Ok(true) => {}
            Ok(false) => sink.stats.filtered += 1,
            Err(problem) => {
                let raw = if raw.is_empty() {
                    record.to_string()
                } else {
                    raw.to_owned()
                };
                let money = compiled.money(&view, scratch);
                sink.bad_row(locate(&origin, line, problem, None), &raw, money)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_date(value: &str, format: DateFormat, shift: i64, expected: Result<&str, &str>) {
        let mut out = String::new();
        let got =
            write_date(value, &format, shift, false, &mut out).map(|()| out.as_str().to_owned());
        match expected {
            Ok(e) => assert_eq!(got.as_deref(), Ok(e), "{value}"),
            Err(fragment) => assert!(
                got.as_ref().is_err_and(|m| m.contains(fragment)),
                "{value}: {got:?}"
            ),
        }
    }

    /// Reads `input` through a mapping made of `fields` (TOML lines under `[fields]`, after
    /// `head`, lines above it) and renders each line as `field=value` pairs for `shown`.
    fn read(input_kind: &str, head: &str, fields: &str, input: &str, shown: &[Field]) -> String {
        let toml = format!("name = \"t\"\ninput = \"{input_kind}\"\n{head}\n[fields]\n{fields}");
        let mapping = match Mapping::from_toml("t.toml", &toml) {
            Ok(m) => m,
            Err(e) => return format!("mapping error: {e}"),
        };
        match read_from("in", input.as_bytes(), 0, &mapping, ReadOptions::default()) {
            Err(e) => format!("read error: {e}"),
            Ok((store, _)) => store
                .lines()
                .map(|line| {
                    let mut out: Vec<String> = shown
                        .iter()
                        .map(|f| format!("{}={}", f.name(), line.get(*f)))
                        .collect();
                    out.extend(line.attributes().map(|(n, v)| format!("@{n}={v}")));
                    out.join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    const CSV_FIELDS: &str = r#"
account_id = "acct"
period_start = "start"
period_end = "end"
charge_code = "sku"
currency = "cur"
"#;

    fn check_amount(amount: &str, cur: &str, raw: &str, expected: &str) {
        let fields = format!("{CSV_FIELDS}amount = {amount}");
        let input = format!("acct,start,end,sku,cur,raw\na,2026-10-01,2026-10-31,s,{cur},{raw}\n");
        let got = read(
            "csv",
            "attributes = \"none\"",
            &fields,
            &input,
            &[Field::Amount],
        );
        assert_eq!(got, expected, "{amount} {cur} {raw}");
    }

    #[test]
    fn amounts_in_the_minor_unit_of_their_own_currency() {
        let minor = r#"{ column = "raw", scale = "minor" }"#;
        check_amount(minor, "USD", "1000", "amount=10.00");
        check_amount(minor, "JPY", "1000", "amount=1000");
        check_amount(minor, "BHD", "1005", "amount=1.005");
        check_amount(minor, "EUR", "-250", "amount=-2.50");
        // Stripe counts ISK in hundredths although ISO 4217 gives it no decimals.
        let isk = r#"{ column = "raw", scale = "minor", minor_units = { ISK = 2 } }"#;
        check_amount(isk, "ISK", "50000", "amount=500.00");
        check_amount(isk, "USD", "50000", "amount=500.00");
        check_amount(minor, "ISK", "500", "amount=500");
        check_amount(
            minor,
            "USD",
            "12.5x",
            "read error: in, line 2, column 6 (`raw`): `12.5x` is not a decimal number (expected digits with an optional `.`, sign and exponent, such as 12.50 or -1.5E+2)",
        );
        let bad = r#"{ column = "raw", scale = "minor", minor_units = { isk = 2 } }"#;
        assert!(check_error(bad).contains("minor_units: `isk` is not an ISO 4217 currency code"));
        let bad = r#"{ column = "raw", scale = "cents", minor_units = { ISK = 2 } }"#;
        assert!(check_error(bad).contains("`minor_units` goes with `scale = \"minor\"` only"));
    }

    fn check_error(amount: &str) -> String {
        let fields = format!("{CSV_FIELDS}amount = {amount}");
        read("csv", "", &fields, "x\n", &[])
    }

    #[test]
    fn null_values_read_as_empty() {
        let fields = format!(
            "{CSV_FIELDS}amount = \"raw\"\nregion = {{ column = \"region\", default = \"global\" }}"
        );
        let input = "acct,start,end,sku,cur,raw,region,note\na,2026-10-01,2026-10-31,s,USD,1,NULL,NULL\na,2026-10-01,2026-10-31,s,USD,2,,x\n";
        let got = read(
            "csv",
            "null_values = [\"NULL\"]",
            &fields,
            input,
            &[Field::Region],
        );
        assert_eq!(got, "region=global\nregion=global @note=x");
        let got = read("csv", "", &fields, input, &[Field::Region]);
        assert_eq!(got, "region=NULL @note=NULL\nregion=global @note=x");
    }

    #[test]
    fn characters_removed_before_reading() {
        let amount = r#"{ column = "raw", remove = "$, " }"#;
        check_amount(amount, "USD", "\"$10,000.50 \"", "amount=10000.50");
        check_amount(
            "\"raw\"",
            "USD",
            "\"$10,000.50\"",
            "read error: in, line 2, column 6 (`raw`): `$10,000.50` is not a decimal number (expected digits with an optional `.`, sign and exponent, such as 12.50 or -1.5E+2)",
        );
    }

    #[test]
    fn attributes_renamed() {
        let fields = format!("{CSV_FIELDS}amount = \"raw\"");
        let input = "acct,start,end,sku,cur,raw,lineItem/ResourceId,other\na,2026-10-01,2026-10-31,s,USD,1,i-1,z\n";
        let head = "attributes = { resource = \"lineItem/ResourceId\" }";
        assert_eq!(read("csv", head, &fields, input, &[]), "@resource=i-1");
        let head = "attributes = [\"other\"]";
        assert_eq!(read("csv", head, &fields, input, &[]), "@other=z");
    }

    fn check_end(end: &str, start: &str, format: &str, expected: &str) {
        let fields = format!(
            "account_id = \"acct\"\ncharge_code = \"sku\"\ncurrency = {{ constant = \"USD\" }}\namount = {{ constant = \"1\" }}\nperiod_start = {{ column = \"start\", date_format = \"{format}\" }}\nperiod_end = {{ column = \"end\", date_format = \"{format}\", exclusive_end = true }}"
        );
        let input = format!("acct,sku,start,end\na,s,{start},{end}\n");
        let got = read(
            "csv",
            "",
            &fields,
            &input,
            &[Field::PeriodStart, Field::PeriodEnd],
        );
        assert_eq!(got, expected, "{start} {end} {format}");
    }

    #[test]
    fn exclusive_ends() {
        let month = "period_start=2026-10-01 period_end=2026-10-31";
        check_end("2026-11-01", "2026-10-01", "iso", month);
        check_end("2026-11-01T00:00:00Z", "2026-10-01T00:00:00Z", "iso", month);
        check_end("2026-11-01T00:00:00.000+02:00", "2026-10-01", "iso", month);
        check_end("2026-11-01 00:00:00", "2026-10-01", "iso", month);
        check_end("2026-10-31T23:59:59Z", "2026-10-01", "iso", month);
        check_end("2026-10-31T12:00:00Z", "2026-10-01", "iso", month);
        // A charge at one instant: its end equals its start, and stays on that day.
        let day = "period_start=2026-10-15 period_end=2026-10-15";
        check_end("2026-10-15", "2026-10-15", "iso", day);
        check_end("2026-10-15T00:00:00Z", "2026-10-15T00:00:00Z", "iso", day);
        // Unix seconds: 2026-11-01T00:00:00Z is 1793491200.
        check_end("1793491200", "1790812800", "unix", month);
        check_end("1793491199", "1790812800", "unix", month);
        check_end("1793491200000", "1790812800000", "unix_ms", month);
        check_end("1792065600", "1792065600", "unix", day);
        check_end("11/01/2026", "10/01/2026", "%m/%d/%Y", month);
    }

    #[test]
    fn exclusive_end_is_for_ends_only() {
        let fields = format!(
            "{CSV_FIELDS}amount = {{ column = \"raw\" }}\nusage_start = {{ column = \"u\", exclusive_end = true }}"
        );
        assert!(
            read("csv", "", &fields, "x\n", &[])
                .contains("`exclusive_end` applies to period_end and usage_end only"),
        );
        let fields = CSV_FIELDS.replace(
            "period_end = \"end\"",
            "period_end = { column = \"end\", exclusive_end = true, shift_days = -1 }",
        );
        let fields = format!("{fields}amount = \"raw\"");
        assert!(
            read("csv", "", &fields, "x\n", &[])
                .contains("give `exclusive_end` or `shift_days`, not both")
        );
    }

    #[test]
    fn rows_of_a_crlf_file_are_located_on_their_own_line() {
        let fields = format!("{CSV_FIELDS}amount = \"raw\"");
        for (ending, name) in [("\n", "lf"), ("\r\n", "crlf")] {
            let input = [
                "acct,start,end,sku,cur,raw",
                "a,2026-10-01,2026-10-31,s,USD,1",
                "a,2026-10-01,2026-10-31,s,USD,x",
                "",
            ]
            .join(ending);
            let got = read("csv", "", &fields, &input, &[]);
            assert!(
                got.starts_with("read error: in, line 3, column 6 (`raw`)"),
                "{name}: {got}"
            );
            let input = [
                "acct,start,end,sku,cur,raw",
                "a,2026-10-01,2026-10-31,s,USD,1",
                "a,2026-10-01",
                "",
            ]
            .join(ending);
            let got = read("csv", "", &fields, &input, &[]);
            assert!(
                got.starts_with("read error: in, line 3: the row has 2 fields"),
                "{name}: {got}"
            );
        }
    }

    #[test]
    fn dates() {
        check_date("2026-10-01", DateFormat::Iso, 0, Ok("2026-10-01"));
        check_date("2026-10-01T00:00:00Z", DateFormat::Iso, 0, Ok("2026-10-01"));
        check_date(
            "2026-11-01T00:00:00Z",
            DateFormat::Iso,
            -1,
            Ok("2026-10-31"),
        );
        check_date("2026-02-30", DateFormat::Iso, 0, Err("is not a date"));
        check_date("2026-1-01", DateFormat::Iso, 0, Err("is not a date"));
        check_date("2026-10-01x", DateFormat::Iso, 0, Err("is not a date"));
        check_date(
            "10/31/2026",
            DateFormat::Pattern("%m/%d/%Y".into()),
            0,
            Ok("2026-10-31"),
        );
        check_date("1700000000", DateFormat::UnixSeconds, 0, Ok("2023-11-14"));
        check_date("1700000000000", DateFormat::UnixMillis, 0, Ok("2023-11-14"));
        check_date(
            "soon",
            DateFormat::UnixSeconds,
            0,
            Err("not a Unix timestamp"),
        );
    }
}
