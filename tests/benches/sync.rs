//! Sync benchmarks on loopback with the real binaries (run through `scripts/bench-sync`, which
//! builds them in release first). Each prints its figures; none of them is a pass/fail test.
//!
//! - `converge`: two edge nodes of one branch, each with N offline changes (product creations
//!   through the HTTP API), come back online: time until both hold identical documents.
//! - `reconnect`: the same writes on two running nodes while the relay is down; the relay comes
//!   back and both are told to sync now: time until both hold identical documents.
//! - `initial`: a shop with N products (CSV import) syncs to a brand-new node: time until the
//!   new node has projected every product.
//! - `idle`: N enrolled replicas hold idle QUIC connections to the relay: relay RSS and CPU.
//!
//! `cargo bench -p dashoffice-tests --bench sync -- converge 10000 initial 100000 idle 1000`

// A benchmark states what it needs; a failed unwrap is a broken setup, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use dashoffice_sync::{
    framing::frame_quic,
    proto::{Message, PROTOCOL_VERSION, PeerMetadata},
    tls::{self, Identity, Trust},
};
use dashoffice_tests::{Api, Node, id, relay::Relay, wait_for};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(900);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut it = args.iter();
    let mut ran = false;
    while let Some(what) = it.next() {
        let n: usize = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match what.as_str() {
            "converge" => converge(if n == 0 { 10_000 } else { n }),
            "reconnect" => reconnect(if n == 0 { 10_000 } else { n }),
            "initial" => initial(if n == 0 { 100_000 } else { n }),
            "idle" => idle(if n == 0 { 1_000 } else { n }),
            other => {
                eprintln!("unknown benchmark {other}: use converge N, reconnect N, initial N, idle N");
                std::process::exit(2);
            }
        }
        ran = true;
    }
    if !ran {
        converge(10_000);
        reconnect(10_000);
        initial(100_000);
        idle(1_000);
    }
}

fn shop_and_branch(api: &Api) -> (String, String) {
    let shop = api.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branches = api.get("/api/v1/branches").ok(200);
    (shop, id(&branches[0]))
}

fn status(api: &Api) -> Value {
    api.get("/api/v1/sync/status").ok(200)
}

fn idle_and_connected(api: &Api) -> bool {
    let s = status(api);
    s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0
}

/// Whether the node's search index is still catching up with its writes.
fn indexing(api: &Api) -> bool {
    api.get("/api/v1/search?q=producto&limit=1").ok(200)["indexing"] == true
}

fn docs(api: &Api) -> BTreeMap<String, Value> {
    let list = api.get("/api/v1/sync/documents").ok(200);
    list.as_array().unwrap().iter().map(|d| (d["id"].as_str().unwrap().to_string(), d["heads"].clone())).collect()
}

fn products_in(data_dir: &Path) -> i64 {
    let c = dashoffice_core::Connection::open(data_dir.join("dashoffice.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT count(*) FROM products", [], |r| r.get(0)).unwrap_or(0)
}

/// Logs in as the owner once the staff document has arrived by sync.
fn owner_when_synced(node: &Node) -> Api {
    let body = json!({ "email": dashoffice_tests::OWNER_EMAIL, "password": dashoffice_tests::OWNER_PASSWORD });
    let token = wait_for(LONG, || match node.anon().try_post("/api/v1/auth/login", &body) {
        Ok(r) if r.status == 200 => r.json()["token"].as_str().map(str::to_string),
        _ => None,
    })
    .expect("the owner arrives by sync");
    node.api(&token)
}

/// `n` product creations through the API, 8 clients at a time.
fn create_products(api: &Api, prefix: &str, n: usize) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..8 {
            s.spawn(move || {
                for i in (w..n).step_by(8) {
                    api.product(&format!("{prefix}-{i:06}"), "12.50");
                }
            });
        }
    });
    t.elapsed()
}

fn converge(n: usize) {
    println!("== converge: 2 nodes of one branch, {n} offline product creations each ==");
    // Node-to-node sync only: the relay's own head-office replica of the shop would catch up at
    // the same time on the same 2 cores.
    let relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let mut a1 = Node::start();
    let (shop, branch) = shop_and_branch(&a1.owner());
    a1.sigterm();
    let online_a1 = relay.edge_args(&relay.code(&shop, Some(&branch)));
    a1.set_extra(online_a1.clone());
    a1.start_again();
    let online_a2 = relay.edge_args(&relay.code(&shop, Some(&branch)));
    let mut a2 = Node::start_with(tempfile::tempdir().unwrap(), online_a2.clone());
    let (o1, o2) = (a1.owner(), owner_when_synced(&a2));
    wait_for(LONG, || (idle_and_connected(&o1) && idle_and_connected(&o2) && docs(&o1) == docs(&o2)).then_some(()))
        .expect("the first sync");

    // Offline: both nodes restart without a relay and take n writes each.
    for node in [&mut a1, &mut a2] {
        node.sigterm();
        node.set_extra(Vec::new());
        node.start_again();
    }
    let (o1, o2) = (a1.owner(), a2.owner());
    write_on_both(&o1, &o2, n, "offline writes");
    a1.sigterm();
    a2.sigterm();
    a1.set_extra(online_a1);
    a2.set_extra(online_a2);

    // Online again: time from the first start until both hold the same documents.
    let relay_cpu = cpu_seconds(relay.pid());
    let t0 = Instant::now();
    a1.start_again();
    a2.start_again();
    let started = t0.elapsed();
    let (o1, o2) = (a1.owner(), a2.owner());
    let (total, connected) = converged(&o1, &o2, t0);
    // CPU time is steadier than the wall clock on a shared 2-core machine: it shows what a change
    // saved even when the scheduling of one run was unlucky.
    let cpu = (cpu_seconds(a1.pid()), cpu_seconds(a2.pid()), cpu_seconds(relay.pid()) - relay_cpu);
    let count = (products_in(&a1.data_dir()), products_in(&a2.data_dir()));
    print_sync_counts(&o1, &o2);
    println!(
        "both nodes started in {:.2} s, both connected at {:.2} s",
        started.as_secs_f64(),
        connected.as_secs_f64()
    );
    if total > Duration::from_secs(12) {
        // Slow: show what the processes said (a stalled session shows here).
        for (name, log) in [("node 1", a1.log()), ("node 2", a2.log()), ("relay", relay.log())] {
            if let Ok(dir) = std::env::var("BENCH_LOGS") {
                let _ = std::fs::write(Path::new(&dir).join(format!("{}.log", name.replace(' ', ""))), &log);
            }
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            println!("--- {name} log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
    println!(
        "RESULT converge n={n}: converged {:.2} s after the first start, {:.2} s after both were connected; products {:?}",
        total.as_secs_f64(),
        (total - connected).as_secs_f64(),
        count
    );
    print_cpu("converge", n, cpu);
}

/// Two running edge nodes lose the relay (killed), take `n` writes each, and the relay comes
/// back: both are told to sync now (`POST /api/v1/sync/reconnect`, what staff press when the
/// internet is back) and the figure is the time from there until both hold identical documents.
/// Unlike `converge`, the nodes never restart, as a branch's daemon does not in an outage.
fn reconnect(n: usize) {
    println!("== reconnect: 2 running nodes of one branch, {n} product creations each while the relay is down ==");
    let mut relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let mut a1 = Node::start();
    let (shop, branch) = shop_and_branch(&a1.owner());
    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    a1.start_again();
    let a2 = Node::start_with(tempfile::tempdir().unwrap(), relay.edge_args(&relay.code(&shop, Some(&branch))));
    let (o1, o2) = (a1.owner(), owner_when_synced(&a2));
    wait_for(LONG, || (idle_and_connected(&o1) && idle_and_connected(&o2) && docs(&o1) == docs(&o2)).then_some(()))
        .expect("the first sync");

    relay.kill9();
    write_on_both(&o1, &o2, n, "writes with the relay down");
    // Offline writes come over hours, and the search index keeps up with them as they come; here
    // they came in seconds. Indexing them is not part of the reconnect: wait until it is done, or
    // it competes with the sync for the 2 cores (BENCH_NO_INDEX_WAIT=1 measures it that way).
    if std::env::var_os("BENCH_NO_INDEX_WAIT").is_none() {
        let t = Instant::now();
        wait_for(LONG, || (!indexing(&o1) && !indexing(&o2)).then_some(())).expect("the search index caught up");
        println!("search index caught up with the offline writes {:.1} s later", t.elapsed().as_secs_f64());
    }
    relay.restart();
    let before = (cpu_seconds(a1.pid()), cpu_seconds(a2.pid()), cpu_seconds(relay.pid()));
    let io_before = [written_bytes(a1.pid()), written_bytes(a2.pid()), written_bytes(relay.pid())];
    let tx_before =
        [metric(&o1, "dashoffice_write_batch_seconds_count"), metric(&o2, "dashoffice_write_batch_seconds_count")];
    let t0 = Instant::now();
    for api in [&o1, &o2] {
        api.post("/api/v1/sync/reconnect", &json!({})).ok(202);
    }
    let requested = unix_now();
    let (total, connected) = converged(&o1, &o2, t0);
    // Wall-clock times, to line up with a profile taken with `perf record -k CLOCK_REALTIME`.
    println!("reconnect requested at {requested:.3}, convergence seen at {:.3} (Unix time)", unix_now());
    let cpu = (cpu_seconds(a1.pid()) - before.0, cpu_seconds(a2.pid()) - before.1, cpu_seconds(relay.pid()) - before.2);
    let io = [a1.pid(), a2.pid(), relay.pid()].map(written_bytes);
    let count = (products_in(&a1.data_dir()), products_in(&a2.data_dir()));
    print_sync_counts(&o1, &o2);
    println!(
        "during the sync: write transactions node 1 {}, node 2 {}; written to disk node 1 {:.0} MB, node 2 {:.0} MB, relay {:.0} MB",
        metric(&o1, "dashoffice_write_batch_seconds_count") - tx_before[0],
        metric(&o2, "dashoffice_write_batch_seconds_count") - tx_before[1],
        (io[0] - io_before[0]) as f64 / 1e6,
        (io[1] - io_before[1]) as f64 / 1e6,
        (io[2] - io_before[2]) as f64 / 1e6,
    );
    println!("both connected {:.2} s after the reconnect request", connected.as_secs_f64());
    println!(
        "RESULT reconnect n={n}: converged {:.2} s after the reconnect request; products {:?}",
        total.as_secs_f64(),
        count
    );
    print_cpu("reconnect", n, cpu);
}

fn initial(n: usize) {
    println!("== initial: a new node joins a shop with {n} products ==");
    // Node-to-node sync only: the relay's own head-office replica of the shop would catch up at
    // the same time on the same 2 cores.
    let mut relay = Relay::start_env(vec![("DASHOFFICE_HEAD_OFFICE".into(), "false".into())]);
    let mut a1 = Node::start();
    let (shop, branch) = shop_and_branch(&a1.owner());
    a1.sigterm();
    let path = a1.scratch().join("products.csv");
    let mut csv = String::from("sku,name,description,price,currency,tax_rate,active,tags\n");
    for i in 0..n {
        csv.push_str(&format!("SKU-{i:06},Producto {i},,{}.50,MXN,0.16,true,\n", 10 + i % 90));
    }
    std::fs::write(&path, csv).unwrap();
    let t = Instant::now();
    let out = a1.cli(&["import-products", path.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    println!("import of {n} products: {:.1} s", t.elapsed().as_secs_f64());
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    let t = Instant::now();
    a1.start_again();
    let o1 = a1.owner();
    wait_for(LONG, || idle_and_connected(&o1).then_some(())).expect("the upload");
    println!("upload of the shop to the relay: {:.1} s after start", t.elapsed().as_secs_f64());

    let code = relay.code(&shop, Some(&branch));
    let args = relay.edge_args(&code);
    // BENCH_RESTART_RELAY=1: the relay restarts between the upload and the new node, so it serves
    // the shop from its store (it builds each large document's snapshot again) instead of from
    // what it kept in memory.
    if std::env::var_os("BENCH_RESTART_RELAY").is_some() {
        a1.sigterm();
        relay.restart();
        println!("relay restarted after the upload");
    }
    let t0 = Instant::now();
    let b = Node::start_with(tempfile::tempdir().unwrap(), args);
    let started = t0.elapsed();
    let mut first = None;
    let expected = n as i64;
    wait_for(LONG, || {
        let have = products_in(&b.data_dir());
        if first.is_none() && have > 0 {
            first = Some(t0.elapsed());
        }
        (have == expected).then_some(())
    })
    .expect("every product on the new node");
    let all = t0.elapsed();
    let ob = owner_when_synced(&b);
    wait_for(LONG, || idle_and_connected(&ob).then_some(())).expect("the new node idle");
    let quiet = t0.elapsed();
    let db = std::fs::metadata(b.data_dir().join("dashoffice.db")).map(|m| m.len()).unwrap_or(0);
    println!(
        "new node: started in {:.2} s, first product at {:.2} s, all {n} products projected at {:.2} s, sync idle at {:.2} s; database {} MB",
        started.as_secs_f64(),
        first.unwrap_or(all).as_secs_f64(),
        all.as_secs_f64(),
        quiet.as_secs_f64(),
        db / 1_000_000
    );
    println!("RESULT initial n={n}: {:.2} s to every product, {:.2} s to idle", all.as_secs_f64(), quiet.as_secs_f64());
}

/// Bytes a process has caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// One counter of a node's /metrics (0 when absent).
fn metric(api: &Api, name: &str) -> u64 {
    let text = api.get("/metrics").text;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the name: state is 0, utime is 11, stime is 12 (proc(5) numbers 14 and 15).
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn idle(n: usize) {
    println!("== idle: {n} replicas connected to the relay and idle ==");
    let relay = Relay::start();
    let pid = relay.pid();
    let admin = relay.admin();
    // An empty shop: every replica is in sync as soon as it has joined, as an idle replica is.
    let shop = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let codes: Vec<String> = (0..n)
        .map(|_| {
            let r = admin.post("/api/v1/enrolment-codes", &json!({ "shop_id": shop })).ok(201);
            r["code"].as_str().unwrap().to_string()
        })
        .collect();
    let (before_rss, trust) = (rss_mib(pid), Trust::Pinned(relay.fingerprint()));
    let addr: SocketAddr = relay.quic.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let held = rt.block_on(async {
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let trust = Arc::new(trust);
        let mut tasks = Vec::new();
        for (i, code) in codes.into_iter().enumerate() {
            let d = dir.path().join(i.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let (identity, _) = Identity::load_or_create(&d, "device", &["dashoffice-device"]).unwrap();
            let cfg = tls::client_config(&trust, &identity, Duration::from_secs(30)).unwrap();
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let conn = endpoint.connect_with(cfg, addr, tls::RELAY_NAME).ok()?.await.ok()?;
                let (send, recv) = conn.open_bi().await.ok()?;
                let mut frames = frame_quic(send, recv);
                let join = Message::Join {
                    sender_id: format!("idle-{i}"),
                    peer_metadata: PeerMetadata {
                        enrolment_code: Some(code),
                        device_name: Some(format!("idle {i}")),
                        ..Default::default()
                    },
                    supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
                };
                frames.tx.send(join.encode()).ok()?;
                match frames.rx.recv().await {
                    Some(Ok(b)) if matches!(Message::decode(&b), Ok(Message::Peer { .. })) => {}
                    _ => return None,
                }
                // Stay connected, reading whatever comes, until the benchmark ends (the sender
                // stays alive too: dropping it would finish the stream, which ends the session).
                let (mut rx, tx) = (frames.rx, frames.tx);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                Some((conn, tx))
            }));
        }
        let mut held = Vec::new();
        for t in tasks {
            if let Ok(Some(c)) = t.await {
                held.push(c);
            }
        }
        (held, endpoint)
    });
    println!("{} of {n} replicas connected in {:.1} s", held.0.len(), t.elapsed().as_secs_f64());
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    let sessions = relay.status();
    println!("relay reports {} sessions", sessions["sessions"].as_array().map(Vec::len).unwrap_or(0));
    // Let the connections settle, then measure a quiet minute.
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(10)).await });
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(
            std::env::var("IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60),
        ))
        .await
    });
    let window = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - c0) / window * 100.0;
    let rss = rss_mib(pid);
    let still = held.0.iter().filter(|(c, _)| c.close_reason().is_none()).count();
    println!("relay RSS before the replicas: {before_rss:.1} MiB");
    println!(
        "RESULT idle n={n}: relay RSS {rss:.1} MiB, relay CPU {cpu:.2} % of one core over {window:.0} s idle, {still} connections still open"
    );
    if still < held.0.len() {
        let log = relay.log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        println!("some connections closed; relay log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    rt.block_on(async move { drop(held) });
}

/// Each node's sync message and write-transaction counts since it started (from its /metrics).
fn print_sync_counts(o1: &Api, o2: &Api) {
    for (name, api) in [("node 1", o1), ("node 2", o2)] {
        let text = api.get("/metrics").text;
        let metric = |m: &str| {
            text.lines()
                .find(|l| l.starts_with(m) && l[m.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "{name} since it started: sync messages sent {}, received {}; changes received {}; writes {} in {} transactions",
            metric("dashoffice_sync_messages_sent_total"),
            metric("dashoffice_sync_messages_received_total"),
            metric("dashoffice_sync_changes_received_total"),
            metric("dashoffice_writes_total"),
            metric("dashoffice_write_batch_seconds_count"),
        );
    }
}

/// `n` product creations on each of two nodes at the same time.
fn write_on_both(o1: &Api, o2: &Api, n: usize, what: &str) {
    let (w1, w2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| create_products(o1, "A1", n));
        let h2 = s.spawn(|| create_products(o2, "A2", n));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    println!(
        "{what}: node 1 {n} in {:.1} s, node 2 {n} in {:.1} s (at the same time)",
        w1.as_secs_f64(),
        w2.as_secs_f64()
    );
}

/// Waits until both nodes are connected, idle and hold the same documents: the time from `t0`
/// until then, and until both were first seen connected.
fn converged(o1: &Api, o2: &Api, t0: Instant) -> (Duration, Duration) {
    let mut connected = None;
    // Polled every 20 ms (two small status requests, then the document lists once both are
    // idle): the moment of convergence is known to within a few tens of milliseconds.
    loop {
        if connected.is_none() && status(o1)["connected"] == true && status(o2)["connected"] == true {
            connected = Some(t0.elapsed());
        }
        if idle_and_connected(o1) && idle_and_connected(o2) && docs(o1) == docs(o2) {
            break;
        }
        assert!(t0.elapsed() < LONG, "no convergence within {LONG:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = t0.elapsed();
    (total, connected.unwrap_or(total))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The CPU each process spent until convergence, as a RESULT line.
fn print_cpu(bench: &str, n: usize, (node1, node2, relay): (f64, f64, f64)) {
    println!(
        "RESULT {bench} n={n}: CPU until converged: node 1 {node1:.2} s, node 2 {node2:.2} s, relay {relay:.2} s (sum {:.2} s)",
        node1 + node2 + relay
    );
}
