//! One difference between the two sides, as the engine reports it: its class (`DiffClass`,
//! with stable names), what it is about (`Scope`), each side's evidence, the delta.
//!
//! The vocabulary the configuration (waivers name a class), the engine and the summary share;
//! it depends on the model only, so arrows point one way: `config`, `summary` and `diff`
//! import it, it imports none of them. It must never compute: it only describes.

use rust_decimal::Decimal;

pub use crate::fields::Fields;
use crate::model::{Field, Line};
use crate::money::Currency;

/// The stable names of the kinds of difference.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DiffClass {
    MissingInModern,
    MissingInLegacy,
    CurrencyMismatch,
    AmountMismatch,
    QuantityMismatch,
    UnitPriceMismatch,
    TotalMismatch,
    /// The account is billed to another customer (payer) on one side.
    CustomerChanged,
    StackError,
    /// Informational: the amounts differ by less than one minor unit.
    SubMinorUnit,
    /// Informational: the amounts differ by one minor unit or more, but less than a
    /// tolerance the spec widened.
    WithinTolerance,
    /// Informational: only cosmetic fields differ (description, unit, extra columns).
    DescriptionChanged,
}

impl DiffClass {
    pub const ALL: [DiffClass; 12] = [
        DiffClass::MissingInModern,
        DiffClass::MissingInLegacy,
        DiffClass::CurrencyMismatch,
        DiffClass::AmountMismatch,
        DiffClass::QuantityMismatch,
        DiffClass::UnitPriceMismatch,
        DiffClass::TotalMismatch,
        DiffClass::CustomerChanged,
        DiffClass::StackError,
        DiffClass::SubMinorUnit,
        DiffClass::WithinTolerance,
        DiffClass::DescriptionChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiffClass::MissingInModern => "missing_in_modern",
            DiffClass::MissingInLegacy => "missing_in_legacy",
            DiffClass::CurrencyMismatch => "currency_mismatch",
            DiffClass::AmountMismatch => "amount_mismatch",
            DiffClass::QuantityMismatch => "quantity_mismatch",
            DiffClass::UnitPriceMismatch => "unit_price_mismatch",
            DiffClass::TotalMismatch => "total_mismatch",
            DiffClass::CustomerChanged => "customer_changed",
            DiffClass::StackError => "stack_error",
            DiffClass::SubMinorUnit => "sub_minor_unit",
            DiffClass::WithinTolerance => "within_tolerance",
            DiffClass::DescriptionChanged => "description_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<DiffClass> {
        DiffClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Informational classes are recorded but never fail a comparison.
    pub fn is_informational(self) -> bool {
        matches!(
            self,
            DiffClass::SubMinorUnit | DiffClass::WithinTolerance | DiffClass::DescriptionChanged
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What a diff is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Line,
    Bill,
    /// One invoice's total, when an account's bills span several invoices with the same ids on
    /// both sides.
    Invoice,
    Customer,
    Account,
}

/// One side's line (or total) as evidence: every field it carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub fields: Fields,
    pub attributes: Fields,
}

impl Evidence {
    pub fn of_line(line: &Line<'_>) -> Evidence {
        let fields = Field::ALL
            .into_iter()
            .filter(|f| !matches!(f, Field::AccountId | Field::Attributes))
            .map(|f| (f.name(), line.get(f)))
            .filter(|(_, value)| !value.is_empty())
            .chain([
                ("line_type", line.line_type().as_str()),
                ("currency", line.currency().code()),
            ])
            .collect();
        let attributes = line.attributes().collect();
        Evidence { fields, attributes }
    }

    pub fn of_total(total: Decimal, currency: Currency) -> Evidence {
        let amount = currency.present(total).to_string();
        Evidence {
            fields: Fields::from([("amount", amount)]),
            attributes: Fields::new(),
        }
    }
}

/// One difference between the two sides.
///
/// The engine neither serialises nor reads it: the store writes and reads its own `StoredDiff`
/// and `billshadow.diff/v2` is written from `DiffJson`, so this type can change without moving
/// either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub account_id: Option<String>,
    pub class: DiffClass,
    pub scope: Scope,
    pub charge_code: Option<String>,
    /// The match key's other components (for bills: the billing period).
    pub key: Fields,
    pub legacy: Option<Evidence>,
    pub modern: Option<Evidence>,
    /// modern − legacy, when both are in one currency.
    pub delta: Option<Decimal>,
    pub currency: Option<Currency>,
    /// Every field that differs.
    pub fields: Vec<String>,
    /// The id of the waiver that covers this diff.
    pub waiver: Option<String>,
    pub customer_id: Option<String>,
    pub partition: Option<String>,
    pub region: Option<String>,
    pub legacy_line: Option<u32>,
    pub modern_line: Option<u32>,
    /// Free text, for diffs that carry a message (stack errors).
    pub detail: Option<String>,
}

impl Diff {
    /// About how many bytes the diff takes on the heap and inline: its strings and `Fields`
    /// buffers, and the allocator's own bytes per allocation. An estimate for memory limits,
    /// not a measure.
    pub fn approx_bytes(&self) -> usize {
        // The allocator's own bytes per allocation, and its rounding.
        const ALLOCATION: usize = 16;
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.capacity() + ALLOCATION);
        let map = |m: &Fields| m.heap_bytes() + 2 * ALLOCATION;
        let evidence = |e: &Option<Evidence>| {
            e.as_ref().map_or(0, |e| {
                std::mem::size_of::<Evidence>() + ALLOCATION + map(&e.fields) + map(&e.attributes)
            })
        };
        std::mem::size_of::<Diff>()
            + text(&self.account_id)
            + text(&self.charge_code)
            + map(&self.key)
            + evidence(&self.legacy)
            + evidence(&self.modern)
            + self.fields.capacity() * std::mem::size_of::<String>()
            + self
                .fields
                .iter()
                .map(|f| f.capacity() + ALLOCATION)
                .sum::<usize>()
            + text(&self.waiver)
            + text(&self.customer_id)
            + text(&self.partition)
            + text(&self.region)
            + text(&self.detail)
    }

    /// A diff of `class` about `scope` with nothing else known yet: every diff is built from
    /// it, filling in only what it knows (`Diff { account_id, ..Diff::new(class, scope) }`).
    pub fn new(class: DiffClass, scope: Scope) -> Diff {
        Diff {
            account_id: None,
            class,
            scope,
            charge_code: None,
            key: Fields::new(),
            legacy: None,
            modern: None,
            delta: None,
            currency: None,
            fields: Vec::new(),
            waiver: None,
            customer_id: None,
            partition: None,
            region: None,
            legacy_line: None,
            modern_line: None,
            detail: None,
        }
    }

    /// Fails the comparison: a non-informational class that no waiver covers.
    pub fn is_failing(&self) -> bool {
        !self.class.is_informational() && self.waiver.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_stable() {
        for class in DiffClass::ALL {
            assert_eq!(DiffClass::from_name(class.as_str()), Some(class));
            assert_eq!(
                class.index(),
                DiffClass::ALL.iter().position(|c| *c == class).unwrap()
            );
        }
    }
}
