//! CSV import and export of products and customers: how shops move in from spreadsheets and other
//! systems. Every bad row is reported with its line number; the user chooses between importing
//! nothing unless every row is good, or importing the good rows.

use rust_decimal::Decimal;
use std::{collections::HashMap, io::Read, sync::Arc};

use dashoffice_domain::{
    FieldError, Permission,
    api::{CreateCustomer, CreateProduct, DecimalText, ImportReport, ImportRowError},
};

use crate::{
    Caller, Replica,
    entities::{customers, org, products},
    error::{CoreError, Result},
};

/// What to do when some rows are bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Write nothing unless every row is valid (one transaction).
    AllOrNothing,
    /// Write the valid rows, report the others.
    ValidOnly,
}

impl ImportMode {
    /// Parses `all` or `valid`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "all" | "all_or_nothing" => Ok(Self::AllOrNothing),
            "valid" | "valid_only" => Ok(Self::ValidOnly),
            _ => {
                Err(FieldError::new("mode", "one_of", "'all' (all or nothing) or 'valid' (import the valid rows)")
                    .into())
            }
        }
    }
}

/// Called with (rows written, rows to write).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Product CSV header.
pub const PRODUCT_COLUMNS: [&str; 8] =
    ["sku", "name", "description", "price", "currency", "tax_rate", "active", "tags"];
/// Customer CSV header.
pub const CUSTOMER_COLUMNS: [&str; 9] =
    ["name", "phone", "email", "tags", "notes", "wa_id", "tax_id", "address", "lang"];

/// Columns of the support tickets export (times in UTC, RFC 3339).
pub const TICKET_COLUMNS: [&str; 12] = [
    "number",
    "subject",
    "status",
    "priority",
    "customer",
    "order",
    "handled_by",
    "opened_at",
    "due_at",
    "resolved_at",
    "comments",
    "description",
];

/// Columns of the invoice register (times in the shop's time zone, RFC 3339 with the offset):
/// invoices, then credit notes (`kind`; their amounts negative, `invoice` the one they undo).
pub const INVOICE_COLUMNS: [&str; 19] = [
    "number",
    "series",
    "sequence",
    "posted_at",
    "provisional_number",
    "issued_at",
    "order",
    "branch",
    "customer",
    "customer_tax_id",
    "currency",
    "subtotal",
    "tax",
    "total",
    "order_status",
    "state",
    "duplicate",
    "kind",
    "invoice",
];

const CHUNK: usize = 1000;

fn split_tags(s: &str) -> Vec<String> {
    s.split(['|', ';']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn parse_bool(s: &str) -> std::result::Result<Option<bool>, FieldError> {
    match s.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "yes" | "si" | "sí" | "y" => Ok(Some(true)),
        "0" | "false" | "no" | "n" => Ok(Some(false)),
        _ => Err(FieldError::new("active", "boolean", "true/false, yes/no, sí/no or 1/0")),
    }
}

struct Rows {
    header: HashMap<String, usize>,
    rows: Vec<(u64, csv::StringRecord)>,
}

fn read_rows(input: impl Read, required: &[&str], known: &[&str]) -> Result<Rows> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(input);
    let headers =
        rdr.headers().map_err(|e| FieldError::new("file", "csv", format!("cannot read the header: {e}")))?.clone();
    let header: HashMap<String, usize> =
        headers.iter().enumerate().map(|(i, h)| (h.trim_start_matches('\u{feff}').to_lowercase(), i)).collect();
    for r in required {
        if !header.contains_key(*r) {
            return Err(FieldError::new(
                "file",
                "header",
                format!("missing column '{r}'; columns are {}", known.join(",")),
            )
            .into());
        }
    }
    if let Some(unknown) = header.keys().find(|h| !known.contains(&h.as_str())) {
        return Err(FieldError::new(
            "file",
            "header",
            format!("unknown column '{unknown}'; columns are {}", known.join(",")),
        )
        .into());
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            FieldError::new("file", "csv", format!("line {line}: {e}"))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        rows.push((line, rec));
    }
    Ok(Rows { header, rows })
}

fn col<'a>(rows: &Rows, rec: &'a csv::StringRecord, name: &str) -> &'a str {
    rows.header.get(name).and_then(|i| rec.get(*i)).unwrap_or("")
}

fn row_errors(line: u64, e: crate::CoreError) -> Vec<ImportRowError> {
    match e {
        CoreError::Validation(fe) => {
            fe.0.into_iter()
                .map(|f| ImportRowError { line, field: format!("{}:{}", f.field, f.rule), message: f.message })
                .collect()
        }
        other => vec![ImportRowError { line, field: "row".into(), message: other.to_string() }],
    }
}

fn finish(report: &mut ImportReport, mode: ImportMode) -> bool {
    report.errors.sort_by_key(|e| e.line);
    mode != ImportMode::AllOrNothing || report.errors.is_empty()
}

/// Imports products; rows with a known SKU update that product.
pub fn import_products(
    replica: &Replica,
    caller: &Caller,
    input: impl Read,
    mode: ImportMode,
    progress: Progress,
) -> Result<ImportReport> {
    caller.require(Permission::ImportExport)?;
    caller.require(Permission::EditCatalog)?;
    let rows = read_rows(input, &["sku", "name", "price"], &PRODUCT_COLUMNS)?;
    let shop = replica.read(|c| org::get_shop(c, &caller.shop_id))?;
    let mut report =
        ImportReport { rows: rows.rows.len() as u64, created: 0, updated: 0, errors: Vec::new(), committed: false };
    let mut valid: Vec<products::ProductFields> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (line, rec) in &rows.rows {
        let active = match parse_bool(col(&rows, rec, "active")) {
            Ok(a) => a,
            Err(e) => {
                report.errors.extend(row_errors(*line, e.into()));
                continue;
            }
        };
        let tax = col(&rows, rec, "tax_rate");
        let currency = col(&rows, rec, "currency");
        let input = CreateProduct {
            sku: col(&rows, rec, "sku").to_string(),
            name: col(&rows, rec, "name").to_string(),
            description: col(&rows, rec, "description").to_string(),
            price: DecimalText(col(&rows, rec, "price").to_string()),
            currency: (!currency.is_empty()).then(|| currency.to_string()),
            tax_rate: (!tax.is_empty()).then(|| DecimalText(tax.to_string())),
            active,
            tags: split_tags(col(&rows, rec, "tags")),
        };
        match products::validate_create(&input, &shop.currency) {
            Ok(f) => {
                if let Some(first) = seen.insert(f.sku.clone(), *line) {
                    report.errors.push(ImportRowError {
                        line: *line,
                        field: "sku:unique".into(),
                        message: format!("SKU '{}' already on line {first}", f.sku),
                    });
                } else {
                    valid.push(f);
                }
            }
            Err(e) => report.errors.extend(row_errors(*line, e.into())),
        }
    }
    if !finish(&mut report, mode) {
        return Ok(report);
    }
    let (c, u) =
        write_rows(replica, &caller.shop_id, valid, mode, progress, |ctx, shop, f| {
            match products::sku_owner(ctx.conn(), shop, &f.sku)? {
                Some(id) => update_product(ctx, shop, &id, f).map(|_| false),
                None => products::insert(ctx, shop, f).map(|_| true),
            }
        })?;
    report.created = c;
    report.updated = u;
    report.committed = true;
    Ok(report)
}

fn update_product(ctx: &mut crate::WriteCtx<'_>, shop: &str, id: &str, f: &products::ProductFields) -> Result<()> {
    let now = ctx.now();
    ctx.change(&crate::doc::DocId::products(shop, id), &[id], |tx, _| {
        use automerge::transaction::Transactable;
        let o = crate::doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("product", id))?;
        tx.put(&o, "name", f.name.as_str())?;
        tx.put(&o, "description", f.description.as_str())?;
        tx.put(&o, "price", f.price.to_string())?;
        tx.put(&o, "currency", f.currency.as_str())?;
        tx.put(&o, "tax_rate", f.tax_rate.to_string())?;
        tx.put(&o, "active", f.active)?;
        crate::doc::set_set(tx, &o, "tags", &f.tags)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

fn update_customer(ctx: &mut crate::WriteCtx<'_>, shop: &str, id: &str, f: &customers::CustomerFields) -> Result<()> {
    let now = ctx.now();
    ctx.change(&crate::doc::DocId::customers(shop, id), &[id], |tx, _| {
        use automerge::transaction::Transactable;
        let o = crate::doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("customer", id))?;
        tx.put(&o, "name", f.name.as_str())?;
        if let Some(e) = &f.email {
            tx.put(&o, "email", e.as_str())?;
        }
        if let Some(w) = &f.wa_id {
            tx.put(&o, "wa_id", w.as_str())?;
        }
        if !f.notes.is_empty() {
            tx.put(&o, "notes", f.notes.as_str())?;
        }
        for (k, v) in [("tax_id", &f.tax_id), ("address", &f.address), ("lang", &f.lang)] {
            if !v.is_empty() {
                tx.put(&o, k, v.as_str())?;
            }
        }
        crate::doc::set_set(tx, &o, "tags", &f.tags)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

/// Writes validated rows: one transaction for all-or-nothing, chunks of [`CHUNK`] otherwise.
/// `upsert` returns whether it created (true) or updated (false). Returns (created, updated).
fn write_rows<F: Clone + Send + Sync + 'static>(
    replica: &Replica,
    shop: &str,
    rows: Vec<F>,
    mode: ImportMode,
    progress: Progress,
    upsert: fn(&mut crate::WriteCtx<'_>, &str, &F) -> Result<bool>,
) -> Result<(u64, u64)> {
    let total = rows.len() as u64;
    let chunk = if mode == ImportMode::AllOrNothing { rows.len().max(1) } else { CHUNK };
    let (mut created, mut updated) = (0u64, 0u64);
    for part in rows.chunks(chunk) {
        let (part, shop, p, base) = (part.to_vec(), shop.to_string(), progress.clone(), created + updated);
        let (c, u) = replica.write_blocking(move |ctx| {
            let (mut c, mut u) = (0u64, 0u64);
            for (i, f) in part.iter().enumerate() {
                if upsert(ctx, &shop, f)? {
                    c += 1;
                } else {
                    u += 1;
                }
                if (i + 1) % CHUNK == 0 {
                    p(base + i as u64 + 1, total);
                }
            }
            Ok((c, u))
        })?;
        created += c;
        updated += u;
        progress(created + updated, total);
    }
    Ok((created, updated))
}

/// Imports customers; rows whose phone matches a customer update that customer.
pub fn import_customers(
    replica: &Replica,
    caller: &Caller,
    input: impl Read,
    mode: ImportMode,
    progress: Progress,
) -> Result<ImportReport> {
    caller.require(Permission::ImportExport)?;
    caller.require(Permission::EditCustomers)?;
    let rows = read_rows(input, &["name"], &CUSTOMER_COLUMNS)?;
    let shop = replica.read(|c| org::get_shop(c, &caller.shop_id))?;
    let mut report =
        ImportReport { rows: rows.rows.len() as u64, created: 0, updated: 0, errors: Vec::new(), committed: false };
    let mut valid: Vec<customers::CustomerFields> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (line, rec) in &rows.rows {
        let opt = |k: &str| Some(col(&rows, rec, k).to_string()).filter(|s| !s.is_empty());
        let input = CreateCustomer {
            name: col(&rows, rec, "name").to_string(),
            phone: opt("phone"),
            email: opt("email"),
            tags: split_tags(col(&rows, rec, "tags")),
            notes: col(&rows, rec, "notes").to_string(),
            wa_id: opt("wa_id"),
            tax_id: opt("tax_id"),
            address: opt("address"),
            lang: opt("lang"),
        };
        match customers::validate_create(&input, &shop.phone_region) {
            Ok(f) => {
                if let Some(first) = f.phone.as_ref().and_then(|p| seen.insert(p.clone(), *line)) {
                    report.errors.push(ImportRowError {
                        line: *line,
                        field: "phone:unique".into(),
                        message: format!("phone already on line {first}"),
                    });
                } else {
                    valid.push(f);
                }
            }
            Err(e) => report.errors.extend(row_errors(*line, e.into())),
        }
    }
    if !finish(&mut report, mode) {
        return Ok(report);
    }
    let (c, u) = write_rows(replica, &caller.shop_id, valid, mode, progress, |ctx, shop, f| {
        let existing = match &f.phone {
            Some(p) => customers::find_by_phone(ctx.conn(), shop, p)?,
            None => None,
        };
        match existing {
            Some(id) => update_customer(ctx, shop, &id, f).map(|_| false),
            None => customers::insert(ctx, shop, f).map(|_| true),
        }
    })?;
    report.created = c;
    report.updated = u;
    report.committed = true;
    Ok(report)
}

/// Writes every live product as CSV.
pub fn export_products(replica: &Replica, caller: &Caller, out: impl std::io::Write) -> Result<u64> {
    caller.require(Permission::ImportExport)?;
    let rows: Vec<[String; 8]> = shop_rows(
        replica,
        caller,
        "SELECT sku, name, description, price, currency, tax_rate, active, tags FROM products WHERE shop_id = ?1 AND archived = 0 ORDER BY sku",
        |r| {
            let tags: String = r.get(7)?;
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                if r.get::<_, bool>(6)? { "true".into() } else { "false".into() },
                crate::entities::tags_from_json(&tags).join("|"),
            ])
        },
    )?;
    write_csv(out, PRODUCT_COLUMNS, &rows)
}

/// Writes every live customer as CSV.
pub fn export_customers(replica: &Replica, caller: &Caller, out: impl std::io::Write) -> Result<u64> {
    caller.require(Permission::ImportExport)?;
    let rows: Vec<[String; 9]> = shop_rows(
        replica,
        caller,
        "SELECT name, COALESCE(phone, ''), COALESCE(email, ''), tags, notes, COALESCE(wa_id, ''), tax_id, address, lang FROM customers
         WHERE shop_id = ?1 AND archived = 0 AND merged_into IS NULL ORDER BY name, id",
        |r| {
            let tags: String = r.get(3)?;
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                crate::entities::tags_from_json(&tags).join("|"),
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ])
        },
    )?;
    write_csv(out, CUSTOMER_COLUMNS, &rows)
}

/// Exports every support ticket, newest first.
pub fn export_tickets(replica: &Replica, caller: &Caller, out: impl std::io::Write) -> Result<u64> {
    caller.require(Permission::ImportExport)?;
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()).map(|t| t.to_string()).unwrap_or_default()
    };
    let rows: Vec<[String; 12]> = shop_rows(
        replica,
        caller,
        "SELECT t.number, t.subject, t.status, t.priority, COALESCE(cu.name, ''), COALESCE(o.number, ''),
                COALESCE(s.name, ''), t.created_at, t.due_at, t.resolved_at, t.comment_count, t.description
         FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id LEFT JOIN orders o ON o.id = t.order_id
              LEFT JOIN staff s ON s.id = t.assignee_id
         WHERE t.shop_id = ?1 ORDER BY t.created_at DESC, t.id",
        |r| {
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                time(r.get(7)?),
                time(r.get(8)?),
                time(r.get(9)?),
                r.get::<_, i64>(10)?.to_string(),
                r.get(11)?,
            ])
        },
    )?;
    write_csv(out, TICKET_COLUMNS, &rows)
}

/// The start of `month` (`YYYY-MM`) and of the month after, in Unix ms, in time zone `tz`.
fn month_bounds(month: &str, tz: &jiff::tz::TimeZone) -> Result<(i64, i64)> {
    let bad = || FieldError::new("month", "format", "a month as YYYY-MM, e.g. 2026-12");
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad().into());
    }
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = jiff::civil::Date::new(y, m, 1).map_err(|_| bad())?;
    let end = start.checked_add(jiff::Span::new().months(1)).map_err(|_| bad())?;
    let ms = |d: jiff::civil::Date| -> Result<i64> {
        Ok(d.to_zoned(tz.clone()).map_err(|_| bad())?.timestamp().as_millisecond())
    };
    Ok((ms(start)?, ms(end)?))
}

/// Writes the invoice register an accountant asks for: every issued invoice of the branches the
/// caller sees — those with their legal number in series and number order, then those still
/// waiting for one (`state` posted or pending) — then the credit notes the same way, optionally
/// of one `month` (`YYYY-MM`, by the day the legal number was given, or issued while pending, in
/// the shop's time zone).
pub fn export_invoices(
    replica: &Replica,
    caller: &Caller,
    month: Option<&str>,
    out: impl std::io::Write,
) -> Result<u64> {
    caller.require(Permission::ImportExport)?;
    let shop = replica.read(|c| org::get_shop(c, &caller.shop_id))?;
    let tz = jiff::tz::TimeZone::get(&shop.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let (from, to) = match month.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => month_bounds(m, &tz)?,
        None => (i64::MIN, i64::MAX),
    };
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
            .unwrap_or_default()
    };
    let branch = caller.branch_limit().map(str::to_string);
    // Invoices, then credit notes (their amounts negative): the same columns from other fields.
    let query = |p: &str| {
        format!(
            "SELECT o.{p}_number, o.{p}_series, o.{p}_seq, o.{p}_posted_at, o.{p}_provisional,
                    o.{p}_issued_at, o.number, COALESCE(b.code, ''), COALESCE(cu.name, ''), COALESCE(cu.tax_id, ''),
                    o.currency, o.subtotal, o.tax_total, o.total, o.status,
                    (o.{p}_number != '' AND EXISTS (SELECT 1 FROM orders d WHERE d.shop_id = o.shop_id
                        AND d.{p}_number != '' AND d.{p}_number = o.{p}_number AND d.id != o.id)),
                    o.invoice_number, o.id
             FROM orders o LEFT JOIN branches b ON b.id = o.branch_id LEFT JOIN customers cu ON cu.id = o.customer_id
             WHERE o.shop_id = ?1 AND o.{p}_issued_at IS NOT NULL AND (?2 IS NULL OR o.branch_id = ?2)
               AND COALESCE(o.{p}_posted_at, o.{p}_issued_at) >= ?3
               AND COALESCE(o.{p}_posted_at, o.{p}_issued_at) < ?4
             ORDER BY o.{p}_number = '', o.{p}_series, o.{p}_seq, o.{p}_issued_at, o.id"
        )
    };
    let negative = |amount: String| match amount.strip_prefix('-') {
        Some(positive) => positive.to_string(),
        None if amount.trim_start_matches(['0', '.']).is_empty() => amount,
        None => format!("-{amount}"),
    };
    let mut rows: Vec<[String; 19]> = Vec::new();
    // The returns' credit notes (accepted returns of invoiced orders), after the orders' own; the
    // same columns, with no duplicates to flag and no order id (nothing to take off).
    let returns_sql = "SELECT r.number, r.series, r.seq, r.posted_at, r.provisional, r.at, o.number, COALESCE(b.code, ''),
                    COALESCE(cu.name, ''), COALESCE(cu.tax_id, ''), o.currency, r.subtotal, r.tax, r.total, o.status,
                    0, o.invoice_number, ''
             FROM order_returns r JOIN orders o ON o.id = r.order_id
             LEFT JOIN branches b ON b.id = o.branch_id LEFT JOIN customers cu ON cu.id = o.customer_id
             WHERE o.shop_id = ?1 AND r.accepted = 1 AND o.invoice_issued_at IS NOT NULL AND (?2 IS NULL OR o.branch_id = ?2)
               AND COALESCE(r.posted_at, r.at) >= ?3 AND COALESCE(r.posted_at, r.at) < ?4
             ORDER BY r.number = '', r.series, r.seq, r.at, r.id"
        .to_string();
    for (sql, kind) in [(query("invoice"), "invoice"), (query("credit"), "credit_note"), (returns_sql, "credit_note")] {
        let credit = kind == "credit_note";
        let more = replica.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let mut returned = c.prepare_cached(
                "SELECT subtotal, tax, total FROM order_returns WHERE order_id = ?1 AND accepted = 1 AND netted = 1",
            )?;
            let v = stmt
                .query_map(rusqlite::params![caller.shop_id, branch, from, to], |r| {
                    let number: String = r.get(0)?;
                    // A credit note undoes what the returns' own credit notes did not.
                    let mut less = [Decimal::ZERO; 3];
                    let order: String = r.get(17)?;
                    if credit && !order.is_empty() {
                        let mut rows = returned.query([order])?;
                        while let Some(x) = rows.next()? {
                            for (k, l) in less.iter_mut().enumerate() {
                                *l += x.get::<_, String>(k)?.parse::<Decimal>().unwrap_or_default();
                            }
                        }
                    }
                    let amount = |i: usize| -> rusqlite::Result<String> {
                        let a: String = r.get(i)?;
                        if !credit {
                            return Ok(a);
                        }
                        let net = a.parse::<Decimal>().unwrap_or_default() - less[i - 11];
                        Ok(negative(net.to_string()))
                    };
                    Ok([
                        number.clone(),
                        r.get(1)?,
                        r.get::<_, Option<i64>>(2)?.map(|n| n.to_string()).unwrap_or_default(),
                        time(r.get(3)?),
                        r.get(4)?,
                        time(r.get(5)?),
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        amount(11)?,
                        amount(12)?,
                        amount(13)?,
                        r.get(14)?,
                        if number.is_empty() { "pending".into() } else { "posted".into() },
                        if r.get::<_, bool>(15)? { "true".into() } else { "false".into() },
                        kind.into(),
                        if credit { r.get(16)? } else { String::new() },
                    ])
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        rows.extend(more);
    }
    write_csv(out, INVOICE_COLUMNS, &rows)
}

/// The rows `sql` (with the shop as `?1`) reads for the caller's shop, each made by `row`.
fn shop_rows<const N: usize>(
    replica: &Replica,
    caller: &Caller,
    sql: &str,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<[String; N]>,
) -> Result<Vec<[String; N]>> {
    replica.read(|c| {
        let mut stmt = c.prepare(sql)?;
        let v = stmt.query_map([&caller.shop_id], |r| row(r))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    })
}

/// Writes a header and rows as CSV; returns the number of rows.
fn write_csv<const N: usize>(out: impl std::io::Write, header: [&str; N], rows: &[[String; N]]) -> Result<u64> {
    let io = |e: csv::Error| CoreError::Storage(format!("writing CSV: {e}"));
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header).map_err(io)?;
    for r in rows {
        w.write_record(r).map_err(io)?;
    }
    w.flush().map_err(|e| CoreError::Storage(format!("writing CSV: {e}")))?;
    Ok(rows.len() as u64)
}
