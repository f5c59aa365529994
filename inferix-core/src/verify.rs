//! Checks a verifier can make from frames alone.
//!
//! The plausibility check is the floor under Proof of Render: a frame must
//! decode to the requested size and must not be a constant image.

use crate::image::Rgb8Image;

/// Why a frame is not plausible.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlausibilityError {
    /// Wrong dimensions.
    #[error("frame is {got_w}x{got_h}, expected {want_w}x{want_h}")]
    WrongSize {
        /// Width found.
        got_w: u32,
        /// Height found.
        got_h: u32,
        /// Width asked.
        want_w: u32,
        /// Height asked.
        want_h: u32,
    },
    /// Every pixel has (nearly) the same value: blank or flat frame.
    #[error("frame is flat (pixel standard deviation {stddev:.3} < {min:.3})")]
    Flat {
        /// Measured standard deviation in 8-bit units.
        stddev: f64,
        /// Required minimum.
        min: f64,
    },
    /// The pixel hash does not match the committed one.
    #[error("pixel hash {got} differs from the committed {want}")]
    HashMismatch {
        /// Hash of the decoded pixels.
        got: String,
        /// Hash in the result.
        want: String,
    },
}

/// Minimum standard deviation of a frame's 8-bit values to count as an image.
pub const MIN_STDDEV: f64 = 0.5;

/// Decoded frame has the right size and is not constant.
pub fn check_plausible(img: &Rgb8Image, width: u32, height: u32) -> Result<(), PlausibilityError> {
    if img.width != width || img.height != height {
        return Err(PlausibilityError::WrongSize {
            got_w: img.width,
            got_h: img.height,
            want_w: width,
            want_h: height,
        });
    }
    let n = img.pixels.len().max(1) as f64;
    let mean = img.pixels.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = img
        .pixels
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let stddev = var.sqrt();
    if stddev < MIN_STDDEV {
        return Err(PlausibilityError::Flat {
            stddev,
            min: MIN_STDDEV,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_wrong_size_frames_fail() {
        let flat = Rgb8Image {
            width: 4,
            height: 4,
            pixels: vec![7; 48],
            alpha: None,
        };
        assert!(matches!(
            check_plausible(&flat, 4, 4),
            Err(PlausibilityError::Flat { .. })
        ));
        assert!(matches!(
            check_plausible(&flat, 5, 4),
            Err(PlausibilityError::WrongSize { .. })
        ));
        let mut ok = flat.clone();
        for (i, p) in ok.pixels.iter_mut().enumerate() {
            *p = (i * 5) as u8;
        }
        assert_eq!(check_plausible(&ok, 4, 4), Ok(()));
    }
}
