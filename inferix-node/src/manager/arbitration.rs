//! The manager's own check of a result whose verifiers disagreed, or
//! that passed and whose worker was caught cheating since (a recall).
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
    /// Starts the manager's check of `task`'s disputed result, or of its
    /// unanimous pass when `audit` (a worker on probation); the answer
    /// comes back as [`Input::OwnCheck`].
    pub(super) async fn arbitrate(&mut self, task_id: TaskId, audit: bool) {
        let task = match self.round_tasks.get(&task_id) {
            Some(t) => Some(t.clone()),
            None => self.store.task(task_id).await.ok().flatten(),
        };
        let started = match task {
            Some(task) => self.start_own_check(task, OwnCheck::Dispute).await,
            None => false,
        };
        if !started {
            if audit {
                debug!(task = ?task_id, "the manager cannot audit the result; its verifiers decide");
            } else {
                info!(task = ?task_id, "verifiers disagree and the manager cannot check the result; fresh verifiers decide");
            }
            self.engine_defer(EngineEvent::Arbitrated {
                task: task_id,
                outcome: None,
            });
            return;
        }
        if audit {
            debug!(task = ?task_id, "the manager audits a result of a worker on probation");
        } else {
            info!(task = ?task_id, "verifiers disagree; the manager checks the result itself");
        }
    }

    /// Starts the manager's check of `task`'s accepted result, recalled
    /// because `worker` was caught on another (see
    /// [`inferix_manager::recall`]); skipped when the task no longer holds
    /// that worker's accepted result.
    pub(super) async fn recall(&mut self, task_id: TaskId, worker: NodeId) {
        let current = match self.store.task(task_id).await {
            Ok(Some(t))
                if t.status == TaskStatus::Accepted
                    && t.result.as_ref().is_some_and(|r| r.worker == worker) =>
            {
                Some(t)
            }
            _ => None,
        };
        let started = match current {
            Some(task) => self.start_own_check(task, OwnCheck::Recall).await,
            None => false,
        };
        if !started {
            debug!(task = ?task_id, ?worker, "recall not checked");
            self.engine_defer(EngineEvent::Recalled {
                task: task_id,
                outcome: None,
            });
            return;
        }
        info!(task = ?task_id, ?worker, "worker caught; the manager checks a result of it that passed");
    }

    /// Checks `task`'s result as a verifier would, with the manager's own
    /// renderer, off the loop; false when the manager has no renderer or
    /// the task has no result.
    async fn start_own_check(&mut self, task: Task, kind: OwnCheck) -> bool {
        let prepared = match self.prober.clone() {
            Some(prober) => self.arbitration_offer(task).await.map(|a| (prober, a)),
            None => None,
        };
        let Some((prober, offer)) = prepared else {
            return false;
        };
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
                .send(Input::OwnCheck {
                    task: offer.task,
                    kind,
                    outcome,
                })
                .await;
        });
        true
    }

    /// What a verifier of `task`'s round is sent, for the manager's own
    /// check.
    async fn arbitration_offer(&mut self, task: Task) -> Option<VerificationAssignment> {
        let (job, plan) = self.verification_plan(&task).await?;
        let result = task.result?;
        Some(self.offer_of(
            0,
            task.id,
            result.frames.clone(),
            &job,
            plan.as_ref(),
            &result,
        ))
    }

    /// The manager's check came back: the engine settles the round, or
    /// the recall.
    pub(super) async fn on_own_check(
        &mut self,
        task: TaskId,
        kind: OwnCheck,
        outcome: Option<(bool, Vec<String>)>,
    ) {
        let event = match kind {
            OwnCheck::Dispute => EngineEvent::Arbitrated { task, outcome },
            OwnCheck::Recall => EngineEvent::Recalled { task, outcome },
        };
        self.engine_event(event).await;
    }
}

/// Why the manager checks a result itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnCheck {
    /// Its round's verifiers disagree.
    Dispute,
    /// It passed, and its worker was caught on another result since.
    Recall,
}
