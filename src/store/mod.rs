//! The run store: runs, their cohorts, one outcome per account, diffs, totals and evidence.
//! SQLite by default (one file, zero set-up), PostgreSQL for teams; the same embedded
//! migrations and the same queries run on both (through sqlx's `Any` driver).
//!
//! Invariant: an account's outcome, diffs, totals and evidence are written in one transaction,
//! and `(run_id, account_id)` is the outcome's primary key, so an account is never counted
//! twice and never half-recorded, whenever the process dies.

use std::collections::BTreeMap;
use std::sync::Once;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, anyhow, bail};
use billshadow_adapters::live::AccountRequest;
use billshadow_comparisons::{Currency, Diff, DiffClass};
use rust_decimal::Decimal;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

static DRIVERS: Once = Once::new();
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

/// Rows inserted per statement when a cohort is saved.
const COHORT_CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutcomeStatus {
    Parity,
    Mismatch,
    StackError,
}

impl OutcomeStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Parity => "parity",
            OutcomeStatus::Mismatch => "mismatch",
            OutcomeStatus::StackError => "stack_error",
        }
    }
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
}

/// A run as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) status: String,
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
}

/// What a new run records before any work starts.
pub(crate) struct NewRun<'a> {
    pub(crate) id: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) started_by: &'a str,
    pub(crate) spec_path: &'a str,
    pub(crate) spec_text: &'a str,
    pub(crate) spec_hash: &'a str,
    pub(crate) cohort_path: &'a str,
    pub(crate) cohort_hash: &'a str,
    pub(crate) as_of: &'a str,
}

pub(crate) struct Store {
    pool: AnyPool,
    /// The store's URL as messages show it, its password masked (`redact::urls`).
    pub(crate) url: String,
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
    pub(crate) fn for_migrate(command: &crate::cli::MigrateCommand) -> Access {
        use crate::cli::MigrateCommand as M;
        match command {
            M::Init => Access::Create,
            M::Lint | M::Status | M::Plan | M::Gate { .. } | M::Routes | M::Audit { .. } => {
                Access::ReadOnly
            }
            M::Advance { .. }
            | M::Rollback { .. }
            | M::Approve { .. }
            | M::Hold { .. }
            | M::Release { .. } => Access::Write,
        }
    }

    fn code(self) -> u8 {
        match self {
            Access::ReadOnly => 0,
            Access::Write => 1,
            Access::Create => 2,
        }
    }

    fn from_code(code: u8) -> Access {
        match code {
            1 => Access::Write,
            2 => Access::Create,
            _ => Access::ReadOnly,
        }
    }
}

/// The access `Store::open` grants: read-only unless the command being run said otherwise
/// (`main` sets it for each `migrate` subcommand, whose controller calls `Store::open`).
static DEFAULT_ACCESS: AtomicU8 = AtomicU8::new(0);

pub(crate) fn set_default_access(access: Access) {
    DEFAULT_ACCESS.store(access.code(), Ordering::SeqCst);
}

/// Why a store could not be opened when the fault is in what was named: a store that does not
/// exist, a file that is not a database, a database that is not a run store. A usage error
/// (exit 2), whichever command meets it.
#[derive(Debug, thiserror::Error)]
#[error("the run store {url} {problem}")]
pub(crate) struct OpenError {
    url: String,
    problem: String,
}

impl OpenError {
    pub(crate) fn error(url: &str, problem: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(OpenError {
            url: url.to_owned(),
            problem: problem.into(),
        })
    }
}

/// A store that exists but cannot do what the command needs: read-only, full, gone.
/// Exit code 3, naming the store.
#[derive(Debug, thiserror::Error)]
#[error("the run store {url} {problem}")]
pub(crate) struct StoreFailure {
    pub(crate) url: String,
    pub(crate) problem: String,
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
/// of the machine's power); a reader changes nothing. PostgreSQL: a reader's transactions are
/// read-only.
async fn prepare_connection(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    read_only: bool,
) -> Result<(), sqlx::Error> {
    if sqlite {
        let pragmas: &[&str] = if read_only {
            &["PRAGMA busy_timeout = 10000", "PRAGMA query_only = ON"]
        } else {
            &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA busy_timeout = 10000",
            ]
        };
        for pragma in pragmas {
            sqlx::query(pragma).execute(&mut *conn).await?;
        }
    } else if read_only {
        sqlx::query("SET default_transaction_read_only = on")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens the store with the access the running command was given (read-only unless
    /// `set_default_access` said otherwise).
    pub(crate) async fn open(url: &str) -> anyhow::Result<Store> {
        let access = Access::from_code(DEFAULT_ACCESS.load(Ordering::SeqCst));
        Store::open_with(url, access).await
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
        let probe = async {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&full).await?;
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
        match tokio::time::timeout(std::time::Duration::from_secs(10), probe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(anyhow::Error::new(StoreFailure {
                    url: url.to_owned(),
                    problem: format!("cannot be opened for this command: {e}"),
                }));
            }
            Err(_) => {
                return Err(anyhow::Error::new(StoreFailure {
                    url: url.to_owned(),
                    problem: "did not answer within 10 s".to_owned(),
                }));
            }
        }
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
        let store = Store { pool, url: shown };
        if existing {
            if let Err(e) = store.check_schema(access).await {
                store.pool.close().await;
                return Err(e);
            }
        }
        if access != Access::ReadOnly {
            match MIGRATOR.run(&store.pool).await {
                Ok(()) => {}
                Err(sqlx::migrate::MigrateError::VersionMismatch(version)) => {
                    return Err(edited_migration(&store.url, version));
                }
                Err(e) => {
                    return Err(anyhow!(e))
                        .with_context(|| format!("cannot migrate the run store {}", store.url));
                }
            }
        }
        Ok(store)
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

    /// Records a run and its cohort, streamed from `cohort` in chunks, in one transaction: a
    /// run exists whole or not at all. An account listed twice fails it.
    pub(crate) async fn create_run(
        &self,
        run: &NewRun<'_>,
        cohort: impl Iterator<Item = anyhow::Result<AccountRequest>>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, kind, status, started_at, finished_at, started_by, spec_path, spec_text, spec_hash, \
             cohort_path, cohort_hash, accounts_total, as_of, stack_versions, note) \
             VALUES ($1, $2, 'running', $3, NULL, $4, $5, $6, $7, $8, $9, 0, $10, '{}', '')",
        )
        .bind(run.id)
        .bind(run.kind)
        .bind(now())
        .bind(run.started_by)
        .bind(run.spec_path)
        .bind(run.spec_text)
        .bind(run.spec_hash)
        .bind(run.cohort_path)
        .bind(run.cohort_hash)
        .bind(run.as_of)
        .execute(&mut *tx)
        .await?;
        let mut position = 0i64;
        let mut chunk: Vec<AccountRequest> = Vec::with_capacity(COHORT_CHUNK);
        let mut cohort = cohort.peekable();
        while cohort.peek().is_some() {
            chunk.clear();
            while chunk.len() < COHORT_CHUNK {
                match cohort.next() {
                    Some(account) => chunk.push(account?),
                    None => break,
                }
            }
            insert_cohort_chunk(&mut tx, run.id, position, &chunk).await?;
            position += chunk.len() as i64;
        }
        sqlx::query("UPDATE runs SET accounts_total = $1 WHERE id = $2")
            .bind(position)
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(position as u64)
    }

    /// Up to `limit` accounts of a run that have no outcome yet (with `redo_errors`, or
    /// whose outcome is `stack_error`), after cohort position `after` (exclusive), in cohort
    /// order, with their positions: a run pages through its cohort, so its memory does not
    /// grow with the cohort.
    pub(crate) async fn pending_page(
        &self,
        run_id: &str,
        after: i64,
        limit: usize,
        redo_errors: bool,
    ) -> anyhow::Result<Vec<(i64, AccountRequest)>> {
        let rows = sqlx::query(&format!(
            "SELECT c.account_id, c.customer_id, c.partition, c.region, c.period_start, c.period_end, c.position FROM cohort c \
             WHERE c.run_id = $1 AND c.position > $2 \
             AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.run_id = c.run_id AND o.account_id = c.account_id{}) \
             ORDER BY c.position LIMIT $3",
            kept_outcomes(redo_errors)
        ))
        .bind(run_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(6)?, account_of_row(r)?)))
            .collect()
    }

    /// How many accounts of a run have no outcome yet (with `redo_errors`, or a
    /// `stack_error` one).
    pub(crate) async fn pending_count(
        &self,
        run_id: &str,
        redo_errors: bool,
    ) -> anyhow::Result<u64> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) FROM cohort c WHERE c.run_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.run_id = c.run_id AND o.account_id = c.account_id{})",
            kept_outcomes(redo_errors)
        ))
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// Records outcomes, all or none. With `replace_errors`, an account's `stack_error`
    /// outcome is replaced in the same transaction: its rows are deleted and its totals taken
    /// out of its cell's before the new outcome goes in, so an account never has two outcomes
    /// and the cell totals stay exact. Any other existing outcome fails the transaction.
    pub(crate) async fn record(
        &self,
        run_id: &str,
        outcomes: &[AccountOutcome],
        replace_errors: bool,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let finished_at = now();
        // Per cell and currency code: what this transaction adds to the cell's totals.
        let mut cells: BTreeMap<(&str, &str, String), (Decimal, Decimal)> = BTreeMap::new();
        for o in outcomes {
            if replace_errors {
                let replaced = sqlx::query(
                    "SELECT status FROM outcomes WHERE run_id = $1 AND account_id = $2",
                )
                .bind(run_id)
                .bind(o.account_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = replaced {
                    let status: String = row.try_get(0)?;
                    if status != OutcomeStatus::StackError.as_str() {
                        bail!(
                            "{} already has a `{status}` outcome in run {run_id}; only a stack_error is redone",
                            o.account_id
                        );
                    }
                    let totals = sqlx::query(
                        "SELECT currency, legacy_total, modern_total FROM totals WHERE run_id = $1 AND account_id = $2",
                    )
                    .bind(run_id)
                    .bind(o.account_id.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    for t in &totals {
                        let e = cells
                            .entry((o.partition.as_str(), o.region.as_str(), t.try_get(0)?))
                            .or_default();
                        e.0 -= t.try_get::<String, _>(1)?.parse::<Decimal>()?;
                        e.1 -= t.try_get::<String, _>(2)?.parse::<Decimal>()?;
                    }
                    for table in ["totals", "diffs", "evidence", "outcomes"] {
                        sqlx::query(&format!(
                            "DELETE FROM {table} WHERE run_id = $1 AND account_id = $2"
                        ))
                        .bind(run_id)
                        .bind(o.account_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            sqlx::query(
                "INSERT INTO outcomes (run_id, account_id, status, diffs_failing, waived, lines_legacy, lines_modern, \
                 lines_matched, lines_mismatched, retries, error, finished_at, delta_order) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            )
            .bind(run_id)
            .bind(o.account_id.as_str())
            .bind(o.status.as_str())
            .bind(o.diffs_failing as i64)
            .bind(o.waived as i64)
            .bind(o.lines_legacy as i64)
            .bind(o.lines_modern as i64)
            .bind(o.lines_matched as i64)
            .bind(o.lines_mismatched as i64)
            .bind(o.retries as i64)
            .bind(o.error.as_str())
            .bind(finished_at.as_str())
            .bind(delta_order(&o.totals))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot record the outcome of {}", o.account_id))?;
            for (currency, legacy, modern) in &o.totals {
                sqlx::query("INSERT INTO totals (run_id, account_id, currency, legacy_total, modern_total) VALUES ($1,$2,$3,$4,$5)")
                    .bind(run_id)
                    .bind(o.account_id.as_str())
                    .bind(currency.code())
                    .bind(legacy.to_string())
                    .bind(modern.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            for (seq, diff) in o.diffs.iter().enumerate() {
                sqlx::query("INSERT INTO diffs (run_id, account_id, seq, class, failing, waiver, delta, currency, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)")
                    .bind(run_id)
                    .bind(o.account_id.as_str())
                    .bind(seq as i64)
                    .bind(diff.class.as_str())
                    .bind(i64::from(diff.is_failing()))
                    .bind(diff.waiver.as_deref().unwrap_or(""))
                    .bind(diff.delta.map(|d| d.to_string()).unwrap_or_default())
                    .bind(diff.currency.map(|c| c.code()).unwrap_or(""))
                    .bind(serde_json::to_string(diff)?)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((legacy, modern)) = &o.evidence {
                for (side, body) in [("legacy", legacy), ("modern", modern)] {
                    sqlx::query("INSERT INTO evidence (run_id, account_id, side, body) VALUES ($1,$2,$3,$4)")
                        .bind(run_id)
                        .bind(o.account_id.as_str())
                        .bind(side)
                        .bind(body.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for o in outcomes {
            for (currency, legacy, modern) in &o.totals {
                let e = cells
                    .entry((
                        o.partition.as_str(),
                        o.region.as_str(),
                        currency.code().to_owned(),
                    ))
                    .or_default();
                e.0 += *legacy;
                e.1 += *modern;
            }
        }
        for ((partition, region, currency), (legacy, modern)) in cells {
            let existing = sqlx::query(
                "SELECT legacy_total, modern_total FROM cell_totals WHERE run_id = $1 AND partition = $2 AND region = $3 AND currency = $4",
            )
            .bind(run_id)
            .bind(partition)
            .bind(region)
            .bind(currency.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let (l, m) = match existing {
                Some(r) => (
                    r.try_get::<String, _>(0)?.parse::<Decimal>()? + legacy,
                    r.try_get::<String, _>(1)?.parse::<Decimal>()? + modern,
                ),
                None => (legacy, modern),
            };
            sqlx::query(
                "INSERT INTO cell_totals (run_id, partition, region, currency, legacy_total, modern_total) VALUES ($1,$2,$3,$4,$5,$6) \
                 ON CONFLICT (run_id, partition, region, currency) DO UPDATE SET legacy_total = $5, modern_total = $6",
            )
            .bind(run_id)
            .bind(partition)
            .bind(region)
            .bind(currency.as_str())
            .bind(l.to_string())
            .bind(m.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per cell and currency, the run's legacy and modern totals (added up as outcomes were stored).
    pub(crate) async fn cell_totals(
        &self,
        run_id: &str,
    ) -> anyhow::Result<Vec<(String, String, String, Decimal, Decimal)>> {
        let rows = sqlx::query("SELECT partition, region, currency, legacy_total, modern_total FROM cell_totals WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let (l, m): (String, String) = (r.try_get(3)?, r.try_get(4)?);
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    l.parse()?,
                    m.parse()?,
                ))
            })
            .collect()
    }

    /// Per currency, the `limit` accounts whose total differs most in that currency (largest
    /// |modern − legacy| first, then by account id). Money is only ever compared within one
    /// currency; the differing totals are streamed and compared exactly.
    pub(crate) async fn worst_accounts_by_currency(
        &self,
        run_id: &str,
        limit: usize,
    ) -> anyhow::Result<BTreeMap<String, Vec<(String, Decimal)>>> {
        use futures_util::TryStreamExt;
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // A min-heap of the best `limit` so far per currency (largest |Δ|, then smallest
        // account id): the weakest on top.
        type Ranked = Reverse<(Decimal, Reverse<String>)>;
        let mut heaps: BTreeMap<String, BinaryHeap<Ranked>> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT account_id, currency, legacy_total, modern_total FROM totals WHERE run_id = $1 AND legacy_total <> modern_total",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (account, currency, l, m): (String, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let parse = |v: &str| {
                v.parse::<Decimal>().with_context(|| {
                    format!("the store holds a total of {account} that is not a decimal: {v}")
                })
            };
            let delta = (parse(&m)? - parse(&l)?).abs();
            if delta.is_zero() || limit == 0 {
                continue;
            }
            let heap = heaps.entry(currency).or_default();
            let entry = Reverse((delta, Reverse(account)));
            if heap.len() < limit {
                heap.push(entry);
            } else if heap.peek().is_some_and(|weakest| entry < *weakest) {
                heap.pop();
                heap.push(entry);
            }
        }
        Ok(heaps
            .into_iter()
            .map(|(currency, heap)| {
                let mut accounts: Vec<(String, Decimal)> = heap
                    .into_iter()
                    .map(|Reverse((delta, Reverse(account)))| (account, delta))
                    .collect();
                accounts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (currency, accounts)
            })
            .collect())
    }

    pub(crate) async fn set_status(&self, run_id: &str, status: &str) -> anyhow::Result<()> {
        let finished = if status == "running" {
            None
        } else {
            Some(now())
        };
        sqlx::query("UPDATE runs SET status = $1, finished_at = $2 WHERE id = $3")
            .bind(status)
            .bind(finished)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn runs(&self) -> anyhow::Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.status, r.started_at, r.finished_at, r.started_by, r.spec_path, r.spec_hash, r.cohort_path, \
             r.cohort_hash, r.accounts_total, r.as_of, (SELECT COUNT(*) FROM outcomes o WHERE o.run_id = r.id) AS done \
             FROM runs r ORDER BY r.started_at DESC, r.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_of_row).collect()
    }

    /// A run by id, or for `latest` the newest shadow run: a calibration (A/A) run replays
    /// the legacy stack twice and says nothing about the modern one, so it is only ever read
    /// by its id.
    pub(crate) async fn resolve(&self, which: &str) -> anyhow::Result<RunRow> {
        let runs = self.runs().await?;
        if runs.is_empty() {
            bail!("the store {} has no runs yet", self.url);
        }
        if which == "latest" {
            let calibrations = runs.iter().filter(|r| r.kind != "shadow").count();
            return runs.into_iter().find(|r| r.kind == "shadow").ok_or_else(|| {
                anyhow!(
                    "the store {} has no shadow run yet, only {calibrations} calibration (A/A) run(s); name one by its id (see `billshadow runs`)",
                    self.url
                )
            });
        }
        runs.into_iter().find(|r| r.id == which).ok_or_else(|| {
            anyhow!(
                "no run `{which}` in the store {} (see `billshadow runs`)",
                self.url
            )
        })
    }

    /// Per run, its outcomes counted by status (`parity`, `mismatch`, `stack_error`).
    pub(crate) async fn outcome_status_counts(
        &self,
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u64>>> {
        let rows =
            sqlx::query("SELECT run_id, status, COUNT(*) FROM outcomes GROUP BY run_id, status")
                .fetch_all(&self.pool)
                .await?;
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in &rows {
            let (run, status, n): (String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            out.entry(run).or_default().insert(status, n as u64);
        }
        Ok(out)
    }

    /// A run's cohort counted per cell: how many accounts each cell has to compare.
    pub(crate) async fn cohort_counts(
        &self,
        run_id: &str,
    ) -> anyhow::Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query(
            "SELECT partition, region, COUNT(*) FROM cohort WHERE run_id = $1 GROUP BY partition, region ORDER BY partition, region",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<i64, _>(2)? as u64)))
            .collect()
    }

    pub(crate) async fn spec_text(&self, run_id: &str) -> anyhow::Result<String> {
        let row = sqlx::query("SELECT spec_text FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }

    /// Outcomes counted per cell and status, with their line and retry sums: the store adds
    /// up, so reading a run back does not grow with its cohort.
    pub(crate) async fn outcome_counts(&self, run_id: &str) -> anyhow::Result<Vec<OutcomeCount>> {
        let rows = sqlx::query(
            "SELECT c.partition, c.region, o.status, COUNT(*), CAST(SUM(o.lines_legacy) AS BIGINT), \
             CAST(SUM(o.lines_modern) AS BIGINT), CAST(SUM(o.lines_matched) AS BIGINT), CAST(SUM(o.lines_mismatched) AS BIGINT), \
             CAST(SUM(o.retries) AS BIGINT), CAST(SUM(CASE WHEN o.waived > 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM outcomes o JOIN cohort c ON c.run_id = o.run_id AND c.account_id = o.account_id \
             WHERE o.run_id = $1 GROUP BY c.partition, c.region, o.status ORDER BY c.partition, c.region, o.status",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeCount {
                    partition: r.try_get(0)?,
                    region: r.try_get(1)?,
                    status: r.try_get(2)?,
                    accounts: r.try_get(3)?,
                    lines_legacy: r.try_get(4)?,
                    lines_modern: r.try_get(5)?,
                    lines_matched: r.try_get(6)?,
                    lines_mismatched: r.try_get(7)?,
                    retries: r.try_get(8)?,
                    waived_accounts: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Diffs counted per cell, class, failing and waiver.
    pub(crate) async fn diff_counts(&self, run_id: &str) -> anyhow::Result<Vec<DiffCount>> {
        let rows = sqlx::query(
            "SELECT c.partition, c.region, d.class, d.failing, d.waiver, COUNT(*) FROM diffs d \
             JOIN cohort c ON c.run_id = d.run_id AND c.account_id = d.account_id WHERE d.run_id = $1 \
             GROUP BY c.partition, c.region, d.class, d.failing, d.waiver",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DiffCount {
                    partition: r.try_get(0)?,
                    region: r.try_get(1)?,
                    class: r.try_get(2)?,
                    failing: r.try_get::<i64, _>(3)? != 0,
                    waiver: r.try_get(4)?,
                    count: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The diffs of a run as JSON, in account order: all of them, or those of the first
    /// `accounts` accounts that have a failing or waived diff.
    pub(crate) async fn diffs(
        &self,
        run_id: &str,
        accounts: Option<usize>,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let rows = match accounts {
            None => {
                sqlx::query("SELECT body FROM diffs WHERE run_id = $1 ORDER BY account_id, seq").bind(run_id).fetch_all(&self.pool).await?
            }
            Some(n) => {
                sqlx::query(&format!(
                    "SELECT body FROM diffs WHERE run_id = $1 AND account_id IN \
                     (SELECT DISTINCT account_id FROM diffs WHERE run_id = $1 AND {} ORDER BY account_id LIMIT $2) \
                     ORDER BY account_id, seq",
                    not_informational()
                ))
                .bind(run_id)
                .bind(n as i64)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let body: String = r.try_get(0)?;
                Ok(serde_json::from_str(&body)?)
            })
            .collect()
    }

    /// Calls `each` with every diff of a run (JSON text), in account order, streamed.
    pub(crate) async fn for_each_diff(
        &self,
        run_id: &str,
        mut each: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use futures_util::TryStreamExt;
        let mut rows =
            sqlx::query("SELECT body FROM diffs WHERE run_id = $1 ORDER BY account_id, seq")
                .bind(run_id)
                .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let body: String = r.try_get(0)?;
            each(&body)?;
        }
        Ok(())
    }

    /// Per class and currency, the sum of |delta| over a run's diffs (added up in Rust, exactly:
    /// the store only groups equal deltas).
    pub(crate) async fn class_money(
        &self,
        run_id: &str,
    ) -> anyhow::Result<BTreeMap<(String, String), Decimal>> {
        use futures_util::TryStreamExt;
        let mut out: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT class, currency, delta, COUNT(*) FROM diffs WHERE run_id = $1 AND delta <> '' GROUP BY class, currency, delta",
        )
        .bind(run_id)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (class, currency, delta, n): (String, String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let d: Decimal = delta.parse().with_context(|| {
                format!("the store holds a delta that is not a decimal: {delta}")
            })?;
            *out.entry((class, currency)).or_default() += d.abs() * Decimal::from(n);
        }
        Ok(out)
    }

    /// One account's diffs, and both its bills when they were kept.
    pub(crate) async fn account_detail(
        &self,
        run_id: &str,
        account_id: &str,
    ) -> anyhow::Result<(Vec<serde_json::Value>, Option<(String, String)>)> {
        let rows = sqlx::query(
            "SELECT body FROM diffs WHERE run_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let diffs = rows
            .iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sides =
            sqlx::query("SELECT side, body FROM evidence WHERE run_id = $1 AND account_id = $2")
                .bind(run_id)
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        let (mut legacy, mut modern) = (None, None);
        for r in &sides {
            let (side, body): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if side == "legacy" {
                legacy = Some(body)
            } else {
                modern = Some(body)
            }
        }
        Ok((diffs, legacy.zip(modern)))
    }

    /// Whether the run's cohort holds the account, and its cell.
    pub(crate) async fn cohort_cell(
        &self,
        run_id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT partition, region FROM cohort WHERE run_id = $1 AND account_id = $2",
        )
        .bind(run_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}

async fn insert_cohort_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    first_position: i64,
    chunk: &[AccountRequest],
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO cohort (run_id, position, account_id, customer_id, partition, region, period_start, period_end) VALUES ",
    );
    for i in 0..chunk.len() {
        let b = i * 8;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${},${},${},${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        ));
    }
    let mut query = sqlx::query(&sql);
    for (i, a) in chunk.iter().enumerate() {
        query = query
            .bind(run_id)
            .bind(first_position + i as i64)
            .bind(a.account_id.as_str())
            .bind(a.customer_id.as_str())
            .bind(a.partition.as_str())
            .bind(a.region.as_str())
            .bind(a.period_start.as_str())
            .bind(a.period_end.as_str());
    }
    query.execute(&mut **tx).await.map_err(|e| {
        let duplicate = e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation());
        if duplicate {
            anyhow::anyhow!(
                "the cohort lists an account twice (between its rows {} and {})",
                first_position + 2,
                first_position + chunk.len() as i64 + 1
            )
        } else {
            anyhow::Error::new(e)
        }
    })?;
    Ok(())
}

/// The outcome's `delta_order` column: the largest |modern − legacy| of the account, in
/// ten-thousandths of a unit, truncated, whatever its currency. Never summed, shown or used to
/// rank accounts (that would compare yen with euros): reports rank within one currency
/// (`worst_accounts_by_currency`).
/// The condition on an outcome that keeps its account out of the work still to do: any
/// outcome, or with `redo_errors` any but a `stack_error`.
fn kept_outcomes(redo_errors: bool) -> &'static str {
    if redo_errors {
        " AND o.status <> 'stack_error'"
    } else {
        ""
    }
}

fn delta_order(totals: &[(Currency, Decimal, Decimal)]) -> i64 {
    let largest = totals
        .iter()
        .map(|(_, l, m)| (*m - *l).abs())
        .max()
        .unwrap_or_default();
    (largest * Decimal::from(10_000))
        .trunc()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// The classes that never fail, as an SQL condition on `class` (from `DiffClass::ALL`, so a
/// new class is never missed).
fn not_informational() -> String {
    let names: Vec<String> = DiffClass::ALL
        .into_iter()
        .filter(|c| c.is_informational())
        .map(|c| format!("'{}'", c.as_str()))
        .collect();
    format!("class NOT IN ({})", names.join(", "))
}

/// Outcomes of one cell with one status, added up.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeCount {
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) status: String,
    pub(crate) accounts: i64,
    pub(crate) lines_legacy: i64,
    pub(crate) lines_modern: i64,
    pub(crate) lines_matched: i64,
    pub(crate) lines_mismatched: i64,
    pub(crate) retries: i64,
    pub(crate) waived_accounts: i64,
}

/// Diffs of one cell, class, failing flag and waiver, counted.
#[derive(Debug, Clone)]
pub(crate) struct DiffCount {
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) class: String,
    pub(crate) failing: bool,
    pub(crate) waiver: String,
    pub(crate) count: i64,
}

fn account_of_row(r: &sqlx::any::AnyRow) -> anyhow::Result<AccountRequest> {
    let get = |i: usize| {
        r.try_get::<String, _>(i)
            .with_context(|| format!("a cohort row's column {i} cannot be read"))
    };
    Ok(AccountRequest {
        account_id: get(0)?,
        customer_id: get(1)?,
        partition: get(2)?,
        region: get(3)?,
        period_start: get(4)?,
        period_end: get(5)?,
    })
}

fn run_of_row(r: &sqlx::any::AnyRow) -> anyhow::Result<RunRow> {
    Ok(RunRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        status: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        started_by: r.try_get(5)?,
        spec_path: r.try_get(6)?,
        spec_hash: r.try_get(7)?,
        cohort_path: r.try_get(8)?,
        cohort_hash: r.try_get(9)?,
        accounts_total: r.try_get(10)?,
        as_of: r.try_get(11)?,
        accounts_done: r.try_get(12)?,
    })
}
