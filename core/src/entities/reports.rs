//! The daily summary e-mailed to a shop's owners and managers (the shop's `daily_report_hour`):
//! the day before's sales, orders, branches, sellers, conversations, support tickets, customer
//! ratings and low stock, in plain text, from the same figures as the dashboard
//! ([`super::analytics::summary`]). The relay sends it once a day per shop (`sync-server`'s
//! mail module); this module decides when it is due and what it says.

use dashoffice_domain::{
    Role,
    api::{AmountBy, AnalyticsSummary},
};
use rusqlite::{Connection, params};

use super::{analytics, inbox::system_caller, org};
use crate::error::Result;

/// A summary ready to send.
#[derive(Debug, Clone)]
pub struct DailyReport {
    /// The day it is about (YYYY-MM-DD, shop time).
    pub day: String,
    /// Its language (`es` or `en`).
    pub lang: String,
    /// The addresses of the owners and managers who want it in that language.
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

/// The languages the summary goes out in: those of the owners and managers who want it (empty
/// when nobody does).
pub fn languages(conn: &Connection, shop: &str) -> Result<Vec<String>> {
    Ok(recipients(conn, shop)?.into_iter().map(|(_, l)| l).fold(Vec::new(), |mut v, l| {
        if !v.contains(&l) {
            v.push(l);
        }
        v
    }))
}

/// The owners and managers who want the summary: (address, language).
fn recipients(conn: &Connection, shop: &str) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT email, lang FROM staff WHERE shop_id = ?1 AND archived = 0 AND role IN (?2, ?3) AND email != ''
               AND daily_summary = 1
             ORDER BY role DESC, email",
        )?
        .query_map(params![shop, Role::Owner.as_str(), Role::Manager.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The reports sent on `today` (YYYY-MM-DD, shop time): about the day before, with the week up
/// to it for comparison; one per language its recipients chose (Spanish first), each to the
/// owners and managers who want it. Empty when nobody does.
pub fn daily(conn: &Connection, shop: &str, today: &str) -> Result<Vec<DailyReport>> {
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
    let recipients = recipients(conn, shop)?;
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    let caller = system_caller(shop);
    let q = |days| analytics::SummaryQuery { days, branch_id: None, low_stock: 5, now_ms: end };
    let d = analytics::summary(conn, &caller, &q(1))?;
    let week = analytics::summary(conn, &caller, &q(7))?;
    let mut out = Vec::new();
    for lang in super::staff::LANGS {
        let to: Vec<String> = recipients.iter().filter(|(_, l)| l == lang).map(|(e, _)| e.clone()).collect();
        if to.is_empty() {
            continue;
        }
        let w = Words::of(lang);
        let subject = format!("{} {day} — {}", w.summary_of, s.name);
        out.push(DailyReport {
            day: day.to_string(),
            lang: lang.to_string(),
            to,
            from_name: s.name.clone(),
            body: body(&w, &subject, &d, &week),
            subject,
        });
    }
    Ok(out)
}

/// The summary's text.
fn body(w: &Words, title: &str, d: &AnalyticsSummary, week: &AnalyticsSummary) -> String {
    let money = |a: &str| match a.parse::<rust_decimal::Decimal>() {
        Ok(v) => format!("{v:.2} {}", d.currency),
        Err(_) => format!("{a} {}", d.currency),
    };
    let mut b = String::new();
    let mut line = |l: String| {
        b.push_str(&l);
        b.push('\n');
    };
    line(title.to_string());
    line(String::new());
    line(format!(
        "{}: {} · {}: {} · {}: {}",
        w.sales,
        money(&d.sales_total),
        w.orders,
        d.orders_total,
        w.average,
        money(&d.average_order)
    ));
    line(format!("{}: {} · {}: {}", w.last_7_days, money(&week.sales_total), w.orders, week.orders_total));
    let listed = |title: &str, rows: Vec<String>, line: &mut dyn FnMut(String)| {
        if !rows.is_empty() {
            line(String::new());
            line(format!("{title}:"));
            for r in rows {
                line(format!("  {r}"));
            }
        }
    };
    let amount = |a: &AmountBy| format!("{}: {} · {}: {}", a.label, money(&a.amount), w.orders, a.count);
    listed(w.by_branch, d.sales_by_branch.iter().map(amount).collect(), &mut line);
    listed(w.sellers, d.sales_by_seller.iter().take(5).map(amount).collect(), &mut line);
    let statuses =
        d.orders_by_status.iter().filter(|c| c.count > 0).map(|c| format!("{}: {}", (w.status)(&c.key), c.count));
    listed(w.by_status, statuses.collect(), &mut line);
    line(String::new());
    line((w.whatsapp)(
        d.conversations_by_day.iter().map(|c| c.count).sum::<u64>(),
        d.conversations_open,
        d.conversations_pending,
    ));
    if let Some(score) = d.satisfaction.score {
        line((w.satisfaction)(score, d.satisfaction.good, d.satisfaction.ok, d.satisfaction.bad));
    }
    line((w.support)(d.tickets_opened, d.tickets_resolved, d.tickets_active, d.tickets_overdue));
    let low = d.low_stock.iter().take(10).map(|l| format!("{} {}: {} {}", l.sku, l.name, l.on_hand, w.in_stock));
    listed(w.low_stock, low.collect(), &mut line);
    line(String::new());
    line(w.footer.to_string());
    b
}

/// The summary's words in one language.
struct Words {
    summary_of: &'static str,
    sales: &'static str,
    orders: &'static str,
    average: &'static str,
    last_7_days: &'static str,
    by_branch: &'static str,
    sellers: &'static str,
    by_status: &'static str,
    low_stock: &'static str,
    in_stock: &'static str,
    footer: &'static str,
    status: fn(&str) -> &str,
    whatsapp: fn(u64, u64, u64) -> String,
    satisfaction: fn(f64, u64, u64, u64) -> String,
    support: fn(u64, u64, u64, u64) -> String,
}

impl Words {
    fn of(lang: &str) -> Self {
        match lang {
            "en" => Words {
                summary_of: "Summary of",
                sales: "Sales",
                orders: "orders",
                average: "average",
                last_7_days: "Last 7 days",
                by_branch: "By branch",
                sellers: "Sellers",
                by_status: "The day's orders by status",
                low_stock: "Low stock",
                in_stock: "in stock",
                footer: "— DashOffice. The shop's hour is set in Settings → Shop (Daily summary by e-mail); \
                         each person turns it off or changes its language in Sellers → Edit.",
                status: status_en,
                whatsapp: |new, open, pending| {
                    format!("WhatsApp: {new} new conversations; now {open} with a person and {pending} with the bot")
                },
                satisfaction: |score, good, ok, bad| {
                    format!("Satisfaction: {score:.1} % good ({good} good, {ok} fair, {bad} bad)")
                },
                support: |opened, resolved, active, overdue| {
                    format!("Support: {opened} opened, {resolved} resolved; {active} to handle ({overdue} overdue)")
                },
            },
            _ => Words {
                summary_of: "Resumen del",
                sales: "Ventas",
                orders: "pedidos",
                average: "promedio",
                last_7_days: "Últimos 7 días",
                by_branch: "Por sucursal",
                sellers: "Vendedores",
                by_status: "Pedidos del día por estado",
                low_stock: "Stock bajo",
                in_stock: "en existencia",
                footer: "— DashOffice. La hora se cambia en Ajustes → Tienda (Resumen diario por correo); \
                         cada persona lo apaga o cambia su idioma en Vendedores → Editar.",
                status: status_es,
                whatsapp: |new, open, pending| {
                    format!(
                        "WhatsApp: {new} conversaciones nuevas; ahora {open} con una persona y {pending} con el bot"
                    )
                },
                satisfaction: |score, good, ok, bad| {
                    format!("Satisfacción: {score:.1} % buenas ({good} buenas, {ok} regulares, {bad} malas)")
                },
                support: |opened, resolved, active, overdue| {
                    format!(
                        "Soporte: {opened} abiertos, {resolved} resueltos; {active} por atender ({overdue} vencidos)"
                    )
                },
            },
        }
    }
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

/// An order status as the English UI says it.
fn status_en(status: &str) -> &str {
    match status {
        "draft" => "Draft",
        "confirmed" => "Confirmed",
        "paid" => "Paid",
        "fulfilled" => "Fulfilled",
        "delivered" => "Delivered",
        "cancelled" => "Cancelled",
        "refunded" => "Refunded",
        other => other,
    }
}
