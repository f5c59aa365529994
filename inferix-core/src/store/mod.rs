//! The `TaskStore` trait: the synchronised database of jobs, tasks and
//! ledger records that is the truth of the network.
//!
//! Stores are deliberately dumb: they persist records and enforce
//! optimistic concurrency (every task carries a version, and an update
//! whose version is stale fails with [`StoreError::Conflict`]). All
//! lifecycle rules live in [`crate::task`], so every backend behaves the
//! same and a manager that loses a race simply re-reads.

use async_trait::async_trait;

use crate::account::{AccountRecord, NodeStanding};
use crate::ids::{JobId, TaskId};
use crate::job::Job;
use crate::ledger::{self, Account, Transaction, UnbalancedError};
use crate::task::{Task, TaskStatus};

pub mod accounts;
#[cfg(all(feature = "runtime", any(test, feature = "testing")))]
pub mod conformance;
mod memory;

pub use memory::MemoryTaskStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record exists already (ids are unique).
    #[error("{what} already exists")]
    AlreadyExists {
        /// Which record.
        what: String,
    },
    /// No such record.
    #[error("{what} not found")]
    NotFound {
        /// Which record.
        what: String,
    },
    /// Someone else wrote the account's standing since it was read.
    #[error(
        "the standing of account {account} was changed concurrently (expected version {expected})"
    )]
    StandingConflict {
        /// The account.
        account: String,
        /// Version the caller read.
        expected: u64,
    },
    /// Someone else updated the task since it was read.
    #[error("task {task:?} was changed concurrently (expected version {expected})")]
    Conflict {
        /// The task.
        task: TaskId,
        /// Version the caller read.
        expected: u64,
    },
    /// A ledger transaction that does not balance.
    #[error(transparent)]
    Unbalanced(#[from] UnbalancedError),
    /// The backend is unreachable; callers retry with backoff.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Decoder message.
        reason: String,
    },
    /// Anything else from the backend.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Persistent, shared state of jobs, tasks and the ledger.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Inserts a job and all its tasks atomically (all or nothing).
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError>;
    /// Replaces a job's record (state, waiting reason).
    async fn update_job(&self, job: &Job) -> Result<(), StoreError>;
    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    /// Every job, oldest first.
    async fn jobs(&self) -> Result<Vec<Job>, StoreError>;
    /// One task.
    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError>;
    /// A job's tasks in index order.
    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError>;
    /// At most `limit` of a job's tasks, in index order from index `from`
    /// on: a page of a large job, so a status request reads what it shows
    /// and not the whole job.
    ///
    /// The default reads every task and keeps the page; backends with an
    /// index on (job, index) answer from it.
    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let tasks = self.tasks_of_job(job).await?;
        Ok(tasks
            .into_iter()
            .filter(|t| t.id.index >= from)
            .take(limit)
            .collect())
    }
    /// Tasks in `status` across all jobs, ordered by job priority (highest
    /// first), then job age, then task index; `Queued` tasks of jobs that
    /// are not `Active` are left out. At most `limit`.
    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError>;
    /// Writes `task` if the stored version still equals `task.version`, then
    /// bumps `task.version`. This is the atomic claim: of two managers
    /// leasing the same queued task, exactly one succeeds.
    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError>;
    /// Leased tasks whose lease deadline is at or before `now_ms`.
    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError>;
    /// Appends a balanced transaction; an id already recorded is refused
    /// with `AlreadyExists`, so a retried payment is never paid twice.
    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError>;
    /// Every transaction, in append order.
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError>;
    /// Applies every change of one step of a manager, or none: each task is
    /// written only if its stored version still equals its version (then
    /// its version in `changes` is bumped), each transaction must balance
    /// and have a new id. The first change that cannot be applied fails the
    /// whole batch with its error ([`StoreError::Conflict`],
    /// [`StoreError::AlreadyExists`], …) and nothing is written. So a task
    /// is never accepted without its payment, nor paid without being
    /// accepted.
    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError>;

    /// The balance of one account: the sum of its postings.
    ///
    /// Managers ask this on every verdict, slash and stake check, so
    /// backends answer it from a maintained balance rather than by reading
    /// the ledger; the provided version reads everything and exists for
    /// small stores only.
    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        Ok(ledger::balance(&self.transactions().await?, account))
    }

    /// One transaction by id.
    ///
    /// Managers look up a job's funding and a worker's stake grant this
    /// way; backends answer from their unique index on the id.
    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        Ok(self.transactions().await?.into_iter().find(|t| t.id == id))
    }

    /// Adds an account; a name already taken is refused with
    /// `AlreadyExists`.
    async fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// Replaces an account's record (keys added or revoked, limits); an
    /// unknown name is `NotFound`.
    async fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// One account by name.
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, by name.
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// How the nodes of account `name` have behaved; `None` before its
    /// first node was judged.
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError>;
    /// Records account `name`'s standing if the stored one still has
    /// `standing.version` (none stored counts as version 0), then bumps
    /// `standing.version`; otherwise [`StoreError::StandingConflict`] and
    /// nothing is written, and the caller reads again. Kept apart from the
    /// account's record, which operators edit, so that neither writer
    /// overwrites the other's change.
    async fn put_standing(&self, name: &str, standing: &mut NodeStanding)
        -> Result<(), StoreError>;

    /// The account holding the API key whose public id is `key_id`,
    /// revoked or not.
    ///
    /// Asked once per client connection; the provided version reads every
    /// account, which suits the few hundred accounts of a render network.
    async fn account_with_key(&self, key_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self
            .accounts()
            .await?
            .into_iter()
            .find(|a| a.has_key(key_id)))
    }

    /// Tasks and frames of a job per status, statuses with no task left
    /// out, in [`TaskStatus::ALL`] order.
    ///
    /// Asked after every accepted task (progress and completion), so
    /// backends count without decoding records; the provided version reads
    /// the job's tasks.
    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        Ok(StatusCount::tally(&self.tasks_of_job(job).await?))
    }
}

/// One change of an atomic batch (see [`TaskStore::apply`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// Write a task, as [`TaskStore::update_task`] does.
    Task(Box<Task>),
    /// Append a transaction, as [`TaskStore::append_transaction`] does.
    Transaction(Transaction),
}

/// How many of a job's tasks, and of their frames, are in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    /// The status.
    pub status: TaskStatus,
    /// Tasks in it.
    pub tasks: usize,
    /// Frames of those tasks.
    pub frames: u64,
}

impl StatusCount {
    /// Counts `tasks` per status (statuses with none left out).
    pub fn tally<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Vec<StatusCount> {
        let mut counts: Vec<StatusCount> = TaskStatus::ALL
            .into_iter()
            .map(|status| StatusCount {
                status,
                tasks: 0,
                frames: 0,
            })
            .collect();
        for t in tasks {
            if let Some(c) = counts.iter_mut().find(|c| c.status == t.status) {
                c.tasks += 1;
                c.frames += t.frames.len() as u64;
            }
        }
        counts.retain(|c| c.tasks > 0);
        counts
    }

    /// One row of a backend's per-status counts; a status or count this
    /// build does not know is a corrupt task row.
    pub fn from_row(job: JobId, status: &str, tasks: i64, frames: i64) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: format!("tasks of job {job}"),
            reason,
        };
        Ok(StatusCount {
            status: status.parse().map_err(corrupt)?,
            tasks: usize::try_from(tasks).map_err(|_| corrupt(format!("{tasks} tasks")))?,
            frames: u64::try_from(frames).map_err(|_| corrupt(format!("{frames} frames")))?,
        })
    }

    /// Puts counts in [`TaskStatus::ALL`] order, the order `status_counts`
    /// promises.
    pub fn sort(counts: &mut [StatusCount]) {
        counts.sort_by_key(|c| TaskStatus::ALL.iter().position(|s| *s == c.status));
    }

    /// Whether every task counted is accepted (and there is at least one).
    pub fn all_accepted(counts: &[StatusCount]) -> bool {
        !counts.is_empty() && counts.iter().all(|c| c.status == TaskStatus::Accepted)
    }

    /// Frames in `status` and frames in all, from `counts`.
    pub fn frames_in(counts: &[StatusCount], status: TaskStatus) -> (u64, u64) {
        let in_status = counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.frames)
            .sum();
        (in_status, counts.iter().map(|c| c.frames).sum())
    }
}

#[async_trait]
impl<T: TaskStore + ?Sized> TaskStore for std::sync::Arc<T> {
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        (**self).insert_job(job, tasks).await
    }
    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        (**self).update_job(job).await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        (**self).job(id).await
    }
    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        (**self).jobs().await
    }
    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        (**self).task(id).await
    }
    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        (**self).tasks_of_job(job).await
    }
    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        (**self).tasks_of_job_page(job, from, limit).await
    }
    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        (**self).tasks_in_status(status, limit).await
    }
    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        (**self).update_task(task).await
    }
    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        (**self).expired_leases(now_ms, limit).await
    }
    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        (**self).append_transaction(tx).await
    }
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        (**self).transactions().await
    }
    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        (**self).apply(changes).await
    }
    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        (**self).balance(account).await
    }
    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        (**self).transaction(id).await
    }
    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        (**self).status_counts(job).await
    }
    async fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        (**self).insert_account(account).await
    }
    async fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        (**self).update_account(account).await
    }
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        (**self).account(name).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        (**self).accounts().await
    }
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        (**self).standing(name).await
    }
    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        (**self).put_standing(name, standing).await
    }
    async fn account_with_key(&self, key_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        (**self).account_with_key(key_id).await
    }
}
