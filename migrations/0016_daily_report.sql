-- The daily summary e-mailed to the shop's owners and managers: the hour of the day (shop time)
-- it goes at, or NULL when off.

ALTER TABLE shops ADD COLUMN daily_report_hour INTEGER;
