//! Forced errors end to end: a rubber-stamp verifier (it passes whatever it
//! is offered, at once) joins a network beside an honest one. Known-bad
//! results slipped in among its offers give it away: it is disconnected,
//! its stake and earnings go to the penalty pool (so it is refused when it
//! comes back), and the honest verifier,
//! which fails every known-bad result, keeps its seat. Real path tracer,
//! Proof of Render on, one forced error per seat (rate 1).

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::ledger::{balance, Account};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::Renderer;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{numbered_worker, scripted_verifier, spawn_verifiers, until_completed};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rubber_stamp_verifier_is_caught_by_a_known_bad_result_and_removed() {
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
        forced_error_rate: 1.0,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"forced errors".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let _honest_verifier = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(blobs.clone()),
        Some(tracer.clone()),
        scratch.path(),
        &stopped,
    );
    let worker = numbered_worker(&net, 100, &addr, tracer.clone()).with_blob_store(blobs.clone());
    tokio::spawn(worker.run(stopped.clone()));
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 4));
    spec.settings.width = 64;
    spec.settings.height = 48;
    spec.settings.samples = 16;
    spec.chunk_size = 1;

    // A first job gives the manager accepted results to build known-bad
    // ones from; the honest verifier fails those it gets.
    let (first, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(first).await.unwrap();
    until_completed(&mut events, Duration::from_secs(300)).await;

    // The rubber stamp joins; seated on a round, it also gets a known-bad
    // result, passes it, and is removed.
    let stamp = NodeId(250);
    let stamp_run = {
        let (net, addr) = (net.clone(), addr.clone());
        tokio::spawn(async move { scripted_verifier(&net, &addr, stamp, true).await })
    };
    let mut second = spec.clone();
    second.frames = FrameRange::new(1, 12);
    let (job, _) = client.submit(&second).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(300), stamp_run)
        .await
        .expect("the rubber stamp is disconnected")
        .unwrap();
    assert!(
        run.answered >= 1,
        "it was offered work before it was caught"
    );
    until_completed(&mut events, Duration::from_secs(300)).await;

    let exposition = manager.metrics().encode();
    assert!(
        exposition.contains("inferix_verifiers_caught_total 1"),
        "{exposition}"
    );
    let txs = store.transactions().await.unwrap();
    assert_eq!(
        balance(&txs, &Account::Verifier(stamp)),
        0,
        "what it earned is forfeited"
    );
    assert!(
        balance(&txs, &Account::Verifier(NodeId(200))) > 0,
        "the honest verifier keeps its earnings"
    );
    assert_eq!(
        balance(&txs, &Account::Stake(stamp)),
        0,
        "its stake slashed"
    );
    assert!(balance(&txs, &Account::Stake(NodeId(200))) > 0);
    // Back with the same key, it is refused: its stake is gone.
    let again = scripted_verifier(&net, &addr, stamp, true).await;
    assert_eq!(again.answered, 0);
    let refusal = again.refusal.expect("refused");
    assert!(refusal.contains("stake"), "{refusal}");
    let _ = stop.send(true);
    manager.shutdown().await;
}
