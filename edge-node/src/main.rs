//! dashoffice-edge: a branch office's replica. Serves the local JSON API (and later the web UI),
//! keeps working with no internet, and offers maintenance commands (reindex, CSV import/export).

mod settings;

/// Every allocation of the process, Rust's and the bundled SQLite's (jemalloc built unprefixed
/// replaces malloc itself): glibc's malloc took a quarter of a sync writer's time.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::{
    fs::File,
    io::{BufReader, IsTerminal, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use dashoffice_api::{AppState, metrics_handle};
use dashoffice_core::{BootstrapInput, Caller, OpenOptions, Replica, csv_io};
use dashoffice_domain::Role;

use settings::{Cli, Settings};

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Rebuild the SQL projection from the documents, with progress.
    Reindex,
    /// Import products from a CSV file (sku,name,description,price,currency,tax_rate,active,tags).
    ImportProducts {
        /// The CSV file.
        file: PathBuf,
        /// `all`: import nothing unless every row is valid; `valid`: import the valid rows.
        #[arg(long, default_value = "all")]
        mode: String,
    },
    /// Import customers from a CSV file (name,phone,email,tags,notes,wa_id,tax_id,address).
    ImportCustomers {
        /// The CSV file.
        file: PathBuf,
        /// `all` or `valid`.
        #[arg(long, default_value = "all")]
        mode: String,
    },
    /// Export products as CSV to a file (or standard output).
    ExportProducts {
        /// Output file; standard output if absent.
        file: Option<PathBuf>,
    },
    /// Export customers as CSV to a file (or standard output).
    ExportCustomers {
        /// Output file; standard output if absent.
        file: Option<PathBuf>,
    },
    /// Write a consistent copy of the database to a new file, readable by this user only. Safe
    /// while the node runs.
    Backup {
        /// The backup file to create (it must not exist).
        file: PathBuf,
    },
    /// Restore a backup into the data folder as a new device (stop the node first). With a relay,
    /// the node then enrols again with a new code and receives what the backup missed.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Set the data folder's current database aside (renamed, not deleted) instead of refusing.
        #[arg(long)]
        replace: bool,
    },
}

/// Command line of the edge node.
#[derive(Parser, Debug)]
#[command(
    name = "dashoffice-edge",
    version,
    about = "DashOffice edge node: a branch office's offline-first replica and local API."
)]
struct Args {
    #[command(flatten)]
    cli: Cli,
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() {
    let args = Args::parse();
    if args.cli.print_default_config {
        print!("{}", settings::DEFAULT_CONFIG);
        return;
    }
    let settings = match Settings::load(&args.cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dashoffice-edge: configuration error: {e:#}");
            std::process::exit(2);
        }
    };
    init_logging(&settings);
    let result = match args.command.unwrap_or(Command::Serve) {
        // Neither opens the replica: a backup runs beside a serving node, a restore replaces the
        // database before anything opens it.
        Command::Backup { file } => backup(&settings, &file),
        Command::Restore { file, replace } => restore(&settings, &file, replace),
        command => run(settings, command),
    };
    if let Err(e) = result {
        eprintln!("dashoffice-edge: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(s: &Settings) {
    let filter = dashoffice_api::log_filter();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if s.log_format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

/// Holds the data folder's lock: one process at a time owns a replica.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    dashoffice_core::files::create_private_dir(dir)
        .with_context(|| format!("creating the data folder {}", dir.display()))?;
    let path = dir.join("dashoffice.lock");
    dashoffice_core::files::lock(&path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_context(|| format!("another dashoffice-edge is using {} (stop it, or use its API)", dir.display()))
}

/// `search`: keep the search index (the server); one-shot commands leave it to the next start,
/// which catches it up, so they never wait for it.
fn open(s: &Settings, search: bool) -> anyhow::Result<(Replica, File)> {
    let lock = lock_data_dir(&s.data_dir)?;
    let opts = OpenOptions { durability: s.durability(), readers: s.readers, search, ..Default::default() };
    let replica =
        Replica::open(&s.data_dir, opts).with_context(|| format!("opening the replica in {}", s.data_dir.display()))?;
    Ok((replica, lock))
}

/// Where the first run keeps the owner's generated password (in the data folder).
const INITIAL_PASSWORD_FILE: &str = "initial-owner-password";

fn bootstrap(replica: &Replica, s: &Settings) -> anyhow::Result<()> {
    if replica.shop_id()?.is_some() {
        return Ok(());
    }
    let (password, generated) = match &s.owner_password {
        Some(p) => (p.expose().to_string(), false),
        None => {
            const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            (
                rand::random::<[u8; 16]>().iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect(),
                true,
            )
        }
    };
    // A generated password is never logged: it is kept in a file only this user can read,
    // written before the shop exists (so no shop is ever made whose owner's password is lost),
    // and shown on a terminal only (under systemd, standard output goes to the journal).
    let path = s.data_dir.join(INITIAL_PASSWORD_FILE);
    if generated {
        // Left by a first run that stopped before it made the shop.
        let _ = std::fs::remove_file(&path);
        dashoffice_core::files::write_private(&path, format!("{password}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let input = BootstrapInput {
        shop_name: s.shop_name.clone(),
        currency: s.currency.clone(),
        phone_region: s.phone_region.clone(),
        timezone: s.timezone.clone(),
        branch_code: s.branch_code.clone(),
        branch_name: s.branch_name.clone(),
        owner_name: s.owner_name.clone(),
        owner_email: s.owner_email.clone(),
        owner_password: password.clone(),
    };
    let Some(b) = replica.bootstrap(input).context("creating the shop on first run")? else { return Ok(()) };
    tracing::info!(shop = %b.shop_id, branch = %b.branch_id, owner = %b.owner_email, "first run: created the shop, its first branch and the owner account");
    if generated {
        if std::io::stdout().is_terminal() {
            println!("First run: owner account {} with password {password}", b.owner_email);
        }
        println!(
            "First run: owner account {}; its password is in {} (readable by this user only). Change it after logging in, then delete that file.",
            b.owner_email,
            path.display()
        );
    }
    Ok(())
}

fn backup(s: &Settings, file: &Path) -> anyhow::Result<()> {
    let info = dashoffice_core::backup::backup(&s.data_dir, file)?;
    println!(
        "backed up {} documents of shop {} to {} ({} bytes, readable by this user only)",
        info.documents,
        info.shop_id.as_deref().unwrap_or("(none yet)"),
        file.display(),
        info.bytes
    );
    Ok(())
}

fn restore(s: &Settings, file: &Path, replace: bool) -> anyhow::Result<()> {
    // Held throughout: a running node would keep writing to the database being replaced.
    let _lock = lock_data_dir(&s.data_dir)?;
    let restored = dashoffice_core::backup::restore(file, &s.data_dir, replace)?;
    let identity = dashoffice_sync::set_aside_identity(&s.data_dir, &restored.suffix)
        .with_context(|| format!("setting aside the relay identity in {}", s.data_dir.display()))?;
    println!(
        "restored {} documents of shop {} into {} as a new device",
        restored.info.documents,
        restored.info.shop_id.as_deref().unwrap_or("(none)"),
        s.data_dir.display()
    );
    for p in restored.set_aside.iter().chain(&identity) {
        println!("kept the previous {}", p.display());
    }
    if !identity.is_empty() || s.relay.is_some() {
        println!(
            "next: have the owner make a new enrolment code (and revoke the old device), set it as enrolment_code, then start the node; it receives from the relay everything the backup missed"
        );
    }
    Ok(())
}

fn system_caller(replica: &Replica) -> anyhow::Result<Caller> {
    let shop = replica.shop_id()?.context("this data folder has no shop yet: start the edge node once first")?;
    Ok(Caller { user_id: "system".into(), shop_id: shop, role: Role::Owner, branch_id: None })
}

fn run(s: Settings, command: Command) -> anyhow::Result<()> {
    let (replica, _lock) = open(&s, matches!(command, Command::Serve))?;
    // A node given an enrolment code and no shop of its own joins the code's shop by sync.
    let joining = s.relay.is_some()
        && (s.enrolment_code.is_some() || dashoffice_sync::Enrolment::load(&s.data_dir).is_some())
        && replica.shop_id()?.is_none();
    if joining {
        tracing::info!("no shop here yet: joining the shop of the enrolment code through the relay");
    } else {
        bootstrap(&replica, &s)?;
    }
    let result = match command {
        Command::Serve => serve(replica.clone(), &s),
        Command::Reindex => {
            let records = replica.reindex(|done, total| {
                if done == total || done % 16 == 0 {
                    eprintln!("reindex: {done}/{total} documents");
                }
            })?;
            println!("reindexed {records} records");
            Ok(())
        }
        Command::ImportProducts { file, mode } => import(&replica, &file, &mode, true),
        Command::ImportCustomers { file, mode } => import(&replica, &file, &mode, false),
        Command::ExportProducts { file } => export(&replica, file, true),
        Command::ExportCustomers { file } => export(&replica, file, false),
        // `main` runs these without opening the replica.
        Command::Backup { .. } | Command::Restore { .. } => Err(anyhow::anyhow!("backup and restore run on their own")),
    };
    replica.shutdown();
    result
}

fn import(replica: &Replica, file: &Path, mode: &str, products: bool) -> anyhow::Result<()> {
    let caller = system_caller(replica)?;
    let mode = csv_io::ImportMode::parse(mode).map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let progress: csv_io::Progress = Arc::new(|done, total| eprintln!("import: {done}/{total} rows written"));
    let reader = BufReader::new(f);
    let report = if products {
        csv_io::import_products(replica, &caller, reader, mode, progress)
    } else {
        csv_io::import_customers(replica, &caller, reader, mode, progress)
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    for e in &report.errors {
        eprintln!("{}:{}: {} — {}", file.display(), e.line, e.field, e.message);
    }
    println!(
        "{} rows read, {} created, {} updated, {} rejected{}",
        report.rows,
        report.created,
        report.updated,
        report.errors.len(),
        if report.committed { "" } else { "; nothing was imported (use --mode valid to import the good rows)" }
    );
    if !report.committed {
        std::process::exit(3);
    }
    Ok(())
}

fn export(replica: &Replica, file: Option<PathBuf>, products: bool) -> anyhow::Result<()> {
    let caller = system_caller(replica)?;
    let mut out: Box<dyn Write> = match &file {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let n = if products {
        csv_io::export_products(replica, &caller, &mut out)
    } else {
        csv_io::export_customers(replica, &caller, &mut out)
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    out.flush()?;
    eprintln!("exported {n} rows");
    Ok(())
}

/// Backs the replica up into `dir` every `every` (the first a minute after start, or sooner),
/// keeping `keep`. A failure is logged and counted, and the next attempt comes as scheduled.
async fn scheduled_backups(replica: Replica, dir: PathBuf, every: std::time::Duration, keep: usize) {
    let mut next = every.min(std::time::Duration::from_secs(60));
    loop {
        tokio::time::sleep(next).await;
        next = every;
        let (r, d) = (replica.clone(), dir.clone());
        match tokio::task::spawn_blocking(move || dashoffice_core::backup::scheduled(&r, &d, keep)).await {
            Ok(Ok((file, info))) => {
                metrics::gauge!("dashoffice_backup_last_success_timestamp_seconds")
                    .set(std::time::UNIX_EPOCH.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0));
                metrics::gauge!("dashoffice_backup_last_bytes").set(info.bytes as f64);
                tracing::info!(file = %file.display(), bytes = info.bytes, "scheduled backup written");
            }
            Ok(Err(e)) => {
                metrics::counter!("dashoffice_backup_failures_total").increment(1);
                tracing::error!(error = %e, dir = %dir.display(), "scheduled backup failed");
            }
            Err(_) => return,
        }
    }
}

fn serve(replica: Replica, s: &Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("listening on {}", s.listen))?;
        let addr = listener.local_addr()?;
        let mut state = AppState::new(replica.clone(), metrics_handle());
        let sync = match &s.relay {
            Some(relay) => {
                let cfg = dashoffice_sync::ClientConfig {
                    relay: relay.clone(),
                    trust: s.sync_trust()?,
                    data_dir: s.data_dir.clone(),
                    enrolment_code: s.enrolment_code.as_ref().map(|c| c.expose().to_string()),
                    device_name: s.device_name.clone().unwrap_or_else(|| format!("edge node {}", s.listen)),
                    idle_timeout: std::time::Duration::from_millis(s.sync_idle_timeout_ms),
                    local: None,
                    gather: std::time::Duration::ZERO,
                };
                let handle = dashoffice_sync::client::start(replica.clone(), cfg).context("starting sync")?;
                (state.sync_status, state.sync_reconnect) = handle.api_hooks();
                tracing::info!(%relay, "sync with the relay is on");
                Some(handle)
            }
            None => None,
        };
        if let Some(dir) = &s.backup_dir {
            let every = std::time::Duration::from_secs(s.backup_interval_s);
            tokio::spawn(scheduled_backups(replica.clone(), dir.clone(), every, s.backup_keep));
            tracing::info!(dir = %dir.display(), every_s = s.backup_interval_s, keep = s.backup_keep, "scheduled backups are on");
        }
        tracing::info!(%addr, data_dir = %s.data_dir.display(), device = %replica.device().code, "edge node ready");
        println!("dashoffice-edge listening on http://{addr}");
        let _ = std::io::stdout().flush();
        dashoffice_api::run(listener, state, dashoffice_api::shutdown_signal()).await.context("serving")?;
        if let Some(h) = sync {
            h.stop();
        }
        tracing::info!("shutting down: finishing queued writes");
        Ok(())
    })
}
