//! The shape of one difference: what rule turns the legacy value into the modern one, read
//! from a diff's evidence with exact decimal arithmetic (never a float).
//!
//! A diff alone can show some shapes outright (a sign flip, fewer decimals, another rounding
//! mode, another day count, a unit scale, a currency relabel, a missing line). A constant ratio
//! or offset only shows across several diffs: those diffs are handed back as `Observed::Numeric`
//! for the grouping to judge together (`common_shape`).

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::difference::{Diff, DiffClass, Evidence};
use crate::money::parse_decimal;

/// How a stack rounds a value to a number of decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rounding {
    /// Half away from zero (what most billing calls "half up").
    HalfUp,
    /// Half to even (banker's rounding).
    HalfEven,
    /// Toward zero (truncation).
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    const ALL: [Rounding; 4] = [
        Rounding::HalfUp,
        Rounding::HalfEven,
        Rounding::Down,
        Rounding::Up,
    ];

    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rounding::HalfUp => "half_up",
            Rounding::HalfEven => "half_even",
            Rounding::Down => "down",
            Rounding::Up => "up",
        }
    }
}

/// One of the two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Legacy,
    Modern,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::Modern => "modern",
        }
    }
}

/// The shape of a difference, as a signature shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// Lines billed on one side only; `side` is the side that lacks them.
    Missing { side: Side },
    /// One side's amount is the other's rounded to fewer decimals.
    FewerDecimals { coarser: Side, decimals: u32 },
    /// Both sides round quantity × unit price to `decimals`, each its own way.
    RoundingMode {
        decimals: u32,
        legacy: Rounding,
        modern: Rounding,
    },
    /// Both sides prorate quantity × unit price by the same days over another day count.
    Proration { legacy_days: u32, modern_days: u32 },
    /// modern = −legacy.
    SignFlip,
    /// The same amounts under another currency code.
    CurrencyRelabel { legacy: String, modern: String },
    /// modern quantity = legacy quantity × `factor`, a power of ten.
    UnitScale { factor: Decimal },
    /// modern = legacy × numerator / denominator, each side rounded.
    Ratio { numerator: u64, denominator: u64 },
    /// modern = legacy + delta.
    Offset { delta: Decimal },
    /// The amounts differ with no constant ratio or offset.
    Varied,
    /// A line missing on each side of an account, the same in every field but one key
    /// component: `change` is `+N days` for dates, `legacy→modern` for names.
    KeyMismatch { field: String, change: String },
    /// Not about amounts: a description, a customer, a stack's error, …
    Other,
}

impl Shape {
    /// The shape as the signature's id recipe writes it (stable: changing it changes ids).
    pub fn key(&self) -> String {
        match self {
            Shape::Missing { side } => format!("missing:{}", side.name()),
            Shape::FewerDecimals { coarser, decimals } => {
                format!("fewer_decimals:{}:{decimals}", coarser.name())
            }
            Shape::RoundingMode {
                decimals,
                legacy,
                modern,
            } => format!(
                "rounding_mode:{decimals}:{}:{}",
                legacy.name(),
                modern.name()
            ),
            Shape::Proration {
                legacy_days,
                modern_days,
            } => format!("proration:{legacy_days}:{modern_days}"),
            Shape::SignFlip => "sign_flip".to_owned(),
            Shape::CurrencyRelabel { legacy, modern } => {
                format!("currency_relabel:{legacy}:{modern}")
            }
            Shape::UnitScale { factor } => format!("unit_scale:{}", factor.normalize()),
            Shape::Ratio {
                numerator,
                denominator,
            } => format!("ratio:{numerator}/{denominator}"),
            Shape::Offset { delta } => format!("offset:{}", delta.normalize()),
            Shape::Varied => "varied".to_owned(),
            Shape::KeyMismatch { field, change } => format!("key_mismatch:{field}:{change}"),
            Shape::Other => "other".to_owned(),
        }
    }

    /// The shape's kind alone, as JSON names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Shape::Missing { .. } => "missing",
            Shape::FewerDecimals { .. } => "fewer_decimals",
            Shape::RoundingMode { .. } => "rounding_mode",
            Shape::Proration { .. } => "proration",
            Shape::SignFlip => "sign_flip",
            Shape::CurrencyRelabel { .. } => "currency_relabel",
            Shape::UnitScale { .. } => "unit_scale",
            Shape::Ratio { .. } => "ratio",
            Shape::Offset { .. } => "offset",
            Shape::Varied => "varied",
            Shape::KeyMismatch { .. } => "key_mismatch",
            Shape::Other => "other",
        }
    }
}

/// Both sides' amounts of a paired line whose shape only a group can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Amounts {
    pub(crate) legacy: Decimal,
    pub(crate) modern: Decimal,
}

/// What one diff shows by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observed {
    Fixed(Shape),
    /// A shape one diff only hints at (fewer decimals seen only once trailing zeros are
    /// dropped: `11.90` against `11.91` may be chance); the group decides (`WEAK_SUPPORT_MIN`).
    Weak(Shape, Amounts),
    Numeric(Amounts),
}

/// The shape one diff shows by itself, or its amounts for the group to judge.
pub(crate) fn observe(diff: &Diff) -> Observed {
    match diff.class {
        DiffClass::MissingInModern => {
            return Observed::Fixed(Shape::Missing { side: Side::Modern });
        }
        DiffClass::MissingInLegacy => {
            return Observed::Fixed(Shape::Missing { side: Side::Legacy });
        }
        DiffClass::StackError | DiffClass::CustomerChanged | DiffClass::DescriptionChanged => {
            return Observed::Fixed(Shape::Other);
        }
        _ => {}
    }
    let (Some(legacy), Some(modern)) = (diff.legacy.as_ref(), diff.modern.as_ref()) else {
        return Observed::Fixed(Shape::Other);
    };
    let amount = |e: &Evidence| number(e, "amount").or_else(|| number(e, "total"));
    let (Some(l), Some(m)) = (amount(legacy), amount(modern)) else {
        return Observed::Fixed(Shape::Other);
    };
    if diff.class == DiffClass::CurrencyMismatch {
        return Observed::Fixed(relabel(legacy, modern, l, m));
    }
    if let Some(factor) = unit_scale(legacy, modern) {
        return Observed::Fixed(Shape::UnitScale { factor });
    }
    if l == m {
        return Observed::Fixed(Shape::Other);
    }
    if !l.is_zero() && m == -l {
        return Observed::Fixed(Shape::SignFlip);
    }
    let fewer = fewer_decimals(l, m);
    if let Some((shape, true)) = fewer {
        return Observed::Fixed(shape);
    }
    // A rounding mode shown exactly by quantity × unit price on a midpoint outweighs fewer
    // decimals only hinted at by trailing zeros (half even gives `0.10` for `0.105`); off a
    // midpoint the hint stands (`12.3491` rounded to 2 is `12.35`, which rounding up to 3
    // also gives). A difference within one decimal's rounding is never a day count's; a hint
    // that drops two decimals or more (`9.00` for `8.71`: a whole euro) is chance beside a day
    // count that quantity × unit price gives exactly on both sides.
    let priced = price_of(legacy, modern);
    let hinted = fewer.is_some();
    let hint_is_close =
        fewer.is_some() && l.normalize().scale().abs_diff(m.normalize().scale()) < 2;
    if let Some((shape, exact)) =
        priced.and_then(|exact| rounding_mode(exact, l, m).map(|shape| (shape, exact)))
    {
        if !hinted || on_midpoint(exact, &shape) {
            return Observed::Fixed(shape);
        }
    }
    if let Some(shape) = priced
        .filter(|_| !hint_is_close)
        .and_then(|exact| proration(exact, l, m))
    {
        return Observed::Fixed(shape);
    }
    let amounts = Amounts {
        legacy: l,
        modern: m,
    };
    match fewer {
        Some((shape, _)) => Observed::Weak(shape, amounts),
        None => Observed::Numeric(amounts),
    }
}

/// `exact` lies halfway between two values of the rounding mode's decimals.
fn on_midpoint(exact: Decimal, shape: &Shape) -> bool {
    let Shape::RoundingMode { decimals, .. } = shape else {
        return false;
    };
    let down = exact.round_dp_with_strategy(*decimals, RoundingStrategy::ToZero);
    (exact - down).abs() == half_unit(*decimals)
}

/// The decimals a value may have been rounded to: from its decimals without trailing zeros
/// to the decimals it is written with (`12.50` was rounded to 1 or 2; padding adds zeros, it
/// never rounds).
fn decimals_written(x: Decimal) -> std::ops::RangeInclusive<u32> {
    x.normalize().scale()..=x.scale()
}

fn number(evidence: &Evidence, field: &str) -> Option<Decimal> {
    parse_decimal(evidence.fields.get(field)?).ok()
}

fn relabel(legacy: &Evidence, modern: &Evidence, l: Decimal, m: Decimal) -> Shape {
    let currency = |e: &Evidence| e.fields.get("currency").unwrap_or_default().to_owned();
    if l == m {
        Shape::CurrencyRelabel {
            legacy: currency(legacy),
            modern: currency(modern),
        }
    } else {
        Shape::Other
    }
}

/// modern quantity / legacy quantity, when it is a power of ten other than one.
fn unit_scale(legacy: &Evidence, modern: &Evidence) -> Option<Decimal> {
    let (l, m) = (number(legacy, "quantity")?, number(modern, "quantity")?);
    if l.is_zero() || m.is_zero() || l == m {
        return None;
    }
    let factor = m.checked_div(l)?.normalize();
    let digits = factor.mantissa().to_string();
    let power_of_ten = digits.starts_with('1') && digits[1..].bytes().all(|b| b == b'0');
    let power_of_ten = power_of_ten && factor * l == m;
    power_of_ten.then_some(factor)
}

/// Half a unit in the last of `decimals` places: 0.005 for 2.
fn half_unit(decimals: u32) -> Decimal {
    Decimal::new(5, decimals.saturating_add(1).min(28))
}

/// One side written with fewer decimals than the other, within the two roundings' reach.
/// Decimals are counted without trailing zeros: a stack that pads `12.54` to `12.540` still
/// rounded to 2. Also says whether the sides were *written* with fewer decimals (sure) or
/// only show it once trailing zeros are dropped (a hint).
fn fewer_decimals(l: Decimal, m: Decimal) -> Option<(Shape, bool)> {
    let (sl, sm) = (l.normalize().scale(), m.normalize().scale());
    let reach = half_unit(sl) + half_unit(sm);
    if sl == sm || (m - l).abs() > reach {
        return None;
    }
    let (coarser, decimals, written) = if sm < sl {
        (Side::Modern, sm, m.scale() < l.scale())
    } else {
        (Side::Legacy, sl, l.scale() < m.scale())
    };
    Some((Shape::FewerDecimals { coarser, decimals }, written))
}

/// quantity × unit price, when both sides bill the same quantity at the same unit price.
fn price_of(legacy: &Evidence, modern: &Evidence) -> Option<Decimal> {
    let quantity = number(legacy, "quantity")?;
    let price = number(legacy, "unit_price")?;
    let same =
        number(modern, "quantity") == Some(quantity) && number(modern, "unit_price") == Some(price);
    same.then(|| quantity.checked_mul(price)).flatten()
}

/// Each side is quantity × unit price rounded its own way to the same decimals: the fewest
/// both sides may have been rounded to (`decimals_written`) for which a rounding gives each.
fn rounding_mode(exact: Decimal, l: Decimal, m: Decimal) -> Option<Shape> {
    let (wl, wm) = (decimals_written(l), decimals_written(m));
    let from = (*wl.start()).max(*wm.start());
    let to = (*wl.end()).min(*wm.end());
    (from..=to).find_map(|decimals| {
        let rounded = |r: Rounding| exact.round_dp_with_strategy(decimals, r.strategy());
        let legacy = Rounding::ALL.into_iter().find(|r| rounded(*r) == l)?;
        let modern = Rounding::ALL.into_iter().find(|r| rounded(*r) == m)?;
        Some(Shape::RoundingMode {
            decimals,
            legacy,
            modern,
        })
    })
}

/// The day counts a month is prorated over.
const MONTH_DAYS: [u32; 4] = [28, 29, 30, 31];

/// Each side is quantity × unit price × days / (its own day count), rounded half up to its own
/// decimals, for the same number of days.
fn proration(exact: Decimal, l: Decimal, m: Decimal) -> Option<Shape> {
    if exact.is_zero() {
        return None;
    }
    // The most decimals the value may have been rounded to (`decimals_written`) at which the
    // share rounded half up gives it: `9.00` is 27 × 10 / 30 to 2 decimals, and 27 × 10 / 29
    // only to none, so the day count that gives more of the written decimals is the one.
    let prorated_at = |days: u32, count: u32, value: Decimal| {
        let share = exact
            .checked_mul(Decimal::from(days))
            .and_then(|x| x.checked_div(Decimal::from(count)))?;
        decimals_written(value).rev().find(|decimals| {
            share.round_dp_with_strategy(*decimals, RoundingStrategy::MidpointAwayFromZero) == value
        })
    };
    // Every reading (legacy count, days, modern count) that gives both amounts; the one that
    // gives the most written decimals on both sides wins, then the order of MONTH_DAYS.
    let mut best: Option<((u32, u32), Shape)> = None;
    for legacy_days in MONTH_DAYS {
        // The days that give the legacy amount: the nearest whole number, and its neighbours.
        let guess = (l * Decimal::from(legacy_days) / exact).round();
        let Ok(guess) = u32::try_from(guess.mantissa().max(0) / 10i128.pow(guess.scale())) else {
            continue;
        };
        for days in guess.saturating_sub(1)..=guess.saturating_add(1).min(legacy_days) {
            let Some(legacy_decimals) = prorated_at(days, legacy_days, l).filter(|_| days > 0)
            else {
                continue;
            };
            for modern_days in MONTH_DAYS.into_iter().filter(|c| *c != legacy_days) {
                let Some(modern_decimals) = prorated_at(days, modern_days, m) else {
                    continue;
                };
                let fit = (legacy_decimals, modern_decimals);
                if best.as_ref().is_none_or(|(best_fit, _)| fit > *best_fit) {
                    let shape = Shape::Proration {
                        legacy_days,
                        modern_days,
                    };
                    best = Some((fit, shape));
                }
            }
        }
    }
    best.map(|(_, shape)| shape)
}

/// The shape several paired lines share: a constant offset, else a constant ratio (each side
/// rounded), else `Varied`. One line alone shows no constant: it is `Varied`.
pub(crate) fn common_shape(amounts: &[Amounts]) -> Shape {
    let Some(first) = amounts.first() else {
        return Shape::Varied;
    };
    if amounts.len() < 2 {
        return Shape::Varied;
    }
    let delta = first.modern - first.legacy;
    if amounts.iter().all(|a| a.modern - a.legacy == delta) {
        return Shape::Offset { delta };
    }
    common_ratio(amounts).map_or(Shape::Varied, |(numerator, denominator)| Shape::Ratio {
        numerator,
        denominator,
    })
}

/// A constant that at least this many of a group's lines share, more than half of them, is
/// the group's rule even when a few other lines (one-off differences of the same charge
/// code) share none.
const CORE_MIN: usize = 3;

/// The shapes of a group's paired lines, each with the indices (into `amounts`) it holds:
/// the whole group's constant when every line shares one (`common_shape`); else the constant
/// most lines share (`CORE_MIN`, more than half), and the other lines judged again; else
/// `Varied`. Depends only on the amounts, never on their order.
pub(crate) fn judge(amounts: &[Amounts]) -> Vec<(Shape, Vec<usize>)> {
    let mut out = Vec::new();
    judge_into(amounts, (0..amounts.len()).collect(), &mut out);
    out
}

fn judge_into(amounts: &[Amounts], members: Vec<usize>, out: &mut Vec<(Shape, Vec<usize>)>) {
    let picked: Vec<Amounts> = members.iter().map(|&i| amounts[i]).collect();
    let shape = common_shape(&picked);
    if shape != Shape::Varied || members.len() <= CORE_MIN {
        out.push((shape, members));
        return;
    }
    let most = |c: &Vec<usize>| c.len() >= CORE_MIN && c.len() * 2 > members.len();
    let core = core_offset(&picked)
        .filter(most)
        .or_else(|| core_ratio(&picked).filter(most));
    let Some(inside) = core else {
        out.push((Shape::Varied, members));
        return;
    };
    let core_amounts: Vec<Amounts> = inside.iter().map(|&j| picked[j]).collect();
    let core_shape = common_shape(&core_amounts);
    if core_shape == Shape::Varied {
        out.push((Shape::Varied, members));
        return;
    }
    let mut in_core = vec![false; members.len()];
    for &j in &inside {
        in_core[j] = true;
    }
    let mut core_members = Vec::with_capacity(inside.len());
    let mut rest = Vec::with_capacity(members.len() - inside.len());
    for (i, inside) in members.into_iter().zip(in_core) {
        if inside {
            core_members.push(i);
        } else {
            rest.push(i);
        }
    }
    out.push((core_shape, core_members));
    judge_into(amounts, rest, out);
}

/// The lines sharing the most common difference (on a tie, the smallest one), when at least
/// two do.
fn core_offset(amounts: &[Amounts]) -> Option<Vec<usize>> {
    let mut counts: BTreeMap<Decimal, usize> = BTreeMap::new();
    for a in amounts {
        *counts.entry((a.modern - a.legacy).normalize()).or_default() += 1;
    }
    let (best, n) = counts.into_iter().fold(
        None,
        |best: Option<(Decimal, usize)>, (delta, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((delta, n)),
        },
    )?;
    (n >= 2).then(|| {
        (0..amounts.len())
            .filter(|&j| (amounts[j].modern - amounts[j].legacy).normalize() == best)
            .collect()
    })
}

/// The lines whose ratio intervals (modern over legacy, each within its rounding) share the
/// point most of them cover (on a tie, the smallest such point).
fn core_ratio(amounts: &[Amounts]) -> Option<Vec<usize>> {
    let (hl, hm) = rounding_of(amounts);
    let intervals: Vec<Option<(Decimal, Decimal)>> = amounts
        .iter()
        .map(|a| {
            let (l, m) = (a.legacy.abs(), a.modern.abs());
            let same_sign = a.legacy.is_sign_negative() == a.modern.is_sign_negative();
            if !same_sign || l <= hl || m <= hm {
                return None;
            }
            Some(((m - hm).checked_div(l + hl)?, (m + hm).checked_div(l - hl)?))
        })
        .collect();
    // A sweep over the ends: an interval opens before one closes at the same value.
    let mut ends: Vec<(Decimal, u8)> = Vec::new();
    for (lo, hi) in intervals.iter().flatten() {
        ends.push((*lo, 0));
        ends.push((*hi, 1));
    }
    ends.sort();
    let (mut open, mut most, mut point) = (0usize, 0usize, None);
    for (value, end) in ends {
        if end == 0 {
            open += 1;
            if open > most {
                (most, point) = (open, Some(value));
            }
        } else {
            open -= 1;
        }
    }
    let point = point?;
    Some(
        (0..amounts.len())
            .filter(|&j| intervals[j].is_some_and(|(lo, hi)| lo <= point && point <= hi))
            .collect(),
    )
}

/// The simplest fraction k (denominator at most 10,000) with every modern amount within its
/// rounding of legacy × k, checked exactly; none when 1 fits (the amounts only differ by
/// rounding) or the sides' signs differ.
fn common_ratio(amounts: &[Amounts]) -> Option<(u64, u64)> {
    let (hl, hm) = rounding_of(amounts);
    let mut lo = Decimal::ZERO;
    let mut hi = Decimal::MAX;
    for a in amounts {
        let (l, m) = (a.legacy.abs(), a.modern.abs());
        let same_sign = a.legacy.is_sign_negative() == a.modern.is_sign_negative();
        if !same_sign || l <= hl || m <= hm {
            return None;
        }
        lo = lo.max((m - hm).checked_div(l + hl)?);
        hi = hi.min((m + hm).checked_div(l - hl)?);
    }
    if lo > hi || (lo <= Decimal::ONE && Decimal::ONE <= hi) {
        return None;
    }
    let (p, q) = simplest_between(lo, hi, 10_000)?;
    let fits = amounts.iter().all(|a| within_ratio(*a, p, q, (hl, hm)));
    fits.then_some((p, q))
}

/// Half a unit of the decimals each side rounds to: the most decimals any of its amounts
/// shows once trailing zeros are dropped (a stack that pads `12.5` to `12.500` rounded to at
/// most 1 there; another of its amounts, `3.25`, shows it rounds to 2).
fn rounding_of(amounts: &[Amounts]) -> (Decimal, Decimal) {
    let most = |side: fn(&Amounts) -> Decimal| {
        amounts
            .iter()
            .map(|a| side(a).normalize().scale())
            .max()
            .unwrap_or_default()
    };
    (half_unit(most(|a| a.legacy)), half_unit(most(|a| a.modern)))
}

/// |m·q − l·p| ≤ hm·q + hl·p: modern within both roundings (half units `hl`, `hm`) of
/// legacy × p/q, exactly.
fn within_ratio(a: Amounts, p: u64, q: u64, (hl, hm): (Decimal, Decimal)) -> bool {
    let (l, m) = (a.legacy.abs(), a.modern.abs());
    let (p, q) = (Decimal::from(p), Decimal::from(q));
    let gap = m
        .checked_mul(q)
        .zip(l.checked_mul(p))
        .map(|(x, y)| (x - y).abs());
    let reach = hm.checked_mul(q).zip(hl.checked_mul(p)).map(|(x, y)| x + y);
    matches!((gap, reach), (Some(gap), Some(reach)) if gap <= reach)
}

/// The fraction with the smallest denominator in [lo, hi] (0 < lo ≤ hi), by continued
/// fractions, or none past `max_denominator`. The bounds are decimals, the candidate is
/// checked exactly by the caller.
fn simplest_between(lo: Decimal, hi: Decimal, max_denominator: u64) -> Option<(u64, u64)> {
    // Convergents h/k of the continued fraction walk; the interval is narrowed in step.
    let (mut lo, mut hi) = (lo, hi);
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    for _ in 0..40 {
        let whole = lo.ceil();
        if whole <= hi {
            // An integer lies in the interval: the simplest value is the smallest one.
            let a = u64::try_from(whole).ok()?;
            let h = a.checked_mul(h1)?.checked_add(h0)?;
            let k = a.checked_mul(k1)?.checked_add(k0)?;
            return (k <= max_denominator && k > 0).then_some((h, k));
        }
        let a_dec = lo.floor();
        let a = u64::try_from(a_dec).ok()?;
        (h0, h1) = (h1, a.checked_mul(h1)?.checked_add(h0)?);
        (k0, k1) = (k1, a.checked_mul(k1)?.checked_add(k0)?);
        if k1 > max_denominator {
            return None;
        }
        let (frac_lo, frac_hi) = (lo - a_dec, hi - a_dec);
        if frac_lo.is_zero() {
            return None;
        }
        (lo, hi) = (
            Decimal::ONE.checked_div(frac_hi)?,
            Decimal::ONE.checked_div(frac_lo)?,
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::difference::{Fields, Scope};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn side(fields: &[(&str, &str)]) -> Evidence {
        Evidence {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            attributes: Fields::new(),
        }
    }

    fn check(class: DiffClass, legacy: &[(&str, &str)], modern: &[(&str, &str)], want: Observed) {
        let diff = Diff {
            legacy: Some(side(legacy)),
            modern: Some(side(modern)),
            ..Diff::new(class, Scope::Line)
        };
        assert_eq!(observe(&diff), want, "{legacy:?} → {modern:?}");
    }

    fn fixed(shape: Shape) -> Observed {
        Observed::Fixed(shape)
    }

    #[test]
    fn one_diff_shows_its_shape() {
        use DiffClass::*;
        let amount = AmountMismatch;
        check(
            amount,
            &[("amount", "12.345")],
            &[("amount", "12.35")],
            fixed(Shape::FewerDecimals {
                coarser: Side::Modern,
                decimals: 2,
            }),
        );
        check(
            amount,
            &[("amount", "12.541")],
            &[("amount", "12.540")],
            Observed::Weak(
                Shape::FewerDecimals {
                    coarser: Side::Modern,
                    decimals: 2,
                },
                Amounts {
                    legacy: d("12.541"),
                    modern: d("12.540"),
                },
            ),
        );
        check(
            amount,
            &[("amount", "12.3")],
            &[("amount", "12.345")],
            fixed(Shape::FewerDecimals {
                coarser: Side::Legacy,
                decimals: 1,
            }),
        );
        check(
            amount,
            &[("amount", "5.00")],
            &[("amount", "-5.00")],
            fixed(Shape::SignFlip),
        );
        // 2.5 × 0.5 = 1.25: half up 1.3, half even 1.2.
        check(
            amount,
            &[
                ("amount", "1.3"),
                ("quantity", "2.5"),
                ("unit_price", "0.5"),
            ],
            &[
                ("amount", "1.2"),
                ("quantity", "2.5"),
                ("unit_price", "0.5"),
            ],
            fixed(Shape::RoundingMode {
                decimals: 1,
                legacy: Rounding::HalfUp,
                modern: Rounding::HalfEven,
            }),
        );
        // 49.00 × 27 / 31 = 42.677…, × 27 / 30 = 44.10.
        check(
            amount,
            &[
                ("amount", "42.68"),
                ("quantity", "1"),
                ("unit_price", "49.00"),
            ],
            &[
                ("amount", "44.10"),
                ("quantity", "1"),
                ("unit_price", "49.00"),
            ],
            fixed(Shape::Proration {
                legacy_days: 31,
                modern_days: 30,
            }),
        );
        check(
            QuantityMismatch,
            &[("amount", "5.00"), ("quantity", "2")],
            &[("amount", "5.00"), ("quantity", "2000")],
            fixed(Shape::UnitScale { factor: d("1000") }),
        );
        // Padded to three decimals, half even still shows: 5 × 0.025 = 0.125.
        let rounds_half_even = fixed(Shape::RoundingMode {
            decimals: 2,
            legacy: Rounding::HalfUp,
            modern: Rounding::HalfEven,
        });
        let priced = |amount, quantity, price| {
            [
                ("amount", amount),
                ("quantity", quantity),
                ("unit_price", price),
            ]
        };
        check(
            amount,
            &priced("0.13", "5", "0.025"),
            &priced("0.120", "5", "0.025"),
            rounds_half_even.clone(),
        );
        // Half even's `0.10` for 0.105 is a rounding mode, not a hint of fewer decimals.
        check(
            amount,
            &priced("0.11", "1", "0.105"),
            &priced("0.10", "1", "0.105"),
            rounds_half_even,
        );
        // Off a midpoint the hint stands: 12.3491 rounded to 2 is 12.35 (up to 3 also is).
        check(
            amount,
            &priced("12.349", "1", "12.3491"),
            &priced("12.350", "1", "12.3491"),
            Observed::Weak(
                Shape::FewerDecimals {
                    coarser: Side::Modern,
                    decimals: 2,
                },
                Amounts {
                    legacy: d("12.349"),
                    modern: d("12.350"),
                },
            ),
        );
        check(
            CurrencyMismatch,
            &[("amount", "5.00"), ("currency", "USD")],
            &[("amount", "5.00"), ("currency", "EUR")],
            fixed(Shape::CurrencyRelabel {
                legacy: "USD".into(),
                modern: "EUR".into(),
            }),
        );
        check(
            amount,
            &[("amount", "5.00")],
            &[("amount", "6.00")],
            Observed::Numeric(Amounts {
                legacy: d("5.00"),
                modern: d("6.00"),
            }),
        );
        check(
            MissingInModern,
            &[("amount", "5.00")],
            &[],
            fixed(Shape::Missing { side: Side::Modern }),
        );
    }

    fn amounts(pairs: &[(&str, &str)]) -> Vec<Amounts> {
        pairs
            .iter()
            .map(|(l, m)| Amounts {
                legacy: d(l),
                modern: d(m),
            })
            .collect()
    }

    #[test]
    fn a_group_shows_a_constant() {
        let offset = amounts(&[("10.00", "12.50"), ("1.00", "3.50")]);
        assert_eq!(common_shape(&offset), Shape::Offset { delta: d("2.50") });
        // A tax of 20 % against 21 %, each rounded: × 21/20.
        let tax = amounts(&[("2.47", "2.59"), ("20.00", "21.00"), ("0.33", "0.35")]);
        assert_eq!(
            common_shape(&tax),
            Shape::Ratio {
                numerator: 21,
                denominator: 20
            }
        );
        // Padded amounts round to no more decimals than their digits show.
        let padded = amounts(&[("2.47", "2.590"), ("20.00", "21.000"), ("0.33", "0.350")]);
        assert_eq!(
            common_shape(&padded),
            Shape::Ratio {
                numerator: 21,
                denominator: 20
            }
        );
        let varied = amounts(&[("10.00", "12.00"), ("10.00", "15.00")]);
        assert_eq!(common_shape(&varied), Shape::Varied);
        assert_eq!(common_shape(&amounts(&[("1", "2")])), Shape::Varied);
    }

    #[test]
    fn the_simplest_fraction_between() {
        let check = |lo: &str, hi: &str, want: Option<(u64, u64)>| {
            assert_eq!(simplest_between(d(lo), d(hi), 10_000), want, "[{lo}, {hi}]");
        };
        // Not 21/20: 18/17 lies in the interval and is simpler; tighter amounts decide.
        check("1.04", "1.06", Some((18, 17)));
        check("1.0495", "1.0505", Some((21, 20)));
        check("1.0333", "1.0334", Some((31, 30)));
        check("2.5", "3.5", Some((3, 1)));
        check("0.3333", "0.33334", Some((1, 3)));
        check("0.1", "0.1", Some((1, 10)));
    }
}
