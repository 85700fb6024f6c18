//! Real billing formats through the catalog: the AWS CUR and its FOCUS conversion, the FOCUS
//! sample and the specification's examples, a Stripe invoice, Kill Bill and Lago.
//! Real public data lives in `tests/fixtures/real/` with its licenses (see SOURCES.md there).

#[expect(dead_code, reason = "the database helpers serve tests/run.rs")]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde_json::Value;
use support::{Run, billshadow_env};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn billshadow(args: &[&str]) -> Run {
    billshadow_env(args, &repo(), &[])
}

const CUR: &str = "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.csv";
const CUR_FOCUS: &str =
    "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.focus.csv";
const FOCUS_SAMPLE: &str = "tests/fixtures/real/focus-sample/focus_sample.csv";

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

#[test]
fn the_cur_sample_pairs_line_for_line_with_its_focus_conversion() {
    for (legacy, modern) in [("aws-cur", "focus"), ("auto", "auto")] {
        let (run, doc) = diff(CUR, legacy, CUR_FOCUS, modern);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let s = &doc["summary"];
        assert_eq!(s["lines_legacy"], 1281);
        assert_eq!(s["lines_modern"], 1281);
        assert_eq!(s["lines_matched"], 1281, "every line paired");
        assert_eq!(
            s["by_class"],
            serde_json::json!({}),
            "BilledCost equals UnblendedCost on every row"
        );
        assert_eq!(
            s["currencies"]["USD"]["legacy_total"],
            s["currencies"]["USD"]["modern_total"]
        );
        assert_eq!(doc["inputs"]["legacy"]["format"], "aws-cur");
        assert_eq!(doc["inputs"]["modern"]["format"], "focus");
    }
    let (_, doc) = diff(CUR, "auto", CUR_FOCUS, "auto");
    assert_eq!(doc["diffs"], Value::Array(vec![]));
}

#[test]
fn list_cost_against_public_on_demand_cost_differs_below_a_cent_only() {
    let (run, doc) = diff(CUR, "aws-cur-public-cost", CUR_FOCUS, "focus-list-cost");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let s = &doc["summary"];
    assert_eq!(s["lines_matched"], 1281);
    assert_eq!(s["by_class"], serde_json::json!({"sub_minor_unit": 548}));
    for d in doc["diffs"].as_array().unwrap() {
        let delta: Decimal = d["delta"].as_str().unwrap().parse().unwrap();
        assert!(delta.abs() < Decimal::new(1, 6), "{d}");
    }
}

/// Sums a CSV column per key column, independently of billshadow.
fn sums(path: &str, key: &str, amount: &str) -> BTreeMap<String, Decimal> {
    let mut reader = csv::Reader::from_path(repo().join(path)).unwrap();
    let header = reader.headers().unwrap().clone();
    let (k, a) = (
        header.iter().position(|h| h == key).unwrap(),
        header.iter().position(|h| h == amount).unwrap(),
    );
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let value = Decimal::from_scientific(&row[a])
            .or_else(|_| row[a].parse())
            .unwrap();
        *out.entry(row[k].to_owned()).or_default() += value;
    }
    out
}

#[test]
fn the_focus_sample_loads_whole_with_totals_per_account_and_sub_account() {
    // Against a file with no lines, every line is reported missing, carrying its amount.
    let dir = tempfile::tempdir().unwrap();
    let header = std::fs::read_to_string(repo().join(FOCUS_SAMPLE))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, format!("{header}\n")).unwrap();
    let (run, doc) = diff(FOCUS_SAMPLE, "focus", empty.to_str().unwrap(), "focus");
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(doc["inputs"]["legacy"]["records"], 1000);
    assert_eq!(doc["inputs"]["legacy"]["lines"], 1000);
    let mut per_account: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut per_sub_account: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut missing = 0;
    for d in doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == "missing_in_modern")
    {
        missing += 1;
        let amount = -d["delta"].as_str().unwrap().parse::<Decimal>().unwrap();
        *per_account
            .entry(d["account_id"].as_str().unwrap().to_owned())
            .or_default() += amount;
        *per_sub_account
            .entry(d["partition"].as_str().unwrap_or("NULL").to_owned())
            .or_default() += amount;
    }
    assert_eq!(missing, 1000);
    let normalise = |m: BTreeMap<String, Decimal>| -> BTreeMap<String, Decimal> {
        m.into_iter().map(|(k, v)| (k, v.normalize())).collect()
    };
    assert_eq!(
        normalise(per_account),
        normalise(sums(FOCUS_SAMPLE, "BillingAccountId", "BilledCost"))
    );
    assert_eq!(per_sub_account.len(), 73);
    assert_eq!(
        normalise(per_sub_account),
        normalise(sums(FOCUS_SAMPLE, "SubAccountId", "BilledCost"))
    );
}

#[test]
fn every_focus_specification_example_loads() {
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
    assert_eq!(files.len(), 26);
    for file in files {
        // The SaaS examples are spreadsheet exports (US dates, "$10,000.00"): a mapping of their own.
        let saas = file.components().any(|c| c.as_os_str() == "saas_examples");
        let mapping = if saas {
            "tests/fixtures/formats/focus-spec-saas-example.toml"
        } else {
            "tests/fixtures/formats/focus-spec-example.toml"
        };
        let f = file.to_str().unwrap();
        let (run, doc) = diff(f, mapping, f, mapping);
        assert_eq!(run.code, 0, "{}: {}", file.display(), run.transcript());
        let lines = doc["inputs"]["legacy"]["lines"].as_u64().unwrap();
        let rows = csv::Reader::from_path(&file).unwrap().records().count() as u64;
        assert_eq!(lines, rows, "{}", file.display());
    }
}

fn compare_with_expected(source: &Path, format: &str, expected_csv: &str) -> Value {
    let spec = repo().join("tests/fixtures/formats/ignore-description.toml");
    let run = billshadow(&[
        "diff",
        "--legacy",
        source.to_str().unwrap(),
        "--legacy-format",
        format,
        "--modern",
        expected_csv,
        "--spec",
        spec.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let doc = run.json();
    assert_eq!(doc["diffs"], Value::Array(vec![]), "{doc}");
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
    // The expected lines, written from the fixture by hand-rolled arithmetic: cents / 100.
    let mut expected = String::from(
        "account_id,period_start,period_end,charge_code,line_type,quantity,amount,currency,invoice_id,line_id\n",
    );
    for item in items {
        let cents = item["amount"].as_i64().unwrap();
        let day = |t: &Value| {
            chrono::DateTime::from_timestamp(t.as_i64().unwrap(), 0)
                .unwrap()
                .date_naive()
        };
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
    let doc = compare_with_expected(&source, "stripe", expected_path.to_str().unwrap());
    assert_eq!(doc["summary"]["currencies"]["USD"]["legacy_total"], "10.00");
    // And detected as Stripe.
    let run = billshadow(&[
        "diff",
        "--legacy",
        source.to_str().unwrap(),
        "--legacy-format",
        "auto",
        "--modern",
        source.to_str().unwrap(),
        "--modern-format",
        "stripe",
    ]);
    assert!(
        run.stderr.contains("detected format `stripe`"),
        "{}",
        run.transcript()
    );
}

#[test]
fn kill_bill_and_lago_load_with_the_right_amounts() {
    let doc = compare_with_expected(
        &repo().join("tests/fixtures/formats/killbill-invoice-items.json"),
        "killbill",
        "tests/fixtures/formats/killbill-expected.csv",
    );
    assert_eq!(
        doc["summary"]["currencies"]["USD"]["legacy_total"],
        "37.325"
    );
    let doc = compare_with_expected(
        &repo().join("tests/fixtures/formats/lago-fees.json"),
        "lago",
        "tests/fixtures/formats/lago-expected.csv",
    );
    assert_eq!(
        doc["summary"]["currencies"]["EUR"]["legacy_total"], "174.00",
        "Lago cents become units"
    );
    for (file, format) in [
        (
            "tests/fixtures/formats/killbill-invoice-items.json",
            "killbill",
        ),
        ("tests/fixtures/formats/lago-fees.json", "lago"),
        (CUR, "aws-cur"),
        (CUR_FOCUS, "focus"),
        (FOCUS_SAMPLE, "focus"),
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
        assert!(
            run.stderr.contains(&format!("detected format `{format}`")),
            "{file}: {}",
            run.transcript()
        );
    }
}

#[test]
fn a_missing_or_renamed_required_column_names_the_column_and_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(CUR_FOCUS)).unwrap();
    let renamed = dir.path().join("renamed.csv");
    std::fs::write(&renamed, text.replacen("BilledCost", "Billed_Cost", 1)).unwrap();
    let run = billshadow(&[
        "diff",
        "--legacy",
        renamed.to_str().unwrap(),
        "--legacy-format",
        "focus",
        "--modern",
        CUR_FOCUS,
        "--modern-format",
        "focus",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("the required column `BilledCost` (for the canonical field `amount`) is missing from the header of this `focus` file"), "{}", run.stderr);
    let cur = std::fs::read_to_string(repo().join(CUR)).unwrap();
    let missing = dir.path().join("missing.csv");
    std::fs::write(
        &missing,
        cur.replacen("bill/PayerAccountId", "bill/Payer", 1),
    )
    .unwrap();
    let run = billshadow(&[
        "diff",
        "--legacy",
        missing.to_str().unwrap(),
        "--legacy-format",
        "aws-cur",
        "--modern",
        CUR_FOCUS,
        "--modern-format",
        "focus",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`bill/PayerAccountId`") && run.stderr.contains("`aws-cur` file"),
        "{}",
        run.stderr
    );
}
