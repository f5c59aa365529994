-- 1: tables. Full records are JSON text so the domain model can grow
-- without a migration per field; the columns that queries filter and sort
-- on are real columns. Jobs keep `seq` because the queue breaks ties
-- between jobs of equal priority and age by insertion order.
CREATE TABLE jobs (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    priority   INTEGER NOT NULL,
    created_ms BIGINT  NOT NULL,
    state      TEXT    NOT NULL,
    record     TEXT    NOT NULL
);

CREATE TABLE tasks (
    job_id            TEXT   NOT NULL,
    idx               BIGINT NOT NULL,
    status            TEXT   NOT NULL,
    lease_deadline_ms BIGINT,
    version           BIGINT NOT NULL,
    record            TEXT   NOT NULL,
    PRIMARY KEY (job_id, idx)
);

CREATE TABLE transactions (
    seq    BIGSERIAL PRIMARY KEY,
    id     TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
