//! Bad input of every kind gets a 4xx answer with the one JSON error body
//! (`{"error":{"code","message","field"?,"rule"?}}`), never a 500; and a rejected write leaves no
//! trace: the whole store reads the same before and after.

use serde_json::{Value, json};

use dashoffice_tests::{Node, assert_field_error, id};

#[test]
fn order_line_errors_name_the_line_and_write_nothing() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("ERR-1", "10"));
    let off = id(&api
        .post("/api/v1/products", &json!({ "sku": "ERR-OFF", "name": "Fuera de venta", "price": "1", "active": false }))
        .ok(201));
    let usd = id(&api
        .post("/api/v1/products", &json!({ "sku": "ERR-USD", "name": "En dólares", "price": "1", "currency": "USD" }))
        .ok(201));
    let gone = id(&api.product("ERR-GONE", "1"));
    api.delete(&format!("/api/v1/products/{gone}")).ok(200);
    let c = id(&api.customer("Cliente"));
    let before = api.snapshot();

    let order = |lines: Value| api.post("/api/v1/orders", &json!({ "customer_id": c, "lines": lines }));
    let e = assert_field_error(
        order(json!([{ "product_id": "no-such-product", "quantity": 1 }])),
        422,
        "validation",
        "lines[0].product_id",
    );
    assert_eq!(e["rule"], "exists");
    assert_field_error(order(json!([{ "product_id": p, "quantity": -1 }])), 422, "validation", "lines[0].quantity");
    assert_field_error(order(json!([{ "product_id": p, "quantity": 0 }])), 422, "validation", "lines[0].quantity");
    assert_field_error(
        order(json!([{ "product_id": p, "quantity": 1 }, { "product_id": "nope", "quantity": 1 }])),
        422,
        "validation",
        "lines[1].product_id",
    );
    assert_field_error(order(json!([])), 422, "validation", "lines");
    assert_field_error(
        order(json!([{ "product_id": p, "quantity": 1, "unit_price": "-1" }])),
        422,
        "validation",
        "lines[0].unit_price",
    );
    assert_field_error(
        order(json!([{ "product_id": p, "quantity": 1, "unit_price": "cheap" }])),
        422,
        "validation",
        "lines[0].unit_price",
    );
    // Past any real price (and past what a total can hold): refused like any other rule.
    let e = assert_field_error(
        order(json!([{ "product_id": p, "quantity": 2, "unit_price": "79228162514264337593543950335" }])),
        422,
        "validation",
        "lines[0].unit_price",
    );
    assert_eq!(e["rule"], "max");
    assert_eq!(
        assert_field_error(
            order(json!([{ "product_id": off, "quantity": 1 }])),
            422,
            "validation",
            "lines[0].product_id"
        )["rule"],
        "active"
    );
    assert_field_error(order(json!([{ "product_id": gone, "quantity": 1 }])), 422, "validation", "lines[0].product_id");
    let e = assert_field_error(
        order(json!([{ "product_id": p, "quantity": 1 }, { "product_id": usd, "quantity": 1 }])),
        422,
        "validation",
        "lines[1].product_id",
    );
    assert_eq!(e["rule"], "currency", "one order, one currency: {e}");

    // Every broken rule is listed, for forms that show each next to its input.
    let e = order(json!([{ "product_id": "x", "quantity": 0 }, { "product_id": p, "quantity": -5 }]))
        .err(422, "validation");
    let mut fields: Vec<&str> = e["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["lines[0].product_id", "lines[0].quantity", "lines[1].quantity"]);

    let line = json!([{ "product_id": p, "quantity": 1 }]);
    let with = |extra: Value| {
        let mut body = json!({ "customer_id": c, "lines": line });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api.post("/api/v1/orders", &body)
    };
    assert_field_error(with(json!({ "customer_id": "nobody" })), 422, "not_found", "customer_id");
    assert_field_error(with(json!({ "branch_id": "nowhere" })), 422, "not_found", "branch_id");
    assert_field_error(with(json!({ "seller_id": "nobody" })), 422, "not_found", "seller_id");
    assert_field_error(with(json!({ "notes": "x".repeat(5001) })), 422, "validation", "notes");

    assert_eq!(api.snapshot(), before, "a rejected order wrote something");
    // Nor did a rejected order use up a number.
    let first = api.order(&c, &[(&p, 1)]);
    assert!(first["number"].as_str().unwrap().ends_with("-000001"), "first number: {}", first["number"]);
}

#[test]
fn rule_errors_on_every_entity_write_nothing() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("DUP-1", "10"));
    api.product("DUP-2", "10");
    let c = id(&api.customer("Cliente"));
    let before = api.snapshot();

    let product = |extra: Value| {
        let mut body = json!({ "sku": "NEW-1", "name": "Nuevo", "price": "10" });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api.post("/api/v1/products", &body)
    };
    for (extra, field, rule) in [
        (json!({ "currency": "mxn" }), "currency", "iso4217"),
        (json!({ "currency": "XXZ" }), "currency", "iso4217"),
        (json!({ "currency": "PESOS" }), "currency", "iso4217"),
        (json!({ "price": "-1" }), "price", "min"),
        (json!({ "price": -0.5 }), "price", "min"),
        (json!({ "price": "abc" }), "price", "decimal"),
        (json!({ "price": "1.123456" }), "price", "scale"),
        (json!({ "price": "2000000000" }), "price", "max"),
        (json!({ "tax_rate": "16" }), "tax_rate", "range"),
        (json!({ "tax_rate": "-0.1" }), "tax_rate", "range"),
        (json!({ "sku": "a b" }), "sku", "format"),
        (json!({ "sku": "" }), "sku", "length"),
        (json!({ "name": "   " }), "name", "required"),
        (json!({ "name": "x".repeat(201) }), "name", "max_length"),
        (json!({ "tags": [""] }), "tags[0]", "length"),
    ] {
        let e = assert_field_error(product(extra.clone()), 422, "validation", field);
        assert_eq!(e["rule"], rule, "{extra}: {e}");
    }
    let dup = assert_field_error(product(json!({ "sku": "DUP-1" })), 409, "conflict", "sku");
    assert_eq!(dup["rule"], "unique");
    assert_field_error(product(json!({ "sku": " DUP-1 " })), 409, "conflict", "sku");
    assert_field_error(api.patch(&format!("/api/v1/products/{p}"), &json!({ "sku": "DUP-2" })), 409, "conflict", "sku");
    assert_field_error(
        api.patch(&format!("/api/v1/products/{p}"), &json!({ "currency": "mxn", "name": "Cambiado" })),
        422,
        "validation",
        "currency",
    );
    api.patch("/api/v1/products/nope", &json!({ "name": "x" })).err(404, "not_found");

    let customer = |body: Value| api.post("/api/v1/customers", &body);
    assert_field_error(customer(json!({ "name": "A", "phone": "hola" })), 422, "validation", "phone");
    assert_field_error(customer(json!({ "name": "A", "phone": "123" })), 422, "validation", "phone");
    assert_field_error(customer(json!({ "name": "A", "email": "ana@shop" })), 422, "validation", "email");
    assert_field_error(customer(json!({ "name": "" })), 422, "validation", "name");
    assert_field_error(customer(json!({ "name": "A", "wa_id": "abc" })), 422, "validation", "wa_id");
    assert_field_error(customer(json!({ "name": "A", "tax_id": "Juan Pérez" })), 422, "validation", "tax_id");
    assert_field_error(customer(json!({ "name": "A", "address": "1\n2\n3\n4" })), 422, "validation", "address");
    assert_field_error(
        api.patch(&format!("/api/v1/customers/{c}"), &json!({ "phone": "123", "name": "Nuevo" })),
        422,
        "validation",
        "phone",
    );
    assert_field_error(
        api.post(&format!("/api/v1/customers/{c}/merge"), &json!({ "from_id": "nobody" })),
        422,
        "not_found",
        "from_id",
    );

    let stock = |path: &str, body: Value| api.post(path, &body);
    stock("/api/v1/products/nope/stock", json!({ "delta": 1, "reason": "receipt" })).err(404, "not_found");
    let sp = format!("/api/v1/products/{p}/stock");
    assert_field_error(stock(&sp, json!({ "delta": 1, "reason": "  " })), 422, "validation", "reason");
    assert_field_error(
        stock(&sp, json!({ "delta": 2_000_000_000_i64, "reason": "receipt" })),
        422,
        "validation",
        "delta",
    );
    assert_field_error(
        stock(&sp, json!({ "delta": 1, "reason": "receipt", "branch_id": "nowhere" })),
        422,
        "not_found",
        "branch_id",
    );

    let staff = |extra: Value| {
        let mut body =
            json!({ "name": "Nuevo", "email": "nuevo@tienda.mx", "role": "support", "password": "12345678" });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api.post("/api/v1/staff", &body)
    };
    assert_field_error(staff(json!({ "password": "short" })), 422, "validation", "password");
    assert_field_error(staff(json!({ "email": "nuevo" })), 422, "validation", "email");
    assert_field_error(staff(json!({ "branch_id": "nowhere" })), 422, "not_found", "branch_id");
    assert_field_error(staff(json!({ "role": "admin" })), 400, "malformed_json", "role");
    assert_field_error(
        api.post("/api/v1/branches", &json!({ "code": "X", "name": "Equis" })),
        422,
        "validation",
        "code",
    );
    assert_field_error(api.patch("/api/v1/shop", &json!({ "currency": "mxn" })), 422, "validation", "currency");
    assert_field_error(api.get("/api/v1/staff?role=admin"), 422, "validation", "role");
    // A wrong fiscal detail beside a right one: nothing of the request is written.
    assert_field_error(
        api.patch("/api/v1/shop", &json!({ "legal_name": "Nueva S.A.", "tax_id": "RFC<script>1" })),
        422,
        "validation",
        "tax_id",
    );
    assert_field_error(api.patch("/api/v1/shop", &json!({ "phone": "tel" })), 422, "validation", "phone");
    assert_field_error(api.patch("/api/v1/shop", &json!({ "email": "ventas@" })), 422, "validation", "email");
    assert_field_error(
        api.post("/api/v1/branches", &json!({ "code": "NTE", "name": "Norte", "address": "x".repeat(101) })),
        422,
        "validation",
        "address",
    );

    assert_eq!(api.snapshot(), before, "a rejected write wrote something");
    assert_eq!(api.get(&format!("/api/v1/products/{p}/stock")).ok(200)[0]["adjusted"], 0);
}

#[test]
fn concurrent_creates_of_one_sku_make_one_product() {
    let node = Node::start();
    let api = node.owner();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let api = api.clone();
                s.spawn(move || {
                    api.post(
                        "/api/v1/products",
                        &json!({ "sku": "RACE-1", "name": format!("Carrera {i}"), "price": "1" }),
                    )
                    .status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "statuses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "statuses: {statuses:?}");
    let all = api.list_all("/api/v1/products?archived=true");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["sku_conflict"], false);
}

#[test]
fn malformed_bodies_are_400_naming_the_field() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("MAL-1", "10"));
    let c = id(&api.customer("Cliente"));
    let o = id(&api.order(&c, &[(&p, 1)]));
    let before = api.snapshot();
    let raw = |path: &str, body: &str| api.post_raw(path, Some("application/json"), body);

    for body in [r#"{"sku": "A", "#, "hola", "", "[]", "null"] {
        let e = raw("/api/v1/products", body).err(400, "malformed_json");
        assert!(e.get("field").is_none(), "{body:?} blames a field: {e}");
    }
    let unknown = assert_field_error(
        raw("/api/v1/products", r#"{"sku": "A", "name": "a", "price": "1", "colour": "red"}"#),
        400,
        "malformed_json",
        "colour",
    );
    assert_eq!(unknown["rule"], "unknown_field");
    for (path, body, field) in [
        ("/api/v1/products", json!({ "sku": "A", "name": "a", "price": true }), "price"),
        ("/api/v1/products", json!({ "sku": "A", "name": 5, "price": "1" }), "name"),
        ("/api/v1/products", json!({ "sku": "A", "name": "a", "price": "1", "active": "yes" }), "active"),
        ("/api/v1/products", json!({ "sku": "A", "name": "a", "price": "1", "tags": "a" }), "tags"),
        (
            "/api/v1/orders",
            json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": "x" }] }),
            "lines[0].quantity",
        ),
        (
            "/api/v1/orders",
            json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": 1.5 }] }),
            "lines[0].quantity",
        ),
        ("/api/v1/orders", json!({ "customer_id": c, "lines": {} }), "lines"),
        (&format!("/api/v1/orders/{o}/transitions"), json!({ "to": "shipped" }), "to"),
        (&format!("/api/v1/products/{p}/stock"), json!({ "delta": "ten", "reason": "receipt" }), "delta"),
    ] {
        let e = assert_field_error(api.post(path, &body), 400, "malformed_json", field);
        assert_eq!(e["rule"], "type", "{body}: {e}");
    }
    for (path, body, field) in [
        ("/api/v1/products", json!({ "name": "a", "price": "1" }), "sku"),
        ("/api/v1/orders", json!({ "lines": [{ "product_id": p, "quantity": 1 }] }), "customer_id"),
        ("/api/v1/orders", json!({ "customer_id": c, "lines": [{ "quantity": 1 }] }), "lines[0].product_id"),
        ("/api/v1/customers", json!({ "phone": "55 1234 5678" }), "name"),
        (&format!("/api/v1/products/{p}/stock"), json!({ "reason": "receipt" }), "delta"),
    ] {
        let e = assert_field_error(api.post(path, &body), 400, "malformed_json", field);
        assert_eq!(e["rule"], "required", "{body}: {e}");
    }
    assert_eq!(api.snapshot(), before, "a malformed request wrote something");
}

/// A body is one JSON value: anything after it makes the body malformed, as `serde_json::from_slice`
/// would say; it must not be ignored.
#[test]
fn trailing_data_after_the_json_value_is_malformed() {
    let node = Node::start();
    let api = node.owner();
    for body in [
        r#"{"sku": "T-1", "name": "a", "price": "1"} trailing"#,
        r#"{"sku": "T-2", "name": "a", "price": "1"}{"sku": "T-3"}"#,
    ] {
        api.post_raw("/api/v1/products", Some("application/json"), body).err(400, "malformed_json");
    }
    assert!(api.list_all("/api/v1/products?archived=true").is_empty(), "a malformed body was stored");
}

/// `parse_decimal` promises to reject exponents ("1e3"): amounts are written out in full.
#[test]
fn amounts_with_exponents_are_rejected() {
    let node = Node::start();
    let api = node.owner();
    for price in ["1e3", "1E-2"] {
        let e = assert_field_error(
            api.post("/api/v1/products", &json!({ "sku": "EXP-1", "name": "a", "price": price })),
            422,
            "validation",
            "price",
        );
        assert_eq!(e["rule"], "decimal", "{price}: {e}");
    }
    assert!(api.list_all("/api/v1/products?archived=true").is_empty());
}

/// `price` is the one required field typed as a decimal; its absence must be reported like any
/// other missing field, not as a type error without a field.
#[test]
fn a_missing_decimal_field_is_named_like_any_other() {
    let node = Node::start();
    let api = node.owner();
    let e = assert_field_error(
        api.post("/api/v1/products", &json!({ "sku": "A", "name": "a" })),
        400,
        "malformed_json",
        "price",
    );
    assert_eq!(e["rule"], "required", "{e}");
    assert!(api.list_all("/api/v1/products?archived=true").is_empty());
}

/// A nested unknown field is named with its path, like nested missing fields and type errors.
#[test]
fn a_nested_unknown_field_is_named_with_its_path() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("NEST-1", "10"));
    let c = id(&api.customer("Cliente"));
    let body = json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": 1, "discount": "5" }] });
    let e = assert_field_error(api.post("/api/v1/orders", &body), 400, "malformed_json", "lines[0].discount");
    assert_eq!(e["rule"], "unknown_field");
    assert!(api.list_all("/api/v1/orders?archived=true").is_empty());
}

#[test]
fn http_level_errors_are_json_too() {
    let node = Node::start();
    let api = node.owner();
    let anon = node.anon();
    let p = id(&api.product("HTTP-1", "10"));
    api.product("HTTP-2", "11");
    let before = api.snapshot();

    // Over 1 MiB: refused whole. Just under: read, and judged by the rules.
    let big = json!({ "sku": "BIG", "name": "Grande", "price": "1", "description": "x".repeat(1024 * 1024) });
    api.post("/api/v1/products", &big).err(413, "payload_too_large");
    let under = json!({ "sku": "BIG", "name": "Grande", "price": "1", "description": "x".repeat(1000 * 1000) });
    assert_field_error(api.post("/api/v1/products", &under), 422, "validation", "description");

    let good = json!({ "sku": "CT-1", "name": "a", "price": "1" }).to_string();
    api.post_raw("/api/v1/products", Some("text/plain"), good.clone()).err(415, "unsupported_media_type");
    api.post_raw("/api/v1/products", Some("application/x-www-form-urlencoded"), "sku=CT-1&name=a&price=1")
        .err(415, "unsupported_media_type");
    api.post_raw("/api/v1/products", None, good.clone()).err(415, "unsupported_media_type");
    // The framework's own refusals are JSON too: a path that is not UTF-8, a CSV over its limit.
    let e = api.get("/api/v1/orders/%FF").err(400, "malformed");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("path"), Some("utf8")), "{e}");
    let e = api
        .post_raw("/api/v1/products/import", Some("text/csv"), vec![b'a'; 64 * 1024 * 1024 + 1])
        .err(413, "payload_too_large");
    assert_eq!(e["field"], "body");

    for (query, param) in
        [("limit=abc", "limit"), ("limit=-1", "limit"), ("active=maybe", "active"), ("archived=2", "archived")]
    {
        let e = api.get(&format!("/api/v1/products?{query}")).err(400, "bad_query");
        assert!(e["message"].as_str().unwrap().contains(param), "{query}: the message does not name {param}: {e}");
    }
    for (path, field) in [
        ("/api/v1/products?limit=0", "limit"),
        ("/api/v1/products?limit=501", "limit"),
        ("/api/v1/products?sort=colour", "sort"),
        ("/api/v1/products?cursor=not-a-cursor", "cursor"),
        ("/api/v1/orders?status=shipped", "status"),
        ("/api/v1/customers?sort=price", "sort"),
    ] {
        assert_field_error(api.get(path), 422, "validation", field);
    }
    // A cursor of one sort order is not a cursor of another.
    let page = api.get("/api/v1/products?limit=1").ok(200);
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_field_error(
        api.get(&format!("/api/v1/products?limit=1&sort=price&cursor={cursor}")),
        422,
        "validation",
        "cursor",
    );

    for path in ["/api/v1/nope", "/api/v1/products/x/y", "/api/v2/products", "/nope.js"] {
        api.get(path).err(404, "not_found");
        anon.get(path).err(404, "not_found");
    }
    // Any other page address belongs to the web UI (its own router shows "not found").
    let page = anon.get("/nope");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    // index.html is revalidated; the build's files (assets/<hash>/, the page modules among them)
    // are cached for good, and a file the build does not have is a JSON 404, never index.html.
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let app = page.text.split('"').find(|s| s.ends_with("/app.js")).expect("index.html names app.js");
    let build = app.trim_end_matches("/app.js");
    assert!(build.starts_with("/assets/"), "{build}");
    let js = anon.get(&format!("{build}/app.js"));
    assert_eq!(js.status, 200, "{build}/app.js: {}", js.text);
    assert!(js.header("content-type").is_some_and(|c| c.starts_with("text/javascript")));
    assert_eq!(js.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let split = anon.get(&format!("{build}/__wasm_split.js"));
    assert_eq!(split.status, 200, "the page modules' loader is served");
    let module = split.text.split('"').find(|s| s.ends_with(".wasm")).expect("a page module in the loader");
    let wasm = anon.get(&format!("{build}/{}", module.trim_start_matches("./")));
    assert_eq!((wasm.status, wasm.header("content-type")), (200, Some("application/wasm")));
    anon.get(&format!("{build}/split_gone.wasm")).err(404, "not_found");
    for (method, path) in [
        (reqwest::Method::PUT, "/api/v1/products"),
        (reqwest::Method::DELETE, "/api/v1/products"),
        (reqwest::Method::POST, "/healthz"),
        (reqwest::Method::GET, "/api/v1/auth/login"),
        (reqwest::Method::PUT, &format!("/api/v1/products/{p}")),
    ] {
        api.send(method, path, None, None).err(405, "method_not_allowed");
    }
    api.get("/api/v1/orders/nope").err(404, "not_found");
    api.get("/api/v1/customers/nope").err(404, "not_found");
    api.get("/api/v1/branches/nope").err(404, "not_found");
    api.get("/api/v1/staff/nope").err(404, "not_found");
    api.patch("/api/v1/customers/nope", &json!({ "name": "x" })).err(404, "not_found");
    api.delete("/api/v1/branches/nope").err(404, "not_found");
    api.post("/api/v1/orders/nope/transitions", &json!({ "to": "confirmed" })).err(404, "not_found");

    let csv =
        |query: &str, body: &str| api.post_raw(&format!("/api/v1/products/import{query}"), Some("text/csv"), body);
    assert_field_error(csv("?mode=some", "sku,name,price\nA,a,1\n"), 422, "validation", "mode");
    assert_field_error(csv("", "sku,name,price,colour\nA,a,1,red\n"), 422, "validation", "file");
    assert_field_error(csv("", "name,price\na,1\n"), 422, "validation", "file");
    assert_field_error(csv("", ""), 422, "validation", "file");

    assert_eq!(api.snapshot(), before, "a rejected request wrote something");
}
