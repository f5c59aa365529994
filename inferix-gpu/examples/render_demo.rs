//! Renders frames of the built-in demo scene to PNG files and prints timings.
//!
//! `cargo run --release -p inferix-gpu --example render_demo -- [width height samples frames...]`

use std::time::Instant;

use inferix_core::renderer::{RenderRequest, RenderSettings, Renderer, SceneFormat};
use inferix_gpu::{codec, demo_scene_glb, PathTracer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let width = args.first().copied().unwrap_or(640);
    let height = args.get(1).copied().unwrap_or(360);
    let samples = args.get(2).copied().unwrap_or(64);
    let frames: Vec<u32> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        vec![0]
    };
    let dir = std::env::temp_dir().join("inferix-demo");
    std::fs::create_dir_all(&dir)?;
    let scene = dir.join("demo.glb");
    std::fs::write(&scene, demo_scene_glb())?;
    let tracer = PathTracer::new()?;
    println!("device: {}", tracer.device_class());
    let settings = RenderSettings {
        width,
        height,
        samples,
        ..RenderSettings::default()
    };
    for frame in frames {
        let request = RenderRequest {
            scene: scene.clone(),
            format: SceneFormat::Gltf,
            frames: vec![frame],
            settings: settings.clone(),
            crop: None,
            progress: None,
        };
        let t = Instant::now();
        let out = tracer.render(request).await?;
        let secs = t.elapsed().as_secs_f64();
        let sps = (width as f64 * height as f64 * samples as f64) / secs;
        let path = dir.join(format!("frame{frame:04}.png"));
        std::fs::write(&path, codec::encode_png(&out[0].image.to_srgb8()))?;
        println!(
            "frame {frame}: {secs:.3} s, {:.2} Msamples/s -> {}",
            sps / 1e6,
            path.display()
        );
    }
    Ok(())
}
