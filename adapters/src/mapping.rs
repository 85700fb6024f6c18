//! Format mappings: which source column (CSV) or path (JSON) feeds each canonical field,
//! and how its value is converted on the way.
//!
//! A mapping is data (TOML). The catalog ships mappings for known formats; users pass their
//! own file. A mapping is validated when it is loaded, with the line and column of any
//! error in its file, so a bad mapping never gets as far as reading a bill.

use std::collections::BTreeMap;
use std::path::Path;

use billshadow_comparisons::Field;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::location::{TomlError, toml_error};

/// The canonical targets a mapping can feed: the text fields plus line type and currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Text(Field),
    LineType,
    Currency,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Text(f) => f.name(),
            Target::LineType => "line_type",
            Target::Currency => "currency",
        }
    }

    fn from_name(name: &str) -> Option<Target> {
        match name {
            "line_type" => Some(Target::LineType),
            "currency" => Some(Target::Currency),
            "attributes" => None,
            _ => Field::from_name(name).map(Target::Text),
        }
    }

    /// Fields every mapping must feed.
    pub const REQUIRED: [Target; 6] = [
        Target::Text(Field::AccountId),
        Target::Text(Field::PeriodStart),
        Target::Text(Field::PeriodEnd),
        Target::Text(Field::ChargeCode),
        Target::Text(Field::Amount),
        Target::Currency,
    ];

    fn is_decimal(self) -> bool {
        matches!(
            self,
            Target::Text(Field::Amount | Field::Quantity | Field::UnitPrice)
        )
    }

    fn is_date(self) -> bool {
        matches!(
            self,
            Target::Text(
                Field::PeriodStart | Field::PeriodEnd | Field::UsageStart | Field::UsageEnd
            )
        )
    }
}

/// How the source is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Comma- (or `delimiter`-) separated values with a header row.
    Csv,
    /// One JSON document per line.
    Jsonl,
    /// One JSON document for the whole file.
    Json,
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A CSV column by header name, or a dotted JSON path relative to the record
    /// (`$doc.` at the start reaches the enclosing document).
    Column(String),
    /// The first non-empty of several columns.
    Coalesce(Vec<String>),
    /// Several columns joined with a separator (empty ones skipped).
    Join(Vec<String>, String),
    Constant(String),
}

impl Source {
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Source::Column(c) => vec![c],
            Source::Coalesce(cs) | Source::Join(cs, _) => cs.iter().map(String::as_str).collect(),
            Source::Constant(_) => Vec::new(),
        }
    }
}

/// How a date is written in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    /// `YYYY-MM-DD`, optionally followed by a time (`T…` or ` …`), of which the date is kept.
    Iso,
    /// A chrono `strftime` pattern; when it has time fields, the date part is kept.
    Pattern(String),
    /// Seconds since the Unix epoch, taken as a UTC date.
    UnixSeconds,
    /// Milliseconds since the Unix epoch, taken as a UTC date.
    UnixMillis,
}

/// A condition on a source column.
#[derive(Debug, Clone)]
pub struct Condition {
    pub column: String,
    pub equals: Vec<String>,
    pub matches: Option<glob::Pattern>,
    pub empty: bool,
}

/// How a decimal is scaled on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scale {
    /// Multiplied by a fixed factor: cents → units is 0.01.
    Factor(Decimal),
    /// Written in the minor unit of the record's own currency (Stripe's and Lago's amounts:
    /// cents for USD, yen for JPY, fils for BHD): divided by 10 to the power of its ISO 4217
    /// exponent, or of `exponents[code]` where the source departs from ISO 4217 (Stripe counts
    /// ISK in hundredths).
    Minor { exponents: BTreeMap<String, u32> },
}

/// How one canonical field is fed.
#[derive(Debug, Clone)]
pub struct FieldMapping {
    pub target: Target,
    pub source: Source,
    /// An absent column is allowed (the field is then empty or `default`).
    pub optional: bool,
    pub default: Option<String>,
    /// How a decimal is scaled: cents → units is a factor of 0.01.
    pub scale: Option<Scale>,
    pub negate: bool,
    pub negate_if: Option<Condition>,
    pub date_format: DateFormat,
    /// Days added to a date, e.g. -1 to turn an exclusive period end into an inclusive one.
    pub shift_days: i64,
    /// The value is an exclusive end bound (a subscription period ending at the next one's
    /// start): the last day it covers is the day before when it falls at midnight (a date
    /// alone counts as midnight), its own day otherwise, and never before the start it ends
    /// (a charge at one instant has its start and end equal).
    pub exclusive_end: bool,
    /// Value translations, applied before validation (e.g. `Usage` → `usage`).
    pub map: BTreeMap<String, String>,
    pub upper_case: bool,
    pub lower_case: bool,
    /// Characters removed from the value before it is read (e.g. `"$, "` for `$10,000.00`).
    pub remove: String,
}

/// Which source columns become attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// Every CSV column no field reads.
    Unmapped,
    None,
    /// (attribute name, source column) pairs.
    List(Vec<(String, String)>),
}

/// A validated format mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub description: String,
    pub input: InputKind,
    pub delimiter: u8,
    /// For JSON: the path of the array of line items in each document (empty: the document
    /// itself is the line item, or the file's top-level array holds them).
    pub records: Option<String>,
    pub fields: Vec<FieldMapping>,
    pub skip: Vec<Condition>,
    pub keep: Vec<Condition>,
    pub attributes: Attributes,
    pub match_key: Option<Vec<String>>,
    pub parentheses_negative: bool,
    /// Source values that mean "no value" (e.g. `NULL`), read as empty.
    pub null_values: Vec<String>,
    /// Column names whose presence identifies the format (for detection).
    pub signature: Vec<String>,
}

impl Mapping {
    /// Reads a mapping from TOML text; `origin` names the file in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Mapping, TomlError> {
        let raw: RawMapping = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        raw.validate()
            .map_err(|(span, message)| TomlError::at(origin, text, span, message))
    }

    pub fn from_file(path: &Path) -> Result<Mapping, TomlError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TomlError::io(&origin, &e))?;
        Mapping::from_toml(&origin, &text)
    }

    pub fn field(&self, target: Target) -> Option<&FieldMapping> {
        self.fields.iter().find(|f| f.target == target)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: String,
    #[serde(default)]
    description: String,
    input: InputKind,
    delimiter: Option<toml::Spanned<String>>,
    records: Option<String>,
    fields: toml::Spanned<BTreeMap<String, toml::Spanned<RawSource>>>,
    #[serde(default)]
    skip: Vec<toml::Spanned<RawCondition>>,
    #[serde(default)]
    keep: Vec<toml::Spanned<RawCondition>>,
    attributes: Option<toml::Spanned<RawAttributes>>,
    match_key: Option<Vec<String>>,
    #[serde(default)]
    parentheses_negative: bool,
    #[serde(default)]
    null_values: Vec<String>,
    #[serde(default)]
    signature: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAttributes {
    Policy(String),
    List(Vec<String>),
    Renamed(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Column(String),
    Table(Box<RawSourceTable>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSourceTable {
    column: Option<String>,
    coalesce: Option<Vec<String>>,
    join: Option<Vec<String>>,
    separator: Option<String>,
    constant: Option<String>,
    #[serde(default)]
    optional: bool,
    default: Option<String>,
    scale: Option<String>,
    /// Per-currency exponents for `scale = "minor"` where the source departs from ISO 4217.
    minor_units: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    negate: bool,
    negate_if: Option<RawCondition>,
    date_format: Option<String>,
    #[serde(default)]
    shift_days: i64,
    #[serde(default)]
    exclusive_end: bool,
    #[serde(default)]
    map: BTreeMap<String, String>,
    case: Option<String>,
    #[serde(default)]
    remove: String,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    column: String,
    #[serde(default)]
    equals: Vec<String>,
    matches: Option<String>,
    #[serde(default)]
    empty: bool,
}

type Invalid = (std::ops::Range<usize>, String);

impl RawCondition {
    fn validate(self, span: std::ops::Range<usize>) -> Result<Condition, Invalid> {
        let matches = match self.matches {
            Some(p) => Some(
                glob::Pattern::new(&p)
                    .map_err(|e| (span.clone(), format!("`{p}` is not a glob pattern: {e}")))?,
            ),
            None => None,
        };
        if self.equals.is_empty() && matches.is_none() && !self.empty {
            return Err((
                span,
                format!(
                    "the condition on `{}` needs `equals`, `matches` or `empty = true`",
                    self.column
                ),
            ));
        }
        Ok(Condition {
            column: self.column,
            equals: self.equals,
            matches,
            empty: self.empty,
        })
    }
}

impl RawMapping {
    fn validate(self) -> Result<Mapping, Invalid> {
        let fields_span = self.fields.span();
        let mut fields = Vec::new();
        for (name, raw) in self.fields.into_inner() {
            let span = raw.span();
            let target = Target::from_name(&name).ok_or_else(|| {
                (
                    span.clone(),
                    format!(
                        "`{name}` is not a canonical field (expected one of {})",
                        target_names()
                    ),
                )
            })?;
            fields.push(validate_source(target, raw.into_inner(), span)?);
        }
        for required in Target::REQUIRED {
            if !fields.iter().any(|f| f.target == required) {
                return Err((
                    fields_span.clone(),
                    format!(
                        "the mapping does not feed the required field `{}`",
                        required.name()
                    ),
                ));
            }
        }
        let delimiter = match self.delimiter {
            None => b',',
            Some(d) => match d.get_ref().as_bytes() {
                [b] if b.is_ascii() => *b,
                _ => {
                    return Err((
                        d.span(),
                        "the delimiter must be a single ASCII character".to_owned(),
                    ));
                }
            },
        };
        let conditions =
            |raw: Vec<toml::Spanned<RawCondition>>| -> Result<Vec<Condition>, Invalid> {
                raw.into_iter()
                    .map(|c| {
                        let span = c.span();
                        c.into_inner().validate(span)
                    })
                    .collect()
            };
        let attributes = match self.attributes {
            None if self.input == InputKind::Csv => Attributes::Unmapped,
            None => Attributes::None,
            Some(a) => {
                let span = a.span();
                match a.into_inner() {
                    RawAttributes::Policy(p) if p == "unmapped" => Attributes::Unmapped,
                    RawAttributes::Policy(p) if p == "none" => Attributes::None,
                    RawAttributes::Policy(p) => {
                        return Err((
                            span,
                            format!(
                                "attributes = `{p}`: expected \"unmapped\", \"none\" or a list of columns"
                            ),
                        ));
                    }
                    RawAttributes::List(list) => {
                        Attributes::List(list.into_iter().map(|c| (c.clone(), c)).collect())
                    }
                    RawAttributes::Renamed(map) => Attributes::List(map.into_iter().collect()),
                }
            }
        };
        if let Some(key) = &self.match_key {
            billshadow_comparisons::config::parse_key_names(key.iter().map(String::as_str))
                .map_err(|e| (fields_span.clone(), format!("match_key: {e}")))?;
        }
        Ok(Mapping {
            name: self.name,
            description: self.description,
            input: self.input,
            delimiter,
            records: self.records.filter(|r| !r.is_empty()),
            fields,
            skip: conditions(self.skip)?,
            keep: conditions(self.keep)?,
            attributes,
            match_key: self.match_key,
            parentheses_negative: self.parentheses_negative,
            null_values: self.null_values,
            signature: self.signature,
        })
    }
}

fn target_names() -> String {
    let mut names: Vec<&str> = Field::ALL
        .iter()
        .filter(|f| **f != Field::Attributes)
        .map(|f| f.name())
        .collect();
    names.extend(["line_type", "currency"]);
    names.join(", ")
}

/// Validates one field's source and options against its target (an option for another
/// kind of field is an error naming it).
fn validate_source(
    target: Target,
    raw: RawSource,
    span: std::ops::Range<usize>,
) -> Result<FieldMapping, Invalid> {
    let mut t = match raw {
        RawSource::Column(c) => RawSourceTable {
            column: Some(c),
            ..RawSourceTable::default()
        },
        RawSource::Table(t) => *t,
    };
    let name = target.name();
    let err = |m: String| (span.clone(), format!("field `{name}`: {m}"));
    let source = source_of(&mut t).map_err(|m| err(m.to_owned()))?;
    let scale = scale_of(target, &mut t, &err)?;
    if (t.negate || t.negate_if.is_some()) && !target.is_decimal() {
        return Err(err(
            "`negate` applies to amount, quantity and unit_price only".to_owned(),
        ));
    }
    let date_format = date_format_of(target, &t).map_err(err)?;
    check_date_shift(target, &t).map_err(|m| err(m.to_owned()))?;
    let (upper_case, lower_case) = case_of(&t).map_err(err)?;
    let negate_if = t.negate_if.map(|c| c.validate(span.clone())).transpose()?;
    Ok(FieldMapping {
        target,
        source,
        optional: t.optional,
        default: t.default,
        scale,
        negate: t.negate,
        negate_if,
        date_format,
        shift_days: t.shift_days,
        exclusive_end: t.exclusive_end,
        map: t.map,
        upper_case,
        lower_case,
        remove: t.remove,
    })
}

/// Exactly one of `column`, `coalesce`, `join` or `constant`, and a list not empty.
fn source_of(t: &mut RawSourceTable) -> Result<Source, &'static str> {
    let given = [
        t.column.is_some(),
        t.coalesce.is_some(),
        t.join.is_some(),
        t.constant.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err("give exactly one of `column`, `coalesce`, `join` or `constant`");
    }
    let source = if let Some(c) = t.column.take() {
        Source::Column(c)
    } else if let Some(cs) = t.coalesce.take() {
        Source::Coalesce(cs)
    } else if let Some(cs) = t.join.take() {
        Source::Join(cs, t.separator.take().unwrap_or_else(|| "/".to_owned()))
    } else {
        Source::Constant(t.constant.take().unwrap_or_default())
    };
    if matches!(&source, Source::Coalesce(cs) | Source::Join(cs, _) if cs.is_empty()) {
        return Err("the list of columns is empty");
    }
    Ok(source)
}

/// `scale` (and `minor_units`, which goes with `scale = "minor"` only), for decimals only.
fn scale_of(
    target: Target,
    t: &mut RawSourceTable,
    err: &dyn Fn(String) -> Invalid,
) -> Result<Option<Scale>, Invalid> {
    let scale = match t.scale.as_deref() {
        None => None,
        Some(_) if !target.is_decimal() => return Err(err("`scale` applies to amount, quantity and unit_price only".to_owned())),
        Some("units") => None,
        Some("cents") => Some(Scale::Factor(Decimal::new(1, 2))),
        Some("micros") => Some(Scale::Factor(Decimal::new(1, 6))),
        Some("nanos") => Some(Scale::Factor(Decimal::new(1, 9))),
        Some("minor") => Some(Scale::Minor { exponents: minor_units(t.minor_units.take(), err)? }),
        Some(other) => Some(Scale::Factor(billshadow_comparisons::parse_decimal(other).map_err(|_| {
            err(format!("scale `{other}` is not \"units\", \"cents\", \"micros\", \"nanos\", \"minor\" or a decimal multiplier"))
        })?)),
    };
    if t.minor_units.is_some() {
        return Err(err(
            "`minor_units` goes with `scale = \"minor\"` only".to_owned()
        ));
    }
    Ok(scale)
}

/// `date_format`, for dates only: ISO by default, Unix seconds or milliseconds, or a
/// strftime pattern.
fn date_format_of(target: Target, t: &RawSourceTable) -> Result<DateFormat, String> {
    Ok(match t.date_format.as_deref() {
        None | Some("iso") => DateFormat::Iso,
        Some(_) if !target.is_date() => {
            return Err("`date_format` applies to dates only".to_owned());
        }
        Some("unix") => DateFormat::UnixSeconds,
        Some("unix_ms") => DateFormat::UnixMillis,
        Some(p) => {
            if chrono::format::StrftimeItems::new(p)
                .any(|i| matches!(i, chrono::format::Item::Error))
            {
                return Err(format!("`{p}` is not a strftime date pattern"));
            }
            DateFormat::Pattern(p.to_owned())
        }
    })
}

/// `shift_days` for dates only; `exclusive_end` for ends only, and not with `shift_days`.
fn check_date_shift(target: Target, t: &RawSourceTable) -> Result<(), &'static str> {
    if t.shift_days != 0 && !target.is_date() {
        return Err("`shift_days` applies to dates only");
    }
    if t.exclusive_end {
        if !matches!(target, Target::Text(Field::PeriodEnd | Field::UsageEnd)) {
            return Err("`exclusive_end` applies to period_end and usage_end only");
        }
        if t.shift_days != 0 {
            return Err(
                "give `exclusive_end` or `shift_days`, not both: `exclusive_end` already moves a midnight bound to the day before",
            );
        }
    }
    Ok(())
}

/// `case`: (upper, lower).
fn case_of(t: &RawSourceTable) -> Result<(bool, bool), String> {
    match t.case.as_deref() {
        None => Ok((false, false)),
        Some("upper") => Ok((true, false)),
        Some("lower") => Ok((false, true)),
        Some(other) => Err(format!("case `{other}`: expected \"upper\" or \"lower\"")),
    }
}

/// Validates `minor_units`: ISO 4217 codes (upper case) and exponents a decimal can hold.
fn minor_units(
    raw: Option<BTreeMap<String, u32>>,
    err: &dyn Fn(String) -> Invalid,
) -> Result<BTreeMap<String, u32>, Invalid> {
    let exponents = raw.unwrap_or_default();
    for (code, exponent) in &exponents {
        code.parse::<billshadow_comparisons::Currency>()
            .map_err(|e| err(format!("minor_units: {e}")))?;
        if *exponent > 9 {
            return Err(err(format!(
                "minor_units: {code} = {exponent}; expected an exponent from 0 to 9"
            )));
        }
    }
    Ok(exponents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        Mapping::from_toml("m.toml", text).unwrap_err().to_string()
    }

    const MINIMAL: &str = r#"
name = "mini"
input = "csv"
[fields]
account_id = "acct"
period_start = "start"
period_end = "end"
charge_code = "sku"
amount = { column = "cents", scale = "cents" }
currency = { constant = "USD" }
"#;

    #[test]
    fn a_minimal_mapping_loads() {
        let m = Mapping::from_toml("m.toml", MINIMAL).unwrap();
        assert_eq!(m.fields.len(), 6);
        assert_eq!(
            m.field(Target::Text(Field::Amount)).unwrap().scale,
            Some(Scale::Factor(Decimal::new(1, 2)))
        );
        assert_eq!(m.attributes, Attributes::Unmapped);
    }

    #[test]
    fn errors_point_at_the_line() {
        let text = MINIMAL.replace("sku\"", "sku\"\nacount = \"x\"");
        assert_eq!(
            error_of(&text),
            format!(
                "m.toml:9:10: `acount` is not a canonical field (expected one of {})",
                target_names()
            )
        );
        let text = MINIMAL.replace("charge_code = \"sku\"\n", "");
        assert!(
            error_of(&text).contains("does not feed the required field `charge_code`"),
            "{}",
            error_of(&text)
        );
        let text = MINIMAL.replace("scale = \"cents\"", "scale = \"dollars\"");
        assert!(
            error_of(&text).starts_with("m.toml:9:10: field `amount`: scale `dollars`"),
            "{}",
            error_of(&text)
        );
        let text = MINIMAL.replace("input = \"csv\"", "input = \"xml\"");
        assert!(
            error_of(&text).starts_with("m.toml:3:9: unknown variant `xml`"),
            "{}",
            error_of(&text)
        );
    }
}
