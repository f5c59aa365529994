//! The delivered frames as they are, in one zip or tar.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{OutputError, Sequence};

/// A zip of the frame files, stored (frames are compressed images
/// already), entries named as downloads name them.
pub(super) fn zip_frames(seq: &Sequence, out: &Path) -> Result<(), OutputError> {
    let ext = seq.format.extension();
    write_zip(
        out,
        seq.frames.iter().map(|(frame, path)| {
            let bytes = std::fs::read(path).map_err(OutputError::io(path))?;
            Ok((Sequence::entry_name(*frame, ext), bytes))
        }),
    )
}

/// Writes a stored zip of `entries` (name, bytes), read one at a time.
pub(super) fn write_zip(
    out: &Path,
    entries: impl Iterator<Item = Result<(String, Vec<u8>), OutputError>>,
) -> Result<(), OutputError> {
    let file = File::create(out).map_err(OutputError::io(out))?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        // Long jobs' archives pass 4 GiB.
        .large_file(true);
    let failed = |e: zip::result::ZipError| OutputError::Encode {
        what: "the zip".into(),
        reason: e.to_string(),
    };
    for entry in entries {
        let (name, bytes) = entry?;
        zip.start_file(name, stored).map_err(failed)?;
        zip.write_all(&bytes).map_err(OutputError::io(out))?;
    }
    zip.finish()
        .map_err(failed)?
        .flush()
        .map_err(OutputError::io(out))
}

/// A POSIX (ustar) tar of the frame files. Written by hand: the format is
/// a 512-byte header per file and zero padding, not worth a dependency.
pub(super) fn tar_frames(seq: &Sequence, out: &Path) -> Result<(), OutputError> {
    let ext = seq.format.extension();
    let file = File::create(out).map_err(OutputError::io(out))?;
    let mut w = BufWriter::new(file);
    for (frame, path) in &seq.frames {
        let bytes = std::fs::read(path).map_err(OutputError::io(path))?;
        let header = tar_header(&Sequence::entry_name(*frame, ext), bytes.len() as u64)?;
        w.write_all(&header).map_err(OutputError::io(out))?;
        w.write_all(&bytes).map_err(OutputError::io(out))?;
        let pad = (512 - bytes.len() % 512) % 512;
        w.write_all(&vec![0u8; pad]).map_err(OutputError::io(out))?;
    }
    // Two zero blocks end the archive.
    w.write_all(&[0u8; 1024]).map_err(OutputError::io(out))?;
    w.flush().map_err(OutputError::io(out))
}

/// The ustar header of a regular file `name` of `size` bytes (mode 0644,
/// dated at the epoch: the archive depends on the frames alone).
fn tar_header(name: &str, size: u64) -> Result<[u8; 512], OutputError> {
    // Octal size fields hold 11 digits: 8 GiB less one byte.
    if name.len() > 100 || size >= 8 << 30 {
        return Err(OutputError::Encode {
            what: format!("tar entry {name}"),
            reason: "name over 100 bytes or file of 8 GiB or more".into(),
        });
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}", width = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::super::test_frames::sequence;
    use super::*;
    use inferix_core::job::OutputFormat;

    #[test]
    fn the_zip_holds_every_frame_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 5, 2, (16, 8), OutputFormat::Png);
        let out = dir.path().join("frames.zip");
        zip_frames(&seq, &out).unwrap();
        let mut zip = zip::ZipArchive::new(File::open(&out).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(String::from).collect();
        assert_eq!(names.len(), 5);
        for (frame, path) in &seq.frames {
            let mut entry = zip.by_name(&format!("frame_{frame:04}.png")).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            assert_eq!(bytes, std::fs::read(path).unwrap());
        }
        assert!(zip.by_name("frame_0002.png").is_err(), "step 2: no frame 2");
    }

    #[test]
    fn the_tar_lists_every_frame_with_its_size_and_a_valid_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 3, 1, (16, 8), OutputFormat::Exr);
        let out = dir.path().join("frames.tar");
        tar_frames(&seq, &out).unwrap();
        let tar = std::fs::read(&out).unwrap();
        assert_eq!(tar.len() % 512, 0);
        let mut at = 0;
        for (frame, path) in &seq.frames {
            let h = &tar[at..at + 512];
            let name = format!("frame_{frame:04}.exr");
            assert_eq!(&h[..name.len()], name.as_bytes());
            let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(size, bytes.len() as u64);
            let mut spaced = h.to_vec();
            spaced[148..156].copy_from_slice(b"        ");
            let sum: u32 = spaced.iter().map(|b| u32::from(*b)).sum();
            let stored =
                u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
            assert_eq!(stored, sum);
            assert_eq!(&tar[at + 512..at + 512 + bytes.len()], &bytes[..]);
            at += 512 + bytes.len().div_ceil(512) * 512;
        }
        assert!(tar[at..].iter().all(|b| *b == 0) && tar.len() - at == 1024);
    }
}
