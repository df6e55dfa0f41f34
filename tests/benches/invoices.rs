//! Invoice numbering: N invoices issued offline on one replica of a branch, then handed to the
//! branch's numbering device, which gives them their legal numbers in its own thread.
//!
//! Measured on real SQLite files (release build, full durability): issuing (each a write of its
//! own, as the API makes them), applying the issuing replica's changes on the numbering device,
//! and the time from then until every invoice has its legal number (batches of 256 in one write
//! each). Checks that the numbers are 1..N without a gap.
//!
//! `cargo bench -p dashoffice-tests --bench invoices -- 2000`

// A benchmark states what it needs; a failed unwrap is a broken setup, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dashoffice_core::{
    BootstrapInput, Caller, OpenOptions, Replica,
    domain::{
        OrderStatus, Role,
        api::{CreateCustomer, CreateOrder, CreateProduct, OrderLineInput, TransitionOrder, UpdateShop},
    },
    entities::{customers, orders, org, products},
};

fn push_all(from: &Replica, to: &Replica) {
    for id in from.doc_ids().unwrap() {
        let bytes = from.changes_since(&id, &[]).unwrap();
        to.apply_changes_blocking(&id, bytes).unwrap();
    }
}

fn main() {
    let n: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = || OpenOptions { search: false, ..Default::default() };
    let head = Replica::open(da.path(), opts()).unwrap();
    let boot = head.bootstrap(BootstrapInput::example()).unwrap().unwrap();
    let owner: String = head.read(|c| Ok(c.query_row("SELECT id FROM staff", [], |r| r.get(0))?)).unwrap();
    let c = Caller { user_id: owner, shop_id: boot.shop_id.clone(), role: Role::Owner, branch_id: None };
    let (c2, branch) = (c.clone(), boot.branch_id.clone());
    let ids: Vec<String> = head
        .write_blocking(move |ctx| {
            org::update_shop(ctx, &c2, UpdateShop { tax_id: Some("CCM010203AB4".into()), ..Default::default() })?;
            let p = products::create(
                ctx,
                &c2,
                CreateProduct {
                    sku: "B-1".into(),
                    name: "Producto".into(),
                    description: String::new(),
                    price: "10.00".into(),
                    currency: None,
                    tax_rate: Some("0.16".into()),
                    active: None,
                    tags: vec![],
                },
            )?;
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Cliente".into(), ..Default::default() })?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                let line = OrderLineInput { product_id: p.id.clone(), quantity: 1, unit_price: None };
                let input = CreateOrder {
                    customer_id: cu.id.clone(),
                    branch_id: Some(branch.clone()),
                    seller_id: None,
                    lines: vec![line],
                    notes: String::new(),
                };
                let o = orders::create(ctx, &c2, None, input)?;
                orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
                ids.push(o.id);
            }
            Ok(ids)
        })
        .unwrap();
    let seller = Replica::open(db.path(), opts()).unwrap();
    seller.join(&boot.shop_id, &boot.branch_id).unwrap();
    push_all(&head, &seller);

    // Issued offline on the second replica, one write each.
    let t = Instant::now();
    for id in &ids {
        let (c, id) = (c.clone(), id.clone());
        seller.write_blocking(move |ctx| orders::issue_invoice(ctx, &c, &id)).unwrap();
    }
    let issue = t.elapsed();

    // They reach the numbering device.
    let t = Instant::now();
    push_all(&seller, &head);
    let apply = t.elapsed();
    let t = Instant::now();
    let posted = || -> i64 {
        head.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM orders WHERE invoice_number != ''", [], |r| r.get(0))?))
            .unwrap()
    };
    while posted() < n as i64 {
        assert!(t.elapsed() < Duration::from_secs(600), "numbered {} of {n} in 10 minutes", posted());
        std::thread::sleep(Duration::from_millis(2));
    }
    let number = t.elapsed();
    let (min, max, distinct): (i64, i64, i64) = head
        .read(|c| {
            Ok(c.query_row(
                "SELECT MIN(invoice_seq), MAX(invoice_seq), COUNT(DISTINCT invoice_seq) FROM orders WHERE invoice_number != ''",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!((min, max, distinct), (1, n as i64, n as i64), "the legal numbers are 1..{n} without a gap");
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("invoices: {n}");
    println!("issue (one write each, offline replica): {:.2} s, {:.0} µs per invoice", issue.as_secs_f64(), per(issue));
    println!("apply the issuing replica's changes on the numbering device: {:.2} s", apply.as_secs_f64());
    println!(
        "number them all (from then until the last legal number): {:.2} s, {:.0} µs per invoice, {:.0} invoices/s",
        number.as_secs_f64(),
        per(number),
        n as f64 / number.as_secs_f64()
    );
    head.shutdown();
    seller.shutdown();
}
