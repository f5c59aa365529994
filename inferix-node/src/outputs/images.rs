//! Outputs made in process from decoded frames: the sequence as JPEG or
//! 16-bit PNG, and a contact sheet.

use std::path::Path;

use inferix_core::image::Rgb8Image;

use super::archive::write_zip;
use super::{OutputError, Sequence};
use crate::frame_codec::FramePixels;

fn decode(seq: &Sequence, frame: u32, path: &Path) -> Result<FramePixels, OutputError> {
    let bytes = std::fs::read(path).map_err(OutputError::io(path))?;
    FramePixels::decode(&bytes, seq.format, seq.size).map_err(|e| OutputError::Decode {
        frame,
        reason: e.to_string(),
    })
}

/// Every frame as a JPEG of `quality`, in a zip. JPEG has no alpha: a
/// transparent frame shows its premultiplied colour, over black.
pub(super) fn jpeg_zip(seq: &Sequence, quality: u8, out: &Path) -> Result<(), OutputError> {
    write_zip(
        out,
        seq.frames.iter().map(|(frame, path)| {
            let img = decode(seq, *frame, path)?.to_srgb8();
            Ok((Sequence::entry_name(*frame, "jpg"), jpeg(&img, quality)?))
        }),
    )
}

/// One JPEG file of `img`.
pub(super) fn jpeg(img: &Rgb8Image, quality: u8) -> Result<Vec<u8>, OutputError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100))
        .encode(
            &img.pixels,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| OutputError::Encode {
            what: "a JPEG".into(),
            reason: e.to_string(),
        })?;
    Ok(bytes)
}

/// Every frame as a 16-bit RGB(A) PNG, in a zip: EXR frames keep the
/// precision 8 bits would lose; PNG frames are widened (`v * 257`), for a
/// pipeline that wants one depth whatever the job rendered.
pub(super) fn png16_zip(seq: &Sequence, out: &Path) -> Result<(), OutputError> {
    write_zip(
        out,
        seq.frames.iter().map(|(frame, path)| {
            let (w, h) = seq.size;
            let (samples, alpha) = to_srgb16(&decode(seq, *frame, path)?);
            Ok((
                Sequence::entry_name(*frame, "png"),
                png16(w, h, &samples, alpha)?,
            ))
        }),
    )
}

/// Every frame as a half-float EXR, in a zip. The job renders EXR (its
/// spec is refused otherwise), so the frames are linear floats.
pub(super) fn exr_half_zip(seq: &Sequence, out: &Path) -> Result<(), OutputError> {
    write_zip(
        out,
        seq.frames.iter().map(|(frame, path)| {
            let FramePixels::Linear(img) = decode(seq, *frame, path)? else {
                return Err(OutputError::Decode {
                    frame: *frame,
                    reason: "exr-half is made from EXR frames".into(),
                });
            };
            let bytes = inferix_codec::encode_exr_half(&img).map_err(|e| OutputError::Encode {
                what: "a half-float EXR".into(),
                reason: e.to_string(),
            })?;
            Ok((Sequence::entry_name(*frame, "exr"), bytes))
        }),
    )
}

/// sRGB-encoded 16-bit samples (RGB or RGBA interleaved) and whether they
/// carry alpha.
fn to_srgb16(frame: &FramePixels) -> (Vec<u16>, bool) {
    let encode = |v: f32| -> u16 {
        let v = v.clamp(0.0, 1.0);
        let s = if v <= 0.003_130_8 {
            v * 12.92
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        };
        (s * 65535.0).round() as u16
    };
    match frame {
        FramePixels::Srgb8(img) => {
            let mut out = Vec::with_capacity(img.pixels.len() / 3 * 4);
            for (i, p) in img.pixels.chunks_exact(3).enumerate() {
                out.extend(p.iter().map(|v| u16::from(*v) * 257));
                if let Some(a) = &img.alpha {
                    out.push(u16::from(a[i]) * 257);
                }
            }
            (out, img.alpha.is_some())
        }
        FramePixels::Linear(img) => {
            let mut out = Vec::with_capacity(img.pixels.len() / 3 * 4);
            for (i, p) in img.pixels.chunks_exact(3).enumerate() {
                match &img.alpha {
                    // Premultiplied in the image, straight in a PNG.
                    Some(a) => {
                        let a = a[i].clamp(0.0, 1.0);
                        let un = |v: f32| if a > 0.0 { v / a } else { 0.0 };
                        out.extend(p.iter().map(|v| encode(un(*v))));
                        out.push((a * 65535.0).round() as u16);
                    }
                    None => out.extend(p.iter().map(|v| encode(*v))),
                }
            }
            (out, img.alpha.is_some())
        }
    }
}

fn png16(w: u32, h: u32, samples: &[u16], alpha: bool) -> Result<Vec<u8>, OutputError> {
    let failed = |e: png::EncodingError| OutputError::Encode {
        what: "a 16-bit PNG".into(),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_depth(png::BitDepth::Sixteen);
    enc.set_color(if alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    enc.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let data: Vec<u8> = samples.iter().flat_map(|v| v.to_be_bytes()).collect();
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&data))
        .map_err(failed)?;
    Ok(bytes)
}

/// Height of the label band under each thumbnail, in pixels.
const LABEL: u32 = 11;
/// Space between and around thumbnails.
const GAP: u32 = 4;
const BACKGROUND: u8 = 32;

/// One PNG with every frame as a thumbnail `thumb_width` wide (at most the
/// frame's width), `columns` to a row, each labelled with its frame
/// number.
pub(super) fn contact_sheet(
    seq: &Sequence,
    columns: u32,
    thumb_width: u32,
    out: &Path,
) -> Result<(), OutputError> {
    let (fw, fh) = seq.size;
    let tw = thumb_width.clamp(1, fw.max(1));
    let th = ((u64::from(fh) * u64::from(tw)).div_ceil(u64::from(fw.max(1))) as u32).max(1);
    let n = seq.frames.len() as u32;
    let cols = columns.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let (cw, ch) = (tw + GAP, th + LABEL + GAP);
    let mut sheet = Rgb8Image {
        width: GAP + cols * cw,
        height: GAP + rows * ch,
        pixels: vec![BACKGROUND; ((GAP + cols * cw) * (GAP + rows * ch) * 3) as usize],
        alpha: None,
    };
    for (i, (frame, path)) in seq.frames.iter().enumerate() {
        let img = decode(seq, *frame, path)?.to_srgb8();
        let thumb = scale(&img, tw, th);
        let (x, y) = (GAP + (i as u32 % cols) * cw, GAP + (i as u32 / cols) * ch);
        if !sheet.paste(&thumb, x, y) {
            return Err(OutputError::Encode {
                what: "the contact sheet".into(),
                reason: format!("thumbnail of frame {frame} does not fit"),
            });
        }
        draw_number(&mut sheet, *frame, x, y + th + 2);
    }
    let bytes = inferix_codec::encode_png(&sheet);
    std::fs::write(out, bytes).map_err(OutputError::io(out))
}

/// `img` scaled to `w`x`h` by averaging the source pixels each target
/// pixel covers (a box filter: thumbnails only shrink).
pub(super) fn scale(img: &Rgb8Image, w: u32, h: u32) -> Rgb8Image {
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for ty in 0..h {
        let y0 = ty * img.height / h;
        let y1 = ((ty + 1) * img.height / h).max(y0 + 1).min(img.height);
        for tx in 0..w {
            let x0 = tx * img.width / w;
            let x1 = ((tx + 1) * img.width / w).max(x0 + 1).min(img.width);
            let mut sum = [0u32; 3];
            for y in y0..y1 {
                for x in x0..x1 {
                    let at = ((y * img.width + x) * 3) as usize;
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += u32::from(img.pixels[at + c]);
                    }
                }
            }
            let count = (y1 - y0) * (x1 - x0);
            pixels.extend(sum.iter().map(|s| (s / count.max(1)) as u8));
        }
    }
    Rgb8Image {
        width: w,
        height: h,
        pixels,
        alpha: None,
    }
}

/// Digits 0-9 in a 3x5 font, one row per 3 bits (most significant bit
/// left): enough to label frames without a font file.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];
/// Pixels per font pixel.
const SCALE: u32 = 1;

/// Draws `n` in white with its top left at (x, y), clipped to the image.
fn draw_number(img: &mut Rgb8Image, n: u32, x: u32, y: u32) {
    for (i, d) in n.to_string().bytes().enumerate() {
        let glyph = DIGITS[usize::from(d - b'0')];
        let gx = x + i as u32 * 4 * SCALE;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (px, py) = (gx + col * SCALE + dx, y + row as u32 * SCALE + dy);
                        if px < img.width && py < img.height {
                            let at = ((py * img.width + px) * 3) as usize;
                            img.pixels[at..at + 3].fill(255);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_frames::sequence;
    use super::*;
    use inferix_core::job::OutputFormat;
    use std::io::Read;

    fn entries(zip: &Path) -> Vec<(String, Vec<u8>)> {
        let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
        (0..z.len())
            .map(|i| {
                let mut e = z.by_index(i).unwrap();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                (e.name().to_string(), b)
            })
            .collect()
    }

    #[test]
    fn jpegs_decode_at_the_frame_size_and_quality_changes_their_size() {
        let dir = tempfile::tempdir().unwrap();
        for format in [OutputFormat::Png, OutputFormat::Exr] {
            let seq = sequence(&dir.path().join(format.extension()), 3, 1, (40, 30), format);
            let (lo, hi) = (dir.path().join("lo.zip"), dir.path().join("hi.zip"));
            jpeg_zip(&seq, 10, &lo).unwrap();
            jpeg_zip(&seq, 100, &hi).unwrap();
            let (lo, hi) = (entries(&lo), entries(&hi));
            assert_eq!(lo.len(), 3);
            for ((name, bytes), (_, best)) in lo.iter().zip(&hi) {
                assert!(name.ends_with(".jpg"), "{name}");
                let img =
                    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).unwrap();
                assert_eq!((img.width(), img.height()), (40, 30));
                assert!(bytes.len() < best.len(), "quality 10 is smaller than 100");
            }
        }
    }

    #[test]
    fn png16_widens_8_bit_frames_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 2, 1, (20, 10), OutputFormat::Png);
        let out = dir.path().join("p.zip");
        png16_zip(&seq, &out).unwrap();
        let e = entries(&out);
        assert_eq!(e[0].0, "frame_0001.png");
        let mut dec = png::Decoder::new(std::io::Cursor::new(&e[0].1))
            .read_info()
            .unwrap();
        let mut buf = vec![0; dec.output_buffer_size()];
        let info = dec.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width, info.height, info.bit_depth),
            (20, 10, png::BitDepth::Sixteen)
        );
        let original =
            inferix_codec::decode_png(&std::fs::read(&seq.frames[0].1).unwrap()).unwrap();
        let first = u16::from_be_bytes([buf[0], buf[1]]);
        assert_eq!(first, u16::from(original.pixels[0]) * 257);
    }

    #[test]
    fn exr_half_holds_each_frame_within_half_precision_and_refuses_png_frames() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 2, 1, (20, 10), OutputFormat::Exr);
        let out = dir.path().join("h.zip");
        exr_half_zip(&seq, &out).unwrap();
        let e = entries(&out);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].0, "frame_0002.exr");
        let half = inferix_codec::decode_exr(&e[1].1).unwrap();
        let full = inferix_codec::decode_exr(&std::fs::read(&seq.frames[1].1).unwrap()).unwrap();
        assert_eq!((half.width, half.height), (20, 10));
        for (a, b) in full.pixels.iter().zip(&half.pixels) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{a} became {b}");
        }
        assert!(e[1].1.len() < std::fs::metadata(&seq.frames[1].1).unwrap().len() as usize);
        let png = sequence(&dir.path().join("p"), 1, 1, (20, 10), OutputFormat::Png);
        let refused = exr_half_zip(&png, &dir.path().join("p.zip"));
        assert!(matches!(refused, Err(OutputError::Decode { frame: 1, .. })));
    }

    #[test]
    fn the_contact_sheet_is_a_grid_of_labelled_thumbnails() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 7, 1, (64, 48), OutputFormat::Png);
        let out = dir.path().join("sheet.png");
        contact_sheet(&seq, 3, 32, &out).unwrap();
        let sheet = inferix_codec::decode_png(&std::fs::read(&out).unwrap()).unwrap();
        // 3 columns of 32+4, 3 rows of 24+11+4, a gap around.
        assert_eq!((sheet.width, sheet.height), (4 + 3 * 36, 4 + 3 * 39));
        // The first thumbnail is the first frame scaled down.
        let first = inferix_codec::decode_png(&std::fs::read(&seq.frames[0].1).unwrap()).unwrap();
        let thumb = scale(&first, 32, 24);
        let at = ((4 * sheet.width + 4) * 3) as usize;
        assert_eq!(&sheet.pixels[at..at + 3], &thumb.pixels[..3]);
        // Labels are drawn in white under each thumbnail; the empty cells
        // of the last row are background.
        let label_row = 4 + 24 + 2;
        let white = (4..40).any(|x| {
            let at = ((label_row * sheet.width + x) * 3) as usize;
            sheet.pixels[at..at + 3] == [255, 255, 255]
        });
        assert!(white, "frame number drawn");
        let empty = ((4 + 2 * 39 + 5) * sheet.width + 4 + 2 * 36 + 5) * 3;
        assert_eq!(sheet.pixels[empty as usize], BACKGROUND);
    }
}
