//! A job with the filmic view through the network with Proof of Render on:
//! the worker's frames, the verifier's crop re-renders and the manager's
//! clean pixels all go through the same per-pixel curve, so the job is
//! accepted and the downloaded frames equal a local render with that view,
//! pixel for pixel, and differ from the standard view's.

use std::time::Duration;

use inferix_core::renderer::{RenderRequest, SceneFormat, View};
use inferix_node::ManagerConfig;
use inferix_tests::{assert_clean_delivery, until_completed, PorNetwork};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filmic_job_is_verified_and_delivered_as_rendered_locally() {
    let (n, client) = PorNetwork::with_worker_and_verifier(
        b"filmic view",
        ManagerConfig {
            quorum: 1,
            ..ManagerConfig::default()
        },
    )
    .await;
    let mut spec = PorNetwork::demo_job(&client, 2, 1).await;
    spec.settings.view = View::Filmic;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    until_completed(&mut events, Duration::from_secs(600)).await;

    let files = client
        .download(job, &n.scratch.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    let scene = n.scratch.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    assert_clean_delivery(&*n.store, job, &files, &*n.tracer, &scene, &spec.settings).await;

    // The curve changed the pixels: the standard view's first frame differs.
    let mut standard = spec.settings.clone();
    standard.view = View::Standard;
    let local = n
        .tracer
        .render(RenderRequest {
            scene: scene.clone(),
            format: SceneFormat::Gltf,
            frames: vec![spec.frames.start],
            settings: standard,
            crop: None,
            progress: None,
        })
        .await
        .unwrap();
    let delivered = inferix_codec::decode_png(&std::fs::read(&files[0]).unwrap()).unwrap();
    let plain = local[0].image.to_srgb8();
    let differing = delivered
        .pixels
        .iter()
        .zip(&plain.pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differing > delivered.pixels.len() / 4,
        "only {differing} values differ from the standard view"
    );
    n.shut().await;
}
