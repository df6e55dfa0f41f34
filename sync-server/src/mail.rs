//! E-mail from the relay (lettre over SMTP): the order documents staff ask to e-mail on any replica
//! (`dashoffice_core::entities::emails`) go out from here, through each shop's service replica,
//! which receives the requests like any replica. Each e-mail is claimed in the outbox of
//! `whatsapp.db` (by its own id) durably before the SMTP call: a relay killed mid-send marks it
//! failed rather than send it twice, as it does WhatsApp replies. Transient failures (the server
//! down, 4xx answers, timeouts) and refusals of the relay's own settings (its login) are retried
//! with backoff for about two days; a permanent refusal of the message (5xx) fails the e-mail
//! with the server's answer, which the order shows.

use std::{sync::Arc, time::Duration};

use dashoffice_core::{
    CoreError,
    entities::{
        emails::{self, Outcome, QueuedEmail},
        reports,
    },
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};

use crate::whatsapp::{WhatsApp, service::ShopService, store::Claim};

/// The relay's mail settings (`smtp_url`, `smtp_from`, `smtp_timeout_ms`).
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://host:port` (plain, or `?tls=required` for STARTTLS) or `smtps://host:port`, with
    /// `user:password@` when the server wants a login. A secret: never logged.
    pub url: String,
    /// The sender's address (the shop's name is its display name; the shop's e-mail, Reply-To).
    pub from: String,
    /// Timeout of connecting and of each read and write of an SMTP conversation.
    pub timeout: Duration,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig").field("url", &"***").field("from", &self.from).finish_non_exhaustive()
    }
}

/// E-mails being sent at once (each on its own pooled SMTP connection), for all shops.
const SLOTS: usize = 8;

/// The SMTP client.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::Address,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Mailer {
    /// Checks the settings (a clear error naming the setting) and builds the client; it connects
    /// when the first e-mail goes.
    pub fn new(cfg: &MailConfig) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.url)
            .map_err(|e| anyhow::anyhow!("smtp_url is not an smtp:// or smtps:// URL lettre accepts: {e}"))?
            .timeout(Some(cfg.timeout))
            .build();
        let from = cfg
            .from
            .trim()
            .parse::<lettre::Address>()
            .map_err(|e| anyhow::anyhow!("smtp_from {:?} is not an e-mail address: {e}", cfg.from))?;
        Ok(Self { transport, from, slots: Arc::new(tokio::sync::Semaphore::new(SLOTS)) })
    }
}

/// E-mails to send read in one pass at most.
const PASS: u32 = 50;

/// Attempts of a transiently failing e-mail before it fails: the backoff waits up to a minute,
/// plus up to as much again of jitter (90 s on average), so about two days.
const MAX_ATTEMPTS: i64 = 1920;

/// Sends the e-mails of `svc`'s shop: woken by every batch its replica receives, and every few
/// seconds for retries that come due.
pub async fn outbox(wa: Arc<WhatsApp>, svc: Arc<ShopService>, mailer: Arc<Mailer>) {
    let mut changes = svc.replica.subscribe();
    loop {
        match svc.wake(&mut changes, Duration::from_secs(2)).await {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        // E-mails being sent or waiting for a retry still read as queued: read past them (and
        // leave them), so a pile of retries never holds up a new e-mail.
        let (store, shop) = (wa.store.clone(), svc.shop.clone());
        let busy = tokio::task::spawn_blocking(move || store.busy_ids(&shop)).await;
        let busy = match busy {
            Ok(Ok(b)) => b,
            _ => Default::default(),
        };
        let (replica, shop) = (svc.replica.clone(), svc.shop.clone());
        let limit = PASS + u32::try_from(busy.len()).unwrap_or(u32::MAX).min(50_000);
        let queued = tokio::task::spawn_blocking(move || replica.read(|c| emails::queued(c, &shop, limit))).await;
        let queued = match queued {
            Ok(Ok(q)) => q.into_iter().filter(|q| !busy.contains(&q.id)).collect::<Vec<_>>(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading the e-mails to send");
                continue;
            }
            Err(_) => continue,
        };
        // Claimed only once a sending slot is free for each (a claimed e-mail is one being
        // sent: a crash then fails it rather than send it twice), as many at once as slots.
        let mut queued = queued.into_iter().peekable();
        while queued.peek().is_some() {
            let Ok(first) = mailer.slots.clone().acquire_owned().await else { return };
            let mut permits = vec![first];
            while permits.len() < SLOTS {
                let Ok(p) = mailer.slots.clone().try_acquire_owned() else { break };
                permits.push(p);
            }
            let chunk: Vec<QueuedEmail> = queued.by_ref().take(permits.len()).collect();
            let ids: Vec<String> = chunk.iter().map(|q| q.id.clone()).collect();
            let (store, shop) = (wa.store.clone(), svc.shop.clone());
            let claimed = tokio::task::spawn_blocking(move || store.claim_many(&shop, &ids)).await;
            let claims = match claimed.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming e-mails");
                    continue;
                }
            };
            for ((q, claim), permit) in chunk.into_iter().zip(claims).zip(permits) {
                let attempts = match claim {
                    Claim::New => 0,
                    Claim::Retry(n) => n,
                    // Sent, but the relay stopped before its document said so.
                    Claim::Sent(message_id) => {
                        mark(&svc, &q, Outcome::Sent { at: crate::hub::now_ms(), message_id }).await;
                        continue;
                    }
                    // Being sent, a retry not due yet, or failed in the outbox (a relay killed
                    // mid-send) with its document not told yet.
                    Claim::Busy => {
                        if let Ok(Some((state, error))) = wa.store.state_of(&q.id)
                            && state == "failed"
                        {
                            let error = error.unwrap_or_else(|| "not sent".into());
                            mark(&svc, &q, Outcome::Failed { at: crate::hub::now_ms(), error }).await;
                        }
                        continue;
                    }
                };
                let (wa, svc, mailer) = (wa.clone(), svc.clone(), mailer.clone());
                tokio::spawn(async move {
                    send(&wa, &svc, &mailer, &q, attempts).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Sends one claimed e-mail and records how it went (outbox first, then its document).
async fn send(wa: &Arc<WhatsApp>, svc: &Arc<ShopService>, mailer: &Mailer, q: &QueuedEmail, attempts: i64) {
    let (replica, shop, id) = (svc.replica.clone(), svc.shop.clone(), q.id.clone());
    let now = crate::hub::now_ms();
    // Reading the order and laying out the PDF block: off the async workers.
    let composed = tokio::task::spawn_blocking(move || replica.read(|c| emails::compose(c, &shop, &id, now))).await;
    let composed = match composed {
        Ok(Ok(c)) => c,
        // Not on this replica yet, invoiced since and waiting for its number, or the store
        // failing: later. Any other broken rule (a duplicate automatic e-mail): never.
        Ok(Err(e)) if !e.is_rule() || matches!(e, CoreError::NotFound { .. }) || not_final(&e) => {
            return retry(wa, svc, q, attempts, &e.to_string()).await;
        }
        Ok(Err(e)) => return fail(wa, svc, q, &e.to_string()).await,
        Err(e) => return retry(wa, svc, q, attempts, &e.to_string()).await,
    };
    let domain = mailer.from.domain().to_string();
    let message_id = format!("<{}@{domain}>", q.id);
    let message = build(mailer, composed, &message_id);
    let message = match message {
        Ok(m) => m,
        Err(e) => return fail(wa, svc, q, &e).await,
    };
    let t = std::time::Instant::now();
    let result = mailer.transport.send(message).await;
    metrics::histogram!("dashoffice_email_send_seconds").record(t.elapsed().as_secs_f64());
    match result {
        Ok(_) => {
            metrics::counter!("dashoffice_email_sent_total").increment(1);
            record(wa, &q.id, Recorded::Sent(message_id.clone())).await;
            tracing::info!(email = %q.id, order = %q.order_id, "e-mail sent");
            mark(svc, q, Outcome::Sent { at: crate::hub::now_ms(), message_id }).await;
        }
        // The relay's own settings refused (its login, or TLS the server requires): every
        // e-mail would fail alike; they wait for the settings to be mended.
        Err(e) if e.status().is_some_and(|c| SETTINGS_CODES.contains(&u16::from(c))) => {
            tracing::error!(error = %e, "the mail server refused the relay's login or connection: check smtp_url");
            retry(wa, svc, q, attempts, &format!("the mail server refused the relay's settings: {e}")).await;
        }
        Err(e) if e.is_permanent() => {
            tracing::warn!(email = %q.id, error = %e, "the mail server refused an e-mail");
            fail(wa, svc, q, &format!("the mail server refused it: {e}")).await;
        }
        Err(e) => retry(wa, svc, q, attempts, &e.to_string()).await,
    }
}

/// SMTP answers about the sender's own connection, not the message: 530 (authentication or TLS
/// required), 534 (mechanism too weak), 535 (bad credentials), 538 (encryption required).
const SETTINGS_CODES: &[u16] = &[530, 534, 535, 538];

fn not_final(e: &CoreError) -> bool {
    matches!(e, CoreError::Conflict { field, rule, .. } if (field.as_str(), rule.as_str()) == emails::NOT_FINAL)
}

/// The message: the shop's name as the sender's name, its e-mail as Reply-To, the text and the
/// PDF.
fn build(mailer: &Mailer, c: emails::ComposedEmail, message_id: &str) -> Result<Message, String> {
    let to: Mailbox = c.to.parse().map_err(|e| format!("'{}' is not an address the mail server takes: {e}", c.to))?;
    let mut b = Message::builder()
        .from(Mailbox::new(Some(c.from_name), mailer.from.clone()))
        .to(to)
        .subject(c.subject)
        .message_id(Some(message_id.to_string()));
    if let Some(r) = c.reply_to.and_then(|r| r.parse::<Mailbox>().ok()) {
        b = b.reply_to(r);
    }
    let pdf = ContentType::parse("application/pdf").map_err(|e| e.to_string())?;
    b.multipart(
        MultiPart::mixed()
            .singlepart(SinglePart::plain(c.body))
            .singlepart(Attachment::new(c.pdf.file_name).body(c.pdf.bytes, pdf)),
    )
    .map_err(|e| e.to_string())
}

/// A transient failure: tried again later, [`MAX_ATTEMPTS`] times at most.
async fn retry(wa: &Arc<WhatsApp>, svc: &Arc<ShopService>, q: &QueuedEmail, attempts: i64, error: &str) {
    if attempts + 1 >= MAX_ATTEMPTS {
        return fail(wa, svc, q, &format!("not sent after {MAX_ATTEMPTS} attempts; last error: {error}")).await;
    }
    record(wa, &q.id, later(&q.id, attempts, error)).await;
}

/// The retry of outbox entry `id` after `attempts` failed ones, with its backoff; counted and
/// logged.
fn later(id: &str, attempts: i64, error: &str) -> Recorded {
    metrics::counter!("dashoffice_email_retries_total").increment(1);
    let delay = crate::whatsapp::graph::backoff(attempts);
    tracing::warn!(email = %id, attempts = attempts + 1, retry_in_ms = delay.as_millis() as u64, error = %error, "sending an e-mail failed; will retry");
    let next = crate::hub::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(60_000);
    Recorded::Retry(next, error.to_string())
}

async fn fail(wa: &Arc<WhatsApp>, svc: &Arc<ShopService>, q: &QueuedEmail, error: &str) {
    metrics::counter!("dashoffice_email_failures_total").increment(1);
    record(wa, &q.id, Recorded::Failed(error.to_string())).await;
    mark(svc, q, Outcome::Failed { at: crate::hub::now_ms(), error: error.to_string() }).await;
}

/// Writes the outcome into the e-mail's request in the order (synced to every replica).
async fn mark(svc: &Arc<ShopService>, q: &QueuedEmail, outcome: Outcome) {
    let (doc, order, id) = (q.doc_id.clone(), q.order_id.clone(), q.id.clone());
    if let Err(e) = svc.replica.write(move |ctx| emails::mark(ctx, &doc, &order, &id, &outcome)).await {
        tracing::error!(error = %e, email = %q.id, "recording an e-mail's outcome in its order");
    }
}

/// How often each shop's daily summary is checked for being due.
const REPORT_CHECK: Duration = Duration::from_secs(5);

/// Sends each day's summary of `svc`'s shop to its owners and managers once its hour has come
/// (`dashoffice_core::entities::reports`): claimed in the outbox by shop and day — only once it is
/// written and a sending slot is free, so a restart meanwhile loses nothing — it goes once a day
/// at most; retried like an e-mail while the server is down, until the shop's day ends.
pub async fn daily_reports(wa: Arc<WhatsApp>, svc: Arc<ShopService>, mailer: Arc<Mailer>) {
    loop {
        tokio::time::sleep(REPORT_CHECK).await;
        if !svc.ready() {
            continue;
        }
        let (replica, shop) = (svc.replica.clone(), svc.shop.clone());
        let now = crate::hub::now_ms();
        let due = tokio::task::spawn_blocking(move || replica.read(|c| reports::due(c, &shop, now))).await;
        let Ok(Ok(Some(today))) = due else { continue };
        // One summary per language its recipients chose: the Spanish one keeps the id it always
        // had.
        let id_of = |lang: &str| match lang {
            "es" => format!("report:{}:{today}", svc.shop),
            other => format!("report:{}:{today}:{other}", svc.shop),
        };
        let (replica, shop) = (svc.replica.clone(), svc.shop.clone());
        let langs = tokio::task::spawn_blocking(move || replica.read(|c| reports::languages(c, &shop))).await;
        // Nobody wants it today (every owner and manager turned it off): nothing is claimed, so
        // someone who turns it on later in the day still gets it.
        let Ok(Ok(langs)) = langs else { continue };
        let ids: Vec<String> = langs.iter().map(|l| id_of(l)).collect();
        if ids.is_empty() {
            continue;
        }
        let (store, shop) = (wa.store.clone(), svc.shop.clone());
        let pending =
            tokio::task::spawn_blocking(move || ids.into_iter().filter(|id| wanted(&store, &shop, id)).collect())
                .await
                .unwrap_or_else(|_| Vec::<String>::new());
        if pending.is_empty() {
            continue;
        }
        let (replica, shop, day) = (svc.replica.clone(), svc.shop.clone(), today.clone());
        let reports = tokio::task::spawn_blocking(move || replica.read(|c| reports::daily(c, &shop, &day))).await;
        let reports = match reports {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(shop = %svc.shop, error = %e, "writing the daily summary");
                continue;
            }
            Err(_) => continue,
        };
        for report in reports.iter().filter(|r| pending.contains(&id_of(&r.lang))) {
            send_report(&wa, &svc, &mailer, &id_of(&report.lang), report).await;
        }
    }
}

/// Whether summary `id` is still to be sent: not sent, failed, being sent or waiting for its retry.
fn wanted(store: &crate::whatsapp::store::WaStore, shop: &str, id: &str) -> bool {
    match store.state_of(id) {
        Ok(None) => true,
        Ok(Some((state, _))) if state == "retry" => !store.busy_ids(shop).is_ok_and(|b| b.contains(id)),
        _ => false,
    }
}

/// Claims summary `id` once a sending slot is free: the attempts made before, and the slot.
async fn claim(
    wa: &WhatsApp,
    svc: &ShopService,
    mailer: &Mailer,
    id: &str,
) -> Option<(i64, tokio::sync::OwnedSemaphorePermit)> {
    let slot = mailer.slots.clone().acquire_owned().await.ok()?;
    let (store, shop, cid) = (wa.store.clone(), svc.shop.clone(), id.to_string());
    let claimed = tokio::task::spawn_blocking(move || store.claim_many(&shop, &[cid])).await;
    match claimed {
        Ok(Ok(mut c)) => match c.pop() {
            Some(Claim::New) => Some((0, slot)),
            Some(Claim::Retry(n)) => Some((n, slot)),
            _ => None,
        },
        Ok(Err(e)) => {
            tracing::error!(error = %e, "claiming the daily summary");
            None
        }
        Err(_) => None,
    }
}

/// Sends one language's summary, claimed as `id`, and records how it went.
async fn send_report(wa: &WhatsApp, svc: &ShopService, mailer: &Mailer, id: &str, report: &reports::DailyReport) {
    let message_id = format!("<{}@{}>", id.replace(':', "."), mailer.from.domain());
    let message = report_message(mailer, report, &message_id);
    let Some((attempts, _slot)) = claim(wa, svc, mailer, id).await else { return };
    let message = match message {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(shop = %svc.shop, error = %e, "daily summary not sent");
            record(wa, id, Recorded::Failed(e)).await;
            return;
        }
    };
    match mailer.transport.send(message).await {
        Ok(_) => {
            metrics::counter!("dashoffice_email_sent_total").increment(1);
            tracing::info!(
                shop = %svc.shop, day = %report.day, lang = %report.lang, recipients = report.to.len(),
                "daily summary sent"
            );
            record(wa, id, Recorded::Sent(message_id)).await;
        }
        Err(e) if e.is_permanent() && !e.status().is_some_and(|c| SETTINGS_CODES.contains(&u16::from(c))) => {
            metrics::counter!("dashoffice_email_failures_total").increment(1);
            tracing::warn!(shop = %svc.shop, error = %e, "the mail server refused the daily summary");
            record(wa, id, Recorded::Failed(e.to_string())).await;
        }
        Err(e) => record(wa, id, later(id, attempts, &e.to_string())).await,
    }
}

/// How a sending (an e-mail's or a daily summary's) ended, for the outbox.
enum Recorded {
    Sent(String),
    Failed(String),
    Retry(i64, String),
}

/// Records it in the outbox, off the async workers (a commit, with its fsync).
async fn record(wa: &WhatsApp, id: &str, r: Recorded) {
    let (store, id) = (wa.store.clone(), id.to_string());
    let done = tokio::task::spawn_blocking(move || match r {
        Recorded::Sent(mid) => store.sent_many(&[(id, mid)]),
        Recorded::Failed(e) => store.failed(&id, &e),
        Recorded::Retry(next, e) => store.retry(&id, next, &e),
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::error!(error = %e, "recording an e-mail in the outbox");
    }
}

/// The summary as a message to every owner and manager.
fn report_message(mailer: &Mailer, r: &reports::DailyReport, message_id: &str) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(Mailbox::new(Some(r.from_name.clone()), mailer.from.clone()))
        .subject(r.subject.clone())
        .message_id(Some(message_id.to_string()));
    for to in &r.to {
        b = b.to(to.parse::<Mailbox>().map_err(|e| format!("'{to}' is not an address the mail server takes: {e}"))?);
    }
    b.singlepart(SinglePart::plain(r.body.clone())).map_err(|e| e.to_string())
}
