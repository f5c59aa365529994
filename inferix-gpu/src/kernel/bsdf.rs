//! The BSDF: a metallic-roughness base layer (Lambert + GGX), an optional
//! clearcoat GGX lobe and a smooth dielectric transmission lobe.

use cubecl::prelude::*;

use super::*;
use super::{add, dot, luminance, mul, normalize, scale, set3, sub, v3, vs, V3};

/// Orthonormal basis around `n` (Duff et al. 2017).
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Basis {
    pub(super) t: V3,
    pub(super) b: V3,
}

#[cube]
pub(super) fn basis(n: V3) -> Basis {
    let sign = select(n.z >= 0.0, 1.0f32, -1.0f32);
    let a = -1.0 / (sign + n.z);
    let bb = n.x * n.y * a;
    Basis {
        t: v3(1.0 + sign * n.x * n.x * a, sign * bb, -sign * n.x),
        b: v3(bb, sign + n.y * n.y * a, -n.y),
    }
}

#[cube]
pub(super) fn from_local(bs: Basis, n: V3, x: f32, y: f32, z: f32) -> V3 {
    add(add(scale(bs.t, x), scale(bs.b, y)), scale(n, z))
}

/// BSDF value times cosine and its pdf.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Eval {
    pub(super) f: V3,
    pub(super) pdf: f32,
}

#[cube]
pub(super) fn alpha_of(s: Surface) -> f32 {
    let r = f32::clamp(s.roughness, 0.03, 1.0);
    r * r
}

#[cube]
pub(super) fn f0_of(s: Surface) -> V3 {
    let d = vs(0.04 * s.specular);
    add(scale(d, 1.0 - s.metallic), scale(s.base, s.metallic))
}

#[cube]
pub(super) fn f90_of(s: Surface) -> f32 {
    s.specular * (1.0 - s.metallic) + s.metallic
}

#[cube]
pub(super) fn fresnel(f0: V3, f90: f32, c: f32) -> V3 {
    let m = f32::clamp(1.0 - c, 0.0, 1.0);
    let m5 = m * m * m * m * m;
    add(f0, scale(sub(vs(f90), f0), m5))
}

#[cube]
pub(super) fn spec_prob(s: Surface, wo: V3) -> f32 {
    let f = fresnel(f0_of(s), f90_of(s), f32::max(dot(s.ns, wo), 0.0));
    let ws = luminance(f);
    let wd = (1.0 - s.metallic) * luminance(s.base) * (1.0 - ws);
    let tot = ws + wd;
    select(tot > 0.0, ws / f32::max(tot, 1.0e-20), 0.5)
}

#[cube]
pub(super) fn ggx_d(a2: f32, nh: f32) -> f32 {
    let den = nh * nh * (a2 - 1.0) + 1.0;
    a2 / (PI * den * den)
}

#[cube]
pub(super) fn smith_g1(a2: f32, nv: f32) -> f32 {
    2.0 * nv / (nv + f32::sqrt(a2 + (1.0 - a2) * nv * nv))
}

/// Evaluates the opaque base layer (diffuse + GGX specular): f·cos and
/// its sampling pdf.
#[cube]
pub(super) fn eval_base(s: Surface, wo: V3, wi: V3) -> Eval {
    let n = s.ns;
    let nl = dot(n, wi);
    let nv = dot(n, wo);
    let mut fx: f32 = 0.0;
    let mut fy: f32 = 0.0;
    let mut fz: f32 = 0.0;
    let mut pdf: f32 = 0.0;
    if nl > 0.0 && nv > 0.0 && dot(s.ng, wi) > 0.0 {
        let h = normalize(add(wo, wi));
        let nh = f32::max(dot(n, h), 0.0);
        let vh = f32::max(dot(wo, h), 1.0e-6);
        let a = alpha_of(s);
        let a2 = a * a;
        let f = fresnel(f0_of(s), f90_of(s), vh);
        let dd = ggx_d(a2, nh);
        let g = smith_g1(a2, nv) * smith_g1(a2, nl);
        let spec = scale(f, dd * g / (4.0 * nv));
        let kd = mul(sub(vs(1.0), f), scale(s.base, (1.0 - s.metallic) / PI));
        let diff = scale(kd, nl);
        let ps = spec_prob(s, wo);
        let pdf_s = dd * nh / (4.0 * vh);
        let pdf_d = nl / PI;
        let tot = add(spec, diff);
        fx = tot.x;
        fy = tot.y;
        fz = tot.z;
        pdf = ps * pdf_s + (1.0 - ps) * pdf_d;
    }
    Eval {
        f: v3(fx, fy, fz),
        pdf,
    }
}

/// Share of the smooth dielectric (transmission) lobe: glTF transmission
/// replaces the diffuse part of dielectrics.
#[cube]
pub(super) fn trans_prob(s: Surface) -> f32 {
    s.transmission * (1.0 - s.metallic)
}

/// Schlick Fresnel of the clearcoat (F0 = 0.04, ior 1.5).
#[cube]
pub(super) fn coat_fresnel(c: f32) -> f32 {
    let m = f32::clamp(1.0 - c, 0.0, 1.0);
    0.04 + 0.96 * m * m * m * m * m
}

/// Probability of sampling the clearcoat lobe.
#[cube]
pub(super) fn coat_prob(s: Surface, wo: V3) -> f32 {
    s.clearcoat * coat_fresnel(f32::max(dot(s.ns, wo), 0.0))
}

#[cube]
pub(super) fn coat_alpha(s: Surface) -> f32 {
    let r = f32::clamp(s.clearcoat_roughness, 0.03, 1.0);
    r * r
}

/// Evaluates f·cos and the sampling pdf for directions `wo`, `wi`: the base
/// layer under an optional clearcoat (a second GGX lobe mixed in by
/// clearcoat · Fresnel, as `KHR_materials_clearcoat` defines), scaled by the
/// share not taken by the (delta, never evaluated) transmission lobe.
#[cube]
pub(super) fn eval_bsdf(s: Surface, wo: V3, wi: V3) -> Eval {
    let base = eval_base(s, wo, wi);
    let keep = 1.0 - trans_prob(s);
    let mut fx = base.f.x;
    let mut fy = base.f.y;
    let mut fz = base.f.z;
    let mut pdf = base.pdf;
    if s.clearcoat > 0.0 {
        let n = s.ns;
        let nl = dot(n, wi);
        let nv = dot(n, wo);
        let mut fc: f32 = 0.0;
        let mut coat: f32 = 0.0;
        let mut pdf_c: f32 = 0.0;
        if nl > 0.0 && nv > 0.0 && dot(s.ng, wi) > 0.0 {
            let h = normalize(add(wo, wi));
            let nh = f32::max(dot(n, h), 0.0);
            let vh = f32::max(dot(wo, h), 1.0e-6);
            let a = coat_alpha(s);
            let a2 = a * a;
            fc = s.clearcoat * coat_fresnel(vh);
            let dd = ggx_d(a2, nh);
            coat = fc * dd * smith_g1(a2, nv) * smith_g1(a2, nl) / (4.0 * nv);
            pdf_c = dd * nh / (4.0 * vh);
        }
        let pc = coat_prob(s, wo);
        fx = fx * (1.0 - fc) + coat;
        fy = fy * (1.0 - fc) + coat;
        fz = fz * (1.0 - fc) + coat;
        pdf = pc * pdf_c + (1.0 - pc) * pdf;
    }
    Eval {
        f: scale(v3(fx, fy, fz), keep),
        pdf: pdf * keep,
    }
}

/// A sampled direction with its throughput weight f·cos/pdf and pdf
/// (0 with `delta` for the specular transmission lobe).
#[derive(CubeType, Clone, Copy)]
pub(crate) struct Sample {
    pub(super) wi: V3,
    pub(super) weight: V3,
    pub(super) pdf: f32,
    pub(super) delta: bool,
}

/// GGX half-vector sample around `n` reflected into an outgoing direction.
#[cube]
pub(super) fn ggx_reflect(n: V3, wo: V3, a: f32, r1: f32, r2: f32) -> V3 {
    let h = ggx_half(n, a, r1, r2);
    sub(scale(h, 2.0 * dot(wo, h)), wo)
}

/// A GGX-distributed microfacet normal around `n` (roughness `a` = α).
#[cube]
pub(super) fn ggx_half(n: V3, a: f32, r1: f32, r2: f32) -> V3 {
    let bs = basis(n);
    let a2 = a * a;
    let phi = 2.0 * PI * r1;
    let ct = f32::sqrt((1.0 - r2) / (1.0 + (a2 - 1.0) * r2));
    let st = f32::sqrt(f32::max(1.0 - ct * ct, 0.0));
    from_local(bs, n, st * f32::cos(phi), st * f32::sin(phi), ct)
}

#[allow(unused_assignments)]
#[cube]
pub(super) fn sample_bsdf(s: Surface, wo: V3, r0: f32, r1: f32, r2: f32) -> Sample {
    let n = s.ns;
    let pt = trans_prob(s);
    let mut wx: f32 = 0.0;
    let mut wy: f32 = 0.0;
    let mut wz: f32 = 0.0;
    let mut res_w = vs(0.0);
    let mut res_pdf: f32 = 0.0;
    let mut delta = false;
    if r0 < pt {
        // Dielectric: reflect or refract about a GGX microfacet normal (the
        // roughness spreads the lobe; smooth at roughness 0) by the exact
        // Fresnel term of the ior (the ray enters through front faces).
        // Sampled only (no NEE, no MIS), weighted without the shadowing
        // term: an approximation for rough glass.
        let hm = ggx_half(n, alpha_of(s), r1, r2);
        let cosi = f32::clamp(dot(hm, wo), 0.0, 1.0);
        let eta = select(s.front, 1.0 / s.ior, s.ior);
        let sin2t = eta * eta * (1.0 - cosi * cosi);
        let cost = f32::sqrt(f32::max(1.0 - sin2t, 0.0));
        let rs = (eta * cosi - cost) / f32::max(eta * cosi + cost, 1.0e-20);
        let rp = (cosi - eta * cost) / f32::max(cosi + eta * cost, 1.0e-20);
        let fr = select(sin2t >= 1.0, 1.0f32, 0.5 * (rs * rs + rp * rp));
        if r0 / pt < fr {
            let w = sub(scale(hm, 2.0 * cosi), wo);
            wx = w.x;
            wy = w.y;
            wz = w.z;
            let ok = dot(s.ng, w) > 0.0;
            set3(&mut res_w, vs(select(ok, 1.0f32, 0.0f32)));
        } else {
            let w = add(scale(wo, -eta), scale(hm, eta * cosi - cost));
            wx = w.x;
            wy = w.y;
            wz = w.z;
            let ok = dot(s.ng, w) < 0.0;
            set3(&mut res_w, scale(s.base, select(ok, 1.0f32, 0.0f32)));
        }
        delta = true;
    } else {
        let ra = (r0 - pt) / (1.0 - pt);
        let pc = coat_prob(s, wo);
        if ra < pc {
            let w = ggx_reflect(n, wo, coat_alpha(s), r1, r2);
            wx = w.x;
            wy = w.y;
            wz = w.z;
        } else {
            let rb = (ra - pc) / (1.0 - pc);
            let ps = spec_prob(s, wo);
            if rb < ps {
                let w = ggx_reflect(n, wo, alpha_of(s), r1, r2);
                wx = w.x;
                wy = w.y;
                wz = w.z;
            } else {
                let bs = basis(n);
                let rr = f32::sqrt(r1);
                let phi = 2.0 * PI * r2;
                let z = f32::sqrt(f32::max(1.0 - r1, 0.0));
                let w = from_local(bs, n, rr * f32::cos(phi), rr * f32::sin(phi), z);
                wx = w.x;
                wy = w.y;
                wz = w.z;
            }
        }
        let e = eval_bsdf(s, wo, normalize(v3(wx, wy, wz)));
        let ok = e.pdf > 0.0;
        set3(
            &mut res_w,
            scale(e.f, select(ok, 1.0 / f32::max(e.pdf, 1.0e-20), 0.0)),
        );
        res_pdf = e.pdf;
    }
    Sample {
        wi: normalize(v3(wx, wy, wz)),
        weight: res_w,
        pdf: res_pdf,
        delta,
    }
}
