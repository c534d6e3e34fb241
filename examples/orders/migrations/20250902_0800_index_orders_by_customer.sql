-- Orders are looked up by customer. On PostgreSQL the index is built CONCURRENTLY, so
-- the shop keeps taking orders while it builds; that cannot run in a transaction.
-- calista:no-transaction

-- calista:up postgres
CREATE INDEX CONCURRENTLY ix_orders_customer ON orders (customer);
-- calista:up sqlite
CREATE INDEX ix_orders_customer ON orders (customer);

-- calista:down
DROP INDEX ix_orders_customer;
