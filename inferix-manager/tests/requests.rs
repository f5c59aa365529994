//! Client requests: status, pause and resume, cancel.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::renderer::SceneFormat;
use inferix_core::task::{FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_manager::requests::{job_status, may_cancel, pause_change};

fn job(state: JobState) -> Job {
    Job {
        id: JobId(1),
        spec: JobSpec::new(
            SceneRef {
                blob: ContentHash::of(b"scene"),
                format: SceneFormat::Gltf,
                file_name: "s.glb".into(),
            },
            FrameRange::new(1, 4),
        ),
        state,
        created_ms: 0,
        quoted_price: 0,
        waiting_reason: None,
        blocklist: Vec::new(),
        history: Vec::new(),
        warnings: Vec::new(),
        lease_copies_removed: false,
        owner: None,
    }
}

fn accepted(index: u32, frames: &[u32]) -> Task {
    let mut t = Task::new(TaskId::new(JobId(1), index), frames.to_vec(), 0);
    t.lease(
        Lease {
            worker: NodeId(5),
            manager: NodeId(9),
            deadline_ms: 600_000,
            scene: None,
        },
        0,
    )
    .unwrap();
    let outputs = frames
        .iter()
        .map(|&frame| FrameOutput {
            frame,
            pixel_hash: ContentHash::of(&frame.to_le_bytes()),
            blob: ContentHash::of(&frame.to_be_bytes()),
            width: 4,
            height: 4,
            tile_root: ContentHash::of(b"tiles"),
        })
        .collect();
    t.complete(
        TaskResult {
            worker: NodeId(5),
            frames: outputs,
            render_ms: 1,
            attempt: 1,
            scene: ContentHash::of(b"scene"),
            device_class: "cpu".into(),
            public_key: Vec::new(),
            signature: Vec::new(),
        },
        1,
    )
    .unwrap();
    t.transition(TaskStatus::Verifying, 2, "sent").unwrap();
    t.transition(TaskStatus::Accepted, 3, "verified").unwrap();
    t
}

#[test]
fn status_lists_accepted_frames_in_order_and_says_why_a_round_waits() {
    let tasks = vec![
        accepted(1, &[3, 4]),
        accepted(0, &[1, 2]),
        Task::new(TaskId::new(JobId(1), 2), vec![5], 0),
    ];
    let counts = vec![(TaskStatus::Accepted, 2), (TaskStatus::Queued, 1)];
    let stuck_task = TaskId::new(JobId(1), 2);
    let elsewhere = TaskId::new(JobId(2), 0);
    let s = job_status(
        job(JobState::Active),
        counts.clone(),
        &tasks,
        [
            (elsewhere, "another job's round"),
            (stuck_task, "no verifier"),
        ],
    );
    assert_eq!(
        s.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(s.counts, counts);
    let why = s.job.waiting_reason.unwrap();
    assert!(
        why.contains("no verifier") && why.contains(&stuck_task.to_string()),
        "{why}"
    );
    // The job's own reason, or a finished job, keeps what it has.
    let mut waiting = job(JobState::Active);
    waiting.waiting_reason = Some("no worker".into());
    let s = job_status(waiting, vec![], &tasks, [(stuck_task, "no verifier")]);
    assert_eq!(s.job.waiting_reason.as_deref(), Some("no worker"));
    let s = job_status(
        job(JobState::Completed),
        vec![],
        &tasks,
        [(stuck_task, "x")],
    );
    assert_eq!(s.job.waiting_reason, None);
}

#[test]
fn pause_and_resume_move_between_active_and_paused_only() {
    assert_eq!(
        pause_change(JobState::Active, true),
        Ok(Some((JobState::Paused, "paused by the user")))
    );
    assert_eq!(
        pause_change(JobState::Paused, true),
        Ok(None),
        "already paused"
    );
    assert_eq!(
        pause_change(JobState::Paused, false),
        Ok(Some((JobState::Active, "resumed by the user")))
    );
    assert_eq!(pause_change(JobState::Active, false), Ok(None));
    for done in [JobState::Completed, JobState::Cancelled, JobState::Failed] {
        let why = pause_change(done, true).unwrap_err();
        assert!(why.contains("cannot be paused"), "{why}");
        assert!(pause_change(done, false).is_err());
    }
}

#[test]
fn only_unfinished_jobs_can_be_cancelled() {
    assert_eq!(may_cancel(JobState::Active), Ok(()));
    assert_eq!(may_cancel(JobState::Paused), Ok(()));
    for done in [JobState::Completed, JobState::Cancelled, JobState::Failed] {
        assert!(may_cancel(done).unwrap_err().contains("already"));
    }
}
