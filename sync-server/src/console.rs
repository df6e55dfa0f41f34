//! Head office on the relay: the shop's own API (`dashoffice-api`, the one every edge node serves)
//! over each shop's service replica, which holds the whole shop. The web UI the relay serves logs
//! in here, so head office sees every branch — dashboard, analytics, orders, conversations —
//! without an edge node of its own.
//!
//! One relay may serve several shops: a login goes to the shop that has an account with that
//! e-mail address, and every later request to the shop whose replica issued its session token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dashoffice_api::{ApiError, AppState};
use dashoffice_core::{Caller, entities::staff};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::{hub::Hub, whatsapp::WhatsApp};

/// Largest login body read to find its shop.
const LOGIN_BODY: usize = 64 * 1024;
/// Token → shop entries kept before the map is cleared.
const MAX_TOKENS: usize = 50_000;

/// The shops' APIs and where each session token belongs.
pub struct Console {
    wa: Arc<WhatsApp>,
    apis: Mutex<HashMap<String, Router>>,
    tokens: Mutex<HashMap<[u8; 32], String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Console {
    /// The console over the shops' service replicas.
    pub fn new(wa: Arc<WhatsApp>) -> Arc<Self> {
        Arc::new(Self { wa, apis: Mutex::new(HashMap::new()), tokens: Mutex::new(HashMap::new()) })
    }

    /// Keeps a service replica running for every shop with an enrolled device, so head office can
    /// log in on the relay (checked every few seconds; new shops appear when their first device
    /// enrols).
    pub async fn keep_shops_served(self: Arc<Self>, hub: Arc<Hub>) {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tick.tick().await;
            let devices = match hub.blocking(|st| st.devices()).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "listing devices for head office");
                    continue;
                }
            };
            let mut shops: Vec<String> =
                devices.into_iter().filter(|d| d.revoked_at.is_none()).map(|d| d.shop_id).collect();
            shops.sort();
            shops.dedup();
            for shop in shops {
                if lock(&self.wa.services).contains_key(&shop) {
                    continue;
                }
                let wa = self.wa.clone();
                let s = shop.clone();
                match tokio::task::spawn_blocking(move || wa.service(&s)).await {
                    Ok(Ok(_)) => tracing::info!(shop = %shop, "head office: serving the shop on the relay"),
                    Ok(Err(e)) => {
                        tracing::error!(shop = %shop, error = %e, "head office: cannot start the shop's replica")
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// The API of `shop`, built once per shop (its sessions cache and login limiter live in it).
    fn api(&self, shop: &str) -> Option<Router> {
        if let Some(r) = lock(&self.apis).get(shop) {
            return Some(r.clone());
        }
        let svc = lock(&self.wa.services).get(shop).cloned()?;
        let mut state = AppState::new(svc.replica.clone(), dashoffice_api::metrics_handle());
        (state.sync_status, state.sync_reconnect) = svc.sync_handle().api_hooks();
        let router = dashoffice_api::app(state);
        Some(lock(&self.apis).entry(shop.to_string()).or_insert(router).clone())
    }

    fn services(&self) -> Vec<Arc<crate::whatsapp::service::ShopService>> {
        let mut v: Vec<_> = lock(&self.wa.services).values().cloned().collect();
        v.sort_by(|a, b| a.shop.cmp(&b.shop));
        v
    }

    /// The shop whose replica issued `token`.
    async fn shop_of_token(&self, token: &str) -> Option<String> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(s) = lock(&self.tokens).get(&key) {
            return Some(s.clone());
        }
        for svc in self.services() {
            let t = token.to_string();
            let r = svc.replica.clone();
            let found = tokio::task::spawn_blocking(move || {
                r.read(|c| Ok(staff::session_caller(c, &t, r.now_ms()).is_ok())).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if found {
                let mut map = lock(&self.tokens);
                if map.len() >= MAX_TOKENS {
                    map.clear();
                }
                map.insert(key, svc.shop.clone());
                return Some(svc.shop.clone());
            }
        }
        None
    }

    /// The head-office staff member a session token belongs to (in whichever shop issued it).
    pub async fn caller(&self, token: &str) -> Option<Caller> {
        let shop = self.shop_of_token(token).await?;
        let svc = lock(&self.wa.services).get(&shop).cloned()?;
        let t = token.to_string();
        tokio::task::spawn_blocking(move || {
            let r = &svc.replica;
            r.read(|c| Ok(staff::session_caller(c, &t, r.now_ms()).ok().map(|(caller, _)| caller))).ok().flatten()
        })
        .await
        .ok()
        .flatten()
    }

    /// The shop with an active account for `email`; `Err` while some shop is still syncing and
    /// none matched yet.
    async fn shop_of_login(&self, email: &str) -> Result<Option<String>, ()> {
        let mut syncing = false;
        for svc in self.services() {
            if !svc.ready() {
                syncing = true;
                continue;
            }
            let (r, shop, e) = (svc.replica.clone(), svc.shop.clone(), email.to_string());
            let found =
                tokio::task::spawn_blocking(move || r.read(|c| staff::has_login(c, &shop, &e)).unwrap_or(false))
                    .await
                    .unwrap_or(false);
            if found {
                return Ok(Some(svc.shop.clone()));
            }
        }
        if syncing { Err(()) } else { Ok(None) }
    }

    /// Answers a shop API request (`/api/…`) of head office.
    pub async fn handle(&self, req: Request) -> Response {
        let is_login = req.uri().path() == "/api/v1/auth/login" && req.method() == axum::http::Method::POST;
        if is_login {
            return self.login(req).await;
        }
        if req.uri().path() == "/api/openapi.json" {
            // The API's description is public, as on an edge node.
            if let Some(api) = self.services().first().and_then(|s| self.api(&s.shop)) {
                return api.oneshot(req).await.unwrap_or_else(|e| match e {});
            }
        }
        let Some(token) = token_of(&req) else {
            return unauthorized("send Authorization: Bearer <token> (POST /api/v1/auth/login gives one)");
        };
        let Some(shop) = self.shop_of_token(&token).await else {
            return unauthorized("the token is unknown or expired; log in again");
        };
        match self.api(&shop) {
            Some(api) => api.oneshot(req).await.unwrap_or_else(|e| match e {}),
            None => unauthorized("the token is unknown or expired; log in again"),
        }
    }

    async fn login(&self, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, LOGIN_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the login body is too large")
                    .into_response();
            }
        };
        // The shop's own handler validates the body and answers its errors; here only the
        // address is needed to pick the shop.
        let email = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("email").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_default();
        let shop = match self.shop_of_login(&email).await {
            Ok(Some(s)) => Some(s),
            // No shop has the address: the first shop's handler answers (the same "wrong e-mail
            // or password", after the same password-hashing time).
            Ok(None) => self.services().first().map(|s| s.shop.clone()),
            Err(()) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the relay is still receiving the shop's data; try again in a minute",
                )
                .into_response();
            }
        };
        let Some(api) = shop.as_deref().and_then(|s| self.api(s)) else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "this relay serves no shop yet: enrol a device of the shop first",
            )
            .into_response();
        };
        let req = Request::from_parts(parts, Body::from(bytes));
        api.oneshot(req).await.unwrap_or_else(|e| match e {})
    }
}

fn unauthorized(msg: &str) -> Response {
    crate::http::unauthorized(msg).into_response()
}

/// The session token: the Bearer header, or for server-sent events the events cookie or
/// `access_token=` in the query.
fn token_of(req: &Request) -> Option<String> {
    crate::http::bearer(req.headers()).filter(|t| !t.is_empty()).or_else(|| {
        if req.uri().path() != "/api/v1/events" {
            return None;
        }
        dashoffice_api::events_cookie(req.headers()).or_else(|| {
            req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix("access_token=")).map(str::to_string)
        })
    })
}
