//! The entities: for each, its writes (document changes with their rules), its projection into
//! SQL, and its reads. Writes take a [`Caller`](crate::Caller) and check the role's permissions.

pub mod analytics;
pub mod broadcasts;
pub mod customers;
pub mod emails;
pub mod inbox;
pub mod orders;
pub mod org;
pub mod products;
pub mod reports;
pub mod returns;
pub mod satisfaction;
pub mod staff;
pub mod stock;
pub mod tickets;

use automerge::{
    ObjId,
    transaction::{Transactable, Transaction},
};
use rusqlite::Connection;

use crate::error::Result;

/// A field of a change request that may be cleared: None leaves it, empty (or blank) clears it,
/// anything else is checked, its error kept in `errs`.
pub(crate) fn clear_or(
    v: Option<&str>,
    check: impl Fn(&str) -> std::result::Result<String, dashoffice_domain::FieldError>,
    errs: &mut dashoffice_domain::FieldErrors,
) -> Option<String> {
    match v {
        None => None,
        Some(s) if s.trim().is_empty() => Some(String::new()),
        Some(s) => errs.check(check(s)),
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn put_str(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, v: &str) -> Result<()> {
    tx.put(obj, key, v)?;
    Ok(())
}

pub(crate) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

pub fn tags_from_json(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Marks record `id` of `doc` archived (the soft delete every entity uses).
pub(crate) fn mark_archived(
    ctx: &mut crate::WriteCtx<'_>,
    doc: &crate::doc::DocId,
    id: &str,
    entity: &'static str,
) -> Result<()> {
    let now = ctx.now();
    ctx.change(doc, &[id], |tx, _| {
        let o = crate::doc::record(tx, id)?.ok_or_else(|| crate::CoreError::not_found(entity, id))?;
        tx.put(&o, "archived", true)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

/// The replica's local settings (its shop and home branch).
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?)
}

pub(crate) fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
    Ok(())
}

/// Ids of the shop's branches in code order (tests).
#[cfg(feature = "test-support")]
pub fn branches_for_tests(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT id FROM branches ORDER BY code")?;
    Ok(stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?)
}
