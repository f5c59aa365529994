//! Light sampling: the environment map (luminance CDFs, pdf of a
//! direction) and the scene's punctual lights and emissive triangles,
//! chosen by power.

use cubecl::prelude::*;

use super::*;
use super::{add, cross, dot, length, load3, normalize, scale, set3, sub, v3, vs, V3};

/// Index of the environment texel direction `d` falls in (the same
/// mapping as [`crate::environment::texel_index`]).
#[cube]
pub(super) fn env_index(d: V3, w: u32, h: u32) -> usize {
    let u = 0.5 + f32::atan2(d.x, -d.z) * (0.5 / PI);
    let v = f32::acos(f32::clamp(d.y, -1.0, 1.0)) * (1.0 / PI);
    let x = u32::min(u32::cast_from(f32::max(u * f32::cast_from(w), 0.0)), w - 1);
    let y = u32::min(u32::cast_from(f32::max(v * f32::cast_from(h), 0.0)), h - 1);
    (y * w + x) as usize
}

/// Environment radiance arriving from direction `d` (black without one).
#[cube]
pub(super) fn env_radiance(env: &Array<f32>, up: &Array<u32>, d: V3) -> V3 {
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
pub(super) fn env_pdf(env: &Array<f32>, up: &Array<u32>, d: V3) -> f32 {
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
pub(super) fn cdf_search(data: &Array<f32>, base: usize, n: u32, r: f32) -> u32 {
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
pub(super) fn cdf_fraction(data: &Array<f32>, base: usize, i: u32, r: f32) -> f32 {
    let prev = select(i > 0, data[base + (u32::max(i, 1) - 1) as usize], 0.0);
    let span = data[base + i as usize] - prev;
    f32::clamp((r - prev) / f32::max(span, 1.0e-20), 0.0, 0.99999994)
}

/// Result of sampling a light from a point.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct LightSample {
    pub(super) wi: V3,
    pub(super) dist: f32,
    /// Radiance (area) or irradiance-at-normal-incidence (punctual) divided by pdf.
    pub(super) li: V3,
    /// Solid-angle pdf including the light choice; 0 for delta lights.
    pub(super) pdf: f32,
    pub(super) valid: bool,
}

/// Samples the environment: a texel by the luminance CDFs, then a point
/// uniform in (u, v) inside it. `share` is the probability of having
/// chosen the environment at all.
#[cube]
pub(super) fn sample_env(
    env: &Array<f32>,
    up: &Array<u32>,
    share: f32,
    r1: f32,
    r2: f32,
) -> LightSample {
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
pub(super) fn sample_light(
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
pub(super) fn sample_scene_light(
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
