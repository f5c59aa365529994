//! An in-memory `TaskStore` for unit tests and simulation.
//!
//! Besides the records it keeps the indexes a database would: tasks per
//! status in queue order, and a balance per ledger account, so a manager
//! driving it pays for what it reads, not for the size of the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Change, StatusCount, StoreError, TaskStore};
use crate::account::{AccountRecord, NodeStanding};
use crate::ids::{JobId, TaskId};
use crate::job::{Job, JobState};
use crate::ledger::{Account, Transaction};
use crate::task::{Task, TaskStatus};

/// Position of a task in its status's index: [`queue_order`] then the id.
type QueueKey = ((i32, u64, u64, u32), TaskId);

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<JobId, (u64, Job)>,
    tasks: BTreeMap<TaskId, Task>,
    /// Tasks of each status (indexed as in `TaskStatus::ALL`), in queue order.
    by_status: [BTreeSet<QueueKey>; TaskStatus::ALL.len()],
    /// Tasks and frames of each job per status (as in `TaskStatus::ALL`).
    job_counts: HashMap<JobId, [(usize, u64); TaskStatus::ALL.len()]>,
    transactions: Vec<Transaction>,
    /// Position of each transaction in `transactions`, by id.
    transaction_ids: HashMap<String, usize>,
    balances: HashMap<Account, i64>,
    accounts: BTreeMap<String, AccountRecord>,
    standings: HashMap<String, NodeStanding>,
    next_seq: u64,
}

fn status_slot(s: TaskStatus) -> usize {
    TaskStatus::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Inner {
    fn key(&self, task: &Task) -> Option<QueueKey> {
        let (seq, job) = self.jobs.get(&task.id.job)?;
        Some((queue_order(job, *seq, task), task.id))
    }

    fn index(&mut self, task: &Task) {
        if let Some(k) = self.key(task) {
            self.by_status[status_slot(task.status)].insert(k);
        }
        let c = &mut self.job_counts.entry(task.id.job).or_default()[status_slot(task.status)];
        c.0 += 1;
        c.1 += task.frames.len() as u64;
    }

    fn unindex(&mut self, task: &Task) {
        if let Some(k) = self.key(task) {
            self.by_status[status_slot(task.status)].remove(&k);
        }
        if let Some(counts) = self.job_counts.get_mut(&task.id.job) {
            let c = &mut counts[status_slot(task.status)];
            c.0 = c.0.saturating_sub(1);
            c.1 = c.1.saturating_sub(task.frames.len() as u64);
        }
    }
}

/// Everything in one mutex; fast and obviously atomic, lost on exit.
#[derive(Default)]
pub struct MemoryTaskStore {
    inner: Mutex<Inner>,
}

impl MemoryTaskStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-test; the
        // maps themselves are always left consistent by each method.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sort key shared by every backend: priority desc, job age, job insertion, index.
pub(crate) fn queue_order(job: &Job, seq: u64, task: &Task) -> (i32, u64, u64, u32) {
    (-job.spec.priority, job.created_ms, seq, task.id.index)
}

#[async_trait]
impl TaskStore for MemoryTaskStore {
    async fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.accounts.contains_key(&account.name) {
            return Err(StoreError::AlreadyExists {
                what: format!("account {}", account.name),
            });
        }
        g.accounts.insert(account.name.clone(), account.clone());
        Ok(())
    }

    async fn update_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        match self.lock().accounts.get_mut(&account.name) {
            Some(a) => {
                *a = account.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound {
                what: format!("account {}", account.name),
            }),
        }
    }

    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.get(name).cloned())
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.values().cloned().collect())
    }

    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        Ok(self.lock().standings.get(name).cloned())
    }

    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        let stored = g.standings.get(name).map_or(0, |s| s.version);
        if stored != standing.version {
            return Err(StoreError::StandingConflict {
                account: name.to_string(),
                expected: standing.version,
            });
        }
        standing.version += 1;
        g.standings.insert(name.to_string(), standing.clone());
        Ok(())
    }

    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.jobs.contains_key(&job.id) {
            return Err(StoreError::AlreadyExists {
                what: format!("job {}", job.id),
            });
        }
        if let Some(t) = tasks.iter().find(|t| g.tasks.contains_key(&t.id)) {
            return Err(StoreError::AlreadyExists {
                what: format!("task {}", t.id),
            });
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        g.jobs.insert(job.id, (seq, job.clone()));
        for t in tasks {
            g.tasks.insert(t.id, t.clone());
            g.index(t);
        }
        Ok(())
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut g = self.lock();
        let Some((_, old)) = g.jobs.get(&job.id) else {
            return Err(StoreError::NotFound {
                what: format!("job {}", job.id),
            });
        };
        let rekey = old.spec.priority != job.spec.priority || old.created_ms != job.created_ms;
        let tasks: Vec<Task> = if rekey {
            g.tasks
                .range(TaskId::new(job.id, 0)..=TaskId::new(job.id, u32::MAX))
                .map(|(_, t)| t.clone())
                .collect()
        } else {
            Vec::new()
        };
        for t in &tasks {
            g.unindex(t);
        }
        if let Some((_, j)) = g.jobs.get_mut(&job.id) {
            *j = job.clone();
        }
        for t in &tasks {
            g.index(t);
        }
        Ok(())
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(&id).map(|(_, j)| j.clone()))
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let g = self.lock();
        let mut v: Vec<_> = g.jobs.values().collect();
        v.sort_by_key(|(seq, j)| (j.created_ms, *seq));
        Ok(v.into_iter().map(|(_, j)| j.clone()).collect())
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        Ok(self.lock().tasks.get(&id).cloned())
    }

    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        Ok(g.tasks
            .range(TaskId::new(job, 0)..=TaskId::new(job, u32::MAX))
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn tasks_of_job_page(
        &self,
        job: JobId,
        from: u32,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        Ok(g.tasks
            .range(TaskId::new(job, from)..=TaskId::new(job, u32::MAX))
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        let mut out = Vec::new();
        for (_, id) in &g.by_status[status_slot(status)] {
            if out.len() >= limit {
                break;
            }
            if status == TaskStatus::Queued
                && g.jobs
                    .get(&id.job)
                    .is_none_or(|(_, j)| j.state != JobState::Active)
            {
                continue;
            }
            if let Some(t) = g.tasks.get(id) {
                out.push(t.clone());
            }
        }
        Ok(out)
    }

    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        let mut g = self.lock();
        let stored = g.tasks.get(&task.id).ok_or_else(|| StoreError::NotFound {
            what: format!("task {}", task.id),
        })?;
        if stored.version != task.version {
            return Err(StoreError::Conflict {
                task: task.id,
                expected: task.version,
            });
        }
        let old = stored.clone();
        task.version += 1;
        g.unindex(&old);
        g.index(task);
        g.tasks.insert(task.id, task.clone());
        Ok(())
    }

    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        Ok(g.by_status[status_slot(TaskStatus::Leased)]
            .iter()
            .filter_map(|(_, id)| g.tasks.get(id))
            .filter(|t| t.lease_expired(now_ms))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        tx.check_balanced()?;
        let mut g = self.lock();
        if g.transaction_ids.contains_key(&tx.id) {
            return Err(StoreError::AlreadyExists {
                what: format!("transaction {}", tx.id),
            });
        }
        let at = g.transactions.len();
        g.transaction_ids.insert(tx.id.clone(), at);
        for p in &tx.postings {
            *g.balances.entry(p.account.clone()).or_insert(0) += p.amount;
        }
        g.transactions.push(tx.clone());
        Ok(())
    }

    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.lock().transactions.clone())
    }

    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        let mut g = self.lock();
        // Checked against the store as the batch would leave it, change by
        // change, before anything is written.
        let mut versions: HashMap<TaskId, u64> = HashMap::new();
        let mut ids: HashSet<&str> = HashSet::new();
        for c in changes.iter() {
            match c {
                Change::Task(t) => {
                    let stored = match versions.get(&t.id) {
                        Some(&v) => v,
                        None => {
                            g.tasks
                                .get(&t.id)
                                .ok_or_else(|| StoreError::NotFound {
                                    what: format!("task {}", t.id),
                                })?
                                .version
                        }
                    };
                    if stored != t.version {
                        return Err(StoreError::Conflict {
                            task: t.id,
                            expected: t.version,
                        });
                    }
                    versions.insert(t.id, stored + 1);
                }
                Change::Transaction(tx) => {
                    tx.check_balanced()?;
                    if g.transaction_ids.contains_key(&tx.id) || !ids.insert(&tx.id) {
                        return Err(StoreError::AlreadyExists {
                            what: format!("transaction {}", tx.id),
                        });
                    }
                }
            }
        }
        for c in changes.iter_mut() {
            match c {
                Change::Task(t) => {
                    t.version += 1;
                    if let Some(old) = g.tasks.get(&t.id).cloned() {
                        g.unindex(&old);
                    }
                    g.index(t);
                    g.tasks.insert(t.id, (**t).clone());
                }
                Change::Transaction(tx) => {
                    let at = g.transactions.len();
                    g.transaction_ids.insert(tx.id.clone(), at);
                    for p in &tx.postings {
                        *g.balances.entry(p.account.clone()).or_insert(0) += p.amount;
                    }
                    g.transactions.push(tx.clone());
                }
            }
        }
        Ok(())
    }

    async fn balance(&self, account: &Account) -> Result<i64, StoreError> {
        Ok(self.lock().balances.get(account).copied().unwrap_or(0))
    }

    async fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        let g = self.lock();
        Ok(g.transaction_ids
            .get(id)
            .and_then(|&i| g.transactions.get(i))
            .cloned())
    }

    async fn status_counts(&self, job: JobId) -> Result<Vec<StatusCount>, StoreError> {
        let g = self.lock();
        let Some(counts) = g.job_counts.get(&job) else {
            return Ok(Vec::new());
        };
        Ok(TaskStatus::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, (tasks, _))| *tasks > 0)
            .map(|(status, &(tasks, frames))| StatusCount {
                status,
                tasks,
                frames,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::test_all(|| async { super::MemoryTaskStore::new() }).await;
    }
}
