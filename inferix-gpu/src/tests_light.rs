//! Lighting tests: the default environment, environment sampling and the
//! background, instantiated per runtime like [`crate::tests`].

use inferix_core::image::Image;
use inferix_core::renderer::RenderSettings;

use crate::builder::{box_mesh, quad_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use crate::environment::EnvMap;
use crate::math::quat_axis_angle;
use crate::tests::{add_camera_above, add_floor, request, scratch, tracer, write};
use crate::RuntimeKind;

pub(crate) fn settings(w: u32, h: u32, samples: u32) -> RenderSettings {
    RenderSettings {
        width: w,
        height: h,
        samples,
        max_bounces: 4,
        seed: 3,
        fps: 24.0,
        ..RenderSettings::default()
    }
}

/// A grey unit cube seen by a camera at (0, 0, 5): no light, no emission.
pub(crate) fn lightless_cube_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let m = b.material(MaterialDesc {
        base_color: [0.6; 3],
        roughness: 0.8,
        ..Default::default()
    });
    let (p, n, i) = box_mesh([0.5; 3], false);
    let mesh = b.mesh(&p, Some(&n), &i, m);
    b.node(
        NodeDesc {
            mesh: Some(mesh),
            ..Default::default()
        },
        true,
    );
    let cam = b.camera(0.5);
    b.node(
        NodeDesc {
            camera: Some(cam),
            translation: Some([0.0, 0.0, 5.0]),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

/// A large diffuse floor of albedo `rho`, no light, seen from straight
/// above through a narrow camera.
fn lightless_floor_glb(rho: f32) -> Vec<u8> {
    let mut b = GltfBuilder::new();
    add_floor(&mut b, rho, 1000.0);
    add_camera_above(&mut b);
    b.to_glb()
}

pub(crate) fn mean_rgb(img: &Image) -> [f64; 3] {
    let mut m = [0.0f64; 3];
    for p in img.pixels.chunks_exact(3) {
        for c in 0..3 {
            m[c] += p[c] as f64;
        }
    }
    m.map(|v| v / (img.pixels.len() / 3) as f64)
}

/// Irradiance on an upward surface from the environment's upper
/// hemisphere, by quadrature over the texels the kernel reads.
fn upward_irradiance(map: &EnvMap) -> f64 {
    let (n_t, n_p) = (1024usize, 1024usize);
    let mut e = 0.0f64;
    for i in 0..n_t {
        let t0 = std::f64::consts::FRAC_PI_2 * i as f64 / n_t as f64;
        let t1 = std::f64::consts::FRAC_PI_2 * (i + 1) as f64 / n_t as f64;
        let tm = 0.5 * (t0 + t1);
        // ∫ cosθ sinθ dθ over the band, per unit φ.
        let band = 0.5 * (t1.sin().powi(2) - t0.sin().powi(2));
        for j in 0..n_p {
            let ph = 2.0 * std::f64::consts::PI * (j as f64 + 0.5) / n_p as f64;
            let d = [
                (tm.sin() * ph.cos()) as f32,
                tm.cos() as f32,
                (tm.sin() * ph.sin()) as f32,
            ];
            let l = map.lookup(d);
            e += l[0] as f64 * band * 2.0 * std::f64::consts::PI / n_p as f64;
        }
    }
    e
}

pub(crate) fn lightless_scene_gets_default_environment(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("default-env-{kind:?}"));
    let scene = write(&dir, "cube.glb", &lightless_cube_glb());
    let img = t
        .render_blocking(&request(&scene, vec![0], settings(24, 16, 4), None))
        .unwrap()
        .remove(0)
        .image;
    let _ = std::fs::write(
        dir.join("cube.png"),
        crate::codec::encode_png(&img.to_srgb8()),
    );
    // The corners see the studio behind the cube: grey, not black.
    let corner = img.get(0, 0);
    assert!(
        corner.iter().all(|c| *c > 0.3 && *c < 2.0),
        "background {corner:?}"
    );
    // The cube is lit by it: its centre is neither black nor the background.
    let centre = img.get(12, 8);
    assert!(
        centre.iter().all(|c| *c > 0.02 && c.is_finite()),
        "cube {centre:?}"
    );
    assert!((centre[0] - corner[0]).abs() > 0.02);
    // The substitution is reported once, through the Renderer trait too.
    let req = request(&scene, vec![0, 1, 2], settings(24, 16, 4), None);
    let codes: Vec<String> = t
        .scene_warnings_blocking(&req)
        .unwrap()
        .into_iter()
        .map(|w| w.code)
        .collect();
    assert_eq!(codes, vec!["default-environment".to_string()]);
    // Clients ask without a device, before submitting: same answer.
    assert_eq!(
        crate::scene_warnings(&req).unwrap(),
        t.scene_warnings_blocking(&req).unwrap()
    );
    // A user environment is no substitution.
    let with_env = request(
        &scene,
        vec![0],
        RenderSettings {
            environment: Some(dir.join("any.exr")),
            ..settings(24, 16, 4)
        },
        None,
    );
    assert!(crate::scene_warnings(&with_env).unwrap().is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    use inferix_core::renderer::Renderer;
    let via_trait = rt.block_on(t.scene_warnings(&req)).unwrap();
    assert_eq!(via_trait.len(), 1);
    assert!(via_trait[0].message.contains("default studio environment"));
}

pub(crate) fn emissive_scene_keeps_black_background(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("emissive-only-{kind:?}"));
    let mut b = GltfBuilder::new();
    let m = b.material(MaterialDesc {
        base_color: [0.0; 3],
        emissive: [1.0; 3],
        emissive_strength: 2.0,
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(0.5);
    let mesh = b.mesh(&p, Some(&n), &i, m);
    // The quad faces +Z, towards the camera.
    b.node(
        NodeDesc {
            mesh: Some(mesh),
            rotation: Some(quat_axis_angle(
                [1.0, 0.0, 0.0],
                std::f32::consts::FRAC_PI_2,
            )),
            ..Default::default()
        },
        true,
    );
    let cam = b.camera(0.5);
    b.node(
        NodeDesc {
            camera: Some(cam),
            translation: Some([0.0, 0.0, 4.0]),
            ..Default::default()
        },
        true,
    );
    let scene = write(&dir, "emissive.glb", &b.to_glb());
    let img = t
        .render_blocking(&request(&scene, vec![0], settings(16, 16, 2), None))
        .unwrap()
        .remove(0)
        .image;
    assert_eq!(img.get(0, 0), [0.0; 3], "no default environment behind it");
    let warnings = t
        .scene_warnings_blocking(&request(&scene, vec![0], settings(16, 16, 2), None))
        .unwrap();
    assert!(
        warnings.iter().all(|w| w.code != "default-environment"),
        "{warnings:?}"
    );
    let c = img.get(8, 8);
    assert!(c.iter().all(|v| (v - 2.0).abs() < 1e-3), "emitter {c:?}");
}

pub(crate) fn default_environment_lights_floor_as_integrated(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("env-floor-{kind:?}"));
    let rho = 0.5f32;
    let scene = write(&dir, "floor.glb", &lightless_floor_glb(rho));
    let img = t
        .render_blocking(&request(&scene, vec![0], settings(16, 16, 16), None))
        .unwrap()
        .remove(0)
        .image;
    let expected = rho as f64 / std::f64::consts::PI * upward_irradiance(&EnvMap::studio());
    let m = mean_rgb(&img);
    for c in m {
        assert!(
            (c - expected).abs() < 0.02 * expected,
            "floor radiance {m:?}, expected {expected}"
        );
    }
}

/// Writes a constant-radiance environment map as EXR and as Radiance HDR.
fn constant_env_files(
    dir: &std::path::Path,
    value: f32,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (w, h) = (16u32, 8u32);
    let img = Image {
        width: w,
        height: h,
        pixels: vec![value; (w * h * 3) as usize],
        alpha: None,
    };
    let exr = write(dir, "env.exr", &crate::codec::encode_exr(&img).unwrap());
    let mut hdr_bytes = Vec::new();
    let px: Vec<image::Rgb<f32>> = (0..w * h).map(|_| image::Rgb([value; 3])).collect();
    image::codecs::hdr::HdrEncoder::new(&mut hdr_bytes)
        .encode(&px, w as usize, h as usize)
        .unwrap();
    let hdr = write(dir, "env.hdr", &hdr_bytes);
    (exr, hdr)
}

pub(crate) fn user_environment_lights_with_the_scene_lights(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("user-env-{kind:?}"));
    let (exr, hdr) = constant_env_files(&dir, 0.75);
    let a = crate::environment::load_file(&exr).unwrap();
    assert_eq!(a, crate::environment::load_file(&hdr).unwrap());
    assert!(a.rgb.iter().all(|v| *v == 0.75));
    // A floor of albedo 0.5 under a constant sky of 0.75 reflects 0.375.
    let floor = write(&dir, "floor.glb", &lightless_floor_glb(0.5));
    let with_env = |env: &std::path::Path| RenderSettings {
        environment: Some(env.to_path_buf()),
        ..settings(16, 16, 16)
    };
    for env in [&exr, &hdr] {
        let img = t
            .render_blocking(&request(&floor, vec![0], with_env(env), None))
            .unwrap()
            .remove(0)
            .image;
        let m = mean_rgb(&img);
        assert!(m.iter().all(|c| (c - 0.375).abs() < 0.375 * 0.01), "{m:?}");
        let w = t
            .scene_warnings_blocking(&request(&floor, vec![0], with_env(env), None))
            .unwrap();
        assert!(w.iter().all(|w| w.code != "default-environment"), "{w:?}");
    }
    // With a point light too, both add up: the environment and the light
    // share next-event samples and MIS keeps the sum unbiased.
    let (rho, intensity, h) = (0.5f32, 10.0f32, 2.0f32);
    let lit = write(
        &dir,
        "plane.glb",
        &crate::tests::plane_glb(rho, intensity, h),
    );
    let img = t
        .render_blocking(&request(&lit, vec![0], with_env(&exr), None))
        .unwrap()
        .remove(0)
        .image;
    let expected = (rho / std::f32::consts::PI * intensity / (h * h) + rho * 0.75) as f64;
    let m = mean_rgb(&img);
    assert!(
        m.iter().all(|c| (c - expected).abs() < expected * 0.02),
        "{m:?} vs {expected}"
    );
    // A missing or foreign file is a settings error, not a crash.
    let bogus = write(&dir, "env.png", b"not an image");
    for bad in [dir.join("missing.exr"), bogus] {
        let r = t.render_blocking(&request(&floor, vec![0], with_env(&bad), None));
        assert!(
            matches!(
                r,
                Err(inferix_core::renderer::RenderError::InvalidSettings(_))
            ),
            "{r:?}"
        );
    }
}

pub(crate) fn backgrounds_colour_and_transparent(kind: RuntimeKind) {
    use inferix_core::image::Rect;
    use inferix_core::renderer::Background;
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("background-{kind:?}"));
    let scene = write(&dir, "cube.glb", &lightless_cube_glb());
    let with = |background| RenderSettings {
        background,
        ..settings(24, 16, 4)
    };
    let img = t
        .render_blocking(&request(
            &scene,
            vec![0],
            with(Background::Transparent),
            None,
        ))
        .unwrap()
        .remove(0)
        .image;
    let _ = std::fs::write(
        dir.join("transparent.png"),
        crate::codec::encode_png_frame(&img).unwrap(),
    );
    assert_eq!(img.alpha_at(0, 0), 0.0, "nothing is hit in the corner");
    assert_eq!(img.get(0, 0), [0.0; 3]);
    assert_eq!(img.alpha_at(12, 8), 1.0, "the cube covers the centre");
    // The cube is still lit by the (invisible) default studio.
    assert!(img.get(12, 8)[0] > 0.02);
    // Crops carry the same alpha as the full frame.
    let rect = Rect::new(8, 4, 9, 7);
    let crop = t
        .render_blocking(&request(
            &scene,
            vec![0],
            with(Background::Transparent),
            Some(rect),
        ))
        .unwrap()
        .remove(0)
        .image;
    assert_eq!(crop, img.crop(rect));
    // A colour background shows exactly that colour where nothing is hit.
    let img = t
        .render_blocking(&request(
            &scene,
            vec![0],
            with(Background::Color([0.1, 0.2, 0.3])),
            None,
        ))
        .unwrap()
        .remove(0)
        .image;
    assert_eq!(img.alpha, None);
    let c = img.get(0, 0);
    assert!(
        (c[0] - 0.1).abs() < 1e-6 && (c[1] - 0.2).abs() < 1e-6 && (c[2] - 0.3).abs() < 1e-6,
        "{c:?}"
    );
    assert!(img.get(12, 8)[0] > 0.02);
}

/// Instantiates the lighting tests for one runtime.
macro_rules! testgen_light {
    ($module:ident, $kind:expr) => {
        mod $module {
            #[test]
            fn lightless_scene_gets_default_environment() {
                super::lightless_scene_gets_default_environment($kind);
            }

            #[test]
            fn emissive_scene_keeps_black_background() {
                super::emissive_scene_keeps_black_background($kind);
            }

            #[test]
            fn user_environment_lights_with_the_scene_lights() {
                super::user_environment_lights_with_the_scene_lights($kind);
            }

            #[test]
            fn backgrounds_colour_and_transparent() {
                super::backgrounds_colour_and_transparent($kind);
            }

            #[test]
            fn default_environment_lights_floor_as_integrated() {
                super::default_environment_lights_floor_as_integrated($kind);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
testgen_light!(wgpu, crate::RuntimeKind::Wgpu);
#[cfg(feature = "cuda")]
testgen_light!(cuda, crate::RuntimeKind::Cuda);
#[cfg(feature = "hip")]
testgen_light!(hip, crate::RuntimeKind::Hip);
