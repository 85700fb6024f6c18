//! A signature's hypothesis: one plain-language sentence naming the rule its shape shows
//! and where it holds ("modern rounds BHD amounts to 2 decimals instead of 3 in region
//! me-south-1"). Written from the shape and the scope every diff shares; it never guesses
//! what the shape does not show.

use rust_decimal::Decimal;

use super::shape::{Shape, Side};
use crate::difference::DiffClass;
use crate::money::Currency;

/// What a hypothesis is written from.
pub(super) struct Facts<'a> {
    pub(super) class: DiffClass,
    pub(super) shape: &'a Shape,
    pub(super) charge_code: Option<&'a str>,
    pub(super) line_type: Option<&'a str>,
    pub(super) currency: Option<&'a str>,
    pub(super) partition: Option<&'a str>,
    pub(super) region: Option<&'a str>,
    /// Paired lines where modern is higher, of `paired`.
    pub(super) higher: u64,
    pub(super) paired: u64,
}

pub(super) fn write(f: &Facts<'_>) -> String {
    let lines = match (f.line_type, f.charge_code) {
        (Some(t), Some(c)) => format!("{t} lines {c}"),
        (Some(t), None) => format!("{t} lines"),
        (None, Some(c)) => format!("lines {c}"),
        (None, None) => "lines".to_owned(),
    };
    let cur = f.currency.unwrap_or("all");
    let text = match f.shape {
        Shape::Missing { side: Side::Modern } => format!("modern does not bill the {lines}"),
        Shape::Missing { side: Side::Legacy } => {
            format!("modern bills {lines} that legacy does not")
        }
        Shape::FewerDecimals { coarser, decimals } => {
            let minor = f.currency.and_then(|c| c.parse::<Currency>().ok());
            let finer = match minor.map(Currency::minor_unit_exponent) {
                Some(minor) if minor > *decimals => format!(" instead of {minor}"),
                _ => format!(", {} keeps more", other(*coarser)),
            };
            format!(
                "{} rounds {cur} amounts to {decimals} decimals{finer}",
                coarser.name()
            )
        }
        Shape::RoundingMode {
            decimals,
            legacy,
            modern,
        } => format!(
            "modern rounds {cur} amounts {} instead of {} (to {decimals} decimals)",
            modern.name().replace('_', " "),
            legacy.name().replace('_', " ")
        ),
        Shape::Proration {
            legacy_days,
            modern_days,
        } => format!("modern prorates {lines} over {modern_days} days instead of {legacy_days}"),
        Shape::SignFlip => format!("modern books the {lines} with the opposite sign"),
        Shape::CurrencyRelabel { legacy, modern } => {
            format!("modern labels in {modern} the same amounts legacy bills in {legacy}")
        }
        Shape::UnitScale { factor } => format!(
            "modern counts the quantity of {lines} in a unit {}× smaller",
            factor.normalize()
        ),
        Shape::Ratio {
            numerator,
            denominator,
        } => format!(
            "modern {cur} {lines} are legacy's × {}: a price or rate changed",
            ratio_text(*numerator, *denominator)
        ),
        Shape::Offset { delta } => format!(
            "modern {cur} {lines} differ from legacy's by {} each: a fee added or dropped",
            signed(*delta)
        ),
        Shape::Varied if f.paired <= 1 => {
            format!(
                "modern bills one {cur} line of the {lines} differently (one line shows no rule)"
            )
        }
        Shape::Varied => format!(
            "modern computes {cur} {lines} differently, not by one constant ratio or offset \
             (a pricing rule such as tiers differs; modern higher on {} of {})",
            f.higher, f.paired
        ),
        Shape::KeyMismatch { field, change } => match change.strip_suffix(" days") {
            Some(days) => format!(
                "modern writes {field} {days} days from legacy's on lines that are otherwise the same \
                 (an inclusive against an exclusive date?)"
            ),
            None => format!(
                "modern and legacy name {field} differently ({change}) on lines that are otherwise the same"
            ),
        },
        Shape::Other => format!("{} on {lines}", f.class.as_str()),
    };
    format!("{text}{}", place(f.partition, f.region))
}

fn other(side: Side) -> &'static str {
    match side {
        Side::Legacy => "modern",
        Side::Modern => "legacy",
    }
}

/// `21/20 (= 1.05)` when the fraction is a short decimal, else `31/30`.
fn ratio_text(numerator: u64, denominator: u64) -> String {
    let exact = Decimal::from(numerator).checked_div(Decimal::from(denominator));
    match exact.map(|k| k.normalize()) {
        Some(k) if k.scale() <= 6 && k * Decimal::from(denominator) == Decimal::from(numerator) => {
            if denominator == 1 {
                format!("{numerator}")
            } else {
                format!("{numerator}/{denominator} (= {k})")
            }
        }
        _ => format!("{numerator}/{denominator}"),
    }
}

fn signed(delta: Decimal) -> String {
    if delta.is_sign_negative() {
        delta.to_string()
    } else {
        format!("+{delta}")
    }
}

fn place(partition: Option<&str>, region: Option<&str>) -> String {
    match (partition, region) {
        (Some(p), Some(r)) => format!(" in cell {p}/{r}"),
        (Some(p), None) => format!(" in partition {p}"),
        (None, Some(r)) => format!(" in region {r}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Rounding;

    fn check(shape: Shape, currency: Option<&str>, region: Option<&str>, want: &str) {
        let facts = Facts {
            class: DiffClass::AmountMismatch,
            shape: &shape,
            charge_code: Some("plan.pro"),
            line_type: Some("recurring"),
            currency,
            partition: None,
            region,
            higher: 3,
            paired: 4,
        };
        assert_eq!(write(&facts), want);
    }

    #[test]
    fn hypotheses_name_the_rule_and_the_value() {
        check(
            Shape::FewerDecimals {
                coarser: Side::Modern,
                decimals: 2,
            },
            Some("BHD"),
            Some("me-south-1"),
            "modern rounds BHD amounts to 2 decimals instead of 3 in region me-south-1",
        );
        check(
            Shape::Proration {
                legacy_days: 31,
                modern_days: 30,
            },
            Some("EUR"),
            None,
            "modern prorates recurring lines plan.pro over 30 days instead of 31",
        );
        check(
            Shape::Ratio {
                numerator: 21,
                denominator: 20,
            },
            Some("USD"),
            None,
            "modern USD recurring lines plan.pro are legacy's × 21/20 (= 1.05): a price or rate changed",
        );
        check(
            Shape::Ratio {
                numerator: 31,
                denominator: 30,
            },
            Some("USD"),
            None,
            "modern USD recurring lines plan.pro are legacy's × 31/30: a price or rate changed",
        );
        check(
            Shape::Offset {
                delta: Decimal::new(-250, 2),
            },
            Some("USD"),
            None,
            "modern USD recurring lines plan.pro differ from legacy's by -2.50 each: a fee added or dropped",
        );
        check(
            Shape::RoundingMode {
                decimals: 2,
                legacy: Rounding::HalfUp,
                modern: Rounding::HalfEven,
            },
            Some("USD"),
            None,
            "modern rounds USD amounts half even instead of half up (to 2 decimals)",
        );
        check(
            Shape::Missing { side: Side::Modern },
            None,
            None,
            "modern does not bill the recurring lines plan.pro",
        );
    }
}
