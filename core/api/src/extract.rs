//! Request extractors: JSON bodies with errors that name the field, and the bearer-token caller.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use dashoffice_core::Caller;
use serde::de::DeserializeOwned;

use crate::{AppState, error::ApiError};

/// A JSON body; malformed JSON, a wrong type or an unknown field is a 400 naming the field, an
/// oversized body a 413, a missing `application/json` content type a 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        if !json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "payload_too_large", "the body is larger than this route accepts")
            } else {
                ApiError::malformed(format!("could not read the body: {e}"), None)
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut *de) {
            Ok(v) => match de.end() {
                Ok(()) => Ok(Self(v)),
                Err(e) => {
                    Err(ApiError::malformed(format!("invalid JSON body: {e} (one JSON value per request)"), None))
                }
            },
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let msg = inner.to_string();
                let named = || msg.split('`').nth(1).map(str::to_string);
                let (field, rule) = if inner.is_syntax() || inner.is_eof() {
                    (None, "syntax")
                } else if msg.starts_with("unknown field") {
                    (if path == "." || path == "?" { named() } else { Some(path) }, "unknown_field")
                } else if msg.starts_with("missing field") {
                    (named().map(|f| if path == "." || path == "?" { f } else { format!("{path}.{f}") }), "required")
                } else {
                    (Some(path).filter(|p| p != "." && p != "?"), "type")
                };
                let mut err = ApiError::malformed(format!("invalid JSON body: {inner}"), None);
                if let Some(f) = field {
                    err = err.with_field(f, rule);
                }
                Err(err)
            }
        }
    }
}

/// A cached session: the caller, the token's expiry (Unix ms), when it was cached.
type CachedSession = (Caller, i64, Instant);

/// Cached sessions: token → caller and expiry, re-checked against the store every few seconds so
/// a revoked session stops working quickly.
#[derive(Default, Clone)]
pub(crate) struct SessionCache(Arc<RwLock<HashMap<String, CachedSession>>>);

const CACHE_FOR: Duration = Duration::from_secs(5);

impl SessionCache {
    fn get(&self, token: &str, now_ms: i64) -> Option<Caller> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|(_, exp, at)| *exp > now_ms && at.elapsed() < CACHE_FOR).map(|(c, _, _)| c.clone())
    }
    fn put(&self, token: &str, caller: Caller, exp: i64) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, _, at)| at.elapsed() < CACHE_FOR);
        }
        map.insert(token.to_string(), (caller, exp, Instant::now()));
    }
    /// Forgets every cached session (after logout, password change, archive).
    pub(crate) fn clear(&self) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The authenticated caller (`Authorization: Bearer <token>`).
pub struct Auth(pub Caller);

/// The raw bearer token of the request.
#[allow(clippy::result_large_err)] // ApiError is the one error every route returns.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <token> (POST /api/v1/auth/login gives one)",
        )
    };
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(missing)?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() < 200)
        .ok_or_else(missing)?;
    Ok(t.to_string())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        authenticate(state, &token).await.map(Self)
    }
}

/// The caller a session token belongs to (cached for a few seconds).
pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let now = state.replica.now_ms();
    if let Some(c) = state.sessions.get(token, now) {
        return Ok(c);
    }
    let replica = state.replica.clone();
    let t = token.to_string();
    let (caller, exp) = tokio::task::spawn_blocking(move || replica.authenticate(&t))
        .await
        .map_err(|_| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    state.sessions.put(token, caller.clone(), exp);
    Ok(caller)
}

/// Query-string parameters; a value of the wrong type is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri).map(|axum::extract::Query(v)| Self(v)).map_err(|e| {
            let text = e.body_text();
            let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_string();
            let err = ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_query",
                format!("invalid query string: {detail}"),
            );
            match detail.split_once(':') {
                Some((name, _)) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                    err.with_field(name, "type")
                }
                _ => err,
            }
        })
    }
}
