//! One authenticated peer's session, the same for QUIC replicas and WebSocket clients: Automerge
//! sync per document in automerge-repo messages, with the partial-replication rule checked on
//! every document the peer names or is sent.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use automerge::sync;
use dashoffice_core::doc::{Collection, DocId};
use dashoffice_sync::{framing::FrameError, proto::Message};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    hub::{Hub, HubError},
    store::Device,
};

/// Documents the relay starts talking about at once per session (a shop of 100,000 products has
/// about a thousand: all of them, so that a reconnect's answers go out together).
const WINDOW: usize = 1024;
/// Received frames stepped together at most (in one durable write); the frames waiting are
/// bounded by the connection's channel (256), so this takes all of them.
const FRAME_BATCH: usize = 512;
const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(30);

/// How documents are named on this transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// DashOffice ids (QUIC replicas): the session offers every document in scope and persists
    /// sync states, so reconnects resume.
    Replica,
    /// automerge-repo ids (WebSocket clients): documents are synced when the client asks for
    /// them, and states live as long as the connection.
    Repo,
}

/// Whether `device` may see (and write) `doc`: its own shop, and for branch documents its own
/// branch unless it is a head-office device. Staff password hashes (the `credentials` document)
/// go only to replicas (devices with a certificate: edge nodes, desktop apps), which log staff in;
/// never to `/sync` clients.
pub fn allowed(device: &Device, doc: &DocId) -> bool {
    match doc.scope() {
        Ok(s) => {
            s.shop_id == device.shop_id
                && (s.collection != Collection::Credentials || device.cert_fingerprint.is_some())
                && match (&s.branch_id, &device.branch_id) {
                    (Some(doc_branch), Some(dev_branch)) => doc_branch == dev_branch,
                    _ => true,
                }
        }
        Err(_) => false,
    }
}

/// The I/O of a session: frames in (or the error that ended the stream) and frames out.
pub struct Io {
    /// Incoming frames.
    pub rx: mpsc::Receiver<Result<Vec<u8>, FrameError>>,
    /// Outgoing frames.
    pub tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    /// The peer went away.
    Closed,
    /// The device was revoked.
    Revoked(String),
    /// The peer broke the protocol (it was told why).
    Protocol(String),
    /// The device connected again; this older session is closed ([`crate::hub::Hub::replace_older`]).
    Replaced,
}

struct Session<'a> {
    hub: &'a Arc<Hub>,
    device: &'a Device,
    naming: Naming,
    id: u64,
    remote: String,
    tx: &'a mpsc::UnboundedSender<Vec<u8>>,
    states: HashMap<DocId, sync::State>,
    persisted: HashMap<String, Vec<u8>>,
    subscribed: HashSet<DocId>,
    in_flight: HashMap<DocId, Instant>,
    unsaved: Vec<(String, String, Vec<u8>)>,
    out: u64,
    received: u64,
}

/// Serves an authenticated peer until it leaves, breaks the protocol or is revoked.
pub async fn serve(
    hub: Arc<Hub>,
    device: Device,
    mut io: Io,
    naming: Naming,
    remote: String,
    session: u64,
    mut kick: watch::Receiver<Option<String>>,
) -> End {
    let mut changes = hub.subscribe();
    let mut s = Session {
        hub: &hub,
        device: &device,
        naming,
        id: session,
        remote,
        tx: &io.tx,
        states: HashMap::new(),
        persisted: HashMap::new(),
        subscribed: HashSet::new(),
        in_flight: HashMap::new(),
        unsaved: Vec::new(),
        out: 0,
        received: 0,
    };
    let mut queue: VecDeque<DocId> = VecDeque::new();
    let mut queued: HashSet<DocId> = HashSet::new();
    if naming == Naming::Replica {
        match s.initial_queue().await {
            Ok(q) => {
                for id in q {
                    queued.insert(id.clone());
                    queue.push_back(id);
                }
            }
            Err(e) => return End::Protocol(e),
        }
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What the session list last showed: an idle session does not wake up every second (a relay
    // holds thousands of idle replicas).
    let mut reported = (0u64, 0u64, 0u64);
    let end = loop {
        let busy = !s.in_flight.is_empty()
            || !s.unsaved.is_empty()
            || reported != (s.in_flight.len() as u64, s.out, s.received);
        if s.in_flight.len() < WINDOW && !queue.is_empty() {
            let mut batch = Vec::new();
            while s.in_flight.len() + batch.len() < WINDOW {
                let Some(id) = queue.pop_front() else { break };
                queued.remove(&id);
                // A document already in flight is stepped too: it changed since (another replica
                // wrote to it), and Automerge sends the new changes without waiting for the answer.
                batch.push((id, None));
            }
            if let Err(e) = s.step_many(batch).await {
                break e;
            }
            continue;
        }
        tokio::select! {
            frame = io.rx.recv() => {
                let Some(frame) = frame else { break End::Closed };
                // Every frame already here is stepped together: the documents' new changes share
                // one durable write, instead of each answer waiting for a commit of its own.
                let mut frames = vec![frame];
                while frames.len() < FRAME_BATCH {
                    match io.rx.try_recv() {
                        Ok(f) => frames.push(f),
                        Err(_) => break,
                    }
                }
                if let Err(e) = s.handle_frames(frames).await {
                    break e;
                }
            }
            changed = changes.recv() => {
                match changed {
                    Ok((origin, id)) => {
                        if origin == s.id && s.in_flight.contains_key(&id) {
                            continue;
                        }
                        let wanted = match s.naming {
                            Naming::Replica => allowed(s.device, &id),
                            Naming::Repo => s.subscribed.contains(&id),
                        };
                        if wanted && queued.insert(id.clone()) {
                            queue.push_back(id);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let ids: Vec<DocId> = match s.naming {
                            Naming::Replica => s.initial_queue().await.unwrap_or_default(),
                            Naming::Repo => s.subscribed.iter().cloned().collect(),
                        };
                        for id in ids {
                            if queued.insert(id.clone()) {
                                queue.push_back(id);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break End::Closed,
                }
            }
            _ = kick.changed() => {
                let reason = kick.borrow().clone().unwrap_or_else(|| "disconnected".into());
                if reason == crate::hub::REPLACED {
                    break End::Replaced;
                }
                s.send(Message::Error { message: reason.clone() });
                break End::Revoked(reason);
            }
            _ = ticker.tick(), if busy => {
                // An answer that never came: forget what the sync state believes is on its way
                // and step the document again.
                let expired: Vec<DocId> =
                    s.in_flight.iter().filter(|(_, t)| t.elapsed() >= IN_FLIGHT_TIMEOUT).map(|(d, _)| d.clone()).collect();
                if !expired.is_empty() {
                    tracing::warn!(device = %s.device.id, documents = expired.len(), first = %expired[0],
                        "no answer from the replica in time; stepping the documents again");
                    metrics::counter!("dashoffice_relay_in_flight_timeouts_total").increment(expired.len() as u64);
                }
                for d in expired {
                    s.in_flight.remove(&d);
                    s.states.remove(&d);
                    if queued.insert(d.clone()) {
                        queue.push_back(d);
                    }
                }
                s.flush_states();
                let (inf, out, received) = (s.in_flight.len() as u64, s.out, s.received);
                reported = (inf, out, received);
                hub.session_update(s.id, |i| { i.in_flight = inf; i.messages_out = out; i.messages_in = received; });
            }
        }
    };
    s.flush_states();
    end
}

impl Session<'_> {
    fn send(&mut self, m: Message) {
        self.out += 1;
        metrics::counter!("dashoffice_relay_messages_sent_total").increment(1);
        let _ = self.tx.send(m.encode());
    }

    fn name_of(&self, id: &DocId) -> String {
        match self.naming {
            Naming::Replica => id.as_str().to_string(),
            Naming::Repo => dashoffice_core::repo_id::repo_id(id.as_str()),
        }
    }

    fn unavailable(&mut self, name: String) {
        metrics::counter!("dashoffice_relay_refused_documents_total").increment(1);
        let m = Message::DocUnavailable {
            sender_id: self.hub.peer_id.clone(),
            target_id: self.remote.clone(),
            document_id: name,
        };
        self.send(m);
    }

    /// Documents in scope whose heads differ from what the device was last known to have.
    async fn initial_queue(&mut self) -> Result<Vec<DocId>, String> {
        let (shop, branch, dev) = (self.device.shop_id.clone(), self.device.branch_id.clone(), self.device.id.clone());
        let (docs, states) = self
            .hub
            .blocking(move |st| Ok((st.scope_docs(&shop, branch.as_deref())?, st.sync_states(&dev)?)))
            .await
            .map_err(|e| e.to_string())?;
        let mut q = Vec::new();
        for (doc, heads) in docs {
            let Ok(id) = DocId::parse(&doc) else { continue };
            if !allowed(self.device, &id) {
                continue;
            }
            let shared = states
                .get(&doc)
                .and_then(|b| sync::State::decode(b).ok())
                .map(|s| dashoffice_core::sync::heads_to_bytes(&s.shared_heads));
            if shared.as_deref() != Some(heads.as_slice()) {
                q.push(id);
            }
        }
        self.persisted = states;
        Ok(q)
    }

    fn state(&mut self, id: &DocId) -> sync::State {
        if let Some(s) = self.states.remove(id) {
            return s;
        }
        self.persisted.remove(id.as_str()).and_then(|b| sync::State::decode(&b).ok()).unwrap_or_default()
    }

    /// Steps the documents of received frames, in order; a frame that breaks the protocol ends
    /// the session after the ones before it were stepped.
    async fn handle_frames(&mut self, frames: Vec<Result<Vec<u8>, FrameError>>) -> Result<(), End> {
        let mut items = Vec::with_capacity(frames.len());
        for frame in frames {
            let decoded = match frame {
                Ok(bytes) => self.decode(&bytes).await,
                Err(FrameError::Lost(_)) => Err(End::Closed),
                Err(e) => {
                    self.send(Message::Error { message: e.to_string() });
                    Err(End::Protocol(e.to_string()))
                }
            };
            match decoded {
                Ok(Some((id, message))) => items.push((id, Some(message))),
                Ok(None) => {}
                Err(end) => {
                    self.step_many(items).await?;
                    return Err(end);
                }
            }
        }
        self.step_many(items).await
    }

    /// A received frame's document and sync message; None for a frame that asks nothing (or names
    /// a document the peer may not see: it was told so).
    async fn decode(&mut self, bytes: &[u8]) -> Result<Option<(DocId, sync::Message)>, End> {
        self.received += 1;
        metrics::counter!("dashoffice_relay_messages_received_total").increment(1);
        let now = crate::hub::now_ms();
        self.hub.session_update(self.id, |i| i.last_message_at = Some(now));
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.send(Message::Error { message: e.to_string() });
                return Err(End::Protocol(e.to_string()));
            }
        };
        let (name, data) = match msg {
            Message::Sync { document_id, data, .. } | Message::Request { document_id, data, .. } => {
                (document_id, data.into_vec())
            }
            Message::Error { message } => return Err(End::Protocol(format!("the peer reported: {message}"))),
            _ => return Ok(None),
        };
        let id = match self.naming {
            Naming::Replica => DocId::parse(&name).ok(),
            Naming::Repo => match self.hub.doc_by_repo_id(&name).await {
                Ok(found) => found,
                Err(e) => return Err(End::Protocol(e.to_string())),
            },
        };
        let Some(id) = id.filter(|id| allowed(self.device, id)) else {
            tracing::info!(device = %self.device.id, doc = %name, "refused a document outside the device's scope");
            self.unavailable(name);
            return Ok(None);
        };
        let message = match sync::Message::decode(&data) {
            Ok(m) => m,
            Err(e) => {
                let m = format!("bad sync message for {name}: {e}");
                self.send(Message::Error { message: m.clone() });
                return Err(End::Protocol(m));
            }
        };
        if self.naming == Naming::Repo {
            self.subscribed.insert(id.clone());
        }
        Ok(Some((id, message)))
    }

    /// Sync steps on several documents, in order. Steps on different documents run together, so
    /// their new changes reach the relay's writer at once and share one commit; a document named
    /// twice waits for its first step.
    async fn step_many(&mut self, items: Vec<(DocId, Option<sync::Message>)>) -> Result<(), End> {
        // Replicas may start documents of their scope; WebSocket clients only edit existing ones.
        let create = self.naming == Naming::Replica;
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let mut group: Vec<(DocId, Option<sync::Message>, sync::State)> = Vec::new();
            let mut seen = HashSet::new();
            while let Some((id, _)) = items.peek() {
                if !seen.insert(id.clone()) {
                    break;
                }
                let Some((id, msg)) = items.next() else { break };
                let state = self.state(&id);
                group.push((id, msg, state));
            }
            let (hub, session) = (self.hub, self.id);
            let mut stepping = Vec::with_capacity(group.len());
            let mut settled = Vec::with_capacity(group.len());
            for (id, msg, mut state) in group {
                let shared = state.shared_heads.clone();
                let msg_in = msg.is_some();
                settled.push((id.clone(), shared, msg_in));
                stepping.push(async move {
                    let r = hub.step(session, &id, &mut state, msg, create).await;
                    (state, r)
                });
            }
            let results = futures_util::future::join_all(stepping).await;
            for ((id, shared, msg_in), (state, r)) in settled.into_iter().zip(results) {
                self.settle(&id, state, shared, msg_in, r)?;
            }
        }
        Ok(())
    }

    /// What a step's result means for the session: the answer sent, the document in flight or
    /// settled, the sync state kept (and queued for storage when the shared heads moved).
    fn settle(
        &mut self,
        id: &DocId,
        state: sync::State,
        shared: Vec<automerge::ChangeHash>,
        msg_in: bool,
        result: Result<crate::hub::Step, HubError>,
    ) -> Result<(), End> {
        match result {
            Ok(step) => {
                if self.naming == Naming::Replica && state.shared_heads != shared {
                    self.unsaved.push((self.device.id.clone(), id.as_str().to_string(), state.encode()));
                    if self.unsaved.len() >= 256 {
                        self.flush_states();
                    }
                }
                tracing::debug!(device = %self.device.id, doc = %id, received = msg_in, reply = step.reply.as_ref().map(Vec::len),
                    awaits = step.awaits_answer, in_sync = step.in_sync, "stepped");
                match step.reply {
                    Some(data) => {
                        if step.awaits_answer {
                            self.in_flight.insert(id.clone(), Instant::now());
                        } else {
                            self.in_flight.remove(id);
                        }
                        let m = Message::sync(&self.hub.peer_id, &self.remote, &self.name_of(id), data);
                        self.send(m);
                        self.states.insert(id.clone(), state);
                    }
                    None => {
                        // An answer settles the document; a step for another session's change
                        // that brought nothing new leaves a document in flight awaiting its answer.
                        if msg_in {
                            self.in_flight.remove(id);
                        }
                        if step.in_sync && self.naming == Naming::Replica && !self.in_flight.contains_key(id) {
                            // Nothing to say: keep only the encoded shared heads of an idle replica.
                            self.states.remove(id);
                            self.persisted.insert(id.as_str().to_string(), state.encode());
                        } else {
                            self.states.insert(id.clone(), state);
                        }
                    }
                }
                Ok(())
            }
            Err(HubError::NotFound) => {
                let n = self.name_of(id);
                self.unavailable(n);
                Ok(())
            }
            Err(HubError::Bad(e)) => {
                let m = format!("bad sync message for {id}: {e}");
                self.send(Message::Error { message: m.clone() });
                Err(End::Protocol(m))
            }
            Err(HubError::Store(e)) => {
                // Nothing acknowledged; the peer will resend on its next session.
                self.send(Message::Error { message: "the relay could not store the changes; retry later".into() });
                Err(End::Protocol(e.to_string()))
            }
        }
    }

    fn flush_states(&mut self) {
        let states = std::mem::take(&mut self.unsaved);
        self.hub.save_states(states);
    }
}
