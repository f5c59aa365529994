//! Claim abusers: owners who claim every frame of their finished jobs,
//! then the same frames again. Claims go through the engine's claim rules
//! (one check per task, a panel of renderers drawn like round seats) and
//! the ledger's bonds and settlements, as in the manager node. Recalls
//! found bad are written here too: they end as upheld claims.

use inferix_core::task::TaskClaim;
use inferix_manager::claims::{claim_checks, ClaimCheck, ClaimVerdict};
use inferix_manager::Recalled;

use super::*;

/// The confirmation window claims are filed in (ms).
const CLAIM_WINDOW_MS: u64 = 24 * 3_600_000;

impl Sim {
    /// Job `job_id` finished: an abusing owner (a `claim_abusers` share of
    /// jobs) claims every accepted frame, then tries the same frames again.
    pub(super) async fn maybe_claim(&mut self, job_id: JobId) -> Result<(), BenchError> {
        if self.cfg.claim_abusers <= 0.0 || !self.rng.gen_bool(self.cfg.claim_abusers) {
            return Ok(());
        }
        let Some(m) = self.managers.iter().position(|ms| ms.alive) else {
            return Ok(());
        };
        let Some(job) = self.job_records.get(&job_id).cloned() else {
            return Ok(());
        };
        let now = self.abs_ms();
        let tasks = self.store.tasks_of_job(job_id).await.map_err(store_err)?;
        let frames: Vec<u32> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Accepted)
            .flat_map(|t| t.frames.iter().copied())
            .collect();
        if frames.is_empty() {
            return Ok(());
        }
        self.c.claimed_jobs += 1;
        let claim = self.next_claim;
        self.next_claim += 1;
        let format = SceneFormat::Gltf;
        let Ok(checks) = claim_checks(
            claim,
            format,
            &tasks,
            &frames,
            "abuse",
            now,
            CLAIM_WINDOW_MS,
        ) else {
            self.c.claims_refused += 1;
            return Ok(());
        };
        for c in &checks {
            let bond =
                economy::frames_share(job.quoted_price, c.frames.len(), job.spec.frames.len());
            let record = TaskClaim {
                frames: c.frames.clone(),
                reason: "abuse".into(),
                filed_ms: now,
                bond,
                payer: Account::User("client".into()),
                upheld: None,
            };
            let Some(mut t) = self.store.task(c.task).await.map_err(store_err)? else {
                continue;
            };
            let tx = economy::claim_bond(c.task, &record, now);
            t.claims.push(record);
            let mut batch = [Change::Task(Box::new(t)), Change::Transaction(tx)];
            self.store.apply(&mut batch).await.map_err(store_err)?;
            self.c.claim_bonds += bond;
        }
        self.c.claims_filed += checks.len() as u64;
        self.engine_event(m, Event::ClaimFiled { checks }).await?;
        // The same frames again: refused, whatever became of the first.
        let tasks = self.store.tasks_of_job(job_id).await.map_err(store_err)?;
        let again = claim_checks(
            claim + 1,
            format,
            &tasks,
            &frames,
            "abuse",
            now,
            CLAIM_WINDOW_MS,
        );
        if again.is_err() {
            self.c.claims_refused += 1;
        }
        self.next_claim += 1;
        Ok(())
    }

    /// Sends a claim check to renderer `verifier`: an honest one redraws
    /// the frames and upholds the claim only on a fake; a colluder or a
    /// rubber stamp dismisses every claim (it protects its partners).
    pub(super) fn offer_claim_check(
        &mut self,
        m: usize,
        verifier: NodeId,
        verification: u64,
        check: &ClaimCheck,
    ) {
        let v = verifier_of_node(verifier);
        let epoch = self.managers[m].epoch;
        let Some(there) = self.message_delay() else {
            return;
        };
        let kind = self.verifiers[v as usize].kind;
        let done = self.queue_check(v, kind, there);
        let upheld = kind == VerifierKind::Honest && self.fakes_accepted.contains_key(&check.task);
        self.answer_at(done, v, m, epoch, verification, check.task, !upheld);
    }

    /// Writes a decided claim: its outcome on the task, and the refund and
    /// bond transfers in the ledger.
    pub(super) async fn settle_claim(&mut self, v: ClaimVerdict) -> Result<(), BenchError> {
        let check = v.check;
        let Some(mut t) = self.store.task(check.task).await.map_err(store_err)? else {
            return Ok(());
        };
        let Some(claim) = t
            .claims
            .iter_mut()
            .find(|c| c.frames == check.frames && c.upheld.is_none())
        else {
            return Ok(());
        };
        claim.upheld = Some(v.upheld);
        let claim = claim.clone();
        self.store.update_task(&mut t).await.map_err(store_err)?;
        let refund = match self.job_records.get(&check.task.job) {
            Some(job) if v.upheld => {
                economy::frames_share(job.quoted_price, check.frames.len(), job.spec.frames.len())
            }
            _ => 0,
        };
        let now = self.abs_ms();
        let payer = Account::User("client".into());
        for tx in economy::claim_settlement(
            check.task,
            &claim,
            check.worker,
            payer,
            refund,
            v.upheld,
            "simulated",
            now,
        ) {
            self.append(&tx).await?;
        }
        if v.upheld {
            self.c.claim_refunds += refund;
            if self.fakes_accepted.contains_key(&check.task) {
                self.c.claims_upheld_on_fakes += 1;
            } else {
                self.c.claims_upheld_on_honest += 1;
            }
        } else {
            self.c.claims_dismissed += 1;
            self.c.claim_bonds_forfeited += claim.bond;
        }
        Ok(())
    }

    /// Writes a recall found bad, as the manager node does: the frames are
    /// recorded on the task as claimed and upheld, the worker refunds their
    /// price to the payer, and the verifiers that passed them are removed.
    pub(super) async fn settle_recall(&mut self, m: usize, r: Recalled) -> Result<(), BenchError> {
        let Some(mut t) = self.store.task(r.task).await.map_err(store_err)? else {
            return Ok(());
        };
        if t.status != TaskStatus::Accepted {
            return Ok(());
        }
        let now = self.abs_ms();
        let payer = Account::User("client".into());
        let price = |n| match self.job_records.get(&r.task.job) {
            Some(job) => economy::frames_share(job.quoted_price, n, job.spec.frames.len()),
            None => 0,
        };
        if let Some((claim, tx)) =
            economy::recall_claim(&t, r.worker, payer, "recalled", price, now)
        {
            t.claims.push(claim);
            let mut batch = [Change::Task(Box::new(t)), Change::Transaction(tx)];
            self.store.apply(&mut batch).await.map_err(store_err)?;
        }
        self.c.fakes_recalled += 1;
        for p in &r.passers {
            let v = verifier_of_node(*p);
            if self.verifiers[v as usize].kind == VerifierKind::Honest {
                self.c.honest_recall_slashed += 1;
            } else {
                self.remove_verifier(m, v, false);
            }
        }
        Ok(())
    }
}
