-- 5: how each account's nodes behaved (reputation, counts, ban), apart
-- from the account's record so the manager and operators never overwrite
-- each other. The record is JSON text like the other records.
CREATE TABLE node_standing (
    name   TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
