//! Roles as the API enforces them: a seller sells in their own branch and never changes prices,
//! support edits customers but deletes nothing, a manager may, and an archived account is locked
//! out (its token stops working once the 5-second session cache lets go).

use std::time::Duration;

use serde_json::json;

use dashoffice_tests::{Api, Node, assert_field_error, eventually, id};

/// A shop with a second branch (NOR) and one account of each role; sellers work in NOR.
struct Shop {
    node: Node,
    owner: Api,
    cen: String,
    nor: String,
    product: String,
    customer: String,
}

impl Shop {
    fn new() -> Self {
        let node = Node::start();
        let owner = node.owner();
        let cen = id(&owner.get("/api/v1/branches").ok(200)[0]);
        let nor = id(&owner.branch("NOR", "Norte"));
        owner.staff("manager@tienda.mx", "manager", None);
        owner.staff("seller@tienda.mx", "seller", Some(&nor));
        owner.staff("support@tienda.mx", "support", None);
        let product = id(&owner.product("ROL-1", "100"));
        let customer = id(&owner.customer("Cliente"));
        Self { node, owner, cen, nor, product, customer }
    }

    fn login(&self, role: &str) -> Api {
        self.node.api(&self.node.login(&format!("{role}@tienda.mx"), &format!("password-{role}")))
    }
}

#[test]
fn a_seller_sells_in_their_branch_and_cannot_touch_the_catalog() {
    let shop = Shop::new();
    let seller = shop.login("seller");
    let (p, c) = (&shop.product, &shop.customer);
    let before = shop.owner.snapshot();

    seller.post("/api/v1/products", &json!({ "sku": "S-1", "name": "x", "price": "1" })).err(403, "forbidden");
    seller.patch(&format!("/api/v1/products/{p}"), &json!({ "price": "1.00" })).err(403, "forbidden");
    seller.patch(&format!("/api/v1/products/{p}"), &json!({ "name": "Otro nombre" })).err(403, "forbidden");
    seller.delete(&format!("/api/v1/products/{p}")).err(403, "forbidden");
    seller
        .post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": 5, "reason": "receipt" }))
        .err(403, "forbidden");
    seller.post_raw("/api/v1/products/import", Some("text/csv"), "sku,name,price\nS-2,x,1\n").err(403, "forbidden");
    seller.post("/api/v1/branches", &json!({ "code": "SEL", "name": "x" })).err(403, "forbidden");
    seller.post("/api/v1/staff", &json!({ "name": "x", "email": "x@tienda.mx", "role": "seller", "branch_id": shop.nor, "password": "12345678" })).err(403, "forbidden");
    // A price override is a price change.
    let e = assert_field_error(
        seller.post(
            "/api/v1/orders",
            &json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": 1, "unit_price": "1.00" }] }),
        ),
        422,
        "validation",
        "lines[0].unit_price",
    );
    assert_eq!(e["rule"], "forbidden");
    // Not in another branch.
    seller
        .post(
            "/api/v1/orders",
            &json!({ "customer_id": c, "branch_id": shop.cen, "lines": [{ "product_id": p, "quantity": 1 }] }),
        )
        .err(403, "forbidden");
    assert_eq!(shop.owner.snapshot(), before, "a refused request wrote something");
    assert_eq!(shop.owner.get(&format!("/api/v1/products/{p}")).ok(200)["price"], "100.00");

    // Nor another branch's staff.
    let other = id(&shop.owner.staff("cen-seller@tienda.mx", "seller", Some(&shop.cen)));
    let listed = seller.get("/api/v1/staff").ok(200);
    assert!(
        listed["items"].as_array().unwrap().iter().all(|s| s["id"] != other.as_str()),
        "seller sees CEN staff: {listed}"
    );
    seller.get(&format!("/api/v1/staff?branch_id={}", shop.cen)).err(403, "forbidden");
    seller.get(&format!("/api/v1/staff/{other}")).err(404, "not_found");

    // What a seller may do: customers, and orders of their branch at the catalog price.
    seller.post("/api/v1/customers", &json!({ "name": "Nuevo cliente" })).ok(201);
    let mine = seller.order(c, &[(p, 2)]);
    assert_eq!(mine["branch_id"], shop.nor.as_str(), "a seller's orders go to their branch");
    assert_eq!(mine["total"], "232.00");
    assert!(mine["number"].as_str().unwrap().starts_with("NOR-"));
    seller.transition(&id(&mine), "confirmed");

    // Another branch's orders are invisible, not forbidden: the seller cannot tell they exist.
    let theirs = id(&shop.owner.order(c, &[(p, 1)]));
    assert_eq!(shop.owner.get(&format!("/api/v1/orders/{theirs}")).ok(200)["branch_id"], shop.cen.as_str());
    let listed: Vec<String> = seller.list_all("/api/v1/orders").iter().map(id).collect();
    assert_eq!(listed, [id(&mine)], "the seller's list shows only their branch");
    assert!(seller.list_all(&format!("/api/v1/orders?branch_id={}", shop.cen)).is_empty());
    seller.get(&format!("/api/v1/orders/{theirs}")).err(404, "not_found");
    seller.post(&format!("/api/v1/orders/{theirs}/transitions"), &json!({ "to": "confirmed" })).err(404, "not_found");
    seller.patch(&format!("/api/v1/orders/{theirs}"), &json!({ "notes": "x" })).err(404, "not_found");
    assert_eq!(shop.owner.get(&format!("/api/v1/orders/{theirs}")).ok(200)["status"], "draft");
    // The owner sees both.
    assert_eq!(shop.owner.list_all("/api/v1/orders").len(), 2);
}

#[test]
fn support_edits_customers_but_cannot_archive_and_a_manager_can() {
    let shop = Shop::new();
    let support = shop.login("support");
    let manager = shop.login("manager");
    let (p, c) = (&shop.product, &shop.customer);

    support.delete(&format!("/api/v1/customers/{c}")).err(403, "forbidden");
    support.delete(&format!("/api/v1/products/{p}")).err(403, "forbidden");
    support.post("/api/v1/products", &json!({ "sku": "SUP-1", "name": "x", "price": "1" })).err(403, "forbidden");
    support
        .post("/api/v1/orders", &json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": 1 }] }))
        .err(403, "forbidden");
    assert_eq!(shop.owner.get(&format!("/api/v1/customers/{c}")).ok(200)["archived"], false);
    let edited = support
        .patch(&format!("/api/v1/customers/{c}"), &json!({ "notes": "llamar por la tarde", "phone": "55 1234 5678" }))
        .ok(200);
    assert_eq!(edited["notes"], "llamar por la tarde");
    assert_eq!(edited["phone"], "+525512345678");
    support.post("/api/v1/customers", &json!({ "name": "Desde soporte" })).ok(201);
    // Support reads every branch.
    let cen_order = id(&shop.owner.order(c, &[(p, 1)]));
    support.get(&format!("/api/v1/orders/{cen_order}")).ok(200);

    let archived = manager.delete(&format!("/api/v1/customers/{c}")).ok(200);
    assert_eq!(archived["archived"], true);
    let mp = manager.post("/api/v1/products", &json!({ "sku": "MAN-1", "name": "Del gerente", "price": "10" })).ok(201);
    assert_eq!(
        manager.patch(&format!("/api/v1/products/{}", id(&mp)), &json!({ "price": "12.5" })).ok(200)["price"],
        "12.50"
    );
    manager
        .post(
            &format!("/api/v1/products/{p}/stock"),
            &json!({ "delta": 3, "reason": "receipt", "branch_id": shop.nor }),
        )
        .ok(200);
    // Only the owner changes the shop itself, or creates owners.
    manager.patch("/api/v1/shop", &json!({ "name": "Mía" })).err(403, "forbidden");
    manager
        .post(
            "/api/v1/staff",
            &json!({ "name": "x", "email": "boss@tienda.mx", "role": "owner", "password": "12345678" }),
        )
        .err(403, "forbidden");
    assert_eq!(shop.owner.patch("/api/v1/shop", &json!({ "name": "La Tienda" })).ok(200)["name"], "La Tienda");
}

#[test]
fn an_archived_account_cannot_log_in_and_its_token_stops_working() {
    let shop = Shop::new();
    let seller_token = shop.node.login("seller@tienda.mx", "password-seller");
    let seller = shop.node.api(&seller_token);
    let me = seller.get("/api/v1/auth/me").ok(200);
    assert_eq!(me["role"], "seller");

    let archived = shop.owner.delete(&format!("/api/v1/staff/{}", id(&me))).ok(200);
    assert_eq!(archived["archived"], true);

    let login = shop
        .node
        .anon()
        .post("/api/v1/auth/login", &json!({ "email": "seller@tienda.mx", "password": "password-seller" }));
    login.err(401, "unauthorized");
    // Sessions are cached for 5 s at most, so within 6 s the token must be refused everywhere.
    assert!(
        eventually(Duration::from_secs(6), || seller.get("/api/v1/auth/me").status == 401),
        "an archived account's token still works after 6 s"
    );
    seller.get("/api/v1/orders").err(401, "unauthorized");
    seller.post("/api/v1/customers", &json!({ "name": "x" })).err(401, "unauthorized");
    // Other accounts are untouched.
    shop.login("support").get("/api/v1/auth/me").ok(200);
    shop.owner.get("/api/v1/auth/me").ok(200);
}
