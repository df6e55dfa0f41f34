//! A fake WhatsApp Graph API (the only fake in these tests: it stands for Meta's SaaS) and signed
//! webhook fixtures shaped like the Cloud API's.
//!
//! The fake answers `POST /{version}/{phone-number-id}/messages` like the real one, records every
//! call, can be switched to fail (503, or a given error code), serves media downloads and takes
//! media uploads (`POST /{version}/{phone-number-id}/media`, multipart, recorded whole).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The app secret the tests' relay is configured with.
pub const APP_SECRET: &str = "test-app-secret-0123456789";
/// The verify token.
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The shop's number id at Meta.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// Its access token.
pub const ACCESS_TOKEN: &str = "EAAG-test-access-token";

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The phone number id in the path.
    pub phone_number_id: String,
    /// The Authorization header.
    pub authorization: String,
    /// The JSON body.
    pub body: Value,
    /// The wamid answered (None when failed).
    pub wamid: Option<String>,
}

/// One recorded media upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The phone number id in the path.
    pub phone_number_id: String,
    /// The Authorization header.
    pub authorization: String,
    /// The Content-Type header (multipart/form-data with its boundary).
    pub content_type: String,
    /// The raw multipart body.
    pub body: Vec<u8>,
    /// The media id answered.
    pub id: String,
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    uploads: Mutex<Vec<Upload>>,
    /// None: answer normally; Some((http status, error code)).
    fail: Mutex<Option<(u16, i64)>>,
    next: AtomicU64,
}

/// The running fake.
pub struct FakeGraph {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Inner>,
    _rt: tokio::runtime::Runtime,
}

async fn send(
    State(s): State<Arc<Inner>>,
    Path((_v, pnid)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorization = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let fail = *s.fail.lock().unwrap_or_else(|p| p.into_inner());
    let mut call = Call { phone_number_id: pnid, authorization, body: body.clone(), wamid: None };
    let resp = match fail {
        Some((status, code)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Json(json!({ "error": { "message": "fake failure", "type": "OAuthException", "code": code, "fbtrace_id": "x" } })),
        )
            .into_response(),
        None => {
            let n = s.next.fetch_add(1, Ordering::SeqCst);
            let wamid = format!("wamid.OUT{n:08}");
            call.wamid = Some(wamid.clone());
            let to = body["to"].as_str().unwrap_or("").to_string();
            Json(json!({ "messaging_product": "whatsapp", "contacts": [{ "input": to, "wa_id": to }],
                "messages": [{ "id": wamid }] }))
            .into_response()
        }
    };
    s.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    resp
}

async fn upload(
    State(s): State<Arc<Inner>>,
    Path((_v, pnid)): Path<(String, String)>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let content_type = header("content-type");
    if !content_type.starts_with("multipart/form-data") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "message": "expected multipart/form-data", "code": 100 } })),
        )
            .into_response();
    }
    let id = format!("media.UP{:08}", s.next.fetch_add(1, Ordering::SeqCst));
    s.uploads.lock().unwrap_or_else(|p| p.into_inner()).push(Upload {
        phone_number_id: pnid,
        authorization: header("authorization"),
        content_type,
        body: body.to_vec(),
        id: id.clone(),
    });
    Json(json!({ "id": id })).into_response()
}

async fn media_meta(Path((_v, id)): Path<(String, String)>, h: HeaderMap) -> Response {
    if h.get("authorization").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    Json(json!({ "url": format!("http://{host}/media-bytes/{id}"), "mime_type": "image/jpeg", "file_size": 4, "id": id }))
        .into_response()
}

impl FakeGraph {
    /// Starts the fake on a free loopback port.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/{version}/{pnid}/messages", post(send))
            .route("/{version}/{pnid}/media", post(upload))
            .route("/{version}/{media}", get(media_meta))
            .route(
                "/media-bytes/{id}",
                get(|| async { ([("content-type", "image/jpeg")], vec![0xFFu8, 0xD8, 0xFF, 0xD9]) }),
            )
            .with_state(inner.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))).expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base: format!("http://{addr}"), inner, _rt: rt }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every media upload so far.
    pub fn uploads(&self) -> Vec<Upload> {
        self.inner.uploads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Successful sends so far.
    pub fn sent(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.wamid.is_some()).collect()
    }

    /// Fails every send with `status` and Graph error `code` until [`FakeGraph::recover`].
    pub fn fail(&self, status: u16, code: i64) {
        *self.inner.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some((status, code));
    }

    /// Answers normally again.
    pub fn recover(&self) {
        *self.inner.fail.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// `sha256=<hex>` of `body` with the test app secret.
pub fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook envelope around one change value.
pub fn envelope(value: Value) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": value }] }] })
}

/// A `messages` change from `wa_id` (profile `name`) holding `message` (its `from`, `id` and
/// `timestamp` filled in).
pub fn inbound(wa_id: &str, name: &str, wamid: &str, mut message: Value) -> Value {
    message["from"] = json!(wa_id);
    message["id"] = json!(wamid);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    message["timestamp"] = json!(now.to_string());
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
        "contacts": [{ "profile": { "name": name }, "wa_id": wa_id }],
        "messages": [message],
    }))
}

/// A text message.
pub fn text(wa_id: &str, name: &str, wamid: &str, body: &str) -> Value {
    inbound(wa_id, name, wamid, json!({ "type": "text", "text": { "body": body } }))
}

/// A delivery report.
pub fn status(wamid: &str, status: &str, recipient: &str) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut st = json!({ "id": wamid, "status": status, "timestamp": now.to_string(), "recipient_id": recipient });
    if status == "failed" {
        st["errors"] =
            json!([{ "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message" }]);
    }
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
        "statuses": [st],
    }))
}

/// One example of every inbound message type the Cloud API sends, with the kind DashOffice
/// stores for it.
pub fn every_type(wa_id: &str) -> Vec<(&'static str, Value)> {
    let m = |wamid: &str, v: Value| inbound(wa_id, "Tipos", wamid, v);
    vec![
        ("text", m("wamid.T1", json!({ "type": "text", "text": { "body": "hola" } }))),
        (
            "image",
            m(
                "wamid.T2",
                json!({ "type": "image", "image": { "id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "la foto" } }),
            ),
        ),
        (
            "audio",
            m(
                "wamid.T3",
                json!({ "type": "audio", "audio": { "id": "MEDIA2", "mime_type": "audio/ogg; codecs=opus", "voice": true } }),
            ),
        ),
        ("video", m("wamid.T4", json!({ "type": "video", "video": { "id": "MEDIA3", "mime_type": "video/mp4" } }))),
        (
            "document",
            m(
                "wamid.T5",
                json!({ "type": "document", "document": { "id": "MEDIA4", "mime_type": "application/pdf", "filename": "factura.pdf" } }),
            ),
        ),
        (
            "sticker",
            m(
                "wamid.T6",
                json!({ "type": "sticker", "sticker": { "id": "MEDIA5", "mime_type": "image/webp", "animated": false } }),
            ),
        ),
        (
            "location",
            m(
                "wamid.T7",
                json!({ "type": "location", "location": { "latitude": -12.0464, "longitude": -77.0428, "name": "Tienda Centro", "address": "Av. Lima 123" } }),
            ),
        ),
        (
            "contacts",
            m(
                "wamid.T8",
                json!({ "type": "contacts", "contacts": [{ "name": { "formatted_name": "Rosa Díaz", "first_name": "Rosa" }, "phones": [{ "phone": "+51 999 111 222", "type": "CELL" }] }] }),
            ),
        ),
        (
            "reaction",
            m("wamid.T9", json!({ "type": "reaction", "reaction": { "message_id": "wamid.T1", "emoji": "👍" } })),
        ),
        (
            "interactive",
            m(
                "wamid.T10",
                json!({ "type": "interactive", "interactive": { "type": "button_reply", "button_reply": { "id": "ver_precios", "title": "Ver precios" } } }),
            ),
        ),
        (
            "interactive",
            m(
                "wamid.T11",
                json!({ "type": "interactive", "interactive": { "type": "list_reply", "list_reply": { "id": "talla_m", "title": "Talla M", "description": "Mediana" } } }),
            ),
        ),
        (
            "button",
            m("wamid.T12", json!({ "type": "button", "button": { "payload": "CONFIRMAR", "text": "Confirmar" } })),
        ),
        (
            "order",
            m(
                "wamid.T13",
                json!({ "type": "order", "order": { "catalog_id": "CAT1", "text": "", "product_items": [{ "product_retailer_id": "NOPE-1", "quantity": 2, "item_price": 10.5, "currency": "PEN" }] } }),
            ),
        ),
        (
            "unsupported",
            m(
                "wamid.T14",
                json!({ "type": "unknown", "errors": [{ "code": 131051, "title": "Message type unknown" }] }),
            ),
        ),
        (
            "text",
            m(
                "wamid.T15",
                json!({ "type": "text", "text": { "body": "reenviado" }, "context": { "forwarded": true } }),
            ),
        ),
        (
            "text",
            m(
                "wamid.T16",
                json!({ "type": "text", "text": { "body": "respuesta" }, "context": { "from": "15550783881", "id": "wamid.T1" } }),
            ),
        ),
        (
            "text",
            m(
                "wamid.T17",
                json!({ "type": "text", "text": { "body": "desde anuncio" }, "referral": { "source_url": "https://fb.me/x", "source_type": "ad", "source_id": "1", "headline": "Oferta" } }),
            ),
        ),
    ]
}

/// Posts `body` to the relay's webhook with `signature` (None: no header); returns status and body.
pub fn post_webhook(relay_http: &str, body: &[u8], signature: Option<&str>) -> (u16, String) {
    post_webhook_with(&client(), relay_http, body, signature)
}

/// An HTTP client for [`post_webhook_with`] (one per thread keeps its connections open).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build().expect("client")
}

/// [`post_webhook`] through `client`.
pub fn post_webhook_with(
    client: &reqwest::blocking::Client,
    relay_http: &str,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, String) {
    let mut req = client.post(format!("{relay_http}/webhooks/whatsapp")).header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    let r = req.body(body.to_vec()).send().expect("the relay answers");
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// Posts `event` signed with the test secret; asserts 200.
#[track_caller]
pub fn deliver(relay_http: &str, event: &Value) {
    let body = event.to_string().into_bytes();
    let (status, text) = post_webhook(relay_http, &body, Some(&sign(&body)));
    assert_eq!(status, 200, "webhook: {text}");
}

/// Connects the test number to a shop's branch on the relay (admin API), with the test token.
pub fn connect_number(relay: &crate::relay::Relay, shop: &str, branch: &str) {
    relay
        .admin()
        .post(
            "/api/v1/whatsapp/numbers",
            &serde_json::json!({ "phone_number_id": PHONE_NUMBER_ID, "shop_id": shop, "branch_id": branch, "access_token": ACCESS_TOKEN }),
        )
        .ok(201);
}

/// The relay environment for WhatsApp tests: secrets and the fake Graph API.
pub fn relay_env(graph: &FakeGraph) -> Vec<(String, String)> {
    vec![
        ("DASHOFFICE_WHATSAPP_APP_SECRET".into(), APP_SECRET.into()),
        ("DASHOFFICE_WHATSAPP_VERIFY_TOKEN".into(), VERIFY_TOKEN.into()),
        ("DASHOFFICE_WHATSAPP_API_BASE".into(), graph.base.clone()),
    ]
}

/// A fake OpenAI-compatible chat completions API (stands for the LLM SaaS): it answers with a
/// sentence that quotes the shop facts it was given, or fails on demand.
pub struct FakeLlm {
    /// Base URL to configure (`…/v1`).
    pub base: String,
    calls: Arc<AtomicU64>,
    failing: Arc<Mutex<bool>>,
    _rt: tokio::runtime::Runtime,
}

impl FakeLlm {
    /// Starts it on a free loopback port.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let calls = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(Mutex::new(false));
        let (c, f) = (calls.clone(), failing.clone());
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |h: HeaderMap, Json(body): Json<Value>| {
                let (c, f) = (c.clone(), f.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-llm-key") {
                        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "message": "bad key" } }))).into_response();
                    }
                    if *f.lock().unwrap_or_else(|p| p.into_inner()) {
                        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": { "message": "down" } }))).into_response();
                    }
                    let system = body["messages"][0]["content"].as_str().unwrap_or("").to_string();
                    let facts = system.split("Shop facts:\n").nth(1).unwrap_or("").to_string();
                    Json(json!({ "choices": [{ "message": { "role": "assistant", "content": format!("Según nuestro catálogo: {facts}") } }] }))
                        .into_response()
                }
            }),
        );
        let listener = rt.block_on(tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))).expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base: format!("http://{addr}/v1"), calls, failing, _rt: rt }
    }

    /// Calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Fails (500) from now on, or answers again.
    pub fn set_failing(&self, on: bool) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = on;
    }

    /// The relay environment that uses it.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DASHOFFICE_LLM_PROVIDER".into(), "openai".into()),
            ("DASHOFFICE_LLM_BASE".into(), self.base.clone()),
            ("DASHOFFICE_LLM_API_KEY".into(), "test-llm-key".into()),
            ("DASHOFFICE_LLM_MODEL".into(), "fake-model".into()),
        ]
    }
}
