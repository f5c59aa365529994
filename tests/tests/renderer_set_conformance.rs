//! A `RendererSet` (what a worker with several renderers runs) passes the
//! `Renderer` conformance suite: it routes by format without changing what
//! the renderer inside does, and refuses formats none of them reads.

use std::sync::Arc;

use inferix_core::renderer::conformance::{self, Fixture};
use inferix_core::renderer::{RenderSettings, Renderer, SceneFormat};
use inferix_node::RendererSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_set_passes_the_renderer_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    let tracer: Arc<dyn Renderer> =
        Arc::new(inferix_gpu::PathTracer::new().expect("a render device"));
    let set = RendererSet::new(vec![tracer]);
    let fixture = Fixture {
        scene,
        format: SceneFormat::Gltf,
        settings: RenderSettings {
            width: 24,
            height: 16,
            samples: 1,
            max_bounces: 2,
            seed: 3,
            ..RenderSettings::default()
        },
        frames: vec![2, 12],
        scratch: dir.path().join("scratch"),
    };
    conformance::test_all(&set, &fixture).await;
}
