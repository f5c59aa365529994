//! A whole network in one process: a manager on SQLite and a local blob
//! folder, workers rendering with a real renderer, verifiers, and a client
//! that submits the built-in animated scene and downloads the frames.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::{JobEvent, Quote};
use inferix_core::renderer::Renderer;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_core::store::TaskStore;
use inferix_storage::{ObjectBlobStore, SqliteTaskStore};
use inferix_transport::{InProcNetwork, NodeIdentity, Transport};
use tokio::sync::watch;

use crate::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// SQLite file and blob folder go here.
    pub data_dir: PathBuf,
    /// Frames go to `out_dir/<job-id>/`.
    pub out_dir: PathBuf,
    /// Declared IB of each worker (one worker per entry).
    pub worker_ibs: Vec<f64>,
    /// Number of verifiers.
    pub verifiers: usize,
    /// Verifiers that must agree on each result.
    pub quorum: usize,
    /// Frames to render, from 1.
    pub frames: u32,
    /// Frames per task.
    pub chunk_size: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub samples: u32,
    /// Seed of the scheduler and renderer.
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            data_dir: "inferix-data".into(),
            out_dir: "inferix-out".into(),
            worker_ibs: vec![1.5, 1.0, 0.5],
            verifiers: 2,
            quorum: 2,
            frames: inferix_gpu::DEMO_SCENE_FRAMES,
            chunk_size: 2,
            width: 640,
            height: 360,
            samples: 16,
            seed: 7,
        }
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// The job.
    pub job: JobId,
    /// Its quote.
    pub quote: Quote,
    /// Tasks it was split into.
    pub tasks: usize,
    /// Frames rendered per worker (id, declared IB, frames).
    pub frames_per_worker: Vec<(NodeId, f64, usize)>,
    /// Results accepted by the verifiers.
    pub accepted: usize,
    /// Results rejected by the verifiers.
    pub rejected: usize,
    /// Downloaded files in frame order.
    pub files: Vec<PathBuf>,
    /// Renderer device.
    pub device: String,
    /// Wall time from submission to the last download.
    pub wall: Duration,
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "job        {}", self.job)?;
        writeln!(
            f,
            "quote      {:.3} IB-minutes x {} = {} micro-credits ({} frames, {} tasks)",
            self.quote.estimated_ibm,
            self.quote.price_per_ibm,
            self.quote.total_price,
            self.quote.frames,
            self.quote.tasks
        )?;
        writeln!(f, "device     {}", self.device)?;
        for (id, ib, n) in &self.frames_per_worker {
            writeln!(f, "worker     {id:?} (IB {ib:.2}): {n} frames")?;
        }
        writeln!(
            f,
            "verdicts   {} accepted, {} rejected",
            self.accepted, self.rejected
        )?;
        if let Some(first) = self.files.first() {
            writeln!(
                f,
                "output     {} frames in {}",
                self.files.len(),
                first
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )?;
        }
        write!(f, "wall time  {:.1} s", self.wall.as_secs_f64())
    }
}

/// Runs the demo with `renderer`; `on_event` sees every job event.
pub async fn run_demo(
    opts: &DemoOptions,
    renderer: Arc<dyn Renderer>,
    mut on_event: impl FnMut(&JobEvent),
) -> anyhow::Result<DemoSummary> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let store: Arc<dyn TaskStore> =
        Arc::new(SqliteTaskStore::open(opts.data_dir.join("tasks.sqlite"))?);
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::local(opts.data_dir.join("blobs"))?);
    let net = InProcNetwork::new();
    let node = |i: u128| -> Arc<dyn Transport> {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(&(0x1f0_0000 + i).to_le_bytes());
        Arc::new(net.node(NodeIdentity::from_seed(seed)))
    };

    let config = ManagerConfig {
        quorum: opts.quorum,
        ..ManagerConfig::default()
    };
    let manager = ManagerBuilder::new(node(0), store.clone(), blobs.clone())
        .scheduler(WeightedRandomScheduler::seeded(opts.seed))
        .config(config)
        .probe_renderer(
            renderer.clone(),
            opts.worker_ibs.first().copied().unwrap_or(1.0),
        )
        .scratch_dir(opts.data_dir.join("manager"))
        .proof_of_render(PorConfig::new(ManagerSecret(
            format!("inferix-demo-{}", opts.seed).into_bytes(),
        )))
        .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
        .build()
        .start()
        .await?;
    let (stop, stopped) = watch::channel(false);
    let mut nodes = Vec::new();
    let mut ibs = BTreeMap::new();
    for (i, &ib) in opts.worker_ibs.iter().enumerate() {
        let cfg = WorkerConfig {
            manager: manager.addr().into(),
            ib,
            work_dir: opts.data_dir.join(format!("worker-{i}")),
            ..WorkerConfig::default()
        };
        let w = WorkerNode::new(node(100 + i as u128), renderer.clone(), cfg)
            .with_blob_store(blobs.clone());
        ibs.insert(w.id(), ib);
        nodes.push(tokio::spawn(w.run(stopped.clone())));
    }
    for i in 0..opts.verifiers {
        let cfg = VerifierConfig {
            manager: manager.addr().into(),
            work_dir: opts.data_dir.join(format!("verifier-{i}")),
            ..VerifierConfig::default()
        };
        nodes.push(tokio::spawn(
            VerifierNode::new(node(200 + i as u128), cfg)
                .with_blob_store(blobs.clone())
                .with_renderer(renderer.clone())
                .run(stopped.clone()),
        ));
    }

    let started = Instant::now();
    let client =
        Client::connect_with_blobs(&*node(300), manager.addr(), None, blobs.clone()).await?;
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "inferix-demo.glb")
        .await?;
    let mut spec = JobSpec::new(scene, FrameRange::new(1, opts.frames));
    spec.settings.width = opts.width;
    spec.settings.height = opts.height;
    spec.settings.samples = opts.samples;
    spec.settings.seed = opts.seed;
    spec.chunk_size = opts.chunk_size;
    let quote = client.quote(&spec).await?;
    let (job, _) = client.submit(&spec).await?;
    let (mut accepted, mut rejected) = (0, 0);
    let status = client
        .wait(job, |ev| {
            match ev {
                JobEvent::TaskAccepted { .. } => accepted += 1,
                JobEvent::TaskRejected { .. } => rejected += 1,
                _ => {}
            }
            on_event(ev)
        })
        .await?;
    if status.job.state != inferix_core::job::JobState::Completed {
        anyhow::bail!(
            "job ended {:?}: {}",
            status.job.state,
            status.job.waiting_reason.unwrap_or_default()
        );
    }
    let files = client
        .download(job, &opts.out_dir.join(job.to_string()))
        .await?;
    let wall = started.elapsed();

    let tasks = store.tasks_of_job(job).await?;
    let mut per_worker: BTreeMap<NodeId, usize> = ibs.keys().map(|k| (*k, 0)).collect();
    for t in &tasks {
        if let Some(r) = &t.result {
            *per_worker.entry(r.worker).or_default() += r.frames.len();
        }
    }
    drop(client);
    let _ = stop.send(true);
    for n in nodes {
        let _ = n.await;
    }
    manager.shutdown().await;
    Ok(DemoSummary {
        job,
        quote,
        tasks: tasks.len(),
        frames_per_worker: per_worker
            .into_iter()
            .map(|(id, n)| (id, ibs.get(&id).copied().unwrap_or(0.0), n))
            .collect(),
        accepted,
        rejected,
        files,
        device: renderer.device_class(),
        wall,
    })
}
