//! What a comparison is told: the match key, tolerances, ignored fields and waivers.
//!
//! These are plain values; reading them from a TOML spec (with line numbers for errors)
//! is the binary's job. Every value here has been validated by whoever built it.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::difference::DiffClass;
use crate::model::{Field, Line, LineType};
use crate::money::Currency;

/// One component of the match key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyField {
    Text(Field),
    LineType,
    Currency,
    /// An extra column, by name.
    Attribute(String),
}

impl KeyField {
    /// The default match key: account, billing period, charge code, line type, usage
    /// period and region.
    pub fn default_key() -> Vec<KeyField> {
        parse_key_names([
            "account_id",
            "period",
            "charge_code",
            "line_type",
            "usage_period",
            "region",
        ])
        .unwrap_or_default()
    }

    pub fn name(&self) -> String {
        match self {
            KeyField::Text(field) => field.name().to_owned(),
            KeyField::LineType => "line_type".to_owned(),
            KeyField::Currency => "currency".to_owned(),
            KeyField::Attribute(name) => format!("attributes.{name}"),
        }
    }

    /// The value of this key component on a line, as text.
    pub fn value<'s>(&self, line: &Line<'s>) -> std::borrow::Cow<'s, str> {
        match self {
            KeyField::Text(field) => line.get(*field).into(),
            KeyField::LineType => line.line_type().as_str().into(),
            KeyField::Currency => line.currency().code().into(),
            KeyField::Attribute(name) => line
                .attributes()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .unwrap_or("")
                .into(),
        }
    }
}

/// A match key name that means nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a match key field (expected account_id, period, charge_code, line_type, usage_period, region, partition, customer_id, invoice_id, line_id, unit, currency, description, period_start, period_end, usage_start, usage_end or attributes.NAME)"
)]
pub struct KeyFieldError(pub String);

/// Turns key names into key fields; `period` and `usage_period` stand for their start and
/// end.
pub fn parse_key_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<KeyField>, KeyFieldError> {
    let mut key = Vec::new();
    for name in names {
        match name {
            "period" => key.extend([
                KeyField::Text(Field::PeriodStart),
                KeyField::Text(Field::PeriodEnd),
            ]),
            "usage_period" => key.extend([
                KeyField::Text(Field::UsageStart),
                KeyField::Text(Field::UsageEnd),
            ]),
            "line_type" => key.push(KeyField::LineType),
            "currency" => key.push(KeyField::Currency),
            _ => {
                if let Some(attr) = name.strip_prefix("attributes.").filter(|a| !a.is_empty()) {
                    key.push(KeyField::Attribute(attr.to_owned()));
                    continue;
                }
                match Field::from_name(name) {
                    Some(
                        Field::Amount | Field::Quantity | Field::UnitPrice | Field::Attributes,
                    )
                    | None => {
                        return Err(KeyFieldError(name.to_owned()));
                    }
                    Some(field) => key.push(KeyField::Text(field)),
                }
            }
        }
    }
    Ok(key)
}

/// How far apart two amounts may be and still be at parity: a difference strictly below
/// the tolerance passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// An absolute amount in currency units, whatever the currency.
    Amount(Decimal),
    /// A number of minor units of the line's currency.
    MinorUnits(u32),
}

impl Tolerance {
    pub fn in_currency(self, currency: Currency) -> Decimal {
        match self {
            Tolerance::Amount(amount) => amount,
            Tolerance::MinorUnits(n) => currency.minor_unit() * Decimal::from(n),
        }
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::MinorUnits(1)
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Amount(a) => write!(f, "{a}"),
            Tolerance::MinorUnits(n) => write!(f, "{n} minor unit(s)"),
        }
    }
}

/// Tolerances: a default, overridden per line type, overridden per charge code (glob; the
/// first matching pattern wins).
#[derive(Debug, Clone, Default)]
pub struct Tolerances {
    pub default: Tolerance,
    /// For bill and customer totals: a total that differs by this much or more is a
    /// `total_mismatch`, however small each line's difference (default: one minor unit).
    pub total: Tolerance,
    pub by_line_type: Vec<(LineType, Tolerance)>,
    pub by_charge_code: Vec<(glob::Pattern, Tolerance)>,
}

impl Tolerances {
    pub fn for_line(&self, charge_code: &str, line_type: LineType) -> Tolerance {
        if let Some((_, t)) = self
            .by_charge_code
            .iter()
            .find(|(p, _)| p.matches(charge_code))
        {
            return *t;
        }
        if let Some((_, t)) = self.by_line_type.iter().find(|(lt, _)| *lt == line_type) {
            return *t;
        }
        self.default
    }

    pub fn is_uniform(&self) -> bool {
        self.by_line_type.is_empty() && self.by_charge_code.is_empty()
    }
}

/// Fields left out of the comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored {
    pub quantity: bool,
    pub unit_price: bool,
    pub unit: bool,
    pub description: bool,
    /// The account's customer (payer): left out when one side's export does not carry it.
    pub customer_id: bool,
    /// Every extra column.
    pub all_attributes: bool,
    /// Extra columns by name.
    pub attributes: Vec<String>,
}

impl Ignored {
    /// Adds a field by its name; `attributes` means all extra columns.
    pub fn add(&mut self, name: &str) -> Result<(), IgnoreError> {
        match name {
            "quantity" => self.quantity = true,
            "unit_price" => self.unit_price = true,
            "unit" => self.unit = true,
            "description" => self.description = true,
            "customer_id" => self.customer_id = true,
            "attributes" => self.all_attributes = true,
            _ => match name.strip_prefix("attributes.").filter(|a| !a.is_empty()) {
                Some(attr) => self.attributes.push(attr.to_owned()),
                None => return Err(IgnoreError(name.to_owned())),
            },
        }
        Ok(())
    }

    pub fn attribute(&self, name: &str) -> bool {
        self.all_attributes || self.attributes.iter().any(|a| a == name)
    }
}

/// A field that cannot be ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` cannot be ignored (expected quantity, unit_price, unit, description, customer_id, attributes or attributes.NAME; amounts and currencies are always compared)"
)]
pub struct IgnoreError(pub String);

/// A known difference: an owned, expiring rule that marks matching diffs as waived.
#[derive(Debug, Clone)]
pub struct Waiver {
    pub id: String,
    pub class: Option<DiffClass>,
    pub charge_code: Option<glob::Pattern>,
    pub account_id: Option<glob::Pattern>,
    pub partition: Option<String>,
    pub region: Option<String>,
    /// The largest |delta| the waiver covers.
    pub delta_abs_max: Option<Decimal>,
    /// A signature id (`sig-…`): the waiver covers only the diffs of that signature, which
    /// are known once every diff is (`waive::waive_by_signature`), never one by one.
    pub signature: Option<String>,
    pub reason: String,
    pub ticket: String,
    pub owner: String,
    /// The last day the waiver applies.
    pub expires: NaiveDate,
}

impl Waiver {
    pub fn is_expired(&self, today: NaiveDate) -> bool {
        today > self.expires
    }
}

/// Everything a comparison needs besides the two sides' lines.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub key: Vec<KeyField>,
    pub tolerances: Tolerances,
    pub ignored: Ignored,
    pub waivers: Vec<Waiver>,
    /// The date waiver expiry is judged against.
    pub today: NaiveDate,
    /// Whether customers' totals across accounts are compared. A shadow run compares one
    /// account at a time and checks customers when it summarises instead.
    pub customer_totals: bool,
}

impl CompareConfig {
    pub fn new(today: NaiveDate) -> CompareConfig {
        CompareConfig {
            key: KeyField::default_key(),
            tolerances: Tolerances::default(),
            ignored: Ignored::default(),
            waivers: Vec::new(),
            today,
            customer_totals: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_expands_periods() {
        let names: Vec<String> = KeyField::default_key().iter().map(KeyField::name).collect();
        assert_eq!(
            names,
            [
                "account_id",
                "period_start",
                "period_end",
                "charge_code",
                "line_type",
                "usage_start",
                "usage_end",
                "region"
            ]
        );
    }

    #[test]
    fn key_names_are_checked() {
        assert!(parse_key_names(["amount"]).is_err());
        assert!(parse_key_names(["acount_id"]).is_err());
        assert!(parse_key_names(["attributes."]).is_err());
        assert_eq!(
            parse_key_names(["attributes.zone"]).unwrap(),
            [KeyField::Attribute("zone".to_owned())]
        );
    }

    #[test]
    fn charge_code_tolerance_beats_line_type_beats_default() {
        let t = Tolerances {
            default: Tolerance::MinorUnits(1),
            total: Tolerance::MinorUnits(1),
            by_line_type: vec![(LineType::Tax, Tolerance::Amount(Decimal::new(2, 2)))],
            by_charge_code: vec![(
                glob::Pattern::new("fx.*").unwrap(),
                Tolerance::MinorUnits(5),
            )],
        };
        assert_eq!(
            t.for_line("fx.eur", LineType::Tax),
            Tolerance::MinorUnits(5)
        );
        assert_eq!(
            t.for_line("vat", LineType::Tax),
            Tolerance::Amount(Decimal::new(2, 2))
        );
        assert_eq!(t.for_line("vat", LineType::Usage), Tolerance::MinorUnits(1));
    }
}
