//! The bad-input corpus: every kind of bad file, cohort, spec, format mapping and policy that
//! `diff`, `run` and `migrate` meet. Each exits 2 with the file, line and column where there
//! is one, never panics or aborts, and runs under a bound on its address space.

use std::path::Path;
use std::process::Command;

use crate::support::{BILLSHADOW, legacy};

/// The address space a bad input may use (the binary's threads and allocator arenas
/// included): a bad input that made the process grow past it would fail, not pass.
const ADDRESS_SPACE_KIB: u64 = 2 * 1024 * 1024;

const HEADER: &str =
    "account_id,period_start,period_end,charge_code,line_type,quantity,unit_price,amount,currency";
const GOOD_ROW: &str = "a,2026-10-01,2026-10-31,x,usage,,,1.00,USD";
const COHORT_HEADER: &str = "account_id,customer_id,partition,region,period_start,period_end";
const GOOD_ACCOUNT: &str = "acct-1,,p0,us-east-1,2026-10-01,2026-10-31";

/// What is run, and which file the case's input replaces.
#[derive(Clone, Copy)]
enum Cmd {
    /// `diff --legacy legacy.csv --modern modern.csv`; the input is legacy.csv.
    DiffFile,
    /// The same with `--legacy-format canonical-jsonl`; the input is legacy.csv.
    DiffJsonl,
    /// `diff --spec spec.toml`; the input is spec.toml.
    DiffSpec,
    /// `diff --legacy-format mapping.toml`; the input is mapping.toml.
    DiffMapping,
    /// `run --spec run.toml --cohort cohort.csv`; the input is cohort.csv.
    RunCohort,
    /// The same; the input is run.toml (the sample legacy program is `LEGACY`).
    RunSpec,
    /// `migrate status --policy policy.toml`; the input is policy.toml.
    Policy,
}

fn cohort(rows: &str) -> String {
    format!("{COHORT_HEADER}\n{GOOD_ACCOUNT}\n{rows}")
}

fn file(rows: &str) -> String {
    format!("{HEADER}\n{GOOD_ROW}\n{rows}")
}

/// A spec of two command stacks (never started: every case fails before).
fn run_spec(extra: &str) -> String {
    let legacy = legacy();
    format!(
        "[legacy]\nkind = \"command\"\nprogram = {legacy:?}\nargs = [\"{{account_ids}}\"]\n\n[modern]\nkind = \"command\"\nprogram = {legacy:?}\nargs = [\"{{account_ids}}\"]\n{extra}"
    )
}

const POLICY: &str = "[[cells]]\npartitions = [\"p0\"]\nregions = [\"us-east-1\"]\n\n[gate]\nmin_accounts = 1\nmax_mismatch_rate = \"0.01\"\n";

#[rustfmt::skip]
fn corpus() -> Vec<(&'static str, Cmd, Vec<u8>, &'static str)> {
    use Cmd::*;
    vec![
        // Files read by `diff` (canonical CSV unless said otherwise).
        ("empty file", DiffFile, b"".to_vec(), "legacy.csv: the file is empty; expected a header row"),
        ("header only, blank", DiffFile, b"\n\n".to_vec(), "legacy.csv: the file is empty"),
        ("missing required column", DiffFile, b"account_id,period_start,period_end,charge_code,amount\na,2026-10-01,2026-10-31,x,1\n".to_vec(), "required column `currency`"),
        ("duplicate column", DiffFile, format!("{HEADER},currency\n").into(), "legacy.csv, line 1, column 10: the column `currency` appears twice in the header (first at column 9)"),
        ("invalid UTF-8 in the header", DiffFile, b"account_id,\xff\n".to_vec(), "legacy.csv, line 1, column 2: invalid UTF-8 in the header"),
        ("invalid UTF-8 in a value", DiffFile, [file("").into_bytes(), b"a\xff,2026-10-01,2026-10-31,x,usage,,,1.00,USD\n".to_vec()].concat(), "legacy.csv, line 3, column 1 (`account_id`): invalid UTF-8"),
        ("too few fields", DiffFile, file("a,2026-10-01\n").into(), "legacy.csv, line 3: the row has 2 fields; expected 9"),
        ("too many fields", DiffFile, file("a,2026-10-01,2026-10-31,x,usage,,,1.00,USD,extra\n").into(), "legacy.csv, line 3: the row has 10 fields; expected 9"),
        ("unknown currency", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,1.00,XYZ\n").into(), "legacy.csv, line 3, column 9 (`currency`): `XYZ` is not an ISO 4217 currency code"),
        ("empty currency", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,1.00,\n").into(), "legacy.csv, line 3, column 9 (`currency`): empty value"),
        ("letters in an amount", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,12.5O,USD\n").into(), "legacy.csv, line 3, column 8 (`amount`): `12.5O` is not a decimal number"),
        ("empty amount", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,,USD\n").into(), "legacy.csv, line 3, column 8 (`amount`): empty value"),
        ("accounting negative", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,(1.50),USD\n").into(), "legacy.csv, line 3, column 8 (`amount`): `(1.50)` is an accounting negative"),
        ("decimal comma", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,\"1,50\",USD\n").into(), "legacy.csv, line 3, column 8 (`amount`): `1,50` is not a decimal number"),
        ("amount out of range", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,1E+30,USD\n").into(), "legacy.csv, line 3, column 8 (`amount`)"),
        ("NaN amount", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,,NaN,USD\n").into(), "legacy.csv, line 3, column 8 (`amount`): `NaN` is not a decimal number"),
        ("bad quantity", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,1_000,,1.00,USD\n").into(), "legacy.csv, line 3, column 6 (`quantity`): `1_000` is not a decimal number"),
        ("bad unit price", DiffFile, file("a,2026-10-01,2026-10-31,y,usage,,$1,1.00,USD\n").into(), "legacy.csv, line 3, column 7 (`unit_price`): `$1` is not a decimal number"),
        ("unknown line type", DiffFile, file("a,2026-10-01,2026-10-31,y,Usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 5 (`line_type`): `Usage` is not a line type"),
        ("month 13", DiffFile, file("a,2026-13-01,2026-10-31,y,usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 2 (`period_start`): `2026-13-01` is not a date"),
        ("February 30", DiffFile, file("a,2026-10-01,2026-02-30,y,usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 3 (`period_end`): `2026-02-30` is not a date"),
        ("empty period start", DiffFile, file("a,,2026-10-31,y,usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 2 (`period_start`): empty value"),
        ("period end before start", DiffFile, file("a,2026-10-31,2026-10-01,y,usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 3 (`period_end`): period_end 2026-10-01 is before period_start 2026-10-31"),
        ("empty account", DiffFile, file(",2026-10-01,2026-10-31,y,usage,,,1.00,USD\n").into(), "legacy.csv, line 3, column 1 (`account_id`): empty value"),
        ("field over 64 KiB", DiffFile, file(&format!("a,2026-10-01,2026-10-31,{},usage,,,1.00,USD\n", "x".repeat(4 << 20))).into(), "legacy.csv, line 3, column 4 (`charge_code`): the field is longer than 65536 bytes (the limit); refused while reading"),
        ("unterminated quote", DiffFile, file("a,2026-10-01,2026-10-31,\"x,usage,,,1.00,USD\n").into(), "legacy.csv, line 3"),
        ("CR-only line ends", DiffFile, format!("{HEADER}\r{GOOD_ROW}\ra,2026-10-01,2026-10-31,y,usage,,,oops,USD\r").into(), "legacy.csv, line 3, column 8 (`amount`)"),
        ("LF then CRLF", DiffFile, format!("{HEADER}\n{GOOD_ROW}\r\n{GOOD_ROW}\r\na,2026-10-01,2026-10-31,y,usage,,,oops,USD\r\n").into(), "legacy.csv, line 4, column 8 (`amount`)"),
        ("blank lines before the bad row", DiffFile, format!("{HEADER}\r\n\r\n{GOOD_ROW}\r\n\r\n\r\na,2026-10-01,2026-10-31,y,usage,,,oops,USD\r\n").into(), "legacy.csv, line 6, column 8 (`amount`)"),
        ("JSON lines: not JSON", DiffJsonl, b"{\"account_id\": \"a\"\n".to_vec(), "legacy.csv, line 1"),
        ("JSON lines: an array", DiffJsonl, b"[1, 2]\n".to_vec(), "legacy.csv, line 1, field `account_id`: no value"),
        ("JSON lines: number amount as float", DiffJsonl, b"{\"account_id\":\"a\",\"period_start\":\"2026-10-01\",\"period_end\":\"2026-10-31\",\"charge_code\":\"x\",\"amount\":\"1.0\",\"currency\":\"US\"}\n".to_vec(), "legacy.csv, line 1, field `currency`: `US` is not an ISO 4217 currency code"),
        ("JSON lines: value over 64 KiB", DiffJsonl, format!("{{\"account_id\":\"a\",\"period_start\":\"2026-10-01\",\"period_end\":\"2026-10-31\",\"charge_code\":\"{}\",\"amount\":\"1.00\",\"currency\":\"USD\"}}\n", "x".repeat(4 << 20)).into(), "legacy.csv, line 1, column 87: the value is longer than 65536 bytes (the limit); refused while reading"),
        ("JSON lines: more values than a record has fields", DiffJsonl, format!("[{}0]\n", "0,".repeat(100_000)).into(), "legacy.csv, line 1: the line has more than 100000 values (the limit); refused while reading"),
        // Comparison specs.
        ("spec: not TOML", DiffSpec, b"[legacy\nformat = 1\n".to_vec(), "spec.toml:1:"),
        ("spec: unknown key", DiffSpec, b"[legacy]\nformat = \"canonical\"\npath = \"legacy.csv\"\nfromat = \"x\"\n".to_vec(), "spec.toml:4:1: unknown field `fromat`"),
        ("spec: unknown format", DiffSpec, b"[legacy]\nformat = \"nope\"\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n".to_vec(), "nope"),
        ("spec: a tolerance misspelt (issue 16: it said \"did not match any variant of untagged enum\")", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[tolerance]\ndefault = { minor_unit = 1 }\n".to_vec(), "spec.toml:6:11: a tolerance is an amount as a string, such as \"0.05\", or { minor_units = N }: `minor_unit` is not `minor_units`"),
        ("spec: a tolerance as a TOML float", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[tolerance]\nline_type = { tax = 0.05 }\n".to_vec(), "write \"0.05\", quoted"),
        ("spec: unknown key field", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[match]\nkey = [\"acount_id\"]\n".to_vec(), "spec.toml:6:"),
        ("spec: negative tolerance", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[tolerance]\ndefault = \"-0.01\"\n".to_vec(), "spec.toml:6:"),
        ("spec: waiver without an owner", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[[waiver]]\nid = \"w\"\nticket = \"T-1\"\nexpires = \"2030-01-01\"\n".to_vec(), "spec.toml:5:"),
        ("spec: waiver with a bad date", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[[waiver]]\nid = \"w\"\nowner = \"o\"\nticket = \"T-1\"\nexpires = \"2030-02-30\"\n".to_vec(), "spec.toml:"),
        ("spec: bad charge-code glob", DiffSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n[tolerance.charge_code]\n\"a[\" = \"0.01\"\n".to_vec(), "spec.toml:6:"),
        ("spec: invalid UTF-8", DiffSpec, b"[legacy]\npath = \"\xff\"\n".to_vec(), "spec.toml"),
        // Format mappings.
        ("mapping: not TOML", DiffMapping, b"name = \n".to_vec(), "mapping.toml:1:"),
        ("mapping: unknown field", DiffMapping, b"name = \"m\"\ninput = \"csv\"\n[fields]\naccount = \"a\"\n".to_vec(), "mapping.toml:4:"),
        ("mapping: bad input kind", DiffMapping, b"name = \"m\"\ninput = \"xml\"\n[fields]\naccount_id = \"a\"\n".to_vec(), "mapping.toml:2:"),
        // Cohorts read by `run`.
        ("cohort: empty", RunCohort, b"".to_vec(), "cohort.csv: the cohort is empty"),
        ("cohort: no period_end column", RunCohort, b"account_id,partition,region,period_start\na,p0,r,2026-10-01\n".to_vec(), "cohort.csv: the cohort has no `period_end` column"),
        ("cohort: duplicate column", RunCohort, format!("{COHORT_HEADER},region\n").into(), "cohort.csv, line 1, column 7: the column `region` appears twice in the header (first at column 4)"),
        ("cohort: no accounts", RunCohort, format!("{COHORT_HEADER}\n").into(), "cohort.csv: the cohort has no accounts"),
        ("cohort: too few fields", RunCohort, cohort("acct-2,,p0\n").into(), "cohort.csv, line 3: the row has 3 fields; the header has 6"),
        ("cohort: empty account", RunCohort, cohort(",,p0,us-east-1,2026-10-01,2026-10-31\n").into(), "cohort.csv, line 3, column 1 (`account_id`): empty value"),
        ("cohort: id read as an option", RunCohort, cohort("--echo,,p0,us-east-1,2026-10-01,2026-10-31\n").into(), "cohort.csv, line 3, column 1 (`account_id`): `--echo` starts with `-`"),
        ("cohort: NUL in an id", RunCohort, cohort("a\0b,,p0,us-east-1,2026-10-01,2026-10-31\n").into(), "cohort.csv, line 3, column 1 (`account_id`): `a\\u{0}b` contains the control character U+0000"),
        ("cohort: escape in a region", RunCohort, cohort("acct-2,,p0,\x1b[2J,2026-10-01,2026-10-31\n").into(), "cohort.csv, line 3, column 4 (`region`): `\\u{1b}[2J` contains the control character U+001B"),
        ("cohort: id over 256 bytes", RunCohort, cohort(&format!("{},,p0,us-east-1,2026-10-01,2026-10-31\n", "a".repeat(300))).into(), "cohort.csv, line 3, column 1 (`account_id`): the value is 300 bytes long; at most 256"),
        ("cohort: id with spaces around", RunCohort, cohort(" acct-2,,p0,us-east-1,2026-10-01,2026-10-31\n").into(), "cohort.csv, line 3, column 1 (`account_id`): ` acct-2` starts or ends with white space"),
        ("cohort: bad date", RunCohort, cohort("acct-2,,p0,us-east-1,2026-10-01,31/10/2026\n").into(), "cohort.csv, line 3, column 6 (`period_end`): `31/10/2026` is not a date"),
        ("cohort: unpadded date", RunCohort, cohort("acct-2,,p0,us-east-1,2026-10-1,2026-10-31\n").into(), "cohort.csv, line 3, column 5 (`period_start`): `2026-10-1` is not a date"),
        ("cohort: period end before start", RunCohort, cohort("acct-2,,p0,us-east-1,2026-10-31,2026-10-01\n").into(), "cohort.csv, line 3, column 6 (`period_end`): 2026-10-01 is before period_start 2026-10-31"),
        ("cohort: invalid UTF-8", RunCohort, [cohort("").into_bytes(), b"acct-\xff,,p0,us-east-1,2026-10-01,2026-10-31\n".to_vec()].concat(), "cohort.csv, line 3, column 1: invalid UTF-8"),
        ("cohort: CR-only line ends", RunCohort, format!("{COHORT_HEADER}\r{GOOD_ACCOUNT}\r\racct-2,,p0,us-east-1,2026-10-01,nope\r").into(), "cohort.csv, line 4, column 6 (`period_end`)"),
        ("cohort: LF then CRLF", RunCohort, format!("{COHORT_HEADER}\n{GOOD_ACCOUNT}\r\nacct-2,,p0,us-east-1,2026-10-01,nope\r\n").into(), "cohort.csv, line 3, column 6 (`period_end`)"),
        // Specs read by `run`.
        ("run spec: a file side", RunSpec, b"[legacy]\npath = \"legacy.csv\"\n[modern]\npath = \"modern.csv\"\n".to_vec(), "[legacy] is not a live stack"),
        ("run spec: unknown cohort setting", RunSpec, run_spec("[cohort]\nallow_dash = true\n").into(), "run.toml:11:1: unknown field `allow_dash`, expected `allow_leading_dash`"),
        ("run spec: unknown stack kind", RunSpec, b"[legacy]\nkind = \"ftp\"\n".to_vec(), "run.toml:"),
        // Policies read by `migrate`.
        ("policy: not TOML", Policy, b"[[cells]\n".to_vec(), "policy.toml:1:"),
        ("policy: unknown gate key", Policy, format!("{POLICY}min_acounts = 3\n").into(), "policy.toml:8:1: unknown field `min_acounts`"),
        ("policy: rate above 1", Policy, POLICY.replace("\"0.01\"", "\"1.5\"").into(), "policy.toml:5:1: [gate] max_mismatch_rate = `1.5` must be between 0 and 1"),
        ("policy: reversed partition range", Policy, POLICY.replace("\"p0\"", "\"p1..p0\"").into(), "policy.toml:1:1: `p1..p0` is not a range such as p0..p3"),
        ("policy: amount without currency", Policy, format!("{POLICY}critical_amount = \"100\"\n").into(), "policy.toml:8:"),
    ]
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_case(dir: &Path, cmd: Cmd, input: &[u8]) -> Ran {
    let good = format!("{HEADER}\n{GOOD_ROW}\n");
    std::fs::write(dir.join("legacy.csv"), &good).unwrap();
    std::fs::write(dir.join("modern.csv"), &good).unwrap();
    std::fs::write(
        dir.join("cohort.csv"),
        format!("{COHORT_HEADER}\n{GOOD_ACCOUNT}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("run.toml"), run_spec("")).unwrap();
    let (target, args): (&str, &[&str]) = match cmd {
        Cmd::DiffFile => (
            "legacy.csv",
            &["diff", "--legacy", "legacy.csv", "--modern", "modern.csv"],
        ),
        Cmd::DiffJsonl => (
            "legacy.csv",
            &[
                "diff",
                "--legacy",
                "legacy.csv",
                "--legacy-format",
                "canonical-jsonl",
                "--modern",
                "modern.csv",
            ],
        ),
        Cmd::DiffSpec => ("spec.toml", &["diff", "--spec", "spec.toml"]),
        Cmd::DiffMapping => (
            "mapping.toml",
            &[
                "diff",
                "--legacy",
                "legacy.csv",
                "--legacy-format",
                "mapping.toml",
                "--modern",
                "modern.csv",
            ],
        ),
        Cmd::RunCohort => (
            "cohort.csv",
            &[
                "run",
                "--spec",
                "run.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                "s.db",
            ],
        ),
        Cmd::RunSpec => (
            "run.toml",
            &[
                "run",
                "--spec",
                "run.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                "s.db",
            ],
        ),
        Cmd::Policy => (
            "policy.toml",
            &[
                "migrate",
                "status",
                "--policy",
                "policy.toml",
                "--store",
                "s.db",
            ],
        ),
    };
    std::fs::write(dir.join(target), input).unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(BILLSHADOW)
        .args(args)
        .current_dir(dir)
        .env_remove("BILLSHADOW_STORE")
        .env("BILLSHADOW_LOG", "warn")
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn every_bad_input_exits_2_located_without_panic_within_bounded_memory() {
    let corpus = corpus();
    assert!(corpus.len() >= 40, "the corpus has {} kinds", corpus.len());
    let mut failures = Vec::new();
    for (name, cmd, input, expected) in &corpus {
        let dir = tempfile::tempdir().unwrap();
        let ran = run_case(dir.path(), *cmd, input);
        let ok = ran.code == Some(2)
            && ran.stderr.contains(expected)
            && !ran.stderr.contains("panicked")
            && !ran.stderr.contains("memory allocation")
            && ran.stdout.is_empty()
            && !dir.path().join("s.db").exists();
        if !ok {
            failures.push(format!(
                "{name}: exit {:?}, expected {expected:?}\n--- stdout\n{}--- stderr\n{}",
                ran.code, ran.stdout, ran.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n\n")
    );
}
