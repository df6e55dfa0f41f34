//! The relay harness: starts the real `dashoffice-relay` on a temporary data folder (ports picked
//! by the OS on the first start and kept for restarts, so replicas find it again), stops it with
//! SIGTERM or kill -9, runs its CLI; and a UDP proxy between a replica and the relay that can cut
//! the network.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader},
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use reqwest::blocking::Client;
use serde_json::Value;
use tempfile::TempDir;

use crate::{Api, bin};

/// One `dashoffice-relay` process.
pub struct Relay {
    root: TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// The QUIC address.
    pub quic: String,
    env: Vec<(String, String)>,
}

fn command() -> Command {
    let mut cmd = Command::new(bin("dashoffice-relay"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DASHOFFICE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", crate::log_level()).stdin(Stdio::null());
    cmd
}

impl Relay {
    /// Starts a relay on a fresh folder.
    pub fn start() -> Self {
        Self::start_env(Vec::new())
    }

    /// Starts a relay with extra environment variables (kept for restarts).
    pub fn start_env(env: Vec<(String, String)>) -> Self {
        let root = tempfile::tempdir().expect("a temporary folder");
        let mut r = Self { root, child: None, http: String::new(), quic: String::new(), env };
        r.spawn("127.0.0.1:0", "127.0.0.1:0");
        r
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("relay")
    }

    /// Standard error of every start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("relay.log")).unwrap_or_default()
    }

    fn spawn(&mut self, http: &str, quic: &str) {
        let log =
            File::options().create(true).append(true).open(self.root.path().join("relay.log")).expect("relay.log");
        let mut child = command()
            .current_dir(self.root.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", http, "--quic-listen", quic])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning dashoffice-relay");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("dashoffice-relay listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                panic!("dashoffice-relay did not start ({e}); log:\n{}", self.log());
            }
        };
        // "http://127.0.0.1:P (QUIC on 127.0.0.1:Q)"
        let (h, q) = line.split_once(" (QUIC on ").expect("the address line");
        self.http = h.to_string();
        self.quic = q.trim_end_matches(')').to_string();
        self.child = Some(child);
    }

    /// The process id (for benchmarks that read /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// kill -9, then reaped.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().expect("SIGKILL");
        c.wait().expect("reaping");
    }

    /// Stops it (kill -9) if running and starts it again on the same folder and ports.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        let (h, q) = (self.http.trim_start_matches("http://").to_string(), self.quic.clone());
        // The HTTP port can linger briefly after a kill; retry a few times.
        for attempt in 0..20 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn(&h, &q))).is_ok();
            if ok {
                return;
            }
            assert!(attempt < 19, "the relay did not restart; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs a CLI command on its folder.
    pub fn cli(&self, args: &[&str]) -> Output {
        command().arg("--data-dir").arg(self.data_dir()).args(args).output().expect("running the relay CLI")
    }

    /// The certificate fingerprint replicas pin.
    pub fn fingerprint(&self) -> String {
        let out = self.cli(&["fingerprint"]);
        assert!(out.status.success(), "fingerprint: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A one-time enrolment code for `shop` (and `branch`).
    pub fn code(&self, shop: &str, branch: Option<&str>) -> String {
        let mut args = vec!["enrol-code", "--shop", shop];
        if let Some(b) = branch {
            args.extend(["--branch", b]);
        }
        let out = self.cli(&args);
        assert!(out.status.success(), "enrol-code: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The owner's API client (admin token).
    pub fn admin(&self) -> Api {
        let token = std::fs::read_to_string(self.data_dir().join("admin-token")).expect("the admin token file");
        Api {
            http: Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            base: self.http.clone(),
            token: Some(token.trim().to_string()),
        }
    }

    /// The edge-node flags that sync with this relay using `code`.
    pub fn edge_args(&self, code: &str) -> Vec<String> {
        vec![
            "--relay".into(),
            self.quic.clone(),
            "--relay-fingerprint".into(),
            self.fingerprint(),
            "--enrolment-code".into(),
            code.into(),
        ]
    }

    /// A node with a shop of its own (first run), then enrolled on this relay for its first
    /// branch; with the shop and branch ids.
    pub fn enrolled_node(&self) -> (crate::Node, String, String) {
        let mut node = crate::Node::start();
        let owner = node.owner();
        let shop = owner.get("/api/v1/shop").ok(200)["id"].as_str().expect("the shop's id").to_string();
        let branch = crate::id(&owner.get("/api/v1/branches").ok(200)[0]);
        node.sigterm();
        node.set_extra(self.edge_args(&self.code(&shop, Some(&branch))));
        node.start_again();
        (node, shop, branch)
    }

    /// The relay's session list (`GET /api/v1/sync/status`).
    pub fn status(&self) -> Value {
        self.admin().get("/api/v1/sync/status").ok(200)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A UDP proxy in front of the relay: replicas connect to `addr`; `cut(true)` drops every
/// datagram both ways (a network partition) until `cut(false)`.
pub struct UdpProxy {
    /// Where replicas connect.
    pub addr: String,
    cut: Arc<AtomicBool>,
    delay_us: Arc<std::sync::atomic::AtomicU64>,
}

impl UdpProxy {
    /// Forwards to `target`.
    pub fn start(target: &str) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = front.local_addr().expect("address").to_string();
        let target: SocketAddr = target.parse().expect("the target address");
        let cut = Arc::new(AtomicBool::new(false));
        let delay_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_us.clone();
        let uplinks: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
        let front = Arc::new(front);
        let c = cut.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = front.recv_from(&mut buf) else { return };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let up = {
                    let mut map = uplinks.lock().expect("uplinks");
                    map.entry(from)
                        .or_insert_with(|| {
                            let s = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("uplink socket"));
                            let (back, front, cut, delay) = (s.clone(), front.clone(), c.clone(), delay.clone());
                            std::thread::spawn(move || {
                                let mut buf = vec![0u8; 65536];
                                while let Ok(n) = back.recv(&mut buf) {
                                    let d = delay.load(Ordering::SeqCst);
                                    if d > 0 {
                                        std::thread::sleep(Duration::from_micros(d));
                                    }
                                    if !cut.load(Ordering::SeqCst) {
                                        let _ = front.send_to(&buf[..n], from);
                                    }
                                }
                            });
                            s.connect(target).expect("connecting the uplink");
                            s
                        })
                        .clone()
                };
                let _ = up.send(&buf[..n]);
            }
        });
        Self { addr, cut, delay_us }
    }

    /// Slows the relay-to-replica direction down: each datagram waits this long (a slow link).
    pub fn slow(&self, per_datagram: Duration) {
        self.delay_us.store(per_datagram.as_micros() as u64, Ordering::SeqCst);
    }

    /// Cuts or restores the network.
    pub fn cut(&self, on: bool) {
        self.cut.store(on, Ordering::SeqCst);
    }
}
