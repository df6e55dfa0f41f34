-- A ticket comment may also have gone to the customer on WhatsApp: the message it went as.

ALTER TABLE ticket_comments ADD COLUMN message_id TEXT;
