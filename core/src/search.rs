//! Full-text search (tantivy) over the projection: products, customers, orders, support tickets
//! and WhatsApp messages, for the search box of every page.
//!
//! The index is derived data, like the SQL projection it is built from, and lives in the
//! replica's folder (`search/`). The writer thread names the records each committed batch
//! projected; a thread of its own (`dashoffice-search`, at a background priority) re-reads those
//! rows from SQLite and updates the index once the writes pause (300 ms of quiet, at most 5 s
//! late), so a sync or an import never waits for it. At every start it reconciles the index with
//! SQLite (a digest of each record's indexed text), so a crash between the two commits, a deleted
//! index or a new layout heals by itself. Text is split on anything but letters and digits, lower-cased and
//! stripped of accents ("Café" is found by "cafe"); the words of a query must all match, each as
//! a prefix, longer ones with one typo allowed. Every hit is read back from SQLite and checked
//! against the caller's shop and branch before it is shown.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use dashoffice_domain::{
    FieldError,
    api::{SearchHit, SearchParams, SearchResults},
};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
    collector::TopDocs,
    directory::MmapDirectory,
    query::{BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery},
    schema::{Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value},
    tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer},
};

use crate::{
    caller::Caller,
    doc::Collection,
    error::{CoreError, Result},
};

/// The index's folder inside the replica's data folder.
pub(crate) const DIR: &str = "search";
/// Written beside the index; a different value (a new schema or new indexed fields) rebuilds it.
const LAYOUT: &str = "2";
const LAYOUT_FILE: &str = "dashoffice-layout";
const TOKENIZER: &str = "folded";
/// The index is updated once writes pause this long (no new records, no batch of the writer)…
const QUIET: Duration = Duration::from_millis(300);
/// …or this long after the first change waiting, whichever comes first.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// After a failed pass, the next full pass comes this long later (or with the next change).
const RETRY: Duration = Duration::from_secs(10);
/// Longest query accepted, in characters, and most words in it.
const MAX_QUERY: usize = 200;
const MAX_TERMS: usize = 12;

/// What can be searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Product,
    Customer,
    Order,
    Message,
    Ticket,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Product, Kind::Customer, Kind::Order, Kind::Message, Kind::Ticket];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Product => "product",
            Kind::Customer => "customer",
            Kind::Order => "order",
            Kind::Message => "message",
            Kind::Ticket => "ticket",
        }
    }

    /// Records come before messages that merely mention the same words.
    fn weight(self) -> f32 {
        match self {
            Kind::Message => 1.0,
            _ => 1.5,
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind whose records a collection's documents hold, when it is searched.
    pub(crate) fn of(c: Collection) -> Option<Kind> {
        match c {
            Collection::Products => Some(Kind::Product),
            Collection::Customers => Some(Kind::Customer),
            Collection::Orders => Some(Kind::Order),
            Collection::Tickets => Some(Kind::Ticket),
            Collection::Messages => Some(Kind::Message),
            _ => None,
        }
    }
}

/// What the writer tells the indexer.
pub(crate) enum Feed {
    /// Records projected by a committed batch (possibly more than changed: a record that was
    /// rolled back is simply read again).
    Records(Vec<(Kind, String)>),
    /// The whole projection was rebuilt.
    All,
}

/// The writer's end of the indexer's feed. Counts what it sends, so that the index says it is
/// behind from the moment a change is committed until it is searchable.
#[derive(Clone)]
pub(crate) struct Feeder {
    tx: mpsc::Sender<Feed>,
    pending: Arc<AtomicUsize>,
    /// Of those, the ones that name a product (or everything).
    products_pending: Arc<AtomicUsize>,
    warned: Arc<AtomicBool>,
    /// Batches the replica's writer started and finished (odd: one is running).
    writes: Arc<AtomicU64>,
}

impl Feed {
    fn names_products(&self) -> bool {
        match self {
            Feed::Records(r) => r.iter().any(|(k, _)| *k == Kind::Product),
            Feed::All => true,
        }
    }
}

impl Feeder {
    /// The writer starts or ends a batch (the indexer waits for the writes to pause).
    pub(crate) fn batch_edge(&self) {
        self.writes.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn send(&self, feed: Feed) {
        let products = feed.names_products();
        self.pending.fetch_add(1, Ordering::AcqRel);
        if products {
            self.products_pending.fetch_add(1, Ordering::AcqRel);
        }
        if self.tx.send(feed).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if products {
                self.products_pending.fetch_sub(1, Ordering::AcqRel);
            }
            if !self.warned.swap(true, Ordering::AcqRel) {
                tracing::error!("the search indexer has stopped: search falls behind until the next start");
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    kind: Field,
    shop: Field,
    branch: Field,
    digest: Field,
    text: Field,
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_text_field("key", STRING | STORED);
    b.add_text_field("kind", STRING);
    b.add_text_field("shop", STRING);
    b.add_text_field("branch", STRING);
    b.add_u64_field("digest", STORED);
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqs),
    );
    b.add_text_field("text", text);
    b.build()
}

fn fields(schema: &Schema) -> tantivy::Result<Fields> {
    Ok(Fields {
        key: schema.get_field("key")?,
        kind: schema.get_field("kind")?,
        shop: schema.get_field("shop")?,
        branch: schema.get_field("branch")?,
        digest: schema.get_field("digest")?,
        text: schema.get_field("text")?,
    })
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(60))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// `s` lower-cased and without accents, whole ("José Núñez" → "jose nunez"): what the lists'
/// text filters compare (SQL `fold(column) LIKE fold(pattern)`; see `db::register_functions`).
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    thread_local! {
        static WHOLE: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
            TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default())
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .build(),
        );
    }
    WHOLE.with(|a| {
        let mut a = a.borrow_mut();
        let mut stream = a.token_stream(s);
        if stream.advance() { stream.token().text.clone() } else { String::new() }
    })
}

/// The ASCII letter an accented letter folds to, case kept ('Ñ' → 'N'), by the same ASCII
/// folding as the index; None for anything but a letter, or one that does not fold to a single
/// character (punctuation such as '¿' or '—' keeps its own width in the PDF).
pub(crate) fn base_letter(c: char) -> Option<char> {
    if c.is_ascii() || !c.is_alphabetic() {
        return None;
    }
    thread_local! {
        static CASED: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
            TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default()).filter(AsciiFoldingFilter).build(),
        );
    }
    let mut buf = [0u8; 4];
    let folded = CASED.with(|a| {
        let mut a = a.borrow_mut();
        let mut stream = a.token_stream(c.encode_utf8(&mut buf));
        if stream.advance() { stream.token().text.clone() } else { String::new() }
    });
    let mut chars = folded.chars();
    match (chars.next(), chars.next()) {
        (Some(b), None) if b != c && b.is_ascii() => Some(b),
        _ => None,
    }
}

/// The words of `s` as the index holds them: split, lower-cased, without accents.
pub(crate) fn terms(s: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(s);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The search index of one replica; cheap to share.
pub(crate) struct Search {
    reader: IndexReader,
    f: Fields,
    /// Feed messages sent and not yet indexed.
    pending: Arc<AtomicUsize>,
    /// Of those, the ones that name a product: while there are none, the index holds the
    /// catalog as SQLite does (the bot's product lookup relies on it).
    products_pending: Arc<AtomicUsize>,
    /// Batches the replica's writer started and finished (odd: one is running; see
    /// [`Feeder::batch_edge`]).
    writes: Arc<AtomicU64>,
    /// A full reconciliation runs or is due (at start, after `reindex`, after a failure).
    reconciling: AtomicBool,
    /// The replica shuts down: a long pass stops (the next start finishes it).
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Search {
    /// Opens (or creates, or rebuilds when unreadable or of another layout) the index in
    /// `data_dir/search` and starts its thread, which reads the projection through `db`.
    /// Hands the feed the writer sends to to `install` before the indexer reads anything: its
    /// first pass then sees every write that was not fed to it.
    pub(crate) fn start(data_dir: &Path, db: &Path, install: impl FnOnce(Feeder)) -> Result<Arc<Search>> {
        let dir = data_dir.join(DIR);
        let conn = crate::db::open_reader(db)?;
        // The index and its writer are made on the indexer's own thread, once it runs at a
        // background priority: tantivy's indexing and merge threads, started with the writer,
        // inherit it. A sync or a burst of writes then gets the cores first, and the index
        // catches up when they are free (it is derived data, and says when it is behind).
        let (opened_tx, opened_rx) = mpsc::sync_channel::<Result<Index>>(1);
        let (search_tx, search_rx) = mpsc::sync_channel::<(Arc<Search>, mpsc::Receiver<Feed>)>(1);
        let thread = std::thread::Builder::new()
            .name("dashoffice-search".into())
            .spawn(move || {
                background_priority();
                let writer = match open_or_rebuild(&dir) {
                    Ok((index, writer)) => {
                        let _ = opened_tx.send(Ok(index));
                        writer
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                // The caller gave up (its half of the set-up failed): the writer's lock is released.
                let Ok((search, rx)) = search_rx.recv() else { return };
                Indexer { search, writer, conn }.run(rx)
            })
            .map_err(|e| CoreError::Storage(format!("starting the search indexer: {e}")))?;
        let index = opened_rx
            .recv()
            .map_err(|_| CoreError::Storage("the search indexer stopped while opening the index".into()))??;
        let f = fields(&index.schema()).map_err(|e| CoreError::Storage(format!("search index schema: {e}")))?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| CoreError::Storage(format!("opening the search index: {e}")))?;
        let pending = Arc::new(AtomicUsize::new(0));
        let products_pending = Arc::new(AtomicUsize::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let search = Arc::new(Search {
            reader,
            f,
            pending: pending.clone(),
            products_pending: products_pending.clone(),
            writes: writes.clone(),
            reconciling: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
        });
        let (tx, rx) = mpsc::channel();
        install(Feeder { tx, pending, products_pending, warned: Arc::new(AtomicBool::new(false)), writes });
        search_tx
            .send((search.clone(), rx))
            .map_err(|_| CoreError::Storage("the search indexer stopped while opening the index".into()))?;
        Ok(search)
    }

    /// Asks a long pass of the indexer to stop (the replica shuts down).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for the indexer to finish (after the writer, and with it the feed, stopped).
    pub(crate) fn join(&self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// Whether changes are waiting to be indexed.
    pub(crate) fn busy(&self) -> bool {
        self.reconciling.load(Ordering::Acquire) || self.pending.load(Ordering::Acquire) > 0
    }

    /// Ids of the shop's products that have a word starting with one of the tokens' first four
    /// letters (or, for tokens of five letters or more, the token with one typo): the bot's
    /// candidates, found without reading the catalog. One query for all the tokens, so the
    /// products that match more of them (and rarer ones) come first; at most 300. None while the
    /// index may miss a product change (one not indexed yet, a reconciliation due): the caller
    /// reads SQLite then.
    pub(crate) fn product_ids(&self, shop: &str, tokens: &[String]) -> Option<Vec<String>> {
        if self.reconciling.load(Ordering::Acquire) || self.products_pending.load(Ordering::Acquire) > 0 {
            return None;
        }
        let f = self.f;
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in tokens.iter().take(8) {
            let stem: String = t.chars().take(4).collect();
            any.push((
                Occur::Should,
                Box::new(FuzzyTermQuery::new_prefix(Term::from_field_text(f.text, &stem), 0, true)),
            ));
            if t.chars().count() >= 5 {
                any.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(Term::from_field_text(f.text, t), 1, true)),
                ));
            }
        }
        if any.is_empty() {
            return Some(Vec::new());
        }
        let filter =
            |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) { (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))) };
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(BooleanQuery::new(any))),
            filter(term_query(f.shop, shop)),
            filter(term_query(f.kind, Kind::Product.as_str())),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(300).order_by_score()).ok()?;
        let mut ids = Vec::with_capacity(top.len());
        for (_, address) in top {
            let d: TantivyDocument = searcher.doc(address).ok()?;
            if let Some(id) = d.get_first(f.key).and_then(|v| v.as_str()).and_then(|k| k.strip_prefix("product:")) {
                ids.push(id.to_string());
            }
        }
        Some(ids)
    }

    /// Searches for `caller`, reading each hit back through `conn`.
    pub(crate) fn search(&self, conn: &Connection, caller: &Caller, p: &SearchParams) -> Result<SearchResults> {
        let (words, kinds, limit) = check(p)?;
        let f = self.f;
        let word = |w: &str| -> Box<dyn Query> {
            let t = Term::from_field_text(f.text, w);
            let exact: Box<dyn Query> =
                Box::new(BoostQuery::new(Box::new(TermQuery::new(t.clone(), IndexRecordOption::WithFreqs)), 2.0));
            // One typo is allowed in words of five letters or more; every word may be cut short.
            let distance = if w.chars().count() >= 5 { 1 } else { 0 };
            let loose: Box<dyn Query> = Box::new(FuzzyTermQuery::new_prefix(t, distance, true));
            Box::new(BooleanQuery::new(vec![(Occur::Should, exact), (Occur::Should, loose)]))
        };
        let all_words: Box<dyn Query> =
            Box::new(BooleanQuery::new(words.iter().map(|w| (Occur::Must, word(w))).collect()));
        // Only digits, in groups ("55 1234 5678"): also as one number, as a phone is indexed.
        let text = if words.len() > 1 && words.iter().all(|w| w.bytes().all(|b| b.is_ascii_digit())) {
            Box::new(BooleanQuery::new(vec![(Occur::Should, all_words), (Occur::Should, word(&words.concat()))]))
        } else {
            all_words
        };
        // Filters do not score: a rarer branch or kind must not rank higher.
        let filter =
            |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) { (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))) };
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
        must.push(filter(term_query(f.shop, &caller.shop_id)));
        if let Some(b) = caller.branch_limit() {
            let either =
                vec![(Occur::Should, term_query(f.branch, b)), (Occur::Should, term_query(f.branch, SHOP_WIDE))];
            must.push(filter(Box::new(BooleanQuery::new(either))));
        }
        if kinds.len() < Kind::ALL.len() {
            let any = kinds.iter().map(|k| (Occur::Should, term_query(f.kind, k.as_str()))).collect();
            must.push(filter(Box::new(BooleanQuery::new(any))));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        // Room for hits the projection no longer shows (archived since, another branch's).
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit * 3 + 10).order_by_score())
            .map_err(|e| CoreError::Storage(format!("searching: {e}")))?;
        let mut hits = Vec::new();
        for (score, address) in top {
            let d: TantivyDocument =
                searcher.doc(address).map_err(|e| CoreError::Storage(format!("reading a search hit: {e}")))?;
            let Some(key) = d.get_first(f.key).and_then(|v| v.as_str()) else { continue };
            let Some((kind, id)) = key.split_once(':').and_then(|(k, id)| Some((Kind::parse(k)?, id))) else {
                continue;
            };
            if let Some(mut hit) = show(conn, caller, kind, id)? {
                hit.score = score * kind.weight();
                hits.push(hit);
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit);
        Ok(SearchResults { terms: words, hits, indexing: self.busy() })
    }
}

/// The `branch` of records every branch sees.
const SHOP_WIDE: &str = "*";

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

fn check(p: &SearchParams) -> Result<(Vec<String>, Vec<Kind>, usize)> {
    let q = p.q.as_deref().map(str::trim).unwrap_or("");
    if q.is_empty() {
        return Err(FieldError::new("q", "required", "type what to look for").into());
    }
    if q.chars().count() > MAX_QUERY {
        return Err(FieldError::new("q", "length", format!("at most {MAX_QUERY} characters")).into());
    }
    let mut seen = HashSet::new();
    let words: Vec<String> = terms(q).into_iter().filter(|w| seen.insert(w.clone())).collect();
    if words.is_empty() {
        return Err(FieldError::new("q", "words", "must contain a letter or a digit").into());
    }
    if words.len() > MAX_TERMS {
        return Err(FieldError::new("q", "words", format!("at most {MAX_TERMS} words")).into());
    }
    let kinds = match p.kinds.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Kind::ALL.to_vec(),
        Some(s) => {
            let mut out = Vec::new();
            for part in s.split(',').map(str::trim) {
                let k = Kind::parse(part).ok_or_else(|| {
                    FieldError::new("kinds", "one_of", "comma-separated: product, customer, order, message, ticket")
                })?;
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            out
        }
    };
    let limit = p.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(FieldError::new("limit", "range", "between 1 and 50").into());
    }
    Ok((words, kinds, limit as usize))
}

/// A hit as the caller may see it now, or None (gone, archived, merged, another branch's).
fn show(conn: &Connection, caller: &Caller, kind: Kind, id: &str) -> Result<Option<SearchHit>> {
    let shop = caller.shop_id.as_str();
    let visible = |branch: &str| caller.branch_limit().is_none_or(|b| b == branch);
    let hit = |title: String, subtitle: String, link: String| SearchHit {
        kind: kind.as_str().to_string(),
        id: id.to_string(),
        title,
        subtitle,
        link,
        score: 0.0,
    };
    Ok(match kind {
        Kind::Product => conn
            .prepare_cached(
                "SELECT name, sku, price, currency FROM products WHERE id = ?1 AND shop_id = ?2 AND archived = 0",
            )?
            .query_row(params![id, shop], |r| {
                let (name, sku, price, cur): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(hit(name, format!("{sku} · {price} {cur}"), format!("/products/{id}")))
            })
            .optional()?,
        Kind::Customer => conn
            .prepare_cached(
                "SELECT name, coalesce(phone, ''), coalesce(wa_id, ''), coalesce(email, '') FROM customers
                 WHERE id = ?1 AND shop_id = ?2 AND archived = 0 AND (merged_into IS NULL OR (id < merged_into
                   AND EXISTS (SELECT 1 FROM customers m WHERE m.id = customers.merged_into AND m.merged_into = customers.id)))",
            )?
            .query_row(params![id, shop], |r| {
                let (name, phone, wa, email): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let phone = if phone.is_empty() && !wa.is_empty() { format!("+{wa}") } else { phone };
                let sub = [phone, email].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" · ");
                Ok(hit(name, sub, format!("/customers/{id}")))
            })
            .optional()?,
        Kind::Order => conn
            .prepare_cached(
                "SELECT o.number, o.branch_id, o.status, o.total, o.currency, coalesce(c.name, ''), o.invoice_number
                 FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
                 WHERE o.id = ?1 AND o.shop_id = ?2 AND o.archived = 0",
            )?
            .query_row(params![id, shop], |r| {
                let (number, branch, status, total, cur, customer): (String, String, String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                let invoice: String = r.get(6)?;
                let sub = [invoice, customer, status, format!("{total} {cur}")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · ");
                Ok((branch, hit(number, sub, format!("/orders/{id}"))))
            })
            .optional()?
            .filter(|(branch, _)| visible(branch))
            .map(|(_, h)| h),
        Kind::Ticket => conn
            .prepare_cached(
                "SELECT t.number, t.subject, t.status, coalesce(c.name, '')
                 FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id WHERE t.id = ?1 AND t.shop_id = ?2",
            )?
            .query_row(params![id, shop], |r| {
                let (number, subject, status, customer): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let sub = [number, customer, status].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" · ");
                Ok(hit(subject, sub, format!("/tickets/{id}")))
            })
            .optional()?,
        Kind::Message => conn
            .prepare_cached(
                "SELECT m.conversation_id, m.branch_id, m.text, coalesce(v.customer_name, ''), coalesce(v.wa_id, '')
                 FROM messages m LEFT JOIN conversations v ON v.id = m.conversation_id
                 WHERE m.id = ?1 AND m.shop_id = ?2",
            )?
            .query_row(params![id, shop], |r| {
                let (conv, branch, text, name, wa): (String, String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                let title = if name.is_empty() { format!("+{wa}") } else { name };
                Ok((branch, hit(title, excerpt(&text, 140), format!("/conversations/{conv}"))))
            })
            .optional()?
            .filter(|(branch, _)| visible(branch))
            .map(|(_, h)| h),
    })
}

/// `s` on one line, cut at `max` characters with an ellipsis.
fn excerpt(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Opens the index in `dir`, or rebuilds it when it is unreadable or of another layout.
fn open_or_rebuild(dir: &PathBuf) -> Result<(Index, IndexWriter)> {
    match open(dir) {
        Ok(x) => Ok(x),
        // Another process (a second node started on the same folder) indexes it: leave it be.
        Err(e @ tantivy::TantivyError::LockFailure(..)) => {
            Err(CoreError::Storage(format!("the search index is in use by another process: {e}")))
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "the search index is unreadable; rebuilding it");
            let _ = std::fs::remove_dir_all(dir);
            open(dir).map_err(|e| CoreError::Storage(format!("opening the search index: {e}")))
        }
    }
}

/// Lowers the calling thread to a background priority (nice 10 on Linux, below normal on
/// Windows); threads it starts inherit it. It still gets any core nobody else wants, and about a
/// tenth of a busy one (nice 19 measured no faster sync and would starve it more). Elsewhere
/// (macOS: the call would lower the whole process) and on failure it stays as it was, which is
/// only slower under load.
fn background_priority() {
    #[cfg(any(target_os = "linux", windows))]
    {
        use thread_priority::{ThreadPriority, ThreadPriorityValue};
        // 22 of 0–99 maps to nice 10 on Linux.
        let set = ThreadPriorityValue::try_from(22u8).map_err(|e| e.to_string()).and_then(|v| {
            thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(v)).map_err(|e| format!("{e:?}"))
        });
        if let Err(e) = set {
            tracing::debug!(error = %e, "the search indexer keeps the normal priority");
        }
    }
}

fn open(dir: &PathBuf) -> tantivy::Result<(Index, IndexWriter)> {
    std::fs::create_dir_all(dir)?;
    let layout = dir.join(LAYOUT_FILE);
    let fresh = match std::fs::read_to_string(&layout) {
        Ok(v) if v.trim() == LAYOUT => false,
        Ok(_) => {
            // Another layout: start over (the start's reconciliation fills it).
            std::fs::remove_dir_all(dir)?;
            std::fs::create_dir_all(dir)?;
            true
        }
        Err(_) => true,
    };
    let index = Index::open_or_create(MmapDirectory::open(dir)?, schema())?;
    index.tokenizers().register(TOKENIZER, analyzer());
    // One indexing thread and one merge thread (tantivy's default is four).
    let options = tantivy::indexer::IndexWriterOptions::builder()
        .memory_budget_per_thread(20_000_000)
        .num_worker_threads(1)
        .num_merge_threads(1)
        .build();
    let writer = index.writer_with_options(options)?;
    if fresh {
        std::fs::write(&layout, LAYOUT)?;
    }
    Ok((index, writer))
}

/// One record as indexed.
struct Entry {
    key: String,
    kind: Kind,
    shop: String,
    branch: String,
    text: String,
}

impl Entry {
    fn new(kind: Kind, id: &str, shop: String, branch: Option<String>, parts: &[&str]) -> Entry {
        let text = parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("\n");
        Entry {
            key: format!("{}:{id}", kind.as_str()),
            kind,
            shop,
            branch: branch.unwrap_or_else(|| SHOP_WIDE.to_string()),
            text,
        }
    }

    fn digest(&self) -> u64 {
        let mut h = Sha256::new();
        for part in [self.kind.as_str(), &self.shop, &self.branch, &self.text] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let d = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        u64::from_le_bytes(first)
    }

    fn document(&self, f: &Fields) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(f.key, &self.key);
        d.add_text(f.kind, self.kind.as_str());
        d.add_text(f.shop, &self.shop);
        d.add_text(f.branch, &self.branch);
        d.add_u64(f.digest, self.digest());
        d.add_text(f.text, &self.text);
        d
    }
}

/// Digits of a phone number, and its last ten (a national number without country code), so
/// "55 1234 5678" and "5512345678" both find "+52 1 55 1234 5678".
fn phone_words(s: &str) -> String {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() > 10 { format!("{digits} {}", &digits[digits.len() - 10..]) } else { digits }
}

/// The SQL of each kind (the record's table is `t`): `id` first; only what is shown (not
/// archived, not merged away). An order carries its customer's name, so "Ana" finds her orders.
fn select(kind: Kind) -> &'static str {
    match kind {
        Kind::Product => {
            "SELECT t.id, t.shop_id, NULL, t.sku, t.name, t.description, t.tags, '' FROM products t
             WHERE t.archived = 0"
        }
        Kind::Customer => {
            "SELECT t.id, t.shop_id, NULL, t.name, coalesce(t.phone, ''), coalesce(t.email, ''),
                    coalesce(t.wa_id, ''), t.tags || ' ' || t.notes || ' ' || t.tax_id
             FROM customers t WHERE t.archived = 0 AND (t.merged_into IS NULL OR (t.id < t.merged_into
                 AND EXISTS (SELECT 1 FROM customers m WHERE m.id = t.merged_into AND m.merged_into = t.id)))"
        }
        Kind::Order => {
            "SELECT t.id, t.shop_id, t.branch_id, t.number, t.notes, coalesce(c.name, ''),
                    t.invoice_number || ' ' || t.invoice_provisional, ''
             FROM orders t LEFT JOIN customers c ON c.id = t.customer_id WHERE t.archived = 0"
        }
        Kind::Message => {
            "SELECT t.id, t.shop_id, t.branch_id, t.text, '', '', '', '' FROM messages t WHERE t.text <> ''"
        }
        // Shop-wide (no branch): any replica's staff follow any ticket.
        Kind::Ticket => {
            "SELECT t.id, t.shop_id, NULL, t.number, t.subject, t.description, coalesce(c.name, ''), ''
             FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id WHERE t.shop_id <> ''"
        }
    }
}

fn entry_of(kind: Kind, r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let id: String = r.get(0)?;
    let shop: String = r.get(1)?;
    let branch: Option<String> = r.get(2)?;
    let cols: [String; 5] = [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?];
    let entry = match kind {
        Kind::Customer => {
            let (phone, wa) = (phone_words(&cols[1]), phone_words(&cols[3]));
            Entry::new(kind, &id, shop, branch, &[&cols[0], &cols[1], &phone, &cols[2], &wa, &cols[4]])
        }
        _ => Entry::new(kind, &id, shop, branch, &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4]]),
    };
    Ok(entry)
}

struct Indexer {
    search: Arc<Search>,
    writer: IndexWriter,
    conn: Connection,
}

impl Indexer {
    fn run(mut self, rx: mpsc::Receiver<Feed>) {
        let search = self.search.clone();
        // A failed pass leaves the index behind: the next pass reconciles all of it.
        let mut dirty = true;
        loop {
            if dirty {
                search.reconciling.store(true, Ordering::Release);
                dirty = self.attempt(|me| me.reconcile());
                // Still dirty: the index stays "behind" until a pass succeeds.
                search.reconciling.store(dirty, Ordering::Release);
            }
            if search.stop.load(Ordering::Acquire) {
                break;
            }
            let first = if dirty {
                match rx.recv_timeout(RETRY) {
                    Ok(feed) => feed,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(feed) => feed,
                    Err(_) => break,
                }
            };
            let mut records: HashSet<(Kind, String)> = HashSet::new();
            let mut all = dirty;
            let (mut taken, mut products) = (0usize, 0usize);
            let mut take = |feed: Feed, records: &mut HashSet<(Kind, String)>| {
                taken += 1;
                products += usize::from(feed.names_products());
                match feed {
                    Feed::Records(r) => records.extend(r),
                    Feed::All => all = true,
                }
            };
            take(first, &mut records);
            let since = Instant::now();
            let mut open = true;
            let mut writes = search.writes.load(Ordering::Acquire);
            while since.elapsed() < MAX_DELAY {
                match rx.recv_timeout(QUIET) {
                    Ok(feed) => take(feed, &mut records),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // No new records for a while, but the writer may still be busy: a sync
                        // catching up projects in bursts between writes of its own. Indexing
                        // waits for the writes to pause (at most MAX_DELAY): the cores go to the
                        // sync first, and one larger index commit costs less than many small ones.
                        let now = search.writes.load(Ordering::Acquire);
                        if now == writes && now.is_multiple_of(2) {
                            break;
                        }
                        writes = now;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if all {
                search.reconciling.store(true, Ordering::Release);
                dirty = self.attempt(|me| me.reconcile());
            } else {
                dirty = self.attempt(|me| me.update(records));
            }
            search.reconciling.store(dirty, Ordering::Release);
            search.pending.fetch_sub(taken, Ordering::AcqRel);
            search.products_pending.fetch_sub(products, Ordering::AcqRel);
            if !open {
                break;
            }
        }
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::debug!(error = %e, "search index merges");
        }
    }

    /// Runs a pass; on failure, undoes what it left uncommitted and returns true (dirty).
    fn attempt(&mut self, pass: impl FnOnce(&mut Self) -> Result<()>) -> bool {
        match pass(self) {
            Ok(()) => false,
            Err(e) => {
                if !self.search.stop.load(Ordering::Acquire) {
                    tracing::warn!(error = %e, "updating the search index failed; it is reconciled again shortly");
                }
                if let Err(e) = self.writer.rollback() {
                    tracing::warn!(error = %e, "rolling back the search index failed");
                }
                true
            }
        }
    }

    fn stopping(&self) -> Result<()> {
        if self.search.stop.load(Ordering::Acquire) { Err(CoreError::ShuttingDown) } else { Ok(()) }
    }

    fn put(&self, e: &Entry) -> Result<()> {
        let f = &self.search.f;
        self.writer.delete_term(Term::from_field_text(f.key, &e.key));
        self.writer.add_document(e.document(f)).map_err(|e| CoreError::Storage(format!("indexing: {e}")))?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.writer.commit().map_err(|e| CoreError::Storage(format!("committing the search index: {e}")))?;
        self.search.reader.reload().map_err(|e| CoreError::Storage(format!("reloading the search index: {e}")))?;
        Ok(())
    }

    /// The digest the index holds for `key`, if any.
    fn held(&self, searcher: &tantivy::Searcher, key: &str) -> Option<u64> {
        let q = TermQuery::new(Term::from_field_text(self.search.f.key, key), IndexRecordOption::Basic);
        let top = searcher.search(&q, &TopDocs::with_limit(1).order_by_score()).ok()?;
        let d: TantivyDocument = searcher.doc(top.first()?.1).ok()?;
        d.get_first(self.search.f.digest).and_then(|v| v.as_u64())
    }

    /// Re-reads `records` from SQLite: indexed again if shown and changed, removed if not shown.
    fn update(&mut self, mut records: HashSet<(Kind, String)>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let noted: Vec<String> =
            records.iter().filter(|(k, _)| *k == Kind::Customer).map(|(_, id)| id.clone()).collect();
        for customer in noted {
            // A customer's name is in their orders' and tickets' entries: a rename re-indexes them.
            for (kind, sql) in [
                (Kind::Order, "SELECT id FROM orders WHERE customer_id = ?1"),
                (Kind::Ticket, "SELECT id FROM tickets WHERE customer_id = ?1"),
            ] {
                let mut stmt = self.conn.prepare_cached(sql)?;
                let ids =
                    stmt.query_map([&customer], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
                records.extend(ids.into_iter().map(|id| (kind, id)));
            }
            // Whether a customer of a merge cycle is shown depends on the other one.
            let other: Option<Option<String>> = self
                .conn
                .prepare_cached("SELECT merged_into FROM customers WHERE id = ?1")?
                .query_row([&customer], |r| r.get(0))
                .optional()?;
            if let Some(Some(other)) = other {
                records.insert((Kind::Customer, other));
            }
        }
        let searcher = self.search.reader.searcher();
        let (mut put, mut removed) = (0usize, 0usize);
        for (kind, id) in records {
            self.stopping()?;
            let sql = format!("{} AND t.id = ?1", select(kind));
            let entry = self.conn.prepare_cached(&sql)?.query_row([&id], |r| entry_of(kind, r)).optional()?;
            match entry {
                // Unchanged (a message's delivery status, a customer's tags for their orders).
                Some(e) if self.held(&searcher, &e.key) == Some(e.digest()) => {}
                Some(e) => {
                    self.put(&e)?;
                    put += 1;
                }
                None => {
                    let key = format!("{}:{id}", kind.as_str());
                    if self.held(&searcher, &key).is_some() {
                        self.writer.delete_term(Term::from_field_text(self.search.f.key, &key));
                        removed += 1;
                    }
                }
            }
        }
        if put + removed > 0 {
            self.commit()?;
        }
        metrics::counter!("dashoffice_search_indexed_total").increment((put + removed) as u64);
        tracing::debug!(put, removed, seconds = started.elapsed().as_secs_f64(), "search index updated");
        Ok(())
    }

    /// Makes the index hold exactly what SQLite shows, comparing each record's digest.
    fn reconcile(&mut self) -> Result<()> {
        let started = Instant::now();
        let f = self.search.f;
        let searcher = self.search.reader.searcher();
        let mut held: HashMap<String, u64> = HashMap::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(4).map_err(|e| CoreError::Storage(format!("search index: {e}")))?;
            for doc in segment.doc_ids_alive() {
                let d: TantivyDocument =
                    store.get(doc).map_err(|e| CoreError::Storage(format!("search index: {e}")))?;
                if let (Some(k), Some(g)) =
                    (d.get_first(f.key).and_then(|v| v.as_str()), d.get_first(f.digest).and_then(|v| v.as_u64()))
                {
                    held.insert(k.to_string(), g);
                }
            }
        }
        let mut changed = 0usize;
        for kind in Kind::ALL {
            let mut stmt = self.conn.prepare(select(kind))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let e = entry_of(kind, r)?;
                if held.remove(&e.key) != Some(e.digest()) {
                    self.stopping()?;
                    self.put(&e)?;
                    changed += 1;
                }
            }
        }
        for key in held.keys() {
            self.writer.delete_term(Term::from_field_text(f.key, key));
            changed += 1;
        }
        if changed > 0 {
            self.commit()?;
        }
        tracing::info!(changed, seconds = started.elapsed().as_secs_f64(), "search index reconciled");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_lower_cased_and_stripped_of_accents() {
        assert_eq!(terms("Café de CHIAPAS, 500g"), ["cafe", "de", "chiapas", "500g"]);
        assert_eq!(terms("José Núñez"), ["jose", "nunez"]);
        assert_eq!(terms("CAF-001"), ["caf", "001"]);
        assert!(terms("¿? — !").is_empty());
    }

    #[test]
    fn an_accented_letter_has_a_base_letter_of_the_same_case() {
        assert_eq!(base_letter('ñ'), Some('n'));
        assert_eq!(base_letter('Ñ'), Some('N'));
        assert_eq!(base_letter('é'), Some('e'));
        assert_eq!(base_letter('a'), None);
        assert_eq!(base_letter('ß'), None);
        assert_eq!(base_letter('€'), None);
        assert_eq!(base_letter('¿'), None);
        assert_eq!(base_letter('—'), None);
    }

    #[test]
    fn a_whole_text_folds_to_lower_case_ascii() {
        assert_eq!(fold("José NÚÑEZ, Café"), "jose nunez, cafe");
        assert_eq!(fold("CAF-001"), "caf-001");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn phone_numbers_are_also_indexed_by_their_last_ten_digits() {
        assert_eq!(phone_words("+52 1 55 1234 5678"), "5215512345678 5512345678");
        assert_eq!(phone_words("5512345678"), "5512345678");
        assert_eq!(phone_words(""), "");
    }

    #[test]
    fn the_query_is_checked_field_by_field() {
        let p = |q: &str, kinds: Option<&str>, limit: Option<u32>| SearchParams {
            q: Some(q.to_string()),
            kinds: kinds.map(str::to_string),
            limit,
        };
        let rule = |r: Result<(Vec<String>, Vec<Kind>, usize)>| match r {
            Err(CoreError::Validation(e)) => (e.0[0].field.clone(), e.0[0].rule.clone()),
            other => panic!("expected a validation error, got {:?}", other.map(|x| x.0)),
        };
        assert_eq!(rule(check(&p("  ", None, None))), ("q".into(), "required".into()));
        assert_eq!(rule(check(&p("¿?", None, None))), ("q".into(), "words".into()));
        assert_eq!(rule(check(&p(&"a".repeat(201), None, None))), ("q".into(), "length".into()));
        assert_eq!(rule(check(&p("café", Some("product,invoice"), None))), ("kinds".into(), "one_of".into()));
        assert_eq!(rule(check(&p("café", None, Some(0)))), ("limit".into(), "range".into()));
        let (words, kinds, limit) = check(&p("Café café", Some("order, product,order"), None)).unwrap();
        assert_eq!((words, kinds, limit), (vec!["cafe".to_string()], vec![Kind::Order, Kind::Product], 20));
    }

    #[test]
    fn an_excerpt_is_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(excerpt("hola\n  mundo", 140), "hola mundo");
        assert_eq!(excerpt("abcdef", 4), "abc…");
    }
}
