//! The out-of-core diff (`diff --memory-limit`): the same report, byte for byte, as the
//! in-memory diff, in every format; its temporary files gone after SIGTERM, and after a
//! SIGKILL removed by the next diff.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Run, billshadow, command, golden_case_diffs, repo};

/// A tiny limit: a few hundred lines per read batch, hundreds of partitions, split again.
const TINY: &str = "64KiB";
/// The smallest limit: a line per read batch, so that a case of three lines is partitioned.
const SMALLEST: &str = "1KiB";

fn generate(dir: &Path, accounts: &str) -> PathBuf {
    let out = dir.join(format!("pair-{accounts}"));
    let run = billshadow(
        &[
            "generate",
            "pair",
            "--accounts",
            accounts,
            "--seed",
            "11",
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    out
}

/// The temporary directories of out-of-core diffs under `root`.
fn leftovers(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("billshadow-diff-"))
        .collect();
    names.sort();
    names
}

/// Runs `args` in `dir` in memory and out of core (`limit`, partitions in `temp`).
fn same_both_ways(args: &[&str], dir: &Path, temp: &Path, limit: &str) -> Run {
    same_as_in_memory(args, dir, temp, &["--memory-limit", limit])
}

/// Runs `args` in `dir` in memory, and with `other` (and `--temp-dir temp`): the two
/// stdouts, exit codes and quarantine files must be the same bytes, and no temporary file is
/// left. Returns the in-memory run.
fn same_as_in_memory(args: &[&str], dir: &Path, temp: &Path, other: &[&str]) -> Run {
    // The report names the quarantine file: one name, each run's file kept aside.
    let quarantine = dir.join("quarantine.jsonl");
    let q = quarantine.to_str().unwrap();
    let mut in_memory: Vec<&str> = args.to_vec();
    in_memory.extend(["--quarantine", q]);
    let mem = billshadow(&in_memory, dir);
    let q_mem = std::fs::read(&quarantine).ok();
    let _ = std::fs::remove_file(&quarantine);
    let mut out_of_core: Vec<&str> = in_memory.clone();
    let temp = temp.to_str().unwrap();
    out_of_core.extend(other);
    out_of_core.extend(["--temp-dir", temp]);
    let ooc = billshadow(&out_of_core, dir);
    let q_ooc = std::fs::read(&quarantine).ok();
    let _ = std::fs::remove_file(&quarantine);
    // Declared ordered, or found ordered (merged), else partitioned.
    let merged = other.contains(&"--sorted-by-account")
        || ooc
            .stderr
            .contains("both inputs came ordered by account: merged in one pass");
    assert!(
        merged || ooc.stderr.contains("partitions under"),
        "not out of core: {}",
        ooc.transcript()
    );
    assert_eq!(
        mem.code,
        ooc.code,
        "{}\n{}",
        mem.transcript(),
        ooc.transcript()
    );
    assert!(mem.stdout == ooc.stdout, "{args:?}: the reports differ");
    assert!(q_mem == q_ooc, "the quarantine files differ");
    assert_eq!(leftovers(Path::new(temp)), Vec::<String>::new());
    mem
}

/// A generated pair with every diff class, a waiver, customer totals and bad rows (their
/// file and line in the quarantine): every output format the same both ways.
/// A generated pair with two bad rows and a spec with a waiver.
fn pair_with_bad_rows_and_a_waiver(dir: &Path) -> PathBuf {
    let pair = generate(dir, "1500");
    // Two malformed rows mid-file, one per side, quarantined with their lines.
    for (side, at) in [("legacy.csv", 700), ("modern.csv", 9000)] {
        let path = pair.join(side);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(at, "acct-bad,2026-10-01,not-a-date,x");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    std::fs::write(
        pair.join("spec.toml"),
        r#"
[[waiver]]
id = "W-1"
class = "amount_mismatch"
account_id = "acct-0001*"
reason = "a known drift"
ticket = "T-1"
owner = "billing@example.com"
expires = "2099-12-31"
"#,
    )
    .unwrap();
    pair
}

const PAIR_ARGS: [&str; 15] = [
    "diff",
    "--legacy",
    "legacy.csv",
    "--modern",
    "modern.csv",
    "--spec",
    "spec.toml",
    "--max-bad-rows",
    "5",
    "--as-of",
    "2026-11-25",
    "--limit",
    "100000",
    "--format",
    "json",
];

#[test]
fn out_of_core_and_in_memory_give_byte_identical_json() {
    let dir = tempfile::tempdir().unwrap();
    let pair = pair_with_bad_rows_and_a_waiver(dir.path());
    let temp = tempfile::tempdir().unwrap();
    let mut classes = None;
    for format in ["json", "jsonl", "text", "md"] {
        let mut args = PAIR_ARGS.to_vec();
        args[14] = format;
        let run = same_both_ways(&args, &pair, temp.path(), TINY);
        if format == "json" {
            // The generator shuffles the modern side: the merge is tried, given up at the
            // first account out of order, and the diff partitioned (checked above).
            let mut ooc = args.clone();
            ooc.extend(["--memory-limit", TINY]);
            let stderr = billshadow(&ooc, &pair).stderr;
            assert!(
                stderr.contains("(modern), line ")
                    && stderr.contains("the inputs are not ordered by account; reading them again")
                    && stderr.contains("partitions under"),
                "{stderr}"
            );
            // The customers' totals outgrew their share (a sixteenth of 64 KiB): each
            // customer judged from files, with the same customers' diffs and counts.
            assert!(
                stderr.contains("the customers' totals take more than 4KiB of --memory-limit"),
                "{stderr}"
            );
            assert!(run.json()["summary"]["customers_compared"].as_u64() == Some(500));
            assert!(run.json()["summary"]["customers_mismatched"].as_u64() > Some(0));
            classes = Some(run.json()["summary"]["by_class"].clone());
            assert_eq!(run.json()["summary"]["rows_quarantined"], 2);
            assert!(run.json()["summary"]["waived"].as_u64() > Some(0));
        }
    }
    // Every class the generator injects was found, so every kind of diff went through.
    let classes = classes.unwrap();
    for class in [
        "amount_mismatch",
        "missing_in_legacy",
        "missing_in_modern",
        "currency_mismatch",
        "quantity_mismatch",
        "description_changed",
        "total_mismatch",
    ] {
        assert!(classes.get(class).is_some(), "{class}: {classes}");
    }
}

/// Both files ordered by account: merged in one pass (`--sorted-by-account`, or detected
/// without it), with a read batch of a few hundred lines, the report is the same; no file is
/// written. A line out of order: the detected merge gives way to a partitioned diff, the
/// declared one stops.
#[test]
fn the_ordered_merge_and_in_memory_give_byte_identical_json() {
    let dir = tempfile::tempdir().unwrap();
    let pair = pair_with_bad_rows_and_a_waiver(dir.path());
    // The generator shuffles the modern side's lines and columns: sorted by account here, each
    // account's lines kept in their order (no field of the pair holds a comma or a newline).
    let path = pair.join("modern.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let column = lines[0].split(',').position(|c| c == "account_id").unwrap();
    lines[1..].sort_by_key(|l| l.split(',').nth(column).unwrap_or_default());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let temp = tempfile::tempdir().unwrap();
    for format in ["json", "text"] {
        let mut args = PAIR_ARGS.to_vec();
        args[14] = format;
        let other = ["--sorted-by-account", "--memory-limit", TINY];
        same_as_in_memory(&args, &pair, temp.path(), &other);
    }
    // Without the option, inputs over the limit that come ordered are merged all the same:
    // the order is detected, no temporary file is made.
    let mut args = PAIR_ARGS.to_vec();
    args[14] = "json";
    let run = same_as_in_memory(&args, &pair, temp.path(), &["--memory-limit", TINY]);
    assert_eq!(run.json()["summary"]["rows_quarantined"], 2);
    let mut with_limit = args.clone();
    with_limit.extend(["--memory-limit", TINY]);
    let stderr = billshadow(&with_limit, &pair).stderr;
    assert!(
        stderr.contains("both inputs came ordered by account: merged in one pass")
            && stderr.contains("the customers' totals take more than")
            && !stderr.contains("partitions under"),
        "{stderr}"
    );
    // One line out of order, late in the file: the detected merge is given up there, and the
    // diff starts again partitioned, with the same report as in memory.
    let path = pair.join("modern.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let early = lines[5].to_owned();
    lines.insert(4000, &early);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    same_as_in_memory(&args, &pair, temp.path(), &["--memory-limit", TINY]);
    let stderr = billshadow(&with_limit, &pair).stderr;
    assert!(
        stderr.contains(
            "modern.csv (modern), line 4001: account `acct-0000000` comes after `acct-0000"
        ) && stderr.contains("the inputs are not ordered by account; reading them again")
            && stderr.contains("partitions under"),
        "{stderr}"
    );
    // A line out of order stops a merge that was promised ordered input: exit 2, where.
    let mut args = with_limit;
    args.extend(["--sorted-by-account"]);
    let run = billshadow(&args, &pair);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("modern.csv (modern), line 4001: account `acct-0000000` comes after"),
        "{}",
        run.stderr
    );
    assert_eq!(leftovers(temp.path()), Vec::<String>::new());
}

/// The diffs the report holds until the end have a limit too: past seven sixteenths of
/// --memory-limit (at least 8 MiB) the diff stops with exit 2 and says how much it found, leaving no
/// temporary file and no report. (The customers' totals go to files past their share.)
#[test]
fn diffs_over_their_share_stop_the_diff_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pair = generate(dir.path(), "1500");
    // A modern export with no line at all: every legacy line is a diff (about 19,000, some
    // 30 MiB by their estimate).
    let legacy = std::fs::read_to_string(pair.join("legacy.csv")).unwrap();
    let header = legacy.lines().next().unwrap();
    std::fs::write(pair.join("empty.csv"), format!("{header}\n")).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let report = pair.join("report.json");
    for ordered in [false, true] {
        let mut args = vec![
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "empty.csv",
            "--format",
            "json",
            "--out",
            report.to_str().unwrap(),
            "--memory-limit",
            SMALLEST,
            "--temp-dir",
            temp.path().to_str().unwrap(),
        ];
        if ordered {
            args.push("--sorted-by-account");
        }
        let run = billshadow(&args, &pair);
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(
            run.stderr.contains("diffs found so far take about")
                && run.stderr.contains(
                    "more than the 8 MiB --memory-limit leaves for the diffs the report holds; raise --memory-limit"
                ),
            "{}",
            run.stderr
        );
        assert!(!report.exists(), "a report was written");
        assert_eq!(leftovers(temp.path()), Vec::<String>::new());
    }
}

/// The golden cases (customers drifting across accounts, duplicate keys, waivers, JPY and
/// BHD) and the real AWS CUR sample against its FOCUS conversion, the same both ways.
#[test]
fn out_of_core_and_in_memory_agree_on_the_cases_and_the_real_formats() {
    let temp = tempfile::tempdir().unwrap();
    for (case, args) in golden_case_diffs() {
        same_both_ways(&args, &case, temp.path(), SMALLEST);
    }
    let run = same_both_ways(
        &[
            "diff",
            "--legacy",
            "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.csv",
            "--legacy-format",
            "aws-cur",
            "--modern",
            "tests/fixtures/real/aws-cur-to-focus/sample-anonymous-aws-export-dataset.focus.csv",
            "--modern-format",
            "focus",
            "--format",
            "json",
        ],
        &repo(),
        temp.path(),
        TINY,
    );
    assert_eq!(run.json()["summary"]["lines_matched"], 1281);
}

/// Starts an out-of-core diff of a pair large enough to take a while under the tiny limit,
/// and waits until its temporary directory exists (it is then writing partitions).
fn start_mid_way(pair: &Path, temp: &Path) -> std::process::Child {
    let mut child = command(
        &[
            "diff",
            "--legacy",
            "legacy.csv",
            "--modern",
            "modern.csv",
            "--format",
            "json",
            "--memory-limit",
            TINY,
            "--temp-dir",
            temp.to_str().unwrap(),
        ],
        pair,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while leftovers(temp).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the diff ended before writing partitions: {status}");
        }
        assert!(Instant::now() < deadline, "no temporary directory appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn sigterm_mid_diff_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let pair = generate(dir.path(), "20000");
    let temp = tempfile::tempdir().unwrap();
    let mut child = start_mid_way(&pair, temp.path());
    // SAFETY: sends SIGTERM to the child this test started and has not yet waited for.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(leftovers(temp.path()), Vec::<String>::new());
}

#[test]
fn sigkill_leftovers_are_cleaned_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let pair = generate(dir.path(), "20000");
    let temp = tempfile::tempdir().unwrap();
    let mut child = start_mid_way(&pair, temp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let left = leftovers(temp.path());
    assert_eq!(left.len(), 1, "{left:?}");
    // A live process's directory is not a leftover: this test's own pid.
    let live = format!("billshadow-diff-{}-1", std::process::id());
    std::fs::create_dir(temp.path().join(&live)).unwrap();

    let run = billshadow(
        &[
            "diff",
            "--legacy",
            "examples/legacy.csv",
            "--modern",
            "examples/modern.csv",
            "--format",
            "json",
            "--temp-dir",
            temp.path().to_str().unwrap(),
        ],
        &repo(),
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("removed 1 temporary directories of killed diffs"),
        "{}",
        run.stderr
    );
    assert_eq!(leftovers(temp.path()), vec![live]);
}
