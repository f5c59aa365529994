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
mod lights;
mod sampler;
mod shading;

use bsdf::*;
use lights::*;
use sampler::*;
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
    /// Pixels of the launch listed in `pixels` ((x, y) pairs, launch slot
    /// `y · CROP_W + x` renders pair `slot`); 0: the launch is the
    /// rectangle at `OFF_X`, `OFF_Y`. Many small crops of one frame then
    /// share one launch instead of paying one each.
    pub(crate) const LISTED: usize = 32;
    pub(crate) const LEN: usize = 33;
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
/// double-sided, bit 3 unlit, bit 4 [`MAT_CAMERA_ONLY`]), then per texture slot: texel offset in `udata`, width,
/// height, info bits (see `gpu_scene::slot_info`; 0 width = no texture).
pub(crate) const MAT_U: usize = 1 + 4 * crate::material::SLOTS;
/// Material flag: only camera rays see it (its triangles carry
/// [`TRI_ALPHA`], and the alpha test lets every other ray through).
pub(crate) const MAT_CAMERA_ONLY: u32 = 16;
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
/// * hits on camera-only materials are skipped by every ray but camera
///   rays;
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
            let flags = udata[up[up::U_MAT] as usize + mat * MAT_U];
            let mode = flags & 3u32;
            let cutoff = fdata[up[up::F_MAT] as usize + mat * MAT_F + mf::CUTOFF];
            let xi = f32::cast_from(pcg(salt ^ pcg(htri)) >> 8u32) * (1.0 / 16777216.0);
            let seen = select(mode == 1u32, al >= cutoff, al > xi);
            // Only camera rays cull back faces, so `cull` marks them.
            done = select((flags & 16u32) != 0u32, cull, seen);
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

/// Path-traces `SAMPLE_COUNT` samples per pixel of the launch rectangle
/// (or of the pixels listed in `pixels`, see [`up::LISTED`]) and adds them,
/// one by one, to `accum` ([`ACC_F`] floats per pixel, in launch order).
#[cube(launch)]
pub(crate) fn path_trace_kernel(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    fp: &Array<f32>,
    env: &Array<f32>,
    pixels: &Array<u32>,
    accum: &mut Array<f32>,
) {
    let lx = ABSOLUTE_POS_X;
    let ly = ABSOLUTE_POS_Y;
    let crop_w = up[up::CROP_W];
    let crop_h = up[up::CROP_H];
    let listed = up[up::LISTED];
    let slot = ly * crop_w + lx;
    let mut inside = lx < crop_w && ly < crop_h;
    if listed > 0u32 {
        inside = lx < crop_w && slot < listed;
    }
    if inside {
        let mut px = lx + up[up::OFF_X];
        let mut py = ly + up[up::OFF_Y];
        if listed > 0u32 {
            px = pixels[(slot * 2u32) as usize];
            py = pixels[(slot * 2u32 + 1u32) as usize];
        }
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
        let out = slot as usize * ACC_F;
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
