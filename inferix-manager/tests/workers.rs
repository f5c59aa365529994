//! The worker pool: the idle set follows assignments, releases and
//! departures.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::WorkerInfo;
use inferix_manager::workers::{WorkerPool, WorkerState};

fn info(id: u128) -> WorkerInfo {
    WorkerInfo {
        id: NodeId(id),
        ib: 1.0,
        reputation: 1.0,
        tags: vec![],
        formats: vec![SceneFormat::Gltf],
    }
}

fn idle_ids(p: &WorkerPool) -> Vec<u128> {
    p.idle().map(|w| w.info.id.0).collect()
}

#[test]
fn idle_set_follows_assignments_releases_and_departures() {
    let mut p = WorkerPool::default();
    let t = |i| TaskId::new(JobId(1), i);
    p.join(10, info(1), 5);
    p.join(11, info(2), 3);
    p.join(12, info(3), 7);
    assert_eq!(idle_ids(&p), vec![2, 1, 3], "longest idle first");
    assert!(p.assign(NodeId(2), t(0), 1, 8));
    assert!(
        !p.assign(NodeId(2), t(1), 1, 8),
        "a busy worker takes no second task"
    );
    assert!(!p.assign(NodeId(9), t(1), 1, 8), "unknown worker");
    assert_eq!(idle_ids(&p), vec![1, 3]);
    p.release(NodeId(2), t(5), 9);
    assert_eq!(
        idle_ids(&p),
        vec![1, 3],
        "releasing another task frees nothing"
    );
    p.release(NodeId(2), t(0), 9);
    assert_eq!(
        idle_ids(&p),
        vec![1, 3, 2],
        "freed workers wait at the back"
    );
    assert!(p.assign(NodeId(3), t(1), 1, 10));
    assert_eq!(p.busy_count(), 1);
    let gone = p.leave(NodeId(3)).expect("connected");
    assert_eq!(gone.task(), Some(t(1)));
    p.leave(NodeId(1));
    assert_eq!(idle_ids(&p), vec![2]);
    assert_eq!(p.idle_count(), 1);
    assert_eq!(p.busy().count(), 0);
    assert_eq!(p.busy_count(), 0);
    // Rejoining replaces the old slot without a stale idle entry.
    p.join(13, info(2), 20);
    assert_eq!(idle_ids(&p), vec![2]);
    assert_eq!(p.get(&NodeId(2)).map(|w| w.conn), Some(13));
}

#[test]
fn a_silenced_worker_gets_no_work_until_it_is_heard_from() {
    let mut p = WorkerPool::default();
    let t = TaskId::new(JobId(1), 0);
    p.join(10, info(1), 0);
    p.join(11, info(2), 1);
    assert!(p.assign(NodeId(1), t, 1, 2));
    // Its lease ran out without a word: silenced, then released.
    p.silence(NodeId(1));
    p.release(NodeId(1), t, 50);
    assert_eq!(idle_ids(&p), vec![2], "not offered while silent");
    assert!(p.get(&NodeId(1)).unwrap().is_silent());
    assert_eq!(p.busy_count(), 0);
    // An idle worker silenced leaves the idle set at once.
    p.silence(NodeId(2));
    assert!(idle_ids(&p).is_empty());
    p.heard(NodeId(1), 60);
    assert_eq!(idle_ids(&p), vec![1], "back once it speaks");
    assert_eq!(p.get(&NodeId(1)).unwrap().last_seen, 60);
    p.heard(NodeId(1), 61);
    assert_eq!(idle_ids(&p), vec![1], "heard twice, listed once");
    p.heard(NodeId(2), 62);
    assert_eq!(idle_ids(&p), vec![1, 2]);
}

#[test]
fn a_drained_worker_finishes_its_task_and_takes_no_other_until_undrained() {
    let mut p = WorkerPool::default();
    let t = |i| TaskId::new(JobId(1), i);
    p.join(10, info(1), 1);
    p.join(11, info(2), 2);
    assert!(p.assign(NodeId(1), t(0), 1, 3));
    assert!(p.drain(NodeId(1)) && p.drain(NodeId(2)));
    assert!(!p.drain(NodeId(9)), "unknown worker");
    assert!(idle_ids(&p).is_empty(), "a drained worker is not idle");
    assert_eq!(p.get(&NodeId(1)).unwrap().state(), WorkerState::Draining);
    assert_eq!(p.get(&NodeId(2)).unwrap().state(), WorkerState::Drained);
    assert_eq!(
        p.get(&NodeId(1)).unwrap().task(),
        Some(t(0)),
        "its task stays"
    );
    p.release(NodeId(1), t(0), 4);
    assert!(idle_ids(&p).is_empty(), "nor after its task ends");
    p.silence(NodeId(2));
    p.heard(NodeId(2), 5);
    assert!(idle_ids(&p).is_empty(), "being heard does not undrain it");
    assert!(p.undrain(NodeId(2), 6) && p.undrain(NodeId(1), 7));
    assert_eq!(idle_ids(&p), vec![2, 1]);
    assert_eq!(p.get(&NodeId(1)).unwrap().state(), WorkerState::Idle);
}

fn faster_ids(p: &WorkerPool, ib: f64) -> Vec<u128> {
    p.busy_faster_than(ib).map(|(w, _)| w.info.id.0).collect()
}

#[test]
fn the_busy_workers_faster_than_an_index_follow_assignments_and_measurements() {
    let mut p = WorkerPool::default();
    let t = |i| TaskId::new(JobId(1), i);
    for (id, ib) in [(1, 1.0), (2, 4.0), (3, 2.0), (4, 8.0)] {
        p.join(id as u64, WorkerInfo { ib, ..info(id) }, 0);
    }
    assert!(faster_ids(&p, 0.0).is_empty(), "idle workers are not busy");
    for id in 1..=4 {
        assert!(p.assign(NodeId(id), t(id as u32), 1, 1));
    }
    assert_eq!(
        faster_ids(&p, 1.5),
        vec![4, 2, 3],
        "fastest first, slower left out"
    );
    assert_eq!(faster_ids(&p, 4.0), vec![4], "an equal index is not faster");
    p.release(NodeId(4), t(4), 2);
    assert_eq!(faster_ids(&p, 1.5), vec![2, 3]);
    // Worker 2's tasks show it slower than it said: the index moves it.
    let measured = p.observe_speed(NodeId(2), 0.25, 60_000).unwrap();
    assert!(measured < 1.5, "{measured}");
    assert_eq!(faster_ids(&p, 1.5), vec![3]);
    p.leave(NodeId(3));
    assert!(faster_ids(&p, 1.5).is_empty());
    assert_eq!(
        faster_ids(&p, 0.0),
        vec![1, 2],
        "worker 2 is now the slowest"
    );
}
