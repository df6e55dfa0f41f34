//! The owner's API for WhatsApp numbers (the admin token, or head office's owner for its own
//! shop): connect a number to a shop (and branch)
//! with its Graph API access token, list numbers (tokens never shown), disconnect one; and the
//! webhook backlog.

use std::sync::Arc;

use axum::{
    Json,
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dashoffice_api::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

use super::{WhatsApp, store::Number};
use crate::http::{Scope, check_id, other_shop};

/// POST /api/v1/whatsapp/numbers
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutNumber {
    phone_number_id: String,
    shop_id: String,
    #[serde(default)]
    branch_id: Option<String>,
    access_token: String,
    #[serde(default)]
    display_number: String,
}

#[derive(Serialize)]
struct NumberOut {
    #[serde(flatten)]
    number: Number,
    access_token_set: bool,
}

fn bad(field: &str, rule: &str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", msg).with_field(field, rule)
}

fn storage(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "whatsapp storage failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the relay's storage failed; retry later")
}

impl PutNumber {
    /// The number to store.
    pub fn into_number(self) -> Number {
        Number {
            phone_number_id: self.phone_number_id,
            shop_id: self.shop_id,
            branch_id: self.branch_id.filter(|b| !b.is_empty()),
            display_number: self.display_number,
            access_token: self.access_token,
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// Checks a number request; the error names the field.
pub fn validate(p: &PutNumber) -> ApiResult<()> {
    if p.phone_number_id.is_empty()
        || p.phone_number_id.len() > 32
        || !p.phone_number_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("phone_number_id", "digits", "Meta's phone number id: 1 to 32 digits"));
    }
    check_id("shop_id", &p.shop_id).map_err(|m| bad("shop_id", "format", m))?;
    if let Some(b) = &p.branch_id {
        check_id("branch_id", b).map_err(|m| bad("branch_id", "format", m))?;
    }
    if p.access_token.trim().len() < 8 || p.access_token.len() > 1024 || p.access_token.contains(char::is_whitespace) {
        return Err(bad("access_token", "format", "the Graph API access token (8 to 1024 characters, no spaces)"));
    }
    if p.display_number.len() > 32 {
        return Err(bad("display_number", "max_length", "at most 32 characters"));
    }
    Ok(())
}

/// Connects (or reconnects) a number; starts the shop's service replica.
pub async fn put(wa: Arc<WhatsApp>, scope: &Scope, p: PutNumber) -> ApiResult<Response> {
    validate(&p)?;
    if !scope.allows(&p.shop_id) {
        return Err(other_shop("shop_id"));
    }
    // Head office may not take over a number another shop connected.
    if let Some(old) = wa.store.number(&p.phone_number_id).map_err(storage)?
        && !scope.allows(&old.shop_id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this phone number id is connected to another shop",
        )
        .with_field("phone_number_id", "unique"));
    }
    let n = p.into_number();
    let st = wa.store.clone();
    let n2 = n.clone();
    tokio::task::spawn_blocking(move || st.put_number(&n2)).await.map_err(storage)?.map_err(storage)?;
    wa.service(&n.shop_id).map_err(storage)?;
    wa.wake.notify_one();
    tracing::info!(phone_number_id = %n.phone_number_id, shop = %n.shop_id, "WhatsApp number connected");
    let out = wa.store.number(&n.phone_number_id).map_err(storage)?.unwrap_or(n);
    Ok((StatusCode::CREATED, Json(NumberOut { number: out, access_token_set: true })).into_response())
}

/// Every number (without tokens).
pub async fn list(wa: Arc<WhatsApp>, scope: &Scope) -> ApiResult<Response> {
    let numbers = wa.store.numbers().map_err(storage)?;
    let out: Vec<NumberOut> = numbers
        .into_iter()
        .filter(|n| scope.allows(&n.shop_id))
        .map(|n| NumberOut { access_token_set: !n.access_token.is_empty(), number: n })
        .collect();
    Ok(Json(out).into_response())
}

/// Disconnects a number.
pub async fn delete(wa: Arc<WhatsApp>, scope: &Scope, Path(id): Path<String>) -> ApiResult<Response> {
    let mine = wa.store.number(&id).map_err(storage)?.is_some_and(|n| scope.allows(&n.shop_id));
    if mine && wa.store.delete_number(&id).map_err(storage)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no number {id}")))
    }
}

/// Webhook events by state, and the outbox.
pub async fn backlog(wa: Arc<WhatsApp>) -> ApiResult<Response> {
    let counts = wa.store.event_counts().map_err(storage)?;
    let get = |s: i64| counts.by_state.iter().find(|(k, _)| *k == s).map(|(_, n)| *n).unwrap_or(0);
    Ok(Json(serde_json::json!({
        "events": { "pending": get(0), "done": get(1), "ignored": get(2), "failed": get(3) },
        "last_processed_at": counts.last_processed_at,
        "shops": wa.services.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect::<Vec<_>>(),
    }))
    .into_response())
}
