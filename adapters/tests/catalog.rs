//! The catalog on real files: format detection picks the right entry for each sample, and each
//! entry reads its sample into the canonical fields the README documents (cells from source
//! columns, amounts in units whatever the source's minor unit, inclusive period ends).
//! The samples are the project's fixtures (`tests/fixtures/`, with their licenses).

#[path = "../../tests/fixtures/cur2_name.rs"]
mod cur2;
use cur2::cur2_name;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use billshadow_adapters::{Catalog, Mapping, ReadOptions, read_path};
use billshadow_comparisons::{Field, LineStore};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

const CUR: &str = "real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.csv";
const CUR_FOCUS: &str = "real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.focus.csv";
const FOCUS_SAMPLE: &str = "real/focus-sample/focus_sample.csv";

fn catalog() -> Catalog {
    Catalog::builtin().expect("every catalog entry loads")
}

fn mapping<'c>(catalog: &'c Catalog, name: &str) -> &'c Mapping {
    catalog
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` entry"))
}

fn read(path: &Path, format: &str) -> LineStore {
    let catalog = catalog();
    read_path(path, mapping(&catalog, format), ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .0
}

/// The distinct values of one column of a CSV file, read with a plain CSV reader.
fn column_values(path: &Path, column: &str) -> BTreeSet<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let i = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap()[i].to_owned())
        .filter(|v| !v.is_empty() && v != "NULL")
        .collect()
}

fn field_values(store: &LineStore, field: Field) -> BTreeSet<String> {
    store
        .lines()
        .map(|l| l.get(field).to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first Stripe invoice of the Stripe fixture, as a JSON value to vary.
fn stripe_invoice() -> Value {
    let fixtures: Value =
        serde_json::from_slice(&std::fs::read(fixture("real/stripe/fixtures3.json")).unwrap())
            .unwrap();
    fixtures["resources"]["invoice"].clone()
}

fn write_jsonl(dir: &Path, name: &str, documents: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = documents.iter().map(|d| format!("{d}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn check_detect(catalog: &Catalog, path: &Path, expected: Option<&str>) {
    let got = catalog.detect(path).unwrap().map(|m| m.name.as_str());
    assert_eq!(got, expected, "{}", path.display());
}

#[test]
fn detection_picks_the_right_entry_for_each_sample() {
    let catalog = catalog();
    check_detect(&catalog, &fixture(CUR), Some("aws-cur"));
    check_detect(&catalog, &fixture(CUR_FOCUS), Some("focus"));
    check_detect(&catalog, &fixture(FOCUS_SAMPLE), Some("focus"));
    check_detect(
        &catalog,
        &fixture("formats/killbill-invoices.json"),
        Some("killbill"),
    );
    check_detect(&catalog, &fixture("formats/lago-fees.json"), Some("lago"));
    check_detect(
        &catalog,
        &fixture("formats/killbill-expected.csv"),
        Some("canonical"),
    );
    let dir = tempfile::tempdir().unwrap();
    let stripe = write_jsonl(dir.path(), "stripe.jsonl", &[stripe_invoice()]);
    check_detect(&catalog, &stripe, Some("stripe"));
    let text = std::fs::read_to_string(fixture(CUR)).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let header: Vec<String> = header.split(',').map(cur2_name).collect();
    let cur2 = dir.path().join("cur2.csv");
    std::fs::write(&cur2, format!("{}\n{rows}", header.join(","))).unwrap();
    check_detect(&catalog, &cur2, Some("aws-cur2"));
    // What fits no entry whole is not guessed: a worked example of the FOCUS specification
    // (no billing account), a lone Stripe line item (no invoice around it).
    let example = fixture(
        "real/focus-spec-examples/commitment_discount_scenarios/commitment_discount_usage_scenario_1.csv",
    );
    check_detect(&catalog, &example, None);
    let line = stripe_invoice()["lines"]["data"][0].clone();
    let line = write_jsonl(dir.path(), "line.jsonl", &[line]);
    check_detect(&catalog, &line, None);
}

#[test]
fn the_cur_and_its_focus_conversion_fill_the_same_cells() {
    let cur = read(&fixture(CUR), "aws-cur");
    let focus = read(&fixture(CUR_FOCUS), "focus");
    assert_eq!(cur.len(), 1281);
    assert_eq!(focus.len(), 1281);
    // Partition: the usage account, FOCUS's sub-account; region: product/region, FOCUS's RegionId.
    let accounts = column_values(&fixture(CUR), "lineItem/UsageAccountId");
    assert_eq!(field_values(&cur, Field::Partition), accounts);
    assert_eq!(field_values(&focus, Field::Partition), accounts);
    let regions = column_values(&fixture(CUR), "product/region");
    assert_eq!(regions.len(), 18);
    assert_eq!(field_values(&cur, Field::Region), regions);
    assert_eq!(
        field_values(&focus, Field::Region),
        column_values(&fixture(CUR_FOCUS), "RegionId")
    );
    assert_eq!(field_values(&focus, Field::Region), regions);
    // Billing periods end inclusive on both sides: November 2023.
    for store in [&cur, &focus] {
        let periods: BTreeSet<(String, String)> = store
            .lines()
            .map(|l| {
                (
                    l.get(Field::PeriodStart).to_owned(),
                    l.get(Field::PeriodEnd).to_owned(),
                )
            })
            .collect();
        let november = ("2023-11-01".to_owned(), "2023-11-30".to_owned());
        assert_eq!(periods, BTreeSet::from([november]));
    }
}

#[test]
fn the_focus_sample_fills_73_sub_accounts_as_partitions() {
    let path = fixture(FOCUS_SAMPLE);
    let store = read(&path, "focus");
    assert_eq!(store.len(), 1000);
    let sub_accounts = column_values(&path, "SubAccountId");
    assert_eq!(sub_accounts.len(), 73);
    assert_eq!(field_values(&store, Field::Partition), sub_accounts);
    assert_eq!(
        field_values(&store, Field::Region),
        column_values(&path, "RegionId")
    );
}

/// The amount and currency each line of a Stripe invoice in `currency` becomes.
fn stripe_amounts(currency: &str, cents: i64) -> Vec<(String, String)> {
    let mut invoice = stripe_invoice();
    invoice["currency"] = json!(currency);
    for line in invoice["lines"]["data"].as_array_mut().unwrap() {
        line["currency"] = json!(currency);
        line["amount"] = json!(cents);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_jsonl(dir.path(), "invoice.jsonl", &[invoice]);
    read(&path, "stripe")
        .lines()
        .map(|l| (l.amount().to_string(), l.currency().code().to_owned()))
        .collect()
}

#[test]
fn stripe_amounts_are_in_the_minor_unit_of_their_currency() {
    let one = |amount: &str, currency: &str| vec![(amount.to_owned(), currency.to_owned())];
    assert_eq!(stripe_amounts("usd", 1000), one("10.00", "USD"));
    assert_eq!(stripe_amounts("eur", -250), one("-2.50", "EUR"));
    // Zero-decimal currencies: the amount is already in units.
    assert_eq!(stripe_amounts("jpy", 1000), one("1000", "JPY"));
    assert_eq!(stripe_amounts("krw", 15000), one("15000", "KRW"));
    // Three-decimal currencies: thousandths.
    assert_eq!(stripe_amounts("bhd", 1230), one("1.230", "BHD"));
    // Where Stripe departs from ISO 4217: ISK in hundredths, MGA in whole ariary.
    assert_eq!(stripe_amounts("isk", 50000), one("500.00", "ISK"));
    assert_eq!(stripe_amounts("mga", 5000), one("5000", "MGA"));
}

#[test]
fn a_stripe_subscription_line_ends_the_day_before_the_next_period() {
    let mut invoice = stripe_invoice();
    let line = &mut invoice["lines"]["data"][0];
    // 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z, a monthly subscription item.
    line["period"] = json!({"start": 1790812800, "end": 1793491200});
    line["parent"]["type"] = json!("subscription_item_details");
    line["pricing"] = json!({"type": "price_details", "price_details": {"price": "price_1Monthly", "product": "prod_1"}, "unit_amount_decimal": "1000"});
    let dir = tempfile::tempdir().unwrap();
    let path = write_jsonl(dir.path(), "invoice.jsonl", &[invoice]);
    let store = read(&path, "stripe");
    let line = store.line(0);
    assert_eq!(line.get(Field::PeriodStart), "2026-10-01");
    assert_eq!(line.get(Field::PeriodEnd), "2026-10-31");
    assert_eq!(line.get(Field::ChargeCode), "price_1Monthly");
    assert_eq!(line.get(Field::UnitPrice), "10.00");
    assert_eq!(line.line_type().as_str(), "recurring");
    // And the fixture's own line, a one-off item at one instant, starts and ends that day.
    let path = write_jsonl(dir.path(), "one-off.jsonl", &[stripe_invoice()]);
    let store = read(&path, "stripe");
    let line = store.line(0);
    assert_eq!(line.get(Field::PeriodStart), "2024-07-26");
    assert_eq!(line.get(Field::PeriodEnd), "2024-07-26");
    assert_eq!(line.line_type().as_str(), "one_time");
}

#[test]
fn kill_bill_items_end_inclusive_and_lago_fees_scale_by_currency() {
    let store = read(&fixture("formats/killbill-invoices.json"), "killbill");
    let periods: Vec<(&str, &str, &str, String)> = store
        .lines()
        .map(|l| {
            (
                l.get(Field::ChargeCode),
                l.get(Field::PeriodStart),
                l.get(Field::PeriodEnd),
                l.amount().to_string(),
            )
        })
        .collect();
    assert_eq!(
        periods,
        [
            (
                "pistol-monthly-evergreen",
                "2026-10-01",
                "2026-10-31",
                "29.95".to_owned()
            ),
            ("bullets", "2026-10-01", "2026-10-31", "12.375".to_owned()),
            (
                "goodwill adjustment",
                "2026-10-15",
                "2026-10-15",
                "-5.00".to_owned()
            ),
            (
                "pistol-monthly-trial",
                "2026-10-20",
                "2026-10-20",
                "15.00".to_owned()
            ),
        ]
    );
    let store = read(&fixture("formats/lago-fees.json"), "lago");
    let amounts: Vec<(Decimal, &str, &str)> = store
        .lines()
        .map(|l| (l.amount(), l.currency().code(), l.get(Field::PeriodEnd)))
        .collect();
    assert_eq!(
        amounts,
        [
            (Decimal::new(12500, 2), "EUR", "2026-10-31"),
            (Decimal::new(4900, 2), "EUR", "2026-10-31"),
            // A one-off add-on without dates: its creation day.
            (Decimal::new(30000, 0), "JPY", "2026-10-12"),
        ]
    );
}

#[test]
fn every_catalog_entry_has_a_section_in_the_readme() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/README.md"))
            .unwrap();
    let headed: BTreeSet<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .collect();
    for name in catalog().names() {
        assert!(
            headed.contains(name),
            "adapters/catalog/README.md has no section for `{name}`"
        );
    }
}
