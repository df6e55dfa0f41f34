//! The design system: loading, empty and error states, form fields that show the API's error for
//! their field, buttons, badges, cards and a bar chart. Styles live in ui/style.css (tokens as CSS
//! custom properties; light and dark).

use std::{cell::Cell, future::Future, rc::Rc};

use leptos::{prelude::*, task::spawn_local};

use crate::{api::ApiError, i18n::t};

/// The state of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    /// Not answered yet.
    Loading,
    /// The answer.
    Ready(T),
    /// The error.
    Failed(ApiError),
}

impl<T> Load<T> {
    /// The value, if ready.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(v) => Some(v),
            _ => None,
        }
    }
}

/// Runs `f` now and again whenever a signal it reads (before its first await) changes; keeps
/// showing the previous answer while a newer one loads, and ignores answers that arrive late. An
/// answer equal to the one shown changes nothing: a live update elsewhere (another record, another
/// branch) does not redraw the list under the person's pointer, so no click or tick is lost.
pub fn loader<T, Fut>(f: impl Fn() -> Fut + 'static) -> RwSignal<Load<T>>
where
    T: PartialEq + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let out = RwSignal::new(Load::Loading);
    let generation = Rc::new(Cell::new(0u64));
    Effect::new(move |_| {
        let fut = f();
        let g = generation.get() + 1;
        generation.set(g);
        let generation = generation.clone();
        spawn_local(async move {
            let r = fut.await;
            if generation.get() == g {
                let next = match r {
                    Ok(v) => Load::Ready(v),
                    Err(e) => Load::Failed(e),
                };
                // The page may be gone by now (its signal disposed): then nothing is shown.
                if out.try_with_untracked(|shown| *shown != next) == Some(true) {
                    out.set(next);
                }
            }
        });
    });
    out
}

/// The options of a customer select bound to `chosen`: the first 50 customers by name matching
/// `search`, and the chosen customer (a preset, a restored draft, or one picked before the search
/// changed) even if not among them. The chosen one is marked: the options arrive after the value
/// is set, and the select would otherwise show none.
pub fn customer_options(chosen: RwSignal<String>, search: RwSignal<String>) -> impl Fn() -> Option<AnyView> + Copy {
    use dashoffice_domain::api::{CustomerView, Page};
    let customers = loader(move || {
        let path = format!("/api/v1/customers?limit=50&sort=name&q={}", crate::api::enc(&search.get()));
        async move { crate::api::get::<Page<CustomerView>>(&path).await }
    });
    let preset_customer = loader(move || {
        let id = chosen.get();
        let path = format!("/api/v1/customers/{}", crate::api::enc(&id));
        async move { if id.is_empty() { Ok(None) } else { crate::api::get::<CustomerView>(&path).await.map(Some) } }
    });
    move || {
        let preset = preset_customer.with(|p| p.ready().cloned().flatten());
        let current = chosen.get_untracked();
        customers.with(|c| {
            c.ready().map(|p| {
                let listed = preset.as_ref().is_some_and(|x| p.items.iter().any(|c| c.id == x.id));
                preset
                    .iter()
                    .filter(|_| !listed)
                    .chain(p.items.iter())
                    .map(|c| {
                        let label = match &c.phone {
                            Some(ph) => format!("{} · {ph}", c.name),
                            None => c.name.clone(),
                        };
                        view! { <option value=c.id.clone() selected=c.id == current>{label}</option> }
                    })
                    .collect_view()
                    .into_any()
            })
        })
    }
}

/// Items per page of the long lists.
pub const PAGE: u32 = 100;

/// The first `pages` pages of a list endpoint, followed by their cursors, as one page (its
/// `next_cursor` says whether there is more). A list re-read for a live change reads as many
/// pages as it shows, so "show more" is not undone by an update.
pub async fn pages<T: serde::de::DeserializeOwned>(
    path: &str,
    pages: u32,
) -> Result<dashoffice_domain::api::Page<T>, ApiError> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..pages.max(1) {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={PAGE}&cursor={}", crate::api::enc(c)),
            None => format!("{path}{sep}limit={PAGE}"),
        };
        let page = crate::api::get::<dashoffice_domain::api::Page<T>>(&url).await?;
        items.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    Ok(dashoffice_domain::api::Page { items, next_cursor: cursor })
}

/// "Show more" under a list read with [`pages`], while the list has more.
#[component]
pub fn MoreButton<T: Clone + Send + Sync + 'static>(
    data: RwSignal<Load<dashoffice_domain::api::Page<T>>>,
    pages: RwSignal<u32>,
) -> impl IntoView {
    let more = move || data.with(|d| d.ready().is_some_and(|p| p.next_cursor.is_some()));
    view! {
        <Show when=more>
            <div class="more"><button class="btn" on:click=move |_| pages.update(|n| *n += 1)>{t("show_more")}</button></div>
        </Show>
    }
}

/// Renders a request: a spinner while loading, the error box on failure, else `f(value)`.
pub fn show<T, V>(data: RwSignal<Load<T>>, f: impl Fn(T) -> V + Send + Sync + 'static) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    move || match data.get() {
        Load::Ready(v) => f(v).into_any(),
        _ => pending(data).into_any(),
    }
}

/// The loading indicator or the error while `data` is not ready, nothing once it is: for views
/// that draw the ready value themselves, keyed (`<For>`), instead of through [`show`].
pub fn pending<T: Send + Sync + 'static>(data: RwSignal<Load<T>>) -> impl IntoView {
    move || {
        data.with(|d| match d {
            Load::Loading => Some(view! { <Spinner/> }.into_any()),
            Load::Failed(e) => Some(view! { <ErrorBox err=e.clone()/> }.into_any()),
            Load::Ready(_) => None,
        })
    }
}

/// A loading indicator.
#[component]
pub fn Spinner() -> impl IntoView {
    view! { <div class="state loading" role="status" aria-live="polite"><span class="spin" aria-hidden="true"></span>{t("loading")}</div> }
}

/// Nothing to show yet.
#[component]
pub fn Empty(#[prop(into)] text: String) -> impl IntoView {
    view! { <div class="state empty">{text}</div> }
}

/// A failed request, in words.
#[component]
pub fn ErrorBox(err: ApiError) -> impl IntoView {
    let msg = crate::i18n::error_text(&err);
    view! { <div class="state error" role="alert">{msg}</div> }
}

/// A form's error that names no field of the form (or several).
#[component]
pub fn FormError(
    err: RwSignal<Option<ApiError>>,
    #[prop(default = &[])] fields: &'static [&'static str],
) -> impl IntoView {
    move || {
        err.get()
            .filter(|e| !e.fields.iter().any(|f| fields.contains(&f.field.as_str())))
            .map(|e| view! { <ErrorBox err=e/> })
    }
}

/// A labelled input bound to `value`; shows the API's message for `name` under it. With `rows`,
/// a multi-line box of that many rows (an address).
#[component]
pub fn Field(
    #[prop(into)] label: String,
    name: &'static str,
    value: RwSignal<String>,
    err: RwSignal<Option<ApiError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] placeholder: &'static str,
    #[prop(optional)] required: bool,
    #[prop(optional)] rows: u32,
) -> impl IntoView {
    let id = format!("f-{name}");
    let msg = move || err.with(|e| e.as_ref().and_then(|e| e.field(name)));
    let err_id = format!("{id}-err");
    let for_id = id.clone();
    let described = err_id.clone();
    let invalid = move || msg().is_some().to_string();
    let input = if rows > 0 {
        view! {
            <textarea id=id name=name rows=rows placeholder=placeholder bind:value=value required=required
                aria-invalid=invalid aria-describedby=described></textarea>
        }
        .into_any()
    } else {
        view! {
            <input id=id name=name type=kind placeholder=placeholder bind:value=value required=required
                aria-invalid=invalid aria-describedby=described/>
        }
        .into_any()
    };
    view! {
        <label class="field" for=for_id>
            <span>{label}{required.then_some(" *")}</span>
            {input}
            <small class="field-error" id=err_id role="alert">{msg}</small>
        </label>
    }
}

/// A status label with its colour.
#[component]
pub fn Badge(#[prop(into)] kind: String, #[prop(into)] text: String) -> impl IntoView {
    view! { <span class=format!("badge badge-{kind}")>{text}</span> }
}

/// A figure on the dashboard.
#[component]
pub fn Stat(#[prop(into)] label: String, #[prop(into)] value: String) -> impl IntoView {
    view! { <div class="card stat"><div class="stat-label">{label}</div><div class="stat-value">{value}</div></div> }
}

/// A bar chart of (label, value) pairs, with each value in the bar's tooltip and a table for
/// screen readers.
#[component]
pub fn BarChart(#[prop(into)] title: String, bars: Vec<(String, f64, String)>) -> impl IntoView {
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1.0);
    let n = bars.len().max(1) as f64;
    let w = 600.0;
    let h = 160.0;
    let bw = w / n;
    let every = (bars.len() / 8).max(1);
    let rects = bars
        .iter()
        .enumerate()
        .map(|(i, (label, v, shown))| {
            let bh = (v / max) * (h - 24.0);
            let x = i as f64 * bw;
            let tip = format!("{label}: {shown}");
            let text = (i % every == 0).then(|| {
                view! { <text x=x + bw / 2.0 y=h - 4.0 text-anchor="middle" class="axis">{label.clone()}</text> }
            });
            view! {
                <g>
                    <rect x=x + bw * 0.15 y=h - 20.0 - bh width=bw * 0.7 height=bh.max(0.5) class="bar"><title>{tip}</title></rect>
                    {text}
                </g>
            }
        })
        .collect_view();
    let rows = bars.into_iter().map(|(l, _, s)| view! { <tr><td>{l}</td><td>{s}</td></tr> }).collect_view();
    view! {
        <figure class="chart">
            <figcaption>{title.clone()}</figcaption>
            <svg viewBox=format!("0 0 {w} {h}") role="img" aria-label=title preserveAspectRatio="none">{rects}</svg>
            <table class="sr-only"><tbody>{rows}</tbody></table>
        </figure>
    }
}

/// The key of an order status, translated.
pub fn status_text(s: &str) -> &'static str {
    match s {
        "draft" => t("status_draft"),
        "confirmed" => t("status_confirmed"),
        "paid" => t("status_paid"),
        "fulfilled" => t("status_fulfilled"),
        "delivered" => t("status_delivered"),
        "cancelled" => t("status_cancelled"),
        "refunded" => t("status_refunded"),
        "pending" => t("conv_pending"),
        "open" => t("conv_open"),
        "resolved" => t("conv_resolved"),
        _ => t("unknown"),
    }
}

/// A list's rows, or the empty state when there are none.
pub fn rows_or_empty<T, V: IntoView + 'static>(items: Vec<T>, empty: &'static str, row: impl Fn(T) -> V) -> AnyView {
    if items.is_empty() {
        return view! { <Empty text=t(empty)/> }.into_any();
    }
    items.into_iter().map(row).collect_view().into_any()
}

/// Asks "are you sure?" in the browser's own dialog before something that cannot be undone;
/// true when the person agreed.
pub fn confirm(question: &str) -> bool {
    web_sys::window().and_then(|w| w.confirm_with_message(question).ok()).unwrap_or(false)
}

/// Removes (archives) something after the person confirmed `question`: DELETE `path`; on
/// success the pages showing `collections` read them again, `done` is said (if any) and `then`
/// runs; an error lands in `err`.
pub fn delete_confirmed(
    question: &str,
    path: String,
    collections: &'static [&'static str],
    done: Option<&'static str>,
    err: RwSignal<Option<ApiError>>,
    then: impl FnOnce() + 'static,
) {
    if !confirm(question) {
        return;
    }
    err.set(None);
    spawn_local(async move {
        match crate::api::send("DELETE", &path, None, "").await {
            Ok(_) => {
                crate::state::changed(collections);
                if let Some(d) = done {
                    crate::state::app().say(t(d));
                }
                then();
            }
            Err(e) => err.set(Some(e)),
        }
    });
}

/// CSV export and import of one collection (`products`, `customers`): the two buttons for the
/// page's header and the import's report for under it. Shown only to roles that may import.
#[derive(Clone, Copy)]
pub struct CsvTools {
    collection: &'static str,
    report: RwSignal<Option<Result<dashoffice_domain::api::ImportReport, ApiError>>>,
}

impl CsvTools {
    /// Tools for `/api/v1/{collection}/export` and `/import`.
    pub fn new(collection: &'static str) -> Self {
        Self { collection, report: RwSignal::new(None) }
    }

    /// Export and import buttons (nothing for roles without ImportExport).
    pub fn buttons(self) -> impl IntoView {
        let allowed = crate::state::app()
            .user
            .with_untracked(|u| u.as_ref().is_some_and(|u| u.role.can(dashoffice_domain::Permission::ImportExport)));
        let export = move |_| {
            spawn_local(async move {
                match crate::api::text(&format!("/api/v1/{}/export", self.collection)).await {
                    Ok(csv) => crate::api::download(&format!("{}.csv", self.collection), &csv, "text/csv"),
                    Err(e) => crate::state::app().say(crate::i18n::error_text(&e)),
                }
            })
        };
        let import = move |ev: leptos::ev::Event| {
            use wasm_bindgen::JsCast;
            let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else {
                return;
            };
            let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
            input.set_value("");
            spawn_local(async move {
                let r = match crate::api::read_file(file).await {
                    Ok(text) => {
                        let path = format!("/api/v1/{}/import?mode=valid", self.collection);
                        match crate::api::send("POST", &path, Some(text), "text/csv").await {
                            Ok(r) => serde_json::from_str(&r.body).map_err(|e| ApiError {
                                status: r.status,
                                code: "decode".into(),
                                message: e.to_string(),
                                fields: Vec::new(),
                                raw: String::new(),
                            }),
                            // Rows refused come back as a report too.
                            Err(e) => serde_json::from_str(&e.raw).map_err(|_| e),
                        }
                    }
                    Err(e) => Err(e),
                };
                if r.as_ref().is_ok_and(|r: &dashoffice_domain::api::ImportReport| r.committed) {
                    crate::state::changed(&[self.collection]);
                }
                self.report.set(Some(r));
            });
        };
        allowed.then(|| {
            view! {
                <button class="btn" on:click=export>{t("export_csv")}</button>
                <label class="btn">{t("import_csv")}<input type="file" accept=".csv,text/csv" class="sr-only" on:change=import/></label>
            }
        })
    }

    /// The last import's report: rows read, created, updated, and the first rows refused.
    pub fn report(self) -> impl IntoView {
        move || {
            self.report.get().map(|r| match r {
                Ok(rep) => {
                    let errors = rep
                        .errors
                        .iter()
                        .take(20)
                        .map(|e| {
                            let line =
                                crate::i18n::tf("import_row_error", &[&e.line.to_string(), &e.field, &e.message]);
                            view! { <li>{line}</li> }
                        })
                        .collect_view();
                    let summary = crate::i18n::tf(
                        "import_summary",
                        &[
                            &rep.rows.to_string(),
                            &rep.created.to_string(),
                            &rep.updated.to_string(),
                            &rep.errors.len().to_string(),
                        ],
                    );
                    view! {
                        <div class="card" role="status">
                            <p>{summary}</p>
                            <ul class="errors">{errors}</ul>
                        </div>
                    }
                    .into_any()
                }
                Err(e) => view! { <ErrorBox err=e/> }.into_any(),
            })
        }
    }
}
