//! The manager's rules as a synchronous engine.
//!
//! The engine owns the manager's in-memory decisions and nothing else: it
//! holds no socket, no store handle and no runtime. A driver (the manager
//! node) feeds it [`Event`]s — peer messages, timer ticks — together with
//! the current time, and carries out the [`Command`]s it answers with
//! (send an offer, settle a round in the store, pay verifiers). Keeping the
//! rules free of I/O lets every rule be tested by driving events and reading
//! commands, with no sleeps and no network, and lets a simulation run the
//! very rules the node runs.
//!
//! One file per concern: [`verifiers`] is the registry of connected
//! verifiers and their load, [`rounds`] the verification rounds,
//! [`claims`] bad-result claims, [`admission`] who may join, [`economy`]
//! the ledger's transactions, [`workers`] the connected workers and which
//! are idle, [`estimates`] finish-time estimates for dispatch, [`dispatch`]
//! which idle worker leases which queued task, [`results`] whether a
//! signed result answers its lease, [`housekeeping`] the periodic checks
//! (silent peers, hung workers, expired leases, lost verifications),
//! [`requests`] the rules of clients' requests (status, pause, cancel),
//! [`forced`] the known-bad results that keep verifiers honest,
//! [`accounts`] which account a client is and what it may see and submit,
//! [`speed`] how fast workers really are, [`operators`] the accounts that run nodes: their admission, stake,
//! standing and how hard their results are checked, [`recall`] the second
//! look at a caught worker's passed results, [`audits`] the manager's own
//! check of a worker on probation before its result is paid.
//! Accounts, admission, economy, results, housekeeping and requests are rule
//! functions the driver calls with the records it read; rounds keep state
//! and answer events.

pub mod accounts;
pub mod admission;
pub mod audits;
pub mod claims;
pub mod dispatch;
mod draw;
pub mod economy;
pub mod estimates;
pub mod forced;
pub mod housekeeping;
pub mod operators;
pub mod recall;
pub mod requests;
pub mod results;
pub mod rounds;
pub mod speed;
pub mod verifiers;
pub mod workers;

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;

pub use audits::AuditConfig;
pub use claims::{ClaimCheck, ClaimVerdict};
pub use forced::ForcedErrorConfig;
pub use recall::{RecallConfig, Recalled};
pub use rounds::{RoundConfig, Settlement};
pub use verifiers::{VerifierPool, VerifierStanding};

/// Something that happened, as the engine needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A verifier completed its hello.
    VerifierJoined {
        /// The verifier.
        verifier: NodeId,
        /// Scene formats it re-renders (crop challenges, claims).
        formats: Vec<SceneFormat>,
        /// Who runs it and its reputation so far.
        standing: verifiers::VerifierStanding,
    },
    /// A verifier's connection ended (closed, timed out, replaced).
    VerifierLeft {
        /// The verifier.
        verifier: NodeId,
    },
    /// A task's result was written as `Verifying`: its round opens.
    RoundOpened {
        /// The task whose result is verified.
        task: TaskId,
        /// The worker that rendered it (never one of its verifiers).
        worker: NodeId,
        /// The account that runs the worker, when it joined with one:
        /// none of that account's verifiers sits on the round.
        operator: Option<String>,
        /// The scene's format when its checks include re-renders (crop
        /// challenges, clean pixels), which only a verifier that renders
        /// that format can answer; `None` when the frames alone are
        /// checked.
        needs: Option<SceneFormat>,
        /// Verifiers that must vote on it, when the worker's history asks
        /// for more than the network's quorum (a worker on probation);
        /// `None` for the quorum.
        quorum: Option<usize>,
    },
    /// The manager's own check of a result whose verifiers disagreed
    /// ([`Command::Arbitrate`]): `Some((passed, reasons))` decides the
    /// round; `None` (the manager cannot re-render the scene, or its check
    /// was inconclusive) sends the round to freshly drawn verifiers.
    Arbitrated {
        /// The round's task.
        task: TaskId,
        /// The manager's verdict, when it reached one.
        outcome: Option<(bool, Vec<String>)>,
    },
    /// The manager's own check of a recalled result ([`Command::Recall`]):
    /// `Some((false, reasons))` finds it bad; `Some((true, _))` or `None`
    /// (no renderer for the scene, or inconclusive) leaves it accepted.
    Recalled {
        /// The recalled task.
        task: TaskId,
        /// The manager's verdict, when it reached one.
        outcome: Option<(bool, Vec<String>)>,
    },
    /// A result that passed its round before the manager restarted (read
    /// back from the store): remembered for a recall as if it had just
    /// passed, from `at` on.
    Passed {
        /// The task.
        task: TaskId,
        /// The worker that rendered it.
        worker: NodeId,
        /// The verifiers that passed it.
        passers: Vec<NodeId>,
        /// When it was accepted (ms).
        at: u64,
    },
    /// The driver could not go on with a round (its task vanished or
    /// changed hands): the round is forgotten and its seats freed.
    RoundAbandoned {
        /// The task.
        task: TaskId,
    },
    /// A verifier answered a verification offer.
    VerdictReceived {
        /// Who answered (the connection's node, not a claim of the message).
        verifier: NodeId,
        /// The answer.
        verdict: Verdict,
    },
    /// A user's claim on delivered frames, split by
    /// [`claims::claim_checks`]: each check goes to a renderer, or the
    /// claim is refused with [`Command::ClaimRefused`].
    ClaimFiled {
        /// One check per claimed task (all of one claim).
        checks: Vec<ClaimCheck>,
    },
    /// Claims on record that were being checked when the manager stopped:
    /// each check goes to a renderer, or waits for one (never refused: its
    /// bond is held).
    ClaimResumed {
        /// The checks, one per claim and task.
        checks: Vec<ClaimCheck>,
    },
    /// The driver could not send a claim check's offer (its task is gone):
    /// it is forgotten.
    ClaimCheckDropped {
        /// The offer's id.
        verification: u64,
    },
    /// The driver could not build the known-bad result it was asked for
    /// (no result to build it from yet): the offer is forgotten.
    ForcedErrorDropped {
        /// The offer's id.
        verification: u64,
    },
    /// Time passed: deadlines are checked.
    Tick,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send `task`'s result to `verifier` to check, under id
    /// `verification`.
    OfferVerification {
        /// The verifier.
        verifier: NodeId,
        /// Id its verdict must quote.
        verification: u64,
        /// The task whose result is checked.
        task: TaskId,
    },
    /// A round is decided: write the task as accepted or rejected, pay
    /// the verifiers that agreed.
    SettleRound(Settlement),
    /// The verifiers of `task`'s round disagree, or (`audit`) they all
    /// passed the result of a worker on probation: check the result the
    /// way a verifier would, with the manager's own renderer, and answer
    /// with [`Event::Arbitrated`]. The manager is the one party every rule
    /// trusts, so the side it finds wrong is the side that lied.
    Arbitrate {
        /// The task whose result is checked.
        task: TaskId,
        /// The worker that rendered it.
        worker: NodeId,
        /// An audit of a unanimous pass (see [`audits`]),
        /// not a dispute.
        audit: bool,
    },
    /// `worker` was caught with a bad result, and `task`, which it rendered,
    /// passed its round within the recall window: check that result the
    /// way [`Command::Arbitrate`] does (a re-render by the manager) and
    /// answer with [`Event::Recalled`]. Skipped when the task is no longer
    /// accepted with that worker's result.
    Recall {
        /// The task whose passed result is checked again.
        task: TaskId,
        /// The worker that rendered it.
        worker: NodeId,
    },
    /// A recalled result was bad: refund what it was paid to the job's
    /// payer from the worker, record the frames as claimed and upheld, and
    /// slash and disconnect the verifiers that passed it (the engine has
    /// banned them).
    SettleRecall(Recalled),
    /// Send a claim check to `verifier` to re-render, under id
    /// `verification`.
    OfferClaimCheck {
        /// The verifier (one that renders).
        verifier: NodeId,
        /// Id its verdict must quote.
        verification: u64,
        /// What to re-render.
        check: ClaimCheck,
    },
    /// A claim check is decided: record it in the ledger, refund and
    /// slash if upheld, pay the verifier.
    SettleClaim(ClaimVerdict),
    /// A claim cannot be checked now; nothing of it was sent.
    ClaimRefused {
        /// The claim.
        claim: u64,
        /// Why.
        reason: String,
    },
    /// A claim check waits for a verifier that renders.
    ClaimWaiting {
        /// The claim.
        claim: u64,
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// A verifier answered that it could not check a result: its seat is
    /// drawn again. For logs and metrics.
    VerifierInconclusive {
        /// The verifier.
        verifier: NodeId,
        /// The round's task.
        task: TaskId,
        /// Its reason.
        reason: String,
        /// The format it lost by failing to render it too often in a row.
        revoked: Option<SceneFormat>,
    },
    /// Send `verifier` a known-bad result under id `verification`, built
    /// so that it looks like any other offer (see [`forced`]).
    OfferForcedError {
        /// The verifier.
        verifier: NodeId,
        /// Id its verdict must quote.
        verification: u64,
    },
    /// `verifier` passed a known-bad result: it is seated on nothing any
    /// more; forfeit its earnings and disconnect it.
    VerifierCaught {
        /// The verifier.
        verifier: NodeId,
        /// The known-bad offer it passed.
        verification: u64,
    },
    /// `verifier` failed a known-bad result, as it should: pay it a bounty.
    ForcedErrorCaught {
        /// The verifier.
        verifier: NodeId,
        /// The known-bad offer it failed.
        verification: u64,
    },
    /// A round cannot go on for now (`Some(reason)`), or can again
    /// (`None`): for logs and the job's status.
    RoundWaiting {
        /// The task.
        task: TaskId,
        /// Why it waits, or `None` once it no longer does.
        reason: Option<String>,
    },
}

/// The manager's rules. See the crate documentation.
#[derive(Debug)]
pub struct Engine {
    verifiers: VerifierPool,
    rounds: rounds::Rounds,
    claims: claims::Claims,
    claim_timeout_ms: u64,
    claim_quorum: usize,
    claim_penalty: f64,
    draw_key: [u8; 32],
    forced: forced::ForcedErrors,
    recalls: recall::Recalls,
    next_verification: u64,
}

impl Engine {
    /// An engine with no peers and no rounds.
    pub fn new(rounds: RoundConfig) -> Self {
        Self {
            verifiers: VerifierPool::default(),
            claim_timeout_ms: rounds.vote_timeout_ms,
            claim_quorum: rounds.quorum,
            claim_penalty: rounds.reputation_penalty,
            draw_key: rounds.draw_key,
            forced: forced::ForcedErrors::new(
                rounds.forced_errors.clone(),
                rounds.draw_key,
                rounds.vote_timeout_ms,
            ),
            claims: claims::Claims::default(),
            recalls: recall::Recalls::new(rounds.recall.clone()),
            rounds: rounds::Rounds::new(rounds),
            next_verification: 1,
        }
    }

    /// Handles one event at time `now` (ms) and returns what to do, in
    /// order.
    pub fn handle(&mut self, event: Event, now: u64) -> Vec<Command> {
        let mut out = Vec::new();
        let mut forced = forced::ForcedCtx {
            verifiers: &mut self.verifiers,
            next_id: &mut self.next_verification,
            now,
        };
        match &event {
            Event::VerdictReceived { verifier, verdict }
                if self.forced.knows(verdict.verification) =>
            {
                self.forced
                    .verdict(&mut forced, *verifier, verdict, &mut out);
                return out;
            }
            Event::ForcedErrorDropped { verification } => {
                self.forced.dropped(&mut forced, *verification);
                return out;
            }
            Event::Recalled { task, outcome } => {
                self.recalls
                    .checked(&mut self.verifiers, *task, outcome.clone(), &mut out);
                return out;
            }
            Event::Passed {
                task,
                worker,
                passers,
                at,
            } => {
                self.recalls
                    .remember(*worker, *task, passers.clone(), *at, now);
                return out;
            }
            Event::Tick => {
                self.forced.tick(&mut forced);
                self.recalls.prune(now);
            }
            _ => {}
        }
        // Claim checks first: they share the verifiers and the verdicts.
        let mut claims = claims::ClaimCtx {
            verifiers: &mut self.verifiers,
            next_id: &mut self.next_verification,
            now,
            timeout_ms: self.claim_timeout_ms,
            draw_key: &self.draw_key,
            quorum: self.claim_quorum,
            penalty: self.claim_penalty,
            out: &mut out,
        };
        let for_rounds = match &event {
            Event::ClaimFiled { checks } => {
                self.claims.file(&mut claims, checks.clone());
                false
            }
            Event::ClaimResumed { checks } => {
                self.claims.resume(&mut claims, checks.clone());
                false
            }
            Event::ClaimCheckDropped { verification } => {
                self.claims.drop_check(&mut claims, *verification);
                false
            }
            Event::VerdictReceived { verifier, verdict } => {
                !self.claims.verdict(&mut claims, *verifier, verdict)
            }
            Event::VerifierLeft { verifier } => {
                let known = claims.verifiers.leave(*verifier);
                // Its checks are redrawn at once.
                self.claims.tick(&mut claims);
                known
            }
            Event::Tick => {
                self.claims.tick(&mut claims);
                true
            }
            Event::VerifierJoined { .. }
            | Event::RoundOpened { .. }
            | Event::Arbitrated { .. }
            | Event::RoundAbandoned { .. }
            | Event::Recalled { .. }
            | Event::Passed { .. }
            | Event::ForcedErrorDropped { .. } => true,
        };
        if !for_rounds {
            self.after_offers(now, &mut out);
            return out;
        }
        let mut ctx = rounds::Ctx {
            verifiers: &mut self.verifiers,
            next_id: &mut self.next_verification,
            now,
            out: &mut out,
        };
        match event {
            Event::VerifierJoined {
                verifier,
                formats,
                standing,
            } => {
                ctx.verifiers.join_as(verifier, formats, standing);
                self.rounds.fill_all(&mut ctx);
            }
            Event::VerifierLeft { verifier } => self.rounds.verifier_left(&mut ctx, verifier),
            Event::RoundOpened {
                task,
                worker,
                operator,
                needs,
                quorum,
            } => self
                .rounds
                .open(&mut ctx, task, worker, operator, needs, quorum),
            Event::Arbitrated { task, outcome } => self.rounds.arbitrated(&mut ctx, task, outcome),
            Event::RoundAbandoned { task } => self.rounds.abandon(&mut ctx, task),
            Event::VerdictReceived { verifier, verdict } => {
                self.rounds.verdict(&mut ctx, verifier, verdict);
            }
            Event::Tick => self.rounds.tick(&mut ctx),
            Event::ClaimFiled { .. }
            | Event::ClaimResumed { .. }
            | Event::ClaimCheckDropped { .. }
            | Event::Recalled { .. }
            | Event::Passed { .. }
            | Event::ForcedErrorDropped { .. } => {}
        }
        self.recalls.observe(&mut out, now);
        self.after_offers(now, &mut out);
        out
    }

    /// Slips known-bad results in beside the seats just given.
    fn after_offers(&mut self, now: u64, out: &mut Vec<Command>) {
        let mut forced = forced::ForcedCtx {
            verifiers: &mut self.verifiers,
            next_id: &mut self.next_verification,
            now,
        };
        self.forced.after_offers(&mut forced, out);
    }

    /// The connected verifiers.
    pub fn verifiers(&self) -> &VerifierPool {
        &self.verifiers
    }

    /// The connected verifiers, for drivers that keep offers of their own
    /// outside the engine and count their load here too.
    pub fn verifiers_mut(&mut self) -> &mut VerifierPool {
        &mut self.verifiers
    }

    /// A fresh verification id, unique among this engine's offers
    /// (rounds and claims share the numbering so a verdict names one).
    pub fn next_verification_id(&mut self) -> u64 {
        let id = self.next_verification;
        self.next_verification += 1;
        id
    }

    /// Whether `verification` is an offer the engine waits for (a round's
    /// vote or a claim check).
    pub fn is_awaited_verification(&self, verification: u64) -> bool {
        self.rounds.knows(verification)
            || self.claims.knows(verification)
            || self.forced.knows(verification)
    }

    /// Whether a round of `task` is open.
    pub fn has_round(&self, task: TaskId) -> bool {
        self.rounds.contains(task)
    }

    /// Open rounds.
    pub fn open_rounds(&self) -> usize {
        self.rounds.len()
    }

    /// Passed results remembered for a recall, over all workers.
    pub fn recall_memory(&self) -> usize {
        self.recalls.remembered()
    }
}
