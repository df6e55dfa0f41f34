//! Support tickets in 1,024 shard documents per shop (`doc::SHARDS`), shop-wide like customers:
//! any replica may open, work on and comment on any ticket, also offline. A ticket may name the
//! customer who reported it, the order it is about and the WhatsApp conversation it came from.
//! Comments (and status changes, kept as comments naming the new status) sit in a map inside the
//! ticket's record, so comments written on several replicas at once are all kept. The ticket's
//! status is the one of its latest status change (by the time it was made, then its id), so two
//! devices that changed it offline agree on the later one, and the history never contradicts
//! it. Who handles a ticket is one small map (`assignment`: staff id, when, by whom), replaced as
//! a whole, so the three never come from different devices.

use automerge::{Automerge, ObjType, ReadDoc, transaction::Transactable};
use dashoffice_domain::{
    FieldError, FieldErrors, Permission, TicketPriority, TicketStatus,
    api::{AddTicketComment, CreateTicket, Page, TicketComment, TicketListParams, TicketView, UpdateTicket},
    inbox::SendMessage,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};

use super::{customers, inbox, inbox::now_ms, new_id, orders, put_str, staff};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

fn check_subject(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(3..=200).contains(&s.chars().count()) {
        return Err(FieldError::new("subject", "length", "3 to 200 characters, such as \"Taza llegó rota\""));
    }
    Ok(s)
}

fn check_description(s: &str) -> std::result::Result<String, FieldError> {
    if s.chars().count() > 10_000 {
        return Err(FieldError::new("description", "max_length", "at most 10000 characters"));
    }
    Ok(s.trim().to_string())
}

fn check_priority(s: &str) -> std::result::Result<TicketPriority, FieldError> {
    TicketPriority::parse(s.trim()).ok_or_else(|| FieldError::new("priority", "one_of", "low, normal, high or urgent"))
}

fn check_status(s: &str) -> std::result::Result<TicketStatus, FieldError> {
    TicketStatus::parse(s.trim())
        .ok_or_else(|| FieldError::new("status", "one_of", "open, in_progress, waiting, resolved or closed"))
}

fn check_body(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 5_000 {
        return Err(FieldError::new("body", "length", "1 to 5000 characters"));
    }
    Ok(s.to_string())
}

/// A live staff account of the shop (who may be given a ticket).
fn check_assignee(conn: &Connection, shop: &str, id: &str) -> Result<String> {
    let s = staff::get(conn, shop, id).map_err(|_| CoreError::not_found_field("staff", id, "assignee_id"))?;
    if s.archived {
        return Err(FieldError::new("assignee_id", "active", "that staff account is archived").into());
    }
    Ok(s.id)
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Opens a ticket. Without a customer, the order's or the conversation's customer is taken.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    home_branch: Option<&str>,
    input: CreateTicket,
) -> Result<TicketView> {
    caller.require(Permission::HandleTickets)?;
    let shop = caller.shop_id.clone();
    let mut e = FieldErrors::new();
    let subject = e.check(check_subject(&input.subject));
    let description = e.check(check_description(&input.description));
    let priority = match given(&input.priority) {
        Some(p) => e.check(check_priority(p)),
        None => Some(TicketPriority::Normal),
    };
    e.finish()?;
    let conn = ctx.conn();
    let order = match given(&input.order_id) {
        Some(o) => Some(orders::get(conn, caller, o).map_err(|_| CoreError::not_found_field("order", o, "order_id"))?),
        None => None,
    };
    let conversation = match given(&input.conversation_id) {
        Some(c) => {
            let conv = inbox::get_conversation(conn, &shop, c)
                .map_err(|_| CoreError::not_found_field("conversation", c, "conversation_id"))?;
            caller
                .check_branch(&conv.branch_id)
                .map_err(|_| CoreError::not_found_field("conversation", c, "conversation_id"))?;
            Some(conv)
        }
        None => None,
    };
    let customer = match given(&input.customer_id) {
        Some(c) => Some(
            customers::get(conn, &shop, c).map_err(|_| CoreError::not_found_field("customer", c, "customer_id"))?.id,
        ),
        None => order
            .as_ref()
            .map(|o| o.customer_id.clone())
            .or_else(|| conversation.as_ref().map(|c| c.customer_id.clone())),
    };
    let assignee = match given(&input.assignee_id) {
        Some(a) => Some(check_assignee(conn, &shop, a)?),
        None => None,
    };
    let branch = order
        .as_ref()
        .map(|o| o.branch_id.clone())
        .or_else(|| caller.branch_id.clone())
        .or_else(|| home_branch.map(str::to_string))
        .unwrap_or_default();
    let seq = ctx.next_seq("ticket")?;
    let number = format!("T-{}-{seq:05}", ctx.device().code);
    let id = new_id();
    let now = ctx.now();
    let (subject, description, priority) =
        (subject.unwrap_or_default(), description.unwrap_or_default(), priority.unwrap_or(TicketPriority::Normal));
    ctx.change(&DocId::tickets(&shop, &id), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), ObjType::Map)?;
        put_str(tx, &o, "number", &number)?;
        put_str(tx, &o, "subject", &subject)?;
        put_str(tx, &o, "description", &description)?;
        put_str(tx, &o, "status", TicketStatus::Open.as_str())?;
        put_str(tx, &o, "priority", priority.as_str())?;
        put_str(tx, &o, "customer_id", customer.as_deref().unwrap_or(""))?;
        put_str(tx, &o, "order_id", order.as_ref().map_or("", |o| o.id.as_str()))?;
        put_str(tx, &o, "conversation_id", conversation.as_ref().map_or("", |c| c.id.as_str()))?;
        put_assignment(tx, &o, assignee.as_deref().unwrap_or(""), now, &caller.user_id)?;
        put_str(tx, &o, "branch_id", &branch)?;
        put_str(tx, &o, "created_by", &caller.user_id)?;
        tx.put_object(&o, "comments", ObjType::Map)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, &id)
}

/// Changes a ticket's subject, description, status, priority or who handles it. A status change
/// is kept in the ticket's history (as a comment naming the new status).
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateTicket) -> Result<TicketView> {
    caller.require(Permission::HandleTickets)?;
    let shop = caller.shop_id.clone();
    let current = get(ctx.conn(), caller, id)?;
    let mut e = FieldErrors::new();
    let subject = input.subject.as_deref().and_then(|s| e.check(check_subject(s)));
    let description = input.description.as_deref().and_then(|s| e.check(check_description(s)));
    let priority = input.priority.as_deref().and_then(|s| e.check(check_priority(s)));
    let status = input.status.as_deref().and_then(|s| e.check(check_status(s)));
    e.finish()?;
    let status = status.filter(|s| *s != current.status);
    if let Some(to) = status
        && !current.status.next().contains(&to)
    {
        return Err(FieldError::new("status", "transition", "a closed ticket only opens again (status open)").into());
    }
    let assignee = match input.assignee_id.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(String::new()),
        Some(a) => Some(check_assignee(ctx.conn(), &shop, a)?),
    };
    // Only a change of hands is written (and then when, and by whom: their notification says so).
    let assignee = assignee.filter(|a| current.assignee_id.as_deref().unwrap_or("") != a);
    let now = ctx.now();
    let note_id = new_id();
    let by = caller.user_id.clone();
    ctx.change(&DocId::tickets(&shop, id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("ticket", id))?;
        for (k, v) in [("subject", &subject), ("description", &description)] {
            if let Some(v) = v {
                put_str(tx, &o, k, v)?;
            }
        }
        if let Some(p) = priority {
            put_str(tx, &o, "priority", p.as_str())?;
        }
        if let Some(a) = &assignee {
            put_assignment(tx, &o, a, now, &by)?;
        }
        if let Some(to) = status {
            // The status change in the history is what counts; the field is for readers of the
            // document that do not look at the history.
            put_str(tx, &o, "status", to.as_str())?;
            add_comment(tx, &o, &note_id, &by, "", Some(to), now)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, id)
}

/// Adds a comment to a ticket. With `notify_customer` the comment also goes to the customer on
/// WhatsApp, as a reply in the ticket's conversation (else the customer's latest one), and the
/// comment keeps the message it went as. That reply is checked first (a conversation to send it
/// to, the 24-hour window): if WhatsApp cannot take it, nothing is written.
pub fn comment(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: AddTicketComment) -> Result<TicketView> {
    caller.require(Permission::HandleTickets)?;
    let shop = caller.shop_id.clone();
    let ticket = get(ctx.conn(), caller, id)?;
    let body = check_body(&input.body)?;
    let message = if input.notify_customer {
        let conversation = customer_conversation(ctx.conn(), caller, &ticket)?;
        let reply = SendMessage { kind: Some("text".into()), text: body.clone(), ..Default::default() };
        Some(inbox::send(ctx, caller, &conversation, reply, &caller.user_id)?.id)
    } else {
        None
    };
    let now = ctx.now();
    let comment_id = new_id();
    let by = caller.user_id.clone();
    ctx.change(&DocId::tickets(&shop, id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("ticket", id))?;
        let c = add_comment(tx, &o, &comment_id, &by, &body, None, now)?;
        if let Some(m) = &message {
            put_str(tx, &c, "message_id", m)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, id)
}

/// Where a reply to ticket `t`'s customer goes: the conversation the ticket came from, when the
/// caller may see it, else the customer's latest WhatsApp conversation.
fn customer_conversation(conn: &Connection, caller: &Caller, t: &TicketView) -> Result<String> {
    if let Some(c) = &t.conversation_id
        && let Ok(conv) = inbox::get_conversation(conn, &caller.shop_id, c)
        && caller.check_branch(&conv.branch_id).is_ok()
    {
        return Ok(conv.id);
    }
    let Some(customer) = &t.customer_id else {
        return Err(CoreError::conflict(
            "notify_customer",
            "no_customer",
            "the ticket names no customer to write to: give it the customer first",
        ));
    };
    inbox::order_conversation(conn, caller, customer)?.ok_or_else(|| {
        CoreError::conflict(
            "notify_customer",
            "no_conversation",
            "the customer has no WhatsApp conversation yet: WhatsApp lets the shop write first only with a template",
        )
    })
}

/// The newest active ticket opened from conversation `conversation`, if any: (id, number).
pub fn active_for_conversation(conn: &Connection, conversation: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, number FROM tickets WHERE conversation_id = ?1 AND status IN ('open', 'in_progress', 'waiting')
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Gives ticket record `o` to staff member `to` ("" for nobody), as one map replaced whole.
fn put_assignment(
    tx: &mut automerge::transaction::Transaction<'_>,
    o: &automerge::ObjId,
    to: &str,
    now: i64,
    by: &str,
) -> Result<()> {
    let a = tx.put_object(o, "assignment", ObjType::Map)?;
    put_str(tx, &a, "id", to)?;
    tx.put(&a, "at", now)?;
    put_str(tx, &a, "by", by)?;
    Ok(())
}

/// Writes a comment (or, with `status`, a status change) into ticket record `o`; returns it.
fn add_comment(
    tx: &mut automerge::transaction::Transaction<'_>,
    o: &automerge::ObjId,
    id: &str,
    by: &str,
    body: &str,
    status: Option<TicketStatus>,
    now: i64,
) -> Result<automerge::ObjId> {
    let comments = match doc::get_obj(tx, o, "comments") {
        Some(c) => c,
        None => tx.put_object(o, "comments", ObjType::Map)?,
    };
    let c = tx.put_object(&comments, id, ObjType::Map)?;
    put_str(tx, &c, "author_id", by)?;
    put_str(tx, &c, "body", body)?;
    if let Some(s) = status {
        put_str(tx, &c, "status", s.as_str())?;
    }
    tx.put(&c, "created_at", now)?;
    Ok(c)
}

/// The comments of a ticket record, oldest first.
fn read_comments<D: ReadDoc>(d: &D, o: &automerge::ObjId) -> Vec<(String, String, String, String, i64, String)> {
    let Some(map) = doc::get_obj(d, o, "comments") else {
        return Vec::new();
    };
    let mut out: Vec<_> = d
        .keys(&map)
        .filter_map(|k| {
            let c = doc::get_obj(d, &map, &k)?;
            Some((
                k,
                doc::get_str(d, &c, "author_id"),
                doc::get_str(d, &c, "body"),
                doc::get_str(d, &c, "status"),
                doc::get_i64(d, &c, "created_at"),
                doc::get_str(d, &c, "message_id"),
            ))
        })
        .collect();
    out.sort_by(|a, b| (a.4, &a.0).cmp(&(b.4, &b.0)));
    out
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM ticket_comments WHERE ticket_id = ?1")?.execute([id])?;
    let Some(o) = doc::record(d, id)? else {
        conn.prepare_cached("DELETE FROM tickets WHERE id = ?1")?.execute([id])?;
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let shop = doc_id.scope()?.shop_id;
    let priority = TicketPriority::parse(&f.str("priority")).unwrap_or(TicketPriority::Normal);
    let comments = read_comments(d, &o);
    // The latest status change decides (comments are sorted by time, then id).
    let latest = comments.iter().rev().find_map(|c| TicketStatus::parse(&c.3).map(|s| (s, c.4)));
    let status = latest.map_or_else(|| TicketStatus::parse(&f.str("status")).unwrap_or(TicketStatus::Open), |l| l.0);
    let resolved_at = latest.filter(|(s, _)| !s.is_active()).map(|(_, at)| at);
    let created_at = f.i64("created_at");
    let (assignee, assigned_at, assigned_by) = match doc::get_obj(d, &o, "assignment") {
        Some(a) => (doc::get_opt_str(d, &a, "id"), doc::get_i64(d, &a, "at"), doc::get_opt_str(d, &a, "by")),
        None => (None, 0, None),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO tickets(id, shop_id, doc_id, number, subject, description, status, priority, customer_id,
             order_id, conversation_id, assignee_id, branch_id, created_by, created_at, updated_at, due_at, resolved_at, comment_count,
             assigned_at, assigned_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        id,
        shop,
        doc_id.as_str(),
        f.str("number"),
        f.str("subject"),
        f.str("description"),
        status.as_str(),
        priority.as_str(),
        f.opt_str("customer_id"),
        f.opt_str("order_id"),
        f.opt_str("conversation_id"),
        assignee,
        f.opt_str("branch_id"),
        f.str("created_by"),
        created_at,
        f.i64("updated_at"),
        created_at.saturating_add(priority.due_after_ms()),
        resolved_at,
        comments.iter().filter(|c| c.3.is_empty()).count() as i64,
        assigned_at,
        assigned_by,
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO ticket_comments(id, ticket_id, author_id, body, status, created_at, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (cid, author, body, status, at, message) in comments {
        let (status, message) = (Some(status).filter(|s| !s.is_empty()), Some(message).filter(|m| !m.is_empty()));
        insert.execute(params![cid, id, author, body, status, at, message])?;
    }
    Ok(())
}

const COLS: &str = "t.id, t.number, t.subject, t.description, t.status, t.priority, t.customer_id,
    (SELECT c.name FROM customers c WHERE c.id = t.customer_id), t.order_id,
    (SELECT o.number FROM orders o WHERE o.id = t.order_id), t.conversation_id, t.assignee_id,
    (SELECT s.name FROM staff s WHERE s.id = t.assignee_id), t.branch_id, t.created_by, t.created_at, t.updated_at,
    t.due_at, t.resolved_at, t.comment_count";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketView> {
    let status = TicketStatus::parse(&r.get::<_, String>(4)?).unwrap_or(TicketStatus::Open);
    let due_at: i64 = r.get(17)?;
    Ok(TicketView {
        id: r.get(0)?,
        number: r.get(1)?,
        subject: r.get(2)?,
        description: r.get(3)?,
        status,
        priority: TicketPriority::parse(&r.get::<_, String>(5)?).unwrap_or(TicketPriority::Normal),
        customer_id: r.get(6)?,
        customer_name: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        order_id: r.get(8)?,
        order_number: r.get(9)?,
        conversation_id: r.get(10)?,
        assignee_id: r.get(11)?,
        assignee_name: r.get(12)?,
        branch_id: r.get(13)?,
        created_by: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        due_at,
        overdue: status.is_active() && due_at < now_ms(),
        resolved_at: r.get(18)?,
        next: status.next(),
        comments: Vec::new(),
        comment_count: r.get(19)?,
    })
}

/// Tickets are shop-wide, orders belong to a branch: a caller limited to another branch does
/// not see the order's number (the order itself is not theirs to open).
fn hide_other_branches(conn: &Connection, caller: &Caller, t: &mut TicketView) -> Result<()> {
    if let (Some(_), Some(order)) = (&caller.branch_id, &t.order_id) {
        let branch: Option<String> = conn
            .prepare_cached("SELECT branch_id FROM orders WHERE id = ?1")?
            .query_row([order], |r| r.get(0))
            .optional()?;
        if branch.is_none_or(|b| caller.check_branch(&b).is_err()) {
            t.order_number = None;
        }
    }
    Ok(())
}

/// One ticket with its comments and status changes.
pub fn get(conn: &Connection, caller: &Caller, id: &str) -> Result<TicketView> {
    let mut t = conn
        .prepare_cached(&format!("SELECT {COLS} FROM tickets t WHERE t.id = ?1 AND t.shop_id = ?2"))?
        .query_row([id, caller.shop_id.as_str()], row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("ticket", id))?;
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.author_id, (SELECT s.name FROM staff s WHERE s.id = c.author_id), c.body, c.status, c.created_at,
             c.message_id
         FROM ticket_comments c WHERE c.ticket_id = ?1 ORDER BY c.created_at, c.id",
    )?;
    t.comments = stmt
        .query_map([id], |r| {
            Ok(TicketComment {
                id: r.get(0)?,
                author_id: r.get(1)?,
                author_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                body: r.get(3)?,
                status: r.get::<_, Option<String>>(4)?.as_deref().and_then(TicketStatus::parse),
                created_at: r.get(5)?,
                message_id: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    hide_other_branches(conn, caller, &mut t)?;
    Ok(t)
}

/// Lists tickets: filters `status` (or `active`), `priority`, `assignee_id` (`me`, `none`),
/// `customer_id` (with customers merged into it), `order_id`; `q` matches number, subject,
/// description and the customer's name.
pub fn list(conn: &Connection, caller: &Caller, p: &TicketListParams) -> Result<Page<TicketView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {COLS} FROM tickets t"),
        p.sort.as_deref(),
        &[
            ("created_at", "t.created_at", SortKind::Int),
            ("updated_at", "t.updated_at", SortKind::Int),
            ("due_at", "t.due_at", SortKind::Int),
            ("number", "t.number", SortKind::Text),
        ],
        "-created_at",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.filter("t.shop_id = ?", [Value::Text(caller.shop_id.clone())]);
    match p.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => {}
        Some("active") => q.filter("t.status IN ('open', 'in_progress', 'waiting')", []),
        Some(s) => {
            let st = TicketStatus::parse(s).ok_or_else(|| {
                FieldError::new("status", "one_of", "open, in_progress, waiting, resolved, closed or active")
            })?;
            q.filter("t.status = ?", [Value::Text(st.as_str().to_string())]);
        }
    }
    if let Some(s) = p.priority.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        q.filter("t.priority = ?", [Value::Text(check_priority(s)?.as_str().to_string())]);
    }
    match p.assignee_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => {}
        Some("none") => q.filter("t.assignee_id IS NULL", []),
        Some("me") => q.filter("t.assignee_id = ?", [Value::Text(caller.user_id.clone())]),
        Some(a) => q.filter("t.assignee_id = ?", [Value::Text(a.to_string())]),
    }
    if let Some(c) = p.customer_id.as_deref().filter(|s| !s.is_empty()) {
        let ids = customers::identity_ids(conn, c)?;
        let marks = vec!["?"; ids.len()].join(", ");
        q.filter(&format!("t.customer_id IN ({marks})"), ids.into_iter().map(Value::Text));
    }
    if let Some(o) = p.order_id.as_deref().filter(|s| !s.is_empty()) {
        q.filter("t.order_id = ?", [Value::Text(o.to_string())]);
    }
    if let Some(s) = p.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let folded = like(&crate::search::fold(s), true, true);
        q.filter(
            "(t.number LIKE ? ESCAPE '\\' OR fold(t.subject) LIKE ? ESCAPE '\\' OR fold(t.description) LIKE ? ESCAPE '\\'
              OR EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id AND fold(c.name) LIKE ? ESCAPE '\\'))",
            [like(&s.to_uppercase(), true, true), folded.clone(), folded.clone(), folded],
        );
    }
    let sort = p.sort.clone().unwrap_or_else(|| "-created_at".into());
    let mut page = q.run(conn, row, |t| {
        let v = match sort.trim_start_matches('-') {
            "updated_at" => Value::Integer(t.updated_at),
            "due_at" => Value::Integer(t.due_at),
            "number" => Value::Text(t.number.clone()),
            _ => Value::Integer(t.created_at),
        };
        (v, t.id.clone())
    })?;
    for t in &mut page.items {
        hide_other_branches(conn, caller, t)?;
    }
    Ok(page)
}

/// A ticket given to someone (the desktop app's notification).
#[derive(Debug, Clone, PartialEq)]
pub struct AssignedTicket {
    /// Id.
    pub id: String,
    /// Number.
    pub number: String,
    /// Subject.
    pub subject: String,
    /// When it was given (Unix ms).
    pub at: i64,
}

/// Active tickets given to `user` by someone else after `since_ms`, oldest first (at most 50).
pub fn assigned_since(conn: &Connection, shop: &str, user: &str, since_ms: i64) -> Result<Vec<AssignedTicket>> {
    let mut st = conn.prepare_cached(
        "SELECT id, number, subject, assigned_at FROM tickets
         WHERE shop_id = ?1 AND assignee_id = ?2 AND assigned_at > ?3 AND coalesce(assigned_by, '') <> ?2
           AND status IN ('open', 'in_progress', 'waiting')
         ORDER BY assigned_at LIMIT 50",
    )?;
    let rows = st.query_map(params![shop, user, since_ms], |r| {
        Ok(AssignedTicket { id: r.get(0)?, number: r.get(1)?, subject: r.get(2)?, at: r.get(3)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Support in a period from `start_ms` (tickets opened in `branch`, if given): tickets opened,
/// tickets resolved (or closed), and the median hours from opening to resolution of those.
pub fn period_stats(
    conn: &Connection,
    shop: &str,
    branch: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<(u64, u64, Option<f64>)> {
    let opened: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM tickets WHERE shop_id = ?1 AND created_at >= ?2 AND created_at < ?4
               AND (?3 IS NULL OR branch_id = ?3)",
        )?
        .query_row(params![shop, start_ms, branch, end_ms], |r| r.get(0))?;
    let mut st = conn.prepare_cached(
        "SELECT resolved_at - created_at FROM tickets
         WHERE shop_id = ?1 AND resolved_at >= ?2 AND resolved_at < ?4 AND status IN ('resolved', 'closed')
           AND (?3 IS NULL OR branch_id = ?3)
         ORDER BY 1",
    )?;
    let took = st
        .query_map(params![shop, start_ms, branch, end_ms], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let median = match took.len() {
        0 => None,
        n if n % 2 == 1 => Some(took[n / 2] as f64),
        n => Some((took[n / 2 - 1] as f64 + took[n / 2] as f64) / 2.0),
    };
    Ok((opened as u64, took.len() as u64, median.map(|ms| (ms.max(0.0) / 360_000.0).round() / 10.0)))
}

/// Active tickets of the shop (opened in `branch`, if given), and how many of them are overdue at
/// `now` (the dashboard).
pub fn active_counts(conn: &Connection, shop: &str, branch: Option<&str>, now: i64) -> Result<(u64, u64)> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(due_at < ?2), 0) FROM tickets
             WHERE shop_id = ?1 AND status IN ('open', 'in_progress', 'waiting') AND (?3 IS NULL OR branch_id = ?3)",
        )?
        .query_row(params![shop, now, branch], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?)
}
