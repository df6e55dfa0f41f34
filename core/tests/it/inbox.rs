//! The inbox's intake: an inbound WhatsApp message and the bot's answer to it.

use std::sync::Arc;

use dashoffice_core::{
    Clock, FakeClock, OpenOptions, Replica,
    doc::DocId,
    domain::inbox::{ConversationState, MessageStatus, SendMessage, UpdateConversation},
    entities::inbox::{self, BotAnswer, Inbound},
};
use serde_json::json;

use super::fixtures::{Node, push_all, shop_with};

fn inbound(wamid: &str, text: &str, at: i64) -> Inbound {
    Inbound {
        wamid: wamid.into(),
        wa_id: "5215511112222".into(),
        profile_name: "Ana".into(),
        phone_number_id: "1065".into(),
        kind: "text".into(),
        text: text.into(),
        at,
        ..Default::default()
    }
}

/// A time for the next inbound message: after everything written so far and before the answer to
/// it (the replica's clock stamps the replies), as the relay stamps messages it receives.
fn next_at(clock: &FakeClock) -> i64 {
    clock.advance(10);
    clock.now_ms() - 1
}

fn text(t: &str) -> SendMessage {
    SendMessage { kind: Some("text".into()), text: t.into(), ..Default::default() }
}

/// Writes `m` with the bot's answer (`replies`; its node, misunderstandings and handoff); returns
/// what arriving found and the replies' ids.
fn answer(
    r: &Replica,
    shop: &str,
    branch: &str,
    m: Inbound,
    replies: Vec<SendMessage>,
    (node, misunderstood, handoff): (&str, i64, bool),
) -> (inbox::Arrival, Vec<String>) {
    let (shop, branch, node) = (shop.to_string(), branch.to_string(), node.to_string());
    r.write_blocking(move |ctx| {
        let a = inbox::arrive(ctx, &shop, &branch, &m)?;
        let explain = json!({ "trigger": { "kind": "keyword" }, "node": node });
        let ans = BotAnswer { replies: &replies, explain: &explain, node: &node, misunderstood, handoff };
        let ids = inbox::record_arrival(ctx, &shop, &a, &m, Some(ans))?;
        Ok((a, ids))
    })
    .unwrap()
}

fn changes(r: &Replica, doc: &str) -> usize {
    r.load_doc(&DocId::parse(doc).unwrap()).unwrap().map_or(0, |d| d.get_changes(&[]).len())
}

/// (state, bot_node, misunderstood, customer_name) as the projection holds them.
fn bot_row(r: &Replica, conversation: &str) -> (String, String, i64, String) {
    let id = conversation.to_string();
    r.read(move |c| {
        Ok(c.query_row(
            "SELECT state, bot_node, misunderstood, customer_name FROM conversations WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?)
    })
    .unwrap()
}

/// Two replicas of a new shop whose clock stops mid-month (every message falls in one month's
/// documents) and moves only when told; and the shop's branch.
fn two_nodes() -> (Arc<FakeClock>, Vec<Node>, String) {
    let clock = Arc::new(FakeClock::at(1_781_524_800_000)); // 2026-06-15 12:00 UTC
    let nodes = shop_with(2, || OpenOptions { clock: clock.clone() as Arc<dyn Clock>, ..Default::default() });
    let branch = nodes[0].replica.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    (clock, nodes, branch)
}

#[test]
fn a_message_and_the_bots_answer_are_at_most_one_change_per_document_and_project_as_a_sync_would() {
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop_id = caller.shop_id.clone();

    // The first message of a customer: a new customer and conversation, the bot greets.
    let (a, ids) = answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.1", "hola", next_at(&clock)),
        vec![text("¡Hola Ana!")],
        ("menu", 0, false),
    );
    assert!(a.received.first && !a.received.duplicate);
    assert_eq!(
        (a.received.state, a.bot_node.as_str(), a.customer_name.as_str()),
        (ConversationState::Pending, "", "Ana")
    );
    assert_eq!(ids.len(), 1);
    let conversation = a.received.conversation_id.clone();
    let id = conversation.clone();
    let (conv_doc, msg_doc): (String, String) = r
        .read(move |c| {
            Ok((
                c.query_row("SELECT doc_id FROM conversations WHERE id = ?1", [&id], |r| r.get(0))?,
                c.query_row("SELECT doc_id FROM messages WHERE conversation_id = ?1 LIMIT 1", [&id], |r| r.get(0))?,
            ))
        })
        .unwrap();

    // The next message and a two-part answer: one change to the conversation, one to the month's
    // messages.
    let before = (changes(r, &conv_doc), changes(r, &msg_doc));
    let (a, ids) = answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.2", "¿precio?", next_at(&clock)),
        vec![text("¿De qué producto?"), text("Escribe su nombre")],
        ("precio", 1, false),
    );
    assert!(!a.received.first);
    assert_eq!(a.bot_node, "menu", "the bot's place before this answer");
    assert_eq!((changes(r, &conv_doc), changes(r, &msg_doc)), (before.0 + 1, before.1 + 1));
    assert_eq!(bot_row(r, &conversation), ("pending".into(), "precio".into(), 1, "Ana".into()));
    let c2 = conversation.clone();
    let thread = r.read(move |c| inbox::messages_of(c, &c2)).unwrap();
    let seen: Vec<(&str, &str, MessageStatus, Option<&str>)> =
        thread.iter().map(|m| (m.direction.as_str(), m.text.as_str(), m.status, m.context_wamid.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("in", "hola", MessageStatus::Received, None),
            ("out", "¡Hola Ana!", MessageStatus::Queued, Some("wamid.1")),
            ("in", "¿precio?", MessageStatus::Received, None),
            ("out", "¿De qué producto?", MessageStatus::Queued, Some("wamid.2")),
            ("out", "Escribe su nombre", MessageStatus::Queued, Some("wamid.2")),
        ]
    );
    assert_eq!(thread[3].id, ids[0]);
    assert_eq!(
        (thread[3].sender.as_str(), thread[3].explain.as_ref().unwrap()["node"].as_str()),
        ("bot", Some("precio"))
    );

    // A message that leaves the bot where it was does not rewrite the conversation; its last
    // activity still follows (from its messages).
    let (a, _) = answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.2b", "¿y en rojo?", next_at(&clock)),
        vec![text("Sí, hay")],
        ("precio", 1, false),
    );
    assert_eq!(a.bot_node, "precio");
    assert_eq!((changes(r, &conv_doc), changes(r, &msg_doc)), (before.0 + 1, before.1 + 2));
    let (s, c2) = (shop_id.clone(), conversation.clone());
    let (view, last) = r
        .read(move |c| {
            let last = inbox::messages_of(c, &c2)?.iter().map(|m| m.at).max().unwrap();
            Ok((inbox::get_conversation(c, &s, &c2)?, last))
        })
        .unwrap();
    assert_eq!((view.updated_at, view.last_message.as_str()), (last, "Sí, hay"));
    // An internal note is no activity with the customer: the conversation keeps its place.
    clock.advance(10);
    let (c6, id) = (caller.clone(), conversation.clone());
    r.write_blocking(move |ctx| {
        let note = SendMessage { kind: Some("note".into()), text: "Llamar mañana".into(), ..Default::default() };
        inbox::send(ctx, &c6, &id, note, &c6.user_id.clone())
    })
    .unwrap();
    let (s, c2) = (shop_id.clone(), conversation.clone());
    assert_eq!(r.read(move |c| inbox::get_conversation(c, &s, &c2)).unwrap().updated_at, view.updated_at);
    let before = (changes(r, &conv_doc), changes(r, &msg_doc));

    // A redelivery: arriving says so, and recording it is refused without writing anything.
    let (s, b, at) = (shop_id.clone(), branch.clone(), next_at(&clock));
    let refused = r
        .write_blocking(move |ctx| {
            let m = inbound("wamid.2", "¿precio?", at);
            let a = inbox::arrive(ctx, &s, &b, &m)?;
            assert!(a.received.duplicate);
            inbox::record_arrival(ctx, &s, &a, &m, None)
        })
        .unwrap_err();
    assert!(refused.is_rule(), "{refused}");
    assert_eq!((changes(r, &conv_doc), changes(r, &msg_doc)), before);

    // A handoff opens the conversation to people in the same change.
    answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.3", "humano", next_at(&clock)),
        vec![text("Te comunico")],
        ("", 0, true),
    );
    assert_eq!(bot_row(r, &conversation).0, "open");

    // Resolved, then the customer writes again: back to the bot, from its start.
    let (c3, id) = (caller.clone(), conversation.clone());
    r.write_blocking(move |ctx| {
        inbox::update(ctx, &c3, &id, UpdateConversation { state: Some("resolved".into()), ..Default::default() })
    })
    .unwrap();
    let (s, b, at) = (shop_id.clone(), branch.clone(), next_at(&clock));
    let a = r
        .write_blocking(move |ctx| {
            let m = Inbound { profile_name: "Ana María".into(), ..inbound("wamid.4", "hola otra vez", at) };
            let a = inbox::arrive(ctx, &s, &b, &m)?;
            inbox::record_arrival(ctx, &s, &a, &m, None)?;
            Ok(a)
        })
        .unwrap();
    assert_eq!(
        (a.received.state, a.bot_node.as_str(), a.customer_name.as_str()),
        (ConversationState::Pending, "", "Ana María")
    );
    assert_eq!(bot_row(r, &conversation), ("pending".into(), "".into(), 0, "Ana María".into()));

    // Another replica that receives the changes projects the same rows.
    let other = &nodes[1].replica;
    push_all(r, other);
    assert_eq!(bot_row(other, &conversation), bot_row(r, &conversation));
    let updated = |n: &Replica| {
        let (s, c) = (shop_id.clone(), conversation.clone());
        n.read(move |conn| inbox::get_conversation(conn, &s, &c)).unwrap().updated_at
    };
    assert_eq!(updated(other), updated(r));
    let (c4, c5) = (conversation.clone(), conversation.clone());
    assert_eq!(
        other.read(move |c| inbox::messages_of(c, &c4)).unwrap(),
        r.read(move |c| inbox::messages_of(c, &c5)).unwrap()
    );
    // The writer projects the messages it writes, and those it marks sent, from the values in
    // hand; a replica reads them from the documents. Every column agrees.
    let sent = vec![(ids[0].clone(), "wamid.OUT.1".to_string())];
    let doc = DocId::parse(&msg_doc).unwrap();
    r.write_blocking(move |ctx| inbox::mark_sent(ctx, &doc, &sent)).unwrap();
    push_all(r, other);
    assert_eq!(message_rows(other), message_rows(r));
    let rows = message_rows(r);
    assert!(rows.iter().any(|row| row.contains(&rusqlite::types::Value::Text("wamid.OUT.1".into()))));
}

/// One write holding several messages, as the relay applies a batch of webhooks.
fn answer_all(r: &Replica, shop: &str, branch: &str, list: Vec<(Inbound, &str)>) -> Vec<(inbox::Arrival, Vec<String>)> {
    let (shop, branch) = (shop.to_string(), branch.to_string());
    let list: Vec<(Inbound, String)> = list.into_iter().map(|(m, t)| (m, t.to_string())).collect();
    r.write_blocking(move |ctx| {
        let mut out = Vec::new();
        for (m, reply) in &list {
            let a = inbox::arrive(ctx, &shop, &branch, m)?;
            let explain = json!({ "node": "" });
            let replies = [text(reply)];
            let ans = BotAnswer { replies: &replies, explain: &explain, node: "", misunderstood: 0, handoff: false };
            let ids = inbox::record_arrival(ctx, &shop, &a, m, Some(ans))?;
            out.push((a, ids));
        }
        Ok(out)
    })
    .unwrap()
}

#[test]
fn the_messages_of_one_write_are_one_change_per_document_and_the_write_sees_them_at_once() {
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop_id = caller.shop_id.clone();
    let msg_doc = |conversation: &str| -> String {
        let id = conversation.to_string();
        r.read(move |c| {
            Ok(c.query_row("SELECT doc_id FROM messages WHERE conversation_id = ?1 LIMIT 1", [&id], |r| r.get(0))?)
        })
        .unwrap()
    };
    let (a, _) = answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.a1", "hola", next_at(&clock)),
        vec![text("¡Hola!")],
        ("", 0, false),
    );
    let conversation = a.received.conversation_id.clone();
    let doc = msg_doc(&conversation);

    // Four messages of the same customer and their answers in one write: one change to their
    // messages document, eight rows.
    let before = changes(r, &doc);
    let batch: Vec<(Inbound, &str)> =
        (2..=5).map(|i| (inbound(&format!("wamid.a{i}"), "¿precio?", next_at(&clock)), "Cuesta 10")).collect();
    let done = answer_all(r, &shop_id, &branch, batch);
    assert_eq!(changes(r, &doc), before + 1);
    let c2 = conversation.clone();
    assert_eq!(r.read(move |c| inbox::messages_of(c, &c2)).unwrap().len(), 10);

    // Within one write, whatever reads or changes the document sees the records made so far: a
    // reply written, then marked sent in the same write.
    let (s, b, at, d) = (shop_id.clone(), branch.clone(), next_at(&clock), DocId::parse(&doc).unwrap());
    let reply = r
        .write_blocking(move |ctx| {
            let m = inbound("wamid.a6", "gracias", at);
            let a = inbox::arrive(ctx, &s, &b, &m)?;
            let explain = json!({ "node": "" });
            let replies = [text("A ti")];
            let ans = BotAnswer { replies: &replies, explain: &explain, node: "", misunderstood: 0, handoff: false };
            let ids = inbox::record_arrival(ctx, &s, &a, &m, Some(ans))?;
            inbox::mark_sent(ctx, &d, &[(ids[0].clone(), "wamid.OUT.a6".to_string())])?;
            Ok(ids[0].clone())
        })
        .unwrap();
    let id = reply.clone();
    let (status, wamid): (String, String) = r
        .read(move |c| {
            Ok(c.query_row("SELECT status, wamid FROM messages WHERE id = ?1", [&id], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .unwrap();
    assert_eq!((status.as_str(), wamid.as_str()), ("sent", "wamid.OUT.a6"));

    // A write that fails after writing messages leaves nothing of them, in the store or in the
    // document, and the next write goes on from what was stored.
    let before = (changes(r, &doc), message_rows(r));
    let (s, b, at) = (shop_id.clone(), branch.clone(), next_at(&clock));
    let failed = r
        .write_blocking(move |ctx| {
            let m = inbound("wamid.a7", "¿hay envío?", at);
            let a = inbox::arrive(ctx, &s, &b, &m)?;
            inbox::record_arrival(ctx, &s, &a, &m, None)?;
            Err::<(), _>(dashoffice_core::CoreError::conflict("test", "fails", "after the messages"))
        })
        .unwrap_err();
    assert!(failed.is_rule(), "{failed}");
    assert_eq!((changes(r, &doc), message_rows(r)), before);
    let batch = vec![(inbound("wamid.a7", "¿hay envío?", next_at(&clock)), "Sí")];
    answer_all(r, &shop_id, &branch, batch);
    assert_eq!(changes(r, &doc), before.0 + 1);

    // Another replica that receives the changes projects the same rows.
    let other = &nodes[1].replica;
    push_all(r, other);
    assert_eq!(message_rows(other), message_rows(r));
    assert_eq!(done.len(), 4);
}

/// Every column of every projected message, by id.
fn message_rows(r: &Replica) -> Vec<Vec<rusqlite::types::Value>> {
    r.read(|c| {
        let mut st = c.prepare("SELECT * FROM messages ORDER BY id")?;
        let n = st.column_count();
        let rows = st
            .query_map([], |row| (0..n).map(|i| row.get::<_, rusqlite::types::Value>(i)).collect())?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    })
    .unwrap()
}

/// The satisfaction survey's messages in a conversation (direction, kind, text), oldest first.
fn survey_rows(r: &Replica, conversation: &str) -> Vec<(String, String, String)> {
    let id = conversation.to_string();
    r.read(move |c| {
        let mut st = c.prepare(
            "SELECT direction, kind, text FROM messages WHERE conversation_id = ?1 AND payload LIKE '%\"csat:%' ORDER BY at, id",
        )?;
        let rows = st.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    })
    .unwrap()
}

#[test]
fn a_resolved_conversation_is_surveyed_once_and_a_rating_keeps_it_resolved_or_hands_a_bad_one_back() {
    use dashoffice_core::domain::api::UpdateShop;
    use dashoffice_core::entities::{org, satisfaction};
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop_id = caller.shop_id.clone();
    let resolve = |state: &str| {
        let (c, id, s) = (caller.clone(), String::new(), state.to_string());
        (c, id, s)
    };
    let _ = resolve;
    let set_state = |conversation: &str, state: &str| {
        let (c, id, s) = (caller.clone(), conversation.to_string(), state.to_string());
        r.write_blocking(move |ctx| {
            inbox::update(ctx, &c, &id, UpdateConversation { state: Some(s), ..Default::default() })
        })
        .unwrap()
    };
    let receive = |m: Inbound| {
        let (s, b) = (shop_id.clone(), branch.clone());
        r.write_blocking(move |ctx| {
            let a = inbox::arrive(ctx, &s, &b, &m)?;
            inbox::record_arrival(ctx, &s, &a, &m, None)?;
            Ok(a)
        })
        .unwrap()
    };
    let tap = |wamid: &str, id: &str, title: &str| Inbound {
        kind: "interactive".into(),
        text: title.into(),
        payload: json!({ "type": "button_reply", "id": id, "title": title, "description": "" }),
        ..inbound(wamid, "", next_at(&clock))
    };

    // The shop has not asked for it: resolving sends nothing.
    let a = receive(inbound("wamid.1", "How much is the blue shirt?", next_at(&clock)));
    let conversation = a.received.conversation_id.clone();
    set_state(&conversation, "resolved");
    assert!(survey_rows(r, &conversation).is_empty());

    let c = caller.clone();
    let shop = r
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c, UpdateShop { satisfaction_survey: Some(true), ..Default::default() })
        })
        .unwrap();
    assert!(shop.satisfaction_survey);
    // Reopened and resolved again without a word from the customer since: still nothing (the
    // rule is the same as after a survey).
    receive(inbound("wamid.2", "Thanks, and do you have it in M?", next_at(&clock)));
    set_state(&conversation, "resolved");
    let rows = survey_rows(r, &conversation);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "out");
    assert!(rows[0].2.starts_with("How did we do?"), "in the customer's language: {rows:?}");
    set_state(&conversation, "open");
    set_state(&conversation, "resolved");
    assert_eq!(survey_rows(r, &conversation).len(), 1, "no word from the customer since the survey");

    // A good rating: kept, and the conversation stays resolved (no bot, no reopening).
    let a = receive(tap("wamid.3", "csat:good", "😀 Great"));
    assert_eq!(a.rating, Some(satisfaction::Rating::Good));
    assert_eq!(satisfaction::language_of(&tap("wamid.x", "csat:good", "😀 Great")), "en");
    let (s, id) = (shop_id.clone(), conversation.clone());
    let view = r.read(move |c| inbox::get_conversation(c, &s, &id)).unwrap();
    assert_eq!((view.state, view.rating.as_deref()), (ConversationState::Resolved, Some("good")));
    assert!(view.rated_at.is_some());
    // Resolved again after only the rating: no second survey.
    set_state(&conversation, "open");
    set_state(&conversation, "resolved");
    assert_eq!(survey_rows(r, &conversation).len(), 2, "the survey and the rating, nothing more");

    // A bad rating hands a resolved conversation back to a person.
    let a = receive(tap("wamid.4", "csat:bad", "😞 Mal"));
    assert_eq!((a.rating, a.received.state), (Some(satisfaction::Rating::Bad), ConversationState::Open));
    assert_eq!(bot_row(r, &conversation).0, "open");
    // Any other button is no rating.
    assert_eq!(satisfaction::rating_of(&tap("wamid.5", "csat:great", "x")), None);
    assert_eq!(satisfaction::rating_of(&tap("wamid.6", "ver_precios", "Ver precios")), None);

    // The customer writes and a day passes: the window is closed, so no survey on resolving.
    receive(inbound("wamid.7", "hola", next_at(&clock)));
    clock.advance(25 * 3_600_000);
    set_state(&conversation, "resolved");
    assert_eq!(survey_rows(r, &conversation).len(), 3);

    // The shop's own question (too long is refused, naming the field).
    let (c, long) = (caller.clone(), "¿".repeat(1025));
    let err = r
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c, UpdateShop { satisfaction_question: Some(long), ..Default::default() })
        })
        .unwrap_err();
    assert!(err.to_string().contains("satisfaction_question"), "{err}");
    let c = caller.clone();
    r.write_blocking(move |ctx| {
        let q = Some(" ¿Qué tal le atendimos en Tienda Luna? ".to_string());
        org::update_shop(ctx, &c, UpdateShop { satisfaction_question: q, ..Default::default() })
    })
    .unwrap();
    receive(inbound("wamid.8", "hola de nuevo", next_at(&clock)));
    set_state(&conversation, "resolved");
    let rows = survey_rows(r, &conversation);
    assert_eq!(rows.last().map(|r| r.2.as_str()), Some("¿Qué tal le atendimos en Tienda Luna?"), "{rows:?}");

    // Another replica projects the same rating and the analytics count it there.
    let other = &nodes[1].replica;
    push_all(r, other);
    let seen = |n: &Replica| {
        let (s, id) = (shop_id.clone(), conversation.clone());
        let v = n.read(move |c| inbox::get_conversation(c, &s, &id)).unwrap();
        (v.rating, v.rated_at, v.state)
    };
    assert_eq!(seen(other), seen(r));
    assert_eq!(seen(other).0.as_deref(), Some("bad"));
    let s = shop_id.clone();
    let sat = other.read(move |c| satisfaction::period(c, &s, None, (0, i64::MAX), &Default::default())).unwrap();
    assert_eq!((sat.surveys, sat.good, sat.ok, sat.bad, sat.score), (2, 1, 0, 1, Some(50.0)));
}

#[test]
fn an_order_reaching_a_status_tells_the_customer_on_whatsapp_once_with_a_template_after_the_window() {
    use dashoffice_core::domain::{
        OrderStatus,
        api::{CreateOrder, OrderLineInput, TransitionOrder, UpdateShop},
    };
    use dashoffice_core::entities::{orders, org, products};
    use std::collections::BTreeMap;
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop_id = caller.shop_id.clone();
    let (a, _) = answer(
        r,
        &shop_id,
        &branch,
        inbound("wamid.n1", "hola", next_at(&clock)),
        vec![text("¡Hola!")],
        ("", 0, false),
    );
    let conversation = a.received.conversation_id.clone();
    let conv = conversation.clone();
    let customer: String = r
        .read(move |c| Ok(c.query_row("SELECT customer_id FROM conversations WHERE id = ?1", [&conv], |r| r.get(0))?))
        .unwrap();

    // The shop's notices: statuses it knows, texts up to 1,000 characters, an approved template.
    let notices = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let c = caller.clone();
    let refused = r
        .write_blocking(move |ctx| {
            let bad = UpdateShop {
                order_notices: Some(notices(&[
                    ("shipped", "x"),
                    ("paid", &"x".repeat(1001)),
                    ("cancelled", "Tu pedido {numero} fue cancelado"),
                ])),
                order_notice_template: Some("aviso_pedido".into()),
                ..Default::default()
            };
            org::update_shop(ctx, &c, bad)
        })
        .unwrap_err();
    let said = refused.to_string();
    for field in ["order_notices.shipped", "order_notices.paid", "order_notices.cancelled", "order_notice_template"] {
        assert!(said.contains(field), "{field} not named: {said}");
    }
    let c = caller.clone();
    let (shop, order) = r
        .write_blocking(move |ctx| {
            let set = UpdateShop {
                order_notices: Some(notices(&[
                    ("confirmed", "Hola {customer}, tu pedido {number} por {total} está confirmado."),
                    ("delivered", "Tu pedido {number} fue entregado. ¡Gracias por comprar en {shop}!"),
                    ("cancelled", "Tu pedido {number} fue cancelado."),
                ])),
                ..Default::default()
            };
            let shop = org::update_shop(ctx, &c, set)?;
            let p = products::create(ctx, &c, super::fixtures::product_input("CAM-001", "250.00"))?;
            let line = OrderLineInput { product_id: p.id, quantity: 2, unit_price: None };
            let input = CreateOrder {
                customer_id: customer.clone(),
                branch_id: Some(branch.clone()),
                seller_id: None,
                lines: vec![line],
                notes: String::new(),
            };
            Ok((shop, orders::create(ctx, &c, None, input)?))
        })
        .unwrap();
    assert_eq!(shop.order_notices.len(), 3);
    let move_to = |node: &Replica, c: &dashoffice_core::Caller, id: &str, to: OrderStatus| {
        let (c, id) = (c.clone(), id.to_string());
        node.write_blocking(move |ctx| orders::transition(ctx, &c, &id, TransitionOrder { to })).unwrap()
    };

    // Confirmed while the customer's window is open: the text, filled in, from the bot.
    clock.advance(10);
    let confirmed = move_to(r, &caller, &order.id, OrderStatus::Confirmed);
    assert_eq!(confirmed.notices.len(), 1, "{:#?}", confirmed.notices);
    let n = &confirmed.notices[0];
    assert_eq!((n.status.as_str(), n.kind.as_str(), n.delivery), ("confirmed", "text", MessageStatus::Queued));
    assert_eq!(n.conversation_id, conversation);
    let c2 = conversation.clone();
    let thread = r.read(move |c| inbox::messages_of(c, &c2)).unwrap();
    let last = thread.last().unwrap();
    assert_eq!(last.id, n.message_id);
    assert_eq!(
        (last.sender.as_str(), last.text.as_str()),
        ("bot", format!("Hola Ana, tu pedido {} por {} MXN está confirmado.", order.number, confirmed.total).as_str())
    );
    // Paid has no notice.
    assert_eq!(move_to(r, &caller, &order.id, OrderStatus::Paid).notices.len(), 1);

    // Two days later the window is closed: without a template the notice does not go, the order
    // moves all the same, and it says why the customer was not told.
    clock.advance(48 * 3_600_000);
    move_to(r, &caller, &order.id, OrderStatus::Fulfilled);
    let delivered = move_to(r, &caller, &order.id, OrderStatus::Delivered);
    assert_eq!(delivered.status, OrderStatus::Delivered);
    let skipped: Vec<_> = delivered.notices.iter().filter(|n| n.skipped.is_some()).collect();
    assert_eq!(skipped.len(), 1, "{:#?}", delivered.notices);
    assert_eq!(
        (skipped[0].status.as_str(), skipped[0].skipped.as_deref(), skipped[0].conversation_id.as_str()),
        ("delivered", Some("window_closed"), conversation.as_str())
    );
    assert!(skipped[0].message_id.is_empty());
    let json = serde_json::to_value(&delivered.notices).unwrap();
    assert_eq!(json[0].get("skipped"), None, "a notice that went has no `skipped`: {json}");
    // A customer who never wrote on WhatsApp: nothing to tell them in, and the order says so.
    let c = caller.clone();
    let (b, p) = (order.branch_id.clone(), order.lines[0].product_id.clone());
    let walk_in = r
        .write_blocking(move |ctx| {
            let cu = dashoffice_core::entities::customers::create(
                ctx,
                &c,
                dashoffice_core::domain::api::CreateCustomer { name: "Sin WhatsApp".into(), ..Default::default() },
            )?;
            let line = OrderLineInput { product_id: p, quantity: 1, unit_price: None };
            let input = CreateOrder {
                customer_id: cu.id,
                branch_id: Some(b),
                seller_id: None,
                lines: vec![line],
                notes: String::new(),
            };
            orders::create(ctx, &c, None, input)
        })
        .unwrap();
    let walk_in = move_to(r, &caller, &walk_in.id, OrderStatus::Confirmed);
    let seen: Vec<(&str, Option<&str>, &str)> =
        walk_in.notices.iter().map(|n| (n.status.as_str(), n.skipped.as_deref(), n.conversation_id.as_str())).collect();
    assert_eq!(seen, [("confirmed", Some("no_whatsapp"), "")]);
    // With an approved template of two parameters: the order number and the notice's text.
    let c = caller.clone();
    r.write_blocking(move |ctx| {
        let tpl = json!({ "name": "aviso_pedido", "language": "es_MX", "body": "Pedido {{1}}: {{2}}", "params": 2 });
        inbox::put_item(ctx, &c, "template", "aviso_pedido", &tpl)?;
        org::update_shop(
            ctx,
            &c,
            UpdateShop { order_notice_template: Some("aviso_pedido".into()), ..Default::default() },
        )
    })
    .unwrap();
    // Another order like the first, of one unit.
    let again = |like: &dashoffice_core::domain::api::OrderView| {
        let (c, like) = (caller.clone(), like.clone());
        r.write_blocking(move |ctx| {
            let line = OrderLineInput { product_id: like.lines[0].product_id.clone(), quantity: 1, unit_price: None };
            let input = CreateOrder {
                customer_id: like.customer_id.clone(),
                branch_id: Some(like.branch_id.clone()),
                seller_id: None,
                lines: vec![line],
                notes: String::new(),
            };
            orders::create(ctx, &c, None, input)
        })
        .unwrap()
    };
    let second = again(&order);
    let done = move_to(r, &caller, &second.id, OrderStatus::Confirmed);
    assert_eq!(done.notices.len(), 1);
    assert_eq!(done.notices[0].kind, "template");
    let id = done.notices[0].message_id.clone();
    let payload: String =
        r.read(move |c| Ok(c.query_row("SELECT payload FROM messages WHERE id = ?1", [&id], |r| r.get(0))?)).unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["template"], "aviso_pedido");
    assert_eq!(payload["params"][0], json!(second.number));
    assert!(payload["params"][1].as_str().unwrap().starts_with("Hola Ana, tu pedido"), "{payload}");

    // Two replicas confirm the same order while apart: one notice, sent once.
    let other = &nodes[1].replica;
    let third = again(&second);
    // A draft cancelled was never the customer's order: no notice.
    let draft = again(&second);
    assert!(move_to(r, &caller, &draft.id, OrderStatus::Cancelled).notices.is_empty());
    // The first order's text notice reached the relay after the window had closed (written
    // offline, say): WhatsApp refuses it (131047), and it goes again as the template, once.
    let refuse = |id: String| {
        r.write_blocking(move |ctx| {
            let doc: String =
                ctx.conn().query_row("SELECT doc_id FROM messages WHERE id = ?1", [&id], |row| row.get(0))?;
            inbox::fail_outbound(ctx, &DocId::parse(&doc)?, &id, "131047 Re-engagement message")
        })
        .unwrap()
    };
    refuse(confirmed.notices[0].message_id.clone());
    let again = |id: &str| {
        let (c, id) = (caller.clone(), id.to_string());
        r.read(move |conn| orders::get(conn, &c, &id)).unwrap().notices
    };
    let notices = again(&order.id);
    let seen: Vec<(&str, &str, MessageStatus)> =
        notices.iter().map(|n| (n.status.as_str(), n.kind.as_str(), n.delivery)).collect();
    assert_eq!(
        seen,
        [
            ("confirmed", "text", MessageStatus::Failed),
            ("confirmed", "template", MessageStatus::Queued),
            // Marked at the same millisecond (the test's clock stood still), after the messages.
            ("delivered", "", MessageStatus::Failed)
        ]
    );
    refuse(notices[1].message_id.clone());
    assert_eq!(again(&order.id).len(), 3, "a refused template is not sent again");
    push_all(r, other);
    // The other replica shows the same, the notices that could not go included.
    let (c, id) = (nodes[1].caller.clone(), walk_in.id.clone());
    let there = other.read(move |conn| orders::get(conn, &c, &id)).unwrap();
    assert_eq!(there.notices, walk_in.notices);
    move_to(r, &caller, &third.id, OrderStatus::Confirmed);
    move_to(other, &nodes[1].caller, &third.id, OrderStatus::Confirmed);
    push_all(r, other);
    push_all(other, r);
    for node in [r, other] {
        let id = third.id.clone();
        let n: i64 = node
            .read(move |c| {
                Ok(c.query_row("SELECT count(*) FROM messages WHERE id LIKE 'notice.' || ?1 || '.%'", [&id], |r| {
                    r.get(0)
                })?)
            })
            .unwrap();
        assert_eq!(n, 1);
    }
    assert_eq!(message_rows(other), message_rows(r));
}

#[test]
fn the_shop_writes_first_to_a_customer_with_a_template_and_their_answer_comes_to_that_conversation() {
    use dashoffice_core::domain::{
        OrderStatus,
        api::{CreateCustomer, CreateOrder, OrderLineInput, TransitionOrder, UpdateCustomer, UpdateShop},
    };
    use dashoffice_core::entities::{customers, orders, org, products};
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop = caller.shop_id.clone();
    let c = caller.clone();
    let (lucia, marta, product) = r
        .write_blocking(move |ctx| {
            let mk = |ctx: &mut dashoffice_core::WriteCtx<'_>, name: &str| {
                customers::create(ctx, &c, CreateCustomer { name: name.into(), ..Default::default() })
            };
            let (l, m) = (mk(ctx, "Lucía")?, mk(ctx, "Marta")?);
            let p = products::create(ctx, &c, super::fixtures::product_input("CAM-001", "250.00"))?;
            let tpl = json!({ "name": "hola_cliente", "language": "es_MX", "body": "Hola {{1}}", "params": 1 });
            inbox::put_item(ctx, &c, "template", "hola_cliente", &tpl)?;
            Ok((l, m, p))
        })
        .unwrap();
    let start = |customer: &str| {
        let (c, id) = (caller.clone(), customer.to_string());
        r.write_blocking(move |ctx| inbox::start(ctx, &c, &id, None))
    };

    // No WhatsApp number and no phone: refused, naming the field, and nothing written.
    let refused = start(&lucia.id).unwrap_err();
    assert!(refused.to_string().contains("wa_id"), "{refused}");
    let count = |sql: &'static str| r.read(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?)).unwrap();
    assert_eq!(count("SELECT count(*) FROM conversations"), 0);

    // With her mobile phone: a conversation of the caller's, open, whose number is her phone's.
    let (c, id) = (caller.clone(), lucia.id.clone());
    r.write_blocking(move |ctx| {
        customers::update(ctx, &c, &id, UpdateCustomer { phone: Some("+52 55 1234 5678".into()), ..Default::default() })
    })
    .unwrap();
    let conv = start(&lucia.id).unwrap();
    assert_eq!(conv.state, ConversationState::Open);
    assert_eq!(conv.assignee_id.as_deref(), Some(caller.user_id.as_str()));
    assert_eq!(conv.branch_id, branch);
    assert_eq!(conv.customer_name, "Lucía");
    assert_eq!(conv.last_inbound_at, None);
    let (c, id) = (caller.clone(), lucia.id.clone());
    let kept = r.read(move |conn| customers::get(conn, &c.shop_id, &id)).unwrap();
    assert_eq!(kept.wa_id.as_deref(), Some("525512345678"), "her answer must find her");
    assert_eq!(start(&lucia.id).unwrap().id, conv.id, "started twice, one conversation");

    // Free text is refused (WhatsApp's rule for writing first); the template goes out from the
    // shop's number for the branch (chosen by the relay: the conversation names none).
    let send = |m: SendMessage| {
        let (c, id) = (caller.clone(), conv.id.clone());
        r.write_blocking(move |ctx| inbox::send(ctx, &c, &id, m, &c.user_id.clone()))
    };
    let e = send(text("hola")).unwrap_err();
    assert!(e.to_string().contains("hola_cliente"), "the error offers the templates: {e}");
    let tpl = SendMessage {
        kind: Some("template".into()),
        template: Some("hola_cliente".into()),
        params: vec!["Lucía".into()],
        ..Default::default()
    };
    let sent = send(tpl).unwrap();
    let s = shop.clone();
    let out = r.read(move |c| inbox::queued(c, &s, 10)).unwrap();
    let o = out.iter().find(|o| o.message.id == sent.id).expect("queued");
    assert_eq!(
        (o.to.as_str(), o.phone_number_id.as_str(), o.branch_id.as_str()),
        ("525512345678", "", branch.as_str())
    );

    // She answers: the same conversation, the same customer, still with the person who wrote.
    // WhatsApp writes her Mexican mobile with the old mobile marker (52 1 …): the same number.
    clock.advance(60_000);
    let answer_in = Inbound {
        wa_id: "5215512345678".into(),
        profile_name: "Lucy".into(),
        ..inbound("wamid.l1", "¡Hola!", next_at(&clock))
    };
    let (s, b) = (shop.clone(), branch.clone());
    let got = r.write_blocking(move |ctx| inbox::receive(ctx, &s, &b, &answer_in)).unwrap();
    assert_eq!(got.conversation_id, conv.id);
    assert_eq!(got.customer_id, lucia.id);
    assert_eq!(got.state, ConversationState::Open);
    assert_eq!(count("SELECT count(*) FROM customers"), 2, "no second Lucía");
    assert!(send(text("¿En qué te ayudo?")).is_ok(), "the window is open now");
    let s = shop.clone();
    let out = r.read(move |c| inbox::queued(c, &s, 10)).unwrap();
    assert_eq!(out.last().map(|o| o.to.as_str()), Some("5215512345678"), "the reply goes to the number she wrote from");

    // An order's notice to a customer who never wrote but has a phone opens her conversation with
    // the shop's template (the bot's: pending); without a template it is marked, not sent.
    let (c, id) = (caller.clone(), marta.id.clone());
    r.write_blocking(move |ctx| {
        customers::update(
            ctx,
            &c,
            &id,
            UpdateCustomer { phone: Some("+52 55 8765 4321".into()), ..Default::default() },
        )?;
        let notices = [("confirmed".to_string(), "Tu pedido {number} está confirmado.".to_string())].into();
        org::update_shop(ctx, &c, UpdateShop { order_notices: Some(notices), ..Default::default() })
    })
    .unwrap();
    let order_for = |customer: &str| {
        let (c, customer, b, p) = (caller.clone(), customer.to_string(), branch.clone(), product.id.clone());
        r.write_blocking(move |ctx| {
            let line = OrderLineInput { product_id: p, quantity: 1, unit_price: None };
            let input = CreateOrder {
                customer_id: customer,
                branch_id: Some(b),
                seller_id: None,
                lines: vec![line],
                notes: String::new(),
            };
            let o = orders::create(ctx, &c, None, input)?;
            orders::transition(ctx, &c, &o.id, TransitionOrder { to: OrderStatus::Confirmed })
        })
        .unwrap()
    };
    let first = order_for(&marta.id);
    assert_eq!(first.notices[0].skipped.as_deref(), Some("window_closed"), "{:#?}", first.notices);
    assert_eq!(count("SELECT count(*) FROM conversations"), 1, "no conversation opened for nothing");
    let c = caller.clone();
    r.write_blocking(move |ctx| {
        org::update_shop(
            ctx,
            &c,
            UpdateShop { order_notice_template: Some("hola_cliente".into()), ..Default::default() },
        )
    })
    .unwrap();
    let second = order_for(&marta.id);
    let n = &second.notices[0];
    assert_eq!((n.kind.as_str(), n.skipped.as_deref()), ("template", None), "{:#?}", second.notices);
    let id = n.conversation_id.clone();
    let (state, assignee, wa): (String, Option<String>, String) = r
        .read(move |c| {
            Ok(c.query_row("SELECT state, assignee_id, wa_id FROM conversations WHERE id = ?1", [&id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
        })
        .unwrap();
    assert_eq!((state.as_str(), assignee.unwrap_or_default().as_str(), wa.as_str()), ("pending", "", "525587654321"));

    // The other replica has all of it.
    let other = &nodes[1].replica;
    push_all(r, other);
    assert_eq!(message_rows(other), message_rows(r));
}

#[test]
fn a_broadcast_sends_a_template_to_a_tag_once_and_leaves_out_who_opted_out_or_cannot_be_reached() {
    use dashoffice_core::domain::{
        Role,
        api::{CreateCustomer, UpdateCustomer},
        inbox::SendBroadcast,
    };
    use dashoffice_core::entities::{broadcasts, customers};
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop = caller.shop_id.clone();
    // Ana wrote on WhatsApp before; the others never did.
    let (ana, _) =
        answer(r, &shop, &branch, inbound("wamid.b1", "hola", next_at(&clock)), vec![text("¡Hola!")], ("", 0, false));
    let c = caller.clone();
    let ana_customer = ana.received.customer_id.clone();
    let ids = r
        .write_blocking(move |ctx| {
            let tpl = json!({ "name": "promo", "language": "es_MX", "body": "{{1}}: 20% en tazas", "params": 1 });
            inbox::put_item(ctx, &c, "template", "promo", &tpl)?;
            let vip = |t: &[&str]| Some(t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            customers::update(
                ctx,
                &c,
                &ana_customer,
                UpdateCustomer { tags: vip(&["whatsapp", "vip"]), ..Default::default() },
            )?;
            let mut ids = Vec::new();
            for (name, phone, tags) in [
                ("Beatriz Ruiz", Some("+52 55 2222 3333"), vec!["vip"]),
                ("Carla Díaz", Some("+52 55 4444 5555"), vec!["vip", "no-promos"]),
                ("Dora Sin Teléfono", None, vec!["VIP"]),
                ("Elena Otra", Some("+52 55 6666 7777"), vec!["mayoreo"]),
                // Named by her number: greeted without it.
                ("+525544443333", Some("+52 55 4444 3333"), vec!["vip"]),
                // His phone is Gabriel's WhatsApp number: left out until they are merged.
                ("Hugo Duplicado", Some("+52 55 9876 5432"), vec!["vip"]),
            ] {
                let input = CreateCustomer {
                    name: name.into(),
                    phone: phone.map(str::to_string),
                    tags: tags.into_iter().map(str::to_string).collect(),
                    ..Default::default()
                };
                ids.push(customers::create(ctx, &c, input)?.id);
            }
            let gabriel = CreateCustomer {
                name: "Gabriel Número".into(),
                wa_id: Some("525598765432".into()),
                tags: vec!["vip".into()],
                ..Default::default()
            };
            ids.push(customers::create(ctx, &c, gabriel)?.id);
            Ok(ids)
        })
        .unwrap();
    let send = |c: &dashoffice_core::Caller, b: SendBroadcast| {
        let c = c.clone();
        r.write_blocking(move |ctx| broadcasts::send(ctx, &c, b))
    };
    let promo = || SendBroadcast {
        tag: "VIP".into(),
        template: "promo".into(),
        params: vec!["Hola {name}".into()],
        id: Some("navidad-2026".into()),
        ..Default::default()
    };

    // Bad requests name their field, and write nothing.
    for (bad, field) in [
        (SendBroadcast { tag: " ".into(), ..promo() }, "tag"),
        (SendBroadcast { tag: "no-promos".into(), ..promo() }, "tag"),
        (SendBroadcast { template: "otra".into(), ..promo() }, "template"),
        (SendBroadcast { params: vec![], ..promo() }, "params"),
        (SendBroadcast { params: vec!["  ".into()], ..promo() }, "params"),
        (SendBroadcast { id: Some("no vale!".into()), ..promo() }, "id"),
        (SendBroadcast { branch_id: Some("nope".into()), ..promo() }, "branch_id"),
    ] {
        let e = send(&caller, bad).unwrap_err();
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let seller = dashoffice_core::Caller { role: Role::Seller, branch_id: Some(branch.clone()), ..caller.clone() };
    assert!(send(&seller, promo()).is_err(), "a seller sends no broadcasts");
    let count = |sql: &'static str| r.read(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?)).unwrap();
    assert_eq!(count("SELECT count(*) FROM messages WHERE id LIKE 'broadcast.%'"), 0);

    // Ana (in her conversation) and Beatriz (in a new one, the bot's) get it, with their names;
    // Carla asked for no promotions; Dora has no number; Elena has another tag.
    let report = send(&caller, promo()).unwrap();
    assert_eq!((report.id.as_str(), report.queued, report.already), ("navidad-2026", 4, 0));
    let skipped: Vec<(&str, &str)> = report.skipped.iter().map(|s| (s.name.as_str(), s.reason.as_str())).collect();
    assert_eq!(
        skipped,
        [("Carla Díaz", "opted_out"), ("Dora Sin Teléfono", "no_whatsapp"), ("Hugo Duplicado", "duplicate_number")]
    );
    let s = shop.clone();
    let out = r.read(move |c| inbox::queued(c, &s, 50)).unwrap();
    let sent: Vec<(String, String, String)> = out
        .iter()
        .filter(|o| o.message.id.starts_with("broadcast.navidad-2026."))
        .map(|o| (o.to.clone(), o.message.text.clone(), o.message.conversation_id.clone()))
        .collect();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent.iter().any(|(to, text, _)| to == "525544443333" && text == "Hola cliente: 20% en tazas"), "{sent:?}");
    assert!(sent.contains(&(
        "5215511112222".into(),
        "Hola Ana: 20% en tazas".into(),
        ana.received.conversation_id.clone()
    )));
    let beatriz = sent.iter().find(|(to, _, _)| to == "525522223333").expect("Beatriz");
    assert_eq!(beatriz.1, "Hola Beatriz: 20% en tazas");
    let conv = beatriz.2.clone();
    let state: String = r
        .read(move |c| Ok(c.query_row("SELECT state FROM conversations WHERE id = ?1", [&conv], |r| r.get(0))?))
        .unwrap();
    assert_eq!(state, "pending", "her answer goes to the bot first");
    assert!(!ids.is_empty());

    // The same broadcast again sends nothing twice.
    let again = send(&caller, promo()).unwrap();
    assert_eq!((again.queued, again.already, again.skipped.len()), (0, 4, 3));
    assert_eq!(count("SELECT count(*) FROM messages WHERE id LIKE 'broadcast.%'"), 4);
    // The list of broadcasts: this one, its two messages waiting for the relay.
    let c = caller.clone();
    let list = r.read(move |conn| broadcasts::list(conn, &c)).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert_eq!((b.id.as_str(), b.template.as_str(), b.total, b.queued, b.sent), ("navidad-2026", "promo", 4, 4, 0));
    // A bot's reply written after the broadcast still goes out first.
    let (late, _) = answer(
        r,
        &shop,
        &branch,
        inbound("wamid.b9", "¿precio?", next_at(&clock)),
        vec![text("Cuesta 10")],
        ("", 0, false),
    );
    let s = shop.clone();
    let first = r.read(move |c| inbox::queued(c, &s, 3)).unwrap();
    let texts: Vec<&str> = first.iter().map(|o| o.message.text.as_str()).collect();
    assert_eq!(texts[..2], ["¡Hola!", "Cuesta 10"], "the replies (oldest first), then the broadcast");
    assert_eq!(first[1].message.conversation_id, late.received.conversation_id);
    assert!(first[2].message.id.starts_with("broadcast."));
    let s2 = seller.clone();
    assert!(r.read(move |conn| broadcasts::list(conn, &s2)).is_err(), "a seller sees no broadcasts");

    // Beatriz writes BAJA after the broadcast was written: the relay's check before each send
    // sees her tag (and the bot's words for it are there).
    let beatriz_conv = beatriz.2.clone();
    let bc = beatriz_conv.clone();
    assert!(!r.read(move |c| broadcasts::opted_out(c, &bc)).unwrap());
    // She has as many tags as staff may give: her own word still counts.
    let (c, id) = (caller.clone(), ids[0].clone());
    r.write_blocking(move |ctx| {
        let tags: Vec<String> = (0..19).map(|i| format!("t{i}")).chain(["vip".to_string()]).collect();
        customers::update(ctx, &c, &id, UpdateCustomer { tags: Some(tags), ..Default::default() })
    })
    .unwrap();
    let (s, id) = (shop.clone(), ids[0].clone());
    assert!(r.write_blocking(move |ctx| broadcasts::set_promotions(ctx, &s, &id, true)).unwrap());
    let bc = beatriz_conv.clone();
    assert!(r.read(move |c| broadcasts::opted_out(c, &bc)).unwrap());
    let (s, id) = (shop.clone(), ids[0].clone());
    assert!(!r.write_blocking(move |ctx| broadcasts::set_promotions(ctx, &s, &id, true)).unwrap(), "already out");
    let (c, id) = (caller.clone(), ids[0].clone());
    let tags = r.read(move |conn| customers::get(conn, &c.shop_id, &id)).unwrap().tags;
    assert_eq!(tags.len(), 21, "{tags:?}");

    // BAJA on a resolved conversation leaves it resolved (like a rating), and tags nobody here:
    // the relay does that (see the e2e test).
    let (c, conv) = (caller.clone(), ana.received.conversation_id.clone());
    r.write_blocking(move |ctx| {
        inbox::update(ctx, &c, &conv, UpdateConversation { state: Some("resolved".into()), ..Default::default() })
    })
    .unwrap();
    let (baja, _) = answer(r, &shop, &branch, inbound("wamid.b10", "BAJA", next_at(&clock)), vec![], ("", 0, false));
    assert_eq!(baja.received.state, ConversationState::Resolved);

    let other = &nodes[1].replica;
    push_all(r, other);
    assert_eq!(message_rows(other), message_rows(r));
}

/// (wa_id, phone_number_id, state, assignee, customer) of every conversation, as projected.
fn conversation_rows(r: &Replica) -> Vec<(String, String, String, String, String, String)> {
    r.read(|c| {
        let mut st = c.prepare(
            "SELECT id, wa_id, phone_number_id, state, coalesce(assignee_id, ''), customer_id FROM conversations ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .unwrap()
}

#[test]
fn a_conversation_opened_apart_by_a_device_and_by_the_customers_first_message_is_one_record() {
    use dashoffice_core::domain::api::CreateCustomer;
    use dashoffice_core::entities::customers;
    let (clock, nodes, branch) = two_nodes();
    let (device, relay) = (&nodes[0].replica, &nodes[1].replica);
    let caller = nodes[0].caller.clone();
    let shop = caller.shop_id.clone();
    let c = caller.clone();
    let lucia = device
        .write_blocking(move |ctx| {
            customers::create(
                ctx,
                &c,
                CreateCustomer { name: "Lucía".into(), wa_id: Some("5215511112222".into()), ..Default::default() },
            )
        })
        .unwrap();
    push_all(device, relay);
    // Apart: the shop writes first on one device while her first message reaches the relay.
    let (c, id) = (caller.clone(), lucia.id.clone());
    let started = device.write_blocking(move |ctx| inbox::start(ctx, &c, &id, None)).unwrap();
    let (s, b, m) = (shop.clone(), branch.clone(), inbound("wamid.apart", "hola", next_at(&clock)));
    let got = relay.write_blocking(move |ctx| inbox::receive(ctx, &s, &b, &m)).unwrap();
    assert_eq!(got.conversation_id, started.id, "the same conversation on both");
    // Both ways, twice: every change is accepted and both replicas project the same record.
    for _ in 0..2 {
        push_all(device, relay);
        push_all(relay, device);
    }
    let (here, there) = (conversation_rows(device), conversation_rows(relay));
    assert_eq!(here, there);
    assert_eq!(here.len(), 1, "{here:?}");
    let (_, wa, number, _, _, customer) = &here[0];
    assert_eq!((wa.as_str(), number.as_str(), customer.as_str()), ("5215511112222", "1065", lucia.id.as_str()));
    assert_eq!(message_rows(device), message_rows(relay));
    let doc = DocId::conversations(&shop, &branch, &started.id);
    assert_eq!(changes(device, doc.as_str()), changes(relay, doc.as_str()));
}

#[test]
fn a_customer_who_first_writes_in_english_gets_english_emails() {
    let (clock, nodes, branch) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop = caller.shop_id.clone();
    for (wamid, wa_id, text) in [
        ("wamid.e1", "15551230001", "Hi, how much is the blue shirt?"),
        ("wamid.e2", "15551230002", "Hola, ¿cuánto cuesta la camisa azul?"),
        ("wamid.e3", "15551230003", "👍"),
    ] {
        let m = Inbound { wa_id: wa_id.into(), ..inbound(wamid, text, next_at(&clock)) };
        let (s, b) = (shop.clone(), branch.clone());
        r.write_blocking(move |ctx| inbox::receive(ctx, &s, &b, &m)).unwrap();
    }
    let langs: Vec<(String, String)> = r
        .read(|c| {
            let mut q = c.prepare("SELECT wa_id, lang FROM customers ORDER BY wa_id")?;
            Ok(q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    let langs: Vec<(&str, &str)> = langs.iter().map(|(w, l)| (w.as_str(), l.as_str())).collect();
    assert_eq!(langs, [("15551230001", "en"), ("15551230002", "es"), ("15551230003", "es")]);
}

#[test]
fn a_scheduled_broadcast_goes_at_its_time_to_whoever_has_the_tag_then_unless_cancelled() {
    use dashoffice_core::domain::{api::CreateCustomer, inbox::SendBroadcast};
    use dashoffice_core::entities::{broadcasts, customers};
    let (clock, nodes, _) = two_nodes();
    let (r, caller) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop = caller.shop_id.clone();
    let c = caller.clone();
    r.write_blocking(move |ctx| {
        let tpl = json!({ "name": "promo", "language": "es_MX", "body": "{{1}}: 20% en tazas", "params": 1 });
        inbox::put_item(ctx, &c, "template", "promo", &tpl)?;
        let input = CreateCustomer {
            name: "Beatriz Ruiz".into(),
            phone: Some("+52 55 2222 3333".into()),
            tags: vec!["vip".into()],
            ..Default::default()
        };
        customers::create(ctx, &c, input)
    })
    .unwrap();
    let hour = 3_600_000;
    let schedule = |id: &str, at: i64| {
        let b = SendBroadcast {
            tag: "vip".into(),
            template: "promo".into(),
            params: vec!["{name}".into()],
            id: Some(id.into()),
            send_at: Some(at),
            ..Default::default()
        };
        let c = caller.clone();
        r.write_blocking(move |ctx| broadcasts::send(ctx, &c, b))
    };
    let now = clock.now_ms();
    // Too far ahead is refused by name; tomorrow is kept, nothing queued yet.
    let far = schedule("lejos", now + 91 * 24 * hour).unwrap_err();
    assert!(far.to_string().contains("send_at"), "{far}");
    let report = schedule("viernes", now + hour).unwrap();
    assert_eq!((report.scheduled_at, report.queued, report.audience), (Some(now + hour), 0, 1));
    assert_eq!(schedule("viernes", now + hour).unwrap(), report, "scheduling again changes nothing");
    schedule("cancelada", now + hour).unwrap();
    let count = || r.read(|c| Ok(c.query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))?)).unwrap();
    assert_eq!(count(), 0);
    let s = shop.clone();
    let due = |at: i64| {
        let s = s.clone();
        r.read(move |c| broadcasts::due(c, &s, at)).unwrap()
    };
    assert!(due(now).is_empty(), "not before its time");
    // One is cancelled; a customer tagged meanwhile is in the other.
    let c = caller.clone();
    r.write_blocking(move |ctx| {
        broadcasts::cancel(ctx, &c, "cancelada")?;
        let input = CreateCustomer {
            name: "Carla Díaz".into(),
            phone: Some("+52 55 4444 5555".into()),
            tags: vec!["vip".into()],
            ..Default::default()
        };
        customers::create(ctx, &c, input)
    })
    .unwrap();
    let state = |id: &str| {
        let c = caller.clone();
        let all = r.read(move |conn| broadcasts::list(conn, &c)).unwrap();
        all.into_iter().find(|b| b.id == id).map(|b| (b.state, b.total, b.tag)).unwrap()
    };
    assert_eq!(state("viernes"), ("scheduled".into(), 0, "vip".into()));
    assert_eq!(state("cancelada").0, "cancelled");
    // Its id does not go now as well; a cancelled id is not scheduled again; a past time is refused.
    let rule = |e: dashoffice_core::CoreError| match e {
        dashoffice_core::CoreError::Conflict { field, rule, .. } => (field, rule),
        dashoffice_core::CoreError::Validation(errs) => (errs.0[0].field.clone(), errs.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    let c = caller.clone();
    let now_too = r
        .write_blocking(move |ctx| {
            let b = SendBroadcast {
                tag: "vip".into(),
                template: "promo".into(),
                params: vec!["x".into()],
                id: Some("viernes".into()),
                ..Default::default()
            };
            broadcasts::send(ctx, &c, b)
        })
        .unwrap_err();
    assert_eq!(rule(now_too), ("id".into(), "scheduled".into()));
    assert_eq!(rule(schedule("cancelada", now + 2 * hour).unwrap_err()), ("state".into(), "scheduled".into()));
    assert_eq!(rule(schedule("viernes", now + 2 * hour).unwrap_err()), ("id".into(), "unique".into()));
    assert_eq!(rule(schedule("ayer", now - hour).unwrap_err()), ("send_at".into(), "min".into()));
    // Its time: the relay sends it, once.
    clock.advance(hour);
    assert_eq!(due(clock.now_ms()), ["viernes"]);
    let s = shop.clone();
    let went = r.write_blocking(move |ctx| broadcasts::send_scheduled(ctx, &s, "viernes")).unwrap().unwrap();
    assert_eq!(went.queued, 2, "{went:?}");
    assert!(due(clock.now_ms()).is_empty());
    let s = shop.clone();
    assert!(r.write_blocking(move |ctx| broadcasts::send_scheduled(ctx, &s, "viernes")).unwrap().is_none());
    assert_eq!(count(), 2);
    assert_eq!(state("viernes").0, "sent");
    // Gone, it cannot be cancelled; an unknown one is not found.
    let c = caller.clone();
    let late = r.write_blocking(move |ctx| broadcasts::cancel(ctx, &c, "viernes")).unwrap_err();
    assert!(late.to_string().contains("went already"), "{late}");
    let c = caller.clone();
    assert!(r.write_blocking(move |ctx| broadcasts::cancel(ctx, &c, "nada")).is_err());
    // One whose template is gone by its time: nothing half sent, recorded as failed, not retried.
    schedule("tarde", clock.now_ms() + hour).unwrap();
    let c = caller.clone();
    r.write_blocking(move |ctx| inbox::delete_item(ctx, &c, "template", "promo")).unwrap();
    clock.advance(hour);
    let s = shop.clone();
    let e = r.write_blocking(move |ctx| broadcasts::send_scheduled(ctx, &s, "tarde")).unwrap_err();
    let why = e.to_string();
    let s = shop.clone();
    r.write_blocking(move |ctx| broadcasts::mark_failed(ctx, &s, "tarde", &why)).unwrap();
    assert_eq!(count(), 2);
    assert_eq!(state("tarde").0, "failed");
    assert!(due(clock.now_ms()).is_empty());
}
