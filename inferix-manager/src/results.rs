//! Whether a result with a valid signature answers the lease it claims
//! to: a replay of another attempt, or a render of another scene than the
//! one leased, is refused before any verifier spends time on it. And whom
//! a failed attempt is charged to ([`failure_fault`]), and when a worker
//! that keeps losing a job's leases is kept off the job ([`FailureCounts`]).

use std::collections::HashMap;

use inferix_core::ids::{JobId, NodeId};
use inferix_core::task::{Fault, Task, TaskResult};
use inferix_core::ContentHash;

/// Why a signed result does not answer its task's lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultRefusal {
    /// It answers an earlier (or later) lease of the task.
    #[error("result answers attempt {result} but the lease is attempt {lease}")]
    OtherAttempt {
        /// The attempt the result names.
        result: u32,
        /// The attempt of the current lease.
        lease: u32,
    },
    /// It was rendered from another scene than the one leased.
    #[error("result was rendered from another scene than the one leased")]
    OtherScene,
}

/// Checks `result` against `task`'s current lease. The leased scene is the
/// lease's prepared (watermarked) copy, else `job_scene`, the job's own.
pub fn check_result(
    task: &Task,
    result: &TaskResult,
    job_scene: Option<ContentHash>,
) -> Result<(), ResultRefusal> {
    if result.attempt != task.attempts {
        return Err(ResultRefusal::OtherAttempt {
            result: result.attempt,
            lease: task.attempts,
        });
    }
    let leased = task
        .lease
        .as_ref()
        .and_then(|l| l.scene)
        .or(job_scene)
        .unwrap_or(result.scene);
    if leased != result.scene {
        return Err(ResultRefusal::OtherScene);
    }
    Ok(())
}

/// Whether the driver must read the job to know the leased scene: a lease
/// without a prepared copy leases the job's own scene.
pub fn needs_job_scene(task: &Task) -> bool {
    task.lease.as_ref().and_then(|l| l.scene).is_none()
}

/// Whom a worker's failure on a task is charged to: its own report that
/// the render failed, or a result the verifiers rejected. `earned` is what
/// the worker has earned on record.
///
/// A worker with accepted work behind it is believed: such a failure may
/// follow the task (a scene that defeats every renderer), so the task's
/// retry budget is charged and a scene nobody can render fails its job
/// instead of circling. A worker with none may be one of many fresh keys
/// taking tasks only to fail them, which would fail any job it liked after
/// the retry budget: it is excluded from the task, which is not charged.
/// Either way the worker is excluded and its failures count toward its
/// blocklisting for the job.
pub fn failure_fault(worker: NodeId, earned: i64) -> Fault {
    if earned > 0 {
        Fault::Attempt(worker)
    } else {
        Fault::Worker(worker)
    }
}

/// Reputation a worker keeps after each lease lost through it (handed
/// back, abandoned, failed, rejected): the scheduler then prefers others.
pub const FAILURE_REPUTATION_FACTOR: f64 = 0.8;

/// Leases lost through each worker on each unfinished job. A worker that
/// takes tasks only to hand them back (or vanish) is excluded from each
/// task it lost, but a job has many tasks: after `limit` losses on one job
/// it is blocklisted for the whole job, so a griefer delays a job at most
/// `limit` times instead of once per task.
#[derive(Debug, Clone, Default)]
pub struct FailureCounts {
    counts: HashMap<(JobId, NodeId), u32>,
}

impl FailureCounts {
    /// Counts a lease of `job` lost through `worker`; true when this loss
    /// reaches `limit` (at least 1), and the worker is to be blocklisted
    /// for the job. Later losses are counted and answer true again.
    pub fn count(&mut self, job: JobId, worker: NodeId, limit: u32) -> bool {
        let n = self.counts.entry((job, worker)).or_insert(0);
        *n = n.saturating_add(1);
        *n >= limit.max(1)
    }

    /// Losses of `worker` on `job` so far.
    pub fn of(&self, job: JobId, worker: NodeId) -> u32 {
        self.counts.get(&(job, worker)).copied().unwrap_or(0)
    }

    /// Forgets a finished job's counts: a job id from a peer cannot make
    /// the map grow past the jobs in hand.
    pub fn forget_job(&mut self, job: JobId) {
        self.counts.retain(|(j, _), _| *j != job);
    }

    /// Workers and jobs counted.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
