//! Shared helpers of the end-to-end tests: running the binary, free ports, real databases.

pub(crate) mod postgres;
pub(crate) mod stacks;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.transcript()))
    }

    /// Exit code, stdout and stderr together, for messages and snapshots.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary under test.
pub(crate) const BILLSHADOW: &str = env!("CARGO_BIN_EXE_billshadow");

/// The sample legacy stack (a batch program) the tests shadow-run.
pub(crate) fn legacy() -> &'static str {
    &stacks::paths().0
}

/// The sample modern stack (an HTTP service) the tests shadow-run.
pub(crate) fn modern() -> &'static str {
    &stacks::paths().1
}

/// The repository's root (fixtures, examples and the catalog are read from there).
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every variable billshadow may read the actor from (`src/actor.rs`).
pub(crate) const ACTOR_VARIABLES: [&str; 9] = [
    "BILLSHADOW_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR_EMAIL",
    "CIRCLE_USERNAME",
    "BUILD_REQUESTEDFOREMAIL",
    "BUILD_USER_ID",
    "USER",
    "LOGNAME",
];

/// `billshadow ARGS` in `dir`, not yet started, with the environment every test gives it: no
/// `NO_COLOR` or `BILLSHADOW_STORE` from the caller's shell, log lines from warnings up.
pub(crate) fn command(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(BILLSHADOW);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("BILLSHADOW_STORE")
        .env("BILLSHADOW_LOG", "warn");
    // Who acts is the same on every machine: no CI's user, the test's USER.
    for name in ACTOR_VARIABLES {
        command.env_remove(name);
    }
    command.env("USER", "billshadow-test");
    // Tests move the controller's clock with `--now` on commands that write.
    command.env("BILLSHADOW_FAKE_CLOCK", "1");
    command
}

/// `billshadow ARGS` in `dir`, run to its end.
pub(crate) fn billshadow(args: &[&str], dir: &Path) -> Run {
    billshadow_env(args, dir, &[])
}

/// `billshadow ARGS` in `dir` with `env` added, run to its end.
pub(crate) fn billshadow_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Run {
    let mut command = command(args, dir);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port` (`what` names it when
/// it never does).
pub(crate) fn wait_for_listener(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Raises this test process's soft open-files limit to its hard limit, as servers do, and
/// returns the new soft limit. All the end-to-end tests share this one process, so a test
/// that opens a thousand client sockets at once must not starve the tests running beside it
/// of descriptors (a soft limit of 1,024 is common).
pub(crate) fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls get a valid pointer to an `rlimit` owned by this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const BILL_LINES: &str = "CREATE TABLE bill_lines (account_id TEXT NOT NULL, period_start TEXT NOT NULL, period_end TEXT NOT NULL, \
     charge_code TEXT NOT NULL, line_type TEXT NOT NULL, amount TEXT NOT NULL, currency TEXT NOT NULL)";
const INSERT: &str = "INSERT INTO bill_lines VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A SQLite file with a `bill_lines` table holding `rows`.
pub(crate) fn sqlite_bill_lines(path: &Path, rows: &[[String; 7]]) {
    runtime().block_on(async {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(BILL_LINES).execute(&pool).await.unwrap();
        for row in rows {
            let mut q = sqlx::query(INSERT);
            for v in row {
                q = q.bind(v.as_str());
            }
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
}

pub(crate) async fn postgres_bill_lines(url: &str, rows: &[[String; 7]]) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(BILL_LINES).execute(&pool).await.unwrap();
    for row in rows {
        let mut q = sqlx::query(INSERT);
        for v in row {
            q = q.bind(v.as_str());
        }
        q.execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// A spec for the two sample stacks; `modern_args` are extra flags of the modern service.
pub(crate) fn write_spec(
    dir: &Path,
    port: u16,
    modern_args: &str,
    legacy_args: &str,
    extra: &str,
) -> PathBuf {
    let (legacy, modern) = (legacy(), modern());
    let spec = format!(
        r#"
[legacy]
kind = "command"
program = {legacy:?}
args = ["--data", "data", {legacy_args} "{{account_ids}}"]
batch_size = 50
timeout_ms = 20000
concurrency = 2

[modern]
kind = "http"
url = "http://127.0.0.1:{port}/v1/accounts/{{account_id}}/bill?period_start={{period_start}}"
format = "modern-bill.toml"
timeout_ms = 2000
retries = 2
backoff_ms = 5
concurrency = 16
start = {{ program = {modern:?}, args = ["--data", "data", "--listen", "127.0.0.1:{port}", "--watch-stdin", {modern_args}], ready_address = "127.0.0.1:{port}" }}

[match]
key = ["account_id", "period", "charge_code", "line_type"]

[compare]
ignore = ["description"]
{extra}
"#
    );
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    std::fs::write(
        dir.join("modern-bill.toml"),
        include_str!("../../examples/stacks/modern-bill.toml"),
    )
    .unwrap();
    path
}

pub(crate) fn cohort(dir: &Path, accounts: u32) {
    let accounts = accounts.to_string();
    let args = [
        "generate",
        "cohort",
        "--accounts",
        &accounts,
        "--seed",
        "5",
        "--out",
        dir.to_str().unwrap(),
    ];
    let run = billshadow_env(&args, dir, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// Run ids, hashes and times replaced by placeholders, for snapshots.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_inclusive(|c: char| c.is_whitespace() || "\"(),<>`|".contains(c)) {
        let core = word.trim_end_matches(|c: char| c.is_whitespace() || "\"(),<>`|".contains(c));
        let rest = &word[core.len()..];
        let redacted = if core.starts_with("run-") {
            "[run]".to_owned()
        } else if core.len() >= 12 && core.chars().all(|c| c.is_ascii_hexdigit()) {
            "[hash]".to_owned()
        } else if core.len() >= 20 && core.as_bytes().get(4) == Some(&b'-') && core.contains('T') {
            "[time]".to_owned()
        } else {
            core.to_owned()
        };
        out.push_str(&redacted);
        out.push_str(rest);
    }
    out
}

/// `program ARGS` in `dir` (with `stdin` from a file, if given), required to succeed: an
/// outside tool the tests use (promtool, node, check-jsonschema), installed by `.ci/test`.
/// Returns what it printed, stdout then stderr.
pub(crate) fn tool(program: &str, args: &[&str], dir: &Path, stdin: Option<&Path>) -> String {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    if let Some(file) = stdin {
        command.stdin(std::fs::File::open(file).unwrap());
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (installed by .ci/test): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

/// A `billshadow` server (`serve`, `metrics --listen`) on `port`, killed when dropped.
pub(crate) struct Server(std::process::Child);

impl Server {
    /// Starts `billshadow ARGS` in `dir` and waits until it listens on `port`.
    pub(crate) fn start(args: &[&str], dir: &Path, port: u16) -> Server {
        let child = command(args, dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        wait_for_listener(port, &format!("billshadow {}", args[0]));
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The golden cases (`tests/cases/<name>/`), sorted, each with the arguments of its JSON
/// diff (`legacy.csv` against `modern.csv`, as of 2026-11-25, with its `spec.toml` if any).
pub(crate) fn golden_case_diffs() -> Vec<(PathBuf, Vec<&'static str>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|case| {
            let mut args = vec![
                "diff",
                "--legacy",
                "legacy.csv",
                "--modern",
                "modern.csv",
                "--format",
                "json",
                "--as-of",
                "2026-11-25",
            ];
            if case.join("spec.toml").exists() {
                args.extend(["--spec", "spec.toml"]);
            }
            (case, args)
        })
        .collect()
}
