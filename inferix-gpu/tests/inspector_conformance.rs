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

/// Random and mutated glTF files (the demo scene and a bare cube, with
/// bytes changed, cut or added, as GLB and as JSON): the loader returns
/// warnings or `InvalidScene`, never panics (the stable twin of the
/// `gltf_scene` fuzz target in `inferix-gpu/fuzz`).
#[test]
fn seeded_random_and_mutated_scenes_never_panic() {
    use inferix_core::renderer::RenderError;
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path());
    let seeds = [
        inferix_gpu::demo_scene_glb(),
        inferix_gpu::builder::bare_cube_glb(),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9c_7f_5e);
    let (mut read, mut refused) = (0, 0);
    for i in 0..400 {
        let mut bytes = seeds[i % seeds.len()].clone();
        for _ in 0..rng.gen_range(1..6) {
            let at = rng.gen_range(0..bytes.len());
            match rng.gen_range(0..4) {
                0 => bytes[at] = rng.gen(),
                1 => bytes.truncate(at.max(12)),
                2 => bytes.insert(at, rng.gen()),
                // A length or count field made huge.
                _ => {
                    let end = (at + 4).min(bytes.len());
                    bytes[at..end].fill(0xff);
                }
            }
        }
        let scene = dir.path().join(format!("mutated-{i}.glb"));
        std::fs::write(&scene, &bytes).unwrap();
        let request = RenderRequest {
            scene: scene.clone(),
            format: f.format,
            frames: vec![f.frame],
            settings: f.settings.clone(),
            crop: None,
            progress: None,
        };
        match GltfInspector.scene_warnings(&request) {
            Ok(_) => read += 1,
            Err(RenderError::InvalidScene { .. }) => refused += 1,
            Err(e) => panic!("mutation {i}: expected InvalidScene, got {e}"),
        }
        std::fs::remove_file(&scene).unwrap();
    }
    assert!(
        refused > 0,
        "no mutation was refused: the test mutates nothing"
    );
    assert_eq!(read + refused, 400);
}
