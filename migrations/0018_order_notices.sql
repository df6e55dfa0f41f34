-- WhatsApp notices to the customer when an order reaches a status: the shop's texts by status
-- (a JSON object) and the template that goes instead outside the 24-hour window.

ALTER TABLE shops ADD COLUMN order_notices TEXT NOT NULL DEFAULT '{}';
ALTER TABLE shops ADD COLUMN order_notice_template TEXT;
