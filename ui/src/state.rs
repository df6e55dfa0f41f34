//! App-wide state: the session, the language, the theme, live change counters and the sync state.

use std::collections::HashMap;

use dashoffice_domain::api::{LoginResponse, StaffView, SyncStatus};
use leptos::prelude::*;
use wasm_bindgen::{JsCast, prelude::Closure};

use crate::{api, i18n::Lang};

/// Everything the pages share.
#[derive(Clone, Copy)]
pub struct AppState {
    /// The logged-in staff member.
    pub user: RwSignal<Option<StaffView>>,
    /// The UI language.
    pub lang: RwSignal<Lang>,
    /// Dark mode.
    pub dark: RwSignal<bool>,
    /// Changes seen per collection since the UI started.
    pub changes: RwSignal<HashMap<String, u64>>,
    /// The replica's sync with the relay, as last announced.
    pub sync: RwSignal<Option<SyncStatus>>,
    /// Whether the live connection to the replica is up.
    pub live: RwSignal<bool>,
    /// A short message at the bottom of the screen.
    pub toast: RwSignal<Option<String>>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// Reads a saved preference.
pub fn load_pref(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?
}

/// Saves a preference (or removes it).
pub fn save_pref(key: &str, v: Option<&str>) {
    if let Some(s) = storage() {
        let _ = match v {
            Some(v) => s.set_item(key, v),
            None => s.remove_item(key),
        };
    }
}

/// Where the signed-in person's unfinished form `form` is kept: in the browser's (or the desktop
/// app's) local storage, so it outlives a reload, a tablet's browser dropping the tab, the desktop
/// window let go while in the tray, and a restart; each person has their own.
fn form_key(form: &str) -> Option<String> {
    app().user.with_untracked(|u| u.as_ref().map(|u| format!("dashoffice.form.{form}.{}", u.id)))
}

/// The signed-in person's unfinished form `form`, if one was kept.
pub fn load_form<T: serde::de::DeserializeOwned>(form: &str) -> Option<T> {
    serde_json::from_str(&load_pref(&form_key(form)?)?).ok()
}

/// Keeps what was typed into form `form` (`None`: forgets it, as once it is saved).
pub fn keep_form<T: serde::Serialize>(form: &str, typed: Option<&T>) {
    if let Some(key) = form_key(form) {
        save_pref(&key, typed.and_then(|t| serde_json::to_string(t).ok()).as_deref());
    }
}

impl AppState {
    /// State from what the browser remembers (session, language, theme).
    pub fn restore() -> Self {
        let token = load_pref("dashoffice.token");
        api::set_token(token);
        let user = load_pref("dashoffice.user").and_then(|u| serde_json::from_str(&u).ok());
        let lang = Lang::detect();
        let dark = match load_pref("dashoffice.theme").as_deref() {
            Some("dark") => true,
            Some("light") => false,
            _ => web_sys::window()
                .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
                .is_some_and(|m| m.matches()),
        };
        Self {
            user: RwSignal::new(user),
            lang: RwSignal::new(lang),
            dark: RwSignal::new(dark),
            changes: RwSignal::new(HashMap::new()),
            sync: RwSignal::new(None),
            live: RwSignal::new(false),
            toast: RwSignal::new(None),
        }
    }

    /// After a successful login.
    pub fn logged_in(&self, r: LoginResponse) {
        api::set_token(Some(r.token.clone()));
        save_pref("dashoffice.token", Some(&r.token));
        save_pref("dashoffice.user", serde_json::to_string(&r.user).ok().as_deref());
        self.user.set(Some(r.user));
        start_live(*self);
    }

    /// Forgets the session.
    pub fn logout(&self) {
        api::set_token(None);
        save_pref("dashoffice.token", None);
        save_pref("dashoffice.user", None);
        self.user.set(None);
        stop_live();
    }

    /// Shows a message for a few seconds.
    pub fn say(&self, msg: impl Into<String>) {
        let toast = self.toast;
        toast.set(Some(msg.into()));
        set_timeout(move || toast.set(None), std::time::Duration::from_millis(3500));
    }
}

thread_local! {
    static APP: std::cell::Cell<Option<AppState>> = const { std::cell::Cell::new(None) };
}

/// Makes `st` what [`app`] returns (the app calls this once, at start).
pub fn install(st: AppState) {
    APP.with(|a| a.set(Some(st)));
}

/// The app state. Unlike a Leptos context it is also there inside async tasks and callbacks.
pub fn app() -> AppState {
    match APP.with(std::cell::Cell::get) {
        Some(st) => st,
        None => expect_context::<AppState>(),
    }
}

/// Tracks changes to the given collections: read it inside a loader and the loader runs again
/// when another replica (or this one) changes them.
pub fn watch(collections: &[&str]) -> u64 {
    let st = app();
    st.changes.with(|m| collections.iter().chain(&[EVERYTHING]).map(|c| m.get(*c).copied().unwrap_or(0)).sum())
}

/// The key of [`AppState::changes`] that every [`watch`] also reads.
const EVERYTHING: &str = "*";

/// Says that this page itself changed these collections (its write was acknowledged), so what
/// shows them reads them again now, without waiting for the live-updates stream.
pub fn changed(collections: &[&str]) {
    app().changes.update(|m| {
        for c in collections {
            *m.entry((*c).to_string()).or_default() += 1;
        }
    });
}

/// Called on any 401: the session ended (expired, revoked, logged out elsewhere).
pub fn session_expired() {
    if let Some(st) = APP.with(std::cell::Cell::get) {
        st.logout();
    } else {
        api::set_token(None);
        save_pref("dashoffice.token", None);
    }
}

thread_local! {
    static SOURCE: std::cell::RefCell<Option<web_sys::EventSource>> = const { std::cell::RefCell::new(None) };
}

fn stop_live() {
    SOURCE.with(|s| {
        if let Some(es) = s.borrow_mut().take() {
            es.close();
        }
    });
}

/// Opens the live-updates stream (`/api/v1/events`); the browser reconnects it by itself. The
/// session reaches it as an HttpOnly cookie set first, never in the URL.
pub fn start_live(st: AppState) {
    stop_live();
    if api::token().is_none() {
        return;
    }
    leptos::task::spawn_local(async move {
        let status = api::open_events_session().await;
        if status == 401 {
            session_expired();
            return;
        }
        // Any other failure: the stream opens anyway and its own 401/retries say the rest.
        if api::token().is_some() {
            open_live(st);
        }
    });
}

fn open_live(st: AppState) {
    stop_live();
    let Ok(es) = web_sys::EventSource::new("/api/v1/events") else {
        return;
    };
    let on_change = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        let data = ev.data().as_string().unwrap_or_default();
        let cols: Vec<String> = serde_json::from_str::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| serde_json::from_value(v["collections"].clone()).ok())
            .unwrap_or_default();
        st.changes.update(|m| {
            for c in cols {
                *m.entry(c).or_default() += 1;
            }
        });
    });
    let on_sync = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        if let Some(s) = ev.data().as_string().and_then(|d| serde_json::from_str(&d).ok()) {
            st.sync.set(Some(s));
        }
    });
    // After a broken connection the stream says nothing of what changed meanwhile: every page
    // reads its data again once the stream is back.
    let reconnected = std::rc::Rc::new(std::cell::Cell::new(false));
    let seen_error = reconnected.clone();
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        st.live.set(true);
        if reconnected.replace(false) {
            st.changes.update(|m| *m.entry(EVERYTHING.to_string()).or_default() += 1);
        }
    });
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        st.live.set(false);
        seen_error.set(true);
    });
    let _ = es.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
    let _ = es.add_event_listener_with_callback("sync", on_sync.as_ref().unchecked_ref());
    let _ = es.add_event_listener_with_callback("hello", on_open.as_ref().unchecked_ref());
    es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // The stream lives as long as the page: the closures must too.
    on_change.forget();
    on_sync.forget();
    on_open.forget();
    on_error.forget();
    SOURCE.with(|s| *s.borrow_mut() = Some(es));
}
