//! Search: the index follows local writes, synced changes and restarts, folds accents and case,
//! forgives a typo, and shows only what the caller may see.

use std::time::{Duration, Instant};

use dashoffice_core::{
    Caller, CoreError, OpenOptions, Replica,
    domain::{
        Role,
        api::{CreateCustomer, CreateOrder, OrderLineInput, SearchParams, SearchResults, UpdateProduct},
    },
    entities::{customers, inbox, orders, products},
};

use crate::fixtures::{product_input, shop, sync_pair};

fn params(q: &str) -> SearchParams {
    SearchParams { q: Some(q.into()), ..Default::default() }
}

/// Searches until the index has caught up and `done` holds (the indexer runs once writes
/// pause); the last answer either way, for the assertion to show.
fn search_until(r: &Replica, c: &Caller, p: SearchParams, done: impl Fn(&SearchResults) -> bool) -> SearchResults {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = r.search(c, &p).unwrap();
        if (!found.indexing && done(&found)) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn titles(found: &SearchResults) -> Vec<String> {
    found.hits.iter().map(|h| format!("{}:{}", h.kind, h.title)).collect()
}

#[test]
fn search_folds_accents_forgives_typos_follows_sync_and_respects_branches() {
    let nodes = shop(2);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    let branch: String = r.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let b2 = branch.clone();
    let (cafe, order, conversation) = r
        .write_blocking(move |ctx| {
            let mut p = product_input("CAF-001", "180.00");
            p.name = "Café de Chiapas".into();
            p.description = "Grano entero, tostado medio".into();
            let cafe = products::create(ctx, &c2, p)?;
            let mut old = product_input("CAF-000", "90.00");
            old.name = "Café viejo".into();
            let old = products::create(ctx, &c2, old)?;
            products::archive(ctx, &c2, &old.id)?;
            let jose = customers::create(
                ctx,
                &c2,
                CreateCustomer {
                    name: "José Núñez".into(),
                    phone: Some("+52 55 1234 5678".into()),
                    email: Some("jose@correo.mx".into()),
                    tax_id: Some("nuij800101ab3".into()),
                    ..Default::default()
                },
            )?;
            let order = orders::create(
                ctx,
                &c2,
                None,
                CreateOrder {
                    customer_id: jose.id,
                    branch_id: Some(b2.clone()),
                    seller_id: None,
                    lines: vec![OrderLineInput { product_id: cafe.id.clone(), quantity: 2, unit_price: None }],
                    notes: "Regalo: envolver con moño".into(),
                },
            )?;
            let shop = c2.shop_id.clone();
            let got = inbox::receive(
                ctx,
                &shop,
                &b2,
                &inbox::Inbound {
                    wamid: "wamid.S1".into(),
                    wa_id: "5215598765432".into(),
                    profile_name: "Lucía".into(),
                    phone_number_id: "100".into(),
                    kind: "text".into(),
                    text: "¿Tienen café molido para cafetera italiana?".into(),
                    at: 1_764_600_000_000,
                    ..Default::default()
                },
            )?;
            Ok((cafe, order, got.conversation_id))
        })
        .unwrap();

    // Accents and case do not matter; a word may be cut short; one typo in a long word.
    for q in ["cafe chiapas", "CAFÉ", "chiap", "chiapaz", "CAF-001", "grano tostado"] {
        let found = search_until(r, &c, params(q), |f| !f.hits.is_empty());
        assert_eq!(found.hits.first().map(|h| h.id.as_str()), Some(cafe.id.as_str()), "{q}: {:?}", titles(&found));
        assert_eq!(found.hits[0].link, format!("/products/{}", cafe.id));
        assert!(found.hits[0].subtitle.contains("CAF-001"), "{:?}", found.hits[0]);
    }
    // An archived product is not found.
    let found = search_until(r, &c, params("viejo"), |f| f.hits.is_empty());
    assert!(found.hits.is_empty(), "{:?}", titles(&found));
    // Customers by name, phone (as typed or its last ten digits), e-mail and tax id.
    for q in ["jose nunez", "5512345678", "55 1234 5678", "+52 55 12", "jose@correo.mx", "NUIJ800101AB3"] {
        let found = search_until(r, &c, params(q), |f| f.hits.iter().any(|h| h.kind == "customer"));
        assert!(titles(&found).contains(&"customer:José Núñez".to_string()), "{q}: {:?}", titles(&found));
    }
    // Orders by number and notes, shown with the customer's name.
    for q in [order.number.as_str(), "envolver moño"] {
        let found = search_until(r, &c, params(q), |f| f.hits.iter().any(|h| h.kind == "order"));
        let hit = found.hits.iter().find(|h| h.kind == "order").unwrap_or_else(|| panic!("{q}: {:?}", titles(&found)));
        assert_eq!((hit.title.as_str(), hit.link.clone()), (order.number.as_str(), format!("/orders/{}", order.id)));
        assert!(hit.subtitle.contains("José Núñez"), "{hit:?}");
    }
    // Orders by their customer's name too, and by the new name after a rename.
    let found = search_until(r, &c, params("nunez"), |f| f.hits.iter().any(|h| h.kind == "order"));
    assert!(titles(&found).contains(&format!("order:{}", order.number)), "{:?}", titles(&found));
    let (c4, jose) = (c.clone(), order.customer_id.clone());
    r.write_blocking(move |ctx| {
        customers::update(
            ctx,
            &c4,
            &jose,
            dashoffice_core::domain::api::UpdateCustomer { name: Some("José Ibáñez".into()), ..Default::default() },
        )
    })
    .unwrap();
    let found = search_until(r, &c, params("ibanez"), |f| f.hits.iter().any(|h| h.kind == "order"));
    assert!(titles(&found).contains(&format!("order:{}", order.number)), "{:?}", titles(&found));
    // A WhatsApp message, leading to its conversation.
    let found = search_until(r, &c, params("cafetera italiana"), |f| !f.hits.is_empty());
    assert_eq!(titles(&found), ["message:Lucía"]);
    assert_eq!(found.hits[0].link, format!("/conversations/{conversation}"));
    // Only the kinds asked for.
    let only = SearchParams { kinds: Some("product".into()), ..params("cafe") };
    let found = search_until(r, &c, only, |_| true);
    assert!(found.hits.iter().all(|h| h.kind == "product") && !found.hits.is_empty(), "{:?}", titles(&found));

    // A seller of another branch sees the shop's products and customers, not this branch's
    // orders or conversations.
    let other = Caller { role: Role::Seller, branch_id: Some("elsewhere".into()), ..c.clone() };
    let found = search_until(r, &other, params("cafe"), |f| !f.hits.is_empty());
    assert_eq!(titles(&found), ["product:Café de Chiapas"], "{:?}", titles(&found));
    assert!(search_until(r, &other, params("envolver"), |_| true).hits.is_empty());
    let seller_here = Caller { role: Role::Seller, branch_id: Some(branch.clone()), ..c.clone() };
    assert_eq!(search_until(r, &seller_here, params("envolver"), |f| !f.hits.is_empty()).hits.len(), 1);

    // The other replica indexes what sync brought.
    let r2 = &nodes[1].replica;
    sync_pair(r, r2);
    let found = search_until(r2, &c, params("chiapas"), |f| !f.hits.is_empty());
    assert_eq!(titles(&found), ["product:Café de Chiapas"]);

    // A rename is followed: the old words no longer find it, the new ones do.
    let (c3, id) = (c.clone(), cafe.id.clone());
    r.write_blocking(move |ctx| {
        products::update(ctx, &c3, &id, UpdateProduct { name: Some("Té verde".into()), ..Default::default() })
    })
    .unwrap();
    let found = search_until(r, &c, params("verde"), |f| !f.hits.is_empty());
    assert_eq!(titles(&found), ["product:Té verde"]);
    assert!(search_until(r, &c, params("chiapas"), |f| f.hits.is_empty()).hits.is_empty());
}

#[test]
fn bad_queries_are_refused_by_field_and_rule() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let rule = |p: SearchParams| match r.search(&c, &p) {
        Err(CoreError::Validation(e)) => (e.0[0].field.clone(), e.0[0].rule.clone()),
        other => panic!("expected a validation error, got {other:?}"),
    };
    assert_eq!(rule(SearchParams::default()), ("q".into(), "required".into()));
    assert_eq!(rule(params("¿?")), ("q".into(), "words".into()));
    assert_eq!(rule(SearchParams { kinds: Some("invoice".into()), ..params("x") }), ("kinds".into(), "one_of".into()));
    assert_eq!(rule(SearchParams { limit: Some(51), ..params("x") }), ("limit".into(), "range".into()));
}

#[test]
fn the_index_catches_up_at_start_with_what_changed_while_it_was_off_or_broken() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let dir = nodes[0]._dir.path().to_path_buf();
    let c2 = c.clone();
    let mango = r.write_blocking(move |ctx| {
        let mut p = product_input("MAN-001", "35.00");
        p.name = "Mango Ataúlfo".into();
        products::create(ctx, &c2, p)
    });
    let mango = mango.unwrap();
    assert_eq!(search_until(r, &c, params("ataulfo"), |f| !f.hits.is_empty()).hits.len(), 1);
    r.shutdown();

    // Written by a replica without the index (as if the process died before indexing it).
    let off = Replica::open(&dir, OpenOptions { search: false, ..Default::default() }).unwrap();
    assert!(matches!(off.search(&c, &params("mango")), Err(CoreError::Unavailable(_))));
    let c3 = c.clone();
    let id = mango.id.clone();
    off.write_blocking(move |ctx| {
        let mut p = product_input("PAP-001", "28.00");
        p.name = "Papaya maradol".into();
        products::create(ctx, &c3, p)?;
        products::archive(ctx, &c3, &id)
    })
    .unwrap();
    off.shutdown();
    let again = Replica::open(&dir, OpenOptions::default()).unwrap();
    assert_eq!(titles(&search_until(&again, &c, params("papaya"), |f| !f.hits.is_empty())), ["product:Papaya maradol"]);
    assert!(search_until(&again, &c, params("mango"), |f| f.hits.is_empty()).hits.is_empty());
    again.shutdown();

    // A damaged index is rebuilt from the projection.
    let meta = dir.join("search").join("meta.json");
    assert!(meta.exists());
    std::fs::write(&meta, b"{ not json").unwrap();
    let rebuilt = Replica::open(&dir, OpenOptions::default()).unwrap();
    assert_eq!(
        titles(&search_until(&rebuilt, &c, params("maradol"), |f| !f.hits.is_empty())),
        ["product:Papaya maradol"]
    );
    rebuilt.shutdown();
}

#[test]
fn an_index_opened_on_demand_holds_what_came_before_and_follows_what_comes_during_and_after() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let dir = nodes[0]._dir.path().to_path_buf();
    r.shutdown();
    std::fs::remove_dir_all(dir.join("search")).unwrap();
    let opts = OpenOptions { search_on_demand: true, ..Default::default() };
    let lazy = Replica::open(&dir, opts.clone()).unwrap();
    let c2 = c.clone();
    lazy.write_blocking(move |ctx| {
        let mut p = product_input("PIT-001", "60.00");
        p.name = "Pitahaya roja".into();
        products::create(ctx, &c2, p)
    })
    .unwrap();
    assert!(!dir.join("search").exists(), "no index before the first search");
    assert!(!lazy.search_indexing());

    // Writes keep coming while the index opens: each is either read by its first pass or fed.
    let writer = lazy.clone();
    let c3 = c.clone();
    let burst = std::thread::spawn(move || {
        for i in 0..40 {
            let c = c3.clone();
            writer
                .write_blocking(move |ctx| {
                    let mut p = product_input(&format!("TUN-{i:03}"), "12.00");
                    p.name = format!("Tuna cardona {i}");
                    products::create(ctx, &c, p)
                })
                .unwrap();
        }
    });
    let first = lazy.search(&c, &params("pitahaya")).unwrap();
    burst.join().unwrap();
    assert!(dir.join("search").exists(), "the first search opens the index");
    assert!(first.indexing || first.hits.len() == 1, "{first:?}");
    assert_eq!(titles(&search_until(&lazy, &c, params("pitahaya"), |f| !f.hits.is_empty())), ["product:Pitahaya roja"]);
    let tunas = SearchParams { limit: Some(50), ..params("cardona") };
    assert_eq!(search_until(&lazy, &c, tunas.clone(), |f| f.hits.len() == 40).hits.len(), 40);

    let c4 = c.clone();
    lazy.write_blocking(move |ctx| {
        let mut p = product_input("XOC-001", "22.00");
        p.name = "Xoconostle".into();
        products::create(ctx, &c4, p)
    })
    .unwrap();
    assert_eq!(titles(&search_until(&lazy, &c, params("xoconostle"), |f| !f.hits.is_empty())), ["product:Xoconostle"]);
    lazy.shutdown();

    // The next start does not open it until asked, and then it still holds everything.
    let again = Replica::open(&dir, opts).unwrap();
    assert_eq!(search_until(&again, &c, tunas, |f| f.hits.len() == 40).hits.len(), 40);
    again.shutdown();
}

#[test]
fn a_second_replica_on_the_same_folder_leaves_the_index_of_the_first_alone() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        let mut p = product_input("GUA-001", "40.00");
        p.name = "Guayaba rosa".into();
        products::create(ctx, &c2, p)
    })
    .unwrap();
    assert_eq!(search_until(r, &c, params("guayaba"), |f| !f.hits.is_empty()).hits.len(), 1);
    // The index is locked by the first: the second has no search, and deletes nothing.
    let second = Replica::open(nodes[0]._dir.path(), OpenOptions::default()).unwrap();
    assert!(matches!(second.search(&c, &params("guayaba")), Err(CoreError::Unavailable(_))));
    second.shutdown();
    assert_eq!(search_until(r, &c, params("guayaba"), |f| !f.hits.is_empty()).hits.len(), 1);
}

#[test]
fn the_lists_text_filters_ignore_accents_and_case() {
    use dashoffice_core::domain::api::ListParams;
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        let mut p = product_input("CAF-001", "180.00");
        p.name = "Café de Chiapas".into();
        products::create(ctx, &c2, p)?;
        customers::create(ctx, &c2, CreateCustomer { name: "María José Núñez".into(), ..Default::default() })
    })
    .unwrap();
    let q = |s: &str| ListParams { q: Some(s.into()), ..Default::default() };
    for s in ["cafe", "CAFÉ DE", "Café", "caf-0"] {
        let page = r.read(|conn| products::list(conn, &c, &q(s))).unwrap();
        assert_eq!(page.items.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Café de Chiapas"], "{s}");
    }
    for s in ["maria jose", "NUÑEZ", "núnez"] {
        let page = r.read(|conn| customers::list(conn, &c, &q(s))).unwrap();
        assert_eq!(page.items.len(), 1, "{s}");
    }
    assert!(r.read(|conn| products::list(conn, &c, &q("chiapaz"))).unwrap().items.is_empty());

    // A search pages by name both ways, and leaves out archived products unless asked.
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        for i in 1..=7 {
            let mut p = product_input(&format!("TZ-{i}"), "50.00");
            p.name = format!("Taza {i}");
            let made = products::create(ctx, &c2, p)?;
            if i == 4 {
                products::archive(ctx, &c2, &made.id)?;
            }
        }
        Ok(())
    })
    .unwrap();
    for (sort, expected) in [
        ("name", ["Taza 1", "Taza 2", "Taza 3", "Taza 5", "Taza 6", "Taza 7"]),
        ("-name", ["Taza 7", "Taza 6", "Taza 5", "Taza 3", "Taza 2", "Taza 1"]),
    ] {
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let p = ListParams {
                q: Some("taza".into()),
                limit: Some(4),
                sort: Some(sort.into()),
                cursor,
                ..Default::default()
            };
            let page = r.read(|conn| products::list(conn, &c, &p)).unwrap();
            names.extend(page.items.iter().map(|p| p.name.clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(names, expected, "{sort}");
    }
    let all = ListParams { q: Some("TZ-".into()), archived: Some(true), ..Default::default() };
    assert_eq!(r.read(|conn| products::list(conn, &c, &all)).unwrap().items.len(), 7);
}

#[test]
fn a_merged_customer_is_found_as_the_survivor_even_after_opposite_merges_on_two_replicas() {
    use dashoffice_core::domain::api::MergeCustomers;
    let nodes = shop(2);
    let (r1, r2, c) = (&nodes[0].replica, &nodes[1].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    let (a, b) = r1
        .write_blocking(move |ctx| {
            let a = customers::create(ctx, &c2, CreateCustomer { name: "Rocío Peña".into(), ..Default::default() })?;
            let b = customers::create(ctx, &c2, CreateCustomer { name: "Rocio Pena".into(), ..Default::default() })?;
            Ok((a.id, b.id))
        })
        .unwrap();
    sync_pair(r1, r2);
    let ids = |r: &Replica, n: usize| -> Vec<String> {
        let mut found = search_until(r, &c, params("rocio pena"), |f| f.hits.len() == n).hits;
        found.sort_by(|x, y| x.id.cmp(&y.id));
        found.into_iter().map(|h| h.id).collect()
    };
    assert_eq!(ids(r1, 2).len(), 2);
    // Merged on one replica: only the survivor is found.
    let (c3, a1, b1) = (c.clone(), a.clone(), b.clone());
    r1.write_blocking(move |ctx| customers::merge(ctx, &c3, &a1, MergeCustomers { from_id: b1 })).unwrap();
    assert_eq!(ids(r1, 1), std::slice::from_ref(&a));
    // …and the other way round on the other replica at the same time: after sync, both show the
    // customer with the smaller id, as the customer list does.
    let (c4, a2, b2) = (c.clone(), a.clone(), b.clone());
    r2.write_blocking(move |ctx| customers::merge(ctx, &c4, &b2, MergeCustomers { from_id: a2 })).unwrap();
    sync_pair(r1, r2);
    let survivor = a.clone().min(b.clone());
    assert_eq!(ids(r1, 1), std::slice::from_ref(&survivor));
    assert_eq!(ids(r2, 1), [survivor]);
}

/// The bot's product lookup through the index finds what its scan of the catalog finds (and
/// accented names the scan misses), never an archived or inactive product, and the index is not
/// used while a product change waits to be indexed.
#[test]
fn the_bots_product_lookup_through_the_index_agrees_with_the_catalog_and_never_runs_behind_it() {
    use dashoffice_core::bot::{catalog_lookup, catalog_lookup_with};
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop_id = c.shop_id.clone();
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        for (sku, name, active) in [
            ("P-1", "Camisa azul", true),
            ("P-2", "Pantalón negro", true),
            ("CAF-001", "Café de Chiapas", true),
            ("P-3", "Gorra verde", false),
            ("P-4", "Vestido rojo", true),
        ] {
            let mut p = product_input(sku, "99.90");
            p.name = name.into();
            p.active = Some(active);
            let p = products::create(ctx, &c2, p)?;
            if sku == "P-4" {
                products::archive(ctx, &c2, &p.id)?;
            }
        }
        Ok(())
    })
    .unwrap();
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.catalog_candidates(&shop_id, &words("camisa")).is_none() {
        assert!(Instant::now() < deadline, "the index never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = |found: Vec<dashoffice_core::bot::ProductMatch>| found.into_iter().map(|m| m.name).collect::<Vec<_>>();
    for text in ["cuanto cuesta la camisa azul", "pantalon", "p-2", "tienen pantalones negros", "gorra", "vestido"] {
        let t = words(text);
        let (by_index, by_scan) = r
            .read(|conn| {
                let ids = r.catalog_candidates(&shop_id, &t);
                assert!(ids.is_some(), "the index is caught up");
                Ok((names(catalog_lookup_with(conn, &shop_id, &t, ids)), names(catalog_lookup(conn, &shop_id, &t))))
            })
            .unwrap();
        assert_eq!(by_index, by_scan, "{text}");
    }
    // Through the index only (the scan misses these).
    let by_index = |text: &str| {
        let t = words(text);
        r.read(|conn| Ok(names(catalog_lookup_with(conn, &shop_id, &t, r.catalog_candidates(&shop_id, &t))))).unwrap()
    };
    assert_eq!(by_index("camsa"), ["Camisa azul"], "a typo inside the first four letters is forgiven too");
    assert_eq!(by_index("cafe"), ["Café de Chiapas"], "the index folds accents");
    assert!(by_index("gorra vestido").is_empty());

    // A new product: until it is indexed the index is not used, so the bot never misses it.
    let c3 = c.clone();
    let sombrero = r
        .write_blocking(move |ctx| {
            let mut p = product_input("S-1", "250.00");
            p.name = "Sombrero vaquero".into();
            products::create(ctx, &c3, p)
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match r.catalog_candidates(&shop_id, &words("sombrero")) {
            Some(ids) => {
                assert!(ids.contains(&sombrero.id), "the index answered without the new product");
                break;
            }
            None => assert!(Instant::now() < deadline, "the index never caught up"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_index_waits_for_a_pause_in_the_writes_but_not_for_ever() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        let mut p = product_input("MAT-001", "45.00");
        p.name = "Mate de calabaza".into();
        products::create(ctx, &c2, p)?;
        Ok(())
    })
    .unwrap();
    // A writer that never pauses for long (a sync catching up, a stream of messages): the index
    // holds back while it is busy, and still catches up within its longest delay (5 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (r, c, stop) = (r.clone(), c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let c = c.clone();
                r.write_blocking(move |ctx| {
                    products::create(ctx, &c, product_input(&format!("BUSY-{i}"), "1.00"))?;
                    Ok(())
                })
                .unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            i
        })
    };
    let started = Instant::now();
    let mut found = false;
    while !found && started.elapsed() < Duration::from_secs(25) {
        found = !r.search(&c, &params("calabaza")).unwrap().hits.is_empty();
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = busy.join().unwrap();
    assert!(found, "the index never caught up while the writes went on");
    // The writes went on while the index held back (about 5 s of them, one every ~50 ms).
    assert!(writes >= 10, "the writer was not kept busy ({writes} writes)");
}
