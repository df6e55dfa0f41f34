//! Backups of a replica's database, and restoring one.
//!
//! A backup is one SQLite file: a consistent copy of the database taken with `VACUUM INTO`,
//! which is safe while the replica runs (it reads one snapshot; the writer goes on). It holds
//! everything the replica knew at that moment: the documents, the projection, local settings.
//!
//! A restored replica is a **new device**. It gets a new Automerge actor id and order-number code,
//! and forgets its sync states and login sessions. Reusing the old actor would be unsafe: changes
//! the old device made after the backup already exist elsewhere under the same actor and sequence
//! numbers, and new changes would collide with them. Stale sync states would make the relay
//! believe the replica holds changes that it lost. The host also drops the old device's relay
//! identity (see `dashoffice_sync`), so the replica enrols again and receives everything the
//! backup missed.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{
    error::{CoreError, Result},
    files,
};

/// The database file in a data folder.
pub const DB_FILE: &str = "dashoffice.db";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The shop, if the replica had one.
    pub shop_id: Option<String>,
    /// Automerge documents.
    pub documents: u64,
    /// Size of the file.
    pub bytes: u64,
}

fn storage(what: &str, path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Writes a consistent copy of the database in `data_dir` to `dest`, a new file readable by this
/// user only. Works while the replica runs. `dest` must not exist.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<BackupInfo> {
    let db = data_dir.join(DB_FILE);
    if !db.is_file() {
        return Err(CoreError::Storage(format!("{} holds no replica (no {DB_FILE})", data_dir.display())));
    }
    backup_db(&db, dest)
}

/// [`backup`] of the database file `db`.
pub(crate) fn backup_db(db: &Path, dest: &Path) -> Result<BackupInfo> {
    let Some(dest_text) = dest.to_str() else {
        return Err(CoreError::Storage(format!("{}: the backup's path must be valid UTF-8", dest.display())));
    };
    // Created empty first (VACUUM INTO accepts an empty file), so it is private from the start and
    // an existing file is never overwritten.
    files::write_private(dest, b"").map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            CoreError::Storage(format!("{} already exists: choose a new file name", dest.display()))
        }
        _ => storage("creating", dest, e),
    })?;
    let copied = (|| -> rusqlite::Result<()> {
        // A plain connection that only reads: it takes part in the writer's WAL locking, so the
        // copy is one consistent snapshot even while writes go on.
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute("VACUUM INTO ?1", [dest_text])?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(dest);
        return Err(storage("copying", db, e));
    }
    inspect(dest)
}

/// Checks a backup file and says what it holds. Fails with a message that names what is wrong
/// (not a DashOffice database, damaged, made by a newer version).
pub fn inspect(file: &Path) -> Result<BackupInfo> {
    let bad = |why: String| CoreError::Storage(format!("{} is not a usable DashOffice backup: {why}", file.display()));
    let bytes = std::fs::metadata(file).map_err(|e| storage("reading", file, e))?.len();
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| bad(e.to_string()))?;
    let check: String =
        conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| bad(format!("{e} (not a SQLite file?)")))?;
    if check != "ok" {
        return Err(bad(format!("the file is damaged ({check})")));
    }
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| bad(e.to_string()))?;
    let known = crate::db::MIGRATIONS.len();
    if version > known {
        return Err(bad(format!(
            "it was made by a newer DashOffice (schema {version}; this one knows {known}): restore it with that version"
        )));
    }
    let documents: u64 = conn
        .query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0))
        .map_err(|_| bad("it has no documents table".into()))?
        .try_into()
        .unwrap_or(0);
    let shop_id: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = 'shop_id'", [], |r| r.get(0))
        .optional()
        .map_err(|e| bad(e.to_string()))?;
    Ok(BackupInfo { shop_id, documents, bytes })
}

/// The name prefix of scheduled backups in a backup folder.
pub const SCHEDULED_PREFIX: &str = "dashoffice-backup-";

/// One scheduled backup into `dir` (created for this user only if missing), named by the UTC
/// time to the millisecond so names sort by age; then the oldest scheduled backups beyond `keep`
/// are deleted (other files in the folder are left alone). Returns the new file and what it holds.
pub fn scheduled(db: &crate::Replica, dir: &Path, keep: usize) -> Result<(PathBuf, BackupInfo)> {
    files::create_private_dir(dir).map_err(|e| storage("creating", dir, e))?;
    let now = jiff::Timestamp::now();
    let name = format!("{SCHEDULED_PREFIX}{}{:03}Z.db", now.strftime("%Y%m%dT%H%M%S."), now.subsec_millisecond());
    // Written under a name rotation ignores, then renamed: a backup cut short (power loss, kill -9)
    // never counts as one of the `keep`, and the next run removes it.
    let partial = dir.join(format!(".{name}.partial"));
    let file = dir.join(&name);
    let names: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .map_err(|e| storage("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string).map(|n| (p, n)))
        .collect();
    for (p, n) in &names {
        if n.starts_with(&format!(".{SCHEDULED_PREFIX}")) && n.ends_with(".partial") {
            let _ = std::fs::remove_file(p);
        }
    }
    let info = db.backup(&partial)?;
    std::fs::rename(&partial, &file).map_err(|e| storage("naming", &file, e))?;
    let mut old: Vec<PathBuf> = names
        .into_iter()
        .filter(|(_, n)| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(".db"))
        .map(|(p, _)| p)
        .chain([file.clone()])
        .collect();
    old.sort();
    let excess = old.len().saturating_sub(keep.max(1));
    for p in &old[..excess] {
        std::fs::remove_file(p).map_err(|e| storage("removing the old backup", p, e))?;
    }
    Ok((file, info))
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// What the backup held.
    pub info: BackupInfo,
    /// Where the database it replaced was moved (with `replace`), to delete once all is well.
    pub set_aside: Vec<PathBuf>,
    /// What was added to the names of the files set aside (`.before-restore-<UTC time>`); the
    /// host sets its own files aside with it too.
    pub suffix: String,
}

/// Makes the backup `file` the database of `data_dir`, as a new device (see the module's docs).
/// The replica must not be running. A data folder that already holds a database is refused
/// unless `replace`; then that database is renamed (kept, not deleted).
pub fn restore(file: &Path, data_dir: &Path, replace: bool) -> Result<Restored> {
    let info = inspect(file)?;
    let suffix = format!(".before-restore-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"));
    files::create_private_dir(data_dir).map_err(|e| storage("creating", data_dir, e))?;
    let db = data_dir.join(DB_FILE);
    if db.exists() && !replace {
        return Err(CoreError::Storage(format!(
            "{} already holds a replica: restore into an empty data folder, or pass --replace to set the current database aside",
            data_dir.display()
        )));
    }
    // Prepared beside the database, then moved into place: a failure half-way leaves the data
    // folder as it was.
    let staging = data_dir.join(format!("{DB_FILE}.restoring"));
    let _ = std::fs::remove_file(&staging);
    // Streamed, not read whole: a shop's database can be hundreds of megabytes.
    files::write_private(&staging, b"").map_err(|e| storage("writing", &staging, e))?;
    (|| -> std::io::Result<()> {
        let mut from = std::fs::File::open(file)?;
        let mut to = std::fs::OpenOptions::new().write(true).open(&staging)?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()
    })()
    .map_err(|e| {
        let _ = std::fs::remove_file(&staging);
        storage("copying the backup to", &staging, e)
    })?;
    let reset = (|| -> rusqlite::Result<()> {
        let conn = Connection::open(&staging)?;
        conn.execute_batch(
            "BEGIN;
             DELETE FROM device;
             DELETE FROM sync_states;
             DELETE FROM sessions;
             COMMIT;",
        )?;
        Ok(())
    })();
    if let Err(e) = reset {
        let _ = std::fs::remove_file(&staging);
        return Err(storage("preparing", &staging, e));
    }
    let mut set_aside = Vec::new();
    // The set-aside database keeps its WAL beside it under the matching name, so it still
    // opens with everything it had committed.
    for ext in ["", "-wal", "-shm"] {
        let from = data_dir.join(format!("{DB_FILE}{ext}"));
        if from.exists() {
            let to = data_dir.join(format!("{DB_FILE}{suffix}{ext}"));
            std::fs::rename(&from, &to).map_err(|e| storage("setting aside", &from, e))?;
            set_aside.push(to);
        }
    }
    std::fs::rename(&staging, &db).map_err(|e| storage("moving into place", &staging, e))?;
    Ok(Restored { info, set_aside, suffix })
}
