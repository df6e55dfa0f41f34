//! Bot reply end to end on loopback with the real release binaries: N signed webhook messages
//! ("¿cuánto cuesta …?" naming catalog products) from C customers are posted to the relay; the
//! figure is how fast the relay turns them into stored conversations with the bot's answer
//! queued (webhook → intent → product lookup → reply queued), and how fast the replies then leave
//! through the (fake) Graph API.
//!
//! `cargo bench -p dashoffice-tests --bench whatsapp -- 5000 500` (messages, customers)

// A benchmark states what it needs; a failed unwrap is a broken setup, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dashoffice_tests::{
    Node, id,
    relay::Relay,
    wait_for,
    whatsapp::{self as wa, FakeGraph},
};
use serde_json::json;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(5000);
    let customers = args.get(1).copied().unwrap_or(500).max(1);
    println!("== bot replies: {n} messages from {customers} customers ==");
    let graph = FakeGraph::start();
    let mut env = wa::relay_env(&graph);
    // Replies leave at up to 1,000/s per number (Meta's highest tier) unless told otherwise
    // (its default tier is 80/s: BENCH_RATE_PER_NUMBER=80).
    let rate = std::env::var("BENCH_RATE_PER_NUMBER").unwrap_or_else(|_| "1000".into());
    println!("replies leave at up to {rate}/s per number");
    env.push(("DASHOFFICE_WHATSAPP_RATE_PER_NUMBER".into(), rate));
    env.push(("DASHOFFICE_WHATSAPP_RATE_PER_CUSTOMER".into(), "600".into()));
    env.push(("RUST_LOG".into(), "warn".into()));
    let relay = Relay::start_env(env);
    let mut node = Node::start();
    let owner = node.owner();
    let shop = owner.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branch = id(&owner.get("/api/v1/branches").ok(200)[0]);
    let names = ["Camisa azul", "Pantalón negro", "Vestido rojo", "Zapatos cafés", "Gorra verde"];
    for (i, name) in names.iter().enumerate() {
        let p = id(&owner
            .post(
                "/api/v1/products",
                &json!({ "sku": format!("P-{i}"), "name": name, "price": "99.90", "currency": "MXN" }),
            )
            .ok(201));
        owner.post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": 50, "reason": "receipt" })).ok(200);
    }
    node.sigterm();
    node.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    node.start_again();
    let owner = node.owner();
    wait_for(Duration::from_secs(120), || {
        let s = owner.get("/api/v1/sync/status").ok(200);
        (s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0).then_some(())
    })
    .expect("synced");
    relay
        .admin()
        .post("/api/v1/whatsapp/numbers", &json!({ "phone_number_id": wa::PHONE_NUMBER_ID, "shop_id": shop, "branch_id": branch, "access_token": wa::ACCESS_TOKEN }))
        .ok(201);
    // Warm up: the service replica's first sync, one message.
    wa::deliver(&relay.http, &wa::text("5210000000000", "Warm", "wamid.WARM", "hola"));
    wait_for(Duration::from_secs(120), || (!graph.sent().is_empty()).then_some(())).expect("warm-up answered");
    let admin = relay.admin();
    let done = || admin.get("/api/v1/whatsapp/status").ok(200)["events"]["done"].as_i64().unwrap_or(0);
    let base = done();

    let bodies: Vec<(Vec<u8>, String)> = (0..n)
        .map(|i| {
            let customer = format!("52155{:08}", i % customers);
            let text = format!("¿Cuánto cuesta el {}?", names[i % names.len()].to_lowercase());
            let body = wa::text(&customer, "Cliente", &format!("wamid.B{i:08}"), &text).to_string().into_bytes();
            let sig = wa::sign(&body);
            (body, sig)
        })
        .collect();
    println!("burst: posting {n} webhooks");
    let t0 = Instant::now();
    let t0_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    std::thread::scope(|s| {
        for w in 0..8 {
            let (bodies, http) = (&bodies, &relay.http);
            s.spawn(move || {
                let client = wa::client();
                for (body, sig) in bodies.iter().skip(w).step_by(8) {
                    let (st, text) = wa::post_webhook_with(&client, http, body, Some(sig));
                    assert_eq!(st, 200, "{text}");
                }
            });
        }
    });
    let posted = t0.elapsed();
    let target = base + n as i64;
    wait_for(Duration::from_secs(900), || (done() >= target).then_some(())).expect("every message processed");
    let polled = t0.elapsed();
    // The relay stamps each event when its write has committed (the reply queued); the last stamp
    // is the end of the run, to the millisecond, where polling the count every 100 ms would add
    // up to 100 ms to a run of about a second. Same machine, same clock.
    let last = admin.get("/api/v1/whatsapp/status").ok(200)["last_processed_at"].as_i64().expect("last_processed_at");
    let processed = Duration::from_millis((last - t0_ms).max(1) as u64);
    let sent_target = n + 1;
    wait_for(Duration::from_secs(900), || (graph.sent().len() >= sent_target).then_some(())).expect("every reply sent");
    let sent = t0.elapsed();
    println!(
        "posted {n} webhooks in {:.2} s ({:.0}/s, 8 clients)",
        posted.as_secs_f64(),
        n as f64 / posted.as_secs_f64()
    );
    println!("polled: all processed seen after {:.2} s (every 100 ms)", polled.as_secs_f64());
    println!(
        "RESULT bot n={n} customers={customers}: all processed with the reply queued after {:.2} s ({:.0} messages/s); all replies sent after {:.2} s ({:.0}/s)",
        processed.as_secs_f64(),
        n as f64 / processed.as_secs_f64(),
        sent.as_secs_f64(),
        n as f64 / sent.as_secs_f64()
    );
    let status = admin.get("/api/v1/whatsapp/status").ok(200);
    println!("relay events: {}", status["events"]);
}
