//! The local JSON API of a replica (`/api/v1`), its OpenAPI document, health and metrics. Every
//! host mounts it: `app(state)` gives the router, `run(listener, state, shutdown)` serves it.

mod error;
mod extract;
mod openapi;
mod routes;
pub mod ui;

use std::{future::Future, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use dashoffice_core::Replica;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, ApiQuery, Auth};
pub use openapi::ApiDoc;
pub use routes::live::events_cookie;

/// The log filter of every DashOffice program: `RUST_LOG` (default `info`), with Automerge's
/// own spans at `warn` unless `RUST_LOG` names `automerge`. Automerge marks a few hot functions
/// (parsing each column of each change, each commit) with `#[instrument]`, whose level is info:
/// at the default level every one of them made and formatted a span — 16 % of a replica's writer
/// thread while it received changes (measured, docs/PERFORMANCE.md), and nothing useful in the log.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    let given = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = given
        .as_deref()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    match given {
        Some(v) if v.contains("automerge") => filter,
        _ => match "automerge=warn".parse() {
            Ok(d) => filter.add_directive(d),
            Err(_) => filter,
        },
    }
}

/// Shared by every route.
#[derive(Clone)]
pub struct AppState {
    /// The replica served.
    pub replica: Replica,
    /// Prometheus registry to render at /metrics.
    pub metrics: PrometheusHandle,
    pub(crate) sessions: extract::SessionCache,
    pub(crate) started: Arc<Instant>,
    /// Read once it is known (a replica that joins by sync learns it from the relay).
    pub(crate) home_branch: Arc<std::sync::OnceLock<String>>,
    /// The state of sync with the relay (`GET /api/v1/sync/status`).
    pub sync_status: Arc<dyn Fn() -> dashoffice_domain::api::SyncStatus + Send + Sync>,
    /// Asks the sync client to reconnect now (`POST /api/v1/sync/reconnect`); false when this
    /// replica has no relay configured.
    pub sync_reconnect: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Login attempts per e-mail address: a burst of 10, then one every 6 seconds.
    pub(crate) login_limiter: Arc<governor::DefaultKeyedRateLimiter<String>>,
}

impl AppState {
    /// State for `replica` with a metrics handle from [`metrics_handle`].
    pub fn new(replica: Replica, metrics: PrometheusHandle) -> Self {
        let home_branch = Arc::new(std::sync::OnceLock::new());
        if let Ok(Some(b)) = replica.home_branch() {
            let _ = home_branch.set(b);
        }
        let quota = governor::Quota::per_minute(std::num::NonZeroU32::MIN.saturating_add(9));
        Self {
            replica,
            metrics,
            sessions: Default::default(),
            started: Arc::new(Instant::now()),
            home_branch,
            sync_status: Arc::new(dashoffice_domain::api::SyncStatus::default),
            sync_reconnect: Arc::new(|| false),
            login_limiter: Arc::new(governor::RateLimiter::keyed(quota)),
        }
    }

    /// The branch this replica serves by default, once known.
    pub(crate) fn home_branch(&self) -> Option<String> {
        if let Some(b) = self.home_branch.get() {
            return Some(b.clone());
        }
        let b = self.replica.home_branch().ok().flatten().filter(|b| !b.is_empty())?;
        Some(self.home_branch.get_or_init(|| b).clone())
    }

    /// Runs a read on a blocking thread.
    pub(crate) async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dashoffice_core::Connection) -> dashoffice_core::Result<R> + Send + 'static,
    ) -> ApiResult<R> {
        let r = self.replica.clone();
        tokio::task::spawn_blocking(move || r.read(f))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))?
            .map_err(Into::into)
    }
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (tests): render from a private one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

async fn track(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("dashoffice_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("dashoffice_http_request_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}

pub(crate) fn not_found_error() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /api/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /api/openapi.json",
    )
}

/// Largest JSON body accepted (CSV imports take more).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The router of the local API, health and metrics.
pub fn app(state: AppState) -> Router {
    routes::router()
        .fallback(ui::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn(track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
        }))
        .with_state(state)
}

/// Every error leaves in the JSON error shape. Axum's own rejections answer in plain text: a path
/// segment that is not valid UTF-8, a body over a route's limit read as raw bytes (CSV imports,
/// webhooks), a WebSocket request without its upgrade headers. Their text becomes the message;
/// the status and what can be blamed become `code`, `field` and `rule`.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let plain = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, blame) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", Some(("body", "max_size"))),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", Some(("body", "content_type"))),
        StatusCode::UPGRADE_REQUIRED => ("upgrade_required", Some(("headers", "websocket"))),
        // A WebSocket route asked without the upgrade headers ("Connection header did not
        // include 'upgrade'", "`Sec-WebSocket-Key` header missing").
        StatusCode::BAD_REQUEST if text.contains("upgrade") || text.contains("Sec-WebSocket") => {
            ("upgrade_required", Some(("headers", "websocket")))
        }
        StatusCode::BAD_REQUEST if text.contains("path") || text.contains("URL") => {
            ("malformed", Some(("path", "utf8")))
        }
        StatusCode::BAD_REQUEST => ("malformed", None),
        s if s.is_server_error() => ("internal", None),
        StatusCode::UNAUTHORIZED => ("unauthorized", None),
        StatusCode::FORBIDDEN => ("forbidden", None),
        StatusCode::NOT_FOUND => ("not_found", None),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", None),
        StatusCode::TOO_MANY_REQUESTS => ("too_many_requests", None),
        _ => ("bad_request", None),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut e = ApiError::new(status, code, message);
    if let Some((field, rule)) = blame {
        e = e.with_field(field, rule);
    }
    let mut out = e.into_response();
    // Headers the rejection set for the client (a WebSocket version, an Allow list) stay.
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM: what every host waits for to shut down gracefully.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
