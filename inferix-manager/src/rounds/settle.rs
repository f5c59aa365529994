//! The end of a round: the settlement, and the audits and waiting reasons
//! that hold it back.

use super::*;

impl Rounds {
    /// Starts waiting audits while there is room; a waiting audit whose
    /// round ended is dropped.
    pub(super) fn start_queued_audits(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(task) = self.audits.next() {
            match self.rounds.get_mut(&task) {
                Some(round) if round.arbitration == Arbitration::AuditQueued => {
                    set_waiting(ctx, task, round, None);
                    start_audit(ctx, task, round);
                }
                _ => self.audits.finished(task),
            }
        }
    }

    /// Ends `task`'s round with `passed`: the voters that agree are paid,
    /// the others lose reputation (and, in the driver, stake).
    /// `arbitrated` says the manager's own check decided it.
    pub(super) fn settle(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: TaskId,
        passed: bool,
        arbiter: Vec<String>,
        arbitrated: bool,
    ) {
        let Some(round) = self.rounds.remove(&task) else {
            return;
        };
        self.forget_open_votes(ctx, &round);
        let (mut agreeing, mut dissenting, mut reasons) = (Vec::new(), Vec::new(), arbiter);
        for (verifier, vote) in round.votes {
            let Some((p, why)) = vote.verdict else {
                continue;
            };
            if p == passed {
                agreeing.push(verifier);
                reasons.extend(why);
            } else {
                ctx.verifiers
                    .penalise(verifier, self.cfg.reputation_penalty);
                dissenting.push(verifier);
            }
        }
        ctx.out.push(Command::SettleRound(Settlement {
            task,
            worker: round.worker,
            passed,
            reasons,
            agreeing,
            dissenting,
            arbitrated,
        }));
    }

    /// Stops waiting for the unanswered offers of a round that ended.
    pub(super) fn forget_open_votes(&mut self, ctx: &mut Ctx<'_>, round: &Round) {
        for (verifier, vote) in &round.votes {
            if vote.verdict.is_none() && self.ids.remove(&vote.verification).is_some() {
                ctx.verifiers.release(*verifier);
            }
        }
    }
}

/// Asks the manager to audit `task`'s unanimous pass.
pub(super) fn start_audit(ctx: &mut Ctx<'_>, task: TaskId, round: &mut Round) {
    round.arbitration = Arbitration::Audit;
    ctx.out.push(Command::Arbitrate {
        task,
        worker: round.worker,
        audit: true,
    });
}

pub(super) fn set_waiting(ctx: &mut Ctx<'_>, task: TaskId, round: &mut Round, why: Option<String>) {
    if round.waiting != why {
        round.waiting.clone_from(&why);
        ctx.out.push(Command::RoundWaiting { task, reason: why });
    }
}
