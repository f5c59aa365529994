//! Garbage collection of blobs that no job names.
//!
//! Blobs are stored before anything names them (a client uploads its scene,
//! then submits; a worker uploads its frames, then sends its result), and
//! many are never named, or stop being named: uploads never submitted,
//! frames of rejected results and of superseded attempts, known-bad frames.
//! Every `blob_sweep` the manager deletes the blobs that no job or task in
//! the task store names and that were stored before the retention period
//! (`blob_retention`); the period covers the time between a blob's upload
//! and the record that names it. A blob some job names, however old, stays.
//!
//! Names are read before blobs are listed: a blob named after the names
//! were read was stored, or stored again, since the sweep began (a store
//! renews the modification time of content uploaded again), so the listing
//! shows it young. What remains is a blob older than the retention period
//! that a record starts naming, with no upload of it, while one sweep runs.
//!
//! The manager's clock sets the cutoff, and the blob store's clock dates
//! the blobs: both read wall time outside simulations, and a simulated
//! clock set in the past only makes every blob young.
//!
//! Several managers sharing one task store may sweep the same blob store:
//! each sees every job, so each deletes only what all of them may. A blob
//! store must not be shared by managers of different task stores: each
//! would take the other's blobs for garbage.

use std::collections::HashSet;

use inferix_core::blob::{BlobError, BlobInfo, BlobStore};
use inferix_core::job::{EnvironmentRef, Job, JobSpec, SceneRef};
use inferix_core::store::{StoreError, TaskStore};
use inferix_core::task::{DeliveredFrame, FrameOutput, Lease, Task, TaskClaim, TaskResult};
use inferix_core::ContentHash;

use super::State;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobSweepReport {
    /// Blobs the store listed.
    pub seen: usize,
    /// Blobs deleted.
    pub removed: usize,
    /// Bytes of the deleted blobs.
    pub bytes_freed: u64,
    /// Old, unnamed blobs whose deletion failed; the next sweep tries
    /// again.
    pub failed: usize,
}

/// Why a sweep did not run. Nothing was deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobSweepError {
    /// The task store could not say which blobs its records name: without
    /// all of them, any deletion could be of a blob in use.
    #[error("cannot read which blobs jobs name: {0}")]
    Store(#[from] StoreError),
    /// The blob store could not list its blobs (or does not list at all:
    /// [`BlobError::Unsupported`]).
    #[error("cannot list blobs: {0}")]
    List(#[source] BlobError),
}

/// Adds every blob that `job` and its `tasks` name to `names`: the scene
/// and environment map; each task's lease copy (of its lease, or of the
/// scene its result was rendered from), unless the job's copies were
/// removed once its claim window closed; each result's frames; each
/// delivered (clean) frame.
///
/// Every record is taken apart field by field, so that a field added to
/// any of them does not compile until it is decided here whether it names
/// a blob: a blob named only by a field missed here would be deleted.
pub fn add_names(job: &Job, tasks: &[Task], names: &mut HashSet<ContentHash>) {
    let Job {
        id: _,
        spec,
        state: _,
        created_ms: _,
        quoted_price: _,
        waiting_reason: _,
        blocklist: _,
        history: _,
        warnings: _,
        lease_copies_removed,
        owner: _,
        outputs,
    } = job;
    let JobSpec {
        scene,
        frames: _,
        settings: _,
        format: _,
        chunk_size: _,
        min_ib: _,
        priority: _,
        tags: _,
        environment,
        tiles: _,
        outputs: _,
    } = spec;
    let SceneRef {
        blob: scene,
        format: _,
        file_name: _,
    } = scene;
    names.insert(*scene);
    if let Some(EnvironmentRef { blob, file_name: _ }) = environment {
        names.insert(*blob);
    }
    // A finished job's outputs are downloaded like its frames.
    names.extend(outputs.iter().filter_map(|o| o.blob()));
    for task in tasks {
        let Task {
            id: _,
            frames: _,
            status: _,
            lease,
            result,
            attempts: _,
            failures: _,
            excluded: _,
            round_manager: _,
            version: _,
            history: _,
            delivered,
            claims,
            operator: _,
            stitched,
            passed_by: _,
        } = task;
        // Stitched frames of a tile job are what its customer downloads.
        names.extend(stitched.iter().map(|f| f.blob));
        // A claim still being checked re-renders from the copy.
        let open_claim = claims.iter().any(|c| {
            let TaskClaim {
                frames: _,
                reason: _,
                filed_ms: _,
                bond: _,
                payer: _,
                upheld,
            } = c;
            upheld.is_none()
        });
        let copies = !lease_copies_removed || open_claim;
        if let Some(Lease {
            worker: _,
            manager: _,
            deadline_ms: _,
            scene: Some(copy),
        }) = lease
        {
            if copies {
                names.insert(*copy);
            }
        }
        if let Some(TaskResult {
            worker: _,
            frames,
            render_ms: _,
            attempt: _,
            scene: copy,
            device_class: _,
            public_key: _,
            signature: _,
        }) = result
        {
            if copies {
                names.insert(*copy);
            }
            for f in frames {
                let FrameOutput {
                    frame: _,
                    pixel_hash: _,
                    blob,
                    width: _,
                    height: _,
                    tile_root: _,
                } = f;
                names.insert(*blob);
            }
        }
        for d in delivered {
            let DeliveredFrame {
                frame: _,
                blob,
                pixel_hash: _,
                verifier: _,
                clean_pixels: _,
            } = d;
            names.insert(*blob);
        }
    }
}

/// The blobs of `listing` to delete: stored before `cutoff_ms` and not in
/// `names`; each once, should a backend list one twice.
pub fn select_garbage(
    listing: &[BlobInfo],
    names: &HashSet<ContentHash>,
    cutoff_ms: u64,
) -> Vec<BlobInfo> {
    let mut chosen = HashSet::new();
    listing
        .iter()
        .filter(|b| b.modified_ms < cutoff_ms && !names.contains(&b.hash))
        .filter(|b| chosen.insert(b.hash))
        .copied()
        .collect()
}

/// Every blob a job or task in `store` names (see [`add_names`]).
pub async fn named_blobs(store: &dyn TaskStore) -> Result<HashSet<ContentHash>, StoreError> {
    let mut names = HashSet::new();
    for job in store.jobs().await? {
        let tasks = store.tasks_of_job(job.id).await?;
        add_names(&job, &tasks, &mut names);
    }
    Ok(names)
}

/// One sweep: deletes the blobs of `blobs` stored before `cutoff_ms` (ms
/// since the Unix epoch, by the blob store's clock) that no record of
/// `store` names and that are not in `held` (blobs that records held only
/// in memory name).
///
/// Fails, having deleted nothing, when the names cannot all be read or the
/// blobs cannot be listed. A failed deletion is counted and logged, and
/// the rest go on.
pub async fn collect_garbage(
    store: &dyn TaskStore,
    blobs: &dyn BlobStore,
    cutoff_ms: u64,
    held: &HashSet<ContentHash>,
) -> Result<BlobSweepReport, BlobSweepError> {
    let mut names = named_blobs(store).await?;
    names.extend(held);
    let listing = blobs.list().await.map_err(BlobSweepError::List)?;
    let mut report = BlobSweepReport {
        seen: listing.len(),
        ..BlobSweepReport::default()
    };
    for blob in select_garbage(&listing, &names, cutoff_ms) {
        match blobs.delete(blob.hash).await {
            Ok(()) => {
                report.removed += 1;
                report.bytes_freed += blob.size;
            }
            Err(e) => {
                tracing::debug!(blob = %blob.hash, error = %e, "unnamed blob not removed");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

impl State {
    /// Every `blob_sweep`, deletes the blobs no job names that are older
    /// than `blob_retention`, beside the loop; a sweep still running when
    /// the next is due is left to finish instead.
    pub(super) fn sweep_blobs(&mut self, now: u64) {
        if self
            .blob_sweeping
            .as_ref()
            .is_some_and(|s| !s.is_finished())
            || now < self.next_blob_sweep
        {
            return;
        }
        let period = u64::try_from(self.cfg.blob_sweep.as_millis()).unwrap_or(u64::MAX);
        let retention = u64::try_from(self.cfg.blob_retention.as_millis()).unwrap_or(u64::MAX);
        self.next_blob_sweep = now.saturating_add(period);
        let cutoff = now.saturating_sub(retention);
        // Results that arrived while the task database was away are in
        // memory (and the journal) only.
        let held: HashSet<ContentHash> = self
            .buffered
            .iter()
            .flat_map(|(_, _, r)| r.frames.iter().map(|f| f.blob).chain([r.scene]))
            .collect();
        let (store, blobs) = (self.store.clone(), self.blobs.clone());
        let collected = self.blobs_collected.clone();
        self.blob_sweeping = Some(tokio::spawn(async move {
            let result = collect_garbage(&*store, &*blobs, cutoff, &held).await;
            if let Ok(r) = &result {
                collected.send_modify(|n| *n += r.removed as u64);
            }
            match result {
                Ok(r) if r.removed > 0 || r.failed > 0 => tracing::info!(
                    seen = r.seen,
                    removed = r.removed,
                    bytes_freed = r.bytes_freed,
                    failed = r.failed,
                    "blobs no job names removed"
                ),
                Ok(r) => tracing::debug!(seen = r.seen, "no blob to remove"),
                Err(BlobSweepError::List(BlobError::Unsupported(_))) => {
                    tracing::debug!("the blob store does not list blobs; none removed")
                }
                Err(e) => tracing::warn!(error = %e, "blob sweep skipped"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use inferix_core::ids::{JobId, NodeId, TaskId};
    use inferix_core::job::{FrameRange, JobState};
    use inferix_core::ledger::Account;
    use inferix_core::renderer::SceneFormat;

    use super::*;

    fn h(s: &str) -> ContentHash {
        ContentHash::of(s.as_bytes())
    }

    fn info(name: &str, size: u64, modified_ms: u64) -> BlobInfo {
        BlobInfo {
            hash: h(name),
            size,
            modified_ms,
        }
    }

    fn job(removed: bool) -> Job {
        let scene = SceneRef {
            blob: h("scene"),
            format: SceneFormat::Gltf,
            file_name: "s.glb".into(),
        };
        let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
        spec.environment = Some(EnvironmentRef {
            blob: h("map"),
            file_name: "sky.hdr".into(),
        });
        Job {
            id: JobId(7),
            spec,
            state: JobState::Completed,
            created_ms: 1,
            quoted_price: 0,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: Vec::new(),
            warnings: Vec::new(),
            lease_copies_removed: removed,
            owner: None,
            outputs: Vec::new(),
        }
    }

    fn frame(n: u32, blob: &str) -> FrameOutput {
        FrameOutput {
            frame: n,
            pixel_hash: h(&format!("pixels {n}")),
            blob: h(blob),
            width: 4,
            height: 4,
            tile_root: h(&format!("tiles {n}")),
        }
    }

    /// A task with an accepted result rendered from `copy`, a delivered
    /// frame, and (when `leased`) a lease of a newer copy.
    fn task(n: u32, leased: bool) -> Task {
        let mut t = Task::new(
            TaskId {
                job: JobId(7),
                index: n,
            },
            vec![n],
            1,
        );
        t.result = Some(TaskResult {
            worker: NodeId(100),
            frames: vec![frame(n, &format!("frame {n}"))],
            render_ms: 1,
            attempt: 1,
            scene: h(&format!("copy {n}")),
            device_class: String::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
        });
        t.delivered = vec![DeliveredFrame {
            frame: n,
            blob: h(&format!("clean {n}")),
            pixel_hash: h("clean pixels"),
            verifier: NodeId(200),
            clean_pixels: 3,
        }];
        if leased {
            t.lease = Some(Lease {
                worker: NodeId(101),
                manager: NodeId(1),
                deadline_ms: 10,
                scene: Some(h(&format!("leased copy {n}"))),
            });
        }
        t
    }

    fn names_of(job: &Job, tasks: &[Task]) -> HashSet<ContentHash> {
        let mut names = HashSet::new();
        add_names(job, tasks, &mut names);
        names
    }

    #[test]
    fn only_old_unnamed_blobs_are_chosen() {
        let names: HashSet<_> = [h("scene")].into();
        let listing = [
            info("scene", 10, 0),
            info("old upload", 20, 99),
            info("young upload", 30, 101),
            info("exactly at the cutoff", 40, 100),
        ];
        let chosen = select_garbage(&listing, &names, 100);
        assert_eq!(chosen, vec![info("old upload", 20, 99)]);
    }

    #[test]
    fn a_named_blob_is_never_chosen_however_old() {
        let names: HashSet<_> = [h("a"), h("b")].into();
        let listing = [info("a", 1, 0), info("b", 1, 0), info("c", 1, 0)];
        let chosen = select_garbage(&listing, &names, u64::MAX);
        assert_eq!(chosen, vec![info("c", 1, 0)]);
    }

    #[test]
    fn a_blob_listed_twice_is_chosen_once() {
        let listing = [info("a", 5, 1), info("a", 5, 1)];
        assert_eq!(select_garbage(&listing, &HashSet::new(), 2).len(), 1);
        assert!(select_garbage(&[], &HashSet::new(), u64::MAX).is_empty());
    }

    #[test]
    fn a_job_names_its_scene_map_frames_clean_frames_and_lease_copies() {
        let names = names_of(&job(false), &[task(1, true), task(2, false)]);
        let expected: HashSet<_> = [
            "scene",
            "map",
            "frame 1",
            "frame 2",
            "clean 1",
            "clean 2",
            "copy 1",
            "copy 2",
            "leased copy 1",
        ]
        .map(h)
        .into();
        assert_eq!(names, expected);
    }

    #[test]
    fn ready_outputs_are_named_and_others_name_nothing() {
        use inferix_core::outputs::{JobOutput, OutputRequest, OutputState};
        let mut j = job(true);
        let before = names_of(&j, &[]);
        j.outputs = vec![
            JobOutput {
                request: OutputRequest::Zip,
                state: OutputState::Ready {
                    blob: h("frames.zip"),
                    size: 3,
                },
            },
            JobOutput::pending(OutputRequest::Tar),
            JobOutput {
                request: OutputRequest::Mp4 { fps: 24 },
                state: OutputState::Failed {
                    reason: "no ffmpeg".into(),
                },
            },
        ];
        let after = names_of(&j, &[]);
        assert_eq!(after.len(), before.len() + 1);
        assert!(after.contains(&h("frames.zip")));
    }

    #[test]
    fn removed_lease_copies_are_named_no_more_unless_a_claim_is_open() {
        let names = names_of(&job(true), &[task(1, true)]);
        assert!(!names.contains(&h("copy 1")) && !names.contains(&h("leased copy 1")));
        assert!(names.contains(&h("frame 1")) && names.contains(&h("clean 1")));

        let mut claimed = task(1, false);
        claimed.claims.push(TaskClaim {
            frames: vec![1],
            reason: "noise".into(),
            filed_ms: 5,
            bond: 10,
            payer: Account::PenaltyPool,
            upheld: None,
        });
        assert!(names_of(&job(true), &[claimed.clone()]).contains(&h("copy 1")));
        claimed.claims[0].upheld = Some(false);
        assert!(!names_of(&job(true), &[claimed]).contains(&h("copy 1")));
    }
}
