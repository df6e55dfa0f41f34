//! Document schema migrations are deterministic: two replicas that migrate the same document
//! separately, after diverging, produce the very same migration change and converge.

use automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use dashoffice_core::{
    doc::{self, Collection, DocId, DocMigration},
    entities::products,
};

use crate::fixtures::{heads_dump, product_input, projection_dump, push_all, shop};

fn add_meta(
    tx: &mut automerge::transaction::Transaction<'_>,
    _c: Collection,
    _records: &automerge::ObjId,
) -> dashoffice_core::Result<()> {
    let meta = tx.put_object(ROOT, "meta", ObjType::Map)?;
    tx.put(&meta, "currency_rules", "v2")?;
    Ok(())
}

const V2: &[DocMigration] = &[DocMigration { to: 2, apply: add_meta }];

#[test]
fn replicas_migrating_apart_produce_identical_changes() {
    let nodes = shop(2);
    let (a, b) = (&nodes[0], &nodes[1]);
    // Both replicas write to the catalog while apart.
    let mut ids = Vec::new();
    for (n, sku) in [(a, "A-1"), (b, "B-1"), (a, "A-2"), (b, "B-2")] {
        let c = n.caller.clone();
        ids.push(n.replica.write_blocking(move |ctx| products::create(ctx, &c, product_input(sku, "1"))).unwrap().id);
    }
    // Each migrates every catalog document it has, independently.
    for n in [a, b] {
        for id in n.replica.doc_ids().unwrap() {
            if id.scope().unwrap().collection != Collection::Products {
                continue;
            }
            let did = id.clone();
            let migrated = n
                .replica
                .write_blocking(move |ctx| ctx.with_doc_mut(&did, |d| doc::migrate(d, Collection::Products, V2)))
                .unwrap();
            assert!(migrated);
            // Migrating again does nothing.
            let did = id.clone();
            assert!(
                !n.replica
                    .write_blocking(move |ctx| ctx.with_doc_mut(&did, |d| doc::migrate(d, Collection::Products, V2)))
                    .unwrap()
            );
        }
    }
    push_all(&a.replica, &b.replica);
    push_all(&b.replica, &a.replica);
    assert_eq!(heads_dump(&a.replica), heads_dump(&b.replica));
    assert_eq!(projection_dump(&a.replica), projection_dump(&b.replica));
    let shop_id = a.caller.shop_id.clone();
    for pid in &ids {
        let d = a.replica.load_doc(&DocId::products(&shop_id, pid)).unwrap().unwrap();
        assert_eq!(doc::schema_version(&d), 2);
        // Exactly one migration change per document, whoever made it first.
        let migration_changes =
            d.get_changes(&[]).iter().filter(|c| c.actor_id().to_bytes().starts_with(b"dashoffice-mig-")).count();
        assert_eq!(migration_changes, 1, "the two replicas' migrations must be the same change");
        let meta = d.get(ROOT, "meta").unwrap().unwrap().1;
        assert_eq!(d.get(&meta, "currency_rules").unwrap().unwrap().0.to_string(), "\"v2\"");
    }
}

#[test]
fn the_migration_list_applies_to_an_empty_database() {
    // The migrations of migrations/*.sql run on a fresh file when a replica opens.
    let (r, _dir) = crate::fixtures::open_node();
    let n: i64 = r
        .read(|c| Ok(c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'products'", [], |x| x.get(0))?))
        .unwrap();
    assert_eq!(n, 1);
}
