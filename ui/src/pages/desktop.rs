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

/// `GET /api/v1/desktop/saved`: a file the app saved in the Downloads folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct SavedFile {
    name: String,
    path: String,
    folder: String,
    at: i64,
    exists: bool,
    opens: bool,
}

thread_local! {
    /// The API answered that this is no desktop app (an edge node, the relay).
    static NOT_DESKTOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The bar offering to open the file just saved (made by [`SavedBar`]).
    static BAR: std::cell::Cell<Option<RwSignal<Option<SavedFile>>>> = const { std::cell::Cell::new(None) };
    /// The saved files the bar has offered already: a second save looks for a file of its own.
    static OFFERED: std::cell::RefCell<std::collections::HashSet<String>> = std::cell::RefCell::default();
}

/// The page just saved a file. In the desktop app, once WebKit has written it (within 10 s), a bar
/// offers to open it or show it in its folder for 20 s; elsewhere (a browser saves files itself) nothing.
pub(crate) fn after_save() {
    if NOT_DESKTOP.get() {
        return;
    }
    let Some(bar) = BAR.get() else { return };
    // The replica's clock and the page's are the same computer's; a little slack for rounding.
    poll_saved(bar, js_sys::Date::now() as i64 - 2_000, 40);
}

fn poll_saved(bar: RwSignal<Option<SavedFile>>, since: i64, tries: u32) {
    spawn_local(async move {
        match api::get::<Vec<SavedFile>>("/api/v1/desktop/saved").await {
            Ok(list) => match list.into_iter().find(|f| f.at >= since && OFFERED.with_borrow(|o| !o.contains(&f.path)))
            {
                Some(f) => {
                    let path = f.path.clone();
                    OFFERED.with_borrow_mut(|o| o.insert(path.clone()));
                    bar.set(Some(f));
                    set_timeout(
                        move || {
                            if bar.with_untracked(|b| b.as_ref().is_some_and(|b| b.path == path)) {
                                bar.set(None);
                            }
                        },
                        std::time::Duration::from_secs(20),
                    );
                }
                None if tries > 0 => {
                    set_timeout(move || poll_saved(bar, since, tries - 1), std::time::Duration::from_millis(250));
                }
                None => {}
            },
            Err(e) if e.status == 404 => NOT_DESKTOP.set(true),
            Err(_) => {}
        }
    });
}

/// Asks the app to open a saved file, or to show it in its folder.
fn open_file(path: String, reveal: bool) {
    spawn_local(async move {
        let body = serde_json::json!({ "file": path, "reveal": reveal }).to_string();
        match api::send("POST", "/api/v1/desktop/open", Some(body), "application/json").await {
            Ok(_) => {}
            Err(e) => app().say(crate::i18n::error_text(&e)),
        }
    });
}

/// The two buttons of a saved file.
fn file_actions(f: &SavedFile) -> impl IntoView + use<> {
    let (open, reveal) = (f.path.clone(), f.path.clone());
    let (opens, exists) = (f.opens, f.exists);
    view! {
        {(opens && exists).then(|| view! {
            <button type="button" class="btn saved-open" on:click=move |_| open_file(open.clone(), false)>{t("open_file")}</button>
        })}
        {exists.then(|| view! {
            <button type="button" class="btn saved-reveal" on:click=move |_| open_file(reveal.clone(), true)>{t("show_in_folder")}</button>
        })}
        {(!exists).then(|| view! { <span class="muted">{t("file_gone")}</span> })}
    }
}

/// The bar at the bottom of the window after a file was saved (desktop app only).
#[component]
pub(crate) fn SavedBar() -> impl IntoView {
    let bar = RwSignal::new(None::<SavedFile>);
    BAR.set(Some(bar));
    on_cleanup(|| BAR.set(None));
    move || {
        bar.get().map(|f| {
            view! {
                <div class="toast saved-bar" role="status">
                    <span>{format!("{} {}", t("saved_file"), f.name)}</span>
                    {file_actions(&f)}
                    <button type="button" class="btn ghost" aria-label=t("close") on:click=move |_| bar.set(None)>"×"</button>
                </div>
            }
        })
    }
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
    let files = loader(|| api::get::<Vec<SavedFile>>("/api/v1/desktop/saved"));
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
            <h3>{t("saved_files")}</h3>
            {move || files.with(|s| s.ready().map(|list| {
                if list.is_empty() {
                    return view! { <p class="muted">{t("no_saved_files")}</p> }.into_any();
                }
                view! { <div id="saved-files">{list.iter().take(10).map(|f| view! {
                    <div class="row-item saved-file" data-file=f.path.clone()>
                        <strong>{f.name.clone()}</strong>
                        <span class="muted">{f.folder.clone()}</span>
                        <span class="muted">{datetime(f.at)}</span>
                        {file_actions(f)}
                    </div>
                }).collect_view()}</div> }.into_any()
            }))}
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
