//! Sync with the relay: its state, reconnecting now, and the documents this replica holds (with the
//! automerge-repo URL a JavaScript client opens them by).

use axum::{Json, extract::State, http::StatusCode};
use dashoffice_domain::{
    Role,
    api::{SyncDocument, SyncStatus},
};

use crate::{ApiError, ApiResult, AppState, Auth, routes::Errors};

/// Connected or not, last successful sync, pending outbound changes and lag per peer.
#[utoipa::path(get, path = "/api/v1/sync/status", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = SyncStatus), Errors))]
pub(crate) async fn status(State(s): State<AppState>, Auth(_caller): Auth) -> ApiResult<Json<SyncStatus>> {
    let f = s.sync_status.clone();
    let st = tokio::task::spawn_blocking(move || f())
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))?;
    Ok(Json(st))
}

/// "Sync now": the sync client stops waiting between attempts and reconnects at once (a session
/// that is up is opened again). Answers 202 with the state at that moment; 409 when no relay is
/// configured here.
#[utoipa::path(post, path = "/api/v1/sync/reconnect", tag = "sync", security(("bearer" = [])),
    responses((status = 202, body = SyncStatus), Errors))]
pub(crate) async fn reconnect(
    State(s): State<AppState>,
    Auth(_caller): Auth,
) -> ApiResult<(StatusCode, Json<SyncStatus>)> {
    if !(s.sync_reconnect)() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "sync_off",
            "this replica has no relay to sync with (set the relay in its configuration or settings)",
        ));
    }
    let f = s.sync_status.clone();
    let st = tokio::task::spawn_blocking(move || f())
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))?;
    Ok((StatusCode::ACCEPTED, Json(st)))
}

/// Every document stored here with its heads (owners and managers).
#[utoipa::path(get, path = "/api/v1/sync/documents", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = Vec<SyncDocument>), Errors))]
pub(crate) async fn documents(State(s): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<Vec<SyncDocument>>> {
    if !matches!(caller.role, Role::Owner | Role::Manager) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only owners and managers list documents"));
    }
    let r = s.replica.clone();
    let docs = tokio::task::spawn_blocking(move || -> dashoffice_core::Result<Vec<SyncDocument>> {
        let mut out = Vec::new();
        for id in r.doc_ids()? {
            let heads = r.heads(&id)?.iter().map(|h| h.to_string()).collect();
            out.push(SyncDocument {
                url: dashoffice_core::repo_id::repo_url(id.as_str()),
                id: id.as_str().to_string(),
                heads,
            });
        }
        Ok(out)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    Ok(Json(docs))
}
