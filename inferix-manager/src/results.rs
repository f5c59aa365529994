//! Whether a result with a valid signature answers the lease it claims
//! to: a replay of another attempt, or a render of another scene than the
//! one leased, is refused before any verifier spends time on it. And whom
//! a failed attempt is charged to ([`failure_fault`]).

use inferix_core::ids::NodeId;
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
