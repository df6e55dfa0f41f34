//! Login.

use dashoffice_domain::api::{LoginRequest, LoginResponse};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api::{self, ApiError},
    components::{Field, FormError},
    i18n::{Lang, t},
    state,
};

#[component]
pub(crate) fn Login() -> impl IntoView {
    let st = state::app();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        err.set(None);
        let body = LoginRequest { email: email.get_untracked(), password: password.get_untracked() };
        let navigate = navigate.clone();
        // The dashboard's module downloads while the password is checked.
        crate::preload_page("/");
        spawn_local(async move {
            match api::post::<_, LoginResponse>("/api/v1/auth/login", &body).await {
                Ok(r) => {
                    st.logged_in(r);
                    navigate("/", Default::default());
                }
                Err(e) => err.set(Some(e)),
            }
            busy.set(false);
        });
    };
    let switch_lang =
        move |_| Lang::choose(st, Some(if st.lang.get_untracked() == Lang::Es { Lang::En } else { Lang::Es }));
    let desktop = super::desktop::desktop_info();
    let set_up = RwSignal::new(false);
    let needs_setup =
        move || !set_up.get() && desktop.with(|d| d.ready().and_then(|d| d.as_ref()).is_some_and(|d| d.needs_setup));
    view! {
        <main class="center-page" id="main">
            <Show when=needs_setup fallback=move || view! { <p hidden=move || !set_up.get() class="notice">{t("setup_done")}</p> }>
                <super::desktop::Setup done=set_up/>
            </Show>
            <form class="card narrow login" on:submit=submit novalidate hidden=needs_setup>
                <h1>"DashOffice"</h1>
                <p class="muted">{t("login_intro")}</p>
                <Field label=t("email") name="email" value=email err=err kind="email" required=true/>
                <Field label=t("password") name="password" value=password err=err kind="password" required=true/>
                <FormError err=err fields=&["email", "password"]/>
                <button class="btn primary" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { t("logging_in") } else { t("login") }}
                </button>
                <button class="btn ghost" type="button" on:click=switch_lang>
                    {move || if st.lang.get() == Lang::Es { "English" } else { "Español" }}
                </button>
            </form>
        </main>
    }
}
