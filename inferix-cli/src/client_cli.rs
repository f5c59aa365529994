//! Client subcommands: quote, submit, status, watch, download, pause,
//! resume, claim, cancel and listings, against a manager over QUIC.

use inferix_core::time::{Clock, SystemClock};
use std::path::{Path, PathBuf};

use clap::Args;
use inferix_core::ids::JobId;
use inferix_core::job::{FrameRange, JobSpec, OutputFormat};
use inferix_core::job_file::{JobFile, JobFileError, JobInput};
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

/// What to render: a scene and flags, or a job file and flags that
/// override its values.
#[derive(Args)]
pub(crate) struct JobArgs {
    /// Scene file (.glb, .gltf or .blend), or a job file (.toml or .json,
    /// see docs/job-files.md) whose scene path is taken from its folder.
    scene: PathBuf,
    /// Frames: N, A-B or A-B:STEP [default: 1].
    #[arg(long)]
    frames: Option<FrameRange>,
    /// Width in pixels [default: 640].
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels [default: 360].
    #[arg(long)]
    height: Option<u32>,
    /// Samples per pixel [default: 64].
    #[arg(long)]
    spp: Option<u32>,
    /// Frames per task [default: 5].
    #[arg(long)]
    chunk: Option<u32>,
    /// png or exr [default: png].
    #[arg(long)]
    format: Option<OutputFormat>,
    /// Minimum worker IB [default: 0].
    #[arg(long)]
    min_ib: Option<f64>,
    /// Equirectangular .hdr/.exr environment map lighting a glTF scene,
    /// uploaded with the job.
    #[arg(long)]
    environment: Option<PathBuf>,
    /// What empty pixels show: environment, color[:R,G,B] (linear) or
    /// transparent (alpha in PNG/EXR) [default: environment].
    #[arg(long)]
    background: Option<inferix_core::renderer::Background>,
    /// Higher runs first, among the network's queued jobs [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i32>,
    /// A tag every worker rendering the job must carry (e.g. `blender`);
    /// repeat for several. Replaces a job file's tags.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// A file the network makes from the frames once the job completes:
    /// mp4[:FPS], gif[:FPS], webp[:FPS], jpeg[:QUALITY], png16, exr-half, zip, tar,
    /// contact-sheet[:COLUMNS]; repeat for several. Replaces a job file's.
    #[arg(long = "output", value_name = "OUTPUT")]
    outputs: Vec<inferix_core::outputs::OutputRequest>,
    /// Splits every frame into COLUMNSxROWS tiles (e.g. `4x4`), each
    /// rendered by its own task and stitched by the network into the
    /// frame, pixel for pixel as rendered whole.
    #[arg(long, value_name = "COLUMNSxROWS")]
    tiles: Option<inferix_core::tiles::TileGrid>,
    /// How light becomes 8-bit values: `standard` (clips at white) or
    /// `filmic` (rolls bright highlights off) [default: standard].
    #[arg(long)]
    view: Option<inferix_core::renderer::View>,
}

/// The job the arguments describe: the job file's (or a scene's with the
/// defaults), then every flag given on top. Checked whole before anything
/// is uploaded, so a bad file fails with its field named and submits
/// nothing.
fn job_file(j: &JobArgs) -> anyhow::Result<JobFile> {
    let mut file = if JobFile::is_job_file(&j.scene) {
        JobFile::from_path(&j.scene).map_err(|e| file_error(&j.scene, e))?
    } else {
        JobFile::new(JobInput::Path(j.scene.clone()))
    };
    let r = &mut file.render;
    r.width = j.width.unwrap_or(r.width);
    r.height = j.height.unwrap_or(r.height);
    r.samples = j.spp.unwrap_or(r.samples);
    r.background = j.background.unwrap_or(r.background);
    r.view = j.view.unwrap_or(r.view);
    file.frames = j.frames.unwrap_or(file.frames);
    file.chunk = j.chunk.unwrap_or(file.chunk);
    file.format = j.format.unwrap_or(file.format);
    file.min_ib = j.min_ib.unwrap_or(file.min_ib);
    file.priority = j.priority.unwrap_or(file.priority);
    if !j.tags.is_empty() {
        file.tags = j.tags.clone();
    }
    if !j.outputs.is_empty() {
        file.outputs = j.outputs.clone();
    }
    file.tiles = j.tiles.or(file.tiles);
    if let Some(env) = &j.environment {
        file.environment = Some(JobInput::Path(env.clone()));
    }
    file.check().map_err(|e| file_error(&j.scene, e))?;
    Ok(file)
}

/// A job file's error, with the file named unless the error already does.
fn file_error(file: &Path, e: JobFileError) -> anyhow::Error {
    if matches!(
        e,
        JobFileError::Read { .. } | JobFileError::Extension { .. }
    ) {
        e.into()
    } else {
        anyhow::anyhow!("{}: {e}", file.display())
    }
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

/// Uploads what `file` names and makes its spec.
async fn spec(client: &Client, file: &JobFile) -> anyhow::Result<JobSpec> {
    let local = |input: &JobInput, field: &str| {
        input.path().map(Path::to_path_buf).ok_or_else(|| {
            anyhow::anyhow!("`{field}`: give a file path; a blob reference is for the HTTP API")
        })
    };
    let scene_path = local(&file.scene, "scene")?;
    let scene = client.upload_scene(&scene_path).await?;
    let environment = match &file.environment {
        Some(env) => Some(
            client
                .upload_environment(&local(env, "environment")?)
                .await?,
        ),
        None => None,
    };
    let spec = file.to_spec(scene, environment)?;
    warn_substitutions(&scene_path, &spec);
    Ok(spec)
}

/// Prints `value` as JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn quote(c: ClientArgs, j: JobArgs) -> anyhow::Result<()> {
    let file = job_file(&j)?;
    let client = connect(&c).await?;
    let q = client.quote(&spec(&client, &file).await?).await?;
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
    let file = job_file(&j)?;
    let client = connect(&c).await?;
    let (job, q) = client.submit(&spec(&client, &file).await?).await?;
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

pub(crate) async fn download(
    c: ClientArgs,
    job: JobId,
    out: PathBuf,
    output: Option<String>,
) -> anyhow::Result<()> {
    let client = connect(&c).await?;
    if let Some(name) = output {
        // Outputs are made after the last frame: wait for them first.
        client.wait_outputs(job).await?;
        let file = client.download_output(job, &name, &out).await?;
        if c.json {
            return print_json(&file);
        }
        println!("downloaded {name} to {}", file.display());
        return Ok(());
    }
    let files = client.download(job, &out).await?;
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
