//! The one way the UI reaches data. Every call goes through a [`Transport`]: HTTP to the origin
//! that served the UI by default (edge node, relay); the desktop app installs its own (Tauri IPC)
//! with [`set_transport`]. Errors keep the API's field and rule so forms can show them in place.

use std::{cell::RefCell, future::Future, pin::Pin, rc::Rc};

use dashoffice_domain::{FieldError, api::ErrorBody};
use serde::{Serialize, de::DeserializeOwned};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// One request: method, path with query, JSON or CSV body.
#[derive(Clone)]
pub struct Request {
    /// GET, POST, PATCH, PUT, DELETE.
    pub method: &'static str,
    /// Path and query, from `/api/…`.
    pub path: String,
    /// The body, if any.
    pub body: Option<String>,
    /// Its content type.
    pub content_type: &'static str,
    /// The session token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .field("token", &self.token.as_ref().map(|_| dashoffice_domain::api::REDACTED))
            .finish_non_exhaustive()
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// A boxed future that need not be `Send` (the browser has one thread).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
/// Carries a request to the replica and brings the answer back.
pub type Transport = Rc<dyn Fn(Request) -> LocalFuture<Result<Response, String>>>;

thread_local! {
    static TRANSPORT: RefCell<Option<Transport>> = const { RefCell::new(None) };
    static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces HTTP with another transport (the desktop app's IPC).
pub fn set_transport(t: Transport) {
    TRANSPORT.with(|c| *c.borrow_mut() = Some(t));
}

/// Sets (or clears) the session token sent with every call.
pub fn set_token(t: Option<String>) {
    TOKEN.with(|c| *c.borrow_mut() = t);
}

/// The session token.
pub fn token() -> Option<String> {
    TOKEN.with(|c| c.borrow().clone())
}

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (0: the replica could not be reached).
    pub status: u16,
    /// The API's error code (`validation`, `not_found`, …) or `network`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Every field to blame, with its rule.
    pub fields: Vec<FieldError>,
    /// The body as sent (for answers with more than the error, such as import reports).
    pub raw: String,
}

impl ApiError {
    fn network(e: String) -> Self {
        Self { status: 0, code: "network".into(), message: e, fields: Vec::new(), raw: String::new() }
    }
    /// The same error with the API's field `from` blamed on the form's input `to` (a form whose
    /// input names differ from the API's, such as a row's rename box).
    #[must_use]
    pub fn on_field(mut self, from: &str, to: &str) -> Self {
        for f in &mut self.fields {
            if f.field == from {
                f.field = to.to_string();
            }
        }
        self
    }
    /// The message for one field, if the API blamed it.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|f| f.field == name).map(|f| crate::i18n::field_message(&f.rule, &f.message))
    }
}

async fn http(req: Request) -> Result<Response, String> {
    let js = |e: JsValue| e.as_string().unwrap_or_else(|| format!("{e:?}"));
    let init = web_sys::RequestInit::new();
    init.set_method(req.method);
    let headers = web_sys::Headers::new().map_err(js)?;
    headers.set("accept", "application/json").map_err(js)?;
    if let Some(t) = &req.token {
        headers.set("authorization", &format!("Bearer {t}")).map_err(js)?;
    }
    if let Some(b) = &req.body {
        headers.set("content-type", req.content_type).map_err(js)?;
        init.set_body(&JsValue::from_str(b));
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(&req.path, &init).map_err(js)?;
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_request(&request)).await.map_err(js)?.unchecked_into();
    let text = JsFuture::from(resp.text().map_err(js)?).await.map_err(js)?.as_string().unwrap_or_default();
    Ok(Response { status: resp.status(), body: text })
}

/// Asks the page's own server for the cookie that opens `/api/v1/events` (over HTTP even where
/// API calls go another way, as in the desktop app: the browser keeps the cookie for the
/// EventSource). The answer's status (0: unreachable).
pub async fn open_events_session() -> u16 {
    let req = Request {
        method: "POST",
        path: "/api/v1/events/session".to_string(),
        body: None,
        content_type: "",
        token: token(),
    };
    http(req).await.map(|r| r.status).unwrap_or(0)
}

/// Sends a request through the installed transport and returns the raw answer.
pub async fn send(
    method: &'static str,
    path: &str,
    body: Option<String>,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let req = Request { method, path: path.to_string(), body, content_type, token: token() };
    let t = TRANSPORT.with(|c| c.borrow().clone());
    let r = match t {
        Some(t) => t(req).await,
        None => http(req).await,
    };
    let r = r.map_err(ApiError::network)?;
    if r.status >= 400 {
        let e = serde_json::from_str::<ErrorBody>(&r.body).ok();
        let r = r.clone();
        let err = match e {
            Some(b) => {
                let mut fields = b.error.fields;
                if fields.is_empty()
                    && let Some(f) = b.error.field
                {
                    fields.push(FieldError::new(f, b.error.rule.unwrap_or_default(), b.error.message.clone()));
                }
                ApiError { status: r.status, code: b.error.code, message: b.error.message, fields, raw: r.body }
            }
            None => ApiError {
                status: r.status,
                code: "http".into(),
                message: format!("HTTP {}", r.status),
                fields: Vec::new(),
                raw: r.body,
            },
        };
        if err.status == 401 {
            crate::state::session_expired();
        }
        return Err(err);
    }
    Ok(r)
}

fn decode<T: DeserializeOwned>(r: Response) -> Result<T, ApiError> {
    let body = if r.body.is_empty() { "null" } else { &r.body };
    serde_json::from_str(body).map_err(|e| ApiError {
        status: r.status,
        code: "decode".into(),
        message: format!("unexpected answer: {e}"),
        fields: Vec::new(),
        raw: String::new(),
    })
}

/// GET a JSON value.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    decode(send("GET", path, None, "").await?)
}

/// Sends JSON and reads JSON back (`()` for empty answers).
pub async fn json<B: Serialize, T: DeserializeOwned>(
    method: &'static str,
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    let b = serde_json::to_string(body).map_err(|e| ApiError::network(e.to_string()))?;
    decode(send(method, path, Some(b), "application/json").await?)
}

/// POST JSON.
pub async fn post<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    json("POST", path, body).await
}

/// PATCH JSON.
pub async fn patch<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    json("PATCH", path, body).await
}

/// GET as text (CSV exports).
pub async fn text(path: &str) -> Result<String, ApiError> {
    Ok(send("GET", path, None, "").await?.body)
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// Saves `text` as a file download named `name`.
pub fn download(name: &str, text: &str, mime: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    save_url(&url, name);
}

/// Saves what the object URL `url` holds (from [`blob_url`]) as a file download named `name`,
/// then releases it.
pub fn save_url(url: &str, name: &str) {
    if let Some(doc) = web_sys::window().and_then(|w| w.document())
        && let Ok(a) = doc.create_element("a")
    {
        let a: web_sys::HtmlAnchorElement = a.unchecked_into();
        a.set_href(url);
        a.set_download(name);
        a.click();
        crate::pages::desktop::after_save();
    }
    let _ = web_sys::Url::revoke_object_url(url);
}

/// Reads a file the user picked.
pub async fn read_file(f: web_sys::File) -> Result<String, ApiError> {
    JsFuture::from(f.text())
        .await
        .map(|v| v.as_string().unwrap_or_default())
        .map_err(|e| ApiError::network(e.as_string().unwrap_or_else(|| "could not read the file".into())))
}

/// Fetches a binary file (an attachment) and returns a URL the page can show it by.
pub async fn blob_url(path: &str) -> Result<String, ApiError> {
    let js = |e: JsValue| ApiError::network(e.as_string().unwrap_or_else(|| format!("{e:?}")));
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().map_err(js)?;
    if let Some(t) = token() {
        headers.set("authorization", &format!("Bearer {t}")).map_err(js)?;
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(path, &init).map_err(js)?;
    let window = web_sys::window().ok_or_else(|| ApiError::network("no window".into()))?;
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_request(&request)).await.map_err(js)?.unchecked_into();
    if !resp.ok() {
        return Err(ApiError {
            status: resp.status(),
            code: "http".into(),
            message: format!("HTTP {}", resp.status()),
            fields: Vec::new(),
            raw: String::new(),
        });
    }
    let blob: web_sys::Blob = JsFuture::from(resp.blob().map_err(js)?).await.map_err(js)?.unchecked_into();
    web_sys::Url::create_object_url_with_blob(&blob).map_err(js)
}
