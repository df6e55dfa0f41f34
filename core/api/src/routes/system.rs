//! Health, metrics and the OpenAPI document.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use dashoffice_domain::{Permission, api::Health};
use utoipa::OpenApi;

use crate::{ApiError, ApiResult, AppState, Auth, openapi::ApiDoc};

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

/// A backup of this replica's database, for the owner: one SQLite file, a consistent copy taken
/// while the node keeps serving. It holds everything (customers, staff password hashes): keep it
/// somewhere safe. Restore it with `dashoffice-edge restore FILE` (docs/SYNC.md).
#[utoipa::path(get, path = "/api/v1/backup", tag = "system", security(("bearer" = [])),
    responses((status = 200, description = "The database copy", content_type = "application/vnd.sqlite3"),
        crate::routes::Errors))]
pub(crate) async fn backup(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Response> {
    c.require(Permission::ManageShop)?;
    let replica = s.replica.clone();
    let (file, info) = tokio::task::spawn_blocking(move || {
        let tmp = replica.data_dir().join(format!(".backup-{}.tmp", unique_suffix()));
        let info = replica.backup(&tmp)?;
        let opened = std::fs::File::open(&tmp);
        // The open file stays readable after its name is gone: nothing is left behind, whether
        // the download finishes or not.
        let _ = std::fs::remove_file(&tmp);
        let file = opened.map_err(|e| dashoffice_core::CoreError::Storage(format!("reading the backup: {e}")))?;
        Ok::<_, dashoffice_core::CoreError>((file, info))
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    tracing::info!(user = %c.user_id, bytes = info.bytes, documents = info.documents, "backup downloaded");
    let name = format!("dashoffice-backup-{}.db", jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CONTENT_LENGTH, info.bytes.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

fn unique_suffix() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0).to_string()
}
