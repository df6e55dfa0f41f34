//! The optional LLM provider for free-form answers the offline bot did not understand: an
//! OpenAI-compatible chat completions API or Anthropic's messages API, called with reqwest, the
//! key from the environment. Answers are grounded in the catalog (the products the message seems
//! to name, with price and stock), cached, bounded by a timeout, and behind a circuit breaker;
//! on any failure the offline answer is used.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// Which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `POST {base}/chat/completions` (OpenAI and compatible servers).
    OpenAi,
    /// `POST {base}/v1/messages` (Anthropic).
    Anthropic,
}

/// Settings.
#[derive(Clone)]
pub struct LlmConfig {
    /// The API.
    pub provider: Provider,
    /// Base URL.
    pub base: String,
    /// Model name.
    pub model: String,
    /// API key (from DASHOFFICE_LLM_API_KEY).
    pub key: String,
    /// Timeout of one call.
    pub timeout: Duration,
}

const OPEN_AFTER: u32 = 3;
const OPEN_FOR: Duration = Duration::from_secs(60);
const CACHE_FOR: Duration = Duration::from_secs(600);
const CACHE_MAX: usize = 2000;

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// The client.
pub struct Llm {
    cfg: LlmConfig,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The provider answered now.
    Fresh,
    /// The same question was answered recently.
    Cached,
}

impl Llm {
    /// A client for `cfg`.
    pub fn new(cfg: LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(cfg.timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Self { cfg, http, breaker: Mutex::new(Breaker::default()), cache: Mutex::new(HashMap::new()) })
    }

    /// Provider and model, for explanations.
    pub fn describe(&self) -> Value {
        json!({ "provider": match self.cfg.provider { Provider::OpenAi => "openai", Provider::Anthropic => "anthropic" }, "model": self.cfg.model })
    }

    /// Whether the breaker lets a call through now.
    pub fn available(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_none_or(|t| Instant::now() >= t)
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= OPEN_AFTER {
                tracing::warn!(failures = b.failures, "the LLM provider keeps failing: not asking it for 60 s");
                metrics::counter!("dashoffice_llm_breaker_opened_total").increment(1);
                b.open_until = Some(Instant::now() + OPEN_FOR);
                b.failures = 0;
            }
        }
    }

    /// Answers `question` in `language` with `context` (catalog facts), or None (breaker open,
    /// timeout, error): the caller then uses the offline answer.
    pub async fn answer(
        &self,
        shop_name: &str,
        language: &str,
        context: &str,
        question: &str,
    ) -> Option<(String, Source)> {
        let key = format!("{language}\u{0}{context}\u{0}{}", question.trim().to_lowercase());
        {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, a)) = c.get(&key) {
                if at.elapsed() < CACHE_FOR {
                    metrics::counter!("dashoffice_llm_cache_hits_total").increment(1);
                    return Some((a.clone(), Source::Cached));
                }
                c.remove(&key);
            }
        }
        if !self.available() {
            return None;
        }
        let system = format!(
            "You are the WhatsApp assistant of the shop \"{shop_name}\". Answer in {} in at most three short sentences. \
             Only state prices, stock and products that appear in the shop facts; if the facts do not answer the question, \
             say a person from the team will help. Shop facts:\n{context}",
            if language == "en" { "English" } else { "Spanish" }
        );
        let t = Instant::now();
        let r = self.call(&system, question).await;
        metrics::histogram!("dashoffice_llm_seconds").record(t.elapsed().as_secs_f64());
        match r {
            Ok(a) if !a.trim().is_empty() => {
                self.record(true);
                let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if c.len() >= CACHE_MAX {
                    c.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
                    if c.len() >= CACHE_MAX {
                        c.clear();
                    }
                }
                c.insert(key, (Instant::now(), a.trim().to_string()));
                Some((a.trim().to_string(), Source::Fresh))
            }
            Ok(_) => {
                self.record(false);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the LLM provider failed; using the offline answer");
                metrics::counter!("dashoffice_llm_failures_total").increment(1);
                self.record(false);
                None
            }
        }
    }

    async fn call(&self, system: &str, question: &str) -> Result<String, String> {
        let base = self.cfg.base.trim_end_matches('/');
        let req = match self.cfg.provider {
            Provider::OpenAi => {
                self.http.post(format!("{base}/chat/completions")).bearer_auth(&self.cfg.key).json(&json!({
                    "model": self.cfg.model,
                    "max_tokens": 300,
                    "temperature": 0.2,
                    "messages": [{ "role": "system", "content": system }, { "role": "user", "content": question }],
                }))
            }
            Provider::Anthropic => self
                .http
                .post(format!("{base}/v1/messages"))
                .header("x-api-key", &self.cfg.key)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({
                    "model": self.cfg.model,
                    "max_tokens": 300,
                    "system": system,
                    "messages": [{ "role": "user", "content": question }],
                })),
        };
        let r = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            // A refused key: the provider's message may quote part of it, so only the status and
            // the error's type are kept (they reach the log).
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                let kind = body["error"]["type"].as_str().or(body["error"]["code"].as_str()).unwrap_or("");
                return Err(format!("HTTP {}: the API key was refused ({kind})", status.as_u16()));
            }
            return Err(format!("HTTP {}: {}", status.as_u16(), body["error"]["message"].as_str().unwrap_or("")));
        }
        let text = match self.cfg.provider {
            Provider::OpenAi => body["choices"][0]["message"]["content"].as_str(),
            Provider::Anthropic => body["content"][0]["text"].as_str(),
        };
        text.map(str::to_string).ok_or_else(|| "no text in the answer".into())
    }
}
