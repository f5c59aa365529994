//! The manager's own check of a result whose verifiers disagreed.
//!
//! Verifiers' checks are deterministic, so a split vote means one side
//! lied. The manager checks the result exactly as a verifier would (frame
//! hashes, watermark patches, crop re-renders) with its own renderer, off
//! its loop, and the engine settles the round by that check: the outvoted
//! side loses its stake whatever its number. A manager without a renderer
//! for the scene, or whose check is inconclusive, answers with no outcome
//! and the engine sends the round to freshly drawn verifiers.

use super::*;
use crate::verifier::{verify, CropRenderer};

impl State {
    /// Starts the manager's check of `task`'s disputed result; the answer
    /// comes back as [`Input::Arbitrated`].
    pub(super) async fn arbitrate(&mut self, task_id: TaskId) {
        let prepared = match self.prober.clone() {
            Some(prober) => self.arbitration_offer(task_id).await.map(|a| (prober, a)),
            None => None,
        };
        let Some((prober, offer)) = prepared else {
            info!(task = ?task_id, "verifiers disagree and the manager cannot check the result; fresh verifiers decide");
            self.engine_defer(EngineEvent::Arbitrated {
                task: task_id,
                outcome: None,
            });
            return;
        };
        info!(task = ?task_id, "verifiers disagree; the manager checks the result itself");
        let blobs = self.blobs.clone();
        let inputs = self.inputs.clone();
        let deadline = self.cfg.verification_timeout;
        tokio::spawn(async move {
            let crops = CropRenderer {
                renderer: prober.renderer.clone(),
                work_dir: prober.scratch.join("arbitration"),
            };
            let outcome = match tokio::time::timeout(
                deadline,
                verify(&*blobs, Some(&crops), &offer),
            )
            .await
            {
                Ok(v) if v.inconclusive.is_none() => Some((v.passed, v.reasons)),
                Ok(v) => {
                    warn!(task = ?offer.task, reason = ?v.inconclusive, "the manager's check was inconclusive");
                    None
                }
                Err(_) => {
                    warn!(task = ?offer.task, "the manager's check ran past its deadline");
                    None
                }
            };
            let _ = inputs
                .send(Input::Arbitrated {
                    task: offer.task,
                    outcome,
                })
                .await;
        });
    }

    /// What a verifier of `task`'s round is sent, for the manager's own
    /// check.
    async fn arbitration_offer(&mut self, task_id: TaskId) -> Option<VerificationAssignment> {
        let task = match self.round_tasks.get(&task_id) {
            Some(t) => t.clone(),
            None => self.store.task(task_id).await.ok().flatten()?,
        };
        let (job, plan) = self.verification_plan(&task).await?;
        let result = task.result?;
        Some(self.offer_of(
            0,
            task_id,
            result.frames.clone(),
            &job,
            plan.as_ref(),
            &result,
        ))
    }

    /// The manager's check came back: the engine settles the round.
    pub(super) async fn on_arbitrated(
        &mut self,
        task: TaskId,
        outcome: Option<(bool, Vec<String>)>,
    ) {
        self.engine_event(EngineEvent::Arbitrated { task, outcome })
            .await;
    }
}
