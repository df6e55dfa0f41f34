//! The DashOffice web UI: one Leptos app, rendered in the browser, for the edge node, the relay
//! and the desktop app. Data comes only through [`api`] (HTTP by default, IPC in the desktop app);
//! live updates through the replica's event stream; every string through [`i18n`].

// Leptos' #[component] turns a crate-private component into a public function and props struct.
#![allow(unreachable_pub)]

pub mod api;
pub mod components;
pub mod i18n;
mod pages;
mod search;
pub mod state;

use leptos::prelude::*;
use leptos_router::{
    Lazy, LazyRoute,
    components::{A, Outlet, ParentRoute, Redirect, Route, Router, Routes},
    path,
};
use wasm_bindgen::prelude::wasm_bindgen;

use crate::{
    i18n::{Lang, t},
    state::AppState,
};

/// Starts the UI in the page's body.
#[wasm_bindgen(start)]
pub fn start() {
    // A bug shows its message in the browser console instead of a bare "unreachable".
    console_error_panic_hook::set_once();
    // index.html shows a loading screen until the app draws itself.
    if let Some(boot) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot")) {
        boot.remove();
    }
    leptos::mount::mount_to_body(App);
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let st = AppState::restore();
    provide_context(st);
    state::install(st);
    st.lang.get_untracked().activate();
    Effect::new(move |_| {
        let dark = st.dark.get();
        if let Some(d) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = d.set_attribute("data-theme", if dark { "dark" } else { "light" });
        }
    });
    if st.user.get_untracked().is_some() {
        state::start_live(st);
    }
    // A new language re-renders everything (every string is read once, when drawn).
    move || {
        st.lang.get().activate();
        view! {
            <Router>
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/login") view=pages::login::Login/>
                    <ParentRoute path=path!("") view=Shell>
                        <Route path=path!("") view={Lazy::<DashboardPage>::new()}/>
                        <Route path=path!("products") view={Lazy::<ProductsPage>::new()}/>
                        <Route path=path!("products/new") view={Lazy::<ProductEditPage>::new()}/>
                        <Route path=path!("products/:id") view={Lazy::<ProductEditPage>::new()}/>
                        <Route path=path!("orders") view={Lazy::<OrdersPage>::new()}/>
                        <Route path=path!("orders/new") view={Lazy::<NewOrderPage>::new()}/>
                        <Route path=path!("orders/:id") view={Lazy::<OrderDetailPage>::new()}/>
                        <Route path=path!("orders/:id/edit") view={Lazy::<EditOrderPage>::new()}/>
                        <Route path=path!("customers") view={Lazy::<CustomersPage>::new()}/>
                        <Route path=path!("customers/:id") view={Lazy::<CustomerDetailPage>::new()}/>
                        <Route path=path!("sellers") view={Lazy::<SellersPage>::new()}/>
                        <Route path=path!("tickets") view={Lazy::<TicketsPage>::new()}/>
                        <Route path=path!("tickets/new") view={Lazy::<NewTicketPage>::new()}/>
                        <Route path=path!("tickets/:id") view={Lazy::<TicketDetailPage>::new()}/>
                        <Route path=path!("conversations") view={Lazy::<InboxPage>::new()}/>
                        <Route path=path!("conversations/:id") view={Lazy::<InboxPage>::new()}/>
                        <Route path=path!("bots") view={Lazy::<BotsPage>::new()}/>
                        <Route path=path!("analytics") view={Lazy::<AnalyticsPage>::new()}/>
                        <Route path=path!("settings") view={Lazy::<SettingsPage>::new()}/>
                    </ParentRoute>
                </Routes>
            </Router>
        }
    }
}

// The pages' code sits in separate WebAssembly modules, one per area of the app, fetched when a
// page of the area is first opened (scripts/build-ui splits them out with wasm-split): the first
// load carries only the app's frame, the login page and what every page shares. Each `#[lazy]`
// function below is one module; each route names its area's module and its page in it.

#[lazy]
fn dashboard_module(_page: u32) -> AnyView {
    pages::dashboard::Dashboard().into_any()
}

#[lazy]
fn catalog_module(page: u32) -> AnyView {
    match page {
        0 => pages::products::Products().into_any(),
        _ => pages::products::ProductEdit().into_any(),
    }
}

#[lazy]
fn orders_module(page: u32) -> AnyView {
    match page {
        0 => pages::orders::Orders().into_any(),
        1 => pages::orders::NewOrder().into_any(),
        3 => pages::orders::EditOrder().into_any(),
        _ => pages::orders::OrderDetail().into_any(),
    }
}

#[lazy]
fn people_module(page: u32) -> AnyView {
    match page {
        0 => pages::customers::Customers().into_any(),
        1 => pages::customers::CustomerDetail().into_any(),
        _ => pages::sellers::Sellers().into_any(),
    }
}

#[lazy]
fn support_module(page: u32) -> AnyView {
    match page {
        0 => pages::tickets::Tickets().into_any(),
        1 => pages::tickets::NewTicket().into_any(),
        _ => pages::tickets::TicketDetail().into_any(),
    }
}

#[lazy]
fn inbox_module(_page: u32) -> AnyView {
    pages::inbox::Inbox().into_any()
}

#[lazy]
fn bots_module(_page: u32) -> AnyView {
    pages::bots::Bots().into_any()
}

#[lazy]
fn analytics_module(_page: u32) -> AnyView {
    pages::analytics::Analytics().into_any()
}

#[lazy]
fn settings_module(_page: u32) -> AnyView {
    pages::settings::Settings().into_any()
}

/// Whether someone is logged in: every lazy page sits in the frame that requires it, so without
/// a session its module is not fetched at all (the frame sends the visitor to /login).
fn logged_in() -> bool {
    state::app().user.with_untracked(Option::is_some)
}

/// A route whose page is `$page` of the module `$module` (its preloader is `$preload`, made by
/// `#[lazy]`).
macro_rules! lazy_routes {
    ($($route:ident => $module:ident($page:literal), $preload:ident;)*) => {$(
        struct $route;
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }
            async fn view(_this: Self) -> AnyView {
                if !logged_in() {
                    return ().into_any();
                }
                $module($page).await
            }
            async fn preload() {
                if logged_in() {
                    $preload().await
                }
            }
        }
    )*};
}

lazy_routes! {
    DashboardPage => dashboard_module(0), __preload_dashboard_module;
    ProductsPage => catalog_module(0), __preload_catalog_module;
    ProductEditPage => catalog_module(1), __preload_catalog_module;
    OrdersPage => orders_module(0), __preload_orders_module;
    NewOrderPage => orders_module(1), __preload_orders_module;
    OrderDetailPage => orders_module(2), __preload_orders_module;
    EditOrderPage => orders_module(3), __preload_orders_module;
    CustomersPage => people_module(0), __preload_people_module;
    CustomerDetailPage => people_module(1), __preload_people_module;
    SellersPage => people_module(2), __preload_people_module;
    TicketsPage => support_module(0), __preload_support_module;
    NewTicketPage => support_module(1), __preload_support_module;
    TicketDetailPage => support_module(2), __preload_support_module;
    InboxPage => inbox_module(0), __preload_inbox_module;
    BotsPage => bots_module(0), __preload_bots_module;
    AnalyticsPage => analytics_module(0), __preload_analytics_module;
    SettingsPage => settings_module(0), __preload_settings_module;
}

/// Starts fetching the module of the page a navigation link leads to (on hover or focus), so the
/// click shows the page at once. A module is fetched only once.
pub(crate) fn preload_page(href: &str) {
    fn go<F: Future<Output = ()> + 'static>(f: F) {
        leptos::task::spawn_local(f);
    }
    match href {
        "/" => go(<DashboardPage as LazyRoute>::preload()),
        "/conversations" => go(<InboxPage as LazyRoute>::preload()),
        "/orders" => go(<OrdersPage as LazyRoute>::preload()),
        "/products" => go(<ProductsPage as LazyRoute>::preload()),
        "/customers" => go(<CustomersPage as LazyRoute>::preload()),
        "/sellers" => go(<SellersPage as LazyRoute>::preload()),
        "/tickets" => go(<TicketsPage as LazyRoute>::preload()),
        "/bots" => go(<BotsPage as LazyRoute>::preload()),
        "/analytics" => go(<AnalyticsPage as LazyRoute>::preload()),
        "/settings" => go(<SettingsPage as LazyRoute>::preload()),
        _ => {}
    }
}

/// The frame of every page after login: navigation, sync state, language, theme.
#[component]
fn Shell() -> impl IntoView {
    let st = state::app();
    let logged_in = move || st.user.with(|u| u.is_some());
    // The desktop app's tray and notifications speak the UI's language.
    Effect::new(move |_| {
        let lang = st.lang.get();
        if logged_in() {
            pages::desktop::tell_language(lang.code());
        }
    });
    let nav = [
        ("/", "nav_dashboard"),
        ("/conversations", "nav_conversations"),
        ("/orders", "nav_orders"),
        ("/tickets", "nav_tickets"),
        ("/products", "nav_products"),
        ("/customers", "nav_customers"),
        ("/sellers", "nav_sellers"),
        ("/bots", "nav_bots"),
        ("/analytics", "nav_analytics"),
        ("/settings", "nav_settings"),
    ];
    let links = move || {
        nav.into_iter()
            .map(|(href, key)| {
                view! {
                    <li on:pointerenter=move |_| preload_page(href) on:focusin=move |_| preload_page(href)>
                        <A href=href exact=href == "/">{t(key)}</A>
                    </li>
                }
            })
            .collect_view()
    };
    let sync_badge = move || {
        let s = st.sync.get();
        let live = st.live.get();
        let (kind, text) = match s {
            _ if !live => ("warn", t("sync_replica_unreachable")),
            Some(s) if s.enabled && s.connected && s.pending_changes == 0 => ("ok", t("sync_synced")),
            Some(s) if s.enabled && s.connected => ("info", t("sync_syncing")),
            Some(s) if s.enabled => ("warn", t("sync_offline")),
            Some(_) => ("muted", t("sync_local_only")),
            None => ("muted", t("sync_unknown")),
        };
        view! { <A href="/settings" attr:class=format!("badge badge-{kind} sync-badge")>{text}</A> }
    };
    let other = move || if st.lang.get() == Lang::Es { "English" } else { "Español" };
    let switch_lang =
        move |_| Lang::choose(st, Some(if st.lang.get_untracked() == Lang::Es { Lang::En } else { Lang::Es }));
    let toggle_theme = move |_| {
        st.dark.update(|d| *d = !*d);
        state::save_pref("dashoffice.theme", Some(if st.dark.get_untracked() { "dark" } else { "light" }));
    };
    let logout = move |_| {
        let st = state::app();
        leptos::task::spawn_local(async move {
            let _: Result<(), _> = api::post("/api/v1/auth/logout", &serde_json::json!({})).await;
            st.logout();
        });
    };
    let who = move || st.user.with(|u| u.as_ref().map(|u| u.name.clone()).unwrap_or_default());
    view! {
        <Show when=logged_in fallback=|| view! { <Redirect path="/login"/> }>
            <a class="skip" href="#main">{t("skip_to_content")}</a>
            <div class="app">
                <header class="topbar">
                    <A href="/" attr:class="brand">"DashOffice"</A>
                    {sync_badge}
                    <search::GlobalSearch/>
                    <span class="spacer"></span>
                    <span class="who">{who}</span>
                    <button class="btn ghost" on:click=switch_lang lang=move || if st.lang.get() == Lang::Es { "en" } else { "es" }>{other}</button>
                    <button class="btn ghost" on:click=toggle_theme aria-label=t("toggle_theme")>{move || if st.dark.get() { "☀" } else { "☾" }}</button>
                    <button class="btn ghost" on:click=logout>{t("logout")}</button>
                </header>
                <nav class="sidenav" aria-label=t("navigation")><ul>{links}</ul></nav>
                <main id="main" class="content" tabindex="-1"><Outlet/></main>
            </div>
            {move || st.toast.get().map(|m| view! { <div class="toast" role="status">{m}</div> })}
            <pages::desktop::SavedBar/>
        </Show>
    }
}
