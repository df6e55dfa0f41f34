//! Support tickets: the list (active ones first, by status, mine), a new ticket (from an order, a
//! customer or a conversation, or on its own) and a ticket's page (status, priority, who handles
//! it, the history of comments and status changes).

use dashoffice_domain::{
    Permission, TicketPriority, TicketStatus,
    api::{AddTicketComment, CreateTicket, OrderView, Page, StaffView, TicketView, UpdateTicket},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
};

use super::{PageHead, param_id};
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Empty, Field, FormError, MoreButton, loader, pages, show},
    i18n::{datetime, t, tf, when},
    state::{app, watch},
};

pub(crate) fn ticket_status_text(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => t("ticket_open"),
        TicketStatus::InProgress => t("ticket_in_progress"),
        TicketStatus::Waiting => t("ticket_waiting"),
        TicketStatus::Resolved => t("ticket_resolved"),
        TicketStatus::Closed => t("ticket_closed"),
    }
}

fn status_kind(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => "warn",
        TicketStatus::InProgress => "info",
        TicketStatus::Waiting => "muted",
        TicketStatus::Resolved | TicketStatus::Closed => "ok",
    }
}

fn priority_text(p: TicketPriority) -> &'static str {
    match p {
        TicketPriority::Low => t("priority_low"),
        TicketPriority::Normal => t("priority_normal"),
        TicketPriority::High => t("priority_high"),
        TicketPriority::Urgent => t("priority_urgent"),
    }
}

fn priority_kind(p: TicketPriority) -> &'static str {
    match p {
        TicketPriority::Low | TicketPriority::Normal => "muted",
        TicketPriority::High => "warn",
        TicketPriority::Urgent => "danger",
    }
}

fn may_handle() -> bool {
    app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(Permission::HandleTickets)))
}

#[component]
pub(crate) fn Tickets() -> impl IntoView {
    let query = use_query_map();
    // The active ones (open, in progress, waiting) unless a tab says otherwise.
    let status = Memo::new(move |_| query.with(|q| q.get("status").unwrap_or_else(|| "active".into())));
    let mine = RwSignal::new(false);
    let q = RwSignal::new(String::new());
    let shown = RwSignal::new(1u32);
    Effect::new(move |_| {
        q.track();
        status.track();
        mine.track();
        shown.set(1);
    });
    let data = loader(move || {
        watch(&["tickets"]);
        let mut path = format!("/api/v1/tickets?q={}", enc(&q.get()));
        let s = status.get();
        if s != "all" {
            path.push_str(&format!("&status={}", enc(&s)));
        }
        if mine.get() {
            path.push_str("&assignee_id=me");
        }
        let n = shown.get();
        async move { pages::<TicketView>(&path, n).await }
    });
    let tabs = move || {
        let current = status.get();
        [("active", t("tickets_active"))]
            .into_iter()
            .chain(TicketStatus::ALL.iter().map(|s| (s.as_str(), ticket_status_text(*s))))
            .chain([("all", t("all"))])
            .map(|(key, label)| {
                let href = if key == "active" { "/tickets".to_string() } else { format!("/tickets?status={key}") };
                let selected = current == key;
                view! { <a href=href class=if selected { "tab selected" } else { "tab" } aria-current=selected.then_some("page")>{label}</a> }
            })
            .collect_view()
    };
    let may_export = || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(Permission::ImportExport)));
    let export = move |_| {
        spawn_local(async move {
            match api::text("/api/v1/tickets/export").await {
                Ok(csv) => api::download("tickets.csv", &csv, "text/csv"),
                Err(e) => app().say(crate::i18n::error_text(&e)),
            }
        })
    };
    view! {
        <PageHead title=t("nav_tickets")>
            <Show when=may_export>
                <button class="btn" on:click=export>{t("export_csv")}</button>
            </Show>
            <Show when=may_handle><A href="/tickets/new" attr:class="btn primary">{t("new_ticket")}</A></Show>
        </PageHead>
        <nav class="tabs" aria-label=t("filter_status")>{tabs}</nav>
        <div class="filters">
            <input type="search" placeholder=t("search_tickets") aria-label=t("search_tickets") bind:value=q/>
            <label class="check"><input type="checkbox" bind:checked=mine/>{t("assigned_to_me")}</label>
        </div>
        {show(data, |p: Page<TicketView>| {
            if p.items.is_empty() {
                return view! { <Empty text=t("no_tickets")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|x| {
                    let href = format!("/tickets/{}", x.id);
                    view! {
                        <tr>
                            <td><A href=href>{x.number.clone()}</A></td>
                            <td>{x.subject.clone()}</td>
                            <td>{x.customer_name.clone()}</td>
                            <td><Badge kind=priority_kind(x.priority) text=priority_text(x.priority)/></td>
                            <td><Badge kind=status_kind(x.status) text=ticket_status_text(x.status)/></td>
                            <td>{x.assignee_name.clone().unwrap_or_default()}</td>
                            <td>{x.status.is_active().then(|| when(x.due_at))}{x.overdue.then(|| view! { " "<Badge kind="danger" text=t("overdue")/> })}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("number")}</th><th>{t("subject")}</th><th>{t("customer")}</th><th>{t("priority")}</th>
                        <th>{t("state")}</th><th>{t("ticket_assignee")}</th><th>{t("due")}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
            .into_any()
        })}
        <MoreButton data=data pages=shown/>
    }
}

/// A new ticket being written, kept until it is opened (or discarded), as a new order is.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct TicketDraft {
    order: String,
    conversation: String,
    customer: String,
    subject: String,
    description: String,
    priority: String,
}

const TICKET_DRAFT: &str = "new-ticket";

/// A new ticket; `?order=`, `?customer=` and `?conversation=` say what it is about.
#[component]
pub(crate) fn NewTicket() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.with_untracked(|q| q.get(k).unwrap_or_default());
    let order_id = param("order");
    let conversation_id = param("conversation");
    let for_customer = param("customer");
    // One started about the same order or conversation (and customer) comes back.
    let restored = crate::state::load_form::<TicketDraft>(TICKET_DRAFT).filter(|d| {
        d.order == order_id
            && d.conversation == conversation_id
            && (for_customer.is_empty() || d.customer.is_empty() || d.customer == for_customer)
    });
    let was_restored = RwSignal::new(restored.is_some());
    let d = restored.unwrap_or_default();
    let customer = RwSignal::new(if for_customer.is_empty() { d.customer } else { for_customer });
    let subject = RwSignal::new(d.subject);
    let description = RwSignal::new(d.description);
    let priority = RwSignal::new(Some(d.priority).filter(|p| !p.is_empty()).unwrap_or_else(|| "normal".into()));
    let (draft_order, draft_conversation) = (order_id.clone(), conversation_id.clone());
    // Kept at every change; opening the form alone writes nothing.
    Effect::new(move |opened: Option<()>| {
        let draft = TicketDraft {
            order: draft_order.clone(),
            conversation: draft_conversation.clone(),
            customer: customer.get(),
            subject: subject.get(),
            description: description.get(),
            priority: priority.get(),
        };
        if opened.is_some() {
            let empty = draft.subject.trim().is_empty() && draft.description.trim().is_empty();
            crate::state::keep_form(TICKET_DRAFT, (!empty).then_some(&draft));
        }
    });
    let discard = move |_| {
        crate::state::keep_form::<TicketDraft>(TICKET_DRAFT, None);
        subject.set(String::new());
        description.set(String::new());
        priority.set("normal".into());
        was_restored.set(false);
    };
    let customer_q = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let customer_options = crate::components::customer_options(customer, customer_q);
    let about_order = order_id.clone();
    let order = loader(move || {
        let path = format!("/api/v1/orders/{}", enc(&about_order));
        let none = about_order.is_empty();
        async move { if none { Ok(None) } else { api::get::<OrderView>(&path).await.map(Some) } }
    });
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        busy.set(true);
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        let body = CreateTicket {
            subject: subject.get_untracked(),
            description: description.get_untracked(),
            priority: Some(priority.get_untracked()),
            customer_id: some(customer.get_untracked()),
            order_id: some(order_id.clone()),
            conversation_id: some(conversation_id.clone()),
            assignee_id: None,
        };
        let navigate = navigate.clone();
        spawn_local(async move {
            let r = api::post::<_, TicketView>("/api/v1/tickets", &body).await;
            busy.set(false);
            match r {
                Ok(x) => {
                    crate::state::keep_form::<TicketDraft>(TICKET_DRAFT, None);
                    navigate(&format!("/tickets/{}", x.id), Default::default())
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let priorities = TicketPriority::ALL
        .iter()
        .map(|p| view! { <option value=p.as_str() selected=p.as_str() == priority.get_untracked()>{priority_text(*p)}</option> })
        .collect_view();
    view! {
        <PageHead title=t("new_ticket")><A href="/tickets" attr:class="btn ghost">{t("back")}</A></PageHead>
        <form class="card form" on:submit=submit novalidate>
            <Show when=move || was_restored.get()>
                <p class="notice draft-restored">{t("ticket_draft_restored")}" "
                    <button type="button" class="btn ghost" on:click=discard>{t("discard_draft")}</button>
                </p>
            </Show>
            {move || order.with(|o| o.ready().cloned().flatten()).map(|o| view! {
                <p>{t("about_order")}": "<A href=format!("/orders/{}", o.id)>{o.number.clone()}</A>" · "{o.customer_name.clone()}</p>
            })}
            <Field label=t("subject") name="subject" value=subject err=err required=true placeholder=""/>
            <div class="grid two">
                <label class="field"><span>{t("find_customer")}</span><input type="search" bind:value=customer_q/></label>
                <label class="field"><span>{t("customer")}</span>
                    <select name="customer_id" bind:value=customer>
                        <option value="">{t("no_customer")}</option>{customer_options}
                    </select>
                    <small class="field-error" role="alert">{move || err.with(|e| e.as_ref().and_then(|e| e.field("customer_id")))}</small>
                </label>
            </div>
            <label class="field"><span>{t("priority")}</span>
                <select name="priority" bind:value=priority>{priorities}</select>
            </label>
            <Field label=t("description") name="description" value=description err=err rows=5/>
            <FormError err=err fields=&["subject", "description", "customer_id"]/>
            <button class="btn primary" type="submit" disabled=move || busy.get()>{t("open_ticket")}</button>
        </form>
    }
}

/// Who the relay's WhatsApp service writes as (the bot opens tickets from complaints).
const WHATSAPP_BOT: &str = "whatsapp";

#[component]
pub(crate) fn TicketDetail() -> impl IntoView {
    let id = param_id();
    let data = loader(move || {
        watch(&["tickets"]);
        let path = format!("/api/v1/tickets/{}", enc(&id.get()));
        async move { api::get::<TicketView>(&path).await }
    });
    let staff = loader(|| api::get::<Page<StaffView>>("/api/v1/staff?limit=500"));
    let err = RwSignal::new(None::<ApiError>);
    let comment = RwSignal::new(String::new());
    // The comment goes to the customer on WhatsApp as well.
    let to_customer = RwSignal::new(false);
    // The comment's own error, shown by its form (a closed WhatsApp window, no conversation).
    let comment_err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let changing = RwSignal::new(false);
    // The subject and description being corrected (shown instead of them while `editing`).
    let editing = RwSignal::new(false);
    let new_subject = RwSignal::new(String::new());
    let new_description = RwSignal::new(String::new());
    let change = move |body: UpdateTicket| {
        err.set(None);
        changing.set(true);
        let path = format!("/api/v1/tickets/{}", enc(&id.get_untracked()));
        spawn_local(async move {
            let r = api::patch::<_, TicketView>(&path, &body).await;
            // Refused: the ticket as it is, so a select does not keep showing the rejected choice.
            let shown = match r {
                Ok(x) => {
                    editing.set(false);
                    Ok(x)
                }
                Err(e) => {
                    err.set(Some(e));
                    api::get::<TicketView>(&path).await
                }
            };
            if let Ok(x) = shown {
                data.set(crate::components::Load::Ready(x));
            }
            changing.set(false);
        });
    };
    let send_comment = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        comment_err.set(None);
        busy.set(true);
        let path = format!("/api/v1/tickets/{}/comments", enc(&id.get_untracked()));
        let body = AddTicketComment { body: comment.get_untracked(), notify_customer: to_customer.get_untracked() };
        spawn_local(async move {
            let r = api::post::<_, TicketView>(&path, &body).await;
            busy.set(false);
            match r {
                Ok(x) => {
                    comment.set(String::new());
                    to_customer.set(false);
                    data.set(crate::components::Load::Ready(x));
                }
                Err(e) => comment_err.set(Some(e)),
            }
        });
    };
    view! {
        {show(data, move |x: TicketView| {
            let next = x
                .next
                .iter()
                .map(|s| {
                    let s = *s;
                    let label = if s == TicketStatus::Open && !x.status.is_active() {
                        t("reopen").to_string()
                    } else {
                        tf("ticket_move_to", &[ticket_status_text(s)])
                    };
                    let kind = if matches!(s, TicketStatus::Resolved | TicketStatus::Closed) { "btn primary" } else { "btn" };
                    view! {
                        <button type="button" class=kind disabled=move || changing.get()
                            on:click=move |_| change(UpdateTicket { status: Some(s.as_str().into()), ..Default::default() })>
                            {label}
                        </button>
                    }
                })
                .collect_view();
            let assignee = x.assignee_id.clone().unwrap_or_default();
            let assignee_name = x.assignee_name.clone().unwrap_or_default();
            let staff_options = move || {
                let assignee = assignee.clone();
                staff.with(|s| {
                    s.ready().map(|p| {
                        // Someone the list leaves out (archived, or of another branch) still shows
                        // as the one handling it.
                        let missing = (!assignee.is_empty() && !p.items.iter().any(|s| s.id == assignee))
                            .then(|| view! { <option value=assignee.clone() selected=true>{assignee_name.clone()}</option> });
                        let listed = p
                            .items
                            .iter()
                            .filter(|s| !s.archived)
                            .map(|s| view! { <option value=s.id.clone() selected=s.id == assignee>{s.name.clone()}</option> })
                            .collect_view();
                        view! { {missing}{listed} }
                    })
                })
            };
            let current_priority = x.priority;
            let priorities = TicketPriority::ALL
                .iter()
                .map(|p| view! { <option value=p.as_str() selected=*p == current_priority>{priority_text(*p)}</option> })
                .collect_view();
            let history = x
                .comments
                .iter()
                .map(|c| {
                    let who = if !c.author_name.is_empty() {
                        c.author_name.clone()
                    } else if c.author_id == WHATSAPP_BOT {
                        t("whatsapp_bot").to_string()
                    } else {
                        t("someone").to_string()
                    };
                    let sent = c.message_id.is_some().then(|| view! { " · "<span class="sent-to-customer">{t("sent_to_customer")}</span> });
                    match c.status {
                        Some(s) => view! {
                            <li class="ticket-event">{tf("ticket_moved_by", &[&who, ticket_status_text(s)])}" · "{datetime(c.created_at)}</li>
                        }
                        .into_any(),
                        None => view! {
                            <li class="ticket-comment"><strong>{who}</strong>" · "{datetime(c.created_at)}{sent}<p>{c.body.clone()}</p></li>
                        }
                        .into_any(),
                    }
                })
                .collect_view();
            let customer = x.customer_id.clone().map(|c| {
                let name = if x.customer_name.is_empty() { t("customer").to_string() } else { x.customer_name.clone() };
                view! { <p>{t("customer")}": "<A href=format!("/customers/{c}")>{name}</A></p> }
            });
            let order = x.order_id.clone().map(|o| {
                let number = x.order_number.clone().unwrap_or_else(|| t("order").to_string());
                view! { <p>{t("order")}": "<A href=format!("/orders/{o}")>{number}</A></p> }
            });
            // A customer to write to on WhatsApp (the server says so if they have no conversation).
            let reachable = x.conversation_id.is_some() || x.customer_id.is_some();
            let conversation = x.conversation_id.clone().map(|c| {
                view! { <p><A href=format!("/conversations/{c}")>{t("see_conversation")}</A></p> }
            });
            view! {
                <section class="card">
                    <div class="page-head">
                        <h2>{x.number.clone()}" "<Badge kind=status_kind(x.status) text=ticket_status_text(x.status)/>
                            " "<Badge kind=priority_kind(x.priority) text=priority_text(x.priority)/>
                            {x.overdue.then(|| view! { " "<Badge kind="danger" text=t("overdue")/> })}</h2>
                        <div class="actions">{may_handle().then_some(next)}</div>
                    </div>
                    {
                        let (subject, description) = (x.subject.clone(), x.description.clone());
                        move || if editing.get() {
                            let save = move |ev: leptos::ev::SubmitEvent| {
                                ev.prevent_default();
                                change(UpdateTicket {
                                    subject: Some(new_subject.get_untracked()),
                                    description: Some(new_description.get_untracked()),
                                    ..Default::default()
                                });
                            };
                            view! {
                                <form class="form ticket-edit" on:submit=save novalidate>
                                    <Field label=t("subject") name="subject" value=new_subject err=err required=true/>
                                    <Field label=t("description") name="description" value=new_description err=err rows=4/>
                                    <div class="row-item">
                                        <button class="btn primary" type="submit" disabled=move || changing.get()>{t("save")}</button>
                                        <button class="btn ghost" type="button" on:click=move |_| editing.set(false)>{t("cancel")}</button>
                                    </div>
                                </form>
                            }
                            .into_any()
                        } else {
                            let (s2, d2) = (subject.clone(), description.clone());
                            let edit = move |_| {
                                new_subject.set(s2.clone());
                                new_description.set(d2.clone());
                                err.set(None);
                                editing.set(true);
                            };
                            view! {
                                <div class="ticket-text">
                                    <div class="ticket-title">
                                        <h1 class="ticket-subject">{subject.clone()}</h1>
                                        {may_handle().then(|| view! { <button type="button" class="btn ghost" on:click=edit>{t("edit")}</button> })}
                                    </div>
                                    {(!description.is_empty()).then(|| view! { <p class="notes">{description.clone()}</p> })}
                                </div>
                            }
                            .into_any()
                        }
                    }
                    {customer}{order}{conversation}
                    <p>{tf("ticket_opened_due", &[&datetime(x.created_at), &datetime(x.due_at)])}</p>
                    {may_handle().then(|| view! {
                        <div class="grid two">
                            <label class="field"><span>{t("ticket_assignee")}</span>
                                <select name="assignee_id" on:change=move |ev| change(UpdateTicket { assignee_id: Some(event_target_value(&ev)), ..Default::default() })>
                                    <option value="">{t("nobody")}</option>{staff_options}
                                </select>
                            </label>
                            <label class="field"><span>{t("priority")}</span>
                                <select name="priority" on:change=move |ev| change(UpdateTicket { priority: Some(event_target_value(&ev)), ..Default::default() })>
                                    {priorities}
                                </select>
                            </label>
                        </div>
                    })}
                    <FormError err=err fields=&["subject", "description"]/>
                </section>
                <section class="card">
                    <h2>{t("history")}</h2>
                    <ol class="list ticket-history">{history}</ol>
                    <Show when=may_handle>
                        <form class="form" on:submit=send_comment novalidate>
                            <Field label=t("add_comment") name="body" value=comment err=comment_err rows=3/>
                            {reachable.then(|| view! {
                                <label class="check"><input type="checkbox" name="notify_customer" bind:checked=to_customer/>{t("send_to_customer")}</label>
                            })}
                            <FormError err=comment_err fields=&["body"]/>
                            <button class="btn primary" type="submit" disabled=move || busy.get()>{t("comment")}</button>
                        </form>
                    </Show>
                </section>
            }
        })}
    }
}
