//! Modelled workers: offers, renders, results, lost leases, crashes and
//! hellos under the stake rule.

use super::*;

impl Sim {
    pub(super) fn offer(&mut self, w: u32, task: TaskId, attempt: u32, gen: u32, frames: u32) {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.gen != gen || ws.job != Some((task, attempt)) {
            return;
        }
        let Some(m) = ws.manager else { return };
        let epoch = self.managers[m].epoch;
        let Some(job) = self.jobs.get(&task.job) else {
            return;
        };
        if ws.griefer {
            self.at(
                2_000,
                Ev::HandBack {
                    w,
                    task,
                    attempt,
                    gen,
                },
            );
            return;
        }
        let mut ms = frames as f64 * job.work_per_frame_s / ws.ib * 1000.0;
        if ws.cheater {
            ms *= 0.1;
        }
        let ms = ms as u64;
        self.c.busy_ms += ms;
        if self.rng.gen_bool(self.cfg.worker_crash) {
            let at = self.rng.gen_range(0..ms.max(1));
            self.at(at, Ev::WorkerCrash { w });
        }
        self.at(
            ms,
            Ev::RenderDone {
                w,
                task,
                attempt,
                gen,
                m,
                epoch,
            },
        );
    }

    pub(super) fn render_done(
        &mut self,
        w: u32,
        task: TaskId,
        attempt: u32,
        gen: u32,
        m: usize,
        epoch: u32,
    ) {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.gen != gen || ws.job != Some((task, attempt)) {
            return;
        }
        let fake = ws.cheater;
        if let Some(d) = self.message_delay() {
            self.at(
                d,
                Ev::Result {
                    w,
                    task,
                    attempt,
                    m,
                    epoch,
                    fake,
                },
            );
        }
    }

    /// The worker no longer holds `task`: its manager sees it idle again.
    pub(super) fn release(&mut self, w: u32, task: TaskId, attempt: u32) {
        if self.workers[w as usize].job != Some((task, attempt)) {
            return;
        }
        self.workers[w as usize].job = None;
        if let Some(m) = self.workers[w as usize].manager {
            let now = self.abs_ms();
            self.managers[m].pool.release(node_of_worker(w), task, now);
        }
    }

    pub(super) async fn result(
        &mut self,
        w: u32,
        tid: TaskId,
        attempt: u32,
        m: usize,
        epoch: u32,
        fake: bool,
    ) -> Result<(), BenchError> {
        if !self.managers[m].alive || self.managers[m].epoch != epoch {
            self.c.stale_results += 1;
            return Ok(());
        }
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        let worker = node_of_worker(w);
        let result = TaskResult {
            worker,
            frames: task
                .frames
                .iter()
                .map(|&f| FrameOutput {
                    frame: f,
                    pixel_hash: ContentHash::of(&[f.to_le_bytes(), [fake as u8; 4]].concat()),
                    blob: ContentHash::of(&f.to_be_bytes()),
                    width: 16,
                    height: 8,
                    tile_root: ContentHash::of(b"tiles"),
                })
                .collect(),
            render_ms: 1,
            attempt,
            scene: ContentHash::of(b"simulated scene"),
            device_class: "sim".into(),
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        // The manager's own rule: a result must answer the current lease.
        let holds = task.status == TaskStatus::Leased
            && task.lease.as_ref().is_some_and(|l| l.worker == worker)
            && inferix_manager::results::check_result(&task, &result, Some(result.scene)).is_ok();
        if !holds {
            self.c.stale_results += 1;
            self.release(w, tid, attempt);
            return Ok(());
        }
        let now = self.abs_ms();
        task.complete(result, now).map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        let work_ibm = self.jobs.get(&tid.job).map_or(0.0, |j| {
            j.work_per_frame_s * task.frames.len() as f64 / 60.0
        });
        let ms = &mut self.managers[m];
        if let Some(slot) = ms.pool.get(&worker) {
            ms.estimates.finished(slot, tid.job, now);
            // The manager's own rule: the announced index is capped by the
            // speed measured over the task.
            let elapsed = now.saturating_sub(slot.busy_since);
            ms.pool.observe_speed(worker, work_ibm, elapsed);
        }
        self.release(w, tid, attempt);
        self.start_round(m, task, w, fake).await
    }

    /// Writes `task` as `Verifying` and opens its round on `m`'s engine.
    pub(super) async fn start_round(
        &mut self,
        m: usize,
        mut task: Task,
        w: u32,
        fake: bool,
    ) -> Result<(), BenchError> {
        let now = self.abs_ms();
        if task
            .transition(TaskStatus::Verifying, now, "sent to verifiers")
            .is_err()
        {
            return Ok(());
        }
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.rounds.insert(
            task.id,
            SimRound {
                manager: m,
                attempt: task.attempts,
                worker: w,
                fake,
                detectable: fake && self.rng.gen_bool(self.cfg.detect),
            },
        );
        // Each modelled worker is an account of its own.
        let ws = &self.workers[w as usize];
        let standing = inferix_core::account::NodeStanding {
            accepted_tasks: ws.accepted,
            worker_reputation: ws.reputation,
            ..Default::default()
        };
        let quorum = inferix_manager::operators::round_quorum(self.cfg.quorum, Some(&standing));
        let ev = Event::RoundOpened {
            task: task.id,
            worker: node_of_worker(w),
            operator: None,
            needs: None,
            quorum: Some(quorum),
        };
        self.engine_event(m, ev).await
    }

    pub(super) async fn requeue_lease(
        &mut self,
        tid: TaskId,
        attempt: u32,
        only_if_expired: bool,
        why: &str,
    ) -> Result<(), BenchError> {
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        let now = self.abs_ms();
        if task.status != TaskStatus::Leased || task.attempts != attempt {
            return Ok(());
        }
        if only_if_expired {
            if !task.lease_expired(now) {
                return Ok(());
            }
            self.c.expired += 1;
        }
        let Some((worker, manager)) = task.lease.as_ref().map(|l| (l.worker, l.manager)) else {
            return Ok(());
        };
        let to = task
            .requeue(now, Fault::Worker(worker), self.cfg.max_attempts, why)
            .map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.release(worker_of_node(worker), tid, attempt);
        if let Some(m) = self.managers.iter().position(|ms| ms.id == manager) {
            self.count_failure(m, tid.job, worker);
        }
        self.after_requeue(tid, to).await
    }

    /// The worker dies; its manager notices after the heartbeat timeout
    /// and, until then, may still lease it a task.
    pub(super) fn worker_crash(&mut self, w: u32) {
        if !self.workers[w as usize].alive {
            return;
        }
        self.c.worker_crashes += 1;
        let ws = &mut self.workers[w as usize];
        ws.alive = false;
        ws.gen += 1;
        if let Some(m) = ws.manager {
            let epoch = self.managers[m].epoch;
            self.at(30_000, Ev::WorkerGone { w, m, epoch });
        }
        if self.now < self.cfg.day_s * 1000 {
            let back = self.rng.gen_range(600_000..7_200_000);
            self.at(back, Ev::WorkerJoin { w });
        }
    }

    pub(super) async fn worker_gone(
        &mut self,
        w: u32,
        m: usize,
        epoch: u32,
    ) -> Result<(), BenchError> {
        if self.managers[m].epoch != epoch || self.workers[w as usize].manager != Some(m) {
            return Ok(());
        }
        self.managers[m].pool.leave(node_of_worker(w));
        self.workers[w as usize].manager = None;
        if let Some((tid, attempt)) = self.workers[w as usize].job.take() {
            self.requeue_lease(tid, attempt, false, "worker vanished")
                .await?;
        }
        Ok(())
    }

    /// A griefer hands its task back unrendered.
    pub(super) async fn hand_back(
        &mut self,
        w: u32,
        task: TaskId,
        attempt: u32,
        gen: u32,
    ) -> Result<(), BenchError> {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.gen != gen || ws.job != Some((task, attempt)) {
            return Ok(());
        }
        self.c.hand_backs += 1;
        self.requeue_lease(task, attempt, false, "handed back")
            .await
    }

    /// The manager's rule for a lease lost through `worker`: its
    /// reputation drops, and at the limit it is blocklisted for the job.
    pub(super) fn count_failure(&mut self, m: usize, job: JobId, worker: NodeId) {
        let ms = &mut self.managers[m];
        if let Some(slot) = ms.pool.get_mut(&worker) {
            slot.info.reputation *= FAILURE_REPUTATION_FACTOR;
        }
        if !ms.failures.count(job, worker, FAILURES_BEFORE_BLOCKLIST) {
            return;
        }
        if let Some(j) = self.job_records.get_mut(&job) {
            if !j.blocklist.contains(&worker) {
                j.blocklist.push(worker);
                self.c.blocklisted += 1;
            }
        }
    }

    /// As the manager node does after a slash: the worker is disconnected
    /// (a task it holds goes back to the queue), and its hello, which it
    /// tries again a minute later, meets the stake rule without stake.
    pub(super) async fn disconnect_slashed(&mut self, w: u32) -> Result<(), BenchError> {
        let Some(m) = self.workers[w as usize].manager.take() else {
            return Ok(());
        };
        self.managers[m].pool.leave(node_of_worker(w));
        self.workers[w as usize].gen += 1;
        if let Some((tid, attempt)) = self.workers[w as usize].job.take() {
            self.requeue_lease(tid, attempt, false, "worker slashed")
                .await?;
        }
        self.c.slashed_disconnects += 1;
        if self.workers[w as usize].sybil {
            self.c.sybils_slashed += 1;
        }
        if self.now < self.cfg.day_s * 1000 {
            self.at(60_000, Ev::WorkerJoin { w });
        }
        Ok(())
    }

    /// A worker says hello to a manager, which applies the stake rule.
    pub(super) async fn worker_join(&mut self, w: u32) -> Result<(), BenchError> {
        let ws = &mut self.workers[w as usize];
        ws.alive = true;
        if ws.manager.is_some() {
            return Ok(());
        }
        let Some(m) = self.random_alive_manager() else {
            self.at(30_000, Ev::WorkerJoin { w });
            return Ok(());
        };
        let node = node_of_worker(w);
        // What it announces: the manager knows no other speed yet.
        let ib = self.workers[w as usize].declared_ib;
        let have = self
            .store
            .balance(&Account::Stake(node))
            .await
            .map_err(store_err)?;
        let granted = self
            .store
            .transaction(&economy::stake_grant_id(node))
            .await
            .map_err(store_err)?
            .is_some();
        let now = self.abs_ms();
        match economy::stake_decision(&self.economy, node, ib, have, granted, now) {
            StakeDecision::Enough => {}
            StakeDecision::Grant(tx) => self.append(&tx).await?,
            StakeDecision::Refuse(_) => {
                self.c.refused_joins += 1;
                return Ok(());
            }
        }
        self.next_conn += 1;
        let info = WorkerInfo {
            id: node,
            ib,
            reputation: self.workers[w as usize].reputation,
            tags: Vec::new(),
            formats: vec![inferix_core::renderer::SceneFormat::Gltf],
        };
        self.managers[m].pool.join(self.next_conn, info, now);
        self.workers[w as usize].manager = Some(m);
        if self.workers[w as usize].sybil && !self.workers[w as usize].admitted {
            self.workers[w as usize].admitted = true;
            self.c.sybils_admitted += 1;
        }
        Ok(())
    }
}
