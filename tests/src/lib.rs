//! Shared pieces of the end-to-end and simulation tests.

pub mod adversarial;
pub mod cheat_economics;
pub mod work_share;

use std::path::Path;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::protocol::JobEvent;

use async_trait::async_trait;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};

/// A reproducible node identity numbered `n`, for seeded tests.
pub fn seeded_identity(n: u128) -> inferix_transport::NodeIdentity {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&n.to_le_bytes());
    seed[16] = 0x1f;
    inferix_transport::NodeIdentity::from_seed(seed)
}

/// A lazy worker's renderer: renders frames with `1/divisor` of the
/// samples asked for.
pub struct FewerSamples {
    /// The real renderer.
    pub inner: std::sync::Arc<dyn Renderer>,
    /// Sample divisor.
    pub divisor: u32,
}

#[async_trait]
impl Renderer for FewerSamples {
    fn name(&self) -> &str {
        "fewer-samples"
    }
    fn formats(&self) -> &[SceneFormat] {
        self.inner.formats()
    }
    fn device_class(&self) -> String {
        self.inner.device_class()
    }
    async fn render(&self, mut req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        req.settings.samples = (req.settings.samples / self.divisor.max(1)).max(1);
        self.inner.render(req).await
    }
}

/// Waits (up to `limit`) for the first rejection among a job's events; it
/// must blame `cheater`, and no result may be accepted before it.
pub async fn first_rejection(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    cheater: NodeId,
    limit: Duration,
) -> Vec<String> {
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::TaskRejected {
                    worker, reasons, ..
                } => {
                    assert_eq!(
                        worker, cheater,
                        "an honest worker was rejected: {reasons:?}"
                    );
                    return reasons;
                }
                JobEvent::TaskAccepted { worker, .. } => {
                    panic!("{worker:?}'s result was accepted before the cheater's was judged")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the cheater's result is judged in time")
}

/// Waits (up to `limit`) for the job to complete; returns who rendered each
/// accepted task. Rejections of anyone but `cheater` (whose earlier results
/// may still be judged) fail the test.
pub async fn accepted_until_completed(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    cheater: NodeId,
    limit: Duration,
) -> Vec<NodeId> {
    tokio::time::timeout(limit, async {
        let mut by = Vec::new();
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::TaskAccepted { worker, .. } => by.push(worker),
                JobEvent::TaskRejected {
                    worker, reasons, ..
                } if worker != cheater => panic!("honest worker {worker:?} rejected: {reasons:?}"),
                JobEvent::Completed { .. } => return by,
                JobEvent::Failed { reason } => panic!("job failed: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the job completes in time")
}

/// A worker numbered `n` (its identity seeded from `n`) for the manager at
/// `addr`, rendering with `renderer`, its files in its own temporary
/// folder, heartbeating every 200 ms.
pub fn numbered_worker(
    net: &inferix_transport::InProcNetwork,
    n: u128,
    addr: &str,
    renderer: std::sync::Arc<dyn Renderer>,
) -> inferix_node::WorkerNode {
    keyed_worker(net, n, addr, renderer, None)
}

/// A worker as [`numbered_worker`] presenting `token` in its hello (the
/// node token, or an account's API key).
pub fn keyed_worker(
    net: &inferix_transport::InProcNetwork,
    n: u128,
    addr: &str,
    renderer: std::sync::Arc<dyn Renderer>,
    token: Option<String>,
) -> inferix_node::WorkerNode {
    inferix_node::WorkerNode::new(
        std::sync::Arc::new(net.node(seeded_identity(n))),
        renderer,
        inferix_node::WorkerConfig {
            manager: addr.into(),
            work_dir: std::env::temp_dir()
                .join(format!("inferix-test-{}-w{n}", std::process::id())),
            heartbeat: Duration::from_millis(200),
            token,
            ..inferix_node::WorkerConfig::default()
        },
    )
}

/// Waits for `events` to say the job completed, within `limit`; a failed
/// job or a closed stream fails the test.
pub async fn until_completed(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    limit: Duration,
) {
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::Completed { .. } => return,
                JobEvent::Failed { reason } => panic!("job failed: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the job completes in time")
}

/// Starts `count` verifiers (node ids 200, 201, …) on `net` for the manager
/// at `addr`; with `renderer` they re-render crop challenges, with `blobs`
/// they read frames directly. Each keeps its scenes under `work_dir/v<i>`.
pub fn spawn_verifiers(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    count: u128,
    blobs: Option<std::sync::Arc<dyn inferix_core::blob::BlobStore>>,
    renderer: Option<std::sync::Arc<dyn Renderer>>,
    work_dir: &Path,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Result<(), inferix_node::NodeError>>> {
    (0..count)
        .map(|i| {
            let mut v = inferix_node::VerifierNode::new(
                std::sync::Arc::new(net.transport(NodeId(200 + i))),
                inferix_node::VerifierConfig {
                    manager: addr.into(),
                    work_dir: work_dir.join(format!("v{i}")),
                    ..inferix_node::VerifierConfig::default()
                },
            );
            if let Some(b) = &blobs {
                v = v.with_blob_store(b.clone());
            }
            if let Some(r) = &renderer {
                v = v.with_renderer(r.clone());
            }
            tokio::spawn(v.run(stopped.clone()))
        })
        .collect()
}

/// Starts `count` honest stand-in workers (seeded identities 100, 101, …)
/// on `net` for the manager at `addr`, each frame taking `per_frame`; each
/// keeps its scenes under `work_dir/w<i>`.
pub fn spawn_honest_workers(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    count: u128,
    per_frame: std::time::Duration,
    work_dir: &Path,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Result<(), inferix_node::NodeError>>> {
    (0..count)
        .map(|i| {
            let w = inferix_node::WorkerNode::new(
                std::sync::Arc::new(net.node(seeded_identity(100 + i))),
                std::sync::Arc::new(StandInRenderer::new(StandInBehaviour::Honest, per_frame)),
                inferix_node::WorkerConfig {
                    manager: addr.into(),
                    work_dir: work_dir.join(format!("w{i}")),
                    ..inferix_node::WorkerConfig::default()
                },
            );
            tokio::spawn(w.run(stopped.clone()))
        })
        .collect()
}

/// Uploads the demo scene (the manager inspects it; the simulated renderer
/// never reads it) and
/// submits a job of `frames` square frames of `size` pixels in tasks of
/// `chunk` frames.
pub async fn submit_stand_in_job(
    client: &inferix_node::Client,
    frames: u32,
    size: u32,
    chunk: u32,
) -> inferix_core::ids::JobId {
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .expect("upload the scene");
    let mut spec =
        inferix_core::job::JobSpec::new(scene, inferix_core::job::FrameRange::new(1, frames));
    spec.settings.width = size;
    spec.settings.height = size;
    spec.chunk_size = chunk;
    client.submit(&spec).await.expect("submit the job").0
}

/// The manager's own folder in a test: one per test process (each test
/// runs in its own process), so tests running at once do not share a
/// results journal; a manager restarted within the test finds it again.
pub fn manager_scratch() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("inferix-test-manager-{}", std::process::id()))
}

/// A manager (node id 1) on `net` with `store` and `blobs`, on a virtual
/// clock that follows tokio's (paused) time, its files in
/// [`manager_scratch`].
pub async fn start_manager(
    net: &inferix_transport::InProcNetwork,
    store: std::sync::Arc<dyn inferix_core::store::TaskStore>,
    blobs: std::sync::Arc<dyn inferix_core::blob::BlobStore>,
    config: inferix_node::ManagerConfig,
) -> inferix_node::ManagerHandle {
    inferix_node::ManagerBuilder::new(std::sync::Arc::new(net.transport(NodeId(1))), store, blobs)
        .clock(std::sync::Arc::new(
            inferix_core::time::TokioClock::starting_at(1_000),
        ))
        .config(config)
        .scratch_dir(manager_scratch())
        // As `inferix manager` does: scenes are read at submission.
        .inspector(std::sync::Arc::new(inferix_gpu::GltfInspector))
        .build()
        .start()
        .await
        .expect("the manager starts")
}

/// Asserts clean delivery for `job`: each downloaded PNG in `files`
/// (named `frame_NNNN.png`) equals, pixel for pixel and alpha included,
/// `renderer`'s local
/// render of the customer's `scene` at `settings`, and every accepted
/// task's delivered file replaced a worker's file that carried the
/// watermark patches.
pub async fn assert_clean_delivery(
    store: &dyn inferix_core::store::TaskStore,
    job: inferix_core::ids::JobId,
    files: &[std::path::PathBuf],
    renderer: &dyn Renderer,
    scene: &Path,
    settings: &inferix_core::renderer::RenderSettings,
) {
    assert!(!files.is_empty());
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let frame: u32 = name.trim_start_matches("frame_").parse().unwrap();
        let local = renderer
            .render(RenderRequest {
                scene: scene.to_path_buf(),
                format: SceneFormat::from_path(scene).unwrap(),
                frames: vec![frame],
                settings: settings.clone(),
                crop: None,
                progress: None,
            })
            .await
            .unwrap()
            .remove(0)
            .image
            .to_srgb8();
        let delivered = inferix_gpu::codec::decode_png(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(
            (delivered.width, delivered.height),
            (local.width, local.height)
        );
        assert_eq!(
            delivered.alpha.is_some(),
            local.alpha.is_some(),
            "frame {frame}: transparency delivered as rendered"
        );
        let differing = (0..local.height)
            .flat_map(|y| (0..local.width).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                delivered.get(x, y) != local.get(x, y)
                    || delivered.alpha_at(x, y) != local.alpha_at(x, y)
            })
            .count();
        assert_eq!(
            differing, 0,
            "frame {frame}: {differing} delivered pixels differ from a local render"
        );
    }
    let tasks = store.tasks_of_job(job).await.unwrap();
    let accepted: Vec<_> = tasks
        .iter()
        .filter(|t| t.status == inferix_core::task::TaskStatus::Accepted)
        .collect();
    assert!(!accepted.is_empty());
    for t in accepted {
        let result = t.result.as_ref().unwrap();
        assert_eq!(t.delivered.len(), result.frames.len(), "task {}", t.id);
        for (f, d) in result.frames.iter().zip(&t.delivered) {
            assert_eq!(f.frame, d.frame);
            assert_ne!(
                f.pixel_hash, d.pixel_hash,
                "frame {}: the worker's frame shows no patches to replace",
                f.frame
            );
        }
    }
}

/// The code of a refused client call; a success or another failure fails
/// the test.
pub fn refusal_code<T>(
    r: Result<T, inferix_node::ClientError>,
) -> inferix_core::protocol::ErrorCode {
    match r {
        Err(inferix_node::ClientError::Refused { code, .. }) => code,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a success"),
    }
}

/// A manager (as [`start_manager`], quorum 1, blobs in memory) that admits
/// clients by API key only: no guest account.
pub async fn start_keyed_manager(
    net: &inferix_transport::InProcNetwork,
    store: std::sync::Arc<dyn inferix_core::store::TaskStore>,
) -> inferix_node::ManagerHandle {
    let config = inferix_node::ManagerConfig {
        guest_account: None,
        quorum: 1,
        ..inferix_node::ManagerConfig::default()
    };
    let blobs = std::sync::Arc::new(inferix_storage::ObjectBlobStore::in_memory());
    start_manager(net, store, blobs, config).await
}

/// Creates account `name` in `store` with `micro_credits` deposited (none
/// when 0) and returns its API key.
pub async fn funded_account(
    store: &dyn inferix_core::store::TaskStore,
    name: &str,
    operator: bool,
    micro_credits: i64,
) -> String {
    let accounts = inferix_core::store::accounts::Accounts::new(store);
    let (_, key) = accounts.create(name, operator, 1).await.expect("create");
    if micro_credits > 0 {
        accounts
            .deposit(name, micro_credits, "funds", 1)
            .await
            .expect("deposit");
    }
    key
}

/// How a [`scripted_verifier`] session ended.
#[derive(Debug, Default)]
pub struct ScriptedVerifierRun {
    /// Offers it answered.
    pub answered: u32,
    /// The error the manager answered its hello or a message with, if any.
    pub refusal: Option<String>,
}

/// A verifier driven by hand that answers every offer at once without
/// looking: `passes` says what it answers (a rubber stamp passes all, a
/// griefer fails all). Runs until the manager closes its connection.
pub async fn scripted_verifier(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    id: NodeId,
    passes: bool,
) -> ScriptedVerifierRun {
    scripted_verifier_keyed(net, addr, id, passes, None).await
}

/// A [`scripted_verifier`] presenting `token` in its hello (an account's
/// API key, or the node token).
pub async fn scripted_verifier_keyed(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    id: NodeId,
    passes: bool,
    token: Option<String>,
) -> ScriptedVerifierRun {
    scripted_run(net, addr, id, passes, token, None).await
}

/// A colluding verifier: it passes every offer unchecked, and renders the
/// clean pixels that clean delivery needs with `renderer` and `blobs`, as
/// an honest verifier does. Runs until
/// the manager closes its connection.
pub async fn colluding_verifier(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    id: NodeId,
    blobs: std::sync::Arc<dyn inferix_core::blob::BlobStore>,
    renderer: std::sync::Arc<dyn Renderer>,
    work_dir: &std::path::Path,
) -> ScriptedVerifierRun {
    let crops = inferix_node::verifier::CropRenderer {
        renderer,
        work_dir: work_dir.to_path_buf(),
    };
    scripted_run(net, addr, id, true, None, Some((blobs, crops))).await
}

async fn scripted_run(
    net: &inferix_transport::InProcNetwork,
    addr: &str,
    id: NodeId,
    passes: bool,
    token: Option<String>,
    checks: Option<(
        std::sync::Arc<dyn inferix_core::blob::BlobStore>,
        inferix_node::verifier::CropRenderer,
    )>,
) -> ScriptedVerifierRun {
    use inferix_core::protocol::{Envelope, Hello, Message, Role, Verdict};
    use inferix_transport::Transport;
    let mut conn = net.transport(id).connect(addr).await.unwrap();
    let hello = Hello {
        role: Role::Verifier,
        node: id,
        ib: 0.0,
        tags: vec![],
        device_class: "scripted".into(),
        token,
        formats: vec![SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    let mut run = ScriptedVerifierRun::default();
    while let Ok(Some(env)) = conn.receiver.recv().await {
        match env.body {
            Message::VerifyOffer(a) => {
                let clean = match (&checks, &a.clean_scene) {
                    (Some((blobs, crops)), Some(scene)) => {
                        inferix_node::verifier::render_clean(&**blobs, crops, scene, &a)
                            .await
                            .unwrap_or_default()
                    }
                    _ => vec![],
                };
                let verdict = Verdict {
                    verification: a.verification,
                    task: a.task,
                    passed: passes,
                    reasons: if passes {
                        vec![]
                    } else {
                        vec!["scripted: fails everything".into()]
                    },
                    clean,
                    inconclusive: None,
                };
                let done = Envelope::push(Message::VerifyDone(verdict));
                if conn.sender.send(done).await.is_err() {
                    break;
                }
                run.answered += 1;
            }
            Message::Error { message, .. } => run.refusal = Some(message),
            _ => {}
        }
    }
    run
}

/// A manager with Proof of Render on and the glTF watermarker, on an
/// in-process network with memory stores, rendering with the real path
/// tracer: what the end-to-end Proof-of-Render tests start from.
pub struct PorNetwork {
    /// The network.
    pub net: inferix_transport::InProcNetwork,
    /// The manager's task store.
    pub store: std::sync::Arc<dyn inferix_core::store::TaskStore>,
    /// The blob store every node shares.
    pub blobs: std::sync::Arc<dyn inferix_core::blob::BlobStore>,
    /// The path tracer, for honest workers and rendering verifiers.
    pub tracer: std::sync::Arc<dyn Renderer>,
    /// Scratch folder of the manager and the verifiers.
    pub scratch: tempfile::TempDir,
    /// The manager.
    pub manager: inferix_node::ManagerHandle,
    /// Its address.
    pub addr: String,
    /// Sends `true` to stop the nodes.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// What the nodes watch for it.
    pub stopped: tokio::sync::watch::Receiver<bool>,
    /// How the manager was started, to start it again.
    setup: (Vec<u8>, inferix_node::ManagerConfig, bool),
}

impl PorNetwork {
    /// Starts the manager (node id 1) with `config` (its tick shortened to
    /// 50 ms) and a Proof-of-Render secret made of `secret`.
    pub async fn start(secret: &[u8], config: inferix_node::ManagerConfig) -> Self {
        Self::start_with(secret, config, false).await
    }

    /// As [`PorNetwork::start`]; with `arbiter`, the manager also has the
    /// path tracer of its own (quotes from probe renders, and its own
    /// check of results its verifiers disagree on).
    pub async fn start_with(
        secret: &[u8],
        config: inferix_node::ManagerConfig,
        arbiter: bool,
    ) -> Self {
        Self::start_wrapped(secret, config, arbiter, |blobs| blobs).await
    }

    /// A network whose manager checks results itself (see
    /// [`PorNetwork::start_with`]) at `quorum`, with no forced errors, so
    /// that what catches a bad verifier is the manager's own check alone.
    pub async fn checked_by_manager(secret: &[u8], quorum: usize) -> Self {
        let config = inferix_node::ManagerConfig {
            quorum,
            forced_error_rate: 0.0,
            ..inferix_node::ManagerConfig::default()
        };
        Self::start_with(secret, config, true).await
    }

    /// Starts a [`colluding_verifier`] with node id `id`.
    pub fn colluder(&self, id: NodeId) -> tokio::task::JoinHandle<ScriptedVerifierRun> {
        let (net, addr) = (self.net.clone(), self.addr.clone());
        let (blobs, tracer) = (self.blobs.clone(), self.tracer.clone());
        let dir = self.scratch.path().join(format!("colluder-{}", id.0));
        tokio::spawn(async move { colluding_verifier(&net, &addr, id, blobs, tracer, &dir).await })
    }

    /// As [`PorNetwork::start_with`], the manager reaching the shared blob
    /// store through `wrap` (to make its reads or writes fail) while the
    /// other nodes reach it directly.
    pub async fn start_wrapped(
        secret: &[u8],
        config: inferix_node::ManagerConfig,
        arbiter: bool,
        wrap: impl FnOnce(
            std::sync::Arc<dyn inferix_core::blob::BlobStore>,
        ) -> std::sync::Arc<dyn inferix_core::blob::BlobStore>,
    ) -> Self {
        use std::sync::Arc;
        let net = inferix_transport::InProcNetwork::new();
        let store: Arc<dyn inferix_core::store::TaskStore> =
            Arc::new(inferix_core::store::MemoryTaskStore::new());
        let blobs: Arc<dyn inferix_core::blob::BlobStore> =
            Arc::new(inferix_storage::ObjectBlobStore::in_memory());
        let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
        let scratch = tempfile::tempdir().unwrap();
        let setup = (secret.to_vec(), config, arbiter);
        let manager =
            Self::manager(&net, &store, wrap(blobs.clone()), &tracer, &scratch, &setup).await;
        let addr = manager.addr().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        Self {
            net,
            store,
            blobs,
            tracer,
            scratch,
            manager,
            addr,
            stop,
            stopped,
            setup,
        }
    }

    /// Starts the manager of `setup` (secret, config, with its own
    /// renderer) on `store` and `blobs`.
    async fn manager(
        net: &inferix_transport::InProcNetwork,
        store: &std::sync::Arc<dyn inferix_core::store::TaskStore>,
        blobs: std::sync::Arc<dyn inferix_core::blob::BlobStore>,
        tracer: &std::sync::Arc<dyn Renderer>,
        scratch: &tempfile::TempDir,
        setup: &(Vec<u8>, inferix_node::ManagerConfig, bool),
    ) -> inferix_node::ManagerHandle {
        use std::sync::Arc;
        let (secret, config, arbiter) = setup;
        let por = inferix_core::por::prepare::PorConfig::new(
            inferix_core::por::key::ManagerSecret(secret.clone()),
        );
        let mut builder = inferix_node::ManagerBuilder::new(
            Arc::new(net.transport(NodeId(1))),
            store.clone(),
            blobs,
        )
        .config(inferix_node::ManagerConfig {
            tick: Duration::from_millis(50),
            ..config.clone()
        })
        .scratch_dir(scratch.path())
        .proof_of_render(por)
        .watermarker(Arc::new(inferix_gpu::GltfWatermarker));
        if *arbiter {
            builder = builder.probe_renderer(tracer.clone(), 1.0);
        }
        builder.build().start().await.unwrap()
    }

    /// Kills the manager and starts it again on the same store, as a
    /// crashed manager process comes back; the nodes reconnect. The
    /// restarted manager reaches the blob store directly, even when the
    /// first one went through [`PorNetwork::start_wrapped`]'s wrapper.
    pub async fn restart_manager(self) -> Self {
        self.manager.kill().await;
        let manager = Self::manager(
            &self.net,
            &self.store,
            self.blobs.clone(),
            &self.tracer,
            &self.scratch,
            &self.setup,
        )
        .await;
        Self { manager, ..self }
    }

    /// A network (as [`PorNetwork::start`] with `config`) with one honest
    /// path-tracer worker (numbered 100) and one rendering verifier, and a
    /// client of it.
    pub async fn with_worker_and_verifier(
        secret: &[u8],
        config: inferix_node::ManagerConfig,
    ) -> (Self, inferix_node::Client) {
        let n = Self::start(secret, config).await;
        n.rendering_verifiers(1);
        n.worker(100, n.tracer.clone());
        let client = n.client().await;
        (n, client)
    }

    /// Starts `count` verifiers (node ids 200, 201, …) that read the shared
    /// blobs and re-render with the path tracer, as honest verifiers do.
    pub fn rendering_verifiers(
        &self,
        count: u128,
    ) -> Vec<tokio::task::JoinHandle<Result<(), inferix_node::NodeError>>> {
        spawn_verifiers(
            &self.net,
            &self.addr,
            count,
            Some(self.blobs.clone()),
            Some(self.tracer.clone()),
            self.scratch.path(),
            &self.stopped,
        )
    }

    /// Starts the worker numbered `n`, rendering with `renderer` and
    /// reading and writing the shared blobs.
    pub fn worker(
        &self,
        n: u128,
        renderer: std::sync::Arc<dyn Renderer>,
    ) -> tokio::task::JoinHandle<Result<(), inferix_node::NodeError>> {
        let worker =
            numbered_worker(&self.net, n, &self.addr, renderer).with_blob_store(self.blobs.clone());
        tokio::spawn(worker.run(self.stopped.clone()))
    }

    /// A client (node id 300) reading and writing blobs directly.
    pub async fn client(&self) -> inferix_node::Client {
        inferix_node::Client::connect_with_blobs(
            &self.net.transport(NodeId(300)),
            &self.addr,
            None,
            self.blobs.clone(),
        )
        .await
        .unwrap()
    }

    /// The demo scene uploaded by `client`, as a job of `frames` tiny
    /// frames (64×48, 16 samples) in tasks of `chunk` frames.
    pub async fn demo_job(
        client: &inferix_node::Client,
        frames: u32,
        chunk: u32,
    ) -> inferix_core::job::JobSpec {
        let scene = client
            .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
            .await
            .unwrap();
        let mut spec =
            inferix_core::job::JobSpec::new(scene, inferix_core::job::FrameRange::new(1, frames));
        spec.settings.width = 64;
        spec.settings.height = 48;
        spec.settings.samples = 16;
        spec.chunk_size = chunk;
        spec
    }

    /// A network (as [`PorNetwork::start`], quorum 1) where every seat also
    /// gets a known-bad result, with one honest rendering verifier (node
    /// 200) and one honest worker (numbered 100), that has already accepted
    /// a first job of 4 frames, so the manager has results to build
    /// known-bad ones from. Returns it with its client and that job's spec.
    pub async fn catching_verifiers(
        secret: &[u8],
    ) -> (Self, inferix_node::Client, inferix_core::job::JobSpec) {
        let n = Self::start(
            secret,
            inferix_node::ManagerConfig {
                quorum: 1,
                forced_error_rate: 1.0,
                ..inferix_node::ManagerConfig::default()
            },
        )
        .await;
        n.rendering_verifiers(1);
        n.worker(100, n.tracer.clone());
        let client = n.client().await;
        let spec = Self::demo_job(&client, 4, 1).await;
        let (first, _) = client.submit(&spec).await.unwrap();
        let mut events = client.watch(first).await.unwrap();
        until_completed(&mut events, Duration::from_secs(300)).await;
        (n, client, spec)
    }

    /// Stops the nodes and the manager.
    pub async fn shut(self) {
        let _ = self.stop.send(true);
        self.manager.shutdown().await;
    }
}
