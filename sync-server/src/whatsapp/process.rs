//! Processing stored webhook events in order: messages into conversations (and the bot's answer),
//! delivery reports onto the messages they concern. Each message and status is applied once
//! (keys in `seen`); an event that cannot be applied yet (the shop's replica is still syncing)
//! stays pending and is retried.

use std::{sync::Arc, time::Duration};

use dashoffice_core::{
    bot::{self, BotDef, BotInput},
    entities::{broadcasts, inbox, orders, satisfaction, tickets},
};
use dashoffice_domain::{
    api::{AddTicketComment, CreateOrder, CreateTicket, OrderLineInput, UpdateTicket},
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

/// Runs until the relay stops. Batches are applied one after the other, in the order the events
/// came; while the shop's writer applies one, the next is read and planned and the one before is
/// recorded as done, so the writer does not wait for either.
pub async fn run(wa: Arc<WhatsApp>) {
    loop {
        tokio::select! {
            _ = wa.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let mut next = next_batch(wa.clone(), 0).await;
        if next.is_some() {
            wa.busy.send_replace(true);
        }
        let mut recording: Option<tokio::task::JoinHandle<()>> = None;
        while let Some((planned, last)) = next.take() {
            planned.report();
            let Planned { ready, mut done, mut stuck, .. } = planned;
            // Read ahead only past a batch that runs to its end: after an event that must wait,
            // nothing behind it may be applied.
            let ahead = (!stuck).then(|| tokio::spawn(next_batch(wa.clone(), last)));
            if !apply_batch(&wa, &ready).await {
                // Something in the batch failed: one event at a time, to set the bad one aside.
                stuck |= one_by_one(&wa, &ready, &mut done).await;
            } else {
                for (id, _, _, _, _, ignored) in &ready {
                    if ignored.is_empty() {
                        done.push((*id, 1, None));
                    } else {
                        done.push((*id, 2, Some(ignored.join("; "))));
                    }
                }
                metrics::counter!("dashoffice_whatsapp_events_processed_total").increment(ready.len() as u64);
            }
            // One batch's outcome is recorded at a time, in order.
            if let Some(r) = recording.take() {
                let _ = r.await;
            }
            let st = wa.store.clone();
            recording = Some(tokio::task::spawn_blocking(move || {
                if let Err(e) = st.finish_many(&done) {
                    tracing::error!(error = %e, "recording processed webhook events");
                }
            }));
            match ahead {
                // The batch read ahead is applied only when this one went through whole; else its
                // events stay pending and are read again.
                Some(a) if !stuck => next = a.await.ok().flatten(),
                Some(a) => a.abort(),
                None => {}
            }
        }
        if let Some(r) = recording.take() {
            let _ = r.await;
        }
        wa.busy.send_replace(false);
        orphans(&wa).await;
    }
}

/// Events applied in one write at most. Under a burst, each commit rewrites every index page
/// its messages touch (random keys: message ids, wamids, conversations), nearly all of them at
/// a few hundred messages: the bots benchmark wrote 135 MB for 5,000 messages with 256 per batch,
/// 98 MB with 1,024, and ran 11 % faster. When messages come one by one, a batch is one message.
const BATCH: usize = 1024;

/// And no more events than this many bytes of webhook bodies (a body may be up to 3 MB).
const BATCH_BYTES: usize = 16 << 20;

/// The pending events after event `after`, read and planned on the blocking pool (a batch of up
/// to [`BATCH`] events must not hold up a runtime thread that is answering webhooks meanwhile),
/// with the id of the last one. None when there are none (or they cannot be read).
async fn next_batch(wa: Arc<WhatsApp>, after: i64) -> Option<(Planned, i64)> {
    tokio::task::spawn_blocking(move || {
        let batch = match wa.store.pending_after(after, BATCH, BATCH_BYTES) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading pending webhook events");
                return None;
            }
        };
        let last = batch.last()?.0;
        Some((plan_batch(&wa, batch), last))
    })
    .await
    .ok()
    .flatten()
}

/// Applies the events of a batch that failed as a whole one at a time, so the bad one is set
/// aside (after [`MAX_ATTEMPTS`]) or retried later. True when the batch must stop there.
async fn one_by_one(wa: &Arc<WhatsApp>, ready: &[Ready], done: &mut Vec<(i64, i64, Option<String>)>) -> bool {
    for (id, attempts, received_at, body, _, _) in ready {
        let (id, attempts) = (*id, *attempts);
        match handle(wa, body, *received_at).await {
            Outcome::Done => done.push((id, 1, None)),
            Outcome::Ignored(why) => done.push((id, 2, Some(why))),
            Outcome::Later(_) => return true,
            Outcome::Error(why) if attempts + 1 >= MAX_ATTEMPTS => {
                tracing::error!(event = id, reason = %why, attempts = attempts + 1, "webhook event failed; set aside");
                metrics::counter!("dashoffice_whatsapp_events_failed_total").increment(1);
                done.push((id, 3, Some(why)));
            }
            Outcome::Error(why) => {
                tracing::warn!(event = id, reason = %why, "webhook event failed; will retry");
                done.push((id, 0, Some(why)));
                return true;
            }
        }
    }
    false
}

async fn handle(wa: &Arc<WhatsApp>, body: &[u8], received_at: i64) -> Outcome {
    let events = match parse(body) {
        Ok(e) => e,
        Err(e) => return Outcome::Ignored(e.to_string()),
    };
    let mut ignored = Vec::new();
    for ev in events {
        let r = match ev {
            Event::Message(m) => message(wa, m, received_at).await,
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

async fn message(wa: &Arc<WhatsApp>, mut m: inbox::Inbound, received_at: i64) -> Outcome {
    at_receipt(&mut m, received_at);
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
    let shop = number.shop_id.clone();
    let t = std::time::Instant::now();
    let media_id = m.payload.get("media_id").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
    let message_id = inbox::inbound_message_id(&m.wamid);
    let llm = wa.llm.as_ref().is_some_and(|l| l.available());
    // A read (and maybe the search index): on the blocking pool, not on a runtime thread.
    let analysis = {
        let (svc, shop, m) = (svc.clone(), shop.clone(), m.clone());
        tokio::task::spawn_blocking(move || analysed(&svc, &shop, &m)).await.ok().flatten()
    };
    let r = svc
        .replica
        .write(move |ctx| receive_and_answer(ctx, &shop, &branch, &m, analysis.as_deref(), llm, &mut None))
        .await;
    if r.is_ok()
        && let Some(media) = media_id
    {
        tokio::spawn(fetch_media(wa.clone(), svc.clone(), number.clone(), message_id, media));
    }
    let r = match r {
        Ok(Some(ask)) => {
            // The question is stored; the answer follows without holding up the queue.
            let (wa, svc, shop) = (wa.clone(), svc.clone(), number.shop_id.clone());
            tokio::spawn(async move {
                if let Err(e) = ask_llm(&wa, &svc, shop, ask).await {
                    tracing::error!(error = %e, "writing the bot's answer");
                }
            });
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    metrics::histogram!("dashoffice_whatsapp_process_seconds").record(t.elapsed().as_secs_f64());
    match r {
        Ok(()) => {
            metrics::counter!("dashoffice_whatsapp_messages_received_total").increment(1);
            Outcome::Done
        }
        Err(e) => Outcome::Error(format!("storing an inbound message: {e}")),
    }
}

/// A question the offline bot did not understand, to ask the LLM provider before answering.
pub(crate) struct Ask {
    conversation: String,
    question: String,
    language: String,
    context: String,
    shop_name: String,
    wamid: String,
    /// The offline decision, used when the provider does not answer.
    decision: bot::Decision,
}

/// Stores the message and, while a bot has the conversation, runs the bot, all in one write; the
/// usual answer (no order, no LLM) is written with the message (see [`inbox::record_arrival`]).
fn receive_and_answer(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    shop: &str,
    branch: &str,
    m: &inbox::Inbound,
    analysis: Option<&bot::Analysis>,
    llm: bool,
    bot: &mut Option<BotDef>,
) -> dashoffice_core::Result<Option<Ask>> {
    let a = inbox::arrive(ctx, shop, branch, m)?;
    let r = a.received.clone();
    // A catalog order always becomes a draft order; the bot only speaks while it has the
    // conversation.
    let bot_has_it = r.state == ConversationState::Pending;
    if r.duplicate {
        return Ok(None);
    }
    if let Some(rating) = a.rating {
        // A tap on the satisfaction survey: kept on the conversation and thanked for, whoever has
        // the conversation; the bot's place in it does not move.
        let lang = satisfaction::language_of(m);
        let mut thanks = satisfaction::thanks(rating, lang);
        thanks.context_wamid = Some(m.wamid.clone());
        let explain = serde_json::json!({
            "trigger": { "kind": "rating", "value": rating.as_str() }, "node": "satisfaction_survey",
            "survey": "rating", "rating": rating.as_str(), "language": lang,
        });
        let answer = inbox::BotAnswer {
            replies: std::slice::from_ref(&thanks),
            explain: &explain,
            node: &a.bot_node,
            misunderstood: a.misunderstood,
            handoff: false,
        };
        inbox::record_arrival(ctx, shop, &a, m, Some(answer))?;
        if r.state == ConversationState::Open {
            // A bad rating went back to a person: whoever had it, else the next seller.
            inbox::assign_round_robin(ctx, shop, &r.conversation_id)?;
        }
        return Ok(None);
    }
    if let Some((stop, lang)) = broadcasts::promotions_request(m) {
        // "BAJA" / "STOP" (or "ALTA" / "START"): answered and kept on the customer whoever has
        // the conversation; the bot's place in it does not move.
        let mut reply = broadcasts::promotions_reply(stop, lang);
        reply.context_wamid = Some(m.wamid.clone());
        let explain = serde_json::json!({
            "trigger": { "kind": "promotions", "stop": stop }, "node": "promotions", "language": lang,
        });
        let answer = inbox::BotAnswer {
            replies: std::slice::from_ref(&reply),
            explain: &explain,
            node: &a.bot_node,
            misunderstood: a.misunderstood,
            handoff: false,
        };
        inbox::record_arrival(ctx, shop, &a, m, Some(answer))?;
        broadcasts::set_promotions(ctx, shop, &r.customer_id, stop)?;
        return Ok(None);
    }
    if !(bot_has_it || m.kind == "order") {
        inbox::record_arrival(ctx, shop, &a, m, None)?;
        return Ok(None);
    }
    if bot.is_none() {
        *bot = Some(active_bot(ctx.conn(), shop)?);
    }
    let bot = bot.as_ref().ok_or_else(|| dashoffice_core::CoreError::Storage("bot definition".into()))?;
    let input = BotInput {
        kind: m.kind.clone(),
        text: m.text.clone(),
        payload: m.payload.clone(),
        first: r.first,
        at: m.at,
        customer_name: a.customer_name.clone(),
        customer_id: r.customer_id.clone(),
        branch_id: branch.to_string(),
        node: a.bot_node.clone(),
        misunderstood: a.misunderstood,
    };
    // The products a message names come from the search index when it holds the catalog.
    // Without an analysis (no text, or it could not be read) products are looked up without the
    // search index.
    let said = analysis.cloned().unwrap_or_else(|| bot::analyse_in(ctx.conn(), shop, &m.text, &|_| None));
    let mut d = bot::decide_analysed(ctx.conn(), shop, bot, &input, said)?;
    let mut explain = d.explain.clone();
    let fallback = explain["trigger"]["kind"] == "fallback" && !d.handoff;
    let to_llm = bot_has_it && llm && fallback && m.kind == "text";
    if d.draft_order.is_empty() && d.ticket.is_none() && bot_has_it && !to_llm {
        // The common case: the message and the bot's answer in one change per document.
        let mut replies = d.replies.clone();
        for reply in &mut replies {
            reply.context_wamid = Some(m.wamid.clone());
        }
        let answer = inbox::BotAnswer {
            replies: &replies,
            explain: &explain,
            node: &d.node,
            misunderstood: d.misunderstood,
            handoff: d.handoff,
        };
        inbox::record_arrival(ctx, shop, &a, m, Some(answer))?;
        after_answer(ctx, shop, &r.conversation_id, &d)?;
        return Ok(None);
    }
    inbox::record_arrival(ctx, shop, &a, m, None)?;
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
        let created = orders::create(
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
        );
        let note = match created {
            Ok(order) => {
                explain["draft_order"] = serde_json::json!(order.number);
                (!bot_has_it).then(|| format!("Pedido de WhatsApp registrado como borrador: {}", order.number))
            }
            // The order's rules said no (products in two currencies, a seller no longer active…):
            // the customer's message stays, and a person takes the order from here. A rule is
            // checked before anything is written, so nothing of the order is left behind.
            Err(e) if e.is_rule() => {
                tracing::warn!(shop, conversation = %r.conversation_id, error = %e, "a WhatsApp order could not be saved as a draft");
                explain["draft_order_error"] = serde_json::json!(e.to_string());
                if bot_has_it {
                    d.replies = vec![in_language(
                        &explain,
                        "No pude registrar tu pedido; un asesor te ayudará en breve.",
                        "I could not register your order; a person will help you shortly.",
                    )];
                    d.handoff = true;
                }
                Some(format!(
                    "El pedido de WhatsApp no se pudo registrar como borrador ({e}); revísalo con el cliente."
                ))
            }
            Err(e) => return Err(e),
        };
        if let Some(text) = note {
            let note = dashoffice_domain::inbox::SendMessage { kind: Some("note".into()), text, ..Default::default() };
            inbox::send(ctx, &inbox::system_caller(shop), &r.conversation_id, note, inbox::BOT_SENDER)?;
        }
    }
    if !bot_has_it {
        return Ok(None);
    }
    let opened = match d.ticket.take() {
        Some(t) => open_ticket(ctx, shop, branch, &r.conversation_id, &r.customer_id, t, &mut d, &mut explain)?,
        None => None,
    };
    if to_llm {
        let shop_name = dashoffice_core::entities::org::get_shop(ctx.conn(), shop).map(|s| s.name).unwrap_or_default();
        let context = catalog_facts(ctx.conn(), branch, &explain)?;
        let mut decision = d;
        decision.explain = explain;
        return Ok(Some(Ask {
            conversation: r.conversation_id,
            question: m.text.clone(),
            language: decision.explain["language"].as_str().unwrap_or("es").to_string(),
            context,
            shop_name,
            wamid: m.wamid.clone(),
            decision,
        }));
    }
    apply(ctx, shop, &r.conversation_id, &d, &explain, &m.wamid)?;
    if let Some(ticket) = opened {
        // Whoever the conversation went to handles the ticket too.
        let assignee: Option<String> = ctx
            .conn()
            .prepare_cached("SELECT assignee_id FROM conversations WHERE id = ?1")?
            .query_row([&r.conversation_id], |row| row.get(0))
            .optional()?
            .flatten()
            .filter(|a: &String| !a.is_empty());
        if let Some(a) = assignee {
            let change = UpdateTicket { assignee_id: Some(a), ..Default::default() };
            tickets::update(ctx, &inbox::system_caller(shop), &ticket, change)?;
        }
    }
    Ok(None)
}

/// Opens the support ticket a complaint asked for (or, when the conversation already has an
/// active one, adds the message to it) and puts its number into the bot's replies. Returns the id
/// of a ticket it opened. When the ticket's rules say no, the customer is told a person will help
/// and the conversation is handed off all the same.
#[allow(clippy::too_many_arguments)]
fn open_ticket(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    shop: &str,
    branch: &str,
    conversation: &str,
    customer: &str,
    t: bot::TicketRequest,
    d: &mut bot::Decision,
    explain: &mut serde_json::Value,
) -> dashoffice_core::Result<Option<String>> {
    // Shop-wide, as tickets are: the order named may be of another branch.
    let caller = inbox::system_caller(shop);
    let (number, opened) = match tickets::active_for_conversation(ctx.conn(), conversation)? {
        Some((id, number)) => {
            let more = AddTicketComment { body: t.description.clone(), notify_customer: false };
            match tickets::comment(ctx, &caller, &id, more) {
                Ok(_) => (Ok(number), None),
                Err(e) if e.is_rule() => (Err(e), None),
                Err(e) => return Err(e),
            }
        }
        None => {
            let input = CreateTicket {
                subject: t.subject,
                description: t.description,
                priority: Some(t.priority),
                customer_id: Some(customer.to_string()),
                order_id: t.order_id,
                conversation_id: Some(conversation.to_string()),
                assignee_id: None,
            };
            match tickets::create(ctx, &caller, Some(branch), input) {
                Ok(v) => (Ok(v.number), Some(v.id)),
                Err(e) if e.is_rule() => (Err(e), None),
                Err(e) => return Err(e),
            }
        }
    };
    match number {
        Ok(number) => {
            for reply in &mut d.replies {
                reply.text = reply.text.replace(bot::TICKET_PLACEHOLDER, &number);
            }
            explain["ticket"] = serde_json::json!(number);
        }
        Err(e) => {
            tracing::warn!(shop, conversation, error = %e, "a WhatsApp complaint could not be made a ticket");
            explain["ticket_error"] = serde_json::json!(e.to_string());
            d.replies = vec![in_language(
                explain,
                "Lamento lo ocurrido; una persona de nuestro equipo te ayudará en breve.",
                "I am sorry about that; a person on our team will help you shortly.",
            )];
        }
    }
    Ok(opened)
}

/// A text reply in the language the bot found in the customer's message (`explain`).
fn in_language(explain: &serde_json::Value, es: &str, en: &str) -> dashoffice_domain::inbox::SendMessage {
    let text = if explain["language"] == "en" { en } else { es };
    dashoffice_domain::inbox::SendMessage { kind: Some("text".into()), text: text.into(), ..Default::default() }
}

/// The shop's active bot, or the built-in one.
fn active_bot(conn: &rusqlite::Connection, shop: &str) -> dashoffice_core::Result<BotDef> {
    Ok(inbox::list_items(conn, shop, "bot")?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value::<BotDef>(v).ok())
        .find(|b| b.active)
        .unwrap_or_else(BotDef::default_bot))
}

/// Writes a bot decision: its replies, its place in the conversation, a handoff or the end.
fn apply(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    d: &bot::Decision,
    explain: &serde_json::Value,
    wamid: &str,
) -> dashoffice_core::Result<()> {
    for reply in &d.replies {
        let mut reply = reply.clone();
        reply.context_wamid = Some(wamid.to_string());
        inbox::bot_reply(ctx, shop, conversation, &reply, explain)?;
    }
    inbox::set_bot_state(ctx, shop, conversation, &d.node, d.misunderstood, d.handoff)?;
    after_answer(ctx, shop, conversation, d)
}

/// What follows a bot's answer: a handoff assigns a seller, the end resolves the conversation.
fn after_answer(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    d: &bot::Decision,
) -> dashoffice_core::Result<()> {
    if d.handoff {
        inbox::assign_round_robin(ctx, shop, conversation)?;
    } else if d.end {
        inbox::update(
            ctx,
            &inbox::system_caller(shop),
            conversation,
            UpdateConversation { state: Some("resolved".into()), ..Default::default() },
        )?;
    }
    Ok(())
}

/// What the catalog says about the products a message seems to name (price and this branch's
/// stock), for grounding the LLM.
fn catalog_facts(
    conn: &rusqlite::Connection,
    branch: &str,
    explain: &serde_json::Value,
) -> dashoffice_core::Result<String> {
    let mut lines = Vec::new();
    for p in explain["products"].as_array().map(Vec::as_slice).unwrap_or_default().iter().take(5) {
        let Some(id) = p["id"].as_str() else { continue };
        let row: Option<(String, String, String, String)> = conn
            .prepare_cached("SELECT name, sku, price, currency FROM products WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        if let Some((name, sku, price, currency)) = row {
            let stock = dashoffice_core::entities::stock::get(conn, id, branch).map(|s| s.on_hand).unwrap_or(0);
            lines.push(format!("- {name} (SKU {sku}): {price} {currency}; {stock} in stock"));
        }
    }
    if lines.is_empty() {
        lines.push("- (no product of the catalog matches this message)".into());
    }
    Ok(lines.join("\n"))
}

/// Asks the LLM provider, then writes its answer, or the offline decision when it does not answer.
async fn ask_llm(
    wa: &Arc<WhatsApp>,
    svc: &Arc<super::service::ShopService>,
    shop: String,
    ask: Ask,
) -> dashoffice_core::Result<()> {
    let Some(llm) = wa.llm.as_ref() else { return Ok(()) };
    let answer = llm.answer(&ask.shop_name, &ask.language, &ask.context, &ask.question).await;
    let describe = llm.describe();
    svc.replica
        .write(move |ctx| {
            let mut explain = ask.decision.explain.clone();
            match answer {
                Some((text, source)) => {
                    explain["trigger"] =
                        serde_json::json!({ "kind": "llm", "cached": source == super::llm::Source::Cached });
                    explain["llm"] = describe;
                    let d = bot::Decision {
                        replies: vec![dashoffice_domain::inbox::SendMessage {
                            kind: Some("text".into()),
                            text,
                            ..Default::default()
                        }],
                        node: ask.decision.node.clone(),
                        misunderstood: 0,
                        ..Default::default()
                    };
                    apply(ctx, &shop, &ask.conversation, &d, &explain, &ask.wamid)
                }
                None => {
                    explain["llm"] = serde_json::json!("unavailable");
                    apply(ctx, &shop, &ask.conversation, &ask.decision, &explain, &ask.wamid)
                }
            }
        })
        .await
}

/// Applies one delivery report (with its reply's waiting mark, if any); false when no message
/// has that wamid yet.
async fn report(
    svc: &super::service::ShopService,
    wamid: &str,
    status: dashoffice_domain::inbox::MessageStatus,
    error: Option<String>,
) -> dashoffice_core::Result<bool> {
    let marks = svc.waiting_marks([wamid]);
    let w = wamid.to_string();
    svc.replica
        .write(move |ctx| {
            mark_waiting(ctx, &marks)?;
            inbox::apply_status(ctx, &w, status, error.as_deref())
        })
        .await
}

/// Marks sent, in the write of the delivery reports that name them, the replies whose marks are
/// still waiting (see `ShopService::waiting_marks`), so the reports find them. Marking one again
/// later changes nothing.
fn mark_waiting(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    marks: &[(dashoffice_core::doc::DocId, String, String)],
) -> dashoffice_core::Result<()> {
    let mut by_doc: std::collections::BTreeMap<&dashoffice_core::doc::DocId, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (doc, id, wamid) in marks {
        by_doc.entry(doc).or_default().push((id.clone(), wamid.clone()));
    }
    for (doc, sent) in by_doc {
        metrics::counter!("dashoffice_whatsapp_marked_by_report_total").increment(sent.len() as u64);
        match inbox::mark_sent(ctx, doc, &sent) {
            // A reply no longer in its document: its report waits, as for an unknown message.
            Ok(()) | Err(dashoffice_core::CoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
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
    match report(&svc, wamid, status, error.clone()).await {
        Ok(true) => {
            metrics::counter!("dashoffice_whatsapp_statuses_total", "status" => status.as_str()).increment(1);
            Outcome::Done
        }
        Ok(false) => {
            // The send's own record may not be written yet: keep the report and try again.
            metrics::counter!("dashoffice_whatsapp_reports_kept_total").increment(1);
            let _ = wa.store.add_orphan(wamid, status.as_str(), error.as_deref(), &number.shop_id);
            Outcome::Done
        }
        Err(err) => Outcome::Error(format!("applying a delivery report: {err}")),
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
        match report(&svc, &wamid, st, error.clone()).await {
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

/// Downloads a message's media through the Graph API and stores it as an attachment document
/// that syncs to the branch (retried with backoff; Meta keeps media for 30 days).
async fn fetch_media(
    wa: Arc<WhatsApp>,
    svc: Arc<super::service::ShopService>,
    number: super::store::Number,
    message_id: String,
    media_id: String,
) {
    use backon::Retryable;
    let get = || async { wa.graph.media(&number, &media_id).await };
    let got = get
        .retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_times(6)
                .with_jitter(),
        )
        .when(|e| matches!(e, super::graph::SendError::Retry(_)))
        .await;
    match got {
        Ok((bytes, mime)) => {
            let size = bytes.len();
            let r = svc.replica.write(move |ctx| inbox::attach(ctx, &message_id, &mime, &bytes)).await;
            match r {
                Ok(sha) => {
                    metrics::counter!("dashoffice_whatsapp_media_downloaded_total").increment(1);
                    tracing::info!(media = %media_id, sha256 = %sha, bytes = size, "media stored");
                }
                Err(e) => tracing::error!(media = %media_id, error = %e, "storing media failed"),
            }
        }
        Err(e) => {
            metrics::counter!("dashoffice_whatsapp_media_failed_total").increment(1);
            tracing::warn!(media = %media_id, error = ?e, "downloading media failed");
        }
    }
}

/// An event ready to apply: id, attempts so far, raw body, its items, what of it was ignored.
/// A planned event: id, attempts so far, when the webhook was received, body, items, why some
/// parts were ignored.
type Ready = (i64, i64, i64, Vec<u8>, Vec<Item>, Vec<String>);

/// The Cloud API gives whole seconds; the message was sent within that second, so take the time
/// the relay received it when that falls inside it (replies and questions then sort as they
/// happened, even when a busy relay processes the message after its second has ended).
fn at_receipt(m: &mut inbox::Inbound, received_at: i64) {
    if m.at <= received_at && received_at < m.at + 1000 {
        m.at = received_at;
    }
}

/// What one event asks for, once its numbers are known and their shops are ready.
enum Plan {
    Items(Vec<Item>, Vec<String>),
    Outcome(Outcome),
}

/// One message or delivery report to apply to a shop's replica.
struct Item {
    svc: Arc<super::service::ShopService>,
    number: super::store::Number,
    kind: ItemKind,
}

enum ItemKind {
    /// `analysis`: what the text says, worked out while planning (see [`analysed`]).
    Message {
        branch: String,
        m: inbox::Inbound,
        analysis: Option<Box<bot::Analysis>>,
    },
    Status {
        wamid: String,
        status: dashoffice_domain::inbox::MessageStatus,
        error: Option<String>,
    },
}

/// A batch of stored events, planned: what to apply, what ended already, and whether an event
/// must wait (the batch stops there). What it ignored is counted and logged by [`Self::report`]
/// when the batch is applied (a batch read ahead may be dropped and read again).
struct Planned {
    ready: Vec<Ready>,
    done: Vec<(i64, i64, Option<String>)>,
    stuck: bool,
    /// Events ignored whole, and the first of them with its reason.
    ignored: u64,
    first_ignored: Option<(i64, String)>,
    /// Messages and statuses for a phone number id no shop has.
    unknown_numbers: u64,
}

impl Planned {
    fn report(&self) {
        // One line per event would flood the log when Meta sends a number nobody connected; the
        // reason of each is kept with the event in whatsapp.db.
        if let Some((id, why)) = &self.first_ignored {
            tracing::warn!(event = id, reason = %why, "webhook event ignored");
        }
        if self.ignored > 1 {
            tracing::warn!(
                count = self.ignored,
                "webhook events ignored in this batch (reasons in whatsapp.db, table events)"
            );
        }
        metrics::counter!("dashoffice_whatsapp_events_ignored_total").increment(self.ignored);
        metrics::counter!("dashoffice_whatsapp_unknown_number_total").increment(self.unknown_numbers);
    }
}

fn plan_batch(wa: &Arc<WhatsApp>, batch: Vec<super::store::StoredEvent>) -> Planned {
    let mut out = Planned {
        ready: Vec::new(),
        done: Vec::new(),
        stuck: false,
        ignored: 0,
        first_ignored: None,
        unknown_numbers: 0,
    };
    let numbers = numbers_by_id(wa);
    for (id, body, attempts, received_at) in batch {
        match plan(wa, &numbers, &body, received_at, &mut out.unknown_numbers) {
            Plan::Items(items, why) => out.ready.push((id, attempts, received_at, body, items, why)),
            Plan::Outcome(Outcome::Later(why)) => {
                tracing::debug!(event = id, reason = %why, "webhook event waits");
                out.stuck = true;
                break;
            }
            Plan::Outcome(Outcome::Ignored(why)) => {
                if out.first_ignored.is_none() {
                    out.first_ignored = Some((id, why.clone()));
                }
                out.ignored += 1;
                out.done.push((id, 2, Some(why)));
            }
            Plan::Outcome(_) => out.done.push((id, 1, None)),
        }
    }
    out
}

fn numbers_by_id(wa: &Arc<WhatsApp>) -> std::collections::HashMap<String, super::store::Number> {
    wa.store.numbers().unwrap_or_default().into_iter().map(|n| (n.phone_number_id.clone(), n)).collect()
}

/// Plans one stored event; `unknown_numbers` counts its parts for a number no shop has.
fn plan(
    wa: &Arc<WhatsApp>,
    numbers: &std::collections::HashMap<String, super::store::Number>,
    body: &[u8],
    received_at: i64,
    unknown_numbers: &mut u64,
) -> Plan {
    let events = match parse(body) {
        Ok(e) => e,
        Err(e) => return Plan::Outcome(Outcome::Ignored(e.to_string())),
    };
    let mut items = Vec::new();
    let mut ignored = Vec::new();
    for ev in events {
        let (pnid, kind) = match ev {
            Event::Message(mut m) => {
                if m.wamid.is_empty() || m.wa_id.is_empty() {
                    ignored.push("a message without id or sender".to_string());
                    continue;
                }
                at_receipt(&mut m, received_at);
                (m.phone_number_id.clone(), ItemKind::Message { branch: String::new(), m, analysis: None })
            }
            Event::Status { phone_number_id, wamid, status, error } => {
                (phone_number_id, ItemKind::Status { wamid, status, error })
            }
            Event::Other { field, .. } => {
                ignored.push(format!("field {field} is not processed"));
                continue;
            }
        };
        let Some(number) = numbers.get(&pnid).cloned() else {
            *unknown_numbers += 1;
            ignored.push(format!("unknown phone_number_id {pnid:?}"));
            continue;
        };
        let svc = match wa.service(&number.shop_id) {
            Ok(s) => s,
            Err(e) => return Plan::Outcome(Outcome::Later(e.to_string())),
        };
        if !svc.ready() {
            return Plan::Outcome(Outcome::Later(format!(
                "the service replica of shop {} is still syncing",
                number.shop_id
            )));
        }
        let kind = match kind {
            ItemKind::Message { m, .. } => match number.branch_id.clone().or_else(|| svc.default_branch()) {
                Some(branch) => ItemKind::Message { branch, analysis: analysed(&svc, &number.shop_id, &m), m },
                None => return Plan::Outcome(Outcome::Later("the shop has no branch yet".into())),
            },
            k => k,
        };
        items.push(Item { svc, number, kind });
    }
    if items.is_empty() && !ignored.is_empty() {
        return Plan::Outcome(Outcome::Ignored(ignored.join("; ")));
    }
    Plan::Items(items, ignored)
}

/// What a message's text says (intent, products named, quantities), worked out on a read
/// connection while the batch is planned, beside the writer, which is the one thread every
/// message waits for. The products are found in the catalog as it was a moment before the write
/// (a product added in between is named in the next message); prices and stock in the answer are
/// read by the writer. None without text, or when it cannot be read (the writer analyses then).
fn analysed(svc: &super::service::ShopService, shop: &str, m: &inbox::Inbound) -> Option<Box<bot::Analysis>> {
    if m.text.trim().is_empty() {
        return None;
    }
    let a = svc.replica.read(|c| Ok(bot::analyse_in(c, shop, &m.text, &|t| svc.replica.catalog_candidates(shop, t))));
    a.ok().map(Box::new)
}

/// Applies the items of many events, one write (one commit) per shop. False if a write failed
/// (nothing of that shop's part was applied).
async fn apply_batch(wa: &Arc<WhatsApp>, ready: &[Ready]) -> bool {
    let mut by_shop: std::collections::BTreeMap<String, Vec<&Item>> = std::collections::BTreeMap::new();
    for (_, _, _, _, items, _) in ready {
        for it in items {
            by_shop.entry(it.number.shop_id.clone()).or_default().push(it);
        }
    }
    let llm = wa.llm.as_ref().is_some_and(|l| l.available());
    for (shop, items) in by_shop {
        let svc = items[0].svc.clone();
        let work: Vec<(String, ItemKind)> = items
            .iter()
            .map(|it| {
                let k = match &it.kind {
                    ItemKind::Message { branch, m, analysis } => {
                        ItemKind::Message { branch: branch.clone(), m: m.clone(), analysis: analysis.clone() }
                    }
                    ItemKind::Status { wamid, status, error } => {
                        ItemKind::Status { wamid: wamid.clone(), status: *status, error: error.clone() }
                    }
                };
                (it.number.phone_number_id.clone(), k)
            })
            .collect();
        let n = work.len();
        let marks = svc.waiting_marks(work.iter().filter_map(|(_, k)| match k {
            ItemKind::Status { wamid, .. } => Some(wamid.as_str()),
            ItemKind::Message { .. } => None,
        }));
        let t = std::time::Instant::now();
        let shop2 = shop.clone();
        let r = svc
            .replica
            .write(move |ctx| {
                mark_waiting(ctx, &marks)?;
                let mut asks = Vec::new();
                let mut orphans = Vec::new();
                let mut media = Vec::new();
                // Read once per batch: the bot's definition does not change within a write.
                let mut bot = None;
                for (pnid, k) in &work {
                    match k {
                        ItemKind::Message { branch, m, analysis } => {
                            if let Some(id) =
                                m.payload.get("media_id").and_then(|v| v.as_str()).filter(|s| !s.is_empty())
                            {
                                media.push((pnid.clone(), inbox::inbound_message_id(&m.wamid), id.to_string()));
                            }
                            if let Some(a) =
                                receive_and_answer(ctx, &shop2, branch, m, analysis.as_deref(), llm, &mut bot)?
                            {
                                asks.push(a);
                            }
                        }
                        ItemKind::Status { wamid, status, error } => {
                            if !inbox::apply_status(ctx, wamid, *status, error.as_deref())? {
                                orphans.push((wamid.clone(), *status, error.clone()));
                            }
                        }
                    }
                }
                Ok((asks, orphans, media))
            })
            .await;
        metrics::histogram!("dashoffice_whatsapp_batch_seconds").record(t.elapsed().as_secs_f64());
        match r {
            Ok((asks, orphans, media)) => {
                metrics::counter!("dashoffice_whatsapp_items_applied_total").increment(n as u64);
                for (wamid, status, error) in orphans {
                    metrics::counter!("dashoffice_whatsapp_reports_kept_total").increment(1);
                    let _ = wa.store.add_orphan(&wamid, status.as_str(), error.as_deref(), &shop);
                }
                for (pnid, message_id, media_id) in media {
                    if let Some(number) =
                        items.iter().find(|i| i.number.phone_number_id == pnid).map(|i| i.number.clone())
                    {
                        tokio::spawn(fetch_media(wa.clone(), svc.clone(), number, message_id, media_id));
                    }
                }
                for ask in asks {
                    let (wa, svc, shop) = (wa.clone(), svc.clone(), shop.clone());
                    tokio::spawn(async move {
                        if let Err(e) = ask_llm(&wa, &svc, shop, ask).await {
                            tracing::error!(error = %e, "writing the bot's answer");
                        }
                    });
                }
            }
            Err(e) => {
                tracing::warn!(shop = %shop, error = %e, "a batch of webhook events failed; retrying them one by one");
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    // A test states what it needs; a failed unwrap is the failure, reported with its line.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use dashoffice_core::{BootstrapInput, OpenOptions, Replica, doc::DocId};
    use dashoffice_domain::inbox::{MessageStatus, SendMessage};

    use super::*;

    #[test]
    fn a_message_takes_the_time_it_was_received_within_its_second() {
        let at = |stamp: i64, received: i64| {
            let mut m = inbox::Inbound { at: stamp, ..Default::default() };
            at_receipt(&mut m, received);
            m.at
        };
        // Received 0.9 s into its second, however late it is processed: that time.
        assert_eq!(at(1_000_000, 1_000_900), 1_000_900);
        // Received after its second (a late delivery) or before it (clocks apart): its stamp.
        assert_eq!(at(1_000_000, 1_001_000), 1_000_000);
        assert_eq!(at(1_000_000, 999_999), 1_000_000);
    }

    /// A shop with one conversation holding one reply still queued: the replica, the reply's
    /// document and id.
    async fn a_queued_reply(dir: &std::path::Path) -> (Replica, DocId, String) {
        let r = Replica::open(dir, OpenOptions::default()).unwrap();
        let boot = r.bootstrap(BootstrapInput::example()).unwrap().unwrap();
        let (shop, branch) = (boot.shop_id.clone(), boot.branch_id.clone());
        let m = inbox::Inbound {
            wamid: "wamid.IN".into(),
            wa_id: "5215512345678".into(),
            profile_name: "Luis".into(),
            phone_number_id: "123".into(),
            kind: "text".into(),
            text: "hola".into(),
            payload: serde_json::json!({}),
            context_wamid: None,
            at: crate::hub::now_ms(),
        };
        let reply = r
            .write(move |ctx| {
                let a = inbox::arrive(ctx, &shop, &branch, &m)?;
                inbox::record_arrival(ctx, &shop, &a, &m, None)?;
                let text = SendMessage { text: "¡Hola!".into(), ..Default::default() };
                inbox::send(ctx, &inbox::system_caller(&shop), &a.received.conversation_id, text, inbox::BOT_SENDER)
            })
            .await
            .unwrap();
        let id = reply.id.clone();
        let doc: String = r
            .read(move |c| Ok(c.query_row("SELECT doc_id FROM messages WHERE id = ?1", [&id], |row| row.get(0))?))
            .unwrap();
        (r, DocId::parse(&doc).unwrap(), reply.id)
    }

    #[tokio::test]
    async fn a_report_for_a_reply_whose_mark_waits_marks_it_and_applies() {
        let dir = tempfile::tempdir().unwrap();
        let (r, doc, id) = a_queued_reply(dir.path()).await;
        let status = |r: &Replica, id: &str| -> (String, Option<String>) {
            let id = id.to_string();
            r.read(move |c| {
                Ok(c.query_row("SELECT status, wamid FROM messages WHERE id = ?1", [&id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?)
            })
            .unwrap()
        };
        // Without the waiting mark, the report names a message the shop does not know yet.
        let unknown = r.write(|ctx| inbox::apply_status(ctx, "wamid.OUT", MessageStatus::Delivered, None)).await;
        assert!(!unknown.unwrap());
        // With it, the reply is marked sent and the report applies, in one write.
        let marks = vec![(doc.clone(), id.clone(), "wamid.OUT".to_string())];
        let m = marks.clone();
        let applied = r
            .write(move |ctx| {
                mark_waiting(ctx, &m)?;
                inbox::apply_status(ctx, "wamid.OUT", MessageStatus::Delivered, None)
            })
            .await
            .unwrap();
        assert!(applied);
        assert_eq!(status(&r, &id), ("delivered".into(), Some("wamid.OUT".into())));
        // The mark's own write, later, changes nothing; a mark for a reply not in its document
        // does not fail the reports' write.
        let mut later = marks.clone();
        later.push((doc, "no-such-message".into(), "wamid.GONE".into()));
        r.write(move |ctx| mark_waiting(ctx, &later)).await.unwrap();
        assert_eq!(status(&r, &id), ("delivered".into(), Some("wamid.OUT".into())));
    }
}
