//! Recalls found bad: the store side of [`inferix_manager::recall`].

use inferix_core::store::Change;
use inferix_manager::Recalled;

use super::*;

impl State {
    /// A result that passed its round was found bad by the manager's own
    /// check after its worker was caught on another. The worker pays back
    /// what its frames were paid, to the job's payer, in the same store
    /// write that records them on the task as claimed and upheld (so they
    /// are never refunded twice, by a recall or by the owner's claim);
    /// the verifiers that passed it lose their stake and their connection
    /// (the engine has banned them); the job's watchers are told.
    pub(super) async fn settle_recall(&mut self, r: Recalled) {
        let Recalled {
            task: task_id,
            worker,
            passers,
            reasons,
        } = r;
        let Some(job) = self.job(task_id.job).await else {
            return;
        };
        let payer = self
            .payer_of(task_id.job)
            .await
            .unwrap_or(Account::User("unknown".into()));
        let reason = format!("recalled: {}", reasons.join("; "));
        let mut recorded = None;
        for _ in 0..3 {
            let Ok(Some(mut t)) = self.store.task(task_id).await else {
                return;
            };
            if t.status != TaskStatus::Accepted
                || t.result.as_ref().is_none_or(|res| res.worker != worker)
            {
                return;
            }
            // Frames the owner claimed already are settled by that claim.
            let price = |n| {
                let (part, whole) = job.spec.task_share(task_id.index, n);
                economy::frames_share(job.quoted_price, part, whole)
            };
            let Some((claim, tx)) =
                economy::recall_claim(&t, worker, payer.clone(), &reason, price, self.now())
            else {
                break;
            };
            let frames = claim.frames.clone();
            t.claims.push(claim);
            let mut batch = vec![Change::Task(Box::new(t)), Change::Transaction(tx)];
            match self.store.apply(&mut batch).await {
                Ok(()) => {
                    recorded = Some(frames);
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    warn!(task = ?task_id, error = %e, "cannot record a recall");
                    return;
                }
            }
        }
        warn!(task = ?task_id, ?worker, ?passers, "recalled result was bad; its verifiers are slashed");
        let about = format!("task {task_id}");
        for v in &passers {
            self.slash_verifier(*v, &about, "passed a bad result found by a recall")
                .await;
        }
        if let Some(frames) = recorded {
            info!(task = ?task_id, ?frames, "recalled frames refunded");
            self.emit(
                task_id.job,
                JobEvent::ClaimSettled {
                    claim: 0,
                    frames,
                    upheld: true,
                    evidence: vec![reason],
                },
            )
            .await;
        }
    }
}
