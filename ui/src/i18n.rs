//! Every string of the UI goes through [`t`]: one table (i18n.tsv: key, English, Spanish) for both
//! languages. The language comes from the user's choice, else the browser's; money, dates and
//! numbers are formatted for it by the browser's Intl.

use std::{cell::Cell, collections::HashMap, sync::OnceLock};

use leptos::prelude::Set;
use wasm_bindgen::JsValue;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Spanish.
    Es,
}

impl Lang {
    /// The saved choice, else the browser's language (Spanish for any `es-*`), else English.
    pub fn detect() -> Self {
        let l = match crate::state::load_pref("dashoffice.lang").as_deref() {
            Some("es") => Lang::Es,
            Some("en") => Lang::En,
            _ => Lang::of_browser(),
        };
        CURRENT.with(|c| c.set(l));
        l
    }
    /// `en` or `es`.
    /// The language the browser asks for (Spanish for any "es-…", else English).
    pub fn of_browser() -> Self {
        match web_sys::window().and_then(|w| w.navigator().language()) {
            Some(s) if s.to_ascii_lowercase().starts_with("es") => Lang::Es,
            _ => Lang::En,
        }
    }
    /// Switches to `lang` as the user's own choice (kept on this device), or back to the
    /// browser's language with `None`.
    pub fn choose(st: crate::state::AppState, lang: Option<Lang>) {
        crate::state::save_pref("dashoffice.lang", lang.map(Lang::code));
        st.lang.set(lang.unwrap_or_else(Lang::of_browser));
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }
    /// The BCP 47 tag used for formatting: the browser's own when it is the same language.
    pub fn tag(self) -> String {
        let browser = web_sys::window().and_then(|w| w.navigator().language()).unwrap_or_default();
        if browser.to_ascii_lowercase().starts_with(self.code()) {
            browser
        } else {
            match self {
                Lang::En => "en-US".into(),
                Lang::Es => "es-MX".into(),
            }
        }
    }
    /// Makes this the language of [`t`] and remembers it.
    pub fn activate(self) {
        CURRENT.with(|c| c.set(self));
        if let Some(d) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = d.set_attribute("lang", self.code());
        }
    }
}

thread_local! {
    static CURRENT: Cell<Lang> = const { Cell::new(Lang::En) };
}

static TABLE_TEXT: &str = include_str!("i18n.tsv");

fn table() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static T: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    T.get_or_init(|| {
        TABLE_TEXT
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut p = l.split('\t');
                Some((p.next()?, (p.next()?, p.next()?)))
            })
            .collect()
    })
}

/// The text of a key built at run time (`rule_…`, `code_…`), if the table has it.
fn lookup(key: &str) -> Option<&'static str> {
    table().get(key).map(|(en, es)| match lang() {
        Lang::En => *en,
        Lang::Es => *es,
    })
}

/// The numbers in an API message ("between 1 and 500" → ["1", "500"]).
fn numbers(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in message.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '.' && !cur.is_empty()) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(cur.trim_end_matches('.').to_string());
            cur.clear();
        }
    }
    out
}

/// A field error's message in the current language. The API writes English; in Spanish the
/// rule's sentence (`rule_<rule>` in i18n.tsv) is shown with the API message's numbers, and the
/// API's own words where the table has no sentence for the rule.
pub fn field_message(rule: &str, message: &str) -> String {
    if lang() == Lang::En {
        return message.to_string();
    }
    if rule == "one_of" {
        // The allowed values are codes (draft, paid, …): kept as the API lists them.
        return tf("rule_one_of", &[message.trim_start_matches("one of ")]);
    }
    let Some(text) = lookup(&format!("rule_{rule}")) else { return message.to_string() };
    let nums = numbers(message);
    let need = text.matches("{}").count();
    if nums.len() < need {
        // The numbers sit in a closing parenthesis: without them, the sentence alone.
        return text.split(" (").next().unwrap_or(text).to_string();
    }
    let mut out = text.to_string();
    for n in nums.iter().take(need) {
        out = out.replacen("{}", n, 1);
    }
    out
}

/// An error's sentence in the current language (see [`field_message`]; errors without a field
/// by their code, `code_<code>` in i18n.tsv).
pub fn error_text(e: &crate::api::ApiError) -> String {
    if e.status == 0 {
        return tf("error_network", &[&e.message]);
    }
    if lang() == Lang::En {
        return e.message.clone();
    }
    if !e.fields.is_empty() {
        return e
            .fields
            .iter()
            .map(|f| format!("{}: {}", field_label(&f.field), field_message(&f.rule, &f.message)))
            .collect::<Vec<_>>()
            .join("; ");
    }
    lookup(&format!("code_{}", e.code)).map_or_else(|| e.message.clone(), str::to_string)
}

/// An API field's name as the forms label it ("lines[2].quantity" → "Line 3 · Quantity"); the
/// API's name where the table has no label for it.
fn field_label(field: &str) -> String {
    if let Some((n, rest)) = field.strip_prefix("lines[").and_then(|r| r.split_once(']'))
        && let Ok(n) = n.parse::<usize>()
    {
        let line = tf("line_n", &[&(n + 1).to_string()]);
        let rest = rest.trim_start_matches('.');
        return if rest.is_empty() { line } else { format!("{line} · {}", field_label(rest)) };
    }
    // `customer_id` reads as the form's "Customer".
    lookup(field)
        .or_else(|| field.strip_suffix("_id").and_then(lookup))
        .map_or_else(|| field.to_string(), str::to_string)
}

/// The current language.
pub fn lang() -> Lang {
    CURRENT.with(Cell::get)
}

/// The text of `key` in the current language (the key itself if the table lacks it).
pub fn t(key: &'static str) -> &'static str {
    match table().get(key) {
        Some((en, es)) => match lang() {
            Lang::En => en,
            Lang::Es => es,
        },
        None => key,
    }
}

/// [`t`] with `{}` replaced by each argument in turn.
pub fn tf(key: &'static str, args: &[&str]) -> String {
    let mut out = t(key).to_string();
    for a in args {
        if let Some(i) = out.find("{}") {
            out.replace_range(i..i + 2, a);
        }
    }
    out
}

fn locales() -> js_sys::Array {
    js_sys::Array::of1(&JsValue::from_str(&lang().tag()))
}

fn opts(pairs: &[(&str, JsValue)]) -> js_sys::Object {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

/// An amount ("1234.5") in a currency, as people of the language write it ("$1,234.50").
pub fn money(amount: &str, currency: &str) -> String {
    let n: f64 = amount.parse().unwrap_or(0.0);
    let nf = js_sys::Intl::NumberFormat::new(
        &locales(),
        &opts(&[("style", "currency".into()), ("currency", currency.into())]),
    );
    nf.format()
        .call1(&JsValue::NULL, &JsValue::from_f64(n))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| format!("{amount} {currency}"))
}

/// A whole number with the language's grouping.
pub fn number(n: f64) -> String {
    let nf = js_sys::Intl::NumberFormat::new(&locales(), &js_sys::Object::new());
    nf.format()
        .call1(&JsValue::NULL, &JsValue::from_f64(n))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| n.to_string())
}

/// A date and time (Unix ms), short.
pub fn datetime(ms: i64) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    String::from(
        d.to_locale_string(&lang().tag(), &opts(&[("dateStyle", "medium".into()), ("timeStyle", "short".into())])),
    )
}

/// A time of day (Unix ms) if today, else a short date.
pub fn when(ms: i64) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    let now = js_sys::Date::new_0();
    let same_day = d.to_date_string() == now.to_date_string();
    let o = if same_day { opts(&[("timeStyle", "short".into())]) } else { opts(&[("dateStyle", "short".into())]) };
    String::from(d.to_locale_string(&lang().tag(), &o))
}

/// A calendar day ("2026-11-29") as the language writes it, short.
pub fn day(iso: &str) -> String {
    let d = js_sys::Date::new(&JsValue::from_str(&format!("{iso}T12:00:00")));
    String::from(d.to_locale_date_string(&lang().tag(), &opts(&[("day", "numeric".into()), ("month", "short".into())])))
}
