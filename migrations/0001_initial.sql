-- DashOffice replica schema, version 1.
-- Local tables (this replica only) and the relational projection of the Automerge documents.
-- Forward-only: never edit a migration that has landed; add a new file.

-- This replica's identity: the Automerge actor id of its writes and the short code in order numbers.
CREATE TABLE device (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    actor      BLOB    NOT NULL,
    code       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Local settings of this replica: its shop, its home branch.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Local sequences (order numbers); bumped in the same transaction as the write that uses them.
CREATE TABLE sequences (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- Automerge documents: a compacted snapshot plus the changes made since it.
CREATE TABLE documents (
    doc_id       TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL,
    collection   TEXT NOT NULL,
    branch_id    TEXT,
    snapshot     BLOB,
    change_count INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX documents_scope ON documents (shop_id, branch_id);

CREATE TABLE doc_changes (
    doc_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    bytes  BLOB    NOT NULL,
    PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;

-- Changes received before the changes they depend on (out-of-order delivery): kept as received
-- until their dependencies arrive, so an acknowledged delivery is never lost to a restart.
CREATE TABLE pending_changes (
    id     INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    bytes  BLOB NOT NULL
);
CREATE INDEX pending_changes_doc ON pending_changes (doc_id);

-- Automerge sync states per peer and document, so a reconnect resumes.
CREATE TABLE sync_states (
    peer   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
) WITHOUT ROWID;

-- Login sessions of this replica; only a hash of each token is kept.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- ---------- projection: always equal to what the documents say ----------

CREATE TABLE shops (
    id           TEXT PRIMARY KEY,
    doc_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    currency     TEXT NOT NULL,
    phone_region TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE branches (
    id         TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    archived   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX branches_code ON branches (shop_id, code);

CREATE TABLE staff (
    id            TEXT PRIMARY KEY,
    shop_id       TEXT NOT NULL,
    doc_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL,
    branch_id     TEXT,
    password_hash TEXT NOT NULL,
    archived      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX staff_email ON staff (shop_id, email);

CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL,
    doc_id       TEXT NOT NULL,
    sku          TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    price        TEXT NOT NULL,
    price_num    REAL NOT NULL,
    currency     TEXT NOT NULL,
    tax_rate     TEXT NOT NULL,
    active       INTEGER NOT NULL,
    tags         TEXT NOT NULL,
    archived     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX products_sku ON products (shop_id, sku);
CREATE INDEX products_name ON products (shop_id, name, id);
CREATE INDEX products_created ON products (shop_id, created_at, id);
CREATE INDEX products_price ON products (shop_id, price_num, id);

CREATE TABLE stock (
    product_id TEXT NOT NULL,
    branch_id  TEXT NOT NULL,
    shop_id    TEXT NOT NULL,
    adjusted   INTEGER NOT NULL DEFAULT 0,
    committed  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, branch_id)
) WITHOUT ROWID;
CREATE INDEX stock_branch ON stock (branch_id, product_id);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    phone       TEXT,
    email       TEXT,
    tags        TEXT NOT NULL,
    notes       TEXT NOT NULL,
    wa_id       TEXT,
    merged_into TEXT,
    archived    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX customers_name ON customers (shop_id, name, id);
CREATE INDEX customers_created ON customers (shop_id, created_at, id);
CREATE INDEX customers_phone ON customers (phone);
CREATE INDEX customers_wa ON customers (wa_id);
CREATE INDEX customers_merged ON customers (merged_into);

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL,
    branch_id   TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    number      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    seller_id   TEXT NOT NULL,
    status      TEXT NOT NULL,
    conflict    INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    subtotal    TEXT NOT NULL,
    tax_total   TEXT NOT NULL,
    total       TEXT NOT NULL,
    total_num   REAL NOT NULL,
    notes       TEXT NOT NULL,
    archived    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX orders_created ON orders (shop_id, created_at, id);
CREATE INDEX orders_branch_status ON orders (branch_id, status);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_number ON orders (number);

CREATE TABLE order_lines (
    order_id   TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    sku        TEXT NOT NULL,
    name       TEXT NOT NULL,
    quantity   INTEGER NOT NULL,
    unit_price TEXT NOT NULL,
    tax_rate   TEXT NOT NULL,
    subtotal   TEXT NOT NULL,
    tax        TEXT NOT NULL,
    total      TEXT NOT NULL,
    PRIMARY KEY (order_id, idx)
) WITHOUT ROWID;
CREATE INDEX order_lines_product ON order_lines (product_id);

CREATE TABLE order_transitions (
    order_id    TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    by_user     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    device      TEXT NOT NULL,
    PRIMARY KEY (order_id, idx)
) WITHOUT ROWID;
