-- The products list searched by name or SKU (`q`, a LIKE '%…%' that no index can seek) walks
-- products_name in name order and tests each entry on the index alone: the name, and whether the
-- product is archived or active, are in it; a SKU match comes from a walk of products_sku, which
-- holds the id (WITHOUT ROWID). Before, each of the shop's products was read from the table to be
-- tested (100,000 random reads for a search that matches a few; docs/PERFORMANCE.md).
--
-- Only two small integers are added: adding the SKU to this index (and to products_sku, so that a
-- SKU lookup stays a seek there) made every product's projection dearer, and a sync of 20,000
-- new products about 10 % slower.

DROP INDEX products_name;
CREATE INDEX products_name ON products (shop_id, name, id, archived, active);
