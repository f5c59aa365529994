//! After a restart: what the store says was in flight is reconciled with
//! what the nodes that come back actually hold.
//!
//! A worker's render does not outlive its session, so a worker that says
//! hello holds no task. Leases this manager granted before it restarted
//! are therefore released as soon as their worker is back, instead of
//! stalling the job's tail until the lease deadline (600 s by default);
//! leases of workers that never come back still expire as usual.

use super::*;

impl State {
    /// Runs once before the manager accepts anyone.
    pub(super) async fn recover(&mut self) {
        // Results received before the restart come first: their leases
        // must not be released as workers return.
        self.replay_journal().await;
        self.recover_verifications().await;
        self.load_leases_before_restart().await;
        // Claims and unfinished jobs are found in one read of the jobs.
        let jobs = self.store.jobs().await.unwrap_or_default();
        self.recover_claims(&jobs).await;
        self.recover_finishing_jobs(&jobs).await;
    }

    /// Verifications in flight were lost with the old process, so their
    /// tasks go back to `Rendered` to be verified again: at once for the
    /// tasks this manager (same node id) leased, whose rounds it held;
    /// after the verification timeout for others', whose managers may
    /// still be alive.
    async fn recover_verifications(&mut self) {
        let Ok(verifying) = self
            .store
            .tasks_in_status(TaskStatus::Verifying, usize::MAX)
            .await
        else {
            return;
        };
        let now = self.now();
        for mut t in verifying {
            let ours = t.round_manager == Some(self.id);
            let stale = t
                .entered(TaskStatus::Verifying)
                .is_none_or(|at| at + self.cfg.verification_timeout.as_millis() as u64 <= now);
            if (ours || stale)
                && t.transition(
                    TaskStatus::Rendered,
                    now,
                    "verification lost; verifying again",
                )
                .is_ok()
            {
                let _ = self.store.update_task(&mut t).await;
            }
        }
    }

    /// Remembers the leases this manager (same node id) granted before it
    /// restarted; other managers' leases are theirs to reconcile.
    async fn load_leases_before_restart(&mut self) {
        let Ok(leased) = self
            .store
            .tasks_in_status(TaskStatus::Leased, usize::MAX)
            .await
        else {
            return;
        };
        for t in leased {
            if let Some(l) = t.lease.as_ref().filter(|l| l.manager == self.id) {
                self.leases_before_restart
                    .entry(l.worker)
                    .or_default()
                    .push(t.id);
            }
        }
        if !self.leases_before_restart.is_empty() {
            info!(
                workers = self.leases_before_restart.len(),
                "leases from before the restart wait for their workers"
            );
        }
    }

    /// `worker` said hello, holding nothing: its leases from before the
    /// restart go back to the queue now, charged to nobody.
    pub(super) async fn reconcile_worker(&mut self, worker: NodeId) {
        let Some(tasks) = self.leases_before_restart.remove(&worker) else {
            return;
        };
        for task in tasks {
            // Its result is journalled and waits for the database.
            if self.buffered.iter().any(|(t, _, _)| *t == task) {
                continue;
            }
            info!(?worker, ?task, "lease from before the restart released");
            self.requeue(
                task,
                worker,
                Fault::Manager,
                "manager restarted; the worker came back without the task",
            )
            .await;
        }
    }
}
