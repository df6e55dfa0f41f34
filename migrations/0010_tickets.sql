-- Support tickets (documents: tickets, 1,024 shards per shop) and their comments.

CREATE TABLE tickets (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    doc_id          TEXT NOT NULL,
    number          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL,
    priority        TEXT NOT NULL,
    customer_id     TEXT,
    order_id        TEXT,
    conversation_id TEXT,
    assignee_id     TEXT,
    assigned_at     INTEGER NOT NULL,
    assigned_by     TEXT,
    branch_id       TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    resolved_at     INTEGER,
    comment_count   INTEGER NOT NULL
);
CREATE INDEX tickets_recent ON tickets (shop_id, created_at, id);
CREATE INDEX tickets_status ON tickets (shop_id, status, created_at);
CREATE INDEX tickets_customer ON tickets (customer_id);
CREATE INDEX tickets_order ON tickets (order_id);
CREATE INDEX tickets_assignee ON tickets (assignee_id, status);

CREATE TABLE ticket_comments (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL,
    author_id   TEXT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_id, created_at);
