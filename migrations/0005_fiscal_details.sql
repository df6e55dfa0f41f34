-- What a sales document prints beyond names: the shop's legal name, tax id (RFC, CUIT, NIT…),
-- fiscal address, phone and e-mail; each branch's address and phone; each customer's tax id and
-- billing address. Empty when not given; the documents' records carry the truth.

ALTER TABLE shops ADD COLUMN legal_name TEXT NOT NULL DEFAULT '';
ALTER TABLE shops ADD COLUMN tax_id     TEXT NOT NULL DEFAULT '';
ALTER TABLE shops ADD COLUMN address    TEXT NOT NULL DEFAULT '';
ALTER TABLE shops ADD COLUMN phone      TEXT NOT NULL DEFAULT '';
ALTER TABLE shops ADD COLUMN email      TEXT NOT NULL DEFAULT '';

ALTER TABLE branches ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN phone   TEXT NOT NULL DEFAULT '';

ALTER TABLE customers ADD COLUMN tax_id  TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN address TEXT NOT NULL DEFAULT '';
