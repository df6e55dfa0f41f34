-- E-mails of an order's document (sales note, invoice or credit note as a PDF attachment). Staff
-- ask for one on any replica, offline too: the request is written into the order's document
-- (`emails`, a map by e-mail id); the relay sends it and writes back when the mail server took
-- it, or why it failed. This table is their projection, rebuilt from the order like its lines.

CREATE TABLE order_emails (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL,
    shop_id      TEXT NOT NULL,
    doc_id       TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    document     TEXT NOT NULL,
    lang         TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    requested_at INTEGER NOT NULL,
    requested_by TEXT NOT NULL DEFAULT '',
    sent_at      INTEGER,
    failed_at    INTEGER,
    error        TEXT
);
CREATE INDEX order_emails_order ON order_emails (order_id, requested_at);
-- What the relay's mail outbox reads: the e-mails still to send.
CREATE INDEX order_emails_queued ON order_emails (shop_id, requested_at) WHERE sent_at IS NULL AND failed_at IS NULL;
