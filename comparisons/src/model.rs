//! The canonical bill model: line items of one side, stored compactly.
//!
//! Every adapter produces a [`LineStore`] per side; all comparison happens on it. A line's
//! text fields live in one arena per side (no allocation per field), which keeps a million
//! lines in well under 150 MiB. Only the amount is held as a [`Decimal`]: it is needed for
//! every total. Quantity and unit price stay text that was validated on the way in, and are
//! parsed only when the two sides' bytes differ.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::money::Currency;

/// What kind of charge a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineType {
    Usage,
    Recurring,
    Fixed,
    OneTime,
    Credit,
    Discount,
    Tax,
    Fee,
    Adjustment,
}

impl LineType {
    pub const ALL: [LineType; 9] = [
        LineType::Usage,
        LineType::Recurring,
        LineType::Fixed,
        LineType::OneTime,
        LineType::Credit,
        LineType::Discount,
        LineType::Tax,
        LineType::Fee,
        LineType::Adjustment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Usage => "usage",
            LineType::Recurring => "recurring",
            LineType::Fixed => "fixed",
            LineType::OneTime => "one_time",
            LineType::Credit => "credit",
            LineType::Discount => "discount",
            LineType::Tax => "tax",
            LineType::Fee => "fee",
            LineType::Adjustment => "adjustment",
        }
    }
}

/// A string that is not one of the line types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a line type (expected one of usage, recurring, fixed, one_time, credit, discount, tax, fee, adjustment)"
)]
pub struct LineTypeError(pub String);

impl FromStr for LineType {
    type Err = LineTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_ascii();
        LineType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| LineTypeError(s.to_owned()))
    }
}

impl fmt::Display for LineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text fields of a canonical line item, in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    AccountId,
    PeriodStart,
    PeriodEnd,
    ChargeCode,
    Description,
    Quantity,
    Unit,
    UnitPrice,
    Amount,
    Region,
    Partition,
    CustomerId,
    InvoiceId,
    LineId,
    UsageStart,
    UsageEnd,
    /// Extra columns, as `name=value` pairs sorted by name (so their order is cosmetic).
    Attributes,
}

impl Field {
    pub const COUNT: usize = 17;
    pub const ALL: [Field; Field::COUNT] = [
        Field::AccountId,
        Field::PeriodStart,
        Field::PeriodEnd,
        Field::ChargeCode,
        Field::Description,
        Field::Quantity,
        Field::Unit,
        Field::UnitPrice,
        Field::Amount,
        Field::Region,
        Field::Partition,
        Field::CustomerId,
        Field::InvoiceId,
        Field::LineId,
        Field::UsageStart,
        Field::UsageEnd,
        Field::Attributes,
    ];

    /// The column name in the canonical CSV.
    pub fn name(self) -> &'static str {
        match self {
            Field::AccountId => "account_id",
            Field::PeriodStart => "period_start",
            Field::PeriodEnd => "period_end",
            Field::ChargeCode => "charge_code",
            Field::Description => "description",
            Field::Quantity => "quantity",
            Field::Unit => "unit",
            Field::UnitPrice => "unit_price",
            Field::Amount => "amount",
            Field::Region => "region",
            Field::Partition => "partition",
            Field::CustomerId => "customer_id",
            Field::InvoiceId => "invoice_id",
            Field::LineId => "line_id",
            Field::UsageStart => "usage_start",
            Field::UsageEnd => "usage_end",
            Field::Attributes => "attributes",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The separators of the serialised attributes: unit separator between name and value,
/// record separator between pairs. Neither can occur in a CSV field a person wrote.
pub const ATTRIBUTE_KV: char = '\u{1f}';
pub const ATTRIBUTE_SEP: char = '\u{1e}';

/// The largest text a line may carry, all its fields together.
pub const LINE_TEXT_LIMIT: usize = u16::MAX as usize;

/// One line item, as stored. Its text lives in the [`LineStore`]'s arena.
#[derive(Debug, Clone)]
pub struct StoredLine {
    pub amount: Decimal,
    text_start: usize,
    /// End of each field relative to `text_start`; field `i` spans `ends[i-1]..ends[i]`.
    ends: [u16; Field::COUNT],
    /// Where the line came from: the source's line (or record) number, 1-based.
    pub source_line: u32,
    pub line_type: LineType,
    pub currency: Currency,
}

/// A line handed to [`LineStore::push`]; empty text means absent.
#[derive(Debug, Clone)]
pub struct NewLine<'a> {
    pub text: [&'a str; Field::COUNT],
    pub amount: Decimal,
    pub line_type: LineType,
    pub currency: Currency,
    pub source_line: u32,
}

/// Raised when a line's text does not fit the store's per-line limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the line carries {bytes} bytes of text; the limit is {LINE_TEXT_LIMIT}")]
pub struct LineTooLong {
    pub bytes: usize,
}

/// All line items of one side, in the order they were read.
#[derive(Debug, Default, Clone)]
pub struct LineStore {
    text: String,
    lines: Vec<StoredLine>,
}

impl LineStore {
    pub fn new() -> LineStore {
        LineStore::default()
    }

    /// A store that expects about `text_bytes` of text and `lines` lines, so the arena
    /// does not double while a large file is read.
    pub fn with_capacity(text_bytes: usize, lines: usize) -> LineStore {
        LineStore {
            text: String::with_capacity(text_bytes),
            lines: Vec::with_capacity(lines),
        }
    }

    pub fn push(&mut self, line: NewLine<'_>) -> Result<(), LineTooLong> {
        let bytes: usize = line.text.iter().map(|t| t.len()).sum();
        if bytes > LINE_TEXT_LIMIT {
            return Err(LineTooLong { bytes });
        }
        let text_start = self.text.len();
        let mut ends = [0u16; Field::COUNT];
        for (end, text) in ends.iter_mut().zip(line.text) {
            self.text.push_str(text);
            // In range: the sum of all lengths was checked above.
            *end = u16::try_from(self.text.len() - text_start).unwrap_or(u16::MAX);
        }
        self.lines.push(StoredLine {
            amount: line.amount,
            text_start,
            ends,
            source_line: line.source_line,
            line_type: line.line_type,
            currency: line.currency,
        });
        Ok(())
    }

    /// Copies a line of another store (or this one) to the end of this store.
    pub fn push_copy(&mut self, line: &Line<'_>) {
        let text: [&str; Field::COUNT] = std::array::from_fn(|i| line.get(Field::ALL[i]));
        let copy = NewLine {
            text,
            amount: line.amount(),
            line_type: line.line_type(),
            currency: line.currency(),
            source_line: line.source_line(),
        };
        // The line fitted its first store, so it fits this one.
        let pushed = self.push(copy);
        debug_assert!(pushed.is_ok());
    }

    /// Moves every line of `other` to the end of this store, in order, leaving `other`
    /// empty with its capacity kept (to be filled again): how the stores a file's chunks
    /// were read into become one.
    pub fn append(&mut self, other: &mut LineStore) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.lines.extend(other.lines.drain(..).map(|mut line| {
            line.text_start += base;
            line
        }));
        other.text.clear();
    }

    /// Splits the store into one store per account, accounts in order of first appearance.
    pub fn split_by_account(&self) -> Vec<(String, LineStore)> {
        let mut out: Vec<(String, LineStore)> = Vec::new();
        let mut index: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
        for line in self.lines() {
            let account = line.get(Field::AccountId);
            let i = *index.entry(account).or_insert_with(|| {
                out.push((account.to_owned(), LineStore::new()));
                out.len() - 1
            });
            out[i].1.push_copy(&line);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn line(&self, index: usize) -> Line<'_> {
        Line {
            store: self,
            stored: &self.lines[index],
        }
    }

    pub fn lines(&self) -> impl ExactSizeIterator<Item = Line<'_>> {
        self.lines.iter().map(move |stored| Line {
            store: self,
            stored,
        })
    }

    /// Bytes in use (text and lines, not the capacity reserved beyond them).
    pub fn used_bytes(&self) -> usize {
        self.text.len() + self.lines.len() * std::mem::size_of::<StoredLine>()
    }

    /// Empties the store, keeping its capacity for the lines that follow.
    pub fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
    }

    /// Bytes held, for memory accounting in benchmarks.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.lines.capacity() * std::mem::size_of::<StoredLine>()
    }
}

/// A view of one stored line.
#[derive(Clone, Copy)]
pub struct Line<'s> {
    store: &'s LineStore,
    stored: &'s StoredLine,
}

impl<'s> Line<'s> {
    pub fn get(&self, field: Field) -> &'s str {
        let i = field.index();
        let start = if i == 0 {
            0
        } else {
            usize::from(self.stored.ends[i - 1])
        };
        let end = usize::from(self.stored.ends[i]);
        let base = self.stored.text_start;
        &self.store.text[base + start..base + end]
    }

    pub fn amount(&self) -> rust_decimal::Decimal {
        self.stored.amount
    }

    pub fn currency(&self) -> Currency {
        self.stored.currency
    }

    pub fn line_type(&self) -> LineType {
        self.stored.line_type
    }

    pub fn source_line(&self) -> u32 {
        self.stored.source_line
    }

    /// The extra columns as (name, value) pairs, sorted by name.
    pub fn attributes(&self) -> impl Iterator<Item = (&'s str, &'s str)> {
        attribute_pairs(self.get(Field::Attributes))
    }
}

/// A line's attributes field read as (name, value) pairs.
pub(crate) fn attribute_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(ATTRIBUTE_SEP)
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once(ATTRIBUTE_KV).unwrap_or((pair, "")))
}

impl fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for field in Field::ALL {
            let value = self.get(field);
            if !value.is_empty() {
                map.entry(&field.name(), &value);
            }
        }
        map.entry(&"line_type", &self.line_type().as_str());
        map.entry(&"currency", &self.currency().code());
        map.finish()
    }
}

/// Serialises extra columns into the attributes field: sorted by name, so that the order
/// of columns in a file never shows up as a difference.
pub fn encode_attributes<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    out: &mut String,
) {
    out.clear();
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    pairs.sort_unstable();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push(ATTRIBUTE_SEP);
        }
        out.push_str(name);
        out.push(ATTRIBUTE_KV);
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_line<'a>(account: &'a str, charge: &'a str, attrs: &'a str) -> NewLine<'a> {
        let mut text = [""; Field::COUNT];
        text[Field::AccountId as usize] = account;
        text[Field::ChargeCode as usize] = charge;
        text[Field::Attributes as usize] = attrs;
        NewLine {
            text,
            amount: Decimal::new(1250, 2),
            line_type: LineType::Usage,
            currency: "USD".parse().unwrap(),
            source_line: 2,
        }
    }

    #[test]
    fn fields_round_trip_through_the_arena() {
        let mut store = LineStore::new();
        let mut attrs = String::new();
        encode_attributes([("zone", "b"), ("az", "1"), ("empty", "")], &mut attrs);
        store.push(new_line("acct-1", "egress.gb", &attrs)).unwrap();
        store.push(new_line("acct-2", "", "")).unwrap();
        let first = store.line(0);
        assert_eq!(first.get(Field::AccountId), "acct-1");
        assert_eq!(first.get(Field::ChargeCode), "egress.gb");
        assert_eq!(first.get(Field::Description), "");
        assert_eq!(
            first.attributes().collect::<Vec<_>>(),
            [("az", "1"), ("zone", "b")]
        );
        assert_eq!(store.line(1).get(Field::AccountId), "acct-2");
        assert_eq!(store.line(1).attributes().count(), 0);
    }

    #[test]
    fn appended_stores_read_as_one_store_filled_in_order() {
        let mut whole = LineStore::new();
        let mut first = LineStore::new();
        let mut second = LineStore::new();
        for (i, account) in ["acct-1", "acct-22", "acct-333", "acct-4444"]
            .iter()
            .enumerate()
        {
            whole.push(new_line(account, "sku", "")).unwrap();
            let part = if i < 2 { &mut first } else { &mut second };
            part.push(new_line(account, "sku", "")).unwrap();
        }
        let capacity = second.text.capacity();
        first.append(&mut second);
        assert!(second.is_empty());
        assert_eq!(second.text.capacity(), capacity);
        let fields = |store: &LineStore| -> Vec<Vec<String>> {
            store
                .lines()
                .map(|l| Field::ALL.iter().map(|f| l.get(*f).to_owned()).collect())
                .collect()
        };
        assert_eq!(fields(&first), fields(&whole));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let mut store = LineStore::new();
        let long = "x".repeat(LINE_TEXT_LIMIT + 1);
        let err = store.push(new_line(&long, "c", "")).unwrap_err();
        assert_eq!(err.bytes, LINE_TEXT_LIMIT + 2);
        assert!(store.is_empty());
    }

    #[test]
    fn every_field_has_a_unique_name() {
        for (i, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field.index(), i);
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
    }
}
