-- The relay's WhatsApp store (whatsapp.db, separate from relay.db so webhook ingest never waits
-- for sync writes). Raw webhook events are kept as received, then processed into the shops'
-- documents; the outbox makes sure every reply is handed to WhatsApp at most once.

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    body         BLOB NOT NULL,
    -- 0 pending, 1 done, 2 ignored (unknown number, not a WhatsApp event), 3 failed
    state        INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    processed_at INTEGER
);
CREATE INDEX events_pending ON events (state, id);

-- Delivery reports whose message the relay does not know yet (they can overtake the send).
CREATE TABLE orphan_statuses (
    wamid       TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    shop_id     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (wamid, status)
) WITHOUT ROWID;

-- The shops' WhatsApp numbers and their Graph API access tokens.
CREATE TABLE numbers (
    phone_number_id TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    branch_id       TEXT,
    display_number  TEXT NOT NULL DEFAULT '',
    access_token    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One row per outbound message ever handed to the sender: state sending, sent, retry, failed.
CREATE TABLE outbox (
    message_id  TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL DEFAULT 0,
    wamid       TEXT,
    error       TEXT,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX outbox_state ON outbox (state, next_at);
