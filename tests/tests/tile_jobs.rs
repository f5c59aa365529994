//! Tile jobs through the network with Proof of Render on: each frame is
//! split into tiles rendered by two workers, each tile watermarked,
//! challenged and cleaned on its own, and the frames the customer
//! downloads are bit-identical to the same frames rendered whole locally.
//! When stitching fails the job waits, saying why, and is finished by the
//! manager's housekeeping once the blobs can be read again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore};
use inferix_core::job::{FrameRange, JobSpecError, JobState};
use inferix_core::protocol::JobEvent;
use inferix_core::task::TaskStatus;
use inferix_core::ContentHash;
use inferix_node::ManagerConfig;
use inferix_tests::{assert_clean_delivery, until_completed, PorNetwork};

/// Renders `frames` of the demo scene at 64×48 in 2×2 tiles through the
/// network and compares the downloads with whole local renders.
async fn tile_job_equals_whole_frames(frames: FrameRange) {
    let n = PorNetwork::start(
        b"tile jobs",
        ManagerConfig {
            quorum: 1,
            ..ManagerConfig::default()
        },
    )
    .await;
    let client = n.client().await;
    let mut spec = PorNetwork::demo_job(&client, 1, 1).await;
    spec.frames = frames;
    spec.tiles = Some("2x2".parse().unwrap());
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    n.rendering_verifiers(1);
    for w in 100..102 {
        n.worker(w, n.tracer.clone());
    }
    until_completed(&mut events, Duration::from_secs(600)).await;

    let tasks = n.store.tasks_of_job(job).await.unwrap();
    assert_eq!(tasks.len() as u64, frames.len() * 4, "one task per tile");
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Accepted);
        let region = spec.task_region(t.id.index).unwrap();
        for f in &t.result.as_ref().unwrap().frames {
            assert_eq!((f.width, f.height), (region.width, region.height));
        }
    }
    let out = n.scratch.path().join("out");
    let files = client.download(job, &out).await.unwrap();
    assert_eq!(files.len() as u64, frames.len(), "one file per frame");
    // The scene the customer sent, as the local renderer reads it.
    let scene = n.scratch.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    assert_clean_delivery(&*n.store, job, &files, &*n.tracer, &scene, &spec.settings).await;
    n.shut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tiled_still_equals_the_frame_rendered_whole() {
    tile_job_equals_whole_frames(FrameRange::new(1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_frame_of_a_tiled_animation_equals_the_frame_rendered_whole() {
    tile_job_equals_whole_frames(FrameRange::new(1, 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impossible_tile_grids_are_refused_naming_the_field() {
    let n = PorNetwork::start(b"tile grids", ManagerConfig::default()).await;
    let client = n.client().await;
    let mut spec = PorNetwork::demo_job(&client, 1, 1).await;
    for bad in ["0x2", "65x1", "2x49", "4096x4096"] {
        spec.tiles = Some(bad.parse().unwrap());
        let err = spec.validate().unwrap_err();
        assert!(matches!(err, JobSpecError::Tiles(_)), "{bad}: {err:?}");
        let refused = client.submit(&spec).await.unwrap_err().to_string();
        assert!(refused.contains("tiles "), "{bad}: {refused}");
    }
    n.shut().await;
}

/// The manager's way to the shared blob store: while `broken`, reading a
/// blob the manager wrote itself (the cleaned tiles it stitches) fails.
struct Breakable {
    inner: Arc<dyn BlobStore>,
    written: Mutex<HashSet<ContentHash>>,
    broken: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

#[async_trait]
impl BlobStore for Breakable {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        let meta = self.inner.put(reader).await?;
        self.written.lock().unwrap().insert(meta.hash);
        Ok(meta)
    }
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        if self.broken.load(Ordering::SeqCst) && self.written.lock().unwrap().contains(&hash) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(BlobError::Io(std::io::Error::other("disk unplugged")));
        }
        self.inner.get(hash).await
    }
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        self.inner.size(hash).await
    }
    fn max_blob_size(&self) -> u64 {
        self.inner.max_blob_size()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tile_job_whose_stitching_fails_waits_and_completes_once_it_succeeds() {
    let broken = Arc::new(AtomicBool::new(true));
    let refused = Arc::new(AtomicUsize::new(0));
    let (b, r) = (broken.clone(), refused.clone());
    let n = PorNetwork::start_wrapped(
        b"stitching fails",
        ManagerConfig {
            quorum: 1,
            ..ManagerConfig::default()
        },
        false,
        move |inner| {
            Arc::new(Breakable {
                inner,
                written: Mutex::default(),
                broken: b,
                refused: r,
            })
        },
    )
    .await;
    let client = n.client().await;
    let mut spec = PorNetwork::demo_job(&client, 1, 1).await;
    spec.tiles = Some("2x2".parse().unwrap());
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    n.rendering_verifiers(1);
    for w in 100..102 {
        n.worker(w, n.tracer.clone());
    }

    // Every tile is accepted; progress counts the one frame, not 4 tiles.
    let mut progress = Vec::new();
    let reason = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::TaskAccepted {
                    accepted_frames,
                    total_frames,
                    ..
                } => progress.push((accepted_frames, total_frames)),
                JobEvent::Waiting { reason } if reason.contains("stitching") => return reason,
                JobEvent::Completed { .. } => panic!("completed without its frame"),
                _ => {}
            }
        }
    })
    .await
    .expect("the job waits on stitching in time");
    assert!(reason.contains("disk unplugged"), "{reason}");
    assert_eq!(progress.len(), 4, "{progress:?}");
    assert!(
        progress.iter().all(|(_, total)| *total == 1),
        "{progress:?}"
    );
    assert_eq!(progress[3], (1, 1));
    assert!(refused.load(Ordering::SeqCst) > 0);
    let status = client.status(job).await.unwrap();
    assert_ne!(status.job.state, JobState::Completed);
    assert_eq!(status.job.waiting_reason.as_deref(), Some(reason.as_str()));
    assert!(status.frames.is_empty(), "no frame before it is stitched");

    // The blobs come back: housekeeping stitches and completes the job.
    broken.store(false, Ordering::SeqCst);
    until_completed(&mut events, Duration::from_secs(120)).await;
    let out = n.scratch.path().join("out");
    let files = client.download(job, &out).await.unwrap();
    assert_eq!(files.len(), 1);
    let scene = n.scratch.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    assert_clean_delivery(&*n.store, job, &files, &*n.tracer, &scene, &spec.settings).await;
    n.shut().await;
}
