//! The daily summary e-mailed to owners and managers: when it is due (the shop's hour, in the
//! shop's time zone) and what it says about the day before.

use std::sync::Arc;

use dashoffice_core::{
    Clock, FakeClock, OpenOptions,
    domain::{
        OrderStatus, Role,
        api::{CreateCustomer, CreateOrder, CreateStaff, OrderLineInput, TransitionOrder, UpdateShop, UpdateStaff},
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
            sell(ctx, &c2, &p.id, &cu.id, &branch)
        })
        .unwrap();
    let c3 = c.clone();
    let sell_again = move || {
        let c3 = c3.clone();
        r.write_blocking(move |ctx| {
            let o = orders::list(ctx.conn(), &c3, &Default::default())?.items.remove(0);
            sell(ctx, &c3, &o.lines[0].product_id, &o.customer_id, &o.branch_id)
        })
        .unwrap()
    };
    // At 15:00 the hour (8) has come: today's report is due.
    assert_eq!(due(&shop).as_deref(), Some("2026-12-02"));
    // The next morning: not before 08:00, then the 3rd's.
    clock.advance(17 * HOUR - 60_000);
    assert_eq!(due(&shop), None, "07:59");
    // A sale at 07:59 on the 3rd: the 3rd's, not in the summary of the 2nd sent at 08:00.
    assert_eq!(sell_again(), total);
    clock.advance(60_000);
    assert_eq!(due(&shop).as_deref(), Some("2026-12-03"));

    let daily = |day: &str| {
        let (s, day) = (shop.clone(), day.to_string());
        r.read(move |conn| reports::daily(conn, &s, &day)).unwrap()
    };
    let mut reports = daily("2026-12-03");
    assert_eq!(reports.len(), 1, "everyone reads Spanish until they choose");
    let report = reports.remove(0);
    assert_eq!((report.day.as_str(), report.lang.as_str()), ("2026-12-02", "es"));
    assert_eq!(report.subject, "Resumen del 2026-12-02 — Tienda");
    assert_eq!(report.to, ["ana@tienda.mx", "marta@tienda.mx"], "the owner and the manager, not the seller");
    for expected in [
        format!("Ventas: {total} MXN · pedidos: 1 · promedio: {total} MXN"),
        format!("Centro: {total} MXN · pedidos: 1"),
        "Pagado: 1".to_string(),
    ] {
        assert!(report.body.contains(&expected), "{expected:?} missing from:\n{}", report.body);
    }
    assert!(report.body.contains(&format!("Últimos 7 días: {total} MXN · pedidos: 1")), "{}", report.body);

    // Each owner and manager chooses: the manager reads English, the seller's choice changes
    // nothing (sellers get no summary), and a language the e-mails are not written in is refused.
    let set = |email: &str, input: UpdateStaff| {
        let (c, email) = (c.clone(), email.to_string());
        r.write_blocking(move |ctx| {
            let id: String =
                ctx.conn().query_row("SELECT id FROM staff WHERE email = ?1", [&email], |row| row.get(0))?;
            staff::update(ctx, &c, &id, input)
        })
    };
    let english = UpdateStaff { lang: Some("en".into()), ..Default::default() };
    assert_eq!(set("marta@tienda.mx", english).unwrap().lang, "en");
    let bad = set("marta@tienda.mx", UpdateStaff { lang: Some("fr".into()), ..Default::default() }).unwrap_err();
    assert!(bad.to_string().contains("lang"), "{bad}");
    set("pablo@tienda.mx", UpdateStaff { daily_summary: Some(true), ..Default::default() }).unwrap();
    let reports = daily("2026-12-03");
    let by_lang: Vec<(&str, &[String])> = reports.iter().map(|r| (r.lang.as_str(), r.to.as_slice())).collect();
    assert_eq!(by_lang, [("es", &["ana@tienda.mx".to_string()][..]), ("en", &["marta@tienda.mx".to_string()][..])]);
    let en = &reports[1];
    assert_eq!(en.subject, "Summary of 2026-12-02 — Tienda");
    for expected in [
        format!("Sales: {total} MXN · orders: 1 · average: {total} MXN"),
        format!("Last 7 days: {total} MXN · orders: 1"),
        "Paid: 1".to_string(),
        "Support: 0 opened".to_string(),
    ] {
        assert!(en.body.contains(&expected), "{expected:?} missing from:\n{}", en.body);
    }
    // The owner turns it off for herself, then the manager too: nobody gets it.
    let off = || UpdateStaff { daily_summary: Some(false), ..Default::default() };
    assert!(!set("ana@tienda.mx", off()).unwrap().daily_summary);
    let langs = |shop: &str| {
        let s = shop.to_string();
        r.read(move |conn| reports::languages(conn, &s)).unwrap()
    };
    assert_eq!(langs(&shop), ["en"]);
    assert_eq!(daily("2026-12-03").len(), 1);
    set("marta@tienda.mx", off()).unwrap();
    assert!(langs(&shop).is_empty());
    assert!(daily("2026-12-03").is_empty());
    set("ana@tienda.mx", UpdateStaff { daily_summary: Some(true), ..Default::default() }).unwrap();
    // A manager turns her own summary on again, but not someone else's: that is for the person
    // or the owner to choose. Her language choice for a seller's e-mails is hers to make.
    let id_of = |email: &str| {
        let email = email.to_string();
        r.read(move |conn| Ok(conn.query_row("SELECT id FROM staff WHERE email = ?1", [&email], |row| row.get(0))?))
            .unwrap()
    };
    let marta = dashoffice_core::Caller { user_id: id_of("marta@tienda.mx"), role: Role::Manager, ..c.clone() };
    let as_marta = |email: &str, input: UpdateStaff| {
        let (m, id) = (marta.clone(), id_of(email));
        r.write_blocking(move |ctx| staff::update(ctx, &m, &id, input))
    };
    let on = || UpdateStaff { daily_summary: Some(true), ..Default::default() };
    assert!(as_marta("marta@tienda.mx", on()).unwrap().daily_summary);
    let refused = as_marta("pablo@tienda.mx", on()).unwrap_err();
    assert!(refused.to_string().contains("daily summary"), "{refused}");
    assert_eq!(
        as_marta("pablo@tienda.mx", UpdateStaff { lang: Some("en".into()), ..Default::default() }).unwrap().lang,
        "en"
    );
    set("marta@tienda.mx", off()).unwrap();

    // The 3rd's summary has the 07:59 sale; the 4th had none.
    let third = daily("2026-12-04").remove(0);
    assert!(third.body.contains(&format!("Ventas: {total} MXN · pedidos: 1")), "{}", third.body);
    let week = format!("{:.2}", total.parse::<f64>().unwrap() * 2.0);
    assert!(third.body.contains(&format!("Últimos 7 días: {week} MXN · pedidos: 2")), "{}", third.body);
    let fourth = daily("2026-12-05").remove(0);
    assert!(fourth.body.contains("Ventas: 0.00 MXN · pedidos: 0"), "{}", fourth.body);
}

/// A paid order of two units of `product` for `customer` in `branch`; its total.
fn sell(
    ctx: &mut dashoffice_core::WriteCtx<'_>,
    c: &dashoffice_core::Caller,
    product: &str,
    customer: &str,
    branch: &str,
) -> dashoffice_core::Result<String> {
    let line = OrderLineInput { product_id: product.into(), quantity: 2, unit_price: None };
    let input = CreateOrder {
        customer_id: customer.into(),
        branch_id: Some(branch.into()),
        seller_id: None,
        lines: vec![line],
        notes: String::new(),
    };
    let o = orders::create(ctx, c, None, input)?;
    orders::transition(ctx, c, &o.id, TransitionOrder { to: OrderStatus::Confirmed })?;
    Ok(orders::transition(ctx, c, &o.id, TransitionOrder { to: OrderStatus::Paid })?.total)
}
