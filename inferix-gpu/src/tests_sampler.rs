//! Sampler tests: the Owen-scrambled Sobol sampler converges to the same
//! image as independent sampling, with less noise. Instantiated per runtime.

use inferix_core::image::Image;
use inferix_core::renderer::{RenderSettings, Renderer};

use crate::tests::{request, scratch, tracer, write};
use crate::tests_light::{lightless_cube_glb, mean_rgb};
use crate::{demo_scene_glb, RuntimeKind, Sampler};

fn rms_diff(a: &Image, b: &Image) -> f64 {
    let s: f64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum();
    (s / a.pixels.len() as f64).sqrt()
}

pub(crate) fn sobol_converges_like_independent_with_less_noise(kind: RuntimeKind) {
    let Some(sobol) = tracer(kind) else { return };
    let independent = sobol.clone().with_sampler(Sampler::Independent);
    let dir = scratch(&format!("sampler-{kind:?}"));
    let demo = write(&dir, "demo.glb", &demo_scene_glb());
    let cube = write(&dir, "cube.glb", &lightless_cube_glb());
    let s = |samples: u32, seed: u64| RenderSettings {
        width: 24,
        height: 16,
        samples,
        max_bounces: 4,
        seed,
        ..RenderSettings::default()
    };
    let render = |t: &crate::PathTracer, scene: &std::path::Path, settings: RenderSettings| {
        t.render_blocking(&request(scene, vec![2], settings, None))
            .unwrap()
            .remove(0)
            .image
    };
    // Same expected image: frame means agree within noise.
    for scene in [&demo, &cube] {
        let a = mean_rgb(&render(&sobol, scene, s(64, 1)));
        let b = mean_rgb(&render(&independent, scene, s(64, 1)));
        for c in 0..3 {
            assert!(
                (a[c] - b[c]).abs() < 0.03 * b[c].max(0.05),
                "{scene:?}: sobol {a:?} vs independent {b:?}"
            );
        }
    }
    // Less noise: two seeds of one frame differ less.
    for scene in [&demo, &cube] {
        let d_sobol = rms_diff(
            &render(&sobol, scene, s(16, 1)),
            &render(&sobol, scene, s(16, 2)),
        );
        let d_indep = rms_diff(
            &render(&independent, scene, s(16, 1)),
            &render(&independent, scene, s(16, 2)),
        );
        assert!(
            d_sobol < 0.95 * d_indep,
            "{scene:?}: seed-to-seed rms {d_sobol} (sobol) vs {d_indep} (independent)"
        );
    }
    assert_ne!(sobol.device_class(), independent.device_class());
}

/// Instantiates the sampler tests for one runtime.
macro_rules! testgen_sampler {
    ($module:ident, $kind:expr) => {
        mod $module {
            #[test]
            fn sobol_converges_like_independent_with_less_noise() {
                super::sobol_converges_like_independent_with_less_noise($kind);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
testgen_sampler!(wgpu, crate::RuntimeKind::Wgpu);
#[cfg(feature = "cuda")]
testgen_sampler!(cuda, crate::RuntimeKind::Cuda);
#[cfg(feature = "hip")]
testgen_sampler!(hip, crate::RuntimeKind::Hip);
