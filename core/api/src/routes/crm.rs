//! Customers: CRUD, merge, CSV import/export.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use dashoffice_core::{
    csv_io,
    entities::{customers, inbox},
};
use dashoffice_domain::{
    api::{
        CreateCustomer, CustomerView, ImportReport, ListParams, MergeCustomers, Page, StartConversation, UpdateCustomer,
    },
    inbox::ConversationView,
};

use super::{
    Errors,
    catalog::{ImportParams, export, run_import},
};
use crate::{ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// Customers (`q` matches name, e-mail or phone digits; `tag`; sort `name`, `created_at`, `updated_at`).
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<CustomerView>), Errors))]
pub(crate) async fn list_customers(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<CustomerView>>> {
    Ok(Json(s.read(move |conn| customers::list(conn, &c, &p)).await?))
}

/// Creates a customer; the phone is stored in E.164.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", security(("bearer" = [])), request_body = CreateCustomer,
    responses((status = 201, body = CustomerView), Errors))]
pub(crate) async fn create_customer(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateCustomer>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| customers::create(ctx, &c, b)).await?)))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CustomerView), Errors))]
pub(crate) async fn get_customer(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(s.read(move |conn| customers::get(conn, &c.shop_id, &id)).await?))
}

/// Changes a customer.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateCustomer, responses((status = 200, body = CustomerView), Errors))]
pub(crate) async fn update_customer(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateCustomer>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(s.replica.write(move |ctx| customers::update(ctx, &c, &id, b)).await?))
}

/// Archives (deletes) a customer.
#[utoipa::path(delete, path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CustomerView), Errors))]
pub(crate) async fn archive_customer(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(s.replica.write(move |ctx| customers::archive(ctx, &c, &id)).await?))
}

/// Merges customer `from_id` into this one; both histories stay.
#[utoipa::path(post, path = "/api/v1/customers/{id}/merge", tag = "customers", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = MergeCustomers, responses((status = 200, body = CustomerView), Errors))]
pub(crate) async fn merge_customers(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MergeCustomers>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(s.replica.write(move |ctx| customers::merge(ctx, &c, &id, b)).await?))
}

/// Opens a WhatsApp conversation with the customer from the shop's side (their latest one the caller
/// may see, or a new one assigned to the caller). The customer needs a WhatsApp number or a phone
/// (422 `wa_id`); the first message must be an approved template.
#[utoipa::path(post, path = "/api/v1/customers/{id}/conversation", tag = "customers", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = StartConversation, responses((status = 200, body = ConversationView), Errors))]
pub(crate) async fn start_conversation(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StartConversation>,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(s.replica.write(move |ctx| inbox::start(ctx, &c, &id, b.branch_id.as_deref())).await?))
}

/// Imports customers from CSV (columns name,phone,email,tags,notes,wa_id,tax_id,address); a known phone updates.
#[utoipa::path(post, path = "/api/v1/customers/import", tag = "customers", security(("bearer" = [])), params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 422, body = ImportReport, description = "Bad rows; nothing imported (mode=all)"), Errors))]
pub(crate) async fn import_customers(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ImportParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let noop: csv_io::Progress = std::sync::Arc::new(|_, _| {});
    run_import(s, body, p.mode, move |r, b, m| csv_io::import_customers(r, &c, b, m, noop)).await
}

/// Exports every live customer as CSV.
#[utoipa::path(get, path = "/api/v1/customers/export", tag = "customers", security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), Errors))]
pub(crate) async fn export_customers(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Response> {
    export(s, "customers", move |r, out| csv_io::export_customers(r, &c, out)).await
}
