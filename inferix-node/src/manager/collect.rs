//! Removing lease copies. Every lease of a watermarked job gets its own
//! scene copy in blob storage, as large as the scene. A copy whose lease
//! ended without an accepted result is removed at once; the copy behind an
//! accepted result stays while its frames may be claimed (a claim
//! re-renders from it) and is removed once the job's claim window closed.

use inferix_core::ContentHash;

use super::*;

/// The lease copy `t` names: its lease's prepared scene, or the scene its
/// result was rendered from (checked equal to the lease's when the result
/// arrived, so a worker cannot name someone else's blob here).
pub(super) fn lease_copy(t: &Task) -> Option<ContentHash> {
    t.lease
        .as_ref()
        .and_then(|l| l.scene)
        .or_else(|| t.result.as_ref().map(|r| r.scene))
}

/// Whether `copy` is a blob of `job`'s own (its scene or environment map),
/// which is never removed here.
fn is_customers(job: &Job, copy: ContentHash) -> bool {
    copy == job.spec.scene.blob || job.spec.environment.as_ref().map(|e| e.blob) == Some(copy)
}

impl State {
    /// Removes the copy of a lease that ended without an accepted result,
    /// beside the loop.
    pub(super) async fn discard_lease_copy(&mut self, job: JobId, copy: Option<ContentHash>) {
        let Some(copy) = copy else {
            return;
        };
        let Some(j) = self.job(job).await else {
            return;
        };
        if is_customers(&j, copy) {
            return;
        }
        let blobs = self.blobs.clone();
        tokio::spawn(async move {
            if let Err(e) = blobs.delete(copy).await {
                debug!(%copy, error = %e, "lease copy not removed");
            }
        });
    }

    /// Every `lease_copy_sweep`, removes the copies behind the accepted
    /// results of jobs whose claim window has closed, beside the loop.
    pub(super) fn sweep_lease_copies(&mut self, now: u64) {
        if self.por.is_none() || now < self.next_copy_sweep || self.sweeping.is_some() {
            return;
        }
        self.next_copy_sweep = now + self.cfg.lease_copy_sweep.as_millis() as u64;
        let store = self.store.clone();
        let blobs = self.blobs.clone();
        let window = self.cfg.claim_window.as_millis() as u64;
        self.sweeping = Some(tokio::spawn(async move {
            let Ok(jobs) = store.jobs().await else {
                return;
            };
            for mut job in jobs {
                let closed = job
                    .finished_ms()
                    .is_some_and(|at| at.saturating_add(window) <= now);
                if !closed || job.lease_copies_removed {
                    continue;
                }
                let Ok(tasks) = store.tasks_of_job(job.id).await else {
                    continue;
                };
                let mut removed = true;
                for copy in tasks.iter().filter_map(lease_copy) {
                    if !is_customers(&job, copy) && blobs.delete(copy).await.is_err() {
                        removed = false;
                    }
                }
                if removed {
                    job.lease_copies_removed = true;
                    let _ = store.update_job(&job).await;
                }
            }
        }));
    }
}
