//! The satisfaction survey: when a shop asks for it (`satisfaction_survey` on the shop), a WhatsApp
//! conversation that is resolved gets three reply buttons asking the customer to rate it. The
//! customer's tap comes back as an interactive reply: the relay keeps it as a message, puts the
//! rating on the conversation (a resolved conversation stays resolved; a bad rating hands it back
//! to a person) and thanks them. The analytics count the ratings of a period per seller.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use dashoffice_domain::{
    api::{RatingsBy, Satisfaction},
    inbox::{ConversationState, ReplyButton, SendMessage},
};
use rusqlite::{Connection, OptionalExtension, params};

use super::inbox::{self, Inbound};
use crate::{WriteCtx, doc, error::Result};

/// What a customer thought of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rating {
    /// 😀
    Good,
    /// 😐
    Ok,
    /// 😞
    Bad,
}

/// The button ids of the survey start so (`csat:good`…); the analytics find surveys and ratings by it.
const PREFIX: &str = "csat:";

impl Rating {
    /// All, best first.
    pub const ALL: [Rating; 3] = [Rating::Good, Rating::Ok, Rating::Bad];

    /// `good`, `ok`, `bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Ok => "ok",
            Rating::Bad => "bad",
        }
    }

    /// From `good`, `ok` or `bad`.
    pub fn parse(s: &str) -> Option<Rating> {
        Rating::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reply button's id.
    pub fn button_id(self) -> String {
        format!("{PREFIX}{}", self.as_str())
    }

    /// From a reply button's id (`csat:good`…).
    fn from_button_id(id: &str) -> Option<Rating> {
        id.strip_prefix(PREFIX).and_then(Rating::parse)
    }

    fn title(self, lang: &str) -> &'static str {
        match (self, lang) {
            (Rating::Good, "en") => "😀 Great",
            (Rating::Ok, "en") => "😐 Okay",
            (Rating::Bad, "en") => "😞 Bad",
            (Rating::Good, _) => "😀 Muy bien",
            (Rating::Ok, _) => "😐 Regular",
            (Rating::Bad, _) => "😞 Mal",
        }
    }
}

/// The rating an inbound message gives: a tap on one of the survey's buttons.
pub fn rating_of(m: &Inbound) -> Option<Rating> {
    if m.kind != "interactive" {
        return None;
    }
    Rating::from_button_id(m.payload.get("id").and_then(|v| v.as_str())?)
}

/// The language the customer answered the survey in (its buttons' titles differ).
pub fn language_of(m: &Inbound) -> &'static str {
    let title = m.payload.get("title").and_then(|v| v.as_str()).unwrap_or(&m.text);
    if Rating::ALL.iter().any(|r| r.title("en") == title) { "en" } else { "es" }
}

/// The survey, in `lang` (`es` or `en`): the shop's own `question` when it has one.
pub fn survey_message(lang: &str, question: &str) -> SendMessage {
    let text = if !question.trim().is_empty() {
        question.trim()
    } else if lang == "en" {
        "How did we do? Tap one to rate this conversation."
    } else {
        "¿Cómo te atendimos? Toca una opción para calificar esta conversación."
    };
    SendMessage {
        kind: Some("buttons".into()),
        text: text.into(),
        buttons: Rating::ALL.iter().map(|r| ReplyButton { id: r.button_id(), title: r.title(lang).into() }).collect(),
        ..Default::default()
    }
}

/// The answer to a rating, in `lang`.
pub fn thanks(rating: Rating, lang: &str) -> SendMessage {
    let text = match (rating, lang == "en") {
        (Rating::Good, true) => "Thank you for rating us! We are glad we could help.",
        (Rating::Ok, true) => "Thank you for rating us! We will keep improving.",
        (Rating::Bad, true) => {
            "Thank you for telling us, and we are sorry we fell short. Tell us what went wrong if you like: a person on our team will read it and answer."
        }
        (Rating::Good, false) => "¡Gracias por calificarnos! Nos alegra haberte ayudado.",
        (Rating::Ok, false) => "¡Gracias por calificarnos! Seguiremos mejorando.",
        (Rating::Bad, false) => {
            "Gracias por decírnoslo y lamentamos no haber estado a la altura. Si quieres, cuéntanos qué pasó: una persona de nuestro equipo lo leerá y te responderá."
        }
    };
    SendMessage { kind: Some("text".into()), text: text.into(), ..Default::default() }
}

/// Called once a conversation has been resolved (by a person or by the bot's end): queues the
/// survey when the shop asks for it, the customer's 24-hour window is open, and the customer has
/// written since the last survey and since their last rating (a conversation resolved again
/// without a word from them is not asked twice). Returns the survey's message id when one went.
pub fn after_resolved(ctx: &mut WriteCtx<'_>, shop: &str, conversation: &str) -> Result<Option<String>> {
    let (on, question): (bool, String) = ctx
        .conn()
        .prepare_cached("SELECT satisfaction_survey, satisfaction_question FROM shops WHERE id = ?1")?
        .query_row([shop], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or_default();
    if !on {
        return Ok(None);
    }
    let c = inbox::get_conversation(ctx.conn(), shop, conversation)?;
    let (survey_at, rated_at): (i64, i64) = ctx
        .conn()
        .prepare_cached("SELECT survey_at, rated_at FROM conversations WHERE id = ?1")?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let Some(last_in) = c.last_inbound_at else { return Ok(None) };
    let window_open = dashoffice_domain::inbox::window_open(Some(last_in), ctx.now());
    if c.state != ConversationState::Resolved || !window_open || c.needs_template || last_in <= survey_at.max(rated_at)
    {
        return Ok(None);
    }
    let lang = language_of_conversation(ctx.conn(), conversation)?;
    // Read in the thread as "trigger resolved · node satisfaction_survey".
    let explain = serde_json::json!({
        "trigger": { "kind": "resolved" }, "node": "satisfaction_survey", "survey": "satisfaction", "language": lang,
    });
    let id = inbox::bot_reply(ctx, shop, conversation, &survey_message(lang, &question), &explain)?;
    let doc_id = inbox::conversation_doc_id(ctx.conn(), conversation)?;
    let now = ctx.now();
    ctx.change(&doc_id, &[conversation], |tx, _| {
        let o =
            doc::record(tx, conversation)?.ok_or_else(|| crate::CoreError::not_found("conversation", conversation))?;
        tx.put(&o, "survey_at", now)?;
        Ok(())
    })?;
    Ok(Some(id))
}

/// The language of the customer's last written message (`es` unless it reads as English).
fn language_of_conversation(conn: &Connection, conversation: &str) -> Result<&'static str> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT text FROM messages WHERE conversation_id = ?1 AND direction = 'in' AND kind = 'text'
             ORDER BY at DESC LIMIT 1",
        )?
        .query_row([conversation], |r| r.get(0))
        .optional()?;
    let lang = text.map(|t| crate::bot::analyse(&t, &|_| Vec::new()).language).unwrap_or_default();
    Ok(if lang == "en" { "en" } else { "es" })
}

/// The surveys sent and ratings given from `start_ms` to before `end_ms` (in `branch` when given),
/// per seller.
pub fn period(
    conn: &Connection,
    shop: &str,
    branch: Option<&str>,
    (start_ms, end_ms): (i64, i64),
    staff: &BTreeMap<String, String>,
) -> Result<Satisfaction> {
    // Both kinds of message are found through the partial index `messages_csat`, whose condition
    // the query repeats word for word.
    let mut st = conn.prepare_cached(
        r#"SELECT m.direction, json_extract(m.payload, '$.id'), coalesce(c.assignee_id, '')
           FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
           WHERE m.shop_id = ?1 AND m.at >= ?2 AND m.at < ?4 AND m.payload LIKE '%"csat:%'
             AND (?3 IS NULL OR m.branch_id = ?3)
             AND ((m.direction = 'out' AND m.kind = 'buttons') OR (m.direction = 'in' AND m.kind = 'interactive'))"#,
    )?;
    let mut rows = st.query(params![shop, start_ms, branch, end_ms])?;
    let mut s = Satisfaction::default();
    let mut by: BTreeMap<String, RatingsBy> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let (direction, id, seller): (String, Option<String>, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        if direction == "out" {
            s.surveys += 1;
            continue;
        }
        let Some(rating) = id.as_deref().and_then(Rating::from_button_id) else {
            continue;
        };
        let e = by.entry(seller.clone()).or_insert_with(|| RatingsBy {
            label: staff.get(&seller).cloned().unwrap_or_else(|| seller.clone()),
            key: seller,
            ..Default::default()
        });
        let (all, one) = match rating {
            Rating::Good => (&mut s.good, &mut e.good),
            Rating::Ok => (&mut s.ok, &mut e.ok),
            Rating::Bad => (&mut s.bad, &mut e.bad),
        };
        *all += 1;
        *one += 1;
    }
    let rated = s.good + s.ok + s.bad;
    s.score = (rated > 0).then(|| (s.good as f64 * 1000.0 / rated as f64).round() / 10.0);
    s.by_seller = by.into_values().collect();
    s.by_seller
        .sort_by(|x, y| (y.good + y.ok + y.bad).cmp(&(x.good + x.ok + x.bad)).then_with(|| x.label.cmp(&y.label)));
    Ok(s)
}
