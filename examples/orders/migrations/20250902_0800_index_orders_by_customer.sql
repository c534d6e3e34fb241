-- calista:up
CREATE INDEX ix_orders_customer ON orders (customer);

-- calista:down
DROP INDEX ix_orders_customer;
