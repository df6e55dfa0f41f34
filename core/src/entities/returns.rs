//! Returns of goods: a customer brings back some units of an order they paid for. Each return is
//! one value of the order's record under `return:{id}` (written on any replica, offline too; two
//! made apart are both kept), its legal credit note number under `return_number:{id}`. Which
//! returns count is decided when the record is projected, the same on every replica: the
//! numbered ones first, then by time and id, each accepted only while the units it names are
//! still there to return. Accepted returns put their units back into the branch's stock (unless
//! damaged: `restock` false) and take their amount off the order's net sale.

use automerge::{Automerge, ObjId, ReadDoc, transaction::Transactable};
use dashoffice_domain::{
    Currency, FieldError, FieldErrors, LineAmounts, OrderStatus, Permission,
    api::{CreditNoteView, OrderLineView, OrderReturnView, OrderView, ReturnItems},
    compute_line, compute_totals,
};
use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{new_id, orders, org, put_str};
use crate::{
    Caller, doc,
    error::{CoreError, Result},
    writer::WriteCtx,
};

/// The order record's key of a return, before its id.
pub(crate) const KEY: &str = "return:";
/// The order record's key of a return's legal number, before its id.
pub(crate) const NUMBER_KEY: &str = "return_number:";
/// Returns per order at most.
const MAX_RETURNS: usize = 50;

/// A return as the device that recorded it wrote it (one JSON value).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Returned {
    /// (the order's line, units).
    lines: Vec<(usize, i64)>,
    /// The product of each line (a return names the line it meant, should the lines change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    products: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    reason: String,
    restock: bool,
    at: i64,
    by: String,
    device: String,
    /// Its provisional credit note number, when the order had an invoice then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    provisional: String,
}

fn check_id(id: &str) -> std::result::Result<String, FieldError> {
    if (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(id.to_string())
    } else {
        Err(FieldError::new("id", "format", "letters, digits, '-' and '_', at most 64"))
    }
}

/// Records that the customer brought back units of order `id` (sellers and up): a paid,
/// fulfilled or delivered order, each line at most what is left of it after earlier returns.
/// With an invoice, the return gets a provisional credit note number at once; the branch's
/// numbering device gives the legal one. A retry with the same `id` returns the order as it is.
pub fn return_items(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: ReturnItems) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let mut e = FieldErrors::new();
    let reason = input.reason.as_deref().map(str::trim).unwrap_or_default().to_string();
    if reason.chars().count() > 500 {
        e.push(FieldError::new("reason", "max_length", "at most 500 characters"));
    }
    let rid = match input.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(x) => e.check(check_id(x)).unwrap_or_default(),
        None => new_id(),
    };
    if input.lines.is_empty() {
        e.push(FieldError::new("lines", "min_items", "name at least one line and its units"));
    }
    if input.lines.len() > 200 {
        e.push(FieldError::new("lines", "max_items", "at most 200 lines"));
    }
    let current = orders::get(ctx.conn(), caller, id)?;
    if current.returns.iter().any(|r| r.id == rid) {
        return Ok(current);
    }
    let left = current.returnable.clone();
    let mut seen = std::collections::HashSet::new();
    for (i, l) in input.lines.iter().enumerate() {
        let f = |k: &str| format!("lines[{i}].{k}");
        let Some(&units) = left.get(l.line) else {
            e.push(FieldError::new(
                f("line"),
                "exists",
                format!("the order has lines 0 to {}", current.lines.len().saturating_sub(1)),
            ));
            continue;
        };
        if !seen.insert(l.line) {
            e.push(FieldError::new(f("line"), "unique", "each line once per return"));
        } else if units == 0 {
            e.push(FieldError::new(f("quantity"), "range", "every unit of this line was returned already"));
        } else if !(1..=units).contains(&l.quantity) {
            e.push(FieldError::new(
                f("quantity"),
                "range",
                format!("between 1 and {units} (the units of this line not returned yet)"),
            ));
        }
    }
    e.finish()?;
    if !matches!(current.status, OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Delivered) {
        return Err(CoreError::conflict(
            "status",
            "returnable",
            format!(
                "goods come back from a paid, fulfilled or delivered order (it is {}); a confirmed order is changed or cancelled instead",
                current.status
            ),
        ));
    }
    if current.returns.len() >= MAX_RETURNS {
        return Err(CoreError::conflict("returns", "max_items", format!("at most {MAX_RETURNS} returns per order")));
    }
    let (doc_id, branch) = orders::locate(ctx.conn(), caller, id)?;
    let provisional = match current.invoice {
        Some(_) => {
            let code = org::branch_code(ctx.conn(), &caller.shop_id, &branch)?;
            let seq = ctx.next_seq(&format!("credit_note:{branch}"))?;
            format!("{code}-{}-C{seq:06}", ctx.device().code)
        }
        None => String::new(),
    };
    let value = Returned {
        lines: input.lines.iter().map(|l| (l.line, l.quantity)).collect(),
        products: input.lines.iter().map(|l| current.lines[l.line].product_id.clone()).collect(),
        reason,
        restock: input.restock.unwrap_or(true),
        at: ctx.now(),
        by: caller.user_id.clone(),
        device: ctx.device().code.clone(),
        provisional,
    };
    let (now, key) = (value.at, format!("{KEY}{rid}"));
    let json = serde_json::to_string(&value).map_err(|e| CoreError::Storage(e.to_string()))?;
    ctx.change(&doc_id, &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("order", id))?;
        if doc::get_opt_str(tx, &o, &key).is_some() {
            return Ok(());
        }
        put_str(tx, &o, &key, &json)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    // An invoiced order's return is a credit note: e-mailed as issued when the shop says so.
    if current.invoice.is_some() {
        super::emails::request_automatic(ctx, caller, id, &key)?;
    }
    orders::get(ctx.conn(), caller, id)
}

/// Units of each line of order `o` not returned yet (by accepted returns).
pub(crate) fn units_left(conn: &Connection, o: &OrderView) -> Result<Vec<i64>> {
    let mut left: Vec<i64> = o.lines.iter().map(|l| l.quantity).collect();
    let mut st = conn.prepare_cached(
        "SELECT l.line, l.quantity FROM order_return_lines l JOIN order_returns r ON r.order_id = l.order_id AND r.id = l.return_id
         WHERE l.order_id = ?1 AND r.accepted = 1",
    )?;
    let rows = st.query_map([&o.id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (line, q) = row?;
        if let Some(n) = usize::try_from(line).ok().and_then(|i| left.get_mut(i)) {
            *n = (*n - q).max(0);
        }
    }
    Ok(left)
}

/// Order `o` (filled) as its credit note undoes it: what its accepted returns did not take back
/// (those have their own credit notes; once the order's credit note is issued, the returns it took
/// into account), line by line, each line's amounts less its returns' amounts.
pub(crate) fn net_of_returns(conn: &Connection, o: &mut OrderView) -> Result<()> {
    let only_netted = o.credit_note.is_some();
    let mut st = conn.prepare_cached(
        "SELECT l.line, l.quantity, l.subtotal, l.tax, l.total FROM order_return_lines l
         JOIN order_returns r ON r.order_id = l.order_id AND r.id = l.return_id
         WHERE l.order_id = ?1 AND r.accepted = 1 AND (?2 = 0 OR r.netted = 1)",
    )?;
    let mut back: Vec<(i64, Decimal, Decimal, Decimal)> =
        vec![(0, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO); o.lines.len()];
    let mut any = false;
    let rows = st.query_map(params![o.id, only_netted], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    for row in rows {
        let (line, q, sub, tax, total) = row?;
        let Some(b) = usize::try_from(line).ok().and_then(|i| back.get_mut(i)) else { continue };
        let dec = |s: &str| s.parse::<Decimal>().unwrap_or_default();
        *b = (b.0 + q, b.1 + dec(&sub), b.2 + dec(&tax), b.3 + dec(&total));
        any = true;
    }
    if !any {
        return Ok(());
    }
    let dec = |s: &str| s.parse::<Decimal>().unwrap_or_default();
    let mut amounts = Vec::new();
    let mut lines = Vec::new();
    for (l, (q, sub, tax, total)) in o.lines.iter().zip(back) {
        let units = l.quantity - q;
        if units <= 0 {
            continue;
        }
        let a = LineAmounts { subtotal: dec(&l.subtotal) - sub, tax: dec(&l.tax) - tax, total: dec(&l.total) - total };
        lines.push(OrderLineView {
            quantity: units,
            subtotal: a.subtotal.to_string(),
            tax: a.tax.to_string(),
            total: a.total.to_string(),
            ..l.clone()
        });
        amounts.push(a);
    }
    let t = compute_totals(&amounts);
    o.lines = lines;
    (o.subtotal, o.tax_total, o.total) = (t.subtotal.to_string(), t.tax.to_string(), t.total.to_string());
    Ok(())
}

/// The accepted returns of order `id` now (what its credit note, issued now, takes into account).
pub(crate) fn accepted_ids(conn: &Connection, id: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM order_returns WHERE order_id = ?1 AND accepted = 1 ORDER BY id")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// A line of the order as sold: product id, units, unit price, tax rate.
pub(crate) type SoldLine = (String, i64, Decimal, Decimal);

/// `a` − `b`, line amounts.
fn minus(a: LineAmounts, b: LineAmounts) -> LineAmounts {
    LineAmounts { subtotal: a.subtotal - b.subtotal, tax: a.tax - b.tax, total: a.total - b.total }
}

/// `a` + `b`, line amounts.
fn plus(a: LineAmounts, b: LineAmounts) -> LineAmounts {
    LineAmounts { subtotal: a.subtotal + b.subtotal, tax: a.tax + b.tax, total: a.total + b.total }
}

/// Projects the returns of order record `o` (id `id`, lines `lines` as sold): rows of
/// `order_returns` and `order_return_lines`, and which count. `credited`: the returns the order's
/// own credit note took into account, when it has one (a return recorded elsewhere while it was
/// issued counts only once numbered). Returns the total of the accepted ones and the products
/// whose stock they touch.
///
/// The amounts of a line's returns add up to the line's amounts exactly: the return that takes a
/// line's last units gets what the others left of it (tax is rounded per line).
pub(crate) fn project(
    conn: &Connection,
    d: &Automerge,
    o: &ObjId,
    (id, shop): (&str, &str),
    lines: &[SoldLine],
    currency: Currency,
    credited: Option<&[String]>,
) -> Result<(Decimal, Vec<String>)> {
    let f = doc::fields(d, o);
    // Unreadable returns are kept (without units) so that a number they got is never given again.
    let mut all: Vec<(String, Option<Returned>, Option<orders::Posted>)> = Vec::new();
    for item in d.map_range(o, KEY.to_string()..) {
        let Some(rid) = item.key.strip_prefix(KEY) else { break };
        let r = doc::get_opt_str(d, o, &item.key).and_then(|v| serde_json::from_str::<Returned>(&v).ok());
        let posted = f.opt_str(&format!("{NUMBER_KEY}{rid}")).and_then(|v| serde_json::from_str(&v).ok());
        all.push((rid.to_string(), r, posted));
    }
    // Numbered ones first, in their numbers' order (a legal credit note stands), then by time
    // and id.
    let key = |x: &(String, Option<Returned>, Option<orders::Posted>)| {
        (x.2.is_none(), x.2.as_ref().map_or(0, |p| p.seq), x.1.as_ref().map_or(0, |r| r.at), x.0.clone())
    };
    all.sort_by_key(key);
    let sold: Vec<LineAmounts> = lines.iter().map(|(_, q, p, r)| compute_line(*q, *p, *r, currency)).collect();
    let zero = compute_line(0, Decimal::ZERO, Decimal::ZERO, currency);
    let mut used = vec![zero; lines.len()];
    let mut left: Vec<i64> = lines.iter().map(|l| l.1).collect();
    let mut affected = Vec::new();
    let mut returned = Decimal::ZERO;
    conn.prepare_cached("DELETE FROM order_returns WHERE order_id = ?1")?.execute([id])?;
    conn.prepare_cached("DELETE FROM order_return_lines WHERE order_id = ?1")?.execute([id])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO order_returns(order_id, id, shop_id, at, by_user, device, reason, restock, accepted, subtotal, tax,
                                   total, provisional, number, series, seq, posted_at, posted_by, netted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?;
    let mut ins_line = conn.prepare_cached(
        "INSERT INTO order_return_lines(order_id, return_id, idx, line, product_id, quantity, subtotal, tax, total, restocked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (rid, r, posted) in all {
        let netted = credited.is_some_and(|c| c.contains(&rid));
        let r = r.unwrap_or_else(|| Returned {
            lines: Vec::new(),
            products: Vec::new(),
            reason: String::new(),
            restock: false,
            at: 0,
            by: String::new(),
            device: String::new(),
            provisional: String::new(),
        });
        // Each line once, the product it was (when written down), at most the units left.
        let mut want = vec![0_i64; left.len()];
        let fits = !r.lines.is_empty()
            && (posted.is_some() || credited.is_none() || netted)
            && r.lines.iter().enumerate().all(|(k, &(line, q))| {
                let same = r.products.get(k).is_none_or(|p| lines.get(line).is_some_and(|l| l.0 == *p));
                same && q >= 1
                    && want.get_mut(line).is_some_and(|w| {
                        let ok = *w == 0 && q <= left[line];
                        *w = q;
                        ok
                    })
            });
        let mut amounts = Vec::with_capacity(r.lines.len());
        for &(line, q) in &r.lines {
            let Some((_, sold_units, price, rate)) = lines.get(line) else {
                amounts.push(zero);
                continue;
            };
            let units = q.clamp(0, *sold_units);
            let a = if fits && units == left[line] {
                minus(sold[line], used[line])
            } else {
                compute_line(units, *price, *rate, currency)
            };
            if fits {
                used[line] = plus(used[line], a);
                left[line] -= units;
            }
            amounts.push(a);
        }
        let totals = compute_totals(&amounts);
        if fits {
            returned += totals.total;
        }
        ins.execute(params![
            id,
            rid,
            shop,
            r.at,
            r.by,
            r.device,
            r.reason,
            r.restock,
            fits,
            totals.subtotal.to_string(),
            totals.tax.to_string(),
            totals.total.to_string(),
            r.provisional,
            posted.as_ref().map(|p| p.number.as_str()).unwrap_or_default(),
            posted.as_ref().map(|p| p.series.as_str()).unwrap_or_default(),
            posted.as_ref().map(|p| p.seq),
            posted.as_ref().map(|p| p.posted_at),
            posted.as_ref().map(|p| p.device.as_str()).unwrap_or_default(),
            netted,
        ])?;
        for (k, (&(line, q), a)) in r.lines.iter().zip(&amounts).enumerate() {
            let Some((product, sold_units, ..)) = lines.get(line) else { continue };
            ins_line.execute(params![
                id,
                rid,
                k as i64,
                line as i64,
                product,
                q.clamp(0, *sold_units),
                a.subtotal.to_string(),
                a.tax.to_string(),
                a.total.to_string(),
                fits && r.restock,
            ])?;
            affected.push(product.clone());
        }
    }
    Ok((returned, affected))
}

/// The returns of order `o` (already filled with its lines and invoice), oldest first.
pub(crate) fn of_order(conn: &Connection, o: &OrderView) -> Result<Vec<OrderReturnView>> {
    let mut out: Vec<OrderReturnView> = conn
        .prepare_cached(
            "SELECT id, at, by_user, reason, restock, accepted, subtotal, tax, total, provisional, number, posted_at, posted_by
             FROM order_returns WHERE order_id = ?1 ORDER BY at, id",
        )?
        .query_map([&o.id], |r| {
            let accepted: bool = r.get(5)?;
            let (at, by, reason): (i64, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
            let credit_note = (accepted && o.invoice.is_some())
                .then(|| -> rusqlite::Result<CreditNoteView> {
                    Ok(CreditNoteView {
                        number: r.get(10)?,
                        provisional_number: r.get(9)?,
                        reason: reason.clone(),
                        issued_by: by.clone(),
                        issued_at: at,
                        posted_at: r.get(11)?,
                        posted_by: r.get(12)?,
                    })
                })
                .transpose()?;
            Ok(OrderReturnView {
                id: r.get(0)?,
                lines: Vec::new(),
                subtotal: r.get(6)?,
                tax_total: r.get(7)?,
                total: r.get(8)?,
                reason,
                restock: r.get(4)?,
                returned_at: at,
                returned_by: by,
                accepted,
                credit_note,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let mut st = conn.prepare_cached(
        "SELECT return_id, line, quantity, subtotal, tax, total FROM order_return_lines WHERE order_id = ?1 ORDER BY return_id, idx",
    )?;
    let rows = st.query_map([&o.id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (rid, line, quantity, subtotal, tax, total) = row?;
        let (Some(ret), Some(sold)) =
            (out.iter_mut().find(|x| x.id == rid), usize::try_from(line).ok().and_then(|i| o.lines.get(i)))
        else {
            continue;
        };
        ret.lines.push(OrderLineView { quantity, subtotal, tax, total, ..sold.clone() });
    }
    Ok(out)
}
