//! The floor under the sync benchmarks: what Automerge 0.12 alone costs on this machine for the
//! convergence workload of `sync converge` (two replicas with N offline product creations each,
//! spread over the 1,024 catalog shards), with no SQLite, no network and no other process.
//!
//! Each replica's document holds the same shape as the real catalog shard
//! (`{ collection, schema, records: { <id>: { sku, name, … 12 fields } } }`), one change per
//! product, as the edge node writes them. Measured on one thread:
//! - `apply`: applying the other replica's N changes (what each node must do);
//! - `sync`: the same through Automerge's sync protocol between the two documents, both ways,
//!   until quiet (what the two nodes and the relay do between them, without the relay);
//! - `relay`: the same through a relay that holds only the genesis, as deployed: both replicas
//!   upload, then each receives the other's changes; the time of each of the three is summed
//!   over the calls it makes.
//!
//! `messages N C` measures the WhatsApp side the same way: N answered messages from C customers
//! written by the relay (field by field as before session 10; with a message's fixed fields
//! sealed as one value; sealed with one change per document per batch of 256; and sealed with
//! each record made in one go, as now), then applied by a second replica.
//!
//! `cargo bench -p dashoffice-tests --bench automerge_floor -- 10000`,
//! `cargo bench -p dashoffice-tests --bench automerge_floor -- messages 5000 500`

// A benchmark states what it needs; a failed unwrap is a broken setup, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use automerge::{
    ActorId, Automerge, Change, ObjType, ROOT, ReadDoc,
    sync::{self, SyncDoc},
    transaction::Transactable,
};
use dashoffice_core::{
    doc::{self, Collection, DocId},
    sync::generate,
};

const SHARDS: usize = 1024;

/// Automerge's default: the whole document whenever the peer lacks more than a third of it.
static WHOLE_DOCS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Any catalog shard's id: what `generate` needs to know the genesis.
fn shard_id() -> DocId {
    DocId::products("shop", "p")
}

/// The real catalog genesis (every replica's shard starts from it).
fn genesis() -> Automerge {
    doc::genesis(Collection::Products)
}

/// `per_shard` products written on `d` by `actor`, one change each.
fn write_products(d: &mut Automerge, actor: u8, shard: usize, per_shard: usize) {
    d.set_actor(ActorId::from(vec![actor; 16]));
    let records = doc::records_obj(d).unwrap();
    for i in 0..per_shard {
        let id = format!("{actor:02x}{shard:04x}{i:06x}-0000-4000-8000-000000000000");
        let mut tx = d.transaction();
        let o = tx.put_object(&records, id.as_str(), ObjType::Map).unwrap();
        tx.put(&o, "sku", format!("SKU-{actor}-{shard}-{i}")).unwrap();
        tx.put(&o, "name", format!("Producto {shard} {i}")).unwrap();
        tx.put(&o, "description", "").unwrap();
        tx.put(&o, "price", "99.90").unwrap();
        tx.put(&o, "currency", "MXN").unwrap();
        tx.put(&o, "tax_rate", "0").unwrap();
        tx.put(&o, "active", true).unwrap();
        tx.put_object(&o, "tags", ObjType::Map).unwrap();
        tx.put(&o, "archived", false).unwrap();
        tx.put(&o, "created_at", 1_764_000_000_000_i64).unwrap();
        tx.put(&o, "updated_at", 1_764_000_000_000_i64).unwrap();
        tx.commit();
    }
}

/// One replica's side of a sync session with a peer.
struct Side<'a> {
    doc: &'a mut Automerge,
    state: sync::State,
}

/// One message from `from` to `to`, if `from` has something to say; the time goes to each side.
fn step(from: &mut Side<'_>, to: &mut Side<'_>, tf: &mut Duration, tt: &mut Duration) -> bool {
    let t = Instant::now();
    // DashOffice's rule (`dashoffice_core::sync::generate`: a whole document only to a peer that
    // holds nothing beyond the genesis), or Automerge's default.
    let m = if WHOLE_DOCS.load(std::sync::atomic::Ordering::Relaxed) {
        from.doc.generate_sync_message(&mut from.state).map(|m| m.encode())
    } else {
        generate(from.doc, &shard_id(), &mut from.state)
    };
    *tf += t.elapsed();
    let Some(m) = m else { return false };
    let t = Instant::now();
    to.doc.receive_sync_message(&mut to.state, sync::Message::decode(&m).unwrap()).unwrap();
    *tt += t.elapsed();
    true
}

/// Steps `a` and `b` until neither has anything to say, adding the time each side spends
/// (generating and receiving messages) to `ta` and `tb`; returns the messages exchanged.
fn sync_until_quiet(a: &mut Side<'_>, b: &mut Side<'_>, ta: &mut Duration, tb: &mut Duration) -> usize {
    let mut n = 0;
    loop {
        let ab = step(a, b, ta, tb);
        let ba = step(b, a, tb, ta);
        n += usize::from(ab) + usize::from(ba);
        if !ab && !ba {
            return n;
        }
    }
}

fn side<'a>(doc: &'a mut Automerge, shared: &[automerge::ChangeHash]) -> Side<'a> {
    let mut state = sync::State::new();
    state.shared_heads = shared.to_vec();
    Side { doc, state }
}

/// Both replicas sync with a relay that holds only the genesis: each uploads, then each receives
/// the other's changes. Returns the CPU time of node 1, node 2 and the relay, and the messages.
fn through_relay(g: &Automerge, left: &[Automerge], right: &[Automerge]) -> (Duration, Duration, Duration, usize) {
    let gh = g.get_heads();
    let (mut left, mut right): (Vec<Automerge>, Vec<Automerge>) = (left.to_vec(), right.to_vec());
    let mut relay: Vec<Automerge> = (0..left.len()).map(|_| g.clone()).collect();
    let (mut nl, mut nr, mut tre) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut relayed = 0;
    for ((hub, a), b) in relay.iter_mut().zip(left.iter_mut()).zip(right.iter_mut()) {
        let (mut sa, mut sb) = (side(a, &gh), side(b, &gh));
        let (mut ha, mut hb) = (sync::State::new(), sync::State::new());
        ha.shared_heads = gh.clone();
        hb.shared_heads = gh.clone();
        let mut ra = Side { doc: hub, state: ha };
        relayed += sync_until_quiet(&mut sa, &mut ra, &mut nl, &mut tre);
        let mut rb = Side { doc: ra.doc, state: hb };
        relayed += sync_until_quiet(&mut sb, &mut rb, &mut nr, &mut tre);
        let mut ra = Side { doc: rb.doc, state: ra.state };
        relayed += sync_until_quiet(&mut sa, &mut ra, &mut nl, &mut tre);
    }
    assert!(left.iter().zip(&right).all(|(a, b)| a.get_heads() == b.get_heads()));
    (nl, nr, tre, relayed)
}

/// An answered WhatsApp message as the relay writes it: the conversation's update, the customer's
/// message, the bot's reply and the bot's state, each its own change. The messages are 14-field
/// records written field by field (before session 10), or with `one_value` their fixed fields as
/// one value beside the status (sessions 10–25), and with `in_one_go` too each record made with
/// its keys in one call (`batch_create_object`, session 26).
fn answered_per_field(
    convs: &mut [Automerge],
    msgs: &mut [Automerge],
    i: usize,
    customers: usize,
    one_value: bool,
    in_one_go: bool,
) {
    let c = i % customers;
    let conv = &mut convs[c % convs.len()];
    let crec = conv.get(ROOT, "records").unwrap().unwrap().1;
    let key = format!("conv-{c:08}");
    let o = match conv.get(&crec, key.as_str()).unwrap() {
        Some((_, o)) => o,
        None => {
            let mut tx = conv.transaction();
            let o = tx.put_object(&crec, key.as_str(), ObjType::Map).unwrap();
            for f in ["customer_id", "wa_id", "phone_number_id", "state", "assignee_id", "bot_node"] {
                tx.put(&o, f, "x").unwrap();
            }
            tx.commit();
            o
        }
    };
    let mut tx = conv.transaction();
    tx.put(&o, "needs_template", false).unwrap();
    tx.put(&o, "updated_at", i as i64).unwrap();
    tx.commit();
    let m = &mut msgs[c % msgs.len()];
    let mrec = m.get(ROOT, "records").unwrap().unwrap().1;
    for dir in ["in", "out"] {
        let mut tx = m.transaction();
        let id = format!("msg-{i:08}-{dir}");
        let v = format!(
            r#"{{"conversation_id":"{key}","direction":"{dir}","kind":"text","text":"¿Cuánto cuesta el vestido rojo?","payload":{{}},"sender":"customer","at":{i}}}"#
        );
        if in_one_go {
            let mut keys = std::collections::HashMap::new();
            keys.insert("v".to_string(), automerge::hydrate::Value::Scalar(automerge::ScalarValue::Str(v.into())));
            keys.insert("status".to_string(), "received".into());
            tx.batch_create_object(&mrec, id.as_str(), &automerge::hydrate::Value::Map(keys.into()), false).unwrap();
            tx.commit();
            continue;
        }
        let r = tx.put_object(&mrec, id.as_str(), ObjType::Map).unwrap();
        if one_value {
            tx.put(&r, "v", v).unwrap();
            tx.put(&r, "status", "received").unwrap();
            tx.commit();
            continue;
        }
        tx.put(&r, "conversation_id", key.as_str()).unwrap();
        tx.put(&r, "direction", dir).unwrap();
        tx.put(&r, "kind", "text").unwrap();
        tx.put(&r, "text", "¿Cuánto cuesta el vestido rojo?").unwrap();
        tx.put(&r, "payload", "{}").unwrap();
        tx.put(&r, "wamid", format!("wamid.B{i:08}")).unwrap();
        tx.put(&r, "status", "received").unwrap();
        tx.put(&r, "error", "").unwrap();
        tx.put(&r, "sender", "customer").unwrap();
        tx.put(&r, "context_wamid", "").unwrap();
        tx.put(&r, "explain", "").unwrap();
        tx.put(&r, "at", i as i64).unwrap();
        tx.put(&r, "created_at", i as i64).unwrap();
        tx.commit();
    }
    let mut tx = conv.transaction();
    tx.put(&o, "bot_node", "price").unwrap();
    tx.put(&o, "misunderstood", 0_i64).unwrap();
    tx.put(&o, "updated_at", i as i64).unwrap();
    tx.commit();
}

/// The same messages in a compact layout, a batch at a time: a message's fixed fields as one
/// value beside its status, one change per document per batch, a conversation's fields written
/// once per batch.
fn answered_compact(convs: &mut [Automerge], msgs: &mut [Automerge], batch: std::ops::Range<usize>, customers: usize) {
    let mut by_conv: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for i in batch {
        by_conv.entry(i % customers).or_default().push(i);
    }
    let mut per_conv_doc: std::collections::BTreeMap<usize, Vec<(usize, usize)>> = std::collections::BTreeMap::new();
    let mut per_msg_doc: std::collections::BTreeMap<usize, Vec<(usize, usize)>> = std::collections::BTreeMap::new();
    for (c, is) in &by_conv {
        per_conv_doc.entry(c % convs.len()).or_default().push((*c, *is.last().unwrap()));
        for i in is {
            per_msg_doc.entry(c % msgs.len()).or_default().push((*c, *i));
        }
    }
    for (d, items) in per_conv_doc {
        let conv = &mut convs[d];
        let crec = conv.get(ROOT, "records").unwrap().unwrap().1;
        let mut tx = conv.transaction();
        for (c, last) in items {
            let key = format!("conv-{c:08}");
            let o = match tx.get(&crec, key.as_str()).unwrap() {
                Some((_, o)) => o,
                None => {
                    let o = tx.put_object(&crec, key.as_str(), ObjType::Map).unwrap();
                    tx.put(&o, "v", r#"{"customer_id":"x","wa_id":"x","phone_number_id":"x"}"#).unwrap();
                    tx.put(&o, "state", "pending").unwrap();
                    o
                }
            };
            tx.put(&o, "bot", r#"{"node":"price","misunderstood":0}"#).unwrap();
            tx.put(&o, "updated_at", last as i64).unwrap();
        }
        tx.commit();
    }
    for (d, items) in per_msg_doc {
        let m = &mut msgs[d];
        let mrec = m.get(ROOT, "records").unwrap().unwrap().1;
        let mut tx = m.transaction();
        for (c, i) in items {
            for dir in ["in", "out"] {
                let r = tx.put_object(&mrec, format!("msg-{i:08}-{dir}").as_str(), ObjType::Map).unwrap();
                let v = format!(
                    r#"{{"conversation_id":"conv-{c:08}","direction":"{dir}","kind":"text","text":"¿Cuánto cuesta el vestido rojo?","payload":{{}},"sender":"customer","at":{i}}}"#
                );
                tx.put(&r, "v", v).unwrap();
                tx.put(&r, "status", "received").unwrap();
            }
        }
        tx.commit();
    }
}

fn docs(n: usize, collection: &str) -> Vec<Automerge> {
    (0..n)
        .map(|_| {
            let mut d = Automerge::new();
            let mut tx = d.transaction();
            tx.put(ROOT, "collection", collection).unwrap();
            tx.put_object(ROOT, "records", ObjType::Map).unwrap();
            tx.commit();
            d
        })
        .collect()
}

/// Writes `n` answered messages both ways, then has a second replica apply them: µs per message.
fn messages(n: usize, customers: usize) {
    println!("== Automerge floor: {n} answered WhatsApp messages from {customers} customers ==");
    for mode in 0..4 {
        let compact = mode == 2;
        let (mut convs, mut msgs) = (docs(1024, "conversations"), docs(64, "messages"));
        let heads: Vec<Vec<automerge::ChangeHash>> = convs.iter().chain(&msgs).map(|d| d.get_heads()).collect();
        let t = Instant::now();
        if compact {
            for start in (0..n).step_by(256) {
                answered_compact(&mut convs, &mut msgs, start..(start + 256).min(n), customers);
            }
        } else {
            for i in 0..n {
                answered_per_field(&mut convs, &mut msgs, i, customers, mode != 0, mode == 3);
            }
        }
        let write = t.elapsed();
        let changes: Vec<Vec<Change>> = convs.iter().chain(&msgs).zip(&heads).map(|(d, h)| d.get_changes(h)).collect();
        let mut replica: Vec<Automerge> =
            convs.iter().chain(&msgs).zip(&heads).map(|(d, h)| d.fork_at(h).unwrap()).collect();
        let t = Instant::now();
        for (d, cs) in replica.iter_mut().zip(changes) {
            d.apply_changes(cs).unwrap();
        }
        let apply = t.elapsed();
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{}: written in {:.2} s ({:.0} µs per message), applied by a second replica in {:.2} s ({:.0} µs per message)",
            [
                "field by field, four changes per message (before)",
                "fixed fields sealed as one value, four changes per message (sessions 10–25)",
                "sealed, one change per document per batch of 256",
                "sealed, each record made in one go (batch_create_object), four changes per message"
            ][mode],
            write.as_secs_f64(),
            us(write),
            apply.as_secs_f64(),
            us(apply)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().is_some_and(|a| a == "messages") {
        let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
        let customers = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(500);
        messages(n, customers);
        return;
    }
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let per_shard = n.div_ceil(SHARDS);
    println!(
        "== Automerge floor: 2 replicas x {} products ({per_shard} per shard, {SHARDS} shards) ==",
        per_shard * SHARDS
    );
    let g = genesis();
    // Both replicas hold the genesis, then write offline.
    let mut left: Vec<Automerge> = (0..SHARDS).map(|_| g.clone()).collect();
    let mut right: Vec<Automerge> = (0..SHARDS).map(|_| g.clone()).collect();
    let t = Instant::now();
    for (s, d) in left.iter_mut().enumerate() {
        write_products(d, 1, s, per_shard);
    }
    for (s, d) in right.iter_mut().enumerate() {
        write_products(d, 2, s, per_shard);
    }
    let write = t.elapsed();
    let gh = g.get_heads();
    let right_changes: Vec<Vec<Change>> = right.iter().map(|d| d.get_changes(&gh)).collect();

    // apply: one replica applies the other's changes.
    let mut copy: Vec<Automerge> = left.iter().map(Automerge::clone).collect();
    let t = Instant::now();
    for (d, cs) in copy.iter_mut().zip(&right_changes) {
        d.apply_changes(cs.iter().cloned()).unwrap();
    }
    let apply = t.elapsed();
    drop(copy);

    // sync: the two replicas directly, both ways (both know the other holds the genesis).
    let (mut l2, mut r2): (Vec<Automerge>, Vec<Automerge>) =
        (left.iter().map(Automerge::clone).collect(), right.iter().map(Automerge::clone).collect());
    let (mut tl, mut tr) = (Duration::ZERO, Duration::ZERO);
    let mut messages = 0;
    for (a, b) in l2.iter_mut().zip(r2.iter_mut()) {
        messages += sync_until_quiet(&mut side(a, &gh), &mut side(b, &gh), &mut tl, &mut tr);
    }
    assert!(l2.iter().zip(&r2).all(|(a, b)| a.get_heads() == b.get_heads()));
    drop((l2, r2));

    // relay: as deployed, each replica syncs with a relay that holds the genesis: first both
    // upload, then each receives the other's changes (each side's sync state kept, as the relay
    // and the nodes persist them). Once with Automerge's default, once with DashOffice's rule.
    WHOLE_DOCS.store(true, std::sync::atomic::Ordering::Relaxed);
    let (dl, dr, dre, _) = through_relay(&g, &left, &right);
    WHOLE_DOCS.store(false, std::sync::atomic::Ordering::Relaxed);
    let (nl, nr, tre, relayed) = through_relay(&g, &left, &right);

    let changes = per_shard * SHARDS;
    let us = |d: std::time::Duration, k: usize| d.as_secs_f64() * 1e6 / k as f64;
    println!(
        "write {changes} products per replica, both: {:.2} s ({:.1} µs per change)",
        write.as_secs_f64(),
        us(write, 2 * changes)
    );
    println!(
        "apply the other replica's {changes} changes: {:.2} s ({:.1} µs per change)",
        apply.as_secs_f64(),
        us(apply, changes)
    );
    println!(
        "sync protocol, the two directly ({messages} messages): {:.2} s + {:.2} s",
        tl.as_secs_f64(),
        tr.as_secs_f64()
    );
    println!(
        "sync protocol through a relay ({relayed} messages): node 1 {:.2} s, node 2 {:.2} s, relay {:.2} s",
        nl.as_secs_f64(),
        nr.as_secs_f64(),
        tre.as_secs_f64()
    );
    println!(
        "the same with Automerge's default (whole documents when the peer lacks a third): node 1 {:.2} s, node 2 {:.2} s, relay {:.2} s",
        dl.as_secs_f64(),
        dr.as_secs_f64(),
        dre.as_secs_f64()
    );
    let total = nl + nr + tre;
    println!(
        "RESULT automerge floor n={changes}: Automerge CPU for one convergence through a relay {:.2} s, i.e. {:.2} s on 2 cores if perfectly parallel",
        total.as_secs_f64(),
        total.as_secs_f64() / 2.0
    );
}
