//! E-mail of order documents: an edge node asks, the real relay sends over SMTP to a real mail
//! server on loopback (Debian's aiosmtpd, delivering into a Maildir), and the outcome comes back
//! to the node by sync. The messages are read back with Python's own e-mail parser.

use std::{path::PathBuf, time::Duration};

use dashoffice_tests::{
    Api, assert_field_error, id,
    mail::{self, Smtp, delivered, free_port},
    relay::Relay,
    wait_for,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

fn emails(api: &Api, order: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/orders/{order}")).ok(200)["emails"].as_array().cloned().unwrap_or_default()
}

/// Staff e-mail an order's documents from a branch's node; the relay sends them once the mail
/// server is up (queued and retried meanwhile), with the PDF attached, never twice across a kill
/// -9, and the node learns they went.
#[test]
fn an_order_emailed_from_a_node_goes_out_through_the_relays_mail_server_once() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let maildir: PathBuf = root.path().join("mail");
    let mut relay = Relay::start_env(mail::relay_env(port));
    let (node, _, _) = relay.enrolled_node();
    let o = node.owner();
    o.patch("/api/v1/shop", &json!({ "tax_id": "CCM010203AB4", "email": "hola@tienda.mx" })).ok(200);
    let product = id(&o.product("MAIL-1", "120.00"));
    let lucia =
        id(&o.post("/api/v1/customers", &json!({ "name": "Lucía Gómez", "email": "lucia@example.com" })).ok(201));
    let nobody = id(&o.customer("Sin Correo"));
    let order = id(&o.order(&lucia, &[(&product, 2)]));
    let draft = id(&o.order(&lucia, &[(&product, 1)]));
    o.transition(&order, "confirmed");
    let other = id(&o.order(&nobody, &[(&product, 1)]));
    o.transition(&other, "confirmed");
    let email = |order: &str, body: Value| o.post(&format!("/api/v1/orders/{order}/email"), &body);

    // Bad input is named and writes nothing.
    assert_field_error(email(&order, json!({ "to": "no-es-correo" })), 422, "validation", "to");
    assert_field_error(email(&order, json!({ "document": "factura" })), 422, "validation", "document");
    assert_field_error(email(&order, json!({ "message": "x".repeat(2001) })), 422, "validation", "message");
    assert_field_error(email(&order, json!({ "document": "invoice" })), 409, "conflict", "document");
    assert_field_error(email(&other, json!({})), 409, "conflict", "to");
    assert_field_error(email(&draft, json!({})), 409, "conflict", "status");
    email("no-such-order", json!({})).err(404, "not_found");
    assert!(emails(&o, &order).is_empty());

    // The mail server is down: the sales note to the customer, then (invoiced meanwhile) the
    // invoice to the accountant, queued.
    let first = email(&order, json!({})).ok(202);
    assert_eq!(first["emails"][0]["status"], "queued", "{first}");
    assert_eq!(first["emails"][0]["to"], "lucia@example.com", "{first}");
    o.post(&format!("/api/v1/orders/{order}/invoice"), &json!({})).ok(200);
    let second = email(&order, json!({ "to": "Contabilidad@Example.com", "message": "Para su contabilidad." })).ok(202);
    assert_eq!(second["emails"][1]["document"], "invoice", "{second}");
    let tried = wait_for(WAIT, || relay.log().contains("sending an e-mail failed; will retry").then_some(()));
    assert!(tried.is_some(), "the relay never tried: {}", relay.log());
    assert!(emails(&o, &order).iter().all(|m| m["status"] == "queued"));

    // It comes up: both go out, and the node hears of it.
    let smtp = Smtp::start(port, &maildir);
    let sent = wait_for(WAIT, || emails(&o, &order).iter().all(|m| m["status"] == "sent").then_some(()));
    assert!(sent.is_some(), "not sent: {:#?}\n{}", emails(&o, &order), relay.log());
    let mails = delivered(&maildir);
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let (accountant, customer) = (&mails[0], &mails[1]);
    assert_eq!(accountant["to"], "contabilidad@example.com");
    assert_eq!(customer["to"], "lucia@example.com");
    for m in &mails {
        // The sales note asked for before the invoice goes as the invoice, with its legal number.
        assert_eq!(m["subject"], "Factura CEN-00000001 — Mi Tienda", "{m:#}");
        assert_eq!(m["from"], "Mi Tienda <ventas@dashoffice.test>", "{m:#}");
        assert_eq!(m["reply_to"], "hola@tienda.mx", "{m:#}");
        let att = &m["attachments"][0];
        assert_eq!(
            (att["filename"].as_str(), att["type"].as_str()),
            (Some("CEN-00000001.pdf"), Some("application/pdf"))
        );
        assert_eq!(att["head"], "%PDF-", "{m:#}");
        assert!(att["size"].as_u64().unwrap() > 1000, "{m:#}");
    }
    assert!(accountant["text"].as_str().unwrap().starts_with("Para su contabilidad."), "{accountant:#}");
    assert!(customer["text"].as_str().unwrap().contains("Hola, Lucía Gómez"), "{customer:#}");
    let ids: Vec<String> = emails(&o, &order).iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    for m in &mails {
        let mid = m["message_id"].as_str().unwrap();
        assert!(ids.iter().any(|i| mid == format!("<{i}@dashoffice.test>")), "{mid} not one of {ids:?}");
    }

    // kill -9 of the relay: nothing goes twice; a new request still goes.
    relay.kill9();
    relay.restart();
    email(&order, json!({ "to": "otra@example.com" })).ok(202);
    let third = wait_for(WAIT, || emails(&o, &order).iter().all(|m| m["status"] == "sent").then_some(()));
    assert!(third.is_some(), "not sent after the restart: {:#?}", emails(&o, &order));
    let mails = delivered(&maildir);
    let to: Vec<&str> = mails.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["contabilidad@example.com", "lucia@example.com", "otra@example.com"]);

    // The shop has invoices e-mailed as they are issued: the next invoice goes by itself.
    let shop = o.patch("/api/v1/shop", &json!({ "email_invoices": true })).ok(200);
    assert_eq!(shop["email_invoices"], true, "{shop}");
    assert_field_error(
        o.patch("/api/v1/shop", &json!({ "email_invoices": "sí" })),
        400,
        "malformed_json",
        "email_invoices",
    );
    let next = id(&o.order(&lucia, &[(&product, 1)]));
    o.transition(&next, "confirmed");
    let issued = o.post(&format!("/api/v1/orders/{next}/invoice"), &json!({})).ok(200);
    assert_eq!(issued["emails"][0]["automatic"], true, "{issued}");
    let went = wait_for(WAIT, || (emails(&o, &next).first()?["status"] == "sent").then_some(()));
    assert!(went.is_some(), "the automatic e-mail never went: {:#?}", emails(&o, &next));
    let mails = delivered(&maildir);
    assert_eq!(mails.len(), 4, "{mails:#?}");
    assert!(mails.iter().any(|m| m["subject"] == "Factura CEN-00000002 — Mi Tienda"), "{mails:#?}");

    // A manager who reads English: the summary comes to her in English, in an e-mail of its own.
    let staff =
        json!({ "name": "Marta", "email": "marta@example.com", "role": "manager", "password": "clave-marta-1" });
    let marta = id(&o.post("/api/v1/staff", &staff).ok(201));
    assert_field_error(o.patch(&format!("/api/v1/staff/{marta}"), &json!({ "lang": "fr" })), 422, "validation", "lang");
    assert_eq!(o.patch(&format!("/api/v1/staff/{marta}"), &json!({ "lang": "en" })).ok(200)["lang"], "en");

    // The daily summary to the owner: its hour (00:00, so at once) has come today.
    assert_field_error(
        o.patch("/api/v1/shop", &json!({ "daily_report_hour": 24 })),
        422,
        "validation",
        "daily_report_hour",
    );
    let shop = o.patch("/api/v1/shop", &json!({ "daily_report_hour": 0 })).ok(200);
    assert_eq!(shop["daily_report_hour"], 0, "{shop}");
    let report = wait_for(WAIT, || {
        delivered(&maildir).into_iter().find(|m| m["subject"].as_str().is_some_and(|s| s.starts_with("Resumen del ")))
    });
    let report = report.unwrap_or_else(|| panic!("no daily summary: {}", relay.log()));
    assert_eq!(report["to"], dashoffice_tests::OWNER_EMAIL, "{report:#}");
    assert!(report["text"].as_str().unwrap().contains("Ventas: "), "{report:#}");
    let english = wait_for(WAIT, || {
        delivered(&maildir).into_iter().find(|m| m["subject"].as_str().is_some_and(|s| s.starts_with("Summary of ")))
    });
    let english = english.unwrap_or_else(|| panic!("no summary in English: {}", relay.log()));
    assert_eq!(english["to"], "marta@example.com", "{english:#}");
    assert!(english["text"].as_str().unwrap().contains("Sales: "), "{english:#}");
    // Once a day: a relay restart sends it no second time.
    relay.kill9();
    relay.restart();
    // Once an e-mail asked for after the restart went, the relay's replica of the shop is up and
    // its summary check (every 5 s) has had its chance.
    email(&next, json!({ "to": "tras-reinicio@example.com" })).ok(202);
    let after = wait_for(WAIT, || emails(&o, &next).iter().all(|m| m["status"] == "sent").then_some(()));
    assert!(after.is_some(), "{:#?}", emails(&o, &next));
    std::thread::sleep(Duration::from_secs(6));
    let count = |start: &str| {
        delivered(&maildir).iter().filter(|m| m["subject"].as_str().is_some_and(|s| s.starts_with(start))).count()
    };
    assert_eq!((count("Resumen"), count("Summary")), (1, 1));
    drop(smtp);
}
