-- Each owner's and manager's own choice for the daily summary e-mail: whether they get it, and
-- the language it is written in (es or en). Accounts made before get it, in Spanish, as before.

ALTER TABLE staff ADD COLUMN daily_summary INTEGER NOT NULL DEFAULT 1;
ALTER TABLE staff ADD COLUMN lang TEXT NOT NULL DEFAULT 'es';
