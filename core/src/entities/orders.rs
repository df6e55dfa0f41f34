//! Orders: one document per branch per month. Lines keep a snapshot of SKU, name, price and tax
//! rate; totals are computed exactly from them. Every status change appends a transition; the
//! status shown is derived from all transitions by the merge rule in `dashoffice_domain::order`.
//! Numbers are `{branch code}-{device code}-{sequence}`: unique without coordination, never reused
//! (the sequence is bumped in the same transaction as the order).

use automerge::{
    Automerge, ObjId, ObjType, ReadDoc,
    transaction::{Transactable, Transaction},
};
use dashoffice_domain::{
    Currency, FieldError, FieldErrors, OrderStatus, Permission, Transition,
    api::{
        CreateOrder, CreditNoteView, InvoiceView, IssueCreditNote, ListParams, OrderLineInput, OrderLineView,
        OrderNotice, OrderView, Page, ResolveOrder, TransitionOrder, UpdateOrder,
    },
    compute_line, compute_totals, effective_status, legal_transition, parse_decimal, resolution_choices,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{customers, new_id, org, products, put_str, staff, stock};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

/// `YYYYMM` of a Unix-millisecond instant (UTC), for the monthly order documents.
pub(crate) fn yyyymm(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}")
}

struct Line {
    product_id: String,
    sku: String,
    name: String,
    quantity: i64,
    unit_price: Decimal,
    tax_rate: Decimal,
}

fn resolve_lines(conn: &Connection, caller: &Caller, lines: &[OrderLineInput]) -> Result<(Vec<Line>, String)> {
    if lines.is_empty() {
        return Err(FieldError::new("lines", "min_items", "an order needs at least one line").into());
    }
    if lines.len() > 200 {
        return Err(FieldError::new("lines", "max_items", "at most 200 lines").into());
    }
    let mut e = FieldErrors::new();
    let mut out = Vec::with_capacity(lines.len());
    let mut currency: Option<String> = None;
    for (i, l) in lines.iter().enumerate() {
        let f = |k: &str| format!("lines[{i}].{k}");
        if !(1..=1_000_000).contains(&l.quantity) {
            e.push(FieldError::new(f("quantity"), "range", "between 1 and 1000000"));
        }
        let p = match products::get(conn, &caller.shop_id, &l.product_id) {
            Ok(p) if !p.archived && p.active => p,
            Ok(_) => {
                e.push(FieldError::new(
                    f("product_id"),
                    "active",
                    format!("product '{}' is not for sale", l.product_id),
                ));
                continue;
            }
            Err(_) => {
                e.push(FieldError::new(f("product_id"), "exists", format!("unknown product '{}'", l.product_id)));
                continue;
            }
        };
        match &currency {
            None => currency = Some(p.currency.clone()),
            Some(c) if *c != p.currency => {
                e.push(FieldError::new(
                    f("product_id"),
                    "currency",
                    format!("priced in {} but the order is in {c}", p.currency),
                ));
            }
            _ => {}
        }
        let unit_price = match &l.unit_price {
            Some(text) => {
                if !caller.role.can(Permission::EditCatalog) {
                    e.push(FieldError::new(
                        f("unit_price"),
                        "forbidden",
                        format!("a {} may not change prices", caller.role.as_str()),
                    ));
                }
                match parse_decimal(&f("unit_price"), &text.0, 4) {
                    Ok(d) if d < Decimal::ZERO => {
                        e.push(FieldError::new(f("unit_price"), "min", "must not be negative"));
                        None
                    }
                    // The same ceiling as a product's price.
                    Ok(d) if d > Decimal::from(1_000_000_000_i64) => {
                        e.push(FieldError::new(f("unit_price"), "max", "at most 1000000000"));
                        None
                    }
                    Ok(d) => Some(d),
                    Err(err) => {
                        e.push(err);
                        None
                    }
                }
            }
            None => p.price.parse::<Decimal>().ok(),
        };
        out.push(Line {
            product_id: p.id.clone(),
            sku: p.sku.clone(),
            name: p.name.clone(),
            quantity: l.quantity,
            unit_price: unit_price.unwrap_or_default(),
            tax_rate: p.tax_rate.parse().unwrap_or_default(),
        });
    }
    e.finish()?;
    Ok((out, currency.unwrap_or_else(|| "USD".into())))
}

fn write_lines(tx: &mut Transaction<'_>, o: &ObjId, lines: &[Line]) -> Result<()> {
    let list = tx.put_object(o, "lines", ObjType::List)?;
    for (i, l) in lines.iter().enumerate() {
        let m = tx.insert_object(&list, i, ObjType::Map)?;
        put_str(tx, &m, "product_id", &l.product_id)?;
        put_str(tx, &m, "sku", &l.sku)?;
        put_str(tx, &m, "name", &l.name)?;
        tx.put(&m, "quantity", l.quantity)?;
        put_str(tx, &m, "unit_price", &l.unit_price.to_string())?;
        put_str(tx, &m, "tax_rate", &l.tax_rate.to_string())?;
    }
    Ok(())
}

/// Checks that `seller` may sell in `branch`: a live account, unscoped or of that branch.
fn check_seller(conn: &Connection, shop: &str, seller: &str, branch: &str) -> Result<()> {
    let s = staff::get(conn, shop, seller).map_err(|_| CoreError::not_found_field("staff", seller, "seller_id"))?;
    if s.archived {
        return Err(FieldError::new("seller_id", "active", "that staff account is archived").into());
    }
    if s.branch_id.as_deref().is_some_and(|b| b != branch) {
        return Err(FieldError::new("seller_id", "branch", "that seller works in another branch").into());
    }
    Ok(())
}

/// Creates a draft order.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    home_branch: Option<&str>,
    input: CreateOrder,
) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let branch = input
        .branch_id
        .clone()
        .or_else(|| caller.branch_id.clone())
        .or_else(|| home_branch.map(str::to_string))
        .ok_or_else(|| FieldError::new("branch_id", "required", "which branch sells"))?;
    caller.check_branch(&branch)?;
    let code = org::branch_code(ctx.conn(), &caller.shop_id, &branch)
        .map_err(|_| CoreError::not_found_field("branch", &branch, "branch_id"))?;
    customers::get(ctx.conn(), &caller.shop_id, &input.customer_id)
        .map_err(|_| CoreError::not_found_field("customer", &input.customer_id, "customer_id"))?;
    let seller = input.seller_id.clone().unwrap_or_else(|| caller.user_id.clone());
    check_seller(ctx.conn(), &caller.shop_id, &seller, &branch)?;
    if input.notes.chars().count() > 5000 {
        return Err(FieldError::new("notes", "max_length", "at most 5000 characters").into());
    }
    let (lines, currency) = resolve_lines(ctx.conn(), caller, &input.lines)?;
    let seq = ctx.next_seq(&format!("order:{branch}"))?;
    let number = format!("{code}-{}-{seq:06}", ctx.device().code);
    let id = new_id();
    let now = ctx.now();
    let doc_id = DocId::orders(&caller.shop_id, &branch, &yyyymm(now));
    ctx.change(&doc_id, &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), ObjType::Map)?;
        put_str(tx, &o, "number", &number)?;
        put_str(tx, &o, "branch_id", &branch)?;
        put_str(tx, &o, "customer_id", &input.customer_id)?;
        put_str(tx, &o, "seller_id", &seller)?;
        put_str(tx, &o, "currency", &currency)?;
        put_str(tx, &o, "notes", input.notes.trim())?;
        write_lines(tx, &o, &lines)?;
        tx.put_object(&o, "transitions", ObjType::List)?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, &id)
}

pub(crate) fn locate(conn: &Connection, caller: &Caller, id: &str) -> Result<(DocId, String)> {
    let found: Option<(String, String)> = conn
        .prepare_cached("SELECT doc_id, branch_id FROM orders WHERE id = ?1 AND shop_id = ?2")?
        .query_row([id, caller.shop_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (doc_id, branch) = found.ok_or_else(|| CoreError::not_found("order", id))?;
    caller.check_branch(&branch).map_err(|_| CoreError::not_found("order", id))?;
    Ok((DocId::parse(&doc_id)?, branch))
}

fn read_transitions<D: ReadDoc>(d: &D, o: &ObjId) -> Vec<Transition> {
    let Some(list) = doc::get_obj(d, o, "transitions") else {
        return Vec::new();
    };
    let mut out: Vec<Transition> = (0..d.length(&list))
        .filter_map(|i| match d.get(&list, i) {
            Ok(Some((automerge::Value::Object(ObjType::Map), m))) => Some(m),
            _ => None,
        })
        .filter_map(|m| {
            Some(Transition {
                from: OrderStatus::parse(&doc::get_str(d, &m, "from"))?,
                to: OrderStatus::parse(&doc::get_str(d, &m, "to"))?,
                by: doc::get_str(d, &m, "by"),
                at: doc::get_i64(d, &m, "at"),
                device: doc::get_str(d, &m, "device"),
                resolution: doc::get_bool(d, &m, "resolution", false),
                covers: doc::get_set(d, &m, "covers"),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, a.from, a.to, &a.device).cmp(&(b.at, b.from, b.to, &b.device)));
    out
}

/// Changes a draft's lines, or any order's notes or seller.
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateOrder) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let (doc_id, branch) = locate(ctx.conn(), caller, id)?;
    let lines = input.lines.as_deref().map(|l| resolve_lines(ctx.conn(), caller, l)).transpose()?;
    if let Some(s) = &input.seller_id {
        check_seller(ctx.conn(), &caller.shop_id, s, &branch)?;
    }
    if input.notes.as_ref().is_some_and(|n| n.chars().count() > 5000) {
        return Err(FieldError::new("notes", "max_length", "at most 5000 characters").into());
    }
    let now = ctx.now();
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        if let Some((lines, currency)) = &lines {
            let (status, _) = effective_status(&read_transitions(tx, &o));
            if status != OrderStatus::Draft {
                return Err(CoreError::conflict(
                    "lines",
                    "draft_only",
                    format!("lines can change only while the order is a draft (it is {status})"),
                ));
            }
            write_lines(tx, &o, lines)?;
            put_str(tx, &o, "currency", currency)?;
        }
        if let Some(n) = &input.notes {
            put_str(tx, &o, "notes", n.trim())?;
        }
        if let Some(s) = &input.seller_id {
            put_str(tx, &o, "seller_id", s)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, id)
}

/// Moves an order one legal step.
pub fn transition(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: TransitionOrder) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let (doc_id, _) = locate(ctx.conn(), caller, id)?;
    let (now, device, user) = (ctx.now(), ctx.device().code.clone(), caller.user_id.clone());
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        let (from, _) = effective_status(&read_transitions(tx, &o));
        if !legal_transition(from, input.to) {
            let next: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
            return Err(CoreError::conflict(
                "to",
                "legal_transition",
                format!(
                    "an order that is {from} cannot become {}; allowed: {}",
                    input.to,
                    if next.is_empty() { "none".to_string() } else { next.join(", ") }
                ),
            ));
        }
        append_transition(
            tx,
            &o,
            Transition { from, to: input.to, by: user, at: now, device, resolution: false, covers: Vec::new() },
        )
    })?;
    let view = get(ctx.conn(), caller, id)?;
    if view.status == input.to && notify(ctx, &caller.shop_id, &doc_id, &view)? {
        return get(ctx.conn(), caller, id);
    }
    Ok(view)
}

/// Tells the customer on WhatsApp that order `o` reached its status, when the shop has a notice
/// for that status (`ShopView::order_notices`): in the customer's latest WhatsApp conversation
/// with the order's branch, else their latest, else (a customer with a WhatsApp number or phone
/// who never wrote) a new one in the order's branch, as the template. A notice that cannot go (no
/// number; the window closed and no template) is marked on the order with its reason, and the
/// order moves all the same. A draft cancelled was never the customer's order: no notice.
/// Returns whether the order's view changed (a notice queued or a skip marked).
fn notify(ctx: &mut WriteCtx<'_>, shop: &str, doc_id: &DocId, o: &OrderView) -> Result<bool> {
    if o.status == OrderStatus::Cancelled && o.transitions.last().is_some_and(|t| t.from == OrderStatus::Draft) {
        return Ok(false);
    }
    let s = super::org::get_shop(ctx.conn(), shop)?;
    let Some(text) = s.order_notices.get(o.status.as_str()).filter(|t| !t.trim().is_empty()) else {
        return Ok(false);
    };
    if o.notices.iter().any(|n| n.status == o.status.as_str() && n.skipped.is_none()) {
        return Ok(false);
    }
    // Whatever keeps the notice from being written (the customer's record not on this device
    // yet, say) keeps the order from nothing: the notice is marked as not sent.
    match notify_in(ctx, shop, doc_id, o, text, &s) {
        Err(e) if e.is_rule() => {
            tracing::warn!(order = %o.number, error = %e, "the order's WhatsApp notice cannot go");
            skip_notice(ctx, doc_id, o, "refused", "")
        }
        other => other,
    }
}

/// [`notify`] once the shop has a notice `text` for the order's status.
fn notify_in(
    ctx: &mut WriteCtx<'_>,
    shop: &str,
    doc_id: &DocId,
    o: &OrderView,
    text: &str,
    s: &dashoffice_domain::api::ShopView,
) -> Result<bool> {
    let anywhere = super::inbox::system_caller(shop);
    let in_branch = Caller { branch_id: Some(o.branch_id.clone()), ..anywhere.clone() };
    let template = s.order_notice_template.as_deref();
    let conversation = match super::inbox::order_conversation(ctx.conn(), &in_branch, &o.customer_id)? {
        Some(c) => Some(c),
        None => super::inbox::order_conversation(ctx.conn(), &anywhere, &o.customer_id)?,
    };
    // A customer who never wrote on WhatsApp is written to first, with the template, when they
    // have a number (or a phone) and the shop a template for notices.
    // A customer merged into another since is written to as the one they became.
    let customer = super::inbox::survivor(ctx.conn(), o.customer_id.clone())?;
    let conversation = match conversation {
        Some(c) => c,
        None if !super::inbox::reachable(ctx.conn(), shop, &customer)? => {
            return skip_notice(ctx, doc_id, o, "no_whatsapp", "");
        }
        None if !template.is_some_and(|t| {
            super::inbox::templates(ctx.conn(), shop).is_ok_and(|all| all.iter().any(|x| x.name == t))
        }) =>
        {
            return skip_notice(ctx, doc_id, o, "window_closed", "");
        }
        None => super::inbox::open_for_bot(ctx, shop, &o.branch_id, &customer)?,
    };
    let (text, params) = notice_content(text, o, &s.name);
    let what = (o.id.as_str(), o.status.as_str());
    match super::inbox::queue_notice(ctx, shop, &conversation, what, false, &text, template, &params) {
        Ok(super::inbox::NoticeOutcome::Queued) => Ok(true),
        Ok(super::inbox::NoticeOutcome::Exists) => Ok(false),
        Ok(super::inbox::NoticeOutcome::WindowClosed) => skip_notice(ctx, doc_id, o, "window_closed", &conversation),
        Err(e) => Err(e),
    }
}

/// Marks on order `o` that its notice of its current status could not go, and why (see
/// [`OrderNotice::skipped`]).
fn skip_notice(
    ctx: &mut WriteCtx<'_>,
    doc_id: &DocId,
    o: &OrderView,
    reason: &str,
    conversation: &str,
) -> Result<bool> {
    let skip = Skip { reason: reason.to_string(), at: ctx.now(), conversation: conversation.to_string() };
    let value = serde_json::to_string(&skip).map_err(|e| CoreError::Storage(e.to_string()))?;
    let key = format!("notice_skipped_{}", o.status.as_str());
    tracing::info!(order = %o.number, status = %o.status, reason, "the order's WhatsApp notice could not go");
    ctx.change(doc_id, &[o.id.as_str()], |tx, _| {
        let r = doc::record(tx, &o.id)?.ok_or_else(|| CoreError::not_found("order", &o.id))?;
        put_str(tx, &r, &key, &value)
    })?;
    Ok(true)
}

/// A notice's text for order `o`, filled in, and the parameters of its template: the number, the
/// text, the total and the shop's name (WhatsApp refuses a parameter with a line break, a tab or a
/// run of spaces).
fn notice_content(text: &str, o: &OrderView, shop_name: &str) -> (String, Vec<String>) {
    let total = format!("{} {}", o.total, o.currency);
    let text = super::org::fill_notice(text, &o.number, &total, &o.customer_name, shop_name);
    let params = [o.number.as_str(), text.as_str(), total.as_str(), shop_name]
        .iter()
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (text, params)
}

/// Order `order`'s notice of `status` once more, as the shop's template, in `conversation`:
/// WhatsApp refused its text because the customer's window had closed by the time it was sent
/// (it was written offline, say). Nothing when the shop has no template or no longer that notice.
pub(crate) fn notify_again(ctx: &mut WriteCtx<'_>, order: &str, status: &str, conversation: &str) -> Result<()> {
    let shop: Option<String> = ctx
        .conn()
        .prepare_cached("SELECT shop_id FROM orders WHERE id = ?1")?
        .query_row([order], |r| r.get(0))
        .optional()?;
    let Some(shop) = shop else { return Ok(()) };
    let s = super::org::get_shop(ctx.conn(), &shop)?;
    let (Some(text), Some(template)) = (s.order_notices.get(status), s.order_notice_template.as_deref()) else {
        return Ok(());
    };
    let o = get(ctx.conn(), &super::inbox::system_caller(&shop), order)?;
    let (text, params) = notice_content(text, &o, &s.name);
    super::inbox::queue_notice(ctx, &shop, conversation, (order, status), true, &text, Some(template), &params)?;
    Ok(())
}

/// Appends one entry to an order's transitions (a resolution with the keys it covers).
fn append_transition(tx: &mut Transaction<'_>, o: &ObjId, t: Transition) -> Result<()> {
    let list = match doc::get_obj(tx, o, "transitions") {
        Some(l) => l,
        None => tx.put_object(o, "transitions", ObjType::List)?,
    };
    let n = tx.length(&list);
    let m = tx.insert_object(&list, n, ObjType::Map)?;
    put_str(tx, &m, "from", t.from.as_str())?;
    put_str(tx, &m, "to", t.to.as_str())?;
    put_str(tx, &m, "by", &t.by)?;
    put_str(tx, &m, "device", &t.device)?;
    tx.put(&m, "at", t.at)?;
    if t.resolution {
        tx.put(&m, "resolution", true)?;
        doc::set_set(tx, &m, "covers", &t.covers)?;
    }
    tx.put(o, "updated_at", t.at)?;
    Ok(())
}

/// Settles an order whose workflow forked between replicas on `input.status`, one of the
/// statuses some replica moved it to (owners and managers: it may undo a cancellation).
pub fn resolve(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: ResolveOrder) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    caller.require(Permission::Archive)?;
    let (doc_id, _) = locate(ctx.conn(), caller, id)?;
    let (now, device, user) = (ctx.now(), ctx.device().code.clone(), caller.user_id.clone());
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        let seen = read_transitions(tx, &o);
        let (from, conflict) = effective_status(&seen);
        if !conflict {
            return Err(CoreError::conflict("status", "conflicted", "the order has no conflict to settle"));
        }
        let choices = resolution_choices(&seen);
        if !choices.contains(&input.status) {
            let names: Vec<&str> = choices.iter().map(|s| s.as_str()).collect();
            return Err(FieldError::new("status", "one_of", format!("one of {}", names.join(", "))).into());
        }
        let covers = seen.iter().map(Transition::key).collect();
        // Never before what it settles, even on a device whose clock is behind.
        let now = seen.iter().map(|t| t.at + 1).fold(now, i64::max);
        append_transition(
            tx,
            &o,
            Transition { from, to: input.status, by: user, at: now, device, resolution: true, covers },
        )
    })?;
    // The status settled on was told by the replica that reached it (one notice per order and
    // status, whoever writes it); one whose notice could not go there may tell it now.
    let view = get(ctx.conn(), caller, id)?;
    if view.status == input.status && notify(ctx, &caller.shop_id, &doc_id, &view)? {
        return get(ctx.conn(), caller, id);
    }
    Ok(view)
}

/// Archives (hides) an order that holds no stock.
pub fn archive(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<OrderView> {
    caller.require(Permission::Archive)?;
    let current = get(ctx.conn(), caller, id)?;
    if current.status.commits_stock() {
        return Err(CoreError::conflict(
            "status",
            "archivable",
            format!("a {} order holds stock; cancel or refund it first", current.status),
        ));
    }
    let (doc_id, _) = locate(ctx.conn(), caller, id)?;
    let now = ctx.now();
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        tx.put(&o, "archived", true)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, id)
}

/// An issued invoice as its issuing device wrote it (the order's `invoice`, one value).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Issued {
    provisional: String,
    issued_at: i64,
    issued_by: String,
    device: String,
    /// Why (credit notes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    reason: String,
    /// The returns a credit note takes into account (it undoes the rest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nets: Vec<String>,
}

/// A legal number as the branch's numbering device wrote it (the order's `invoice_number`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Posted {
    pub(crate) number: String,
    pub(crate) series: String,
    pub(crate) seq: i64,
    pub(crate) posted_at: i64,
    pub(crate) device: String,
}

/// A legal invoice number: the series and 8 digits.
fn legal_number(series: &str, seq: i64) -> String {
    format!("{series}-{seq:08}")
}

/// Issues the order's invoice (sellers and up): it gets a provisional number at once, on any
/// replica, offline too; the branch's numbering device gives it the legal number (see
/// [`post_invoices`]). Once the order is confirmed and until it is cancelled or refunded, and
/// once the shop's tax id is set. Issuing again returns the invoice already issued.
pub fn issue_invoice(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let current = get(ctx.conn(), caller, id)?;
    if current.invoice.is_some() {
        return Ok(current);
    }
    match current.status {
        OrderStatus::Draft => {
            return Err(CoreError::conflict(
                "status",
                "invoiceable",
                "a draft is not invoiced: confirm the order first",
            ));
        }
        OrderStatus::Cancelled | OrderStatus::Refunded => {
            return Err(CoreError::conflict(
                "status",
                "invoiceable",
                format!("a {} order is not invoiced", current.status),
            ));
        }
        _ => {}
    }
    let shop = org::get_shop(ctx.conn(), &caller.shop_id)?;
    if shop.tax_id.trim().is_empty() {
        return Err(CoreError::conflict(
            "tax_id",
            "required",
            format!("an invoice carries the shop's {}: set it first (Settings, Shop)", shop.tax_id_label),
        ));
    }
    issue(ctx, caller, id, "invoice", 'F', (String::new(), Vec::new()))?;
    super::emails::request_automatic(ctx, caller, id, "invoice")?;
    get(ctx.conn(), caller, id)
}

/// Issues the order's `key` (`invoice` or `credit_note`) with a provisional number
/// `{branch}-{device}-{letter}{sequence}` unless a change this replica received meanwhile issued
/// it already (that one stands); the order as it is then.
fn issue(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    id: &str,
    key: &str,
    letter: char,
    (reason, nets): (String, Vec<String>),
) -> Result<OrderView> {
    let (doc_id, branch) = locate(ctx.conn(), caller, id)?;
    let code = org::branch_code(ctx.conn(), &caller.shop_id, &branch)?;
    let seq = ctx.next_seq(&format!("{key}:{branch}"))?;
    let issued = Issued {
        provisional: format!("{code}-{}-{letter}{seq:06}", ctx.device().code),
        issued_at: ctx.now(),
        issued_by: caller.user_id.clone(),
        device: ctx.device().code.clone(),
        reason,
        nets,
    };
    let value = serde_json::to_string(&issued).map_err(|e| CoreError::Storage(e.to_string()))?;
    let now = issued.issued_at;
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        if doc::get_opt_str(tx, &o, key).is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        put_str(tx, &o, key, &value)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), caller, id)
}

/// Issues the credit note that undoes the invoice of an order cancelled or refunded after it was
/// invoiced (sellers and up), with an optional `reason` (≤ 500 characters): a provisional number
/// at once, on any replica; the numbering device of the branch gives it the next number of the
/// series `NC-{the invoice's series}` once the invoice has its own. Issuing again returns the
/// credit note already issued.
pub fn issue_credit_note(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    id: &str,
    input: IssueCreditNote,
) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let reason = input.reason.as_deref().map(str::trim).unwrap_or_default().to_string();
    if reason.chars().count() > 500 {
        return Err(FieldError::new("reason", "max_length", "at most 500 characters").into());
    }
    let current = get(ctx.conn(), caller, id)?;
    if current.credit_note.is_some() {
        return Ok(current);
    }
    if current.invoice.is_none() {
        return Err(CoreError::conflict("invoice", "required", "the order has no invoice to undo"));
    }
    if !matches!(current.status, OrderStatus::Cancelled | OrderStatus::Refunded) {
        return Err(CoreError::conflict(
            "status",
            "creditable",
            format!("a credit note undoes the invoice of a cancelled or refunded order (it is {})", current.status),
        ));
    }
    let mut net = current.clone();
    super::returns::net_of_returns(ctx.conn(), &mut net)?;
    if net.lines.is_empty() {
        return Err(CoreError::conflict(
            "returns",
            "creditable",
            "every unit came back in returns, and their credit notes undo the invoice already",
        ));
    }
    let nets = super::returns::accepted_ids(ctx.conn(), id)?;
    issue(ctx, caller, id, "credit_note", 'C', (reason, nets))?;
    super::emails::request_automatic(ctx, caller, id, "credit_note")?;
    get(ctx.conn(), caller, id)
}

/// SQL: invoices of branches this replica numbers that wait for their legal number.
const PENDING_HERE: &str = "FROM orders o JOIN branches b ON b.id = o.branch_id
    WHERE o.invoice_issued_at IS NOT NULL AND o.invoice_number = ''
      AND b.invoicer != '' AND b.invoicer = (SELECT hex(actor) FROM device WHERE id = 1)";

/// SQL: credit notes of branches this replica numbers whose invoice has its number and which
/// wait for theirs.
const CREDIT_PENDING_HERE: &str = "FROM orders o JOIN branches b ON b.id = o.branch_id
    WHERE o.credit_issued_at IS NOT NULL AND o.credit_number = '' AND o.invoice_number != ''
      AND b.invoicer != '' AND b.invoicer = (SELECT hex(actor) FROM device WHERE id = 1)";

/// SQL: accepted returns of invoiced orders of branches this replica numbers, whose invoice has
/// its number and which wait for their credit note's.
const RETURN_PENDING_HERE: &str =
    "FROM order_returns r JOIN orders o ON o.id = r.order_id JOIN branches b ON b.id = o.branch_id
    WHERE r.number = '' AND r.accepted = 1 AND o.invoice_issued_at IS NOT NULL AND o.invoice_number != ''
      AND b.invoicer != '' AND b.invoicer = (SELECT hex(actor) FROM device WHERE id = 1)";

/// Whether this replica has invoices or credit notes to number (a cheap read before
/// [`post_invoices`]).
pub fn invoices_to_post(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 {PENDING_HERE}) OR EXISTS (SELECT 1 {CREDIT_PENDING_HERE})
                 OR EXISTS (SELECT 1 {RETURN_PENDING_HERE})"
        ))?
        .query_row([], |r| r.get(0))?)
}

/// What [`post_invoices`] numbers: the ledger's kind, the order's key for the number, the SQL of
/// what waits (order, document, shop, series, and the return's id for a return's credit note, else
/// '') and the projection's columns of the series and sequence.
struct Kind {
    name: &'static str,
    key: &'static str,
    pending: String,
    series_col: &'static str,
    seq_col: &'static str,
    number_col: &'static str,
}

/// Gives up to `limit` issued invoices of the branches this replica numbers their legal numbers,
/// in the order they were issued, then the credit notes whose invoice has its number: the next
/// number of the series after the highest this replica knows (its ledger, and the numbers other
/// devices gave that reached it), taken in the same transaction as the change that writes it,
/// under the ledger's uniqueness constraints. Returns how many it numbered.
pub fn post_invoices(ctx: &mut WriteCtx<'_>, limit: usize) -> Result<usize> {
    let kinds = [
        Kind {
            name: "invoice",
            key: "invoice_number",
            pending: format!(
                "SELECT o.id, o.doc_id, o.shop_id, CASE WHEN b.invoice_series = '' THEN b.code ELSE b.invoice_series END, ''
                 {PENDING_HERE} ORDER BY o.invoice_issued_at, o.id LIMIT ?1"
            ),
            series_col: "invoice_series",
            seq_col: "invoice_seq",
            number_col: "invoice_number",
        },
        // After the invoices: one numbered just now lets its credit note follow in this write.
        Kind {
            name: "credit_note",
            key: "credit_note_number",
            pending: format!(
                "SELECT o.id, o.doc_id, o.shop_id, 'NC-' || o.invoice_series, ''
                 {CREDIT_PENDING_HERE} ORDER BY o.credit_issued_at, o.id LIMIT ?1"
            ),
            series_col: "credit_series",
            seq_col: "credit_seq",
            number_col: "credit_number",
        },
        // Returns' credit notes: the same series as the orders' credit notes.
        Kind {
            name: "return",
            key: super::returns::NUMBER_KEY,
            pending: format!(
                "SELECT o.id, o.doc_id, o.shop_id, 'NC-' || o.invoice_series, r.id
                 {RETURN_PENDING_HERE} ORDER BY r.at, r.id LIMIT ?1"
            ),
            series_col: "credit_series",
            seq_col: "credit_seq",
            number_col: "credit_number",
        },
    ];
    let mut total = 0;
    for kind in &kinds {
        total += post_kind(ctx, kind, limit.saturating_sub(total))?;
    }
    if total > 0 {
        tracing::info!(numbered = total, "gave invoices and credit notes their legal numbers");
    }
    Ok(total)
}

fn post_kind(ctx: &mut WriteCtx<'_>, kind: &Kind, limit: usize) -> Result<usize> {
    if limit == 0 {
        return Ok(0);
    }
    let pending: Vec<(String, String, String, String, String)> = ctx
        .conn()
        .prepare_cached(&kind.pending)?
        .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let now = ctx.now();
    let device = ctx.device().code.clone();
    // By document: (order, the record's key of the number, the number).
    let mut by_doc: std::collections::BTreeMap<String, Vec<(String, String, String)>> = Default::default();
    for (id, doc_id, shop, series, sub) in &pending {
        // A return's credit note is the ledger's `return:{id}` and the order's `return_number:{id}`.
        let (ledger_kind, key) = match sub.as_str() {
            "" => (kind.name.to_string(), kind.key.to_string()),
            sub => (format!("{}:{sub}", kind.name), format!("{}{sub}", kind.key)),
        };
        let known: Option<(String, i64)> = ctx
            .conn()
            .prepare_cached("SELECT series, seq FROM invoice_ledger WHERE order_id = ?1 AND kind = ?2")?
            .query_row([id.as_str(), ledger_kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (series, seq) = match known {
            // Numbered here before (its number will be written again).
            Some(k) => k,
            None => {
                // The series' numbers this replica knows: its ledger, the orders' and (credit
                // notes) the returns'.
                let seq: i64 = ctx
                    .conn()
                    .prepare_cached(&format!(
                        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM invoice_ledger WHERE shop_id = ?1 AND series = ?2), 0),
                                    COALESCE((SELECT MAX({seq}) FROM orders WHERE shop_id = ?1 AND {series} = ?2
                                                  AND {number} != ''), 0),
                                    COALESCE((SELECT MAX(seq) FROM order_returns WHERE shop_id = ?1 AND series = ?2
                                                  AND number != ''), 0)) + 1",
                        seq = kind.seq_col,
                        series = kind.series_col,
                        number = kind.number_col,
                    ))?
                    .query_row([shop, series], |r| r.get(0))?;
                ctx.conn()
                    .prepare_cached(
                        "INSERT INTO invoice_ledger(shop_id, series, seq, order_id, kind, posted_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![shop, series, seq, id, ledger_kind, now])?;
                (series.clone(), seq)
            }
        };
        let posted = Posted { number: legal_number(&series, seq), series, seq, posted_at: now, device: device.clone() };
        let value = serde_json::to_string(&posted).map_err(|e| CoreError::Storage(e.to_string()))?;
        by_doc.entry(doc_id.clone()).or_default().push((id.clone(), key, value));
    }
    for (doc_id, items) in by_doc {
        let doc_id = DocId::parse(&doc_id)?;
        let ids: Vec<&str> = items.iter().map(|(id, ..)| id.as_str()).collect();
        ctx.change(&doc_id, &ids, |tx, _| {
            for (id, key, value) in &items {
                let Some(o) = doc::record(tx, id)? else { continue };
                put_str(tx, &o, key, value)?;
            }
            Ok(())
        })?;
    }
    Ok(pending.len())
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let scope = doc_id.scope()?;
    let branch = scope.branch_id.clone().unwrap_or_default();
    let currency_code = f.str("currency");
    let currency = Currency::parse("currency", &currency_code)
        .or_else(|_| Currency::parse("currency", "USD"))
        .map_err(CoreError::from)?;
    let mut lines = Vec::new();
    if let Some(list) = doc::get_obj(d, &o, "lines") {
        for i in 0..d.length(&list) {
            if let Ok(Some((automerge::Value::Object(ObjType::Map), m))) = d.get(&list, i) {
                let qty = doc::get_i64(d, &m, "quantity");
                let price: Decimal = doc::get_str(d, &m, "unit_price").parse().unwrap_or_default();
                let rate: Decimal = doc::get_str(d, &m, "tax_rate").parse().unwrap_or_default();
                lines.push((
                    doc::get_str(d, &m, "product_id"),
                    doc::get_str(d, &m, "sku"),
                    doc::get_str(d, &m, "name"),
                    qty,
                    price,
                    rate,
                ));
            }
        }
    }
    let amounts: Vec<_> = lines.iter().map(|(_, _, _, q, p, r)| compute_line(*q, *p, *r, currency)).collect();
    let totals = compute_totals(&amounts);
    let sold: Vec<super::returns::SoldLine> =
        lines.iter().map(|(pid, _, _, q, p, r)| (pid.clone(), *q, *p, *r)).collect();
    let credit: Option<Issued> = f.opt_str("credit_note").and_then(|v| serde_json::from_str(&v).ok());
    let (returned_total, returned_products) = super::returns::project(
        conn,
        d,
        &o,
        (id, &scope.shop_id),
        &sold,
        currency,
        credit.as_ref().map(|c| c.nets.as_slice()),
    )?;
    let transitions = read_transitions(d, &o);
    let (status, conflict) = effective_status(&transitions);
    // Products whose committed stock may change: the old lines and the new ones.
    let mut affected: Vec<String> = conn
        .prepare_cached("SELECT product_id FROM order_lines WHERE order_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let issued: Option<Issued> = f.opt_str("invoice").and_then(|v| serde_json::from_str(&v).ok());
    let posted: Option<Posted> =
        f.opt_str("invoice_number").and_then(|v| serde_json::from_str(&v).ok()).filter(|_| issued.is_some());
    let credited: Option<Posted> =
        f.opt_str("credit_note_number").and_then(|v| serde_json::from_str(&v).ok()).filter(|_| credit.is_some());
    conn.prepare_cached(
        "INSERT OR REPLACE INTO orders(id, shop_id, branch_id, doc_id, number, customer_id, seller_id, status, conflict, currency,
                                       subtotal, tax_total, total, total_num, notes, archived, created_at, updated_at,
                                       invoice_provisional, invoice_issued_at, invoice_issued_by, invoice_number,
                                       invoice_series, invoice_seq, invoice_posted_at, invoice_posted_by,
                                       credit_provisional, credit_issued_at, credit_issued_by, credit_reason, credit_number,
                                       credit_series, credit_seq, credit_posted_at, credit_posted_by, notice_skips, returned_total)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37)",
    )?
    .execute(params![
        id,
        scope.shop_id,
        branch,
        doc_id.as_str(),
        f.str("number"),
        f.str("customer_id"),
        f.str("seller_id"),
        status.as_str(),
        conflict,
        currency_code,
        totals.subtotal.to_string(),
        totals.tax.to_string(),
        totals.total.to_string(),
        totals.total.to_f64().unwrap_or(0.0),
        f.str("notes"),
        f.bool("archived", false),
        f.i64("created_at"),
        f.i64("updated_at"),
        issued.as_ref().map(|i| i.provisional.as_str()).unwrap_or_default(),
        issued.as_ref().map(|i| i.issued_at),
        issued.as_ref().map(|i| i.issued_by.as_str()).unwrap_or_default(),
        posted.as_ref().map(|p| p.number.as_str()).unwrap_or_default(),
        posted.as_ref().map(|p| p.series.as_str()).unwrap_or_default(),
        posted.as_ref().map(|p| p.seq),
        posted.as_ref().map(|p| p.posted_at),
        posted.as_ref().map(|p| p.device.as_str()).unwrap_or_default(),
        credit.as_ref().map(|i| i.provisional.as_str()).unwrap_or_default(),
        credit.as_ref().map(|i| i.issued_at),
        credit.as_ref().map(|i| i.issued_by.as_str()).unwrap_or_default(),
        credit.as_ref().map(|i| i.reason.as_str()).unwrap_or_default(),
        credited.as_ref().map(|p| p.number.as_str()).unwrap_or_default(),
        credited.as_ref().map(|p| p.series.as_str()).unwrap_or_default(),
        credited.as_ref().map(|p| p.seq),
        credited.as_ref().map(|p| p.posted_at),
        credited.as_ref().map(|p| p.device.as_str()).unwrap_or_default(),
        notice_skips(&f),
        returned_total.to_string(),
    ])?;
    conn.prepare_cached("DELETE FROM order_lines WHERE order_id = ?1")?.execute([id])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO order_lines(order_id, idx, product_id, sku, name, quantity, unit_price, tax_rate, subtotal, tax, total)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (i, ((pid, sku, name, q, p, r), a)) in lines.iter().zip(&amounts).enumerate() {
        ins.execute(params![
            id,
            i as i64,
            pid,
            sku,
            name,
            q,
            p.to_string(),
            r.to_string(),
            a.subtotal.to_string(),
            a.tax.to_string(),
            a.total.to_string()
        ])?;
        affected.push(pid.clone());
    }
    conn.prepare_cached("DELETE FROM order_transitions WHERE order_id = ?1")?.execute([id])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO order_transitions(order_id, idx, from_status, to_status, by_user, at, device, resolution)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, t) in transitions.iter().enumerate() {
        ins.execute(params![id, i as i64, t.from.as_str(), t.to.as_str(), t.by, t.at, t.device, t.resolution])?;
    }
    super::emails::project(conn, doc_id, d, &o, id, &scope.shop_id)?;
    affected.extend(returned_products);
    affected.sort();
    affected.dedup();
    for p in affected {
        stock::recompute_committed(conn, &scope.shop_id, &branch, &p)?;
    }
    Ok(())
}

const COLS: &str = "t.id, t.number, t.branch_id, t.customer_id, t.seller_id, t.status, t.conflict, t.currency,
    t.subtotal, t.tax_total, t.total, t.notes, t.archived, t.created_at, t.updated_at,
    (SELECT c.name FROM customers c WHERE c.id = t.customer_id),
    t.invoice_provisional, t.invoice_issued_at, t.invoice_issued_by, t.invoice_number, t.invoice_posted_at,
    t.invoice_posted_by,
    (t.invoice_number != '' AND EXISTS (SELECT 1 FROM orders d WHERE d.shop_id = t.shop_id
        AND d.invoice_number != '' AND d.invoice_number = t.invoice_number AND d.id != t.id)),
    t.credit_provisional, t.credit_issued_at, t.credit_issued_by, t.credit_reason, t.credit_number, t.credit_posted_at,
    t.credit_posted_by, t.returned_total";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderView> {
    let status: String = r.get(5)?;
    Ok(OrderView {
        id: r.get(0)?,
        number: r.get(1)?,
        branch_id: r.get(2)?,
        customer_id: r.get(3)?,
        seller_id: r.get(4)?,
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Draft),
        conflict: r.get(6)?,
        currency: r.get(7)?,
        subtotal: r.get(8)?,
        tax_total: r.get(9)?,
        total: r.get(10)?,
        notes: r.get(11)?,
        archived: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        customer_name: r.get::<_, Option<String>>(15)?.unwrap_or_default(),
        lines: Vec::new(),
        transitions: Vec::new(),
        invoice: match r.get::<_, Option<i64>>(17)? {
            Some(issued_at) => Some(InvoiceView {
                provisional_number: r.get(16)?,
                issued_at,
                issued_by: r.get(18)?,
                number: r.get(19)?,
                posted_at: r.get(20)?,
                posted_by: r.get(21)?,
                duplicate: r.get(22)?,
            }),
            None => None,
        },
        credit_note: match r.get::<_, Option<i64>>(24)? {
            Some(issued_at) => Some(CreditNoteView {
                provisional_number: r.get(23)?,
                issued_at,
                issued_by: r.get(25)?,
                reason: r.get(26)?,
                number: r.get(27)?,
                posted_at: r.get(28)?,
                posted_by: r.get(29)?,
            }),
            None => None,
        },
        returns: Vec::new(),
        returned_total: r.get(30)?,
        returnable: Vec::new(),
        emails: Vec::new(),
        notices: Vec::new(),
    })
}

fn fill(conn: &Connection, o: &mut OrderView) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT product_id, sku, name, quantity, unit_price, tax_rate, subtotal, tax, total FROM order_lines WHERE order_id = ?1 ORDER BY idx",
    )?;
    o.lines = stmt
        .query_map([&o.id], |r| {
            Ok(OrderLineView {
                product_id: r.get(0)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                quantity: r.get(3)?,
                unit_price: r.get(4)?,
                tax_rate: r.get(5)?,
                subtotal: r.get(6)?,
                tax: r.get(7)?,
                total: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT from_status, to_status, by_user, at, device, resolution FROM order_transitions WHERE order_id = ?1 ORDER BY idx",
    )?;
    o.transitions = stmt
        .query_map([&o.id], |r| {
            let (f, t): (String, String) = (r.get(0)?, r.get(1)?);
            Ok(Transition {
                from: OrderStatus::parse(&f).unwrap_or(OrderStatus::Draft),
                to: OrderStatus::parse(&t).unwrap_or(OrderStatus::Draft),
                by: r.get(2)?,
                at: r.get(3)?,
                device: r.get(4)?,
                resolution: r.get(5)?,
                covers: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    o.returns = super::returns::of_order(conn, o)?;
    o.returnable = super::returns::units_left(conn, o)?;
    o.emails = super::emails::of_order(conn, &o.id)?;
    o.notices = super::inbox::notices_of(conn, &o.id)?;
    // The notices that could not go, for the statuses no replica told.
    let skips: String = conn
        .prepare_cached("SELECT notice_skips FROM orders WHERE id = ?1")?
        .query_row([&o.id], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let skips: BTreeMap<String, Skip> = serde_json::from_str(&skips).unwrap_or_default();
    for (status, skip) in skips {
        if o.notices.iter().all(|n| n.status != status) {
            o.notices.push(OrderNotice {
                status,
                message_id: String::new(),
                conversation_id: skip.conversation,
                kind: String::new(),
                delivery: dashoffice_domain::inbox::MessageStatus::Failed,
                at: skip.at,
                skipped: Some(skip.reason),
            });
        }
    }
    o.notices.sort_by_key(|n| n.at);
    Ok(())
}

/// Why an order's notice of a status could not go (kept in the order's record as
/// `notice_skipped_{status}`, a JSON string, and in its row's `notice_skips`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Skip {
    /// `no_whatsapp`, `window_closed` or `refused` (see [`OrderNotice::skipped`]).
    reason: String,
    /// Unix ms.
    at: i64,
    /// The conversation it would have gone to ("" without one).
    #[serde(default)]
    conversation: String,
}

/// The order record's skipped notices as the JSON object of its row (status → [`Skip`]).
fn notice_skips(f: &doc::Fields) -> String {
    let skips: BTreeMap<&str, Skip> = super::org::NOTICE_STATUSES
        .iter()
        .filter_map(|s| Some((*s, serde_json::from_str(&f.opt_str(&format!("notice_skipped_{s}"))?).ok()?)))
        .collect();
    serde_json::to_string(&skips).unwrap_or_else(|_| "{}".into())
}

/// One order with its lines and transitions.
pub fn get(conn: &Connection, caller: &Caller, id: &str) -> Result<OrderView> {
    let mut o = conn
        .prepare_cached(&format!("SELECT {COLS} FROM orders t WHERE t.id = ?1 AND t.shop_id = ?2"))?
        .query_row([id, caller.shop_id.as_str()], row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("order", id))?;
    caller.check_branch(&o.branch_id).map_err(|_| CoreError::not_found("order", id))?;
    fill(conn, &mut o)?;
    Ok(o)
}

/// Lists orders with their lines: filters `status`, `branch_id`, `customer_id` (including
/// customers merged into it), `q` (number).
pub fn list(conn: &Connection, caller: &Caller, p: &ListParams) -> Result<Page<OrderView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {COLS} FROM orders t"),
        p.sort.as_deref(),
        &[
            ("created_at", "t.created_at", SortKind::Int),
            ("updated_at", "t.updated_at", SortKind::Int),
            ("total", "t.total_num", SortKind::Real),
            ("number", "t.number", SortKind::Text),
        ],
        "-created_at",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.shop_and_branch(caller, p.branch_id.as_deref());
    if !p.archived.unwrap_or(false) {
        q.filter("t.archived = 0", []);
    }
    if let Some(s) = p.status.as_deref() {
        let st = OrderStatus::parse(s).ok_or_else(|| {
            FieldError::new("status", "one_of", "draft, confirmed, paid, fulfilled, delivered, cancelled or refunded")
        })?;
        q.filter("t.status = ?", [Value::Text(st.as_str().to_string())]);
    }
    if let Some(c) = p.customer_id.as_deref() {
        let ids = customers::identity_ids(conn, c)?;
        let marks = vec!["?"; ids.len()].join(", ");
        q.filter(&format!("t.customer_id IN ({marks})"), ids.into_iter().map(Value::Text));
    }
    if let Some(s) = p.q.as_deref().filter(|s| !s.is_empty()) {
        q.filter(
            "(t.number LIKE ? ESCAPE '\\' OR t.invoice_number LIKE ? ESCAPE '\\' OR t.invoice_provisional LIKE ? ESCAPE '\\'
              OR t.credit_number LIKE ? ESCAPE '\\')",
            [like(s, true, true), like(s, true, true), like(s, true, true), like(s, true, true)],
        );
    }
    match p.invoice.as_deref() {
        None => {}
        Some("none") => q.filter("t.invoice_issued_at IS NULL", []),
        Some("issued") => q.filter("t.invoice_issued_at IS NOT NULL", []),
        Some("pending") => q.filter("t.invoice_issued_at IS NOT NULL AND t.invoice_number = ''", []),
        Some("posted") => q.filter("t.invoice_number != ''", []),
        Some(_) => return Err(FieldError::new("invoice", "one_of", "none, issued, pending or posted").into()),
    }
    let sort = p.sort.clone().unwrap_or_else(|| "-created_at".into());
    let mut page = q.run(conn, row, |o| {
        let v = match sort.trim_start_matches('-') {
            "updated_at" => Value::Integer(o.updated_at),
            "total" => Value::Real(o.total.parse::<Decimal>().ok().and_then(|d| d.to_f64()).unwrap_or(0.0)),
            "number" => Value::Text(o.number.clone()),
            _ => Value::Integer(o.created_at),
        };
        (v, o.id.clone())
    })?;
    for o in &mut page.items {
        fill(conn, o)?;
    }
    Ok(page)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn months() {
        assert_eq!(super::yyyymm(0), "197001");
        assert_eq!(super::yyyymm(1_798_761_600_000), "202701"); // 2027-01-01T00:00Z
        assert_eq!(super::yyyymm(1_709_251_199_000), "202402"); // 2024-02-29T23:59:59Z
    }
}
