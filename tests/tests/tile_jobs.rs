//! Tile jobs through the network with Proof of Render on: each frame is
//! split into tiles rendered by two workers, each tile watermarked,
//! challenged and cleaned on its own, and the frames the customer
//! downloads are bit-identical to the same frames rendered whole locally.

use std::time::Duration;

use inferix_core::job::{FrameRange, JobSpecError};
use inferix_core::task::TaskStatus;
use inferix_node::ManagerConfig;
use inferix_tests::{
    assert_clean_delivery, numbered_worker, spawn_verifiers, until_completed, PorNetwork,
};

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
    let _verifiers = spawn_verifiers(
        &n.net,
        &n.addr,
        1,
        Some(n.blobs.clone()),
        Some(n.tracer.clone()),
        n.scratch.path(),
        &n.stopped,
    );
    let _workers: Vec<_> = (100..102)
        .map(|w| {
            tokio::spawn(
                numbered_worker(&n.net, w, &n.addr, n.tracer.clone())
                    .with_blob_store(n.blobs.clone())
                    .run(n.stopped.clone()),
            )
        })
        .collect();
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
