//! Admission probes: a worker or verifier that announces glTF renders a
//! small scene at a fresh seed before it is admitted, and the manager
//! compares it with its own render. A node that only claims to render
//! glTF is refused; one that claims another device class than the one its
//! pixels match is compared as the class its pixels show; one that never
//! answers is refused after the probe's deadline.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::ids::NodeId;
use inferix_core::protocol::{Envelope, Hello, Message, Role};
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerConfig, NodeError};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{numbered_worker, until_completed, FewerSamples};
use inferix_transport::{InProcNetwork, Transport};
use tokio::sync::watch;

/// The path tracer, claiming to be a GPU.
struct ClaimsGpu(Arc<dyn Renderer>);

#[async_trait]
impl Renderer for ClaimsGpu {
    fn name(&self) -> &str {
        "claims-gpu"
    }
    fn formats(&self) -> &[SceneFormat] {
        self.0.formats()
    }
    fn device_class(&self) -> String {
        "nvidia-h100/cuda".into()
    }
    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        self.0.render(req).await
    }
}

struct Probed {
    net: InProcNetwork,
    store: Arc<dyn TaskStore>,
    manager: inferix_node::ManagerHandle,
    addr: String,
    tracer: Arc<dyn Renderer>,
    _scratch: tempfile::TempDir,
}

async fn probed_manager(probe_timeout: Duration) -> Probed {
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    probed_manager_with(probe_timeout, tracer.clone(), tracer).await
}

/// A manager that renders its side of each probe with `prober`.
async fn probed_manager_with(
    probe_timeout: Duration,
    prober: Arc<dyn Renderer>,
    tracer: Arc<dyn Renderer>,
) -> Probed {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        Arc::new(ObjectBlobStore::in_memory()),
    )
    .config(ManagerConfig {
        quorum: 1,
        probe_timeout,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .probe_renderer(prober, 1.0)
    .admission_probe(inferix_gpu::demo_scene_glb())
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    Probed {
        net,
        store,
        manager,
        addr,
        tracer,
        _scratch: scratch,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_render_as_it_announced_is_refused() {
    let p = probed_manager(Duration::from_secs(120)).await;
    let (_stop, stopped) = watch::channel(false);
    // A quarter of the samples: not the pixels the scene gives.
    let lazy = Arc::new(FewerSamples {
        inner: p.tracer.clone(),
        divisor: 4,
    });
    let worker = numbered_worker(&p.net, 100, &p.addr, lazy);
    let outcome = tokio::time::timeout(Duration::from_secs(120), worker.run(stopped.clone()))
        .await
        .expect("the worker is answered");
    match outcome {
        Err(NodeError::Refused(why)) => {
            assert!(why.contains("does not render glTF"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The same machine rendering honestly is admitted and works.
    let honest = numbered_worker(&p.net, 101, &p.addr, p.tracer.clone());
    let running = tokio::spawn(honest.run(stopped.clone()));
    let _verifiers = inferix_tests::spawn_verifiers(
        &p.net,
        &p.addr,
        1,
        None,
        Some(p.tracer.clone()),
        p._scratch.path(),
        &stopped,
    );
    let client = Client::connect(&p.net.transport(NodeId(300)), &p.addr, None)
        .await
        .unwrap();
    let job = inferix_tests::submit_stand_in_job(&client, 2, 16, 1).await;
    let mut events = client.watch(job).await.unwrap();
    until_completed(&mut events, Duration::from_secs(300)).await;
    running.abort();
    p.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_compared_as_the_device_class_the_probe_showed() {
    let p = probed_manager(Duration::from_secs(120)).await;
    let (_stop, stopped) = watch::channel(false);
    let liar = numbered_worker(&p.net, 100, &p.addr, Arc::new(ClaimsGpu(p.tracer.clone())));
    let running = tokio::spawn(liar.run(stopped.clone()));
    // A verifier driven by hand (it answers the probe like the tracer)
    // sees the class the offer asks it to compare as.
    let mut conn = say_hello(&p, 250, Role::Verifier, &p.tracer.device_class()).await;
    let client = Client::connect(&p.net.transport(NodeId(300)), &p.addr, None)
        .await
        .unwrap();
    let mut submitted = false;
    let offer = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let env = conn.receiver.recv().await.unwrap().expect("open");
            match env.body {
                Message::Probe(probe) => {
                    let png = render_png(&*p.tracer, &probe).await;
                    conn.sender
                        .send(Envelope::with_id(2, Message::ProbeDone { png }))
                        .await
                        .unwrap();
                }
                Message::Welcome { .. } if !submitted => {
                    submitted = true;
                    inferix_tests::submit_stand_in_job(&client, 1, 16, 1).await;
                }
                Message::VerifyOffer(a) => return a,
                _ => {}
            }
        }
    })
    .await
    .expect("an offer");
    assert_eq!(
        offer.worker_device_class,
        p.tracer.device_class(),
        "the worker claimed a GPU but renders exactly like the tracer"
    );
    running.abort();
    p.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_answers_its_probe_is_refused_at_the_deadline() {
    let p = probed_manager(Duration::from_millis(500)).await;
    let mut conn = say_hello(&p, 77, Role::Worker, "x").await;
    let mut probed = false;
    let why = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match conn.receiver.recv().await {
                Ok(Some(env)) => match env.body {
                    Message::Probe(_) => probed = true,
                    Message::Welcome { .. } => panic!("admitted without answering"),
                    Message::Error { message, .. } => return message,
                    _ => {}
                },
                _ => panic!("closed without a word"),
            }
        }
    })
    .await
    .expect("refused in time");
    assert!(probed);
    assert!(why.contains("not answered"), "{why}");
    p.manager.shutdown().await;
}

/// A renderer that never finishes.
struct Hangs(Arc<dyn Renderer>);

#[async_trait]
impl Renderer for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    fn formats(&self) -> &[SceneFormat] {
        self.0.formats()
    }
    fn device_class(&self) -> String {
        self.0.device_class()
    }
    async fn render(&self, _: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answered_is_not_held_by_a_manager_render_that_hangs() {
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let hangs: Arc<dyn Renderer> = Arc::new(Hangs(tracer.clone()));
    // Long enough for the node's own render, short for a test.
    let p = probed_manager_with(Duration::from_secs(8), hangs, tracer).await;
    let mut conn = say_hello(&p, 78, Role::Worker, "x").await;
    tokio::time::timeout(Duration::from_secs(60), answer_probe(&p, &mut conn))
        .await
        .expect("an answer within the probe's deadline, not never")
        .expect("the manager's own trouble lets the node in unprobed");
    p.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_announcing_a_huge_speed_is_measured_by_its_probe() {
    let p = probed_manager(Duration::from_secs(120)).await;
    let (_, ops_key) = inferix_core::store::accounts::Accounts::new(&*p.store)
        .create("ops", true, 1)
        .await
        .unwrap();
    let mut conn = say_hello_as(&p, 79, Role::Worker, "x", 100_000.0).await;
    tokio::time::timeout(Duration::from_secs(120), answer_probe(&p, &mut conn))
        .await
        .expect("answered in time")
        .expect("admitted");
    let ops = Client::connect(&p.net.transport(NodeId(300)), &p.addr, Some(ops_key))
        .await
        .unwrap();
    let nodes = ops.list_nodes().await.unwrap();
    let node = nodes.iter().find(|n| n.node == NodeId(79)).unwrap();
    assert_eq!(node.declared_ib, 100_000.0);
    // The manager's renderer (IB 1) and the node's are the same path
    // tracer: the probe shows an index near 1, nowhere near 100,000.
    let probed = node.measured_ib.expect("the probe was timed");
    assert!(probed > 0.0 && probed < 100.0, "{probed}");
    p.manager.shutdown().await;
}

/// Renders the probe the manager sends on `conn` with the path tracer and
/// answers it, until the node is welcomed; the refusal's message if it is
/// refused.
async fn answer_probe(p: &Probed, conn: &mut inferix_transport::Connection) -> Result<(), String> {
    loop {
        match conn.receiver.recv().await {
            Ok(Some(env)) => match env.body {
                Message::Probe(probe) => {
                    let png = render_png(&*p.tracer, &probe).await;
                    let done = Message::ProbeDone { png };
                    conn.sender.send(Envelope::with_id(2, done)).await.unwrap();
                }
                Message::Welcome { .. } => return Ok(()),
                Message::Error { message, .. } => return Err(message),
                _ => {}
            },
            _ => return Err("closed without a word".into()),
        }
    }
}

/// A connection of node `id` that said hello as a `role` announcing glTF
/// and device class `class`.
async fn say_hello(p: &Probed, id: u128, role: Role, class: &str) -> inferix_transport::Connection {
    say_hello_as(p, id, role, class, 1.0).await
}

/// As [`say_hello`], announcing index `ib`.
async fn say_hello_as(
    p: &Probed,
    id: u128,
    role: Role,
    class: &str,
    ib: f64,
) -> inferix_transport::Connection {
    let conn = p.net.transport(NodeId(id)).connect(&p.addr).await.unwrap();
    let hello = Hello {
        role,
        node: NodeId(id),
        ib,
        tags: vec![],
        device_class: class.into(),
        token: None,
        formats: vec![SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    conn
}

/// What a node sends for `probe`, rendered with `renderer`.
async fn render_png(
    renderer: &dyn Renderer,
    probe: &inferix_core::protocol::AdmissionProbe,
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.glb");
    std::fs::write(&path, &probe.scene_glb).unwrap();
    let frames = renderer
        .render(RenderRequest {
            scene: path,
            format: SceneFormat::Gltf,
            frames: vec![probe.frame],
            settings: probe.settings.clone(),
            crop: None,
            progress: None,
        })
        .await
        .unwrap();
    inferix_codec::encode_png(&frames[0].image.to_srgb8())
}
