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
            let o = orders::create(
                ctx,
                &c2,
                None,
                CreateOrder {
                    customer_id: cu.id.clone(),
                    branch_id: Some(branch),
                    seller_id: None,
                    lines: vec![OrderLineInput { product_id: p.id, quantity: 3, unit_price: None }],
                    notes: "Entregar después de las 17:00, tocar el timbre dos veces.".into(),
                },
            )?;
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
    for expected in ["Invoice", "Confirmed", "Customer", "Unit price", "Page 1 of 1"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert!(!text.contains("Quote"));

    // Someone who may not see the order gets "not found", as for the order itself.
    let other_branch = Caller { branch_id: Some("elsewhere".into()), role: Role::Seller, ..c.clone() };
    let e = r.read(|conn| invoice::order_pdf(conn, &other_branch, &order.id, Lang::Es, now)).unwrap_err();
    assert!(matches!(e, CoreError::NotFound { .. }), "{e:?}");
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
                lines.push(OrderLineInput { product_id: p.id, quantity: 1, unit_price: None });
            }
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Ana".into(), ..Default::default() })?;
            orders::create(
                ctx,
                &c2,
                None,
                CreateOrder {
                    customer_id: cu.id,
                    branch_id: Some(branch),
                    seller_id: None,
                    lines,
                    notes: String::new(),
                },
            )
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
            let line = || vec![OrderLineInput { product_id: p.id.clone(), quantity: 1, unit_price: None }];
            let order = |customer: String| CreateOrder {
                customer_id: customer,
                branch_id: Some(b2.clone()),
                seller_id: None,
                lines: line(),
                notes: String::new(),
            };
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
