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
//! A worker that cheats once and never renders again is never caught, so
//! recall alone cannot undo a fully colluding panel's pass of its one
//! fake. Results of workers on probation (new or distrusted accounts, the
//! ones whose rounds get extra seats) are therefore also audited: a
//! keyed draw sends each of them, at [`RecallConfig::probation_audit`], to
//! the same check as soon as it passes. A bad one is settled as a recall,
//! and from then on its worker counts as caught. At most
//! [`RecallConfig::audits_in_flight`] audits wait at a time, so a flood of
//! new accounts cannot queue unbounded work on the manager.
//!
//! Memory is bounded: at most [`RecallConfig::depth`] results per worker,
//! none older than the window, a worker's list goes once it is recalled,
//! and caught workers are forgotten after the window.

use std::collections::{HashMap, VecDeque};

use inferix_core::ids::{NodeId, TaskId};

use crate::rounds::keyed_u64;
use crate::verifiers::VerifierPool;
use crate::{Command, Settlement};

/// How far back a caught worker's passed results are checked again.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallConfig {
    /// Results older than this (ms) are not checked again: their payment
    /// is final. The driver sets it to its claim window.
    pub window_ms: u64,
    /// Passed results remembered per worker (the newest).
    pub depth: usize,
    /// Chance that a passed result of a worker on probation is audited by
    /// the manager's own check (0 turns audits off). Probation lasts an
    /// account's first results, so this is a bounded cost per account.
    pub probation_audit: f64,
    /// Audits checked at a time; a result that passes while this many
    /// wait is not audited (it can still be recalled).
    pub audits_in_flight: usize,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            window_ms: 24 * 3_600_000,
            depth: 32,
            probation_audit: 1.0,
            audits_in_flight: 8,
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
    /// An audit of a worker on probation, not a recall of a caught one.
    audit: bool,
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
    /// Whether an audit found it (its worker was not caught before, so it
    /// is punished as for a rejected result), rather than a recall.
    pub audit: bool,
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
    /// Audits among `pending`.
    audits: usize,
    /// Keys the audit draw, so nobody outside the manager can tell which
    /// results are audited.
    draw_key: [u8; 32],
    next_prune: u64,
}

impl Recalls {
    pub(crate) fn new(cfg: RecallConfig, draw_key: [u8; 32]) -> Self {
        Self {
            cfg,
            draw_key,
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
                recalls.push(self.recall(s.worker, s.task, s.agreeing.clone(), false));
            } else if s.passed {
                if s.probation && self.audited(s.task) {
                    recalls.push(self.recall(s.worker, s.task, s.agreeing.clone(), true));
                }
                self.remember(s, now);
            } else {
                self.caught.insert(s.worker, now);
                recalls.extend(self.caught(s.worker, now));
            }
        }
        out.extend(recalls);
    }

    fn remember(&mut self, s: &Settlement, now: u64) {
        if self.cfg.depth == 0 {
            return;
        }
        let list = self.passed.entry(s.worker).or_default();
        list.retain(|p| p.task != s.task);
        while list.len() >= self.cfg.depth
            || list
                .front()
                .is_some_and(|p| p.at.saturating_add(self.cfg.window_ms) < now)
        {
            list.pop_front();
        }
        list.push_back(Passed {
            task: s.task,
            at: now,
            passers: s.agreeing.clone(),
        });
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
            .map(|p| self.recall(worker, p.task, p.passers, false))
            .collect()
    }

    /// Whether the passed result of `task` (a worker on probation) is
    /// audited: a keyed draw at the configured chance, while fewer than
    /// the limit of audits wait.
    fn audited(&self, task: TaskId) -> bool {
        if self.cfg.probation_audit <= 0.0 || self.audits >= self.cfg.audits_in_flight {
            return false;
        }
        let index = task.index.to_le_bytes();
        let job = task.job.0.to_le_bytes();
        let x = keyed_u64(&self.draw_key, &[b"audit", &job, &index]);
        (x as f64 / u64::MAX as f64) < self.cfg.probation_audit
    }

    fn recall(
        &mut self,
        worker: NodeId,
        task: TaskId,
        passers: Vec<NodeId>,
        audit: bool,
    ) -> Command {
        let before = self.pending.insert(
            task,
            Pending {
                worker,
                passers,
                audit,
            },
        );
        self.audits += usize::from(audit);
        self.audits -= usize::from(before.is_some_and(|p| p.audit));
        Command::Recall {
            task,
            worker,
            audit,
        }
    }

    /// The manager's check of a recalled result: a bad one bans its
    /// passers and is settled ([`Command::SettleRecall`]).
    pub(crate) fn checked(
        &mut self,
        verifiers: &mut VerifierPool,
        task: TaskId,
        outcome: Option<(bool, Vec<String>)>,
        out: &mut Vec<Command>,
        now: u64,
    ) {
        let Some(p) = self.pending.remove(&task) else {
            return;
        };
        self.audits -= usize::from(p.audit);
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
            audit: p.audit,
        }));
        // An audit caught the worker: its other passed results are
        // recalled, and any that passes later too.
        if p.audit {
            if let Some(list) = self.passed.get_mut(&p.worker) {
                list.retain(|x| x.task != task);
            }
            self.caught.insert(p.worker, now);
            out.extend(self.caught(p.worker, now));
        }
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
