//! Housekeeping: silent peers, hung workers, what an expired lease says
//! about its worker, and when a verification no round holds is lost.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::WorkerInfo;
use inferix_core::task::{Lease, Task, TaskStatus};
use inferix_manager::housekeeping::{
    expired_lease, hung_workers, is_orphaned_verification, is_silent, ExpiredLease,
};
use inferix_manager::workers::WorkerPool;

fn info(id: u128) -> WorkerInfo {
    WorkerInfo {
        id: NodeId(id),
        ib: 1.0,
        reputation: 1.0,
        tags: vec![],
        formats: vec![SceneFormat::Gltf],
    }
}

fn leased(index: u32, worker: u128, at: u64) -> Task {
    let mut t = Task::new(TaskId::new(JobId(1), index), vec![index], 0);
    t.lease(
        Lease {
            worker: NodeId(worker),
            manager: NodeId(9),
            deadline_ms: at + 600_000,
            scene: None,
        },
        at,
    )
    .unwrap();
    t
}

#[test]
fn a_peer_is_silent_only_past_its_timeout() {
    assert!(!is_silent(1_000, 31_000, 30_000), "exactly at the limit");
    assert!(is_silent(1_000, 31_001, 30_000));
    assert!(!is_silent(u64::MAX - 5, u64::MAX, 30_000), "no overflow");
}

#[test]
fn only_workers_whose_task_stalled_are_hung() {
    let mut pool = WorkerPool::default();
    let t = |i| TaskId::new(JobId(1), i);
    pool.join(1, info(1), 0);
    pool.join(2, info(2), 0);
    pool.join(3, info(3), 0);
    assert!(pool.assign(NodeId(1), t(0), 1, 1_000));
    assert!(pool.assign(NodeId(2), t(1), 1, 50_000));
    // Worker 3 is idle: never hung, however long it waits.
    let hung = hung_workers(&pool, 61_000, 60_000);
    assert_eq!(hung, vec![(NodeId(1), t(0))]);
    assert!(hung_workers(&pool, 60_999, 60_000).is_empty());
}

#[test]
fn an_expired_lease_silences_a_worker_not_heard_from_since_it_took_it() {
    let mut pool = WorkerPool::default();
    pool.join(1, info(1), 0);
    pool.join(2, info(2), 0);
    let frozen = leased(0, 1, 5_000);
    let talking = leased(1, 2, 5_000);
    assert!(pool.assign(NodeId(1), frozen.id, 1, 5_000));
    assert!(pool.assign(NodeId(2), talking.id, 1, 5_000));
    pool.heard(NodeId(2), 7_000);
    assert_eq!(
        expired_lease(&pool, &frozen),
        Some(ExpiredLease {
            worker: NodeId(1),
            silence: true
        })
    );
    assert_eq!(
        expired_lease(&pool, &talking),
        Some(ExpiredLease {
            worker: NodeId(2),
            silence: false
        }),
        "heard from since: charged, not silenced"
    );
    // A worker that moved on to another task, or left, is not silenced
    // for an old lease.
    let old = leased(2, 2, 1_000);
    assert_eq!(expired_lease(&pool, &old).map(|e| e.silence), Some(false));
    let gone = leased(3, 7, 1_000);
    assert_eq!(expired_lease(&pool, &gone).map(|e| e.silence), Some(false));
    assert_eq!(
        expired_lease(&pool, &Task::new(TaskId::new(JobId(1), 4), vec![4], 0)),
        None
    );
}

#[test]
fn a_verification_is_lost_once_it_has_waited_long_enough() {
    let mut t = leased(0, 1, 1_000);
    assert!(
        !is_orphaned_verification(&t, 10_000_000, 600_000),
        "not verifying at all"
    );
    t.transition(TaskStatus::Rendered, 2_000, "rendered")
        .unwrap();
    t.transition(TaskStatus::Verifying, 3_000, "sent").unwrap();
    assert!(!is_orphaned_verification(&t, 602_999, 600_000));
    assert!(is_orphaned_verification(&t, 603_000, 600_000));
}
