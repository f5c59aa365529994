//! Several workers leasing tasks of one Proof-of-Render job at once: each
//! lease's watermarked scene copy is prepared from one download of the
//! scene, and no preparation fails because another one was writing the
//! same file (they used to, with "No such file or directory", burning the
//! tasks' attempts).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::por::prepare::SceneWatermarker;
use inferix_core::por::watermark::Patch;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::{
    RenderError, RenderRequest, RenderSettings, RenderedFrame, Renderer, SceneFormat,
};
use inferix_core::store::MemoryTaskStore;
use inferix_node::{Client, ManagerBuilder, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::seeded_identity;
use inferix_transport::InProcNetwork;
use tokio::sync::{mpsc, watch};

const WORKERS: u128 = 4;

/// A simulated renderer that tells the test each task it was given.
struct Recording {
    inner: StandInRenderer,
    rendered: mpsc::UnboundedSender<Vec<u32>>,
}

#[async_trait]
impl Renderer for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn formats(&self) -> &[SceneFormat] {
        self.inner.formats()
    }
    fn device_class(&self) -> String {
        self.inner.device_class()
    }
    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        let frames = req.frames.clone();
        let out = self.inner.render(req).await;
        if out.is_ok() {
            let _ = self.rendered.send(frames);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_leasing_at_once_all_get_a_prepared_scene() {
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        Arc::new(MemoryTaskStore::new()),
        blobs.clone(),
    )
    .config(ManagerConfig {
        quorum: 1,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"lease preparation".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let mut job_events = manager.subscribe();

    // The job is in the queue before any worker connects, so the workers'
    // hellos lease its tasks together.
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, WORKERS as u32));
    spec.settings.width = 32;
    spec.settings.height = 24;
    spec.chunk_size = 1;
    client.submit(&spec).await.unwrap();

    let (stop, stopped) = watch::channel(false);
    let (rendered_tx, mut rendered) = mpsc::unbounded_channel();
    let mut runs = Vec::new();
    for n in 0..WORKERS {
        let renderer = Recording {
            inner: StandInRenderer::new(StandInBehaviour::Honest, Duration::from_millis(10)),
            rendered: rendered_tx.clone(),
        };
        let worker = WorkerNode::new(
            Arc::new(net.node(seeded_identity(100 + n))),
            Arc::new(renderer),
            WorkerConfig {
                manager: addr.clone(),
                work_dir: scratch.path().join(format!("w{n}")),
                ..WorkerConfig::default()
            },
        )
        .with_blob_store(blobs.clone());
        runs.push(tokio::spawn(worker.run(stopped.clone())));
    }

    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while frames.len() < WORKERS as usize {
            frames.extend(rendered.recv().await.expect("workers run"));
        }
    })
    .await
    .expect("every task is rendered");
    frames.sort_unstable();
    assert_eq!(frames, (1..=WORKERS as u32).collect::<Vec<_>>());
    let mut requeued = Vec::new();
    while let Ok((_, e)) = job_events.try_recv() {
        if let JobEvent::TaskRequeued { reason, .. } = e {
            requeued.push(reason);
        }
    }
    assert!(
        requeued.is_empty(),
        "no lease was lost to its preparation: {requeued:?}"
    );

    let _ = stop.send(true);
    for r in runs {
        let _ = r.await;
    }
    manager.shutdown().await;
}

/// A watermarker that finds no room for patches in any scene.
struct NoRoom;

#[async_trait]
impl SceneWatermarker for NoRoom {
    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }
    async fn watermark(
        &self,
        scene: &std::path::Path,
        _: &[Patch],
        _: &RenderSettings,
        _: &std::path::Path,
    ) -> Result<(), RenderError> {
        Err(RenderError::InvalidScene {
            path: scene.to_path_buf(),
            reason: "no room in front of the camera".into(),
        })
    }
}

/// A scene that cannot carry watermark patches could never be verified: it
/// is refused when submitted, with the reason, and no job is created
/// (before, every lease failed to prepare until the job failed after five
/// attempts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_that_cannot_be_watermarked_is_refused_at_submission() {
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let store = Arc::new(MemoryTaskStore::new());
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"trial".to_vec())))
    .watermarker(Arc::new(NoRoom))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 3));
    spec.settings.width = 32;
    spec.settings.height = 24;
    match client.submit(&spec).await {
        Err(inferix_node::ClientError::Refused { code, message }) => {
            assert_eq!(code, inferix_core::protocol::ErrorCode::InvalidRequest);
            assert!(
                message.contains("Proof-of-Render") && message.contains("no room"),
                "{message}"
            );
        }
        other => panic!("a scene without room for patches was accepted: {other:?}"),
    }
    use inferix_core::store::TaskStore;
    assert!(store.jobs().await.unwrap().is_empty(), "no job was created");
    manager.shutdown().await;
}
