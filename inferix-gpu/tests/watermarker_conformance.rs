//! The glTF watermarker passes the `SceneWatermarker` conformance suite
//! with the path tracer rendering its copies.

use inferix_core::por::conformance::{self, Fixture};
use inferix_core::renderer::{RenderSettings, SceneFormat};
use inferix_gpu::{GltfWatermarker, PathTracer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gltf_watermarker_passes_the_watermarker_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    let fixture = Fixture {
        scene,
        format: SceneFormat::Gltf,
        settings: RenderSettings {
            width: 96,
            height: 64,
            samples: 8,
            max_bounces: 3,
            seed: 5,
            ..RenderSettings::default()
        },
        frames: vec![1, 13],
        scratch: dir.path().join("scratch"),
    };
    let tracer = PathTracer::new().expect("a render device (bash scripts/setup-gpu.sh)");
    conformance::test_all(&GltfWatermarker, &tracer, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermarked_copy_warns_of_nothing_its_scene_does_not() {
    use inferix_core::por::conformance::patches_of_task;
    use inferix_core::por::prepare::SceneWatermarker;
    use inferix_core::renderer::RenderRequest;

    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("demo.glb");
    std::fs::write(&scene, inferix_gpu::demo_scene_glb()).unwrap();
    let settings = RenderSettings {
        width: 96,
        height: 64,
        ..RenderSettings::default()
    };
    let copy = dir.path().join("marked.glb");
    GltfWatermarker
        .watermark(&scene, &patches_of_task(1, 96, 64), &settings, &copy)
        .await
        .unwrap();
    let warnings = |path: &std::path::Path| {
        let mut w: Vec<String> = inferix_gpu::scene_warnings(&RenderRequest {
            scene: path.to_path_buf(),
            format: SceneFormat::Gltf,
            frames: vec![1],
            settings: settings.clone(),
            crop: None,
            progress: None,
        })
        .unwrap()
        .into_iter()
        .map(|w| w.message)
        .collect();
        w.sort();
        w
    };
    assert_eq!(
        warnings(&copy),
        warnings(&scene),
        "the watermark's own extension is understood, not reported"
    );
}
