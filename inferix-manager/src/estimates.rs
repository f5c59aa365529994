//! Finish-time estimates: how long a job's frames take, and when a busy
//! worker will be free.
//!
//! The estimates are measured by the manager over the frames it leased
//! (never taken from what an unchecked result says), in milliseconds of
//! work at IB 1.0 per frame. They let dispatch hold a queued task back for
//! a faster busy worker that will finish it sooner, and move a running
//! task from a much slower worker to an idle faster one at a job's end.

use std::collections::HashMap;

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::scheduler::{is_eligible, TaskDemand, WorkerInfo};

use crate::workers::{WorkerPool, WorkerSlot};

/// Beyond this many busy workers, finish-time comparisons (held tasks,
/// straggler moves) are skipped: they cost a pass over the busy workers,
/// and a network that large has the capacity to absorb a slow tail.
pub const MAX_BUSY_COMPARED: usize = 4096;

/// Running mean of a job's measured work per frame (ms at IB 1.0).
#[derive(Debug, Default, Clone)]
pub struct WorkEstimate {
    sum: f64,
    samples: u32,
}

impl WorkEstimate {
    /// Adds one measurement; non-finite or negative ones are ignored.
    pub fn observe(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            self.sum += ms;
            self.samples += 1;
        }
    }

    /// The mean, once measured.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum / self.samples as f64)
    }
}

/// When busy worker `w` is expected to finish its task, from its job's
/// work per frame (ms at IB 1.0).
pub fn expected_end(w: &WorkerSlot, per_frame: f64) -> f64 {
    w.busy_since as f64 + per_frame * w.busy_frames as f64 / w.info.ib.max(1e-6)
}

/// Work per frame of every job the manager has timed.
#[derive(Debug, Default)]
pub struct Estimates {
    per_job: HashMap<JobId, WorkEstimate>,
}

impl Estimates {
    /// Times the task `w` just finished for `job` (the worker is still
    /// marked busy with it).
    pub fn finished(&mut self, w: &WorkerSlot, job: JobId, now: u64) {
        let elapsed = now.saturating_sub(w.busy_since) as f64;
        let frames = w.busy_frames.max(1) as f64;
        self.per_job
            .entry(job)
            .or_default()
            .observe(elapsed * w.info.ib / frames);
    }

    /// A job's measured work per frame.
    pub fn per_frame(&self, job: JobId) -> Option<f64> {
        self.per_job.get(&job)?.mean()
    }

    /// The largest work per frame of any job (0 when none is measured).
    pub fn longest_frame(&self) -> f64 {
        self.per_job
            .values()
            .filter_map(WorkEstimate::mean)
            .fold(0.0, f64::max)
    }

    /// A busy worker faster than `chosen` that is expected to finish the
    /// demanded task (`frames` frames) clearly sooner than `chosen` would
    /// from now, with when; `promised` holds when workers already promised
    /// a held task will be free. `tick_ms` is the smallest gain that
    /// counts.
    #[allow(clippy::too_many_arguments)]
    pub fn sooner_busy_worker(
        &self,
        workers: &WorkerPool,
        demand: &TaskDemand<'_>,
        frames: usize,
        chosen: &WorkerInfo,
        promised: &HashMap<NodeId, u64>,
        now: u64,
        tick_ms: u64,
    ) -> Option<(NodeId, u64)> {
        let per_frame = self.per_frame(demand.task.job)?;
        let work = per_frame * frames as f64;
        let mine = work / chosen.ib.max(1e-6);
        // A gain smaller than this is within the estimate's noise.
        let margin = mine * 0.1 + tick_ms as f64;
        if mine <= margin {
            return None;
        }
        let chosen_end = now as f64 + mine;
        if workers.busy_count() > MAX_BUSY_COMPARED {
            return None;
        }
        let mut best: Option<(NodeId, f64)> = None;
        for (w, task) in workers.busy_faster_than(chosen.ib) {
            // Fastest first: once even a worker free now would not finish
            // clearly sooner, or sooner than the best found, no slower one
            // will.
            let soonest = now as f64 + work / w.info.ib;
            if soonest + margin >= chosen_end || best.is_some_and(|(_, b)| soonest >= b) {
                break;
            }
            if !is_eligible(demand, &w.info) {
                continue;
            }
            let free_at = match promised.get(&w.info.id) {
                Some(&t) => t as f64,
                None => {
                    let Some(own) = self.per_frame(task.job) else {
                        continue;
                    };
                    let expected = expected_end(w, own);
                    // Overdue past twice its estimate: no prediction.
                    if (now as f64) > w.busy_since as f64 + 2.0 * (expected - w.busy_since as f64) {
                        continue;
                    }
                    expected.max(now as f64)
                }
            };
            let end = free_at + work / w.info.ib;
            if end + margin < chosen_end && best.is_none_or(|(_, b)| end < b) {
                best = Some((w.info.id, end));
            }
        }
        best.map(|(id, end)| (id, end as u64))
    }

    /// The running task that idle worker `fast` would finish clearly
    /// sooner from scratch than its slower worker will, with that worker:
    /// the one with the largest gain.
    pub fn straggler_for(
        &self,
        workers: &WorkerPool,
        fast: &WorkerInfo,
        now: u64,
        tick_ms: u64,
    ) -> Option<(NodeId, TaskId)> {
        let mut best: Option<(NodeId, TaskId, f64)> = None;
        for (w, task) in workers.busy() {
            if w.info.ib >= fast.ib {
                continue;
            }
            let Some(per_frame) = self.per_frame(task.job) else {
                continue;
            };
            let work = per_frame * w.busy_frames as f64;
            let expected_end = expected_end(w, per_frame);
            let moved_end = now as f64 + work / fast.ib.max(1e-6);
            let margin = 0.1 * (work / fast.ib.max(1e-6)) + tick_ms as f64;
            let gain = expected_end - moved_end - margin;
            if gain > 0.0 && best.is_none_or(|(_, _, g)| gain > g) {
                best = Some((w.info.id, task, gain));
            }
        }
        best.map(|(w, t, _)| (w, t))
    }
}
