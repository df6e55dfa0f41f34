//! Support tickets: open, list, change, comment.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use dashoffice_core::{csv_io, entities::tickets};
use dashoffice_domain::api::{AddTicketComment, CreateTicket, Page, TicketListParams, TicketView, UpdateTicket};

use super::{Errors, catalog::export};
use crate::{ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// Tickets, newest first (`status`: a status or `active`; `priority`; `assignee_id`: an id, `me`
/// or `none`; `customer_id`; `order_id`; `q`: number, subject, description or customer name;
/// sort `created_at`, `updated_at`, `due_at`, `number`).
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])), params(TicketListParams),
    responses((status = 200, body = Page<TicketView>), Errors))]
pub(crate) async fn list_tickets(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<TicketListParams>,
) -> ApiResult<Json<Page<TicketView>>> {
    Ok(Json(s.read(move |conn| tickets::list(conn, &c, &p)).await?))
}

/// Exports every support ticket as CSV, newest first (owners and managers).
#[utoipa::path(get, path = "/api/v1/tickets/export", tag = "tickets", security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), Errors))]
pub(crate) async fn export_tickets(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Response> {
    export(s, "tickets", move |r, out| csv_io::export_tickets(r, &c, out)).await
}

/// Opens a ticket; without `customer_id`, the order's or the conversation's customer is taken.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])), request_body = CreateTicket,
    responses((status = 201, body = TicketView), Errors))]
pub(crate) async fn create_ticket(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateTicket>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let home = s.home_branch();
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| tickets::create(ctx, &c, home.as_deref(), b)).await?)))
}

/// One ticket with its comments and status changes.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketView), Errors))]
pub(crate) async fn get_ticket(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.read(move |conn| tickets::get(conn, &c, &id)).await?))
}

/// Changes a ticket: subject, description, status (a closed ticket only opens again), priority,
/// who handles it.
#[utoipa::path(patch, path = "/api/v1/tickets/{id}", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateTicket, responses((status = 200, body = TicketView), Errors))]
pub(crate) async fn update_ticket(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateTicket>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.replica.write(move |ctx| tickets::update(ctx, &c, &id, b)).await?))
}

/// Adds a comment to a ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/comments", tag = "tickets", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = AddTicketComment, responses((status = 201, body = TicketView), Errors))]
pub(crate) async fn comment_ticket(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AddTicketComment>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| tickets::comment(ctx, &c, &id, b)).await?)))
}
