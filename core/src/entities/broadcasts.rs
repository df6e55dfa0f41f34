//! WhatsApp broadcasts: one approved template to every customer with a tag (a promotion, new
//! stock, a change of hours). WhatsApp lets a shop write first only with an approved template, so
//! a broadcast is templates only; each goes in the customer's conversation (one is opened for a
//! customer who never wrote), from the bot, and the relay sends them under the number's rate
//! limit. Customers tagged [`OPT_OUT_TAG`] are left out.

use automerge::transaction::Transactable;
use dashoffice_domain::{
    FieldError, FieldErrors, Permission,
    inbox::{BroadcastReport, BroadcastSkip, BroadcastSummary, MessageStatus, SendBroadcast, SendMessage},
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{inbox, new_id, org};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    writer::WriteCtx,
};

/// The tag of customers who asked for no promotions.
pub const OPT_OUT_TAG: &str = "no-promos";

/// At most this many customers per broadcast (split a larger audience by tag).
pub const MAX_RECIPIENTS: usize = 2_000;

/// A broadcast is scheduled at most this far ahead.
const MAX_AHEAD_MS: i64 = 90 * 24 * 3600 * 1000;

/// The inbox items of scheduled broadcasts (key: the broadcast's id): the request, when it was
/// made and by whom; then, written once each, that it went (or could not) and that it was
/// cancelled.
const SCHEDULED: &str = "broadcast";
const WENT: &str = "broadcast_sent";
const CANCELLED: &str = "broadcast_cancel";

/// The id of the message of broadcast `id` to `customer`.
pub fn message_id(id: &str, customer: &str) -> String {
    format!("broadcast.{id}.{customer}")
}

/// Sends `b`'s template to every customer tagged `b.tag` who may get it (see the module).
pub fn send(ctx: &mut WriteCtx<'_>, caller: &Caller, b: SendBroadcast) -> Result<BroadcastReport> {
    send_in(ctx, caller, b, false)
}

/// [`send`]; `at_its_time`: the relay sending a scheduled broadcast (its id is scheduled).
fn send_in(ctx: &mut WriteCtx<'_>, caller: &Caller, b: SendBroadcast, at_its_time: bool) -> Result<BroadcastReport> {
    caller.require(Permission::ManageBots)?;
    let mut e = FieldErrors::new();
    let tag = b.tag.trim().to_lowercase();
    if tag.is_empty() {
        e.push(FieldError::new("tag", "required", "the tag of the customers to write to"));
    } else if tag == OPT_OUT_TAG {
        e.push(FieldError::new("tag", "opted_out", format!("customers tagged {OPT_OUT_TAG} asked for no promotions")));
    }
    let id = match b.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) if i.len() <= 64 && i.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') => {
            i.to_string()
        }
        Some(_) => {
            e.push(FieldError::new("id", "format", "1 to 64 letters, digits, '-' or '_'"));
            String::new()
        }
        None => new_id(),
    };
    if b.params.iter().any(|p| p.chars().count() > 1000) {
        e.push(FieldError::new("params", "max_length", "at most 1000 characters each"));
    } else if b.params.iter().any(|p| p.trim().is_empty()) {
        e.push(FieldError::new("params", "required", "WhatsApp refuses an empty parameter"));
    }
    let branch = match b.branch_id.as_deref().filter(|b| !b.is_empty()) {
        Some(given) if caller.branch_id.as_deref().is_some_and(|mine| mine != given) => {
            e.push(FieldError::new("branch_id", "scope", "you work in one branch: leave it out"));
            String::new()
        }
        Some(given) => match org::get_branch(ctx.conn(), &caller.shop_id, given) {
            Ok(_) => given.to_string(),
            Err(_) => {
                e.push(FieldError::new("branch_id", "exists", format!("unknown branch '{given}'")));
                String::new()
            }
        },
        None => match caller.branch_id.clone() {
            Some(mine) => mine,
            None => match org::list_branches(ctx.conn(), &caller.shop_id, false)?.into_iter().next() {
                Some(b) => b.id,
                None => {
                    e.push(FieldError::new("branch_id", "required", "the shop has no branch yet"));
                    String::new()
                }
            },
        },
    };
    let now = ctx.now();
    let send_at = b.send_at.filter(|at| *at > now);
    if send_at.is_some_and(|at| at > now + MAX_AHEAD_MS) {
        e.push(FieldError::new("send_at", "max", "at most 90 days ahead"));
    }
    // A time already gone (a minute's grace for the clock and the click): the person meant a
    // time, not now.
    if b.send_at.is_some_and(|at| at < now - 60_000) {
        e.push(FieldError::new("send_at", "min", "that time is past: leave it empty to send now"));
    }
    e.finish()?;
    // An id kept for later goes at its time, not now as well.
    if !at_its_time && send_at.is_none() && scheduled_state(ctx.conn(), &caller.shop_id, &id)? == Some("scheduled") {
        return Err(CoreError::conflict(
            "id",
            "scheduled",
            "this broadcast is scheduled: cancel it first, or give this one an id of its own",
        ));
    }
    // The template and its parameters are checked before anything is written (the first
    // message would fail the whole write anyway).
    let template = SendMessage {
        kind: Some("template".into()),
        template: Some(b.template.clone()),
        language: b.language.clone().filter(|l| !l.is_empty()),
        params: b.params.clone(),
        ..Default::default()
    };
    let template_language = inbox::check_template(ctx.conn(), &caller.shop_id, &template)?;
    let audience: Vec<(String, String, bool)> = ctx
        .conn()
        .prepare_cached(
            "SELECT t.id, t.name, EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?3) FROM customers t
             WHERE t.shop_id = ?1 AND t.archived = 0 AND t.merged_into IS NULL
               AND EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?2)
             ORDER BY t.name, t.id",
        )?
        .query_map(params![caller.shop_id, tag, OPT_OUT_TAG], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if audience.len() > MAX_RECIPIENTS {
        return Err(FieldError::new(
            "tag",
            "max_items",
            format!("{} customers have this tag; a broadcast reaches at most {MAX_RECIPIENTS}", audience.len()),
        )
        .into());
    }
    let audience_size = u32::try_from(audience.len()).unwrap_or(u32::MAX);
    if let Some(at) = send_at {
        return schedule(
            ctx,
            caller,
            SendBroadcast { tag, id: Some(id), branch_id: Some(branch), send_at: Some(at), ..b },
            audience_size,
        );
    }
    let mut report = BroadcastReport { id: id.clone(), audience: audience_size, ..Default::default() };
    let explain = serde_json::json!({ "trigger": { "kind": "broadcast", "id": id, "tag": tag }, "node": "broadcast" });
    for (customer, name, opted_out) in audience {
        let skip =
            |reason: &str| BroadcastSkip { customer_id: customer.clone(), name: name.clone(), reason: reason.into() };
        if opted_out {
            report.skipped.push(skip("opted_out"));
            continue;
        }
        let mid = message_id(&id, &customer);
        if inbox::message_exists(ctx.conn(), &mid)? {
            report.already += 1;
            continue;
        }
        if !inbox::reachable(ctx.conn(), &caller.shop_id, &customer)? {
            report.skipped.push(skip("no_whatsapp"));
            continue;
        }
        // Their latest conversation (the number they know), else a new one in `branch`. One
        // customer's trouble (their phone is another customer's WhatsApp number) leaves them out,
        // not the rest.
        let conversation = match inbox::order_conversation(ctx.conn(), caller, &customer)? {
            Some(c) => c,
            None => match inbox::open_for_bot(ctx, &caller.shop_id, &branch, &customer) {
                Ok(c) => c,
                Err(e) if e.is_rule() => {
                    tracing::warn!(customer = %customer, error = %e, "a broadcast leaves a customer out");
                    let reason = if e.to_string().contains("already has the WhatsApp number") {
                        "duplicate_number"
                    } else {
                        "refused"
                    };
                    report.skipped.push(skip(reason));
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        // A customer named by their number (never gave a name) is greeted without it.
        let first = match name.split_whitespace().next().unwrap_or_default() {
            n if n.is_empty() || n.starts_with('+') || n.chars().all(|c| c.is_ascii_digit()) => {
                if template_language.starts_with("en") { "there" } else { "cliente" }.to_string()
            }
            n => n.to_string(),
        };
        let params: Vec<String> = b
            .params
            .iter()
            .map(|p| p.replace("{name}", &first).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let m = SendMessage { params, ..template.clone() };
        inbox::bot_reply_as(ctx, &caller.shop_id, &conversation, &mid, &m, &explain)?;
        report.queued += 1;
    }
    if report.queued > 0 {
        tracing::info!(broadcast = %id, tag = %tag, queued = report.queued, skipped = report.skipped.len(), "WhatsApp broadcast queued");
    }
    Ok(report)
}

/// Keeps broadcast `b` (checked, with its id, branch and time) for the relay to send at its time.
/// Scheduling the same id again changes nothing; an id already sent is refused.
fn schedule(ctx: &mut WriteCtx<'_>, caller: &Caller, b: SendBroadcast, audience: u32) -> Result<BroadcastReport> {
    let id = b.id.clone().unwrap_or_default();
    let report = BroadcastReport { id: id.clone(), scheduled_at: b.send_at, audience, ..Default::default() };
    match scheduled_state(ctx.conn(), &caller.shop_id, &id)? {
        // The same request again (a retry) changes nothing; another one under its id is refused.
        Some("scheduled") => {
            let kept = inbox::list_items(ctx.conn(), &caller.shop_id, SCHEDULED)?
                .into_iter()
                .find(|(k, _)| *k == id)
                .and_then(|(_, v)| serde_json::from_value::<SendBroadcast>(v["request"].clone()).ok());
            if kept.as_ref() == Some(&b) {
                return Ok(report);
            }
            return Err(CoreError::conflict(
                "id",
                "unique",
                "a different broadcast is scheduled under this id: cancel it first, or give this one an id of its own",
            ));
        }
        Some(state) => {
            return Err(CoreError::conflict("state", "scheduled", format!("the broadcast with this id is {state}")));
        }
        None => {}
    }
    let sent: bool = ctx
        .conn()
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE id >= ?1 AND id < ?2)")?
        .query_row([format!("broadcast.{id}."), format!("broadcast.{id}/")], |r| r.get(0))?;
    if sent {
        return Err(CoreError::conflict(
            "id",
            "unique",
            "this broadcast was sent already: give a new one an id of its own",
        ));
    }
    let body = serde_json::json!({ "request": b, "by": caller.user_id, "at": ctx.now() });
    inbox::put_item(ctx, caller, SCHEDULED, &id, &body)?;
    tracing::info!(broadcast = %id, at = b.send_at, "WhatsApp broadcast scheduled");
    Ok(report)
}

/// Scheduled broadcasts of `shop` whose time has come (`now`), neither sent nor cancelled: their
/// ids, oldest time first.
pub fn due(conn: &Connection, shop: &str, now: i64) -> Result<Vec<String>> {
    let done: std::collections::HashSet<String> = [WENT, CANCELLED]
        .iter()
        .map(|k| inbox::list_items(conn, shop, k))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    let mut due: Vec<(i64, String)> = inbox::list_items(conn, shop, SCHEDULED)?
        .into_iter()
        .filter(|(k, _)| !done.contains(k))
        .filter_map(|(k, v)| Some((v["request"]["send_at"].as_i64()?, k)))
        .filter(|(at, _)| *at <= now)
        .collect();
    due.sort();
    Ok(due.into_iter().map(|(_, k)| k).collect())
}

/// Where scheduled broadcast `id` stands: `scheduled`, `cancelled`, `sent` or `failed`; None when
/// no broadcast was scheduled under it.
fn scheduled_state(conn: &Connection, shop: &str, id: &str) -> Result<Option<&'static str>> {
    let has = |kind: &str| -> Result<Option<serde_json::Value>> {
        Ok(inbox::list_items(conn, shop, kind)?.into_iter().find(|(k, _)| k == id).map(|(_, v)| v))
    };
    if has(SCHEDULED)?.is_none() {
        return Ok(None);
    }
    Ok(Some(match (has(WENT)?, has(CANCELLED)?) {
        (Some(w), _) if w.get("error").is_some() => "failed",
        (Some(_), _) => "sent",
        (None, Some(_)) => "cancelled",
        (None, None) => "scheduled",
    }))
}

/// Sends scheduled broadcast `id` of `shop` now (the relay, at its time), as the person who
/// scheduled it (their branch; refused if they may no longer send broadcasts), to the customers
/// tagged then, and records that it went. None when it is not due (gone, cancelled, unknown).
/// A broken rule fails the write (nothing half sent): record it with [`mark_failed`].
pub fn send_scheduled(ctx: &mut WriteCtx<'_>, shop: &str, id: &str) -> Result<Option<BroadcastReport>> {
    if scheduled_state(ctx.conn(), shop, id)? != Some("scheduled") {
        return Ok(None);
    }
    let body = inbox::list_items(ctx.conn(), shop, SCHEDULED)?
        .into_iter()
        .find(|(k, _)| k == id)
        .map(|(_, v)| v)
        .unwrap_or_default();
    let request = serde_json::from_value::<SendBroadcast>(body["request"].clone()).map_err(|e| {
        CoreError::conflict("request", "format", format!("the scheduled request cannot be read here: {e}"))
    })?;
    let by = body["by"].as_str().unwrap_or_default();
    let person =
        super::staff::get(ctx.conn(), shop, by).ok().filter(|p| !p.archived && p.role.can(Permission::ManageBots));
    let Some(person) = person else {
        return Err(CoreError::conflict(
            "by",
            "permission",
            "the person who scheduled it may no longer send broadcasts",
        ));
    };
    let caller =
        Caller { user_id: person.id, shop_id: shop.to_string(), role: person.role, branch_id: person.branch_id };
    let now = ctx.now();
    let r = send_in(ctx, &caller, SendBroadcast { send_at: None, ..request }, true)?;
    let went = serde_json::json!({ "at": now, "queued": r.queued, "skipped": r.skipped.len() });
    inbox::put_item(ctx, &inbox::system_caller(shop), WENT, id, &went)?;
    Ok(Some(r))
}

/// Records that scheduled broadcast `id` could not go at its time, and why (it is not tried again).
pub fn mark_failed(ctx: &mut WriteCtx<'_>, shop: &str, id: &str, error: &str) -> Result<()> {
    if scheduled_state(ctx.conn(), shop, id)? != Some("scheduled") {
        return Ok(());
    }
    tracing::warn!(broadcast = %id, error, "a scheduled WhatsApp broadcast could not go");
    let went = serde_json::json!({ "at": ctx.now(), "error": error });
    inbox::put_item(ctx, &inbox::system_caller(shop), WENT, id, &went)
}

/// Cancels scheduled broadcast `id` before its time (owners and managers); 409 naming `state`
/// once it went. Cancelling again changes nothing.
pub fn cancel(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<()> {
    caller.require(Permission::ManageBots)?;
    let shop = caller.shop_id.clone();
    let item = inbox::list_items(ctx.conn(), &shop, SCHEDULED)?.into_iter().find(|(k, _)| k == id);
    let visible = item
        .as_ref()
        .is_some_and(|(_, v)| caller.branch_limit().is_none_or(|b| v["request"]["branch_id"].as_str() == Some(b)));
    if !visible {
        return Err(CoreError::not_found("broadcast", id));
    }
    match scheduled_state(ctx.conn(), &shop, id)? {
        Some("cancelled") => return Ok(()),
        Some("scheduled") => {}
        _ => return Err(CoreError::conflict("state", "scheduled", "the broadcast went already")),
    }
    let body = serde_json::json!({ "at": ctx.now(), "by": caller.user_id });
    inbox::put_item(ctx, caller, CANCELLED, id, &body)
}

/// Whether the customer of conversation `conversation` asked for no promotions (the relay checks
/// it again when it sends a broadcast's message: the tag may have come after the broadcast was
/// written, on another replica).
/// Every record of the customer counts: one merged into another, or a second record of the same
/// WhatsApp number (made by the relay before the first had synced to it).
pub fn opted_out(conn: &Connection, conversation: &str) -> Result<bool> {
    let Some((customer, wa_id)): Option<(String, String)> = conn
        .prepare_cached("SELECT customer_id, wa_id FROM conversations WHERE id = ?1")?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        return Ok(false);
    };
    let root = inbox::survivor(conn, customer)?;
    let mut people = inbox::customer_group(conn, &root)?;
    if !wa_id.is_empty() {
        let same: Vec<String> = conn
            .prepare_cached("SELECT id FROM customers WHERE wa_id IN (?1, ?2)")?
            .query_map(inbox::number_forms(&wa_id), |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        people.extend(same);
    }
    let mut tagged = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM customers c, json_each(c.tags) t WHERE c.id = ?1 AND t.value = ?2)",
    )?;
    for p in people {
        if tagged.query_row(params![p, OPT_OUT_TAG], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether message `id` is a broadcast's.
pub fn is_broadcast(id: &str) -> bool {
    id.starts_with("broadcast.")
}

/// The latest 50 broadcasts the caller may see (their branch's messages when they have one),
/// newest first, with how their messages went.
pub fn list(conn: &Connection, caller: &Caller) -> Result<Vec<BroadcastSummary>> {
    caller.require(Permission::ManageBots)?;
    let mut st = conn.prepare_cached(
        "SELECT id, status, payload, at FROM messages
         WHERE id >= 'broadcast.' AND id < 'broadcast/' AND shop_id = ?1 AND (?2 IS NULL OR branch_id = ?2)",
    )?;
    let rows = st.query_map(params![caller.shop_id, caller.branch_limit()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
    })?;
    let mut by_id: std::collections::HashMap<String, BroadcastSummary> = std::collections::HashMap::new();
    for row in rows {
        let (mid, status, payload, at) = row?;
        // broadcast.{id}.{customer}: the id has no dots.
        let Some(id) = mid.strip_prefix("broadcast.").and_then(|rest| rest.split('.').next()) else { continue };
        let b = by_id.entry(id.to_string()).or_insert_with(|| BroadcastSummary {
            id: id.to_string(),
            at,
            template: serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|p| p["template"].as_str().map(str::to_string))
                .unwrap_or_default(),
            ..Default::default()
        });
        b.at = b.at.min(at);
        b.total += 1;
        match MessageStatus::parse(&status) {
            Some(MessageStatus::Queued | MessageStatus::Sending) | None => b.queued += 1,
            Some(MessageStatus::Sent) => b.sent += 1,
            Some(MessageStatus::Delivered) => b.delivered += 1,
            Some(MessageStatus::Read) => b.read += 1,
            Some(MessageStatus::Failed) => b.failed += 1,
            Some(_) => b.sent += 1,
        }
    }
    for b in by_id.values_mut() {
        b.state = "sent".into();
    }
    // Scheduled ones: waiting, cancelled, or gone (with their messages, or why they could not).
    let outcome = |kind: &str| -> Result<std::collections::HashMap<String, serde_json::Value>> {
        Ok(inbox::list_items(conn, &caller.shop_id, kind)?.into_iter().collect())
    };
    let (went, cancelled) = (outcome(WENT)?, outcome(CANCELLED)?);
    for (id, v) in inbox::list_items(conn, &caller.shop_id, SCHEDULED)? {
        let r = &v["request"];
        if caller.branch_limit().is_some_and(|b| r["branch_id"].as_str() != Some(b)) {
            continue;
        }
        let at = r["send_at"].as_i64().unwrap_or_default();
        let b =
            by_id.entry(id.clone()).or_insert_with(|| BroadcastSummary { id: id.clone(), at, ..Default::default() });
        b.scheduled_at = Some(at);
        b.tag = r["tag"].as_str().unwrap_or_default().to_string();
        b.template = r["template"].as_str().unwrap_or_default().to_string();
        b.error = went.get(&id).and_then(|w| w["error"].as_str()).map(str::to_string);
        b.state = match (went.contains_key(&id), cancelled.contains_key(&id)) {
            _ if b.error.is_some() => "failed",
            (true, _) => "sent",
            // Cancelled too late (on a replica that did not know it had gone): it went.
            _ if b.total > 0 => "sent",
            (false, true) => "cancelled",
            (false, false) => "scheduled",
        }
        .into();
    }
    let mut out: Vec<BroadcastSummary> = by_id.into_values().collect();
    out.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
    out.truncate(50);
    Ok(out)
}

/// What a customer's WhatsApp message asks of the shop's promotions, when it is one of the usual
/// words alone ("BAJA", "STOP", "ALTA", "START"…): `(true, lang)` to stop them, `(false, lang)` to
/// have them again, with the language of the word (`es` or `en`). The relay answers it and tags
/// the customer [`OPT_OUT_TAG`] (or untags them) whoever has the conversation.
pub fn promotions_request(m: &inbox::Inbound) -> Option<(bool, &'static str)> {
    if m.kind != "text" || m.text.len() > 40 {
        return None;
    }
    let words: Vec<String> = m
        .text
        .split(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '¡' | '?' | '¿' | ',' | '"' | '\''))
        .filter(|w| !w.is_empty())
        .map(fold)
        .collect();
    let said = words.join(" ");
    let found = |list: &[&str]| list.contains(&said.as_str());
    if found(&["baja", "darme de baja", "dar de baja", "no mas promociones", "sin promociones", "cancelar suscripcion"])
    {
        Some((true, "es"))
    } else if found(&["stop", "unsubscribe", "stop promotions", "no more promotions"]) {
        Some((true, "en"))
    } else if found(&["alta", "darme de alta", "quiero promociones", "suscribirme"]) {
        Some((false, "es"))
    } else if found(&["start", "subscribe", "unstop"]) {
        Some((false, "en"))
    } else {
        None
    }
}

/// `w` in lower case without accents.
fn fold(w: &str) -> String {
    w.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' => 'a',
            'é' | 'è' | 'ë' => 'e',
            'í' | 'ì' | 'ï' => 'i',
            'ó' | 'ò' | 'ö' => 'o',
            'ú' | 'ù' | 'ü' => 'u',
            other => other,
        })
        .collect()
}

/// The bot's answer to a [`promotions_request`].
pub fn promotions_reply(stop: bool, lang: &str) -> SendMessage {
    let text = match (stop, lang) {
        (true, "en") => "Done: we won't send you promotions any more. To get them again, write START.",
        (true, _) => "Listo, ya no te enviaremos promociones. Si cambias de opinión, escribe ALTA.",
        (false, "en") => "Done! You'll get our promotions again. To stop them, write STOP.",
        (false, _) => "¡Listo! Volverás a recibir nuestras promociones. Para dejarlas, escribe BAJA.",
    };
    SendMessage { kind: Some("text".into()), text: text.into(), ..Default::default() }
}

/// Tags customer `customer` [`OPT_OUT_TAG`] (`stop`) or takes the tag away; whether it moved.
/// The customer's own words: written as they are, whatever else their record holds (a record
/// with the most tags staff may give still takes this one).
pub fn set_promotions(ctx: &mut WriteCtx<'_>, shop: &str, customer: &str, stop: bool) -> Result<bool> {
    let c = super::customers::get(ctx.conn(), shop, customer)?;
    let has = c.tags.iter().any(|t| t == OPT_OUT_TAG);
    if has == stop {
        return Ok(false);
    }
    let now = ctx.now();
    ctx.change(&DocId::customers(shop, customer), &[customer], |tx, _| {
        let o = doc::record(tx, customer)?.ok_or_else(|| CoreError::not_found("customer", customer))?;
        let set = match doc::get_obj(tx, &o, "tags") {
            Some(s) => s,
            None => tx.put_object(&o, "tags", automerge::ObjType::Map)?,
        };
        match stop {
            true => tx.put(&set, OPT_OUT_TAG, true)?,
            false => tx.delete(&set, OPT_OUT_TAG)?,
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    tracing::info!(customer, stop, "the customer's promotions choice");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> Option<(bool, &'static str)> {
        promotions_request(&inbox::Inbound { kind: "text".into(), text: text.into(), ..Default::default() })
    }

    #[test]
    fn the_usual_words_alone_stop_or_restart_promotions() {
        assert_eq!(said("BAJA"), Some((true, "es")));
        assert_eq!(said("  Darme de baja. "), Some((true, "es")));
        assert_eq!(said("No más promociones!"), Some((true, "es")));
        assert_eq!(said("STOP"), Some((true, "en")));
        assert_eq!(said("Alta"), Some((false, "es")));
        assert_eq!(said("start"), Some((false, "en")));
        // In a sentence they are something else: the bot or a person answers.
        assert_eq!(said("quiero dar de baja mi pedido"), None);
        assert_eq!(said("¿a qué hora abren? stop"), None);
        assert_eq!(said("hola"), None);
        let button = inbox::Inbound { kind: "interactive".into(), text: "BAJA".into(), ..Default::default() };
        assert_eq!(promotions_request(&button), None);
    }
}
