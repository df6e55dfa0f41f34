//! The sales document of an order: a real PDF whose text says what the order says.

use dashoffice_core::{
    Caller, CoreError,
    domain::{
        OrderStatus, Role,
        api::{CreateCustomer, CreateOrder, OrderLineInput, TransitionOrder},
    },
    entities::{customers, orders, products},
    invoice::{self, Lang},
};

use crate::fixtures::{product_input, shop};

/// The number of pages of `pdf` and their text, as Poppler's `pdftotext` (Debian's
/// poppler-utils, which `scripts/test` installs) reads them: a real PDF reader, which honours the
/// fonts' encoding.
fn text_of(pdf: &[u8]) -> (usize, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext is missing: install poppler-utils (scripts/test installs it)");
    assert!(out.status.success(), "pdftotext could not read the PDF: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // Pages end with a form feed.
    (text.matches('\u{c}').count(), text)
}

/// An order of `lines` for `customer` in `branch`, without notes.
fn order_input(customer: &str, branch: &str, lines: Vec<OrderLineInput>) -> CreateOrder {
    CreateOrder {
        customer_id: customer.into(),
        branch_id: Some(branch.into()),
        seller_id: None,
        lines,
        notes: String::new(),
    }
}

/// The id of the shop's first branch on replica `r`.
fn first_branch(r: &dashoffice_core::Replica) -> String {
    r.read(|c| Ok(c.query_row("SELECT id FROM branches LIMIT 1", [], |r| r.get(0))?)).unwrap()
}

fn line(product: &str, quantity: i64) -> OrderLineInput {
    OrderLineInput { product_id: product.into(), quantity, unit_price: None }
}

#[test]
fn an_order_prints_as_a_pdf_with_its_lines_and_totals_in_the_callers_language() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    let branch: String = r.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (order, customer) = r
        .write_blocking(move |ctx| {
            let mut p = product_input("CAM-001", "250.00");
            p.name = "Camisa de algodón".into();
            p.tax_rate = Some("0.16".into());
            let p = products::create(ctx, &c2, p)?;
            let cu = customers::create(
                ctx,
                &c2,
                CreateCustomer {
                    name: "José Núñez".into(), phone: Some("+525512345678".into()), ..Default::default()
                },
            )?;
            let mut input = order_input(&cu.id, &branch, vec![line(&p.id, 3)]);
            input.notes = "Entregar después de las 17:00, tocar el timbre dos veces.".into();
            let o = orders::create(ctx, &c2, None, input)?;
            Ok((o, cu))
        })
        .unwrap();

    // A draft is a quote.
    let now = 1_764_600_000_000;
    let pdf = r.read(|conn| invoice::order_pdf(conn, &c, &order.id, Lang::Es, now)).unwrap().bytes;
    assert!(pdf.starts_with(b"%PDF-"));
    let (pages, text) = text_of(&pdf);
    assert_eq!(pages, 1);
    for expected in [
        "Tienda",
        "Cotización",
        &order.number,
        "José Núñez",
        "CAM-001",
        "Camisa de algodón",
        "16 %",
        "750.00",
        "120.00",
        "870.00 MXN",
        "Entregar después",
        "no es un comprobante fiscal",
        "Página 1 de 1",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert_eq!(customer.name, "José Núñez");

    // Confirmed, in English.
    let (c3, id) = (c.clone(), order.id.clone());
    r.write_blocking(move |ctx| orders::transition(ctx, &c3, &id, TransitionOrder { to: OrderStatus::Confirmed }))
        .unwrap();
    let pdf = r.read(|conn| invoice::order_pdf(conn, &c, &order.id, Lang::En, now)).unwrap().bytes;
    let (_, text) = text_of(&pdf);
    for expected in ["Sales note", "Confirmed", "Customer", "Unit price", "Page 1 of 1"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert!(!text.contains("Quote"));

    // Someone who may not see the order gets "not found", as for the order itself.
    let other_branch = Caller { branch_id: Some("elsewhere".into()), role: Role::Seller, ..c.clone() };
    let e = r.read(|conn| invoice::order_pdf(conn, &other_branch, &order.id, Lang::Es, now)).unwrap_err();
    assert!(matches!(e, CoreError::NotFound { .. }), "{e:?}");
}

/// The shop's legal name, tax id (under Mexico's name for it), address, phone and e-mail head the
/// document, then the branch's address; the customer's tax id and billing address follow her name.
/// Wrong details are refused naming the field, and nothing of the request is written.
#[test]
fn fiscal_details_print_on_the_sales_document() {
    use dashoffice_core::{
        domain::api::{UpdateBranch, UpdateShop},
        entities::org,
    };
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    let branch: String = r.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (c3, b3) = (c.clone(), branch.clone());
    let bad = r
        .write_blocking(move |ctx| {
            org::update_shop(
                ctx,
                &c3,
                UpdateShop {
                    tax_id: Some("Tienda Sin Numero".into()),
                    legal_name: Some("Nueva".into()),
                    ..Default::default()
                },
            )
        })
        .unwrap_err();
    assert!(matches!(&bad, CoreError::Validation(errs) if errs.0[0].field == "tax_id"), "{bad:?}");
    let c4 = c.clone();
    let bad = r
        .write_blocking(move |ctx| {
            org::update_branch(ctx, &c4, &b3, UpdateBranch { phone: Some("123".into()), ..Default::default() })
        })
        .unwrap_err();
    assert!(matches!(&bad, CoreError::Validation(errs) if errs.0[0].field == "phone"), "{bad:?}");
    let (shop_view, order) = r
        .write_blocking(move |ctx| {
            let s = org::update_shop(
                ctx,
                &c2,
                UpdateShop {
                    legal_name: Some("Comercializadora del Centro S.A. de C.V.".into()),
                    tax_id: Some(" ccm 010203 ab4 ".into()),
                    address: Some("Av. Juárez 12, Col. Centro\nCiudad de México, CP 06000".into()),
                    phone: Some("+52 55 1234 5678".into()),
                    email: Some("ventas@tienda.mx".into()),
                    ..Default::default()
                },
            )?;
            org::update_branch(
                ctx,
                &c2,
                &branch,
                UpdateBranch {
                    address: Some("Madero 4, local 2".into()),
                    phone: Some("55 8765 4321".into()),
                    ..Default::default()
                },
            )?;
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cu = customers::create(
                ctx,
                &c2,
                CreateCustomer {
                    name: "Lucía Gómez".into(),
                    tax_id: Some("goml800101xy9".into()),
                    address: Some("Calle Roble 8\nPuebla, Pue.".into()),
                    ..Default::default()
                },
            )?;
            let o = orders::create(ctx, &c2, None, order_input(&cu.id, &branch, vec![line(&p.id, 1)]))?;
            Ok((s, o))
        })
        .unwrap();
    assert_eq!((shop_view.tax_id.as_str(), shop_view.tax_id_label.as_str()), ("CCM 010203 AB4", "RFC"));
    // The customer list finds her by part of her tax id, typed in small letters.
    let params = dashoffice_core::domain::api::ListParams { q: Some("goml8001".into()), ..Default::default() };
    let found = r.read(|conn| customers::list(conn, &c, &params)).unwrap();
    assert_eq!(found.items.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Lucía Gómez"]);
    let pdf = r.read(|conn| invoice::order_pdf(conn, &c, &order.id, Lang::Es, 0)).unwrap().bytes;
    let (_, text) = text_of(&pdf);
    for expected in [
        "Comercializadora del Centro S.A. de C.V.",
        "RFC: CCM 010203 AB4",
        "Av. Juárez 12, Col. Centro",
        "Ciudad de México, CP 06000",
        "+52 55 1234 5678",
        "ventas@tienda.mx",
        "Madero 4, local 2",
        "55 8765 4321",
        "Lucía Gómez",
        "RFC: GOML800101XY9",
        "Calle Roble 8",
        "Puebla, Pue.",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}

#[test]
fn a_long_order_continues_on_more_pages() {
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let c2 = c.clone();
    let branch: String = r.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let order = r
        .write_blocking(move |ctx| {
            let mut lines = Vec::new();
            for i in 0..95 {
                let p = products::create(ctx, &c2, product_input(&format!("SKU-{i:03}"), "12.00"))?;
                lines.push(line(&p.id, 1));
            }
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Ana".into(), ..Default::default() })?;
            orders::create(ctx, &c2, None, order_input(&cu.id, &branch, lines))
        })
        .unwrap();
    let pdf = r.read(|conn| invoice::order_pdf(conn, &c, &order.id, Lang::Es, 0)).unwrap().bytes;
    let (pages, text) = text_of(&pdf);
    assert!(pages >= 3, "95 lines on {pages} pages");
    // Thousands are grouped: 95 × 12.00.
    for expected in ["SKU-000", "SKU-094", "1,140.00 MXN", &format!("Página {pages} de {pages}")] {
        assert!(text.contains(expected), "{expected:?} missing");
    }
}

#[test]
fn an_orders_pdf_goes_to_the_customers_conversation_and_only_for_their_own_order() {
    use dashoffice_core::{
        domain::inbox::SendOrderDocument,
        entities::inbox::{self, Inbound},
    };
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let branch: String = r.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (shop_id, b2, c2) = (c.shop_id.clone(), branch.clone(), c.clone());
    let now = r.now_ms();
    let (conversation, ana_order, other_order) = r
        .write_blocking(move |ctx| {
            let got = inbox::receive(
                ctx,
                &shop_id,
                &b2,
                &Inbound {
                    wamid: "wamid.A1".into(),
                    profile_name: "Ana".into(),
                    wa_id: "5215511112222".into(),
                    phone_number_id: "1065".into(),
                    kind: "text".into(),
                    text: "hola".into(),
                    at: now,
                    ..Default::default()
                },
            )?;
            let p = products::create(ctx, &c2, product_input("TAZA", "85.50"))?;
            let order = |customer: String| order_input(&customer, &b2, vec![line(&p.id, 1)]);
            let ana = orders::create(ctx, &c2, None, order(got.customer_id.clone()))?;
            let someone = customers::create(ctx, &c2, CreateCustomer { name: "Luis".into(), ..Default::default() })?;
            let other = orders::create(ctx, &c2, None, order(someone.id))?;
            Ok((got.conversation_id, ana, other))
        })
        .unwrap();

    // Ana's order goes to Ana's conversation as a document naming the order.
    let (c3, id) = (c.clone(), ana_order.id.clone());
    let m = r
        .write_blocking(move |ctx| {
            inbox::send_order_document(ctx, &c3, &id, SendOrderDocument::default(), &c3.user_id.clone())
        })
        .unwrap();
    assert_eq!((m.conversation_id.as_str(), m.kind.as_str()), (conversation.as_str(), "document"));
    assert_eq!(m.text, format!("Pedido {}", ana_order.number));
    assert_eq!(m.payload["order_id"], ana_order.id.as_str());

    // The relay renders it only for an order of that conversation's customer: a payload naming
    // somebody else's order (from a tampered replica) is refused.
    let shop_id = c.shop_id.clone();
    let pdf =
        r.read(|conn| inbox::order_document_for(conn, &shop_id, &conversation, &ana_order.id, Lang::Es, now)).unwrap();
    assert_eq!(pdf.file_name, format!("{}.pdf", ana_order.number));
    assert!(text_of(&pdf.bytes).1.contains("Ana"));
    let e = r
        .read(|conn| inbox::order_document_for(conn, &shop_id, &conversation, &other_order.id, Lang::Es, now))
        .unwrap_err();
    assert!(matches!(&e, CoreError::Conflict { field, .. } if field == "order_id"), "{e:?}");
    // Luis never wrote: nothing to send it to.
    let (c4, id) = (c.clone(), other_order.id.clone());
    let e = r
        .write_blocking(move |ctx| {
            inbox::send_order_document(ctx, &c4, &id, SendOrderDocument::default(), &c4.user_id.clone())
        })
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Conflict { field, rule, .. } if field == "customer_id" && rule == "no_conversation")
    );
    // A seller of another branch sees neither the order nor the conversation.
    let elsewhere = Caller { branch_id: Some("elsewhere".into()), role: Role::Seller, ..c.clone() };
    let id = ana_order.id.clone();
    let e = r
        .write_blocking(move |ctx| inbox::send_order_document(ctx, &elsewhere, &id, SendOrderDocument::default(), "x"))
        .unwrap_err();
    assert!(matches!(e, CoreError::NotFound { .. }), "{e:?}");
}

#[test]
fn a_tax_id_in_the_shops_country_is_checked_by_its_rule() {
    use dashoffice_core::{domain::api::UpdateShop, entities::org};
    let nodes = shop(1);
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let rule_of = |e: CoreError| match e {
        CoreError::Validation(errs) => (errs.0[0].field.clone(), errs.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    // The shop moves to Chile in the same request that sets its RUT: the new country's rule applies.
    let set_rut = |tax: &str| {
        let (c, tax) = (c.clone(), tax.to_string());
        r.write_blocking(move |ctx| {
            let shop = UpdateShop { phone_region: Some("CL".into()), tax_id: Some(tax), ..Default::default() };
            org::update_shop(ctx, &c, shop)
        })
    };
    assert_eq!(rule_of(set_rut("76.086.428-4").unwrap_err()), ("tax_id".into(), "check_digit".into()));
    let shop = set_rut("76.086.428-5").unwrap();
    assert_eq!((shop.tax_id.as_str(), shop.tax_id_label.as_str()), ("76.086.428-5", "RUT"));
    // A customer's RUT with a typo is refused, nothing is written; a foreign id of another shape is kept.
    let c3 = c.clone();
    let bad = r
        .write_blocking(move |ctx| {
            customers::create(
                ctx,
                &c3,
                CreateCustomer { name: "Pía Soto".into(), tax_id: Some("12.345.678-9".into()), ..Default::default() },
            )
        })
        .unwrap_err();
    assert_eq!(rule_of(bad), ("tax_id".into(), "check_digit".into()));
    let count: i64 = r.read(|c| Ok(c.query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?)).unwrap();
    let c4 = c.clone();
    let (good, foreign) = r
        .write_blocking(move |ctx| {
            let mk = |name: &str, tax: &str| CreateCustomer {
                name: name.into(),
                tax_id: Some(tax.into()),
                ..Default::default()
            };
            Ok((
                customers::create(ctx, &c4, mk("Pía Soto", "12.345.678-5"))?,
                customers::create(ctx, &c4, mk("Hans Weber", "DE 123456789"))?,
            ))
        })
        .unwrap();
    assert_eq!((good.tax_id.as_str(), foreign.tax_id.as_str()), ("12.345.678-5", "DE 123456789"));
    let after: i64 = r.read(|c| Ok(c.query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?)).unwrap();
    assert_eq!(after, count + 2);
}

/// Waits (up to 10 s) until `done` holds: the numbering device works in a thread of its own.
fn until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "waited 10 s for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Invoices issued on any replica, offline too, get a provisional number at once and their
/// legal number from the branch's numbering device: gap-free in the order they reach it, one
/// number per order even when two replicas issued it, continued by a device that takes over,
/// restarted by a new series, and flagged when two devices numbered at once.
#[test]
fn invoices_get_gap_free_legal_numbers_from_the_branchs_numbering_device() {
    use dashoffice_core::{
        domain::api::{ListParams, UpdateBranch, UpdateShop},
        entities::org,
    };
    use std::collections::BTreeSet;

    use crate::fixtures::sync_pair;

    let nodes = shop(3);
    let c = nodes[0].caller.clone();
    let (head, a, b) = (&nodes[0].replica, &nodes[1].replica, &nodes[2].replica);
    let branch: String = head.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let code_of = |r: &dashoffice_core::Replica| r.device().code.clone();
    // The device that made the branch numbers its invoices; the others know it.
    let seen = a.read(|conn| org::get_branch(conn, &c.shop_id, &branch)).unwrap();
    assert_eq!(
        (seen.invoicer_code.clone(), seen.invoicing_here, seen.invoice_series.as_str()),
        (code_of(head), false, "CEN")
    );
    assert!(head.read(|conn| org::get_branch(conn, &c.shop_id, &branch)).unwrap().invoicing_here);

    // Five confirmed orders and a draft, known everywhere.
    let (c2, b2) = (c.clone(), branch.clone());
    let (ids, draft) = head
        .write_blocking(move |ctx| {
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Lucía Gómez".into(), ..Default::default() })?;
            let mut ids = Vec::new();
            for _ in 0..5 {
                let o = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, 1)]))?;
                orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
                ids.push(o.id);
            }
            let d = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, 1)]))?;
            Ok((ids, d.id))
        })
        .unwrap();
    let issue = |r: &dashoffice_core::Replica, id: &str| {
        let (c, id) = (c.clone(), id.to_string());
        r.write_blocking(move |ctx| orders::issue_invoice(ctx, &c, &id))
    };
    let rule = |e: CoreError| match e {
        CoreError::Conflict { field, rule, .. } => (field, rule),
        other => panic!("{other:?}"),
    };
    // No invoice before the shop's tax id is set, and none for a draft.
    assert_eq!(rule(issue(head, &ids[0]).unwrap_err()), ("tax_id".into(), "required".into()));
    let c3 = c.clone();
    head.write_blocking(move |ctx| {
        org::update_shop(ctx, &c3, UpdateShop { tax_id: Some("CCM010203AB4".into()), ..Default::default() })
    })
    .unwrap();
    assert_eq!(rule(issue(head, &draft).unwrap_err()), ("status".into(), "invoiceable".into()));
    sync_pair(head, a);
    sync_pair(head, b);

    // Offline, A issues orders 0 and 1, B issues 1 (again) and 2: provisional numbers at once.
    let a0 = issue(a, &ids[0]).unwrap().invoice.unwrap();
    assert_eq!(a0.provisional_number, format!("CEN-{}-F000001", code_of(a)));
    assert!(a0.number.is_empty() && a0.posted_at.is_none());
    issue(a, &ids[1]).unwrap();
    issue(b, &ids[1]).unwrap();
    let b2 = issue(b, &ids[2]).unwrap().invoice.unwrap();
    assert_eq!(b2.provisional_number, format!("CEN-{}-F000002", code_of(b)));
    // Issuing again changes nothing.
    assert_eq!(issue(b, &ids[2]).unwrap().invoice.unwrap(), b2);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pending = ListParams { invoice: Some("pending".into()), ..Default::default() };
    assert_eq!(a.read(|conn| orders::list(conn, &c, &pending)).unwrap().items.len(), 2, "A numbers nothing");

    // They reach the numbering device, which numbers them 1 to 3, one number per order.
    sync_pair(a, head);
    sync_pair(b, head);
    let posted = ListParams { invoice: Some("posted".into()), limit: Some(500), ..Default::default() };
    let numbers = |r: &dashoffice_core::Replica| -> BTreeSet<String> {
        r.read(|conn| orders::list(conn, &c, &posted))
            .unwrap()
            .items
            .into_iter()
            .map(|o| o.invoice.unwrap().number)
            .collect()
    };
    until("the first three legal numbers", || numbers(head).len() == 3);
    let want: BTreeSet<String> = (1..=3).map(|n| format!("CEN-{n:08}")).collect();
    assert_eq!(numbers(head), want);
    // Issued on the numbering device itself: numbered at once, next in line.
    issue(head, &ids[3]).unwrap();
    until("the fourth number", || numbers(head).len() == 4);
    let o3 = head.read(|conn| orders::get(conn, &c, &ids[3])).unwrap().invoice.unwrap();
    assert_eq!((o3.number.as_str(), o3.posted_by.clone(), o3.duplicate), ("CEN-00000004", code_of(head), false));

    // The numbers come back to A, and its PDF prints the invoice's legal number.
    sync_pair(head, a);
    sync_pair(head, b);
    assert_eq!(numbers(a), numbers(head));
    let a1 = a.read(|conn| orders::get(conn, &c, &ids[1])).unwrap();
    let inv = a1.invoice.clone().unwrap();
    assert!(inv.posted_at.is_some() && inv.number.starts_with("CEN-0000000"));
    let pdf = a.read(|conn| invoice::order_pdf(conn, &c, &ids[1], Lang::Es, 0)).unwrap().bytes;
    let (_, text) = text_of(&pdf);
    for expected in ["Factura", inv.number.as_str(), "Pedido", a1.number.as_str()] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert!(!text.contains("Nota de venta"), "{text}");
    // A search by the legal number finds the order: the list's and the search box's.
    let by_number = ListParams { q: Some(inv.number.clone()), ..Default::default() };
    assert_eq!(a.read(|conn| orders::list(conn, &c, &by_number)).unwrap().items[0].id, ids[1]);
    let everywhere = dashoffice_core::domain::api::SearchParams { q: Some(inv.number.clone()), ..Default::default() };
    until("the search box finds the invoice number", || {
        a.search(&c, &everywhere)
            .unwrap()
            .hits
            .first()
            .is_some_and(|h| h.id == ids[1] && h.subtitle.starts_with(&inv.number))
    });
    let bad = ListParams { invoice: Some("paid".into()), ..Default::default() };
    let e = a.read(|conn| orders::list(conn, &c, &bad)).unwrap_err();
    assert!(matches!(&e, CoreError::Validation(errs) if errs.0[0].field == "invoice"), "{e:?}");

    // A takes over numbering (synced first): it continues the series.
    let (c4, b4) = (c.clone(), branch.clone());
    let now_a = a.write_blocking(move |ctx| org::set_invoicer(ctx, &c4, &b4)).unwrap();
    assert_eq!((now_a.invoicer_code, now_a.invoicing_here), (code_of(a), true));
    sync_pair(a, head);
    assert!(!head.read(|conn| org::get_branch(conn, &c.shop_id, &branch)).unwrap().invoicing_here);
    issue(head, &ids[4]).unwrap();
    sync_pair(head, a);
    until("A numbers the fifth", || numbers(a).len() == 5);
    assert_eq!(a.read(|conn| orders::get(conn, &c, &ids[4])).unwrap().invoice.unwrap().number, "CEN-00000005");

    // A new series starts again at 1.
    let (c5, b5) = (c.clone(), branch.clone());
    a.write_blocking(move |ctx| {
        org::update_branch(ctx, &c5, &b5, UpdateBranch { invoice_series: Some("F001".into()), ..Default::default() })
    })
    .unwrap();
    let (c6, b6) = (c.clone(), branch.clone());
    let bad = a
        .write_blocking(move |ctx| {
            org::update_branch(ctx, &c6, &b6, UpdateBranch { invoice_series: Some("f-1".into()), ..Default::default() })
        })
        .unwrap_err();
    assert!(matches!(&bad, CoreError::Validation(errs) if errs.0[0].field == "invoice_series"), "{bad:?}");
    let (c7, b7, id7) = (c.clone(), branch.clone(), draft.clone());
    a.write_blocking(move |ctx| {
        orders::transition(ctx, &c7, &id7, TransitionOrder { to: OrderStatus::Confirmed })?;
        let _ = &b7;
        orders::issue_invoice(ctx, &c7, &id7)
    })
    .unwrap();
    until("the new series", || numbers(a).contains("F001-00000001"));

    // Two devices numbering at once (B made itself the numbering device while apart from A):
    // the same number twice, flagged on both orders once they meet.
    let (c9, b9) = (c.clone(), branch.clone());
    let (x, y) = a
        .write_blocking(move |ctx| {
            let p = products::create(ctx, &c9, product_input("CAM-002", "10.00"))?;
            let cu = customers::list(ctx.conn(), &c9, &ListParams::default())?.items[0].id.clone();
            let mut out = Vec::new();
            for _ in 0..2 {
                let o = orders::create(ctx, &c9, None, order_input(&cu, &b9, vec![line(&p.id, 1)]))?;
                orders::transition(ctx, &c9, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
                out.push(o.id);
            }
            Ok((out[0].clone(), out[1].clone()))
        })
        .unwrap();
    sync_pair(a, b);
    // B's choice has not reached A: A still numbers, and so does B.
    let (c10, b10) = (c.clone(), branch.clone());
    b.write_blocking(move |ctx| org::set_invoicer(ctx, &c10, &b10)).unwrap();
    issue(a, &x).unwrap();
    issue(b, &y).unwrap();
    let number_of = |r: &dashoffice_core::Replica, id: &str| {
        r.read(|conn| orders::get(conn, &c, id)).unwrap().invoice.map(|i| i.number).unwrap_or_default()
    };
    until("both numbered apart", || !number_of(a, &x).is_empty() && !number_of(b, &y).is_empty());
    assert_eq!(number_of(a, &x), "F001-00000002");
    assert_eq!(number_of(b, &y), "F001-00000002");
    sync_pair(a, b);
    for id in [&x, &y] {
        let inv = b.read(|conn| orders::get(conn, &c, id)).unwrap().invoice.unwrap();
        assert!(inv.duplicate, "{inv:?}");
    }
    // The set_invoicer B wrote last wins everywhere now: A numbers no more.
    assert!(!a.read(|conn| org::get_branch(conn, &c.shop_id, &branch)).unwrap().invoicing_here);

    // The invoice register: legal numbers by series and number, the twice-given one flagged.
    let register = |month: Option<&str>| {
        let mut out = Vec::new();
        dashoffice_core::csv_io::export_invoices(a, &c, month, &mut out).map(|_| String::from_utf8(out).unwrap())
    };
    let text = register(None).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..4], ["number", "series", "sequence", "posted_at"]);
    let numbers: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(
        numbers,
        [
            "CEN-00000001",
            "CEN-00000002",
            "CEN-00000003",
            "CEN-00000004",
            "CEN-00000005",
            "F001-00000001",
            "F001-00000002",
            "F001-00000002"
        ]
    );
    assert!(rows[1][3].ends_with("-06:00"), "posted_at in the shop's time zone: {:?}", rows[1]);
    assert_eq!((rows[1][15], rows[1][16]), ("posted", "false"));
    assert_eq!((rows[8][15], rows[8][16]), ("posted", "true"));
    assert_eq!(register(Some("2001-01")).unwrap().lines().count(), 1, "only the header for a month without invoices");
    for bad in ["2026-13", "2026-1", "diciembre"] {
        let e = register(Some(bad)).unwrap_err();
        assert!(matches!(&e, CoreError::Validation(errs) if errs.0[0].field == "month"), "{bad}: {e:?}");
    }
}

/// A credit note undoes the invoice of an order cancelled after it was invoiced: issued on any
/// replica (offline too) with a provisional number, numbered by the branch's numbering device in
/// the series `NC-{invoice series}` once the invoice has its own number (in the same pass when
/// both arrive together), printed as the document, and listed in the register with negative
/// amounts.
#[test]
fn a_credit_note_undoes_an_invoice_with_a_number_of_its_own_series() {
    use dashoffice_core::domain::api::{IssueCreditNote, UpdateShop};
    use dashoffice_core::entities::org;

    use crate::fixtures::sync_pair;

    let nodes = shop(2);
    let c = nodes[0].caller.clone();
    let (head, a) = (&nodes[0].replica, &nodes[1].replica);
    let branch: String = head.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (c2, b2) = (c.clone(), branch.clone());
    let ids = head
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c2, UpdateShop { tax_id: Some("CCM010203AB4".into()), ..Default::default() })?;
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Lucía Gómez".into(), ..Default::default() })?;
            let mut ids = Vec::new();
            for _ in 0..3 {
                let o = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, 1)]))?;
                orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
                ids.push(o.id);
            }
            Ok(ids)
        })
        .unwrap();
    let credit = |r: &dashoffice_core::Replica, id: &str, reason: Option<&str>| {
        let (c, id, reason) = (c.clone(), id.to_string(), reason.map(str::to_string));
        r.write_blocking(move |ctx| orders::issue_credit_note(ctx, &c, &id, IssueCreditNote { reason }))
    };
    let rule = |e: CoreError| match e {
        CoreError::Conflict { field, rule, .. } => (field, rule),
        CoreError::Validation(errs) => (errs.0[0].field.clone(), errs.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    let cancel = |r: &dashoffice_core::Replica, id: &str| {
        let (c, id) = (c.clone(), id.to_string());
        r.write_blocking(move |ctx| orders::transition(ctx, &c, &id, TransitionOrder { to: OrderStatus::Cancelled }))
            .unwrap();
    };
    // Nothing to undo without an invoice; an invoiced order still confirmed keeps its invoice.
    assert_eq!(rule(credit(head, &ids[0], None).unwrap_err()), ("invoice".into(), "required".into()));
    let (c3, id3) = (c.clone(), ids[0].clone());
    head.write_blocking(move |ctx| orders::issue_invoice(ctx, &c3, &id3)).unwrap();
    assert_eq!(rule(credit(head, &ids[0], None).unwrap_err()), ("status".into(), "creditable".into()));
    assert_eq!(
        rule(credit(head, &ids[0], Some(&"x".repeat(501))).unwrap_err()),
        ("reason".into(), "max_length".into())
    );
    until("the invoice's number", || {
        head.read(|conn| orders::get(conn, &c, &ids[0])).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
    });
    sync_pair(head, a);

    // On the other replica, offline: cancelled, then the credit note, provisional at once.
    cancel(a, &ids[0]);
    let cn = credit(a, &ids[0], Some("El cliente devolvió la camisa")).unwrap().credit_note.unwrap();
    assert_eq!(cn.provisional_number, format!("CEN-{}-C000001", a.device().code));
    assert_eq!((cn.number.as_str(), cn.reason.as_str()), ("", "El cliente devolvió la camisa"));
    // Issuing again changes nothing.
    assert_eq!(credit(a, &ids[0], None).unwrap().credit_note.unwrap(), cn);
    // Invoiced, cancelled and credited offline all at once: both numbers come in the same pass.
    let (c4, id4) = (c.clone(), ids[1].clone());
    a.write_blocking(move |ctx| orders::issue_invoice(ctx, &c4, &id4)).unwrap();
    cancel(a, &ids[1]);
    credit(a, &ids[1], None).unwrap();

    sync_pair(a, head);
    let numbers = |id: &str| {
        let o = head.read(|conn| orders::get(conn, &c, id)).unwrap();
        (o.invoice.map(|i| i.number).unwrap_or_default(), o.credit_note.map(|n| n.number).unwrap_or_default())
    };
    until("the credit notes' numbers", || !numbers(&ids[0]).1.is_empty() && !numbers(&ids[1]).1.is_empty());
    assert_eq!(numbers(&ids[0]), ("CEN-00000001".to_string(), "NC-CEN-00000001".to_string()));
    assert_eq!(numbers(&ids[1]), ("CEN-00000002".to_string(), "NC-CEN-00000002".to_string()));

    // Back on the replica that issued them: the PDF is the credit note.
    sync_pair(head, a);
    let pdf = a.read(|conn| invoice::order_pdf(conn, &c, &ids[0], Lang::Es, 0)).unwrap().bytes;
    let (_, text) = text_of(&pdf);
    for expected in ["Nota de crédito", "NC-CEN-00000001", "CEN-00000001", "El cliente devolvió la camisa"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert!(!text.contains("crédito - ANULADA"), "the credit note's title is not struck out: {text}");
    // The invoice it undid can still be printed, by name; a document the order lacks is refused.
    let again = a.read(|conn| invoice::order_pdf_of(conn, &c, &ids[0], Lang::Es, 0, Some("invoice"))).unwrap();
    assert_eq!(again.file_name, "CEN-00000001.pdf");
    let (_, text) = text_of(&again.bytes);
    assert!(text.contains("Factura") && !text.contains("Nota de crédito"), "{text}");
    let e = a.read(|conn| invoice::order_pdf_of(conn, &c, &ids[2], Lang::Es, 0, Some("credit_note"))).unwrap_err();
    assert_eq!(rule(e), ("document".into(), "exists".into()));
    let e = a.read(|conn| invoice::order_pdf_of(conn, &c, &ids[0], Lang::Es, 0, Some("nota"))).unwrap_err();
    assert_eq!(rule(e), ("document".into(), "one_of".into()));

    // The register lists the invoices, then the credit notes with negative amounts.
    let mut out = Vec::new();
    dashoffice_core::csv_io::export_invoices(a, &c, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][17..], ["kind", "invoice"]);
    let summary: Vec<(&str, &str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[13], r[17], r[18])).collect();
    assert_eq!(
        summary,
        [
            ("CEN-00000001", "250.00", "invoice", ""),
            ("CEN-00000002", "250.00", "invoice", ""),
            ("NC-CEN-00000001", "-250.00", "credit_note", "CEN-00000001"),
            ("NC-CEN-00000002", "-250.00", "credit_note", "CEN-00000002"),
        ]
    );
}

/// An order's document by e-mail: asked for on any replica, offline too (requests made on two
/// replicas at once are both kept), checked field by field; ready for the relay's mail outbox
/// once its document is final (an invoice waits for its legal number), composed in the
/// customer's language with the PDF, and its outcome written back for every replica to see.
#[test]
fn an_order_is_emailed_from_any_replica_once_its_document_is_final() {
    use dashoffice_core::{
        domain::api::{EmailOrderDocument, UpdateShop},
        entities::{
            emails::{self, Outcome},
            org,
        },
    };

    use crate::fixtures::sync_pair;

    let nodes = shop(2);
    let c = nodes[0].caller.clone();
    let (head, a) = (&nodes[0].replica, &nodes[1].replica);
    let branch: String = head.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (c2, b2) = (c.clone(), branch.clone());
    let (order, draft, no_mail) = head
        .write_blocking(move |ctx| {
            org::update_shop(
                ctx,
                &c2,
                UpdateShop {
                    tax_id: Some("CCM010203AB4".into()),
                    email: Some("ventas@tienda.mx".into()),
                    ..Default::default()
                },
            )?;
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cu = customers::create(
                ctx,
                &c2,
                CreateCustomer {
                    name: "Lucía Gómez".into(),
                    email: Some("Lucia@Example.com".into()),
                    ..Default::default()
                },
            )?;
            let o = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, 2)]))?;
            orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
            let d = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, 1)]))?;
            let other =
                customers::create(ctx, &c2, CreateCustomer { name: "Sin Correo".into(), ..Default::default() })?;
            let n = orders::create(ctx, &c2, None, order_input(&other.id, &b2, vec![line(&p.id, 1)]))?;
            orders::transition(ctx, &c2, &n.id, TransitionOrder { to: OrderStatus::Confirmed })?;
            Ok((o.id, d.id, n.id))
        })
        .unwrap();
    sync_pair(head, a);
    let email = |r: &dashoffice_core::Replica, id: &str, input: EmailOrderDocument| {
        let (c, id) = (c.clone(), id.to_string());
        r.write_blocking(move |ctx| emails::request(ctx, &c, &id, input))
    };
    let to = |s: &str| EmailOrderDocument { to: Some(s.into()), ..Default::default() };
    let rule = |e: CoreError| match e {
        CoreError::Conflict { field, rule, .. } => (field, rule),
        CoreError::Validation(errs) => (errs.0[0].field.clone(), errs.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    // Bad input, named.
    assert_eq!(rule(email(a, &order, to("no-es-correo")).unwrap_err()), ("to".into(), "email".into()));
    assert_eq!(rule(email(a, &order, to("a@b.mx, c@d.mx")).unwrap_err()), ("to".into(), "email".into()));
    let doc = |d: &str| EmailOrderDocument { document: Some(d.into()), ..Default::default() };
    assert_eq!(rule(email(a, &order, doc("factura")).unwrap_err()), ("document".into(), "one_of".into()));
    assert_eq!(rule(email(a, &order, doc("invoice")).unwrap_err()), ("document".into(), "exists".into()));
    let lang = EmailOrderDocument { lang: Some("fr".into()), ..Default::default() };
    assert_eq!(rule(email(a, &order, lang).unwrap_err()), ("lang".into(), "one_of".into()));
    assert_eq!(rule(email(a, &no_mail, Default::default()).unwrap_err()), ("to".into(), "required".into()));
    assert_eq!(rule(email(a, &draft, Default::default()).unwrap_err()), ("status".into(), "sendable".into()));
    let nothing = a.read(|conn| orders::get(conn, &c, &order)).unwrap();
    assert!(nothing.emails.is_empty(), "a refused request leaves nothing: {:?}", nothing.emails);

    // Offline: A sends the sales note to the customer, invoices, and sends the invoice to the
    // accountant; the head office device sends the sales note again meanwhile.
    let first = email(a, &order, Default::default()).unwrap().emails;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].to.as_str(), first[0].document.as_str(), first[0].status.as_str(), first[0].lang.as_str()),
        ("lucia@example.com", "sales_note", "queued", "es")
    );
    let (c3, o3) = (c.clone(), order.clone());
    a.write_blocking(move |ctx| orders::issue_invoice(ctx, &c3, &o3)).unwrap();
    let mut accountant = to("Contabilidad@Example.com");
    accountant.message = Some("Para su contabilidad.".into());
    let inv = email(a, &order, accountant).unwrap().emails;
    assert_eq!((inv[1].to.as_str(), inv[1].document.as_str()), ("contabilidad@example.com", "invoice"));
    assert_eq!(rule(email(a, &order, doc("sales_note")).unwrap_err()), ("document".into(), "invoiced".into()));
    email(head, &order, Default::default()).unwrap();
    let shop_id = c.shop_id.clone();
    let queued = |r: &dashoffice_core::Replica| {
        let s = shop_id.clone();
        r.read(move |conn| emails::queued(conn, &s, 50)).unwrap().into_iter().map(|q| q.id).collect::<Vec<_>>()
    };
    // The invoice has no legal number on A: both e-mails wait (the sales note goes as the
    // invoice now).
    assert!(queued(a).is_empty());
    sync_pair(a, head);
    until("the invoice's legal number", || {
        head.read(|conn| orders::get(conn, &c, &order)).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
    });
    sync_pair(head, a);
    let both = |r: &dashoffice_core::Replica| r.read(|conn| orders::get(conn, &c, &order)).unwrap().emails;
    assert_eq!(both(a), both(head), "the same e-mails on both replicas");
    assert_eq!(both(a).len(), 3, "requests made on two replicas at once are all kept");
    assert_eq!(queued(head).len(), 3, "every document is final now");

    // What goes out: the invoice e-mail, in Spanish, with its legal number and the PDF.
    let inv_id = inv[1].id.clone();
    let s = c.shop_id.clone();
    let m = head.read(move |conn| emails::compose(conn, &s, &inv_id, 0)).unwrap();
    assert_eq!(m.to, "contabilidad@example.com");
    assert_eq!(m.subject, "Factura CEN-00000001 — Tienda");
    assert_eq!(m.reply_to.as_deref(), Some("ventas@tienda.mx"));
    assert!(m.body.starts_with("Para su contabilidad.\n\nHola, Lucía Gómez:"), "{}", m.body);
    assert!(m.body.contains("la factura CEN-00000001"), "{}", m.body);
    assert_eq!(m.pdf.file_name, "CEN-00000001.pdf");
    let (_, text) = text_of(&m.pdf.bytes);
    assert!(text.contains("Factura") && text.contains("CEN-00000001"), "{text}");

    // The relay records how each went; every replica sees it.
    let all = both(head);
    let doc_id: String = head
        .read(|conn| Ok(conn.query_row("SELECT doc_id FROM orders WHERE id = ?1", [&order], |r| r.get(0))?))
        .unwrap();
    let doc_id = dashoffice_core::doc::DocId::parse(&doc_id).unwrap();
    let outcomes = [
        (all[0].id.clone(), Outcome::Sent { at: 1_000, message_id: "<x@tienda.mx>".into() }),
        (all[1].id.clone(), Outcome::Failed { at: 2_000, error: "550 mailbox unavailable".into() }),
    ];
    let (d2, o2) = (doc_id.clone(), order.clone());
    head.write_blocking(move |ctx| {
        for (id, outcome) in &outcomes {
            emails::mark(ctx, &d2, &o2, id, outcome)?;
        }
        Ok(())
    })
    .unwrap();
    sync_pair(head, a);
    let seen = both(a);
    assert_eq!((seen[0].status.as_str(), seen[0].sent_at), ("sent", Some(1_000)));
    assert_eq!((seen[1].status.as_str(), seen[1].error.as_deref()), ("failed", Some("550 mailbox unavailable")));
    assert_eq!(seen[2].status, "queued");
    assert_eq!(queued(a), vec![seen[2].id.clone()]);
}

/// With the shop's `email_invoices` on, issuing an invoice or a credit note asks for its e-mail to
/// the customer in the same write, on any replica; the same invoice issued on two replicas while
/// apart is e-mailed once.
#[test]
fn invoices_and_credit_notes_are_emailed_as_issued_when_the_shop_says_so() {
    use dashoffice_core::{
        domain::api::{IssueCreditNote, UpdateShop},
        entities::{emails, org},
    };

    use crate::fixtures::sync_pair;

    let nodes = shop(2);
    let c = nodes[0].caller.clone();
    let (head, a) = (&nodes[0].replica, &nodes[1].replica);
    let branch: String = head.read(|c| Ok(c.query_row("SELECT id FROM branches", [], |r| r.get(0))?)).unwrap();
    let (c2, b2) = (c.clone(), branch.clone());
    let (order, silent) = head
        .write_blocking(move |ctx| {
            let on =
                UpdateShop { tax_id: Some("CCM010203AB4".into()), email_invoices: Some(true), ..Default::default() };
            assert!(org::update_shop(ctx, &c2, on)?.email_invoices);
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let with =
                CreateCustomer { name: "Lucía".into(), email: Some("lucia@example.com".into()), ..Default::default() };
            let cu = customers::create(ctx, &c2, with)?;
            let without = customers::create(ctx, &c2, CreateCustomer { name: "Sin".into(), ..Default::default() })?;
            let mut ids = Vec::new();
            for who in [&cu.id, &without.id] {
                let o = orders::create(ctx, &c2, None, order_input(who, &b2, vec![line(&p.id, 1)]))?;
                orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
                ids.push(o.id);
            }
            Ok((ids[0].clone(), ids[1].clone()))
        })
        .unwrap();
    sync_pair(head, a);
    let issue = |r: &dashoffice_core::Replica, id: &str| {
        let (c, id) = (c.clone(), id.to_string());
        r.write_blocking(move |ctx| orders::issue_invoice(ctx, &c, &id)).unwrap()
    };
    // Both replicas issue the invoice while apart: each asks for its e-mail at once.
    let on_a = issue(a, &order).emails;
    assert_eq!(on_a.len(), 1);
    assert_eq!(
        (on_a[0].to.as_str(), on_a[0].document.as_str(), on_a[0].automatic, on_a[0].lang.as_str()),
        ("lucia@example.com", "invoice", true, "es")
    );
    assert_eq!(issue(head, &order).emails.len(), 1);
    assert!(issue(a, &silent).emails.is_empty(), "a customer without an address gets none");
    sync_pair(a, head);
    until("the legal number", || {
        head.read(|conn| orders::get(conn, &c, &order)).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
    });
    let twice = head.read(|conn| orders::get(conn, &c, &order)).unwrap().emails;
    assert_eq!(twice.len(), 2, "both requests are kept");
    // The first goes; the second is refused as a copy of it.
    let s = c.shop_id.clone();
    let compose = |id: &str| {
        let (s, id) = (s.clone(), id.to_string());
        head.read(move |conn| emails::compose(conn, &s, &id, 0))
    };
    assert_eq!(compose(&twice[0].id).unwrap().subject, "Factura CEN-00000001 — Tienda");
    match compose(&twice[1].id).unwrap_err() {
        CoreError::Conflict { field, rule, message } => {
            assert_eq!((field.as_str(), rule.as_str()), ("email", "duplicate"));
            assert!(message.contains(&twice[0].id), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Lucía reads English (a language the e-mails are not written in is refused by name): the
    // credit note's automatic e-mail is in English.
    let lucia = head.read(|conn| orders::get(conn, &c, &order)).unwrap().customer_id;
    let set_lang = |l: &str| {
        let (c6, l6, l) = (c.clone(), lucia.clone(), l.to_string());
        head.write_blocking(move |ctx| {
            let u = dashoffice_core::domain::api::UpdateCustomer { lang: Some(l), ..Default::default() };
            customers::update(ctx, &c6, &l6, u)
        })
    };
    let bad = set_lang("fr").unwrap_err();
    assert!(bad.to_string().contains("lang"), "{bad}");
    assert_eq!(set_lang("en").unwrap().lang, "en");
    // The order is cancelled and its invoice undone: the credit note is e-mailed too.
    let (c3, o3) = (c.clone(), order.clone());
    let credited = head
        .write_blocking(move |ctx| {
            orders::transition(ctx, &c3, &o3, TransitionOrder { to: OrderStatus::Cancelled })?;
            orders::issue_credit_note(ctx, &c3, &o3, IssueCreditNote { reason: None })
        })
        .unwrap();
    let last = credited.emails.last().unwrap();
    assert_eq!(
        (credited.emails.len(), last.document.as_str(), last.automatic, last.lang.as_str()),
        (3, "credit_note", true, "en")
    );
    // Off again: an invoice issued now is not e-mailed.
    let c4 = c.clone();
    head.write_blocking(move |ctx| {
        org::update_shop(ctx, &c4, UpdateShop { email_invoices: Some(false), ..Default::default() })
    })
    .unwrap();
    let (c5, p5) = (c.clone(), branch.clone());
    let fresh = head
        .write_blocking(move |ctx| {
            let o = orders::get(ctx.conn(), &c5, &order)?;
            let again = orders::create(
                ctx,
                &c5,
                None,
                order_input(&o.customer_id, &p5, vec![line(&o.lines[0].product_id, 1)]),
            )?;
            orders::transition(ctx, &c5, &again.id, TransitionOrder { to: OrderStatus::Confirmed })?;
            orders::issue_invoice(ctx, &c5, &again.id)
        })
        .unwrap();
    assert!(fresh.emails.is_empty(), "{:?}", fresh.emails);
}

/// Returns of goods: some units of a paid order come back, on any replica, offline too. Each
/// return puts its units back into stock (unless damaged), takes its amount off the net sale and,
/// once the order is invoiced, gets a credit note of its own; two replicas returning the same
/// units while apart count them once; the order's credit note undoes only what is left.
#[test]
fn returns_take_units_back_with_credit_notes_of_their_own() {
    use dashoffice_core::domain::api::{AdjustStock, IssueCreditNote, ReturnItems, ReturnLineInput, UpdateShop};
    use dashoffice_core::entities::{org, returns, stock};

    use crate::fixtures::sync_pair;

    let nodes = shop(2);
    let c = nodes[0].caller.clone();
    let (head, a) = (&nodes[0].replica, &nodes[1].replica);
    let branch = first_branch(head);
    let (c2, b2) = (c.clone(), branch.clone());
    let (order, shirt, cap) = head
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c2, UpdateShop { tax_id: Some("CCM010203AB4".into()), ..Default::default() })?;
            let shirt = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cap = products::create(ctx, &c2, product_input("GOR-001", "100.00"))?;
            for p in [&shirt, &cap] {
                let add = AdjustStock { branch_id: Some(b2.clone()), delta: 10, reason: "receipt".into() };
                stock::adjust(ctx, &c2, &p.id, None, add)?;
            }
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Lucía Gómez".into(), ..Default::default() })?;
            let o =
                orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&shirt.id, 3), line(&cap.id, 2)]))?;
            orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
            Ok((o.id, shirt.id, cap.id))
        })
        .unwrap();
    let give_back = |r: &dashoffice_core::Replica, lines: &[(usize, i64)], restock: bool, id: Option<&str>| {
        let input = ReturnItems {
            lines: lines.iter().map(|&(line, quantity)| ReturnLineInput { line, quantity }).collect(),
            reason: Some("No le quedó".into()),
            restock: Some(restock),
            id: id.map(str::to_string),
        };
        let (c, order) = (c.clone(), order.clone());
        r.write_blocking(move |ctx| returns::return_items(ctx, &c, &order, input))
    };
    let rule = |e: CoreError| match e {
        CoreError::Conflict { field, rule, .. } => (field, rule),
        CoreError::Validation(errs) => (errs.0[0].field.clone(), errs.0[0].rule.clone()),
        other => panic!("{other:?}"),
    };
    let on_hand = |r: &dashoffice_core::Replica, p: &str| {
        let (p, b) = (p.to_string(), branch.clone());
        r.read(move |conn| stock::get(conn, &p, &b)).unwrap().on_hand
    };
    let step = |to: OrderStatus| {
        let (c, id) = (c.clone(), order.clone());
        head.write_blocking(move |ctx| orders::transition(ctx, &c, &id, TransitionOrder { to })).unwrap();
    };

    // Nothing comes back from an order not paid yet; bad lines are named.
    assert_eq!(rule(give_back(head, &[(0, 1)], true, None).unwrap_err()), ("status".into(), "returnable".into()));
    step(OrderStatus::Paid);
    assert_eq!(rule(give_back(head, &[], true, None).unwrap_err()), ("lines".into(), "min_items".into()));
    assert_eq!(rule(give_back(head, &[(2, 1)], true, None).unwrap_err()), ("lines[0].line".into(), "exists".into()));
    assert_eq!(rule(give_back(head, &[(0, 4)], true, None).unwrap_err()), ("lines[0].quantity".into(), "range".into()));
    assert_eq!(
        rule(give_back(head, &[(0, 1), (0, 1)], true, None).unwrap_err()),
        ("lines[1].line".into(), "unique".into())
    );
    assert_eq!(rule(give_back(head, &[(0, 1)], true, Some("a b")).unwrap_err()), ("id".into(), "format".into()));
    assert_eq!((on_hand(head, &shirt), on_hand(head, &cap)), (7, 8));

    // Before any invoice: a return note, the shirt back on the shelf; a retry records it once.
    let o = give_back(head, &[(0, 1)], true, Some("dev-1")).unwrap();
    assert_eq!(give_back(head, &[(0, 1)], true, Some("dev-1")).unwrap().returns, o.returns);
    let first = &o.returns[0];
    assert!(first.accepted && first.restock && first.credit_note.is_none(), "{first:?}");
    assert_eq!((first.total.as_str(), first.lines[0].quantity, first.lines[0].sku.as_str()), ("250.00", 1, "CAM-001"));
    assert_eq!((o.returned_total.as_str(), on_hand(head, &shirt)), ("250.00", 8));
    let note = head.read(|conn| invoice::order_pdf_of(conn, &c, &order, Lang::Es, 0, Some("return:dev-1"))).unwrap();
    let (_, text) = text_of(&note.bytes);
    assert!(text.contains("Nota de devolución") && text.contains("No le quedó") && text.contains("250.00"), "{text}");
    assert!(note.file_name.ends_with("-R.pdf"), "{}", note.file_name);

    // Invoiced and numbered; then the same two shirts come back on both replicas while apart, and
    // the caps, damaged, on one of them.
    let (c3, id3) = (c.clone(), order.clone());
    head.write_blocking(move |ctx| orders::issue_invoice(ctx, &c3, &id3)).unwrap();
    until("the invoice's number", || {
        head.read(|conn| orders::get(conn, &c, &order)).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
    });
    sync_pair(head, a);
    let here = give_back(head, &[(0, 2)], true, Some("dev-head")).unwrap();
    let cn = here.returns.iter().find(|r| r.id == "dev-head").and_then(|r| r.credit_note.clone()).unwrap();
    assert!(cn.provisional_number.starts_with("CEN-") && cn.number.is_empty(), "{cn:?}");
    let there = give_back(a, &[(0, 2), (1, 2)], false, Some("dev-a")).unwrap();
    assert!(there.returns.iter().all(|r| r.accepted), "apart, each replica accepts its own");
    until("the head's return's number", || {
        let o = head.read(|conn| orders::get(conn, &c, &order)).unwrap();
        o.returns.iter().any(|r| r.id == "dev-head" && r.credit_note.as_ref().is_some_and(|n| !n.number.is_empty()))
    });
    sync_pair(a, head);
    sync_pair(head, a);
    let seen = |r: &dashoffice_core::Replica| {
        let o = r.read(|conn| orders::get(conn, &c, &order)).unwrap();
        let v: Vec<(String, bool, String)> = o
            .returns
            .iter()
            .map(|x| (x.id.clone(), x.accepted, x.credit_note.as_ref().map(|n| n.number.clone()).unwrap_or_default()))
            .collect();
        (v, o.returned_total)
    };
    let (list, returned) = seen(head);
    assert_eq!(seen(a), (list.clone(), returned.clone()), "both replicas decide the same");
    let accepted: Vec<&str> = list.iter().filter(|x| x.1).map(|x| x.0.as_str()).collect();
    assert_eq!(accepted, ["dev-1", "dev-head"], "the numbered return stands; the other came too late: {list:?}");
    // The return made before the invoice is credited too, once there is an invoice to credit.
    let numbers: Vec<&str> = list.iter().filter(|x| x.1).map(|x| x.2.as_str()).collect();
    assert_eq!(numbers, ["NC-CEN-00000001", "NC-CEN-00000002"]);
    assert_eq!(returned, "750.00");
    assert_eq!((on_hand(a, &shirt), on_hand(a, &cap)), (10, 8), "three shirts back, the caps still sold");

    // The caps come back damaged (off the shelf), with the next credit note.
    let o = give_back(a, &[(1, 2)], false, Some("dev-caps")).unwrap();
    assert_eq!(o.returned_total, "950.00");
    assert_eq!(on_hand(a, &cap), 8);
    sync_pair(a, head);
    until("the caps' credit note", || {
        let o = head.read(|conn| orders::get(conn, &c, &order)).unwrap();
        o.returns.iter().any(|r| r.id == "dev-caps" && r.credit_note.as_ref().is_some_and(|n| !n.number.is_empty()))
    });
    let pdf = head.read(|conn| invoice::order_pdf_of(conn, &c, &order, Lang::Es, 0, Some("return:dev-caps"))).unwrap();
    assert_eq!(pdf.file_name, "NC-CEN-00000003.pdf");
    let (_, text) = text_of(&pdf.bytes);
    assert!(text.contains("Nota de crédito") && text.contains("GOR-001") && !text.contains("CAM-001"), "{text}");
    let e = head.read(|conn| invoice::order_pdf_of(conn, &c, &order, Lang::Es, 0, Some("return:dev-a"))).unwrap_err();
    assert_eq!(rule(e), ("document".into(), "accepted".into()));

    // Everything came back: nothing is left for a credit note of the order, and nothing more to return.
    step(OrderStatus::Refunded);
    let credit = |c: &dashoffice_core::Caller| {
        let (c, id) = (c.clone(), order.clone());
        head.write_blocking(move |ctx| orders::issue_credit_note(ctx, &c, &id, IssueCreditNote { reason: None }))
    };
    assert_eq!(rule(credit(&c).unwrap_err()), ("returns".into(), "creditable".into()));
    assert_eq!(rule(give_back(head, &[(0, 1)], true, None).unwrap_err()), ("lines[0].quantity".into(), "range".into()));
    // Refunded, the order holds no stock; the damaged caps stay out of it.
    assert_eq!((on_hand(head, &shirt), on_hand(head, &cap)), (10, 8));

    // The register: the invoice, then the returns' credit notes, negative.
    let mut out = Vec::new();
    dashoffice_core::csv_io::export_invoices(head, &c, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let summary: Vec<(&str, &str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[13], r[17], r[18])).collect();
    assert_eq!(
        summary,
        [
            ("CEN-00000001", "950.00", "invoice", ""),
            ("NC-CEN-00000001", "-250.00", "credit_note", "CEN-00000001"),
            ("NC-CEN-00000002", "-500.00", "credit_note", "CEN-00000001"),
            ("NC-CEN-00000003", "-200.00", "credit_note", "CEN-00000001"),
        ]
    );
}

/// A return's credit note is e-mailed like an invoice's: automatically when the shop says so,
/// once it has its legal number, with the return's own amount; any return's document by hand.
#[test]
fn a_returns_credit_note_is_emailed_once_it_has_its_number() {
    use dashoffice_core::{
        domain::api::{EmailOrderDocument, ReturnItems, ReturnLineInput, UpdateShop},
        entities::{emails, org, returns},
    };

    let nodes = shop(1);
    let c = nodes[0].caller.clone();
    let head = &nodes[0].replica;
    let branch = first_branch(head);
    let c2 = c.clone();
    let order = head
        .write_blocking(move |ctx| {
            let on =
                UpdateShop { tax_id: Some("CCM010203AB4".into()), email_invoices: Some(true), ..Default::default() };
            org::update_shop(ctx, &c2, on)?;
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let with = CreateCustomer {
                name: "Lucy".into(),
                email: Some("lucy@example.com".into()),
                lang: Some("en".into()),
                ..Default::default()
            };
            let cu = customers::create(ctx, &c2, with)?;
            let o = orders::create(ctx, &c2, None, order_input(&cu.id, &branch, vec![line(&p.id, 2)]))?;
            for to in [OrderStatus::Confirmed, OrderStatus::Paid] {
                orders::transition(ctx, &c2, &o.id, TransitionOrder { to })?;
            }
            orders::issue_invoice(ctx, &c2, &o.id)
        })
        .unwrap()
        .id;
    until("the invoice's number", || {
        head.read(|conn| orders::get(conn, &c, &order)).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
    });
    let (c3, o3) = (c.clone(), order.clone());
    let o = head
        .write_blocking(move |ctx| {
            let input = ReturnItems {
                lines: vec![ReturnLineInput { line: 0, quantity: 1 }],
                id: Some("r1".into()),
                ..Default::default()
            };
            returns::return_items(ctx, &c3, &o3, input)
        })
        .unwrap();
    let mail = o.emails.last().unwrap();
    assert_eq!((mail.document.as_str(), mail.automatic, mail.lang.as_str()), ("return:r1", true, "en"));
    until("the return's number", || {
        let o = head.read(|conn| orders::get(conn, &c, &order)).unwrap();
        o.returns[0].credit_note.as_ref().is_some_and(|n| !n.number.is_empty())
    });
    let s = c.shop_id.clone();
    let ready = head.read(move |conn| emails::queued(conn, &s, 10)).unwrap();
    assert!(ready.iter().any(|q| q.id == mail.id), "ready once numbered: {ready:?}");
    let (s, id) = (c.shop_id.clone(), mail.id.clone());
    let m = head.read(move |conn| emails::compose(conn, &s, &id, 0)).unwrap();
    assert_eq!(m.subject, "Credit note NC-CEN-00000001 — Tienda");
    assert!(
        m.body.contains("for what you returned from your order") && m.body.contains("(total 250.00 MXN)"),
        "{}",
        m.body
    );
    assert_eq!(m.pdf.file_name, "NC-CEN-00000001.pdf");
    let (_, text) = text_of(&m.pdf.bytes);
    assert!(text.contains("Credit note") && text.contains("250.00") && !text.contains("500.00"), "{text}");
    // By hand: a return the order does not have is refused by name.
    let (c4, o4) = (c.clone(), order.clone());
    let e = head
        .write_blocking(move |ctx| {
            let input = EmailOrderDocument { document: Some("return:nope".into()), ..Default::default() };
            emails::request(ctx, &c4, &o4, input)
        })
        .unwrap_err();
    assert!(matches!(&e, CoreError::Conflict { field, rule, .. } if field == "document" && rule == "exists"), "{e:?}");
}

/// A line's returns credit exactly what it was invoiced (tax is rounded per line: the last
/// return of a line gets what the others left), and a return recorded on another replica while
/// the whole order was credited does not count on top of that credit note.
#[test]
fn returns_credit_exactly_the_invoice_and_not_on_top_of_a_credit_note() {
    use dashoffice_core::domain::api::{IssueCreditNote, ReturnItems, ReturnLineInput, UpdateShop};
    use dashoffice_core::entities::{org, returns};

    use crate::fixtures::sync_pair;

    let nodes = shop(2);
    let c = nodes[0].caller.clone();
    let (head, a) = (&nodes[0].replica, &nodes[1].replica);
    let branch = first_branch(head);
    let (c2, b2) = (c.clone(), branch.clone());
    let ids = head
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c2, UpdateShop { tax_id: Some("CCM010203AB4".into()), ..Default::default() })?;
            let mut p = product_input("TAZ-001", "1.05");
            p.tax_rate = Some("0.16".into());
            let p = products::create(ctx, &c2, p)?;
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Ana".into(), ..Default::default() })?;
            let mut ids = Vec::new();
            for units in [3, 2] {
                let o = orders::create(ctx, &c2, None, order_input(&cu.id, &b2, vec![line(&p.id, units)]))?;
                for to in [OrderStatus::Confirmed, OrderStatus::Paid] {
                    orders::transition(ctx, &c2, &o.id, TransitionOrder { to })?;
                }
                orders::issue_invoice(ctx, &c2, &o.id)?;
                ids.push(o.id);
            }
            Ok(ids)
        })
        .unwrap();
    until("the invoices' numbers", || {
        ids.iter().all(|id| {
            head.read(|conn| orders::get(conn, &c, id)).unwrap().invoice.is_some_and(|i| !i.number.is_empty())
        })
    });
    let give_back = |r: &dashoffice_core::Replica, order: &str, rid: &str| {
        let (c, order, rid) = (c.clone(), order.to_string(), rid.to_string());
        let input =
            ReturnItems { lines: vec![ReturnLineInput { line: 0, quantity: 1 }], id: Some(rid), ..Default::default() };
        r.write_blocking(move |ctx| returns::return_items(ctx, &c, &order, input)).unwrap()
    };
    // 3 × 1.05 at 16 %: 3.15 + 0.50 = 3.65. One unit alone is 1.05 + 0.17 = 1.22.
    let o = head.read(|conn| orders::get(conn, &c, &ids[0])).unwrap();
    assert_eq!((o.subtotal.as_str(), o.tax_total.as_str(), o.total.as_str()), ("3.15", "0.50", "3.65"));
    for rid in ["u1", "u2", "u3"] {
        give_back(head, &ids[0], rid);
    }
    let o = head.read(|conn| orders::get(conn, &c, &ids[0])).unwrap();
    let totals: Vec<&str> = o.returns.iter().map(|r| r.total.as_str()).collect();
    assert_eq!(totals, ["1.22", "1.22", "1.21"], "the last unit gets what is left of the line");
    assert_eq!(o.returned_total, "3.65");

    // The second order is refunded and credited whole here, while the other replica, apart,
    // records a return of one of its units.
    sync_pair(head, a);
    let (c3, o3) = (c.clone(), ids[1].clone());
    head.write_blocking(move |ctx| {
        orders::transition(ctx, &c3, &o3, TransitionOrder { to: OrderStatus::Refunded })?;
        orders::issue_credit_note(ctx, &c3, &o3, IssueCreditNote { reason: None })
    })
    .unwrap();
    assert!(give_back(a, &ids[1], "late").returns[0].accepted, "apart, it counts there");
    sync_pair(a, head);
    sync_pair(head, a);
    for r in [head, a] {
        let o = r.read(|conn| orders::get(conn, &c, &ids[1])).unwrap();
        assert!(!o.returns[0].accepted && o.returns[0].credit_note.is_none(), "{:?}", o.returns);
        assert_eq!(o.returned_total, "0");
        let pdf = r.read(|conn| invoice::order_pdf_of(conn, &c, &ids[1], Lang::Es, 0, Some("credit_note"))).unwrap();
        let (_, text) = text_of(&pdf.bytes);
        assert!(text.contains("2.44"), "the credit note still undoes both units (2 × 1.22): {text}");
    }
    // The register: the returns' credit notes add up to the first invoice; the second order's
    // credit note undoes its invoice whole.
    until("the returns' numbers", || {
        let o = head.read(|conn| orders::get(conn, &c, &ids[0])).unwrap();
        o.returns.iter().all(|r| r.credit_note.as_ref().is_some_and(|n| !n.number.is_empty()))
    });
    let mut out = Vec::new();
    dashoffice_core::csv_io::export_invoices(head, &c, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let mut credits: Vec<&str> = rows.iter().filter(|r| r[17] == "credit_note").map(|r| r[13]).collect();
    credits.sort();
    assert_eq!(credits, ["-1.21", "-1.22", "-1.22", "-2.44"], "{text}");
}
