//! The catalog: search and filters, create and edit, stock per branch, CSV import and export.

use dashoffice_domain::api::{
    AdjustStock, BranchView, CreateProduct, DecimalText, Page, ProductView, StockView, UpdateProduct,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
};

use super::{PageHead, param_id, split_tags};
use crate::{
    api::{self, ApiError, enc},
    components::{Badge, Empty, ErrorBox, Field, FormError, Load, MoreButton, loader, pages, show},
    i18n::{money, number, t},
    state::{app, watch},
};

#[component]
pub(crate) fn Products() -> impl IntoView {
    let query = use_query_map();
    let q = RwSignal::new(query.with_untracked(|m| m.get("q").unwrap_or_default()));
    let active = RwSignal::new(String::new());
    let shown = RwSignal::new(1u32);
    // A new search or filter starts again at the first page.
    Effect::new(move |_| {
        q.track();
        active.track();
        shown.set(1);
    });
    let data = loader(move || {
        watch(&["products"]);
        let mut path = format!("/api/v1/products?sort=name&q={}", enc(&q.get()));
        match active.get().as_str() {
            "1" => path.push_str("&active=true"),
            "0" => path.push_str("&active=false"),
            _ => {}
        }
        let n = shown.get();
        async move { pages::<ProductView>(&path, n).await }
    });
    let csv = crate::components::CsvTools::new("products");
    view! {
        <PageHead title=t("nav_products")>
            {csv.buttons()}
            <A href="/products/new" attr:class="btn primary">{t("new_product")}</A>
        </PageHead>
        {csv.report()}
        <div class="filters">
            <input type="search" placeholder=t("search_products") aria-label=t("search_products") bind:value=q/>
            <select aria-label=t("filter_active") bind:value=active>
                <option value="">{t("all")}</option>
                <option value="1">{t("active")}</option>
                <option value="0">{t("inactive")}</option>
            </select>
        </div>
        {show(data, |p: Page<ProductView>| {
            if p.items.is_empty() {
                return view! { <Empty text=t("no_products")/> }.into_any();
            }
            let rows = p
                .items
                .into_iter()
                .map(|p| {
                    let href = format!("/products/{}", p.id);
                    view! {
                        <tr>
                            <td><A href=href>{p.name.clone()}</A>{p.sku_conflict.then(|| view! { <Badge kind="warn" text=t("sku_conflict")/> })}</td>
                            <td>{p.sku.clone()}</td>
                            <td class="num">{money(&p.price, &p.currency)}</td>
                            <td>{if p.active { view! { <Badge kind="ok" text=t("active")/> } } else { view! { <Badge kind="muted" text=t("inactive")/> } }}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap"><table class="table">
                    <thead><tr><th>{t("name")}</th><th>{t("sku")}</th><th class="num">{t("price")}</th><th>{t("state")}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
            .into_any()
        })}
        <MoreButton data=data pages=shown/>
    }
}

/// A new product being written, kept until it is created (or discarded), as the new order is.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProductDraft {
    sku: String,
    name: String,
    description: String,
    price: String,
    tax_rate: String,
    tags: String,
    active: bool,
}

const PRODUCT_DRAFT: &str = "new-product";

#[component]
pub(crate) fn ProductEdit() -> impl IntoView {
    let id = param_id();
    let is_new = id.get_untracked().is_empty();
    let restored = is_new.then(|| crate::state::load_form::<ProductDraft>(PRODUCT_DRAFT)).flatten();
    let was_restored = RwSignal::new(restored.is_some());
    let d = restored.unwrap_or(ProductDraft {
        sku: String::new(),
        name: String::new(),
        description: String::new(),
        price: String::new(),
        tax_rate: "0".into(),
        tags: String::new(),
        active: true,
    });
    let sku = RwSignal::new(d.sku);
    let name = RwSignal::new(d.name);
    let description = RwSignal::new(d.description);
    let price = RwSignal::new(d.price);
    let tax_rate = RwSignal::new(d.tax_rate);
    let tags = RwSignal::new(d.tags);
    let active = RwSignal::new(d.active);
    let err = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    if is_new {
        // Kept at every change; opening the form alone writes nothing.
        Effect::new(move |opened: Option<()>| {
            let draft = ProductDraft {
                sku: sku.get(),
                name: name.get(),
                description: description.get(),
                price: price.get(),
                tax_rate: tax_rate.get(),
                tags: tags.get(),
                active: active.get(),
            };
            if opened.is_some() {
                let empty = [&draft.sku, &draft.name, &draft.description, &draft.price, &draft.tags]
                    .iter()
                    .all(|v| v.trim().is_empty());
                crate::state::keep_form(PRODUCT_DRAFT, (!empty).then_some(&draft));
            }
        });
    }
    let discard = move |_| {
        crate::state::keep_form::<ProductDraft>(PRODUCT_DRAFT, None);
        for f in [sku, name, description, price, tags] {
            f.set(String::new());
        }
        tax_rate.set("0".into());
        active.set(true);
        was_restored.set(false);
    };
    let loaded = loader(move || {
        let id = id.get();
        async move {
            if id.is_empty() {
                return Ok(None);
            }
            api::get::<ProductView>(&format!("/api/v1/products/{id}")).await.map(Some)
        }
    });
    Effect::new(move |_| {
        if let Load::Ready(Some(p)) = loaded.get() {
            sku.set(p.sku);
            name.set(p.name);
            description.set(p.description);
            price.set(p.price);
            tax_rate.set(p.tax_rate);
            tags.set(p.tags.join(", "));
            active.set(p.active);
        }
    });
    let navigate = use_navigate();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        err.set(None);
        let id = id.get_untracked();
        let navigate = navigate.clone();
        spawn_local(async move {
            let r = if id.is_empty() {
                let body = CreateProduct {
                    sku: sku.get_untracked(),
                    name: name.get_untracked(),
                    description: description.get_untracked(),
                    price: DecimalText(price.get_untracked()),
                    currency: None,
                    tax_rate: Some(DecimalText(tax_rate.get_untracked())),
                    active: Some(active.get_untracked()),
                    tags: split_tags(&tags.get_untracked()),
                };
                api::post::<_, ProductView>("/api/v1/products", &body).await
            } else {
                let body = UpdateProduct {
                    sku: Some(sku.get_untracked()),
                    name: Some(name.get_untracked()),
                    description: Some(description.get_untracked()),
                    price: Some(DecimalText(price.get_untracked())),
                    currency: None,
                    tax_rate: Some(DecimalText(tax_rate.get_untracked())),
                    active: Some(active.get_untracked()),
                    tags: Some(split_tags(&tags.get_untracked())),
                };
                api::patch::<_, ProductView>(&format!("/api/v1/products/{id}"), &body).await
            };
            busy.set(false);
            match r {
                Ok(p) => {
                    if id.is_empty() {
                        crate::state::keep_form::<ProductDraft>(PRODUCT_DRAFT, None);
                    }
                    app().say(t("saved"));
                    navigate(&format!("/products/{}", p.id), Default::default());
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    // Archiving takes a product out of the catalog and the bots' answers; past orders keep it.
    let navigate2 = use_navigate();
    let archive = move |_| {
        let id = id.get_untracked();
        if id.is_empty() {
            return;
        }
        let question = crate::i18n::tf("archive_product_confirm", &[&name.get_untracked()]);
        let path = format!("/api/v1/products/{}", crate::api::enc(&id));
        let navigate = navigate2.clone();
        crate::components::delete_confirmed(&question, path, &["products"], Some("product_archived"), err, move || {
            navigate("/products", Default::default());
        });
    };
    let can_archive = move || {
        !id.get().is_empty()
            && app().user.with(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::Archive)))
    };
    let title = move || if id.get().is_empty() { t("new_product") } else { t("edit_product") };
    view! {
        <PageHead title=title()><A href="/products" attr:class="btn ghost">{t("back")}</A></PageHead>
        {move || match loaded.get() {
            Load::Failed(e) => Some(view! { <ErrorBox err=e/> }),
            _ => None,
        }}
        <form class="card form" on:submit=save novalidate>
            <Show when=move || was_restored.get()>
                <p class="notice draft-restored">{t("product_draft_restored")}" "
                    <button type="button" class="btn ghost" on:click=discard>{t("discard_draft")}</button>
                </p>
            </Show>
            <div class="grid two">
                <Field label=t("sku") name="sku" value=sku err=err required=true/>
                <Field label=t("name") name="name" value=name err=err required=true/>
                <Field label=t("price") name="price" value=price err=err placeholder="0.00" required=true/>
                <Field label=t("tax_rate") name="tax_rate" value=tax_rate err=err placeholder="0.16"/>
            </div>
            <Field label=t("description") name="description" value=description err=err/>
            <Field label=t("tags_hint") name="tags" value=tags err=err/>
            <label class="check"><input type="checkbox" bind:checked=active/>{t("active_for_sale")}</label>
            <FormError err=err fields=&["sku", "name", "price", "tax_rate", "description", "tags"]/>
            <div class="row-item">
                <button class="btn primary" type="submit" disabled=move || busy.get()>{t("save")}</button>
                <Show when=can_archive>
                    <button class="btn ghost" type="button" on:click=archive.clone()>{t("archive_product")}</button>
                </Show>
            </div>
        </form>
        {move || (!id.get().is_empty()).then(|| view! { <StockPanel id=id.get()/> })}
    }
}

#[component]
fn StockPanel(id: String) -> impl IntoView {
    let pid = id.clone();
    let stock = loader(move || {
        watch(&["stock", "orders"]);
        let path = format!("/api/v1/products/{pid}/stock");
        async move { api::get::<Vec<StockView>>(&path).await }
    });
    let branches = loader(|| api::get::<Vec<BranchView>>("/api/v1/branches"));
    let delta = RwSignal::new(String::new());
    let reason = RwSignal::new("receipt".to_string());
    let branch = RwSignal::new(String::new());
    let err = RwSignal::new(None::<ApiError>);
    let adjust = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let id = id.clone();
        let Ok(d) = delta.get_untracked().trim().parse::<i64>() else {
            err.set(Some(ApiError {
                status: 422,
                code: "validation".into(),
                message: t("whole_number").into(),
                fields: vec![dashoffice_domain::FieldError::new("delta", "integer", t("whole_number"))],
                raw: String::new(),
            }));
            return;
        };
        let body = AdjustStock {
            branch_id: Some(branch.get_untracked()).filter(|b| !b.is_empty()),
            delta: d,
            reason: reason.get_untracked(),
        };
        spawn_local(async move {
            match api::post::<_, StockView>(&format!("/api/v1/products/{id}/stock"), &body).await {
                Ok(_) => {
                    delta.set(String::new());
                    crate::state::changed(&["stock"]);
                    app().say(t("stock_adjusted"));
                }
                Err(e) => err.set(Some(e)),
            }
        });
    };
    let branch_name = move |id: &str| {
        branches
            .with(|b| b.ready().and_then(|b| b.iter().find(|x| x.id == id).map(|x| x.name.clone())))
            .unwrap_or_else(|| id.to_string())
    };
    let branch_options = move || {
        branches.with(|b| {
            b.ready().map(|b| {
                b.iter()
                    .filter(|x| !x.archived)
                    .map(|x| view! { <option value=x.id.clone()>{x.name.clone()}</option> })
                    .collect_view()
            })
        })
    };
    view! {
        <section class="card">
            <h2>{t("stock_per_branch")}</h2>
            {show(stock, move |s: Vec<StockView>| {
                if s.is_empty() {
                    return view! { <Empty text=t("no_stock")/> }.into_any();
                }
                let rows = s
                    .iter()
                    .map(|x| view! {
                        <tr class:oversold=x.oversold>
                            <td>{branch_name(&x.branch_id)}</td><td class="num">{number(x.on_hand as f64)}</td>
                            <td class="num">{number(x.adjusted as f64)}</td><td class="num">{number(x.committed as f64)}</td>
                        </tr>
                    })
                    .collect_view();
                view! {
                    <table class="table"><thead><tr><th>{t("branch")}</th><th class="num">{t("on_hand")}</th><th class="num">{t("adjusted")}</th><th class="num">{t("committed")}</th></tr></thead>
                    <tbody>{rows}</tbody></table>
                }
                .into_any()
            })}
            <form class="inline-form" on:submit=adjust novalidate>
                <label class="field"><span>{t("branch")}</span>
                    <select bind:value=branch><option value="">{t("my_branch")}</option>{branch_options}</select></label>
                <Field label=t("units_delta") name="delta" value=delta err=err kind="number"/>
                <label class="field"><span>{t("reason")}</span>
                    <select bind:value=reason>
                        <option value="receipt">{t("reason_receipt")}</option>
                        <option value="count">{t("reason_count")}</option>
                        <option value="loss">{t("reason_loss")}</option>
                        <option value="return">{t("reason_return")}</option>
                    </select></label>
                <button class="btn" type="submit">{t("adjust_stock")}</button>
            </form>
            <FormError err=err fields=&["delta"]/>
        </section>
    }
}
