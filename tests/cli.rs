//! The command line as a user meets it: `--help` of every command (snapshots), shell
//! completions and man pages generated from the clap definitions, `--version` with the commit,
//! and log lines fit for a file (no escape byte, JSON on request, quiet with `-q`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{Run, billshadow, billshadow_env, cohort, command, free_port, write_spec};

/// The commands listed under `Commands:` in a help text (`help` itself left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// `billshadow PATH --help` at a fixed width.
fn help(path: &[String], d: &Path) -> Run {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    billshadow_env(&args, d, &[("COLUMNS", "100")])
}

#[test]
fn every_command_has_help_with_examples_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        let run = help(&path, d);
        assert_eq!(run.code, 0, "{path:?}: {}", run.transcript());
        assert!(run.stdout.contains("\nExample"), "{path:?} has no examples");
        for sub in subcommands(&run.stdout) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        let name = if path.is_empty() {
            "help".to_owned()
        } else {
            format!("help_{}", path.join("_"))
        };
        insta::assert_snapshot!(name, run.stdout);
        seen += 1;
    }
    // The top level, 17 commands, 14 `migrate` subcommands and 2 `generate` ones.
    assert_eq!(seen, 34);
}

#[test]
fn completions_generate_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for shell in ["bash", "zsh", "fish"] {
        let run = billshadow(&["completions", shell], d);
        assert_eq!(run.code, 0, "{shell}: {}", run.transcript());
        for word in ["migrate", "store", "policy", "advance", "log-format"] {
            assert!(run.stdout.contains(word), "{shell}: no {word}");
        }
    }
    // bash reads its script without a syntax error.
    let script = billshadow(&["completions", "bash"], d).stdout;
    std::fs::write(d.join("billshadow.bash"), &script).unwrap();
    let check = Command::new("bash")
        .args(["-n", "billshadow.bash"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn man_pages_generate_one_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = billshadow(&["man", "--out", "man"], d);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.stdout, "34 manual pages in man\n");
    let gate = std::fs::read_to_string(d.join("man/billshadow-migrate-gate.1")).unwrap();
    assert!(gate.starts_with(".ie") || gate.contains(".TH"), "{gate}");
    assert!(gate.contains("PARTITION/REGION"), "{gate}");
}

#[test]
fn version_names_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let run = billshadow(&["--version"], dir.path());
    assert_eq!(run.code, 0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    // Built from this checkout: its commit (the build may be older than a later commit).
    assert!(
        run.stdout.starts_with("billshadow 0.1.0 (commit ") && run.stdout.ends_with(")\n"),
        "{}",
        run.stdout
    );
    let commit = &run.stdout["billshadow 0.1.0 (commit ".len()..run.stdout.len() - 2];
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit} (HEAD {head})"
    );
}

/// A shadow run of 40 accounts whose log lines (stderr) go to a file, with `extra` arguments.
fn logged_run(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cohort(d, 40);
    write_spec(d, free_port(), "", "", "");
    let log = std::fs::File::create(d.join("run.log")).unwrap();
    let mut args = extra.to_vec();
    args.extend(["run", "--spec", "spec.toml", "--cohort", "cohort.csv"]);
    let mut command = command(&args, d);
    // BILLSHADOW_LOG decides over -q and -v: only without it do they.
    if extra.contains(&"-q") {
        command.env_remove("BILLSHADOW_LOG");
    } else {
        command.env("BILLSHADOW_LOG", "info");
    }
    let status = command.stdout(Stdio::null()).stderr(log).status().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    std::fs::read_to_string(d.join("run.log")).unwrap()
}

/// Issue 16: log files filled with ANSI codes (the log was coloured wherever it went).
#[test]
fn no_log_line_written_to_a_file_contains_an_escape_byte() {
    let text = logged_run(&[]);
    assert!(text.contains("INFO"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let json = logged_run(&["--log-format", "json"]);
    let lines: Vec<&str> = json.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "{json}");
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            record["level"].is_string() && record["fields"].is_object(),
            "{line}"
        );
    }
    assert!(!json.contains('\u{1b}'), "{json:?}");

    // -q: nothing but errors, and this run has none.
    let quiet = logged_run(&["-q"]);
    assert_eq!(quiet, "");
}

#[test]
fn color_always_colours_a_pipe_and_no_color_never() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = crate::support::repo().join("examples");
    let (legacy, modern) = (examples.join("legacy.csv"), examples.join("modern.csv"));
    let diff = [
        "diff",
        "--legacy",
        legacy.to_str().unwrap(),
        "--modern",
        modern.to_str().unwrap(),
    ];
    let plain = billshadow(&diff, d);
    assert!(!plain.stdout.contains('\u{1b}'), "{}", plain.stdout);
    let forced = billshadow_env(&diff, d, &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.stdout.contains('\u{1b}'), "{}", forced.stdout);
    let mut always = diff.to_vec();
    always.extend(["--color", "always"]);
    let run = billshadow_env(&always, d, &[("NO_COLOR", "1")]);
    assert!(
        run.stdout.contains('\u{1b}'),
        "an explicit --color always wins"
    );
    let no_color = billshadow_env(&diff, d, &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]);
    assert!(!no_color.stdout.contains('\u{1b}'), "{}", no_color.stdout);
}

/// Issue 16: rerunning `demo` deleted the runs in its folder without asking.
#[test]
fn demo_into_a_folder_with_runs_asks_for_force_instead_of_deleting_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = |extra: &[&str]| {
        let mut args = vec!["demo", "--accounts", "60", "--dir", "demo"];
        args.extend_from_slice(extra);
        billshadow(&args, d)
    };
    let first = demo(&[]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let again = demo(&[]);
    assert_eq!(again.code, 2, "{}", again.transcript());
    assert!(
        again
            .stderr
            .contains("already holds 1 run(s): `billshadow demo --force`"),
        "{}",
        again.stderr
    );
    let runs = billshadow(
        &["runs", "--store", "demo/billshadow.db", "--format", "json"],
        d,
    );
    assert_eq!(
        runs.json()["runs"].as_array().unwrap().len(),
        1,
        "the run is still there"
    );
    let forced = demo(&["--force"]);
    assert_eq!(forced.code, 0, "{}", forced.transcript());
}

/// `runs` shows each run's verdict; `report`'s closing hint names the store it read.
#[test]
fn runs_show_verdicts_and_report_hints_name_the_store() {
    let dir = crate::report::stored_run();
    let d = dir.path();
    let runs = billshadow(&["runs", "--store", "s.db"], d);
    assert_eq!(runs.code, 0, "{}", runs.transcript());
    assert!(
        runs.stdout.lines().next().unwrap().contains("verdict"),
        "{}",
        runs.stdout
    );
    assert!(runs.stdout.contains("MISMATCH"), "{}", runs.stdout);
    for format in ["md", "html"] {
        let report = billshadow(&["report", "--store", "s.db", "--format", format], d);
        assert!(
            report.stdout.contains("--store s.db --format csv"),
            "{format}: {}",
            report.stdout
        );
    }
}
