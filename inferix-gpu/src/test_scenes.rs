//! Small glTF scenes, written in code, that exercise one glTF feature each
//! (materials, textures, alpha, primitive modes, skinning, morphing).
//!
//! The common layout: geometry in the XY plane facing +Z, seen by a camera on
//! the +Z axis whose view exactly spans `[-1, 1]²` at z = 0 (so pixel column
//! `x` of a `w`-wide frame sees u = (x + 0.5) / w of a unit-UV quad).

use serde_json::{json, Value};

use crate::builder::GltfBuilder;

/// Distance of the test camera from the z = 0 plane.
pub(crate) const CAM_DIST: f32 = 4.0;

/// An RGBA8 PNG of `w` x `h` texels given row by row.
pub(crate) fn png_rgba(w: u32, h: u32, texels: &[[u8; 4]]) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba(texels[(y * w + x) as usize]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Sampler wrap mode codes.
pub(crate) const REPEAT: u32 = 10497;
pub(crate) const CLAMP: u32 = 33071;
pub(crate) const MIRROR: u32 = 33648;
/// Filter codes.
pub(crate) const NEAREST: u32 = 9728;
pub(crate) const LINEAR: u32 = 9729;

/// Adds a texture of the given texels with one sampler; returns its index.
pub(crate) fn texture(
    b: &mut GltfBuilder,
    w: u32,
    h: u32,
    texels: &[[u8; 4]],
    filter: u32,
    wrap: u32,
) -> usize {
    let img = b.image(&png_rgba(w, h, texels), "image/png");
    let s = b.raw_item(
        "samplers",
        json!({ "magFilter": filter, "minFilter": filter, "wrapS": wrap, "wrapT": wrap }),
    );
    b.raw_item("textures", json!({ "source": img, "sampler": s }))
}

/// A quad spanning `[x0, x1] x [y0, y1]` at depth `z`, facing +Z, with
/// `uv_scale` times the unit UVs (u along +x, v down the image, i.e. along −y).
pub(crate) fn quad_attrs(
    b: &mut GltfBuilder,
    rect: [f32; 4],
    z: f32,
    uv_scale: f32,
) -> (Value, usize) {
    let [x0, x1, y0, y1] = rect;
    let p = [x0, y0, z, x1, y0, z, x0, y1, z, x1, y1, z];
    let n = [0.0, 0.0, 1.0].repeat(4);
    let s = uv_scale;
    let uv = [0.0, s, s, s, 0.0, 0.0, s, 0.0];
    let attrs = json!({
        "POSITION": b.accessor_f32(&p, 3),
        "NORMAL": b.accessor_f32(&n, 3),
        "TEXCOORD_0": b.accessor_f32(&uv, 2),
    });
    let idx = b.accessor_indices(&[0, 1, 2, 2, 1, 3]);
    (attrs, idx)
}

/// A one-primitive mesh of a quad (see [`quad_attrs`]) with `material`.
pub(crate) fn quad(b: &mut GltfBuilder, rect: [f32; 4], z: f32, material: usize) -> usize {
    let (attrs, idx) = quad_attrs(b, rect, z, 1.0);
    b.mesh_json(
        json!({ "primitives": [{ "attributes": attrs, "indices": idx, "material": material }] }),
    )
}

/// Places `mesh` at the origin and the test camera (and returns the
/// camera's node).
pub(crate) fn place(b: &mut GltfBuilder, meshes: &[usize]) {
    for &m in meshes {
        b.node_json(json!({ "mesh": m }), true);
    }
    camera(b);
}

/// The test camera: on +Z, looking at the origin, spanning [-1, 1]².
pub(crate) fn camera(b: &mut GltfBuilder) {
    let yfov = 2.0 * (1.0f32 / CAM_DIST).atan();
    let cam = b.camera(yfov);
    b.node_json(
        json!({ "camera": cam, "translation": [0.0, 0.0, CAM_DIST] }),
        true,
    );
}

/// A directional light shining along `dir` (normalised here).
pub(crate) fn sun(b: &mut GltfBuilder, dir: [f32; 3], lux: f32) {
    let l = b.directional_light([1.0; 3], lux);
    // Rotate −Z onto `dir`: axis = −Z × dir, angle = acos(−dir.z).
    let len = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
    let d = dir.map(|c| c / len);
    let axis = [d[1], -d[0], 0.0];
    let al = (axis[0] * axis[0] + axis[1] * axis[1]).sqrt();
    let rot = if al < 1e-6 {
        if d[2] < 0.0 {
            [0.0, 0.0, 0.0, 1.0]
        } else {
            [0.0, 1.0, 0.0, 0.0]
        }
    } else {
        crate::math::quat_axis_angle([axis[0] / al, axis[1] / al, 0.0], (-d[2]).acos())
    };
    b.node_json(
        json!({ "rotation": rot, "extensions": { "KHR_lights_punctual": { "light": l } } }),
        true,
    );
}

/// A Lambertian material (`KHR_materials_specular` 0) of colour `rgb` with
/// extra top-level fields `extra` (textures, alpha mode, ...).
pub(crate) fn lambert(b: &mut GltfBuilder, rgb: [f32; 3], extra: Value) -> usize {
    let mut m = json!({
        "pbrMetallicRoughness": {
            "baseColorFactor": [rgb[0], rgb[1], rgb[2], 1.0],
            "metallicFactor": 0.0,
            "roughnessFactor": 1.0
        },
        "extensions": { "KHR_materials_specular": { "specularFactor": 0.0 } }
    });
    merge(&mut m, extra);
    b.material_json(m)
}

/// A material that only emits `rgb` (times an optional emissive texture in
/// `extra`).
pub(crate) fn emitter(b: &mut GltfBuilder, rgb: [f32; 3], extra: Value) -> usize {
    let mut m = json!({
        "pbrMetallicRoughness": { "baseColorFactor": [0.0, 0.0, 0.0, 1.0], "metallicFactor": 0.0 },
        "emissiveFactor": rgb,
    });
    merge(&mut m, extra);
    b.material_json(m)
}

/// Deep-merges JSON object `extra` into `m`.
pub(crate) fn merge(m: &mut Value, extra: Value) {
    if let (Some(mo), Value::Object(eo)) = (m.as_object_mut(), extra) {
        for (k, v) in eo {
            match mo.get_mut(&k) {
                Some(old) if old.is_object() && v.is_object() => merge(old, v),
                _ => {
                    mo.insert(k, v);
                }
            }
        }
    }
}
