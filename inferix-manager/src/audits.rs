//! Audits: the manager's own check of a unanimous pass of a worker on
//! probation, before the result is paid.
//!
//! Colluders get a bad result through only when they hold every seat of
//! its round. Recall undoes that once the worker is caught on another
//! result, but a worker that cheats once and never renders again is never
//! caught. So when every seat passes the result of a worker on probation
//! (a new or distrusted account: its rounds have seats beyond the
//! quorum), a keyed draw at [`AuditConfig::rate`] sends it to the
//! manager's own check ([`crate::Command::Arbitrate`] with `audit`) before
//! the round is settled. The check decides the round as it decides a
//! dispute: a bad result is rejected (its worker punished, the task
//! rendered again by another worker) and its passers are outvoted. A
//! manager that cannot check leaves the decision to the votes.
//!
//! At most [`AuditConfig::in_flight`] audits run at a time; the rounds
//! drawn beyond that wait their turn, saying so. A flood of new accounts
//! therefore queues behind the manager's capacity without ever being paid
//! unaudited, and established workers are not slowed.

use std::collections::{HashSet, VecDeque};

use inferix_core::ids::TaskId;

use crate::draw::keyed_u64;

/// How many unanimous passes of workers on probation the manager checks.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// Chance that such a pass is audited (0 turns audits off). Probation
    /// lasts an account's first results, so this costs the manager a
    /// bounded number of checks per account.
    pub rate: f64,
    /// Audits the manager runs at a time.
    pub in_flight: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            rate: 1.0,
            in_flight: 8,
        }
    }
}

/// Audits running and waiting.
#[derive(Debug, Default)]
pub(crate) struct Audits {
    cfg: AuditConfig,
    /// Keys the draw, so that nobody outside the manager can tell which
    /// passes are audited.
    key: [u8; 32],
    running: HashSet<TaskId>,
    queue: VecDeque<TaskId>,
}

impl Audits {
    pub(crate) fn new(cfg: AuditConfig, key: [u8; 32]) -> Self {
        Self {
            cfg,
            key,
            ..Self::default()
        }
    }

    /// Whether the unanimous pass of `task` is audited.
    pub(crate) fn drawn(&self, task: TaskId) -> bool {
        if self.cfg.rate <= 0.0 {
            return false;
        }
        let job = task.job.0.to_le_bytes();
        let index = task.index.to_le_bytes();
        let x = keyed_u64(&self.key, &[b"audit", &job, &index]);
        (x as f64 / u64::MAX as f64) < self.cfg.rate
    }

    /// Asks for an audit of `task`: true when it starts now, false when it
    /// waits for a running one to end.
    pub(crate) fn request(&mut self, task: TaskId) -> bool {
        if self.running.len() < self.cfg.in_flight.max(1) {
            self.running.insert(task);
            true
        } else {
            self.queue.push_back(task);
            false
        }
    }

    /// `task`'s audit ended, or its round did.
    pub(crate) fn finished(&mut self, task: TaskId) {
        if !self.running.remove(&task) {
            self.queue.retain(|t| *t != task);
        }
    }

    /// The next waiting audit, started, while there is room.
    pub(crate) fn next(&mut self) -> Option<TaskId> {
        if self.running.len() >= self.cfg.in_flight.max(1) {
            return None;
        }
        let task = self.queue.pop_front()?;
        self.running.insert(task);
        Some(task)
    }
}
