//! `whatsapp.db`: raw webhook events (written by a group-commit thread, so an acknowledged webhook
//! is on disk and many requests share one fsync), delivery reports waiting for their message, the
//! shops' numbers and the outbox (WhatsApp replies and e-mails, each by its own unique id: see
//! `crate::mail`). Redeliveries need no table of their own: a message's record id
//! derives from its wamid, and statuses only move forward.

use std::{
    path::Path,
    sync::{Arc, Mutex, mpsc},
};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::hub::now_ms;

const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/whatsapp/0001_whatsapp.sql")];

/// Events looked at (and deleted) in one transaction of [`WaStore::prune_events`].
const PRUNE_SLICE: i64 = 2000;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("whatsapp store: {0}")]
pub struct WaStoreError(String);

impl From<rusqlite::Error> for WaStoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

type R<T> = Result<T, WaStoreError>;

/// A shop's WhatsApp number.
#[derive(Clone, Serialize)]
pub struct Number {
    /// Meta's phone number id.
    pub phone_number_id: String,
    /// The shop.
    pub shop_id: String,
    /// The branch its conversations belong to (None: the shop's first branch).
    pub branch_id: Option<String>,
    /// The number as shown to people.
    pub display_number: String,
    /// The Graph API access token (never serialised).
    #[serde(skip)]
    pub access_token: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl std::fmt::Debug for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Number")
            .field("phone_number_id", &self.phone_number_id)
            .field("shop_id", &self.shop_id)
            .field("branch_id", &self.branch_id)
            .field("display_number", &self.display_number)
            .field("access_token", &dashoffice_domain::api::REDACTED)
            .finish_non_exhaustive()
    }
}

/// A delivery report waiting for its message: wamid, status, error, shop, received at.
pub type Orphan = (String, String, Option<String>, String, i64);

/// Webhook events by state (0 pending, 1 done, 2 ignored, 3 failed), and when the last one was
/// processed (ms since the epoch).
#[derive(Debug, Clone, Default)]
pub struct EventCounts {
    pub by_state: Vec<(i64, i64)>,
    pub last_processed_at: Option<i64>,
}

/// What claiming an outbound message for sending found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never tried: now marked sending.
    New,
    /// A retry is due: now marked sending; attempts so far.
    Retry(i64),
    /// Sending, failed, a retry not yet due, or sent moments ago: leave it.
    Busy,
    /// WhatsApp accepted it a while ago (this wamid) but its document still says queued: the
    /// relay stopped before recording it there, or that write failed. Record it; never send it
    /// again.
    Sent(String),
}

/// How long a sent reply's document may still say queued before the outbox records it again.
const SENT_UNRECORDED_MS: i64 = 10_000;

struct Ingest {
    body: Vec<u8>,
    done: oneshot::Sender<R<i64>>,
}

/// A stored webhook event: id, body, attempts so far, when it was received (Unix ms).
pub type StoredEvent = (i64, Vec<u8>, i64, i64);

/// The store.
pub struct WaStore {
    conn: Arc<Mutex<Connection>>,
    /// Reads of the hot paths (pending events, numbers): in WAL mode they never wait for a write.
    reader: Mutex<Connection>,
    ingest: mpsc::SyncSender<Ingest>,
}

fn open_conn(path: &Path) -> R<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

impl WaStore {
    /// Opens (creating and migrating) `whatsapp.db` in `dir` and starts the ingest thread.
    pub fn open(dir: &Path) -> R<Arc<Self>> {
        let path = dir.join("whatsapp.db");
        let mut c = open_conn(&path)?;
        let ms = rusqlite_migration::Migrations::new(MIGRATIONS.iter().map(|s| rusqlite_migration::M::up(s)).collect());
        ms.to_latest(&mut c).map_err(|e| WaStoreError(format!("migrating {}: {e}", path.display())))?;
        // One connection for the ingest thread and everything else: two connections writing the
        // same file meet in SQLite's busy handler, which sleeps whole milliseconds; a mutex hands
        // over as soon as the other write is done.
        let conn = Arc::new(Mutex::new(c));
        let (tx, rx) = mpsc::sync_channel::<Ingest>(8192);
        let writer = conn.clone();
        std::thread::Builder::new()
            .name("whatsapp-ingest".into())
            .spawn(move || ingest_loop(&writer, rx))
            .map_err(|e| WaStoreError(e.to_string()))?;
        let reader = Mutex::new(open_conn(&path)?);
        Ok(Arc::new(Self { conn, reader, ingest: tx }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a raw webhook body durably; resolves once it is committed.
    pub async fn ingest(&self, body: Vec<u8>) -> R<i64> {
        let (done, rx) = oneshot::channel();
        self.ingest.try_send(Ingest { body, done }).map_err(|_| WaStoreError("the ingest queue is full".into()))?;
        rx.await.map_err(|_| WaStoreError("the ingest thread stopped".into()))?
    }

    /// Pending events (id, body, attempts, when received) with an id above `after`, oldest first (the events after a batch still
    /// being applied).
    /// At most `limit` events, and no more once their bodies reach `max_bytes` (the first is
    /// always read, whatever its size).
    pub fn pending_after(&self, after: i64, limit: usize, max_bytes: usize) -> R<Vec<StoredEvent>> {
        let c = self.read();
        let mut st = c.prepare_cached(
            "SELECT id, body, attempts, received_at FROM events WHERE state = 0 AND id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut rows = st.query(params![after, limit as i64])?;
        let (mut out, mut bytes) = (Vec::new(), 0);
        while (out.is_empty() || bytes < max_bytes)
            && let Some(r) = rows.next()?
        {
            let body: Vec<u8> = r.get(1)?;
            bytes += body.len();
            out.push((r.get(0)?, body, r.get(2)?, r.get(3)?));
        }
        Ok(out)
    }

    /// Records how an event ended (1 done, 2 ignored, 3 failed) or, with state 0, that it will be
    /// retried.
    pub fn finish(&self, id: i64, state: i64, error: Option<&str>) -> R<()> {
        let c = self.lock();
        c.prepare_cached(
            "UPDATE events SET state = ?2, error = ?3, attempts = attempts + 1, processed_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, state, error, now_ms()])?;
        Ok(())
    }

    /// Records how many events ended, in one transaction (one fsync for a whole batch).
    pub fn finish_many(&self, done: &[(i64, i64, Option<String>)]) -> R<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut c = self.lock();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE events SET state = ?2, error = ?3, attempts = attempts + 1, processed_at = ?4 WHERE id = ?1",
            )?;
            let now = now_ms();
            for (id, state, error) in done {
                st.execute(params![id, state, error, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Counts of events by state and the time of the last one processed (for /healthz, metrics
    /// and the status API).
    pub fn event_counts(&self) -> R<EventCounts> {
        let c = self.lock();
        let mut st = c.prepare_cached("SELECT state, count(*), max(processed_at) FROM events GROUP BY state")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(EventCounts {
            last_processed_at: rows.iter().filter_map(|r| r.2).max(),
            by_state: rows.into_iter().map(|(s, n, _)| (s, n)).collect(),
        })
    }

    /// Deletes the webhook events received before `before` (ms since the epoch) that are done or
    /// ignored, and the failed ones received before `failed_before`; pending events and the
    /// newest event (so ids are never reused) stay. A message's redelivery needs no old event:
    /// it is recognised by its record. Works in slices of [`PRUNE_SLICE`] rows, each its own
    /// short transaction, so webhooks wait for one slice at most. Returns how many went.
    pub fn prune_events(&self, before: i64, failed_before: i64) -> R<usize> {
        let newest: Option<i64> = self.read().query_row("SELECT max(id) FROM events", [], |r| r.get(0))?;
        let Some(newest) = newest else { return Ok(0) };
        let (mut after, mut total) = (0_i64, 0);
        loop {
            let mut c = self.lock();
            let rows: Vec<(i64, i64, i64)> = c
                .prepare_cached(
                    "SELECT id, state, received_at FROM events WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(params![after, newest, PRUNE_SLICE], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let Some(&(last, ..)) = rows.last() else { break };
            let old = |at: i64, state: i64| match state {
                1 | 2 => at < before,
                3 => at < failed_before,
                _ => false,
            };
            let reached_new = rows.iter().any(|&(_, _, at)| at >= before.max(failed_before));
            let tx = c.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
                for &(id, state, at) in &rows {
                    if old(at, state) {
                        total += del.execute([id])?;
                    }
                }
            }
            tx.commit()?;
            drop(c);
            if reached_new {
                break;
            }
            after = last;
        }
        Ok(total)
    }

    /// Keeps a delivery report for a message not known yet.
    pub fn add_orphan(&self, wamid: &str, status: &str, error: Option<&str>, shop: &str) -> R<()> {
        self.lock()
            .prepare_cached(
                "INSERT INTO orphan_statuses(wamid, status, error, shop_id, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![wamid, status, error, shop, now_ms()])?;
        Ok(())
    }

    /// Orphan reports (wamid, status, error, shop, received_at).
    pub fn orphans(&self) -> R<Vec<Orphan>> {
        let c = self.lock();
        let mut st = c.prepare_cached(
            "SELECT wamid, status, error, shop_id, received_at FROM orphan_statuses ORDER BY received_at LIMIT 1000",
        )?;
        Ok(st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Drops an orphan report (applied, or too old).
    pub fn drop_orphan(&self, wamid: &str, status: &str) -> R<()> {
        self.lock()
            .prepare_cached("DELETE FROM orphan_statuses WHERE wamid = ?1 AND status = ?2")?
            .execute([wamid, status])?;
        Ok(())
    }

    /// Adds or replaces a number.
    pub fn put_number(&self, n: &Number) -> R<()> {
        self.lock()
            .prepare_cached(
                "INSERT INTO numbers(phone_number_id, shop_id, branch_id, display_number, access_token, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT(phone_number_id) DO UPDATE SET shop_id = excluded.shop_id, branch_id = excluded.branch_id,
                   display_number = excluded.display_number, access_token = excluded.access_token, updated_at = excluded.updated_at",
            )?
            .execute(params![n.phone_number_id, n.shop_id, n.branch_id, n.display_number, n.access_token, now_ms()])?;
        Ok(())
    }

    /// Removes a number; false if unknown.
    pub fn delete_number(&self, id: &str) -> R<bool> {
        Ok(self.lock().prepare_cached("DELETE FROM numbers WHERE phone_number_id = ?1")?.execute([id])? == 1)
    }

    /// Every number.
    pub fn numbers(&self) -> R<Vec<Number>> {
        let c = self.read();
        let mut st =
            c.prepare_cached(&format!("SELECT {NUMBER_COLS} FROM numbers ORDER BY shop_id, phone_number_id"))?;
        Ok(st.query_map([], number_row)?.collect::<rusqlite::Result<_>>()?)
    }

    /// One number (the outbox looks it up for every reply).
    pub fn number(&self, id: &str) -> R<Option<Number>> {
        let c = self.read();
        let mut st = c.prepare_cached(&format!("SELECT {NUMBER_COLS} FROM numbers WHERE phone_number_id = ?1"))?;
        Ok(st.query_row([id], number_row).optional()?)
    }

    /// Claims an outbound message for one sending attempt (durably, before any network call).
    #[cfg(test)]
    pub fn claim(&self, message_id: &str, shop: &str) -> R<Claim> {
        let mut claims = self.claim_many(shop, &[message_id.to_string()])?;
        claims.pop().ok_or_else(|| WaStoreError("claiming a reply returned nothing".into()))
    }

    /// Claims outbound messages of `shop` for one sending attempt each, in one transaction
    /// (durably, before any network call): one commit for as many replies as can be sent now.
    pub fn claim_many(&self, shop: &str, message_ids: &[String]) -> R<Vec<Claim>> {
        let mut c = self.lock();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        let mut claims = Vec::with_capacity(message_ids.len());
        for message_id in message_ids {
            claims.push(claim_in(&tx, message_id, shop, now)?);
        }
        tx.commit()?;
        Ok(claims)
    }

    /// The message was accepted by WhatsApp.
    #[cfg(test)]
    pub fn sent(&self, message_id: &str, wamid: &str) -> R<()> {
        self.sent_many(&[(message_id.to_string(), wamid.to_string())])
    }

    /// These messages (id, wamid) were accepted by WhatsApp: recorded in one transaction.
    pub fn sent_many(&self, accepted: &[(String, String)]) -> R<()> {
        let mut c = self.lock();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = 'sent', wamid = ?2, attempts = attempts + 1, updated_at = ?3 WHERE message_id = ?1",
            )?;
            for (message_id, wamid) in accepted {
                st.execute(params![message_id, wamid, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The attempt failed in a way that is safe to retry at `next_at`.
    pub fn retry(&self, message_id: &str, next_at: i64, error: &str) -> R<()> {
        self.lock()
            .prepare_cached(
                "UPDATE outbox SET state = 'retry', attempts = attempts + 1, next_at = ?2, error = ?3, updated_at = ?4 WHERE message_id = ?1",
            )?
            .execute(params![message_id, next_at, error, now_ms()])?;
        Ok(())
    }

    /// The message will not be sent.
    pub fn failed(&self, message_id: &str, error: &str) -> R<()> {
        self.lock()
            .prepare_cached("UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ?2, updated_at = ?3 WHERE message_id = ?1")?
            .execute(params![message_id, error, now_ms()])?;
        Ok(())
    }

    /// Messages whose sending was interrupted by a crash: WhatsApp may or may not have them, so
    /// they are failed rather than resent (never twice); returned so their documents say so.
    pub fn interrupted(&self) -> R<Vec<(String, String)>> {
        let c = self.lock();
        let ids: Vec<(String, String)> = c
            .prepare_cached("SELECT message_id, shop_id FROM outbox WHERE state = 'sending'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        c.prepare_cached(
            "UPDATE outbox SET state = 'failed', error = 'interrupted while sending; not resent to avoid a duplicate' WHERE state = 'sending'",
        )?
        .execute([])?;
        Ok(ids)
    }

    /// What the outbox holds of one message (or e-mail): its state and its error, if any.
    pub fn state_of(&self, message_id: &str) -> R<Option<(String, Option<String>)>> {
        Ok(self
            .read()
            .prepare_cached("SELECT state, error FROM outbox WHERE message_id = ?1")?
            .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// The messages and e-mails of `shop` being sent, or waiting for a retry not due yet: a claim
    /// would find them busy.
    pub fn busy_ids(&self, shop: &str) -> R<std::collections::HashSet<String>> {
        Ok(self
            .read()
            .prepare_cached(
                "SELECT message_id FROM outbox WHERE state = 'sending' AND shop_id = ?1
                 UNION ALL SELECT message_id FROM outbox WHERE state = 'retry' AND next_at > ?2 AND shop_id = ?1",
            )?
            .query_map(params![shop, now_ms()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Retries due now (message ids).
    pub fn due_retries(&self, shop: &str) -> R<Vec<String>> {
        let c = self.lock();
        let mut st = c.prepare_cached(
            "SELECT message_id FROM outbox WHERE shop_id = ?1 AND state = 'retry' AND next_at <= ?2 ORDER BY next_at LIMIT 500",
        )?;
        Ok(st.query_map(params![shop, now_ms()], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
    }
}

/// One claim (see [`WaStore::claim_many`]), inside the caller's transaction.
fn claim_in(c: &Connection, message_id: &str, shop: &str, now: i64) -> R<Claim> {
    let row: Option<(String, i64, i64, i64, Option<String>)> = c
        .prepare_cached("SELECT state, attempts, next_at, updated_at, wamid FROM outbox WHERE message_id = ?1")?
        .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    match row {
        None => {
            c.prepare_cached(
                "INSERT INTO outbox(message_id, shop_id, state, attempts, next_at, updated_at) VALUES (?1, ?2, 'sending', 0, 0, ?3)",
            )?
            .execute(params![message_id, shop, now])?;
            Ok(Claim::New)
        }
        Some((s, _, _, updated_at, Some(wamid))) if s == "sent" && updated_at < now - SENT_UNRECORDED_MS => {
            Ok(Claim::Sent(wamid))
        }
        Some((s, attempts, next_at, _, _)) if s == "retry" && next_at <= now => {
            c.prepare_cached("UPDATE outbox SET state = 'sending', updated_at = ?2 WHERE message_id = ?1")?
                .execute(params![message_id, now])?;
            Ok(Claim::Retry(attempts))
        }
        Some(_) => Ok(Claim::Busy),
    }
}

const NUMBER_COLS: &str = "phone_number_id, shop_id, branch_id, display_number, access_token, created_at, updated_at";

fn number_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Number> {
    Ok(Number {
        phone_number_id: r.get(0)?,
        shop_id: r.get(1)?,
        branch_id: r.get(2)?,
        display_number: r.get(3)?,
        access_token: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

fn ingest_loop(conn: &Mutex<Connection>, rx: mpsc::Receiver<Ingest>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(i) => batch.push(i),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let result = (|| -> R<Vec<i64>> {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction()?;
            let mut ids = Vec::with_capacity(batch.len());
            {
                let mut st = tx.prepare_cached("INSERT INTO events(received_at, body) VALUES (?1, ?2)")?;
                for i in &batch {
                    st.execute(params![now, i.body])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            tx.commit()?;
            Ok(ids)
        })();
        metrics::histogram!("dashoffice_whatsapp_ingest_batch").record(batch.len() as f64);
        match result {
            Ok(ids) => {
                for (i, id) in batch.into_iter().zip(ids) {
                    let _ = i.done.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing webhook events failed");
                for i in batch {
                    let _ = i.done.send(Err(WaStoreError(e.0.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_pending_events_stops_at_its_count_or_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let st = WaStore::open(dir.path()).unwrap();
        for size in [10, 10, 3000, 10, 10] {
            st.lock().execute("INSERT INTO events(received_at, body) VALUES (0, zeroblob(?1))", [size]).unwrap();
        }
        st.lock().execute("UPDATE events SET state = 1 WHERE id = 1", []).unwrap();
        let ids = |v: Vec<StoredEvent>| v.into_iter().map(|(id, ..)| id).collect::<Vec<_>>();
        assert_eq!(ids(st.pending_after(0, 10, 1 << 20).unwrap()), [2, 3, 4, 5], "pending ones only");
        assert_eq!(ids(st.pending_after(0, 2, 1 << 20).unwrap()), [2, 3]);
        assert_eq!(ids(st.pending_after(0, 10, 100).unwrap()), [2, 3], "the one that reaches the bytes is the last");
        assert_eq!(ids(st.pending_after(2, 10, 1).unwrap()), [3], "the first is read whatever its size");
        assert_eq!(ids(st.pending_after(2, 10, 0).unwrap()), [3], "even with no bytes to spare");
        assert_eq!(ids(st.pending_after(3, 10, 1 << 20).unwrap()), [4, 5]);
    }

    #[test]
    fn event_counts_are_by_state_with_the_last_processing_time() {
        let dir = tempfile::tempdir().unwrap();
        let st = WaStore::open(dir.path()).unwrap();
        let none = st.event_counts().unwrap();
        assert!(none.by_state.is_empty() && none.last_processed_at.is_none(), "{none:?}");
        for _ in 0..4 {
            st.lock().execute("INSERT INTO events(received_at, body) VALUES (0, x'00')", []).unwrap();
        }
        st.finish_many(&[(1, 1, None), (2, 2, Some("unknown field".into()))]).unwrap();
        let counts = st.event_counts().unwrap();
        let mut by_state = counts.by_state.clone();
        by_state.sort();
        assert_eq!(by_state, [(0, 2), (1, 1), (2, 1)]);
        let at: i64 = st.lock().query_row("SELECT max(processed_at) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(counts.last_processed_at, Some(at));
        assert!(at > 0);
    }

    #[test]
    fn old_processed_events_are_pruned_and_pending_recent_and_the_newest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let st = WaStore::open(dir.path()).unwrap();
        // (received at, state): three slices' worth of old done events, then the rest.
        let mut rows: Vec<(i64, i64)> = (0..(2 * PRUNE_SLICE + 10)).map(|_| (100, 1)).collect();
        rows.extend([(100, 0), (100, 2), (100, 3), (500, 3), (900, 1), (900, 0), (100, 1)]);
        for (at, state) in &rows {
            st.lock()
                .execute("INSERT INTO events(received_at, body, state) VALUES (?1, x'00', ?2)", [at, state])
                .unwrap();
        }
        let ids = || -> Vec<(i64, i64)> {
            let c = st.lock();
            let mut q = c.prepare("SELECT received_at, state FROM events ORDER BY id").unwrap();
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
        };
        // Done and ignored before 600 go; failed ones only before 200.
        let gone = st.prune_events(600, 200).unwrap();
        assert_eq!(gone, 2 * PRUNE_SLICE as usize + 10 + 1 + 1);
        assert_eq!(ids(), [(100, 0), (500, 3), (900, 1), (900, 0), (100, 1)], "pending, recent and newest stay");
        assert_eq!(st.prune_events(600, 200).unwrap(), 0, "nothing more");
        let empty = WaStore::open(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(empty.prune_events(i64::MAX, i64::MAX).unwrap(), 0);
    }

    #[test]
    fn a_reply_is_claimed_once_and_a_sent_one_left_unrecorded_is_handed_back_never_resent() {
        let dir = tempfile::tempdir().unwrap();
        let st = WaStore::open(dir.path()).unwrap();
        assert_eq!(st.claim("m1", "s1").unwrap(), Claim::New);
        assert_eq!(st.claim("m1", "s1").unwrap(), Claim::Busy, "being sent");
        st.sent("m1", "wamid.1").unwrap();
        assert_eq!(st.claim("m1", "s1").unwrap(), Claim::Busy, "just sent: its document is being updated");
        // The relay stopped before the document said sent; a while later the outbox sees it queued.
        st.lock()
            .execute("UPDATE outbox SET updated_at = updated_at - ?1 WHERE message_id = 'm1'", [SENT_UNRECORDED_MS + 1])
            .unwrap();
        assert_eq!(st.claim("m1", "s1").unwrap(), Claim::Sent("wamid.1".into()));
    }

    #[test]
    fn replies_claimed_together_each_get_their_own_answer_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let st = WaStore::open(dir.path()).unwrap();
        assert_eq!(st.claim("m2", "s1").unwrap(), Claim::New);
        let ids: Vec<String> = ["m1", "m2", "m4"].iter().map(|s| s.to_string()).collect();
        assert_eq!(st.claim_many("s1", &ids).unwrap(), vec![Claim::New, Claim::Busy, Claim::New]);
        st.sent_many(&[("m1".into(), "wamid.1".into()), ("m4".into(), "wamid.4".into())]).unwrap();
        drop(st);
        // Committed: a relay restarted after this fails none of them as interrupted but m2.
        let st = WaStore::open(dir.path()).unwrap();
        let states: Vec<(String, String, Option<String>)> = st
            .lock()
            .prepare("SELECT message_id, state, wamid FROM outbox ORDER BY message_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            states,
            vec![
                ("m1".into(), "sent".into(), Some("wamid.1".into())),
                ("m2".into(), "sending".into(), None),
                ("m4".into(), "sent".into(), Some("wamid.4".into())),
            ]
        );
        assert_eq!(st.interrupted().unwrap(), vec![("m2".to_string(), "s1".to_string())]);
    }
}
