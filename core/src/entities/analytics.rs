//! Head-office and dashboard figures, read from the SQL projection: sales by day, branch and
//! seller, orders by status, conversations, low stock. Amounts are summed as exact decimals.

use std::collections::BTreeMap;

use dashoffice_domain::{
    OrderStatus, add_money,
    api::{AmountBy, AnalyticsSummary, CountBy, LowStock},
};
use rusqlite::{Connection, params};
use rust_decimal::Decimal;

use crate::{Caller, error::Result};

/// What to sum.
#[derive(Debug, Clone, Default)]
pub struct SummaryQuery {
    /// Days in the period, today included (1 to 366).
    pub days: u32,
    /// Only this branch (a branch-scoped caller always gets their own).
    pub branch_id: Option<String>,
    /// Stock at or below this is low.
    pub low_stock: i64,
    /// Now (Unix ms).
    pub now_ms: i64,
}

fn is_sale(status: &str) -> bool {
    matches!(OrderStatus::parse(status), Some(OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Delivered))
}

fn add(map: &mut BTreeMap<String, (Decimal, u64)>, key: &str, amount: Decimal) {
    let e = map.entry(key.to_string()).or_default();
    e.0 = add_money(e.0, amount);
    e.1 += 1;
}

fn money(d: Decimal) -> String {
    d.round_dp(2).to_string()
}

/// The figures of the last `q.days` days in the shop's time zone.
pub fn summary(conn: &Connection, caller: &Caller, q: &SummaryQuery) -> Result<AnalyticsSummary> {
    let (currency, tz_name): (String, String) =
        conn.query_row("SELECT currency, timezone FROM shops WHERE id = ?1", params![caller.shop_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let tz = jiff::tz::TimeZone::get(&tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::from_millisecond(q.now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_zoned(tz.clone());
    let today = now.date();
    let days = q.days.clamp(1, 366);
    let first = today.checked_sub(jiff::Span::new().days(i64::from(days) - 1)).unwrap_or(today);
    let start_ms = first.to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(0);
    // The period ends with "today" (exclusive bound: the start of the day after). For the
    // dashboard that is the future; a report about a past day leaves out what came after it.
    let end_ms = today
        .tomorrow()
        .ok()
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map_or(i64::MAX, |z| z.timestamp().as_millisecond());
    let branch = caller.branch_id.clone().or_else(|| q.branch_id.clone().filter(|b| !b.is_empty()));
    let day_of = |ms: i64| -> String {
        jiff::Timestamp::from_millisecond(ms).map(|t| t.to_zoned(tz.clone()).date().to_string()).unwrap_or_default()
    };
    let names = |sql: &str| -> Result<BTreeMap<String, String>> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map(params![caller.shop_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let branches = names("SELECT id, name FROM branches WHERE shop_id = ?1")?;
    let staff = names("SELECT id, name FROM staff WHERE shop_id = ?1")?;

    let mut by_day: BTreeMap<String, (Decimal, u64)> = BTreeMap::new();
    let mut by_branch = BTreeMap::new();
    let mut by_seller = BTreeMap::new();
    let mut by_status: Vec<(&'static str, u64)> = OrderStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let (mut total, mut count, mut today_sales, mut today_orders) = (Decimal::ZERO, 0u64, Decimal::ZERO, 0u64);
    let today_s = today.to_string();
    {
        let mut st = conn.prepare(
            "SELECT branch_id, seller_id, status, currency, total, created_at, returned_total FROM orders
             WHERE shop_id = ?1 AND archived = 0 AND created_at >= ?2 AND created_at < ?4 AND (?3 IS NULL OR branch_id = ?3)",
        )?;
        let mut rows = st.query(params![caller.shop_id, start_ms, branch, end_ms])?;
        while let Some(r) = rows.next()? {
            let (b, s, status, cur, t, at): (String, String, String, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            if let Some((_, n)) = by_status.iter_mut().find(|(k, _)| *k == status) {
                *n += 1;
            }
            let day = day_of(at);
            if day == today_s && status != "cancelled" {
                today_orders += 1;
            }
            if !is_sale(&status) || cur != currency {
                continue;
            }
            // Net of the goods that came back.
            let returned: Decimal = r.get::<_, String>(6)?.parse().unwrap_or_default();
            let amount: Decimal = t.parse::<Decimal>().unwrap_or_default() - returned;
            total = add_money(total, amount);
            count += 1;
            if day == today_s {
                today_sales = add_money(today_sales, amount);
            }
            add(&mut by_day, &day, amount);
            add(&mut by_branch, &b, amount);
            add(&mut by_seller, &s, amount);
        }
    }
    let mut sales_by_day = Vec::new();
    let mut d = first;
    while d <= today {
        let k = d.to_string();
        let (a, n) = by_day.get(&k).copied().unwrap_or_default();
        sales_by_day.push(AmountBy { label: k.clone(), key: k, amount: money(a), count: n });
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    let ranked = |m: BTreeMap<String, (Decimal, u64)>, names: &BTreeMap<String, String>| {
        let mut v: Vec<AmountBy> = m
            .into_iter()
            .map(|(k, (a, n))| AmountBy {
                label: names.get(&k).cloned().unwrap_or_else(|| k.clone()),
                key: k,
                amount: money(a),
                count: n,
            })
            .collect();
        v.sort_by(|x, y| {
            let (a, b): (Decimal, Decimal) =
                (x.amount.parse().unwrap_or_default(), y.amount.parse().unwrap_or_default());
            b.cmp(&a).then_with(|| x.label.cmp(&y.label))
        });
        v
    };

    let (open, pending): (u64, u64) = conn.query_row(
        "SELECT coalesce(sum(state = 'open'), 0), coalesce(sum(state = 'pending'), 0) FROM conversations
         WHERE shop_id = ?1 AND (?2 IS NULL OR branch_id = ?2)",
        params![caller.shop_id, branch],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Conversations started in the period: per branch, per assigned seller, per day. A
    // conversation starts with its first message (its record is created the same on every replica,
    // without a time of its own).
    let (mut c_branch, mut c_seller, mut c_day) =
        (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
    {
        let mut st = conn.prepare(
            "SELECT branch_id, assignee, started FROM (
                SELECT c.branch_id, coalesce(c.assignee_id, '') AS assignee,
                    coalesce((SELECT min(m.at) FROM messages m WHERE m.conversation_id = c.id), c.created_at) AS started
                FROM conversations c WHERE c.shop_id = ?1 AND (?3 IS NULL OR c.branch_id = ?3))
             WHERE started >= ?2 AND started < ?4",
        )?;
        let mut rows = st.query(params![caller.shop_id, start_ms, branch, end_ms])?;
        while let Some(r) = rows.next()? {
            let (b, s, at): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            *c_branch.entry(b).or_default() += 1;
            *c_seller.entry(s).or_default() += 1;
            *c_day.entry(day_of(at)).or_default() += 1;
        }
    }
    let counted = |m: BTreeMap<String, u64>, names: &BTreeMap<String, String>| {
        let mut v: Vec<CountBy> = m
            .into_iter()
            .map(|(k, n)| CountBy { label: names.get(&k).cloned().unwrap_or_else(|| k.clone()), key: k, count: n })
            .collect();
        v.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.label.cmp(&y.label)));
        v
    };
    let conv_by_branch = counted(c_branch, &branches);
    let conv_by_seller = counted(c_seller, &staff);
    let mut conv_by_day = Vec::new();
    let mut d = first;
    while d <= today {
        let k = d.to_string();
        conv_by_day.push(CountBy { label: k.clone(), count: c_day.get(&k).copied().unwrap_or(0), key: k });
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    let mut low = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT p.id, p.sku, p.name, s.branch_id, s.adjusted - s.committed AS on_hand
             FROM stock s JOIN products p ON p.id = s.product_id
             WHERE s.shop_id = ?1 AND p.archived = 0 AND p.active = 1 AND (?2 IS NULL OR s.branch_id = ?2)
               AND s.adjusted - s.committed <= ?3
             ORDER BY on_hand, p.name LIMIT 20",
        )?;
        let rows = st.query_map(params![caller.shop_id, branch, q.low_stock], |r| {
            Ok(LowStock {
                product_id: r.get(0)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                branch_id: r.get(3)?,
                on_hand: r.get(4)?,
            })
        })?;
        for row in rows {
            low.push(row?);
        }
    }
    let average = if count == 0 { Decimal::ZERO } else { total / Decimal::from(count) };
    let (tickets_active, tickets_overdue) =
        super::tickets::active_counts(conn, &caller.shop_id, branch.as_deref(), q.now_ms)?;
    let (tickets_opened, tickets_resolved, ticket_resolution_hours) =
        super::tickets::period_stats(conn, &caller.shop_id, branch.as_deref(), start_ms, end_ms)?;
    let satisfaction =
        super::satisfaction::period(conn, &caller.shop_id, branch.as_deref(), (start_ms, end_ms), &staff)?;
    Ok(AnalyticsSummary {
        currency,
        timezone: tz_name,
        from: first.to_string(),
        to: today_s,
        sales_today: money(today_sales),
        orders_today: today_orders,
        sales_total: money(total),
        orders_total: count,
        average_order: money(average),
        orders_by_status: by_status
            .into_iter()
            .map(|(k, n)| CountBy { key: k.to_string(), label: k.to_string(), count: n })
            .collect(),
        sales_by_day,
        sales_by_branch: ranked(by_branch, &branches),
        sales_by_seller: ranked(by_seller, &staff),
        conversations_open: open,
        conversations_pending: pending,
        conversations_by_branch: conv_by_branch,
        conversations_by_seller: conv_by_seller,
        conversations_by_day: conv_by_day,
        low_stock: low,
        tickets_active,
        tickets_overdue,
        tickets_opened,
        tickets_resolved,
        ticket_resolution_hours,
        satisfaction,
    })
}
