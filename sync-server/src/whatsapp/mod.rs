//! WhatsApp on the relay: the Cloud API webhook (verified, stored durably, answered fast), the
//! processing of events into the shops' documents through a per-shop service replica that syncs
//! with this relay like any other, the bots, and the outbox that hands replies to the Graph API
//! at most once, with retries and rate limits.

pub mod api;
pub mod graph;
pub mod llm;
pub mod parse;
pub mod process;
pub mod service;
pub mod store;
pub mod webhook;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use dashoffice_sync::LocalLink;
use tokio::sync::Notify;

use crate::hub::Hub;

/// WhatsApp settings (from the relay's configuration; secrets from env or the config file).
#[derive(Clone, Default)]
pub struct WaConfig {
    /// The Meta app secret that signs webhooks (X-Hub-Signature-256).
    pub app_secret: Option<String>,
    /// The token Meta echoes in the verification handshake.
    pub verify_token: Option<String>,
    /// Graph API base URL (tests point it at a local fake).
    pub api_base: String,
    /// Graph API version path segment.
    pub api_version: String,
    /// Messages per second per number.
    pub rate_per_number: u32,
    /// Messages per minute to one customer.
    pub rate_per_customer: u32,
    /// Timeout of one Graph API call.
    pub timeout: Duration,
    /// How long processed webhook events are kept (failed ones three times as long); `None`:
    /// forever.
    pub event_retention: Option<Duration>,
}

impl std::fmt::Debug for WaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaConfig")
            .field("app_secret", &self.app_secret.as_ref().map(|_| "***"))
            .field("verify_token", &self.verify_token.as_ref().map(|_| "***"))
            .field("api_base", &self.api_base)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// How the relay reaches itself for the shops' service replicas.
#[derive(Clone)]
pub struct SelfLink {
    /// The relay's certificate fingerprint (names it in the replicas' sync status).
    pub fingerprint: String,
    /// The in-process link to the hub (`crate::quic::local_link`).
    pub local: LocalLink,
    /// Where service replicas keep their data (`<data_dir>/shops`).
    pub dir: PathBuf,
}

/// Everything the WhatsApp side shares.
pub struct WhatsApp {
    /// Settings.
    pub cfg: WaConfig,
    /// whatsapp.db.
    pub store: Arc<store::WaStore>,
    /// The sync hub (enrolment of service replicas).
    pub hub: Arc<Hub>,
    /// The way back to this relay.
    pub link: SelfLink,
    /// Running service replicas by shop.
    pub services: Mutex<HashMap<String, Arc<service::ShopService>>>,
    /// Wakes the processor when events arrive.
    pub wake: Notify,
    /// True while the processor works through stored events: bookkeeping that can wait (replies
    /// marked sent in their documents) waits for it, a bounded while, so a burst of customers'
    /// messages gets the writers first. One flag for the relay: a burst for one shop holds the
    /// marks of all, as it holds the cores they share.
    pub busy: tokio::sync::watch::Sender<bool>,
    /// The Graph API client.
    pub graph: graph::Graph,
    /// The optional LLM provider.
    pub llm: Option<llm::Llm>,
    /// The SMTP client, when the relay sends e-mail (`crate::mail`; each shop's service replica
    /// runs its mail outbox).
    pub mail: Option<Arc<crate::mail::Mailer>>,
}

impl WhatsApp {
    /// Builds the WhatsApp side and starts the processor and the services of configured shops.
    pub fn start(
        cfg: WaConfig,
        store: Arc<store::WaStore>,
        hub: Arc<Hub>,
        link: SelfLink,
        llm: Option<llm::LlmConfig>,
        mail: Option<crate::mail::Mailer>,
    ) -> anyhow::Result<Arc<Self>> {
        let graph = graph::Graph::new(&cfg)?;
        let llm = llm.map(llm::Llm::new).transpose()?;
        let wa = Arc::new(Self {
            cfg,
            store,
            hub,
            link,
            services: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            busy: tokio::sync::watch::Sender::new(false),
            graph,
            llm,
            mail: mail.map(Arc::new),
        });
        for (message, shop) in wa.store.interrupted()? {
            tracing::warn!(message = %message, shop = %shop, "a reply or an e-mail was interrupted while sending; marked failed, not resent");
        }
        let shops: Vec<String> = wa.store.numbers()?.into_iter().map(|n| n.shop_id).collect();
        for shop in shops {
            if let Err(e) = wa.service(&shop) {
                tracing::error!(shop = %shop, error = %e, "cannot start the shop's WhatsApp service");
            }
        }
        tokio::spawn(process::run(wa.clone()));
        if let Some(keep) = wa.cfg.event_retention {
            tokio::spawn(prune_events(wa.store.clone(), keep));
        }
        Ok(wa)
    }

    /// The running service replica of `shop`, started if needed.
    pub fn service(self: &Arc<Self>, shop: &str) -> anyhow::Result<Arc<service::ShopService>> {
        let mut map = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(shop) {
            return Ok(s.clone());
        }
        let s = service::ShopService::start(self, shop)?;
        map.insert(shop.to_string(), s.clone());
        Ok(s)
    }
}

/// Deletes old processed webhook events (`whatsapp_event_retention_days`) a minute after the
/// start and every hour after: the raw bodies hold customers' messages and would grow
/// `whatsapp.db` without end. Freed pages are reused, so the file stops growing; it does not
/// shrink.
async fn prune_events(store: Arc<store::WaStore>, keep: Duration) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let now = crate::hub::now_ms();
        let st = store.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            st.prune_events(now.saturating_sub(keep_ms), now.saturating_sub(keep_ms.saturating_mul(3)))
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                metrics::counter!("dashoffice_whatsapp_events_pruned_total").increment(n as u64);
                tracing::info!(events = n, "deleted processed webhook events past their retention");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "deleting old webhook events"),
            Err(e) => tracing::error!(error = %e, "deleting old webhook events"),
        }
    }
}
