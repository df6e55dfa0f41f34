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
    for expected in ["Invoice", "Confirmed", "Customer", "Unit price", "Page 1 of 1"] {
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
