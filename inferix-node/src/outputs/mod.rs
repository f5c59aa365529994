//! Making a finished job's outputs ([`OutputRequest`]) from its delivered
//! frames: re-encoded sequences, archives, a contact sheet (all in
//! process), and videos and animated previews (by the `ffmpeg` binary).
//!
//! Every output is made from frame files on disk and written as a file,
//! so that neither a long job's frames nor its video need to fit in
//! memory, and ffmpeg reads what it needs itself. Nothing here changes
//! the frames: an output that cannot be made is an error for that output
//! alone.

use std::path::{Path, PathBuf};

use inferix_core::job::OutputFormat;
use inferix_core::outputs::OutputRequest;

mod archive;
mod images;
mod video;

/// Why an output could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// A delivered frame file does not decode.
    #[error("frame {frame} does not decode: {reason}")]
    Decode {
        /// The frame.
        frame: u32,
        /// The decoder's complaint.
        reason: String,
    },
    /// An encoder refused the pixels.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's complaint.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The ffmpeg binary could not be started (not installed, or the
    /// configured path is wrong).
    #[error("cannot run ffmpeg ({program}): {source}")]
    FfmpegMissing {
        /// The program the manager was configured with.
        program: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// ffmpeg ran and failed.
    #[error("ffmpeg failed ({status}): {stderr}")]
    FfmpegFailed {
        /// Its exit status.
        status: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// The job has no frame to make anything of.
    #[error("the job has no delivered frame")]
    NoFrames,
}

impl OutputError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A job's delivered frames on disk, in frame order.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Their file format.
    pub format: OutputFormat,
    /// Their width and height.
    pub size: (u32, u32),
    /// Frame numbers and files.
    pub frames: Vec<(u32, PathBuf)>,
}

impl Sequence {
    /// The name a frame file has in archives and downloads.
    pub fn entry_name(frame: u32, ext: &str) -> String {
        format!("frame_{frame:04}.{ext}")
    }
}

/// Makes `request` from `seq` as a file in `work` (a folder of its own,
/// which the caller removes), with the ffmpeg binary `ffmpeg` where one is
/// needed; returns the file. Blocking: run it off any async loop.
pub fn make(
    request: &OutputRequest,
    seq: &Sequence,
    work: &Path,
    ffmpeg: &Path,
) -> Result<PathBuf, OutputError> {
    if seq.frames.is_empty() {
        return Err(OutputError::NoFrames);
    }
    std::fs::create_dir_all(work).map_err(OutputError::io(work))?;
    let out = work.join(request.file_name());
    match *request {
        OutputRequest::Zip => archive::zip_frames(seq, &out)?,
        OutputRequest::Tar => archive::tar_frames(seq, &out)?,
        OutputRequest::Jpeg { quality } => images::jpeg_zip(seq, quality, &out)?,
        OutputRequest::Png16 => images::png16_zip(seq, &out)?,
        OutputRequest::ExrHalf => images::exr_half_zip(seq, &out)?,
        OutputRequest::ContactSheet {
            columns,
            thumb_width,
        } => images::contact_sheet(seq, columns, thumb_width, &out)?,
        OutputRequest::Mp4 { fps } => {
            video::encode(seq, video::Kind::Mp4 { fps }, work, ffmpeg, &out)?
        }
        OutputRequest::Gif { fps, width } => {
            video::encode(seq, video::Kind::Gif { fps, width }, work, ffmpeg, &out)?
        }
        OutputRequest::Webp { fps, width } => {
            video::encode(seq, video::Kind::Webp { fps, width }, work, ffmpeg, &out)?
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_frames {
    use super::*;
    use inferix_core::image::Image;

    /// `n` stand-in frames of `w`x`h` in `format`, numbered from 1 with
    /// `step`, written to `dir`.
    pub(crate) fn sequence(
        dir: &Path,
        n: u32,
        step: u32,
        (w, h): (u32, u32),
        format: OutputFormat,
    ) -> Sequence {
        std::fs::create_dir_all(dir).unwrap();
        let frames = (0..n)
            .map(|i| {
                let frame = 1 + i * step;
                let bytes =
                    crate::frame_codec::encode(&Image::stand_in(frame, w, h), format).unwrap();
                let path = dir.join(Sequence::entry_name(frame, format.extension()));
                std::fs::write(&path, bytes).unwrap();
                (frame, path)
            })
            .collect();
        Sequence {
            format,
            size: (w, h),
            frames,
        }
    }
}
