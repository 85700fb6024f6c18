//! What a live stack is, as the spec configures it: its kind (command, HTTP, SQL) with its
//! settings, its mapping, its limits and its resilience. Data only: `Stack` builds from it.

use std::path::PathBuf;
use std::time::Duration;

use super::resilience::Resilience;
use super::template::Template;
use crate::mapping::Mapping;

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

/// Where a stack's version is read at the start of a run (the spec's `version` table).
#[derive(Debug, Clone)]
pub enum VersionSource {
    /// A command stack's program run with these arguments (`["--version"]`): the first line
    /// of its standard output.
    Args(Vec<String>),
    /// An HTTP stack: a `GET` of this URL with the stack's headers; the named response header,
    /// or without one the first line of the body.
    Url { url: String, header: Option<String> },
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
    /// Where the stack reports its version, when the spec says.
    pub version: Option<VersionSource>,
}
