//! Bad-result claims: the store side of the engine's claim rules.

use inferix_core::store::Change;
use inferix_core::task::TaskClaim;

use super::*;

impl State {
    /// Files a bad-result claim of `account`: checks the window and that no
    /// frame was claimed before, takes the bond (what the claimed frames
    /// were paid) from the account, records the claim on each task in the
    /// same store write as its bond, then sends each task's claimed frames
    /// to a verifier that re-renders them whole.
    pub(super) async fn file_claim(
        &mut self,
        account: &AccountRecord,
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
        let format = job.spec.scene.format;
        let now = self.now();
        let checks = claim_checks(claim, format, &tasks, &frames, &reason, now, window)
            .map_err(|(code, m)| (code, format!("{m} (job {job_id})")))?;
        // Nothing is taken for a claim no verifier could check now (the
        // engine's own rule, so it never refuses a claim already taken).
        for c in &checks {
            if !inferix_manager::claims::can_check(
                self.engine.verifiers(),
                format,
                c.worker,
                &c.operator,
            ) {
                return Err((
                    ErrorCode::Unavailable,
                    format!("no verifier able to re-render {format} frames is connected"),
                ));
            }
        }
        let payer = account.ledger_account();
        let bonds: Vec<i64> = checks
            .iter()
            .map(|c| {
                let (part, whole) = job.spec.task_share(c.task.index, c.frames.len());
                economy::frames_share(job.quoted_price, part, whole)
            })
            .collect();
        let total: i64 = bonds.iter().sum();
        let balance = self.store.balance(&payer).await.map_err(store_err)?;
        if !account.can_pay(balance, total.max(0) as u64) {
            return Err((
                ErrorCode::PaymentRequired,
                format!(
                    "a claim on these frames takes a bond of {total} micro-credits (returned if \
                     the claim is upheld) and account {} has {balance}",
                    account.name
                ),
            ));
        }
        for (check, bond) in checks.iter().zip(bonds) {
            let record = TaskClaim {
                frames: check.frames.clone(),
                reason: reason.clone(),
                filed_ms: now,
                bond,
                payer: payer.clone(),
                upheld: None,
            };
            self.record_claim(check.task, record).await?;
        }
        self.next_claim += 1;
        let commands = self.engine.handle(EngineEvent::ClaimFiled { checks }, now);
        self.engine_commands.extend(commands);
        self.run_engine_commands().await;
        info!(claim, job = ?job.id, %reason, bond = total, "bad-result claim filed");
        Ok(claim)
    }

    /// Adds `claim` to `task`'s record together with its bond, in one store
    /// write; refused when one of its frames was claimed meanwhile.
    async fn record_claim(
        &mut self,
        task: TaskId,
        claim: TaskClaim,
    ) -> Result<(), (ErrorCode, String)> {
        for _ in 0..3 {
            let mut t = self
                .store
                .task(task)
                .await
                .map_err(store_err)?
                .ok_or_else(|| (ErrorCode::NotFound, format!("task {task} not found")))?;
            if let Some(f) = claim
                .frames
                .iter()
                .find(|f| t.claims.iter().any(|c| c.frames.contains(f)))
            {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("frame {f} was claimed already; a frame is claimed once"),
                ));
            }
            let bond = economy::claim_bond(task, &claim, self.now());
            t.claims.push(claim.clone());
            let mut batch = vec![Change::Task(Box::new(t)), Change::Transaction(bond)];
            match self.store.apply(&mut batch).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err((
            ErrorCode::Unavailable,
            format!("task {task} kept changing; file the claim again"),
        ))
    }

    /// Runs once at start: claims filed before a restart and not decided
    /// yet (their bonds are held) go back to verifiers, and the engine
    /// remembers who passed each result accepted within the claim window,
    /// for a recall. Only jobs whose claim window may still be open are
    /// read.
    pub(super) async fn recover_claims(&mut self, jobs: &[Job]) {
        let window = self.cfg.claim_window.as_millis() as u64;
        let now = self.now();
        for job in jobs {
            let open = job
                .finished_ms()
                .is_none_or(|at| at.saturating_add(window) > now);
            if !open || job.state == JobState::Cancelled {
                continue;
            }
            let Ok(tasks) = self.store.tasks_of_job(job.id).await else {
                continue;
            };
            let mut checks = Vec::new();
            for t in &tasks {
                let Some(result) = &t.result else { continue };
                // Who passed it, for a recall if its worker is caught.
                let accepted_at = (t.status == TaskStatus::Accepted && !t.passed_by.is_empty())
                    .then(|| t.entered(TaskStatus::Accepted))
                    .flatten();
                if let Some(at) = accepted_at {
                    self.engine_defer(EngineEvent::Passed {
                        task: t.id,
                        worker: result.worker,
                        passers: t.passed_by.clone(),
                        at,
                    });
                }
                for c in t.claims.iter().filter(|c| c.upheld.is_none()) {
                    checks.push(ClaimCheck {
                        claim: self.next_claim,
                        task: t.id,
                        frames: c.frames.clone(),
                        worker: result.worker,
                        operator: t.operator.clone(),
                        reason: c.reason.clone(),
                        format: job.spec.scene.format,
                    });
                    self.next_claim += 1;
                }
            }
            if !checks.is_empty() {
                info!(job = ?job.id, claims = checks.len(), "claims filed before the restart go back to verifiers");
                self.engine_defer(EngineEvent::ClaimResumed { checks });
            }
        }
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
        // A tile task's frames are its tile: re-rendered whole, as a tile.
        let region = job.spec.task_region(check.task.index);
        let (w, h) = region.map_or((job.spec.settings.width, job.spec.settings.height), |r| {
            (r.width, r.height)
        });
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
            region,
        };
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        Ok(())
    }

    /// Decides a claim from its panel's re-renders. Upheld: the worker
    /// refunds the frames' price to the job's payer and is slashed, and the
    /// bond goes back. Dismissed: the bond is forfeited to the penalty
    /// pool. Either way the outcome is kept on the task and the evidence in
    /// the ledger; the renderers of the majority are paid, the outvoted
    /// ones' accounts lose verifier reputation.
    pub(super) async fn settle_claim(&mut self, v: ClaimVerdict) {
        let ClaimVerdict {
            check,
            verifiers,
            dissenting,
            upheld,
            reasons,
        } = v;
        let evidence = if upheld {
            reasons
        } else {
            vec![format!(
                "frames {:?} re-rendered by {verifiers:?} match the delivered pixels",
                check.frames
            )]
        };
        for v in &dissenting {
            self.judge_verifier_operator(*v).await;
        }
        let job_id = check.task.job;
        let Some(claim) = self.decide_claim(check.task, &check.frames, upheld).await else {
            warn!(claim = check.claim, task = ?check.task, "claim not on record; not settled");
            return;
        };
        let payer = self
            .payer_of(job_id)
            .await
            .unwrap_or(Account::User("unknown".into()));
        let refund = match self.job(job_id).await {
            Some(job) if upheld => {
                let (part, whole) = job.spec.task_share(check.task.index, check.frames.len());
                economy::frames_share(job.quoted_price, part, whole)
            }
            _ => 0,
        };
        let txs = economy::claim_settlement(
            check.task,
            &claim,
            check.worker,
            payer,
            refund,
            upheld,
            &evidence.join("; "),
            self.now(),
        );
        for tx in txs {
            match self.store.append_transaction(&tx).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => warn!(claim = check.claim, error = %e, "cannot record the claim"),
            }
        }
        if upheld {
            warn!(claim = check.claim, worker = ?check.worker, "claim upheld");
            if let Some(w) = self.workers.get_mut(&check.worker) {
                w.info.reputation *= self.cfg.reputation_penalty;
            }
            self.judge_operator(check.operator.as_deref(), false).await;
            self.punish(check.task, check.worker, check.operator.as_deref())
                .await;
        }
        self.pay_verifiers(check.task, &verifiers).await;
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

    /// Writes the outcome of the claim on `frames` of `task` on its record;
    /// the claim as it was filed, or `None` when it is not on record or was
    /// decided already (a second verdict changes nothing).
    async fn decide_claim(
        &mut self,
        task: TaskId,
        frames: &[u32],
        upheld: bool,
    ) -> Option<TaskClaim> {
        for _ in 0..3 {
            let mut t = self.store.task(task).await.ok()??;
            let claim = t
                .claims
                .iter_mut()
                .find(|c| c.frames == frames && c.upheld.is_none())?;
            claim.upheld = Some(upheld);
            let decided = claim.clone();
            match self.store.update_task(&mut t).await {
                Ok(()) => return Some(decided),
                Err(StoreError::Conflict { .. }) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}
