//! Image comparison metrics: PSNR, SSIM and largest channel difference.
//!
//! Large images are compared by cubecl kernels on the default device (one
//! unit per row or per SSIM window, partial results summed on the CPU in a
//! fixed order, so results are deterministic); small images, or machines
//! without a device, use the CPU implementations in [`cpu`], which the tests
//! compare the kernels against.

use std::sync::OnceLock;

use cubecl::prelude::*;
use inferix_core::image::Rgb8Image;

use crate::device::{self, with_client, Device};

/// Images with fewer pixels than this are compared on the CPU.
pub const GPU_MIN_PIXELS: u64 = 256 * 256;
/// SSIM window side (pixels) and stride.
pub const SSIM_WINDOW: u32 = 8;
/// Stride between SSIM windows.
pub const SSIM_STRIDE: u32 = 4;
const C1: f32 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f32 = (0.03 * 255.0) * (0.03 * 255.0);

fn same_size(a: &Rgb8Image, b: &Rgb8Image) -> bool {
    let n = a.width as usize * a.height as usize * 3;
    a.width == b.width
        && a.height == b.height
        && a.pixels.len() == n
        && b.pixels.len() == n
        && n > 0
}

fn shared_device() -> Option<&'static Device> {
    static DEVICE: OnceLock<Option<Device>> = OnceLock::new();
    DEVICE.get_or_init(|| device::open_best().ok()).as_ref()
}

fn use_gpu(a: &Rgb8Image) -> Option<&'static Device> {
    if (a.width as u64 * a.height as u64) < GPU_MIN_PIXELS {
        return None;
    }
    shared_device()
}

/// Peak signal-to-noise ratio in dB (infinite for identical images); `None`
/// when sizes differ or the images are empty.
pub fn psnr(a: &Rgb8Image, b: &Rgb8Image) -> Option<f64> {
    if !same_size(a, b) {
        return None;
    }
    let sse = match use_gpu(a) {
        Some(d) => gpu_sse(d, a, b),
        None => cpu::sse(a, b),
    };
    Some(psnr_from_sse(sse, a.pixels.len()))
}

/// Mean structural similarity of the luma channel over 8x8 windows with
/// stride 4 (1.0 for identical images); `None` when sizes differ or the
/// images are smaller than one window.
pub fn ssim(a: &Rgb8Image, b: &Rgb8Image) -> Option<f64> {
    if !same_size(a, b) || a.width < SSIM_WINDOW || a.height < SSIM_WINDOW {
        return None;
    }
    match use_gpu(a) {
        Some(d) => Some(gpu_ssim(d, a, b)),
        None => cpu::ssim(a, b),
    }
}

/// Largest absolute difference of any channel of any pixel; `None` when the
/// sizes differ.
pub fn max_channel_diff(a: &Rgb8Image, b: &Rgb8Image) -> Option<u8> {
    if a.width != b.width || a.height != b.height || a.pixels.len() != b.pixels.len() {
        return None;
    }
    if a.pixels.is_empty() {
        return Some(0);
    }
    match use_gpu(a) {
        Some(d) => Some(gpu_max_diff(d, a, b)),
        None => cpu::max_channel_diff(a, b),
    }
}

fn psnr_from_sse(sse: u64, values: usize) -> f64 {
    if sse == 0 {
        return f64::INFINITY;
    }
    let mse = sse as f64 / values as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// CPU reference implementations.
pub mod cpu {
    use super::*;

    pub(crate) fn sse(a: &Rgb8Image, b: &Rgb8Image) -> u64 {
        a.pixels
            .iter()
            .zip(&b.pixels)
            .map(|(x, y)| (*x as i64 - *y as i64).pow(2) as u64)
            .sum()
    }

    /// PSNR on the CPU.
    pub fn psnr(a: &Rgb8Image, b: &Rgb8Image) -> Option<f64> {
        same_size(a, b).then(|| psnr_from_sse(sse(a, b), a.pixels.len()))
    }

    /// Largest channel difference on the CPU.
    pub fn max_channel_diff(a: &Rgb8Image, b: &Rgb8Image) -> Option<u8> {
        a.max_channel_diff(b)
    }

    fn luma(img: &Rgb8Image, x: u32, y: u32) -> f32 {
        let p = img.get(x, y);
        0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
    }

    /// SSIM of one window at (x0, y0), in f32 like the kernel.
    pub(crate) fn window_ssim(a: &Rgb8Image, b: &Rgb8Image, x0: u32, y0: u32) -> f32 {
        let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for y in y0..y0 + SSIM_WINDOW {
            for x in x0..x0 + SSIM_WINDOW {
                let (la, lb) = (luma(a, x, y), luma(b, x, y));
                sa += la;
                sb += lb;
                saa += la * la;
                sbb += lb * lb;
                sab += la * lb;
            }
        }
        let n = (SSIM_WINDOW * SSIM_WINDOW) as f32;
        let (ma, mb) = (sa / n, sb / n);
        let va = saa / n - ma * ma;
        let vb = sbb / n - mb * mb;
        let cov = sab / n - ma * mb;
        ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2))
    }

    /// SSIM on the CPU.
    pub fn ssim(a: &Rgb8Image, b: &Rgb8Image) -> Option<f64> {
        if !same_size(a, b) || a.width < SSIM_WINDOW || a.height < SSIM_WINDOW {
            return None;
        }
        let (nx, ny) = windows(a);
        let mut total = 0.0f64;
        for wy in 0..ny {
            for wx in 0..nx {
                total += window_ssim(a, b, wx * SSIM_STRIDE, wy * SSIM_STRIDE) as f64;
            }
        }
        Some(total / (nx * ny) as f64)
    }
}

fn windows(a: &Rgb8Image) -> (u32, u32) {
    (
        (a.width - SSIM_WINDOW) / SSIM_STRIDE + 1,
        (a.height - SSIM_WINDOW) / SSIM_STRIDE + 1,
    )
}

/// One unit per row: sum of squared differences and largest difference.
#[cube(launch)]
fn row_diff_kernel(
    a: &Array<u32>,
    b: &Array<u32>,
    params: &Array<u32>,
    sse: &mut Array<u32>,
    maxd: &mut Array<u32>,
) {
    let row = ABSOLUTE_POS;
    let width = params[0] as usize;
    let height = params[1] as usize;
    if row < height {
        let mut s: u32 = 0;
        let mut m: u32 = 0;
        let base = row * width * 3;
        for i in 0..width * 3 {
            let x = a[base + i];
            let y = b[base + i];
            let d = select(x > y, x - y, y - x);
            s += d * d;
            m = u32::max(m, d);
        }
        sse[row] = s;
        maxd[row] = m;
    }
}

#[cube]
fn luma_at(img: &Array<u32>, i: usize) -> f32 {
    0.299 * f32::cast_from(img[i])
        + 0.587 * f32::cast_from(img[i + 1])
        + 0.114 * f32::cast_from(img[i + 2])
}

/// One unit per SSIM window.
#[cube(launch)]
fn ssim_kernel(a: &Array<u32>, b: &Array<u32>, params: &Array<u32>, out: &mut Array<f32>) {
    let w = ABSOLUTE_POS;
    let width = params[0] as usize;
    let nx = params[2] as usize;
    let ny = params[3] as usize;
    if w < nx * ny {
        let x0 = (w % nx) * 4;
        let y0 = (w / nx) * 4;
        let mut sa: f32 = 0.0;
        let mut sb: f32 = 0.0;
        let mut saa: f32 = 0.0;
        let mut sbb: f32 = 0.0;
        let mut sab: f32 = 0.0;
        for y in 0..8usize {
            for x in 0..8usize {
                let i = ((y0 + y) * width + x0 + x) * 3;
                let la = luma_at(a, i);
                let lb = luma_at(b, i);
                sa += la;
                sb += lb;
                saa += la * la;
                sbb += lb * lb;
                sab += la * lb;
            }
        }
        let n = 64.0f32;
        let ma = sa / n;
        let mb = sb / n;
        let va = saa / n - ma * ma;
        let vb = sbb / n - mb * mb;
        let cov = sab / n - ma * mb;
        let c1 = 6.5025f32;
        let c2 = 58.5225f32;
        out[w] =
            ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
    }
}

fn widen(img: &Rgb8Image) -> Vec<u32> {
    img.pixels.iter().map(|&v| v as u32).collect()
}

fn row_diffs<R: Runtime>(
    client: &ComputeClient<R>,
    a: &Rgb8Image,
    b: &Rgb8Image,
) -> (Vec<u32>, Vec<u32>) {
    let (wa, wb) = (widen(a), widen(b));
    let ha = device::upload_u32(client, &wa);
    let hb = device::upload_u32(client, &wb);
    let params = [a.width, a.height, 0, 0];
    let hp = device::upload_u32(client, &params);
    let rows = a.height as usize;
    let hs = device::upload_u32(client, &vec![0u32; rows]);
    let hm = device::upload_u32(client, &vec![0u32; rows]);
    row_diff_kernel::launch::<R>(
        client,
        CubeCount::Static((rows as u32).div_ceil(64), 1, 1),
        CubeDim::new_1d(64),
        device::array_arg(&ha, wa.len()),
        device::array_arg(&hb, wb.len()),
        device::array_arg(&hp, params.len()),
        device::array_arg(&hs, rows),
        device::array_arg(&hm, rows),
    );
    (device::read_u32(client, hs), device::read_u32(client, hm))
}

pub(crate) fn gpu_sse(d: &Device, a: &Rgb8Image, b: &Rgb8Image) -> u64 {
    let (s, _): (Vec<u32>, Vec<u32>) = with_client!(&d.backend, client => row_diffs(client, a, b));
    s.iter().map(|&v| v as u64).sum()
}

pub(crate) fn gpu_max_diff(d: &Device, a: &Rgb8Image, b: &Rgb8Image) -> u8 {
    let (_, m): (Vec<u32>, Vec<u32>) = with_client!(&d.backend, client => row_diffs(client, a, b));
    m.iter().copied().max().unwrap_or(0).min(255) as u8
}

fn ssim_windows<R: Runtime>(client: &ComputeClient<R>, a: &Rgb8Image, b: &Rgb8Image) -> Vec<f32> {
    let (nx, ny) = windows(a);
    let (wa, wb) = (widen(a), widen(b));
    let ha = device::upload_u32(client, &wa);
    let hb = device::upload_u32(client, &wb);
    let params = [a.width, a.height, nx, ny];
    let hp = device::upload_u32(client, &params);
    let n = (nx * ny) as usize;
    let ho = device::upload_f32(client, &vec![0.0f32; n]);
    ssim_kernel::launch::<R>(
        client,
        CubeCount::Static((n as u32).div_ceil(64), 1, 1),
        CubeDim::new_1d(64),
        device::array_arg(&ha, wa.len()),
        device::array_arg(&hb, wb.len()),
        device::array_arg(&hp, params.len()),
        device::array_arg(&ho, n),
    );
    device::read_f32(client, ho)
}

pub(crate) fn gpu_ssim(d: &Device, a: &Rgb8Image, b: &Rgb8Image) -> f64 {
    let w: Vec<f32> = with_client!(&d.backend, client => ssim_windows(client, a, b));
    w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(w: u32, h: u32, seed: u32, amp: u32) -> Rgb8Image {
        let mut s = seed;
        let pixels = (0..w * h * 3)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let base = (i / 3 % w * 255 / w) as i64;
                (base + (s >> 24) as i64 % (amp as i64 + 1) - amp as i64 / 2).clamp(0, 255) as u8
            })
            .collect();
        Rgb8Image {
            width: w,
            height: h,
            pixels,
            alpha: None,
        }
    }

    #[test]
    fn cpu_metrics_basics() {
        let a = noisy(32, 16, 1, 0);
        let b = noisy(32, 16, 2, 40);
        assert_eq!(cpu::psnr(&a, &a), Some(f64::INFINITY));
        assert!((cpu::ssim(&a, &a).unwrap() - 1.0).abs() < 1e-6);
        let p = cpu::psnr(&a, &b).unwrap();
        assert!(p > 10.0 && p < 40.0, "{p}");
        assert!(cpu::ssim(&a, &b).unwrap() < 0.99);
        assert_eq!(cpu::max_channel_diff(&a, &b), a.max_channel_diff(&b));
        let c = noisy(16, 16, 1, 0);
        assert_eq!(psnr(&a, &c), None);
        assert_eq!(ssim(&a, &c), None);
        assert_eq!(max_channel_diff(&a, &c), None);
    }

    /// Kernel results against the CPU references, per runtime.
    macro_rules! testgen_metrics {
        ($module:ident, $kind:expr) => {
            mod $module {
                use super::*;

                #[test]
                fn kernels_match_cpu() {
                    let Ok(d) = crate::device::open($kind) else {
                        assert!($kind != crate::RuntimeKind::Wgpu, "wgpu device required");
                        return;
                    };
                    for (w, h) in [(37u32, 21u32), (64, 64)] {
                        let a = noisy(w, h, 3, 10);
                        let b = noisy(w, h, 4, 60);
                        assert_eq!(gpu_sse(&d, &a, &b), cpu::sse(&a, &b));
                        assert_eq!(
                            gpu_max_diff(&d, &a, &b),
                            cpu::max_channel_diff(&a, &b).unwrap()
                        );
                        let (g, c) = (gpu_ssim(&d, &a, &b), cpu::ssim(&a, &b).unwrap());
                        assert!((g - c).abs() < 1e-4, "ssim gpu {g} cpu {c}");
                        assert!((gpu_ssim(&d, &a, &a) - 1.0).abs() < 1e-4);
                    }
                }
            }
        };
    }

    #[cfg(feature = "wgpu")]
    testgen_metrics!(wgpu, crate::RuntimeKind::Wgpu);
    #[cfg(feature = "cuda")]
    testgen_metrics!(cuda, crate::RuntimeKind::Cuda);
    #[cfg(feature = "hip")]
    testgen_metrics!(hip, crate::RuntimeKind::Hip);
}
