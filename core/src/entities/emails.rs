//! E-mails of an order's document: the sales note, the invoice or the credit note as a PDF
//! attachment, to the customer or any address. Staff ask for one on any replica, offline too: the
//! request goes into the order's record under its own key (`email:{id}`, a map), so requests made
//! on several replicas at once are all kept. The relay's mail outbox ([`queued`], [`compose`])
//! sends each once the relay has it — an invoice or a credit note only once it has its legal
//! number, so the customer never gets a provisional one — and writes back into the same map when
//! the mail server took it or why it failed ([`mark`]).

use automerge::{Automerge, ObjId, ObjType, ReadDoc, transaction::Transactable};
use dashoffice_domain::{
    FieldError, FieldErrors, Permission,
    api::{EmailOrderDocument, OrderEmailView, OrderView},
    normalize_email,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{customers, inbox::system_caller, new_id, orders, org};
use crate::{
    Caller,
    doc::{self, DocId},
    error::{CoreError, Result},
    invoice::{Lang, OrderPdf},
    writer::WriteCtx,
};

/// The prefix of an e-mail's key in the order's record.
const KEY: &str = "email:";

/// E-mails one order may ask for: enough for every resend a shop needs, not a way to spam.
pub const MAX_PER_ORDER: usize = 20;

/// Asks for the order's document to be e-mailed (sellers and up): written into the order at once,
/// on any replica; sent by the relay. `to` defaults to the customer's e-mail (409 naming `to` when
/// the customer has none); `document` to the order's current one (see [`EmailOrderDocument`]).
/// Returns the order with the new e-mail queued.
pub fn request(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    order_id: &str,
    input: EmailOrderDocument,
) -> Result<OrderView> {
    caller.require(Permission::SellOrders)?;
    let mut e = FieldErrors::new();
    let to = input.to.as_deref().map(str::trim).filter(|t| !t.is_empty()).and_then(|t| e.check(address("to", t)));
    let lang = input.lang.as_deref().unwrap_or("es").to_string();
    e.check(Lang::parse("lang", &lang));
    let message = input.message.as_deref().map(str::trim).unwrap_or_default().to_string();
    if message.chars().count() > 2000 {
        e.push(FieldError::new("message", "max_length", "at most 2000 characters"));
    }
    if let Some(d) = input.document.as_deref()
        && !matches!(d, "sales_note" | "invoice" | "credit_note")
        && !d.starts_with(super::returns::KEY)
    {
        e.push(FieldError::new("document", "one_of", "must be one of: sales_note, invoice, credit_note, return:{id}"));
    }
    e.finish()?;
    let order = orders::get(ctx.conn(), caller, order_id)?;
    let document = match input.document.as_deref() {
        Some("invoice") if order.invoice.is_none() => {
            return Err(CoreError::conflict("document", "exists", "the order has no invoice: issue it first"));
        }
        Some("credit_note") if order.credit_note.is_none() => {
            return Err(CoreError::conflict("document", "exists", "the order has no credit note"));
        }
        Some("sales_note") if order.invoice.is_some() => {
            return Err(CoreError::conflict(
                "document",
                "invoiced",
                "the order is invoiced: its document is the invoice (or the credit note)",
            ));
        }
        Some(d) if d.starts_with(super::returns::KEY) => {
            let rid = &d[super::returns::KEY.len()..];
            if !order.returns.iter().any(|r| r.id == rid && r.accepted) {
                return Err(CoreError::conflict("document", "exists", "the order has no such return (that counts)"));
            }
            d.to_string()
        }
        Some(d) => d.to_string(),
        None if order.credit_note.is_some() => "credit_note".into(),
        None if order.invoice.is_some() => "invoice".into(),
        None => "sales_note".into(),
    };
    if order.status == dashoffice_domain::OrderStatus::Draft && document == "sales_note" {
        return Err(CoreError::conflict("status", "sendable", "a draft is not sent: confirm the order first"));
    }
    let to = match to {
        Some(t) => t,
        None => match customer_email(ctx.conn(), &caller.shop_id, &order.customer_id)? {
            (_, Some(m)) => m,
            (name, None) => {
                return Err(CoreError::conflict("to", "required", format!("{name} has no e-mail address: type one")));
            }
        },
    };
    if order.emails.len() >= MAX_PER_ORDER {
        return Err(CoreError::conflict(
            "emails",
            "max_items",
            format!("an order is e-mailed {MAX_PER_ORDER} times at most"),
        ));
    }
    write(ctx, caller, &order.id, &to, &document, &lang, &message, false)?;
    orders::get(ctx.conn(), caller, order_id)
}

/// After an invoice or a credit note (`document`) was issued on order `order_id`: asks for its
/// e-mail to the customer when the shop has `email_invoices` on and the customer an address
/// (in the customer's language, marked automatic). Part of the issuing write.
pub(crate) fn request_automatic(ctx: &mut WriteCtx<'_>, caller: &Caller, order_id: &str, document: &str) -> Result<()> {
    if !org::get_shop(ctx.conn(), &caller.shop_id)?.email_invoices {
        return Ok(());
    }
    let order = orders::get(ctx.conn(), caller, order_id)?;
    // A customer this replica does not hold (yet) has no address here: the invoice is issued
    // all the same.
    let Ok((_, Some(to))) = customer_email(ctx.conn(), &caller.shop_id, &order.customer_id) else {
        return Ok(());
    };
    if order.emails.len() >= MAX_PER_ORDER {
        return Ok(());
    }
    // In the customer's language.
    let lang: String = ctx
        .conn()
        .prepare_cached("SELECT lang FROM customers WHERE id = ?1")?
        .query_row([&order.customer_id], |r| r.get(0))
        .unwrap_or_else(|_| "es".into());
    write(ctx, caller, order_id, &to, document, &lang, "", true)
}

/// Writes one e-mail request into the order's record.
#[allow(clippy::too_many_arguments)]
fn write(
    ctx: &mut WriteCtx<'_>,
    caller: &Caller,
    order_id: &str,
    to: &str,
    document: &str,
    lang: &str,
    message: &str,
    automatic: bool,
) -> Result<()> {
    let doc_id = DocId::parse(&order_doc(ctx.conn(), order_id)?)?;
    let id = new_id();
    let (now, user, device) = (ctx.now(), caller.user_id.clone(), ctx.device().code.clone());
    ctx.change(&doc_id, &[order_id], |tx, _| {
        let o = doc::record(tx, order_id)?.ok_or_else(|| CoreError::not_found("order", order_id))?;
        let m = tx.put_object(&o, format!("{KEY}{id}"), ObjType::Map)?;
        for (k, v) in [("to", to), ("document", document), ("lang", lang), ("message", message)] {
            tx.put(&m, k, v)?;
        }
        tx.put(&m, "requested_at", now)?;
        tx.put(&m, "requested_by", user.as_str())?;
        tx.put(&m, "device", device.as_str())?;
        if automatic {
            tx.put(&m, "automatic", true)?;
        }
        Ok(())
    })
}

/// The name and e-mail address of an order's customer: of the record it was merged into, if any
/// (the address staff keep up to date), else its own.
fn customer_email(conn: &Connection, shop: &str, customer_id: &str) -> Result<(String, Option<String>)> {
    let own = customers::get(conn, shop, customer_id)?;
    let survivor = super::inbox::survivor(conn, customer_id.to_string())?;
    let merged = if survivor == customer_id { None } else { customers::get(conn, shop, &survivor).ok() };
    let email = merged
        .as_ref()
        .and_then(|c| c.email.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| own.email.clone().filter(|m| !m.is_empty()));
    Ok((merged.map(|c| c.name).unwrap_or(own.name), email))
}

/// An e-mail address as typed: [`normalize_email`], and nothing a mail header would read as
/// several addresses or a display name.
fn address(field: &str, s: &str) -> std::result::Result<String, FieldError> {
    let m = normalize_email(field, s)?;
    if m.contains(['<', '>', ',', ';', '"', '(', ')', '[', ']', '\\', ':']) || m.matches('@').count() != 1 {
        return Err(FieldError::new(field, "email", format!("'{s}' is not one e-mail address")));
    }
    Ok(m)
}

fn order_doc(conn: &Connection, order_id: &str) -> Result<String> {
    conn.prepare_cached("SELECT doc_id FROM orders WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| CoreError::not_found("order", order_id))
}

/// Projects the e-mails of order `id` (its record `o` in `d`).
pub(crate) fn project(conn: &Connection, doc_id: &DocId, d: &Automerge, o: &ObjId, id: &str, shop: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM order_emails WHERE order_id = ?1")?.execute([id])?;
    let mut ins = conn.prepare_cached(
        "INSERT OR REPLACE INTO order_emails(id, order_id, shop_id, doc_id, to_addr, document, lang, message,
                                             requested_at, requested_by, sent_at, failed_at, error, automatic)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    for item in d.map_range(o, KEY.to_string()..) {
        let Some(email_id) = item.key.strip_prefix(KEY) else { break };
        if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
            continue;
        }
        let m = item.id();
        let f = doc::fields(d, &m);
        let sent = f.opt_i64("sent_at");
        let failed = f.opt_i64("failed_at").filter(|_| sent.is_none());
        ins.execute(params![
            email_id,
            id,
            shop,
            doc_id.as_str(),
            f.str("to"),
            f.str("document"),
            f.str("lang"),
            f.str("message"),
            f.i64("requested_at"),
            f.str("requested_by"),
            sent,
            failed,
            failed.and(f.opt_str("error")),
            f.bool("automatic", false),
        ])?;
    }
    Ok(())
}

/// The e-mails of an order, oldest first.
pub(crate) fn of_order(conn: &Connection, order_id: &str) -> Result<Vec<OrderEmailView>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, to_addr, document, lang, message, requested_at, requested_by, sent_at, failed_at, error, automatic
             FROM order_emails WHERE order_id = ?1 ORDER BY requested_at, id",
        )?
        .query_map([order_id], |r| {
            let (sent_at, failed_at): (Option<i64>, Option<i64>) = (r.get(7)?, r.get(8)?);
            Ok(OrderEmailView {
                id: r.get(0)?,
                to: r.get(1)?,
                document: r.get(2)?,
                lang: r.get(3)?,
                message: r.get(4)?,
                requested_at: r.get(5)?,
                requested_by: r.get(6)?,
                status: match (sent_at, failed_at) {
                    (Some(_), _) => "sent",
                    (None, Some(_)) => "failed",
                    _ => "queued",
                }
                .into(),
                sent_at,
                error: r.get(9)?,
                automatic: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// An e-mail to send.
#[derive(Debug, Clone)]
pub struct QueuedEmail {
    /// The e-mail's id (also its Message-ID's left part).
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The order's document.
    pub doc_id: DocId,
    /// When it was asked for.
    pub requested_at: i64,
}

/// The e-mails of `shop` still to send whose document is final (an invoice or a credit note has
/// its legal number; a sales note of an order invoiced since goes as the invoice), oldest first.
pub fn queued(conn: &Connection, shop: &str, limit: u32) -> Result<Vec<QueuedEmail>> {
    let rows = conn
        .prepare_cached(
            "SELECT e.id, e.order_id, e.doc_id, e.requested_at FROM order_emails e JOIN orders o ON o.id = e.order_id
             WHERE e.shop_id = ?1 AND e.sent_at IS NULL AND e.failed_at IS NULL
               AND CASE
                     WHEN e.document = 'invoice' THEN o.invoice_number != ''
                     WHEN e.document = 'credit_note' THEN o.credit_number != ''
                     -- A return's credit note once numbered; its return note (no invoice) at once;
                     -- one that stopped counting, to be failed.
                     WHEN e.document LIKE 'return:%' THEN NOT EXISTS (SELECT 1 FROM order_returns r
                         WHERE r.order_id = e.order_id AND 'return:' || r.id = e.document AND r.accepted = 1
                           AND r.number = '' AND o.invoice_issued_at IS NOT NULL)
                     -- A sales note goes as the order's current document: invoiced or credited
                     -- since it was asked for, that one, once numbered.
                     ELSE (o.invoice_issued_at IS NULL OR o.invoice_number != '')
                          AND (o.credit_issued_at IS NULL OR o.credit_number != '') END
             ORDER BY e.requested_at, e.id LIMIT ?2",
        )?
        .query_map(params![shop, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<(String, String, String, i64)>>>()?;
    rows.into_iter()
        .map(|(id, order_id, doc, requested_at)| {
            Ok(QueuedEmail { id, order_id, doc_id: DocId::parse(&doc)?, requested_at })
        })
        .collect()
}

/// The field and rule of [`compose`]'s error for a document that is not final yet (invoiced or
/// credited after the e-mail was found ready): try again later.
pub const NOT_FINAL: (&str, &str) = ("document", "not_final");

/// An e-mail ready for the mail server.
#[derive(Debug, Clone)]
pub struct ComposedEmail {
    /// The recipient.
    pub to: String,
    /// The shop's name (the From display name).
    pub from_name: String,
    /// The shop's e-mail (Reply-To), if it has one.
    pub reply_to: Option<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The attachment.
    pub pdf: OrderPdf,
}

/// The e-mail `email_id` of `shop` as it goes out: subject and text in its language, the PDF of
/// its document as the order is now (`now`: the PDF's printing time).
pub fn compose(conn: &Connection, shop: &str, email_id: &str, now: i64) -> Result<ComposedEmail> {
    let row: Option<(String, String, String, String, String)> = conn
        .prepare_cached(
            "SELECT order_id, to_addr, document, lang, message FROM order_emails WHERE id = ?1 AND shop_id = ?2",
        )?
        .query_row([email_id, shop], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let (order_id, to, document, lang, message) = row.ok_or_else(|| CoreError::not_found("email", email_id))?;
    // The same invoice (or credit note) issued on two replicas while apart asked for its
    // automatic e-mail twice: one goes — the one already sent, else the first asked for.
    let earlier: Option<String> = conn
        .prepare_cached(
            "SELECT d.id FROM order_emails e JOIN order_emails d ON d.order_id = e.order_id AND d.document = e.document
               AND d.automatic AND d.id != e.id
               AND (d.sent_at IS NOT NULL OR (d.failed_at IS NULL AND (d.requested_at, d.id) < (e.requested_at, e.id)))
             WHERE e.id = ?1 AND e.automatic LIMIT 1",
        )?
        .query_row([email_id], |r| r.get(0))
        .optional()?;
    if let Some(first) = earlier {
        return Err(CoreError::conflict(
            "email",
            "duplicate",
            format!("already e-mailed automatically as {first} (issued on two devices at once)"),
        ));
    }
    let caller = system_caller(shop);
    let order = orders::get(conn, &caller, &order_id)?;
    let shop_view = org::get_shop(conn, shop)?;
    let lang = Lang::parse("lang", &lang).unwrap_or(Lang::Es);
    // A return: its own credit note (or return note), with its own amount.
    if let Some(rid) = document.strip_prefix(super::returns::KEY) {
        let Some(r) = order.returns.iter().find(|r| r.id == rid && r.accepted) else {
            return Err(CoreError::conflict("document", "exists", "the return does not count (any more)"));
        };
        if r.credit_note.as_ref().is_some_and(|c| c.number.is_empty()) {
            return Err(CoreError::conflict(NOT_FINAL.0, NOT_FINAL.1, "the document waits for its legal number"));
        }
        let pdf = crate::invoice::order_pdf_of(conn, &caller, &order_id, lang, now, Some(&document))?;
        let total = format!("{} {}", r.total, order.currency);
        let name = if shop_view.legal_name.is_empty() { &shop_view.name } else { &shop_view.legal_name };
        let (subject, what) = match (&r.credit_note, lang == Lang::Es) {
            (Some(c), true) => (
                format!("Nota de crédito {} — {name}", c.number),
                format!("la nota de crédito {} por lo que devolvió de su pedido {}", c.number, order.number),
            ),
            (Some(c), false) => (
                format!("Credit note {} — {name}", c.number),
                format!("credit note {} for what you returned from your order {}", c.number, order.number),
            ),
            (None, true) => (
                format!("Devolución del pedido {} — {name}", order.number),
                format!("la nota de devolución de su pedido {}", order.number),
            ),
            (None, false) => (
                format!("Return from order {} — {name}", order.number),
                format!("the return note of your order {}", order.number),
            ),
        };
        return Ok(letter(conn, &shop_view, &order, (to, subject, &what, &total, &message), lang, pdf));
    }
    // A sales note asked for before the order was invoiced (or credited) goes as that document.
    let which = match document.as_str() {
        "invoice" => Some("invoice"),
        "credit_note" => Some("credit_note"),
        _ if order.credit_note.is_some() => Some("credit_note"),
        _ if order.invoice.is_some() => Some("invoice"),
        _ => None,
    };
    // Invoiced (or credited) since the outbox found it ready: it waits for the legal number.
    let numbered = match which {
        Some("invoice") => order.invoice.as_ref().is_some_and(|i| !i.number.is_empty()),
        Some("credit_note") => order.credit_note.as_ref().is_some_and(|c| !c.number.is_empty()),
        _ => true,
    };
    if !numbered {
        return Err(CoreError::conflict(NOT_FINAL.0, NOT_FINAL.1, "the document waits for its legal number"));
    }
    let pdf = crate::invoice::order_pdf_of(conn, &caller, &order_id, lang, now, which)?;
    let invoice = order.invoice.as_ref().map(|i| if i.number.is_empty() { &i.provisional_number } else { &i.number });
    let credit =
        order.credit_note.as_ref().map(|c| if c.number.is_empty() { &c.provisional_number } else { &c.number });
    // A credit note undoes what the order's returns did not: its own amount.
    let total = match which {
        Some("credit_note") => {
            let mut net = order.clone();
            super::returns::net_of_returns(conn, &mut net)?;
            format!("{} {}", net.total, order.currency)
        }
        _ => format!("{} {}", order.total, order.currency),
    };
    let name = if shop_view.legal_name.is_empty() { &shop_view.name } else { &shop_view.legal_name };
    let es = lang == Lang::Es;
    let (subject, what) = match (which, invoice, credit) {
        (Some("credit_note"), Some(n), Some(c)) if es => {
            (format!("Nota de crédito {c} — {name}"), format!("la nota de crédito {c}, que anula la factura {n}"))
        }
        (Some("credit_note"), Some(n), Some(c)) => {
            (format!("Credit note {c} — {name}"), format!("credit note {c}, which cancels invoice {n}"))
        }
        (Some("invoice"), Some(n), _) if es => {
            (format!("Factura {n} — {name}"), format!("la factura {n} de su pedido {}", order.number))
        }
        (Some("invoice"), Some(n), _) => {
            (format!("Invoice {n} — {name}"), format!("invoice {n} for your order {}", order.number))
        }
        _ if es => {
            (format!("Pedido {} — {name}", order.number), format!("la nota de venta de su pedido {}", order.number))
        }
        _ => (format!("Order {} — {name}", order.number), format!("the sales note of your order {}", order.number)),
    };
    Ok(letter(conn, &shop_view, &order, (to, subject, &what, &total, &message), lang, pdf))
}

/// An e-mail of `order`'s document: `parts` are the recipient, the subject, the document in
/// words, its total and the sender's own words; the greeting, text and signature in `lang`.
fn letter(
    conn: &Connection,
    shop_view: &dashoffice_domain::api::ShopView,
    order: &OrderView,
    (to, subject, what, total, message): (String, String, &str, &str, &str),
    lang: Lang,
    pdf: OrderPdf,
) -> ComposedEmail {
    let customer = customer_email(conn, &shop_view.id, &order.customer_id).map(|(name, _)| name).unwrap_or_default();
    let name = if shop_view.legal_name.is_empty() { &shop_view.name } else { &shop_view.legal_name };
    let es = lang == Lang::Es;
    let mut body = String::new();
    if !message.is_empty() {
        body.push_str(message);
        body.push_str("\n\n");
    }
    let greeting = match (es, customer.is_empty()) {
        (true, true) => "Hola:".to_string(),
        (true, false) => format!("Hola, {customer}:"),
        (false, true) => "Hello,".to_string(),
        (false, false) => format!("Hello {customer},"),
    };
    body.push_str(&greeting);
    body.push_str("\n\n");
    body.push_str(&if es {
        format!("Le enviamos adjunta {what} (total {total}).\n")
    } else {
        format!("Please find attached {what} (total {total}).\n")
    });
    body.push_str(if es { "\nGracias por su compra.\n\n" } else { "\nThank you for your purchase.\n\n" });
    body.push_str(name);
    body.push('\n');
    let contact: Vec<&str> =
        [shop_view.phone.as_str(), shop_view.email.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
    if !contact.is_empty() {
        body.push_str(&contact.join(" · "));
        body.push('\n');
    }
    ComposedEmail {
        to,
        from_name: shop_view.name.clone(),
        reply_to: Some(shop_view.email.clone()).filter(|m| !m.is_empty()),
        subject,
        body,
        pdf,
    }
}

/// How the sending of an e-mail ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The mail server took it, at this time (Unix ms), with this Message-ID.
    Sent { at: i64, message_id: String },
    /// It will not be sent: when, and why.
    Failed { at: i64, error: String },
}

/// Writes how e-mail `email_id` of order `order_id` (in `doc`) ended into its request (the relay's
/// service replica, after the mail server answered). Sent wins over failed: a failure written on
/// one relay never hides a send.
pub fn mark(ctx: &mut WriteCtx<'_>, doc: &DocId, order_id: &str, email_id: &str, outcome: &Outcome) -> Result<()> {
    let key = format!("{KEY}{email_id}");
    ctx.change(doc, &[order_id], |tx, _| {
        let o = doc::record(tx, order_id)?.ok_or_else(|| CoreError::not_found("order", order_id))?;
        let Some(m) = doc::get_obj(tx, &o, &key) else {
            return Err(CoreError::not_found("email", email_id));
        };
        match outcome {
            Outcome::Sent { at, message_id } => {
                tx.put(&m, "sent_at", *at)?;
                tx.put(&m, "message_id", message_id.as_str())?;
            }
            Outcome::Failed { at, error } => {
                tx.put(&m, "failed_at", *at)?;
                tx.put(&m, "error", error.as_str())?;
            }
        }
        Ok(())
    })
}
