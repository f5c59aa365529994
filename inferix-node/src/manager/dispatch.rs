//! Leasing: queued tasks to idle workers, held tasks, straggler moves.

use inferix_core::store::Change;
use inferix_manager::dispatch::{Decision, DispatchConfig};

use super::*;

/// Tasks of one pass left out of its lease write, one write each, before
/// the pass is given up and the queue read again.
const MAX_LEASES_LEFT_OUT: usize = 2;

/// Queue reads given up per dispatch because other managers leased from
/// the same queue head.
const MAX_CONTENDED_READS: usize = 2;

impl State {
    /// Offers queued tasks to idle workers and rendered results to verifiers.
    pub(super) async fn dispatch(&mut self) {
        self.dispatch_renders().await;
        self.dispatch_verifications().await;
    }

    pub(super) async fn dispatch_renders(&mut self) {
        if self.storage_paused().await {
            return;
        }
        // Each pass leases from one read of the queue head; a full read
        // that leased something may hide more work behind it, and a pass
        // given up because other managers leased from the same head reads
        // it again.
        let mut contended = 0;
        loop {
            let idle = self.workers.idle_count();
            if idle == 0 && !self.workers.is_empty() {
                return;
            }
            let limit = (idle * 2).clamp(16, 1024);
            let queued = match self.store.tasks_in_status(TaskStatus::Queued, limit).await {
                Ok(q) => q,
                Err(e) => {
                    warn!(error = %e, "cannot read the queue; not dispatching");
                    return;
                }
            };
            let full = queued.len() == limit;
            let drained = queued.is_empty();
            let Some(leased) = self.dispatch_batch(queued).await else {
                contended += 1;
                if contended <= MAX_CONTENDED_READS {
                    continue;
                }
                return;
            };
            if full && leased > 0 {
                continue;
            }
            // Moves are for the tail: nothing queued, workers left idle.
            if drained && self.cfg.finish_time_aware && self.workers.idle_count() > 0 {
                self.move_stragglers().await;
            }
            return;
        }
    }

    /// With workers idle and nothing queued for them, a task running on a
    /// much slower worker is moved to an idle faster one when that one is
    /// expected to finish it sooner from scratch: at the end of a job the
    /// slowest machines otherwise set its completion time. Only the job's
    /// measured work per frame is used, and only clear gains count.
    pub(super) async fn move_stragglers(&mut self) {
        /// Idle workers considered per dispatch.
        const MAX_MOVES: usize = 16;
        let now = self.now();
        let busy_count = self.workers.busy_count();
        if busy_count == 0 || busy_count > MAX_BUSY_COMPARED {
            return;
        }
        // A move must win back more than a tick; frames that render in
        // less than that at IB 1 cannot pay for one.
        let longest_frame = self.estimates.longest_frame();
        if longest_frame < self.cfg.tick.as_millis() as f64 {
            return;
        }
        let mut idle: Vec<WorkerInfo> = self
            .workers
            .idle()
            .map(|w| w.info.clone())
            .take(MAX_MOVES * 4)
            .collect();
        // Fastest first: they gain the most.
        idle.sort_by(|a, b| b.ib.total_cmp(&a.ib));
        idle.truncate(MAX_MOVES);
        for fast in idle {
            let tick = self.cfg.tick.as_millis() as u64;
            let Some((slow, task_id)) =
                self.estimates
                    .straggler_for(&self.workers, &fast, now, tick)
            else {
                continue;
            };
            let Ok(Some(task)) = self.store.task(task_id).await else {
                continue;
            };
            let Some(job) = self.job(task_id.job).await else {
                continue;
            };
            let excluded = excluded_workers(&task, &job);
            let demand = TaskDemand {
                task: task_id,
                min_ib: job.spec.min_ib,
                tags: &job.spec.tags,
                excluded: &excluded,
                format: Some(job.spec.scene.format),
            };
            // A move charges nobody (see `Fault::Manager`).
            if job.state != JobState::Active || !is_eligible(&demand, &fast) {
                continue;
            }
            info!(task = ?task_id, ?slow, fast = ?fast.id, "task moved to a faster idle worker");
            self.revoke(slow, task_id).await;
            self.requeue(
                task_id,
                slow,
                Fault::Manager,
                "moved to a faster idle worker",
            )
            .await;
            match self.store.task(task_id).await {
                Ok(Some(t)) if t.status == TaskStatus::Queued => {
                    self.lease_to(t, &job, fast.id).await;
                }
                _ => {}
            }
        }
    }

    /// Leases what it can of `queued` (in queue order): the engine decides,
    /// and the pass's leases are written in one store batch. Returns how
    /// many were leased, or `None` when the queue changed under the pass
    /// (see [`Self::lease_all`]).
    pub(super) async fn dispatch_batch(&mut self, queued: Vec<Task>) -> Option<usize> {
        // Queued tasks come grouped by job: each job is read once.
        let mut jobs: HashMap<JobId, Job> = HashMap::new();
        for t in &queued {
            if !jobs.contains_key(&t.id.job) {
                if let Some(j) = self.job(t.id.job).await {
                    jobs.insert(j.id, j);
                }
            }
        }
        let cfg = DispatchConfig {
            scheduler_candidates: self.cfg.scheduler_candidates,
            finish_time_aware: self.cfg.finish_time_aware,
            tick_ms: self.cfg.tick.as_millis() as u64,
        };
        let now = self.now();
        let decisions = inferix_manager::dispatch::plan(
            &queued,
            &jobs,
            &self.workers,
            &mut *self.scheduler,
            &self.estimates,
            &cfg,
            now,
        );
        let mut by_id: HashMap<TaskId, Task> = queued.into_iter().map(|t| (t.id, t)).collect();
        let mut leases = Vec::new();
        for d in decisions {
            match d {
                Decision::Waiting { job, reason } => {
                    if let Some(j) = self.job(job).await {
                        self.mark_waiting(j, reason).await;
                    }
                }
                Decision::Lease { task, worker } => {
                    if let Some(t) = by_id.remove(&task) {
                        leases.push((t, worker));
                    }
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        self.lease_all(leases, &jobs).await
    }

    /// Writes the leases of one pass in one batch, then offers them. A
    /// task that someone changed since the queue was read (another manager
    /// leased it) is left out and the rest written again; when that keeps
    /// happening, several managers are leasing from the same queue head,
    /// and the pass is given up (`None`) so that the queue is read again,
    /// instead of trying each lease alone.
    async fn lease_all(
        &mut self,
        leases: Vec<(Task, NodeId)>,
        jobs: &HashMap<JobId, Job>,
    ) -> Option<usize> {
        let now = self.now();
        let deadline_ms = now + self.cfg.lease.as_millis() as u64;
        let mut batch = Vec::with_capacity(leases.len());
        for (mut task, worker) in leases {
            let lease = Lease {
                worker,
                manager: self.id,
                deadline_ms,
                scene: None,
            };
            if task.lease(lease, now).is_ok() {
                task.operator = self.operator_of(worker);
                batch.push(Change::Task(Box::new(task)));
            }
        }
        let mut left_out = 0;
        let written: Vec<Task> = loop {
            if batch.is_empty() {
                return Some(0);
            }
            match self.store.apply(&mut batch).await {
                Ok(()) => {
                    break batch
                        .into_iter()
                        .filter_map(|c| match c {
                            Change::Task(t) => Some(*t),
                            _ => None,
                        })
                        .collect();
                }
                Err(StoreError::Conflict { task, .. }) if left_out < MAX_LEASES_LEFT_OUT => {
                    let i = batch
                        .iter()
                        .position(|c| matches!(c, Change::Task(t) if t.id == task))?;
                    debug!(?task, "task changed since the queue was read; not leased");
                    batch.remove(i);
                    left_out += 1;
                }
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                    return None;
                }
                Err(e) => {
                    warn!(error = %e, "cannot write leases");
                    return Some(0);
                }
            }
        };
        let mut leased = 0;
        for task in written {
            // The worker each task was leased to in this pass.
            let (Some(job), Some(worker)) = (
                jobs.get(&task.id.job),
                task.lease.as_ref().map(|l| l.worker),
            ) else {
                continue;
            };
            if self.offer_lease(task, job, worker).await {
                leased += 1;
            }
        }
        Some(leased)
    }

    /// Records that `job` waits, and why; its watchers hear of each new
    /// reason once.
    pub(super) async fn mark_waiting(&mut self, mut job: Job, reason: String) {
        if self.waiting.insert(job.id) || job.waiting_reason.as_deref() != Some(&reason) {
            job.waiting_reason = Some(reason.clone());
            let id = job.id;
            self.save_job(job).await;
            self.emit(id, JobEvent::Waiting { reason }).await;
        }
    }

    /// Leases one task (a straggler moved to a faster worker).
    pub(super) async fn lease_to(&mut self, mut task: Task, job: &Job, worker: NodeId) -> bool {
        let now = self.now();
        if self.workers.get(&worker).is_none_or(|w| w.task().is_some()) {
            return false;
        }
        let deadline_ms = now + self.cfg.lease.as_millis() as u64;
        if task
            .lease(
                Lease {
                    worker,
                    manager: self.id,
                    deadline_ms,
                    scene: None,
                },
                now,
            )
            .is_err()
        {
            return false;
        }
        task.operator = self.operator_of(worker);
        match self.store.update_task(&mut task).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return false,
            Err(e) => {
                warn!(task = ?task.id, error = %e, "cannot lease");
                return false;
            }
        }
        self.offer_lease(task, job, worker).await
    }

    /// After a lease is written: the worker is busy with it, and gets its
    /// offer (once the lease's watermarked copy is ready, with Proof of
    /// Render); a job that waited for a worker no longer does.
    async fn offer_lease(&mut self, task: Task, job: &Job, worker: NodeId) -> bool {
        let now = self.now();
        if !self.workers.assign(worker, task.id, task.frames.len(), now) {
            return false;
        }
        self.batch.leased(&task);
        self.metrics.dispatches.inc();
        let queued = task
            .history
            .iter()
            .rev()
            .find(|c| c.status == TaskStatus::Queued)
            .map_or(now, |c| c.at_ms);
        self.metrics
            .ready_to_start
            .observe(now.saturating_sub(queued) as f64 / 1000.0);

        if self.waiting.remove(&job.id) {
            if let Some(mut j) = self.job(job.id).await {
                j.waiting_reason = None;
                self.save_job(j).await;
            }
        }
        if let Some(marker) = self.watermarker_for(job) {
            // The offer waits for the lease's watermarked copy; the worker
            // stays reserved meanwhile.
            self.spawn_preparation(marker, &task, job, worker);
            return true;
        }
        self.offer(&task, job, worker, job.spec.scene.clone()).await;
        true
    }
}
