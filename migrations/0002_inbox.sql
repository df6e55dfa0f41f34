-- The WhatsApp inbox projection (documents: conversations, messages, inbox).

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    branch_id       TEXT NOT NULL,
    doc_id          TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    customer_name   TEXT NOT NULL,
    wa_id           TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    state           TEXT NOT NULL,
    assignee_id     TEXT,
    assigned_at     INTEGER NOT NULL,
    labels          TEXT NOT NULL,
    read_at         INTEGER NOT NULL,
    needs_template  INTEGER NOT NULL,
    bot_node        TEXT NOT NULL,
    misunderstood   INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX conversations_recent ON conversations (shop_id, updated_at, id);
CREATE INDEX conversations_customer ON conversations (customer_id);
CREATE INDEX conversations_assignee ON conversations (assignee_id, assigned_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    branch_id       TEXT NOT NULL,
    doc_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    direction       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    wamid           TEXT,
    status          TEXT NOT NULL,
    error           TEXT,
    sender          TEXT NOT NULL,
    context_wamid   TEXT,
    explain         TEXT,
    at              INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX messages_conversation ON messages (conversation_id, at, id);
CREATE INDEX messages_wamid ON messages (wamid);
CREATE INDEX messages_queued ON messages (shop_id, at) WHERE direction = 'out' AND status = 'queued';

CREATE TABLE inbox_items (
    id         TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    body       TEXT NOT NULL,
    archived   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX inbox_items_kind ON inbox_items (shop_id, kind, key);

-- Media files received on WhatsApp (the bytes stay in their document).
CREATE TABLE attachments (
    sha256     TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL,
    branch_id  TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    mime_type  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
