//! The Blender renderer and watermarker pass the shared `Renderer` and
//! `SceneWatermarker` conformance suites on the test scene.

use super::*;

#[tokio::test]
async fn blender_renderer_passes_the_renderer_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let settings = RenderSettings {
        width: 32,
        height: 24,
        samples: 2,
        max_bounces: 2,
        seed: 7,
        ..RenderSettings::default()
    };
    let fixture = inferix_core::renderer::conformance::Fixture {
        scene,
        format: SceneFormat::Blend,
        settings,
        frames: vec![1, 3],
        scratch: dir.path().join("scratch"),
    };
    inferix_core::renderer::conformance::test_all(&renderer().await, &fixture).await;
}

#[tokio::test]
async fn blender_watermarker_passes_the_watermarker_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let fixture = inferix_core::por::conformance::Fixture {
        scene,
        format: SceneFormat::Blend,
        settings: RenderSettings {
            width: 160,
            height: 120,
            samples: 8,
            max_bounces: 4,
            seed: 7,
            ..RenderSettings::default()
        },
        frames: vec![1, 9],
        scratch: dir.path().join("scratch"),
    };
    let wm = BlenderWatermarker::new(blender().await);
    inferix_core::por::conformance::test_all(&wm, &renderer().await, &fixture).await;
}
