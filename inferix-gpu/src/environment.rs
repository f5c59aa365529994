//! Environment lighting: an equirectangular radiance map that lights the
//! scene from infinitely far away and is sampled by luminance.
//!
//! Real glTF files rarely carry lights, so a scene with nothing to sample
//! gets [`EnvMap::studio`], a neutral procedural studio. A user map
//! replaces it. Either way the kernel sees one layout (see [`EnvTables`]):
//! nearest-texel radiance plus the marginal and conditional CDFs of texel
//! luminance × sin θ, so next-event estimation picks bright, large texels
//! and its pdf matches the radiance it reads exactly.
//!
//! Direction convention (y up, shared with the kernel): u = 0.5 +
//! atan2(x, −z) / 2π, v = acos(y) / π; the map's centre looks down −Z.

use std::f64::consts::PI;

use crate::math::{self, Vec3};

/// Linear RGB radiance over the sphere, row 0 at the zenith.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvMap {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// `width * height * 3` linear RGB values.
    pub(crate) rgb: Vec<f32>,
}

/// Direction of the studio's key softbox (above, front right of the
/// default three-quarter camera), so default-lit objects show their shape.
const KEY_DIR: Vec3 = [0.45, 0.8, 0.55];

impl EnvMap {
    /// The default studio: a soft grey sky brighter at the horizon, a mid
    /// grey floor, one broad key softbox and a dimmer fill on the other
    /// side. Neutral in colour so materials read true.
    pub(crate) fn studio() -> EnvMap {
        let (w, h) = (256u32, 128u32);
        let key = math::normalize(KEY_DIR);
        let fill = math::normalize([-0.7, 0.35, 0.3]);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let d = texel_dir(x as f32 + 0.5, y as f32 + 0.5, w, h);
                let up = d[1];
                let base = if up >= 0.0 {
                    // Zenith 0.55, horizon 0.9: skies are brighter low down.
                    0.55 + 0.35 * (1.0 - up).powi(3)
                } else {
                    // Floor: 0.22, blending into the horizon over a few degrees.
                    0.22 + 0.68 * (1.0 + up * 12.0).max(0.0).powi(2)
                };
                let lobe = |axis: Vec3, cos_edge: f32, peak: f32| {
                    let c = math::dot(d, axis);
                    let t = ((c - cos_edge) / (1.0 - cos_edge)).clamp(0.0, 1.0);
                    peak * t * t * (3.0 - 2.0 * t)
                };
                let v = base + lobe(key, 0.88, 7.0) + lobe(fill, 0.8, 1.2);
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        EnvMap {
            width: w,
            height: h,
            rgb,
        }
    }

    /// A map of one constant radiance (tests' analytic references).
    #[cfg(test)]
    pub(crate) fn constant(rgb: [f32; 3]) -> EnvMap {
        EnvMap {
            width: 64,
            height: 32,
            rgb: rgb.repeat(64 * 32),
        }
    }

    /// Radiance of the texel direction `d` falls in (what the kernel reads).
    #[cfg(test)]
    pub(crate) fn lookup(&self, d: Vec3) -> [f32; 3] {
        let i = texel_index(d, self.width, self.height) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// The default studio as an equirectangular linear-light EXR (row 0 at
/// the zenith, the centre looking down glTF's −Z), so other renderers can
/// be given the same light in comparisons.
pub fn default_environment_exr() -> Result<Vec<u8>, crate::codec::CodecError> {
    let m = EnvMap::studio();
    crate::codec::encode_exr(&inferix_core::image::Image {
        width: m.width,
        height: m.height,
        pixels: m.rgb,
        alpha: None,
    })
}

/// Largest environment map accepted, in pixels (a 16k x 8k map).
const MAX_ENV_PIXELS: u64 = 16384 * 8192;

/// Reads an equirectangular radiance map from a `.hdr` (Radiance RGBE) or
/// `.exr` file. Non-finite and negative values read as black.
pub(crate) fn load_file(path: &std::path::Path) -> Result<EnvMap, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > 4 << 30 {
        return Err(format!("file is {} bytes, over the limit", meta.len()));
    }
    let (width, height, mut rgb) = match ext.as_deref() {
        Some("exr") => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
            let img = crate::codec::decode_exr(&bytes).map_err(|e| e.to_string())?;
            (img.width, img.height, img.pixels)
        }
        Some("hdr") => {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
            let dec = image::codecs::hdr::HdrDecoder::new(std::io::BufReader::new(file))
                .map_err(|e| format!("not a Radiance HDR file: {e}"))?;
            let md = dec.metadata();
            if md.width as u64 * md.height as u64 > MAX_ENV_PIXELS {
                return Err(format!("{}x{} is too large", md.width, md.height));
            }
            let img = image::DynamicImage::from_decoder(dec)
                .map_err(|e| format!("cannot decode: {e}"))?
                .into_rgb32f();
            (img.width(), img.height(), img.into_raw())
        }
        _ => return Err("environment maps must be .hdr or .exr files".into()),
    };
    if width < 2 || height < 1 || width as u64 * height as u64 > MAX_ENV_PIXELS {
        return Err(format!("{width}x{height} is not a usable environment map"));
    }
    for v in &mut rgb {
        if !(v.is_finite() && *v > 0.0) {
            *v = 0.0;
        }
    }
    Ok(EnvMap { width, height, rgb })
}

/// Direction at continuous texel coordinates (`x`, `y`).
pub(crate) fn texel_dir(x: f32, y: f32, w: u32, h: u32) -> Vec3 {
    let u = x / w as f32;
    let v = y / h as f32;
    let phi = (u - 0.5) * 2.0 * std::f32::consts::PI;
    let theta = v * std::f32::consts::PI;
    let (st, ct) = theta.sin_cos();
    [st * phi.sin(), ct, -st * phi.cos()]
}

/// Index of the texel containing direction `d` (same formula as the kernel).
#[cfg(test)]
pub(crate) fn texel_index(d: Vec3, w: u32, h: u32) -> usize {
    let u = 0.5 + d[0].atan2(-d[2]) * (0.5 / std::f32::consts::PI);
    let v = d[1].clamp(-1.0, 1.0).acos() / std::f32::consts::PI;
    let x = ((u * w as f32).max(0.0) as u32).min(w - 1);
    let y = ((v * h as f32).max(0.0) as u32).min(h - 1);
    (y * w + x) as usize
}

/// The kernel's environment buffer: radiance, then the marginal CDF over
/// rows (`height` entries), then each row's conditional CDF (`width`
/// entries per row). Every CDF ends at exactly 1.
#[derive(Debug, Clone)]
pub(crate) struct EnvTables {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) buf: Vec<f32>,
    /// Mean radiance luminance over the sphere (solid-angle weighted):
    /// the environment's share when lights compete for samples.
    pub(crate) mean_luminance: f32,
}

impl EnvTables {
    /// Builds the sampling tables of `map`.
    pub(crate) fn build(map: &EnvMap) -> EnvTables {
        let (w, h) = (map.width as usize, map.height as usize);
        let mut buf = map.rgb.clone();
        let mut rows = vec![0.0f64; h];
        let mut cond = Vec::with_capacity(w * h);
        let mut weighted = 0.0f64;
        for (y, row_sum) in rows.iter_mut().enumerate() {
            let sin_t = (PI * (y as f64 + 0.5) / h as f64).sin();
            let weights: Vec<f64> = (0..w)
                .map(|x| {
                    let i = (y * w + x) * 3;
                    let lum = luminance(&map.rgb[i..i + 3]) as f64;
                    lum.max(0.0) * sin_t
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            weighted += sum;
            *row_sum = sum;
            let mut acc = 0.0f64;
            for (x, wgt) in weights.iter().enumerate() {
                acc += if sum > 0.0 { *wgt } else { 1.0 };
                let total = if sum > 0.0 { sum } else { w as f64 };
                cond.push(if x + 1 == w {
                    1.0
                } else {
                    (acc / total) as f32
                });
            }
        }
        let total: f64 = rows.iter().sum();
        let mut acc = 0.0f64;
        for (y, r) in rows.iter().enumerate() {
            acc += if total > 0.0 { *r } else { 1.0 };
            let t = if total > 0.0 { total } else { h as f64 };
            buf.push(if y + 1 == h { 1.0 } else { (acc / t) as f32 });
        }
        buf.extend_from_slice(&cond);
        // ∫ L dω ≈ Σ L sinθ Δθ Δφ; the mean divides by 4π.
        let d_omega = (PI / h as f64) * (2.0 * PI / w as f64);
        EnvTables {
            width: map.width,
            height: map.height,
            buf,
            mean_luminance: (weighted * d_omega / (4.0 * PI)) as f32,
        }
    }

    /// Solid-angle pdf of sampling direction `d` (what the kernel uses).
    #[cfg(test)]
    pub(crate) fn pdf(&self, d: Vec3) -> f64 {
        let (w, h) = (self.width as usize, self.height as usize);
        let idx = texel_index(d, self.width, self.height);
        let (x, y) = (idx % w, idx / w);
        let marg = &self.buf[w * h * 3..w * h * 3 + h];
        let cond = &self.buf[w * h * 3 + h + y * w..w * h * 3 + h + (y + 1) * w];
        let pm = marg[y] as f64 - if y > 0 { marg[y - 1] as f64 } else { 0.0 };
        let pc = cond[x] as f64 - if x > 0 { cond[x - 1] as f64 } else { 0.0 };
        // The sample is uniform in (u, v) inside its texel: the Jacobian
        // to solid angle uses the direction's own sin θ.
        let sin_t = (1.0 - (d[1] as f64).powi(2)).max(1e-12).sqrt();
        pm * pc * (w * h) as f64 / (2.0 * PI * PI * sin_t)
    }
}

fn luminance(c: &[f32]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texel_lookup_inverts_texel_direction() {
        let (w, h) = (64, 32);
        for y in 0..h {
            for x in 0..w {
                let d = texel_dir(x as f32 + 0.5, y as f32 + 0.5, w, h);
                assert_eq!(texel_index(d, w, h), (y * w + x) as usize, "texel {x},{y}");
            }
        }
        // The map's centre looks down −Z, its top row up +Y.
        assert_eq!(texel_index([0.0, 0.0, -1.0], w, h), (16 * w + 32) as usize);
        assert!(texel_index([0.0, 1.0, 0.0], w, h) < w as usize);
    }

    #[test]
    fn pdf_integrates_to_one_and_follows_luminance() {
        let map = EnvMap::studio();
        let t = EnvTables::build(&map);
        // Riemann sum of the pdf over the sphere at a finer grid.
        let (gw, gh) = (512u32, 256u32);
        let mut integral = 0.0f64;
        let d_omega_row = |y: u32| {
            let t0 = PI * y as f64 / gh as f64;
            let t1 = PI * (y + 1) as f64 / gh as f64;
            (t0.cos() - t1.cos()) * 2.0 * PI / gw as f64
        };
        for y in 0..gh {
            for x in 0..gw {
                let d = texel_dir(x as f32 + 0.5, y as f32 + 0.5, gw, gh);
                integral += t.pdf(d) * d_omega_row(y);
            }
        }
        assert!(
            (integral - 1.0).abs() < 0.01,
            "pdf integrates to {integral}"
        );
        // Brighter directions are likelier: the key softbox beats the floor.
        let key = math::normalize(KEY_DIR);
        assert!(t.pdf(key) > 10.0 * t.pdf(math::normalize([0.3, -0.8, 0.5])));
        assert!(map.lookup(key)[0] > 5.0 && map.lookup([0.0, -1.0, 0.0])[0] < 0.3);
        // A constant map has the uniform pdf and its own mean.
        let c = EnvTables::build(&EnvMap::constant([2.0; 3]));
        let equator = texel_dir(10.5, 15.5, 64, 32);
        assert!(
            (c.pdf(equator) * 4.0 * PI - 1.0).abs() < 0.02,
            "{}",
            c.pdf(equator)
        );
        assert!(
            (c.mean_luminance - 2.0).abs() < 0.05,
            "{}",
            c.mean_luminance
        );
    }
}
