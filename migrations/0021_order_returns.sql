-- Returns of goods (partial credit notes): the projection of an order record's `return:{id}`
-- entries. `accepted` is decided by the projection (units no longer there to return count for
-- nothing); the number is the return's legal credit note number once the numbering device gave it.

ALTER TABLE orders ADD COLUMN returned_total TEXT NOT NULL DEFAULT '0';

CREATE TABLE order_returns (
    order_id    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    shop_id     TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    by_user     TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    restock     INTEGER NOT NULL,
    accepted    INTEGER NOT NULL,
    subtotal    TEXT    NOT NULL,
    tax         TEXT    NOT NULL,
    total       TEXT    NOT NULL,
    provisional TEXT    NOT NULL,
    number      TEXT    NOT NULL,
    series      TEXT    NOT NULL,
    seq         INTEGER,
    posted_at   INTEGER,
    posted_by   TEXT    NOT NULL,
    -- Taken into account by the order's own credit note (issued after it).
    netted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, id)
) WITHOUT ROWID;
CREATE INDEX order_returns_series ON order_returns (shop_id, series, seq);
CREATE INDEX order_returns_unnumbered ON order_returns (number, accepted);

CREATE TABLE order_return_lines (
    order_id   TEXT    NOT NULL,
    return_id  TEXT    NOT NULL,
    idx        INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    product_id TEXT    NOT NULL,
    quantity   INTEGER NOT NULL,
    subtotal   TEXT    NOT NULL,
    tax        TEXT    NOT NULL,
    total      TEXT    NOT NULL,
    restocked  INTEGER NOT NULL,
    PRIMARY KEY (order_id, return_id, idx)
) WITHOUT ROWID;
CREATE INDEX order_return_lines_product ON order_return_lines (product_id, restocked);
