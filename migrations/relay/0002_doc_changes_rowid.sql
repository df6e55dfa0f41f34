-- The relay's change log as an ordinary (rowid) table with a unique index on (doc_id, seq), for
-- the reason given in migrations/0008_doc_changes_rowid.sql: in a WITHOUT ROWID table every change
-- over ~1,000 bytes took a 4 KB overflow page of its own.
CREATE TABLE doc_changes_rowid (
    doc_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB    NOT NULL
);
INSERT INTO doc_changes_rowid (doc_id, seq, bytes)
    SELECT doc_id, seq, bytes FROM doc_changes ORDER BY doc_id, seq;
DROP TABLE doc_changes;
ALTER TABLE doc_changes_rowid RENAME TO doc_changes;
CREATE UNIQUE INDEX doc_changes_key ON doc_changes (doc_id, seq);
