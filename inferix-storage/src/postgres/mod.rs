//! A [`TaskStore`] on a PostgreSQL server, for several managers sharing
//! one network state.
//!
//! The layout mirrors the SQLite store: full records as JSON text, with
//! the columns that queries filter and sort on (status, lease deadline and
//! owners, priority, age, state) as real, indexed columns, each task's
//! frame count as a column, a balance per ledger account updated with
//! every append, and per job and status a count of tasks and frames kept
//! by triggers on the tasks table, so every write path (insert, update,
//! claim) keeps it exact. Claims are the
//! trait's compare-and-set: `update_task` is one conditional `UPDATE …
//! WHERE version = $expected`; under PostgreSQL's row locking the second
//! of two concurrent claims re-checks the version after the first commits
//! and matches nothing, so exactly one manager wins and the other gets
//! [`StoreError::Conflict`].
//!
//! Each store holds a small connection pool (a transaction needs a
//! connection to itself) and, once [`PostgresTaskStore::subscribe`] is
//! called, one more connection that LISTENs for task changes.
//!
//! A store may live in its own schema ([`PostgresOptions::schema`]), so
//! tests, or several networks, can share one database.
//!
//! # TLS
//!
//! Connections are plaintext unless the URL's libpq `sslmode` asks for
//! TLS (rustls); `sslrootcert` names a PEM file of the CA certificates to
//! trust, e.g.
//! `postgres://inferix@db/inferix?sslmode=verify-full&sslrootcert=/etc/inferix/db-ca.pem`.
//!
//! | `sslmode` | encrypted | chain checked against | host name checked |
//! |---|---|---|---|
//! | absent, `disable`, `allow`, `prefer` | no | — | — |
//! | `require` | yes | `sslrootcert`, else the system's roots | only against the system's roots |
//! | `verify-ca` | yes | `sslrootcert` (required) | no |
//! | `verify-full` | yes | `sslrootcert`, else the system's roots | yes |
//!
//! `require` is stricter than libpq's, which encrypts without checking
//! anything unless a root certificate file exists: a server that nobody
//! authenticated may be a man in the middle that reads the password and
//! every task, so the store checks the chain in every TLS mode. With a
//! private CA (`sslrootcert`) it checks what libpq checks then, the chain
//! only; against the system's roots it checks the host name too, since
//! any publicly certified host would pass a chain check alone.
//!
//! `allow` and `prefer` stay in plaintext, as they were before TLS
//! support: libpq's versions of them fall back to plaintext whenever TLS
//! fails, so they never promised protection.
//!
//! A root certificate file that cannot be used is
//! [`PostgresError::RootCert`], reported by `open` before any connection;
//! a rejected handshake is [`PostgresError::Tls`], which
//! [`PostgresTaskStore::open_with_retry`] does not retry.

mod accounts;
mod error;
mod migrate;
mod notify;
mod options;
mod rows;
mod tls;
mod writes;

use crate::records::{from_json, int, to_json};
pub use error::PostgresError;
use error::*;
use options::*;
pub use options::{Backoff, PostgresOptions};
use rows::*;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::{Account, Transaction};
use inferix_core::store::{Change, StatusCount, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// The schema version this build creates and expects.
pub fn schema_version() -> u32 {
    migrate::latest_version()
}

/// A [`TaskStore`] in a PostgreSQL database, shared by every manager that
/// opens the same database and schema. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresTaskStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    /// The schema the tables are in, as the server names it.
    schema: String,
    target: String,
    /// TLS for new connections, pooled or listening.
    tls: tls::Connector,
    listener: tokio::sync::Mutex<Option<Listener>>,
}

/// The running LISTEN connection and its fan-out.
struct Listener {
    tx: broadcast::Sender<TaskId>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for PostgresTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTaskStore")
            .field("target", &self.inner.target)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresTaskStore {
    /// Connects, creates the schema if needed and applies the missing
    /// migrations. A server that cannot be reached is
    /// [`PostgresError::Unreachable`]; see [`Self::open_with_retry`].
    pub async fn open(options: PostgresOptions) -> Result<Self, PostgresError> {
        let (url, tls_params) = tls::split_tls_params(&options.url)?;
        let mut config =
            tokio_postgres::Config::from_str(&url).map_err(|e| PostgresError::InvalidUrl {
                reason: e.to_string(),
            })?;
        config.ssl_mode(tls_params.ssl_mode());
        if let Some(password) = &options.password {
            config.password(password.as_bytes());
        }
        let schema = match options.schema {
            Some(name) => {
                validate_schema(&name)?;
                // Every connection, pooled or listening, resolves the
                // unqualified table names in the store's schema.
                config.options(format!("-c search_path={name}"));
                Schema::Named(name)
            }
            None => Schema::Default,
        };
        config.connect_timeout(options.connect_timeout);
        config.application_name("inferix");
        let target = describe_target(&config);
        let tls = tls_params.connector()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| PostgresError::InvalidUrl {
                reason: e.to_string(),
            })?;
        let mut client = pool.get().await.map_err(|e| connect_error(&target, &e))?;
        migrate::migrate(&mut client, &schema).await?;
        // The default schema is whichever the server's search path picks
        // (`public`, or a schema named after the user); the notification
        // channel is named after it.
        let schema = match schema {
            Schema::Named(name) => name,
            Schema::Default => client
                .query_one("SELECT current_schema()", &[])
                .await
                .ok()
                .and_then(|r| r.get::<_, Option<String>>(0))
                .unwrap_or_else(|| "public".into()),
        };
        drop(client);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                schema,
                target,
                tls,
                listener: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// [`Self::open`], retrying while the server is unreachable (a manager
    /// started before its database) with exponential `backoff`. Other
    /// errors (bad URL, failed migration) are returned at once.
    pub async fn open_with_retry(
        options: PostgresOptions,
        backoff: Backoff,
    ) -> Result<Self, PostgresError> {
        let start = tokio::time::Instant::now();
        let mut delay = backoff.initial;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match Self::open(options.clone()).await {
                Err(PostgresError::Unreachable { target, reason, .. }) => {
                    let elapsed = start.elapsed();
                    if elapsed + delay > backoff.max_elapsed {
                        return Err(PostgresError::Unreachable {
                            target,
                            attempts,
                            reason,
                        });
                    }
                    tracing::info!(%target, attempts, %reason, retry_in = ?delay, "task database unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(backoff.max);
                }
                other => return other,
            }
        }
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Whether the server counts this store's session as encrypted: the
    /// server's word, for an operator or a start-up check that the URL's
    /// `sslmode` took effect.
    pub async fn session_is_encrypted(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    /// The schema version recorded in the database.
    pub async fn stored_schema_version(&self) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM inferix_schema_migrations",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0))
    }

    /// Ids of tasks inserted or updated by any store on this database and
    /// schema, from the moment this returns: a prompt for a manager to
    /// re-read the queue instead of waiting for its next poll.
    ///
    /// Delivery is best effort: ids are dropped while the listening
    /// connection is down (it reconnects by itself) and a receiver that
    /// falls more than a few thousand ids behind gets `Lagged`. Either
    /// way the store itself stays the truth.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<TaskId>, PostgresError> {
        let mut listener = self.inner.listener.lock().await;
        if let Some(l) = listener.as_ref().filter(|l| !l.task.is_finished()) {
            return Ok(l.tx.subscribe());
        }
        let (tx, rx) = broadcast::channel(notify::CHANNEL_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(notify::run(
            self.inner.config.clone(),
            self.inner.tls.clone(),
            notify::channel(&self.inner.schema),
            tx.clone(),
            ready_tx,
            self.inner.target.clone(),
        ));
        let started = Listener { tx, task };
        let unreachable = |reason: &str| PostgresError::Unreachable {
            target: self.inner.target.clone(),
            attempts: 1,
            reason: reason.to_string(),
        };
        match tokio::time::timeout(notify::SUBSCRIBE_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {
                *listener = Some(started);
                Ok(rx)
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(unreachable("notification listener stopped")),
            Err(_) => Err(unreachable("LISTEN did not complete in time")),
        }
    }

    /// Claims up to `limit` queued tasks (in queue order, as
    /// [`TaskStore::tasks_in_status`] gives them) that no other manager is
    /// claiming at this moment, without conflicts: the candidate rows are
    /// locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers each
    /// get different tasks instead of racing for the queue head.
    ///
    /// `lease` is called on each candidate and applies the lease (usually
    /// [`Task::lease`]); returning `false` leaves that task queued. The
    /// leased tasks are written with their versions bumped, in one
    /// transaction, and returned. The lifecycle rules stay in
    /// `inferix-core`: only the selection happens in SQL.
    pub async fn claim_queued<F>(&self, limit: usize, mut lease: F) -> Result<Vec<Task>, StoreError>
    where
        F: FnMut(&mut Task) -> bool + Send,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let select = tx
            .prepare_cached(
                "SELECT t.job_id, t.idx, t.record
                 FROM tasks t JOIN jobs j ON j.id = t.job_id
                 WHERE t.status = 'queued' AND j.state = 'active'
                 ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
                 LIMIT $1
                 FOR UPDATE OF t SKIP LOCKED",
            )
            .await
            .map_err(pg_err)?;
        let rows = tx
            .query(&select, &[&int(limit as u64)])
            .await
            .map_err(pg_err)?;
        let mut claimed = Vec::new();
        for mut task in decode_tasks(&rows)? {
            if lease(&mut task) {
                claimed.push(task);
            }
        }
        if claimed.is_empty() {
            tx.commit().await.map_err(pg_err)?;
            return Ok(claimed);
        }
        // The rows are locked by this transaction, so their versions
        // cannot have moved meanwhile.
        let claimed_refs: Vec<&Task> = claimed.iter().collect();
        let claimed = writes::write_tasks(&tx, &claimed_refs).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(claimed)
    }

    /// Removes this store's schema with every table in it, as a benchmark
    /// or a test cleans up after itself; the store cannot be used after.
    /// Refused for the database's default `public` schema, which other
    /// software may share.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        if self.inner.schema == "public" {
            return Err(StoreError::Backend(
                "the public schema is not dropped".into(),
            ));
        }
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.inner.schema.replace('"', "\"\"")
            ))
            .await
            .map_err(pg_err)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!("{}: {}", self.inner.target, pool_reason(&e)))
        })
    }
}

#[async_trait]
impl TaskStore for PostgresTaskStore {
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
        let job_id = job.id.to_string();
        let mut rows = TaskRows::default();
        for t in tasks {
            rows.push(t, to_json(t)?);
        }
        let client = self.client().await?;
        // One statement, so one round trip and atomic by itself: the job
        // row in a data-modifying CTE, which runs whether or not the main
        // statement reads it, and every task from arrays.
        let stmt = client
            .prepare_cached(
                "WITH job AS (
                     INSERT INTO jobs (id, priority, created_ms, state, record)
                     VALUES ($1, $2, $3, $4, $5)
                 )
                 INSERT INTO tasks (job_id, idx, status, lease_deadline_ms, lease_worker,
                                    lease_manager, version, record, frames)
                 SELECT * FROM UNNEST($6::text[], $7::bigint[], $8::text[], $9::bigint[],
                                      $10::text[], $11::text[], $12::bigint[], $13::text[],
                                      $14::integer[])",
            )
            .await
            .map_err(pg_err)?;
        let created_ms = int(job.created_ms);
        let state = job.state.as_str();
        let job_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&job_id, &job.spec.priority, &created_ms, &state, &job_json];
        let params: Vec<_> = job_params.into_iter().chain(rows.params()).collect();
        let res = client.execute(&stmt, &params).await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                // Either insert may trip first; a stored job of this id is
                // the more useful report.
                let job_exists = client
                    .query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&job_id])
                    .await
                    .map_err(pg_err)?
                    .is_some();
                let what = if job_exists {
                    format!("job {}", job.id)
                } else {
                    let db = e.as_db_error();
                    match db.and_then(|d| d.detail()) {
                        Some(detail) => format!("a task of job {} ({detail})", job.id),
                        None => format!("a task of job {}", job.id),
                    }
                };
                Err(StoreError::AlreadyExists { what })
            }
            Err(e) => Err(pg_err(e)),
        }
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let record = to_json(job)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE jobs SET priority = $2, created_ms = $3, state = $4, record = $5 WHERE id = $1",
            )
            .await
            .map_err(pg_err)?;
        let n = client
            .execute(
                &stmt,
                &[
                    &job.id.to_string(),
                    &job.spec.priority,
                    &int(job.created_ms),
                    &job.state.as_str(),
                    &record,
                ],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("job {}", job.id),
            });
        }
        Ok(())
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT record FROM jobs WHERE id = $1")
            .await
            .map_err(pg_err)?;
        let row = client
            .query_opt(&stmt, &[&id.to_string()])
            .await
            .map_err(pg_err)?;
        row.map(|r| from_json(|| format!("job {id}"), r.get::<_, &str>(0)))
            .transpose()
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, record FROM jobs ORDER BY created_ms, seq")
            .await
            .map_err(pg_err)?;
        let rows = client.query(&stmt, &[]).await.map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let id: &str = r.get(0);
                from_json(|| format!("job {id}"), r.get::<_, &str>(1))
            })
            .collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT job_id, idx, record FROM tasks WHERE job_id = $1 AND idx = $2")
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&stmt, &[&id.job.to_string(), &i64::from(id.index)])
            .await
            .map_err(pg_err)?;
        Ok(decode_tasks(&rows)?.into_iter().next())
    }

    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT job_id, idx, record FROM tasks WHERE job_id = $1 ORDER BY idx")
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&stmt, &[&job.to_string()])
            .await
            .map_err(pg_err)?;
        decode_tasks(&rows)
    }

    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT job_id, idx, record FROM tasks WHERE job_id = $1 AND idx >= $2 \
                 ORDER BY idx LIMIT $3",
            )
            .await
            .map_err(pg_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&job.to_string(), &i64::from(from), &limit])
            .await
            .map_err(pg_err)?;
        decode_tasks(&rows)
    }

    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let client = self.client().await?;
        // The queue has its own statement with the status as a literal, so
        // even a generic plan can use the partial index of queued tasks.
        // Each active job, in queue order, gives at most `limit` of its
        // queued tasks in index order: a read of the head costs what it
        // returns, where a join sorted every queued task of the first job.
        let rows = if status == TaskStatus::Queued {
            let stmt = client
                .prepare_cached(
                    "SELECT t.job_id, t.idx, t.record
                     FROM jobs j CROSS JOIN LATERAL (
                         SELECT job_id, idx, record FROM tasks
                         WHERE job_id = j.id AND status = 'queued'
                         ORDER BY idx LIMIT $1
                     ) t
                     WHERE j.state = 'active'
                     ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
                     LIMIT $1",
                )
                .await
                .map_err(pg_err)?;
            client.query(&stmt, &[&int(limit as u64)]).await
        } else {
            let stmt = client
                .prepare_cached(
                    "SELECT t.job_id, t.idx, t.record
                     FROM tasks t JOIN jobs j ON j.id = t.job_id
                     WHERE t.status = $1
                     ORDER BY j.priority DESC, j.created_ms, j.seq, t.idx
                     LIMIT $2",
                )
                .await
                .map_err(pg_err)?;
            client
                .query(&stmt, &[&status.as_str(), &int(limit as u64)])
                .await
        };
        decode_tasks(&rows.map_err(pg_err)?)
    }

    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        let client = self.client().await?;
        *task = writes::write_task(&client, task).await?;
        Ok(())
    }

    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT job_id, idx, record FROM tasks
                 WHERE status = 'leased' AND lease_deadline_ms <= $1
                 ORDER BY job_id, idx
                 LIMIT $2",
            )
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&stmt, &[&int(now_ms), &int(limit as u64)])
            .await
            .map_err(pg_err)?;
        decode_tasks(&rows)
    }

    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        let client = self.client().await?;
        writes::write_transactions(&client, &[tx]).await
    }

    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        writes::apply(&mut client, changes).await
    }

    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, record FROM transactions ORDER BY seq")
            .await
            .map_err(pg_err)?;
        let rows = client.query(&stmt, &[]).await.map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let id: &str = r.get(0);
                from_json(|| format!("transaction {id}"), r.get::<_, &str>(1))
            })
            .collect()
    }

    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT record FROM transactions WHERE id = $1")
            .await
            .map_err(pg_err)?;
        let row = client.query_opt(&stmt, &[&id]).await.map_err(pg_err)?;
        row.map(|r| from_json(|| format!("transaction {id}"), r.get::<_, &str>(0)))
            .transpose()
    }

    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        let key = to_json(account)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT amount FROM balances WHERE account = $1::text::jsonb")
            .await
            .map_err(pg_err)?;
        let row = client.query_opt(&stmt, &[&key]).await.map_err(pg_err)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Reads the counters that triggers on `tasks` keep per job and
    /// status (migration 3): a few rows whatever the job's size, where
    /// counting its tasks would cost a pass over all of them after every
    /// acceptance.
    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT status, tasks, frames FROM job_counts WHERE job_id = $1 AND tasks > 0",
            )
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&stmt, &[&job.to_string()])
            .await
            .map_err(pg_err)?;
        let mut counts = rows
            .iter()
            .map(|r| StatusCount::from_row(job, r.get(0), r.get(1), r.get(2)))
            .collect::<Result<Vec<_>, _>>()?;
        StatusCount::sort(&mut counts);
        Ok(counts)
    }
}

#[cfg(test)]
mod tests;
