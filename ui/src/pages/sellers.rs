//! Sellers and other staff: roles, branches, shifts, accounts and sales performance of the last
//! 30 days.

use dashoffice_domain::{
    Role,
    api::{AnalyticsSummary, BranchView, CreateStaff, Page, StaffView, UpdateStaff},
    inbox::ShiftView,
};
use leptos::{prelude::*, task::spawn_local};

use super::PageHead;
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Empty, ErrorBox, Field, FormError, loader, show},
    i18n::{money, number, t, tf},
    state::{app, watch},
};

pub(crate) fn role_text(r: Role) -> &'static str {
    match r {
        Role::Owner => t("role_owner"),
        Role::Manager => t("role_manager"),
        Role::Seller => t("role_seller"),
        Role::Support => t("role_support"),
    }
}

#[component]
pub(crate) fn Sellers() -> impl IntoView {
    // Any part of a name or e-mail, and a role (all by default: the page lists all staff).
    let q = RwSignal::new(String::new());
    let role = RwSignal::new(String::new());
    let staff = loader(move || {
        watch(&["staff"]);
        let path = format!("/api/v1/staff?limit=500&q={}&role={}", enc(&q.get()), enc(&role.get()));
        async move { api::get::<Page<StaffView>>(&path).await }
    });
    let perf = loader(|| {
        watch(&["orders"]);
        api::get::<AnalyticsSummary>("/api/v1/analytics/summary?days=30")
    });
    let branches = loader(|| api::get::<Vec<BranchView>>("/api/v1/branches"));
    let shifts = loader(|| {
        watch(&["inbox"]);
        api::get::<Vec<ShiftView>>("/api/v1/shifts")
    });
    let adding = RwSignal::new(false);
    let editing = RwSignal::new(None::<StaffView>);
    let can_manage =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| matches!(u.role, Role::Owner | Role::Manager)));
    let me = app().user.with_untracked(|u| u.as_ref().map(|u| u.id.clone()).unwrap_or_default());
    let err = RwSignal::new(None::<ApiError>);
    // A change to someone's role or branch, or archiving them, is saved at once.
    let update = move |id: String, body: UpdateStaff| {
        err.set(None);
        spawn_local(async move {
            match api::patch::<_, StaffView>(&format!("/api/v1/staff/{}", enc(&id)), &body).await {
                Ok(_) => {
                    crate::state::changed(&["staff"]);
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // Everyone puts themselves on or off shift; managers do it for their staff.
    let set_shift = move |id: String, on: bool| {
        err.set(None);
        spawn_local(async move {
            let body = serde_json::json!({ "on": on });
            match api::json::<_, serde_json::Value>("PUT", &format!("/api/v1/shifts/{}", enc(&id)), &body).await {
                Ok(_) => {
                    crate::state::changed(&["inbox"]);
                    app().say(t(if on { "now_on_shift" } else { "now_off_shift" }));
                }
                Err(e) => {
                    // The box goes back to what the replica holds.
                    crate::state::changed(&["inbox"]);
                    err.set(Some(e));
                }
            }
        });
    };
    let archive = move |id: String, name: String| {
        let question = tf("archive_staff_confirm", &[&name]);
        let path = format!("/api/v1/staff/{}", enc(&id));
        crate::components::delete_confirmed(&question, path, &["staff"], Some("staff_archived"), err, || {});
    };
    view! {
        <PageHead title=t("nav_sellers")>
            {move || can_manage().then(|| view! {
                <button class="btn primary" on:click=move |_| adding.update(|a| *a = !*a)>{t("new_staff")}</button>
            })}
        </PageHead>
        {move || adding.get().then(|| view! { <NewStaff done=adding branches=branches/> })}
        {move || editing.get().map(|s| view! { <EditStaff staff=s done=editing/> })}
        {move || err.get().map(|e| view! { <ErrorBox err=e/> })}
        <div class="filters">
            <input type="search" placeholder=t("search_staff") aria-label=t("search_staff") bind:value=q/>
            <select aria-label=t("filter_role") bind:value=role>
                <option value="">{t("all_roles")}</option>
                {[Role::Seller, Role::Support, Role::Manager, Role::Owner].into_iter().map(|r| view! {
                    <option value=r.as_str()>{role_text(r)}</option>
                }).collect_view()}
            </select>
        </div>
        {show(staff, move |p: Page<StaffView>| {
            let me = me.clone();
            if p.items.is_empty() {
                return view! { <Empty text=t("no_staff")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|s| {
                    let sid = s.id.clone();
                    let sales = move || {
                        perf.with(|p| p.ready().and_then(|p| p.sales_by_seller.iter().find(|x| x.key == sid).map(|x| (money(&x.amount, &p.currency), x.count))))
                    };
                    let branch = s.branch_id.clone().map(|b| {
                        branches.with(|bs| bs.ready().and_then(|bs| bs.iter().find(|x| x.id == b).map(|x| x.name.clone()))).unwrap_or(b)
                    });
                    let sales2 = sales.clone();
                    // Managers change others' role and branch in place (not their own: no locking
                    // oneself out), and archive people who left.
                    let editable = can_manage() && !s.archived && s.id != me;
                    let (rid, bid, aid, aname) = (s.id.clone(), s.id.clone(), s.id.clone(), s.name.clone());
                    let (shift_id, edit_me) = (s.id.clone(), s.clone());
                    let may_shift = !s.archived && (s.id == me || can_manage());
                    let on_shift = {
                        let id = s.id.clone();
                        move || shifts.with(|l| l.ready().is_some_and(|l| l.iter().any(|x| x.staff_id == id && x.on)))
                    };
                    let on_shift2 = on_shift.clone();
                    let shift_label = tf("on_shift_of", &[&s.name]);
                    let shift_cell = view! {
                        <input type="checkbox" aria-label=shift_label disabled=!may_shift prop:checked=on_shift
                            on:change=move |ev| set_shift(shift_id.clone(), event_target_checked(&ev))/>
                        <span class="sr-only">{move || if on_shift2() { t("yes") } else { t("no") }}</span>
                    };
                    // Managers correct a member's name and e-mail and set a new password; each
                    // person edits their own name and e-mail here too (their password in Settings).
                    // Only an owner changes an owner's account.
                    let i_am_owner = app().user.with_untracked(|u| u.as_ref().is_some_and(|u| u.role == Role::Owner));
                    let may_edit = !s.archived && (s.id == me || (can_manage() && (s.role != Role::Owner || i_am_owner)));
                    let role_cell = if editable {
                        let current = s.role.as_str();
                        view! {
                            <select aria-label=t("role") on:change=move |ev| {
                                if let Some(r) = Role::parse(&event_target_value(&ev)) {
                                    update(rid.clone(), UpdateStaff { role: Some(r), ..Default::default() });
                                }
                            }>
                                {[Role::Seller, Role::Support, Role::Manager, Role::Owner].into_iter().map(|r| view! {
                                    <option value=r.as_str() selected=r.as_str() == current>{role_text(r)}</option>
                                }).collect_view()}
                            </select>
                        }.into_any()
                    } else {
                        role_text(s.role).into_any()
                    };
                    let branch_cell = if editable {
                        let current = s.branch_id.clone().unwrap_or_default();
                        let options = branches.with(|b| b.ready().map(|b| b.iter().filter(|b| !b.archived).map(|b| {
                            view! { <option value=b.id.clone() selected=b.id == current>{b.name.clone()}</option> }
                        }).collect_view()));
                        view! {
                            <select aria-label=t("branch") on:change=move |ev| {
                                update(bid.clone(), UpdateStaff { branch_id: Some(event_target_value(&ev)), ..Default::default() });
                            }>
                                <option value="" selected=s.branch_id.is_none()>{t("all_branches")}</option>
                                {options}
                            </select>
                        }.into_any()
                    } else {
                        branch.unwrap_or_else(|| t("all_branches").to_string()).into_any()
                    };
                    view! {
                        <tr>
                            <td>{s.name.clone()}{s.archived.then(|| view! { <Badge kind="muted" text=t("archived")/> })}</td>
                            <td>{s.email.clone()}</td>
                            <td>{role_cell}</td>
                            <td>{branch_cell}</td>
                            <td>{shift_cell}</td>
                            <td class="num">{move || sales().map(|x| number(x.1 as f64)).unwrap_or_else(|| "0".into())}</td>
                            <td class="num">{move || sales2().map(|x| x.0).unwrap_or_else(|| "—".into())}</td>
                            <td class="row-actions">
                                {may_edit.then(|| view! {
                                    <button class="btn ghost" on:click=move |_| editing.set(Some(edit_me.clone()))>{t("edit")}</button>
                                })}
                                {editable.then(|| view! {
                                    <button class="btn ghost" on:click=move |_| archive(aid.clone(), aname.clone())>{t("archive")}</button>
                                })}
                            </td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("name")}</th><th>{t("email")}</th><th>{t("role")}</th><th>{t("branch")}</th><th>{t("on_shift")}</th>
                    <th class="num">{t("orders_30_days")}</th><th class="num">{t("sales_30_days")}</th><th><span class="sr-only">{t("actions")}</span></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
            .into_any()
        })}
    }
}

#[component]
fn NewStaff(done: RwSignal<bool>, branches: RwSignal<crate::components::Load<Vec<BranchView>>>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new("seller".to_string());
    let branch = RwSignal::new(String::new());
    // Sellers and support belong to one branch: start with the first one chosen.
    Effect::new(move |_| {
        let first = branches.with(|b| b.ready().and_then(|b| b.iter().find(|x| !x.archived).map(|x| x.id.clone())));
        if let Some(first) = first
            && branch.get_untracked().is_empty()
        {
            branch.set(first);
        }
    });
    let err = RwSignal::new(None::<ApiError>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let role = match role.get_untracked().as_str() {
            "owner" => Role::Owner,
            "manager" => Role::Manager,
            "support" => Role::Support,
            _ => Role::Seller,
        };
        let body = CreateStaff {
            name: name.get_untracked(),
            email: email.get_untracked(),
            role,
            branch_id: Some(branch.get_untracked()).filter(|b| !b.is_empty()),
            password: password.get_untracked(),
        };
        spawn_local(async move {
            match api::post::<_, StaffView>("/api/v1/staff", &body).await {
                Ok(_) => {
                    done.set(false);
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card form" on:submit=submit novalidate>
            <div class="grid two">
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("email") name="email" value=email err=err kind="email" required=true/>
                <Field label=t("password") name="password" value=password err=err kind="password" required=true/>
                <label class="field"><span>{t("role")}</span>
                    <select bind:value=role>
                        <option value="seller">{t("role_seller")}</option>
                        <option value="support">{t("role_support")}</option>
                        <option value="manager">{t("role_manager")}</option>
                        <option value="owner">{t("role_owner")}</option>
                    </select></label>
                <label class="field"><span>{t("branch")}</span>
                    <select name="branch_id" bind:value=branch>
                        <option value="">{t("all_branches")}</option>
                        {move || branches.with(|b| b.ready().map(|b| b.iter().map(|b| view! { <option value=b.id.clone()>{b.name.clone()}</option> }).collect_view()))}
                    </select>
                    <small class="field-error" role="alert">{move || err.with(|e| e.as_ref().and_then(|e| e.field("branch_id")))}</small>
                </label>
            </div>
            <FormError err=err fields=&["name", "email", "password", "branch_id"]/>
            <button class="btn primary" type="submit">{t("save")}</button>
        </form>
    }
}

/// Changes a member's name, e-mail (their login) and, for someone else's account, password.
#[component]
fn EditStaff(staff: StaffView, done: RwSignal<Option<StaffView>>) -> impl IntoView {
    let own = app().user.with_untracked(|u| u.as_ref().is_some_and(|u| u.id == staff.id));
    let name = RwSignal::new(staff.name.clone());
    let email = RwSignal::new(staff.email.clone());
    let password = RwSignal::new(String::new());
    // One's own login changes only with one's current password.
    let current_password = RwSignal::new(String::new());
    // The daily summary goes to owners and managers only, and is theirs (or the owner's) to turn
    // on or off; the language is that of every e-mail the member gets.
    let i_am_owner = app().user.with_untracked(|u| u.as_ref().is_some_and(|u| u.role == Role::Owner));
    let gets_summary = matches!(staff.role, Role::Owner | Role::Manager) && (own || i_am_owner);
    let daily_summary = RwSignal::new(staff.daily_summary);
    let lang = RwSignal::new(staff.lang.clone());
    let (was_summary, was_lang) = (staff.daily_summary, staff.lang.clone());
    let err = RwSignal::new(None::<ApiError>);
    let id = staff.id.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let pw = password.get_untracked();
        let body = UpdateStaff {
            name: Some(name.get_untracked()),
            email: Some(email.get_untracked()),
            password: (!own && !pw.is_empty()).then_some(pw),
            current_password: Some(current_password.get_untracked()).filter(|p| own && !p.is_empty()),
            // Only when changed here: a choice made on another device meanwhile stays.
            daily_summary: Some(daily_summary.get_untracked()).filter(|on| gets_summary && *on != was_summary),
            lang: Some(lang.get_untracked()).filter(|l| *l != was_lang),
            ..Default::default()
        };
        let id = id.clone();
        spawn_local(async move {
            match api::patch::<_, StaffView>(&format!("/api/v1/staff/{}", enc(&id)), &body).await {
                Ok(_) => {
                    crate::state::changed(&["staff"]);
                    done.set(None);
                    app().say(t("saved"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card form" id="edit-staff" on:submit=submit novalidate>
            <h2>{tf("edit_staff_title", &[&staff.name])}</h2>
            <div class="grid two">
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("email") name="email" value=email err=err kind="email" required=true/>
                {own.then(|| view! {
                    <Field label=t("current_password_for_email") name="current_password" value=current_password err=err kind="password"/>
                })}
                {(!own).then(|| view! {
                    <Field label=t("new_password_optional") name="password" value=password err=err kind="password"/>
                })}
            </div>
            <label class="field inline" for="f-lang"><span>{t("email_lang")}</span>
                <select id="f-lang" prop:value=move || lang.get() on:change=move |ev| lang.set(event_target_value(&ev))>
                    <option value="es" selected=staff.lang == "es">"Español"</option>
                    <option value="en" selected=staff.lang == "en">"English"</option>
                </select>
            </label>
            {gets_summary.then(|| view! {
                <label class="check">
                    <input type="checkbox" id="f-daily_summary" name="daily_summary" prop:checked=move || daily_summary.get()
                        on:change=move |ev| daily_summary.set(event_target_checked(&ev))/>
                    " "{t("daily_summary_me")}
                </label>
            })}
            {own.then(|| view! { <p class="muted">{t("own_password_in_settings")}</p> })}
            <FormError err=err fields=&["name", "email", "password", "current_password", "lang", "daily_summary"]/>
            <div class="row-item">
                <button class="btn primary" type="submit">{t("save")}</button>
                <button class="btn ghost" type="button" on:click=move |_| done.set(None)>{t("cancel")}</button>
            </div>
        </form>
    }
}
