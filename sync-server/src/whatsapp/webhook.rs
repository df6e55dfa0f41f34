//! `GET /webhooks/whatsapp` (Meta's verification handshake) and `POST /webhooks/whatsapp` (events:
//! signature checked on the raw bytes, stored durably, answered 200; processed afterwards).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::WhatsApp;

/// Largest body accepted (Meta's payloads stay under 3 MB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The handshake's query.
#[derive(Deserialize)]
pub struct Verify {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    dashoffice_api::ApiError::new(status, code, message).into_response()
}

/// Answers the challenge when the mode is subscribe and the token matches; 403 otherwise.
pub async fn verify(State(wa): State<Arc<WhatsApp>>, Query(q): Query<Verify>) -> Response {
    let Some(expected) = wa.cfg.verify_token.as_deref() else {
        return error(
            StatusCode::FORBIDDEN,
            "not_configured",
            "no verify token is configured (DASHOFFICE_WHATSAPP_VERIFY_TOKEN)",
        );
    };
    let token_ok = q.token.as_deref().is_some_and(|t| same_secret(t, expected));
    match (q.mode.as_deref(), token_ok, q.challenge) {
        (Some("subscribe"), true, Some(c)) => (StatusCode::OK, c).into_response(),
        (Some("subscribe"), true, None) => {
            dashoffice_api::ApiError::new(StatusCode::BAD_REQUEST, "validation", "hub.challenge is required")
                .with_field("hub.challenge", "required")
                .into_response()
        }
        (Some("subscribe"), false, _) => error(StatusCode::FORBIDDEN, "forbidden", "hub.verify_token does not match"),
        _ => error(StatusCode::FORBIDDEN, "forbidden", "hub.mode must be subscribe"),
    }
}

/// Compares two secrets without an early exit (HMAC of one, verified against the other).
fn same_secret(given: &str, expected: &str) -> bool {
    let Ok(mut a) = <Hmac<Sha256> as KeyInit>::new_from_slice(b"compare") else { return false };
    let Ok(mut b) = <Hmac<Sha256> as KeyInit>::new_from_slice(b"compare") else { return false };
    a.update(given.as_bytes());
    b.update(expected.as_bytes());
    a.verify_slice(&b.finalize().into_bytes()).is_ok()
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the raw body.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Receives an event: 401 without a valid signature (nothing stored), 413 over 3 MB, 400 when
/// the body is not JSON; otherwise stored durably, then 200.
pub async fn receive(State(wa): State<Arc<WhatsApp>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = wa.cfg.app_secret.as_deref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "no app secret is configured (DASHOFFICE_WHATSAPP_APP_SECRET)",
        );
    };
    let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !signature_ok(secret.as_bytes(), &body, sig) {
        metrics::counter!("dashoffice_whatsapp_webhooks_total", "result" => "bad_signature").increment(1);
        tracing::warn!(bytes = body.len(), "webhook refused: X-Hub-Signature-256 missing or wrong");
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 is missing or does not match the body",
        );
    }
    // Only well-formed JSON is kept (what Meta sends always is); the structure is read later,
    // tolerantly, so a new field or type never makes Meta retry.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        metrics::counter!("dashoffice_whatsapp_webhooks_total", "result" => "malformed").increment(1);
        tracing::warn!(error = %e, "webhook refused: the body is not JSON");
        return error(StatusCode::BAD_REQUEST, "malformed", &format!("the body is not JSON: {e}"));
    }
    match wa.store.ingest(body.to_vec()).await {
        Ok(_) => {
            metrics::counter!("dashoffice_whatsapp_webhooks_total", "result" => "stored").increment(1);
            wa.wake.notify_one();
            (StatusCode::OK, "EVENT_RECEIVED").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "storing a webhook event failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the event could not be stored; Meta will retry")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_on_the_raw_bytes() {
        let body = br#"{"object":"whatsapp_business_account","x":"\u00e1"}"#;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_ok(b"secret", body, Some(&good)));
        assert!(!signature_ok(b"other", body, Some(&good)));
        assert!(!signature_ok(b"secret", r#"{"object":"whatsapp_business_account","x":"á"}"#.as_bytes(), Some(&good)));
        assert!(!signature_ok(b"secret", body, None));
        assert!(!signature_ok(b"secret", body, Some("sha256=zz")));
        assert!(!signature_ok(b"secret", body, Some(&good[7..])));
    }
}
