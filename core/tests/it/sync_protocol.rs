//! The Automerge sync protocol between two replicas through the core's API, with sync states
//! persisted so that a reconnect resumes instead of starting over.

use dashoffice_core::{
    Durability, OpenOptions, Replica,
    domain::api::{DecimalText, UpdateProduct},
    entities::products,
    sync::SyncPeer,
};

use crate::fixtures::{heads_dump, product_input, projection_dump, shop};

/// Syncs until neither side has anything to say; returns the bytes and the changes the messages
/// carried.
async fn sync_until_quiet(a: &Replica, pa: &mut SyncPeer, b: &Replica, pb: &mut SyncPeer) -> (usize, usize) {
    let (mut bytes, mut changes) = (0, 0);
    let count = |m: &[u8]| automerge::sync::Message::decode(m).map(|m| m.changes.len()).unwrap_or(0);
    for _round in 0..50 {
        let mut quiet = true;
        let mut ids = a.doc_ids().unwrap();
        ids.extend(b.doc_ids().unwrap());
        ids.sort();
        ids.dedup();
        for id in &ids {
            if let Some(m) = a.sync_generate(pb, id).await.unwrap() {
                (bytes, changes) = (bytes + m.len(), changes + count(&m));
                b.sync_receive(pa, id, m).await.unwrap();
                quiet = false;
            }
            if let Some(m) = b.sync_generate(pa, id).await.unwrap() {
                (bytes, changes) = (bytes + m.len(), changes + count(&m));
                a.sync_receive(pb, id, m).await.unwrap();
                quiet = false;
            }
        }
        if quiet {
            return (bytes, changes);
        }
    }
    panic!("sync did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_protocol_converges_and_resumes_after_restart() {
    let nodes = shop(2);
    let (a, b) = (&nodes[0], &nodes[1]);
    for i in 0..50 {
        let c = a.caller.clone();
        a.replica.write(move |ctx| products::create(ctx, &c, product_input(&format!("P-{i}"), "5"))).await.unwrap();
    }
    // `pa` is A as seen by B (B's state about A), `pb` is B as seen by A.
    let (mut pa, mut pb) = (SyncPeer::new("A"), SyncPeer::new("B"));
    let (first, first_changes) = sync_until_quiet(&a.replica, &mut pa, &b.replica, &mut pb).await;
    assert!(first_changes > 0);
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));

    // Fresh in-memory peers (a reconnect): the persisted shared heads make it cheap.
    let (mut pa2, mut pb2) = (SyncPeer::new("A"), SyncPeer::new("B"));
    let (again, again_changes) = sync_until_quiet(&a.replica, &mut pa2, &b.replica, &mut pb2).await;
    assert_eq!(again_changes, 0, "a resumed sync must not resend changes ({again} bytes; {first} the first time)");
    assert!(again * 2 < first, "a resumed sync sends heads only: {again} vs {first} bytes");

    // One more edit travels.
    let c = b.caller.clone();
    b.replica.write(move |ctx| products::create(ctx, &c, product_input("NEW", "1"))).await.unwrap();
    sync_until_quiet(&a.replica, &mut pa2, &b.replica, &mut pb2).await;
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));

    // Stepping documents nobody changed since the peers were last in sync says nothing, also with
    // a fresh in-memory state: an in-sync peer leaves a bare greeting unanswered, and waiting for
    // that answer held a document back for the 30 s answer timeout.
    let mut pb3 = SyncPeer::new("B");
    let ids: Vec<_> = a.replica.doc_ids().unwrap().into_iter().map(|id| (id, None)).collect();
    for step in a.replica.sync_steps(&mut pb3, ids).await.unwrap() {
        assert!(step.reply.is_none() && step.in_sync && !step.awaits_answer, "{} was stepped: {step:?}", step.doc);
    }

    // The heads a replica reports (kept by its writer) are those of the stored documents, also
    // after a write that changed a document and then failed (rolled back).
    let c = a.caller.clone();
    let failed = a
        .replica
        .write(move |ctx| {
            products::create(ctx, &c, product_input("ROLLED-BACK", "1"))?;
            Err::<(), _>(dashoffice_core::CoreError::Storage("made to fail".into()))
        })
        .await;
    assert!(failed.is_err());
    for r in [&a.replica, &b.replica] {
        for id in r.doc_ids().unwrap() {
            let stored = r.load_doc(&id).unwrap().map(|d| d.get_heads()).unwrap_or_default();
            assert_eq!(r.heads(&id).unwrap(), stored, "heads of {id}");
        }
    }
}

#[test]
fn a_reopened_replica_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || OpenOptions { durability: Durability::Full, readers: 1, ..Default::default() };
    let r = Replica::open(dir.path(), opts()).unwrap();
    let nodes = shop(1);
    crate::fixtures::push_all(&nodes[0].replica, &r);
    let before = (heads_dump(&r), projection_dump(&r));
    let device = r.device().code.clone();
    r.shutdown();
    drop(r);
    let r = Replica::open(dir.path(), opts()).unwrap();
    assert_eq!((heads_dump(&r), projection_dump(&r)), before);
    assert_eq!(r.device().code, device);
}

#[test]
fn a_change_that_arrives_before_its_dependencies_survives_a_restart() {
    let nodes = shop(1);
    let a = &nodes[0];
    let c = a.caller.clone();
    let p = a.replica.write_blocking(move |ctx| products::create(ctx, &c, product_input("OOO", "1"))).unwrap();
    let (c, pid) = (a.caller.clone(), p.id.clone());
    a.replica
        .write_blocking(move |ctx| {
            products::update(
                ctx,
                &c,
                &pid,
                dashoffice_core::domain::api::UpdateProduct { price: Some("2.50".into()), ..Default::default() },
            )
        })
        .unwrap();
    let doc_id = dashoffice_core::doc::DocId::products(&a.caller.shop_id, &p.id);
    let changes = a.replica.load_doc(&doc_id).unwrap().unwrap().get_changes(&[]);
    let last = changes.last().unwrap().raw_bytes().to_vec();

    let dir = tempfile::tempdir().unwrap();
    let opts = || OpenOptions { durability: Durability::Full, readers: 1, ..Default::default() };
    let b = Replica::open(dir.path(), opts()).unwrap();
    // The price change arrives first; its parent (the creation) is still missing.
    assert_eq!(b.apply_changes_blocking(&doc_id, last).unwrap(), 0);
    b.shutdown();
    drop(b);
    let b = Replica::open(dir.path(), opts()).unwrap();
    // Now everything else arrives: the waiting change applies too.
    for ch in &changes[..changes.len() - 1] {
        b.apply_changes_blocking(&doc_id, ch.raw_bytes().to_vec()).unwrap();
    }
    let got = b.read(|conn| products::get(conn, &a.caller.shop_id, &p.id)).unwrap();
    assert_eq!(got.price, "2.50");
    assert_eq!(heads_dump(&b), vec![format!("{doc_id}: {}", a.replica.heads(&doc_id).unwrap()[0])]);
}

/// A replica that receives documents whole (the peer sends the full document when most of it is
/// missing) edits them afterwards like any other, keeps them through a reindex, and its edits
/// travel back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_received_whole_are_edited_kept_and_synced_back() {
    let nodes = shop(2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ids = Vec::new();
    for i in 0..40 {
        let c = a.caller.clone();
        let p = a.replica.write(move |ctx| products::create(ctx, &c, product_input(&format!("W-{i}"), "5"))).await;
        ids.push(p.unwrap().id);
    }
    // Several changes to one product, so its document is more than a genesis and one change.
    for price in ["6", "7", "8"] {
        let (c, id) = (a.caller.clone(), ids[0].clone());
        let input = UpdateProduct { price: Some(DecimalText(price.into())), ..Default::default() };
        a.replica.write(move |ctx| products::update(ctx, &c, &id, input)).await.unwrap();
    }
    let (mut pa, mut pb) = (SyncPeer::new("A"), SyncPeer::new("B"));
    sync_until_quiet(&a.replica, &mut pa, &b.replica, &mut pb).await;
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));

    for id in &ids[..3] {
        let (c, id) = (b.caller.clone(), id.clone());
        let input = UpdateProduct { price: Some(DecimalText("9.50".into())), ..Default::default() };
        b.replica.write(move |ctx| products::update(ctx, &c, &id, input)).await.unwrap();
    }
    sync_until_quiet(&a.replica, &mut pa, &b.replica, &mut pb).await;
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));
    let price: String = a
        .replica
        .read({
            let id = ids[0].clone();
            move |c| Ok(c.query_row("SELECT price FROM products WHERE id = ?1", [&id], |r| r.get(0))?)
        })
        .unwrap();
    assert_eq!(price, "9.50");
    // What B stored survives a reindex from its documents.
    let before = projection_dump(&b.replica);
    b.replica.reindex(|_, _| {}).unwrap();
    assert_eq!(projection_dump(&b.replica), before);
}

/// A new replica that receives documents prepared beside its writer (`prepare_sync`, as the sync
/// client does during an initial sync) ends up exactly where one that applied them itself would:
/// same documents, same projection, and sync states that let a reconnect resume cheaply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_prepared_beside_the_writer_sync_like_any_other() {
    let nodes = shop(3);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    for i in 0..60 {
        let cl = a.caller.clone();
        a.replica.write(move |ctx| products::create(ctx, &cl, product_input(&format!("Q-{i}"), "5"))).await.unwrap();
    }
    // B learns everything through prepared documents; C through the plain path.
    let (mut pa, mut pb) = (SyncPeer::new("A"), SyncPeer::new("B"));
    let mut prepared = 0;
    for _round in 0..50 {
        let mut quiet = true;
        let mut ids = a.replica.doc_ids().unwrap();
        ids.extend(b.replica.doc_ids().unwrap());
        ids.sort();
        ids.dedup();
        for id in &ids {
            let mut to_b = a.replica.sync_generate(&mut pb, id).await.unwrap();
            while let Some(m) = to_b.take() {
                quiet = false;
                let doc = b.replica.prepare_sync(id, &m);
                prepared += usize::from(doc.is_some());
                let steps = b.replica.sync_steps_prepared(&mut pa, vec![(id.clone(), Some(m), doc)]).await.unwrap();
                if let Some(reply) = steps.into_iter().next().and_then(|s| s.reply) {
                    a.replica.sync_receive(&mut pb, id, reply).await.unwrap();
                    to_b = a.replica.sync_generate(&mut pb, id).await.unwrap();
                }
            }
        }
        if quiet {
            break;
        }
    }
    assert!(prepared > 0, "no document was prepared");
    let (mut pa_c, mut pc) = (SyncPeer::new("A"), SyncPeer::new("C"));
    sync_until_quiet(&a.replica, &mut pa_c, &c.replica, &mut pc).await;
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));
    assert_eq!(projection_dump(&b.replica), projection_dump(&c.replica));

    // A reconnect (fresh in-memory peers) resumes from the persisted states: little to say.
    let (mut pa2, mut pb2) = (SyncPeer::new("A"), SyncPeer::new("B"));
    let (again, again_changes) = sync_until_quiet(&a.replica, &mut pa2, &b.replica, &mut pb2).await;
    assert_eq!(again_changes, 0, "resuming after prepared documents resent changes");
    let (mut pa3, mut pc3) = (SyncPeer::new("A"), SyncPeer::new("C"));
    let (again_plain, _) = sync_until_quiet(&a.replica, &mut pa3, &c.replica, &mut pc3).await;
    assert!(again <= again_plain * 2 + 64, "resuming after prepared documents sent {again} bytes, plain {again_plain}");

    // B's documents are edited like any other and its edits travel back.
    let id = a
        .replica
        .read(|c| Ok(c.query_row("SELECT id FROM products ORDER BY sku LIMIT 1", [], |r| r.get::<_, String>(0))?))
        .unwrap();
    let (cl, pid) = (b.caller.clone(), id.clone());
    let input = UpdateProduct { price: Some(DecimalText("7.25".into())), ..Default::default() };
    b.replica.write(move |ctx| products::update(ctx, &cl, &pid, input)).await.unwrap();
    sync_until_quiet(&a.replica, &mut pa2, &b.replica, &mut pb2).await;
    let price: String = a
        .replica
        .read(move |c| Ok(c.query_row("SELECT price FROM products WHERE id = ?1", [&id], |r| r.get(0))?))
        .unwrap();
    assert_eq!(price, "7.25");
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
}

/// A write that fails after changing a document and the projection leaves neither behind, whether
/// it ran alone in its transaction (rolled back whole) or beside others (rolled back to its
/// savepoint, the others kept).
/// The first half of a write that will not finish: a document change under key `name` and a row
/// in `sequences` named `name`.
fn half_write(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    doc: &dashoffice_core::doc::DocId,
    name: &str,
) -> dashoffice_core::Result<()> {
    ctx.change(doc, &[], |tx, records| {
        use automerge::transaction::Transactable;
        tx.put(records, name, "half-written")?;
        Ok(())
    })?;
    ctx.conn().execute("INSERT INTO sequences(name, value) VALUES (?1, 1)", [name])?;
    Ok(())
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_alone_or_in_a_batch() {
    let nodes = shop(1);
    let r = &nodes[0].replica;
    let shop_id = nodes[0].caller.shop_id.clone();
    let before = (heads_dump(r), projection_dump(r));
    let failing = |n: usize| {
        let doc = dashoffice_core::doc::DocId::products(&shop_id, &format!("failing-{n}"));
        move |ctx: &mut dashoffice_core::WriteCtx<'_>| -> dashoffice_core::Result<()> {
            half_write(ctx, &doc, "failing")?;
            Err(dashoffice_core::CoreError::Storage("refused on purpose".into()))
        }
    };
    // Alone.
    assert!(r.write(failing(1)).await.is_err());
    assert_eq!((heads_dump(r), projection_dump(r)), before);
    // Beside successful writes queued at the same time.
    let ok = |sku: &'static str| {
        let caller = nodes[0].caller.clone();
        r.write(move |ctx| products::create(ctx, &caller, product_input(sku, "10.00")))
    };
    let (a, failed, b) = tokio::join!(ok("OK-1"), r.write(failing(2)), ok("OK-2"));
    assert!(a.is_ok() && b.is_ok() && failed.is_err());
    let seq: i64 = r
        .read(|c| Ok(c.query_row("SELECT count(*) FROM sequences WHERE name = 'failing'", [], |x| x.get(0))?))
        .unwrap();
    assert_eq!(seq, 0);
    let skus: Vec<String> = r
        .read(|c| {
            Ok(c.prepare("SELECT sku FROM products ORDER BY sku")?
                .query_map([], |x| x.get(0))?
                .collect::<Result<_, _>>()?)
        })
        .unwrap();
    assert!(skus.contains(&"OK-1".to_string()) && skus.contains(&"OK-2".to_string()));
    assert!(heads_dump(r).iter().all(|h| !h.contains("failing")));
}

#[tokio::test]
async fn a_write_that_panics_is_undone_and_the_writer_keeps_serving() {
    let nodes = shop(1);
    let r = &nodes[0].replica;
    let shop_id = nodes[0].caller.shop_id.clone();
    let before = (heads_dump(r), projection_dump(r));
    let doc = dashoffice_core::doc::DocId::products(&shop_id, "panicking");
    let panicking = move |ctx: &mut dashoffice_core::WriteCtx<'_>| -> dashoffice_core::Result<()> {
        half_write(ctx, &doc, "panicking")?;
        panic!("a bug in a write");
    };
    let err = r.write(panicking).await.unwrap_err();
    assert!(err.to_string().contains("a bug in a write"), "{err}");
    assert_eq!((heads_dump(r), projection_dump(r)), before);
    // The writer thread is still there: the next write is stored.
    let caller = nodes[0].caller.clone();
    let p = r.write(move |ctx| products::create(ctx, &caller, product_input("AFTER-1", "10.00"))).await.unwrap();
    assert_eq!(p.sku, "AFTER-1");
}
