//! Which legacy line is compared with which modern line, within one key group.
//!
//! Several lines can share a match key (two storage lines of one account and period, say).
//! The pairing minimises the whole difference, lexicographically: the total absolute amount
//! difference first, then currency mismatches, quantity mismatches, unit-price mismatches and
//! the cosmetic fields (unit, description, the charge code when the key leaves it out, each
//! attribute not ignored: what `compare_pair` reports). Every line of the shorter side is paired; the rest are missing lines.
//!
//! It must never depend on the order lines arrive in, nor on which side is called legacy:
//! lines are first put in a canonical order by content, and the side that plays the rows of
//! the assignment is chosen by count, then by content — never by name.
//!
//! Small groups get an exact lexicographic assignment (the Hungarian method over an ordered
//! cost group). Large groups are paired exactly by amount with memory linear in the group:
//! equal amounts first (this never makes the total worse), then an order-preserving assignment
//! of the rest (optimal in one dimension) by divide and conquer over a banded recurrence.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::config::Ignored;
use crate::model::{Field, LineStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairing {
    Both(u32, u32),
    LegacyOnly(u32),
    ModernOnly(u32),
}

/// The largest rows × columns a group is given the exact lexicographic assignment for
/// (its work grows as rows² × columns).
const LEXICOGRAPHIC_CELLS_MAX: usize = 1 << 14;

/// The largest short × long block paired by a full table; larger ones are split in halves.
const TABLE_CELLS_MAX: usize = 1 << 16;

/// A number as compared: its value when it parses, else its text (absent is empty text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Num<'s> {
    Value(Decimal),
    Text(&'s str),
}

impl<'s> Num<'s> {
    fn of(text: &'s str) -> Num<'s> {
        match crate::money::parse_decimal(text) {
            Ok(value) => Num::Value(value),
            Err(_) => Num::Text(text),
        }
    }
}

/// What the pairing looks at in one line, in the order lines are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Facts<'s> {
    amount: Decimal,
    currency: &'static str,
    quantity: Num<'s>,
    unit_price: Num<'s>,
    unit: &'s str,
    description: &'s str,
    charge_code: &'s str,
    attributes: &'s str,
    /// Not compared, but a usage line is rather paired with a usage line than with a
    /// recurring one when the key leaves the line type out; and the canonical order must
    /// tell lines apart by it.
    line_type: crate::model::LineType,
}

impl<'s> Facts<'s> {
    fn of(store: &'s LineStore, line: u32) -> Facts<'s> {
        let line = store.line(line as usize);
        Facts {
            amount: line.amount(),
            currency: line.currency().code(),
            quantity: Num::of(line.get(Field::Quantity)),
            unit_price: Num::of(line.get(Field::UnitPrice)),
            unit: line.get(Field::Unit),
            description: line.get(Field::Description),
            charge_code: line.get(Field::ChargeCode),
            attributes: line.get(Field::Attributes),
            line_type: line.line_type(),
        }
    }
}

/// The difference between two paired lines, ordered lexicographically in the order the
/// pairing minimises. Componentwise addition makes it an ordered group, which is all the
/// assignment needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    amount: Decimal,
    currency: i64,
    quantity: i64,
    unit_price: i64,
    cosmetic: i64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            amount: self.amount + o.amount,
            currency: self.currency + o.currency,
            quantity: self.quantity + o.quantity,
            unit_price: self.unit_price + o.unit_price,
            cosmetic: self.cosmetic + o.cosmetic,
        }
    }
}

impl std::ops::Sub for Cost {
    type Output = Cost;
    fn sub(self, o: Cost) -> Cost {
        Cost {
            amount: self.amount - o.amount,
            currency: self.currency - o.currency,
            quantity: self.quantity - o.quantity,
            unit_price: self.unit_price - o.unit_price,
            cosmetic: self.cosmetic - o.cosmetic,
        }
    }
}

impl Cost {
    /// Above any real assignment: amounts are below 10^18, so a group's total is far below.
    fn infinite() -> Cost {
        Cost {
            amount: Decimal::from_i128_with_scale(10i128.pow(27), 0),
            ..Cost::default()
        }
    }

    fn between(a: &Facts<'_>, b: &Facts<'_>, ignored: &Ignored) -> Cost {
        let differs = |x: bool| i64::from(x);
        Cost {
            amount: (a.amount - b.amount).abs(),
            currency: differs(a.currency != b.currency),
            quantity: differs(!ignored.quantity && a.quantity != b.quantity),
            unit_price: differs(!ignored.unit_price && a.unit_price != b.unit_price),
            cosmetic: differs(!ignored.unit && a.unit != b.unit)
                + differs(!ignored.description && a.description != b.description)
                + differs(a.charge_code != b.charge_code)
                + differs(a.line_type != b.line_type)
                + attribute_differences(a.attributes, b.attributes, ignored),
        }
    }
}

/// How many attributes the comparison of two lines reports as different: the names whose
/// values differ (or that one side lacks) and are not ignored.
fn attribute_differences(a: &str, b: &str, ignored: &Ignored) -> i64 {
    if a == b || ignored.all_attributes {
        return 0;
    }
    let left: std::collections::BTreeMap<&str, &str> = crate::model::attribute_pairs(a).collect();
    let right: std::collections::BTreeMap<&str, &str> = crate::model::attribute_pairs(b).collect();
    let names: std::collections::BTreeSet<&str> =
        left.keys().chain(right.keys()).copied().collect();
    names
        .into_iter()
        .filter(|name| left.get(name) != right.get(name) && !ignored.attribute(name))
        .count() as i64
}

/// Pairs the lines of one key group (line indices into each side's store).
pub(crate) fn pair_group(
    legacy: &LineStore,
    l: &[u32],
    modern: &LineStore,
    m: &[u32],
    ignored: &Ignored,
    out: &mut Vec<Pairing>,
) {
    out.clear();
    match (l, m) {
        ([a], [b]) => return out.push(Pairing::Both(*a, *b)),
        _ if m.is_empty() => return out.extend(l.iter().map(|a| Pairing::LegacyOnly(*a))),
        _ if l.is_empty() => return out.extend(m.iter().map(|b| Pairing::ModernOnly(*b))),
        _ => {}
    }
    // The common case: both sides list the same lines in the same order. Pairing them as
    // they come costs nothing, and so no other pairing can do better.
    if l.len() == m.len()
        && l.iter()
            .zip(m)
            .all(|(&a, &b)| identical(legacy, a, modern, b))
    {
        return out.extend(l.iter().zip(m).map(|(a, b)| Pairing::Both(*a, *b)));
    }
    let (l, m) = (sorted(legacy, l), sorted(modern, m));
    // The rows are the shorter side; on equal counts, the one smaller by content. Either
    // way the choice does not depend on which side is legacy.
    let legacy_rows = match l.len().cmp(&m.len()) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => l.iter().map(|x| &x.0).le(m.iter().map(|x| &x.0)),
    };
    let (rows, cols) = if legacy_rows { (&l, &m) } else { (&m, &l) };
    let cost = |r: usize, c: usize| Cost::between(&rows[r].0, &cols[c].0, ignored);
    let pairs = if rows.len() == 1 {
        // One row: the cheapest column, the first of equals.
        let best = (0..cols.len()).min_by_key(|&c| cost(0, c)).unwrap_or(0);
        vec![(0, best)]
    } else if rows.len() == 2 && cols.len() == 2 {
        if cost(0, 1) + cost(1, 0) < cost(0, 0) + cost(1, 1) {
            vec![(0, 1), (1, 0)]
        } else {
            vec![(0, 0), (1, 1)]
        }
    } else if rows.len() * cols.len() <= LEXICOGRAPHIC_CELLS_MAX {
        lexicographic(rows, cols, ignored)
    } else {
        by_amount(rows, cols, ignored)
    };
    let mut row_used = vec![false; rows.len()];
    let mut col_used = vec![false; cols.len()];
    for (r, c) in pairs {
        row_used[r] = true;
        col_used[c] = true;
        let (a, b) = (rows[r].1, cols[c].1);
        out.push(if legacy_rows {
            Pairing::Both(a, b)
        } else {
            Pairing::Both(b, a)
        });
    }
    let unpaired = |lines: &[(Facts<'_>, u32)], used: &[bool]| -> Vec<u32> {
        lines
            .iter()
            .zip(used)
            .filter(|(_, u)| !**u)
            .map(|(x, _)| x.1)
            .collect()
    };
    let (rest_rows, rest_cols) = (unpaired(rows, &row_used), unpaired(cols, &col_used));
    let (rest_l, rest_m) = if legacy_rows {
        (rest_rows, rest_cols)
    } else {
        (rest_cols, rest_rows)
    };
    out.extend(rest_l.into_iter().map(Pairing::LegacyOnly));
    out.extend(rest_m.into_iter().map(Pairing::ModernOnly));
}

/// Two lines whose compared fields are the same bytes.
fn identical(legacy: &LineStore, a: u32, modern: &LineStore, b: u32) -> bool {
    let (a, b) = (legacy.line(a as usize), modern.line(b as usize));
    let same_number = |f: Field| {
        let (x, y) = (a.get(f), b.get(f));
        x == y || Num::of(x) == Num::of(y)
    };
    a.amount() == b.amount()
        && a.currency() == b.currency()
        && a.line_type() == b.line_type()
        && [
            Field::Unit,
            Field::Description,
            Field::Attributes,
            Field::ChargeCode,
        ]
        .iter()
        .all(|f| a.get(*f) == b.get(*f))
        && same_number(Field::Quantity)
        && same_number(Field::UnitPrice)
}

type Sorted<'s> = Vec<(Facts<'s>, u32)>;

/// One side's lines of a group in canonical order: by what is compared, then by every other
/// field (so that which of two lines is paired never depends on where they were in the
/// file), then by position.
fn sorted<'s>(store: &'s LineStore, ids: &[u32]) -> Sorted<'s> {
    let mut lines: Sorted<'s> = ids.iter().map(|&i| (Facts::of(store, i), i)).collect();
    lines.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            let (x, y) = (store.line(a.1 as usize), store.line(b.1 as usize));
            Field::ALL
                .iter()
                .map(|f| x.get(*f).cmp(y.get(*f)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        })
    });
    lines
}

/// The exact minimum-cost assignment of every row to a distinct column (rows ≤ columns), by
/// the Hungarian method with potentials. Returns (row, column) pairs.
fn lexicographic(rows: &Sorted<'_>, cols: &Sorted<'_>, ignored: &Ignored) -> Vec<(usize, usize)> {
    let (n, m) = (rows.len(), cols.len());
    debug_assert!(n <= m);
    let cost: Vec<Cost> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |c| Cost::between(&r.0, &c.0, ignored)))
        .collect();
    let at = |i: usize, j: usize| cost[(i - 1) * m + (j - 1)];
    // One-based, column 0 is the virtual start; `owner[j]` is the row holding column j.
    let mut u = vec![Cost::default(); n + 1];
    let mut v = vec![Cost::default(); m + 1];
    let mut owner = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min_v = vec![Cost::infinite(); m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = Cost::infinite();
            let mut j1 = 0;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = at(i0, j) - u[i0] - v[j];
                if reduced < min_v[j] {
                    min_v[j] = reduced;
                    way[j] = j0;
                }
                if min_v[j] < delta {
                    delta = min_v[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] = u[owner[j]] + delta;
                    v[j] = v[j] - delta;
                } else {
                    min_v[j] = min_v[j] - delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| owner[j] != 0)
        .map(|j| (owner[j] - 1, j - 1))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// Exact by amount for any group size, with memory linear in the group: equal amounts are
/// paired first (within an amount, identical lines first), then the rest in amount order.
fn by_amount(rows: &Sorted<'_>, cols: &Sorted<'_>, ignored: &Ignored) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let amount_order = |i: usize, j: usize| rows[i].0.amount.cmp(&cols[j].0.amount);
    let equal_block = |i: usize, j: usize, rest: &mut Unpaired| {
        let amount = rows[i].0.amount;
        let i_end = i + rows[i..]
            .iter()
            .take_while(|r| r.0.amount == amount)
            .count();
        let j_end = j + cols[j..]
            .iter()
            .take_while(|c| c.0.amount == amount)
            .count();
        let block = pair_equal_amounts(&rows[i..i_end], &cols[j..j_end], ignored);
        let (mut used_r, mut used_c) = (vec![false; i_end - i], vec![false; j_end - j]);
        for (a, b) in block {
            used_r[a] = true;
            used_c[b] = true;
            pairs.push((i + a, j + b));
        }
        rest.rows.extend((i..i_end).filter(|k| !used_r[k - i]));
        rest.cols.extend((j..j_end).filter(|k| !used_c[k - j]));
        (i_end, j_end)
    };
    let Unpaired {
        rows: rest_r,
        cols: rest_c,
    } = merge_join((rows.len(), cols.len()), amount_order, equal_block);
    let r_amounts: Vec<Decimal> = rest_r.iter().map(|&k| rows[k].0.amount).collect();
    let c_amounts: Vec<Decimal> = rest_c.iter().map(|&k| cols[k].0.amount).collect();
    // The longer list is the one lines are skipped in.
    let swap = r_amounts.len() > c_amounts.len();
    let (long, short) = if swap {
        (&r_amounts, &c_amounts)
    } else {
        (&c_amounts, &r_amounts)
    };
    let mut chosen = Vec::new();
    assign_in_order(long, short, 0, 0, &mut chosen);
    pairs.extend(chosen.into_iter().map(|(l, s)| {
        let (r, c) = if swap { (l, s) } else { (s, l) };
        (rest_r[r], rest_c[c])
    }));
    pairs.sort_unstable();
    pairs
}

/// Lines of one amount on both sides: exactly by the other fields when the block is small,
/// else identical lines first and the rest in content order.
fn pair_equal_amounts(
    rows: &[(Facts<'_>, u32)],
    cols: &[(Facts<'_>, u32)],
    ignored: &Ignored,
) -> Vec<(usize, usize)> {
    let (n, m) = (rows.len(), cols.len());
    if n * m <= LEXICOGRAPHIC_CELLS_MAX {
        let (r, c) = (rows.to_vec(), cols.to_vec());
        return if n <= m {
            lexicographic(&r, &c, ignored)
        } else {
            lexicographic(&c, &r, ignored)
                .into_iter()
                .map(|(b, a)| (a, b))
                .collect()
        };
    }
    let mut pairs = Vec::new();
    let rest = merge_join(
        (n, m),
        |i, j| rows[i].0.cmp(&cols[j].0),
        |i, j, _| {
            pairs.push((i, j));
            (i + 1, j + 1)
        },
    );
    pairs.extend(rest.rows.into_iter().zip(rest.cols));
    pairs
}

/// The positions of each side a merge join left unpaired, in order.
#[derive(Default)]
struct Unpaired {
    rows: Vec<usize>,
    cols: Vec<usize>,
}

/// Walks two sorted lists of `len` elements side by side: `order(i, j)` compares their heads;
/// the smaller head is unpaired; on equal heads `equal(i, j, unpaired)` pairs what it will,
/// adds what it leaves to `unpaired`, and says where each list resumes (past `i` and `j`).
/// What is left of either list when the other ends is unpaired too.
fn merge_join(
    len: (usize, usize),
    mut order: impl FnMut(usize, usize) -> Ordering,
    mut equal: impl FnMut(usize, usize, &mut Unpaired) -> (usize, usize),
) -> Unpaired {
    let mut rest = Unpaired::default();
    let (mut i, mut j) = (0, 0);
    while i < len.0 && j < len.1 {
        match order(i, j) {
            Ordering::Less => {
                rest.rows.push(i);
                i += 1;
            }
            Ordering::Greater => {
                rest.cols.push(j);
                j += 1;
            }
            Ordering::Equal => {
                let (i_end, j_end) = equal(i, j, &mut rest);
                debug_assert!(i_end > i && j_end > j, "a merge join must move on");
                (i, j) = (i_end, j_end);
            }
        }
    }
    rest.rows.extend(i..len.0);
    rest.cols.extend(j..len.1);
    rest
}

/// Pairs every element of `short` with a distinct element of `long`, both sorted, keeping
/// their order (which is optimal for absolute differences on a line), so that the total
/// absolute difference is smallest. Appends (long index, short index) pairs, offset by
/// `long_at` and `short_at`. Memory is linear: a large block is split at the middle of
/// `short` where the best costs of both halves meet (Hirschberg's method).
fn assign_in_order(
    long: &[Decimal],
    short: &[Decimal],
    long_at: usize,
    short_at: usize,
    out: &mut Vec<(usize, usize)>,
) {
    let (n, m) = (long.len(), short.len());
    if m == 0 {
        return;
    }
    if n == m {
        out.extend((0..m).map(|k| (long_at + k, short_at + k)));
        return;
    }
    if m * (n - m + 1) <= TABLE_CELLS_MAX {
        out.extend(
            assign_by_table(long, short)
                .into_iter()
                .map(|(i, j)| (long_at + i, short_at + j)),
        );
        return;
    }
    let (half, slack) = (m / 2, n - m);
    let head = prefix_costs(long, &short[..half], slack);
    let reversed = |v: &[Decimal]| v.iter().rev().copied().collect::<Vec<_>>();
    let tail = prefix_costs(&reversed(long), &reversed(&short[half..]), slack);
    // head[k]: short[..half] within long[..half + k]; tail[k]: short[half..] within the last
    // m - half + k. Split where the two meet most cheaply (the first such place).
    let split = (0..=slack)
        .min_by_key(|&k| head[k] + tail[slack - k])
        .map_or(half, |k| half + k);
    assign_in_order(&long[..split], &short[..half], long_at, short_at, out);
    assign_in_order(
        &long[split..],
        &short[half..],
        long_at + split,
        short_at + half,
        out,
    );
}

/// The smallest cost of pairing all of `short` in order within `long[..short.len() + k]`,
/// for k in 0..=slack. One band of the table at a time: memory is linear.
fn prefix_costs(long: &[Decimal], short: &[Decimal], slack: usize) -> Vec<Decimal> {
    let width = slack + 1;
    let mut row = vec![Some(Decimal::ZERO); width];
    let mut next: Vec<Option<Decimal>> = vec![None; width];
    for (j, s) in short.iter().enumerate() {
        for k in 0..width {
            let i = j + 1 + k;
            if i > long.len() {
                next[k] = None;
                continue;
            }
            let skip = if k > 0 { next[k - 1] } else { None };
            let pair = row[k].map(|c: Decimal| c + (long[i - 1] - *s).abs());
            next[k] = match (skip, pair) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        std::mem::swap(&mut row, &mut next);
    }
    row.into_iter()
        .map(|c| c.unwrap_or_else(|| Cost::infinite().amount))
        .collect()
}

/// The same assignment by a full table with its choices kept, for blocks small enough.
fn assign_by_table(long: &[Decimal], short: &[Decimal]) -> Vec<(usize, usize)> {
    let (n, m) = (long.len(), short.len());
    let band = n - m + 1;
    // cost[j][k]: short[..j] paired within long[..j + k]; k in 0..band.
    let mut cost = vec![Decimal::ZERO; (m + 1) * band];
    let mut take = vec![false; (m + 1) * band];
    for j in 1..=m {
        for k in 0..band {
            let i = j + k;
            let pair = cost[(j - 1) * band + k] + (long[i - 1] - short[j - 1]).abs();
            let (best, took) = if k > 0 {
                let skip = cost[j * band + k - 1];
                if skip < pair {
                    (skip, false)
                } else {
                    (pair, true)
                }
            } else {
                (pair, true)
            };
            cost[j * band + k] = best;
            take[j * band + k] = took;
        }
    }
    let mut pairs = Vec::with_capacity(m);
    let (mut j, mut k) = (m, band - 1);
    while j > 0 {
        if take[j * band + k] {
            pairs.push((j + k - 1, j - 1));
            j -= 1;
        } else {
            k -= 1;
        }
    }
    pairs.reverse();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn check_order(long: &[&str], short: &[&str], expected: &[(usize, usize)]) {
        let long: Vec<Decimal> = long.iter().map(|s| dec(s)).collect();
        let short: Vec<Decimal> = short.iter().map(|s| dec(s)).collect();
        let mut got = Vec::new();
        assign_in_order(&long, &short, 0, 0, &mut got);
        assert_eq!(got, expected);
    }

    #[test]
    fn assignment_picks_the_closest_subset() {
        check_order(&["10", "20", "30"], &["21"], &[(1, 0)]);
        check_order(&["1", "5", "9"], &["4", "10"], &[(1, 0), (2, 1)]);
        check_order(&["1", "2"], &["1.5"], &[(1, 0)]);
    }

    #[test]
    fn large_blocks_split_in_halves_agree_with_the_table() {
        // Long enough to be split several times; the table answer is the reference.
        let long: Vec<Decimal> = (0..700).map(|k| Decimal::new(k * 37 % 1000, 1)).collect();
        let mut long = long;
        long.sort();
        let mut short: Vec<Decimal> = (0..300).map(|k| Decimal::new(k * 53 % 997, 1)).collect();
        short.sort();
        let cost = |pairs: &[(usize, usize)]| -> Decimal {
            pairs.iter().map(|&(i, j)| (long[i] - short[j]).abs()).sum()
        };
        let mut split = Vec::new();
        assign_in_order(&long, &short, 0, 0, &mut split);
        let table = assign_by_table(&long, &short);
        assert_eq!(split.len(), short.len());
        assert_eq!(cost(&split), cost(&table));
    }

    fn group(amounts: &[i64]) -> LineStore {
        let mut store = LineStore::new();
        for (i, a) in amounts.iter().enumerate() {
            let amount = Decimal::new(*a, 2);
            let text_amount = amount.to_string();
            let mut text = [""; Field::COUNT];
            text[Field::AccountId as usize] = "a";
            text[Field::Amount as usize] = &text_amount;
            store
                .push(crate::model::NewLine {
                    text,
                    amount,
                    line_type: crate::model::LineType::Usage,
                    currency: "USD".parse().unwrap(),
                    source_line: i as u32 + 2,
                })
                .unwrap();
        }
        store
    }

    #[test]
    fn large_groups_with_ties_are_exact_by_amount() {
        // Groups past the lexicographic size, with many equal amounts: the total amount
        // difference equals the plain order-preserving table's over the sorted amounts.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |modulo: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % modulo) as i64
        };
        for (n, m) in [(130, 150), (200, 90), (400, 399)] {
            let l: Vec<i64> = (0..n).map(|_| next(60) * 25).collect();
            let r: Vec<i64> = (0..m).map(|_| next(60) * 25 + next(3)).collect();
            let (ls, rs) = (group(&l), group(&r));
            let ids = |k: usize| (0..k as u32).collect::<Vec<_>>();
            let mut out = Vec::new();
            pair_group(&ls, &ids(n), &rs, &ids(m), &Ignored::default(), &mut out);
            let got: Decimal = out
                .iter()
                .filter_map(|p| match p {
                    Pairing::Both(a, b) => {
                        Some((ls.line(*a as usize).amount() - rs.line(*b as usize).amount()).abs())
                    }
                    _ => None,
                })
                .sum();
            let paired = out
                .iter()
                .filter(|p| matches!(p, Pairing::Both(..)))
                .count();
            assert_eq!(paired, n.min(m));
            let mut a: Vec<Decimal> = l.iter().map(|x| Decimal::new(*x, 2)).collect();
            let mut b: Vec<Decimal> = r.iter().map(|x| Decimal::new(*x, 2)).collect();
            a.sort();
            b.sort();
            let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
            let best: Decimal = assign_by_table(&long, &short)
                .into_iter()
                .map(|(i, j)| (long[i] - short[j]).abs())
                .sum();
            assert_eq!(got, best, "{n} x {m}");
        }
    }
}
