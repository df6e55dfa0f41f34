//! The replica: one SQLite file in a data folder, a writer thread, a pool of readers, and the
//! operations hosts call. Hosts (edge node, desktop app, relay) own a `Replica` and share nothing else.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use dashoffice_domain::api::{CreateBranch, CreateStaff};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Caller, Clock, SystemClock,
    backup::DB_FILE,
    db::{self, Durability, ReadPool},
    doc::{self, DocId},
    entities::{self, org, staff},
    error::{CoreError, Result},
    projection,
    writer::{Device, FeedSlot, Job, WriteCtx, WriterThread, all_doc_ids},
};

/// How to open a replica.
#[derive(Clone)]
pub struct OpenOptions {
    /// Commit durability.
    pub durability: Durability,
    /// Read connections.
    pub readers: usize,
    /// The clock of every write.
    pub clock: Arc<dyn Clock>,
    /// Keep a full-text search index (`search/` beside the database) for [`Replica::search`].
    pub search: bool,
    /// With `search`: open the index at the first search or catalog lookup instead of at open.
    /// Until then no index writer, indexing threads or index files take memory. For the
    /// relay's service replicas, one per shop, which head office may never search.
    pub search_on_demand: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            readers: 4,
            clock: Arc::new(SystemClock),
            search: true,
            search_on_demand: false,
        }
    }
}

/// What the first start created.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The shop's id.
    pub shop_id: String,
    /// The branch's id.
    pub branch_id: String,
    /// The owner's e-mail.
    pub owner_email: String,
}

/// Input of the first start.
#[derive(Clone)]
pub struct BootstrapInput {
    /// Shop name.
    pub shop_name: String,
    /// Default currency.
    pub currency: String,
    /// Region for national phone numbers.
    pub phone_region: String,
    /// IANA time zone.
    pub timezone: String,
    /// First branch code.
    pub branch_code: String,
    /// First branch name.
    pub branch_name: String,
    /// Owner name.
    pub owner_name: String,
    /// Owner e-mail.
    pub owner_email: String,
    /// Owner password.
    pub owner_password: String,
}

impl BootstrapInput {
    /// A sample shop in Mexico City with one branch and its owner, for tests and examples.
    pub fn example() -> Self {
        Self {
            shop_name: "Tienda".into(),
            currency: "MXN".into(),
            phone_region: "MX".into(),
            timezone: "America/Mexico_City".into(),
            branch_code: "CEN".into(),
            branch_name: "Centro".into(),
            owner_name: "Ana".into(),
            owner_email: "ana@tienda.mx".into(),
            owner_password: "contraseña-segura".into(),
        }
    }
}

impl std::fmt::Debug for BootstrapInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapInput")
            .field("shop_name", &self.shop_name)
            .field("branch_code", &self.branch_code)
            .field("owner_email", &self.owner_email)
            .field("owner_password", &dashoffice_domain::api::REDACTED)
            .finish_non_exhaustive()
    }
}

/// Sizes and queue figures for metrics.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Writes waiting for the writer.
    pub write_queue: usize,
    /// Bytes of the database file.
    pub db_bytes: u64,
    /// Bytes of the write-ahead log.
    pub wal_bytes: u64,
}

struct Inner {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    depth: Arc<AtomicUsize>,
    readers: ReadPool,
    device: Device,
    db_path: PathBuf,
    clock: Arc<dyn Clock>,
    thread: Mutex<Option<JoinHandle<()>>>,
    changed: tokio::sync::broadcast::Sender<Arc<[DocId]>>,
    heads: crate::writer::HeadsCache,
    /// The search index, or why there is none; unset while an index opened on demand is not.
    search: OnceLock<std::result::Result<Arc<crate::search::Search>, String>>,
    /// The folder of a search index opened on demand (None: opened at start, or off).
    search_on_demand: Option<PathBuf>,
    /// The index's feed, shared with the writer: it sends each batch's records, and
    /// [`Replica::reindex`] a rebuild; emptied at shutdown.
    search_feed: FeedSlot,
}

/// A replica of one shop's data. Cheap to clone.
#[derive(Clone)]
pub struct Replica(Arc<Inner>);

/// Opens the search index in `dir` and hands its feed to the writer (through `slot`).
fn open_search(dir: &Path, db_path: &Path, slot: &FeedSlot) -> std::result::Result<Arc<crate::search::Search>, String> {
    crate::search::Search::start(dir, db_path, |feed| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(feed))
        .map_err(|e| {
            tracing::warn!(error = %e, "search is unavailable on this replica");
            "the search index could not be opened (the replica's log says why)".to_string()
        })
}

fn random_code() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    rand::random::<[u8; 6]>().iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect()
}

impl Replica {
    /// Opens (creating if needed) the replica in `dir`.
    pub fn open(dir: &Path, opts: OpenOptions) -> Result<Self> {
        crate::files::create_private_dir(dir)
            .map_err(|e| CoreError::Storage(format!("creating {}: {e}", dir.display())))?;
        let db_path = dir.join(DB_FILE);
        let conn = db::open_writer(&db_path, opts.durability)?;
        let device = match conn
            .query_row("SELECT actor, code FROM device WHERE id = 1", [], |r| {
                Ok(Device { actor: r.get(0)?, code: r.get(1)? })
            })
            .optional()?
        {
            Some(d) => d,
            None => {
                let d = Device { actor: uuid::Uuid::new_v4().as_bytes().to_vec(), code: random_code() };
                conn.execute(
                    "INSERT INTO device(id, actor, code, created_at) VALUES (1, ?1, ?2, ?3)",
                    params![d.actor, d.code, opts.clock.now_ms()],
                )?;
                d
            }
        };
        let readers = ReadPool::open(&db_path, opts.readers)?;
        let search_feed: FeedSlot = Arc::default();
        let search = OnceLock::new();
        if !opts.search {
            let _ = search.set(Err("search is switched off on this replica".to_string()));
        } else if !opts.search_on_demand {
            let _ = search.set(open_search(dir, &db_path, &search_feed));
        }
        let (tx, rx) = mpsc::channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        let heads = crate::writer::HeadsCache::default();
        let w = WriterThread {
            conn,
            device: device.clone(),
            clock: opts.clock.clone(),
            rx,
            depth: depth.clone(),
            changed: changed.clone(),
            heads: heads.clone(),
            search: search_feed.clone(),
            searched: opts.search,
        };
        let thread = std::thread::Builder::new()
            .name("dashoffice-writer".into())
            .spawn(move || w.run())
            .map_err(|e| CoreError::Storage(format!("starting the writer: {e}")))?;
        let replica = Self(Arc::new(Inner {
            tx: Mutex::new(Some(tx)),
            depth,
            readers,
            device,
            db_path,
            clock: opts.clock,
            thread: Mutex::new(Some(thread)),
            changed,
            heads,
            search,
            search_on_demand: (opts.search && opts.search_on_demand).then(|| dir.to_path_buf()),
            search_feed,
        }));
        replica.start_invoicing();
        Ok(replica)
    }

    /// Watches the changes for invoices this replica numbers (it is their branch's `invoicer`)
    /// and gives them their legal numbers: at start (issued before a restart, or received while
    /// it was down) and after every write or sync that touches orders or branches. The thread
    /// ends with the replica.
    fn start_invoicing(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = self.subscribe();
        let weak = Arc::downgrade(&self.0);
        let spawned = std::thread::Builder::new().name("dashoffice-invoicing".into()).spawn(move || {
            let mut due = true;
            loop {
                if due {
                    let Some(inner) = weak.upgrade() else { return };
                    Replica(inner).post_pending_invoices();
                }
                due = match rx.blocking_recv() {
                    Ok(ids) => ids.iter().any(|id| {
                        matches!(id.scope().map(|s| s.collection), Ok(doc::Collection::Orders | doc::Collection::Org))
                    }),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                };
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "invoices issued here will not get their legal numbers: no thread for it");
        }
    }

    /// Numbers the invoices waiting for this replica, in batches.
    fn post_pending_invoices(&self) {
        const BATCH: usize = 256;
        loop {
            match self.read(entities::orders::invoices_to_post) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the invoices to number");
                    return;
                }
            }
            match self.write_blocking(|ctx| entities::orders::post_invoices(ctx, BATCH)) {
                Ok(n) if n == BATCH => {}
                Ok(_) | Err(CoreError::ShuttingDown) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "giving invoices their legal numbers (tried again at the next change)");
                    return;
                }
            }
        }
    }

    fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
        done: impl FnOnce(Result<R>) + Send + 'static,
    ) {
        let job: Job = Box::new(move |ctx| {
            let r = match ctx {
                // A bug that panics in one write must not take the writer thread (and with it
                // every later write) down: the write fails and is undone like any failed write
                // (its savepoint rolled back, its documents reloaded).
                Some(ctx) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx))).unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(CoreError::Storage(format!("a write failed unexpectedly (panic: {what})")))
                }),
                None => Err(CoreError::ShuttingDown),
            };
            let ok = r.is_ok();
            (
                ok,
                Box::new(move |err: Option<CoreError>| {
                    done(match err {
                        Some(e) => Err(e),
                        None => r,
                    })
                }),
            )
        });
        let sender = self.0.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(s) => {
                self.0.depth.fetch_add(1, Ordering::Relaxed);
                if let Err(mpsc::SendError(job)) = s.send(job) {
                    self.0.depth.fetch_sub(1, Ordering::Relaxed);
                    drop(job);
                }
            }
            None => drop(job),
        }
    }

    /// Runs a write on the writer thread; resolves once it is durable (or failed).
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or(Err(CoreError::ShuttingDown))
    }

    /// [`Self::write`] for threads outside an async runtime (CLI, tests).
    pub fn write_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(CoreError::ShuttingDown))
    }

    /// Documents changed by each committed write batch, local or remote. A receiver that falls
    /// behind gets `Lagged` and should treat every document as changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<[DocId]>> {
        self.0.changed.subscribe()
    }

    /// Runs a read on a read-only connection (blocking: call from a blocking thread).
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.0.readers.with(f)
    }

    /// This replica's identity.
    pub fn device(&self) -> &Device {
        &self.0.device
    }

    /// Unix ms on the replica's clock.
    pub fn now_ms(&self) -> i64 {
        self.0.clock.now_ms()
    }

    /// Queue depth and file sizes.
    pub fn stats(&self) -> Stats {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.0.db_path.clone().into_os_string();
        wal.push("-wal");
        Stats {
            write_queue: self.0.depth.load(Ordering::Relaxed),
            db_bytes: size(&self.0.db_path),
            wal_bytes: size(Path::new(&wal)),
        }
    }

    /// Stops accepting writes, lets the writer finish what is queued, and waits for it.
    pub fn shutdown(&self) {
        self.0.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        // No index opens from now on.
        let search = self.0.search.get_or_init(|| Err("the replica is shutting down".to_string()));
        if let Ok(s) = search {
            s.stop();
        }
        if let Some(t) = self.0.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        // The feed ends with the writer: the indexer finishes what it holds.
        self.0.search_feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Ok(s) = search {
            s.join();
        }
    }

    /// The search index, opened now if it opens on demand (blocking: opening reads its files).
    fn search_index(&self) -> std::result::Result<&Arc<crate::search::Search>, &String> {
        self.0
            .search
            .get_or_init(|| match &self.0.search_on_demand {
                Some(dir) => {
                    tracing::info!("opening the search index on first use");
                    open_search(dir, &self.0.db_path, &self.0.search_feed)
                }
                None => Err("search is switched off on this replica".to_string()),
            })
            .as_ref()
    }

    /// Full-text search over products, customers, orders and WhatsApp messages, as `caller`
    /// may see them (blocking: call from a blocking thread). See [`crate::search`].
    pub fn search(
        &self,
        caller: &Caller,
        p: &dashoffice_domain::api::SearchParams,
    ) -> Result<dashoffice_domain::api::SearchResults> {
        let search = self.search_index().map_err(|why| CoreError::Unavailable(why.clone()))?;
        self.read(|conn| search.search(conn, caller, p))
    }

    /// Ids of the shop's products the search index names for the bot's `tokens` (see
    /// [`crate::bot::decide_with`]); None when there is no index or it may miss a product change.
    pub fn catalog_candidates(&self, shop: &str, tokens: &[String]) -> Option<Vec<String>> {
        self.search_index().ok()?.product_ids(shop, tokens)
    }

    /// Whether the search index is still catching up with recent changes.
    pub fn search_indexing(&self) -> bool {
        // An index not opened yet is not behind: it catches up when it opens.
        matches!(self.0.search.get(), Some(Ok(s)) if s.busy())
    }

    /// Writes a consistent copy of this replica's database to the new file `dest` (0600) while
    /// it keeps serving; see [`crate::backup`].
    pub fn backup(&self, dest: &Path) -> Result<crate::backup::BackupInfo> {
        crate::backup::backup_db(&self.0.db_path, dest)
    }

    /// The folder that holds this replica's database.
    pub fn data_dir(&self) -> &Path {
        self.0.db_path.parent().unwrap_or(Path::new("."))
    }

    /// The shop this replica belongs to, once bootstrapped or synced.
    pub fn shop_id(&self) -> Result<Option<String>> {
        self.read(|c| entities::setting(c, "shop_id"))
    }

    /// The branch this replica serves by default.
    pub fn home_branch(&self) -> Result<Option<String>> {
        self.read(|c| entities::setting(c, "home_branch"))
    }

    /// Makes this replica one of `shop`'s, serving `branch` (a replica that joins by sync).
    pub fn join(&self, shop: &str, branch: &str) -> Result<()> {
        let (shop, branch) = (shop.to_string(), branch.to_string());
        self.write_blocking(move |ctx| {
            entities::set_setting(ctx.conn(), "shop_id", &shop)?;
            entities::set_setting(ctx.conn(), "home_branch", &branch)
        })
    }

    /// Creates the shop, its first branch and its owner, unless the replica already has a shop.
    pub fn bootstrap(&self, input: BootstrapInput) -> Result<Option<Bootstrap>> {
        self.write_blocking(move |ctx| {
            if entities::setting(ctx.conn(), "shop_id")?.is_some() {
                return Ok(None);
            }
            let shop = org::create_shop(ctx, &input.shop_name, &input.currency, &input.phone_region, &input.timezone)?;
            let branch = org::create_branch(
                ctx,
                None,
                &shop,
                CreateBranch { code: input.branch_code.clone(), name: input.branch_name.clone(), ..Default::default() },
            )?;
            let owner = staff::create(
                ctx,
                None,
                &shop,
                CreateStaff {
                    name: input.owner_name.clone(),
                    email: input.owner_email.clone(),
                    role: dashoffice_domain::Role::Owner,
                    branch_id: None,
                    password: input.owner_password.clone(),
                },
            )?;
            entities::set_setting(ctx.conn(), "shop_id", &shop)?;
            entities::set_setting(ctx.conn(), "home_branch", &branch.id)?;
            Ok(Some(Bootstrap { shop_id: shop, branch_id: branch.id, owner_email: owner.email }))
        })
    }

    /// Rebuilds the whole projection from the documents; `progress(done, total)` after each document.
    pub fn reindex(&self, progress: impl Fn(usize, usize) + Send + 'static) -> Result<usize> {
        self.write_blocking(move |ctx| {
            let ids = all_doc_ids(ctx.conn())?;
            projection::clear(ctx.conn())?;
            let total = ids.len();
            let mut records = 0;
            for (i, id) in ids.iter().enumerate() {
                let d = ctx.doc(id)?.clone();
                records += projection::project_all(ctx.conn(), id, &d)?;
                progress(i + 1, total);
            }
            Ok(records)
        })
        .inspect(|_| {
            if let Some(feed) = self.0.search_feed.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                feed.send(crate::search::Feed::All);
            }
        })
    }

    /// The caller behind a session token.
    pub fn authenticate(&self, token: &str) -> Result<(Caller, i64)> {
        let now = self.now_ms();
        self.read(|c| staff::session_caller(c, token, now))
    }

    /// Ids of every stored document.
    pub fn doc_ids(&self) -> Result<Vec<DocId>> {
        self.read(all_doc_ids)
    }

    /// The committed heads of `id` as the writer last left it, if it holds the document.
    pub(crate) fn cached_heads(&self, id: &DocId) -> Option<Vec<automerge::ChangeHash>> {
        self.0.heads.get(id)
    }

    /// Loads a document as stored (for sync and tests).
    pub fn load_doc(&self, id: &DocId) -> Result<Option<automerge::Automerge>> {
        let collection = id.scope()?.collection;
        self.read(|c| doc::load(c, id, collection))
    }
}
