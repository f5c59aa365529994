//! PNG (sRGB 8-bit, alpha when a frame has transparent pixels) and EXR
//! (linear float) encoding of frames.
//!
//! Its own crate so that nodes which only move frames (a manager
//! compositing clean pixels, a verifier decoding a worker's frames) need
//! no renderer to read and write them; `inferix_gpu::codec` re-exports it.

use inferix_core::image::{Image, Rgb8Image};

/// Largest image side accepted when decoding.
pub const MAX_DECODE_SIDE: u32 = 16384;
/// Largest pixel count accepted when decoding.
pub const MAX_DECODE_PIXELS: u64 = 64 * 1024 * 1024;

/// Why an image could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid file of the format.
    #[error("malformed image: {0}")]
    Malformed(String),
    /// A valid file with a colour type or bit depth we do not accept.
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// Dimensions that are zero or too large to decode safely.
    #[error("image size {width}x{height} is outside the accepted range")]
    TooLarge {
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
    },
    /// Pixel buffer length does not match the dimensions.
    #[error("pixel buffer has {got} values, expected {expected}")]
    BadBuffer {
        /// Values present.
        got: usize,
        /// Values required.
        expected: usize,
    },
    /// The file declares another size than the one expected of it.
    #[error("image declares {width}x{height}, expected {expected_width}x{expected_height}")]
    WrongSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Expected width.
        expected_width: u32,
        /// Expected height.
        expected_height: u32,
    },
}

/// The width and height a PNG or EXR file declares, read from its header
/// alone: a reader that knows what size to expect refuses anything else
/// before a decoder allocates for it (a small file may declare a huge
/// image). Every layer of an EXR must declare the same size.
pub fn declared_size(bytes: &[u8]) -> Result<(u32, u32), CodecError> {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    const EXR_MAGIC: &[u8] = &[0x76, 0x2f, 0x31, 0x01];
    if bytes.starts_with(PNG_MAGIC) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder
            .read_info()
            .map_err(|e| CodecError::Malformed(e.to_string()))?;
        let info = reader.info();
        return Ok((info.width, info.height));
    }
    if bytes.starts_with(EXR_MAGIC) {
        let meta = exr::meta::MetaData::read_from_buffered(std::io::Cursor::new(bytes), false)
            .map_err(|e| CodecError::Malformed(e.to_string()))?;
        return exr_layer_size(&meta);
    }
    Err(CodecError::Malformed("neither PNG nor EXR".into()))
}

/// The one size every layer of an EXR declares.
fn exr_layer_size(meta: &exr::meta::MetaData) -> Result<(u32, u32), CodecError> {
    let mut sizes = meta.headers.iter().map(|h| h.layer_size);
    let first = sizes
        .next()
        .ok_or_else(|| CodecError::Malformed("no layers".into()))?;
    if sizes.any(|s| s != first) {
        return Err(CodecError::Malformed("layers of different sizes".into()));
    }
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok((side(first.width()), side(first.height())))
}

fn check_size(width: u32, height: u32) -> Result<(), CodecError> {
    if width == 0
        || height == 0
        || width > MAX_DECODE_SIDE
        || height > MAX_DECODE_SIDE
        || width as u64 * height as u64 > MAX_DECODE_PIXELS
    {
        return Err(CodecError::TooLarge { width, height });
    }
    Ok(())
}

/// Encodes an 8-bit sRGB image as PNG: RGBA when it has alpha, else RGB.
pub fn encode_png(img: &Rgb8Image) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width, img.height);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
        let ok = match &img.alpha {
            None => {
                enc.set_color(png::ColorType::Rgb);
                enc.write_header()
                    .and_then(|mut w| w.write_image_data(&img.pixels))
            }
            Some(alpha) => {
                enc.set_color(png::ColorType::Rgba);
                let mut rgba = Vec::with_capacity(alpha.len() * 4);
                for (p, a) in img.pixels.chunks_exact(3).zip(alpha) {
                    rgba.extend_from_slice(p);
                    rgba.push(*a);
                }
                enc.write_header()
                    .and_then(|mut w| w.write_image_data(&rgba))
            }
        };
        if let Err(e) = ok {
            // Only reachable with inconsistent dimensions/buffer; produce an
            // empty stream the decoder rejects rather than panicking.
            tracing::warn!("png encode failed: {e}");
            return Vec::new();
        }
    }
    out
}

/// Decodes an RGB8 or RGBA8 PNG, bounding allocation; alpha that is
/// opaque everywhere is dropped (see [`Rgb8Image::without_full_alpha`]).
pub fn decode_png(bytes: &[u8]) -> Result<Rgb8Image, CodecError> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: (MAX_DECODE_PIXELS * 4) as usize,
        },
    );
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| match e {
        png::DecodingError::LimitsExceeded => CodecError::TooLarge {
            width: 0,
            height: 0,
        },
        e => CodecError::Malformed(e.to_string()),
    })?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    check_size(width, height)?;
    let channels = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        (c, d) => {
            return Err(CodecError::Unsupported(format!(
                "{c:?} {d:?} (need RGB8 or RGBA8)"
            )))
        }
    };
    let size = reader.output_buffer_size();
    if size as u64 > MAX_DECODE_PIXELS * 4 {
        return Err(CodecError::TooLarge { width, height });
    }
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    let line = frame.line_size;
    let area = width as usize * height as usize;
    let mut pixels = Vec::with_capacity(area * 3);
    let mut alpha = (channels == 4).then(|| Vec::with_capacity(area));
    for y in 0..height as usize {
        let row = &buf[y * line..y * line + width as usize * channels];
        match &mut alpha {
            None => pixels.extend_from_slice(row),
            Some(alpha) => {
                for px in row.chunks_exact(4) {
                    pixels.extend_from_slice(&px[..3]);
                    alpha.push(px[3]);
                }
            }
        }
    }
    Ok(Rgb8Image {
        width,
        height,
        pixels,
        alpha,
    }
    .without_full_alpha())
}

/// Encodes a linear image as a single-layer RGB 32-bit float OpenEXR file,
/// RGBA (premultiplied, as EXR expects) when the image has alpha.
pub fn encode_exr(img: &Image) -> Result<Vec<u8>, CodecError> {
    use exr::prelude::*;
    check_buffers(img)?;
    check_size(img.width, img.height)?;
    let w = img.width as usize;
    let size = (img.width as usize, img.height as usize);
    let mut out = std::io::Cursor::new(Vec::new());
    let written = match &img.alpha {
        None => {
            let channels = SpecificChannels::rgb(|pos: Vec2<usize>| {
                let i = (pos.y() * w + pos.x()) * 3;
                (img.pixels[i], img.pixels[i + 1], img.pixels[i + 2])
            });
            exr::image::Image::from_channels(size, channels)
                .write()
                .to_buffered(&mut out)
        }
        Some(alpha) => {
            let channels = SpecificChannels::rgba(|pos: Vec2<usize>| {
                let p = pos.y() * w + pos.x();
                let i = p * 3;
                (
                    img.pixels[i],
                    img.pixels[i + 1],
                    img.pixels[i + 2],
                    alpha[p],
                )
            });
            exr::image::Image::from_channels(size, channels)
                .write()
                .to_buffered(&mut out)
        }
    };
    written.map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(out.into_inner())
}

/// As [`encode_exr`], with 16-bit half-float samples: half the size, the
/// depth compositing pipelines usually keep (about three significant
/// digits; values beyond 65504 become infinite). Frames are delivered as
/// 32-bit float, so that Proof of Render compares what was rendered; this
/// is for outputs made from them.
pub fn encode_exr_half(img: &Image) -> Result<Vec<u8>, CodecError> {
    use exr::prelude::*;
    check_buffers(img)?;
    check_size(img.width, img.height)?;
    let n = img.width as usize * img.height as usize;
    let half = |values: &mut dyn Iterator<Item = f32>| {
        FlatSamples::F16(values.map(f16::from_f32).collect())
    };
    let plane = |c: usize| half(&mut (0..n).map(|p| img.pixels[p * 3 + c]));
    let mut channels: SmallVec<[AnyChannel<FlatSamples>; 4]> = SmallVec::new();
    channels.extend([
        AnyChannel::new("R", plane(0)),
        AnyChannel::new("G", plane(1)),
        AnyChannel::new("B", plane(2)),
    ]);
    if let Some(alpha) = &img.alpha {
        channels.push(AnyChannel::new("A", half(&mut alpha.iter().copied())));
    }
    let size = (img.width as usize, img.height as usize);
    let mut out = std::io::Cursor::new(Vec::new());
    exr::image::Image::from_channels(size, AnyChannels::sort(channels))
        .write()
        .to_buffered(&mut out)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(out.into_inner())
}

fn check_buffers(img: &Image) -> Result<(), CodecError> {
    let n = img.width as usize * img.height as usize;
    if img.pixels.len() != n * 3 {
        return Err(CodecError::BadBuffer {
            got: img.pixels.len(),
            expected: n * 3,
        });
    }
    match &img.alpha {
        Some(a) if a.len() != n => Err(CodecError::BadBuffer {
            got: a.len(),
            expected: n,
        }),
        _ => Ok(()),
    }
}

/// Encodes a rendered frame as PNG: 8-bit sRGB, RGBA with straight
/// (un-premultiplied) alpha when the frame has transparent pixels, else RGB.
pub fn encode_png_frame(img: &Image) -> Result<Vec<u8>, CodecError> {
    check_buffers(img)?;
    Ok(encode_png(&img.to_srgb8()))
}

/// Decodes an RGB(A) OpenEXR file into linear pixels.
pub fn decode_exr(bytes: &[u8]) -> Result<inferix_core::image::Image, CodecError> {
    use exr::prelude::*;
    let meta = exr::meta::MetaData::read_from_buffered(std::io::Cursor::new(bytes), false)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    // Every layer, not only the first: the reader below takes the first
    // layer with colour channels, which need not be header 0.
    let (width, height) = exr_layer_size(&meta)?;
    check_size(width, height)?;
    let image = read()
        .no_deep_data()
        .largest_resolution_level()
        .rgba_channels(
            move |resolution, channels: &RgbaChannels| inferix_core::image::Image {
                width: resolution.width() as u32,
                height: resolution.height() as u32,
                pixels: vec![0.0; resolution.width() * resolution.height() * 3],
                alpha: channels
                    .3
                    .is_some()
                    .then(|| vec![1.0; resolution.width() * resolution.height()]),
            },
            |img: &mut inferix_core::image::Image, pos, (r, g, b, a): (f32, f32, f32, f32)| {
                let p = pos.y() * img.width as usize + pos.x();
                img.pixels[p * 3] = r;
                img.pixels[p * 3 + 1] = g;
                img.pixels[p * 3 + 2] = b;
                if let Some(alpha) = &mut img.alpha {
                    alpha[p] = a;
                }
            },
        )
        .first_valid_layer()
        .all_attributes()
        .from_buffered(std::io::Cursor::new(bytes))
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    let mut img = image.layer_data.channel_data.pixels;
    // Full coverage everywhere is an opaque image (Blender writes RGBA).
    if img
        .alpha
        .as_ref()
        .is_some_and(|a| a.iter().all(|&v| v == 1.0))
    {
        img.alpha = None;
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_sizes_come_from_headers_alone() {
        let png = encode_png(&Rgb8Image {
            width: 5,
            height: 3,
            pixels: vec![9; 45],
            alpha: None,
        });
        assert_eq!(declared_size(&png).unwrap(), (5, 3));
        let exr = encode_exr(&Image::new(7, 2)).unwrap();
        assert_eq!(declared_size(&exr).unwrap(), (7, 2));
        // A header with no pixel data after it: 20000 x 20000 declared in
        // a few dozen bytes, read without allocating for it.
        let mut bomb = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bomb, 20_000, 20_000);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            // The start of a deflate stream: the decoder needs an IDAT to
            // have read the header, not the pixels.
            w.write_chunk(png::chunk::IDAT, &[0x78, 0x9c]).unwrap();
        }
        assert!(bomb.len() < 100, "{}", bomb.len());
        assert_eq!(declared_size(&bomb).unwrap(), (20_000, 20_000));
        assert!(matches!(
            declared_size(b"GIF89a"),
            Err(CodecError::Malformed(_))
        ));
    }

    /// Random bytes, and real PNG and EXR files with bytes changed, cut or
    /// added: the decoders return an error or an image of the size the
    /// header declares, never panic (the stable twin of the `frame_file`
    /// fuzz target).
    #[test]
    fn seeded_random_and_mutated_files_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xc0_de_c5);
        let mut alpha_img = Image::stand_in(3, 9, 7);
        alpha_img.alpha = Some((0..63).map(|i| i as f32 / 63.0).collect());
        let seeds = [
            encode_png(&Image::stand_in(1, 12, 9).to_srgb8()),
            encode_png_frame(&alpha_img).unwrap(),
            encode_exr(&Image::stand_in(2, 12, 9)).unwrap(),
            encode_exr(&alpha_img).unwrap(),
        ];
        let mut decoded = 0;
        for i in 0..3000 {
            let bytes: Vec<u8> = if i % 4 == 0 {
                let n = rng.gen_range(0..128);
                (0..n).map(|_| rng.gen()).collect()
            } else {
                let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    match rng.gen_range(0..3) {
                        0 => b[at] = rng.gen(),
                        1 => b.truncate(at.max(8)),
                        _ => b.insert(at, rng.gen()),
                    }
                }
                b
            };
            let declared = declared_size(&bytes).ok();
            for img in [
                decode_png(&bytes).map(|i| (i.width, i.height)),
                decode_exr(&bytes).map(|i| (i.width, i.height)),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(declared, Some(img), "{bytes:?}");
                decoded += 1;
            }
        }
        // Some mutations leave a valid file (a changed pixel byte in an
        // uncompressed chunk, say): the case where a decode succeeds is
        // exercised too.
        assert!(decoded > 0);
    }

    /// The decoder reads the first layer with colour channels; every
    /// layer's size is checked, not only header 0's.
    #[test]
    fn an_exr_whose_layers_differ_in_size_is_refused() {
        use exr::prelude::*;
        let grey = |_: Vec2<usize>| (0.5f32, 0.5f32, 0.5f32);
        let layer = |name: &str, side: usize| {
            Layer::new(
                (side, side),
                LayerAttributes::named(name),
                Encoding::FAST_LOSSLESS,
                SpecificChannels::rgb(grey),
            )
        };
        let mut out = std::io::Cursor::new(Vec::new());
        exr::image::Image::empty(ImageAttributes::new(IntegerBounds::from_dimensions((8, 8))))
            .with_layer(layer("small", 2))
            .with_layer(layer("large", 8))
            .write()
            .to_buffered(&mut out)
            .unwrap();
        let bytes = out.into_inner();
        assert!(matches!(
            declared_size(&bytes),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(decode_exr(&bytes), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn png_round_trip() {
        let img = Rgb8Image {
            width: 3,
            height: 2,
            pixels: (0..18).map(|v| v as u8 * 13).collect(),
            alpha: None,
        };
        assert_eq!(decode_png(&encode_png(&img)).unwrap(), img);
    }

    #[test]
    fn png_rejects_grey_and_garbage() {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 2, 2);
            enc.set_color(png::ColorType::Grayscale);
            enc.write_header()
                .unwrap()
                .write_image_data(&[0, 1, 2, 3])
                .unwrap();
        }
        assert!(matches!(decode_png(&out), Err(CodecError::Unsupported(_))));
        assert!(matches!(
            decode_png(b"not a png"),
            Err(CodecError::Malformed(_))
        ));
        // A header claiming 100000x100000 pixels.
        let mut bad = encode_png(&Rgb8Image {
            width: 1,
            height: 1,
            pixels: vec![1, 2, 3],
            alpha: None,
        });
        bad[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bad[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode_png(&bad).is_err());
    }

    #[test]
    fn half_float_exr_keeps_three_digits_and_alpha_at_half_the_size() {
        let img = Image {
            width: 16,
            height: 9,
            pixels: (0..16 * 9 * 3).map(|v| v as f32 * 0.0137 + 0.001).collect(),
            alpha: Some((0..16 * 9).map(|v| (v % 5) as f32 / 4.0).collect()),
        };
        let half = encode_exr_half(&img).unwrap();
        let back = decode_exr(&half).unwrap();
        assert_eq!((back.width, back.height), (16, 9));
        for (a, b) in img.pixels.iter().zip(&back.pixels) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{a} became {b}");
        }
        assert_eq!(back.alpha, img.alpha, "quarters are exact in half floats");
        let full = encode_exr(&img).unwrap();
        assert!(
            half.len() * 10 < full.len() * 6,
            "{} vs {}",
            half.len(),
            full.len()
        );
    }

    #[test]
    fn exr_round_trip_is_exact() {
        let img = Image {
            width: 4,
            height: 3,
            pixels: (0..36).map(|v| v as f32 * 0.37 - 2.0).collect(),
            alpha: None,
        };
        let bytes = encode_exr(&img).unwrap();
        assert_eq!(decode_exr(&bytes).unwrap(), img);
        assert!(decode_exr(b"garbage").is_err());
    }

    #[test]
    fn alpha_goes_into_png_and_exr() {
        let img = Image {
            width: 2,
            height: 1,
            pixels: vec![0.5, 0.25, 0.0, 0.0, 0.0, 0.0],
            alpha: Some(vec![0.5, 0.0]),
        };
        let png_bytes = encode_png_frame(&img).unwrap();
        // Both formats decode to what the results commit to, alpha kept.
        let committed = img.to_srgb8();
        assert_eq!(decode_png(&png_bytes).unwrap(), committed);
        let exr = decode_exr(&encode_exr(&img).unwrap()).unwrap();
        assert_eq!(exr, img);
        assert_eq!(exr.to_srgb8(), committed);
        // Full coverage is an opaque image in either format.
        let covered = Image {
            alpha: Some(vec![1.0, 1.0]),
            ..img.clone()
        };
        assert_eq!(
            decode_exr(&encode_exr(&covered).unwrap()).unwrap().alpha,
            None
        );
        assert_eq!(
            decode_png(&encode_png_frame(&covered).unwrap())
                .unwrap()
                .alpha,
            None
        );
        let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; dec.output_buffer_size()];
        let info = dec.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgba);
        // Straight alpha: the half-covered pixel shows its full colour.
        let srgb = inferix_core::image::linear_to_srgb8;
        assert_eq!(&buf[..8], &[255, srgb(0.5), 0, 128, 0, 0, 0, 0]);
        let exr_bytes = encode_exr(&img).unwrap();
        let meta = exr::meta::MetaData::read_from_buffered(std::io::Cursor::new(&exr_bytes), false)
            .unwrap();
        let names: Vec<String> = meta.headers[0]
            .channels
            .list
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        assert_eq!(names, ["A", "B", "G", "R"]);
        // Opaque frames stay RGB; mismatched alpha is a typed error.
        let opaque = Image {
            alpha: None,
            ..img.clone()
        };
        assert!(!encode_exr(&opaque).unwrap().is_empty());
        let bad = Image {
            alpha: Some(vec![1.0]),
            ..img
        };
        assert!(matches!(
            encode_png_frame(&bad),
            Err(CodecError::BadBuffer { .. })
        ));
    }
}
