-- Orders whose workflow forked between replicas can be settled by staff: a resolution is one
-- more entry of the order's transitions (see dashoffice_domain::order). Existing rows are plain
-- transitions.

ALTER TABLE order_transitions ADD COLUMN resolution INTEGER NOT NULL DEFAULT 0;
