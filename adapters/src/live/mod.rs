//! Live adapters: ask a running stack to compute bills, account by account or batch by batch.
//!
//! - `command`: a program run with argument templates (separate argv entries, never a shell);
//!   its stdout is read through a format mapping; non-zero exit is a stack error with the tail of
//!   its stderr.
//! - `http`: a request per account; the response body is read through a format mapping.
//! - `sql`: a query with bound parameters against a DSN taken from an environment variable.
//!
//! Every stack has a cap on work in flight, an optional rate limit, and a circuit breaker;
//! transient failures (refused or reset connections, timeouts, HTTP 429 and 5xx) are retried
//! with capped exponential backoff and jitter (`resilience`). Adapters only read or compute:
//! nothing here writes to a stack's ledger.

mod command;
mod http;
mod limit;
mod resilience;
mod sql;
mod start;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use billshadow_comparisons::LineStore;

use crate::mapping::Mapping;
use crate::{ReadOptions, read_from};

pub use resilience::{Resilience, UNCHARGED_FAILURES_MAX};
pub use start::{StartConfig, StartedStack};
pub use template::{AccountRequest, Escape, Template, TemplateError};

/// The largest output a stack may produce for one request or batch.
pub const OUTPUT_BYTES_MAX: usize = 256 * 1024 * 1024;

/// How much of a failing command's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// Why a stack gave no bill for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFailure {
    pub message: String,
    pub retries: u32,
    /// The stack stayed down past its `outage_max`: no verdict for the account, which stays
    /// pending, and the run stops.
    pub outage: bool,
}

/// One account's bill as a stack computed it.
#[derive(Debug)]
pub struct Fetched {
    pub lines: LineStore,
    pub retries: u32,
}

pub type FetchResult = Result<Fetched, StackFailure>;

/// A command stack.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    pub program: PathBuf,
    pub args: Vec<Template>,
    /// Where the program runs (the spec's folder).
    pub working_dir: PathBuf,
    /// Accounts per invocation when an argument is `{account_ids}`; 1 otherwise.
    pub batch_size: usize,
    pub timeout: Duration,
}

/// An HTTP stack.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub method: reqwest::Method,
    pub url: Template,
    pub body: Option<Template>,
    /// Header name and value; values come from environment variables, read once at start.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// The largest response body read for one account: the body is read as a stream and cut
    /// there, the account becoming a stack error naming the limit.
    pub max_response_bytes: usize,
    /// An extra CA certificate (PEM) to trust besides the built-in and system roots.
    pub ca_file: Option<PathBuf>,
}

/// An SQL stack.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// The DSN itself, read from the environment variable the spec names.
    pub dsn: String,
    pub query: String,
    pub params: Vec<Template>,
    pub timeout: Duration,
}

/// What kind of stack, with its settings.
#[derive(Debug, Clone)]
pub enum StackKind {
    Command(CommandConfig),
    Http(HttpConfig),
    Sql(SqlConfig),
}

/// Everything about one live stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// `legacy` or `modern`, for messages.
    pub side: String,
    pub kind: StackKind,
    pub mapping: Mapping,
    /// Requests (or command invocations) in flight at most.
    pub concurrency: usize,
    /// Requests per second at most; 0 for no limit.
    pub rate_per_second: u32,
    /// Retries, backoff and the circuit breaker.
    pub resilience: Resilience,
    /// Values that must never leave (header values from the environment, a DSN's password):
    /// masked in every failure message before it is stored or shown (`crate::redact`).
    pub secrets: Vec<String>,
}

/// A stack ready to be asked for bills.
pub struct Stack {
    config: StackConfig,
    limit: limit::Limiter,
    breaker: resilience::Breaker,
    inner: Inner,
}

enum Inner {
    Command(command::CommandStack),
    Http(http::HttpStack),
    Sql(sql::SqlStack),
}

impl Stack {
    /// Builds the stack's client; for SQL, connects (a failure here is a stack failure
    /// before any work starts).
    pub async fn build(config: StackConfig) -> Result<Stack, String> {
        let inner = match &config.kind {
            StackKind::Command(c) => Inner::Command(command::CommandStack::new(c.clone())),
            StackKind::Http(h) => Inner::Http(
                http::HttpStack::new(h.clone(), config.concurrency)
                    .map_err(|e| crate::redact::text(&e, &config.secrets))?,
            ),
            StackKind::Sql(s) => Inner::Sql(
                sql::SqlStack::connect(s.clone(), config.concurrency)
                    .await
                    .map_err(|e| crate::redact::text(&e, &config.secrets))?,
            ),
        };
        let limit = limit::Limiter::new(config.concurrency, config.rate_per_second);
        let breaker = resilience::Breaker::new(&config.side, config.resilience.clone());
        Ok(Stack {
            config,
            limit,
            breaker,
            inner,
        })
    }

    /// Accounts fetched together.
    pub fn batch_size(&self) -> usize {
        match &self.config.kind {
            StackKind::Command(c) => c.batch_size,
            _ => 1,
        }
    }

    /// What accounts must share to be fetched in one batch: for a batched command, the values
    /// of every template variable other than the id list (the period, the cell …); empty for
    /// stacks asked one account at a time.
    pub fn batch_key(&self, account: &AccountRequest) -> Vec<String> {
        match &self.inner {
            Inner::Command(c) if self.batch_size() > 1 => c.invocation_key(account),
            _ => Vec::new(),
        }
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// Checks that the stack answers at all, before any work starts.
    pub async fn preflight(&self) -> Result<(), String> {
        let result = match &self.inner {
            Inner::Command(c) => c.preflight(),
            Inner::Http(h) => h.preflight().await,
            Inner::Sql(s) => s.preflight().await,
        };
        result.map_err(|e| crate::redact::text(&e, &self.config.secrets))
    }

    /// Bills for a batch of accounts, one result per account, in order; a failure's message
    /// has every configured secret and URL password masked.
    pub async fn fetch(self: &Arc<Self>, batch: &[AccountRequest]) -> Vec<FetchResult> {
        let mut results = self.fetch_raw(batch).await;
        for result in &mut results {
            if let Err(failure) = result {
                failure.message = crate::redact::text(&failure.message, &self.config.secrets);
            }
        }
        results
    }

    async fn fetch_raw(self: &Arc<Self>, batch: &[AccountRequest]) -> Vec<FetchResult> {
        match &self.inner {
            Inner::Command(c) => {
                c.fetch(batch, &self.config, &self.limit, &self.breaker)
                    .await
            }
            Inner::Http(h) => {
                let tasks: Vec<_> = batch
                    .iter()
                    .map(|account| {
                        let stack = Arc::clone(self);
                        let account = account.clone();
                        tokio::spawn(async move {
                            let Inner::Http(h) = &stack.inner else {
                                unreachable!("an http stack")
                            };
                            h.fetch(&account, &stack.config, &stack.limit, &stack.breaker)
                                .await
                        })
                    })
                    .collect();
                let _ = h;
                let mut out = Vec::with_capacity(tasks.len());
                for task in tasks {
                    out.push(task.await.unwrap_or_else(|e| {
                        Err(StackFailure {
                            message: format!("the request task failed: {e}"),
                            retries: 0,
                            outage: false,
                        })
                    }));
                }
                out
            }
            Inner::Sql(s) => {
                let mut out = Vec::with_capacity(batch.len());
                for account in batch {
                    let result = resilience::retrying(&self.breaker, || async {
                        let _permit = self.limit.acquire().await;
                        s.attempt(account, &self.config).await
                    })
                    .await;
                    out.push(result.map(|(lines, retries)| Fetched { lines, retries }));
                }
                out
            }
        }
    }
}

/// Reads a stack's output through the mapping; any bad row fails the whole output (a
/// stack that prints garbage for an account has not billed it).
pub(crate) fn parse_output(
    origin: &str,
    bytes: &[u8],
    mapping: &Mapping,
) -> Result<LineStore, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(LineStore::new());
    }
    read_from(origin, bytes, bytes.len(), mapping, ReadOptions::default())
        .map(|(store, _)| store)
        .map_err(|e| e.to_string())
}

/// The last `STDERR_TAIL_BYTES` of a process's stderr, as text.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

/// Splits a batch's lines by account, in the batch's order; accounts with no line get an
/// empty store (the stack billed nothing for them).
pub(crate) fn split(store: LineStore, batch: &[AccountRequest]) -> Vec<LineStore> {
    let mut by_account: std::collections::HashMap<String, LineStore> =
        store.split_by_account().into_iter().collect();
    batch
        .iter()
        .map(|a| by_account.remove(&a.account_id).unwrap_or_default())
        .collect()
}
