//! The run store's history: migrations are append-only, and a store made by an earlier
//! release (kept in `tests/fixtures/stores/`, see the README there) opens, migrates and reads
//! back with this one, on SQLite and on PostgreSQL.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha384};

use crate::support::{billshadow, cohort, free_port, postgres::Postgres, repo, write_spec};

/// Every migration ever released, with the checksum sqlx records for it in each store it
/// migrates (SHA-384 of the file). A store remembers these: editing a released migration makes
/// every store made before the edit fail to open. Append a line when you add a migration;
/// never change one.
const RELEASED: &[(&str, &str)] = &[
    (
        "0001_runs.sql",
        "015c3b8f1e6be078d4316ace81056cba6198eacf0b9b81664c1069b78a19268ef78020e48023457e768f5c46164b53cb",
    ),
    (
        "0002_controller.sql",
        "39f0612cc026e10ca7cd78b48df475ef456fb10eb2bb6f7f1add5625672fb7789dd012bdb71fa8adc40587fe433c52ab",
    ),
    (
        "0003_controller_safety.sql",
        "904548b93798592713c976def7b7a3109b8434ff8d425ca032144bf5ff5f2c0acdd6b9b6ff9fe33e0035c2fc7d59552f",
    ),
    (
        "0004_cohort_position.sql",
        "dc9f674f5fe16d64a2e6431c310a8e4ec2ad17c0b59c4ee43abf986ead2da09ab4149fafce66792c4a76fbef3edaeca6",
    ),
    (
        "0005_signatures.sql",
        "6124f086eaf9c5d52cd4a596bcadf8cbec6520c31ab41871cf412f7cd96db3e2f0c513f08c6ec06138b8aafd8383c690",
    ),
    (
        "0006_workers.sql",
        "3b9af77d1bb550b56a963a1bbf0f42cb9d92e9a7df4fc80caceb2e6048ed62091ab30254c62e6cc8b2e2fff34dfbbf86",
    ),
    (
        "0007_cell_totals_per_writer.sql",
        "fe7f30e84bd4304cccce731a4d80ad1f2d61dc32e01ebe6953d36a283b111a236fd8fb6430d2f80a58b1e5e26c34e550",
    ),
];

/// The store fixtures' commit, and the run each holds (the same accounts, stacks and diffs).
const FIXTURE: &str = "store-1c69bf0";
const FIXTURE_RUN_SQLITE: &str = "run-20261125T173708.417Z-95ba";
const FIXTURE_RUN_POSTGRES: &str = "run-20261125T173801.775Z-181f";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn migrations_dir() -> std::path::PathBuf {
    repo().join("src/store/migrations")
}

/// The migration files, in order.
fn migration_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(migrations_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn released_migrations_are_never_edited_only_appended_to() {
    let files = migration_files();
    let mut problems = Vec::new();
    for (i, (name, checksum)) in RELEASED.iter().enumerate() {
        let Ok(text) = std::fs::read(migrations_dir().join(name)) else {
            problems.push(format!(
                "{name} was released and is gone: stores that applied it no longer open; restore it"
            ));
            continue;
        };
        let now = hex(&Sha384::digest(&text));
        if now != *checksum {
            problems.push(format!(
                "{name} was released and has been edited (sqlx checksum {now}, released as {checksum}): every store made before the edit would fail to open; restore it and put the change in a new migration ({:04}_….sql)",
                RELEASED.len() + 1
            ));
        }
        if files.get(i) != Some(&(*name).to_owned()) {
            problems.push(format!(
                "migration {} should be {name}, found {:?}: released migrations keep their names and order",
                i + 1,
                files.get(i)
            ));
        }
    }
    for (i, name) in files.iter().enumerate().skip(RELEASED.len()) {
        let version = i + 1;
        if !name.starts_with(&format!("{version:04}_")) {
            problems.push(format!(
                "{name}: a new migration takes the next number, {version:04}_…"
            ));
        }
        let text = std::fs::read(migrations_dir().join(name)).unwrap();
        problems.push(format!(
            "{name} is new: pin it by adding it to RELEASED in tests/store_history.rs with its checksum {} (from then on it is never edited)",
            hex(&Sha384::digest(&text))
        ));
    }
    assert!(
        problems.is_empty(),
        "migrations are append-only (ARCHITECTURE.md, `store/`):\n  {}",
        problems.join("\n  ")
    );
}

/// The fixture's run as the release that made it showed it (`show RUN --format json`).
fn fixture_show() -> Value {
    let path = repo().join(format!("tests/fixtures/stores/{FIXTURE}.show.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Reads the old run back, moves the store on with this binary (a new shadow run, which
/// migrates it) and reads both runs back: the old one exactly as its release showed it.
fn reads_back_then_takes_a_new_run(d: &Path, store: &str, old_run: &str) {
    let expected = fixture_show();
    let shown = |run: &str| {
        let show = billshadow(&["show", run, "--store", store, "--format", "json"], d);
        assert_eq!(
            show.code,
            1,
            "the fixture's run has mismatches\n{}",
            show.transcript()
        );
        show.json()
    };
    // What this release adds to the document (schema v2: the causes beside the summary and
    // each diff's signature) is checked apart; the rest reads back exactly as before.
    let without_run = |mut doc: Value| {
        let o = doc.as_object_mut().unwrap();
        o.remove("run");
        o.remove("schema");
        o.remove("signatures");
        o.remove("signatures_left_off");
        for d in o["diffs"].as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("signature");
        }
        doc
    };
    // The old run has no stored signatures: they are computed on read, and every diff
    // names one of them.
    let causes_on_read = |doc: &Value| {
        assert_eq!(doc["schema"], "billshadow.diff/v2");
        let ids: Vec<&str> = (doc["signatures"].as_array().unwrap().iter())
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        let diffs = doc["diffs"].as_array().unwrap();
        assert!(!ids.is_empty() || diffs.is_empty(), "{doc:#}");
        for d in doc["diffs"].as_array().unwrap() {
            assert!(ids.contains(&d["signature"].as_str().unwrap()), "{d}");
        }
    };
    // The store is behind this version's schema: a command that only reads says so by name
    // and does not migrate it; a command that writes (`migrate init`) migrates it.
    let refused = billshadow(&["show", old_run, "--store", store, "--format", "json"], d);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(
        refused
            .stderr
            .contains("has an older schema (migration 3 `controller safety` not applied)"),
        "{}",
        refused.transcript()
    );
    let init = billshadow(&["migrate", "init", "--store", store], d);
    assert_eq!(init.code, 0, "{}", init.transcript());
    let before = shown(old_run);
    assert_eq!(before["run"]["id"], old_run);
    assert_eq!(before["run"]["status"], "completed");
    assert_eq!(before["summary"]["accounts_compared"], 50);
    assert_eq!(before["summary"]["accounts_mismatched"], 13);
    causes_on_read(&before);
    assert_eq!(
        without_run(before.clone()),
        without_run(expected.clone()),
        "the fixture's run reads back differently from how its release showed it"
    );
    let explain = billshadow(&["explain", "acct-000007", "--store", store], d);
    assert_eq!(
        explain.code,
        1,
        "a mismatched account\n{}",
        explain.transcript()
    );
    assert!(
        explain.stdout.contains("acct-000007"),
        "{}",
        explain.transcript()
    );
    let md = billshadow(&["report", old_run, "--store", store, "--format", "md"], d);
    assert_eq!(md.code, 1, "{}", md.transcript());
    assert!(md.stdout.contains("13"), "{}", md.transcript());
    let audit = billshadow(&["migrate", "audit", "--verify", "--store", store], d);
    assert_eq!(audit.code, 0, "{}", audit.transcript());

    // A command that writes migrates the store to this version and records a new run in it.
    write_spec(d, free_port(), "", "", "");
    cohort(d, 20);
    let run = billshadow(
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
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.transcript());
    let runs = billshadow(&["runs", "--store", store, "--format", "json"], d).json();
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{runs}");
    assert!(ids.contains(&old_run), "{runs}");
    let latest = billshadow(&["show", "latest", "--store", store, "--format", "json"], d).json();
    assert_ne!(latest["run"]["id"], old_run);
    assert_eq!(latest["summary"]["accounts_compared"], 20);
    // The new run's causes were stored when it completed; the old one's still read back.
    causes_on_read(&latest);
    causes_on_read(&shown(old_run));
    // The old run is untouched by the migration and the new run.
    assert_eq!(without_run(shown(old_run)), without_run(expected));
    let status = billshadow(&["migrate", "status", "--store", store], d);
    assert_eq!(status.code, 0, "{}", status.transcript());
    let audit = billshadow(&["migrate", "audit", "--verify", "--store", store], d);
    assert_eq!(audit.code, 0, "{}", audit.transcript());
}

/// The versions a store has applied, with their checksums.
async fn applied(pool: &sqlx::AnyPool) -> Vec<(i64, String)> {
    use sqlx::Row;
    sqlx::query(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<i64, _>(0), hex(&r.get::<Vec<u8>, _>(1))))
    .collect()
}

/// Every migration of this version applied, each with the checksum it was released with.
fn assert_at_this_version(applied: &[(i64, String)]) {
    let expected: Vec<(i64, String)> = migration_files()
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let text = std::fs::read(migrations_dir().join(name)).unwrap();
            (i as i64 + 1, hex(&Sha384::digest(&text)))
        })
        .collect();
    assert_eq!(
        applied,
        expected.as_slice(),
        "the store is not at this version's schema"
    );
}

/// The checksum of `0001_runs.sql` as commit 81ae21b had it, one edit before it was released:
/// stores made by development builds of that time recorded it.
const EDITED_BEFORE_RELEASE: &str = "c464f752fbdc7b15c603d46ff9de05d2b37a67084e85da2736d861b02f08597aa5e188923d6ab330bdc37ae50554174a";

const REFUSED: &str = "was made by a development build from before the schema was versioned (its migration 1 `runs` differs from this version's), so it cannot be upgraded";

/// Makes a store look as if it applied another text of migration 1.
async fn record_an_earlier_text_of_migration_1(pool: &sqlx::AnyPool) {
    let checksum: Vec<u8> = (0..EDITED_BEFORE_RELEASE.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EDITED_BEFORE_RELEASE[i..i + 2], 16).unwrap())
        .collect();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
        .bind(checksum)
        .execute(pool)
        .await
        .unwrap();
}

/// Every command, reading or writing, refuses a store from before the versioned schema by
/// name, with exit code 2.
fn assert_refused(d: &Path, store: &str) {
    write_spec(d, free_port(), "", "", "");
    cohort(d, 5);
    for args in [
        &["show", "latest", "--store", store][..],
        &["runs", "--store", store][..],
        &[
            "run",
            "--spec",
            "spec.toml",
            "--cohort",
            "cohort.csv",
            "--store",
            store,
        ][..],
        &["migrate", "init", "--store", store][..],
    ] {
        let run = billshadow(args, d);
        assert_eq!(run.code, 2, "{args:?}\n{}", run.transcript());
        assert!(
            run.stderr.contains(REFUSED),
            "{args:?}\n{}",
            run.transcript()
        );
    }
}

fn copy_fixture_files(d: &Path) {
    std::fs::copy(
        repo().join("tests/fixtures/stores/policy.toml"),
        d.join("policy.toml"),
    )
    .unwrap();
}

#[test]
fn a_sqlite_store_made_by_the_previous_release_opens_migrates_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_fixture_files(d);
    std::fs::copy(
        repo().join(format!("tests/fixtures/stores/{FIXTURE}.db")),
        d.join("old.db"),
    )
    .unwrap();
    reads_back_then_takes_a_new_run(d, "old.db", FIXTURE_RUN_SQLITE);
    let url = format!("sqlite://{}?mode=ro", d.join("old.db").display());
    let versions = crate::support::runtime().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let versions = applied(&pool).await;
        pool.close().await;
        versions
    });
    assert_at_this_version(&versions);
}

#[test]
fn a_store_from_before_the_versioned_schema_is_refused_by_name_not_half_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_fixture_files(d);
    std::fs::copy(
        repo().join(format!("tests/fixtures/stores/{FIXTURE}.db")),
        d.join("old.db"),
    )
    .unwrap();
    let url = format!("sqlite://{}", d.join("old.db").display());
    crate::support::runtime().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        record_an_earlier_text_of_migration_1(&pool).await;
        pool.close().await;
    });
    assert_refused(d, "old.db");
}

#[test]
fn a_postgres_store_made_by_the_previous_release_opens_migrates_and_reads_back() {
    let pg = Postgres::start();
    pg.create_database("old");
    let url = pg.url("old");
    // The dump as pg_dump wrote it, less its psql meta-commands (`\restrict`).
    let dump = std::fs::read_to_string(
        repo().join(format!("tests/fixtures/stores/{FIXTURE}.postgres.sql")),
    )
    .unwrap();
    let dump: String = dump
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .map(|l| format!("{l}\n"))
        .collect();
    crate::support::runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(&dump).execute(&pool).await.unwrap();
        pool.close().await;
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_fixture_files(d);
    reads_back_then_takes_a_new_run(d, &url, FIXTURE_RUN_POSTGRES);
    let versions = crate::support::runtime().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let versions = applied(&pool).await;
        // Then as if a development build had made it: refused (`run` migrates a PostgreSQL
        // store without reading it first, so sqlx's own check is named the same way).
        record_an_earlier_text_of_migration_1(&pool).await;
        pool.close().await;
        versions
    });
    assert_at_this_version(&versions);
    assert_refused(d, &url);
}
