//! Customers: search, create, profile with orders and conversations, tags, notes, merge.

use dashoffice_domain::{
    api::{
        CreateCustomer, CustomerView, MergeCustomers, OrderView, Page, StartConversation, TicketView, UpdateCustomer,
    },
    inbox::{BroadcastReport, BroadcastSummary, ConversationView, SendBroadcast, TemplateView},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_navigate};

use super::{PageHead, param_id, split_tags};
use crate::{
    api::{self, ApiError, enc},
    components::{
        Badge, Empty, ErrorBox, Field, FormError, Load, MoreButton, loader, pages, rows_or_empty, show, status_text,
    },
    i18n::{money, t, when},
    state::{app, watch},
};

#[component]
pub(crate) fn Customers() -> impl IntoView {
    let q = RwSignal::new(String::new());
    let shown = RwSignal::new(1u32);
    Effect::new(move |_| {
        q.track();
        shown.set(1);
    });
    let data = loader(move || {
        watch(&["customers"]);
        let path = format!("/api/v1/customers?sort=name&q={}", enc(&q.get()));
        let n = shown.get();
        async move { pages::<CustomerView>(&path, n).await }
    });
    let adding = RwSignal::new(false);
    let broadcasting = RwSignal::new(false);
    let may_broadcast =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::ManageBots)));
    let csv = crate::components::CsvTools::new("customers");
    view! {
        <PageHead title=t("nav_customers")>
            {csv.buttons()}
            <Show when=may_broadcast>
                <button class="btn" id="open-broadcast" on:click=move |_| broadcasting.update(|a| *a = !*a)
                    aria-expanded=move || broadcasting.get().to_string()>{t("broadcast")}</button>
            </Show>
            <button class="btn primary" on:click=move |_| adding.update(|a| *a = !*a) aria-expanded=move || adding.get().to_string()>{t("new_customer")}</button>
        </PageHead>
        {csv.report()}
        {move || adding.get().then(|| view! { <NewCustomer done=adding/> })}
        {move || broadcasting.get().then(|| view! { <Broadcast/> })}
        <div class="filters"><input type="search" placeholder=t("search_customers") aria-label=t("search_customers") bind:value=q/></div>
        {show(data, |p: Page<CustomerView>| {
            if p.items.is_empty() {
                return view! { <Empty text=t("no_customers")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|c| {
                    let href = format!("/customers/{}", c.id);
                    let tags = c.tags.iter().map(|tg| view! { <Badge kind="muted" text=tg.clone()/> }).collect_view();
                    view! {
                        <tr>
                            <td><A href=href>{c.name.clone()}</A></td>
                            <td>{c.phone.clone().unwrap_or_default()}</td>
                            <td>{c.email.clone().unwrap_or_default()}</td>
                            <td>{tags}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("name")}</th><th>{t("phone")}</th><th>{t("email")}</th><th>{t("tags")}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
            .into_any()
        })}
        <MoreButton data=data pages=shown/>
    }
}

/// A WhatsApp broadcast: one approved template to every customer with a tag, and what it did.
#[component]
fn Broadcast() -> impl IntoView {
    let tag = RwSignal::new(String::new());
    let template = RwSignal::new(String::new());
    let params = RwSignal::new(String::new());
    // Empty: now; else a local date and time for the relay to send it then.
    let send_at = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let report = RwSignal::new(None::<BroadcastReport>);
    let templates = loader(move || async move { api::get::<Vec<TemplateView>>("/api/v1/whatsapp/templates").await });
    // The broadcasts sent before, following their messages' delivery.
    let past = loader(move || {
        watch(&["messages"]);
        async move { api::get::<Vec<BroadcastSummary>>("/api/v1/whatsapp/broadcasts").await }
    });
    // The first template is chosen until another is.
    Effect::new(move |_| {
        if let Load::Ready(list) = templates.get()
            && template.get_untracked().is_empty()
            && let Some(first) = list.first()
        {
            template.set(format!("{}|{}", first.name, first.language));
        }
    });
    // One id per form: pressing Send again after a failure never sends anyone a second message.
    let id = StoredValue::new(format!("ui-{}", js_sys::Date::now() as u64));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        // The browser reads a date and time without a zone as local time.
        let at = Some(send_at.get_untracked())
            .filter(|v| !v.trim().is_empty())
            .map(|v| js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&v)).get_time())
            .filter(|ms| ms.is_finite())
            .map(|ms| ms as i64);
        let question = match at {
            Some(ms) => {
                crate::i18n::tf("confirm_broadcast_at", &[tag.get_untracked().trim(), &crate::i18n::datetime(ms)])
            }
            None => crate::i18n::tf("confirm_broadcast", &[tag.get_untracked().trim()]),
        };
        if !crate::components::confirm(&question) {
            return;
        }
        let body = SendBroadcast {
            tag: tag.get_untracked(),
            // The option's value is "name|language" (a template may exist in several).
            template: template.get_untracked().split('|').next().unwrap_or_default().to_string(),
            language: template.get_untracked().split('|').nth(1).map(str::to_string),
            params: params
                .get_untracked()
                .split('|')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            branch_id: None,
            id: Some(id.get_value()),
            send_at: at,
        };
        busy.set(true);
        spawn_local(async move {
            match api::post::<_, BroadcastReport>("/api/v1/whatsapp/broadcasts", &body).await {
                Ok(r) => {
                    report.set(Some(r));
                    // The next broadcast from this form is a new one.
                    id.set_value(format!("ui-{}", js_sys::Date::now() as u64));
                    crate::state::changed(&["messages", "conversations"]);
                }
                Err(e) => err.set(Some(e)),
            }
            busy.set(false);
        });
    };
    // A scheduled broadcast called off before its time.
    let cancel = move |id: String| {
        if !crate::components::confirm(t("confirm_cancel_broadcast")) {
            return;
        }
        err.set(None);
        spawn_local(async move {
            match api::send("DELETE", &format!("/api/v1/whatsapp/broadcasts/{}", enc(&id)), None, "").await {
                Ok(_) => crate::state::changed(&["messages"]),
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let options = move || {
        templates.with(|l| {
            l.ready().map(|list| {
                list.iter()
                    .map(|tp| {
                        let value = format!("{}|{}", tp.name, tp.language);
                        view! { <option value=value>{format!("{} ({}) — {}", tp.name, tp.language, tp.body)}</option> }
                    })
                    .collect_view()
            })
        })
    };
    let outcome = move || {
        report.get().map(|r| {
            let left_out = r.skipped.len().to_string();
            let skipped = r
                .skipped
                .into_iter()
                .map(|s| {
                    let why =
                        if s.reason == "opted_out" { t("broadcast_opted_out") } else { t("broadcast_no_whatsapp") };
                    let href = format!("/customers/{}", s.customer_id);
                    view! { <li data-reason=s.reason><A href=href>{s.name}</A>" — "{why}</li> }
                })
                .collect_view();
            let said = match r.scheduled_at {
                Some(at) => {
                    crate::i18n::tf("broadcast_scheduled", &[&crate::i18n::datetime(at), &r.audience.to_string()])
                }
                None => crate::i18n::tf("broadcast_done", &[&r.queued.to_string(), &r.already.to_string(), &left_out]),
            };
            view! {
                <div id="broadcast-report" role="status">
                    <p>{said}</p>
                    <ul>{skipped}</ul>
                </div>
            }
        })
    };
    view! {
        <form class="card form" id="broadcast" on:submit=submit novalidate>
            <h2>{t("broadcast")}</h2>
            <p class="muted">{t("broadcast_help")}</p>
            <div class="grid three">
                <Field label=t("broadcast_tag") name="tag" value=tag err=err required=true/>
                <label class="field" for="f-template"><span>{t("template")}</span>
                    <select id="f-template" name="template" bind:value=template>{options}</select>
                </label>
                <Field label=t("template_params") name="params" value=params err=err placeholder="{name} | 20%"/>
                <label class="field" for="f-send_at"><span>{t("broadcast_send_at")}</span>
                    <input id="f-send_at" name="send_at" type="datetime-local" bind:value=send_at/>
                </label>
            </div>
            <FormError err=err fields=&["tag", "params", "send_at"]/>
            <button class="btn primary" type="submit" disabled=move || busy.get()>{t("broadcast_send")}</button>
            {outcome}
            {show(past, move |list: Vec<BroadcastSummary>| {
                (!list.is_empty()).then(|| {
                    let rows = list
                        .into_iter()
                        .map(|b| {
                            let state = match b.state.as_str() {
                                "scheduled" => t("bstate_scheduled"),
                                "cancelled" => t("bstate_cancelled"),
                                "failed" => t("bstate_failed"),
                                _ => t("bstate_sent"),
                            };
                            let id = b.id.clone();
                            let cancel = (b.state == "scheduled").then(|| view! {
                                <button type="button" class="btn ghost broadcast-cancel" on:click=move |_| cancel(id.clone())>{t("cancel")}</button>
                            });
                            view! {
                                <tr data-id=b.id.clone() data-state=b.state.clone()>
                                    <td>{when(b.at)}</td>
                                    <td>{state}{b.error.map(|e| format!(" — {e}"))}{cancel}</td>
                                    <td>{b.template.clone()}{(!b.tag.is_empty()).then(|| format!(" · {}", b.tag))}</td><td class="num">{b.total}</td>
                                    <td class="num">{b.queued}</td><td class="num">{b.sent}</td><td class="num">{b.delivered}</td>
                                    <td class="num">{b.read}</td><td class="num">{b.failed}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <h3>{t("broadcasts_sent")}</h3>
                        <div class="table-wrap"><table class="table" id="broadcasts">
                            <thead><tr><th>{t("broadcast_when")}</th><th>{t("status")}</th><th>{t("template")}</th><th>{t("broadcast_total")}</th>
                                <th>{t("msg_queued")}</th><th>{t("msg_sent")}</th><th>{t("msg_delivered")}</th>
                                <th>{t("msg_read")}</th><th>{t("msg_failed")}</th></tr></thead>
                            <tbody>{rows}</tbody>
                        </table></div>
                    }
                })
            })}
        </form>
    }
}

#[component]
fn NewCustomer(done: RwSignal<bool>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let opt = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let body = CreateCustomer {
            name: name.get_untracked(),
            phone: opt(phone.get_untracked()),
            email: opt(email.get_untracked()),
            tags: Vec::new(),
            notes: String::new(),
            wa_id: None,
            ..Default::default()
        };
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::post::<_, CustomerView>("/api/v1/customers", &body).await {
                Ok(c) => {
                    done.set(false);
                    navigate(&format!("/customers/{}", c.id), Default::default());
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card form" on:submit=submit novalidate>
            <div class="grid three">
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("phone") name="phone" value=phone err=err kind="tel"/>
                <Field label=t("email") name="email" value=email err=err kind="email"/>
            </div>
            <FormError err=err fields=&["name", "phone", "email"]/>
            <button class="btn primary" type="submit">{t("save")}</button>
        </form>
    }
}

#[component]
pub(crate) fn CustomerDetail() -> impl IntoView {
    let id = param_id();
    let data = loader(move || {
        watch(&["customers"]);
        let path = format!("/api/v1/customers/{}", id.get());
        async move { api::get::<CustomerView>(&path).await }
    });
    let name = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let tags = RwSignal::new(String::new());
    let notes = RwSignal::new(String::new());
    let tax_id = RwSignal::new(String::new());
    let address = RwSignal::new(String::new());
    let lang = RwSignal::new(String::new());
    let fields = [name, phone, email, tags, notes, tax_id, address, lang];
    let err = RwSignal::new(None::<ApiError>);
    // The form follows the record as it changes elsewhere, but never throws away what is being
    // typed: it is refilled only when it still shows what was last filled in (or another customer
    // was opened).
    let filled = StoredValue::new(None::<(String, [String; 8])>);
    Effect::new(move |_| {
        if let Load::Ready(c) = data.get() {
            let fresh = [
                c.name,
                c.phone.unwrap_or_default(),
                c.email.unwrap_or_default(),
                c.tags.join(", "),
                c.notes,
                c.tax_id,
                c.address,
                c.lang,
            ];
            let typed = fields.map(|s| s.get_untracked());
            let untouched = filled.get_value().is_none_or(|(id, f)| id != c.id || f == typed);
            if untouched {
                for (s, v) in fields.into_iter().zip(fresh.clone()) {
                    s.set(v);
                }
            }
            filled.set_value(Some((c.id, fresh)));
        }
    });
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let body = UpdateCustomer {
            name: Some(name.get_untracked()),
            phone: Some(phone.get_untracked()),
            email: Some(email.get_untracked()),
            tags: Some(split_tags(&tags.get_untracked())),
            notes: Some(notes.get_untracked()),
            wa_id: None,
            tax_id: Some(tax_id.get_untracked()),
            address: Some(address.get_untracked()),
            lang: Some(lang.get_untracked()).filter(|l| !l.is_empty()),
        };
        let path = format!("/api/v1/customers/{}", id.get_untracked());
        spawn_local(async move {
            match api::patch::<_, CustomerView>(&path, &body).await {
                Ok(c) => {
                    // Saved: show the record as stored (a phone number normalised, …).
                    filled.set_value(None);
                    data.set(Load::Ready(c));
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let orders = loader(move || {
        watch(&["orders"]);
        let path = format!("/api/v1/orders?limit=50&sort=-created_at&customer_id={}", enc(&id.get()));
        async move { api::get::<Page<OrderView>>(&path).await }
    });
    let convs = loader(move || {
        // A conversation's last message and activity come from its messages.
        watch(&["conversations", "messages"]);
        let path = format!("/api/v1/conversations?limit=20&customer_id={}", enc(&id.get()));
        async move { api::get::<Page<ConversationView>>(&path).await }
    });
    let tickets = loader(move || {
        watch(&["tickets"]);
        let path = format!("/api/v1/tickets?limit=20&customer_id={}", enc(&id.get()));
        async move { api::get::<Page<TicketView>>(&path).await }
    });
    let merge_q = RwSignal::new(String::new());
    let merge_from = RwSignal::new(String::new());
    let merge_err = RwSignal::new(None::<ApiError>);
    let candidates = loader(move || {
        let q = merge_q.get();
        async move {
            if q.trim().len() < 2 {
                return Ok(Vec::new());
            }
            api::get::<Page<CustomerView>>(&format!("/api/v1/customers?limit=20&q={}", enc(&q))).await.map(|p| p.items)
        }
    });
    let merge = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        merge_err.set(None);
        if !merge_from.get_untracked().is_empty() && !crate::components::confirm(t("confirm_merge")) {
            return;
        }
        let body = MergeCustomers { from_id: merge_from.get_untracked() };
        let path = format!("/api/v1/customers/{}/merge", id.get_untracked());
        spawn_local(async move {
            match api::post::<_, CustomerView>(&path, &body).await {
                Ok(c) => {
                    data.set(Load::Ready(c));
                    merge_q.set(String::new());
                    app().say(t("customers_merged"));
                }
                Err(e) => merge_err.set(Some(e)),
            }
        });
    };
    // Writing first on WhatsApp: their conversation (a new one when there is none), where the
    // composer offers the approved templates until they answer.
    let may_converse =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::Converse)));
    let wa_err = RwSignal::new(None::<ApiError>);
    let opening = RwSignal::new(false);
    let navigate = use_navigate();
    let write_on_whatsapp = move |_| {
        wa_err.set(None);
        opening.set(true);
        let path = format!("/api/v1/customers/{}/conversation", enc(&id.get_untracked()));
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::post::<_, ConversationView>(&path, &StartConversation::default()).await {
                Ok(c) => navigate(&format!("/conversations/{}", c.id), Default::default()),
                Err(e) => wa_err.set(Some(e)),
            }
            opening.set(false);
        });
    };
    view! {
        <PageHead title=t("customer")>
            <Show when=may_converse>
                <button type="button" class="btn" id="customer-whatsapp" disabled=move || opening.get()
                    on:click=write_on_whatsapp.clone()>{t("write_on_whatsapp")}</button>
            </Show>
            <A href=move || format!("/orders/new?customer={}", id.get()) attr:class="btn primary">{t("new_order")}</A>
            <A href=move || format!("/tickets/new?customer={}", id.get()) attr:class="btn">{t("new_ticket")}</A>
            <A href="/customers" attr:class="btn ghost">{t("back")}</A>
        </PageHead>
        {move || match data.get() {
            Load::Failed(e) => Some(view! { <ErrorBox err=e/> }),
            _ => None,
        }}
        {move || wa_err.get().map(|e| view! { <ErrorBox err=e/> })}
        {move || data.with(|d| d.ready().and_then(|c| c.merged_into.clone())).map(|to| {
            let href = format!("/customers/{to}");
            view! { <p class="notice">{t("customer_was_merged")}" "<A href=href>{t("open")}</A></p> }
        })}
        <form class="card form" on:submit=save novalidate>
            <div class="grid three">
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("phone") name="phone" value=phone err=err kind="tel"/>
                <Field label=t("email") name="email" value=email err=err kind="email"/>
            </div>
            <div class="grid two">
                <Field label=t("tax_id") name="tax_id" value=tax_id err=err placeholder="XAXX010101000"/>
                <Field label=t("billing_address") name="address" value=address err=err rows=2/>
            </div>
            <label class="field inline" for="f-lang"><span>{t("customer_email_lang")}</span>
                <select id="f-lang" name="lang" prop:value=move || lang.get() on:change=move |ev| lang.set(event_target_value(&ev))>
                    <option value="es">"Español"</option>
                    <option value="en">"English"</option>
                </select>
            </label>
            <Field label=t("tags_hint") name="tags" value=tags err=err/>
            <label class="field"><span>{t("notes")}</span><textarea name="notes" bind:value=notes></textarea></label>
            <FormError err=err fields=&["name", "phone", "email", "tags", "tax_id", "address", "lang"]/>
            <button class="btn primary" type="submit">{t("save")}</button>
        </form>
        <div class="grid two">
            <section class="card"><h2>{t("nav_orders")}</h2>
                {show(orders, |p: Page<OrderView>| rows_or_empty(p.items, "no_orders", |o| {
                    let href = format!("/orders/{}", o.id);
                    view! { <div class="row-item"><A href=href>{o.number.clone()}</A><span>{status_text(o.status.as_str())}</span><span class="num">{money(&o.total, &o.currency)}</span></div> }
                }))}
            </section>
            <section class="card"><h2>{t("nav_conversations")}</h2>
                {show(convs, |p: Page<ConversationView>| rows_or_empty(p.items, "no_conversations", |c| {
                    let href = format!("/conversations/{}", c.id);
                    view! { <div class="row-item"><A href=href>{c.last_message.clone()}</A><span>{when(c.last_message_at)}</span></div> }
                }))}
            </section>
        </div>
        <section class="card"><h2>{t("nav_tickets")}</h2>
            {show(tickets, |p: Page<TicketView>| rows_or_empty(p.items, "no_tickets", |x| {
                let href = format!("/tickets/{}", x.id);
                view! {
                    <div class="row-item"><A href=href>{x.number.clone()}</A><span>{x.subject.clone()}</span>
                        <span>{super::tickets::ticket_status_text(x.status)}</span><span>{when(x.created_at)}</span></div>
                }
            }))}
        </section>
        <form class="card form" on:submit=merge novalidate>
            <h2>{t("merge_duplicate")}</h2>
            <p class="muted">{t("merge_help")}</p>
            <div class="grid two">
                <label class="field"><span>{t("find_duplicate")}</span><input type="search" bind:value=merge_q/></label>
                <label class="field"><span>{t("duplicate")}</span>
                    <select name="from_id" bind:value=merge_from>
                        <option value="">{t("choose_customer")}</option>
                        {move || candidates.with(|c| c.ready().map(|c| c.iter().filter(|c| c.id != id.get()).map(|c| {
                            view! { <option value=c.id.clone()>{format!("{} · {}", c.name, c.phone.clone().unwrap_or_default())}</option> }
                        }).collect_view()))}
                    </select>
                    <small class="field-error" role="alert">{move || merge_err.with(|e| e.as_ref().and_then(|e| e.field("from_id")))}</small>
                </label>
            </div>
            <FormError err=merge_err fields=&["from_id"]/>
            <button class="btn danger" type="submit">{t("merge")}</button>
        </form>
    }
}
