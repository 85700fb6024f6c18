//! The SQL adapter: a query with bound parameters (never spliced into the SQL text) against
//! SQLite or PostgreSQL, its rows read through a format mapping.
//!
//! A lost connection (I/O errors, an exhausted pool, PostgreSQL's connection and shutdown
//! errors) and a timeout are transient: retried and counted by the circuit breaker; any other
//! error is final for the account.
//!
//! Columns must come back as text or integers: a decimal column is cast to text in the query
//! (`amount::text` in PostgreSQL), so no amount ever passes through a float.

use std::sync::Once;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Column, Row};

use super::config::{SqlConfig, StackConfig};
use super::output::parse_output;
use super::resilience::Attempt;
use super::template::AccountRequest;
use super::template::Escape;
use crate::mapping::InputKind;

pub(crate) struct SqlStack {
    config: SqlConfig,
    pool: sqlx::AnyPool,
}

static DRIVERS: Once = Once::new();

impl SqlStack {
    pub(crate) async fn connect(config: SqlConfig, concurrency: usize) -> Result<SqlStack, String> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let pool = AnyPoolOptions::new()
            .max_connections(u32::try_from(concurrency.clamp(1, 64)).unwrap_or(8))
            .acquire_timeout(config.timeout)
            .connect(&config.dsn)
            .await
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        Ok(SqlStack { config, pool })
    }

    pub(crate) async fn preflight(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| format!("the database does not answer: {e}"))
    }

    pub(crate) async fn attempt(
        &self,
        account: &AccountRequest,
        stack: &StackConfig,
    ) -> Attempt<billshadow_comparisons::LineStore> {
        let mut query = sqlx::query(&self.config.query);
        for param in &self.config.params {
            query = query.bind(param.render(account, Escape::None));
        }
        let rows =
            match tokio::time::timeout(self.config.timeout, query.fetch_all(&self.pool)).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) if is_transient(&e) => {
                    return Attempt::transient(format!("the query failed: {e}"));
                }
                Ok(Err(e)) => return Attempt::Fail(format!("the query failed: {e}")),
                Err(_) => {
                    return Attempt::transient(format!(
                        "the query timed out after {} ms",
                        self.config.timeout.as_millis()
                    ));
                }
            };
        let text = match rows_as_text(&rows, stack.mapping.input) {
            Ok(text) => text,
            Err(message) => return Attempt::Fail(message),
        };
        let origin = format!("{} stack rows for {}", stack.side, account.account_id);
        match parse_output(&origin, text.as_bytes(), &stack.mapping) {
            Ok(lines) => Attempt::Done(lines),
            Err(message) => Attempt::Fail(message),
        }
    }
}

/// A failure of the connection rather than of the query: the database may be restarting.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        // SQLSTATE classes 08 (connection exception), 53 (insufficient resources) and
        // 57P (operator intervention: shutdown, crash, cannot connect now).
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")),
        _ => false,
    }
}

/// Rows as CSV (header first) or JSON lines, whichever the mapping reads.
fn rows_as_text(rows: &[AnyRow], input: InputKind) -> Result<String, String> {
    let Some(first) = rows.first() else {
        return Ok(String::new());
    };
    let names: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut out = Vec::new();
    match input {
        InputKind::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(&names).map_err(|e| e.to_string())?;
            for row in rows {
                writer
                    .write_record(values(row, &names)?)
                    .map_err(|e| e.to_string())?;
            }
            writer.flush().map_err(|e| e.to_string())?;
        }
        InputKind::Jsonl | InputKind::Json => {
            for row in rows {
                let object: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .cloned()
                    .zip(
                        values(row, &names)?
                            .into_iter()
                            .map(serde_json::Value::String),
                    )
                    .collect();
                out.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
                out.push(b'\n');
            }
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

fn values(row: &AnyRow, names: &[String]) -> Result<Vec<String>, String> {
    (0..names.len())
        .map(|i| {
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return Ok(v.unwrap_or_default());
            }
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return Ok(v.map(|n| n.to_string()).unwrap_or_default());
            }
            Err(format!(
                "the column `{}` is neither text nor an integer; cast it to text in the query so its value is read exactly",
                names[i]
            ))
        })
        .collect()
}
