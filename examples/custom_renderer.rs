//! A [`Renderer`] that wraps an external program.
//!
//! Studios often have a renderer that is a command line tool; this wraps
//! one so Inferix workers can run it. The "program" here is a short awk
//! script (any POSIX system has awk) that writes each frame as an ASCII PPM
//! image; a real integration would call its own binary the same way: one
//! process per frame, scene path and settings as arguments, image file out.
//!
//! This program ignores the scene, so it cannot show Proof of Render's
//! watermark patches (which live in the scene copy each worker is given)
//! and the network runs without it. A real renderer renders the scene it
//! is given, deterministically, and keeps Proof of Render on.
//!
//! `cargo run -p inferix-examples --bin custom_renderer`

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use inferix_core::image::{srgb8_to_linear, Image};
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};
use inferix_local::LocalNetwork;

/// Draws a gradient that moves with the frame number, as `P3` PPM on
/// stdout. Arguments: width height frame scene-path.
const PROGRAM: &str = r#"BEGIN {
    w = ARGV[1]; h = ARGV[2]; f = ARGV[3]
    print "P3"; print w, h; print 255
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            print int(255 * x / w), int(255 * y / h), (f * 40 + x + y) % 256
}"#;

/// Runs `awk PROGRAM` once per frame and reads back its image.
struct ExternalRenderer;

#[async_trait]
impl Renderer for ExternalRenderer {
    fn name(&self) -> &str {
        "awk-ppm"
    }

    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }

    fn device_class(&self) -> String {
        "awk-ppm-1".into()
    }

    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        req.validate()?;
        let mut out = Vec::with_capacity(req.frames.len());
        for &frame in &req.frames {
            let image =
                run_program(&req.scene, req.settings.width, req.settings.height, frame).await?;
            // The program renders whole frames; crops are cut out of them.
            let image = match req.crop {
                Some(rect) => image.crop(rect),
                None => image,
            };
            out.push(RenderedFrame { frame, image });
        }
        Ok(out)
    }
}

async fn run_program(
    scene: &Path,
    width: u32,
    height: u32,
    frame: u32,
) -> Result<Image, RenderError> {
    let output = tokio::process::Command::new("awk")
        .arg(PROGRAM)
        .args([width.to_string(), height.to_string(), frame.to_string()])
        .arg(scene)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| RenderError::Backend(format!("cannot run awk: {e}")))?;
    if !output.status.success() {
        return Err(RenderError::Backend(format!(
            "awk failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_ppm(&String::from_utf8_lossy(&output.stdout))
}

/// Reads an ASCII (`P3`, 8-bit) PPM image into linear RGB.
fn parse_ppm(text: &str) -> Result<Image, RenderError> {
    let bad = |why: &str| RenderError::Backend(format!("bad PPM from the program: {why}"));
    let mut tokens = text.split_ascii_whitespace();
    if tokens.next() != Some("P3") {
        return Err(bad("not P3"));
    }
    let mut number = || -> Result<u32, RenderError> {
        tokens
            .next()
            .ok_or_else(|| bad("truncated"))?
            .parse()
            .map_err(|_| bad("not a number"))
    };
    let (w, h, max) = (number()?, number()?, number()?);
    if max != 255 {
        return Err(bad("only 8-bit images are read"));
    }
    let mut img = Image::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut c = [0.0; 3];
            for v in &mut c {
                let byte = u8::try_from(number()?).map_err(|_| bad("value over 255"))?;
                *v = srgb8_to_linear(byte);
            }
            img.set(x, y, c);
        }
    }
    Ok(img)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let net = LocalNetwork::builder()
        .workers(2)
        .verifiers(1)
        .renderer(Arc::new(ExternalRenderer))
        // The awk program draws no scene, so no watermark patch either.
        .without_proof_of_render()
        .start()
        .await?;
    let client = net.client().await?;
    // The wrapped program ignores the scene, but a real one would read it.
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await?;
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 4));
    (spec.settings.width, spec.settings.height) = (32, 18);
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await?;
    let status = client.wait(job, |_| {}).await?;
    println!(
        "job {job} {} on {}",
        status.job.state.as_str(),
        net.device()
    );
    let dir = std::env::temp_dir().join(format!("inferix-custom-renderer-{job}"));
    let files = client.download(job, &dir).await?;
    println!("{} frames in {}", files.len(), dir.display());
    drop(client);
    net.shutdown().await;
    Ok(())
}
