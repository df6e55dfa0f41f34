//! Reading the Cloud API's webhook envelope: every message type and delivery status it sends,
//! normalised into what the inbox stores. Unknown fields are ignored (Meta adds fields over time);
//! an unknown message type becomes `unsupported` rather than an error.

use dashoffice_core::entities::inbox::Inbound;
use dashoffice_domain::inbox::MessageStatus;
use serde_json::{Value, json};

/// One thing a webhook reported.
#[derive(Debug, Clone)]
pub enum Event {
    /// A customer's message.
    Message(Inbound),
    /// A delivery report for a message the shop sent.
    Status {
        /// The number it concerns.
        phone_number_id: String,
        /// The message.
        wamid: String,
        /// New status.
        status: MessageStatus,
        /// Code and title when failed.
        error: Option<String>,
    },
    /// A change of another field (templates, account updates): kept, not processed.
    Other {
        /// The number, if the change names one.
        phone_number_id: String,
        /// The change's field name.
        field: String,
    },
}

/// Why a body is not a WhatsApp webhook.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    Json(String),
    /// JSON, but not a whatsapp_business_account envelope.
    #[error("not a WhatsApp Business Account webhook: {0}")]
    Shape(String),
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Parses a raw body (as signed) into events, in the order Meta listed them.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if v.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err(ParseError::Shape("\"object\" must be \"whatsapp_business_account\"".into()));
    }
    let entries = v
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::Shape("\"entry\" must be an array".into()))?;
    let mut out = Vec::new();
    for e in entries {
        for c in e.get("changes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let field = s(c, "field");
            let value = c.get("value").cloned().unwrap_or(Value::Null);
            let pnid = value.get("metadata").map(|m| s(m, "phone_number_id")).unwrap_or_default();
            if field != "messages" {
                out.push(Event::Other { phone_number_id: pnid, field });
                continue;
            }
            let contacts = value.get("contacts").and_then(Value::as_array).cloned().unwrap_or_default();
            let name_of = |wa: &str| {
                contacts
                    .iter()
                    .find(|c| s(c, "wa_id") == wa)
                    .or(contacts.first())
                    .and_then(|c| c.get("profile"))
                    .map(|p| s(p, "name"))
                    .unwrap_or_default()
            };
            for m in value.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                out.push(Event::Message(message(m, &pnid, &name_of)));
            }
            for st in value.get("statuses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                let status = match s(st, "status").as_str() {
                    "sent" => MessageStatus::Sent,
                    "delivered" => MessageStatus::Delivered,
                    "read" => MessageStatus::Read,
                    "failed" => MessageStatus::Failed,
                    // "deleted", "warning" and future statuses change nothing the inbox shows.
                    _ => continue,
                };
                let error = st.get("errors").and_then(Value::as_array).and_then(|a| a.first()).map(|e| {
                    let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
                    format!("{code} {}", s(e, "title")).trim().to_string()
                });
                out.push(Event::Status { phone_number_id: pnid.clone(), wamid: s(st, "id"), status, error });
            }
        }
    }
    Ok(out)
}

fn media(m: &Value, kind: &str) -> (String, Value) {
    let o = m.get(kind).cloned().unwrap_or(Value::Null);
    let caption = s(&o, "caption");
    let mut payload = json!({
        "media_id": s(&o, "id"),
        "mime_type": s(&o, "mime_type"),
        "sha256": s(&o, "sha256"),
    });
    if kind == "document" {
        payload["filename"] = json!(s(&o, "filename"));
    }
    if kind == "audio" {
        payload["voice"] = json!(o.get("voice").and_then(Value::as_bool).unwrap_or(false));
    }
    if kind == "sticker" {
        payload["animated"] = json!(o.get("animated").and_then(Value::as_bool).unwrap_or(false));
    }
    let text = if caption.is_empty() {
        match kind {
            "image" => "📷 Imagen".to_string(),
            "audio" => "🎤 Audio".to_string(),
            "video" => "🎬 Video".to_string(),
            "document" => format!("📄 {}", s(&o, "filename")),
            _ => "Sticker".to_string(),
        }
    } else {
        caption
    };
    (text, payload)
}

fn message(m: &Value, pnid: &str, name_of: &dyn Fn(&str) -> String) -> Inbound {
    let wa_id = s(m, "from");
    let kind = s(m, "type");
    let at =
        m.get("timestamp").and_then(|t| t.as_str().and_then(|t| t.parse::<i64>().ok()).or(t.as_i64())).unwrap_or(0)
            * 1000;
    let (kind, text, mut payload) = match kind.as_str() {
        "text" => ("text".to_string(), m.get("text").map(|t| s(t, "body")).unwrap_or_default(), json!({})),
        "image" | "audio" | "video" | "document" | "sticker" => {
            let (t, p) = media(m, &kind);
            (kind.clone(), t, p)
        }
        "location" => {
            let l = m.get("location").cloned().unwrap_or(Value::Null);
            let label =
                [s(&l, "name"), s(&l, "address")].into_iter().filter(|x| !x.is_empty()).collect::<Vec<_>>().join(", ");
            let text = if label.is_empty() { "📍 Ubicación".to_string() } else { format!("📍 {label}") };
            (
                kind.clone(),
                text,
                json!({ "latitude": l.get("latitude"), "longitude": l.get("longitude"),
                "name": s(&l, "name"), "address": s(&l, "address"), "url": s(&l, "url") }),
            )
        }
        "contacts" => {
            let cs = m.get("contacts").cloned().unwrap_or(json!([]));
            let names: Vec<String> = cs
                .as_array()
                .map(|a| a.iter().map(|c| c.get("name").map(|n| s(n, "formatted_name")).unwrap_or_default()).collect())
                .unwrap_or_default();
            (kind.clone(), format!("👤 {}", names.join(", ")), json!({ "contacts": cs }))
        }
        "reaction" => {
            let r = m.get("reaction").cloned().unwrap_or(Value::Null);
            (kind.clone(), s(&r, "emoji"), json!({ "message_id": s(&r, "message_id"), "emoji": s(&r, "emoji") }))
        }
        "interactive" => {
            let i = m.get("interactive").cloned().unwrap_or(Value::Null);
            let sub = s(&i, "type");
            let r = i.get(&sub).cloned().unwrap_or(Value::Null);
            (
                kind.clone(),
                s(&r, "title"),
                json!({ "type": sub, "id": s(&r, "id"), "title": s(&r, "title"),
                "description": s(&r, "description") }),
            )
        }
        "button" => {
            let b = m.get("button").cloned().unwrap_or(Value::Null);
            (kind.clone(), s(&b, "text"), json!({ "id": s(&b, "payload"), "payload": s(&b, "payload") }))
        }
        "order" => {
            let o = m.get("order").cloned().unwrap_or(Value::Null);
            let items = o.get("product_items").cloned().unwrap_or(json!([]));
            let n = items.as_array().map(Vec::len).unwrap_or(0);
            let text = if s(&o, "text").is_empty() { format!("🛒 Pedido ({n} productos)") } else { s(&o, "text") };
            (kind.clone(), text, json!({ "catalog_id": s(&o, "catalog_id"), "product_items": items }))
        }
        "system" => {
            let sy = m.get("system").cloned().unwrap_or(Value::Null);
            (kind.clone(), s(&sy, "body"), json!({ "system": sy }))
        }
        _ => {
            let errors = m.get("errors").cloned().unwrap_or(json!([]));
            ("unsupported".to_string(), "Mensaje no compatible".to_string(), json!({ "type": kind, "errors": errors }))
        }
    };
    let ctx = m.get("context");
    let context_wamid = ctx.map(|c| s(c, "id")).filter(|x| !x.is_empty());
    if let Some(c) = ctx {
        if c.get("forwarded").and_then(Value::as_bool).unwrap_or(false)
            || c.get("frequently_forwarded").and_then(Value::as_bool).unwrap_or(false)
        {
            payload["forwarded"] = json!(true);
        }
        if c.get("referred_product").is_some() {
            payload["referred_product"] = c["referred_product"].clone();
        }
    }
    if let Some(r) = m.get("referral") {
        payload["referral"] = r.clone();
    }
    Inbound {
        wamid: s(m, "id"),
        profile_name: name_of(&wa_id),
        wa_id,
        phone_number_id: pnid.to_string(),
        kind,
        text,
        payload,
        context_wamid,
        at,
    }
}
