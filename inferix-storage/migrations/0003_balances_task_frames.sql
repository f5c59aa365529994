-- 3: a maintained balance per ledger account, each task's frame count as
-- a column, and per job and status the number of tasks and frames, kept by
-- triggers, so balances and a job's progress are answered without reading
-- the ledger or visiting the job's tasks.
--
-- Accounts are keyed by their JSON as JSONB: jsonb equality ignores key
-- order and whitespace, so a key written by any serializer matches.
CREATE TABLE balances (
    account JSONB  PRIMARY KEY,
    amount  BIGINT NOT NULL
);

-- Transactions written before this migration live only in the ledger.
INSERT INTO balances (account, amount)
SELECT p -> 'account', SUM((p ->> 'amount')::bigint)::bigint
FROM transactions t, jsonb_array_elements(t.record::jsonb -> 'postings') p
GROUP BY 1;

-- Each task's frame count, so frames are counted without decoding records.
ALTER TABLE tasks ADD COLUMN frames INTEGER NOT NULL DEFAULT 0;

-- Filling a derived column changes no task, so listeners are not told.
ALTER TABLE tasks DISABLE TRIGGER tasks_notify;
UPDATE tasks
SET frames = json_array_length(record::json -> 'frames')
WHERE json_typeof(record::json -> 'frames') = 'array';
ALTER TABLE tasks ENABLE TRIGGER tasks_notify;

-- A job's counts are asked for after every accepted task, so they are kept
-- per (job, status) instead of counted over the job's rows each time. Rows
-- whose count falls to zero stay, and are left out by readers.
CREATE TABLE job_counts (
    job_id TEXT   NOT NULL,
    status TEXT   NOT NULL,
    tasks  BIGINT NOT NULL,
    frames BIGINT NOT NULL,
    PRIMARY KEY (job_id, status)
);

-- Counted after the frame backfill above, and before the triggers below
-- exist, so every existing task is counted exactly once.
INSERT INTO job_counts (job_id, status, tasks, frames)
SELECT job_id, status, COUNT(*), SUM(frames)
FROM tasks
GROUP BY 1, 2;

-- Statement triggers with transition tables: one statement writing many
-- tasks (a job's insert, a batch claim) changes each counter once, and an
-- update that moves no task between statuses (a record change, a lease
-- renewal) touches no counter. Changes are applied in (job, status) order,
-- so concurrent writers lock counters in one order and cannot deadlock on
-- them; task rows are all locked before any counter is.
CREATE FUNCTION inferix_count_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_counts AS c (job_id, status, tasks, frames)
        SELECT job_id, status, COUNT(*), SUM(frames)
        FROM new_rows
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (job_id, status) DO UPDATE
        SET tasks = c.tasks + excluded.tasks, frames = c.frames + excluded.frames;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_counts AS c (job_id, status, tasks, frames)
        SELECT job_id, status, -COUNT(*), -SUM(frames)
        FROM old_rows
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (job_id, status) DO UPDATE
        SET tasks = c.tasks + excluded.tasks, frames = c.frames + excluded.frames;
    ELSE
        INSERT INTO job_counts AS c (job_id, status, tasks, frames)
        SELECT job_id, status, SUM(n), SUM(f)
        FROM (
            SELECT job_id, status, 1 AS n, frames::bigint AS f FROM new_rows
            UNION ALL
            SELECT job_id, status, -1, -frames::bigint FROM old_rows
        ) d
        GROUP BY 1, 2
        HAVING SUM(n) <> 0 OR SUM(f) <> 0
        ORDER BY 1, 2
        ON CONFLICT (job_id, status) DO UPDATE
        SET tasks = c.tasks + excluded.tasks, frames = c.frames + excluded.frames;
    END IF;
    RETURN NULL;
END
$$;

-- The counters of this schema, whatever search path a writer has: without
-- this, a connection whose path names another store's schema would count
-- this schema's tasks there.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION inferix_count_tasks() SET search_path = %I',
                   current_schema());
END
$$;

CREATE TRIGGER tasks_count_insert
    AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inferix_count_tasks();
CREATE TRIGGER tasks_count_update
    AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inferix_count_tasks();
CREATE TRIGGER tasks_count_delete
    AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inferix_count_tasks();
