//! An order as a printable sales document (PDF, A4): the shop (legal name, tax id under its
//! country's name for it — RFC, CUIT, NIT…, address, phone, e-mail) and branch (address, phone),
//! number and date in the shop's time zone, customer (tax id, billing address, phone, e-mail),
//! seller, lines, tax and totals, notes, page numbers. Drafts print as a
//! quote; cancelled and refunded orders say so in the title. It is the shop's own document, not an
//! electronic invoice of a tax authority (CFDI, DIAN, AFIP…), and says so at the foot of every page.
//!
//! Text uses the PDF's built-in Helvetica (no font file to ship), so it is encoded as
//! Windows-1252: Spanish and Portuguese letters print; other scripts' characters are dropped by
//! the encoder.

use dashoffice_domain::{FieldError, OrderStatus, api::OrderView};
use printpdf::{BuiltinFont, Color, IndirectFontRef, Line, Mm, PdfDocument, PdfLayerReference, Point, Rgb};
use rusqlite::Connection;

use crate::{
    Caller,
    entities::{customers, orders, org, returns, staff},
    error::{CoreError, Result},
};

/// The language of the document's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Spanish (the default).
    Es,
    /// English.
    En,
}

impl Lang {
    /// Parses `es` or `en` (query parameter `field`).
    pub fn parse(field: &str, s: &str) -> std::result::Result<Self, FieldError> {
        match s {
            "es" => Ok(Self::Es),
            "en" => Ok(Self::En),
            _ => Err(FieldError::new(field, "one_of", "must be one of: es, en")),
        }
    }
}

/// An order's sales document.
#[derive(Debug, Clone)]
pub struct OrderPdf {
    /// `<order number>.pdf`, safe as a file name.
    pub file_name: String,
    /// The PDF.
    pub bytes: Vec<u8>,
}

/// The sales document of order `id`, for a caller who may see the order; `now_ms` is the
/// printing time shown at the foot. Once a credit note undoes the invoice, that is the credit
/// note (see [`order_pdf_of`] for the invoice itself).
pub fn order_pdf(conn: &Connection, caller: &Caller, id: &str, lang: Lang, now_ms: i64) -> Result<OrderPdf> {
    order_pdf_of(conn, caller, id, lang, now_ms, None)
}

/// [`order_pdf`], or one of the order's fiscal documents by name: `invoice` (its invoice, even
/// after a credit note) or `credit_note`; 409 naming `document` when the order has none such.
pub fn order_pdf_of(
    conn: &Connection,
    caller: &Caller,
    id: &str,
    lang: Lang,
    now_ms: i64,
    document: Option<&str>,
) -> Result<OrderPdf> {
    let mut order = orders::get(conn, caller, id)?;
    let missing = |what: &str| CoreError::conflict("document", "exists", format!("the order has no {what}"));
    let mut return_reason = None;
    match document {
        None | Some("credit_note") if order.credit_note.is_some() => {
            // The credit note undoes what the returns' own credit notes did not.
            returns::net_of_returns(conn, &mut order)?;
        }
        None => {}
        Some("invoice") if order.invoice.is_some() => order.credit_note = None,
        Some("invoice") => return Err(missing("invoice")),
        Some("credit_note") => return Err(missing("credit note")),
        Some(d) if d.starts_with(returns::KEY) => {
            let rid = &d[returns::KEY.len()..];
            let Some(r) = order.returns.iter().find(|r| r.id == rid).cloned() else {
                return Err(missing("such return"));
            };
            if !r.accepted {
                return Err(CoreError::conflict(
                    "document",
                    "accepted",
                    "this return counts for nothing (its units were returned by another one first)",
                ));
            }
            order.lines = r.lines;
            (order.subtotal, order.tax_total, order.total) = (r.subtotal, r.tax_total, r.total);
            order.notes = String::new();
            match r.credit_note {
                Some(c) => order.credit_note = Some(c),
                None => return_reason = Some(r.reason),
            }
        }
        Some(_) => {
            return Err(dashoffice_domain::FieldError::new(
                "document",
                "one_of",
                "invoice, credit_note or return:{id} (or none: the current one)",
            )
            .into());
        }
    }
    let shop = org::get_shop(conn, &caller.shop_id)?;
    let branch = org::get_branch(conn, &caller.shop_id, &order.branch_id).ok();
    let customer = customers::get(conn, &caller.shop_id, &order.customer_id).ok();
    let seller = staff::get(conn, &caller.shop_id, &order.seller_id).ok().map(|s| s.name);
    let tz = jiff::tz::TimeZone::get(&shop.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let date = |ms: i64, with_time: bool| {
        let t = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_zoned(tz.clone());
        let f = match (lang, with_time) {
            (Lang::Es, false) => "%d/%m/%Y",
            (Lang::Es, true) => "%d/%m/%Y %H:%M",
            (Lang::En, false) => "%Y-%m-%d",
            (Lang::En, true) => "%Y-%m-%d %H:%M",
        };
        t.strftime(f).to_string()
    };
    let tax_label = dashoffice_domain::tax_id_label(&shop.phone_region, label(lang, "tax_id"));
    let tax_line = |id: &str| (!id.is_empty()).then(|| format!("{tax_label}: {id}"));
    let shop_lines: Vec<String> = [
        (!shop.legal_name.is_empty() && shop.legal_name != shop.name).then(|| shop.legal_name.clone()),
        tax_line(&shop.tax_id),
    ]
    .into_iter()
    .flatten()
    .chain(shop.address.lines().map(str::to_string))
    .chain(joined(&[&shop.phone, &shop.email]))
    .collect();
    let branch_lines: Vec<String> = branch
        .iter()
        .flat_map(|b| {
            std::iter::once(format!("{} ({})", b.name, b.code))
                .chain(b.address.lines().map(str::to_string))
                .chain(joined(&[&b.phone]))
        })
        .collect();
    let customer_lines: Vec<String> = customer
        .iter()
        .flat_map(|c| {
            tax_line(&c.tax_id)
                .into_iter()
                .chain(c.address.lines().map(str::to_string))
                .chain(c.phone.clone())
                .chain(c.email.clone())
        })
        .collect();
    let input = Input {
        shop: shop.name,
        shop_lines,
        branch_lines,
        customer_name: customer.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| order.customer_name.clone()),
        customer_lines,
        seller,
        date: date(order.created_at, false),
        printed: date(now_ms, true),
        return_reason,
        order,
    };
    // Named after the legal number of the document once it has one.
    let o = &input.order;
    let legal = match (&o.credit_note, &o.invoice) {
        (Some(c), _) if !c.number.is_empty() => Some(c.number.as_str()),
        (None, Some(i)) if !i.number.is_empty() => Some(i.number.as_str()),
        _ => None,
    };
    let stem = match (legal, &input.return_reason) {
        (Some(n), _) => n.to_string(),
        (None, Some(_)) => format!("{}-R", o.number),
        (None, None) => o.number.clone(),
    };
    let file_name = format!("{}.pdf", file_stem(&stem));
    Ok(OrderPdf { file_name, bytes: render(&input, lang)? })
}

/// The non-empty ones of `parts` on one line, separated by a dot; no line when all are empty.
fn joined(parts: &[&str]) -> Option<String> {
    let v: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    (!v.is_empty()).then(|| v.join(" · "))
}

/// An order number as a file name's stem: letters, digits and dashes (anything else becomes `_`).
pub fn file_stem(number: &str) -> String {
    number.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

struct Input {
    shop: String,
    /// Under the shop's name: legal name, tax id, address, phone and e-mail.
    shop_lines: Vec<String>,
    /// The branch, its address and phone.
    branch_lines: Vec<String>,
    customer_name: String,
    /// Under the customer's name: tax id, address, phone, e-mail.
    customer_lines: Vec<String>,
    seller: Option<String>,
    date: String,
    printed: String,
    /// A return of an order without invoice: printed as a return note, with its reason.
    return_reason: Option<String>,
    order: OrderView,
}

fn label(lang: Lang, key: &str) -> &'static str {
    let (es, en) = match key {
        "quote" => ("Cotización", "Quote"),
        "invoice" => ("Nota de venta", "Sales note"),
        "fiscal_invoice" => ("Factura", "Invoice"),
        "provisional_invoice" => ("Factura provisional", "Provisional invoice"),
        "credit_note" => ("Nota de crédito", "Credit note"),
        "provisional_credit_note" => ("Nota de crédito provisional", "Provisional credit note"),
        "return_note" => ("Nota de devolución", "Return note"),
        "reason" => ("Motivo", "Reason"),
        "order" => ("Pedido", "Order"),
        "number" => ("Número", "Number"),
        "date" => ("Fecha", "Date"),
        "status" => ("Estado", "Status"),
        "seller" => ("Vendedor", "Seller"),
        "customer" => ("Cliente", "Customer"),
        "sku" => ("SKU", "SKU"),
        "product" => ("Producto", "Product"),
        "qty" => ("Cant.", "Qty"),
        "unit_price" => ("Precio unit.", "Unit price"),
        "tax" => ("Impuesto", "Tax"),
        "amount" => ("Importe", "Amount"),
        "subtotal" => ("Subtotal", "Subtotal"),
        "total" => ("Total", "Total"),
        "notes" => ("Notas", "Notes"),
        "page" => ("Página", "Page"),
        "of" => ("de", "of"),
        "printed" => ("Impreso", "Printed"),
        "tax_id" => ("ID fiscal", "Tax ID"),
        "not_fiscal" => (
            "Documento interno de la tienda; no es un comprobante fiscal electrónico.",
            "The shop's own document; not a tax authority's electronic invoice.",
        ),
        "cancelled" => ("ANULADA", "CANCELLED"),
        "refunded" => ("REEMBOLSADA", "REFUNDED"),
        "draft" => ("Borrador", "Draft"),
        "confirmed" => ("Confirmado", "Confirmed"),
        "paid" => ("Pagado", "Paid"),
        "fulfilled" => ("Preparado", "Fulfilled"),
        "delivered" => ("Entregado", "Delivered"),
        _ => ("", ""),
    };
    match lang {
        Lang::Es => es,
        Lang::En => en,
    }
}

/// Helvetica's advance widths (per 1,000 units of the font size) for ASCII 32–126, from its AFM.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The same for Helvetica-Bold.
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611,
    556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389,
    280, 389, 584,
];

/// Width of `s` in millimetres at `size` points, in Helvetica or Helvetica-Bold. Accented
/// letters are as wide as their base letter; `¿` `¡` and the wide punctuation have their own
/// widths; anything else counts as 556 (a digit).
fn width_mm(s: &str, size: f32, bold: bool) -> f32 {
    let table = if bold { &HELVETICA_BOLD } else { &HELVETICA };
    let units: u32 = s
        .chars()
        .map(|c| {
            // An accented letter is drawn as wide as its base letter.
            let c = crate::search::base_letter(c).unwrap_or(c);
            match c as u32 {
                n @ 32..=126 => u32::from(table[(n - 32) as usize]),
                _ => match c {
                    '¡' => 333,
                    '¿' => 611,
                    '—' | '…' | '€' => 1000,
                    '–' => 556,
                    '°' => 400,
                    _ => 556,
                },
            }
        })
        .sum();
    units as f32 / 1000.0 * size * 25.4 / 72.0
}

/// `s` cut (with an ellipsis) to fit `max` millimetres.
fn fit(s: &str, size: f32, max: f32, bold: bool) -> String {
    if width_mm(s, size, bold) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        if width_mm(&out, size, bold) + width_mm("...", size, bold) > max {
            out.pop();
            break;
        }
    }
    format!("{}...", out.trim_end())
}

/// Words of `s` in lines of at most `max` millimetres (a word longer than a line is cut).
fn wrap(s: &str, size: f32, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for para in s.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if width_mm(&candidate, size, false) <= max {
                line = candidate;
            } else {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                line = fit(word, size, max, false);
            }
        }
        lines.push(line);
    }
    lines
}

/// A4 portrait, in millimetres.
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 16.0;
const RIGHT: f32 = PAGE_W - MARGIN;
/// Lines stop here; the foot sits below.
const BOTTOM: f32 = 30.0;
const ROW: f32 = 6.0;

/// Table columns: left edge of SKU and product; right edges of the numbers.
const COL_SKU: f32 = MARGIN;
const COL_NAME: f32 = MARGIN + 28.0;
const COL_QTY: f32 = 122.0;
const COL_PRICE: f32 = 146.0;
const COL_TAX: f32 = 163.0;

struct Pen {
    layer: PdfLayerReference,
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    y: f32,
}

impl Pen {
    fn text(&self, s: &str, size: f32, x: f32, y: f32, bold: bool) {
        let font = if bold { &self.bold } else { &self.regular };
        self.layer.use_text(s, size, Mm(x), Mm(y), font);
    }
    fn right(&self, s: &str, size: f32, right: f32, y: f32, bold: bool) {
        self.text(s, size, right - width_mm(s, size, bold), y, bold);
    }
    fn rule(&self, y: f32) {
        self.layer.set_outline_thickness(0.5);
        self.layer.add_line(Line {
            points: vec![(Point::new(Mm(MARGIN), Mm(y)), false), (Point::new(Mm(RIGHT), Mm(y)), false)],
            is_closed: false,
        });
    }
}

fn render(input: &Input, lang: Lang) -> Result<Vec<u8>> {
    let o = &input.order;
    // Once a credit note undoes the invoice, the document is the credit note.
    let kind = match (&o.invoice, &o.credit_note) {
        _ if o.status == OrderStatus::Draft => label(lang, "quote"),
        (_, None) if input.return_reason.is_some() => label(lang, "return_note"),
        (_, Some(_)) => label(lang, "credit_note"),
        (Some(_), None) => label(lang, "fiscal_invoice"),
        (None, None) => label(lang, "invoice"),
    };
    let title = match o.status {
        _ if o.credit_note.is_some() => kind.to_string(),
        OrderStatus::Cancelled => format!("{kind} - {}", label(lang, "cancelled")),
        OrderStatus::Refunded => format!("{kind} - {}", label(lang, "refunded")),
        _ => kind.to_string(),
    };
    let pdf_err = |e: printpdf::Error| CoreError::Storage(format!("making the PDF: {e}"));
    let (doc, page, layer) = PdfDocument::new(format!("{title} {}", o.number), Mm(PAGE_W), Mm(PAGE_H), "1");
    let regular = doc.add_builtin_font(BuiltinFont::Helvetica).map_err(pdf_err)?;
    let bold = doc.add_builtin_font(BuiltinFont::HelveticaBold).map_err(pdf_err)?;
    let mut pen = Pen { layer: doc.get_page(page).get_layer(layer), regular, bold, y: PAGE_H - MARGIN - 4.0 };
    let mut pages = vec![pen.layer.clone()];

    // Head: the shop on the left, the document on the right.
    // The shop's name takes what the title leaves of the line.
    let room = RIGHT - MARGIN - width_mm(&title, 14.0, true) - 6.0;
    pen.text(&fit(&input.shop, 16.0, room, true), 16.0, MARGIN, pen.y, true);
    let void = o.credit_note.is_none() && matches!(o.status, OrderStatus::Cancelled | OrderStatus::Refunded);
    if void {
        pen.layer.set_fill_color(Color::Rgb(Rgb::new(0.75, 0.1, 0.1, None)));
    }
    pen.right(&title, 14.0, RIGHT, pen.y, true);
    if void {
        pen.layer.set_fill_color(Color::Rgb(Rgb::new(0.0, 0.0, 0.0, None)));
    }
    pen.y -= 7.0;
    let top = pen.y;
    for l in &input.shop_lines {
        pen.text(&fit(l, 9.0, 100.0, false), 9.0, MARGIN, pen.y, false);
        pen.y -= 4.5;
    }
    if !input.shop_lines.is_empty() {
        pen.y -= 1.5;
    }
    for (i, l) in input.branch_lines.iter().enumerate() {
        let size = if i == 0 { 10.0 } else { 9.0 };
        pen.text(&fit(l, size, 100.0, false), size, MARGIN, pen.y, false);
        pen.y -= 4.5;
    }
    pen.y += 4.5;
    let invoice = match &o.invoice {
        Some(i) if !i.number.is_empty() => (label(lang, "fiscal_invoice"), i.number.clone()),
        Some(i) => (label(lang, "provisional_invoice"), i.provisional_number.clone()),
        None => ("", String::new()),
    };
    let (credit, reason) = match &o.credit_note {
        Some(c) if !c.number.is_empty() => ((label(lang, "credit_note"), c.number.clone()), c.reason.clone()),
        Some(c) => ((label(lang, "provisional_credit_note"), c.provisional_number.clone()), c.reason.clone()),
        None => (("", String::new()), input.return_reason.clone().unwrap_or_default()),
    };
    let facts = [
        credit,
        invoice,
        (label(lang, if o.invoice.is_some() { "order" } else { "number" }), o.number.clone()),
        (label(lang, "date"), input.date.clone()),
        (label(lang, "status"), label(lang, o.status.as_str()).to_string()),
        (label(lang, "seller"), input.seller.clone().unwrap_or_default()),
        (label(lang, "reason"), reason),
    ];
    let mut y = top;
    for (k, v) in facts.iter().filter(|(_, v)| !v.is_empty()) {
        pen.right(&fit(v, 10.0, 50.0, false), 10.0, RIGHT, y, false);
        pen.right(&format!("{k}:"), 10.0, RIGHT - 52.0, y, true);
        y -= 5.0;
    }

    // The customer.
    pen.y -= 9.0;
    pen.text(label(lang, "customer"), 10.0, MARGIN, pen.y, true);
    pen.y -= 5.0;
    pen.text(&fit(&input.customer_name, 10.0, 100.0, false), 10.0, MARGIN, pen.y, false);
    for extra in &input.customer_lines {
        pen.y -= 4.5;
        pen.text(&fit(extra, 9.0, 100.0, false), 9.0, MARGIN, pen.y, false);
    }
    pen.y = pen.y.min(y) - 8.0;

    // Lines.
    let header = |pen: &mut Pen| {
        pen.text(label(lang, "sku"), 9.0, COL_SKU, pen.y, true);
        pen.text(label(lang, "product"), 9.0, COL_NAME, pen.y, true);
        pen.right(label(lang, "qty"), 9.0, COL_QTY, pen.y, true);
        pen.right(label(lang, "unit_price"), 9.0, COL_PRICE, pen.y, true);
        pen.right(label(lang, "tax"), 9.0, COL_TAX, pen.y, true);
        pen.right(label(lang, "amount"), 9.0, RIGHT, pen.y, true);
        pen.rule(pen.y - 2.0);
        pen.y -= ROW + 1.0;
    };
    // A further page, headed by the document's title and number.
    let new_page = |pen: &mut Pen, pages: &mut Vec<PdfLayerReference>| {
        let (p, l) = doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "1");
        pen.layer = doc.get_page(p).get_layer(l);
        pages.push(pen.layer.clone());
        pen.y = PAGE_H - MARGIN - 4.0;
        pen.text(&format!("{title} {}", o.number), 10.0, MARGIN, pen.y, true);
        pen.y -= 10.0;
    };
    header(&mut pen);
    for line in &o.lines {
        if pen.y < BOTTOM {
            new_page(&mut pen, &mut pages);
            header(&mut pen);
        }
        pen.text(&fit(&line.sku, 9.0, COL_NAME - COL_SKU - 2.0, false), 9.0, COL_SKU, pen.y, false);
        pen.text(&fit(&line.name, 9.0, COL_QTY - COL_NAME - 12.0, false), 9.0, COL_NAME, pen.y, false);
        pen.right(&line.quantity.to_string(), 9.0, COL_QTY, pen.y, false);
        pen.right(&grouped(&line.unit_price), 9.0, COL_PRICE, pen.y, false);
        pen.right(&percent(&line.tax_rate), 9.0, COL_TAX, pen.y, false);
        pen.right(&grouped(&line.subtotal), 9.0, RIGHT, pen.y, false);
        pen.y -= ROW;
    }

    // Totals, kept together with the rule above them.
    if pen.y < BOTTOM + 3.0 * ROW {
        new_page(&mut pen, &mut pages);
    }
    pen.rule(pen.y + ROW - 2.0);
    let totals = [
        (label(lang, "subtotal"), &o.subtotal, false),
        (label(lang, "tax"), &o.tax_total, false),
        (label(lang, "total"), &o.total, true),
    ];
    for (k, v, strong) in totals {
        let size = if strong { 11.0 } else { 10.0 };
        pen.right(&format!("{} {}", grouped(v), o.currency), size, RIGHT, pen.y, strong);
        pen.right(k, size, COL_TAX - 8.0, pen.y, true);
        pen.y -= ROW;
    }

    // Notes.
    if !o.notes.trim().is_empty() {
        // The heading stays with the first line of the notes.
        if pen.y - 9.0 < BOTTOM {
            new_page(&mut pen, &mut pages);
        } else {
            pen.y -= 4.0;
        }
        pen.text(label(lang, "notes"), 10.0, MARGIN, pen.y, true);
        pen.y -= 5.0;
        for l in wrap(o.notes.trim(), 9.0, RIGHT - MARGIN) {
            if pen.y < BOTTOM {
                new_page(&mut pen, &mut pages);
            }
            pen.text(&l, 9.0, MARGIN, pen.y, false);
            pen.y -= 4.5;
        }
    }

    // The foot of every page.
    let n = pages.len();
    for (i, layer) in pages.into_iter().enumerate() {
        pen.layer = layer;
        pen.rule(22.0);
        pen.text(label(lang, "not_fiscal"), 8.0, MARGIN, 17.0, false);
        pen.text(&format!("{} {} - DashOffice", label(lang, "printed"), input.printed), 8.0, MARGIN, 13.0, false);
        pen.right(&format!("{} {} {} {n}", label(lang, "page"), i + 1, label(lang, "of")), 8.0, RIGHT, 13.0, false);
    }
    doc.save_to_bytes().map_err(pdf_err)
}

/// An amount with its thousands grouped: "533304.00" as "533,304.00" (as given when not a plain
/// decimal number).
fn grouped(amount: &str) -> String {
    let (sign, rest) = amount.strip_prefix('-').map_or(("", amount), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, None), |(i, f)| (i, Some(f)));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return amount.to_string();
    }
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// "0.16" as "16 %" (as stored when not a number).
fn percent(rate: &str) -> String {
    match rate.parse::<rust_decimal::Decimal>() {
        Ok(r) => match r.checked_mul(rust_decimal::Decimal::ONE_HUNDRED) {
            Some(p) => format!("{} %", p.normalize()),
            None => rate.to_string(),
        },
        Err(_) => rate.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_helvetica_and_long_text_is_cut_to_fit() {
        // Ten digits at 10 pt: 5,560 units = 55.6 pt = 19.6 mm.
        assert!((width_mm("0123456789", 10.0, false) - 19.61).abs() < 0.05);
        // Bold is wider; an accented letter is as wide as its base letter.
        assert!(width_mm("Nota de venta", 14.0, true) > width_mm("Nota de venta", 14.0, false));
        assert_eq!(width_mm("Núñez", 10.0, true), width_mm("Nunez", 10.0, true));
        let cut = fit(&"Camisa de algodón ".repeat(10), 9.0, 60.0, false);
        assert!(cut.ends_with("...") && width_mm(&cut, 9.0, false) <= 60.0, "{cut}");
        assert_eq!(fit("Camisa", 9.0, 60.0, false), "Camisa");
        let lines = wrap("uno dos tres cuatro cinco seis siete ocho nueve diez", 9.0, 30.0);
        assert!(lines.len() > 1 && lines.iter().all(|l| width_mm(l, 9.0, false) <= 30.0), "{lines:?}");
        assert_eq!(grouped("533304.00"), "533,304.00");
        assert_eq!(grouped("1234567"), "1,234,567");
        assert_eq!(grouped("-1000.5"), "-1,000.5");
        assert_eq!((grouped("999.99"), grouped("0"), grouped("n/a")), ("999.99".into(), "0".into(), "n/a".into()));
        assert_eq!(percent("0.16"), "16 %");
        assert_eq!(percent("0"), "0 %");
        assert_eq!(percent("0.105"), "10.5 %");
    }

    #[test]
    fn the_language_is_es_or_en() {
        assert_eq!(Lang::parse("lang", "es").unwrap(), Lang::Es);
        let e = Lang::parse("lang", "fr").unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("lang", "one_of"));
    }
}
