//! Staff password hashes live in the shop's `credentials` document, never in the staff document
//! that `/sync` clients may read; accounts written by an older version keep working.

use automerge::{ActorId, ObjType, ReadDoc, transaction::Transactable};
use dashoffice_core::{
    doc::{self, DocId},
    domain::api::UpdateStaff,
    entities::staff,
};

use crate::fixtures::{push_all, shop};

/// Every value any change of the document ever wrote, as text.
fn history_text(d: &automerge::Automerge) -> String {
    d.get_changes(&[]).iter().map(|c| format!("{:?}", c.decode().operations)).collect()
}

fn login(r: &dashoffice_core::Replica, shop: &str, email: &str, password: &str) -> bool {
    let (shop, email, password) = (shop.to_string(), email.to_string(), password.to_string());
    r.read(move |c| staff::check_login(c, &shop, &email, &password)).is_ok()
}

#[test]
fn password_hashes_stay_out_of_the_staff_document_and_every_replica_logs_staff_in() {
    let nodes = shop(2);
    let shop_id = nodes[0].caller.shop_id.clone();
    let second = &nodes[1].replica;
    // The other replica logs the owner in from what it received.
    assert!(login(second, &shop_id, "ana@tienda.mx", "contraseña-segura"));
    assert!(!login(second, &shop_id, "ana@tienda.mx", "otra-contraseña"));

    let staff_doc = second.load_doc(&DocId::staff(&shop_id)).unwrap().unwrap();
    let text = history_text(&staff_doc);
    assert!(text.contains("ana@tienda.mx"), "the account is in the staff document");
    assert!(!text.contains("argon2"), "a password hash in the staff document's history: {text}");
    let creds = second.load_doc(&DocId::credentials(&shop_id)).unwrap().expect("the credentials document synced");
    let owner = &nodes[0].caller.user_id;
    let o = doc::record(&creds, owner).unwrap().expect("the owner's credential");
    assert!(doc::fields(&creds, &o).str("password_hash").starts_with("$argon2id$"));

    // A new password, changed on the second replica, works on the first once synced; the old
    // one no longer does.
    let caller = nodes[1].caller.clone();
    let id = owner.clone();
    // One's own password: the current one is asked for.
    let c2 = caller.clone();
    let (i2, no_current) =
        (id.clone(), UpdateStaff { password: Some("nueva-contraseña-1".into()), ..Default::default() });
    let refused = second.write_blocking(move |ctx| staff::update(ctx, &c2, &i2, no_current));
    assert!(refused.is_err_and(|e| e.to_string().contains("current_password")));
    let update = UpdateStaff {
        password: Some("nueva-contraseña-1".into()),
        current_password: Some("contraseña-segura".into()),
        ..Default::default()
    };
    second.write_blocking(move |ctx| staff::update(ctx, &caller, &id, update)).unwrap();
    push_all(second, &nodes[0].replica);
    assert!(login(&nodes[0].replica, &shop_id, "ana@tienda.mx", "nueva-contraseña-1"));
    assert!(!login(&nodes[0].replica, &shop_id, "ana@tienda.mx", "contraseña-segura"));
}

/// An account that an older version wrote, hash inside the staff record, logs in as before; its
/// first password change moves the hash to the credentials document and out of the account.
#[test]
fn an_account_with_its_hash_in_the_staff_record_logs_in_and_moves_it_on_a_password_change() {
    let nodes = shop(1);
    let (r, shop_id) = (&nodes[0].replica, nodes[0].caller.shop_id.clone());
    let id = DocId::staff(&shop_id);
    // What the older version wrote: a seller whose record holds its own hash.
    let mut old = r.load_doc(&id).unwrap().unwrap();
    old.set_actor(ActorId::from(vec![9; 16]));
    let before = old.get_heads();
    let legacy_hash = {
        use argon2::{PasswordHasher, password_hash::SaltString};
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        argon2::Argon2::default().hash_password(b"clave-antigua-1", &salt).unwrap().to_string()
    };
    let records = doc::records_obj(&old).unwrap();
    let mut tx = old.transaction();
    let o = tx.put_object(&records, "legacy-1", ObjType::Map).unwrap();
    for (k, v) in [("name", "Luis"), ("email", "luis@tienda.mx"), ("role", "manager"), ("branch_id", "")] {
        tx.put(&o, k, v).unwrap();
    }
    tx.put(&o, "password_hash", legacy_hash.as_str()).unwrap();
    tx.put(&o, "archived", false).unwrap();
    tx.put(&o, "created_at", 1_i64).unwrap();
    tx.put(&o, "updated_at", 1_i64).unwrap();
    tx.commit();
    r.apply_changes_blocking(&id, old.save_after(&before)).unwrap();
    assert!(login(r, &shop_id, "luis@tienda.mx", "clave-antigua-1"));

    let caller = nodes[0].caller.clone();
    let update = UpdateStaff { password: Some("clave-nueva-22".into()), ..Default::default() };
    r.write_blocking(move |ctx| staff::update(ctx, &caller, "legacy-1", update)).unwrap();
    assert!(login(r, &shop_id, "luis@tienda.mx", "clave-nueva-22"));
    assert!(!login(r, &shop_id, "luis@tienda.mx", "clave-antigua-1"));
    let now = r.load_doc(&id).unwrap().unwrap();
    let rec = doc::record(&now, "legacy-1").unwrap().unwrap();
    assert!(now.get(&rec, "password_hash").unwrap().is_none(), "the old hash left the account");
}

/// A replica that joined a shop and has not received its accounts yet knows it is waiting, so a
/// failed login can say "still receiving" instead of "wrong password".
#[test]
fn a_joined_replica_knows_when_the_accounts_have_not_arrived() {
    let nodes = shop(1);
    let shop_id = nodes[0].caller.shop_id.clone();
    let pending = |r: &dashoffice_core::Replica| {
        let s = shop_id.clone();
        r.read(move |c| staff::credentials_pending(c, &s)).unwrap()
    };
    assert!(!pending(&nodes[0].replica));
    let (fresh, _dir) = crate::fixtures::open_node();
    let branch: String = nodes[0].replica.home_branch().unwrap().unwrap();
    fresh.join(&shop_id, &branch).unwrap();
    assert!(pending(&fresh), "no account has arrived yet");
    // The staff document alone is not enough: the hashes come in their own document.
    let staff_doc = DocId::staff(&shop_id);
    fresh.apply_changes_blocking(&staff_doc, nodes[0].replica.changes_since(&staff_doc, &[]).unwrap()).unwrap();
    assert!(pending(&fresh), "accounts without their hashes");
    push_all(&nodes[0].replica, &fresh);
    assert!(!pending(&fresh));
    assert!(login(&fresh, &shop_id, "ana@tienda.mx", "contraseña-segura"));
}

/// An owner corrects a member's e-mail (the login) and sets a new password for them without
/// knowing the old one; the e-mail stays unique in the shop.
#[test]
fn a_manager_changes_a_members_email_and_password() {
    use dashoffice_core::domain::{Role, api::CreateStaff};
    let nodes = shop(1);
    let (r, shop_id) = (&nodes[0].replica, nodes[0].caller.shop_id.clone());
    let caller = nodes[0].caller.clone();
    let c = caller.clone();
    let made = r
        .write_blocking(move |ctx| {
            staff::create(
                ctx,
                Some(&c),
                &c.shop_id.clone(),
                CreateStaff {
                    name: "Marta".into(),
                    email: "marta@tienda.mx".into(),
                    role: Role::Support,
                    branch_id: None,
                    password: "clave-marta-1".into(),
                },
            )
        })
        .unwrap();
    let update = |u: UpdateStaff| {
        let (c, id) = (caller.clone(), made.id.clone());
        r.write_blocking(move |ctx| staff::update(ctx, &c, &id, u))
    };
    let taken = update(UpdateStaff { email: Some("ANA@tienda.mx".into()), ..Default::default() });
    assert!(taken.is_err_and(|e| e.to_string().contains("already has an account")));
    let bad = update(UpdateStaff { email: Some("no-at-sign".into()), ..Default::default() });
    assert!(bad.is_err_and(|e| e.to_string().contains("email")));
    let v = update(UpdateStaff {
        email: Some(" Marta.Diaz@Tienda.mx ".into()),
        password: Some("clave-marta-2".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(v.email, "marta.diaz@tienda.mx");
    assert!(login(r, &shop_id, "marta.diaz@tienda.mx", "clave-marta-2"));
    assert!(!login(r, &shop_id, "marta@tienda.mx", "clave-marta-2"));
    assert!(!login(r, &shop_id, "marta.diaz@tienda.mx", "clave-marta-1"));
    // Its own address again is no conflict.
    update(UpdateStaff { email: Some("marta.diaz@tienda.mx".into()), ..Default::default() }).unwrap();
    // One's own login changes only with one's current password.
    let own = |u: UpdateStaff| {
        let (c, id) = (caller.clone(), caller.user_id.clone());
        r.write_blocking(move |ctx| staff::update(ctx, &c, &id, u))
    };
    let no_password = own(UpdateStaff { email: Some("duena@tienda.mx".into()), ..Default::default() });
    assert!(no_password.is_err_and(|e| e.to_string().contains("current_password")));
    own(UpdateStaff {
        email: Some("duena@tienda.mx".into()),
        current_password: Some("contraseña-segura".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(login(r, &shop_id, "duena@tienda.mx", "contraseña-segura"));
}
