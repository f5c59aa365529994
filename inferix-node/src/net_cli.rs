//! Subcommands that run nodes as separate processes over QUIC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use inferix_core::ids::JobId;
use inferix_core::job::{FrameRange, JobSpec, OutputFormat};
use inferix_core::protocol::JobEvent;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::{ObjectBlobStore, SqliteTaskStore};
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport, Transport};
use tokio::sync::watch;

/// Options of `inferix manager`.
#[derive(Args)]
pub(crate) struct ManagerArgs {
    /// Folder for the node key, the task database and the blobs.
    #[arg(long, env = "INFERIX_DATA_DIR", default_value = "inferix-manager")]
    data_dir: PathBuf,
    /// UDP address to listen on (port 0 picks a free one).
    #[arg(long, env = "INFERIX_LISTEN", default_value = "127.0.0.1:7400")]
    listen: String,
    /// Token workers and verifiers must present (none: anyone may join).
    #[arg(long, env = "INFERIX_NODE_TOKEN")]
    node_token: Option<String>,
    /// Token clients must present (none: anyone may submit).
    #[arg(long, env = "INFERIX_CLIENT_TOKEN")]
    client_token: Option<String>,
    /// Verifiers that must agree on each result.
    #[arg(long, default_value_t = 1)]
    quorum: usize,
    /// Seconds a worker may hold a task before it is re-queued.
    #[arg(long, default_value_t = 600)]
    lease_seconds: u64,
}

/// Options shared by `inferix worker` and `inferix verifier`.
#[derive(Args)]
pub(crate) struct NodeArgs {
    /// Manager address as printed by `inferix manager` (`<id>@host:port`).
    #[arg(long, env = "INFERIX_MANAGER")]
    manager: String,
    /// Folder for the node key and scene cache.
    #[arg(long, env = "INFERIX_DATA_DIR")]
    data_dir: PathBuf,
    /// Admission token issued by the manager's operator.
    #[arg(long, env = "INFERIX_NODE_TOKEN")]
    token: Option<String>,
    /// Inferix Bench index to announce (workers; default: measured).
    #[arg(long)]
    ib: Option<f64>,
}

/// Where a client finds its manager.
#[derive(Args)]
pub(crate) struct ClientArgs {
    /// Manager address as printed by `inferix manager` (`<id>@host:port`).
    #[arg(long, env = "INFERIX_MANAGER")]
    manager: String,
    /// API token for clients.
    #[arg(long, env = "INFERIX_TOKEN")]
    token: Option<String>,
}

/// What to render.
#[derive(Args)]
pub(crate) struct JobArgs {
    /// Scene file (.glb or .gltf).
    scene: PathBuf,
    /// Frames: N, A-B or A-B:STEP.
    #[arg(long, default_value = "1")]
    frames: FrameRange,
    /// Width in pixels.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Samples per pixel.
    #[arg(long, default_value_t = 64)]
    spp: u32,
    /// Frames per task.
    #[arg(long, default_value_t = 5)]
    chunk: u32,
    /// png or exr.
    #[arg(long, default_value = "png")]
    format: OutputFormat,
    /// Minimum worker IB.
    #[arg(long, default_value_t = 0.0)]
    min_ib: f64,
}

fn quic(data_dir: Option<&Path>) -> anyhow::Result<QuicTransport> {
    let identity = match data_dir {
        Some(d) => NodeIdentity::load_or_create(d.join("identity"))?,
        None => NodeIdentity::generate(),
    };
    Ok(QuicTransport::new(identity, QuicConfig::default())?)
}

/// Resolves on SIGINT or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub(crate) async fn manager(a: ManagerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    let transport: Arc<dyn Transport> = Arc::new(quic(Some(&a.data_dir))?);
    let store = Arc::new(SqliteTaskStore::open(a.data_dir.join("tasks.sqlite"))?);
    let blobs = Arc::new(ObjectBlobStore::local(a.data_dir.join("blobs"))?);
    let config = ManagerConfig {
        listen: a.listen,
        node_token: a.node_token,
        client_token: a.client_token,
        quorum: a.quorum,
        lease: std::time::Duration::from_secs(a.lease_seconds),
        ..ManagerConfig::default()
    };
    let handle = ManagerBuilder::new(transport, store, blobs)
        .scheduler(WeightedRandomScheduler::default())
        .config(config)
        .scratch_dir(a.data_dir.join("scratch"))
        .build()
        .start()
        .await?;
    println!("manager listening on {}", handle.addr());
    std::fs::write(a.data_dir.join("manager.addr"), handle.addr())?;
    terminated().await;
    handle.shutdown().await;
    Ok(())
}

pub(crate) async fn worker(a: NodeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)?;
    let renderer = Arc::new(inferix_gpu::PathTracer::new()?);
    let ib = match a.ib {
        Some(ib) => ib,
        None => inferix_gpu::bench::run_bench(&renderer).await?.ib,
    };
    let cfg = WorkerConfig {
        manager: a.manager,
        ib,
        token: a.token,
        work_dir: a.data_dir.join("work"),
        ..WorkerConfig::default()
    };
    let node = WorkerNode::new(Arc::new(quic(Some(&a.data_dir))?), renderer, cfg);
    println!("worker {} (IB {ib:.2})", node.id());
    until_terminated(|stopped| node.run(stopped)).await
}

pub(crate) async fn verifier(a: NodeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)?;
    let cfg = VerifierConfig {
        manager: a.manager,
        token: a.token,
        ..VerifierConfig::default()
    };
    let node = VerifierNode::new(Arc::new(quic(Some(&a.data_dir))?), cfg);
    println!("verifier {}", node.id());
    until_terminated(|stopped| node.run(stopped)).await
}

/// Runs a node until it ends by itself or SIGINT/SIGTERM asks it to stop,
/// then waits for its own shutdown (a worker hands back its task).
async fn until_terminated<F>(run: impl FnOnce(watch::Receiver<bool>) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<(), inferix_node::NodeError>> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let mut node = tokio::spawn(run(stopped));
    tokio::select! {
        r = &mut node => return Ok(r??),
        _ = terminated() => {}
    }
    let _ = stop.send(true);
    Ok(node.await??)
}

async fn connect(c: &ClientArgs) -> anyhow::Result<Client> {
    let t = quic(None)?;
    Ok(Client::connect(&t, &c.manager, c.token.clone()).await?)
}

async fn spec(client: &Client, j: &JobArgs) -> anyhow::Result<JobSpec> {
    let scene = client.upload_scene(&j.scene).await?;
    let mut spec = JobSpec::new(scene, j.frames);
    spec.settings.width = j.width;
    spec.settings.height = j.height;
    spec.settings.samples = j.spp;
    spec.chunk_size = j.chunk;
    spec.format = j.format;
    spec.min_ib = j.min_ib;
    Ok(spec)
}

pub(crate) async fn quote(c: ClientArgs, j: JobArgs) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    let q = client.quote(&spec(&client, &j).await?).await?;
    println!(
        "{:.3} IB-minutes x {} = {} micro-credits ({} frames, {} tasks)",
        q.estimated_ibm, q.price_per_ibm, q.total_price, q.frames, q.tasks
    );
    Ok(())
}

pub(crate) async fn submit(
    c: ClientArgs,
    j: JobArgs,
    wait: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    let (job, q) = client.submit(&spec(&client, &j).await?).await?;
    println!("{job}");
    eprintln!("submitted for {} micro-credits", q.total_price);
    if wait || out.is_some() {
        let status = client.wait(job, print_event).await?;
        anyhow::ensure!(
            status.job.state == inferix_core::job::JobState::Completed,
            "job ended {:?}",
            status.job.state
        );
        if let Some(dir) = out {
            let files = client.download(job, &dir).await?;
            eprintln!("downloaded {} frames to {}", files.len(), dir.display());
        }
    }
    Ok(())
}

fn print_event(ev: &JobEvent) {
    eprintln!("{ev:?}");
}

pub(crate) async fn status(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    let s = connect(&c).await?.status(job).await?;
    println!("job {} {}", s.job.id, s.job.state.as_str());
    for (st, n) in &s.counts {
        println!("  {:<10} {n}", st.as_str());
    }
    println!(
        "  frames accepted: {}/{}",
        s.frames.len(),
        s.job.spec.frames.len()
    );
    if let Some(r) = s.job.waiting_reason {
        println!("  waiting: {r}");
    }
    Ok(())
}

pub(crate) async fn watch(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    let s = connect(&c)
        .await?
        .wait(job, |ev| println!("{ev:?}"))
        .await?;
    println!("job {} {}", s.job.id, s.job.state.as_str());
    Ok(())
}

pub(crate) async fn download(c: ClientArgs, job: JobId, out: PathBuf) -> anyhow::Result<()> {
    let files = connect(&c).await?.download(job, &out).await?;
    println!("downloaded {} frames to {}", files.len(), out.display());
    Ok(())
}

pub(crate) async fn cancel(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    connect(&c).await?.cancel(job).await?;
    println!("cancelled {job}");
    Ok(())
}
