-- A conversation's unread count (its inbound messages after staff last read it) and its last
-- inbound message are read for every conversation shown and for every message the bot answers.
-- On messages_conversation (conversation_id, at, id) the count read each of those messages from
-- the table to test its direction: a conversation only the bot answers is never read by staff, so
-- every answer walked its whole history (10 % of the relay's writer in the bots benchmark, and
-- growing with each message). On this index both are read from the index alone: the count walks
-- only the unread inbound entries, the last inbound message is one seek.
CREATE INDEX messages_by_direction ON messages (conversation_id, direction, at);
