//! Dispatch: one pass over the queue head leases each task to an eligible
//! idle worker, never one worker twice, holds a task for a much faster busy
//! worker, skips paused jobs, and says why a job no worker may take waits.

use std::collections::HashMap;

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::{FifoScheduler, Scheduler, TaskDemand, WorkerInfo};
use inferix_core::task::Task;
use inferix_core::ContentHash;
use inferix_manager::dispatch::{plan, Decision, DispatchConfig};
use inferix_manager::estimates::Estimates;
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

fn job(id: u128, frames: u32) -> (Job, Vec<Task>) {
    let spec = JobSpec::new(
        SceneRef {
            blob: ContentHash::of(b"scene"),
            format: SceneFormat::Gltf,
            file_name: "s.glb".into(),
        },
        FrameRange::new(1, frames),
    );
    let job = Job {
        id: JobId(id),
        spec,
        state: JobState::Active,
        created_ms: 0,
        quoted_price: 0,
        waiting_reason: None,
        blocklist: vec![],
        history: vec![],
        warnings: vec![],
        lease_copies_removed: false,
        owner: None,
        outputs: Vec::new(),
    };
    let tasks = (0..frames)
        .map(|i| Task::new(TaskId::new(job.id, i), vec![i + 1], 0))
        .collect();
    (job, tasks)
}

fn jobs(list: &[&Job]) -> HashMap<JobId, Job> {
    list.iter().map(|j| (j.id, (*j).clone())).collect()
}

fn leases(d: &[Decision]) -> Vec<(u32, u128)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Lease { task, worker } => Some((task.index, worker.0)),
            _ => None,
        })
        .collect()
}

/// One pass with the FIFO scheduler (longest idle first).
fn fifo_plan(
    queued: &[Task],
    jobs: &HashMap<JobId, Job>,
    workers: &WorkerPool,
    estimates: &Estimates,
    cfg: &DispatchConfig,
    now: u64,
) -> Vec<Decision> {
    plan(
        queued,
        jobs,
        workers,
        &mut FifoScheduler,
        estimates,
        cfg,
        now,
    )
}

fn quick() -> DispatchConfig {
    DispatchConfig {
        finish_time_aware: false,
        ..DispatchConfig::default()
    }
}

#[test]
fn each_idle_worker_takes_one_task_in_queue_order() {
    let (j, tasks) = job(1, 5);
    let mut pool = WorkerPool::default();
    for w in 1..=3 {
        pool.join(w as u64, info(w, 1.0), w as u64);
    }
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    // FIFO: the longest idle first; two tasks stay queued.
    assert_eq!(leases(&d), vec![(0, 1), (1, 2), (2, 3)]);
}

#[test]
fn excluded_and_blocklisted_workers_are_passed_over() {
    let (mut j, mut tasks) = job(1, 2);
    j.blocklist.push(NodeId(1));
    tasks[1].excluded.push(NodeId(2));
    let mut pool = WorkerPool::default();
    for w in 1..=3 {
        pool.join(w as u64, info(w, 1.0), w as u64);
    }
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert_eq!(leases(&d), vec![(0, 2), (1, 3)]);
}

#[test]
fn a_job_no_worker_may_take_waits_with_the_reason_once() {
    let (mut demanding, tasks) = job(1, 3);
    demanding.spec.min_ib = 4.0;
    let (easy, easy_tasks) = job(2, 1);
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 1.5), 0);
    let queue: Vec<Task> = tasks.into_iter().chain(easy_tasks).collect();
    let d = fifo_plan(
        &queue,
        &jobs(&[&demanding, &easy]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    let waiting: Vec<&Decision> = d
        .iter()
        .filter(|d| matches!(d, Decision::Waiting { .. }))
        .collect();
    assert_eq!(waiting.len(), 1, "one reason per job: {d:?}");
    let Decision::Waiting { job, reason } = waiting[0] else {
        unreachable!()
    };
    assert_eq!(*job, JobId(1));
    assert!(
        reason.contains("minimum IB 4") && reason.contains("1.50"),
        "{reason}"
    );
    // Work behind it goes on.
    assert_eq!(leases(&d), vec![(0, 1)]);
    // Without any worker, the reason says so.
    let d = fifo_plan(
        &queue,
        &jobs(&[&demanding, &easy]),
        &WorkerPool::default(),
        &Estimates::default(),
        &quick(),
        10,
    );
    assert!(d
        .iter()
        .all(|d| matches!(d, Decision::Waiting { reason, .. } if reason == "no worker connected")));
}

#[test]
fn paused_and_unknown_jobs_are_skipped() {
    let (mut paused, tasks) = job(1, 2);
    paused.state = JobState::Paused;
    let (_, orphans) = job(9, 1);
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 1.0), 0);
    let queue: Vec<Task> = tasks.into_iter().chain(orphans).collect();
    let d = fifo_plan(
        &queue,
        &jobs(&[&paused]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert!(d.is_empty(), "{d:?}");
}

/// Always answers a busy worker (or any id it likes): dispatch checks.
struct Liar;

impl Scheduler for Liar {
    fn choose(&mut self, _: &TaskDemand<'_>, _: &[WorkerInfo]) -> Option<NodeId> {
        Some(NodeId(2))
    }
}

#[test]
fn a_scheduler_answer_that_is_not_an_idle_eligible_worker_is_ignored() {
    let (j, tasks) = job(1, 2);
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 1.0), 0);
    pool.join(2, info(2, 1.0), 0);
    assert!(pool.assign(NodeId(2), TaskId::new(JobId(7), 0), 1, 0));
    let d = plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &mut Liar,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert!(leases(&d).is_empty(), "{d:?}");
}

#[test]
fn a_task_is_held_for_a_much_faster_worker_that_frees_up_sooner() {
    let (j, tasks) = job(3, 2);
    let mut pool = WorkerPool::default();
    let mut est = Estimates::default();
    // Worker 1 (IB 20) rendered a 1-frame task of the job in 100 ms: 2 s
    // per frame at IB 1. It is busy again, free at about 1,100.
    pool.join(1, info(1, 20.0), 0);
    assert!(pool.assign(NodeId(1), TaskId::new(j.id, 99), 1, 0));
    est.finished(pool.get(&NodeId(1)).unwrap(), j.id, 100);
    pool.release(NodeId(1), TaskId::new(j.id, 99), 100);
    assert!(pool.assign(NodeId(1), TaskId::new(j.id, 98), 1, 1_000));
    // Worker 2 (IB 0.1) is idle: 20 s per frame.
    pool.join(2, info(2, 0.1), 0);
    let aware = DispatchConfig {
        finish_time_aware: true,
        tick_ms: 50,
        ..DispatchConfig::default()
    };
    let d = fifo_plan(&tasks, &jobs(&[&j]), &pool, &est, &aware, 1_000);
    // Worker 1 finishes its task, then each of these (100 ms apiece), long
    // before the slow worker would finish one: both wait for it, the
    // second counting the first as promised to it.
    assert!(leases(&d).is_empty(), "{d:?}");
    // Without finish-time awareness the slow worker takes the first.
    let d = fifo_plan(&tasks, &jobs(&[&j]), &pool, &est, &quick(), 1_000);
    assert_eq!(leases(&d), vec![(0, 2)]);
}

#[test]
fn a_task_every_capable_worker_lost_before_waits_and_says_so() {
    let (j, mut tasks) = job(1, 1);
    tasks[0].excluded = vec![NodeId(1), NodeId(2)];
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 1.0), 0);
    pool.join(2, info(2, 1.0), 0);
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    let [Decision::Waiting { reason, .. }] = d.as_slice() else {
        panic!("one waiting decision: {d:?}");
    };
    assert!(
        reason.contains("(2)") && reason.contains(&tasks[0].id.to_string()),
        "{reason}"
    );
}

#[test]
fn a_silenced_worker_is_not_leased_to() {
    let (j, tasks) = job(1, 2);
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 1.0), 0);
    pool.join(2, info(2, 1.0), 1);
    pool.silence(NodeId(1));
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert_eq!(leases(&d), vec![(0, 2)]);
}

#[test]
fn a_long_queue_of_held_tasks_costs_a_bounded_pass() {
    use inferix_manager::dispatch::MAX_SCANNED_PER_PASS;
    let (j, tasks) = job(3, 40);
    let mut pool = WorkerPool::default();
    let mut est = Estimates::default();
    // Many fast busy workers of the job (2 s per frame at IB 1 measured).
    let busy = 3_000u128;
    for w in 1..=busy {
        pool.join(w as u64, info(w, 20.0), 0);
        assert!(pool.assign(NodeId(w), TaskId::new(j.id, 1_000 + w as u32), 1, 0));
    }
    est.finished(pool.get(&NodeId(1)).unwrap(), j.id, 100);
    // One slow idle worker.
    pool.join(0, info(1_000_000, 0.1), 0);
    let aware = DispatchConfig {
        finish_time_aware: true,
        tick_ms: 50,
        ..DispatchConfig::default()
    };
    let d = fifo_plan(&tasks, &jobs(&[&j]), &pool, &est, &aware, 50);
    // Every compared task is held for a fast worker; once the pass has
    // scanned its budget of busy workers, the next task is leased to the
    // idle one instead of being compared again.
    let compared = MAX_SCANNED_PER_PASS.div_ceil(busy as usize);
    assert!(compared < tasks.len());
    assert_eq!(leases(&d), vec![(compared as u32, 1_000_000)], "{d:?}");
}

#[test]
fn a_blend_job_goes_only_to_workers_that_render_blend_and_waits_saying_so() {
    let (mut j, tasks) = job(1, 2);
    j.spec.scene.format = SceneFormat::Blend;
    let mut pool = WorkerPool::default();
    pool.join(1, info(1, 10.0), 1);
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert!(leases(&d).is_empty(), "{d:?}");
    let Some(Decision::Waiting { reason, .. }) = d.first() else {
        panic!("the job waits: {d:?}");
    };
    assert!(reason.contains("renders .blend"), "{reason}");
    let blender = WorkerInfo {
        formats: vec![SceneFormat::Gltf, SceneFormat::Blend],
        ..info(2, 0.5)
    };
    pool.join(2, blender, 2);
    let d = fifo_plan(
        &tasks,
        &jobs(&[&j]),
        &pool,
        &Estimates::default(),
        &quick(),
        10,
    );
    assert_eq!(leases(&d), vec![(0, 2)], "the slower Blender worker, only");
}

#[test]
fn a_workers_announced_index_is_capped_by_its_measured_speed_across_reconnects() {
    use inferix_manager::speed::{effective_ib, ib_sample, task_work_ibm, MEASURED_SLACK};
    // 2 IB-minutes in one minute: an index of 2.
    assert_eq!(ib_sample(2.0, 60_000), Some(2.0));
    assert_eq!(ib_sample(0.0, 60_000), None);
    assert_eq!(ib_sample(2.0, 0), None);
    assert_eq!(effective_ib(1_000.0, None), 1_000.0);
    assert_eq!(effective_ib(1_000.0, Some(2.0)), 2.0 * MEASURED_SLACK);
    assert_eq!(effective_ib(1.0, Some(2.0)), 1.0, "modesty is believed");
    // A 10-frame job priced 5,000 at 100 per IB-minute: 5 IB-minutes per frame.
    assert_eq!(task_work_ibm(5_000, 100, 2, 10), 10.0);
    assert_eq!(task_work_ibm(5_000, 0, 2, 10), 0.0);

    let mut pool = WorkerPool::default();
    let liar = WorkerInfo {
        id: NodeId(7),
        ib: 100_000.0,
        reputation: 1.0,
        tags: vec![],
        formats: vec![],
    };
    pool.join(1, liar.clone(), 0);
    assert_eq!(pool.get(&NodeId(7)).unwrap().info.ib, 100_000.0);
    let ib = pool.observe_speed(NodeId(7), 3.0, 60_000).unwrap();
    assert_eq!(ib, 3.0 * MEASURED_SLACK);
    assert_eq!(pool.get(&NodeId(7)).unwrap().declared_ib, 100_000.0);
    // Reconnecting does not shed the measurement.
    pool.leave(NodeId(7));
    pool.join(2, liar, 5);
    assert_eq!(pool.get(&NodeId(7)).unwrap().info.ib, 3.0 * MEASURED_SLACK);
    // Later samples move it gradually.
    let ib = pool.observe_speed(NodeId(7), 6.0, 60_000).unwrap();
    assert!(
        ib > 3.0 * MEASURED_SLACK && ib < 6.0 * MEASURED_SLACK,
        "{ib}"
    );
}

#[test]
fn the_admission_probe_caps_a_new_worker_until_its_first_task_is_measured() {
    use inferix_manager::speed::{probe_ib, MEASURED_SLACK, PROBE_SLACK};
    // The manager's IB-2 renderer took 30 ms; the node answered in 120 ms.
    assert_eq!(probe_ib(2.0, 30, 120), Some(0.5));
    assert_eq!(probe_ib(2.0, 0, 120), None);
    assert_eq!(probe_ib(0.0, 30, 120), None);
    assert_eq!(probe_ib(2.0, 30, 0), None);

    let mut pool = WorkerPool::default();
    let liar = WorkerInfo {
        id: NodeId(8),
        ib: 1e9,
        reputation: 1.0,
        tags: vec![],
        formats: vec![],
    };
    // Probed before it joins (the hello waits for the probe).
    pool.admission_speed(NodeId(8), 0.5);
    pool.join(1, liar.clone(), 0);
    assert_eq!(pool.get(&NodeId(8)).unwrap().info.ib, 0.5 * PROBE_SLACK);
    assert_eq!(pool.measured_ib(&NodeId(8)), Some(0.5));
    // An honest modest worker keeps its word.
    pool.admission_speed(NodeId(9), 0.5);
    pool.join(
        2,
        WorkerInfo {
            id: NodeId(9),
            ib: 1.5,
            ..liar.clone()
        },
        0,
    );
    assert_eq!(pool.get(&NodeId(9)).unwrap().info.ib, 1.5);
    // Its first task replaces the probe's figure, not blends with it.
    let ib = pool.observe_speed(NodeId(8), 3.0, 60_000).unwrap();
    assert_eq!(ib, 3.0 * MEASURED_SLACK);
    assert_eq!(pool.measured_ib(&NodeId(8)), Some(3.0));
}
