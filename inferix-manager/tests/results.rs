//! Results: a signed result must answer the current lease's attempt and
//! its scene (the prepared copy when there is one, else the job's).

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::task::{Fault, Lease, Task, TaskResult};
use inferix_core::ContentHash;
use inferix_manager::results::{
    check_result, failure_fault, needs_job_scene, FailureCounts, ResultRefusal,
};

fn task(prepared: Option<ContentHash>) -> Task {
    let mut t = Task::new(TaskId::new(JobId(1), 0), vec![1], 0);
    t.lease(
        Lease {
            worker: NodeId(5),
            manager: NodeId(9),
            deadline_ms: 600_000,
            scene: prepared,
        },
        0,
    )
    .unwrap();
    t
}

fn result(attempt: u32, scene: &[u8]) -> TaskResult {
    TaskResult {
        worker: NodeId(5),
        frames: Vec::new(),
        render_ms: 1,
        attempt,
        scene: ContentHash::of(scene),
        device_class: "cpu".into(),
        public_key: Vec::new(),
        signature: Vec::new(),
    }
}

#[test]
fn a_result_of_the_leased_copy_and_attempt_passes() {
    let t = task(Some(ContentHash::of(b"copy")));
    assert!(!needs_job_scene(&t));
    assert_eq!(check_result(&t, &result(1, b"copy"), None), Ok(()));
}

#[test]
fn a_replay_of_another_attempt_is_refused() {
    let t = task(Some(ContentHash::of(b"copy")));
    assert_eq!(
        check_result(&t, &result(2, b"copy"), None),
        Err(ResultRefusal::OtherAttempt {
            result: 2,
            lease: 1
        })
    );
}

#[test]
fn a_render_of_another_scene_is_refused() {
    // The prepared copy carries this lease's watermark: the customer's own
    // scene (without it) is another scene.
    let t = task(Some(ContentHash::of(b"copy")));
    assert_eq!(
        check_result(
            &t,
            &result(1, b"original"),
            Some(ContentHash::of(b"original"))
        ),
        Err(ResultRefusal::OtherScene)
    );
    // Without a prepared copy the job's own scene is the leased one.
    let plain = task(None);
    assert!(needs_job_scene(&plain));
    assert_eq!(
        check_result(
            &plain,
            &result(1, b"original"),
            Some(ContentHash::of(b"original"))
        ),
        Ok(())
    );
    assert_eq!(
        check_result(
            &plain,
            &result(1, b"other"),
            Some(ContentHash::of(b"original"))
        ),
        Err(ResultRefusal::OtherScene)
    );
}

#[test]
fn a_failure_is_charged_to_the_task_only_for_a_worker_with_accepted_work() {
    let w = NodeId(4);
    // A fresh key failing a task costs the job nothing: griefers with many
    // keys cannot use up its retry budget.
    assert_eq!(failure_fault(w, 0), Fault::Worker(w));
    assert_eq!(failure_fault(w, -5), Fault::Worker(w));
    // A worker that has been paid is believed: the task may be the trouble.
    assert_eq!(failure_fault(w, 1), Fault::Attempt(w));
}

#[test]
fn a_worker_is_blocklisted_for_a_job_at_its_limit_of_lost_leases() {
    let mut f = FailureCounts::default();
    let (a, b) = (JobId(1), JobId(2));
    assert!(!f.count(a, NodeId(5), 3));
    assert!(!f.count(a, NodeId(5), 3));
    // Another job and another worker count apart.
    assert!(!f.count(b, NodeId(5), 3));
    assert!(!f.count(a, NodeId(6), 3));
    assert!(f.count(a, NodeId(5), 3), "the third loss on job 1");
    assert!(f.count(a, NodeId(5), 3), "and every later one");
    assert_eq!(f.of(a, NodeId(5)), 4);
    // A limit of 0 means the first loss.
    assert!(f.count(b, NodeId(7), 0));
    f.forget_job(a);
    assert_eq!(f.of(a, NodeId(5)), 0);
    assert_eq!(f.of(b, NodeId(5)), 1);
    assert_eq!(f.len(), 2);
}
