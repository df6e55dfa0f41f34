//! The desktop app end to end, as staff use it: the real `dashoffice-desktop` under Xvfb, driven
//! through tauri-driver and WebKitWebDriver (Debian's webkit2gtk-driver). The app joins the shop
//! through the relay, an order is made while the relay is down and reaches the branch's edge node
//! once the relay is back, and a signed WhatsApp webhook shows up in the app's inbox with its
//! notification. Screenshots land in target/desktop-screenshots.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dashoffice_tests::{
    Node, OWNER_EMAIL, OWNER_PASSWORD, bin, id,
    relay::Relay,
    synced, wait_for,
    whatsapp::{self as wa, FakeGraph},
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// A process killed when dropped, with everything it started (its own process group: the
/// WebDriver, the app and WebKit's processes under dbus-run-session).
struct Proc(Child, bool);
impl Drop for Proc {
    fn drop(&mut self) {
        let id = self.0.id();
        if self.1 && id > 1 {
            // `--`: without it kill(1) may read "-PID" as an option.
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{id}")]).status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dbus-run-session` with the test bus (tests/dbus-session.conf: no service activation, so GTK
/// does not wait for portals a headless machine cannot start).
fn dbus_session() -> Command {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbus-session.conf");
    let mut c = Command::new("dbus-run-session");
    c.arg(format!("--config-file={}", conf.display()));
    c
}

/// Starts `cmd` in a process group of its own, so dropping the [`Proc`] ends all of it.
fn spawn_group(cmd: &mut Command) -> std::io::Result<Proc> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn().map(|c| Proc(c, true))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Xvfb on a display nobody uses: Xvfb picks it (`-displayfd`) and tells it on its stdout, so
/// lock files left by killed test runs (Xvfb removes those of dead servers) never exhaust a range.
fn xvfb() -> (Proc, String) {
    let (p, n) = announcing(
        Command::new("Xvfb").args(["-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"]),
        "Xvfb (apt install xvfb)",
    );
    assert!(!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()), "Xvfb did not start (no display number)");
    assert!(
        wait_for(Duration::from_secs(10), || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists().then_some(()))
            .is_some(),
        "Xvfb's display :{n} never appeared"
    );
    (p, format!(":{n}"))
}

/// Starts a server that prints where it listens as its first line (its stderr dropped), and reads
/// that line.
fn announcing(cmd: &mut Command, what: &str) -> (Proc, String) {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect(what);
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    (Proc(child, false), line.trim().to_string())
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let p = home.join(".cargo/bin/tauri-driver");
    assert!(p.exists(), "tauri-driver is missing: cargo install tauri-driver --locked (scripts/test does)");
    p
}

async fn find_text(c: &Client, css: &str, text: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(els) = c.find_all(Locator::Css(css)).await {
            for e in els {
                if e.text().await.is_ok_and(|t| t.contains(text)) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// GET `path` from inside the page, with the UI's session.
async fn fetch_json(c: &Client, path: &str) -> Value {
    c.execute_async(
        "const [path, done] = [arguments[0], arguments[arguments.length - 1]]; \
         fetch(path, { headers: { authorization: 'Bearer ' + localStorage.getItem('dashoffice.token') } })\
         .then(r => r.json()).then(done, e => done(String(e)));",
        vec![json!(path)],
    )
    .await
    .unwrap()
}

/// POSTs JSON from inside the page, with the UI's session: (status, body or null).
async fn post_json(c: &Client, path: &str, body: Value) -> (u64, Value) {
    let r = c
        .execute_async(
            "const [path, body, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]]; \
             fetch(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', \
               authorization: 'Bearer ' + localStorage.getItem('dashoffice.token') } })\
             .then(async r => done([r.status, await r.text()]), e => done([0, String(e)]));",
            vec![json!(path), body],
        )
        .await
        .unwrap();
    let status = r[0].as_u64().unwrap_or(0);
    let text = r[1].as_str().unwrap_or_default();
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

/// Runs a blocking wait (the harness's HTTP client, file polling) inside the async scenario.
fn blocking_value<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Waits until an element `css` shows `text`, then clicks it.
async fn click_text(c: &Client, css: &str, text: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(els) = c.find_all(Locator::Css(css)).await {
            for e in els {
                if e.text().await.is_ok_and(|t| t.contains(text)) && e.click().await.is_ok() {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

async fn select_containing(c: &Client, css: &str, text: &str) {
    let script = "const [css, text] = arguments; const s = document.querySelector(css); if (!s) return false; \
        const o = [...s.options].find(o => o.textContent.includes(text)); if (!o) return false; \
        s.value = o.value; s.dispatchEvent(new Event('change', { bubbles: true })); return true;";
    let end = Instant::now() + LONG;
    loop {
        let r = c.execute(script, vec![json!(css), json!(text)]).await.unwrap();
        if r == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < end, "no option with {text} in {css}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    // Let WebKit paint what the test just saw.
    tokio::time::sleep(Duration::from_millis(700)).await;
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

#[test]
fn the_desktop_app_works_offline_and_syncs_when_the_relay_returns() {
    let graph = FakeGraph::start();
    let mut relay = Relay::start_env(wa::relay_env(&graph));
    let mut edge = Node::start();
    let owner = edge.owner();
    let shop = owner.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branch = id(&owner.get("/api/v1/branches").ok(200)[0]);
    owner.customer("Lucía Gómez");
    owner.product("TAZA-1", "85.50");
    edge.sigterm();
    edge.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    edge.start_again();
    let owner = edge.owner();
    assert!(wait_for(LONG, || synced(&owner).then_some(())).is_some(), "the edge node never synced");
    wa::connect_number(&relay, &shop, &branch);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/desktop-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let data = tempfile::tempdir().unwrap();
    let (_x, display) = xvfb();
    let config = data.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("user-dirs.dirs"),
        format!("XDG_DOWNLOAD_DIR=\"{}\"\n", data.path().join("Descargas").display()),
    )
    .unwrap();
    let port = free_port();
    let native = free_port();
    let log = std::fs::File::create(data.path().join("driver.log")).unwrap();
    let driver = spawn_group(
        dbus_session()
            .arg("--")
            .arg(tauri_driver())
            .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .args(["--native-driver", "/usr/bin/WebKitWebDriver"])
            .env("DISPLAY", &display)
            .env("DASHOFFICE_DATA_DIR", data.path().join("app"))
            // The user's Downloads folder, as the desktop's user-dirs.dirs names it.
            .env("XDG_CONFIG_HOME", &config)
            // WebKit's storage (the UI's session, kept across the app's restarts) of this test.
            .env("XDG_DATA_HOME", data.path().join("xdg"))
            .env("DASHOFFICE_RELAY", &relay.quic)
            .env("DASHOFFICE_RELAY_FINGERPRINT", relay.fingerprint())
            .env("DASHOFFICE_ENROLMENT_CODE", relay.code(&shop, Some(&branch)))
            .env("DASHOFFICE_EXIT_ON_CLOSE", "1")
            .env("DASHOFFICE_GPU_COMPOSITING", "1")
            .env("RUST_LOG", "info")
            .env("NO_AT_BRIDGE", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
    .expect("dbus-run-session (apt install dbus)");
    // Both tauri-driver and the WebKitWebDriver it starts must listen before the one session
    // request: a second request would start a second app, which single-instance turns away.
    assert!(
        wait_for(Duration::from_secs(60), || {
            (TcpStream::connect(("127.0.0.1", port)).is_ok() && TcpStream::connect(("127.0.0.1", native)).is_ok())
                .then_some(())
        })
        .is_some(),
        "tauri-driver or WebKitWebDriver never listened"
    );
    let app_log = || std::fs::read_to_string(data.path().join("driver.log")).unwrap_or_default();
    let downloads = data.path().join("Descargas");
    // The program this computer opens PDFs and folders with: a desktop entry (found by the real
    // xdg-open through mimeapps.list) whose program writes down what it was asked to open.
    let opened_log = data.path().join("opened.txt");
    let recorder = data.path().join("record-open");
    std::fs::write(&recorder, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", opened_log.display())).unwrap();
    std::fs::set_permissions(&recorder, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let apps = data.path().join("xdg/applications");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(
        apps.join("dashoffice-test-open.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=Record open\nExec={} %f\nMimeType=application/pdf;inode/directory;\nNoDisplay=true\n",
            recorder.display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("mimeapps.list"),
        "[Default Applications]\napplication/pdf=dashoffice-test-open.desktop\ninode/directory=dashoffice-test-open.desktop\n",
    )
    .unwrap();
    // Multi-threaded, so the blocking HTTP client of the harness can run inside (block_in_place).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let blocking = |f: &mut dyn FnMut()| tokio::task::block_in_place(f);
    let scenario = async {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert("tauri:options".into(), json!({ "application": bin("dashoffice-desktop") }));
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        // One WebDriver session is one launch of the app.
        let launch = || async {
            match tokio::time::timeout(Duration::from_secs(90), builder.connect(&url)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => panic!("no WebDriver session with the app: {e}\n{}", app_log()),
                Err(_) => panic!("the WebDriver session did not start within 90 s:\n{}", app_log()),
            }
        };
        let c = launch().await;

        // The app joined the shop through the relay: log in as soon as the owner has arrived.
        let t0 = Instant::now();
        assert!(find_text(&c, "h1", "DashOffice", LONG).await, "no login page:\n{}", app_log());
        let base = {
            let u = c.current_url().await.unwrap();
            format!("{}://{}", u.scheme(), u.host_str().unwrap())
                + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
        };
        shot(&c, &shots, "login").await;
        let mut logged_in = false;
        while !logged_in && t0.elapsed() < LONG {
            c.goto(&format!("{base}/login")).await.unwrap();
            let email = c.wait().for_element(Locator::Css("#f-email")).await.unwrap();
            email.send_keys(OWNER_EMAIL).await.unwrap();
            c.find(Locator::Css("#f-password")).await.unwrap().send_keys(OWNER_PASSWORD).await.unwrap();
            c.find(Locator::Css("form.login button[type=submit]")).await.unwrap().click().await.unwrap();
            logged_in = find_text(&c, ".stat-label", "Sales today", Duration::from_secs(5)).await;
        }
        assert!(logged_in, "never logged in to the desktop app:\n{}", app_log());
        shot(&c, &shots, "dashboard").await;

        // The relay goes down; staff keep working: an order for a customer, confirmed.
        blocking(&mut || relay.kill9());
        c.goto(&format!("{base}/orders/new")).await.unwrap();
        select_containing(&c, "select[name=customer_id]", "Lucía Gómez").await;
        select_containing(&c, ".line-row select", "TAZA-1").await;
        c.find(Locator::Css("form.form button[type=submit]")).await.unwrap().click().await.unwrap();
        assert!(find_text(&c, "button", "Mark Confirmed", LONG).await, "the order was not created:\n{}", app_log());
        let number = c.find(Locator::Css("section.card h2")).await.unwrap().text().await.unwrap();
        let number = number.split_whitespace().next().unwrap().to_string();
        c.find(Locator::XPath("//button[contains(., 'Mark Confirmed')]")).await.unwrap().click().await.unwrap();
        assert!(find_text(&c, ".badge", "Confirmed", LONG).await);
        shot(&c, &shots, "order-offline").await;
        blocking(&mut || {
            assert!(
                owner.get(&format!("/api/v1/orders?q={number}")).ok(200)["items"].as_array().unwrap().is_empty(),
                "the order reached the edge node while the relay was down?"
            )
        });

        // Still offline: the invoice PDF is made on this computer and saved in the Downloads
        // folder; a second copy never replaces the first; a notification says where.
        let pdf = c.find(Locator::XPath("//button[contains(., 'Sales note (PDF)')]")).await.unwrap();
        pdf.click().await.unwrap();
        let first = downloads.join(format!("{number}.pdf"));
        let saved = |p: PathBuf| {
            wait_for(LONG, move || {
                std::fs::read(&p).ok().filter(|b| b.starts_with(b"%PDF-") && b.trim_ascii_end().ends_with(b"%%EOF"))
            })
        };
        assert!(
            blocking_value(|| saved(first.clone())).is_some(),
            "the invoice was not saved as {}: {:?}\n{}",
            first.display(),
            std::fs::read_dir(&downloads).map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect::<Vec<_>>()),
            app_log()
        );
        c.find(Locator::XPath("//button[contains(., 'Sales note (PDF)')]")).await.unwrap().click().await.unwrap();
        let second = downloads.join(format!("{number} (1).pdf"));
        assert!(
            blocking_value(|| saved(second.clone())).is_some(),
            "the second copy was not saved as {}",
            second.display()
        );
        let desktop = fetch_json(&c, "/api/v1/desktop").await;
        assert_eq!(desktop["downloads_dir"], json!(downloads.display().to_string()), "{desktop}");
        let end = Instant::now() + LONG;
        let told = loop {
            let list = fetch_json(&c, "/api/v1/desktop/notifications").await;
            let found = list.as_array().into_iter().flatten().any(|n| {
                n["title"].as_str().is_some_and(|t| t.contains(&format!("{number} (1).pdf")))
                    && n["body"].as_str().is_some_and(|b| b.contains(&downloads.display().to_string()))
            });
            if found || Instant::now() > end {
                break found.then_some(()).ok_or(list);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(told.is_ok(), "no notification saying where the invoice went: {told:?}");

        // The bar at the bottom offers the file just saved. *Open* hands it to the program this
        // computer opens PDFs with (the test's desktop entry, through the real xdg-open); *Show in
        // folder* asks the file manager, and where none answers (this bus has none) opens the
        // folder.
        assert!(
            find_text(&c, ".saved-bar", &format!("{number} (1).pdf"), LONG).await,
            "no bar offering the saved file\n{}",
            app_log()
        );
        shot(&c, &shots, "08-saved-bar").await;
        c.find(Locator::Css(".saved-bar .saved-open")).await.unwrap().click().await.unwrap();
        let opened = |what: PathBuf| {
            let log = opened_log.clone();
            wait_for(LONG, move || {
                std::fs::read_to_string(&log).ok().filter(|l| l.lines().any(|l| Path::new(l) == what)).map(|_| ())
            })
        };
        assert!(
            blocking_value(|| opened(second.clone())).is_some(),
            "Open did not open {}: {:?}\n{}",
            second.display(),
            std::fs::read_to_string(&opened_log),
            app_log()
        );
        c.find(Locator::Css(".saved-bar .saved-reveal")).await.unwrap().click().await.unwrap();
        assert!(
            blocking_value(|| opened(downloads.clone())).is_some(),
            "Show in folder did not open {}: {:?}\n{}",
            downloads.display(),
            std::fs::read_to_string(&opened_log),
            app_log()
        );
        // Only files the app saved open, and only kinds that cannot run code.
        let (status, body) = post_json(&c, "/api/v1/desktop/open", json!({ "file": "/bin/sh" })).await;
        assert_eq!((status, body["error"]["field"].as_str()), (404, Some("file")), "{body}");
        let (status, body) = post_json(&c, "/api/v1/desktop/open", json!({ "file": "" })).await;
        assert_eq!(
            (status, body["error"]["field"].as_str(), body["error"]["rule"].as_str()),
            (422, Some("file"), Some("required")),
            "{body}"
        );
        let saved_list = fetch_json(&c, "/api/v1/desktop/saved").await;
        assert_eq!(saved_list[0]["path"], json!(second.display().to_string()), "{saved_list}");
        assert_eq!(saved_list[1]["path"], json!(first.display().to_string()), "{saved_list}");
        // Settings → This computer lists them with the same buttons.
        c.goto(&format!("{base}/settings")).await.unwrap();
        assert!(
            find_text(&c, "#saved-files .saved-file", &format!("{number} (1).pdf"), LONG).await,
            "Settings does not list the saved files"
        );
        assert_eq!(c.find_all(Locator::Css("#saved-files .saved-open")).await.unwrap().len(), 2);

        // Search works offline too: the top bar finds the customer without her accents.
        c.find(Locator::Css("#global-search")).await.unwrap().send_keys("lucia gomez").await.unwrap();
        assert!(
            click_text(&c, "#global-search-results a", "Lucía Gómez", LONG).await,
            "the top bar's search did not find the customer:\n{}",
            app_log()
        );
        let end = Instant::now() + LONG;
        while !c.current_url().await.unwrap().path().starts_with("/customers/") && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            c.current_url().await.unwrap().path().starts_with("/customers/"),
            "the search hit did not open the customer"
        );
        shot(&c, &shots, "search-offline").await;

        // The relay comes back: the order reaches the branch's edge node, confirmed.
        blocking(&mut || {
            relay.restart();
            let arrived = wait_for(LONG, || {
                let l = owner.get(&format!("/api/v1/orders?q={number}")).ok(200);
                l["items"].as_array().and_then(|a| a.first().cloned()).filter(|o| o["status"] == "confirmed")
            });
            assert!(arrived.is_some(), "order {number} never reached the edge node:\n{}", app_log());
        });

        // A customer writes on WhatsApp: the message shows in the app, with a notification.
        blocking(&mut || {
            wa::deliver(&relay.http, &wa::text("5215511112222", "Ana Pérez", "wamid.DESK1", "¿Abren el domingo?"))
        });
        c.goto(&format!("{base}/conversations")).await.unwrap();
        assert!(
            click_text(&c, "a.conv", "Ana Pérez", LONG).await,
            "the conversation never reached the app:\n{}",
            app_log()
        );
        assert!(find_text(&c, ".msg-in", "¿Abren el domingo?", LONG).await);
        shot(&c, &shots, "conversation").await;
        let shown = fetch_json(&c, "/api/v1/desktop/notifications").await;
        let list = shown.as_array().cloned().unwrap_or_default();
        assert!(
            list.iter().any(|n| n["title"] == "Ana Pérez" && n["body"].as_str().is_some_and(|b| b.contains("domingo"))),
            "no notification for the message: {shown}"
        );
        // A manager at the branch gives the owner (signed in here) a support ticket: it reaches
        // the app with a notification.
        let subject = "Revisar cobro doble";
        blocking(&mut || {
            owner.staff("gerente@tienda.mx", "manager", Some(&branch));
            let manager = edge.api(&edge.login("gerente@tienda.mx", "password-manager"));
            let me = owner.get("/api/v1/auth/me").ok(200);
            manager.post("/api/v1/tickets", &json!({ "subject": subject, "assignee_id": me["id"] })).ok(201);
        });
        let end = Instant::now() + LONG;
        let ticket_told = loop {
            let list = fetch_json(&c, "/api/v1/desktop/notifications").await;
            let found = list.as_array().into_iter().flatten().any(|n| {
                n["title"].as_str().is_some_and(|t| t.starts_with("Ticket"))
                    && n["body"].as_str().is_some_and(|b| b.contains(subject))
                    && n["path"].as_str().is_some_and(|p| p.starts_with("/tickets/"))
            });
            if found || Instant::now() > end {
                break found.then_some(()).ok_or(list);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        if ticket_told.is_err() {
            let held = fetch_json(&c, "/api/v1/tickets?status=all").await;
            let me = fetch_json(&c, "/api/v1/auth/me").await;
            panic!(
                "no notification for the ticket assigned: {ticket_told:?}\ntickets here: {held}\nme: {me}\n{}",
                app_log()
            );
        }
        // The tray and notifications follow the UI's language: switching it in the top bar
        // switches the app's.
        let app_lang = |c: Client| async move {
            fetch_json(&c, "/api/v1/desktop").await["language"].as_str().unwrap_or_default().to_string()
        };
        let ui_lang = c
            .execute(
                "return document.querySelector('header button[lang]').getAttribute('lang') === 'en' ? 'es' : 'en';",
                vec![],
            )
            .await
            .unwrap();
        let ui_lang = ui_lang.as_str().unwrap_or_default().to_string();
        let end = Instant::now() + LONG;
        while app_lang(c.clone()).await != ui_lang && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(app_lang(c.clone()).await, ui_lang, "the app never took the UI's language");
        c.find(Locator::Css("header button[lang]")).await.unwrap().click().await.unwrap();
        let other = if ui_lang == "en" { "es" } else { "en" };
        let end = Instant::now() + LONG;
        while app_lang(c.clone()).await != other && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(app_lang(c.clone()).await, other, "switching the UI's language did not reach the app");
        let lang_button = || async {
            c.find(Locator::Css("header button[lang]")).await.unwrap().attr("lang").await.unwrap().unwrap_or_default()
        };
        let switch_to = lang_button().await;
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(c.wait().at_most(LONG).for_element(Locator::Css(".stat-label")).await.is_ok());
        c.close().await.unwrap();

        // Quit and started again: the same loopback port, so the same origin for WebKit, whose
        // storage keeps the session and the language: no sign-in.
        let lock = data.path().join("app/dashoffice.lock");
        let quit = blocking_value(|| {
            wait_for(LONG, || {
                let f = std::fs::OpenOptions::new().write(true).open(&lock).ok()?;
                f.try_lock().ok()
            })
        });
        assert!(quit.is_some(), "the app did not quit:\n{}", app_log());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c = launch().await;
        let signed_in = c.wait().at_most(LONG).for_element(Locator::Css(".stat-label")).await.is_ok();
        let again = c.current_url().await.unwrap();
        assert!(signed_in, "not signed in after a restart (at {again}):\n{}", app_log());
        assert_eq!(format!("{}://{}:{}", again.scheme(), again.host_str().unwrap(), again.port().unwrap()), base);
        let lang_button = || async {
            c.find(Locator::Css("header button[lang]")).await.unwrap().attr("lang").await.unwrap().unwrap_or_default()
        };
        assert_eq!(lang_button().await, switch_to, "the UI's language was not kept");
        // The files saved before still open from the list.
        let kept = fetch_json(&c, "/api/v1/desktop/saved").await;
        assert_eq!(kept[0]["path"], json!(second.display().to_string()), "{kept}");
        assert_eq!(kept[0]["opens"], json!(true), "{kept}");
        shot(&c, &shots, "restarted").await;
        c.close().await.unwrap();
    };
    rt.block_on(async {
        // A WebDriver call that never answers must fail the test, not hang the run.
        if tokio::time::timeout(Duration::from_secs(600), scenario).await.is_err() {
            panic!("the desktop scenario did not finish within 10 minutes:\n{}", app_log());
        }
    });
    drop(driver);
    assert!(app_log().contains("DashOffice desktop ready"), "{}", app_log());
}

/// The newest bundle of this kind (`deb`, `appimage`) that installers/package-desktop made
/// (debug or release).
fn built(kind: &str, ext: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    ["debug", "release"]
        .iter()
        .filter_map(|p| std::fs::read_dir(root.join(p).join("bundle").join(kind)).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// Starts the desktop app `exe` under Xvfb on a fresh data folder and waits for its UI.
fn starts_and_shows_its_ui(exe: &Path, extra_env: &[(&str, &str)]) {
    shows_its_ui_with(exe, extra_env, &[]);
}

/// The app's arguments and environment for a test: a fresh data folder `app/` in `dir` (the shop
/// made unattended), the X display, output into `log`.
fn app_env<'a>(cmd: &'a mut Command, args: &[&str], dir: &Path, display: &str, log: &Path) -> &'a mut Command {
    let log = std::fs::File::create(log).unwrap();
    cmd.args(args)
        .current_dir(dir)
        .env("DISPLAY", display)
        .env("DASHOFFICE_DATA_DIR", dir.join("app"))
        .env("DASHOFFICE_OWNER_EMAIL", OWNER_EMAIL)
        .env("DASHOFFICE_OWNER_PASSWORD", OWNER_PASSWORD)
        .env("RUST_LOG", "info")
        .env("NO_AT_BRIDGE", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
}

/// [`starts_and_shows_its_ui`] with command-line arguments; the data folder (`app/` inside it,
/// the log in `app.log`) is kept for the caller, the app is stopped.
fn shows_its_ui_with(exe: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> tempfile::TempDir {
    let (_x, display) = xvfb();
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("app.log");
    let mut cmd = dbus_session();
    cmd.arg("--").arg(exe);
    app_env(&mut cmd, args, data.path(), &display, &log_path)
        // An AppImage unpacks itself under TMPDIR: into the folder removed after the test.
        .env("TMPDIR", data.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let _app = spawn_group(&mut cmd).unwrap();
    let up = wait_for(LONG, || {
        let l = std::fs::read_to_string(&log_path).unwrap_or_default();
        l.contains("window interactive").then_some(())
    });
    assert!(
        up.is_some(),
        "{} never showed its UI:\n{}",
        exe.display(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    data
}

/// Closing the window keeps the app in the tray; once it has stayed hidden for
/// `DASHOFFICE_TRAY_RELEASE_SECS`, the window is let go and WebKit's web process ends with it (the
/// memory of a whole web page, while staff are not looking); a `dashoffice://` link makes it anew
/// on the linked page, and the tray's Open (here a second launch without a link) on the page it
/// was on.
#[test]
fn a_window_closed_to_the_tray_is_let_go_and_made_anew_by_a_link() {
    let (_x, display) = xvfb();
    let data = tempfile::tempdir().unwrap();
    // One session bus for both launches: the second finds the first on it (single-instance).
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbus-session.conf");
    // (It says it cannot raise its file limit, not root's to raise here: harmless, dropped.)
    let (_bus, address) = announcing(
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"]),
        "dbus-daemon (apt install dbus)",
    );
    assert!(!address.is_empty(), "dbus-daemon printed no address");
    let exe = bin("dashoffice-desktop");
    let log_path = data.path().join("app.log");
    let launch = |args: &[&str], log: &Path| {
        let mut cmd = Command::new(&exe);
        app_env(&mut cmd, args, data.path(), &display, log)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("XDG_DATA_HOME", data.path().join("xdg"))
            .env("DASHOFFICE_TRAY_RELEASE_SECS", "1")
            .env_remove("DASHOFFICE_EXIT_ON_CLOSE");
        cmd
    };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // The web storage an earlier launch left in WebKit's folder (a session token, unsent replies):
    // nothing reads it again, and the start removes it.
    let web = data.path().join("xdg/mx.dashoffice.desktop/localstorage");
    std::fs::create_dir_all(&web).unwrap();
    let earlier = web.join("http_127.0.0.1_1.localstorage");
    std::fs::File::create(&earlier)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let mut app = spawn_group(&mut launch(&[], &log_path)).unwrap();
    assert!(wait_for(LONG, || log().contains("window interactive").then_some(())).is_some(), "no UI:\n{}", log());
    // WebKit's web processes are the app's children.
    let pid = app.0.id().to_string();
    let web_processes = || {
        let out = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.starts_with("WebKitWebProces"))
            })
            .count()
    };
    assert!(web_processes() >= 1, "no WebKit web process under the app");
    assert!(
        wait_for(Duration::from_secs(30), || (!earlier.exists()).then_some(())).is_some(),
        "an earlier launch's web storage was left:\n{}",
        log()
    );

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wm-close.py");
    let closed = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg("DashOffice")
        .env("DISPLAY", &display)
        .output()
        .expect("python3 (apt install python3-xlib; scripts/test does)");
    assert_eq!(
        String::from_utf8_lossy(&closed.stdout).trim(),
        "1",
        "closing the window: {}",
        String::from_utf8_lossy(&closed.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(60), || (log().contains("window let go while in the tray")
            && web_processes() == 0)
            .then_some(()))
        .is_some(),
        "the window was not let go, or its web process stayed:\n{}",
        log()
    );
    assert!(app.0.try_wait().unwrap().is_none(), "the app must stay in the tray:\n{}", log());

    // A link to a page, from a second launch: the running app makes its window again, there.
    let mut second = launch(&["dashoffice://orders"], &data.path().join("second.log")).spawn().unwrap();
    let handed = wait_for(LONG, || second.try_wait().unwrap());
    assert!(handed.is_some_and(|s| s.success()), "the second launch did not hand over its link: {handed:?}");
    let plain = |l: String| {
        // Without the log's colour codes.
        let mut out = String::new();
        let mut esc = false;
        for c in l.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    assert!(
        wait_for(LONG, || {
            let l = plain(log());
            (l.contains("window made again")
                && l.lines().any(|x| x.contains("window loaded") && x.contains("url=/orders"))
                && web_processes() >= 1)
                .then_some(())
        })
        .is_some(),
        "the window was not made again on /orders:\n{}",
        log()
    );
    assert!(app.0.try_wait().unwrap().is_none(), "{}", log());

    // Closed and let go again, then opened with no link (as the tray's Open): on the page it was
    // on, not the start page. Nobody signed in here, so the UI had taken the window from /orders
    // to its login page: /login is that page.
    let closed =
        Command::new("/usr/bin/python3").arg(&script).arg("DashOffice").env("DISPLAY", &display).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&closed.stdout).trim(), "1");
    assert!(
        wait_for(Duration::from_secs(60), || (plain(log()).matches("window let go").count() == 2
            && web_processes() == 0)
            .then_some(()))
        .is_some(),
        "not let go a second time:\n{}",
        log()
    );
    let mut third = launch(&[], &data.path().join("third.log")).spawn().unwrap();
    assert!(wait_for(LONG, || third.try_wait().unwrap()).is_some_and(|s| s.success()));
    assert!(
        wait_for(LONG, || {
            let l = plain(log());
            (l.matches("window made again").count() == 2
                && l.lines().any(|x| x.contains("window loaded") && x.contains("url=/login")))
            .then_some(())
        })
        .is_some(),
        "the window did not open again on the page it was on:\n{}",
        log()
    );
}

/// A backup (here an edge node's, the same format as Settings → Backup) restored with
/// `dashoffice-desktop --restore FILE`: the app starts on it as a new device.
#[test]
fn the_desktop_app_starts_on_a_restored_backup() {
    let node = Node::start();
    node.owner().product("RESTORED-1", "3.00");
    let file = node.scratch().join("copia.db");
    let out = node.cli(&["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exe = bin("dashoffice-desktop");
    let data = shows_its_ui_with(&exe, &[], &["--restore", file.to_str().unwrap()]);
    let log = std::fs::read_to_string(data.path().join("app.log")).unwrap_or_default();
    assert!(log.contains("restored a backup as a new device"), "{log}");
    let db = dashoffice_core::Connection::open(data.path().join("app/dashoffice.db")).unwrap();
    let sku: String = db.query_row("SELECT sku FROM products", [], |r| r.get(0)).unwrap();
    assert_eq!(sku, "RESTORED-1");
    let backup = dashoffice_core::Connection::open(&file).unwrap();
    let actor = |c: &dashoffice_core::Connection| {
        c.query_row("SELECT actor FROM device", [], |r| r.get::<_, Vec<u8>>(0)).unwrap()
    };
    assert_ne!(actor(&db), actor(&backup), "the restored app must write as a new device");
}

#[test]
fn the_deb_installs_with_dpkg_and_the_installed_app_starts() {
    let deb = built("deb", "deb")
        .expect("no .deb in target/*/bundle/deb: run installers/package-desktop deb (scripts/test does)");
    let field = |f: &str| {
        let o = Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(f).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let package = field("Package");
    assert!(!package.is_empty(), "{} has no package name", deb.display());
    let install = Command::new("dpkg").arg("-i").arg(&deb).output().expect("dpkg");
    assert!(
        install.status.success(),
        "dpkg -i {} failed (as root?): {}",
        deb.display(),
        String::from_utf8_lossy(&install.stderr)
    );
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["-r", &self.0]).output();
        }
    }
    let _remove = Remove(package.clone());
    let files = Command::new("dpkg").args(["-L", &package]).output().unwrap();
    let files = String::from_utf8_lossy(&files.stdout).to_string();
    assert!(files.lines().any(|l| l == "/usr/bin/dashoffice-desktop"), "no /usr/bin/dashoffice-desktop in {files}");
    let entry = files.lines().find(|l| l.starts_with("/usr/share/applications/") && l.ends_with(".desktop"));
    let entry = std::fs::read_to_string(entry.expect("a desktop entry")).unwrap();
    assert!(entry.contains("x-scheme-handler/dashoffice"), "dashoffice:// links not registered: {entry}");

    // The installed app starts under Xvfb on a fresh data folder and shows its UI.
    starts_and_shows_its_ui(Path::new("/usr/bin/dashoffice-desktop"), &[]);
}

/// The AppImage (GTK and WebKit inside it) starts on this machine. It has no FUSE, so the image
/// unpacks itself instead of mounting (what users without libfuse2 do too).
#[test]
fn the_appimage_starts_and_shows_its_ui() {
    let image = built("appimage", "AppImage").expect(
        "no .AppImage in target/*/bundle/appimage: run installers/package-desktop appimage (scripts/test does)",
    );
    starts_and_shows_its_ui(&image, &[("APPIMAGE_EXTRACT_AND_RUN", "1")]);
}
