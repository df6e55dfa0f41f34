//! Sellers and other staff: roles, branches and sales performance of the last 30 days.

use dashoffice_domain::{
    Role,
    api::{AnalyticsSummary, BranchView, CreateStaff, Page, StaffView},
};
use leptos::{prelude::*, task::spawn_local};

use super::PageHead;
use crate::{
    api::{self, ApiError},
    components::{Badge, Empty, Field, FormError, loader, show},
    i18n::{money, number, t},
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
    let staff = loader(|| {
        watch(&["staff"]);
        api::get::<Page<StaffView>>("/api/v1/staff?limit=500")
    });
    let perf = loader(|| {
        watch(&["orders"]);
        api::get::<AnalyticsSummary>("/api/v1/analytics/summary?days=30")
    });
    let branches = loader(|| api::get::<Vec<BranchView>>("/api/v1/branches"));
    let adding = RwSignal::new(false);
    let can_manage =
        move || app().user.with(|u| u.as_ref().is_some_and(|u| matches!(u.role, Role::Owner | Role::Manager)));
    view! {
        <PageHead title=t("nav_sellers")>
            {move || can_manage().then(|| view! {
                <button class="btn primary" on:click=move |_| adding.update(|a| *a = !*a)>{t("new_staff")}</button>
            })}
        </PageHead>
        {move || adding.get().then(|| view! { <NewStaff done=adding branches=branches/> })}
        {show(staff, move |p: Page<StaffView>| {
            if p.items.is_empty() {
                return view! { <Empty text=t("no_staff")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|s| {
                    let sales = move || {
                        perf.with(|p| p.ready().and_then(|p| p.sales_by_seller.iter().find(|x| x.key == s.id).map(|x| (money(&x.amount, &p.currency), x.count))))
                    };
                    let branch = s.branch_id.clone().map(|b| {
                        branches.with(|bs| bs.ready().and_then(|bs| bs.iter().find(|x| x.id == b).map(|x| x.name.clone()))).unwrap_or(b)
                    });
                    let sales2 = sales.clone();
                    view! {
                        <tr>
                            <td>{s.name.clone()}{s.archived.then(|| view! { <Badge kind="muted" text=t("archived")/> })}</td>
                            <td>{s.email.clone()}</td>
                            <td>{role_text(s.role)}</td>
                            <td>{branch.unwrap_or_else(|| t("all_branches").to_string())}</td>
                            <td class="num">{move || sales().map(|x| number(x.1 as f64)).unwrap_or_else(|| "0".into())}</td>
                            <td class="num">{move || sales2().map(|x| x.0).unwrap_or_else(|| "—".into())}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("name")}</th><th>{t("email")}</th><th>{t("role")}</th><th>{t("branch")}</th>
                    <th class="num">{t("orders_30_days")}</th><th class="num">{t("sales_30_days")}</th></tr></thead>
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
