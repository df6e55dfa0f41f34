//! E-mail of order documents end to end on loopback with the real release binaries: an edge node
//! asks for N e-mails (one per order, each with its sales-note PDF); the relay receives them by
//! sync, renders each PDF and sends it to a real SMTP server (Debian's aiosmtpd, writing a
//! Maildir); the node learns each went. Figures: the request's latency on the node, e-mails
//! handed to the mail server per second, and the time until the node shows them all sent.
//!
//! `cargo build --release -p dashoffice-relay -p dashoffice-edge` first, then
//! `cargo bench -p dashoffice-tests --bench mail -- 300`

// A benchmark states what it needs; a failed unwrap is a broken setup, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dashoffice_tests::{id, mail, relay::Relay, wait_for};
use serde_json::json;

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(300);
    println!("== e-mail of order documents: {n} e-mails ==");
    let (port, root) = (mail::free_port(), tempfile::tempdir().unwrap());
    let maildir = root.path().join("mail");
    let _smtp = mail::Smtp::start(port, &maildir);
    let mut env = mail::relay_env(port);
    env.push(("RUST_LOG".into(), std::env::var("BENCH_RELAY_LOG").unwrap_or_else(|_| "warn".into())));
    let relay = Relay::start_env(env);
    let (node, _, _) = relay.enrolled_node();
    let o = node.owner();
    let product = id(&o.product("MAIL-1", "120.00"));
    let customer =
        id(&o.post("/api/v1/customers", &json!({ "name": "Lucía Gómez", "email": "lucia@example.com" })).ok(201));
    // One e-mail first, until it went: the relay's replica of the shop is then up and synced
    // (a new shop's starts within seconds of its first enrolment), and the figures below are of
    // a relay at work.
    let warm = id(&o.order(&customer, &[(&product, 1)]));
    o.transition(&warm, "confirmed");
    o.post(&format!("/api/v1/orders/{warm}/email"), &json!({})).ok(202);
    let up = wait_for(Duration::from_secs(300), || {
        (o.get(&format!("/api/v1/orders/{warm}")).ok(200)["emails"][0]["status"] == "sent").then_some(())
    });
    assert!(up.is_some(), "the first e-mail never went");
    let orders: Vec<String> = (0..n)
        .map(|_| {
            let order = id(&o.order(&customer, &[(&product, 2)]));
            o.transition(&order, "confirmed");
            order
        })
        .collect();
    let synced = wait_for(Duration::from_secs(300), || {
        let s = o.get("/api/v1/sync/status").ok(200);
        (s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0).then_some(())
    });
    assert!(synced.is_some(), "the node never synced");

    let start = Instant::now();
    if std::env::var("BENCH_RELAY_LOG").is_ok() {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        println!("first request at {ms} ms since the epoch");
    }
    let new = maildir.join("new");
    let count = || std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0);
    // The requests go from one thread, one after the other, as staff would make them; the
    // deliveries are watched meanwhile.
    let (mut latencies, requested, first, all) = std::thread::scope(|s| {
        let requests = s.spawn(|| {
            let l: Vec<f64> = orders
                .iter()
                .map(|order| {
                    let t = Instant::now();
                    o.post(&format!("/api/v1/orders/{order}/email"), &json!({})).ok(202);
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            (l, start.elapsed())
        });
        let first = wait_for(Duration::from_secs(300), || (count() > 1).then(Instant::now)).expect("no e-mail arrived");
        let all = wait_for(Duration::from_secs(600), || (count() > n).then(Instant::now)).expect("not all arrived");
        let (l, requested) = requests.join().unwrap();
        (l, requested, first, all)
    });
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "requests: {n} in {:.2} s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        requested.as_secs_f64(),
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
    println!(
        "delivered: first {:.2} s after the first request, all {n} after {:.2} s; {:.0} e-mails/s between the first and the last",
        (first - start).as_secs_f64(),
        (all - start).as_secs_f64(),
        (n.saturating_sub(1)) as f64 / (all - first).as_secs_f64().max(1e-6)
    );
    let last = orders.last().unwrap().clone();
    let shown = wait_for(Duration::from_secs(300), || {
        let e = o.get(&format!("/api/v1/orders/{last}")).ok(200)["emails"][0]["status"].clone();
        (e == "sent").then(Instant::now)
    })
    .expect("the node never heard the last e-mail went");
    println!("the node shows the last one sent {:.2} s after the first request", (shown - start).as_secs_f64());
    let sent = orders
        .iter()
        .filter(|order| o.get(&format!("/api/v1/orders/{order}")).ok(200)["emails"][0]["status"] == "sent")
        .count();
    assert_eq!(sent, n, "every e-mail shows sent on the node");
    assert_eq!(count(), n + 1, "each e-mail once (and the first one)");
    if std::env::var("BENCH_RELAY_LOG").is_ok() {
        println!("{}", relay.log());
    }
}
