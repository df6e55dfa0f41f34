//! Sync through the real relay over QUIC on loopback: offline edits converge, partial replication
//! holds on the relay, acknowledged changes survive kill -9 of the relay, bad credentials and
//! garbage are refused, and a partition in an initial sync resumes.

use std::{collections::BTreeMap, path::Path, time::Duration};

use dashoffice_tests::{
    Api, Node, assert_field_error, id,
    relay::{Relay, UdpProxy},
    wait_for,
};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(120);

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Logs in as the owner once the staff document has arrived by sync.
fn owner_when_synced(node: &Node) -> Api {
    owner_when_synced_at(node.base())
}

fn docs(api: &Api) -> BTreeMap<String, Value> {
    let list = api.get("/api/v1/sync/documents").ok(200);
    list.as_array().unwrap().iter().map(|d| (d["id"].as_str().unwrap().to_string(), d["heads"].clone())).collect()
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn status(api: &Api) -> Value {
    api.get("/api/v1/sync/status").ok(200)
}

fn idle(api: &Api) -> bool {
    let s = status(api);
    s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0
}

/// Waits until every node is connected with nothing pending and `same(a, b)` holds pairwise.
fn converge(apis: &[&Api], what: &str, mut same: impl FnMut(&Api, &Api) -> bool) {
    let ok = wait_for(CONVERGE, || {
        (apis.iter().all(|a| idle(a)) && apis.windows(2).all(|w| same(w[0], w[1]))).then_some(())
    });
    if ok.is_none() {
        let states: Vec<Value> = apis.iter().map(|a| status(a)).collect();
        panic!("{what} did not converge; statuses: {states:#?}");
    }
}

fn shop_and_branch(api: &Api) -> (String, String) {
    let shop = api.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branches = api.get("/api/v1/branches").ok(200);
    let first = &branches[0];
    (shop, id(first))
}

fn stock_of(api: &Api, product: &str, branch: &str) -> Value {
    let list = api.get(&format!("/api/v1/products/{product}/stock")).ok(200);
    let items = list.as_array().cloned().or_else(|| list["items"].as_array().cloned()).unwrap_or_default();
    items.into_iter().find(|s| s["branch_id"] == branch).unwrap_or(Value::Null)
}

/// Document ids stored in a replica's SQLite file that mention `needle`.
fn stored_docs_matching(data_dir: &Path, needle: &str) -> Vec<String> {
    let c = dashoffice_core::Connection::open(data_dir.join("dashoffice.db")).unwrap();
    let mut st = c.prepare("SELECT doc_id FROM documents WHERE instr(doc_id, ?1) > 0").unwrap();
    let mut v: Vec<String> = st.query_map([needle], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let mut st = c.prepare("SELECT DISTINCT doc_id FROM doc_changes WHERE instr(doc_id, ?1) > 0").unwrap();
    v.extend(st.query_map([needle], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap));
    let n: i64 =
        c.query_row("SELECT count(*) FROM orders WHERE instr(doc_id, ?1) > 0", [needle], |r| r.get(0)).unwrap();
    if n > 0 {
        v.push(format!("{n} projected orders"));
    }
    v
}

#[test]
fn offline_edits_on_three_nodes_converge_and_branch_b_never_holds_branch_a() {
    let mut relay = Relay::start();
    let mut a1 = Node::start();
    let o1 = a1.owner();
    let (shop, branch_a) = shop_and_branch(&o1);
    let branch_b = id(&o1.branch("NOR", "Norte"));
    let product = id(&o1.product("CAM-1", "100.00"));
    let customer = id(&o1.customer("Ana Pérez"));
    let order = id(&o1.order(&customer, &[(&product, 2)]));
    o1.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 10, "reason": "receipt" })).ok(200);

    // The first node joins the relay; two more nodes join the shop through it.
    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch_a))));
    a1.start_again();
    let a2 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch_a))));
    let b1 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch_b))));
    let (o1, o2, ob) = (a1.owner(), owner_when_synced(&a2), owner_when_synced(&b1));
    converge(&[&o1, &o2], "branch A's initial sync", |x, y| docs(x) == docs(y));
    assert_eq!(o2.get(&format!("/api/v1/orders/{order}")).ok(200)["status"], "draft");
    converge(&[&o1, &ob], "branch B's initial sync", |_, y| {
        y.get(&format!("/api/v1/products/{product}")).status == 200
    });
    assert_eq!(ob.get(&format!("/api/v1/orders/{order}")).status, 404, "branch B must not see branch A's order");

    // The relay goes away; every node keeps working and edits the same records.
    relay.kill9();
    o1.patch(&format!("/api/v1/products/{product}"), &json!({ "price": "110.00" })).ok(200);
    o2.patch(&format!("/api/v1/products/{product}"), &json!({ "price": "120.00" })).ok(200);
    ob.patch(&format!("/api/v1/products/{product}"), &json!({ "price": "130.00", "name": "Camisa azul" })).ok(200);
    o1.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 5, "reason": "receipt" })).ok(200);
    o2.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": -3, "reason": "loss" })).ok(200);
    ob.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 7, "reason": "receipt" })).ok(200);
    o1.transition(&order, "confirmed");
    o2.transition(&order, "cancelled");
    let order_b = id(&ob.order(&customer, &[(&product, 1)]));
    o2.customer("Cliente offline A2");
    ob.customer("Cliente offline B1");
    // Support tickets are shop-wide: opened in both branches while offline, they reach every node.
    let ticket = o1
        .post("/api/v1/tickets", &json!({ "subject": "Camisa con mancha", "order_id": order, "priority": "high" }))
        .ok(201);
    ob.post("/api/v1/tickets", &json!({ "subject": "Cliente pide factura", "customer_id": customer })).ok(201);

    relay.restart();
    converge(&[&o1, &o2], "branch A", |x, y| docs(x) == docs(y));
    converge(&[&o1, &ob], "the shop-wide documents", |x, y| {
        let (dx, dy) = (docs(x), docs(y));
        dy.iter().all(|(k, h)| k.contains("/orders/") || k.contains("/stock/") || dx.get(k) == Some(h))
    });

    // Identical projections where the scopes overlap.
    let shared = |api: &Api| {
        json!({
            "products": api.list_all("/api/v1/products?archived=true"),
            "customers": api.list_all("/api/v1/customers?archived=true"),
            "staff": api.list_all("/api/v1/staff?archived=true"),
            // Without whether the answering replica numbers the branch's invoices (its own fact).
            "branches": api.get("/api/v1/branches?archived=true").ok(200).as_array().unwrap().iter().map(|b| {
                let mut b = b.clone();
                b["invoicing_here"] = Value::Null;
                b
            }).collect::<Vec<_>>(),
            "shop": api.get("/api/v1/shop").ok(200),
            // Without the order's number: branch B does not hold branch A's orders.
            "tickets": api.list_all("/api/v1/tickets").into_iter().map(|mut t| { t["order_number"] = Value::Null; t }).collect::<Vec<_>>(),
        })
    };
    assert_eq!(shared(&o1), shared(&o2));
    assert_eq!(shared(&o1), shared(&ob));
    assert_eq!(o1.snapshot(), o2.snapshot());
    let p = o1.get(&format!("/api/v1/products/{product}")).ok(200);
    assert!(["110.00", "120.00", "130.00"].contains(&p["price"].as_str().unwrap()), "{p}");
    assert_eq!(p["name"], "Camisa azul");
    assert_eq!(o1.list_all("/api/v1/customers?archived=true").len(), 3);
    assert_eq!(o1.list_all("/api/v1/tickets").len(), 2);
    // Worked on from two nodes at once: branch B comments while A2 takes it in hand; both stay.
    let t_path = format!("/api/v1/tickets/{}", id(&ticket));
    ob.post(&format!("{t_path}/comments"), &json!({ "body": "El cliente mandó foto" })).ok(201);
    o2.patch(&t_path, &json!({ "status": "in_progress" })).ok(200);
    converge(&[&o1, &o2, &ob], "the ticket worked on from two nodes", |x, y| {
        let (tx, ty) = (x.get(&t_path).ok(200), y.get(&t_path).ok(200));
        tx["comments"].as_array().map(Vec::len) == Some(2) && tx["comments"] == ty["comments"]
    });
    let t = o1.get(&t_path).ok(200);
    assert_eq!((t["status"].as_str(), t["comment_count"].as_i64()), (Some("in_progress"), Some(1)), "{t}");
    assert_eq!(t["order_number"], o1.get(&format!("/api/v1/orders/{order}")).ok(200)["number"]);
    // Concurrent stock movements add up; the order's forked workflow resolves the same way everywhere.
    assert_eq!(stock_of(&o1, &product, &branch_a), stock_of(&o2, &product, &branch_a));
    assert_eq!(stock_of(&o1, &product, &branch_a)["on_hand"], 12, "{}", stock_of(&o1, &product, &branch_a));
    assert_eq!(stock_of(&ob, &product, &branch_b)["on_hand"], 7);
    let (s1, s2) =
        (o1.get(&format!("/api/v1/orders/{order}")).ok(200), o2.get(&format!("/api/v1/orders/{order}")).ok(200));
    assert_eq!(s1, s2);
    assert_eq!(s1["status"], "cancelled", "cancelled wins over confirmed: {s1}");
    assert_eq!(s1["conflict"], true, "{s1}");

    // The owner checks what happened (the customer did confirm) and settles it on one node; the
    // other node follows, and the confirmed order holds its stock again.
    let resolve = format!("/api/v1/orders/{order}/resolve");
    let bad = o1.post(&resolve, &json!({ "status": "delivered" })).err(422, "validation");
    assert_eq!(bad["fields"][0]["field"], "status", "{bad}");
    assert!(bad.to_string().contains("one of confirmed, cancelled"), "{bad}");
    let settled = o1.post(&resolve, &json!({ "status": "confirmed" })).ok(200);
    assert_eq!((settled["status"].as_str(), settled["conflict"].as_bool()), (Some("confirmed"), Some(false)));
    o1.post(&resolve, &json!({ "status": "cancelled" })).err(409, "conflict");
    converge(&[&o1, &o2], "the settled order", |x, y| docs(x) == docs(y));
    let s2 = o2.get(&format!("/api/v1/orders/{order}")).ok(200);
    assert_eq!((s2["status"].as_str(), s2["conflict"].as_bool()), (Some("confirmed"), Some(false)), "{s2}");
    assert_eq!(stock_of(&o2, &product, &branch_a)["on_hand"], 10, "{}", stock_of(&o2, &product, &branch_a));

    // Branch B's replica never stored anything of branch A's orders or stock, and A never got B's.
    assert_eq!(stored_docs_matching(&b1.data_dir(), &format!("/orders/{branch_a}/")), Vec::<String>::new());
    assert_eq!(stored_docs_matching(&b1.data_dir(), &format!("/stock/{branch_a}/")), Vec::<String>::new());
    assert_eq!(o1.get(&format!("/api/v1/orders/{order_b}")).status, 404);
    assert_eq!(stored_docs_matching(&a2.data_dir(), &format!("/orders/{branch_b}/")), Vec::<String>::new());
    assert_eq!(ob.get(&format!("/api/v1/orders/{order_b}")).ok(200)["status"], "draft");
}

fn import_products(node: &Node, n: usize) {
    let path = node.scratch().join("products.csv");
    let mut csv = String::from("sku,name,description,price,currency,tax_rate,active,tags\n");
    for i in 0..n {
        csv.push_str(&format!("SKU-{i:05},Producto {i},,{}.50,MXN,0.16,true,\n", 10 + i % 90));
    }
    std::fs::write(&path, csv).unwrap();
    let out = node.cli(&["import-products", path.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
}

fn product_count(api: &Api) -> usize {
    api.list_all("/api/v1/products").len()
}

#[test]
fn relay_killed_mid_sync_loses_nothing_it_acknowledged() {
    let mut relay = Relay::start();
    let mut a1 = Node::start();
    let (shop, branch) = shop_and_branch(&a1.owner());
    a1.sigterm();
    import_products(&a1, 3000);
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    a1.start_again();
    let o1 = a1.owner();
    // Kill the relay while the first node is still pushing its catalog.
    let seen = wait_for(CONVERGE, || {
        let s = status(&o1);
        (s["connected"] == true && s["changes_received"].as_u64().is_some()).then_some(())
    });
    assert!(seen.is_some(), "never connected: {:#}", status(&o1));
    std::thread::sleep(Duration::from_millis(300));
    relay.kill9();
    relay.restart();
    let ok = wait_for(CONVERGE, || idle(&o1).then_some(()));
    assert!(ok.is_some(), "the first node never finished pushing: {:#}", status(&o1));
    // Everything acknowledged is durable: the first node goes away for good, the relay is killed
    // again, and a new node still gets the whole catalog.
    a1.sigterm();
    relay.kill9();
    relay.restart();
    let a2 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch))));
    let o2 = owner_when_synced(&a2);
    let full = wait_for(CONVERGE, || (product_count(&o2) == 3000 && idle(&o2)).then_some(()));
    assert!(full.is_some(), "the new node has {} of 3000 products: {:#}", product_count(&o2), status(&o2));
}

/// "Sync now" after an outage: the relay went away (kill -9) while the node kept working; once it
/// is back, `POST /api/v1/sync/reconnect` drops the node's dead session at once instead of
/// waiting for QUIC's 30 s idle timeout and the backoff after it. A node without a relay
/// answers 409.
#[test]
fn sync_now_reconnects_at_once_after_an_outage() {
    let alone = Node::start();
    let r = alone.owner().post("/api/v1/sync/reconnect", &json!({}));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "sync_off", "{}", r.text);

    let mut relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let (node, _, _) = relay.enrolled_node();
    let o = node.owner();
    assert!(wait_for(CONVERGE, || idle(&o).then_some(())).is_some(), "{:#}", status(&o));
    relay.kill9();
    o.product("DURING-OUTAGE", "19.90");
    relay.restart();
    let r = o.post("/api/v1/sync/reconnect", &json!({}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["enabled"], true, "{}", r.text);
    // Far inside the 30 s the dead session would otherwise hold on.
    let back = wait_for(Duration::from_secs(15), || idle(&o).then_some(()));
    assert!(back.is_some(), "not back after sync now: {:#}\n{}", status(&o), tail(&node.log()));
    assert!(node.log().contains("reconnecting on request"), "{}", tail(&node.log()));
    assert_eq!(status(&o)["last_error"], Value::Null, "{:#}", status(&o));
}

/// A node restored from a backup is a new device: it enrols again with a new code and receives
/// from the relay what was written after the backup (its own writes included), which it would
/// never hear of if it kept the old device's identity and sync states.
#[test]
fn a_restored_node_enrols_again_and_receives_what_its_backup_missed() {
    let relay = Relay::start();
    let (mut a1, shop, branch) = relay.enrolled_node();
    let o1 = a1.owner();
    o1.product("BEFORE-1", "1.00");
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    let file = a1.scratch().join("copia.db");
    let out = a1.cli(&["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = id(&o1.product("AFTER-1", "2.00"));
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    let old_device = status(&o1)["device_id"].clone();

    a1.sigterm();
    let out = a1.cli(&["restore", "--replace", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("new enrolment code"));
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    a1.start_again();
    let o1 = a1.owner();
    let back = wait_for(CONVERGE, || (o1.get(&format!("/api/v1/products/{after}")).status == 200).then_some(()));
    assert!(back.is_some(), "the product written after the backup never came back: {:#}", status(&o1));
    assert_ne!(status(&o1)["device_id"], old_device);
}

/// A replica killed (kill -9: it could not say goodbye) and started again: the relay closes the
/// dead process's session as soon as the new one connects, instead of keeping it until QUIC's
/// idle timeout and stepping every changed document towards a peer that no longer listens.
#[test]
fn a_replica_that_comes_back_replaces_its_dead_session() {
    let relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let (mut a1, _, _) = relay.enrolled_node();
    let o1 = a1.owner();
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    let quic = || relay.status()["sessions"].as_array().unwrap().iter().filter(|s| s["transport"] == "quic").count();
    assert_eq!(quic(), 1, "{:#}", relay.status());
    a1.kill9();
    a1.start_again();
    let o1 = a1.owner();
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    // Well within the relay's 30 s idle timeout.
    let one = wait_for(Duration::from_secs(5), || (quic() == 1).then_some(()));
    assert!(one.is_some(), "the dead session is still open: {:#}\n{}", relay.status(), tail(&relay.log()));
    assert!(relay.log().contains("closed the device's older sessions"), "{}", tail(&relay.log()));
    // The replica works on: an edit reaches the relay.
    o1.product("AFTER-RESTART", "9.90");
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
}

#[test]
fn a_partition_in_an_initial_sync_resumes_where_it_stopped() {
    // Only the node under test has a short idle timeout (QUIC uses the smaller of both ends', so
    // its connection to the relay drops 2 s after the cut). The relay keeps its default, so the
    // first node's upload is not cut short when the machine is busy.
    let idle_ms = "2000".to_string();
    // The relay's head-office replica would download the catalog at the same time as the node
    // under test; this test counts one replica's messages, so the relay serves replicas only.
    let relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let mut a1 = Node::start();
    let (shop, branch) = shop_and_branch(&a1.owner());
    a1.sigterm();
    import_products(&a1, 4000);
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    a1.start_again();
    let o1 = a1.owner();
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    let relay_docs = || relay.admin().get("/healthz").ok(200)["documents"].as_u64().unwrap();
    // 4,000 products fall into about a thousand of the catalog's 1,024 shards (a few more or
    // fewer from run to run), so the relay is compared with what the node holds, not a constant.
    let local = || status(&o1)["documents_local"].as_u64().unwrap_or(u64::MAX);
    let total = wait_for(CONVERGE, || {
        let n = relay_docs();
        (n >= 900 && n >= local() && idle(&o1)).then_some(n)
    });
    let Some(total) = total else {
        panic!(
            "the relay holds {} documents, the node's sync status: {:#}\nnode log:\n{}\nrelay log:\n{}",
            relay_docs(),
            status(&o1),
            tail(&a1.log()),
            tail(&relay.log())
        )
    };

    let proxy = UdpProxy::start(&relay.quic);
    // A slow link, so the initial sync lasts long enough to be cut in the middle.
    proxy.slow(Duration::from_millis(10));
    let mut args = relay.edge_args(&relay.code(&shop, Some(&branch)));
    args[1] = proxy.addr.clone();
    args.extend(["--sync-idle-timeout-ms".to_string(), idle_ms]);
    let a2 = Node::start_with(tmp(), args);
    // Cut the network once part of the documents arrived (read straight from the node's store).
    let stored = |dir: &Path| -> u64 {
        dashoffice_core::Connection::open(dir.join("dashoffice.db"))
            .and_then(|c| c.query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .unwrap_or(0)
    };
    let before = wait_for(CONVERGE, || {
        let n = stored(&a2.data_dir());
        (n >= total / 4).then_some(n)
    })
    .expect("the initial sync started");
    proxy.cut(true);
    let lost = wait_for(CONVERGE, || a2.log().contains("sync: session ended").then_some(()));
    assert!(lost.is_some(), "the node never noticed the partition:\n{}", a2.log());
    let had = stored(&a2.data_dir());
    assert!(had >= before && had < total, "partition too late to test resuming: {had} of {total}");
    proxy.cut(false);
    proxy.slow(Duration::ZERO);
    let o2 = owner_when_synced(&a2);
    let full = wait_for(CONVERGE, || (product_count(&o2) == 4000 && idle(&o2)).then_some(()));
    assert!(full.is_some(), "{} of 4000 products after the partition: {:#}", product_count(&o2), status(&o2));
    assert_eq!(docs(&o1), docs(&o2));
    // The second session only talked about what was missing: documents the node already had
    // were not offered again (about two messages per missing document, not per document).
    let sessions = relay.status()["sessions"].as_array().unwrap().clone();
    let last = sessions.iter().filter(|s| s["transport"] == "quic").max_by_key(|s| s["session"].as_u64()).unwrap();
    let sent = last["messages_out"].as_u64().unwrap();
    let missing = total - had;
    assert!(
        sent <= 3 * missing + 50,
        "resumed session sent {sent} messages for {missing} missing of {total} documents"
    );
}

#[test]
fn revoked_forged_and_wrong_certificate_replicas_get_nothing() {
    let relay = Relay::start();
    let (a1, shop, branch) = relay.enrolled_node();
    let o1 = a1.owner();
    o1.product("P-1", "5.00");
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some());

    // A forged enrolment code: refused, nothing received, no shop joined.
    let forged = Node::start_with(tmp(), relay.edge_args("AAAA-BBBB-CCCC"));
    // A pinned fingerprint that is not the relay's: the replica refuses the relay.
    let mut wrong = relay.edge_args(&relay.code(&shop, Some(&branch)));
    wrong[3] = "ab".repeat(32);
    let wrong_cert = Node::start_with(tmp(), wrong);
    // A revoked device: synced first, then revoked.
    let revoked = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch))));
    let orv = owner_when_synced(&revoked);
    assert!(wait_for(CONVERGE, || idle(&orv).then_some(())).is_some());
    let device = status(&orv)["device_id"].as_str().unwrap().to_string();
    relay.admin().post(&format!("/api/v1/devices/{device}/revoke"), &json!({})).ok(204);
    let dropped = wait_for(CONVERGE, || {
        let s = status(&orv);
        (s["connected"] == false && s["last_error"].as_str().unwrap_or("").contains("revoked")).then_some(())
    });
    assert!(dropped.is_some(), "the revoked device stayed connected: {:#}", status(&orv));

    // Garbage on the QUIC port (raw datagrams) changes nothing.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u8 {
        sock.send_to(&[i; 1200], &relay.quic).unwrap();
    }

    let p2 = id(&o1.product("P-2", "6.00"));
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "the relay stopped serving: {:#}", status(&o1));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(orv.get(&format!("/api/v1/products/{p2}")).status, 404, "a revoked device got new data");
    for (name, node) in [("forged", &forged), ("wrong certificate", &wrong_cert)] {
        assert!(!node.data_dir().join("relay-enrolment.json").exists(), "{name}: enrolled");
        let docs: i64 = dashoffice_core::Connection::open(node.data_dir().join("dashoffice.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(docs, 0, "{name}: received documents");
        assert!(
            node.anon().get("/api/v1/shop").status == 401,
            "{name}: the node should have no shop and no owner to log in"
        );
    }
    assert!(forged.log().contains("not valid"), "{}", forged.log());
    assert!(wrong_cert.log().to_lowercase().contains("certificate"), "{}", wrong_cert.log());
    let devices = relay.admin().get("/api/v1/devices").ok(200);
    let d = devices.as_array().unwrap().iter().find(|d| d["id"] == device.as_str()).unwrap().clone();
    assert!(d["revoked_at"].is_i64(), "{d}");
}

#[test]
fn relay_rejects_bad_admin_and_enrolment_requests_with_field_errors() {
    let relay = Relay::start();
    let admin = relay.admin();
    let anon = Api::for_base(&relay.http);
    anon.post("/api/v1/enrolment-codes", &json!({ "shop_id": "s" })).err(401, "unauthorized");
    let e = admin.post("/api/v1/enrolment-codes", &json!({ "shop_id": "no spaces allowed" })).err(422, "validation");
    assert_eq!(e["field"], "shop_id");
    let e = admin.post("/api/v1/enrolment-codes", &json!({ "shop_id": "s1", "ttl_hours": 0 })).err(422, "validation");
    assert_eq!(e["field"], "ttl_hours");
    let code = admin.post("/api/v1/enrolment-codes", &json!({ "shop_id": "s1" })).ok(201)["code"]
        .as_str()
        .unwrap()
        .to_string();
    let e = anon.post("/api/v1/enrol", &json!({ "code": "" })).err(422, "validation");
    assert_eq!(e["field"], "code");
    anon.post("/api/v1/enrol", &json!({ "code": "WRONG-CODE" })).err(403, "forbidden");
    let d = anon.post("/api/v1/enrol", &json!({ "code": code, "name": "navegador" })).ok(201);
    assert!(d["token"].as_str().unwrap().len() >= 40);
    anon.post("/api/v1/enrol", &json!({ "code": code })).err(403, "forbidden");
    admin.post("/api/v1/devices/nope/revoke", &json!({})).err(404, "not_found");
    // /sync without or with a forged token: 401 before any upgrade.
    anon.get("/sync").err(401, "unauthorized");
    anon.get("/sync?token=forged").err(401, "unauthorized");
    // A good token without the WebSocket upgrade: told so in JSON like every other error.
    let e = anon.get(&format!("/sync?token={}", d["token"].as_str().unwrap())).err(400, "upgrade_required");
    assert_eq!(e["field"], "headers");
    let out = relay.cli(&["enrol-code", "--shop", "bad shop"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shop"));
}

/// Runs `tests/js/interop.mjs` (the real @automerge/automerge-repo client); returns its JSON line.
fn interop(args: &[&str]) -> Value {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules/@automerge/automerge-repo").exists(),
        "tests/js has no node_modules: run `npm install` in tests/js (./scripts/test does)"
    );
    let out = std::process::Command::new("node").arg("interop.mjs").args(args).current_dir(&js).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("interop.mjs printed {stdout:?}; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        out.status.success() && v["ok"] == true,
        "interop.mjs: {v}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

#[test]
fn a_javascript_automerge_repo_client_reads_and_edits_over_websocket() {
    let relay = Relay::start();
    let mut a1 = Node::start();
    let o1 = a1.owner();
    let (shop, branch_a) = shop_and_branch(&o1);
    let branch_b = id(&o1.branch("SUR", "Sur"));
    let product = id(&o1.product("CAM-1", "100.00"));
    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch_a))));
    a1.start_again();
    let o1 = a1.owner();
    assert!(wait_for(CONVERGE, || idle(&o1).then_some(())).is_some(), "{:#}", status(&o1));
    let url_of = |api: &Api, needle: &str| -> String {
        let list = api.get("/api/v1/sync/documents").ok(200);
        let d = list.as_array().unwrap().iter().find(|d| d["id"].as_str().unwrap().contains(needle)).cloned();
        d.unwrap_or_else(|| panic!("no document with {needle} in {list}"))["url"].as_str().unwrap().to_string()
    };
    let doc = url_of(&o1, "/products/");

    // A WebSocket device of branch A, enrolled through the relay's API.
    let code =
        relay.admin().post("/api/v1/enrolment-codes", &json!({ "shop_id": shop, "branch_id": branch_a })).ok(201);
    let enrolled =
        Api::for_base(&relay.http).post("/api/v1/enrol", &json!({ "code": code["code"], "name": "js" })).ok(201);
    // As `--token=…`: a token may start with '-' (base64url), which node's parseArgs would
    // otherwise take for an option.
    let token = format!("--token={}", enrolled["token"].as_str().unwrap());
    let ws = format!("{}/sync", relay.http.replace("http://", "ws://"));
    let v = interop(&[
        "--url",
        &ws,
        &token,
        "--doc",
        &doc,
        "--record",
        &product,
        "--set-name",
        "Camisa (JS)",
        "--expect-name",
        "Producto CAM-1",
    ]);
    assert_eq!(v["after"], "Camisa (JS)");
    let seen = wait_for(CONVERGE, || {
        (o1.get(&format!("/api/v1/products/{product}")).ok(200)["name"] == "Camisa (JS)").then_some(())
    });
    assert!(seen.is_some(), "the edge node never showed the JavaScript client's edit");

    // Branch B's stock document, asked for by its id, is refused to the branch A device.
    let b1 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch_b))));
    let ob = owner_when_synced(&b1);
    ob.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 4, "reason": "receipt" })).ok(200);
    assert!(wait_for(CONVERGE, || idle(&ob).then_some(())).is_some(), "{:#}", status(&ob));
    let stock_b = url_of(&ob, &format!("/stock/{branch_b}/"));
    interop(&["--url", &ws, &token, "--doc", &stock_b, "--expect-unavailable"]);

    // Staff accounts are readable, their password hashes are not: the staff document never held
    // one, and the shop's credentials document (which replicas need to log staff in) is refused.
    let staff = interop(&["--url", &ws, &token, "--doc", &url_of(&o1, "/staff/"), "--dump"]);
    assert!(staff["doc"].to_string().contains(dashoffice_tests::OWNER_EMAIL), "{staff}");
    assert!(staff["history"].as_array().is_some_and(|h| h.len() >= 2), "the staff document's history: {staff}");
    assert!(!staff.to_string().contains("argon2"), "a password hash reached a /sync client: {staff}");
    let credentials = url_of(&o1, "/credentials/");
    interop(&["--url", &ws, &token, "--doc", &credentials, "--expect-unavailable"]);
    // The branch B replica got it, as it must to log its staff in.
    assert_eq!(url_of(&ob, "/credentials/"), credentials);
}

/// A QUIC client enrolled for branch A asks the relay, by id, for branch B's and another shop's
/// documents (with `request` and with `sync`), then breaks the protocol on its stream: it gets
/// `doc-unavailable` and nothing else of them, an `error` and a closed connection; the relay keeps
/// serving the real replicas throughout.
#[test]
fn a_quic_peer_asking_for_other_branches_documents_or_sending_garbage_gets_nothing() {
    use dashoffice_sync::proto::Message;
    use dashoffice_tests::quic::{Probe, Read, document_of};

    let relay = Relay::start();
    let mut a1 = Node::start();
    let o1 = a1.owner();
    let (shop, branch_a) = shop_and_branch(&o1);
    let branch_b = id(&o1.branch("SUR", "Sur"));
    let product = id(&o1.product("SUR-1", "9.00"));
    let customer = id(&o1.customer("Luis Gómez"));
    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch_a))));
    a1.start_again();
    let o1 = a1.owner();
    let b1 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch_b))));
    let ob = owner_when_synced(&b1);
    converge(&[&o1, &ob], "branch B's initial sync", |_, y| {
        y.get(&format!("/api/v1/products/{product}")).status == 200
    });
    ob.order(&customer, &[(&product, 1)]);
    ob.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 4, "reason": "receipt" })).ok(200);
    assert!(wait_for(CONVERGE, || idle(&ob).then_some(())).is_some());
    let b_docs: Vec<String> = docs(&ob)
        .into_keys()
        .filter(|d| d.contains(&format!("/orders/{branch_b}/")) || d.contains(&format!("/stock/{branch_b}/")))
        .collect();
    assert!(b_docs.len() >= 2, "branch B should hold its order and stock documents: {b_docs:?}");
    let mut wanted = b_docs.clone();
    wanted.push(format!("other-shop/orders/{branch_a}/0"));
    wanted.push(format!("{shop}/orders/{branch_b}/not-yet-created"));

    let (mut probe, meta) = Probe::enrol(&relay, &relay.code(&shop, Some(&branch_a))).expect("the probe enrols");
    assert_eq!(meta.branch_id.as_deref(), Some(branch_a.as_str()));
    let hello = automerge::sync::SyncDoc::generate_sync_message(
        &automerge::Automerge::new(),
        &mut automerge::sync::State::new(),
    )
    .expect("an empty document has something to say")
    .encode();
    for (i, doc) in wanted.iter().enumerate() {
        let (sender_id, target_id, document_id) = (probe.me.clone(), probe.relay_peer.clone(), doc.clone());
        let data = serde_bytes::ByteBuf::from(hello.clone());
        probe.send(&if i % 2 == 0 {
            Message::Request { sender_id, target_id, document_id, data }
        } else {
            Message::Sync { sender_id, target_id, document_id, data }
        });
    }
    let got = probe.drain(Duration::from_secs(3));
    for doc in &wanted {
        let answers: Vec<&Message> = got.iter().filter(|m| document_of(m) == Some(doc.as_str())).collect();
        assert!(
            matches!(answers.as_slice(), [Message::DocUnavailable { .. }]),
            "{doc}: expected exactly one doc-unavailable, got {answers:?}"
        );
    }
    let leaked: Vec<&str> = got
        .iter()
        .filter(|m| matches!(m, Message::Sync { .. }))
        .filter_map(document_of)
        .filter(|d| !d.starts_with(&format!("{shop}/")) || d.contains(&branch_b))
        .collect();
    assert_eq!(leaked, Vec::<&str>::new(), "documents outside branch A's scope reached the probe");
    assert!(
        got.iter().any(|m| matches!(m, Message::Sync { document_id, .. } if document_id.contains("/products/"))),
        "the probe should still get the shop-wide products it may see"
    );

    // A well-framed frame that is not CBOR: an error message, then the relay closes the connection.
    probe.send_frame(b"\xff\xfe this is not an automerge-repo message");
    let mut error = None;
    while let Read::Message(m) = probe.read(Duration::from_secs(10)) {
        if let Message::Error { message } = *m {
            error = Some(message);
            break;
        }
    }
    assert!(error.is_some_and(|m| m.contains("not an automerge-repo message")), "no error frame");
    let closed = probe.closed(Duration::from_secs(10)).expect("the relay closes the connection");
    assert!(closed.contains("protocol"), "{closed}");

    // Broken framing: a length far over the limit, then junk. The relay drops that connection too.
    let (mut probe, _) = Probe::enrol(&relay, &relay.code(&shop, Some(&branch_a))).expect("a second probe enrols");
    probe.send_raw(&[0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(probe.closed(Duration::from_secs(20)).is_some(), "the relay kept a connection with broken framing");
    // A made-up enrolment code: refused before any document.
    assert!(Probe::enrol(&relay, "not-a-code").is_err());

    // The real replicas never noticed.
    let p2 = id(&o1.product("SUR-2", "11.00"));
    let arrived = wait_for(CONVERGE, || (ob.get(&format!("/api/v1/products/{p2}")).status == 200).then_some(()));
    assert!(arrived.is_some(), "the relay stopped serving after the probes: {:#}", status(&ob));
}

/// Head office logs in on the relay itself (no edge node of its own): the relay's replica of the
/// shop serves the shop's API, so the owner sees both branches' sales, edits reach the branches,
/// and bad tokens are refused with JSON errors.
#[test]
fn head_office_logs_in_on_the_relay_and_sees_every_branch() {
    let relay = Relay::start();
    let mut a1 = Node::start();
    let o1 = a1.owner();
    let (shop, branch_a) = shop_and_branch(&o1);
    let branch_b = id(&o1.branch("NOR", "Norte"));
    let product = id(&o1.product("CAM-9", "100.00"));
    let customer = id(&o1.customer("Ana Pérez"));
    o1.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 10, "reason": "receipt" })).ok(200);
    let order_a = id(&o1.order(&customer, &[(&product, 2)]));
    o1.transition(&order_a, "confirmed");
    o1.transition(&order_a, "paid");

    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch_a))));
    a1.start_again();
    let b1 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch_b))));
    let (o1, ob) = (a1.owner(), owner_when_synced(&b1));
    ob.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 5, "reason": "receipt" })).ok(200);
    let order_b = id(&ob.order(&customer, &[(&product, 1)]));
    ob.transition(&order_b, "confirmed");
    ob.transition(&order_b, "paid");

    // Not logged in, a forged token, a wrong password: JSON errors, never the data.
    let anon = Api::for_base(&relay.http);
    anon.get("/api/v1/orders").err(401, "unauthorized");
    Api::for_base(&relay.http).with_token("forged-token").get("/api/v1/orders").err(401, "unauthorized");
    let bad = wait_for(CONVERGE, || {
        let r = anon
            .try_post("/api/v1/auth/login", &json!({ "email": dashoffice_tests::OWNER_EMAIL, "password": "wrong" }))
            .ok()?;
        (r.status == 401).then_some(r)
    });
    assert!(bad.is_some(), "a wrong password must get 401 once the relay has the shop; log:\n{}", relay.log());

    // The owner logs in on the relay and sees both branches' orders and sales.
    let head = owner_when_synced_at(&relay.http);
    let both = wait_for(CONVERGE, || {
        let s = head.get("/api/v1/analytics/summary?days=7").ok(200);
        let by_branch = s["sales_by_branch"].as_array().cloned().unwrap_or_default();
        let amount = |b: &str| by_branch.iter().find(|x| x["key"] == b).map(|x| x["amount"].clone());
        (amount(&branch_a).is_some() && amount(&branch_b).is_some()).then_some(s)
    })
    .unwrap_or_else(|| panic!("the relay never showed both branches' sales; log:\n{}", relay.log()));
    // 3 × 100.00 plus 16 % IVA, 232.00 in Centro and 116.00 in Norte.
    assert_eq!(both["sales_total"], "348.00", "{both}");
    assert_eq!(head.get(&format!("/api/v1/orders/{order_a}")).ok(200)["status"], "paid");
    assert_eq!(head.get(&format!("/api/v1/orders/{order_b}")).ok(200)["status"], "paid");
    assert_eq!(head.get("/api/v1/auth/me").ok(200)["role"], "owner");
    // Head office searches every branch (the relay opens the shop's search index on this first
    // search, and answers "indexing" until it has caught up).
    let found = wait_for(CONVERGE, || {
        let r = head.get("/api/v1/search?q=ana%20perez").ok(200);
        (r["indexing"] == false && !r["hits"].as_array()?.is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("head office's search never found the customer; log:\n{}", relay.log()));
    assert_eq!(found["hits"][0]["kind"], "customer", "{found}");
    assert_eq!(found["hits"][0]["title"], "Ana Pérez", "{found}");
    // Head office downloads a backup of the shop's replica on the relay.
    let backup = head.get("/api/v1/backup");
    assert!(backup.status == 200 && backup.bytes.starts_with(b"SQLite format 3\0"), "{}", backup.status);
    // The UI's live stream on the relay opens with the cookie, as on an edge node.
    let (_, status, first) = head.open_events_with_cookie();
    assert!(status == 200 && first.contains("hello"), "{status} {first}");
    // Its sync status is the shop replica's (what the UI's settings page shows); the admin token
    // still gets the relay's own status.
    assert_eq!(head.get("/api/v1/sync/status").ok(200)["connected"], true);
    assert!(relay.status()["documents"].as_u64().unwrap_or(0) > 0);

    // The owner manages the shop's devices and WhatsApp numbers on the relay (the settings page),
    // and only this shop's; the admin token still sees everything.
    let other = Api::for_base(&relay.http)
        .post("/api/v1/enrol", &json!({ "code": relay.code("another-shop", None), "name": "ajeno" }))
        .ok(201);
    let mine = head.get("/api/v1/devices").ok(200);
    let mine = mine.as_array().unwrap();
    assert!(mine.len() >= 2 && mine.iter().all(|d| d["shop_id"] == shop.as_str()), "{mine:?}");
    // The relay's own replica of the shop (WhatsApp, head office) is listed but not revocable here.
    let service = mine.iter().find(|d| d["relay_service"] == true).expect("the relay's service replica is listed");
    head.post(&format!("/api/v1/devices/{}/revoke", service["id"].as_str().unwrap()), &json!({})).err(409, "conflict");
    let all = relay.admin().get("/api/v1/devices").ok(200);
    assert!(all.as_array().unwrap().iter().any(|d| d["id"] == other["device_id"]));
    let code = head
        .post("/api/v1/enrolment-codes", &json!({ "shop_id": shop, "branch_id": branch_b, "note": "caja 2" }))
        .ok(201);
    assert_eq!(code["relay_fingerprint"], relay.fingerprint().as_str());
    assert_field_error(
        head.post("/api/v1/enrolment-codes", &json!({ "shop_id": "another-shop" })),
        403,
        "forbidden",
        "shop_id",
    );
    let tablet =
        Api::for_base(&relay.http).post("/api/v1/enrol", &json!({ "code": code["code"], "name": "tableta" })).ok(201);
    let tablet_id = tablet["device_id"].as_str().unwrap();
    head.post(&format!("/api/v1/devices/{}/revoke", other["device_id"].as_str().unwrap()), &json!({}))
        .err(404, "not_found");
    head.post(&format!("/api/v1/devices/{tablet_id}/revoke"), &json!({})).ok(204);
    let listed = head.get("/api/v1/devices").ok(200);
    let tablet = listed.as_array().unwrap().iter().find(|d| d["id"] == tablet_id).cloned().unwrap();
    assert!(tablet["revoked_at"].is_i64(), "{tablet}");
    assert_eq!(tablet["branch_id"], branch_b.as_str());
    let number = json!({ "phone_number_id": "1000001", "shop_id": shop, "access_token": "EAAG-secret",
        "display_number": "+52 55 0000 0001", "branch_id": branch_b });
    head.post("/api/v1/whatsapp/numbers", &number).ok(201);
    let numbers = head.get("/api/v1/whatsapp/numbers").ok(200);
    assert_eq!(numbers.as_array().unwrap().len(), 1, "{numbers}");
    assert_eq!(numbers[0]["access_token_set"], true);
    assert!(!numbers.to_string().contains("EAAG-secret"), "the token never comes back");
    let foreign = json!({ "phone_number_id": "1000002", "shop_id": "another-shop", "access_token": "EAAG-other-1" });
    assert_field_error(head.post("/api/v1/whatsapp/numbers", &foreign), 403, "forbidden", "shop_id");
    head.delete("/api/v1/whatsapp/numbers/1000001").ok(204);
    head.delete("/api/v1/whatsapp/numbers/1000001").err(404, "not_found");
    // A seller of the shop may not.
    o1.staff("vende@tienda.mx", "seller", Some(&branch_a));
    let seller = wait_for(CONVERGE, || {
        let r = Api::for_base(&relay.http)
            .try_post("/api/v1/auth/login", &json!({ "email": "vende@tienda.mx", "password": "password-seller" }))
            .ok()?;
        (r.status == 200).then(|| r.json()["token"].as_str().unwrap().to_string())
    })
    .expect("the seller's account reaches the relay");
    Api::for_base(&relay.http).with_token(&seller).get("/api/v1/devices").err(403, "forbidden");

    // An edit made at head office reaches both branches.
    head.patch(&format!("/api/v1/products/{product}"), &json!({ "price": "95.50" })).ok(200);
    for api in [&o1, &ob] {
        let arrived = wait_for(CONVERGE, || {
            (api.get(&format!("/api/v1/products/{product}")).ok(200)["price"] == "95.50").then_some(())
        });
        assert!(arrived.is_some(), "head office's price never reached a branch");
    }
    // The web UI is served beside it.
    let page = reqwest::blocking::get(format!("{}/analytics", relay.http)).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

/// Logs in as the owner on an API host (the relay) once it has the shop.
pub(crate) fn owner_when_synced_at(base: &str) -> Api {
    let anon = Api::for_base(base);
    let token = wait_for(CONVERGE, || {
        let r = anon.try_post(
            "/api/v1/auth/login",
            &json!({ "email": dashoffice_tests::OWNER_EMAIL, "password": dashoffice_tests::OWNER_PASSWORD }),
        );
        match r {
            Ok(r) if r.status == 200 => r.json()["token"].as_str().map(str::to_string),
            _ => None,
        }
    })
    .unwrap_or_else(|| panic!("could not log in at {base}"));
    Api::for_base(base).with_token(&token)
}

/// Invoices across replicas: a second node of the branch issues two while the relay is down and
/// gets provisional numbers at once; once it reconnects, the node that made the branch (which
/// numbers its invoices) gives them their legal numbers, gap-free after the one it gave itself,
/// and every node and head office see them; the PDF is the invoice; bad requests name their
/// field; the owner moves the numbering to head office's replica on the relay, which continues
/// the series.
#[test]
fn an_invoice_issued_offline_gets_its_legal_number_from_the_branchs_numbering_node() {
    let mut relay = Relay::start();
    let (a1, shop, branch) = relay.enrolled_node();
    let o1 = a1.owner();
    let product = id(&o1.product("FAC-1", "100.00"));
    let customer = id(&o1.customer("Lucía Gómez"));
    let orders: Vec<String> = (0..4)
        .map(|_| {
            let o = id(&o1.order(&customer, &[(&product, 1)]));
            o1.transition(&o, "confirmed");
            o
        })
        .collect();
    let draft = id(&o1.order(&customer, &[(&product, 1)]));
    let invoice = |api: &Api, order: &str| api.post(&format!("/api/v1/orders/{order}/invoice"), &json!({}));
    // No invoice without the shop's tax id, none for a draft or an unknown order.
    let e = assert_field_error(invoice(&o1, &orders[0]), 409, "conflict", "tax_id");
    assert!(e["message"].as_str().unwrap().contains("RFC"), "{e}");
    o1.patch("/api/v1/shop", &json!({ "tax_id": "CCM010203AB4", "legal_name": "Comercializadora del Centro" })).ok(200);
    assert_field_error(invoice(&o1, &draft), 409, "conflict", "status");
    invoice(&o1, "no-such-order").err(404, "not_found");
    assert_field_error(o1.get("/api/v1/orders?invoice=paid"), 422, "validation", "invoice");
    let bad_series = o1.patch(&format!("/api/v1/branches/{branch}"), &json!({ "invoice_series": "a-1" }));
    assert_field_error(bad_series, 422, "validation", "invoice_series");
    let seller = o1.staff("vendedor@tienda.mx", "seller", Some(&branch));
    let seller = a1.api(&a1.login(seller["email"].as_str().unwrap(), "password-seller"));
    seller.post(&format!("/api/v1/branches/{branch}/invoicer"), &json!({})).err(403, "forbidden");

    // The numbering node issues one: numbered at once.
    let b = o1.get(&format!("/api/v1/branches/{branch}")).ok(200);
    assert_eq!((b["invoicing_here"].clone(), b["invoice_series"].clone()), (json!(true), json!("CEN")), "{b}");
    let code1 = b["invoicer_code"].as_str().unwrap().to_string();
    assert!(!invoice(&seller, &orders[0]).ok(200)["invoice"].is_null());
    let number_on = |api: &Api, order: &str| -> String {
        api.get(&format!("/api/v1/orders/{order}")).ok(200)["invoice"]["number"].as_str().unwrap_or("").to_string()
    };
    let first = wait_for(CONVERGE, || Some(number_on(&o1, &orders[0])).filter(|n| !n.is_empty()));
    assert_eq!(first.as_deref(), Some("CEN-00000001"), "{}", tail(&a1.log()));

    // A second node of the branch, offline (the relay down), issues two.
    let mut a2 = Node::start_with(tmp(), relay.edge_args(&relay.code(&shop, Some(&branch))));
    let o2 = owner_when_synced(&a2);
    converge(&[&o1, &o2], "the orders", |a, b| number_on(a, &orders[0]) == number_on(b, &orders[0]));
    assert_eq!(o2.get(&format!("/api/v1/branches/{branch}")).ok(200)["invoicing_here"], false);
    relay.kill9();
    for o in &orders[1..3] {
        let inv = invoice(&o2, o).ok(200)["invoice"].clone();
        assert!(inv["provisional_number"].as_str().unwrap().starts_with("CEN-"), "{inv}");
        assert_eq!(inv["number"], "", "{inv}");
        assert_eq!(inv["posted_at"], Value::Null, "{inv}");
    }
    // Issuing again answers the same invoice.
    let again = invoice(&o2, &orders[1]).ok(200)["invoice"].clone();
    assert_eq!(again["provisional_number"].as_str().unwrap().rsplit('-').next(), Some("F000001"), "{again}");
    let pending = o2.get("/api/v1/orders?invoice=pending").ok(200);
    assert_eq!(pending["items"].as_array().unwrap().len(), 2, "{pending}");
    // The PDF says provisional meanwhile.
    let pdf = o2.get(&format!("/api/v1/orders/{}/invoice.pdf?lang=es", orders[1]));
    assert_eq!(pdf.status, 200);

    // The relay is back: the numbering node numbers them, and the numbers come back.
    relay.restart();
    for api in [&o1, &o2] {
        api.post("/api/v1/sync/reconnect", &json!({})).ok(202);
    }
    let both = wait_for(CONVERGE, || {
        let n: Vec<String> = orders[1..3].iter().map(|o| number_on(&o2, o)).collect();
        n.iter().all(|x| !x.is_empty()).then_some(n)
    })
    .unwrap_or_else(|| panic!("no legal numbers on the second node:\n{}\n{}", tail(&a1.log()), tail(&a2.log())));
    let mut sorted = both.clone();
    sorted.sort();
    assert_eq!(sorted, ["CEN-00000002", "CEN-00000003"]);
    let inv = o2.get(&format!("/api/v1/orders/{}", orders[1])).ok(200)["invoice"].clone();
    assert_eq!((inv["posted_by"].as_str(), inv["duplicate"].as_bool()), (Some(code1.as_str()), Some(false)), "{inv}");
    let found = o2.get(&format!("/api/v1/orders?q={}", both[0])).ok(200);
    assert_eq!(found["items"][0]["id"], json!(orders[1]), "{found}");
    assert_eq!(o2.get("/api/v1/orders?invoice=posted").ok(200)["items"].as_array().unwrap().len(), 3);
    // The invoice register, for the accountant.
    let csv = o2.get("/api/v1/invoices/export");
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(csv.header("content-type").unwrap_or_default().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("number,series,sequence,posted_at,provisional_number"), "{}", csv.text);
    assert!(lines[1].starts_with("CEN-00000001,CEN,1,") && lines[3].starts_with("CEN-00000003,CEN,3,"), "{}", csv.text);
    assert_field_error(o2.get("/api/v1/invoices/export?month=2026-1"), 422, "validation", "month");
    seller.get("/api/v1/invoices/export").err(403, "forbidden");

    // Head office on the relay sees them, takes over the numbering, and continues the series.
    let head = wait_for(CONVERGE, || {
        let r = Api::for_base(&relay.http).post(
            "/api/v1/auth/login",
            &json!({ "email": dashoffice_tests::OWNER_EMAIL, "password": dashoffice_tests::OWNER_PASSWORD }),
        );
        (r.status == 200).then(|| Api::for_base(&relay.http).with_token(r.json()["token"].as_str().unwrap()))
    })
    .expect("head office login on the relay");
    wait_for(CONVERGE, || (number_on(&head, &orders[2]) == both[1]).then_some(())).expect("the numbers at head office");
    let moved = head.post(&format!("/api/v1/branches/{branch}/invoicer"), &json!({})).ok(200);
    assert_eq!(moved["invoicing_here"], true, "{moved}");
    assert_ne!(moved["invoicer_code"], json!(code1), "{moved}");
    wait_for(CONVERGE, || {
        (o1.get(&format!("/api/v1/branches/{branch}")).ok(200)["invoicing_here"] == false).then_some(())
    })
    .expect("the first node hears it no longer numbers");
    invoice(&o1, &orders[3]).ok(200);
    let fourth = wait_for(CONVERGE, || Some(number_on(&o1, &orders[3])).filter(|n| !n.is_empty()));
    assert_eq!(fourth.as_deref(), Some("CEN-00000004"), "{}", tail(&relay.log()));
    assert_eq!(
        o1.get(&format!("/api/v1/orders/{}", orders[3])).ok(200)["invoice"]["posted_by"],
        moved["invoicer_code"]
    );

    // The fourth order is cancelled after all: a credit note undoes its invoice, numbered by
    // head office in its own series.
    let credit = |api: &Api, order: &str| {
        api.post(&format!("/api/v1/orders/{order}/credit-note"), &json!({ "reason": "Cancelado por el cliente" }))
    };
    assert_field_error(credit(&o1, &orders[3]), 409, "conflict", "status");
    assert_field_error(credit(&o1, &draft), 409, "conflict", "invoice");
    let long = o1.post(&format!("/api/v1/orders/{}/credit-note", orders[3]), &json!({ "reason": "x".repeat(501) }));
    assert_field_error(long, 422, "validation", "reason");
    o1.transition(&orders[3], "cancelled");
    let cn = credit(&o1, &orders[3]).ok(200)["credit_note"].clone();
    assert_eq!(cn["reason"], "Cancelado por el cliente", "{cn}");
    let credited = wait_for(CONVERGE, || {
        let n = o1.get(&format!("/api/v1/orders/{}", orders[3])).ok(200)["credit_note"]["number"].clone();
        n.as_str().filter(|n| !n.is_empty()).map(str::to_string)
    });
    assert_eq!(credited.as_deref(), Some("NC-CEN-00000001"), "{}", tail(&relay.log()));
    // Its PDF is the credit note, named after it; the invoice it undid is still there by name.
    let pdf = o1.get(&format!("/api/v1/orders/{}/invoice.pdf?lang=es", orders[3]));
    assert_eq!(pdf.status, 200);
    assert!(pdf.header("content-disposition").unwrap_or_default().contains("NC-CEN-00000001.pdf"));
    let pdf = o1.get(&format!("/api/v1/orders/{}/invoice.pdf?document=invoice", orders[3]));
    assert!(pdf.header("content-disposition").unwrap_or_default().contains("CEN-00000004.pdf"));
    let bad = o1.get(&format!("/api/v1/orders/{}/invoice.pdf?document=nota", orders[3]));
    assert_field_error(bad, 422, "validation", "document");
    assert_field_error(
        o1.get(&format!("/api/v1/orders/{draft}/invoice.pdf?document=invoice")),
        409,
        "conflict",
        "document",
    );
    let csv = o1.get("/api/v1/invoices/export");
    assert_eq!(csv.status, 200, "{}", csv.text);
    let csv = csv.text;
    assert!(
        csv.lines().any(|l| l.starts_with("NC-CEN-00000001,NC-CEN,1,") && l.ends_with(",credit_note,CEN-00000004")),
        "{csv}"
    );
    a2.sigterm();
}
