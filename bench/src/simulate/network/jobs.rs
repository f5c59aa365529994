//! Jobs: arrivals, escrow, and completion with its refund.

use super::*;

impl Sim {
    pub(super) async fn job_arrival(&mut self) -> Result<(), BenchError> {
        let mean_gap = self.cfg.day_s as f64 * 1000.0 / self.cfg.jobs as f64;
        let gap = (-(1.0 - self.rng.gen::<f64>()).ln() * mean_gap) as u64;
        if self.now + gap < self.cfg.day_s * 1000 {
            self.at(gap, Ev::JobArrival);
        }
        if self.random_alive_manager().is_none() {
            self.at(60_000, Ev::JobArrival);
            return Ok(());
        }
        let id = JobId::from_rng(&mut self.rng);
        let frames = self.rng.gen_range(self.cfg.frames.0..=self.cfg.frames.1);
        let mut spec = JobSpec::new(
            SceneRef {
                blob: ContentHash::of(b"simulated scene"),
                format: SceneFormat::Gltf,
                file_name: "scene.glb".into(),
            },
            FrameRange::new(1, frames),
        );
        spec.min_ib = if self.rng.gen_bool(0.1) { 1.5 } else { 0.0 };
        let now = self.abs_ms();
        let tasks: Vec<Task> = spec
            .split(id)
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .into_iter()
            .map(|t| Task::new(t.id, t.frames, now))
            .collect();
        let price = tasks.len() as i64 * PRICE_PER_TASK;
        let job = Job {
            id,
            spec,
            state: JobState::Active,
            created_ms: now,
            quoted_price: price as u64,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: Vec::new(),
            warnings: Vec::new(),
            lease_copies_removed: false,
            owner: None,
            outputs: Vec::new(),
        };
        self.store
            .insert_job(&job, &tasks)
            .await
            .map_err(store_err)?;
        self.append(&Transaction::transfer(
            format!("escrow:{id}"),
            now,
            "escrow at submission",
            Account::User("client".into()),
            Account::Job(id),
            price,
        ))
        .await?;
        self.c.jobs += 1;
        self.c.tasks += tasks.len() as u64;
        let work_per_frame_s = self
            .rng
            .gen_range(self.cfg.frame_work_s.0..self.cfg.frame_work_s.1);
        self.jobs.insert(
            id,
            JobInfo {
                work_per_frame_s,
                remaining: tasks.len(),
                failed: 0,
            },
        );
        self.job_records.insert(id, job);
        self.ready.extend(tasks.iter().map(|t| t.id));
        Ok(())
    }

    pub(super) async fn after_requeue(
        &mut self,
        tid: TaskId,
        to: TaskStatus,
    ) -> Result<(), BenchError> {
        if to == TaskStatus::Queued {
            self.ready.push_back(tid);
        } else {
            self.c.failed += 1;
            if let Some(j) = self.jobs.get_mut(&tid.job) {
                j.failed += 1;
            }
            self.task_done(tid.job).await?;
        }
        Ok(())
    }

    /// One more of the job's tasks is final; the last one completes (or
    /// fails) the job and refunds what is left of its escrow.
    pub(super) async fn task_done(&mut self, job_id: JobId) -> Result<(), BenchError> {
        let Some(j) = self.jobs.get_mut(&job_id) else {
            return Ok(());
        };
        j.remaining -= 1;
        if j.remaining > 0 {
            return Ok(());
        }
        let failed = j.failed;
        let now = self.abs_ms();
        for ms in &mut self.managers {
            ms.failures.forget_job(job_id);
        }
        if let Some(job) = self.job_records.get_mut(&job_id) {
            let state = if failed > 0 {
                JobState::Failed
            } else {
                JobState::Completed
            };
            job.set_state(state, now, "all tasks finished");
            self.store.update_job(job).await.map_err(store_err)?;
        }
        let left = self
            .store
            .balance(&Account::Job(job_id))
            .await
            .map_err(store_err)?;
        let payer = Account::User("client".into());
        if let Some(tx) = economy::escrow_refund(job_id, left, payer, "unspent escrow", now) {
            self.append(&tx).await?;
        }
        if failed == 0 && self.cfg.claim_abusers > 0.0 {
            // Its owner looks at the frames a few minutes later.
            self.at(300_000, Ev::Review { job: job_id });
        }
        self.c.end_ms = self.now;
        Ok(())
    }

    pub(in crate::simulate) fn all_jobs_done(&self) -> bool {
        self.jobs.values().all(|j| j.remaining == 0)
    }
}
