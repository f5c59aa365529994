-- 3: a maintained balance per ledger account, and each task's frame count
-- as a column, so balances and a job's progress are answered without
-- reading the ledger or decoding task records.
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

-- A job's counts come from an index of (job_id, status, frames), so the
-- count after each acceptance does not visit every task row of the job.
ALTER TABLE tasks ADD COLUMN frames INTEGER NOT NULL DEFAULT 0;

-- Filling a derived column changes no task, so listeners are not told.
ALTER TABLE tasks DISABLE TRIGGER tasks_notify;
UPDATE tasks
SET frames = json_array_length(record::json -> 'frames')
WHERE json_typeof(record::json -> 'frames') = 'array';
ALTER TABLE tasks ENABLE TRIGGER tasks_notify;

CREATE INDEX tasks_job_status ON tasks (job_id, status, frames);
