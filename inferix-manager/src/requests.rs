//! Client requests' rules: a job's status as its client sees it, and
//! which state changes pause, resume and cancel may make.

use inferix_core::ids::TaskId;
use inferix_core::job::{Job, JobState};
use inferix_core::protocol::JobStatus;
use inferix_core::task::{Task, TaskStatus};

/// A job's status from its record, its tasks per status and its tasks; a
/// verification round that cannot go on (`stuck`: task and why) becomes
/// the job's reason to wait when it has no other.
pub fn job_status<'a>(
    mut job: Job,
    counts: Vec<(TaskStatus, usize)>,
    tasks: &[Task],
    stuck: impl IntoIterator<Item = (TaskId, &'a str)>,
) -> JobStatus {
    if job.waiting_reason.is_none() && !job.state.is_terminal() {
        let first = stuck
            .into_iter()
            .filter(|(t, _)| t.job == job.id)
            .min_by_key(|(t, _)| *t);
        if let Some((task, why)) = first {
            job.waiting_reason = Some(format!("verification of task {task} waits: {why}"));
        }
    }
    let mut frames: Vec<_> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Accepted)
        .flat_map(|t| t.delivered_frames())
        .collect();
    frames.sort_by_key(|f| f.frame);
    JobStatus {
        job,
        counts,
        frames,
    }
}

/// The change a pause (or resume, `pause == false`) makes to a job in
/// `state`: the new state and the history note, `None` when it is there
/// already, or why it cannot (a predicate: "is completed and cannot be
/// paused").
pub fn pause_change(
    state: JobState,
    pause: bool,
) -> Result<Option<(JobState, &'static str)>, String> {
    let (from, to, note) = if pause {
        (JobState::Active, JobState::Paused, "paused by the user")
    } else {
        (JobState::Paused, JobState::Active, "resumed by the user")
    };
    if state == to {
        return Ok(None);
    }
    if state != from {
        return Err(format!(
            "is {} and cannot be {}",
            state.as_str(),
            if pause { "paused" } else { "resumed" }
        ));
    }
    Ok(Some((to, note)))
}

/// Whether a job in `state` may be cancelled, or why not (a predicate:
/// "is already completed").
pub fn may_cancel(state: JobState) -> Result<(), String> {
    if state.is_terminal() {
        return Err(format!("is already {}", state.as_str()));
    }
    Ok(())
}
