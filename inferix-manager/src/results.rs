//! Whether a result with a valid signature answers the lease it claims
//! to: a replay of another attempt, or a render of another scene than the
//! one leased, is refused before any verifier spends time on it.

use inferix_core::task::{Task, TaskResult};
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
