//! A task store that times every call into the manager's metrics
//! (`inferix_store_operation_seconds{kind=…}`), around whichever store the
//! manager was given.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::{Account, Transaction};
use inferix_core::store::{Change, StatusCount, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};

use super::metrics::{ManagerMetrics, SharedMetrics};

pub(super) struct MeteredStore {
    inner: Arc<dyn TaskStore>,
    metrics: SharedMetrics,
}

impl MeteredStore {
    pub(super) fn new(inner: Arc<dyn TaskStore>, metrics: SharedMetrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, op: &str, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        self.metrics
            .store_seconds
            .get_or_create(&ManagerMetrics::kind(op))
            .observe(start.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl TaskStore for MeteredStore {
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        self.timed("insert_job", self.inner.insert_job(job, tasks))
            .await
    }
    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.timed("update_job", self.inner.update_job(job)).await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.timed("job", self.inner.job(id)).await
    }
    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.timed("jobs", self.inner.jobs()).await
    }
    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.timed("task", self.inner.task(id)).await
    }
    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        self.timed("tasks_of_job", self.inner.tasks_of_job(job))
            .await
    }
    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.timed(
            "tasks_of_job_page",
            self.inner.tasks_of_job_page(job, from, limit),
        )
        .await
    }
    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.timed("tasks_in_status", self.inner.tasks_in_status(status, limit))
            .await
    }
    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        self.timed("update_task", self.inner.update_task(task))
            .await
    }
    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.timed("expired_leases", self.inner.expired_leases(now_ms, limit))
            .await
    }
    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        self.timed("append_transaction", self.inner.append_transaction(tx))
            .await
    }
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        self.timed("transactions", self.inner.transactions()).await
    }
    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        self.timed("apply", self.inner.apply(changes)).await
    }
    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        self.timed("balance", self.inner.balance(account)).await
    }
    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.timed("transaction", self.inner.transaction(id)).await
    }
    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        self.timed("status_counts", self.inner.status_counts(job))
            .await
    }
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.timed("insert_account", self.inner.insert_account(a))
            .await
    }
    async fn update_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.timed("update_account", self.inner.update_account(a))
            .await
    }
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.timed("account", self.inner.account(name)).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.timed("accounts", self.inner.accounts()).await
    }
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        self.timed("standing", self.inner.standing(name)).await
    }
    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        self.timed("put_standing", self.inner.put_standing(name, standing))
            .await
    }
    async fn account_with_key(&self, key_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.timed("account_with_key", self.inner.account_with_key(key_id))
            .await
    }
}
