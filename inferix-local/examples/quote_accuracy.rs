//! Quoted against actual cost, for scenes of very different complexity:
//! a bare cube (a dozen triangles, lit by the default studio), the demo
//! scene, and a closed room of glossy, finely tessellated spheres (about
//! 80,000 triangles, light bouncing between mirrors). Each job is quoted by
//! the manager's probe render, then rendered by the network; the actual
//! cost is the workers' measured render time at their IB.
//!
//! ```sh
//! cargo run --release -p inferix-local --example quote_accuracy
//! ```

use std::time::Duration;

use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_gpu::builder::{box_mesh, sphere_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use inferix_local::LocalNetwork;

/// A closed, lit room of mirror-like spheres: many triangles and long
/// light paths.
fn heavy_scene() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let wall = b.material(MaterialDesc {
        base_color: [0.8; 3],
        ..Default::default()
    });
    let mirror = b.material(MaterialDesc {
        base_color: [0.95; 3],
        metallic: 1.0,
        roughness: 0.05,
        ..Default::default()
    });
    let lamp = b.material(MaterialDesc {
        emissive: [1.0; 3],
        emissive_strength: 8.0,
        ..Default::default()
    });
    let (p, n, i) = box_mesh([4.0, 3.0, 4.0], true);
    let room = b.mesh(&p, Some(&n), &i, wall);
    b.node(
        NodeDesc {
            mesh: Some(room),
            ..Default::default()
        },
        true,
    );
    let (p, n, i) = sphere_mesh(0.6, 128, 64);
    let ball = b.mesh(&p, Some(&n), &i, mirror);
    for k in 0..5 {
        let x = -2.4 + 1.2 * k as f32;
        b.node(
            NodeDesc {
                mesh: Some(ball),
                translation: Some([x, -1.8, -1.0]),
                ..Default::default()
            },
            true,
        );
    }
    let (p, n, i) = box_mesh([0.8, 0.05, 0.8], false);
    let panel = b.mesh(&p, Some(&n), &i, lamp);
    b.node(
        NodeDesc {
            mesh: Some(panel),
            translation: Some([0.0, 2.9, 0.0]),
            ..Default::default()
        },
        true,
    );
    let cam = b.camera(0.9);
    b.node(
        NodeDesc {
            camera: Some(cam),
            translation: Some([0.0, 0.0, 3.8]),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ib = 1.0;
    let net = LocalNetwork::builder()
        .workers(1)
        .verifiers(1)
        .ib(ib)
        .start()
        .await?;
    let client = net.client().await?;
    let store = net.store();
    let scenes = [
        ("bare cube", inferix_gpu::builder::bare_cube_glb()),
        ("demo scene", inferix_gpu::demo_scene_glb()),
        ("mirror room", heavy_scene()),
    ];
    println!("| scene | quoted IB-min | actual IB-min | actual / quoted |");
    println!("|---|---:|---:|---:|");
    for (name, glb) in scenes {
        let scene = client.upload_scene_bytes(glb, "scene.glb").await?;
        let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
        spec.settings.width = 160;
        spec.settings.height = 90;
        spec.settings.samples = 16;
        spec.chunk_size = 1;
        let quote = client.quote(&spec).await?;
        let (job, _) = client.submit(&spec).await?;
        let status =
            tokio::time::timeout(Duration::from_secs(3600), client.wait(job, |_| {})).await??;
        assert_eq!(status.job.state, JobState::Completed, "{name}");
        let render_ms: u64 = store
            .tasks_of_job(job)
            .await?
            .iter()
            .filter_map(|t| t.result.as_ref())
            .map(|r| r.render_ms)
            .sum();
        let actual = render_ms as f64 / 1000.0 * ib / 60.0;
        println!(
            "| {name} | {:.4} | {:.4} | {:.2} |",
            quote.estimated_ibm,
            actual,
            actual / quote.estimated_ibm
        );
    }
    net.shutdown().await;
    Ok(())
}
