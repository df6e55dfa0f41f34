-- The language of the e-mails a customer gets (es or en): their automatic invoice and credit note
-- e-mails are written in it.

ALTER TABLE customers ADD COLUMN lang TEXT NOT NULL DEFAULT 'es';
