//! The WhatsApp inbox on a replica: conversations and their messages, replies (queued here, sent
//! by the relay when they reach it), assignment, templates, canned responses, shifts and bots.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use dashoffice_core::{
    bot::{self, BotDef, BotInput},
    entities::{broadcasts, inbox},
};
use dashoffice_domain::{
    FieldError,
    api::Page,
    inbox::{
        BroadcastReport, BroadcastSummary, CannedResponse, ConversationParams, ConversationThread, ConversationView,
        MessageView, SendBroadcast, SendMessage, SendOrderDocument, ShiftView, TemplateView, UpdateConversation,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Errors;
use crate::{ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// Conversations, most recently active first (`state`, `assignee` = id | me | none, `unread`, `q`).
#[utoipa::path(get, path = "/api/v1/conversations", tag = "inbox", security(("bearer" = [])), params(ConversationParams),
    responses((status = 200, body = Page<ConversationView>), Errors))]
pub(crate) async fn list_conversations(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ConversationParams>,
) -> ApiResult<Json<Page<ConversationView>>> {
    Ok(Json(s.read(move |conn| inbox::list(conn, &c, &p)).await?))
}

/// `?limit=` for a thread.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ThreadParams {
    /// The latest this many messages (1 to 1000, default 200).
    limit: Option<u32>,
}

/// A conversation with its latest messages and the approved templates.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), ThreadParams), responses((status = 200, body = ConversationThread), Errors))]
pub(crate) async fn get_conversation(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ThreadParams>,
) -> ApiResult<Json<ConversationThread>> {
    Ok(Json(s.read(move |conn| inbox::thread(conn, &c, &id, p.limit.unwrap_or(200))).await?))
}

/// Changes state (pending = bot, open = person, resolved), assignee or labels.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateConversation, responses((status = 200, body = ConversationView), Errors))]
pub(crate) async fn update_conversation(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateConversation>,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(s.replica.write(move |ctx| inbox::update(ctx, &c, &id, b)).await?))
}

/// Sends an order's sales document (PDF, in `lang`) to the customer's latest WhatsApp
/// conversation, with a caption. The relay renders it from its own replica when it sends it,
/// uploads it to the Graph API and sends it as `<number>.pdf`. 409 when the customer has no
/// conversation (`customer_id`) or the 24-hour window is closed (`kind`).
#[utoipa::path(post, path = "/api/v1/orders/{id}/whatsapp", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SendOrderDocument, responses((status = 201, body = MessageView), Errors))]
pub(crate) async fn send_order_document(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SendOrderDocument>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let sender = c.user_id.clone();
    let m = s.replica.write(move |ctx| inbox::send_order_document(ctx, &c, &id, b, &sender)).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Queues a reply (text, buttons, list, template, image, document) or writes an internal note.
/// A text that is exactly `/short_code` of a canned response is replaced by its text. Outside the
/// 24-hour window only templates are accepted (409 naming the approved templates).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SendMessage, responses((status = 201, body = MessageView), Errors))]
pub(crate) async fn send_message(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(mut b): ApiJson<SendMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    if let Some(code) = b.text.trim().strip_prefix('/').map(str::to_string) {
        let shop = c.shop_id.clone();
        let canned = s.read(move |conn| inbox::canned(conn, &shop)).await?;
        match canned.into_iter().find(|r| r.short_code == code) {
            Some(r) => b.text = r.text,
            None if !code.contains(' ') => {
                return Err(FieldError::new("text", "canned_response", format!("no canned response /{code}")).into());
            }
            None => {}
        }
    }
    let sender = c.user_id.clone();
    let m = s.replica.write(move |ctx| inbox::send(ctx, &c, &id, b, &sender)).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Marks the conversation read (its unread count drops to 0).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ConversationView), Errors))]
pub(crate) async fn read_conversation(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
    Ok(Json(s.replica.write(move |ctx| inbox::mark_read(ctx, &c, &id)).await?))
}

/// Assigns the conversation round robin among the branch's staff on shift.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/assign", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ConversationView), Errors))]
pub(crate) async fn assign_conversation(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
    c.require(dashoffice_domain::Permission::Converse)?;
    let v = s
        .replica
        .write(move |ctx| {
            inbox::thread(ctx.conn(), &c, &id, 1)?;
            inbox::assign_round_robin(ctx, &c.shop_id, &id)?;
            inbox::get_conversation(ctx.conn(), &c.shop_id, &id)
        })
        .await?;
    Ok(Json(v))
}

/// Approved templates (register the ones approved at Meta).
#[utoipa::path(get, path = "/api/v1/whatsapp/templates", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<TemplateView>), Errors))]
pub(crate) async fn list_templates(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Vec<TemplateView>>> {
    Ok(Json(s.read(move |conn| inbox::template_list(conn, &c.shop_id)).await?))
}

fn check_key(field: &str, v: &str) -> Result<(), FieldError> {
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(FieldError::new(field, "format", "1 to 64 letters, digits, - or _"));
    }
    Ok(())
}

/// The latest 50 broadcasts (of the caller's branch when they have one), newest first, with how
/// their messages went.
#[utoipa::path(get, path = "/api/v1/whatsapp/broadcasts", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<BroadcastSummary>), Errors))]
pub(crate) async fn list_broadcasts(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<Vec<BroadcastSummary>>> {
    Ok(Json(s.read(move |conn| broadcasts::list(conn, &c)).await?))
}

/// Cancels a scheduled broadcast before its time; 409 naming `state` once it went, 404 for one
/// the caller does not see.
#[utoipa::path(delete, path = "/api/v1/whatsapp/broadcasts/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204, description = "Cancelled"), Errors))]
pub(crate) async fn cancel_broadcast(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.replica.write(move |ctx| broadcasts::cancel(ctx, &c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends an approved template to every customer with a tag (customers tagged `no-promos` and those
/// without a WhatsApp number or phone are left out and listed); one id never sends twice. With
/// `send_at` in the future it is kept for then (the relay sends it; until then it can be
/// cancelled): 422 naming `send_at` beyond 90 days.
#[utoipa::path(post, path = "/api/v1/whatsapp/broadcasts", tag = "inbox", security(("bearer" = [])),
    request_body = SendBroadcast, responses((status = 200, body = BroadcastReport), Errors))]
pub(crate) async fn send_broadcast(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<SendBroadcast>,
) -> ApiResult<Json<BroadcastReport>> {
    Ok(Json(s.replica.write(move |ctx| broadcasts::send(ctx, &c, b)).await?))
}

/// Registers (or replaces) an approved template.
#[utoipa::path(post, path = "/api/v1/whatsapp/templates", tag = "inbox", security(("bearer" = [])),
    request_body = TemplateView, responses((status = 201, body = TemplateView), Errors))]
pub(crate) async fn put_template(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(t): ApiJson<TemplateView>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    check_key("name", &t.name)?;
    if t.language.is_empty() || t.language.len() > 10 {
        return Err(FieldError::new("language", "format", "a language code such as es, es_MX or en_US").into());
    }
    if t.params > 20 {
        return Err(FieldError::new("params", "max", "at most 20 parameters").into());
    }
    let v = serde_json::to_value(&t).unwrap_or(Value::Null);
    let key = format!("{}.{}", t.name, t.language);
    s.replica.write(move |ctx| inbox::put_item(ctx, &c, "template", &key, &v)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Removes a template from the list offered to staff (after Meta disabled or deleted it).
#[utoipa::path(delete, path = "/api/v1/whatsapp/templates/{name}/{language}", tag = "inbox", security(("bearer" = [])),
    params(("name" = String, Path), ("language" = String, Path)), responses((status = 204), Errors))]
pub(crate) async fn delete_template(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path((name, language)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let key = format!("{name}.{language}");
    s.replica.write(move |ctx| inbox::delete_item(ctx, &c, "template", &key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Canned responses.
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<CannedResponse>), Errors))]
pub(crate) async fn list_canned(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Vec<CannedResponse>>> {
    Ok(Json(s.read(move |conn| inbox::canned(conn, &c.shop_id)).await?))
}

/// Adds (or replaces) a canned response.
#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    request_body = CannedResponse, responses((status = 201, body = CannedResponse), Errors))]
pub(crate) async fn put_canned(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(r): ApiJson<CannedResponse>,
) -> ApiResult<(StatusCode, Json<CannedResponse>)> {
    check_key("short_code", &r.short_code)?;
    if r.text.trim().is_empty() || r.text.chars().count() > 4096 {
        return Err(FieldError::new("text", "length", "1 to 4096 characters").into());
    }
    let v = serde_json::to_value(&r).unwrap_or(Value::Null);
    let key = r.short_code.clone();
    s.replica.write(move |ctx| inbox::put_item(ctx, &c, "canned", &key, &v)).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Removes a canned response.
#[utoipa::path(delete, path = "/api/v1/canned-responses/{code}", tag = "inbox", security(("bearer" = [])),
    params(("code" = String, Path)), responses((status = 204), Errors))]
pub(crate) async fn delete_canned(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(code): Path<String>,
) -> ApiResult<StatusCode> {
    s.replica.write(move |ctx| inbox::delete_item(ctx, &c, "canned", &code)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// PUT /api/v1/shifts/{staff_id}
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Shift {
    /// On shift: gets conversations assigned round robin.
    on: bool,
}

/// Puts a staff member on or off shift.
#[utoipa::path(put, path = "/api/v1/shifts/{staff_id}", tag = "inbox", security(("bearer" = [])),
    params(("staff_id" = String, Path)), request_body = Shift, responses((status = 200, body = Shift), Errors))]
pub(crate) async fn put_shift(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(staff): Path<String>,
    ApiJson(b): ApiJson<Shift>,
) -> ApiResult<Json<Shift>> {
    let v = serde_json::json!({ "on": b.on });
    s.replica
        .write(move |ctx| {
            dashoffice_core::entities::staff::get(ctx.conn(), &c.shop_id, &staff)
                .map_err(|_| dashoffice_core::CoreError::not_found("staff member", &staff))?;
            if staff != c.user_id {
                c.require(dashoffice_domain::Permission::ManageStaff)?;
            }
            inbox::put_item(ctx, &c, "shift", &staff, &v)
        })
        .await?;
    Ok(Json(b))
}

/// Who is on shift (staff never put on or off shift are left out: off).
#[utoipa::path(get, path = "/api/v1/shifts", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<ShiftView>), Errors))]
pub(crate) async fn list_shifts(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Vec<ShiftView>>> {
    Ok(Json(s.read(move |conn| inbox::shifts(conn, &c.shop_id)).await?))
}

/// Bots (the built-in default answers until the shop saves its own).
#[utoipa::path(get, path = "/api/v1/bots", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), Errors))]
pub(crate) async fn list_bots(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Vec<Value>>> {
    let items = s.read(move |conn| inbox::list_items(conn, &c.shop_id, "bot")).await?;
    let mut out: Vec<Value> = items.into_iter().map(|(_, v)| v).collect();
    if out.is_empty() {
        out.push(serde_json::to_value(BotDef::default_bot()).unwrap_or(Value::Null));
    }
    Ok(Json(out))
}

/// Saves a bot (validated: every trigger and transition must name an existing node).
#[utoipa::path(post, path = "/api/v1/bots", tag = "inbox", security(("bearer" = [])),
    request_body = Object, responses((status = 201, body = Object), Errors))]
pub(crate) async fn put_bot(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<BotDef>,
) -> ApiResult<(StatusCode, Json<BotDef>)> {
    b.validate()?;
    check_key("name", &b.name)?;
    let v = serde_json::to_value(&b).unwrap_or(Value::Null);
    let key = b.name.clone();
    s.replica.write(move |ctx| inbox::put_item(ctx, &c, "bot", &key, &v)).await?;
    Ok((StatusCode::CREATED, Json(b)))
}

/// POST /api/v1/bots/{name}/try
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TryBot {
    /// What the customer writes.
    text: String,
    /// The button or list row id they tapped, if any.
    #[serde(default)]
    reply_id: Option<String>,
}

/// What the bot would answer, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TryResult {
    replies: Vec<SendMessage>,
    handoff: bool,
    end: bool,
    node: String,
    #[schema(value_type = Object)]
    explain: Value,
}

/// Runs a bot on a message without sending anything: the replies, and the trigger, intent,
/// confidence, entities and node that produced them.
#[utoipa::path(post, path = "/api/v1/bots/{name}/try", tag = "inbox", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = TryBot, responses((status = 200, body = TryResult), Errors))]
pub(crate) async fn try_bot(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    ApiJson(t): ApiJson<TryBot>,
) -> ApiResult<Json<TryResult>> {
    if t.text.chars().count() > 4096 {
        return Err(FieldError::new("text", "max_length", "at most 4096 characters").into());
    }
    let branch = s.home_branch().unwrap_or_default();
    let replica = s.replica.clone();
    let d = s
        .read(move |conn| {
            let bot = inbox::list_items(conn, &c.shop_id, "bot")?
                .into_iter()
                .filter_map(|(_, v)| serde_json::from_value::<BotDef>(v).ok())
                .find(|b| b.name == name)
                .or_else(|| (name == "default").then(BotDef::default_bot))
                .ok_or_else(|| dashoffice_core::CoreError::not_found("bot", &name))?;
            let payload = t.reply_id.map(|id| serde_json::json!({ "id": id })).unwrap_or(Value::Null);
            let input = BotInput {
                kind: if payload.is_null() { "text".into() } else { "interactive".into() },
                text: t.text,
                payload,
                at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
                branch_id: c.branch_id.clone().unwrap_or(branch),
                ..Default::default()
            };
            bot::decide_with(conn, &c.shop_id, &bot, &input, &|t| replica.catalog_candidates(&c.shop_id, t))
        })
        .await?;
    Ok(Json(TryResult { replies: d.replies, handoff: d.handoff, end: d.end, node: d.node, explain: d.explain }))
}

/// A WhatsApp media file (image, audio, video, document, sticker) received in a branch the caller
/// may see, once the relay has downloaded it and it has synced here.
#[utoipa::path(get, path = "/api/v1/attachments/{sha256}", tag = "inbox", security(("bearer" = [])),
    params(("sha256" = String, Path)), responses((status = 200, description = "the file", content_type = "application/octet-stream"), Errors))]
pub(crate) async fn get_attachment(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(sha): Path<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError::new("sha256", "format", "64 hexadecimal characters").into());
    }
    let found = s
        .read(move |conn| {
            let Some((mime, doc)) = inbox::attachment(conn, &c, &sha)? else { return Ok(None) };
            let d = dashoffice_core::doc::load(conn, &doc, dashoffice_core::doc::Collection::Attachments)?;
            Ok(d.and_then(|d| inbox::attachment_bytes(&d)).map(|b| (mime, b)))
        })
        .await?;
    match found {
        Some((mime, bytes)) => Ok(([(axum::http::header::CONTENT_TYPE, mime)], bytes).into_response()),
        None => Err(dashoffice_core::CoreError::not_found("attachment", "").into()),
    }
}
