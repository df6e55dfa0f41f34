//! The relational projection: SQL rows derived from the documents. Every record change re-projects
//! that record; remote changes are mapped to records by diffing heads; `reindex` rebuilds all of it.

use std::collections::BTreeSet;

use automerge::{Automerge, ChangeHash, PatchAction, Prop, ReadDoc};
use rusqlite::Connection;

use crate::{
    doc::{self, Collection, DocId},
    entities::{customers, inbox, orders, org, products, staff, stock, tickets},
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
        Collection::Credentials => staff::project_credential(conn, id, d, record),
        Collection::Tickets => tickets::project(conn, id, d, record),
    }
}

/// Record ids that `changes` (already applied to `d`) touch, read from their operations: an
/// operation on the records map names its record by key; one deeper names the object it changes,
/// whose path up to the records map gives the record. None when an object cannot be placed (the
/// caller then diffs heads). Far cheaper than a diff, which rebuilds every changed value and path.
pub(crate) fn records_in_changes(d: &Automerge, changes: &[automerge::Change]) -> Option<Vec<String>> {
    use automerge::legacy::{ObjectId, OpId};
    use std::collections::HashMap;
    let records = doc::records_obj(d).ok()?;
    // Compared as (counter, actor): formatting every operation's object as text cost more than
    // the rest of this function (a sync brings thousands of operations).
    let records_op = match &records {
        automerge::ObjId::Id(counter, actor, _) => OpId(*counter, actor.clone()),
        automerge::ObjId::Root => return None,
    };
    let mut out = BTreeSet::new();
    // Object → the record it belongs to (None: outside the records map).
    let mut placed: HashMap<OpId, Option<String>> = HashMap::new();
    for change in changes {
        let change = change.decode();
        let start = change.start_op.get();
        for (i, op) in change.operations.into_iter().enumerate() {
            let ObjectId::Id(obj) = op.obj else { continue };
            if obj == records_op {
                if let automerge::legacy::Key::Map(key) = &op.key {
                    // A record made here: its object is this operation, so the operations
                    // that fill it in need no lookup of where they belong.
                    if matches!(op.action, automerge::legacy::OpType::Make(_)) {
                        placed.insert(OpId(start + i as u64, change.actor_id.clone()), Some(key.to_string()));
                    }
                    out.insert(key.to_string());
                }
                continue;
            }
            let record = match placed.get(&obj) {
                Some(record) => record,
                None => {
                    let id = d.import_obj(&ObjectId::Id(obj.clone()).to_string()).ok()?;
                    let record = match d.parents(&id).ok()?.find(|p| p.obj == records) {
                        Some(automerge::Parent { prop: Prop::Map(key), .. }) => Some(key),
                        _ => None,
                    };
                    placed.entry(obj).or_insert(record)
                }
            };
            if let Some(record) = record {
                out.insert(record.clone());
            }
        }
    }
    Some(out.into_iter().collect())
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
        "DELETE FROM shops; DELETE FROM branches; DELETE FROM staff; DELETE FROM staff_credentials; DELETE FROM products; DELETE FROM stock;
         DELETE FROM customers; DELETE FROM orders; DELETE FROM order_lines; DELETE FROM order_emails; DELETE FROM order_transitions;
         DELETE FROM order_returns; DELETE FROM order_return_lines;
         DELETE FROM conversations; DELETE FROM messages; DELETE FROM inbox_items; DELETE FROM attachments;
         DELETE FROM tickets; DELETE FROM ticket_comments;",
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use automerge::{ActorId, ObjType, ROOT, transaction::Transactable};

    use super::*;

    /// Every way a change can touch a record: a new one, a field of an old one, an object nested
    /// two levels deep that an earlier change made, a deleted record; changes outside the records
    /// map touch none.
    #[test]
    fn the_records_a_change_touches_are_read_from_its_operations_as_a_diff_finds_them() {
        let mut d = doc::genesis(Collection::Orders);
        d.set_actor(ActorId::from(vec![7; 16]));
        let records = doc::records_obj(&d).unwrap();
        let mut tx = d.transaction();
        for r in ["o-1", "o-2", "o-3"] {
            let o = tx.put_object(&records, r, ObjType::Map).unwrap();
            tx.put(&o, "status", "draft").unwrap();
            let lines = tx.put_object(&o, "lines", ObjType::List).unwrap();
            let line = tx.insert_object(&lines, 0, ObjType::Map).unwrap();
            tx.put(&line, "qty", 1).unwrap();
        }
        tx.commit();
        let before = d.get_heads();

        let mut other = d.fork();
        other.set_actor(ActorId::from(vec![8; 16]));
        let o1 = match other.get(&records, "o-1").unwrap() {
            Some((_, id)) => id,
            None => panic!("o-1"),
        };
        let lines = other.get(&o1, "lines").unwrap().unwrap().1;
        let line = other.get(&lines, 0).unwrap().unwrap().1;
        let mut tx = other.transaction();
        tx.put(&line, "qty", 3).unwrap();
        tx.delete(&records, "o-2").unwrap();
        let o4 = tx.put_object(&records, "o-4", ObjType::Map).unwrap();
        tx.put(&o4, "status", "paid").unwrap();
        tx.put(ROOT, "note", "outside the records").unwrap();
        tx.commit();
        let changes = other.get_changes(&before);
        d.apply_changes(changes.clone()).unwrap();

        let from_ops = records_in_changes(&d, &changes).unwrap();
        assert_eq!(from_ops, ["o-1", "o-2", "o-4"]);
        assert_eq!(from_ops, touched_records(&d, &before));
    }
}
