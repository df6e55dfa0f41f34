-- Invoices with legal numbers. Staff issue an order's invoice on any replica, offline too: it
-- gets a provisional number unique per device at once. One device per branch numbers the
-- branch's invoices (the branch's `invoicer`, by default the device that created the branch):
-- it gives each issued invoice the next number of the branch's series, gap-free, and the number
-- syncs back to every replica.

ALTER TABLE branches ADD COLUMN invoice_series TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN invoicer       TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN invoicer_code  TEXT NOT NULL DEFAULT '';

ALTER TABLE orders ADD COLUMN invoice_provisional TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN invoice_issued_at   INTEGER;
ALTER TABLE orders ADD COLUMN invoice_issued_by   TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN invoice_number      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN invoice_series      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN invoice_seq         INTEGER;
ALTER TABLE orders ADD COLUMN invoice_posted_at   INTEGER;
ALTER TABLE orders ADD COLUMN invoice_posted_by   TEXT NOT NULL DEFAULT '';

-- A credit note undoes the invoice of an order cancelled or refunded afterwards: issued the
-- same way, numbered by the same device in the series `NC-{invoice series}`.
ALTER TABLE orders ADD COLUMN credit_provisional TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN credit_issued_at   INTEGER;
ALTER TABLE orders ADD COLUMN credit_issued_by   TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN credit_reason      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN credit_number      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN credit_series      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN credit_seq         INTEGER;
ALTER TABLE orders ADD COLUMN credit_posted_at   INTEGER;
ALTER TABLE orders ADD COLUMN credit_posted_by   TEXT NOT NULL DEFAULT '';

-- Invoices waiting for their legal number, in the order they were issued.
CREATE INDEX orders_invoice_pending ON orders (branch_id, invoice_issued_at)
    WHERE invoice_issued_at IS NOT NULL AND invoice_number = '';
CREATE INDEX orders_credit_pending ON orders (branch_id, credit_issued_at)
    WHERE credit_issued_at IS NOT NULL AND credit_number = '';
-- Legal numbers: the check that no number was given twice, and the highest number of a series
-- (queries name `… != ''` so that these partial indexes apply).
CREATE INDEX orders_invoice_number ON orders (shop_id, invoice_number) WHERE invoice_number != '';
CREATE INDEX orders_credit_number ON orders (shop_id, credit_number) WHERE credit_number != '';
CREATE INDEX orders_invoice_seq ON orders (shop_id, invoice_series, invoice_seq) WHERE invoice_number != '';
CREATE INDEX orders_credit_seq ON orders (shop_id, credit_series, credit_seq) WHERE credit_number != '';

-- The numbering device's own ledger (not a projection: a reindex keeps it): every legal number
-- it gave, unique per series, and one per order and kind (`invoice` or `credit_note`). A number
-- is taken in the same transaction as the change that writes it into the order, so a failed
-- write gives it back and no number is skipped or given twice.
CREATE TABLE invoice_ledger (
    shop_id   TEXT    NOT NULL,
    series    TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    order_id  TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    posted_at INTEGER NOT NULL,
    PRIMARY KEY (shop_id, series, seq),
    UNIQUE (order_id, kind)
) WITHOUT ROWID;
