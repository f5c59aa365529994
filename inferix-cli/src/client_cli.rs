//! Client subcommands: quote, submit, status, watch, download, pause,
//! resume, claim, cancel and listings, against a manager over QUIC.

use inferix_core::time::{Clock, SystemClock};
use std::path::{Path, PathBuf};

use clap::Args;
use inferix_core::ids::JobId;
use inferix_core::job::{FrameRange, JobSpec, OutputFormat};
use inferix_core::protocol::JobEvent;
use inferix_node::Client;

use crate::net_cli::quic;
use crate::secrets::secret;
use crate::show;

/// Where a client finds its manager.
#[derive(Args)]
pub(crate) struct ClientArgs {
    /// Manager address as printed by `inferix manager` (`<id>@host:port`);
    /// the id is required, so that the token reaches no other server.
    #[arg(long, env = "INFERIX_MANAGER")]
    manager: String,
    /// API key of the account to act as (`inferix account create` prints
    /// one). Prefer --token-file: a flag's value shows in
    /// `ps`.
    #[arg(long, env = "INFERIX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the API token (its first line).
    #[arg(long, env = "INFERIX_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of lines for people.
    #[arg(long)]
    json: bool,
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
    /// Equirectangular .hdr/.exr environment map lighting a glTF scene,
    /// uploaded with the job.
    #[arg(long)]
    environment: Option<PathBuf>,
    /// What empty pixels show: environment, color[:R,G,B] (linear) or
    /// transparent (alpha in PNG/EXR).
    #[arg(long, default_value = "environment")]
    background: inferix_core::renderer::Background,
    /// Higher runs first, among the network's queued jobs.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i32,
    /// A tag every worker rendering the job must carry (e.g. `blender`);
    /// repeat for several.
    #[arg(long = "tag")]
    tags: Vec<String>,
}

async fn connect(c: &ClientArgs) -> anyhow::Result<Client> {
    let token = secret("--token", c.token.clone(), c.token_file.as_deref())?;
    let t = quic(None)?;
    Ok(Client::connect(&t, &c.manager, token).await?)
}

/// Prints once on stderr what the path tracer will substitute in a glTF
/// scene (default light, default camera), before the job is sent.
fn warn_substitutions(scene: &Path, spec: &JobSpec) {
    if spec.scene.format != inferix_core::renderer::SceneFormat::Gltf {
        return;
    }
    let request = inferix_core::renderer::RenderRequest {
        scene: scene.to_path_buf(),
        format: spec.scene.format,
        frames: spec.frames.frames().take(1).collect(),
        settings: spec.settings.clone(),
        crop: None,
        progress: None,
    };
    match inferix_gpu::scene_warnings(&request) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(e) => eprintln!("warning: cannot check the scene locally: {e}"),
    }
}

async fn spec(client: &Client, j: &JobArgs) -> anyhow::Result<JobSpec> {
    let scene = client.upload_scene(&j.scene).await?;
    let mut spec = JobSpec::new(scene, j.frames);
    if let Some(env) = &j.environment {
        spec.environment = Some(client.upload_environment(env).await?);
    }
    spec.settings.background = j.background;
    spec.settings.width = j.width;
    spec.settings.height = j.height;
    spec.settings.samples = j.spp;
    spec.chunk_size = j.chunk;
    spec.format = j.format;
    spec.min_ib = j.min_ib;
    spec.priority = j.priority;
    spec.tags = j.tags.clone();
    warn_substitutions(&j.scene, &spec);
    Ok(spec)
}

/// Prints `value` as JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn quote(c: ClientArgs, j: JobArgs) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    let q = client.quote(&spec(&client, &j).await?).await?;
    if c.json {
        return print_json(&q);
    }
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
    if c.json {
        print_json(&serde_json::json!({ "job": job, "quote": q }))?;
    } else {
        println!("{job}");
        eprintln!("submitted for {} micro-credits", q.total_price);
    }
    if wait || out.is_some() {
        let status = client.wait(job, |ev| print_event(ev, c.json, true)).await?;
        anyhow::ensure!(
            status.job.state == inferix_core::job::JobState::Completed,
            "job ended {}",
            status.job.state.as_str()
        );
        if let Some(dir) = out {
            let files = client.download(job, &dir).await?;
            eprintln!("downloaded {} frames to {}", files.len(), dir.display());
        }
    }
    Ok(())
}

/// Prints an event: a JSON line on stdout, or a sentence on stdout (or
/// stderr, beside a command whose stdout is its result).
fn print_event(ev: &JobEvent, json: bool, to_stderr: bool) {
    match (json, to_stderr) {
        (true, _) => println!("{}", serde_json::to_string(ev).unwrap_or_default()),
        (false, true) => eprintln!("{}", show::event_text(ev)),
        (false, false) => println!("{}", show::event_text(ev)),
    }
}

pub(crate) async fn status(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    let s = connect(&c).await?.status(job).await?;
    if c.json {
        return print_json(&s);
    }
    print!("{}", show::status_text(&s, SystemClock.now_ms()));
    Ok(())
}

pub(crate) async fn watch(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    let s = connect(&c)
        .await?
        .wait(job, |ev| print_event(ev, c.json, false))
        .await?;
    if c.json {
        return print_json(&s);
    }
    print!("{}", show::status_text(&s, SystemClock.now_ms()));
    Ok(())
}

pub(crate) async fn download(c: ClientArgs, job: JobId, out: PathBuf) -> anyhow::Result<()> {
    let files = connect(&c).await?.download(job, &out).await?;
    if c.json {
        return print_json(&files);
    }
    println!("downloaded {} frames to {}", files.len(), out.display());
    Ok(())
}

pub(crate) async fn pause(c: ClientArgs, job: JobId, resume: bool) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    let done = if resume {
        client.resume(job).await?;
        "resumed"
    } else {
        client.pause(job).await?;
        "paused"
    };
    if c.json {
        return print_json(&serde_json::json!({ "job": job, "done": done }));
    }
    println!("{done} {job}");
    Ok(())
}

/// `inferix jobs`: the account's jobs, or with `all` (operators) every job.
pub(crate) async fn jobs(c: ClientArgs, all: bool) -> anyhow::Result<()> {
    let jobs = connect(&c).await?.list_jobs(all).await?;
    if c.json {
        return print_json(&jobs);
    }
    print!("{}", show::jobs_table(&jobs));
    Ok(())
}

/// What `inferix node` does to a node.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum NodeActionArg {
    /// No new task; the current one finishes.
    Drain,
    /// Back into dispatch after a drain.
    Undrain,
    /// Disconnect it and refuse it until enabled.
    Disable,
    /// Admit it again.
    Enable,
}

/// `inferix node ACTION NODE` (operators).
pub(crate) async fn node(
    c: ClientArgs,
    action: NodeActionArg,
    node: inferix_core::ids::NodeId,
) -> anyhow::Result<()> {
    use inferix_core::protocol::NodeAction;
    let (act, done) = match action {
        NodeActionArg::Drain => (NodeAction::Drain, "drained"),
        NodeActionArg::Undrain => (NodeAction::Undrain, "undrained"),
        NodeActionArg::Disable => (NodeAction::Disable, "disabled"),
        NodeActionArg::Enable => (NodeAction::Enable, "enabled"),
    };
    connect(&c).await?.control_node(node, act).await?;
    if c.json {
        return print_json(&serde_json::json!({ "node": node, "done": done }));
    }
    println!("{done} {node}");
    Ok(())
}

/// `inferix ledger` (operators).
pub(crate) async fn ledger(c: ClientArgs) -> anyhow::Result<()> {
    let t = connect(&c).await?.ledger().await?;
    if c.json {
        return print_json(&t);
    }
    use crate::account_cli::credits;
    println!("deposited        {:>20} credits", credits(t.deposited));
    println!(
        "account balances {:>20} credits",
        credits(t.account_balances)
    );
    println!("escrow           {:>20} credits", credits(t.escrow));
    println!("penalty pool     {:>20} credits", credits(t.penalty_pool));
    Ok(())
}

/// `inferix workers`: the connected workers and verifiers (operators).
pub(crate) async fn workers(c: ClientArgs) -> anyhow::Result<()> {
    let nodes = connect(&c).await?.list_nodes().await?;
    if c.json {
        return print_json(&nodes);
    }
    print!("{}", show::nodes_table(&nodes));
    Ok(())
}

pub(crate) async fn claim(
    c: ClientArgs,
    job: JobId,
    frames: FrameRange,
    reason: String,
) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    let json = c.json;
    let mut events = client.watch(job).await?;
    let claim = client
        .claim(job, frames.frames().collect(), &reason)
        .await?;
    eprintln!("claim {claim} filed; frames are being re-rendered");
    while let Some(ev) = events.recv().await {
        if let JobEvent::ClaimSettled {
            claim: c,
            upheld,
            evidence,
            ..
        } = ev
        {
            if c == claim && json {
                return print_json(&serde_json::json!({
                    "claim": claim, "upheld": upheld, "evidence": evidence,
                }));
            }
            if c == claim {
                println!(
                    "claim {claim} {}: {}",
                    if upheld { "upheld" } else { "rejected" },
                    evidence.join("; ")
                );
                return Ok(());
            }
        }
    }
    anyhow::bail!("the manager went away before the claim was settled")
}

pub(crate) async fn cancel(c: ClientArgs, job: JobId) -> anyhow::Result<()> {
    connect(&c).await?.cancel(job).await?;
    if c.json {
        return print_json(&serde_json::json!({ "job": job, "done": "cancelled" }));
    }
    println!("cancelled {job}");
    Ok(())
}
