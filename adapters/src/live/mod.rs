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
mod config;
mod http;
mod limit;
mod outcome;
mod output;
mod resilience;
mod sql;
mod start;
pub mod template;
mod version;

use std::sync::Arc;

pub use config::{CommandConfig, HttpConfig, SqlConfig, StackConfig, StackKind, VersionSource};
pub use outcome::{FetchResult, Fetched, StackFailure};
pub use output::{OUTPUT_BYTES_MAX, STDERR_TAIL_BYTES};
pub use resilience::{Resilience, UNCHARGED_FAILURES_MAX};
pub use start::{StartConfig, StartedStack};
pub use template::{AccountRequest, Escape, Template, TemplateError};
pub use version::{VERSION_CHARS_MAX, VERSION_READ_MAX};

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

    /// What the stack reports as its version (`version` in the spec), read once at the start
    /// of a run: `None` when the spec names no source; an error (its secrets masked) when the
    /// source does not answer with a version.
    pub async fn version(&self) -> Option<Result<String, String>> {
        let source = self.config.version.as_ref()?;
        let result = match (&self.inner, source) {
            (Inner::Command(c), VersionSource::Args(args)) => c.version(args).await,
            (Inner::Http(h), VersionSource::Url { url, header }) => {
                h.version(url, header.as_deref()).await
            }
            _ => Err("this kind of stack has no such version source".to_owned()),
        };
        Some(result.map_err(|e| crate::redact::text(&e, &self.config.secrets)))
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
