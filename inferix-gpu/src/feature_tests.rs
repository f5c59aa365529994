//! Renderer tests of glTF material and texture features, one small scene
//! each (see [`crate::test_scenes`]), instantiated per runtime like the
//! tests in `tests.rs`.

use inferix_core::image::Image;
use inferix_core::renderer::RenderSettings;
use serde_json::json;

use crate::builder::{box_mesh, GltfBuilder};
use crate::test_scenes::*;
use crate::tests::{request, scratch, tracer, write};
use crate::RuntimeKind;

pub(crate) fn settings(w: u32, h: u32, samples: u32) -> RenderSettings {
    RenderSettings {
        width: w,
        height: h,
        samples,
        max_bounces: 3,
        seed: 3,
        fps: 24.0,
        ..RenderSettings::default()
    }
}

/// Renders frame `frame` of `glb`.
pub(crate) fn render(
    kind: RuntimeKind,
    name: &str,
    glb: &[u8],
    s: RenderSettings,
    frame: u32,
) -> Option<Image> {
    let t = tracer(kind)?;
    let dir = scratch(&format!("{name}-{kind:?}"));
    let scene = write(&dir, &format!("{name}.glb"), glb);
    Some(
        t.render_blocking(&request(&scene, vec![frame], s, None))
            .unwrap()
            .remove(0)
            .image,
    )
}

/// Mean of channel `c` over the pixel rectangle [x0, x1) x [y0, y1).
pub(crate) fn region(img: &Image, x0: u32, x1: u32, y0: u32, y1: u32, c: usize) -> f32 {
    let mut s = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            s += img.get(x, y)[c];
        }
    }
    s / ((x1 - x0) * (y1 - y0)) as f32
}

/// Metal = 0 on the left texel, 1 on the right (blue channel), roughness 0.2
/// (green): under a slanted sun the dielectric half is diffuse-lit and the
/// smooth metal half reflects the black sky.
pub(crate) fn metallic_roughness_texture(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let tex = texture(
        &mut b,
        2,
        1,
        &[[0, 51, 0, 255], [0, 51, 255, 255]],
        NEAREST,
        CLAMP,
    );
    let m = b.material_json(json!({
        "pbrMetallicRoughness": {
            "baseColorFactor": [0.8, 0.8, 0.8, 1.0],
            "metallicRoughnessTexture": { "index": tex }
        }
    }));
    let q = quad(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, m);
    place(&mut b, &[q]);
    sun(&mut b, [0.6, 0.0, -0.8], 3.0);
    let Some(img) = render(kind, "mr", &b.to_glb(), settings(16, 16, 4), 0) else {
        return;
    };
    let left = region(&img, 1, 7, 0, 16, 1);
    let right = region(&img, 9, 15, 0, 16, 1);
    assert!(
        left > 0.3 && right < 0.1 * left,
        "dielectric half {left}, metal half {right}"
    );
}

/// A base colour texture (red | white) times COLOR_0 (1, 1, 0.25).
pub(crate) fn base_color_texture_and_vertex_colors(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let tex = texture(&mut b, 2, 1, &[[255, 0, 0, 255], [255; 4]], NEAREST, CLAMP);
    let m = lambert(
        &mut b,
        [1.0; 3],
        json!({ "pbrMetallicRoughness": { "baseColorTexture": { "index": tex } } }),
    );
    let (mut attrs, idx) = quad_attrs(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, 1.0);
    attrs["COLOR_0"] = json!(b.accessor_f32(&[1.0, 1.0, 0.25].repeat(4), 3));
    let q = b.mesh_json(
        json!({ "primitives": [{ "attributes": attrs, "indices": idx, "material": m }] }),
    );
    place(&mut b, &[q]);
    sun(&mut b, [0.0, 0.0, -1.0], 3.0);
    let Some(img) = render(kind, "basecolor", &b.to_glb(), settings(16, 16, 2), 0) else {
        return;
    };
    let expect = 3.0 / std::f32::consts::PI;
    let l = [0, 1, 2].map(|c| region(&img, 1, 7, 1, 15, c));
    let r = [0, 1, 2].map(|c| region(&img, 9, 15, 1, 15, c));
    assert!(
        (l[0] - expect).abs() < 0.02 * expect && l[1] < 1e-3,
        "left {l:?}"
    );
    assert!(
        (r[0] - expect).abs() < 0.02 * expect
            && (r[1] - expect).abs() < 0.02 * expect
            && (r[2] - 0.25 * expect).abs() < 0.02 * expect,
        "right {r:?}"
    );
}

/// A base colour texture and an emissive texture on one material: the
/// emission is the red texture, the lit base colour the green one.
pub(crate) fn emissive_and_base_textures(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let green = texture(&mut b, 1, 1, &[[0, 255, 0, 255]], NEAREST, REPEAT);
    let red = texture(&mut b, 1, 1, &[[255, 0, 0, 255]], NEAREST, REPEAT);
    let m = lambert(
        &mut b,
        [1.0; 3],
        json!({
            "pbrMetallicRoughness": { "baseColorTexture": { "index": green } },
            "emissiveTexture": { "index": red },
            "emissiveFactor": [0.5, 0.5, 0.5]
        }),
    );
    let q = quad(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, m);
    place(&mut b, &[q]);
    sun(&mut b, [0.0, 0.0, -1.0], 1.0);
    let Some(img) = render(kind, "emissive", &b.to_glb(), settings(8, 8, 2), 0) else {
        return;
    };
    let c = [0, 1, 2].map(|c| region(&img, 0, 8, 0, 8, c));
    let lit = 1.0 / std::f32::consts::PI;
    assert!((c[0] - 0.5).abs() < 0.01, "emission {c:?}");
    assert!((c[1] - lit).abs() < 0.02 * lit, "lit base colour {c:?}");
    assert!(c[2] < 1e-3, "{c:?}");
}

/// Occlusion scales indirect light only: in a closed diffuse box of albedo
/// ρ emitting e whose occlusion texture is 0, a pixel sees the emission and
/// the direct light of one bounce, e (1 + ρ), instead of e / (1 − ρ).
pub(crate) fn occlusion_scales_indirect_light(kind: RuntimeKind) {
    let (rho, e) = (0.5f32, 0.4f32);
    let glb = |occluded: bool| {
        let mut b = GltfBuilder::new();
        let occ = texture(&mut b, 1, 1, &[[0, 0, 0, 255]], NEAREST, REPEAT);
        let extra = if occluded {
            json!({ "occlusionTexture": { "index": occ }, "emissiveFactor": [e, e, e] })
        } else {
            json!({ "emissiveFactor": [e, e, e] })
        };
        let m = lambert(&mut b, [rho; 3], extra);
        let (p, n, i) = box_mesh([1.0, 1.0, 1.0], true);
        let mesh = b.mesh(&p, Some(&n), &i, m);
        b.node_json(json!({ "mesh": mesh }), true);
        let cam = b.camera(1.2);
        b.node_json(
            json!({ "camera": cam, "translation": [0.1, -0.2, 0.3] }),
            true,
        );
        b.to_glb()
    };
    let s = RenderSettings {
        max_bounces: 64,
        ..settings(8, 8, 64)
    };
    let Some(occluded) = render(kind, "occlusion", &glb(true), s.clone(), 0) else {
        return;
    };
    let open = render(kind, "occlusion-off", &glb(false), s, 0).unwrap();
    let m = region(&occluded, 0, 8, 0, 8, 0);
    let full = region(&open, 0, 8, 0, 8, 0);
    let (want, want_full) = (e * (1.0 + rho), e / (1.0 - rho));
    assert!(
        (m - want).abs() < 0.02 * want,
        "occluded {m}, expected {want}"
    );
    assert!(
        (full - want_full).abs() < 0.03 * want_full,
        "unoccluded {full}, expected {want_full}"
    );
}

/// A normal map tilting normals 45° towards +u (+x here) brightens a
/// surface lit from that side: cos 30° / cos 60° with tangents generated.
pub(crate) fn normal_map_tilts_shading(kind: RuntimeKind) {
    let glb = |texel: [u8; 4]| {
        let mut b = GltfBuilder::new();
        let nm = texture(&mut b, 1, 1, &[texel], NEAREST, REPEAT);
        let m = lambert(
            &mut b,
            [1.0; 3],
            json!({ "normalTexture": { "index": nm } }),
        );
        let q = quad(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, m);
        place(&mut b, &[q]);
        // Light arriving from +x at 60° from the normal.
        let a = 60f32.to_radians();
        sun(&mut b, [-a.sin(), 0.0, -a.cos()], 2.0);
        b.to_glb()
    };
    let Some(flat) = render(
        kind,
        "nflat",
        &glb([128, 128, 255, 255]),
        settings(8, 8, 2),
        0,
    ) else {
        return;
    };
    // (0.707, 0, 0.707) in tangent space.
    let tilted = render(
        kind,
        "ntilt",
        &glb([218, 128, 218, 255]),
        settings(8, 8, 2),
        0,
    )
    .unwrap();
    let f = region(&flat, 0, 8, 0, 8, 1);
    let t = region(&tilted, 0, 8, 0, 8, 1);
    let ratio = t / f;
    let want = 15f32.to_radians().cos() / 60f32.to_radians().cos();
    assert!(
        (ratio - want).abs() < 0.05 * want,
        "tilted/flat {ratio}, expected {want}"
    );
    let down = render(
        kind,
        "ndown",
        &glb([38, 128, 218, 255]),
        settings(8, 8, 2),
        0,
    )
    .unwrap();
    assert!(
        region(&down, 0, 8, 0, 8, 1) < 0.5 * f,
        "tilting away darkens"
    );
}

/// A red quad at z = 1 whose left half is cut out (MASK, alpha texture
/// 0 | 255) in front of a white wall, lit at 45° from +x. In a 64x32 frame
/// (wall x in [-2, 2] maps to pixels 16 (x + 2)):
/// * the opaque half shadows wall x in [-1, -0.5], the cut-out half casts
///   no shadow on wall x in [-1.5, -1];
/// * through the cut-out the camera sees the lit wall; the opaque half is red.
pub(crate) fn alpha_mask_cuts_out_and_shadows(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let tex = texture(
        &mut b,
        2,
        1,
        &[[255, 255, 255, 0], [255; 4]],
        NEAREST,
        CLAMP,
    );
    let cut = lambert(
        &mut b,
        [1.0, 0.0, 0.0],
        json!({
            "pbrMetallicRoughness": { "baseColorTexture": { "index": tex } },
            "alphaMode": "MASK",
            "alphaCutoff": 0.5
        }),
    );
    let white = lambert(&mut b, [1.0; 3], json!({}));
    let front = quad(&mut b, [-0.5, 0.5, -0.5, 0.5], 1.0, cut);
    let wall = quad(&mut b, [-3.0, 3.0, -3.0, 3.0], 0.0, white);
    place(&mut b, &[front, wall]);
    sun(&mut b, [-1.0, 0.0, -1.0], 3.0);
    let Some(img) = render(kind, "mask", &b.to_glb(), settings(64, 32, 2), 0) else {
        return;
    };
    let g = |x0, x1| region(&img, x0, x1, 10, 22, 1);
    let lit = g(2, 6);
    let opaque_shadow = g(17, 20);
    let cutout_shadow = g(9, 15);
    let through = g(26, 30);
    let opaque = [0, 1].map(|c| region(&img, 34, 41, 10, 22, c));
    assert!(lit > 0.5, "wall is lit: {lit}");
    assert!(
        opaque_shadow < 0.05 * lit,
        "opaque half shadows: {opaque_shadow}"
    );
    assert!(
        (cutout_shadow - lit).abs() < 0.02 * lit,
        "the cut-out half casts no shadow: {cutout_shadow} vs {lit}"
    );
    assert!(
        (through - lit).abs() < 0.02 * lit,
        "through the cut-out {through}, lit wall {lit}"
    );
    assert!(
        opaque[0] > 0.5 && opaque[1] < 1e-3,
        "opaque half {opaque:?}"
    );
}

/// BLEND with alpha 0.5 everywhere: a camera ray passes with probability
/// 1/2, and so does the light reaching the wall behind: the wall's green
/// seen through the quad is a quarter of the unshadowed wall's.
pub(crate) fn alpha_blend_is_stochastic(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let half = lambert(
        &mut b,
        [1.0, 0.0, 0.0],
        json!({
            "pbrMetallicRoughness": { "baseColorFactor": [1.0, 0.0, 0.0, 0.5] },
            "alphaMode": "BLEND"
        }),
    );
    let white = lambert(&mut b, [1.0; 3], json!({}));
    let front = quad(&mut b, [-0.5, 0.5, -0.5, 0.5], 0.5, half);
    let wall = quad(&mut b, [-3.0, 3.0, -3.0, 3.0], 0.0, white);
    place(&mut b, &[front, wall]);
    sun(&mut b, [0.0, 0.0, -1.0], 3.0);
    // Direct light only: the wall's light bounced off the quad's back
    // would add red.
    let s = RenderSettings {
        max_bounces: 1,
        ..settings(32, 32, 128)
    };
    let Some(img) = render(kind, "blend", &b.to_glb(), s.clone(), 0) else {
        return;
    };
    let beside = region(&img, 1, 6, 8, 24, 1);
    let through = region(&img, 10, 22, 10, 22, 1);
    let red = region(&img, 10, 22, 10, 22, 0);
    assert!(
        (through - 0.25 * beside).abs() < 0.1 * 0.25 * beside,
        "green through the blend {through}, beside {beside}"
    );
    // Red: half the quad's own red plus a quarter of the wall's.
    let want = 0.5 * beside + 0.25 * beside;
    assert!(
        (red - want).abs() < 0.1 * want,
        "red {red}, expected {want}"
    );
    // Deterministic per pixel and sample: a crop equals the same pixels of
    // the full frame.
    let t = tracer(kind).unwrap();
    let dir = scratch(&format!("blend-crop-{kind:?}"));
    let scene = write(&dir, "blend.glb", &b.to_glb());
    let rect = inferix_core::image::Rect::new(9, 11, 9, 6);
    let crop = t
        .render_blocking(&request(&scene, vec![0], s, Some(rect)))
        .unwrap()
        .remove(0)
        .image;
    assert_eq!(
        crop,
        img.crop(rect),
        "stochastic transparency is deterministic"
    );
}

/// Single-sided back faces are invisible to the camera; double-sided ones
/// are seen.
pub(crate) fn single_sided_back_faces_are_culled(kind: RuntimeKind) {
    let glb = |double: bool| {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({ "doubleSided": double }));
        let (attrs, _) = quad_attrs(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, 1.0);
        // Reversed winding: the front face looks away from the camera.
        let idx = b.accessor_indices(&[0, 2, 1, 2, 3, 1]);
        let q = b.mesh_json(
            json!({ "primitives": [{ "attributes": attrs, "indices": idx, "material": m }] }),
        );
        place(&mut b, &[q]);
        b.to_glb()
    };
    let Some(single) = render(kind, "single", &glb(false), settings(4, 4, 1), 0) else {
        return;
    };
    let double = render(kind, "double", &glb(true), settings(4, 4, 1), 0).unwrap();
    assert_eq!(region(&single, 0, 4, 0, 4, 0), 0.0);
    assert_eq!(region(&double, 0, 4, 0, 4, 0), 1.0);
}

/// KHR_materials_unlit: the base colour (factor x texture x COLOR_0) is
/// seen as is, with or without light.
pub(crate) fn unlit_shows_the_base_colour(kind: RuntimeKind) {
    let glb = |lit: bool| {
        let mut b = GltfBuilder::new();
        b.use_extension("KHR_materials_unlit", false);
        let m = b.material_json(json!({
            "pbrMetallicRoughness": { "baseColorFactor": [0.2, 0.5, 0.8, 1.0] },
            "extensions": { "KHR_materials_unlit": {} }
        }));
        let q = quad(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, m);
        place(&mut b, &[q]);
        if lit {
            sun(&mut b, [0.0, 0.0, -1.0], 5.0);
        }
        b.to_glb()
    };
    for lit in [false, true] {
        let Some(img) = render(kind, "unlit", &glb(lit), settings(4, 4, 1), 0) else {
            return;
        };
        let c = [0, 1, 2].map(|c| region(&img, 0, 4, 0, 4, c));
        for (got, want) in c.iter().zip([0.2, 0.5, 0.8]) {
            assert!((got - want).abs() < 1e-5, "lit {lit}: {c:?}");
        }
    }
}
