//! The pages.

pub(crate) mod analytics;
pub(crate) mod bots;
pub(crate) mod customers;
pub(crate) mod dashboard;
pub(crate) mod desktop;
pub(crate) mod inbox;
pub(crate) mod login;
pub(crate) mod orders;
pub(crate) mod products;
pub(crate) mod relay;
pub(crate) mod sellers;
pub(crate) mod settings;
pub(crate) mod tickets;

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_params_map};

use crate::i18n::t;

/// No page at this address.
#[component]
pub(crate) fn NotFound() -> impl IntoView {
    view! {
        <main class="center-page" id="main">
            <div class="card narrow">
                <h1>{t("not_found_title")}</h1>
                <p>{t("not_found_text")}</p>
                <A href="/">{t("back_to_dashboard")}</A>
            </div>
        </main>
    }
}

/// The `:id` of the route (empty when absent).
pub(crate) fn param_id() -> Memo<String> {
    let p = use_params_map();
    Memo::new(move |_| p.with(|p| p.get("id").unwrap_or_default()))
}

/// A page heading with optional actions on the right.
#[component]
pub(crate) fn PageHead(#[prop(into)] title: String, #[prop(optional)] children: Option<Children>) -> impl IntoView {
    view! {
        <div class="page-head">
            <h1>{title}</h1>
            <div class="actions">{children.map(|c| c())}</div>
        </div>
    }
}

/// Splits "a, b ,c" into tags.
pub(crate) fn split_tags(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}
