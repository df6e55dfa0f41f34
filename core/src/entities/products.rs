//! The catalog: products in 1,024 shard documents per shop (`doc::SHARDS`). SKUs are unique per shop where one
//! replica can see it; two replicas creating the same SKU offline both keep their product, and
//! the projection flags them (`sku_conflict`) until someone renames one.

use automerge::{Automerge, transaction::Transactable};
use dashoffice_domain::{
    Currency, FieldError, FieldErrors, Permission,
    api::{CreateProduct, ListParams, Page, ProductView, UpdateProduct},
    normalize_tags, parse_decimal, validate_name, validate_sku, validate_tax_rate,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};
use rust_decimal::{Decimal, prelude::ToPrimitive};

use super::{new_id, org, put_str, tags_from_json, tags_json};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

/// Validated product fields.
#[derive(Debug, Clone)]
pub(crate) struct ProductFields {
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price: Decimal,
    pub(crate) currency: String,
    pub(crate) tax_rate: Decimal,
    pub(crate) active: bool,
    pub(crate) tags: Vec<String>,
}

fn check_price(text: &str) -> std::result::Result<Decimal, FieldError> {
    let p = parse_decimal("price", text, 4)?;
    if p < Decimal::ZERO {
        return Err(FieldError::new("price", "min", "must not be negative"));
    }
    if p > Decimal::from(1_000_000_000_i64) {
        return Err(FieldError::new("price", "max", "at most 1000000000"));
    }
    Ok(p)
}

fn check_description(d: &str) -> std::result::Result<String, FieldError> {
    if d.chars().count() > 5000 {
        return Err(FieldError::new("description", "max_length", "at most 5000 characters"));
    }
    Ok(d.trim().to_string())
}

/// Shows at least the currency's minor digits: 120.5 MXN is "120.50".
fn money_scale(mut p: Decimal, c: Currency) -> Decimal {
    let dp = p.scale().max(c.minor_digits());
    p.rescale(dp);
    p
}

/// Validates a creation request (shared with CSV import).
pub(crate) fn validate_create(
    input: &CreateProduct,
    shop_currency: &str,
) -> std::result::Result<ProductFields, FieldErrors> {
    let mut e = FieldErrors::new();
    let sku = e.check(validate_sku("sku", &input.sku));
    let name = e.check(validate_name("name", &input.name));
    let description = e.check(check_description(&input.description));
    let price = e.check(check_price(&input.price.0));
    let currency = e.check(Currency::parse("currency", input.currency.as_deref().unwrap_or(shop_currency)));
    let tax_rate = match &input.tax_rate {
        Some(t) => e.check(validate_tax_rate("tax_rate", &t.0)),
        None => Some(Decimal::ZERO),
    };
    let tags = e.check(normalize_tags("tags", &input.tags));
    e.finish()?;
    match (sku, name, description, price, currency, tax_rate, tags) {
        (Some(sku), Some(name), Some(description), Some(price), Some(currency), Some(tax_rate), Some(tags)) => {
            Ok(ProductFields {
                sku,
                name,
                description,
                price: money_scale(price, currency),
                currency: currency.code().to_string(),
                tax_rate,
                active: input.active.unwrap_or(true),
                tags,
            })
        }
        _ => Err(FieldError::new("body", "invalid", "invalid product").into()),
    }
}

pub(crate) fn sku_owner(conn: &Connection, shop: &str, sku: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM products WHERE shop_id = ?1 AND sku = ?2 AND archived = 0 LIMIT 1")?
        .query_row([shop, sku], |r| r.get(0))
        .optional()?)
}

/// Writes a new product (validation done); returns its id.
pub(crate) fn insert(ctx: &mut WriteCtx<'_>, shop: &str, f: &ProductFields) -> Result<String> {
    let id = new_id();
    let now = ctx.now();
    ctx.change(&DocId::products(shop, &id), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), automerge::ObjType::Map)?;
        put_str(tx, &o, "sku", &f.sku)?;
        put_str(tx, &o, "name", &f.name)?;
        put_str(tx, &o, "description", &f.description)?;
        put_str(tx, &o, "price", &f.price.to_string())?;
        put_str(tx, &o, "currency", &f.currency)?;
        put_str(tx, &o, "tax_rate", &f.tax_rate.to_string())?;
        tx.put(&o, "active", f.active)?;
        doc::set_set(tx, &o, "tags", &f.tags)?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    Ok(id)
}

/// Creates a product.
pub fn create(ctx: &mut WriteCtx<'_>, caller: &Caller, input: CreateProduct) -> Result<ProductView> {
    caller.require(Permission::EditCatalog)?;
    let shop = org::get_shop(ctx.conn(), &caller.shop_id)?;
    let f = validate_create(&input, &shop.currency)?;
    if sku_owner(ctx.conn(), &caller.shop_id, &f.sku)?.is_some() {
        return Err(CoreError::conflict(
            "sku",
            "unique",
            format!("SKU '{}' is already used by another product", f.sku),
        ));
    }
    let id = insert(ctx, &caller.shop_id, &f)?;
    get(ctx.conn(), &caller.shop_id, &id)
}

/// Changes a product. Prices and details need EditCatalog.
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateProduct) -> Result<ProductView> {
    caller.require(Permission::EditCatalog)?;
    let current = get(ctx.conn(), &caller.shop_id, id)?;
    let mut e = FieldErrors::new();
    let sku = input.sku.as_deref().and_then(|s| e.check(validate_sku("sku", s)));
    let name = input.name.as_deref().and_then(|s| e.check(validate_name("name", s)));
    let description = input.description.as_deref().and_then(|s| e.check(check_description(s)));
    let price = input.price.as_ref().and_then(|p| e.check(check_price(&p.0)));
    let currency = input.currency.as_deref().and_then(|c| e.check(Currency::parse("currency", c)));
    let tax_rate = input.tax_rate.as_ref().and_then(|t| e.check(validate_tax_rate("tax_rate", &t.0)));
    let tags = input.tags.as_deref().and_then(|t| e.check(normalize_tags("tags", t)));
    e.finish()?;
    if let Some(s) = &sku
        && *s != current.sku
        && sku_owner(ctx.conn(), &caller.shop_id, s)?.is_some_and(|o| o != id)
    {
        return Err(CoreError::conflict("sku", "unique", format!("SKU '{s}' is already used by another product")));
    }
    let now = ctx.now();
    ctx.change(&DocId::products(&caller.shop_id, id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("product", id))?;
        if let Some(v) = &sku {
            put_str(tx, &o, "sku", v)?;
        }
        if let Some(v) = &name {
            put_str(tx, &o, "name", v)?;
        }
        if let Some(v) = &description {
            put_str(tx, &o, "description", v)?;
        }
        if let Some(v) = price {
            let c = currency.or_else(|| Currency::parse("currency", &current.currency).ok());
            let v = match c {
                Some(c) => money_scale(v, c),
                None => v,
            };
            put_str(tx, &o, "price", &v.to_string())?;
        }
        if let Some(v) = currency {
            put_str(tx, &o, "currency", v.code())?;
        }
        if let Some(v) = tax_rate {
            put_str(tx, &o, "tax_rate", &v.to_string())?;
        }
        if let Some(v) = input.active {
            tx.put(&o, "active", v)?;
        }
        if let Some(v) = &tags {
            doc::set_set(tx, &o, "tags", v)?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get(ctx.conn(), &caller.shop_id, id)
}

/// Archives (deletes) a product; it stays in old orders.
pub fn archive(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<ProductView> {
    caller.require(Permission::EditCatalog)?;
    caller.require(Permission::Archive)?;
    get(ctx.conn(), &caller.shop_id, id)?;
    super::mark_archived(ctx, &DocId::products(&caller.shop_id, id), id, "product")?;
    get(ctx.conn(), &caller.shop_id, id)
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let shop = doc_id.scope()?.shop_id;
    let price = f.str("price");
    let price_num = price.parse::<Decimal>().ok().and_then(|p| p.to_f64()).unwrap_or(0.0);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO products(id, shop_id, doc_id, sku, name, description, price, price_num, currency, tax_rate,
                                         active, tags, archived, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        id,
        shop,
        doc_id.as_str(),
        f.str("sku"),
        f.str("name"),
        f.str("description"),
        price,
        price_num,
        f.str("currency"),
        f.str("tax_rate"),
        f.bool("active", true),
        tags_json(&f.set(d, "tags")),
        f.bool("archived", false),
        f.i64("created_at"),
        f.i64("updated_at"),
    ])?;
    Ok(())
}

const COLS: &str = "t.id, t.sku, t.name, t.description, t.price, t.currency, t.tax_rate, t.active, t.tags, t.archived,
    EXISTS (SELECT 1 FROM products p2 INDEXED BY products_sku WHERE p2.shop_id = t.shop_id AND p2.sku = t.sku AND p2.id <> t.id AND p2.archived = 0),
    t.created_at, t.updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProductView> {
    Ok(ProductView {
        id: r.get(0)?,
        sku: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        price: r.get(4)?,
        currency: r.get(5)?,
        tax_rate: r.get(6)?,
        active: r.get(7)?,
        tags: tags_from_json(&r.get::<_, String>(8)?),
        archived: r.get(9)?,
        sku_conflict: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// One product.
pub fn get(conn: &Connection, shop: &str, id: &str) -> Result<ProductView> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM products t WHERE t.id = ?1 AND t.shop_id = ?2"))?
        .query_row([id, shop], row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("product", id))
}

/// Lists products: `q` matches name or SKU; filters `tag`, `active`, `archived`.
pub fn list(conn: &Connection, caller: &Caller, p: &ListParams) -> Result<Page<ProductView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {COLS} FROM products t"),
        p.sort.as_deref(),
        &[
            ("name", "t.name", SortKind::Text),
            ("sku", "t.sku", SortKind::Text),
            ("price", "t.price_num", SortKind::Real),
            ("created_at", "t.created_at", SortKind::Int),
            ("updated_at", "t.updated_at", SortKind::Int),
        ],
        "name",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.filter("t.shop_id = ?", [Value::Text(caller.shop_id.clone())]);
    if !p.archived.unwrap_or(false) {
        q.filter("t.archived = 0", []);
    }
    if let Some(a) = p.active {
        q.filter("t.active = ?", [Value::Integer(i64::from(a))]);
    }
    if let Some(tag) = p.tag.as_deref().filter(|s| !s.is_empty()) {
        q.filter("EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)", [Value::Text(tag.to_lowercase())]);
    }
    if let Some(s) = p.q.as_deref().filter(|s| !s.is_empty()) {
        // The SKUs that match come from a walk of products_sku alone (it holds the id), run once.
        q.filter(
            "(fold(t.name) LIKE ? ESCAPE '\\'
              OR t.id IN (SELECT id FROM products INDEXED BY products_sku WHERE shop_id = ? AND sku LIKE ? ESCAPE '\\'))",
            [like(&crate::search::fold(s), true, true), Value::Text(caller.shop_id.clone()), like(s, false, true)],
        );
        // products_name holds every other column these filters and the name order read
        // (migration 0006); a tag lives in the row.
        if p.sort.as_deref().unwrap_or("name").trim_start_matches('-') == "name"
            && p.tag.as_deref().unwrap_or("").is_empty()
        {
            q.covered_by("products t", "products_name");
        }
    }
    let sort = p.sort.clone().unwrap_or_else(|| "name".into());
    q.run(conn, row, |x| {
        let v = match sort.trim_start_matches('-') {
            "sku" => Value::Text(x.sku.clone()),
            "price" => Value::Real(x.price.parse::<Decimal>().ok().and_then(|p| p.to_f64()).unwrap_or(0.0)),
            "created_at" => Value::Integer(x.created_at),
            "updated_at" => Value::Integer(x.updated_at),
            _ => Value::Text(x.name.clone()),
        };
        (v, x.id.clone())
    })
}
