//! Feeds arbitrary bytes to the glTF scene loader, as a submitted scene
//! reaches a manager's inspector and every worker: it must return the
//! warnings or `InvalidScene`, never panic, hang or allocate beyond its
//! limits (triangles, textures, buffers).
//!
//! ```sh
//! cargo install cargo-fuzz --locked
//! cd inferix-gpu
//! RUSTC_BOOTSTRAP=1 cargo fuzz run gltf_scene -O -- -max_total_time=300 -rss_limit_mb=4096
//! ```
//!
//! The same property runs on stable, on seeded mutations of real scenes,
//! in `tests/inspector_conformance.rs`
//! (`seeded_random_and_mutated_scenes_never_panic`).
#![no_main]

use inferix_core::renderer::{
    RenderError, RenderRequest, RenderSettings, SceneFormat, SceneInspector,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // One private folder per process: a file the scene names beside it
    // does not exist, so external references are exercised as missing.
    let dir = std::env::temp_dir().join(format!("inferix-gltf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let scene = dir.join("scene.glb");
    std::fs::write(&scene, data).expect("write the input");
    let request = RenderRequest {
        scene,
        format: SceneFormat::Gltf,
        frames: vec![1],
        settings: RenderSettings {
            width: 16,
            height: 16,
            samples: 1,
            ..RenderSettings::default()
        },
        crop: None,
        progress: None,
    };
    match inferix_gpu::GltfInspector.scene_warnings(&request) {
        Ok(_) | Err(RenderError::InvalidScene { .. }) => {}
        Err(e) => panic!("expected InvalidScene, got {e}"),
    }
});
