//! Bad-result claims: which frames a claim may name, who re-renders them,
//! and what happens when that verifier is late or leaves.
//!
//! A user may claim that frames delivered within the confirmation window
//! are bad, once per frame. Each claimed task's frames go to a panel of
//! `quorum` verifiers that render the scene's format (never the worker
//! that rendered them nor one of its account), each drawn by the same
//! keyed, reputation-weighted draw as round seats (so neither the worker
//! nor a verifier that answers fast or has a low id can steer it). Each
//! redraws the frames whole and votes; the majority decides the claim
//! ([`Command::SettleClaim`]), a tie asks one more renderer, and the
//! outvoted lose reputation, as in rounds. A renderer that misses the
//! deadline or disconnects is replaced by another; when none is connected
//! the panel waits and is filled again at every tick. A renderer that
//! answers inconclusive decides nothing: its seat goes to another
//! renderer of the scene's format.

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

/// A claim check's verdict: the majority of its renderers.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimVerdict {
    /// The check.
    pub check: ClaimCheck,
    /// The renderers whose vote is the outcome (they are paid).
    pub verifiers: Vec<NodeId>,
    /// The renderers outvoted (their reputation was lowered).
    pub dissenting: Vec<NodeId>,
    /// Whether the claim holds (the frames differ from the re-renders).
    pub upheld: bool,
    /// The agreeing renderers' reasons.
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
    panel: PanelKey,
    verifier: NodeId,
    deadline: u64,
}

/// A check's panel: its claim and task.
type PanelKey = (u64, TaskId);

/// The renderers deciding one check: each redraws the frames and votes.
#[derive(Debug)]
struct Panel {
    check: ClaimCheck,
    /// Votes the panel waits for before it decides.
    needed: usize,
    /// `(upheld, reasons)` of each renderer that answered.
    votes: BTreeMap<NodeId, (bool, Vec<String>)>,
    /// Renderers asked that are still to answer.
    asked: Vec<NodeId>,
    /// Renderers that could not answer (late, gone, inconclusive): asked
    /// again only when no other renderer is left.
    skipped: Vec<NodeId>,
    /// Whether it was reported as waiting for a renderer.
    reported: bool,
}

/// Checks in flight and checks waiting for a renderer.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    panels: BTreeMap<PanelKey, Panel>,
    open: HashMap<u64, Open>,
}

/// What a claim handler may touch besides the claims.
pub(crate) struct ClaimCtx<'a> {
    pub(crate) verifiers: &'a mut VerifierPool,
    pub(crate) next_id: &'a mut u64,
    pub(crate) now: u64,
    pub(crate) timeout_ms: u64,
    pub(crate) draw_key: &'a [u8; 32],
    /// Renderers whose votes decide a check (as a round's quorum).
    pub(crate) quorum: usize,
    /// Reputation multiplier for a renderer outvoted on a check.
    pub(crate) penalty: f64,
    pub(crate) out: &'a mut Vec<Command>,
}

impl Claims {
    /// Sends every check of a claim to its renderers, or refuses the claim
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
        self.resume(ctx, checks);
    }

    /// Sends checks that must not be refused to renderers, or has them wait.
    pub(crate) fn resume(&mut self, ctx: &mut ClaimCtx<'_>, checks: Vec<ClaimCheck>) {
        for check in checks {
            let key = (check.claim, check.task);
            self.panels.entry(key).or_insert_with(|| Panel {
                check,
                needed: ctx.quorum.max(1),
                votes: BTreeMap::new(),
                asked: Vec::new(),
                skipped: Vec::new(),
                reported: false,
            });
            self.fill(ctx, key);
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
            .is_some_and(|o| o.verifier == verifier && o.panel.1 == v.task);
        if !ours {
            return false;
        }
        let Some(open) = self.open.remove(&v.verification) else {
            return false;
        };
        ctx.verifiers.release(verifier);
        let Some(panel) = self.panels.get_mut(&open.panel) else {
            return true;
        };
        panel.asked.retain(|a| *a != verifier);
        let conclusive = v.inconclusive.is_none();
        ctx.verifiers
            .record_check(verifier, panel.check.format, conclusive);
        if conclusive {
            panel.votes.insert(verifier, (!v.passed, v.reasons.clone()));
        } else {
            // Could not redraw the frames: that says nothing about them.
            panel.skipped.push(verifier);
        }
        self.decide(ctx, open.panel);
        true
    }

    /// Forgets an open check the driver could not send, with its panel
    /// (its task is gone).
    pub(crate) fn drop_check(&mut self, ctx: &mut ClaimCtx<'_>, verification: u64) {
        if let Some(o) = self.open.remove(&verification) {
            ctx.verifiers.release(o.verifier);
            if self.panels.remove(&o.panel).is_some() {
                self.forget_asked(ctx, o.panel);
            }
        }
    }

    /// Whether `verification` is an open claim check.
    pub(crate) fn knows(&self, verification: u64) -> bool {
        self.open.contains_key(&verification)
    }

    /// Redraws the votes of renderers that are late or gone, and fills
    /// panels short of renderers.
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
                if let Some(panel) = self.panels.get_mut(&o.panel) {
                    panel.asked.retain(|a| *a != o.verifier);
                    panel.skipped.push(o.verifier);
                }
            }
        }
        let keys: Vec<PanelKey> = self.panels.keys().copied().collect();
        for key in keys {
            self.fill(ctx, key);
        }
    }

    /// Settles `key`'s check once every seat has voted and the votes are
    /// not tied (a tie asks one more renderer); otherwise asks for the
    /// votes still missing.
    fn decide(&mut self, ctx: &mut ClaimCtx<'_>, key: PanelKey) {
        let Some(panel) = self.panels.get_mut(&key) else {
            return;
        };
        if panel.votes.len() < panel.needed {
            self.fill(ctx, key);
            return;
        }
        let upheld = panel.votes.values().filter(|(u, _)| *u).count();
        let dismissed = panel.votes.len() - upheld;
        if upheld == dismissed {
            panel.needed += 1;
            self.fill(ctx, key);
            return;
        }
        let Some(panel) = self.panels.remove(&key) else {
            return;
        };
        self.forget_asked(ctx, key);
        let outcome = upheld > dismissed;
        let (agreeing, dissenting): (Vec<_>, Vec<_>) =
            panel.votes.iter().partition(|(_, (u, _))| *u == outcome);
        let mut reasons: Vec<String> = agreeing
            .iter()
            .flat_map(|(_, (_, r))| r.iter().cloned())
            .collect();
        reasons.dedup();
        let dissenting: Vec<NodeId> = dissenting.into_iter().map(|(id, _)| *id).collect();
        for v in &dissenting {
            ctx.verifiers.penalise(*v, ctx.penalty);
        }
        ctx.out.push(Command::SettleClaim(ClaimVerdict {
            check: panel.check,
            verifiers: agreeing.into_iter().map(|(id, _)| *id).collect(),
            dissenting,
            upheld: outcome,
            reasons,
        }));
    }

    /// Stops waiting for the renderers still asked on a settled or dropped
    /// panel: its open offers.
    fn forget_asked(&mut self, ctx: &mut ClaimCtx<'_>, key: PanelKey) {
        self.open.retain(|_, o| {
            let asked = o.panel == key;
            if asked {
                ctx.verifiers.release(o.verifier);
            }
            !asked
        });
    }

    /// Asks renderers for the votes `key`'s panel still misses: drawn
    /// among those that render its format, are not its worker nor of its
    /// worker's account, and have not voted or been asked on it; one that
    /// could not answer before only when nobody else is left. Without
    /// one, the panel waits (and says so once).
    fn fill(&mut self, ctx: &mut ClaimCtx<'_>, key: PanelKey) {
        loop {
            let Some(panel) = self.panels.get_mut(&key) else {
                return;
            };
            if panel.votes.len() + panel.asked.len() >= panel.needed {
                return;
            }
            let mut exclude: Vec<NodeId> = std::iter::once(panel.check.worker)
                .chain(panel.votes.keys().copied())
                .chain(panel.asked.iter().copied())
                .collect();
            let seat = panel.votes.len() + panel.asked.len() + panel.skipped.len();
            let fresh = {
                let mut not = exclude.clone();
                not.extend(panel.skipped.iter().copied());
                drawn_renderer(ctx, &panel.check, &not, seat)
            };
            // Asked again rather than never answered.
            let pick = fresh.or_else(|| {
                exclude.dedup();
                drawn_renderer(ctx, &panel.check, &exclude, seat)
            });
            let Some(verifier) = pick else {
                if !panel.reported {
                    panel.reported = true;
                    ctx.out.push(Command::ClaimWaiting {
                        claim: panel.check.claim,
                        task: panel.check.task,
                        reason: format!(
                            "needs re-render {} of {} and no other verifier able to \
                             re-render {} frames is connected",
                            panel.votes.len() + panel.asked.len() + 1,
                            panel.needed,
                            panel.check.format
                        ),
                    });
                }
                return;
            };
            panel.reported = false;
            panel.skipped.retain(|s| *s != verifier);
            panel.asked.push(verifier);
            let check = panel.check.clone();
            let verification = *ctx.next_id;
            *ctx.next_id += 1;
            ctx.verifiers.assign(verifier);
            ctx.out.push(Command::OfferClaimCheck {
                verifier,
                verification,
                check,
            });
            self.open.insert(
                verification,
                Open {
                    panel: key,
                    verifier,
                    deadline: ctx.now + ctx.timeout_ms,
                },
            );
        }
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
fn drawn_renderer(
    ctx: &ClaimCtx<'_>,
    check: &ClaimCheck,
    not: &[NodeId],
    seat: usize,
) -> Option<NodeId> {
    // Seats of claims are numbered apart from those of rounds.
    let seat = (1usize << 40)
        .wrapping_add((check.claim as usize) << 8)
        .wrapping_add(seat);
    let candidates = || {
        ctx.verifiers
            .iter()
            .filter(|(id, v)| {
                may_redraw(v, check.format)
                    && independent(&v.operator, &check.operator)
                    && !not.contains(id)
            })
            .map(|(id, v)| (*id, v.reputation))
    };
    crate::draw::weighted_pick(ctx.draw_key, check.task, seat, candidates)
}
