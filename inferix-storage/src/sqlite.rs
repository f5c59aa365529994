//! The embedded default [`TaskStore`]: one SQLite file.
//!
//! Full records are stored as JSON so the domain model can grow without a
//! migration per field, while the columns that queries filter and sort on
//! (status, lease deadline, priority, age, state, frame count) are real
//! columns, so the queue, the lease sweep and a job's progress are indexed
//! SQL rather than scans in Rust; account balances are kept in a table of
//! their own, updated with every ledger append.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool; one
//! connection behind a mutex is enough because SQLite serialises writers
//! anyway, and it makes each method trivially atomic within the process.
//! Across processes sharing the file, WAL mode plus a busy timeout and
//! compare-and-set updates keep claims atomic.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::{Account, Transaction};
use inferix_core::store::{Change, StatusCount, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released entry: append a new one, so every
/// existing database reaches the same schema by the same path.
const MIGRATIONS: &[&str] = &[
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
];

/// How long a writer waits for another process's lock before reporting
/// the store unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`TaskStore`] in a SQLite database that survives restarts.
#[derive(Clone)]
pub struct SqliteTaskStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTaskStore").finish_non_exhaustive()
    }
}

impl SqliteTaskStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sql_err)?;
        // WAL lets readers proceed while a manager writes and survives a
        // crash without losing committed claims.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql_err)?;
        // Under WAL, NORMAL syncs at checkpoints instead of every commit: a
        // killed process still loses nothing committed, only a power cut
        // can drop the last commits (leases that then expire and re-queue,
        // never an accepted frame twice). Syncing every commit made each
        // task update cost a disk flush.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        // The manager re-reads the same hot pages (queue head, leased
        // tasks) all the time; SQLite's default 2 MiB cache made each read
        // a system call.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(sql_err)?;
        Self::init(conn, MIGRATIONS.len())
    }

    /// A private database that vanishes with the store (tests, simulation).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(
            Connection::open_in_memory().map_err(sql_err)?,
            MIGRATIONS.len(),
        )
    }

    fn init(mut conn: Connection, target: usize) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        migrate(&mut conn, target)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on tokio's blocking pool.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        // A panic while holding the lock cannot leave a half-applied
        // write: every multi-statement write is one SQL transaction,
        // rolled back when its guard drops.
        let run = move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        };
        // On a multi-threaded runtime the call runs in place (its worker's
        // other tasks move to another thread): statements take
        // microseconds, and handing each to the blocking pool cost two
        // thread switches per statement, which bounded the manager's rate.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?,
        }
    }
}

/// Applies the migrations missing from `conn`, up to `target` of them.
fn migrate(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
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

fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// SQLite integers are signed; values past `i64::MAX` (hundreds of
/// millions of years in ms) saturate, which keeps their order.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

fn from_json<T: DeserializeOwned>(what: impl FnOnce() -> String, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}

fn decode_task(job_id: &str, idx: i64, record: &str) -> Result<Task, StoreError> {
    from_json(|| format!("task {job_id}-{idx:05}"), record)
}

fn lease_deadline(t: &Task) -> Option<i64> {
    t.lease.as_ref().map(|l| int(l.deadline_ms))
}

fn frame_count(t: &Task) -> i64 {
    int(t.frames.len() as u64)
}

/// The `balances` key of `account`: its compact JSON, as in the records.
fn account_key(account: &Account) -> Result<String, StoreError> {
    to_json(account)
}

/// Reads `(job_id, idx, record)` rows and decodes the tasks.
fn query_tasks(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (job_id, idx, record) = row.map_err(sql_err)?;
        out.push(decode_task(&job_id, idx, &record)?);
    }
    Ok(out)
}

#[async_trait]
impl TaskStore for SqliteTaskStore {
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        let job_json = to_json(job)?;
        let rows = tasks
            .iter()
            .map(|t| {
                Ok((
                    t.id,
                    t.status,
                    lease_deadline(t),
                    int(t.version),
                    frame_count(t),
                    to_json(t)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let job = job.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let inserted = tx.execute(
                "INSERT INTO jobs (id, priority, created_ms, state, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job.id.to_string(), job.spec.priority, int(job.created_ms), job.state.as_str(), job_json],
            );
            match inserted {
                Err(e) if is_constraint(&e) => {
                    return Err(StoreError::AlreadyExists { what: format!("job {}", job.id) })
                }
                other => other.map_err(sql_err)?,
            };
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO tasks (job_id, idx, status, lease_deadline_ms, version, frames, record)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(sql_err)?;
                for (id, status, deadline, version, frames, record) in &rows {
                    let res = stmt.execute(params![
                        id.job.to_string(),
                        id.index,
                        status.as_str(),
                        deadline,
                        version,
                        frames,
                        record
                    ]);
                    match res {
                        Err(e) if is_constraint(&e) => {
                            return Err(StoreError::AlreadyExists { what: format!("task {id}") })
                        }
                        other => other.map_err(sql_err)?,
                    };
                }
            }
            tx.commit().map_err(sql_err)
        })
        .await
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let record = to_json(job)?;
        let job = job.clone();
        self.call(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE jobs SET priority = ?2, created_ms = ?3, state = ?4, record = ?5 WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        job.id.to_string(),
                        job.spec.priority,
                        int(job.created_ms),
                        job.state.as_str(),
                        record
                    ])
                })
                .map_err(sql_err)?;
            if n == 0 {
                return Err(StoreError::NotFound { what: format!("job {}", job.id) });
            }
            Ok(())
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.call(move |conn| {
            let record: Option<String> = conn
                .prepare_cached("SELECT record FROM jobs WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            record
                .map(|r| from_json(|| format!("job {id}"), &r))
                .transpose()
        })
        .await
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, record FROM jobs ORDER BY created_ms, seq")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, record) = row.map_err(sql_err)?;
                out.push(from_json(|| format!("job {id}"), &record)?);
            }
            Ok(out)
        })
        .await
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.call(move |conn| {
            let tasks = query_tasks(
                conn,
                "SELECT job_id, idx, record FROM tasks WHERE job_id = ?1 AND idx = ?2",
                params![id.job.to_string(), id.index],
            )?;
            Ok(tasks.into_iter().next())
        })
        .await
    }

    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        self.call(move |conn| {
            query_tasks(
                conn,
                "SELECT job_id, idx, record FROM tasks WHERE job_id = ?1 ORDER BY idx",
                [job.to_string()],
            )
        })
        .await
    }

    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.call(move |conn| {
            query_tasks(
                conn,
                "SELECT t.job_id, t.idx, t.record
                 FROM tasks t JOIN jobs j ON j.id = t.job_id
                 WHERE t.status = ?1 AND (?1 <> 'queued' OR j.state = 'active')
                 ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
                 LIMIT ?2",
                params![status.as_str(), int(limit as u64)],
            )
        })
        .await
    }

    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        let (write, next) = TaskWrite::of(task)?;
        self.call(move |conn| write.run(conn)).await?;
        *task = next;
        Ok(())
    }

    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.call(move |conn| {
            query_tasks(
                conn,
                "SELECT job_id, idx, record FROM tasks
                 WHERE status = 'leased' AND lease_deadline_ms <= ?1
                 ORDER BY job_id, idx
                 LIMIT ?2",
                params![int(now_ms), int(limit as u64)],
            )
        })
        .await
    }

    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        let write = TxWrite::of(tx)?;
        self.call(move |conn| {
            // The record and its balance changes commit together: a refused
            // duplicate rolls back with the guard and moves no balance.
            let db = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            write.run(&db)?;
            db.commit().map_err(sql_err)
        })
        .await
    }

    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        enum Write {
            Task(TaskWrite),
            Tx(TxWrite),
        }
        let writes = changes
            .iter()
            .map(|c| match c {
                Change::Task(t) => TaskWrite::of(t).map(|(w, _)| Write::Task(w)),
                Change::Transaction(tx) => TxWrite::of(tx).map(Write::Tx),
                #[allow(unreachable_patterns)]
                other => Err(StoreError::Backend(format!("unsupported change {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.call(move |conn| {
            // One transaction: the first write that fails rolls back the
            // ones before it when the guard drops.
            let db = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            for w in &writes {
                match w {
                    Write::Task(t) => t.run(&db)?,
                    Write::Tx(t) => t.run(&db)?,
                }
            }
            db.commit().map_err(sql_err)
        })
        .await?;
        for c in changes.iter_mut() {
            if let Change::Task(t) = c {
                t.version += 1;
            }
        }
        Ok(())
    }

    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, record FROM transactions ORDER BY seq")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, record) = row.map_err(sql_err)?;
                out.push(from_json(|| format!("transaction {id}"), &record)?);
            }
            Ok(out)
        })
        .await
    }

    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let record: Option<String> = conn
                .prepare_cached("SELECT record FROM transactions WHERE id = ?1")
                .and_then(|mut s| s.query_row([&id], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            record
                .map(|r| from_json(|| format!("transaction {id}"), &r))
                .transpose()
        })
        .await
    }

    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        let key = account_key(account)?;
        self.call(move |conn| {
            let amount: Option<i64> = conn
                .prepare_cached("SELECT amount FROM balances WHERE account = ?1")
                .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            Ok(amount.unwrap_or(0))
        })
        .await
    }

    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT status, tasks, frames FROM job_counts
                     WHERE job_id = ?1 AND tasks > 0",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([job.to_string()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(sql_err)?;
            let mut counts = Vec::new();
            for row in rows {
                let (status, tasks, frames) = row.map_err(sql_err)?;
                counts.push(StatusCount::from_row(job, &status, tasks, frames)?);
            }
            StatusCount::sort(&mut counts);
            Ok(counts)
        })
        .await
    }
}

/// A task's compare-and-set write, prepared outside the connection's lock.
struct TaskWrite {
    id: TaskId,
    status: TaskStatus,
    record: String,
    expected: u64,
    deadline: Option<i64>,
    frames: i64,
}

impl TaskWrite {
    /// The write, and the task as it will be stored.
    fn of(task: &Task) -> Result<(Self, Task), StoreError> {
        let mut next = task.clone();
        next.version += 1;
        let write = Self {
            id: task.id,
            status: task.status,
            record: to_json(&next)?,
            expected: task.version,
            deadline: lease_deadline(task),
            frames: frame_count(task),
        };
        Ok((write, next))
    }

    /// Compare-and-set in one statement: the version check and the write
    /// cannot be split by another manager's claim.
    fn run(&self, conn: &Connection) -> Result<(), StoreError> {
        let id = self.id;
        let n = conn
            .prepare_cached(
                "UPDATE tasks SET status = ?3, lease_deadline_ms = ?4, record = ?5,
                     frames = ?7, version = version + 1
                 WHERE job_id = ?1 AND idx = ?2 AND version = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.job.to_string(),
                    id.index,
                    self.status.as_str(),
                    self.deadline,
                    self.record,
                    int(self.expected),
                    self.frames
                ])
            })
            .map_err(sql_err)?;
        if n == 1 {
            return Ok(());
        }
        let exists = conn
            .prepare_cached("SELECT 1 FROM tasks WHERE job_id = ?1 AND idx = ?2")
            .and_then(|mut s| s.exists(params![id.job.to_string(), id.index]))
            .map_err(sql_err)?;
        Err(if exists {
            StoreError::Conflict {
                task: id,
                expected: self.expected,
            }
        } else {
            StoreError::NotFound {
                what: format!("task {id}"),
            }
        })
    }
}

/// A ledger transaction's insert and balance changes, to run inside an SQL
/// transaction.
struct TxWrite {
    id: String,
    record: String,
    postings: Vec<(String, i64)>,
}

impl TxWrite {
    fn of(tx: &Transaction) -> Result<Self, StoreError> {
        tx.check_balanced()?;
        Ok(Self {
            id: tx.id.clone(),
            record: to_json(tx)?,
            postings: tx
                .postings
                .iter()
                .map(|p| Ok((account_key(&p.account)?, p.amount)))
                .collect::<Result<Vec<_>, StoreError>>()?,
        })
    }

    fn run(&self, db: &Connection) -> Result<(), StoreError> {
        let res = db
            .prepare_cached("INSERT INTO transactions (id, record) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![self.id, self.record]));
        match res {
            Err(e) if is_constraint(&e) => {
                return Err(StoreError::AlreadyExists {
                    what: format!("transaction {}", self.id),
                })
            }
            other => other.map_err(sql_err)?,
        };
        let mut upsert = db
            .prepare_cached(
                "INSERT INTO balances (account, amount) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount",
            )
            .map_err(sql_err)?;
        for (account, amount) in &self.postings {
            upsert.execute(params![account, amount]).map_err(sql_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    fn index_names(conn: &Connection) -> Vec<String> {
        let mut s = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_fresh_database_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        drop(SqliteTaskStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), MIGRATIONS.len() as i64);
        assert_eq!(
            index_names(&conn),
            ["jobs_queue_order", "tasks_lease_deadline", "tasks_status"]
        );
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for t in ["balances", "jobs", "tasks", "transactions"] {
            assert!(tables.iter().any(|n| n == t), "{t} in {tables:?}");
        }
        let frames: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('tasks') WHERE name = 'frames'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(frames, 1);
    }

    #[tokio::test]
    async fn an_old_database_is_migrated_forward_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let (job, tasks) = inferix_core::store::conformance::sample_job(2, 7, 5);
        let mut leased = tasks[1].clone();
        leased
            .lease(
                inferix_core::task::Lease {
                    worker: inferix_core::ids::NodeId(7),
                    manager: inferix_core::ids::NodeId(1),
                    deadline_ms: 900,
                    scene: None,
                },
                8,
            )
            .unwrap();
        leased.version = 1;
        let stored = vec![tasks[0].clone(), leased.clone(), tasks[2].clone()];
        let accounts = inferix_core::store::conformance::tricky_accounts();
        let ledger = inferix_core::store::conformance::sample_ledger(&accounts);
        {
            // A database as the first release left it: migration 1 only,
            // with rows in that release's layout.
            let old = SqliteTaskStore::init(Connection::open(&path).unwrap(), 1).unwrap();
            let conn = old.conn.lock().unwrap();
            assert_eq!(version(&conn), 1);
            assert!(index_names(&conn).is_empty());
            conn.execute(
                "INSERT INTO jobs (id, priority, created_ms, state, record)
                 VALUES (?1, ?2, ?3, 'active', ?4)",
                params![
                    job.id.to_string(),
                    job.spec.priority,
                    int(job.created_ms),
                    to_json(&job).unwrap()
                ],
            )
            .unwrap();
            for t in &stored {
                conn.execute(
                    "INSERT INTO tasks (job_id, idx, status, lease_deadline_ms, version, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        t.id.job.to_string(),
                        t.id.index,
                        t.status.as_str(),
                        lease_deadline(t),
                        int(t.version),
                        to_json(t).unwrap()
                    ],
                )
                .unwrap();
            }
            for tx in &ledger {
                conn.execute(
                    "INSERT INTO transactions (id, record) VALUES (?1, ?2)",
                    params![tx.id, to_json(tx).unwrap()],
                )
                .unwrap();
            }
        }
        let store = SqliteTaskStore::open(&path).unwrap();
        {
            let conn = store.conn.lock().unwrap();
            assert_eq!(version(&conn), MIGRATIONS.len() as i64);
            assert_eq!(index_names(&conn).len(), 3);
        }
        assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()));
        assert_eq!(store.tasks_of_job(job.id).await.unwrap(), stored);
        assert_eq!(
            store.tasks_in_status(TaskStatus::Queued, 10).await.unwrap(),
            vec![tasks[0].clone(), tasks[2].clone()]
        );

        // Migration 3 counted the old tasks' frames and summed the old
        // ledger per account, under the keys the store itself uses.
        assert_eq!(
            store.status_counts(job.id).await.unwrap(),
            StatusCount::tally(&stored)
        );
        assert_eq!(
            StatusCount::frames_in(
                &store.status_counts(job.id).await.unwrap(),
                TaskStatus::Leased
            ),
            (2, 5)
        );
        assert_eq!(store.transactions().await.unwrap(), ledger);
        inferix_core::store::conformance::derived_balances_hold(&store, &accounts, &ledger).await;
        let rows: i64 = store
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM balances", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, accounts.len() as i64);

        // Reopening an up-to-date database is a no-op.
        drop(store);
        let again = SqliteTaskStore::open(&path).unwrap();
        let all = again.transactions().await.unwrap();
        assert_eq!(
            version(&again.conn.lock().unwrap()),
            MIGRATIONS.len() as i64
        );
        assert_eq!(
            again.balance(&accounts[1]).await.unwrap(),
            inferix_core::ledger::balance(&all, &accounts[1])
        );
    }

    #[tokio::test]
    async fn balances_and_counts_are_indexed_lookups() {
        let store = SqliteTaskStore::open_in_memory().unwrap();
        let conn = store.conn.lock().unwrap();
        let plan = |sql: &str| -> String {
            let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            s.query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .join("; ")
        };
        let balance = plan("SELECT amount FROM balances WHERE account = 'x'");
        assert!(
            balance.contains("SEARCH balances USING PRIMARY KEY"),
            "{balance}"
        );
        let counts = plan("SELECT status, tasks, frames FROM job_counts WHERE job_id = 'x'");
        assert!(
            counts.contains("SEARCH job_counts USING PRIMARY KEY (job_id=?)"),
            "{counts}"
        );
    }

    /// The trigger-kept counts equal a recount after every kind of write:
    /// leases, requeues, results, a second handle on the same file, and a
    /// compare-and-set that lost (which must change nothing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kept_counts_equal_a_recount_after_every_kind_of_write() {
        use inferix_core::ids::NodeId;
        use inferix_core::store::StatusCount;
        use inferix_core::task::{Fault, Lease};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts.db");
        let a = SqliteTaskStore::open(&path).unwrap();
        let b = SqliteTaskStore::open(&path).unwrap();
        let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 41);
        a.insert_job(&job, &tasks).await.unwrap();
        let lease = |w: u128| Lease {
            worker: NodeId(w),
            manager: NodeId(1),
            deadline_ms: 1_000,
            scene: None,
        };
        let recount = |store: SqliteTaskStore| async move {
            let all = store.tasks_of_job(job.id).await.unwrap();
            (
                StatusCount::tally(&all),
                store.status_counts(job.id).await.unwrap(),
            )
        };
        let work = |store: SqliteTaskStore, ids: Vec<usize>, w: u128| {
            let tasks = tasks.clone();
            async move {
                for i in ids {
                    let mut t = tasks[i].clone();
                    t.lease(lease(w), 2).unwrap();
                    store.update_task(&mut t).await.unwrap();
                    if i % 3 == 0 {
                        t.requeue(3, Fault::Manager, 5, "handed back").unwrap();
                        store.update_task(&mut t).await.unwrap();
                    }
                }
            }
        };
        let evens: Vec<usize> = (0..tasks.len()).filter(|i| i % 2 == 0).collect();
        let odds: Vec<usize> = (0..tasks.len()).filter(|i| i % 2 == 1).collect();
        tokio::join!(work(a.clone(), evens, 7), work(b.clone(), odds, 8));
        // A stale write loses and must not move a count.
        let mut stale = tasks[1].clone();
        stale.lease(lease(9), 4).unwrap();
        assert!(a.update_task(&mut stale).await.is_err());
        for store in [a, b] {
            let (expected, kept) = recount(store).await;
            assert_eq!(kept, expected);
            assert_eq!(kept.iter().map(|c| c.tasks).sum::<usize>(), tasks.len());
        }
    }

    #[tokio::test]
    async fn a_refused_duplicate_transaction_moves_no_balance() {
        let store = SqliteTaskStore::open_in_memory().unwrap();
        let accounts = inferix_core::store::conformance::tricky_accounts();
        let tx = Transaction::transfer("t", 1, "m", accounts[0].clone(), accounts[1].clone(), 7);
        store.append_transaction(&tx).await.unwrap();
        let mut again = tx.clone();
        again.postings.reverse();
        assert!(matches!(
            store.append_transaction(&again).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(store.balance(&accounts[0]).await.unwrap(), -7);
        assert_eq!(store.balance(&accounts[1]).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn an_unknown_status_in_a_row_is_corrupt() {
        let store = SqliteTaskStore::open_in_memory().unwrap();
        let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 2);
        store.insert_job(&job, &tasks).await.unwrap();
        store
            .conn
            .lock()
            .unwrap()
            .execute_batch("UPDATE tasks SET status = 'lost'")
            .unwrap();
        assert!(matches!(
            store.status_counts(job.id).await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        drop(conn);
        let err = SqliteTaskStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(ref m) if m.contains("newer")),
            "got {err:?}"
        );
    }

    #[tokio::test]
    async fn undecodable_records_are_corrupt_not_panics() {
        let store = SqliteTaskStore::open_in_memory().unwrap();
        let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 2);
        store.insert_job(&job, &tasks).await.unwrap();
        store
            .conn
            .lock()
            .unwrap()
            .execute_batch("UPDATE tasks SET record = '{not json'; UPDATE jobs SET record = '[]'")
            .unwrap();
        assert!(matches!(
            store.task(tasks[0].id).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.tasks_of_job(job.id).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.job(job.id).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.jobs().await,
            Err(StoreError::Corrupt { .. })
        ));
    }
}
