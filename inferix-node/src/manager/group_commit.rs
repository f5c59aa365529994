//! Group commit: the results and acceptances of one batch of inputs are
//! written in one store transaction each, and nobody hears of them before
//! that transaction commits.
//!
//! On a networked database every write is a round trip, and the loop
//! waits for each; one transaction per task capped a manager at the
//! database's round-trip rate. Grouping makes the number of round trips
//! per batch fixed, so a busier manager (longer batches) pays less per
//! task. Nothing changes in meaning:
//! - a worker's result is acknowledged, and its round opened, only after
//!   the write that records it;
//! - an acceptance and its payments still commit together;
//! - when the grouped write fails for any reason (another manager or
//!   another path changed a task, the database is away), each item takes
//!   the one-at-a-time path, which reads the task again and handles every
//!   error as before.
//!
//! Results are written from the task as this manager last wrote it (its
//! lease), kept in [`Batched::leased`]; the write is a compare-and-set on
//! the task's version, so a copy that went stale only sends that result
//! down the one-at-a-time path.

use inferix_core::ledger::Transaction;
use inferix_core::store::Change;
use inferix_core::task::{DeliveredFrame, TaskResult};
use inferix_manager::economy;

use super::*;

/// What waits for the batch's writes.
#[derive(Default)]
pub(super) struct Batched {
    /// The task of each lease as this manager last wrote it.
    leased: HashMap<TaskId, Task>,
    /// Results received in this batch, their signatures not yet checked.
    pub(super) unsigned: Vec<HeldResult>,
    /// Results whose signature was checked, in arrival order.
    results: Vec<HeldResult>,
    /// Rounds that passed, in settlement order.
    accepts: Vec<Acceptance>,
}

impl Batched {
    /// Keeps `task` as written with its lease.
    pub(super) fn leased(&mut self, task: &Task) {
        self.leased.insert(task.id, task.clone());
    }

    /// Forgets the kept lease of `task` (it was re-queued or finished).
    pub(super) fn forget(&mut self, task: TaskId) {
        self.leased.remove(&task);
    }

    /// Forgets kept leases whose deadline passed: housekeeping re-queues
    /// those from the store.
    pub(super) fn forget_expired(&mut self, now: u64) {
        self.leased
            .retain(|_, t| t.lease.as_ref().is_some_and(|l| l.deadline_ms > now));
    }

    /// Whether a result from `conn` waits for the batch's write: its
    /// next message must not overtake it.
    pub(super) fn waits_for(&self, conn: ConnId) -> bool {
        self.results.iter().any(|r| r.conn == conn)
    }
}

/// A worker's result waiting in the batch: first for its signature check
/// (in `Batched::unsigned`), then, once the signature is the worker's, for
/// its write (in `Batched::results`).
pub(super) struct HeldResult {
    pub(super) conn: ConnId,
    pub(super) id: u64,
    pub(super) worker: NodeId,
    pub(super) task: TaskId,
    pub(super) result: TaskResult,
}

/// A passed round whose acceptance waits for the batch's write.
pub(super) struct Acceptance {
    pub(super) settlement: inferix_manager::Settlement,
    /// The task as the round opened it.
    pub(super) known: Task,
    pub(super) delivered: Vec<DeliveredFrame>,
}

/// An accepted task, for its job's watchers.
pub(super) struct Accepted {
    pub(super) task: TaskId,
    pub(super) worker: NodeId,
    pub(super) frames: u64,
}

impl State {
    /// Holds a signed result for the batch's write.
    pub(super) fn hold_result(&mut self, r: HeldResult) {
        self.batch.results.push(r);
    }

    /// Writes the held results in one transaction, then acknowledges them
    /// and opens their rounds.
    pub(super) async fn flush_results(&mut self) {
        let held = std::mem::take(&mut self.batch.results);
        if held.is_empty() {
            return;
        }
        let now = self.now();
        // The results whose task is written, each beside its write.
        let mut written = Vec::with_capacity(held.len());
        let mut changes = Vec::with_capacity(held.len());
        let mut one_by_one = Vec::new();
        for r in held {
            let Some(mut t) = self.batch.leased.remove(&r.task) else {
                one_by_one.push(r);
                continue;
            };
            // A copy that fails the checks may be stale: the store's word
            // decides, on the one-at-a-time path.
            if self.check_result(&t, &r.result).await.is_err() {
                one_by_one.push(r);
                continue;
            }
            match self.complete(&mut t, r.result.clone(), now) {
                Ok(verifying) => {
                    written.push((r, verifying));
                    changes.push(Change::Task(Box::new(t)));
                }
                Err(_) => one_by_one.push(r),
            }
        }
        for r in one_by_one {
            self.record_signed_result(r).await;
        }
        if written.is_empty() {
            return;
        }
        match self.store.apply(&mut changes).await {
            Ok(()) => {
                for ((r, verifying), change) in written.into_iter().zip(changes) {
                    let Change::Task(t) = change else { continue };
                    debug!(task = ?r.task, worker = ?r.worker, "result recorded");
                    self.reply(r.conn, r.id, Message::Ok).await;
                    if verifying {
                        self.start_round(r.worker, *t).await;
                    }
                }
            }
            Err(e) => {
                debug!(error = %e, results = written.len(), "grouped result write failed; one at a time");
                for (r, _) in written {
                    self.record_signed_result(r).await;
                }
            }
        }
    }

    /// Holds a passed round for the batch's write.
    pub(super) fn hold_acceptance(&mut self, a: Acceptance) {
        self.batch.accepts.push(a);
    }

    /// Whether passed rounds wait for their write.
    pub(super) fn acceptances_held(&self) -> bool {
        !self.batch.accepts.is_empty()
    }

    /// Writes the held acceptances, their payments and their verifiers'
    /// rewards in one transaction, then tells the jobs' watchers.
    pub(super) async fn flush_acceptances(&mut self) {
        let held = std::mem::take(&mut self.batch.accepts);
        if held.is_empty() {
            return;
        }
        let now = self.now();
        let mut ready = Vec::with_capacity(held.len());
        let mut one_by_one = Vec::new();
        for a in held {
            let mut t = a.known.clone();
            if t.status != TaskStatus::Verifying
                || t.transition(TaskStatus::Accepted, now, "verified").is_err()
            {
                one_by_one.push(a);
                continue;
            }
            t.delivered = a.delivered.clone();
            t.passed_by.clone_from(&a.settlement.agreeing);
            let job = self.job(t.id.job).await;
            let payment = job.as_ref().and_then(|j| self.payment(j, &t));
            ready.push((a, t, job, payment));
        }
        for a in one_by_one {
            self.accept_alone(a).await;
        }
        if ready.is_empty() {
            return;
        }
        let rewards = self.rewards_of(&ready, now).await;
        let mut changes = Vec::with_capacity(ready.len() * 2);
        // What the announcements need of each task once it is written.
        let mut written = Vec::with_capacity(ready.len());
        for (a, t, job, payment) in ready {
            written.push((a, t.operator.clone(), t.frames.len() as u64, job));
            changes.push(Change::Task(Box::new(t)));
            changes.extend(payment.map(Change::Transaction));
        }
        changes.extend(rewards.into_iter().map(Change::Transaction));
        if let Err(e) = self.store.apply(&mut changes).await {
            debug!(error = %e, acceptances = written.len(), "grouped acceptance failed; one at a time");
            for (a, ..) in written {
                self.accept_alone(a).await;
            }
            return;
        }
        let mut by_job: Vec<(JobId, Option<Job>, Vec<Accepted>)> = Vec::new();
        // Each operator's standing is written once for the batch.
        let mut by_operator: Vec<(String, usize)> = Vec::new();
        for (a, operator, frames, job) in written {
            let s = &a.settlement;
            if let Some(name) = operator {
                match by_operator.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => by_operator.push((name, 1)),
                }
            }
            self.stitch_tiles(s.task).await;
            let accepted = Accepted {
                task: s.task,
                worker: s.worker,
                frames,
            };
            match by_job.iter_mut().find(|(id, _, _)| *id == s.task.job) {
                Some((_, _, tasks)) => tasks.push(accepted),
                None => by_job.push((s.task.job, job, vec![accepted])),
            }
        }
        for (name, count) in by_operator {
            self.judge_operator_results(&name, true, count).await;
        }
        for (job_id, job, tasks) in by_job {
            self.announce_accepted(job_id, job.as_ref(), &tasks).await;
        }
    }

    /// One passed round on its own: its acceptance and payment, then its
    /// verifiers' rewards.
    async fn accept_alone(&mut self, a: Acceptance) {
        let Acceptance {
            settlement,
            known,
            delivered,
        } = a;
        self.finish_verification(&settlement, Some(known), delivered)
            .await;
        self.pay_verifiers(settlement.task, &settlement.agreeing)
            .await;
    }

    /// The agreeing verifiers' rewards for each acceptance, in order, from
    /// one read of the penalty pool.
    async fn rewards_of(
        &mut self,
        ready: &[(Acceptance, Task, Option<Job>, Option<Transaction>)],
        now: u64,
    ) -> Vec<Transaction> {
        if self.cfg.verifier_reward <= 0
            || ready.iter().all(|(a, ..)| a.settlement.agreeing.is_empty())
        {
            return Vec::new();
        }
        let Ok(pool) = self.store.balance(&Account::PenaltyPool).await else {
            return Vec::new();
        };
        let rounds = ready
            .iter()
            .map(|(a, ..)| (a.settlement.task, &a.settlement.agreeing[..]));
        economy::rewards_in_order(&self.economy(), rounds, pool, now)
    }

    /// Tells `job`'s watchers that `tasks` were accepted (with the job's
    /// progress after each), from one count of its tasks, and completes
    /// the job once every task is accepted.
    pub(super) async fn announce_accepted(
        &mut self,
        job_id: JobId,
        job: Option<&Job>,
        tasks: &[Accepted],
    ) {
        let counts = self.store.status_counts(job_id).await.unwrap_or_default();
        let (accepted, total) = StatusCount::frames_in(&counts, TaskStatus::Accepted);
        // A tile job counts whole frames' worth of tiles.
        let per_frame = job.map_or(1, |j| j.spec.tiles_per_frame()).max(1);
        let frames: Vec<u64> = tasks.iter().map(|a| a.frames).collect();
        for (a, accepted_then) in tasks.iter().zip(accepted_after_each(accepted, &frames)) {
            self.emit(
                job_id,
                JobEvent::TaskAccepted {
                    task: a.task,
                    worker: a.worker,
                    accepted_frames: accepted_then / per_frame,
                    total_frames: total / per_frame,
                },
            )
            .await;
        }
        if StatusCount::all_accepted(&counts) {
            self.finish_job(job_id).await;
        }
    }
}

/// A job's accepted frames as each task of a batch (of `frames` frames
/// each, in order) is announced, from the count after the whole batch:
/// each is shown without the frames accepted after it, so watchers see
/// progress rise task by task.
fn accepted_after_each(accepted: u64, frames: &[u64]) -> Vec<u64> {
    let mut later: u64 = frames.iter().sum();
    frames
        .iter()
        .map(|f| {
            later -= f;
            accepted.saturating_sub(later)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::accepted_after_each;

    #[test]
    fn progress_rises_task_by_task_within_a_batch() {
        // 10 frames accepted after a batch of tasks of 1, 3 and 2 frames.
        assert_eq!(accepted_after_each(10, &[1, 3, 2]), vec![5, 8, 10]);
        assert_eq!(accepted_after_each(4, &[4]), vec![4]);
        // Counted by another manager meanwhile: never below zero.
        assert_eq!(accepted_after_each(1, &[2, 2]), vec![0, 1]);
        assert!(accepted_after_each(0, &[]).is_empty());
    }
}
