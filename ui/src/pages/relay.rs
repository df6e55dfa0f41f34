//! What head office's owner manages on the relay (these panels show on the relay's UI; an edge
//! node's API has no such routes and the panels say where to go): the shop's devices (list,
//! enrolment codes for a branch or for head office, revocation) and its WhatsApp numbers.

use dashoffice_domain::api::{BranchView, ShopView};
use leptos::{prelude::*, task::spawn_local};
use serde::{Deserialize, Serialize};

use crate::{
    api::{self, ApiError, enc},
    components::{Badge, ErrorBox, Field, FormError, Load, Spinner, loader, rows_or_empty},
    i18n::{datetime, t, tf},
    state::app,
};

/// A device enrolled with the relay (GET /api/v1/devices).
#[derive(Clone, PartialEq, Deserialize)]
struct Device {
    id: String,
    branch_id: Option<String>,
    name: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_seen_at: Option<i64>,
    #[serde(default)]
    relay_service: bool,
}

#[derive(Serialize)]
struct CodeRequest {
    shop_id: String,
    branch_id: Option<String>,
    note: Option<String>,
}

/// A new enrolment code (POST /api/v1/enrolment-codes).
#[derive(Clone, Deserialize)]
struct Code {
    code: String,
    expires_at: i64,
    relay_fingerprint: String,
    /// None: a head-office device (the whole shop).
    #[serde(default)]
    branch_id: Option<String>,
}

/// A connected WhatsApp number (GET /api/v1/whatsapp/numbers; the token never comes back).
#[derive(Clone, PartialEq, Deserialize)]
struct Number {
    phone_number_id: String,
    branch_id: Option<String>,
    display_number: String,
    access_token_set: bool,
}

#[derive(Serialize)]
struct PutNumber {
    phone_number_id: String,
    shop_id: String,
    branch_id: Option<String>,
    access_token: String,
    display_number: String,
}

/// The branch's code and name; `none` names what no branch means here.
fn branch_name(branches: RwSignal<Load<Vec<BranchView>>>, id: &Option<String>, none: &'static str) -> String {
    match id {
        None => t(none).to_string(),
        Some(id) => branches
            .with(|b| {
                b.ready().and_then(|b| b.iter().find(|x| &x.id == id).map(|x| format!("{} · {}", x.code, x.name)))
            })
            .unwrap_or_else(|| id.clone()),
    }
}

/// A branch picker; `whole` adds the choice "no branch" with that label.
fn branch_select(
    id: &'static str,
    branches: RwSignal<Load<Vec<BranchView>>>,
    value: RwSignal<String>,
    whole: &'static str,
) -> impl IntoView {
    let options = move || {
        branches.with(|b| {
            b.ready().map(|b| {
                b.iter()
                    .filter(|x| !x.archived)
                    .map(|x| view! { <option value=x.id.clone()>{format!("{} · {}", x.code, x.name)}</option> })
                    .collect_view()
            })
        })
    };
    view! {
        <label class="field" for=id>
            <span>{t("branch")}</span>
            <select id=id prop:value=move || value.get() on:change=move |ev| value.set(event_target_value(&ev))>
                <option value="">{t(whole)}</option>
                {options}
            </select>
        </label>
    }
}

fn some(s: String) -> Option<String> {
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The relay's answer, or the edge node's 404: this API lives on the relay only.
fn on_relay_only<T: Clone + Send + Sync + 'static, V: IntoView + 'static>(
    data: RwSignal<Load<T>>,
    f: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView {
    move || match data.get() {
        Load::Loading => view! { <Spinner/> }.into_any(),
        Load::Failed(e) if e.status == 404 => view! { <p class="muted">{t("relay_only_help")}</p> }.into_any(),
        Load::Failed(e) => view! { <ErrorBox err=e/> }.into_any(),
        Load::Ready(v) => f(v).into_any(),
    }
}

/// The shop's devices and new enrolment codes.
#[component]
pub(crate) fn DevicesPanel(shop: RwSignal<Load<ShopView>>, branches: RwSignal<Load<Vec<BranchView>>>) -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let devices = loader(move || {
        reload.get();
        api::get::<Vec<Device>>("/api/v1/devices")
    });
    let branch = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let made = RwSignal::new(None::<Code>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let Some(shop_id) = shop.with_untracked(|s| s.ready().map(|s| s.id.clone())) else { return };
        let body = CodeRequest { shop_id, branch_id: some(branch.get_untracked()), note: some(note.get_untracked()) };
        spawn_local(async move {
            match api::post::<_, Code>("/api/v1/enrolment-codes", &body).await {
                Ok(c) => {
                    note.set(String::new());
                    made.set(Some(c));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let revoke = move |id: String| {
        if !crate::components::confirm(t("confirm_revoke")) {
            return;
        }
        spawn_local(async move {
            match api::send("POST", &format!("/api/v1/devices/{}/revoke", enc(&id)), None, "").await {
                Ok(_) => {
                    app().say(t("device_revoked"));
                    reload.update(|n| *n += 1);
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // The command a branch's edge node starts with (the relay's QUIC port is 4433 by default).
    let command = move |c: &Code| {
        let host = web_sys::window().and_then(|w| w.location().hostname().ok()).unwrap_or_default();
        format!(
            "dashoffice-edge --relay {host}:4433 --relay-fingerprint {} --enrolment-code {}",
            c.relay_fingerprint, c.code
        )
    };
    view! {
        <section class="card" id="devices">
            <h2>{t("devices")}</h2>
            {on_relay_only(devices, move |ds: Vec<Device>| {
                let rows = rows_or_empty(ds, "no_devices", move |d| {
                    let id = d.id.clone();
                    let seen = d.last_seen_at.map(datetime).unwrap_or_else(|| t("never").to_string());
                    view! {
                        <div class="row-item">
                            <strong>{d.name.clone()}</strong>
                            <span>{branch_name(branches, &d.branch_id, "whole_shop")}</span>
                            <span class="muted">{tf("device_enrolled_seen", &[&datetime(d.created_at), &seen])}</span>
                            {match d.revoked_at {
                                Some(_) => view! { <Badge kind="muted" text=t("revoked")/> }.into_any(),
                                None if d.relay_service => view! { <Badge kind="info" text=t("relay_service")/> }.into_any(),
                                None => view! {
                                    <button class="btn ghost" on:click=move |_| revoke(id.clone())>{t("revoke")}</button>
                                }.into_any(),
                            }}
                        </div>
                    }
                });
                view! {
                    {rows}
                    <h3>{t("new_enrolment_code")}</h3>
                    <form class="inline-form" on:submit=create novalidate>
                        {branch_select("f-code-branch", branches, branch, "head_office_device")}
                        <Field label=t("note") name="note" value=note err=err/>
                        <button class="btn" type="submit">{t("create_code")}</button>
                    </form>
                    <FormError err=err fields=&["note"]/>
                    {move || made.get().map(|c| view! {
                        <div class="state" role="status">
                            <p>{tf(if c.branch_id.is_some() { "code_made" } else { "code_made_head_office" }, &[&c.code, &datetime(c.expires_at)])}</p>
                            <pre class="code">{command(&c)}</pre>
                        </div>
                    })}
                }
            })}
        </section>
    }
}

/// The shop's WhatsApp numbers: connect (with the Graph API token) and disconnect.
#[component]
pub(crate) fn NumbersPanel(shop: RwSignal<Load<ShopView>>, branches: RwSignal<Load<Vec<BranchView>>>) -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let numbers = loader(move || {
        reload.get();
        api::get::<Vec<Number>>("/api/v1/whatsapp/numbers")
    });
    let id = RwSignal::new(String::new());
    let display = RwSignal::new(String::new());
    let token = RwSignal::new(String::new());
    let branch = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let connect = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let Some(shop_id) = shop.with_untracked(|s| s.ready().map(|s| s.id.clone())) else { return };
        let body = PutNumber {
            phone_number_id: id.get_untracked().trim().to_string(),
            shop_id,
            branch_id: some(branch.get_untracked()),
            access_token: token.get_untracked(),
            display_number: display.get_untracked().trim().to_string(),
        };
        spawn_local(async move {
            match api::post::<_, serde_json::Value>("/api/v1/whatsapp/numbers", &body).await {
                Ok(_) => {
                    id.set(String::new());
                    display.set(String::new());
                    token.set(String::new());
                    app().say(t("number_connected"));
                    reload.update(|n| *n += 1);
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let disconnect = move |pid: String| {
        if !crate::components::confirm(t("confirm_disconnect")) {
            return;
        }
        spawn_local(async move {
            match api::send("DELETE", &format!("/api/v1/whatsapp/numbers/{}", enc(&pid)), None, "").await {
                Ok(_) => reload.update(|n| *n += 1),
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <section class="card" id="whatsapp-numbers">
            <h2>{t("whatsapp_connection")}</h2>
            {on_relay_only(numbers, move |ns: Vec<Number>| {
                let rows = rows_or_empty(ns, "no_numbers", move |n| {
                    let pid = n.phone_number_id.clone();
                    view! {
                        <div class="row-item">
                            <strong>{if n.display_number.is_empty() { n.phone_number_id.clone() } else { n.display_number.clone() }}</strong>
                            <span class="muted">{n.phone_number_id.clone()}</span>
                            <span>{branch_name(branches, &n.branch_id, "first_branch")}</span>
                            {if n.access_token_set {
                                view! { <Badge kind="ok" text=t("connected")/> }
                            } else {
                                view! { <Badge kind="warn" text=t("token_missing")/> }
                            }}
                            <button class="btn ghost" on:click=move |_| disconnect(pid.clone())>{t("disconnect")}</button>
                        </div>
                    }
                });
                view! {
                    {rows}
                    <form class="inline-form" on:submit=connect novalidate autocomplete="off">
                        <Field label=t("phone_number_id") name="phone_number_id" value=id err=err required=true/>
                        <Field label=t("display_number") name="display_number" value=display err=err placeholder="+52 55 1234 5678"/>
                        <Field label=t("access_token") name="access_token" value=token err=err kind="password" required=true/>
                        {branch_select("f-number-branch", branches, branch, "first_branch")}
                        <button class="btn" type="submit">{t("connect_number")}</button>
                    </form>
                    <FormError err=err fields=&["phone_number_id", "display_number", "access_token"]/>
                }
            })}
        </section>
    }
}
