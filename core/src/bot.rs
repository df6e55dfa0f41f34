//! Bots: offline language understanding (Spanish and English) and the engine that runs a bot
//! definition against an inbound message. Nothing here calls a network service; an optional LLM
//! provider lives on the relay and only ever adds to what this decides.
//!
//! A bot definition is a JSON document stored as an inbox item (kind `bot`): triggers pick a
//! node, nodes perform one action and name where the conversation goes next.

use std::collections::BTreeMap;

use dashoffice_domain::inbox::{ListRow, ReplyButton, SendMessage};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Result;

// ---------- language understanding ----------

/// Lower-cases and folds Spanish accents (á→a, ñ→n, ¿¡ dropped) so keywords match however they
/// were typed.
pub fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => Some('a'),
            'é' | 'è' | 'ë' | 'ê' => Some('e'),
            'í' | 'ì' | 'ï' | 'î' => Some('i'),
            'ó' | 'ò' | 'ö' | 'ô' => Some('o'),
            'ú' | 'ù' | 'ü' | 'û' => Some('u'),
            'ñ' => Some('n'),
            '¿' | '¡' => None,
            c => Some(c),
        })
        .collect()
}

fn words(folded: &str) -> Vec<String> {
    folded
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '#'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Intents the offline model knows, with their cue phrases (folded). A phrase of several words
/// matches as a substring; a single word must match a whole word.
const INTENTS: &[(&str, &[&str])] = &[
    (
        "handoff",
        &[
            "humano",
            "agente",
            "persona",
            "asesor",
            "asesora",
            "vendedor",
            "hablar con",
            "atencion al cliente",
            "human",
            "agent",
            "person",
            "representative",
            "talk to",
            "speak to",
            "someone",
        ],
    ),
    (
        "complaint",
        &[
            "reclamo",
            "reclamos",
            "reclamar",
            "reclamacion",
            "queja",
            "quejas",
            "quejarme",
            "problema",
            "problemas",
            "roto",
            "rota",
            "rotos",
            "rotas",
            "danado",
            "danada",
            "defectuoso",
            "defectuosa",
            "defecto",
            "no funciona",
            "no sirve",
            "no me llego",
            "nunca llego",
            "incompleto",
            "incompleta",
            "equivocado",
            "equivocada",
            "devolucion",
            "devolver",
            "reembolso",
            "hacer valida la garantia",
            "usar la garantia",
            "reclamar la garantia",
            "cobraron de mas",
            "complaint",
            "complain",
            "problem",
            "issue",
            "broken",
            "damaged",
            "defective",
            "not working",
            "doesn't work",
            "does not work",
            "wrong item",
            "never arrived",
            "refund",
            "warranty claim",
        ],
    ),
    (
        "price",
        &[
            "cuanto cuesta",
            "cuanto vale",
            "cuanto sale",
            "cuanto es",
            "precio",
            "precios",
            "costo",
            "cuesta",
            "vale",
            "how much",
            "price",
            "prices",
            "cost",
            "costs",
        ],
    ),
    (
        "stock",
        &[
            "hay",
            "tienen",
            "tienes",
            "disponible",
            "disponibles",
            "existencia",
            "existencias",
            "quedan",
            "stock",
            "in stock",
            "available",
            "do you have",
            "left",
        ],
    ),
    (
        "order_status",
        &[
            "mi pedido",
            "pedido",
            "mi orden",
            "orden",
            "envio",
            "donde esta",
            "cuando llega",
            "estado",
            "my order",
            "order status",
            "where is",
            "shipping",
            "delivery",
            "tracking",
        ],
    ),
    ("buy", &["quiero comprar", "comprar", "quiero", "me das", "apartar", "i want", "buy", "purchase", "i'd like"]),
    ("hours", &["horario", "abren", "cierran", "abierto", "hours", "open", "close", "opening"]),
    (
        "greeting",
        &["hola", "buenas", "buenos dias", "buenas tardes", "buenas noches", "hello", "hi", "hey", "good morning"],
    ),
    ("thanks", &["gracias", "muchas gracias", "thanks", "thank you", "thx"]),
    ("goodbye", &["adios", "chao", "hasta luego", "nos vemos", "bye", "goodbye", "see you"]),
];

/// Phrases that name a problem only to say there is none: taken out before the intents are
/// looked for ("no hay problema, gracias" is thanks, not a complaint).
const NO_PROBLEM: &[&str] = &[
    "no hay problema",
    "ningun problema",
    "sin problema",
    "sin problemas",
    "se resolvio el problema",
    "problema resuelto",
    "no problem",
    "no issue",
    "no issues",
    "problem solved",
];

/// Complaint cues that a mere question about the shop's returns also uses ("¿puedo devolver…?").
const RETURN_WORDS: &[&str] = &["devolucion", "devolver", "reembolso", "refund"];

/// How a question about the returns or refund policy is put. Without complaint cues beyond
/// [`RETURN_WORDS`], such a message asks about the policy (intent `returns`) rather than
/// complains: the default bot hands it to a person without opening a ticket.
const RETURNS_QUESTION: &[&str] = &[
    "puedo devolver",
    "se puede devolver",
    "puedo hacer una devolucion",
    "puedo pedir un reembolso",
    "como devuelvo",
    "como puedo devolver",
    "como hago una devolucion",
    "como hago la devolucion",
    "como se hace una devolucion",
    "aceptan devoluciones",
    "hacen devoluciones",
    "tienen devoluciones",
    "politica de devolucion",
    "politica de devoluciones",
    "politica de reembolso",
    "politicas de devolucion",
    "plazo para devolver",
    "dias para devolver",
    "can i return",
    "can i get a refund",
    "how do i return",
    "how can i return",
    "do you accept returns",
    "do you take returns",
    "return policy",
    "returns policy",
    "refund policy",
];

const SPANISH: &[&str] = &[
    "el", "la", "los", "las", "de", "que", "y", "en", "un", "una", "por", "para", "con", "cuanto", "cuesta", "hola",
    "quiero", "tienen", "hay", "mi", "es", "esta", "gracias", "precio", "pedido", "persona", "hablar",
];
const ENGLISH: &[&str] = &[
    "the", "a", "an", "of", "and", "in", "to", "for", "with", "how", "much", "is", "do", "you", "have", "my", "i",
    "want", "price", "order", "hello", "hi", "thanks", "please", "where", "talk",
];
const POSITIVE: &[&str] = &[
    "gracias",
    "excelente",
    "genial",
    "perfecto",
    "bueno",
    "buena",
    "encanta",
    "feliz",
    "great",
    "thanks",
    "good",
    "love",
    "perfect",
    "excellent",
    "awesome",
    "happy",
];
const NEGATIVE: &[&str] = &[
    "malo",
    "mala",
    "pesimo",
    "terrible",
    "horrible",
    "molesto",
    "enojado",
    "queja",
    "reclamo",
    "nunca",
    "estafa",
    "tarde",
    "bad",
    "awful",
    "angry",
    "complaint",
    "never",
    "scam",
    "late",
    "worst",
    "broken",
    "roto",
];
const STOP: &[&str] = &[
    "cuanto",
    "cuesta",
    "vale",
    "precio",
    "precios",
    "hay",
    "tienen",
    "tienes",
    "quiero",
    "comprar",
    "hola",
    "buenas",
    "el",
    "la",
    "los",
    "las",
    "de",
    "del",
    "que",
    "y",
    "en",
    "un",
    "una",
    "unos",
    "unas",
    "por",
    "para",
    "con",
    "me",
    "mi",
    "es",
    "esta",
    "este",
    "esa",
    "ese",
    "how",
    "much",
    "is",
    "the",
    "a",
    "an",
    "do",
    "you",
    "have",
    "price",
    "of",
    "i",
    "want",
    "to",
    "buy",
    "please",
    "por",
    "favor",
    "disponible",
    "stock",
    "cost",
    "does",
    "it",
    "tiene",
    "sale",
    "costo",
    "cuantos",
    "cuantas",
    "quedan",
    "and",
    "y",
    "o",
    "or",
    "some",
    "any",
    "for",
];

/// A product the text seems to name.
#[derive(Debug, Clone, Serialize)]
pub struct ProductMatch {
    /// Product id.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// 0..1.
    pub score: f64,
}

/// What the offline model understood.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The best intent (`none` when nothing matched).
    pub intent: String,
    /// 0..1.
    pub confidence: f64,
    /// `es` or `en`.
    pub language: String,
    /// -1 (angry) .. 1 (happy).
    pub sentiment: f64,
    /// Products named, best first.
    pub products: Vec<ProductMatch>,
    /// Order numbers mentioned.
    pub order_numbers: Vec<String>,
    /// Quantities mentioned.
    pub quantities: Vec<i64>,
}

fn phrase_hits(folded: &str, ws: &[String], cue: &str) -> bool {
    if cue.contains(' ') || cue.contains('\'') { folded.contains(cue) } else { ws.iter().any(|w| w == cue) }
}

/// The language of `text` as the offline understanding reads it: `en` when it has more English
/// words than Spanish ones, else `es`; `None` when it has neither (a photo, "ok", a number).
pub fn language_of(text: &str) -> Option<&'static str> {
    let ws = words(&fold(text));
    let es = ws.iter().filter(|w| SPANISH.contains(&w.as_str())).count();
    let en = ws.iter().filter(|w| ENGLISH.contains(&w.as_str())).count();
    match (es, en) {
        (0, 0) => None,
        (es, en) if en > es => Some("en"),
        _ => Some("es"),
    }
}

/// Understands `text`; `catalog` finds products by name or SKU (see [`catalog_lookup`]).
pub fn analyse(text: &str, catalog: &dyn Fn(&[String]) -> Vec<ProductMatch>) -> Analysis {
    let folded = fold(text);
    let ws = words(&folded);
    // Most messages name no problem at all: then the text is matched as it is.
    let stripped = (folded.contains("problem") || folded.contains("issue"))
        .then(|| NO_PROBLEM.iter().fold(folded.clone(), |t, p| t.replace(p, " ")));
    let stripped_ws = stripped.as_deref().map(words);
    let (cued, cue_ws) = (stripped.as_deref().unwrap_or(&folded), stripped_ws.as_deref().unwrap_or(&ws));
    let mut best = ("none", 0usize, 0usize);
    let mut complaint = (0usize, 0usize);
    for (intent, cues) in INTENTS {
        let mut hits = 0;
        let mut longest = 0;
        for cue in *cues {
            if phrase_hits(cued, cue_ws, cue) {
                hits += 1;
                longest = longest.max(cue.len());
            }
        }
        // More cues win; then the more specific (longer) cue.
        if hits > 0 && (hits, longest) > (best.1, best.2) {
            best = (intent, hits, longest);
        }
        if *intent == "complaint" {
            complaint = (hits, longest);
        }
    }
    // Something gone wrong outweighs what it is about ("mi pedido llegó roto" is no status
    // question); only asking for a person comes first.
    if complaint.0 > 0 && best.0 != "handoff" {
        best = ("complaint", complaint.0, complaint.1);
    }
    // How returns work is a question for a person, unless something went wrong too.
    let about_returns = ["devol", "reembols", "refund", "return"].iter().any(|w| cued.contains(w));
    if about_returns && best.0 != "handoff" && RETURNS_QUESTION.iter().any(|q| cued.contains(q)) {
        let cues = INTENTS.iter().find(|(i, _)| *i == "complaint").map_or(&[][..], |(_, c)| *c);
        if !cues.iter().any(|c| !RETURN_WORDS.contains(c) && phrase_hits(cued, cue_ws, c)) {
            best = ("returns", 1, 0);
        }
    }
    let es = ws.iter().filter(|w| SPANISH.contains(&w.as_str())).count();
    let en = ws.iter().filter(|w| ENGLISH.contains(&w.as_str())).count();
    let pos = ws.iter().filter(|w| POSITIVE.contains(&w.as_str())).count() as f64;
    let neg = ws.iter().filter(|w| NEGATIVE.contains(&w.as_str())).count() as f64;
    let sentiment = if pos + neg == 0.0 { 0.0 } else { (pos - neg) / (pos + neg) };
    let content: Vec<String> =
        ws.iter().filter(|w| w.len() >= 3 && !STOP.contains(&w.as_str()) && !w.starts_with('#')).cloned().collect();
    let products = if content.is_empty() { Vec::new() } else { catalog(&content) };
    let mut order_numbers = Vec::new();
    let mut quantities = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        let after_cue = i > 0 && ["pedido", "orden", "order", "numero", "no", "nro"].contains(&ws[i - 1].as_str());
        if let Some(n) = w.strip_prefix('#') {
            order_numbers.push(n.to_uppercase());
        } else if w.contains('-') && w.chars().any(|c| c.is_ascii_digit()) && w.chars().any(|c| c.is_alphabetic()) {
            order_numbers.push(w.to_uppercase());
        } else if let Ok(n) = w.parse::<i64>() {
            if after_cue {
                order_numbers.push(w.clone());
            } else if (1..=999).contains(&n) {
                quantities.push(n);
            }
        } else if let Some(n) = number_word(w) {
            quantities.push(n);
        }
    }
    let (mut intent, hits) = (best.0.to_string(), best.1);
    let mut confidence = if hits == 0 { 0.0 } else { (0.55 + 0.15 * hits as f64).min(0.95) };
    if intent == "none" && !products.is_empty() {
        // A bare product name is most often a price question.
        intent = "price".into();
        confidence = 0.5 * products[0].score;
    }
    if intent == "order_status" && !order_numbers.is_empty() {
        confidence = (confidence + 0.15).min(0.98);
    }
    Analysis {
        intent,
        confidence: (confidence * 100.0).round() / 100.0,
        language: if en > es { "en".into() } else { "es".into() },
        sentiment,
        products,
        order_numbers,
        quantities,
    }
}

fn number_word(w: &str) -> Option<i64> {
    let n = match w {
        "uno" | "una" | "one" => 1,
        "dos" | "two" => 2,
        "tres" | "three" => 3,
        "cuatro" | "four" => 4,
        "cinco" | "five" => 5,
        "seis" | "six" => 6,
        "diez" | "ten" => 10,
        "docena" | "dozen" => 12,
        _ => return None,
    };
    Some(n)
}

/// Product ids a full-text index names for a message's tokens ([`crate::Replica::catalog_candidates`]),
/// or None to read them from the catalog's table.
pub type Candidates<'a> = &'a dyn Fn(&[String]) -> Option<Vec<String>>;

/// Finds products named by `tokens`: candidates by SKU or by a name containing a token's first
/// four letters, ranked by string similarity of the name's words to the tokens (typos allowed).
/// Reads every product of the shop for each token; see [`catalog_lookup_with`].
pub fn catalog_lookup(conn: &Connection, shop: &str, tokens: &[String]) -> Vec<ProductMatch> {
    catalog_lookup_with(conn, shop, tokens, None)
}

/// [`catalog_lookup`] with the name candidates given by the search index (`Some`): then only
/// those products and exact SKUs are read, which a catalog of 100,000 products needs (the
/// table's scan takes about a tenth of a second per word there).
pub fn catalog_lookup_with(
    conn: &Connection,
    shop: &str,
    tokens: &[String],
    candidates: Option<Vec<String>>,
) -> Vec<ProductMatch> {
    let mut cands: BTreeMap<String, (String, String)> = BTreeMap::new();
    if let Some(ids) = candidates {
        let found = (|| -> rusqlite::Result<()> {
            let mut one = conn.prepare_cached(
                "SELECT sku, name FROM products WHERE id = ?1 AND shop_id = ?2 AND archived = 0 AND active = 1",
            )?;
            for id in ids {
                if let Some((sku, name)) =
                    one.query_row(params![id, shop], |r| Ok((r.get(0)?, r.get(1)?))).optional()?
                {
                    cands.insert(id, (sku, name));
                }
            }
            // SKUs as typed or in capitals (tokens are folded to lower case); the index splits
            // "P-1" into words, so an exact SKU is looked up here.
            let mut sku = conn.prepare_cached(
                "SELECT id, sku, name FROM products INDEXED BY products_sku
                  WHERE shop_id = ?1 AND sku IN (?2, upper(?2)) AND archived = 0 AND active = 1 LIMIT 20",
            )?;
            for t in tokens.iter().take(8) {
                for row in sku.query_map(params![shop, t], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
                    let (id, sku, name) = row?;
                    cands.insert(id, (sku, name));
                }
            }
            Ok(())
        })();
        if let Err(e) = found {
            tracing::warn!(error = %e, "reading the bot's product candidates");
        }
        return rank(cands, tokens);
    }
    let Ok(mut stmt) = conn.prepare_cached(
        "SELECT id, sku, name FROM products WHERE shop_id = ?1 AND archived = 0 AND active = 1
           AND (upper(sku) = upper(?2) OR name LIKE ?3) LIMIT 200",
    ) else {
        return Vec::new();
    };
    for t in tokens.iter().take(8) {
        let stem: String = t.chars().take(4).collect();
        let Ok(rows) = stmt
            .query_map(params![shop, t, format!("%{stem}%")], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
        else {
            continue;
        };
        for (id, sku, name) in rows.flatten() {
            cands.insert(id, (sku, name));
        }
    }
    rank(cands, tokens)
}

/// Scores the candidates (id → SKU, name) against the tokens; the best five above 0.6.
fn rank(cands: BTreeMap<String, (String, String)>, tokens: &[String]) -> Vec<ProductMatch> {
    let mut out: Vec<ProductMatch> = cands
        .into_iter()
        .map(|(id, (sku, name))| {
            let nw = words(&fold(&name));
            let per_token: Vec<f64> = tokens
                .iter()
                .map(|t| {
                    if fold(&sku) == *t {
                        return 1.0;
                    }
                    nw.iter().map(|w| strsim::jaro_winkler(w, t)).fold(0.0, f64::max)
                })
                .collect();
            // How well the text covers the name, and the name the text.
            let matched = per_token.iter().filter(|s| **s >= 0.85).count() as f64;
            let best = per_token.iter().copied().fold(0.0, f64::max);
            let cover = matched / (nw.len().max(1) as f64);
            let score = (0.6 * best + 0.4 * cover.min(1.0)).min(1.0);
            ProductMatch { id, sku, name, score: (score * 100.0).round() / 100.0 }
        })
        .filter(|m| m.score >= 0.6)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    out.truncate(5);
    out
}

// ---------- bot definitions ----------

/// What starts a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// keyword, regex, intent, button, list, order, first_message.
    pub kind: String,
    /// For keyword: contains (default), equals, starts_with.
    #[serde(default)]
    pub r#match: Option<String>,
    /// The keyword, pattern, intent name, or button/list row id.
    #[serde(default)]
    pub value: String,
    /// For intent: the least confidence (default 0.5).
    #[serde(default)]
    pub min_confidence: Option<f64>,
    /// The node to run.
    pub node: String,
}

/// One step of a bot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// send_text, send_buttons, send_list, send_template, product_price, order_status,
    /// create_draft_order, open_ticket, handoff, end.
    pub action: String,
    /// The text (with {name} for the customer's name; for open_ticket, {ticket} for its number).
    #[serde(default)]
    pub text: String,
    /// Buttons of send_buttons.
    #[serde(default)]
    pub buttons: Vec<ReplyButton>,
    /// Rows of send_list.
    #[serde(default)]
    pub rows: Vec<ListRow>,
    /// Template of send_template.
    #[serde(default)]
    pub template: Option<String>,
    /// Template parameters.
    #[serde(default)]
    pub params: Vec<String>,
    /// Where a button or list reply leads: reply id → node.
    #[serde(default)]
    pub next: BTreeMap<String, String>,
}

/// Opening hours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone, e.g. America/Mexico_City.
    pub time_zone: String,
    /// Open days, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    /// HH:MM.
    pub open: String,
    /// HH:MM.
    pub close: String,
    /// Sent outside the hours.
    pub message: String,
}

/// A bot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotDef {
    /// Name (its key).
    pub name: String,
    /// Whether it answers.
    #[serde(default = "yes")]
    pub active: bool,
    /// Triggers, tried in order.
    pub triggers: Vec<Trigger>,
    /// Nodes by id.
    pub nodes: BTreeMap<String, Node>,
    /// Misunderstandings in a row before handing off (default 2).
    #[serde(default)]
    pub fallback_after: Option<i64>,
    /// Said when nothing matched.
    #[serde(default)]
    pub fallback_text: Option<String>,
    /// Words that always hand off to a person.
    #[serde(default)]
    pub handoff_keywords: Vec<String>,
    /// Opening hours (none: always open).
    #[serde(default)]
    pub business_hours: Option<BusinessHours>,
}

fn yes() -> bool {
    true
}

impl BotDef {
    /// Checks the definition; the error names the field.
    pub fn validate(&self) -> std::result::Result<(), dashoffice_domain::FieldError> {
        use dashoffice_domain::FieldError;
        if self.name.trim().is_empty() || self.name.len() > 64 {
            return Err(FieldError::new("name", "length", "1 to 64 characters"));
        }
        const ACTIONS: &[&str] = &[
            "send_text",
            "send_buttons",
            "send_list",
            "send_template",
            "product_price",
            "order_status",
            "create_draft_order",
            "open_ticket",
            "handoff",
            "end",
        ];
        for (id, n) in &self.nodes {
            if !ACTIONS.contains(&n.action.as_str()) {
                return Err(FieldError::new(format!("nodes.{id}.action"), "one_of", ACTIONS.join(", ")));
            }
            for target in n.next.values() {
                if !self.nodes.contains_key(target) {
                    return Err(FieldError::new(format!("nodes.{id}.next"), "node", format!("no node '{target}'")));
                }
            }
            if n.action == "send_buttons" && (n.buttons.is_empty() || n.buttons.len() > 3) {
                return Err(FieldError::new(format!("nodes.{id}.buttons"), "count", "1 to 3 buttons"));
            }
            if n.action == "send_list" && (n.rows.is_empty() || n.rows.len() > 10) {
                return Err(FieldError::new(format!("nodes.{id}.rows"), "count", "1 to 10 rows"));
            }
        }
        for (i, t) in self.triggers.iter().enumerate() {
            const KINDS: &[&str] = &["keyword", "regex", "intent", "button", "list", "order", "first_message"];
            if !KINDS.contains(&t.kind.as_str()) {
                return Err(FieldError::new(format!("triggers[{i}].kind"), "one_of", KINDS.join(", ")));
            }
            if !self.nodes.contains_key(&t.node) {
                return Err(FieldError::new(format!("triggers[{i}].node"), "node", format!("no node '{}'", t.node)));
            }
            if t.kind == "regex" && regex::Regex::new(&t.value).is_err() {
                return Err(FieldError::new(format!("triggers[{i}].value"), "regex", "not a valid regular expression"));
            }
            if let Some(m) = &t.r#match
                && !["contains", "equals", "starts_with"].contains(&m.as_str())
            {
                return Err(FieldError::new(format!("triggers[{i}].match"), "one_of", "contains, equals, starts_with"));
            }
        }
        if let Some(h) = &self.business_hours {
            if jiff::tz::TimeZone::get(&h.time_zone).is_err() {
                return Err(FieldError::new(
                    "business_hours.time_zone",
                    "iana",
                    "an IANA time zone such as America/Lima",
                ));
            }
            if hhmm(&h.open).is_none() || hhmm(&h.close).is_none() {
                return Err(FieldError::new("business_hours.open", "format", "HH:MM"));
            }
        }
        Ok(())
    }

    /// The bot every shop has until it writes its own: answers prices and stock, order status,
    /// hands off on request, in the customer's language.
    pub fn default_bot() -> Self {
        let node = |action: &str, text: &str| Node {
            action: action.into(),
            text: text.into(),
            buttons: Vec::new(),
            rows: Vec::new(),
            template: None,
            params: Vec::new(),
            next: BTreeMap::new(),
        };
        let trig = |kind: &str, value: &str, node: &str| Trigger {
            kind: kind.into(),
            r#match: None,
            value: value.into(),
            min_confidence: None,
            node: node.into(),
        };
        let mut nodes = BTreeMap::new();
        nodes.insert("price".into(), node("product_price", ""));
        nodes.insert("status".into(), node("order_status", ""));
        nodes.insert("draft".into(), node("create_draft_order", ""));
        nodes.insert("ticket".into(), node("open_ticket", ""));
        nodes.insert("human".into(), node("handoff", ""));
        nodes.insert("bye".into(), node("end", ""));
        nodes.insert("hello".into(), node("send_text", ""));
        Self {
            name: "default".into(),
            active: true,
            triggers: vec![
                trig("order", "", "draft"),
                trig("intent", "handoff", "human"),
                trig("intent", "complaint", "ticket"),
                trig("intent", "returns", "human"),
                trig("intent", "order_status", "status"),
                trig("intent", "price", "price"),
                trig("intent", "stock", "price"),
                trig("intent", "goodbye", "bye"),
                trig("intent", "thanks", "bye"),
                trig("intent", "greeting", "hello"),
                trig("first_message", "", "hello"),
            ],
            nodes,
            fallback_after: Some(2),
            fallback_text: None,
            handoff_keywords: vec!["humano".into(), "agente".into(), "persona".into(), "human".into()],
            business_hours: None,
        }
    }
}

fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Whether `at_ms` falls inside the business hours.
pub fn within_hours(h: &BusinessHours, at_ms: i64) -> bool {
    let tz = jiff::tz::TimeZone::get(&h.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let Ok(ts) = jiff::Timestamp::from_millisecond(at_ms) else { return true };
    let local = ts.to_zoned(tz);
    let day = local.weekday().to_monday_one_offset() as u8;
    let minute = u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
    let (open, close) = (hhmm(&h.open).unwrap_or(0), hhmm(&h.close).unwrap_or(24 * 60));
    h.days.contains(&day) && minute >= open && minute < close
}

// ---------- the engine ----------

/// The inbound message as the bot sees it.
#[derive(Debug, Clone, Default)]
pub struct BotInput {
    /// text, interactive, button, order…
    pub kind: String,
    /// Its text.
    pub text: String,
    /// Type-specific content (button/list ids, order items).
    pub payload: Value,
    /// The first message of the conversation.
    pub first: bool,
    /// When it was sent.
    pub at: i64,
    /// The customer's name.
    pub customer_name: String,
    /// The customer.
    pub customer_id: String,
    /// The conversation's branch.
    pub branch_id: String,
    /// Where the bot left the conversation.
    pub node: String,
    /// Misunderstandings so far.
    pub misunderstood: i64,
}

/// What the bot decided.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Messages to send.
    pub replies: Vec<SendMessage>,
    /// Hand the conversation to a person.
    pub handoff: bool,
    /// Resolve the conversation.
    pub end: bool,
    /// The node now current.
    pub node: String,
    /// Misunderstandings in a row now.
    pub misunderstood: i64,
    /// Create a draft order with these (product id, quantity).
    pub draft_order: Vec<(String, i64)>,
    /// Open a support ticket (or add to the conversation's open one) and put its number where the
    /// replies say `{ticket}`.
    pub ticket: Option<TicketRequest>,
    /// Why: trigger, intent, confidence, node, entities.
    pub explain: Value,
}

/// A support ticket the bot asks for (see [`Decision::ticket`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketRequest {
    /// The ticket's subject: the start of the customer's message.
    pub subject: String,
    /// The customer's whole message.
    pub description: String,
    /// `high` for an angry customer, else `normal`.
    pub priority: String,
    /// The customer's order the message names, if any.
    pub order_id: Option<String>,
}

/// The placeholder of a ticket's number in the bot's replies.
pub const TICKET_PLACEHOLDER: &str = "{ticket}";

fn text_msg(t: String) -> SendMessage {
    SendMessage { kind: Some("text".into()), text: t, ..Default::default() }
}

fn say(lang: &str, es: &str, en: &str) -> String {
    if lang == "en" { en.to_string() } else { es.to_string() }
}

/// Runs `bot` on one inbound message. `conn` reads the catalog, stock and orders.
pub fn decide(conn: &Connection, shop: &str, bot: &BotDef, input: &BotInput) -> Result<Decision> {
    decide_with(conn, shop, bot, input, &|_| None)
}

/// From this many products the bot finds them through the search index (when it is caught up).
const INDEX_FROM: i64 = 200;

/// [`decide`] with the products a message names found through `candidates` (the search index)
/// when it gives them and the shop has at least [`INDEX_FROM`] products.
pub fn decide_with(
    conn: &Connection,
    shop: &str,
    bot: &BotDef,
    input: &BotInput,
    candidates: Candidates<'_>,
) -> Result<Decision> {
    let a = analyse_in(conn, shop, &input.text, candidates);
    decide_analysed(conn, shop, bot, input, a)
}

/// [`analyse`] against shop `shop`'s catalog, the products a message names found through
/// `candidates` (see [`decide_with`]). It only reads, so it may run on a read connection beside
/// the writer, its result handed to [`decide_analysed`].
pub fn analyse_in(conn: &Connection, shop: &str, text: &str, candidates: Candidates<'_>) -> Analysis {
    // A small catalog is read faster than the index is asked (measured: the index cost a
    // 5-product shop's bot 10 % of its throughput).
    // The limit is part of the statement's text: with a bound LIMIT, SQLite prepared the
    // statement again at every run (5 % of the relay's writer in a profile).
    let large = conn
        .prepare_cached(&format!("SELECT count(*) FROM (SELECT 1 FROM products WHERE shop_id = ?1 LIMIT {INDEX_FROM})"))
        .and_then(|mut st| st.query_row([shop], |r| r.get::<_, i64>(0)))
        .is_ok_and(|n| n >= INDEX_FROM);
    analyse(text, &|t| catalog_lookup_with(conn, shop, t, if large { candidates(t) } else { None }))
}

/// [`decide_with`] for a message already analysed (`a`: [`analyse_in`] of `input.text`).
pub fn decide_analysed(conn: &Connection, shop: &str, bot: &BotDef, input: &BotInput, a: Analysis) -> Result<Decision> {
    let lang = a.language.clone();
    let folded = fold(&input.text);
    let reply_id = input.payload.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    let mut explain = json!({
        "bot": bot.name, "intent": a.intent, "confidence": a.confidence, "language": a.language,
        "sentiment": a.sentiment, "products": a.products, "order_numbers": a.order_numbers, "quantities": a.quantities,
    });
    let mut d = Decision { node: input.node.clone(), misunderstood: input.misunderstood, ..Default::default() };

    // Handoff words always win; an angry customer goes to a person too.
    let handoff_word = bot.handoff_keywords.iter().map(|k| fold(k)).find(|k| words(&folded).iter().any(|w| w == k));
    if let Some(k) = handoff_word {
        explain["trigger"] = json!({ "kind": "handoff_keyword", "value": k });
        return handoff(conn, bot, d, explain, &lang, "human");
    }
    // A complaint the bot turns into a ticket hands off too, with the ticket.
    let ticketed = a.intent == "complaint"
        && bot.triggers.iter().any(|t| {
            t.kind == "intent"
                && t.value == "complaint"
                && bot.nodes.get(&t.node).is_some_and(|n| n.action == "open_ticket")
        });
    if a.sentiment <= -0.6 && a.intent != "none" && input.text.len() > 12 && !ticketed {
        explain["trigger"] = json!({ "kind": "sentiment", "value": a.sentiment });
        return handoff(conn, bot, d, explain, &lang, "human");
    }
    if let Some(h) = &bot.business_hours
        && !within_hours(h, input.at)
    {
        explain["trigger"] = json!({ "kind": "business_hours" });
        d.replies.push(text_msg(h.message.clone()));
        d.explain = explain;
        return Ok(d);
    }

    // A reply to the current node's buttons or list.
    let mut chosen: Option<(String, Value)> = None;
    if !reply_id.is_empty()
        && let Some(target) = bot.nodes.get(&input.node).and_then(|n| n.next.get(&reply_id))
    {
        chosen = Some((target.clone(), json!({ "kind": "reply", "value": reply_id })));
    }
    if chosen.is_none() {
        for t in &bot.triggers {
            let hit = match t.kind.as_str() {
                "keyword" => {
                    let v = fold(&t.value);
                    match t.r#match.as_deref().unwrap_or("contains") {
                        "equals" => folded.trim() == v,
                        "starts_with" => folded.trim_start().starts_with(&v),
                        _ => !v.is_empty() && folded.contains(&v),
                    }
                }
                "regex" => regex::Regex::new(&t.value).map(|r| r.is_match(&input.text)).unwrap_or(false),
                "intent" => a.intent == t.value && a.confidence >= t.min_confidence.unwrap_or(0.5),
                "button" | "list" => !reply_id.is_empty() && reply_id == t.value,
                "order" => input.kind == "order",
                "first_message" => input.first,
                _ => false,
            };
            if hit {
                chosen = Some((t.node.clone(), json!({ "kind": t.kind, "value": t.value })));
                break;
            }
        }
    }
    let Some((node_id, trigger)) = chosen else {
        d.misunderstood += 1;
        explain["trigger"] = json!({ "kind": "fallback", "misunderstood": d.misunderstood });
        if d.misunderstood >= bot.fallback_after.unwrap_or(2) {
            return handoff(conn, bot, d, explain, &lang, "fallback");
        }
        let t = bot.fallback_text.clone().unwrap_or_else(|| {
            say(
                &lang,
                "Disculpa, no te entendí. Puedes preguntarme el precio de un producto, el estado de tu pedido, o escribir \"humano\" para hablar con una persona.",
                "Sorry, I did not understand. You can ask me for a product's price, your order's status, or write \"human\" to talk to a person.",
            )
        });
        d.replies.push(text_msg(t));
        d.explain = explain;
        return Ok(d);
    };
    explain["trigger"] = trigger;
    explain["node"] = json!(node_id);
    let Some(node) = bot.nodes.get(&node_id) else {
        d.explain = explain;
        return Ok(d);
    };
    d.node = node_id.clone();
    d.misunderstood = 0;
    let name = input.customer_name.split_whitespace().next().unwrap_or("").to_string();
    let fill = |t: &str| t.replace("{name}", &name);
    // The customer's name after `sep`, when known.
    let called = |sep: &str| if name.is_empty() { String::new() } else { format!("{sep}{name}") };
    // The node's own text, else the built-in one in the customer's language.
    let text_or = |es: String, en: String| if node.text.is_empty() { say(&lang, &es, &en) } else { fill(&node.text) };
    match node.action.as_str() {
        "send_text" => d.replies.push(text_msg(text_or(
            format!("¡Hola{}! ¿En qué te puedo ayudar? Pregúntame por precios, existencias o tu pedido.", called(" ")),
            format!("Hello{}! How can I help? Ask me about prices, stock or your order.", called(" ")),
        ))),
        "send_buttons" => d.replies.push(SendMessage {
            kind: Some("buttons".into()),
            text: fill(&node.text),
            buttons: node.buttons.clone(),
            ..Default::default()
        }),
        "send_list" => d.replies.push(SendMessage {
            kind: Some("list".into()),
            text: fill(&node.text),
            rows: node.rows.clone(),
            list_button: Some(say(&lang, "Ver opciones", "See options")),
            ..Default::default()
        }),
        "send_template" => d.replies.push(SendMessage {
            kind: Some("template".into()),
            template: node.template.clone(),
            params: node.params.iter().map(|p| fill(p)).collect(),
            ..Default::default()
        }),
        "product_price" => {
            let t = product_answer(conn, &input.branch_id, &a, &lang)?;
            if a.products.is_empty() {
                d.misunderstood = input.misunderstood + 1;
            }
            d.replies.push(text_msg(t));
        }
        "order_status" => d.replies.push(text_msg(order_answer(conn, shop, &input.customer_id, &a, &lang)?)),
        "create_draft_order" => {
            let items = input.payload.get("product_items").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut missing = Vec::new();
            for it in items {
                let sku = it.get("product_retailer_id").and_then(Value::as_str).unwrap_or("");
                let qty = it.get("quantity").and_then(Value::as_i64).unwrap_or(1).max(1);
                let id: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM products WHERE shop_id = ?1 AND upper(sku) = upper(?2) AND archived = 0 AND active = 1",
                    )?
                    .query_row([shop, sku], |r| r.get(0))
                    .optional()?;
                match id {
                    Some(id) => d.draft_order.push((id, qty)),
                    None => missing.push(sku.to_string()),
                }
            }
            explain["missing_skus"] = json!(missing);
            let t = if d.draft_order.is_empty() {
                say(
                    &lang,
                    "No encontré esos productos en el catálogo; un asesor te ayudará.",
                    "I could not find those products in the catalog; a person will help you.",
                )
            } else if node.text.is_empty() {
                say(
                    &lang,
                    "¡Gracias! Registramos tu pedido como borrador; un asesor lo confirmará en breve.",
                    "Thank you! We saved your order as a draft; someone will confirm it shortly.",
                )
            } else {
                fill(&node.text)
            };
            d.replies.push(text_msg(t));
            if d.draft_order.is_empty() {
                d.handoff = true;
            }
        }
        "open_ticket" => {
            let t = ticket_request(conn, shop, input, &a)?;
            explain["open_ticket"] = json!({ "subject": t.subject, "priority": t.priority, "order_id": t.order_id });
            d.ticket = Some(t);
            d.replies.push(text_msg(text_or(
                format!(
                    "Lamento lo ocurrido{}. Registré tu caso con el número {TICKET_PLACEHOLDER}; una persona de nuestro equipo lo revisará y te escribirá por aquí.",
                    called(", ")
                ),
                format!(
                    "I am sorry about that{}. I registered your case as {TICKET_PLACEHOLDER}; a person on our team will look into it and write to you here.",
                    called(", ")
                ),
            )));
            d.handoff = true;
        }
        "handoff" => {
            let mut r = handoff(conn, bot, d, explain, &lang, &node_id)?;
            if !node.text.is_empty() {
                r.replies = vec![text_msg(fill(&node.text))];
            }
            return Ok(r);
        }
        "end" => {
            let t = if node.text.is_empty() {
                say(
                    &lang,
                    "¡Gracias por escribirnos! Aquí estamos cuando nos necesites.",
                    "Thanks for writing! We are here whenever you need us.",
                )
            } else {
                fill(&node.text)
            };
            d.replies.push(text_msg(t));
            d.end = true;
        }
        _ => {}
    }
    d.explain = explain;
    Ok(d)
}

/// The ticket for a complaint: the message's start as subject, the whole message as description,
/// high priority when the customer is angry, and the order it names if it is theirs.
fn ticket_request(conn: &Connection, shop: &str, input: &BotInput, a: &Analysis) -> Result<TicketRequest> {
    let said = input.text.split_whitespace().collect::<Vec<_>>().join(" ");
    let subject = if said.chars().count() < 3 {
        say(&a.language, "Reclamo por WhatsApp", "WhatsApp complaint")
    } else if said.chars().count() > 80 {
        format!("{}…", said.chars().take(79).collect::<String>().trim_end())
    } else {
        said
    };
    let mine = crate::entities::customers::identity_ids(conn, &input.customer_id)?;
    let mut order_id = None;
    for number in &a.order_numbers {
        if let Some((id, _, _)) = customers_order(conn, shop, &mine, number)? {
            order_id = Some(id);
            break;
        }
    }
    Ok(TicketRequest {
        subject,
        description: input.text.trim().chars().take(10_000).collect(),
        priority: if a.sentiment <= -0.6 && angry(&input.text) { "high" } else { "normal" }.into(),
        order_id,
    })
}

/// The newest order numbered `number` (whole, or its end: "000042") of the customer records
/// `mine` (a customer and those merged into them): (id, number, status).
fn customers_order(
    conn: &Connection,
    shop: &str,
    mine: &[String],
    number: &str,
) -> Result<Option<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, number, status, customer_id FROM orders WHERE shop_id = ?1 AND upper(number) LIKE ?2
         ORDER BY created_at DESC",
    )?;
    let rows = stmt.query_map(params![shop, format!("%{}", number.to_uppercase())], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })?;
    for row in rows {
        let (id, number, status, customer) = row?;
        if mine.contains(&customer) {
            return Ok(Some((id, number, status)));
        }
    }
    Ok(None)
}

/// Whether a message says more than that something broke: words of anger ("pésimo", "estafa"),
/// not the complaint's own ("roto", "reclamo"), which every complaint has.
fn angry(text: &str) -> bool {
    let complaint = INTENTS.iter().find(|(i, _)| *i == "complaint").map_or(&[][..], |(_, c)| *c);
    words(&fold(text)).iter().any(|w| NEGATIVE.contains(&w.as_str()) && !complaint.contains(&w.as_str()))
}

fn handoff(
    _conn: &Connection,
    _bot: &BotDef,
    mut d: Decision,
    explain: Value,
    lang: &str,
    node: &str,
) -> Result<Decision> {
    d.handoff = true;
    d.node = node.to_string();
    d.replies.push(text_msg(say(
        lang,
        "Te comunico con una persona de nuestro equipo; en un momento te atiende.",
        "I am passing you to a person on our team; they will be with you shortly.",
    )));
    d.explain = explain;
    Ok(d)
}

fn product_answer(conn: &Connection, branch: &str, a: &Analysis, lang: &str) -> Result<String> {
    let Some(p) = a.products.first() else {
        return Ok(say(
            lang,
            "¿De qué producto quieres saber el precio? Escríbeme su nombre o código.",
            "Which product do you want the price of? Send me its name or code.",
        ));
    };
    let (price, currency): (String, String) = conn
        .prepare_cached("SELECT price, currency FROM products WHERE id = ?1")?
        .query_row([&p.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let on_hand: i64 = crate::entities::stock::get(conn, &p.id, branch).map(|s| s.on_hand).unwrap_or(0);
    let stock = match (on_hand > 0, lang) {
        (true, "en") => format!("{on_hand} in stock"),
        (true, _) => format!("tenemos {on_hand} disponibles"),
        (false, "en") => "out of stock at the moment".to_string(),
        (false, _) => "por ahora está agotado".to_string(),
    };
    Ok(match lang {
        "en" => format!("{} ({}) costs {price} {currency}; {stock}.", p.name, p.sku),
        _ => format!("{} ({}) cuesta {price} {currency}; {stock}.", p.name, p.sku),
    })
}

fn order_answer(conn: &Connection, shop: &str, customer: &str, a: &Analysis, lang: &str) -> Result<String> {
    let ids = crate::entities::customers::identity_ids(conn, customer)?;
    // A number named is looked for among this customer's orders only: an order's status is
    // nobody else's business.
    let mut found: Option<(String, String)> = None;
    for n in &a.order_numbers {
        if let Some((_, number, status)) = customers_order(conn, shop, &ids, n)? {
            found = Some((number, status));
            break;
        }
    }
    if found.is_none() {
        for id in &ids {
            let r: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT number, status FROM orders WHERE customer_id = ?1 ORDER BY created_at DESC LIMIT 1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if r.is_some() {
                found = r;
                break;
            }
        }
    }
    Ok(match found {
        None => say(
            lang,
            "No encuentro pedidos a tu nombre. ¿Me compartes el número de pedido?",
            "I cannot find an order of yours. Could you send me the order number?",
        ),
        Some((number, status)) => {
            let es = match status.as_str() {
                "draft" => "en borrador",
                "confirmed" => "confirmado",
                "paid" => "pagado",
                "fulfilled" => "preparado",
                "delivered" => "entregado",
                "cancelled" => "cancelado",
                other => other,
            };
            say(lang, &format!("Tu pedido {number} está {es}."), &format!("Your order {number} is {status}."))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn none(_: &[String]) -> Vec<ProductMatch> {
        Vec::new()
    }

    #[test]
    fn intents_in_spanish_and_english() {
        let a = analyse("¿Cuánto cuesta la camisa azul?", &none);
        assert_eq!((a.intent.as_str(), a.language.as_str()), ("price", "es"));
        assert!(a.confidence >= 0.7, "{a:?}");
        assert_eq!(analyse("quiero hablar con una persona", &none).intent, "handoff");
        assert_eq!(analyse("How much is the blue shirt?", &none).language, "en");
        assert_eq!(analyse("where is my order #A-12", &none).intent, "order_status");
        assert_eq!(analyse("where is my order #A-12", &none).order_numbers, vec!["A-12"]);
        assert_eq!(analyse("hola buenas tardes", &none).intent, "greeting");
        assert_eq!(analyse("quiero 3 camisas", &none).quantities, vec![3]);
        assert!(analyse("el servicio es pésimo, estoy muy molesto", &none).sentiment < 0.0);
        assert_eq!(analyse("asdf qwer", &none).intent, "none");
    }

    #[test]
    fn complaints_are_told_from_questions_and_from_no_problem() {
        for text in [
            "La camisa que compré llegó rota, quiero hacer un reclamo",
            "mi pedido llegó incompleto, quiero una devolución",
            "el producto está defectuoso y no funciona",
            "I want a refund, the mug arrived broken",
            "the blender does not work, I have a complaint",
        ] {
            assert_eq!(analyse(text, &none).intent, "complaint", "{text}");
        }
        assert_eq!(analyse("no hay problema, muchas gracias", &none).intent, "thanks");
        assert_eq!(analyse("no problem, thanks!", &none).intent, "thanks");
        assert_eq!(analyse("gracias, ya se resolvió el problema", &none).intent, "thanks");
        assert_eq!(analyse("hola, mi pedido A1-00042 llegó roto", &none).intent, "complaint");
        assert_eq!(analyse("quiero hablar con una persona, tengo un problema", &none).intent, "handoff");
        assert_eq!(analyse("¿dónde está mi pedido?", &none).intent, "order_status");
        assert_eq!(analyse("¿cuánto cuesta la camisa azul?", &none).intent, "price");
        // Asking how returns work is no complaint (a person answers it); something gone wrong is.
        for text in [
            "¿Puedo devolver una camisa si no me queda?",
            "¿cuál es su política de devoluciones?",
            "hola, ¿cómo hago una devolución?",
            "Can I return it if it does not fit?",
            "what is your refund policy?",
        ] {
            assert_eq!(analyse(text, &none).intent, "returns", "{text}");
        }
        assert_eq!(analyse("¿puedo devolver la camisa? llegó rota", &none).intent, "complaint");
        assert_eq!(analyse("quiero devolver la camisa, no funciona el cierre", &none).intent, "complaint");
        assert_eq!(analyse("quiero un reembolso", &none).intent, "complaint");
        // Asking about the warranty is no complaint; claiming it is.
        assert_ne!(analyse("¿la licuadora tiene garantía?", &none).intent, "complaint");
        assert_eq!(analyse("quiero hacer válida la garantía de la licuadora", &none).intent, "complaint");
    }

    fn input(text: &str) -> BotInput {
        BotInput {
            kind: "text".into(),
            text: text.into(),
            customer_name: "Ana Pérez".into(),
            customer_id: "c1".into(),
            branch_id: "b1".into(),
            at: 1_796_050_800_000,
            ..Default::default()
        }
    }

    #[test]
    fn the_default_bot_makes_a_complaint_a_ticket_and_hands_it_to_a_person() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations().to_latest(&mut conn).unwrap();
        let bot = BotDef::default_bot();
        let d =
            decide(&conn, "s1", &bot, &input("Hola, la taza que compré llegó rota. Quiero hacer un reclamo")).unwrap();
        let t = d.ticket.clone().expect("a ticket");
        assert_eq!(t.subject, "Hola, la taza que compré llegó rota. Quiero hacer un reclamo");
        assert_eq!((t.priority.as_str(), t.order_id), ("normal", None));
        assert!(d.handoff, "{d:?}");
        assert_eq!(d.node, "ticket");
        assert!(d.replies[0].text.contains(TICKET_PLACEHOLDER) && d.replies[0].text.contains("Ana"), "{d:?}");
        assert_eq!(d.explain["intent"], "complaint");
        // A question about returns goes to a person, with no ticket.
        let d = decide(&conn, "s1", &bot, &input("¿Puedo devolver una taza si no me gusta?")).unwrap();
        assert!(d.ticket.is_none() && d.handoff, "{d:?}");
        assert_eq!((d.explain["intent"].as_str(), d.node.as_str()), (Some("returns"), "human"));

        // An angry complaint gets its ticket too, at high priority, rather than a bare handoff. (The
        // first had only the complaint's own words: normal.)
        let angry = "Pésimo servicio, terrible: el pedido llegó roto y nadie responde los mensajes, es una estafa";
        let d = decide(&conn, "s1", &bot, &input(angry)).unwrap();
        let t = d.ticket.expect("a ticket");
        assert_eq!(t.priority, "high");
        assert!(t.subject.ends_with('…') && t.subject.chars().count() <= 80, "{}", t.subject);
        assert_eq!(t.description, angry);

        // A bot without a ticket node hands an angry customer to a person, as before.
        let mut plain = BotDef::default_bot();
        plain.triggers.retain(|t| t.value != "complaint");
        let d = decide(&conn, "s1", &plain, &input(angry)).unwrap();
        assert!(d.ticket.is_none() && d.handoff, "{d:?}");
        assert_eq!(d.explain["trigger"]["kind"], "sentiment");
    }

    #[test]
    fn an_order_named_is_looked_for_among_the_customers_own_orders_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations().to_latest(&mut conn).unwrap();
        for (id, number, customer, status, at) in
            [("o1", "CEN-AAA-000042", "c1", "paid", 1), ("o2", "NOR-BBB-000042", "c2", "draft", 2)]
        {
            conn.execute(
                "INSERT INTO orders(id, shop_id, branch_id, doc_id, number, customer_id, seller_id, status, conflict,
                     currency, subtotal, tax_total, total, total_num, notes, archived, created_at, updated_at)
                 VALUES (?1, 's1', 'b1', 'd', ?2, ?3, 'x', ?4, 0, 'MXN', '1', '0', '1', 1.0, '', 0, ?5, ?5)",
                params![id, number, customer, status, at],
            )
            .unwrap();
        }
        let bot = BotDef::default_bot();
        let asks = |customer: &str, text: &str| {
            decide(&conn, "s1", &bot, &BotInput { customer_id: customer.into(), ..input(text) }).unwrap()
        };
        // By its end: c1's order, not the newer one of c2 that ends the same way.
        let d = asks("c1", "¿Dónde está mi pedido 000042?");
        assert_eq!(d.replies[0].text, "Tu pedido CEN-AAA-000042 está pagado.");
        // Someone else's order, named whole, is not told about.
        let d = asks("c3", "¿Dónde está mi pedido NOR-BBB-000042?");
        assert!(d.replies[0].text.starts_with("No encuentro pedidos a tu nombre"), "{d:?}");
        // A complaint's ticket is about the order only when it is the customer's.
        let d = asks("c1", "Mi pedido CEN-AAA-000042 llegó roto");
        assert_eq!(d.ticket.unwrap().order_id.as_deref(), Some("o1"));
        let d = asks("c2", "Mi pedido CEN-AAA-000042 llegó roto");
        assert_eq!(d.ticket.unwrap().order_id, None);
    }

    #[test]
    fn the_default_bot_is_valid_and_bad_definitions_name_the_field() {
        BotDef::default_bot().validate().unwrap();
        let mut b = BotDef::default_bot();
        b.triggers[0].node = "nowhere".into();
        assert_eq!(b.validate().unwrap_err().field, "triggers[0].node");
        let mut b = BotDef::default_bot();
        b.business_hours = Some(BusinessHours {
            time_zone: "Mars/Olympus".into(),
            days: vec![1],
            open: "09:00".into(),
            close: "18:00".into(),
            message: "x".into(),
        });
        assert_eq!(b.validate().unwrap_err().field, "business_hours.time_zone");
    }

    #[test]
    fn business_hours_follow_the_time_zone() {
        let h = BusinessHours {
            time_zone: "America/Lima".into(),
            days: vec![1, 2, 3, 4, 5],
            open: "09:00".into(),
            close: "18:00".into(),
            message: "cerrado".into(),
        };
        // Monday 2026-11-30 15:00 UTC is 10:00 in Lima (UTC-5): open. 02:00 UTC is 21:00 Sunday: closed.
        assert!(within_hours(&h, 1_796_050_800_000));
        assert!(!within_hours(&h, 1_796_004_000_000));
    }
}
