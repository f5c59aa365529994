//! The embedded default [`TaskStore`]: one SQLite file.
//!
//! Full records are stored as JSON so the domain model can grow without a
//! migration per field, while the columns that queries filter and sort on
//! (status, lease deadline, priority, age, state, frame count) are real
//! columns, so the queue, the lease sweep and a job's progress are indexed
//! SQL rather than scans in Rust; account balances are kept in a table of
//! their own, updated with every ledger append.
//!
//! rusqlite is blocking, so every call runs in place on a multi-threaded
//! runtime (`block_in_place`) or else on tokio's blocking pool; one
//! connection behind a mutex is enough because SQLite serialises writers
//! anyway, and it makes each method trivially atomic within the process.
//! A second connection, on a thread of its own, checkpoints the log.
//! Across processes sharing the file, WAL mode plus a busy timeout and
//! compare-and-set updates keep claims atomic.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::{Account, Transaction};
use inferix_core::store::{Change, StatusCount, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

mod accounts;
mod checkpoint;
mod migrations;
mod rows;
mod writes;

use crate::records::{decode_task, from_json, int, to_json};
use migrations::*;
use rows::*;
use writes::*;

/// How long a writer waits for another process's lock before reporting
/// the store unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`TaskStore`] in a SQLite database that survives restarts.
#[derive(Clone)]
pub struct SqliteTaskStore {
    conn: Arc<Mutex<Connection>>,
    /// The file's background checkpoints (none in memory).
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for SqliteTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTaskStore").finish_non_exhaustive()
    }
}

/// The head of the queue: read active job by active job, in queue order
/// (the CROSS JOIN keeps jobs the outer loop, and each job's queued tasks
/// come in index order from `tasks_status`), so a read costs what it
/// returns however long the queue is.
const QUEUE_HEAD: &str = "SELECT t.job_id, t.idx, t.record
    FROM jobs j CROSS JOIN tasks t ON t.job_id = j.id
    WHERE j.state = 'active' AND t.status = ?1
    ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
    LIMIT ?2";

/// Tasks of any other status, in their jobs' queue order.
const IN_STATUS: &str = "SELECT t.job_id, t.idx, t.record
    FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.status = ?1
    ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
    LIMIT ?2";

impl SqliteTaskStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
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
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::COMMIT_CHECKPOINT_PAGES,
        )
        .map_err(sql_err)?;
        let mut store = Self::init(conn, MIGRATIONS.len())?;
        store._checkpointer = Some(Arc::new(checkpoint::Checkpointer::spawn(path, None)?));
        Ok(store)
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
            _checkpointer: None,
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

#[async_trait]
impl TaskStore for SqliteTaskStore {
    async fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.insert_account_row(account).await
    }
    async fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.update_account_row(account).await
    }
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.account_row(name).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.account_rows().await
    }
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        self.standing_row(name).await
    }
    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        self.put_standing_row(name, standing).await
    }
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

    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            query_tasks(
                conn,
                "SELECT job_id, idx, record FROM tasks WHERE job_id = ?1 AND idx >= ?2 \
                 ORDER BY idx LIMIT ?3",
                rusqlite::params![job.to_string(), i64::from(from), limit],
            )
        })
        .await
    }

    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let sql = if status == TaskStatus::Queued {
            QUEUE_HEAD
        } else {
            IN_STATUS
        };
        self.call(move |conn| query_tasks(conn, sql, params![status.as_str(), int(limit as u64)]))
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

#[cfg(test)]
mod tests;
