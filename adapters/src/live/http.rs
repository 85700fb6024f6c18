//! The HTTP adapter: one request per account. Refused or reset connections, timeouts, HTTP
//! 429 and 5xx are transient (retried with capped exponential backoff and jitter, at least as
//! long as the stack's `Retry-After` asks, and counted by the stack's circuit breaker); any
//! other failure is final for the account.

use super::config::{HttpConfig, StackConfig};
use super::limit::Limiter;
use super::outcome::{FetchResult, Fetched};
use super::output::{OUTPUT_BYTES_MAX, parse_output};
use super::resilience::{Attempt, Breaker, parse_retry_after, retrying};
use super::template::AccountRequest;
use super::template::Escape;

pub(crate) struct HttpStack {
    config: HttpConfig,
    client: reqwest::Client,
}

impl HttpStack {
    pub(crate) fn new(config: HttpConfig, concurrency: usize) -> Result<HttpStack, String> {
        let mut builder = reqwest::Client::builder();
        for root in trusted_roots(config.ca_file.as_deref())? {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(concurrency.max(1))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpStack { config, client })
    }

    pub(crate) async fn preflight(&self) -> Result<(), String> {
        let probe = AccountRequest {
            account_id: "preflight".to_owned(),
            customer_id: String::new(),
            partition: String::new(),
            region: String::new(),
            period_start: String::new(),
            period_end: String::new(),
        };
        let url = self.config.url.render(&probe, Escape::Url);
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("`{url}` has no host"))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(self.config.timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
            Err(_) => Err(format!("connecting to {host}:{port} timed out")),
        }
    }

    pub(crate) async fn fetch(
        &self,
        account: &AccountRequest,
        stack: &StackConfig,
        limit: &Limiter,
        breaker: &Breaker,
    ) -> FetchResult {
        let (lines, retries) = retrying(breaker, || async {
            let body = {
                let _permit = limit.acquire().await;
                self.attempt(account).await
            };
            match body {
                Attempt::Done(body) => {
                    let origin =
                        format!("{} stack response for {}", stack.side, account.account_id);
                    match parse_output(&origin, &body, &stack.mapping) {
                        Ok(lines) => Attempt::Done(lines),
                        Err(message) => Attempt::Fail(message),
                    }
                }
                Attempt::Fail(m) => Attempt::Fail(m),
                Attempt::Transient {
                    message,
                    retry_after,
                } => Attempt::Transient {
                    message,
                    retry_after,
                },
            }
        })
        .await?;
        Ok(Fetched { lines, retries })
    }

    /// A `GET` of `url` with the stack's headers (its version endpoint).
    pub(super) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.client.get(url);
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        request
    }

    async fn attempt(&self, account: &AccountRequest) -> Attempt<Vec<u8>> {
        let url = self.config.url.render(account, Escape::Url);
        let mut request = self.client.request(self.config.method.clone(), &url);
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.config.body {
            request = request
                .header("content-type", "application/json")
                .body(body.render(account, Escape::Json));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::transient(format!(
                    "timed out after {} ms",
                    self.config.timeout.as_millis()
                ));
            }
            // A request that cannot be built or redirects badly will never work.
            Err(e) if e.is_builder() || e.is_redirect() => {
                return Attempt::Fail(format!("request failed: {}", without_url(&e)));
            }
            // Refused, reset, closed mid-request: the stack may be restarting.
            Err(e) => return Attempt::transient(format!("request failed: {}", without_url(&e))),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = match read_body(response, self.config.max_response_bytes).await {
            Ok(b) => b,
            Err(BodyError::TooLarge(limit)) => {
                return Attempt::Fail(format!(
                    "the response is larger than the limit of {limit} bytes (max_response_bytes); it was cut there"
                ));
            }
            Err(BodyError::Read(e)) if e.is_timeout() => {
                return Attempt::transient(format!(
                    "timed out after {} ms",
                    self.config.timeout.as_millis()
                ));
            }
            Err(BodyError::Read(e)) => {
                return Attempt::transient(format!(
                    "cannot read the response: {}",
                    without_url(&e)
                ));
            }
        };
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Attempt::Transient {
                message: format!("HTTP {status}: {}", snippet(&body)),
                retry_after,
            };
        }
        if !status.is_success() {
            return Attempt::Fail(format!("HTTP {status}: {}", snippet(&body)));
        }
        Attempt::Done(body)
    }
}

enum BodyError {
    Read(reqwest::Error),
    /// Longer than the limit, which it names.
    TooLarge(usize),
}

/// The body, read chunk by chunk and refused as soon as it would pass `limit` bytes (a
/// declared `content-length` above it is refused before any byte is read), so an endless or
/// huge answer never costs more than `limit` bytes of memory.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let limit = limit.min(OUTPUT_BYTES_MAX);
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Certificates trusted besides reqwest's built-in roots: the system's bundle when there is
/// one (`SSL_CERT_FILE`, else the usual distribution paths) and the spec's `ca_file`.
fn trusted_roots(ca_file: Option<&std::path::Path>) -> Result<Vec<reqwest::Certificate>, String> {
    let mut roots = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    if let Some(bundle) = system {
        if let Ok(pem) = std::fs::read(&bundle) {
            // A system bundle that does not parse is skipped, not fatal: the built-in roots stay.
            roots.extend(reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default());
        }
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "the CA file {} is not PEM certificates: {e}",
                path.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "the CA file {} holds no certificate",
                path.display()
            ));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

/// Where distributions keep the system's CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The error without its URL (which may carry an account id the log should not repeat).
pub(super) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let source = std::error::Error::source(error)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    format!("{text}{source}")
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    }
}
