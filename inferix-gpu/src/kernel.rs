//! The path-tracing kernel, written in cubecl.
//!
//! All scene data lives in two flat buffers (`fdata`: `f32`, `udata`: `u32`)
//! whose section offsets are passed in `up` (see [`crate::gpu_scene`]); this
//! keeps the number of storage bindings small enough for every backend.
//!
//! Each unit renders one pixel of the launch rectangle. Its sample values
//! are Owen-scrambled Sobol points keyed by a hash of (seed, frame, pixel
//! x, pixel y) and indexed by the sample number (see [`draw2`]), so a
//! pixel's value does not depend on tiling, launch order or crop offsets,
//! and its samples are stratified, not independent.

#![allow(clippy::manual_range_contains)]

use cubecl::prelude::*;

mod bsdf;
mod shading;

use bsdf::*;
use shading::*;

/// `up` (u32 parameters) slots.
pub(crate) mod up {
    pub(crate) const FULL_W: usize = 0;
    pub(crate) const FULL_H: usize = 1;
    pub(crate) const OFF_X: usize = 2;
    pub(crate) const OFF_Y: usize = 3;
    pub(crate) const CROP_W: usize = 4;
    pub(crate) const CROP_H: usize = 5;
    pub(crate) const SEED_LO: usize = 6;
    pub(crate) const SEED_HI: usize = 7;
    pub(crate) const FRAME: usize = 8;
    pub(crate) const SAMPLE_START: usize = 9;
    pub(crate) const SAMPLE_COUNT: usize = 10;
    pub(crate) const MAX_BOUNCES: usize = 11;
    pub(crate) const NUM_LIGHTS: usize = 12;
    pub(crate) const NUM_PUNCTUAL: usize = 13;
    pub(crate) const NUM_TRIS: usize = 14;
    pub(crate) const F_NODE: usize = 15;
    pub(crate) const F_TRI: usize = 16;
    pub(crate) const F_ATTR: usize = 17;
    pub(crate) const F_MAT: usize = 18;
    pub(crate) const F_LIGHT: usize = 19;
    pub(crate) const F_CDF: usize = 20;
    pub(crate) const F_LUT: usize = 21;
    pub(crate) const U_NODE: usize = 22;
    pub(crate) const U_TRI: usize = 23;
    pub(crate) const U_MAT: usize = 24;
    pub(crate) const U_TEX: usize = 25;
    pub(crate) const U_EMIT: usize = 26;
    pub(crate) const F_VERT: usize = 27;
    /// Environment map size; 0 wide when the scene has none.
    pub(crate) const ENV_W: usize = 28;
    pub(crate) const ENV_H: usize = 29;
    /// What camera rays that miss see: 0 the background colour, 1 the
    /// environment, 2 nothing (transparent: alpha 0).
    pub(crate) const BG_MODE: usize = 30;
    /// 1: Owen-scrambled Sobol samples per pixel; 0: independent random.
    pub(crate) const SAMPLER: usize = 31;
    pub(crate) const LEN: usize = 32;
}

/// `fp` (f32 parameters) slots.
pub(crate) mod fp {
    pub(crate) const CAM_POS: usize = 0;
    pub(crate) const CAM_FWD: usize = 3;
    pub(crate) const CAM_RIGHT: usize = 6;
    pub(crate) const CAM_UP: usize = 9;
    pub(crate) const TAN_HALF_FOV: usize = 12;
    pub(crate) const ASPECT: usize = 13;
    pub(crate) const EPS: usize = 14;
    pub(crate) const FAR: usize = 15;
    pub(crate) const BACKGROUND: usize = 16;
    /// Probability that next-event estimation samples the environment
    /// rather than the scene's lights.
    pub(crate) const ENV_PMF: usize = 19;
    /// 1 for an orthographic camera (parallel rays along `CAM_FWD`), else 0.
    pub(crate) const ORTHO: usize = 20;
    /// Half the orthographic view's height in scene units.
    pub(crate) const ORTHO_HALF_H: usize = 21;
    pub(crate) const LEN: usize = 22;
}

/// Floats per BVH node in `fdata` (bounds min, max).
pub(crate) const NODE_F: usize = 6;
/// u32s per BVH node in `udata` (left child or first triangle, count, axis).
pub(crate) const NODE_U: usize = 3;
/// Floats per triangle in `fdata` (v0, e1, e2).
pub(crate) const TRI_F: usize = 9;
/// Floats per triangle attribute record (light pmf).
pub(crate) const ATTR_F: usize = 1;
/// u32s per triangle in `udata`: material index with the flags below, then
/// the indices of its three vertices in the vertex section.
pub(crate) const TRI_U: usize = 4;
/// Triangle flag: the material is MASK or BLEND (rays test its alpha).
pub(crate) const TRI_ALPHA: u32 = 1 << 31;
/// Triangle flag: single-sided material (back faces are culled).
pub(crate) const TRI_CULL: u32 = 1 << 30;
/// Floats per vertex in `fdata`: normal (3), tangent + handedness (4),
/// TEXCOORD_0 (2), TEXCOORD_1 (2), COLOR_0 (4), padding (1).
pub(crate) const VERT_F: usize = 16;
/// Material record offsets in `fdata`.
pub(crate) mod mf {
    /// Base colour rgb.
    pub(crate) const BASE: usize = 0;
    pub(crate) const ALPHA: usize = 3;
    pub(crate) const METALLIC: usize = 4;
    pub(crate) const ROUGHNESS: usize = 5;
    /// Emission rgb (factor times strength).
    pub(crate) const EMISSIVE: usize = 6;
    pub(crate) const SPECULAR: usize = 9;
    pub(crate) const CUTOFF: usize = 10;
    pub(crate) const NORMAL_SCALE: usize = 11;
    pub(crate) const OCCLUSION: usize = 12;
    pub(crate) const TRANSMISSION: usize = 13;
    pub(crate) const IOR: usize = 14;
    pub(crate) const CLEARCOAT: usize = 15;
    pub(crate) const CLEARCOAT_ROUGHNESS: usize = 16;
    /// Per texture slot (`crate::material::SLOT_*`), 6 floats: the 2x3 UV
    /// transform.
    pub(crate) const SLOT: usize = 18;
}
// The kernel addresses texture slots by these numbers.
const _: () = assert!(
    crate::material::SLOT_BASE == 0
        && crate::material::SLOT_MR == 1
        && crate::material::SLOT_NORMAL == 2
        && crate::material::SLOT_OCCLUSION == 3
        && crate::material::SLOT_EMISSIVE == 4
);
/// Floats per material in `fdata` (see [`mf`]).
pub(crate) const MAT_F: usize = mf::SLOT + 6 * crate::material::SLOTS;
/// u32s per material in `udata`: flags (bits 0-1 alpha mode, bit 2
/// double-sided, bit 3 unlit), then per texture slot: texel offset in `udata`, width,
/// height, info bits (see `gpu_scene::slot_info`; 0 width = no texture).
pub(crate) const MAT_U: usize = 1 + 4 * crate::material::SLOTS;
/// Floats per punctual light (kind, pos, dir, colour, cos inner, cos outer, range).
pub(crate) const LIGHT_F: usize = 16;
/// Traversal stack depth; the BVH builder keeps the tree shallower.
pub(crate) const STACK: usize = 64;

const PI: f32 = core::f32::consts::PI;

/// A 3-vector in the kernel.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct V3 {
    x: f32,
    y: f32,
    z: f32,
}

#[cube]
fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

#[cube]
fn vs(s: f32) -> V3 {
    V3 { x: s, y: s, z: s }
}

#[cube]
fn add(a: V3, b: V3) -> V3 {
    V3 {
        x: a.x + b.x,
        y: a.y + b.y,
        z: a.z + b.z,
    }
}

#[cube]
fn sub(a: V3, b: V3) -> V3 {
    V3 {
        x: a.x - b.x,
        y: a.y - b.y,
        z: a.z - b.z,
    }
}

#[cube]
fn mul(a: V3, b: V3) -> V3 {
    V3 {
        x: a.x * b.x,
        y: a.y * b.y,
        z: a.z * b.z,
    }
}

#[cube]
fn scale(a: V3, s: f32) -> V3 {
    V3 {
        x: a.x * s,
        y: a.y * s,
        z: a.z * s,
    }
}

#[cube]
fn dot(a: V3, b: V3) -> f32 {
    a.x * b.x + a.y * b.y + a.z * b.z
}

#[cube]
fn cross(a: V3, b: V3) -> V3 {
    V3 {
        x: a.y * b.z - a.z * b.y,
        y: a.z * b.x - a.x * b.z,
        z: a.x * b.y - a.y * b.x,
    }
}

#[cube]
fn length(a: V3) -> f32 {
    f32::sqrt(dot(a, a))
}

#[cube]
fn normalize(a: V3) -> V3 {
    let l = length(a);
    let inv = select(l > 0.0, 1.0 / l, 0.0);
    scale(a, inv)
}

#[cube]
fn set3(a: &mut V3, b: V3) {
    a.x = b.x;
    a.y = b.y;
    a.z = b.z;
}

#[cube]
fn vselect(c: bool, a: V3, b: V3) -> V3 {
    V3 {
        x: select(c, a.x, b.x),
        y: select(c, a.y, b.y),
        z: select(c, a.z, b.z),
    }
}

#[cube]
fn max_comp(a: V3) -> f32 {
    f32::max(a.x, f32::max(a.y, a.z))
}

#[cube]
fn luminance(a: V3) -> f32 {
    0.2126 * a.x + 0.7152 * a.y + 0.0722 * a.z
}

#[cube]
fn load3(data: &Array<f32>, i: usize) -> V3 {
    V3 {
        x: data[i],
        y: data[i + 1],
        z: data[i + 2],
    }
}

#[cube]
fn pick(a: V3, axis: u32) -> f32 {
    select(axis == 0, a.x, select(axis == 1, a.y, a.z))
}

/// PCG-style integer hash (same as [`crate::rng::pcg_hash`]).
#[cube]
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u32 + 2891336453u32;
    let word = ((state >> ((state >> 28u32) + 4u32)) ^ state) * 277803737u32;
    (word >> 22u32) ^ word
}

/// Next uniform float in [0, 1) from a 32-bit state.
#[cube]
fn rnd(state: &mut u32) -> f32 {
    let s = *state * 747796405u32 + 2891336453u32;
    *state = s;
    let word = ((s >> ((s >> 28u32) + 4u32)) ^ s) * 277803737u32;
    let r = (word >> 22u32) ^ word;
    f32::cast_from(r >> 8u32) * (1.0 / 16777216.0)
}

/// Two sample values in [0, 1).
#[derive(CubeType, Clone, Copy)]
pub(crate) struct P2 {
    a: f32,
    b: f32,
}

/// Reverses the 32 bits of `v` (with shifts every backend has).
#[allow(clippy::manual_rotate)]
#[cube]
fn reverse32(v: u32) -> u32 {
    let mut x = v;
    x = ((x >> 1u32) & 0x5555_5555u32) | ((x & 0x5555_5555u32) << 1u32);
    x = ((x >> 2u32) & 0x3333_3333u32) | ((x & 0x3333_3333u32) << 2u32);
    x = ((x >> 4u32) & 0x0F0F_0F0Fu32) | ((x & 0x0F0F_0F0Fu32) << 4u32);
    x = ((x >> 8u32) & 0x00FF_00FFu32) | ((x & 0x00FF_00FFu32) << 8u32);
    (x >> 16u32) | (x << 16u32)
}

/// Nested uniform (Owen) scrambling of the bits of `v`, keyed by `seed`:
/// the Laine–Karras permutation on reversed bits (Burley 2020).
#[cube]
fn owen(v: u32, seed: u32) -> u32 {
    let mut x = reverse32(v);
    x += seed;
    x ^= x * 0x6C50_B47Cu32;
    x ^= x * 0xB82F_1E52u32;
    x ^= x * 0xC7AF_E638u32;
    x ^= x * 0x8D22_F6E6u32;
    reverse32(x)
}

/// The first two dimensions of the Sobol sequence at `index`, as 32-bit
/// fractions: van der Corput, and the dimension whose direction numbers
/// are v_k = v_{k-1} ^ (v_{k-1} >> 1).
#[cube]
fn sobol_y(index: u32) -> u32 {
    let mut v: u32 = 0x8000_0000u32;
    let mut y: u32 = 0;
    for bit in 0..32u32 {
        if ((index >> bit) & 1u32) != 0u32 {
            y ^= v;
        }
        v ^= v >> 1u32;
    }
    y
}

#[cube]
fn unit(bits: u32) -> f32 {
    f32::cast_from(bits >> 8u32) * (1.0 / 16777216.0)
}

/// Two sample values for dimension pair `group` of sample `index` of the
/// pixel keyed `key`: an Owen-scrambled 2D Sobol point whose index is
/// itself shuffled per pair (Burley 2020), so pairs are decorrelated while
/// each stays stratified over the pixel's samples. With `low_discrepancy`
/// off, two independent uniform numbers from `rng` (the former sampler,
/// kept for comparisons).
#[allow(unused_assignments)]
#[cube]
fn draw2(rng: &mut u32, key: u32, index: u32, group: u32, low_discrepancy: bool) -> P2 {
    let mut a: f32 = 0.0;
    let mut b: f32 = 0.0;
    if low_discrepancy {
        let gk = pcg(key ^ pcg(group + 0x2545_F491u32));
        let shuffled = owen(index, gk);
        a = unit(owen(reverse32(shuffled), pcg(gk ^ 0xA511_E9B3u32)));
        b = unit(owen(sobol_y(shuffled), pcg(gk ^ 0x63D8_3595u32)));
    } else {
        a = rnd(rng);
        b = rnd(rng);
    }
    P2 { a, b }
}

/// Result of a closest-hit query.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Hit {
    t: f32,
    tri: u32,
    u: f32,
    v: f32,
}

#[cube]
fn safe_inv(d: f32) -> f32 {
    let tiny = select(d >= 0.0, 1.0e-20f32, -1.0e-20f32);
    let dd = select(f32::abs(d) < 1.0e-20, tiny, d);
    1.0 / dd
}

/// Walks the BVH for hits with `tmin` < t < `tmax`, treating every
/// triangle as opaque. With `any_hit` the walk stops at the first hit found;
/// with `cull`, back faces of single-sided materials are skipped.
#[allow(clippy::too_many_arguments)]
#[cube]
fn traverse(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    o: V3,
    d: V3,
    tmin: f32,
    tmax: f32,
    any_hit: bool,
    cull: bool,
) -> Hit {
    let u_tri = up[up::U_TRI] as usize;
    let f_node = up[up::F_NODE] as usize;
    let f_tri = up[up::F_TRI] as usize;
    let u_node = up[up::U_NODE] as usize;
    let num_tris = up[up::NUM_TRIS];
    let inv = v3(safe_inv(d.x), safe_inv(d.y), safe_inv(d.z));
    let mut best_t: f32 = tmax;
    let mut best_tri: u32 = 0xFFFF_FFFFu32;
    let mut best_u: f32 = 0.0;
    let mut best_v: f32 = 0.0;
    let mut stack = Array::<u32>::new(STACK);
    stack[0] = 0;
    let mut sp: u32 = 0;
    if num_tris > 0 {
        sp = 1;
    }
    while sp > 0 {
        sp -= 1u32;
        let node = stack[sp as usize] as usize;
        let bmin = load3(fdata, f_node + node * NODE_F);
        let bmax = load3(fdata, f_node + node * NODE_F + 3);
        let tx0 = (bmin.x - o.x) * inv.x;
        let tx1 = (bmax.x - o.x) * inv.x;
        let ty0 = (bmin.y - o.y) * inv.y;
        let ty1 = (bmax.y - o.y) * inv.y;
        let tz0 = (bmin.z - o.z) * inv.z;
        let tz1 = (bmax.z - o.z) * inv.z;
        let tnear = f32::max(
            f32::max(f32::min(tx0, tx1), f32::min(ty0, ty1)),
            f32::max(f32::min(tz0, tz1), 0.0),
        );
        let tfar = f32::min(
            f32::min(f32::max(tx0, tx1), f32::max(ty0, ty1)),
            f32::min(f32::max(tz0, tz1), best_t),
        );
        if tnear <= tfar {
            let a = udata[u_node + node * NODE_U];
            let count = udata[u_node + node * NODE_U + 1];
            if count > 0 {
                for k in 0..count {
                    let tri = (a + k) as usize;
                    let base = f_tri + tri * TRI_F;
                    let v0 = load3(fdata, base);
                    let e1 = load3(fdata, base + 3);
                    let e2 = load3(fdata, base + 6);
                    let pvec = cross(d, e2);
                    let det = dot(e1, pvec);
                    if f32::abs(det) > 1.0e-20 {
                        let inv_det = 1.0 / det;
                        let tvec = sub(o, v0);
                        let bu = dot(tvec, pvec) * inv_det;
                        if bu >= 0.0 && bu <= 1.0 {
                            let qvec = cross(tvec, e1);
                            let bv = dot(d, qvec) * inv_det;
                            if bv >= 0.0 && bu + bv <= 1.0 {
                                let t = dot(e2, qvec) * inv_det;
                                let mut keep = true;
                                if cull && det < 0.0 {
                                    keep = (udata[u_tri + tri * TRI_U] & 0x4000_0000u32) == 0u32;
                                }
                                if keep && t > tmin && t < best_t {
                                    best_t = t;
                                    best_tri = a + k;
                                    best_u = bu;
                                    best_v = bv;
                                }
                            }
                        }
                    }
                }
                if any_hit && best_tri != 0xFFFF_FFFFu32 {
                    sp = 0;
                }
            } else {
                let axis = udata[u_node + node * NODE_U + 2];
                // Push the far child first so the near child is popped first.
                if sp + 2 <= 64u32 {
                    if pick(d, axis) < 0.0 {
                        stack[sp as usize] = a;
                        stack[sp as usize + 1] = a + 1;
                    } else {
                        stack[sp as usize] = a + 1;
                        stack[sp as usize + 1] = a;
                    }
                    sp += 2u32;
                }
            }
        }
    }
    Hit {
        t: best_t,
        tri: best_tri,
        u: best_u,
        v: best_v,
    }
}

/// Closest (or, with `any_hit`, any) hit along a ray that alpha lets
/// through, as glTF materials define it:
///
/// * with `cull`, back faces of single-sided materials are skipped: glTF
///   culls them from view, so camera rays use it; every other ray sees both
///   sides, so a single-sided leaf still shadows and closed meshes stay
///   closed to light;
/// * hits on MASK materials below their cutoff are skipped, and hits on
///   BLEND materials with probability 1 − alpha, decided by a hash of `salt`
///   (drawn per ray from the sample's random state) and the triangle, so
///   the choice is deterministic per pixel and sample.
///
/// The alpha test runs outside the BVH walk (the walk is repeated past a
/// skipped hit), which keeps the walk's inner loop small: scenes without
/// MASK or BLEND materials walk once.
#[allow(clippy::too_many_arguments)]
#[cube]
fn trace(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    o: V3,
    d: V3,
    tmax: f32,
    any_hit: bool,
    cull: bool,
    salt: u32,
) -> Hit {
    let u_tri = up[up::U_TRI] as usize;
    let first = traverse(fdata, udata, up, o, d, 0.0, tmax, any_hit, cull);
    let mut ht = first.t;
    let mut htri = first.tri;
    let mut hu = first.u;
    let mut hv = first.v;
    // An any-hit walk may have found a cut-out hit before others: walk in
    // closest-hit order from the start then.
    let mut closest = !any_hit;
    let mut rounds: u32 = 0;
    let mut done =
        htri == 0xFFFF_FFFFu32 || (udata[u_tri + htri as usize * TRI_U] & 0x8000_0000u32) == 0u32;
    while !done {
        let mut tmin: f32 = 0.0;
        if closest {
            let rec = udata[u_tri + htri as usize * TRI_U];
            let mat = (rec & 0x3FFF_FFFFu32) as usize;
            let al = alpha_at(fdata, udata, up, htri as usize, hu, hv);
            let mode = udata[up[up::U_MAT] as usize + mat * MAT_U] & 3u32;
            let cutoff = fdata[up[up::F_MAT] as usize + mat * MAT_F + mf::CUTOFF];
            let xi = f32::cast_from(pcg(salt ^ pcg(htri)) >> 8u32) * (1.0 / 16777216.0);
            done = select(mode == 1u32, al >= cutoff, al > xi);
            tmin = ht;
        }
        closest = true;
        rounds += 1u32;
        if !done {
            if rounds > 64u32 {
                // Treat an absurd stack of cut-out layers as opaque.
                done = true;
            } else {
                let next = traverse(fdata, udata, up, o, d, tmin, tmax, false, cull);
                ht = next.t;
                htri = next.tri;
                hu = next.u;
                hv = next.v;
                done = htri == 0xFFFF_FFFFu32
                    || (udata[u_tri + htri as usize * TRI_U] & 0x8000_0000u32) == 0u32;
            }
        }
    }
    Hit {
        t: ht,
        tri: htri,
        u: hu,
        v: hv,
    }
}

/// Index of the environment texel direction `d` falls in (the same
/// mapping as [`crate::environment::texel_index`]).
#[cube]
fn env_index(d: V3, w: u32, h: u32) -> usize {
    let u = 0.5 + f32::atan2(d.x, -d.z) * (0.5 / PI);
    let v = f32::acos(f32::clamp(d.y, -1.0, 1.0)) * (1.0 / PI);
    let x = u32::min(u32::cast_from(f32::max(u * f32::cast_from(w), 0.0)), w - 1);
    let y = u32::min(u32::cast_from(f32::max(v * f32::cast_from(h), 0.0)), h - 1);
    (y * w + x) as usize
}

/// Environment radiance arriving from direction `d` (black without one).
#[cube]
fn env_radiance(env: &Array<f32>, up: &Array<u32>, d: V3) -> V3 {
    let w = up[up::ENV_W];
    let h = up[up::ENV_H];
    let mut r = vs(0.0);
    if w > 0 {
        let i = env_index(d, w, h) * 3;
        set3(&mut r, v3(env[i], env[i + 1], env[i + 2]));
    }
    r
}

/// Solid-angle pdf of the environment sampler for direction `d`.
#[cube]
fn env_pdf(env: &Array<f32>, up: &Array<u32>, d: V3) -> f32 {
    let w = up[up::ENV_W];
    let h = up[up::ENV_H];
    let idx = env_index(d, w, h);
    let x = idx % w as usize;
    let y = idx / w as usize;
    let marg = (w * h * 3) as usize;
    let cond = marg + h as usize + y * w as usize;
    let pm = env[marg + y] - select(y > 0, env[marg + usize::max(y, 1) - 1], 0.0);
    let pc = env[cond + x] - select(x > 0, env[cond + usize::max(x, 1) - 1], 0.0);
    let sin_t = f32::sqrt(f32::max(1.0 - d.y * d.y, 1.0e-12));
    pm * pc * f32::cast_from(w * h) / (2.0 * PI * PI * sin_t)
}

/// First index in `n` CDF entries at `base` whose value exceeds `r`.
#[cube]
fn cdf_search(data: &Array<f32>, base: usize, n: u32, r: f32) -> u32 {
    let mut lo: u32 = 0;
    let mut hi: u32 = n - 1;
    while lo < hi {
        let mid = (lo + hi) / 2;
        if data[base + mid as usize] > r {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Where `r` falls between CDF entries `i - 1` and `i`, in [0, 1).
#[cube]
fn cdf_fraction(data: &Array<f32>, base: usize, i: u32, r: f32) -> f32 {
    let prev = select(i > 0, data[base + (u32::max(i, 1) - 1) as usize], 0.0);
    let span = data[base + i as usize] - prev;
    f32::clamp((r - prev) / f32::max(span, 1.0e-20), 0.0, 0.99999994)
}

/// Result of sampling a light from a point.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct LightSample {
    wi: V3,
    dist: f32,
    /// Radiance (area) or irradiance-at-normal-incidence (punctual) divided by pdf.
    li: V3,
    /// Solid-angle pdf including the light choice; 0 for delta lights.
    pdf: f32,
    valid: bool,
}

/// Samples the environment: a texel by the luminance CDFs, then a point
/// uniform in (u, v) inside it. `share` is the probability of having
/// chosen the environment at all.
#[cube]
fn sample_env(env: &Array<f32>, up: &Array<u32>, share: f32, r1: f32, r2: f32) -> LightSample {
    let w = up[up::ENV_W];
    let h = up[up::ENV_H];
    let marg = (w * h * 3) as usize;
    let y = cdf_search(env, marg, h, r1);
    let fy = cdf_fraction(env, marg, y, r1);
    let cond = marg + h as usize + y as usize * w as usize;
    let x = cdf_search(env, cond, w, r2);
    let fx = cdf_fraction(env, cond, x, r2);
    let u = (f32::cast_from(x) + fx) / f32::cast_from(w);
    let v = (f32::cast_from(y) + fy) / f32::cast_from(h);
    let phi = (u - 0.5) * 2.0 * PI;
    let theta = v * PI;
    let st = f32::sin(theta);
    let wi = v3(st * f32::sin(phi), f32::cos(theta), -st * f32::cos(phi));
    let pdf = share * env_pdf(env, up, wi);
    let ok = pdf > 0.0 && st > 1.0e-6;
    let le = env_radiance(env, up, wi);
    LightSample {
        wi,
        dist: 1.0e30,
        li: scale(le, select(ok, 1.0 / f32::max(pdf, 1.0e-20), 0.0)),
        pdf,
        valid: ok,
    }
}

/// Samples the environment with probability `fp[ENV_PMF]`, else one of the
/// scene's lights.
#[allow(clippy::too_many_arguments, unused_assignments)]
#[cube]
fn sample_light(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    fp: &Array<f32>,
    env: &Array<f32>,
    p: V3,
    r0: f32,
    r1: f32,
    r2: f32,
) -> LightSample {
    let p_env = fp[fp::ENV_PMF];
    let mut res_wi = vs(0.0);
    let mut res_li = vs(0.0);
    let mut dist: f32 = 0.0;
    let mut pdf: f32 = 0.0;
    let mut valid = false;
    if r0 < p_env || up[up::NUM_LIGHTS] == 0 {
        let e = sample_env(env, up, p_env, r1, r2);
        set3(&mut res_wi, e.wi);
        set3(&mut res_li, e.li);
        dist = e.dist;
        pdf = e.pdf;
        valid = e.valid;
    } else {
        let rs = f32::min((r0 - p_env) / f32::max(1.0 - p_env, 1.0e-20), 0.99999994);
        let e = sample_scene_light(fdata, udata, up, p, 1.0 - p_env, rs, r1, r2);
        set3(&mut res_wi, e.wi);
        set3(&mut res_li, e.li);
        dist = e.dist;
        pdf = e.pdf;
        valid = e.valid;
    }
    LightSample {
        wi: res_wi,
        dist,
        li: res_li,
        pdf,
        valid,
    }
}

/// Samples one punctual light or emissive triangle by the light CDF;
/// `share` is the probability of sampling scene lights at all.
#[allow(clippy::too_many_arguments)]
#[cube]
fn sample_scene_light(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    p: V3,
    share: f32,
    r0: f32,
    r1: f32,
    r2: f32,
) -> LightSample {
    let n_lights = up[up::NUM_LIGHTS];
    let n_punct = up[up::NUM_PUNCTUAL];
    let cdf = up[up::F_CDF] as usize;
    // Binary search of the first cdf entry > r0.
    let mut lo: u32 = 0;
    let mut hi: u32 = n_lights - 1;
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fdata[cdf + mid as usize] > r0 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let idx = lo;
    let prev = select(idx > 0, fdata[cdf + (u32::max(idx, 1) - 1) as usize], 0.0);
    let pmf = (fdata[cdf + idx as usize] - prev) * share;
    let mut res = LightSample {
        wi: vs(0.0),
        dist: 0.0,
        li: vs(0.0),
        pdf: 0.0,
        valid: false,
    };
    let mut res_wi = vs(0.0);
    let mut res_li = vs(0.0);
    if pmf > 0.0 {
        if idx < n_punct {
            let lb = up[up::F_LIGHT] as usize + idx as usize * LIGHT_F;
            let kind = fdata[lb];
            let lpos = load3(fdata, lb + 1);
            let ldir = load3(fdata, lb + 4);
            let col = load3(fdata, lb + 7);
            let cos_inner = fdata[lb + 10];
            let cos_outer = fdata[lb + 11];
            let range = fdata[lb + 12];
            if kind > 1.5 {
                // Directional: ldir is the direction light travels.
                set3(&mut res_wi, scale(ldir, -1.0));
                res.dist = 1.0e30;
                set3(&mut res_li, scale(col, 1.0 / pmf));
                res.pdf = 0.0;
                res.valid = true;
            } else {
                let dv = sub(lpos, p);
                let d2 = f32::max(dot(dv, dv), 1.0e-12);
                let dist = f32::sqrt(d2);
                let wi = scale(dv, 1.0 / dist);
                let mut att = 1.0 / d2;
                if range > 0.0 {
                    let q = dist / range;
                    let w = f32::clamp(1.0 - q * q * q * q, 0.0, 1.0);
                    att *= w * w;
                }
                if kind > 0.5 {
                    let cd = -dot(wi, ldir);
                    let tt = f32::clamp(
                        (cd - cos_outer) / f32::max(cos_inner - cos_outer, 1.0e-4),
                        0.0,
                        1.0,
                    );
                    att *= tt * tt;
                }
                set3(&mut res_wi, wi);
                res.dist = dist;
                set3(&mut res_li, scale(col, att / pmf));
                res.pdf = 0.0;
                res.valid = att > 0.0;
            }
        } else {
            let tri = udata[up[up::U_EMIT] as usize + (idx - n_punct) as usize] as usize;
            let base_t = up[up::F_TRI] as usize + tri * TRI_F;
            let v0 = load3(fdata, base_t);
            let e1 = load3(fdata, base_t + 3);
            let e2 = load3(fdata, base_t + 6);
            let su = f32::sqrt(r1);
            let q = add(v0, add(scale(e1, su * (1.0 - r2)), scale(e2, su * r2)));
            let c = cross(e1, e2);
            let area = 0.5 * length(c);
            let nl = normalize(c);
            let dv = sub(q, p);
            let d2 = dot(dv, dv);
            let dist = f32::sqrt(d2);
            let wi = scale(dv, 1.0 / f32::max(dist, 1.0e-20));
            let cos_l = f32::abs(dot(nl, wi));
            let mat = (udata[up[up::U_TRI] as usize + tri * TRI_U] & 0x3FFF_FFFFu32) as usize;
            let le = load3(fdata, up[up::F_MAT] as usize + mat * MAT_F + mf::EMISSIVE);
            let pdf = pmf * d2 / f32::max(cos_l * area, 1.0e-20);
            let ok = cos_l > 1.0e-6 && area > 0.0 && dist > 0.0;
            set3(&mut res_wi, wi);
            res.dist = dist;
            set3(
                &mut res_li,
                scale(le, select(ok, 1.0 / f32::max(pdf, 1.0e-20), 0.0)),
            );
            res.pdf = pdf;
            res.valid = ok;
        }
    }
    LightSample {
        wi: res_wi,
        dist: res.dist,
        li: res_li,
        pdf: res.pdf,
        valid: res.valid,
    }
}

#[cube]
fn offset_point(p: V3, ng: V3, dir: V3, eps: f32) -> V3 {
    let s = select(dot(ng, dir) >= 0.0, eps, -eps);
    add(p, scale(ng, s))
}

/// One path sample's radiance; `covered` is set to 0 when the camera ray
/// sees nothing under a transparent background, else 1.
#[allow(clippy::too_many_arguments)]
#[cube]
fn radiance(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    fp: &Array<f32>,
    env: &Array<f32>,
    o0: V3,
    d0: V3,
    rng: &mut u32,
    key: u32,
    index: u32,
    covered: &mut f32,
) -> V3 {
    let max_bounces = up[up::MAX_BOUNCES];
    let ld = up[up::SAMPLER] == 1u32;
    let p_env = fp[fp::ENV_PMF];
    let have_lights = up[up::NUM_LIGHTS] > 0 || p_env > 0.0;
    let has_env = up[up::ENV_W] > 0;
    let bg_mode = up[up::BG_MODE];
    let eps_base = fp[fp::EPS];
    let far = fp[fp::FAR];
    let background = load3(fp, fp::BACKGROUND);
    let mut o = o0;
    let mut d = d0;
    let mut l = vs(0.0);
    let mut thr = vs(1.0);
    let mut prev_pdf: f32 = 0.0;
    // Occlusion maps scale indirect light only: `occ_cur` is the product of
    // the occlusion factors of the path's vertices before the current one
    // (applied to next-event estimation here), `occ_prev` the product before
    // the previous one (applied to emission found by the previous bounce).
    let mut occ_cur: f32 = 1.0;
    let mut occ_prev: f32 = 1.0;
    let mut depth: u32 = 0;
    let mut alive = true;
    while alive {
        let hit = trace(
            fdata,
            udata,
            up,
            o,
            d,
            far,
            false,
            depth == 0,
            pcg(*rng ^ 0x5BD1_E995u32),
        );
        if hit.tri == 0xFFFF_FFFFu32 {
            if depth == 0 && bg_mode == 2u32 {
                *covered = 0.0;
            } else if depth == 0 && (bg_mode == 0u32 || !has_env) {
                let nv1 = add(l, background);
                set3(&mut l, nv1);
            } else if has_env {
                let le = env_radiance(env, up, d);
                let mut w: f32 = 1.0;
                if depth > 0 && prev_pdf > 0.0 && p_env > 0.0 {
                    let pl = p_env * env_pdf(env, up, d);
                    w = prev_pdf * prev_pdf / (prev_pdf * prev_pdf + pl * pl);
                }
                // Occlusion darkens what indirect rays gather.
                let nv1 = add(l, scale(mul(thr, le), w * occ_prev));
                set3(&mut l, nv1);
            }
            alive = false;
        } else {
            let s = surface(fdata, udata, up, o, d, hit);
            let wo = scale(d, -1.0);
            let eps = eps_base
                * f32::max(
                    1.0,
                    max_comp(v3(f32::abs(s.p.x), f32::abs(s.p.y), f32::abs(s.p.z))),
                );
            if max_comp(s.emission) > 0.0 {
                let mut w: f32 = 1.0;
                if depth > 0 && prev_pdf > 0.0 && s.light_pmf > 0.0 {
                    let cos_l = f32::abs(dot(s.ng, d));
                    let pl = (1.0 - p_env) * s.light_pmf * hit.t * hit.t
                        / f32::max(cos_l * s.area, 1.0e-20);
                    w = prev_pdf * prev_pdf / (prev_pdf * prev_pdf + pl * pl);
                }
                let nv2 = add(l, scale(mul(thr, s.emission), w * occ_prev));
                set3(&mut l, nv2);
            }
            if depth >= max_bounces {
                alive = false;
            } else {
                // Next-event estimation.
                // Four dimension pairs per bounce, after the camera's pair:
                // light point, (light choice, lobe choice), direction, roulette.
                let g = 1u32 + depth * 4u32;
                let lp = draw2(rng, key, index, g, ld);
                let choice = draw2(rng, key, index, g + 1u32, ld);
                let r0 = choice.a;
                let r1 = lp.a;
                let r2 = lp.b;
                if have_lights {
                    let ls = sample_light(fdata, udata, up, fp, env, s.p, r0, r1, r2);
                    if ls.valid {
                        let e = eval_bsdf(s, wo, ls.wi);
                        if e.pdf > 0.0 {
                            let so = offset_point(s.p, s.ng, ls.wi, eps);
                            let tmax = ls.dist - 2.0 * eps;
                            let sh = trace(
                                fdata,
                                udata,
                                up,
                                so,
                                ls.wi,
                                tmax,
                                true,
                                false,
                                pcg(*rng ^ 0x1B87_3593u32),
                            );
                            if sh.tri == 0xFFFF_FFFFu32 {
                                let mut w: f32 = 1.0;
                                if ls.pdf > 0.0 {
                                    w = ls.pdf * ls.pdf / (ls.pdf * ls.pdf + e.pdf * e.pdf);
                                }
                                let nv3 = add(l, scale(mul(thr, mul(e.f, ls.li)), w * occ_cur));
                                set3(&mut l, nv3);
                            }
                        }
                    }
                }
                // Continue the path.
                let dir = draw2(rng, key, index, g + 2u32, ld);
                let q0 = choice.b;
                let q1 = dir.a;
                let q2 = dir.b;
                let bs = sample_bsdf(s, wo, q0, q1, q2);
                if (bs.pdf > 0.0 || bs.delta) && max_comp(bs.weight) > 0.0 {
                    let nv4 = mul(thr, bs.weight);
                    occ_prev = occ_cur;
                    occ_cur *= s.occlusion;
                    set3(&mut thr, nv4);
                    prev_pdf = bs.pdf;
                    set3(&mut o, offset_point(s.p, s.ng, bs.wi, eps));
                    set3(&mut d, bs.wi);
                    depth += 1u32;
                    if depth >= 3 {
                        let q = f32::min(max_comp(thr), 0.95);
                        let rr = draw2(rng, key, index, g + 3u32, ld).a;
                        if rr >= q {
                            alive = false;
                        } else {
                            let nv5 = scale(thr, 1.0 / q);
                            set3(&mut thr, nv5);
                        }
                    }
                } else {
                    alive = false;
                }
            }
        }
    }
    l
}

/// Floats per pixel in the accumulation buffer: RGB and coverage (alpha).
pub(crate) const ACC_F: usize = 4;

/// Path-traces `SAMPLE_COUNT` samples per pixel of the launch rectangle and
/// adds them, one by one, to `accum` ([`ACC_F`] floats per pixel of the
/// rectangle).
#[cube(launch)]
pub(crate) fn path_trace_kernel(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    fp: &Array<f32>,
    env: &Array<f32>,
    accum: &mut Array<f32>,
) {
    let lx = ABSOLUTE_POS_X;
    let ly = ABSOLUTE_POS_Y;
    let crop_w = up[up::CROP_W];
    let crop_h = up[up::CROP_H];
    if lx < crop_w && ly < crop_h {
        let px = lx + up[up::OFF_X];
        let py = ly + up[up::OFF_Y];
        let full_w = f32::cast_from(up[up::FULL_W]);
        let full_h = f32::cast_from(up[up::FULL_H]);
        let cam = load3(fp, fp::CAM_POS);
        let fwd = load3(fp, fp::CAM_FWD);
        let right = load3(fp, fp::CAM_RIGHT);
        let upv = load3(fp, fp::CAM_UP);
        let th = fp[fp::TAN_HALF_FOV];
        let aspect = fp[fp::ASPECT];
        let ortho = fp[fp::ORTHO] > 0.5;
        let oh = fp[fp::ORTHO_HALF_H];
        let pixel_key = pcg(
            pcg(pcg(pcg(up[up::SEED_LO]) ^ up[up::SEED_HI]) ^ up[up::FRAME])
                ^ (px * 0x9E37_79B9u32 + py),
        );
        let out = (ly * crop_w + lx) as usize * ACC_F;
        let mut acc = v3(accum[out], accum[out + 1], accum[out + 2]);
        let mut alpha = accum[out + 3];
        let start = up[up::SAMPLE_START];
        let count = up[up::SAMPLE_COUNT];
        for i in 0..count {
            let index = start + i;
            let mut rng = pcg(pixel_key ^ pcg(index + 0x632B_E5ABu32));
            let jitter = draw2(&mut rng, pixel_key, index, 0u32, up[up::SAMPLER] == 1u32);
            let jx = jitter.a;
            let jy = jitter.b;
            let nx = 2.0 * (f32::cast_from(px) + jx) / full_w - 1.0;
            let ny = 1.0 - 2.0 * (f32::cast_from(py) + jy) / full_h;
            let sx = nx * th * aspect;
            let sy = ny * th;
            let persp = normalize(add(fwd, add(scale(right, sx), scale(upv, sy))));
            let shifted = add(
                cam,
                add(scale(right, nx * oh * aspect), scale(upv, ny * oh)),
            );
            let origin = vselect(ortho, shifted, cam);
            let dir = vselect(ortho, fwd, persp);
            let mut covered: f32 = 1.0;
            let c = radiance(
                fdata,
                udata,
                up,
                fp,
                env,
                origin,
                dir,
                &mut rng,
                pixel_key,
                index,
                &mut covered,
            );
            let bad = f32::is_nan(c.x)
                || f32::is_nan(c.y)
                || f32::is_nan(c.z)
                || f32::is_inf(c.x)
                || f32::is_inf(c.y)
                || f32::is_inf(c.z);
            if !bad {
                let nv6 = add(acc, c);
                set3(&mut acc, nv6);
            }
            alpha += covered;
        }
        accum[out] = acc.x;
        accum[out + 1] = acc.y;
        accum[out + 2] = acc.z;
        accum[out + 3] = alpha;
    }
}
