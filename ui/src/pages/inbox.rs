//! The WhatsApp inbox: conversations with unread counts, the thread with media and delivery ticks,
//! replies (templates when the 24-hour window is closed), canned responses, notes, assignment,
//! bot or human, labels.

use dashoffice_domain::{
    api::{Page, StaffView, TicketView},
    inbox::{
        CannedResponse, ConversationState, ConversationThread, ConversationView, MessageStatus, MessageView,
        SendMessage, TemplateView, UpdateConversation,
    },
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_navigate};

use super::{PageHead, param_id, split_tags};
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Empty, ErrorBox, FormError, Load, MoreButton, loader, pages, pending, status_text},
    i18n::{datetime, t, tf, when},
    state::{app, watch},
};

fn state_kind(s: ConversationState) -> &'static str {
    match s {
        ConversationState::Pending => "info",
        ConversationState::Open => "ok",
        ConversationState::Resolved => "muted",
    }
}

fn state_key(s: ConversationState) -> &'static str {
    match s {
        ConversationState::Pending => "pending",
        ConversationState::Open => "open",
        ConversationState::Resolved => "resolved",
    }
}

#[component]
pub(crate) fn Inbox() -> impl IntoView {
    let id = param_id();
    let filter = RwSignal::new(String::new());
    let q = RwSignal::new(String::new());
    let shown = RwSignal::new(1u32);
    Effect::new(move |_| {
        q.track();
        filter.track();
        shown.set(1);
    });
    let list = loader(move || {
        watch(&["conversations", "messages"]);
        let f = filter.get();
        let mut path = format!("/api/v1/conversations?q={}", enc(&q.get()));
        match f.as_str() {
            "unread" => path.push_str("&unread=true"),
            "mine" => path.push_str("&assignee=me"),
            "rated_bad" => path.push_str("&rating=bad"),
            "" => {}
            s => path.push_str(&format!("&state={s}")),
        }
        let n = shown.get();
        async move { pages::<ConversationView>(&path, n).await }
    });
    // Keyboard: j / k next and previous conversation, r reply, / search, Esc back to the list.
    let navigate = use_navigate();
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = ev
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        let key = ev.key();
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || (typing && key != "Escape") {
            return;
        }
        let doc = web_sys::window().and_then(|w| w.document());
        let focus = |sel: &str| {
            if let Some(el) = doc.as_ref().and_then(|d| d.query_selector(sel).ok().flatten())
                && let Ok(el) = wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(el)
            {
                let _ = el.focus();
            }
        };
        match key.as_str() {
            "j" | "k" => {
                let ids: Vec<String> = list.with_untracked(|l| {
                    l.ready().map(|p| p.items.iter().map(|c| c.id.clone()).collect()).unwrap_or_default()
                });
                if ids.is_empty() {
                    return;
                }
                let cur = ids.iter().position(|i| *i == id.get_untracked());
                let next = match (cur, key.as_str()) {
                    (None, _) => 0,
                    (Some(i), "j") => (i + 1).min(ids.len() - 1),
                    (Some(i), _) => i.saturating_sub(1),
                };
                navigate(&format!("/conversations/{}", ids[next]), Default::default());
            }
            "r" => {
                ev.prevent_default();
                focus("#reply");
            }
            "/" => {
                ev.prevent_default();
                focus(".conv-list input[type=search]");
            }
            "Escape" => navigate("/conversations", Default::default()),
            _ => {}
        }
    });
    on_cleanup(move || keys.remove());
    let filters = [
        ("", "all"),
        ("unread", "unread"),
        ("mine", "mine"),
        ("pending", "conv_pending"),
        ("open", "conv_open"),
        ("resolved", "conv_resolved"),
        ("rated_bad", "ratings_bad"),
    ];
    view! {
        <PageHead title=t("nav_conversations")><span class="muted small">{t("inbox_shortcuts")}</span></PageHead>
        <div class="inbox" class:has-thread=move || !id.get().is_empty()>
            <aside class="conv-list" aria-label=t("nav_conversations")>
                <div class="filters">
                    <input type="search" placeholder=t("search_conversations") aria-label=t("search_conversations") bind:value=q/>
                    <select aria-label=t("filter") bind:value=filter>
                        {filters.into_iter().map(|(v, k)| view! { <option value=v>{t(k)}</option> }).collect_view()}
                    </select>
                </div>
                // Keyed rows: a message arriving draws only its conversation's row (and moves it);
                // the others, and a row that has the keyboard focus, stay as they are.
                {pending(list)}
                {move || {
                    list.with(|l| l.ready().is_some_and(|p| p.items.is_empty()))
                        .then(|| view! { <Empty text=t("no_conversations")/> })
                }}
                <For
                    each=move || list.with(|l| l.ready().map(|p| p.items.clone()).unwrap_or_default())
                    key=|c: &ConversationView| serde_json::to_string(c).unwrap_or_else(|_| c.id.clone())
                    children=move |c: ConversationView| {
                        let href = format!("/conversations/{}", c.id);
                        let cid = c.id.clone();
                        let current = move || id.get() == cid;
                        view! {
                            <A href=href attr:class=move || if current() { "conv current" } else { "conv" }>
                                <div class="conv-top">
                                    <strong>{c.customer_name.clone()}</strong>
                                    <span class="muted">{when(c.last_message_at)}</span>
                                </div>
                                <div class="conv-bottom">
                                    <span class="preview">{c.last_message.clone()}</span>
                                    <Badge kind=state_kind(c.state) text=status_text(state_key(c.state))/>
                                    {(c.unread > 0).then(|| view! { <span class="unread" aria-label=tf("unread_n", &[&c.unread.to_string()])>{c.unread}</span> })}
                                </div>
                            </A>
                        }
                    }
                />
                <MoreButton data=list pages=shown/>
            </aside>
            <section class="thread-pane">
                {move || {
                    let id = id.get();
                    if id.is_empty() { view! { <Empty text=t("pick_conversation")/> }.into_any() } else { view! { <Thread id=id/> }.into_any() }
                }}
            </section>
        </div>
    }
}

pub(crate) fn ticks(s: MessageStatus) -> (&'static str, &'static str) {
    match s {
        MessageStatus::Queued => ("🕓", "msg_queued"),
        MessageStatus::Sending => ("🕓", "msg_sending"),
        MessageStatus::Sent => ("✓", "msg_sent"),
        MessageStatus::Delivered => ("✓✓", "msg_delivered"),
        MessageStatus::Read => ("✓✓", "msg_read"),
        MessageStatus::Failed => ("⚠", "msg_failed"),
        MessageStatus::Received => ("", "msg_received"),
    }
}

#[component]
fn Media(sha: String, mime: String, kind: String) -> impl IntoView {
    let url = loader(move || {
        let path = format!("/api/v1/attachments/{sha}");
        async move { api::blob_url(&path).await }
    });
    move || {
        match url.get() {
        Load::Loading => view! { <span class="muted">{t("loading")}</span> }.into_any(),
        Load::Failed(_) => view! { <span class="muted">{t("media_not_here")}</span> }.into_any(),
        Load::Ready(u) => match kind.as_str() {
            "image" | "sticker" => view! { <img class="media" src=u alt=t("image")/> }.into_any(),
            "audio" => view! { <audio controls src=u></audio> }.into_any(),
            "video" => view! { <video class="media" controls src=u></video> }.into_any(),
            _ => view! { <a href=u download="" on:click=|_| super::desktop::after_save()>{format!("{} ({})", t("download"), mime)}</a> }.into_any(),
        },
    }
    }
}

/// A bot's reason in words: `intent: stock` rather than its JSON.
pub(crate) fn explain_value(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "—".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => {
            let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            match o.get("value").or_else(|| o.get("id")).or_else(|| o.get("text")) {
                Some(serde_json::Value::String(v)) => format!("{kind}: {v}"),
                Some(v) => format!("{kind}: {v}"),
                None => kind.to_string(),
            }
        }
        Some(v) => v.to_string(),
    }
}

/// What a thread's head and tools show: they are drawn again only when it changes.
#[derive(Clone, PartialEq)]
struct HeadKey {
    customer_id: String,
    customer_name: String,
    wa_id: String,
    state: ConversationState,
    assignee_id: Option<String>,
    labels: Vec<String>,
    rating: Option<String>,
    rated_at: Option<i64>,
}

impl HeadKey {
    fn of(c: &ConversationView) -> Self {
        Self {
            customer_id: c.customer_id.clone(),
            customer_name: c.customer_name.clone(),
            wa_id: c.wa_id.clone(),
            state: c.state,
            assignee_id: c.assignee_id.clone(),
            labels: c.labels.clone(),
            rating: c.rating.clone(),
            rated_at: c.rated_at,
        }
    }
}

fn message_view(m: MessageView) -> impl IntoView {
    let (tick, label) = ticks(m.status);
    let cls = format!("msg msg-{} status-{:?}", m.direction, m.status).to_lowercase();
    let att = m.payload.get("attachment").and_then(|a| {
        Some((
            a.get("sha256")?.as_str()?.to_string(),
            a.get("mime_type").and_then(|x| x.as_str()).unwrap_or("").to_string(),
        ))
    });
    let media = att.map(|(sha, mime)| view! { <Media sha=sha mime=mime kind=m.kind.clone()/> });
    // An order's PDF sent from its page: a link back to the order.
    let order = m.payload.get("order_id").and_then(|o| o.as_str()).map(|o| {
        let name = m.payload.get("filename").and_then(|f| f.as_str()).unwrap_or("PDF").to_string();
        view! { <A href=format!("/orders/{o}") attr:class="msg-order">{format!("📄 {name}")}</A> }
    });
    let who = match m.sender.as_str() {
        "customer" => None,
        "bot" => Some(t("bot").to_string()),
        _ if m.direction == "note" => Some(t("internal_note").to_string()),
        _ => None,
    };
    let explain = m.explain.map(|e| {
        let s = format!(
            "{} {} · {} {} · {} {}",
            t("trigger"),
            explain_value(e.get("trigger")),
            t("intent"),
            explain_value(e.get("intent")),
            t("node"),
            explain_value(e.get("node"))
        );
        view! { <small class="muted explain">{s}</small> }
    });
    view! {
        <div class=cls>
            {who.map(|w| view! { <small class="muted">{w}</small> })}
            {media}
            {order}
            <div class="msg-text">{m.text.clone()}</div>
            {explain}
            <div class="msg-meta">
                <span>{when(m.at)}</span>
                {(m.direction == "out").then(|| view! { <span class="tick" title=t(label) aria-label=t(label)>{tick}</span> })}
                {m.error.map(|e| view! { <span class="field-error">{e}</span> })}
            </div>
        </div>
    }
}

#[component]
fn Thread(id: String) -> impl IntoView {
    let cid = id.clone();
    let thread = loader(move || {
        watch(&["conversations", "messages", "attachments"]);
        let path = format!("/api/v1/conversations/{cid}?limit=200");
        async move { api::get::<ConversationThread>(&path).await }
    });
    let staff = loader(|| api::get::<Page<StaffView>>("/api/v1/staff?limit=500"));
    let canned = loader(|| api::get::<Vec<CannedResponse>>("/api/v1/canned-responses"));
    // Opening a conversation reads it.
    let rid = id.clone();
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        match thread.get() {
            Load::Ready(th) => {
                if th.conversation.unread > 0 {
                    let path = format!("/api/v1/conversations/{rid}/read");
                    spawn_local(async move {
                        let _: Result<ConversationView, _> = api::post(&path, &serde_json::json!({})).await;
                    });
                }
                true
            }
            _ => false,
        }
    });
    let err = RwSignal::new(None::<ApiError>);
    let pid = id.clone();
    let ticket_for = id.clone();
    let patch = move |body: UpdateConversation| {
        err.set(None);
        let path = format!("/api/v1/conversations/{pid}");
        spawn_local(async move {
            match api::patch::<_, ConversationView>(&path, &body).await {
                Ok(_) => crate::state::changed(&["conversations"]),
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let aid = id.clone();
    let round_robin = move |_| {
        let path = format!("/api/v1/conversations/{aid}/assign");
        spawn_local(async move {
            match api::post::<_, ConversationView>(&path, &serde_json::json!({})).await {
                Ok(_) => {
                    crate::state::changed(&["conversations"]);
                    app().say(t("assigned"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let navigate = use_navigate();
    // The thread is drawn again whenever a message or conversation changes; the composer is not
    // (a draft being typed keeps its text and its focus): only another conversation, or its
    // 24-hour window opening or closing, draws it again.
    let current = Memo::new(move |_| thread.with(|t| t.ready().map(|th| th.conversation.clone())));
    // The window closes 24 hours after the customer last wrote, also while the page stays open:
    // the clock is read again every 30 seconds.
    let now = RwSignal::new(js_sys::Date::now() as i64);
    if let Ok(tick) =
        set_interval_with_handle(move || now.set(js_sys::Date::now() as i64), std::time::Duration::from_secs(30))
    {
        on_cleanup(move || tick.clear());
    }
    let composer_key = Memo::new(move |_| {
        let now = now.get();
        thread.with(|t| {
            t.ready().map(|th| {
                let c = &th.conversation;
                // The replica's answer, or this device's clock once the window has passed.
                let closed = !c.window_open
                    || !dashoffice_domain::inbox::window_open(c.last_inbound_at, now)
                    || c.needs_template;
                (c.id.clone(), closed, c.needs_template, th.templates.clone())
            })
        })
    });
    let last_contact =
        Signal::derive(move || current.with(|c| c.as_ref().map(|c| c.last_inbound_at.unwrap_or(c.created_at))));
    let composer = move || {
        composer_key.get().and_then(|(_, closed, _, templates)| {
            let conv = current.get_untracked()?;
            Some(view! { <Composer conv=conv closed=closed templates=templates canned=canned last_contact=last_contact/> })
        })
    };
    // The head and its tools are drawn again only when what they show changes (not for a new
    // message or a delivery tick), so the labels being typed keep their text and focus; the
    // messages are keyed, so only a new or changed message is drawn and the list keeps its scroll.
    let head = Memo::new(move |_| thread.with(|t| t.ready().map(|th| HeadKey::of(&th.conversation))));
    // The customer's support tickets still open: whoever answers sees them at once.
    let customer_of = Memo::new(move |_| head.with(|h| h.as_ref().map(|h| h.customer_id.clone()).unwrap_or_default()));
    let open_tickets = loader(move || {
        watch(&["tickets"]);
        let cid = customer_of.get();
        let path = format!("/api/v1/tickets?status=active&limit=5&customer_id={}", enc(&cid));
        async move {
            if cid.is_empty() { Ok(Vec::new()) } else { api::get::<Page<TicketView>>(&path).await.map(|p| p.items) }
        }
    });
    let messages = Memo::new(move |_| thread.with(|t| t.ready().map(|th| th.messages.clone()).unwrap_or_default()));
    // Scrolled to the newest message at first and whenever a message arrives while the reader is
    // at the bottom; one who scrolled up to read older ones stays where they are.
    let at_bottom = StoredValue::new(true);
    let list = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let n = messages.with(Vec::len);
        if n > 0 && at_bottom.get_value() {
            request_animation_frame(move || {
                // Still at the bottom: the reader may have scrolled up since.
                if let Some(el) = list.get_untracked().filter(|_| at_bottom.get_value()) {
                    el.set_scroll_top(el.scroll_height());
                }
            });
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            at_bottom.set_value(el.scroll_height() - el.scroll_top() - el.client_height() < 40);
        }
    };
    let head_view = move || {
        let c = head.get()?;
        let patch_state = patch.clone();
        let patch_assign = patch.clone();
        let patch_labels = patch.clone();
        let labels = RwSignal::new(c.labels.join(", "));
        let assignee = c.assignee_id.clone().unwrap_or_default();
        // Each option knows whether it is the assignee: the staff list often arrives after
        // the select was drawn, when setting the select's value alone would find no option.
        let current = assignee.clone();
        let staff_opts = move || {
            staff.with(|s| {
                s.ready().map(|s| {
                    s.items
                        .iter()
                        .filter(|x| !x.archived)
                        .map(|x| {
                            view! { <option value=x.id.clone() selected=x.id == current>{x.name.clone()}</option> }
                        })
                        .collect_view()
                })
            })
        };
        let customer_href = format!("/customers/{}", c.customer_id);
        let navigate = navigate.clone();
        let round_robin = round_robin.clone();
        Some(view! {
            <header class="thread-head">
                <button class="btn ghost back" on:click=move |_| navigate("/conversations", Default::default())>{t("back")}</button>
                <div>
                    <h2><A href=customer_href>{c.customer_name.clone()}</A></h2>
                    <span class="muted">"+"{c.wa_id.clone()}</span>
                </div>
                <Badge kind=state_kind(c.state) text=status_text(state_key(c.state))/>
                {c.rating.clone().map(|r| {
                    let (kind, key) = match r.as_str() {
                        "good" => ("ok", "rating_good"),
                        "bad" => ("danger", "rating_bad"),
                        _ => ("warn", "rating_ok"),
                    };
                    let when = c.rated_at.map(datetime).unwrap_or_default();
                    view! { <span class="rating" title=when><Badge kind=kind text=tf("rated", &[t(key)])/></span> }
                })}
                <A href=format!("/tickets/new?conversation={}&customer={}", ticket_for, c.customer_id) attr:class="btn ghost">{t("open_a_ticket")}</A>
            </header>
            {move || open_tickets.with(|l| l.ready().filter(|v| !v.is_empty()).map(|v| {
                let links = v.iter().map(|x| (x.id.clone(), format!("{} · {}", x.number, x.subject))).collect::<Vec<_>>();
                view! {
                    <p class="notice thread-tickets">{t("customer_open_tickets")}" "
                        {links.into_iter().map(|(id, label)| view! { <A href=format!("/tickets/{id}")>{label}</A>" " }).collect_view()}
                    </p>
                }
            }))}
            <div class="thread-tools">
                <div class="seg" role="group" aria-label=t("who_answers")>
                    {[(ConversationState::Pending, "hand_to_bot"), (ConversationState::Open, "take_over"), (ConversationState::Resolved, "resolve")]
                        .into_iter()
                        .map(|(s, k)| {
                            let patch = patch_state.clone();
                            let on = c.state == s;
                            view! { <button class=if on { "btn selected" } else { "btn" } aria-pressed=on.to_string() on:click=move |_| patch(UpdateConversation { state: Some(state_key(s).to_string()), ..Default::default() })>{t(k)}</button> }
                        })
                        .collect_view()}
                </div>
                <label class="field inline"><span>{t("assignee")}</span>
                    <select prop:value=assignee on:change=move |ev| {
                        let v = event_target_value(&ev);
                        patch_assign(UpdateConversation { assignee_id: Some(v), ..Default::default() });
                    }>
                        <option value="">{t("unassigned")}</option>{staff_opts}
                    </select>
                </label>
                <button class="btn" on:click=round_robin>{t("round_robin")}</button>
                <label class="field inline"><span>{t("labels")}</span>
                    <input bind:value=labels on:change=move |_| patch_labels(UpdateConversation { labels: Some(split_tags(&labels.get_untracked())), ..Default::default() })/>
                </label>
            </div>
        })
    };
    view! {
        {move || err.get().map(|e| view! { <ErrorBox err=e/> })}
        {pending(thread)}
        {head_view}
        // Focusable, so that the keyboard can scroll it too.
        <div class="messages" role="log" aria-live="polite" tabindex="0" aria-label=t("thread_messages") node_ref=list on:scroll=on_scroll>
            <For
                each=move || messages.get()
                // A message is drawn again when anything of it changes (its ticks, its media).
                key=|m: &MessageView| serde_json::to_string(m).unwrap_or_else(|_| m.id.clone())
                children=message_view
            />
        </div>
        {composer}
    }
}

/// Where the signed-in person's unsent replies are kept, by conversation: in the browser's (or
/// the desktop app's) local storage, so they outlive a reload, the desktop window let go while in
/// the tray, and a restart; each person has their own.
fn drafts_key() -> Option<String> {
    app().user.with_untracked(|u| u.as_ref().map(|u| format!("dashoffice.drafts.{}", u.id)))
}

fn drafts() -> std::collections::HashMap<String, String> {
    drafts_key()
        .and_then(|k| crate::state::load_pref(&k))
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

/// Keeps `typed` as the draft of `conversation` (an empty one is forgotten).
fn keep_draft(conversation: &str, typed: &str) {
    let Some(key) = drafts_key() else { return };
    let mut all = drafts();
    if typed.is_empty() {
        if all.remove(conversation).is_none() {
            return;
        }
    } else {
        all.insert(conversation.to_string(), typed.to_string());
    }
    let json = (!all.is_empty()).then(|| serde_json::to_string(&all).ok()).flatten();
    crate::state::save_pref(&key, json.as_deref());
}

#[component]
fn Composer(
    conv: ConversationView,
    /// Outside the 24-hour window (or WhatsApp asked for a template): templates only.
    closed: bool,
    templates: Vec<TemplateView>,
    canned: RwSignal<Load<Vec<CannedResponse>>>,
    /// When the customer last wrote (the 24-hour window's start).
    last_contact: Signal<Option<i64>>,
) -> impl IntoView {
    let draft_of = conv.id.clone();
    let text = RwSignal::new(drafts().remove(&draft_of).unwrap_or_default());
    Effect::new(move |_| text.with(|typed| keep_draft(&draft_of, typed)));
    let note = RwSignal::new(false);
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let template = RwSignal::new(templates.first().map(|t| t.name.clone()).unwrap_or_default());
    let params = RwSignal::new(String::new());
    let path = format!("/api/v1/conversations/{}/messages", conv.id);
    let send = move |body: SendMessage| {
        err.set(None);
        busy.set(true);
        let path = path.clone();
        spawn_local(async move {
            match api::post::<_, MessageView>(&path, &body).await {
                Ok(_) => {
                    text.set(String::new());
                    // The thread shows the message now, not when the live stream reports it.
                    crate::state::changed(&["messages", "conversations"]);
                }
                Err(e) => err.set(Some(e)),
            }
            busy.set(false);
        });
    };
    let send_text = send.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let kind = if note.get_untracked() { "note" } else { "text" };
        send_text(SendMessage { kind: Some(kind.into()), text: text.get_untracked(), ..Default::default() });
    };
    let send_tpl = send.clone();
    let submit_template = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let ps =
            params.get_untracked().split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        send_tpl(SendMessage {
            kind: Some("template".into()),
            template: Some(template.get_untracked()),
            params: ps,
            ..Default::default()
        });
    };
    let suggestions = move || {
        let typed = text.get();
        let code = typed.strip_prefix('/')?.to_lowercase();
        let list = canned.with(|c| c.ready().cloned())?;
        let hits: Vec<_> =
            list.into_iter().filter(|c| c.short_code.to_lowercase().starts_with(&code)).take(5).collect();
        (!hits.is_empty()).then(|| {
            hits.into_iter()
                .map(|c| {
                    let body = c.text.clone();
                    view! { <li><button type="button" class="btn ghost" on:click=move |_| text.set(body.clone())>{format!("/{} — {}", c.short_code, c.text)}</button></li> }
                })
                .collect_view()
        })
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            if let Some(form) = ev
                .target()
                .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(t).ok())
                .and_then(|el| el.closest("form").ok().flatten())
            {
                let form: web_sys::HtmlFormElement = wasm_bindgen::JsCast::unchecked_into(form);
                let _ = form.request_submit();
            }
        }
    };
    let tpl_options = templates.iter().map(|tp| view! { <option value=tp.name.clone()>{format!("{} ({}) — {}", tp.name, tp.language, tp.body)}</option> }).collect_view();
    view! {
        {closed.then(|| view! {
            <form class="composer card" on:submit=submit_template novalidate>
                <p class="notice">{if conv.needs_template {
                    t("needs_template")
                } else if conv.last_inbound_at.is_none() {
                    t("window_not_opened")
                } else {
                    t("window_closed")
                }}</p>
                <label class="field"><span>{t("template")}</span><select name="template" bind:value=template>{tpl_options}</select></label>
                <label class="field"><span>{t("template_params")}</span><input name="params" bind:value=params placeholder="Ana | 1234"/></label>
                <FormError err=err/>
                <button class="btn primary" type="submit" disabled=move || busy.get()>{t("send_template")}</button>
            </form>
        })}
        <form class="composer" on:submit=submit novalidate>
            <ul class="suggestions">{suggestions}</ul>
            <label class="sr-only" for="reply">{t("reply")}</label>
            <textarea id="reply" name="text" rows="2" bind:value=text on:keydown=on_key
                placeholder=move || if note.get() { t("write_note") } else if closed { t("only_notes_now") } else { t("write_reply") }></textarea>
            <div class="composer-actions">
                <label class="check"><input type="checkbox" bind:checked=note/>{t("internal_note")}</label>
                <small class="field-error" role="alert">{move || err.with(|e| e.as_ref().and_then(|e| e.field("text")))}</small>
                <button class="btn primary" type="submit" disabled=move || busy.get() || (closed && !note.get())>
                    {move || if note.get() { t("add_note") } else { t("send") }}
                </button>
            </div>
            {(!closed).then(|| view! { <FormError err=err fields=&["text"]/> })}
        </form>
        <p class="muted small">{t("composer_help")}" · "{move || last_contact.get().map(datetime)}</p>
    }
}
