//! Causes: diff signatures from the real binary, over the demo's shadow run of the sample
//! stacks (four seeded defects) and over `diff` of files.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{billshadow, repo};

/// The demo's four seeded defects (`examples/stacks/modern.rs`) are the run's only four
/// signatures, each with its hypothesis and cells, and together they hold every diff.
#[test]
fn the_demo_defects_are_its_four_causes() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let demo = billshadow(
        &[
            "demo",
            "--accounts",
            "1500",
            "--dir",
            demo_dir.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(demo.code, 0, "{}", demo.transcript());
    assert!(
        demo.stdout.contains("demo: the causes of this run's diffs"),
        "{}",
        demo.stdout
    );
    let store = demo_dir.join("billshadow.db");
    let store = store.to_str().unwrap();
    let causes = billshadow(
        &["causes", "--store", store, "--format", "json"],
        dir.path(),
    );
    assert_eq!(causes.code, 1, "{}", causes.transcript());
    let doc = causes.json();
    assert_eq!(doc["schema"], "billshadow.causes/v1");
    let signatures = doc["signatures"].as_array().unwrap();
    let found: Vec<(&str, &str)> = signatures
        .iter()
        .map(|s| (s["shape"].as_str().unwrap(), s["rule"].as_str().unwrap()))
        .collect();
    let mut expected = vec![
        ("fewer_decimals", "fewer_decimals:modern:2"),
        ("missing", "missing:modern"),
        ("varied", "varied"),
        ("proration", "proration:31:30"),
    ];
    let mut sorted = found.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{doc:#}");
    let by_shape = |shape: &str| signatures.iter().find(|s| s["shape"] == shape).unwrap();
    let hypothesis = |shape: &str| by_shape(shape)["hypothesis"].as_str().unwrap().to_owned();
    let cells = |shape: &str| -> Vec<String> {
        by_shape(shape)["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    // 1. Proration over a 30-day month in p2/eu-west-1.
    assert_eq!(
        hypothesis("proration"),
        "modern prorates recurring lines over 30 days instead of 31 in cell p2/eu-west-1"
    );
    assert_eq!(cells("proration"), ["p2/eu-west-1"]);
    // 2. The dinar rounded to cents in me-south-1.
    assert_eq!(
        hypothesis("fewer_decimals"),
        "modern rounds BHD amounts to 2 decimals instead of 3 in region me-south-1"
    );
    assert!(
        cells("fewer_decimals")
            .iter()
            .all(|c| c.ends_with("/me-south-1"))
    );
    // 3. The WELCOME10 credit never issued in p3.
    assert_eq!(
        hypothesis("missing"),
        "modern does not bill the credit lines promo.welcome10 in partition p3"
    );
    assert!(cells("missing").iter().all(|c| c.starts_with("p3/")));
    // 4. All-units tiers in p1/ap-northeast-1 (JPY).
    assert!(
        hypothesis("varied").starts_with("modern computes JPY usage lines differently"),
        "{}",
        hypothesis("varied")
    );
    assert!(hypothesis("varied").ends_with("in cell p1/ap-northeast-1"));
    // All of the run's diffs are in these four.
    let show = billshadow(&["show", "--store", store, "--format", "json"], dir.path());
    let all_diffs = show.json()["diffs"].as_array().unwrap().len() as u64;
    let in_signatures: u64 = signatures
        .iter()
        .map(|s| s["diffs"].as_u64().unwrap())
        .sum();
    assert_eq!(in_signatures, all_diffs);
    assert_eq!(doc["signatures_left_off"], 0);
    // The text names each cause and how to look at an example.
    let text = billshadow(&["causes", "latest", "--store", store], dir.path());
    assert!(
        text.stdout.contains("Causes (4 signatures, ranked):"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("explain: billshadow explain run-"));
    // The same causes in the next run have the same ids.
    let spec = demo_dir.join("spec.toml");
    let cohort = demo_dir.join("cohort.csv");
    let again = billshadow(
        &[
            "run",
            "--spec",
            spec.to_str().unwrap(),
            "--cohort",
            cohort.to_str().unwrap(),
            "--store",
            store,
            "--no-progress",
        ],
        dir.path(),
    );
    assert_eq!(again.code, 1, "{}", again.transcript());
    let next = billshadow(
        &["causes", "--store", store, "--format", "json"],
        dir.path(),
    )
    .json();
    assert_ne!(next["run_id"], doc["run_id"]);
    let ids = |d: &Value| {
        let mut ids: Vec<String> = d["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&next), ids(&doc));
}

/// `diff --format json` lists the signatures beside the summary, and every diff names one of
/// them; the text starts with them.
#[test]
fn diff_output_leads_with_signatures() {
    let args = [
        "diff",
        "--legacy",
        "examples/legacy.csv",
        "--modern",
        "examples/modern.csv",
    ];
    let json = billshadow(&[&args[..], &["--format", "json"]].concat(), &repo());
    assert_eq!(json.code, 1);
    let doc: Value = json.json();
    assert_eq!(doc["schema"], "billshadow.diff/v1");
    let ids: Vec<&str> = doc["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty());
    let diffs = doc["diffs"].as_array().unwrap();
    assert!(!diffs.is_empty());
    for d in diffs {
        assert!(ids.contains(&d["signature"].as_str().unwrap()), "{d}");
    }
    let text = billshadow(&args, &repo());
    let causes = text.stdout.find("Causes (").unwrap();
    let counts = text.stdout.find("accounts ").unwrap();
    assert!(causes < counts, "{}", text.stdout);
}

/// An exclusive period end against an inclusive one: every line is missing on both sides, and
/// the causes say it once, as one `key_mismatch` of `period_end`, with every diff in it.
#[test]
fn a_period_end_a_day_apart_is_one_key_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let header = "account_id,period_start,period_end,charge_code,line_type,amount,currency\n";
    let (mut legacy, mut modern) = (header.to_owned(), header.to_owned());
    for a in 0..50 {
        for (code, amount) in [("plan.pro", "49.00"), ("egress.gb", "12.50")] {
            legacy += &format!("acct-{a:03},2026-10-01,2026-10-31,{code},usage,{amount},USD\n");
            modern += &format!("acct-{a:03},2026-10-01,2026-11-01,{code},usage,{amount},USD\n");
        }
    }
    let legacy_path = dir.path().join("legacy.csv");
    let modern_path = dir.path().join("modern.csv");
    std::fs::write(&legacy_path, legacy).unwrap();
    std::fs::write(&modern_path, modern).unwrap();
    let run = billshadow(
        &[
            "diff",
            "--legacy",
            legacy_path.to_str().unwrap(),
            "--modern",
            modern_path.to_str().unwrap(),
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let doc = run.json();
    let signatures = doc["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1, "{doc:#}");
    assert_eq!(signatures[0]["rule"], "key_mismatch:period_end:+1 days");
    assert_eq!(signatures[0]["accounts"], 50);
    let diffs = doc["diffs"].as_array().unwrap();
    assert_eq!(signatures[0]["diffs"].as_u64().unwrap(), diffs.len() as u64);
    assert!(diffs.iter().all(|d| d["signature"] == signatures[0]["id"]));
}

/// One line as the defect generator's answer file names it.
type LineId = (String, String, String, Option<String>);

fn line_id(account: &Value, evidence: &Value) -> LineId {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(account),
        text(&evidence["charge_code"]),
        text(&evidence["line_type"]),
        evidence["usage_start"].as_str().map(str::to_owned),
    )
}

/// `generate pair --defects all` injects ten systematic defects into thousands of accounts,
/// with one-off noise on others, and writes what it changed (computed by the generator, not
/// the engine). `diff`, run as a child process, must put at least 95 % of each defect's diffs
/// in one signature, at most 1.2 signatures a defect on average, each named by the defect's
/// rule and value.
fn defects_land_in_their_signatures(seed: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pair");
    let answers_path = dir.path().join("defects.json");
    let generate = billshadow(
        &[
            "generate",
            "pair",
            "--accounts",
            "5000",
            "--seed",
            seed,
            "--defects",
            "all",
            "--inject-percent",
            "6",
            "--answers",
            answers_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(generate.code, 0, "{}", generate.transcript());
    let answers: Value = serde_json::from_slice(&std::fs::read(&answers_path).unwrap()).unwrap();
    assert_eq!(answers["schema"], "billshadow.defects/v1");
    let defects = answers["defects"].as_array().unwrap();
    assert_eq!(defects.len(), 10);
    assert!(answers["noise"].as_array().unwrap().len() > 100);

    let report = dir.path().join("diff.json");
    let diff = billshadow(
        &[
            "diff",
            "--legacy",
            out.join("legacy.csv").to_str().unwrap(),
            "--modern",
            out.join("modern.csv").to_str().unwrap(),
            "--format",
            "json",
            "--out",
            report.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(diff.code, 1, "{}", diff.transcript());
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let signatures: BTreeMap<&str, &Value> = doc["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    // Each line diff by the line it is about (both halves of a renamed line alike).
    let mut by_line: BTreeMap<LineId, Vec<&str>> = BTreeMap::new();
    for d in doc["diffs"].as_array().unwrap() {
        if d["scope"] != "line" {
            continue;
        }
        let evidence = if d["legacy"].is_object() {
            &d["legacy"]
        } else {
            &d["modern"]
        };
        by_line
            .entry(line_id(&d["account_id"], evidence))
            .or_default()
            .push(d["signature"].as_str().unwrap());
    }

    let mut signatures_per_defect = 0usize;
    for defect in defects {
        let kind = defect["kind"].as_str().unwrap();
        let lines = defect["lines"].as_array().unwrap();
        assert!(lines.len() >= 40, "{kind}: only {} lines", lines.len());
        assert!(defect["accounts"].as_u64().unwrap() >= 30, "{kind}");
        let mut held: BTreeMap<&str, usize> = BTreeMap::new();
        let mut diffs = 0usize;
        for line in lines {
            let id = line_id(&line["account_id"], line);
            let found = by_line.get(&id);
            assert!(found.is_some(), "{kind}: no diff for changed line {line}");
            for signature in found.into_iter().flatten() {
                *held.entry(signature).or_default() += 1;
                diffs += 1;
            }
        }
        let (main, in_main) = held
            .iter()
            .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
            .map(|(id, n)| (*id, *n))
            .unwrap();
        assert!(
            in_main * 100 >= diffs * 95,
            "{kind}: {in_main} of {diffs} diffs in its signature; spread over {held:?}"
        );
        signatures_per_defect += held.len();
        let signature = signatures[main];
        let expected = &defect["expected"];
        assert_eq!(
            signature["shape"], expected["shape"],
            "{kind}: {signature:#}"
        );
        assert_eq!(signature["rule"], expected["rule"], "{kind}: {signature:#}");
        let hypothesis = signature["hypothesis"].as_str().unwrap();
        for words in expected["hypothesis_contains"].as_array().unwrap() {
            let words = words.as_str().unwrap();
            assert!(
                hypothesis.contains(words),
                "{kind}: «{hypothesis}» does not say «{words}»"
            );
        }
    }
    assert!(
        signatures_per_defect * 10 <= defects.len() * 12,
        "{signatures_per_defect} signatures for {} defects",
        defects.len()
    );
}

#[test]
fn generated_defects_land_in_their_signatures() {
    defects_land_in_their_signatures("1");
}

#[test]
fn generated_defects_land_in_their_signatures_with_another_seed() {
    defects_land_in_their_signatures("3");
}
