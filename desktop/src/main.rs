//! `dashoffice-desktop`: DashOffice for shop staff. The replica runs inside the app (its own
//! SQLite data folder in the OS's app-data directory), the window shows the same web UI as an edge
//! node, served by a loopback API only this app can use (random port, per-launch secret). It works
//! offline and syncs with the relay over QUIC once connected (settings, or the first-run set-up).
//! A tray icon shows the sync state and unread conversations; new customer messages and
//! conversations assigned to the user raise OS notifications; one instance at a time; the window
//! remembers its size and position; `dashoffice://orders/…` links open the page.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
// ApiError is the one error every route returns, as in dashoffice-api.
#![allow(clippy::result_large_err)]

mod backend;
mod downloads;
mod server;
mod settings;
mod texts;

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use anyhow::Context;
use dashoffice_api::AppState;
use dashoffice_core::{BootstrapInput, OpenOptions, Replica};
use tauri::{
    AppHandle, Manager, WebviewUrl, WebviewWindowBuilder, Wry,
    menu::{Menu, MenuItem},
    tray::{TrayIcon, TrayIconBuilder},
    webview::DownloadEvent,
};

use crate::{backend::Backend, settings::Settings};

/// Where the app's loopback server listens and its per-launch secret: what the tray's "open" and
/// deep links need to show the window again, or to make it anew after it was let go.
struct Launch {
    base: String,
    secret: Arc<String>,
    started: Instant,
    /// Counts the window's hidings and showings: a release planned at one hiding is void once
    /// the window has been shown (or hidden again) since.
    shown: Arc<std::sync::atomic::AtomicU64>,
    /// The page the window was on when it was let go: where it opens again (unless a link names
    /// another).
    last_page: Arc<std::sync::Mutex<Option<String>>>,
}

/// How long the window stays hidden in the tray before it is let go: WebKit's web process (about
/// 120 MB) ends with it, and the window is made anew (about half a second) when it is opened
/// again. `DASHOFFICE_TRAY_RELEASE_SECS` (0: at once; `never`: keep it).
fn tray_release_after() -> Option<std::time::Duration> {
    match std::env::var("DASHOFFICE_TRAY_RELEASE_SECS") {
        Ok(v) if v.trim() == "never" => None,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(s) => Some(std::time::Duration::from_secs(s)),
            Err(_) => {
                tracing::warn!(value = %v, "DASHOFFICE_TRAY_RELEASE_SECS: seconds or never; using 600");
                Some(std::time::Duration::from_secs(600))
            }
        },
        Err(_) => Some(std::time::Duration::from_secs(600)),
    }
}

/// The tray, notifications and start-at-login, through Tauri.
struct TauriShell {
    app: AppHandle,
    status: MenuItem<Wry>,
    /// Open, sync now, quit.
    items: [MenuItem<Wry>; 3],
    tray: TrayIcon<Wry>,
}

impl backend::Shell for TauriShell {
    fn tray(&self, sync: &str, unread: u64, tooltip: &str) {
        let _ = self.status.set_text(sync);
        let _ = self.tray.set_title(if unread > 0 { Some(unread.to_string()) } else { None });
        let _ = self.tray.set_tooltip(Some(tooltip));
    }
    fn menu(&self, lang: texts::Lang) {
        for (item, text) in self.items.iter().zip(lang.menu()) {
            let _ = item.set_text(text);
        }
    }
    fn notify(&self, title: &str, body: &str) {
        use tauri_plugin_notification::NotificationExt;
        if let Err(e) = self.app.notification().builder().title(title).body(body).show() {
            tracing::warn!("notification not shown: {e}");
        }
    }
    fn autostart(&self, on: bool) -> anyhow::Result<()> {
        use tauri_plugin_autostart::ManagerExt;
        let m = self.app.autolaunch();
        if on { m.enable() } else { m.disable() }.map_err(|e| anyhow::anyhow!("{e}"))
    }
    fn downloads(&self) -> PathBuf {
        downloads::folder(&self.app)
    }
    fn open(&self, path: &std::path::Path, reveal: bool) -> anyhow::Result<()> {
        // The opener plugin's functions, called by the app itself: the window has no permission
        // to use the plugin (desktop/capabilities/default.json).
        if !reveal {
            return tauri_plugin_opener::open_path(path, None::<&str>).map_err(|e| anyhow::anyhow!("{e}"));
        }
        // The file manager selects the file (org.freedesktop.FileManager1 on Linux); a desktop
        // without one gets its folder opened.
        match tauri_plugin_opener::reveal_item_in_dir(path) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::info!("no file manager to show the file in ({e}); opening its folder");
                let folder = path.parent().unwrap_or(path);
                tauri_plugin_opener::open_path(folder, None::<&str>).map_err(|e| anyhow::anyhow!("{e}"))
            }
        }
    }
}

/// `dashoffice://orders/ID` → `/orders/ID` (letters, digits, `-`, `_`, `/` only).
fn deep_link(args: &[String]) -> Option<String> {
    let link = args.iter().find_map(|a| a.strip_prefix("dashoffice://"))?;
    let path = format!("/{}", link.trim_end_matches('/').trim_start_matches('/'));
    page_path(&path).then_some(path)
}

/// A page of the UI the window may open on: `/` and letters, digits, `-`, `_`, `/` only (what
/// `/__launch?to=` carries), never the launch itself.
fn page_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("/__")
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/')
}

fn show_main(app: &AppHandle, path: Option<String>) {
    let Some(l) = app.try_state::<Launch>() else { return };
    l.shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        if let Some(p) = path
            && let Ok(url) = format!("{}{p}", l.base).parse()
        {
            let _ = w.navigate(url);
        }
        return;
    }
    // Let go while it sat in the tray: made anew, on the page asked for, else the one it was on.
    let last = l.last_page.lock().unwrap_or_else(|p| p.into_inner()).take();
    match main_window(app, &l, path.or(last).as_deref().unwrap_or("/")) {
        Ok(w) => {
            let _ = w.set_focus();
            tracing::info!("window made again");
        }
        Err(e) => tracing::error!("cannot make the window again: {e}"),
    }
}

/// Makes the main window on `path` of the loopback server. Closing it keeps the app in the tray
/// (notifications go on; Quit is in the tray's menu); after [`tray_release_after`] hidden, the
/// window is let go to free WebKit's memory.
fn main_window(app: &AppHandle, l: &Launch, path: &str) -> anyhow::Result<tauri::WebviewWindow> {
    let (started, own) = (l.started, l.base.clone());
    let url = format!("{}/__launch?key={}&to={}", l.base, l.secret, path.replace('/', "%2F"));
    let window = WebviewWindowBuilder::new(app, "main", WebviewUrl::External(url.parse()?))
        .title("DashOffice")
        .inner_size(1280.0, 820.0)
        .min_inner_size(360.0, 560.0)
        .on_page_load(move |_, payload| {
            if matches!(payload.event(), tauri::webview::PageLoadEvent::Finished) {
                tracing::info!(ms = started.elapsed().as_millis() as u64, url = %payload.url().path(), "window loaded");
            }
        })
        // Invoice PDFs, exports, backups: into the Downloads folder, never over another file, and
        // a notification says where (downloads.rs).
        .on_download(move |webview, event| match event {
            DownloadEvent::Requested { url, destination } => {
                if !downloads::allowed(url.as_str(), &own) {
                    tracing::warn!(url = %url, "download refused: not from the app's own pages");
                    return false;
                }
                let folder = downloads::folder(webview.app_handle());
                if let Err(e) = std::fs::create_dir_all(&folder) {
                    tracing::warn!(folder = %folder.display(), "cannot create the downloads folder: {e}");
                }
                let name = destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                *destination = downloads::unique(&folder, &name);
                true
            }
            DownloadEvent::Finished { path, success, .. } => {
                match webview.app_handle().try_state::<Arc<Backend>>() {
                    Some(b) => b.saved(path.as_deref(), success),
                    None => tracing::info!(file = ?path, success, "download finished"),
                }
                true
            }
            _ => true,
        })
        .build()?;
    // A back office has no 3D or heavy animation: WebKit's GPU compositing costs ~80 MB in its
    // web process (measured, docs/PERFORMANCE.md) and buys nothing here.
    #[cfg(target_os = "linux")]
    if std::env::var_os("DASHOFFICE_GPU_COMPOSITING").is_none() {
        window.with_webview(|wv| {
            use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
            if let Some(s) = wv.inner().settings() {
                s.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        })?;
    }
    let (w, shown, last_page) = (window.clone(), l.shown.clone(), l.last_page.clone());
    window.on_window_event(move |ev| {
        if let tauri::WindowEvent::CloseRequested { api, .. } = ev
            && std::env::var_os("DASHOFFICE_EXIT_ON_CLOSE").is_none()
        {
            api.prevent_close();
            let _ = w.hide();
            let hidden = shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if let Some(after) = tray_release_after() {
                let (w, shown, last_page) = (w.clone(), shown.clone(), last_page.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(after);
                    // Checked and done on the main thread, where the tray's Open and links show it:
                    // never let go between a showing and its check.
                    let main = w.clone();
                    let _ = main.run_on_main_thread(move || {
                        // Still hidden since this closing: let it go.
                        if shown.load(std::sync::atomic::Ordering::SeqCst) == hidden && !w.is_visible().unwrap_or(true)
                        {
                            // Its page opens again.
                            let page = w.url().ok().map(|u| u.path().to_string());
                            *last_page.lock().unwrap_or_else(|p| p.into_inner()) = page.filter(|p| page_path(p));
                            tracing::info!(after_s = after.as_secs(), "window let go while in the tray");
                            let _ = w.destroy();
                        }
                    });
                });
            }
        }
    });
    Ok(window)
}

/// The data folder's file naming the loopback port its UI was last served on.
const PORT_FILE: &str = "loopback-port";

/// Opens the loopback port: the one this data folder used last time if it is free, so WebKit
/// sees the same origin at each launch and keeps that origin's local storage (the session, for
/// its 7 days; theme, language, unsent replies) — staff stay signed in across restarts. If
/// another program holds it, a new random port (remembered for next time): the window never goes
/// to a port this launch did not open, and staff sign in once more.
fn bind_loopback(dir: &Path) -> anyhow::Result<std::net::TcpListener> {
    let file = dir.join(PORT_FILE);
    let kept = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse::<u16>().ok()).filter(|p| *p != 0);
    if let Some(port) = kept {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok(l),
            Err(e) => tracing::warn!(port, "the loopback port of earlier launches is taken ({e}); a new one"),
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("opening the loopback port")?;
    let port = listener.local_addr()?.port();
    let tmp = dir.join(format!("{PORT_FILE}.tmp"));
    if let Err(e) = std::fs::write(&tmp, format!("{port}\n")).and_then(|()| std::fs::rename(&tmp, &file)) {
        tracing::warn!("cannot remember the loopback port in {}: {e}", file.display());
    }
    Ok(listener)
}

/// Removes the web storage of other loopback ports from WebKit's folder `dir`: a port this data
/// folder no longer uses (it was taken at a launch) is an origin nothing reads again, whose local
/// storage (a session token, preferences, unsent replies) would only stay on disk. A file changed
/// within the last hour is left: it may belong to a run still going (on another data folder).
fn forget_earlier_web_storage(dir: &Path, port: u16) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let ours = format!("http_127.0.0.1_{port}.localstorage");
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("http_127.0.0.1_") || !name.contains(".localstorage") || name.starts_with(&ours) {
            continue;
        }
        let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > std::time::Duration::from_secs(3600)) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    dashoffice_core::files::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    dashoffice_core::files::lock(&dir.join("dashoffice.lock"))?
        .with_context(|| format!("another DashOffice is using {}", dir.display()))
}

fn data_dir(app: &AppHandle) -> anyhow::Result<PathBuf> {
    match std::env::var_os("DASHOFFICE_DATA_DIR") {
        Some(d) => Ok(PathBuf::from(d)),
        None => Ok(app.path().app_data_dir().context("finding the app-data folder")?.join("data")),
    }
}

/// `--restore FILE` on the command line: the backup to restore before the replica opens.
fn restore_arg(args: &[String]) -> Option<PathBuf> {
    let i = args.iter().position(|a| a == "--restore")?;
    args.get(i + 1).filter(|f| !f.starts_with("--")).map(PathBuf::from)
}

/// Restores a backup (Settings → Backup) into the data folder as a new device, keeping the old
/// database and relay identity beside it (docs/SYNC.md, "Backups and restoring"). With a relay,
/// the app then needs a new enrolment code (Settings → Sync).
fn restore(file: &Path, dir: &Path) -> anyhow::Result<()> {
    let r =
        dashoffice_core::backup::restore(file, dir, true).with_context(|| format!("restoring {}", file.display()))?;
    let identity = dashoffice_sync::set_aside_identity(dir, &r.suffix)
        .with_context(|| format!("setting aside the relay identity in {}", dir.display()))?;
    tracing::info!(
        file = %file.display(),
        documents = r.info.documents,
        kept = ?r.set_aside.iter().chain(&identity).collect::<Vec<_>>(),
        "restored a backup as a new device"
    );
    Ok(())
}

/// Opens the replica and makes the shop on an unattended first run.
fn open_replica(dir: &Path) -> anyhow::Result<(Replica, Settings)> {
    // Two readers: one person's UI, not a branch full of tablets.
    let replica = Replica::open(dir, OpenOptions { readers: 2, ..Default::default() })
        .with_context(|| format!("opening {}", dir.display()))?;
    let settings = Settings::load(dir)?;
    // Unattended first run without a relay: a shop of its own (owner from the environment).
    if replica.shop_id()?.is_none()
        && settings.relay.is_none()
        && let (Some(email), Some(password)) = (&settings.owner_email, &settings.owner_password)
    {
        replica.bootstrap(BootstrapInput {
            shop_name: "Mi Tienda".into(),
            currency: "MXN".into(),
            phone_region: "MX".into(),
            timezone: "America/Mexico_City".into(),
            branch_code: "CEN".into(),
            branch_name: "Centro".into(),
            owner_name: "Owner".into(),
            owner_email: email.clone(),
            owner_password: password.clone(),
        })?;
    }
    Ok((replica, settings))
}

fn start(app: &mut tauri::App, rt: &tokio::runtime::Runtime, started: Instant) -> anyhow::Result<()> {
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "setting up");
    let handle = app.handle().clone();
    let dir = data_dir(&handle)?;
    let lock = lock_data_dir(&dir)?;
    if let Some(file) = restore_arg(&std::env::args().collect::<Vec<_>>()) {
        restore(&file, &dir)?;
    }
    // The replica loads on another thread while the window and the tray are made.
    let opening = rt.spawn_blocking({
        let dir = dir.clone();
        move || open_replica(&dir)
    });

    // The port is open (the kernel queues the window's first requests) before the replica is:
    // WebKit starts its processes while the replica loads on another thread.
    let secret = Arc::new(server::new_secret());
    let listener = bind_loopback(&dir)?;
    listener.set_nonblocking(true)?;
    let base = format!("http://{}", listener.local_addr()?);
    // Off the start's path: the web storage of ports no longer used goes (WebKit keeps it in the
    // app's local data folder).
    if let Ok(web) = handle.path().app_local_data_dir() {
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            let n = forget_earlier_web_storage(&web.join("localstorage"), port);
            if n > 0 {
                tracing::info!(files = n, "removed the web storage of ports no longer used");
            }
        });
    }
    let first = deep_link(&std::env::args().collect::<Vec<_>>()).unwrap_or_else(|| "/".into());
    let launch = Launch {
        base: base.clone(),
        secret: secret.clone(),
        started,
        shown: Arc::default(),
        last_page: Arc::default(),
    };
    main_window(&handle, &launch, &first)?;
    app.manage(launch);
    let status = MenuItem::with_id(app, "status", "DashOffice", false, None::<&str>)?;
    // In the locale's language until the replica's settings (or the UI) say otherwise.
    let [open_text, sync_text, quit_text] = texts::Lang::of_locale(|k| std::env::var(k).ok()).menu();
    let open = MenuItem::with_id(app, "open", open_text, true, None::<&str>)?;
    let sync_now = MenuItem::with_id(app, "sync-now", sync_text, true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", quit_text, true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&status, &open, &sync_now, &quit])?;
    let mut tray = TrayIconBuilder::with_id("main").menu(&menu).tooltip("DashOffice").on_menu_event(|app, ev| match ev
        .id
        .as_ref()
    {
        "open" => show_main(app, None),
        "sync-now" => {
            // Before the replica is open (or without a relay) there is nothing to reconnect.
            if let Some(b) = app.try_state::<Arc<Backend>>() {
                (b.sync_reconnect_fn())();
            }
        }
        "quit" => app.exit(0),
        _ => {}
    });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    // After the window: building the tray loads the indicator library (tens of ms), while
    // WebKit's processes start on the other core.
    let tray = tray.build(app)?;
    let shell = Arc::new(TauriShell { app: handle.clone(), status, items: [open, sync_now, quit], tray });

    // The data folder stays locked while the app runs.
    app.manage(std::sync::Mutex::new(Some(lock)));
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "window made");

    let rt_handle = rt.handle().clone();
    rt.spawn(async move {
        let opened = opening.await.map_err(anyhow::Error::from).and_then(|r| r);
        let router = match opened {
            Ok((replica, settings)) => {
                let backend = Backend::new(replica.clone(), dir.clone(), settings, shell, rt_handle);
                if let Err(e) = backend.start_saved_sync() {
                    tracing::warn!("sync not started: {e:#}");
                }
                let mut api = AppState::new(replica, dashoffice_api::metrics_handle());
                api.sync_status = backend.sync_status_fn();
                api.sync_reconnect = backend.sync_reconnect_fn();
                let router = server::router(api, backend.clone(), secret.clone());
                backend.watch();
                handle.manage(backend);
                tracing::info!(data_dir = %dir.display(), "DashOffice desktop ready");
                router
            }
            Err(e) => {
                // The window says what is wrong instead of the app vanishing.
                tracing::error!("cannot open the data folder: {e:#}");
                server::failed(&format!("{e:#}"), secret)
            }
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                if let Err(e) = axum::serve(l, router).await {
                    tracing::error!("loopback server stopped: {e}");
                }
            }
            Err(e) => tracing::error!("loopback server: {e}"),
        }
    });
    Ok(())
}

fn main() {
    let started = Instant::now();
    let _ = server::STARTED.set(started);
    tracing_subscriber::fmt().with_env_filter(dashoffice_api::log_filter()).with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dashoffice-desktop: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let result = tauri::Builder::default()
        // First: a second launch hands its arguments (a dashoffice:// link) to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| show_main(app, deep_link(&argv))))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, None))
        .setup(move |app| {
            start(app, &rt, started)?;
            // The runtime serves the loopback API and sync for as long as the app lives.
            app.manage(rt);
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            eprintln!("dashoffice-desktop: {e}");
            std::process::exit(1);
        }
    };
    app.run(|_, event| {
        // The window let go while in the tray was the last one: the app stays, in the tray, until
        // Quit (which asks to exit with a code).
        if let tauri::RunEvent::ExitRequested { code: None, api, .. } = event
            && std::env::var_os("DASHOFFICE_EXIT_ON_CLOSE").is_none()
        {
            api.prevent_exit();
        }
    });
}

#[cfg(test)]
// A test states what it needs; a failed unwrap is the failure, reported with its line.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::deep_link;

    #[test]
    fn restore_takes_the_file_after_its_flag() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            super::restore_arg(&a(&["dashoffice-desktop", "--restore", "/tmp/copia.db"])),
            Some("/tmp/copia.db".into())
        );
        assert_eq!(super::restore_arg(&a(&["dashoffice-desktop", "--restore"])), None);
        assert_eq!(super::restore_arg(&a(&["dashoffice-desktop", "--restore", "--x"])), None);
        assert_eq!(super::restore_arg(&a(&["dashoffice-desktop", "dashoffice://orders/1"])), None);
    }

    #[test]
    fn only_earlier_launches_web_storage_an_hour_old_goes() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let make = |name: &str, aged: bool| {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            if aged {
                f.set_modified(old).unwrap();
            }
        };
        make("http_127.0.0.1_41000.localstorage", true);
        make("http_127.0.0.1_41000.localstorage-wal", true);
        make("http_127.0.0.1_4100.localstorage", true);
        make("http_127.0.0.1_41001.localstorage", false);
        make("http_127.0.0.1_5000.localstorage", true);
        make("other-file", true);
        assert_eq!(super::forget_earlier_web_storage(dir.path(), 5000), 3);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["http_127.0.0.1_41001.localstorage", "http_127.0.0.1_5000.localstorage", "other-file"]);
        assert_eq!(super::forget_earlier_web_storage(&dir.path().join("none"), 5000), 0);
    }

    #[test]
    fn the_loopback_port_is_kept_between_launches_unless_taken() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::bind_loopback(dir.path()).unwrap();
        let port = first.local_addr().unwrap().port();
        assert_eq!(std::fs::read_to_string(dir.path().join(super::PORT_FILE)).unwrap().trim(), port.to_string());
        // Taken (here by the first launch, still listening): another port, remembered instead.
        let second = super::bind_loopback(dir.path()).unwrap();
        let other = second.local_addr().unwrap().port();
        assert_ne!(other, port);
        assert_eq!(std::fs::read_to_string(dir.path().join(super::PORT_FILE)).unwrap().trim(), other.to_string());
        drop(second);
        let third = super::bind_loopback(dir.path()).unwrap();
        assert_eq!(third.local_addr().unwrap().port(), other, "the free, remembered port is used again");
        // A damaged file: a new port.
        drop(third);
        std::fs::write(dir.path().join(super::PORT_FILE), "x").unwrap();
        assert!(super::bind_loopback(dir.path()).unwrap().local_addr().unwrap().port() > 0);
    }

    #[test]
    fn the_window_opens_again_on_the_apps_own_pages_only() {
        assert!(super::page_path("/conversations/0193-ab"));
        assert!(super::page_path("/"));
        assert!(!super::page_path("/__launch"));
        assert!(!super::page_path("orders"));
        assert!(!super::page_path("/orders?x=<script>"));
    }

    #[test]
    fn deep_links_open_pages_and_nothing_else() {
        let a = |s: &str| vec!["dashoffice-desktop".to_string(), s.to_string()];
        assert_eq!(deep_link(&a("dashoffice://orders/0193-ab")), Some("/orders/0193-ab".into()));
        assert_eq!(deep_link(&a("dashoffice://conversations/")), Some("/conversations".into()));
        assert_eq!(deep_link(&a("dashoffice://orders/x?y=<script>")), None);
        assert_eq!(deep_link(&a("https://evil.example")), None);
    }
}
