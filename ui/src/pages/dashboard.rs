//! Today at a glance: sales, orders by status, conversations, low stock and a sales chart.

use dashoffice_domain::api::AnalyticsSummary;
use leptos::prelude::*;
use leptos_router::components::A;

use super::PageHead;
use crate::{
    api,
    components::{BarChart, Empty, Stat, loader, show, status_text},
    i18n::{day, money, number, t, tf},
    state::watch,
};

#[component]
pub(crate) fn Dashboard() -> impl IntoView {
    let data = loader(|| {
        watch(&["orders", "conversations", "stock", "products"]);
        api::get::<AnalyticsSummary>("/api/v1/analytics/summary?days=14")
    });
    // Invoices still waiting for their legal number: the branch's numbering device has not got
    // them yet (off, or not syncing). Said when there are any.
    let pending = loader(|| {
        watch(&["orders", "org"]);
        api::get::<dashoffice_domain::api::Page<dashoffice_domain::api::OrderView>>(
            "/api/v1/orders?invoice=pending&limit=100&sort=created_at",
        )
    });
    let waiting = move || {
        pending.with(|l| {
            l.ready().filter(|p| !p.items.is_empty()).map(|p| {
                let n = p.items.len();
                let count = if p.next_cursor.is_some() { format!("{}+", number(n as f64)) } else { number(n as f64) };
                let oldest =
                    p.items.iter().filter_map(|o| o.invoice.as_ref().map(|i| i.issued_at)).min().unwrap_or_default();
                view! {
                    <section class="notice invoices-waiting" id="invoices-waiting">
                        <p>{tf("invoices_waiting_notice", &[&count, &crate::i18n::when(oldest)])}" "
                            <A href="/orders?invoice=pending">{t("show_them")}</A></p>
                    </section>
                }
            })
        })
    };
    view! {
        <PageHead title=t("nav_dashboard")/>
        {waiting}
        {show(data, |s: AnalyticsSummary| {
            let cur = s.currency.clone();
            let bars = s
                .sales_by_day
                .iter()
                .map(|d| (day(&d.key), d.amount.parse::<f64>().unwrap_or(0.0), money(&d.amount, &cur)))
                .collect::<Vec<_>>();
            let statuses = s
                .orders_by_status
                .iter()
                .map(|c| {
                    let href = format!("/orders?status={}", c.key);
                    let label = status_text(&c.key);
                    view! { <li><A href=href>{label}</A><span class="count">{number(c.count as f64)}</span></li> }
                })
                .collect_view();
            let low = if s.low_stock.is_empty() {
                view! { <Empty text=t("no_low_stock")/> }.into_any()
            } else {
                let rows = s
                    .low_stock
                    .iter()
                    .map(|l| {
                        let href = format!("/products/{}", l.product_id);
                        let name = l.name.clone();
                        view! { <tr><td><A href=href>{name}</A></td><td>{l.sku.clone()}</td><td class="num">{number(l.on_hand as f64)}</td></tr> }
                    })
                    .collect_view();
                view! {
                    <table class="table"><thead><tr><th>{t("product")}</th><th>{t("sku")}</th><th class="num">{t("on_hand")}</th></tr></thead>
                    <tbody>{rows}</tbody></table>
                }
                .into_any()
            };
            let tickets_label = if s.tickets_overdue > 0 {
                tf("active_tickets_overdue", &[&number(s.tickets_overdue as f64)])
            } else {
                t("active_tickets").to_string()
            };
            view! {
                <div class="grid stats">
                    <Stat label=t("sales_today") value=money(&s.sales_today, &s.currency)/>
                    <Stat label=t("orders_today") value=number(s.orders_today as f64)/>
                    <Stat label=t("open_conversations") value=number(s.conversations_open as f64)/>
                    <Stat label=t("bot_conversations") value=number(s.conversations_pending as f64)/>
                    <Stat label=tickets_label value=number(s.tickets_active as f64)/>
                    {s.satisfaction.score.map(|x| view! { <Stat label=t("satisfaction_14_days") value=format!("{} %", number(x))/> })}
                </div>
                <div class="grid two">
                    <section class="card"><BarChart title=t("sales_14_days") bars=bars/></section>
                    <section class="card"><h2>{t("orders_by_status")}</h2><ul class="list">{statuses}</ul></section>
                </div>
                <section class="card"><h2>{t("low_stock")}</h2>{low}</section>
            }
        })}
    }
}
