//! Renderer tests of texture sampling (KHR_texture_transform, UV sets,
//! wrap modes, filtering), the material extensions (transmission, ior,
//! clearcoat) and a textured PBR scene, per runtime.

use inferix_core::renderer::RenderSettings;
use serde_json::json;

use crate::builder::GltfBuilder;
use crate::feature_tests::{region, render, settings};
use crate::test_scenes::*;
use crate::tests::{scratch, write};
use crate::RuntimeKind;

/// An emissive 2x1 texture (black | white) seen on a quad filling a
/// 32-pixel-wide frame with UVs 0..`uv_scale`, with `extra` on the texture
/// reference; returns the green of each column.
fn texture_columns(
    kind: RuntimeKind,
    name: &str,
    filter: u32,
    wrap: u32,
    uv_scale: f32,
    info: serde_json::Value,
) -> Option<Vec<f32>> {
    let mut b = GltfBuilder::new();
    let tex = texture(&mut b, 2, 1, &[[0, 0, 0, 255], [255; 4]], filter, wrap);
    let mut tinfo = json!({ "index": tex });
    merge(&mut tinfo, info);
    let m = emitter(&mut b, [1.0; 3], json!({ "emissiveTexture": tinfo }));
    // A 32x2 frame spans [-16, 16] x [-1, 1] at z = 0.
    let (mut attrs, idx) = quad_attrs(&mut b, [-16.0, 16.0, -1.0, 1.0], 0.0, uv_scale);
    // TEXCOORD_1 mirrors u.
    let s = uv_scale;
    attrs["TEXCOORD_1"] = json!(b.accessor_f32(&[s, s, 0.0, s, s, 0.0, 0.0, 0.0], 2));
    let q = b.mesh_json(
        json!({ "primitives": [{ "attributes": attrs, "indices": idx, "material": m }] }),
    );
    place(&mut b, &[q]);
    b.use_extension("KHR_texture_transform", false);
    let img = render(kind, name, &b.to_glb(), settings(32, 2, 1), 0)?;
    Some((0..32).map(|x| region(&img, x, x + 1, 0, 2, 1)).collect())
}

/// Black/white pattern of columns, 1 where bright, 0 where dark, 2 between.
fn pattern(cols: &[f32]) -> String {
    cols.iter()
        .map(|&v| {
            if v > 0.99 {
                '1'
            } else if v < 0.01 {
                '0'
            } else {
                '2'
            }
        })
        .collect()
}

/// KHR_texture_transform offsets, TEXCOORD_1, wrap modes and filters.
pub(crate) fn texture_transform_wrap_and_filter(kind: RuntimeKind) {
    let Some(plain) = texture_columns(kind, "tt-plain", NEAREST, REPEAT, 1.0, json!({})) else {
        return;
    };
    assert_eq!(
        pattern(&plain),
        "0000000000000000".to_string() + "1111111111111111"
    );
    // Offset 0.25: the checker moves left by a quarter of the quad (8 px).
    let moved = texture_columns(
        kind,
        "tt-offset",
        NEAREST,
        REPEAT,
        1.0,
        json!({ "extensions": { "KHR_texture_transform": { "offset": [0.25, 0.0] } } }),
    )
    .unwrap();
    assert_eq!(
        pattern(&moved),
        "00000000".to_string() + "1111111111111111" + "00000000"
    );
    // TEXCOORD_1 (mirrored u), chosen by texCoord or by the transform.
    for info in [
        json!({ "texCoord": 1 }),
        json!({ "extensions": { "KHR_texture_transform": { "texCoord": 1 } } }),
    ] {
        let set1 = texture_columns(kind, "tt-set1", NEAREST, REPEAT, 1.0, info).unwrap();
        assert_eq!(
            pattern(&set1),
            "1111111111111111".to_string() + "0000000000000000"
        );
    }
    // UVs 0..2: repeat, mirrored repeat and clamp.
    let q = |s: &str| s.repeat(8);
    let rep = texture_columns(kind, "tt-repeat", NEAREST, REPEAT, 2.0, json!({})).unwrap();
    assert_eq!(pattern(&rep), q("0") + &q("1") + &q("0") + &q("1"));
    let mir = texture_columns(kind, "tt-mirror", NEAREST, MIRROR, 2.0, json!({})).unwrap();
    assert_eq!(pattern(&mir), q("0") + &q("1") + &q("1") + &q("0"));
    let cla = texture_columns(kind, "tt-clamp", NEAREST, CLAMP, 2.0, json!({})).unwrap();
    assert_eq!(pattern(&cla), q("0") + &q("1") + &q("1") + &q("1"));
    // Bilinear: a ramp between the texel centres (u = 1/4 and 3/4), flat
    // (clamped) outside; the ramp is linear in linear light.
    let lin = texture_columns(kind, "tt-linear", LINEAR, CLAMP, 1.0, json!({})).unwrap();
    assert!(lin[2] < 0.01 && lin[29] > 0.99, "{lin:?}");
    for (x, got) in lin.iter().enumerate().take(23).skip(9) {
        let u = (x as f32 + 0.5) / 32.0;
        let want = (u - 0.25) / 0.5;
        assert!((got - want).abs() < 0.04, "column {x}: {got} vs {want}");
    }
}

/// A glass pane (transmission 1, ior 1.5, tinted (0.5, 1, 1)) in front of an
/// emitter of radiance 1, seen head-on: the camera sees the emitter through
/// it, times the tint and 1 − F(0) = 0.96; an opaque pane hides it.
pub(crate) fn transmission_lets_light_through(kind: RuntimeKind) {
    let glb = |transmission: f32, roughness: f32| {
        let mut b = GltfBuilder::new();
        b.use_extension("KHR_materials_transmission", false);
        b.use_extension("KHR_materials_ior", false);
        let glass = lambert(
            &mut b,
            [0.5, 1.0, 1.0],
            json!({
                "pbrMetallicRoughness": { "roughnessFactor": roughness },
                "extensions": {
                    "KHR_materials_transmission": { "transmissionFactor": transmission },
                    "KHR_materials_ior": { "ior": 1.5 }
                }
            }),
        );
        let light = emitter(&mut b, [1.0; 3], json!({}));
        let pane = quad(&mut b, [-0.5, 0.5, -0.5, 0.5], 1.0, glass);
        let back = quad(&mut b, [-3.0, 3.0, -3.0, 3.0], 0.0, light);
        place(&mut b, &[pane, back]);
        b.to_glb()
    };
    let Some(glass) = render(kind, "glass", &glb(1.0, 0.0), settings(16, 16, 32), 0) else {
        return;
    };
    let opaque = render(kind, "opaque-pane", &glb(0.0, 0.0), settings(16, 16, 32), 0).unwrap();
    let c = [0, 1].map(|c| region(&glass, 5, 11, 5, 11, c));
    assert!((c[0] - 0.48).abs() < 0.03 * 0.48, "red through glass {c:?}");
    assert!(
        (c[1] - 0.96).abs() < 0.03 * 0.96,
        "green through glass {c:?}"
    );
    assert!(
        region(&opaque, 5, 11, 5, 11, 1) < 0.05,
        "an opaque pane hides the light"
    );
    // Frosted glass (roughness 0.6) still lets most of the light through
    // and never more than the emitter's radiance on average.
    let frosted = render(kind, "frosted", &glb(1.0, 0.6), settings(16, 16, 32), 0).unwrap();
    let f = region(&frosted, 5, 11, 5, 11, 1);
    assert!(f > 0.6 && f < 1.0, "green through frosted glass {f}");
    let beside = region(&glass, 0, 2, 0, 2, 1);
    assert!(
        (beside - 1.0).abs() < 0.01,
        "the emitter beside the pane: {beside}"
    );
}

/// A clearcoat adds a specular highlight around the mirror direction of a
/// sun behind the camera on a rough Lambertian quad.
pub(crate) fn clearcoat_adds_a_highlight(kind: RuntimeKind) {
    let glb = |coat: f32| {
        let mut b = GltfBuilder::new();
        b.use_extension("KHR_materials_clearcoat", false);
        let m = lambert(
            &mut b,
            [0.5; 3],
            json!({ "extensions": { "KHR_materials_clearcoat": {
                "clearcoatFactor": coat, "clearcoatRoughnessFactor": 0.3
            } } }),
        );
        let q = quad(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, m);
        place(&mut b, &[q]);
        sun(&mut b, [0.0, 0.0, -1.0], 3.0);
        b.to_glb()
    };
    let Some(plain) = render(kind, "nocoat", &glb(0.0), settings(16, 16, 4), 0) else {
        return;
    };
    let coated = render(kind, "coat", &glb(1.0), settings(16, 16, 4), 0).unwrap();
    let centre = |img| region(img, 6, 10, 6, 10, 1);
    assert!(
        centre(&coated) > 2.0 * centre(&plain),
        "highlight {} vs {}",
        centre(&coated),
        centre(&plain)
    );
    let all = |img| region(img, 0, 16, 0, 16, 1);
    assert!(all(&coated) > 0.95 * all(&plain));
}

/// A textured PBR scene: a sphere with a checker base colour, a
/// metallic-roughness texture (metal stripes), a bumpy normal map and an
/// occlusion map, on a textured floor, lit by a sun and a point light.
/// Checks that it renders lit and finite; the image is written to the
/// test's scratch directory (and to `$INFERIX_PBR_PNG` when set, at the
/// size `$INFERIX_PBR_SIZE`) for inspection.
pub(crate) fn textured_pbr_scene(kind: RuntimeKind) {
    let n = 16usize;
    let mut checker = Vec::new();
    let mut mr = Vec::new();
    let mut normal = Vec::new();
    for y in 0..n {
        for x in 0..n {
            let c = (x / 4 + y / 4) % 2 == 0;
            checker.push(if c {
                [230, 200, 60, 255]
            } else {
                [40, 90, 200, 255]
            });
            // Metal stripes, smooth; dielectric rough elsewhere.
            let metal = (x / 2) % 4 == 0;
            mr.push(if metal {
                [0, 60, 255, 255]
            } else {
                [0, 200, 0, 255]
            });
            // Bumps: normals tilted by a sine pattern.
            let a = (x as f32 / n as f32 * std::f32::consts::TAU * 2.0).sin() * 0.6;
            let t = [a, 0.0, (1.0 - a * a).sqrt()];
            normal.push([
                ((t[0] * 0.5 + 0.5) * 255.0) as u8,
                ((t[1] * 0.5 + 0.5) * 255.0) as u8,
                ((t[2] * 0.5 + 0.5) * 255.0) as u8,
                255,
            ]);
        }
    }
    let mut b = GltfBuilder::new();
    let base = texture(&mut b, n as u32, n as u32, &checker, LINEAR, REPEAT);
    let mrt = texture(&mut b, n as u32, n as u32, &mr, NEAREST, REPEAT);
    let nrm = texture(&mut b, n as u32, n as u32, &normal, LINEAR, REPEAT);
    let ball = b.material_json(json!({
        "pbrMetallicRoughness": {
            "baseColorTexture": { "index": base },
            "metallicRoughnessTexture": { "index": mrt }
        },
        "normalTexture": { "index": nrm }
    }));
    let floor_m = b.material_json(json!({
        "pbrMetallicRoughness": {
            "baseColorTexture": { "index": base,
                "extensions": { "KHR_texture_transform": { "scale": [4.0, 4.0] } } },
            "metallicFactor": 0.0, "roughnessFactor": 0.8
        }
    }));
    b.use_extension("KHR_texture_transform", false);
    // UV sphere with UVs.
    let (seg, rings) = (48u32, 24u32);
    let (mut p, mut uv, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=rings {
        let th = std::f32::consts::PI * i as f32 / rings as f32;
        for j in 0..=seg {
            let ph = std::f32::consts::TAU * j as f32 / seg as f32;
            p.extend_from_slice(&[th.sin() * ph.cos(), th.cos(), -th.sin() * ph.sin()]);
            uv.extend_from_slice(&[j as f32 / seg as f32 * 2.0, i as f32 / rings as f32]);
        }
    }
    for i in 0..rings {
        for j in 0..seg {
            let a = i * (seg + 1) + j;
            let c = a + seg + 1;
            idx.extend_from_slice(&[a, c, a + 1, a + 1, c, c + 1]);
        }
    }
    let attrs = json!({
        "POSITION": b.accessor_f32(&p, 3),
        "NORMAL": b.accessor_f32(&p, 3),
        "TEXCOORD_0": b.accessor_f32(&uv, 2),
    });
    let ia = b.accessor_indices(&idx);
    let sphere = b.mesh_json(
        json!({ "primitives": [{ "attributes": attrs, "indices": ia, "material": ball }] }),
    );
    let (fattrs, fidx) = quad_attrs(&mut b, [-4.0, 4.0, -4.0, 4.0], 0.0, 1.0);
    let floor = b.mesh_json(
        json!({ "primitives": [{ "attributes": fattrs, "indices": fidx, "material": floor_m }] }),
    );
    b.node_json(
        json!({ "mesh": sphere, "translation": [0.0, 1.0, 0.0] }),
        true,
    );
    // The floor quad lies in XY: turn it to face +Y.
    let rot = crate::math::quat_axis_angle([1.0, 0.0, 0.0], -std::f32::consts::FRAC_PI_2);
    b.node_json(json!({ "mesh": floor, "rotation": rot }), true);
    sun(&mut b, [-0.4, -1.0, -0.5], 2.5);
    let lamp = b.point_light([1.0, 0.9, 0.8], 30.0);
    b.node_json(
        json!({ "translation": [2.5, 3.0, 3.0],
        "extensions": { "KHR_lights_punctual": { "light": lamp } } }),
        true,
    );
    let cam = b.camera(0.7);
    let look = crate::math::quat_axis_angle([1.0, 0.0, 0.0], -0.3);
    b.node_json(
        json!({ "camera": cam, "translation": [0.0, 2.6, 4.6], "rotation": look }),
        true,
    );
    let size: u32 = std::env::var("INFERIX_PBR_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let spp = if size > 48 { 64 } else { 4 };
    let s = RenderSettings {
        max_bounces: 4,
        ..settings(size * 4 / 3, size, spp)
    };
    let Some(img) = render(kind, "pbr", &b.to_glb(), s, 0) else {
        return;
    };
    let png = crate::codec::encode_png(&img.to_srgb8());
    write(&scratch(&format!("pbr-{kind:?}")), "pbr.png", &png);
    if let Ok(out) = std::env::var("INFERIX_PBR_PNG") {
        std::fs::write(out, &png).unwrap();
    }
    assert!(img.pixels.iter().all(|v| v.is_finite() && *v >= 0.0));
    let (w, h) = (img.width, img.height);
    let floor = region(&img, 0, w, h * 7 / 8, h, 1);
    let ball = region(&img, w * 3 / 8, w * 5 / 8, h * 3 / 8, h * 5 / 8, 1);
    let sky = region(&img, 0, w, 0, h / 8, 1);
    assert!(floor > 0.05 && ball > 0.05, "floor {floor}, sphere {ball}");
    assert_eq!(sky, 0.0, "no environment: the sky is black");
}
