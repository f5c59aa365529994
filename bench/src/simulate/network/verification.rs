//! Carrying out the engine's commands: verification offers to modelled
//! verifiers, and settled rounds written to the store and the ledger.

use super::*;

impl Sim {
    /// Hands `event` to manager `m`'s engine and carries out its commands.
    pub(super) async fn engine_event(&mut self, m: usize, event: Event) -> Result<(), BenchError> {
        let now = self.abs_ms();
        let mut commands: VecDeque<Command> = self.managers[m].engine.handle(event, now).into();
        while let Some(command) = commands.pop_front() {
            match command {
                Command::OfferVerification {
                    verifier,
                    verification,
                    task,
                } => {
                    if !self.offer_verification(m, verifier, verification, task) {
                        // The driver cannot go on with this round.
                        let more = self.managers[m]
                            .engine
                            .handle(Event::RoundAbandoned { task }, now);
                        commands.extend(more);
                    }
                }
                Command::SettleRound(s) => self.settle(m, s).await?,
                Command::Arbitrate { task, audit, .. } => {
                    // The manager checks the result as an honest verifier
                    // does; its answer settles the round.
                    if audit {
                        self.c.audits += 1;
                    } else {
                        self.c.arbitrations += 1;
                    }
                    let outcome = self.rounds.get(&task).map(|r| (!r.detectable, Vec::new()));
                    let more = self.managers[m]
                        .engine
                        .handle(Event::Arbitrated { task, outcome }, now);
                    commands.extend(more);
                }
                Command::RoundWaiting {
                    reason: Some(_), ..
                } => self.c.round_waits += 1,
                Command::OfferForcedError {
                    verifier,
                    verification,
                } => self.offer_forced_error(m, verifier, verification),
                Command::VerifierCaught { verifier, .. } => {
                    self.remove_verifier(m, verifier_of_node(verifier), true);
                }
                Command::OfferClaimCheck {
                    verifier,
                    verification,
                    check,
                } => self.offer_claim_check(m, verifier, verification, &check),
                Command::SettleClaim(v) => self.settle_claim(v).await?,
                Command::Recall { task, .. } => {
                    // The manager checks the result as an honest verifier
                    // does.
                    self.c.recalls += 1;
                    let bad = self.fakes_accepted.get(&task).copied().unwrap_or(false);
                    let outcome = Some((!bad, Vec::new()));
                    let more = self.managers[m]
                        .engine
                        .handle(Event::Recalled { task, outcome }, now);
                    commands.extend(more);
                }
                Command::SettleRecall(r) => self.settle_recall(m, r).await?,
                Command::ClaimRefused { .. } => self.c.claims_refused += 1,
                Command::RoundWaiting { reason: None, .. }
                | Command::ClaimWaiting { .. }
                | Command::VerifierInconclusive { .. }
                | Command::ForcedErrorCaught { .. } => {}
            }
        }
        Ok(())
    }

    /// Sends a verification offer; the verifier checks it after the ones
    /// it holds and answers (unless a message is lost: the engine's
    /// deadline then draws the vote again).
    pub(super) fn offer_verification(
        &mut self,
        m: usize,
        verifier: NodeId,
        verification: u64,
        task: TaskId,
    ) -> bool {
        let Some(detectable) = self.rounds.get(&task).map(|r| r.detectable) else {
            return false;
        };
        self.c.verification_offers += 1;
        let v = verifier_of_node(verifier);
        let epoch = self.managers[m].epoch;
        let Some(there) = self.message_delay() else {
            return true;
        };
        let kind = self.verifiers[v as usize].kind;
        let done = self.queue_check(v, kind, there);
        let pass = match kind {
            VerifierKind::Honest => !detectable,
            VerifierKind::Colluder | VerifierKind::RubberStamp => true,
        };
        self.answer_at(done, v, m, epoch, verification, task, pass);
        true
    }

    /// Queues a check behind those verifier `v` (of `kind`) holds, the
    /// offer arriving in `there` ms; returns when it answers, from now. A
    /// rubber stamp answers at once.
    pub(super) fn queue_check(&mut self, v: u32, kind: VerifierKind, there: u64) -> u64 {
        let work = match kind {
            VerifierKind::RubberStamp => 10,
            _ => self.rng.gen_range(2_000..20_000),
        };
        let vs = &mut self.verifiers[v as usize];
        vs.busy_until = vs.busy_until.max(self.now + there) + work;
        vs.busy_until - self.now
    }

    /// Delivers verifier `v`'s verdict `done` ms from now (unless the
    /// message is lost).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_at(
        &mut self,
        done: u64,
        v: u32,
        m: usize,
        epoch: u32,
        verification: u64,
        task: TaskId,
        pass: bool,
    ) {
        if let Some(back) = self.message_delay() {
            self.at(
                done + back,
                Ev::Verdict {
                    v,
                    m,
                    epoch,
                    verification,
                    task,
                    pass,
                },
            );
        }
    }

    /// Sends a known-bad result: honest verifiers and colluders (it is not
    /// their partners' work) fail it, a rubber stamp passes it. A known-bad
    /// result is another task's frames, which no crop of this task's plan
    /// matches: a verifier that checks never misses it.
    fn offer_forced_error(&mut self, m: usize, verifier: NodeId, verification: u64) {
        self.c.forced_offers += 1;
        let v = verifier_of_node(verifier);
        let epoch = self.managers[m].epoch;
        let Some(there) = self.message_delay() else {
            return;
        };
        let kind = self.verifiers[v as usize].kind;
        let done = self.queue_check(v, kind, there);
        let pass = kind == VerifierKind::RubberStamp;
        let task = TaskId::new(JobId(0), 0);
        self.answer_at(done, v, m, epoch, verification, task, pass);
    }

    /// Removes verifier `v` for good (caught by a known-bad result, or
    /// slashed for a losing vote): it leaves manager `m`'s engine (at once,
    /// as the driver disconnects it) and never comes back.
    pub(super) fn remove_verifier(&mut self, m: usize, v: u32, caught: bool) {
        let vs = &mut self.verifiers[v as usize];
        if vs.removed {
            return;
        }
        vs.removed = true;
        let was = vs.manager.take();
        if vs.kind == VerifierKind::Honest {
            if caught {
                self.c.honest_verifiers_removed += 1;
            }
        } else {
            self.c.bad_verifiers_removed += 1;
            self.c.removed_after.push(vs.answered);
        }
        if was == Some(m) {
            let epoch = self.managers[m].epoch;
            self.at(0, Ev::VerifierRemoved { v, m, epoch });
        }
    }

    /// Writes a settled round: acceptance with its payment in one batch, or
    /// rejection, slash and requeue; the agreeing verifiers are rewarded.
    pub(super) async fn settle(&mut self, m: usize, s: Settlement) -> Result<(), BenchError> {
        let Some(r) = self.rounds.remove(&s.task) else {
            return Ok(());
        };
        if r.manager != m {
            self.rounds.insert(s.task, r);
            return Ok(());
        }
        let tid = s.task;
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        if task.status != TaskStatus::Verifying || task.attempts != r.attempt {
            return Ok(());
        }
        if !s.dissenting.is_empty() {
            self.c.split_rounds += 1;
        }
        // A losing vote is slashed (as the manager node does): an honest
        // verifier outvoted is a cost of the attack; a bad one is gone.
        for d in &s.dissenting {
            let v = verifier_of_node(*d);
            if self.verifiers[v as usize].kind == VerifierKind::Honest {
                self.c.honest_verifiers_slashed += 1;
            } else {
                self.remove_verifier(m, v, false);
            }
        }
        let now = self.abs_ms();
        let worker = node_of_worker(r.worker);
        if s.passed {
            let Some(job) = self.job_records.get(&tid.job) else {
                return Ok(());
            };
            task.transition(TaskStatus::Accepted, now, "verified")
                .map_err(run_err)?;
            self.workers[r.worker as usize].accepted += 1;
            let pay = economy::task_payment(
                tid,
                task.frames.len(),
                job.quoted_price,
                job.spec.frames.len(),
                worker,
                None,
                now,
            );
            let mut batch = [Change::Task(Box::new(task)), Change::Transaction(pay)];
            self.store.apply(&mut batch).await.map_err(store_err)?;
            self.pass_votes.insert(tid, s.agreeing.len());
            if r.fake {
                self.fakes_accepted.insert(tid, r.detectable);
                self.c.cheats_missed += 1;
                if self.workers[r.worker as usize].sybil {
                    self.c.sybil_fakes_paid += 1;
                }
            }
            let ws = &self.workers[r.worker as usize];
            if ws.declared_ib > ws.ib {
                self.c.liar_accepted += 1;
            }
            self.c.accepted += 1;
            self.accepted_at.push(self.now);
            self.task_done(tid.job).await?;
        } else {
            task.transition(TaskStatus::Rejected, now, s.reasons.join("; "))
                .map_err(run_err)?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            let to = task
                .requeue(
                    now,
                    Fault::Attempt(worker),
                    self.cfg.max_attempts,
                    "rejected",
                )
                .map_err(run_err)?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            if r.fake {
                self.c.cheats_caught += 1;
            } else {
                self.c.honest_rejected += 1;
            }
            let penalty = self.round_cfg.reputation_penalty;
            self.workers[r.worker as usize].reputation *= penalty;
            if let Some(slot) = self.managers[m].pool.get_mut(&worker) {
                slot.info.reputation *= penalty;
            }
            let stake = self
                .store
                .balance(&Account::Stake(worker))
                .await
                .map_err(store_err)?;
            if let Some(tx) =
                economy::slash(tid, worker, &economy::StakeHolder::Node(worker), stake, now)
            {
                self.append(&tx).await?;
            }
            self.after_requeue(tid, to).await?;
            if economy::minimum_stake(&self.economy, 1.0) > 0 {
                self.disconnect_slashed(r.worker).await?;
            }
        }
        let pool = self
            .store
            .balance(&Account::PenaltyPool)
            .await
            .map_err(store_err)?;
        for tx in economy::verifier_rewards(&self.economy, tid, &s.agreeing, pool, now) {
            self.append(&tx).await?;
        }
        Ok(())
    }

    pub(super) async fn append(&mut self, tx: &Transaction) -> Result<(), BenchError> {
        match self.store.append_transaction(tx).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }
}
