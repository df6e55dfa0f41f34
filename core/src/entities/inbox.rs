//! The WhatsApp inbox. Conversations (one per customer per branch) live in 1,024 shard documents
//! of their branch; messages in one document per branch per month, like orders, so old months go
//! cold. Shop-wide inbox items (bots, canned responses, approved templates, who is on shift) live
//! in one `inbox` document.
//!
//! Ids are deterministic where two replicas may create the same thing: a conversation's id derives
//! from its branch and customer, an inbound message's from its WhatsApp id (wamid), so a webhook
//! delivered twice, or processed on two replicas, makes one record.
//!
//! What is derived, not stored: the last message, the customer's last message (the 24-hour
//! window), the unread count and the conversation's last activity (`updated_at`: the later of its
//! record's last change and its last message) come from the messages table, so concurrent
//! writers never disagree about them, and a message does not rewrite its conversation.

use automerge::{ObjType, transaction::Transactable};
use dashoffice_domain::{
    FieldError, Permission,
    api::Page,
    inbox::{
        CannedResponse, ConversationParams, ConversationState, ConversationThread, ConversationView, MessageStatus,
        MessageView, SendMessage, SendOrderDocument, ShiftView, TemplateView, UpdateConversation, validate_send,
        window_open,
    },
    normalize_tags,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};
use sha2::{Digest, Sha256};

use super::{customers, new_id, org, put_str, tags_from_json, tags_json};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

/// Who writes on behalf of the relay (webhooks, bots, delivery reports).
pub const SYSTEM_USER: &str = "whatsapp";
/// The sender of bot messages.
pub const BOT_SENDER: &str = "bot";
/// The sender of inbound messages.
pub const CUSTOMER_SENDER: &str = "customer";

fn derived_id(prefix: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(prefix.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Uuid::from_bytes(b).to_string()
}

/// The conversation of `customer` in `branch`.
pub fn conversation_id(branch: &str, customer: &str) -> String {
    derived_id("conversation", &[branch, customer])
}

/// The record id of the inbound message with WhatsApp id `wamid`.
pub fn inbound_message_id(wamid: &str) -> String {
    derived_id("wamid", &[wamid])
}

/// A message as the webhook delivered it, already normalised by the relay.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// WhatsApp message id.
    pub wamid: String,
    /// The customer's WhatsApp id.
    pub wa_id: String,
    /// Their profile name.
    pub profile_name: String,
    /// The shop's number it was sent to.
    pub phone_number_id: String,
    /// Message type (text, image, …).
    pub kind: String,
    /// Text, caption, button title, or a summary.
    pub text: String,
    /// Type-specific content.
    pub payload: serde_json::Value,
    /// The message it replies to.
    pub context_wamid: Option<String>,
    /// When the customer sent it (Unix ms).
    pub at: i64,
}

/// What receiving a message did.
#[derive(Debug, Clone)]
pub struct Received {
    /// The conversation.
    pub conversation_id: String,
    /// The message record.
    pub message_id: String,
    /// The customer.
    pub customer_id: String,
    /// The message was already there (a redelivery): nothing was written.
    pub duplicate: bool,
    /// It is the first message of the conversation.
    pub first: bool,
    /// The conversation's state after receiving it.
    pub state: ConversationState,
}

/// The two ways one WhatsApp number is written. WhatsApp's webhooks write Mexican and Argentine
/// mobiles with the old mobile marker (52 1 …, 54 9 …, 13 digits) and people usually write them
/// without it (+52 55 …, 12 digits): `5215512345678` and `525512345678` are one customer. Other
/// numbers have one form (returned twice).
pub(crate) fn number_forms(wa_id: &str) -> [String; 2] {
    let other = match (wa_id.len(), wa_id.get(..3)) {
        (13, Some("521" | "549")) => format!("{}{}", &wa_id[..2], &wa_id[3..]),
        (12, Some(p)) if p.starts_with("52") => format!("521{}", &wa_id[2..]),
        (12, Some(p)) if p.starts_with("54") => format!("549{}", &wa_id[2..]),
        _ => wa_id.to_string(),
    };
    [wa_id.to_string(), other]
}

fn find_customer_by_wa(conn: &Connection, shop: &str, wa_id: &str) -> Result<Option<String>> {
    // The form the number came in first, then the other (one index lookup each).
    let mut st = conn.prepare_cached(
        "SELECT id FROM customers WHERE shop_id = ?1 AND wa_id = ?2 AND archived = 0
         ORDER BY merged_into IS NOT NULL, created_at LIMIT 1",
    )?;
    let [same, other] = number_forms(wa_id);
    if let Some(id) = st.query_row([shop, &same], |r| r.get::<_, String>(0)).optional()? {
        return Ok(Some(id));
    }
    if other == same {
        return Ok(None);
    }
    Ok(st.query_row([shop, &other], |r| r.get::<_, String>(0)).optional()?)
}

/// The customer a merged duplicate now belongs to.
pub(crate) fn survivor(conn: &Connection, id: String) -> Result<String> {
    let mut cur = id;
    for _ in 0..8 {
        let next: Option<String> = conn
            .prepare_cached("SELECT merged_into FROM customers WHERE id = ?1")?
            .query_row([&cur], |r| r.get(0))
            .optional()?
            .flatten();
        match next {
            Some(n) if n != cur => cur = n,
            _ => break,
        }
    }
    Ok(cur)
}

pub(crate) fn message_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?.query_row([id], |_| Ok(())).optional()?.is_some())
}

/// Ensures the record of conversation `id` (see [`conversation_id`]) exists (deterministically, so
/// two replicas creating it offline make one), returning its document and whether it was new.
/// The first change holds only what every replica agrees on (the customer and the defaults): the
/// relay (a message came) and a replica the shop writes first from may create the same
/// conversation apart, and they know different things of it. The WhatsApp id and the shop's
/// number are written after it, as ordinary fields (see [`record_arrival`] and [`start`]).
/// Sessions up to 38 wrote those two into the first change under the plain record key; this one has
/// its own key, so a conversation made by both an old and a new replica apart becomes two
/// concurrent creations (one wins), never two first changes of one actor.
fn ensure_conversation(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    branch: &str,
    (id, customer): (&str, &str),
) -> Result<(DocId, bool)> {
    let doc_id = DocId::conversations(shop, branch, id);
    let existed = doc::record(ctx.doc(&doc_id)?, id)?.is_some();
    if !existed {
        let c = customer.to_string();
        let key = format!("record:conversations:2:{id}");
        ctx.ensure_record_keyed(&doc_id, id, &key, move |tx, o| {
            put_str(tx, o, "customer_id", &c)?;
            put_str(tx, o, "state", ConversationState::Pending.as_str())?;
            put_str(tx, o, "assignee_id", "")?;
            tx.put_object(o, "labels", ObjType::Map)?;
            tx.put(o, "read_at", 0i64)?;
            tx.put(o, "needs_template", false)?;
            put_str(tx, o, "bot_node", "")?;
            tx.put(o, "misunderstood", 0i64)?;
            tx.put(o, "created_at", 0i64)?;
            Ok(())
        })?;
    }
    Ok((doc_id, !existed))
}

/// Opens a WhatsApp conversation with customer `customer_id` from the shop's side (the customer
/// has not written, or not to the caller's branch): their latest conversation the caller may see
/// when there is one, else a new one in `branch_id` (default: the caller's branch, else the shop's
/// first), open and assigned to the caller. WhatsApp lets a shop write first only with an approved
/// template; the window opens when the customer answers, and their answer comes to this
/// conversation when the shop's number belongs to its branch. The customer needs a WhatsApp
/// number: their `wa_id`, else their phone's digits (then kept as their `wa_id`, so their answer
/// finds them).
pub fn start(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    customer_id: &str,
    branch_id: Option<&str>,
) -> Result<ConversationView> {
    caller.require(Permission::Converse)?;
    let customer_id = survivor(ctx.conn(), customer_id.to_string())?;
    let c = customers::get(ctx.conn(), &caller.shop_id, &customer_id)?;
    if c.archived {
        return Err(CoreError::conflict("customer_id", "archived", "the customer is archived"));
    }
    let branch = match (branch_id.filter(|b| !b.is_empty()), caller.branch_id.as_deref()) {
        (Some(b), Some(mine)) if b != mine => {
            return Err(FieldError::new("branch_id", "scope", "you work in one branch: leave it out").into());
        }
        (Some(b), _) => {
            org::get_branch(ctx.conn(), &caller.shop_id, b)
                .map_err(|_| CoreError::not_found_field("branch", b, "branch_id"))?;
            b.to_string()
        }
        (None, Some(mine)) => mine.to_string(),
        (None, None) => match org::list_branches(ctx.conn(), &caller.shop_id, false)?.into_iter().next() {
            Some(b) => b.id,
            None => return Err(FieldError::new("branch_id", "required", "the shop has no branch yet").into()),
        },
    };
    let id = conversation_id(&branch, &customer_id);
    let known = match branch_id.filter(|b| !b.is_empty()) {
        Some(_) => ctx
            .conn()
            .prepare_cached("SELECT id FROM conversations WHERE id = ?1")?
            .query_row([&id], |r| r.get::<_, String>(0))
            .optional()?,
        None => order_conversation(ctx.conn(), caller, &customer_id)?,
    };
    if let Some(known) = known {
        return get_conversation(ctx.conn(), &caller.shop_id, &known);
    }
    let wa_id = whatsapp_number(ctx, caller, &c)?;
    let (doc_id, _) = ensure_conversation(ctx, &caller.shop_id, &branch, (&id, &customer_id))?;
    let (me, now, name) = (caller.user_id.clone(), ctx.now(), c.name.clone());
    ctx.change(&doc_id, &[id.as_str()], |tx, _| {
        let o = doc::record(tx, &id)?.ok_or_else(|| CoreError::not_found("conversation", &id))?;
        // The shop's number is the relay's to choose (see `Outgoing::phone_number_id`).
        put_str(tx, &o, "wa_id", &wa_id)?;
        put_str(tx, &o, "state", ConversationState::Open.as_str())?;
        put_str(tx, &o, "assignee_id", &me)?;
        put_str(tx, &o, "customer_name", &name)?;
        tx.put(&o, "assigned_at", now)?;
        tx.put(&o, "read_at", now)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get_conversation(ctx.conn(), &caller.shop_id, &id)
}

/// Customer `c`'s WhatsApp number: their `wa_id`, else their phone's digits, kept as their
/// `wa_id` (an inbound message finds its customer by it).
fn whatsapp_number(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    c: &dashoffice_domain::api::CustomerView,
) -> Result<String> {
    if let Some(w) = c.wa_id.clone().filter(|w| !w.is_empty()) {
        return Ok(w);
    }
    let digits: Option<String> = c
        .phone
        .as_deref()
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| (6..=20).contains(&d.len()));
    let Some(d) = digits else {
        return Err(FieldError::new(
            "wa_id",
            "required",
            "the customer has no WhatsApp number: add their mobile phone to the customer first",
        )
        .into());
    };
    // Answers find their customer by this number: it must be theirs alone.
    if let Some(other) = find_customer_by_wa(ctx.conn(), &caller.shop_id, &d)?.filter(|o| *o != c.id) {
        let name = customers::get(ctx.conn(), &caller.shop_id, &other).map(|o| o.name).unwrap_or_default();
        return Err(CoreError::conflict(
            "wa_id",
            "unique",
            format!("{name} already has the WhatsApp number {d}: merge the two customers first"),
        ));
    }
    let set = dashoffice_domain::api::UpdateCustomer { wa_id: Some(d.clone()), ..Default::default() };
    customers::update(ctx, caller, &c.id, set)?;
    Ok(d)
}

/// The conversation an order's notice or a broadcast opens with customer `customer` in `branch`,
/// who has not written yet: the bot's (pending), like one the customer starts, so their answer
/// gets the bot first. What opens it goes as a template (see [`queue_notice`]).
pub(crate) fn open_for_bot(ctx: &mut WriteCtx<'_>, shop: &str, branch: &str, customer: &str) -> Result<String> {
    let caller = Caller { branch_id: Some(branch.to_string()), ..system_caller(shop) };
    let c = customers::get(ctx.conn(), shop, customer)?;
    let wa_id = whatsapp_number(ctx, &caller, &c)?;
    let id = conversation_id(branch, customer);
    let (doc_id, made) = ensure_conversation(ctx, shop, branch, (&id, customer))?;
    if made {
        let (now, name) = (ctx.now(), c.name.clone());
        ctx.change(&doc_id, &[id.as_str()], |tx, _| {
            let o = doc::record(tx, &id)?.ok_or_else(|| CoreError::not_found("conversation", &id))?;
            put_str(tx, &o, "wa_id", &wa_id)?;
            put_str(tx, &o, "customer_name", &name)?;
            tx.put(&o, "created_at", now)?;
            tx.put(&o, "updated_at", now)?;
            Ok(())
        })?;
    }
    Ok(id)
}

/// Whether customer `customer` can be written to first on WhatsApp: they have a WhatsApp number
/// (or a phone).
pub(crate) fn reachable(conn: &Connection, shop: &str, customer: &str) -> Result<bool> {
    let c = customers::get(conn, shop, customer)?;
    Ok(!c.archived
        && (c.wa_id.is_some_and(|w| !w.is_empty())
            || c.phone.is_some_and(|p| p.chars().filter(char::is_ascii_digit).count() >= 6)))
}

/// Stores an inbound WhatsApp message: finds or creates the customer by WhatsApp id, finds or
/// creates their conversation in `branch`, and appends the message. Idempotent by wamid.
pub fn receive(ctx: &mut WriteCtx<'_>, shop: &str, branch: &str, m: &Inbound) -> Result<Received> {
    let a = arrive(ctx, shop, branch, m)?;
    if !a.received.duplicate {
        record_arrival(ctx, shop, &a, m, None)?;
    }
    Ok(a.received)
}

/// An inbound message placed in its conversation, before the message itself is written (see
/// [`arrive`] and [`record_arrival`]).
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Conversation, message, customer; whether it is a redelivery or the first message; the
    /// conversation's state once the message is in and before any answer to it (a resolved
    /// conversation reopens to the bot).
    pub received: Received,
    /// Where the bot stands in the conversation once the message is in (reset when it reopens).
    pub bot_node: String,
    /// The bot's misunderstandings in a row, likewise.
    pub misunderstood: i64,
    /// The customer's name as the conversation will show it.
    pub customer_name: String,
    branch: String,
    conv_doc: DocId,
    reopens: bool,
    /// The message answers the satisfaction survey.
    pub rating: Option<super::satisfaction::Rating>,
    /// A bad rating hands a resolved conversation back to a person (state open).
    to_person: bool,
    /// The conversation's record as it was before this message.
    stored: Stored,
}

/// The fields of a conversation's record that receiving a message reads (and may move).
#[derive(Debug, Clone)]
struct Stored {
    state: String,
    bot_node: String,
    misunderstood: i64,
    customer_name: String,
    needs_template: bool,
    wa_id: String,
    phone_number_id: String,
}

/// The bot's answer to an inbound message, written together with it by [`record_arrival`]: its
/// replies (queued for the relay to send), why it answered so, and where it now stands.
#[derive(Debug, Clone, Copy)]
pub struct BotAnswer<'a> {
    /// The replies, in order.
    pub replies: &'a [SendMessage],
    /// Why the bot replied as it did (trigger, intent, confidence, node), kept on each reply.
    pub explain: &'a serde_json::Value,
    /// The bot's node after the answer.
    pub node: &'a str,
    /// Misunderstandings in a row after the answer.
    pub misunderstood: i64,
    /// A person takes the conversation over (state open).
    pub handoff: bool,
}

/// Finds or creates the customer of an inbound message (by WhatsApp id) and their conversation
/// in `branch`, and tells whether the message is a redelivery; writes nothing of the message.
/// [`record_arrival`] then writes it, with the bot's answer when there is one.
pub fn arrive(ctx: &mut WriteCtx<'_>, shop: &str, branch: &str, m: &Inbound) -> Result<Arrival> {
    let message_id = inbound_message_id(&m.wamid);
    let customer_id = match find_customer_by_wa(ctx.conn(), shop, &m.wa_id)? {
        Some(c) => survivor(ctx.conn(), c)?,
        None => {
            let region = org::get_shop(ctx.conn(), shop)?.phone_region;
            let name = if m.profile_name.trim().is_empty() { format!("+{}", m.wa_id) } else { m.profile_name.clone() };
            // WhatsApp ids are E.164 digits; a few (Mexico's old mobile "521…") are not valid
            // numbers for libphonenumber any more, but they are still how the customer is reached.
            let phone = dashoffice_domain::normalize_phone("phone", &format!("+{}", m.wa_id), &region)
                .ok()
                .or_else(|| (8..=15).contains(&m.wa_id.len()).then(|| format!("+{}", m.wa_id)));
            let fields = customers::CustomerFields {
                name: name.chars().take(200).collect(),
                phone,
                wa_id: Some(m.wa_id.clone()),
                tags: vec!["whatsapp".into()],
                // The language they write in is the language of their e-mails (staff may change it).
                lang: crate::bot::language_of(&m.text).unwrap_or("es").to_string(),
                ..Default::default()
            };
            customers::insert(ctx, shop, &fields)?
        }
    };
    // A known conversation is read from its projection (one row; the writer keeps it in step
    // with the document in the same transaction), a new one from the record just made.
    let conversation_id = conversation_id(branch, &customer_id);
    let known: Option<Stored> = ctx
        .conn()
        .prepare_cached(
            "SELECT state, bot_node, misunderstood, customer_name, needs_template, wa_id, phone_number_id
             FROM conversations WHERE id = ?1",
        )?
        .query_row([&conversation_id], |r| {
            Ok(Stored {
                state: r.get(0)?,
                bot_node: r.get(1)?,
                misunderstood: r.get(2)?,
                customer_name: r.get(3)?,
                needs_template: r.get(4)?,
                wa_id: r.get(5)?,
                phone_number_id: r.get(6)?,
            })
        })
        .optional()?;
    let (conv_doc, first, stored) = match known {
        Some(stored) => (DocId::conversations(shop, branch, &conversation_id), false, stored),
        None => {
            let (conv_doc, first) = ensure_conversation(ctx, shop, branch, (&conversation_id, &customer_id))?;
            let d = ctx.doc(&conv_doc)?;
            let o = doc::record(d, &conversation_id)?
                .ok_or_else(|| CoreError::not_found("conversation", &conversation_id))?;
            let stored = Stored {
                state: doc::get_str(d, &o, "state"),
                bot_node: doc::get_str(d, &o, "bot_node"),
                misunderstood: doc::get_i64(d, &o, "misunderstood"),
                customer_name: doc::get_str(d, &o, "customer_name"),
                needs_template: doc::get_bool(d, &o, "needs_template", false),
                wa_id: doc::get_str(d, &o, "wa_id"),
                phone_number_id: doc::get_str(d, &o, "phone_number_id"),
            };
            (conv_doc, first, stored)
        }
    };
    let duplicate = message_exists(ctx.conn(), &message_id)?;
    let mut state = ConversationState::parse(&stored.state).unwrap_or(ConversationState::Pending);
    let (mut bot_node, mut misunderstood) = (stored.bot_node.clone(), stored.misunderstood);
    let mut customer_name = stored.customer_name.clone();
    // A customer writing again reopens a resolved conversation (to the bot first); a rating does
    // not, but a bad one hands it back to a person.
    let rating = if duplicate { None } else { super::satisfaction::rating_of(m) };
    // Nor does asking for no more promotions (or for them again).
    let reopens = !duplicate
        && state == ConversationState::Resolved
        && rating.is_none()
        && super::broadcasts::promotions_request(m).is_none();
    let to_person = rating == Some(super::satisfaction::Rating::Bad) && state == ConversationState::Resolved;
    if to_person {
        state = ConversationState::Open;
    }
    if reopens {
        state = ConversationState::Pending;
        bot_node.clear();
        misunderstood = 0;
    }
    if !duplicate && !m.profile_name.trim().is_empty() {
        customer_name = m.profile_name.clone();
    }
    if customer_name.is_empty() {
        customer_name = ctx
            .conn()
            .prepare_cached("SELECT name FROM customers WHERE id = ?1")?
            .query_row([&customer_id], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
    }
    let received = Received { conversation_id, message_id, customer_id, duplicate, first: first && !duplicate, state };
    Ok(Arrival {
        received,
        bot_node,
        misunderstood,
        customer_name,
        branch: branch.to_string(),
        conv_doc,
        reopens,
        rating,
        to_person,
        stored,
    })
}

/// Writes an inbound message placed by [`arrive`] (in the same write) and, when given, the bot's
/// answer to it, rather than a change per step (every operation counts on a busy number): at
/// most one change to the conversation's record, when something of it moves (a reopening, the
/// customer's name, the service window, the bot's place, a handoff), and one per messages
/// document (the message and the replies; two when a month ends between them). Returns the
/// replies' ids.
pub fn record_arrival(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    a: &Arrival,
    m: &Inbound,
    answer: Option<BotAnswer<'_>>,
) -> Result<Vec<String>> {
    let (r, branch) = (&a.received, a.branch.as_str());
    if r.duplicate {
        return Err(CoreError::conflict("wamid", "unique", format!("message {} is already stored", m.wamid)));
    }
    let now = ctx.now();
    // The replies are checked (a template against the approved ones) before anything is written.
    let mut replies = Vec::new();
    if let Some(ans) = &answer {
        for reply in ans.replies {
            validate_send(reply)?;
            let kind = reply.kind.clone().unwrap_or_else(|| "text".into());
            let (text, payload) = reply_content(ctx.conn(), shop, reply, &kind)?;
            replies.push((
                new_id(),
                kind,
                text,
                payload,
                reply.context_wamid.clone().unwrap_or_else(|| m.wamid.clone()),
            ));
        }
    }
    let (conv, name) = (r.conversation_id.clone(), m.profile_name.clone());
    let (node, misunderstood) = match &answer {
        Some(ans) => (ans.node.to_string(), ans.misunderstood),
        None => (a.bot_node.clone(), a.misunderstood),
    };
    let handoff = answer.is_some_and(|ans| ans.handoff);
    let reopens = a.reopens;
    // The conversation's record changes only when something of it moves: most messages leave
    // the bot where it was, and the conversation's last activity is its last message (see
    // `project_conversation`), so a busy conversation is not rewritten at every message.
    let was = &a.stored;
    let node_moves = was.bot_node != node;
    let misunderstood_moves = was.misunderstood != misunderstood;
    let name_moves = !name.trim().is_empty() && was.customer_name != name;
    // A customer message re-opens the service window.
    let window_reopens = was.needs_template;
    // Where the customer writes from and to: a new conversation learns it here, one the shop
    // started learns the shop's number its customer answered.
    let wa_moves = !m.wa_id.is_empty() && was.wa_id != m.wa_id;
    let number_moves = !m.phone_number_id.is_empty() && was.phone_number_id != m.phone_number_id;
    let rating = a.rating;
    if handoff
        || reopens
        || node_moves
        || misunderstood_moves
        || name_moves
        || window_reopens
        || wa_moves
        || number_moves
        || rating.is_some()
    {
        ctx.change(&a.conv_doc, &[&conv], |tx, _| {
            let o = doc::record(tx, &conv)?.ok_or_else(|| CoreError::not_found("conversation", &conv))?;
            if handoff || a.to_person {
                put_str(tx, &o, "state", ConversationState::Open.as_str())?;
            } else if reopens {
                put_str(tx, &o, "state", ConversationState::Pending.as_str())?;
            }
            if let Some(r) = rating {
                put_str(tx, &o, "rating", r.as_str())?;
                tx.put(&o, "rated_at", m.at)?;
            }
            if node_moves {
                put_str(tx, &o, "bot_node", &node)?;
            }
            if misunderstood_moves {
                tx.put(&o, "misunderstood", misunderstood)?;
            }
            if name_moves {
                put_str(tx, &o, "customer_name", &name)?;
            }
            if window_reopens {
                tx.put(&o, "needs_template", false)?;
            }
            if wa_moves {
                put_str(tx, &o, "wa_id", &m.wa_id)?;
            }
            if number_moves {
                put_str(tx, &o, "phone_number_id", &m.phone_number_id)?;
            }
            tx.put(&o, "updated_at", now)?;
            Ok(())
        })?;
    }
    let inbound = MessageRecord {
        conversation_id: &r.conversation_id,
        direction: "in",
        kind: &m.kind,
        text: &m.text,
        payload: &m.payload,
        wamid: Some(&m.wamid),
        status: MessageStatus::Received,
        sender: CUSTOMER_SENDER,
        context_wamid: m.context_wamid.as_deref(),
        explain: None,
        at: m.at,
    };
    let explain = answer.map(|a| a.explain);
    let outbound: Vec<MessageRecord<'_>> = replies
        .iter()
        .map(|(_, kind, text, payload, context)| MessageRecord {
            conversation_id: &r.conversation_id,
            direction: "out",
            kind,
            text,
            payload,
            wamid: None,
            status: MessageStatus::Queued,
            sender: BOT_SENDER,
            context_wamid: Some(context),
            explain,
            at: now,
        })
        .collect();
    let in_doc = DocId::messages(shop, branch, &super::orders::yyyymm(m.at), &r.conversation_id);
    let out_doc = DocId::messages(shop, branch, &super::orders::yyyymm(now), &r.conversation_id);
    let mut records = vec![(r.message_id.as_str(), &inbound)];
    let out_records: Vec<(&str, &MessageRecord<'_>)> =
        replies.iter().zip(&outbound).map(|((id, ..), rec)| (id.as_str(), rec)).collect();
    if in_doc == out_doc {
        records.extend(out_records);
        write_messages(ctx, &in_doc, &records)?;
    } else {
        write_messages(ctx, &in_doc, &records)?;
        if !out_records.is_empty() {
            write_messages(ctx, &out_doc, &out_records)?;
        }
    }
    Ok(replies.into_iter().map(|(id, ..)| id).collect())
}

struct MessageRecord<'a> {
    conversation_id: &'a str,
    direction: &'a str,
    kind: &'a str,
    text: &'a str,
    payload: &'a serde_json::Value,
    wamid: Option<&'a str>,
    status: MessageStatus,
    sender: &'a str,
    context_wamid: Option<&'a str>,
    explain: Option<&'a serde_json::Value>,
    at: i64,
}

/// Writes a message record: the fields set once (see [`doc::sealed_map`]) as one value, and the
/// ones that move on their own keys (an outbound message's `status`, and its `wamid` once sent;
/// `error` and an attachment's `payload` are added later). A customer's message and an internal
/// note never move: their status and WhatsApp id are sealed with the rest (two operations fewer
/// per inbound message).
fn write_message(ctx: &mut WriteCtx<'_>, doc_id: &DocId, id: &str, m: &MessageRecord<'_>) -> Result<()> {
    write_messages(ctx, doc_id, &[(id, m)])
}

/// Writes message records of one document, and projects them from the values written (the same
/// fields [`project_message`] reads back from the document). The records are created with the
/// write's others in that document, in one change (see [`WriteCtx::create_later`]).
fn write_messages(ctx: &mut WriteCtx<'_>, doc_id: &DocId, list: &[(&str, &MessageRecord<'_>)]) -> Result<()> {
    let now = ctx.now();
    let sealed: Vec<serde_json::Map<String, serde_json::Value>> =
        list.iter().map(|(_, m)| sealed_fields(m, now)).collect();
    // The keys a record holds apart from its sealed fields: an outbound message's status, and
    // its WhatsApp id once it has one.
    let own: Vec<Vec<(&str, automerge::ScalarValue)>> = list
        .iter()
        .map(|(_, m)| {
            let mut own = Vec::new();
            if m.direction == "out" {
                own.push(("status", automerge::ScalarValue::Str(m.status.as_str().into())));
                if let Some(w) = m.wamid {
                    own.push(("wamid", automerge::ScalarValue::Str(w.into())));
                }
            }
            own
        })
        .collect();
    // The messages of a whole batch of webhooks go into each messages document as one change.
    for ((id, _), (sealed, own)) in list.iter().zip(sealed.iter().zip(&own)) {
        // Automerge splices its columns twice for the record instead of once per key.
        let mut rec = doc::sealed_map(sealed);
        for (k, v) in own {
            rec.insert((*k).to_string(), automerge::hydrate::Value::Scalar(v.clone()));
        }
        ctx.create_later(doc_id, id, automerge::hydrate::Value::Map(rec.into()))?;
        project_message_fields(ctx.conn(), doc_id, id, &doc::Fields::written(own, sealed))?;
    }
    Ok(())
}

/// The fields of a message record that never change, as [`doc::sealed_map`] stores them.
fn sealed_fields(m: &MessageRecord<'_>, now: i64) -> serde_json::Map<String, serde_json::Value> {
    let mut sealed = serde_json::Map::new();
    sealed.insert("conversation_id".into(), m.conversation_id.into());
    sealed.insert("direction".into(), m.direction.into());
    sealed.insert("kind".into(), m.kind.into());
    sealed.insert("text".into(), m.text.into());
    // Payload and explanation stay JSON text, as they were as keys of their own.
    sealed.insert("payload".into(), m.payload.to_string().into());
    sealed.insert("sender".into(), m.sender.into());
    if let Some(c) = m.context_wamid {
        sealed.insert("context_wamid".into(), c.into());
    }
    if let Some(e) = m.explain {
        sealed.insert("explain".into(), e.to_string().into());
    }
    sealed.insert("at".into(), m.at.into());
    sealed.insert("created_at".into(), now.into());
    if m.direction != "out" {
        sealed.insert("status".into(), m.status.as_str().into());
        if let Some(w) = m.wamid {
            sealed.insert("wamid".into(), w.into());
        }
    }
    sealed
}

/// Applies a delivery report to the outbound message with WhatsApp id `wamid`: only forward
/// (see [`MessageStatus::rank`]). Returns false when no message has that id (yet).
pub fn apply_status(ctx: &mut WriteCtx<'_>, wamid: &str, status: MessageStatus, error: Option<&str>) -> Result<bool> {
    let found: Option<(String, String, String)> = ctx
        .conn()
        .prepare_cached(
            "SELECT id, doc_id, conversation_id FROM messages WHERE wamid = ?1 AND direction = 'out' LIMIT 1",
        )?
        .query_row([wamid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, doc_id, conversation)) = found else { return Ok(false) };
    set_delivery(ctx, &DocId::parse(&doc_id)?, &id, status, None, error)?;
    // 131047: the window closed; only a template can reach the customer now.
    if error.is_some_and(|e| e.starts_with("131047")) {
        mark_needs_template(ctx, &conversation)?;
        notice_again(ctx, &id, &conversation)?;
    }
    Ok(true)
}

fn mark_needs_template(ctx: &mut WriteCtx<'_>, conversation: &str) -> Result<()> {
    let doc_id: Option<String> = ctx
        .conn()
        .prepare_cached("SELECT doc_id FROM conversations WHERE id = ?1")?
        .query_row([conversation], |r| r.get(0))
        .optional()?;
    if let Some(d) = doc_id {
        let now = ctx.now();
        ctx.change(&DocId::parse(&d)?, &[conversation], |tx, _| {
            if let Some(o) = doc::record(tx, conversation)? {
                tx.put(&o, "needs_template", true)?;
                tx.put(&o, "updated_at", now)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Records that an outbound message could not be sent (WhatsApp refused it); error 131047 (the
/// window closed) marks the conversation as needing a template.
pub fn fail_outbound(ctx: &mut WriteCtx<'_>, doc_id: &DocId, id: &str, error: &str) -> Result<()> {
    set_delivery(ctx, doc_id, id, MessageStatus::Failed, None, Some(error))?;
    if error.starts_with("131047") {
        let conversation: String = ctx
            .conn()
            .prepare_cached("SELECT conversation_id FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        mark_needs_template(ctx, &conversation)?;
        notice_again(ctx, id, &conversation)?;
    }
    Ok(())
}

/// Moves an outbound message's delivery forward (never back), recording its wamid and error.
pub fn set_delivery(
    ctx: &mut WriteCtx<'_>,
    doc_id: &DocId,
    id: &str,
    status: MessageStatus,
    wamid: Option<&str>,
    error: Option<&str>,
) -> Result<bool> {
    ctx.change(doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("message", id))?;
        Ok(advance_delivery(tx, &o, status, wamid, error)?.0)
    })
}

/// Marks outbound messages of one document sent, with the WhatsApp id each was given, in one
/// change (`sent`: message id, wamid). Fails, writing nothing, if one of them is not there.
/// Their projected rows get the two fields that moved (a row that is missing is projected whole).
pub fn mark_sent(ctx: &mut WriteCtx<'_>, doc_id: &DocId, sent: &[(String, String)]) -> Result<()> {
    let ids: Vec<&str> = sent.iter().map(|(id, _)| id.as_str()).collect();
    ctx.change_projected(
        doc_id,
        &ids,
        |tx, _| {
            let mut statuses = Vec::with_capacity(sent.len());
            for (id, wamid) in sent {
                let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("message", id))?;
                let (_, status) = advance_delivery(tx, &o, MessageStatus::Sent, Some(wamid), None)?;
                statuses.push(status);
            }
            Ok(statuses)
        },
        |conn, d, statuses| {
            let mut update = conn.prepare_cached("UPDATE messages SET wamid = ?2, status = ?3 WHERE id = ?1")?;
            for ((id, wamid), status) in sent.iter().zip(statuses) {
                let wamid = Some(wamid.as_str()).filter(|w| !w.is_empty());
                if update.execute(params![id, wamid, status.as_str()])? == 0 {
                    project_message(conn, doc_id, d, id)?;
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Moves an outbound message's delivery forward (never back), recording its wamid and error.
/// Returns whether the status moved, and the status it now has.
fn advance_delivery(
    tx: &mut automerge::transaction::Transaction<'_>,
    o: &automerge::ObjId,
    status: MessageStatus,
    wamid: Option<&str>,
    error: Option<&str>,
) -> Result<(bool, MessageStatus)> {
    let current = MessageStatus::parse(&doc::get_str(tx, o, "status")).unwrap_or(MessageStatus::Queued);
    if let Some(w) = wamid.filter(|w| doc::get_str(tx, o, "wamid") != *w) {
        put_str(tx, o, "wamid", w)?;
    }
    if status.rank() <= current.rank() {
        return Ok((false, current));
    }
    put_str(tx, o, "status", status.as_str())?;
    if let Some(e) = error {
        put_str(tx, o, "error", e)?;
    }
    Ok((true, status))
}

/// The conversation's document id, checking the caller may see its branch.
fn conversation_doc(conn: &Connection, caller: &Caller, id: &str) -> Result<(DocId, ConversationView)> {
    let c = get_conversation(conn, &caller.shop_id, id)?;
    caller.check_branch(&c.branch_id).map_err(|_| CoreError::not_found("conversation", id))?;
    let d: String =
        conn.prepare_cached("SELECT doc_id FROM conversations WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
    Ok((DocId::parse(&d)?, c))
}

/// The document that holds conversation `id`.
pub(crate) fn conversation_doc_id(conn: &Connection, id: &str) -> Result<DocId> {
    let d: Option<String> = conn
        .prepare_cached("SELECT doc_id FROM conversations WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    DocId::parse(&d.ok_or_else(|| CoreError::not_found("conversation", id))?)
}

pub(crate) fn templates(conn: &Connection, shop: &str) -> Result<Vec<TemplateView>> {
    Ok(list_items(conn, shop, "template")?.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect())
}

/// The stored text and payload of a reply: a template is checked against the approved ones (its
/// text becomes the filled-in body), buttons, lists and media keep what WhatsApp needs.
/// Checks template message `m` (an approved template, its number of parameters) without writing;
/// the template's language.
pub(crate) fn check_template(conn: &Connection, shop: &str, m: &SendMessage) -> Result<String> {
    validate_send(m)?;
    let (_, payload) = reply_content(conn, shop, m, "template")?;
    Ok(payload["language"].as_str().unwrap_or_default().to_string())
}

fn reply_content(conn: &Connection, shop: &str, m: &SendMessage, kind: &str) -> Result<(String, serde_json::Value)> {
    let payload = match kind {
        "template" => {
            let name = m.template.clone().unwrap_or_default();
            let all = templates(conn, shop)?;
            let t = all.iter().find(|t| t.name == name && m.language.as_deref().is_none_or(|l| l == t.language));
            let Some(t) = t else {
                let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
                return Err(FieldError::new(
                    "template",
                    "approved",
                    format!(
                        "not an approved template; approved: {}",
                        if names.is_empty() { "none".into() } else { names.join(", ") }
                    ),
                )
                .into());
            };
            if m.params.len() != usize::from(t.params) {
                return Err(
                    FieldError::new("params", "count", format!("the template takes {} parameters", t.params)).into()
                );
            }
            let mut preview = t.body.clone();
            for (i, p) in m.params.iter().enumerate() {
                preview = preview.replace(&format!("{{{{{}}}}}", i + 1), p);
            }
            let payload = serde_json::json!({ "template": t.name, "language": t.language, "params": m.params });
            return Ok((preview, payload));
        }
        "buttons" => serde_json::json!({ "buttons": m.buttons }),
        "list" => {
            serde_json::json!({ "button": m.list_button.clone().unwrap_or_else(|| "Ver opciones".into()), "rows": m.rows })
        }
        "image" | "document" => serde_json::json!({ "link": m.media_url }),
        _ => serde_json::json!({}),
    };
    Ok((m.text.clone(), payload))
}

/// Queues a reply (or writes an internal note) in a conversation. Free-form messages need the
/// 24-hour window to be open; templates always may be sent. A staff reply takes the conversation
/// from the bot (state open) and assigns it to them if nobody has it.
pub fn send(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, m: SendMessage, sender: &str) -> Result<MessageView> {
    caller.require(Permission::Converse)?;
    validate_send(&m)?;
    let kind = m.kind.clone().unwrap_or_else(|| "text".into());
    let shop = caller.shop_id.clone();
    let content = |conn: &Connection| reply_content(conn, &shop, &m, &kind);
    queue_out(ctx, caller, id, &kind, content, m.context_wamid.as_deref(), sender)
}

/// Queues what staff send to a conversation (or writes an internal note): the window check, the
/// message, and the conversation taken from the bot. `content` gives the text and payload.
fn queue_out(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    id: &str,
    kind: &str,
    content: impl FnOnce(&Connection) -> Result<(String, serde_json::Value)>,
    context_wamid: Option<&str>,
    sender: &str,
) -> Result<MessageView> {
    let (conv_doc, conv) = conversation_doc(ctx.conn(), caller, id)?;
    let now = ctx.now();
    if kind != "template" && kind != "note" && (!window_open(conv.last_inbound_at, now) || conv.needs_template) {
        let names: Vec<String> = templates(ctx.conn(), &caller.shop_id)?.into_iter().map(|t| t.name).collect();
        return Err(CoreError::conflict(
            "kind",
            "service_window",
            format!(
                "the customer last wrote more than 24 hours ago: WhatsApp only accepts an approved template now ({})",
                if names.is_empty() { "no templates registered".into() } else { names.join(", ") }
            ),
        ));
    }
    let (text, payload) = content(ctx.conn())?;
    let (direction, status) =
        if kind == "note" { ("note", MessageStatus::Sent) } else { ("out", MessageStatus::Queued) };
    let mid = new_id();
    let mdoc = DocId::messages(&caller.shop_id, &conv.branch_id, &super::orders::yyyymm(now), id);
    let rec = MessageRecord {
        conversation_id: id,
        direction,
        kind,
        text: &text,
        payload: &payload,
        wamid: None,
        status,
        sender,
        context_wamid,
        explain: None,
        at: now,
    };
    write_message(ctx, &mdoc, &mid, &rec)?;
    if sender != BOT_SENDER && kind != "note" {
        let me = caller.user_id.clone();
        ctx.change(&conv_doc, &[id], |tx, _| {
            let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("conversation", id))?;
            if doc::get_str(tx, &o, "state") != ConversationState::Open.as_str() {
                put_str(tx, &o, "state", ConversationState::Open.as_str())?;
            }
            if doc::get_str(tx, &o, "assignee_id").is_empty() {
                put_str(tx, &o, "assignee_id", &me)?;
                tx.put(&o, "assigned_at", now)?;
            }
            tx.put(&o, "read_at", now)?;
            tx.put(&o, "updated_at", now)?;
            Ok(())
        })?;
    }
    get_message(ctx.conn(), &mid)
}

/// Queues an order's sales document (the PDF of [`crate::invoice`]) to the customer's latest
/// WhatsApp conversation, with a caption (default "Pedido <number>" / "Order <number>", or
/// "Factura <legal number> (pedido <number>)" once invoiced). The relay renders the PDF from its
/// own replica when it sends the message, uploads it to the Graph API and sends it as a document
/// named `<number>.pdf` (`<legal number>.pdf` once invoiced). Free-form, so the 24-hour window must be
/// open, as for any reply.
pub fn send_order_document(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    order_id: &str,
    input: SendOrderDocument,
    sender: &str,
) -> Result<MessageView> {
    caller.require(Permission::Converse)?;
    let lang = input.lang.as_deref().unwrap_or("es");
    crate::invoice::Lang::parse("lang", lang).map_err(|e| CoreError::Validation(e.into()))?;
    let caption = input.text.as_deref().map(str::trim).unwrap_or_default();
    if caption.chars().count() > 1024 {
        return Err(FieldError::new("text", "max_length", "a caption has at most 1024 characters").into());
    }
    let order = super::orders::get(ctx.conn(), caller, order_id)?;
    let Some(conversation) = order_conversation(ctx.conn(), caller, &order.customer_id)? else {
        return Err(CoreError::conflict(
            "customer_id",
            "no_conversation",
            "the customer has no WhatsApp conversation yet: WhatsApp lets the shop write first only with a template",
        ));
    };
    // A credit note or an invoice with its legal number goes by that number; otherwise by the
    // order's.
    let legal = order.invoice.as_ref().map(|i| i.number.clone()).filter(|n| !n.is_empty());
    let credit = order.credit_note.as_ref().map(|c| c.number.clone()).filter(|n| !n.is_empty());
    let caption = if !caption.is_empty() {
        caption.to_string()
    } else {
        match (lang, &credit, &legal) {
            ("en", Some(c), Some(n)) => format!("Credit note {c} (invoice {n})"),
            (_, Some(c), Some(n)) => format!("Nota de crédito {c} (factura {n})"),
            ("en", _, Some(n)) => format!("Invoice {n} (order {})", order.number),
            (_, _, Some(n)) => format!("Factura {n} (pedido {})", order.number),
            ("en", _, None) => format!("Order {}", order.number),
            (_, _, None) => format!("Pedido {}", order.number),
        }
    };
    let stem = credit.as_deref().or(legal.as_deref()).unwrap_or(&order.number);
    let filename = format!("{}.pdf", crate::invoice::file_stem(stem));
    let payload = serde_json::json!({ "order_id": order.id, "lang": lang, "filename": filename });
    let content = |_: &Connection| Ok((caption, payload));
    queue_out(ctx, caller, &conversation, "document", content, None, sender)
}

/// A customer's record and every record merged with it: from the record that survived the
/// merges (followed up `merged_into`) down through everything merged into it.
pub(crate) fn customer_group(conn: &Connection, customer_id: &str) -> Result<Vec<String>> {
    customers::identity_ids(conn, &survivor(conn, customer_id.to_string())?)
}

/// The conversation an order's document goes to: of the customer's (and merged records')
/// conversations in branches the caller may see, the one the customer wrote in last (its 24-hour
/// window is the one that may be open), then the latest updated.
pub(crate) fn order_conversation(conn: &Connection, caller: &Caller, customer_id: &str) -> Result<Option<String>> {
    let mut best: Option<((i64, i64), String)> = None;
    for person in customer_group(conn, customer_id)? {
        let found: Option<((i64, i64), String)> = conn
            .prepare_cached(
                "SELECT coalesce((SELECT max(m.at) FROM messages m WHERE m.conversation_id = t.id AND m.direction = 'in'), 0)
                        AS last_in, t.updated_at, t.id
                 FROM conversations t WHERE t.shop_id = ?1 AND t.customer_id = ?2 AND (?3 IS NULL OR t.branch_id = ?3)
                 ORDER BY last_in DESC, t.updated_at DESC LIMIT 1",
            )?
            .query_row(params![caller.shop_id, person, caller.branch_limit()], |r| {
                Ok(((r.get(0)?, r.get(1)?), r.get(2)?))
            })
            .optional()?;
        if found.as_ref().is_some_and(|f| best.as_ref().is_none_or(|b| f.0 > b.0)) {
            best = found;
        }
    }
    Ok(best.map(|(_, id)| id))
}

/// The message id of order `order`'s WhatsApp notice of `status`: the same on every replica, so
/// two replicas moving the order to that status while apart write one message, sent once.
pub(crate) fn notice_id(order: &str, status: &str) -> String {
    format!("notice.{order}.{status}")
}

/// Queues a notice of an order's status (`text`, already filled in) in the customer's
/// conversation, as the bot: the text while the 24-hour window is open, else `template` with
/// `params` (as many as it takes), else nothing. Returns whether it was queued; a notice already
/// written (by another replica, or an earlier move to the same status) is not written again.
/// `again`: the notice once more, after WhatsApp refused its text (id `notice.{order}.{status}.t`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_notice(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    (order, status): (&str, &str),
    again: bool,
    text: &str,
    template: Option<&str>,
    params: &[String],
) -> Result<NoticeOutcome> {
    let id = match again {
        true => format!("{}{AGAIN}", notice_id(order, status)),
        false => notice_id(order, status),
    };
    if message_exists(ctx.conn(), &id)? {
        return Ok(NoticeOutcome::Exists);
    }
    let (_, conv) = conversation_doc(ctx.conn(), &system_caller(shop), conversation)?;
    let now = ctx.now();
    let m = if window_open(conv.last_inbound_at, now) && !conv.needs_template {
        SendMessage { kind: Some("text".into()), text: text.to_string(), ..Default::default() }
    } else if let Some(t) =
        template.and_then(|name| templates(ctx.conn(), shop).ok()?.into_iter().find(|t| t.name == name))
    {
        let params = params.iter().take(usize::from(t.params)).cloned().collect();
        SendMessage { kind: Some("template".into()), template: Some(t.name), params, ..Default::default() }
    } else {
        return Ok(NoticeOutcome::WindowClosed);
    };
    let explain = serde_json::json!({
        "trigger": { "kind": "order_status", "status": status }, "node": "order_notice", "order_id": order,
    });
    bot_reply_as(ctx, shop, conversation, &id, &m, &explain)?;
    Ok(NoticeOutcome::Queued)
}

/// What became of an order's notice (see [`queue_notice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeOutcome {
    /// Written into the conversation, for the relay to send.
    Queued,
    /// Already there (another replica, or an earlier write, told it).
    Exists,
    /// The 24-hour window is closed and the shop has no approved template for notices.
    WindowClosed,
}

/// The end of the id of a notice sent again as a template (see [`queue_notice`]).
const AGAIN: &str = ".t";

/// The order and status notice `id` tells, unless it is itself a notice sent again.
pub(crate) fn notice_of_id(id: &str) -> Option<(&str, &str)> {
    id.strip_prefix("notice.").filter(|rest| !rest.ends_with(AGAIN))?.rsplit_once('.')
}

/// After WhatsApp refused message `id` because the customer's window had closed (131047): when it
/// was an order's notice, the notice again as the shop's template (if it has one).
fn notice_again(ctx: &mut WriteCtx<'_>, id: &str, conversation: &str) -> Result<()> {
    let Some((order, status)) = notice_of_id(id) else { return Ok(()) };
    match super::orders::notify_again(ctx, order, status, conversation) {
        Err(e) if e.is_rule() => {
            tracing::warn!(order, error = %e, "the order's notice cannot go as a template");
            Ok(())
        }
        other => other,
    }
}

/// The notices of order `order`: (status, message id, conversation, kind, delivery, time).
pub(crate) fn notices_of(conn: &Connection, order: &str) -> Result<Vec<dashoffice_domain::api::OrderNotice>> {
    let prefix = notice_id(order, "");
    let mut st = conn.prepare_cached(
        "SELECT id, conversation_id, kind, status, at FROM messages WHERE id >= ?1 AND id < ?2 ORDER BY at, id",
    )?;
    let rows = st.query_map(params![prefix, format!("{prefix}\u{10ffff}")], |r| {
        let id: String = r.get(0)?;
        let status: String = r.get(3)?;
        Ok(dashoffice_domain::api::OrderNotice {
            status: id[prefix.len()..].trim_end_matches(AGAIN).to_string(),
            message_id: id,
            conversation_id: r.get(1)?,
            kind: r.get(2)?,
            delivery: MessageStatus::parse(&status).unwrap_or(MessageStatus::Queued),
            at: r.get(4)?,
            skipped: None,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The relay's side of [`send_order_document`]: the PDF an outbound message names, rendered now,
/// once the order is known to belong to the conversation's customer (or a record merged with
/// theirs) — the message may come from any replica, so its payload is not trusted for that.
/// `NotFound` while the order or the conversation has not reached this replica.
pub fn order_document_for(
    conn: &Connection,
    shop: &str,
    conversation_id: &str,
    order_id: &str,
    lang: crate::invoice::Lang,
    now: i64,
) -> Result<crate::invoice::OrderPdf> {
    let caller = system_caller(shop);
    let customer: String = conn
        .prepare_cached("SELECT customer_id FROM conversations WHERE id = ?1 AND shop_id = ?2")?
        .query_row(params![conversation_id, shop], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::not_found("conversation", conversation_id))?;
    let order = super::orders::get(conn, &caller, order_id)?;
    if !customer_group(conn, &order.customer_id)?.contains(&customer) {
        return Err(CoreError::conflict(
            "order_id",
            "other_customer",
            format!("order {} is not this conversation's customer's", order.number),
        ));
    }
    crate::invoice::order_pdf(conn, &caller, order_id, lang, now)
}

/// Writes what a bot says (queued for sending) with the explanation of why.
pub fn bot_reply(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    m: &SendMessage,
    explain: &serde_json::Value,
) -> Result<String> {
    let mid = new_id();
    bot_reply_as(ctx, shop, conversation, &mid, m, explain)?;
    Ok(mid)
}

/// [`bot_reply`] as message `mid`.
pub(crate) fn bot_reply_as(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    mid: &str,
    m: &SendMessage,
    explain: &serde_json::Value,
) -> Result<()> {
    validate_send(m)?;
    let caller = system_caller(shop);
    let (_, conv) = conversation_doc(ctx.conn(), &caller, conversation)?;
    let now = ctx.now();
    let kind = m.kind.clone().unwrap_or_else(|| "text".into());
    let (text, payload) = reply_content(ctx.conn(), shop, m, &kind)?;
    let mdoc = DocId::messages(shop, &conv.branch_id, &super::orders::yyyymm(now), conversation);
    let rec = MessageRecord {
        conversation_id: conversation,
        direction: "out",
        kind: &kind,
        text: &text,
        payload: &payload,
        wamid: None,
        status: MessageStatus::Queued,
        sender: BOT_SENDER,
        context_wamid: m.context_wamid.as_deref(),
        explain: Some(explain),
        at: now,
    };
    write_message(ctx, &mdoc, mid, &rec)
}

/// Updates the bot's place in a conversation (current node, misunderstandings) or hands it to a
/// person (state open).
pub fn set_bot_state(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    conversation: &str,
    node: &str,
    misunderstood: i64,
    handoff: bool,
) -> Result<()> {
    let (doc_id, _) = conversation_doc(ctx.conn(), &system_caller(shop), conversation)?;
    let now = ctx.now();
    ctx.change(&doc_id, &[conversation], |tx, _| {
        let o = doc::record(tx, conversation)?.ok_or_else(|| CoreError::not_found("conversation", conversation))?;
        // Only what moved is written (most answers leave the bot where it was).
        if doc::get_str(tx, &o, "bot_node") != node {
            put_str(tx, &o, "bot_node", node)?;
        }
        if doc::get_i64(tx, &o, "misunderstood") != misunderstood {
            tx.put(&o, "misunderstood", misunderstood)?;
        }
        if handoff {
            put_str(tx, &o, "state", ConversationState::Open.as_str())?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

/// The caller the relay's service writes as.
pub fn system_caller(shop: &str) -> Caller {
    Caller { user_id: SYSTEM_USER.into(), shop_id: shop.into(), role: dashoffice_domain::Role::Owner, branch_id: None }
}

/// Marks a conversation read up to now.
pub fn mark_read(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<ConversationView> {
    let (doc_id, _) = conversation_doc(ctx.conn(), caller, id)?;
    let now = ctx.now();
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("conversation", id))?;
        tx.put(&o, "read_at", now)?;
        Ok(())
    })?;
    get_conversation(ctx.conn(), &caller.shop_id, id)
}

/// Changes state, assignee or labels.
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, u: UpdateConversation) -> Result<ConversationView> {
    caller.require(Permission::Converse)?;
    let (doc_id, conv) = conversation_doc(ctx.conn(), caller, id)?;
    let state = match u.state.as_deref() {
        None => None,
        Some(s) => Some(
            ConversationState::parse(s)
                .ok_or_else(|| CoreError::from(FieldError::new("state", "one_of", "one of pending, open, resolved")))?,
        ),
    };
    if let Some(a) = u.assignee_id.as_deref().filter(|a| !a.is_empty()) {
        let s = super::staff::get(ctx.conn(), &caller.shop_id, a)
            .map_err(|_| CoreError::not_found_field("staff member", a, "assignee_id"))?;
        if s.archived {
            return Err(FieldError::new("assignee_id", "active", "that staff member is archived").into());
        }
        if s.branch_id.as_deref().is_some_and(|b| b != conv.branch_id) {
            return Err(FieldError::new("assignee_id", "branch", "that staff member works in another branch").into());
        }
    }
    let labels = match &u.labels {
        Some(l) => Some(normalize_tags("labels", l)?),
        None => None,
    };
    let now = ctx.now();
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("conversation", id))?;
        if let Some(s) = state {
            put_str(tx, &o, "state", s.as_str())?;
            if s == ConversationState::Pending {
                put_str(tx, &o, "bot_node", "")?;
                tx.put(&o, "misunderstood", 0i64)?;
            }
        }
        if let Some(a) = &u.assignee_id {
            put_str(tx, &o, "assignee_id", a)?;
            tx.put(&o, "assigned_at", now)?;
        }
        if let Some(l) = &labels {
            doc::set_set(tx, &o, "labels", l)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    if state == Some(ConversationState::Resolved) && conv.state != ConversationState::Resolved {
        super::satisfaction::after_resolved(ctx, &caller.shop_id, id)?;
    }
    get_conversation(ctx.conn(), &caller.shop_id, id)
}

/// Assigns a conversation to the staff member of its branch who has waited longest for one, among
/// those on shift (everyone who may answer in the branch when nobody is on shift). Returns the
/// assignee, or None when the branch has nobody.
pub fn assign_round_robin(ctx: &mut WriteCtx<'_>, shop: &str, id: &str) -> Result<Option<String>> {
    let caller = system_caller(shop);
    let (_, conv) = conversation_doc(ctx.conn(), &caller, id)?;
    if let Some(a) = conv.assignee_id {
        return Ok(Some(a));
    }
    let on_shift: Vec<String> = shifts(ctx.conn(), shop)?.into_iter().filter(|s| s.on).map(|s| s.staff_id).collect();
    let all: Vec<String> = {
        let mut stmt = ctx.conn().prepare_cached(
        "SELECT s.id FROM staff s WHERE s.shop_id = ?1 AND s.archived = 0 AND s.role IN ('seller', 'support', 'manager')
           AND (s.branch_id IS NULL OR s.branch_id = '' OR s.branch_id = ?2)
         ORDER BY s.role = 'seller' DESC,
           (SELECT max(c.assigned_at) FROM conversations c WHERE c.assignee_id = s.id) IS NOT NULL,
           (SELECT max(c.assigned_at) FROM conversations c WHERE c.assignee_id = s.id), s.id",
    )?;
        stmt.query_map([shop, conv.branch_id.as_str()], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let pick = all.iter().find(|s| on_shift.contains(s)).or_else(|| all.first()).cloned();
    if let Some(p) = &pick {
        update(
            ctx,
            &caller,
            id,
            UpdateConversation { state: Some("open".into()), assignee_id: Some(p.clone()), labels: None },
        )?;
    }
    Ok(pick)
}

// ---------- inbox items: bots, canned responses, templates, shifts ----------

/// Writes an inbox item (`kind` bot, canned, template or shift) under `key`.
pub fn put_item(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    kind: &str,
    key: &str,
    value: &serde_json::Value,
) -> Result<()> {
    if kind == "shift" {
        caller.require(Permission::Converse)?;
    } else {
        caller.require(Permission::ManageBots)?;
    }
    let id = format!("{kind}:{key}");
    let now = ctx.now();
    let body = value.to_string();
    ctx.change(&DocId::inbox(&caller.shop_id), &[&id], |tx, recs| {
        let o = match doc::record(tx, &id)? {
            Some(o) => o,
            None => tx.put_object(recs, id.as_str(), ObjType::Map)?,
        };
        put_str(tx, &o, "kind", kind)?;
        put_str(tx, &o, "key", key)?;
        put_str(tx, &o, "body", &body)?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

/// Removes an inbox item.
pub fn delete_item(ctx: &mut WriteCtx<'_>, caller: &Caller, kind: &str, key: &str) -> Result<()> {
    caller.require(Permission::ManageBots)?;
    let id = format!("{kind}:{key}");
    if !list_items(ctx.conn(), &caller.shop_id, kind)?.iter().any(|(k, _)| k == key) {
        return Err(CoreError::not_found(kind_name(kind), key));
    }
    super::mark_archived(ctx, &DocId::inbox(&caller.shop_id), &id, kind_name(kind))
}

fn kind_name(kind: &str) -> &'static str {
    match kind {
        "bot" => "bot",
        "canned" => "canned response",
        "template" => "template",
        _ => "item",
    }
}

/// Live inbox items of one kind: (key, body).
pub fn list_items(conn: &Connection, shop: &str, kind: &str) -> Result<Vec<(String, serde_json::Value)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, body FROM inbox_items WHERE shop_id = ?1 AND kind = ?2 AND archived = 0 ORDER BY key",
    )?;
    let rows = stmt.query_map([shop, kind], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (k, b) = r?;
        out.push((k, serde_json::from_str(&b).unwrap_or(serde_json::Value::Null)));
    }
    Ok(out)
}

/// Who was put on or off shift (staff never put either way are not listed: off).
pub fn shifts(conn: &Connection, shop: &str) -> Result<Vec<ShiftView>> {
    Ok(list_items(conn, shop, "shift")?
        .into_iter()
        .map(|(staff_id, v)| ShiftView { staff_id, on: v["on"].as_bool().unwrap_or(false) })
        .collect())
}

/// Canned responses.
pub fn canned(conn: &Connection, shop: &str) -> Result<Vec<CannedResponse>> {
    Ok(list_items(conn, shop, "canned")?.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect())
}

/// Approved templates.
pub fn template_list(conn: &Connection, shop: &str) -> Result<Vec<TemplateView>> {
    templates(conn, shop)
}

// ---------- projection ----------

pub(crate) fn project_conversation(
    conn: &Connection,
    doc_id: &DocId,
    d: &automerge::Automerge,
    id: &str,
) -> Result<()> {
    let Some(o) = doc::record(d, id)? else { return Ok(()) };
    let f = doc::fields(d, &o);
    let scope = doc_id.scope()?;
    let labels: Vec<String> = f.set(d, "labels");
    let customer = f.str("customer_id");
    let name: Option<String> = f.opt_str("customer_name").or_else(|| {
        conn.prepare_cached("SELECT name FROM customers WHERE id = ?1")
            .ok()?
            .query_row([&customer], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    });
    // The last activity: the record's own last change or the conversation's last message to or
    // from the customer (internal notes left aside, as in the last message shown), whichever is
    // later. A message does not rewrite its conversation; `project_message` moves this forward as
    // messages come, so the result does not depend on the order records are projected in. Two
    // lookups of `messages_by_direction`, each the last entry of its range.
    let last_message: i64 = conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(at) FROM messages WHERE conversation_id = ?1 AND direction = 'in'), 0),
                        coalesce((SELECT max(at) FROM messages WHERE conversation_id = ?1 AND direction = 'out'), 0))",
        )?
        .query_row([id], |r| r.get(0))?;
    let updated_at = f.i64("updated_at").max(last_message);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO conversations(id, shop_id, branch_id, doc_id, customer_id, customer_name, wa_id,
            phone_number_id, state, assignee_id, assigned_at, labels, read_at, needs_template, bot_node, misunderstood,
            created_at, updated_at, rating, rated_at, survey_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        id,
        scope.shop_id,
        scope.branch_id.unwrap_or_default(),
        doc_id.as_str(),
        customer,
        name.unwrap_or_default(),
        f.str("wa_id"),
        f.str("phone_number_id"),
        f.str("state"),
        f.opt_str("assignee_id"),
        f.i64("assigned_at"),
        tags_json(&labels),
        f.i64("read_at"),
        f.bool("needs_template", false),
        f.str("bot_node"),
        f.i64("misunderstood"),
        f.i64("created_at"),
        updated_at,
        f.opt_str("rating"),
        f.i64("rated_at"),
        f.i64("survey_at"),
    ])?;
    Ok(())
}

pub(crate) fn project_message(conn: &Connection, doc_id: &DocId, d: &automerge::Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else { return Ok(()) };
    project_message_fields(conn, doc_id, id, &doc::fields(d, &o).unseal())
}

/// Projects a message record from its fields (read from its document, or as just written).
fn project_message_fields(conn: &Connection, doc_id: &DocId, id: &str, f: &doc::Fields) -> Result<()> {
    let scope = doc_id.scope()?;
    // A message's other fields never change once written (see `write_messages`): a message
    // projected again (sent, delivered, an attachment) rewrites only what moves, and only when it
    // moved, so the indexes on its conversation and time are left alone.
    conn.prepare_cached(
        "INSERT INTO messages(id, shop_id, branch_id, doc_id, conversation_id, direction, kind, text, payload,
            wamid, status, error, sender, context_wamid, explain, at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT(id) DO UPDATE SET payload = excluded.payload, wamid = excluded.wamid,
            status = excluded.status, error = excluded.error
         WHERE messages.payload IS NOT excluded.payload OR messages.wamid IS NOT excluded.wamid
            OR messages.status IS NOT excluded.status OR messages.error IS NOT excluded.error",
    )?
    .execute(params![
        id,
        scope.shop_id,
        scope.branch_id.unwrap_or_default(),
        doc_id.as_str(),
        f.str("conversation_id"),
        f.str("direction"),
        f.str("kind"),
        f.str("text"),
        f.str("payload"),
        f.opt_str("wamid"),
        f.str("status"),
        f.opt_str("error"),
        f.str("sender"),
        f.opt_str("context_wamid"),
        f.opt_str("explain"),
        f.i64("at"),
        f.i64("created_at"),
    ])?;
    // The conversation's last activity follows its messages (see `project_conversation`).
    if f.str("direction") != "note" {
        conn.prepare_cached("UPDATE conversations SET updated_at = ?2 WHERE id = ?1 AND updated_at < ?2")?
            .execute(params![f.str("conversation_id"), f.i64("at")])?;
    }
    Ok(())
}

pub(crate) fn project_item(conn: &Connection, doc_id: &DocId, d: &automerge::Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else { return Ok(()) };
    let f = doc::fields(d, &o);
    let scope = doc_id.scope()?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO inbox_items(id, shop_id, doc_id, kind, key, body, archived, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        scope.shop_id,
        doc_id.as_str(),
        f.str("kind"),
        f.str("key"),
        f.str("body"),
        f.bool("archived", false),
        f.i64("updated_at"),
    ])?;
    Ok(())
}

// ---------- reads ----------

const CONV_COLS: &str = "t.id, t.branch_id, t.customer_id, t.customer_name, t.wa_id, t.phone_number_id, t.state,
    t.assignee_id, t.labels, t.needs_template,
    coalesce((SELECT min(m.at) FROM messages m WHERE m.conversation_id = t.id), t.created_at), t.updated_at,
    (SELECT count(*) FROM messages m WHERE m.conversation_id = t.id AND m.direction = 'in' AND m.at > t.read_at),
    (SELECT max(m.at) FROM messages m WHERE m.conversation_id = t.id AND m.direction = 'in'),
    coalesce((SELECT max(m.at) FROM messages m WHERE m.conversation_id = t.id AND m.direction <> 'note'), t.created_at),
    coalesce((SELECT m.text FROM messages m WHERE m.conversation_id = t.id AND m.direction <> 'note'
              ORDER BY m.at DESC, m.id DESC LIMIT 1), ''),
    t.rating, t.rated_at";

fn conv_row(now: i64) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<ConversationView> {
    move |r| {
        let last_inbound_at: Option<i64> = r.get(13)?;
        Ok(ConversationView {
            id: r.get(0)?,
            branch_id: r.get(1)?,
            customer_id: r.get(2)?,
            customer_name: r.get(3)?,
            wa_id: r.get(4)?,
            phone_number_id: r.get(5)?,
            state: ConversationState::parse(&r.get::<_, String>(6)?).unwrap_or(ConversationState::Pending),
            assignee_id: r.get(7)?,
            labels: tags_from_json(&r.get::<_, String>(8)?),
            needs_template: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            unread: r.get(12)?,
            last_inbound_at,
            window_open: window_open(last_inbound_at, now),
            last_message_at: r.get(14)?,
            last_message: r.get::<_, String>(15)?.chars().take(120).collect(),
            rating: r.get(16)?,
            rated_at: Some(r.get::<_, i64>(17)?).filter(|t| *t > 0),
        })
    }
}

/// Unix milliseconds now (reads that show whether a time has passed).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One conversation.
pub fn get_conversation(conn: &Connection, shop: &str, id: &str) -> Result<ConversationView> {
    conn.prepare_cached(&format!("SELECT {CONV_COLS} FROM conversations t WHERE t.id = ?1 AND t.shop_id = ?2"))?
        .query_row([id, shop], conv_row(now_ms()))
        .optional()?
        .ok_or_else(|| CoreError::not_found("conversation", id))
}

/// Conversations, most recent first.
pub fn list(conn: &Connection, caller: &Caller, p: &ConversationParams) -> Result<Page<ConversationView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {CONV_COLS} FROM conversations t"),
        Some("-updated_at"),
        &[("updated_at", "t.updated_at", SortKind::Int)],
        "-updated_at",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.shop_and_branch(caller, p.branch_id.as_deref());
    if let Some(s) = p.state.as_deref().filter(|s| !s.is_empty()) {
        if ConversationState::parse(s).is_none() {
            return Err(FieldError::new("state", "one_of", "one of pending, open, resolved").into());
        }
        q.filter("t.state = ?", [Value::Text(s.to_string())]);
    }
    match p.assignee.as_deref() {
        None | Some("") => {}
        Some("none") => q.filter("t.assignee_id IS NULL", []),
        Some("me") => q.filter("t.assignee_id = ?", [Value::Text(caller.user_id.clone())]),
        Some(a) => q.filter("t.assignee_id = ?", [Value::Text(a.to_string())]),
    }
    if let Some(c) = p.customer_id.as_deref().filter(|c| !c.is_empty()) {
        // A customer's conversations include those of the duplicates merged into them, as their
        // orders do.
        let ids = super::customers::identity_ids(conn, c)?;
        let marks = vec!["?"; ids.len()].join(", ");
        q.filter(&format!("t.customer_id IN ({marks})"), ids.into_iter().map(Value::Text));
    }
    if let Some(r) = p.rating.as_deref().filter(|r| !r.is_empty()) {
        if super::satisfaction::Rating::parse(r).is_none() {
            return Err(FieldError::new("rating", "one_of", "one of good, ok, bad").into());
        }
        q.filter("t.rating = ?", [Value::Text(r.to_string())]);
    }
    if p.unread == Some(true) {
        q.filter(
            "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = t.id AND m.direction = 'in' AND m.at > t.read_at)",
            [],
        );
    }
    if let Some(s) = p.q.as_deref().filter(|s| !s.trim().is_empty()) {
        q.filter(
            "(fold(t.customer_name) LIKE ? ESCAPE '\\' OR t.wa_id LIKE ? ESCAPE '\\')",
            [like(&crate::search::fold(s), true, true), like(s, true, true)],
        );
    }
    q.run(conn, conv_row(now_ms()), |c| (Value::Integer(c.updated_at), c.id.clone()))
}

const MSG_COLS: &str =
    "id, conversation_id, direction, kind, text, payload, wamid, status, error, sender, context_wamid, explain, at";

fn msg_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageView> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(MessageView {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        direction: r.get(2)?,
        kind: r.get(3)?,
        text: r.get(4)?,
        payload: json(r.get(5)?).unwrap_or(serde_json::Value::Null),
        wamid: r.get(6)?,
        status: MessageStatus::parse(&r.get::<_, String>(7)?).unwrap_or(MessageStatus::Queued),
        error: r.get(8)?,
        sender: r.get(9)?,
        context_wamid: r.get(10)?,
        explain: json(r.get(11)?),
        at: r.get(12)?,
    })
}

/// One message.
pub fn get_message(conn: &Connection, id: &str) -> Result<MessageView> {
    conn.prepare_cached(&format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1"))?
        .query_row([id], msg_row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("message", id))
}

/// A conversation with its last `limit` messages, oldest first, and the approved templates.
pub fn thread(conn: &Connection, caller: &Caller, id: &str, limit: u32) -> Result<ConversationThread> {
    let (_, conversation) = conversation_doc(conn, caller, id)?;
    if !(1..=1000).contains(&limit) {
        return Err(FieldError::new("limit", "range", "between 1 and 1000").into());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2"
    ))?;
    let mut messages: Vec<MessageView> =
        stmt.query_map(params![id, limit], msg_row)?.collect::<rusqlite::Result<_>>()?;
    messages.reverse();
    Ok(ConversationThread { conversation, messages, templates: templates(conn, &caller.shop_id)? })
}

/// An outbound message waiting to be handed to WhatsApp.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message.
    pub message: MessageView,
    /// Its document.
    pub doc_id: DocId,
    /// The customer's WhatsApp id.
    pub to: String,
    /// The shop's number to send from ("" in a conversation the shop started: the relay picks
    /// the shop's number for `branch_id`).
    pub phone_number_id: String,
    /// The conversation's branch.
    pub branch_id: String,
}

/// Outbound messages in state queued, oldest first; a broadcast's after every other (a bot's or a
/// person's reply does not wait behind thousands of promotions sharing the number's rate).
pub fn queued(conn: &Connection, shop: &str, limit: u32) -> Result<Vec<Outgoing>> {
    let mut out = Vec::new();
    for broadcasts in [false, true] {
        let room = limit.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
        if room == 0 {
            break;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {cols}, m.doc_id, c.wa_id, c.phone_number_id, c.branch_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.shop_id = ?1 AND m.direction = 'out' AND m.status = 'queued'
               AND (m.id >= 'broadcast.' AND m.id < 'broadcast/') = ?3
             ORDER BY m.at, m.id LIMIT ?2",
            cols = MSG_COLS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ")
        ))?;
        let rows = stmt.query_map(params![shop, room, broadcasts], |r| {
            Ok((msg_row(r)?, r.get::<_, String>(13)?, r.get::<_, String>(14)?, r.get::<_, String>(15)?, r.get(16)?))
        })?;
        for r in rows {
            let (message, d, to, phone_number_id, branch_id) = r?;
            out.push(Outgoing { message, doc_id: DocId::parse(&d)?, to, phone_number_id, branch_id });
        }
    }
    Ok(out)
}

/// A page of messages (used by the relay's retries and by tests).
pub fn messages_of(conn: &Connection, conversation: &str) -> Result<Vec<MessageView>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {MSG_COLS} FROM messages WHERE conversation_id = ?1 ORDER BY at, id"))?;
    Ok(stmt.query_map([conversation], msg_row)?.collect::<rusqlite::Result<_>>()?)
}

/// The conversation of a customer in a branch, if any.
pub fn find_conversation(conn: &Connection, branch: &str, customer: &str) -> Result<Option<ConversationView>> {
    let id = conversation_id(branch, customer);
    let shop: Option<String> = conn
        .prepare_cached("SELECT shop_id FROM conversations WHERE id = ?1")?
        .query_row([&id], |r| r.get(0))
        .optional()?;
    match shop {
        Some(s) => Ok(Some(get_conversation(conn, &s, &id)?)),
        None => Ok(None),
    }
}

// ---------- attachments ----------

/// The largest media file synced to replicas (WhatsApp's own limits: 5 MB images, 16 MB audio and
/// video, 100 MB documents); larger files stay on the relay and the message says so.
pub const MAX_ATTACHMENT: usize = 16 * 1024 * 1024;

/// Stores a downloaded media file as its own immutable document of the message's branch and
/// links it from the message's payload (`attachment`: sha256, mime type, size). Idempotent.
pub fn attach(ctx: &mut WriteCtx<'_>, message_id: &str, mime_type: &str, bytes: &[u8]) -> Result<String> {
    let (doc_id, shop, branch, payload): (String, String, String, String) = ctx
        .conn()
        .prepare_cached("SELECT doc_id, shop_id, branch_id, payload FROM messages WHERE id = ?1")?
        .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?
        .ok_or_else(|| CoreError::not_found("message", message_id))?;
    let sha = hex_sha256(bytes);
    let mut p: serde_json::Value = serde_json::from_str(&payload).unwrap_or_else(|_| serde_json::json!({}));
    if bytes.len() <= MAX_ATTACHMENT {
        let att = DocId::attachment(&shop, &branch, &sha);
        if doc::record(ctx.doc(&att)?, "file")?.is_none() {
            let (mime, size, now) = (mime_type.to_string(), bytes.len() as i64, ctx.now());
            ctx.change(&att, &["file"], |tx, recs| {
                let o = tx.put_object(recs, "file", ObjType::Map)?;
                tx.put(&o, "bytes", automerge::ScalarValue::Bytes(bytes.to_vec()))?;
                put_str(tx, &o, "mime_type", &mime)?;
                tx.put(&o, "size", size)?;
                tx.put(&o, "created_at", now)?;
                Ok(())
            })?;
        }
        p["attachment"] = serde_json::json!({ "sha256": sha, "mime_type": mime_type, "size": bytes.len() });
    } else {
        p["attachment"] =
            serde_json::json!({ "sha256": sha, "mime_type": mime_type, "size": bytes.len(), "on_relay_only": true });
    }
    let body = p.to_string();
    ctx.change(&DocId::parse(&doc_id)?, &[message_id], |tx, _| {
        let o = doc::record(tx, message_id)?.ok_or_else(|| CoreError::not_found("message", message_id))?;
        put_str(tx, &o, "payload", &body)?;
        Ok(())
    })?;
    Ok(sha)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An attachment's bytes and mime type, if this replica has them (and the caller may see its
/// branch).
pub fn attachment(conn: &Connection, caller: &Caller, sha256: &str) -> Result<Option<(String, DocId)>> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT mime_type, doc_id, branch_id FROM attachments WHERE sha256 = ?1 AND shop_id = ?2")?
        .query_row([sha256, caller.shop_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        Some((mime, d, branch)) if caller.check_branch(&branch).is_ok() => Ok(Some((mime, DocId::parse(&d)?))),
        _ => Ok(None),
    }
}

/// The bytes of the `file` record of an attachment document.
pub fn attachment_bytes(d: &automerge::Automerge) -> Option<Vec<u8>> {
    use automerge::ReadDoc;
    let o = doc::record(d, "file").ok()??;
    match d.get(&o, "bytes").ok()? {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            automerge::ScalarValue::Bytes(b) => Some(b.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn project_attachment(conn: &Connection, doc_id: &DocId, d: &automerge::Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else { return Ok(()) };
    let f = doc::fields(d, &o);
    let scope = doc_id.scope()?;
    let sha = doc_id.as_str().rsplit('/').next().unwrap_or_default().to_string();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO attachments(sha256, shop_id, branch_id, doc_id, mime_type, size, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        sha,
        scope.shop_id,
        scope.branch_id.unwrap_or_default(),
        doc_id.as_str(),
        f.str("mime_type"),
        f.i64("size"),
        f.i64("created_at")
    ])?;
    Ok(())
}

/// Something a person at this device should hear about (desktop notifications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The conversation.
    pub conversation_id: String,
    /// The customer's name.
    pub customer_name: String,
    /// What happened: the message text, or empty for an assignment.
    pub text: String,
    /// `message` (a customer wrote) or `assigned` (the conversation was given to `user`).
    pub kind: &'static str,
    /// When (Unix ms).
    pub at: i64,
}

/// Customer messages received after `since_ms`, and conversations assigned to `user` after it,
/// oldest first (at most 50). Reads the projection; never another shop's.
pub fn notices_since(conn: &Connection, shop_id: &str, user: Option<&str>, since_ms: i64) -> Result<Vec<Notice>> {
    let mut out = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT m.conversation_id, c.customer_name, m.text, m.at FROM messages m
         JOIN conversations c ON c.id = m.conversation_id
         WHERE m.shop_id = ?1 AND m.direction = 'in' AND m.at > ?2 ORDER BY m.at LIMIT 50",
    )?;
    let rows = st.query_map(rusqlite::params![shop_id, since_ms], |r| {
        Ok(Notice {
            conversation_id: r.get(0)?,
            customer_name: r.get(1)?,
            text: r.get(2)?,
            kind: "message",
            at: r.get(3)?,
        })
    })?;
    for r in rows {
        out.push(r?);
    }
    if let Some(user) = user {
        let mut st = conn.prepare_cached(
            "SELECT id, customer_name, assigned_at FROM conversations
             WHERE shop_id = ?1 AND assignee_id = ?2 AND assigned_at > ?3 ORDER BY assigned_at LIMIT 50",
        )?;
        let rows = st.query_map(rusqlite::params![shop_id, user, since_ms], |r| {
            Ok(Notice {
                conversation_id: r.get(0)?,
                customer_name: r.get(1)?,
                text: String::new(),
                kind: "assigned",
                at: r.get(2)?,
            })
        })?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by_key(|n| n.at);
    Ok(out)
}

/// Conversations with customer messages nobody has read yet.
pub fn unread_conversations(conn: &Connection, shop_id: &str) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM conversations t WHERE t.shop_id = ?1 AND EXISTS (SELECT 1 FROM messages m
         WHERE m.conversation_id = t.id AND m.direction = 'in' AND m.at > t.read_at)",
        [shop_id],
        |r| r.get(0),
    )?)
}

/// The staff member who logged in last on this replica (the desktop's user).
pub fn last_login(conn: &Connection) -> Result<Option<String>> {
    Ok(conn.query_row("SELECT user_id FROM sessions ORDER BY created_at DESC LIMIT 1", [], |r| r.get(0)).optional()?)
}

#[cfg(test)]
mod tests {
    use super::number_forms;

    #[test]
    fn mexican_and_argentine_mobiles_have_two_forms_and_other_numbers_one() {
        assert_eq!(number_forms("5215512345678"), ["5215512345678", "525512345678"]);
        assert_eq!(number_forms("525512345678"), ["525512345678", "5215512345678"]);
        assert_eq!(number_forms("5491123456789"), ["5491123456789", "541123456789"]);
        assert_eq!(number_forms("541123456789"), ["541123456789", "5491123456789"]);
        // Spain, Colombia, the US, and too short or too long to be a Mexican mobile.
        for one in ["34612345678", "573001234567", "15551234567", "52551234567", "52155123456789"] {
            assert_eq!(number_forms(one), [one, one]);
        }
    }
}
