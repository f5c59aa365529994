//! Bad-result claims: which frames a claim may name, who re-renders them,
//! and what happens when that verifier is late or leaves.
//!
//! A user may claim that frames delivered within the confirmation window
//! are bad, once per frame. Each claimed task's frames go to one verifier
//! that renders the scene's format (never the worker that rendered them),
//! drawn by the same keyed, reputation-weighted draw as round seats (so
//! neither the worker nor a verifier that answers fast or has a low id can
//! steer it), which redraws them whole; its
//! verdict decides the claim ([`Command::SettleClaim`]). A check whose
//! verifier misses the deadline or disconnects goes to another renderer;
//! when none is connected it waits and is tried again at every tick. A
//! verifier that answers inconclusive decides nothing: the check goes to
//! another renderer of the scene's format.

use std::collections::{BTreeMap, HashMap};

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::protocol::{ErrorCode, Verdict};
use inferix_core::renderer::SceneFormat;
use inferix_core::task::{Task, TaskStatus};

use crate::verifiers::{independent, VerifierPool};
use crate::Command;

/// The re-render of the claimed frames of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCheck {
    /// The claim it belongs to.
    pub claim: u64,
    /// The task whose frames are claimed.
    pub task: TaskId,
    /// The claimed frames of that task.
    pub frames: Vec<u32>,
    /// The worker that rendered them.
    pub worker: NodeId,
    /// The account that ran the worker, when it had one: none of its
    /// verifiers redraws the frames.
    pub operator: Option<String>,
    /// What the user says is wrong.
    pub reason: String,
    /// The scene's format: only its renderers can redraw the frames.
    pub format: SceneFormat,
}

/// A claim check's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimVerdict {
    /// The check.
    pub check: ClaimCheck,
    /// The verifier that re-rendered the frames.
    pub verifier: NodeId,
    /// Whether the claim holds (the frames differ from the re-render).
    pub upheld: bool,
    /// The verifier's reasons.
    pub reasons: Vec<String>,
}

/// Splits a claim on frames of a job (whose tasks are `tasks`, whose scene
/// is of `format`) into one check per task, refusing frames that are not
/// the job's, not accepted, accepted longer than `window_ms` ago, or
/// claimed before (a frame is claimed once: a claim repeated until some
/// verifier errs would otherwise refund the same frames again and again).
pub fn claim_checks(
    claim: u64,
    format: SceneFormat,
    tasks: &[Task],
    frames: &[u32],
    reason: &str,
    now: u64,
    window_ms: u64,
) -> Result<Vec<ClaimCheck>, (ErrorCode, String)> {
    let invalid = |m: String| Err((ErrorCode::InvalidRequest, m));
    if frames.is_empty() {
        return invalid("a claim names at least one frame".into());
    }
    let mut by_task: BTreeMap<TaskId, (&Task, Vec<u32>)> = BTreeMap::new();
    for &f in frames {
        let Some(t) = tasks.iter().find(|t| t.frames.contains(&f)) else {
            return invalid(format!("frame {f} is not part of the job"));
        };
        let Some(accepted) = t
            .entered(TaskStatus::Accepted)
            .filter(|_| t.status == TaskStatus::Accepted)
        else {
            return invalid(format!(
                "frame {f} has not been accepted; only delivered frames can be claimed"
            ));
        };
        if accepted + window_ms < now {
            return invalid(format!(
                "the confirmation window of frame {f} closed {} s after it was accepted",
                window_ms / 1000
            ));
        }
        if let Some(c) = t.claims.iter().find(|c| c.frames.contains(&f)) {
            return invalid(format!(
                "frame {f} was claimed already ({}); a frame is claimed once",
                match c.upheld {
                    Some(true) => "upheld",
                    Some(false) => "dismissed",
                    None => "still being checked",
                }
            ));
        }
        let entry = by_task.entry(t.id).or_insert_with(|| (t, Vec::new()));
        if !entry.1.contains(&f) {
            entry.1.push(f);
        }
    }
    by_task
        .into_iter()
        .map(|(task, (t, frames))| {
            let Some(result) = &t.result else {
                return Err((
                    ErrorCode::Internal,
                    format!("accepted task {task} has no result"),
                ));
            };
            Ok(ClaimCheck {
                claim,
                task,
                frames,
                worker: result.worker,
                operator: t.operator.clone(),
                reason: reason.to_string(),
                format,
            })
        })
        .collect()
}

#[derive(Debug)]
struct Open {
    check: ClaimCheck,
    verifier: NodeId,
    deadline: u64,
}

/// Checks in flight and checks waiting for a renderer.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    open: HashMap<u64, Open>,
    /// Checks no renderer could take yet, with the verifier they left.
    waiting: Vec<(ClaimCheck, Option<NodeId>)>,
}

/// What a claim handler may touch besides the claims.
pub(crate) struct ClaimCtx<'a> {
    pub(crate) verifiers: &'a mut VerifierPool,
    pub(crate) next_id: &'a mut u64,
    pub(crate) now: u64,
    pub(crate) timeout_ms: u64,
    pub(crate) draw_key: &'a [u8; 32],
    pub(crate) out: &'a mut Vec<Command>,
}

impl Claims {
    /// Sends every check of a claim to a renderer, or refuses the claim
    /// whole when some check has none (nothing is sent then).
    pub(crate) fn file(&mut self, ctx: &mut ClaimCtx<'_>, checks: Vec<ClaimCheck>) {
        let Some(first) = checks.first() else {
            return;
        };
        if checks
            .iter()
            .any(|c| !can_check(ctx.verifiers, c.format, c.worker, &c.operator))
        {
            ctx.out.push(Command::ClaimRefused {
                claim: first.claim,
                reason: format!(
                    "no verifier able to re-render {} frames is connected",
                    first.format
                ),
            });
            return;
        }
        for check in checks {
            self.dispatch(ctx, check, None, true);
        }
    }

    /// Sends checks that must not be refused to renderers, or has them wait.
    pub(crate) fn resume(&mut self, ctx: &mut ClaimCtx<'_>, checks: Vec<ClaimCheck>) {
        for check in checks {
            self.dispatch(ctx, check, None, true);
        }
    }

    /// Routes a verdict that answers a claim check; false when it does not.
    pub(crate) fn verdict(
        &mut self,
        ctx: &mut ClaimCtx<'_>,
        verifier: NodeId,
        v: &Verdict,
    ) -> bool {
        let ours = self
            .open
            .get(&v.verification)
            .is_some_and(|o| o.verifier == verifier && o.check.task == v.task);
        if !ours {
            return false;
        }
        let Some(open) = self.open.remove(&v.verification) else {
            return false;
        };
        ctx.verifiers.release(verifier);
        let conclusive = v.inconclusive.is_none();
        ctx.verifiers
            .record_check(verifier, open.check.format, conclusive);
        if !conclusive {
            // Could not redraw the frames: that says nothing about them.
            self.dispatch(ctx, open.check, Some(verifier), true);
            return true;
        }
        ctx.out.push(Command::SettleClaim(ClaimVerdict {
            check: open.check,
            verifier,
            upheld: !v.passed,
            reasons: v.reasons.clone(),
        }));
        true
    }

    /// Forgets an open check the driver could not send.
    pub(crate) fn drop_check(&mut self, ctx: &mut ClaimCtx<'_>, verification: u64) {
        if let Some(o) = self.open.remove(&verification) {
            ctx.verifiers.release(o.verifier);
        }
    }

    /// Whether `verification` is an open claim check.
    pub(crate) fn knows(&self, verification: u64) -> bool {
        self.open.contains_key(&verification)
    }

    /// Redraws checks whose verifier is late or gone, and waiting ones.
    pub(crate) fn tick(&mut self, ctx: &mut ClaimCtx<'_>) {
        let late: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.deadline <= ctx.now || !ctx.verifiers.contains(&o.verifier))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(o) = self.open.remove(&id) {
                ctx.verifiers.release(o.verifier);
                self.dispatch(ctx, o.check, Some(o.verifier), true);
            }
        }
        // Already reported when they began to wait.
        for (check, not) in std::mem::take(&mut self.waiting) {
            self.dispatch(ctx, check, not, false);
        }
    }

    /// Sends `check` to the least busy renderer other than its worker and
    /// `not` (the verifier that failed it); without one, it waits (and
    /// says so when `report`).
    fn dispatch(
        &mut self,
        ctx: &mut ClaimCtx<'_>,
        check: ClaimCheck,
        not: Option<NodeId>,
        report: bool,
    ) {
        let exclude: Vec<NodeId> = std::iter::once(check.worker).chain(not).collect();
        let pick = drawn_renderer(ctx, &check, &exclude)
            // Asked again rather than never answered.
            .or_else(|| drawn_renderer(ctx, &check, &[check.worker]));
        let Some(verifier) = pick else {
            if !report {
                self.waiting.push((check, not));
                return;
            }
            ctx.out.push(Command::ClaimWaiting {
                claim: check.claim,
                task: check.task,
                reason: format!(
                    "no verifier able to re-render {} frames is connected",
                    check.format
                ),
            });
            self.waiting.push((check, not));
            return;
        };
        let verification = *ctx.next_id;
        *ctx.next_id += 1;
        ctx.verifiers.assign(verifier);
        ctx.out.push(Command::OfferClaimCheck {
            verifier,
            verification,
            check: check.clone(),
        });
        self.open.insert(
            verification,
            Open {
                check,
                verifier,
                deadline: ctx.now + ctx.timeout_ms,
            },
        );
    }
}

/// Whether a connected verifier could re-render frames of `format` that
/// `worker` rendered: the condition for taking a claim (and its bond).
pub fn can_check(
    verifiers: &VerifierPool,
    format: SceneFormat,
    worker: NodeId,
    operator: &Option<String>,
) -> bool {
    verifiers
        .iter()
        .any(|(id, v)| *id != worker && independent(&v.operator, operator) && may_redraw(v, format))
}

/// Whether `v` may redraw claimed frames of `format`: it renders them and
/// was not banned.
fn may_redraw(v: &crate::verifiers::VerifierInfo, format: SceneFormat) -> bool {
    v.renders(format) && v.reputation > 0.0
}

/// The renderer of `check`'s format, other than those in `not`, that wins
/// the keyed draw for this claim and task (see [`crate::rounds`]).
fn drawn_renderer(ctx: &ClaimCtx<'_>, check: &ClaimCheck, not: &[NodeId]) -> Option<NodeId> {
    // Seats of claims are numbered apart from those of rounds.
    let seat = (1usize << 40).wrapping_add(check.claim as usize);
    ctx.verifiers
        .iter()
        .filter(|(id, v)| {
            may_redraw(v, check.format)
                && independent(&v.operator, &check.operator)
                && !not.contains(id)
        })
        .map(|(id, v)| {
            (
                *id,
                crate::rounds::draw(ctx.draw_key, check.task, seat, *id, v.reputation),
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(id, _)| id)
}
