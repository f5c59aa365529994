//! The schema and how a database reaches it: numbered migrations, applied
//! in order under the write lock.

use super::*;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released entry: append a new one, so every
/// existing database reaches the same schema by the same path.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: tables. Jobs keep an autoincrement `seq` because the queue breaks
    // ties between jobs of equal priority and age by insertion order.
    "CREATE TABLE jobs (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT    NOT NULL UNIQUE,
        priority   INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        state      TEXT    NOT NULL,
        record     TEXT    NOT NULL
    );
    CREATE TABLE tasks (
        job_id            TEXT    NOT NULL,
        idx               INTEGER NOT NULL,
        status            TEXT    NOT NULL,
        lease_deadline_ms INTEGER,
        version           INTEGER NOT NULL,
        record            TEXT    NOT NULL,
        PRIMARY KEY (job_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE transactions (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        id     TEXT    NOT NULL UNIQUE,
        record TEXT    NOT NULL
    );",
    // 2: indexes for the scheduler's queue query and the lease sweep.
    "CREATE INDEX tasks_status ON tasks (status);
    CREATE INDEX tasks_lease_deadline ON tasks (lease_deadline_ms)
        WHERE lease_deadline_ms IS NOT NULL;
    CREATE INDEX jobs_queue_order ON jobs (priority DESC, created_ms, seq);",
    // 3: a maintained balance per ledger account, and each task's frame
    // count as a column, so balances and a job's progress are answered
    // without reading the ledger or decoding task records. Accounts are
    // keyed by their compact serde_json text, which is what SQLite's JSON
    // functions give back for the `account` objects of stored records
    // (keys in written order, string escapes as written). A job's counts
    // per status are kept by triggers in `job_counts`: counting the job's
    // rows on every acceptance made a job of N tasks cost O(N²).
    // An undecodable ledger record fails the migration (rolled back, the
    // database stays at version 2) rather than leave a wrong balance.
    "CREATE TABLE balances (
        account TEXT    PRIMARY KEY,
        amount  INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO balances (account, amount)
        SELECT json_extract(p.value, '$.account'), SUM(json_extract(p.value, '$.amount'))
        FROM transactions t, json_each(t.record, '$.postings') p
        GROUP BY 1;
    ALTER TABLE tasks ADD COLUMN frames INTEGER NOT NULL DEFAULT 0;
    UPDATE tasks SET frames = COALESCE(json_array_length(record, '$.frames'), 0)
        WHERE json_valid(record);
    CREATE TABLE job_counts (
        job_id TEXT    NOT NULL,
        status TEXT    NOT NULL,
        tasks  INTEGER NOT NULL,
        frames INTEGER NOT NULL,
        PRIMARY KEY (job_id, status)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (job_id, status, tasks, frames)
        SELECT job_id, status, COUNT(*), SUM(frames) FROM tasks GROUP BY job_id, status;
    CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO job_counts (job_id, status, tasks, frames)
            VALUES (NEW.job_id, NEW.status, 1, NEW.frames)
            ON CONFLICT (job_id, status) DO UPDATE
            SET tasks = tasks + 1, frames = frames + excluded.frames;
    END;
    CREATE TRIGGER tasks_count_update AFTER UPDATE OF job_id, status, frames ON tasks BEGIN
        UPDATE job_counts SET tasks = tasks - 1, frames = frames - OLD.frames
            WHERE job_id = OLD.job_id AND status = OLD.status;
        INSERT INTO job_counts (job_id, status, tasks, frames)
            VALUES (NEW.job_id, NEW.status, 1, NEW.frames)
            ON CONFLICT (job_id, status) DO UPDATE
            SET tasks = tasks + 1, frames = frames + excluded.frames;
    END;
    CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
        UPDATE job_counts SET tasks = tasks - 1, frames = frames - OLD.frames
            WHERE job_id = OLD.job_id AND status = OLD.status;
    END;",
    // 4: accounts of users and operators, with their API keys' hashes.
    "CREATE TABLE accounts (
        name   TEXT PRIMARY KEY,
        record TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 5: how each account's nodes behaved (reputation, counts, ban), apart
    // from the account's record so the manager and operators never
    // overwrite each other.
    "CREATE TABLE node_standing (
        name   TEXT PRIMARY KEY,
        record TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 6: active jobs in queue order, so the queue head is read job by job
    // (each job's queued tasks come in index order from `tasks_status`)
    // and costs what it returns, not a sort of every queued task, nor a
    // walk past every finished job.
    "CREATE INDEX jobs_active_queue ON jobs (state, priority DESC, created_ms, seq);",
];

/// Applies the migrations missing from `conn`, up to `target` of them.
pub(super) fn migrate(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two
        // processes opening a fresh file cannot both apply a migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "database schema version {version} is newer than this build knows ({})",
                MIGRATIONS.len()
            )));
        }
        if version >= target {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[version]).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        tracing::debug!(version = version + 1, "applied task store migration");
    }
}
