//! A document as the relay holds it: its changes and their dependency graph, not its state.
//!
//! The relay only passes documents between replicas, so it answers Automerge's sync protocol from
//! the change graph alone: the same messages as [`automerge::sync::SyncDoc`] (heads, needs, Bloom
//! filters of what it has, the changes a peer lacks), built with Automerge's own message, state and
//! Bloom filter types. Receiving a change costs parsing it (which checks its hash and decodes its
//! operations) instead of applying it to a document; sending it costs nothing, because the bytes
//! that came in are the bytes that go out (Automerge 0.12 keeps no change bytes and rebuilds each
//! change it sends from the document). In a reconnect of two replicas with 10,000 offline changes
//! each, applying and rebuilding changes were more than half of the relay's CPU.
//!
//! What the graph cannot do alone, it does with Automerge: a document received whole is loaded to
//! read its changes, and a peer that holds nothing gets the document as one compressed snapshot
//! (the one received whole, or one built once from the changes).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use automerge::{
    ActorId, Automerge, Change, ChangeHash,
    sync::{self, BloomFilter, Capability, Have, Message, MessageFlags, MessageVersion},
};

/// What a document is too broken to take.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogError(String);

/// The chunks of Automerge's storage format: a 4-byte magic, a 4-byte checksum, a type byte and a
/// LEB128 length, then that many bytes.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;

/// Splits bytes holding one or more chunks (a sync message's changes may be concatenated, as in
/// a version 2 message) into the chunks and whether each is a whole document.
fn chunks(bytes: &[u8]) -> Result<Vec<(&[u8], bool)>, LogError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 9 || rest[..4] != MAGIC {
            return Err(LogError("not an Automerge chunk (bad magic bytes)".into()));
        }
        let kind = rest[8];
        let mut len_bytes = &rest[9..];
        let before = len_bytes.len();
        let len = leb128::read::unsigned(&mut len_bytes).map_err(|e| LogError(format!("chunk length: {e}")))?;
        let header = 9 + (before - len_bytes.len());
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(header))
            .filter(|e| *e <= rest.len())
            .ok_or_else(|| LogError("a chunk is longer than the bytes that carry it".into()))?;
        out.push((&rest[..end], kind == CHUNK_DOCUMENT));
        rest = &rest[end..];
    }
    Ok(out)
}

struct Entry {
    deps: Vec<ChangeHash>,
    bytes: Arc<[u8]>,
    /// Index of the change's actor in `Log::actors`, and its sequence number.
    actor: usize,
    seq: u64,
    /// Position in `Log::order`.
    pos: usize,
    /// The highest sequence number of each actor among the change and its ancestors (Automerge's
    /// vector clock; actors added later are 0): a change is an ancestor of a set of heads when its
    /// sequence number is within their merged clock.
    clock: Box<[u64]>,
}

/// A compressed document holding every change that is an ancestor of `heads`.
struct Snapshot {
    bytes: Vec<u8>,
    heads: Vec<ChangeHash>,
}

/// One document's changes, in the order they were applied (dependencies first).
#[derive(Default)]
pub struct Log {
    entries: HashMap<ChangeHash, Entry>,
    order: Vec<ChangeHash>,
    heads: BTreeSet<ChangeHash>,
    actors: HashMap<ActorId, usize>,
    /// Each actor's changes by sequence number (`[seq - 1]`).
    by_actor: Vec<Vec<ChangeHash>>,
    /// Changes whose dependencies have not arrived yet (Automerge's queue).
    queue: Vec<Change>,
    snapshot: Option<Snapshot>,
}

impl Log {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// A document from its stored chunks (a snapshot, then changes), in order.
    pub fn load(stored: &[Vec<u8>]) -> Result<Self, LogError> {
        let mut log = Self::new();
        for c in stored {
            log.ingest(c).map_err(|e| LogError(format!("stored document is unreadable: {e}")))?;
        }
        Ok(log)
    }

    /// The current heads, sorted.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.heads.iter().copied().collect()
    }

    /// How many changes the document holds.
    fn len(&self) -> usize {
        self.order.len()
    }

    fn has(&self, h: &ChangeHash) -> bool {
        self.entries.contains_key(h)
    }

    /// Takes chunks of changes or documents; returns the bytes of the changes that became part of
    /// the document, in order. Changes waiting for a dependency are held.
    fn ingest(&mut self, bytes: &[u8]) -> Result<Vec<Arc<[u8]>>, LogError> {
        let mut incoming = Vec::new();
        for (chunk, whole) in chunks(bytes)? {
            if whole {
                let doc = Automerge::load(chunk).map_err(|e| LogError(format!("a document does not load: {e}")))?;
                if self.snapshot.is_none() {
                    self.snapshot = Some(Snapshot { bytes: chunk.to_vec(), heads: doc.get_heads() });
                }
                incoming.extend(doc.get_changes(&[]));
            } else {
                incoming.push(Change::try_from(chunk).map_err(|e| LogError(format!("a change does not parse: {e}")))?);
            }
        }
        self.queue.extend(incoming);
        let mut added = Vec::new();
        loop {
            let mut progressed = false;
            let mut waiting = Vec::new();
            for c in std::mem::take(&mut self.queue) {
                let hash = c.hash();
                if self.has(&hash) {
                    continue;
                }
                if !c.deps().iter().all(|d| self.has(d)) {
                    waiting.push(c);
                    continue;
                }
                let actor = match self.actors.get(c.actor_id()) {
                    Some(a) => *a,
                    None => {
                        self.actors.insert(c.actor_id().clone(), self.by_actor.len());
                        self.by_actor.push(Vec::new());
                        self.by_actor.len() - 1
                    }
                };
                let mut clock = self.clock_at(c.deps());
                // An actor's changes form a chain: each follows the one before it, as every
                // Automerge change does (its dependencies are the heads it was made on).
                if clock[actor] + 1 != c.seq() {
                    self.queue = waiting;
                    return Err(LogError(format!(
                        "change {} of an actor does not follow its change {}",
                        c.seq(),
                        clock[actor]
                    )));
                }
                if self.by_actor[actor].len() as u64 >= c.seq() {
                    self.queue = waiting;
                    return Err(LogError(format!(
                        "two different changes claim sequence number {} of one actor",
                        c.seq()
                    )));
                }
                clock[actor] = c.seq();
                self.by_actor[actor].push(hash);
                for d in c.deps() {
                    self.heads.remove(d);
                }
                self.heads.insert(hash);
                let bytes: Arc<[u8]> = Arc::from(c.raw_bytes());
                let entry = Entry {
                    deps: c.deps().to_vec(),
                    bytes: bytes.clone(),
                    actor,
                    seq: c.seq(),
                    pos: self.order.len(),
                    clock: clock.into_boxed_slice(),
                };
                self.entries.insert(hash, entry);
                self.order.push(hash);
                added.push(bytes);
                progressed = true;
            }
            // A change held twice (sent again before its dependencies came) is held once.
            let mut seen = HashSet::new();
            waiting.retain(|c| seen.insert(c.hash()));
            self.queue = waiting;
            if !progressed || self.queue.is_empty() {
                return Ok(added);
            }
        }
    }

    /// The changes that are not ancestors of `heads` (all of them for no heads), in order.
    fn hashes_since(&self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        if heads.iter().eq(self.heads.iter()) {
            return Vec::new();
        }
        let clock = self.clock_at(heads);
        let mut since: Vec<(usize, ChangeHash)> = Vec::new();
        for (a, chain) in self.by_actor.iter().enumerate() {
            let from = usize::try_from(clock[a]).unwrap_or(usize::MAX).min(chain.len());
            since.extend(chain[from..].iter().map(|h| (self.entries[h].pos, *h)));
        }
        since.sort_unstable_by_key(|(pos, _)| *pos);
        since.into_iter().map(|(_, h)| h).collect()
    }

    /// The merged clock of `heads` (those held here), one entry per actor.
    fn clock_at(&self, heads: &[ChangeHash]) -> Vec<u64> {
        let mut clock = vec![0; self.by_actor.len()];
        for e in heads.iter().filter_map(|h| self.entries.get(h)) {
            for (c, v) in clock.iter_mut().zip(e.clock.iter()) {
                *c = (*c).max(*v);
            }
        }
        clock
    }

    /// Whether `h` is one of the changes a clock covers.
    fn covered(&self, h: &ChangeHash, clock: &[u64]) -> bool {
        self.entries.get(h).is_some_and(|e| e.seq <= clock[e.actor])
    }

    /// Automerge's `missing_deps_from`: what we lack to reach `start`, looking through held changes.
    fn missing_from(&self, start: &[ChangeHash]) -> Vec<ChangeHash> {
        let queued: HashMap<ChangeHash, &Change> = self.queue.iter().map(|c| (c.hash(), c)).collect();
        let mut missing = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut stack = start.to_vec();
        while let Some(h) = stack.pop() {
            if self.has(&h) || !seen.insert(h) {
                continue;
            }
            match queued.get(&h) {
                Some(c) => stack.extend(c.deps().iter().copied()),
                None => {
                    missing.insert(h);
                }
            }
        }
        missing.into_iter().collect()
    }

    /// Automerge's `get_hashes_to_send`: the changes the peer's Bloom filters do not show, with
    /// everything that depends on them, and what it asked for by name.
    fn hashes_to_send(&self, have: &[Have], need: &[ChangeHash]) -> Vec<ChangeHash> {
        let need: Vec<ChangeHash> = need.iter().filter(|h| self.has(h)).copied().collect();
        if have.is_empty() {
            return need;
        }
        let last_sync: Vec<ChangeHash> =
            have.iter().flat_map(|h| h.last_sync.iter().copied()).collect::<HashSet<_>>().into_iter().collect();
        let hashes = self.hashes_since(&last_sync);
        let mut dependents: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        let mut to_send = HashSet::new();
        for h in &hashes {
            if let Some(e) = self.entries.get(h) {
                for d in &e.deps {
                    dependents.entry(*d).or_default().push(*h);
                }
            }
            if have.iter().all(|hv| !hv.bloom.contains_hash(h)) {
                to_send.insert(*h);
            }
        }
        let mut stack: Vec<ChangeHash> = to_send.iter().copied().collect();
        while let Some(h) = stack.pop() {
            if let Some(ds) = dependents.get(&h) {
                for d in ds {
                    if to_send.insert(*d) {
                        stack.push(*d);
                    }
                }
            }
        }
        let mut out: Vec<ChangeHash> = need.into_iter().filter(|h| !to_send.contains(h)).collect();
        out.extend(hashes.into_iter().filter(|h| to_send.contains(h)));
        out
    }

    /// The whole document as one compressed chunk followed by the changes it lacks: the snapshot
    /// received whole, or one built now (once) from the changes.
    fn whole(&mut self) -> Result<Vec<u8>, LogError> {
        if self.snapshot.is_none() {
            let mut doc = Automerge::new();
            let all: Vec<u8> = self.order.iter().flat_map(|h| self.entries[h].bytes.iter().copied()).collect();
            doc.load_incremental(&all).map_err(|e| LogError(format!("the document does not build: {e}")))?;
            self.snapshot = Some(Snapshot { bytes: doc.save(), heads: doc.get_heads() });
        }
        let Some(snap) = &self.snapshot else { return Ok(Vec::new()) };
        let mut out = snap.bytes.clone();
        for h in self.hashes_since(&snap.heads) {
            out.extend_from_slice(&self.entries[&h].bytes);
        }
        Ok(out)
    }

    /// Automerge's `receive_sync_message`, on the graph; returns the bytes of the changes that
    /// became part of the document, in order.
    pub fn receive(&mut self, state: &mut sync::State, message: Message) -> Result<Vec<Arc<[u8]>>, LogError> {
        state.in_flight = false;
        let before = self.heads();
        let Message { heads, need, have, changes, flags, .. } = message;
        if let Some(flags) = flags {
            let mut caps = vec![Capability::MessageV2];
            if flags.contains(MessageFlags::SUPPORTS_SYNC_RESET) {
                caps.push(Capability::SyncReset);
            }
            state.their_capabilities = Some(caps);
            if flags.contains(MessageFlags::SYNC_RESET) {
                state.sent_hashes.clear();
            }
            state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
        }
        let mut added = Vec::new();
        let carried = !changes.is_empty();
        if carried && !state.read_only {
            for c in changes.iter() {
                added.extend(self.ingest(c)?);
            }
            // Automerge's advance_heads: our new heads, and the shared heads that are still heads.
            let old: HashSet<&ChangeHash> = before.iter().collect();
            let mut shared: BTreeSet<ChangeHash> = self.heads.iter().filter(|h| !old.contains(h)).copied().collect();
            shared.extend(state.shared_heads.iter().filter(|h| self.heads.contains(*h)).copied());
            state.shared_heads = shared.into_iter().collect();
        }
        // The changes sent that the peer's heads show it has need not be remembered.
        let known: Vec<ChangeHash> = heads.iter().filter(|h| self.has(h)).copied().collect();
        if !state.sent_hashes.is_empty() {
            let theirs = self.clock_at(&known);
            state.sent_hashes.retain(|h| !self.covered(h, &theirs));
        }
        if !carried && heads == before {
            state.last_sent_heads.clone_from(&heads);
        }
        if known.len() == heads.len() {
            state.shared_heads.clone_from(&heads);
            // A peer that lost everything starts over.
            if heads.is_empty() {
                state.last_sent_heads = Vec::new();
                state.sent_hashes = Default::default();
            }
        } else {
            let mut shared: BTreeSet<ChangeHash> = state.shared_heads.iter().copied().collect();
            shared.extend(known);
            state.shared_heads = shared.into_iter().collect();
        }
        state.their_have = Some(have);
        state.their_heads = Some(heads);
        state.their_need = Some(need);
        Ok(added)
    }

    /// Automerge's `generate_sync_message`, on the graph, with core's rule for whole documents
    /// ([`dashoffice_core::sync::generate`]): the document goes whole only to a peer that holds
    /// nothing beyond `genesis` and only from [`dashoffice_core::sync::WHOLE_DOCUMENT_FROM`]
    /// changes on; otherwise as changes.
    pub fn generate(&mut self, state: &mut sync::State, at_genesis: impl Fn(&[ChangeHash]) -> bool) -> Option<Vec<u8>> {
        let ours = self.heads();
        let need =
            if state.read_only { Vec::new() } else { self.missing_from(state.their_heads.as_deref().unwrap_or(&[])) };
        let their_heads: HashSet<&ChangeHash> = state.their_heads.iter().flatten().collect();
        let have = if need.iter().all(|h| their_heads.contains(h)) {
            let hashes = self.hashes_since(&state.shared_heads);
            vec![Have { last_sync: state.shared_heads.clone(), bloom: BloomFilter::from_hashes(hashes.iter()) }]
        } else {
            Vec::new()
        };
        if let Some(first) = state.their_have.as_ref().and_then(|h| h.first())
            && !first.last_sync.iter().all(|h| self.has(h))
        {
            // Automerge's reset: the peer's last sync point is unknown here; start over.
            let mut flags = MessageFlags::new();
            flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
            let reset = Message {
                heads: ours,
                need: Vec::new(),
                have: vec![Have::default()],
                changes: sync::ChunkList::empty(),
                flags: Some(flags),
                version: MessageVersion::V1,
            };
            return Some(reset.encode());
        }
        let v2 = state.their_capabilities.as_ref().is_some_and(|c| c.contains(&Capability::MessageV2));
        // What to send is decided first; its bytes are gathered only if the message goes out.
        let mut sent: Vec<ChangeHash> = Vec::new();
        let mut whole = false;
        if !state.peer_read_only
            && let (Some(their_have), Some(their_need)) = (state.their_have.as_ref(), state.their_need.as_ref())
        {
            let hashes: Vec<ChangeHash> = self
                .hashes_to_send(their_have, their_need)
                .into_iter()
                .filter(|h| !state.sent_hashes.contains(h))
                .collect();
            whole = v2
                && !hashes.is_empty()
                && state.their_heads.as_deref().is_some_and(&at_genesis)
                && self.len() >= dashoffice_core::sync::WHOLE_DOCUMENT_FROM;
            sent = hashes;
        }
        if state.last_sent_heads == ours && state.have_responded {
            let equal = state.their_heads.as_ref() == Some(&ours);
            if (equal || state.read_only) && sent.is_empty() {
                return None;
            }
            if state.in_flight {
                return None;
            }
        }
        let (chunks, version) = match whole.then(|| self.whole().ok()).flatten() {
            Some(doc) => {
                sent.clone_from(&self.order);
                (vec![doc], MessageVersion::V2)
            }
            None => (sent.iter().map(|h| self.entries[h].bytes.to_vec()).collect(), MessageVersion::V1),
        };
        state.have_responded = true;
        state.last_sent_heads.clone_from(&ours);
        state.sent_hashes.extend(sent);
        let mut flags = MessageFlags::new();
        flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
        if state.read_only {
            flags.set(MessageFlags::READ_ONLY);
        }
        let heads = if state.needs_reset {
            state.needs_reset = false;
            if state.their_capabilities.as_ref().is_some_and(|c| c.contains(&Capability::SyncReset)) {
                flags.set(MessageFlags::SYNC_RESET);
                ours
            } else {
                Vec::new()
            }
        } else {
            ours
        };
        state.in_flight = true;
        Some(
            Message { heads, need, have, changes: sync::ChunkList::from(chunks), flags: Some(flags), version }.encode(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use automerge::{ReadDoc, sync::SyncDoc, transaction::Transactable};

    use super::*;

    fn edit(d: &mut Automerge, key: &str, value: &str) {
        let mut tx = d.transaction();
        tx.put(automerge::ROOT, key, value).unwrap();
        // A fixed time: the same edits by the same actor make the same changes, hash for hash.
        tx.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    }

    /// Runs the protocol between an Automerge peer and the log until both are quiet; returns the
    /// number of messages exchanged.
    fn sync_pair(peer: &mut Automerge, log: &mut Log, ps: &mut sync::State, ls: &mut sync::State) -> usize {
        let mut n = 0;
        for _ in 0..50 {
            let a = peer.generate_sync_message(ps);
            if let Some(m) = a.clone() {
                n += 1;
                log.receive(ls, m).unwrap();
            }
            let b = log.generate(ls, |h| h.is_empty());
            if let Some(m) = b.clone() {
                n += 1;
                peer.receive_sync_message(ps, Message::decode(&m).unwrap()).unwrap();
            }
            if a.is_none() && b.is_none() {
                return n;
            }
        }
        panic!("the sync did not settle");
    }

    /// The same exchange between two Automerge documents, for comparison.
    fn sync_automerge(peer: &mut Automerge, other: &mut Automerge) -> usize {
        let (mut ps, mut os) = (sync::State::new(), sync::State::new());
        let mut n = 0;
        for _ in 0..50 {
            let a = peer.generate_sync_message(&mut ps);
            if let Some(m) = a.clone() {
                n += 1;
                other.receive_sync_message(&mut os, m).unwrap();
            }
            let b = other.generate_sync_message(&mut os);
            if let Some(m) = b.clone() {
                n += 1;
                peer.receive_sync_message(&mut ps, m).unwrap();
            }
            if a.is_none() && b.is_none() {
                return n;
            }
        }
        panic!("the sync did not settle");
    }

    /// The relay's log passes changes between replicas as an Automerge document would: two
    /// replicas that wrote apart (one of them with a change the other lacks the base of) converge
    /// through it, in as many messages as through an Automerge document, and the log's bytes are
    /// what came in.
    #[test]
    fn two_replicas_converge_through_the_log_as_through_a_document() {
        // Fixed actors: both exchanges below then sync the very same changes, whose hashes decide
        // the Bloom filters' false positives (an extra round when one occurs); with random actors
        // one exchange sometimes met one and the other did not.
        let (actor_a, actor_b) = (automerge::ActorId::from([0xaa; 16]), automerge::ActorId::from([0xbb; 16]));
        let mut a = Automerge::new().with_actor(actor_a.clone());
        for i in 0..40 {
            edit(&mut a, &format!("k{i}"), "a");
        }
        let mut b = a.fork().with_actor(actor_b.clone());
        for i in 0..5 {
            edit(&mut a, &format!("a{i}"), "x");
            edit(&mut b, &format!("b{i}"), "y");
        }
        edit(&mut b, "k1", "b");

        let mut log = Log::new();
        let (mut sa, mut la) = (sync::State::new(), sync::State::new());
        let (mut sb, mut lb) = (sync::State::new(), sync::State::new());
        sync_pair(&mut a, &mut log, &mut sa, &mut la);
        assert_eq!(log.heads(), a.get_heads());
        let through_log = sync_pair(&mut b, &mut log, &mut sb, &mut lb);
        sync_pair(&mut a, &mut log, &mut sa, &mut la);
        assert_eq!(a.get_heads(), b.get_heads());
        assert_eq!(log.heads(), a.get_heads());
        assert_eq!(a.get(automerge::ROOT, "b4").unwrap().map(|(v, _)| v.to_string()).as_deref(), Some("\"y\""));

        // The same second exchange against an Automerge document holding what the log held.
        let mut a2 = Automerge::new().with_actor(actor_a);
        for i in 0..40 {
            edit(&mut a2, &format!("k{i}"), "a");
        }
        let mut b2 = a2.fork().with_actor(actor_b);
        for i in 0..5 {
            edit(&mut a2, &format!("a{i}"), "x");
            edit(&mut b2, &format!("b{i}"), "y");
        }
        edit(&mut b2, "k1", "b");
        let through_doc = sync_automerge(&mut b2, &mut a2);
        assert_eq!(through_log, through_doc, "messages through the log and through a document");

        // Stored and loaded again, the log is the same graph.
        let stored: Vec<Vec<u8>> = log.order.iter().map(|h| log.entries[h].bytes.to_vec()).collect();
        let again = Log::load(&stored).unwrap();
        assert_eq!(again.heads(), log.heads());
        assert_eq!(again.len(), log.len());
    }

    /// A fresh peer gets the document whole (one compressed chunk), which loads to the same state.
    #[test]
    fn a_fresh_peer_gets_the_document_whole() {
        let mut a = Automerge::new();
        for i in 0..40 {
            edit(&mut a, &format!("k{i}"), "v");
        }
        let mut log = Log::new();
        let (mut sa, mut la) = (sync::State::new(), sync::State::new());
        sync_pair(&mut a, &mut log, &mut sa, &mut la);
        assert!(log.snapshot.is_some(), "a document sent whole is kept whole");
        // Changes after the snapshot follow it in the same message.
        edit(&mut a, "later", "1");
        edit(&mut a, "later", "2");
        sync_pair(&mut a, &mut log, &mut sa, &mut la);
        assert_ne!(log.snapshot.as_ref().unwrap().heads, log.heads());

        for snapshot in [true, false] {
            if !snapshot {
                log.snapshot = None;
            }
            let mut fresh = Automerge::new();
            let (mut fs, mut ls) = (sync::State::new(), sync::State::new());
            // The first message of a fresh peer tells its (empty) heads and capabilities.
            let m = fresh.generate_sync_message(&mut fs).unwrap();
            log.receive(&mut ls, m).unwrap();
            let reply = Message::decode(&log.generate(&mut ls, |h| h.is_empty()).unwrap()).unwrap();
            assert_eq!(reply.version, MessageVersion::V2);
            assert!(chunks(reply.changes.iter().next().unwrap()).unwrap()[0].1, "the first chunk is a document");
            fresh.receive_sync_message(&mut fs, reply).unwrap();
            sync_pair(&mut fresh, &mut log, &mut fs, &mut ls);
            assert_eq!(fresh.get_heads(), a.get_heads());
            assert_eq!(
                fresh.get(automerge::ROOT, "k39").unwrap().map(|(v, _)| v.to_string()).as_deref(),
                Some("\"v\"")
            );
            assert_eq!(
                fresh.get(automerge::ROOT, "later").unwrap().map(|(v, _)| v.to_string()).as_deref(),
                Some("\"2\"")
            );
        }
    }

    /// Three replicas edit at random and talk to the log one message at a time, in random order;
    /// in the end all of them and the log hold the same changes.
    #[test]
    fn replicas_stepping_at_random_converge_through_the_log() {
        use rand::{RngExt, SeedableRng};
        for seed in 0..4 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let base = Automerge::new();
            let mut peers: Vec<Automerge> = (0..3).map(|_| base.fork()).collect();
            let mut states: Vec<(sync::State, sync::State)> =
                (0..3).map(|_| (sync::State::new(), sync::State::new())).collect();
            let mut log = Log::new();
            for round in 0..400 {
                let i = rng.random_range(0..3);
                for _ in 0..rng.random_range(0..3) {
                    let key = format!("k{}", rng.random_range(0..20));
                    edit(&mut peers[i], &key, &format!("{i}-{round}"));
                }
                let (ps, ls) = &mut states[i];
                if rng.random_bool(0.5) {
                    if let Some(m) = peers[i].generate_sync_message(ps) {
                        log.receive(ls, m).unwrap();
                    }
                } else if let Some(m) = log.generate(ls, |h| h.is_empty()) {
                    peers[i].receive_sync_message(ps, Message::decode(&m).unwrap()).unwrap();
                }
            }
            for _ in 0..3 {
                for i in 0..3 {
                    let (ps, ls) = &mut states[i];
                    sync_pair(&mut peers[i], &mut log, ps, ls);
                }
            }
            for p in &peers {
                assert_eq!(p.get_heads(), log.heads());
            }
            assert_eq!(peers[0].get(automerge::ROOT, "k3").unwrap(), peers[2].get(automerge::ROOT, "k3").unwrap());
        }
    }

    /// A change whose dependency has not arrived waits, and is released when it comes; garbage,
    /// a change with a broken hash and a second change with the same actor sequence are refused.
    #[test]
    fn held_changes_wait_and_bad_ones_are_refused() {
        let mut a = Automerge::new();
        edit(&mut a, "x", "1");
        edit(&mut a, "x", "2");
        let changes = a.get_changes(&[]);
        let mut log = Log::new();
        assert!(log.ingest(changes[1].raw_bytes()).unwrap().is_empty());
        assert_eq!(log.missing_from(&a.get_heads()), vec![changes[0].hash()]);
        assert_eq!(log.ingest(changes[0].raw_bytes()).unwrap().len(), 2);
        assert_eq!(log.heads(), a.get_heads());

        assert!(log.ingest(b"garbage bytes").is_err());
        let mut broken = changes[0].raw_bytes().to_vec();
        let last = broken.len() - 1;
        broken[last] ^= 0xff;
        assert!(log.ingest(&broken).is_err());

        let mut twin = Automerge::new().with_actor(a.get_actor().clone());
        edit(&mut twin, "y", "other");
        let err = log.ingest(twin.get_changes(&[])[0].raw_bytes()).unwrap_err();
        assert!(err.to_string().contains("sequence number"), "{err}");
        assert_eq!(log.heads(), a.get_heads());
    }
}
