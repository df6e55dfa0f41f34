//! Processing stored webhook events in order: messages into conversations (and the bot's answer),
//! delivery reports onto the messages they concern. Each message and status is applied once
//! (keys in `seen`); an event that cannot be applied yet (the shop's replica is still syncing)
//! stays pending and is retried.

use std::{sync::Arc, time::Duration};

use dashoffice_core::{
    bot::{self, BotDef, BotInput},
    entities::{inbox, orders},
};
use dashoffice_domain::{
    api::{CreateOrder, OrderLineInput},
    inbox::{ConversationState, UpdateConversation},
};
use rusqlite::OptionalExtension;

use super::{
    WhatsApp,
    parse::{Event, parse},
};

/// How one event ended.
enum Outcome {
    Done,
    Ignored(String),
    /// Not yet possible (the shop's replica is syncing): retried without counting.
    Later(String),
    /// Failed: retried, and set aside as failed after [`MAX_ATTEMPTS`].
    Error(String),
}

/// Attempts before an event that keeps failing is set aside (so one bad event never blocks the
/// ones behind it).
const MAX_ATTEMPTS: i64 = 5;

/// Runs until the relay stops.
pub async fn run(wa: Arc<WhatsApp>) {
    loop {
        tokio::select! {
            _ = wa.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        loop {
            let st = wa.store.clone();
            let batch = match tokio::task::spawn_blocking(move || st.pending(256)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading pending webhook events");
                    break;
                }
                Err(_) => break,
            };
            if batch.is_empty() {
                break;
            }
            let mut stuck = false;
            for (id, body, attempts) in batch {
                let outcome = handle(&wa, &body).await;
                let r = match &outcome {
                    Outcome::Done => wa.store.finish(id, 1, None),
                    Outcome::Ignored(why) => {
                        tracing::warn!(event = id, reason = %why, "webhook event ignored");
                        metrics::counter!("dashoffice_whatsapp_events_ignored_total").increment(1);
                        wa.store.finish(id, 2, Some(why))
                    }
                    Outcome::Later(why) => {
                        tracing::debug!(event = id, reason = %why, "webhook event waits");
                        stuck = true;
                        Ok(())
                    }
                    Outcome::Error(why) if attempts + 1 >= MAX_ATTEMPTS => {
                        tracing::error!(event = id, reason = %why, attempts = attempts + 1, "webhook event failed; set aside");
                        metrics::counter!("dashoffice_whatsapp_events_failed_total").increment(1);
                        wa.store.finish(id, 3, Some(why))
                    }
                    Outcome::Error(why) => {
                        tracing::warn!(event = id, reason = %why, "webhook event failed; will retry");
                        stuck = true;
                        wa.store.finish(id, 0, Some(why))
                    }
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "recording a processed webhook event");
                }
                if stuck {
                    break;
                }
                metrics::counter!("dashoffice_whatsapp_events_processed_total").increment(1);
            }
            if stuck {
                break;
            }
        }
        orphans(&wa).await;
    }
}

async fn handle(wa: &Arc<WhatsApp>, body: &[u8]) -> Outcome {
    let events = match parse(body) {
        Ok(e) => e,
        Err(e) => return Outcome::Ignored(e.to_string()),
    };
    let mut ignored = Vec::new();
    for ev in events {
        let r = match ev {
            Event::Message(m) => message(wa, m).await,
            Event::Status { phone_number_id, wamid, status, error } => {
                status_event(wa, &phone_number_id, &wamid, status, error).await
            }
            Event::Other { field, .. } => Outcome::Ignored(format!("field {field} is not processed")),
        };
        match r {
            Outcome::Done => {}
            Outcome::Ignored(w) => ignored.push(w),
            other => return other,
        }
    }
    if ignored.is_empty() { Outcome::Done } else { Outcome::Ignored(ignored.join("; ")) }
}

async fn message(wa: &Arc<WhatsApp>, mut m: inbox::Inbound) -> Outcome {
    // The Cloud API gives whole seconds; the message was sent within that second, so take the
    // receipt time when it falls inside it (replies and questions then sort as they happened).
    let now = crate::hub::now_ms();
    if m.at <= now && now < m.at + 1000 {
        m.at = now;
    }
    let Ok(Some(number)) = wa.store.number(&m.phone_number_id) else {
        metrics::counter!("dashoffice_whatsapp_unknown_number_total").increment(1);
        return Outcome::Ignored(format!("unknown phone_number_id {:?}", m.phone_number_id));
    };
    if m.wamid.is_empty() || m.wa_id.is_empty() {
        return Outcome::Ignored("a message without id or sender".into());
    }
    let svc = match wa.service(&number.shop_id) {
        Ok(s) => s,
        Err(e) => return Outcome::Later(e.to_string()),
    };
    if !svc.ready() {
        return Outcome::Later(format!("the service replica of shop {} is still syncing", number.shop_id));
    }
    let Some(branch) = number.branch_id.clone().or_else(|| svc.default_branch()) else {
        return Outcome::Later("the shop has no branch yet".into());
    };
    let key = format!("m:{}", m.wamid);
    match wa.store.first_time(&key) {
        Ok(true) => {}
        Ok(false) => {
            metrics::counter!("dashoffice_whatsapp_duplicates_total").increment(1);
            return Outcome::Done;
        }
        Err(e) => return Outcome::Later(e.to_string()),
    }
    let shop = number.shop_id.clone();
    let t = std::time::Instant::now();
    let r = svc.replica.write(move |ctx| receive_and_answer(ctx, &shop, &branch, &m)).await;
    metrics::histogram!("dashoffice_whatsapp_process_seconds").record(t.elapsed().as_secs_f64());
    match r {
        Ok(()) => {
            metrics::counter!("dashoffice_whatsapp_messages_received_total").increment(1);
            Outcome::Done
        }
        Err(e) => {
            let _ = wa.store.unsee(&key);
            Outcome::Error(format!("storing an inbound message: {e}"))
        }
    }
}

/// Stores the message and, while a bot has the conversation, runs the bot, all in one write.
fn receive_and_answer(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    shop: &str,
    branch: &str,
    m: &inbox::Inbound,
) -> dashoffice_core::Result<()> {
    let r = inbox::receive(ctx, shop, branch, m)?;
    // A catalog order always becomes a draft order; the bot only speaks while it has the
    // conversation.
    let bot_has_it = r.state == ConversationState::Pending;
    if r.duplicate || !(bot_has_it || m.kind == "order") {
        return Ok(());
    }
    let bot = inbox::list_items(ctx.conn(), shop, "bot")?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value::<BotDef>(v).ok())
        .find(|b| b.active)
        .unwrap_or_else(BotDef::default_bot);
    let (node, misunderstood, name): (String, i64, String) = ctx
        .conn()
        .prepare_cached("SELECT bot_node, misunderstood, customer_name FROM conversations WHERE id = ?1")?
        .query_row([&r.conversation_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?
        .unwrap_or_default();
    let input = BotInput {
        kind: m.kind.clone(),
        text: m.text.clone(),
        payload: m.payload.clone(),
        first: r.first,
        at: m.at,
        customer_name: name,
        customer_id: r.customer_id.clone(),
        branch_id: branch.to_string(),
        node,
        misunderstood,
    };
    let d = bot::decide(ctx.conn(), shop, &bot, &input)?;
    let mut explain = d.explain.clone();
    if !d.draft_order.is_empty() {
        let caller = dashoffice_core::Caller { branch_id: Some(branch.to_string()), ..inbox::system_caller(shop) };
        // The order's seller: whoever has the conversation, else the shop's first owner.
        let seller: Option<String> = ctx
            .conn()
            .prepare_cached(
                "SELECT coalesce((SELECT assignee_id FROM conversations WHERE id = ?1),
                   (SELECT id FROM staff WHERE shop_id = ?2 AND role = 'owner' AND archived = 0 ORDER BY created_at LIMIT 1))",
            )?
            .query_row([&r.conversation_id, shop], |row| row.get(0))
            .optional()?
            .flatten();
        let lines = d
            .draft_order
            .iter()
            .map(|(p, q)| OrderLineInput { product_id: p.clone(), quantity: *q, unit_price: None })
            .collect();
        let order = orders::create(
            ctx,
            &caller,
            Some(branch),
            CreateOrder {
                customer_id: r.customer_id.clone(),
                branch_id: Some(branch.to_string()),
                seller_id: seller,
                lines,
                notes: format!("WhatsApp order {}", m.wamid),
            },
        )?;
        explain["draft_order"] = serde_json::json!(order.number);
        if !bot_has_it {
            let note = dashoffice_domain::inbox::SendMessage {
                kind: Some("note".into()),
                text: format!("Pedido de WhatsApp registrado como borrador: {}", order.number),
                ..Default::default()
            };
            inbox::send(ctx, &inbox::system_caller(shop), &r.conversation_id, note, inbox::BOT_SENDER)?;
        }
    }
    if !bot_has_it {
        return Ok(());
    }
    for reply in &d.replies {
        let mut reply = reply.clone();
        reply.context_wamid = Some(m.wamid.clone());
        inbox::bot_reply(ctx, shop, &r.conversation_id, &reply, &explain)?;
    }
    inbox::set_bot_state(ctx, shop, &r.conversation_id, &d.node, d.misunderstood, d.handoff)?;
    if d.handoff {
        inbox::assign_round_robin(ctx, shop, &r.conversation_id)?;
    } else if d.end {
        inbox::update(
            ctx,
            &inbox::system_caller(shop),
            &r.conversation_id,
            UpdateConversation { state: Some("resolved".into()), ..Default::default() },
        )?;
    }
    Ok(())
}

async fn status_event(
    wa: &Arc<WhatsApp>,
    pnid: &str,
    wamid: &str,
    status: dashoffice_domain::inbox::MessageStatus,
    error: Option<String>,
) -> Outcome {
    let Ok(Some(number)) = wa.store.number(pnid) else {
        return Outcome::Ignored(format!("unknown phone_number_id {pnid:?}"));
    };
    let svc = match wa.service(&number.shop_id) {
        Ok(s) => s,
        Err(e) => return Outcome::Later(e.to_string()),
    };
    if !svc.ready() {
        return Outcome::Later("the service replica is still syncing".into());
    }
    let key = format!("s:{wamid}:{}", status.as_str());
    match wa.store.first_time(&key) {
        Ok(true) => {}
        Ok(false) => return Outcome::Done,
        Err(e) => return Outcome::Later(e.to_string()),
    }
    let (w, e) = (wamid.to_string(), error.clone());
    match svc.replica.write(move |ctx| inbox::apply_status(ctx, &w, status, e.as_deref())).await {
        Ok(true) => {
            metrics::counter!("dashoffice_whatsapp_statuses_total", "status" => status.as_str()).increment(1);
            Outcome::Done
        }
        Ok(false) => {
            // The send's own record may not be written yet: keep the report and try again.
            let _ = wa.store.add_orphan(wamid, status.as_str(), error.as_deref(), &number.shop_id);
            Outcome::Done
        }
        Err(err) => {
            let _ = wa.store.unsee(&key);
            Outcome::Error(format!("applying a delivery report: {err}"))
        }
    }
}

/// Applies delivery reports that arrived before their message was known; drops them after a day.
async fn orphans(wa: &Arc<WhatsApp>) {
    let Ok(list) = wa.store.orphans() else { return };
    let now = crate::hub::now_ms();
    for (wamid, status, error, shop, at) in list {
        let Some(st) = dashoffice_domain::inbox::MessageStatus::parse(&status) else {
            let _ = wa.store.drop_orphan(&wamid, &status);
            continue;
        };
        let Ok(svc) = wa.service(&shop) else { continue };
        let (w, e) = (wamid.clone(), error.clone());
        match svc.replica.write(move |ctx| inbox::apply_status(ctx, &w, st, e.as_deref())).await {
            Ok(true) => {
                let _ = wa.store.drop_orphan(&wamid, &status);
            }
            _ if now - at > 24 * 3600 * 1000 => {
                tracing::warn!(wamid = %wamid, status = %status, "dropping a delivery report for an unknown message");
                let _ = wa.store.drop_orphan(&wamid, &status);
            }
            _ => {}
        }
    }
}
