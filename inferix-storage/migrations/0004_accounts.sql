-- 4: accounts of users and operators, with their API keys' hashes. The
-- record is JSON text like the other records.
CREATE TABLE accounts (
    name   TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
