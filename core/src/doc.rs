//! Automerge documents: how ids map to documents, the deterministic genesis every replica shares,
//! deterministic schema migrations and record creation, and small field readers.
//!
//! Layout of every document: `{ collection: str, schema: uint, records: { <record id>: { ... } } }`.
//! Granularity (see docs/ARCHITECTURE.md): shop-wide collections are split into 1,024 shards by a hash
//! of the record id; branch collections carry the branch id in the document id, so a replica of one
//! branch never needs another branch's documents; orders are bucketed by month so old documents go
//! cold instead of growing forever.

use automerge::{
    ActorId, Automerge, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value,
    transaction::{CommitOptions, Transactable, Transaction},
};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// Number of shards of the shop-wide sharded collections (products, customers) and of stock.
pub const SHARDS: u16 = 1024;

/// The kind of records a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// The shop and its branches (one document per shop).
    Org,
    /// Staff accounts (one document per shop).
    Staff,
    /// The catalog (1,024 shards).
    Products,
    /// Customers (1,024 shards).
    Customers,
    /// Stock counters of one branch (1,024 shards).
    Stock,
    /// Orders of one branch (one document per month).
    Orders,
    /// WhatsApp conversations of one branch (1,024 shards).
    Conversations,
    /// WhatsApp messages of one branch (64 shards by conversation per month).
    Messages,
    /// The shop's bots, canned responses, templates and shifts (one document per shop).
    Inbox,
    /// A WhatsApp media file of one branch (one immutable document per file, by SHA-256).
    Attachments,
    /// Staff password hashes (one document per shop), apart from the accounts so that the relay
    /// can keep them from clients that never log anyone in (browsers and scripts over `/sync`).
    Credentials,
    /// Support tickets and their comments (1,024 shards).
    Tickets,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 12] = [
        Self::Org,
        Self::Staff,
        Self::Products,
        Self::Customers,
        Self::Stock,
        Self::Orders,
        Self::Conversations,
        Self::Messages,
        Self::Inbox,
        Self::Attachments,
        Self::Credentials,
        Self::Tickets,
    ];

    /// The name used in document ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Staff => "staff",
            Self::Products => "products",
            Self::Customers => "customers",
            Self::Stock => "stock",
            Self::Orders => "orders",
            Self::Conversations => "conversations",
            Self::Messages => "messages",
            Self::Inbox => "inbox",
            Self::Attachments => "attachments",
            Self::Credentials => "credentials",
            Self::Tickets => "tickets",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the documents of this collection belong to one branch.
    pub fn branch_scoped(self) -> bool {
        matches!(self, Self::Stock | Self::Orders | Self::Conversations | Self::Messages | Self::Attachments)
    }
}

/// A document id: `{shop}/{collection}/{part}` or `{shop}/{collection}/{branch}/{part}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

/// The parts of a document id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocScope {
    /// The shop.
    pub shop_id: String,
    /// The collection.
    pub collection: Collection,
    /// The branch, for branch-scoped collections.
    pub branch_id: Option<String>,
}

/// Shards of a branch's messages of one month.
pub const MESSAGE_SHARDS: u16 = 64;

fn shard_of(record_id: &str) -> String {
    format!("{:03x}", shard_index(record_id, SHARDS))
}

fn shard_index(record_id: &str, shards: u16) -> u16 {
    let h = Sha256::digest(record_id.as_bytes());
    u16::from_be_bytes([h[0], h[1]]) % shards
}

impl DocId {
    /// The shop's org document.
    pub fn org(shop: &str) -> Self {
        Self(format!("{shop}/org/0"))
    }
    /// The shop's staff document.
    pub fn staff(shop: &str) -> Self {
        Self(format!("{shop}/staff/0"))
    }
    /// The catalog shard holding `product_id`.
    pub fn products(shop: &str, product_id: &str) -> Self {
        Self(format!("{shop}/products/{}", shard_of(product_id)))
    }
    /// The customer shard holding `customer_id`.
    pub fn customers(shop: &str, customer_id: &str) -> Self {
        Self(format!("{shop}/customers/{}", shard_of(customer_id)))
    }
    /// The stock shard of `branch` holding `product_id`.
    pub fn stock(shop: &str, branch: &str, product_id: &str) -> Self {
        Self(format!("{shop}/stock/{branch}/{}", shard_of(product_id)))
    }
    /// The orders of `branch` created in the month `yyyymm`.
    pub fn orders(shop: &str, branch: &str, yyyymm: &str) -> Self {
        Self(format!("{shop}/orders/{branch}/{yyyymm}"))
    }
    /// The conversation shard of `branch` holding `conversation_id`.
    pub fn conversations(shop: &str, branch: &str, conversation_id: &str) -> Self {
        Self(format!("{shop}/conversations/{branch}/{}", shard_of(conversation_id)))
    }
    /// The messages of `branch` sent or received in the month `yyyymm` in the conversations of
    /// the shard holding `conversation_id` (one of [`MESSAGE_SHARDS`]): a thread's messages of a
    /// month sit together, and no document grows with the whole branch's traffic (each change
    /// to an Automerge document costs more the more operations it holds). Documents of the
    /// first layout, one per branch and month (`…/messages/<branch>/<yyyymm>`), stay valid.
    pub fn messages(shop: &str, branch: &str, yyyymm: &str, conversation_id: &str) -> Self {
        Self(format!("{shop}/messages/{branch}/{yyyymm}-{:02x}", shard_index(conversation_id, MESSAGE_SHARDS)))
    }
    /// The media file with SHA-256 `sha256` (hex) received in `branch`.
    pub fn attachment(shop: &str, branch: &str, sha256: &str) -> Self {
        Self(format!("{shop}/attachments/{branch}/{sha256}"))
    }
    /// The shop's staff password hashes.
    pub fn credentials(shop: &str) -> Self {
        Self(format!("{shop}/credentials/0"))
    }
    /// The ticket shard holding `ticket_id`.
    pub fn tickets(shop: &str, ticket_id: &str) -> Self {
        Self(format!("{shop}/tickets/{}", shard_of(ticket_id)))
    }
    /// The shop's inbox settings document.
    pub fn inbox(shop: &str) -> Self {
        Self(format!("{shop}/inbox/0"))
    }
    /// Parses and checks an id received from elsewhere.
    pub fn parse(s: &str) -> Result<Self> {
        let id = Self(s.to_string());
        id.scope()?;
        Ok(id)
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// What the id says about the document.
    pub fn scope(&self) -> Result<DocScope> {
        let bad = || CoreError::Storage(format!("malformed document id '{}'", self.0));
        let parts: Vec<&str> = self.0.split('/').collect();
        let collection = parts.get(1).and_then(|c| Collection::parse(c)).ok_or_else(bad)?;
        let expect = if collection.branch_scoped() { 4 } else { 3 };
        if parts.len() != expect || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(DocScope {
            shop_id: parts[0].to_string(),
            collection,
            branch_id: collection.branch_scoped().then(|| parts[2].to_string()),
        })
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const GENESIS_ACTOR: &[u8; 16] = b"dashoffice-gen-1";

fn fixed_time() -> CommitOptions {
    CommitOptions::default().with_time(0)
}

/// The first change of every document of `collection`: identical bytes on every replica, so two
/// replicas that create the same document offline share its root objects instead of fighting
/// over them.
pub fn genesis(collection: Collection) -> Automerge {
    genesis_docs()[genesis_index(collection)].clone()
}

/// The heads of [`genesis`] (a document holding nothing else has not been written to).
pub fn genesis_heads(collection: Collection) -> &'static [automerge::ChangeHash] {
    static HEADS: std::sync::OnceLock<Vec<Vec<automerge::ChangeHash>>> = std::sync::OnceLock::new();
    &HEADS.get_or_init(|| genesis_docs().iter().map(|d| d.get_heads()).collect())[genesis_index(collection)]
}

/// Whether `heads` are those of a document never written to here: nothing at all, or only its
/// genesis.
pub fn at_genesis(collection: Collection, heads: &[automerge::ChangeHash]) -> bool {
    heads.is_empty() || genesis_heads(collection) == heads
}

fn genesis_index(collection: Collection) -> usize {
    Collection::ALL.iter().position(|c| *c == collection).unwrap_or(0)
}

/// Built once per process: the writer asks for them for every document it touches.
fn genesis_docs() -> &'static [Automerge] {
    static DOCS: std::sync::OnceLock<Vec<Automerge>> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| Collection::ALL.iter().map(|c| build_genesis(*c)).collect())
}

fn build_genesis(collection: Collection) -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from(GENESIS_ACTOR.as_slice()));
    let mut tx = doc.transaction();
    // Proven invariant: puts on the root of a fresh document cannot fail.
    let _ = tx.put(ROOT, "collection", collection.as_str());
    let _ = tx.put(ROOT, "schema", 1u64);
    let _ = tx.put_object(ROOT, "records", ObjType::Map);
    tx.commit_with(fixed_time());
    doc
}

/// The collection a document says it belongs to.
pub fn collection_of<D: ReadDoc + ?Sized>(doc: &D) -> Option<Collection> {
    match doc.get(ROOT, "collection") {
        Ok(Some((Value::Scalar(s), _))) => s.as_str().and_then(Collection::parse),
        _ => None,
    }
}

/// The `records` map of a document.
pub fn records_obj<D: ReadDoc + ?Sized>(doc: &D) -> Result<ObjId> {
    match doc.get(ROOT, "records")? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(CoreError::Storage("document has no records map".into())),
    }
}

/// The schema version a document is at.
pub fn schema_version<D: ReadDoc + ?Sized>(doc: &D) -> u64 {
    match doc.get(ROOT, "schema") {
        Ok(Some((Value::Scalar(s), _))) => s.as_u64().unwrap_or(1),
        _ => 1,
    }
}

/// A deterministic document schema migration: it may only add structure next to `records` (new
/// containers, defaults), because it is made on top of the genesis state so that every replica
/// produces the very same change. Record-level upgrades are done when reading (missing fields take
/// their defaults), never by rewriting records.
#[derive(Clone, Copy)]
pub struct DocMigration {
    /// The version the document is at afterwards.
    pub to: u64,
    /// The operations; `records` is the records map.
    pub apply: fn(&mut Transaction<'_>, Collection, &ObjId) -> Result<()>,
}

/// The migrations of this build, in order. Version 1 is the genesis; none is needed yet.
pub const DOC_MIGRATIONS: &[DocMigration] = &[];

fn migration_actor(to: u64) -> ActorId {
    let mut a = *b"dashoffice-mig-\0";
    a[15] = u8::try_from(to).unwrap_or(u8::MAX);
    ActorId::from(a.as_slice())
}

/// Brings `doc` up to the last of `migrations`, each as a deterministic change (fixed actor, time 0,
/// based on the genesis plus the previous migrations). Returns whether anything was applied.
pub fn migrate(doc: &mut Automerge, collection: Collection, migrations: &[DocMigration]) -> Result<bool> {
    let current = schema_version(doc);
    let mut base = genesis(collection);
    let mut changed = false;
    for m in migrations {
        base.set_actor(migration_actor(m.to));
        let records = records_obj(&base)?;
        let mut tx = base.transaction();
        (m.apply)(&mut tx, collection, &records)?;
        tx.put(ROOT, "schema", m.to)?;
        tx.commit_with(fixed_time());
        if m.to > current {
            let change =
                base.get_last_local_change().ok_or_else(|| CoreError::Storage("migration made no change".into()))?;
            doc.apply_changes([change])?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Makes sure record `id` exists, creating it with a deterministic change (actor derived from the
/// record id, time 0, on top of the genesis) so that replicas creating the same record offline —
/// the stock counter of one product in one branch — produce one object, not two that hide each
/// other's increments.
pub fn ensure_record(
    doc: &mut Automerge,
    collection: Collection,
    id: &str,
    init: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<()>,
) -> Result<ObjId> {
    ensure_record_keyed(doc, collection, id, &format!("record:{}:{id}", collection.as_str()), init)
}

/// [`ensure_record`] with the actor derived from `actor_key`. Every replica must write exactly the
/// same first change for a key (the same actor at the same sequence number with other content is
/// refused by every peer, for good): a record whose first change's content changes from one
/// version of the code to the next gets a new key, so that the two versions' first changes are
/// two concurrent creations (one object wins) instead of one broken history.
pub fn ensure_record_keyed(
    doc: &mut Automerge,
    collection: Collection,
    id: &str,
    actor_key: &str,
    init: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<()>,
) -> Result<ObjId> {
    let records = records_obj(doc)?;
    if let Some((Value::Object(ObjType::Map), obj)) = doc.get(&records, id)? {
        return Ok(obj);
    }
    let mut base = genesis(collection);
    let h = Sha256::digest(actor_key.as_bytes());
    base.set_actor(ActorId::from(&h[..16]));
    let brecords = records_obj(&base)?;
    let mut tx = base.transaction();
    let obj = tx.put_object(&brecords, id, ObjType::Map)?;
    init(&mut tx, &obj)?;
    tx.commit_with(fixed_time());
    let change = base.get_last_local_change().ok_or_else(|| CoreError::Storage("record init made no change".into()))?;
    doc.apply_changes([change])?;
    match doc.get(&records, id)? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(CoreError::Storage(format!("record '{id}' missing after init"))),
    }
}

/// The map object of record `id`, if present.
pub fn record<D: ReadDoc + ?Sized>(doc: &D, id: &str) -> Result<Option<ObjId>> {
    let records = records_obj(doc)?;
    Ok(match doc.get(&records, id)? {
        Some((Value::Object(ObjType::Map), obj)) => Some(obj),
        _ => None,
    })
}

/// Ids of every record in the document.
pub fn record_ids<D: ReadDoc + ?Sized>(doc: &D) -> Result<Vec<String>> {
    let records = records_obj(doc)?;
    Ok(doc.keys(&records).collect())
}

fn scalar<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => Some(s.into_owned()),
        _ => None,
    }
}

/// Every scalar field of a map, read in one pass (projections read whole records), and the ids
/// of the maps it holds (sets such as tags), so that reading one needs no second lookup.
pub struct Fields {
    scalars: std::collections::BTreeMap<String, ScalarValue>,
    maps: Vec<(String, ObjId)>,
}

/// Reads the scalar fields of `obj`.
/// A text object (what JavaScript clients write for a string) reads as its string, so records
/// edited through automerge-repo read the same as ours.
pub fn fields<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId) -> Fields {
    let mut f = Fields { scalars: std::collections::BTreeMap::new(), maps: Vec::new() };
    for item in doc.map_range(obj, ..) {
        match item.value {
            automerge::ValueRef::Scalar(v) => {
                f.scalars.insert(item.key.into_owned(), ScalarValue::from(v));
            }
            automerge::ValueRef::Object(ObjType::Text) => {
                if let Ok(text) = doc.text(item.id()) {
                    f.scalars.insert(item.key.into_owned(), ScalarValue::Str(text.into()));
                }
            }
            automerge::ValueRef::Object(ObjType::Map) => {
                let id = item.id();
                f.maps.push((item.key.into_owned(), id));
            }
            automerge::ValueRef::Object(_) => {}
        }
    }
    f
}

fn text_field<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Text), id))) => doc.text(&id).ok(),
        _ => None,
    }
}

/// The key under which a record keeps the fields that never change after it is written, as one
/// JSON object (see [`sealed_map`]).
pub const SEALED: &str = "sealed";

/// The keys of a new record holding `fields` (a JSON object of the record's fields that never
/// change once written) as one value under [`SEALED`]: one Automerge operation instead of one per
/// field. Writing a message field by field cost about four times as much (`cargo bench -p
/// dashoffice-tests --bench automerge_floor -- messages`), and nothing is lost in a merge: no one
/// ever changes these fields, so there is never a concurrent edit to resolve per field. Fields
/// that do change (a message's delivery status) stay keys of their own: add them, then create the
/// record with Automerge's `batch_create_object` (the same operations as a map made and filled
/// key by key, inserted in one go).
pub fn sealed_map(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::HashMap<String, automerge::hydrate::Value> {
    let mut m = std::collections::HashMap::new();
    let text = serde_json::Value::Object(fields.clone()).to_string();
    m.insert(SEALED.to_string(), automerge::hydrate::Value::Scalar(automerge::ScalarValue::Str(text.into())));
    m
}

impl Fields {
    /// Fills in the fields sealed under [`SEALED`] that the record does not hold as keys of its
    /// own. Strings, integers and booleans read as themselves; objects and arrays as their JSON
    /// text. A record written field by field (before sealing) reads the same.
    pub fn unseal(mut self) -> Self {
        let Some(sealed) = self.scalars.remove(SEALED) else { return self };
        let Some(text) = sealed.as_str() else { return self };
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else { return self };
        self.absorb(map);
        self
    }

    /// The fields of a record as a write has just made it: its own keys (`own`) and the fields
    /// it sealed (see [`sealed_map`]), read as [`Self::unseal`] reads them back from a document.
    pub fn written(own: &[(&str, ScalarValue)], sealed: &serde_json::Map<String, serde_json::Value>) -> Self {
        let mut f =
            Fields { scalars: own.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect(), maps: Vec::new() };
        f.absorb(sealed.clone());
        f
    }

    /// Adds sealed fields the record does not hold as keys of its own.
    fn absorb(&mut self, map: serde_json::Map<String, serde_json::Value>) {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => ScalarValue::Str(s.into()),
                serde_json::Value::Bool(b) => ScalarValue::Boolean(b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => ScalarValue::Int(i),
                    None => ScalarValue::Str(n.to_string().into()),
                },
                serde_json::Value::Null => continue,
                other => ScalarValue::Str(other.to_string().into()),
            };
            self.scalars.entry(k).or_insert(v);
        }
    }

    /// A string field ("" when absent).
    pub fn str(&self, key: &str) -> String {
        self.scalars.get(key).and_then(|s| s.as_str()).map(str::to_string).unwrap_or_default()
    }
    /// An optional string field (absent or "" give None).
    pub fn opt_str(&self, key: &str) -> Option<String> {
        Some(self.str(key)).filter(|s| !s.is_empty())
    }
    /// An integer or counter field (0 when absent).
    pub fn i64(&self, key: &str) -> i64 {
        self.scalars.get(key).and_then(|s| s.as_i64()).unwrap_or(0)
    }
    /// An optional integer field (None when absent).
    pub fn opt_i64(&self, key: &str) -> Option<i64> {
        self.scalars.get(key).and_then(|s| s.as_i64())
    }
    /// A boolean field.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        self.scalars.get(key).and_then(|s| s.as_bool()).unwrap_or(default)
    }
    /// The keys of a map used as a set (tags), sorted, as [`get_set`] reads them.
    pub fn set<D: ReadDoc + ?Sized>(&self, doc: &D, key: &str) -> Vec<String> {
        let mut v: Vec<String> =
            self.maps.iter().find(|(k, _)| k == key).map(|(_, o)| doc.keys(o).collect()).unwrap_or_default();
        v.sort();
        v
    }
}

/// A string field ("" when absent).
pub fn get_str<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> String {
    scalar(doc, obj, key)
        .and_then(|s| s.as_str().map(str::to_string))
        .or_else(|| text_field(doc, obj, key))
        .unwrap_or_default()
}

/// An optional string field (absent, null or "" give None).
pub fn get_opt_str<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> Option<String> {
    Some(get_str(doc, obj, key)).filter(|s| !s.is_empty())
}

/// An integer or counter field (0 when absent).
pub fn get_i64<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> i64 {
    scalar(doc, obj, key).and_then(|s| s.as_i64()).unwrap_or(0)
}

/// A boolean field.
pub fn get_bool<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str, default: bool) -> bool {
    scalar(doc, obj, key).and_then(|s| s.as_bool()).unwrap_or(default)
}

/// A nested object.
pub fn get_obj<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    }
}

/// The keys of a map used as a set (tags), sorted.
pub fn get_set<D: ReadDoc + ?Sized>(doc: &D, obj: &ObjId, key: &str) -> Vec<String> {
    let mut v: Vec<String> = get_obj(doc, obj, key).map(|o| doc.keys(&o).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Replaces a set field with `values`: removes what is gone, adds what is new, so concurrent
/// additions on other replicas survive.
pub fn set_set(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, values: &[String]) -> Result<()> {
    let set = match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(obj, key, ObjType::Map)?,
    };
    let existing: Vec<String> = tx.keys(&set).collect();
    for k in existing.iter().filter(|k| !values.contains(k)) {
        tx.delete(&set, k.as_str())?;
    }
    for v in values.iter().filter(|v| !existing.contains(v)) {
        tx.put(&set, v.as_str(), true)?;
    }
    Ok(())
}

/// Loads a document's snapshot and later changes from the store; None if it was never stored.
pub fn load(conn: &rusqlite::Connection, id: &DocId, collection: Collection) -> Result<Option<Automerge>> {
    let snapshot: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT snapshot FROM documents WHERE doc_id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let Some(snapshot) = snapshot else {
        return Ok(None);
    };
    let mut doc = match snapshot {
        Some(bytes) => Automerge::load(&bytes)?,
        None => genesis(collection),
    };
    let mut stmt = conn.prepare_cached("SELECT bytes FROM doc_changes WHERE doc_id = ?1 ORDER BY seq")?;
    let changes = stmt
        .query_map([id.as_str()], |r| r.get::<_, Vec<u8>>(0))?
        .map(|b| {
            let b = b?;
            Change::from_bytes(b).map_err(|e| CoreError::Storage(format!("corrupt change in {id}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    doc.apply_changes(changes)?;
    let mut stmt = conn.prepare_cached("SELECT bytes FROM pending_changes WHERE doc_id = ?1 ORDER BY id")?;
    for bytes in stmt.query_map([id.as_str()], |r| r.get::<_, Vec<u8>>(0))? {
        doc.load_incremental(&bytes?)?;
    }
    Ok(Some(doc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_identical_everywhere() {
        let a = genesis(Collection::Products);
        let b = genesis(Collection::Products);
        assert_eq!(a.get_heads(), b.get_heads());
        assert_ne!(a.get_heads(), genesis(Collection::Orders).get_heads());
        for c in Collection::ALL {
            assert_eq!(genesis(c).get_heads(), build_genesis(c).get_heads());
            assert_eq!(genesis_heads(c), build_genesis(c).get_heads().as_slice());
            assert_eq!(collection_of(&genesis(c)), Some(c));
        }
    }

    #[test]
    fn doc_ids_parse() {
        let id = DocId::stock("s1", "b1", "p1");
        let scope = id.scope().unwrap();
        assert_eq!(scope.collection, Collection::Stock);
        assert_eq!(scope.branch_id.as_deref(), Some("b1"));
        assert!(DocId::parse("s1/orders/x").is_err());
        assert!(DocId::parse("s1/nope/0").is_err());
        assert!(DocId::parse("s1/products/0a").is_ok());
    }

    #[test]
    fn messages_are_sharded_by_conversation_and_the_first_layout_still_parses() {
        let a = DocId::messages("s1", "b1", "202611", "conv-1");
        assert_eq!(a, DocId::messages("s1", "b1", "202611", "conv-1"));
        assert!(a.as_str().starts_with("s1/messages/b1/202611-"), "{a}");
        let scope = a.scope().unwrap();
        assert_eq!((scope.collection, scope.branch_id.as_deref()), (Collection::Messages, Some("b1")));
        let shards: std::collections::HashSet<DocId> =
            (0..2000).map(|i| DocId::messages("s1", "b1", "202611", &format!("c{i}"))).collect();
        assert_eq!(shards.len(), usize::from(MESSAGE_SHARDS));
        assert!(DocId::parse("s1/messages/b1/202611").is_ok(), "documents of the first layout");
    }

    #[test]
    fn a_sealed_record_reads_like_one_written_field_by_field() {
        let mut d = genesis(Collection::Messages);
        let recs = records_obj(&d).unwrap();
        let mut tx = d.transaction();
        // Before sealing: every field a key of its own.
        let old = tx.put_object(&recs, "m-old", ObjType::Map).unwrap();
        tx.put(&old, "text", "¿Cuánto cuesta?").unwrap();
        tx.put(&old, "payload", r#"{"a":1}"#).unwrap();
        tx.put(&old, "at", 42_i64).unwrap();
        tx.put(&old, "status", "read").unwrap();
        // Sealed: the same fields as one value; a key of its own (written later) wins.
        let sealed = serde_json::json!({ "text": "¿Cuánto cuesta?", "payload": "{}", "at": 42, "status": "sent" });
        let map = automerge::hydrate::Value::Map(sealed_map(sealed.as_object().unwrap()).into());
        let new = tx.batch_create_object(&recs, "m-new", &map, false).unwrap();
        tx.put(&new, "status", "read").unwrap();
        tx.put(&new, "payload", r#"{"a":1}"#).unwrap();
        tx.commit();
        let (a, b) = (fields(&d, &old).unseal(), fields(&d, &new).unseal());
        for key in ["text", "payload", "status", "missing"] {
            assert_eq!(a.str(key), b.str(key), "{key}");
        }
        assert_eq!((a.i64("at"), b.i64("at")), (42, 42));
        assert_eq!(b.opt_str(SEALED), None, "the sealed value itself is not a field");
    }
}
