//! Products, stock, and catalog CSV import/export.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use dashoffice_core::{
    csv_io::{self, ImportMode},
    entities::{products, stock},
};
use dashoffice_domain::api::{
    AdjustStock, CreateProduct, ImportReport, ListParams, Page, ProductView, StockView, UpdateProduct,
};
use serde::Deserialize;

use super::Errors;
use crate::{ApiError, ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// Products (`q` matches name or SKU; filters `tag`, `active`, `archived`; sort `name`, `sku`,
/// `price`, `created_at`, `updated_at`, `-` for descending).
#[utoipa::path(get, path = "/api/v1/products", tag = "products", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<ProductView>), Errors))]
pub(crate) async fn list_products(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<ProductView>>> {
    Ok(Json(s.read(move |conn| products::list(conn, &c, &p)).await?))
}

/// Creates a product (owner, manager).
#[utoipa::path(post, path = "/api/v1/products", tag = "products", security(("bearer" = [])), request_body = CreateProduct,
    responses((status = 201, body = ProductView), Errors))]
pub(crate) async fn create_product(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateProduct>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| products::create(ctx, &c, b)).await?)))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProductView), Errors))]
pub(crate) async fn get_product(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(s.read(move |conn| products::get(conn, &c.shop_id, &id)).await?))
}

/// Changes a product (owner, manager: sellers cannot change prices).
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateProduct, responses((status = 200, body = ProductView), Errors))]
pub(crate) async fn update_product(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateProduct>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(s.replica.write(move |ctx| products::update(ctx, &c, &id, b)).await?))
}

/// Archives (deletes) a product.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ProductView), Errors))]
pub(crate) async fn archive_product(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(s.replica.write(move |ctx| products::archive(ctx, &c, &id)).await?))
}

/// Stock of a product in every branch the caller may see.
#[utoipa::path(get, path = "/api/v1/products/{id}/stock", tag = "stock", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<StockView>), Errors))]
pub(crate) async fn product_stock(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<StockView>>> {
    Ok(Json(s.read(move |conn| stock::for_product(conn, &c, &id)).await?))
}

/// Adjusts a product's stock in a branch (receipts, counts, losses).
#[utoipa::path(post, path = "/api/v1/products/{id}/stock", tag = "stock", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = AdjustStock, responses((status = 200, body = StockView), Errors))]
pub(crate) async fn adjust_stock(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AdjustStock>,
) -> ApiResult<Json<StockView>> {
    let home = s.home_branch();
    Ok(Json(s.replica.write(move |ctx| stock::adjust(ctx, &c, &id, home.as_deref(), b)).await?))
}

/// Stock of a branch (`branch_id`, default the node's; `q=oversold` or `q=low`; sort `on_hand`).
#[utoipa::path(get, path = "/api/v1/stock", tag = "stock", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<StockView>), Errors))]
pub(crate) async fn list_stock(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<StockView>>> {
    let home = s.home_branch();
    Ok(Json(s.read(move |conn| stock::list(conn, &c, home.as_deref(), &p)).await?))
}

/// Import options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ImportParams {
    /// `all` (default): import nothing unless every row is valid; `valid`: import the valid rows.
    pub(crate) mode: Option<String>,
}

pub(crate) async fn run_import(
    s: AppState,
    body: Bytes,
    mode: Option<String>,
    f: impl FnOnce(&dashoffice_core::Replica, &[u8], ImportMode) -> dashoffice_core::Result<ImportReport> + Send + 'static,
) -> ApiResult<Response> {
    let mode = ImportMode::parse(mode.as_deref().unwrap_or("all"))?;
    let replica = s.replica.clone();
    let report = tokio::task::spawn_blocking(move || f(&replica, &body, mode))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    let status = if report.committed { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Json(report)).into_response())
}

/// Imports products from CSV (columns sku,name,description,price,currency,tax_rate,active,tags;
/// tags separated by `|`). A known SKU updates its product. Every bad row is reported with its line.
#[utoipa::path(post, path = "/api/v1/products/import", tag = "products", security(("bearer" = [])), params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 422, body = ImportReport, description = "Bad rows; nothing imported (mode=all)"), Errors))]
pub(crate) async fn import_products(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ImportParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let noop: csv_io::Progress = std::sync::Arc::new(|_, _| {});
    run_import(s, body, p.mode, move |r, b, m| csv_io::import_products(r, &c, b, m, noop)).await
}

pub(crate) async fn export(
    s: AppState,
    name: &'static str,
    f: impl FnOnce(&dashoffice_core::Replica, &mut Vec<u8>) -> dashoffice_core::Result<u64> + Send + 'static,
) -> ApiResult<Response> {
    export_named(s, name.to_string(), f).await
}

/// [`export`] under a file name made at run time (letters, digits, `-` and `_` only).
pub(crate) async fn export_named(
    s: AppState,
    name: String,
    f: impl FnOnce(&dashoffice_core::Replica, &mut Vec<u8>) -> dashoffice_core::Result<u64> + Send + 'static,
) -> ApiResult<Response> {
    let replica = s.replica.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        f(&replica, &mut out).map(|_| out)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.csv\"")),
        ],
        bytes,
    )
        .into_response())
}

/// Exports every live product as CSV (the import format).
#[utoipa::path(get, path = "/api/v1/products/export", tag = "products", security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), Errors))]
pub(crate) async fn export_products(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Response> {
    export(s, "products", move |r, out| csv_io::export_products(r, &c, out)).await
}
