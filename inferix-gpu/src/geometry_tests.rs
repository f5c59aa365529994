//! Renderer tests of glTF geometry features: primitive modes, skinning and
//! morph targets, each on a small scene written in code.

use serde_json::json;

use crate::builder::GltfBuilder;
use crate::feature_tests::{region, render, settings};
use crate::math::quat_axis_angle;
use crate::test_scenes::*;
use crate::RuntimeKind;

/// One quad (facing +Z, single-sided, emissive) drawn as a triangle list,
/// a strip and a fan renders the same: same coverage, same front faces.
pub(crate) fn strips_and_fans_match_lists(kind: RuntimeKind) {
    let glb = |mode: u32, indices: &[u32]| {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({}));
        let (attrs, _) = quad_attrs(&mut b, [-0.6, 0.6, -0.4, 0.7], 0.0, 1.0);
        let idx = b.accessor_indices(indices);
        let q = b.mesh_json(json!({ "primitives": [{
            "attributes": attrs, "indices": idx, "material": m, "mode": mode
        }] }));
        place(&mut b, &[q]);
        b.to_glb()
    };
    let s = settings(16, 16, 4);
    let Some(list) = render(kind, "list", &glb(4, &[0, 1, 2, 2, 1, 3]), s.clone(), 0) else {
        return;
    };
    let strip = render(kind, "strip", &glb(5, &[0, 1, 2, 3]), s.clone(), 0).unwrap();
    let fan = render(kind, "fan", &glb(6, &[0, 1, 3, 2]), s, 0).unwrap();
    let lit = region(&list, 0, 16, 0, 16, 0);
    assert!(
        lit > 0.2 && lit < 0.8,
        "quad covers part of the frame: {lit}"
    );
    for (name, img) in [("strip", &strip), ("fan", &fan)] {
        let worst = list
            .pixels
            .iter()
            .zip(&img.pixels)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name} differs from the list by {worst}");
    }
}

/// A vertical emissive bar skinned to one joint; the joint's rotation is
/// animated from 0 to 90° about Z over one second, so at frame 24 the bar
/// lies along −X.
pub(crate) fn skinned_bar_follows_its_joint(kind: RuntimeKind) {
    let mut b = GltfBuilder::new();
    let m = emitter(&mut b, [1.0; 3], json!({ "doubleSided": true }));
    let (mut attrs, idx) = quad_attrs(&mut b, [-0.2, 0.2, 0.0, 0.9], 0.0, 1.0);
    attrs["JOINTS_0"] = json!(b.accessor_u8x4(&[[0, 0, 0, 0]; 4], false));
    attrs["WEIGHTS_0"] = json!(b.accessor_f32(&[1.0, 0.0, 0.0, 0.0].repeat(4), 4));
    let mesh = b.mesh_json(
        json!({ "primitives": [{ "attributes": attrs, "indices": idx, "material": m }] }),
    );
    // The joint sits at the origin; its inverse bind matrix is the identity
    // written out (a skin may also leave it out).
    let joint = b.node_json(json!({}), true);
    let ibm: Vec<f32> = crate::math::IDENTITY.to_vec();
    let ibm = b.accessor_f32(&ibm, 16);
    let skin = b.raw_item(
        "skins",
        json!({ "joints": [joint], "inverseBindMatrices": ibm }),
    );
    // The mesh node is moved far away: glTF ignores a skinned node's own
    // transform.
    b.node_json(
        json!({ "mesh": mesh, "skin": skin, "translation": [50.0, 0.0, 0.0] }),
        true,
    );
    camera(&mut b);
    let q1 = quat_axis_angle([0.0, 0.0, 1.0], std::f32::consts::FRAC_PI_2);
    let mut keys = vec![0.0, 0.0, 0.0, 1.0];
    keys.extend_from_slice(&q1);
    b.animate(joint, "rotation", &[0.0, 1.0], &keys);
    let glb = b.to_glb();
    let s = settings(16, 16, 2);
    let Some(rest) = render(kind, "skin", &glb, s.clone(), 0) else {
        return;
    };
    let turned = render(kind, "skin", &glb, s, 24).unwrap();
    // Above the centre (rows 1..7, column 7..9) vs left of it (columns 1..7).
    let up = |img| region(img, 7, 9, 1, 6, 0);
    let left = |img| region(img, 1, 6, 7, 9, 0);
    assert!(
        up(&rest) > 0.9 && left(&rest) < 0.01,
        "rest pose: up {} left {}",
        up(&rest),
        left(&rest)
    );
    assert!(
        up(&turned) < 0.01 && left(&turned) > 0.9,
        "turned: up {} left {}",
        up(&turned),
        left(&turned)
    );
}

/// A bar with one morph target moving it by +0.6 in x; the weight is
/// animated from 0 to 1, and a static node weight of 1 gives the same
/// shape as the animated weight at its end.
pub(crate) fn morph_target_moves_vertices(kind: RuntimeKind) {
    let glb = |animated: bool| {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({}));
        let (attrs, idx) = quad_attrs(&mut b, [-0.4, -0.2, -0.5, 0.5], 0.0, 1.0);
        let dp = b.accessor_f32(&[0.6, 0.0, 0.0].repeat(4), 3);
        let mesh = b.mesh_json(json!({
            "primitives": [{
                "attributes": attrs, "indices": idx, "material": m,
                "targets": [{ "POSITION": dp }]
            }],
            "weights": [0.0]
        }));
        let node = if animated {
            b.node_json(json!({ "mesh": mesh }), true)
        } else {
            b.node_json(json!({ "mesh": mesh, "weights": [1.0] }), true)
        };
        camera(&mut b);
        if animated {
            b.animate_raw(node, "weights", &[0.0, 1.0], &[0.0, 1.0]);
        }
        b.to_glb()
    };
    let s = settings(20, 20, 2);
    let anim = glb(true);
    let Some(start) = render(kind, "morph", &anim, s.clone(), 0) else {
        return;
    };
    let end = render(kind, "morph", &anim, s.clone(), 24).unwrap();
    let fixed = render(kind, "morph-static", &glb(false), s, 0).unwrap();
    // x in [-0.4, -0.2] is columns 6..8; moved by 0.6 it is columns 12..14.
    let at = |img, x0| region(img, x0, x0 + 2, 6, 14, 0);
    assert!(at(&start, 6) > 0.99 && at(&start, 12) < 0.01);
    assert!(at(&end, 6) < 0.01 && at(&end, 12) > 0.99);
    assert_eq!(end, fixed);
}

/// Instantiates the glTF feature tests for one runtime.
macro_rules! testgen_features {
    ($module:ident, $kind:expr) => {
        mod $module {
            use crate::extension_tests as x;
            use crate::feature_tests as f;
            use crate::geometry_tests as g;

            #[test]
            fn metallic_roughness_texture() {
                f::metallic_roughness_texture($kind);
            }
            #[test]
            fn base_color_texture_and_vertex_colors() {
                f::base_color_texture_and_vertex_colors($kind);
            }
            #[test]
            fn emissive_and_base_textures() {
                f::emissive_and_base_textures($kind);
            }
            #[test]
            fn occlusion_scales_indirect_light() {
                f::occlusion_scales_indirect_light($kind);
            }
            #[test]
            fn unlit_shows_the_base_colour() {
                f::unlit_shows_the_base_colour($kind);
            }
            #[test]
            fn normal_map_tilts_shading() {
                f::normal_map_tilts_shading($kind);
            }
            #[test]
            fn alpha_mask_cuts_out_and_shadows() {
                f::alpha_mask_cuts_out_and_shadows($kind);
            }
            #[test]
            fn alpha_blend_is_stochastic() {
                f::alpha_blend_is_stochastic($kind);
            }
            #[test]
            fn single_sided_back_faces_are_culled() {
                f::single_sided_back_faces_are_culled($kind);
            }
            #[test]
            fn texture_transform_wrap_and_filter() {
                x::texture_transform_wrap_and_filter($kind);
            }
            #[test]
            fn transmission_lets_light_through() {
                x::transmission_lets_light_through($kind);
            }
            #[test]
            fn clearcoat_adds_a_highlight() {
                x::clearcoat_adds_a_highlight($kind);
            }
            #[test]
            fn textured_pbr_scene() {
                x::textured_pbr_scene($kind);
            }
            #[test]
            fn strips_and_fans_match_lists() {
                g::strips_and_fans_match_lists($kind);
            }
            #[test]
            fn skinned_bar_follows_its_joint() {
                g::skinned_bar_follows_its_joint($kind);
            }
            #[test]
            fn morph_target_moves_vertices() {
                g::morph_target_moves_vertices($kind);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
testgen_features!(wgpu, crate::RuntimeKind::Wgpu);
#[cfg(feature = "cuda")]
testgen_features!(cuda, crate::RuntimeKind::Cuda);
#[cfg(feature = "hip")]
testgen_features!(hip, crate::RuntimeKind::Hip);

/// Parse-level checks: what is not rendered is reported, never dropped
/// silently; required extensions the tracer lacks are refused by name.
mod reported {
    use super::*;
    use crate::scene;
    use crate::tests::scratch;

    fn load(b: &GltfBuilder, name: &str) -> Result<scene::Scene, scene::SceneError> {
        let path = scratch(name).join("scene.glb");
        scene::load(&b.to_glb(), &path)
    }

    fn quad_scene(mode: u32) -> GltfBuilder {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({}));
        let (attrs, idx) = quad_attrs(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, 1.0);
        let q = b.mesh_json(json!({ "primitives": [{
            "attributes": attrs, "indices": idx, "material": m, "mode": mode
        }] }));
        place(&mut b, &[q]);
        b
    }

    #[test]
    fn points_and_lines_are_warnings() {
        for (mode, name) in [
            (0, "Points"),
            (1, "Lines"),
            (2, "LineLoop"),
            (3, "LineStrip"),
        ] {
            let s = load(&quad_scene(mode), &format!("mode{mode}")).unwrap();
            assert!(
                s.warnings.iter().any(|w| w.contains(name)),
                "{name}: {:?}",
                s.warnings
            );
            assert!(s.evaluate(0.0).unwrap().tris.is_empty());
        }
        let s = load(&quad_scene(4), "mode4").unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.evaluate(0.0).unwrap().tris.len(), 2);
    }

    #[test]
    fn unknown_extensions_are_warnings_and_required_ones_errors() {
        let mut b = quad_scene(4);
        b.use_extension("KHR_materials_sheen", false);
        b.use_extension("KHR_texture_transform", false);
        let m = b.material_json(json!({
            "extensions": { "KHR_materials_sheen": { "sheenColorFactor": [1.0, 1.0, 1.0] } }
        }));
        assert!(m > 0);
        let s = load(&b, "ext-used").unwrap();
        assert!(
            s.warnings.iter().any(|w| w.contains("KHR_materials_sheen")),
            "{:?}",
            s.warnings
        );
        assert!(!s
            .warnings
            .iter()
            .any(|w| w.contains("KHR_texture_transform")));

        b.use_extension("KHR_draco_mesh_compression", true);
        let e = load(&b, "ext-required").unwrap_err();
        assert!(
            e.0.contains("requires") && e.0.contains("KHR_draco_mesh_compression"),
            "{}",
            e.0
        );
        // A supported extension may be required.
        let mut ok = quad_scene(4);
        ok.use_extension("KHR_texture_transform", true);
        assert!(load(&ok, "ext-required-ok").is_ok());
    }

    #[test]
    fn materials_read_every_slot_and_extension() {
        let mut b = quad_scene(4);
        let t = texture(&mut b, 1, 1, &[[255; 4]], NEAREST, MIRROR);
        b.use_extension("KHR_materials_clearcoat", false);
        b.use_extension("KHR_materials_transmission", false);
        b.use_extension("KHR_materials_ior", false);
        let m = b.material_json(json!({
            "pbrMetallicRoughness": {
                "baseColorFactor": [0.5, 0.5, 0.5, 0.25],
                "baseColorTexture": { "index": t, "texCoord": 1 },
                "metallicRoughnessTexture": { "index": t,
                    "extensions": { "KHR_texture_transform": { "offset": [0.5, 0.0], "scale": [2.0, 2.0] } } }
            },
            "normalTexture": { "index": t, "scale": 0.5,
                "extensions": { "KHR_texture_transform": { "offset": [0.25, 0.5], "texCoord": 1 } } },
            "occlusionTexture": { "index": t, "strength": 0.25 },
            "emissiveTexture": { "index": t },
            "alphaMode": "MASK", "alphaCutoff": 0.3, "doubleSided": true,
            "extensions": {
                "KHR_materials_clearcoat": { "clearcoatFactor": 0.7, "clearcoatRoughnessFactor": 0.2 },
                "KHR_materials_transmission": { "transmissionFactor": 0.9 },
                "KHR_materials_ior": { "ior": 1.33 }
            }
        }));
        let s = load(&b, "slots").unwrap();
        let mat = &s.materials[m];
        use crate::material::{AlphaMode, Wrap};
        assert_eq!(mat.alpha_mode, AlphaMode::Mask);
        assert_eq!((mat.alpha, mat.alpha_cutoff), (0.25, 0.3));
        assert!(mat.double_sided);
        assert!(mat.slots.iter().all(Option::is_some));
        let base = mat.slots[0].unwrap();
        assert_eq!(
            (base.tex_coord, base.wrap_s, base.nearest),
            (1, Wrap::Mirror, true)
        );
        assert_eq!(
            mat.slots[1].unwrap().transform,
            [2.0, 0.0, 0.5, 0.0, 2.0, 0.0]
        );
        assert_eq!((mat.normal_scale, mat.occlusion_strength), (0.5, 0.25));
        let normal = mat.slots[2].unwrap();
        assert_eq!(normal.transform, [1.0, 0.0, 0.25, 0.0, 1.0, 0.5]);
        assert_eq!(normal.tex_coord, 1);
        assert_eq!((mat.clearcoat, mat.clearcoat_roughness), (0.7, 0.2));
        assert_eq!((mat.transmission, mat.ior), (0.9, 1.33));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    /// A morph target stored as a sparse accessor (no buffer view: zeros,
    /// then two substituted vertices) moves only those vertices.
    #[test]
    fn sparse_morph_target_moves_listed_vertices() {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({}));
        let (attrs, idx) = quad_attrs(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, 1.0);
        let iv = b.buffer_view(
            &[1u16, 3u16]
                .iter()
                .flat_map(|i| i.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let vv = b.buffer_view(
            &[0.0f32, 0.0, 2.0, 0.0, 0.0, 3.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let dp = b.accessor_json(json!({
            "componentType": 5126, "count": 4, "type": "VEC3",
            "min": [0.0, 0.0, 0.0], "max": [0.0, 0.0, 3.0],
            "sparse": {
                "count": 2,
                "indices": { "bufferView": iv, "componentType": 5123 },
                "values": { "bufferView": vv }
            }
        }));
        let mesh = b.mesh_json(json!({
            "primitives": [{ "attributes": attrs, "indices": idx, "material": m,
                "targets": [{ "POSITION": dp }] }],
            "weights": [1.0]
        }));
        b.node_json(json!({ "mesh": mesh }), true);
        let s = load(&b, "sparse").unwrap();
        let g = s.evaluate(0.0).unwrap();
        // Triangles [0, 1, 2] and [2, 1, 3]: vertex 1 moved by 2, vertex 3 by 3.
        assert_eq!(g.tris[0].map(|p| p[2]), [0.0, 2.0, 0.0]);
        assert_eq!(g.tris[1].map(|p| p[2]), [0.0, 2.0, 3.0]);
        // A sparse index past the end is an error, not a panic.
        let mut bad = b.json();
        bad["accessors"][dp]["sparse"]["count"] = json!(5);
        let dir = scratch("sparse-bad");
        std::fs::write(dir.join("scene.bin"), b.bin()).unwrap();
        bad["buffers"][0]["uri"] = json!("scene.bin");
        let path = dir.join("scene.gltf");
        let bytes = serde_json::to_vec(&bad).unwrap();
        assert!(scene::load(&bytes, &path).is_err());
    }

    /// KHR_mesh_quantization (commonly required by optimised assets):
    /// integer positions and normalised byte normals load as floats.
    #[test]
    fn quantized_attributes_load() {
        let mut b = GltfBuilder::new();
        let m = emitter(&mut b, [1.0; 3], json!({}));
        let pos: Vec<u8> = [[-2i16, -3, 0, 0], [4, -3, 0, 0], [-2, 5, 0, 0]]
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let pv = b.buffer_view_strided(&pos, 8);
        let pa = b.accessor_json(json!({
            "bufferView": pv, "byteOffset": 0, "componentType": 5122, "count": 3, "type": "VEC3",
            "min": [-2, -3, 0], "max": [4, 5, 0]
        }));
        // 3 x (i8 x 3 + padding) normals, normalised: (0, 0, 1).
        let nv = b.buffer_view_strided(&[0, 0, 127, 0, 0, 0, 127, 0, 0, 0, 127, 0], 4);
        let na = b.accessor_json(json!({
            "bufferView": nv, "componentType": 5120, "normalized": true, "count": 3, "type": "VEC3"
        }));
        let mesh = b.mesh_json(json!({ "primitives": [{
            "attributes": { "POSITION": pa, "NORMAL": na }, "material": m
        }] }));
        b.node_json(json!({ "mesh": mesh }), true);
        b.use_extension("KHR_mesh_quantization", true);
        let s = load(&b, "quantized").unwrap();
        let g = s.evaluate(0.0).unwrap();
        assert_eq!(
            g.tris,
            vec![[[-2.0, -3.0, 0.0], [4.0, -3.0, 0.0], [-2.0, 5.0, 0.0]]]
        );
        assert_eq!(g.verts[0].normal, [0.0, 0.0, 1.0]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    /// A file's TANGENT attribute is used as given (rotated with its node),
    /// and morph NORMAL offsets turn the normals.
    #[test]
    fn file_tangents_and_morph_normals() {
        let mut b = GltfBuilder::new();
        let nt = texture(&mut b, 1, 1, &[[128, 128, 255, 255]], NEAREST, REPEAT);
        let m = lambert(
            &mut b,
            [1.0; 3],
            json!({ "normalTexture": { "index": nt } }),
        );
        let (mut attrs, idx) = quad_attrs(&mut b, [-1.0, 1.0, -1.0, 1.0], 0.0, 1.0);
        attrs["TANGENT"] = json!(b.accessor_f32(&[0.0, 1.0, 0.0, -1.0].repeat(4), 4));
        let dn = b.accessor_f32(&[1.0, 0.0, -1.0].repeat(4), 3);
        let mesh = b.mesh_json(json!({
            "primitives": [{ "attributes": attrs, "indices": idx, "material": m,
                "targets": [{ "NORMAL": dn }] }],
            "weights": [1.0]
        }));
        let quarter = crate::math::quat_axis_angle([0.0, 0.0, 1.0], std::f32::consts::FRAC_PI_2);
        b.node_json(json!({ "mesh": mesh, "rotation": quarter }), true);
        let s = load(&b, "tangents").unwrap();
        let g = s.evaluate(0.0).unwrap();
        let v = g.verts[0];
        // +Y rotated a quarter turn about Z is −X; the handedness is kept.
        assert!(
            (v.tangent[0] + 1.0).abs() < 1e-6 && v.tangent[1].abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(v.tangent[3], -1.0);
        // (0, 0, 1) + (1, 0, −1) = +X, rotated: +Y.
        assert!(
            v.normal[0].abs() < 1e-6 && (v.normal[1] - 1.0).abs() < 1e-6,
            "{v:?}"
        );
    }
}
