//! The `serve` and `metrics --listen` server: `/metrics`, `/healthz` and, with a policy,
//! `/gate/{partition}/{region}` for other controllers. Bounded whatever its clients do.
//!
//! - One read-only store pool for the server's life: a scrape never opens, checks or
//!   migrates a store.
//! - At most `MAX_CONNECTIONS` connections at once; further clients wait in the listen
//!   backlog, never in memory. Every response shares one rendering. Each connection lives at most `CONNECTION_LIFETIME`.
//! - A request's headers must arrive within `HEADER_READ_TIMEOUT` (a slow-header client is
//!   disconnected), in at most `MAX_HEADER_BUFFER` bytes.
//! - One rendering at a time; scrapes arriving within `RENDER_REUSE` of a rendering share it.
//!   So memory is one rendered exposition plus a small buffer per open connection.
//! - `/healthz` answers `ok` without touching the store; a `/metrics` or `/gate` failure is a
//!   503 whose body has every URL password masked.
//! - `/gate/{partition}/{region}`: 200 when the cell's gate passes for its next step, 409 when
//!   it is blocked (held, failing, too little data), 404 for a cell the policy or the store does
//!   not have; JSON with every measured value and threshold a number
//!   (`billshadow_reports::gate`). One judgement at a time, shared like a rendering.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Mutex, Semaphore};

use billshadow_reports::view::GateView;

use crate::controller::policy::Policy;
use crate::store::Store;

/// Connections open at once. Each costs at most its request buffer and a handle on the shared
/// rendering, so this many cost a few MiB; it is taken before `accept`, so further clients
/// wait in the kernel's backlog. (Accepting far fewer than a burst of clients lets the kernel
/// drop and reset half-open connections while they wait.)
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open (keep-alive included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The read buffer of a connection, and so the largest request head.
const MAX_HEADER_BUFFER: usize = 16 * 1024;
/// How long a rendered exposition is reused by the scrapes that follow it.
const RENDER_REUSE: Duration = Duration::from_secs(1);

/// A rendering: the exposition, or the (masked) error a 503 shows.
type Rendered = Result<Arc<str>, Arc<str>>;

/// Every cell's gate, or the (masked) error a 503 shows.
type Judged = Result<Arc<Vec<GateView>>, Arc<str>>;

struct Shared {
    store: Store,
    policy: Option<PathBuf>,
    /// The policy the gate judges by, read once at start.
    gate_policy: Option<Policy>,
    /// The last rendering: when, and the text or the (masked) error.
    last: Mutex<Option<(Instant, Rendered)>>,
    /// The last judgement of every cell's gate: when, and the verdicts or the (masked) error.
    gates: Mutex<Option<(Instant, Judged)>>,
}

/// Serves until the listener fails.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    policy: Option<PathBuf>,
) -> anyhow::Result<()> {
    let gate_policy = policy.as_deref().map(Policy::load).transpose()?;
    let shared = Arc::new(Shared {
        store,
        policy,
        gate_policy,
        last: Mutex::new(None),
        gates: Mutex::new(None),
    });
    let gates = Arc::clone(&shared);
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let shared = Arc::clone(&shared);
                async move { scrape(&shared).await }
            }),
        )
        // POST too: Flagger's webhooks post a payload (ignored here) and read the status.
        .route(
            "/gate/{partition}/{region}",
            axum::routing::get(gate_handler(&gates)).post(gate_handler(&gates)),
        );
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot first: a client beyond the limit waits in the kernel's backlog.
        let slot = Arc::clone(&slots).acquire_owned().await?;
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BUFFER)
                .serve_connection(TokioIo::new(socket), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// A rendering sent by every response that shares it, never copied per scrape.
struct Exposition(Arc<str>);

impl AsRef<[u8]> for Exposition {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

async fn scrape(shared: &Shared) -> axum::response::Response {
    let result = {
        let mut last = shared.last.lock().await;
        match &*last {
            Some((at, result)) if at.elapsed() < RENDER_REUSE => result.clone(),
            _ => {
                let result =
                    match super::metrics_text(&shared.store, shared.policy.as_deref()).await {
                        Ok(text) => Ok(Arc::from(text)),
                        Err(e) => Err(Arc::from(format!(
                            "{}\n",
                            billshadow_adapters::redact::urls(&format!("{e:#}"))
                        ))),
                    };
                *last = Some((Instant::now(), result.clone()));
                result
            }
        }
    };
    match result {
        Ok(text) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            axum::body::Body::from(axum::body::Bytes::from_owner(Exposition(text))),
        )
            .into_response(),
        Err(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain")],
            message.to_string(),
        )
            .into_response(),
    }
}

/// A response on its way.
type Answer = std::pin::Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;
/// A cell named by the path: (partition, region).
type CellPath = axum::extract::Path<(String, String)>;

/// The handler of `/gate/{partition}/{region}` over `shared`.
fn gate_handler(
    shared: &Arc<Shared>,
) -> impl Fn(CellPath) -> Answer + Clone + Send + Sync + 'static {
    let shared = Arc::clone(shared);
    move |axum::extract::Path((partition, region))| {
        let shared = Arc::clone(&shared);
        Box::pin(async move { gate(&shared, &format!("{partition}/{region}")).await })
    }
}

/// Every cell's gate, judged at most once per `RENDER_REUSE` whatever the number of callers.
async fn judge(shared: &Shared, policy: &Policy) -> Judged {
    let mut last = shared.gates.lock().await;
    if let Some((at, judged)) = &*last {
        if at.elapsed() < RENDER_REUSE {
            return judged.clone();
        }
    }
    let judged = match crate::controller::gate_views(&shared.store, policy).await {
        Ok(views) => Ok(Arc::new(views)),
        Err(e) => Err(Arc::from(format!(
            "{}\n",
            billshadow_adapters::redact::urls(&format!("{e:#}"))
        ))),
    };
    *last = Some((Instant::now(), judged.clone()));
    judged
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> axum::response::Response {
    (
        status,
        [("content-type", "application/json")],
        format!("{body:#}\n"),
    )
        .into_response()
}

/// `GET /gate/{partition}/{region}`: 200 pass, 409 blocked, 404 no such cell (or no policy).
async fn gate(shared: &Shared, cell: &str) -> axum::response::Response {
    let Some(policy) = &shared.gate_policy else {
        let error = "this server has no policy: start it with --policy to answer /gate";
        return json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": error }),
        );
    };
    let views = match judge(shared, policy).await {
        Ok(views) => views,
        Err(message) => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "error": message.trim_end() }),
            );
        }
    };
    match views.iter().find(|v| v.cell == cell) {
        Some(view) => {
            let status = if view.passed {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            json_response(status, &billshadow_reports::gate::json(view))
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({
                "error": format!("no cell {cell} in the policy, or not initialised in the store (`billshadow migrate init`)")
            }),
        ),
    }
}
