//! Property tests of the diff engine against a naive reference model.

use std::collections::BTreeMap;

use billshadow_comparisons::model::NewLine;
use billshadow_comparisons::{
    CompareConfig, Comparison, Currency, DiffClass, Field, LineStore, LineType, compare,
    compare_with_threads,
};
use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;

/// A generated line: (account, charge code, currency, amount in ten-thousandths).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gen {
    account: u8,
    charge: u8,
    currency: &'static str,
    amount_e4: i64,
    quantity: Option<u16>,
    /// 0: no customer id.
    customer: u8,
    /// Fields some match keys include and others leave out (0 for the plain generator):
    /// the region (0: none), the line type (0: usage, 1: recurring) and the unit price
    /// (0: none).
    region: u8,
    line_type: u8,
    unit_price: u8,
}

fn gen_line() -> impl Strategy<Value = Gen> {
    gen_line_with(-2_000_000i64..2_000_000, 0u8..1)
}

/// Lines whose amounts often tie (a few values), on few keys, with customers: the cases
/// where pairing has choices to make.
fn gen_tie_prone_line() -> impl Strategy<Value = Gen> {
    let amount = prop_oneof![
        3 => prop::sample::select(vec![-10_000i64, 0, 10_000, 25_000, 100_000]),
        1 => -200_000i64..200_000,
    ];
    (gen_line_with(amount, 0u8..3), 0u8..3, 0u8..2, 0u8..3).prop_map(
        |(mut g, region, line_type, unit_price)| {
            g.charge %= 2;
            g.quantity = g.quantity.map(|q| q % 3);
            (g.region, g.line_type, g.unit_price) = (region, line_type, unit_price);
            g
        },
    )
}

fn gen_line_with(
    amount: impl Strategy<Value = i64>,
    customer: impl Strategy<Value = u8>,
) -> impl Strategy<Value = Gen> {
    (
        0u8..4,
        0u8..6,
        prop::sample::select(vec!["USD", "JPY", "BHD"]),
        amount,
        prop::option::of(0u16..50),
        customer,
    )
        .prop_map(
            |(account, charge, currency, amount_e4, quantity, customer)| Gen {
                account,
                charge,
                currency,
                amount_e4,
                quantity,
                customer,
                region: 0,
                line_type: 0,
                unit_price: 0,
            },
        )
}

/// Each account bills in one currency and to one customer (those of its first generated
/// line) on each side.
fn normalise(mut lines: Vec<Gen>) -> Vec<Gen> {
    let mut first_of: BTreeMap<u8, (&'static str, u8)> = BTreeMap::new();
    for line in &mut lines {
        (line.currency, line.customer) = *first_of
            .entry(line.account)
            .or_insert((line.currency, line.customer));
    }
    lines
}

/// How an amount is written: plain, with trailing zeros, with leading zeros, scientific.
fn spell(amount_e4: i64, style: u8) -> String {
    let d = Decimal::new(amount_e4, 4);
    match style % 4 {
        0 => d.to_string(),
        1 => format!("{}00", d),
        2 => format!("{}E-4", amount_e4),
        _ => {
            let plain = d.normalize().to_string();
            match plain.strip_prefix('-') {
                Some(rest) => format!("-000{rest}"),
                None => format!("000{plain}"),
            }
        }
    }
}

fn store(lines: &[Gen], style: u8) -> LineStore {
    let mut store = LineStore::new();
    for (i, g) in lines.iter().enumerate() {
        let account = format!("acct-{}", g.account);
        let charge = format!("sku-{}", g.charge);
        let customer = match g.customer {
            0 => String::new(),
            c => format!("cust-{}", c + g.account % 2),
        };
        // Spelled by position, or (style 4) by content, so that a shuffle keeps every text.
        let at = if style == 4 {
            (g.amount_e4.unsigned_abs() % 4) as u8
        } else {
            style.wrapping_add(i as u8)
        };
        let amount_text = spell(g.amount_e4, at);
        let quantity = g
            .quantity
            .map(|q| spell(i64::from(q) * 10_000, at.wrapping_add(1)))
            .unwrap_or_default();
        let region = match g.region {
            0 => String::new(),
            r => format!("region-{r}"),
        };
        let unit_price = match g.unit_price {
            0 => String::new(),
            p => spell(i64::from(p) * 2_500, at.wrapping_add(2)),
        };
        let mut text = [""; Field::COUNT];
        text[Field::AccountId as usize] = &account;
        text[Field::Region as usize] = &region;
        text[Field::UnitPrice as usize] = &unit_price;
        text[Field::PeriodStart as usize] = "2026-10-01";
        text[Field::PeriodEnd as usize] = "2026-10-31";
        text[Field::ChargeCode as usize] = &charge;
        text[Field::Amount as usize] = &amount_text;
        text[Field::Quantity as usize] = &quantity;
        text[Field::CustomerId as usize] = &customer;
        store
            .push(NewLine {
                text,
                amount: billshadow_comparisons::parse_amount(&amount_text).unwrap(),
                line_type: if g.line_type == 0 {
                    LineType::Usage
                } else {
                    LineType::Recurring
                },
                currency: g.currency.parse::<Currency>().unwrap(),
                source_line: i as u32 + 2,
            })
            .unwrap();
    }
    store
}

fn config() -> CompareConfig {
    CompareConfig::new(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap())
}

/// A diff without where it came from, for comparing results of shuffled inputs.
fn shape(c: &Comparison) -> Vec<String> {
    let mut out: Vec<String> = c
        .diffs
        .iter()
        .map(|d| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                d.account_id,
                d.customer_id,
                d.class,
                d.charge_code,
                d.delta.map(|x| x.normalize()),
                d.legacy
                    .as_ref()
                    .and_then(|e| e.fields.get("amount"))
                    .map(|a| a.parse::<Decimal>().unwrap().normalize()),
                d.modern
                    .as_ref()
                    .and_then(|e| e.fields.get("amount"))
                    .map(|a| a.parse::<Decimal>().unwrap().normalize()),
            )
        })
        .collect();
    out.sort();
    out
}

fn minor(currency: &str) -> Decimal {
    currency.parse::<Currency>().unwrap().minor_unit()
}

/// The reference model for lines with unique keys: a plain map join.
fn reference(legacy: &[Gen], modern: &[Gen]) -> BTreeMap<(u8, u8), (DiffClass, Option<Decimal>)> {
    let by_key = |lines: &[Gen]| -> BTreeMap<(u8, u8), Gen> {
        lines
            .iter()
            .map(|g| ((g.account, g.charge), g.clone()))
            .collect()
    };
    let (l, m) = (by_key(legacy), by_key(modern));
    let mut out = BTreeMap::new();
    for key in l.keys().chain(m.keys()) {
        let class = match (l.get(key), m.get(key)) {
            (Some(a), None) => (
                DiffClass::MissingInModern,
                Some(-Decimal::new(a.amount_e4, 4)),
            ),
            (None, Some(b)) => (
                DiffClass::MissingInLegacy,
                Some(Decimal::new(b.amount_e4, 4)),
            ),
            (Some(a), Some(b)) => {
                let delta = Decimal::new(b.amount_e4 - a.amount_e4, 4);
                if a.currency != b.currency {
                    (DiffClass::CurrencyMismatch, None)
                } else if delta.abs() >= minor(a.currency) {
                    (DiffClass::AmountMismatch, Some(delta))
                } else if a.quantity != b.quantity {
                    (DiffClass::QuantityMismatch, Some(delta))
                } else if !delta.is_zero() {
                    (DiffClass::SubMinorUnit, Some(delta))
                } else {
                    continue;
                }
            }
            (None, None) => continue,
        };
        out.insert(*key, class);
    }
    out
}

fn unique(lines: Vec<Gen>) -> Vec<Gen> {
    let mut seen = std::collections::BTreeSet::new();
    lines
        .into_iter()
        .filter(|g| seen.insert((g.account, g.charge)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_bill_against_itself_is_empty(lines in prop::collection::vec(gen_line(), 0..60), style in 0u8..4) {
        let lines = normalise(lines);
        let a = store(&lines, style);
        let result = compare(&a, &a, &config());
        prop_assert!(result.diffs.is_empty());
        prop_assert_eq!(result.summary.lines_matched, lines.len() as u64);
    }

    #[test]
    fn reformatting_decimals_changes_nothing(lines in prop::collection::vec(gen_line(), 0..60), s1 in 0u8..4, s2 in 0u8..4) {
        let lines = normalise(lines);
        let result = compare(&store(&lines, s1), &store(&lines, s2), &config());
        prop_assert!(result.diffs.is_empty(), "{:?}", result.diffs.first());
    }

    #[test]
    fn shuffling_lines_changes_nothing(
        legacy in prop::collection::vec(gen_line(), 0..40),
        modern in prop::collection::vec(gen_line(), 0..40),
        seed in any::<u64>(),
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        let base = compare(&store(&legacy, 0), &store(&modern, 0), &config());
        let mut rng = fastrand_like(seed);
        let (mut l2, mut m2) = (legacy.clone(), modern.clone());
        shuffle(&mut l2, &mut rng);
        shuffle(&mut m2, &mut rng);
        let shuffled = compare(&store(&l2, 0), &store(&m2, 0), &config());
        prop_assert_eq!(shape(&base), shape(&shuffled));
        prop_assert_eq!(base.summary.by_class, shuffled.summary.by_class);
        prop_assert_eq!(base.summary.currencies, shuffled.summary.currencies);
        let threaded = compare_with_threads(&store(&legacy, 0), &store(&modern, 0), &config(), 3);
        prop_assert_eq!(&base.diffs, &threaded.diffs);
    }

    #[test]
    fn swapping_sides_swaps_missing_and_flips_every_delta(
        legacy in prop::collection::vec(gen_line(), 0..40),
        modern in prop::collection::vec(gen_line(), 0..40),
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        let forward = compare(&store(&legacy, 0), &store(&modern, 0), &config());
        let backward = compare(&store(&modern, 0), &store(&legacy, 0), &config());
        let flip = |c: DiffClass| match c {
            DiffClass::MissingInModern => DiffClass::MissingInLegacy,
            DiffClass::MissingInLegacy => DiffClass::MissingInModern,
            other => other,
        };
        let key = |d: &billshadow_comparisons::Diff, flipped: bool| {
            let class = if flipped { flip(d.class) } else { d.class };
            // Zero has one sign: -0 and 0 are the same delta.
            let delta = d.delta.map(|x| match (x.is_zero(), flipped) {
                (true, _) => rust_decimal::Decimal::ZERO,
                (false, true) => -x.normalize(),
                (false, false) => x.normalize(),
            });
            format!("{:?} {:?} {:?} {:?} {:?}", d.account_id, d.customer_id, d.charge_code, class, delta)
        };
        let mut f: Vec<String> = forward.diffs.iter().map(|d| key(d, false)).collect();
        let mut b: Vec<String> = backward.diffs.iter().map(|d| key(d, true)).collect();
        f.sort();
        b.sort();
        prop_assert_eq!(f, b);
        prop_assert_eq!(forward.summary.lines_matched, backward.summary.lines_matched);
    }

    #[test]
    fn unique_keys_agree_with_the_reference_model(
        legacy in prop::collection::vec(gen_line(), 0..40),
        modern in prop::collection::vec(gen_line(), 0..40),
    ) {
        let (legacy, modern) = (unique(normalise(legacy)), unique(normalise(modern)));
        let result = compare(&store(&legacy, 0), &store(&modern, 0), &config());
        let mut got = BTreeMap::new();
        for d in result.diffs.iter().filter(|d| d.class != DiffClass::TotalMismatch) {
            let account: u8 = d.account_id.as_ref().unwrap()["acct-".len()..].parse().unwrap();
            let charge: u8 = d.charge_code.as_ref().unwrap()["sku-".len()..].parse().unwrap();
            got.insert((account, charge), (d.class, d.delta.map(|x| x.normalize())));
        }
        let expected: BTreeMap<_, _> = reference(&legacy, &modern).into_iter().map(|(k, (c, d))| (k, (c, d.map(|x| x.normalize())))).collect();
        prop_assert_eq!(got, expected);

        // Bill totals: plain sums per account and currency.
        let mut totals: BTreeMap<(u8, &str), (Decimal, Decimal)> = BTreeMap::new();
        for g in &legacy { totals.entry((g.account, g.currency)).or_default().0 += Decimal::new(g.amount_e4, 4); }
        for g in &modern { totals.entry((g.account, g.currency)).or_default().1 += Decimal::new(g.amount_e4, 4); }
        let expected_totals: usize = totals.iter().filter(|((_, c), (l, m))| (*m - *l).abs() >= minor(c)).count();
        let reported_totals = result.diffs.iter().filter(|d| d.class == DiffClass::TotalMismatch).count();
        prop_assert_eq!(reported_totals, expected_totals);
        for (currency, t) in &result.summary.currencies {
            let l: Decimal = legacy.iter().filter(|g| g.currency == currency.code()).map(|g| Decimal::new(g.amount_e4, 4)).sum();
            let m: Decimal = modern.iter().filter(|g| g.currency == currency.code()).map(|g| Decimal::new(g.amount_e4, 4)).sum();
            prop_assert_eq!(t.legacy_total, currency.present(l));
            prop_assert_eq!(t.modern_total, currency.present(m));
        }
    }

    #[test]
    fn duplicate_keys_are_paired_with_the_smallest_total_difference(
        legacy in prop::collection::vec(-500i64..500, 1..5),
        modern in prop::collection::vec(-500i64..500, 1..5),
    ) {
        let lines = |amounts: &[i64]| -> Vec<Gen> {
            amounts.iter().map(|a| Gen { account: 0, charge: 0, currency: "USD", amount_e4: a * 100, quantity: None, customer: 0, region: 0, line_type: 0, unit_price: 0 }).collect()
        };
        let result = compare(&store(&lines(&legacy), 0), &store(&lines(&modern), 0), &config());
        let paired_cost: Decimal = result
            .diffs
            .iter()
            .filter(|d| d.scope == billshadow_comparisons::Scope::Line && d.legacy.is_some() && d.modern.is_some())
            .map(|d| d.delta.unwrap().abs())
            .sum();
        prop_assert_eq!(result.summary.lines_matched as usize, legacy.len().min(modern.len()));
        // Brute force: the cheapest assignment of the shorter side into the longer.
        let best = brute_force(&legacy, &modern);
        prop_assert_eq!(paired_cost, Decimal::new(best, 2));
    }
}

/// Match keys the formats of the catalog default to, and coarser ones.
const KEYS: [&[&str]; 4] = [
    &[
        "account_id",
        "period",
        "charge_code",
        "line_type",
        "usage_period",
        "region",
    ],
    &["account_id", "period", "charge_code", "line_type"],
    &["account_id", "period"],
    &["account_id", "period", "charge_code", "currency"],
];

/// Every diff in full but for its line numbers, which a shuffle changes by definition.
fn full(c: &Comparison) -> Vec<String> {
    let mut out: Vec<String> = c
        .diffs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            (d.legacy_line, d.modern_line) = (None, None);
            format!("{d:?}")
        })
        .collect();
    out.sort();
    out
}

/// A diff as the other direction of the comparison reports it: missing classes flipped,
/// sides and line numbers swapped, delta negated. Free text (`detail`) is left out.
fn flipped(d: &billshadow_comparisons::Diff) -> String {
    let mut d = d.clone();
    d.class = match d.class {
        DiffClass::MissingInModern => DiffClass::MissingInLegacy,
        DiffClass::MissingInLegacy => DiffClass::MissingInModern,
        other => other,
    };
    std::mem::swap(&mut d.legacy, &mut d.modern);
    std::mem::swap(&mut d.legacy_line, &mut d.modern_line);
    d.delta = d.delta.map(|x| if x.is_zero() { x } else { -x });
    d.detail = None;
    format!("{d:?}")
}

fn as_is(d: &billshadow_comparisons::Diff) -> String {
    let mut d = d.clone();
    d.detail = None;
    format!("{d:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_lines_changes_no_diff_even_on_ties(
        legacy in prop::collection::vec(gen_tie_prone_line(), 0..30),
        modern in prop::collection::vec(gen_tie_prone_line(), 0..30),
        seed in any::<u64>(),
        key in 0usize..KEYS.len(),
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        let mut config = config();
        config.key = billshadow_comparisons::config::parse_key_names(KEYS[key].iter().copied()).unwrap();
        let base = compare(&store(&legacy, 4), &store(&modern, 4), &config);
        let mut rng = fastrand_like(seed);
        let (mut l2, mut m2) = (legacy.clone(), modern.clone());
        shuffle(&mut l2, &mut rng);
        shuffle(&mut m2, &mut rng);
        let shuffled = compare(&store(&l2, 4), &store(&m2, 4), &config);
        prop_assert_eq!(full(&base), full(&shuffled));
        prop_assert_eq!(&base.summary, &shuffled.summary);
    }

    #[test]
    fn swapping_sides_never_changes_the_verdict(
        legacy in prop::collection::vec(gen_tie_prone_line(), 0..30),
        modern in prop::collection::vec(gen_tie_prone_line(), 0..30),
        key in 0usize..KEYS.len(),
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        // Whatever key the formats agreed on (or the spec named), one key for both sides.
        let mut config = config();
        config.key = billshadow_comparisons::config::parse_key_names(KEYS[key].iter().copied()).unwrap();
        let forward = compare(&store(&legacy, 0), &store(&modern, 0), &config);
        let backward = compare(&store(&modern, 0), &store(&legacy, 0), &config);
        prop_assert_eq!(forward.summary.verdict, backward.summary.verdict);
        prop_assert_eq!(forward.at_parity(), backward.at_parity());
        prop_assert_eq!(forward.summary.accounts_mismatched, backward.summary.accounts_mismatched);
        prop_assert_eq!(forward.summary.diffs_failing, backward.summary.diffs_failing);
        prop_assert_eq!(forward.summary.customers_compared, backward.summary.customers_compared);
        let mut f: Vec<String> = forward.diffs.iter().map(as_is).collect();
        let mut b: Vec<String> = backward.diffs.iter().map(flipped).collect();
        f.sort();
        b.sort();
        prop_assert_eq!(f, b);
        for (currency, t) in &forward.summary.currencies {
            let other = &backward.summary.currencies[currency];
            prop_assert_eq!(t.legacy_total, other.modern_total);
            prop_assert_eq!(t.modern_total, other.legacy_total);
            prop_assert_eq!(t.delta_abs, other.delta_abs);
        }
    }
}

fn brute_force(a: &[i64], b: &[i64]) -> i64 {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    fn go(long: &[i64], short: &[i64], used: &mut Vec<bool>, i: usize) -> i64 {
        if i == short.len() {
            return 0;
        }
        let mut best = i64::MAX;
        for j in 0..long.len() {
            if !used[j] {
                used[j] = true;
                best = best.min((long[j] - short[i]).abs() + go(long, short, used, i + 1));
                used[j] = false;
            }
        }
        best
    }
    go(long, short, &mut vec![false; long.len()], 0)
}

/// A tiny deterministic generator, so the shuffle depends only on the proptest input.
fn fastrand_like(seed: u64) -> u64 {
    seed | 1
}

fn shuffle<T>(items: &mut [T], state: &mut u64) {
    for i in (1..items.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let j = (*state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The customer diffs of `compare` over everything, and those of the same lines compared
/// account by account (`compare_deferring_customers`), the customers' parts added up and
/// judged by `customer_total_diff` (how a shadow run compares customers across workers).
fn customers_at_once_and_by_account(legacy: &[Gen], modern: &[Gen]) -> (Vec<String>, Vec<String>) {
    use billshadow_comparisons::{
        CustomerTotals, Scope, compare_deferring_customers, customer_total_diff,
    };
    let show = |d: &billshadow_comparisons::Diff| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            d.customer_id,
            d.currency,
            d.delta,
            d.waiver,
            d.detail,
            d.is_failing()
        )
    };
    let config = config();
    let whole = compare(&store(legacy, 0), &store(modern, 0), &config);
    let at_once: Vec<String> = whole
        .diffs
        .iter()
        .filter(|d| d.scope == Scope::Customer)
        .map(show)
        .collect();
    let accounts: std::collections::BTreeSet<u8> =
        legacy.iter().chain(modern).map(|g| g.account).collect();
    let mut parts: BTreeMap<(String, Currency), CustomerTotals> = BTreeMap::new();
    for account in accounts {
        let only = |lines: &[Gen]| -> Vec<Gen> {
            lines
                .iter()
                .filter(|g| g.account == account)
                .cloned()
                .collect()
        };
        let (c, customers) = compare_deferring_customers(
            &store(&only(legacy), 0),
            &store(&only(modern), 0),
            &config,
        );
        assert_eq!(c.summary.customers_compared, 0);
        assert!(c.diffs.iter().all(|d| d.scope != Scope::Customer));
        for (key, totals) in customers {
            parts.entry(key).or_default().add(&totals);
        }
    }
    let customers: std::collections::BTreeSet<&str> =
        parts.keys().map(|(c, _)| c.as_str()).collect();
    assert_eq!(customers.len() as u64, whole.summary.customers_compared);
    let by_account = parts
        .iter()
        .filter_map(|((customer, currency), totals)| {
            customer_total_diff(customer, *currency, totals, &config)
        })
        .map(|d| show(&d))
        .collect();
    (at_once, by_account)
}

#[test]
fn a_customers_drift_across_accounts_is_found_account_by_account_too() {
    // Two accounts of one customer, each a bill 0.006 apart: within tolerance each, 0.012
    // together.
    let line = |account: u8, amount_e4: i64| Gen {
        account,
        charge: 0,
        currency: "USD",
        amount_e4,
        quantity: None,
        customer: 1,
        region: 0,
        line_type: 0,
        unit_price: 0,
    };
    let legacy = [line(0, 10_000), line(2, 10_000)];
    let modern = [line(0, 10_060), line(2, 10_060)];
    let (at_once, by_account) = customers_at_once_and_by_account(&legacy, &modern);
    assert_eq!(at_once.len(), 1, "{at_once:?}");
    assert_eq!(at_once, by_account);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn customers_compared_account_by_account_agree_with_compare(
        legacy in prop::collection::vec(gen_tie_prone_line(), 0..40),
        modern in prop::collection::vec(gen_tie_prone_line(), 0..40),
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        let (at_once, by_account) = customers_at_once_and_by_account(&legacy, &modern);
        prop_assert_eq!(at_once, by_account);
    }
}

/// The lines compared partition by partition (`PartitionedComparison`, accounts split by
/// `account % partitions`), the customers' totals taken out after each partition and handed
/// back in `groups` groups by customer: the whole comparison, summary and every diff in
/// order, is `compare`'s of all the lines at once.
fn partitioned_as_a_whole(legacy: &[Gen], modern: &[Gen], partitions: u8, groups: u8) {
    use billshadow_comparisons::{CustomerPart, PartitionedComparison};
    let config = config();
    // Spelled by content (style 4): a line reads the same in its partition as in the whole.
    let whole = compare(&store(legacy, 4), &store(modern, 4), &config);
    let mut parted = PartitionedComparison::new(&config);
    let mut held: Vec<Vec<CustomerPart>> = vec![Vec::new(); usize::from(groups)];
    for p in 0..partitions {
        let only = |lines: &[Gen]| -> Vec<Gen> {
            lines
                .iter()
                .filter(|g| g.account % partitions == p)
                .cloned()
                .collect()
        };
        parted.add(&store(&only(legacy), 4), &store(&only(modern), 4), 1);
        for part in parted.take_customers() {
            let hash = part.0.0.bytes().map(u64::from).sum::<u64>();
            held[(hash % u64::from(groups)) as usize].push(part);
        }
    }
    let groups = held.into_iter().map(Ok::<_, std::convert::Infallible>);
    let Ok(parted) = parted.finish_with_customers(groups);
    assert_eq!(full(&parted), full(&whole));
    // In the same order too: accounts in name order, then customers.
    let in_order = |c: &Comparison| -> Vec<String> {
        c.diffs
            .iter()
            .map(|d| format!("{:?} {:?} {:?}", d.account_id, d.customer_id, d.class))
            .collect()
    };
    assert_eq!(in_order(&parted), in_order(&whole));
    assert_eq!(
        parted.summary.customers_compared,
        whole.summary.customers_compared
    );
    assert_eq!(
        parted.summary.customers_mismatched,
        whole.summary.customers_mismatched
    );
    assert_eq!(parted.summary.diffs_failing, whole.summary.diffs_failing);
    assert_eq!(parted.summary.by_class, whole.summary.by_class);
}

#[test]
fn customers_judged_in_groups_come_out_in_customer_order() {
    // Four customers, each with two accounts a bill 0.006 apart: within tolerance each, 0.012
    // together, so each customer is a diff only once its accounts are added up.
    let line = |account: u8, customer: u8, amount_e4: i64| Gen {
        account,
        charge: 0,
        currency: "USD",
        amount_e4,
        quantity: None,
        customer,
        region: 0,
        line_type: 0,
        unit_price: 0,
    };
    let (mut legacy, mut modern) = (Vec::new(), Vec::new());
    for customer in 1..=4u8 {
        // Even accounts: the customer id is `cust-{customer}`.
        for account in [2 * customer, 2 * customer + 20] {
            legacy.push(line(account, customer, 10_000));
            modern.push(line(account, customer, 10_060));
        }
    }
    let config = config();
    let whole = compare(&store(&legacy, 4), &store(&modern, 4), &config);
    assert_eq!(whole.summary.customers_mismatched, 4);
    // Two groups by the ids' byte sums: cust-2 and cust-4 in one, cust-1 and cust-3 in the
    // other; three partitions by account.
    partitioned_as_a_whole(&legacy, &modern, 3, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn partitions_and_customer_groups_split_any_way_give_the_whole_comparison(
        legacy in prop::collection::vec(gen_tie_prone_line(), 0..40),
        modern in prop::collection::vec(gen_tie_prone_line(), 0..40),
        partitions in 1u8..5,
        groups in 1u8..4,
    ) {
        let (legacy, modern) = (normalise(legacy), normalise(modern));
        partitioned_as_a_whole(&legacy, &modern, partitions, groups);
    }
}
