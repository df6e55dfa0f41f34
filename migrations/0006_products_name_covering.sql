-- The products list searched by name or SKU (`q`, a LIKE '%…%' that no index can seek) walks this
-- index in name order and tests each entry on the index alone: it holds every column that list's
-- filters read. Before, each of the shop's products was read from the table to be tested
-- (100,000 random reads for a search that matches a few; docs/PERFORMANCE.md).

DROP INDEX products_name;
CREATE INDEX products_name ON products (shop_id, name, id, sku, archived, active);
