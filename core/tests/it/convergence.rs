//! Property: replicas that make concurrent edits offline and exchange changes in any order, with
//! duplicates, end with identical documents and identical SQL projections — and with the same
//! reindexed projection.

use dashoffice_core::{
    Replica,
    domain::{
        OrderStatus,
        api::{
            AddTicketComment, AdjustStock, CreateCustomer, CreateOrder, CreateProduct, CreateTicket, OrderLineInput,
            TransitionOrder, UpdateCustomer, UpdateProduct, UpdateTicket,
        },
    },
    entities::{branches_for_tests, customers, orders, products, stock, tickets},
};
use proptest::prelude::*;

use crate::fixtures::{Node, heads_dump, projection_dump, push_all, push_shuffled, shop};

#[derive(Debug, Clone)]
enum Op {
    Adjust {
        node: usize,
        product: usize,
        branch: usize,
        delta: i64,
    },
    Price {
        node: usize,
        product: usize,
        cents: i64,
    },
    Archive {
        node: usize,
        product: usize,
    },
    Rename {
        node: usize,
        customer: usize,
        name: u8,
    },
    NewOrder {
        node: usize,
        customer: usize,
        product: usize,
        qty: i64,
        branch: usize,
    },
    Transition {
        node: usize,
        order: usize,
        to: usize,
    },
    Resolve {
        node: usize,
        order: usize,
        to: usize,
    },
    NewTicket {
        node: usize,
        customer: usize,
    },
    TicketStatus {
        node: usize,
        ticket: usize,
        to: usize,
    },
    TicketComment {
        node: usize,
        ticket: usize,
    },
    /// To the node's own staff member, or (`mine` false) to nobody.
    TicketAssign {
        node: usize,
        ticket: usize,
        mine: bool,
    },
    Sync {
        from: usize,
        to: usize,
    },
    Shuffled {
        from: usize,
        to: usize,
        seed: u64,
    },
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n, 0..3usize, 0..2usize, -20i64..20)
            .prop_map(|(node, product, branch, delta)| { Op::Adjust { node, product, branch, delta } }),
        (0..n, 0..3usize, 1i64..100_000).prop_map(|(node, product, cents)| Op::Price { node, product, cents }),
        (0..n, 0..3usize).prop_map(|(node, product)| Op::Archive { node, product }),
        (0..n, 0..2usize, any::<u8>()).prop_map(|(node, customer, name)| Op::Rename { node, customer, name }),
        (0..n, 0..2usize, 0..3usize, 1i64..5, 0..2usize)
            .prop_map(|(node, customer, product, qty, branch)| Op::NewOrder { node, customer, product, qty, branch }),
        (0..n, 0..4usize, 1..7usize).prop_map(|(node, order, to)| Op::Transition { node, order, to }),
        (0..n, 0..4usize, 1..7usize).prop_map(|(node, order, to)| Op::Resolve { node, order, to }),
        (0..n, 0..2usize).prop_map(|(node, customer)| Op::NewTicket { node, customer }),
        (0..n, 0..3usize, 0..5usize).prop_map(|(node, ticket, to)| Op::TicketStatus { node, ticket, to }),
        (0..n, 0..3usize).prop_map(|(node, ticket)| Op::TicketComment { node, ticket }),
        (0..n, 0..3usize, any::<bool>()).prop_map(|(node, ticket, mine)| Op::TicketAssign { node, ticket, mine }),
        (0..n, 0..n).prop_map(|(from, to)| Op::Sync { from, to }),
        (0..n, 0..n, any::<u64>()).prop_map(|(from, to, seed)| Op::Shuffled { from, to, seed }),
    ]
}

struct World {
    nodes: Vec<Node>,
    products: Vec<String>,
    customers: Vec<String>,
    branches: Vec<String>,
    orders: Vec<String>,
    tickets: Vec<String>,
}

fn setup(n: usize) -> World {
    let nodes = shop(n);
    let r = &nodes[0].replica;
    let c = nodes[0].caller.clone();
    let mut products_ = Vec::new();
    for i in 0..3 {
        let c = c.clone();
        let p = r
            .write_blocking(move |ctx| {
                products::create(
                    ctx,
                    &c,
                    CreateProduct {
                        sku: format!("SKU-{i}"),
                        name: format!("Producto {i}"),
                        description: String::new(),
                        price: "10.00".into(),
                        currency: None,
                        tax_rate: Some("0.16".into()),
                        active: None,
                        tags: vec![],
                    },
                )
            })
            .unwrap();
        products_.push(p.id);
    }
    let mut customers_ = Vec::new();
    for i in 0..2 {
        let c = c.clone();
        let x = r
            .write_blocking(move |ctx| {
                customers::create(
                    ctx,
                    &c,
                    CreateCustomer {
                        name: format!("Cliente {i}"),
                        phone: None,
                        email: None,
                        tags: vec![],
                        notes: String::new(),
                        wa_id: None,
                        ..Default::default()
                    },
                )
            })
            .unwrap();
        customers_.push(x.id);
    }
    let c2 = c.clone();
    r.write_blocking(move |ctx| {
        dashoffice_core::entities::org::create_branch(ctx, Some(&c2), &c2.shop_id.clone(), dashoffice_domain_branch())
    })
    .unwrap();
    let branches = r.read(branches_for_tests).unwrap();
    for i in 1..nodes.len() {
        push_all(&nodes[0].replica, &nodes[i].replica);
    }
    World { nodes, products: products_, customers: customers_, branches, orders: Vec::new(), tickets: Vec::new() }
}

fn dashoffice_domain_branch() -> dashoffice_core::domain::api::CreateBranch {
    dashoffice_core::domain::api::CreateBranch { code: "NOR".into(), name: "Norte".into(), ..Default::default() }
}

fn apply(w: &mut World, op: &Op) {
    match op.clone() {
        Op::Adjust { node, product, branch, delta } => {
            let (c, p, b) = (w.nodes[node].caller.clone(), w.products[product].clone(), w.branches[branch].clone());
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                stock::adjust(ctx, &c, &p, None, AdjustStock { branch_id: Some(b), delta, reason: "count".into() })
            });
        }
        Op::Price { node, product, cents } => {
            let (c, p) = (w.nodes[node].caller.clone(), w.products[product].clone());
            let price = format!("{}.{:02}", cents / 100, cents % 100);
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                products::update(
                    ctx,
                    &c,
                    &p,
                    UpdateProduct { price: Some(price.as_str().into()), ..Default::default() },
                )
            });
        }
        Op::Archive { node, product } => {
            let (c, p) = (w.nodes[node].caller.clone(), w.products[product].clone());
            let _ = w.nodes[node].replica.write_blocking(move |ctx| products::archive(ctx, &c, &p));
        }
        Op::Rename { node, customer, name } => {
            let (c, id) = (w.nodes[node].caller.clone(), w.customers[customer].clone());
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                customers::update(
                    ctx,
                    &c,
                    &id,
                    UpdateCustomer { name: Some(format!("Nombre {name}")), ..Default::default() },
                )
            });
        }
        Op::NewOrder { node, customer, product, qty, branch } => {
            let (c, cu, p, b) = (
                w.nodes[node].caller.clone(),
                w.customers[customer].clone(),
                w.products[product].clone(),
                w.branches[branch].clone(),
            );
            let r = w.nodes[node].replica.write_blocking(move |ctx| {
                orders::create(
                    ctx,
                    &c,
                    None,
                    CreateOrder {
                        customer_id: cu,
                        branch_id: Some(b),
                        seller_id: None,
                        lines: vec![OrderLineInput { product_id: p, quantity: qty, unit_price: None }],
                        notes: String::new(),
                    },
                )
            });
            if let Ok(o) = r {
                w.orders.push(o.id);
            }
        }
        Op::Transition { node, order, to } => {
            let Some(id) = w.orders.get(order).cloned() else {
                return;
            };
            let c = w.nodes[node].caller.clone();
            let to = OrderStatus::ALL[to];
            let _ = w.nodes[node]
                .replica
                .write_blocking(move |ctx| orders::transition(ctx, &c, &id, TransitionOrder { to }));
        }
        Op::Resolve { node, order, to } => {
            let Some(id) = w.orders.get(order).cloned() else {
                return;
            };
            let c = w.nodes[node].caller.clone();
            let status = OrderStatus::ALL[to];
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                orders::resolve(ctx, &c, &id, dashoffice_core::domain::api::ResolveOrder { status })
            });
        }
        Op::NewTicket { node, customer } => {
            let (c, cu) = (w.nodes[node].caller.clone(), w.customers[customer].clone());
            let r = w.nodes[node].replica.write_blocking(move |ctx| {
                tickets::create(
                    ctx,
                    &c,
                    None,
                    CreateTicket { subject: "Taza rota".into(), customer_id: Some(cu), ..Default::default() },
                )
            });
            if let Ok(t) = r {
                w.tickets.push(t.id);
            }
        }
        Op::TicketStatus { node, ticket, to } => {
            let Some(id) = w.tickets.get(ticket).cloned() else {
                return;
            };
            let c = w.nodes[node].caller.clone();
            let to = dashoffice_core::domain::TicketStatus::ALL[to].as_str().to_string();
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                tickets::update(ctx, &c, &id, UpdateTicket { status: Some(to), ..Default::default() })
            });
        }
        Op::TicketComment { node, ticket } => {
            let Some(id) = w.tickets.get(ticket).cloned() else {
                return;
            };
            let c = w.nodes[node].caller.clone();
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                tickets::comment(
                    ctx,
                    &c,
                    &id,
                    AddTicketComment { body: format!("nota de {node}"), notify_customer: false },
                )
            });
        }
        Op::TicketAssign { node, ticket, mine } => {
            let Some(id) = w.tickets.get(ticket).cloned() else {
                return;
            };
            let c = w.nodes[node].caller.clone();
            let to = if mine { c.user_id.clone() } else { String::new() };
            let _ = w.nodes[node].replica.write_blocking(move |ctx| {
                tickets::update(ctx, &c, &id, UpdateTicket { assignee_id: Some(to), ..Default::default() })
            });
        }
        Op::Sync { from, to } => {
            if from != to {
                push_all(&w.nodes[from].replica, &w.nodes[to].replica);
            }
        }
        Op::Shuffled { from, to, seed } => {
            if from != to {
                push_shuffled(&w.nodes[from].replica, &w.nodes[to].replica, seed);
            }
        }
    }
}

fn converge(nodes: &[Node]) {
    for _ in 0..2 {
        for a in 0..nodes.len() {
            for b in 0..nodes.len() {
                if a != b {
                    push_all(&nodes[a].replica, &nodes[b].replica);
                }
            }
        }
    }
}

fn check_equal(nodes: &[Node]) {
    let heads0 = heads_dump(&nodes[0].replica);
    let proj0 = projection_dump(&nodes[0].replica);
    for n in &nodes[1..] {
        assert_eq!(heads_dump(&n.replica), heads0, "documents differ");
        assert_eq!(projection_dump(&n.replica), proj0, "projections differ");
    }
    // The projection built incrementally equals a rebuild from the documents.
    let r: &Replica = &nodes[nodes.len() - 1].replica;
    r.reindex(|_, _| {}).unwrap();
    assert_eq!(projection_dump(r), proj0, "reindex differs from the incremental projection");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn two_replicas_converge(ops in proptest::collection::vec(op(2), 1..40)) {
        let mut w = setup(2);
        for o in &ops { apply(&mut w, o); }
        converge(&w.nodes);
        check_equal(&w.nodes);
    }

    #[test]
    fn three_replicas_converge(ops in proptest::collection::vec(op(3), 1..50)) {
        let mut w = setup(3);
        for o in &ops { apply(&mut w, o); }
        converge(&w.nodes);
        check_equal(&w.nodes);
    }
}

#[test]
fn concurrent_offline_sales_add_up_and_flag_oversold() {
    let mut w = setup(2);
    let (p, b) = (0, 0);
    apply(&mut w, &Op::Adjust { node: 0, product: p, branch: b, delta: 5 });
    apply(&mut w, &Op::Sync { from: 0, to: 1 });
    // Both replicas sell 4 units while apart.
    for node in 0..2 {
        apply(&mut w, &Op::NewOrder { node, customer: 0, product: p, qty: 4, branch: b });
        let o = w.orders.len() - 1;
        apply(&mut w, &Op::Transition { node, order: o, to: 1 });
    }
    // And both receive 3 more units by hand.
    apply(&mut w, &Op::Adjust { node: 0, product: p, branch: b, delta: 3 });
    apply(&mut w, &Op::Adjust { node: 1, product: p, branch: b, delta: -1 });
    converge(&w.nodes);
    check_equal(&w.nodes);
    let (prod, br) = (w.products[p].clone(), w.branches[b].clone());
    let s = w.nodes[1].replica.read(|c| stock::get(c, &prod, &br)).unwrap();
    assert_eq!((s.adjusted, s.committed, s.on_hand, s.oversold), (7, 8, -1, true));
}

/// Two replicas, `stock` units of product 0, and order 0 confirmed on both, then cancelled on
/// one while the other took payment and fulfilled it; converged.
fn forked_order(stock: i64) -> World {
    let mut w = setup(2);
    if stock != 0 {
        apply(&mut w, &Op::Adjust { node: 0, product: 0, branch: 0, delta: stock });
    }
    apply(&mut w, &Op::NewOrder { node: 0, customer: 0, product: 0, qty: 1, branch: 0 });
    apply(&mut w, &Op::Transition { node: 0, order: 0, to: 1 });
    apply(&mut w, &Op::Sync { from: 0, to: 1 });
    apply(&mut w, &Op::Transition { node: 0, order: 0, to: 5 }); // cancelled
    apply(&mut w, &Op::Transition { node: 1, order: 0, to: 2 }); // paid
    apply(&mut w, &Op::Transition { node: 1, order: 0, to: 3 }); // fulfilled
    converge(&w.nodes);
    w
}

#[test]
fn concurrent_cancel_and_payment_resolve_the_same_everywhere() {
    let w = forked_order(0);
    check_equal(&w.nodes);
    let id = w.orders[0].clone();
    let c = w.nodes[0].caller.clone();
    let o = w.nodes[0].replica.read(|conn| orders::get(conn, &c, &id)).unwrap();
    assert_eq!((o.status, o.conflict), (OrderStatus::Cancelled, true));
    assert_eq!(o.transitions.len(), 4);
}

/// A manager settles the fork on one replica: the goods went out and were paid for. Every replica
/// then shows the order fulfilled, with its stock committed and no conflict.
#[test]
fn a_forked_order_is_settled_once_and_everywhere() {
    use dashoffice_core::domain::api::ResolveOrder;
    let mut w = forked_order(5);
    let id = w.orders[0].clone();
    let settle = |node: usize, status: OrderStatus| {
        let (c, id) = (w.nodes[node].caller.clone(), id.clone());
        w.nodes[node].replica.write_blocking(move |ctx| orders::resolve(ctx, &c, &id, ResolveOrder { status }))
    };
    let not_reached = settle(1, OrderStatus::Delivered);
    assert!(not_reached.is_err_and(|e| e.to_string().contains("one of confirmed, paid, fulfilled, cancelled")));
    let o = settle(1, OrderStatus::Fulfilled).unwrap();
    assert_eq!((o.status, o.conflict), (OrderStatus::Fulfilled, false));
    assert!(o.transitions.last().is_some_and(|t| t.resolution && t.to == OrderStatus::Fulfilled));
    assert!(settle(1, OrderStatus::Cancelled).is_err_and(|e| e.to_string().contains("no conflict")));
    converge(&w.nodes);
    check_equal(&w.nodes);
    let (prod, br) = (w.products[0].clone(), w.branches[0].clone());
    for n in &w.nodes {
        let c = n.caller.clone();
        let o = n.replica.read(|conn| orders::get(conn, &c, &id)).unwrap();
        assert_eq!((o.status, o.conflict), (OrderStatus::Fulfilled, false));
        let s = n.replica.read(|conn| stock::get(conn, &prod, &br)).unwrap();
        assert_eq!((s.adjusted, s.committed, s.on_hand), (5, 1, 4));
    }
    // It moves on from the settled status.
    apply(&mut w, &Op::Transition { node: 0, order: 0, to: 4 }); // delivered
    let c = w.nodes[0].caller.clone();
    let o = w.nodes[0].replica.read(|conn| orders::get(conn, &c, &id)).unwrap();
    assert_eq!((o.status, o.conflict), (OrderStatus::Delivered, false));
}

/// Two replicas change a ticket's status while apart; the one that made many changes first (and
/// so wins Automerge's own tie-break on the field) changed it earlier. Every replica shows the
/// later change, and the history agrees with it; both comments stay.
#[test]
fn a_ticket_changed_on_two_replicas_keeps_the_later_status_and_every_comment() {
    let mut w = setup(2);
    apply(&mut w, &Op::NewTicket { node: 0, customer: 0 });
    apply(&mut w, &Op::Sync { from: 0, to: 1 });
    for _ in 0..3 {
        apply(&mut w, &Op::TicketComment { node: 0, ticket: 0 });
    }
    apply(&mut w, &Op::TicketStatus { node: 0, ticket: 0, to: 2 }); // waiting
    std::thread::sleep(std::time::Duration::from_millis(5));
    apply(&mut w, &Op::TicketComment { node: 1, ticket: 0 });
    apply(&mut w, &Op::TicketStatus { node: 1, ticket: 0, to: 3 }); // resolved, later
    converge(&w.nodes);
    check_equal(&w.nodes);
    let id = w.tickets[0].clone();
    for n in &w.nodes {
        let c = n.caller.clone();
        let t = n.replica.read(|conn| tickets::get(conn, &c, &id)).unwrap();
        assert_eq!(t.status, dashoffice_core::domain::TicketStatus::Resolved, "{t:?}");
        assert!(t.resolved_at.is_some());
        assert_eq!(t.comment_count, 4);
        let last = t.comments.iter().rev().find_map(|c| c.status);
        assert_eq!(last, Some(dashoffice_core::domain::TicketStatus::Resolved));
    }
}
