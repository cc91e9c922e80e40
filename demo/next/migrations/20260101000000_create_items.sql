CREATE TABLE items (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sku  TEXT
);
