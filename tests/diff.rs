//! End-to-end tests of `billshadow diff`, `check-spec` and `generate pair`: the real binary
//! on real files.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::support::{billshadow, golden_case_diffs, repo};

fn diff_json(dir: &Path, legacy: &str, modern: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "diff", "--legacy", legacy, "--modern", modern, "--format", "json",
    ];
    args.extend_from_slice(extra);
    let run = billshadow(&args, dir);
    (run.code, run.json())
}

const HEADER: &str =
    "account_id,period_start,period_end,charge_code,line_type,quantity,unit_price,amount,currency";

fn row(account: &str, charge: &str, amount: &str, currency: &str) -> String {
    format!("{account},2026-10-01,2026-10-31,{charge},usage,,,{amount},{currency}")
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    std::fs::write(dir.join(name), contents).unwrap();
    name.to_owned()
}

#[test]
fn a_file_against_itself_has_no_diffs() {
    let (code, doc) = diff_json(&repo(), "examples/legacy.csv", "examples/legacy.csv", &[]);
    assert_eq!(code, 0);
    assert_eq!(doc["diffs"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["accounts_at_parity"], 4);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = billshadow(
        &[
            "generate",
            "pair",
            "--accounts",
            "300",
            "--seed",
            "3",
            "--out",
            d,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for side in ["legacy.csv", "modern.csv"] {
        let (code, doc) = diff_json(dir.path(), side, side, &[]);
        assert_eq!(code, 0);
        assert_eq!(doc["summary"]["by_class"], serde_json::json!({}));
        assert_eq!(doc["summary"]["accounts_compared"], 300);
    }
}

/// The identity of a diff for comparing against the answer file.
fn identity(d: &Value, delta_matters: bool) -> (String, String, String, String, String) {
    let scope_customer = d["scope"] == "customer";
    let owner = if scope_customer {
        format!("customer:{}", d["customer_id"])
    } else {
        format!("account:{}", d["account_id"])
    };
    let delta = match d["delta"].as_str() {
        Some(s) if delta_matters => s.parse::<Decimal>().unwrap().normalize().to_string(),
        _ => String::new(),
    };
    (
        owner,
        d["class"].as_str().unwrap().to_owned(),
        d["charge_code"].to_string(),
        delta,
        d["currency"].to_string(),
    )
}

fn check_generated_pair(accounts: &str, lines: &str, seed: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = billshadow(
        &[
            "generate",
            "pair",
            "--accounts",
            accounts,
            "--lines-per-account",
            lines,
            "--seed",
            seed,
            "--out",
            d,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answers: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("answers.json")).unwrap()).unwrap();
    let (code, doc) = diff_json(dir.path(), "legacy.csv", "modern.csv", &[]);
    assert_eq!(code, 1);

    let delta_matters = |class: &str| {
        !matches!(
            class,
            "currency_mismatch"
                | "quantity_mismatch"
                | "unit_price_mismatch"
                | "description_changed"
        )
    };
    let mut expected: BTreeMap<_, i64> = BTreeMap::new();
    for a in answers["diffs"].as_array().unwrap() {
        let mut a = a.clone();
        a["scope"] = if a["customer_id"].is_null() {
            "line".into()
        } else {
            "customer".into()
        };
        let class = a["class"].as_str().unwrap().to_owned();
        if class == "total_mismatch" {
            a["charge_code"] = Value::Null;
        }
        *expected
            .entry(identity(&a, delta_matters(&class)))
            .or_default() += 1;
    }
    let mut reported: BTreeMap<_, i64> = BTreeMap::new();
    for d in doc["diffs"].as_array().unwrap() {
        let class = d["class"].as_str().unwrap().to_owned();
        *reported
            .entry(identity(d, delta_matters(&class)))
            .or_default() += 1;
    }
    let true_positives: i64 = expected
        .iter()
        .map(|(k, n)| (*n).min(reported.get(k).copied().unwrap_or(0)))
        .sum();
    let expected_total: i64 = expected.values().sum();
    let reported_total: i64 = reported.values().sum();
    let missed: Vec<_> = expected
        .keys()
        .filter(|k| !reported.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = reported
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert_eq!(
        true_positives, expected_total,
        "recall below 1.0; missed e.g. {missed:?}"
    );
    assert_eq!(
        true_positives, reported_total,
        "precision below 1.0; extra e.g. {extra:?}"
    );

    // Every class was injected, and every engine class but stack_error and within_tolerance
    // shows up.
    let injected = answers["injected"].as_object().unwrap();
    for class in [
        "missing_in_modern",
        "missing_in_legacy",
        "amount_mismatch",
        "quantity_mismatch",
        "unit_price_mismatch",
        "currency_mismatch",
        "sub_minor_unit",
        "hidden_total_drift",
        "description_changed",
        "big_amount_mismatch",
        "missing_duplicate",
        "credit_mismatch",
        "customer_drift",
    ] {
        assert!(
            injected.get(class).and_then(Value::as_u64).unwrap_or(0) > 0,
            "{class} was not injected"
        );
    }
    let by_class = doc["summary"]["by_class"].as_object().unwrap();
    for class in [
        "missing_in_modern",
        "missing_in_legacy",
        "amount_mismatch",
        "quantity_mismatch",
        "unit_price_mismatch",
        "currency_mismatch",
        "total_mismatch",
        "sub_minor_unit",
        "description_changed",
    ] {
        assert!(
            by_class.get(class).and_then(Value::as_u64).unwrap_or(0) > 0,
            "{class} not reported"
        );
    }
    assert!(
        doc["summary"]["currencies"]["JPY"].is_object()
            && doc["summary"]["currencies"]["BHD"].is_object()
    );
    assert!(doc["summary"]["customers_mismatched"].as_u64().unwrap() > 0);
}

#[test]
fn generated_pair_has_precision_and_recall_of_exactly_one() {
    check_generated_pair("2000", "12", "7");
}

#[test]
fn generated_pair_with_other_seed_and_shape_has_precision_and_recall_of_exactly_one() {
    check_generated_pair("2500", "5", "2026");
}

/// `generate pair` makes large pairs 15,000 accounts at a time (bounded memory): a pair of
/// three such windows, the last one partial, still has exactly its answers.
#[test]
fn generated_pair_made_in_several_windows_has_precision_and_recall_of_exactly_one() {
    check_generated_pair("31000", "1", "11");
}

#[test]
fn five_hundred_sub_cent_drifts_make_a_total_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let mut legacy = format!("{HEADER}\n");
    let mut modern = format!("{HEADER}\n");
    for i in 0..500 {
        legacy.push_str(&row("acct-1", &format!("sku.{i:03}"), "1.000", "USD"));
        legacy.push('\n');
        modern.push_str(&row("acct-1", &format!("sku.{i:03}"), "1.004", "USD"));
        modern.push('\n');
    }
    write(dir.path(), "legacy.csv", legacy);
    write(dir.path(), "modern.csv", modern);
    let (code, doc) = diff_json(dir.path(), "legacy.csv", "modern.csv", &[]);
    assert_eq!(code, 1);
    let s = &doc["summary"];
    assert_eq!(
        s["by_class"],
        serde_json::json!({"sub_minor_unit": 500, "total_mismatch": 1})
    );
    assert_eq!(s["lines_matched"], 500);
    assert_eq!(s["lines_mismatched"], 0);
    let total = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["class"] == "total_mismatch")
        .unwrap();
    assert_eq!(total["delta"], "2.00");
    assert_eq!(total["scope"], "bill");
    assert_eq!(total["legacy"]["amount"], "500.00");
    assert_eq!(total["modern"]["amount"], "502.00");
}

#[test]
fn amounts_beyond_float_precision_differ_by_one_cent() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "l.csv",
        format!(
            "{HEADER}\n{}\n",
            row("a", "big", "123456789012345.67", "USD")
        ),
    );
    write(
        dir.path(),
        "m.csv",
        format!(
            "{HEADER}\n{}\n",
            row("a", "big", "123456789012345.68", "USD")
        ),
    );
    let (code, doc) = diff_json(dir.path(), "l.csv", "m.csv", &[]);
    assert_eq!(code, 1);
    let classes: Vec<&str> = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["amount_mismatch", "total_mismatch"]);
    assert_eq!(doc["diffs"][0]["delta"], "0.01");
}

/// A bad input: the file's content, and what the message must contain.
fn check_bad_input(name: &str, contents: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "good.csv",
        format!("{HEADER}\n{}\n", row("a", "x", "1.00", "USD")),
    );
    write(dir.path(), "legacy.csv", contents);
    let run = billshadow(
        &["diff", "--legacy", "legacy.csv", "--modern", "good.csv"],
        dir.path(),
    );
    assert_eq!(run.code, 2, "{name}: {}", run.transcript());
    assert!(
        run.stderr.contains(expected),
        "{name}: expected {expected:?} in:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{name}: no verdict may be printed:\n{}",
        run.stdout
    );
}

#[test]
fn bad_inputs_exit_2_and_name_file_line_and_column() {
    let good = row("a", "x", "1.00", "USD");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown currency",
            format!("{HEADER}\n{good}\n{}\n", row("a", "y", "1.00", "XYZ")).into(),
            "legacy.csv, line 3, column 9 (`currency`): `XYZ` is not an ISO 4217 currency code",
        ),
        (
            "non-numeric amount",
            format!("{HEADER}\n{}\n", row("a", "x", "12.5O", "USD")).into(),
            "legacy.csv, line 2, column 8 (`amount`): `12.5O` is not a decimal number",
        ),
        (
            "empty amount",
            format!("{HEADER}\n{}\n", row("a", "x", "", "USD")).into(),
            "legacy.csv, line 2, column 8 (`amount`): empty value; expected an amount",
        ),
        (
            "accounting negative",
            format!("{HEADER}\n{}\n", row("a", "x", "(1.50)", "USD")).into(),
            "line 2, column 8 (`amount`): `(1.50)` is an accounting negative",
        ),
        (
            "missing column",
            b"account_id,period_start,period_end,charge_code,amount\na,2026-10-01,2026-10-31,x,1\n"
                .to_vec(),
            "required column `currency` (for the canonical field `currency`) is missing from the header of this `canonical` file",
        ),
        (
            "wrong field count",
            format!("{HEADER}\n{good}\na,2026-10-01,2026-10-31,x\n").into(),
            "legacy.csv, line 3: the row has 4 fields; expected 9",
        ),
        (
            "empty file",
            Vec::new(),
            "legacy.csv: the file is empty; expected a header row",
        ),
        (
            "huge field",
            format!(
                "{HEADER}\n{}\n",
                row("a", &"x".repeat(10 << 20), "1.00", "USD")
            )
            .into(),
            "legacy.csv, line 2, column 4 (`charge_code`): the field is longer than 65536 bytes (the limit); refused while reading",
        ),
        (
            "invalid UTF-8",
            [
                format!("{HEADER}\n").into_bytes(),
                b"a\xff\xfe,2026-10-01,2026-10-31,x,usage,,,1.00,USD\n".to_vec(),
            ]
            .concat(),
            "legacy.csv, line 2, column 1 (`account_id`): invalid UTF-8 at byte 2",
        ),
        (
            "bad date",
            format!("{HEADER}\na,2026-13-01,2026-10-31,x,usage,,,1.00,USD\n").into(),
            "legacy.csv, line 2, column 2 (`period_start`): `2026-13-01` is not a date; expected YYYY-MM-DD",
        ),
        (
            "bad quantity",
            format!("{HEADER}\na,2026-10-01,2026-10-31,x,usage,1_000,,1.00,USD\n").into(),
            "line 2, column 6 (`quantity`): `1_000` is not a decimal number",
        ),
        (
            "bad line type",
            format!("{HEADER}\na,2026-10-01,2026-10-31,x,Usage,,,1.00,USD\n").into(),
            "line 2, column 5 (`line_type`): `Usage` is not a line type",
        ),
        (
            "duplicate column",
            format!("{HEADER},amount\n").into(),
            "legacy.csv, line 1, column 10: the column `amount` appears twice in the header (first at column 8)",
        ),
    ];
    for (name, contents, expected) in cases {
        check_bad_input(name, &contents, expected);
    }
}

/// Issue 11, item 4: control characters from data (an OSC hyperlink, a CSI that clears the
/// screen, the one-byte C1 CSI) are written as visible escapes by the text report, never raw.
#[test]
fn control_characters_from_data_are_escaped_in_text_output() {
    let dir = tempfile::tempdir().unwrap();
    let charge = "x\u{1b}]8;;http://evil\u{7}click\u{1b}]8;;\u{7}\u{1b}[2J\u{9b}31m";
    write(
        dir.path(),
        "legacy.csv",
        format!("{HEADER}\n{}\n", row("a\u{1b}[1A", charge, "1.00", "USD")),
    );
    write(
        dir.path(),
        "modern.csv",
        format!("{HEADER}\n{}\n", row("a\u{1b}[1A", charge, "2.00", "USD")),
    );
    let run = billshadow(
        &["diff", "--legacy", "legacy.csv", "--modern", "modern.csv"],
        dir.path(),
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(!run.stdout.contains('\u{1b}'), "raw ESC: {:?}", run.stdout);
    assert!(
        !run.stdout.contains('\u{9b}'),
        "raw C1 CSI: {:?}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{7}'), "raw BEL: {:?}", run.stdout);
    assert!(
        run.stdout.contains("x\\u{1b}]8;;http://evil\\u{7}click"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("a\\u{1b}[1A"), "{}", run.stdout);
    // JSON keeps the values exact.
    let (_, doc) = diff_json(dir.path(), "legacy.csv", "modern.csv", &[]);
    assert_eq!(doc["diffs"][0]["charge_code"], charge);
}

#[test]
fn bom_and_crlf_are_read_like_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let plain = format!(
        "{HEADER}\n{}\n{}\n",
        row("a", "x", "1.00", "USD"),
        row("b", "y", "2.50", "EUR")
    );
    write(dir.path(), "plain.csv", &plain);
    write(
        dir.path(),
        "bom.csv",
        [
            b"\xef\xbb\xbf".to_vec(),
            plain.replace('\n', "\r\n").into_bytes(),
        ]
        .concat(),
    );
    let (code, doc) = diff_json(dir.path(), "plain.csv", "bom.csv", &[]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["lines_matched"], 2);
    assert_eq!(doc["diffs"], Value::Array(vec![]));
}

#[test]
fn bad_rows_within_the_allowance_are_quarantined_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let good = row("a", "x", "1.00", "USD");
    write(dir.path(), "modern.csv", format!("{HEADER}\n{good}\n"));
    write(
        dir.path(),
        "legacy.csv",
        format!(
            "{HEADER}\n{good}\n{}\n{}\n",
            row("b", "x", "oops", "USD"),
            row("c", "x", "1", "???")
        ),
    );

    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--max-bad-rows",
            "5",
        ],
        dir.path(),
    );
    // Rows left out: never a pass.
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stdout.contains("INCOMPLETE"), "{}", run.stdout);
    assert!(run.stdout.contains("incomplete: 2 legacy and 0 modern rows were quarantined (see billshadow-quarantine.jsonl)"), "{}", run.stdout);
    let quarantine =
        std::fs::read_to_string(dir.path().join("billshadow-quarantine.jsonl")).unwrap();
    let rows: Vec<Value> = quarantine
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["line"], 3);
    assert_eq!(rows[0]["column_name"], "amount");
    assert_eq!(rows[1]["column_name"], "currency");

    let (_, doc) = diff_json(
        dir.path(),
        "legacy.csv",
        "modern.csv",
        &["--max-bad-rows", "5"],
    );
    assert_eq!(doc["inputs"]["legacy"]["bad_rows"], 2);
    assert_eq!(doc["inputs"]["legacy"]["lines"], 1);

    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--max-bad-rows",
            "1",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("more than 1 bad rows"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 3, column 8 (`amount`)"),
        "{}",
        run.stderr
    );
}

#[test]
fn spec_errors_exit_2_and_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "spec.toml",
        "[match]\nkey = [\"account_id\"]\n\n[tolerances]\ndefault = \"0.01\"\n",
    );
    let run = billshadow(&["check-spec", "spec.toml"], dir.path());
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("spec.toml:4:2: unknown field `tolerances`"),
        "{}",
        run.stderr
    );

    write(
        dir.path(),
        "l.csv",
        format!("{HEADER}\n{}\n", row("a", "x", "1", "USD")),
    );
    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "l.csv",
            "--modern",
            "l.csv",
            "--spec",
            "spec.toml",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("spec.toml:4:2"), "{}", run.stderr);

    let run = billshadow(&["check-spec", "examples/spec.toml"], &repo());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("waivers     2 (0 expired)"),
        "{}",
        run.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let run = billshadow(&["diff", "--modern", "examples/modern.csv"], &repo());
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no legacy file: pass --legacy PATH"),
        "{}",
        run.stderr
    );
    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "nope.csv",
            "--modern",
            "examples/modern.csv",
        ],
        &repo(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("nope.csv: does not exist"),
        "{}",
        run.stderr
    );
    let run = billshadow(&["diff", "--bogus"], &repo());
    assert_eq!(run.code, 2);
    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "examples/legacy.csv",
            "--modern",
            "examples/modern.csv",
            "--legacy-format",
            "nonesuch",
        ],
        &repo(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`nonesuch` is neither a catalog format (canonical"),
        "{}",
        run.stderr
    );
}

#[test]
fn expired_waivers_waive_nothing_and_are_reported() {
    let run = billshadow(
        &[
            "diff",
            "--spec",
            "examples/spec.toml",
            "--as-of",
            "2100-01-01",
        ],
        &repo(),
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("waiver W-101 expired on 2099-12-31"),
        "{}",
        run.stdout
    );
    let run = billshadow(
        &[
            "diff",
            "--spec",
            "examples/spec.toml",
            "--as-of",
            "2099-12-31",
        ],
        &repo(),
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn jsonl_streams_one_diff_per_line_then_the_summary() {
    let run = billshadow(
        &["diff", "--spec", "examples/spec.toml", "--format", "jsonl"],
        &repo(),
    );
    assert_eq!(run.code, 0);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The diffs, each naming its signature, then the signatures, then the summary.
    assert!(lines[..4].iter().all(|l| l["record"] == "diff"));
    let signatures: Vec<&Value> = lines[4..]
        .iter()
        .filter(|l| l["record"] == "signature")
        .collect();
    assert_eq!(lines.len(), 5 + signatures.len());
    assert!(!signatures.is_empty());
    for diff in &lines[..4] {
        assert!(
            signatures.iter().any(|s| s["id"] == diff["signature"]),
            "{diff}"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["record"], "summary");
    assert_eq!(last["schema"], "billshadow.diff/v2");
}

#[test]
fn out_writes_the_report_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let run = billshadow(
        &[
            "diff",
            "--spec",
            "examples/spec.toml",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(run.code, 0);
    assert!(run.stdout.is_empty());
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["summary"]["verdict"], "parity");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn text_report_snapshot() {
    let run = billshadow(&["diff", "--spec", "examples/spec.toml"], &repo());
    insta::assert_snapshot!(run.transcript());
}

#[test]
fn text_report_of_mismatches_snapshot() {
    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "examples/legacy.csv",
            "--modern",
            "examples/modern.csv",
        ],
        &repo(),
    );
    insta::assert_snapshot!(run.transcript());
}

#[test]
fn json_report_snapshot() {
    let run = billshadow(
        &["diff", "--spec", "examples/spec.toml", "--format", "json"],
        &repo(),
    );
    assert_eq!(run.code, 0);
    insta::assert_snapshot!(run.stdout);
}

/// Golden cases: `tests/cases/<name>/{legacy.csv, modern.csv, spec.toml, expected.json}`.
/// `expected.json` holds the exit code, the summary and the diffs; set
/// `BILLSHADOW_BLESS=1` to rewrite them after a deliberate change.
#[test]
fn golden_cases() {
    let cases = golden_case_diffs();
    assert!(cases.len() >= 5);
    for (case, args) in cases {
        let run = billshadow(&args, &case);
        assert!(
            run.code == 0 || run.code == 1,
            "{}: {}",
            case.display(),
            run.transcript()
        );
        let doc = run.json();
        // Naming the sides the other way round never changes the verdict or the exit code.
        let swapped: Vec<&str> = args
            .iter()
            .map(|a| match *a {
                "legacy.csv" => "modern.csv",
                "modern.csv" => "legacy.csv",
                other => other,
            })
            .collect();
        let back = billshadow(&swapped, &case);
        assert_eq!(back.code, run.code, "{}: swapped", case.display());
        assert_eq!(
            back.json()["summary"]["verdict"],
            doc["summary"]["verdict"],
            "{}: swapped",
            case.display()
        );
        let actual =
            serde_json::json!({"exit": run.code, "summary": doc["summary"], "diffs": doc["diffs"]});
        let expected_path = case.join("expected.json");
        if std::env::var_os("BILLSHADOW_BLESS").is_some() {
            std::fs::write(
                &expected_path,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value =
            serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
        assert_eq!(
            actual,
            expected,
            "golden case {} changed (BILLSHADOW_BLESS=1 to accept)",
            case.display()
        );
    }
}

#[test]
fn quarantined_money_makes_the_verdict_incomplete_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let good = row("a", "x", "1.00", "USD");
    write(dir.path(), "modern.csv", format!("{HEADER}\n{good}\n"));
    // A 1,000.00 line whose period is unreadable, and a quoted field with the delimiter in it.
    let bad = "b,2026-13-01,2026-10-31,\"big, one\",usage,,,1000.00,USD";
    write(
        dir.path(),
        "legacy.csv",
        format!("{HEADER}\n{good}\n{bad}\n"),
    );
    let args = ["--max-bad-rows", "5"];
    let (code, doc) = diff_json(dir.path(), "legacy.csv", "modern.csv", &args);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["summary"]["verdict"], "incomplete");
    assert_eq!(doc["summary"]["rows_quarantined"], 1);
    assert_eq!(doc["summary"]["quarantined_money"]["USD"], "1000.00");

    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--format",
            "jsonl",
            "--max-bad-rows",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"]["verdict"], "incomplete");
    assert_eq!(last["summary"]["quarantined_money"]["USD"], "1000.00");

    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--max-bad-rows",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stdout.contains("INCOMPLETE"), "{}", run.stdout);
    assert!(!run.stdout.contains("PARITY"), "{}", run.stdout);
    assert!(run.stdout.contains("1000.00 USD"), "{}", run.stdout);

    // Markdown and JUnit: incomplete, never exit 0, the count and the money shown.
    for format in ["md", "junit"] {
        let run = billshadow(
            &[
                "diff",
                "--legacy",
                "legacy.csv",
                "--modern",
                "modern.csv",
                "--format",
                format,
                "--max-bad-rows",
                "5",
            ],
            dir.path(),
        );
        assert_eq!(run.code, 2, "{format}: {}", run.transcript());
        assert!(!run.stdout.contains("PARITY"), "{format}: {}", run.stdout);
        assert!(
            run.stdout.contains("1000.00 USD"),
            "{format}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("1 rows"), "{format}: {}", run.stdout);
    }
    let md = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--format",
            "md",
            "--max-bad-rows",
            "5",
        ],
        dir.path(),
    );
    assert!(md.stdout.contains("INCOMPLETE"), "{}", md.stdout);
    let junit = billshadow(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--format",
            "junit",
            "--max-bad-rows",
            "5",
        ],
        dir.path(),
    );
    let xml = roxmltree::Document::parse(&junit.stdout).unwrap();
    let failures: u64 = xml
        .root_element()
        .attribute("failures")
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 1, "{}", junit.stdout);

    // The quarantine keeps the row as it was read, delimiters and quotes included.
    let quarantine =
        std::fs::read_to_string(dir.path().join("billshadow-quarantine.jsonl")).unwrap();
    let record: Value = serde_json::from_str(quarantine.lines().next().unwrap()).unwrap();
    assert_eq!(record["record"], bad);

    // Swapped, the same verdict and exit code.
    let (code, doc) = diff_json(dir.path(), "modern.csv", "legacy.csv", &args);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["summary"]["verdict"], "incomplete");
}

#[test]
fn formats_with_different_default_keys_need_one_match_key() {
    let dir = tempfile::tempdir().unwrap();
    // A mapping of the canonical columns whose default key leaves out the charge code.
    let canonical =
        std::fs::read_to_string(repo().join("adapters/catalog/canonical.toml")).unwrap();
    let coarse = canonical.replacen(
        "name = \"canonical\"",
        "name = \"coarse\"\nmatch_key = [\"account_id\", \"period\"]",
        1,
    );
    write(dir.path(), "coarse.toml", coarse);
    write(
        dir.path(),
        "legacy.csv",
        format!("{HEADER}\n{}\n", row("a", "x", "1.00", "USD")),
    );
    write(
        dir.path(),
        "modern.csv",
        format!("{HEADER}\n{}\n", row("a", "y", "1.00", "USD")),
    );
    for (l, lf, m, mf) in [
        ("legacy.csv", "canonical", "modern.csv", "coarse.toml"),
        ("modern.csv", "coarse.toml", "legacy.csv", "canonical"),
    ] {
        let run = billshadow(
            &[
                "diff",
                "--legacy",
                l,
                "--legacy-format",
                lf,
                "--modern",
                m,
                "--modern-format",
                mf,
            ],
            dir.path(),
        );
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(run.stderr.contains("[match]"), "{}", run.stderr);
    }
    // With one key named, both directions give one verdict.
    write(
        dir.path(),
        "spec.toml",
        "[match]\nkey = [\"account_id\", \"period\"]\n",
    );
    let mut codes = Vec::new();
    for (l, lf, m, mf) in [
        ("legacy.csv", "canonical", "modern.csv", "coarse.toml"),
        ("modern.csv", "coarse.toml", "legacy.csv", "canonical"),
    ] {
        let run = billshadow(
            &[
                "diff",
                "--spec",
                "spec.toml",
                "--legacy",
                l,
                "--legacy-format",
                lf,
                "--modern",
                m,
                "--modern-format",
                mf,
            ],
            dir.path(),
        );
        codes.push(run.code);
    }
    assert_eq!(
        codes,
        [0, 0],
        "paired by account and period, the amounts agree"
    );
}

/// A generated line of the swap property: (account, charge code, amount in cents, currency,
/// quantity, customer, region, line type); 0 is "none" for the customer and the region.
type GenLine = (u8, u8, i64, u8, Option<u8>, u8, u8, u8);

fn gen_lines() -> impl proptest::strategy::Strategy<Value = Vec<GenLine>> {
    use proptest::prelude::*;
    // Few keys and few amounts: duplicate keys with ties are the rule, not the exception.
    let line = (
        0u8..3,
        0u8..2,
        prop::sample::select(vec![100i64, 250, 1000, -100, 101]),
        0u8..2,
        prop::option::of(0u8..3),
        0u8..3,
        0u8..2,
        0u8..2,
    );
    prop::collection::vec(line, 0..12)
}

const SWAP_HEADER: &str = "account_id,customer_id,period_start,period_end,charge_code,line_type,region,quantity,unit_price,amount,currency";

fn swap_csv(lines: &[GenLine], bad_row: bool) -> String {
    let mut out = format!("{SWAP_HEADER}\n");
    for &(account, charge, cents, currency, quantity, customer, region, line_type) in lines {
        let (amount, currency) = match currency {
            0 => (Decimal::new(cents, 2).to_string(), "USD"),
            _ => (cents.to_string(), "JPY"),
        };
        let customer = match customer {
            0 => String::new(),
            c => format!("C{c}"),
        };
        let region = ["", "eu-west-1"][region as usize];
        let line_type = ["usage", "recurring"][line_type as usize];
        let quantity = quantity.map(|q| q.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "a{account},{customer},2026-10-01,2026-10-31,sku-{charge},{line_type},{region},{quantity},,{amount},{currency}\n"
        ));
    }
    if bad_row {
        out.push_str("a9,,2026-13-01,2026-10-31,sku-0,usage,,,,5.00,USD\n");
    }
    out
}

/// A diff of the JSON report as the other direction reports it (missing classes flipped,
/// sides, line numbers swapped, delta negated), or as it is; without its signature id and
/// free text, which name the sides.
fn swap_view(d: &Value, flip: bool) -> String {
    let mut d = d.clone();
    let o = d.as_object_mut().unwrap();
    o.remove("signature");
    o.remove("detail");
    let delta = o.get("delta").and_then(Value::as_str).map(|x| {
        let x: Decimal = x.parse().unwrap();
        match (x.is_zero(), flip) {
            (true, _) => "0".to_owned(),
            (false, true) => (-x).normalize().to_string(),
            (false, false) => x.normalize().to_string(),
        }
    });
    if let Some(delta) = delta {
        o.insert("delta".into(), Value::String(delta));
    }
    if flip {
        let class = match o["class"].as_str().unwrap() {
            "missing_in_modern" => "missing_in_legacy",
            "missing_in_legacy" => "missing_in_modern",
            other => other,
        }
        .to_owned();
        o.insert("class".into(), Value::String(class));
        for (a, b) in [("legacy", "modern"), ("legacy_line", "modern_line")] {
            let (x, y) = (o.remove(a), o.remove(b));
            if let Some(y) = y {
                o.insert(a.into(), y);
            }
            if let Some(x) = x {
                o.insert(b.into(), x);
            }
        }
    }
    d.to_string()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Issue 9, done when: swapping legacy and modern flips every missing class, negates
    /// every delta and total, and never changes the verdict or the exit code — the real
    /// binary on real files, with duplicate keys and ties, customers that move, appear on
    /// one side only or differ per line, two formats whose default keys differ (with and
    /// without a `[match]` naming one key), and rows quarantined on either side.
    #[test]
    fn swapping_sides_never_changes_the_verdict_or_the_exit_code(
        legacy in gen_lines(),
        modern in gen_lines(),
        formats in 0usize..3,
        key in 0usize..5,
        bad in 0u8..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let canonical =
            std::fs::read_to_string(repo().join("adapters/catalog/canonical.toml")).unwrap();
        write(d, "coarse.toml", canonical.replacen(
            "name = \"canonical\"",
            "name = \"coarse\"\nmatch_key = [\"account_id\", \"period\", \"charge_code\"]",
            1,
        ));
        write(d, "legacy.csv", swap_csv(&legacy, bad == 1));
        write(d, "modern.csv", swap_csv(&modern, bad == 2));
        let keys = [
            "\"account_id\", \"period\", \"charge_code\", \"line_type\", \"usage_period\", \"region\"",
            "\"account_id\", \"period\", \"charge_code\"",
            "\"account_id\", \"period\"",
            "\"account_id\", \"period\", \"charge_code\", \"currency\"",
        ];
        let mut spec = String::new();
        if let Some(k) = keys.get(key) {
            spec = format!("[match]\nkey = [{k}]\n");
        }
        write(d, "spec.toml", spec);
        let (lf, mf) = [("canonical", "canonical"), ("canonical", "coarse.toml"), ("coarse.toml", "canonical")][formats];
        let run = |l: &str, lf: &str, m: &str, mf: &str| billshadow(
            &["diff", "--spec", "spec.toml", "--legacy", l, "--legacy-format", lf, "--modern", m,
              "--modern-format", mf, "--format", "json", "--max-bad-rows", "5", "--quarantine", "q.jsonl"],
            d,
        );
        let forward = run("legacy.csv", lf, "modern.csv", mf);
        let backward = run("modern.csv", mf, "legacy.csv", lf);
        proptest::prop_assert_eq!(forward.code, backward.code, "{}\n{}", forward.transcript(), backward.transcript());
        proptest::prop_assert!(matches!(forward.code, 0..=2), "{}", forward.transcript());
        if forward.stdout.is_empty() || backward.stdout.is_empty() {
            // Refused before comparing (the formats' keys differ and no `[match]` names
            // one): refused both ways.
            proptest::prop_assert_eq!(forward.code, 2);
            proptest::prop_assert!(forward.stdout.is_empty() && backward.stdout.is_empty());
            proptest::prop_assert!(forward.stderr.contains("[match]") && backward.stderr.contains("[match]"), "{}", forward.stderr);
            return Ok(());
        }
        let (f, b) = (forward.json(), backward.json());
        let (fs, bs) = (&f["summary"], &b["summary"]);
        proptest::prop_assert_eq!(&fs["verdict"], &bs["verdict"]);
        for count in ["accounts_compared", "accounts_mismatched", "diffs_failing", "customers_compared",
                      "customers_mismatched", "lines_matched", "rows_quarantined", "quarantined_money"] {
            proptest::prop_assert_eq!(&fs[count], &bs[count], "{}", count);
        }
        let mut fd: Vec<String> = f["diffs"].as_array().unwrap().iter().map(|x| swap_view(x, false)).collect();
        let mut bd: Vec<String> = b["diffs"].as_array().unwrap().iter().map(|x| swap_view(x, true)).collect();
        fd.sort();
        bd.sort();
        proptest::prop_assert_eq!(fd, bd);
        let currencies = fs["currencies"].as_object().unwrap();
        proptest::prop_assert_eq!(currencies.len(), bs["currencies"].as_object().unwrap().len());
        for (currency, t) in currencies {
            let other = &bs["currencies"][currency];
            proptest::prop_assert_eq!(&t["legacy_total"], &other["modern_total"]);
            proptest::prop_assert_eq!(&t["modern_total"], &other["legacy_total"]);
            proptest::prop_assert_eq!(&t["delta_abs"], &other["delta_abs"]);
        }
    }
}
