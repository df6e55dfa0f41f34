-- The WhatsApp notices of an order that could not go, by status (a JSON object of
-- {"reason", "at"}): staff see why the customer was not told.

ALTER TABLE orders ADD COLUMN notice_skips TEXT NOT NULL DEFAULT '{}';
