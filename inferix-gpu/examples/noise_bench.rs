//! Noise at equal samples per pixel: SSIM against a high-sample reference
//! of the same renderer, for the former independent sampler and the
//! Owen-scrambled Sobol sampler, at 16 and 64 spp, in one run.
//!
//! `cargo run --release -p inferix-gpu --example noise_bench -- [width height reference_spp] [blender]`
//!
//! Scenes (written here, nothing downloaded): the demo room (area and point
//! light), and a lightless, camera-less studio still life (default studio
//! environment, default camera).
//!
//! With `blender`, Blender Cycles renders the same glTF files (its glTF
//! importer; CPU, no denoising, no adaptive sampling, 1-pixel box filter,
//! standard view transform, 6 bounces, no sample clamping or glossy
//! filtering) and its SSIM against its own
//! reference is printed beside ours. Cycles gets the camera-less scene with
//! the default camera inserted (by the watermarker, with no patches) and,
//! for scenes without lights, the default studio as its world.

use std::path::{Path, PathBuf};
use std::time::Instant;

use inferix_core::image::Rgb8Image;
use inferix_core::renderer::{RenderRequest, RenderSettings, SceneFormat};
use inferix_gpu::builder::{box_mesh, quad_mesh, sphere_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use inferix_gpu::{codec, demo_scene_glb, metrics, PathTracer, Sampler};

/// Imports a glTF into an empty Blender and renders one frame with Cycles.
const CYCLES_SCRIPT: &str = r#"
import sys, time
import numpy as np
np.bool = bool  # removed from numpy; Blender 3.4's glTF importer still uses it
import bpy
a = sys.argv[sys.argv.index("--") + 1:]
path, out, w, h, spp, seed, env = a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
sc = bpy.context.scene
cams = [o for o in sc.objects if o.type == 'CAMERA']
if cams:
    sc.camera = cams[0]
if not any(o.type == 'LIGHT' for o in sc.objects):
    # The same default studio the path tracer uses: glTF's -Z (Blender +Y)
    # is the map's centre, Blender's is +X, hence the -90 degree turn.
    world = bpy.data.worlds.new("studio")
    world.use_nodes = True
    nt = world.node_tree
    tex = nt.nodes.new("ShaderNodeTexEnvironment")
    tex.image = bpy.data.images.load(env)
    tex.interpolation = 'Closest'
    mapping = nt.nodes.new("ShaderNodeMapping")
    mapping.vector_type = 'VECTOR'
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, -1.5707963)
    coord = nt.nodes.new("ShaderNodeTexCoord")
    nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    nt.links.new(tex.outputs["Color"], nt.nodes["Background"].inputs["Color"])
    sc.world = world
sc.render.engine = 'CYCLES'
sc.cycles.device = 'CPU'
sc.cycles.samples = spp
sc.cycles.use_adaptive_sampling = False
sc.cycles.use_denoising = False
sc.cycles.seed = seed
sc.cycles.max_bounces = 6
sc.cycles.sample_clamp_direct = 0.0  # no clamping: Inferix does not clamp
sc.cycles.sample_clamp_indirect = 0.0
sc.cycles.blur_glossy = 0.0  # no glossy filtering: Inferix does not blur
sc.cycles.pixel_filter_type = 'BOX'
sc.cycles.filter_width = 1.0
sc.render.resolution_x = w
sc.render.resolution_y = h
sc.render.resolution_percentage = 100
sc.view_settings.view_transform = 'Standard'
sc.render.image_settings.file_format = 'PNG'
sc.render.image_settings.color_mode = 'RGB'
sc.render.filepath = out
t = time.time()
bpy.ops.render.render(write_still=True)
print("INFERIX_RENDER_SECONDS %.4f" % (time.time() - t))
"#;

/// Renders `scene` with Blender Cycles; returns the image and the render
/// time Blender measured (without its start-up and import).
fn cycles(
    dir: &Path,
    scene: &Path,
    tag: &str,
    (w, h, spp, seed): (u32, u32, u32, u32),
) -> Result<(Rgb8Image, f64), Box<dyn std::error::Error>> {
    let script = dir.join("cycles.py");
    std::fs::write(&script, CYCLES_SCRIPT)?;
    let env = dir.join("studio.exr");
    std::fs::write(&env, inferix_gpu::default_environment_exr()?)?;
    let out = dir.join(format!("{tag}-cycles-{spp}.png"));
    let run = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "-noaudio", "--python"])
        .arg(&script)
        .arg("--")
        .arg(scene)
        .arg(&out)
        .args([w, h, spp, seed].map(|v| v.to_string()))
        .arg(&env)
        .output()?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let secs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("INFERIX_RENDER_SECONDS "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("blender failed: {}", String::from_utf8_lossy(&run.stderr)))?;
    Ok((codec::decode_png(&std::fs::read(&out)?)?, secs))
}

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
    let with_blender = std::env::args().any(|a| a == "blender");
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
        "{:<12} {:>5}  {:>12} {:>8}  {:>12} {:>8}  {:>12} {:>8}",
        "scene", "spp", "independent", "s/frame", "sobol-owen", "s/frame", "cycles", "s/frame"
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
        // Cycles needs a camera: give it ours (the watermarker inserts the
        // default camera into a camera-less scene; no patches).
        let for_cycles = dir.join(format!("{name}-cycles.glb"));
        std::fs::write(
            &for_cycles,
            inferix_gpu::watermark::watermark_gltf(&std::fs::read(&scene)?, &scene, &[], &base)?,
        )?;
        let cycles_ref = if with_blender {
            Some(
                cycles(
                    &dir,
                    &for_cycles,
                    name,
                    (width, height, reference_spp, 1000),
                )?
                .0,
            )
        } else {
            None
        };
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
            let cycles_cols = match &cycles_ref {
                Some(r) => {
                    let (img, secs) = cycles(&dir, &for_cycles, name, (width, height, spp, 1))?;
                    let ssim = metrics::ssim(&img, r).ok_or("size mismatch")?;
                    format!("{ssim:>12.4} {secs:>8.3}")
                }
                None => format!("{:>12} {:>8}", "-", "-"),
            };
            println!(
                "{:<12} {:>5}  {:>12.4} {:>8.3}  {:>12.4} {:>8.3}  {}",
                name, spp, row[0].0, row[0].1, row[1].0, row[1].1, cycles_cols
            );
        }
    }
    println!("images in {}", dir.display());
    Ok(())
}
