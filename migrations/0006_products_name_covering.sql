-- The products list searched by name or SKU (`q`, a LIKE '%…%' that no index can seek) walks
-- products_name in name order and tests each entry on the index alone: it holds every column that
-- list's filters read. Before, each of the shop's products was read from the table to be tested
-- (100,000 random reads for a search that matches a few; docs/PERFORMANCE.md).
--
-- products_sku holds the same columns, so that looking a SKU up stays a seek on it: with only
-- products_name covering those columns, SQLite's planner preferred walking all of products_name
-- to a seek on products_sku plus a read of the row (an import of 100,000 products then never
-- finished).

DROP INDEX products_name;
CREATE INDEX products_name ON products (shop_id, name, id, sku, archived, active);
DROP INDEX products_sku;
CREATE INDEX products_sku ON products (shop_id, sku, id, archived, active);
