//! The live-stack part of a spec side: `kind = "command" | "http" | "sql"` and its settings,
//! validated when the spec loads; secrets (header values, DSNs) are read from the environment
//! only when the run starts, and never written anywhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use billshadow_adapters::live::OUTPUT_BYTES_MAX;
use billshadow_adapters::live::{
    CommandConfig, HttpConfig, Resilience, SqlConfig, StackConfig, StackKind, StartConfig,
    Template, VersionSource,
};
use billshadow_adapters::{Catalog, Mapping, redact};

use super::raw::RawSide;

/// The largest HTTP response body read for one account unless the spec says otherwise
/// (`max_response_bytes`); a longer body is cut there and the account is a stack error.
const RESPONSE_BYTES_DEFAULT: usize = 8 * 1024 * 1024;

/// A live stack as the spec describes it.
#[derive(Debug, Clone)]
pub(crate) struct LiveSpec {
    kind: LiveKind,
    format: String,
    concurrency: usize,
    rate_per_second: u32,
    timeout: Duration,
    resilience: Resilience,
    base: PathBuf,
    pub(crate) start: Option<StartConfig>,
    version: Option<VersionSource>,
}

#[derive(Debug, Clone)]
enum LiveKind {
    Command {
        program: PathBuf,
        args: Vec<Template>,
        batch_size: usize,
    },
    Http {
        method: reqwest::Method,
        url: Template,
        body: Option<Template>,
        headers: Vec<(String, String, String)>,
        max_response_bytes: usize,
        ca_file: Option<PathBuf>,
    },
    Sql {
        dsn_env: String,
        query: String,
        params: Vec<Template>,
    },
}

fn templates(list: &[String]) -> Result<Vec<Template>, String> {
    list.iter()
        .map(|t| Template::parse(t).map_err(|e| e.to_string()))
        .collect()
}

/// A file side takes none of a live stack's settings.
fn file_side(raw: &RawSide) -> Result<(), String> {
    let live_only = [
        ("program", raw.program.is_some()),
        ("url", raw.url.is_some()),
        ("query", raw.query.is_some()),
        ("start", raw.start.is_some()),
        ("version", raw.version.is_some()),
    ];
    match live_only.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(format!(
            "`{name}` needs `kind = \"command\"`, `\"http\"` or `\"sql\"`"
        )),
        None => Ok(()),
    }
}

/// A command stack: its program, argument templates and batch size.
fn command_kind(
    program: Option<String>,
    args: Option<Vec<String>>,
    batch_size: Option<usize>,
) -> Result<LiveKind, String> {
    let program = program.ok_or("a command stack needs `program`")?;
    let args = templates(&args.unwrap_or_default())?;
    let batched = args.iter().any(Template::is_account_list);
    if let Some(bad) = args
        .iter()
        .find(|a| a.uses("account_ids") && !a.is_account_list())
    {
        return Err(format!(
            "`{bad}`: `{{account_ids}}` must be an argument of its own"
        ));
    }
    if batched && args.iter().any(|a| a.uses("account_id")) {
        return Err("use either `{account_ids}` (a batch per invocation) or `{account_id}` (one account), not both".to_owned());
    }
    let batch_size = if batched {
        batch_size.unwrap_or(100).clamp(1, 10_000)
    } else {
        1
    };
    Ok(LiveKind::Command {
        program: PathBuf::from(program),
        args,
        batch_size,
    })
}

/// An HTTP stack's request: method, URL and body templates, headers from the environment.
struct HttpRequest {
    method: reqwest::Method,
    url: Template,
    body: Option<Template>,
    headers: Vec<(String, String, String)>,
}

fn http_kind(
    url: &Option<String>,
    method: Option<&str>,
    body: Option<&str>,
    headers: Vec<(String, String, String)>,
) -> Result<HttpRequest, String> {
    let url = Template::parse(url.as_deref().ok_or("an http stack needs `url`")?)
        .map_err(|e| e.to_string())?;
    let method = method.unwrap_or("GET").to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let body = body
        .map(Template::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(HttpRequest {
        method,
        url,
        body,
        headers,
    })
}

impl HttpRequest {
    /// The stack, with its response limit (bounded) and the extra CA file it trusts.
    fn with(
        self,
        max_response_bytes: Option<u64>,
        ca_file: Option<PathBuf>,
    ) -> Result<LiveKind, String> {
        Ok(LiveKind::Http {
            method: self.method,
            url: self.url,
            body: self.body,
            headers: self.headers,
            max_response_bytes: match max_response_bytes {
                None => RESPONSE_BYTES_DEFAULT,
                Some(0) => return Err("`max_response_bytes` must be above 0".to_owned()),
                Some(n) => {
                    usize::try_from(n.min(OUTPUT_BYTES_MAX as u64)).unwrap_or(OUTPUT_BYTES_MAX)
                }
            },
            ca_file,
        })
    }
}

/// Where the stack reports its version: `args` for a command stack, `url` (with an optional
/// `header`) for an HTTP stack; an SQL stack names none.
fn version_source(
    raw: Option<super::raw::RawVersion>,
    kind: &str,
) -> Result<Option<VersionSource>, String> {
    let Some(v) = raw else {
        return Ok(None);
    };
    match (kind, v.args, v.url, v.header) {
        ("command", Some(args), None, None) => Ok(Some(VersionSource::Args(args))),
        ("http", None, Some(url), header) => {
            reqwest::Url::parse(&url).map_err(|e| format!("`version.url` `{url}`: {e}"))?;
            Ok(Some(VersionSource::Url { url, header }))
        }
        ("command", ..) => Err(
            "a command stack's `version` takes `args` only (the program's arguments, e.g. [\"--version\"])"
                .to_owned(),
        ),
        ("http", ..) => Err(
            "an http stack's `version` takes `url` (its body is the version) and optionally `header` (that response header is)"
                .to_owned(),
        ),
        (other, ..) => Err(format!("a {other} stack takes no `version`")),
    }
}

/// Retries, backoff and the circuit breaker, bounded, with the defaults where unset.
fn resilience(raw: &RawSide) -> Resilience {
    let defaults = Resilience::default();
    let millis =
        |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
    Resilience {
        retries: raw.retries.unwrap_or(defaults.retries).min(10),
        backoff: millis(raw.backoff_ms, defaults.backoff),
        backoff_max: millis(raw.backoff_max_ms, defaults.backoff_max),
        breaker_failures: raw
            .breaker_failures
            .unwrap_or(defaults.breaker_failures)
            .max(1),
        probe_interval: millis(raw.probe_ms, defaults.probe_interval).max(Duration::from_millis(1)),
        outage_max: millis(raw.outage_max_ms, defaults.outage_max),
    }
}

impl LiveSpec {
    /// `None` for a file side; an error names the first setting that does not fit.
    pub(crate) fn from_raw(raw: RawSide, base: &Path) -> Result<Option<LiveSpec>, String> {
        let kind = match raw.kind.as_deref() {
            None | Some("file") => {
                file_side(&raw)?;
                return Ok(None);
            }
            Some(k) => k.to_owned(),
        };
        let not_for = |name: &str, given: bool| -> Result<(), String> {
            if given {
                Err(format!("`{name}` does not apply to a {kind} stack"))
            } else {
                Ok(())
            }
        };
        not_for("path", raw.path.is_some())?;
        let resilience = resilience(&raw);
        let version = version_source(raw.version.clone(), &kind)?;
        if kind != "http" {
            not_for("max_response_bytes", raw.max_response_bytes.is_some())?;
            not_for("ca_file", raw.ca_file.is_some())?;
        }
        let live_kind = match kind.as_str() {
            "command" => {
                not_for("url", raw.url.is_some())?;
                not_for("query", raw.query.is_some())?;
                command_kind(raw.program, raw.args, raw.batch_size)?
            }
            "http" => {
                not_for("program", raw.program.is_some())?;
                not_for("query", raw.query.is_some())?;
                let headers = raw
                    .headers
                    .into_iter()
                    .map(|(name, h)| (name, h.env, h.prefix))
                    .collect();
                http_kind(
                    &raw.url,
                    raw.method.as_deref(),
                    raw.body.as_deref(),
                    headers,
                )?
                .with(raw.max_response_bytes, raw.ca_file.map(|f| base.join(f)))?
            }
            "sql" => {
                not_for("program", raw.program.is_some())?;
                not_for("url", raw.url.is_some())?;
                let dsn_env = raw.dsn_env.ok_or(
                    "an sql stack needs `dsn_env`, the environment variable holding its DSN",
                )?;
                let query = raw.query.ok_or("an sql stack needs `query`")?;
                let params = templates(&raw.params.unwrap_or_default())?;
                LiveKind::Sql {
                    dsn_env,
                    query,
                    params,
                }
            }
            other => {
                return Err(format!(
                    "kind `{other}`: expected \"file\", \"command\", \"http\" or \"sql\""
                ));
            }
        };
        let start = raw.start.map(|s| StartConfig {
            program: PathBuf::from(s.program),
            args: s.args,
            working_dir: base.to_path_buf(),
            ready_address: s.ready_address,
            ready_timeout: Duration::from_millis(s.ready_timeout_ms.unwrap_or(15_000)),
        });
        let default_format = match live_kind {
            LiveKind::Command { .. } => "canonical",
            _ => "canonical-jsonl",
        };
        Ok(Some(LiveSpec {
            resilience,
            kind: live_kind,
            format: raw.format.unwrap_or_else(|| default_format.to_owned()),
            concurrency: raw.concurrency.unwrap_or(16).clamp(1, 1024),
            rate_per_second: raw.rate_per_second.unwrap_or(0),
            timeout: Duration::from_millis(raw.timeout_ms.unwrap_or(10_000).max(1)),
            base: base.to_path_buf(),
            start,
            version,
        }))
    }

    /// Resolves the format mapping and the secrets; fails (before any work) on an unset
    /// environment variable or a missing mapping.
    pub(crate) fn resolve(&self, side: &str, catalog: &Catalog) -> Result<StackConfig, String> {
        let mapping = match catalog.get(&self.format) {
            Some(m) => m.clone(),
            None => {
                let path = self.base.join(&self.format);
                Mapping::from_file(&path).map_err(|e| format!("[{side}] format: {e}"))?
            }
        };
        let env = |name: &str| {
            std::env::var(name)
                .map_err(|_| format!("[{side}]: the environment variable {name} is not set"))
        };
        // Values that must never leave: masked in every failure message of this stack.
        let mut secrets = Vec::new();
        let kind = match &self.kind {
            LiveKind::Command {
                program,
                args,
                batch_size,
            } => StackKind::Command(CommandConfig {
                program: program.clone(),
                args: args.clone(),
                working_dir: self.base.clone(),
                batch_size: *batch_size,
                timeout: self.timeout,
            }),
            LiveKind::Http {
                method,
                url,
                body,
                headers,
                max_response_bytes,
                ca_file,
            } => {
                let mut resolved = Vec::new();
                for (name, var, prefix) in headers {
                    let value = env(var)?;
                    secrets.push(value.clone());
                    secrets.push(format!("{prefix}{value}"));
                    resolved.push((name.clone(), format!("{prefix}{value}")));
                }
                StackKind::Http(HttpConfig {
                    method: method.clone(),
                    url: url.clone(),
                    body: body.clone(),
                    headers: resolved,
                    timeout: self.timeout,
                    max_response_bytes: *max_response_bytes,
                    ca_file: ca_file.clone(),
                })
            }
            LiveKind::Sql {
                dsn_env,
                query,
                params,
            } => StackKind::Sql(SqlConfig {
                dsn: {
                    let dsn = env(dsn_env)?;
                    secrets.extend(redact::url_password(&dsn));
                    dsn
                },
                query: query.clone(),
                params: params.clone(),
                timeout: self.timeout,
            }),
        };
        Ok(StackConfig {
            side: side.to_owned(),
            kind,
            mapping,
            concurrency: self.concurrency,
            rate_per_second: self.rate_per_second,
            resilience: self.resilience.clone(),
            secrets,
            version: self.version.clone(),
        })
    }
}
