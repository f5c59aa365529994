//! Leasing: queued tasks to idle workers, held tasks, straggler moves.

use super::*;

impl State {
    /// Offers queued tasks to idle workers and rendered results to verifiers.
    pub(super) async fn dispatch(&mut self) {
        self.dispatch_renders().await;
        self.dispatch_verifications().await;
    }

    pub(super) async fn dispatch_renders(&mut self) {
        // Each pass leases from one read of the queue head; a full read
        // that leased something may hide more work behind it.
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
            let leased = self.dispatch_batch(queued).await;
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
            };
            // One attempt is kept in reserve so a move never fails a task.
            if job.state != JobState::Active
                || !is_eligible(&demand, &fast)
                || task.attempts + 1 >= self.cfg.max_attempts
            {
                continue;
            }
            info!(task = ?task_id, ?slow, fast = ?fast.id, "task moved to a faster idle worker");
            self.revoke(slow, task_id).await;
            self.requeue(task_id, slow, false, "moved to a faster idle worker")
                .await;
            match self.store.task(task_id).await {
                Ok(Some(t)) if t.status == TaskStatus::Queued => {
                    self.lease_to(t, &job, fast.id).await;
                }
                _ => {}
            }
        }
    }

    /// Leases what it can of `queued` (in queue order); returns how many.
    pub(super) async fn dispatch_batch(&mut self, queued: Vec<Task>) -> usize {
        let window = self.cfg.scheduler_candidates.max(1);
        let mut candidates: Vec<WorkerInfo> = Vec::new();
        // Busy workers already promised a held task, with when they are
        // then expected to be free.
        let mut promised: HashMap<NodeId, u64> = HashMap::new();
        let mut leased = 0;
        // Queued tasks come grouped by job: look each job up once.
        let mut current: Option<Job> = None;
        for task in queued {
            if current.as_ref().map(|j| j.id) != Some(task.id.job) {
                current = self.job(task.id.job).await;
            }
            let Some(job) = current.as_ref() else {
                continue;
            };
            if job.state != JobState::Active {
                continue;
            }
            let excluded = excluded_workers(&task, job);
            let demand = TaskDemand {
                task: task.id,
                min_ib: job.spec.min_ib,
                tags: &job.spec.tags,
                excluded: &excluded,
            };
            if !self.workers.values().any(|w| is_eligible(&demand, &w.info)) {
                let reason = if self.workers.is_empty() {
                    "no worker connected".to_string()
                } else {
                    format!(
                        "no connected worker meets the job's requirements (minimum IB {}, tags {:?}); best IB is {:.2}",
                        job.spec.min_ib,
                        job.spec.tags,
                        self.workers.values().map(|w| w.info.ib).fold(0.0, f64::max)
                    )
                };
                let job = job.clone();
                self.mark_waiting(job, reason).await;
                // The job's record changed (its waiting reason).
                current = None;
                continue;
            }
            if self.workers.idle_count() == 0 {
                break;
            }
            if candidates.is_empty() {
                candidates = self
                    .workers
                    .idle()
                    .take(window)
                    .map(|w| w.info.clone())
                    .collect();
            }
            let mut choice = self.scheduler.choose(&demand, &candidates);
            if choice.is_none() && self.workers.idle_count() > candidates.len() {
                // None of the longest-idle workers may take it; others may.
                let wider: Vec<WorkerInfo> = self
                    .workers
                    .idle()
                    .filter(|w| is_eligible(&demand, &w.info))
                    .take(window)
                    .map(|w| w.info.clone())
                    .collect();
                choice = self.scheduler.choose(&demand, &wider);
            }
            let Some(worker) = choice else {
                continue;
            };
            let Some(info) = self
                .workers
                .get(&worker)
                .filter(|w| w.task().is_none() && is_eligible(&demand, &w.info))
                .map(|w| w.info.clone())
            else {
                warn!(?worker, "scheduler chose an ineligible worker; ignored");
                continue;
            };
            if self.cfg.finish_time_aware {
                if let Some((faster, free_at)) = self.estimates.sooner_busy_worker(
                    &self.workers,
                    &demand,
                    task.frames.len(),
                    &info,
                    &promised,
                    self.clock.now_ms(),
                    self.cfg.tick.as_millis() as u64,
                ) {
                    debug!(task = ?task.id, slow = ?worker, ?faster, "held for a faster worker");
                    promised.insert(faster, free_at);
                    continue;
                }
            }
            if self.lease_to(task, job, worker).await {
                leased += 1;
                candidates.retain(|w| w.id != worker);
                if self.waiting.remove(&job.id) {
                    let mut j = job.clone();
                    j.waiting_reason = None;
                    self.save_job(j).await;
                    current = None;
                }
            }
        }
        leased
    }

    /// A busy worker expected to finish a task of `frames` frames of
    /// `demand`'s job sooner than idle `chosen` would, counting the task it
    /// is on (and any task already held for it in `promised`), with when
    /// it would then be free. `None` when the job's work is not measured
    /// yet, when the difference is within the noise of the estimate, or
    /// when too many workers are busy to compare cheaply.
    pub(super) async fn mark_waiting(&mut self, mut job: Job, reason: String) {
        if self.waiting.insert(job.id) || job.waiting_reason.as_deref() != Some(&reason) {
            job.waiting_reason = Some(reason.clone());
            let id = job.id;
            self.save_job(job).await;
            self.emit(id, JobEvent::Waiting { reason }).await;
        }
    }

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
        match self.store.update_task(&mut task).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return false,
            Err(e) => {
                warn!(task = ?task.id, error = %e, "cannot lease");
                return false;
            }
        }
        if !self.workers.assign(worker, task.id, task.frames.len(), now) {
            return false;
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
