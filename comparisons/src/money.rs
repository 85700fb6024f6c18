//! Money: strict decimal parsing and ISO 4217 currencies with their minor units.
//!
//! No amount ever passes through a float. Every string that becomes a [`Decimal`] goes
//! through [`parse_decimal`], which accepts the spellings the canonical format allows
//! (`1.5`, `1.50`, `001.5`, `1.5E+2`, `-0.00`) and rejects everything else with a reason.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// The largest magnitude an amount may have. Keeping amounts below 10^18 means the sum of
/// up to 2^32 lines can never overflow a `Decimal` (whose range is about 7.9 × 10^28), so
/// totals are computed with plain addition and can never panic.
pub const AMOUNT_ABS_LIMIT: Decimal = Decimal::from_parts(0xA764_0000, 0x0DE0_B6B3, 0, false, 0);

/// Why a string is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty value, expected a decimal number")]
    Empty,
    #[error(
        "`{0}` is not a decimal number (expected digits with an optional `.`, sign and exponent, such as 12.50 or -1.5E+2)"
    )]
    Syntax(String),
    #[error(
        "`{0}` is an accounting negative; write it as a leading minus (-1.50) or use a format mapping with `parentheses_negative = true`"
    )]
    Parenthesised(String),
    #[error("`{0}` has more digits than a 96-bit decimal holds (28 significant digits)")]
    TooPrecise(String),
    #[error("`{0}` is out of range: amounts must be below 10^18 in magnitude")]
    OutOfRange(String),
}

/// Parses a decimal strictly. Surrounding ASCII whitespace is ignored.
pub fn parse_decimal(raw: &str) -> Result<Decimal, DecimalError> {
    let s = raw.trim_ascii();
    if s.is_empty() {
        return Err(DecimalError::Empty);
    }
    if let Some(value) = parse_simple(s.as_bytes()) {
        return Ok(value);
    }
    if s.starts_with('(') && s.ends_with(')') {
        return Err(DecimalError::Parenthesised(raw.to_owned()));
    }
    let shape = Shape::of(s.as_bytes()).ok_or_else(|| DecimalError::Syntax(raw.to_owned()))?;
    if shape.significant_digits > 28 || shape.exponent.unsigned_abs() > 28 {
        return Err(DecimalError::TooPrecise(raw.to_owned()));
    }
    let parsed = if shape.has_exponent {
        Decimal::from_scientific(s)
    } else {
        // rust_decimal rejects a leading `+` in some positions and accepts `_`; the shape
        // check above already rejected `_`, and a `+` is dropped here.
        Decimal::from_str_exact(s.strip_prefix('+').unwrap_or(s))
    };
    parsed.map_err(|_| DecimalError::TooPrecise(raw.to_owned()))
}

/// Parses an amount: a decimal below [`AMOUNT_ABS_LIMIT`] in magnitude.
pub fn parse_amount(raw: &str) -> Result<Decimal, DecimalError> {
    let value = parse_decimal(raw)?;
    if value.abs() >= AMOUNT_ABS_LIMIT {
        return Err(DecimalError::OutOfRange(raw.to_owned()));
    }
    Ok(value)
}

/// The fast path: `[-]digits[.digits]` with at most 18 digits, the shape of nearly every
/// amount a billing system prints.
fn parse_simple(s: &[u8]) -> Option<Decimal> {
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut digit_count = 0;
    let mut mantissa: i64 = 0;
    let mut scale: u32 = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                digit_count += 1;
                if digit_count > 18 {
                    return None;
                }
                mantissa = mantissa * 10 + i64::from(b - b'0');
                seen_digit = true;
                if seen_dot {
                    scale += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !seen_digit || (seen_dot && scale == 0) {
        return None;
    }
    let mut value = Decimal::new(mantissa, scale);
    value.set_sign_negative(negative && mantissa != 0);
    Some(value)
}

struct Shape {
    significant_digits: usize,
    has_exponent: bool,
    exponent: i64,
}

impl Shape {
    /// `[+-]? digits? ('.' digits?)? ([eE] [+-]? digits)?` with at least one mantissa digit.
    fn of(s: &[u8]) -> Option<Shape> {
        let mut i = 0;
        if matches!(s.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut mantissa_digits = 0;
        let mut significant_digits = 0;
        let mut leading = true;
        let mut seen_dot = false;
        while i < s.len() {
            match s[i] {
                b'0'..=b'9' => {
                    mantissa_digits += 1;
                    if s[i] != b'0' || !leading {
                        leading = false;
                        significant_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if mantissa_digits == 0 {
            return None;
        }
        let mut shape = Shape {
            significant_digits,
            has_exponent: false,
            exponent: 0,
        };
        if i == s.len() {
            return Some(shape);
        }
        i += 1; // the `e`
        let rest = std::str::from_utf8(&s[i..]).ok()?;
        let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        shape.has_exponent = true;
        shape.exponent = rest.parse().ok()?;
        Some(shape)
    }
}

/// An ISO 4217 currency that has a minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Ord for Currency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for Currency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a string is not a billing currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error(
        "`{0}` is not an ISO 4217 currency code (expected three upper-case letters such as USD, EUR, JPY)"
    )]
    Unknown(String),
    #[error("`{0}` has no minor unit in ISO 4217 and cannot be billed to the cent")]
    NoMinorUnit(String),
}

impl Currency {
    /// The ISO 4217 code, e.g. `USD`.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// The number of decimal places of the minor unit: USD 2, JPY 0, BHD 3.
    pub fn minor_unit_exponent(self) -> u32 {
        // Construction guarantees the exponent exists.
        u32::from(self.0.exponent().unwrap_or(0))
    }

    /// The same value written with no trailing zeros beyond the minor unit, and at least
    /// as many decimals as it has: 1376.230 USD → 1376.23, 238 USD → 238.00, 0.004 → 0.004.
    pub fn present(self, value: Decimal) -> Decimal {
        let mut v = value.normalize();
        // Zero has one sign: a missing line of 0.00 is a delta of 0.00 on either side.
        if v.is_zero() {
            v.set_sign_positive(true);
        }
        if v.scale() < self.minor_unit_exponent() {
            v.rescale(self.minor_unit_exponent());
        }
        v
    }

    /// One minor unit as an amount: USD 0.01, JPY 1, BHD 0.001.
    pub fn minor_unit(self) -> Decimal {
        Decimal::new(1, self.minor_unit_exponent())
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim_ascii();
        let iso = iso_currency::Currency::from_code(trimmed)
            .ok_or_else(|| CurrencyError::Unknown(s.to_owned()))?;
        if iso.exponent().is_none() {
            return Err(CurrencyError::NoMinorUnit(s.to_owned()));
        }
        Ok(Currency(iso))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Option<&str>) {
        let got = parse_decimal(raw).ok().map(|d| d.to_string());
        assert_eq!(got.as_deref(), expected, "parsing {raw:?}");
    }

    #[test]
    fn accepted_spellings() {
        check("1.5", Some("1.5"));
        check("1.50", Some("1.50"));
        check("001.5", Some("1.5"));
        check("1.5E+2", Some("150"));
        check("1.5E0", Some("1.5"));
        check("1.5e-2", Some("0.015"));
        check("-0.00", Some("0.00"));
        check("+3", Some("3"));
        check(".5", Some("0.5"));
        check("5.", Some("5"));
        check(" 12.50 ", Some("12.50"));
        check("123456789012345.67", Some("123456789012345.67"));
        check("-123456789012345.68", Some("-123456789012345.68"));
        check(
            "0.0000000000000000000000000001",
            Some("0.0000000000000000000000000001"),
        );
    }

    #[test]
    fn rejected_spellings() {
        for raw in [
            "",
            " ",
            "(1.50)",
            "1,50",
            "1_000",
            "abc",
            "1.2.3",
            "--1",
            "1e",
            "1e+",
            "NaN",
            "inf",
            "0x10",
            "1.5 USD",
            "١٢",
            "1e99999",
            "99999999999999999999999999999999",
        ] {
            check(raw, None);
        }
        assert!(matches!(
            parse_decimal("(1.50)"),
            Err(DecimalError::Parenthesised(_))
        ));
    }

    #[test]
    fn amounts_are_bounded() {
        assert!(parse_amount("1000000000000000000.00").is_err());
        assert!(parse_amount("-1E+18").is_err());
        assert!(parse_amount("999999999999999999.99").is_ok());
        assert_eq!(AMOUNT_ABS_LIMIT.to_string(), "1000000000000000000");
    }

    #[test]
    fn minor_units_come_from_iso_4217() {
        let minor = |c: &str| c.parse::<Currency>().map(|c| c.minor_unit().to_string());
        assert_eq!(minor("USD").as_deref(), Ok("0.01"));
        assert_eq!(minor("JPY").as_deref(), Ok("1"));
        assert_eq!(minor("BHD").as_deref(), Ok("0.001"));
        assert!(matches!(minor("XAU"), Err(CurrencyError::NoMinorUnit(_))));
        assert!(matches!(minor("usd"), Err(CurrencyError::Unknown(_))));
        assert!(matches!(minor("ABC"), Err(CurrencyError::Unknown(_))));
    }
}
