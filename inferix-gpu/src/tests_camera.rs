//! Camera tests: the default camera over an animation, watermarking a
//! camera-less scene, orthographic projection. Instantiated per runtime.

use std::path::Path;

use inferix_core::image::Image;

use crate::builder::{box_mesh, quad_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use crate::camera::Projection;
use crate::math::{self, quat_axis_angle};
use crate::tests::{request, scratch, tracer, write};
use crate::tests_light::settings;
use crate::tracer::frame_data;
use crate::RuntimeKind;

/// A floor and a box sliding from x = −2 to x = 2 over one second; no
/// camera, no light.
fn sliding_box_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let grey = b.material(MaterialDesc {
        base_color: [0.5; 3],
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(1.0);
    let floor = b.mesh(&p, Some(&n), &i, grey);
    b.node(
        NodeDesc {
            mesh: Some(floor),
            ..Default::default()
        },
        true,
    );
    let (p, n, i) = box_mesh([0.25; 3], false);
    let cube = b.mesh(&p, Some(&n), &i, grey);
    let node = b.node(
        NodeDesc {
            mesh: Some(cube),
            translation: Some([-2.0, 0.25, 0.0]),
            ..Default::default()
        },
        true,
    );
    b.animate(
        node,
        "translation",
        &[0.0, 1.0],
        &[-2.0, 0.25, 0.0, 2.0, 0.25, 0.0],
    );
    b.to_glb()
}

/// Pixel position of world point `p` through a perspective camera.
fn project(c: &crate::camera::Camera, p: [f32; 3], w: f32, h: f32) -> (f32, f32) {
    let Projection::Perspective { yfov } = c.projection else {
        panic!("default camera is perspective")
    };
    let d = math::sub(p, c.position);
    let z = math::dot(d, c.forward);
    let th = (yfov * 0.5).tan();
    let sx = math::dot(d, c.right) / z / (th * w / h);
    let sy = math::dot(d, c.up) / z / th;
    ((sx + 1.0) * 0.5 * w, (1.0 - sy) * 0.5 * h)
}

pub(crate) fn default_camera_is_fixed_over_the_animation(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("default-cam-{kind:?}"));
    let scene = write(&dir, "slide.glb", &sliding_box_glb());
    let s = settings(32, 18, 2);
    let loaded = t.load(&scene).unwrap();
    let cams: Vec<_> = [1u32, 12, 24]
        .iter()
        .map(|&f| {
            let data = frame_data(&loaded.scene, f, &s).unwrap();
            loaded.camera(&data, &s, &scene).unwrap()
        })
        .collect();
    assert_eq!(cams[0], cams[1], "frame 12 moved the default camera");
    assert_eq!(cams[0], cams[2], "frame 24 moved the default camera");
    let c = cams[0];
    // A three-quarter view from above and to the side, not down −Z.
    assert!(c.forward[0].abs() > 0.3 && c.forward[1] < -0.3 && c.forward[2] < -0.5);
    // Both ends of the slide are in the frame.
    for x in [-2.0f32, 2.0] {
        let (px, py) = project(&c, [x, 0.25, 0.0], 32.0, 18.0);
        assert!(
            (0.0..32.0).contains(&px) && (0.0..18.0).contains(&py),
            "box at x={x} lands at {px},{py}"
        );
    }
    // The renders differ (the box moves) but both frames are lit.
    let imgs = t
        .render_blocking(&request(&scene, vec![1, 24], s, None))
        .unwrap();
    assert_ne!(imgs[0].image, imgs[1].image);
    let codes: Vec<String> = t
        .scene_warnings_blocking(&request(&scene, vec![1], settings(32, 18, 2), None))
        .unwrap()
        .into_iter()
        .map(|w| w.code)
        .collect();
    assert!(codes.contains(&"default-camera".to_string()), "{codes:?}");
}

pub(crate) fn camera_less_scene_is_watermarked(kind: RuntimeKind) {
    use inferix_core::por::key::VerificationKey;
    use inferix_core::por::watermark::{check_patches, layout, DEFAULT_THRESHOLD};
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("watermark-nocam-{kind:?}"));
    let bytes = sliding_box_glb();
    let plain = write(&dir, "slide.glb", &bytes);
    let s = settings(96, 64, 4);
    let patches = layout(&VerificationKey([5; 32]), s.width, s.height, 12);
    assert!(patches.len() >= 8);
    let marked_bytes = crate::watermark::watermark_gltf(&bytes, &plain, &patches, &s).unwrap();
    let marked = write(&dir, "marked.glb", &marked_bytes);
    let render = |scene: &Path| -> Image {
        t.render_blocking(&request(scene, vec![6], s.clone(), None))
            .unwrap()
            .remove(0)
            .image
    };
    let with = render(&marked);
    let without = render(&plain);
    let with8 = with.to_srgb8();
    assert_eq!(check_patches(&with8, &patches, DEFAULT_THRESHOLD), Ok(()));
    // The inserted camera is the default camera: outside the patches'
    // clean-delivery rectangles the two renders agree bit for bit.
    let rects = inferix_core::por::plan::clean_rects(&patches, s.width, s.height);
    crate::tests::assert_same_outside(&with, &without, &rects);
}

/// Two emissive unit quads facing +Z, at x = −1 (z = 0) and x = +1
/// (z = −3), seen by `camera` placed at (0, 0, 5).
fn two_quads_glb(ortho: bool) -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let m = b.material(MaterialDesc {
        base_color: [0.0; 3],
        emissive: [1.0; 3],
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(0.5);
    let quad = b.mesh(&p, Some(&n), &i, m);
    for (x, z) in [(-1.0f32, 0.0f32), (1.0, -3.0)] {
        b.node(
            NodeDesc {
                mesh: Some(quad),
                translation: Some([x, 0.0, z]),
                rotation: Some(quat_axis_angle(
                    [1.0, 0.0, 0.0],
                    std::f32::consts::FRAC_PI_2,
                )),
                ..Default::default()
            },
            true,
        );
    }
    let cam = if ortho {
        b.orthographic_camera(2.0)
    } else {
        b.camera(0.8)
    };
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

/// Lit pixels in the left and right halves.
fn lit_halves(img: &Image) -> (usize, usize) {
    let mut n = (0, 0);
    for y in 0..img.height {
        for x in 0..img.width {
            if img.get(x, y)[0] > 0.5 {
                if x < img.width / 2 {
                    n.0 += 1;
                } else {
                    n.1 += 1;
                }
            }
        }
    }
    n
}

pub(crate) fn orthographic_camera_is_parallel(kind: RuntimeKind) {
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("ortho-{kind:?}"));
    let render = |name: &str, ortho: bool| {
        let scene = write(&dir, name, &two_quads_glb(ortho));
        t.render_blocking(&request(&scene, vec![0], settings(32, 16, 4), None))
            .unwrap()
            .remove(0)
            .image
    };
    // 8 x 4 units over 32 x 16 pixels: each unit quad covers 4 x 4 pixels,
    // whatever its depth.
    let (near, far) = lit_halves(&render("ortho.glb", true));
    assert_eq!((near, far), (16, 16), "orthographic quads differ in size");
    // Through a perspective camera the farther quad is smaller.
    let (near, far) = lit_halves(&render("persp.glb", false));
    assert!(near > far && far > 0, "perspective sizes {near} {far}");
}

/// A mirror facing a camera at (0, 0, 5) whose near plane is 2 units ahead
/// (so watermark patches stand 3 units ahead, at z = 2, large enough to
/// show in the mirror and to cast shadows), a grey box before the mirror
/// and a point light behind the camera, off its axis.
fn mirror_behind_patches_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let mirror = b.material(MaterialDesc {
        base_color: [0.9; 3],
        metallic: 1.0,
        roughness: 0.0,
        ..Default::default()
    });
    let grey = b.material(MaterialDesc {
        base_color: [0.5; 3],
        ..Default::default()
    });
    let (p, n, i) = quad_mesh(3.0);
    let plane = b.mesh(&p, Some(&n), &i, mirror);
    b.node(
        NodeDesc {
            mesh: Some(plane),
            rotation: Some(quat_axis_angle(
                [1.0, 0.0, 0.0],
                std::f32::consts::FRAC_PI_2,
            )),
            ..Default::default()
        },
        true,
    );
    let (p, n, i) = box_mesh([0.4; 3], false);
    let cube = b.mesh(&p, Some(&n), &i, grey);
    b.node(
        NodeDesc {
            mesh: Some(cube),
            translation: Some([0.5, 0.0, 1.0]),
            ..Default::default()
        },
        true,
    );
    let light = b.point_light([1.0; 3], 600.0);
    b.node(
        NodeDesc {
            light: Some(light),
            translation: Some([1.5, 1.0, 8.0]),
            ..Default::default()
        },
        true,
    );
    let cam = b.camera_with_near(0.9, 2.0);
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

/// Watermark patches are seen by camera rays only: in a mirror that
/// reflects the camera's surroundings, under a light they stand before,
/// every pixel outside their clean-delivery rectangles equals the clean
/// scene's.
pub(crate) fn patches_show_nowhere_but_on_their_pixels(kind: RuntimeKind) {
    use inferix_core::por::key::VerificationKey;
    use inferix_core::por::plan::clean_rects;
    use inferix_core::por::watermark::{check_patches, layout, DEFAULT_THRESHOLD};
    let Some(t) = tracer(kind) else { return };
    let dir = scratch(&format!("watermark-mirror-{kind:?}"));
    let bytes = mirror_behind_patches_glb();
    let plain = write(&dir, "mirror.glb", &bytes);
    let s = settings(96, 64, 16);
    let patches = layout(&VerificationKey([11; 32]), s.width, s.height, 12);
    let marked_bytes = crate::watermark::watermark_gltf(&bytes, &plain, &patches, &s).unwrap();
    let marked = write(&dir, "marked.glb", &marked_bytes);
    let render = |scene: &Path| -> Image {
        t.render_blocking(&request(scene, vec![0], s.clone(), None))
            .unwrap()
            .remove(0)
            .image
    };
    let (with, without) = (render(&marked), render(&plain));
    assert_eq!(
        check_patches(&with.to_srgb8(), &patches, DEFAULT_THRESHOLD),
        Ok(())
    );
    let rects = clean_rects(&patches, s.width, s.height);
    crate::tests::assert_same_outside(&with, &without, &rects);
    // Pasting the clean scene's pixels over the rectangles gives the clean
    // frame: what clean delivery sends the customer.
    let mut delivered = with.clone();
    for r in &rects {
        assert!(delivered.paste(&without.crop(*r), r.x, r.y));
    }
    assert_eq!(delivered, without);
}

/// Instantiates the camera tests for one runtime.
macro_rules! testgen_camera {
    ($module:ident, $kind:expr) => {
        mod $module {
            #[test]
            fn default_camera_is_fixed_over_the_animation() {
                super::default_camera_is_fixed_over_the_animation($kind);
            }

            #[test]
            fn camera_less_scene_is_watermarked() {
                super::camera_less_scene_is_watermarked($kind);
            }

            #[test]
            fn patches_show_nowhere_but_on_their_pixels() {
                super::patches_show_nowhere_but_on_their_pixels($kind);
            }

            #[test]
            fn orthographic_camera_is_parallel() {
                super::orthographic_camera_is_parallel($kind);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
testgen_camera!(wgpu, crate::RuntimeKind::Wgpu);
#[cfg(feature = "cuda")]
testgen_camera!(cuda, crate::RuntimeKind::Cuda);
#[cfg(feature = "hip")]
testgen_camera!(hip, crate::RuntimeKind::Hip);
