//! dashoffice-relay: the central relay. Replicas sync with it over QUIC (automerge-repo messages
//! carrying Automerge sync messages), browsers and JS clients over WebSocket at `/sync`; it
//! stores every change durably before answering and forwards it to every replica allowed to see
//! it.

use std::{
    io::IsTerminal,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dashoffice_sync::tls::{self, Identity};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use dashoffice_relay::{
    console, enrol, http, hub, mail, quic,
    store::{RelayStore, SqliteStore},
    whatsapp as wa,
};

const DEFAULT_CONFIG: &str = r#"# DashOffice relay configuration (TOML). Every key can also be set with the environment
# variable DASHOFFICE_<KEY> (upper case) or the flag --<key> (dashes).

# Where the relay keeps its SQLite store, certificate and admin token.
data_dir = "relay-data"
# HTTP: health, metrics, the owner's API and the WebSocket endpoint /sync.
listen = "127.0.0.1:8090"
# QUIC (UDP): replicas sync here.
quic_listen = "127.0.0.1:4433"
# "text" or "json" logs on standard error (level from RUST_LOG, default info).
log_format = "text"
# A silent QUIC connection is closed after this many milliseconds.
idle_timeout_ms = 30000
# A CA-issued certificate instead of the self-signed one (PEM files); both or neither.
# tls_cert = "/etc/dashoffice/relay.crt"
# tls_key = "/etc/dashoffice/relay.key"
# admin_token: set it with DASHOFFICE_ADMIN_TOKEN; if absent, one is generated into
# <data_dir>/admin-token on first run.

# WhatsApp Cloud API. Secrets: DASHOFFICE_WHATSAPP_APP_SECRET (signs webhooks) and
# DASHOFFICE_WHATSAPP_VERIFY_TOKEN (the verification handshake), or whatsapp_app_secret and
# whatsapp_verify_token here. Each number's access token is set with `whatsapp-number`.
whatsapp_api_base = "https://graph.facebook.com"
whatsapp_api_version = "v21.0"
# Messages per second per number (Meta's default throughput is 80).
whatsapp_rate_per_number = 80
# Messages per minute to one customer.
whatsapp_rate_per_customer = 20
# Timeout of one Graph API call.
whatsapp_timeout_ms = 10000
# Days the raw webhook events (customers' messages as Meta sent them) are kept once processed;
# failed ones are kept three times as long. 0 keeps them forever.
whatsapp_event_retention_days = 30

# Head office: the relay keeps a replica of every shop with an enrolled device and serves the
# shop's API and web UI on `listen`, so head office logs in here and sees every branch.
head_office = true

# Optional LLM provider for questions the offline bot does not understand: "none", "openai"
# (any OpenAI-compatible chat completions API) or "anthropic". The key comes from
# DASHOFFICE_LLM_API_KEY. On a timeout or error the offline answer is sent.
llm_provider = "none"
# llm_base = "https://api.openai.com/v1"      # or "https://api.anthropic.com"
# llm_model = "gpt-4o-mini"
llm_timeout_ms = 8000

# E-mail (order documents staff e-mail to customers): an SMTP server, e.g.
# "smtp://mail.example.com:587?tls=required" (STARTTLS), "smtps://mail.example.com" (TLS) or
# "smtp://127.0.0.1:25" (plain, a local relay); with "user:password@" before the host when it
# wants a login. Set it with DASHOFFICE_SMTP_URL (it may hold a password); none: e-mails wait.
# smtp_url = "smtps://user:password@mail.example.com"
# The sender's address (DASHOFFICE_SMTP_FROM); the shop's name is shown as the sender.
# smtp_from = "ventas@example.com"
# Timeout of connecting, and of each read and write of an SMTP conversation.
smtp_timeout_ms = 30000
"#;

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Serve QUIC and HTTP (the default).
    Serve,
    /// Create a one-time enrolment code for a device of a shop (and a branch, or the whole shop).
    EnrolCode {
        /// The shop's id (GET /api/v1/shop on its first edge node shows it).
        #[arg(long)]
        shop: String,
        /// The branch the device serves; omit for a head-office device that sees every branch.
        #[arg(long)]
        branch: Option<String>,
        /// A note for the owner (which device the code is for).
        #[arg(long, default_value = "")]
        note: String,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u32,
    },
    /// List enrolled devices.
    Devices,
    /// Revoke a device: its connections close and it is refused from then on.
    Revoke {
        /// The device id (from `devices`).
        device: String,
    },
    /// Print the fingerprint replicas pin.
    Fingerprint,
    /// Connect a WhatsApp number to a shop. The access token is read from the environment
    /// variable DASHOFFICE_WHATSAPP_ACCESS_TOKEN, or from standard input (never from a flag, so
    /// it stays out of shell history and process lists).
    WhatsappNumber {
        /// Meta's phone number id (WhatsApp Manager → API setup).
        #[arg(long)]
        phone_number_id: String,
        /// The shop's id.
        #[arg(long)]
        shop: String,
        /// The branch whose conversations it carries (default: the shop's first branch).
        #[arg(long)]
        branch: Option<String>,
        /// The number as shown to people, e.g. +52 55 1234 5678.
        #[arg(long, default_value = "")]
        display_number: String,
    },
    /// List the connected WhatsApp numbers (without tokens).
    WhatsappNumbers,
    /// Rebuild the SQL tables of the shops' service replicas (WhatsApp and head office) from
    /// their documents, with progress. The relay must be stopped.
    Reindex {
        /// Only this shop (default: every shop this relay serves).
        #[arg(long)]
        shop: Option<String>,
    },
}

#[derive(Parser, Debug)]
#[command(name = "dashoffice-relay", version, about = "DashOffice relay: sync hub for a shop's replicas.")]
struct Args {
    /// Print the default configuration file and exit.
    #[arg(long)]
    print_default_config: bool,
    /// TOML configuration file (default: dashoffice-relay.toml in the current folder, if present).
    #[arg(long, env = "DASHOFFICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Folder of the relay's data.
    #[arg(long, env = "DASHOFFICE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// HTTP address (health, metrics, API, /sync); port 0 picks one.
    #[arg(long, env = "DASHOFFICE_LISTEN", global = true)]
    listen: Option<String>,
    /// QUIC (UDP) address; port 0 picks one.
    #[arg(long, env = "DASHOFFICE_QUIC_LISTEN", global = true)]
    quic_listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "DASHOFFICE_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Deserialize)]
struct Settings {
    data_dir: PathBuf,
    listen: SocketAddr,
    quic_listen: SocketAddr,
    log_format: String,
    idle_timeout_ms: u64,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    admin_token: Option<String>,
    #[serde(default)]
    whatsapp_app_secret: Option<String>,
    #[serde(default)]
    whatsapp_verify_token: Option<String>,
    whatsapp_api_base: String,
    whatsapp_api_version: String,
    whatsapp_rate_per_number: u32,
    whatsapp_rate_per_customer: u32,
    whatsapp_timeout_ms: u64,
    whatsapp_event_retention_days: u32,
    llm_provider: String,
    #[serde(default)]
    llm_base: Option<String>,
    #[serde(default)]
    llm_model: Option<String>,
    #[serde(default)]
    llm_api_key: Option<String>,
    llm_timeout_ms: u64,
    head_office: bool,
    #[serde(default)]
    smtp_url: Option<String>,
    #[serde(default)]
    smtp_from: Option<String>,
    smtp_timeout_ms: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("quic_listen", &self.quic_listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("whatsapp_app_secret", &self.whatsapp_app_secret.as_ref().map(|_| "***"))
            .field("whatsapp_verify_token", &self.whatsapp_verify_token.as_ref().map(|_| "***"))
            .field("whatsapp_api_base", &self.whatsapp_api_base)
            .field("llm_provider", &self.llm_provider)
            .field("head_office", &self.head_office)
            .field("llm_api_key", &self.llm_api_key.as_ref().map(|_| "***"))
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "***"))
            .field("smtp_from", &self.smtp_from)
            .finish_non_exhaustive()
    }
}

fn load_settings(a: &Args) -> anyhow::Result<Settings> {
    let mut b = config::Config::builder().add_source(config::File::from_str(DEFAULT_CONFIG, config::FileFormat::Toml));
    b = match &a.config {
        Some(p) => b.add_source(config::File::from(p.clone()).format(config::FileFormat::Toml).required(true)),
        None => b.add_source(
            config::File::with_name("dashoffice-relay.toml").format(config::FileFormat::Toml).required(false),
        ),
    };
    b = b.add_source(config::Environment::with_prefix("DASHOFFICE").try_parsing(false));
    for (k, v) in [
        ("data_dir", a.data_dir.as_ref().map(|p| p.display().to_string())),
        ("listen", a.listen.clone()),
        ("quic_listen", a.quic_listen.clone()),
        ("log_format", a.log_format.clone()),
    ] {
        if let Some(v) = v {
            b = b.set_override(k, v)?;
        }
    }
    let mut s: Settings =
        b.build().context("reading the configuration")?.try_deserialize().context("invalid configuration")?;
    if !matches!(s.log_format.as_str(), "text" | "json") {
        bail!("log_format must be \"text\" or \"json\", not {:?}", s.log_format);
    }
    if !(1000..=600_000).contains(&s.idle_timeout_ms) {
        bail!("idle_timeout_ms must be between 1000 and 600000");
    }
    if s.tls_cert.is_some() != s.tls_key.is_some() {
        bail!("tls_cert and tls_key go together: set both or neither");
    }
    if !(s.whatsapp_api_base.starts_with("https://") || s.whatsapp_api_base.starts_with("http://")) {
        bail!("whatsapp_api_base must be an http(s) URL, not {:?}", s.whatsapp_api_base);
    }
    if !(1..=1000).contains(&s.whatsapp_rate_per_number) {
        bail!("whatsapp_rate_per_number must be between 1 and 1000");
    }
    if !(1..=600).contains(&s.whatsapp_rate_per_customer) {
        bail!("whatsapp_rate_per_customer must be between 1 and 600 (messages per minute)");
    }
    if !(100..=120_000).contains(&s.whatsapp_timeout_ms) {
        bail!("whatsapp_timeout_ms must be between 100 and 120000");
    }
    if s.whatsapp_event_retention_days > 3650 {
        bail!("whatsapp_event_retention_days must be between 0 (keep forever) and 3650");
    }
    if s.whatsapp_app_secret.as_deref().is_some_and(|x| x.trim().is_empty()) {
        bail!("whatsapp_app_secret is empty");
    }
    if !matches!(s.llm_provider.as_str(), "none" | "openai" | "anthropic") {
        bail!("llm_provider must be \"none\", \"openai\" or \"anthropic\", not {:?}", s.llm_provider);
    }
    if s.llm_provider != "none" && s.llm_api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        bail!("llm_provider {} needs an API key in DASHOFFICE_LLM_API_KEY", s.llm_provider);
    }
    if !(100..=120_000).contains(&s.llm_timeout_ms) {
        bail!("llm_timeout_ms must be between 100 and 120000");
    }
    if s.smtp_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        s.smtp_url = None;
    }
    if s.smtp_url.is_some() && s.smtp_from.as_deref().is_none_or(|f| f.trim().is_empty()) {
        bail!("smtp_url needs smtp_from (DASHOFFICE_SMTP_FROM): the address e-mails are sent from");
    }
    if !(1000..=600_000).contains(&s.smtp_timeout_ms) {
        bail!("smtp_timeout_ms must be between 1000 and 600000");
    }
    Ok(s)
}

/// Every allocation of the process, Rust's and the bundled SQLite's (jemalloc built unprefixed
/// replaces malloc itself): glibc's malloc took a quarter of a sync writer's time.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args = Args::parse();
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return;
    }
    let settings = match load_settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dashoffice-relay: configuration error: {e:#}");
            std::process::exit(2);
        }
    };
    let filter = dashoffice_api::log_filter();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.log_format == "json" {
        b.json().init();
    } else {
        b.init();
    }
    if let Err(e) = run(settings, args.command.unwrap_or(Command::Serve)) {
        eprintln!("dashoffice-relay: {e:#}");
        std::process::exit(1);
    }
}

fn identity(s: &Settings) -> anyhow::Result<Identity> {
    match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => Ok(Identity::load(c, k)?),
        _ => {
            let (id, created) = Identity::load_or_create(&s.data_dir, "relay", &[tls::RELAY_NAME, "localhost"])?;
            if created {
                tracing::info!("first run: created a self-signed relay certificate");
            }
            Ok(id)
        }
    }
}

/// The admin token's hash: from the settings, or from `<data_dir>/admin-token` (created once).
fn admin_hash(s: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(t) = &s.admin_token {
        if t.len() < 16 {
            bail!("admin_token must be at least 16 characters");
        }
        return Ok(Sha256::digest(t.as_bytes()).to_vec());
    }
    let path = s.data_dir.join("admin-token");
    if !path.exists() {
        let token = enrol::new_token();
        write_secret(&path, &token)?;
        println!("First run: the admin token for the relay's API is in {}", path.display());
    }
    let t = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(t.trim().as_bytes()).to_vec())
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    dashoffice_core::files::write_private(path, text.as_bytes()).with_context(|| format!("creating {}", path.display()))
}

fn run(s: Settings, command: Command) -> anyhow::Result<()> {
    dashoffice_core::files::create_private_dir(&s.data_dir)
        .with_context(|| format!("creating {}", s.data_dir.display()))?;
    let store: Arc<dyn RelayStore> = Arc::new(
        SqliteStore::open(&s.data_dir).with_context(|| format!("opening the store in {}", s.data_dir.display()))?,
    );
    match command {
        Command::Serve => {
            let _lock = dashoffice_relay::lock_data_dir(&s.data_dir, "another dashoffice-relay is serving")?;
            serve(s, store)
        }
        Command::Reindex { shop } => {
            let _lock = dashoffice_relay::lock_data_dir(&s.data_dir, "a dashoffice-relay is serving")?;
            reindex(&s.data_dir.join("shops"), shop.as_deref())
        }
        Command::EnrolCode { shop, branch, note, ttl_hours } => {
            http::check_id("--shop", &shop).map_err(anyhow::Error::msg)?;
            if let Some(b) = &branch {
                http::check_id("--branch", b).map_err(anyhow::Error::msg)?;
            }
            if !(1..=720).contains(&ttl_hours) {
                bail!("--ttl-hours must be between 1 and 720");
            }
            let (code, expires) = enrol::create_code(store.as_ref(), &shop, branch.as_deref(), &note, ttl_hours)?;
            println!("{code}");
            eprintln!(
                "one-time enrolment code for shop {shop}{}; valid until {} (Unix ms)",
                branch.map(|b| format!(", branch {b}")).unwrap_or_else(|| " (whole shop)".into()),
                expires
            );
            Ok(())
        }
        Command::Devices => {
            println!("{}", serde_json::to_string_pretty(&store.devices()?)?);
            Ok(())
        }
        Command::Revoke { device } => {
            if store.revoke(&device, hub::now_ms())? {
                println!("revoked {device}; a running relay disconnects it within 2 seconds");
                Ok(())
            } else {
                bail!("no device {device}")
            }
        }
        Command::Fingerprint => {
            println!("{}", identity(&s)?.fingerprint());
            Ok(())
        }
        Command::WhatsappNumber { phone_number_id, shop, branch, display_number } => {
            let token = match std::env::var("DASHOFFICE_WHATSAPP_ACCESS_TOKEN") {
                Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
                // A person typing it: no echo, so it stays off the screen and out of recordings.
                _ if std::io::stdin().is_terminal() => {
                    rpassword::prompt_password("WhatsApp access token (not shown): ")?.trim().to_string()
                }
                _ => {
                    eprintln!("reading the access token from standard input…");
                    let mut t = String::new();
                    std::io::stdin().read_line(&mut t)?;
                    t.trim().to_string()
                }
            };
            let req = serde_json::json!({ "phone_number_id": phone_number_id, "shop_id": shop, "branch_id": branch,
                "access_token": token, "display_number": display_number });
            let req: wa::api::PutNumber = serde_json::from_value(req)?;
            wa::api::validate(&req).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            let store = wa::store::WaStore::open(&s.data_dir)?;
            store.put_number(&req.into_number())?;
            println!(
                "connected WhatsApp number {phone_number_id} to shop {shop}; a running relay picks it up with the next webhook"
            );
            Ok(())
        }
        Command::WhatsappNumbers => {
            let store = wa::store::WaStore::open(&s.data_dir)?;
            println!("{}", serde_json::to_string_pretty(&store.numbers()?)?);
            Ok(())
        }
    }
}

/// Rebuilds the projection of each shop's service replica under `shops` (or only `only`'s).
fn reindex(shops: &Path, only: Option<&str>) -> anyhow::Result<()> {
    let mut list = Vec::new();
    if let Some(shop) = only {
        http::check_id("--shop", shop).map_err(anyhow::Error::msg)?;
        if !shops.join(shop).join(dashoffice_core::backup::DB_FILE).is_file() {
            bail!(
                "--shop: this relay has no replica of shop {shop} (it makes one when the shop's first WhatsApp number or head-office login needs it)"
            );
        }
        list.push(shop.to_string());
    } else if shops.is_dir() {
        for e in std::fs::read_dir(shops).with_context(|| format!("listing {}", shops.display()))? {
            let e = e?;
            if e.path().join(dashoffice_core::backup::DB_FILE).is_file() {
                list.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        list.sort();
    }
    if list.is_empty() {
        println!("this relay serves no shop yet: nothing to reindex");
        return Ok(());
    }
    for shop in list {
        let dir = shops.join(&shop);
        let replica = dashoffice_core::Replica::open(
            &dir,
            dashoffice_core::OpenOptions { search_on_demand: true, ..Default::default() },
        )
        .with_context(|| format!("opening the replica of shop {shop} in {}", dir.display()))?;
        let label = shop.clone();
        let records = replica.reindex(move |done, total| {
            if done == total || done % 64 == 0 {
                eprintln!("reindex {label}: {done}/{total} documents");
            }
        });
        replica.shutdown();
        println!("reindexed {} records of shop {shop}", records.with_context(|| format!("reindexing shop {shop}"))?);
    }
    Ok(())
}

fn llm_config(s: &Settings) -> Option<wa::llm::LlmConfig> {
    let provider = match s.llm_provider.as_str() {
        "openai" => wa::llm::Provider::OpenAi,
        "anthropic" => wa::llm::Provider::Anthropic,
        _ => return None,
    };
    let base = s.llm_base.clone().unwrap_or_else(|| match provider {
        wa::llm::Provider::OpenAi => "https://api.openai.com/v1".into(),
        wa::llm::Provider::Anthropic => "https://api.anthropic.com".into(),
    });
    let model = s.llm_model.clone().unwrap_or_else(|| match provider {
        wa::llm::Provider::OpenAi => "gpt-4o-mini".into(),
        wa::llm::Provider::Anthropic => "claude-3-5-haiku-latest".into(),
    });
    Some(wa::llm::LlmConfig {
        provider,
        base,
        model,
        key: s.llm_api_key.clone().unwrap_or_default(),
        timeout: Duration::from_millis(s.llm_timeout_ms),
    })
}

fn serve(s: Settings, store: Arc<dyn RelayStore>) -> anyhow::Result<()> {
    let identity = identity(&s)?;
    let admin_hash = admin_hash(&s)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let quic = relay_quic_runtime()?;
    rt.block_on(async move {
        let server_cfg = tls::server_config(&identity, Duration::from_millis(s.idle_timeout_ms))?;
        let endpoint = {
            // The endpoint's driver and its socket belong to the QUIC runtime.
            let _quic = quic.enter();
            let socket = std::net::UdpSocket::bind(s.quic_listen)
                .with_context(|| format!("listening for QUIC on {}", s.quic_listen))?;
            quinn::Endpoint::new(quic::endpoint_config(&s.data_dir)?, Some(server_cfg), socket, Arc::new(quinn::TokioRuntime))
                .with_context(|| format!("listening for QUIC on {}", s.quic_listen))?
        };
        let quic_addr = endpoint.local_addr()?;
        let listener =
            tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("listening on {}", s.listen))?;
        let http_addr = listener.local_addr()?;
        let peer_id = format!("relay-{}", &identity.fingerprint()[..16]);
        let hub = hub::Hub::new(store, peer_id);
        let mail = match &s.smtp_url {
            Some(url) => Some(
                mail::Mailer::new(&mail::MailConfig {
                    url: url.clone(),
                    from: s.smtp_from.clone().unwrap_or_default(),
                    timeout: Duration::from_millis(s.smtp_timeout_ms),
                })
                .context("the e-mail settings")?,
            ),
            None => {
                tracing::info!("no SMTP server configured (DASHOFFICE_SMTP_URL): e-mails of order documents wait until one is");
                None
            }
        };
        let sends_mail = mail.is_some();
        let whatsapp = wa::WhatsApp::start(
            wa::WaConfig {
                app_secret: s.whatsapp_app_secret.clone(),
                verify_token: s.whatsapp_verify_token.clone(),
                api_base: s.whatsapp_api_base.clone(),
                api_version: s.whatsapp_api_version.clone(),
                rate_per_number: s.whatsapp_rate_per_number,
                rate_per_customer: s.whatsapp_rate_per_customer,
                timeout: Duration::from_millis(s.whatsapp_timeout_ms),
                event_retention: (s.whatsapp_event_retention_days > 0)
                    .then(|| Duration::from_secs(u64::from(s.whatsapp_event_retention_days) * 86_400)),
            },
            wa::store::WaStore::open(&s.data_dir)?,
            hub.clone(),
            wa::SelfLink {
                fingerprint: identity.fingerprint(),
                local: quic::local_link(hub.clone()),
                dir: s.data_dir.join("shops"),
            },
            llm_config(&s),
            mail,
        )?;
        if s.whatsapp_app_secret.is_none() {
            tracing::warn!("no WhatsApp app secret configured: POST /webhooks/whatsapp answers 503 (set DASHOFFICE_WHATSAPP_APP_SECRET)");
        }
        // Head office and e-mail both need every shop's service replica running.
        if s.head_office || sends_mail {
            tokio::spawn(console::Console::new(whatsapp.clone()).keep_shops_served(hub.clone()));
        }
        let console = s.head_office.then(|| console::Console::new(whatsapp.clone()));
        let state = http::RelayState {
            hub: hub.clone(),
            admin_hash: Arc::new(admin_hash),
            metrics: dashoffice_api::metrics_handle(),
            wa: whatsapp,
            console,
            fingerprint: Arc::new(identity.fingerprint()),
        };
        quic.spawn(quic::accept_loop(endpoint.clone(), hub.clone(), tokio::runtime::Handle::current()));
        tokio::spawn(housekeeping(hub.clone()));
        println!("relay certificate fingerprint: {}", identity.fingerprint());
        println!("dashoffice-relay listening on http://{http_addr} (QUIC on {quic_addr})");
        tracing::info!(http = %http_addr, quic = %quic_addr, "relay started");
        axum::serve(listener, http::router(state)).with_graceful_shutdown(dashoffice_api::shutdown_signal()).await?;
        endpoint.close(0u32.into(), b"relay shutting down");
        endpoint.wait_idle().await;
        tracing::info!("relay stopped");
        anyhow::Ok(())
    })
}

/// A single-threaded runtime on its own thread for the QUIC endpoint and its connections' drivers.
/// A thousand idle replicas each send a keep-alive every 15 s; on the multi-threaded runtime every
/// such packet woke one worker to hand the connection's task to the other (the idle relay's
/// profile was three quarters kernel scheduling). Here a packet is read, answered and its timers
/// set on one thread. The sync sessions, which do the work, stay on the multi-threaded runtime.
fn relay_quic_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("relay-quic".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .context("starting the QUIC thread")?;
    Ok(handle)
}

/// Disconnects devices revoked from the command line, and drops idle documents from memory.
async fn housekeeping(hub: Arc<hub::Hub>) {
    let mut since = hub::now_ms();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let from = since - 5_000;
        since = hub::now_ms();
        if let Ok(ids) = hub.blocking(move |st| st.revoked_since(from)).await {
            for id in ids {
                hub.kick(&id, "this device was revoked");
            }
        }
        if n.is_multiple_of(15) {
            hub.evict_idle(Duration::from_secs(120));
        }
    }
}
