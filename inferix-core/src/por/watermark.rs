//! Active noise watermarks (ANGV): small patches with a periodic pattern
//! w(x, y) = ±A·cos(2π(x/X + y/Y)) (see [`Patch::value`]) placed where the
//! manager knows they land, and the verifier's Laplacian-energy check of
//! those rectangles.
//!
//! The layout is drawn in screen space from the task key; a renderer places
//! camera-facing patches just past the near plane so that each covers its
//! rectangle exactly, is inside the frustum and is never occluded.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::key::VerificationKey;
use crate::image::{Rect, Rgb8Image};

/// Default number of patches per frame.
pub const DEFAULT_PATCHES: usize = 12;
/// Default threshold T on 8-bit images.
pub const DEFAULT_THRESHOLD: f64 = 5.0;

/// One noise patch as the renderer draws it and the verifier checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// Pixels it covers.
    pub rect: Rect,
    /// Period along x, in pixels.
    pub period_x: f32,
    /// Period along y, in pixels.
    pub period_y: f32,
    /// Amplitude in linear radiance.
    pub amplitude: f32,
    /// Frame pixel of the image's top-left pixel: zero for whole frames;
    /// a tile's corner when the patch is checked on a tile's image, so
    /// that the pattern stays the one drawn at the frame's pixels.
    #[serde(default)]
    pub origin: [u32; 2],
}

impl Patch {
    /// Pattern value at pixel (x, y) of the frame, in -A..=A: the periodic
    /// carrier A·cos(2π(x/X + y/Y)) with its sign flipped on alternate
    /// pixels.
    ///
    /// Patches are only 4–7 px wide while the periods are ~25 px, so the
    /// bare carrier is nearly flat inside a patch and its Laplacian energy
    /// depends on how much the patch happens to differ from what lies
    /// around it. The pixel checkerboard gives every patch a Laplacian
    /// energy far above the threshold on any background, so honest frames
    /// always pass, and it is still a secret periodic pattern: a worker
    /// cannot know where to paint it without the key.
    pub fn value(&self, x: u32, y: u32) -> f32 {
        let (x, y) = (x + self.origin[0], y + self.origin[1]);
        let phase = x as f32 / self.period_x + y as f32 / self.period_y;
        let sign = if (x + y) % 2 == 0 { 1.0 } else { -1.0 };
        sign * self.amplitude * (std::f32::consts::TAU * phase).cos()
    }
}

impl Patch {
    /// Linear radiance a renderer gives the patch at frame pixel (x, y):
    /// the pattern around a mid grey, pushed at least [`PATCH_FLOOR`] away
    /// from it so that pixels where the carrier crosses zero still
    /// alternate. Every watermarker draws this, so that the verifier's
    /// pattern correlation finds the same signs whatever renderer drew it.
    pub fn radiance(&self, x: u32, y: u32) -> f32 {
        let w = self.value(x, y);
        (PATCH_BASE + w + PATCH_FLOOR.copysign(w)).clamp(0.0, 1.0)
    }
}

/// Mean linear radiance of a patch.
pub const PATCH_BASE: f32 = 0.45;
/// Least distance of a patch's radiance from [`PATCH_BASE`].
pub const PATCH_FLOOR: f32 = 0.1;

/// Draws `n` non-overlapping patches of 4–7 px inside a `width`×`height`
/// frame, each with room for its 3× verification window, with periods from
/// N(25, 5) px.
pub fn layout(key: &VerificationKey, width: u32, height: u32, n: usize) -> Vec<Patch> {
    let mut rng = key.rng("watermark-layout", &[]);
    let mut patches: Vec<Patch> = Vec::with_capacity(n);
    let mut tries = 0;
    while patches.len() < n && tries < n * 200 {
        tries += 1;
        let w = rng.gen_range(4..=7u32);
        let h = rng.gen_range(4..=7u32);
        if width < 3 * w + 2 || height < 3 * h + 2 {
            continue;
        }
        let x = rng.gen_range(w + 1..=width - 2 * w - 1);
        let y = rng.gen_range(h + 1..=height - 2 * h - 1);
        let rect = Rect::new(x, y, w, h);
        // Keep whole 3× windows apart so checks do not see each other.
        let window = window_of(rect, width, height);
        if patches
            .iter()
            .any(|p| window_of(p.rect, width, height).overlaps(&window))
        {
            continue;
        }
        let mut normal = || {
            // Box–Muller.
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen_range(0.0..1.0);
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (25.0 + 5.0 * z).clamp(10.0, 40.0) as f32
        };
        let (period_x, period_y) = (normal(), normal());
        patches.push(Patch {
            rect,
            period_x,
            period_y,
            amplitude: 0.35,
            origin: [0, 0],
        });
    }
    patches
}

/// The window three times as wide and tall around `rect`, clipped to the frame.
pub fn window_of(rect: Rect, width: u32, height: u32) -> Rect {
    let x0 = rect.x.saturating_sub(rect.width);
    let y0 = rect.y.saturating_sub(rect.height);
    let x1 = (rect.x + 2 * rect.width).min(width);
    let y1 = (rect.y + 2 * rect.height).min(height);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

fn luma(img: &Rgb8Image, x: u32, y: u32) -> f64 {
    let [r, g, b] = img.get(x, y);
    0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64
}

/// Mean absolute 4-neighbour Laplacian of luminance over `rect` (borders
/// clamped).
pub fn laplacian_energy(img: &Rgb8Image, rect: Rect) -> f64 {
    let (w, h) = (img.width as i64, img.height as i64);
    let at = |x: i64, y: i64| luma(img, x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32);
    let mut sum = 0.0;
    for y in rect.y as i64..(rect.y + rect.height) as i64 {
        for x in rect.x as i64..(rect.x + rect.width) as i64 {
            let l = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y);
            sum += l.abs();
        }
    }
    sum / rect.area().max(1) as f64
}

/// e = |mean(∇²v) − mean(∇²k)| for one patch rectangle k and its window v.
pub fn contrast(img: &Rgb8Image, rect: Rect) -> f64 {
    (laplacian_energy(img, window_of(rect, img.width, img.height)) - laplacian_energy(img, rect))
        .abs()
}

/// Checks every rectangle; returns the failing ones with their contrast.
pub fn check(img: &Rgb8Image, rects: &[Rect], threshold: f64) -> Result<(), Vec<(Rect, f64)>> {
    let failing: Vec<(Rect, f64)> = rects
        .iter()
        .map(|r| {
            (
                *r,
                if r.fits_in(img.width, img.height) {
                    contrast(img, *r)
                } else {
                    0.0
                },
            )
        })
        .filter(|(_, e)| *e < threshold)
        .collect();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobId, TaskId};
    use crate::image::{srgb8_to_linear, Image};
    use crate::por::key::ManagerSecret;

    fn key() -> VerificationKey {
        VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(9), 0))
    }

    /// A smooth gradient with the patches painted in.
    fn frame(patches: &[Patch], w: u32, h: u32) -> Rgb8Image {
        let mut img = Image::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let v = srgb8_to_linear(((x + y) / 4) as u8 % 200 + 20);
                img.set(x, y, [v, v, v]);
            }
        }
        for p in patches {
            for y in p.rect.y..p.rect.y + p.rect.height {
                for x in p.rect.x..p.rect.x + p.rect.width {
                    // Checkerboard carrier modulated by the periodic pattern.
                    let s = if (x + y) % 2 == 0 { 1.0 } else { -1.0 };
                    let v = (0.4 + s * (0.2 + p.value(x, y).abs())).clamp(0.0, 1.0);
                    img.set(x, y, [v, v, v]);
                }
            }
        }
        img.to_srgb8()
    }

    #[test]
    fn layout_is_keyed_in_bounds_and_apart() {
        let ps = layout(&key(), 640, 360, DEFAULT_PATCHES);
        assert_eq!(ps.len(), DEFAULT_PATCHES);
        for (i, p) in ps.iter().enumerate() {
            assert!((4..=7).contains(&p.rect.width) && (4..=7).contains(&p.rect.height));
            assert!(window_of(p.rect, 640, 360).fits_in(640, 360));
            for q in &ps[i + 1..] {
                assert!(!p.rect.overlaps(&q.rect));
            }
        }
        assert_eq!(ps, layout(&key(), 640, 360, DEFAULT_PATCHES));
        let other =
            VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(9), 1));
        assert_ne!(ps, layout(&other, 640, 360, DEFAULT_PATCHES));
    }

    #[test]
    fn watermarked_frames_pass_and_stripped_ones_fail() {
        let ps = layout(&key(), 320, 180, DEFAULT_PATCHES);
        let rects: Vec<Rect> = ps.iter().map(|p| p.rect).collect();
        assert!(check(&frame(&ps, 320, 180), &rects, DEFAULT_THRESHOLD).is_ok());
        let stripped = frame(&[], 320, 180);
        let failing = check(&stripped, &rects, DEFAULT_THRESHOLD).unwrap_err();
        assert_eq!(failing.len(), rects.len(), "no patch survives stripping");
        let blank = Rgb8Image {
            width: 320,
            height: 180,
            pixels: vec![0; 320 * 180 * 3],
            alpha: None,
        };
        assert!(check(&blank, &rects, DEFAULT_THRESHOLD).is_err());
    }

    /// Noise of `amplitude` (linear) around mid grey, with `patches`
    /// rendered in as every watermarker draws them.
    fn noisy_frame(patches: &[Patch], amplitude: f32, w: u32, h: u32) -> Rgb8Image {
        let mut img = Image::new(w, h);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for y in 0..h {
            for x in 0..w {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let r = (state >> 40) as f32 / (1u64 << 24) as f32;
                let v = (PATCH_BASE + amplitude * (2.0 * r - 1.0)).clamp(0.0, 1.0);
                img.set(x, y, [v, v, v]);
            }
        }
        for p in patches {
            for y in p.rect.y..p.rect.y + p.rect.height {
                for x in p.rect.x..p.rect.x + p.rect.width {
                    let v = p.radiance(x, y);
                    img.set(x, y, [v, v, v]);
                }
            }
        }
        img.to_srgb8()
    }

    #[test]
    fn a_clear_pattern_passes_beside_busy_surroundings_and_noise_alone_fails() {
        let ps = layout(&key(), 320, 180, DEFAULT_PATCHES);
        // Surroundings as busy as the patches: the contrast of some patch
        // falls under the threshold while its pattern stays clear.
        let busy = (1..=200)
            .map(|i| i as f32 * 0.005)
            .map(|a| (a, noisy_frame(&ps, a, 320, 180)))
            .find(|(_, img)| {
                ps.iter().any(|p| {
                    contrast(img, p.rect) < DEFAULT_THRESHOLD
                        && pattern_correlation(img, p) >= CLEAR_PATTERN_CORRELATION
                })
            });
        let (amplitude, img) = busy.expect("noise that hides a patch's contrast");
        assert_eq!(check_patches(&img, &ps, DEFAULT_THRESHOLD), Ok(()));
        // The same noise without the patches: none is found.
        let missing = check_patches(
            &noisy_frame(&[], amplitude, 320, 180),
            &ps,
            DEFAULT_THRESHOLD,
        )
        .unwrap_err();
        assert_eq!(missing.len(), ps.len(), "noise alone shows no patch");
    }
}

/// Least correlation between a patch's pixels and the signs of its pattern
/// for the patch to count as present.
pub const MIN_PATTERN_CORRELATION: f64 = 0.5;

/// Correlation at which a patch counts as present whatever its contrast.
///
/// The contrast compares a patch with its surroundings, so an honest patch
/// beside busy detail (an edge, a textured or noisy area: Cycles at a few
/// samples) can read low, about one honest Blender frame in a few hundred at
/// 16 samples. Its own pattern still shows: honest patches correlate at
/// 0.8–0.95, while a patch-sized area without it stays within about
/// 1/√area (at most 0.5) of zero, so at this level the pattern alone is
/// proof beyond any chance match.
pub const CLEAR_PATTERN_CORRELATION: f64 = 0.75;

/// Pearson correlation between the luminance of `patch`'s pixels and the
/// sign of its pattern: near 1 where the patch was rendered, near 0 (within
/// about 1/√area) where it was not.
///
/// The Laplacian-energy contrast alone is also high wherever a frame is
/// noisy or detailed, so a frame rendered without the patches often passes
/// it; the correlation tells the patch's own pattern apart from any other
/// texture, since only the key's holder knows the periods.
pub fn pattern_correlation(img: &Rgb8Image, patch: &Patch) -> f64 {
    let r = patch.rect;
    if !r.fits_in(img.width, img.height) || r.area() < 2 {
        return 0.0;
    }
    let mut xs = Vec::with_capacity(r.area() as usize);
    let mut ys = Vec::with_capacity(r.area() as usize);
    for y in r.y..r.y + r.height {
        for x in r.x..r.x + r.width {
            xs.push(luma(img, x, y));
            ys.push(if patch.value(x, y) >= 0.0 { 1.0 } else { -1.0 });
        }
    }
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(&ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx <= f64::EPSILON || syy <= f64::EPSILON {
        return 0.0;
    }
    sxy / (sxx.sqrt() * syy.sqrt())
}

/// Why one patch was found missing.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingPatch {
    /// Where it should be.
    pub rect: Rect,
    /// Its Laplacian-energy contrast e.
    pub contrast: f64,
    /// Its pattern correlation.
    pub correlation: f64,
}

/// The full patch check: every patch must show its own pattern
/// (correlation ≥ [`MIN_PATTERN_CORRELATION`]) and either have contrast
/// e ≥ `threshold` (the published test) or show the pattern clearly
/// (correlation ≥ [`CLEAR_PATTERN_CORRELATION`]).
pub fn check_patches(
    img: &Rgb8Image,
    patches: &[Patch],
    threshold: f64,
) -> Result<(), Vec<MissingPatch>> {
    let missing: Vec<MissingPatch> = patches
        .iter()
        .map(|p| MissingPatch {
            rect: p.rect,
            contrast: if p.rect.fits_in(img.width, img.height) {
                contrast(img, p.rect)
            } else {
                0.0
            },
            correlation: pattern_correlation(img, p),
        })
        .filter(|m| {
            m.correlation < MIN_PATTERN_CORRELATION
                || (m.contrast < threshold && m.correlation < CLEAR_PATTERN_CORRELATION)
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}
