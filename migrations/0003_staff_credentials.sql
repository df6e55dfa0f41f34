-- Staff password hashes, projected from the shop's `credentials` document (one record per staff
-- account). Kept apart from the accounts so that the relay can keep them from `/sync` clients.
-- Accounts created before this version keep their hash in `staff.password_hash` until their
-- password is next changed; a row here wins over it.

CREATE TABLE staff_credentials (
    staff_id      TEXT PRIMARY KEY,
    shop_id       TEXT NOT NULL,
    doc_id        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
