-- The satisfaction survey: a shop may ask customers to rate a resolved WhatsApp conversation.
-- The conversation keeps the latest rating and when the last survey went; every rating stays a
-- message of its own (an interactive reply whose button id is `csat:good`, `csat:ok` or
-- `csat:bad`), as every survey does (reply buttons with those ids), which the analytics count.

ALTER TABLE shops ADD COLUMN satisfaction_survey INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shops ADD COLUMN satisfaction_question TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN rating TEXT;
ALTER TABLE conversations ADD COLUMN rated_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN survey_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_csat ON messages (shop_id, at) WHERE payload LIKE '%"csat:%';
