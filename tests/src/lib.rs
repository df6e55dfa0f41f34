#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! DashOffice's cross-crate end-to-end test support. The process harness: starts the real `dashoffice-edge` binary on a temporary data folder, finds
//! its port on standard output, stops it (SIGTERM or kill -9), restarts it on the same folder and
//! runs its CLI commands; plus the small HTTP client and record helpers every test module uses, so
//! the tests read as requests and expectations.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use reqwest::{Method, blocking::Client, header::HeaderMap};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The owner account every node is bootstrapped with.
pub const OWNER_EMAIL: &str = "owner@tienda.mx";
pub const OWNER_PASSWORD: &str = "contraseña-segura-1";

/// A binary of this build, next to the test executable's folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(Path::parent).expect("the target folder");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace --bins; ./scripts/test does)",
        bin.display()
    );
    bin
}

pub mod mail;
pub mod quic;
pub mod relay;
pub mod whatsapp;

/// The `dashoffice-edge` binary of this build: it sits in the target folder above the test
/// executable (`target/debug/deps/e2e-…` → `target/debug/dashoffice-edge`).
pub fn edge_bin() -> PathBuf {
    bin("dashoffice-edge")
}
/// Generous on purpose: a debug build on a busy 2-core machine. Only ever a deadline, never a wait.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A command for the binary with nothing inherited that could change its settings: no
/// `DASHOFFICE_*` variables, and a working directory without a `dashoffice.toml`.
fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(edge_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DASHOFFICE_") {
            cmd.env_remove(k);
        }
    }
    // Fixed (see log_level), so tests that read the log do not depend on the caller's RUST_LOG.
    cmd.env("RUST_LOG", log_level()).current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Runs a CLI command of `dashoffice-edge` on the data folder `data_dir` (which need not exist
/// yet), from its parent folder.
pub fn edge_cli(data_dir: &Path, args: &[&str]) -> Output {
    let cwd = data_dir.parent().unwrap_or(Path::new("."));
    command(cwd).arg("--data-dir").arg(data_dir).args(args).output().expect("running the CLI")
}

/// One `dashoffice-edge` process serving a data folder it owns (a temporary folder deleted when the
/// node is dropped). The folder holds `data/` (the replica) and `node.log` (standard error of every
/// start, appended, so a failing test can show it).
pub struct Node {
    root: TempDir,
    child: Option<Child>,
    base: String,
    http: Client,
    extra: Vec<String>,
    /// Whether the harness gives the node the owner's password (else the first run makes one).
    owner_password: bool,
    /// Standard output of every start so far, line by line.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a node on a fresh data folder.
    pub fn start() -> Self {
        Self::start_on(tempfile::tempdir().expect("creating a temporary folder"))
    }

    /// Starts a node on `root/data` (created, or reopened if it exists).
    pub fn start_on(root: TempDir) -> Self {
        Self::start_with(root, Vec::new())
    }

    /// Starts a node on `root/data` with extra flags (kept for restarts).
    pub fn start_with(root: TempDir, extra: Vec<String>) -> Self {
        Self::launch(root, extra, true)
    }

    /// Starts a node on a fresh data folder without an owner's password: the first run makes one.
    pub fn start_without_owner_password() -> Self {
        Self::launch(tempfile::tempdir().expect("creating a temporary folder"), Vec::new(), false)
    }

    fn launch(root: TempDir, extra: Vec<String>, owner_password: bool) -> Self {
        let http = Client::builder().timeout(REQUEST_TIMEOUT).build().expect("building the HTTP client");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut node = Self { root, child: None, base: String::new(), http, extra, owner_password, stdout };
        node.spawn();
        node
    }

    /// Replaces the extra flags used by the next start.
    pub fn set_extra(&mut self, extra: Vec<String>) {
        self.extra = extra;
    }

    /// Starts the stopped process again (same folder, current flags).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// The replica's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A scratch folder next to the data folder (CSV files and the like).
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("node.log")
    }

    /// Standard error of every start so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Standard output of every start so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        let log = File::options().create(true).append(true).open(self.log_path()).expect("opening node.log");
        let data = self.data_dir();
        let mut cmd = command(self.root.path());
        cmd.arg("--data-dir").arg(&data).args(["--listen", "127.0.0.1:0", "--owner-email", OWNER_EMAIL]);
        if self.owner_password {
            cmd.args(["--owner-password", OWNER_PASSWORD]);
        }
        let mut child = cmd
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning dashoffice-edge");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let lines = self.stdout.clone();
        // Reads standard output until the process ends, so the pipe never fills up.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
                if let Some(url) = line.strip_prefix("dashoffice-edge listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => {
                assert!(url.starts_with("http://127.0.0.1:"), "unexpected address line: {url}");
                self.base = url;
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("dashoffice-edge did not start ({e}; exit: {status:?}); its log:\n{}", self.log());
            }
        }
    }

    /// Whether the process is running (as far as this harness knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node is not running").id()
    }

    /// `http://127.0.0.1:PORT` of the running process.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Kills the process with SIGKILL (a crash, a power cut for the process) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the node is not running");
        child.kill().expect("sending SIGKILL"); // Child::kill is SIGKILL on Unix.
        child.wait().expect("reaping the node");
    }

    /// Sends SIGTERM and waits (with a deadline) for the process to exit; returns its status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the node is not running");
        // The workspace forbids unsafe code, so no libc::kill: the shell's built-in `kill` does it.
        let sent = Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the node") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("dashoffice-edge did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same data folder. If it is still running it is stopped with
    /// SIGTERM first, and must exit cleanly.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.sigterm();
            assert!(status.success(), "SIGTERM exit status {status}; log:\n{}", self.log());
        }
        self.spawn();
    }

    /// Runs a CLI command of the binary on this node's data folder (e.g. `["reindex"]`).
    pub fn cli(&self, args: &[&str]) -> Output {
        edge_cli(&self.data_dir(), args)
    }

    /// A client without a token.
    pub fn anon(&self) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), token: None }
    }

    /// A client sending `token`.
    pub fn api(&self, token: &str) -> Api {
        Api { token: Some(token.to_string()), ..self.anon() }
    }

    /// Logs in and returns the session token.
    #[track_caller]
    pub fn login(&self, email: &str, password: &str) -> String {
        let body = self.anon().post("/api/v1/auth/login", &json!({ "email": email, "password": password })).ok(200);
        body["token"].as_str().expect("a token").to_string()
    }

    /// A client logged in as the owner.
    #[track_caller]
    pub fn owner(&self) -> Api {
        self.api(&self.login(OWNER_EMAIL, OWNER_PASSWORD))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The raw body.
    pub bytes: Vec<u8>,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    /// Asserts the status and returns the JSON body (`Null` when empty).
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        if self.text.is_empty() { Value::Null } else { self.json() }
    }

    /// Asserts an error answer: this status, a JSON body `{"error":{"code","message","field"?,
    /// "rule"?,"fields"?}}` with this code. Returns the `error` object.
    #[track_caller]
    pub fn err(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "error answer is not JSON ({ct}): {}", self.text);
        let body = self.json();
        let top = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
        assert_eq!(top.keys().collect::<Vec<_>>(), ["error"], "error body has other keys: {body}");
        let e = body["error"].as_object().unwrap_or_else(|| panic!("`error` is not an object: {body}"));
        for k in e.keys() {
            assert!(
                ["code", "message", "field", "rule", "fields"].contains(&k.as_str()),
                "unexpected key {k} in {body}"
            );
        }
        assert_eq!(e.get("code").and_then(Value::as_str), Some(code), "error code; body: {body}");
        assert!(
            e.get("message").and_then(Value::as_str).is_some_and(|m| !m.is_empty()),
            "error without a message: {body}"
        );
        for k in ["field", "rule"] {
            assert!(e.get(k).is_none_or(Value::is_string), "error {k} is not a string: {body}");
        }
        body["error"].clone()
    }
}

/// Asserts an error answer that blames `field`; returns the `error` object.
#[track_caller]
pub fn assert_field_error(r: Resp, status: u16, code: &str, field: &str) -> Value {
    let e = r.err(status, code);
    assert_eq!(e["field"].as_str(), Some(field), "blamed field; error: {e}");
    e
}

/// A client of one node, with or without a token.
#[derive(Clone)]
pub struct Api {
    http: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// The session token this client sends, if any.
    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap_or("")
    }

    /// What the web UI does for live updates: `POST /api/v1/events/session` with this client's
    /// token, then `GET /api/v1/events` with only the cookie it set. The `Set-Cookie` header, the
    /// stream's status and its first bytes.
    pub fn open_events_with_cookie(&self) -> (String, u16, String) {
        use std::io::Read;
        let http = reqwest::blocking::Client::new();
        let set = http
            .post(format!("{}/api/v1/events/session", self.base))
            .bearer_auth(self.token())
            .send()
            .expect("POST /api/v1/events/session");
        let cookie = set.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let pair = cookie.split(';').next().unwrap_or("").to_string();
        let mut stream = http
            .get(format!("{}/api/v1/events", self.base))
            .header("cookie", format!("theme=dark; {pair}"))
            .send()
            .expect("GET /api/v1/events");
        let mut first = [0u8; 256];
        let n = if stream.status() == 200 { stream.read(&mut first).unwrap_or(0) } else { 0 };
        (cookie, stream.status().as_u16(), String::from_utf8_lossy(&first[..n]).into_owned())
    }

    /// A client without a token for any base URL (the relay's HTTP side).
    pub fn for_base(base: &str) -> Self {
        let http = Client::builder().timeout(REQUEST_TIMEOUT).build().expect("building the HTTP client");
        Self { http, base: base.to_string(), token: None }
    }

    /// The same host with `token` as the session token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }
    /// Sends a request; `Err` when the node did not answer (stopped, killed).
    pub fn try_send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> reqwest::Result<Resp> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send()?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes()?.to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Resp { status, headers, text, bytes })
    }

    /// Sends a request; panics if the node does not answer.
    #[track_caller]
    pub fn send(&self, method: Method, path: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> Resp {
        let m = method.clone();
        self.try_send(method, path, content_type, body).unwrap_or_else(|e| panic!("{m} {path}: no answer: {e}"))
    }

    fn send_json(&self, method: Method, path: &str, body: &Value) -> Resp {
        self.send(method, path, Some("application/json"), Some(body.to_string().into_bytes()))
    }

    /// GET.
    #[track_caller]
    pub fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, None)
    }

    /// POST a JSON body.
    #[track_caller]
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send_json(Method::POST, path, body)
    }

    /// POST a JSON body; `Err` when the node did not answer.
    pub fn try_post(&self, path: &str, body: &Value) -> reqwest::Result<Resp> {
        self.try_send(Method::POST, path, Some("application/json"), Some(body.to_string().into_bytes()))
    }

    /// PATCH a JSON body.
    #[track_caller]
    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send_json(Method::PATCH, path, body)
    }

    /// DELETE.
    #[track_caller]
    pub fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, None)
    }

    /// POST raw bytes with a content type (or none).
    #[track_caller]
    pub fn post_raw(&self, path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Resp {
        self.send(Method::POST, path, content_type, Some(body.into()))
    }

    /// Every item of a paginated list, following `next_cursor` with pages of 500.
    #[track_caller]
    pub fn list_all(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
                None => format!("{path}{sep}limit=500"),
            };
            let page = self.get(&url).ok(200);
            items.extend(page["items"].as_array().unwrap_or_else(|| panic!("not a page: {page}")).iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    /// Every record a write could have added, archived and merged ones included, as one value; two
    /// equal snapshots mean nothing was written in between.
    #[track_caller]
    pub fn snapshot(&self) -> Value {
        json!({
            "products": self.list_all("/api/v1/products?archived=true"),
            "customers": self.list_all("/api/v1/customers?archived=true"),
            "orders": self.list_all("/api/v1/orders?archived=true"),
            "staff": self.list_all("/api/v1/staff?archived=true"),
            // Without whether this replica numbers the branch's invoices: a fact of the replica,
            // not a record.
            "branches": self.get("/api/v1/branches?archived=true").ok(200).as_array().map(|a| {
                a.iter().map(|b| {
                    let mut b = b.clone();
                    b["invoicing_here"] = Value::Null;
                    b
                }).collect::<Vec<_>>()
            }),
            "shop": self.get("/api/v1/shop").ok(200),
        })
    }

    // ---------- records ----------

    /// Creates a product `sku` at `price` (tax 0.16); returns it.
    #[track_caller]
    pub fn product(&self, sku: &str, price: &str) -> Value {
        self.post(
            "/api/v1/products",
            &json!({ "sku": sku, "name": format!("Producto {sku}"), "price": price, "tax_rate": "0.16" }),
        )
        .ok(201)
    }

    /// Creates a customer; returns it.
    #[track_caller]
    pub fn customer(&self, name: &str) -> Value {
        self.post("/api/v1/customers", &json!({ "name": name })).ok(201)
    }

    /// Creates a draft order of `lines` (product id, quantity) in the caller's default branch.
    #[track_caller]
    pub fn order(&self, customer: &str, lines: &[(&str, i64)]) -> Value {
        let lines: Vec<Value> = lines.iter().map(|(p, q)| json!({ "product_id": p, "quantity": q })).collect();
        self.post("/api/v1/orders", &json!({ "customer_id": customer, "lines": lines })).ok(201)
    }

    /// Moves an order to `to`; returns it.
    #[track_caller]
    pub fn transition(&self, order: &str, to: &str) -> Value {
        self.post(&format!("/api/v1/orders/{order}/transitions"), &json!({ "to": to })).ok(200)
    }

    /// Creates a branch; returns it.
    #[track_caller]
    pub fn branch(&self, code: &str, name: &str) -> Value {
        self.post("/api/v1/branches", &json!({ "code": code, "name": name })).ok(201)
    }

    /// Creates a staff account with password `password-{role}`; returns it.
    #[track_caller]
    pub fn staff(&self, email: &str, role: &str, branch: Option<&str>) -> Value {
        let body = json!({ "name": format!("{role} {email}"), "email": email, "role": role, "branch_id": branch, "password": format!("password-{role}") });
        self.post("/api/v1/staff", &body).ok(201)
    }
}

/// The `id` of a record.
#[track_caller]
/// Whether a replica is connected to the relay with nothing left to exchange.
pub fn synced(api: &Api) -> bool {
    let s = api.get("/api/v1/sync/status").ok(200);
    s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// Runs `f` until it returns `Some` or `within` passes.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` until it returns true or `within` passes; returns whether it did. For effects that
/// are allowed to take a while (a session cache expiring), never as a timing assertion.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log filter of the programs tests start: `info`, so tests that read a log do not depend on
/// the caller's RUST_LOG; DASHOFFICE_TEST_RUST_LOG adds to it for debugging (say
/// `dashoffice_relay::session=debug`).
pub fn log_level() -> String {
    match std::env::var("DASHOFFICE_TEST_RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("info,{extra}"),
        _ => "info".to_string(),
    }
}
