-- A shop may have invoices and credit notes e-mailed to the customer as they are issued: the
-- issuing write asks for the e-mail itself (marked automatic), on any replica.

ALTER TABLE shops ADD COLUMN email_invoices INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_emails ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0;
