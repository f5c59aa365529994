//! A whole network in one process: a manager on SQLite and a local blob
//! folder, workers rendering with a real renderer, verifiers, and a client
//! that submits the built-in animated scene and downloads the frames.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::{JobEvent, Quote};
use inferix_core::renderer::Renderer;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_core::store::StoreError;

use crate::{LocalNetwork, LocalNetworkError};
use inferix_node::ClientError;

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
    /// GPU quality ([`DemoQuality::for_device`]); the command picks the
    /// device's own.
    fn default() -> Self {
        let gpu = DemoQuality::for_device(false);
        Self {
            data_dir: "inferix-data".into(),
            out_dir: "inferix-out".into(),
            worker_ibs: vec![1.5, 1.0, 0.5],
            verifiers: 2,
            quorum: 2,
            frames: inferix_gpu::DEMO_SCENE_FRAMES,
            chunk_size: 2,
            width: gpu.width,
            height: gpu.height,
            samples: gpu.samples,
            seed: 7,
        }
    }
}

/// Image settings the demo picks for the device it finds, so that its
/// first run finishes in a couple of minutes on a machine with only a CPU
/// (a software Vulkan device renders tens of times slower than a GPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoQuality {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub samples: u32,
    /// The device is the CPU.
    pub software: bool,
}

impl DemoQuality {
    /// Full quality on a GPU; smaller frames and fewer samples on a CPU.
    pub fn for_device(software: bool) -> DemoQuality {
        if software {
            // Sized so the whole demo (renders, Proof-of-Render checks and
            // clean re-renders) takes about a minute and a half on two
            // cores of a software Vulkan device.
            DemoQuality {
                width: 320,
                height: 180,
                samples: 6,
                software,
            }
        } else {
            DemoQuality {
                width: 640,
                height: 360,
                samples: 16,
                software,
            }
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

/// Why the demo did not deliver its frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The embedded network did not start.
    #[error("the local network did not start: {0}")]
    Network(#[from] LocalNetworkError),
    /// The client's conversation with the manager failed.
    #[error("client: {0}")]
    Client(#[from] ClientError),
    /// The task database could not be read for the summary.
    #[error("task store: {0}")]
    Store(#[from] StoreError),
    /// The job ended without completing.
    #[error("job ended {state:?}: {reason}")]
    JobEnded {
        /// How it ended.
        state: JobState,
        /// What the manager said.
        reason: String,
    },
}

/// Runs the demo with `renderer` on a [`LocalNetwork`]; `on_event` sees
/// every job event.
pub async fn run_demo(
    opts: &DemoOptions,
    renderer: Arc<dyn Renderer>,
    mut on_event: impl FnMut(&JobEvent),
) -> Result<DemoSummary, DemoError> {
    let net = LocalNetwork::builder()
        .worker_ibs(opts.worker_ibs.iter().copied())
        .verifiers(opts.verifiers)
        .quorum(opts.quorum)
        .data_dir(&opts.data_dir)
        .renderer(renderer.clone())
        .scheduler(WeightedRandomScheduler::seeded(opts.seed))
        .proof_of_render(PorConfig::new(ManagerSecret(
            format!("inferix-demo-{}", opts.seed).into_bytes(),
        )))
        .start()
        .await?;
    let outcome = submit_and_follow(&net, opts, &mut on_event).await;
    let store = net.store();
    let ibs: BTreeMap<NodeId, f64> = net.workers().iter().copied().collect();
    let device = net.device().to_string();
    net.shutdown().await;
    let (job, quote, files, accepted, rejected, wall) = outcome?;

    let tasks = store.tasks_of_job(job).await?;
    let mut per_worker: BTreeMap<NodeId, usize> = ibs.keys().map(|k| (*k, 0)).collect();
    for t in &tasks {
        if let Some(r) = &t.result {
            *per_worker.entry(r.worker).or_default() += r.frames.len();
        }
    }
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
        device,
        wall,
    })
}

type Followed = (JobId, Quote, Vec<PathBuf>, usize, usize, Duration);

/// Uploads the scene, submits the job, follows it to the end and downloads
/// its frames.
async fn submit_and_follow(
    net: &LocalNetwork,
    opts: &DemoOptions,
    on_event: &mut impl FnMut(&JobEvent),
) -> Result<Followed, DemoError> {
    let started = Instant::now();
    let client = net.client().await?;
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
    if status.job.state != JobState::Completed {
        return Err(DemoError::JobEnded {
            state: status.job.state,
            reason: status.job.waiting_reason.unwrap_or_default(),
        });
    }
    let files = client
        .download(job, &opts.out_dir.join(job.to_string()))
        .await?;
    Ok((job, quote, files, accepted, rejected, started.elapsed()))
}
