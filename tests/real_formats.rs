//! Real billing formats through the catalog, end to end: the AWS CUR (legacy and 2.0) against
//! its FOCUS conversion, the FOCUS sample and the specification's examples, a Stripe invoice,
//! Kill Bill and Lago. Real public data lives in `tests/fixtures/real/` with its licenses (see
//! README.md there); expected figures are computed here from the raw files, independently of
//! billshadow.

#[path = "fixtures/cur2_name.rs"]
mod cur2;
use cur2::cur2_name;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{Run, billshadow_env, repo};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn billshadow(args: &[&str]) -> Run {
    billshadow_env(args, &repo(), &[])
}

const CUR: &str = "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.csv";
const CUR_FOCUS: &str =
    "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.focus.csv";
const CUR_ROWS: u64 = 1281;
const FOCUS_SAMPLE: &str = "tests/fixtures/real/focus-sample/focus_sample.csv";
const KILL_BILL: &str = "tests/fixtures/formats/killbill-invoices.json";
const LAGO: &str = "tests/fixtures/formats/lago-fees.json";

/// `billshadow diff … --format json`: the run and its JSON document.
fn diff(legacy: &str, legacy_format: &str, modern: &str, modern_format: &str) -> (Run, Value) {
    let run = billshadow(&[
        "diff",
        "--legacy",
        legacy,
        "--legacy-format",
        legacy_format,
        "--modern",
        modern,
        "--modern-format",
        modern_format,
        "--format",
        "json",
    ]);
    let doc = run.json();
    (run, doc)
}

/// A decimal as the raw files write it (`1.8E-9` included), never through a float.
fn decimal(text: &str) -> Decimal {
    Decimal::from_scientific(text)
        .or_else(|_| text.parse())
        .unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

/// A JSON amount string, normalized so `1.50` and `1.5` compare equal.
fn amount(value: &Value) -> Decimal {
    decimal(value.as_str().unwrap_or_else(|| panic!("{value}"))).normalize()
}

/// Sums a CSV column per key column (`None`: one sum), read with a plain CSV reader.
fn sums(path: &Path, key: Option<&str>, column: &str) -> BTreeMap<String, Decimal> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    let position = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .unwrap_or_else(|| panic!("{}: no column {name}", path.display()))
    };
    let (k, a) = (key.map(position), position(column));
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let text: String = row[a].chars().filter(|c| !"$, ".contains(*c)).collect();
        let key = k.map_or(String::new(), |k| row[k].to_owned());
        *out.entry(key).or_default() += decimal(&text);
    }
    out.into_iter().map(|(k, v)| (k, v.normalize())).collect()
}

fn total(path: &str, column: &str) -> Decimal {
    sums(&repo().join(path), None, column)[""]
}

/// Asserts a run paired every line of both sides with no diff at all.
fn assert_line_for_line(run: &Run, doc: &Value, lines: u64) {
    assert_eq!(run.code, 0, "{}", run.transcript());
    let s = &doc["summary"];
    assert_eq!(s["lines_legacy"], lines);
    assert_eq!(s["lines_modern"], lines);
    assert_eq!(s["lines_matched"], lines, "every line paired");
    assert_eq!(s["by_class"], json!({}), "no missing line, no difference");
    assert_eq!(doc["diffs"], json!([]));
}

#[test]
fn the_cur_sample_pairs_line_for_line_with_its_focus_conversion() {
    let unblended = total(CUR, "lineItem/UnblendedCost");
    assert_eq!(unblended, total(CUR_FOCUS, "BilledCost"));
    for (legacy, modern) in [("aws-cur", "focus"), ("auto", "auto")] {
        let (run, doc) = diff(CUR, legacy, CUR_FOCUS, modern);
        assert_line_for_line(&run, &doc, CUR_ROWS);
        let usd = &doc["summary"]["currencies"]["USD"];
        assert_eq!(amount(&usd["legacy_total"]), unblended);
        assert_eq!(amount(&usd["modern_total"]), unblended);
        assert_eq!(amount(&usd["delta_abs"]), Decimal::ZERO);
        assert_eq!(doc["summary"]["currencies"].as_object().unwrap().len(), 1);
        assert_eq!(doc["inputs"]["legacy"]["format"], "aws-cur");
        assert_eq!(doc["inputs"]["modern"]["format"], "focus");
    }
}

#[test]
fn list_cost_against_public_on_demand_cost_differs_below_a_cent_only() {
    let (run, doc) = diff(CUR, "aws-cur-public-cost", CUR_FOCUS, "focus-list-cost");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let s = &doc["summary"];
    assert_eq!(s["lines_matched"], CUR_ROWS);
    assert_eq!(s["by_class"], json!({"sub_minor_unit": 548}));
    let usd = &s["currencies"]["USD"];
    assert_eq!(
        amount(&usd["legacy_total"]),
        total(CUR, "pricing/publicOnDemandCost")
    );
    assert_eq!(amount(&usd["modern_total"]), total(CUR_FOCUS, "ListCost"));
    for d in doc["diffs"].as_array().unwrap() {
        assert_eq!(d["class"], "sub_minor_unit", "{d}");
        assert!(amount(&d["delta"]).abs() < Decimal::new(1, 6), "{d}");
    }
}

#[test]
fn cur_2_0_pairs_line_for_line_with_the_focus_conversion_too() {
    assert_eq!(
        cur2_name("lineItem/LineItemType"),
        "line_item_line_item_type"
    );
    assert_eq!(
        cur2_name("pricing/publicOnDemandCost"),
        "pricing_public_on_demand_cost"
    );
    let text = std::fs::read_to_string(repo().join(CUR)).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let header: Vec<String> = header.split(',').map(cur2_name).collect();
    let dir = tempfile::tempdir().unwrap();
    let cur2 = dir.path().join("cur2.csv");
    std::fs::write(&cur2, format!("{}\n{rows}", header.join(","))).unwrap();
    let cur2 = cur2.to_str().unwrap();
    for format in ["aws-cur2", "auto"] {
        let (run, doc) = diff(cur2, format, CUR_FOCUS, "focus");
        assert_line_for_line(&run, &doc, CUR_ROWS);
        assert_eq!(doc["inputs"]["legacy"]["format"], "aws-cur2");
    }
    // Legacy CUR against CUR 2.0: the same bill under both names.
    let (run, doc) = diff(CUR, "aws-cur", cur2, "aws-cur2");
    assert_line_for_line(&run, &doc, CUR_ROWS);
}

#[test]
fn the_focus_sample_loads_whole_with_totals_per_account_and_sub_account() {
    // Against a file with no lines, every line is reported missing, carrying its amount, its
    // account and its partition (the sub-account).
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(FOCUS_SAMPLE)).unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, format!("{}\n", text.lines().next().unwrap())).unwrap();
    let (run, doc) = diff(FOCUS_SAMPLE, "focus", empty.to_str().unwrap(), "focus");
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(doc["inputs"]["legacy"]["records"], 1000);
    assert_eq!(doc["inputs"]["legacy"]["lines"], 1000);
    // The bills whose totals reach a cent are also reported as a `total_mismatch` each.
    assert_eq!(doc["summary"]["by_class"]["missing_in_modern"], 1000);
    let mut per_account: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut per_sub_account: BTreeMap<String, Decimal> = BTreeMap::new();
    let missing = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == "missing_in_modern");
    for d in missing {
        let amount = -amount(&d["delta"]);
        let account = d["account_id"].as_str().unwrap().to_owned();
        let sub_account = d["partition"].as_str().unwrap().to_owned();
        *per_account.entry(account).or_default() += amount;
        *per_sub_account.entry(sub_account).or_default() += amount;
    }
    let normalize = |m: BTreeMap<String, Decimal>| -> BTreeMap<String, Decimal> {
        m.into_iter().map(|(k, v)| (k, v.normalize())).collect()
    };
    let path = repo().join(FOCUS_SAMPLE);
    let expected = sums(&path, Some("BillingAccountId"), "BilledCost");
    assert_eq!(expected.len(), 3);
    assert_eq!(normalize(per_account), expected);
    let expected = sums(&path, Some("SubAccountId"), "BilledCost");
    assert_eq!(expected.len(), 73);
    assert_eq!(normalize(per_sub_account), expected);
    let all: Decimal = expected.values().sum();
    assert_eq!(
        amount(&doc["summary"]["currencies"]["USD"]["legacy_total"]),
        all.normalize()
    );
}

fn focus_spec_examples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![repo().join("tests/fixtures/real/focus-spec-examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "csv") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_focus_specification_example_loads() {
    let files = focus_spec_examples();
    assert_eq!(files.len(), 26);
    for file in files {
        let f = file.to_str().unwrap();
        let saas = file.components().any(|c| c.as_os_str() == "saas_examples");
        // Through `focus` itself, each example stops on what makes it a worked example rather
        // than an export: the commitment examples leave out the billing account (and the
        // currency), the SaaS ones are spreadsheet exports with US dates and "$10,000.00".
        let run = billshadow(&[
            "diff",
            "--legacy",
            f,
            "--legacy-format",
            "focus",
            "--modern",
            f,
            "--modern-format",
            "focus",
        ]);
        assert_eq!(run.code, 2, "{f}: {}", run.transcript());
        let why = if saas {
            ["(`BilledCost`): `$", "(`BillingPeriodEnd`): `"]
                .iter()
                .any(|m| run.stderr.contains(m))
        } else {
            run.stderr.contains(
                "the required column `BillingAccountId` (for the canonical field `account_id`) is missing from the header of this `focus` file",
            )
        };
        assert!(why, "{f}: {}", run.stderr);
        // With the two user mappings that state those differences, every row loads, with the
        // total of its BilledCost column.
        let mapping = if saas {
            "tests/fixtures/formats/focus-spec-saas-example.toml"
        } else {
            "tests/fixtures/formats/focus-spec-example.toml"
        };
        let (run, doc) = diff(f, mapping, f, mapping);
        assert_eq!(run.code, 0, "{f}: {}", run.transcript());
        let rows = csv::Reader::from_path(&file).unwrap().records().count() as u64;
        assert_eq!(doc["inputs"]["legacy"]["lines"], rows, "{f}");
        assert_eq!(doc["summary"]["lines_matched"], rows, "{f}");
        assert_eq!(
            amount(&doc["summary"]["currencies"]["USD"]["legacy_total"]),
            sums(&file, None, "BilledCost")[""],
            "{f}"
        );
    }
}

/// Compares a source read through `format` with the canonical CSV of what it must become.
fn compare_with_expected(source: &Path, format: &str, expected_csv: &Path) -> Value {
    let spec = repo().join("tests/fixtures/formats/ignore-description.toml");
    let run = billshadow(&[
        "diff",
        "--legacy",
        source.to_str().unwrap(),
        "--legacy-format",
        format,
        "--modern",
        expected_csv.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let doc = run.json();
    assert_eq!(doc["diffs"], json!([]), "{doc}");
    assert_eq!(
        doc["summary"]["lines_matched"],
        doc["summary"]["lines_modern"]
    );
    doc
}

#[test]
fn a_stripe_invoice_loads_with_amounts_in_units() {
    let fixtures: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/real/stripe/fixtures3.json")).unwrap(),
    )
    .unwrap();
    let invoice = &fixtures["resources"]["invoice"];
    let items = invoice["lines"]["data"].as_array().unwrap();
    assert!(!items.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("invoices.jsonl");
    std::fs::write(&source, format!("{invoice}\n")).unwrap();
    // The expected lines, from the fixture by hand: cents / 100, Unix seconds → UTC days.
    let mut expected = String::from(
        "account_id,period_start,period_end,charge_code,line_type,quantity,amount,currency,invoice_id,line_id\n",
    );
    let mut cents_total = 0;
    for item in items {
        let cents = item["amount"].as_i64().unwrap();
        cents_total += cents;
        let day = |t: &Value| {
            chrono::DateTime::from_timestamp(t.as_i64().unwrap(), 0)
                .unwrap()
                .date_naive()
        };
        // A one-off item: its period is one instant, so it starts and ends on that day.
        assert_eq!(item["period"]["start"], item["period"]["end"]);
        assert_eq!(item["parent"]["type"], "invoice_item_details");
        expected.push_str(&format!(
            "{},{},{},{},one_time,{},{},{},{},{}\n",
            invoice["customer"].as_str().unwrap(),
            day(&item["period"]["start"]),
            day(&item["period"]["end"]),
            item["description"].as_str().unwrap(),
            item["quantity"],
            Decimal::new(cents, 2),
            item["currency"].as_str().unwrap().to_uppercase(),
            invoice["id"].as_str().unwrap(),
            item["id"].as_str().unwrap(),
        ));
    }
    let expected_path = dir.path().join("expected.csv");
    std::fs::write(&expected_path, expected).unwrap();
    let doc = compare_with_expected(&source, "stripe", &expected_path);
    let usd = &doc["summary"]["currencies"]["USD"]["legacy_total"];
    assert_eq!(amount(usd), Decimal::new(cents_total, 2));
    assert_eq!(usd, "10.00");
    assert_eq!(
        invoice["subtotal"],
        json!(cents_total),
        "the lines add up to the invoice"
    );
}

#[test]
fn kill_bill_and_lago_load_with_the_right_amounts() {
    let doc = compare_with_expected(
        &repo().join(KILL_BILL),
        "killbill",
        &repo().join("tests/fixtures/formats/killbill-expected.csv"),
    );
    // 29.95 + 12.375 − 5.00 + 15.00, over two invoices.
    let usd = &doc["summary"]["currencies"]["USD"]["legacy_total"];
    assert_eq!(amount(usd), decimal("52.325"));
    let doc = compare_with_expected(
        &repo().join(LAGO),
        "lago",
        &repo().join("tests/fixtures/formats/lago-expected.csv"),
    );
    let currencies = &doc["summary"]["currencies"];
    // 12500 + 4900 euro cents; 30000 yen (JPY has no minor unit).
    assert_eq!(
        currencies["EUR"]["legacy_total"], "174.00",
        "Lago cents become units"
    );
    assert_eq!(amount(&currencies["JPY"]["legacy_total"]), decimal("30000"));
}

#[test]
fn auto_detection_names_the_format_it_chose() {
    for (file, format) in [
        (KILL_BILL, "killbill"),
        (LAGO, "lago"),
        (CUR, "aws-cur"),
        (CUR_FOCUS, "focus"),
        (FOCUS_SAMPLE, "focus"),
        ("tests/cases/jpy-bhd/legacy.csv", "canonical"),
    ] {
        let run = billshadow(&[
            "diff",
            "--legacy",
            file,
            "--legacy-format",
            "auto",
            "--modern",
            file,
            "--modern-format",
            format,
        ]);
        assert_eq!(run.code, 0, "{file}: {}", run.transcript());
        assert!(
            run.stderr
                .contains(&format!("{file}: detected format `{format}`")),
            "{file}: {}",
            run.transcript()
        );
    }
}

#[test]
fn a_missing_or_renamed_required_column_names_the_column_and_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let focus = std::fs::read_to_string(repo().join(CUR_FOCUS)).unwrap();
    let cur = std::fs::read_to_string(repo().join(CUR)).unwrap();
    let lago = std::fs::read_to_string(repo().join(LAGO)).unwrap();
    let cases = [
        (
            write(
                "renamed.csv",
                focus.replacen("BilledCost", "Billed_Cost", 1),
            ),
            "focus",
            "the required column `BilledCost` (for the canonical field `amount`) is missing from the header of this `focus` file",
        ),
        (
            write(
                "missing.csv",
                cur.replacen("bill/PayerAccountId", "bill/Payer", 1),
            ),
            "aws-cur",
            "the required column `bill/PayerAccountId` (for the canonical field `account_id`) is missing from the header of this `aws-cur` file",
        ),
        (
            write(
                "renamed.json",
                lago.replace("\"amount_cents\"", "\"amount_minor\""),
            ),
            "lago",
            "field `amount_cents`: no value; the `lago` format reads the required field `amount` here",
        ),
    ];
    let spec = repo().join("tests/fixtures/formats/ignore-description.toml");
    let spec = spec.to_str().unwrap();
    for (file, format, message) in cases {
        let run = billshadow(&[
            "diff",
            "--legacy",
            &file,
            "--legacy-format",
            format,
            "--modern",
            CUR_FOCUS,
            "--modern-format",
            "focus",
            "--spec",
            spec,
        ]);
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(run.stderr.contains(message), "{}", run.stderr);
    }
}
