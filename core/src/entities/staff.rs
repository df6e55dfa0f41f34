//! Staff accounts (one `staff` document per shop) and login sessions (local to this replica).
//! Password hashes (argon2id, PHC strings) sit in the shop's `credentials` document, keyed by
//! account: every replica receives it, so staff can log in on any replica, offline too; the relay
//! never gives it to `/sync` clients (browsers, scripts), which log no one in. Accounts made
//! before that document existed keep their hash in the account until the password next changes.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use automerge::{Automerge, ReadDoc, transaction::Transactable};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use dashoffice_domain::{
    FieldError, FieldErrors, Permission, Role,
    api::{CreateStaff, ListParams, Page, StaffView, UpdateStaff},
    normalize_email, validate_name,
};
use rusqlite::{Connection, OptionalExtension, params, types::Value};
use sha2::{Digest, Sha256};

use super::{new_id, org, put_str};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    page::{ListQuery, SortKind, like},
    writer::WriteCtx,
};

/// How long a session token is valid.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

fn hash_password(pw: &str) -> Result<String> {
    if pw.chars().count() < 8 {
        return Err(FieldError::new("password", "min_length", "at least 8 characters").into());
    }
    if pw.len() > 1024 {
        return Err(FieldError::new("password", "max_length", "at most 1024 bytes").into());
    }
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| CoreError::Storage(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Storage(format!("hashing password: {e}")))
}

fn verify_password(pw: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// Creates a staff account. `caller` None is the bootstrap of the first owner.
pub fn create(ctx: &mut WriteCtx<'_>, caller: Option<&Caller>, shop: &str, input: CreateStaff) -> Result<StaffView> {
    if let Some(c) = caller {
        c.require(Permission::ManageStaff)?;
        if input.role == Role::Owner && c.role != Role::Owner {
            return Err(CoreError::Forbidden("only an owner may create another owner".into()));
        }
    }
    let mut errs = FieldErrors::new();
    let name = errs.check(validate_name("name", &input.name));
    let email = errs.check(normalize_email("email", &input.email));
    if input.role == Role::Seller && input.branch_id.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::new("branch_id", "required", "a seller belongs to one branch"));
    }
    errs.finish()?;
    let (name, email) = (name.unwrap_or_default(), email.unwrap_or_default());
    let branch = input.branch_id.filter(|b| !b.is_empty());
    if let Some(b) = &branch {
        org::get_branch(ctx.conn(), shop, b).map_err(|_| CoreError::not_found_field("branch", b, "branch_id"))?;
    }
    if find_by_email(ctx.conn(), shop, &email)?.is_some() {
        return Err(CoreError::conflict("email", "unique", format!("'{email}' already has an account")));
    }
    let hash = hash_password(&input.password)?;
    let id = new_id();
    let now = ctx.now();
    ctx.change(&DocId::staff(shop), &[&id], |tx, recs| {
        let o = tx.put_object(recs, id.as_str(), automerge::ObjType::Map)?;
        put_str(tx, &o, "name", &name)?;
        put_str(tx, &o, "email", &email)?;
        put_str(tx, &o, "role", input.role.as_str())?;
        put_str(tx, &o, "branch_id", branch.as_deref().unwrap_or(""))?;
        tx.put(&o, "archived", false)?;
        tx.put(&o, "created_at", now)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    put_credential(ctx, shop, &id, &hash)?;
    get(ctx.conn(), shop, &id)
}

/// Writes an account's password hash into the shop's credentials document.
fn put_credential(ctx: &mut WriteCtx<'_>, shop: &str, id: &str, hash: &str) -> Result<()> {
    let now = ctx.now();
    ctx.change(&DocId::credentials(shop), &[id], |tx, recs| {
        let o = match doc::record(tx, id)? {
            Some(o) => o,
            None => tx.put_object(recs, id, automerge::ObjType::Map)?,
        };
        put_str(tx, &o, "password_hash", hash)?;
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })
}

/// Changes a staff account (its e-mail, the login, stays unique in the shop).
pub fn update(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str, input: UpdateStaff) -> Result<StaffView> {
    let own = caller.user_id == id;
    // Everyone may change their own name, password and e-mail choices; the rest needs ManageStaff.
    if !own || input.role.is_some() || input.branch_id.is_some() {
        caller.require(Permission::ManageStaff)?;
    }
    let current = get(ctx.conn(), &caller.shop_id, id)?;
    if (current.role == Role::Owner || input.role == Some(Role::Owner)) && caller.role != Role::Owner {
        return Err(CoreError::Forbidden("only an owner may change an owner".into()));
    }
    // Whether a manager gets the daily summary is theirs to choose (or the owner's), not another
    // manager's.
    if !own && input.daily_summary.is_some() && caller.role != Role::Owner {
        return Err(CoreError::Forbidden(
            "only the person themselves or an owner may turn their daily summary on or off".into(),
        ));
    }
    let name = input.name.as_deref().map(|n| validate_name("name", n)).transpose()?;
    let email =
        input.email.as_deref().map(|e| normalize_email("email", e)).transpose()?.filter(|e| *e != current.email);
    if let Some(e) = &email
        && find_by_email(ctx.conn(), &caller.shop_id, e)?.is_some()
    {
        return Err(CoreError::conflict("email", "unique", format!("'{e}' already has an account")));
    }
    // One's own password or login: the current password is asked for (a stolen session alone
    // cannot take the account over).
    if own && (input.password.is_some() || email.is_some()) {
        let Some(current) = input.current_password.as_deref().filter(|p| !p.is_empty()) else {
            return Err(FieldError::new("current_password", "required", "your current password, to change it").into());
        };
        let stored = find_by_email(ctx.conn(), &caller.shop_id, &get(ctx.conn(), &caller.shop_id, id)?.email)?;
        if !stored.is_some_and(|(_, h)| verify_password(current, &h)) {
            return Err(FieldError::new("current_password", "mismatch", "this is not your current password").into());
        }
    }
    if let Some(l) = input.lang.as_deref()
        && !LANGS.contains(&l)
    {
        return Err(FieldError::new("lang", "one_of", "must be one of: es, en").into());
    }
    let hash = input.password.as_deref().map(hash_password).transpose()?;
    let branch = input.branch_id.clone();
    if let Some(b) = branch.as_deref().filter(|b| !b.is_empty()) {
        org::get_branch(ctx.conn(), &caller.shop_id, b)
            .map_err(|_| CoreError::not_found_field("branch", b, "branch_id"))?;
    }
    let role = input.role.unwrap_or(current.role);
    let final_branch =
        branch.clone().map(|b| if b.is_empty() { None } else { Some(b) }).unwrap_or(current.branch_id.clone());
    if role == Role::Seller && final_branch.is_none() {
        return Err(FieldError::new("branch_id", "required", "a seller belongs to one branch").into());
    }
    let now = ctx.now();
    ctx.change(&DocId::staff(&caller.shop_id), &[id], |tx, _| {
        let o = doc::record(tx, id)?.ok_or_else(|| CoreError::not_found("staff", id))?;
        if let Some(n) = &name {
            put_str(tx, &o, "name", n)?;
        }
        if let Some(e) = &email {
            put_str(tx, &o, "email", e)?;
        }
        if let Some(r) = input.role {
            put_str(tx, &o, "role", r.as_str())?;
        }
        if let Some(b) = &branch {
            put_str(tx, &o, "branch_id", b)?;
        }
        if let Some(on) = input.daily_summary {
            tx.put(&o, "daily_summary", on)?;
        }
        if let Some(l) = &input.lang {
            put_str(tx, &o, "lang", l)?;
        }
        // The hash of an account made before the credentials document leaves the account (what
        // the history of the staff document holds stays there: the old password is the one
        // that no longer works).
        if hash.is_some() && tx.get(&o, "password_hash")?.is_some() {
            tx.delete(&o, "password_hash")?;
        }
        tx.put(&o, "updated_at", now)?;
        Ok(())
    })?;
    if let Some(h) = &hash {
        put_credential(ctx, &caller.shop_id, id, h)?;
        ctx.conn().execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    }
    get(ctx.conn(), &caller.shop_id, id)
}

/// Archives an account: it can no longer log in, and its sessions end.
pub fn archive(ctx: &mut WriteCtx<'_>, caller: &Caller, id: &str) -> Result<StaffView> {
    caller.require(Permission::ManageStaff)?;
    caller.require(Permission::Archive)?;
    let current = get(ctx.conn(), &caller.shop_id, id)?;
    if current.role == Role::Owner && caller.role != Role::Owner {
        return Err(CoreError::Forbidden("only an owner may archive an owner".into()));
    }
    if id == caller.user_id {
        return Err(CoreError::conflict("id", "self", "you cannot archive your own account"));
    }
    super::mark_archived(ctx, &DocId::staff(&caller.shop_id), id, "staff")?;
    ctx.conn().execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    get(ctx.conn(), &caller.shop_id, id)
}

pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        return Ok(());
    };
    let f = doc::fields(d, &o);
    let shop = doc_id.scope()?.shop_id;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO staff(id, shop_id, doc_id, name, email, role, branch_id, password_hash, archived, created_at, updated_at,
                                      daily_summary, lang)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        id,
        shop,
        doc_id.as_str(),
        f.str("name"),
        f.str("email"),
        f.str("role"),
        f.opt_str("branch_id"),
        f.str("password_hash"),
        f.bool("archived", false),
        f.i64("created_at"),
        f.i64("updated_at"),
        // Accounts made before these choices existed get the summary, in Spanish.
        f.bool("daily_summary", true),
        Some(f.str("lang")).filter(|l| LANGS.contains(&l.as_str())).unwrap_or_else(|| "es".into()),
    ])?;
    Ok(())
}

/// The languages of staff e-mails.
pub const LANGS: [&str; 2] = ["es", "en"];

/// Projects one account's password hash (none: the record is gone, so is the row).
pub(crate) fn project_credential(conn: &Connection, doc_id: &DocId, d: &Automerge, id: &str) -> Result<()> {
    let Some(o) = doc::record(d, id)? else {
        conn.prepare_cached("DELETE FROM staff_credentials WHERE staff_id = ?1")?.execute([id])?;
        return Ok(());
    };
    let f = doc::fields(d, &o);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO staff_credentials(staff_id, shop_id, doc_id, password_hash, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        doc_id.scope()?.shop_id,
        doc_id.as_str(),
        f.str("password_hash"),
        f.i64("updated_at")
    ])?;
    Ok(())
}

const COLS: &str =
    "t.id, t.name, t.email, t.role, t.branch_id, t.archived, t.created_at, t.updated_at, t.daily_summary, t.lang";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffView> {
    let role: String = r.get(3)?;
    Ok(StaffView {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Support),
        branch_id: r.get(4)?,
        archived: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        daily_summary: r.get(8)?,
        lang: r.get(9)?,
    })
}

/// One account.
pub fn get(conn: &Connection, shop: &str, id: &str) -> Result<StaffView> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM staff t WHERE t.shop_id = ?1 AND t.id = ?2"))?
        .query_row([shop, id], row)
        .optional()?
        .ok_or_else(|| CoreError::not_found("staff", id))
}

fn find_by_email(conn: &Connection, shop: &str, email: &str) -> Result<Option<(StaffView, String)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS}, COALESCE(c.password_hash, t.password_hash) FROM staff t
             LEFT JOIN staff_credentials c ON c.staff_id = t.id AND c.shop_id = t.shop_id
             WHERE t.shop_id = ?1 AND t.email = ?2 ORDER BY t.created_at LIMIT 1"
        ))?
        .query_row([shop, email], |r| Ok((row(r)?, r.get(10)?)))
        .optional()?)
}

/// Whether `shop` has an active account with this e-mail address (a host serving several shops
/// uses it to find where a login belongs; the password is checked by [`check_login`]).
pub fn has_login(conn: &Connection, shop: &str, email: &str) -> Result<bool> {
    let Ok(email) = normalize_email("email", email) else { return Ok(false) };
    Ok(find_by_email(conn, shop, &email)?.is_some_and(|(u, _)| !u.archived))
}

/// Lists accounts.
pub fn list(conn: &Connection, caller: &Caller, p: &ListParams) -> Result<Page<StaffView>> {
    let mut q = ListQuery::new(
        &format!("SELECT {COLS} FROM staff t"),
        p.sort.as_deref(),
        &[
            ("name", "t.name", SortKind::Text),
            ("email", "t.email", SortKind::Text),
            ("created_at", "t.created_at", SortKind::Int),
        ],
        "name",
        p.limit,
        p.cursor.as_deref(),
    )?;
    q.filter("t.shop_id = ?", [Value::Text(caller.shop_id.clone())]);
    if !p.archived.unwrap_or(false) {
        q.filter("t.archived = 0", []);
    }
    if let Some(b) = p.branch_id.as_deref() {
        caller.check_branch(b)?;
        q.filter("(t.branch_id = ? OR t.branch_id IS NULL)", [Value::Text(b.to_string())]);
    }
    if let Some(b) = caller.branch_limit() {
        q.filter("(t.branch_id = ? OR t.branch_id IS NULL)", [Value::Text(b.to_string())]);
    }
    if let Some(r) = p.role.as_deref().filter(|r| !r.is_empty()) {
        let role = Role::parse(r)
            .ok_or_else(|| FieldError::new("role", "one_of", "must be one of: owner, manager, seller, support"))?;
        q.filter("t.role = ?", [Value::Text(role.as_str().to_string())]);
    }
    if let Some(s) = p.q.as_deref().filter(|s| !s.is_empty()) {
        let pat = like(&s.to_lowercase(), true, true);
        q.filter(
            "(fold(t.name) LIKE ? ESCAPE '\\' OR t.email LIKE ? ESCAPE '\\')",
            [like(&crate::search::fold(s), true, true), pat],
        );
    }
    let sort = p.sort.clone().unwrap_or_else(|| "name".into());
    q.run(conn, row, |s| {
        let v = match sort.trim_start_matches('-') {
            "email" => Value::Text(s.email.clone()),
            "created_at" => Value::Integer(s.created_at),
            _ => Value::Text(s.name.clone()),
        };
        (v, s.id.clone())
    })
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Checks e-mail and password; returns the account. The same error for every failure, so a
/// caller cannot tell which e-mails exist.
pub fn check_login(conn: &Connection, shop: &str, email: &str, password: &str) -> Result<StaffView> {
    let bad = || CoreError::Unauthorized("wrong e-mail or password".into());
    let email = normalize_email("email", email).map_err(|_| bad())?;
    let Some((user, hash)) = find_by_email(conn, shop, &email)? else {
        // Spend the same time as a real check.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
        let _ = verify_password(password, dummy);
        return Err(bad());
    };
    if user.archived || !verify_password(password, &hash) {
        return Err(bad());
    }
    Ok(user)
}

/// Whether this replica is still waiting for the shop's accounts or password hashes (a new
/// device in its first sync): no account at all yet, or an active account without a hash. A
/// failed login then means "wait", not "wrong password".
pub fn credentials_pending(conn: &Connection, shop: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM staff WHERE shop_id = ?1)
                 OR EXISTS (SELECT 1 FROM staff t LEFT JOIN staff_credentials c ON c.staff_id = t.id
                            WHERE t.shop_id = ?1 AND t.archived = 0 AND t.password_hash = '' AND c.staff_id IS NULL)",
        )?
        .query_row([shop], |r| r.get(0))?)
}

/// Starts a session for `user_id`; returns the token (only its hash is stored) and its expiry.
pub fn start_session(ctx: &mut WriteCtx<'_>, user_id: &str) -> Result<(String, i64)> {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let now = ctx.now();
    let expires = now + SESSION_TTL_MS;
    ctx.conn()
        .prepare_cached("INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![token_hash(&token), user_id, now, expires])?;
    ctx.conn().prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?.execute([now])?;
    Ok((token, expires))
}

/// Ends a session.
pub fn end_session(ctx: &mut WriteCtx<'_>, token: &str) -> Result<()> {
    ctx.conn().prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?.execute([token_hash(token)])?;
    Ok(())
}

/// The caller behind a token, with the token's expiry; Unauthorized if unknown, expired or the
/// account is archived.
pub fn session_caller(conn: &Connection, token: &str, now: i64) -> Result<(Caller, i64)> {
    let bad = || CoreError::Unauthorized("the token is unknown or expired; log in again".into());
    let found: Option<(String, String, String, Option<String>, bool, i64)> = conn
        .prepare_cached(
            "SELECT s.id, s.shop_id, s.role, s.branch_id, s.archived, x.expires_at
             FROM sessions x JOIN staff s ON s.id = x.user_id WHERE x.token_hash = ?1",
        )?
        .query_row([token_hash(token)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()?;
    let (user_id, shop_id, role, branch_id, archived, expires) = found.ok_or_else(bad)?;
    if archived || expires < now {
        return Err(bad());
    }
    let role = Role::parse(&role).ok_or_else(bad)?;
    Ok((Caller { user_id, shop_id, role, branch_id }, expires))
}
