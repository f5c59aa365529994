//! Recall: when a worker is caught with a bad result, the results of it
//! that passed recently are checked again, by the manager itself.
//!
//! A bad result passes a round only when every seat of the round is held
//! by verifiers that pass it: colluders of the worker, or verifiers that do
//! not check. Such panels are rare (a fraction `f` of the verifiers holds
//! all `q` seats with odds `f^q`), but a worker that cheats once cheats
//! again, and its next round is very likely to be caught. So the engine
//! remembers, per worker, the results it passed within the recall window
//! and who passed them; when one of that worker's results is rejected, it
//! asks the driver to check each of them the way [`Command::Arbitrate`]
//! does. A result found bad is refunded to the job's payer from the
//! worker, and every verifier that passed it is banned and slashed: the
//! panel that let it through was colluding or not checking. Results the
//! manager cannot check itself (no renderer for the scene) are left as
//! they are; the job's owner can still claim them.
//!
//! A caught worker's rounds still open when it was caught may pass later
//! (their seats were colluders too): such a result is recalled as soon as
//! it passes.
//!
//! Memory is bounded: at most [`RecallConfig::depth`] results per worker,
//! none older than the window, a worker's list goes once it is recalled,
//! and caught workers are forgotten after the window. The store keeps who
//! passed each accepted result, so a restarted manager reads the results
//! still within the window back ([`crate::Event::Passed`]).

use std::collections::{HashMap, VecDeque};

use inferix_core::ids::{NodeId, TaskId};

use crate::verifiers::VerifierPool;
use crate::Command;

/// How far back a caught worker's passed results are checked again.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallConfig {
    /// Results older than this (ms) are not checked again: their payment
    /// is final. The driver sets it to its claim window.
    pub window_ms: u64,
    /// Passed results remembered per worker (the newest).
    pub depth: usize,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            window_ms: 24 * 3_600_000,
            depth: 32,
        }
    }
}

/// A result that passed its round, as remembered for a recall.
#[derive(Debug, Clone, PartialEq)]
struct Passed {
    task: TaskId,
    at: u64,
    passers: Vec<NodeId>,
}

/// One recall the driver was asked to check.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    worker: NodeId,
    passers: Vec<NodeId>,
}

/// A result found bad by a recall: what the driver settles.
#[derive(Debug, Clone, PartialEq)]
pub struct Recalled {
    /// The task whose result passed and was bad.
    pub task: TaskId,
    /// The worker that rendered it (caught on another result).
    pub worker: NodeId,
    /// The verifiers that passed it: banned, to be slashed.
    pub passers: Vec<NodeId>,
    /// Why the manager's check failed it.
    pub reasons: Vec<String>,
}

/// Passed results per worker, and recalls being checked.
#[derive(Debug, Default)]
pub(crate) struct Recalls {
    cfg: RecallConfig,
    passed: HashMap<NodeId, VecDeque<Passed>>,
    /// Workers caught within the window, and when: a result of theirs
    /// that passes afterwards (its round was open when they were caught)
    /// is recalled at once.
    caught: HashMap<NodeId, u64>,
    pending: HashMap<TaskId, Pending>,
    next_prune: u64,
}

impl Recalls {
    pub(crate) fn new(cfg: RecallConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Reads the rounds settled in `out`: remembers passed results, and
    /// asks for the recall of a worker's remembered results when one of
    /// its results is rejected.
    pub(crate) fn observe(&mut self, out: &mut Vec<Command>, now: u64) {
        let mut recalls = Vec::new();
        for c in out.iter() {
            let Command::SettleRound(s) = c else {
                continue;
            };
            if s.passed && self.caught.contains_key(&s.worker) {
                recalls.push(self.recall(s.worker, s.task, s.agreeing.clone()));
            } else if s.passed {
                self.remember(s.worker, s.task, s.agreeing.clone(), now, now);
            } else {
                self.caught.insert(s.worker, now);
                recalls.extend(self.caught(s.worker, now));
            }
        }
        out.extend(recalls);
    }

    /// Remembers that `worker`'s result of `task` passed at `at`, by
    /// `passers` (a result older than the window is not kept).
    pub(crate) fn remember(
        &mut self,
        worker: NodeId,
        task: TaskId,
        passers: Vec<NodeId>,
        at: u64,
        now: u64,
    ) {
        let window = self.cfg.window_ms;
        if self.cfg.depth == 0 || at.saturating_add(window) < now {
            return;
        }
        let list = self.passed.entry(worker).or_default();
        list.retain(|p| p.task != task);
        while list
            .front()
            .is_some_and(|p| p.at.saturating_add(window) < now)
        {
            list.pop_front();
        }
        // Kept oldest first (results read back after a restart come in
        // any order), and only the newest `depth`.
        let place = list.iter().position(|p| p.at > at).unwrap_or(list.len());
        list.insert(place, Passed { task, at, passers });
        while list.len() > self.cfg.depth {
            list.pop_front();
        }
    }

    /// `worker` had a result rejected: the recalls of its passed results
    /// within the window.
    fn caught(&mut self, worker: NodeId, now: u64) -> Vec<Command> {
        let Some(list) = self.passed.remove(&worker) else {
            return Vec::new();
        };
        let window = self.cfg.window_ms;
        list.into_iter()
            .filter(|p| p.at.saturating_add(window) >= now)
            .map(|p| self.recall(worker, p.task, p.passers))
            .collect()
    }

    fn recall(&mut self, worker: NodeId, task: TaskId, passers: Vec<NodeId>) -> Command {
        self.pending.insert(task, Pending { worker, passers });
        Command::Recall { task, worker }
    }

    /// The manager's check of a recalled result: a bad one bans its
    /// passers and is settled ([`Command::SettleRecall`]).
    pub(crate) fn checked(
        &mut self,
        verifiers: &mut VerifierPool,
        task: TaskId,
        outcome: Option<(bool, Vec<String>)>,
        out: &mut Vec<Command>,
    ) {
        let Some(p) = self.pending.remove(&task) else {
            return;
        };
        let Some((false, reasons)) = outcome else {
            return;
        };
        for v in &p.passers {
            verifiers.ban(*v);
        }
        out.push(Command::SettleRecall(Recalled {
            task,
            worker: p.worker,
            passers: p.passers,
            reasons,
        }));
    }

    /// Forgets the lists of workers whose newest passed result is out of
    /// the window (workers that left), at most every hundredth of it.
    pub(crate) fn prune(&mut self, now: u64) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now.saturating_add(self.cfg.window_ms / 100);
        let window = self.cfg.window_ms;
        self.passed.retain(|_, list| {
            list.back()
                .is_some_and(|p| p.at.saturating_add(window) >= now)
        });
        self.caught.retain(|_, at| at.saturating_add(window) >= now);
    }

    /// Passed results remembered, over all workers (for tests and gauges).
    pub(crate) fn remembered(&self) -> usize {
        self.passed.values().map(VecDeque::len).sum()
    }
}
