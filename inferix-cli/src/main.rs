//! The `inferix` command: thin wrappers that build nodes from the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use inferix_core::ids::JobId;
use inferix_core::image::Rect;
use inferix_core::job::{FrameRange, OutputFormat};
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::{RenderRequest, RenderSettings, Renderer, SceneFormat};
use inferix_local::demo::{run_demo, DemoOptions, DemoQuality};

mod account_cli;
mod client_cli;
mod config_file;
mod net_cli;
mod probe;
mod secrets;
mod show;

#[derive(Parser)]
#[command(
    name = "inferix",
    version,
    about = "Decentralized GPU rendering: manager, worker, verifier and client"
)]
struct Cli {
    /// Log lines as `text` for people or `json` (one object per line, with
    /// the job and task of the span it happened in) for log collectors.
    #[arg(
        long,
        global = true,
        env = "INFERIX_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole network in this process (manager, 3 workers, 2 verifiers)
    /// and render the built-in animated scene to ./inferix-out/<job-id>/.
    Demo {
        /// Frames to render, from 1.
        #[arg(long, default_value_t = 24)]
        frames: u32,
        /// Width in pixels [default: 640 on a GPU, less on a CPU device].
        #[arg(long)]
        width: Option<u32>,
        /// Height in pixels [default: 360 on a GPU, less on a CPU device].
        #[arg(long)]
        height: Option<u32>,
        /// Samples per pixel [default: 16 on a GPU, fewer on a CPU device].
        #[arg(long)]
        spp: Option<u32>,
        /// Folder for the task database and blobs.
        #[arg(long, default_value = "inferix-data")]
        data_dir: PathBuf,
        /// Folder for the delivered frames.
        #[arg(long, default_value = "inferix-out")]
        out_dir: PathBuf,
    },
    /// Render a scene locally, without any network (like `blender -b -a`).
    Render {
        /// Scene file (.glb or .gltf).
        scene: PathBuf,
        /// Frames: N, A-B or A-B:STEP.
        #[arg(long, default_value = "1")]
        frames: FrameRange,
        /// Output folder.
        #[arg(long, default_value = "render-out")]
        out: PathBuf,
        /// Width in pixels.
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Height in pixels.
        #[arg(long, default_value_t = 360)]
        height: u32,
        /// Samples per pixel.
        #[arg(long, default_value_t = 64)]
        spp: u32,
        /// Maximum bounces.
        #[arg(long, default_value_t = 6)]
        bounces: u32,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Frames per second of the animation.
        #[arg(long, default_value_t = 24.0)]
        fps: f32,
        /// png or exr.
        #[arg(long, default_value = "png")]
        format: OutputFormat,
        /// Render only x,y,w,h of each frame.
        #[arg(long, value_parser = parse_crop)]
        crop: Option<Rect>,
        /// Equirectangular .hdr or .exr environment map lighting the scene.
        #[arg(long)]
        environment: Option<PathBuf>,
        /// What empty pixels show: environment, color[:R,G,B] (linear) or
        /// transparent (alpha in the PNG/EXR).
        #[arg(long, default_value = "environment")]
        background: inferix_core::renderer::Background,
        /// How light becomes 8-bit values: standard (clips at white) or
        /// filmic (rolls bright highlights off); EXR stays linear.
        #[arg(long, default_value = "standard")]
        view: inferix_core::renderer::View,
    },
    /// Measure this device's Inferix Bench index (IB).
    Bench,
    /// Run a manager over QUIC until SIGINT/SIGTERM.
    Manager(Box<net_cli::ManagerArgs>),
    /// Run a worker that connects out to a manager (no open port needed).
    Worker(net_cli::NodeArgs),
    /// Run a verifier that connects out to a manager.
    Verifier(net_cli::NodeArgs),
    /// Ask a manager for the price of a job.
    Quote {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        #[command(flatten)]
        job: client_cli::JobArgs,
    },
    /// Submit a job; prints its id.
    Submit {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        #[command(flatten)]
        job: client_cli::JobArgs,
        /// Wait until the job ends.
        #[arg(long)]
        wait: bool,
        /// Wait, then download the frames here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a job's status.
    Status {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
    },
    /// Follow a job's events until it ends.
    Watch {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
    },
    /// Download a job's accepted frames, or one of its outputs.
    Download {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
        /// Output folder.
        #[arg(long, default_value = "inferix-out")]
        out: PathBuf,
        /// An output the job asked for (mp4, zip, tar, jpeg, png16, exr-half, gif,
        /// webp, contact-sheet) instead of the frames; waits until it is
        /// made.
        #[arg(long, value_name = "NAME")]
        output: Option<String>,
    },
    /// Cancel a job.
    Cancel {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
    },
    /// Stop leasing a job's tasks (running ones finish).
    Pause {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
    },
    /// Lease a paused job's tasks again.
    Resume {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
    },
    /// Claim that delivered frames are bad: they are re-rendered by another
    /// node, and the claim is upheld (refund) or rejected.
    Claim {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Job id.
        job: JobId,
        /// Frames claimed: N, A-B or A-B:STEP.
        #[arg(long)]
        frames: FrameRange,
        /// What is wrong with them.
        #[arg(long, default_value = "bad frames")]
        reason: String,
    },
    /// Accounts of users and operators: create, deposit, balance, keys,
    /// revoke, list. Works on the manager's task store (the manager's
    /// --data-dir, --store or --config), also while the manager runs.
    Account {
        #[command(flatten)]
        store: Box<net_cli::ManagerArgs>,
        #[command(subcommand)]
        command: account_cli::AccountCommand,
    },
    /// List your account's jobs (with --all, an operator's view of every
    /// account's jobs).
    Jobs {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// Every account's jobs (operators).
        #[arg(long)]
        all: bool,
    },
    /// List the manager's connected workers and verifiers (operators).
    Workers {
        #[command(flatten)]
        client: client_cli::ClientArgs,
    },
    /// Drain (no new task), undrain, disable (disconnect and refuse) or
    /// enable a worker or verifier (operators).
    Node {
        #[command(flatten)]
        client: client_cli::ClientArgs,
        /// drain, undrain, disable or enable.
        action: client_cli::NodeActionArg,
        /// Node id, as `inferix workers` lists it.
        node: inferix_core::ids::NodeId,
    },
    /// The ledger's totals: deposited, held by accounts, in escrow, in the
    /// penalty pool (operators).
    Ledger {
        #[command(flatten)]
        client: client_cli::ClientArgs,
    },
    /// Write the built-in demo scene as a .glb file.
    DemoScene {
        /// Output file.
        #[arg(default_value = "inferix-demo.glb")]
        out: PathBuf,
    },
}

fn parse_crop(s: &str) -> Result<Rect, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("crop {s:?}: {e}"))?;
    match v[..] {
        [x, y, w, h] => Ok(Rect::new(x, y, w, h)),
        _ => Err(format!("crop {s:?}: expected x,y,w,h")),
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Mesa's Vulkan device-select layer asks a display server which GPU to
/// prefer and complains on stderr ("XDG_RUNTIME_DIR is invalid") when there
/// is none, as on a headless render node. The renderer picks its adapter
/// itself, so the layer is turned off there. Called before any thread
/// starts, as changing the environment requires.
fn quiet_headless_vulkan() {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !has_display && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() -> anyhow::Result<()> {
    quiet_headless_vulkan();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFERIX_LOG")
        .unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(cli));
    // Without waiting for blocking threads: a worker stopped by a signal has
    // handed its task back, and the render still running on one of them is
    // abandoned, not finished.
    runtime.shutdown_background();
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            frames,
            width,
            height,
            spp,
            data_dir,
            out_dir,
        } => {
            let tracer = inferix_gpu::PathTracer::new()?;
            let quality = DemoQuality::for_device(tracer.is_software());
            let width = width.unwrap_or(quality.width);
            let height = height.unwrap_or(quality.height);
            let spp = spp.unwrap_or(quality.samples);
            let renderer: Arc<dyn Renderer> = Arc::new(tracer);
            let opts = DemoOptions {
                frames,
                width,
                height,
                samples: spp,
                data_dir,
                out_dir,
                ..DemoOptions::default()
            };
            println!("inferix demo: {} workers, {} verifiers, {frames} frames at {width}x{height}, {spp} spp on {}", opts.worker_ibs.len(), opts.verifiers, renderer.device_class());
            if quality.software {
                println!("  (a CPU device: smaller frames and fewer samples than on a GPU; --width, --height and --spp choose others)");
            }
            // A terminal gets a bar; a log or a pipe gets a line per task.
            let lines = !std::io::stdout().is_terminal();
            let pb = bar(frames as u64, "frames accepted");
            let summary = run_demo(&opts, renderer, |ev| match ev {
                JobEvent::TaskAccepted {
                    accepted_frames,
                    total_frames,
                    ..
                } => {
                    pb.set_position(*accepted_frames);
                    if lines {
                        println!("{accepted_frames}/{total_frames} frames accepted");
                    }
                }
                JobEvent::TaskRejected { task, reasons, .. } => {
                    pb.println(format!("rejected {task:?}: {}", reasons.join("; ")))
                }
                JobEvent::TaskRequeued { task, reason } => {
                    pb.println(format!("re-queued {task:?}: {reason}"))
                }
                JobEvent::Waiting { reason } => pb.set_message(format!("waiting: {reason}")),
                _ => {}
            })
            .await?;
            pb.finish_and_clear();
            println!("{summary}");
        }
        Command::Render {
            scene,
            frames,
            out,
            width,
            height,
            spp,
            bounces,
            seed,
            fps,
            format,
            crop,
            environment,
            background,
            view,
        } => {
            let scene_format =
                SceneFormat::from_path(&scene).context("scene must be .glb, .gltf or .blend")?;
            anyhow::ensure!(
                view == inferix_core::renderer::View::Standard || format != OutputFormat::Exr,
                "--view {view} shapes 8-bit frames; EXR frames stay scene-linear (use --format png)"
            );
            let renderer = inferix_gpu::PathTracer::new()?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let settings = RenderSettings {
                width,
                height,
                samples: spp,
                max_bounces: bounces,
                seed,
                fps,
                environment,
                background,
                view,
            };
            let list: Vec<u32> = frames.frames().collect();
            anyhow::ensure!(!list.is_empty(), "frame range {frames} is empty");
            // What the renderer substitutes (default light, default camera,
            // unsupported features) is said once, before any frame.
            let whole = RenderRequest {
                scene: scene.clone(),
                format: scene_format,
                frames: list.clone(),
                settings: settings.clone(),
                crop,
                progress: None,
            };
            for w in renderer.scene_warnings(&whole).await? {
                eprintln!("warning: {w}");
            }
            let pb = bar(list.len() as u64, "frames");
            for f in list {
                let req = RenderRequest {
                    scene: scene.clone(),
                    format: scene_format,
                    frames: vec![f],
                    settings: settings.clone(),
                    crop,
                    progress: None,
                };
                let t = std::time::Instant::now();
                let img = renderer.render(req).await?.remove(0).image;
                let path = out.join(format!("frame_{f:04}.{}", format.extension()));
                let bytes = match format {
                    OutputFormat::Png => inferix_gpu::codec::encode_png_frame(&img)?,
                    OutputFormat::Exr => inferix_gpu::codec::encode_exr(&img)?,
                };
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                pb.println(format!(
                    "{} ({:.2} s)",
                    path.display(),
                    t.elapsed().as_secs_f64()
                ));
                pb.inc(1);
            }
            pb.finish_and_clear();
        }
        Command::Bench => {
            let renderer = inferix_gpu::PathTracer::new()?;
            let r = inferix_gpu::bench::run_bench(&renderer).await?;
            println!("device              {}", r.device);
            println!("time per frame (T)  {:.4} s", r.seconds_per_frame);
            println!(
                "reference T0        {:.4} s",
                inferix_gpu::bench::REFERENCE_T0_SECONDS
            );
            println!("samples per second  {:.3e}", r.samples_per_second);
            println!("IB = T0 / T         {:.3}", r.ib);
        }
        Command::Manager(a) => net_cli::manager(*a).await?,
        Command::Worker(a) => net_cli::worker(a).await?,
        Command::Verifier(a) => net_cli::verifier(a).await?,
        Command::Quote { client, job } => client_cli::quote(client, job).await?,
        Command::Submit {
            client,
            job,
            wait,
            out,
        } => client_cli::submit(client, job, wait, out).await?,
        Command::Status { client, job } => client_cli::status(client, job).await?,
        Command::Watch { client, job } => client_cli::watch(client, job).await?,
        Command::Download {
            client,
            job,
            out,
            output,
        } => client_cli::download(client, job, out, output).await?,
        Command::Cancel { client, job } => client_cli::cancel(client, job).await?,
        Command::Pause { client, job } => client_cli::pause(client, job, false).await?,
        Command::Resume { client, job } => client_cli::pause(client, job, true).await?,
        Command::Claim {
            client,
            job,
            frames,
            reason,
        } => client_cli::claim(client, job, frames, reason).await?,
        Command::Jobs { client, all } => client_cli::jobs(client, all).await?,
        Command::Workers { client } => client_cli::workers(client).await?,
        Command::Node {
            client,
            action,
            node,
        } => client_cli::node(client, action, node).await?,
        Command::Ledger { client } => client_cli::ledger(client).await?,
        Command::Account { store, command } => account_cli::run(*store, command).await?,
        Command::DemoScene { out } => {
            std::fs::write(&out, inferix_gpu::demo_scene_glb())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
