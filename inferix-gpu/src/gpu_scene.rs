//! Flattening a frame's geometry into the kernel's two data buffers.
//!
//! Sections, in order, each starting at the offset stored in its `up` slot
//! (record sizes in [`crate::kernel`]):
//!
//! | buffer  | section  | per record                                         |
//! |---------|----------|----------------------------------------------------|
//! | `fdata` | `F_NODE` | BVH node bounds (`NODE_F`)                          |
//! | `udata` | `U_NODE` | BVH node child/first triangle, count, axis (`NODE_U`) |
//! | `fdata` | `F_TRI`  | triangle v0, e1, e2 in BVH order (`TRI_F`)          |
//! | `fdata` | `F_ATTR` | triangle light-selection pmf (`ATTR_F`)             |
//! | `fdata` | `F_VERT` | vertex normal, tangent, UV0, UV1, colour (`VERT_F`) |
//! | `udata` | `U_TRI`  | material + flags, three vertex indices (`TRI_U`)    |
//! | `udata` | `U_TEX`  | RGBA8 texels of every texture, one `u32` each       |
//! | `fdata` | `F_MAT`  | material factors and slot UV transforms (`MAT_F`)   |
//! | `udata` | `U_MAT`  | material flags and texture slots (`MAT_U`)          |
//! | `fdata` | `F_LIGHT`| punctual lights (`LIGHT_F`)                         |
//! | `udata` | `U_EMIT` | emissive triangles sampled as lights                |
//! | `fdata` | `F_CDF`  | light selection CDF (punctual, then emissive)       |
//! | `fdata` | `F_LUT`  | sRGB 8-bit to linear table (256 entries)            |

use crate::bvh;
use crate::camera::{Camera, Projection};
use crate::kernel::{
    fp, mf, up, ATTR_F, LIGHT_F, MAT_CAMERA_ONLY, MAT_F, MAT_U, NODE_F, NODE_U, TRI_ALPHA,
    TRI_CULL, TRI_F, TRI_U, VERT_F,
};
use crate::material::{Material, TexRef, SLOTS, SLOT_BASE, SLOT_EMISSIVE};
use crate::math;
use crate::scene::{FrameGeometry, LightKind, Scene};

/// Host copy of everything one frame's kernel launches read.
#[derive(Debug, Clone)]
pub(crate) struct GpuScene {
    pub(crate) fdata: Vec<f32>,
    pub(crate) udata: Vec<u32>,
    /// `up` template (launch-specific slots are filled per launch).
    pub(crate) up: Vec<u32>,
    /// `fp` without the camera, aspect ratio and environment share (filled
    /// per launch).
    pub(crate) fp: Vec<f32>,
    /// The camera the file names, if any.
    pub(crate) camera: Option<Camera>,
    /// Summed sampling power of the scene's lights and emissive triangles:
    /// zero when there is nothing worth sampling.
    pub(crate) light_power: f64,
    /// The scene gives light of its own: sampled lights, or surfaces whose
    /// emission comes from a texture (a screen, a sign). Without either it
    /// is lit by the default studio. Unlit materials (the watermark patches
    /// among them) do not count: they are seen, they do not light.
    pub(crate) self_lit: bool,
    /// Diagonal of the geometry's bounds (scene scale for light power).
    pub(crate) extent: f32,
}

fn srgb_to_linear(b: u8) -> f32 {
    inferix_core::image::srgb8_to_linear(b)
}

/// Builds the buffers: BVH, triangles, attributes, materials, textures, lights.
pub(crate) fn flatten(scene: &Scene, g: &FrameGeometry) -> GpuScene {
    let bvh = bvh::build(&g.tris);
    let n = g.tris.len();
    let mut fdata: Vec<f32> = Vec::new();
    let mut udata: Vec<u32> = Vec::new();
    let mut upv = vec![0u32; up::LEN];

    // Scene bounds for directional-light and environment power. Surfaces
    // only the camera sees (watermark patches) light nothing and are left
    // out, so a watermarked copy samples its lights as the clean scene does.
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    let camera_only = |i: usize| {
        scene
            .materials
            .get(g.material[i] as usize)
            .is_some_and(|m| m.camera_only)
    };
    let mut bounded = 0;
    for (i, t) in g.tris.iter().enumerate() {
        if camera_only(i) {
            continue;
        }
        bounded += 1;
        for p in t {
            lo = math::vmin(lo, *p);
            hi = math::vmax(hi, *p);
        }
    }
    let extent = if bounded > 0 {
        math::length(math::sub(hi, lo)).max(1e-3)
    } else {
        1.0
    };

    upv[up::F_NODE] = fdata.len() as u32;
    upv[up::U_NODE] = udata.len() as u32;
    for node in &bvh.nodes {
        fdata.extend_from_slice(&node.min);
        fdata.extend_from_slice(&node.max);
        udata.extend_from_slice(&[node.a, node.count, node.axis]);
    }
    debug_assert_eq!(fdata.len(), bvh.nodes.len() * NODE_F);
    debug_assert_eq!(udata.len(), bvh.nodes.len() * NODE_U);

    // Emissive triangles and their power.
    // Texture-emissive surfaces (watermark patches) are seen, not sampled
    // as lights: they would only add noise to next-event estimation.
    let mat_emission = |m: u32| {
        scene
            .materials
            .get(m as usize)
            .filter(|m| !m.emission_textured() && !m.unlit)
            .map(|m| m.emissive)
            .unwrap_or([0.0; 3])
    };
    let mut light_power: Vec<f32> = Vec::new();
    for l in &g.lights {
        let lum = 0.2126 * l.def.color[0] + 0.7152 * l.def.color[1] + 0.0722 * l.def.color[2];
        let p = match l.def.kind {
            LightKind::Directional => lum * std::f32::consts::PI * extent * extent * 0.25,
            _ => lum * 4.0 * std::f32::consts::PI,
        };
        light_power.push(p.max(0.0));
    }
    let mut emissive: Vec<(u32, f32)> = Vec::new();
    for (slot, &orig) in bvh.order.iter().enumerate() {
        let e = mat_emission(g.material[orig as usize]);
        let lum = 0.2126 * e[0] + 0.7152 * e[1] + 0.0722 * e[2];
        if e.iter().any(|&c| c > 0.0) {
            let t = &g.tris[orig as usize];
            let area =
                0.5 * math::length(math::cross(math::sub(t[1], t[0]), math::sub(t[2], t[0])));
            let p = lum.max(1e-6) * area * std::f32::consts::PI;
            if p > 0.0 && p.is_finite() {
                emissive.push((slot as u32, p));
            }
        }
    }
    let total: f64 = light_power.iter().map(|&p| p as f64).sum::<f64>()
        + emissive.iter().map(|&(_, p)| p as f64).sum::<f64>();
    let textured_emitter = g.material.iter().any(|&m| {
        scene.materials.get(m as usize).is_some_and(|m| {
            m.emission_textured() && !m.unlit && m.emissive.iter().any(|&c| c > 0.0)
        })
    });
    let num_lights = g.lights.len() + emissive.len();
    let mut cdf = Vec::with_capacity(num_lights);
    let mut tri_pmf = vec![0.0f32; n];
    if total > 0.0 {
        let mut acc = 0.0f64;
        for &p in &light_power {
            acc += p as f64;
            cdf.push((acc / total) as f32);
        }
        for &(slot, p) in &emissive {
            acc += p as f64;
            cdf.push((acc / total) as f32);
            tri_pmf[slot as usize] = (p as f64 / total) as f32;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
    }

    upv[up::F_TRI] = fdata.len() as u32;
    for &orig in &bvh.order {
        let t = &g.tris[orig as usize];
        fdata.extend_from_slice(&t[0]);
        fdata.extend_from_slice(&math::sub(t[1], t[0]));
        fdata.extend_from_slice(&math::sub(t[2], t[0]));
    }
    debug_assert_eq!(fdata.len() - upv[up::F_TRI] as usize, n * TRI_F);
    upv[up::F_ATTR] = fdata.len() as u32;
    fdata.extend_from_slice(&tri_pmf);
    debug_assert_eq!(fdata.len() - upv[up::F_ATTR] as usize, n * ATTR_F);
    upv[up::F_VERT] = fdata.len() as u32;
    for v in &g.verts {
        fdata.extend_from_slice(&v.normal);
        fdata.extend_from_slice(&v.tangent);
        fdata.extend_from_slice(&v.uv[0]);
        fdata.extend_from_slice(&v.uv[1]);
        fdata.extend_from_slice(&v.color);
        fdata.push(0.0);
    }
    debug_assert_eq!(
        fdata.len() - upv[up::F_VERT] as usize,
        g.verts.len() * VERT_F
    );
    upv[up::U_TRI] = udata.len() as u32;
    for &orig in &bvh.order {
        let m = g.material[orig as usize];
        let mut rec = m;
        if let Some(mat) = scene.materials.get(m as usize) {
            if mat.alpha_tested() {
                rec |= TRI_ALPHA;
            }
            if !mat.double_sided {
                rec |= TRI_CULL;
            }
        }
        udata.push(rec);
        udata.extend_from_slice(&g.tri_verts[orig as usize]);
    }
    debug_assert_eq!(udata.len() - upv[up::U_TRI] as usize, n * TRI_U);

    // Textures first in udata so materials can point at them.
    let mut tex_offsets = Vec::new();
    upv[up::U_TEX] = udata.len() as u32;
    for t in &scene.textures {
        tex_offsets.push(udata.len() as u32);
        udata.extend_from_slice(&t.texels);
    }
    upv[up::F_MAT] = fdata.len() as u32;
    upv[up::U_MAT] = udata.len() as u32;
    for m in &scene.materials {
        let (f, u) = material_record(m, scene, &tex_offsets);
        fdata.extend_from_slice(&f);
        udata.extend_from_slice(&u);
    }
    debug_assert_eq!(
        fdata.len() - upv[up::F_MAT] as usize,
        scene.materials.len() * MAT_F
    );
    debug_assert_eq!(
        udata.len() - upv[up::U_MAT] as usize,
        scene.materials.len() * MAT_U
    );

    upv[up::F_LIGHT] = fdata.len() as u32;
    for l in &g.lights {
        let (kind, ci, co) = match l.def.kind {
            LightKind::Point => (0.0, 1.0, 0.0),
            LightKind::Spot { inner, outer } => (1.0, inner.cos(), outer.cos()),
            LightKind::Directional => (2.0, 1.0, 0.0),
        };
        let mut rec = [0.0f32; LIGHT_F];
        rec[0] = kind;
        rec[1..4].copy_from_slice(&l.position);
        rec[4..7].copy_from_slice(&l.direction);
        rec[7..10].copy_from_slice(&l.def.color);
        rec[10] = ci;
        rec[11] = co;
        rec[12] = l.def.range;
        fdata.extend_from_slice(&rec);
    }
    upv[up::U_EMIT] = udata.len() as u32;
    for &(slot, _) in &emissive {
        udata.push(slot);
    }
    upv[up::F_CDF] = fdata.len() as u32;
    fdata.extend_from_slice(&cdf);
    upv[up::F_LUT] = fdata.len() as u32;
    for b in 0..=255u8 {
        fdata.push(srgb_to_linear(b));
    }
    // Never bind empty buffers.
    fdata.push(0.0);
    udata.push(0);

    upv[up::NUM_LIGHTS] = if total > 0.0 { num_lights as u32 } else { 0 };
    upv[up::NUM_PUNCTUAL] = g.lights.len() as u32;
    upv[up::NUM_TRIS] = n as u32;

    let mut fpv = vec![0.0f32; fp::LEN];
    fpv[fp::EPS] = 1e-4;
    fpv[fp::FAR] = 1e30;
    GpuScene {
        fdata,
        udata,
        up: upv,
        fp: fpv,
        light_power: total,
        self_lit: total > 0.0 || textured_emitter,
        extent,
        camera: g.camera,
    }
}

/// Writes `cam` into the kernel's `fp` parameters.
pub(crate) fn write_camera(fpv: &mut [f32], cam: &Camera) {
    fpv[fp::CAM_POS..fp::CAM_POS + 3].copy_from_slice(&cam.position);
    fpv[fp::CAM_FWD..fp::CAM_FWD + 3].copy_from_slice(&cam.forward);
    fpv[fp::CAM_RIGHT..fp::CAM_RIGHT + 3].copy_from_slice(&cam.right);
    fpv[fp::CAM_UP..fp::CAM_UP + 3].copy_from_slice(&cam.up);
    match cam.projection {
        Projection::Perspective { yfov } => {
            fpv[fp::TAN_HALF_FOV] = (yfov * 0.5).tan();
            fpv[fp::ORTHO] = 0.0;
            fpv[fp::ORTHO_HALF_H] = 0.0;
        }
        Projection::Orthographic { half_height } => {
            fpv[fp::TAN_HALF_FOV] = 0.0;
            fpv[fp::ORTHO] = 1.0;
            fpv[fp::ORTHO_HALF_H] = half_height;
        }
    }
}

/// One material's `fdata` and `udata` records (layout in [`crate::kernel::mf`]
/// and [`MAT_U`]).
fn material_record(
    m: &Material,
    scene: &Scene,
    tex_offsets: &[u32],
) -> ([f32; MAT_F], [u32; MAT_U]) {
    let mut f = [0.0f32; MAT_F];
    f[mf::BASE..mf::BASE + 3].copy_from_slice(&m.base);
    f[mf::ALPHA] = m.alpha;
    f[mf::METALLIC] = m.metallic;
    f[mf::ROUGHNESS] = m.roughness;
    f[mf::EMISSIVE..mf::EMISSIVE + 3].copy_from_slice(&m.emissive);
    f[mf::SPECULAR] = m.specular;
    f[mf::CUTOFF] = m.alpha_cutoff;
    f[mf::NORMAL_SCALE] = m.normal_scale;
    f[mf::OCCLUSION] = m.occlusion_strength;
    f[mf::TRANSMISSION] = m.transmission;
    f[mf::IOR] = m.ior;
    f[mf::CLEARCOAT] = m.clearcoat;
    f[mf::CLEARCOAT_ROUGHNESS] = m.clearcoat_roughness;
    let mut u = [0u32; MAT_U];
    u[0] = m.alpha_mode as u32
        | if m.double_sided { 4 } else { 0 }
        | if m.unlit { 8 } else { 0 }
        | if m.camera_only { MAT_CAMERA_ONLY } else { 0 };
    for (slot, r) in m.slots.iter().enumerate().take(SLOTS) {
        let fo = mf::SLOT + slot * 6;
        f[fo..fo + 6].copy_from_slice(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let Some(r) = r else { continue };
        let Some(tex) = scene.textures.get(r.texture) else {
            continue;
        };
        f[fo..fo + 6].copy_from_slice(&r.transform);
        let uo = 1 + slot * 4;
        u[uo..uo + 4].copy_from_slice(&[
            tex_offsets[r.texture],
            tex.width,
            tex.height,
            slot_info(r, slot),
        ]);
    }
    (f, u)
}

/// Bit field of a texture slot: bit 0 present, bits 1-2 and 3-4 the S and T
/// wrap modes, bit 5 TEXCOORD_1, bit 6 nearest filtering, bit 7 sRGB texels.
fn slot_info(r: &TexRef, slot: usize) -> u32 {
    let srgb = slot == SLOT_BASE || slot == SLOT_EMISSIVE;
    1 | (r.wrap_s as u32) << 1
        | (r.wrap_t as u32) << 3
        | u32::from(r.tex_coord == 1) << 5
        | u32::from(r.nearest) << 6
        | u32::from(srgb) << 7
}
