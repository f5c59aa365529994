//! Client requests: status, pause and resume, cancel.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::protocol::ErrorCode;
use inferix_core::renderer::SceneFormat;
use inferix_core::task::{FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_manager::requests::{
    check_job_size, job_status, may_cancel, pause_change, status_page_tasks,
};

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
        outputs: Vec::new(),
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

#[test]
fn a_job_of_more_tasks_than_the_limit_is_refused_with_the_chunk_that_fits() {
    let mut spec = job(JobState::Active).spec;
    spec.frames = FrameRange::new(1, 1_000);
    spec.chunk_size = 1;
    assert_eq!(check_job_size(&spec, 1_000), Ok(()));
    let (code, message) = check_job_size(&spec, 999).unwrap_err();
    assert_eq!(code, ErrorCode::LimitExceeded);
    assert!(message.contains("1000 tasks"), "{message}");
    assert!(message.contains("at least 2"), "{message}");
    spec.chunk_size = 2;
    assert_eq!(check_job_size(&spec, 999), Ok(()));
    spec.chunk_size = 1;
    assert!(check_job_size(&spec, 0).is_err());
}

#[test]
fn a_status_page_holds_whole_tasks_and_at_least_one() {
    assert_eq!(status_page_tasks(5, 10_000), 2_000);
    assert_eq!(status_page_tasks(3, 10), 3);
    assert_eq!(status_page_tasks(100, 10), 1);
    assert_eq!(status_page_tasks(0, 10), 10);
    assert_eq!(status_page_tasks(1, 0), 1);
}

#[test]
fn a_status_lists_the_accepted_frames_of_the_tasks_it_is_given() {
    let tasks = [accepted(2, &[5, 6]), accepted(3, &[7, 8])];
    let s = job_status(job(JobState::Active), Vec::new(), &tasks, []);
    assert_eq!(
        s.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert_eq!(
        s.next_task, None,
        "the caller says where the next page starts"
    );
}
