-- The change log as an ordinary (rowid) table with a unique index on (doc_id, seq), instead of a
-- WITHOUT ROWID table keyed on them. In a WITHOUT ROWID table a row keeps at most ~1,000 bytes in
-- its B-tree page (4 KB pages) and spills the rest to an overflow page of its own: most changes
-- of a conversation (a message with the bot's answer) are 1–2.5 KB, so each one written was a
-- leaf cell plus a 4 KB overflow page mostly empty. The relay's bots benchmark wrote 24 MB of
-- pages for 6 MB of changes. A rowid table keeps rows up to ~4 KB in the page, and appends them in
-- the order they are written; the index holds only the short keys.
CREATE TABLE doc_changes_rowid (
    doc_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    bytes  BLOB    NOT NULL
);
INSERT INTO doc_changes_rowid (doc_id, seq, hash, bytes)
    SELECT doc_id, seq, hash, bytes FROM doc_changes ORDER BY doc_id, seq;
DROP TABLE doc_changes;
ALTER TABLE doc_changes_rowid RENAME TO doc_changes;
CREATE UNIQUE INDEX doc_changes_key ON doc_changes (doc_id, seq);
