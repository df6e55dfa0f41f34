//! What survives a stop: a restart on the same data folder keeps every record, session and order
//! sequence; SIGTERM finishes in-flight writes and exits 0; and every write acknowledged with a 201
//! survives `kill -9`, cycle after cycle on the same folder.
//!
//! The crash loop runs 3 cycles by default and 10 with `DASHOFFICE_SLOW_TESTS=1` (CI).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::{Value, json};

use dashoffice_tests::{Api, Node, OWNER_EMAIL, OWNER_PASSWORD, eventually, id};

/// The sequence part of an order number (`CEN-XXXXXX-000042` → 42).
fn seq(order: &Value) -> u64 {
    let n = order["number"].as_str().unwrap();
    n.rsplit('-').next().unwrap().parse().unwrap_or_else(|_| panic!("order number {n}"))
}

#[test]
fn restart_keeps_records_sessions_and_order_numbers() {
    let mut node = Node::start();
    let token = node.login(OWNER_EMAIL, OWNER_PASSWORD);
    let api = node.api(&token);
    let p = id(&api.product("DUR-1", "10.05"));
    api.product("DUR-2", "20");
    api.post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": 5, "reason": "receipt" })).ok(200);
    let c = id(&api.post("/api/v1/customers", &json!({ "name": "Ana", "phone": "55 1234 5678" })).ok(201));
    let o1 = api.order(&c, &[(&p, 3)]);
    api.transition(&id(&o1), "confirmed");
    let o2 = api.order(&c, &[(&p, 1)]);
    assert_eq!((seq(&o1), seq(&o2)), (1, 2));
    let before = api.snapshot();
    let device = node.anon().get("/healthz").ok(200)["device"].clone();
    let pid = node.pid();

    let status = node.sigterm();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status {status}; log:\n{}", node.log());
    assert!(
        node.anon().try_send(reqwest::Method::GET, "/healthz", None, None).is_err(),
        "the node still answers after exiting"
    );
    node.restart();
    assert_ne!(node.pid(), pid, "not a new process");

    let api = node.api(&token);
    api.get("/api/v1/auth/me").ok(200); // the session survived
    assert_eq!(api.snapshot(), before, "the restarted node shows different data");
    assert_eq!(api.get(&format!("/api/v1/products/{p}/stock")).ok(200)[0]["on_hand"], 2);
    assert_eq!(node.anon().get("/healthz").ok(200)["device"], device, "the replica's identity changed");
    let o3 = api.order(&c, &[(&p, 1)]);
    assert_eq!(seq(&o3), 3, "numbering continues after a restart");

    // After a crash too: no number is ever reused.
    node.kill9();
    node.restart();
    let api = node.api(&token);
    let o4 = api.order(&c, &[(&p, 1)]);
    assert_eq!(seq(&o4), 4, "numbering continues after kill -9");
    let mut numbers: Vec<String> =
        api.list_all("/api/v1/orders").iter().map(|o| o["number"].as_str().unwrap().to_string()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 4);
    // A fresh login works too.
    node.login(OWNER_EMAIL, OWNER_PASSWORD);
}

/// Creates products until `stop` is set or the node stops answering; returns the id and SKU of
/// every product whose creation was acknowledged with a 201.
fn create_until_stopped(
    api: Api,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked_total: Arc<AtomicUsize>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sku = format!("{prefix}-{i}");
        match api.try_post("/api/v1/products", &json!({ "sku": sku, "name": format!("Crash {sku}"), "price": "1.50" }))
        {
            Ok(r) if r.status == 201 => {
                let p = r.json();
                assert_eq!(p["sku"], sku.as_str());
                acked.push((id(&p), sku));
                acked_total.fetch_add(1, Ordering::Relaxed);
            }
            // A node going down may refuse politely while it drains.
            Ok(r) if r.status == 503 => break,
            Ok(r) => panic!("creating {sku}: unexpected {}: {}", r.status, r.text),
            Err(_) => break, // the node is gone
        }
    }
    acked
}

/// Runs 4 writer threads against the node until `stop_node` has stopped it; returns the acknowledged products.
fn write_while(node: &mut Node, token: &str, prefix: &str, stop_node: impl FnOnce(&mut Node)) -> Vec<(String, String)> {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (api, stop, acked, prefix) = (node.api(token), stop.clone(), acked.clone(), format!("{prefix}T{t}"));
            thread::spawn(move || create_until_stopped(api, prefix, stop, acked))
        })
        .collect();
    // Let the writers get going before the node goes down (a deadline, not a timing assertion).
    assert!(
        eventually(Duration::from_secs(30), || acked.load(Ordering::Relaxed) >= 20),
        "the writers made no progress"
    );
    stop_node(node);
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().flat_map(|t| t.join().expect("a writer thread panicked")).collect()
}

#[test]
fn sigterm_finishes_in_flight_writes_and_exits_zero() {
    let mut node = Node::start();
    let token = node.login(OWNER_EMAIL, OWNER_PASSWORD);
    let mut status = None;
    let acked = write_while(&mut node, &token, "TERM", |n| status = Some(n.sigterm()));
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status {status}; log:\n{}", node.log());
    assert!(node.log().contains("shutting down"), "no graceful shutdown in the log:\n{}", node.log());

    node.restart();
    let api = node.api(&token);
    for (pid, sku) in &acked {
        let p = api.get(&format!("/api/v1/products/{pid}")).ok(200);
        assert_eq!(p["sku"], sku.as_str());
    }
    assert!(api.list_all("/api/v1/products").len() >= acked.len());
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let cycles = if std::env::var_os("DASHOFFICE_SLOW_TESTS").is_some() { 10 } else { 3 };
    let mut node = Node::start();
    let token = node.login(OWNER_EMAIL, OWNER_PASSWORD);
    let mut all_acked: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    let mut last_order = 0;
    let customer = id(&node.api(&token).customer("Cliente"));

    for cycle in 0..cycles {
        let acked = write_while(&mut node, &token, &format!("C{cycle}"), |n| {
            // Writes are in full flight for ~1.5 s; then the process dies mid-request.
            thread::sleep(Duration::from_millis(1500));
            n.kill9();
        });
        assert!(!acked.is_empty());
        all_acked.extend(acked.iter().cloned());
        assert!(!node.is_running());

        node.restart();
        let api = node.api(&token);
        for (pid, sku) in &acked {
            let r = api.get(&format!("/api/v1/products/{pid}"));
            assert_eq!(
                r.status, 200,
                "cycle {cycle}: acknowledged product {sku} ({pid}) lost after kill -9: {}",
                r.text
            );
            assert_eq!(r.json()["sku"], sku.as_str());
        }
        let listed: Vec<Value> = api.list_all("/api/v1/products");
        let mut listed_ids: Vec<String> = listed.iter().map(id).collect();
        listed_ids.sort();
        let before = listed_ids.len();
        listed_ids.dedup();
        assert_eq!(before, listed_ids.len(), "a product is listed twice");
        for (pid, sku) in &all_acked {
            assert!(listed_ids.binary_search(pid).is_ok(), "cycle {cycle}: {sku} missing from the list");
        }
        assert!(listed.len() >= count, "cycle {cycle}: the count shrank from {count} to {}", listed.len());
        eprintln!(
            "kill -9 cycle {cycle}: {} creates acknowledged, {} products listed after the restart",
            acked.len(),
            listed.len()
        );
        count = listed.len();
        // The node still takes every kind of write, and order numbers keep increasing.
        let p = id(&api.product(&format!("AFTER-{cycle}"), "1"));
        let o = api.order(&customer, &[(&p, 1)]);
        assert!(seq(&o) > last_order, "order number reused after a crash: {}", o["number"]);
        last_order = seq(&o);
    }
    assert!(count >= all_acked.len());

    // After the crashes the projection still equals what the documents say: a rebuild from the
    // documents (the CLI's reindex) changes nothing the API shows.
    let before = node.api(&token).snapshot();
    assert!(node.sigterm().success());
    let out = node.cli(&["reindex"]);
    assert!(out.status.success(), "reindex failed: {}", String::from_utf8_lossy(&out.stderr));
    // The core library reads the same data folder the binary wrote.
    let replica = dashoffice_core::Replica::open(&node.data_dir(), Default::default()).unwrap();
    let stored: i64 = replica.read(|c| Ok(c.query_row("SELECT count(*) FROM products", [], |r| r.get(0))?)).unwrap();
    assert_eq!(stored as usize, before["products"].as_array().map_or(0, Vec::len));
    replica.shutdown();
    drop(replica);
    node.restart();
    assert_eq!(node.api(&token).snapshot(), before, "reindexing after kill -9 cycles changed the data");
}
