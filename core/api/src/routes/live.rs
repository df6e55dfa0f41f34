//! Live updates for the UI (`GET /api/v1/events`, server-sent events): which collections changed,
//! local or synced from another replica, and the sync state whenever it changes. Events carry no
//! records; the UI re-reads what it shows. Changes in branches the caller may not see are not
//! announced.

use std::{collections::BTreeSet, convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use dashoffice_core::{
    Caller,
    doc::{Collection, DocId},
};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::{ApiQuery, ApiResult, AppState, extract};

/// The cookie that carries the session token to `GET /api/v1/events` (the browser's EventSource
/// cannot send headers; a token in the URL would land in proxies' access logs).
pub(crate) const EVENTS_COOKIE: &str = "dashoffice_events";

/// The `dashoffice_events` cookie's value, if the request has one.
pub fn events_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == EVENTS_COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for the events cookie: only sent to `/api/v1/events`, not readable by scripts,
/// never sent by another site; `max_age_s` 0 removes it.
pub(crate) fn events_set_cookie(token: &str, max_age_s: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{EVENTS_COOKIE}={token}; Path=/api/v1/events; HttpOnly; SameSite=Strict; Max-Age={max_age_s}"
    ))
    .ok()
}

/// Sets the cookie that lets this browser open `GET /api/v1/events` without a token in the URL,
/// for as long as the session lasts. Send the session token as the bearer header.
#[utoipa::path(post, path = "/api/v1/events/session", tag = "sync", security(("bearer" = [])),
    responses((status = 204, description = "The events cookie is set (HttpOnly, SameSite=Strict, Path=/api/v1/events)"),
        crate::routes::Errors))]
pub(crate) async fn events_session(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let token = extract::bearer(&headers)?;
    extract::authenticate(&s, &token).await?;
    let replica = s.replica.clone();
    let t = token.clone();
    let expires = tokio::task::spawn_blocking(move || replica.authenticate(&t).map(|(_, exp)| exp))
        .await
        .map_err(|_| crate::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))??;
    let max_age = ((expires - s.replica.now_ms()) / 1000).max(1);
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = events_set_cookie(&token, max_age) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Query of `GET /api/v1/events` (no `Debug`: it may carry the session token).
#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct EventsQuery {
    /// The session token, for clients that cannot send headers (the browser's EventSource).
    access_token: Option<String>,
}

/// How long changes are gathered into one event.
const COALESCE: Duration = Duration::from_millis(150);
/// How often the sync state is compared with the last one sent.
const SYNC_EVERY: Duration = Duration::from_secs(2);

fn collection_name(c: Collection) -> &'static str {
    match c {
        Collection::Org => "org",
        Collection::Staff => "staff",
        Collection::Products => "products",
        Collection::Customers => "customers",
        Collection::Stock => "stock",
        Collection::Orders => "orders",
        Collection::Conversations => "conversations",
        Collection::Messages => "messages",
        Collection::Inbox => "inbox",
        Collection::Attachments => "attachments",
        // A password change shows nowhere but in the account's own list entry.
        Collection::Credentials => "staff",
        Collection::Tickets => "tickets",
    }
}

fn visible(caller: &Caller, id: &DocId, out: &mut BTreeSet<&'static str>) {
    let Ok(scope) = id.scope() else { return };
    if scope.shop_id != caller.shop_id {
        return;
    }
    if let (Some(mine), Some(theirs)) = (&caller.branch_id, &scope.branch_id)
        && mine != theirs
    {
        return;
    }
    out.insert(collection_name(scope.collection));
}

struct Live {
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<[DocId]>>,
    caller: Caller,
    state: AppState,
    last_sync: Option<dashoffice_domain::api::SyncStatus>,
    tick: tokio::time::Interval,
    hello: bool,
}

fn change_event(set: &BTreeSet<&'static str>) -> Event {
    Event::default().event("change").data(serde_json::json!({ "collections": set }).to_string())
}

async fn next(mut l: Live) -> Option<(Result<Event, Infallible>, Live)> {
    if l.hello {
        l.hello = false;
        return Some((Ok(Event::default().event("hello").data("{}")), l));
    }
    loop {
        tokio::select! {
            r = l.rx.recv() => {
                let mut set = BTreeSet::new();
                match r {
                    Ok(ids) => ids.iter().for_each(|id| visible(&l.caller, id, &mut set)),
                    Err(RecvError::Lagged(_)) => {
                        Collection::ALL.iter().for_each(|c| { set.insert(collection_name(*c)); });
                    }
                    Err(RecvError::Closed) => return None,
                }
                // Gather what else changes in the next moment into the same event.
                let until = tokio::time::Instant::now() + COALESCE;
                while let Ok(r) = tokio::time::timeout_at(until, l.rx.recv()).await {
                    match r {
                        Ok(ids) => ids.iter().for_each(|id| visible(&l.caller, id, &mut set)),
                        Err(RecvError::Lagged(_)) => {
                            Collection::ALL.iter().for_each(|c| { set.insert(collection_name(*c)); });
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
                if !set.is_empty() {
                    return Some((Ok(change_event(&set)), l));
                }
            }
            _ = l.tick.tick() => {
                let f = l.state.sync_status.clone();
                let Ok(st) = tokio::task::spawn_blocking(move || f()).await else { continue };
                // Only what a person watches: connection, pending work, errors (not every counter).
                let key = |s: &dashoffice_domain::api::SyncStatus| {
                    (s.connected, s.pending_changes, s.queued_documents, s.last_sync_at, s.last_error.clone())
                };
                if l.last_sync.as_ref().map(key) != Some(key(&st)) {
                    let ev = Event::default().event("sync").data(serde_json::to_string(&st).unwrap_or_default());
                    l.last_sync = Some(st);
                    return Some((Ok(ev), l));
                }
            }
        }
    }
}

/// A stream of `change` events (`{"collections":["orders",…]}`) and `sync` events (the body of
/// `GET /api/v1/sync/status`), starting with `hello`. Authenticate with the bearer header, the
/// cookie that `POST /api/v1/events/session` sets (what the web UI does), or `?access_token=`.
#[utoipa::path(get, path = "/api/v1/events", tag = "sync", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, description = "server-sent events", content_type = "text/event-stream"), crate::routes::Errors))]
pub(crate) async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let token = match extract::bearer(&headers) {
        Ok(t) => t,
        Err(e) => events_cookie(&headers).or(q.access_token).filter(|t| !t.is_empty() && t.len() < 200).ok_or(e)?,
    };
    let caller = extract::authenticate(&s, &token).await?;
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live { rx: s.replica.subscribe(), caller, state: s, last_sync: None, tick, hello: true };
    Ok(Sse::new(futures_util::stream::unfold(live, next)).keep_alive(KeepAlive::default()))
}
