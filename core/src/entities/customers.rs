//! Customers (CRM) in 1,024 shard documents per shop (`doc::SHARDS`). Phones are stored in E.164. Merging folds a
//! duplicate into another customer: the duplicate stays (marked `merged_into`), so every order and
//! conversation that names it still resolves, and the survivor's history includes both.

use automerge::{Automerge, transaction::Transactable};
use dashoffice_domain::{
    FieldError, FieldErrors, Permission,
    api::{CreateCustomer, CustomerView, ListParams, MergeCustomers, Page, UpdateCustomer},
    normalize_email, normalize_phone, normalize_tags, normalize_tax_id_in, validate_address, validate_name,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};

use super::{clear_or, new_id, org, put_str, tags_from_json, tags_json};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

/// Validated customer fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct CustomerFields {
    pub(crate) name: String,
    pub(crate) phone: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) notes: String,
    pub(crate) wa_id: Option<String>,
    /// Tax id, "" when none.
    pub(crate) tax_id: String,
    /// Billing address, "" when none.
    pub(crate) address: String,
    /// The language of their e-mails ("" = Spanish, the default).
    pub(crate) lang: String,
}

/// A customer's e-mail language: one of [`super::staff::LANGS`].
fn check_lang(l: &str) -> std::result::Result<String, FieldError> {
    let l = l.trim().to_lowercase();
    if super::staff::LANGS.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(FieldError::new("lang", "one_of", "must be one of: es, en"))
    }
}

fn check_notes(n: &str) -> std::result::Result<String, FieldError> {
    if n.chars().count() > 10_000 {
        return Err(FieldError::new("notes", "max_length", "at most 10000 characters"));
    }
    Ok(n.trim().to_string())
}

fn check_wa_id(w: &str) -> std::result::Result<String, FieldError> {
    let w = w.trim().trim_start_matches('+');
    if (6..=20).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()) {
        Ok(w.to_string())
    } else {
        Err(FieldError::new("wa_id", "format", "6 to 20 digits (the WhatsApp number without '+')"))
    }
}

/// Validates a creation request (shared with CSV import).
pub(crate) fn validate_create(
    input: &CreateCustomer,
    region: &str,
) -> std::result::Result<CustomerFields, FieldErrors> {
    let mut e = FieldErrors::new();
    let name = e.check(validate_name("name", &input.name));
    let phone = input
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .and_then(|p| e.check(normalize_phone("phone", p, region)));
    let email =
        input.email.as_deref().filter(|p| !p.trim().is_empty()).and_then(|m| e.check(normalize_email("email", m)));
    let tags = e.check(normalize_tags("tags", &input.tags));
    let notes = e.check(check_notes(&input.notes));
    let wa_id = input.wa_id.as_deref().filter(|p| !p.trim().is_empty()).and_then(|w| e.check(check_wa_id(w)));
    let tax_id = input.tax_id.as_deref().and_then(|t| e.check(normalize_tax_id_in("tax_id", t, region)));
    let address = input.address.as_deref().and_then(|a| e.check(validate_address("address", a)));
    let lang = input.lang.as_deref().filter(|l| !l.trim().is_empty()).and_then(|l| e.check(check_lang(l)));
    e.finish()?;
    Ok(CustomerFields {
        lang: lang.filter(|l| l != "es").unwrap_or_default(),
        name: name.unwrap_or_default(),
        phone,
        email,
        tags: tags.unwrap_or_default(),
        notes: notes.unwrap_or_default(),
        wa_id,
        tax_id: tax_id.unwrap_or_default(),
        address: address.unwrap_or_default(),
    })
}

/// Writes a new customer (validation done); returns its id.
pub(crate) fn insert(ctx: &mut WriteCtx<'_>, shop: &str, f: &CustomerFields) -> Result<String> {
    let id = new_id();
    let now = ctx.now();
    ctx.change(&DocId::customers(shop, &id), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), automerge::ObjType::Map)?;
        put_str(tx, &o, "name", &f.name)?;
        put_str(tx, &o, "phone", f.phone.as_deref().unwrap_or(""))?;
        put_str(tx, &o, "email", f.email.as_deref().unwrap_or(""))?;
        doc::set_set(tx, &o, "tags", &f.tags)?;
        put_str(tx, &o, "notes", &f.notes)?;
        put_str(tx, &o, "wa_id", f.wa_id.as_deref().unwrap_or(""))?;
        // Written only when given: most customers have neither, and a document holds ~100.
        for (k, v) in [("tax_id", &f.tax_id), ("address", &f.address), ("lang", &f.lang)] {
            if !v.is_empty() {
                put_str(tx, &o, k, v)?;
            }
        }
        put_str(tx, &o, "merged_into", "")?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    Ok(id)
}

/// Creates a customer.
pub fn create(ctx: &mut WriteCtx<'_>, caller: &Caller, input: CreateCustomer) -> Result<CustomerView> {
    caller.require(Permission::EditCustomers)?;
    let region = org::get_shop(ctx.conn(), &caller.shop_id)?.phone_region;
    let f = validate_create(&input, &region)?;
    let id = insert(ctx, &caller.shop_id, &f)?;
    get(ctx.conn(), &caller.shop_id, &id)
}

/// Changes a customer; an empty phone, email or wa_id clears it.
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateCustomer) -> Result<CustomerView> {
    caller.require(Permission::EditCustomers)?;
    get(ctx.conn(), &caller.shop_id, id)?;
    let region = org::get_shop(ctx.conn(), &caller.shop_id)?.phone_region;
    let mut e = FieldErrors::new();
    let name = input.name.as_deref().and_then(|s| e.check(validate_name("name", s)));
    let phone = clear_or(input.phone.as_deref(), |s| normalize_phone("phone", s, &region), &mut e);
    let email = clear_or(input.email.as_deref(), |s| normalize_email("email", s), &mut e);
    let wa_id = clear_or(input.wa_id.as_deref(), check_wa_id, &mut e);
    let tags = input.tags.as_deref().and_then(|t| e.check(normalize_tags("tags", t)));
    let notes = input.notes.as_deref().and_then(|n| e.check(check_notes(n)));
    let tax_id = input.tax_id.as_deref().and_then(|t| e.check(normalize_tax_id_in("tax_id", t, &region)));
    let address = input.address.as_deref().and_then(|a| e.check(validate_address("address", a)));
    let lang = input.lang.as_deref().and_then(|l| e.check(check_lang(l)));
    e.finish()?;
    let now = ctx.now();
    ctx.change(&DocId::customers(&caller.shop_id, id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("customer", id))?;
        for (k, v) in [
            ("name", &name),
            ("phone", &phone),
            ("email", &email),
            ("wa_id", &wa_id),
            ("notes", &notes),
            ("tax_id", &tax_id),
            ("address", &address),
            ("lang", &lang),
        ] {
            if let Some(v) = v {
                put_str(tx, &o, k, v)?;
            }
        }
        if let Some(t) = &tags {
            doc::set_set(tx, &o, "tags", t)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), &caller.shop_id, id)
}

/// Archives (deletes) a customer; their orders stay.
pub fn archive(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<CustomerView> {
    caller.require(Permission::Archive)?;
    get(ctx.conn(), &caller.shop_id, id)?;
    super::mark_archived(ctx, &DocId::customers(&caller.shop_id, id), id, "customer")?;
    get(ctx.conn(), &caller.shop_id, id)
}

/// Folds customer `input.from_id` into `id`: tags and notes are combined, missing contact details
/// filled in, and the duplicate is marked as merged. Both histories stay reachable from `id`.
pub fn merge(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: MergeCustomers) -> Result<CustomerView> {
    caller.require(Permission::EditCustomers)?;
    let target = get(ctx.conn(), &caller.shop_id, id)?;
    let from = get(ctx.conn(), &caller.shop_id, &input.from_id)
        .map_err(|_| CoreError::not_found_field("customer", &input.from_id, "from_id"))?;
    if from.id == target.id {
        return Err(FieldError::new("from_id", "distinct", "a customer cannot be merged into itself").into());
    }
    if target.merged_into.is_some() {
        return Err(CoreError::conflict(
            "id",
            "not_merged",
            "this customer was merged into another; merge into that one",
        ));
    }
    if from.merged_into.is_some() {
        return Err(CoreError::conflict("from_id", "not_merged", "that customer was already merged"));
    }
    let mut tags = target.tags.clone();
    tags.extend(from.tags.iter().cloned());
    tags.sort();
    tags.dedup();
    let notes = match (target.notes.is_empty(), from.notes.is_empty()) {
        (_, true) => target.notes.clone(),
        (true, false) => from.notes.clone(),
        (false, false) => format!("{}\n---\n{}", target.notes, from.notes),
    };
    // The merged customer must still keep the rules a customer is written with.
    if tags.len() > 20 {
        return Err(CoreError::conflict(
            "from_id",
            "max_items",
            format!("together they have {} tags and a customer has at most 20: remove some first", tags.len()),
        ));
    }
    if notes.chars().count() > 10_000 {
        return Err(CoreError::conflict(
            "from_id",
            "max_length",
            "together their notes pass 10000 characters: shorten them first",
        ));
    }
    let now = ctx.now();
    let shop = caller.shop_id.clone();
    ctx.change(&DocId::customers(&shop, id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("customer", id))?;
        doc::set_set(tx, &o, "tags", &tags)?;
        put_str(tx, &o, "notes", &notes)?;
        for (k, mine, theirs) in [
            ("phone", &target.phone, &from.phone),
            ("email", &target.email, &from.email),
            ("wa_id", &target.wa_id, &from.wa_id),
        ] {
            if let (None, Some(v)) = (mine, theirs) {
                put_str(tx, &o, k, v)?;
            }
        }
        for (k, mine, theirs) in [("tax_id", &target.tax_id, &from.tax_id), ("address", &target.address, &from.address)]
        {
            if mine.is_empty() && !theirs.is_empty() {
                put_str(tx, &o, k, theirs)?;
            }
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    let from_id = from.id.clone();
    ctx.change(&DocId::customers(&shop, &from_id), &[&from_id], |tx, _| {
        let o = doc::record(tx, &from_id)?.ok_or_else(|| CoreError::not_found("customer", &from_id))?;
        put_str(tx, &o, "merged_into", id)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), &shop, id)
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let shop = doc_id.scope()?.shop_id;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO customers(id, shop_id, doc_id, name, phone, email, tags, notes, wa_id, merged_into, archived, created_at, updated_at,
                                          tax_id, address, lang)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        id,
        shop,
        doc_id.as_str(),
        f.str("name"),
        f.opt_str("phone"),
        f.opt_str("email"),
        tags_json(&f.set(d, "tags")),
        f.str("notes"),
        f.opt_str("wa_id"),
        f.opt_str("merged_into"),
        f.bool("archived", false),
        f.i64("created_at"),
        f.i64("updated_at"),
        f.str("tax_id"),
        f.str("address"),
        Some(f.str("lang")).filter(|l| super::staff::LANGS.contains(&l.as_str())).unwrap_or_else(|| "es".into()),
    ])?;
    Ok(())
}

const COLS: &str =
    "t.id, t.name, t.phone, t.email, t.tags, t.notes, t.wa_id, t.merged_into, t.archived, t.created_at, t.updated_at,
    (SELECT json_group_array(m.id) FROM customers m WHERE m.merged_into = t.id), t.tax_id, t.address, t.lang";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustomerView> {
    Ok(CustomerView {
        id: r.get(0)?,
        name: r.get(1)?,
        phone: r.get(2)?,
        email: r.get(3)?,
        tags: tags_from_json(&r.get::<_, String>(4)?),
        notes: r.get(5)?,
        wa_id: r.get(6)?,
        merged_into: r.get(7)?,
        archived: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        merged_from: tags_from_json(&r.get::<_, String>(11)?),
        tax_id: r.get(12)?,
        address: r.get(13)?,
        lang: r.get(14)?,
    })
}

/// One customer.
pub fn get(conn: &Connection, shop: &str, id: &str) -> Result<CustomerView> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM customers t WHERE t.id = ?1 AND t.shop_id = ?2"))?
        .query_row([id, shop], row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("customer", id))
}

/// The first live customer with this E.164 phone (CSV import matches on it).
pub(crate) fn find_by_phone(conn: &Connection, shop: &str, phone: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM customers WHERE shop_id = ?1 AND phone = ?2 AND archived = 0 AND merged_into IS NULL ORDER BY created_at LIMIT 1")?
        .query_row([shop, phone], |r| r.get(0))
        .optional()?)
}

/// Lists customers: `q` matches name, phone, e-mail, tax id; merged duplicates are hidden unless archived=true.
pub fn list(conn: &Connection, caller: &Caller, p: &ListParams) -> Result<Page<CustomerView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {COLS} FROM customers t"),
        p.sort.as_deref(),
        &[
            ("name", "t.name", SortKind::Text),
            ("created_at", "t.created_at", SortKind::Int),
            ("updated_at", "t.updated_at", SortKind::Int),
        ],
        "name",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.filter("t.shop_id = ?", [Value::Text(caller.shop_id.clone())]);
    if !p.archived.unwrap_or(false) {
        // A merge cycle (two replicas merged a pair in opposite directions): the smaller id survives.
        q.filter(
            "t.archived = 0 AND (t.merged_into IS NULL OR (t.id < t.merged_into AND EXISTS
                (SELECT 1 FROM customers m WHERE m.id = t.merged_into AND m.merged_into = t.id)))",
            [],
        );
    }
    if let Some(tag) = p.tag.as_deref().filter(|s| !s.is_empty()) {
        q.filter("EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)", [Value::Text(tag.to_lowercase())]);
    }
    if let Some(s) = p.q.as_deref().filter(|s| !s.is_empty()) {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        let phone_like = if digits.len() >= 4 { like(&digits, true, true) } else { Value::Text("\u{0}".into()) };
        q.filter(
            "(fold(t.name) LIKE ? ESCAPE '\\' OR t.email LIKE ? ESCAPE '\\' OR t.phone LIKE ? ESCAPE '\\'
              OR (t.tax_id <> '' AND t.tax_id LIKE ? ESCAPE '\\'))",
            [
                like(&crate::search::fold(s), true, true),
                like(&s.to_lowercase(), true, true),
                phone_like,
                like(&s.trim().to_uppercase(), true, true),
            ],
        );
    }
    let sort = p.sort.clone().unwrap_or_else(|| "name".into());
    q.run(conn, row, |c| {
        let v = match sort.trim_start_matches('-') {
            "created_at" => Value::Integer(c.created_at),
            "updated_at" => Value::Integer(c.updated_at),
            _ => Value::Text(c.name.clone()),
        };
        (v, c.id.clone())
    })
}

/// The ids whose history belongs to `id`: itself and everything merged into it, transitively.
pub fn identity_ids(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE m(id) AS (SELECT ?1 UNION SELECT c.id FROM customers c JOIN m ON c.merged_into = m.id) SELECT id FROM m",
    )?;
    Ok(stmt.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?)
}
