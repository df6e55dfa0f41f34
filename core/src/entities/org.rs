//! The shop and its branches: one `org` document per shop.

use automerge::{Automerge, transaction::Transactable};
use dashoffice_domain::{
    Currency, FieldError, FieldErrors, Permission,
    api::{BranchView, CreateBranch, ShopView, UpdateBranch, UpdateShop},
    normalize_email, normalize_tax_id_in, tax_id_label, validate_address, validate_branch_code, validate_contact_phone,
    validate_name,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{clear_or, new_id, put_str};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    writer::WriteCtx,
};

fn check_region(r: &str) -> Result<String> {
    let r = r.trim().to_uppercase();
    if r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(r)
    } else {
        Err(dashoffice_domain::FieldError::new("phone_region", "iso3166", "a two-letter country code such as MX")
            .into())
    }
}

fn check_tz(t: &str) -> Result<String> {
    let t = t.trim();
    if !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b)) {
        Ok(t.to_string())
    } else {
        Err(dashoffice_domain::FieldError::new("timezone", "iana", "an IANA time zone such as America/Mexico_City")
            .into())
    }
}

/// The printed contact details of a shop or branch, checked.
struct Contact {
    address: Option<String>,
    phone: Option<String>,
}

fn check_contact(address: Option<&str>, phone: Option<&str>, errs: &mut FieldErrors) -> Contact {
    Contact {
        address: clear_or(address, |s| validate_address("address", s), errs),
        phone: clear_or(phone, |s| validate_contact_phone("phone", s), errs),
    }
}

/// The order statuses a WhatsApp notice can tell (a draft is not the customer's yet).
pub const NOTICE_STATUSES: [&str; 6] = ["confirmed", "paid", "fulfilled", "delivered", "cancelled", "refunded"];

/// The notices of a shop's record, by status.
fn notices_of(f: &doc::Fields) -> std::collections::BTreeMap<String, String> {
    NOTICE_STATUSES
        .iter()
        .map(|s| (s.to_string(), f.str(&format!("notice_{s}"))))
        .filter(|(_, t)| !t.trim().is_empty())
        .collect()
}

/// What a notice's text may name, filled in by [`fill_notice`].
pub const NOTICE_PLACEHOLDERS: [&str; 4] = ["{number}", "{total}", "{customer}", "{shop}"];

/// A notice's text with its placeholders filled in, in one pass: what they are filled with (a
/// customer's name, say) is never read for placeholders itself.
pub fn fill_notice(text: &str, number: &str, total: &str, customer: &str, shop: &str) -> String {
    let values = [number, total, customer, shop];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match NOTICE_PLACEHOLDERS.iter().position(|p| rest.starts_with(p)) {
            Some(k) => {
                out.push_str(values[k]);
                rest = &rest[NOTICE_PLACEHOLDERS[k].len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholders of `text` that are not [`NOTICE_PLACEHOLDERS`] (`{numero}`, a typo).
fn unknown_placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        rest = &rest[i..];
        let Some(j) = rest.find('}') else { break };
        let word = &rest[..=j];
        let inner = &word[1..word.len() - 1];
        if !inner.is_empty()
            && inner.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !NOTICE_PLACEHOLDERS.contains(&word)
        {
            out.push(word);
        }
        rest = &rest[1..];
    }
    out
}

/// The notices a request sets, trimmed; errors name `order_notices.{status}`.
fn check_notices(n: &std::collections::BTreeMap<String, String>, errs: &mut FieldErrors) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (status, text) in n {
        let field = format!("order_notices.{status}");
        if !NOTICE_STATUSES.contains(&status.as_str()) {
            errs.push(FieldError::new(
                &field,
                "one_of",
                format!("a status a notice can tell: {}", NOTICE_STATUSES.join(", ")),
            ));
        } else if text.chars().count() > 1000 {
            errs.push(FieldError::new(&field, "max_length", "at most 1000 characters"));
        } else if let Some(p) = unknown_placeholders(text).first() {
            errs.push(FieldError::new(
                &field,
                "placeholder",
                format!("{p} is not filled in; a notice can name {}", NOTICE_PLACEHOLDERS.join(", ")),
            ));
        } else {
            out.push((status.clone(), text.trim().to_string()));
        }
    }
    out
}

/// The notices' template: an approved one, of at most 4 parameters.
fn check_notice_template(conn: &Connection, shop: &str, name: &str) -> std::result::Result<String, FieldError> {
    let all = super::inbox::templates(conn, shop)
        .map_err(|e| FieldError::new("order_notice_template", "exists", e.to_string()))?;
    match all.iter().find(|t| t.name == name) {
        Some(t) if t.params <= 4 => Ok(t.name.clone()),
        Some(t) => Err(FieldError::new(
            "order_notice_template",
            "params",
            format!("'{}' takes {} parameters; a notice fills at most 4", t.name, t.params),
        )),
        None => Err(FieldError::new(
            "order_notice_template",
            "exists",
            format!(
                "not an approved template; approved: {}",
                if all.is_empty() {
                    "none registered".to_string()
                } else {
                    all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                }
            ),
        )),
    }
}

/// Creates a shop (bootstrap only: no caller yet).
pub fn create_shop(
    ctx: &mut WriteCtx<'_>,
    name: &str,
    currency: &str,
    phone_region: &str,
    timezone: &str,
) -> Result<String> {
    let mut errs = FieldErrors::new();
    let name = errs.check(validate_name("name", name));
    let currency = errs.check(Currency::parse("currency", currency));
    errs.finish()?;
    let (name, currency) = (name.unwrap_or_default(), currency.map(|c| c.code()).unwrap_or("USD"));
    let region = check_region(phone_region)?;
    let tz = check_tz(timezone)?;
    let id = new_id();
    let now = ctx.now();
    ctx.change(&DocId::org(&id), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), automerge::ObjType::Map)?;
        put_str(tx, &o, "type", "shop")?;
        put_str(tx, &o, "name", &name)?;
        put_str(tx, &o, "currency", currency)?;
        put_str(tx, &o, "phone_region", &region)?;
        put_str(tx, &o, "timezone", &tz)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    Ok(id)
}

/// Changes the shop's settings.
pub fn update_shop(ctx: &mut WriteCtx<'_>, caller: &Caller, input: UpdateShop) -> Result<ShopView> {
    caller.require(Permission::ManageShop)?;
    let mut errs = FieldErrors::new();
    let name = input.name.as_deref().and_then(|n| errs.check(validate_name("name", n)));
    let currency = input.currency.as_deref().and_then(|c| errs.check(Currency::parse("currency", c)));
    let legal_name = clear_or(input.legal_name.as_deref(), |s| validate_name("legal_name", s), &mut errs);
    // The shop's tax id follows the rule of its country: the one this request sets, or its own.
    let region = input.phone_region.as_deref().map(check_region).transpose()?;
    let country = match &region {
        Some(r) => r.clone(),
        None => get_shop(ctx.conn(), &caller.shop_id)?.phone_region,
    };
    let tax_id = clear_or(input.tax_id.as_deref(), |s| normalize_tax_id_in("tax_id", s, &country), &mut errs);
    let email = clear_or(input.email.as_deref(), |s| normalize_email("email", s), &mut errs);
    let contact = check_contact(input.address.as_deref(), input.phone.as_deref(), &mut errs);
    // WhatsApp takes at most 1,024 characters in an interactive message's body.
    let question = input.satisfaction_question.as_deref().map(str::trim).map(str::to_string);
    if input.daily_report_hour.is_some_and(|h| !(-1..=23).contains(&h)) {
        errs.push(FieldError::new("daily_report_hour", "range", "an hour from 0 to 23, or -1 for off"));
    }
    if question.as_ref().is_some_and(|q| q.chars().count() > 1024) {
        errs.push(FieldError::new("satisfaction_question", "max_length", "at most 1024 characters"));
    }
    let notices = input.order_notices.as_ref().map(|n| check_notices(n, &mut errs));
    let notice_template = match input.order_notice_template.as_deref().map(str::trim) {
        Some("") => Some(String::new()),
        Some(t) => errs.check(check_notice_template(ctx.conn(), &caller.shop_id, t)),
        None => None,
    };
    errs.finish()?;
    let tz = input.timezone.as_deref().map(check_tz).transpose()?;
    let shop = caller.shop_id.clone();
    let now = ctx.now();
    ctx.change(&DocId::org(&shop), &[&shop], |tx, _| {
        let o = doc::record(tx, &shop)?.ok_or_else(|| CoreError::not_found("shop", &shop))?;
        if let Some(n) = &name {
            put_str(tx, &o, "name", n)?;
        }
        if let Some(c) = currency {
            put_str(tx, &o, "currency", c.code())?;
        }
        if let Some(r) = &region {
            put_str(tx, &o, "phone_region", r)?;
        }
        if let Some(t) = &tz {
            put_str(tx, &o, "timezone", t)?;
        }
        if let Some(on) = input.satisfaction_survey {
            tx.put(&o, "satisfaction_survey", on)?;
        }
        if let Some(on) = input.email_invoices {
            tx.put(&o, "email_invoices", on)?;
        }
        if let Some(h) = input.daily_report_hour {
            tx.put(&o, "daily_report_hour", h)?;
        }
        if let Some(q) = &question {
            put_str(tx, &o, "satisfaction_question", q)?;
        }
        // One key per status: notices set on two replicas at once for two statuses both stay.
        for (status, text) in notices.iter().flatten() {
            put_str(tx, &o, &format!("notice_{status}"), text)?;
        }
        if let Some(t) = &notice_template {
            put_str(tx, &o, "notice_template", t)?;
        }
        for (k, v) in [
            ("legal_name", &legal_name),
            ("tax_id", &tax_id),
            ("email", &email),
            ("address", &contact.address),
            ("phone", &contact.phone),
        ] {
            if let Some(v) = v {
                put_str(tx, &o, k, v)?;
            }
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get_shop(ctx.conn(), &shop)
}

/// Creates a branch. `caller` None is the bootstrap.
pub fn create_branch(
    ctx: &mut WriteCtx<'_>,
    caller: Option<&Caller>,
    shop: &str,
    input: CreateBranch,
) -> Result<BranchView> {
    if let Some(c) = caller {
        c.require(Permission::ManageBranches)?;
    }
    let mut errs = FieldErrors::new();
    let code = errs.check(validate_branch_code("code", &input.code));
    let name = errs.check(validate_name("name", &input.name));
    let contact = check_contact(input.address.as_deref(), input.phone.as_deref(), &mut errs);
    errs.finish()?;
    let (code, name) = (code.unwrap_or_default(), name.unwrap_or_default());
    let taken: Option<String> = ctx
        .conn()
        .query_row("SELECT id FROM branches WHERE shop_id = ?1 AND code = ?2", params![shop, code], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Err(CoreError::conflict("code", "unique", format!("branch code '{code}' is already used")));
    }
    let id = new_id();
    let now = ctx.now();
    let invoicer = device_invoicer(ctx);
    ctx.change(&DocId::org(shop), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), automerge::ObjType::Map)?;
        put_str(tx, &o, "type", "branch")?;
        put_str(tx, &o, "code", &code)?;
        put_str(tx, &o, "name", &name)?;
        for (k, v) in [("address", &contact.address), ("phone", &contact.phone)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                put_str(tx, &o, k, v)?;
            }
        }
        // The device that makes the branch numbers its invoices until an owner names another.
        put_str(tx, &o, "invoicer", &invoicer.0)?;
        put_str(tx, &o, "invoicer_code", &invoicer.1)?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get_branch(ctx.conn(), shop, &id)
}

/// This replica's identity as a branch's invoicer: its actor (hex, upper case, as SQLite's
/// `hex()` writes it) and its code.
pub(crate) fn device_invoicer(ctx: &WriteCtx<'_>) -> (String, String) {
    let d = ctx.device();
    (d.actor.iter().map(|b| format!("{b:02X}")).collect(), d.code.clone())
}

/// Makes this replica the device that gives `id`'s invoices their legal numbers (owners and
/// managers). It continues the branch's series after the highest number it knows: the device
/// it replaces should have synced its last numbers first (a number given twice meanwhile is
/// flagged `duplicate` on both orders).
pub fn set_invoicer(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<BranchView> {
    caller.require(Permission::ManageBranches)?;
    let branch = get_branch(ctx.conn(), &caller.shop_id, id)?;
    if branch.archived {
        return Err(CoreError::conflict("id", "active", "the branch is archived"));
    }
    let invoicer = device_invoicer(ctx);
    let now = ctx.now();
    ctx.change(&DocId::org(&caller.shop_id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("branch", id))?;
        put_str(tx, &o, "invoicer", &invoicer.0)?;
        put_str(tx, &o, "invoicer_code", &invoicer.1)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get_branch(ctx.conn(), &caller.shop_id, id)
}

/// Renames a branch.
pub fn update_branch(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateBranch) -> Result<BranchView> {
    caller.require(Permission::ManageBranches)?;
    let mut errs = FieldErrors::new();
    let name = input.name.as_deref().and_then(|n| errs.check(validate_name("name", n)));
    let contact = check_contact(input.address.as_deref(), input.phone.as_deref(), &mut errs);
    let series = input.invoice_series.as_deref().and_then(|s| errs.check(validate_invoice_series(s)));
    errs.finish()?;
    get_branch(ctx.conn(), &caller.shop_id, id)?;
    let now = ctx.now();
    ctx.change(&DocId::org(&caller.shop_id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("branch", id))?;
        for (k, v) in
            [("name", &name), ("address", &contact.address), ("phone", &contact.phone), ("invoice_series", &series)]
        {
            if let Some(v) = v {
                put_str(tx, &o, k, v)?;
            }
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    get_branch(ctx.conn(), &caller.shop_id, id)
}

/// An invoice series: 1 to 10 upper-case letters or digits; empty means the branch code.
fn validate_invoice_series(s: &str) -> std::result::Result<String, FieldError> {
    let t = s.trim();
    if t.len() > 10 || !t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(FieldError::new(
            "invoice_series",
            "format",
            "1 to 10 upper-case letters or digits (empty: the branch code)",
        ));
    }
    Ok(t.to_string())
}

/// Archives a branch.
pub fn archive_branch(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<BranchView> {
    caller.require(Permission::ManageBranches)?;
    caller.require(Permission::Archive)?;
    get_branch(ctx.conn(), &caller.shop_id, id)?;
    super::mark_archived(ctx, &DocId::org(&caller.shop_id), id, "branch")?;
    get_branch(ctx.conn(), &caller.shop_id, id)
}

/// Projects one record of the org document.
pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let shop = doc_id.scope()?.shop_id;
    match f.str("type").as_str() {
        "shop" => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO shops(id, doc_id, name, currency, phone_region, timezone, created_at, updated_at,
                                              legal_name, tax_id, address, phone, email, satisfaction_survey,
                                              satisfaction_question, email_invoices, daily_report_hour, order_notices,
                                              order_notice_template)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?
            .execute(params![
                id,
                doc_id.as_str(),
                f.str("name"),
                f.str("currency"),
                f.str("phone_region"),
                f.str("timezone"),
                f.i64("created_at"),
                f.i64("updated_at"),
                f.str("legal_name"),
                f.str("tax_id"),
                f.str("address"),
                f.str("phone"),
                f.str("email"),
                f.bool("satisfaction_survey", false),
                f.str("satisfaction_question"),
                f.bool("email_invoices", false),
                f.opt_i64("daily_report_hour").filter(|h| (0..=23).contains(h)),
                serde_json::to_string(&notices_of(&f)).unwrap_or_else(|_| "{}".into()),
                Some(f.str("notice_template")).filter(|t| !t.is_empty()),
            ])?;
        }
        "branch" => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO branches(id, shop_id, doc_id, code, name, archived, created_at, updated_at, address, phone,
                                                 invoice_series, invoicer, invoicer_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                id,
                shop,
                doc_id.as_str(),
                f.str("code"),
                f.str("name"),
                f.bool("archived", false),
                f.i64("created_at"),
                f.i64("updated_at"),
                f.str("address"),
                f.str("phone"),
                f.str("invoice_series"),
                f.str("invoicer"),
                f.str("invoicer_code"),
            ])?;
        }
        _ => {}
    }
    Ok(())
}

/// The shop.
pub fn get_shop(conn: &Connection, shop: &str) -> Result<ShopView> {
    conn.prepare_cached(
        "SELECT id, name, currency, phone_region, timezone, legal_name, tax_id, address, phone, email, satisfaction_survey,
                satisfaction_question, email_invoices, daily_report_hour, order_notices, order_notice_template
         FROM shops WHERE id = ?1",
    )?
    .query_row([shop], |r| {
        let phone_region: String = r.get(3)?;
        Ok(ShopView {
            id: r.get(0)?,
            name: r.get(1)?,
            currency: r.get(2)?,
            tax_id_label: tax_id_label(&phone_region, "").to_string(),
            phone_region,
            timezone: r.get(4)?,
            legal_name: r.get(5)?,
            tax_id: r.get(6)?,
            address: r.get(7)?,
            phone: r.get(8)?,
            email: r.get(9)?,
            satisfaction_survey: r.get(10)?,
            satisfaction_question: r.get(11)?,
            email_invoices: r.get(12)?,
            daily_report_hour: r.get(13)?,
            order_notices: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_default(),
            order_notice_template: r.get(15)?,
        })
    })
        .optional()?
        .ok_or_else(|| CoreError::not_found("shop", shop))
}

fn branch_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BranchView> {
    let code: String = r.get(1)?;
    let series: String = r.get(6)?;
    Ok(BranchView {
        id: r.get(0)?,
        invoice_series: if series.is_empty() { code.clone() } else { series },
        code,
        name: r.get(2)?,
        archived: r.get(3)?,
        address: r.get(4)?,
        phone: r.get(5)?,
        invoicer_code: r.get(7)?,
        invoicing_here: r.get(8)?,
    })
}

/// The columns [`branch_row`] reads, of `branches b`.
const BRANCH_COLS: &str = "b.id, b.code, b.name, b.archived, b.address, b.phone, b.invoice_series, b.invoicer_code,
    (b.invoicer != '' AND b.invoicer = (SELECT hex(actor) FROM device WHERE id = 1))";

/// One branch.
pub fn get_branch(conn: &Connection, shop: &str, id: &str) -> Result<BranchView> {
    conn.prepare_cached(&format!("SELECT {BRANCH_COLS} FROM branches b WHERE b.shop_id = ?1 AND b.id = ?2"))?
        .query_row([shop, id], branch_row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("branch", id))
}

/// Every branch of the shop.
pub fn list_branches(conn: &Connection, shop: &str, archived: bool) -> Result<Vec<BranchView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BRANCH_COLS} FROM branches b WHERE b.shop_id = ?1 AND (?2 OR b.archived = 0) ORDER BY b.code"
    ))?;
    Ok(stmt.query_map(params![shop, archived], branch_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The branch code of `branch` (for order numbers).
pub(crate) fn branch_code(conn: &Connection, shop: &str, branch: &str) -> Result<String> {
    Ok(get_branch(conn, shop, branch)?.code)
}

#[cfg(test)]
mod tests {
    use super::{fill_notice, unknown_placeholders};

    #[test]
    fn a_notice_is_filled_in_one_pass_and_names_only_what_it_can() {
        let filled =
            fill_notice("Hola {customer}: {number} por {total} en {shop} {x", "CEN-1", "10.00 MXN", "{shop}", "Tienda");
        assert_eq!(filled, "Hola {shop}: CEN-1 por 10.00 MXN en Tienda {x");
        assert_eq!(unknown_placeholders("{numero} y {number}, {total}{Nombre} { no } {}"), ["{numero}", "{Nombre}"]);
        assert!(unknown_placeholders("Tu pedido {number} 🙂 {").is_empty());
    }
}
