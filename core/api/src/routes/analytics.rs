//! Figures for the dashboard and the analytics page.

use axum::{Json, extract::State};
use dashoffice_core::entities::analytics::{self, SummaryQuery};
use dashoffice_domain::{FieldError, api::AnalyticsSummary};
use serde::Deserialize;

use crate::{ApiQuery, ApiResult, AppState, Auth, routes::Errors};

/// Query of `GET /api/v1/analytics/summary`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct SummaryParams {
    /// Days in the period, today included: 1 to 366 (default 30).
    days: Option<u32>,
    /// Only this branch (staff limited to a branch always get their own).
    branch_id: Option<String>,
    /// Stock at or below this is low (default 5).
    low_stock: Option<i64>,
}

/// Sales today and in the period (by day, branch and seller), orders by status, open and bot
/// conversations, conversations by branch, and low stock.
#[utoipa::path(get, path = "/api/v1/analytics/summary", tag = "analytics", params(SummaryParams),
    security(("bearer" = [])), responses((status = 200, body = AnalyticsSummary), Errors))]
pub(crate) async fn summary(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> ApiResult<Json<AnalyticsSummary>> {
    let days = p.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(FieldError::new("days", "range", "between 1 and 366").into());
    }
    let low_stock = p.low_stock.unwrap_or(5);
    if !(-1_000_000..=1_000_000).contains(&low_stock) {
        return Err(FieldError::new("low_stock", "range", "between -1000000 and 1000000").into());
    }
    let q = SummaryQuery { days, branch_id: p.branch_id, low_stock, now_ms: s.replica.now_ms() };
    Ok(Json(s.read(move |conn| analytics::summary(conn, &c, &q)).await?))
}
