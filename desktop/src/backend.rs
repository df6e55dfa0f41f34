//! The replica inside the app: opened from the app's data folder, its sync client (started when
//! the computer is connected to a relay, restarted when staff connect it to another), the tray's
//! sync state and unread count, and OS notifications for customer messages and conversations
//! assigned to the person using this computer.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use dashoffice_api::{ApiError, ApiResult};
use dashoffice_core::{
    BootstrapInput, Replica,
    entities::{inbox, tickets},
};
use dashoffice_domain::{FieldError, api::SyncStatus};
use dashoffice_sync::{ClientConfig, SyncHandle, tls::Trust};
use serde::Serialize;

use crate::{server::SyncInput, settings::Settings, texts::Lang};

/// A notification the app showed (also listed at `GET /api/v1/desktop/notifications`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Shown {
    /// Title.
    pub(crate) title: String,
    /// Body.
    pub(crate) body: String,
    /// The page it is about.
    pub(crate) path: String,
    /// When (Unix ms).
    pub(crate) at: i64,
}

/// What the app shows to the operating system: the tray and notifications.
pub(crate) trait Shell: Send + Sync {
    /// The tray's sync line and unread count changed.
    fn tray(&self, sync: &str, unread: u64, tooltip: &str);
    /// The tray menu in this language.
    fn menu(&self, lang: Lang);
    /// Shows a notification.
    fn notify(&self, title: &str, body: &str);
    /// Turns start-at-login on or off.
    fn autostart(&self, on: bool) -> anyhow::Result<()>;
    /// Where the files the UI saves go (the user's Downloads folder).
    fn downloads(&self) -> PathBuf;
    /// Opens a saved file with the program the computer opens its kind with, or (`reveal`) shows it
    /// in its folder in the file manager (or opens the folder where no file manager answers).
    fn open(&self, path: &Path, reveal: bool) -> anyhow::Result<()>;
}

/// A file the app saved for the UI (`GET /api/v1/desktop/saved`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SavedFile {
    /// Its name in the folder (`CEN-C9HR52-000001 (1).pdf`).
    pub(crate) name: String,
    /// The whole path: what `POST /api/v1/desktop/open` takes as `file`.
    pub(crate) path: String,
    /// The folder it is in.
    pub(crate) folder: String,
    /// When WebKit finished writing it (Unix ms).
    pub(crate) at: i64,
    /// Whether it is still there.
    pub(crate) exists: bool,
    /// Whether it opens here with its program (documents, images, audio, video); anything else
    /// (a backup, an attachment that could run code) is only shown in its folder.
    pub(crate) opens: bool,
}

pub(crate) struct Backend {
    replica: Replica,
    data_dir: PathBuf,
    settings: Mutex<Settings>,
    sync: Arc<Mutex<Option<SyncHandle>>>,
    shell: Arc<dyn Shell>,
    shown: Mutex<VecDeque<Shown>>,
    /// The files saved here, newest last (at most 100), kept in `saved-files.json`.
    files: Mutex<VecDeque<(PathBuf, i64)>>,
    rt: tokio::runtime::Handle,
    lang: Mutex<Lang>,
}

/// The list of saved files in the data folder: the app's restarts keep it.
const SAVED_FILES: &str = "saved-files.json";

fn load_files(data_dir: &Path) -> VecDeque<(PathBuf, i64)> {
    let Ok(bytes) = std::fs::read(data_dir.join(SAVED_FILES)) else { return VecDeque::new() };
    serde_json::from_slice::<VecDeque<(PathBuf, i64)>>(&bytes).unwrap_or_else(|e| {
        tracing::warn!("{SAVED_FILES} is unreadable ({e}); the list of saved files starts anew");
        VecDeque::new()
    })
}

/// Writes the list whole (a new file renamed over the old: a crash leaves one or the other).
fn keep_files(data_dir: &Path, files: &VecDeque<(PathBuf, i64)>) {
    let tmp = data_dir.join(format!("{SAVED_FILES}.tmp"));
    let written = serde_json::to_vec(files)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, data_dir.join(SAVED_FILES)));
    if let Err(e) = written {
        tracing::warn!("could not keep the list of saved files in {SAVED_FILES}: {e}");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend {
    pub(crate) fn new(
        replica: Replica,
        data_dir: PathBuf,
        settings: Settings,
        shell: Arc<dyn Shell>,
        rt: tokio::runtime::Handle,
    ) -> Arc<Self> {
        let lang = settings
            .language
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or_else(|| Lang::of_locale(|k| std::env::var(k).ok()));
        let files = Mutex::new(load_files(&data_dir));
        Arc::new(Self {
            lang: Mutex::new(lang),
            replica,
            data_dir,
            settings: Mutex::new(settings),
            sync: Arc::new(Mutex::new(None)),
            shell,
            shown: Mutex::new(VecDeque::new()),
            files,
            rt,
        })
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// No shop here and no relay to join one through.
    pub(crate) fn needs_setup(&self) -> bool {
        self.replica.shop_id().ok().flatten().is_none() && lock(&self.sync).is_none()
    }

    /// The sync state for the API (`/api/v1/sync/status`) and the tray.
    pub(crate) fn sync_status_fn(&self) -> Arc<dyn Fn() -> SyncStatus + Send + Sync> {
        let sync = self.sync.clone();
        Arc::new(move || lock(&sync).as_ref().map(SyncHandle::status).unwrap_or_default())
    }

    /// "Sync now" for the API (`POST /api/v1/sync/reconnect`): false when sync is not set up.
    pub(crate) fn sync_reconnect_fn(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let sync = self.sync.clone();
        Arc::new(move || lock(&sync).as_ref().map(SyncHandle::reconnect).is_some())
    }

    /// Starts the sync client from the saved settings (and an enrolment code from the
    /// environment, for unattended set-up).
    pub(crate) fn start_saved_sync(&self) -> anyhow::Result<()> {
        let s = self.settings();
        let (Some(relay), Some(fp)) = (s.relay.clone(), s.relay_fingerprint.clone()) else { return Ok(()) };
        self.start_sync(&relay, &fp, s.enrolment_code.clone()).map_err(|e| anyhow::anyhow!("{}", e.message()))
    }

    fn start_sync(&self, relay: &str, fingerprint: &str, code: Option<String>) -> ApiResult<()> {
        let fp = dashoffice_sync::tls::parse_fingerprint(fingerprint)
            .map_err(|e| ApiError::from(FieldError::new("relay_fingerprint", "sha256_hex", e.to_string())))?;
        if relay.parse::<std::net::SocketAddr>().is_err() && !relay.contains(':') {
            return Err(FieldError::new(
                "relay",
                "host_port",
                "host:port of the relay's QUIC side, e.g. relay.shop.mx:4433",
            )
            .into());
        }
        let cfg = ClientConfig {
            relay: relay.to_string(),
            trust: Trust::Pinned(fp),
            data_dir: self.data_dir.clone(),
            enrolment_code: code,
            device_name: format!("desktop {}", self.replica.device().code),
            idle_timeout: Duration::from_secs(30),
            local: None,
            gather: Duration::ZERO,
        };
        let _guard = self.rt.enter();
        let handle = dashoffice_sync::client::start(self.replica.clone(), cfg)
            .map_err(|e| ApiError::from(FieldError::new("relay", "unreachable", e.to_string())))?;
        if let Some(old) = lock(&self.sync).replace(handle) {
            old.stop();
        }
        tracing::info!(%relay, "sync with the relay is on");
        Ok(())
    }

    /// Connects this computer to a relay with a one-time enrolment code, and remembers it.
    pub(crate) fn join(&self, i: SyncInput) -> ApiResult<()> {
        self.start_sync(i.relay.trim(), i.relay_fingerprint.trim(), Some(i.enrolment_code.trim().to_string()))?;
        let mut s = lock(&self.settings);
        s.relay = Some(i.relay.trim().to_string());
        s.relay_fingerprint = Some(i.relay_fingerprint.trim().to_string());
        s.save(&self.data_dir)
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))
    }

    /// Starts a shop of its own on this computer (no relay).
    pub(crate) fn start_shop(&self, shop: &str, owner: &str, email: &str, password: &str) -> ApiResult<()> {
        let input = BootstrapInput {
            shop_name: shop.to_string(),
            currency: "MXN".into(),
            phone_region: "MX".into(),
            timezone: "America/Mexico_City".into(),
            branch_code: "CEN".into(),
            branch_name: "Centro".into(),
            owner_name: owner.to_string(),
            owner_email: email.to_string(),
            owner_password: password.to_string(),
        };
        self.replica.bootstrap(input)?;
        Ok(())
    }

    /// The language of the tray and notifications.
    pub(crate) fn lang(&self) -> Lang {
        *lock(&self.lang)
    }

    /// The UI's language, kept for the tray and notifications (and the next launch).
    pub(crate) fn set_language(&self, code: &str) -> ApiResult<()> {
        let lang =
            Lang::parse(code).ok_or_else(|| ApiError::from(FieldError::new("language", "one_of", "one of es, en")))?;
        if self.lang() == lang {
            return Ok(());
        }
        {
            // Kept first: a language that could not be saved is not taken either.
            let mut s = lock(&self.settings);
            s.language = Some(lang.code().to_string());
            s.save(&self.data_dir)
                .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))?;
        }
        *lock(&self.lang) = lang;
        self.shell.menu(lang);
        Ok(())
    }

    pub(crate) fn set_start_at_login(&self, on: bool) -> ApiResult<()> {
        self.shell.autostart(on).map_err(|e| ApiError::from(FieldError::new("start_at_login", "os", e.to_string())))?;
        let mut s = lock(&self.settings);
        s.start_at_login = on;
        s.save(&self.data_dir)
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))
    }

    pub(crate) fn shown(&self) -> Vec<Shown> {
        lock(&self.shown).iter().cloned().collect()
    }

    /// WebKit finished (or failed) writing a file the UI saved: a notification says where.
    pub(crate) fn saved(&self, path: Option<&Path>, ok: bool) {
        let folder = path.and_then(Path::parent).map_or_else(|| self.shell.downloads(), Path::to_path_buf);
        let name = path.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if ok {
            tracing::info!(file = %folder.join(&name).display(), "file saved");
        } else {
            tracing::warn!(file = %folder.join(&name).display(), "file not saved");
        }
        let (title, body) = self.lang().saved(&name, &folder.display().to_string(), ok);
        self.shell.notify(&title, &body);
        let at = self.replica.now_ms();
        self.remember(Shown { title, body, path: String::new(), at });
        if let Some(p) = path.filter(|_| ok) {
            let mut files = lock(&self.files);
            if files.len() >= 100 {
                files.pop_front();
            }
            files.push_back((p.to_path_buf(), at));
            keep_files(&self.data_dir, &files);
        }
    }

    /// The files saved here, newest first.
    pub(crate) fn saved_files(&self) -> Vec<SavedFile> {
        lock(&self.files)
            .iter()
            .rev()
            .map(|(p, at)| SavedFile {
                name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                path: p.display().to_string(),
                folder: p.parent().map(|f| f.display().to_string()).unwrap_or_default(),
                at: *at,
                exists: p.is_file(),
                opens: crate::downloads::opens_here(p),
            })
            .collect()
    }

    /// Opens a file the app saved (or shows it in its folder). Only those files: the page cannot
    /// make the app open anything else on the computer.
    pub(crate) fn open_saved(&self, file: &str, reveal: bool) -> ApiResult<()> {
        use axum::http::StatusCode;
        let field = |status: StatusCode, code: &str, rule: &str, msg: String| {
            ApiError::new(status, code, msg).with_field("file", rule)
        };
        if file.trim().is_empty() {
            return Err(field(StatusCode::UNPROCESSABLE_ENTITY, "validation", "required", "file: required".into()));
        }
        let path = PathBuf::from(file);
        if !lock(&self.files).iter().any(|(p, _)| *p == path) {
            return Err(field(
                StatusCode::NOT_FOUND,
                "not_found",
                "saved_here",
                format!("file: {file} is not a file DashOffice saved on this computer"),
            ));
        }
        if !path.is_file() {
            return Err(field(
                StatusCode::NOT_FOUND,
                "not_found",
                "exists",
                format!("file: {file} is no longer there (moved or deleted)"),
            ));
        }
        if !reveal && !crate::downloads::opens_here(&path) {
            return Err(field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "opens_here",
                format!(
                    "file: only documents, images, audio and video open from DashOffice; show {} in its folder instead",
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                ),
            ));
        }
        self.shell.open(&path, reveal).map_err(|e| {
            tracing::warn!(file = %path.display(), reveal, "could not open: {e:#}");
            field(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "opener",
                format!("file: this computer has no program to open it ({e})"),
            )
        })
    }

    /// Where the files the UI saves go.
    pub(crate) fn downloads(&self) -> PathBuf {
        self.shell.downloads()
    }

    fn remember(&self, s: Shown) {
        let mut q = lock(&self.shown);
        if q.len() >= 100 {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// Watches the replica: the tray's line, and a notification for each new customer message or
    /// conversation assigned to the person who last logged in here. Runs until the app quits.
    pub(crate) fn watch(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("desktop-watch".into())
            .spawn(move || me.watch_loop())
            .map(|_| ())
            .unwrap_or_else(|e| tracing::warn!("cannot watch for notifications: {e}"));
    }

    fn watch_loop(&self) {
        self.shell.menu(self.lang());
        let mut rx = self.replica.subscribe();
        let mut since = self.replica.now_ms();
        let mut last_tray = String::new();
        loop {
            self.refresh(&mut since, &mut last_tray);
            // Wake on changes, or every 2 s for the sync line.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            loop {
                match rx.try_recv() {
                    Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::TryRecvError::Closed) => return,
                    Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {}
                }
                if std::time::Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn refresh(&self, since: &mut i64, last_tray: &mut String) {
        let Ok(Some(shop)) = self.replica.shop_id() else { return };
        let st = (self.sync_status_fn())();
        let lang = self.lang();
        let sync = lang.sync_line(st.enabled, st.connected, st.pending_changes);
        let read = self.replica.read(|c| {
            let unread = inbox::unread_conversations(c, &shop)?;
            let user = inbox::last_login(c)?;
            let notices = inbox::notices_since(c, &shop, user.as_deref(), *since)?;
            let tickets = match &user {
                Some(u) => tickets::assigned_since(c, &shop, u, *since)?,
                None => Vec::new(),
            };
            Ok((unread, notices, tickets))
        });
        let Ok((unread, notices, tickets)) = read else { return };
        let line = format!("{sync}|{unread}");
        if line != *last_tray {
            self.shell.tray(&sync, unread, &lang.tooltip(&sync, unread));
            *last_tray = line;
        }
        for n in notices {
            *since = (*since).max(n.at);
            let (title, body) = match n.kind {
                "assigned" => lang.assigned(&n.customer_name),
                _ => (n.customer_name.clone(), n.text.chars().take(140).collect()),
            };
            self.shell.notify(&title, &body);
            self.remember(Shown { title, body, path: format!("/conversations/{}", n.conversation_id), at: n.at });
        }
        for x in tickets {
            *since = (*since).max(x.at);
            let (title, body) = lang.ticket_assigned(&x.number, &x.subject);
            self.shell.notify(&title, &body);
            self.remember(Shown { title, body, path: format!("/tickets/{}", x.id), at: x.at });
        }
    }
}
