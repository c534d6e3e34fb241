-- Orders of the example shop.

-- calista:up postgres
CREATE TABLE orders (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer VARCHAR(100) NOT NULL,
    total    NUMERIC(12, 2) NOT NULL CHECK (total >= 0)
);
-- calista:up sqlite
CREATE TABLE orders (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    customer VARCHAR(100) NOT NULL,
    total    NUMERIC(12, 2) NOT NULL CHECK (total >= 0)
);

-- calista:down
DROP TABLE orders;
