//! Settings: the shop, branches, staff, this device and its enrolment, WhatsApp (templates and
//! canned responses) and the sync state; on the relay also the shop's devices and WhatsApp
//! numbers (pages/relay.rs).

use dashoffice_domain::{
    api::{BranchView, CreateBranch, ShopView, SyncStatus, UpdateBranch, UpdateShop, UpdateStaff},
    inbox::{CannedResponse, TemplateView},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::components::A;

use super::PageHead;
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Field, FormError, Load, loader, rows_or_empty, show},
    i18n::{Lang, datetime, number, t},
    state::{app, watch},
};

#[component]
pub(crate) fn Settings() -> impl IntoView {
    let desktop = super::desktop::desktop_info();
    // The shop and its branches, read once for every panel that shows or picks them.
    let shop = loader(|| {
        watch(&["org"]);
        api::get::<ShopView>("/api/v1/shop")
    });
    let branches = loader(|| {
        watch(&["org"]);
        api::get::<Vec<BranchView>>("/api/v1/branches")
    });
    view! {
        <PageHead title=t("nav_settings")/>
        {move || desktop.with(|d| d.ready().cloned().flatten()).map(|info| view! { <super::desktop::DesktopPanel info=info/> })}
        <SyncPanel/>
        <AccountPanel/>
        <LanguagePanel/>
        <Show when=|| can(dashoffice_domain::Permission::ManageShop)><ShopPanel shop=shop/></Show>
        <BranchesPanel branches=branches/>
        <section class="card"><h2>{t("staff")}</h2><p>{t("staff_settings_help")}" "<A href="/sellers">{t("nav_sellers")}</A></p></section>
        <super::relay::DevicesPanel shop=shop branches=branches/>
        <WhatsAppPanel/>
        <Show when=|| can(dashoffice_domain::Permission::ManageShop)><SurveyPanel shop=shop/></Show>
        <Show when=|| can(dashoffice_domain::Permission::ManageShop)><NoticesPanel shop=shop/></Show>
        <super::relay::NumbersPanel shop=shop branches=branches/>
        <BackupPanel/>
    }
}

/// Whether the signed-in person's role has `p` (forms they could not save are not shown; the API
/// checks again).
fn can(p: dashoffice_domain::Permission) -> bool {
    app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(p)))
}

/// A backup of this replica's database, for the owner (`GET /api/v1/backup`): one file to keep
/// somewhere safe, restored with `dashoffice-edge restore`.
#[component]
fn BackupPanel() -> impl IntoView {
    let owner = || can(dashoffice_domain::Permission::ManageShop);
    let busy = RwSignal::new(false);
    let err = RwSignal::new(None::<ApiError>);
    let download = move |_| {
        busy.set(true);
        err.set(None);
        spawn_local(async move {
            match api::blob_url("/api/v1/backup").await {
                Ok(url) => {
                    let day: String = String::from(js_sys::Date::new_0().to_iso_string()).chars().take(10).collect();
                    api::save_url(&url, &format!("dashoffice-backup-{day}.db"));
                }
                Err(e) => err.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <Show when=owner>
            <section class="card" id="backup">
                <h2>{t("backup")}</h2>
                <p>{t("backup_help")}</p>
                <button type="button" class="btn" id="backup-download" on:click=download disabled=move || busy.get()>
                    {move || if busy.get() { t("backup_preparing") } else { t("backup_download") }}
                </button>
                <FormError err=err/>
            </section>
        </Show>
    }
}

#[component]
fn SyncPanel() -> impl IntoView {
    let st = app();
    let fetched = loader(|| api::get::<SyncStatus>("/api/v1/sync/status"));
    let status = move || st.sync.get().or_else(|| fetched.with(|f| f.ready().cloned()));
    let err = RwSignal::new(None::<ApiError>);
    let sync_now = move |_| {
        err.set(None);
        spawn_local(async move {
            match api::post::<_, SyncStatus>("/api/v1/sync/reconnect", &serde_json::json!({})).await {
                Ok(s) => {
                    st.sync.set(Some(s));
                    st.say(t("sync_replica_unreachable"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <section class="card" id="sync">
            <h2>{t("sync_and_device")}</h2>
            {move || match status() {
                None => match fetched.get() {
                    Load::Failed(e) => view! { <crate::components::ErrorBox err=e/> }.into_any(),
                    _ => view! { <crate::components::Spinner/> }.into_any(),
                },
                Some(s) if !s.enabled => view! { <p>{t("sync_disabled_help")}</p><pre class="code">"dashoffice-edge --relay HOST:4433 --relay-fingerprint … --enrolment-code …"</pre> }.into_any(),
                Some(s) => {
                    let peers = s.peers.iter().map(|p| view! {
                        <tr><td>{p.peer.clone()}</td><td>{if p.connected { t("connected") } else { t("disconnected") }}</td>
                        <td class="num">{format!("{} s", number((p.lag_ms as f64 / 100.0).round() / 10.0))}</td><td class="num">{p.in_flight}</td></tr>
                    }).collect_view();
                    view! {
                        <dl class="facts">
                            <dt>{t("relay")}</dt><dd>{s.relay.clone().unwrap_or_default()}</dd>
                            <dt>{t("state")}</dt><dd>{if s.connected { view! { <Badge kind="ok" text=t("connected")/> } } else { view! { <Badge kind="warn" text=t("sync_offline")/> } }}</dd>
                            <dt>{t("device")}</dt><dd>{s.device_id.clone().unwrap_or_else(|| t("not_enrolled").to_string())}</dd>
                            <dt>{t("last_sync")}</dt><dd>{s.last_sync_at.map(datetime).unwrap_or_else(|| "—".into())}</dd>
                            <dt>{t("pending_changes")}</dt><dd>{number(s.pending_changes as f64)}</dd>
                            <dt>{t("documents_here")}</dt><dd>{number(s.documents_local as f64)}{s.documents_relay.map(|r| format!(" / {}", number(r as f64)))}</dd>
                            <dt>{t("last_error")}</dt><dd>{s.last_error.clone().unwrap_or_else(|| "—".into())}</dd>
                        </dl>
                        <div class="table-wrap"><table class="table"><thead><tr><th>{t("peer")}</th><th>{t("state")}</th><th class="num">{t("lag")}</th><th class="num">{t("in_flight")}</th></tr></thead><tbody>{peers}</tbody></table></div>
                        <p class="muted">{t("sync_now_help")}</p>
                        <button class="btn" id="sync-now" type="button" on:click=sync_now>{t("sync_now")}</button>
                        {move || err.get().map(|e| view! { <crate::components::ErrorBox err=e/> })}
                    }
                    .into_any()
                }
            }}
        </section>
    }
}

/// The signed-in person's own password. Changing it ends every session of the account, this one
/// included: the app then asks to log in with the new password.
#[component]
fn AccountPanel() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let Some(me) = app().user.with_untracked(|u| u.as_ref().map(|u| u.id.clone())) else { return };
        if new.get_untracked() != repeat.get_untracked() {
            err.set(Some(ApiError {
                status: 422,
                code: "validation".into(),
                message: t("passwords_differ").to_string(),
                fields: vec![dashoffice_domain::FieldError::new("repeat_password", "mismatch", t("passwords_differ"))],
                raw: String::new(),
            }));
            return;
        }
        let body = UpdateStaff {
            password: Some(new.get_untracked()),
            current_password: Some(current.get_untracked()),
            ..Default::default()
        };
        spawn_local(async move {
            match api::patch::<_, serde_json::Value>(&format!("/api/v1/staff/{}", enc(&me)), &body).await {
                Ok(_) => {
                    for x in [current, new, repeat] {
                        x.set(String::new());
                    }
                    app().say(t("password_changed"));
                    app().logout();
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card form" id="account" on:submit=save novalidate>
            <h2>{t("my_account")}</h2>
            <p class="muted">{move || app().user.with(|u| u.as_ref().map(|u| u.email.clone()).unwrap_or_default())}</p>
            <div class="grid two">
                <Field label=t("current_password") name="current_password" value=current err=err kind="password" required=true/>
                <Field label=t("new_password") name="password" value=new err=err kind="password" required=true/>
                <Field label=t("repeat_password") name="repeat_password" value=repeat err=err kind="password" required=true/>
            </div>
            <FormError err=err fields=&["current_password", "password", "repeat_password"]/>
            <button class="btn primary" type="submit">{t("change_password")}</button>
        </form>
    }
}

/// This device's language: the browser's, or one chosen here (also switched in the top bar).
#[component]
fn LanguagePanel() -> impl IntoView {
    let st = app();
    let current = crate::state::load_pref("dashoffice.lang").unwrap_or_default();
    let change = move |ev: leptos::ev::Event| {
        let v = event_target_value(&ev);
        Lang::choose(
            st,
            match v.as_str() {
                "es" => Some(Lang::Es),
                "en" => Some(Lang::En),
                _ => None,
            },
        );
    };
    view! {
        <section class="card">
            <h2>{t("language")}</h2>
            <label class="field inline" for="f-language"><span>{t("language")}</span>
                <select id="f-language" on:change=change>
                    <option value="" selected=current.is_empty()>{t("language_browser")}</option>
                    <option value="es" selected=current == "es">"Español"</option>
                    <option value="en" selected=current == "en">"English"</option>
                </select>
            </label>
        </section>
    }
}

#[component]
fn ShopPanel(shop: RwSignal<Load<ShopView>>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let currency = RwSignal::new(String::new());
    let timezone = RwSignal::new(String::new());
    let region = RwSignal::new(String::new());
    let legal_name = RwSignal::new(String::new());
    let tax_id = RwSignal::new(String::new());
    let address = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let fields = [name, currency, timezone, region, legal_name, tax_id, address, phone, email];
    let err = RwSignal::new(None::<ApiError>);
    // What each field was last filled with. When the shop loads or changes elsewhere, a field
    // is refilled unless it was typed in here since (what is typed before the first load stays
    // too); None after a save: every field shows the shop as stored.
    let filled = StoredValue::new(Some(<[String; 9]>::default()));
    Effect::new(move |_| {
        if let Load::Ready(s) = shop.get() {
            let fresh =
                [s.name, s.currency, s.timezone, s.phone_region, s.legal_name, s.tax_id, s.address, s.phone, s.email];
            let before = filled.get_value();
            for (i, (x, v)) in fields.into_iter().zip(fresh.clone()).enumerate() {
                if before.as_ref().is_none_or(|b| b[i] == x.get_untracked()) {
                    x.set(v);
                }
            }
            filled.set_value(Some(fresh));
        }
    });
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let body = UpdateShop {
            name: Some(name.get_untracked()),
            currency: Some(currency.get_untracked()),
            phone_region: Some(region.get_untracked()),
            timezone: Some(timezone.get_untracked()),
            legal_name: Some(legal_name.get_untracked()),
            tax_id: Some(tax_id.get_untracked()),
            address: Some(address.get_untracked()),
            phone: Some(phone.get_untracked()),
            email: Some(email.get_untracked()),
            satisfaction_survey: None,
            satisfaction_question: None,
            email_invoices: None,
            daily_report_hour: None,
            order_notices: None,
            order_notice_template: None,
        };
        spawn_local(async move {
            match api::patch::<_, ShopView>("/api/v1/shop", &body).await {
                Ok(s) => {
                    // Saved: show the shop as stored.
                    filled.set_value(None);
                    shop.set(Load::Ready(s));
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // What is e-mailed by itself — invoices and credit notes to the customer as they are issued,
    // the daily summary to the owners and managers: saved as it is chosen.
    let save_now = move |body: UpdateShop| {
        err.set(None);
        spawn_local(async move {
            match api::patch::<_, ShopView>("/api/v1/shop", &body).await {
                Ok(s) => {
                    shop.set(Load::Ready(s));
                    app().say(t("saved"));
                }
                Err(e) => {
                    err.set(Some(e));
                    // The controls show the shop as stored again.
                    shop.update(|_| {});
                }
            }
        });
    };
    let auto_on = move || shop.with(|s| s.ready().is_some_and(|s| s.email_invoices));
    let toggle_auto = move |ev: leptos::ev::Event| {
        save_now(UpdateShop { email_invoices: Some(event_target_checked(&ev)), ..Default::default() });
    };
    let report_hour =
        move || shop.with(|s| s.ready().and_then(|s| s.daily_report_hour).map(|h| h.to_string()).unwrap_or_default());
    let change_report = move |ev: leptos::ev::Event| {
        let hour = event_target_value(&ev).parse::<i64>().unwrap_or(-1);
        save_now(UpdateShop { daily_report_hour: Some(hour), ..Default::default() });
    };
    view! {
        <form class="card form" on:submit=save novalidate>
            <h2>{t("shop")}</h2>
            <div class="grid two">
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("currency") name="currency" value=currency err=err placeholder="MXN"/>
                <Field label=t("timezone") name="timezone" value=timezone err=err placeholder="America/Mexico_City"/>
                <Field label=t("phone_region") name="phone_region" value=region err=err placeholder="MX"/>
            </div>
            <h3>{t("fiscal_details")}</h3>
            <p class="muted">{t("fiscal_details_help")}</p>
            <div class="grid two">
                <Field label=t("legal_name") name="legal_name" value=legal_name err=err/>
                <Field label=t("tax_id") name="tax_id" value=tax_id err=err placeholder="XAXX010101000"/>
                <Field label=t("address") name="address" value=address err=err rows=3/>
                <div>
                    <Field label=t("phone") name="phone" value=phone err=err kind="tel"/>
                    <Field label=t("email") name="email" value=email err=err kind="email"/>
                </div>
            </div>
            <label class="check">
                <input type="checkbox" id="email-invoices" name="email_invoices" prop:checked=auto_on on:change=toggle_auto/>
                " "{t("email_invoices_on")}
            </label>
            <label class="field inline" for="f-daily_report_hour"><span>{t("daily_report")}</span>
                // `selected` for the first drawing (the options come after the select's value), the
                // value for every change after.
                <select id="f-daily_report_hour" prop:value=report_hour on:change=change_report>
                    <option value="" selected=move || report_hour().is_empty()>{t("daily_report_off")}</option>
                    {(0..24u8).map(|h| view! {
                        <option value=h.to_string() selected=move || report_hour() == h.to_string()>{format!("{h:02}:00")}</option>
                    }).collect_view()}
                </select>
            </label>
            <FormError err=err fields=&["name", "currency", "timezone", "phone_region", "legal_name", "tax_id", "address", "phone", "email"]/>
            <button class="btn primary" type="submit">{t("save")}</button>
        </form>
    }
}

#[component]
fn BranchesPanel(branches: RwSignal<Load<Vec<BranchView>>>) -> impl IntoView {
    let code = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    // Editing one branch in place (name, address, phone): its id and name before; errors of a
    // row's action.
    let renaming = RwSignal::new(None::<(String, String)>);
    let new_name = RwSignal::new(String::new());
    let new_address = RwSignal::new(String::new());
    let new_phone = RwSignal::new(String::new());
    let new_series = RwSignal::new(String::new());
    let row_err = RwSignal::new(None::<ApiError>);
    // This device numbers the branch's invoices from now on.
    let number_here = move |id: String, code: String| {
        row_err.set(None);
        if !crate::components::confirm(&crate::i18n::tf("invoicer_confirm", &[&code])) {
            return;
        }
        spawn_local(async move {
            match api::post::<_, BranchView>(&format!("/api/v1/branches/{}/invoicer", enc(&id)), &()).await {
                Ok(_) => {
                    crate::state::changed(&["org"]);
                    app().say(t("saved"));
                }
                Err(e) => row_err.set(Some(e)),
            }
        });
    };
    let rename = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        row_err.set(None);
        let Some((id, _)) = renaming.get_untracked() else { return };
        let body = UpdateBranch {
            name: Some(new_name.get_untracked()),
            address: Some(new_address.get_untracked()),
            phone: Some(new_phone.get_untracked()),
            invoice_series: Some(new_series.get_untracked()),
        };
        spawn_local(async move {
            match api::patch::<_, BranchView>(&format!("/api/v1/branches/{}", enc(&id)), &body).await {
                Ok(_) => {
                    renaming.set(None);
                    crate::state::changed(&["org"]);
                    app().say(t("saved"));
                }
                // The API names the fields `name`, `address`, `phone`; the row's inputs are
                // `branch_…`.
                Err(e) => row_err.set(Some(
                    e.on_field("name", "branch_name")
                        .on_field("address", "branch_address")
                        .on_field("phone", "branch_phone")
                        .on_field("invoice_series", "branch_invoice_series"),
                )),
            }
        });
    };
    let archive = move |id: String, name: String| {
        let question = crate::i18n::tf("archive_branch_confirm", &[&name]);
        let path = format!("/api/v1/branches/{}", enc(&id));
        crate::components::delete_confirmed(&question, path, &["org"], Some("branch_archived"), row_err, || {});
    };
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let body = CreateBranch { code: code.get_untracked(), name: name.get_untracked(), ..Default::default() };
        spawn_local(async move {
            match api::post::<_, BranchView>("/api/v1/branches", &body).await {
                Ok(_) => {
                    code.set(String::new());
                    name.set(String::new());
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <section class="card">
            <h2>{t("branches")}</h2>
            {show(branches, move |b: Vec<BranchView>| {
                let manage = can(dashoffice_domain::Permission::ManageBranches);
                b.into_iter().map(|b| {
                    let (rid, aid, aname) = (b.id.clone(), b.id.clone(), b.name.clone());
                    let is_renaming = {
                        let id = b.id.clone();
                        move || renaming.with(|r| r.as_ref().is_some_and(|(r, _)| *r == id))
                    };
                    let current = b.name.clone();
                    let (cur_address, cur_phone) = (b.address.clone(), b.phone.clone());
                    // The series as set (empty: the branch code), for the edit form.
                    let cur_series = if b.invoice_series == b.code { String::new() } else { b.invoice_series.clone() };
                    let invoicing = if b.invoicing_here {
                        crate::i18n::tf("invoices_numbered_here", &[&b.invoice_series])
                    } else if b.invoicer_code.is_empty() {
                        crate::i18n::tf("invoices_numbered_nowhere", &[&b.invoice_series])
                    } else {
                        crate::i18n::tf("invoices_numbered_by", &[&b.invoice_series, &b.invoicer_code])
                    };
                    let (hid, hcode) = (b.id.clone(), b.code.clone());
                    let may_number_here = !b.invoicing_here && !b.archived;
                    view! {
                        <div class="row-item">
                            <strong>{b.code.clone()}</strong>
                            <Show when=is_renaming.clone() fallback={
                                let name = b.name.clone();
                                let contact = [b.address.replace('\n', ", "), b.phone.clone()]
                                    .into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" · ");
                                move || view! {
                                    <span>{name.clone()}</span>
                                    {(!contact.is_empty()).then(|| view! { <span class="muted">{contact.clone()}</span> })}
                                }
                            }>
                                <form class="inline-form" on:submit=rename novalidate>
                                    <Field label=t("new_name") name="branch_name" value=new_name err=row_err/>
                                    <Field label=t("address") name="branch_address" value=new_address err=row_err/>
                                    <Field label=t("phone") name="branch_phone" value=new_phone err=row_err kind="tel"/>
                                    <Field label=t("invoice_series") name="branch_invoice_series" value=new_series err=row_err placeholder="A"/>
                                    <button class="btn" type="submit">{t("save")}</button>
                                    <button class="btn ghost" type="button" on:click=move |_| renaming.set(None)>{t("cancel")}</button>
                                </form>
                            </Show>
                            <span class="muted invoicing">{invoicing}</span>
                            {b.archived.then(|| view! { <Badge kind="muted" text=t("archived")/> })}
                            {(manage && !b.archived).then(|| {
                                let (rid, current) = (rid.clone(), current.clone());
                                view! {
                                    <button class="btn ghost" on:click=move |_| {
                                        row_err.set(None);
                                        new_name.set(current.clone());
                                        new_address.set(cur_address.clone());
                                        new_phone.set(cur_phone.clone());
                                        new_series.set(cur_series.clone());
                                        renaming.set(Some((rid.clone(), current.clone())));
                                    }>{t("edit")}</button>
                                    {may_number_here.then(|| view! {
                                        <button class="btn ghost invoicer-here" on:click=move |_| number_here(hid.clone(), hcode.clone())>{t("number_invoices_here")}</button>
                                    })}
                                    <button class="btn ghost" on:click=move |_| archive(aid.clone(), aname.clone())>{t("archive")}</button>
                                }
                            })}
                        </div>
                    }
                }).collect_view()
            })}
            <FormError err=row_err fields=&["branch_name", "branch_address", "branch_phone", "branch_invoice_series"]/>
            <Show when=|| can(dashoffice_domain::Permission::ManageBranches)>
                <form class="inline-form" on:submit=add novalidate>
                    <Field label=t("branch_code") name="code" value=code err=err placeholder="CEN"/>
                    <Field label=t("name") name="name" value=name err=err/>
                    <button class="btn" type="submit">{t("add_branch")}</button>
                </form>
            </Show>
            <FormError err=err fields=&["code", "name"]/>
        </section>
    }
}

/// Whether customers are asked to rate a WhatsApp conversation once it is resolved (saved as soon
/// as it is ticked), and the question in the shop's own words.
#[component]
fn SurveyPanel(shop: RwSignal<Load<ShopView>>) -> impl IntoView {
    let err = RwSignal::new(None::<ApiError>);
    let question = RwSignal::new(String::new());
    // The stored question fills the field when the shop loads or changes, unless typed in since.
    let filled = StoredValue::new(String::new());
    Effect::new(move |_| {
        if let Load::Ready(s) = shop.get()
            && question.get_untracked() == filled.get_value()
        {
            question.set(s.satisfaction_question.clone());
            filled.set_value(s.satisfaction_question);
        }
    });
    let on = move || shop.with(|s| s.ready().is_some_and(|s| s.satisfaction_survey));
    let save = move |body: UpdateShop| {
        err.set(None);
        spawn_local(async move {
            match api::patch::<_, ShopView>("/api/v1/shop", &body).await {
                Ok(s) => {
                    filled.set_value(question.get_untracked());
                    shop.set(Load::Ready(s));
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let toggle = move |ev: leptos::ev::Event| {
        save(UpdateShop { satisfaction_survey: Some(event_target_checked(&ev)), ..Default::default() });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save(UpdateShop { satisfaction_question: Some(question.get_untracked()), ..Default::default() });
    };
    view! {
        <form class="card form" id="satisfaction" on:submit=submit novalidate>
            <h2>{t("satisfaction_survey")}</h2>
            <p class="muted">{t("satisfaction_survey_help")}</p>
            <label class="check">
                <input type="checkbox" id="satisfaction-survey" name="satisfaction_survey" prop:checked=on on:change=toggle/>
                " "{t("satisfaction_survey_on")}
            </label>
            <Field label=t("satisfaction_question") name="satisfaction_question" value=question err=err rows=2
                placeholder="¿Cómo te atendimos? Toca una opción para calificar esta conversación."/>
            <FormError err=err fields=&["satisfaction_survey", "satisfaction_question"]/>
            <button class="btn" type="submit">{t("save")}</button>
        </form>
    }
}

/// The statuses a WhatsApp notice can tell, with their field names (errors name them so).
const NOTICES: [(&str, &str, &str); 6] = [
    ("confirmed", "order_notices.confirmed", "status_confirmed"),
    ("paid", "order_notices.paid", "status_paid"),
    ("fulfilled", "order_notices.fulfilled", "status_fulfilled"),
    ("delivered", "order_notices.delivered", "status_delivered"),
    ("cancelled", "order_notices.cancelled", "status_cancelled"),
    ("refunded", "order_notices.refunded", "status_refunded"),
];

/// WhatsApp notices to the customer when an order reaches a status, and the template that goes
/// instead once the customer's 24-hour window has closed.
#[component]
fn NoticesPanel(shop: RwSignal<Load<ShopView>>) -> impl IntoView {
    let texts: [RwSignal<String>; 6] = std::array::from_fn(|_| RwSignal::new(String::new()));
    let template = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let templates = loader(|| {
        watch(&["inbox"]);
        api::get::<Vec<TemplateView>>("/api/v1/whatsapp/templates")
    });
    // The stored notices fill the fields when the shop loads or changes, unless typed in since.
    let filled = StoredValue::new(<[String; 7]>::default());
    Effect::new(move |_| {
        if let Load::Ready(s) = shop.get() {
            let mut fresh = <[String; 7]>::default();
            for (i, (status, ..)) in NOTICES.iter().enumerate() {
                fresh[i] = s.order_notices.get(*status).cloned().unwrap_or_default();
            }
            fresh[6] = s.order_notice_template.clone().unwrap_or_default();
            let before = filled.get_value();
            let fields = texts.iter().copied().chain(std::iter::once(template));
            for (i, x) in fields.enumerate() {
                if before[i] == x.get_untracked() {
                    x.set(fresh[i].clone());
                }
            }
            filled.set_value(fresh);
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        // Only what changed here: a notice edited on another device meanwhile keeps its text.
        let stored = filled.get_value();
        let notices: std::collections::BTreeMap<String, String> = NOTICES
            .iter()
            .zip(texts)
            .enumerate()
            .filter(|(i, (_, x))| x.get_untracked() != stored[*i])
            .map(|(_, ((status, ..), x))| (status.to_string(), x.get_untracked()))
            .collect();
        let chosen = template.get_untracked();
        let body = UpdateShop {
            order_notices: (!notices.is_empty()).then_some(notices),
            order_notice_template: (chosen != stored[6]).then_some(chosen),
            ..Default::default()
        };
        spawn_local(async move {
            match api::patch::<_, ShopView>("/api/v1/shop", &body).await {
                Ok(s) => {
                    // Saved: every field shows the shop as stored.
                    filled.set_value(<[String; 7]>::default());
                    for x in texts.iter().chain(std::iter::once(&template)) {
                        x.set(String::new());
                    }
                    shop.set(Load::Ready(s));
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let options = move || {
        let chosen = template.get();
        let names: Vec<String> =
            templates.with(|l| l.ready().map(|ts| ts.iter().map(|tp| tp.name.clone()).collect()).unwrap_or_default());
        names
            .into_iter()
            .map(|n| {
                let selected = n == chosen;
                view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
            })
            .collect_view()
    };
    view! {
        <form class="card form" id="order-notices" on:submit=submit novalidate>
            <h2>{t("order_notices")}</h2>
            <p class="muted">{t("order_notices_help")}</p>
            <div class="grid two">
                {NOTICES.iter().zip(texts).map(|((_, field, label), value)| view! {
                    <Field label=t(label) name=field value=value err=err rows=2/>
                }).collect_view()}
            </div>
            <label class="field" for="f-order_notice_template"><span>{t("order_notice_template")}</span>
                <select id="f-order_notice_template" prop:value=move || template.get()
                    on:change=move |ev| template.set(event_target_value(&ev))>
                    <option value="">{t("order_notice_no_template")}</option>
                    {options}
                </select>
                <small class="field-error" id="f-order_notice_template-err" role="alert">
                    {move || err.with(|e| e.as_ref().and_then(|e| e.field("order_notice_template")))}
                </small>
            </label>
            <FormError err=err fields=&["order_notices.confirmed", "order_notices.paid", "order_notices.fulfilled",
                "order_notices.delivered", "order_notices.cancelled", "order_notices.refunded", "order_notice_template"]/>
            <button class="btn" type="submit">{t("save")}</button>
        </form>
    }
}

#[component]
fn WhatsAppPanel() -> impl IntoView {
    let templates = loader(|| {
        watch(&["inbox"]);
        api::get::<Vec<TemplateView>>("/api/v1/whatsapp/templates")
    });
    let canned = loader(|| {
        watch(&["inbox"]);
        api::get::<Vec<CannedResponse>>("/api/v1/canned-responses")
    });
    let code = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    // A template approved at Meta, registered here so staff can send it outside the 24-hour
    // window: its name and language exactly as at Meta, and its body for the preview.
    let tname = RwSignal::new(String::new());
    let tlang = RwSignal::new("es".to_string());
    let tbody = RwSignal::new(String::new());
    let terr = RwSignal::new(None::<ApiError>);
    let register = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        terr.set(None);
        let body = tbody.get_untracked();
        let tp = TemplateView {
            name: tname.get_untracked().trim().to_string(),
            language: tlang.get_untracked().trim().to_string(),
            params: placeholders(&body),
            body,
        };
        spawn_local(async move {
            match api::post::<_, TemplateView>("/api/v1/whatsapp/templates", &tp).await {
                Ok(_) => {
                    tname.set(String::new());
                    tbody.set(String::new());
                    crate::state::changed(&["inbox"]);
                    app().say(t("saved"));
                }
                Err(e) => terr.set(Some(e.on_field("name", "template_name"))),
            }
        });
    };
    let remove_template = move |name: String, language: String| {
        let question = crate::i18n::tf("confirm_delete_template", &[&name, &language]);
        let path = format!("/api/v1/whatsapp/templates/{}/{}", enc(&name), enc(&language));
        crate::components::delete_confirmed(&question, path, &["inbox"], None, terr, || {});
    };
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let body = CannedResponse { short_code: code.get_untracked(), text: text.get_untracked() };
        spawn_local(async move {
            match api::post::<_, CannedResponse>("/api/v1/canned-responses", &body).await {
                Ok(_) => {
                    code.set(String::new());
                    text.set(String::new());
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let remove = move |c: String| {
        let question = crate::i18n::tf("confirm_delete_canned", &[&c]);
        let path = format!("/api/v1/canned-responses/{}", enc(&c));
        crate::components::delete_confirmed(&question, path, &["inbox"], None, err, || {});
    };
    view! {
        <section class="card">
            <h2>{t("whatsapp")}</h2>
            <p class="muted">{t("whatsapp_settings_help")}</p>
            <h3>{t("templates")}</h3>
            <p class="muted">{t("templates_help")}</p>
            {show(templates, move |ts: Vec<TemplateView>| rows_or_empty(ts, "no_templates", |tp| {
                let manage = can(dashoffice_domain::Permission::ManageBots);
                let (n, l) = (tp.name.clone(), tp.language.clone());
                view! {
                    <div class="row-item"><strong>{tp.name.clone()}</strong><span>{tp.language.clone()}</span><span class="muted">{tp.body.clone()}</span>
                    {manage.then(|| view! { <button class="btn ghost" on:click=move |_| remove_template(n.clone(), l.clone())>{t("delete")}</button> })}</div>
                }
            }))}
            <Show when=|| can(dashoffice_domain::Permission::ManageBots)>
                <form class="form" id="register-template" on:submit=register novalidate>
                    <div class="grid two">
                        <Field label=t("template_name") name="template_name" value=tname err=terr placeholder="pedido_listo"/>
                        <Field label=t("language") name="language" value=tlang err=terr placeholder="es_MX"/>
                    </div>
                    <Field label=t("template_body") name="body" value=tbody err=terr placeholder="Hola {{1}}, tu pedido {{2}} está listo."/>
                    <button class="btn" type="submit">{t("register_template")}</button>
                </form>
            </Show>
            <FormError err=terr fields=&["template_name", "language", "body"]/>
            <h3>{t("canned_responses")}</h3>
            {show(canned, move |cs: Vec<CannedResponse>| rows_or_empty(cs, "no_canned", |c| {
                let code = c.short_code.clone();
                let manage = can(dashoffice_domain::Permission::ManageBots);
                view! { <div class="row-item"><strong>"/"{c.short_code.clone()}</strong><span>{c.text.clone()}</span>
                    {manage.then(|| view! { <button class="btn ghost" on:click=move |_| remove(code.clone())>{t("delete")}</button> })}</div> }
            }))}
            <Show when=|| can(dashoffice_domain::Permission::ManageBots)>
                <form class="inline-form" on:submit=add novalidate>
                    <Field label=t("short_code") name="short_code" value=code err=err placeholder="hola"/>
                    <Field label=t("text") name="text" value=text err=err/>
                    <button class="btn" type="submit">{t("add")}</button>
                </form>
            </Show>
            <FormError err=err fields=&["short_code", "text"]/>
        </section>
    }
}

/// The number of a template body's parameters: its highest `{{n}}` (Meta numbers them 1, 2, …).
fn placeholders(body: &str) -> u8 {
    body.split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").and_then(|(n, _)| n.trim().parse::<u8>().ok()))
        .max()
        .unwrap_or(0)
}
