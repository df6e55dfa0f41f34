//! The single writer: one thread owns the read-write SQLite connection and the in-memory
//! Automerge documents. Writes arrive over a channel, run in batches inside one SQLite transaction
//! (group commit, one savepoint per write) and are acknowledged only after COMMIT returned.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};

use automerge::{
    ActorId, Automerge, ChangeHash, ObjId, ReadDoc,
    transaction::{CommitOptions, Transactable, Transaction},
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Clock,
    doc::{self, DocId},
    error::{CoreError, Result},
    projection,
};

/// Documents whose change log grows past this are compacted into a snapshot.
const COMPACT_AFTER: i64 = 256;
/// At most this many writes share one transaction.
const MAX_BATCH: usize = 512;

/// This replica's identity.
#[derive(Debug, Clone)]
pub struct Device {
    /// Automerge actor id of every local change.
    pub actor: Vec<u8>,
    /// Short code used in order numbers.
    pub code: String,
}

type Reply = Box<dyn FnOnce(Option<CoreError>) + Send>;
/// A queued write. Called with `None` when it cannot run (no transaction could be opened): it then
/// only hands back its reply, to be sent the error.
pub(crate) type Job = Box<dyn FnOnce(Option<&mut WriteCtx<'_>>) -> (bool, Reply) + Send>;

/// What a write sees: the store inside the open transaction and the documents.
pub struct WriteCtx<'a> {
    conn: &'a Connection,
    docs: &'a mut HashMap<DocId, Automerge>,
    device: &'a Device,
    actor: ActorId,
    clock: &'a dyn Clock,
    /// Heads of each document before this write first touched it.
    before: Vec<(DocId, Vec<ChangeHash>)>,
    /// Changes this write made locally, by document: cheaper to persist than a history walk.
    local: Vec<(DocId, ChangeHash)>,
    /// Documents that received changes from elsewhere: persist everything since `before`.
    remote: HashSet<DocId>,
    /// Documents changed in this batch (for compaction).
    batch_docs: &'a mut HashSet<DocId>,
    /// Snapshots made beside the writer of documents received whole, with the heads they hold.
    saved: HashMap<DocId, (Vec<ChangeHash>, Vec<u8>)>,
    /// Remote changes already listed for the projection, with the heads they lead to: what
    /// `finish` stores, when the document is still at those heads.
    listed: HashMap<DocId, (Vec<ChangeHash>, Vec<automerge::Change>)>,
    /// Searchable records projected in this batch, for the search index (None: no index).
    searched: Option<&'a mut Vec<(crate::search::Kind, String)>>,
    /// Records to create in a document in one change, by document (see [`Self::create_later`]).
    later: Vec<(DocId, Vec<(String, automerge::hydrate::Value)>)>,
}

/// Notes a projected record for the search index, if it is of a searched kind.
fn note_search(searched: &mut Option<&mut Vec<(crate::search::Kind, String)>>, id: &DocId, record: &str) {
    if let Some(list) = searched.as_deref_mut()
        && let Some(kind) = id.scope().ok().and_then(|s| crate::search::Kind::of(s.collection))
    {
        list.push((kind, record.to_string()));
    }
}

impl<'a> WriteCtx<'a> {
    /// The store, inside the write's transaction.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// Unix milliseconds now.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// This replica.
    pub fn device(&self) -> &Device {
        self.device
    }

    fn load(&mut self, id: &DocId) -> Result<&mut Automerge> {
        // Whatever reads or changes a document sees the records created in it so far.
        if self.later.iter().any(|(d, _)| d == id) {
            self.create_now(id)?;
        }
        if !self.docs.contains_key(id) {
            let scope = id.scope()?;
            let mut d = doc::load(self.conn, id, scope.collection)?.unwrap_or_else(|| doc::genesis(scope.collection));
            d.set_actor(self.actor.clone());
            self.docs.insert(id.clone(), d);
        }
        self.docs.get_mut(id).ok_or_else(|| CoreError::Storage("document cache".into()))
    }

    /// A document, read-only (created empty in memory if it does not exist yet).
    pub fn doc(&mut self, id: &DocId) -> Result<&Automerge> {
        Ok(&*self.load(id)?)
    }

    fn touch(&mut self, id: &DocId) -> Result<()> {
        if !self.before.iter().any(|(d, _)| d == id) {
            let heads = self.load(id)?.get_heads();
            self.before.push((id.clone(), heads));
        }
        Ok(())
    }

    /// Makes one Automerge change to document `id` with this device's actor; `records` lists the
    /// record ids it touches, so the projection follows.
    pub fn change<R>(
        &mut self,
        id: &DocId,
        records: &[&str],
        f: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<R>,
    ) -> Result<R> {
        self.change_projected(id, records, f, |conn, d, _| {
            for rec in records {
                projection::project_record(conn, id, d, rec)?;
            }
            Ok(())
        })
    }

    /// [`Self::change`] for a write that projects its records itself (`project`, called after the
    /// commit with the document and what `f` returned), from the values it has just written
    /// rather than by reading them back. `records` still lists them, for the search index.
    pub fn change_projected<R>(
        &mut self,
        id: &DocId,
        records: &[&str],
        f: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<R>,
        project: impl FnOnce(&Connection, &Automerge, &R) -> Result<()>,
    ) -> Result<R> {
        self.touch(id)?;
        let now = self.now();
        let d = self.load(id)?;
        let recs = doc::records_obj(d)?;
        let mut tx = d.transaction();
        match f(&mut tx, &recs) {
            Ok(r) => {
                let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now / 1000));
                if let Some(h) = hash {
                    self.local.push((id.clone(), h));
                }
                let d = self.docs.get(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
                project(self.conn, d, &r)?;
                for rec in records {
                    note_search(&mut self.searched, id, rec);
                }
                Ok(r)
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Creates record `record` of document `id` holding `value`, in one Automerge change with the
    /// other records this write creates in that document, made when the write ends or before
    /// anything else reads or changes the document. The caller projects the record itself, at
    /// once. A busy WhatsApp number creates thousands of messages a second, a few dozen per
    /// messages document in one batch: one change for them all instead of one each saves
    /// committing, storing and syncing every change (see docs/PERFORMANCE.md, session 37).
    pub fn create_later(&mut self, id: &DocId, record: &str, value: automerge::hydrate::Value) -> Result<()> {
        self.touch(id)?;
        match self.later.iter_mut().find(|(d, _)| d == id) {
            Some((_, list)) => list.push((record.to_string(), value)),
            None => self.later.push((id.clone(), vec![(record.to_string(), value)])),
        }
        note_search(&mut self.searched, id, record);
        Ok(())
    }

    /// Makes the change holding the records waiting to be created in `id`.
    fn create_now(&mut self, id: &DocId) -> Result<()> {
        let Some(i) = self.later.iter().position(|(d, _)| d == id) else { return Ok(()) };
        let (_, list) = self.later.swap_remove(i);
        let now = self.now();
        let d = self.docs.get_mut(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
        let recs = doc::records_obj(d)?;
        let mut tx = d.transaction();
        for (record, value) in &list {
            if let Err(e) = tx.batch_create_object(&recs, record.as_str(), value, false) {
                tx.rollback();
                return Err(e.into());
            }
        }
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now / 1000));
        if let Some(h) = hash {
            self.local.push((id.clone(), h));
        }
        Ok(())
    }

    /// Re-projects what changed in `id` since `before` (remote changes). The changes listed for
    /// it are kept for [`Self::finish`] when they are all this write brought to the document.
    /// `received`: the changes new since `before`, as the sync message that brought them carried
    /// them (None: Automerge is asked for them).
    fn project_since(
        &mut self,
        id: &DocId,
        before: &[ChangeHash],
        received: Option<Vec<automerge::Change>>,
    ) -> Result<()> {
        let d = self.docs.get(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
        if doc::at_genesis(id.scope()?.collection, before) {
            // New here: every record is new (stored as one snapshot by `finish`).
            for r in doc::record_ids(d)? {
                projection::project_record(self.conn, id, d, &r)?;
                note_search(&mut self.searched, id, &r);
            }
            return Ok(());
        }
        let changes = match received {
            Some(c) => c,
            None => d.get_changes(before),
        };
        let records = match projection::records_in_changes(d, &changes) {
            Some(r) => r,
            None => projection::touched_records(d, before),
        };
        for r in &records {
            projection::project_record(self.conn, id, d, r)?;
            note_search(&mut self.searched, id, r);
        }
        let first = self.before.iter().find(|(doc, _)| doc == id).map(|(_, h)| h.as_slice());
        if first == Some(before) {
            self.listed.insert(id.clone(), (d.get_heads(), changes));
        } else {
            self.listed.remove(id);
        }
        Ok(())
    }

    /// Makes sure a record exists, created deterministically (see [`doc::ensure_record`]).
    pub fn ensure_record(
        &mut self,
        id: &DocId,
        record: &str,
        init: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<()>,
    ) -> Result<ObjId> {
        let key = format!("record:{}:{record}", id.scope()?.collection.as_str());
        self.ensure_record_keyed(id, record, &key, init)
    }

    /// [`Self::ensure_record`] with the first change's actor derived from `actor_key` (see
    /// [`doc::ensure_record_keyed`]).
    pub fn ensure_record_keyed(
        &mut self,
        id: &DocId,
        record: &str,
        actor_key: &str,
        init: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<()>,
    ) -> Result<ObjId> {
        self.touch(id)?;
        let collection = id.scope()?.collection;
        let obj = doc::ensure_record_keyed(self.load(id)?, collection, record, actor_key, init)?;
        self.remote.insert(id.clone());
        let d = self.docs.get(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
        projection::project_record(self.conn, id, d, record)?;
        note_search(&mut self.searched, id, record);
        Ok(obj)
    }

    /// Applies changes that came from another replica (concatenated change bytes, as from
    /// `save_after`); returns how many were new.
    pub fn apply_remote(&mut self, id: &DocId, bytes: &[u8]) -> Result<usize> {
        self.touch(id)?;
        self.remote.insert(id.clone());
        let before = self.load(id)?.get_heads();
        let d = self.load(id)?;
        d.load_incremental(bytes)?;
        let waiting = !d.get_missing_deps(&[]).is_empty();
        let n = d.get_changes_meta(&before).len();
        if waiting {
            // Automerge holds these until their dependencies arrive; keep them durably meanwhile
            // (and make sure the document is known, so loading it replays them).
            let scope = id.scope()?;
            self.conn
                .prepare_cached(
                    "INSERT INTO documents(doc_id, shop_id, collection, branch_id, snapshot, change_count, updated_at)
                     VALUES (?1, ?2, ?3, ?4, NULL, 0, ?5) ON CONFLICT(doc_id) DO NOTHING",
                )?
                .execute(params![
                    id.as_str(),
                    scope.shop_id,
                    scope.collection.as_str(),
                    scope.branch_id,
                    self.clock.now_ms()
                ])?;
            self.conn
                .prepare_cached("INSERT INTO pending_changes(doc_id, bytes) VALUES (?1, ?2)")?
                .execute(params![id.as_str(), bytes])?;
        } else {
            // Everything received is applied now (and saved as changes by `finish`).
            self.conn.prepare_cached("DELETE FROM pending_changes WHERE doc_id = ?1")?.execute([id.as_str()])?;
        }
        if n > 0 {
            self.project_since(id, &before, None)?;
        }
        Ok(n)
    }

    /// Runs `f` on a document mutably (sync protocol receive), then projects what changed.
    pub fn with_doc_mut<R>(&mut self, id: &DocId, f: impl FnOnce(&mut Automerge) -> Result<R>) -> Result<R> {
        self.touch(id)?;
        self.remote.insert(id.clone());
        let d = self.load(id)?;
        let before = d.get_heads();
        let r = f(d)?;
        if d.get_heads() != before {
            self.project_since(id, &before, None)?;
        }
        Ok(r)
    }

    /// Receives an Automerge sync message for document `id` and projects what changed; returns
    /// how many changes were new.
    pub fn receive_sync(
        &mut self,
        id: &DocId,
        state: &mut automerge::sync::State,
        message: automerge::sync::Message,
    ) -> Result<usize> {
        self.receive_sync_prepared(id, state, message, None)
    }

    /// [`Self::receive_sync`] with `prepared`: the document this replica only held the genesis of,
    /// with the message's changes already applied on another thread (see
    /// [`crate::Replica::prepare_sync`]). When the document here is still at its genesis and the
    /// prepared one holds everything the message names, the prepared document takes its place and
    /// the message is received without its changes; the sync state ends up exactly as if they had
    /// been applied here. Otherwise the message is applied here.
    pub fn receive_sync_prepared(
        &mut self,
        id: &DocId,
        state: &mut automerge::sync::State,
        mut message: automerge::sync::Message,
        prepared: Option<crate::sync::Prepared>,
    ) -> Result<usize> {
        use automerge::sync::SyncDoc;
        self.touch(id)?;
        self.remote.insert(id.clone());
        let collection = id.scope()?.collection;
        let before = self.load(id)?.get_heads();
        let fresh = doc::at_genesis(collection, &before);
        let usable = prepared.filter(|p| {
            fresh
                && !message.changes.is_empty()
                && !state.read_only
                && message.heads.iter().all(|h| p.doc.get_change_by_hash(h).is_some())
        });
        if let Some(crate::sync::Prepared { mut doc, snapshot }) = usable {
            self.saved.insert(id.clone(), (doc.get_heads(), snapshot));
            doc.set_actor(self.actor.clone());
            let d = self.docs.get_mut(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
            *d = doc;
            // Automerge records the sender's heads as "last sent" only for a message without
            // changes (this one had changes): keep what it was.
            message.changes = automerge::sync::ChunkList::from(Vec::<Vec<u8>>::new());
            let last_sent = state.last_sent_heads.clone();
            d.receive_sync_message(state, message)?;
            state.last_sent_heads = last_sent;
            let n = self.load(id)?.get_changes_meta(&before).len();
            if n > 0 {
                self.project_since(id, &before, None)?;
            }
            return Ok(n);
        }
        // The new changes, each parsed once (see `sync::receive_listing_new`).
        let received = crate::sync::receive_listing_new(self.load(id)?, state, message)?.filter(|r| !r.is_empty());
        let n = match &received {
            Some(r) => r.len(),
            None => crate::sync::new_changes(self.load(id)?, &before).len(),
        };
        if n > 0 {
            self.project_since(id, &before, received)?;
        }
        Ok(n)
    }

    /// Next value of a local sequence (order numbers); rolled back with the write if it fails.
    pub fn next_seq(&self, name: &str) -> Result<i64> {
        let v: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO sequences(name, value) VALUES (?1, 1)
                 ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            )?
            .query_row([name], |r| r.get(0))?;
        Ok(v)
    }

    /// Persists the changes of this write (the projection was updated as it went).
    fn finish(&mut self) -> Result<()> {
        while let Some((id, _)) = self.later.first() {
            let id = id.clone();
            self.create_now(&id)?;
        }
        let now = self.now();
        // `before` stays filled until everything is saved: if saving fails, `abandon` must still
        // know which documents to drop from memory.
        for (id, heads) in &self.before {
            let scope = id.scope()?;
            let d = self.docs.get(id).ok_or_else(|| CoreError::Storage("document cache".into()))?;
            // A document received whole (an initial sync) is stored as one snapshot rather than
            // change by change: far less to write, nothing to compact later, and no need to list
            // its changes at all.
            let fresh = doc::at_genesis(scope.collection, heads);
            if self.remote.contains(id) && fresh {
                let current = d.get_heads();
                if current.as_slice() == heads.as_slice() {
                    continue;
                }
                // The snapshot made beside the writer, if it still holds what the document holds.
                let snapshot = match self.saved.remove(id) {
                    Some((at, bytes)) if at == current => bytes,
                    _ => d.save(),
                };
                self.conn
                    .prepare_cached(
                        "INSERT INTO documents(doc_id, shop_id, collection, branch_id, snapshot, change_count, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
                         ON CONFLICT(doc_id) DO UPDATE SET snapshot = excluded.snapshot, change_count = 0,
                                                           updated_at = excluded.updated_at",
                    )?
                    .execute(params![id.as_str(), scope.shop_id, scope.collection.as_str(), scope.branch_id, snapshot, now])?;
                self.conn.prepare_cached("DELETE FROM doc_changes WHERE doc_id = ?1")?.execute([id.as_str()])?;
                self.batch_docs.insert(id.clone());
                continue;
            }
            let changes: Vec<automerge::Change> = if self.remote.contains(id) {
                match self.listed.remove(id) {
                    Some((at, changes)) if at == d.get_heads() => changes,
                    _ => d.get_changes(heads),
                }
            } else {
                self.local.iter().filter(|(doc, _)| doc == id).filter_map(|(_, h)| d.get_change_by_hash(h)).collect()
            };
            if changes.is_empty() {
                continue;
            }
            // One statement registers the document and counts its changes; the change log's
            // sequence numbers continue from the count (compaction resets both together).
            let n = changes.len() as i64;
            let count: i64 = self
                .conn
                .prepare_cached(
                    "INSERT INTO documents(doc_id, shop_id, collection, branch_id, snapshot, change_count, updated_at)
                     VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)
                     ON CONFLICT(doc_id) DO UPDATE SET updated_at = excluded.updated_at,
                                                       change_count = change_count + excluded.change_count
                     RETURNING change_count",
                )?
                .query_row(
                    params![id.as_str(), scope.shop_id, scope.collection.as_str(), scope.branch_id, n, now],
                    |r| r.get(0),
                )?;
            let mut ins = self.conn.prepare_cached(
                // Only changes new to the document reach here (`get_changes` since the heads
                // before the write), so there are no duplicates to guard against.
                "INSERT INTO doc_changes(doc_id, seq, hash, bytes) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (k, c) in changes.iter().enumerate() {
                ins.execute(params![id.as_str(), count - n + 1 + k as i64, c.hash().0.as_slice(), c.raw_bytes()])?;
            }
            self.batch_docs.insert(id.clone());
        }
        self.before.clear();
        self.local.clear();
        self.remote.clear();
        self.saved.clear();
        self.listed.clear();
        Ok(())
    }

    fn abandon(&mut self) {
        for (id, _) in self.before.drain(..) {
            self.docs.remove(&id);
        }
        self.later.clear();
        self.local.clear();
        self.remote.clear();
        self.saved.clear();
        self.listed.clear();
    }
}

/// The heads of each document the writer holds, as last committed (readers use it instead of
/// loading a document to learn its heads).
#[derive(Clone, Default)]
pub(crate) struct HeadsCache(Arc<std::sync::RwLock<HashMap<DocId, Vec<ChangeHash>>>>);

impl HeadsCache {
    pub(crate) fn get(&self, id: &DocId) -> Option<Vec<ChangeHash>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn set<'a>(&self, docs: impl Iterator<Item = (&'a DocId, &'a Automerge)>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        for (id, d) in docs {
            m.insert(id.clone(), d.get_heads());
        }
    }

    fn forget<'a>(&self, ids: impl Iterator<Item = &'a DocId>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            m.remove(id);
        }
    }
}

/// The writer thread's state.
pub(crate) struct WriterThread {
    pub(crate) conn: Connection,
    pub(crate) device: Device,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rx: mpsc::Receiver<Job>,
    pub(crate) depth: Arc<AtomicUsize>,
    /// Told the documents each committed batch changed (sync, live updates).
    pub(crate) changed: tokio::sync::broadcast::Sender<Arc<[DocId]>>,
    pub(crate) heads: HeadsCache,
    /// The search index's feed, once there is an index: the searchable records each committed
    /// batch projected.
    pub(crate) search: FeedSlot,
    /// Whether this replica has (or may open) a search index: batches note their searchable
    /// records.
    pub(crate) searched: bool,
}

/// Where the writer finds the search index's feed. Empty until an index opened on demand
/// ([`crate::OpenOptions::search_on_demand`]) is there, and again once the replica shuts down (so
/// the indexer sees its feed end).
pub(crate) type FeedSlot = Arc<std::sync::Mutex<Option<crate::search::Feeder>>>;

fn feeder(slot: &FeedSlot) -> Option<crate::search::Feeder> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl WriterThread {
    pub(crate) fn run(self) {
        let mut docs: HashMap<DocId, Automerge> = HashMap::new();
        let actor = ActorId::from(self.device.actor.as_slice());
        // Documents to load while idle, so the first write to each does not pay for loading it.
        let mut warm: Vec<DocId> = all_doc_ids(&self.conn).unwrap_or_default();
        let warm_started = std::time::Instant::now();
        let warm_total = warm.len();
        loop {
            let first = match self.rx.try_recv() {
                Ok(j) => j,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    if let Some(id) = warm.pop() {
                        self.warm(&mut docs, &actor, id);
                        if warm.is_empty() {
                            tracing::info!(
                                documents = warm_total,
                                seconds = warm_started.elapsed().as_secs_f64(),
                                "documents preloaded"
                            );
                        }
                        continue;
                    }
                    match self.rx.recv() {
                        Ok(j) => j,
                        Err(_) => break,
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
            let started = std::time::Instant::now();
            let n = batch.len();
            // The same feed marks both edges of a batch, even if an index opens meanwhile.
            let feed = feeder(&self.search);
            if let Some(feed) = &feed {
                feed.batch_edge();
            }
            self.run_batch(&mut docs, &actor, batch);
            if let Some(feed) = &feed {
                feed.batch_edge();
            }
            metrics::histogram!("dashoffice_write_batch_seconds").record(started.elapsed().as_secs_f64());
            metrics::counter!("dashoffice_writes_total").increment(n as u64);
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        tracing::info!("writer stopped");
    }

    fn warm(&self, docs: &mut HashMap<DocId, Automerge>, actor: &ActorId, id: DocId) {
        if docs.contains_key(&id) {
            return;
        }
        let Ok(scope) = id.scope() else { return };
        match doc::load(&self.conn, &id, scope.collection) {
            Ok(Some(mut d)) => {
                d.set_actor(actor.clone());
                self.heads.set(std::iter::once((&id, &d)));
                docs.insert(id, d);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(doc = %id, error = %e, "could not preload a document"),
        }
    }

    fn run_batch(&self, docs: &mut HashMap<DocId, Automerge>, actor: &ActorId, batch: Vec<Job>) {
        let mut replies: Vec<(Reply, Option<CoreError>)> = Vec::with_capacity(batch.len());
        let mut batch_docs: HashSet<DocId> = HashSet::new();
        let mut searched: Vec<(crate::search::Kind, String)> = Vec::new();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing runs outside a transaction: every write of the batch is refused.
            let msg = e.to_string();
            for job in batch {
                let (_, reply) = job(None);
                replies.push((reply, Some(CoreError::Storage(msg.clone()))));
            }
            deliver(replies);
            return;
        }
        // Set when a savepoint could not be opened or undone: the whole batch must be rolled back.
        let mut broken: Option<String> = None;
        // A write alone in its batch needs no savepoint: if it fails, the transaction is rolled
        // back. (A savepoint makes SQLite copy every page the write touches into a statement
        // journal, a fair part of a sync step's cost.)
        let alone = batch.len() == 1;
        for job in batch {
            if let Some(msg) = &broken {
                let (_, reply) = job(None);
                replies.push((reply, Some(CoreError::Storage(msg.clone()))));
                continue;
            }
            if !alone && let Err(e) = self.conn.prepare_cached("SAVEPOINT job").and_then(|mut st| st.execute([])) {
                broken = Some(e.to_string());
                let (_, reply) = job(None);
                replies.push((reply, Some(CoreError::from(e))));
                continue;
            }
            let search = self.searched.then_some(&mut searched);
            let mut ctx = self.ctx(docs, actor, &mut batch_docs, search);
            let (ok, reply) = job(Some(&mut ctx));
            let outcome = if ok { ctx.finish().err() } else { None };
            let failed = !ok || outcome.is_some();
            if failed {
                // Undo this write only: its SQL, and its in-memory document changes (reloaded later).
                ctx.abandon();
            }
            if failed && alone {
                if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "rolling back a failed write failed");
                }
                self.heads.forget(batch_docs.iter());
                deliver(vec![(reply, outcome)]);
                return;
            }
            if failed {
                if let Err(e) = self.conn.execute_batch("ROLLBACK TO job; RELEASE job") {
                    broken = Some(e.to_string());
                }
            } else if !alone && let Err(e) = self.conn.prepare_cached("RELEASE job").and_then(|mut st| st.execute([])) {
                broken = Some(e.to_string());
            }
            replies.push((reply, outcome));
        }
        if let Some(msg) = broken {
            tracing::error!(error = %msg, "a savepoint failed; the batch is rolled back");
            let _ = self.conn.execute_batch("ROLLBACK");
            for id in &batch_docs {
                docs.remove(id);
            }
            self.heads.forget(batch_docs.iter());
            deliver(
                replies
                    .into_iter()
                    .map(|(r, o)| (r, Some(o.unwrap_or_else(|| CoreError::Storage(msg.clone())))))
                    .collect(),
            );
            return;
        }
        let compacted = self.compact(docs, &batch_docs);
        match compacted.and_then(|_| self.conn.execute_batch("COMMIT").map_err(CoreError::from)) {
            Ok(()) => {
                self.heads.set(batch_docs.iter().filter_map(|id| docs.get(id).map(|d| (id, d))));
                // Dropped from memory by a failed write after others in this batch changed it.
                self.heads.forget(batch_docs.iter().filter(|id| !docs.contains_key(*id)));
                if !batch_docs.is_empty() {
                    // Nobody listening is fine.
                    let _ = self.changed.send(batch_docs.into_iter().collect());
                }
                // Looked up after the commit: an index that opens after this point reads it.
                if !searched.is_empty()
                    && let Some(feed) = feeder(&self.search)
                {
                    feed.send(crate::search::Feed::Records(searched));
                }
                deliver(replies)
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is not acknowledged");
                let _ = self.conn.execute_batch("ROLLBACK");
                for id in &batch_docs {
                    docs.remove(id);
                }
                self.heads.forget(batch_docs.iter());
                let msg = e.to_string();
                deliver(
                    replies
                        .into_iter()
                        .map(|(r, o)| (r, Some(o.unwrap_or_else(|| CoreError::Storage(msg.clone())))))
                        .collect(),
                );
            }
        }
    }

    fn ctx<'a>(
        &'a self,
        docs: &'a mut HashMap<DocId, Automerge>,
        actor: &ActorId,
        batch_docs: &'a mut HashSet<DocId>,
        searched: Option<&'a mut Vec<(crate::search::Kind, String)>>,
    ) -> WriteCtx<'a> {
        WriteCtx {
            conn: &self.conn,
            docs,
            device: &self.device,
            actor: actor.clone(),
            clock: self.clock.as_ref(),
            before: Vec::new(),
            local: Vec::new(),
            remote: HashSet::new(),
            batch_docs,
            saved: HashMap::new(),
            listed: HashMap::new(),
            searched,
            later: Vec::new(),
        }
    }

    /// Folds long change logs into a snapshot, in the same transaction.
    fn compact(&self, docs: &HashMap<DocId, Automerge>, ids: &HashSet<DocId>) -> Result<()> {
        for id in ids {
            let count: Option<i64> = self
                .conn
                .prepare_cached("SELECT change_count FROM documents WHERE doc_id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            if count.unwrap_or(0) < COMPACT_AFTER {
                continue;
            }
            if let Some(d) = docs.get(id) {
                let bytes = d.save();
                self.conn
                    .prepare_cached("UPDATE documents SET snapshot = ?2, change_count = 0 WHERE doc_id = ?1")?
                    .execute(params![id.as_str(), bytes])?;
                self.conn.prepare_cached("DELETE FROM doc_changes WHERE doc_id = ?1")?.execute([id.as_str()])?;
            }
        }
        Ok(())
    }
}

fn deliver(replies: Vec<(Reply, Option<CoreError>)>) {
    for (reply, outcome) in replies {
        reply(outcome);
    }
}

/// Reads every document of the store, in id order (reindex, sync).
pub(crate) fn all_doc_ids(conn: &Connection) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare("SELECT doc_id FROM documents ORDER BY doc_id")?;
    let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    ids.into_iter().map(|s| DocId::parse(&s)).collect::<Result<Vec<_>>>()
}
