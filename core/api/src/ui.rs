//! The web UI (ui/, built into ui/dist by scripts/build-ui), served at `/` by every host of the
//! API: the edge node, the relay and the desktop app. Release builds embed the files; debug builds
//! read them from ui/dist, so a rebuilt UI shows without recompiling the server.
//!
//! Any GET that is not an API route and not a file gets index.html, so the UI's own routes
//! (/orders/…) survive a reload. The build's files sit in a folder named by the hash of their
//! contents (assets/<hash>/) and are cached for a year; index.html is revalidated each time. When the build left a `.gz` beside a file and the
//! browser accepts gzip, that is sent instead.

use axum::{
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "../../ui/dist"]
#[allow_missing = true]
struct Assets;

/// Whether a built UI is available (scripts/build-ui ran before this binary was built).
pub fn available() -> bool {
    Assets::get("index.html").is_some()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// True for paths the API owns: a miss there is a JSON 404, never the UI.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
        || path == "/api"
        || path == "/healthz"
        || path == "/metrics"
        || path.starts_with("/webhooks/")
}

/// The fallback of every API router: a UI file, the UI's index.html, or the JSON 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_api(path) || !(method == Method::GET || method == Method::HEAD) {
        return crate::not_found_error().into_response();
    }
    let rel = path.trim_start_matches('/');
    let (name, file) = match Assets::get(rel).filter(|_| !rel.is_empty()) {
        Some(f) => (rel.to_string(), f),
        None => match Assets::get("index.html") {
            // A missing file with an extension is a real 404, not a page of the UI.
            Some(f) if !rel.rsplit('/').next().unwrap_or("").contains('.') => ("index.html".to_string(), f),
            Some(_) => return crate::not_found_error().into_response(),
            None => {
                return ApiError::new(
                    StatusCode::NOT_FOUND,
                    "ui_not_built",
                    "the web UI is not built into this binary: run scripts/build-ui, then rebuild",
                )
                .into_response();
            }
        },
    };
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let gz = if gzip_ok { Assets::get(&format!("{name}.gz")) } else { None };
    // scripts/build-ui puts every build in assets/<hash of its contents>/.
    let immutable = name.starts_with("assets/");
    let mut res = Response::new(axum::body::Body::from(match &gz {
        Some(g) => g.data.clone().into_owned(),
        None => file.data.clone().into_owned(),
    }));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { "public, max-age=31536000, immutable" } else { "no-cache" }),
    );
    if gz.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if name == "index.html" {
        // The UI talks only to its own origin; no framing by other sites.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'",
            ),
        );
    }
    res
}
