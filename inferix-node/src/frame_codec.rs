//! Encoding of delivered frames in the job's output format.

use inferix_core::image::{Image, Rgb8Image};
use inferix_core::job::OutputFormat;
use inferix_gpu::codec;

/// Encodes a rendered image as PNG (8-bit sRGB) or EXR (linear float).
pub(crate) fn encode(img: &Image, format: OutputFormat) -> Result<Vec<u8>, codec::CodecError> {
    match format {
        OutputFormat::Png => Ok(codec::encode_png(&img.to_srgb8())),
        OutputFormat::Exr => codec::encode_exr(img),
    }
}

/// Decodes a frame file to the 8-bit pixels that results commit to.
pub(crate) fn decode(bytes: &[u8], format: OutputFormat) -> Result<Rgb8Image, codec::CodecError> {
    match format {
        OutputFormat::Png => codec::decode_png(bytes),
        OutputFormat::Exr => Ok(codec::decode_exr(bytes)?.to_srgb8()),
    }
}
