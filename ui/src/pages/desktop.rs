//! What only the desktop app has (its loopback API answers `GET /api/v1/desktop`; an edge node
//! does not): the first-run set-up (join the shop through its relay, or start a shop here) and the
//! desktop settings (relay, start at login, notifications shown).

use leptos::{prelude::*, task::spawn_local};
use serde::Deserialize;

use crate::{
    api::{self, ApiError},
    components::{Field, FormError, Load, loader},
    i18n::{datetime, t},
    state::app,
};

/// `GET /api/v1/desktop`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct DesktopInfo {
    pub(crate) needs_setup: bool,
    pub(crate) data_dir: String,
    /// Where saved files (invoice PDFs, exports, backups) go; older apps do not say.
    #[serde(default)]
    pub(crate) downloads_dir: String,
    pub(crate) relay: Option<String>,
    pub(crate) relay_fingerprint: Option<String>,
    pub(crate) start_at_login: bool,
    pub(crate) version: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Shown {
    title: String,
    body: String,
    at: i64,
}

thread_local! {
    /// The API answered that this is no desktop app (an edge node, the relay).
    static NOT_DESKTOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells the desktop app the UI's language, for its tray and notifications; where there is no
/// desktop app (404) it is not asked again.
pub(crate) fn tell_language(code: &'static str) {
    if NOT_DESKTOP.get() {
        return;
    }
    spawn_local(async move {
        let body = serde_json::json!({ "language": code }).to_string();
        if let Err(e) = api::send("PUT", "/api/v1/desktop/settings", Some(body), "application/json").await
            && e.status == 404
        {
            NOT_DESKTOP.set(true);
        }
    });
}

/// The desktop facts, or `None` when this UI is not in the desktop app.
pub(crate) fn desktop_info() -> RwSignal<Load<Option<DesktopInfo>>> {
    loader(|| async {
        match api::get::<DesktopInfo>("/api/v1/desktop").await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    })
}

/// First run on a new computer: join the shop (relay, fingerprint, code from the owner) or start
/// a shop of its own.
#[component]
pub(crate) fn Setup(done: RwSignal<bool>) -> impl IntoView {
    let relay = RwSignal::new(String::new());
    let fingerprint = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let shop = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let join = RwSignal::new(true);
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        busy.set(true);
        let body = if join.get_untracked() {
            serde_json::json!({ "relay": relay.get_untracked(), "relay_fingerprint": fingerprint.get_untracked(), "enrolment_code": code.get_untracked() })
        } else {
            serde_json::json!({ "shop_name": shop.get_untracked(), "owner_email": email.get_untracked(), "owner_password": password.get_untracked() })
        };
        spawn_local(async move {
            match api::send("POST", "/api/v1/desktop/setup", Some(body.to_string()), "application/json").await {
                Ok(_) => done.set(true),
                Err(e) => err.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card narrow" on:submit=submit novalidate>
            <h1>{t("setup_title")}</h1>
            <p class="muted">{t("setup_intro")}</p>
            <div class="seg" role="group">
                <button type="button" class=move || if join.get() { "btn selected" } else { "btn" } on:click=move |_| join.set(true)>{t("setup_join")}</button>
                <button type="button" class=move || if join.get() { "btn" } else { "btn selected" } on:click=move |_| join.set(false)>{t("setup_new")}</button>
            </div>
            {move || if join.get() {
                view! {
                    <Field label=t("relay_address") name="relay" value=relay err=err placeholder="relay.mitienda.mx:4433" required=true/>
                    <Field label=t("relay_fingerprint") name="relay_fingerprint" value=fingerprint err=err required=true/>
                    <Field label=t("enrolment_code") name="enrolment_code" value=code err=err placeholder="ABCD-EFGH-IJKL" required=true/>
                }.into_any()
            } else {
                view! {
                    <Field label=t("shop") name="shop_name" value=shop err=err required=true/>
                    <Field label=t("email") name="owner_email" value=email err=err kind="email" required=true/>
                    <Field label=t("password") name="owner_password" value=password err=err kind="password" required=true/>
                }.into_any()
            }}
            <FormError err=err fields=&["relay", "relay_fingerprint", "enrolment_code", "shop_name", "owner_email", "owner_password"]/>
            <button class="btn primary" type="submit" disabled=move || busy.get()>{t("setup_go")}</button>
        </form>
    }
}

/// Settings → this computer.
#[component]
pub(crate) fn DesktopPanel(info: DesktopInfo) -> impl IntoView {
    let relay = RwSignal::new(info.relay.clone().unwrap_or_default());
    let fingerprint = RwSignal::new(info.relay_fingerprint.clone().unwrap_or_default());
    let code = RwSignal::new(String::new());
    let autostart = RwSignal::new(info.start_at_login);
    let err = RwSignal::new(None::<ApiError>);
    let shown = loader(|| {
        crate::state::watch(&["messages", "conversations"]);
        api::get::<Vec<Shown>>("/api/v1/desktop/notifications")
    });
    let connect = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let body = serde_json::json!({ "relay": relay.get_untracked(), "relay_fingerprint": fingerprint.get_untracked(), "enrolment_code": code.get_untracked() });
        spawn_local(async move {
            match api::send("PUT", "/api/v1/desktop/sync", Some(body.to_string()), "application/json").await {
                Ok(_) => {
                    code.set(String::new());
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let toggle = move |_| {
        let on = !autostart.get_untracked();
        spawn_local(async move {
            let body = serde_json::json!({ "start_at_login": on });
            match api::send("PUT", "/api/v1/desktop/settings", Some(body.to_string()), "application/json").await {
                Ok(_) => autostart.set(on),
                Err(e) => app().say(crate::i18n::error_text(&e)),
            }
        });
    };
    view! {
        <section class="card">
            <h2>{t("this_computer")}</h2>
            <dl class="facts">
                <dt>{t("data_folder")}</dt><dd><code>{info.data_dir.clone()}</code></dd>
                <dt>{t("downloads_folder")}</dt><dd><code id="downloads-folder">{info.downloads_dir.clone()}</code></dd>
                <dt>{t("version")}</dt><dd>{info.version.clone()}</dd>
            </dl>
            <label class="check"><input type="checkbox" prop:checked=move || autostart.get() on:change=toggle/>{t("start_at_login")}</label>
            <form class="form" on:submit=connect novalidate>
                <h3>{t("connect_relay")}</h3>
                <div class="grid three">
                    <Field label=t("relay_address") name="relay" value=relay err=err placeholder="relay.mitienda.mx:4433"/>
                    <Field label=t("relay_fingerprint") name="relay_fingerprint" value=fingerprint err=err/>
                    <Field label=t("enrolment_code") name="enrolment_code" value=code err=err/>
                </div>
                <FormError err=err fields=&["relay", "relay_fingerprint", "enrolment_code"]/>
                <button class="btn" type="submit">{t("connect")}</button>
            </form>
            <h3>{t("notifications")}</h3>
            {move || shown.with(|s| s.ready().map(|list| {
                if list.is_empty() {
                    return view! { <p class="muted">{t("no_notifications")}</p> }.into_any();
                }
                list.iter().rev().take(10).map(|n| view! {
                    <div class="row-item"><strong>{n.title.clone()}</strong><span>{n.body.clone()}</span><span class="muted">{datetime(n.at)}</span></div>
                }).collect_view().into_any()
            }))}
        </section>
    }
}
