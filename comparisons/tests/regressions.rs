//! Regression tests of the diff engine, each named after what broke.

use billshadow_comparisons::model::NewLine;
use billshadow_comparisons::{
    CompareConfig, Comparison, Currency, DiffClass, Field, LineStore, LineType, Scope, compare,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// A line as the tests write it: (account, customer, charge code, amount, currency, quantity,
/// unit price).
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

fn store(rows: &[Row<'_>]) -> LineStore {
    let rows: Vec<_> = rows.iter().map(|r| (*r, "", LineType::Usage)).collect();
    store_in_regions(&rows)
}

/// Lines with a region and a line type each.
fn store_in_regions(rows: &[(Row<'_>, &str, LineType)]) -> LineStore {
    let mut store = LineStore::new();
    for (
        i,
        &((account, customer, charge, amount, currency, quantity, unit_price), region, line_type),
    ) in rows.iter().enumerate()
    {
        let mut text = [""; Field::COUNT];
        text[Field::AccountId as usize] = account;
        text[Field::CustomerId as usize] = customer;
        text[Field::PeriodStart as usize] = "2026-10-01";
        text[Field::PeriodEnd as usize] = "2026-10-31";
        text[Field::ChargeCode as usize] = charge;
        text[Field::Amount as usize] = amount;
        text[Field::Quantity as usize] = quantity;
        text[Field::UnitPrice as usize] = unit_price;
        text[Field::Region as usize] = region;
        store
            .push(NewLine {
                text,
                amount: billshadow_comparisons::parse_amount(amount).unwrap(),
                line_type,
                currency: currency.parse::<Currency>().unwrap(),
                source_line: i as u32 + 2,
            })
            .unwrap();
    }
    store
}

fn config() -> CompareConfig {
    CompareConfig::new(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap())
}

fn classes(c: &Comparison) -> Vec<(DiffClass, u64)> {
    c.summary.by_class.iter().map(|(k, v)| (*k, *v)).collect()
}

/// Both orders of the modern lines, and both sides swapped: always `expected`.
fn check_every_order(legacy: &[Row<'_>], modern: &[Row<'_>], expected: &[(DiffClass, u64)]) {
    let mut reversed = modern.to_vec();
    reversed.reverse();
    for m in [modern.to_vec(), reversed] {
        let forward = compare(&store(legacy), &store(&m), &config());
        assert_eq!(classes(&forward), expected, "{:#?}", forward.diffs);
        let backward = compare(&store(&m), &store(legacy), &config());
        assert_eq!(
            classes(&backward),
            expected,
            "swapped: {:#?}",
            backward.diffs
        );
    }
}

#[test]
fn pairing_ties_on_amount_look_at_quantity() {
    let legacy = [
        ("a", "", "sku", "10.00", "USD", "1", "10.00"),
        ("a", "", "sku", "10.00", "USD", "2", "5.00"),
    ];
    let modern = [
        ("a", "", "sku", "10.00", "USD", "2", "5.00"),
        ("a", "", "sku", "10.00", "USD", "1", "10.00"),
    ];
    check_every_order(&legacy, &modern, &[]);
}

#[test]
fn pairing_ties_on_amount_look_at_currency() {
    let legacy = [
        ("a", "", "sku", "10.00", "USD", "", ""),
        ("a", "", "sku", "10.00", "EUR", "", ""),
    ];
    let modern = [
        ("a", "", "sku", "10.00", "EUR", "", ""),
        ("a", "", "sku", "10.00", "USD", "", ""),
    ];
    check_every_order(&legacy, &modern, &[]);
}

#[test]
fn pairing_ties_on_amount_look_at_unit_price() {
    let legacy = [
        ("a", "", "sku", "10.00", "USD", "4", "2.50"),
        ("a", "", "sku", "10.00", "USD", "4", "2.5000001"),
    ];
    let modern = [
        ("a", "", "sku", "10.00", "USD", "4", "2.5000001"),
        ("a", "", "sku", "10.00", "USD", "4", "2.5"),
    ];
    check_every_order(&legacy, &modern, &[]);
}

#[test]
fn pairing_ties_with_a_real_difference_left_give_one_diff_in_any_order() {
    // One quantity really changed: exactly one quantity_mismatch, whatever the order.
    let legacy = [
        ("a", "", "sku", "10.00", "USD", "1", ""),
        ("a", "", "sku", "10.00", "USD", "2", ""),
        ("a", "", "sku", "10.00", "USD", "3", ""),
    ];
    let modern = [
        ("a", "", "sku", "10.00", "USD", "3", ""),
        ("a", "", "sku", "10.00", "USD", "7", ""),
        ("a", "", "sku", "10.00", "USD", "1", ""),
    ];
    check_every_order(&legacy, &modern, &[(DiffClass::QuantityMismatch, 1)]);
}

#[test]
fn large_duplicate_key_groups_are_still_paired_exactly() {
    let legacy_amounts: Vec<String> = (1..=1100).map(|k| format!("{k}.000")).collect();
    let modern_amounts: Vec<String> = (101..=1100).map(|k| format!("{k}.001")).collect();
    fn rows(amounts: &[String]) -> Vec<Row<'_>> {
        amounts
            .iter()
            .map(|a| ("a", "", "sku", a.as_str(), "USD", "", ""))
            .collect()
    }
    let (legacy, modern) = (rows(&legacy_amounts), rows(&modern_amounts));
    let forward = compare(&store(&legacy), &store(&modern), &config());
    let by_class = classes(&forward);
    assert!(
        by_class.contains(&(DiffClass::SubMinorUnit, 1000)),
        "{by_class:?}"
    );
    assert!(
        by_class.contains(&(DiffClass::MissingInModern, 100)),
        "{by_class:?}"
    );
    assert!(
        !by_class
            .iter()
            .any(|(c, _)| *c == DiffClass::AmountMismatch),
        "{by_class:?}"
    );
    let missing: Vec<&str> = forward
        .diffs
        .iter()
        .filter(|d| d.class == DiffClass::MissingInModern)
        .map(|d| &d.legacy.as_ref().unwrap().fields["amount"])
        .collect();
    assert_eq!(missing.len(), 100);
    assert!(
        missing
            .iter()
            .all(|a| a.parse::<Decimal>().unwrap() <= Decimal::from(100))
    );
    let backward = compare(&store(&modern), &store(&legacy), &config());
    assert!(classes(&backward).contains(&(DiffClass::MissingInLegacy, 100)));
    assert_eq!(forward.summary.verdict, backward.summary.verdict);
}

#[test]
fn an_account_moved_to_another_customer_is_not_parity() {
    let legacy = [("a", "C1", "sku", "10.00", "USD", "", "")];
    let modern = [("a", "C2", "sku", "10.00", "USD", "", "")];
    for (l, m) in [(&legacy, &modern), (&modern, &legacy)] {
        let result = compare(&store(l), &store(m), &config());
        assert!(!result.at_parity());
        let changed: Vec<_> = result
            .diffs
            .iter()
            .filter(|d| d.class == DiffClass::CustomerChanged)
            .collect();
        assert_eq!(changed.len(), 1, "{:#?}", result.diffs);
        assert_eq!(changed[0].scope, Scope::Account);
        // Each side totals by its own customers: C1 and C2 both drift by the bill.
        let customers: Vec<_> = result
            .diffs
            .iter()
            .filter(|d| d.scope == Scope::Customer)
            .map(|d| (d.customer_id.clone().unwrap(), d.delta.unwrap()))
            .collect();
        assert_eq!(customers.len(), 2, "{:#?}", result.diffs);
        assert_eq!(result.summary.customers_compared, 2);
    }
}

#[test]
fn a_customer_id_on_one_side_only_gives_the_same_verdict_swapped() {
    let legacy = [("a", "C1", "sku", "10.00", "USD", "", "")];
    let modern = [("a", "", "sku", "10.00", "USD", "", "")];
    let forward = compare(&store(&legacy), &store(&modern), &config());
    let backward = compare(&store(&modern), &store(&legacy), &config());
    assert_eq!(
        forward.summary.verdict,
        billshadow_comparisons::Verdict::Mismatch
    );
    assert_eq!(
        backward.summary.verdict,
        billshadow_comparisons::Verdict::Mismatch
    );
    assert_eq!(classes(&forward), classes(&backward));
    // Ignoring the customer (one export does not carry it) compares the rest only.
    let mut ignoring = config();
    ignoring.ignored.add("customer_id").unwrap();
    ignoring.customer_totals = false;
    assert!(compare(&store(&legacy), &store(&modern), &ignoring).at_parity());
}

#[test]
fn a_customer_total_diff_adds_up_to_its_own_evidence() {
    // Bill a is a total_mismatch of +0.01 on its own; bills b and c each drift −0.005, which
    // no bill shows. All bills: legacy 3.00, modern 3.00 — the customer diff must not show
    // those next to a delta of −0.01.
    let legacy = [
        ("a", "C", "sku", "1.00", "USD", "", ""),
        ("b", "C", "sku", "1.000", "USD", "", ""),
        ("c", "C", "sku", "1.000", "USD", "", ""),
    ];
    let modern = [
        ("a", "C", "sku", "1.01", "USD", "", ""),
        ("b", "C", "sku", "0.995", "USD", "", ""),
        ("c", "C", "sku", "0.995", "USD", "", ""),
    ];
    let result = compare(&store(&legacy), &store(&modern), &config());
    let customer: Vec<_> = result
        .diffs
        .iter()
        .filter(|d| d.scope == Scope::Customer)
        .collect();
    assert_eq!(customer.len(), 1, "{:#?}", result.diffs);
    let d = customer[0];
    let amount = |e: &Option<billshadow_comparisons::Evidence>| -> Decimal {
        e.as_ref().unwrap().fields["amount"].parse().unwrap()
    };
    assert_eq!(amount(&d.modern) - amount(&d.legacy), d.delta.unwrap());
    assert_eq!(d.delta.unwrap(), Decimal::new(-1, 2));
}

#[test]
fn pairing_ties_on_amount_look_at_the_charge_code_when_the_key_leaves_it_out() {
    // Paired by account and period only: of the lines B and C against B, B pairs with B and
    // only A against C is a change — one diff in any order and either way round, not two.
    let legacy = [
        ("a", "", "A", "10.00", "USD", "", ""),
        ("a", "", "B", "10.00", "USD", "", ""),
    ];
    let modern = [
        ("a", "", "B", "10.00", "USD", "", ""),
        ("a", "", "C", "10.00", "USD", "", ""),
    ];
    let mut config = config();
    config.key = billshadow_comparisons::config::parse_key_names(["account_id", "period"]).unwrap();
    for (l, m) in [(&legacy, &modern), (&modern, &legacy)] {
        let mut reversed = m.to_vec();
        reversed.reverse();
        for m in [m.to_vec(), reversed] {
            let result = compare(&store(l), &store(&m), &config);
            assert_eq!(result.diffs.len(), 1, "{:#?}", result.diffs);
            assert_eq!(result.diffs[0].fields, ["charge_code"]);
        }
    }
}

#[test]
fn pairing_ties_on_amount_look_at_the_line_type_when_the_key_leaves_it_out() {
    // Paired by account and period only, a usage line against a usage and a recurring line
    // of the same amount: the usage lines pair, whatever the order of the modern lines.
    let line = |line_type| (("a", "", "sku", "10.00", "USD", "", ""), "", line_type);
    let legacy = [line(LineType::Usage)];
    let modern = [line(LineType::Recurring), line(LineType::Usage)];
    let mut config = config();
    config.key = billshadow_comparisons::config::parse_key_names(["account_id", "period"]).unwrap();
    let mut reversed = modern.to_vec();
    reversed.reverse();
    for m in [modern.to_vec(), reversed] {
        let result = compare(&store_in_regions(&legacy), &store_in_regions(&m), &config);
        let missing: Vec<_> = result
            .diffs
            .iter()
            .filter(|d| d.class == DiffClass::MissingInLegacy)
            .collect();
        assert_eq!(missing.len(), 1, "{:#?}", result.diffs);
        assert_eq!(
            &missing[0].modern.as_ref().unwrap().fields["line_type"],
            "recurring"
        );
    }
}

#[test]
fn a_bill_total_diff_names_a_region_only_when_every_line_of_the_bill_is_in_it() {
    // Two lines of one bill, one in a region and one in none: the bill's diff names no
    // region, whichever line comes first (it named the first line's).
    let legacy = [
        (
            ("a", "", "sku", "1.00", "USD", "", ""),
            "eu-west-1",
            LineType::Usage,
        ),
        (("a", "", "sku", "1.00", "USD", "", ""), "", LineType::Usage),
    ];
    let mut reversed = legacy.to_vec();
    reversed.reverse();
    for l in [legacy.to_vec(), reversed] {
        let result = compare(&store_in_regions(&l), &LineStore::new(), &config());
        let bill: Vec<_> = result
            .diffs
            .iter()
            .filter(|d| d.scope == Scope::Bill)
            .collect();
        assert_eq!(bill.len(), 1, "{:#?}", result.diffs);
        assert_eq!(bill[0].region, None, "{:#?}", bill[0]);
    }
    // Every line in one region: the bill is in it.
    let both = [
        (
            ("a", "", "sku", "1.00", "USD", "", ""),
            "eu-west-1",
            LineType::Usage,
        ),
        (
            ("a", "", "sku2", "1.00", "USD", "", ""),
            "eu-west-1",
            LineType::Usage,
        ),
    ];
    let result = compare(&store_in_regions(&both), &LineStore::new(), &config());
    let bill = result
        .diffs
        .iter()
        .find(|d| d.scope == Scope::Bill)
        .unwrap();
    assert_eq!(bill.region.as_deref(), Some("eu-west-1"));
}
