//! What sync needs from a replica: changes since given heads as bytes and applying them, and the
//! Automerge sync protocol (messages generated and received per peer and document, with the sync
//! state persisted so a reconnect resumes instead of starting over). The transport is elsewhere.

use std::collections::HashMap;

use automerge::{
    ChangeHash,
    sync::{self, SyncDoc},
};
use rusqlite::{OptionalExtension, params};

use crate::{
    Replica,
    doc::DocId,
    error::{CoreError, Result},
};

/// Parses change hashes sent as 32 raw bytes each.
pub fn heads_from_bytes(b: &[Vec<u8>]) -> Result<Vec<ChangeHash>> {
    b.iter()
        .map(|h| ChangeHash::try_from(h.as_slice()).map_err(|_| CoreError::Storage("a head is not 32 bytes".into())))
        .collect()
}

/// Heads as stored by the relay: 32 bytes each, concatenated.
pub fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// Whether an encoded Automerge sync message carries changes (false for a malformed one).
pub fn carries_changes(msg: &[u8]) -> bool {
    sync::Message::decode(msg).map(|m| !m.changes.is_empty()).unwrap_or(false)
}

/// The sync states of one remote peer, across documents.
pub struct SyncPeer {
    peer: String,
    states: HashMap<DocId, sync::State>,
}

impl SyncPeer {
    /// A peer known by a stable id (its device or the relay's).
    pub fn new(peer: impl Into<String>) -> Self {
        Self { peer: peer.into(), states: HashMap::new() }
    }
    /// The peer's id.
    pub fn id(&self) -> &str {
        &self.peer
    }
    /// Forgets the in-memory state of a document that is in sync (it is reloaded from the store
    /// when needed), so idle connections hold nothing per document.
    pub fn evict(&mut self, id: &DocId) {
        self.states.remove(id);
    }
    /// Documents with a state in memory.
    pub fn active(&self) -> usize {
        self.states.len()
    }
}

/// A document received whole, built beside the writer by [`Replica::prepare_sync`]: the document
/// and its snapshot as it will be stored.
pub struct Prepared {
    /// The genesis with the received changes applied.
    pub doc: automerge::Automerge,
    /// `doc` saved.
    pub snapshot: Vec<u8>,
}

/// Whether a step with no incoming message has nothing to tell the peer: it already has every
/// change here (a peer with more starts on its own). A message then would be a bare greeting that
/// an in-sync peer rightly leaves unanswered, and the side waiting for that answer would hold the
/// document until its answer timeout.
pub fn nothing_to_tell(state: &sync::State, heads: &[ChangeHash]) -> bool {
    state.shared_heads == heads
}

/// Documents with fewer changes than this go to a fresh peer change by change (see [`generate`]).
/// A catalog shard of a shop with 100,000 products imported in chunks of 1,000 has about sixty.
pub const WHOLE_DOCUMENT_FROM: usize = 32;

/// The next sync message for a peer about document `id`, encoded (Automerge's
/// `generate_sync_message`, with one rule of ours): the whole document goes out as one compressed
/// snapshot only to a peer that holds none of its changes yet (nothing, or just the genesis), and
/// only when the document has [`WHOLE_DOCUMENT_FROM`] changes or more.
/// Automerge also sends the whole document whenever the peer lacks more than a third of its
/// changes, which in small shard documents is nearly every time two replicas both wrote offline;
/// then the sender compresses the whole document and the receiver merges it change by change, far
/// more work than the changes themselves (a relay profile of a convergence: 10 % compressing
/// documents for it). A few changes are cheaper as they are, even to a fresh peer: the receiver
/// stores them straight from the message, while a document in one chunk makes a relay rebuild
/// each change from it to store it (12 % of a relay's CPU in a reconnect, where new shard
/// documents reached it whole).
pub fn generate(d: &automerge::Automerge, id: &DocId, state: &mut sync::State) -> Option<Vec<u8>> {
    let whole_allowed = match &state.their_heads {
        // Nothing goes out before the peer has told its heads.
        None => true,
        Some(h) => {
            id.scope().map(|s| crate::doc::at_genesis(s.collection, h)).unwrap_or(false)
                && automerge::ReadDoc::stats(d).num_changes >= WHOLE_DOCUMENT_FROM as u64
        }
    };
    let capabilities = if whole_allowed { None } else { state.their_capabilities.take() };
    let message = d.generate_sync_message(state).map(|m| m.encode());
    if capabilities.is_some() {
        state.their_capabilities = capabilities;
    }
    message
}

/// The changes a sync message brought that are new to `d` (applied since `before`), parsed from
/// the message's own chunks, in the order Automerge lists them. `chunks` are the message's change
/// chunks, kept before it was received. None when they do not account for every new change (a
/// whole document sent as one chunk, or changes held back earlier that this message released):
/// then the caller asks Automerge for the changes since `before`, which rebuilds each change from
/// the document — in Automerge 0.12 the dearest part of storing what a sync step received.
pub fn received_changes(
    d: &automerge::Automerge,
    before: &[ChangeHash],
    chunks: &[Vec<u8>],
) -> Option<Vec<automerge::Change>> {
    received_of(&new_changes(d, before), chunks)
}

/// Hashes of the changes `d` holds beyond `before`, in Automerge's order.
pub fn new_changes(d: &automerge::Automerge, before: &[ChangeHash]) -> Vec<ChangeHash> {
    d.get_changes_meta(before).iter().map(|m| m.hash).collect()
}

/// [`received_changes`] for changes already listed by [`new_changes`].
fn received_of(new: &[ChangeHash], chunks: &[Vec<u8>]) -> Option<Vec<automerge::Change>> {
    if new.is_empty() || chunks.len() < new.len() {
        return None;
    }
    let parsed = chunks.iter().map(|c| automerge::Change::try_from(c.as_slice()).ok()).collect::<Option<Vec<_>>>()?;
    received_among(new, parsed)
}

/// The changes of `parsed` named by `new`, in its order; None if one is missing.
fn received_among(new: &[ChangeHash], parsed: Vec<automerge::Change>) -> Option<Vec<automerge::Change>> {
    if new.is_empty() || parsed.len() < new.len() {
        return None;
    }
    let mut by_hash: HashMap<ChangeHash, automerge::Change> = parsed.into_iter().map(|c| (c.hash(), c)).collect();
    new.iter().map(|h| by_hash.remove(h)).collect()
}

/// Automerge's `receive_sync_message`, returning the changes the message brought that are new to
/// `d` (as [`received_changes`]; None: ask Automerge for them). Each change is parsed once: when
/// the message's changes are complete (every dependency and every head the peer names is among
/// them or already here), they are applied from that one parse and the message is then received
/// without them, which leaves the sync state exactly as Automerge leaves it (the peer's heads are
/// all known afterwards, so its shared heads become them either way; the heads it last sent stay
/// as they were, as for any message that carried changes). Otherwise the message goes to
/// Automerge as it is. Parsing the changes a second time to store them was 7 % of a relay's CPU
/// in a reconnect.
pub fn receive_listing_new(
    d: &mut automerge::Automerge,
    state: &mut sync::State,
    mut message: sync::Message,
) -> std::result::Result<Option<Vec<automerge::Change>>, automerge::AutomergeError> {
    let before = d.get_heads();
    if message.changes.is_empty() || state.read_only {
        d.receive_sync_message(state, message)?;
        return Ok(Some(Vec::new()));
    }
    let parsed = message.changes.iter().map(|c| automerge::Change::try_from(c).ok()).collect::<Option<Vec<_>>>();
    let Some(parsed) = parsed.filter(|p| complete(d, p, &message.heads)) else {
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        d.receive_sync_message(state, message)?;
        return Ok(received_changes(d, &before, &chunks));
    };
    d.apply_changes(parsed.iter().cloned())?;
    message.changes = sync::ChunkList::from(Vec::<Vec<u8>>::new());
    let last_sent = state.last_sent_heads.clone();
    d.receive_sync_message(state, message)?;
    state.last_sent_heads = last_sent;
    Ok(received_among(&new_changes(d, &before), parsed))
}

/// Whether `changes` applied to `d` leave nothing waiting and `heads` all known.
fn complete(d: &automerge::Automerge, changes: &[automerge::Change], heads: &[ChangeHash]) -> bool {
    let ours: std::collections::HashSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    let known = |h: &ChangeHash| ours.contains(h) || d.get_change_meta_by_hash(h).is_some();
    changes.iter().all(|c| c.deps().iter().all(known)) && heads.iter().all(known)
}

/// The outcome of one sync step on a document.
#[derive(Debug, Clone)]
pub struct SyncStep {
    /// The document.
    pub doc: DocId,
    /// The message to send, if any.
    pub reply: Option<Vec<u8>>,
    /// Changes of ours the peer is not known to have.
    pub pending: usize,
    /// Both sides have the same heads and nothing is in flight.
    pub in_sync: bool,
    /// The reply asks or tells the peer something it must answer (it is not a bare
    /// acknowledgement of heads the peer already has).
    pub awaits_answer: bool,
    /// Changes the incoming message brought that were new here.
    pub received: usize,
}

fn store_state(conn: &rusqlite::Connection, peer: &str, doc: &DocId, state: &sync::State) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_states(peer, doc_id, state) VALUES (?1, ?2, ?3)
         ON CONFLICT(peer, doc_id) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![peer, doc.as_str(), state.encode()])?;
    Ok(())
}

fn load_state(conn: &rusqlite::Connection, peer: &str, doc: &DocId) -> Result<sync::State> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc_id = ?2")?
        .query_row([peer, doc.as_str()], |r| r.get(0))
        .optional()?;
    Ok(bytes.and_then(|b| sync::State::decode(&b).ok()).unwrap_or_default())
}

impl Replica {
    /// The current heads of a document as stored (empty if unknown).
    pub fn heads(&self, id: &DocId) -> Result<Vec<ChangeHash>> {
        // The writer's committed heads when it holds the document: loading a document (snapshot
        // plus its change log) only to read its heads is slow for a whole shop.
        if let Some(h) = self.cached_heads(id) {
            return Ok(h);
        }
        Ok(self.load_doc(id)?.map(|d| d.get_heads()).unwrap_or_default())
    }

    /// Every change of `id` that is not an ancestor of `heads`, as concatenated change bytes.
    pub fn changes_since(&self, id: &DocId, heads: &[ChangeHash]) -> Result<Vec<u8>> {
        Ok(self.load_doc(id)?.map(|d| d.save_after(heads)).unwrap_or_default())
    }

    /// Applies changes from another replica durably and updates the projection; returns how many
    /// were new. Duplicates and out-of-order delivery are harmless.
    pub async fn apply_changes(&self, id: &DocId, bytes: Vec<u8>) -> Result<usize> {
        let id = id.clone();
        self.write(move |ctx| ctx.apply_remote(&id, &bytes)).await
    }

    /// [`Self::apply_changes`] from a plain thread.
    pub fn apply_changes_blocking(&self, id: &DocId, bytes: Vec<u8>) -> Result<usize> {
        let id = id.clone();
        self.write_blocking(move |ctx| ctx.apply_remote(&id, &bytes))
    }

    /// Runs one sync step per document in a single durable write: receives the incoming message
    /// (if any), persists the sync state and generates the reply. Messages are decoded first, so
    /// a malformed one fails the call before anything is written.
    pub async fn sync_steps(&self, peer: &mut SyncPeer, batch: Vec<(DocId, Option<Vec<u8>>)>) -> Result<Vec<SyncStep>> {
        self.sync_steps_prepared(peer, batch.into_iter().map(|(id, m)| (id, m, None)).collect()).await
    }

    /// Prepares, off the writer thread, a sync message that brings a document this replica does
    /// not hold yet (an initial sync): the document built from its genesis and the message's
    /// changes, for [`Self::sync_steps_prepared`]. None when the document is already stored, the
    /// message carries no changes or they do not make a complete document. Decoding and applying
    /// the changes is most of the work of receiving a new document, and this way it runs beside
    /// the writer instead of on it.
    pub fn prepare_sync(&self, id: &DocId, msg: &[u8]) -> Option<Prepared> {
        let message = sync::Message::decode(msg).ok()?;
        if message.changes.is_empty() {
            return None;
        }
        let collection = id.scope().ok()?.collection;
        let stored = self
            .read(|c| {
                Ok(c.prepare_cached("SELECT 1 FROM documents WHERE doc_id = ?1")?
                    .query_row([id.as_str()], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .ok()?;
        if stored {
            return None;
        }
        let mut d = crate::doc::genesis(collection);
        for chunk in message.changes.iter() {
            d.load_incremental(chunk).ok()?;
        }
        if !automerge::ReadDoc::get_missing_deps(&d, &[]).is_empty() {
            return None;
        }
        let snapshot = d.save();
        Some(Prepared { doc: d, snapshot })
    }

    /// [`Self::sync_steps`] with documents prepared by [`Self::prepare_sync`] (used only when the
    /// document here is still what it was prepared from).
    pub async fn sync_steps_prepared(
        &self,
        peer: &mut SyncPeer,
        batch: Vec<(DocId, Option<Vec<u8>>, Option<Prepared>)>,
    ) -> Result<Vec<SyncStep>> {
        let mut jobs = Vec::with_capacity(batch.len());
        for (id, msg, prepared) in batch {
            let message = match msg {
                Some(m) => {
                    Some(sync::Message::decode(&m).map_err(|e| CoreError::Storage(format!("bad sync message: {e}")))?)
                }
                None => None,
            };
            let state = peer.states.remove(&id);
            jobs.push((id, message, state, prepared));
        }
        let peer_id = peer.peer.clone();
        let done = self
            .write(move |ctx| {
                let mut out = Vec::with_capacity(jobs.len());
                for (id, message, state, prepared) in jobs {
                    let mut state = match state {
                        Some(s) => s,
                        None => load_state(ctx.conn(), &peer_id, &id)?,
                    };
                    let mut received = 0;
                    let told = message.is_some();
                    if let Some(message) = message {
                        let shared = state.shared_heads.clone();
                        received = ctx.receive_sync_prepared(&id, &mut state, message, prepared)?;
                        if state.shared_heads != shared {
                            store_state(ctx.conn(), &peer_id, &id, &state)?;
                        }
                    }
                    let d = ctx.doc(&id)?;
                    let heads = d.get_heads();
                    if !told && nothing_to_tell(&state, &heads) {
                        out.push((
                            state,
                            SyncStep {
                                doc: id,
                                reply: None,
                                pending: 0,
                                in_sync: true,
                                awaits_answer: false,
                                received,
                            },
                        ));
                        continue;
                    }
                    let reply = generate(d, &id, &mut state);
                    let pending = d.get_changes_meta(&state.shared_heads).len();
                    let they_have_ours = state.their_heads.as_deref() == Some(heads.as_slice());
                    let in_sync = reply.is_none() && they_have_ours;
                    let awaits_answer = reply.is_some() && !they_have_ours;
                    out.push((state, SyncStep { doc: id, reply, pending, in_sync, awaits_answer, received }));
                }
                Ok(out)
            })
            .await?;
        Ok(done
            .into_iter()
            .map(|(state, step)| {
                peer.states.insert(step.doc.clone(), state);
                step
            })
            .collect())
    }

    /// Documents whose heads differ from what `peer` was last known to have (or that it never
    /// synced): the ones a reconnect must talk about.
    pub async fn sync_dirty(&self, peer: &str) -> Result<Vec<DocId>> {
        let peer = peer.to_string();
        self.write(move |ctx| {
            let ids = crate::writer::all_doc_ids(ctx.conn())?;
            let mut dirty = Vec::new();
            for id in ids {
                let state = load_state(ctx.conn(), &peer, &id)?;
                if ctx.doc(&id)?.get_heads() != state.shared_heads {
                    dirty.push(id);
                }
            }
            Ok(dirty)
        })
        .await
    }

    /// The next sync message for `peer` about document `id`, if there is anything to say.
    pub async fn sync_generate(&self, peer: &mut SyncPeer, id: &DocId) -> Result<Option<Vec<u8>>> {
        let state = match peer.states.remove(id) {
            Some(s) => s,
            None => self.read(|c| load_state(c, &peer.peer, id))?,
        };
        let doc_id = id.clone();
        let (state, msg) = self
            .write(move |ctx| {
                let mut state = state;
                let msg = generate(ctx.doc(&doc_id)?, &doc_id, &mut state);
                Ok((state, msg))
            })
            .await?;
        peer.states.insert(id.clone(), state);
        Ok(msg)
    }

    /// Receives a sync message from `peer` about document `id`: applies its changes durably and
    /// persists the sync state.
    pub async fn sync_receive(&self, peer: &mut SyncPeer, id: &DocId, msg: Vec<u8>) -> Result<()> {
        let state = match peer.states.remove(id) {
            Some(s) => s,
            None => self.read(|c| load_state(c, &peer.peer, id))?,
        };
        let message = sync::Message::decode(&msg).map_err(|e| CoreError::Storage(format!("bad sync message: {e}")))?;
        let (doc_id, peer_id) = (id.clone(), peer.peer.clone());
        let state = self
            .write(move |ctx| {
                let mut state = state;
                ctx.receive_sync(&doc_id, &mut state, message)?;
                ctx.conn()
                    .prepare_cached(
                        "INSERT INTO sync_states(peer, doc_id, state) VALUES (?1, ?2, ?3)
                         ON CONFLICT(peer, doc_id) DO UPDATE SET state = excluded.state",
                    )?
                    .execute(params![peer_id, doc_id.as_str(), state.encode()])?;
                Ok(state)
            })
            .await?;
        peer.states.insert(id.clone(), state);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use automerge::{ActorId, Automerge, transaction::Transactable};

    use super::*;
    use crate::doc::{self, Collection};

    fn with_products(actor: u8, n: usize) -> Automerge {
        let mut d = doc::genesis(Collection::Products);
        d.set_actor(ActorId::from(vec![actor; 16]));
        let records = doc::records_obj(&d).unwrap();
        for i in 0..n {
            let mut tx = d.transaction();
            let o = tx.put_object(&records, format!("p-{actor}-{i}").as_str(), automerge::ObjType::Map).unwrap();
            tx.put(&o, "name", "Camisa").unwrap();
            tx.commit();
        }
        d
    }

    /// Syncs `a` into `b` both ways until quiet; returns whether `a` ever sent a whole document.
    fn a_sent_a_whole_document(id: &DocId, a: &mut Automerge, b: &mut Automerge) -> bool {
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        let mut whole = false;
        for _ in 0..10 {
            let from_a = generate(a, id, &mut sa);
            if let Some(m) = &from_a {
                let m = sync::Message::decode(m).unwrap();
                // Chunk header: 4 magic bytes, 4 checksum bytes, then the type (0: document).
                whole |= m.changes.iter().any(|c| c.get(8) == Some(&0));
                b.receive_sync_message(&mut sb, m).unwrap();
            }
            let from_b = generate(b, id, &mut sb);
            if let Some(m) = &from_b {
                a.receive_sync_message(&mut sa, sync::Message::decode(m).unwrap()).unwrap();
            }
            if from_a.is_none() && from_b.is_none() {
                break;
            }
        }
        assert_eq!(a.get_heads(), b.get_heads());
        whole
    }

    #[test]
    fn a_whole_document_goes_only_to_a_peer_that_has_none_of_it() {
        let id = DocId::products("s1", "p");
        // The peer wrote too: it gets the changes it lacks, though that is most of the document.
        let (mut a, mut b) = (with_products(1, 9), with_products(2, 1));
        assert!(!a_sent_a_whole_document(&id, &mut a, &mut b));
        assert_eq!(b.get_changes(&[]).len(), 11);
        // A peer with only the genesis gets a large document whole, in one compressed snapshot…
        let n = WHOLE_DOCUMENT_FROM;
        let (mut a, mut c) = (with_products(1, n), doc::genesis(Collection::Products));
        assert!(a_sent_a_whole_document(&id, &mut a, &mut c));
        assert_eq!(c.get_changes(&[]).len(), n + 1);
        // …and a small one change by change, which a relay stores as they come.
        let (mut a, mut c) = (with_products(1, n - 2), doc::genesis(Collection::Products));
        assert!(!a_sent_a_whole_document(&id, &mut a, &mut c));
        assert_eq!(c.get_changes(&[]).len(), n - 1);
    }

    #[test]
    fn receiving_with_one_parse_leaves_the_same_document_state_and_answers_as_automerge() {
        let id = DocId::products("s1", "p");
        for (na, nb) in [(5, 3), (40, 0), (0, 7), (1, 1)] {
            let mut a = with_products(1, na);
            let mut b = with_products(2, nb);
            // `plain` is `b` receiving through Automerge alone; both must stay identical.
            let mut plain = b.clone();
            let (mut sa, mut sb, mut sp) = (sync::State::new(), sync::State::new(), sync::State::new());
            let mut stored = 0;
            for _ in 0..12 {
                let from_a = generate(&a, &id, &mut sa);
                if let Some(m) = &from_a {
                    let before = b.get_heads();
                    let new = receive_listing_new(&mut b, &mut sb, sync::Message::decode(m).unwrap()).unwrap();
                    plain.receive_sync_message(&mut sp, sync::Message::decode(m).unwrap()).unwrap();
                    assert_eq!(b.get_heads(), plain.get_heads());
                    let expected: Vec<Vec<u8>> =
                        b.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect();
                    if let Some(new) = new.filter(|n| !n.is_empty()) {
                        assert_eq!(new.iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>(), expected);
                        stored += new.len();
                    }
                }
                let from_b = generate(&b, &id, &mut sb);
                assert_eq!(from_b, generate(&plain, &id, &mut sp), "the same answer ({na}, {nb})");
                assert_eq!(format!("{sb:?}"), format!("{sp:?}"), "the same sync state ({na}, {nb})");
                if let Some(m) = &from_b {
                    a.receive_sync_message(&mut sa, sync::Message::decode(m).unwrap()).unwrap();
                }
                if from_a.is_none() && from_b.is_none() {
                    break;
                }
            }
            assert_eq!(a.get_heads(), b.get_heads(), "converged ({na}, {nb})");
            // Changes sent one by one were all listed from the message (a whole document is not).
            if na > 0 && na + 1 < WHOLE_DOCUMENT_FROM {
                assert_eq!(stored, na, "({na}, {nb})");
            }
        }
    }

    #[test]
    fn the_changes_a_message_brought_are_read_from_its_chunks_and_match_automerge() {
        let id = DocId::products("s1", "p");
        let (mut a, mut b) = (with_products(1, 5), with_products(2, 3));
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        let mut checked = 0;
        for _ in 0..10 {
            if let Some(m) = generate(&a, &id, &mut sa) {
                let m = sync::Message::decode(&m).unwrap();
                let chunks: Vec<Vec<u8>> = m.changes.iter().map(<[u8]>::to_vec).collect();
                let before = b.get_heads();
                b.receive_sync_message(&mut sb, m).unwrap();
                let expected: Vec<Vec<u8>> = b.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect();
                match received_changes(&b, &before, &chunks) {
                    Some(got) => {
                        assert_eq!(got.iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>(), expected);
                        checked += got.len();
                    }
                    None => assert!(expected.is_empty(), "new changes not read from the message"),
                }
            }
            match generate(&b, &id, &mut sb) {
                Some(m) => a.receive_sync_message(&mut sa, sync::Message::decode(&m).unwrap()).unwrap(),
                None => break,
            }
        }
        assert_eq!(checked, 5, "every change of a reached b through a message");
        assert_eq!(a.get_heads(), b.get_heads());

        // A whole document in one chunk does not list its changes: Automerge is asked instead.
        let whole = with_products(3, 2);
        let fresh = doc::genesis(Collection::Products);
        let mut merged = fresh.clone();
        merged.load_incremental(&whole.save()).unwrap();
        let before = fresh.get_heads();
        assert!(received_changes(&merged, &before, &[whole.save()]).is_none());
        // Chunks that are not changes of this document at all neither.
        assert!(received_changes(&merged, &before, &[b"garbage".to_vec()]).is_none());
    }
}
