//! Noise at equal samples per pixel: SSIM against a high-sample reference
//! of the same renderer, for the former independent sampler and the
//! Owen-scrambled Sobol sampler, at 16 and 64 spp, in one run.
//!
//! `cargo run --release -p inferix-gpu --example noise_bench -- [width height reference_spp]`
//!
//! Scenes (written here, nothing downloaded): the demo room (area and point
//! light), and a lightless, camera-less studio still life (default studio
//! environment, default camera).

use std::path::{Path, PathBuf};
use std::time::Instant;

use inferix_core::renderer::{RenderRequest, RenderSettings, SceneFormat};
use inferix_gpu::builder::{box_mesh, quad_mesh, sphere_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use inferix_gpu::{codec, demo_scene_glb, metrics, PathTracer, Sampler};

/// Objects on a floor, no light, no camera.
fn still_life_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let floor = b.material(MaterialDesc {
        base_color: [0.7; 3],
        roughness: 0.9,
        ..Default::default()
    });
    let red = b.material(MaterialDesc {
        base_color: [0.7, 0.1, 0.1],
        roughness: 0.4,
        ..Default::default()
    });
    let gold = b.material(MaterialDesc {
        base_color: [0.95, 0.8, 0.5],
        metallic: 1.0,
        roughness: 0.2,
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(1.6);
    let m = b.mesh(&p, Some(&n), &i, floor);
    b.node(
        NodeDesc {
            mesh: Some(m),
            ..Default::default()
        },
        true,
    );
    let (p, n, i) = box_mesh([0.4; 3], false);
    let m = b.mesh(&p, Some(&n), &i, red);
    b.node(
        NodeDesc {
            mesh: Some(m),
            translation: Some([-0.6, 0.4, 0.0]),
            ..Default::default()
        },
        true,
    );
    let (p, n, i) = sphere_mesh(0.45, 48, 24);
    let m = b.mesh(&p, Some(&n), &i, gold);
    b.node(
        NodeDesc {
            mesh: Some(m),
            translation: Some([0.6, 0.45, 0.2]),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

fn render(
    t: &PathTracer,
    scene: &Path,
    s: &RenderSettings,
) -> Result<(inferix_core::image::Image, f64), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let img = t
        .render_blocking(&RenderRequest {
            scene: scene.to_path_buf(),
            format: SceneFormat::Gltf,
            frames: vec![0],
            settings: s.clone(),
            crop: None,
            progress: None,
        })?
        .remove(0)
        .image;
    Ok((img, start.elapsed().as_secs_f64()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let width = args.first().copied().unwrap_or(160);
    let height = args.get(1).copied().unwrap_or(90);
    let reference_spp = args.get(2).copied().unwrap_or(1024);
    let dir = std::env::temp_dir().join("inferix-noise-bench");
    std::fs::create_dir_all(&dir)?;
    let scenes: [(&str, Vec<u8>); 2] = [
        ("demo-room", demo_scene_glb()),
        ("still-life", still_life_glb()),
    ];
    let new = PathTracer::new()?;
    let old = new.clone().with_sampler(Sampler::Independent);
    println!("{width}x{height}, reference {reference_spp} spp (Sobol, seed 1000); SSIM of seed 1");
    println!(
        "{:<12} {:>5}  {:>12} {:>8}  {:>12} {:>8}",
        "scene", "spp", "independent", "s/frame", "sobol-owen", "s/frame"
    );
    for (name, bytes) in scenes {
        let scene: PathBuf = dir.join(format!("{name}.glb"));
        std::fs::write(&scene, bytes)?;
        let base = RenderSettings {
            width,
            height,
            seed: 1000,
            samples: reference_spp,
            ..RenderSettings::default()
        };
        let (reference, _) = render(&new, &scene, &base)?;
        let reference8 = reference.to_srgb8();
        std::fs::write(
            dir.join(format!("{name}-ref.png")),
            codec::encode_png(&reference8),
        )?;
        for spp in [16u32, 64] {
            let s = RenderSettings {
                samples: spp,
                seed: 1,
                ..base.clone()
            };
            let mut row = Vec::new();
            for (label, t) in [("independent", &old), ("sobol", &new)] {
                let (img, secs) = render(t, &scene, &s)?;
                let img8 = img.to_srgb8();
                std::fs::write(
                    dir.join(format!("{name}-{spp}-{label}.png")),
                    codec::encode_png(&img8),
                )?;
                let ssim = metrics::ssim(&img8, &reference8).ok_or("size mismatch")?;
                row.push((ssim, secs));
            }
            println!(
                "{:<12} {:>5}  {:>12.4} {:>8.3}  {:>12.4} {:>8.3}",
                name, spp, row[0].0, row[0].1, row[1].0, row[1].1
            );
        }
    }
    println!("images in {}", dir.display());
    Ok(())
}
