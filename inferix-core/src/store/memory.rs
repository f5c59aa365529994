//! An in-memory `TaskStore` for unit tests and simulation.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{StoreError, TaskStore};
use crate::ids::{JobId, TaskId};
use crate::job::{Job, JobState};
use crate::ledger::Transaction;
use crate::task::{Task, TaskStatus};

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<JobId, (u64, Job)>,
    tasks: BTreeMap<TaskId, Task>,
    transactions: Vec<Transaction>,
    transaction_ids: HashSet<String>,
    next_seq: u64,
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
        }
        Ok(())
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut g = self.lock();
        match g.jobs.get_mut(&job.id) {
            Some((_, j)) => {
                *j = job.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound {
                what: format!("job {}", job.id),
            }),
        }
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

    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .tasks
            .values()
            .filter(|t| t.status == status)
            .filter_map(|t| {
                let (seq, job) = g.jobs.get(&t.id.job)?;
                if status == TaskStatus::Queued && job.state != JobState::Active {
                    return None;
                }
                Some((queue_order(job, *seq, t), t))
            })
            .collect();
        v.sort_by_key(|(k, _)| *k);
        Ok(v.into_iter().take(limit).map(|(_, t)| t.clone()).collect())
    }

    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        let mut g = self.lock();
        let stored = g
            .tasks
            .get_mut(&task.id)
            .ok_or_else(|| StoreError::NotFound {
                what: format!("task {}", task.id),
            })?;
        if stored.version != task.version {
            return Err(StoreError::Conflict {
                task: task.id,
                expected: task.version,
            });
        }
        task.version += 1;
        *stored = task.clone();
        Ok(())
    }

    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        let g = self.lock();
        Ok(g.tasks
            .values()
            .filter(|t| t.lease_expired(now_ms))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        tx.check_balanced()?;
        let mut g = self.lock();
        if !g.transaction_ids.insert(tx.id.clone()) {
            return Err(StoreError::AlreadyExists {
                what: format!("transaction {}", tx.id),
            });
        }
        g.transactions.push(tx.clone());
        Ok(())
    }

    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.lock().transactions.clone())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::test_all(|| async { super::MemoryTaskStore::new() }).await;
    }
}
