//! Task results: timing, signature check, recording, re-queueing and failure
//! counts.

use inferix_manager::results::FAILURE_REPUTATION_FACTOR;

use super::*;

impl State {
    /// Tells a connected worker to stop a task it no longer holds.
    pub(super) async fn revoke(&mut self, worker: NodeId, task: TaskId) {
        let conn = self
            .workers
            .get(&worker)
            .filter(|w| w.task() == Some(task))
            .map(|w| w.conn);
        self.batch.forget(task);
        self.release_worker(worker, task);
        if let Some(conn) = conn {
            self.send(conn, Envelope::push(Message::TaskRevoked { task }))
                .await;
        }
    }

    pub(super) fn release_worker(&mut self, worker: NodeId, task: TaskId) {
        let now = self.now();
        self.workers.release(worker, task, now);
    }

    /// Puts a task back in the queue, charging `fault` (see [`Fault`]); a
    /// task charged with `max_attempts` failed attempts fails its job.
    pub(super) async fn requeue(&mut self, task: TaskId, worker: NodeId, fault: Fault, why: &str) {
        self.batch.forget(task);
        for _ in 0..3 {
            let Ok(Some(mut t)) = self.store.task(task).await else {
                return;
            };
            let holds = t.lease.as_ref().is_some_and(|l| l.worker == worker);
            if !(t.status == TaskStatus::Leased && holds) && t.status != TaskStatus::Rejected {
                return;
            }
            let now = self.now();
            let copy = super::collect::lease_copy(&t);
            let Ok(to) = t.requeue(now, fault, self.cfg.max_attempts, why) else {
                return;
            };
            match self.store.update_task(&mut t).await {
                Ok(()) => {
                    info!(?task, ?to, why, "task re-queued");
                    self.discard_lease_copy(task.job, copy).await;
                    if to == TaskStatus::Failed {
                        self.fail_job(
                            task.job,
                            &format!(
                                "task {task} failed after {} failed attempts ({} leases): {why}",
                                t.failures, t.attempts
                            ),
                        )
                        .await;
                    } else {
                        self.emit(
                            task.job,
                            JobEvent::TaskRequeued {
                                task,
                                reason: why.to_string(),
                            },
                        )
                        .await;
                    }
                    return;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    warn!(?task, error = %e, "cannot re-queue");
                    return;
                }
            }
        }
    }

    pub(super) async fn fail_job(&mut self, job: JobId, why: &str) {
        if let Some(mut j) = self.job(job).await {
            if !j.state.is_terminal() {
                j.set_state(JobState::Failed, self.clock.now_ms(), why);
                j.waiting_reason = Some(why.to_string());
                self.save_job(j).await;
                self.emit(
                    job,
                    JobEvent::Failed {
                        reason: why.to_string(),
                    },
                )
                .await;
            }
        }
    }

    pub(super) async fn on_task_done(
        &mut self,
        conn: ConnId,
        id: u64,
        worker: NodeId,
        current: Option<TaskId>,
        result: inferix_core::task::TaskResult,
    ) {
        let Some(task_id) = current else {
            self.reply(
                conn,
                id,
                Message::error(ErrorCode::UnexpectedMessage, "no task is leased to you"),
            )
            .await;
            return;
        };
        // Timed by this manager, over the frames it leased: nothing the
        // (not yet checked) result says goes into the estimate.
        let now = self.clock.now_ms();
        let mut timed = None;
        if let Some(w) = self.workers.get(&worker) {
            self.estimates.finished(w, task_id.job, now);
            if w.task() == Some(task_id) {
                timed = Some((w.busy_frames, now.saturating_sub(w.busy_since)));
            }
        }
        // The worker's speed, measured against the work its task was
        // priced at, caps the index it announced.
        if let (Some((frames, elapsed)), Some(job)) = (timed, self.job(task_id.job).await) {
            let work = inferix_manager::speed::task_work_ibm(
                job.quoted_price,
                self.cfg.price_per_ibm,
                frames,
                job.spec.frames.len(),
            );
            if let Some(ib) = self.workers.observe_speed(worker, work, elapsed) {
                debug!(?worker, ib, "worker speed measured");
            }
        }
        self.release_worker(worker, task_id);
        if result.worker != worker {
            warn!(?worker, claimed = ?result.worker, "result names another worker");
            self.reply(
                conn,
                id,
                Message::error(ErrorCode::Unauthorized, "result names another worker"),
            )
            .await;
            return;
        }
        // The signature check is most of a result's cost; it needs no
        // state, so it runs beside the loop (see `check_signatures`) and
        // the result comes back as an input.
        self.batch.unsigned.push(group_commit::HeldResult {
            conn,
            id,
            worker,
            task: task_id,
            result,
        });
    }

    /// Checks the signatures of the results received in this batch of
    /// inputs, all in one task beside the loop: a task per result cost
    /// the loop a wake-up of another thread each.
    pub(super) fn check_signatures(&mut self) {
        if self.batch.unsigned.is_empty() {
            return;
        }
        let unsigned = std::mem::take(&mut self.batch.unsigned);
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            for r in unsigned {
                let signature =
                    inferix_transport::verify_result(r.task, &r.result).map_err(|e| e.to_string());
                let signed = Input::ResultSigned {
                    conn: r.conn,
                    id: r.id,
                    worker: r.worker,
                    task: r.task,
                    result: Box::new(r.result),
                    signature,
                };
                if inputs.send(signed).await.is_err() {
                    return;
                }
            }
        });
    }

    pub(super) async fn on_result_signed(
        &mut self,
        conn: ConnId,
        id: u64,
        worker: NodeId,
        task_id: TaskId,
        result: inferix_core::task::TaskResult,
        signature: Result<(), String>,
    ) {
        if let Err(why) = signature {
            warn!(?task_id, ?worker, %why, "result refused");
            self.requeue(
                task_id,
                worker,
                Fault::Worker(worker),
                &format!("refused result: {why}"),
            )
            .await;
            self.reply(conn, id, Message::error(ErrorCode::Unauthorized, why))
                .await;
            return;
        }
        // Recorded with the batch's other results (see `group_commit.rs`).
        self.hold_result(group_commit::HeldResult {
            conn,
            id,
            worker,
            task: task_id,
            result,
        });
    }

    /// Records one signed result from the task as the store has it now.
    pub(super) async fn record_signed_result(&mut self, r: group_commit::HeldResult) {
        let group_commit::HeldResult {
            conn,
            id,
            worker,
            task: task_id,
            result,
        } = r;
        // With the database away, the result waits here (the lease in the
        // store still names this worker) and is recorded once it is back.
        let task = match self.store.task(task_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                let why = format!("task {task_id} not found");
                self.reply(conn, id, Message::error(ErrorCode::NotFound, why))
                    .await;
                return;
            }
            Err(StoreError::Unavailable(why)) => {
                warn!(?task_id, ?worker, %why, "task database unavailable; result kept until it is back");
                let entry = journal::Entry {
                    task: task_id,
                    worker,
                    result,
                };
                // Memory alone would lose the frame if this process died
                // before the database came back.
                if let Err(e) = self.journal.write(&entry).await {
                    warn!(?task_id, error = %e, "result not journalled; kept in memory only");
                }
                self.buffered.push((task_id, worker, entry.result));
                self.reply(conn, id, Message::Ok).await;
                return;
            }
            Err(e) => {
                let (code, why) = store_err(e);
                self.reply(conn, id, Message::error(code, why)).await;
                return;
            }
        };
        match self.record_result(task, worker, result).await {
            Ok(()) => self.reply(conn, id, Message::Ok).await,
            Err((code, why)) => {
                self.reply(conn, id, Message::error(code, why)).await;
            }
        }
    }

    /// Checks a result and stores it as the task's; a refused result puts
    /// the task back in the queue without its worker.
    pub(super) async fn record_result(
        &mut self,
        mut t: Task,
        worker: NodeId,
        result: inferix_core::task::TaskResult,
    ) -> Result<(), (ErrorCode, String)> {
        let task_id = t.id;
        if let Err(why) = self.check_result(&t, &result).await {
            warn!(?task_id, ?worker, %why, "result refused");
            self.requeue(
                task_id,
                worker,
                Fault::Worker(worker),
                &format!("refused result: {why}"),
            )
            .await;
            return Err((ErrorCode::Unauthorized, why));
        }
        let now = self.now();
        let outcome = match self.complete(&mut t, result, now) {
            Ok(verifying) => self
                .store
                .update_task(&mut t)
                .await
                .map(|()| verifying)
                .map_err(|e| {
                    let code = match e {
                        StoreError::Unavailable(_) => ErrorCode::Unavailable,
                        _ => ErrorCode::UnexpectedMessage,
                    };
                    (code, e.to_string())
                }),
            Err(e) => Err((ErrorCode::UnexpectedMessage, e.to_string())),
        };
        match outcome {
            Ok(verifying) => {
                debug!(?task_id, ?worker, "result recorded");
                if verifying {
                    self.start_round(worker, t).await;
                }
                Ok(())
            }
            Err((code, e)) => {
                warn!(?task_id, ?worker, error = %e, "result refused");
                Err((code, e))
            }
        }
    }

    /// Makes `result` the task's, sending it to verifiers in the same
    /// write when there are any (saving the store a write per task).
    /// Returns whether it goes to verifiers.
    pub(super) fn complete(
        &self,
        t: &mut Task,
        result: inferix_core::task::TaskResult,
        now: u64,
    ) -> Result<bool, inferix_core::task::TaskError> {
        t.complete(result, now)?;
        let verifying = !self.verifiers.is_empty()
            && t.transition(TaskStatus::Verifying, now, "sent to verifiers")
                .is_ok();
        if verifying {
            t.round_manager = Some(self.id);
        }
        Ok(verifying)
    }

    /// Records results that arrived while the task database was away; each
    /// leaves the journal once the database has answered for it.
    pub(super) async fn flush_buffered_results(&mut self) {
        for (task_id, worker, result) in std::mem::take(&mut self.buffered) {
            let attempt = result.attempt;
            let task = match self.store.task(task_id).await {
                Ok(Some(t)) => t,
                Err(StoreError::Unavailable(_)) => {
                    self.buffered.push((task_id, worker, result));
                    continue;
                }
                Ok(None) | Err(_) => {
                    self.journal.remove(task_id, attempt).await;
                    continue;
                }
            };
            match self.record_result(task, worker, result.clone()).await {
                Ok(()) => info!(?task_id, ?worker, "buffered result recorded"),
                Err((ErrorCode::Unavailable, _)) => {
                    self.buffered.push((task_id, worker, result));
                    continue;
                }
                Err(_) => {}
            }
            self.journal.remove(task_id, attempt).await;
        }
    }

    /// Takes back the results journalled before a restart, and records
    /// them if the database is there.
    pub(super) async fn replay_journal(&mut self) {
        let entries = self.journal.load().await;
        if entries.is_empty() {
            return;
        }
        info!(
            results = entries.len(),
            "results journalled during a database outage replayed"
        );
        for e in entries {
            let known = self
                .buffered
                .iter()
                .any(|(t, _, r)| *t == e.task && r.attempt == e.result.attempt);
            if !known {
                self.buffered.push((e.task, e.worker, e.result));
            }
        }
        self.flush_buffered_results().await;
    }

    /// Why a result with a valid signature must still be refused before
    /// it is verified (see [`inferix_manager::results::check_result`]).
    pub(super) async fn check_result(
        &mut self,
        t: &Task,
        result: &inferix_core::task::TaskResult,
    ) -> Result<(), String> {
        let job_scene = if inferix_manager::results::needs_job_scene(t) {
            self.job(t.id.job).await.map(|j| j.spec.scene.blob)
        } else {
            None
        };
        inferix_manager::results::check_result(t, result, job_scene).map_err(|e| e.to_string())
    }

    /// Counts a lease lost through `worker` against it: its reputation
    /// drops (so the scheduler prefers others) and, after
    /// `failures_before_blocklist` on one job, it is blocklisted for that
    /// job.
    pub(super) async fn count_failure(&mut self, job: JobId, worker: NodeId) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.reputation *= FAILURE_REPUTATION_FACTOR;
        }
        if !self
            .failures
            .count(job, worker, self.cfg.failures_before_blocklist)
        {
            return;
        }
        if let Some(mut j) = self.job(job).await {
            if !j.blocklist.contains(&worker) {
                warn!(
                    ?job,
                    ?worker,
                    failures = self.failures.of(job, worker),
                    "worker blocklisted for the job after repeated failures"
                );
                j.blocklist.push(worker);
                self.save_job(j).await;
            }
        }
    }
}
