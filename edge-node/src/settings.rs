//! Settings: built-in defaults, then a TOML file, then `DASHOFFICE_*` environment variables, then
//! command-line flags (each flag also reads its environment variable).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Args;
use dashoffice_core::Durability;
use dashoffice_sync::tls::Trust;
use serde::Deserialize;

/// The example configuration, printed by `--print-default-config`.
pub(crate) const DEFAULT_CONFIG: &str = r#"# DashOffice edge node configuration (TOML). Every key can also be set with the
# environment variable DASHOFFICE_<KEY> (upper case) or the flag --<key> (dashes).

# Where the replica keeps its SQLite file.
data_dir = "data"
# Address of the local API and web UI.
listen = "127.0.0.1:8080"
# "text" or "json" logs on standard error (level from RUST_LOG, default info).
log_format = "text"
# "full": an acknowledged write survives kill -9 and power loss (fsync on every commit);
# "normal": survives kill -9; the last commits may be lost on power loss.
durability = "full"
# Read connections to SQLite.
readers = 4

# Sync with a relay (optional). relay is its QUIC address; relay_fingerprint pins its certificate
# (`dashoffice-relay fingerprint` prints it), or relay_ca names the CA file of a CA-issued one.
# relay = "127.0.0.1:4433"
# relay_fingerprint = "..."
# relay_ca = "/etc/dashoffice/relay-ca.pem"
# enrolment_code: the one-time code from the relay's owner (`dashoffice-relay enrol-code`), used on
# the first connection only; set it with DASHOFFICE_ENROLMENT_CODE or --enrolment-code. A node
# started with an enrolment code and an empty data folder joins the code's shop (it does not
# create a shop of its own).
# device_name = "Caja 1"
# A silent connection to the relay counts as lost after this many milliseconds.
sync_idle_timeout_ms = 30000

# Scheduled backups (optional): a consistent copy of the database into backup_dir every
# backup_interval_s seconds (the first one a minute after start, sooner if the interval is
# shorter), keeping the newest backup_keep. Put the folder on another disk, or copy it off the
# machine. `dashoffice-edge restore FILE` brings one back (docs/SYNC.md).
# backup_dir = "/var/backups/dashoffice"
backup_interval_s = 86400
backup_keep = 7

# First run only: the shop, its first branch and the owner account.
shop_name = "Mi Tienda"
currency = "MXN"
phone_region = "MX"
timezone = "America/Mexico_City"
branch_code = "CEN"
branch_name = "Centro"
owner_name = "Owner"
owner_email = "owner@dashoffice.local"
# owner_password: set it with DASHOFFICE_OWNER_PASSWORD or --owner-password; if absent on the
# first run, a password is generated into <data_dir>/initial-owner-password (this user only).
"#;

/// Flags shared by every command.
#[derive(Args, Clone)]
pub(crate) struct Cli {
    /// Print the default configuration file and exit.
    #[arg(long)]
    pub(crate) print_default_config: bool,
    /// TOML configuration file (default: dashoffice.toml in the current folder, if present).
    #[arg(long, env = "DASHOFFICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Folder of the replica's data (created on first run).
    #[arg(long, env = "DASHOFFICE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Address of the local API, e.g. 0.0.0.0:8080 to serve the branch's network; port 0 picks one.
    #[arg(long, env = "DASHOFFICE_LISTEN", global = true)]
    listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "DASHOFFICE_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    /// Commit durability: full (survives power loss) or normal (survives a crash).
    #[arg(long, env = "DASHOFFICE_DURABILITY", global = true)]
    durability: Option<String>,
    /// First run: the owner's e-mail.
    #[arg(long, env = "DASHOFFICE_OWNER_EMAIL", global = true)]
    owner_email: Option<String>,
    /// First run: the owner's password (if absent, generated into the data folder's `initial-owner-password`).
    #[arg(long, env = "DASHOFFICE_OWNER_PASSWORD", global = true, hide_env_values = true)]
    owner_password: Option<String>,
    /// First run: the shop's name.
    #[arg(long, env = "DASHOFFICE_SHOP_NAME", global = true)]
    shop_name: Option<String>,
    /// First run: the first branch's code (2–8 upper-case letters or digits).
    #[arg(long, env = "DASHOFFICE_BRANCH_CODE", global = true)]
    branch_code: Option<String>,
    /// First run: the first branch's name.
    #[arg(long, env = "DASHOFFICE_BRANCH_NAME", global = true)]
    branch_name: Option<String>,
    /// First run: the shop's currency (ISO 4217).
    #[arg(long, env = "DASHOFFICE_CURRENCY", global = true)]
    currency: Option<String>,
    /// The relay's QUIC address (host:port); sync is off without it.
    #[arg(long, env = "DASHOFFICE_RELAY", global = true)]
    relay: Option<String>,
    /// The SHA-256 fingerprint of the relay's certificate (64 hex digits).
    #[arg(long, env = "DASHOFFICE_RELAY_FINGERPRINT", global = true)]
    relay_fingerprint: Option<String>,
    /// A CA certificate file (PEM) to verify a CA-issued relay certificate instead of pinning.
    #[arg(long, env = "DASHOFFICE_RELAY_CA", global = true)]
    relay_ca: Option<PathBuf>,
    /// One-time enrolment code from the relay's owner (first connection only).
    #[arg(long, env = "DASHOFFICE_ENROLMENT_CODE", global = true, hide_env_values = true)]
    enrolment_code: Option<String>,
    /// A name for this device on the relay.
    #[arg(long, env = "DASHOFFICE_DEVICE_NAME", global = true)]
    device_name: Option<String>,
    /// Milliseconds of silence after which the connection to the relay counts as lost.
    #[arg(long, env = "DASHOFFICE_SYNC_IDLE_TIMEOUT_MS", global = true)]
    sync_idle_timeout_ms: Option<u64>,
    /// Folder for scheduled backups (off without it).
    #[arg(long, env = "DASHOFFICE_BACKUP_DIR", global = true)]
    backup_dir: Option<PathBuf>,
    /// Seconds between scheduled backups (default one a day).
    #[arg(long, env = "DASHOFFICE_BACKUP_INTERVAL_S", global = true)]
    backup_interval_s: Option<u64>,
    /// How many scheduled backups to keep (the oldest go).
    #[arg(long, env = "DASHOFFICE_BACKUP_KEEP", global = true)]
    backup_keep: Option<usize>,
}

// By hand: the owner's password and the enrolment code never show in debug output.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("relay", &self.relay)
            .field("owner_email", &self.owner_email)
            .field("owner_password", &self.owner_password.as_ref().map(|_| dashoffice_domain::api::REDACTED))
            .field("enrolment_code", &self.enrolment_code.as_ref().map(|_| dashoffice_domain::api::REDACTED))
            .finish_non_exhaustive()
    }
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", dashoffice_domain::api::REDACTED)
    }
}

/// The effective settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) log_format: String,
    durability: String,
    pub(crate) readers: usize,
    pub(crate) shop_name: String,
    pub(crate) currency: String,
    pub(crate) phone_region: String,
    pub(crate) timezone: String,
    pub(crate) branch_code: String,
    pub(crate) branch_name: String,
    pub(crate) owner_name: String,
    pub(crate) owner_email: String,
    pub(crate) owner_password: Option<Secret>,
    #[serde(default)]
    pub(crate) relay: Option<String>,
    #[serde(default)]
    relay_fingerprint: Option<String>,
    #[serde(default)]
    relay_ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) enrolment_code: Option<Secret>,
    #[serde(default)]
    pub(crate) device_name: Option<String>,
    pub(crate) sync_idle_timeout_ms: u64,
    #[serde(default)]
    pub(crate) backup_dir: Option<PathBuf>,
    pub(crate) backup_interval_s: u64,
    pub(crate) backup_keep: usize,
}

impl Settings {
    pub(crate) fn load(cli: &Cli) -> anyhow::Result<Self> {
        let mut b =
            config::Config::builder().add_source(config::File::from_str(DEFAULT_CONFIG, config::FileFormat::Toml));
        match &cli.config {
            Some(path) => {
                b = b.add_source(config::File::from(path.clone()).format(config::FileFormat::Toml).required(true));
            }
            None => {
                b = b.add_source(
                    config::File::with_name("dashoffice.toml").format(config::FileFormat::Toml).required(false),
                )
            }
        }
        b = b.add_source(config::Environment::with_prefix("DASHOFFICE").try_parsing(false));
        let overrides: [(&str, Option<String>); 19] = [
            ("backup_dir", cli.backup_dir.as_ref().map(|p| p.display().to_string())),
            ("backup_interval_s", cli.backup_interval_s.map(|v| v.to_string())),
            ("backup_keep", cli.backup_keep.map(|v| v.to_string())),
            ("sync_idle_timeout_ms", cli.sync_idle_timeout_ms.map(|v| v.to_string())),
            ("relay", cli.relay.clone()),
            ("relay_fingerprint", cli.relay_fingerprint.clone()),
            ("relay_ca", cli.relay_ca.as_ref().map(|p| p.display().to_string())),
            ("enrolment_code", cli.enrolment_code.clone()),
            ("device_name", cli.device_name.clone()),
            ("data_dir", cli.data_dir.as_ref().map(|p| p.display().to_string())),
            ("listen", cli.listen.clone()),
            ("log_format", cli.log_format.clone()),
            ("durability", cli.durability.clone()),
            ("owner_email", cli.owner_email.clone()),
            ("owner_password", cli.owner_password.clone()),
            ("shop_name", cli.shop_name.clone()),
            ("branch_code", cli.branch_code.clone()),
            ("branch_name", cli.branch_name.clone()),
            ("currency", cli.currency.clone()),
        ];
        for (k, v) in overrides {
            if let Some(v) = v {
                b = b.set_override(k, v)?;
            }
        }
        let s: Settings =
            b.build().context("reading the configuration")?.try_deserialize().context("invalid configuration")?;
        if !matches!(s.log_format.as_str(), "text" | "json") {
            anyhow::bail!("log_format must be \"text\" or \"json\", not {:?}", s.log_format);
        }
        if !matches!(s.durability.as_str(), "full" | "normal") {
            anyhow::bail!("durability must be \"full\" or \"normal\", not {:?}", s.durability);
        }
        if !(1..=64).contains(&s.readers) {
            anyhow::bail!("readers must be between 1 and 64");
        }
        if !(1000..=600_000).contains(&s.sync_idle_timeout_ms) {
            anyhow::bail!("sync_idle_timeout_ms must be between 1000 and 600000");
        }
        if s.device_name.as_ref().is_some_and(|n| n.chars().count() > 100) {
            anyhow::bail!("device_name must be at most 100 characters (the relay lists devices by it)");
        }
        if !(1..=31 * 86_400).contains(&s.backup_interval_s) {
            anyhow::bail!("backup_interval_s must be between 1 and 2678400 (31 days)");
        }
        if !(1..=1000).contains(&s.backup_keep) {
            anyhow::bail!("backup_keep must be between 1 and 1000");
        }
        if s.relay.is_some() {
            s.sync_trust()?;
        }
        Ok(s)
    }

    /// How the relay's certificate is trusted.
    pub(crate) fn sync_trust(&self) -> anyhow::Result<Trust> {
        match (&self.relay_fingerprint, &self.relay_ca) {
            (Some(fp), _) => Ok(Trust::Pinned(
                dashoffice_sync::tls::parse_fingerprint(fp).map_err(|e| anyhow::anyhow!("relay_fingerprint: {e}"))?,
            )),
            (None, Some(ca)) => Ok(Trust::Ca(ca.clone())),
            (None, None) => anyhow::bail!(
                "relay is set but neither relay_fingerprint nor relay_ca: pin the relay's certificate \
                 (`dashoffice-relay fingerprint` prints it) or name its CA"
            ),
        }
    }

    pub(crate) fn durability(&self) -> Durability {
        if self.durability == "normal" { Durability::Normal } else { Durability::Full }
    }
}
