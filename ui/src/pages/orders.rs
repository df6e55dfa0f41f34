//! Orders: by status, detail with only the legal next steps, a new order for a customer and a
//! draft's lines changed.

use dashoffice_domain::{
    OrderStatus,
    api::{CreateOrder, OrderLineInput, OrderView, Page, ProductView, ResolveOrder, TransitionOrder, UpdateOrder},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
};

use super::{PageHead, param_id};
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Empty, ErrorBox, FormError, MoreButton, loader, pages, show, status_text},
    i18n::{datetime, money, number, t, tf, when},
    state::{app, watch},
};

fn status_kind(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Draft => "muted",
        OrderStatus::Confirmed => "info",
        OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Delivered => "ok",
        OrderStatus::Cancelled | OrderStatus::Refunded => "warn",
    }
}

#[component]
pub(crate) fn Orders() -> impl IntoView {
    let query = use_query_map();
    let status = Memo::new(move |_| query.with(|q| q.get("status").unwrap_or_default()));
    let q = RwSignal::new(String::new());
    let shown = RwSignal::new(1u32);
    Effect::new(move |_| {
        q.track();
        status.track();
        shown.set(1);
    });
    // `?invoice=pending` (the dashboard's link) opens the list filtered.
    let invoice = RwSignal::new(query.with_untracked(|q| q.get("invoice").unwrap_or_default()));
    Effect::new(move |_| {
        invoice.track();
        shown.set(1);
    });
    let data = loader(move || {
        watch(&["orders"]);
        let mut path = format!("/api/v1/orders?sort=-created_at&q={}", enc(&q.get()));
        let s = status.get();
        if !s.is_empty() {
            path.push_str(&format!("&status={}", enc(&s)));
        }
        let i = invoice.get();
        if !i.is_empty() {
            path.push_str(&format!("&invoice={}", enc(&i)));
        }
        let n = shown.get();
        async move { pages::<OrderView>(&path, n).await }
    });
    let tabs = move || {
        let current = status.get();
        std::iter::once(("", t("all")))
            .chain(OrderStatus::ALL.iter().map(|s| (s.as_str(), status_text(s.as_str()))))
            .map(|(key, label)| {
                let href = if key.is_empty() { "/orders".to_string() } else { format!("/orders?status={key}") };
                let selected = current == key;
                view! { <a href=href class=if selected { "tab selected" } else { "tab" } aria-current=selected.then_some("page")>{label}</a> }
            })
            .collect_view()
    };
    // The invoice register of a month (owners and managers), for the accountant.
    let may_export =
        || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::ImportExport)));
    let month = RwSignal::new({
        let now = js_sys::Date::new_0();
        format!("{:04}-{:02}", now.get_full_year(), now.get_month() + 1)
    });
    let export_invoices = move |_| {
        // No month chosen: every invoice.
        let m = month.get_untracked();
        let (path, file) = if m.is_empty() {
            ("/api/v1/invoices/export".to_string(), "invoices.csv".to_string())
        } else {
            (format!("/api/v1/invoices/export?month={}", enc(&m)), format!("invoices-{m}.csv"))
        };
        spawn_local(async move {
            match api::text(&path).await {
                Ok(csv) => api::download(&file, &csv, "text/csv"),
                Err(e) => app().say(crate::i18n::error_text(&e)),
            }
        })
    };
    view! {
        <PageHead title=t("nav_orders")>
            <Show when=may_export>
                <input type="month" id="invoices-month" class="month" aria-label=t("invoice_register_month") bind:value=month/>
                <button class="btn" id="invoices-export" on:click=export_invoices>{t("invoice_register")}</button>
            </Show>
            <A href="/orders/new" attr:class="btn primary">{t("new_order")}</A>
        </PageHead>
        <nav class="tabs" aria-label=t("filter_status")>{tabs}</nav>
        <div class="filters">
            <input type="search" placeholder=t("search_orders") aria-label=t("search_orders") bind:value=q/>
            <select id="invoice-filter" class="compact" aria-label=t("invoice") bind:value=invoice>
                <option value="">{t("invoice_any")}</option>
                <option value="none">{t("invoice_none")}</option>
                <option value="pending">{t("invoice_pending")}</option>
                <option value="posted">{t("invoice_posted")}</option>
            </select>
        </div>
        {show(data, |p: Page<OrderView>| {
            if p.items.is_empty() {
                return view! { <Empty text=t("no_orders")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|o| {
                    let href = format!("/orders/{}", o.id);
                    view! {
                        <tr>
                            <td><A href=href>{o.number.clone()}</A>{o.conflict.then(|| view! { <Badge kind="warn" text=t("conflict")/> })}
                                {o.invoice.as_ref().map(|i| {
                                    let (text, title) = if i.number.is_empty() {
                                        (i.provisional_number.clone(), t("invoice_waiting"))
                                    } else {
                                        (i.number.clone(), t("invoice"))
                                    };
                                    view! { <div class="muted invoice-no" title=title>{text}</div> }
                                })}</td>
                            <td>{o.customer_name.clone()}</td>
                            <td><Badge kind=status_kind(o.status) text=status_text(o.status.as_str())/></td>
                            <td class="num">{money(&o.total, &o.currency)}</td>
                            <td>{when(o.created_at)}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("number")}</th><th>{t("customer")}</th><th>{t("state")}</th><th class="num">{t("total")}</th><th>{t("created")}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
            .into_any()
        })}
        <MoreButton data=data pages=shown/>
    }
}

#[component]
pub(crate) fn OrderDetail() -> impl IntoView {
    let id = param_id();
    let data = loader(move || {
        watch(&["orders"]);
        let path = format!("/api/v1/orders/{}", id.get());
        async move { api::get::<OrderView>(&path).await }
    });
    // Support tickets about this order (shown when there are any).
    let tickets = loader(move || {
        watch(&["tickets"]);
        let path = format!("/api/v1/tickets?limit=20&order_id={}", enc(&id.get()));
        async move { api::get::<Page<dashoffice_domain::api::TicketView>>(&path).await }
    });
    let err = RwSignal::new(None::<ApiError>);
    let move_to = move |to: OrderStatus| {
        err.set(None);
        if matches!(to, OrderStatus::Cancelled | OrderStatus::Refunded) {
            // An invoiced order keeps its invoice: say so before.
            let invoice = data.with_untracked(|d| match d {
                crate::components::Load::Ready(o) => o
                    .invoice
                    .as_ref()
                    .map(|i| if i.number.is_empty() { i.provisional_number.clone() } else { i.number.clone() }),
                _ => None,
            });
            let question = match invoice {
                Some(n) => tf("confirm_move_invoiced", &[status_text(to.as_str()), &n]),
                None => tf("confirm_move", &[status_text(to.as_str())]),
            };
            if !crate::components::confirm(&question) {
                return;
            }
        }
        let path = format!("/api/v1/orders/{}/transitions", id.get_untracked());
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &TransitionOrder { to }).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    app().say(tf("order_moved", &[status_text(to.as_str())]));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // Settling a fork: the status staff checked is the right one.
    let settle_on = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let crate::components::Load::Ready(o) = data.get() {
            settle_on.set(o.status.as_str().to_string());
        }
    });
    let settle = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let Some(status) = OrderStatus::parse(&settle_on.get_untracked()) else { return };
        let path = format!("/api/v1/orders/{}/resolve", id.get_untracked());
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &ResolveOrder { status }).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    app().say(tf("order_resolved", &[status_text(status.as_str())]));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // The sales document (a quote while a draft), in the UI's language.
    let printing = RwSignal::new(false);
    let print = move |number: String, document: Option<String>| {
        err.set(None);
        printing.set(true);
        let lang = crate::i18n::lang().code();
        let mut path = format!("/api/v1/orders/{}/invoice.pdf?lang={lang}", id.get_untracked());
        if let Some(d) = document {
            path.push_str(&format!("&document={}", enc(&d)));
        }
        spawn_local(async move {
            match api::blob_url(&path).await {
                Ok(url) => api::save_url(&url, &format!("{number}.pdf")),
                Err(e) => err.set(Some(e)),
            }
            printing.set(false);
        });
    };
    // The order's invoice: a provisional number here at once, the legal one from the branch's
    // numbering device (live, when it arrives).
    let issuing = RwSignal::new(false);
    let issue_invoice = move |_| {
        err.set(None);
        issuing.set(true);
        let path = format!("/api/v1/orders/{}/invoice", id.get_untracked());
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &()).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    app().say(t("invoice_issued").to_string());
                }
                Err(e) => err.set(Some(e)),
            }
            issuing.set(false);
        });
    };
    // The credit note that undoes the invoice of a cancelled or refunded order, with its reason.
    let credit_reason = RwSignal::new(String::new());
    let issue_credit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        issuing.set(true);
        let path = format!("/api/v1/orders/{}/credit-note", id.get_untracked());
        let body = dashoffice_domain::api::IssueCreditNote { reason: Some(credit_reason.get_untracked()) };
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &body).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    app().say(t("credit_note_issued").to_string());
                }
                Err(e) => err.set(Some(e)),
            }
            issuing.set(false);
        });
    };
    // Goods the customer brings back: units per line, why, and whether they go back on the shelf.
    // One id per opening of the form, so a second click records the return once.
    let return_open = RwSignal::new(false);
    let return_id = RwSignal::new(String::new());
    let return_qty = RwSignal::new(Vec::<String>::new());
    let return_reason = RwSignal::new(String::new());
    let return_restock = RwSignal::new(true);
    let open_return = move |_| {
        let lines = data.with_untracked(|d| match d {
            crate::components::Load::Ready(o) => o.lines.len(),
            _ => 0,
        });
        return_qty.set(vec![String::new(); lines]);
        return_reason.set(String::new());
        return_restock.set(true);
        let salt = (js_sys::Math::random() * 1e12) as u64;
        return_id.set(format!("ui-{:x}-{salt:x}", js_sys::Date::now() as u64));
        return_open.update(|v| *v = !*v);
    };
    let send_return = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        // A quantity that is not a whole number goes as 0, for the server to name its line.
        let lines: Vec<dashoffice_domain::api::ReturnLineInput> = return_qty
            .get_untracked()
            .iter()
            .enumerate()
            .filter(|(_, q)| !matches!(q.trim(), "" | "0"))
            .map(|(line, q)| dashoffice_domain::api::ReturnLineInput { line, quantity: q.trim().parse().unwrap_or(0) })
            .collect();
        let body = dashoffice_domain::api::ReturnItems {
            lines,
            reason: Some(return_reason.get_untracked()),
            restock: Some(return_restock.get_untracked()),
            id: Some(return_id.get_untracked()),
        };
        issuing.set(true);
        let path = format!("/api/v1/orders/{}/returns", id.get_untracked());
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &body).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    return_open.set(false);
                    app().say(t("return_recorded").to_string());
                }
                Err(e) => err.set(Some(e)),
            }
            issuing.set(false);
        });
    };
    // The same document to the customer's WhatsApp (the relay renders and sends it).
    let sending = RwSignal::new(false);
    let send_whatsapp = move |_| {
        err.set(None);
        sending.set(true);
        let lang = crate::i18n::lang().code();
        let path = format!("/api/v1/orders/{}/whatsapp", id.get_untracked());
        let body = dashoffice_domain::inbox::SendOrderDocument { lang: Some(lang.into()), text: None };
        spawn_local(async move {
            match api::post::<_, dashoffice_domain::inbox::MessageView>(&path, &body).await {
                Ok(_) => app().say(t("order_pdf_queued").to_string()),
                Err(e) => err.set(Some(e)),
            }
            sending.set(false);
        });
    };
    // The order's document by e-mail: written here at once (offline too), sent by the relay.
    let emailing = RwSignal::new(false);
    let email_open = RwSignal::new(false);
    // None: the order's current document; else one by name (a return's).
    let email_document = RwSignal::new(None::<String>);
    let email_to = RwSignal::new(String::new());
    let email_message = RwSignal::new(String::new());
    let send_email = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        emailing.set(true);
        let path = format!("/api/v1/orders/{}/email", id.get_untracked());
        let opt = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let body = dashoffice_domain::api::EmailOrderDocument {
            to: opt(email_to.get_untracked()),
            document: email_document.get_untracked(),
            lang: Some(crate::i18n::lang().code().into()),
            message: opt(email_message.get_untracked()),
        };
        spawn_local(async move {
            match api::post::<_, OrderView>(&path, &body).await {
                Ok(o) => {
                    data.set(crate::components::Load::Ready(o));
                    email_open.set(false);
                    email_message.set(String::new());
                    app().say(t("email_queued").to_string());
                }
                Err(e) => err.set(Some(e)),
            }
            emailing.set(false);
        });
    };
    let may_converse =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::Converse)));
    let may_sell =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::SellOrders)));
    let may_settle =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::Archive)));
    view! {
        <PageHead title=t("order")><A href="/orders" attr:class="btn ghost">{t("back")}</A></PageHead>
        {move || err.get().map(|e| view! { <ErrorBox err=e/> })}
        {show(data, move |o: OrderView| {
            let lines = o
                .lines
                .iter()
                .map(|l| view! {
                    <tr><td>{l.name.clone()}<div class="muted">{l.sku.clone()}</div></td><td class="num">{number(l.quantity as f64)}</td>
                    <td class="num">{money(&l.unit_price, &o.currency)}</td><td class="num">{money(&l.total, &o.currency)}</td></tr>
                })
                .collect_view();
            let next = o
                .status
                .next()
                .iter()
                .map(|s| {
                    let s = *s;
                    let cls = if matches!(s, OrderStatus::Cancelled | OrderStatus::Refunded) { "btn danger" } else { "btn primary" };
                    view! { <button class=cls on:click=move |_| move_to(s)>{tf("move_to", &[status_text(s.as_str())])}</button> }
                })
                .collect_view();
            let history = o
                .transitions
                .iter()
                .map(|tr| {
                    let what = if tr.resolution {
                        tf("order_settled_on", &[status_text(tr.to.as_str())])
                    } else {
                        status_text(tr.to.as_str()).to_string()
                    };
                    view! { <li>{what}" · "{datetime(tr.at)}</li> }
                })
                .collect_view();
            let customer = format!("/customers/{}", o.customer_id);
            // The saved file is named after the legal number of the credit note or the invoice
            // once there is one.
            let number = o
                .credit_note
                .as_ref()
                .map(|c| c.number.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| o.invoice.as_ref().map(|i| i.number.clone()).filter(|n| !n.is_empty()))
                .unwrap_or_else(|| o.number.clone());
            let pdf_label = match (&o.invoice, &o.credit_note) {
                _ if o.status == OrderStatus::Draft => t("quote_pdf"),
                (_, Some(_)) => t("credit_note_pdf"),
                (Some(_), None) => t("fiscal_invoice_pdf"),
                (None, None) => t("invoice_pdf"),
            };
            let invoice_pdf = o.credit_note.as_ref().and(o.invoice.as_ref()).map(|i| {
                if i.number.is_empty() { o.number.clone() } else { i.number.clone() }
            });
            // Not when every unit came back: the returns' credit notes undid it all.
            let creditable = o.invoice.is_some()
                && o.credit_note.is_none()
                && o.returnable.iter().any(|n| *n > 0)
                && matches!(o.status, OrderStatus::Cancelled | OrderStatus::Refunded);
            let credit_line = o.credit_note.clone().map(|c| {
                let (text, muted) = if c.number.is_empty() {
                    (tf("credit_note_provisional", &[&c.provisional_number]), t("invoice_waiting").to_string())
                } else {
                    (
                        tf("credit_note_numbered", &[&c.number]),
                        format!("{} · {}", c.posted_at.map(datetime).unwrap_or_default(), tf("invoice_was", &[&c.provisional_number])),
                    )
                };
                view! {
                    <p class="invoice-line credit" id="order-credit-note-number">{text}<span class="muted">" · "{muted}</span></p>
                    {(!c.reason.is_empty()).then(|| view! { <p class="muted">{tf("credit_note_reason", &[&c.reason])}</p> })}
                }
            });
            let invoiceable = o.invoice.is_none()
                && matches!(o.status, OrderStatus::Confirmed | OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Delivered);
            let invoice_line = o.invoice.clone().map(|i| {
                if i.number.is_empty() {
                    view! {
                        <p class="invoice-line pending" id="order-invoice-number">
                            {tf("invoice_provisional", &[&i.provisional_number])}
                            <span class="muted">" · "{t("invoice_waiting")}</span>
                        </p>
                    }
                    .into_any()
                } else {
                    view! {
                        <p class="invoice-line" id="order-invoice-number">
                            {tf("invoice_numbered", &[&i.number])}
                            <span class="muted">" · "{i.posted_at.map(datetime).unwrap_or_default()}" · "{tf("invoice_was", &[&i.provisional_number])}</span>
                            {i.duplicate.then(|| view! { <Badge kind="warn" text=t("invoice_duplicate")/> })}
                        </p>
                    }
                    .into_any()
                }
            });
            let returnable = matches!(o.status, OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Delivered)
                && o.returnable.iter().any(|n| *n > 0);
            let return_rows = o
                .returns
                .iter()
                .map(|r| {
                    let what = r
                        .lines
                        .iter()
                        .map(|l| format!("{} × {}", crate::i18n::number(l.quantity as f64), l.name))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let credit = r.credit_note.as_ref().map(|c| {
                        if c.number.is_empty() {
                            tf("credit_note_provisional", &[&c.provisional_number])
                        } else {
                            tf("credit_note_numbered", &[&c.number])
                        }
                    });
                    let file = r
                        .credit_note
                        .as_ref()
                        .map(|c| c.number.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| format!("{}-R", o.number));
                    let document = format!("return:{}", r.id);
                    let state = match (r.accepted, r.restock) {
                        (false, _) => t("return_not_counted"),
                        (true, true) => t("return_restocked"),
                        (true, false) => t("return_damaged"),
                    };
                    view! {
                        <div class="row-item" data-return=r.id.clone() data-accepted=r.accepted.to_string()>
                            <span>{datetime(r.returned_at)}</span>
                            <span>{what}</span>
                            <span class="num">{money(&r.total, &o.currency)}</span>
                            <span class="muted">{state}{credit.map(|c| format!(" · {c}"))}</span>
                            {(!r.reason.is_empty()).then(|| view! { <span class="muted">{tf("credit_note_reason", &[&r.reason])}</span> })}
                            {r.accepted.then(|| {
                                let mail = document.clone();
                                view! {
                                    <button type="button" class="btn ghost return-pdf" disabled=move || printing.get()
                                        on:click=move |_| print(file.clone(), Some(document.clone()))>{t("pdf")}</button>
                                    <button type="button" class="btn ghost return-email" on:click=move |_| {
                                        email_document.set(Some(mail.clone()));
                                        email_open.set(true);
                                        // The form sits at the top of the order.
                                        leptos::prelude::window().scroll_to_with_x_and_y(0.0, 0.0);
                                    }>{t("send_by_email")}</button>
                                }
                            })}
                        </div>
                    }
                })
                .collect_view();
            // What can come back, per line: (position, name, units left).
            let return_lines: Vec<(usize, String, i64)> = o
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i, l.name.clone(), o.returnable.get(i).copied().unwrap_or(0)))
                .collect();
            let return_inputs = move || {
                return_lines
                    .clone()
                    .into_iter()
                    .map(|(i, name, left)| {
                        view! {
                            <label class="field"><span>{format!("{name} ({})", tf("return_left", &[&left.to_string()]))}</span>
                                <input type="number" min="0" step="1" id=format!("f-return-qty-{i}") disabled=left == 0
                                    prop:value=move || return_qty.with(|v| v.get(i).cloned().unwrap_or_default())
                                    on:input=move |ev| {
                                        let v = event_target_value(&ev);
                                        return_qty.update(|q| if let Some(x) = q.get_mut(i) { *x = v; });
                                    }/>
                            </label>
                        }
                    })
                    .collect_view()
            };
            let returns = (!o.returns.is_empty() || (returnable && may_sell())).then(|| view! {
                <section class="card" id="order-returns">
                    <div class="page-head">
                        <h2>{t("returns_title")}</h2>
                        {(returnable && may_sell()).then(|| view! {
                            <button type="button" class="btn" id="order-return-open" on:click=open_return>{t("return_items")}</button>
                        })}
                    </div>
                    {(o.returned_total != "0" && !o.returned_total.is_empty()).then(|| view! {
                        <p class="muted" id="order-returned-total">{tf("returned_total", &[&money(&o.returned_total, &o.currency)])}</p>
                    })}
                    {return_rows}
                    <Show when=move || return_open.get()>
                        <form class="stack" id="order-return-form" on:submit=send_return>
                            <p class="muted">{t("return_help")}</p>
                            {return_inputs.clone()}
                            <label class="field"><span>{t("credit_note_reason_label")}</span>
                                <input id="f-return-reason" maxlength="500" bind:value=return_reason/>
                            </label>
                            <label class="check"><input type="checkbox" id="f-return-restock" bind:checked=return_restock/>{t("return_to_stock")}</label>
                            <button class="btn primary" type="submit" id="order-return-submit" disabled=move || issuing.get()>{t("record_return")}</button>
                        </form>
                    </Show>
                </section>
            });
            let emailable = o.status != OrderStatus::Draft;
            let emails = (!o.emails.is_empty()).then(|| {
                let rows = o
                    .emails
                    .iter()
                    .map(|m| {
                        // What goes (or went): a sales note asked for before the order was
                        // invoiced or credited goes as that document.
                        // A return's document: its credit note, or its return note.
                        let ret = m.document.strip_prefix("return:").and_then(|id| o.returns.iter().find(|r| r.id == id));
                        let doc = match m.document.as_str() {
                            _ if ret.is_some_and(|r| r.credit_note.is_some()) => t("doc_return_credit_note"),
                            _ if ret.is_some() => t("doc_return_note"),
                            "invoice" => t("doc_invoice"),
                            "credit_note" => t("doc_credit_note"),
                            _ if o.credit_note.is_some() => t("doc_credit_note"),
                            _ if o.invoice.is_some() => t("doc_invoice"),
                            _ => t("doc_sales_note"),
                        };
                        // What the relay waits for (a sales note goes as the invoice once there
                        // is one).
                        let invoice_done = o.invoice.as_ref().is_none_or(|i| !i.number.is_empty());
                        let credit_done = o.credit_note.as_ref().is_none_or(|c| !c.number.is_empty());
                        let numbered = match m.document.as_str() {
                            _ if ret.is_some() => {
                                ret.and_then(|r| r.credit_note.as_ref()).is_none_or(|c| !c.number.is_empty())
                            }
                            "invoice" => invoice_done,
                            "credit_note" => credit_done,
                            _ => invoice_done && credit_done,
                        };
                        let (kind, status) = match m.status.as_str() {
                            "sent" => ("ok", tf("email_status_sent", &[&m.sent_at.map(datetime).unwrap_or_default()])),
                            "failed" => ("danger", tf("email_status_failed", &[m.error.as_deref().unwrap_or_default()])),
                            _ if !numbered => ("warn", t("email_status_number").to_string()),
                            _ => ("warn", t("email_status_queued").to_string()),
                        };
                        view! {
                            <div class="row-item email-row" data-status=m.status.clone()>
                                <span>{m.to.clone()}</span><span>{doc}</span>
                                <span class="muted">{datetime(m.requested_at)}{m.automatic.then(|| format!(" · {}", t("email_automatic")))}</span>
                                <Badge kind=kind text=status/>
                            </div>
                        }
                    })
                    .collect_view();
                view! { <section class="card" id="order-emails"><h2>{t("emails_title")}</h2>{rows}</section> }
            });
            // The WhatsApp notices the customer got of the order's statuses, with their delivery.
            let notices = (!o.notices.is_empty()).then(|| {
                let rows = o
                    .notices
                    .iter()
                    .map(|n| {
                        // A notice that could not go says why, and what would let it go next time.
                        if let Some(reason) = &n.skipped {
                            let why = match reason.as_str() {
                                "no_whatsapp" => t("notice_skipped_no_whatsapp"),
                                "refused" => t("notice_skipped_refused"),
                                _ => t("notice_skipped_window_closed"),
                            };
                            let link = (!n.conversation_id.is_empty()).then(|| view! {
                                <A href=format!("/conversations/{}", n.conversation_id)>{t("see_conversation")}</A>
                            });
                            return view! {
                                <div class="row-item notice-row" data-status=n.status.clone() data-delivery="skipped"
                                    data-reason=reason.clone()>
                                    <span>{status_text(&n.status)}</span>
                                    <span class="muted">{datetime(n.at)}" · "{why}</span>
                                    {link}
                                    <Badge kind="warn" text=t("notice_not_sent")/>
                                </div>
                            }
                            .into_any();
                        }
                        let (tick, label) = super::inbox::ticks(n.delivery);
                        let kind = if n.delivery == dashoffice_domain::inbox::MessageStatus::Failed { "danger" } else { "ok" };
                        view! {
                            <div class="row-item notice-row" data-status=n.status.clone() data-delivery=n.delivery.as_str()>
                                <span>{status_text(&n.status)}</span>
                                <span class="muted">{datetime(n.at)}{(n.kind == "template").then(|| format!(" · {}", t("notice_template")))}</span>
                                <A href=format!("/conversations/{}", n.conversation_id)>{t("see_conversation")}</A>
                                <Badge kind=kind text=format!("{tick} {}", t(label))/>
                            </div>
                        }
                        .into_any()
                    })
                    .collect_view();
                view! { <section class="card" id="order-notices-sent"><h2>{t("notices_title")}</h2>{rows}</section> }
            });
            view! {
                <section class="card">
                    <div class="page-head">
                        <h2>{o.number.clone()}" "<Badge kind=status_kind(o.status) text=status_text(o.status.as_str())/></h2>
                        <div class="actions">
                            <button type="button" class="btn" id="order-pdf" disabled=move || printing.get()
                                on:click=move |_| print(number.clone(), None)>{pdf_label}</button>
                            // Once a credit note undid it, the invoice itself can still be printed.
                            {invoice_pdf.map(|name| view! {
                                <button type="button" class="btn" id="order-invoice-pdf" disabled=move || printing.get()
                                    on:click=move |_| print(name.clone(), Some("invoice".into()))>{t("fiscal_invoice_pdf")}</button>
                            })}
                            {(invoiceable && may_sell()).then(|| view! {
                                <button type="button" class="btn primary" id="order-invoice" disabled=move || issuing.get()
                                    on:click=issue_invoice>{t("issue_invoice")}</button>
                            })}
                            {(emailable && may_sell()).then(|| view! {
                                <button type="button" class="btn" id="order-email"
                                    on:click=move |_| {
                                        email_document.set(None);
                                        email_open.update(|v| *v = !*v);
                                    }>{t("send_by_email")}</button>
                            })}
                            <Show when=may_converse>
                                <button type="button" class="btn" id="order-whatsapp" disabled=move || sending.get()
                                    on:click=send_whatsapp>{t("send_on_whatsapp")}</button>
                            </Show>
                            <A href=format!("/tickets/new?order={}&customer={}", o.id, o.customer_id) attr:class="btn">{t("open_a_ticket")}</A>
                            {(o.status == OrderStatus::Draft && may_sell()).then(|| view! {
                                <A href=format!("/orders/{}/edit", o.id) attr:class="btn">{t("edit_order")}</A>
                            })}
                            {next}
                        </div>
                    </div>
                    {o.conflict.then(|| {
                        let choices = dashoffice_domain::resolution_choices(&o.transitions);
                        let current = o.status.as_str().to_string();
                        view! {
                            <div class="notice">
                                <p>{t("order_conflict_help")}</p>
                                <Show when=may_settle>
                                    <form class="inline-form" id="settle-order" on:submit=settle>
                                        <label class="field"><span>{t("right_status")}</span>
                                            <select bind:value=settle_on>
                                                {choices.iter().map(|s| {
                                                    let v = s.as_str();
                                                    view! { <option value=v selected=v == current>{status_text(v)}</option> }
                                                }).collect_view()}
                                            </select>
                                        </label>
                                        <button class="btn primary" type="submit">{t("keep_this_status")}</button>
                                    </form>
                                </Show>
                            </div>
                        }
                    })}
                    <Show when=move || email_open.get()>
                        <form class="inline-form notice" id="email-form" on:submit=send_email>
                            {move || email_document.get().map(|_| view! { <p class="muted">{t("email_return_document")}</p> })}
                            <label class="field"><span>{t("email_to")}</span>
                                <input id="f-email_to" type="email" maxlength="254" placeholder=t("email_to_placeholder") bind:value=email_to/>
                            </label>
                            <label class="field"><span>{t("email_message")}</span>
                                <input id="f-email_message" maxlength="2000" bind:value=email_message/>
                            </label>
                            <button class="btn primary" type="submit" id="order-email-send" disabled=move || emailing.get()>{t("email_send")}</button>
                        </form>
                    </Show>
                    {invoice_line}
                    {credit_line}
                    {(creditable && may_sell()).then(|| view! {
                        <div class="notice">
                            <p>{t("credit_note_help")}</p>
                            <form class="inline-form" id="credit-note-form" on:submit=issue_credit>
                                <label class="field"><span>{t("credit_note_reason_label")}</span>
                                    <input id="f-credit_reason" maxlength="500" bind:value=credit_reason/>
                                </label>
                                <button class="btn primary" type="submit" id="order-credit-note" disabled=move || issuing.get()>{t("issue_credit_note")}</button>
                            </form>
                        </div>
                    })}
                    {o.invoice.as_ref().is_some_and(|i| i.duplicate).then(|| view! { <p class="notice">{t("invoice_duplicate_help")}</p> })}
                    <p>{t("customer")}": "<A href=customer>{if o.customer_name.is_empty() { t("customer").to_string() } else { o.customer_name.clone() }}</A>" · "{datetime(o.created_at)}</p>
                    <div class="table-wrap"><table class="table">
                        <thead><tr><th>{t("product")}</th><th class="num">{t("quantity")}</th><th class="num">{t("unit_price")}</th><th class="num">{t("total")}</th></tr></thead>
                        <tbody>{lines}</tbody>
                        <tfoot>
                            <tr><td colspan="3">{t("subtotal")}</td><td class="num">{money(&o.subtotal, &o.currency)}</td></tr>
                            <tr><td colspan="3">{t("tax")}</td><td class="num">{money(&o.tax_total, &o.currency)}</td></tr>
                            <tr class="strong"><td colspan="3">{t("total")}</td><td class="num">{money(&o.total, &o.currency)}</td></tr>
                        </tfoot>
                    </table></div>
                    {(!o.notes.is_empty()).then(|| view! { <p class="notes">{o.notes.clone()}</p> })}
                </section>
                {returns}
                {emails}
                {notices}
                <section class="card"><h2>{t("history")}</h2><ol class="list">{history}</ol></section>
                {move || tickets.with(|l| l.ready().filter(|p| !p.items.is_empty()).map(|p| {
                    let rows = p.items.clone().into_iter().map(|x| view! {
                        <div class="row-item"><A href=format!("/tickets/{}", x.id)>{x.number.clone()}</A><span>{x.subject.clone()}</span>
                            <span>{super::tickets::ticket_status_text(x.status)}</span></div>
                    }).collect_view();
                    view! { <section class="card order-tickets"><h2>{t("nav_tickets")}</h2>{rows}</section> }
                }))}
            }
        })}
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Line {
    product_id: String,
    quantity: String,
}

/// A new order being written, kept until it is created (or discarded) so that a reload, a tablet
/// dropping the tab or the desktop window let go in the tray does not lose it.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct OrderDraft {
    customer: String,
    /// Product id and quantity, per line.
    lines: Vec<(String, String)>,
    notes: String,
    /// The products on its lines and their labels, offered whatever the search shows.
    picked: Vec<(String, String)>,
}

const ORDER_DRAFT: &str = "new-order";

#[component]
pub(crate) fn NewOrder() -> impl IntoView {
    view! { <OrderForm existing=None/> }
}

/// A draft's lines and notes, changed before it moves on (prices are the catalog's again).
#[component]
pub(crate) fn EditOrder() -> impl IntoView {
    let id = param_id();
    let data = loader(move || {
        let path = format!("/api/v1/orders/{}", enc(&id.get()));
        async move { api::get::<OrderView>(&path).await }
    });
    view! {
        {show(data, |o: OrderView| {
            if o.status == OrderStatus::Draft {
                view! { <OrderForm existing=Some(o)/> }.into_any()
            } else {
                let back = format!("/orders/{}", o.id);
                view! {
                    <PageHead title=t("edit_order")><A href=back attr:class="btn ghost">{t("back")}</A></PageHead>
                    <p class="notice">{t("only_drafts_edit")}</p>
                }.into_any()
            }
        })}
    }
}

/// Creates an order, or changes the draft `existing`.
#[component]
fn OrderForm(existing: Option<OrderView>) -> impl IntoView {
    let query = use_query_map();
    let is_new = existing.is_none();
    let for_customer = query.with_untracked(|q| q.get("customer").unwrap_or_default());
    // A new order started earlier and not created comes back, unless this page was opened for
    // another customer.
    let restored = is_new
        .then(|| crate::state::load_form::<OrderDraft>(ORDER_DRAFT))
        .flatten()
        .filter(|d| for_customer.is_empty() || d.customer.is_empty() || d.customer == for_customer);
    let was_restored = RwSignal::new(restored.is_some());
    let restored = restored.unwrap_or_default();
    let customer =
        RwSignal::new(if for_customer.is_empty() { restored.customer.clone() } else { for_customer.clone() });
    let customer_q = RwSignal::new(String::new());
    let customer_options = crate::components::customer_options(customer, customer_q);
    // Products are searched (a catalog can be large); the ones already on a line stay offered.
    let product_q = RwSignal::new(String::new());
    let products = loader(move || {
        let path = format!("/api/v1/products?limit=100&sort=name&active=true&q={}", enc(&product_q.get()));
        async move { api::get::<Page<ProductView>>(&path).await }
    });
    // Products on a line: id and label, kept in the choices whatever the search shows.
    let picked = RwSignal::new(match &existing {
        Some(o) => o.lines.iter().map(|l| (l.product_id.clone(), format!("{} · {}", l.name, l.sku))).collect(),
        None => restored.picked,
    });
    let blank = || vec![Line { product_id: String::new(), quantity: "1".into() }];
    let lines = RwSignal::new(match &existing {
        Some(o) if !o.lines.is_empty() => o
            .lines
            .iter()
            .map(|l| Line { product_id: l.product_id.clone(), quantity: l.quantity.to_string() })
            .collect(),
        None if !restored.lines.is_empty() => {
            restored.lines.into_iter().map(|(product_id, quantity)| Line { product_id, quantity }).collect()
        }
        _ => blank(),
    });
    let notes = RwSignal::new(existing.as_ref().map_or(restored.notes, |o| o.notes.clone()));
    if is_new {
        // Kept at every change; opening the form alone writes nothing.
        Effect::new(move |opened: Option<()>| {
            let draft = OrderDraft {
                customer: customer.get(),
                lines: lines.with(|l| l.iter().map(|l| (l.product_id.clone(), l.quantity.clone())).collect()),
                notes: notes.get(),
                picked: picked.get(),
            };
            if opened.is_some() {
                let empty = draft.customer.is_empty()
                    && draft.notes.trim().is_empty()
                    && draft.lines.iter().all(|(p, _)| p.is_empty());
                crate::state::keep_form(ORDER_DRAFT, (!empty).then_some(&draft));
            }
        });
    }
    let discard = move |_| {
        crate::state::keep_form::<OrderDraft>(ORDER_DRAFT, None);
        customer.set(String::new());
        lines.set(blank());
        notes.set(String::new());
        picked.set(Vec::new());
        was_restored.set(false);
    };
    let editing = existing.as_ref().map(|o| (o.id.clone(), o.number.clone()));
    let editing2 = editing.clone();
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let order_lines: Vec<OrderLineInput> = lines
            .get_untracked()
            .into_iter()
            .filter(|l| !l.product_id.is_empty())
            .map(|l| OrderLineInput {
                product_id: l.product_id,
                quantity: l.quantity.trim().parse().unwrap_or(0),
                unit_price: None,
            })
            .collect();
        busy.set(true);
        let navigate = navigate.clone();
        let editing = editing.clone();
        let customer_id = customer.get_untracked();
        let notes = notes.get_untracked();
        spawn_local(async move {
            let r = match editing {
                Some((id, _)) => {
                    let body = UpdateOrder { lines: Some(order_lines), notes: Some(notes), seller_id: None };
                    api::patch::<_, OrderView>(&format!("/api/v1/orders/{}", enc(&id)), &body).await
                }
                None => {
                    let body = CreateOrder { customer_id, branch_id: None, seller_id: None, lines: order_lines, notes };
                    api::post::<_, OrderView>("/api/v1/orders", &body).await
                }
            };
            busy.set(false);
            match r {
                Ok(o) => {
                    if is_new {
                        crate::state::keep_form::<OrderDraft>(ORDER_DRAFT, None);
                    }
                    navigate(&format!("/orders/{}", o.id), Default::default())
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let label = |p: &ProductView| format!("{} · {} · {}", p.name, p.sku, money(&p.price, &p.currency));
    let product_options = move || {
        let mut all = picked.get();
        products.with(|p| {
            if let Some(p) = p.ready() {
                all.extend(
                    p.items
                        .iter()
                        .filter(|x| !picked.with(|k| k.iter().any(|k| k.0 == x.id)))
                        .map(|x| (x.id.clone(), label(x))),
                );
            }
        });
        all.into_iter().map(|(id, text)| view! { <option value=id>{text}</option> }).collect::<Vec<_>>()
    };
    // Remembers a product chosen on a line, so a new search does not take it off the line.
    let pick = move |id: &str| {
        let found = products.with(|p| p.ready().and_then(|p| p.items.iter().find(|x| x.id == id).cloned()));
        if let Some(found) = found {
            picked.update(|k| {
                if !k.iter().any(|x| x.0 == found.id) {
                    k.push((found.id.clone(), label(&found)));
                }
            });
        }
    };
    let line_rows = move || {
        let n = lines.with(Vec::len);
        (0..n)
            .map(|i| {
                let pid = lines.with(|l| l[i].product_id.clone());
                let qty = lines.with(|l| l[i].quantity.clone());
                let opts = product_options();
                view! {
                    <div class="line-row">
                        <label class="field grow"><span>{tf("line_n", &[&(i + 1).to_string()])}</span>
                            <select prop:value=pid on:change=move |ev| { let v = event_target_value(&ev); pick(&v); lines.update(|l| l[i].product_id = v); }>
                                <option value="">{t("choose_product")}</option>{opts}
                            </select>
                        </label>
                        <label class="field"><span>{t("quantity")}</span>
                            <input type="number" min="1" prop:value=qty on:input=move |ev| { let v = event_target_value(&ev); lines.update(|l| l[i].quantity = v); }/>
                        </label>
                        <button type="button" class="btn ghost" aria-label=t("remove_line") on:click=move |_| lines.update(|l| { if l.len() > 1 { l.remove(i); } })>"✕"</button>
                    </div>
                }
            })
            .collect_view()
    };
    let line_error = move || {
        err.with(|e| {
            e.as_ref().and_then(|e| {
                // "lines[2].quantity" is shown as "Line 3: …".
                e.fields.iter().find(|f| f.field.starts_with("lines")).map(|f| {
                    let n = f
                        .field
                        .strip_prefix("lines[")
                        .and_then(|r| r.split(']').next())
                        .and_then(|n| n.parse::<usize>().ok());
                    match n {
                        Some(n) => format!("{}: {}", tf("line_n", &[&(n + 1).to_string()]), f.message),
                        None => f.message.clone(),
                    }
                })
            })
        })
    };
    let (title, back) = match &editing2 {
        Some((id, number)) => (tf("edit_order_n", &[number]), format!("/orders/{id}")),
        None => (t("new_order").to_string(), "/orders".to_string()),
    };
    view! {
        <PageHead title=title><A href=back attr:class="btn ghost">{t("back")}</A></PageHead>
        <form class="card form" on:submit=submit novalidate>
            <Show when=move || was_restored.get()>
                <p class="notice draft-restored">{t("order_draft_restored")}" "
                    <button type="button" class="btn ghost" on:click=discard>{t("discard_draft")}</button>
                </p>
            </Show>
            <Show when=move || is_new>
            <div class="grid two">
                <label class="field"><span>{t("find_customer")}</span><input type="search" bind:value=customer_q/></label>
                <label class="field"><span>{t("customer")}" *"</span>
                    <select name="customer_id" bind:value=customer aria-invalid=move || err.with(|e| e.as_ref().and_then(|e| e.field("customer_id")).is_some()).to_string()>
                        <option value="">{t("choose_customer")}</option>{customer_options}
                    </select>
                    <small class="field-error" role="alert">{move || err.with(|e| e.as_ref().and_then(|e| e.field("customer_id")))}</small>
                </label>
            </div>
            </Show>
            <label class="field"><span>{t("find_product")}</span><input type="search" bind:value=product_q/></label>
            {line_rows}
            <small class="field-error" role="alert">{line_error}</small>
            <button type="button" class="btn" on:click=move |_| lines.update(|l| l.push(Line { product_id: String::new(), quantity: "1".into() }))>{t("add_line")}</button>
            <label class="field"><span>{t("notes")}</span><textarea bind:value=notes></textarea></label>
            <FormError err=err fields=&["customer_id"]/>
            <button class="btn primary" type="submit" disabled=move || busy.get()>{if is_new { t("create_order") } else { t("save") }}</button>
        </form>
    }
}
