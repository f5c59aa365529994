//! Forced errors: building the known-bad results the engine asks for, and
//! the ledger side of catching a verifier.
//!
//! A known-bad result is an accepted task's own lease (its frame numbers,
//! watermark rectangles and crop challenges) offered with the frames of
//! another accepted task of the same job. Every hash in it is consistent,
//! so it is an ordinary offer to the verifier; but the frames carry the
//! other lease's watermark patches, not this one's, and their pixels are
//! not what this lease renders to, so any verifier that checks fails it.

use super::*;

/// Accepted tasks remembered as material for known-bad results.
const REMEMBERED: usize = 64;

impl State {
    /// Remembers a task just accepted, with the verifiers that voted on
    /// it (they have seen its frames).
    pub(super) fn remember_accepted(&mut self, task: TaskId, voters: Vec<NodeId>) {
        if self.recently_accepted.len() >= REMEMBERED {
            self.recently_accepted.pop_front();
        }
        self.recently_accepted.push_back((task, voters));
    }

    /// Sends `verifier` a known-bad result as verification `vid`; false
    /// when none can be built (no two accepted watermarked tasks of one
    /// job yet) or the verifier is gone.
    pub(super) async fn offer_forced_error(&mut self, verifier: NodeId, vid: u64) -> bool {
        let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) else {
            return false;
        };
        let Some(offer) = self.known_bad(verifier, vid).await else {
            return false;
        };
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        true
    }

    /// A known-bad offer for `verifier`: the newest remembered task whose
    /// job has another remembered task with frames of the same size and
    /// other pixels, neither of which `verifier` voted on (it has not seen
    /// their frames, so it cannot tell the offer from a fresh result).
    async fn known_bad(&mut self, verifier: NodeId, vid: u64) -> Option<VerificationAssignment> {
        let ids: Vec<TaskId> = self
            .recently_accepted
            .iter()
            .rev()
            .filter(|(_, voters)| !voters.contains(&verifier))
            .map(|(t, _)| *t)
            .collect();
        for (i, own) in ids.iter().enumerate() {
            let Some(donor) = ids[i + 1..].iter().find(|d| d.job == own.job) else {
                continue;
            };
            let (Ok(Some(own)), Ok(Some(donor))) =
                (self.store.task(*own).await, self.store.task(*donor).await)
            else {
                continue;
            };
            let accepted = |t: &Task| t.status == TaskStatus::Accepted;
            if !accepted(&own) || !accepted(&donor) {
                continue;
            }
            let Some(offer) = self.relabelled(vid, &own, &donor).await else {
                continue;
            };
            return Some(offer);
        }
        None
    }

    /// `own`'s verification offer carrying `donor`'s frames, when that is
    /// surely bad: `own` was watermarked, and every frame differs.
    async fn relabelled(
        &mut self,
        vid: u64,
        own: &Task,
        donor: &Task,
    ) -> Option<VerificationAssignment> {
        let (result, theirs) = (own.result.as_ref()?, donor.result.as_ref()?);
        let (job, plan) = self.verification_plan(own).await?;
        let plan = plan?;
        if plan.watermark.is_empty() || theirs.frames.is_empty() {
            return None;
        }
        let mut frames = Vec::with_capacity(result.frames.len());
        for (i, f) in result.frames.iter().enumerate() {
            let d = &theirs.frames[i % theirs.frames.len()];
            if d.pixel_hash == f.pixel_hash || (d.width, d.height) != (f.width, f.height) {
                return None;
            }
            frames.push(inferix_core::task::FrameOutput {
                frame: f.frame,
                ..d.clone()
            });
        }
        Some(self.offer_of(vid, own.id, frames, &job, Some(&plan), result))
    }

    /// `verifier` passed a known-bad result: its earnings go to the penalty
    /// pool and it is disconnected (the engine seats it on nothing again).
    pub(super) async fn verifier_caught(&mut self, verifier: NodeId, vid: u64) {
        warn!(
            ?verifier,
            verification = vid,
            "verifier passed a known-bad result; removed"
        );
        self.metrics.caught_verifiers.inc();
        let earned = self
            .store
            .balance(&Account::Verifier(verifier))
            .await
            .unwrap_or(0);
        if let Some(tx) = economy::forfeit_earnings(verifier, earned, self.now()) {
            if let Err(e) = self.store.append_transaction(&tx).await {
                warn!(?verifier, error = %e, "cannot record the forfeit");
            }
        }
        let about = format!("known-bad offer {vid}");
        let operator = self.operator_of(verifier);
        self.slash_verifier(verifier, &about, "passed a known-bad result")
            .await;
        if let Some(name) = operator {
            self.ban_operator(
                &name,
                &format!("its verifier {verifier} passed a known-bad result"),
            )
            .await;
        }
        if let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) {
            self.drop_peer(conn, "passed a known-bad result").await;
        }
    }

    /// `verifier` failed a known-bad result: a bounty from the penalty pool.
    pub(super) async fn pay_bounty(&mut self, verifier: NodeId, vid: u64) {
        let Ok(pool) = self.store.balance(&Account::PenaltyPool).await else {
            return;
        };
        let bounty = economy::forced_error_bounty(&self.economy(), verifier, vid, pool, self.now());
        if let Some(tx) = bounty {
            if let Err(e) = self.store.append_transaction(&tx).await {
                warn!(?verifier, error = %e, "cannot record a bounty");
            }
        }
    }
}
