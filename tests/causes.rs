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
    // The causes come first: right after the verdict, before the counts, the cells and the
    // controller.
    let causes_at = demo.stdout.find("Causes (4 signatures, ranked):");
    let causes_at = causes_at.unwrap_or_else(|| panic!("{}", demo.stdout));
    for later in ["  accounts ", "  cell ", "demo: the migration controller"] {
        let at = demo
            .stdout
            .find(later)
            .unwrap_or_else(|| panic!("{later}\n{}", demo.stdout));
        assert!(causes_at < at, "{later}\n{}", demo.stdout);
    }
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
    // Each defect's diffs, found from its definition alone, are exactly its signature's.
    let show = billshadow(&["show", "--store", store, "--format", "json"], dir.path()).json();
    let expected = diffs_by_defect(&show);
    for (shape, defect) in [
        ("proration", 1),
        ("fewer_decimals", 2),
        ("missing", 3),
        ("varied", 4),
    ] {
        let id = by_shape(shape)["id"].as_str().unwrap();
        let found: std::collections::BTreeSet<usize> = (show["diffs"].as_array().unwrap())
            .iter()
            .enumerate()
            .filter(|(_, d)| d["signature"] == id)
            .map(|(i, _)| i)
            .collect();
        let mine = &expected[&defect];
        assert!(!mine.is_empty(), "defect {defect} seeded no diff");
        assert_eq!(&found, mine, "defect {defect} ({shape})");
        assert_eq!(
            by_shape(shape)["diffs"].as_u64().unwrap(),
            mine.len() as u64
        );
        let accounts: std::collections::BTreeSet<&str> = (mine.iter())
            .map(|&i| show["diffs"][i]["account_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            by_shape(shape)["accounts"].as_u64().unwrap(),
            accounts.len() as u64
        );
    }
    // All of the run's diffs are in these four.
    let all_diffs = show["diffs"].as_array().unwrap().len() as u64;
    let in_signatures: u64 = signatures
        .iter()
        .map(|s| s["diffs"].as_u64().unwrap())
        .sum();
    assert_eq!(in_signatures, all_diffs);
    assert_eq!(show["schema"], "billshadow.diff/v2");
    assert_eq!(
        show["signatures"], doc["signatures"],
        "show and causes read the same"
    );
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

/// Each diff of a demo run (`show --format json`) under the seeded defect that explains it,
/// from the defects' definitions in `examples/stacks/modern.rs` alone, never from the
/// engine: 1 proration in p2/eu-west-1, 2 BHD rounded to cents in me-south-1, 3 no WELCOME10
/// credit in p3, 4 all-units tiers in p1/ap-northeast-1. An account of p3/me-south-1 without
/// its credit has two defects: its missing credit is defect 3, and so are its tax line and
/// bill total, which follow the account's largest difference — the credit (a tenth of a plan
/// fee) outweighs any rounding (under 0.005 BHD a line); its other lines are defect 2.
fn diffs_by_defect(
    show: &Value,
) -> std::collections::BTreeMap<u8, std::collections::BTreeSet<usize>> {
    let diffs = show["diffs"].as_array().unwrap();
    let without_credit: std::collections::BTreeSet<&str> = (diffs.iter())
        .filter(|d| d["class"] == "missing_in_modern" && d["charge_code"] == "promo.welcome10")
        .map(|d| d["account_id"].as_str().unwrap())
        .collect();
    // Each account's cell, from whichever of its diffs carries it.
    let mut cells: std::collections::BTreeMap<&str, (Option<&str>, Option<&str>)> =
        Default::default();
    for d in diffs {
        if let (Some(p), Some(r)) = (d["partition"].as_str(), d["region"].as_str()) {
            cells.insert(d["account_id"].as_str().unwrap(), (Some(p), Some(r)));
        }
    }
    let mut out: std::collections::BTreeMap<u8, std::collections::BTreeSet<usize>> =
        (1..=4).map(|n| (n, Default::default())).collect();
    for (i, d) in diffs.iter().enumerate() {
        let account = d["account_id"].as_str().unwrap();
        let (partition, region) = cells[account];
        let knock_on = d["scope"] != "line" || d["key"]["line_type"] == "tax";
        let defect = if d["charge_code"] == "promo.welcome10" && d["class"] == "missing_in_modern" {
            3
        } else if without_credit.contains(account) && (knock_on || region != Some("me-south-1")) {
            assert_eq!(partition, Some("p3"), "{d}");
            3
        } else if region == Some("me-south-1") {
            2
        } else if (partition, region) == (Some("p2"), Some("eu-west-1")) {
            1
        } else if (partition, region) == (Some("p1"), Some("ap-northeast-1")) {
            4
        } else {
            panic!("a diff no seeded defect explains: {d}");
        };
        out.get_mut(&defect).unwrap().insert(i);
    }
    out
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
    assert_eq!(doc["schema"], "billshadow.diff/v2");
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

/// The diffs of a `show --format json` document, and the ids of the diffs' signatures.
fn shown_diffs(doc: &Value) -> Vec<Value> {
    doc["diffs"].as_array().unwrap().clone()
}

/// The id of the signature of `shape` in a `causes --format json` document.
fn signature_id(causes: &Value, shape: &str) -> String {
    let found: Vec<&Value> = (causes["signatures"].as_array().unwrap().iter())
        .filter(|s| s["shape"] == shape)
        .collect();
    assert_eq!(found.len(), 1, "one {shape} signature\n{causes:#}");
    found[0]["id"].as_str().unwrap().to_owned()
}

/// A shadow run of the sample stacks into `store`; `modern_args` are extra flags of the
/// modern service (`"--fix", "3",`), `extra` more spec text (waivers).
fn sample_run(
    d: &std::path::Path,
    store: &str,
    modern_args: &str,
    extra: &str,
) -> crate::support::Run {
    crate::support::write_spec(d, crate::support::free_port(), modern_args, "", extra);
    billshadow(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            store,
            "--no-progress",
        ],
        d,
    )
}

/// Done when (issue 13): two runs with one seeded defect fixed in between (the modern
/// sample's `--fix 3`: the WELCOME10 credit issued in p3 again); `compare` shows that
/// signature gone and its accounts newly at parity. Then waivers by signature: one names the
/// proration cause and covers exactly its diffs; an expired one naming the rounding cause
/// covers nothing.
fn compare_and_waive_by_signature(d: &std::path::Path, store: &str) {
    crate::support::cohort(d, 600);
    let first = sample_run(d, store, "", "");
    assert_eq!(first.code, 1, "{}", first.transcript());
    let causes = billshadow(&["causes", "--store", store, "--format", "json"], d).json();
    let missing = signature_id(&causes, "missing");
    let proration = signature_id(&causes, "proration");
    let rounding = signature_id(&causes, "fewer_decimals");
    let shown_a = billshadow(&["show", "--store", store, "--format", "json"], d).json();
    let diffs_a = shown_diffs(&shown_a);
    // The accounts whose every diff is the missing credit's: fixing it fixes them.
    let mut by_account: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for diff in &diffs_a {
        by_account
            .entry(diff["account_id"].as_str().unwrap())
            .or_default()
            .push(
                diff["signature"]
                    .as_str()
                    .expect("every diff names its signature"),
            );
    }
    let fixed: Vec<&str> = (by_account.iter())
        .filter(|(_, sigs)| sigs.iter().all(|s| *s == missing))
        .map(|(a, _)| *a)
        .collect();
    assert!(fixed.len() >= 3, "{fixed:?}");
    reports_lead_with_the_causes(d, store, &causes);

    let second = sample_run(d, store, "\"--fix\", \"3\",", "");
    assert_eq!(second.code, 1, "{}", second.transcript());
    let compare = billshadow(
        &[
            "compare", "previous", "latest", "--store", store, "--format", "json",
        ],
        d,
    );
    // Exit 1: run B is worse somewhere — the rounding cause grew, since the tax lines and
    // totals of p3/me-south-1 accounts that followed the missing credit now follow it.
    assert_eq!(compare.code, 1, "{}", compare.transcript());
    let change = compare.json();
    assert_eq!(change["schema"], "billshadow.compare/v1");
    assert_eq!(change["run_a"], shown_a["run"]["id"]);
    let of = |id: &str| {
        (change["signatures"].as_array().unwrap().iter())
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {change:#}"))
            .clone()
    };
    assert_eq!(of(&missing)["change"], "gone");
    assert!(of(&missing)["b"].is_null());
    assert_eq!(of(&proration)["change"], "unchanged");
    assert_eq!(change["accounts"]["newly_mismatched"], 0);
    assert_eq!(
        change["accounts"]["newly_at_parity"].as_u64().unwrap(),
        fixed.len() as u64,
        "{change:#}"
    );
    let examples: Vec<&str> = (change["accounts"]["examples"]["newly_at_parity"].as_array())
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(examples, fixed[..fixed.len().min(10)]);
    let text = billshadow(&["compare", "--store", store], d);
    assert!(
        text.stdout.contains(&format!("gone      {missing}")),
        "{}",
        text.stdout
    );
    let md = billshadow(&["compare", "--store", store, "--format", "md"], d);
    assert!(
        md.stdout.contains(&format!("| gone | `{missing}` |")),
        "{}",
        md.stdout
    );
    let same = billshadow(&["compare", "latest", "latest", "--store", store], d);
    assert_eq!(same.code, 2, "{}", same.transcript());

    // Waivers by signature: the proration cause waived (live), the rounding one by an
    // expired waiver (nothing).
    let waivers = format!(
        r#"
[[waiver]]
id = "W-PRORATION"
signature = "{proration}"
reason = "the 30-day month is agreed with finance for this cell"
ticket = "BILL-13"
owner = "ana@example.com"
expires = "2099-12-31"

[[waiver]]
id = "W-OLD"
signature = "{rounding}"
reason = "once accepted"
ticket = "BILL-12"
owner = "ana@example.com"
expires = "2020-01-01"
"#
    );
    let third = sample_run(d, store, "", &waivers);
    assert_eq!(third.code, 1, "{}", third.transcript());
    let shown_c = billshadow(&["show", "--store", store, "--format", "json"], d).json();
    let diffs_c = shown_diffs(&shown_c);
    assert_eq!(diffs_c.len(), diffs_a.len());
    let mut waived = 0;
    for diff in &diffs_c {
        if diff["signature"] == proration.as_str() {
            assert_eq!(diff["waiver"], "W-PRORATION", "{diff}");
            waived += 1;
        } else {
            // Outside the signature nothing is waived: the rounding cause's waiver expired.
            assert!(diff["waiver"].is_null(), "{diff}");
        }
    }
    assert!(waived > 0);
    let summary = &shown_c["summary"];
    assert_eq!(summary["waived"], waived);
    let use_of = |id: &str| {
        (summary["waivers"].as_array().unwrap().iter())
            .find(|w| w["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(use_of("W-PRORATION")["waived"], waived);
    assert_eq!(use_of("W-OLD")["waived"], 0);
    assert_eq!(use_of("W-OLD")["expired"], true);
    let only_proration = (by_account.values())
        .filter(|sigs| sigs.iter().all(|s| *s == proration))
        .count() as u64;
    assert!(only_proration > 0);
    assert_eq!(
        summary["accounts_mismatched"].as_u64().unwrap(),
        shown_a["summary"]["accounts_mismatched"].as_u64().unwrap() - only_proration
    );
    assert_eq!(summary["accounts_waived"].as_u64().unwrap(), only_proration);
    let signatures_c = shown_c["signatures"].as_array().unwrap();
    let proration_c = signatures_c
        .iter()
        .find(|s| s["id"] == proration.as_str())
        .unwrap();
    assert_eq!(proration_c["failing"], 0);
    let rounding_c = signatures_c
        .iter()
        .find(|s| s["id"] == rounding.as_str())
        .unwrap();
    assert_eq!(rounding_c["failing"], rounding_c["diffs"]);
}

/// Every format of `report` leads with the run's causes: HTML and Markdown list them before the
/// cells, JUnit has a `causes` suite before the cells', JSON lines name each diff's signature
/// and carry one record per signature before the summary.
fn reports_lead_with_the_causes(d: &std::path::Path, store: &str, causes: &Value) {
    let report = |format: &str| {
        let run = billshadow(&["report", "--store", store, "--format", format], d);
        assert_eq!(run.code, 1, "{}", run.transcript());
        run.stdout
    };
    let hypotheses: Vec<&str> = (causes["signatures"].as_array().unwrap().iter())
        .map(|s| s["hypothesis"].as_str().unwrap())
        .collect();
    for (format, cells) in [
        ("html", "Parity by partition and region"),
        ("md", "### Parity per cell"),
    ] {
        let text = report(format);
        let causes_at = text
            .find("Causes")
            .unwrap_or_else(|| panic!("{format}: {text}"));
        assert!(causes_at < text.find(cells).unwrap(), "{format}");
        for h in &hypotheses {
            // In HTML as the template engine escapes text.
            let shown = if format == "html" {
                (h.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"))
                .replace('"', "&quot;")
                .replace('\'', "&#x27;")
                .replace('/', "&#x2f;")
            } else {
                (*h).to_owned()
            };
            assert!(text.contains(&shown), "{format} lacks {shown}");
        }
    }
    let junit = report("junit");
    let suite = junit
        .find("<testsuite name=\"causes\"")
        .expect("a causes suite");
    assert!(suite < junit.find("billshadow.cell.").unwrap());
    let lines: Vec<Value> = (report("jsonl").lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = (causes["signatures"].as_array().unwrap().iter())
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let records = |kind: &'static str| lines.iter().filter(move |l| l["record"] == kind);
    assert!(records("diff").all(|l| ids.contains(&l["signature"].as_str().unwrap())));
    let listed: Vec<&str> = records("signature")
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(lines.last().unwrap()["record"], "summary");
}

#[test]
fn compare_shows_a_fixed_defect_gone_and_waivers_name_signatures_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    compare_and_waive_by_signature(dir.path(), "shadow.db");
}

#[test]
fn compare_shows_a_fixed_defect_gone_and_waivers_name_signatures_postgres() {
    let pg = crate::support::postgres::Postgres::start();
    pg.create_database("causes");
    let dir = tempfile::tempdir().unwrap();
    compare_and_waive_by_signature(dir.path(), &pg.url("causes"));
}

/// `diff` with a waiver naming one signature: exactly that signature's diffs are waived, the
/// summary counts them, and every other diff still fails; the same waiver expired waives
/// nothing.
#[test]
fn a_waiver_by_signature_covers_its_diffs_in_diff_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // Two causes: a fee one unit higher on every account, and a support line missing on every
    // third account.
    let header = "account_id,period_start,period_end,charge_code,line_type,amount,currency\n";
    let (mut l, mut m) = (header.to_owned(), header.to_owned());
    for a in 0..30 {
        let line = |code: &str, amount: &str| {
            format!("acct-{a:03},2026-10-01,2026-10-31,{code},recurring,{amount},USD\n")
        };
        l += &line("fee.platform", "10.00");
        m += &line("fee.platform", "11.00");
        l += &line("support.plan", "5.00");
        if a % 3 != 0 {
            m += &line("support.plan", "5.00");
        }
    }
    let legacy = dir.path().join("legacy.csv");
    let modern = dir.path().join("modern.csv");
    std::fs::write(&legacy, l).unwrap();
    std::fs::write(&modern, m).unwrap();
    let diff = |spec: Option<&str>| {
        let mut args = vec![
            "diff",
            "--legacy",
            legacy.to_str().unwrap(),
            "--modern",
            modern.to_str().unwrap(),
            "--format",
            "json",
        ];
        if let Some(spec) = spec {
            std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
            args.extend(["--spec", "spec.toml"]);
        }
        billshadow(&args, dir.path())
    };
    let plain = diff(None).json();
    let signatures = plain["signatures"].as_array().unwrap();
    assert!(signatures.len() >= 2, "{plain:#}");
    let chosen = (signatures.iter())
        .find(|s| s["shape"] == "missing")
        .unwrap_or_else(|| panic!("{plain:#}"));
    let id = chosen["id"].as_str().unwrap();
    let waiver = |expires: &str| {
        format!(
            "[[waiver]]\nid = \"W-SIG\"\nsignature = \"{id}\"\nreason = \"known\"\nticket = \"BILL-1\"\nowner = \"ana@example.com\"\nexpires = \"{expires}\"\n"
        )
    };
    let waived = diff(Some(&waiver("2099-12-31")));
    assert_eq!(
        waived.code,
        1,
        "other causes still fail\n{}",
        waived.transcript()
    );
    let doc = waived.json();
    let mut covered = 0u64;
    for d in doc["diffs"].as_array().unwrap() {
        let failing_class = !["sub_minor_unit", "within_tolerance", "description_changed"]
            .contains(&d["class"].as_str().unwrap());
        if d["signature"] == id && failing_class {
            assert_eq!(d["waiver"], "W-SIG", "{d}");
            covered += 1;
        } else {
            assert!(d["waiver"].is_null(), "{d}");
        }
    }
    assert_eq!(covered, chosen["failing"].as_u64().unwrap());
    let summary = &doc["summary"];
    assert_eq!(summary["waived"], covered);
    assert_eq!(
        summary["diffs_failing"].as_u64().unwrap(),
        plain["summary"]["diffs_failing"].as_u64().unwrap() - covered
    );
    assert_eq!(summary["waivers"][0]["waived"], covered);
    let after = doc["signatures"].as_array().unwrap();
    assert_eq!(after.iter().find(|s| s["id"] == id).unwrap()["failing"], 0);
    // Expired: nothing waived, its matches counted, the verdict as without it.
    let expired = diff(Some(&waiver("2020-01-01"))).json();
    assert_eq!(expired["summary"]["waived"], 0);
    assert_eq!(
        expired["summary"]["diffs_failing"],
        plain["summary"]["diffs_failing"]
    );
    assert_eq!(
        expired["summary"]["waivers"][0]["matched_while_expired"],
        covered
    );
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
