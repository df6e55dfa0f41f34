//! The search box at the top of every page: products, customers, orders and WhatsApp messages
//! by their words (`GET /api/v1/search`). Ctrl+K (⌘K) focuses it from anywhere; arrows move
//! through the results, Enter opens one, Escape closes the list.

use std::time::Duration;

use dashoffice_domain::api::{SearchHit, SearchResults};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::{api, i18n::t};

/// Results shown under the box.
const SHOWN: u32 = 8;

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "product" => t("search_kind_product"),
        "customer" => t("search_kind_customer"),
        "order" => t("search_kind_order"),
        "ticket" => t("search_kind_ticket"),
        _ => t("search_kind_message"),
    }
}

#[component]
pub(crate) fn GlobalSearch() -> impl IntoView {
    let q = RwSignal::new(String::new());
    let found: RwSignal<Option<Result<SearchResults, String>>> = RwSignal::new(None);
    let open = RwSignal::new(false);
    let active = RwSignal::new(0usize);
    // Answers to earlier keystrokes are dropped.
    let asked = StoredValue::new(0u64);
    let focused = || {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element())
            .is_some_and(|el| el.id() == "global-search")
    };
    // `try_` throughout: the box is gone (logout, language switch) when a late answer arrives.
    let forget = move || asked.try_update_value(|n| *n += 1);
    // Bumped to ask again while the index still catches up with a recent change.
    let again = RwSignal::new(0u64);
    // `live`: a re-read for a change elsewhere, not a keystroke: it leaves the list open or closed
    // as it is (a click on a result is under way when the box has lost its focus).
    let run = move |text: String, live: bool| {
        forget();
        let Some(mine) = asked.try_get_value() else { return };
        if text.trim().is_empty() {
            found.set(None);
            return;
        }
        set_timeout(
            move || {
                if asked.try_get_value() != Some(mine) {
                    return;
                }
                leptos::task::spawn_local(async move {
                    let path = format!("/api/v1/search?limit={SHOWN}&q={}", api::enc(&text));
                    let r = api::get::<SearchResults>(&path).await;
                    if asked.try_get_value() == Some(mine) {
                        let next = Some(r.map_err(|e| e.message));
                        let indexing = matches!(&next, Some(Ok(r)) if r.indexing);
                        // The same answer changes nothing: the highlighted result stays.
                        if found.try_with_untracked(|f| *f != next) == Some(true) {
                            active.try_set(0);
                            found.try_set(next);
                        }
                        if !live {
                            open.try_set(focused());
                        }
                        if indexing {
                            set_timeout(
                                move || {
                                    let _ = again.try_update(|n| *n += 1);
                                },
                                Duration::from_millis(700),
                            );
                        }
                    }
                });
            },
            Duration::from_millis(150),
        );
    };
    // While the list is open it follows the records: a change to what it searches (here or synced
    // from another branch), or the index catching up, asks again.
    Effect::new(move |first: Option<()>| {
        again.track();
        crate::state::watch(&["products", "customers", "orders", "messages", "conversations"]);
        if first.is_some() && open.get_untracked() {
            let text = q.get_untracked();
            if !text.trim().is_empty() {
                run(text, true);
            }
        }
    });
    let hits =
        move || found.with(|f| f.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.hits.clone()).unwrap_or_default());
    let navigate = use_navigate();
    let close = move || {
        forget();
        open.set(false);
        q.set(String::new());
        found.set(None);
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let n = hits().len();
        let handled = match ev.key().as_str() {
            "ArrowDown" if n > 0 => {
                open.set(true);
                active.update(|a| *a = (*a + 1).min(n - 1));
                true
            }
            "ArrowUp" if n > 0 => {
                active.update(|a| *a = a.saturating_sub(1));
                true
            }
            "Enter" if !ev.is_composing() => {
                if let Some(hit) = hits().get(active.get_untracked()) {
                    let link = hit.link.clone();
                    close();
                    navigate(&link, Default::default());
                }
                true
            }
            "Escape" => {
                forget();
                open.set(false);
                true
            }
            _ => false,
        };
        if handled {
            // Not also the page's own shortcuts (Esc leaves a conversation in the inbox).
            ev.prevent_default();
            ev.stop_propagation();
        }
    };
    // Ctrl+K / ⌘K from anywhere.
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        if (ev.ctrl_key() || ev.meta_key()) && ev.key().eq_ignore_ascii_case("k") {
            ev.prevent_default();
            if let Some(el) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.get_element_by_id("global-search"))
                .and_then(|el| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(el).ok())
            {
                let _ = el.focus();
            }
        }
    });
    on_cleanup(move || keys.remove());
    let item = move |(i, hit): (usize, SearchHit)| {
        let selected = move || active.get() == i;
        view! {
            <li role="option" id=format!("global-search-{i}") aria-selected=move || selected().to_string()
                class=move || if selected() { "active" } else { "" }>
                <a href=hit.link.clone() on:click=move |_| close()>
                    <span class="badge badge-muted">{kind_label(&hit.kind)}</span>
                    <strong>{hit.title.clone()}</strong>
                    <small>{hit.subtitle.clone()}</small>
                </a>
            </li>
        }
    };
    let options = move || hits().into_iter().enumerate().map(item).collect_view();
    let status = move || match found.get() {
        None => String::new(),
        Some(Err(message)) => message,
        Some(Ok(r)) => {
            let mut lines = Vec::new();
            if r.hits.is_empty() {
                lines.push(t("search_nothing"));
            }
            if r.indexing {
                lines.push(t("search_indexing"));
            }
            lines.join(" · ")
        }
    };
    let shown = move || open.get() && found.with(Option::is_some);
    view! {
        <div class="gsearch" role="search">
            <input id="global-search" type="search" autocomplete="off" role="combobox" aria-autocomplete="list"
                aria-controls=move || shown().then_some("global-search-results") aria-expanded=move || shown().to_string()
                aria-activedescendant=move || (shown() && !hits().is_empty()).then(|| format!("global-search-{}", active.get()))
                placeholder=t("search_everything") aria-label=t("search_everything") title=t("search_shortcut")
                prop:value=q
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    q.set(v.clone());
                    run(v, false);
                }
                on:keydown=on_key
                on:focus=move |_| open.set(true)
                on:blur=move |_| set_timeout(move || open.set(false), Duration::from_millis(200))/>
            <Show when=shown>
                // A press on a result must not blur the box first (the list would close under it).
                <div class="gsearch-results" on:mousedown=|ev| ev.prevent_default()>
                    <ul id="global-search-results" role="listbox" aria-label=t("search_everything")>{options}</ul>
                    <p class="gsearch-status" aria-live="polite">{status}</p>
                </div>
            </Show>
        </div>
    }
}
