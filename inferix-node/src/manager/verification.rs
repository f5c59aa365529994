//! Verification: carrying out the engine's commands, opening rounds, building
//! offers, writing settlements.

use inferix_core::store::Change;
use inferix_core::task::DeliveredFrame;

use super::*;

impl State {
    pub(super) async fn on_verdict(&mut self, verifier: NodeId, mut v: Verdict) {
        if !self.engine.is_awaited_verification(v.verification) {
            debug!(
                ?verifier,
                verification = v.verification,
                "late or unknown verdict ignored"
            );
            return;
        }
        // Only a round's votes carry clean pixels worth keeping (a known-bad
        // offer names an accepted task, whose round is over).
        if v.passed && self.round_tasks.contains_key(&v.task) {
            self.keep_clean(verifier, v.task, std::mem::take(&mut v.clean));
        }
        // Carried out with the batch's other inputs, so that the rounds
        // they settle are written together (see `group_commit.rs`).
        self.engine_defer(EngineEvent::VerdictReceived {
            verifier,
            verdict: v,
        });
    }

    /// Hands one event to the engine and carries out what it answers.
    pub(super) async fn engine_event(&mut self, event: EngineEvent) {
        self.engine_defer(event);
        self.run_engine_commands().await;
    }

    /// Hands one event to the engine; its commands wait in the queue for
    /// the next [`Self::run_engine_commands`].
    pub(super) fn engine_defer(&mut self, event: EngineEvent) {
        let now = self.now();
        let commands = self.engine.handle(event, now);
        self.engine_commands.extend(commands);
    }

    /// Carries out the engine's queued commands, in order; a command that
    /// cannot be carried out comes back to the engine as an event (whose
    /// own commands are carried out after the rest).
    pub(super) async fn run_engine_commands(&mut self) {
        loop {
            self.run_engine_commands_once().await;
            if !self.acceptances_held() {
                return;
            }
            self.flush_acceptances().await;
        }
    }

    /// Carries out the queued commands; passed rounds are held for one
    /// write (see `group_commit.rs`).
    async fn run_engine_commands_once(&mut self) {
        while let Some(command) = self.engine_commands.pop_front() {
            // A command that may read an accepted task (a recall of the
            // worker's earlier passes, a known-bad offer built from one,
            // an arbitration) comes after the acceptances before it are
            // written, as if each had been written when it settled.
            let keeps_order = matches!(
                command,
                EngineCommand::SettleRound(_)
                    | EngineCommand::OfferVerification { .. }
                    | EngineCommand::RoundWaiting { .. }
                    | EngineCommand::VerifierInconclusive { .. }
            );
            if !keeps_order && self.acceptances_held() {
                self.flush_acceptances().await;
            }
            match command {
                EngineCommand::OfferVerification {
                    verifier,
                    verification,
                    task,
                } => {
                    if !self.offer_verification(verifier, verification, task).await {
                        self.round_tasks.remove(&task);
                        self.check_levels.remove(&task);
                        self.round_waiting.remove(&task);
                        self.clean_votes.remove(&task);
                        self.engine_defer(EngineEvent::RoundAbandoned { task });
                    }
                }
                EngineCommand::SettleRound(s) => {
                    let outcome = if s.passed { "passed" } else { "failed" };
                    self.metrics
                        .rounds
                        .get_or_create(&metrics::ManagerMetrics::kind(outcome))
                        .inc();
                    if !s.dissenting.is_empty() {
                        self.metrics.escalated.inc();
                    }
                    self.round_waiting.remove(&s.task);
                    let clean = self.clean_votes.remove(&s.task).unwrap_or_default();
                    let known = self.round_tasks.remove(&s.task);
                    if !s.dissenting.is_empty() {
                        info!(task = ?s.task, dissenting = ?s.dissenting, passed = s.passed, arbitrated = s.arbitrated, "verifiers disagreed; the outvoted lose their stake");
                    }
                    for v in &s.dissenting {
                        let why = format!(
                            "its vote lost: the round {} the result",
                            if s.passed { "passed" } else { "failed" }
                        );
                        self.judge_verifier_operator(*v).await;
                        self.slash_verifier(*v, &s.task.to_string(), &why).await;
                    }
                    if !s.passed {
                        self.check_levels.remove(&s.task);
                        self.finish_verification(&s, known, Vec::new()).await;
                        self.pay_verifiers(s.task, &s.agreeing).await;
                        continue;
                    }
                    let task = match known {
                        Some(t) => t,
                        None => match self.store.task(s.task).await {
                            Ok(Some(t)) => t,
                            _ => continue,
                        },
                    };
                    let delivered = match self.deliver(&task, &s.agreeing, clean).await {
                        Ok(frames) => frames,
                        Err(why) => {
                            // The result is good but the customer's
                            // frames cannot be made clean yet: the
                            // round is asked again, of the verifiers
                            // the engine draws now.
                            warn!(task = ?s.task, %why, "clean delivery waits; verifying again");
                            let reason = format!("clean frames of task {} wait: {why}", s.task);
                            self.emit(s.task.job, JobEvent::Waiting { reason }).await;
                            let format = self.job(s.task.job).await.map(|j| j.spec.scene.format);
                            let operator = task.operator.clone();
                            let (_, quorum) = self.check_level(&task).await;
                            self.round_tasks.insert(s.task, task);
                            self.engine_defer(EngineEvent::RoundOpened {
                                task: s.task,
                                worker: s.worker,
                                operator,
                                needs: format,
                                quorum: Some(quorum),
                            });
                            continue;
                        }
                    };
                    self.check_levels.remove(&s.task);
                    let voters = s.agreeing.iter().chain(&s.dissenting).copied().collect();
                    self.remember_accepted(s.task, voters);
                    self.hold_acceptance(group_commit::Acceptance {
                        settlement: s,
                        known: task,
                        delivered,
                    });
                }
                EngineCommand::Arbitrate { task, audit, .. } => self.arbitrate(task, audit).await,
                EngineCommand::Recall { task, worker } => self.recall(task, worker).await,
                EngineCommand::SettleRecall(r) => self.settle_recall(r).await,
                EngineCommand::OfferClaimCheck {
                    verifier,
                    verification,
                    check,
                } => {
                    if let Err(why) = self.offer_claim_check(verifier, verification, &check).await {
                        warn!(claim = check.claim, task = ?check.task, %why, "claim check dropped");
                        self.engine_defer(EngineEvent::ClaimCheckDropped { verification });
                    }
                }
                EngineCommand::SettleClaim(verdict) => self.settle_claim(verdict).await,
                EngineCommand::ClaimRefused { claim, reason } => {
                    warn!(claim, %reason, "claim refused");
                }
                EngineCommand::ClaimWaiting {
                    claim,
                    task,
                    reason,
                } => warn!(claim, ?task, %reason, "claim re-render waits for a verifier"),
                EngineCommand::OfferForcedError {
                    verifier,
                    verification,
                } => {
                    if !self.offer_forced_error(verifier, verification).await {
                        self.engine_defer(EngineEvent::ForcedErrorDropped { verification });
                    }
                }
                EngineCommand::VerifierCaught {
                    verifier,
                    verification,
                } => self.verifier_caught(verifier, verification).await,
                EngineCommand::ForcedErrorCaught {
                    verifier,
                    verification,
                } => self.pay_bounty(verifier, verification).await,
                EngineCommand::VerifierInconclusive {
                    verifier,
                    task,
                    reason,
                    revoked,
                } => {
                    warn!(?verifier, ?task, %reason, "verifier could not check; its seat is drawn again");
                    self.metrics.inconclusive.inc();
                    if let Some(format) = revoked {
                        warn!(?verifier, %format, "verifier failed to render its format too often in a row; no longer seated for it");
                    }
                }
                EngineCommand::RoundWaiting { task, reason } => match reason {
                    Some(why) => {
                        warn!(?task, %why, "verification waits");
                        // Watchers see it, as they see a job that waits
                        // for a worker.
                        let reason = format!("verification of task {task} waits: {why}");
                        self.emit(task.job, JobEvent::Waiting { reason }).await;
                        self.round_waiting.insert(task, why);
                    }
                    None => {
                        self.round_waiting.remove(&task);
                    }
                },
            }
        }
    }

    /// Writes the round's outcome `s` on its task (accepted, with the
    /// clean frames `delivered` and who passed it, and paid; or rejected
    /// and re-queued) and tells the job's watchers.
    pub(super) async fn finish_verification(
        &mut self,
        s: &inferix_manager::Settlement,
        known: Option<Task>,
        delivered: Vec<DeliveredFrame>,
    ) {
        let (task_id, worker, passed, reasons) = (s.task, s.worker, s.passed, &s.reasons);
        let now = self.now();
        if !passed {
            warn!(task = ?task_id, ?worker, ?reasons, "result rejected");
        }
        let (to, note) = if passed {
            (TaskStatus::Accepted, "verified".to_string())
        } else {
            (TaskStatus::Rejected, reasons.join("; "))
        };
        let job = if passed {
            self.job(task_id.job).await
        } else {
            None
        };
        // The copy from the round's start saves a read; if the task has
        // changed since (the write conflicts), it is read once more.
        let mut cached = known;
        let mut written = false;
        let mut operator = None;
        let mut frames = 0;
        for _ in 0..2 {
            let mut t = match cached.take() {
                Some(t) => t,
                None => match self.store.task(task_id).await {
                    Ok(Some(t)) => t,
                    _ => return,
                },
            };
            if t.status != TaskStatus::Verifying || t.transition(to, now, note.clone()).is_err() {
                return;
            }
            operator.clone_from(&t.operator);
            frames = t.frames.len() as u64;
            if passed {
                t.delivered = delivered.clone();
                t.passed_by.clone_from(&s.agreeing);
            }
            // Acceptance and payment land together or not at all.
            let payment = job.as_ref().and_then(|j| self.payment(j, &t));
            let mut batch = vec![Change::Task(Box::new(t))];
            batch.extend(payment.map(Change::Transaction));
            match self.store.apply(&mut batch).await {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                // Paid already (the payment's id is the task's): the task
                // alone is left to write.
                Err(StoreError::AlreadyExists { .. }) if batch.len() > 1 => {
                    if let Some(Change::Task(mut t)) = batch.into_iter().next() {
                        match self.store.update_task(&mut t).await {
                            Ok(()) => {
                                written = true;
                                break;
                            }
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(_) => return,
                        }
                    }
                    return;
                }
                Err(e) => {
                    warn!(task = ?task_id, error = %e, "cannot record the verdict");
                    return;
                }
            }
        }
        if !written {
            return;
        }
        self.judge_operator(operator.as_deref(), passed).await;
        if passed {
            // Before the job can complete: its frames are the stitched ones.
            self.stitch_tiles(task_id).await;
            let accepted = group_commit::Accepted {
                task: task_id,
                worker,
                frames,
            };
            self.announce_accepted(task_id.job, job.as_ref(), &[accepted])
                .await;
        } else {
            if let Some(w) = self.workers.get_mut(&worker) {
                w.info.reputation *= self.cfg.reputation_penalty;
            }
            self.punish(task_id, worker, operator.as_deref()).await;
            self.emit(
                task_id.job,
                JobEvent::TaskRejected {
                    task: task_id,
                    worker,
                    reasons: reasons.clone(),
                },
            )
            .await;
            let fault = self.failure_fault(worker).await;
            self.requeue(
                task_id,
                worker,
                fault,
                &format!("rejected: {}", reasons.join("; ")),
            )
            .await;
        }
    }

    pub(super) async fn dispatch_verifications(&mut self) {
        if self.verifiers.is_empty() {
            return;
        }
        let rendered = match self.store.tasks_in_status(TaskStatus::Rendered, 64).await {
            Ok(r) => r,
            Err(_) => return,
        };
        for mut t in rendered {
            let Some(worker) = t.result.as_ref().map(|r| r.worker) else {
                continue;
            };
            if t.transition(TaskStatus::Verifying, self.now(), "sent to verifiers")
                .is_err()
            {
                continue;
            }
            t.round_manager = Some(self.id);
            if self.store.update_task(&mut t).await.is_err() {
                continue;
            }
            self.start_round(worker, t).await;
        }
    }

    /// Opens the verification round of `t` (just written as `Verifying`):
    /// the engine picks its verifiers.
    pub(super) async fn start_round(&mut self, worker: NodeId, t: Task) {
        let id = t.id;
        let (level, quorum) = self.check_level(&t).await;
        if let Some(level) = level {
            self.check_levels.insert(id, level);
        }
        let needs = match self.verification_plan(&t).await {
            Some((job, plan)) => plan
                .is_some_and(|p| !p.challenges.is_empty())
                .then_some(job.spec.scene.format),
            None => None,
        };
        let operator = t.operator.clone();
        self.round_tasks.insert(id, t);
        self.engine_event(EngineEvent::RoundOpened {
            task: id,
            worker,
            operator,
            needs,
            quorum: Some(quorum),
        })
        .await;
    }

    /// The job of `task` and the Proof-of-Render checks of its result.
    pub(super) async fn verification_plan(
        &mut self,
        task: &Task,
    ) -> Option<(Job, Option<inferix_core::por::plan::VerificationPlan>)> {
        let job = self.job(task.id.job).await?;
        let result = task.result.as_ref()?;
        // A tile task's plan is drawn in its tile's pixels.
        let region = job.spec.task_region(task.id.index);
        let (width, height) = region
            .map_or((job.spec.settings.width, job.spec.settings.height), |r| {
                (r.width, r.height)
            });
        let watermarked =
            result.scene != job.spec.scene.blob && self.watermarker_for(&job).is_some();
        let level = self.check_levels.get(&task.id).copied();
        let plan = self.por.as_ref().map(|por| {
            let plan = match level {
                Some(level) => plan_checks(por, level, task.id, result, width, height, watermarked),
                None => plan_verification(por, task.id, result, width, height, watermarked),
            };
            match region {
                Some(r) => plan.in_tile(r),
                None => plan,
            }
        });
        Some((job, plan))
    }

    /// Sends `task_id`'s result to `verifier` as verification
    /// `verification`; false when the task or its result is gone, or the
    /// verifier is no longer connected.
    pub(super) async fn offer_verification(
        &mut self,
        verifier: NodeId,
        verification: u64,
        task_id: TaskId,
    ) -> bool {
        let task = match self.round_tasks.get(&task_id) {
            Some(t) => t.clone(),
            None => match self.store.task(task_id).await {
                Ok(Some(t)) => t,
                _ => return false,
            },
        };
        let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) else {
            return false;
        };
        let Some((job, plan)) = self.verification_plan(&task).await else {
            return false;
        };
        let Some(result) = task.result else {
            return false;
        };
        let offer = self.offer_of(
            verification,
            task_id,
            result.frames.clone(),
            &job,
            plan.as_ref(),
            &result,
        );
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        true
    }

    /// The offer asking a verifier to check `frames` as the result of
    /// `task` (whose lease's plan is `plan`, `result` its signed result),
    /// under id `verification`.
    pub(super) fn offer_of(
        &self,
        verification: u64,
        task: TaskId,
        frames: Vec<inferix_core::task::FrameOutput>,
        job: &Job,
        plan: Option<&inferix_core::por::plan::VerificationPlan>,
        result: &inferix_core::task::TaskResult,
    ) -> VerificationAssignment {
        let region = job.spec.task_region(task.index);
        let (width, height) = region
            .map_or((job.spec.settings.width, job.spec.settings.height), |r| {
                (r.width, r.height)
            });
        VerificationAssignment {
            verification,
            task,
            frames,
            width,
            height,
            format: job.spec.format,
            watermark: plan.map(|p| p.watermark.clone()).unwrap_or_default(),
            watermark_threshold: self.por.as_ref().map_or(0.0, |p| p.threshold),
            challenges: plan.map(|p| p.challenges.clone()).unwrap_or_default(),
            // Always named: a verifier that renders confirms a flat frame
            // (a black scene) by rendering part of it, with or without
            // Proof of Render.
            scene: Some(SceneRef {
                blob: result.scene,
                ..job.spec.scene.clone()
            }),
            settings: job.spec.settings.clone(),
            // The class its admission probe (a glTF scene) showed, not the
            // one it signed; for other formats the one it signed.
            worker_device_class: self
                .observed_classes
                .get(&result.worker)
                .filter(|_| job.spec.scene.format == inferix_core::renderer::SceneFormat::Gltf)
                .cloned()
                .unwrap_or_else(|| result.device_class.clone()),
            crop_tolerance: self.por.as_ref().map_or(0, |p| p.crop_tolerance),
            // The frames carry patches: passing verifiers render the clean
            // pixels under them from the scene the customer sent.
            clean_scene: plan
                .is_some_and(|p| !p.watermark.is_empty())
                .then(|| job.spec.scene.clone()),
            environment: job.spec.environment.clone(),
            region,
        }
    }
}
