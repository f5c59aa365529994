//! Surface data at a hit: vertex attributes, material textures (slots
//! with UV transform, wrap modes and filtering) and normal mapping; also
//! the alpha coverage test BVH traversal runs for MASK and BLEND materials.

use cubecl::prelude::*;

use super::*;
use super::{
    add, cross, dot, length, load3, mul, normalize, scale, set3, sub, v3, vselect, Hit, V3,
};

/// Surface data at a hit.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Surface {
    pub(super) p: V3,
    /// Geometric normal, facing the incoming ray.
    pub(super) ng: V3,
    /// Shading normal, same side as `ng`.
    pub(super) ns: V3,
    pub(super) base: V3,
    pub(super) emission: V3,
    pub(super) metallic: f32,
    pub(super) roughness: f32,
    pub(super) specular: f32,
    /// Occlusion texture factor (1 without one), applied to the light the
    /// path gathers after this bounce (indirect light), not to direct light
    /// from next-event estimation: the tracer computes occlusion itself, the
    /// baked map only darkens what a short path would miss.
    pub(super) occlusion: f32,
    pub(super) transmission: f32,
    pub(super) ior: f32,
    pub(super) clearcoat: f32,
    pub(super) clearcoat_roughness: f32,
    /// The ray hit the front face (the side the winding makes outward).
    pub(super) front: bool,
    pub(super) area: f32,
    pub(super) light_pmf: f32,
}

/// An RGBA value read from a texture.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct C4 {
    pub(super) r: f32,
    pub(super) g: f32,
    pub(super) b: f32,
    pub(super) a: f32,
}

/// Both UV sets at a hit.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Uv2 {
    pub(super) u0: f32,
    pub(super) v0: f32,
    pub(super) u1: f32,
    pub(super) v1: f32,
}

/// Integer texel coordinate `i` mapped into [0, n) by wrap `mode`
/// (0 repeat, 1 clamp, 2 mirrored repeat); float arithmetic is exact here.
#[cube]
pub(super) fn wrap_texel(i: f32, n: f32, mode: u32) -> f32 {
    let rep = i - n * f32::floor(i / n);
    let p2 = 2.0 * n;
    let m = i - p2 * f32::floor(i / p2);
    let mir = select(m >= n, p2 - 1.0 - m, m);
    let w = select(mode == 1u32, i, select(mode == 2u32, mir, rep));
    f32::clamp(w, 0.0, n - 1.0)
}

#[cube]
pub(super) fn fetch(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    lut: usize,
    off: u32,
    tw: u32,
    x: f32,
    y: f32,
    srgb: bool,
) -> C4 {
    let t = udata[(off + u32::cast_from(y) * tw + u32::cast_from(x)) as usize];
    let r8 = t & 255u32;
    let g8 = (t >> 8u32) & 255u32;
    let b8 = (t >> 16u32) & 255u32;
    let k = 1.0f32 / 255.0;
    C4 {
        r: select(srgb, fdata[lut + r8 as usize], f32::cast_from(r8) * k),
        g: select(srgb, fdata[lut + g8 as usize], f32::cast_from(g8) * k),
        b: select(srgb, fdata[lut + b8 as usize], f32::cast_from(b8) * k),
        a: f32::cast_from(t >> 24u32) * k,
    }
}

#[cube]
pub(super) fn lerp4(a: C4, b: C4, t: f32) -> C4 {
    C4 {
        r: a.r + (b.r - a.r) * t,
        g: a.g + (b.g - a.g) * t,
        b: a.b + (b.b - a.b) * t,
        a: a.a + (b.a - a.a) * t,
    }
}

/// Whether material `mat` has a texture in `slot`.
#[cube]
pub(super) fn has_slot(udata: &Array<u32>, up: &Array<u32>, mat: usize, slot: u32) -> bool {
    udata[up[up::U_MAT] as usize + mat * MAT_U + 2 + slot as usize * 4] > 0
}

/// Samples texture `slot` of material `mat` (white when it has none):
/// UV set and transform, wrap modes, nearest or bilinear filtering, sRGB
/// decoding for colour slots (filtering happens on linear values).
#[cube]
pub(super) fn sample_slot(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    mat: usize,
    slot: u32,
    uv: Uv2,
) -> C4 {
    let mu = up[up::U_MAT] as usize + mat * MAT_U + 1 + slot as usize * 4;
    let tw = udata[mu + 1];
    let mut r: f32 = 1.0;
    let mut g: f32 = 1.0;
    let mut b: f32 = 1.0;
    let mut a: f32 = 1.0;
    if tw > 0 {
        let off = udata[mu];
        let th = udata[mu + 2];
        let info = udata[mu + 3];
        let fo = up[up::F_MAT] as usize + mat * MAT_F + mf::SLOT + slot as usize * 6;
        let set1 = (info & 32u32) != 0u32;
        let su = select(set1, uv.u1, uv.u0);
        let sv = select(set1, uv.v1, uv.v0);
        let u = fdata[fo] * su + fdata[fo + 1] * sv + fdata[fo + 2];
        let v = fdata[fo + 3] * su + fdata[fo + 4] * sv + fdata[fo + 5];
        let ws = (info >> 1u32) & 3u32;
        let wt = (info >> 3u32) & 3u32;
        let srgb = (info & 128u32) != 0u32;
        let fw = f32::cast_from(tw);
        let fh = f32::cast_from(th);
        let lut = up[up::F_LUT] as usize;
        if (info & 64u32) != 0u32 {
            let x = wrap_texel(f32::floor(u * fw), fw, ws);
            let y = wrap_texel(f32::floor(v * fh), fh, wt);
            let c = fetch(fdata, udata, lut, off, tw, x, y, srgb);
            r = c.r;
            g = c.g;
            b = c.b;
            a = c.a;
        } else {
            let x = u * fw - 0.5;
            let y = v * fh - 0.5;
            let x0 = f32::floor(x);
            let y0 = f32::floor(y);
            let fx = x - x0;
            let fy = y - y0;
            let xa = wrap_texel(x0, fw, ws);
            let xb = wrap_texel(x0 + 1.0, fw, ws);
            let ya = wrap_texel(y0, fh, wt);
            let yb = wrap_texel(y0 + 1.0, fh, wt);
            let top = lerp4(
                fetch(fdata, udata, lut, off, tw, xa, ya, srgb),
                fetch(fdata, udata, lut, off, tw, xb, ya, srgb),
                fx,
            );
            let bot = lerp4(
                fetch(fdata, udata, lut, off, tw, xa, yb, srgb),
                fetch(fdata, udata, lut, off, tw, xb, yb, srgb),
                fx,
            );
            let c = lerp4(top, bot, fy);
            r = c.r;
            g = c.g;
            b = c.b;
            a = c.a;
        }
    }
    C4 { r, g, b, a }
}

/// `fdata` offsets of a triangle's three vertex records.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Corners {
    pub(super) a: usize,
    pub(super) b: usize,
    pub(super) c: usize,
}

#[cube]
pub(super) fn corners(udata: &Array<u32>, up: &Array<u32>, tri: usize) -> Corners {
    let ub = up[up::U_TRI] as usize + tri * TRI_U;
    let fv = up[up::F_VERT] as usize;
    Corners {
        a: fv + udata[ub + 1] as usize * VERT_F,
        b: fv + udata[ub + 2] as usize * VERT_F,
        c: fv + udata[ub + 3] as usize * VERT_F,
    }
}

/// Barycentric interpolation of vertex float `k` (and `k + 1`) as UVs.
#[cube]
pub(super) fn lerp_uv(fdata: &Array<f32>, cs: Corners, k: usize, w0: f32, u: f32, v: f32) -> f32 {
    fdata[cs.a + k] * w0 + fdata[cs.b + k] * u + fdata[cs.c + k] * v
}

#[cube]
pub(super) fn uvs_at(fdata: &Array<f32>, cs: Corners, u: f32, v: f32) -> Uv2 {
    let w0 = 1.0 - u - v;
    Uv2 {
        u0: lerp_uv(fdata, cs, 7, w0, u, v),
        v0: lerp_uv(fdata, cs, 8, w0, u, v),
        u1: lerp_uv(fdata, cs, 9, w0, u, v),
        v1: lerp_uv(fdata, cs, 10, w0, u, v),
    }
}

/// Coverage (alpha) of triangle `tri` at barycentrics (`u`, `v`): the base
/// colour factor's alpha times the base texture's times COLOR_0's.
#[cube]
pub(super) fn alpha_at(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    tri: usize,
    u: f32,
    v: f32,
) -> f32 {
    let mat = (udata[up[up::U_TRI] as usize + tri * TRI_U] & 0x3FFF_FFFFu32) as usize;
    let cs = corners(udata, up, tri);
    let w0 = 1.0 - u - v;
    let tex = sample_slot(fdata, udata, up, mat, 0u32, uvs_at(fdata, cs, u, v));
    let vc = lerp_uv(fdata, cs, 14, w0, u, v);
    fdata[up[up::F_MAT] as usize + mat * MAT_F + mf::ALPHA] * tex.a * vc
}

#[cube]
pub(super) fn surface(
    fdata: &Array<f32>,
    udata: &Array<u32>,
    up: &Array<u32>,
    o: V3,
    d: V3,
    hit: Hit,
) -> Surface {
    let tri = hit.tri as usize;
    let base_t = up[up::F_TRI] as usize + tri * TRI_F;
    let e1 = load3(fdata, base_t + 3);
    let e2 = load3(fdata, base_t + 6);
    let c = cross(e1, e2);
    let area = 0.5 * length(c);
    let ng0 = normalize(c);
    let p = add(o, scale(d, hit.t));
    let w0 = 1.0 - hit.u - hit.v;
    let light_pmf = fdata[up[up::F_ATTR] as usize + tri * ATTR_F];
    let cs = corners(udata, up, tri);
    let n0 = load3(fdata, cs.a);
    let n1 = load3(fdata, cs.b);
    let n2 = load3(fdata, cs.c);
    let ns_i = normalize(add(add(scale(n0, w0), scale(n1, hit.u)), scale(n2, hit.v)));
    let ns_v = vselect(dot(ns_i, ns_i) < 0.5, ng0, ns_i);
    let uv = uvs_at(fdata, cs, hit.u, hit.v);
    let mat = (udata[up[up::U_TRI] as usize + tri * TRI_U] & 0x3FFF_FFFFu32) as usize;
    let mb = up[up::F_MAT] as usize + mat * MAT_F;
    // Normal map in the interpolated tangent frame.
    let t0 = load3(fdata, cs.a + 3);
    let t1 = load3(fdata, cs.b + 3);
    let t2 = load3(fdata, cs.c + 3);
    let tg = add(add(scale(t0, w0), scale(t1, hit.u)), scale(t2, hit.v));
    // The five texture slots are sampled in one loop, so the sampling code
    // exists once in the kernel (it is inlined at every call).
    let mut bcr: f32 = 1.0;
    let mut bcg: f32 = 1.0;
    let mut bcb: f32 = 1.0;
    let mut mrg: f32 = 1.0;
    let mut mrb: f32 = 1.0;
    let mut nmr: f32 = 1.0;
    let mut nmg: f32 = 1.0;
    let mut nmb: f32 = 1.0;
    let mut occr: f32 = 1.0;
    let mut emr: f32 = 1.0;
    let mut emg: f32 = 1.0;
    let mut emb: f32 = 1.0;
    for slot in 0..5u32 {
        let c = sample_slot(fdata, udata, up, mat, slot, uv);
        if slot == 0u32 {
            bcr = c.r;
            bcg = c.g;
            bcb = c.b;
        } else if slot == 1u32 {
            mrg = c.g;
            mrb = c.b;
        } else if slot == 2u32 {
            nmr = c.r;
            nmg = c.g;
            nmb = c.b;
        } else if slot == 3u32 {
            occr = c.r;
        } else {
            emr = c.r;
            emg = c.g;
            emb = c.b;
        }
    }
    let mut ns0 = ns_v;
    if has_slot(udata, up, mat, 2u32) && dot(tg, tg) > 1.0e-12 {
        let ks = fdata[mb + mf::NORMAL_SCALE];
        let tx = (2.0 * nmr - 1.0) * ks;
        let ty = (2.0 * nmg - 1.0) * ks;
        let tz = 2.0 * nmb - 1.0;
        let tt = normalize(sub(tg, scale(ns_v, dot(ns_v, tg))));
        let bt = scale(cross(ns_v, tt), fdata[cs.a + 6]);
        let mapped = normalize(add(add(scale(tt, tx), scale(bt, ty)), scale(ns_v, tz)));
        set3(&mut ns0, vselect(dot(mapped, mapped) < 0.5, ns_v, mapped));
    }
    let front = dot(ng0, d) < 0.0;
    let ng = scale(ng0, select(front, 1.0f32, -1.0f32));
    let ns1 = scale(ns0, select(dot(ns0, ng) < 0.0, -1.0f32, 1.0f32));
    let ns = vselect(dot(ns1, ns1) < 0.5, ng, ns1);
    let vcol = v3(
        lerp_uv(fdata, cs, 11, w0, hit.u, hit.v),
        lerp_uv(fdata, cs, 12, w0, hit.u, hit.v),
        lerp_uv(fdata, cs, 13, w0, hit.u, hit.v),
    );
    let occ_strength = fdata[mb + mf::OCCLUSION];
    let albedo = mul(mul(load3(fdata, mb + mf::BASE), v3(bcr, bcg, bcb)), vcol);
    // Unlit (KHR_materials_unlit): the base colour is emitted and nothing
    // is reflected, so paths end there.
    let unlit = (udata[up[up::U_MAT] as usize + mat * MAT_U] & 8u32) != 0u32;
    let lit = select(unlit, 0.0f32, 1.0f32);
    Surface {
        p,
        ng,
        ns,
        base: scale(albedo, lit),
        emission: vselect(
            unlit,
            albedo,
            mul(load3(fdata, mb + mf::EMISSIVE), v3(emr, emg, emb)),
        ),
        metallic: fdata[mb + mf::METALLIC] * mrb * lit,
        roughness: fdata[mb + mf::ROUGHNESS] * mrg,
        specular: fdata[mb + mf::SPECULAR] * lit,
        occlusion: 1.0 + occ_strength * (occr - 1.0),
        transmission: fdata[mb + mf::TRANSMISSION] * lit,
        ior: fdata[mb + mf::IOR],
        clearcoat: fdata[mb + mf::CLEARCOAT] * lit,
        clearcoat_roughness: fdata[mb + mf::CLEARCOAT_ROUGHNESS],
        front,
        area,
        light_pmf,
    }
}
