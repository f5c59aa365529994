//! Periodic checks: which peers went silent, which workers stopped making
//! progress, what an expired lease says about its worker, and which
//! verifications no round holds any more.
//!
//! Rules over the worker pool and the task records the driver read; the
//! driver carries them out (drops connections, takes tasks back, writes
//! the store).

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::task::{Task, TaskStatus};

use crate::workers::WorkerPool;

/// Whether a peer last heard from at `last_seen` is past `timeout_ms`.
pub fn is_silent(last_seen: u64, now: u64, timeout_ms: u64) -> bool {
    last_seen.saturating_add(timeout_ms) < now
}

/// Workers holding a task that showed no sign of progress (an offer
/// taken, a progress report) for `limit_ms`, with that task.
pub fn hung_workers(pool: &WorkerPool, now: u64, limit_ms: u64) -> Vec<(NodeId, TaskId)> {
    pool.iter()
        .filter_map(|(id, w)| {
            w.task()
                .filter(|_| w.last_progress.saturating_add(limit_ms) <= now)
                .map(|t| (*id, t))
        })
        .collect()
}

/// What an expired lease means for the worker that held it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The worker the lease named.
    pub worker: NodeId,
    /// It is connected, still holds the task and has not said a word since
    /// it was leased: frozen or cut off, so it is offered no more work
    /// until it speaks (see [`WorkerPool::silence`]).
    pub silence: bool,
}

/// The worker an expired lease of `task` charges, and whether to silence
/// it; `None` for a task without a lease.
pub fn expired_lease(pool: &WorkerPool, task: &Task) -> Option<ExpiredLease> {
    let worker = task.lease.as_ref()?.worker;
    let leased_at = task.entered(TaskStatus::Leased).unwrap_or(0);
    let silence = pool
        .get(&worker)
        .is_some_and(|w| w.task() == Some(task.id) && w.last_seen <= leased_at);
    Some(ExpiredLease { worker, silence })
}

/// Whether a task in `Verifying` that no round of this manager holds is
/// presumed lost (its manager crashed, or this one restarted): once it has
/// been verifying for `lost_after_ms`. Should its manager still settle
/// it, the store's compare-and-set lets only one verdict land.
pub fn is_orphaned_verification(task: &Task, now: u64, lost_after_ms: u64) -> bool {
    task.status == TaskStatus::Verifying
        && task
            .entered(TaskStatus::Verifying)
            .is_none_or(|at| at.saturating_add(lost_after_ms) <= now)
}
