//! Dispatch: which idle worker leases which queued task.
//!
//! One pass takes the head of the queue (in queue order: job priority, age,
//! task index) and the connected workers, and decides, without touching the
//! store: a task goes to the worker the scheduler picks among the longest
//! idle eligible workers; a task is held back when a busy, faster worker
//! is expected to finish it sooner than the idle one would (finish-time
//! aware dispatch); a job none of whose tasks any connected worker may take
//! is reported as waiting, with the reason. No worker gets two tasks in one
//! pass. The driver writes the pass's leases in one store batch.

use std::collections::{HashMap, HashSet};

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{Job, JobState};
use inferix_core::scheduler::{is_eligible, Scheduler, TaskDemand, WorkerInfo};
use inferix_core::task::Task;

use crate::estimates::Estimates;
use crate::workers::WorkerPool;

/// Busy workers one pass scans, in all, to hold tasks for faster busy
/// workers; beyond it the pass leases without comparing.
pub const MAX_SCANNED_PER_PASS: usize = 16_384;

/// Dispatch settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// Longest-idle workers offered to the scheduler per task.
    pub scheduler_candidates: usize,
    /// Hold a task for a busy worker expected to finish it sooner.
    pub finish_time_aware: bool,
    /// The manager's tick (ms): gains smaller than this are noise.
    pub tick_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            scheduler_candidates: 64,
            finish_time_aware: true,
            tick_ms: 250,
        }
    }
}

/// One decision of a dispatch pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Lease `task` to `worker`.
    Lease {
        /// The task.
        task: TaskId,
        /// The idle worker that takes it.
        worker: NodeId,
    },
    /// No connected worker may take the job's tasks.
    Waiting {
        /// The job.
        job: JobId,
        /// Why, for the customer.
        reason: String,
    },
}

/// Workers that may not take `task`: those it excludes and the job's
/// blocklist.
pub fn excluded_workers(task: &Task, job: &Job) -> Vec<NodeId> {
    task.excluded
        .iter()
        .chain(&job.blocklist)
        .copied()
        .collect()
}

/// The decisions of one pass over `queued` (queue order) with the jobs
/// they belong to (a task whose job is missing or not active is skipped).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    queued: &[Task],
    jobs: &HashMap<JobId, Job>,
    workers: &WorkerPool,
    scheduler: &mut dyn Scheduler,
    estimates: &Estimates,
    cfg: &DispatchConfig,
    now: u64,
) -> Vec<Decision> {
    let window = cfg.scheduler_candidates.max(1);
    let mut decisions = Vec::new();
    // Workers given a task in this pass.
    let mut taken: HashSet<NodeId> = HashSet::new();
    // Jobs already reported as waiting in this pass.
    let mut waiting: HashSet<JobId> = HashSet::new();
    // Busy workers already promised a held task, with when they are then
    // expected to be free.
    let mut promised: HashMap<NodeId, u64> = HashMap::new();
    // Busy workers scanned by finish-time comparisons in this pass.
    let mut scanned = 0usize;
    // The longest-idle workers not given a task in this pass, at most
    // `window`, eligible for `demand`.
    let eligible = |taken: &HashSet<NodeId>, demand: &TaskDemand<'_>| -> Vec<WorkerInfo> {
        workers
            .idle()
            .filter(|w| !taken.contains(&w.info.id) && is_eligible(demand, &w.info))
            .take(window)
            .map(|w| w.info.clone())
            .collect()
    };
    // The same window for any task, kept through the pass: a worker given
    // a task leaves it and the next longest idle joins, so a pass copies
    // each worker it offers once, not once per task.
    let mut later_idle = workers.idle();
    let mut candidates: Vec<WorkerInfo> = Vec::with_capacity(window);
    for task in queued {
        let Some(job) = jobs.get(&task.id.job) else {
            continue;
        };
        if job.state != JobState::Active {
            continue;
        }
        let excluded = excluded_workers(task, job);
        let demand = TaskDemand {
            task: task.id,
            min_ib: job.spec.min_ib,
            tags: &job.spec.tags,
            excluded: &excluded,
            format: Some(job.spec.scene.format),
        };
        if !workers.values().any(|w| is_eligible(&demand, &w.info)) {
            if waiting.insert(job.id) {
                decisions.push(Decision::Waiting {
                    job: job.id,
                    reason: waiting_reason(task, job, &demand, workers),
                });
            }
            continue;
        }
        if taken.len() >= workers.idle_count() {
            break;
        }
        candidates.retain(|w| !taken.contains(&w.id));
        while candidates.len() < window {
            match later_idle.next() {
                Some(w) if !taken.contains(&w.info.id) => candidates.push(w.info.clone()),
                Some(_) => {}
                None => break,
            }
        }
        let mut choice = scheduler.choose(&demand, &candidates);
        if choice.is_none() && workers.idle_count() - taken.len() > candidates.len() {
            // None of the longest-idle workers may take it; others may.
            choice = scheduler.choose(&demand, &eligible(&taken, &demand));
        }
        let Some(worker) = choice else {
            continue;
        };
        // The scheduler is pluggable: what it answers is checked.
        let Some(info) = workers
            .get(&worker)
            .filter(|w| {
                w.task().is_none() && !taken.contains(&worker) && is_eligible(&demand, &w.info)
            })
            .map(|w| w.info.clone())
        else {
            continue;
        };
        // Each comparison scans the busy workers: a pass stops comparing
        // once it has scanned a bounded number of them, so a long queue
        // of held tasks costs a bounded pass, not queue × busy workers.
        let compare = cfg.finish_time_aware && scanned < MAX_SCANNED_PER_PASS;
        if compare {
            scanned += workers.busy_count();
            if let Some((faster, free_at)) = estimates.sooner_busy_worker(
                workers,
                &demand,
                task.frames.len(),
                &info,
                &promised,
                now,
                cfg.tick_ms,
            ) {
                promised.insert(faster, free_at);
                continue;
            }
        }
        taken.insert(worker);
        decisions.push(Decision::Lease {
            task: task.id,
            worker,
        });
    }
    decisions
}

fn waiting_reason(task: &Task, job: &Job, demand: &TaskDemand<'_>, workers: &WorkerPool) -> String {
    if workers.is_empty() {
        return "no worker connected".to_string();
    }
    let capable = TaskDemand {
        excluded: &[],
        ..demand.clone()
    };
    let excluded = workers
        .values()
        .filter(|w| is_eligible(&capable, &w.info))
        .count();
    if excluded > 0 {
        return format!(
            "every connected worker that meets the job's requirements ({excluded}) failed or \
             lost task {} before, or is blocklisted for the job; it waits for another worker",
            task.id
        );
    }
    let format = job.spec.scene.format;
    if !workers.values().any(|w| w.info.formats.contains(&format)) {
        return format!("no connected worker renders {format} scenes");
    }
    format!(
        "no connected worker meets the job's requirements (minimum IB {}, tags {:?}); best IB is {:.2}",
        job.spec.min_ib,
        job.spec.tags,
        workers.values().map(|w| w.info.ib).fold(0.0, f64::max)
    )
}
