//! The relay's heart: documents in memory as their change logs (loaded on demand, dropped when
//! idle, see [`crate::log`]), one Automerge sync step at a time per document, new changes stored
//! durably (group commit) before any answer goes out, and every change announced to the sessions
//! that may see it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use automerge::sync;
use dashoffice_core::doc::DocId;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{
    log::Log,
    store::{Append, Device, RelayStore, StoreError},
};
/// Why a session was closed by [`Hub::replace_older`].
pub const REPLACED: &str = "replaced by a newer connection of this device";
/// Appends and state writes per transaction at most.
const MAX_BATCH: usize = 512;

/// What can go wrong in a step.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The document is not stored here.
    #[error("no such document")]
    NotFound,
    /// The peer sent something Automerge refused.
    #[error("bad sync message: {0}")]
    Bad(String),
    /// Storage failed; nothing was acknowledged.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// One sync step's result.
pub struct Step {
    /// The message to send back, if any.
    pub reply: Option<Vec<u8>>,
    /// Both sides have the same heads and nothing is in flight.
    pub in_sync: bool,
    /// The reply needs an answer (it is not a bare acknowledgement).
    pub awaits_answer: bool,
}

struct Slot {
    doc: Option<Log>,
    used: Instant,
}

enum WriteOp {
    Append(Append, oneshot::Sender<Result<u64, StoreError>>),
    States(Vec<(String, String, Vec<u8>)>),
}

/// A connected session, as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    /// Session number.
    pub session: u64,
    /// The device.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// "quic", "websocket", or "local" (the relay's own service replicas, `crate::quic::local_link`).
    pub transport: &'static str,
    /// Since when (Unix ms).
    pub connected_at: i64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Documents in flight.
    pub in_flight: u64,
    /// When the last message arrived (Unix ms).
    pub last_message_at: Option<i64>,
}

/// A session's number and the channel that tells it to disconnect.
type Kick = (u64, watch::Sender<Option<String>>);

/// The shared relay state.
pub struct Hub {
    pub(crate) store: Arc<dyn RelayStore>,
    docs: Mutex<HashMap<DocId, Arc<tokio::sync::Mutex<Slot>>>>,
    changed: broadcast::Sender<(u64, DocId)>,
    writer: mpsc::UnboundedSender<WriteOp>,
    kicks: Mutex<HashMap<String, Vec<Kick>>>,
    sessions: Mutex<HashMap<u64, SessionInfo>>,
    next_session: std::sync::atomic::AtomicU64,
    /// automerge-repo ids already looked up (a repo id never changes its document).
    repo_ids: Mutex<HashMap<String, DocId>>,
    /// The relay's peer id in the automerge-repo protocol.
    pub peer_id: String,
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Hub {
    /// A hub over `store`; starts its writer thread.
    pub fn new(store: Arc<dyn RelayStore>, peer_id: String) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = store.clone();
        std::thread::Builder::new()
            .name("relay-writer".into())
            .spawn(move || writer(s, rx))
            .map_or_else(|e| tracing::error!(error = %e, "cannot start the relay writer"), |_| ());
        let (changed, _) = broadcast::channel(8192);
        Arc::new(Self {
            store,
            docs: Mutex::new(HashMap::new()),
            changed,
            writer: tx,
            kicks: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_session: std::sync::atomic::AtomicU64::new(1),
            repo_ids: Mutex::new(HashMap::new()),
            peer_id,
        })
    }

    /// The document behind an automerge-repo id (cached: every WebSocket message names one).
    pub async fn doc_by_repo_id(&self, repo_id: &str) -> Result<Option<DocId>, StoreError> {
        if let Some(d) = self.repo_ids.lock().unwrap_or_else(|p| p.into_inner()).get(repo_id) {
            return Ok(Some(d.clone()));
        }
        let n = repo_id.to_string();
        let found = self.blocking(move |s| s.doc_by_repo_id(&n)).await?.and_then(|d| DocId::parse(&d).ok());
        if let Some(d) = &found {
            let mut m = self.repo_ids.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(repo_id.to_string(), d.clone());
        }
        Ok(found)
    }

    /// Runs a blocking store call off the async threads.
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RelayStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Db(format!("storage task: {e}")))?
    }

    fn slot(&self, id: &DocId) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.entry(id.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot { doc: None, used: Instant::now() })))
            .clone()
    }

    /// Announcements of changed documents: (session that caused it, document).
    pub fn subscribe(&self) -> broadcast::Receiver<(u64, DocId)> {
        self.changed.subscribe()
    }

    /// Persists sync states without waiting (losing one only costs a round trip).
    pub fn save_states(&self, states: Vec<(String, String, Vec<u8>)>) {
        if !states.is_empty() {
            let _ = self.writer.send(WriteOp::States(states));
        }
    }

    /// One Automerge sync step on `id` for a session: applies `msg` (if any), stores the new
    /// changes durably, then generates the answer. `create` allows a document this relay does
    /// not have yet to be started by the peer.
    pub async fn step(
        &self,
        session: u64,
        id: &DocId,
        state: &mut sync::State,
        msg: Option<sync::Message>,
        create: bool,
    ) -> Result<Step, HubError> {
        let slot = self.slot(id);
        let mut g = slot.lock().await;
        g.used = Instant::now();
        if g.doc.is_none() {
            let key = id.as_str().to_string();
            let chunks = self.blocking(move |s| s.load_doc(&key)).await?;
            g.doc = match chunks {
                Some(chunks) => Some(Log::load(&chunks).map_err(|e| HubError::Store(StoreError::Db(e.to_string())))?),
                None if create && msg.is_some() => Some(Log::new()),
                None => return Err(HubError::NotFound),
            };
        }
        let Some(doc) = g.doc.as_mut() else { return Err(HubError::NotFound) };
        if msg.is_none() && dashoffice_core::sync::nothing_to_tell(state, &doc.heads()) {
            return Ok(Step { reply: None, in_sync: true, awaits_answer: false });
        }
        let scope = id.scope().map_err(|e| HubError::Bad(e.to_string()))?;
        let collection = scope.collection;
        let mut added = Vec::new();
        if let Some(m) = msg {
            match doc.receive(state, m) {
                Ok(a) => added = a,
                Err(e) => {
                    // Drop whatever the log took in; reload from the store next time.
                    g.doc = None;
                    return Err(HubError::Bad(e.to_string()));
                }
            }
        }
        if !added.is_empty() {
            let n = added.len();
            let append = Append {
                doc_id: id.as_str().to_string(),
                repo_id: dashoffice_core::repo_id::repo_id(id.as_str()),
                shop_id: scope.shop_id,
                branch_id: scope.branch_id,
                changes: added.iter().map(|c| c.to_vec()).collect(),
                heads: dashoffice_core::sync::heads_to_bytes(&doc.heads()),
                now: now_ms(),
            };
            let (tx, rx) = oneshot::channel();
            let _ = self.writer.send(WriteOp::Append(append, tx));
            let stored = rx.await.unwrap_or_else(|_| Err(StoreError::Db("the writer stopped".into())));
            if let Err(e) = stored {
                // Not durable: forget it in memory too, so nobody is told we have it.
                g.doc = None;
                return Err(HubError::Store(e));
            }
            metrics::counter!("dashoffice_relay_changes_stored_total").increment(n as u64);
            let _ = self.changed.send((session, id.clone()));
        }
        let Some(doc) = g.doc.as_mut() else { return Err(HubError::NotFound) };
        let reply = doc.generate(state, |h| dashoffice_core::doc::at_genesis(collection, h));
        let heads = doc.heads();
        let they_have_ours = state.their_heads.as_deref() == Some(heads.as_slice());
        Ok(Step {
            in_sync: reply.is_none() && they_have_ours,
            awaits_answer: reply.is_some() && !they_have_ours,
            reply,
        })
    }

    /// Drops documents nobody used for `idle` (they reload from the store on demand).
    pub fn evict_idle(&self, idle: Duration) {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.retain(|_, slot| match slot.try_lock() {
            Ok(g) => g.used.elapsed() < idle,
            Err(_) => true,
        });
    }

    /// Documents held in memory now.
    pub fn docs_in_memory(&self) -> usize {
        self.docs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Registers a session; the returned receiver is told when the device must be disconnected.
    pub fn register(&self, device: &Device, transport: &'static str) -> (u64, watch::Receiver<Option<String>>) {
        let id = self.next_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.kicks.lock().unwrap_or_else(|p| p.into_inner()).entry(device.id.clone()).or_default().push((id, tx));
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            SessionInfo {
                session: id,
                device_id: device.id.clone(),
                name: device.name.clone(),
                transport,
                connected_at: now_ms(),
                messages_in: 0,
                messages_out: 0,
                in_flight: 0,
                last_message_at: None,
            },
        );
        metrics::gauge!("dashoffice_relay_sessions").increment(1.0);
        (id, rx)
    }

    /// Updates a session's figures.
    pub fn session_update(&self, id: u64, f: impl FnOnce(&mut SessionInfo)) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
            f(s);
        }
    }

    /// Forgets a session.
    pub fn unregister(&self, device_id: &str, id: u64) {
        let mut k = self.kicks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = k.get_mut(device_id) {
            v.retain(|(s, _)| *s != id);
            if v.is_empty() {
                k.remove(device_id);
            }
        }
        if self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&id).is_some() {
            metrics::gauge!("dashoffice_relay_sessions").decrement(1.0);
        }
    }

    /// Closes the device's other sessions over `transport`: a replica holds one connection, so a
    /// new one means the process behind the old one is gone (killed, crashed, its network changed).
    /// Without this the relay kept such a session until QUIC's idle timeout, stepping every
    /// document other replicas changed towards a peer that no longer listens.
    pub fn replace_older(&self, device_id: &str, keep: u64, transport: &str) {
        let older: Vec<u64> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.device_id == device_id && s.session != keep && s.transport == transport)
            .map(|s| s.session)
            .collect();
        if older.is_empty() {
            return;
        }
        if let Some(v) = self.kicks.lock().unwrap_or_else(|p| p.into_inner()).get(device_id) {
            for (id, tx) in v {
                if older.contains(id) {
                    let _ = tx.send(Some(REPLACED.to_string()));
                }
            }
        }
        tracing::info!(device = %device_id, sessions = older.len(), "closed the device's older sessions: it connected again");
    }

    /// Disconnects every session of a device.
    pub fn kick(&self, device_id: &str, reason: &str) {
        if let Some(v) = self.kicks.lock().unwrap_or_else(|p| p.into_inner()).get(device_id) {
            for (_, tx) in v {
                let _ = tx.send(Some(reason.to_string()));
            }
        }
    }

    /// The sessions open now.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> =
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by_key(|s| s.session);
        v
    }
}

/// The writer thread: group-commits appends (and sync states) so many documents' changes share
/// one fsync; each append is answered only after its transaction committed.
fn writer(store: Arc<dyn RelayStore>, mut rx: mpsc::UnboundedReceiver<WriteOp>) {
    while let Some(first) = rx.blocking_recv() {
        let mut ops = vec![first];
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        // Consecutive appends share a transaction.
        let mut appends = Vec::new();
        let mut replies = Vec::new();
        let mut states = Vec::new();
        for op in ops {
            match op {
                WriteOp::Append(a, tx) => {
                    appends.push(a);
                    replies.push(tx);
                }
                WriteOp::States(s) => states.extend(s),
            }
        }
        flush(store.as_ref(), &mut appends, &mut replies);
        if !states.is_empty()
            && let Err(e) = store.put_sync_states(&states)
        {
            tracing::warn!(error = %e, "saving sync states failed (peers will resend)");
        }
    }
}

fn flush(
    store: &dyn RelayStore,
    appends: &mut Vec<Append>,
    replies: &mut Vec<oneshot::Sender<Result<u64, StoreError>>>,
) {
    if appends.is_empty() {
        return;
    }
    match store.append(appends) {
        Ok(counts) => {
            for (tx, c) in replies.drain(..).zip(counts) {
                let _ = tx.send(Ok(c));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "storing changes failed; they are not acknowledged");
            for tx in replies.drain(..) {
                let _ = tx.send(Err(StoreError::Db(e.to_string())));
            }
        }
    }
    appends.clear();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use automerge::{Automerge, ReadDoc, sync::SyncDoc, transaction::Transactable};

    use super::*;
    use crate::store::SqliteStore;

    /// Steps `peer` and the hub against each other until neither has anything to say; returns the
    /// hub's state about the peer.
    async fn sync_until_quiet(hub: &Hub, id: &DocId, peer: &mut Automerge, state: sync::State) -> sync::State {
        let (mut ours, mut theirs) = (state, sync::State::new());
        for _ in 0..20 {
            let msg = peer.generate_sync_message(&mut theirs);
            let quiet = msg.is_none();
            let step = hub.step(1, id, &mut ours, msg, true).await.unwrap();
            match step.reply {
                Some(reply) => peer.receive_sync_message(&mut theirs, sync::Message::decode(&reply).unwrap()).unwrap(),
                None if quiet => return ours,
                None => {}
            }
        }
        panic!("sync did not settle");
    }

    #[tokio::test]
    async fn a_document_in_sync_is_not_stepped_again() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(Arc::new(SqliteStore::open(dir.path()).unwrap()), "relay".into());
        let id = DocId::products("shop-1", "p-1");
        let mut peer = Automerge::new();
        let mut tx = peer.transaction();
        tx.put(automerge::ROOT, "name", "Café").unwrap();
        tx.commit();
        let state = sync_until_quiet(&hub, &id, &mut peer, sync::State::new()).await;
        assert_eq!(state.shared_heads, peer.get_heads());

        // The session keeps only the encoded state of a replica in sync. A later step without a
        // message (another session's change announcement that changed nothing for this peer)
        // must say nothing: the peer, in sync, would leave a greeting unanswered and the session
        // would wait for that answer until its timeout.
        let mut fresh = sync::State::decode(&state.encode()).unwrap();
        let step = hub.step(1, &id, &mut fresh, None, true).await.unwrap();
        assert!(step.reply.is_none() && step.in_sync && !step.awaits_answer);

        // A real change is still sent, and waits for its answer.
        let mut other = peer.fork();
        let mut tx = other.transaction();
        tx.put(automerge::ROOT, "price", "12.50").unwrap();
        tx.commit();
        sync_until_quiet(&hub, &id, &mut other, sync::State::new()).await;
        let step = hub.step(1, &id, &mut fresh, None, true).await.unwrap();
        assert!(step.reply.is_some() && step.awaits_answer);
        let mut theirs = sync::State::new();
        peer.receive_sync_message(&mut theirs, sync::Message::decode(&step.reply.unwrap()).unwrap()).unwrap();
        let synced = sync_until_quiet(&hub, &id, &mut peer, fresh).await;
        assert_eq!(synced.shared_heads, other.get_heads());
        assert_eq!(
            peer.get(automerge::ROOT, "price").unwrap().map(|(v, _)| v.to_string()).as_deref(),
            Some("\"12.50\"")
        );
    }

    /// A document an earlier relay folded into a snapshot (and then logged more changes after)
    /// loads after an upgrade: a peer with part of it gets the rest, and a fresh peer all of it.
    #[tokio::test]
    async fn a_document_compacted_by_an_earlier_relay_still_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let id = DocId::products("shop-1", "p-1");
        let mut peer = Automerge::new();
        for i in 0..40 {
            let mut tx = peer.transaction();
            tx.put(automerge::ROOT, format!("k{i}"), i as i64).unwrap();
            tx.commit();
        }
        let half = peer.get_heads();
        {
            let hub = Hub::new(Arc::new(SqliteStore::open(dir.path()).unwrap()), "relay".into());
            sync_until_quiet(&hub, &id, &mut peer, sync::State::new()).await;
        }
        // What an earlier relay's compaction left: the whole document as the snapshot, no log.
        let db = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
        db.execute("UPDATE documents SET snapshot = ?1, change_count = 0", [peer.save()]).unwrap();
        db.execute("DELETE FROM doc_changes", []).unwrap();
        drop(db);
        let mut behind = peer.fork_at(&half).unwrap();
        let mut later = peer.fork();
        let mut tx = later.transaction();
        tx.put(automerge::ROOT, "after", "the upgrade").unwrap();
        tx.commit();

        let hub = Hub::new(Arc::new(SqliteStore::open(dir.path()).unwrap()), "relay".into());
        sync_until_quiet(&hub, &id, &mut later, sync::State::new()).await;
        sync_until_quiet(&hub, &id, &mut behind, sync::State::new()).await;
        assert_eq!(behind.get_heads(), later.get_heads());
        let mut fresh = Automerge::new();
        sync_until_quiet(&hub, &id, &mut fresh, sync::State::new()).await;
        assert_eq!(fresh.get_heads(), later.get_heads());
        assert_eq!(
            fresh.get(automerge::ROOT, "after").unwrap().map(|(v, _)| v.to_string()).as_deref(),
            Some("\"the upgrade\"")
        );
    }
}
