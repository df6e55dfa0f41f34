-- Messages as an ordinary (rowid) table with a unique index on id, instead of a WITHOUT ROWID
-- table keyed on id. An inbound message's id is derived from its WhatsApp id (so a resent webhook
-- finds it), which scatters new rows over the whole table: under a burst every commit rewrote
-- nearly every page of it. Rows of 300–600 bytes (the text, the payload, the bot's explanation)
-- are also past the size for which SQLite advises WITHOUT ROWID. Now new rows are appended, only
-- the short id index takes scattered inserts, and the other indexes hold a rowid instead of the
-- 36-character id.
CREATE TABLE messages_rowid (
    id              TEXT    NOT NULL UNIQUE,
    shop_id         TEXT    NOT NULL,
    branch_id       TEXT    NOT NULL,
    doc_id          TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    direction       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    wamid           TEXT,
    status          TEXT    NOT NULL,
    error           TEXT,
    sender          TEXT    NOT NULL,
    context_wamid   TEXT,
    explain         TEXT,
    at              INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
INSERT INTO messages_rowid
    SELECT id, shop_id, branch_id, doc_id, conversation_id, direction, kind, text, payload, wamid, status,
           error, sender, context_wamid, explain, at, created_at
    FROM messages ORDER BY at, id;
DROP TABLE messages;
ALTER TABLE messages_rowid RENAME TO messages;
CREATE INDEX messages_conversation ON messages (conversation_id, at, id);
CREATE INDEX messages_wamid ON messages (wamid);
-- The outbox reads queued replies in (at, id) order: the id is now in the index (before, the
-- table's key was).
CREATE INDEX messages_queued ON messages (shop_id, at, id) WHERE direction = 'out' AND status = 'queued';
CREATE INDEX messages_by_direction ON messages (conversation_id, direction, at);
