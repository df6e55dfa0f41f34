//! The relational projection: SQL rows derived from the documents. Every record change re-projects
//! that record; remote changes are mapped to records by diffing heads; `reindex` rebuilds all of it.

use std::collections::BTreeSet;

use automerge::{Automerge, ChangeHash, PatchAction, Prop};
use rusqlite::Connection;

use crate::{
    doc::{self, Collection, DocId},
    entities::{customers, inbox, orders, org, products, staff, stock},
    error::Result,
};

/// Writes the SQL rows of one record.
pub(crate) fn project_record(conn: &Connection, id: &DocId, d: &Automerge, record: &str) -> Result<()> {
    match id.scope()?.collection {
        Collection::Org => org::project(conn, id, d, record),
        Collection::Staff => staff::project(conn, id, d, record),
        Collection::Products => products::project(conn, id, d, record),
        Collection::Customers => customers::project(conn, id, d, record),
        Collection::Stock => stock::project(conn, id, d, record),
        Collection::Orders => orders::project(conn, id, d, record),
        Collection::Conversations => inbox::project_conversation(conn, id, d, record),
        Collection::Messages => inbox::project_message(conn, id, d, record),
        Collection::Inbox => inbox::project_item(conn, id, d, record),
        Collection::Attachments => inbox::project_attachment(conn, id, d, record),
    }
}

/// Record ids changed between `before` and the current heads.
pub(crate) fn touched_records(d: &Automerge, before: &[ChangeHash]) -> Vec<String> {
    let Ok(records) = doc::records_obj(d) else {
        return Vec::new();
    };
    let fresh = before.is_empty() || doc::collection_of(d).is_some_and(|c| doc::at_genesis(c, before));
    if fresh {
        // A document seen for the first time: every record is new, no diff needed (computing a
        // full patch of a large document costs more than projecting it).
        return doc::record_ids(d).unwrap_or_default();
    }
    let mut out = BTreeSet::new();
    for p in d.diff(before, &d.get_heads()) {
        if p.obj == records {
            if let PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } = &p.action {
                out.insert(key.clone());
            }
            continue;
        }
        // Deeper: the path starts at the root, then records, then the record's key.
        if let Some((_, Prop::Map(key))) = p.path.iter().find(|(obj, _)| *obj == records) {
            out.insert(key.clone());
        }
    }
    if out.is_empty() && before.is_empty() {
        return doc::record_ids(d).unwrap_or_default();
    }
    out.into_iter().collect()
}

/// Projects every record of a document.
pub(crate) fn project_all(conn: &Connection, id: &DocId, d: &Automerge) -> Result<usize> {
    let ids = doc::record_ids(d)?;
    // Orders before nothing else matters: stock's committed units are recomputed from order lines,
    // so stock rows projected first are corrected when the orders follow.
    for r in &ids {
        project_record(conn, id, d, r)?;
    }
    Ok(ids.len())
}

/// Empties the projection tables (reindex).
pub(crate) fn clear(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM shops; DELETE FROM branches; DELETE FROM staff; DELETE FROM products; DELETE FROM stock;
         DELETE FROM customers; DELETE FROM orders; DELETE FROM order_lines; DELETE FROM order_transitions;
         DELETE FROM conversations; DELETE FROM messages; DELETE FROM inbox_items; DELETE FROM attachments;",
    )?;
    Ok(())
}
