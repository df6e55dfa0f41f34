//! The loopback API only this app can use: `dashoffice-api` (the same routes as an edge node, and
//! the web UI) plus the desktop's own routes, on 127.0.0.1 and a random port, behind a secret
//! made at each launch. The window opens `/__launch?key=SECRET`, which sets the secret as an
//! HttpOnly, SameSite=Strict cookie; every other request without it gets 401. Other programs on
//! the computer know neither the port in advance nor the secret.

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use dashoffice_api::{ApiError, ApiJson, ApiResult, AppState, Auth};
use dashoffice_domain::{FieldError, Role};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::backend::Backend;

const COOKIE: &str = "dashoffice_desktop";

/// A fresh random secret (256 bits, hex).
pub(crate) fn new_secret() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn cookie_secret(req: &Request) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == COOKIE).map(|(_, v)| v.to_string())
}

async fn guard(State(secret): State<Arc<String>>, req: Request, next: Next) -> Response {
    if let Some(t) = STARTED.get() {
        tracing::debug!(ms = t.elapsed().as_millis() as u64, path = req.uri().path(), "request");
    }
    if req.uri().path() == "/__launch" {
        let key = req.uri().query().unwrap_or("").split('&').find_map(|p| p.strip_prefix("key=")).unwrap_or("");
        if !same(key, &secret) {
            return refuse();
        }
        let next_path = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix("to="))
            .filter(|p| p.starts_with("%2F") || p.starts_with('/'))
            .map(|p| p.replace("%2F", "/"))
            .unwrap_or_else(|| "/".into());
        let mut res = StatusCode::SEE_OTHER.into_response();
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&next_path) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/")) {
            h.insert(header::SET_COOKIE, v);
        }
        return res;
    }
    match cookie_secret(&req) {
        Some(s) if same(&s, &secret) => next.run(req).await,
        _ => refuse(),
    }
}

fn refuse() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this port belongs to the DashOffice desktop app and answers only its own window",
    )
    .into_response()
}

/// The router: the desktop routes, the replica's API and UI, all behind the launch secret.
pub(crate) fn router(api: AppState, backend: Arc<Backend>, secret: Arc<String>) -> Router {
    let desktop = Router::new()
        .route("/api/v1/desktop", get(info))
        .route("/api/v1/desktop/setup", post(setup))
        .route("/api/v1/desktop/sync", put(set_sync))
        .route("/api/v1/desktop/settings", put(set_settings))
        .route("/api/v1/desktop/notifications", get(notifications))
        .route("/api/v1/desktop/saved", get(saved))
        .route("/api/v1/desktop/open", post(open))
        .layer(Extension(backend))
        .with_state(api.clone());
    desktop.merge(dashoffice_api::app(api)).layer(axum::middleware::from_fn_with_state(secret, guard))
}

/// What the window shows when the data folder cannot be opened (damaged or unreadable): the
/// reason, on every path, as a page and as the API's JSON error.
pub(crate) fn failed(reason: &str, secret: Arc<String>) -> Router {
    let reason = reason.to_string();
    Router::new()
        .fallback(move |req: Request| {
            let reason = reason.clone();
            async move {
                let error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "data_folder_unavailable",
                    format!("DashOffice cannot open its data folder: {reason}"),
                );
                if req.uri().path().starts_with("/api/") {
                    return error.into_response();
                }
                let text = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                let page = format!(
                    "<!doctype html><html lang=\"es\"><meta charset=\"utf-8\"><title>DashOffice</title>\
                 <body style=\"font-family:sans-serif;margin:3rem;max-width:40rem\">\
                 <h1>DashOffice no puede abrir sus datos / cannot open its data</h1><p>{}</p>\
                 <p>Cierre la aplicación y revise la carpeta de datos, o pida ayuda al soporte. / \
                 Quit the app and check the data folder, or ask support.</p></body></html>",
                    text(&reason)
                );
                (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
                    .into_response()
            }
        })
        .layer(axum::middleware::from_fn_with_state(secret, guard))
}

/// `GET /api/v1/desktop`.
#[derive(Debug, Serialize)]
struct Info {
    /// The app runs in a desktop window (the UI shows the desktop settings).
    desktop: bool,
    /// No shop yet: the UI shows the set-up (join a shop, or start one).
    needs_setup: bool,
    /// Where the replica lives.
    data_dir: String,
    /// Where saved files (invoice PDFs, exports, backups) go.
    downloads_dir: String,
    /// The relay, if any.
    relay: Option<String>,
    /// Its pinned fingerprint.
    relay_fingerprint: Option<String>,
    /// Start at login.
    start_at_login: bool,
    /// The language of the tray and notifications (`es`, `en`).
    language: &'static str,
    /// App version.
    version: &'static str,
}

/// When the process started (set by main), to log when the UI first asks for the desktop facts:
/// the window is interactive (the WebAssembly app is running).
pub(crate) static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
static INTERACTIVE: std::sync::Once = std::sync::Once::new();

async fn info(Extension(b): Extension<Arc<Backend>>) -> Json<Info> {
    INTERACTIVE.call_once(|| {
        if let Some(t) = STARTED.get() {
            tracing::info!(ms = t.elapsed().as_millis() as u64, "window interactive");
        }
    });
    let s = b.settings();
    Json(Info {
        desktop: true,
        needs_setup: b.needs_setup(),
        data_dir: b.data_dir().display().to_string(),
        downloads_dir: b.downloads().display().to_string(),
        relay: s.relay,
        relay_fingerprint: s.relay_fingerprint,
        start_at_login: s.start_at_login,
        language: b.lang().code(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Joining a shop through its relay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncInput {
    /// host:port of the relay's QUIC side.
    pub(crate) relay: String,
    /// The relay certificate's SHA-256 fingerprint (`dashoffice-relay fingerprint`).
    pub(crate) relay_fingerprint: String,
    /// A one-time enrolment code from the owner.
    pub(crate) enrolment_code: String,
}

/// `POST /api/v1/desktop/setup`: on a computer with no shop yet, join one (relay fields) or start
/// one (shop fields).
// No `Debug`: it carries the owner's password and an enrolment code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupInput {
    relay: Option<String>,
    relay_fingerprint: Option<String>,
    enrolment_code: Option<String>,
    shop_name: Option<String>,
    owner_name: Option<String>,
    owner_email: Option<String>,
    owner_password: Option<String>,
}

fn required(field: &str, v: Option<String>) -> Result<String, ApiError> {
    v.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldError::new(field, "required", "required").into())
}

async fn setup(Extension(b): Extension<Arc<Backend>>, ApiJson(i): ApiJson<SetupInput>) -> ApiResult<StatusCode> {
    if !b.needs_setup() {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "this computer already holds a shop"));
    }
    let b2 = b.clone();
    if i.relay.is_some() || i.enrolment_code.is_some() {
        let input = SyncInput {
            relay: required("relay", i.relay)?,
            relay_fingerprint: required("relay_fingerprint", i.relay_fingerprint)?,
            enrolment_code: required("enrolment_code", i.enrolment_code)?,
        };
        tokio::task::spawn_blocking(move || b2.join(input)).await.map_err(internal)??;
    } else {
        let shop = required("shop_name", i.shop_name)?;
        let email = required("owner_email", i.owner_email)?;
        let password = required("owner_password", i.owner_password)?;
        let name = i.owner_name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "Owner".into());
        tokio::task::spawn_blocking(move || b2.start_shop(&shop, &name, &email, &password))
            .await
            .map_err(internal)??;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn internal<E>(_: E) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
}

/// `PUT /api/v1/desktop/sync` (owners and managers): connect this computer to the shop's relay.
async fn set_sync(
    Extension(b): Extension<Arc<Backend>>,
    Auth(c): Auth,
    ApiJson(i): ApiJson<SyncInput>,
) -> ApiResult<StatusCode> {
    if !matches!(c.role, Role::Owner | Role::Manager) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only owners and managers connect a device"));
    }
    tokio::task::spawn_blocking(move || b.join(i)).await.map_err(internal)??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DesktopOptions {
    /// Start the app when the user logs in to the computer.
    #[serde(default)]
    start_at_login: Option<bool>,
    /// The UI's language (`es`, `en`), for the tray and notifications.
    #[serde(default)]
    language: Option<String>,
}

async fn set_settings(
    Extension(b): Extension<Arc<Backend>>,
    Auth(_c): Auth,
    ApiJson(o): ApiJson<DesktopOptions>,
) -> ApiResult<StatusCode> {
    if let Some(code) = &o.language {
        b.set_language(code)?;
    }
    if let Some(on) = o.start_at_login {
        b.set_start_at_login(on)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn notifications(Extension(b): Extension<Arc<Backend>>, Auth(_c): Auth) -> Json<Vec<crate::backend::Shown>> {
    Json(b.shown())
}

async fn saved(Extension(b): Extension<Arc<Backend>>, Auth(_c): Auth) -> Json<Vec<crate::backend::SavedFile>> {
    Json(b.saved_files())
}

/// `POST /api/v1/desktop/open`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenInput {
    /// A saved file's `path` (from `GET /api/v1/desktop/saved`).
    #[serde(default)]
    file: String,
    /// Show it in its folder instead of opening it.
    #[serde(default)]
    reveal: bool,
}

/// Opens a file the app saved, or shows it in its folder.
async fn open(
    Extension(b): Extension<Arc<Backend>>,
    Auth(_c): Auth,
    ApiJson(i): ApiJson<OpenInput>,
) -> ApiResult<StatusCode> {
    // The file manager's D-Bus call blocks; so may a slow opener.
    tokio::task::spawn_blocking(move || b.open_saved(&i.file, i.reveal)).await.map_err(internal)??;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::{Body, to_bytes};
    use tower::ServiceExt;

    use super::*;

    async fn call(r: &Router, uri: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
        let mut req = axum::http::Request::get(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let res = r.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let set_cookie =
            res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = String::from_utf8(to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
        (status, set_cookie, body)
    }

    /// A data folder that cannot be opened: the window shows why; the API says it in JSON; other
    /// programs still get nothing without the launch secret.
    #[tokio::test]
    async fn a_data_folder_that_cannot_open_is_explained_in_the_window() {
        let secret = Arc::new("s3cret".to_string());
        let r = failed("opening /data: file is not a database <b>", secret);
        let (status, cookie, _) = call(&r, "/__launch?key=s3cret&to=%2F", None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = cookie.split(';').next().unwrap().to_string();
        let (status, _, page) = call(&r, "/", Some(&cookie)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.contains("file is not a database &lt;b&gt;"), "{page}");
        let (status, _, json) = call(&r, "/api/v1/desktop", Some(&cookie)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(json.contains("data_folder_unavailable") && json.contains("file is not a database"), "{json}");
        let (status, _, _) = call(&r, "/", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
