-- 2: lease owners as columns (which worker holds a task, which manager
-- granted it), the indexes of the queue query and the lease sweep, and a
-- notification on every task change so managers sharing the database
-- learn of new and changed tasks without polling.
ALTER TABLE tasks
    ADD COLUMN lease_worker  TEXT,
    ADD COLUMN lease_manager TEXT;

-- Leases written before this migration live only in the JSON record.
UPDATE tasks
SET lease_worker  = record::jsonb #>> '{lease,worker}',
    lease_manager = record::jsonb #>> '{lease,manager}'
WHERE jsonb_typeof(record::jsonb -> 'lease') = 'object';

CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_lease_deadline ON tasks (lease_deadline_ms)
    WHERE lease_deadline_ms IS NOT NULL;
CREATE INDEX tasks_lease_manager ON tasks (lease_manager)
    WHERE lease_manager IS NOT NULL;
CREATE INDEX jobs_queue_order ON jobs (priority DESC, created_ms, seq);
-- The queue query walks active jobs in queue order and takes each one's
-- queued tasks by index: finished jobs and tasks are never visited.
CREATE INDEX jobs_active_queue_order ON jobs (priority DESC, created_ms, seq)
    WHERE state = 'active';
CREATE INDEX tasks_queued ON tasks (job_id, idx) WHERE status = 'queued';

-- The channel is per schema, so stores in different schemas of one
-- database do not wake each other. The payload is `<job id>/<index>`.
CREATE FUNCTION inferix_notify_task_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inferix_tasks_' || TG_TABLE_SCHEMA, NEW.job_id || '/' || NEW.idx);
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_notify
    AFTER INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION inferix_notify_task_change();
