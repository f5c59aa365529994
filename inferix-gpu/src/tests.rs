//! Renderer tests, instantiated once per enabled runtime (cubecl's testgen
//! pattern): each runtime module gets the same test functions.

use std::path::{Path, PathBuf};

use inferix_core::image::{Image, Rect};
use inferix_core::renderer::{RenderError, RenderRequest, RenderSettings, SceneFormat};

use crate::builder::{box_mesh, quad_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use crate::math::quat_axis_angle;
use crate::{demo_scene_glb, PathTracer, RuntimeKind};

/// A scratch directory unique to one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("inferix-gpu-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub(crate) fn request(
    scene: &Path,
    frames: Vec<u32>,
    settings: RenderSettings,
    crop: Option<Rect>,
) -> RenderRequest {
    RenderRequest {
        scene: scene.to_path_buf(),
        format: SceneFormat::Gltf,
        frames,
        settings,
        crop,
        progress: None,
    }
}

fn small(w: u32, h: u32, samples: u32) -> RenderSettings {
    RenderSettings {
        width: w,
        height: h,
        samples,
        max_bounces: 4,
        seed: 7,
        fps: 24.0,
        ..RenderSettings::default()
    }
}

/// Opens `kind`, or returns `None` when its driver is absent (CUDA/HIP only;
/// wgpu must always work, through lavapipe at worst).
pub(crate) fn tracer(kind: RuntimeKind) -> Option<PathTracer> {
    match PathTracer::with_runtime(kind) {
        Ok(t) => Some(t),
        Err(e) if kind != RuntimeKind::Wgpu => {
            eprintln!("skipping {kind:?}: {e}");
            None
        }
        Err(e) => panic!("wgpu device required (run scripts/setup-gpu.sh): {e}"),
    }
}

fn mean(img: &Image) -> [f64; 3] {
    let mut m = [0.0f64; 3];
    for p in img.pixels.chunks_exact(3) {
        for c in 0..3 {
            m[c] += p[c] as f64;
        }
    }
    let n = (img.pixels.len() / 3) as f64;
    m.map(|v| v / n)
}

/// A closed box, inside of which every surface is diffuse with albedo `rho`
/// and emits `e`: the radiance everywhere is e / (1 − rho).
pub(crate) fn furnace_glb(rho: f32, e: f32) -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let m = b.material(MaterialDesc {
        base_color: [rho; 3],
        metallic: 0.0,
        roughness: 1.0,
        emissive: [e; 3],
        specular: 0.0,
        ..Default::default()
    });
    let (p, n, i) = box_mesh([1.0, 1.0, 1.0], true);
    let mesh = b.mesh(&p, Some(&n), &i, m);
    b.node(
        NodeDesc {
            mesh: Some(mesh),
            ..Default::default()
        },
        true,
    );
    let cam = b.camera(1.2);
    b.node(
        NodeDesc {
            camera: Some(cam),
            translation: Some([0.1, -0.2, 0.3]),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

/// Adds a square Lambertian floor of albedo `rho` and side `2 * half` at
/// y = 0.
pub(crate) fn add_floor(b: &mut GltfBuilder, rho: f32, half: f32) {
    let m = b.material(MaterialDesc {
        base_color: [rho; 3],
        roughness: 1.0,
        specular: 0.0,
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(half);
    let mesh = b.mesh(&p, Some(&n), &i, m);
    b.node(
        NodeDesc {
            mesh: Some(mesh),
            ..Default::default()
        },
        true,
    );
}

/// Adds a narrow camera one unit above the origin, looking straight down.
pub(crate) fn add_camera_above(b: &mut GltfBuilder) {
    let cam = b.camera(0.05);
    b.node(
        NodeDesc {
            camera: Some(cam),
            translation: Some([0.0, 1.0, 0.0]),
            rotation: Some(quat_axis_angle(
                [1.0, 0.0, 0.0],
                -std::f32::consts::FRAC_PI_2,
            )),
            ..Default::default()
        },
        true,
    );
}

/// A large Lambertian plane (albedo `rho`) lit by a point light of
/// `intensity` candela at height `h`, seen from above.
pub(crate) fn plane_glb(rho: f32, intensity: f32, h: f32) -> Vec<u8> {
    let mut b = GltfBuilder::new();
    add_floor(&mut b, rho, 100.0);
    let light = b.point_light([1.0, 1.0, 1.0], intensity);
    b.node(
        NodeDesc {
            light: Some(light),
            translation: Some([0.0, h, 0.0]),
            ..Default::default()
        },
        true,
    );
    add_camera_above(&mut b);
    b.to_glb()
}

/// Mean colour of 8x8 blocks rounded to 1/20: a noise-tolerant summary.
pub(crate) fn block_summary(img: &Image, block: u32) -> String {
    let mut out = String::new();
    for by in (0..img.height).step_by(block as usize) {
        for bx in (0..img.width).step_by(block as usize) {
            let mut m = [0.0f32; 3];
            let mut n = 0.0;
            for y in by..(by + block).min(img.height) {
                for x in bx..(bx + block).min(img.width) {
                    let p = img.get(x, y);
                    for c in 0..3 {
                        m[c] += p[c];
                    }
                    n += 1.0;
                }
            }
            let q = m.map(|v| ((v / n).clamp(0.0, 4.0) * 20.0).round() / 20.0);
            out.push_str(&format!("({:.2} {:.2} {:.2}) ", q[0], q[1], q[2]));
        }
        out.push('\n');
    }
    out
}

pub(crate) fn demo_renders_deterministically(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("det-{kind:?}"));
    let scene = write(&dir, "demo.glb", &demo_scene_glb());
    let s = small(24, 16, 2);
    let a = t
        .render_blocking(&request(&scene, vec![3, 15], s.clone(), None))
        .unwrap();
    let b = t
        .render_blocking(&request(&scene, vec![3], s.clone(), None))
        .unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[0].image, b[0].image,
        "same request must give the same pixels"
    );
    assert_ne!(a[0].image, a[1].image, "animation must change the frame");
    let m = mean(&a[0].image);
    assert!(
        m.iter().all(|v| *v > 0.01 && v.is_finite()),
        "demo frame is lit: {m:?}"
    );
    // A different seed gives different noise.
    let c = t
        .render_blocking(&request(
            &scene,
            vec![3],
            RenderSettings { seed: 8, ..s },
            None,
        ))
        .unwrap();
    assert_ne!(a[0].image, c[0].image);
}

pub(crate) fn crop_equals_full_frame(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("crop-{kind:?}"));
    let scene = write(&dir, "demo.glb", &demo_scene_glb());
    // Samples above the per-pass size so passes are split differently.
    let s = small(40, 30, 3);
    let full = t
        .render_blocking(&request(&scene, vec![5], s.clone(), None))
        .unwrap();
    for rect in [
        Rect::new(3, 5, 7, 9),
        Rect::new(0, 0, 1, 1),
        Rect::new(33, 22, 7, 8),
    ] {
        let crop = t
            .render_blocking(&request(&scene, vec![5], s.clone(), Some(rect)))
            .unwrap();
        assert_eq!(crop[0].image.width, rect.width);
        assert_eq!(
            crop[0].image,
            full[0].image.crop(rect),
            "crop {rect:?} differs from the full frame"
        );
    }
}

pub(crate) fn white_furnace(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("furnace-{kind:?}"));
    let scene = write(&dir, "furnace.glb", &furnace_glb(0.8, 0.2));
    let s = RenderSettings {
        width: 16,
        height: 16,
        samples: 32,
        max_bounces: 200,
        seed: 1,
        fps: 24.0,
        ..RenderSettings::default()
    };
    let img = &t
        .render_blocking(&request(&scene, vec![0], s, None))
        .unwrap()[0]
        .image;
    let m = mean(img);
    for c in m {
        assert!(
            (c - 1.0).abs() < 0.01,
            "furnace radiance {m:?}, expected 1.0"
        );
    }
}

pub(crate) fn diffuse_plane_matches_closed_form(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("plane-{kind:?}"));
    let (rho, intensity, h) = (0.5f32, 10.0f32, 2.0f32);
    let scene = write(&dir, "plane.glb", &plane_glb(rho, intensity, h));
    let s = RenderSettings {
        width: 8,
        height: 8,
        samples: 4,
        max_bounces: 3,
        seed: 1,
        fps: 24.0,
        ..RenderSettings::default()
    };
    let img = &t
        .render_blocking(&request(&scene, vec![0], s, None))
        .unwrap()[0]
        .image;
    let expected = (rho / std::f32::consts::PI * intensity / (h * h)) as f64;
    let m = mean(img);
    for c in m {
        assert!(
            (c - expected).abs() < 0.01 * expected,
            "plane radiance {m:?}, expected {expected}"
        );
    }
}

pub(crate) fn demo_snapshot(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("snap-{kind:?}"));
    let scene = write(&dir, "demo.glb", &demo_scene_glb());
    let s = RenderSettings {
        width: 32,
        height: 18,
        samples: 8,
        max_bounces: 3,
        seed: 0,
        fps: 24.0,
        ..RenderSettings::default()
    };
    let img = &t
        .render_blocking(&request(&scene, vec![0], s, None))
        .unwrap()[0]
        .image;
    // Compare a coarse summary so small numeric differences between devices
    // do not matter, while a broken renderer or scene does.
    let summary = block_summary(img, 8);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(format!("{kind:?}").to_lowercase());
    settings.bind(|| insta::assert_snapshot!("demo_frame0_blocks", summary));
}

pub(crate) fn render_trait_and_progress(kind: RuntimeKind) {
    use inferix_core::renderer::Renderer;
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("trait-{kind:?}"));
    let scene = write(&dir, "demo.glb", &demo_scene_glb());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut req = request(&scene, vec![0, 1], small(8, 8, 1), None);
    req.progress = Some(tx);
    let frames = rt.block_on(t.render(req)).unwrap();
    assert_eq!(
        frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(p);
    }
    assert!(
        seen.iter().any(|p| p.frame == 1 && p.fraction == 1.0),
        "progress reported: {seen:?}"
    );
    assert_eq!(t.name(), "cubecl-pt");
    assert_eq!(t.formats(), &[SceneFormat::Gltf]);
    assert!(!t.device_class().is_empty());
    // Bad settings and formats are typed errors.
    let mut bad = request(&scene, vec![0], small(8, 8, 1), Some(Rect::new(4, 4, 8, 8)));
    assert!(matches!(
        t.render_blocking(&bad),
        Err(RenderError::InvalidSettings(_))
    ));
    bad.crop = None;
    bad.format = SceneFormat::Blend;
    assert!(matches!(
        t.render_blocking(&bad),
        Err(RenderError::UnsupportedFormat(_))
    ));
}

pub(crate) fn watermark_patches_land_on_their_rects(kind: RuntimeKind) {
    use inferix_core::por::key::VerificationKey;
    use inferix_core::por::watermark::{check_patches, layout, DEFAULT_THRESHOLD};
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("watermark-{kind:?}"));
    let plain = write(&dir, "demo.glb", &demo_scene_glb());
    let s = small(96, 64, 8);
    let patches = layout(&VerificationKey([9; 32]), s.width, s.height, 12);
    assert!(
        patches.len() >= 8,
        "layout found room for {} patches",
        patches.len()
    );
    let marked_bytes =
        crate::watermark::watermark_gltf(&demo_scene_glb(), &plain, &patches, &s).unwrap();
    let marked = write(&dir, "marked.glb", &marked_bytes);
    let render = |scene: &Path| {
        t.render_blocking(&request(scene, vec![3], s.clone(), None))
            .unwrap()
            .remove(0)
            .image
            .to_srgb8()
    };
    let render_linear = |scene: &Path| {
        t.render_blocking(&request(scene, vec![3], s.clone(), None))
            .unwrap()
            .remove(0)
            .image
    };
    let with = render(&marked);
    let without = render(&plain);
    assert_eq!(check_patches(&with, &patches, DEFAULT_THRESHOLD), Ok(()));
    let missing = check_patches(&without, &patches, DEFAULT_THRESHOLD).unwrap_err();
    assert!(
        missing.len() * 4 >= patches.len() * 3,
        "an unwatermarked frame shows too many patches: only {missing:?} missing"
    );
    // Each patch pixel is the texture's pattern, one texel per pixel (a
    // sample at a quad's very edge may rarely miss it through rounding).
    for p in &patches {
        let mut off = Vec::new();
        for y in p.rect.y..p.rect.y + p.rect.height {
            for x in p.rect.x..p.rect.x + p.rect.width {
                let want = inferix_core::image::linear_to_srgb8(p.radiance(x, y));
                let got = with.get(x, y)[1];
                if got.abs_diff(want) > 2 {
                    off.push((x, y, got, want));
                }
            }
        }
        assert!(
            off.len() * 20 <= p.rect.area() as usize,
            "patch {:?} does not show its pattern at {off:?}",
            p.rect
        );
    }
    // Patches are seen by camera rays only: outside their clean-delivery
    // rectangles the frame is the clean scene's, bit for bit.
    let rects = inferix_core::por::plan::clean_rects(&patches, s.width, s.height);
    assert_same_outside(&render_linear(&marked), &render_linear(&plain), &rects);
    // Malformed scenes and patches outside the frame are typed errors.
    assert!(matches!(
        crate::watermark::watermark_gltf(b"not gltf", &plain, &patches, &s),
        Err(RenderError::InvalidScene { .. })
    ));
    let mut outside = patches.clone();
    outside[0].rect = Rect::new(95, 63, 5, 5);
    assert!(crate::watermark::watermark_gltf(&demo_scene_glb(), &plain, &outside, &s).is_err());
}

/// Asserts that `a` and `b` have bit-identical pixels everywhere but in
/// `rects` (and that most of the frame was compared).
pub(crate) fn assert_same_outside(a: &Image, b: &Image, rects: &[Rect]) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mut compared = 0u64;
    let mut differing = Vec::new();
    for y in 0..a.height {
        for x in 0..a.width {
            let inside = rects
                .iter()
                .any(|r| x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
            if inside {
                continue;
            }
            compared += 1;
            if a.get(x, y) != b.get(x, y) || a.alpha_at(x, y) != b.alpha_at(x, y) {
                differing.push((x, y, a.get(x, y), b.get(x, y)));
            }
        }
    }
    assert!(
        differing.is_empty(),
        "{} pixels outside the patches differ, first {:?}",
        differing.len(),
        &differing[..differing.len().min(4)]
    );
    assert!(compared * 10 >= u64::from(a.width * a.height) * 8);
}

/// Instantiates the renderer tests for one runtime.
macro_rules! testgen_renderer {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn demo_renders_deterministically() {
                super::demo_renders_deterministically($kind);
            }

            #[test]
            fn crop_equals_full_frame() {
                super::crop_equals_full_frame($kind);
            }

            #[test]
            fn watermark_patches_land_on_their_rects() {
                super::watermark_patches_land_on_their_rects($kind);
            }

            #[test]
            fn white_furnace() {
                super::white_furnace($kind);
            }

            #[test]
            fn diffuse_plane_matches_closed_form() {
                super::diffuse_plane_matches_closed_form($kind);
            }

            #[test]
            fn demo_snapshot() {
                super::demo_snapshot($kind);
            }

            #[test]
            fn render_trait_and_progress() {
                super::render_trait_and_progress($kind);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
testgen_renderer!(wgpu, RuntimeKind::Wgpu);
#[cfg(feature = "cuda")]
testgen_renderer!(cuda, RuntimeKind::Cuda);
#[cfg(feature = "hip")]
testgen_renderer!(hip, RuntimeKind::Hip);

mod malformed {
    use super::*;
    use crate::scene;

    fn parse(
        json: &serde_json::Value,
        bin: &[u8],
        dir: &Path,
    ) -> Result<scene::Scene, scene::SceneError> {
        std::fs::write(dir.join("scene.bin"), bin).unwrap();
        let mut doc = json.clone();
        doc["buffers"][0]["uri"] = serde_json::json!("scene.bin");
        let path = dir.join("scene.gltf");
        let bytes = serde_json::to_vec(&doc).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let s = scene::load(&bytes, &path)?;
        s.evaluate(0.0)?;
        Ok(s)
    }

    fn base() -> GltfBuilder {
        let mut b = GltfBuilder::new();
        let m = b.material(MaterialDesc::default());
        let (p, n, i) = box_mesh([1.0; 3], false);
        let mesh = b.mesh(&p, Some(&n), &i, m);
        b.node(
            NodeDesc {
                mesh: Some(mesh),
                ..Default::default()
            },
            true,
        );
        b
    }

    fn expect_err(json: serde_json::Value, bin: &[u8], name: &str, needle: &str) {
        let dir = scratch(&format!("bad-{name}"));
        match parse(&json, bin, &dir) {
            Err(e) => assert!(
                e.0.contains(needle),
                "{name}: error {:?} lacks {needle:?}",
                e.0
            ),
            Ok(_) => panic!("{name}: malformed scene accepted"),
        }
    }

    #[test]
    fn valid_scene_parses() {
        let b = base();
        let dir = scratch("good");
        let s = parse(&b.json(), b.bin(), &dir).unwrap();
        assert_eq!(s.evaluate(0.0).unwrap().tris.len(), 12);
    }

    #[test]
    fn truncated_buffer() {
        let b = base();
        expect_err(
            b.json(),
            &b.bin()[..b.bin().len() / 2],
            "trunc",
            "truncated",
        );
    }

    #[test]
    fn out_of_range_index() {
        let b = base();
        let mut bin = b.bin().to_vec();
        let n = bin.len();
        bin[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
        expect_err(b.json(), &bin, "index", "out of range");
    }

    #[test]
    fn nan_positions() {
        let b = base();
        let mut bin = b.bin().to_vec();
        bin[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        expect_err(b.json(), &bin, "nan", "NaN");
    }

    #[test]
    fn absurd_counts() {
        let b = base();
        let mut j = b.json();
        let last = j["accessors"].as_array().unwrap().len() - 1;
        j["accessors"][last]["count"] = serde_json::json!(4_000_000_000u64);
        expect_err(j, b.bin(), "count", "limit");
        let mut j = b.json();
        j["accessors"][0]["count"] = serde_json::json!(1_000_000u64);
        expect_err(j, b.bin(), "count2", "past the end");
    }

    #[test]
    fn missing_and_escaping_resources() {
        let b = base();
        let mut j = b.json();
        j["images"] = serde_json::json!([{ "uri": "missing.png" }]);
        expect_err(j, b.bin(), "img", "missing");
        let dir = scratch("escape");
        let mut doc = b.json();
        doc["buffers"][0]["uri"] = serde_json::json!("../../etc/passwd");
        let bytes = serde_json::to_vec(&doc).unwrap();
        let e = scene::load(&bytes, &dir.join("x.gltf")).unwrap_err();
        assert!(e.0.contains("leaves"), "{e:?}");
    }

    #[test]
    fn garbage_and_node_cycles() {
        let dir = scratch("garbage");
        assert!(scene::load(b"glTF\x02\0\0\0garbage", &dir.join("x.glb")).is_err());
        assert!(scene::load(b"{", &dir.join("x.gltf")).is_err());
        let b = base();
        let mut j = b.json();
        j["nodes"][0]["children"] = serde_json::json!([0]);
        let r = parse(&j, b.bin(), &dir);
        assert!(r.is_err());
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn renderer_maps_to_invalid_scene() {
        let Some(t) = tracer(RuntimeKind::Wgpu) else {
            return;
        };
        let dir = scratch("render-bad");
        let p = write(&dir, "bad.glb", b"glTF\x02\0\0\0\xff\xff\xff\xff");
        let r = t.render_blocking(&request(&p, vec![0], small(4, 4, 1), None));
        assert!(matches!(r, Err(RenderError::InvalidScene { .. })), "{r:?}");
        let r = t.render_blocking(&request(
            &dir.join("nope.glb"),
            vec![0],
            small(4, 4, 1),
            None,
        ));
        assert!(matches!(r, Err(RenderError::InvalidScene { .. })), "{r:?}");
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn bench_reports_positive_index() {
    use inferix_core::renderer::Renderer;
    let Some(t) = tracer(RuntimeKind::Wgpu) else {
        return;
    };
    let r = crate::bench::run_bench_blocking(&t).unwrap();
    assert!(
        r.seconds_per_frame > 0.0 && r.ib > 0.0 && r.samples_per_second > 0.0,
        "{r:?}"
    );
    assert_eq!(r.device, t.device_class());
}
