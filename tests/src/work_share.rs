//! How much of a frame's rendering work lies in some of its pixels: what a
//! cheat that renders those pixels cheaply saves. Path-tracing cost is far
//! from even over a frame (a ray that misses the scene ends at once, one
//! that hits bounces), so it is measured by timing renders, not assumed
//! from the pixels' share of the area.

use std::path::Path;
use std::time::{Duration, Instant};

use inferix_core::image::Rect;
use inferix_core::renderer::{RenderRequest, RenderSettings, Renderer, SceneFormat};

/// The share of frame `frame`'s rendering time at `settings` spent on the
/// pixels of `rects`: each render's time less that of a one-pixel render
/// (the cost of a call: loading the scene, building the frame's data), the
/// fastest of `repeats` renders of each.
pub async fn work_share(
    tracer: &dyn Renderer,
    scene: &Path,
    frame: u32,
    settings: &RenderSettings,
    rects: &[Rect],
    repeats: usize,
) -> anyhow::Result<f64> {
    let timing = Timing {
        tracer,
        scene,
        frame,
        settings,
        repeats,
    };
    let (w, h) = (settings.width, settings.height);
    let whole = timing.fastest(&[Rect::new(0, 0, w, h)]).await?;
    let part = timing.fastest(rects).await?;
    let call = timing.fastest(&[Rect::new(0, 0, 1, 1)]).await?;
    let work = |t: Duration| t.saturating_sub(call).as_secs_f64();
    Ok((work(part) / work(whole).max(f64::MIN_POSITIVE)).clamp(0.0, 1.0))
}

/// Renders of one frame, timed.
struct Timing<'a> {
    tracer: &'a dyn Renderer,
    scene: &'a Path,
    frame: u32,
    settings: &'a RenderSettings,
    repeats: usize,
}

impl Timing<'_> {
    /// The fastest of `repeats` renders of `rects`.
    async fn fastest(&self, rects: &[Rect]) -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..self.repeats.max(1) {
            let req = RenderRequest {
                scene: self.scene.to_path_buf(),
                format: SceneFormat::Gltf,
                frames: vec![self.frame],
                settings: self.settings.clone(),
                crop: None,
                progress: None,
            };
            let started = Instant::now();
            self.tracer.render_crops(req, rects).await?;
            best = best.min(started.elapsed());
        }
        Ok(best)
    }
}
