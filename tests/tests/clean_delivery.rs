//! Clean delivery against a lying verifier: it passes honest results but
//! sends painted "clean" pixels for the watermark rectangles. Beside two
//! honest verifiers its pixels are outvoted and the customer's frames equal
//! a local render; beside one honest verifier nobody can tell whose pixels
//! are right, so no frame is delivered and the job says why it waits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::image::{Image, Rect};
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_core::ContentHash;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{assert_clean_delivery, seeded_identity, spawn_verifiers, until_completed};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// Renders honestly, except crops of the customer's own scene (the clean
/// pixels of clean delivery), which it paints white.
struct PaintsCleanPixels {
    inner: Arc<dyn Renderer>,
    clean_scene: ContentHash,
}

#[async_trait]
impl Renderer for PaintsCleanPixels {
    fn name(&self) -> &str {
        "paints-clean-pixels"
    }
    fn formats(&self) -> &[SceneFormat] {
        self.inner.formats()
    }
    fn device_class(&self) -> String {
        self.inner.device_class()
    }
    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        self.inner.render(req).await
    }
    async fn render_crops(
        &self,
        req: RenderRequest,
        rects: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        let clean = req
            .scene
            .to_string_lossy()
            .contains(&self.clean_scene.to_hex());
        let mut out = self.inner.render_crops(req, rects).await?;
        if clean {
            for f in &mut out {
                let white = vec![1.0; f.image.pixels.len()];
                f.image = Image {
                    pixels: white,
                    ..f.image.clone()
                };
            }
        }
        Ok(out)
    }
}

struct Network {
    net: InProcNetwork,
    store: Arc<dyn TaskStore>,
    blobs: Arc<dyn BlobStore>,
    tracer: Arc<dyn Renderer>,
    manager: inferix_node::ManagerHandle,
    client: Client,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    scratch: tempfile::TempDir,
}

async fn network(quorum: usize) -> Network {
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
        quorum,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path().join("manager"))
    .proof_of_render(PorConfig::new(ManagerSecret(b"clean delivery".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let client = Client::connect_with_blobs(
        &net.transport(NodeId(300)),
        manager.addr(),
        None,
        blobs.clone(),
    )
    .await
    .unwrap();
    let (stop, stopped) = watch::channel(false);
    Network {
        net,
        store,
        blobs,
        tracer,
        manager,
        client,
        stop,
        stopped,
        scratch,
    }
}

impl Network {
    /// Starts the lying verifier (node id 250) and one honest worker.
    fn start_liar_and_worker(&self, clean_scene: ContentHash) -> Vec<tokio::task::JoinHandle<()>> {
        let liar = VerifierNode::new(
            Arc::new(self.net.transport(NodeId(250))),
            VerifierConfig {
                manager: self.manager.addr().into(),
                work_dir: self.scratch.path().join("liar"),
                ..VerifierConfig::default()
            },
        )
        .with_blob_store(self.blobs.clone())
        .with_renderer(Arc::new(PaintsCleanPixels {
            inner: self.tracer.clone(),
            clean_scene,
        }));
        let worker = WorkerNode::new(
            Arc::new(self.net.node(seeded_identity(100))),
            self.tracer.clone(),
            WorkerConfig {
                manager: self.manager.addr().into(),
                work_dir: self.scratch.path().join("worker"),
                heartbeat: Duration::from_millis(200),
                ..WorkerConfig::default()
            },
        )
        .with_blob_store(self.blobs.clone());
        let (a, b) = (self.stopped.clone(), self.stopped.clone());
        vec![
            tokio::spawn(async move {
                let _ = liar.run(a).await;
            }),
            tokio::spawn(async move {
                let _ = worker.run(b).await;
            }),
        ]
    }

    async fn submit(&self, frames: u32) -> (inferix_core::ids::JobId, JobSpec) {
        let scene = self
            .client
            .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
            .await
            .unwrap();
        let mut spec = JobSpec::new(scene, FrameRange::new(1, frames));
        spec.settings.width = 48;
        spec.settings.height = 36;
        spec.settings.samples = 4;
        spec.chunk_size = 1;
        let (job, _) = self.client.submit(&spec).await.unwrap();
        (job, spec)
    }

    async fn finish(self, mut nodes: Vec<tokio::task::JoinHandle<()>>) {
        let _ = self.stop.send(true);
        for n in nodes.drain(..) {
            let _ = n.await;
        }
        self.manager.shutdown().await;
    }
}

fn write_scene(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("demo.glb");
    std::fs::write(&path, inferix_gpu::demo_scene_glb()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn painted_clean_pixels_are_outvoted_by_honest_verifiers() {
    let n = network(3).await;
    let (job, spec) = n.submit(2).await;
    let mut events = n.client.watch(job).await.unwrap();
    let mut nodes = n.start_liar_and_worker(spec.scene.blob);
    for h in spawn_verifiers(
        &n.net,
        n.manager.addr(),
        2,
        Some(n.blobs.clone()),
        Some(n.tracer.clone()),
        n.scratch.path(),
        &n.stopped,
    ) {
        nodes.push(tokio::spawn(async move {
            let _ = h.await;
        }));
    }
    until_completed(&mut events, Duration::from_secs(300)).await;
    let files = n
        .client
        .download(job, &n.scratch.path().join("out"))
        .await
        .unwrap();
    let scene = write_scene(n.scratch.path());
    assert_clean_delivery(&*n.store, job, &files, &*n.tracer, &scene, &spec.settings).await;
    // The honest verifiers rendered what was delivered, and were paid for it.
    for t in n.store.tasks_of_job(job).await.unwrap() {
        assert!(t.delivered.iter().all(|d| d.verifier != NodeId(250)));
    }
    n.finish(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_even_split_over_clean_pixels_delivers_nothing_and_says_why() {
    let n = network(2).await;
    let (job, spec) = n.submit(1).await;
    let mut events = n.client.watch(job).await.unwrap();
    let mut nodes = n.start_liar_and_worker(spec.scene.blob);
    for h in spawn_verifiers(
        &n.net,
        n.manager.addr(),
        1,
        Some(n.blobs.clone()),
        Some(n.tracer.clone()),
        n.scratch.path(),
        &n.stopped,
    ) {
        nodes.push(tokio::spawn(async move {
            let _ = h.await;
        }));
    }
    let reason = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match events.recv().await.expect("events") {
                JobEvent::Waiting { reason } if reason.contains("clean frames") => break reason,
                JobEvent::TaskAccepted { .. } | JobEvent::Completed { .. } => {
                    panic!("frames were delivered although their clean pixels are disputed")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the job says why it waits");
    assert!(reason.contains("disagree"), "{reason}");
    let tasks = n.store.tasks_of_job(job).await.unwrap();
    assert!(tasks
        .iter()
        .all(|t| t.status != TaskStatus::Accepted && t.delivered.is_empty()));
    n.finish(nodes).await;
}
