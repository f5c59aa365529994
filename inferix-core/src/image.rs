//! Images as renderers produce them and verifiers consume them.
//!
//! Pixels are kept as linear-light `f32` RGB so that PNG (sRGB 8-bit) and
//! EXR (linear float) outputs are both exact conversions of the same data,
//! and so that the 8-bit encoding is done once, on the CPU, identically on
//! every worker and verifier.

use serde::{Deserialize, Serialize};

/// A rectangle of pixels, `x`/`y` being the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rect {
    /// A rectangle from its corner and size.
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// Number of pixels covered.
    pub fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// Whether the rectangle lies fully inside a `width`×`height` image.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        self.width > 0
            && self.height > 0
            && self.x.checked_add(self.width).is_some_and(|r| r <= width)
            && self.y.checked_add(self.height).is_some_and(|b| b <= height)
    }

    /// Whether two rectangles share at least one pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }
}

/// A linear-light RGB image, row-major, three `f32` per pixel, with an
/// optional coverage (alpha) channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` linear RGB values, premultiplied by `alpha`
    /// when there is one (a half-covered pixel holds half its colour).
    pub pixels: Vec<f32>,
    /// `width * height` coverage values in 0..=1 for renders with a
    /// transparent background; `None` for opaque images.
    #[serde(default)]
    pub alpha: Option<Vec<f32>>,
}

impl Image {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![0.0; width as usize * height as usize * 3],
            alpha: None,
        }
    }

    /// Coverage of pixel (x, y): 1 for opaque images.
    pub fn alpha_at(&self, x: u32, y: u32) -> f32 {
        self.alpha
            .as_ref()
            .map_or(1.0, |a| a[y as usize * self.width as usize + x as usize])
    }

    /// A deterministic stand-in for a rendered frame `frame`: varied
    /// enough to pass verifiers' plausibility checks, which refuse flat
    /// frames. Simulated and benchmark renderers deliver it.
    pub fn stand_in(frame: u32, width: u32, height: u32) -> Self {
        let mut img = Image::new(width, height);
        for y in 0..height {
            for x in 0..width {
                let v = ((x * 7 + y * 3 + frame * 11) % 64) as f32 / 64.0;
                img.set(x, y, [v, 1.0 - v, (frame % 7) as f32 / 7.0]);
            }
        }
        img
    }

    /// Linear RGB of pixel (x, y).
    pub fn get(&self, x: u32, y: u32) -> [f32; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets pixel (x, y).
    pub fn set(&mut self, x: u32, y: u32, rgb: [f32; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&rgb);
    }

    /// The sub-image covered by `rect` (which must fit).
    pub fn crop(&self, rect: Rect) -> Image {
        let mut out = Image::new(rect.width, rect.height);
        for y in 0..rect.height {
            let src = ((rect.y + y) as usize * self.width as usize + rect.x as usize) * 3;
            let dst = y as usize * rect.width as usize * 3;
            let n = rect.width as usize * 3;
            out.pixels[dst..dst + n].copy_from_slice(&self.pixels[src..src + n]);
        }
        if let Some(a) = &self.alpha {
            let mut cropped = Vec::with_capacity(rect.area() as usize);
            for y in 0..rect.height {
                let src = (rect.y + y) as usize * self.width as usize + rect.x as usize;
                cropped.extend_from_slice(&a[src..src + rect.width as usize]);
            }
            out.alpha = Some(cropped);
        }
        out
    }

    /// Copies `src` over the pixels from (x, y); false (and nothing
    /// changed) when `src` does not fit there. Clean delivery pastes the
    /// re-rendered patch rectangles this way.
    #[must_use]
    pub fn paste(&mut self, src: &Image, x: u32, y: u32) -> bool {
        if !Rect::new(x, y, src.width, src.height).fits_in(self.width, self.height)
            || src.pixels.len() != src.width as usize * src.height as usize * 3
            || src
                .alpha
                .as_ref()
                .is_some_and(|a| a.len() != src.width as usize * src.height as usize)
        {
            return false;
        }
        let w = self.width as usize;
        for row in 0..src.height as usize {
            let dst = ((y as usize + row) * w + x as usize) * 3;
            let from = row * src.width as usize * 3;
            let n = src.width as usize * 3;
            self.pixels[dst..dst + n].copy_from_slice(&src.pixels[from..from + n]);
            if src.alpha.is_some() && self.alpha.is_none() {
                self.alpha = Some(vec![1.0; w * self.height as usize]);
            }
            if let Some(a) = &mut self.alpha {
                for col in 0..src.width {
                    a[(y as usize + row) * w + (x + col) as usize] = src.alpha_at(col, row as u32);
                }
            }
        }
        true
    }

    /// Converts to 8-bit sRGB (the PNG encoding), clamping out-of-range
    /// values. Colours with coverage are un-premultiplied (PNG's straight
    /// alpha); coverage that is full everywhere is dropped, so an image has
    /// one 8-bit form whichever way it was produced.
    pub fn to_srgb8(&self) -> Rgb8Image {
        let Some(alpha) = self.alpha.as_ref().filter(|a| a.iter().any(|&v| v < 1.0)) else {
            return Rgb8Image {
                width: self.width,
                height: self.height,
                pixels: self.pixels.iter().map(|&v| linear_to_srgb8(v)).collect(),
                alpha: None,
            };
        };
        let mut pixels = Vec::with_capacity(self.pixels.len());
        for (p, &a) in self.pixels.chunks_exact(3).zip(alpha) {
            let a = if a.is_nan() { 0.0 } else { a.clamp(0.0, 1.0) };
            let inv = if a > 0.0 { 1.0 / a } else { 0.0 };
            pixels.extend(p.iter().map(|&c| linear_to_srgb8(c * inv)));
        }
        Rgb8Image {
            width: self.width,
            height: self.height,
            pixels,
            alpha: Some(alpha.iter().map(|&a| coverage_to_u8(a)).collect()),
        }
    }
}

/// Coverage in 0..=1 as an 8-bit alpha value.
pub fn coverage_to_u8(a: f32) -> u8 {
    let a = if a.is_nan() { 0.0 } else { a.clamp(0.0, 1.0) };
    (a * 255.0).round() as u8
}

/// An 8-bit sRGB image, row-major, three bytes per pixel, with straight
/// (un-premultiplied) 8-bit alpha when it has transparent pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgb8Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
    /// `width * height` alpha bytes; `None` for an opaque image.
    #[serde(default)]
    pub alpha: Option<Vec<u8>>,
}

impl Rgb8Image {
    /// An opaque image of `pixels`.
    pub fn opaque(width: u32, height: u32, pixels: Vec<u8>) -> Self {
        Self {
            width,
            height,
            pixels,
            alpha: None,
        }
    }

    /// BLAKE3 of the decoded pixels and dimensions: what results commit to,
    /// so that re-encoding a file (metadata, compression level) does not
    /// change the identity of a frame. Alpha counts when there is one.
    pub fn pixel_hash(&self) -> crate::ContentHash {
        let mut h = blake3::Hasher::new();
        h.update(&self.width.to_le_bytes());
        h.update(&self.height.to_le_bytes());
        h.update(&self.pixels);
        if let Some(a) = &self.alpha {
            h.update(b"alpha");
            h.update(a);
        }
        crate::ContentHash(*h.finalize().as_bytes())
    }

    /// Alpha of pixel (x, y): 255 for opaque images.
    pub fn alpha_at(&self, x: u32, y: u32) -> u8 {
        self.alpha
            .as_ref()
            .map_or(255, |a| a[y as usize * self.width as usize + x as usize])
    }

    /// Drops an alpha channel that is 255 everywhere, the one form decoders
    /// and [`Image::to_srgb8`] agree on.
    pub fn without_full_alpha(mut self) -> Self {
        if self
            .alpha
            .as_ref()
            .is_some_and(|a| a.iter().all(|&v| v == 255))
        {
            self.alpha = None;
        }
        self
    }

    /// Byte triple of pixel (x, y).
    pub fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// The sub-image covered by `rect` (which must fit).
    pub fn crop(&self, rect: Rect) -> Rgb8Image {
        let mut pixels = Vec::with_capacity(rect.area() as usize * 3);
        for y in rect.y..rect.y + rect.height {
            let s = (y as usize * self.width as usize + rect.x as usize) * 3;
            pixels.extend_from_slice(&self.pixels[s..s + rect.width as usize * 3]);
        }
        let alpha = self.alpha.as_ref().map(|a| {
            let mut out = Vec::with_capacity(rect.area() as usize);
            for y in rect.y..rect.y + rect.height {
                let s = y as usize * self.width as usize + rect.x as usize;
                out.extend_from_slice(&a[s..s + rect.width as usize]);
            }
            out
        });
        Rgb8Image {
            width: rect.width,
            height: rect.height,
            pixels,
            alpha,
        }
    }

    /// Copies `src` over the pixels from (x, y); false (and nothing
    /// changed) when it does not fit there.
    #[must_use]
    pub fn paste(&mut self, src: &Rgb8Image, x: u32, y: u32) -> bool {
        let area = src.width as usize * src.height as usize;
        if !Rect::new(x, y, src.width, src.height).fits_in(self.width, self.height)
            || src.pixels.len() != area * 3
            || src.alpha.as_ref().is_some_and(|a| a.len() != area)
        {
            return false;
        }
        let w = self.width as usize;
        if src.alpha.is_some() && self.alpha.is_none() {
            self.alpha = Some(vec![255; w * self.height as usize]);
        }
        for row in 0..src.height as usize {
            let dst = ((y as usize + row) * w + x as usize) * 3;
            let n = src.width as usize * 3;
            self.pixels[dst..dst + n].copy_from_slice(&src.pixels[row * n..row * n + n]);
            if let Some(a) = &mut self.alpha {
                let dst = (y as usize + row) * w + x as usize;
                for col in 0..src.width {
                    a[dst + col as usize] = src.alpha_at(col, row as u32);
                }
            }
        }
        true
    }

    /// Largest absolute difference of any channel of any pixel, alpha
    /// included (an opaque image's alpha being 255); `None` when the sizes
    /// differ.
    pub fn max_channel_diff(&self, other: &Rgb8Image) -> Option<u8> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let colour = self
            .pixels
            .iter()
            .zip(&other.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let alpha = match (&self.alpha, &other.alpha) {
            (None, None) => 0,
            _ => (0..self.height)
                .flat_map(|y| (0..self.width).map(move |x| (x, y)))
                .map(|(x, y)| self.alpha_at(x, y).abs_diff(other.alpha_at(x, y)))
                .max()
                .unwrap_or(0),
        };
        Some(colour.max(alpha))
    }
}

/// The sRGB transfer function, rounded to the nearest byte.
pub fn linear_to_srgb8(v: f32) -> u8 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let s = if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Inverse of [`linear_to_srgb8`] (up to quantisation).
pub fn srgb8_to_linear(b: u8) -> f32 {
    let s = b as f32 / 255.0;
    if s <= 0.04045 {
        s / 12.92
    } else {
        ((s + 0.055) / 1.055).powf(2.4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paste_copies_a_crop_back_and_refuses_what_does_not_fit() {
        let a = Image::stand_in(1, 9, 7);
        let b = Image::stand_in(2, 9, 7);
        let r = Rect::new(2, 3, 4, 2);
        let mut c = a.clone();
        assert!(c.paste(&b.crop(r), r.x, r.y));
        for y in 0..7 {
            for x in 0..9 {
                let inside = (2..6).contains(&x) && (3..5).contains(&y);
                assert_eq!(c.get(x, y), if inside { b.get(x, y) } else { a.get(x, y) });
            }
        }
        let before = c.clone();
        assert!(!c.paste(&b.crop(r), 6, 6));
        assert!(!c.paste(&b.crop(r), u32::MAX, 0));
        let mut short = b.crop(r);
        short.pixels.pop();
        assert!(!c.paste(&short, 0, 0));
        assert_eq!(c, before);
        let (a8, b8) = (a.to_srgb8(), b.to_srgb8());
        let mut c8 = a8.clone();
        assert!(c8.paste(&b8.crop(r), r.x, r.y));
        assert_eq!(c8, c.to_srgb8());
        assert!(!c8.paste(&b8, 1, 0));
    }

    #[test]
    fn coverage_travels_through_eight_bits_straight_and_full_coverage_drops() {
        let mut img = Image::new(2, 1);
        img.set(0, 0, [0.25, 0.125, 0.0]);
        img.alpha = Some(vec![0.5, 1.0]);
        let b = img.to_srgb8();
        assert_eq!(b.alpha, Some(vec![128, 255]));
        // Half covered, premultiplied 0.25: its straight colour is 0.5.
        assert_eq!(b.get(0, 0)[0], linear_to_srgb8(0.5));
        img.alpha = Some(vec![1.0, 1.0]);
        assert_eq!(img.to_srgb8().alpha, None);
        let opaque = Rgb8Image::opaque(2, 1, vec![0; 6]);
        let mut seen = opaque.clone();
        seen.alpha = Some(vec![255, 255]);
        assert_eq!(seen.max_channel_diff(&opaque), Some(0));
        assert_eq!(seen.clone().without_full_alpha(), opaque);
        seen.alpha = Some(vec![255, 200]);
        assert_eq!(seen.max_channel_diff(&opaque), Some(55));
        assert_ne!(seen.pixel_hash(), opaque.pixel_hash());
        // Pasting a transparent crop into an opaque frame gives it alpha.
        let mut frame = Rgb8Image::opaque(3, 1, vec![9; 9]);
        assert!(frame.paste(&seen.crop(Rect::new(1, 0, 1, 1)), 2, 0));
        assert_eq!(frame.alpha, Some(vec![255, 255, 200]));
    }

    #[test]
    fn srgb_round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_srgb8(srgb8_to_linear(b)), b);
        }
    }

    #[test]
    fn crop_takes_the_right_pixels() {
        let mut img = Image::new(4, 3);
        img.set(2, 1, [0.5, 0.25, 1.0]);
        let c = img.crop(Rect::new(1, 1, 2, 2));
        assert_eq!(c.get(1, 0), [0.5, 0.25, 1.0]);
        assert_eq!(c.get(0, 0), [0.0; 3]);
        let c8 = img.to_srgb8().crop(Rect::new(2, 1, 1, 1));
        assert_eq!(c8.pixels, img.to_srgb8().get(2, 1).to_vec());
    }

    #[test]
    fn rect_bounds_and_overlap() {
        assert!(Rect::new(0, 0, 4, 3).fits_in(4, 3));
        assert!(!Rect::new(1, 0, 4, 3).fits_in(4, 3));
        assert!(!Rect::new(0, 0, 0, 3).fits_in(4, 3));
        assert!(!Rect::new(u32::MAX, 0, 2, 1).fits_in(4, 3));
        assert!(Rect::new(0, 0, 2, 2).overlaps(&Rect::new(1, 1, 2, 2)));
        assert!(!Rect::new(0, 0, 2, 2).overlaps(&Rect::new(2, 0, 2, 2)));
    }
}
