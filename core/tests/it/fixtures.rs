//! Replicas of one shop in temporary folders, and helpers to sync and compare them.

use dashoffice_core::{
    BootstrapInput, Caller, Durability, OpenOptions, Replica,
    domain::{Role, api::CreateProduct},
};
use tempfile::TempDir;

pub(crate) struct Node {
    pub(crate) replica: Replica,
    pub(crate) caller: Caller,
    pub(crate) _dir: TempDir,
}

pub(crate) fn open_node() -> (Replica, TempDir) {
    open_node_with(OpenOptions::default())
}

fn open_node_with(opts: OpenOptions) -> (Replica, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = Replica::open(dir.path(), OpenOptions { durability: Durability::Normal, readers: 2, ..opts }).unwrap();
    (r, dir)
}

/// `n` replicas of one freshly bootstrapped shop, all synced.
pub(crate) fn shop(n: usize) -> Vec<Node> {
    shop_with(n, OpenOptions::default)
}

/// [`shop`], each replica opened with `opts()` (a clock of its own, say).
pub(crate) fn shop_with(n: usize, opts: impl Fn() -> OpenOptions) -> Vec<Node> {
    let (first, dir) = open_node_with(opts());
    let boot = first.bootstrap(BootstrapInput::example()).unwrap().unwrap();
    let owner: String = first.read(|c| Ok(c.query_row("SELECT id FROM staff", [], |r| r.get(0))?)).unwrap();
    let caller = Caller { user_id: owner, shop_id: boot.shop_id.clone(), role: Role::Owner, branch_id: None };
    let mut nodes = vec![Node { replica: first, caller: caller.clone(), _dir: dir }];
    for _ in 1..n {
        let (r, dir) = open_node_with(opts());
        r.join(&boot.shop_id, &boot.branch_id).unwrap();
        nodes.push(Node { replica: r, caller: caller.clone(), _dir: dir });
    }
    for i in 1..n {
        sync_pair(&nodes[0].replica, &nodes[i].replica);
    }
    nodes
}

/// Sends every change of every document of `from` to `to` (duplicates included).
pub(crate) fn push_all(from: &Replica, to: &Replica) {
    for id in from.doc_ids().unwrap() {
        let bytes = from.changes_since(&id, &[]).unwrap();
        to.apply_changes_blocking(&id, bytes).unwrap();
    }
}

/// Sends every change of every document of `from` to `to` one change at a time, documents and
/// changes shuffled by `seed`, about one in four sent twice: the network at its worst.
pub(crate) fn push_shuffled(from: &Replica, to: &Replica, seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut items = Vec::new();
    for id in from.doc_ids().unwrap() {
        let d = from.load_doc(&id).unwrap().unwrap();
        for c in d.get_changes(&[]) {
            items.push((id.clone(), c.raw_bytes().to_vec()));
        }
    }
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
    for (id, bytes) in items {
        let dup = next() % 4 == 0;
        to.apply_changes_blocking(&id, bytes.clone()).unwrap();
        if dup {
            to.apply_changes_blocking(&id, bytes).unwrap();
        }
    }
}

pub(crate) fn sync_pair(a: &Replica, b: &Replica) {
    push_all(a, b);
    push_all(b, a);
}

/// Every projection row, as sorted text, for comparing replicas.
pub(crate) fn projection_dump(r: &Replica) -> Vec<String> {
    let tables = [
        (
            "shops",
            "id, name, currency, phone_region, timezone, created_at, updated_at, legal_name, tax_id, address, phone, email",
        ),
        ("branches", "id, shop_id, code, name, archived, created_at, updated_at, address, phone"),
        ("staff", "id, name, email, role, branch_id, password_hash, archived"),
        ("staff_credentials", "staff_id, shop_id, doc_id, password_hash, updated_at"),
        (
            "products",
            "id, sku, name, description, price, currency, tax_rate, active, tags, archived, created_at, updated_at",
        ),
        ("customers", "id, name, phone, email, tags, notes, wa_id, merged_into, archived, tax_id, address"),
        (
            "stock",
            "product_id, branch_id, adjusted, committed FROM stock WHERE NOT (adjusted = 0 AND committed = 0) --",
        ),
        (
            "orders",
            "id, branch_id, doc_id, number, customer_id, seller_id, status, conflict, currency, subtotal, tax_total, total, notes, archived",
        ),
        ("order_lines", "order_id, idx, product_id, sku, name, quantity, unit_price, tax_rate, subtotal, tax, total"),
        ("order_transitions", "order_id, idx, from_status, to_status, by_user, at, device"),
        (
            "tickets",
            "id, doc_id, number, subject, description, status, priority, customer_id, order_id, assignee_id, assigned_at,
             assigned_by, branch_id, created_by, created_at, updated_at, due_at, resolved_at, comment_count",
        ),
        ("ticket_comments", "id, ticket_id, author_id, body, status, created_at"),
    ];
    r.read(|c| {
        let mut out = Vec::new();
        for (t, cols) in tables {
            let mut stmt = c.prepare(&format!("SELECT {cols} FROM {t}")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |row| {
                    let vals: Vec<String> = (0..n).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
                    Ok(format!("{t}: {}", vals.join(" | ")))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            out.extend(rows);
        }
        Ok(out)
    })
    .unwrap()
}

/// Heads of every document, sorted.
pub(crate) fn heads_dump(r: &Replica) -> Vec<String> {
    let mut v: Vec<String> = r
        .doc_ids()
        .unwrap()
        .into_iter()
        .map(|id| {
            let mut h: Vec<String> = r.heads(&id).unwrap().iter().map(|h| h.to_string()).collect();
            h.sort();
            format!("{id}: {}", h.join(","))
        })
        .collect();
    v.sort();
    v
}

/// A product to create: `sku` (also its name) at `price`, everything else default.
pub(crate) fn product_input(sku: &str, price: &str) -> CreateProduct {
    CreateProduct {
        sku: sku.into(),
        name: sku.into(),
        description: String::new(),
        price: price.into(),
        currency: None,
        tax_rate: None,
        active: None,
        tags: vec![],
    }
}
