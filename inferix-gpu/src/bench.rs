//! The Inferix Bench: IB = T0 / T, where T is this device's time per frame of
//! a fixed reference scene at fixed settings and T0 the same figure on the
//! reference machine (Mesa lavapipe on a 2-core CI-class x86-64 VM, release
//! build), so IB ≈ 1 there and IB = 50 means fifty times faster.

use std::time::Instant;

use inferix_core::image::Rect;
use inferix_core::renderer::{Background, RenderError, RenderSettings, Renderer};

use crate::tracer::{frame_data, Lighting, PathTracer};

/// Reference time per frame, in seconds, measured on the reference machine.
pub const REFERENCE_T0_SECONDS: f64 = 1.29;

/// Settings of the bench render.
pub const BENCH_SETTINGS: RenderSettings = RenderSettings {
    width: 160,
    height: 90,
    samples: 16,
    max_bounces: 4,
    seed: 0x1B,
    fps: 24.0,
    environment: None,
    background: Background::Environment,
    view: inferix_core::renderer::View::Standard,
};

/// Timed frames after one warm-up frame (which compiles the kernel).
pub const BENCH_FRAMES: u32 = 3;

/// Result of one bench run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// Device class that ran the bench.
    pub device: String,
    /// Median time per frame.
    pub seconds_per_frame: f64,
    /// Inferix Bench index: `REFERENCE_T0_SECONDS / seconds_per_frame`.
    pub ib: f64,
    /// Path samples traced per second.
    pub samples_per_second: f64,
}

/// Renders the reference scene and reports the IB of `tracer`'s device.
pub async fn run_bench(tracer: &PathTracer) -> Result<BenchReport, RenderError> {
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || run_bench_blocking(&t))
        .await
        .map_err(|e| RenderError::Backend(format!("bench task failed: {e}")))?
}

/// Blocking version of [`run_bench`].
pub fn run_bench_blocking(tracer: &PathTracer) -> Result<BenchReport, RenderError> {
    let scene = crate::scene::load(
        &crate::demo::bench_scene_glb(),
        std::path::Path::new("bench.glb"),
    )
    .map_err(|e| RenderError::Backend(format!("bench scene: {}", e.0)))?;
    let s = BENCH_SETTINGS;
    let data = frame_data(&scene, 0, &s).map_err(RenderError::Backend)?;
    let rect = Rect::new(0, 0, s.width, s.height);
    let lighting = Lighting::choose(&data, None);
    let cam = data
        .camera
        .unwrap_or_else(|| crate::camera::default_camera(None, s.width as f32 / s.height as f32));
    tracer.render_data(&data, &cam, &lighting, &s, 0, rect, &|_| {})?;
    let mut times = Vec::new();
    for frame in 1..=BENCH_FRAMES {
        let start = Instant::now();
        tracer.render_data(&data, &cam, &lighting, &s, frame, rect, &|_| {})?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2].max(1e-9);
    let samples = s.width as f64 * s.height as f64 * s.samples as f64;
    Ok(BenchReport {
        device: tracer.device_class(),
        seconds_per_frame: t,
        ib: REFERENCE_T0_SECONDS / t,
        samples_per_second: samples / t,
    })
}
