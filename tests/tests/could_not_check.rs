//! "Could not check" is never a pass. A worker renders with fewer samples;
//! the only verifier connected cannot re-render the scene (it has no
//! renderer), so it cannot answer the crop challenges that would catch the
//! worker. The round is not given to it: the job says that it waits for a
//! verifier that renders glTF scenes, and nothing is accepted. When such a
//! verifier joins, it re-renders the crops and rejects the result.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::Renderer;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{first_rejection, numbered_worker, spawn_verifiers, FewerSamples};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_cannot_re_render_never_passes_a_result() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        quorum: 1,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"could not check".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    // A verifier that checks files only.
    let _files_only = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(blobs.clone()),
        None,
        scratch.path(),
        &stopped,
    );
    let cheater = numbered_worker(
        &net,
        100,
        &addr,
        Arc::new(FewerSamples {
            inner: tracer.clone(),
            divisor: 8,
        }),
    )
    .with_blob_store(blobs.clone());
    let cheater_id = cheater.id();
    tokio::spawn(cheater.run(stopped.clone()));

    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
    spec.settings.width = 64;
    spec.settings.height = 48;
    spec.settings.samples = 16;
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();

    // The cheater's result reaches verification and waits there: the one
    // verifier connected could only say it could not check the crops.
    let why = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::Waiting { reason } if reason.contains("verification of task") => {
                    return reason
                }
                JobEvent::TaskAccepted { worker, .. } => {
                    panic!("{worker:?}'s result was accepted without its crops checked")
                }
                JobEvent::TaskRejected { reasons, .. } => {
                    panic!("rejected without a re-render: {reasons:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the round says it waits");
    assert!(why.contains("renders glTF scenes"), "{why}");
    let task = store.tasks_of_job(job).await.unwrap().remove(0);
    assert_eq!(
        task.status,
        inferix_core::task::TaskStatus::Verifying,
        "{task:?}"
    );

    // A verifier that renders joins, re-renders the crops and rejects it.
    let renderer = VerifierNode::new(
        Arc::new(net.transport(NodeId(250))),
        VerifierConfig {
            manager: addr.clone(),
            work_dir: scratch.path().join("renderer"),
            ..VerifierConfig::default()
        },
    )
    .with_blob_store(blobs.clone())
    .with_renderer(tracer.clone());
    tokio::spawn(renderer.run(stopped.clone()));
    let reasons = first_rejection(&mut events, cheater_id, Duration::from_secs(300)).await;
    assert!(
        reasons.iter().any(|r| r.contains("re-rendered crop")),
        "rejected for its crops: {reasons:?}"
    );
    let _ = stop.send(true);
    manager.shutdown().await;
}
