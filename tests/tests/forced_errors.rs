//! Forced errors end to end: a rubber-stamp verifier (it passes whatever it
//! is offered, at once) joins a network beside an honest one. Known-bad
//! results slipped in among its offers give it away: it is disconnected,
//! its earnings are forfeited to the penalty pool, and the honest verifier,
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
use inferix_core::protocol::{Envelope, Hello, Message, Role, Verdict};
use inferix_core::renderer::{Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{numbered_worker, spawn_verifiers, until_completed};
use inferix_transport::{InProcNetwork, Transport};
use tokio::sync::watch;

/// A verifier that passes every offer without looking; returns how many it
/// answered once the manager closes its connection.
async fn rubber_stamp(net: &InProcNetwork, addr: &str, id: NodeId) -> u32 {
    let mut conn = net.transport(id).connect(addr).await.unwrap();
    let hello = Hello {
        role: Role::Verifier,
        node: id,
        ib: 0.0,
        tags: vec![],
        device_class: "sim".into(),
        token: None,
        formats: vec![SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    let mut answered = 0;
    while let Ok(Some(env)) = conn.receiver.recv().await {
        if let Message::VerifyOffer(a) = env.body {
            let verdict = Verdict {
                verification: a.verification,
                task: a.task,
                passed: true,
                reasons: vec![],
                clean: vec![],
                inconclusive: None,
            };
            if conn
                .sender
                .send(Envelope::push(Message::VerifyDone(verdict)))
                .await
                .is_err()
            {
                break;
            }
            answered += 1;
        }
    }
    answered
}

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
        tokio::spawn(async move { rubber_stamp(&net, &addr, stamp).await })
    };
    let mut second = spec.clone();
    second.frames = FrameRange::new(1, 12);
    let (job, _) = client.submit(&second).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(300), stamp_run)
        .await
        .expect("the rubber stamp is disconnected")
        .unwrap();
    assert!(answered >= 1, "it was offered work before it was caught");
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
    let _ = stop.send(true);
    manager.shutdown().await;
}
