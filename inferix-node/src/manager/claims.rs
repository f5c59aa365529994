//! Bad-result claims: the store side of the engine's claim rules.

use super::*;

impl State {
    /// Files a bad-result claim: checks the window, then sends each task's
    /// claimed frames to a verifier that re-renders them whole.
    pub(super) async fn file_claim(
        &mut self,
        job_id: JobId,
        frames: Vec<u32>,
        reason: String,
    ) -> Result<u64, (ErrorCode, String)> {
        let Some(job) = self.job(job_id).await else {
            return Err((ErrorCode::NotFound, format!("job {job_id} not found")));
        };
        if frames.is_empty() {
            return Err((
                ErrorCode::InvalidRequest,
                "a claim names at least one frame".into(),
            ));
        }
        let tasks = self.store.tasks_of_job(job_id).await.map_err(store_err)?;
        let window = self.cfg.claim_window.as_millis() as u64;
        let claim = self.next_claim;
        let checks = claim_checks(claim, &tasks, &frames, &reason, self.now(), window)
            .map_err(|(code, m)| (code, format!("{m} (job {job_id})")))?;
        self.next_claim += 1;
        let now = self.now();
        let commands = self.engine.handle(EngineEvent::ClaimFiled { checks }, now);
        if let Some(why) = commands.iter().find_map(|c| match c {
            EngineCommand::ClaimRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        }) {
            return Err((ErrorCode::Unavailable, why));
        }
        self.engine_commands.extend(commands);
        self.run_engine_commands().await;
        info!(claim, job = ?job.id, %reason, "bad-result claim filed");
        Ok(claim)
    }

    /// Sends a claim check to `verifier` (a renderer the engine chose) as
    /// verification `vid`.
    pub(super) async fn offer_claim_check(
        &mut self,
        verifier: NodeId,
        vid: u64,
        check: &ClaimCheck,
    ) -> Result<(), String> {
        let Ok(Some(task)) = self.store.task(check.task).await else {
            return Err(format!("task {} not found", check.task));
        };
        let (Some(job), Some(result)) = (self.job(check.task.job).await, task.result.clone())
        else {
            return Err("claimed result not found".into());
        };
        let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) else {
            return Err(format!("verifier {verifier:?} is not connected"));
        };
        let (w, h) = (job.spec.settings.width, job.spec.settings.height);
        let offer = VerificationAssignment {
            verification: vid,
            task: check.task,
            frames: result
                .frames
                .iter()
                .filter(|f| check.frames.contains(&f.frame))
                .cloned()
                .collect(),
            width: w,
            height: h,
            format: job.spec.format,
            watermark: Vec::new(),
            watermark_threshold: 0.0,
            challenges: check
                .frames
                .iter()
                .map(|&frame| inferix_core::protocol::CropChallenge {
                    frame,
                    rect: inferix_core::image::Rect::new(0, 0, w, h),
                })
                .collect(),
            scene: Some(SceneRef {
                blob: result.scene,
                ..job.spec.scene.clone()
            }),
            settings: job.spec.settings.clone(),
            worker_device_class: result.device_class.clone(),
            crop_tolerance: self.por.as_ref().map_or(2, |p| p.crop_tolerance),
            clean_scene: None,
            environment: job.spec.environment.clone(),
        };
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        Ok(())
    }

    /// Decides a claim from the re-render: upheld, the worker refunds the
    /// frames' price to the payer and is slashed; rejected, nothing moves.
    /// Either way the evidence is recorded in the ledger.
    pub(super) async fn settle_claim(&mut self, v: ClaimVerdict) {
        let ClaimVerdict {
            check,
            verifier,
            upheld,
            reasons,
        } = v;
        let evidence = if upheld {
            reasons
        } else {
            vec![format!(
                "frames {:?} re-rendered by {verifier:?} match the delivered pixels",
                check.frames
            )]
        };
        let job_id = check.task.job;
        let payer = self.payer_of(job_id).await;
        let refund = match self.job(job_id).await {
            Some(job) if upheld => {
                economy::frames_share(job.quoted_price, check.frames.len(), job.spec.frames.len())
            }
            _ => 0,
        };
        let memo = format!(
            "claim {} on frames {:?} of {} ({}): {}; evidence: {}",
            check.claim,
            check.frames,
            check.task,
            check.reason,
            if upheld { "upheld" } else { "rejected" },
            evidence.join("; ")
        );
        let tx = Transaction::transfer(
            format!("claim:{}:{}", check.claim, check.task),
            self.now(),
            memo,
            Account::Worker(check.worker),
            payer.unwrap_or(Account::User("unknown".into())),
            refund,
        );
        if let Err(e) = self.store.append_transaction(&tx).await {
            warn!(claim = check.claim, error = %e, "cannot record the claim");
        }
        if upheld {
            warn!(claim = check.claim, worker = ?check.worker, "claim upheld");
            if let Some(w) = self.workers.get_mut(&check.worker) {
                w.info.reputation *= self.cfg.reputation_penalty;
            }
            self.punish(check.task, check.worker).await;
        }
        self.pay_verifiers(check.task, &[verifier]).await;
        self.emit(
            job_id,
            JobEvent::ClaimSettled {
                claim: check.claim,
                frames: check.frames,
                upheld,
                evidence,
            },
        )
        .await;
    }
}
