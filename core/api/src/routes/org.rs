//! The shop, its branches and its staff.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use dashoffice_core::entities::{org, staff};
use dashoffice_domain::{
    Permission,
    api::{
        BranchView, CreateBranch, CreateStaff, ListParams, Page, ShopView, StaffView, UpdateBranch, UpdateShop,
        UpdateStaff,
    },
};

use super::Errors;
use crate::{ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// The shop's settings.
#[utoipa::path(get, path = "/api/v1/shop", tag = "shop", security(("bearer" = [])), responses((status = 200, body = ShopView), Errors))]
pub(crate) async fn get_shop(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<ShopView>> {
    Ok(Json(s.read(move |conn| org::get_shop(conn, &c.shop_id)).await?))
}

/// Changes the shop's settings (owner).
#[utoipa::path(patch, path = "/api/v1/shop", tag = "shop", security(("bearer" = [])), request_body = UpdateShop,
    responses((status = 200, body = ShopView), Errors))]
pub(crate) async fn update_shop(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<UpdateShop>,
) -> ApiResult<Json<ShopView>> {
    Ok(Json(s.replica.write(move |ctx| org::update_shop(ctx, &c, b)).await?))
}

/// Every branch (`archived=true` includes archived ones).
#[utoipa::path(get, path = "/api/v1/branches", tag = "shop", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Vec<BranchView>), Errors))]
pub(crate) async fn list_branches(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<BranchView>>> {
    Ok(Json(s.read(move |conn| org::list_branches(conn, &c.shop_id, p.archived.unwrap_or(false))).await?))
}

/// Creates a branch.
#[utoipa::path(post, path = "/api/v1/branches", tag = "shop", security(("bearer" = [])), request_body = CreateBranch,
    responses((status = 201, body = BranchView), Errors))]
pub(crate) async fn create_branch(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateBranch>,
) -> ApiResult<(StatusCode, Json<BranchView>)> {
    let shop = c.shop_id.clone();
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| org::create_branch(ctx, Some(&c), &shop, b)).await?)))
}

/// One branch.
#[utoipa::path(get, path = "/api/v1/branches/{id}", tag = "shop", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = BranchView), Errors))]
pub(crate) async fn get_branch(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BranchView>> {
    Ok(Json(s.read(move |conn| org::get_branch(conn, &c.shop_id, &id)).await?))
}

/// Makes the replica that answers (this edge node, desktop app or the relay) the device that
/// gives the branch's invoices their legal numbers (owners and managers). It continues the
/// series after the highest number it knows: let the device it replaces sync first.
#[utoipa::path(post, path = "/api/v1/branches/{id}/invoicer", tag = "shop", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = BranchView), Errors))]
pub(crate) async fn set_invoicer(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BranchView>> {
    Ok(Json(s.replica.write(move |ctx| org::set_invoicer(ctx, &c, &id)).await?))
}

/// Renames a branch.
#[utoipa::path(patch, path = "/api/v1/branches/{id}", tag = "shop", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateBranch, responses((status = 200, body = BranchView), Errors))]
pub(crate) async fn update_branch(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateBranch>,
) -> ApiResult<Json<BranchView>> {
    Ok(Json(s.replica.write(move |ctx| org::update_branch(ctx, &c, &id, b)).await?))
}

/// Archives a branch.
#[utoipa::path(delete, path = "/api/v1/branches/{id}", tag = "shop", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = BranchView), Errors))]
pub(crate) async fn archive_branch(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BranchView>> {
    Ok(Json(s.replica.write(move |ctx| org::archive_branch(ctx, &c, &id)).await?))
}

/// Staff accounts (`q` matches name or e-mail; sort `name`, `email`, `created_at`).
#[utoipa::path(get, path = "/api/v1/staff", tag = "staff", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<StaffView>), Errors))]
pub(crate) async fn list_staff(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<StaffView>>> {
    Ok(Json(s.read(move |conn| staff::list(conn, &c, &p)).await?))
}

/// Creates a staff account.
#[utoipa::path(post, path = "/api/v1/staff", tag = "staff", security(("bearer" = [])), request_body = CreateStaff,
    responses((status = 201, body = StaffView), Errors))]
pub(crate) async fn create_staff(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateStaff>,
) -> ApiResult<(StatusCode, Json<StaffView>)> {
    let shop = c.shop_id.clone();
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| staff::create(ctx, Some(&c), &shop, b)).await?)))
}

/// One staff account.
#[utoipa::path(get, path = "/api/v1/staff/{id}", tag = "staff", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = StaffView), Errors))]
pub(crate) async fn get_staff(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StaffView>> {
    if id != c.user_id {
        c.require(Permission::ManageStaff).or_else(|_| c.require(Permission::EditCustomers))?;
    }
    let v = s.read(move |conn| staff::get(conn, &c.shop_id, &id).map(|v| (v, c))).await?;
    let (v, c) = v;
    if let Some(b) = &v.branch_id {
        c.check_branch(b).map_err(|_| dashoffice_core::CoreError::not_found("staff", &v.id))?;
    }
    Ok(Json(v))
}

/// Changes a staff account (anyone may change their own name and password).
#[utoipa::path(patch, path = "/api/v1/staff/{id}", tag = "staff", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateStaff, responses((status = 200, body = StaffView), Errors))]
pub(crate) async fn update_staff(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateStaff>,
) -> ApiResult<Json<StaffView>> {
    let v = s.replica.write(move |ctx| staff::update(ctx, &c, &id, b)).await?;
    s.sessions.clear();
    Ok(Json(v))
}

/// Archives a staff account and ends its sessions.
#[utoipa::path(delete, path = "/api/v1/staff/{id}", tag = "staff", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = StaffView), Errors))]
pub(crate) async fn archive_staff(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StaffView>> {
    let v = s.replica.write(move |ctx| staff::archive(ctx, &c, &id)).await?;
    s.sessions.clear();
    Ok(Json(v))
}
