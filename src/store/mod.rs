//! The run store: runs, their cohorts, one outcome per account, diffs, totals and evidence.
//! SQLite by default (one file, zero set-up), PostgreSQL for teams; the same embedded
//! migrations and the same queries run on both (through sqlx's `Any` driver).
//!
//! Invariant: an account's outcome, diffs, totals and evidence are written in one transaction,
//! and `(run_id, account_id)` is the outcome's primary key, so an account is never counted
//! twice and never half-recorded, whenever the process dies.

pub(crate) mod cells;
mod diff;
mod evidence;
mod read;
pub(crate) mod signatures;
mod write;

use std::collections::BTreeMap;
use std::sync::Once;

use anyhow::{Context, anyhow, bail};
use billshadow_adapters::live::AccountRequest;
use billshadow_comparisons::{Currency, Diff, DiffClass};
use rust_decimal::Decimal;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::exit::{OpenError, StoreFailure};

pub(crate) use diff::{bill_body, diff_of_str, diff_of_value};

static DRIVERS: Once = Once::new();
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

/// Rows inserted per statement when a cohort is saved.
const COHORT_CHUNK: usize = 500;

/// Defines a stored word list: an enum whose `as_str` is what the store holds, whose
/// `FromStr` refuses anything else (a store that does not read back is an error, never a
/// default), and which serialises as that word.
macro_rules! stored_words {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        pub(crate) enum $name {
            $(#[serde(rename = $word)] $variant),+
        }

        impl $name {
            /// Every word, in declaration order.
            pub(crate) const ALL: &[$name] = &[$($name::$variant),+];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = anyhow::Error;

            fn from_str(s: &str) -> anyhow::Result<$name> {
                match $name::ALL.iter().find(|w| w.as_str() == s) {
                    Some(word) => Ok(*word),
                    None => bail!(
                        "the store holds an unknown {} `{s}`",
                        stringify!($name)
                            .chars()
                            .flat_map(|c| {
                                let space = c.is_uppercase().then_some(' ');
                                space.into_iter().chain(c.to_lowercase())
                            })
                            .collect::<String>()
                            .trim_start()
                    ),
                }
            }
        }
    };
}

stored_words! {
    /// What became of one account in a run.
    OutcomeStatus { Parity = "parity", Mismatch = "mismatch", StackError = "stack_error" }
}

/// Accounts counted by outcome status: the one place a status is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatusCounts {
    pub(crate) parity: u64,
    pub(crate) mismatch: u64,
    pub(crate) stack_error: u64,
}

impl StatusCounts {
    pub(crate) fn add(&mut self, status: OutcomeStatus, n: u64) {
        match status {
            OutcomeStatus::Parity => self.parity += n,
            OutcomeStatus::Mismatch => self.mismatch += n,
            OutcomeStatus::StackError => self.stack_error += n,
        }
    }

    /// Accounts with a verdict: at parity or mismatched.
    pub(crate) fn compared(&self) -> u64 {
        self.parity + self.mismatch
    }
}

stored_words! {
    /// Where a run is: being done, done, stopped before the end (resumable), or failed.
    RunStatus {
        Running = "running",
        Completed = "completed",
        Interrupted = "interrupted",
        Failed = "failed",
    }
}

stored_words! {
    /// A shadow run compares legacy with modern; a calibration run replays legacy twice.
    RunKind { Shadow = "shadow", Calibration = "calibration" }
}

/// One account's result, as the runner hands it to the store.
#[derive(Debug, Clone)]
pub(crate) struct AccountOutcome {
    pub(crate) account_id: String,
    /// The account's cell, from the cohort: totals are also added up per cell as they are stored.
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) status: OutcomeStatus,
    pub(crate) diffs: Vec<Diff>,
    pub(crate) diffs_failing: u64,
    pub(crate) waived: u64,
    pub(crate) lines_legacy: u64,
    pub(crate) lines_modern: u64,
    pub(crate) lines_matched: u64,
    pub(crate) lines_mismatched: u64,
    pub(crate) retries: u64,
    pub(crate) error: String,
    pub(crate) totals: Vec<(Currency, Decimal, Decimal)>,
    /// Both sides' lines (JSON arrays), kept for mismatched accounts.
    pub(crate) evidence: Option<(String, String)>,
    /// The account's amounts per customer and currency, compared across the run's accounts
    /// once they are all in.
    pub(crate) customers: Vec<billshadow_comparisons::diff::CustomerPart>,
}

/// A worker's claim on a run's accounts: who claims, and for how long.
pub(crate) struct Claim<'a> {
    pub(crate) run_id: &'a str,
    /// Unique per worker process.
    pub(crate) worker: &'a str,
    pub(crate) lease_ms: i64,
}

/// A run as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) kind: RunKind,
    pub(crate) status: RunStatus,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    pub(crate) started_by: String,
    pub(crate) spec_path: String,
    pub(crate) spec_hash: String,
    pub(crate) cohort_path: String,
    pub(crate) cohort_hash: String,
    pub(crate) accounts_total: i64,
    pub(crate) accounts_done: i64,
    pub(crate) as_of: String,
    /// What each stack reported as its version when the run started.
    pub(crate) stack_versions: crate::versions::StackVersions,
}

/// What a new run records before any work starts.
pub(crate) struct NewRun<'a> {
    pub(crate) id: &'a str,
    pub(crate) kind: RunKind,
    pub(crate) started_by: &'a str,
    pub(crate) spec_path: &'a str,
    pub(crate) spec_text: &'a str,
    pub(crate) spec_hash: &'a str,
    pub(crate) cohort_path: &'a str,
    pub(crate) cohort_hash: &'a str,
    pub(crate) as_of: &'a str,
    /// `crate::versions::to_stored`.
    pub(crate) stack_versions: &'a str,
}

pub(crate) struct Store {
    pool: AnyPool,
    /// The store's URL as messages show it, its password masked (`redact::urls`).
    pub(crate) url: String,
    /// SQLite (else PostgreSQL): bulk inserts use anonymous `?` parameters there, which SQLite
    /// binds by position, instead of `$N`, which it looks up by name one at a time.
    sqlite: bool,
}

/// `--store` or `BILLSHADOW_STORE`, else `./billshadow.db`.
pub(crate) fn default_url(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| {
            std::env::var("BILLSHADOW_STORE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "billshadow.db".to_owned())
}

/// What a command may do to the run store. Only the commands that start something create a
/// store (`run`, `demo`, `migrate init`); the others need one that exists, and the commands
/// that only read open it read-only and never migrate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only: no file is created, no migration runs, no transaction can write.
    ReadOnly,
    /// Read and write an existing store (migrated to this version if it is older).
    Write,
    /// Create the store if it does not exist, then as `Write`.
    Create,
}

impl Access {
    /// What each `migrate` subcommand needs.
    pub(crate) fn for_migrate(command: &crate::args::MigrateCommand) -> Access {
        use crate::args::MigrateCommand as M;
        match command {
            M::Init => Access::Create,
            M::Lint
            | M::Keygen { .. }
            | M::Status
            | M::Plan
            | M::Gate { .. }
            | M::Routes
            | M::Audit { .. } => Access::ReadOnly,
            M::Advance { .. }
            | M::Reconcile { .. }
            | M::Rollback { .. }
            | M::Approve { .. }
            | M::Hold { .. }
            | M::Release { .. } => Access::Write,
        }
    }
}

/// A store that applied another text of migration `version` than this version's: made by a
/// development build from before migrations were append-only (the first ones were edited
/// then). Its tables are not what this version expects, so it is refused by name (exit 2)
/// rather than with sqlx's bare checksum error or a missing column half-way.
fn edited_migration(url: &str, version: i64) -> anyhow::Error {
    let description = MIGRATOR
        .iter()
        .find(|m| m.version == version)
        .map_or("", |m| &*m.description);
    OpenError::error(
        url,
        format!(
            "was made by a development build from before the schema was versioned (its migration {version} `{description}` differs from this version's), so it cannot be upgraded; make a new store (`billshadow run` or `migrate init`)"
        ),
    )
}

/// The file of a SQLite store, and the URL's other query parameters.
fn sqlite_file(url: &str) -> Option<(String, Vec<String>)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let rest = match url.strip_prefix("sqlite://") {
        Some(rest) => rest,
        None if url.contains("://") => return None,
        None => url.strip_prefix("sqlite:").unwrap_or(url),
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .map(str::to_owned)
        .collect();
    Some((path.to_owned(), params))
}

/// A database error (full disk, read-only file, lost server) as the `StoreFailure` of the store
/// at `url`; other errors (a cohort's) as they are.
pub(crate) fn name_failure(error: anyhow::Error, url: &str) -> anyhow::Error {
    if error.chain().any(|e| e.is::<sqlx::Error>()) {
        anyhow::Error::new(StoreFailure {
            url: url.to_owned(),
            problem: format!("failed: {error:#}"),
        })
    } else {
        error
    }
}

/// Every connection's settings. SQLite: WAL lets readers work during a run; a busy timeout
/// lets two processes share the file; NORMAL sync is safe against a crash of the process (not
/// of the machine's power); a reader changes nothing. PostgreSQL: no JIT compilation; a
/// reader's transactions are read-only.
async fn prepare_connection(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    read_only: bool,
) -> Result<(), sqlx::Error> {
    if sqlite {
        let pragmas: &[&str] = if read_only {
            &["PRAGMA busy_timeout = 10000", "PRAGMA query_only = ON"]
        } else {
            // The busy timeout first: switching a new file to WAL takes its lock, and two
            // workers opening one new store at once would otherwise fail at once ("database
            // is locked") instead of waiting for each other.
            // A writer's page cache is 256 KiB, not SQLite's 2 MB: a run's connections
            // filled theirs only once the store grew past a few hundred thousand accounts,
            // so a run's memory grew with its cohort up to that ceiling (8 MiB for four
            // connections). The operating system caches the file anyway; a run of 500,000
            // accounts was no slower with the smaller cache (BENCHMARKS.md).
            &[
                "PRAGMA busy_timeout = 10000",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA cache_size = -256",
            ]
        };
        for pragma in pragmas {
            sqlx::query(pragma).execute(&mut *conn).await?;
        }
    } else {
        // No JIT: once a run's cohort held millions of accounts, the planner's estimate for a
        // page claim passed `jit_above_cost`, and compiling the query took 390 ms of the
        // claim's 394 (3 ms without), each time; a store's statements are index lookups and
        // grouped reads, never long enough to pay compilation back.
        sqlx::query("SET jit = off").execute(&mut *conn).await?;
        if read_only {
            sqlx::query("SET default_transaction_read_only = on")
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Whether a SQLite error is SQLITE_BUSY or SQLITE_LOCKED (any extended code of either).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// A SQLite file's header.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks, without opening it, that a SQLite store's file can be what `access` needs: it
/// exists (unless it may be created) and is a SQLite database. Whether it holds a database.
fn check_sqlite_file(url: &str, path: &str, access: Access) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if access == Access::Create {
                return Ok(false);
            }
            return Err(OpenError::error(
                url,
                "does not exist (`billshadow run`, `demo` and `migrate init` create one; is --store or BILLSHADOW_STORE misspelt?)",
            ));
        }
        Err(e) => return Err(OpenError::error(url, format!("cannot be read: {e}"))),
    };
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(OpenError::error(url, "is a directory, not a SQLite file"));
    }
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(OpenError::error(url, format!("cannot be read: {e}"))),
        }
    }
    if read == 0 {
        // SQLite takes an empty file for an empty database; only a creator may fill it.
        if access == Access::Create {
            return Ok(false);
        }
        return Err(OpenError::error(
            url,
            "is an empty file, not a billshadow run store",
        ));
    }
    if read < header.len() || &header != SQLITE_MAGIC {
        return Err(OpenError::error(url, "is not a SQLite database"));
    }
    Ok(true)
}

/// Opens one connection to the store, prepared as the pool's are and, for a writer of an
/// existing SQLite file, made to take the write lock; within 10 s, or a `StoreFailure`.
async fn probe(
    url: &str,
    full: &str,
    sqlite: bool,
    read_only: bool,
    existing: bool,
) -> anyhow::Result<()> {
    let probe_once = || async {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(full).await?;
        prepare_connection(&mut conn, sqlite, read_only).await?;
        if sqlite && !read_only && existing {
            // A write rolled back: a read-only file, folder or mount refuses it.
            let version: i64 = sqlx::query("PRAGMA user_version")
                .fetch_one(&mut conn)
                .await?
                .try_get(0)?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
            let wrote = sqlx::query(&format!("PRAGMA user_version = {version}"))
                .execute(&mut conn)
                .await;
            sqlx::query("ROLLBACK").execute(&mut conn).await?;
            wrote?;
        }
        sqlx::Connection::close(conn).await
    };
    // SQLite answers "database is locked" at once, without waiting out the busy timeout,
    // when two processes open one new file together and both switch it to WAL (each holds
    // a read lock and wants the exclusive one): the one refused tries again.
    let probe = async {
        loop {
            match probe_once().await {
                Err(e) if sqlite && is_busy(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                done => return done,
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(StoreFailure {
            url: url.to_owned(),
            problem: format!("cannot be opened for this command: {e}"),
        })),
        Err(_) => Err(anyhow::Error::new(StoreFailure {
            url: url.to_owned(),
            problem: "did not answer within 10 s".to_owned(),
        })),
    }
}

/// A time the store holds (RFC 3339), or `None` when it does not read as one.
fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens the store a command's `--store` names (the default store without one).
    pub(crate) async fn open_named(flag: Option<&str>, access: Access) -> anyhow::Result<Store> {
        Store::open_with(&default_url(flag), access).await
    }

    /// Opens the store. `Create` makes a SQLite file if needed and migrates; `Write` needs a
    /// run store that exists (and migrates it if older); `ReadOnly` needs one at this
    /// version, opens SQLite with `mode=ro` and PostgreSQL with read-only transactions, and
    /// never migrates. A store that does not exist, a file that is not a SQLite database and a
    /// database without the run store's schema fail at once with an `OpenError`.
    pub(crate) async fn open_with(url: &str, access: Access) -> anyhow::Result<Store> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        // The URL as every message shows it: its password masked.
        let shown = billshadow_adapters::redact::urls(url);
        // A database already there must be a run store, whatever the access.
        let (full, sqlite, existing) = match sqlite_file(url) {
            Some((path, params)) => {
                let existing = check_sqlite_file(&shown, &path, access)?;
                let mode = match access {
                    Access::ReadOnly => "ro",
                    Access::Write => "rw",
                    Access::Create => "rwc",
                };
                let mut full = format!("sqlite://{path}?mode={mode}");
                for p in params {
                    full.push('&');
                    full.push_str(&p);
                }
                (full, true, existing)
            }
            None => (url.to_owned(), false, access != Access::Create),
        };
        let read_only = access == Access::ReadOnly;
        // One connection first, prepared as the pool's are and, for a writer, made to take
        // the write lock: a read-only, full or unreachable store fails here at once, named
        // (the pool would retry a failing connection until its acquire timeout).
        probe(url, &full, sqlite, read_only, existing).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move { prepare_connection(conn, sqlite, read_only).await })
            })
            .connect(&full)
            .await
            .map_err(|e| anyhow!(billshadow_adapters::redact::urls(&e.to_string())))
            .with_context(|| format!("cannot open the run store {shown}"))?;
        let store = Store {
            pool,
            url: shown,
            sqlite,
        };
        // A SQLite file with no table at all is a store another worker has just created and
        // not migrated yet (or an empty database): it is migrated, not refused.
        let empty = sqlite
            && access == Access::Create
            && sqlx::query("SELECT COUNT(*) FROM sqlite_master")
                .fetch_one(&store.pool)
                .await
                .ok()
                .and_then(|r| r.try_get::<i64, _>(0).ok())
                == Some(0);
        if existing && !empty {
            if let Err(e) = store.check_schema(access).await {
                store.pool.close().await;
                return Err(e);
            }
        }
        if access != Access::ReadOnly {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Brings the store's schema to this version.
    async fn migrate(&self) -> anyhow::Result<()> {
        let (store, sqlite) = (self, self.sqlite);
        // PostgreSQL migrates under an advisory lock; SQLite has none, so a worker that
        // met another one migrating the same new file (`table … already exists`) tries
        // again once that one is done.
        let mut migrated = MIGRATOR.run(&store.pool).await;
        for _ in 0..5 {
            if !(sqlite
                && matches!(
                    migrated,
                    Err(sqlx::migrate::MigrateError::Execute(_)
                        | sqlx::migrate::MigrateError::ExecuteMigration(..))
                ))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            migrated = MIGRATOR.run(&store.pool).await;
        }
        match migrated {
            Ok(()) => {}
            Err(sqlx::migrate::MigrateError::VersionMismatch(version)) => {
                return Err(edited_migration(&store.url, version));
            }
            Err(e) => {
                return Err(anyhow!(e))
                    .with_context(|| format!("cannot migrate the run store {}", store.url));
            }
        }
        Ok(())
    }

    /// That the database holds a run store: its migrations table, every migration it applied
    /// as this version knows it (migrations are append-only: a released one is never
    /// edited), and (to read it without migrating) every migration this version knows.
    async fn check_schema(&self, access: Access) -> anyhow::Result<()> {
        let rows =
            sqlx::query("SELECT version, checksum FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) => {
                return Err(OpenError::error(
                    &self.url,
                    format!(
                        "is a database but not a billshadow run store (no schema: {}); `billshadow run` or `migrate init` creates a store",
                        e.message()
                    ),
                ));
            }
            Err(e) => {
                return Err(anyhow!(e))
                    .with_context(|| format!("cannot read the run store {}", self.url));
            }
        };
        let applied: Vec<(i64, Vec<u8>)> = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<Vec<u8>, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .with_context(|| format!("cannot read the run store {}'s schema", self.url))?;
        // A store made by a development build from before migrations were append-only applied
        // an earlier text of a migration: its tables are not what this version's queries (or
        // its later migrations) expect, and sqlx would refuse it with a bare checksum error.
        if let Some(changed) = MIGRATOR.iter().find(|m| {
            applied
                .iter()
                .any(|(version, checksum)| *version == m.version && **checksum != *m.checksum)
        }) {
            return Err(edited_migration(&self.url, changed.version));
        }
        let applied: Vec<i64> = applied.into_iter().map(|(version, _)| version).collect();
        if access == Access::ReadOnly {
            if let Some(missing) = MIGRATOR
                .iter()
                .find(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            {
                return Err(OpenError::error(
                    &self.url,
                    format!(
                        "has an older schema (migration {} `{}` not applied); a command that writes (`billshadow run`, `migrate init`) upgrades it",
                        missing.version, missing.description
                    ),
                ));
            }
        }
        Ok(())
    }

    fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}
