//! The daily summary e-mailed to owners and managers: when it is due (the shop's hour, in the
//! shop's time zone) and what it says about the day before.

use std::sync::Arc;

use dashoffice_core::{
    Clock, FakeClock, OpenOptions,
    domain::{
        OrderStatus, Role,
        api::{CreateCustomer, CreateOrder, CreateStaff, OrderLineInput, TransitionOrder, UpdateShop},
    },
    entities::{customers, orders, org, products, reports, staff},
};

use crate::fixtures::{product_input, shop_with};

/// 2026-12-02 15:00 in Mexico City (UTC-6).
const DEC2_1500: i64 = 1_796_245_200_000;
const HOUR: i64 = 3_600_000;

#[test]
fn the_daily_summary_is_due_at_the_shops_hour_and_tells_the_day_before() {
    let clock = Arc::new(FakeClock::at(DEC2_1500));
    let nodes = shop_with(1, || OpenOptions { clock: clock.clone() as Arc<dyn Clock>, ..Default::default() });
    let (r, c) = (&nodes[0].replica, nodes[0].caller.clone());
    let shop = c.shop_id.clone();
    let due = |shop: &str| {
        let (s, now) = (shop.to_string(), clock.0.load(std::sync::atomic::Ordering::SeqCst));
        r.read(move |conn| reports::due(conn, &s, now)).unwrap()
    };
    assert_eq!(due(&shop), None, "off by default");
    let c2 = c.clone();
    let total = r
        .write_blocking(move |ctx| {
            let bad = UpdateShop { daily_report_hour: Some(24), ..Default::default() };
            assert!(org::update_shop(ctx, &c2, bad).is_err());
            let on = org::update_shop(ctx, &c2, UpdateShop { daily_report_hour: Some(8), ..Default::default() })?;
            assert_eq!(on.daily_report_hour, Some(8));
            let branch = org::list_branches(ctx.conn(), &c2.shop_id, false)?[0].id.clone();
            for (name, email, role) in
                [("Marta", "marta@tienda.mx", Role::Manager), ("Pablo", "pablo@tienda.mx", Role::Seller)]
            {
                let input = CreateStaff {
                    name: name.into(),
                    email: email.into(),
                    role,
                    branch_id: Some(branch.clone()),
                    password: "contraseña-larga".into(),
                };
                staff::create(ctx, Some(&c2), &c2.shop_id, input)?;
            }
            let p = products::create(ctx, &c2, product_input("CAM-001", "250.00"))?;
            let cu = customers::create(ctx, &c2, CreateCustomer { name: "Lucía".into(), ..Default::default() })?;
            let line = OrderLineInput { product_id: p.id, quantity: 2, unit_price: None };
            let input = CreateOrder {
                customer_id: cu.id,
                branch_id: Some(branch),
                seller_id: None,
                lines: vec![line],
                notes: String::new(),
            };
            let o = orders::create(ctx, &c2, None, input)?;
            orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
            Ok(orders::transition(ctx, &c2, &o.id, TransitionOrder { to: OrderStatus::Paid })?.total)
        })
        .unwrap();
    // At 15:00 the hour (8) has come: today's report is due.
    assert_eq!(due(&shop).as_deref(), Some("2026-12-02"));
    // The next morning: not before 08:00, then the 3rd's.
    clock.advance(17 * HOUR - 60_000);
    assert_eq!(due(&shop), None, "07:59");
    clock.advance(60_000);
    assert_eq!(due(&shop).as_deref(), Some("2026-12-03"));

    let s = shop.clone();
    let report = r.read(move |conn| reports::daily(conn, &s, "2026-12-03")).unwrap();
    assert_eq!(report.day, "2026-12-02");
    assert_eq!(report.subject, "Resumen del 2026-12-02 — Tienda");
    assert_eq!(report.to, ["ana@tienda.mx", "marta@tienda.mx"], "the owner and the manager, not the seller");
    for expected in [
        format!("Ventas: {total} MXN · pedidos: 1 · promedio: {total} MXN"),
        format!("Centro: {total} MXN · pedidos: 1"),
        "Pagado: 1".to_string(),
    ] {
        assert!(report.body.contains(&expected), "{expected:?} missing from:\n{}", report.body);
    }
    // The day after had no sales.
    let s = shop.clone();
    let next = r.read(move |conn| reports::daily(conn, &s, "2026-12-04")).unwrap();
    assert!(next.body.contains("Ventas: 0.00 MXN · pedidos: 0"), "{}", next.body);
    assert!(next.body.contains(&format!("Últimos 7 días: {total} MXN · pedidos: 1")), "{}", next.body);
}
