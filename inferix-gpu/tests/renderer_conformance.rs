//! The cubecl path tracer passes the `Renderer` conformance suite on the
//! device this machine has (a software Vulkan device without a GPU).

use inferix_core::renderer::conformance::{self, Fixture};
use inferix_core::renderer::{RenderSettings, SceneFormat};
use inferix_gpu::PathTracer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tracer_passes_the_renderer_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    let settings = RenderSettings {
        width: 40,
        height: 24,
        samples: 2,
        max_bounces: 3,
        seed: 11,
        ..RenderSettings::default()
    };
    let fixture = Fixture {
        scene,
        format: SceneFormat::Gltf,
        settings,
        // The demo scene is animated: these frames differ.
        frames: vec![1, 9, 17],
        scratch: dir.path().join("scratch"),
    };
    let tracer = PathTracer::new().expect("a render device (bash scripts/setup-gpu.sh)");
    conformance::test_all(&tracer, &fixture).await;
}
