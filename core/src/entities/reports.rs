//! The daily summary e-mailed to a shop's owners and managers (the shop's `daily_report_hour`):
//! the day before's sales, orders, branches, sellers, conversations, support tickets, customer
//! ratings and low stock, in plain text, from the same figures as the dashboard
//! ([`super::analytics::summary`]). The relay sends it once a day per shop (`sync-server`'s
//! mail module); this module decides when it is due and what it says.

use dashoffice_domain::Role;
use rusqlite::{Connection, params};

use super::{analytics, inbox::system_caller, org};
use crate::error::Result;

/// A summary ready to send.
#[derive(Debug, Clone)]
pub struct DailyReport {
    /// The day it is about (YYYY-MM-DD, shop time).
    pub day: String,
    /// The owners' and managers' addresses.
    pub to: Vec<String>,
    /// The shop's name (the sender's display name).
    pub from_name: String,
    /// Subject.
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// The local date (YYYY-MM-DD, shop time) whose report is due at `now_ms`: today's, once the
/// shop's report hour has come; None when the report is off or the hour has not come.
pub fn due(conn: &Connection, shop: &str, now_ms: i64) -> Result<Option<String>> {
    let s = org::get_shop(conn, shop)?;
    let Some(hour) = s.daily_report_hour else { return Ok(None) };
    let tz = jiff::tz::TimeZone::get(&s.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_zoned(tz);
    Ok((i64::from(now.hour()) >= i64::from(hour)).then(|| now.date().to_string()))
}

/// The report sent on `today` (YYYY-MM-DD, shop time): about the day before, with the week up
/// to it for comparison.
pub fn daily(conn: &Connection, shop: &str, today: &str) -> Result<DailyReport> {
    let s = org::get_shop(conn, shop)?;
    let tz = jiff::tz::TimeZone::get(&s.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let date: jiff::civil::Date =
        today.parse().map_err(|e| crate::CoreError::Storage(format!("report date {today:?}: {e}")))?;
    let day = date.yesterday().unwrap_or(date);
    // The last millisecond of the day reported: summaries count up to "today", which is then it.
    let end = date
        .to_zoned(tz)
        .map(|z| z.timestamp().as_millisecond() - 1)
        .map_err(|e| crate::CoreError::Storage(format!("report date {today:?}: {e}")))?;
    let caller = system_caller(shop);
    let q = |days| analytics::SummaryQuery { days, branch_id: None, low_stock: 5, now_ms: end };
    let d = analytics::summary(conn, &caller, &q(1))?;
    let week = analytics::summary(conn, &caller, &q(7))?;
    let to: Vec<String> = conn
        .prepare_cached(
            "SELECT email FROM staff WHERE shop_id = ?1 AND archived = 0 AND role IN (?2, ?3) AND email != ''
             ORDER BY role DESC, email",
        )?
        .query_map(params![shop, Role::Owner.as_str(), Role::Manager.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let money = |a: &str| match a.parse::<rust_decimal::Decimal>() {
        Ok(v) => format!("{v:.2} {}", d.currency),
        Err(_) => format!("{a} {}", d.currency),
    };
    let mut b = String::new();
    let mut line = |l: String| {
        b.push_str(&l);
        b.push('\n');
    };
    line(format!("Resumen del {day} — {}", s.name));
    line(String::new());
    line(format!(
        "Ventas: {} · pedidos: {} · promedio: {}",
        money(&d.sales_total),
        d.orders_total,
        money(&d.average_order)
    ));
    line(format!("Últimos 7 días: {} · pedidos: {}", money(&week.sales_total), week.orders_total));
    let listed = |title: &str, rows: Vec<String>, line: &mut dyn FnMut(String)| {
        if !rows.is_empty() {
            line(String::new());
            line(format!("{title}:"));
            for r in rows {
                line(format!("  {r}"));
            }
        }
    };
    let branches =
        d.sales_by_branch.iter().map(|a| format!("{}: {} · pedidos: {}", a.label, money(&a.amount), a.count));
    listed("Por sucursal", branches.collect(), &mut line);
    let sellers =
        d.sales_by_seller.iter().take(5).map(|a| format!("{}: {} · pedidos: {}", a.label, money(&a.amount), a.count));
    listed("Vendedores", sellers.collect(), &mut line);
    let statuses =
        d.orders_by_status.iter().filter(|c| c.count > 0).map(|c| format!("{}: {}", status_es(&c.key), c.count));
    listed("Pedidos del día por estado", statuses.collect(), &mut line);
    line(String::new());
    line(format!(
        "WhatsApp: {} conversaciones nuevas; ahora {} con una persona y {} con el bot",
        d.conversations_by_day.iter().map(|c| c.count).sum::<u64>(),
        d.conversations_open,
        d.conversations_pending
    ));
    if let Some(score) = d.satisfaction.score {
        line(format!(
            "Satisfacción: {score:.1} % buenas ({} buenas, {} regulares, {} malas)",
            d.satisfaction.good, d.satisfaction.ok, d.satisfaction.bad
        ));
    }
    line(format!(
        "Soporte: {} abiertos, {} resueltos; {} por atender ({} vencidos)",
        d.tickets_opened, d.tickets_resolved, d.tickets_active, d.tickets_overdue
    ));
    let low = d.low_stock.iter().take(10).map(|l| format!("{} {}: {} en existencia", l.sku, l.name, l.on_hand));
    listed("Stock bajo", low.collect(), &mut line);
    line(String::new());
    line("— DashOffice. Se cambia en Ajustes → Tienda (Resumen diario por correo).".into());
    Ok(DailyReport {
        day: day.to_string(),
        to,
        from_name: s.name.clone(),
        subject: format!("Resumen del {day} — {}", s.name),
        body: b,
    })
}

/// An order status as the Spanish UI says it.
fn status_es(status: &str) -> &str {
    match status {
        "draft" => "Borrador",
        "confirmed" => "Confirmado",
        "paid" => "Pagado",
        "fulfilled" => "Preparado",
        "delivered" => "Entregado",
        "cancelled" => "Cancelado",
        "refunded" => "Reembolsado",
        other => other,
    }
}
