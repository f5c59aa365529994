//! Verification rounds: who checks a result, and when a result is decided.
//!
//! A round opens when a task's result is written as `Verifying`. It asks
//! `quorum` verifiers (never the worker that rendered it), drawn among
//! those that can answer its checks: a round with re-renders (crop
//! challenges) seats only verifiers that render the scene's format, and
//! waits, saying so, while none is connected. Its result
//! is decided by the votes cast once every seat has voted. Unanimous votes
//! decide it. Votes that disagree mean one side lied (the checks are
//! deterministic), so the round goes to the one party every rule trusts:
//! the manager checks the result itself ([`Command::Arbitrate`]), and the
//! side it finds wrong is outvoted whatever its size. Colluding verifiers
//! then pass a bad result only when they hold every seat of its round,
//! and a worker on probation (its account's first results) has more
//! seats. A manager that cannot check the result (no renderer for the
//! scene) sends it to `quorum + 1` freshly drawn verifiers instead (as
//! many as are connected, at least one), and the majority of every vote
//! decides; a tie then asks exactly one more.
//!
//! Every round ends. Each vote has a deadline; a verifier past it is
//! replaced by another verifier when one can take the vote (and its offer
//! is no longer waited for), and otherwise stays asked, so its late verdict
//! still counts. A verifier that disconnects loses its open votes, which
//! are drawn again; when no other verifier is left, one replaced earlier
//! may be asked again. A round that no connected verifier can serve says
//! so with [`Command::RoundWaiting`] instead of waiting silently.
//!
//! "Could not check" is never a pass. A verifier that answers inconclusive
//! (it cannot render the scene, its render or a download failed) gives up
//! its seat, which is drawn again among the others; it is asked again on
//! that round only when nobody else is left and a vote deadline has
//! passed since. Answering inconclusive too often in a row for a format
//! costs a verifier that format ([`VerifierPool::record_check`]).
//!
//! Each verifier holds at most [`RoundConfig::max_offers_per_verifier`]
//! offers at a time: verifiers check one result after another, so a
//! deadline counted from the offer is only fair while its queue is short.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;

use crate::audits::Audits;
use crate::verifiers::VerifierPool;
use crate::Command;

mod seats;
mod settle;

use seats::{may_sit, pick};
use settle::{set_waiting, start_audit};

/// Rules of a verification round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundConfig {
    /// Verifiers that must vote on each result (one colluding verifier
    /// cannot pass a bad result alone).
    pub quorum: usize,
    /// How long (ms) a verifier has to answer an offer before its vote is
    /// drawn again from another verifier.
    pub vote_timeout_ms: u64,
    /// Reputation multiplier for a verifier whose verdict disagrees with
    /// the round's outcome.
    pub reputation_penalty: f64,
    /// Offers one verifier holds at a time.
    pub max_offers_per_verifier: usize,
    /// Secret that keys the draw of each round's verifiers. Seats go to
    /// verifiers with spare capacity by a draw weighted by reputation,
    /// not to the least busy or lowest id: a rubber stamp that answers at
    /// once, or a ground low node id, gets its fair share of seats and no
    /// more, and nobody outside the manager can predict who sits where.
    /// The driver sets it from a secret of its own; the default (zeros) is
    /// for tests.
    pub draw_key: [u8; 32],
    /// Known-bad results slipped in to catch verifiers that do not check.
    pub forced_errors: crate::forced::ForcedErrorConfig,
    /// How far back a caught worker's passed results are checked again.
    pub recall: crate::recall::RecallConfig,
    /// Unanimous passes of workers on probation the manager checks itself.
    pub audit: crate::audits::AuditConfig,
}

impl Default for RoundConfig {
    fn default() -> Self {
        Self {
            quorum: 2,
            vote_timeout_ms: 300_000,
            reputation_penalty: 0.5,
            max_offers_per_verifier: 4,
            draw_key: [0; 32],
            forced_errors: crate::forced::ForcedErrorConfig::default(),
            recall: crate::recall::RecallConfig::default(),
            audit: crate::audits::AuditConfig::default(),
        }
    }
}

/// A decided round.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The task.
    pub task: TaskId,
    /// The worker whose result was checked.
    pub worker: NodeId,
    /// Whether the result is accepted.
    pub passed: bool,
    /// The reasons the agreeing verifiers gave (why it failed, if it did).
    pub reasons: Vec<String>,
    /// Verifiers whose verdict is the outcome (they are paid).
    pub agreeing: Vec<NodeId>,
    /// Verifiers whose verdict is not (their reputation was lowered).
    pub dissenting: Vec<NodeId>,
    /// Whether the manager's own check decided it (its verifiers
    /// disagreed, or it audited a pass of a worker on probation).
    pub arbitrated: bool,
}

#[derive(Debug)]
struct Vote {
    verification: u64,
    deadline: u64,
    /// `(passed, reasons)` once answered.
    verdict: Option<(bool, Vec<String>)>,
}

#[derive(Debug)]
struct Round {
    /// Opening order: rounds short of verifiers are served oldest first.
    seq: u64,
    worker: NodeId,
    /// The account that runs the worker: none of its verifiers sits.
    operator: Option<String>,
    /// Whether the manager was asked to check the result itself.
    arbitration: Arbitration,
    /// The format its verifiers must re-render, when its checks need one.
    needs: Option<SceneFormat>,
    /// Votes the round waits for before it is decided.
    needed: usize,
    /// Its worker is on probation (it was opened for more than the
    /// quorum): a unanimous pass may be audited ([`crate::audits`]).
    probation: bool,
    votes: BTreeMap<NodeId, Vote>,
    /// Verifiers replaced after missing a deadline: asked again only when
    /// nobody else can vote.
    replaced: BTreeSet<NodeId>,
    /// Verifiers that answered inconclusive, with when: asked again only
    /// when nobody else can vote and a vote deadline has passed since.
    unable: BTreeMap<NodeId, u64>,
    waiting: Option<String>,
}

/// Where a round stands with the manager's own check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arbitration {
    /// Its votes have agreed so far.
    NotAsked,
    /// They disagreed; the manager is checking.
    Asked,
    /// The manager could not check: fresh verifiers and the majority
    /// decide.
    Unavailable,
    /// Every seat passed a worker on probation; the manager is checking.
    Audit,
    /// As `Audit`, waiting for a running audit to end.
    AuditQueued,
}

/// What a round handler may touch besides the rounds.
pub(crate) struct Ctx<'a> {
    pub(crate) verifiers: &'a mut VerifierPool,
    pub(crate) next_id: &'a mut u64,
    pub(crate) now: u64,
    pub(crate) out: &'a mut Vec<Command>,
}

/// The open rounds.
#[derive(Debug)]
pub(crate) struct Rounds {
    cfg: RoundConfig,
    rounds: BTreeMap<TaskId, Round>,
    /// Open offers: verification id → (task, verifier).
    ids: HashMap<u64, (TaskId, NodeId)>,
    next_seq: u64,
    /// Rounds that may be short of votes, oldest first. Kept loosely: an
    /// entry is added whenever a round may lack a vote and dropped when a
    /// pass finds it full or closed, so a pass visits the rounds that wait
    /// instead of sorting every open round after each verdict.
    short: BTreeSet<(u64, TaskId)>,
    audits: Audits,
}

impl Rounds {
    pub(crate) fn new(cfg: RoundConfig) -> Self {
        Self {
            audits: Audits::new(cfg.audit.clone(), cfg.draw_key),
            cfg,
            rounds: BTreeMap::new(),
            ids: HashMap::new(),
            next_seq: 0,
            short: BTreeSet::new(),
        }
    }

    pub(crate) fn knows(&self, verification: u64) -> bool {
        self.ids.contains_key(&verification)
    }

    pub(crate) fn contains(&self, task: TaskId) -> bool {
        self.rounds.contains_key(&task)
    }

    pub(crate) fn len(&self) -> usize {
        self.rounds.len()
    }

    pub(crate) fn open(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: TaskId,
        worker: NodeId,
        operator: Option<String>,
        needs: Option<SceneFormat>,
        quorum: Option<usize>,
    ) {
        if self.rounds.contains_key(&task) {
            return;
        }
        // Seats beyond the quorum (a worker on probation) are asked only of
        // verifiers that exist: a small network must not wait forever for
        // a fourth verifier it does not have.
        let base = self.cfg.quorum.max(1);
        let seats = match quorum {
            Some(q) if q > base => {
                let able = ctx
                    .verifiers
                    .iter()
                    .filter(|(id, v)| may_sit(**id, v, worker, &operator, needs))
                    .count();
                q.min(able).max(base)
            }
            _ => base,
        };
        self.next_seq += 1;
        self.rounds.insert(
            task,
            Round {
                seq: self.next_seq,
                worker,
                operator,
                arbitration: Arbitration::NotAsked,
                needs,
                needed: seats,
                probation: quorum.is_some_and(|q| q > base),
                votes: BTreeMap::new(),
                replaced: BTreeSet::new(),
                unable: BTreeMap::new(),
                waiting: None,
            },
        );
        self.short.insert((self.next_seq, task));
        self.fill(ctx, task);
    }

    pub(crate) fn abandon(&mut self, ctx: &mut Ctx<'_>, task: TaskId) {
        if let Some(round) = self.rounds.remove(&task) {
            self.forget_open_votes(ctx, &round);
            if matches!(
                round.arbitration,
                Arbitration::Audit | Arbitration::AuditQueued
            ) {
                self.audits.finished(task);
                self.start_queued_audits(ctx);
            }
            self.fill_all(ctx);
        }
    }

    pub(crate) fn verdict(&mut self, ctx: &mut Ctx<'_>, verifier: NodeId, v: Verdict) {
        // Unknown ids are late answers to offers no longer waited for (or
        // not this verifier's): they change nothing.
        let Some(&(task, asked)) = self.ids.get(&v.verification) else {
            return;
        };
        if asked != verifier || v.task != task {
            return;
        }
        self.ids.remove(&v.verification);
        ctx.verifiers.release(verifier);
        let mut refill = false;
        if let Some(round) = self.rounds.get_mut(&task) {
            let conclusive = v.inconclusive.is_none();
            // The format it lost with this answer, if it did.
            let revoked = round
                .needs
                .filter(|f| ctx.verifiers.record_check(verifier, *f, conclusive));
            match v.inconclusive {
                Some(reason) => {
                    round.votes.remove(&verifier);
                    round.unable.insert(verifier, ctx.now);
                    self.short.insert((round.seq, task));
                    ctx.out.push(Command::VerifierInconclusive {
                        verifier,
                        task,
                        reason,
                        revoked,
                    });
                    refill = true;
                }
                None => {
                    if let Some(vote) = round.votes.get_mut(&verifier) {
                        vote.verdict = Some((v.passed, v.reasons));
                    }
                    set_waiting(ctx, task, round, None);
                }
            }
        }
        if refill {
            self.fill(ctx, task);
        }
        self.decide(ctx, task);
        // The answer freed a seat on this verifier.
        self.fill_all(ctx);
    }

    pub(crate) fn verifier_left(&mut self, ctx: &mut Ctx<'_>, verifier: NodeId) {
        for (task, round) in self.rounds.iter_mut() {
            let open = round.votes.get(&verifier).filter(|v| v.verdict.is_none());
            if let Some(verification) = open.map(|v| v.verification) {
                self.ids.remove(&verification);
                round.votes.remove(&verifier);
                self.short.insert((round.seq, *task));
            }
        }
        self.fill_all(ctx);
    }

    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let late: Vec<(TaskId, NodeId)> = self
            .rounds
            .iter()
            .flat_map(|(t, r)| {
                r.votes
                    .iter()
                    .filter(|(_, v)| v.verdict.is_none() && v.deadline <= ctx.now)
                    .map(|(n, _)| (*t, *n))
            })
            .collect();
        for (task, verifier) in late {
            let cap = self.cfg.max_offers_per_verifier;
            let Some(round) = self.rounds.get_mut(&task) else {
                continue;
            };
            let others = pick(&self.cfg.draw_key, task, round, ctx.verifiers, cap, None);
            if others.is_some() {
                if let Some(vote) = round.votes.remove(&verifier) {
                    self.ids.remove(&vote.verification);
                    ctx.verifiers.release(verifier);
                }
                round.replaced.insert(verifier);
                self.short.insert((round.seq, task));
                self.fill(ctx, task);
            } else {
                let why = format!(
                    "verifier {verifier:?} is past its deadline and no other verifier can take \
                     its vote; its verdict is still awaited"
                );
                set_waiting(ctx, task, round, Some(why));
            }
        }
        self.fill_all(ctx);
    }

    /// Offers every round short of votes to verifiers, oldest first.
    pub(crate) fn fill_all(&mut self, ctx: &mut Ctx<'_>) {
        let cap = self.cfg.max_offers_per_verifier;
        let mut after: Option<(u64, TaskId)> = None;
        loop {
            // Once every connected verifier holds its share of offers,
            // no other short round can be served: a backlog of rounds
            // costs one pass over the verifiers, not one per round.
            if !ctx.verifiers.is_empty() && !ctx.verifiers.iter().any(|(_, v)| v.busy < cap) {
                break;
            }
            let next = match after {
                None => self.short.first().copied(),
                Some(a) => self
                    .short
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .next()
                    .copied(),
            };
            let Some(entry @ (seq, task)) = next else {
                break;
            };
            after = Some(entry);
            if self.rounds.get(&task).is_some_and(|r| r.seq == seq) {
                self.fill(ctx, task);
            }
            let still_short = self
                .rounds
                .get(&task)
                .is_some_and(|r| r.seq == seq && r.votes.len() < r.needed);
            if !still_short {
                self.short.remove(&entry);
            }
        }
    }

    /// Offers `task`'s result to verifiers until every seat is taken.
    fn fill(&mut self, ctx: &mut Ctx<'_>, task: TaskId) {
        let cap = self.cfg.max_offers_per_verifier;
        let mut offered = false;
        loop {
            let Some(round) = self.rounds.get_mut(&task) else {
                return;
            };
            if round.votes.len() >= round.needed {
                if offered {
                    set_waiting(ctx, task, round, None);
                }
                return;
            }
            let key = &self.cfg.draw_key;
            let again = Some(ctx.now.saturating_sub(self.cfg.vote_timeout_ms));
            let Some(verifier) = pick(key, task, round, ctx.verifiers, cap, again) else {
                if pick(key, task, round, ctx.verifiers, usize::MAX, again).is_none() {
                    let who = match round.needs {
                        Some(f) => format!("verifier that renders {f} scenes"),
                        None => "verifier".to_string(),
                    };
                    let why = format!(
                        "needs vote {} of {} and no other {who} is connected \
                         ({} connected, the worker, its operator's, those already voting \
                         and those that could not check excluded)",
                        round.votes.len() + 1,
                        round.needed,
                        ctx.verifiers.len()
                    );
                    set_waiting(ctx, task, round, Some(why));
                } else if offered {
                    set_waiting(ctx, task, round, None);
                }
                return;
            };
            let verification = *ctx.next_id;
            *ctx.next_id += 1;
            round.votes.insert(
                verifier,
                Vote {
                    verification,
                    deadline: ctx.now + self.cfg.vote_timeout_ms,
                    verdict: None,
                },
            );
            self.ids.insert(verification, (task, verifier));
            ctx.verifiers.assign(verifier);
            ctx.out.push(Command::OfferVerification {
                verifier,
                verification,
                task,
            });
            offered = true;
        }
    }

    /// Settles `task`'s round once every seat has voted: unanimous votes
    /// decide; disagreeing ones go to the manager's own check, or, when
    /// it could not check, to the majority (a tie asks one more vote).
    fn decide(&mut self, ctx: &mut Ctx<'_>, task: TaskId) {
        let Some(round) = self.rounds.get_mut(&task) else {
            return;
        };
        let cast: Vec<bool> = round
            .votes
            .values()
            .filter_map(|v| v.verdict.as_ref().map(|(p, _)| *p))
            .collect();
        if cast.len() < round.needed
            || matches!(
                round.arbitration,
                Arbitration::Audit | Arbitration::AuditQueued
            )
        {
            return;
        }
        let pass = cast.iter().filter(|p| **p).count();
        let fail = cast.len() - pass;
        if fail == 0
            && round.probation
            && round.arbitration == Arbitration::NotAsked
            && self.audits.drawn(task)
        {
            if self.audits.request(task) {
                start_audit(ctx, task, round);
            } else {
                round.arbitration = Arbitration::AuditQueued;
                let why = "every verifier passed it; it waits for the manager's audit of a \
                           worker on probation"
                    .to_string();
                set_waiting(ctx, task, round, Some(why));
            }
            return;
        }
        if pass > 0 && fail > 0 {
            match round.arbitration {
                Arbitration::NotAsked => {
                    round.arbitration = Arbitration::Asked;
                    ctx.out.push(Command::Arbitrate {
                        task,
                        worker: round.worker,
                        audit: false,
                    });
                    return;
                }
                Arbitration::Unavailable => {}
                _ => return,
            }
        }
        if pass == fail {
            round.needed = cast.len() + 1;
            self.short.insert((round.seq, task));
            self.fill(ctx, task);
            return;
        }
        self.settle(ctx, task, pass > fail, Vec::new(), false);
    }

    /// The manager's own check of a disputed round: it decides the round,
    /// or, without one, `quorum + 1` fresh verifiers join the vote.
    pub(crate) fn arbitrated(
        &mut self,
        ctx: &mut Ctx<'_>,
        task: TaskId,
        outcome: Option<(bool, Vec<String>)>,
    ) {
        let Some(round) = self.rounds.get_mut(&task) else {
            return;
        };
        if round.arbitration == Arbitration::Audit {
            // Without the manager's verdict the unanimous votes stand.
            self.audits.finished(task);
            match outcome {
                Some((passed, reasons)) => self.settle(ctx, task, passed, reasons, true),
                None => self.settle(ctx, task, true, Vec::new(), false),
            }
            self.start_queued_audits(ctx);
            return;
        }
        if round.arbitration != Arbitration::Asked {
            return;
        }
        match outcome {
            Some((passed, reasons)) => self.settle(ctx, task, passed, reasons, true),
            None => {
                round.arbitration = Arbitration::Unavailable;
                let cast = round.votes.values().filter(|v| v.verdict.is_some()).count();
                // As many fresh verifiers as can sit, at least one (the
                // round then waits for it, saying so).
                let fresh = ctx
                    .verifiers
                    .iter()
                    .filter(|(id, v)| {
                        !round.votes.contains_key(id)
                            && may_sit(**id, v, round.worker, &round.operator, round.needs)
                    })
                    .count();
                round.needed = cast + (self.cfg.quorum + 1).min(fresh).max(1);
                self.short.insert((round.seq, task));
                self.fill(ctx, task);
                self.decide(ctx, task);
            }
        }
    }
}
