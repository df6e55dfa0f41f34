//! A replica's side of sync (edge node, desktop app): one QUIC session with the relay at a time,
//! reconnecting with exponential backoff and jitter; Automerge's sync protocol per document,
//! with sync states persisted by the replica so a reconnect only talks about what changed. The
//! relay's own service replicas run the same client over an in-process link ([`LocalLink`]).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::BackoffBuilder;
use dashoffice_core::{Replica, doc::DocId, domain::api::SyncStatus, sync::SyncPeer};
use dashoffice_domain::api::SyncPeerStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::{
    framing::{FrameError, Frames, frame_quic},
    proto::{Message, PROTOCOL_VERSION, PeerMetadata},
    tls::{self, Identity, Trust},
};

/// Documents a replica starts talking about at once (the rest wait their turn). While they wait,
/// more local changes to them gather into one message: a replica that writes all the time (the
/// relay's WhatsApp replica) sends fewer, larger messages.
const WINDOW: usize = 64;
/// The same while it catches up on the documents that changed while it was away (a reconnect
/// after a day offline touches about a thousand): all of them at once, so that the relay's
/// answers arrive together and are stored in a few large writes (docs/PERFORMANCE.md, session 19).
const CATCH_UP_WINDOW: usize = 1024;
/// Incoming messages applied per durable write, at most…
const BATCH: usize = 1024;
/// …and at most this many bytes of them (an initial sync's messages carry whole documents): a
/// write of the replica's own waits behind at most one such batch.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A document whose answer has not come in this long is no longer counted in flight (and is
/// asked about again). Shorter than the QUIC idle timeout, so a lost answer costs seconds, not
/// a reconnect.
const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the relay.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The relay's QUIC address (host:port).
    pub relay: String,
    /// How the relay's certificate is trusted.
    pub trust: Trust,
    /// Where the device certificate and enrolment record live (the replica's data folder).
    pub data_dir: PathBuf,
    /// A one-time enrolment code, used on the first connection only.
    pub enrolment_code: Option<String>,
    /// A name for this device, shown to the owner.
    pub device_name: String,
    /// A silent connection is considered lost after this long.
    pub idle_timeout: Duration,
    /// A relay in this same process, reached without the network (the relay's own service
    /// replicas); `relay` and `trust` then only name it.
    pub local: Option<LocalLink>,
    /// A received message waits this long for more before they are stored together, in one
    /// durable write (zero: at once). For a replica that follows changes made elsewhere and
    /// need not show each one the moment it arrives (the relay's service replicas).
    pub gather: Duration,
}

/// Opens a session with a relay running in the same process: given the device's certificate
/// fingerprint (its credential, as the TLS handshake would have proven it), the frames of a new
/// session. Only code in that process can make one.
#[derive(Clone)]
pub struct LocalLink(pub Arc<dyn Fn(String) -> Frames + Send + Sync>);

impl std::fmt::Debug for LocalLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalLink")
    }
}

/// What the relay told this device when it enrolled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolment {
    /// The device's id on the relay.
    pub device_id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its branch (absent: the whole shop).
    pub branch_id: Option<String>,
}

const ENROLMENT_FILE: &str = "relay-enrolment.json";

/// The files in a data folder that make its replica a device of the relay: its certificate and
/// key (the credential) and its enrolment.
const IDENTITY_FILES: [&str; 3] = ["device-cert.pem", "device-key.pem", ENROLMENT_FILE];

/// Renames this replica's relay identity in `dir` (adding `suffix`), so the next start enrols
/// as a new device with a new code. For a restored database: the relay's sync states with the
/// old device describe documents the restored replica may no longer hold. Returns the new names.
pub fn set_aside_identity(dir: &std::path::Path, suffix: &str) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut moved = Vec::new();
    for name in IDENTITY_FILES {
        let from = dir.join(name);
        if from.exists() {
            let to = dir.join(format!("{name}{suffix}"));
            std::fs::rename(&from, &to)?;
            moved.push(to);
        }
    }
    Ok(moved)
}

impl Enrolment {
    /// The enrolment recorded in `dir`, if any.
    pub fn load(dir: &std::path::Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(ENROLMENT_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
    fn save(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{ENROLMENT_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(tmp, dir.join(ENROLMENT_FILE))
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The relay refused this device (revoked, unknown, bad code).
    #[error("the relay refused this device: {0}")]
    Refused(String),
    /// Network or TLS trouble.
    #[error("{0}")]
    Network(String),
    /// The local replica failed.
    #[error("replica: {0}")]
    Replica(#[from] dashoffice_core::CoreError),
    /// The other end broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

#[derive(Default)]
struct Shared {
    status: SyncStatus,
    dirty_since: HashMap<DocId, i64>,
    pending: HashMap<DocId, usize>,
}

/// A running sync client.
#[derive(Clone)]
pub struct SyncHandle {
    shared: Arc<Mutex<Shared>>,
    replica: Replica,
    stop: watch::Sender<bool>,
    /// Asks the loop to reconnect at once (see [`SyncHandle::reconnect`]).
    kick: Arc<tokio::sync::Notify>,
}

impl SyncHandle {
    /// The current state, for `/api/v1/sync/status` and metrics.
    pub fn status(&self) -> SyncStatus {
        let now = self.replica.now_ms();
        let sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = sh.status.clone();
        s.pending_documents = sh.pending.values().filter(|n| **n > 0).count() as u64;
        s.pending_changes = sh.pending.values().map(|n| *n as u64).sum();
        let oldest = oldest_pending(&sh);
        if let Some(p) = s.peers.first_mut() {
            p.lag_ms = oldest.map(|t| (now - t).max(0) as u64).unwrap_or(0);
        }
        drop(sh);
        s.documents_local = self
            .replica
            .read(|c| Ok(c.query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0))? as u64))
            .unwrap_or(0);
        s
    }

    /// Reconnects now: the waiting between attempts ends and the backoff starts over; a session
    /// that is up is closed and opened again (after an outage the old connection may look alive
    /// until its idle timeout). For "sync now" once the internet is back.
    pub fn reconnect(&self) {
        self.kick.notify_one();
    }

    /// What a replica's API needs of this client: its status (`GET /api/v1/sync/status`) and
    /// "sync now" (`POST /api/v1/sync/reconnect`, true: there is a relay to reconnect to).
    #[allow(clippy::type_complexity)]
    pub fn api_hooks(&self) -> (Arc<dyn Fn() -> SyncStatus + Send + Sync>, Arc<dyn Fn() -> bool + Send + Sync>) {
        let (status, reconnect) = (self.clone(), self.clone());
        (
            Arc::new(move || status.status()),
            Arc::new(move || {
                reconnect.reconnect();
                true
            }),
        )
    }

    /// Stops the client (the current session closes).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A status for hosts without a relay configured.
pub fn disabled_status() -> SyncStatus {
    SyncStatus::default()
}

/// Starts syncing `replica` with the relay; runs until stopped.
pub fn start(replica: Replica, cfg: ClientConfig) -> Result<SyncHandle, SyncError> {
    let (identity, _) = Identity::load_or_create(&cfg.data_dir, "device", &["dashoffice-device"])
        .map_err(|e| SyncError::Network(e.to_string()))?;
    let client_cfg =
        tls::client_config(&cfg.trust, &identity, cfg.idle_timeout).map_err(|e| SyncError::Network(e.to_string()))?;
    let enrolment = Enrolment::load(&cfg.data_dir);
    let mut status = SyncStatus {
        enabled: true,
        relay: Some(cfg.relay.clone()),
        device_id: enrolment.as_ref().map(|e| e.device_id.clone()),
        branch_id: enrolment.as_ref().and_then(|e| e.branch_id.clone()),
        ..Default::default()
    };
    status.peers.push(SyncPeerStatus { peer: format!("relay {}", cfg.relay), ..Default::default() });
    let shared = Arc::new(Mutex::new(Shared { status, ..Default::default() }));
    let (stop, stop_rx) = watch::channel(false);
    let kick = Arc::new(tokio::sync::Notify::new());
    let handle = SyncHandle { shared: shared.clone(), replica: replica.clone(), stop, kick: kick.clone() };
    let peer_id = format!("relay:{}", &identity.fingerprint()[..16]);
    let me = format!("device-{}", &identity.fingerprint()[..16]);
    let names = Names { peer_id, me, fingerprint: identity.fingerprint() };
    tokio::spawn(run(replica, cfg, client_cfg, shared, stop_rx, kick, names));
    Ok(handle)
}

async fn resolve(addr: &str) -> Result<SocketAddr, SyncError> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| SyncError::Network(format!("resolving {addr}: {e}")))?
        .next()
        .ok_or_else(|| SyncError::Network(format!("{addr} has no address")))
}

/// This device's name for the relay's peer and its own (in the join handshake), and its
/// certificate's fingerprint.
struct Names {
    peer_id: String,
    me: String,
    fingerprint: String,
}

async fn run(
    replica: Replica,
    cfg: ClientConfig,
    client_cfg: quinn::ClientConfig,
    shared: Arc<Mutex<Shared>>,
    mut stop: watch::Receiver<bool>,
    kick: Arc<tokio::sync::Notify>,
    names: Names,
) {
    let backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(300))
            .with_max_delay(Duration::from_secs(20))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    let endpoint = match &cfg.local {
        Some(_) => None,
        None => match quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0))) {
            Ok(mut e) => {
                e.set_default_client_config(client_cfg);
                Some(e)
            }
            Err(e) => {
                tracing::error!(error = %e, "sync: cannot open a UDP socket; sync is off");
                return;
            }
        },
    };
    loop {
        let started = Instant::now();
        let mut kicked = false;
        let outcome = tokio::select! {
            r = session(&replica, &cfg, endpoint.as_ref(), &shared, &names) => r,
            _ = kick.notified() => {
                kicked = true;
                Err(SyncError::Network("reconnecting on request".into()))
            }
            _ = stop.changed() => return,
        };
        {
            let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
            sh.status.connected = false;
            sh.status.queued_documents = 0;
            if let Some(p) = sh.status.peers.first_mut() {
                p.connected = false;
                p.in_flight = 0;
            }
            if !kicked {
                sh.status.last_error = outcome.as_ref().err().map(|e| e.to_string());
            }
        }
        metrics::gauge!("dashoffice_sync_connected").set(0.0);
        match &outcome {
            _ if kicked => tracing::info!("sync: reconnecting on request"),
            Ok(()) => tracing::info!("sync: the relay closed the session"),
            Err(e) => tracing::warn!(error = %e, "sync: session ended"),
        }
        if kicked {
            delays = backoff();
            continue;
        }
        if started.elapsed() > Duration::from_secs(10) {
            delays = backoff();
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(20));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = kick.notified() => {
                tracing::info!("sync: reconnecting on request");
                delays = backoff();
            }
            _ = stop.changed() => return,
        }
    }
}

/// When the oldest local change the relay lacks was made.
fn oldest_pending(sh: &Shared) -> Option<i64> {
    sh.pending.iter().filter(|(_, n)| **n > 0).filter_map(|(d, _)| sh.dirty_since.get(d)).min().copied()
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens a session's stream: over QUIC, or through the in-process link. The connection comes
/// along (dropping it closes it).
async fn open(
    cfg: &ClientConfig,
    endpoint: Option<&quinn::Endpoint>,
    fingerprint: &str,
) -> Result<(Frames, Option<quinn::Connection>), SyncError> {
    let endpoint = match (endpoint, &cfg.local) {
        (_, Some(local)) => return Ok(((local.0)(fingerprint.to_string()), None)),
        (Some(e), None) => e,
        (None, None) => return Err(SyncError::Network("no QUIC endpoint".into())),
    };
    let addr = resolve(&cfg.relay).await?;
    let conn = endpoint
        .connect(addr, tls::RELAY_NAME)
        .map_err(|e| SyncError::Network(e.to_string()))?
        .await
        .map_err(|e| SyncError::Network(format!("connecting to {}: {e}", cfg.relay)))?;
    let (send, recv) = conn.open_bi().await.map_err(|e| SyncError::Network(e.to_string()))?;
    Ok((frame_quic(send, recv), Some(conn)))
}

async fn session(
    replica: &Replica,
    cfg: &ClientConfig,
    endpoint: Option<&quinn::Endpoint>,
    shared: &Arc<Mutex<Shared>>,
    names: &Names,
) -> Result<(), SyncError> {
    let (peer_id, me) = (names.peer_id.as_str(), names.me.as_str());
    let (mut frames, conn) = open(cfg, endpoint, &names.fingerprint).await?;
    let enrolled = Enrolment::load(&cfg.data_dir);
    let join = Message::Join {
        sender_id: me.to_string(),
        peer_metadata: PeerMetadata {
            is_ephemeral: Some(false),
            enrolment_code: if enrolled.is_none() { cfg.enrolment_code.clone() } else { None },
            device_name: Some(cfg.device_name.clone()),
            ..Default::default()
        },
        supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
    };
    let _ = frames.tx.send(join.encode());
    let first = tokio::time::timeout(Duration::from_secs(15), frames.rx.recv())
        .await
        .map_err(|_| SyncError::Network("the relay did not answer the handshake".into()))?;
    let first = match first {
        Some(Ok(b)) => Message::decode(&b).map_err(|e| SyncError::Protocol(e.to_string()))?,
        Some(Err(e)) => return Err(frame_error(e)),
        None => {
            let reason =
                conn.as_ref().and_then(|c| c.close_reason()).map(|r| r.to_string()).unwrap_or_else(|| "closed".into());
            return Err(SyncError::Refused(reason));
        }
    };
    let (relay_peer, meta) = match first {
        Message::Peer { sender_id, peer_metadata, .. } => (sender_id, peer_metadata),
        Message::Error { message } => return Err(SyncError::Refused(message)),
        other => return Err(SyncError::Protocol(format!("expected peer, got {other:?}"))),
    };
    let shop = meta.shop_id.clone().ok_or_else(|| SyncError::Protocol("peer message without shopId".into()))?;
    let enrolment = Enrolment {
        device_id: meta.device_id.clone().unwrap_or_default(),
        shop_id: shop.clone(),
        branch_id: meta.branch_id.clone(),
    };
    if enrolled.is_none() {
        enrolment.save(&cfg.data_dir).map_err(|e| SyncError::Network(format!("saving the enrolment: {e}")))?;
        tracing::info!(device = %enrolment.device_id, shop = %shop, "sync: enrolled with the relay");
    }
    let r = replica.clone();
    let local_shop =
        tokio::task::spawn_blocking(move || r.shop_id()).await.map_err(|e| SyncError::Protocol(e.to_string()))??;
    match local_shop {
        None => {
            let (r, s, b) = (replica.clone(), shop.clone(), meta.branch_id.clone().unwrap_or_default());
            tokio::task::spawn_blocking(move || r.join(&s, &b))
                .await
                .map_err(|e| SyncError::Protocol(e.to_string()))??;
            tracing::info!(shop = %shop, "sync: this replica joined the shop; initial sync starts");
        }
        Some(s) if s != shop => {
            return Err(SyncError::Refused(format!(
                "this replica belongs to shop {s}, but the relay enrolled it in shop {shop}"
            )));
        }
        Some(_) => {}
    }
    let mut changes = replica.subscribe();
    let mut peer = SyncPeer::new(peer_id);
    let mut queue: VecDeque<DocId> = VecDeque::new();
    let mut queued: HashSet<DocId> = HashSet::new();
    for id in replica.sync_dirty(peer_id).await? {
        if queued.insert(id.clone()) {
            queue.push_back(id);
        }
    }
    // The documents that changed while away, started with the larger window.
    let mut catching_up = queue.len();
    // Connected (and counted as such) only once the documents to talk about are known.
    let now = replica.now_ms();
    {
        let mut sh = lock(shared);
        sh.status.connected = true;
        sh.status.queued_documents = queue.len() as u64;
        sh.status.last_connected_at = Some(now);
        sh.status.last_error = None;
        sh.status.device_id = Some(enrolment.device_id.clone());
        sh.status.branch_id = enrolment.branch_id.clone();
        sh.status.documents_relay = meta.doc_count;
        if let Some(p) = sh.status.peers.first_mut() {
            p.connected = true;
        }
    }
    metrics::gauge!("dashoffice_sync_connected").set(1.0);
    tracing::info!(relay = %cfg.relay, documents = meta.doc_count.unwrap_or(0), "sync: connected");

    let mut in_flight: HashMap<DocId, Instant> = HashMap::new();
    // Documents with changes the relay lacks and nothing on the way about them: since when.
    let mut stalled: HashMap<DocId, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut incoming = prepare_incoming(frames.rx, replica.clone(), shop.clone());
    let mut ctx = Ctx { replica, shared, me, relay_peer: &relay_peer, shop: &shop, tx: &frames.tx };
    loop {
        lock(ctx.shared).status.queued_documents = (queue.len() + in_flight.len()) as u64;
        // Start more documents while the window has room.
        let window = if catching_up > 0 { CATCH_UP_WINDOW } else { WINDOW };
        if in_flight.len() < window && !queue.is_empty() {
            let mut batch = Vec::new();
            while in_flight.len() + batch.len() < window {
                let Some(id) = queue.pop_front() else { break };
                catching_up = catching_up.saturating_sub(1);
                queued.remove(&id);
                // Documents in flight too: a local write since then goes out now, not after the
                // answer (Automerge sends new changes without waiting for it).
                batch.push((id, None, None));
            }
            if !batch.is_empty() {
                ctx.steps(&mut peer, &mut in_flight, batch).await?;
            }
            continue;
        }
        tokio::select! {
            frame = incoming.recv() => {
                let Some(frame) = frame else { return Ok(()) };
                let mut batch: Vec<Item> = Vec::new();
                let mut bytes = frame_len(&frame);
                ctx.take(frame, &mut batch)?;
                let gather_until = (!cfg.gather.is_zero()).then(|| tokio::time::Instant::now() + cfg.gather);
                while batch.len() < BATCH && bytes < BATCH_BYTES {
                    let f = match incoming.try_recv() {
                        Ok(f) => f,
                        Err(_) => match gather_until {
                            // An end of the stream shows at the next receive.
                            Some(until) => match tokio::time::timeout_at(until, incoming.recv()).await {
                                Ok(Some(f)) => f,
                                _ => break,
                            },
                            None => break,
                        },
                    };
                    bytes += frame_len(&f);
                    ctx.take(f, &mut batch)?
                }
                {
                    let mut sh = lock(ctx.shared);
                    if let Some(p) = sh.status.peers.first_mut() {
                        p.last_message_at = Some(ctx.replica.now_ms());
                    }
                }
                if !batch.is_empty() {
                    ctx.steps(&mut peer, &mut in_flight, batch).await?;
                }
            }
            changed = changes.recv() => {
                let ids: Vec<DocId> = match changed {
                    Ok(ids) => ids.iter().cloned().collect(),
                    Err(broadcast::error::RecvError::Lagged(_)) => ctx.replica.sync_dirty(peer_id).await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                };
                let now = ctx.replica.now_ms();
                let mut sh = lock(ctx.shared);
                for id in ids {
                    sh.dirty_since.entry(id.clone()).or_insert(now);
                    if queued.insert(id.clone()) {
                        queue.push_back(id);
                    }
                }
            }
            _ = ticker.tick() => {
                // A document whose answer never came is not forgotten: its in-memory sync state
                // (which believes a message is still on its way) is dropped and the document is
                // queued again, so the next step starts from the persisted shared heads.
                let expired: Vec<DocId> =
                    in_flight.iter().filter(|(_, t)| t.elapsed() >= IN_FLIGHT_TIMEOUT).map(|(d, _)| d.clone()).collect();
                if !expired.is_empty() {
                    tracing::warn!(documents = expired.len(), first = %expired[0], "sync: no answer from the relay in time; asking again");
                }
                for d in expired {
                    in_flight.remove(&d);
                    peer.evict(&d);
                    if queued.insert(d.clone()) {
                        queue.push_back(d);
                    }
                    metrics::counter!("dashoffice_sync_in_flight_timeouts_total").increment(1);
                }
                // A document the relay still lacks changes of, with no message on the way and none
                // queued, is not left like that: Automerge's sync state believes it sent them (the
                // relay may have lost them, say by restarting while this replica was pushing),
                // so after a while the state is dropped and the document stepped afresh from the
                // persisted shared heads, as for a lost answer.
                let lacking: HashSet<DocId> = lock(ctx.shared)
                    .pending
                    .iter()
                    .filter(|(d, n)| **n > 0 && !in_flight.contains_key(*d) && !queued.contains(*d))
                    .map(|(d, _)| d.clone())
                    .collect();
                stalled.retain(|d, _| lacking.contains(d));
                let mut again = Vec::new();
                for d in lacking {
                    if stalled.entry(d.clone()).or_insert_with(Instant::now).elapsed() >= IN_FLIGHT_TIMEOUT {
                        stalled.remove(&d);
                        again.push(d);
                    }
                }
                if !again.is_empty() {
                    tracing::warn!(documents = again.len(), first = %again[0],
                        "sync: the relay still lacks changes and nothing is on the way; stepping the documents again");
                    metrics::counter!("dashoffice_sync_stalled_documents_total").increment(again.len() as u64);
                }
                for d in again {
                    peer.evict(&d);
                    if queued.insert(d.clone()) {
                        queue.push_back(d);
                    }
                }
                let mut sh = lock(ctx.shared);
                let Shared { pending, dirty_since, .. } = &mut *sh;
                dirty_since.retain(|d, _| pending.contains_key(d));
                if let Some(p) = sh.status.peers.first_mut() {
                    p.in_flight = in_flight.len() as u64;
                }
                if in_flight.is_empty() && queue.is_empty() {
                    sh.status.last_sync_at = Some(ctx.replica.now_ms());
                }
                let pending: usize = sh.pending.values().sum();
                metrics::gauge!("dashoffice_sync_pending_changes").set(pending as f64);
                let oldest = oldest_pending(&sh);
                let lag = oldest.map(|t| (ctx.replica.now_ms() - t).max(0) as f64 / 1000.0).unwrap_or(0.0);
                metrics::gauge!("dashoffice_sync_lag_seconds").set(lag);
            }
        }
    }
}

/// A received frame, with the document it brings when that was prepared beside the writer (see
/// [`Replica::prepare_sync`]).
type Incoming = (Result<Vec<u8>, FrameError>, Option<dashoffice_core::sync::Prepared>);
/// One document of a sync round: its id, the message received about it, its prepared document.
type Item = (DocId, Option<Vec<u8>>, Option<dashoffice_core::sync::Prepared>);

/// Frames whose documents are prepared ahead of the one being stored.
const LOOKAHEAD: usize = BATCH;

/// Passes the received frames on in order, each once the document it may bring (one this
/// replica does not hold yet) has been built on the blocking pool, up to [`LOOKAHEAD`] frames
/// ahead and one at a time: during an initial sync that work runs beside the writer, which is
/// busy storing and projecting the documents before it.
fn prepare_incoming(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, FrameError>>,
    replica: Replica,
    shop: String,
) -> tokio::sync::mpsc::Receiver<Incoming> {
    use futures_util::StreamExt;
    let (tx, out) = tokio::sync::mpsc::channel(LOOKAHEAD);
    let one_at_a_time = Arc::new(tokio::sync::Semaphore::new(1));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let ready = frames
        .map(move |frame| {
            let job = preparation(&frame, &replica, &shop, &one_at_a_time);
            async move {
                let doc = match job {
                    Some(job) => job.await.ok().flatten(),
                    None => None,
                };
                (frame, doc)
            }
        })
        .buffered(LOOKAHEAD);
    tokio::spawn(async move {
        let mut ready = std::pin::pin!(ready);
        while let Some(item) = ready.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    out
}

/// Starts building the document a sync frame brings, if it is a sync message of this shop.
fn preparation(
    frame: &Result<Vec<u8>, FrameError>,
    replica: &Replica,
    shop: &str,
    permits: &Arc<tokio::sync::Semaphore>,
) -> Option<tokio::task::JoinHandle<Option<dashoffice_core::sync::Prepared>>> {
    let Ok(Message::Sync { document_id, data, .. } | Message::Request { document_id, data, .. }) =
        Message::decode(frame.as_ref().ok()?)
    else {
        return None;
    };
    let id = DocId::parse(&document_id).ok().filter(|id| id.scope().map(|s| s.shop_id == shop).unwrap_or(false))?;
    if !dashoffice_core::sync::carries_changes(&data) {
        return None;
    }
    let (replica, permits, data) = (replica.clone(), permits.clone(), data.into_vec());
    Some(tokio::spawn(async move {
        let _permit = permits.acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || replica.prepare_sync(&id, &data)).await.ok().flatten()
    }))
}

struct Ctx<'a> {
    replica: &'a Replica,
    shared: &'a Arc<Mutex<Shared>>,
    me: &'a str,
    relay_peer: &'a str,
    shop: &'a str,
    tx: &'a tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
}

impl Ctx<'_> {
    /// Sorts one incoming frame: sync data goes into `batch`, the rest is handled here.
    fn take(&mut self, (frame, prepared): Incoming, batch: &mut Vec<Item>) -> Result<(), SyncError> {
        let bytes = frame.map_err(frame_error)?;
        metrics::counter!("dashoffice_sync_messages_received_total").increment(1);
        match Message::decode(&bytes).map_err(|e| SyncError::Protocol(e.to_string()))? {
            Message::Sync { document_id, data, .. } | Message::Request { document_id, data, .. } => {
                let id = match DocId::parse(&document_id) {
                    Ok(id) if id.scope().map(|s| s.shop_id == self.shop).unwrap_or(false) => id,
                    _ => {
                        tracing::warn!(doc = %document_id, "sync: ignoring a document of another shop or with a bad id");
                        return Ok(());
                    }
                };
                // Several messages about one document in a batch are applied in order (`steps`).
                batch.push((id, Some(data.into_vec()), prepared));
            }
            Message::DocUnavailable { document_id, .. } => {
                tracing::warn!(doc = %document_id, "sync: the relay refused a document outside this device's scope; it stays local");
                let mut sh = lock(self.shared);
                if let Ok(id) = DocId::parse(&document_id) {
                    sh.pending.remove(&id);
                    sh.dirty_since.remove(&id);
                }
                if !sh.status.refused_documents.contains(&document_id) {
                    sh.status.refused_documents.push(document_id);
                }
            }
            Message::Error { message } => return Err(SyncError::Refused(message)),
            _ => {}
        }
        Ok(())
    }

    async fn steps(
        &mut self,
        peer: &mut SyncPeer,
        in_flight: &mut HashMap<DocId, Instant>,
        batch: Vec<Item>,
    ) -> Result<(), SyncError> {
        // A document named twice in one batch: apply the messages one write after another.
        let mut rounds: Vec<Vec<Item>> = Vec::new();
        for item in batch {
            match rounds.iter_mut().find(|r| !r.iter().any(|(d, _, _)| *d == item.0)) {
                Some(r) => r.push(item),
                None => rounds.push(vec![item]),
            }
        }
        for round in rounds {
            // Documents whose answer this round brings (the others were stepped for a change here).
            let answered: HashSet<DocId> =
                round.iter().filter(|(_, m, _)| m.is_some()).map(|(d, _, _)| d.clone()).collect();
            let steps = self.replica.sync_steps_prepared(peer, round).await?;
            let mut sh = lock(self.shared);
            for step in steps {
                sh.status.changes_received += step.received as u64;
                if step.received > 0 {
                    metrics::counter!("dashoffice_sync_changes_received_total").increment(step.received as u64);
                }
                if step.pending > 0 {
                    sh.pending.insert(step.doc.clone(), step.pending);
                } else {
                    sh.pending.remove(&step.doc);
                    sh.dirty_since.remove(&step.doc);
                }
                tracing::debug!(doc = %step.doc, received = step.received, reply = step.reply.as_ref().map(Vec::len),
                    awaits = step.awaits_answer, "stepped");
                match step.reply {
                    Some(data) => {
                        if step.awaits_answer {
                            in_flight.insert(step.doc.clone(), Instant::now());
                        } else {
                            in_flight.remove(&step.doc);
                        }
                        let msg = Message::sync(self.me, self.relay_peer, step.doc.as_str(), data);
                        metrics::counter!("dashoffice_sync_messages_sent_total").increment(1);
                        if self.tx.send(msg.encode()).is_err() {
                            return Err(SyncError::Network("the connection closed".into()));
                        }
                    }
                    // Nothing to say: an answer received settles the document; a document stepped
                    // for a change here that brought nothing new still awaits its answer.
                    None if answered.contains(&step.doc) => {
                        in_flight.remove(&step.doc);
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}

/// The size of a received frame (0 for a broken one).
fn frame_len((frame, _): &Incoming) -> usize {
    frame.as_ref().map(Vec::len).unwrap_or(0)
}

fn frame_error(e: FrameError) -> SyncError {
    match e {
        FrameError::Broken(_) => SyncError::Protocol(e.to_string()),
        FrameError::Lost(m) => SyncError::Network(m),
    }
}
