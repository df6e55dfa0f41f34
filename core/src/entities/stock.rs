//! Stock per product per branch. The quantity adjusted by hand (receipts, counts, losses) is an
//! Automerge counter, so concurrent adjustments on several replicas add up; units committed to
//! orders are derived from the orders themselves, so stock always agrees with the orders' merged
//! status. On hand = adjusted − committed; below zero the product is flagged as oversold (accepted
//! offline, never refused).

use automerge::{Automerge, ObjType, ReadDoc, ScalarValue, transaction::Transactable};
use dashoffice_domain::{
    FieldError, Permission,
    api::{AdjustStock, ListParams, Page, StockView},
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};

use super::{org, products, put_str};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind},
    writer::WriteCtx,
};

/// Adjusts stock of `product` in a branch by `delta` units.
pub fn adjust(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    product: &str,
    home_branch: Option<&str>,
    input: AdjustStock,
) -> Result<StockView> {
    caller.require(Permission::AdjustStock)?;
    let branch = input
        .branch_id
        .clone()
        .or_else(|| caller.branch_id.clone())
        .or_else(|| home_branch.map(str::to_string))
        .ok_or_else(|| FieldError::new("branch_id", "required", "which branch's stock"))?;
    caller.check_branch(&branch)?;
    org::get_branch(ctx.conn(), &caller.shop_id, &branch)
        .map_err(|_| CoreError::not_found_field("branch", &branch, "branch_id"))?;
    products::get(ctx.conn(), &caller.shop_id, product)?;
    if input.delta == 0 {
        return Err(FieldError::new("delta", "non_zero", "add or remove at least one unit").into());
    }
    if input.delta.unsigned_abs() > 1_000_000_000 {
        return Err(FieldError::new("delta", "range", "at most 1000000000 units at once").into());
    }
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(FieldError::new("reason", "length", "1 to 200 characters").into());
    }
    let id = DocId::stock(&caller.shop_id, &branch, product);
    let obj = ctx.ensure_record(&id, product, |tx, o| {
        tx.put(o, "qty", ScalarValue::counter(0))?;
        tx.put_object(o, "log", ObjType::List)?;
        Ok(())
    })?;
    let (now, device, user) = (ctx.now(), ctx.device().code.clone(), caller.user_id.clone());
    ctx.change(&id, &[product], |tx, _| {
        tx.increment(&obj, "qty", input.delta)?;
        if let Some(log) = doc::get_obj(tx, &obj, "log") {
            let n = tx.length(&log);
            let e = tx.insert_object(&log, n, ObjType::Map)?;
            tx.put(&e, "delta", input.delta)?;
            put_str(tx, &e, "reason", reason)?;
            put_str(tx, &e, "by", &user)?;
            put_str(tx, &e, "device", &device)?;
            tx.put(&e, "at", now)?;
        }
        Ok(())
    })?;
    get(ctx.conn(), product, &branch)
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, product: &str) -> Result<()> {
    let Some(o) = doc::record(d, product)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let scope = doc_id.scope()?;
    let branch = scope.branch_id.unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO stock(product_id, branch_id, shop_id, adjusted, committed) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT(product_id, branch_id) DO UPDATE SET adjusted = excluded.adjusted",
    )?
    .execute(params![product, branch, scope.shop_id, f.i64("qty")])?;
    Ok(())
}

/// Recomputes the units of `product` committed to orders of `branch`: their lines, less the
/// units of accepted returns that went back on the shelf; and the damaged units returned from
/// orders refunded or cancelled afterwards (they never go back on the shelf).
pub(crate) fn recompute_committed(conn: &Connection, shop: &str, branch: &str, product: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO stock(product_id, branch_id, shop_id, adjusted, committed)
         VALUES (?1, ?2, ?3, 0, (SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
                                 WHERE o.branch_id = ?2 AND l.product_id = ?1
                                   AND o.status IN ('confirmed', 'paid', 'fulfilled', 'delivered'))
                              - (SELECT COALESCE(SUM(r.quantity), 0) FROM order_return_lines r JOIN orders o ON o.id = r.order_id
                                 WHERE o.branch_id = ?2 AND r.product_id = ?1 AND r.restocked = 1
                                   AND o.status IN ('confirmed', 'paid', 'fulfilled', 'delivered'))
                              -- Damaged units that came back stay out of stock when the rest is refunded.
                              + (SELECT COALESCE(SUM(r.quantity), 0) FROM order_return_lines r
                                 JOIN order_returns x ON x.order_id = r.order_id AND x.id = r.return_id
                                 JOIN orders o ON o.id = r.order_id
                                 WHERE o.branch_id = ?2 AND r.product_id = ?1 AND x.accepted = 1 AND x.restock = 0
                                   AND o.status IN ('cancelled', 'refunded')))
         ON CONFLICT(product_id, branch_id) DO UPDATE SET committed = excluded.committed",
    )?
    .execute(params![product, branch, shop])?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StockView> {
    let adjusted: i64 = r.get(2)?;
    let committed: i64 = r.get(3)?;
    Ok(StockView {
        product_id: r.get(0)?,
        branch_id: r.get(1)?,
        on_hand: adjusted - committed,
        adjusted,
        committed,
        oversold: adjusted - committed < 0,
    })
}

/// Stock of one product in one branch (zero if never touched).
pub fn get(conn: &Connection, product: &str, branch: &str) -> Result<StockView> {
    Ok(conn
        .prepare_cached(
            "SELECT product_id, branch_id, adjusted, committed FROM stock WHERE product_id = ?1 AND branch_id = ?2",
        )?
        .query_row([product, branch], row)
        .optional()?
        .unwrap_or(StockView {
            product_id: product.to_string(),
            branch_id: branch.to_string(),
            on_hand: 0,
            adjusted: 0,
            committed: 0,
            oversold: false,
        }))
}

/// Stock of one product in every branch the caller may see.
pub fn for_product(conn: &Connection, caller: &Caller, product: &str) -> Result<Vec<StockView>> {
    products::get(conn, &caller.shop_id, product)?;
    let mut out = Vec::new();
    for b in org::list_branches(conn, &caller.shop_id, false)? {
        if caller.check_branch(&b.id).is_ok() {
            out.push(get(conn, product, &b.id)?);
        }
    }
    Ok(out)
}

/// Stock rows of a branch; `q` = `oversold` lists only oversold products, `low` those at or below 5.
pub fn list(conn: &Connection, caller: &Caller, home_branch: Option<&str>, p: &ListParams) -> Result<Page<StockView>> {
    let branch = p
        .branch_id
        .clone()
        .or_else(|| caller.branch_limit().map(str::to_string))
        .or_else(|| home_branch.map(str::to_string))
        .ok_or_else(|| FieldError::new("branch_id", "required", "which branch's stock"))?;
    caller.check_branch(&branch)?;
    let mut q = ListQuery::new(
        "SELECT t.product_id, t.branch_id, t.adjusted, t.committed FROM stock t",
        p.sort.as_deref(),
        &[("on_hand", "(t.adjusted - t.committed)", SortKind::Int), ("product_id", "t.product_id", SortKind::Text)],
        "product_id",
        p.limit,
        p.cursor.as_deref(),
    )?
    .id_column("t.product_id");
    q.filter("t.shop_id = ? AND t.branch_id = ?", [Value::Text(caller.shop_id.clone()), Value::Text(branch)]);
    match p.q.as_deref() {
        Some("oversold") => q.filter("t.adjusted - t.committed < 0", []),
        Some("low") => q.filter("t.adjusted - t.committed <= 5", []),
        _ => {}
    }
    let sort = p.sort.clone().unwrap_or_default();
    q.run(conn, row, |s| {
        let v = if sort.trim_start_matches('-') == "on_hand" {
            Value::Integer(s.on_hand)
        } else {
            Value::Text(s.product_id.clone())
        };
        (v, s.product_id.clone())
    })
}
