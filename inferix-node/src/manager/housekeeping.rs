//! Periodic checks: silent peers, hung workers, expired leases, late votes,
//! orphaned verifications.

use inferix_manager::housekeeping;

use super::*;

impl State {
    pub(super) async fn housekeeping(&mut self) {
        self.expire_probes().await;
        self.refresh_gauges().await;
        let now = self.now();
        if self.sweeping.as_ref().is_some_and(|s| s.is_finished()) {
            self.sweeping = None;
        }
        self.sweep_lease_copies(now);
        self.batch.forget_expired(now);
        self.sweep_blobs(now);
        if !self.buffered.is_empty() {
            self.flush_buffered_results().await;
        }
        if !self.unfinished.is_empty() {
            self.finish_unfinished().await;
        }
        // Peers that went silent.
        let timeout = self.cfg.heartbeat_timeout.as_millis() as u64;
        let silent: Vec<ConnId> = self
            .workers
            .values()
            .map(|w| (w.conn, w.last_seen))
            .chain(self.verifiers.values().map(|v| (v.conn, v.last_seen)))
            .filter(|(_, seen)| housekeeping::is_silent(*seen, now, timeout))
            .map(|(c, _)| c)
            .collect();
        for c in silent {
            self.drop_peer(c, "heartbeat timeout").await;
        }
        // Leases that ran out (also those of workers attached elsewhere).
        self.adopt_orphaned_verifications(now).await;
        // Workers that stopped making progress on their task.
        let limit = self.cfg.progress_timeout.as_millis() as u64;
        for (worker, task) in housekeeping::hung_workers(&self.workers, now, limit) {
            warn!(?worker, ?task, "no progress; task taken back");
            self.count_failure(task.job, worker).await;
            self.revoke(worker, task).await;
            self.requeue(
                task,
                worker,
                Fault::Worker(worker),
                &format!("no progress for {} s", self.cfg.progress_timeout.as_secs()),
            )
            .await;
        }
        if let Ok(expired) = self.store.expired_leases(now, 1000).await {
            for t in expired {
                if let Some(housekeeping::ExpiredLease { worker, silence }) =
                    housekeeping::expired_lease(&self.workers, &t)
                {
                    if silence {
                        warn!(?worker, task = ?t.id, "lease ran out without a word from the worker; no more work for it until it speaks");
                        self.workers.silence(worker);
                    }
                    self.count_failure(t.id.job, worker).await;
                    self.revoke(worker, t.id).await;
                    self.requeue(t.id, worker, Fault::Worker(worker), "lease expired")
                        .await;
                }
            }
        }
        // Verifiers that did not answer in time are replaced.
        self.engine_event(EngineEvent::Tick).await;
    }

    /// Verifications whose round no live manager holds (its manager
    /// crashed, or this one restarted) go back to `Rendered`, so that any
    /// manager of the store verifies them again. A round is presumed lost
    /// after twice the verification timeout; should its manager still
    /// settle it, the store's compare-and-set lets only one verdict land.
    pub(super) async fn adopt_orphaned_verifications(&mut self, now: u64) {
        let Ok(verifying) = self
            .store
            .tasks_in_status(TaskStatus::Verifying, 1000)
            .await
        else {
            return;
        };
        let lost_after = 2 * self.cfg.verification_timeout.as_millis() as u64;
        for mut t in verifying {
            if self.engine.has_round(t.id) {
                continue;
            }
            if housekeeping::is_orphaned_verification(&t, now, lost_after)
                && t.transition(
                    TaskStatus::Rendered,
                    now,
                    "verification round lost; verifying again",
                )
                .is_ok()
                && self.store.update_task(&mut t).await.is_ok()
            {
                info!(task = ?t.id, "orphaned verification adopted");
            }
        }
    }
}
