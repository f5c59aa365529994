//! Ledger writes: payments, slashes, verifier rewards, refunds and job
//! completion.

use inferix_manager::economy::StakeHolder;

use super::*;

impl State {
    pub(super) async fn punish(&mut self, task_id: TaskId, worker: NodeId, operator: Option<&str>) {
        if let Some(mut job) = self.job(task_id.job).await {
            if !job.blocklist.contains(&worker) {
                job.blocklist.push(worker);
                self.save_job(job).await;
            }
        }
        let holder = StakeHolder::of(worker, operator);
        let Ok(stake) = self.store.balance(&holder.account()).await else {
            return;
        };
        if let Some(tx) = economy::slash(task_id, worker, &holder, stake, self.now()) {
            match self.store.append_transaction(&tx).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {
                    warn!(?worker, ?operator, stake, "stake slashed");
                }
                Err(e) => warn!(?worker, error = %e, "cannot record the slash"),
            }
        }
        // Without stake the worker may not hold tasks any more, nor any
        // other node of its account.
        if self.minimum_stake(1.0) > 0 {
            if let Some(name) = operator {
                let why = format!("the stake of account {name} was slashed after a rejected result; deposit again to rejoin");
                self.disconnect_operator(name, &why).await;
            }
            if let Some(conn) = self.workers.get(&worker).map(|w| w.conn) {
                self.send(
                    conn,
                    Envelope::push(Message::error(
                        ErrorCode::Unauthorized,
                        "stake slashed after a rejected result",
                    )),
                )
                .await;
                self.refuse(conn, "stake slashed").await;
            }
        }
    }

    /// Pays verifiers that agreed with a verdict from the penalty pool,
    /// while it has funds.
    pub(super) async fn pay_verifiers(&mut self, task: TaskId, verifiers: &[NodeId]) {
        if self.cfg.verifier_reward <= 0 || verifiers.is_empty() {
            return;
        }
        let Ok(pool) = self.store.balance(&Account::PenaltyPool).await else {
            return;
        };
        let rewards = economy::verifier_rewards(&self.economy(), task, verifiers, pool, self.now());
        for tx in rewards {
            if let Err(e) = self.store.append_transaction(&tx).await {
                warn!(?task, error = %e, "cannot record a verifier's reward");
            }
        }
    }

    pub(super) fn economy(&self) -> EconomyConfig {
        EconomyConfig {
            price_per_ibm: self.cfg.price_per_ibm,
            stake_epoch_minutes: self.cfg.stake_epoch_minutes,
            grant_stake: self.cfg.grant_stake,
            verifier_reward: self.cfg.verifier_reward,
        }
    }

    /// The payment of an accepted task out of the job's escrow (to its
    /// worker, and to the verifier whose clean pixels were delivered),
    /// written with the task's acceptance in one batch.
    pub(super) fn payment(&self, job: &Job, t: &Task) -> Option<Transaction> {
        let result = t.result.as_ref()?;
        let delivery = t.delivered.first().map(|d| economy::CleanDelivery {
            verifier: d.verifier,
            clean_pixels: t.delivered.iter().map(|d| d.clean_pixels).sum(),
            frame_pixels: result
                .frames
                .iter()
                .map(|f| u64::from(f.width) * u64::from(f.height))
                .sum(),
        });
        // A tile task is paid its tile's share of its frames' price.
        let (part, whole) = job.spec.task_share(t.id.index, t.frames.len());
        let mut tx = economy::task_payment(
            t.id,
            part,
            job.quoted_price,
            whole,
            result.worker,
            delivery,
            self.now(),
        );
        if let Some(r) = job.spec.task_region(t.id.index) {
            tx.memo = format!(
                "tile {}x{} at ({}, {}) of {} frames of {} accepted",
                r.width,
                r.height,
                r.x,
                r.y,
                t.frames.len(),
                t.id
            );
        }
        Some(tx)
    }

    pub(super) async fn complete_job(&mut self, job_id: JobId) {
        let Some(mut job) = self.job(job_id).await else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        job.set_state(JobState::Completed, self.now(), "every frame accepted");
        job.waiting_reason = None;
        if job.outputs.is_empty() {
            job.outputs = super::outputs::pending_outputs(&job.spec);
        }
        self.save_job(job.clone()).await;
        self.refund_escrow(job_id, "job completed: rounding remainder")
            .await;
        info!(job = ?job_id, "job completed");
        self.emit(job_id, JobEvent::Completed { job: job_id }).await;
        self.start_outputs(&job);
    }

    /// Returns what is left in a job's escrow to its payer.
    pub(super) async fn refund_escrow(&mut self, job: JobId, memo: &str) {
        let Ok(left) = self.store.balance(&Account::Job(job)).await else {
            return;
        };
        if left <= 0 {
            return;
        }
        if let Some(payer) = self.payer_of(job).await {
            if let Some(tx) = economy::escrow_refund(job, left, payer, memo, self.now()) {
                let _ = self.store.append_transaction(&tx).await;
            }
        }
    }

    /// Slashes `verifier`'s whole stake into the penalty pool (see
    /// [`economy::verifier_slash`]) and disconnects it: it holds no stake
    /// any more, as a slashed worker does not.
    pub(super) async fn slash_verifier(&mut self, verifier: NodeId, about: &str, why: &str) {
        let operator = self.operator_of(verifier);
        let holder = StakeHolder::of(verifier, operator.as_deref());
        let Ok(stake) = self.store.balance(&holder.account()).await else {
            return;
        };
        if let Some(tx) = economy::verifier_slash(verifier, &holder, stake, about, why, self.now())
        {
            match self.store.append_transaction(&tx).await {
                Ok(()) => warn!(?verifier, %about, stake, %why, "verifier stake slashed"),
                Err(e) => warn!(?verifier, error = %e, "cannot record a verifier's slash"),
            }
        }
        if self.minimum_stake(economy::VERIFIER_STAKE_IB) > 0 {
            if let Some(name) = &operator {
                let why = format!(
                    "the stake of account {name} was slashed: {why}; deposit again to rejoin"
                );
                self.disconnect_operator(name, &why).await;
            }
            if let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) {
                self.send(
                    conn,
                    Envelope::push(Message::error(
                        ErrorCode::Unauthorized,
                        format!("stake slashed: {why}"),
                    )),
                )
                .await;
                self.refuse(conn, "stake slashed").await;
            }
        }
    }

    /// Whom `worker`'s failure on a task is charged to, by what it has
    /// earned (see [`inferix_manager::results::failure_fault`]). A ledger
    /// that cannot be read charges nobody.
    pub(super) async fn failure_fault(&self, worker: NodeId) -> Fault {
        let earned = self
            .store
            .balance(&Account::Worker(worker))
            .await
            .unwrap_or(0);
        inferix_manager::results::failure_fault(worker, earned)
    }

    /// The account that funded `job`'s escrow.
    pub(super) async fn payer_of(&self, job: JobId) -> Option<Account> {
        let fund = self
            .store
            .transaction(&format!("fund:{job}"))
            .await
            .ok()??;
        fund.postings
            .into_iter()
            .find(|p| p.amount < 0)
            .map(|p| p.account)
    }
}
