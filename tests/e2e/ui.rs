//! The web UI in a real browser: Debian's Chromium, driven by playwright-core (tests/js/ui.mjs),
//! against real edge nodes, a real relay and a signed WhatsApp webhook (the Graph API is the only
//! fake). Screenshots of every page at desktop and phone width land in target/ui-screenshots.

use std::{path::PathBuf, process::Command, time::Duration};

use dashoffice_tests::{
    Api, Node, OWNER_EMAIL, OWNER_PASSWORD, id, mail,
    relay::Relay,
    synced, wait_for,
    whatsapp::{self as wa, FakeGraph},
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn owner_when_synced(node: &Node) -> Api {
    let token = wait_for(LONG, || {
        let r =
            node.anon().try_post("/api/v1/auth/login", &json!({ "email": OWNER_EMAIL, "password": OWNER_PASSWORD }));
        match r {
            Ok(r) if r.status == 200 => r.json()["token"].as_str().map(str::to_string),
            _ => None,
        }
    })
    .unwrap_or_else(|| panic!("the owner never arrived by sync; log:\n{}", node.log()));
    node.api(&token)
}

#[test]
fn staff_work_in_the_web_ui_in_a_real_browser() {
    let graph = FakeGraph::start();
    // The relay's mail server: the browser e-mails a credit note.
    let (smtp_port, mail_root) = (mail::free_port(), tempfile::tempdir().unwrap());
    let maildir = mail_root.path().join("mail");
    let _smtp = mail::Smtp::start(smtp_port, &maildir);
    let mut env = wa::relay_env(&graph);
    env.extend(mail::relay_env(smtp_port));
    let relay = Relay::start_env(env);
    let mut a1 = Node::start();
    let owner = a1.owner();
    let index = owner.get("/");
    assert_eq!(
        index.status,
        200,
        "the edge node serves no UI: run scripts/build-ui before building the binaries ({})",
        String::from_utf8_lossy(&index.bytes)
    );
    let shop = owner.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branch = id(&owner.get("/api/v1/branches").ok(200)[0]);
    owner.customer("Lucía Gómez");
    a1.sigterm();
    a1.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    a1.start_again();
    let owner = a1.owner();
    assert!(wait_for(LONG, || synced(&owner).then_some(())).is_some(), "the first node never synced");
    wa::connect_number(&relay, &shop, &branch);
    // A customer writes on WhatsApp: the signed webhook reaches the relay, the conversation syncs
    // to the branch's node.
    let wa_id = "5215598765432";
    wa::deliver(&relay.http, &wa::text(wa_id, "Ana Pérez", "wamid.UI1", "Hola, ¿tienen tazas?"));
    wait_for(LONG, || {
        let l = owner.get(&format!("/api/v1/conversations?q={wa_id}")).ok(200);
        l["items"].as_array().filter(|a| !a.is_empty()).map(|_| ())
    })
    .unwrap_or_else(|| panic!("the conversation never reached the node; relay log:\n{}", relay.log()));
    // A second node of the same branch, where another person edits.
    let a2_args = relay.edge_args(&relay.code(&shop, Some(&branch)));
    let mut a2 = Node::start_with(tempfile::tempdir().unwrap(), a2_args.clone());
    let owner2 = owner_when_synced(&a2);
    assert!(wait_for(LONG, || synced(&owner2).then_some(())).is_some(), "the second node never synced");

    // An order the two nodes moved in different directions: the second takes payment while
    // offline, the first cancels it. The browser settles the conflict.
    let product = id(&owner.product("FORK-1", "40.00"));
    let customer = id(&owner.customer("Cliente Bifurcado"));
    let forked = id(&owner.order(&customer, &[(&product, 1)]));
    owner.transition(&forked, "confirmed");
    let order_path = format!("/api/v1/orders/{forked}");
    let status_on = |api: &Api| api.get(&order_path).json();
    wait_for(LONG, || (status_on(&owner2)["status"] == "confirmed").then_some(())).expect("the order on node 2");
    let token2 = owner2.token().to_string();
    a2.sigterm();
    a2.set_extra(Vec::new());
    a2.start_again();
    a2.api(&token2).transition(&forked, "paid");
    owner.transition(&forked, "cancelled");
    a2.sigterm();
    a2.set_extra(a2_args);
    a2.start_again();
    let owner2 = a2.api(&token2);
    wait_for(LONG, || (status_on(&owner)["conflict"] == true && status_on(&owner2)["conflict"] == true).then_some(()))
        .unwrap_or_else(|| panic!("no fork on both nodes: {} / {}", status_on(&owner), status_on(&owner2)));

    let shots = repo().join("target/ui-screenshots");
    let reply = "¡Hola Ana! Sí, tenemos tazas de 85.50";
    let ticket_reply = "Ana, la garantía cubre un año desde la compra";
    let out = Command::new("node")
        .arg(repo().join("tests/js/ui.mjs"))
        .env("UI_URL", a1.base())
        .env("UI_EMAIL", OWNER_EMAIL)
        .env("UI_PASSWORD", OWNER_PASSWORD)
        .env("SECOND_URL", a2.base())
        .env("SECOND_TOKEN", owner2.token())
        .env("CUSTOMER", "Lucía Gómez")
        .env("WA_CUSTOMER", "Ana Pérez")
        .env("WA_ID", wa_id)
        .env("WA_APP_SECRET", wa::APP_SECRET)
        .env("WA_PHONE_NUMBER_ID", wa::PHONE_NUMBER_ID)
        .env("REPLY", reply)
        .env("TICKET_REPLY", ticket_reply)
        .env("SHOTS", &shots)
        .env("HEAD_URL", &relay.http)
        .env("FORKED_ORDER", &forked)
        .output()
        .expect("running node (apt install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["ok"] == true,
        "the browser test failed: {stdout}\n{}\nscreenshots in {}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        shots.display(),
        a1.log()
    );
    // The reply typed in the browser went out to WhatsApp through the relay.
    let sent = wait_for(LONG, || graph.sent().into_iter().find(|c| c.body["text"]["body"] == reply));
    assert!(sent.is_some(), "the reply never reached the Graph API: {:#?}", graph.sent());
    assert_eq!(sent.unwrap().body["to"], wa_id);
    // So did the ticket comment sent to the customer from the ticket's page.
    let sent = wait_for(LONG, || graph.sent().into_iter().find(|c| c.body["text"]["body"] == ticket_reply));
    assert!(sent.is_some(), "the ticket's reply never reached the Graph API: {:#?}", graph.sent());
    // The survey sent when the browser resolved the conversation went out as reply buttons.
    let survey = wait_for(LONG, || {
        graph.sent().into_iter().find(|c| c.body["interactive"]["action"]["buttons"][0]["reply"]["id"] == "csat:good")
    });
    assert!(survey.is_some(), "the satisfaction survey never reached the Graph API: {:#?}", graph.sent());
    // The template the browser sent to Lucía, who had never written, went from the shop's number.
    let first = wait_for(LONG, || {
        graph.sent().into_iter().find(|c| c.body["to"] == "525512345678" && c.body["type"] == "template")
    });
    let first = first.unwrap_or_else(|| panic!("the first template never reached the Graph API: {:#?}", graph.sent()));
    assert_eq!(first.body["template"]["name"], "bienvenida", "{:#?}", first.body);
    assert_eq!(first.phone_number_id, wa::PHONE_NUMBER_ID);
    // The broadcast the browser sent to the tag reached Rosa, with her name; not Nora (no-promos).
    let promo = wait_for(LONG, || graph.sent().into_iter().find(|c| c.body["to"] == "525533334444"));
    let promo = promo.unwrap_or_else(|| panic!("the broadcast never reached the Graph API: {:#?}", graph.sent()));
    assert_eq!(promo.body["template"]["components"][0]["parameters"][0]["text"], "Rosa", "{:#?}", promo.body);
    assert!(graph.sent().iter().all(|c| c.body["to"] != "525555556666"), "Nora asked for no promotions");
    // Her answer reaches the relay and lands, on the branch's node, in the conversation the
    // browser started, with her as the customer (no second conversation, no second customer).
    wa::deliver(&relay.http, &wa::text("525512345678", "Lucy", "wamid.UI-FIRST", "¡Hola! Sí, lo recojo mañana"));
    let convs = || owner.get("/api/v1/conversations?q=525512345678").ok(200)["items"].clone();
    let answered = wait_for(LONG, || {
        let items = convs();
        let c = items.as_array().filter(|a| a.len() == 1)?[0].clone();
        (c["last_message"] == "¡Hola! Sí, lo recojo mañana").then_some(c)
    })
    .unwrap_or_else(|| panic!("her answer never reached the started conversation: {}\n{}", convs(), relay.log()));
    assert_eq!(answered["state"], "open", "{answered}");
    let lucias = owner.get("/api/v1/customers?q=Luc").ok(200)["items"].clone();
    let same: Vec<&Value> = lucias.as_array().unwrap().iter().filter(|c| c["wa_id"] == "525512345678").collect();
    assert_eq!(same.len(), 1, "{lucias}");
    assert_eq!(answered["customer_id"], same[0]["id"]);
    // The order made in the browser is paid; the forked one, settled there as paid, was then
    // invoiced, refunded and credited: on both nodes.
    let count = |api: &Api, status: &str| {
        api.get(&format!("/api/v1/orders?status={status}")).ok(200)["items"].as_array().map_or(0, Vec::len)
    };
    assert_eq!((count(&owner, "paid"), count(&owner, "refunded")), (1, 1));
    let credited = |api: &Api| status_on(api)["credit_note"]["number"].as_str().is_some_and(|n| n.starts_with("NC-"));
    assert!(
        wait_for(LONG, || {
            (count(&owner2, "paid") == 1 && count(&owner2, "refunded") == 1 && credited(&owner2)).then_some(())
        })
        .is_some(),
        "the orders never reached the second node as they are: {}",
        status_on(&owner2)
    );
    assert_eq!(status_on(&owner2)["conflict"], false, "{}", status_on(&owner2));
    // The credit note e-mailed from the order's page reached the mail server, in English (the
    // browser's language), with its PDF. (The browser also sets the daily summary at 08:00 for a
    // moment: when the shop's clock is past 8 the relay may rightly send it then, so only the
    // other mails count here.)
    let summary = |m: &Value| m["message_id"].as_str().is_some_and(|id| id.trim().starts_with("<report."));
    let mails: Vec<Value> = mail::delivered(&maildir).into_iter().filter(|m| !summary(m)).collect();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = &mails[0];
    assert_eq!(m["to"], "contabilidad@example.com", "{m:#}");
    assert!(m["subject"].as_str().unwrap().starts_with("Credit note NC-"), "{m:#}");
    assert!(m["text"].as_str().unwrap().starts_with("Devolución registrada."), "{m:#}");
    let file = m["attachments"][0]["filename"].as_str().unwrap();
    assert!(file.starts_with("NC-") && file.ends_with(".pdf"), "{m:#}");
    for page in ["dashboard", "orders", "conversation", "settings", "not-found", "login"] {
        for width in ["desktop", "phone"] {
            let f = shots.join(format!("{page}-{width}.png"));
            assert!(f.metadata().map(|m| m.len() > 1000).unwrap_or(false), "no screenshot {}", f.display());
        }
    }
}
