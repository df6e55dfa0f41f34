//! The Graph API calls the relay makes: sending messages and downloading media. The base URL is
//! configurable so tests talk to a local fake that speaks the same API.

use std::time::Duration;

use backon::BackoffBuilder;
use dashoffice_domain::inbox::MessageView;
use serde_json::{Value, json};

use super::{WaConfig, store::Number};

/// Why a send did not go through.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Worth retrying (5xx, timeouts, throttling 130429/131056/80007, network errors).
    Retry(String),
    /// WhatsApp refused it for good (window closed 131047, bad template 132000, bad number…).
    Refused(String),
}

/// The Graph API client.
pub struct Graph {
    http: reqwest::Client,
    base: String,
    version: String,
}

/// The delay before retry number `attempts + 1`: exponential from 1 s up to 60 s, with jitter.
pub fn backoff(attempts: i64) -> Duration {
    let mut it = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(usize::MAX)
        .build();
    it.nth(usize::try_from(attempts.clamp(0, 64)).unwrap_or(0)).unwrap_or(Duration::from_secs(60))
}

/// Throttling and transient error codes of the Cloud API.
const RETRY_CODES: &[i64] = &[130429, 131056, 80007, 4, 131000, 1, 2, 131016];

/// Sends a Graph API request: the JSON answer of a success; otherwise a retry (network errors,
/// 5xx, 429, throttling codes) or a refusal, with the error's code and message.
async fn answer(request: reqwest::RequestBuilder) -> Result<Value, SendError> {
    let r = request.send().await.map_err(|e| SendError::Retry(format!("network: {}", e.without_url())))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["code"].as_i64().unwrap_or(0);
    let msg = body["error"]["message"].as_str().unwrap_or("").to_string();
    let text = format!("{code} {msg} (HTTP {})", status.as_u16()).trim().to_string();
    if status.is_server_error() || status.as_u16() == 429 || RETRY_CODES.contains(&code) {
        Err(SendError::Retry(text))
    } else {
        Err(SendError::Refused(text))
    }
}

impl Graph {
    /// A client for `cfg`'s base URL.
    pub fn new(cfg: &WaConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(cfg.timeout).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, base: cfg.api_base.trim_end_matches('/').to_string(), version: cfg.api_version.clone() })
    }

    /// The Cloud API body for a stored outbound message.
    pub fn body(to: &str, m: &MessageView) -> Value {
        let mut b = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to });
        let p = &m.payload;
        match m.kind.as_str() {
            "buttons" => {
                let buttons: Vec<Value> = p["buttons"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|x| json!({ "type": "reply", "reply": { "id": x["id"], "title": x["title"] } }))
                    .collect();
                b["type"] = json!("interactive");
                b["interactive"] =
                    json!({ "type": "button", "body": { "text": m.text }, "action": { "buttons": buttons } });
            }
            "list" => {
                b["type"] = json!("interactive");
                b["interactive"] = json!({
                    "type": "list",
                    "body": { "text": m.text },
                    "action": { "button": p["button"], "sections": [{ "title": "", "rows": p["rows"] }] },
                });
            }
            "template" => {
                let params: Vec<Value> = p["params"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| json!({ "type": "text", "text": v }))
                    .collect();
                let mut components = Vec::new();
                if !params.is_empty() {
                    components.push(json!({ "type": "body", "parameters": params }));
                }
                b["type"] = json!("template");
                b["template"] =
                    json!({ "name": p["template"], "language": { "code": p["language"] }, "components": components });
            }
            "image" | "document" => {
                b["type"] = json!(m.kind);
                // Uploaded media (an order's PDF, see `upload`) go by id, with a file name.
                let mut media = match p["media_id"].as_str() {
                    Some(id) => json!({ "id": id }),
                    None => json!({ "link": p["link"] }),
                };
                if m.kind == "document"
                    && let Some(name) = p["filename"].as_str()
                {
                    media["filename"] = json!(name);
                }
                if !m.text.is_empty() {
                    media["caption"] = json!(m.text);
                }
                b[m.kind.as_str()] = media;
            }
            _ => {
                b["type"] = json!("text");
                b["text"] = json!({ "body": m.text, "preview_url": false });
            }
        }
        if let Some(c) = &m.context_wamid {
            b["context"] = json!({ "message_id": c });
        }
        b
    }

    /// Sends one message from `number` to `to`; returns its wamid.
    pub async fn send(&self, number: &Number, to: &str, m: &MessageView) -> Result<String, SendError> {
        let url = format!("{}/{}/{}/messages", self.base, self.version, number.phone_number_id);
        let body = answer(self.http.post(&url).bearer_auth(&number.access_token).json(&Self::body(to, m))).await?;
        body["messages"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SendError::Retry("the Graph API answered without a message id".into()))
    }

    /// Uploads a file for `number` (`POST /{phone-number-id}/media`, multipart); returns its
    /// media id, which a message then names instead of a link.
    pub async fn upload(
        &self,
        number: &Number,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<String, SendError> {
        let url = format!("{}/{}/{}/media", self.base, self.version, number.phone_number_id);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_string())
            .mime_str(mime)
            .map_err(|e| SendError::Refused(format!("media type {mime}: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_string())
            .part("file", part);
        let body = answer(self.http.post(&url).bearer_auth(&number.access_token).multipart(form)).await?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SendError::Retry("the Graph API answered an upload without a media id".into()))
    }

    /// Downloads a media object: its metadata, then its bytes (both with the access token).
    pub async fn media(&self, number: &Number, media_id: &str) -> Result<(Vec<u8>, String), SendError> {
        let url = format!("{}/{}/{}", self.base, self.version, media_id);
        let meta: Value = self
            .http
            .get(&url)
            .bearer_auth(&number.access_token)
            .send()
            .await
            .map_err(|e| SendError::Retry(format!("network: {}", e.without_url())))?
            .error_for_status()
            .map_err(|e| match e.status() {
                Some(s) if s.is_client_error() => SendError::Refused(format!("media {media_id}: HTTP {s}")),
                _ => SendError::Retry(format!("media {media_id}: {}", e.without_url())),
            })?
            .json()
            .await
            .map_err(|e| SendError::Retry(e.to_string()))?;
        let link = meta["url"].as_str().ok_or_else(|| SendError::Refused("media metadata without a url".into()))?;
        let mime = meta["mime_type"].as_str().unwrap_or("application/octet-stream").to_string();
        let bytes = self
            .http
            .get(link)
            .bearer_auth(&number.access_token)
            .send()
            .await
            .map_err(|e| SendError::Retry(format!("network: {}", e.without_url())))?
            .error_for_status()
            .map_err(|e| SendError::Retry(e.without_url().to_string()))?
            .bytes()
            .await
            .map_err(|e| SendError::Retry(e.to_string()))?;
        Ok((bytes.to_vec(), mime))
    }
}
