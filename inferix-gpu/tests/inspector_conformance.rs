//! The glTF inspector passes the `SceneInspector` conformance suite, and
//! agrees with the path tracer about what it substitutes.

use inferix_core::renderer::inspector_conformance::{self, InspectorFixture};
use inferix_core::renderer::{RenderRequest, RenderSettings, SceneFormat, SceneInspector};
use inferix_gpu::GltfInspector;

fn fixture(dir: &std::path::Path) -> InspectorFixture {
    let scene = dir.join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    let environment = dir.join("studio.exr");
    std::fs::write(
        &environment,
        inferix_gpu::default_environment_exr().unwrap(),
    )
    .unwrap();
    InspectorFixture {
        scene,
        format: SceneFormat::Gltf,
        settings: RenderSettings {
            width: 32,
            height: 18,
            samples: 1,
            ..RenderSettings::default()
        },
        frame: 1,
        environment: Some(environment),
        scratch: dir.join("scratch"),
    }
}

#[test]
fn gltf_inspector_passes_the_inspector_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    inspector_conformance::test_all(&GltfInspector, &fixture(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_reports_what_the_tracer_substitutes() {
    use inferix_core::renderer::Renderer;
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path());
    let scene = dir.path().join("cube.glb");
    std::fs::write(&scene, inferix_gpu::builder::bare_cube_glb()).unwrap();
    let request = RenderRequest {
        scene,
        format: f.format,
        frames: vec![f.frame],
        settings: f.settings.clone(),
        crop: None,
        progress: None,
    };
    let inspected = GltfInspector.scene_warnings(&request).unwrap();
    let mut codes: Vec<&str> = inspected.iter().map(|w| w.code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["default-camera", "default-environment"]);
    let tracer = inferix_gpu::PathTracer::new().expect("a render device");
    assert_eq!(tracer.scene_warnings(&request).await.unwrap(), inspected);
}
