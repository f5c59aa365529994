//! Finish-time estimates: measured work per frame, a faster busy worker
//! that will finish a task sooner, and stragglers worth moving.

use std::collections::HashMap;

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::{TaskDemand, WorkerInfo};
use inferix_manager::estimates::{expected_end, Estimates, WorkEstimate};
use inferix_manager::workers::WorkerPool;

fn info(id: u128, ib: f64) -> WorkerInfo {
    WorkerInfo {
        id: NodeId(id),
        ib,
        reputation: 1.0,
        tags: vec![],
        formats: vec![SceneFormat::Gltf],
    }
}

const JOB: JobId = JobId(3);

fn task(i: u32) -> TaskId {
    TaskId::new(JOB, i)
}

/// A pool where worker 1 (IB 2) rendered one 4-frame task of JOB in 4 s,
/// so the job's work is 2,000 ms per frame at IB 1.
fn measured() -> (WorkerPool, Estimates) {
    let mut pool = WorkerPool::default();
    let mut est = Estimates::default();
    pool.join(1, info(1, 2.0), 0);
    assert!(pool.assign(NodeId(1), task(0), 4, 1_000));
    est.finished(pool.get(&NodeId(1)).unwrap(), JOB, 5_000);
    pool.release(NodeId(1), task(0), 5_000);
    (pool, est)
}

#[test]
fn work_per_frame_is_measured_over_the_leased_frames_at_ib_one() {
    let (_, est) = measured();
    assert_eq!(est.per_frame(JOB), Some(2_000.0));
    assert_eq!(est.per_frame(JobId(4)), None);
    assert_eq!(est.longest_frame(), 2_000.0);
    let mut e = WorkEstimate::default();
    e.observe(f64::NAN);
    e.observe(-1.0);
    assert_eq!(e.mean(), None, "nonsense is not a measurement");
    e.observe(10.0);
    e.observe(20.0);
    assert_eq!(e.mean(), Some(15.0));
}

#[test]
fn a_much_faster_busy_worker_that_ends_sooner_is_preferred() {
    let (mut pool, est) = measured();
    // Worker 1 (IB 2) is busy on a 1-frame task since 5,000: free at 6,000.
    assert!(pool.assign(NodeId(1), task(1), 1, 5_000));
    assert_eq!(
        expected_end(pool.get(&NodeId(1)).unwrap(), 2_000.0),
        6_000.0
    );
    let slow = info(2, 0.1);
    let demand = TaskDemand {
        task: task(2),
        min_ib: 0.0,
        tags: &[],
        excluded: &[],
        format: None,
    };
    // The slow one would take 20 s per frame; worker 1 ends at 6,000 and
    // renders it in 1 s.
    let (who, when) = est
        .sooner_busy_worker(&pool, &demand, 1, &slow, &HashMap::new(), 5_500, 500)
        .unwrap();
    assert_eq!((who, when), (NodeId(1), 7_000));
    // Not when the chosen worker is about as fast.
    let fair = info(3, 1.9);
    assert!(est
        .sooner_busy_worker(&pool, &demand, 1, &fair, &HashMap::new(), 5_500, 500)
        .is_none());
    // Not when worker 1 is excluded from the task.
    let excluded = [NodeId(1)];
    let barred = TaskDemand {
        excluded: &excluded,
        ..demand
    };
    assert!(est
        .sooner_busy_worker(&pool, &barred, 1, &slow, &HashMap::new(), 5_500, 500)
        .is_none());
}

#[test]
fn a_straggler_moves_only_for_a_clear_gain() {
    let (mut pool, est) = measured();
    // Worker 5 (IB 0.2) started a 2-frame task at 5,000: 20 s to go.
    pool.join(5, info(5, 0.2), 0);
    assert!(pool.assign(NodeId(5), task(1), 2, 5_000));
    let fast = info(6, 4.0);
    assert_eq!(
        est.straggler_for(&pool, &fast, 6_000, 500),
        Some((NodeId(5), task(1)))
    );
    // Near its end, moving it gains nothing.
    assert_eq!(est.straggler_for(&pool, &fast, 24_500, 500), None);
    // An idle worker slower than the busy one never takes its task.
    assert_eq!(est.straggler_for(&pool, &info(7, 0.1), 6_000, 500), None);
}
