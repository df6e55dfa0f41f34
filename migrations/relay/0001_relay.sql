-- The relay's store: documents (snapshot plus change log), the sync state of each device per
-- document, enrolled devices and one-time enrolment codes.

CREATE TABLE documents (
    doc_id       TEXT    PRIMARY KEY,
    repo_id      TEXT    NOT NULL UNIQUE,
    shop_id      TEXT    NOT NULL,
    branch_id    TEXT,
    snapshot     BLOB,
    change_count INTEGER NOT NULL DEFAULT 0,
    heads        BLOB    NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX documents_scope ON documents(shop_id, branch_id);

CREATE TABLE doc_changes (
    doc_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB    NOT NULL,
    PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;

CREATE TABLE sync_states (
    device_id TEXT NOT NULL,
    doc_id    TEXT NOT NULL,
    state     BLOB NOT NULL,
    PRIMARY KEY (device_id, doc_id)
) WITHOUT ROWID;

CREATE TABLE devices (
    id               TEXT    PRIMARY KEY,
    shop_id          TEXT    NOT NULL,
    branch_id        TEXT,
    name             TEXT    NOT NULL,
    cert_fingerprint TEXT    UNIQUE,
    token_hash       BLOB    UNIQUE,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    last_seen_at     INTEGER
);

CREATE TABLE enrolment_codes (
    code_hash  BLOB    PRIMARY KEY,
    shop_id    TEXT    NOT NULL,
    branch_id  TEXT,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
) WITHOUT ROWID;
