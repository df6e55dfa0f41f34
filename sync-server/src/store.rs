//! The relay's storage, behind a narrow trait: documents as their change logs (after a snapshot
//! for documents that earlier relays folded into one), the sync state of each device per
//! document, devices and enrolment codes. SQLite is the embedded default; a PostgreSQL backend
//! implements the same trait without touching the sync logic.
//!
//! Every method is a short blocking call; the hub calls them from blocking threads and batches
//! appends (group commit), so one `append` call is one durable transaction.

use std::{collections::HashMap, path::Path, sync::Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("storage: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.to_string())
    }
}

/// Result of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// New changes of one document.
#[derive(Debug, Clone)]
pub struct Append {
    /// DashOffice document id.
    pub doc_id: String,
    /// Its automerge-repo id.
    pub repo_id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its branch (branch-scoped collections).
    pub branch_id: Option<String>,
    /// Raw bytes of each new change.
    pub changes: Vec<Vec<u8>>,
    /// The document's heads after them (32 bytes each).
    pub heads: Vec<u8>,
    /// Unix ms.
    pub now: i64,
}

/// An enrolled device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its shop.
    pub shop_id: String,
    /// Its branch; `None` sees the whole shop (head office).
    pub branch_id: Option<String>,
    /// A name given at enrolment.
    pub name: String,
    /// The SHA-256 of its certificate (QUIC devices).
    pub cert_fingerprint: Option<String>,
    /// When it enrolled (Unix ms).
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it last connected.
    pub last_seen_at: Option<i64>,
}

/// A one-time enrolment code, as stored (only its hash).
#[derive(Debug, Clone)]
pub struct NewCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The shop the device will join.
    pub shop_id: String,
    /// The branch it will serve (`None`: the whole shop).
    pub branch_id: Option<String>,
    /// What the code is for.
    pub note: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}

/// How a redeemed code identifies the new device.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A QUIC device's certificate fingerprint.
    Certificate(String),
    /// The SHA-256 of a bearer token (WebSocket devices).
    TokenHash(Vec<u8>),
}

/// Why a code could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemError {
    /// No such code (or it was never issued).
    Unknown,
    /// Already used.
    Used,
    /// Past its expiry.
    Expired,
}

/// The relay's storage.
pub trait RelayStore: Send + Sync + 'static {
    /// The stored chunks of a document (snapshot first, then changes in order), or `None`.
    fn load_doc(&self, doc_id: &str) -> StoreResult<Option<Vec<Vec<u8>>>>;
    /// Stores new changes of several documents in one durable transaction; returns each
    /// document's change count since its last snapshot.
    fn append(&self, batch: &[Append]) -> StoreResult<Vec<u64>>;
    /// Documents of a shop a device may see, with their heads: shop-wide ones and, when
    /// `branch` is given, that branch's only (`None`: every branch).
    fn scope_docs(&self, shop: &str, branch: Option<&str>) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// The DashOffice id of an automerge-repo id.
    fn doc_by_repo_id(&self, repo_id: &str) -> StoreResult<Option<String>>;
    /// Every persisted sync state of a device, by document.
    fn sync_states(&self, device: &str) -> StoreResult<HashMap<String, Vec<u8>>>;
    /// Persists sync states (device, document, state).
    fn put_sync_states(&self, states: &[(String, String, Vec<u8>)]) -> StoreResult<()>;
    /// Stores a new enrolment code.
    fn create_code(&self, code: &NewCode) -> StoreResult<()>;
    /// Redeems a code once, creating the device it enrols.
    fn redeem_code(
        &self,
        code_hash: &[u8],
        device_id: &str,
        name: &str,
        credential: &Credential,
        now: i64,
    ) -> StoreResult<Result<Device, RedeemError>>;
    /// The device with this certificate fingerprint.
    fn device_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<Device>>;
    /// The device with this token hash.
    fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<Device>>;
    /// Revokes a device; false if there is no such device.
    fn revoke(&self, device_id: &str, now: i64) -> StoreResult<bool>;
    /// Every device.
    fn devices(&self) -> StoreResult<Vec<Device>>;
    /// Devices revoked at or after `since` (Unix ms).
    fn revoked_since(&self, since: i64) -> StoreResult<Vec<String>>;
    /// Records a connection.
    fn touch_device(&self, device_id: &str, now: i64) -> StoreResult<()>;
    /// Number of stored documents.
    fn doc_count(&self) -> StoreResult<u64>;
}

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/relay/0001_relay.sql"),
    include_str!("../../migrations/relay/0002_doc_changes_rowid.sql"),
];

/// The embedded SQLite store (WAL, `synchronous=FULL`: an acknowledged change survives power loss).
pub struct SqliteStore {
    write: Mutex<Connection>,
    read: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const DEVICE_COLS: &str = "id, shop_id, branch_id, name, cert_fingerprint, created_at, revoked_at, last_seen_at";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        shop_id: r.get(1)?,
        branch_id: r.get(2)?,
        name: r.get(3)?,
        cert_fingerprint: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_seen_at: r.get(7)?,
    })
}

impl SqliteStore {
    /// Opens (creating and migrating) `relay.db` in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        dashoffice_core::files::create_private_dir(dir)
            .map_err(|e| StoreError::Db(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("relay.db");
        let mut w = Connection::open(&path)?;
        w.pragma_update(None, "journal_mode", "WAL")?;
        w.pragma_update(None, "synchronous", "FULL")?;
        w.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints every 32 MB of WAL rather than SQLite's 4 MB: a sync of many documents
        // rewrites the same pages of the change log in transaction after transaction, and one
        // checkpoint copies each page once (as the replicas do, `core::db`).
        w.pragma_update(None, "wal_autocheckpoint", 8192)?;
        w.pragma_update(None, "cache_size", -16_000)?;
        w.busy_timeout(std::time::Duration::from_secs(10))?;
        let ms = rusqlite_migration::Migrations::new(MIGRATIONS.iter().map(|s| rusqlite_migration::M::up(s)).collect());
        ms.to_latest(&mut w).map_err(|e| StoreError::Db(format!("migrating {}: {e}", path.display())))?;
        let r = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        r.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self { write: Mutex::new(w), read: Mutex::new(r) })
    }
}

impl RelayStore for SqliteStore {
    fn load_doc(&self, doc_id: &str) -> StoreResult<Option<Vec<Vec<u8>>>> {
        let c = lock(&self.read);
        let snapshot: Option<Option<Vec<u8>>> = c
            .prepare_cached("SELECT snapshot FROM documents WHERE doc_id = ?1")?
            .query_row([doc_id], |r| r.get(0))
            .optional()?;
        let Some(snapshot) = snapshot else { return Ok(None) };
        let mut chunks: Vec<Vec<u8>> = snapshot.into_iter().collect();
        let mut stmt = c.prepare_cached("SELECT bytes FROM doc_changes WHERE doc_id = ?1 ORDER BY seq")?;
        for b in stmt.query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))? {
            chunks.push(b?);
        }
        Ok(Some(chunks))
    }

    fn append(&self, batch: &[Append]) -> StoreResult<Vec<u64>> {
        let mut c = lock(&self.write);
        let tx = c.transaction()?;
        let mut counts = Vec::with_capacity(batch.len());
        for a in batch {
            let n = a.changes.len() as i64;
            let count: i64 = tx
                .prepare_cached(
                    "INSERT INTO documents(doc_id, repo_id, shop_id, branch_id, snapshot, change_count, heads, updated_at)
                     VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7)
                     ON CONFLICT(doc_id) DO UPDATE SET change_count = change_count + excluded.change_count,
                        heads = excluded.heads, updated_at = excluded.updated_at
                     RETURNING change_count",
                )?
                .query_row(params![a.doc_id, a.repo_id, a.shop_id, a.branch_id, n, a.heads, a.now], |r| r.get(0))?;
            let mut ins = tx.prepare_cached("INSERT INTO doc_changes(doc_id, seq, bytes) VALUES (?1, ?2, ?3)")?;
            for (k, ch) in a.changes.iter().enumerate() {
                ins.execute(params![a.doc_id, count - n + 1 + k as i64, ch])?;
            }
            counts.push(count as u64);
        }
        tx.commit()?;
        Ok(counts)
    }

    fn scope_docs(&self, shop: &str, branch: Option<&str>) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let c = lock(&self.read);
        let mut stmt = c.prepare_cached(
            "SELECT doc_id, heads FROM documents
             WHERE shop_id = ?1 AND (?2 IS NULL OR branch_id IS NULL OR branch_id = ?2) ORDER BY doc_id",
        )?;
        let rows = stmt.query_map(params![shop, branch], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn doc_by_repo_id(&self, repo_id: &str) -> StoreResult<Option<String>> {
        let c = lock(&self.read);
        Ok(c.prepare_cached("SELECT doc_id FROM documents WHERE repo_id = ?1")?
            .query_row([repo_id], |r| r.get(0))
            .optional()?)
    }

    fn sync_states(&self, device: &str) -> StoreResult<HashMap<String, Vec<u8>>> {
        let c = lock(&self.read);
        let mut stmt = c.prepare_cached("SELECT doc_id, state FROM sync_states WHERE device_id = ?1")?;
        let rows = stmt.query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<HashMap<_, _>>>()?)
    }

    fn put_sync_states(&self, states: &[(String, String, Vec<u8>)]) -> StoreResult<()> {
        let mut c = lock(&self.write);
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO sync_states(device_id, doc_id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT(device_id, doc_id) DO UPDATE SET state = excluded.state",
            )?;
            for (d, doc, s) in states {
                st.execute(params![d, doc, s])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn create_code(&self, code: &NewCode) -> StoreResult<()> {
        lock(&self.write).execute(
            "INSERT INTO enrolment_codes(code_hash, shop_id, branch_id, note, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![code.code_hash, code.shop_id, code.branch_id, code.note, code.created_at, code.expires_at],
        )?;
        Ok(())
    }

    fn redeem_code(
        &self,
        code_hash: &[u8],
        device_id: &str,
        name: &str,
        credential: &Credential,
        now: i64,
    ) -> StoreResult<Result<Device, RedeemError>> {
        let mut c = lock(&self.write);
        // Reads, then writes: take the write lock first, so that a write by another process (the
        // command line) in between makes this wait instead of failing with "database is locked".
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, Option<String>, i64, Option<i64>)> = tx
            .query_row(
                "SELECT shop_id, branch_id, expires_at, used_at FROM enrolment_codes WHERE code_hash = ?1",
                [code_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((shop_id, branch_id, expires_at, used_at)) = row else { return Ok(Err(RedeemError::Unknown)) };
        if used_at.is_some() {
            return Ok(Err(RedeemError::Used));
        }
        if expires_at < now {
            return Ok(Err(RedeemError::Expired));
        }
        let (fp, token): (Option<&str>, Option<&[u8]>) = match credential {
            Credential::Certificate(f) => (Some(f), None),
            Credential::TokenHash(h) => (None, Some(h)),
        };
        tx.execute(
            "INSERT INTO devices(id, shop_id, branch_id, name, cert_fingerprint, token_hash, created_at, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![device_id, shop_id, branch_id, name, fp, token, now],
        )?;
        tx.execute(
            "UPDATE enrolment_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1",
            params![code_hash, now, device_id],
        )?;
        let d = tx.query_row(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"), [device_id], device_row)?;
        tx.commit()?;
        Ok(Ok(d))
    }

    fn device_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<Device>> {
        let c = lock(&self.read);
        Ok(c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices WHERE cert_fingerprint = ?1"))?
            .query_row([fingerprint], device_row)
            .optional()?)
    }

    fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<Device>> {
        let c = lock(&self.read);
        Ok(c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?1"))?
            .query_row([token_hash], device_row)
            .optional()?)
    }

    fn revoke(&self, device_id: &str, now: i64) -> StoreResult<bool> {
        let n = lock(&self.write).execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![device_id, now],
        )?;
        Ok(n > 0)
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        let c = lock(&self.read);
        let mut stmt = c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY created_at, id"))?;
        Ok(stmt.query_map([], device_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoked_since(&self, since: i64) -> StoreResult<Vec<String>> {
        let c = lock(&self.read);
        let mut stmt = c.prepare_cached("SELECT id FROM devices WHERE revoked_at >= ?1")?;
        Ok(stmt.query_map([since], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn touch_device(&self, device_id: &str, now: i64) -> StoreResult<()> {
        lock(&self.write).execute("UPDATE devices SET last_seen_at = ?2 WHERE id = ?1", params![device_id, now])?;
        Ok(())
    }

    fn doc_count(&self) -> StoreResult<u64> {
        let c = lock(&self.read);
        Ok(c.query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0))? as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn code(n: usize, now: i64) -> NewCode {
        NewCode {
            code_hash: format!("code-{n}").into_bytes(),
            shop_id: "shop-1".into(),
            branch_id: None,
            note: String::new(),
            created_at: now,
            expires_at: now + 3_600_000,
        }
    }

    /// The owner creates codes from the command line (another process, another connection) while
    /// devices enrol on the running relay: no enrolment may fail with "database is locked" (a
    /// transaction that read first and then wrote, after the other process wrote, could not
    /// wait for the lock).
    #[test]
    fn devices_enrol_while_another_process_writes() {
        let dir = tempfile::tempdir().unwrap();
        let relay = SqliteStore::open(dir.path()).unwrap();
        let now = crate::hub::now_ms();
        const N: usize = 1_000;
        for i in 0..N {
            relay.create_code(&code(i, now)).unwrap();
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = N;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    // One process per command: open, write, close.
                    let cli = SqliteStore::open(dir.path()).unwrap();
                    cli.create_code(&code(i, now)).unwrap();
                    i += 1;
                }
            });
            for i in 0..N {
                let cred = Credential::Certificate(format!("fp-{i}"));
                // What a connecting device does: look itself up, then redeem its code.
                assert!(relay.device_by_fingerprint(&format!("fp-{i}")).unwrap().is_none());
                let got = relay.redeem_code(format!("code-{i}").as_bytes(), &format!("dev-{i}"), "d", &cred, now);
                if !matches!(got, Ok(Ok(_))) {
                    done.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("enrolment {i}: {got:?}");
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
