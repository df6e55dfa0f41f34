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
                let msg = ctx.doc(&doc_id)?.generate_sync_message(&mut state).map(|m| m.encode());
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
                ctx.with_doc_mut(&doc_id, |d| Ok(d.receive_sync_message(&mut state, message)?))?;
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
