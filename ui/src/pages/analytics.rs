//! Sales and conversations by branch, seller and period.

use dashoffice_domain::api::{AmountBy, AnalyticsSummary, BranchView, CountBy};
use leptos::prelude::*;

use super::PageHead;
use crate::{
    api::{self, enc},
    components::{BarChart, Empty, Stat, loader, show},
    i18n::{day, money, number, t, tf},
    state::watch,
};

fn bars(list: &[AmountBy], cur: &str, by_day: bool) -> Vec<(String, f64, String)> {
    list.iter()
        .map(|a| {
            let label = if by_day { day(&a.key) } else { a.label.clone() };
            (label, a.amount.parse().unwrap_or(0.0), format!("{} · {}", money(&a.amount, cur), number(a.count as f64)))
        })
        .collect()
}

/// Bars of counted conversations; `by_day` labels them by date, "" is "unassigned".
fn counts(list: &[CountBy], by_day: bool) -> Vec<(String, f64, String)> {
    list.iter()
        .map(|c| {
            let label = if by_day {
                day(&c.key)
            } else if c.key.is_empty() {
                t("unassigned").to_string()
            } else {
                c.label.clone()
            };
            (label, c.count as f64, number(c.count as f64))
        })
        .collect()
}

#[component]
pub(crate) fn Analytics() -> impl IntoView {
    let days = RwSignal::new("30".to_string());
    let branch = RwSignal::new(String::new());
    let branches = loader(|| api::get::<Vec<BranchView>>("/api/v1/branches"));
    let data = loader(move || {
        watch(&["orders", "conversations"]);
        let path = format!("/api/v1/analytics/summary?days={}&branch_id={}", enc(&days.get()), enc(&branch.get()));
        async move { api::get::<AnalyticsSummary>(&path).await }
    });
    view! {
        <PageHead title=t("nav_analytics")/>
        <div class="filters">
            <label class="field inline"><span>{t("period")}</span>
                <select bind:value=days>
                    <option value="7">{t("last_7_days")}</option>
                    <option value="30">{t("last_30_days")}</option>
                    <option value="90">{t("last_90_days")}</option>
                    <option value="365">{t("last_365_days")}</option>
                </select></label>
            <label class="field inline"><span>{t("branch")}</span>
                <select bind:value=branch>
                    <option value="">{t("all_branches")}</option>
                    {move || branches.with(|b| b.ready().map(|b| b.iter().map(|b| view! { <option value=b.id.clone()>{b.name.clone()}</option> }).collect_view()))}
                </select></label>
        </div>
        {show(data, |s: AnalyticsSummary| {
            let cur = s.currency.clone();
            let conv = counts(&s.conversations_by_branch, false);
            let conv_seller = counts(&s.conversations_by_seller, false);
            let conv_day = counts(&s.conversations_by_day, true);
            let active_label = if s.tickets_overdue > 0 {
                tf("active_tickets_overdue", &[&number(s.tickets_overdue as f64)])
            } else {
                t("active_tickets").to_string()
            };
            view! {
                <div class="grid stats">
                    <Stat label=t("sales") value=money(&s.sales_total, &cur)/>
                    <Stat label=t("sales_orders") value=number(s.orders_total as f64)/>
                    <Stat label=t("average_sale") value=money(&s.average_order, &cur)/>
                    <Stat label=t("open_conversations") value=number(s.conversations_open as f64)/>
                </div>
                <section class="card"><BarChart title=t("sales_by_day") bars=bars(&s.sales_by_day, &cur, true)/></section>
                <div class="grid two">
                    <section class="card">{if s.sales_by_branch.is_empty() { view! { <h2>{t("sales_by_branch")}</h2><Empty text=t("no_sales")/> }.into_any() } else { view! { <BarChart title=t("sales_by_branch") bars=bars(&s.sales_by_branch, &cur, false)/> }.into_any() }}</section>
                    <section class="card">{if s.sales_by_seller.is_empty() { view! { <h2>{t("sales_by_seller")}</h2><Empty text=t("no_sales")/> }.into_any() } else { view! { <BarChart title=t("sales_by_seller") bars=bars(&s.sales_by_seller, &cur, false)/> }.into_any() }}</section>
                </div>
                <section class="card support-stats"><h2>{t("nav_tickets")}</h2>
                    <div class="grid stats">
                        <Stat label=t("tickets_opened") value=number(s.tickets_opened as f64)/>
                        <Stat label=t("tickets_resolved") value=number(s.tickets_resolved as f64)/>
                        <Stat label=t("ticket_resolution_hours") value=s.ticket_resolution_hours.map(number).unwrap_or_else(|| "—".into())/>
                        <Stat label=active_label value=number(s.tickets_active as f64)/>
                    </div>
                </section>
                <Satisfied s=s.satisfaction.clone()/>
                <section class="card"><BarChart title=t("conversations_by_day") bars=conv_day/></section>
                <div class="grid two">
                    <section class="card">{if conv.is_empty() { view! { <h2>{t("conversations_by_branch")}</h2><Empty text=t("no_conversations")/> }.into_any() } else { view! { <BarChart title=t("conversations_by_branch") bars=conv/> }.into_any() }}</section>
                    <section class="card">{if conv_seller.is_empty() { view! { <h2>{t("conversations_by_seller")}</h2><Empty text=t("no_conversations")/> }.into_any() } else { view! { <BarChart title=t("conversations_by_seller") bars=conv_seller/> }.into_any() }}</section>
                </div>
            }
        })}
    }
}

/// The customers' ratings of the period: the share of good ones, how many were asked and
/// answered, and each seller's.
#[component]
fn Satisfied(s: dashoffice_domain::api::Satisfaction) -> impl IntoView {
    let rated = s.good + s.ok + s.bad;
    let score = s.score.map(|x| format!("{} %", number(x))).unwrap_or_else(|| "—".into());
    let rows = s
        .by_seller
        .iter()
        .map(|r| {
            let n = r.good + r.ok + r.bad;
            let share = (r.good * 1000).checked_div(n).map(|x| format!("{} %", number(x as f64 / 10.0))).unwrap_or_else(|| "—".into());
            let who = if r.key.is_empty() { t("unassigned").to_string() } else { r.label.clone() };
            view! {
                <tr><td>{who}</td><td class="num">{r.good}</td><td class="num">{r.ok}</td><td class="num">{r.bad}</td><td class="num">{share}</td></tr>
            }
        })
        .collect_view();
    view! {
        <section class="card satisfaction-stats"><h2>{t("satisfaction")}</h2>
            <div class="grid stats">
                <Stat label=t("satisfaction_score") value=score/>
                <Stat label=t("surveys_sent") value=number(s.surveys as f64)/>
                <Stat label=t("ratings") value=number(rated as f64)/>
                <Stat label=t("ratings_bad") value=number(s.bad as f64)/>
            </div>
            {if rated == 0 {
                view! { <p class="muted">{t("no_ratings")}</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap"><table class="table">
                        <thead><tr><th>{t("role_seller")}</th><th class="num">{t("rating_good")}</th><th class="num">{t("rating_ok")}</th><th class="num">{t("rating_bad")}</th><th class="num">{t("satisfaction_score")}</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table></div>
                }.into_any()
            }}
        </section>
    }
}
