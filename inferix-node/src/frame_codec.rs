//! Encoding of delivered frames in the job's output format.

use inferix_codec as codec;
use inferix_core::image::{Image, Rgb8Image};
use inferix_core::job::OutputFormat;

/// Encodes a rendered image as PNG (8-bit sRGB) or EXR (linear float).
pub(crate) fn encode(img: &Image, format: OutputFormat) -> Result<Vec<u8>, codec::CodecError> {
    match format {
        OutputFormat::Png => Ok(codec::encode_png(&img.to_srgb8())),
        OutputFormat::Exr => codec::encode_exr(img),
    }
}

/// The most bytes a frame file of `width` x `height` can honestly take in
/// any output format: 16 bytes a pixel (EXR, four 32-bit floats; PNG needs
/// at most 8), plus 1 MiB for headers, row filters and chunk tables. A
/// larger "frame" named by a worker is refused before it is read whole.
pub(crate) fn max_encoded_len(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * 16 + (1 << 20)
}

/// Refuses a file that declares another size than `(width, height)`,
/// from its header, before a decoder allocates for what it declares.
fn expect_size(bytes: &[u8], (width, height): (u32, u32)) -> Result<(), codec::CodecError> {
    let (w, h) = codec::declared_size(bytes)?;
    if (w, h) != (width, height) {
        return Err(codec::CodecError::WrongSize {
            width: w,
            height: h,
            expected_width: width,
            expected_height: height,
        });
    }
    Ok(())
}

/// Decodes a frame file of `size` to the 8-bit pixels that results commit
/// to; a file of another size is refused unread.
pub(crate) fn decode(
    bytes: &[u8],
    format: OutputFormat,
    size: (u32, u32),
) -> Result<Rgb8Image, codec::CodecError> {
    expect_size(bytes, size)?;
    match format {
        OutputFormat::Png => codec::decode_png(bytes),
        OutputFormat::Exr => Ok(codec::decode_exr(bytes)?.to_srgb8()),
    }
}

/// A frame file decoded at its format's own precision, so that pixels
/// pasted into it and encoded again lose nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FramePixels {
    /// A PNG's 8-bit sRGB pixels.
    Srgb8(Rgb8Image),
    /// An EXR's linear float pixels.
    Linear(Image),
}

impl FramePixels {
    /// Decodes `bytes` of `format` and `size` (another size is refused
    /// unread).
    pub(crate) fn decode(
        bytes: &[u8],
        format: OutputFormat,
        size: (u32, u32),
    ) -> Result<Self, codec::CodecError> {
        expect_size(bytes, size)?;
        Ok(match format {
            OutputFormat::Png => Self::Srgb8(codec::decode_png(bytes)?),
            OutputFormat::Exr => Self::Linear(codec::decode_exr(bytes)?),
        })
    }

    /// A black `width`×`height` frame of the same precision as `self`,
    /// to paste tiles into.
    pub(crate) fn blank_like(&self, width: u32, height: u32) -> Self {
        match self {
            Self::Srgb8(_) => Self::Srgb8(Rgb8Image::opaque(
                width,
                height,
                vec![0; width as usize * height as usize * 3],
            )),
            Self::Linear(_) => Self::Linear(Image::new(width, height)),
        }
    }

    /// Width and height.
    pub(crate) fn size(&self) -> (u32, u32) {
        match self {
            Self::Srgb8(i) => (i.width, i.height),
            Self::Linear(i) => (i.width, i.height),
        }
    }

    /// Copies `src` over the pixels from (x, y); false (nothing changed)
    /// when it does not fit or is of the other precision.
    #[must_use]
    pub(crate) fn paste(&mut self, src: &FramePixels, x: u32, y: u32) -> bool {
        match (self, src) {
            (Self::Srgb8(d), Self::Srgb8(s)) => d.paste(s, x, y),
            (Self::Linear(d), Self::Linear(s)) => d.paste(s, x, y),
            _ => false,
        }
    }

    /// Encodes in the format it was decoded from.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, codec::CodecError> {
        match self {
            Self::Srgb8(i) => Ok(codec::encode_png(i)),
            Self::Linear(i) => codec::encode_exr(i),
        }
    }

    /// The 8-bit pixels results commit to.
    pub(crate) fn to_srgb8(&self) -> Rgb8Image {
        match self {
            Self::Srgb8(i) => i.clone(),
            Self::Linear(i) => i.to_srgb8(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::image::Rect;

    /// A verifier expecting a 16x8 frame does not decode a file that
    /// declares anything else, whatever it claims to hold.
    #[test]
    fn a_file_of_another_size_is_refused_before_decoding() {
        for format in [OutputFormat::Png, OutputFormat::Exr] {
            let bytes = encode(&Image::stand_in(1, 40, 30), format).unwrap();
            assert!(matches!(
                decode(&bytes, format, (16, 8)),
                Err(codec::CodecError::WrongSize {
                    width: 40,
                    height: 30,
                    ..
                })
            ));
            assert!(FramePixels::decode(&bytes, format, (40, 31)).is_err());
            assert!(decode(&bytes, format, (40, 30)).is_ok());
        }
    }

    #[test]
    fn pasting_a_crop_and_encoding_again_equals_the_other_frame() {
        for format in [OutputFormat::Png, OutputFormat::Exr] {
            let (a, b) = (Image::stand_in(1, 40, 30), Image::stand_in(2, 40, 30));
            let marked = encode(&a, format).unwrap();
            let mut frame = FramePixels::decode(&marked, format, (40, 30)).unwrap();
            // Every 10x10 block of `b`, pasted over `a`, gives `b`.
            for by in 0..3 {
                for bx in 0..4 {
                    let r = Rect::new(bx * 10, by * 10, 10, 10);
                    let crop = encode(&b.crop(r), format).unwrap();
                    let crop = FramePixels::decode(&crop, format, (10, 10)).unwrap();
                    assert!(frame.paste(&crop, r.x, r.y));
                }
            }
            let whole_b = encode(&b, format).unwrap();
            assert_eq!(frame.encode().unwrap(), whole_b, "{format:?}");
            assert_eq!(
                frame.to_srgb8().pixel_hash(),
                decode(&whole_b, format, (40, 30)).unwrap().pixel_hash()
            );
            assert_eq!(frame.size(), (40, 30));
            // A crop that does not fit, or of the other precision, is refused.
            let other = FramePixels::Srgb8(b.to_srgb8());
            let linear = FramePixels::Linear(b.clone());
            let wrong = if format == OutputFormat::Png {
                linear
            } else {
                other
            };
            assert!(!frame.paste(&wrong, 0, 0));
        }
    }
}
