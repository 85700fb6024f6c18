//! Value conversion: one record's source values into a line's canonical text, amount,
//! currency and line type — transforms (default, value map, removed characters, case),
//! decimals with scale and sign, minor units, dates, exclusive ends, attributes.
//! It never reads input: it converts what a `Record` gives it.

use std::borrow::Cow;

use billshadow_comparisons::model::encode_attributes;
use billshadow_comparisons::money::DecimalError;
use billshadow_comparisons::{Currency, Field, LineType, parse_decimal};
use rust_decimal::Decimal;

use crate::mapping::{FieldMapping, Scale, Source, Target};

use super::compile::{Compiled, CompiledField, holds};
use super::dates::write_date;
use super::record::{Problem, Record, column_ref};

/// Reusable buffers for turning one record into one line.
pub(super) struct Scratch {
    pub(super) text: [String; Field::COUNT],
    pub(super) attributes: String,
    /// The last currency text seen and what it parsed to: exports repeat it on every row.
    pub(super) currency_memo: Option<(String, Currency)>,
    /// Per date field, the last source text and the canonical date it became.
    pub(super) date_memo: [(String, String); Field::COUNT],
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        Scratch {
            text: std::array::from_fn(|_| String::new()),
            attributes: String::new(),
            currency_memo: None,
            date_memo: std::array::from_fn(|_| (String::new(), String::new())),
        }
    }
}

/// What one record's fields have given so far, while they are converted.
struct Reading<'c, 'm> {
    amount: Option<Decimal>,
    currency: Option<Currency>,
    line_type: LineType,
    /// Amount, quantity and unit price read in minor units: scaled once the currency is
    /// known.
    in_minor: [InMinorUnits<'c, 'm>; 3],
}

/// An amount, quantity or unit price as read: its field, its value, the index of the column
/// it came from, and whether the mapping negates it.
struct Number<'c, 'm, 'v> {
    field: &'c CompiledField<'m>,
    target: Field,
    value: &'v str,
    column: usize,
    negate: bool,
}

/// The canonical values of one record.
pub(super) struct Converted {
    pub(super) amount: Decimal,
    pub(super) currency: Currency,
    pub(super) line_type: LineType,
}

impl<'m> Compiled<'m> {
    /// Whether the mapping's filters keep this record.
    pub(super) fn keeps(&self, record: &Record<'_>) -> Result<bool, Problem> {
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

    pub(super) fn convert(
        &self,
        record: &Record<'_>,
        scratch: &mut Scratch,
    ) -> Result<Converted, Problem> {
        self.convert_fields(record, scratch, false)
    }

    /// The amount and currency of a record that could not be converted whole, when those two
    /// can be read: the money a quarantine leaves out.
    pub(super) fn money(
        &self,
        record: &Record<'_>,
        scratch: &mut Scratch,
    ) -> Option<(Currency, rust_decimal::Decimal)> {
        self.convert_fields(record, scratch, true)
            .ok()
            .map(|c| (c.currency, c.amount))
    }

    /// Converts a record's fields into `scratch`'s text; `only_money` converts the amount
    /// and currency only (for a quarantined record's money).
    pub(super) fn convert_fields<'c>(
        &'c self,
        record: &Record<'c>,
        scratch: &mut Scratch,
        only_money: bool,
    ) -> Result<Converted, Problem> {
        for text in &mut scratch.text {
            text.clear();
        }
        let mut reading = Reading {
            amount: None,
            currency: None,
            line_type: LineType::Usage,
            in_minor: [None; 3],
        };
        for field in &self.fields {
            let money = matches!(
                field.mapping.target,
                Target::Currency | Target::Text(Field::Amount)
            );
            if only_money && !money {
                continue;
            }
            self.convert_field(field, record, scratch, &mut reading)?;
        }
        if let Some(currency) = reading.currency
            && let Some(units) = write_minor_units(&reading.in_minor, currency, &mut scratch.text)?
        {
            reading.amount = Some(units);
        }
        for field in self.fields.iter().filter(|f| f.mapping.exclusive_end) {
            clamp_end(field.mapping.target, &mut scratch.text);
        }
        self.check_period(&scratch.text)?;
        if !only_money && !self.attributes.is_empty() {
            self.write_attributes(record, scratch)?;
        }
        let (Some(amount), Some(currency)) = (reading.amount, reading.currency) else {
            return Err(Problem {
                column: None,
                message: "the record has no amount or no currency".to_owned(),
            });
        };
        Ok(Converted {
            amount,
            currency,
            line_type: reading.line_type,
        })
    }

    /// Converts one field's value: into `scratch`'s text, or into `reading` for the
    /// currency, the line type and what waits for the currency.
    fn convert_field<'c>(
        &'c self,
        field: &'c CompiledField<'m>,
        record: &Record<'c>,
        scratch: &mut Scratch,
        reading: &mut Reading<'c, 'm>,
    ) -> Result<(), Problem> {
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
                reading.currency = Some(self.currency(value, scratch).map_err(fault)?);
            }
            Target::LineType => {
                if !value.is_empty() {
                    reading.line_type = value.parse().map_err(
                        |e: billshadow_comparisons::model::LineTypeError| fault(e.to_string()),
                    )?;
                }
            }
            Target::Text(f @ (Field::Amount | Field::Quantity | Field::UnitPrice)) => {
                if value.is_empty() {
                    if f == Field::Amount {
                        let expected = "an amount such as 12.50";
                        return Err(fault(self.empty(field.mapping.target, expected)));
                    }
                    return Ok(());
                }
                let negate = field.mapping.negate
                    || match &field.negate_if {
                        Some(c) => holds(c, record)?,
                        None => false,
                    };
                let read = Number {
                    field,
                    target: f,
                    value,
                    column,
                    negate,
                };
                self.convert_number(read, scratch, reading).map_err(fault)?;
            }
            Target::Text(f) if Target::Text(f).is_date_field() => {
                self.convert_date(field, f, value, scratch).map_err(fault)?;
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
        Ok(())
    }

    /// A currency code, parsed once for a run of records that repeat it.
    fn currency(&self, value: &str, scratch: &mut Scratch) -> Result<Currency, String> {
        if value.is_empty() {
            return Err(self.empty(Target::Currency, "an ISO 4217 currency code"));
        }
        Ok(match &scratch.currency_memo {
            Some((text, parsed)) if text == value => *parsed,
            _ => {
                let parsed = value.parse::<Currency>().map_err(|e| e.to_string())?;
                scratch.currency_memo = Some((value.to_owned(), parsed));
                parsed
            }
        })
    }

    /// A non-empty amount, quantity or unit price: scaled and signed as the mapping says,
    /// kept as written when nothing changes it; a value in minor units waits for the
    /// currency.
    fn convert_number<'c>(
        &self,
        read: Number<'c, 'm, '_>,
        scratch: &mut Scratch,
        reading: &mut Reading<'c, 'm>,
    ) -> Result<(), String> {
        let Number {
            field,
            target,
            value,
            column,
            negate,
        } = read;
        let (factor, in_minor_units) = match &field.mapping.scale {
            Some(Scale::Factor(factor)) => (Some(*factor), false),
            Some(Scale::Minor { .. }) => (None, true),
            None => (None, false),
        };
        let is_amount = target == Field::Amount;
        let (parsed, changed) = self
            .decimal(value, is_amount && !in_minor_units, factor, negate)
            .map_err(|e| e.to_string())?;
        if in_minor_units {
            // Scaled once the record's currency is known, after every field is read.
            let slot = match target {
                Field::Amount => 0,
                Field::Quantity => 1,
                _ => 2,
            };
            reading.in_minor[slot] = Some((field, parsed, column));
            return Ok(());
        }
        let out = &mut scratch.text[target as usize];
        if changed {
            use std::fmt::Write as _;
            let _ = write!(out, "{parsed}");
        } else {
            out.push_str(value.trim_ascii());
        }
        if is_amount {
            reading.amount = Some(parsed);
        }
        Ok(())
    }

    /// A date, written `YYYY-MM-DD`; converted once for a run of records that repeat it.
    fn convert_date(
        &self,
        field: &CompiledField<'_>,
        target: Field,
        value: &str,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        if value.is_empty() {
            if matches!(target, Field::PeriodStart | Field::PeriodEnd) {
                return Err(self.empty(field.mapping.target, "a date (YYYY-MM-DD)"));
            }
            return Ok(());
        }
        let (memo_text, memo_date) = &mut scratch.date_memo[target as usize];
        if memo_text.as_str() != value || memo_text.is_empty() {
            memo_date.clear();
            write_date(
                value,
                &field.mapping.date_format,
                field.mapping.shift_days,
                field.mapping.exclusive_end,
                memo_date,
            )?;
            memo_text.clear();
            memo_text.push_str(value);
        }
        scratch.text[target as usize].push_str(memo_date);
        Ok(())
    }

    /// A period cannot end before it starts.
    fn check_period(&self, text: &[String; Field::COUNT]) -> Result<(), Problem> {
        // Both are YYYY-MM-DD here, so text order is date order.
        let (start, end) = (
            &text[Field::PeriodStart as usize],
            &text[Field::PeriodEnd as usize],
        );
        if start.is_empty() || end.is_empty() || end >= start {
            return Ok(());
        }
        let column = self
            .fields
            .iter()
            .find(|f| f.mapping.target == Target::Text(Field::PeriodEnd))
            .and_then(|f| f.access.first())
            .and_then(column_ref);
        Err(Problem {
            column,
            message: format!("period_end {end} is before period_start {start}"),
        })
    }

    /// The columns kept as attributes, encoded into the line's attributes text.
    fn write_attributes(&self, record: &Record<'_>, scratch: &mut Scratch) -> Result<(), Problem> {
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
        Ok(())
    }

    /// The raw value of a field's source, and which column it came from.
    /// The raw value of a field's source, and the index (in `field.access`) of the column it
    /// came from, for error messages.
    pub(super) fn source_value<'a>(
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
    pub(super) fn decimal(
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
pub(super) type InMinorUnits<'a, 'm> = Option<(&'a CompiledField<'m>, Decimal, usize)>;

/// Writes the fields read in minor units once the record's currency is known; returns the
/// amount when it is one of them.
pub(super) fn write_minor_units(
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
pub(super) fn from_minor_units(
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
pub(super) fn clamp_end(target: Target, text: &mut [String; Field::COUNT]) {
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

pub(super) fn transform<'v>(mapping: &FieldMapping, value: Cow<'v, str>) -> Cow<'v, str> {
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
