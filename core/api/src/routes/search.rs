//! Search across the shop's records (the search box of every page).

use axum::{Json, extract::State, http::StatusCode};
use dashoffice_domain::api::{SearchParams, SearchResults};

use super::Errors;
use crate::{ApiError, ApiQuery, AppState, Auth, error::ApiResult};

/// Finds products, customers, orders and WhatsApp messages by their words, whatever the accents
/// or case, the last word cut short, longer words with one typo. Only what the caller may see:
/// its shop, and its branch's orders and messages for a role limited to one branch. 503 while
/// the replica has no search index (see the node's log).
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = SearchResults), Errors))]
pub(crate) async fn search(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> ApiResult<Json<SearchResults>> {
    let r = s.replica.clone();
    let found = tokio::task::spawn_blocking(move || r.search(&c, &p))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    Ok(Json(found))
}
