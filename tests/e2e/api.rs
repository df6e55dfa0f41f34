//! The API as a client sees it: login and tokens, health, metrics, the OpenAPI document, CRUD and
//! lists of every entity, cursor pagination, filters, customer merges, the order workflow, exact
//! money and stock.

use std::time::Duration;

use serde_json::{Value, json};

use dashoffice_tests::{Node, OWNER_EMAIL, OWNER_PASSWORD, assert_field_error, eventually, id};

#[test]
fn a_generated_owner_password_is_kept_in_a_private_file_and_never_printed_to_a_log() {
    let node = Node::start_without_owner_password();
    let file = node.data_dir().join("initial-owner-password");
    let password = std::fs::read_to_string(&file).expect("the first run wrote the owner's password").trim().to_string();
    assert_eq!(password.chars().count(), 16, "{password:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "the password file");
        assert_eq!(mode(&node.data_dir()), 0o700, "the data folder");
    }
    // Standard output is not a terminal here (under systemd it is the journal): only the path.
    let out = node.stdout();
    assert!(out.contains("initial-owner-password") && !out.contains(&password), "{out}");
    assert!(!node.log().contains(&password));
    let owner = node.api(&node.login(OWNER_EMAIL, &password));
    assert_eq!(owner.get("/api/v1/auth/me").ok(200)["email"], OWNER_EMAIL);
}

#[test]
fn login_gives_a_token_and_bad_credentials_or_tokens_get_401() {
    let node = Node::start();
    let anon = node.anon();

    let ok = anon.post("/api/v1/auth/login", &json!({ "email": OWNER_EMAIL, "password": OWNER_PASSWORD })).ok(200);
    let token = ok["token"].as_str().unwrap();
    assert!(token.len() >= 32, "token too short: {token}");
    assert_eq!(ok["user"]["email"], OWNER_EMAIL);
    assert_eq!(ok["user"]["role"], "owner");
    assert!(
        ok["user"].get("password_hash").is_none() && !ok.to_string().contains("argon2"),
        "login leaks the hash: {ok}"
    );
    assert!(ok["expires_at"].as_i64().unwrap() > ok["user"]["created_at"].as_i64().unwrap());
    // E-mails are case-insensitive.
    node.login(&OWNER_EMAIL.to_uppercase(), OWNER_PASSWORD);

    let me = node.api(token).get("/api/v1/auth/me").ok(200);
    assert_eq!(me["email"], OWNER_EMAIL);

    let wrong = anon.post("/api/v1/auth/login", &json!({ "email": OWNER_EMAIL, "password": "not-the-password" }));
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    let wrong = wrong.err(401, "unauthorized");
    // An unknown e-mail gets the same answer, so nobody can probe which accounts exist.
    let unknown = anon
        .post("/api/v1/auth/login", &json!({ "email": "nobody@tienda.mx", "password": OWNER_PASSWORD }))
        .err(401, "unauthorized");
    assert_eq!(wrong["message"], unknown["message"]);

    anon.get("/api/v1/products").err(401, "unauthorized");
    anon.get("/api/v1/auth/me").err(401, "unauthorized");
    node.api("garbage-token").get("/api/v1/products").err(401, "unauthorized");
    node.api("").get("/api/v1/products").err(401, "unauthorized");

    // Logout ends the session.
    let second = node.login(OWNER_EMAIL, OWNER_PASSWORD);
    node.api(&second).post_raw("/api/v1/auth/logout", None, Vec::new()).ok(204);
    assert!(
        eventually(Duration::from_secs(6), || node.api(&second).get("/api/v1/auth/me").status == 401),
        "a logged-out token still works"
    );
    // Other sessions stay.
    node.api(token).get("/api/v1/auth/me").ok(200);
}

#[test]
fn password_guessing_is_rate_limited_per_account() {
    let node = Node::start();
    let anon = node.anon();
    let target = "victim@tienda.mx";
    let mut limited = None;
    for attempt in 1..=15 {
        let r = anon.post("/api/v1/auth/login", &json!({ "email": target, "password": format!("guess-{attempt}") }));
        if r.status == 429 {
            limited = Some((attempt, r));
            break;
        }
        r.err(401, "unauthorized");
    }
    let (attempt, r) = limited.expect("15 wrong passwords in a row were never slowed down");
    assert!(attempt > 10, "limited after only {attempt} attempts");
    let e = r.err(429, "too_many_attempts");
    assert_eq!(e["field"], "email");
    // Other accounts are not locked out by someone guessing at one of them.
    node.login(OWNER_EMAIL, OWNER_PASSWORD);
}

#[test]
fn health_metrics_and_openapi_describe_the_node() {
    let node = Node::start();
    assert!(node.base().starts_with("http://127.0.0.1:") && !node.base().ends_with(":0"), "{}", node.base());
    let anon = node.anon();

    let health = anon.get("/healthz").ok(200);
    assert_eq!(health["status"], "ok");
    assert!(health["device"].as_str().is_some_and(|d| d.len() == 6), "device code: {health}");
    assert!(health["version"].as_str().is_some_and(|v| !v.is_empty()));

    let _ = node.owner().get("/api/v1/products").ok(200);
    let metrics = anon.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap_or_default().starts_with("text/plain"));
    for name in ["dashoffice_http_requests_total", "dashoffice_sqlite_bytes", "dashoffice_http_request_seconds"] {
        assert!(metrics.text.contains(name), "/metrics lacks {name}:\n{}", metrics.text);
    }
    assert!(
        metrics.text.contains("route=\"/api/v1/products\""),
        "requests are not labelled by route:\n{}",
        metrics.text
    );

    let doc = anon.get("/api/openapi.json").ok(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "not OpenAPI 3: {}", doc["openapi"]);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object(), "no bearer security scheme");
    let paths = doc["paths"].as_object().expect("paths");
    let routes = router_routes();
    assert!(routes.len() >= 40, "parsed too few routes from routes/mod.rs: {routes:?}");
    let mut missing = Vec::new();
    for (method, path) in &routes {
        if paths.get(path).and_then(|p| p.get(method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(missing.is_empty(), "routes of routes/mod.rs missing from /api/openapi.json: {missing:?}");
}

/// `(method, path)` of every route in core/api/src/routes/mod.rs, read from the source so a new
/// route without OpenAPI annotations fails this test.
fn router_routes() -> Vec<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/api/src/routes/mod.rs");
    let src = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let mut out = Vec::new();
    for chunk in src.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("a route path literal");
        for m in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{m}(");
            let called = chunk.match_indices(&call).any(|(i, _)| {
                i == 0 || !chunk.as_bytes()[i - 1].is_ascii_alphanumeric() && chunk.as_bytes()[i - 1] != b'_'
            });
            if called {
                out.push((m.to_string(), path.to_string()));
            }
        }
    }
    out
}

#[test]
fn products_crud_and_filters() {
    let node = Node::start();
    let api = node.owner();

    let body = json!({ "sku": "CAF-250", "name": "  Café molido 250 g ", "description": "Tueste medio", "price": "120.5",
                       "tax_rate": 0.16, "tags": ["Café", "bebida", "café"] });
    let p = api.post("/api/v1/products", &body).ok(201);
    assert_eq!(p["sku"], "CAF-250");
    assert_eq!(p["name"], "Café molido 250 g");
    assert_eq!(p["price"], "120.50", "prices show the currency's minor digits");
    assert_eq!(p["currency"], "MXN", "the shop's currency by default");
    assert_eq!(p["tax_rate"], "0.16");
    assert_eq!(p["active"], true);
    assert_eq!(p["tags"], json!(["bebida", "café"]), "tags are lower-cased, de-duplicated and sorted");
    assert_eq!(p["archived"], false);
    assert_eq!(p["sku_conflict"], false);
    let pid = id(&p);
    assert_eq!(api.get(&format!("/api/v1/products/{pid}")).ok(200), p);

    let te = api
        .post(
            "/api/v1/products",
            &json!({ "sku": "TE-VERDE", "name": "Té verde", "price": 45, "tags": ["bebida"], "active": false }),
        )
        .ok(201);
    assert_eq!(te["price"], "45.00");
    assert_eq!(te["tax_rate"], "0");
    let azucar = api
        .post("/api/v1/products", &json!({ "sku": "AZU-1K", "name": "Azúcar 1 kg", "price": "30", "currency": "USD" }))
        .ok(201);
    assert_eq!(azucar["currency"], "USD");

    let upd = api
        .patch(
            &format!("/api/v1/products/{pid}"),
            &json!({ "price": "99.9", "tags": ["oferta"], "description": "Nuevo" }),
        )
        .ok(200);
    assert_eq!(upd["price"], "99.90");
    assert_eq!(upd["tags"], json!(["oferta"]));
    assert_eq!(upd["description"], "Nuevo");
    assert_eq!(upd["name"], p["name"], "a PATCH leaves other fields alone");
    assert!(upd["updated_at"].as_i64() >= p["updated_at"].as_i64());
    assert_eq!(api.get(&format!("/api/v1/products/{pid}")).ok(200), upd);

    let skus = |path: &str| -> Vec<String> {
        api.list_all(path).iter().map(|p| p["sku"].as_str().unwrap().to_string()).collect()
    };
    // Default sort: name.
    assert_eq!(skus("/api/v1/products"), ["AZU-1K", "CAF-250", "TE-VERDE"]);
    assert_eq!(skus("/api/v1/products?q=verde"), ["TE-VERDE"], "q matches the name");
    assert_eq!(skus("/api/v1/products?q=CAF"), ["CAF-250"], "q matches the SKU");
    assert_eq!(skus("/api/v1/products?tag=bebida"), ["TE-VERDE"]);
    assert_eq!(skus("/api/v1/products?tag=OFERTA"), ["CAF-250"], "tag filter is case-insensitive");
    assert_eq!(skus("/api/v1/products?active=false"), ["TE-VERDE"]);
    assert_eq!(skus("/api/v1/products?active=true"), ["AZU-1K", "CAF-250"]);
    assert_eq!(skus("/api/v1/products?sort=sku"), ["AZU-1K", "CAF-250", "TE-VERDE"]);
    assert_eq!(skus("/api/v1/products?sort=-sku"), ["TE-VERDE", "CAF-250", "AZU-1K"]);

    let archived = api.delete(&format!("/api/v1/products/{}", id(&azucar))).ok(200);
    assert_eq!(archived["archived"], true);
    assert_eq!(skus("/api/v1/products"), ["CAF-250", "TE-VERDE"], "archived products leave the list");
    assert_eq!(skus("/api/v1/products?archived=true"), ["AZU-1K", "CAF-250", "TE-VERDE"]);
    assert_eq!(api.get(&format!("/api/v1/products/{}", id(&azucar))).ok(200)["archived"], true);
    // Its SKU is free again.
    api.post("/api/v1/products", &json!({ "sku": "AZU-1K", "name": "Azúcar nueva", "price": "31" })).ok(201);

    api.get("/api/v1/products/00000000-0000-0000-0000-000000000000").err(404, "not_found");
}

#[test]
fn cursor_pagination_visits_every_product_once_in_order() {
    let node = Node::start();
    let api = node.owner();
    // Created out of name and price order.
    let specs = [
        ("P-D", "Delta", "4.00"),
        ("P-A", "Alfa", "7.50"),
        ("P-G", "Golf", "1.25"),
        ("P-C", "Charlie", "12.00"),
        ("P-F", "Foxtrot", "3.10"),
        ("P-B", "Bravo", "0.99"),
        ("P-E", "Echo", "100.00"),
    ];
    for (sku, name, price) in specs {
        api.post("/api/v1/products", &json!({ "sku": sku, "name": name, "price": price })).ok(201);
    }

    let walk = |query: &str| -> (Vec<Value>, usize) {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut url = format!("/api/v1/products?limit=3{query}");
        loop {
            let page = api.get(&url).ok(200);
            pages += 1;
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 3, "page larger than the limit");
            seen.extend(items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("/api/v1/products?limit=3{query}&cursor={c}"),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        (seen, pages)
    };

    let (by_name, pages) = walk("");
    assert_eq!(pages, 3);
    let names: Vec<&str> = by_name.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alfa", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf"], "each once, in name order");

    let (by_price, pages) = walk("&sort=-price");
    assert_eq!(pages, 3);
    let prices: Vec<&str> = by_price.iter().map(|p| p["price"].as_str().unwrap()).collect();
    assert_eq!(prices, ["100.00", "12.00", "7.50", "4.00", "3.10", "1.25", "0.99"], "each once, by descending price");

    let (by_price_asc, _) = walk("&sort=price");
    let mut asc: Vec<Value> = by_price.clone();
    asc.reverse();
    assert_eq!(by_price_asc, asc);

    // Equal sort keys still page without loss or repetition (the id breaks ties).
    for i in 0..5 {
        api.post("/api/v1/products", &json!({ "sku": format!("SAME-{i}"), "name": "Same", "price": "5" })).ok(201);
    }
    let (all, _) = walk("&sort=price");
    let mut ids: Vec<String> = all.iter().map(id).collect();
    assert_eq!(ids.len(), 12);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "a product was listed twice");
}

#[test]
fn customers_crud_with_e164_phones() {
    let node = Node::start();
    let api = node.owner();

    let c = api
        .post("/api/v1/customers", &json!({ "name": "Ana López", "phone": "55 1234 5678", "email": " Ana@Shop.MX ", "tags": ["VIP"], "notes": "prefiere WhatsApp" }))
        .ok(201);
    assert_eq!(c["phone"], "+525512345678", "national numbers are read in the shop's region (MX)");
    assert_eq!(c["email"], "ana@shop.mx");
    assert_eq!(c["tags"], json!(["vip"]));
    assert_eq!(c["merged_into"], Value::Null);
    assert_eq!(c["merged_from"], json!([]));
    let cid = id(&c);
    assert_eq!(api.get(&format!("/api/v1/customers/{cid}")).ok(200), c);

    let intl = api
        .post("/api/v1/customers", &json!({ "name": "Beto", "phone": "+57 300 123 4567", "wa_id": "573001234567" }))
        .ok(201);
    assert_eq!(intl["phone"], "+573001234567");
    assert_eq!(intl["wa_id"], "573001234567");
    let plain = api.post("/api/v1/customers", &json!({ "name": "Carla" })).ok(201);
    assert_eq!(plain["phone"], Value::Null);

    let upd = api
        .patch(&format!("/api/v1/customers/{cid}"), &json!({ "phone": "(55) 8765-4321", "notes": "cliente frecuente" }))
        .ok(200);
    assert_eq!(upd["phone"], "+525587654321");
    assert_eq!(upd["notes"], "cliente frecuente");
    assert_eq!(upd["email"], "ana@shop.mx");
    let cleared = api.patch(&format!("/api/v1/customers/{cid}"), &json!({ "email": "" })).ok(200);
    assert_eq!(cleared["email"], Value::Null, "an empty string clears the e-mail");

    let names = |path: &str| -> Vec<String> {
        api.list_all(path).iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("/api/v1/customers"), ["Ana López", "Beto", "Carla"]);
    assert_eq!(names("/api/v1/customers?q=8765"), ["Ana López"], "q matches phone digits");
    assert_eq!(names("/api/v1/customers?tag=vip"), ["Ana López"]);
    assert_eq!(names("/api/v1/customers?sort=-name"), ["Carla", "Beto", "Ana López"]);

    assert_eq!(api.delete(&format!("/api/v1/customers/{}", id(&plain))).ok(200)["archived"], true);
    assert_eq!(names("/api/v1/customers"), ["Ana López", "Beto"]);
    assert_eq!(names("/api/v1/customers?archived=true").len(), 3);
}

#[test]
fn branches_and_staff_crud() {
    let node = Node::start();
    let api = node.owner();

    let branches = api.get("/api/v1/branches").ok(200);
    assert_eq!(branches.as_array().unwrap().len(), 1);
    assert_eq!(branches[0]["code"], "CEN", "the first branch from the default configuration");

    let nor = api.branch("NOR", "Norte");
    assert_eq!(nor["code"], "NOR");
    assert_eq!(nor["archived"], false);
    let nid = id(&nor);
    assert_eq!(api.get(&format!("/api/v1/branches/{nid}")).ok(200), nor);
    assert_eq!(api.patch(&format!("/api/v1/branches/{nid}"), &json!({ "name": "Norte 2" })).ok(200)["name"], "Norte 2");
    assert_field_error(
        api.post("/api/v1/branches", &json!({ "code": "NOR", "name": "Otra" })),
        409,
        "conflict",
        "code",
    );
    assert_field_error(
        api.post("/api/v1/branches", &json!({ "code": "nor", "name": "Otra" })),
        422,
        "validation",
        "code",
    );
    let sur = api.branch("SUR", "Sur");
    let codes = |path: &str| -> Vec<String> {
        api.get(path).ok(200).as_array().unwrap().iter().map(|b| b["code"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(codes("/api/v1/branches"), ["CEN", "NOR", "SUR"]);
    assert_eq!(api.delete(&format!("/api/v1/branches/{}", id(&sur))).ok(200)["archived"], true);
    assert_eq!(codes("/api/v1/branches"), ["CEN", "NOR"]);
    assert_eq!(codes("/api/v1/branches?archived=true"), ["CEN", "NOR", "SUR"]);

    let m = api.staff("Maria@Tienda.mx", "manager", None);
    assert_eq!(m["email"], "maria@tienda.mx");
    assert_eq!(m["role"], "manager");
    assert!(m.get("password").is_none() && m.get("password_hash").is_none(), "staff view leaks the password: {m}");
    let mid = id(&m);
    assert_eq!(api.get(&format!("/api/v1/staff/{mid}")).ok(200), m);
    let s = api.staff("sergio@tienda.mx", "seller", Some(&nid));
    assert_eq!(s["branch_id"], nid.as_str());
    assert_field_error(
        api.post(
            "/api/v1/staff",
            &json!({ "name": "X", "email": "maria@tienda.mx", "role": "support", "password": "12345678" }),
        ),
        409,
        "conflict",
        "email",
    );
    assert_field_error(
        api.post(
            "/api/v1/staff",
            &json!({ "name": "X", "email": "x@tienda.mx", "role": "seller", "password": "12345678" }),
        ),
        422,
        "validation",
        "branch_id",
    );

    let renamed = api.patch(&format!("/api/v1/staff/{mid}"), &json!({ "name": "María José" })).ok(200);
    assert_eq!(renamed["name"], "María José");
    // The new account can log in.
    node.login("maria@tienda.mx", "password-manager");

    let emails = |path: &str| -> Vec<String> {
        api.list_all(path).iter().map(|s| s["email"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(emails("/api/v1/staff?sort=email"), ["maria@tienda.mx", OWNER_EMAIL, "sergio@tienda.mx"]);
    assert_eq!(api.delete(&format!("/api/v1/staff/{mid}")).ok(200)["archived"], true);
    assert_eq!(emails("/api/v1/staff?sort=email"), [OWNER_EMAIL, "sergio@tienda.mx"]);
    assert_eq!(emails("/api/v1/staff?archived=true").len(), 3);
    let me = api.get("/api/v1/auth/me").ok(200);
    assert_field_error(api.delete(&format!("/api/v1/staff/{}", id(&me))), 409, "conflict", "id");
}

#[test]
fn customer_merge_gathers_orders_under_the_survivor() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("MRG-1", "10"));
    let keep = api.post("/api/v1/customers", &json!({ "name": "Ana", "tags": ["vip"], "notes": "uno" })).ok(201);
    let dup = api
        .post(
            "/api/v1/customers",
            &json!({ "name": "Ana L.", "phone": "55 1234 5678", "tags": ["mayoreo"], "notes": "dos" }),
        )
        .ok(201);
    let (kid, did) = (id(&keep), id(&dup));
    let o1 = id(&api.order(&kid, &[(&p, 1)]));
    let o2 = id(&api.order(&did, &[(&p, 2)]));
    let o3 = id(&api.order(&did, &[(&p, 3)]));
    // Orders carry their customer's name (the order list shows it).
    assert_eq!(api.get(&format!("/api/v1/orders/{o2}")).ok(200)["customer_name"], "Ana L.");
    let other = api.customer("Otro");
    api.order(&id(&other), &[(&p, 1)]);

    let merged = api.post(&format!("/api/v1/customers/{kid}/merge"), &json!({ "from_id": did })).ok(200);
    assert_eq!(merged["merged_from"], json!([did]));
    assert_eq!(merged["tags"], json!(["mayoreo", "vip"]));
    assert_eq!(merged["phone"], "+525512345678", "missing contact details are filled in");
    assert_eq!(merged["notes"], "uno\n---\ndos");
    assert_eq!(api.get(&format!("/api/v1/customers/{did}")).ok(200)["merged_into"], kid.as_str());

    let mut ids: Vec<String> = api.list_all(&format!("/api/v1/orders?customer_id={kid}")).iter().map(id).collect();
    ids.sort();
    let mut expected = vec![o1, o2, o3];
    expected.sort();
    assert_eq!(ids, expected, "the survivor's orders include the duplicate's");
    let names: Vec<Value> = api.list_all("/api/v1/customers").iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("Ana"), json!("Otro")], "merged duplicates leave the list");

    assert_field_error(
        api.post(&format!("/api/v1/customers/{kid}/merge"), &json!({ "from_id": did })),
        409,
        "conflict",
        "from_id",
    );
    assert_field_error(
        api.post(&format!("/api/v1/customers/{kid}/merge"), &json!({ "from_id": kid })),
        422,
        "validation",
        "from_id",
    );
    // A merge that would break a customer's own rules (over 20 tags together) is refused whole.
    let tags = |from: usize| (from..from + 12).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let a = id(&api.post("/api/v1/customers", &json!({ "name": "Tags A", "tags": tags(0) })).ok(201));
    let b = id(&api.post("/api/v1/customers", &json!({ "name": "Tags B", "tags": tags(100) })).ok(201));
    let e = assert_field_error(
        api.post(&format!("/api/v1/customers/{a}/merge"), &json!({ "from_id": b })),
        409,
        "conflict",
        "from_id",
    );
    assert_eq!(e["rule"], "max_items");
    assert_eq!(api.get(&format!("/api/v1/customers/{b}")).ok(200)["merged_into"], Value::Null);
}

#[test]
fn order_totals_are_exact_and_the_workflow_is_enforced() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api
        .post(
            "/api/v1/products",
            &json!({ "sku": "TAX-1", "name": "Diez cinco", "price": "10.05", "tax_rate": "0.16" }),
        )
        .ok(201));
    let q = id(&api.post("/api/v1/products", &json!({ "sku": "TAX-0", "name": "Redondeo", "price": "0.125" })).ok(201));
    let c = id(&api.customer("Cliente"));

    let o = api.order(&c, &[(&p, 3)]);
    assert_eq!(o["status"], "draft");
    assert_eq!(o["currency"], "MXN");
    assert_eq!(o["lines"][0]["unit_price"], "10.05");
    assert_eq!(o["lines"][0]["quantity"], 3);
    assert_eq!(o["lines"][0]["sku"], "TAX-1");
    // 3 × 10.05 = 30.15; 16 % of it is 4.824, rounded once per line to 4.82.
    assert_eq!((&o["subtotal"], &o["tax_total"], &o["total"]), (&json!("30.15"), &json!("4.82"), &json!("34.97")));
    assert_eq!(
        (&o["lines"][0]["subtotal"], &o["lines"][0]["tax"], &o["lines"][0]["total"]),
        (&json!("30.15"), &json!("4.82"), &json!("34.97"))
    );
    assert_eq!(o["transitions"], json!([]));

    // Two lines: amounts rounded per line (0.125 → 0.13, half away from zero), then summed.
    let two = api.order(&c, &[(&p, 3), (&q, 1)]);
    assert_eq!(
        (&two["subtotal"], &two["tax_total"], &two["total"]),
        (&json!("30.28"), &json!("4.82"), &json!("35.10"))
    );
    // A manager-or-owner price override.
    let over = api
        .post(
            "/api/v1/orders",
            &json!({ "customer_id": c, "lines": [{ "product_id": p, "quantity": 2, "unit_price": "9.99" }] }),
        )
        .ok(201);
    assert_eq!(
        (&over["subtotal"], &over["tax_total"], &over["total"]),
        (&json!("19.98"), &json!("3.20"), &json!("23.18"))
    );

    let oid = id(&o);
    // Lines change while the order is a draft.
    let edited = api
        .patch(
            &format!("/api/v1/orders/{oid}"),
            &json!({ "lines": [{ "product_id": p, "quantity": 1 }], "notes": "entregar lunes" }),
        )
        .ok(200);
    assert_eq!(edited["total"], "11.66");
    assert_eq!(edited["notes"], "entregar lunes");
    api.patch(&format!("/api/v1/orders/{oid}"), &json!({ "lines": [{ "product_id": p, "quantity": 3 }] })).ok(200);

    let illegal = assert_field_error(
        api.post(&format!("/api/v1/orders/{oid}/transitions"), &json!({ "to": "paid" })),
        409,
        "conflict",
        "to",
    );
    assert_eq!(illegal["rule"], "legal_transition");
    assert_eq!(
        api.get(&format!("/api/v1/orders/{oid}")).ok(200)["status"],
        "draft",
        "a refused transition changes nothing"
    );

    let mut last = Value::Null;
    for (i, to) in ["confirmed", "paid", "fulfilled", "delivered"].into_iter().enumerate() {
        last = api.transition(&oid, to);
        assert_eq!(last["status"], to);
        assert_eq!(last["transitions"].as_array().unwrap().len(), i + 1);
    }
    let steps: Vec<(String, String)> = last["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap().to_string(), t["to"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        steps,
        [("draft", "confirmed"), ("confirmed", "paid"), ("paid", "fulfilled"), ("fulfilled", "delivered")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(last["total"], "34.97", "totals survive the workflow");
    assert_eq!(api.get(&format!("/api/v1/orders/{oid}")).ok(200), last);
    // Lines are frozen after the draft.
    assert_field_error(
        api.patch(&format!("/api/v1/orders/{oid}"), &json!({ "lines": [{ "product_id": p, "quantity": 1 }] })),
        409,
        "conflict",
        "lines",
    );
    assert_field_error(
        api.post(&format!("/api/v1/orders/{oid}/transitions"), &json!({ "to": "cancelled" })),
        409,
        "conflict",
        "to",
    );
    assert_eq!(api.transition(&oid, "refunded")["status"], "refunded");
    assert_field_error(
        api.post(&format!("/api/v1/orders/{oid}/transitions"), &json!({ "to": "refunded" })),
        409,
        "conflict",
        "to",
    );

    let statuses = |path: &str| -> Vec<String> {
        api.list_all(path).iter().map(|o| o["status"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(statuses("/api/v1/orders?status=refunded"), ["refunded"]);
    assert_eq!(statuses("/api/v1/orders?status=draft").len(), 2);
    // A draft can be archived; it leaves the list.
    api.delete(&format!("/api/v1/orders/{}", id(&two))).ok(200);
    assert_eq!(statuses("/api/v1/orders").len(), 2);
}

#[test]
fn stock_goes_negative_and_is_flagged_then_cancel_returns_it() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api.product("STK-1", "5"));
    let c = id(&api.customer("Cliente"));
    let stock = |api: &dashoffice_tests::Api| -> Value {
        let rows = api.get(&format!("/api/v1/products/{p}/stock")).ok(200);
        assert_eq!(rows.as_array().unwrap().len(), 1, "one branch: {rows}");
        rows[0].clone()
    };

    let adj = api.post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": 10, "reason": "receipt" })).ok(200);
    assert_eq!(
        (adj["on_hand"].as_i64(), adj["adjusted"].as_i64(), adj["oversold"].as_bool()),
        (Some(10), Some(10), Some(false))
    );

    let o = id(&api.order(&c, &[(&p, 12)]));
    assert_eq!(stock(&api)["on_hand"], 10, "a draft holds no stock");
    api.transition(&o, "confirmed");
    let s = stock(&api);
    assert_eq!(
        (s["on_hand"].as_i64(), s["committed"].as_i64(), s["oversold"].as_bool()),
        (Some(-2), Some(12), Some(true)),
        "{s}"
    );
    let oversold: Vec<String> = api
        .list_all("/api/v1/stock?q=oversold")
        .iter()
        .map(|r| r["product_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(oversold, std::slice::from_ref(&p));
    // An order holding stock cannot be archived.
    assert_field_error(api.delete(&format!("/api/v1/orders/{o}")), 409, "conflict", "status");

    api.transition(&o, "cancelled");
    let s = stock(&api);
    assert_eq!(
        (s["on_hand"].as_i64(), s["committed"].as_i64(), s["oversold"].as_bool()),
        (Some(10), Some(0), Some(false)),
        "{s}"
    );
    assert!(api.list_all("/api/v1/stock?q=oversold").is_empty());

    let loss = api.post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": -3, "reason": "loss" })).ok(200);
    assert_eq!(loss["on_hand"], 7);
    assert_field_error(
        api.post(&format!("/api/v1/products/{p}/stock"), &json!({ "delta": 0, "reason": "count" })),
        422,
        "validation",
        "delta",
    );
}

#[test]
fn order_numbers_have_branch_device_sequence_and_increase() {
    let node = Node::start();
    let api = node.owner();
    let device = node.anon().get("/healthz").ok(200)["device"].as_str().unwrap().to_string();
    assert!(
        device.len() == 6 && device.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        "device code {device}"
    );
    let p = id(&api.product("NUM-1", "1"));
    let c = id(&api.customer("Cliente"));

    let numbers: Vec<String> =
        (0..3).map(|_| api.order(&c, &[(&p, 1)])["number"].as_str().unwrap().to_string()).collect();
    assert_eq!(numbers, (1..=3).map(|n| format!("CEN-{device}-{n:06}")).collect::<Vec<_>>());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "numbers increase: {numbers:?}");

    // Each branch has its own sequence.
    let nor = id(&api.branch("NOR", "Norte"));
    let n = api
        .post(
            "/api/v1/orders",
            &json!({ "customer_id": c, "branch_id": nor, "lines": [{ "product_id": p, "quantity": 1 }] }),
        )
        .ok(201);
    assert_eq!(n["number"], format!("NOR-{device}-000001"));
    assert_eq!(n["branch_id"], nor.as_str());
    assert_eq!(api.order(&c, &[(&p, 1)])["number"], format!("CEN-{device}-000004"));
    let found = api.list_all(&format!("/api/v1/orders?q={device}-000004"));
    assert_eq!(found.len(), 1, "q finds an order by number");
}

/// The web UI's live stream never carries the session in its URL: a cookie that only
/// `/api/v1/events` receives (HttpOnly, SameSite=Strict) opens it, and logging out ends it.
#[test]
fn the_live_stream_opens_with_a_cookie_instead_of_a_token_in_the_url() {
    let node = Node::start();
    let token = node.login(OWNER_EMAIL, OWNER_PASSWORD);
    let (cookie, status, first) = node.api(&token).open_events_with_cookie();
    for part in [&format!("dashoffice_events={token};"), "Path=/api/v1/events", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    let max_age: i64 = cookie.split("Max-Age=").nth(1).unwrap().parse().unwrap();
    assert!(max_age > 3600 && max_age <= 7 * 24 * 3600, "{cookie}");
    assert_eq!(status, 200);
    assert!(first.contains("hello"), "{first}");

    let http = reqwest::blocking::Client::new();
    let events = |cookie: &str| {
        http.get(format!("{}/api/v1/events", node.base()))
            .header("cookie", format!("dashoffice_events={cookie}"))
            .send()
            .unwrap()
    };
    let session = format!("{}/api/v1/events/session", node.base());
    assert_eq!(http.post(&session).send().unwrap().status(), 401);
    assert_eq!(http.post(&session).bearer_auth("garbage-token").send().unwrap().status(), 401);
    let refused = events("garbage-token");
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<serde_json::Value>().unwrap()["error"]["code"], "unauthorized");

    // Logging out removes the cookie and the session behind it.
    let out = http.post(format!("{}/api/v1/auth/logout", node.base())).bearer_auth(&token).send().unwrap();
    assert_eq!(out.status(), 204);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("dashoffice_events=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(events(&token).status(), 401);
}

#[test]
fn an_order_prints_as_a_pdf_sales_document() {
    let node = Node::start();
    let api = node.owner();
    let p = id(&api
        .post(
            "/api/v1/products",
            &json!({ "sku": "CAM-1", "name": "Camisa de algodón", "price": "250", "tax_rate": "0.16" }),
        )
        .ok(201));
    let c = id(&api.customer("José Núñez"));
    let o = api.order(&c, &[(&p, 2)]);
    let path = format!("/api/v1/orders/{}/invoice.pdf", id(&o));

    let r = api.get(&path);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    let number = o["number"].as_str().unwrap();
    assert!(r.header("content-disposition").is_some_and(|d| d.contains(&format!("{number}.pdf"))));
    let text = pdf_text(&r.bytes);
    for expected in ["Cotización", number, "José Núñez", "Camisa de algodón", "580.00 MXN", "Página 1 de 1"] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    let en = pdf_text(&api.get(&format!("{path}?lang=en")).bytes);
    assert!(en.contains("Quote") && en.contains("Unit price"), "{en}");

    // Bad input and unknown orders are JSON errors naming what is wrong.
    let e = api.get(&format!("{path}?lang=fr")).err(422, "validation");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("lang"), Some("one_of")), "{e}");
    api.get("/api/v1/orders/no-such-order/invoice.pdf").err(404, "not_found");
    node.anon().get(&path).err(401, "unauthorized");
}

#[test]
fn search_finds_records_by_their_words_and_catches_up_after_a_kill_9() {
    let mut node = Node::start();
    let api = node.owner();
    let p = id(&api
        .post("/api/v1/products", &json!({ "sku": "CAF-001", "name": "Café de Chiapas", "price": "180" }))
        .ok(201));
    let c = id(&api.customer("José Núñez"));
    let o = api.order(&c, &[(&p, 2)]);
    let hits = |api: &dashoffice_tests::Api, q: &str| -> Vec<(String, String)> {
        let r = api.get(&format!("/api/v1/search?q={}", urlencode(q))).ok(200);
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["kind"].as_str().unwrap().to_string(), h["link"].as_str().unwrap().to_string()))
            .collect()
    };
    let found = |api: &dashoffice_tests::Api, q: &str, want: (&str, String)| {
        eventually(Duration::from_secs(20), || hits(api, q).contains(&(want.0.to_string(), want.1.clone())))
    };
    assert!(found(&api, "cafe chiapaz", ("product", format!("/products/{p}"))), "{:?}", hits(&api, "cafe chiapaz"));
    assert!(found(&api, "JOSE nunez", ("customer", format!("/customers/{c}"))), "{:?}", hits(&api, "jose"));
    let number = o["number"].as_str().unwrap();
    assert!(found(&api, number, ("order", format!("/orders/{}", id(&o)))), "{:?}", hits(&api, number));
    let only = api.get("/api/v1/search?q=cafe&kinds=customer,order").ok(200);
    assert!(only["hits"].as_array().unwrap().iter().all(|h| h["kind"] != "product"), "{only}");

    // Acknowledged, then the process is killed before the index could follow: the next start
    // catches up from the database.
    let papaya = id(&api
        .post("/api/v1/products", &json!({ "sku": "PAP-001", "name": "Papaya maradol", "price": "28" }))
        .ok(201));
    node.kill9();
    node.start_again();
    let api = node.owner();
    assert!(found(&api, "maradol", ("product", format!("/products/{papaya}"))), "{:?}", hits(&api, "maradol"));

    // Bad input names the field and the rule; no session, no search.
    for (query, field, rule) in [
        ("", "q", "required"),
        ("?q=%C2%BF%3F", "q", "words"),
        ("?q=cafe&kinds=invoice", "kinds", "one_of"),
        ("?q=cafe&limit=0", "limit", "range"),
    ] {
        let e = assert_field_error(api.get(&format!("/api/v1/search{query}")), 422, "validation", field);
        assert_eq!(e["rule"], rule, "{query}: {e}");
    }
    node.anon().get("/api/v1/search?q=cafe").err(401, "unauthorized");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The text of a PDF as Poppler's pdftotext reads it (Debian's poppler-utils; `scripts/test`
/// installs it).
fn pdf_text(pdf: &[u8]) -> String {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF: {:?}", String::from_utf8_lossy(&pdf[..pdf.len().min(60)]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout".as_ref(), file.as_os_str(), "-".as_ref()])
        .output()
        .expect("pdftotext is missing: install poppler-utils (scripts/test installs it)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn support_tickets_are_opened_worked_on_and_closed_with_their_history() {
    let node = Node::start();
    let api = node.owner();
    let customer = id(&api.customer("Lucía Gómez"));
    let product = id(&api.product("TAZA-1", "85.50"));
    let order = api.order(&customer, &[(&product, 1)]);

    // Bad input names the field and the rule; nothing is written.
    let e = api.post("/api/v1/tickets", &json!({ "subject": "x" })).err(422, "validation");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("subject"), Some("length")), "{e}");
    let e = api.post("/api/v1/tickets", &json!({ "subject": "Taza rota", "priority": "asap" })).err(422, "validation");
    assert_eq!(e["field"], "priority", "{e}");
    let e = api.post("/api/v1/tickets", &json!({ "subject": "Taza rota", "order_id": "nope" })).err(422, "not_found");
    assert_eq!(e["field"], "order_id", "{e}");
    let e =
        api.post("/api/v1/tickets", &json!({ "subject": "Taza rota", "assignee_id": "nope" })).err(422, "not_found");
    assert_eq!(e["field"], "assignee_id", "{e}");
    let e = api.post("/api/v1/tickets", &json!({ "subject": "Taza rota", "urgency": 1 })).err(400, "malformed_json");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("urgency"), Some("unknown_field")), "{e}");
    assert_eq!(api.list_all("/api/v1/tickets").len(), 0);

    // Opened about an order: its customer is taken; a high priority is due within a day.
    let t = api
        .post(
            "/api/v1/tickets",
            &json!({ "subject": " La taza   llegó rota ", "description": "Manda foto por WhatsApp", "order_id": id(&order), "priority": "high" }),
        )
        .ok(201);
    let tid = id(&t);
    assert_eq!(t["subject"], "La taza llegó rota");
    assert!(t["number"].as_str().unwrap().starts_with("T-"), "{t}");
    assert_eq!((t["status"].as_str(), t["priority"].as_str()), (Some("open"), Some("high")));
    assert_eq!(
        (t["customer_id"].as_str(), t["customer_name"].as_str()),
        (Some(customer.as_str()), Some("Lucía Gómez"))
    );
    assert_eq!(t["order_number"], order["number"]);
    assert_eq!(t["due_at"].as_i64().unwrap() - t["created_at"].as_i64().unwrap(), 86_400_000);
    assert_eq!(t["overdue"], false);
    assert_eq!(t["assignee_id"], Value::Null);
    assert_eq!(api.get(&format!("/api/v1/tickets/{tid}")).ok(200), t);

    // Given to a seller, who works on it and comments.
    let branch = id(&api.get("/api/v1/branches").ok(200)[0]);
    let seller = api.staff("vende@tienda.mx", "seller", Some(&branch));
    let t = api
        .patch(&format!("/api/v1/tickets/{tid}"), &json!({ "assignee_id": id(&seller), "status": "in_progress" }))
        .ok(200);
    assert_eq!(t["assignee_name"], seller["name"]);
    assert_eq!(t["comments"].as_array().unwrap().len(), 1, "the status change is in the history: {t}");
    assert_eq!(t["comments"][0]["status"], "in_progress");
    let s = node.api(&node.login("vende@tienda.mx", "password-seller"));
    let e = s.post(&format!("/api/v1/tickets/{tid}/comments"), &json!({ "body": "  " })).err(422, "validation");
    assert_eq!(e["field"], "body", "{e}");
    // Lucía never wrote on WhatsApp: a comment cannot go to her there, and nothing is written.
    let e = s
        .post(&format!("/api/v1/tickets/{tid}/comments"), &json!({ "body": "Hola Lucía", "notify_customer": true }))
        .err(409, "conflict");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("notify_customer"), Some("no_conversation")), "{e}");
    let t = s.post(&format!("/api/v1/tickets/{tid}/comments"), &json!({ "body": "Enviamos otra taza hoy" })).ok(201);
    assert_eq!(t["comment_count"], 1);
    let last = &t["comments"][1];
    assert_eq!(
        (last["body"].as_str(), last["author_id"].as_str()),
        (Some("Enviamos otra taza hoy"), seller["id"].as_str())
    );
    api.post(
        "/api/v1/tickets",
        &json!({ "subject": "Pregunta por factura", "customer_id": customer, "priority": "low" }),
    )
    .ok(201);

    // Lists and filters.
    let numbers = |api: &dashoffice_tests::Api, q: &str| -> Vec<String> {
        api.list_all(&format!("/api/v1/tickets{q}"))
            .iter()
            .map(|t| t["subject"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(numbers(&api, ""), ["Pregunta por factura", "La taza llegó rota"], "newest first");
    assert_eq!(numbers(&s, "?assignee_id=me"), ["La taza llegó rota"]);
    assert_eq!(numbers(&api, "?assignee_id=none"), ["Pregunta por factura"]);
    assert_eq!(numbers(&api, "?status=in_progress"), ["La taza llegó rota"]);
    assert_eq!(numbers(&api, "?priority=low"), ["Pregunta por factura"]);
    assert_eq!(numbers(&api, &format!("?order_id={}", id(&order))), ["La taza llegó rota"]);
    assert_eq!(numbers(&api, &format!("?customer_id={customer}")).len(), 2);
    assert_eq!(numbers(&api, "?q=rota"), ["La taza llegó rota"]);
    assert_eq!(numbers(&api, "?q=lucia"), numbers(&api, ""), "the customer's name, without accents");
    assert_eq!(numbers(&api, "?sort=due_at"), ["La taza llegó rota", "Pregunta por factura"]);
    let summary = api.get("/api/v1/analytics/summary").ok(200);
    assert_eq!(
        (summary["tickets_active"].as_u64(), summary["tickets_overdue"].as_u64()),
        (Some(2), Some(0)),
        "{summary}"
    );
    // The top bar's search finds a ticket by its words and its customer's name.
    let link = format!("/tickets/{tid}");
    let ticket_hit = |q: &str| {
        api.get(&format!("/api/v1/search?q={q}&kinds=ticket")).ok(200)["hits"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["kind"] == "ticket" && h["link"] == link.as_str()))
    };
    assert!(eventually(Duration::from_secs(20), || ticket_hit("taza%20rota")), "search never found the ticket");
    assert!(ticket_hit("lucia"), "the customer's name finds her tickets");
    let e = api.get("/api/v1/tickets?status=pending").err(422, "validation");
    assert_eq!(e["field"], "status", "{e}");

    // Resolved, closed; a closed ticket only opens again.
    let t = api.patch(&format!("/api/v1/tickets/{tid}"), &json!({ "status": "resolved" })).ok(200);
    assert!(t["resolved_at"].as_i64().is_some(), "{t}");
    assert_eq!(numbers(&api, "?status=active"), ["Pregunta por factura"]);
    let summary = api.get("/api/v1/analytics/summary").ok(200);
    assert_eq!(
        (&summary["tickets_active"], &summary["tickets_opened"], &summary["tickets_resolved"]),
        (&json!(1), &json!(2), &json!(1)),
        "{summary}"
    );
    assert_eq!(summary["ticket_resolution_hours"], json!(0.0), "resolved within the second: {summary}");
    let t = api.patch(&format!("/api/v1/tickets/{tid}"), &json!({ "status": "closed" })).ok(200);
    assert_eq!(t["next"], json!(["open"]));
    let e = api.patch(&format!("/api/v1/tickets/{tid}"), &json!({ "status": "in_progress" })).err(422, "validation");
    assert_eq!((e["field"].as_str(), e["rule"].as_str()), (Some("status"), Some("transition")), "{e}");
    let t = api.patch(&format!("/api/v1/tickets/{tid}"), &json!({ "status": "open", "assignee_id": "" })).ok(200);
    assert_eq!((t["resolved_at"].clone(), t["assignee_id"].clone()), (Value::Null, Value::Null));
    let history: Vec<&str> = t["comments"].as_array().unwrap().iter().filter_map(|c| c["status"].as_str()).collect();
    assert_eq!(history, ["in_progress", "resolved", "closed", "open"]);
    api.get("/api/v1/tickets/no-such-ticket").err(404, "not_found");

    // Owners and managers export every ticket as CSV; a seller may not.
    let csv = api.get("/api/v1/tickets/export");
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(csv.header("content-type").is_some_and(|c| c.starts_with("text/csv")));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "number,subject,status,priority,customer,order,handled_by,opened_at,due_at,resolved_at,comments,description"
    );
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("La taza llegó rota") && l.contains("Lucía Gómez") && l.contains(",open,high,")),
        "{}",
        csv.text
    );
    s.get("/api/v1/tickets/export").err(403, "forbidden");

    // A seller of another branch follows the ticket too (tickets are shop-wide), without the
    // number of an order that is not their branch's.
    let north = id(&api.branch("NOR", "Norte"));
    api.staff("norte@tienda.mx", "seller", Some(&north));
    let n = node.api(&node.login("norte@tienda.mx", "password-seller"));
    let seen = n.get(&format!("/api/v1/tickets/{tid}")).ok(200);
    assert_eq!((seen["subject"].as_str(), seen["order_number"].clone()), (Some("La taza llegó rota"), Value::Null));
    assert_eq!(api.get(&format!("/api/v1/tickets/{tid}")).ok(200)["order_number"], order["number"]);
    let t = n.post(&format!("/api/v1/tickets/{tid}/comments"), &json!({ "body": "Lo vemos en Norte" })).ok(201);
    assert_eq!(t["order_number"], Value::Null);
}
