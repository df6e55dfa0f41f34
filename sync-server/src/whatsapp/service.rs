//! A shop's service replica on the relay: a full replica of the shop (its own SQLite folder under
//! `<data_dir>/shops/<shop>`), enrolled with this relay as a head-office device and synced like
//! any edge node, through an in-process link instead of QUIC (`crate::quic::local_link`).
//! Webhook processing and bots write through it; the outbox reads the replies queued on any
//! replica from it; head office's API on the relay serves it (`crate::console`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use dashoffice_core::{
    OpenOptions, Replica,
    doc::DocId,
    entities::{
        broadcasts,
        inbox::{self, Outgoing},
    },
};
use dashoffice_domain::inbox::MessageView;
use dashoffice_sync::client::{self, ClientConfig, Enrolment, SyncHandle};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{WhatsApp, graph::SendError, store::Claim};
use crate::enrol;

/// One shop's service replica and its outbox.
pub struct ShopService {
    /// The shop.
    pub shop: String,
    /// Its replica.
    pub replica: Replica,
    sync: SyncHandle,
    ready: AtomicBool,
    per_number: DefaultKeyedRateLimiter<String>,
    per_customer: DefaultKeyedRateLimiter<String>,
    sending: Arc<tokio::sync::Semaphore>,
    /// Replies being sent now, or sent and not yet marked so in their documents: left out of the
    /// outbox's passes (their documents still say queued) until their sending ends unsent or
    /// their mark is written.
    in_flight: InFlightSet,
    /// Replies recorded as sent in the outbox and waiting to be marked sent in their documents
    /// (see [`record_sent`]), by wamid: a delivery report for one of them marks it first.
    waiting: Waiting,
    /// Replies the Graph API accepted, to be recorded in the outbox (see [`record_accepted`]).
    accepted: tokio::sync::mpsc::UnboundedSender<Sent>,
    /// Replies recorded as sent in the outbox, to be marked sent in their documents (see
    /// [`record_sent`]).
    sent: tokio::sync::mpsc::UnboundedSender<Sent>,
}

/// Replies waiting for their mark, by wamid: their document and id.
type Waiting = Arc<std::sync::Mutex<std::collections::HashMap<String, (DocId, String)>>>;

/// A reply the Graph API accepted: its document, its id and the wamid WhatsApp gave it. It stays
/// in [`ShopService::in_flight`] (`_sending`) until its document says sent, so the outbox,
/// which reads the documents, does not claim it again meanwhile.
struct Sent {
    doc: DocId,
    id: String,
    wamid: String,
    _sending: InFlight,
}

impl ShopService {
    /// Opens the replica, enrols it on first start, starts its sync and its outbox.
    pub fn start(wa: &Arc<WhatsApp>, shop: &str) -> anyhow::Result<Arc<Self>> {
        let dir = wa.link.dir.join(shop);
        // The search index opens when head office first searches or a bot first looks up the
        // catalog: a relay may serve many shops, and keeps no index writer for a shop nobody
        // searches.
        let replica = Replica::open(&dir, OpenOptions { search_on_demand: true, ..Default::default() })?;
        let code = if Enrolment::load(&dir).is_none() {
            let (code, _) = enrol::create_code(
                wa.hub.store.as_ref(),
                shop,
                None,
                "service replica of the relay (WhatsApp and head office)",
                1,
            )?;
            Some(code)
        } else {
            None
        };
        let sync = client::start(
            replica.clone(),
            ClientConfig {
                relay: "this relay (in-process)".into(),
                trust: dashoffice_sync::tls::Trust::Pinned(wa.link.fingerprint.clone()),
                data_dir: dir,
                enrolment_code: code,
                device_name: "relay service (WhatsApp and head office)".into(),
                idle_timeout: Duration::from_secs(30),
                local: Some(wa.link.local.clone()),
                // A change from a branch reaches head office and the outbox at most this much
                // later; a steady trickle of them is stored in fewer, larger commits.
                gather: Duration::from_millis(200),
            },
        )?;
        let n = std::num::NonZeroU32::new(wa.cfg.rate_per_number.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let c = std::num::NonZeroU32::new(wa.cfg.rate_per_customer.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let (sent_tx, sent_rx) = tokio::sync::mpsc::unbounded_channel();
        let (accepted_tx, accepted_rx) = tokio::sync::mpsc::unbounded_channel();
        let svc = Arc::new(Self {
            shop: shop.to_string(),
            replica,
            sync,
            ready: AtomicBool::new(false),
            per_number: RateLimiter::keyed(Quota::per_second(n)),
            per_customer: RateLimiter::keyed(Quota::per_minute(c).allow_burst(c)),
            sending: Arc::new(tokio::sync::Semaphore::new(32)),
            in_flight: Arc::default(),
            waiting: Arc::default(),
            accepted: accepted_tx,
            sent: sent_tx.clone(),
        });
        tokio::spawn(record_accepted(wa.clone(), accepted_rx, sent_tx));
        tokio::spawn(record_sent(svc.replica.clone(), svc.waiting.clone(), wa.busy.subscribe(), sent_rx));
        tokio::spawn(outbox(wa.clone(), svc.clone()));
        tokio::spawn(scheduled_broadcasts(svc.clone()));
        if let Some(mailer) = &wa.mail {
            tokio::spawn(crate::mail::outbox(wa.clone(), svc.clone(), mailer.clone()));
            tokio::spawn(crate::mail::daily_reports(wa.clone(), svc.clone(), mailer.clone()));
        }
        tracing::info!(shop = %shop, "WhatsApp service replica started");
        Ok(svc)
    }

    /// Whether the replica has the shop and finished its first sync (before that, a customer
    /// looked up by number might exist in a document not received yet).
    pub fn ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let s = self.sync.status();
        let has_shop = self.replica.read(|c| dashoffice_core::entities::org::get_shop(c, &self.shop)).is_ok();
        let ok = has_shop && s.connected && s.queued_documents == 0;
        if ok {
            self.ready.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// The first branch (by code): where conversations go when a number names none.
    pub fn default_branch(&self) -> Option<String> {
        self.replica
            .read(|c| {
                Ok(c.prepare_cached(
                    "SELECT id FROM branches WHERE shop_id = ?1 AND archived = 0 ORDER BY code LIMIT 1",
                )?
                .query_row([&self.shop], |r| r.get::<_, String>(0))
                .ok())
            })
            .ok()
            .flatten()
    }

    /// The replies among `wamids` that WhatsApp accepted and whose documents do not say so yet
    /// (their marks wait for a pause in processing): document, message id, wamid. A delivery
    /// report for one of them marks it sent in the same write, so it is not set aside as a
    /// report for an unknown message.
    pub fn waiting_marks<'a>(&self, wamids: impl IntoIterator<Item = &'a str>) -> Vec<(DocId, String, String)> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.is_empty() {
            return Vec::new();
        }
        let mut seen = std::collections::HashSet::new();
        wamids
            .into_iter()
            .filter(|w| seen.insert(*w))
            .filter_map(|w| waiting.get(w).map(|(doc, id)| (doc.clone(), id.clone(), w.to_string())))
            .collect()
    }

    /// Notes a reply WhatsApp accepted as waiting for its mark (see [`record_sent`]), so a
    /// delivery report that comes first finds it (see [`Self::waiting_marks`]).
    fn awaits_mark(&self, doc: &DocId, id: &str, wamid: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(wamid.to_string(), (doc.clone(), id.to_string()));
    }

    /// Waits for the replica's next batch of changes (`changes`, from its `subscribe`) or for
    /// `every`, whichever comes first; then whether the shop is ready to work on (see
    /// [`Self::ready`]). None once the replica has closed: the outboxes stop.
    pub async fn wake(
        &self,
        changes: &mut tokio::sync::broadcast::Receiver<Arc<[DocId]>>,
        every: Duration,
    ) -> Option<bool> {
        tokio::select! {
            r = changes.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return None;
                }
            }
            _ = tokio::time::sleep(every) => {}
        }
        Some(self.ready())
    }

    /// Its sync with the relay (status for the head-office API).
    pub fn sync_handle(&self) -> SyncHandle {
        self.sync.clone()
    }

    /// Stops syncing.
    pub fn stop(&self) {
        self.sync.stop();
    }
}

/// How often the relay looks for scheduled broadcasts whose time came.
const SCHEDULE_CHECK: Duration = Duration::from_secs(5);

/// Writes the scheduled broadcasts whose time came (to the customers tagged then) on this
/// replica: the outbox sends them like any other, and every replica sees them go.
async fn scheduled_broadcasts(svc: Arc<ShopService>) {
    loop {
        tokio::time::sleep(SCHEDULE_CHECK).await;
        if !svc.ready() {
            continue;
        }
        let (replica, shop, now) = (svc.replica.clone(), svc.shop.clone(), crate::hub::now_ms());
        let due = tokio::task::spawn_blocking(move || replica.read(|c| broadcasts::due(c, &shop, now))).await;
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(shop = %svc.shop, error = %e, "reading the scheduled broadcasts");
                continue;
            }
            Err(_) => continue,
        };
        for id in due {
            let (shop, bid) = (svc.shop.clone(), id.clone());
            match svc.replica.write(move |ctx| broadcasts::send_scheduled(ctx, &shop, &bid)).await {
                Ok(Some(r)) => {
                    tracing::info!(shop = %svc.shop, broadcast = %id, queued = r.queued, "a scheduled WhatsApp broadcast went")
                }
                Ok(None) => {}
                // A broken rule (the template deleted since, the person no longer allowed…): the
                // write was undone whole; it is recorded as failed, not tried again.
                Err(e) if e.is_rule() => {
                    let (shop, bid, why) = (svc.shop.clone(), id.clone(), e.to_string());
                    if let Err(e) = svc.replica.write(move |ctx| broadcasts::mark_failed(ctx, &shop, &bid, &why)).await
                    {
                        tracing::error!(shop = %svc.shop, broadcast = %id, error = %e, "recording a failed scheduled broadcast");
                    }
                }
                Err(e) => {
                    tracing::error!(shop = %svc.shop, broadcast = %id, error = %e, "sending a scheduled broadcast (tried again)")
                }
            }
        }
    }
}

/// Hands queued replies to the Graph API: each at most once (claimed durably before the call),
/// retried with backoff on 5xx, timeouts and throttling, within the per-number and per-customer
/// rates.
async fn outbox(wa: Arc<WhatsApp>, svc: Arc<ShopService>) {
    let mut changes = svc.replica.subscribe();
    loop {
        match svc.wake(&mut changes, Duration::from_millis(500)).await {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        let shop = svc.shop.clone();
        // Replies being sent, or sent and not yet marked so in their documents, still read as
        // queued: read past them.
        let sending = svc.in_flight.lock().unwrap_or_else(|p| p.into_inner()).len();
        let limit = 500 + u32::try_from(sending.min(MAX_MARKS)).unwrap_or(0);
        let queued = match svc.replica.read(move |c| inbox::queued(c, &shop, limit)) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox");
                continue;
            }
        };
        let mut queued = {
            let sending = svc.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            queued.into_iter().filter(|o| !sending.contains(&o.message.id)).collect::<Vec<_>>().into_iter().peekable()
        };
        while queued.peek().is_some() {
            // As many replies as can be sent now are claimed together (one commit); a claimed
            // reply is one being sent (a crash then fails it rather than send it twice), so
            // none is claimed before a sending slot is free for it.
            // When every slot is busy (a busy number), the slots freed within a few
            // milliseconds are claimed together: one commit for many, not one per reply.
            let Ok(first) = svc.sending.clone().acquire_owned().await else { return };
            let mut permits = vec![first];
            let want = CLAIM_BATCH.min(queued.len());
            let deadline = tokio::time::Instant::now() + GATHER;
            while permits.len() < want {
                match svc.sending.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(tokio::sync::TryAcquireError::Closed) => return,
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        match tokio::time::timeout_at(deadline, svc.sending.clone().acquire_owned()).await {
                            Ok(Ok(p)) => permits.push(p),
                            Ok(Err(_)) => return,
                            Err(_) => break,
                        }
                    }
                }
            }
            let chunk: Vec<Outgoing> = queued.by_ref().take(permits.len()).collect();
            let ids: Vec<String> = chunk.iter().map(|o| o.message.id.clone()).collect();
            let (store, shop) = (wa.store.clone(), svc.shop.clone());
            let claimed = tokio::task::spawn_blocking(move || store.claim_many(&shop, &ids)).await;
            let claims = match claimed.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                Ok(c) => c,
                // Unclaimed, they stay queued for the next pass.
                Err(e) => {
                    tracing::error!(error = %e, "claiming replies");
                    continue;
                }
            };
            for ((o, claim), permit) in chunk.into_iter().zip(claims).zip(permits) {
                let attempts = match claim {
                    Claim::Busy => continue,
                    Claim::Sent(wamid) => {
                        svc.awaits_mark(&o.doc_id, &o.message.id, &wamid);
                        let _sending = InFlight::new(&svc.in_flight, &o.message.id);
                        let _ =
                            svc.sent.send(Sent { doc: o.doc_id.clone(), id: o.message.id.clone(), wamid, _sending });
                        continue;
                    }
                    Claim::New => 0,
                    Claim::Retry(n) => n,
                };
                let guard = InFlight::new(&svc.in_flight, &o.message.id);
                let (wa, svc) = (wa.clone(), svc.clone());
                tokio::spawn(async move {
                    send_one(&wa, &svc, o, attempts, guard).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Replies claimed in one commit at most (the sending slots bound it too).
const CLAIM_BATCH: usize = 32;

/// How long a busy outbox waits to gather more replies into one commit (claims, replies
/// accepted, replies marked sent). At 1,000 replies/s per number a commit each was most of the
/// outbox's cost; a reply waits this much at most, and only while others keep the outbox busy.
const GATHER: Duration = Duration::from_millis(10);

/// The ids of the replies being sent (see [`ShopService::in_flight`]).
type InFlightSet = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// A reply in [`ShopService::in_flight`] while this lives.
struct InFlight {
    set: InFlightSet,
    id: String,
}

impl InFlight {
    fn new(set: &InFlightSet, id: &str) -> Self {
        set.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string());
        Self { set: set.clone(), id: id.to_string() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Receives what has arrived on `rx` into `batch` (up to `max`); 0 when the channel is closed.
/// When the batch before ended less than `window` ago (`previous`: when it ended), replies come
/// in a stream, and it waits up to `window` for more to join; a reply after a quiet spell goes
/// at once. (`window` is [`GATHER`]; tests stretch it.)
async fn gather<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    previous: Option<tokio::time::Instant>,
    window: Duration,
) -> usize {
    if rx.recv_many(batch, max).await == 0 {
        return 0;
    }
    if previous.is_none_or(|t| t.elapsed() >= window) {
        return batch.len();
    }
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, rx.recv_many(batch, max - batch.len())).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    batch.len()
}

/// Waits until `limiter` lets one more message to `key` go, on the runtime's own timer:
/// governor's `until_key_ready` sleeps on futures-timer's thread, one more thread to wake per wait
/// (~3 % of the relay's CPU samples while a burst of replies leaves).
async fn until_allowed(limiter: &DefaultKeyedRateLimiter<String>, key: &String) {
    use governor::clock::Clock;
    while let Err(not_until) = limiter.check_key(key) {
        tokio::time::sleep(not_until.wait_time_from(limiter.clock().now())).await;
    }
}

/// Sends one reply; `sending` keeps it in [`ShopService::in_flight`] until it is marked sent (or
/// until this returns, when it was not sent).
async fn send_one(wa: &Arc<WhatsApp>, svc: &Arc<ShopService>, o: Outgoing, attempts: i64, sending: InFlight) {
    let id = o.message.id.clone();
    // A promotion to a customer who asked for none since it was written (on another replica,
    // say) does not go.
    if dashoffice_core::entities::broadcasts::is_broadcast(&id) {
        let (replica, conv) = (svc.replica.clone(), o.message.conversation_id.clone());
        let out = tokio::task::spawn_blocking(move || {
            replica.read(|c| dashoffice_core::entities::broadcasts::opted_out(c, &conv))
        })
        .await;
        match out {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                fail(wa, svc, &o, "the customer asked for no promotions (no-promos)").await;
                return;
            }
            // Not known now: tried again later rather than sent.
            Ok(Err(e)) => return retry(wa, &id, attempts, &format!("reading the customer's choice: {e}")),
            Err(e) => return retry(wa, &id, attempts, &format!("reading the customer's choice: {e}")),
        }
    }
    let t = std::time::Instant::now();
    let result = match number_for(wa, &svc.shop, &o) {
        Ok(number) => {
            until_allowed(&svc.per_number, &number.phone_number_id).await;
            until_allowed(&svc.per_customer, &o.to).await;
            match with_order_document(wa, svc, &number, &o.message).await {
                Ok(message) => wa.graph.send(&number, &o.to, &message).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    metrics::histogram!("dashoffice_whatsapp_send_seconds").record(t.elapsed().as_secs_f64());
    match result {
        Ok(wamid) => {
            metrics::counter!("dashoffice_whatsapp_sent_total").increment(1);
            // Recorded in the outbox (what keeps it from being sent twice), then in its document.
            svc.awaits_mark(&o.doc_id, &id, &wamid);
            let _ = svc.accepted.send(Sent { doc: o.doc_id.clone(), id, wamid, _sending: sending });
        }
        Err(SendError::Retry(e)) => retry(wa, &id, attempts, &e),
        Err(SendError::Refused(e)) => {
            metrics::counter!("dashoffice_whatsapp_send_failures_total").increment(1);
            tracing::warn!(message = %id, error = %e, "WhatsApp refused a reply");
            fail(wa, svc, &o, &e).await;
        }
    }
}

/// Records that message `id` goes again after a backoff (its `attempts` so far).
fn retry(wa: &WhatsApp, id: &str, attempts: i64, error: &str) {
    metrics::counter!("dashoffice_whatsapp_send_retries_total").increment(1);
    let delay = super::graph::backoff(attempts);
    tracing::warn!(message = %id, attempts = attempts + 1, retry_in_ms = delay.as_millis() as u64, error = %error, "sending a reply failed; will retry");
    let next = crate::hub::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(60_000);
    if let Err(e) = wa.store.retry(id, next, error) {
        tracing::error!(error = %e, "recording a retry");
    }
}

/// A document message that names an order (`POST /api/v1/orders/{id}/whatsapp`): its PDF is
/// rendered here from this replica (the order as it is now, and only if it is the conversation's
/// customer's: the message may come from any replica), uploaded to the Graph API, and the message
/// names the media id. Other messages pass unchanged. An order or conversation this replica does
/// not hold yet (still syncing) is retried like a Graph API hiccup, for a day at most — by then
/// the 24-hour window the API checked has closed; anything else fails the message.
async fn with_order_document(
    wa: &Arc<WhatsApp>,
    svc: &Arc<ShopService>,
    number: &super::store::Number,
    m: &MessageView,
) -> Result<MessageView, SendError> {
    let Some(order_id) = m.payload["order_id"].as_str().filter(|_| m.kind == "document") else {
        return Ok(m.clone());
    };
    let lang = dashoffice_core::invoice::Lang::parse("lang", m.payload["lang"].as_str().unwrap_or("es"))
        .unwrap_or(dashoffice_core::invoice::Lang::Es);
    let (shop, conversation, id) = (svc.shop.clone(), m.conversation_id.clone(), order_id.to_string());
    let now = crate::hub::now_ms();
    // Reading the order and laying out the PDF block: off the async workers, which carry the
    // sync sessions.
    let replica = svc.replica.clone();
    let pdf = tokio::task::spawn_blocking(move || {
        replica.read(|c| inbox::order_document_for(c, &shop, &conversation, &id, lang, now))
    })
    .await
    .map_err(|e| SendError::Retry(format!("rendering order {order_id}: {e}")))?;
    let pdf = match pdf {
        Ok(p) => p,
        Err(e @ dashoffice_core::CoreError::NotFound { .. }) if now - m.at < 24 * 3600 * 1000 => {
            return Err(SendError::Retry(format!("order {order_id}: {e} on the relay yet")));
        }
        Err(e) => return Err(SendError::Refused(format!("order {order_id}: {e}"))),
    };
    let media_id = wa.graph.upload(number, pdf.bytes, "application/pdf", &pdf.file_name).await?;
    let mut message = m.clone();
    message.payload["media_id"] = serde_json::json!(media_id);
    message.payload["filename"] = serde_json::json!(pdf.file_name);
    Ok(message)
}

/// Records the replies WhatsApp accepted in the outbox, as many per commit as have arrived (one
/// commit per reply was two per send with the claim, on the threads that carry the sync
/// sessions), then hands them on to be marked sent in their documents.
async fn record_accepted(
    wa: Arc<WhatsApp>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Sent>,
    sent: tokio::sync::mpsc::UnboundedSender<Sent>,
) {
    const BATCH: usize = 256;
    let mut batch: Vec<Sent> = Vec::with_capacity(BATCH);
    let mut previous = None;
    while gather(&mut rx, &mut batch, BATCH, previous, GATHER).await > 0 {
        let items = std::mem::take(&mut batch);
        let pairs: Vec<(String, String)> = items.iter().map(|s| (s.id.clone(), s.wamid.clone())).collect();
        let store = wa.store.clone();
        let recorded = tokio::task::spawn_blocking(move || store.sent_many(&pairs)).await;
        if let Err(e) = recorded.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            tracing::error!(error = %e, replies = items.len(), "recording sent replies in the outbox");
        }
        for item in items {
            let _ = sent.send(item);
        }
        previous = Some(tokio::time::Instant::now());
    }
}

/// How long replies marked sent wait for the processing of customers' messages to pause (see
/// [`WhatsApp::busy`]), after the few milliseconds that gather them; then their write follows.
const MARK_DEFER: Duration = Duration::from_secs(2);

/// Replies marked sent in one write at most.
const MAX_MARKS: usize = 4096;

/// Marks replies sent in their documents, as many per write as have arrived (a busy number sends
/// dozens per second; one write each kept the replica's writer busy with its own bookkeeping).
/// While customers' messages are being processed, the marks wait for a pause, for
/// [`MARK_DEFER`] at most: a burst of questions is answered first, and the marks that gathered
/// meanwhile go in one write, several per document change. (Nothing is sent twice meanwhile: the
/// outbox's record says sent, and the replies stay out of the outbox's passes until marked.) The
/// flag is the whole relay's: one shop's burst holds every shop's marks, as it holds the cores.
/// When a write of several fails, each document is tried on its own, then each reply of a
/// document that still fails, so one bad record holds up no other.
async fn record_sent(
    replica: Replica,
    waiting: Waiting,
    mut busy: tokio::sync::watch::Receiver<bool>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Sent>,
) {
    const BATCH: usize = 256;
    let mut batch: Vec<Sent> = Vec::with_capacity(BATCH);
    let mut previous = None;
    while gather(&mut rx, &mut batch, BATCH, previous, GATHER).await > 0 {
        if until_idle(&mut busy, tokio::time::Instant::now() + MARK_DEFER).await {
            while batch.len() < MAX_MARKS {
                let Ok(s) = rx.try_recv() else { break };
                batch.push(s);
            }
        }
        let items: Vec<(DocId, String, String)> =
            batch.iter().map(|s| (s.doc.clone(), s.id.clone(), s.wamid.clone())).collect();
        if mark_sent(&replica, items.clone()).await.is_err() {
            let mut by_doc: std::collections::BTreeMap<DocId, Vec<(DocId, String, String)>> =
                std::collections::BTreeMap::new();
            for item in items {
                by_doc.entry(item.0.clone()).or_default().push(item);
            }
            for (_, items) in by_doc {
                if items.len() > 1 && mark_sent(&replica, items.clone()).await.is_ok() {
                    continue;
                }
                for item in items {
                    let id = item.1.clone();
                    if let Err(e) = mark_sent(&replica, vec![item]).await {
                        tracing::error!(error = %e, message = %id, "recording a sent reply in its document");
                    }
                }
            }
        }
        // Marked (or not, and then the outbox finds them queued again and marks them anew).
        {
            let mut w = waiting.lock().unwrap_or_else(|p| p.into_inner());
            for s in &batch {
                w.remove(&s.wamid);
            }
        }
        batch.clear();
        previous = Some(tokio::time::Instant::now());
    }
}

/// Waits while `busy` says so, until `deadline` at most. True when it waited.
async fn until_idle(busy: &mut tokio::sync::watch::Receiver<bool>, deadline: tokio::time::Instant) -> bool {
    if !*busy.borrow_and_update() {
        return false;
    }
    let _ = tokio::time::timeout_at(deadline, busy.wait_for(|b| !*b)).await;
    true
}

/// Marks `items` sent in their documents in one write (all or none), one change per document.
async fn mark_sent(replica: &Replica, items: Vec<(DocId, String, String)>) -> dashoffice_core::Result<()> {
    let mut by_doc: std::collections::BTreeMap<DocId, Vec<(String, String)>> = std::collections::BTreeMap::new();
    for (doc, mid, wamid) in items {
        by_doc.entry(doc).or_default().push((mid, wamid));
    }
    replica
        .write(move |ctx| {
            for (doc, sent) in &by_doc {
                inbox::mark_sent(ctx, doc, sent)?;
            }
            Ok(())
        })
        .await
}

/// The shop's number message `o` goes from: its conversation's, or, in a conversation the shop
/// started (none named yet), the shop's number for the conversation's branch, else its number for
/// no particular branch, else its first. An error says why there is none (refused), or that the
/// relay's store could not be read (retried).
fn number_for(wa: &WhatsApp, shop: &str, o: &Outgoing) -> Result<super::store::Number, SendError> {
    let unreadable = |e: super::store::WaStoreError| SendError::Retry(format!("reading the shop's numbers: {e}"));
    if !o.phone_number_id.is_empty() {
        return match wa.store.number(&o.phone_number_id).map_err(unreadable)? {
            Some(n) if n.shop_id == shop => Ok(n),
            _ => Err(SendError::Refused(format!("the number {} is not connected to this shop", o.phone_number_id))),
        };
    }
    let mine: Vec<super::store::Number> =
        wa.store.numbers().map_err(unreadable)?.into_iter().filter(|n| n.shop_id == shop).collect();
    let rank = |n: &super::store::Number| match n.branch_id.as_deref() {
        Some(b) if b == o.branch_id => 0,
        None => 1,
        Some(_) => 2,
    };
    mine.into_iter()
        .min_by_key(rank)
        .ok_or_else(|| SendError::Refused("the shop has no WhatsApp number connected".to_string()))
}

async fn fail(wa: &Arc<WhatsApp>, svc: &Arc<ShopService>, o: &Outgoing, error: &str) {
    if let Err(e) = wa.store.failed(&o.message.id, error) {
        tracing::error!(error = %e, "recording a failed reply");
    }
    let (doc, mid, err) = (o.doc_id.clone(), o.message.id.clone(), error.to_string());
    if let Err(e) = svc.replica.write(move |ctx| inbox::fail_outbound(ctx, &doc, &mid, &err)).await {
        tracing::error!(error = %e, "recording a failed reply in its document");
    }
}

#[cfg(test)]
mod tests {
    // A test states what it needs; a failed unwrap is the failure, reported with its line.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_reply_waits_for_its_turn_under_the_rate_limit_and_no_longer() {
        // Two a second: the third waits ~500 ms, a margin no busy test machine blurs.
        let limiter: DefaultKeyedRateLimiter<String> =
            RateLimiter::keyed(Quota::per_second(std::num::NonZeroU32::new(2).unwrap()));
        let (number, other) = ("15550001".to_string(), "15550002".to_string());
        let t = std::time::Instant::now();
        // The burst goes at once.
        for _ in 0..2 {
            until_allowed(&limiter, &number).await;
        }
        assert!(t.elapsed() < Duration::from_millis(300), "{:?}", t.elapsed());
        // The third waits for the next slot, about 500 ms on.
        until_allowed(&limiter, &number).await;
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(10), "{waited:?}");
        // Another number has its own budget.
        let t = std::time::Instant::now();
        until_allowed(&limiter, &other).await;
        assert!(t.elapsed() < Duration::from_millis(300), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn marks_wait_for_a_pause_in_processing_for_a_bounded_while() {
        let (tx, mut busy) = tokio::sync::watch::channel(false);
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        assert!(!until_idle(&mut busy, far).await, "nothing to wait for when idle");
        // Busy, then a pause: it returns at the pause, long before the deadline.
        tx.send_replace(true);
        let t = tokio::time::Instant::now();
        let pause = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send_replace(false);
            tx
        });
        assert!(until_idle(&mut busy, far).await);
        assert!(
            t.elapsed() >= Duration::from_millis(100) && t.elapsed() < Duration::from_secs(30),
            "{:?}",
            t.elapsed()
        );
        // Busy with no pause: it gives up at the deadline.
        let tx = pause.await.unwrap();
        tx.send_replace(true);
        let t = tokio::time::Instant::now();
        assert!(until_idle(&mut busy, t + Duration::from_millis(300)).await);
        assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
        assert!(*busy.borrow(), "still busy: the deadline ended the wait");
    }

    #[tokio::test]
    async fn gather_waits_for_more_only_in_a_stream_and_stops_when_closed() {
        // A window far longer than any scheduling hiccup, so the test does not depend on timing.
        let window = Duration::from_millis(800);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let later = |n: u32, after_ms: u64| {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                tx.send(n).unwrap();
            })
        };
        for i in 0..6 {
            tx.send(i).unwrap();
        }
        let mut batch = Vec::new();
        let just_now = Some(tokio::time::Instant::now());
        assert_eq!(gather(&mut rx, &mut batch, 4, just_now, window).await, 4, "a full batch goes at once");
        assert_eq!(batch, [0, 1, 2, 3]);
        // After a quiet spell (no batch before, or one long ago), what has come goes at once.
        let joins = later(10, 200);
        let mut batch = Vec::new();
        let t = tokio::time::Instant::now();
        assert_eq!(gather(&mut rx, &mut batch, 256, None, window).await, 2);
        assert_eq!(batch, [4, 5]);
        assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
        joins.await.unwrap();
        let mut batch = Vec::new();
        let long_ago = tokio::time::Instant::now().checked_sub(window * 2);
        assert_eq!(gather(&mut rx, &mut batch, 256, long_ago, window).await, 1);
        // In a stream (the batch before just ended), what comes within the window joins.
        tx.send(20).unwrap();
        let joins = later(21, 200);
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, 256, Some(tokio::time::Instant::now()), window).await, 2);
        assert_eq!(batch, [20, 21]);
        joins.await.unwrap();
        drop(tx);
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, 256, None, window).await, 0, "closed");
    }
}
