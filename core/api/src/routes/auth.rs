//! Login, logout and who-am-I.

use axum::{Json, extract::State, http::StatusCode};
use dashoffice_core::entities::staff;
use dashoffice_domain::api::{LoginRequest, LoginResponse, StaffView};

use super::Errors;
use crate::{ApiJson, AppState, Auth, error::ApiResult};

/// Exchanges e-mail and password for a session token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), Errors))]
pub(crate) async fn login(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let shop = s.replica.shop_id()?.ok_or_else(|| {
        crate::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this node has no shop yet")
    })?;
    if s.login_limiter.check_key(&body.email.trim().to_lowercase()).is_err() {
        return Err(crate::ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many login attempts for this account; wait a minute and try again",
        )
        .with_field("email", "rate_limit"));
    }
    let sh = shop.clone();
    let user = match s.read(move |c| staff::check_login(c, &sh, &body.email, &body.password)).await {
        Ok(u) => u,
        Err(e) => {
            // A new device still in its first sync: say so instead of "wrong password".
            if s.read(move |c| staff::credentials_pending(c, &shop)).await.unwrap_or(false) {
                return Err(crate::ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "this device is still receiving the shop's accounts from the relay; try again in a minute",
                ));
            }
            return Err(e);
        }
    };
    let uid = user.id.clone();
    let (token, expires_at) = s.replica.write(move |ctx| staff::start_session(ctx, &uid)).await?;
    Ok(Json(LoginResponse { token, expires_at, user }))
}

/// Ends the session of the token sent.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), Errors))]
pub(crate) async fn logout(
    State(s): State<AppState>,
    Auth(_caller): Auth,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let token = crate::extract::bearer(&headers)?;
    s.replica.write(move |ctx| staff::end_session(ctx, &token)).await?;
    s.sessions.clear();
    // The events cookie goes with the session.
    let mut res = axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT);
    if let Some(v) = super::live::events_set_cookie("", 0) {
        res.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(res)
}

/// The logged-in staff member.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = StaffView), Errors))]
pub(crate) async fn me(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<StaffView>> {
    Ok(Json(s.read(move |conn| staff::get(conn, &c.shop_id, &c.user_id)).await?))
}
