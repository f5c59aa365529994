//! Bad input gets clear, typed errors and loses nothing already accepted.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec, JobState, SceneRef};
use inferix_core::protocol::{ErrorCode, JobEvent};
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::SceneFormat;
use inferix_core::store::MemoryTaskStore;
use inferix_core::ContentHash;
use inferix_node::{
    Client, ClientError, ManagerBuilder, ManagerConfig, NodeError, VerifierConfig, VerifierNode,
    WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_tests::start_manager;
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

fn refused(e: ClientError) -> ErrorCode {
    match e {
        ClientError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn worker(net: &InProcNetwork, id: u128, addr: &str, ib: f64, token: Option<&str>) -> WorkerNode {
    let cfg = WorkerConfig {
        manager: addr.into(),
        ib,
        token: token.map(Into::into),
        work_dir: std::env::temp_dir().join(format!("inferix-bad-input-{id}")),
        ..WorkerConfig::default()
    };
    let renderer = StandInRenderer::new(StandInBehaviour::Honest, Duration::from_millis(100));
    WorkerNode::new(
        Arc::new(net.node(inferix_tests::seeded_identity(id))),
        Arc::new(renderer),
        cfg,
    )
}

#[tokio::test(start_paused = true)]
async fn bad_jobs_are_refused_and_unmeetable_ones_wait_with_a_reason() {
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let config = ManagerConfig {
        node_token: Some("node-secret".into()),
        guest_account: None,
        quorum: 1,
        ..ManagerConfig::default()
    };
    let store = Arc::new(MemoryTaskStore::new());
    let accounts = inferix_core::store::accounts::Accounts::new(&*store);
    let (_, key) = accounts.create("ana", false, 1).await.unwrap();
    accounts
        .deposit("ana", i64::MAX / 2, "funds", 1)
        .await
        .unwrap();
    let manager = start_manager(&net, store.clone(), blobs.clone(), config).await;
    let addr = manager.addr().to_string();

    // A client without an API key cannot submit anything.
    let anonymous = Client::connect(&net.transport(NodeId(50)), &addr, None).await;
    assert_eq!(
        refused(anonymous.err().expect("refused")),
        ErrorCode::Unauthorized
    );
    // A worker without an admitted identity cannot take tasks.
    let (_stop_bad, stopped_bad) = watch::channel(false);
    let intruder = worker(&net, 60, &addr, 5.0, None).run(stopped_bad).await;
    assert!(
        matches!(intruder, Err(NodeError::Refused(_))),
        "got {intruder:?}"
    );

    let client = Client::connect(&net.transport(NodeId(51)), &addr, Some(key))
        .await
        .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let spec = |frames: FrameRange| {
        let mut s = JobSpec::new(scene.clone(), frames);
        s.settings.width = 8;
        s.settings.height = 8;
        s
    };

    let missing = SceneRef {
        blob: ContentHash::of(b"nope"),
        format: SceneFormat::Gltf,
        file_name: "x.glb".into(),
    };
    let e = client
        .submit(&JobSpec::new(missing, FrameRange::new(1, 2)))
        .await
        .unwrap_err();
    assert_eq!(refused(e), ErrorCode::NotFound);
    assert_eq!(
        refused(
            client
                .submit(&spec(FrameRange::new(5, 1)))
                .await
                .unwrap_err()
        ),
        ErrorCode::InvalidRequest
    );
    let mut zero_chunk = spec(FrameRange::new(1, 5));
    zero_chunk.chunk_size = 0;
    let e = client.quote(&zero_chunk).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused { message, .. } if message.contains("chunk size")),
        "{e}"
    );
    assert_eq!(
        refused(client.status(JobId(77)).await.unwrap_err()),
        ErrorCode::NotFound
    );
    // A glTF file that does not load is refused with the reason, before
    // any worker spends an attempt on it.
    let garbage = client
        .upload_scene_bytes(b"glTF\x02\0\0\0 truncated".to_vec(), "broken.glb")
        .await
        .unwrap();
    let e = client
        .submit(&JobSpec::new(garbage, FrameRange::new(1, 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused { code: ErrorCode::InvalidRequest, message } if message.contains("cannot be rendered")),
        "{e}"
    );

    // Start one slow worker; a job needing IB 4 waits and says why.
    let (stop, stopped) = watch::channel(false);
    let slow =
        tokio::spawn(worker(&net, 100, &addr, 1.0, Some("node-secret")).run(stopped.clone()));
    let verifier = VerifierNode::new(
        Arc::new(net.transport(NodeId(200))),
        VerifierConfig {
            manager: addr.clone(),
            token: Some("node-secret".into()),
            ..VerifierConfig::default()
        },
    );
    let verifier = tokio::spawn(verifier.run(stopped.clone()));
    let ok = client.submit(&spec(FrameRange::new(1, 4))).await.unwrap().0;
    let mut demanding = spec(FrameRange::new(1, 4));
    demanding.min_ib = 4.0;
    let (waiting, _) = client.submit(&demanding).await.unwrap();
    let mut events = client.watch(waiting).await.unwrap();
    let reason = loop {
        if let Some(JobEvent::Waiting { reason }) = events.recv().await {
            break reason;
        }
    };
    assert!(reason.contains("minimum IB 4"), "{reason}");
    assert_eq!(
        client.wait(ok, |_| {}).await.unwrap().job.state,
        JobState::Completed,
        "other work goes on"
    );
    let status = client.status(waiting).await.unwrap();
    assert_eq!(status.job.state, JobState::Active);
    assert!(status.job.waiting_reason.unwrap().contains("minimum IB"));

    // A fast enough worker joins: the waiting job completes, nothing lost.
    let fast =
        tokio::spawn(worker(&net, 101, &addr, 8.0, Some("node-secret")).run(stopped.clone()));
    let done = client.wait(waiting, |_| {}).await.unwrap();
    assert_eq!(done.job.state, JobState::Completed);
    assert_eq!(done.frames.len(), 4);
    assert_eq!(
        client.status(ok).await.unwrap().frames.len(),
        4,
        "earlier job still complete"
    );
    let _ = stop.send(true);
    for h in [slow, fast, verifier] {
        h.await.unwrap().unwrap();
    }
    manager.shutdown().await;
    let _ = blobs.get_bytes(scene.blob).await.unwrap();
}

/// A scene with no light and no camera renders with the default studio and
/// camera; a manager without a probe renderer still says so in the job's
/// status, as `inferix render` does on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightless_camera_less_scene_is_accepted_with_warnings_in_its_status() {
    let net = InProcNetwork::new();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        Arc::new(MemoryTaskStore::new()),
        Arc::new(ObjectBlobStore::in_memory()),
    )
    .inspector(Arc::new(inferix_gpu::GltfInspector))
    .build()
    .start()
    .await
    .unwrap();
    let client = Client::connect(&net.transport(NodeId(51)), manager.addr(), None)
        .await
        .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::builder::bare_cube_glb(), "cube.glb")
        .await
        .unwrap();
    let (job, quote) = client
        .submit(&JobSpec::new(scene, FrameRange::new(1, 2)))
        .await
        .unwrap();
    let codes = |w: &[inferix_core::renderer::RenderWarning]| -> Vec<String> {
        w.iter().map(|w| w.code.clone()).collect()
    };
    for wanted in ["default-camera", "default-environment"] {
        assert!(
            codes(&quote.warnings).iter().any(|c| c == wanted),
            "{quote:?}"
        );
    }
    let status = client.status(job).await.unwrap();
    assert_eq!(codes(&status.job.warnings), codes(&quote.warnings));
    manager.shutdown().await;
}
