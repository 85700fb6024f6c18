//! Signatures of hand-made diffs (the demo's four defects in miniature) and properties:
//! order never matters, ids are stable, an exact ratio or offset is found.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::difference::{Evidence, Fields};
use crate::money::Currency;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// One line's diff: account, cell `p/r`, charge code, line type, currency, both amounts
/// (`None` for a missing side) with quantity and unit price when given.
struct Line<'a> {
    account: &'a str,
    cell: (&'a str, &'a str),
    code: &'a str,
    line_type: &'a str,
    currency: &'a str,
    legacy: Option<&'a str>,
    modern: Option<&'a str>,
    priced: Option<(&'a str, &'a str)>,
}

fn diff(l: Line<'_>) -> Diff {
    let evidence = |amount: &str| {
        let mut fields = Fields::from([
            ("amount", amount),
            ("currency", l.currency),
            ("line_type", l.line_type),
        ]);
        if let Some((q, p)) = l.priced {
            fields.insert("quantity", q);
            fields.insert("unit_price", p);
        }
        Evidence {
            fields,
            attributes: Fields::new(),
        }
    };
    let class = match (l.legacy, l.modern) {
        (Some(_), None) => DiffClass::MissingInModern,
        (None, Some(_)) => DiffClass::MissingInLegacy,
        _ => DiffClass::AmountMismatch,
    };
    let amount = |a: Option<&str>| a.map(d).unwrap_or_default();
    Diff {
        account_id: Some(l.account.to_owned()),
        charge_code: Some(l.code.to_owned()),
        key: Fields::from([("line_type", l.line_type)]),
        legacy: l.legacy.map(evidence),
        modern: l.modern.map(evidence),
        delta: Some(amount(l.modern) - amount(l.legacy)),
        currency: Some(l.currency.parse::<Currency>().unwrap()),
        fields: if class == DiffClass::AmountMismatch {
            vec!["amount".to_owned()]
        } else {
            Vec::new()
        },
        partition: Some(l.cell.0.to_owned()),
        region: Some(l.cell.1.to_owned()),
        ..Diff::new(class, Scope::Line)
    }
}

fn line<'a>(account: &'a str, cell: (&'a str, &'a str), code: &'a str) -> Line<'a> {
    Line {
        account,
        cell,
        code,
        line_type: "usage",
        currency: "USD",
        legacy: None,
        modern: None,
        priced: None,
    }
}

/// The demo's defects in miniature, with their knock-on tax and credit lines.
fn demo_like() -> Vec<Diff> {
    let eu = ("p2", "eu-west-1");
    let me = ("p1", "me-south-1");
    let p3 = ("p3", "us-east-1");
    let jp = ("p1", "ap-northeast-1");
    let plan = |account, legacy, modern| Line {
        line_type: "recurring",
        currency: "EUR",
        legacy: Some(legacy),
        modern: Some(modern),
        priced: Some(("1", "49.00")),
        ..line(account, eu, "plan.pro")
    };
    let tax = |account, cell, currency, legacy, modern| Line {
        line_type: "tax",
        currency,
        legacy: Some(legacy),
        modern: Some(modern),
        ..line(account, cell, "tax.vat")
    };
    let lines = vec![
        // 1. Proration over 30 days instead of 31: plan fee, its promotion and VAT follow.
        plan("a1", "42.68", "44.10"),
        plan("a2", "11.06", "11.43"),
        Line {
            line_type: "credit",
            currency: "EUR",
            legacy: Some("-4.27"),
            modern: Some("-4.41"),
            ..line("a1", eu, "promo.spring")
        },
        tax("a1", eu, "EUR", "8.54", "8.82"),
        // 2. BHD rounded to 2 decimals.
        Line {
            currency: "BHD",
            legacy: Some("1.234"),
            modern: Some("1.23"),
            ..line("b1", me, "egress.gb")
        },
        Line {
            currency: "BHD",
            legacy: Some("7.006"),
            modern: Some("7.01"),
            ..line("b2", me, "api.calls")
        },
        // Written as 7.000: two decimals all the same.
        Line {
            currency: "BHD",
            legacy: Some("6.996"),
            modern: Some("7.000"),
            ..line("b2", me, "storage.gb")
        },
        tax("b3", me, "BHD", "0.125", "0.13"),
        // 3. The WELCOME10 credit missing, in two currencies.
        Line {
            line_type: "credit",
            legacy: Some("-4.90"),
            ..line("c1", p3, "promo.welcome10")
        },
        Line {
            line_type: "credit",
            currency: "EUR",
            legacy: Some("-4.50"),
            ..line("c2", ("p3", "eu-west-1"), "promo.welcome10")
        },
        tax("c1", p3, "USD", "0.00", "0.49"),
        // 4. All-units tiers in JPY: no constant, several metrics.
        Line {
            currency: "JPY",
            legacy: Some("1500"),
            modern: Some("1800"),
            ..line("d1", jp, "egress.gb")
        },
        Line {
            currency: "JPY",
            legacy: Some("9000"),
            modern: Some("12000"),
            ..line("d2", jp, "egress.gb")
        },
        Line {
            currency: "JPY",
            legacy: Some("400"),
            modern: Some("450"),
            ..line("d1", jp, "api.calls")
        },
        tax("d1", jp, "JPY", "190", "225"),
    ];
    lines.into_iter().map(diff).collect()
}

#[test]
fn the_demo_defects_are_four_signatures() {
    let diffs = demo_like();
    let causes = Causes::of(&diffs);
    let found: Vec<(&str, u64, u64)> = causes
        .signatures
        .iter()
        .map(|s| (s.hypothesis.as_str(), s.diffs, s.follow_on))
        .collect();
    // Ranked by money: the missing credit is all of the USD that differs and part of the EUR;
    // each other cause is all (or most) of its own currency's.
    assert_eq!(
        found,
        [
            (
                "modern does not bill the credit lines promo.welcome10 in partition p3",
                3,
                1
            ),
            (
                "modern rounds BHD amounts to 2 decimals instead of 3 in cell p1/me-south-1",
                4,
                0
            ),
            (
                "modern computes JPY usage lines differently, not by one constant ratio or offset \
                 (a pricing rule such as tiers differs; modern higher on 3 of 3) in cell p1/ap-northeast-1",
                4,
                1
            ),
            (
                "modern prorates recurring lines plan.pro over 30 days instead of 31 in cell p2/eu-west-1",
                4,
                2
            ),
        ]
    );
    // Every diff carries its signature's id; the money is per currency, net and gross.
    assert!(causes.of_diff.iter().all(|id| id.starts_with("sig-")));
    let missing = &causes.signatures[0];
    assert_eq!(missing.examples, ["c1", "c2"]);
    assert_eq!(missing.cells, ["p3/eu-west-1", "p3/us-east-1"]);
    assert_eq!(
        missing.money["USD"],
        Money {
            net: d("5.39"),
            gross: d("5.39")
        }
    );
    assert_eq!(missing.money["EUR"].net, d("4.50"));
    assert_eq!(causes.left_off, 0);
}

/// Two prorated fees whose amounts also hint at fewer decimals (`9.00` for `8.71`, a whole
/// euro; a credit of `-2.00` for `-2.07`) are the day count's, with their knock-on lines: the
/// demo's 10,000 accounts once gave these two extra signatures of one account each.
#[test]
fn a_whole_euro_hint_and_its_credit_follow_the_proration() {
    let eu = ("p2", "eu-west-1");
    let plan = |account, legacy, modern, price| Line {
        line_type: "recurring",
        currency: "EUR",
        legacy: Some(legacy),
        modern: Some(modern),
        priced: Some(("1", price)),
        ..line(account, eu, "plan.starter")
    };
    let other = |account, line_type, code, legacy, modern| Line {
        line_type,
        currency: "EUR",
        legacy: Some(legacy),
        modern: Some(modern),
        ..line(account, eu, code)
    };
    let diffs: Vec<Diff> = [
        // 27.00 × 17 / 31 = 14.806…, × 17 / 30 = 15.30.
        plan("a1", "14.81", "15.30", "27.00"),
        // 27.00 × 10 / 31 = 8.709…, × 10 / 30 = 9.00.
        plan("a2", "8.71", "9.00", "27.00"),
        other("a2", "tax", "tax.vat", "17.25", "17.32"),
        // 27.00 × 23 / 31 = 20.032…, × 23 / 30 = 20.70; the credit is a tenth of it.
        plan("a3", "20.03", "20.70", "27.00"),
        other("a3", "credit", "promo.welcome10", "-2.00", "-2.07"),
        other("a3", "tax", "tax.vat", "13.56", "13.70"),
    ]
    .into_iter()
    .map(diff)
    .collect();
    let causes = Causes::of(&diffs);
    let found: Vec<(&str, u64, u64)> = causes
        .signatures
        .iter()
        .map(|s| (s.hypothesis.as_str(), s.diffs, s.follow_on))
        .collect();
    assert_eq!(
        found,
        [(
            "modern prorates recurring lines plan.starter over 30 days instead of 31 in cell \
             p2/eu-west-1",
            6,
            3
        )]
    );
}

#[test]
fn an_id_is_its_recipe() {
    // Pinned: a change of the recipe changes every id users have noted down.
    let key = GroupKey {
        class: DiffClass::MissingInModern,
        fields: Vec::new(),
        scope: vec![
            ("charge_code", "promo.welcome10".to_owned()),
            ("line_type", "credit".to_owned()),
        ],
        shape: Shape::Missing { side: Side::Modern },
    };
    assert_eq!(key.id(), key.clone().id());
    assert_eq!(key.id().len(), 20);
    let other = GroupKey {
        shape: Shape::Missing { side: Side::Legacy },
        ..key.clone()
    };
    assert_ne!(key.id(), other.id());
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn signatures_are_capped_and_counted() {
    let codes: Vec<String> = (0..SIGNATURES_MAX + 3)
        .map(|i| format!("sku-{i}"))
        .collect();
    let diffs: Vec<Diff> = codes
        .iter()
        .map(|code| {
            diff(Line {
                legacy: Some("1.00"),
                ..line("a", ("p", "r"), code)
            })
        })
        .collect();
    let causes = Causes::of(&diffs);
    assert_eq!(causes.signatures.len(), SIGNATURES_MAX);
    assert_eq!(causes.left_off, 3);
    assert_eq!(causes.of_diff.len(), diffs.len());
}

proptest! {
    /// The order of the diffs changes no signature and no diff's id.
    #[test]
    fn order_never_matters(seed in any::<u64>()) {
        let diffs = demo_like();
        let mut order: Vec<usize> = (0..diffs.len()).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let shuffled: Vec<Diff> = order.iter().map(|&i| diffs[i].clone()).collect();
        let (a, b) = (Causes::of(&diffs), Causes::of(&shuffled));
        prop_assert_eq!(&a.signatures, &b.signatures);
        for (j, &i) in order.iter().enumerate() {
            prop_assert_eq!(&a.of_diff[i], &b.of_diff[j]);
        }
    }

    /// modern = legacy × p/q, each rounded half up to cents: the ratio is found exactly when
    /// one amount is large enough to tell it from its neighbours.
    #[test]
    fn an_exact_ratio_is_found(
        p in 1u64..40,
        q in 1u64..40,
        cents in proptest::collection::vec(1_000i64..10_000_000, 2..8),
    ) {
        prop_assume!(p != q);
        let mut cents = cents;
        cents.push(5_000_000);
        let k = Decimal::from(p) / Decimal::from(q);
        let amounts: Vec<Amounts> = cents
            .iter()
            .map(|c| {
                let legacy = Decimal::new(*c, 2);
                let modern = (legacy * k).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
                Amounts { legacy, modern: modern.max(Decimal::new(1, 2)).round_dp(2) }
            })
            .collect();
        let g = gcd(p, q);
        let shape = shape::common_shape(&amounts);
        let offset = matches!(shape, Shape::Offset { .. });
        prop_assert!(offset || shape == Shape::Ratio { numerator: p / g, denominator: q / g }, "{shape:?}");
    }

    /// A constant offset is found as it is.
    #[test]
    fn an_exact_offset_is_found(
        delta in -100_000i64..100_000,
        cents in proptest::collection::vec(-10_000_000i64..10_000_000, 2..8),
    ) {
        prop_assume!(delta != 0);
        let mut cents = cents;
        cents.dedup();
        let amounts: Vec<Amounts> = cents
            .iter()
            .map(|c| Amounts { legacy: Decimal::new(*c, 2), modern: Decimal::new(c + delta, 2) })
            .collect();
        prop_assert_eq!(shape::common_shape(&amounts), Shape::Offset { delta: Decimal::new(delta, 2) });
    }
}

proptest! {
    /// A constant most of a group's lines share survives a few one-off lines of the same
    /// charge code, padded or not, in any order.
    #[test]
    fn a_constant_survives_one_off_lines(
        cents in proptest::collection::vec(10_000i64..10_000_000, 6..20),
        outliers in proptest::collection::vec((10_000i64..10_000_000, 1i64..5_000), 1..3),
        pad in any::<bool>(),
    ) {
        let k = Decimal::new(105, 2);
        let mut all: Vec<Amounts> = cents
            .iter()
            .map(|c| {
                let legacy = Decimal::new(*c, 2);
                let mut modern = (legacy * k)
                    .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
                if pad {
                    modern.rescale(3);
                }
                Amounts { legacy, modern }
            })
            .collect();
        all.extend(outliers.iter().map(|(c, delta)| Amounts {
            legacy: Decimal::new(*c, 2),
            modern: Decimal::new(c + delta, 2),
        }));
        let rule = Shape::Ratio { numerator: 21, denominator: 20 };
        let holding = |parts: &[(Shape, Vec<usize>)], amounts: &[Amounts]| -> Vec<(Decimal, Decimal)> {
            let mut held: Vec<(Decimal, Decimal)> = parts
                .iter()
                .filter(|(shape, _)| *shape == rule)
                .flat_map(|(_, members)| members.iter().map(|&i| (amounts[i].legacy, amounts[i].modern)))
                .collect();
            held.sort();
            held
        };
        let parts = shape::judge(&all);
        let held = holding(&parts, &all);
        for a in &all[..cents.len()] {
            prop_assert!(held.contains(&(a.legacy, a.modern)), "{a:?} not in the ratio: {parts:?}");
        }
        let mut reversed = all.clone();
        reversed.reverse();
        prop_assert_eq!(holding(&shape::judge(&reversed), &reversed), held);
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A period end written a day later by modern: in each account a line missing on each side,
/// the same in every other field, is one `key_mismatch` signature, not two piles of missing
/// lines.
#[test]
fn near_misses_are_one_key_mismatch() {
    let half = |account: &str, end: &str, legacy_side: bool| {
        let mut d = diff(Line {
            legacy: legacy_side.then_some("5.00"),
            modern: (!legacy_side).then_some("5.00"),
            ..line(account, ("p", "r"), "egress.gb")
        });
        let evidence = if legacy_side {
            &mut d.legacy
        } else {
            &mut d.modern
        };
        let fields = &mut evidence.as_mut().unwrap().fields;
        fields.insert("period_end", end);
        d
    };
    let diffs = vec![
        half("a", "2026-10-31", true),
        half("a", "2026-11-01", false),
        half("b", "2026-10-31", true),
        half("b", "2026-11-01", false),
        // Unpaired: stays a missing line.
        half("c", "2026-10-31", true),
    ];
    let causes = Causes::of(&diffs);
    let shapes: Vec<(String, u64)> = causes
        .signatures
        .iter()
        .map(|s| (s.shape.key(), s.diffs))
        .collect();
    assert_eq!(
        shapes,
        [
            ("key_mismatch:period_end:+1 days".to_owned(), 4),
            ("missing:modern".to_owned(), 1)
        ]
    );
    assert_eq!(
        causes.signatures[0].hypothesis,
        "modern writes period_end +1 days from legacy's on lines that are otherwise the same \
         (an inclusive against an exclusive date?) in cell p/r"
    );
    assert_eq!(causes.signatures[0].money["USD"].net, Decimal::ZERO);
}

#[test]
fn signatures_rank_by_their_share_of_each_currencys_money_then_accounts() {
    // Many accounts missing a cheap USD line; one account missing a costly USD line; one
    // account missing a JPY line that is all of the JPY money.
    let mut diffs: Vec<Diff> = ["a1", "a2", "a3", "a4"]
        .iter()
        .map(|a| {
            diff(Line {
                legacy: Some("0.10"),
                ..line(a, ("p", "r"), "cheap")
            })
        })
        .collect();
    diffs.push(diff(Line {
        legacy: Some("99.60"),
        ..line("b1", ("p", "r"), "costly")
    }));
    diffs.push(diff(Line {
        currency: "JPY",
        legacy: Some("5"),
        ..line("c1", ("p", "r"), "yen")
    }));
    let causes = Causes::of(&diffs);
    let codes: Vec<&str> = causes
        .signatures
        .iter()
        .map(|s| s.charge_code.as_deref().unwrap())
        .collect();
    // Shares: yen 1 (all of JPY), costly 0.996 of USD, cheap 0.004 of USD despite 4 accounts.
    assert_eq!(codes, ["yen", "costly", "cheap"]);
    let mut reversed = diffs.clone();
    reversed.reverse();
    assert_eq!(Causes::of(&reversed).signatures, causes.signatures);
}
