//! WhatsApp end to end on loopback: the real relay receives signed Cloud API webhooks, its bot
//! answers through a fake Graph API (the only fake: it stands for Meta), and the conversation
//! reaches the branch's edge node through sync.

use std::time::Duration;

use dashoffice_tests::{
    Api, Node, assert_field_error, id,
    relay::Relay,
    wait_for,
    whatsapp::{self as wa, FakeGraph},
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

struct Shop {
    relay: Relay,
    graph: FakeGraph,
    node: Node,
    owner: Api,
    branch: String,
    product: String,
    seller: String,
}

/// A relay with WhatsApp configured, an edge node of branch A synced with it, a catalog with one
/// product in stock, a seller on shift, and the shop's number connected.
fn shop() -> Shop {
    shop_with(Vec::new())
}

fn shop_with(extra_env: Vec<(String, String)>) -> Shop {
    let graph = FakeGraph::start();
    let mut env = wa::relay_env(&graph);
    env.extend(extra_env);
    let relay = Relay::start_env(env);
    let mut node = Node::start();
    let owner = node.owner();
    let shop = owner.get("/api/v1/shop").ok(200)["id"].as_str().unwrap().to_string();
    let branch = id(&owner.get("/api/v1/branches").ok(200)[0]);
    let product = id(&owner
        .post(
            "/api/v1/products",
            &json!({ "sku": "CAM-AZ", "name": "Camisa azul", "price": "149.90", "currency": "MXN" }),
        )
        .ok(201));
    owner
        .post(
            "/api/v1/products",
            &json!({ "sku": "PAN-NE", "name": "Pantalón negro", "price": "399.00", "currency": "MXN" }),
        )
        .ok(201);
    owner.post(&format!("/api/v1/products/{product}/stock"), &json!({ "delta": 7, "reason": "receipt" })).ok(200);
    let seller = id(&owner.staff("vendedora@tienda.mx", "seller", Some(&branch)));
    owner.send(
        reqwest::Method::PUT,
        &format!("/api/v1/shifts/{seller}"),
        Some("application/json"),
        Some(br#"{"on":true}"#.to_vec()),
    );
    node.sigterm();
    node.set_extra(relay.edge_args(&relay.code(&shop, Some(&branch))));
    node.start_again();
    let owner = node.owner();
    wait_for(LONG, || {
        let s = owner.get("/api/v1/sync/status").ok(200);
        (s["connected"] == true && s["pending_changes"] == 0 && s["queued_documents"] == 0).then_some(())
    })
    .expect("the edge node synced with the relay");
    relay
        .admin()
        .post(
            "/api/v1/whatsapp/numbers",
            &json!({ "phone_number_id": wa::PHONE_NUMBER_ID, "shop_id": shop, "branch_id": branch, "access_token": wa::ACCESS_TOKEN, "display_number": "+52 55 1234 5678" }),
        )
        .ok(201);
    Shop { relay, graph, node, owner, branch, product, seller }
}

fn conversation_of(api: &Api, wa_id: &str) -> Option<Value> {
    let list = api.get(&format!("/api/v1/conversations?q={wa_id}")).ok(200);
    list["items"].as_array().and_then(|a| a.first().cloned())
}

fn thread(api: &Api, conversation: &str) -> Value {
    api.get(&format!("/api/v1/conversations/{conversation}")).ok(200)
}

/// Waits until the edge node shows the conversation of `wa_id` with at least `n` messages.
fn wait_thread(api: &Api, wa_id: &str, n: usize, what: &str) -> Value {
    wait_for(LONG, || {
        let c = conversation_of(api, wa_id)?;
        let t = thread(api, c["id"].as_str()?);
        (t["messages"].as_array()?.len() >= n).then_some(t)
    })
    .unwrap_or_else(|| panic!("{what}: the conversation of {wa_id} never had {n} messages"))
}

#[test]
fn a_price_question_gets_the_bots_answer_and_a_person_takes_over_on_request() {
    let s = shop();
    let customer = "5215512345678";
    wa::deliver(&s.relay.http, &wa::text(customer, "Ana Pérez", "wamid.IN1", "Hola, ¿cuánto cuesta la camisa azul?"));

    // The bot answered through the Graph API with the price and this branch's stock.
    let sent = wait_for(LONG, || s.graph.sent().into_iter().find(|c| c.body["to"] == customer))
        .unwrap_or_else(|| panic!("the bot never answered; relay log:\n{}", s.relay.log()));
    let text = sent.body["text"]["body"].as_str().unwrap().to_string();
    assert!(text.contains("149.90") && text.contains('7') && text.contains("Camisa azul"), "{text}");
    assert_eq!(sent.authorization, format!("Bearer {}", wa::ACCESS_TOKEN));
    assert_eq!(sent.phone_number_id, wa::PHONE_NUMBER_ID);
    assert_eq!(sent.body["context"]["message_id"], "wamid.IN1");

    // The conversation reached the edge node through sync: the question, the answer, and why.
    let t = wait_thread(&s.owner, customer, 2, "after the price question");
    let c = &t["conversation"];
    assert_eq!(c["customer_name"], "Ana Pérez");
    assert_eq!(c["branch_id"], s.branch.as_str());
    assert_eq!(c["state"], "pending");
    assert_eq!(c["window_open"], true);
    assert_eq!(c["unread"], 1);
    let m = t["messages"].as_array().unwrap();
    assert_eq!((m[0]["direction"].as_str(), m[0]["sender"].as_str()), (Some("in"), Some("customer")));
    assert_eq!(m[1]["sender"], "bot");
    let explain = &m[1]["explain"];
    assert_eq!(explain["intent"], "price", "{explain}");
    assert!(explain["confidence"].as_f64().unwrap() >= 0.5, "{explain}");
    assert_eq!(explain["products"][0]["id"], s.product.as_str(), "{explain}");
    assert_eq!(explain["trigger"]["kind"], "intent");
    // The customer is in the CRM with their WhatsApp id.
    let customer_id = c["customer_id"].as_str().unwrap();
    let crm = s.owner.get(&format!("/api/v1/customers/{customer_id}")).ok(200);
    assert_eq!((crm["wa_id"].as_str(), crm["phone"].as_str()), (Some(customer), Some("+5215512345678")));

    // Delivery reports out of order: read first, then a late delivered and sent: read stays.
    let out_wamid = sent.wamid.clone().unwrap();
    for st in ["read", "delivered", "sent"] {
        wa::deliver(&s.relay.http, &wa::status(&out_wamid, st, customer));
    }
    // The same message again (Meta redelivers): nothing doubles.
    wa::deliver(&s.relay.http, &wa::text(customer, "Ana Pérez", "wamid.IN1", "Hola, ¿cuánto cuesta la camisa azul?"));

    // Asking for a person hands off and assigns the seller on shift.
    wa::deliver(&s.relay.http, &wa::text(customer, "Ana Pérez", "wamid.IN2", "quiero hablar con una persona"));
    // The handoff's answer, with its explanation, is what to wait for: the conversation's state
    // and the messages live in different documents, which may reach the node in either order.
    let handed_off = |m: &Value| m["explain"]["trigger"]["kind"] == "handoff_keyword";
    let t = wait_for(LONG, || {
        let t = thread(&s.owner, c["id"].as_str().unwrap());
        let m = t["messages"].as_array().unwrap();
        (t["conversation"]["state"] == "open" && m.len() >= 4 && m.iter().any(handed_off)).then_some(t)
    })
    .unwrap_or_else(|| panic!("no handoff; relay log:\n{}", s.relay.log()));
    assert_eq!(t["conversation"]["assignee_id"], s.seller.as_str());
    // Analytics counts the conversation for today, its branch and the seller it went to.
    let a = s.owner.get("/api/v1/analytics/summary?days=7").ok(200);
    let count = |list: &str, key: &str| {
        a[list].as_array().unwrap().iter().find(|x| x["key"] == key).map(|x| x["count"].as_u64().unwrap())
    };
    assert_eq!(a["conversations_by_day"].as_array().unwrap().len(), 7, "{a}");
    assert_eq!(count("conversations_by_day", a["to"].as_str().unwrap()), Some(1), "{a}");
    assert_eq!(count("conversations_by_branch", &s.branch), Some(1), "{a}");
    assert_eq!(count("conversations_by_seller", &s.seller), Some(1), "{a}");
    let m = t["messages"].as_array().unwrap();
    assert_eq!(m.len(), 4, "one question each, one answer each, no duplicate: {m:#?}");
    assert_eq!(m[1]["status"], "read", "a late 'sent' must not undo 'read'");
    assert!(m.iter().any(handed_off), "the handoff's answer explains itself: {m:#?}");

    // A person answers from the edge node; the relay sends it; the bot stays quiet from now on.
    let seller = s.node.login("vendedora@tienda.mx", "password-seller");
    let seller = s.node.api(&seller);
    let conv = c["id"].as_str().unwrap();
    let reply = seller
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({ "text": "¡Hola Ana! Soy Laura, ¿qué talla buscas?" }),
        )
        .ok(201);
    assert_eq!(reply["status"], "queued");
    let human = wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| c.body["text"]["body"].as_str().is_some_and(|b| b.contains("Laura")))
    });
    assert!(human.is_some(), "the staff reply never left; relay log:\n{}", s.relay.log());
    wait_for(LONG, || {
        let t = thread(&seller, conv);
        (t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("Laura") && m["status"] == "sent"))
        .then_some(())
    })
    .expect("the edge node shows the reply as sent");
    wa::deliver(&s.relay.http, &wa::text(customer, "Ana Pérez", "wamid.IN3", "la M por favor"));
    wait_thread(&seller, customer, 6, "after the customer's answer");
    std::thread::sleep(Duration::from_secs(1));
    let bot_msgs = s.graph.sent().into_iter().filter(|c| c.body["to"] == customer).count();
    assert_eq!(bot_msgs, 3, "two bot answers and the person's reply; the bot must not answer an open conversation");

    // The seller sells Ana a shirt from the edge node and sends her the order's PDF on WhatsApp:
    // the relay renders it from its own replica, uploads it and sends it as a document.
    let ana = thread(&seller, conv)["conversation"]["customer_id"].as_str().unwrap().to_string();
    let order = seller
        .post(
            "/api/v1/orders",
            &json!({ "customer_id": ana, "branch_id": s.branch, "lines": [{ "product_id": s.product, "quantity": 2 }] }),
        )
        .ok(201);
    let number = order["number"].as_str().unwrap().to_string();
    let queued = seller.post(&format!("/api/v1/orders/{}/whatsapp", id(&order)), &json!({})).ok(201);
    assert_eq!((queued["kind"].as_str(), queued["status"].as_str()), (Some("document"), Some("queued")), "{queued}");
    assert_eq!(queued["text"], format!("Pedido {number}"));
    let doc = wait_for(LONG, || s.graph.sent().into_iter().find(|c| c.body["type"] == "document"))
        .unwrap_or_else(|| panic!("the order's PDF never left; relay log:\n{}", s.relay.log()));
    let uploads = s.graph.uploads();
    assert_eq!(uploads.len(), 1, "one upload");
    let up = &uploads[0];
    assert_eq!(up.authorization, format!("Bearer {}", wa::ACCESS_TOKEN));
    assert!(up.content_type.starts_with("multipart/form-data"), "{}", up.content_type);
    let raw = String::from_utf8_lossy(&up.body);
    for part in ["name=\"messaging_product\"", "application/pdf", &format!("filename=\"{number}.pdf\""), "%PDF-"] {
        assert!(raw.contains(part), "the upload lacks {part:?}");
    }
    assert_eq!(doc.body["to"], customer);
    assert_eq!(doc.body["document"]["id"], up.id.as_str());
    assert_eq!(doc.body["document"]["filename"], format!("{number}.pdf"));
    assert_eq!(doc.body["document"]["caption"], format!("Pedido {number}"));
    // Someone who never wrote to the shop has no conversation to send it to.
    let walk_in = id(&seller.customer("Cliente de mostrador"));
    let o2 = seller
        .post(
            "/api/v1/orders",
            &json!({ "customer_id": walk_in, "branch_id": s.branch, "lines": [{ "product_id": s.product, "quantity": 1 }] }),
        )
        .ok(201);
    let e = seller.post(&format!("/api/v1/orders/{}/whatsapp", id(&o2)), &json!({})).err(409, "conflict");
    assert_eq!(e["field"], "customer_id", "{e}");
    let e = seller
        .post(&format!("/api/v1/orders/{}/whatsapp", id(&order)), &json!({ "lang": "fr" }))
        .err(422, "validation");
    assert_eq!(e["field"], "lang", "{e}");
    // Reading clears the unread count.
    assert_eq!(seller.post(&format!("/api/v1/conversations/{conv}/read"), &json!({})).ok(200)["unread"], 0);

    // Merged into another customer record, Ana's conversation shows under the one she was merged
    // into, like her orders.
    let wa_customer = thread(&s.owner, conv)["conversation"]["customer_id"].as_str().unwrap().to_string();
    let kept = id(&s.owner.customer("Ana Pérez (tienda)"));
    s.owner.post(&format!("/api/v1/customers/{kept}/merge"), &json!({ "from_id": wa_customer })).ok(200);
    let listed = s.owner.list_all(&format!("/api/v1/conversations?customer_id={kept}"));
    assert_eq!(listed.iter().map(|c| c["id"].clone()).collect::<Vec<_>>(), vec![json!(conv)]);
}

#[test]
fn a_complaint_opens_a_ticket_and_the_ticket_answers_the_customer_on_whatsapp() {
    let s = shop();
    let customer = "5215598765432";
    // Rosa wrote before; the shop sold her a shirt since.
    wa::deliver(&s.relay.http, &wa::text(customer, "Rosa Díaz", "wamid.C0", "Hola"));
    let rosa = wait_for(LONG, || conversation_of(&s.owner, customer)?["customer_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("Rosa never reached the edge node; relay log:\n{}", s.relay.log()));
    let order = s.owner.order(&rosa, &[(&s.product, 1)]);
    let order_number = order["number"].as_str().unwrap();
    let head = crate::sync::owner_when_synced_at(&s.relay.http);
    let order_path = format!("/api/v1/orders/{}", id(&order));
    wait_for(LONG, || (head.get(&order_path).status == 200).then_some(()))
        .expect("the order reached the relay's replica");
    let complaint = format!("Hola, mi pedido {order_number} llegó roto. Quiero un reembolso");
    wa::deliver(&s.relay.http, &wa::text(customer, "Rosa Díaz", "wamid.C1", &complaint));

    // The bot answers with the number of the ticket it opened, and hands Rosa to the seller on shift.
    let sent = wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| c.body["text"]["body"].as_str().is_some_and(|b| b.contains("T-")))
    })
    .unwrap_or_else(|| panic!("the bot never answered the complaint; relay log:\n{}", s.relay.log()));
    let said = sent.body["text"]["body"].as_str().unwrap().to_string();
    assert!(said.contains("Rosa") && said.contains("T-") && !said.contains("{ticket}"), "{said}");

    // The ticket reaches the branch's edge node: Rosa, her message, the conversation, and the
    // seller who has the conversation handles it.
    let ticket = wait_for(LONG, || {
        s.owner.list_all("/api/v1/tickets").into_iter().find(|t| t["assignee_id"] == s.seller.as_str())
    })
    .unwrap_or_else(|| panic!("no ticket for the seller on the edge node; relay log:\n{}", s.relay.log()));
    let number = ticket["number"].as_str().unwrap();
    assert!(said.contains(number), "{said} names {number}");
    assert_eq!(ticket["customer_name"], "Rosa Díaz", "{ticket}");
    assert_eq!(ticket["subject"], complaint);
    // The order she named is hers: the ticket is about it.
    let about = (ticket["order_id"].as_str(), ticket["order_number"].as_str());
    assert_eq!(about, (Some(id(&order).as_str()), Some(order_number)), "{ticket}");
    assert_eq!((ticket["status"].as_str(), ticket["priority"].as_str()), (Some("open"), Some("normal")));
    let tid = id(&ticket);
    let t = s.owner.get(&format!("/api/v1/tickets/{tid}")).ok(200);
    assert_eq!(t["description"], complaint);
    assert_eq!(t["created_by"], "whatsapp");
    let th = wait_thread(&s.owner, customer, 4, "after the complaint");
    assert_eq!(t["conversation_id"], th["conversation"]["id"]);
    assert_eq!(th["conversation"]["state"], "open");
    assert_eq!(th["conversation"]["assignee_id"], s.seller.as_str());
    let answer = &th["messages"][3];
    assert_eq!(
        (answer["explain"]["intent"].as_str(), answer["explain"]["ticket"].as_str()),
        (Some("complaint"), Some(number))
    );

    // The seller answers Rosa from the ticket: the comment goes out on WhatsApp and the ticket's
    // history says so; then the ticket is resolved.
    let seller = s.node.api(&s.node.login("vendedora@tienda.mx", "password-seller"));
    let reply = "Rosa, hoy mismo te enviamos otra camisa y recogemos la rota.";
    let t = seller
        .post(&format!("/api/v1/tickets/{tid}/comments"), &json!({ "body": reply, "notify_customer": true }))
        .ok(201);
    let last = t["comments"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["body"], reply);
    let message = last["message_id"].as_str().expect("the comment names the message it went as").to_string();
    wait_for(LONG, || s.graph.sent().into_iter().find(|c| c.body["text"]["body"] == reply))
        .unwrap_or_else(|| panic!("the ticket's reply never left; relay log:\n{}", s.relay.log()));
    let conv = th["conversation"]["id"].as_str().unwrap();
    wait_for(LONG, || {
        let t = thread(&seller, conv);
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == message.as_str() && m["status"] == "sent")
            .then_some(())
    })
    .expect("the conversation shows the ticket's reply as sent");
    let t = seller.patch(&format!("/api/v1/tickets/{tid}"), &json!({ "status": "resolved" })).ok(200);
    assert_eq!(t["status"], "resolved");
    assert_eq!(
        s.graph.sent().into_iter().filter(|c| c.body["to"] == customer).count(),
        3,
        "the bot's greeting and answer, and the reply"
    );
}

#[test]
fn an_order_moved_on_the_edge_node_tells_its_customer_on_whatsapp_once() {
    let s = shop();
    let customer = "5215587654321";
    wa::deliver(&s.relay.http, &wa::text(customer, "Luis Pérez", "wamid.N0", "Hola"));
    let luis = wait_for(LONG, || conversation_of(&s.owner, customer)?["customer_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("Luis never reached the edge node; relay log:\n{}", s.relay.log()));
    // The shop's notices, set on the branch's node: a status no order has is refused by name.
    assert_field_error(
        s.owner.patch("/api/v1/shop", &json!({ "order_notices": { "shipped": "En camino" } })),
        422,
        "validation",
        "order_notices.shipped",
    );
    let text = "Hola {customer}, tu pedido {number} está confirmado. Total: {total}.";
    let shop = s.owner.patch("/api/v1/shop", &json!({ "order_notices": { "confirmed": text } })).ok(200);
    assert_eq!(shop["order_notices"]["confirmed"], text, "{shop}");

    let order = s.owner.order(&luis, &[(&s.product, 2)]);
    let (oid, number) = (id(&order), order["number"].as_str().unwrap().to_string());
    let moved = s.owner.transition(&oid, "confirmed");
    let notice = &moved["notices"][0];
    assert_eq!((notice["status"].as_str(), notice["kind"].as_str()), (Some("confirmed"), Some("text")), "{moved}");
    let expected = format!(
        "Hola Luis Pérez, tu pedido {number} está confirmado. Total: {} MXN.",
        moved["total"].as_str().unwrap()
    );
    wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| c.body["to"] == customer && c.body["text"]["body"] == expected.as_str())
    })
    .unwrap_or_else(|| panic!("the notice never left; relay log:\n{}", s.relay.log()));
    // The order's page follows the notice's delivery.
    wait_for(LONG, || {
        let o = s.owner.get(&format!("/api/v1/orders/{oid}")).ok(200);
        (o["notices"][0]["delivery"] == "sent").then_some(())
    })
    .expect("the order shows its notice sent");
    // Paid has no notice; the confirmation went once.
    s.owner.transition(&oid, "paid");
    std::thread::sleep(Duration::from_secs(2));
    let sent = s.graph.sent().into_iter().filter(|c| c.body["to"] == customer).count();
    assert_eq!(sent, 2, "the bot's greeting and the notice");

    // WhatsApp reports the notice failed: Luis's window had closed (131047). With a template for
    // notices, the notice goes again as that template, with the order's number.
    let tpl = json!({ "name": "aviso_pedido", "language": "es_MX", "body": "Tu pedido {{1}}: {{2}}", "params": 2 });
    s.owner.post("/api/v1/whatsapp/templates", &tpl).ok(201);
    wait_for(LONG, || {
        let r = s.owner.patch("/api/v1/shop", &json!({ "order_notice_template": "aviso_pedido" }));
        (r.status == 200).then_some(())
    })
    .expect("the template is one the shop may choose");
    let head = crate::sync::owner_when_synced_at(&s.relay.http);
    wait_for(LONG, || (head.get("/api/v1/shop").ok(200)["order_notice_template"] == "aviso_pedido").then_some(()))
        .expect("the relay knows the notices' template");
    let message = notice["message_id"].as_str().unwrap().to_string();
    let conv = notice["conversation_id"].as_str().unwrap().to_string();
    let wamid = wait_for(LONG, || {
        thread(&s.owner, &conv)["messages"].as_array()?.iter().find(|m| m["id"] == message.as_str())?["wamid"]
            .as_str()
            .map(str::to_string)
    })
    .expect("the notice's WhatsApp id");
    wa::deliver(&s.relay.http, &wa::status(&wamid, "failed", customer));
    let went = wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| c.body["to"] == customer && c.body["type"] == "template")
    })
    .unwrap_or_else(|| panic!("the notice never went as the template; relay log:\n{}", s.relay.log()));
    assert_eq!(went.body["template"]["name"], "aviso_pedido");
    assert_eq!(went.body["template"]["components"][0]["parameters"][0]["text"], number.as_str());
    wait_for(LONG, || {
        let o = s.owner.get(&format!("/api/v1/orders/{oid}")).ok(200);
        let n = o["notices"].as_array()?;
        (n.len() == 2 && n[0]["delivery"] == "failed" && n[1]["kind"] == "template").then_some(())
    })
    .expect("the order shows the refused notice and the template");
}

/// A customer's tap on one of the survey's buttons.
#[test]
fn a_broadcast_from_the_edge_node_reaches_the_tag_and_baja_takes_a_customer_out() {
    let s = shop();
    let (rosa, nora) = ("5215511110001", "5215511110002");
    for (wa_id, name, wamid) in [(rosa, "Rosa", "wamid.BC1"), (nora, "Nora", "wamid.BC2")] {
        wa::deliver(&s.relay.http, &wa::text(wa_id, name, wamid, "Hola"));
    }
    for wa_id in [rosa, nora] {
        wait_for(LONG, || conversation_of(&s.owner, wa_id))
            .unwrap_or_else(|| panic!("{wa_id} never reached the edge node; relay log:\n{}", s.relay.log()));
    }
    // Nora writes BAJA: the bot confirms and she is tagged no-promos, on the branch's node too.
    wa::deliver(&s.relay.http, &wa::text(nora, "Nora", "wamid.BC3", "BAJA"));
    wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| {
            c.body["to"] == nora
                && c.body["text"]["body"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Listo, ya no te enviaremos promociones"))
        })
    })
    .unwrap_or_else(|| panic!("no answer to BAJA: {:#?}\n{}", s.graph.sent(), s.relay.log()));
    let tags_of = |wa_id: &str| {
        let c = conversation_of(&s.owner, wa_id).unwrap();
        s.owner.get(&format!("/api/v1/customers/{}", c["customer_id"].as_str().unwrap())).ok(200)["tags"].clone()
    };
    wait_for(LONG, || tags_of(nora).as_array()?.iter().any(|t| t == "no-promos").then_some(()))
        .unwrap_or_else(|| panic!("Nora never tagged no-promos: {}", tags_of(nora)));
    // A broadcast from the node to everyone who wrote on WhatsApp (their automatic tag): a bad
    // request names its field; Rosa gets the template with her name, Nora is left out.
    let tpl = json!({ "name": "oferta", "language": "es_MX", "body": "Hola {{1}}, 2x1 en tazas", "params": 1 });
    s.owner.post("/api/v1/whatsapp/templates", &tpl).ok(201);
    assert_field_error(
        s.owner.post("/api/v1/whatsapp/broadcasts", &json!({ "tag": "whatsapp", "template": "oferta", "params": [] })),
        422,
        "validation",
        "params",
    );
    let body = json!({ "tag": "whatsapp", "template": "oferta", "params": ["{name}"], "id": "dos-por-uno" });
    let report = s.owner.post("/api/v1/whatsapp/broadcasts", &body).ok(200);
    assert_eq!((report["queued"].as_u64(), report["already"].as_u64()), (Some(1), Some(0)), "{report}");
    assert_eq!(report["skipped"][0]["reason"], "opted_out", "{report}");
    let sent =
        wait_for(LONG, || s.graph.sent().into_iter().find(|c| c.body["to"] == rosa && c.body["type"] == "template"))
            .unwrap_or_else(|| panic!("the broadcast never left; relay log:\n{}", s.relay.log()));
    assert_eq!(sent.body["template"]["components"][0]["parameters"][0]["text"], "Rosa", "{:#?}", sent.body);
    // The node's list of broadcasts follows the delivery the relay reports.
    wait_for(LONG, || {
        let list = s.owner.get("/api/v1/whatsapp/broadcasts").ok(200);
        let b = list.as_array()?.iter().find(|b| b["id"] == "dos-por-uno")?.clone();
        (b["total"] == 1 && b["queued"] == 0 && b["sent"] == 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!("the broadcast's delivery never reached the node: {}", s.owner.get("/api/v1/whatsapp/broadcasts").json())
    });
    // Sent again (a retry): nobody gets it twice.
    let again = s.owner.post("/api/v1/whatsapp/broadcasts", &body).ok(200);
    assert_eq!((again["queued"].as_u64(), again["already"].as_u64()), (Some(0), Some(1)), "{again}");
    // ALTA brings Nora back.
    wa::deliver(&s.relay.http, &wa::text(nora, "Nora", "wamid.BC4", "Alta"));
    wait_for(LONG, || (!tags_of(nora).as_array()?.iter().any(|t| t == "no-promos")).then_some(()))
        .unwrap_or_else(|| panic!("Nora still tagged no-promos: {}", tags_of(nora)));
    std::thread::sleep(Duration::from_secs(1));
    let to_rosa = s.graph.sent().into_iter().filter(|c| c.body["to"] == rosa && c.body["type"] == "template").count();
    assert_eq!(to_rosa, 1, "the broadcast went once");

    // Scheduled from the node a few seconds ahead: kept until then (one of two cancelled), then
    // the relay writes and sends it to everyone tagged at that time, Nora included again.
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 4000;
    for id in ["viernes", "cancelada"] {
        let later = json!({ "tag": "whatsapp", "template": "oferta", "params": ["{name}"], "id": id, "send_at": at });
        let r = s.owner.post("/api/v1/whatsapp/broadcasts", &later).ok(200);
        assert_eq!(
            (r["queued"].as_u64(), r["scheduled_at"].as_i64(), r["audience"].as_u64()),
            (Some(0), Some(at), Some(2)),
            "{r}"
        );
    }
    s.owner.delete("/api/v1/whatsapp/broadcasts/cancelada").ok(204);
    let state = |id: &str| {
        let list = s.owner.get("/api/v1/whatsapp/broadcasts").ok(200);
        list.as_array().and_then(|l| l.iter().find(|b| b["id"] == id)).map(|b| b["state"].clone()).unwrap_or_default()
    };
    assert_eq!((state("viernes"), state("cancelada")), (json!("scheduled"), json!("cancelled")));
    let templates_to =
        |who: &str| s.graph.sent().into_iter().filter(|c| c.body["to"] == who && c.body["type"] == "template").count();
    wait_for(LONG, || (templates_to(nora) == 1 && templates_to(rosa) == 2).then_some(()))
        .unwrap_or_else(|| panic!("the scheduled broadcast never went: {:#?}\n{}", s.graph.sent(), s.relay.log()));
    wait_for(LONG, || (state("viernes") == "sent").then_some(()))
        .unwrap_or_else(|| panic!("the node never saw it go: {}", s.owner.get("/api/v1/whatsapp/broadcasts").json()));
    // Gone, it cannot be cancelled; the cancelled one never goes.
    assert_field_error(s.owner.delete("/api/v1/whatsapp/broadcasts/viernes"), 409, "conflict", "state");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!((templates_to(nora), templates_to(rosa)), (1, 2), "the cancelled broadcast stayed home");
}

fn rating(wa_id: &str, wamid: &str, id: &str, title: &str) -> Value {
    wa::inbound(
        wa_id,
        "Rosa Díaz",
        wamid,
        json!({ "type": "interactive", "interactive": { "type": "button_reply", "button_reply": { "id": id, "title": title } } }),
    )
}

#[test]
fn a_resolved_conversation_asks_the_customer_for_a_rating_and_the_analytics_count_it() {
    let s = shop();
    let customer = "5215511112222";
    let surveys = |g: &FakeGraph| -> Vec<Value> {
        g.sent()
            .into_iter()
            .filter(|c| c.body["type"] == "interactive" && c.body["interactive"]["type"] == "button")
            .map(|c| c.body)
            .collect()
    };
    // Without the shop asking for it, resolving sends nothing.
    wa::deliver(&s.relay.http, &wa::text(customer, "Rosa Díaz", "wamid.S0", "Quiero hablar con una persona"));
    let th = wait_thread(&s.owner, customer, 2, "the handoff");
    let conv = th["conversation"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{conv}");
    assert_eq!(th["conversation"]["assignee_id"], s.seller.as_str());
    let seller = s.node.api(&s.node.login("vendedora@tienda.mx", "password-seller"));
    seller.patch(&path, &json!({ "state": "resolved" })).ok(200);
    let shop = s.owner.patch("/api/v1/shop", &json!({ "satisfaction_survey": true })).ok(200);
    assert_eq!(shop["satisfaction_survey"], true);
    let bad = s.owner.patch("/api/v1/shop", &json!({ "satisfaction_survey": "yes" }));
    assert_eq!(bad.status, 400, "{}", bad.text);

    // Rosa writes again; the seller answers and resolves: she is asked to rate it, in Spanish.
    wa::deliver(&s.relay.http, &wa::text(customer, "Rosa Díaz", "wamid.S1", "Hola otra vez, ¿me ayudas con mi talla?"));
    wait_thread(&s.owner, customer, 3, "her second message");
    seller.patch(&path, &json!({ "state": "open" })).ok(200);
    seller.post(&format!("{path}/messages"), &json!({ "text": "Claro, te recomiendo la talla M." })).ok(201);
    let c = seller.patch(&path, &json!({ "state": "resolved" })).ok(200);
    assert_eq!(c["state"], "resolved");
    let survey = wait_for(LONG, || surveys(&s.graph).into_iter().next())
        .unwrap_or_else(|| panic!("no survey reached the Graph API; relay log:\n{}", s.relay.log()));
    assert_eq!(survey["to"], customer);
    assert!(survey["interactive"]["body"]["text"].as_str().unwrap().contains("¿Cómo te atendimos?"), "{survey}");
    let ids: Vec<&str> = survey["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["csat:good", "csat:ok", "csat:bad"]);

    // A bad rating: thanked for, and the conversation goes back to the seller, rated.
    wa::deliver(&s.relay.http, &rating(customer, "wamid.S2", "csat:bad", "😞 Mal"));
    wait_for(LONG, || {
        s.graph.sent().into_iter().find(|c| c.body["text"]["body"].as_str().is_some_and(|b| b.contains("lamentamos")))
    })
    .unwrap_or_else(|| panic!("the bad rating was never answered; relay log:\n{}", s.relay.log()));
    let rated = wait_for(LONG, || {
        let c = thread(&seller, &conv)["conversation"].clone();
        (c["rating"] == "bad").then_some(c)
    })
    .expect("the edge node shows the rating");
    assert_eq!((rated["state"].as_str(), rated["assignee_id"].as_str()), (Some("open"), Some(s.seller.as_str())));
    assert!(rated["rated_at"].as_i64().is_some());
    // The thread says why the bot wrote both: the resolution, then the rating.
    let msgs = thread(&seller, &conv)["messages"].as_array().unwrap().clone();
    let why = |kind: &str| msgs.iter().find(|m| m["explain"]["trigger"]["kind"] == kind).map(|m| m["explain"].clone());
    let asked = why("resolved").expect("the survey explains itself");
    assert_eq!(asked["node"], "satisfaction_survey");
    assert_eq!(why("rating").expect("the thanks explain themselves")["trigger"]["value"], "bad");
    // Managers find the conversations rated bad.
    let bad_ones = s.owner.get("/api/v1/conversations?rating=bad").ok(200);
    assert_eq!(bad_ones["items"].as_array().unwrap().len(), 1, "{bad_ones}");
    assert_eq!(bad_ones["items"][0]["id"], conv.as_str());
    let wrong = s.owner.get("/api/v1/conversations?rating=great");
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert!(wrong.text.contains("rating") && wrong.text.contains("one of good, ok, bad"), "{}", wrong.text);
    // Resolved again without a word from Rosa: no second survey.
    seller.patch(&path, &json!({ "state": "resolved" })).ok(200);
    let head = crate::sync::owner_when_synced_at(&s.relay.http);
    wait_for(LONG, || (head.get(&path).ok(200)["conversation"]["state"] == "resolved").then_some(()))
        .expect("the relay knows the conversation is resolved");

    // She thanks the shop: the bot says goodbye and resolves the conversation, and the relay
    // asks her again; she is happy now, and it stays resolved.
    wa::deliver(&s.relay.http, &wa::text(customer, "Rosa Díaz", "wamid.S3", "Perfecto, muchas gracias"));
    wait_for(LONG, || (surveys(&s.graph).len() == 2).then_some(()))
        .unwrap_or_else(|| panic!("no second survey; thread {:#}", thread(&seller, &conv)));
    wa::deliver(&s.relay.http, &rating(customer, "wamid.S4", "csat:good", "😀 Muy bien"));
    let rated = wait_for(LONG, || {
        let c = thread(&seller, &conv)["conversation"].clone();
        (c["rating"] == "good").then_some(c)
    })
    .expect("the edge node shows the good rating");
    assert_eq!(rated["state"], "resolved");
    assert!(s.owner.get("/api/v1/conversations?rating=bad").ok(200)["items"].as_array().unwrap().is_empty());
    assert_eq!(surveys(&s.graph).len(), 2, "one survey per resolution the customer wrote before");

    // The branch and head office see the ratings, per seller.
    let check = |summary: &Value| {
        let sat = &summary["satisfaction"];
        assert_eq!(
            (sat["surveys"].as_u64(), sat["good"].as_u64(), sat["bad"].as_u64()),
            (Some(2), Some(1), Some(1)),
            "{sat}"
        );
        assert_eq!(sat["score"], 50.0);
        let mine = sat["by_seller"].as_array().unwrap().iter().find(|r| r["key"] == s.seller.as_str()).cloned();
        let mine = mine.unwrap_or_else(|| panic!("no ratings for the seller: {sat}"));
        assert_eq!((mine["good"].as_u64(), mine["bad"].as_u64()), (Some(1), Some(1)));
    };
    // The conversation's record and the messages document sync apart: the rating's message may
    // reach the edge node just after the rating on the conversation.
    let branch = wait_for(LONG, || {
        let sum = s.owner.get("/api/v1/analytics/summary?days=1").ok(200);
        (sum["satisfaction"]["surveys"] == 2 && sum["satisfaction"]["good"] == 1).then_some(sum)
    })
    .expect("the branch sees the ratings");
    check(&branch);
    let summary = wait_for(LONG, || {
        let sum = head.get("/api/v1/analytics/summary?days=1").ok(200);
        (sum["satisfaction"]["surveys"] == 2 && sum["satisfaction"]["good"] == 1).then_some(sum)
    })
    .expect("head office sees the ratings");
    check(&summary);
}

#[test]
fn replies_queue_while_the_graph_api_is_down_and_each_goes_out_once() {
    let s = shop();
    let customer = "5215598765432";
    s.graph.fail(503, 1);
    wa::deliver(&s.relay.http, &wa::text(customer, "Beto", "wamid.DOWN1", "precio del pantalón negro"));
    let t = wait_thread(&s.owner, customer, 2, "the bot's answer queued");
    let conv = t["conversation"]["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        s.owner
            .post(&format!("/api/v1/conversations/{conv}/messages"), &json!({ "text": format!("respuesta {i}") }))
            .ok(201);
    }
    wait_for(LONG, || (s.graph.calls().len() >= 6).then_some(())).expect("the relay kept trying");
    assert!(s.graph.sent().is_empty());
    s.graph.recover();
    let all = wait_for(LONG, || {
        let sent = s.graph.sent();
        (sent.len() >= 4).then_some(sent)
    })
    .unwrap_or_else(|| panic!("not everything went out; relay log:\n{}", s.relay.log()));
    std::thread::sleep(Duration::from_secs(3));
    let sent = s.graph.sent();
    assert_eq!(sent.len(), all.len().max(4), "nothing is sent twice");
    let mut bodies: Vec<String> =
        sent.iter().map(|c| c.body["text"]["body"].as_str().unwrap_or("").to_string()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("399.00")), "{bodies:?}");
    wait_for(LONG, || {
        let t = thread(&s.owner, &conv);
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "out")
            .all(|m| m["status"] == "sent")
            .then_some(())
    })
    .expect("every reply shows as sent on the edge node");

    // The window: a closed window (WhatsApp's 131047) marks the conversation; free text is then
    // refused on the edge node with the templates offered.
    s.graph.fail(400, 131047);
    s.owner.post(&format!("/api/v1/conversations/{conv}/messages"), &json!({ "text": "¿sigues ahí?" })).ok(201);
    let marked = wait_for(LONG, || (thread(&s.owner, &conv)["conversation"]["needs_template"] == true).then_some(()));
    assert!(marked.is_some(), "131047 did not mark the conversation; relay log:\n{}", s.relay.log());
    s.owner.post("/api/v1/whatsapp/templates", &json!({ "name": "seguimiento", "language": "es_MX", "body": "Hola {{1}}, ¿podemos ayudarte?", "params": 1 })).ok(201);
    let e = s
        .owner
        .post(&format!("/api/v1/conversations/{conv}/messages"), &json!({ "text": "hola otra vez" }))
        .err(409, "conflict");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("seguimiento")), "{e}");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("kind"), Some("service_window")));
    // The failed reply is in the month's messages document, which syncs on its own: it may reach
    // the edge node just after the conversation's mark.
    let failed = wait_for(LONG, || {
        thread(&s.owner, &conv)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["status"] == "failed" && m["error"].as_str().unwrap_or("").starts_with("131047"))
            .then_some(())
    });
    assert!(failed.is_some(), "the refused reply does not show as failed; relay log:\n{}", s.relay.log());
    s.graph.recover();
    let tpl = s
        .owner
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({ "kind": "template", "template": "seguimiento", "params": ["Beto"] }),
        )
        .ok(201);
    assert_eq!(tpl["text"], "Hola Beto, ¿podemos ayudarte?");
    let went = wait_for(LONG, || s.graph.sent().into_iter().find(|c| c.body["type"] == "template"));
    let went = went.expect("the template went out");
    assert_eq!(went.body["template"]["name"], "seguimiento");
    assert_eq!(went.body["template"]["components"][0]["parameters"][0]["text"], "Beto");
}

#[test]
fn the_webhook_checks_signatures_and_survives_bad_input() {
    let graph = FakeGraph::start();
    let relay = Relay::start_env(wa::relay_env(&graph));
    let get = |q: &str| {
        let r = reqwest::blocking::get(format!("{}/webhooks/whatsapp?{q}", relay.http)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(
        get(&format!("hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444", wa::VERIFY_TOKEN)),
        (200, "1158201444".into())
    );
    assert_eq!(get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1").0, 403);
    assert_eq!(get(&format!("hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1", wa::VERIFY_TOKEN)).0, 403);

    let body = wa::text("5215500000000", "X", "wamid.BAD", "hola").to_string().into_bytes();
    let (st, text) = wa::post_webhook(&relay.http, &body, None);
    assert_eq!(st, 401, "{text}");
    assert!(text.contains("X-Hub-Signature-256"), "{text}");
    let (st, _) = wa::post_webhook(&relay.http, &body, Some("sha256=00"));
    assert_eq!(st, 401);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(wa::post_webhook(&relay.http, &tampered, Some(&wa::sign(&body))).0, 401);
    let status = || relay.admin().get("/api/v1/whatsapp/status").ok(200);
    assert_eq!(
        status()["events"]["pending"].as_i64().unwrap()
            + status()["events"]["done"].as_i64().unwrap()
            + status()["events"]["ignored"].as_i64().unwrap(),
        0,
        "a refused webhook stored something"
    );

    let junk = b"{not json".to_vec();
    let (st, text) = wa::post_webhook(&relay.http, &junk, Some(&wa::sign(&junk)));
    assert_eq!(st, 400, "{text}");
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    assert_eq!(wa::post_webhook(&relay.http, &big, Some(&wa::sign(&big))).0, 413);

    // Signed and well-formed but for a number nobody connected: 200 (so Meta does not retry
    // forever), logged and set aside.
    wa::deliver(
        &relay.http,
        &json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": { "metadata": { "phone_number_id": "999" }, "messages": [{ "from": "1", "id": "w", "type": "text", "text": { "body": "x" } }] } }] }] }),
    );
    wa::deliver(&relay.http, &json!({ "object": "page", "entry": [] }));
    let ignored = wait_for(LONG, || (status()["events"]["ignored"].as_i64().unwrap() >= 2).then_some(()));
    assert!(ignored.is_some(), "{}", status());
    assert!(relay.log().contains("unknown phone_number_id"), "{}", relay.log());

    // The owner's number API names the field.
    let e = relay
        .admin()
        .post(
            "/api/v1/whatsapp/numbers",
            &json!({ "phone_number_id": "12ab", "shop_id": "s", "access_token": "EAAGxxxxxxxx" }),
        )
        .err(422, "validation");
    assert_eq!(e["field"], "phone_number_id", "{e}");
    let e = relay
        .admin()
        .post("/api/v1/whatsapp/numbers", &json!({ "phone_number_id": "123", "shop_id": "s", "access_token": "x" }))
        .err(422, "validation");
    assert_eq!(e["field"], "access_token");
    assert_eq!(Api::for_base(&relay.http).get("/api/v1/whatsapp/numbers").status, 401);
    assert!(relay.is_running());
}

#[test]
fn every_message_type_lands_in_the_inbox() {
    let s = shop();
    let customer = "51999111222";
    let all = wa::every_type(customer);
    for (_, ev) in &all {
        wa::deliver(&s.relay.http, ev);
    }
    let t = wait_for(LONG, || {
        let c = conversation_of(&s.owner, customer)?;
        let t = thread(&s.owner, c["id"].as_str()?);
        let inbound = t["messages"].as_array()?.iter().filter(|m| m["direction"] == "in").count();
        (inbound >= all.len()).then_some(t)
    })
    .unwrap_or_else(|| panic!("not every message arrived; relay log:\n{}", s.relay.log()));
    let inbound: Vec<&Value> = t["messages"].as_array().unwrap().iter().filter(|m| m["direction"] == "in").collect();
    assert_eq!(inbound.len(), all.len());
    let by_wamid = |w: &str| inbound.iter().find(|m| m["wamid"] == w).copied().unwrap_or_else(|| panic!("{w} missing"));
    for (i, (kind, _)) in all.iter().enumerate() {
        assert_eq!(by_wamid(&format!("wamid.T{}", i + 1))["kind"], *kind, "wamid.T{}", i + 1);
    }
    assert_eq!(by_wamid("wamid.T2")["text"], "la foto");
    assert_eq!(by_wamid("wamid.T2")["payload"]["media_id"], "MEDIA1");
    assert_eq!(by_wamid("wamid.T3")["payload"]["voice"], true);
    assert_eq!(by_wamid("wamid.T5")["payload"]["filename"], "factura.pdf");
    assert_eq!(by_wamid("wamid.T7")["payload"]["latitude"], -12.0464);
    assert!(by_wamid("wamid.T8")["text"].as_str().unwrap().contains("Rosa Díaz"));
    assert_eq!(by_wamid("wamid.T9")["payload"]["emoji"], "👍");
    assert_eq!(by_wamid("wamid.T10")["payload"]["id"], "ver_precios");
    assert_eq!(by_wamid("wamid.T11")["payload"]["type"], "list_reply");
    assert_eq!(by_wamid("wamid.T12")["payload"]["payload"], "CONFIRMAR");
    assert_eq!(by_wamid("wamid.T13")["payload"]["product_items"][0]["quantity"], 2);
    assert_eq!(by_wamid("wamid.T15")["payload"]["forwarded"], true);
    assert_eq!(by_wamid("wamid.T16")["context_wamid"], "wamid.T1");
    assert_eq!(by_wamid("wamid.T17")["payload"]["referral"]["headline"], "Oferta");
    // Media are downloaded through the Graph API and reach the edge node as attachments.
    let conv = t["conversation"]["id"].as_str().unwrap().to_string();
    let att = wait_for(LONG, || {
        let t = thread(&s.owner, &conv);
        let m = t["messages"].as_array()?.iter().find(|m| m["wamid"] == "wamid.T2")?.clone();
        m["payload"]["attachment"]["sha256"].as_str().map(str::to_string)
    })
    .unwrap_or_else(|| panic!("the image was never attached; relay log:\n{}", s.relay.log()));
    let file = wait_for(LONG, || {
        let r = s.owner.get(&format!("/api/v1/attachments/{att}"));
        (r.status == 200).then_some(r)
    })
    .expect("the attachment synced to the edge node");
    assert_eq!(file.header("content-type"), Some("image/jpeg"));
    assert_eq!(file.bytes, vec![0xFF, 0xD8, 0xFF, 0xD9]);
    s.owner.get("/api/v1/attachments/nothex").err(422, "validation");

    // An order message from the catalog becomes a draft order when its items are known.
    let order_message = |wamid: &str, quantity: i64| {
        wa::inbound(
            customer,
            "Tipos",
            wamid,
            json!({ "type": "order", "order": { "catalog_id": "CAT1", "product_items": [{ "product_retailer_id": "CAM-AZ", "quantity": quantity, "item_price": 149.9, "currency": "MXN" }] } }),
        )
    };
    wa::deliver(&s.relay.http, &order_message("wamid.ORDER", 2));
    let order = wait_for(LONG, || {
        let list = s.owner.get("/api/v1/orders").ok(200);
        list["items"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["notes"].as_str().unwrap_or("").contains("wamid.ORDER")).cloned())
    });
    let order = order
        .unwrap_or_else(|| panic!("no draft order: {:#}\n{}", s.owner.get("/api/v1/orders").ok(200), s.relay.log()));
    assert_eq!(order["status"], "draft");
    assert_eq!(order["lines"][0]["quantity"], 2);

    // An order the order rules refuse (2,000,000 units) loses nothing: the customer's message is
    // in the inbox, a note tells staff, and no order is made of it.
    wa::deliver(&s.relay.http, &order_message("wamid.ORDER2", 2_000_000));
    let t = wait_for(LONG, || {
        let c = conversation_of(&s.owner, customer)?;
        let t = thread(&s.owner, c["id"].as_str()?);
        let msgs = t["messages"].as_array()?;
        let noted = msgs.iter().any(|m| {
            m["direction"] == "note" && m["text"].as_str().unwrap_or("").contains("no se pudo registrar como borrador")
        });
        (msgs.iter().any(|m| m["wamid"] == "wamid.ORDER2") && noted).then_some(t)
    });
    assert!(t.is_some(), "the refused order's message or its note is missing; relay log:\n{}", s.relay.log());
    let orders = s.owner.get("/api/v1/orders").ok(200);
    assert!(
        !orders["items"].as_array().unwrap().iter().any(|o| o["notes"].as_str().unwrap_or("").contains("wamid.ORDER2")),
        "{orders:#}"
    );
}

#[test]
fn an_llm_answers_what_the_offline_bot_does_not_understand_and_falls_back_when_it_fails() {
    let llm = wa::FakeLlm::start();
    let s = shop_with(llm.env());
    let customer = "51988877766";
    wa::deliver(&s.relay.http, &wa::text(customer, "Carla", "wamid.L1", "¿la camisa azul combina con jeans claros?"));
    let t = wait_for(LONG, || {
        let c = conversation_of(&s.owner, customer)?;
        let t = thread(&s.owner, c["id"].as_str()?);
        (t["messages"].as_array()?.len() >= 2).then_some(t)
    })
    .unwrap_or_else(|| panic!("no answer; relay log:\n{}", s.relay.log()));
    let m = &t["messages"][1];
    // Grounded in the catalog: the fake quotes the facts it was given.
    assert!(m["text"].as_str().unwrap().contains("149.90"), "{m}");
    assert_eq!(m["explain"]["trigger"]["value"], "price", "a named product is a price question: {m}");
    assert_eq!(llm.calls(), 0, "the offline bot understood; no LLM call");
    // Something the catalog cannot answer goes to the LLM.
    wa::deliver(&s.relay.http, &wa::text(customer, "Carla", "wamid.L2", "¿aceptan pago con tarjeta?"));
    let m = wait_for(LONG, || {
        let t = thread(&s.owner, t["conversation"]["id"].as_str()?);
        t["messages"].as_array()?.get(3).cloned()
    })
    .unwrap_or_else(|| panic!("no LLM answer; relay log:\n{}", s.relay.log()));
    assert_eq!(m["explain"]["trigger"]["kind"], "llm", "{m}");
    assert_eq!(m["explain"]["llm"]["model"], "fake-model");
    assert!(m["text"].as_str().unwrap().starts_with("Según nuestro catálogo"), "{m}");
    assert_eq!(llm.calls(), 1);
    // The provider fails: the offline answer goes out instead.
    llm.set_failing(true);
    wa::deliver(&s.relay.http, &wa::text(customer, "Carla", "wamid.L3", "¿y los domingos?"));
    let m = wait_for(LONG, || {
        let t = thread(&s.owner, t["conversation"]["id"].as_str()?);
        t["messages"].as_array()?.get(5).cloned()
    })
    .unwrap_or_else(|| panic!("no fallback answer; relay log:\n{}", s.relay.log()));
    assert_eq!(m["explain"]["llm"], "unavailable", "{m}");
    assert_eq!(m["explain"]["trigger"]["kind"], "fallback");
    assert_eq!(m["sender"], "bot");
}

#[test]
fn an_acknowledged_webhook_survives_kill_9_of_the_relay() {
    let mut s = shop();
    let customer = "5215511112222";
    // Acknowledged (200) means on disk: kill the relay at once, before it can process anything.
    let events: Vec<Value> =
        (0..20).map(|i| wa::text(customer, "Dora", &format!("wamid.K{i}"), &format!("mensaje {i}"))).collect();
    for e in &events {
        wa::deliver(&s.relay.http, e);
    }
    s.relay.kill9();
    s.relay.restart();
    let t = wait_for(LONG, || {
        let c = conversation_of(&s.owner, customer)?;
        let t = thread(&s.owner, c["id"].as_str()?);
        let inbound = t["messages"].as_array()?.iter().filter(|m| m["direction"] == "in").count();
        (inbound == 20).then_some(t)
    })
    .unwrap_or_else(|| panic!("acknowledged messages were lost; relay log:\n{}", s.relay.log()));
    // The relay's QUIC keys outlived it: the node's next packet on its old connection was answered
    // with a stateless reset, not left to time out.
    assert!(s.node.log().contains("connection lost: reset by peer"), "node log:\n{}", s.node.log());
    let texts: std::collections::BTreeSet<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts.len(), 20, "every message once");

    // The service replica's SQL tables, rebuilt from its documents: never beside a running relay.
    let head = crate::sync::owner_when_synced_at(&s.relay.http);
    // Settled: the bot's replies sent, nothing moving for half a second.
    let seen = || {
        let c = conversation_of(&head, customer)?;
        let t = thread(&head, c["id"].as_str()?);
        let m = t["messages"].as_array()?;
        let settled = m.iter().filter(|m| m["direction"] == "in").count() == 20
            && m.iter().all(|m| m["direction"] == "in" || m["status"] != "queued");
        settled.then_some((c, t))
    };
    let before = wait_for(LONG, || {
        let a = seen()?;
        std::thread::sleep(Duration::from_millis(500));
        (seen()? == a).then_some(a)
    })
    .unwrap_or_else(|| panic!("head office never saw the conversation settle; relay log:\n{}", s.relay.log()));
    let busy = s.relay.cli(&["reindex"]);
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(!busy.status.success() && err.contains("a dashoffice-relay is serving"), "{err}");
    s.relay.kill9();
    let bad = s.relay.cli(&["reindex", "--shop", "no-such-shop"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("--shop: this relay has no replica of shop no-such-shop"), "{err}");
    let out = s.relay.cli(&["reindex"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reindex failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("reindexed ") && stdout.contains(" records of shop "), "{stdout}");
    s.relay.restart();
    // Head office sees the same conversation, and the bot, which reads the conversation from
    // those tables, files the next message in it.
    let head = crate::sync::owner_when_synced_at(&s.relay.http);
    let c = conversation_of(&head, customer).expect("head office sees the conversation after the reindex");
    assert_eq!(c, before.0, "the conversation as head office saw it before the reindex");
    assert_eq!(thread(&head, c["id"].as_str().unwrap()), before.1, "its messages as before the reindex");
    wa::deliver(&s.relay.http, &wa::text(customer, "Dora", "wamid.K20", "mensaje 20"));
    wait_for(LONG, || {
        let c2 = conversation_of(&head, customer)?;
        let t = thread(&head, c2["id"].as_str()?);
        let inbound = t["messages"].as_array()?.iter().filter(|m| m["direction"] == "in").count();
        (inbound == 21 && c2["id"] == c["id"]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!("the message after the reindex never reached the conversation; relay log:\n{}", s.relay.log())
    });
}

/// Questions from four clients, with WhatsApp's delivery reports coming back while more
/// questions arrive: every reply ends delivered on the branch's node, and none is sent twice.
/// (Under a real burst the replies' "sent" marks wait for a pause, and a report that comes first
/// marks its reply itself; the unit test `a_report_for_a_reply_whose_mark_waits_marks_it_and_applies`
/// covers that path, which a debug build here does not reliably reach. The counters printed say
/// which path this run took.)
#[test]
fn delivery_reports_during_a_burst_find_their_replies() {
    let s = shop();
    let (n, customers) = (400, 20);
    let customer = |i: usize| format!("52155{:08}", 40_000 + i % customers);
    // WhatsApp reports each reply delivered as soon as it has it, while questions keep coming.
    let mut reported = std::collections::HashSet::new();
    let report = |reported: &mut std::collections::HashSet<String>| {
        for call in s.graph.sent() {
            let wamid = call.wamid.clone().unwrap_or_default();
            if reported.insert(wamid.clone()) {
                let to = call.body["to"].as_str().unwrap_or_default().to_string();
                wa::deliver(&s.relay.http, &wa::status(&wamid, "delivered", &to));
            }
        }
    };
    // Four clients post the questions (a backlog builds up, so the relay stays busy).
    std::thread::scope(|scope| {
        for k in 0..4 {
            let (http, customer) = (&s.relay.http, &customer);
            scope.spawn(move || {
                for i in (k..n).step_by(4) {
                    let q = wa::text(
                        &customer(i),
                        "Cliente",
                        &format!("wamid.BURST{i:04}"),
                        "¿Cuánto cuesta la camisa azul?",
                    );
                    wa::deliver(http, &q);
                }
            });
        }
        while reported.len() < n && s.graph.sent().len() < n {
            report(&mut reported);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    wait_for(LONG, || {
        report(&mut reported);
        (reported.len() >= n).then_some(())
    })
    .unwrap_or_else(|| panic!("{} of {n} replies sent; relay log:\n{}", reported.len(), s.relay.log()));
    // Each reply shows delivered on the branch's node.
    wait_for(LONG, || {
        let delivered: usize = (0..customers)
            .map(|i| {
                let Some(c) = conversation_of(&s.owner, &customer(i)) else { return 0 };
                let t = thread(&s.owner, c["id"].as_str().unwrap_or_default());
                let m = t["messages"].as_array().cloned().unwrap_or_default();
                m.iter().filter(|m| m["direction"] == "out" && m["status"] == "delivered").count()
            })
            .sum();
        (delivered == n).then_some(())
    })
    .unwrap_or_else(|| panic!("not every reply shows delivered; relay log:\n{}", s.relay.log()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.graph.sent().len(), n, "one send per reply, none twice");
    let metrics = reqwest::blocking::get(format!("{}/metrics", s.relay.http)).unwrap().text().unwrap();
    let counter = |name: &str| {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
    };
    println!(
        "reports that marked their reply: {:?}; reports kept for later: {:?}",
        counter("dashoffice_whatsapp_marked_by_report_total"),
        counter("dashoffice_whatsapp_reports_kept_total")
    );
}
