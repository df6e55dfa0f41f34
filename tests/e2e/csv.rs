//! CSV import and export of the catalog through the API and through the CLI (which refuses a data
//! folder that a running node holds), and the `reindex` maintenance command.

use std::path::Path;

use serde_json::{Value, json};

use dashoffice_tests::{Api, Node, id};

const HEADER: &str = "sku,name,description,price,currency,tax_rate,active,tags";

/// Four rows; the third (line 4 of the file, the header being line 1) has a bad price.
fn one_bad_row() -> String {
    [
        HEADER,
        "CSV-1,Café molido,250 g,120.5,MXN,0.16,true,Cafe|molido",
        r#"CSV-2,Té verde,"Con ""comillas"", y coma",45,,,,te"#,
        "CSV-3,Roto,,abc,,,,",
        "CSV-4,Azúcar,1 kg,30.00,MXN,0,no,",
        "",
    ]
    .join("\n")
}

fn import(api: &Api, mode: Option<&str>, body: &str) -> dashoffice_tests::Resp {
    let query = mode.map(|m| format!("?mode={m}")).unwrap_or_default();
    api.post_raw(&format!("/api/v1/products/import{query}"), Some("text/csv"), body)
}

fn export(api: &Api) -> String {
    let r = api.get("/api/v1/products/export");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/csv"), "{:?}", r.header("content-type"));
    r.text
}

/// The fields a CSV carries, per product, in SKU order.
fn catalog(api: &Api) -> Vec<Value> {
    api.list_all("/api/v1/products?sort=sku")
        .iter()
        .map(|p| {
            json!([
                p["id"],
                p["sku"],
                p["name"],
                p["description"],
                p["price"],
                p["currency"],
                p["tax_rate"],
                p["active"],
                p["tags"]
            ])
        })
        .collect()
}

#[test]
fn api_import_is_all_or_nothing_or_valid_rows_and_export_round_trips() {
    let node = Node::start();
    let api = node.owner();

    let report = import(&api, Some("all"), &one_bad_row()).ok(422);
    assert_eq!(
        (report["rows"].as_u64(), report["created"].as_u64(), report["committed"].as_bool()),
        (Some(4), Some(0), Some(false)),
        "{report}"
    );
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["line"], 4, "the bad row's line in the file: {report}");
    assert!(errors[0]["field"].as_str().unwrap().starts_with("price"), "{report}");
    assert!(api.list_all("/api/v1/products?archived=true").is_empty(), "mode=all imported something");
    // `all` is the default.
    assert_eq!(import(&api, None, &one_bad_row()).ok(422)["committed"], false);
    assert!(api.list_all("/api/v1/products?archived=true").is_empty());

    let report = import(&api, Some("valid"), &one_bad_row()).ok(200);
    assert_eq!(
        (report["rows"].as_u64(), report["created"].as_u64(), report["updated"].as_u64()),
        (Some(4), Some(3), Some(0)),
        "{report}"
    );
    assert_eq!(report["committed"], true);
    assert_eq!(report["errors"][0]["line"], 4);
    let skus: Vec<Value> = catalog(&api).iter().map(|p| p[1].clone()).collect();
    assert_eq!(skus, [json!("CSV-1"), json!("CSV-2"), json!("CSV-4")]);
    let cafe = &api.list_all("/api/v1/products?q=CSV-1")[0];
    assert_eq!(
        (&cafe["price"], &cafe["tax_rate"], &cafe["tags"]),
        (&json!("120.50"), &json!("0.16"), &json!(["cafe", "molido"]))
    );
    let te_id = id(&api.list_all("/api/v1/products?q=CSV-2")[0]);

    // A known SKU updates its product (same id); a new one is created.
    let again =
        [HEADER, "CSV-2,Té verde premium,Lata,50,MXN,0.16,true,te|premium", "CSV-5,Miel,,80,,,,", ""].join("\n");
    let report = import(&api, Some("all"), &again).ok(200);
    assert_eq!((report["created"].as_u64(), report["updated"].as_u64()), (Some(1), Some(1)), "{report}");
    let te = api.get(&format!("/api/v1/products/{te_id}")).ok(200);
    assert_eq!(
        (&te["name"], &te["price"], &te["tags"]),
        (&json!("Té verde premium"), &json!("50.00"), &json!(["premium", "te"]))
    );
    assert_eq!(catalog(&api).len(), 4, "the update did not add a product");

    let csv = export(&api);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            HEADER,
            "CSV-1,Café molido,250 g,120.50,MXN,0.16,true,cafe|molido",
            "CSV-2,Té verde premium,Lata,50.00,MXN,0.16,true,premium|te",
            "CSV-4,Azúcar,1 kg,30.00,MXN,0,false,",
            "CSV-5,Miel,,80.00,MXN,0,true,",
        ]
    );

    // Round trip: importing the export changes nothing but updated_at.
    let before = catalog(&api);
    let report = import(&api, Some("all"), &csv).ok(200);
    assert_eq!(
        (report["rows"].as_u64(), report["created"].as_u64(), report["updated"].as_u64()),
        (Some(4), Some(0), Some(4)),
        "{report}"
    );
    assert_eq!(catalog(&api), before);
    assert_eq!(export(&api), csv);

    // Quotes and commas survive the trip.
    let quoted = [HEADER, r#"CSV-6,"Caja, grande","Dice ""hola""",1,,,,"#, ""].join("\n");
    import(&api, Some("all"), &quoted).ok(200);
    let caja = &api.list_all("/api/v1/products?q=CSV-6")[0];
    assert_eq!((&caja["name"], &caja["description"]), (&json!("Caja, grande"), &json!("Dice \"hola\"")));
    let before = catalog(&api);
    let csv = export(&api);
    import(&api, Some("all"), &csv).ok(200);
    assert_eq!(catalog(&api), before);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_import_reports_bad_lines_and_refuses_a_running_node() {
    let mut node = Node::start();
    let token = node.login(dashoffice_tests::OWNER_EMAIL, dashoffice_tests::OWNER_PASSWORD);
    node.api(&token).product("EXIST-1", "10");

    // While the node runs, the CLI must not touch its data folder.
    let good = write(
        node.scratch(),
        "good.csv",
        &[HEADER, "EXIST-1,Existente,,12.5,,,,", "GOOD-1,Nuevo,,3,,,,", ""].join("\n"),
    );
    let busy = node.cli(&["import-products", &good]);
    assert_ne!(busy.status.code(), Some(0), "the CLI imported into a running node's folder");
    assert!(stderr(&busy).contains("another dashoffice-edge is using"), "unclear refusal: {}", stderr(&busy));
    assert_eq!(node.api(&token).list_all("/api/v1/products").len(), 1, "the refused import wrote something");
    let api_export = export(&node.api(&token));

    let status = node.sigterm();
    assert!(status.success(), "SIGTERM exit: {status}");
    let cli_export = node.cli(&["export-products"]);
    assert!(cli_export.status.success(), "{}", stderr(&cli_export));
    assert_eq!(stdout(&cli_export), api_export, "the CLI and the API export the same CSV");

    let bad = write(node.scratch(), "bad.csv", &one_bad_row());
    let refused = node.cli(&["import-products", &bad, "--mode", "all"]);
    assert_eq!(refused.status.code(), Some(3), "stdout: {}\nstderr: {}", stdout(&refused), stderr(&refused));
    assert!(stderr(&refused).contains(&format!("{bad}:4:")), "the bad line is not reported: {}", stderr(&refused));
    assert!(!stderr(&refused).contains(&format!("{bad}:3:")), "a good line is reported: {}", stderr(&refused));
    assert!(stdout(&refused).contains("nothing was imported"), "{}", stdout(&refused));

    let ok = node.cli(&["import-products", &good, "--mode", "all"]);
    assert!(ok.status.success(), "stdout: {}\nstderr: {}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("2 rows read, 1 created, 1 updated, 0 rejected"), "{}", stdout(&ok));
    let valid = node.cli(&["import-products", &bad, "--mode", "valid"]);
    assert!(valid.status.success(), "stdout: {}\nstderr: {}", stdout(&valid), stderr(&valid));
    assert!(stdout(&valid).contains("4 rows read, 3 created, 0 updated, 1 rejected"), "{}", stdout(&valid));
    assert!(stderr(&valid).contains(&format!("{bad}:4:")), "{}", stderr(&valid));
    let unknown_mode = node.cli(&["import-products", &good, "--mode", "some"]);
    assert_ne!(unknown_mode.status.code(), Some(0));

    node.restart();
    let api = node.api(&token);
    let skus: Vec<Value> = catalog(&api).iter().map(|p| p[1].clone()).collect();
    assert_eq!(skus, [json!("CSV-1"), json!("CSV-2"), json!("CSV-4"), json!("EXIST-1"), json!("GOOD-1")]);
    assert_eq!(api.list_all("/api/v1/products?q=EXIST-1")[0]["price"], "12.50", "the CLI import updated the known SKU");
}

#[test]
fn cli_reindex_rebuilds_the_same_data() {
    let mut node = Node::start();
    let token = node.login(dashoffice_tests::OWNER_EMAIL, dashoffice_tests::OWNER_PASSWORD);
    let api = node.api(&token);
    let p1 = id(&api.product("RIX-1", "10.05"));
    let p2 = id(&api.product("RIX-2", "3"));
    let p3 = id(&api.product("RIX-3", "7"));
    api.delete(&format!("/api/v1/products/{p3}")).ok(200);
    api.post(&format!("/api/v1/products/{p1}/stock"), &json!({ "delta": 10, "reason": "receipt" })).ok(200);
    let c1 = id(&api.post("/api/v1/customers", &json!({ "name": "Ana", "phone": "55 1234 5678" })).ok(201));
    let c2 = id(&api.customer("Ana L."));
    let o1 = id(&api.order(&c1, &[(&p1, 12), (&p2, 1)]));
    api.transition(&o1, "confirmed");
    api.order(&c2, &[(&p2, 2)]);
    api.post(&format!("/api/v1/customers/{c1}/merge"), &json!({ "from_id": c2 })).ok(200);

    let state = |api: &Api| -> Value {
        let stock: Vec<Value> =
            [&p1, &p2].iter().map(|p| api.get(&format!("/api/v1/products/{p}/stock")).ok(200)).collect();
        json!({ "all": api.snapshot(), "stock": stock, "merged": api.list_all(&format!("/api/v1/orders?customer_id={c1}")) })
    };
    let before = state(&api);
    assert_eq!(before["stock"][0][0]["on_hand"], -2);
    assert_eq!(before["merged"].as_array().unwrap().len(), 2);

    assert!(node.sigterm().success());
    let out = node.cli(&["reindex"]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    // Shop and branch, the owner and the owner's password hash, 3 products, 2 customers, 1 stock
    // counter, 2 orders.
    assert!(stdout(&out).contains("reindexed 12 records"), "stdout: {}", stdout(&out));

    node.restart();
    let api = node.api(&token);
    assert_eq!(state(&api), before, "the rebuilt projection differs");
    // And it keeps working.
    api.order(&c1, &[(&p2, 1)]);
}

/// A backup taken while the node serves restores into another data folder as a new device: the
/// shop, its data and its logins as they were at the backup, a new order-number code; a folder
/// that holds a replica is refused unless `--replace` (which keeps the old database), and a file
/// that is not a backup changes nothing.
#[test]
fn a_backup_taken_while_serving_restores_as_a_new_device() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start();
    let api = node.owner();
    let p1 = id(&api.product("BAK-1", "10.00"));
    let customer = id(&api.customer("Rosa Díaz"));
    let first = api.order(&customer, &[(&p1, 1)])["number"].as_str().unwrap().to_string();

    let file = node.scratch().join("copia.db");
    let path = file.to_str().unwrap();
    let out = node.cli(&["backup", path]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = node.cli(&["backup", path]);
    assert!(!again.status.success() && stderr(&again).contains("already exists"), "{}", stderr(&again));
    api.product("BAK-2", "20.00");

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = dashoffice_tests::edge_cli(&data, &["restore", path]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("as a new device"), "{}", stdout(&out));
    let mut restored = Node::start_with(root, Vec::new());
    let r = restored.owner();
    let skus: Vec<Value> = r.list_all("/api/v1/products?q=BAK").iter().map(|p| p["sku"].clone()).collect();
    assert_eq!(skus, vec![json!("BAK-1")], "the products of the backup, not the one made after it");
    let second = r.order(&customer, &[(&p1, 1)])["number"].as_str().unwrap().to_string();
    let code = |n: &str| n.split('-').nth(1).unwrap_or_default().to_string();
    assert_ne!(code(&first), code(&second), "a restored replica numbers its orders as a new device: {first} {second}");

    restored.sigterm();
    let refused = restored.cli(&["restore", path]);
    assert!(!refused.status.success() && stderr(&refused).contains("--replace"), "{}", stderr(&refused));
    let garbage = restored.scratch().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, just bytes that happen to be here").unwrap();
    let bad = restored.cli(&["restore", "--replace", garbage.to_str().unwrap()]);
    assert!(!bad.status.success(), "a garbage file was restored");
    assert!(stderr(&bad).contains("not a usable DashOffice backup"), "{}", stderr(&bad));
    let replaced = restored.cli(&["restore", "--replace", path]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert!(stdout(&replaced).contains("kept the previous"), "{}", stdout(&replaced));
    let kept = std::fs::read_dir(restored.data_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("dashoffice.db.before-restore-"))
        .count();
    assert!(kept >= 1, "the replaced database was not kept");
    restored.start_again();
    assert_eq!(restored.owner().list_all("/api/v1/products?q=BAK").len(), 1);
}

/// The owner downloads a backup from the API (what Settings → Backup does); it restores like one
/// made with the CLI. Only the owner may: it holds every customer and the staff's password hashes.
#[test]
fn the_owner_downloads_a_backup_from_the_api_and_it_restores() {
    let node = Node::start();
    let api = node.owner();
    api.product("DL-1", "5.00");
    api.staff("manager@tienda.mx", "manager", None);
    let manager = node.api(&node.login("manager@tienda.mx", "password-manager"));
    manager.get("/api/v1/backup").err(403, "forbidden");
    node.anon().get("/api/v1/backup").err(401, "unauthorized");

    let r = api.get("/api/v1/backup");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.sqlite3"));
    let disposition = r.header("content-disposition").unwrap_or_default().to_string();
    assert!(disposition.starts_with("attachment; filename=\"dashoffice-backup-"), "{disposition}");
    assert_eq!(r.header("content-length"), Some(r.bytes.len().to_string().as_str()));
    assert!(r.bytes.starts_with(b"SQLite format 3\0"), "not a SQLite file");
    let leftovers: Vec<String> = std::fs::read_dir(node.data_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(leftovers.is_empty(), "the download left files behind: {leftovers:?}");

    let file = node.scratch().join("descarga.db");
    std::fs::write(&file, &r.bytes).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = dashoffice_tests::edge_cli(&root.path().join("data"), &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = Node::start_with(root, Vec::new());
    assert_eq!(restored.owner().list_all("/api/v1/products?q=DL-1").len(), 1);
}

/// Scheduled backups: with a backup folder the node writes a consistent copy every interval and
/// keeps the newest `backup_keep`, leaving other files in the folder alone; the settings are
/// checked at start.
#[test]
fn scheduled_backups_rotate_in_their_folder() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("léeme.txt"), "not a backup").unwrap();
    let dir = folder.path().to_str().unwrap().to_string();
    let args = ["--backup-dir", &dir, "--backup-interval-s", "1", "--backup-keep", "2"];
    let mut node = Node::start_with(tempfile::tempdir().unwrap(), args.iter().map(|a| a.to_string()).collect());
    node.owner().product("SCH-1", "1.00");
    let written = || node.log().matches("scheduled backup written").count();
    assert!(dashoffice_tests::eventually(std::time::Duration::from_secs(20), || written() >= 3), "{}", node.log());
    let names = || -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(folder.path()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        v.sort();
        v
    };
    let metrics = node.anon().get("/metrics").text;
    assert!(metrics.contains("dashoffice_backup_last_success_timestamp_seconds"), "{metrics}");
    // Stopped, so no backup is half-way between being written and the oldest going.
    assert!(node.sigterm().success());
    let now = names();
    let backups: Vec<&String> = now.iter().filter(|n| n.starts_with("dashoffice-backup-")).collect();
    assert_eq!(backups.len(), 2, "{now:?}");
    assert!(now.contains(&"léeme.txt".to_string()), "{now:?}");

    // The newest one restores and holds the product.
    let root = tempfile::tempdir().unwrap();
    let newest = folder.path().join(backups.last().unwrap().as_str());
    let out = dashoffice_tests::edge_cli(&root.path().join("data"), &["restore", newest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(Node::start_with(root, Vec::new()).owner().list_all("/api/v1/products?q=SCH-1").len(), 1);

    let bad = dashoffice_tests::edge_cli(&node.scratch().join("other"), &["--backup-interval-s", "0", "reindex"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("backup_interval_s"), "{}", stderr(&bad));
}
