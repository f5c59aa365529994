//! Client requests' rules: a job's status as its client sees it, and
//! which state changes pause, resume and cancel may make.

use inferix_core::ids::TaskId;
use inferix_core::job::{Job, JobSpec, JobState};
use inferix_core::protocol::{ErrorCode, JobStatus, TaskDetail};
use inferix_core::task::{Task, TaskStatus};

/// Whether the manager takes a job of `spec`'s size: at most `max_tasks`
/// tasks. The refusal says how to fit (a larger chunk size).
pub fn check_job_size(spec: &JobSpec, max_tasks: u64) -> Result<(), (ErrorCode, String)> {
    // An impossible grid is refused for what it is, not for its size.
    if let Some(Err(e)) = spec
        .tiles
        .map(|g| g.validate(spec.settings.width, spec.settings.height))
    {
        return Err((ErrorCode::InvalidRequest, e.to_string()));
    }
    let tasks = spec.task_count();
    if tasks <= max_tasks {
        return Ok(());
    }
    let frames = spec.frames.len();
    Err((
        ErrorCode::LimitExceeded,
        format!(
            "the job splits into {tasks} tasks ({frames} frames, {} per task); this manager \
             takes at most {max_tasks} tasks per job: raise the chunk size to at least {}",
            spec.chunk_size,
            frames.div_ceil(max_tasks.max(1))
        ),
    ))
}

/// Tasks one status page lists so that it carries about `page_frames`
/// frames (at least one task, however large its chunk).
pub fn status_page_tasks(chunk_size: u32, page_frames: usize) -> usize {
    (page_frames / chunk_size.max(1) as usize).max(1)
}

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
    let frames = inferix_core::task::job_frames(job.spec.tiles.is_some(), tasks);
    let tasks = tasks.iter().map(|t| task_detail(&job, t)).collect();
    JobStatus {
        job,
        counts,
        frames,
        next_task: None,
        tasks,
    }
}

/// What a job's owner may know of one of its tasks: its worker, attempts,
/// verdicts, and what its acceptance paid (the same share of the quote as
/// the payment itself, [`crate::economy::task_payment`]).
fn task_detail(job: &Job, t: &Task) -> TaskDetail {
    let accepted = t.status == TaskStatus::Accepted;
    TaskDetail {
        index: t.id.index,
        frames: t.frames.clone(),
        status: t.status,
        worker: t
            .lease
            .as_ref()
            .map(|l| l.worker)
            .or(t.result.as_ref().map(|r| r.worker)),
        attempts: t.attempts,
        render_ms: t.result.as_ref().map(|r| r.render_ms),
        verdicts: t
            .history
            .iter()
            .filter(|c| matches!(c.status, TaskStatus::Accepted | TaskStatus::Rejected))
            .cloned()
            .collect(),
        paid: if accepted {
            let (part, whole) = job.spec.task_share(t.id.index, t.frames.len());
            crate::economy::frames_share(job.quoted_price, part, whole).max(0) as u64
        } else {
            0
        },
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
