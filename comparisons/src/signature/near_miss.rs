//! Near misses: a line missing in modern and one missing in legacy, in one account, the same in
//! every field but one key component (a period end a day apart, a region or charge code
//! renamed). Both halves are one `key_mismatch` of that component, not two piles of missing
//! lines. Pure; looks only at an account's missing lines, at most `ACCOUNT_MISSING_MAX` a side.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::shape::Shape;
use crate::difference::{Diff, DiffClass, Evidence};
use crate::money::parse_decimal;

/// The key components a near miss may differ in.
const KEY_FIELDS: [&str; 7] = [
    "period_start",
    "period_end",
    "usage_start",
    "usage_end",
    "region",
    "charge_code",
    "line_type",
];

/// Accounts with more missing lines than this on a side are not searched (the search is
/// quadratic in them); their lines stay missing lines.
pub(crate) const ACCOUNT_MISSING_MAX: usize = 256;

/// The `KeyMismatch` shape of each diff that is half of a near miss.
pub(crate) fn near_misses(diffs: &[Diff]) -> HashMap<usize, Shape> {
    let mut by_account: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, d) in diffs.iter().enumerate() {
        let Some(account) = d.account_id.as_deref() else {
            continue;
        };
        match d.class {
            DiffClass::MissingInModern => by_account.entry(account).or_default().0.push(i),
            DiffClass::MissingInLegacy => by_account.entry(account).or_default().1.push(i),
            _ => {}
        }
    }
    let mut found = HashMap::new();
    for (_, (mut legacy, mut modern)) in by_account {
        if legacy.is_empty() || modern.is_empty() {
            continue;
        }
        if legacy.len() > ACCOUNT_MISSING_MAX || modern.len() > ACCOUNT_MISSING_MAX {
            continue;
        }
        // Content order, so the pairs never depend on the order of the diffs (compared in
        // place: a sort key would copy each line's fields at every comparison).
        let fields = |i: usize, legacy_side: bool| {
            let d = &diffs[i];
            let e = if legacy_side { &d.legacy } else { &d.modern };
            e.as_ref().map(|e| &e.fields)
        };
        legacy.sort_by(|a, b| fields(*a, true).cmp(&fields(*b, true)));
        modern.sort_by(|a, b| fields(*a, false).cmp(&fields(*b, false)));
        let mut taken = vec![false; modern.len()];
        for l in legacy {
            let Some(le) = diffs[l].legacy.as_ref() else {
                continue;
            };
            for (j, &m) in modern.iter().enumerate() {
                let Some(me) = diffs[m].modern.as_ref() else {
                    continue;
                };
                if taken[j] {
                    continue;
                }
                if let Some(shape) = one_key_apart(le, me) {
                    taken[j] = true;
                    found.insert(l, shape.clone());
                    found.insert(m, shape);
                    break;
                }
            }
        }
    }
    found
}

/// The shape of two lines that differ in exactly one key component and nothing else
/// (attributes and descriptions included).
fn one_key_apart(legacy: &Evidence, modern: &Evidence) -> Option<Shape> {
    if legacy.attributes != modern.attributes {
        return None;
    }
    let mut differing = None;
    let names = legacy.fields.keys().chain(modern.fields.keys());
    for name in names {
        let (l, m) = (legacy.fields.get(name), modern.fields.get(name));
        if l == m || same_number(name, l, m) {
            continue;
        }
        if !KEY_FIELDS.contains(&name) {
            return None;
        }
        match differing {
            None => differing = Some((name, l?, m?)),
            Some((seen, _, _)) if seen == name => {}
            Some(_) => return None,
        }
    }
    let (field, l, m) = differing?;
    let change = match (day(l), day(m)) {
        (Some(l), Some(m)) => format!("{:+} days", (m - l).num_days()),
        _ => format!("{l}→{m}"),
    };
    Some(Shape::KeyMismatch {
        field: field.to_owned(),
        change,
    })
}

/// The fields that are numbers, equal when their values are (`12.5` and `12.50E0`).
const NUMBER_FIELDS: [&str; 3] = ["amount", "quantity", "unit_price"];

fn same_number(name: &str, l: Option<&str>, m: Option<&str>) -> bool {
    let value = |v: Option<&str>| v.and_then(|v| parse_decimal(v).ok());
    NUMBER_FIELDS.contains(&name) && matches!((value(l), value(m)), (Some(a), Some(b)) if a == b)
}

fn day(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(fields: &[(&str, &str)]) -> Evidence {
        let mut e = Evidence::default();
        for (name, value) in fields {
            e.fields.insert(name, value);
        }
        e
    }

    fn check(legacy: &[(&str, &str)], modern: &[(&str, &str)], want: Option<(&str, &str)>) {
        let got = one_key_apart(&evidence(legacy), &evidence(modern));
        let want = want.map(|(field, change)| Shape::KeyMismatch {
            field: field.to_owned(),
            change: change.to_owned(),
        });
        assert_eq!(got, want, "{legacy:?} / {modern:?}");
    }

    #[test]
    fn lines_one_key_component_apart() {
        let line = [
            ("amount", "5.00"),
            ("period_end", "2026-10-31"),
            ("region", "eu"),
        ];
        check(
            &line,
            &[
                ("amount", "5.00"),
                ("period_end", "2026-11-01"),
                ("region", "eu"),
            ],
            Some(("period_end", "+1 days")),
        );
        check(
            &line,
            &[
                ("amount", "5.00"),
                ("period_end", "2026-10-31"),
                ("region", "eu-west-1"),
            ],
            Some(("region", "eu→eu-west-1")),
        );
        // An amount or two key components apart: no near miss.
        check(
            &line,
            &[
                ("amount", "5.01"),
                ("period_end", "2026-11-01"),
                ("region", "eu"),
            ],
            None,
        );
        check(
            &line,
            &[
                ("amount", "5.00"),
                ("period_end", "2026-11-01"),
                ("region", "us"),
            ],
            None,
        );
        check(&line, &line, None);
        // A number spelled another way is the same number.
        check(
            &line,
            &[
                ("amount", "500E-2"),
                ("period_end", "2026-11-01"),
                ("region", "eu"),
            ],
            Some(("period_end", "+1 days")),
        );
    }
}
