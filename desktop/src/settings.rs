//! The desktop app's settings: `desktop.toml` in its data folder (written by the app when staff
//! set up sync or options in the UI), overridden by `DASHOFFICE_*` environment variables.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What the app remembers between launches.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Settings {
    /// The relay's QUIC address (host:port); absent: this computer works alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) relay: Option<String>,
    /// The relay certificate's SHA-256 fingerprint (hex), pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) relay_fingerprint: Option<String>,
    /// Start the app when the user logs in to the computer.
    #[serde(default)]
    pub(crate) start_at_login: bool,
    /// The language of the tray and notifications (`es`, `en`), the one the UI last used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) language: Option<String>,
    /// A one-time enrolment code (environment only, for unattended set-up; never written).
    #[serde(default, skip_serializing)]
    pub(crate) enrolment_code: Option<String>,
    /// First-run shop, for unattended set-up without a relay (environment only).
    #[serde(default, skip_serializing)]
    pub(crate) owner_email: Option<String>,
    /// Its owner's password (environment only; never written or logged).
    #[serde(default, skip_serializing)]
    pub(crate) owner_password: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| dashoffice_domain::api::REDACTED);
        f.debug_struct("Settings")
            .field("relay", &self.relay)
            .field("relay_fingerprint", &self.relay_fingerprint)
            .field("start_at_login", &self.start_at_login)
            .field("language", &self.language)
            .field("enrolment_code", &hidden(&self.enrolment_code))
            .field("owner_email", &self.owner_email)
            .field("owner_password", &hidden(&self.owner_password))
            .finish()
    }
}

pub(crate) fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop.toml")
}

impl Settings {
    /// The file, then `DASHOFFICE_RELAY`, `DASHOFFICE_RELAY_FINGERPRINT`,
    /// `DASHOFFICE_ENROLMENT_CODE`, `DASHOFFICE_OWNER_EMAIL`, `DASHOFFICE_OWNER_PASSWORD`.
    pub(crate) fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let c = config::Config::builder()
            .add_source(config::File::from(file(data_dir)).format(config::FileFormat::Toml).required(false))
            .add_source(config::Environment::with_prefix("DASHOFFICE").try_parsing(true))
            .build()
            .context("reading desktop.toml")?;
        let mut s = Settings::default();
        let get = |k: &str| c.get_string(k).ok().filter(|v| !v.trim().is_empty());
        s.relay = get("relay");
        s.relay_fingerprint = get("relay_fingerprint");
        s.start_at_login = c.get_bool("start_at_login").unwrap_or(false);
        s.language = get("language");
        s.enrolment_code = get("enrolment_code");
        s.owner_email = get("owner_email");
        s.owner_password = get("owner_password");
        Ok(s)
    }

    /// Writes what is worth keeping (never codes or passwords), atomically.
    pub(crate) fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("encoding desktop.toml")?;
        let tmp = data_dir.join("desktop.toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, file(data_dir)).context("saving desktop.toml")?;
        Ok(())
    }
}
