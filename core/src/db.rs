//! Opening the SQLite file: pragmas, migrations, and a small pool of read-only connections.

use std::{
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

use crate::error::{CoreError, Result};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives kill -9 and power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives kill -9; the last commits may be lost on power loss.
    Normal,
}

fn pragmas(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durability == Durability::Full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Opens the writer's connection and brings the schema up to date.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    pragmas(&conn, durability)?;
    // Checkpoint every ~32 MB of WAL instead of SQLite's 4 MB: a large sync then copies each hot
    // index page into the database once instead of at every checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    // The writer keeps up to 64 MB of pages (readers 16 MB): a large sync inserts into five
    // B-trees of the products table at random places, and a small cache re-reads their pages
    // from the OS over and over. Memory is only taken as pages are used.
    conn.pragma_update(None, "cache_size", -64_000)?;
    migrations().to_latest(&mut conn).map_err(|e| CoreError::Storage(format!("migrating {}: {e}", path.display())))?;
    register_functions(&conn)?;
    Ok(conn)
}

/// The schema migrations from `migrations/*.sql`.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect())
}

/// SQL functions every connection has: `fold(text)`, the text lower-cased without accents
/// ([`crate::search::fold`]), so that list filters find "José" by "jose".
pub(crate) fn register_functions(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => Some(crate::search::fold(&String::from_utf8_lossy(t))),
                _ => None,
            })
        },
    )?;
    Ok(())
}

/// A read-only connection to the database at `path`.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    register_functions(&conn)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Read-only connections shared by request handlers; each is used by one thread at a time.
pub(crate) struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    pub(crate) fn open(path: &Path, size: usize) -> Result<Self> {
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            conns.push(Mutex::new(open_reader(path)?));
        }
        Ok(Self { conns, next: AtomicUsize::new(0) })
    }

    /// Runs `f` on a free connection (or waits for the next one in turn).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.conns[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        let conn = self.conns[start % n].lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn migrations_are_valid_and_apply_to_an_empty_database() {
        super::migrations().validate().unwrap();
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type='table'", [], |r| r.get(0)).unwrap();
        assert!(n >= 10);
    }

    /// Migration 0008 turns the change log into a rowid table: what was in it stays, in order,
    /// loading a document still reads its changes through an index, and a change stored twice
    /// is still refused.
    #[test]
    fn the_change_log_keeps_its_changes_and_its_key_when_it_gets_rowids() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let before = super::MIGRATIONS.iter().position(|(name, _)| name.starts_with("0008")).unwrap();
        super::migrations().to_version(&mut conn, before).unwrap();
        for (doc, seq, bytes) in [("d2", 1, vec![7u8; 1500]), ("d1", 2, vec![2]), ("d1", 1, vec![1])] {
            conn.execute(
                "INSERT INTO doc_changes(doc_id, seq, hash, bytes) VALUES (?1, ?2, x'00', ?3)",
                rusqlite::params![doc, seq, bytes],
            )
            .unwrap();
        }
        super::migrations().to_latest(&mut conn).unwrap();
        let read = |doc: &str| -> Vec<Vec<u8>> {
            let mut st = conn.prepare("SELECT bytes FROM doc_changes WHERE doc_id = ?1 ORDER BY seq").unwrap();
            st.query_map([doc], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(read("d1"), vec![vec![1u8], vec![2]]);
        assert_eq!(read("d2"), vec![vec![7u8; 1500]]);
        let again =
            conn.execute("INSERT INTO doc_changes(doc_id, seq, hash, bytes) VALUES ('d1', 2, x'00', x'00')", []);
        assert!(again.is_err(), "(doc_id, seq) is still a key");
        let mut st =
            conn.prepare("EXPLAIN QUERY PLAN SELECT bytes FROM doc_changes WHERE doc_id = 'd1' ORDER BY seq").unwrap();
        let plan: Vec<String> = st.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(plan.join(" ").contains("doc_changes_key (doc_id=?)"), "{plan:?}");
    }

    /// Migration 0009 gives messages rowids: they stay, their id is still unique (the projection's
    /// upsert relies on it), and a conversation's messages are still read through its index.
    #[test]
    fn messages_keep_their_rows_and_their_unique_id_when_they_get_rowids() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let before = super::MIGRATIONS.iter().position(|(name, _)| name.starts_with("0009")).unwrap();
        super::migrations().to_version(&mut conn, before).unwrap();
        let insert = "INSERT INTO messages(id, shop_id, branch_id, doc_id, conversation_id, direction, kind, text,
                payload, wamid, status, sender, at, created_at)
             VALUES (?1, 's', 'b', 'd', 'c', 'in', 'text', ?2, '{}', ?1, 'received', 'customer', ?3, 0)
             ON CONFLICT(id) DO UPDATE SET text = excluded.text";
        for (id, text, at) in [("m2", "segundo", 2), ("m1", "primero", 1)] {
            conn.execute(insert, rusqlite::params![id, text, at]).unwrap();
        }
        super::migrations().to_latest(&mut conn).unwrap();
        conn.execute(insert, rusqlite::params!["m3", "tercero", 3]).unwrap();
        conn.execute(insert, rusqlite::params!["m1", "primero, otra vez", 1]).unwrap();
        let mut st = conn.prepare("SELECT id, text FROM messages WHERE conversation_id = 'c' ORDER BY at, id").unwrap();
        let rows: Vec<(String, String)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        let want = [("m1", "primero, otra vez"), ("m2", "segundo"), ("m3", "tercero")];
        assert_eq!(rows, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let mut st = conn
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE conversation_id = 'c' ORDER BY at, id")
            .unwrap();
        let plan: Vec<String> = st.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(plan.join(" ").contains("messages_conversation (conversation_id=?)"), "{plan:?}");
        // The outbox's read: queued replies in order, from the partial index, with no sort.
        let mut st = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM messages m WHERE m.shop_id = 's' AND m.direction = 'out'
                   AND m.status = 'queued' ORDER BY m.at, m.id LIMIT 10",
            )
            .unwrap();
        let plan: Vec<String> = st.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        let plan = plan.join(" | ");
        assert!(plan.contains("messages_queued") && !plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// SQLite picks indexes without statistics here, so a new index can silently turn a seek
    /// into a walk of a whole shop (migration 0006 once made every SKU lookup of an import walk
    /// the name index). The product queries that run per row or per keystroke keep their plans.
    #[test]
    fn product_lookups_seek_and_the_list_search_walks_only_an_index() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        super::register_functions(&conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join(" | ")
        };
        let sku = plan("SELECT id FROM products WHERE shop_id = 's' AND sku = 'x' AND archived = 0 LIMIT 1");
        assert!(sku.contains("products_sku (shop_id=? AND sku=?)"), "{sku}");
        let one = plan("SELECT id FROM products t WHERE t.id = 'x' AND t.shop_id = 's'");
        assert!(one.contains("PRIMARY KEY (id=?)") || one.contains("sqlite_autoindex_products_1 (id=?)"), "{one}");
        let search = plan(
            "SELECT t.id FROM products t INDEXED BY products_name WHERE t.shop_id = 's' AND t.archived = 0 AND t.active = 1
               AND (fold(t.name) LIKE '%a%'
                    OR t.id IN (SELECT id FROM products INDEXED BY products_sku WHERE shop_id = 's' AND sku LIKE '%a%'))
             ORDER BY t.name, t.id LIMIT 51",
        );
        assert!(search.contains("COVERING INDEX products_name"), "{search}");
        assert!(search.contains("COVERING INDEX products_sku"), "{search}");
    }

    #[test]
    fn a_conversations_unread_count_and_last_inbound_message_are_read_from_an_index_alone() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join(" | ")
        };
        let unread =
            plan("SELECT count(*) FROM messages m WHERE m.conversation_id = 'c' AND m.direction = 'in' AND m.at > 5");
        assert!(unread.contains("COVERING INDEX messages_by_direction"), "{unread}");
        let last = plan("SELECT max(m.at) FROM messages m WHERE m.conversation_id = 'c' AND m.direction = 'in'");
        assert!(last.contains("COVERING INDEX messages_by_direction"), "{last}");
    }
}
