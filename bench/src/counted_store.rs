//! A [`TaskStore`] wrapper that counts the calls made through it, so the
//! dispatch benchmark can say how many store round trips one task costs:
//! on a networked database that count, times the round trip, bounds the
//! manager's rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::{Account, Transaction};
use inferix_core::store::{Change, StatusCount, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};

/// Calls counted by [`CountedStore`].
#[derive(Debug, Default)]
pub struct StoreCalls {
    /// Reads (jobs, tasks, queue, balances, counts, transactions).
    pub reads: AtomicU64,
    /// Writes (inserts, updates, appends).
    pub writes: AtomicU64,
    /// Calls by method name, to show which ones a task costs.
    by_method: Mutex<BTreeMap<&'static str, u64>>,
}

impl StoreCalls {
    /// (reads, writes) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// Calls so far by method name.
    pub fn by_method(&self) -> BTreeMap<&'static str, u64> {
        self.by_method
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, method: &'static str) {
        *self
            .by_method
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method)
            .or_default() += 1;
    }

    fn read(&self, method: &'static str) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.count(method);
    }

    fn write(&self, method: &'static str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.count(method);
    }
}

/// Passes every call to the inner store and counts it.
pub struct CountedStore {
    inner: Arc<dyn TaskStore>,
    calls: Arc<StoreCalls>,
}

impl CountedStore {
    /// Wraps `inner`; the counts are read through the returned handle.
    pub fn new(inner: Arc<dyn TaskStore>) -> (Self, Arc<StoreCalls>) {
        let calls = Arc::new(StoreCalls::default());
        (
            Self {
                inner,
                calls: calls.clone(),
            },
            calls,
        )
    }
}

#[async_trait]
impl TaskStore for CountedStore {
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.calls.write("insert_account");
        self.inner.insert_account(a).await
    }
    async fn update_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.calls.write("update_account");
        self.inner.update_account(a).await
    }
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.calls.read("account");
        self.inner.account(name).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.calls.read("accounts");
        self.inner.accounts().await
    }
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        self.calls.read("standing");
        self.inner.standing(name).await
    }
    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        self.calls.write("put_standing");
        self.inner.put_standing(name, standing).await
    }
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        self.calls.write("insert_job");
        self.inner.insert_job(job, tasks).await
    }
    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.calls.write("update_job");
        self.inner.update_job(job).await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.calls.read("job");
        self.inner.job(id).await
    }
    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.calls.read("jobs");
        self.inner.jobs().await
    }
    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.calls.read("task");
        self.inner.task(id).await
    }
    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        self.calls.read("tasks_of_job");
        self.inner.tasks_of_job(job).await
    }
    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.calls.read("tasks_of_job_page");
        self.inner.tasks_of_job_page(job, from, limit).await
    }
    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.calls.read("tasks_in_status");
        self.inner.tasks_in_status(status, limit).await
    }
    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        self.calls.write("update_task");
        self.inner.update_task(task).await
    }
    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.calls.read("expired_leases");
        self.inner.expired_leases(now_ms, limit).await
    }
    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        self.calls.write("append_transaction");
        self.inner.append_transaction(tx).await
    }
    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        // One transaction: one round trip to the database.
        self.calls.write("apply");
        self.inner.apply(changes).await
    }
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        self.calls.read("transactions");
        self.inner.transactions().await
    }
    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        self.calls.read("balance");
        self.inner.balance(account).await
    }
    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.calls.read("transaction");
        self.inner.transaction(id).await
    }
    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        self.calls.read("status_counts");
        self.inner.status_counts(job).await
    }
}
