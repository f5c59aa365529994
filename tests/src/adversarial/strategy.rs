//! The workers of the adversarial suite: honest, and each way of cheating,
//! with what each saves of the work.

use std::fmt;

use inferix_core::image::Rect;

/// How a worker produces its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    /// Renders the lease's scene with the job's settings.
    Honest,
    /// A quarter of the samples.
    FewerSamples,
    /// Half the resolution, upscaled (nearest).
    LowResUpscaled,
    /// Renders the first frame of the task and copies it to the others.
    NeighbourCopy,
    /// One flat colour.
    Blank,
    /// Random pixels.
    Noise,
    /// An honest render of another task (other frames, other key).
    OtherTaskOutput,
    /// Renders the original scene, without the lease's patches.
    PatchesRemoved,
    /// A one-sample, half-resolution render of the original scene with the
    /// patches painted at the rectangles their quads project to.
    PaintedWatermark,
    /// Honest left half, one-sample right half.
    PartialTiles,
    /// The first frame of the task at a quarter of the samples, the rest
    /// honest.
    OneCheapFrame,
    /// The central 90 % of each frame's area honest, the border around it
    /// at an eighth of the samples: a small cheat, caught only when a crop
    /// lands on the border.
    CheapBorder,
    /// The right 30 % of each frame at an eighth of the samples, the rest
    /// honest: it would save 26 % of the work if every pixel cost the
    /// same, but how much it saves depends on what the band shows (empty
    /// background costs almost nothing), so the suite measures it.
    CheapBand,
}

impl Strategy {
    /// Every strategy, honest first.
    pub const ALL: [Strategy; 13] = [
        Strategy::Honest,
        Strategy::FewerSamples,
        Strategy::LowResUpscaled,
        Strategy::NeighbourCopy,
        Strategy::Blank,
        Strategy::Noise,
        Strategy::OtherTaskOutput,
        Strategy::PatchesRemoved,
        Strategy::PaintedWatermark,
        Strategy::PartialTiles,
        Strategy::OneCheapFrame,
        Strategy::CheapBorder,
        Strategy::CheapBand,
    ];

    /// For a cheat on part of each frame of a `width`×`height` job at
    /// `samples` per pixel: the pixels it renders cheaply and the samples
    /// it gives them.
    pub fn cheap_part(self, width: u32, height: u32, samples: u32) -> Option<(Vec<Rect>, u32)> {
        let (w, h) = (width, height);
        match self {
            Strategy::PartialTiles => Some((vec![Rect::new(w / 2, 0, w - w / 2, h)], 1)),
            Strategy::CheapBorder => {
                // A centred rectangle of 90 % of the area: each side
                // √0.9 ≈ 94.9 % of the frame's.
                let side = 0.9f64.sqrt();
                let (cw, ch) = ((w as f64 * side) as u32, (h as f64 * side) as u32);
                let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
                let border = vec![
                    Rect::new(0, 0, w, y0),
                    Rect::new(0, y0 + ch, w, h - y0 - ch),
                    Rect::new(0, y0, x0, ch),
                    Rect::new(x0 + cw, y0, w - x0 - cw, ch),
                ];
                Some((border, (samples / 8).max(1)))
            }
            Strategy::CheapBand => {
                let honest_width = (w as f64 * 0.7).round() as u32;
                let band = Rect::new(honest_width, 0, w - honest_width, h);
                Some((vec![band], (samples / 8).max(1)))
            }
            _ => None,
        }
    }

    /// The fraction of an honest worker's rendering work the cheat saves
    /// on a task of `frames` frames at `samples` per pixel. For a cheat on
    /// part of each frame, `share` is the part of a frame's work in its
    /// cheap pixels.
    pub fn work_saved(self, frames: u32, samples: u32, share: f64) -> f64 {
        let fewer = |n: u32| 1.0 - n as f64 / samples.max(1) as f64;
        let frames = frames.max(1) as f64;
        match self {
            Strategy::Honest => 0.0,
            Strategy::FewerSamples => fewer((samples / 4).max(1)),
            Strategy::LowResUpscaled => 0.75,
            Strategy::NeighbourCopy => (frames - 1.0) / frames,
            // A render of one lease (or of the plain scene) sold again.
            Strategy::Blank
            | Strategy::Noise
            | Strategy::OtherTaskOutput
            | Strategy::PatchesRemoved => 1.0,
            // One sample at half the resolution.
            Strategy::PaintedWatermark => 1.0 - 0.25 / samples.max(1) as f64,
            Strategy::OneCheapFrame => fewer((samples / 4).max(1)) / frames,
            Strategy::PartialTiles | Strategy::CheapBorder | Strategy::CheapBand => {
                let (_, cheap) = self.cheap_part(1, 1, samples).expect("a partial cheat");
                share * fewer(cheap)
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Honest => "honest",
            Strategy::FewerSamples => "fewer samples (1/4)",
            Strategy::LowResUpscaled => "half resolution, upscaled",
            Strategy::NeighbourCopy => "frames copied from a neighbour",
            Strategy::Blank => "blank frames",
            Strategy::Noise => "noise frames",
            Strategy::OtherTaskOutput => "another task's output",
            Strategy::PatchesRemoved => "watermark patches removed",
            Strategy::PaintedWatermark => "patches painted on a cheap render",
            Strategy::PartialTiles => "half the tiles cheap",
            Strategy::OneCheapFrame => "one frame of the task cheap",
            Strategy::CheapBorder => "honest centre, cheap border (10 %)",
            Strategy::CheapBand => "honest left, cheap right band (30 %)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_cheats_cheap_pixels_are_its_share_of_the_frame_once_each() {
        for (w, h) in [(80, 45), (160, 90), (1920, 1080)] {
            for (s, share) in [
                (Strategy::PartialTiles, 0.5),
                (Strategy::CheapBorder, 0.1),
                (Strategy::CheapBand, 0.3),
            ] {
                let (rects, samples) = s.cheap_part(w, h, 32).unwrap();
                assert!(samples < 32);
                for (i, r) in rects.iter().enumerate() {
                    assert!(r.fits_in(w, h), "{s} {r:?} in {w}x{h}");
                    assert!(rects[i + 1..].iter().all(|o| !o.overlaps(r)), "{s}");
                }
                let area: u64 = rects.iter().map(|r| r.area()).sum();
                let frac = area as f64 / (w as f64 * h as f64);
                assert!((frac - share).abs() < 0.03, "{s} at {w}x{h}: {frac}");
            }
        }
        assert!(Strategy::FewerSamples.cheap_part(80, 45, 8).is_none());
    }

    #[test]
    fn work_saved_follows_the_samples_the_frames_and_the_timed_share() {
        assert_eq!(Strategy::Honest.work_saved(2, 32, 0.0), 0.0);
        assert_eq!(Strategy::FewerSamples.work_saved(2, 32, 0.0), 0.75);
        assert_eq!(Strategy::NeighbourCopy.work_saved(4, 32, 0.0), 0.75);
        assert_eq!(Strategy::OneCheapFrame.work_saved(2, 32, 0.0), 0.375);
        assert_eq!(Strategy::CheapBand.work_saved(2, 32, 0.2), 0.2 * 0.875);
        assert_eq!(
            Strategy::PartialTiles.work_saved(2, 32, 0.5),
            0.5 * 31.0 / 32.0
        );
    }
}
