//! Bots: their triggers and nodes, edited as the definition the API validates, and a tester that
//! shows what the bot would answer and why (trigger, intent, confidence, node).

use leptos::{prelude::*, task::spawn_local};
use serde_json::Value;

use super::PageHead;
use crate::{
    api::{self, ApiError},
    components::{Empty, ErrorBox, FormError, Load, loader, show},
    i18n::t,
    state::{app, watch},
};

fn name_of(b: &Value) -> String {
    b.get("name").and_then(Value::as_str).unwrap_or("default").to_string()
}

#[component]
pub(crate) fn Bots() -> impl IntoView {
    let bots = loader(|| {
        watch(&["inbox"]);
        api::get::<Vec<Value>>("/api/v1/bots")
    });
    let selected = RwSignal::new(String::new());
    let current = Memo::new(move |_| {
        bots.with(|b| {
            let list = b.ready()?;
            let sel = selected.get();
            list.iter().find(|x| name_of(x) == sel).or_else(|| list.first()).cloned()
        })
    });
    view! {
        <PageHead title=t("nav_bots")/>
        {show(bots, move |list: Vec<Value>| {
            if list.is_empty() {
                return view! { <Empty text=t("no_bots")/> }.into_any();
            }
            let tabs = list
                .iter()
                .map(|b| {
                    let n = name_of(b);
                    let n2 = n.clone();
                    let on = move || current.with(|c| c.as_ref().map(name_of) == Some(n2.clone()));
                    view! { <button class=move || if on() { "tab selected" } else { "tab" } on:click=move |_| selected.set(n.clone())>{name_of(b)}</button> }
                })
                .collect_view();
            view! { <nav class="tabs">{tabs}</nav> }.into_any()
        })}
        {move || current.get().map(|b| view! { <BotEditor bot=b/> })}
    }
}

#[component]
fn BotEditor(bot: Value) -> impl IntoView {
    let name = name_of(&bot);
    let source = RwSignal::new(serde_json::to_string_pretty(&bot).unwrap_or_default());
    let err = RwSignal::new(None::<ApiError>);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        err.set(None);
        let parsed: Result<Value, _> = serde_json::from_str(&source.get_untracked());
        match parsed {
            Ok(v) => spawn_local(async move {
                match api::post::<_, Value>("/api/v1/bots", &v).await {
                    Ok(_) => app().say(t("saved")),
                    Err(e) => err.set(Some(e)),
                }
            }),
            Err(e) => err.set(Some(ApiError {
                status: 400,
                code: "malformed_json".into(),
                message: format!("{}: {e}", t("invalid_json")),
                fields: Vec::new(),
                raw: String::new(),
            })),
        }
    };
    // Shown as people read them; the definition below stays the exact source.
    let text_of = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let triggers = bot.get("triggers").and_then(Value::as_array).cloned().unwrap_or_default();
    let trig_rows = triggers
        .iter()
        .map(|tr| {
            let kind = text_of(tr.get("kind"));
            let mut what = [text_of(tr.get("match")), text_of(tr.get("value"))]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(c) = tr.get("min_confidence").and_then(Value::as_f64) {
                what.push_str(&format!(" (≥ {c})"));
            }
            let node = text_of(tr.get("node"));
            view! { <tr><td>{kind}</td><td>{what}</td><td><code>{node}</code></td></tr> }
        })
        .collect_view();
    // Nodes by id (a map in the definition).
    let nodes: Vec<(String, Value)> =
        bot.get("nodes").and_then(Value::as_object).map(|m| m.clone().into_iter().collect()).unwrap_or_default();
    let node_rows = nodes
        .into_iter()
        .map(|(id, n)| {
            let action = text_of(n.get("action"));
            let mut detail = text_of(n.get("text"));
            if let Some(tpl) = n.get("template").and_then(Value::as_str) {
                detail = format!("{tpl} {detail}").trim().to_string();
            }
            let next: Vec<String> = n
                .get("next")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| format!("{k} → {}", text_of(Some(v)))).collect())
                .unwrap_or_default();
            if !next.is_empty() {
                detail = format!("{detail} [{}]", next.join(", ")).trim().to_string();
            }
            view! { <tr><td><code>{id}</code></td><td>{action}</td><td>{detail}</td></tr> }
        })
        .collect_view();
    view! {
        <div class="grid two">
            <section class="card">
                <h2>{t("triggers")}</h2>
                <div class="table-wrap"><table class="table"><thead><tr><th>{t("kind")}</th><th>{t("detail")}</th><th>{t("node")}</th></tr></thead><tbody>{trig_rows}</tbody></table></div>
                <h2>{t("nodes")}</h2>
                <div class="table-wrap"><table class="table"><thead><tr><th>"id"</th><th>{t("action")}</th><th>{t("detail")}</th></tr></thead><tbody>{node_rows}</tbody></table></div>
            </section>
            <TryBot name=name.clone()/>
        </div>
        <form class="card form" on:submit=save novalidate>
            <h2>{t("edit_definition")}</h2>
            <p class="muted">{t("bot_editor_help")}</p>
            <label class="sr-only" for="bot-src">{t("edit_definition")}</label>
            <textarea id="bot-src" class="code" rows="18" spellcheck="false" bind:value=source></textarea>
            <FormError err=err/>
            <button class="btn primary" type="submit">{t("save")}</button>
        </form>
    }
}

#[component]
fn TryBot(name: String) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Load<Value>>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let path = format!("/api/v1/bots/{}/try", api::enc(&name));
        let body = serde_json::json!({ "text": text.get_untracked() });
        result.set(Some(Load::Loading));
        spawn_local(async move {
            result.set(Some(match api::post::<_, Value>(&path, &body).await {
                Ok(v) => Load::Ready(v),
                Err(e) => Load::Failed(e),
            }));
        });
    };
    let shown = move || {
        result.get().map(|r| match r {
            Load::Loading => view! { <p class="muted">{t("loading")}</p> }.into_any(),
            Load::Failed(e) => view! { <ErrorBox err=e/> }.into_any(),
            Load::Ready(v) => {
                let replies = v
                    .get("replies")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let body = r.get("text").and_then(Value::as_str).unwrap_or("").to_string();
                        view! { <div class="msg msg-out">{body}</div> }
                    })
                    .collect_view();
                let ex = &v["explain"];
                let get = |k: &str| super::inbox::explain_value(ex.get(k));
                view! {
                    <div class="messages">{replies}</div>
                    <dl class="explain-list">
                        <dt>{t("trigger")}</dt><dd>{get("trigger")}</dd>
                        <dt>{t("intent")}</dt><dd>{get("intent")}</dd>
                        <dt>{t("confidence")}</dt><dd>{get("confidence")}</dd>
                        <dt>{t("node")}</dt><dd>{super::inbox::explain_value(v.get("node"))}</dd>
                        <dt>{t("handoff")}</dt><dd>{if v.get("handoff").and_then(Value::as_bool).unwrap_or(false) { t("yes") } else { t("no") }}</dd>
                    </dl>
                    <details><summary>{t("why_full")}</summary><pre class="code">{serde_json::to_string_pretty(ex).unwrap_or_default()}</pre></details>
                }
                .into_any()
            }
        })
    };
    view! {
        <section class="card">
            <h2>{t("try_bot")}</h2>
            <form class="inline-form" on:submit=submit>
                <label class="field grow"><span>{t("customer_writes")}</span><input name="try" bind:value=text placeholder="¿Cuánto cuesta el café?"/></label>
                <button class="btn primary" type="submit">{t("try")}</button>
            </form>
            {shown}
        </section>
    }
}
