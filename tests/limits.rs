//! Limits and secrets, end to end: the real binary against small test servers on 127.0.0.1,
//! its peak memory read from `/proc/<pid>/status` (VmHWM) while it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Run, billshadow_env, command, free_port, postgres::Postgres, raise_open_files_limit,
    wait_for_listener,
};

const MIB: u64 = 1024 * 1024;

/// What the test stack answers.
#[derive(Clone, Copy)]
enum Mode {
    /// A bill of one line for the account in the path.
    Bill,
    /// A chunked body that never ends (until the client hangs up).
    Endless,
    /// Accounts whose id ends in an even digit are refused with a 401 whose body echoes the
    /// request's `authorization` header; the others get a bill.
    EchoToken,
}

/// A stack on 127.0.0.1 answering `GET /bill/{account_id}`; runs until the test ends.
fn stack(mode: Mode) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || answer(socket, mode));
        }
    });
    port
}

fn answer(socket: TcpStream, mode: Mode) {
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut socket = socket;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let path = head[0].split(' ').nth(1).unwrap_or("/").to_owned();
        let account = path.rsplit('/').next().unwrap_or("").to_owned();
        let token = head
            .iter()
            .find_map(|h| {
                h.to_ascii_lowercase()
                    .starts_with("authorization:")
                    .then(|| h["authorization:".len()..].trim().to_owned())
            })
            .unwrap_or_default();
        let bill = format!(
            "{{\"account_id\":\"{account}\",\"period_start\":\"2026-10-01\",\"period_end\":\"2026-10-31\",\"charge_code\":\"x\",\"amount\":\"1.00\",\"currency\":\"USD\"}}\n"
        );
        let reply = match mode {
            Mode::Endless => {
                let _ = socket.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                let chunk = format!("10000\r\n{}\r\n", "7".repeat(0x10000));
                while socket.write_all(chunk.as_bytes()).is_ok() {}
                return;
            }
            Mode::EchoToken if account.ends_with(['0', '2', '4', '6', '8']) => (
                "401 Unauthorized",
                format!("token {token} is not allowed for {account}"),
            ),
            Mode::Bill | Mode::EchoToken => ("200 OK", bill),
        };
        let response = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            reply.0,
            reply.1.len(),
            reply.1
        );
        if socket.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn write_cohort(dir: &Path, accounts: usize) {
    let mut text = String::from("account_id,partition,region,period_start,period_end\n");
    for i in 0..accounts {
        text.push_str(&format!("acct-{i:04},p0,us-east-1,2026-10-01,2026-10-31\n"));
    }
    std::fs::write(dir.join("cohort.csv"), text).unwrap();
}

/// A spec whose two sides are HTTP stacks on `legacy` and `modern`; `extra` goes in both.
fn write_spec(dir: &Path, legacy: u16, modern: u16, extra: &str) {
    let side = |name: &str, port: u16| {
        format!(
            "[{name}]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/bill/{{account_id}}\"\ntimeout_ms = 5000\nretries = 0\nconcurrency = 2\n{extra}\n"
        )
    };
    std::fs::write(
        dir.join("spec.toml"),
        format!("{}{}", side("legacy", legacy), side("modern", modern)),
    )
    .unwrap();
}

/// The peak resident memory of a running process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs the binary to its end, sampling its peak memory; the run and the highest VmHWM seen.
fn billshadow_measured(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> (Run, u64) {
    let mut measured = command(args, dir);
    measured.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        measured.env(k, v);
    }
    let mut child = measured.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(hwm) = vm_hwm(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "billshadow {args:?} did not end");
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (run, peak)
}

#[test]
fn an_endless_http_body_is_cut_at_the_limit_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cohort(d, 4);
    let endless = stack(Mode::Endless);
    write_spec(d, endless, endless, "");
    let (run, peak) = billshadow_measured(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.transcript());
    eprintln!("endless body: peak memory {} KiB", peak / 1024);
    assert!(peak > 0, "no memory sample");
    assert!(peak < 100 * MIB, "peak memory {} MiB", peak / MIB);
    let shown = billshadow_env(
        &["show", "latest", "--store", "s.db", "--format", "json"],
        d,
        &[],
    );
    let doc = shown.json();
    assert_eq!(doc["summary"]["accounts_errored"], 4, "{}", shown.stdout);
    let errors: Vec<&serde_json::Value> = doc["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["class"] == "stack_error")
        .collect();
    assert!(!errors.is_empty(), "{}", shown.stdout);
    let text = serde_json::to_string(&errors).unwrap();
    assert!(
        text.contains("larger than the limit of 8388608 bytes (max_response_bytes)"),
        "{text}"
    );

    // The limit is a spec setting.
    write_spec(d, endless, endless, "max_response_bytes = 1000");
    let (run, _) = billshadow_measured(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "t.db",
        ],
        d,
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.transcript());
    let shown = billshadow_env(
        &["show", "latest", "--store", "t.db", "--format", "json"],
        d,
        &[],
    );
    assert!(
        shown.stdout.contains("the limit of 1000 bytes"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_huge_csv_field_is_refused_where_it_is_before_it_is_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let header = "account_id,period_start,period_end,charge_code,description,amount,currency\n";
    std::fs::write(
        d.join("modern.csv"),
        format!("{header}a,2026-10-01,2026-10-31,x,,1.00,USD\n"),
    )
    .unwrap();
    {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(d.join("legacy.csv")).unwrap());
        file.write_all(header.as_bytes()).unwrap();
        file.write_all(b"a,2026-10-01,2026-10-31,x,,1.00,USD\n")
            .unwrap();
        file.write_all(b"a,2026-10-01,2026-10-31,x,\"").unwrap();
        let block = vec![b'z'; 1 << 20];
        for _ in 0..300 {
            file.write_all(&block).unwrap();
        }
        file.write_all(b"\",1.00,USD\n").unwrap();
    }
    let (run, peak) = billshadow_measured(
        &["diff", "--legacy", "legacy.csv", "--modern", "modern.csv"],
        d,
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "legacy.csv, line 3, column 5 (`description`): the field is longer than 65536 bytes"
        ),
        "{}",
        run.stderr
    );
    eprintln!("huge field: peak memory {} KiB", peak / 1024);
    assert!(peak < 100 * MIB, "peak memory {} MiB", peak / MIB);
}

/// A metrics server on a store with one run; its child process.
fn metrics_server(dir: &Path, store: &str, env: &[(&str, &str)]) -> (Child, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = command(&["metrics", "--listen", &listen, "--store", store], dir);
    server.stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        server.env(k, v);
    }
    let child = server.spawn().unwrap();
    wait_for_listener(port, "the metrics server");
    (child, port)
}

fn get(port: u16, path: &str) -> (u16, String) {
    // Retried a while: with a low open-files limit (1,024) a thousand sockets at once can
    // run out of descriptors for a moment, and on a machine loaded far beyond its cores a
    // connection the server could not read within its header timeout is reset; a scraper
    // asks again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match try_get(port, path) {
            Ok(answer) => return answer,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no answer from the metrics server: {e}"),
        }
    }
}

fn try_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    socket.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Concurrent scrapes of the metrics server, each on a socket of its own in this process.
const SCRAPES: u64 = 1000;

/// Descriptors left to the tests running beside the scrapes (they share this process).
const DESCRIPTORS_SPARE: u64 = 1024;

#[test]
fn a_thousand_concurrent_scrapes_are_answered_in_bounded_memory_and_slow_headers_are_cut() {
    // The thousand sockets are this process's, which every end-to-end test shares: with the
    // soft limit raised to the hard one, the tests beside this one keep as many descriptors as
    // they had alone; a hard limit too low for that fails here, named, instead of them.
    let open_files = raise_open_files_limit();
    assert!(
        open_files >= SCRAPES + DESCRIPTORS_SPARE,
        "the open-files limit is {open_files} (hard limit included): {SCRAPES} sockets would starve the tests running beside this one; raise it to at least {} (ulimit -Hn)",
        SCRAPES + DESCRIPTORS_SPARE
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cohort(d, 20);
    let bills = stack(Mode::Bill);
    write_spec(d, bills, bills, "");
    let run = billshadow_env(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            "s.db",
        ],
        d,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let (mut server, port) = metrics_server(d, "s.db", &[]);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_owned()));

    // A client that never finishes its headers is disconnected within the header timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        closed.is_ok() || started.elapsed() < Duration::from_secs(15),
        "the slow client was not disconnected: {closed:?}"
    );
    assert!(
        waited < Duration::from_secs(8),
        "disconnected only after {waited:?}"
    );

    let before = vm_hwm(server.id()).unwrap();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SCRAPES)
            .map(|_| scope.spawn(move || get(port, "/metrics")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(
            body.contains("billshadow_accounts_compared") || body.contains("billshadow_"),
            "{body}"
        );
    }
    let first = &answers[0].1;
    assert!(answers.iter().all(|(_, b)| b == first), "answers differ");
    let after = vm_hwm(server.id()).unwrap();
    eprintln!(
        "metrics server: slow client cut after {waited:?}; peak memory {} KiB before the scrapes, {} KiB after",
        before / 1024,
        after / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        after < 64 * MIB,
        "the server's peak memory went from {} KiB to {} KiB",
        before / 1024,
        after / 1024
    );
}

/// Keeps a command's transcript for the final grep.
fn record(outputs: &mut Vec<String>, what: &str, run: Run) -> Run {
    outputs.push(format!("== {what}\n{}", run.transcript()));
    run
}

/// Every table of a PostgreSQL database as text.
fn dump(url: &str) -> String {
    crate::support::runtime().block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 3, "{tables:?}");
        let mut out = String::new();
        for (table,) in tables {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT t::text FROM \"{table}\" t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for (row,) in rows {
                out.push_str(&table);
                out.push(' ');
                out.push_str(&row);
                out.push('\n');
            }
        }
        pool.close().await;
        out
    })
}

#[test]
fn no_password_or_token_leaves_a_run_on_a_password_protected_postgres() {
    const PASSWORD: &str = "pg-Secret-4711";
    const TOKEN: &str = "tok-Secret-0815";
    let pg = Postgres::start_with(Some(PASSWORD), false);
    pg.create_database("store");
    let store = pg.url("store");
    assert!(store.contains(PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cohort(d, 6);
    let echo = stack(Mode::EchoToken);
    write_spec(
        d,
        echo,
        echo,
        "headers = { authorization = { env = \"STACK_TOKEN\", prefix = \"Bearer \" } }",
    );
    let env = [("STACK_TOKEN", TOKEN)];
    let mut outputs = Vec::new();
    let run = record(
        &mut outputs,
        "run",
        billshadow_env(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                &store,
            ],
            d,
            &env,
        ),
    );
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains("postgres://postgres:***@"),
        "{}",
        run.stderr
    );
    let shown = record(
        &mut outputs,
        "show",
        billshadow_env(
            &["show", "latest", "--store", &store, "--format", "json"],
            d,
            &env,
        ),
    );
    assert!(
        shown.stdout.contains("token *** is not allowed"),
        "the stack's echo is kept, masked: {}",
        shown.stdout
    );
    record(
        &mut outputs,
        "runs",
        billshadow_env(&["runs", "--store", &store], d, &env),
    );
    for format in ["md", "html", "json", "csv", "jsonl", "prometheus"] {
        let out = format!("report.{format}");
        let report = billshadow_env(
            &[
                "report", "--store", &store, "--format", format, "--out", &out,
            ],
            d,
            &env,
        );
        let file = std::fs::read_to_string(d.join(&out)).unwrap_or_default();
        outputs.push(format!(
            "== report {format}\n{}\n{file}",
            report.transcript()
        ));
    }
    record(
        &mut outputs,
        "explain",
        billshadow_env(&["explain", "acct-0000", "--store", &store], d, &env),
    );
    // A store error names the store, never its password.
    let wrong = store.replace(PASSWORD, "Wrong-Secret-1");
    let failed = record(
        &mut outputs,
        "wrong password",
        billshadow_env(&["runs", "--store", &wrong], d, &env),
    );
    assert_ne!(failed.code, 0);
    // The metrics server's 503 (a store with no run yet) names the store without its password.
    pg.create_database("empty");
    let empty = pg.url("empty");
    std::fs::write(
        d.join("policy.toml"),
        "[[cells]]\npartitions = [\"p0\"]\nregions = [\"us-east-1\"]\n\n[gate]\nmin_accounts = 5\nmax_mismatch_rate = \"0.05\"\nconsecutive_passing_runs = 1\n",
    )
    .unwrap();
    let created = billshadow_env(
        &[
            "migrate",
            "init",
            "--store",
            &empty,
            "--policy",
            "policy.toml",
        ],
        d,
        &env,
    );
    assert_eq!(created.code, 0, "{}", created.transcript());
    outputs.push(created.transcript());
    let (mut server, port) = metrics_server(d, &empty, &env);
    let (status, body) = get(port, "/metrics");
    let _ = server.kill();
    let mut server_stderr = String::new();
    let _ = server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut server_stderr);
    let _ = server.wait();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres://postgres:***@"), "{body}");
    outputs.push(format!("== metrics {status}\n{body}\n{server_stderr}"));
    // An SQL stack whose DSN (from the environment) carries a wrong password.
    let dsn = pg.url("store").replace(PASSWORD, "Dsn-Secret-99");
    std::fs::write(
        d.join("sql.toml"),
        format!(
            "[legacy]\nkind = \"sql\"\ndsn_env = \"LEGACY_DSN\"\nquery = \"SELECT 1\"\n\n[modern]\nkind = \"http\"\nurl = \"http://127.0.0.1:{echo}/bill/{{account_id}}\"\n"
        ),
    )
    .unwrap();
    let sql = record(
        &mut outputs,
        "sql stack",
        billshadow_env(
            &[
                "run",
                "--spec",
                "sql.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                &store,
            ],
            d,
            &[("LEGACY_DSN", &dsn)],
        ),
    );
    assert_eq!(sql.code, 3, "{}", sql.transcript());
    outputs.push(format!("== store tables\n{}", dump(&store)));

    let everything = outputs.join("\n");
    for secret in [PASSWORD, TOKEN, "Wrong-Secret-1", "Dsn-Secret-99"] {
        let hits: Vec<&str> = everything.lines().filter(|l| l.contains(secret)).collect();
        assert!(hits.is_empty(), "{secret} leaked: {hits:#?}");
    }
    assert!(
        everything.contains("token *** is not allowed"),
        "{everything}"
    );
}

#[test]
fn a_tls_postgres_store_works_with_verify_full_and_a_ca_file() {
    let pg = Postgres::start_with(Some("tls-pw"), true);
    pg.create_database("store");
    let ca = pg.ca_file().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cohort(d, 4);
    let bills = stack(Mode::Bill);
    write_spec(d, bills, bills, "");
    let base = pg.url("store");
    let verified = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
    let run = billshadow_env(
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            &verified,
        ],
        d,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let required = format!("{base}?sslmode=require");
    let shown = billshadow_env(
        &["show", "latest", "--store", &required, "--format", "json"],
        d,
        &[],
    );
    assert_eq!(
        shown.json()["summary"]["accounts_at_parity"],
        4,
        "{}",
        shown.transcript()
    );
    // The server takes TLS connections only, and verify-full refuses a server whose
    // certificate the given CA did not sign.
    let plain = format!("{base}?sslmode=disable");
    let refused = billshadow_env(&["runs", "--store", &plain], d, &[]);
    assert_ne!(refused.code, 0, "{}", refused.transcript());
    let other_ca = d.join("other-ca.pem");
    crate::support::postgres::self_signed_ca(&other_ca);
    let untrusted = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let refused = billshadow_env(&["runs", "--store", &untrusted], d, &[]);
    assert_ne!(refused.code, 0, "{}", refused.transcript());
}

/// An HTTPS stack (`openssl s_server -WWW` serving bill files) whose certificate a throwaway
/// CA signed: trusted with the spec's `ca_file`, refused without it.
#[test]
fn an_https_stack_is_trusted_through_the_specs_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = d.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = crate::support::postgres::certificates(&certs);
    let www = d.join("www");
    std::fs::create_dir_all(www.join("bill")).unwrap();
    write_cohort(d, 3);
    for i in 0..3 {
        let account = format!("acct-{i:04}");
        std::fs::write(
            www.join("bill").join(&account),
            format!("{{\"account_id\":\"{account}\",\"period_start\":\"2026-10-01\",\"period_end\":\"2026-10-31\",\"charge_code\":\"x\",\"amount\":\"1.00\",\"currency\":\"USD\"}}\n"),
        )
        .unwrap();
    }
    let port = free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(certs.join("server.crt"))
        .arg("-key")
        .arg(certs.join("server.key"))
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "openssl s_server does not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let spec = |ca_file: &str| {
        let side = |name: &str| {
            format!(
                "[{name}]\nkind = \"http\"\nurl = \"https://localhost:{port}/bill/{{account_id}}\"\ntimeout_ms = 5000\nretries = 0\nconcurrency = 1\n{ca_file}\n"
            )
        };
        std::fs::write(
            d.join("spec.toml"),
            format!("{}{}", side("legacy"), side("modern")),
        )
        .unwrap();
    };
    let run = |store: &str| {
        billshadow_env(
            &[
                "run",
                "--spec",
                "spec.toml",
                "--cohort",
                "cohort.csv",
                "--store",
                store,
            ],
            d,
            &[("SSL_CERT_FILE", "/nonexistent")],
        )
    };
    spec(&format!("ca_file = {:?}", ca.display().to_string()));
    let trusted = run("trusted.db");
    spec("");
    let untrusted = run("untrusted.db");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(trusted.code, 0, "{}", trusted.transcript());
    assert_eq!(untrusted.code, 3, "{}", untrusted.transcript());
    let shown = billshadow_env(
        &[
            "show",
            "latest",
            "--store",
            "untrusted.db",
            "--format",
            "json",
        ],
        d,
        &[],
    );
    // Every account failed to connect: the server's certificate is not trusted.
    assert_eq!(
        shown.json()["summary"]["accounts_errored"],
        3,
        "{}",
        shown.stdout
    );
}
