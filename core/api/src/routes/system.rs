//! Health, metrics and the OpenAPI document.

use axum::{Json, extract::State, http::header, response::IntoResponse};
use dashoffice_domain::api::Health;
use utoipa::OpenApi;

use crate::{AppState, openapi::ApiDoc};

/// Liveness: answers while the node can read its store.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        device: s.replica.device().code.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Prometheus metrics: requests, latencies, write queue depth, SQLite file sizes.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let st = s.replica.stats();
    metrics::gauge!("dashoffice_write_queue_depth").set(st.write_queue as f64);
    metrics::gauge!("dashoffice_sqlite_bytes", "file" => "db").set(st.db_bytes as f64);
    metrics::gauge!("dashoffice_sqlite_bytes", "file" => "wal").set(st.wal_bytes as f64);
    metrics::gauge!("dashoffice_uptime_seconds").set(s.started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
