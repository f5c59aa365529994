//! Failures of the manager's own blob store (a full disk, an unreachable
//! object store) are the manager's, not the workers'.
//!
//! A worker whose upload the store refused reports a failed task; blaming
//! it would blocklist every worker in turn and leave the job stuck. While
//! the store refuses writes, such reports are charged to nobody, no task
//! is leased (it could not be delivered), every active job says why it
//! waits, and the store is probed with a tiny write, backing off from one
//! second to a minute, until it accepts writes again: rendering then
//! resumes by itself.

use inferix_core::blob::BlobStoreExt;

use super::*;

/// What a probe writes: a few bytes, stored once whatever the number of
/// probes (blobs are content-addressed).
const PROBE: &[u8] = b"inferix blob store probe";
/// First wait between probes (ms); it doubles up to [`MAX_BACKOFF_MS`].
const MIN_BACKOFF_MS: u64 = 1_000;
const MAX_BACKOFF_MS: u64 = 60_000;

/// An ongoing outage of the blob store.
pub(super) struct StorageOutage {
    reason: String,
    next_probe: u64,
    backoff_ms: u64,
}

impl State {
    /// The store failed a write: leasing pauses and active jobs say why.
    pub(super) async fn storage_failed(&mut self, reason: String) {
        if self.storage_outage.is_some() {
            return;
        }
        warn!(%reason, "the blob store refuses writes; leasing paused until it accepts them again");
        let now = self.now();
        self.storage_outage = Some(StorageOutage {
            reason: reason.clone(),
            next_probe: now + MIN_BACKOFF_MS,
            backoff_ms: MIN_BACKOFF_MS,
        });
        let why = format!(
            "the manager's blob store refuses writes ({reason}); rendering resumes by itself \
             when it accepts them again"
        );
        let active: Vec<Job> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Active)
            .cloned()
            .collect();
        for job in active {
            self.mark_waiting(job, why.clone()).await;
        }
    }

    /// A worker says the blob store failed it: a probe write of the
    /// manager's own tells whether the store is failing (an outage begins)
    /// or the trouble is the worker's (its path to the store, or a lie).
    pub(super) async fn confirm_storage_failure(&mut self) {
        if let Err(e) = self.blobs.put_bytes(PROBE.to_vec()).await {
            self.storage_failed(e.to_string()).await;
        }
    }

    /// Whether leasing is paused by a blob-store outage. Probes the store
    /// when the backoff allows and ends the outage once a write succeeds.
    pub(super) async fn storage_paused(&mut self) -> bool {
        let now = self.clock.now_ms();
        let Some(outage) = self.storage_outage.as_mut() else {
            return false;
        };
        if now < outage.next_probe {
            return true;
        }
        match self.blobs.put_bytes(PROBE.to_vec()).await {
            Ok(_) => {
                info!(was = %outage.reason, "the blob store accepts writes again; leasing resumes");
                self.storage_outage = None;
                false
            }
            Err(e) => {
                outage.reason = e.to_string();
                outage.backoff_ms = (outage.backoff_ms * 2).min(MAX_BACKOFF_MS);
                outage.next_probe = now + outage.backoff_ms;
                true
            }
        }
    }
}
