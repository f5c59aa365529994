//! What making a job's outputs costs next to rendering it: a 240-frame
//! animation of the demo scene at a small resolution, rendered by a local
//! network, asking for an MP4, a zip, JPEGs and a contact sheet. Prints
//! the render's wall time (submission to the last frame accepted), the
//! consolidation's (completion to every output made) and their ratio.
//! Needs `ffmpeg` (`scripts/setup-ffmpeg.sh`).
//!
//! ```sh
//! cargo run --release -p inferix-local --example outputs_cost -- [FRAMES] [WIDTH] [HEIGHT]
//! ```

use std::time::{Duration, Instant};

use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_core::outputs::{OutputRequest, OutputState};
use inferix_core::protocol::JobEvent;
use inferix_local::LocalNetwork;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: u32| -> anyhow::Result<u32> {
        std::env::args()
            .nth(i)
            .map_or(Ok(default), |a| Ok(a.parse()?))
    };
    let (frames, width, height) = (arg(1, 240)?, arg(2, 128)?, arg(3, 72)?);
    let net = LocalNetwork::builder()
        .workers(2)
        .verifiers(1)
        .quorum(1)
        .start()
        .await?;
    let client = net.client().await?;
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await?;
    let mut spec = JobSpec::new(scene, FrameRange::new(1, frames));
    spec.settings.width = width;
    spec.settings.height = height;
    spec.settings.samples = 4;
    spec.chunk_size = 10;
    spec.outputs = vec![
        OutputRequest::Mp4 { fps: 24 },
        OutputRequest::Zip,
        OutputRequest::Jpeg { quality: 90 },
        OutputRequest::ContactSheet {
            columns: 12,
            thumb_width: 64,
        },
    ];
    let started = Instant::now();
    let (job, _) = client.submit(&spec).await?;
    let mut events = client.watch(job).await?;
    let limit = Duration::from_secs(3600);
    let mut rendered = None;
    tokio::time::timeout(limit, async {
        while let Some(ev) = events.recv().await {
            match ev {
                JobEvent::Completed { .. } => rendered = Some(started.elapsed()),
                JobEvent::OutputsFinished { .. } | JobEvent::Failed { .. } => break,
                _ => {}
            }
        }
    })
    .await?;
    let all = started.elapsed();
    let status = client.status_page(job, 0).await?;
    anyhow::ensure!(
        status.job.state == JobState::Completed,
        "job ended {:?}",
        status.job.state
    );
    let render = rendered.ok_or_else(|| anyhow::anyhow!("no completion seen"))?;
    let consolidation = all - render;
    for o in &status.job.outputs {
        match &o.state {
            OutputState::Ready { size, .. } => println!("{:<14} {size:>12} bytes", o.name()),
            other => println!("{:<14} {other:?}", o.name()),
        }
    }
    println!(
        "{frames} frames at {width}x{height}, {} spp, on {}",
        spec.settings.samples,
        net.device()
    );
    println!(
        "render {:.1} s, consolidation {:.2} s: consolidation s / render s = {:.4}",
        render.as_secs_f64(),
        consolidation.as_secs_f64(),
        consolidation.as_secs_f64() / render.as_secs_f64()
    );
    net.shutdown().await;
    Ok(())
}
