//! The relay's HTTP side: health and metrics, the automerge-repo WebSocket endpoint `/sync`,
//! device enrolment, and the owner's API (enrolment codes, devices, revocation, status, WhatsApp
//! numbers) for the relay's admin token and, scoped to their shop, head office's owners.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        ws::{Message as WsMessage, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use dashoffice_api::{ApiError, ApiJson, ApiResult};
use dashoffice_sync::proto::{Message, PROTOCOL_VERSION, PeerMetadata};
use futures_util::{SinkExt, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{
    enrol,
    hub::{Hub, now_ms},
    session::{self, Io, Naming},
    store::{Credential, Device},
    whatsapp as wa,
};

/// Shared by the routes.
#[derive(Clone)]
pub struct RelayState {
    /// The hub.
    pub hub: Arc<Hub>,
    /// SHA-256 of the owner's admin token.
    pub admin_hash: Arc<Vec<u8>>,
    /// Prometheus registry.
    pub metrics: PrometheusHandle,
    /// The WhatsApp side.
    pub wa: Arc<crate::whatsapp::WhatsApp>,
    /// Head office's shop API (`None` when switched off with `head_office = false`).
    pub console: Option<Arc<crate::console::Console>>,
    /// The fingerprint of the relay's certificate, which replicas pin.
    pub fingerprint: Arc<String>,
}

impl axum::extract::FromRef<RelayState> for Arc<crate::whatsapp::WhatsApp> {
    fn from_ref(s: &RelayState) -> Self {
        s.wa.clone()
    }
}

/// The router.
pub fn router(state: RelayState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sync", get(sync_ws))
        .route("/api/v1/enrol", post(enrol_device))
        .route("/api/v1/enrolment-codes", post(create_code))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{id}/revoke", post(revoke))
        .route("/api/v1/sync/status", get(status))
        .route("/api/v1/whatsapp/numbers", post(put_number).get(list_numbers))
        .route("/api/v1/whatsapp/numbers/{id}", axum::routing::delete(delete_number))
        .route("/api/v1/whatsapp/status", get(whatsapp_status))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .merge(
            Router::new()
                .route("/webhooks/whatsapp", get(wa::webhook::verify).post(wa::webhook::receive))
                .layer(axum::extract::DefaultBodyLimit::max(wa::webhook::MAX_BODY)),
        )
        // Head office: the shops' API and the web UI (the same app the edge nodes serve).
        .fallback(shop_api_or_ui)
        .layer(axum::middleware::map_response(dashoffice_api::json_errors))
        .with_state(state)
}

async fn put_number(
    State(s): State<RelayState>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<wa::api::PutNumber>,
) -> ApiResult<Response> {
    let scope = owner(&s, &headers).await?;
    wa::api::put(s.wa.clone(), &scope, b).await
}

async fn list_numbers(State(s): State<RelayState>, headers: HeaderMap) -> ApiResult<Response> {
    let scope = owner(&s, &headers).await?;
    wa::api::list(s.wa.clone(), &scope).await
}

async fn delete_number(State(s): State<RelayState>, headers: HeaderMap, id: Path<String>) -> ApiResult<Response> {
    let scope = owner(&s, &headers).await?;
    wa::api::delete(s.wa.clone(), &scope, id).await
}

async fn whatsapp_status(State(s): State<RelayState>, headers: HeaderMap) -> ApiResult<Response> {
    admin(&s, &headers)?;
    wa::api::backlog(s.wa.clone()).await
}

pub(crate) fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// Whom the owner's API of the relay answers: the relay's admin (every shop), or head office's
/// owner logged in on the relay (one shop: devices, enrolment codes and WhatsApp numbers of it).
pub enum Scope {
    /// The admin token.
    All,
    /// A head-office session of a staff member who may manage this shop.
    Shop(String),
}

impl Scope {
    /// Whether this scope covers `shop`.
    pub fn allows(&self, shop: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Shop(s) => s == shop,
        }
    }
}

/// The admin token, or a head-office session (on this relay's console) with the right to manage
/// its shop; a session without that right is 403, anything else 401.
async fn owner(state: &RelayState, headers: &HeaderMap) -> ApiResult<Scope> {
    let token = bearer(headers)
        .ok_or_else(|| unauthorized("send the relay's admin token or a head-office session token as a Bearer token"))?;
    if Sha256::digest(token.as_bytes()).as_slice() == state.admin_hash.as_slice() {
        return Ok(Scope::All);
    }
    let caller = match &state.console {
        Some(c) => c.caller(&token).await,
        None => None,
    }
    .ok_or_else(|| unauthorized("the token is neither the relay's admin token nor a head-office session"))?;
    caller.require(dashoffice_core::domain::Permission::ManageShop)?;
    Ok(Scope::Shop(caller.shop_id))
}

fn admin(state: &RelayState, headers: &HeaderMap) -> ApiResult<()> {
    let token = bearer(headers).ok_or_else(|| unauthorized("send the relay's admin token as a Bearer token"))?;
    if Sha256::digest(token.as_bytes()).as_slice() == state.admin_hash.as_slice() {
        Ok(())
    } else {
        Err(unauthorized("the admin token is not valid"))
    }
}

fn storage(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "relay storage failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the relay's storage failed; retry later")
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    documents: u64,
    sessions: usize,
}

async fn healthz(State(s): State<RelayState>) -> ApiResult<Json<Health>> {
    let documents = s.hub.blocking(|st| st.doc_count()).await.map_err(storage)?;
    Ok(Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), documents, sessions: s.hub.sessions().len() }))
}

async fn metrics(State(s): State<RelayState>) -> Response {
    metrics::gauge!("dashoffice_relay_documents_in_memory").set(s.hub.docs_in_memory() as f64);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    code: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
struct EnrolResponse {
    device_id: String,
    token: String,
    shop_id: String,
    branch_id: Option<String>,
}

/// Enrols a WebSocket client (browser, script) with a one-time code; answers its bearer token
/// for `/sync?token=…`, shown once.
async fn enrol_device(State(s): State<RelayState>, ApiJson(req): ApiJson<EnrolRequest>) -> ApiResult<Response> {
    if req.code.trim().is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "code is required")
            .with_field("code", "required"));
    }
    let name = req.name.unwrap_or_else(|| "websocket client".into());
    if name.chars().count() > 100 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "name is longer than 100 characters",
        )
        .with_field("name", "max_length"));
    }
    let token = enrol::new_token();
    let d = enrol::redeem(&s.hub, &req.code, &name, Credential::TokenHash(enrol::token_hash(&token))).await.map_err(
        |e| match e {
            enrol::RedeemFailure::Refused(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", m).with_field("code", "valid_unused_code")
            }
            enrol::RedeemFailure::Store(m) => {
                tracing::error!(error = %m, "enrolment: the store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the relay could not store the enrolment; nothing is wrong with the code, try again shortly",
                )
            }
        },
    )?;
    let body = EnrolResponse { device_id: d.id, token, shop_id: d.shop_id, branch_id: d.branch_id };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    shop_id: String,
    #[serde(default)]
    branch_id: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    ttl_hours: Option<u32>,
}

#[derive(Serialize)]
struct CodeResponse {
    code: String,
    expires_at: i64,
    shop_id: String,
    branch_id: Option<String>,
    /// What the enrolling replica pins (`--relay-fingerprint`).
    relay_fingerprint: String,
}

/// Checks the shape of a shop or branch id.
pub fn check_id(field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("{field} must be 1–64 letters, digits, '_' or '-'"));
    }
    Ok(())
}

async fn create_code(
    State(s): State<RelayState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<Response> {
    let scope = owner(&s, &headers).await?;
    let invalid = |field: &str, m: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", m).with_field(field, "identifier")
    };
    check_id("shop_id", &req.shop_id).map_err(|m| invalid("shop_id", m))?;
    if !scope.allows(&req.shop_id) {
        return Err(other_shop("shop_id"));
    }
    if let Some(b) = &req.branch_id {
        check_id("branch_id", b).map_err(|m| invalid("branch_id", m))?;
    }
    let ttl = req.ttl_hours.unwrap_or(24);
    if !(1..=24 * 30).contains(&ttl) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "ttl_hours must be 1–720")
            .with_field("ttl_hours", "range"));
    }
    let note = req.note.unwrap_or_default();
    let (shop, branch) = (req.shop_id.clone(), req.branch_id.clone());
    let (code, expires_at) = s
        .hub
        .blocking(move |st| enrol::create_code(st, &shop, branch.as_deref(), &note, ttl))
        .await
        .map_err(storage)?;
    let body = CodeResponse {
        code,
        expires_at,
        shop_id: req.shop_id,
        branch_id: req.branch_id,
        relay_fingerprint: s.fingerprint.to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A shop that is not the caller's: 403 naming the field.
pub(crate) fn other_shop(field: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "you may manage only your own shop on this relay")
        .with_field(field, "own_shop")
}

#[derive(Serialize)]
struct DeviceOut {
    #[serde(flatten)]
    device: Device,
    /// The relay's own replica of the shop (WhatsApp and head office), not a branch's device.
    relay_service: bool,
}

/// The device ids of the relay's own shop replicas.
fn service_devices(s: &RelayState) -> Vec<String> {
    let services: Vec<_> = s.wa.services.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    services.iter().filter_map(|svc| svc.sync_handle().status().device_id).collect()
}

async fn list_devices(State(s): State<RelayState>, headers: HeaderMap) -> ApiResult<Json<Vec<DeviceOut>>> {
    let scope = owner(&s, &headers).await?;
    let devices = s.hub.blocking(|st| st.devices()).await.map_err(storage)?;
    let services = service_devices(&s);
    Ok(Json(
        devices
            .into_iter()
            .filter(|d| scope.allows(&d.shop_id))
            .map(|d| DeviceOut { relay_service: services.contains(&d.id), device: d })
            .collect(),
    ))
}

async fn revoke(State(s): State<RelayState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = owner(&s, &headers).await?;
    let devices = s.hub.blocking(|st| st.devices()).await.map_err(storage)?;
    // Another shop's device is as unknown as a device that does not exist.
    if !devices.iter().any(|d| d.id == id && scope.allows(&d.shop_id)) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no device {id}")));
    }
    if matches!(scope, Scope::Shop(_)) && service_devices(&s).contains(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this is the relay's own replica of the shop (WhatsApp and head office); only the relay's admin can revoke it",
        ));
    }
    let key = id.clone();
    let found = s.hub.blocking(move |st| st.revoke(&key, now_ms())).await.map_err(storage)?;
    if !found {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no device {id}")));
    }
    s.hub.kick(&id, "this device was revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize)]
struct RelayStatus {
    documents: u64,
    documents_in_memory: usize,
    sessions: Vec<crate::hub::SessionInfo>,
}

/// With the admin token: the relay's own status. With a head-office session token: the shop
/// replica's sync status, as on an edge node (the web UI's settings page asks for it).
async fn status(State(s): State<RelayState>, req: axum::extract::Request) -> Response {
    let headers = req.headers();
    if let (Some(console), Err(_)) = (&s.console, admin(&s, headers)) {
        return console.handle(req).await;
    }
    if let Err(e) = admin(&s, headers) {
        return e.into_response();
    }
    match s.hub.blocking(|st| st.doc_count()).await.map_err(storage) {
        Ok(documents) => {
            Json(RelayStatus { documents, documents_in_memory: s.hub.docs_in_memory(), sessions: s.hub.sessions() })
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Everything no relay route takes: head office's shop API under `/api/`, else the web UI.
async fn shop_api_or_ui(State(s): State<RelayState>, req: axum::extract::Request) -> Response {
    match &s.console {
        Some(console) if req.uri().path().starts_with("/api/") => console.handle(req).await,
        _ => {
            let (parts, _) = req.into_parts();
            dashoffice_api::ui::serve(parts.method, parts.uri, parts.headers).await
        }
    }
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    token: Option<String>,
}

/// `/sync`: the automerge-repo WebSocket protocol for enrolled clients (`?token=` or a Bearer
/// header), with the same partial-replication rule as QUIC.
async fn sync_ws(
    State(s): State<RelayState>,
    headers: HeaderMap,
    Query(q): Query<SyncQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let token = q.token.or_else(|| bearer(&headers)).ok_or_else(|| {
        metrics::counter!("dashoffice_relay_refused_connections_total", "reason" => "unknown").increment(1);
        unauthorized("send the device token as ?token= or a Bearer header")
    })?;
    let hash = enrol::token_hash(&token);
    let device = s.hub.blocking(move |st| st.device_by_token(&hash)).await.map_err(storage)?;
    let device = match device {
        Some(d) if d.revoked_at.is_none() => d,
        Some(_) => {
            metrics::counter!("dashoffice_relay_refused_connections_total", "reason" => "revoked").increment(1);
            return Err(unauthorized("this device was revoked"));
        }
        None => {
            metrics::counter!("dashoffice_relay_refused_connections_total", "reason" => "unknown").increment(1);
            return Err(unauthorized("the device token is not valid"));
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rej) => return Ok(rej.into_response()),
    };
    let hub = s.hub.clone();
    Ok(ws
        .max_message_size(dashoffice_sync::proto::MAX_FRAME)
        // Sync messages are small; a smaller read buffer means less to clear on every read.
        .read_buffer_size(16 * 1024)
        .on_upgrade(move |socket| ws_session(socket, hub, device)))
}

async fn ws_session(socket: WebSocket, hub: Arc<Hub>, device: Device) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Result<Vec<u8>, dashoffice_sync::framing::FrameError>>(256);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    // The handshake: the client's join, answered with peer.
    let remote = loop {
        match stream.next().await {
            Some(Ok(WsMessage::Binary(b))) => match Message::decode(&b) {
                Ok(Message::Join { sender_id, .. }) => break sender_id,
                Ok(_) | Err(_) => {
                    let _ = out_tx.send(Message::Error { message: "expected a join message".into() }.encode());
                    drop(out_tx);
                    let _ = writer.await;
                    return;
                }
            },
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            _ => return,
        }
    };
    let peer = Message::Peer {
        sender_id: hub.peer_id.clone(),
        peer_metadata: PeerMetadata { is_ephemeral: Some(false), ..Default::default() },
        selected_protocol_version: PROTOCOL_VERSION.into(),
        target_id: remote.clone(),
    };
    let _ = out_tx.send(peer.encode());
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let item = match msg {
                Ok(WsMessage::Binary(b)) => Ok(b.to_vec()),
                Ok(WsMessage::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            if in_tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let (session_id, kick) = hub.register(&device, "websocket");
    tracing::info!(device = %device.id, "websocket client connected");
    let io = Io { rx: in_rx, tx: out_tx };
    let _ = session::serve(hub.clone(), device.clone(), io, Naming::Repo, remote, session_id, kick).await;
    hub.unregister(&device.id, session_id);
    reader.abort();
    let _ = writer.await;
    tracing::info!(device = %device.id, "websocket client disconnected");
}
