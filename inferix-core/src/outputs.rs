//! Files the network makes from a finished job's frames: re-encoded
//! sequences, archives, videos, previews and contact sheets.
//!
//! Frames stay lossless (PNG or EXR) because Proof of Render compares
//! their pixels; everything lossy or derived is an output, made once every
//! frame is accepted, from the delivered frames, where the blobs are.

use serde::{Deserialize, Serialize};

use crate::ContentHash;

/// Frame rate of videos and animated previews when none is given.
pub const DEFAULT_FPS: u32 = 24;
/// JPEG quality when none is given.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;
/// Width of animated previews when none is given (their height follows).
pub const DEFAULT_PREVIEW_WIDTH: u32 = 320;
/// Thumbnails per row of a contact sheet when none is given.
pub const DEFAULT_SHEET_COLUMNS: u32 = 6;
/// Width of a contact sheet's thumbnails when none is given.
pub const DEFAULT_THUMB_WIDTH: u32 = 160;
/// The highest frame rate accepted: beyond it a request is a typo.
pub const MAX_FPS: u32 = 240;
/// The widest preview or thumbnail accepted, in pixels.
pub const MAX_OUTPUT_WIDTH: u32 = 4096;

fn default_fps() -> u32 {
    DEFAULT_FPS
}
fn default_quality() -> u8 {
    DEFAULT_JPEG_QUALITY
}
fn default_preview_width() -> u32 {
    DEFAULT_PREVIEW_WIDTH
}
fn default_columns() -> u32 {
    DEFAULT_SHEET_COLUMNS
}
fn default_thumb_width() -> u32 {
    DEFAULT_THUMB_WIDTH
}

/// One output asked for with a job ([`crate::job::JobSpec::outputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OutputRequest {
    /// The sequence as JPEG files, in a zip (`frame_NNNN.jpg`).
    Jpeg {
        /// Encoder quality, 1 (smallest) to 100 (best).
        #[serde(default = "default_quality")]
        quality: u8,
    },
    /// The sequence as 16-bit PNG files, in a zip (`frame_NNNN.png`).
    Png16,
    /// The sequence as half-float OpenEXR files (linear, with alpha when
    /// the frames have it), in a zip (`frame_NNNN.exr`): half the size of
    /// the 32-bit frames. Only for jobs that render EXR.
    ExrHalf,
    /// The delivered frames as they are, in a zip.
    Zip,
    /// The delivered frames as they are, in a tar.
    Tar,
    /// An H.264 MP4 (yuv420p; odd sizes padded to even), made by ffmpeg.
    Mp4 {
        /// Frames per second.
        #[serde(default = "default_fps")]
        fps: u32,
    },
    /// An animated GIF preview, scaled down, made by ffmpeg.
    Gif {
        /// Frames per second.
        #[serde(default = "default_fps")]
        fps: u32,
        /// Width in pixels; never wider than the frames.
        #[serde(default = "default_preview_width")]
        width: u32,
    },
    /// An animated WebP preview, scaled down, made by ffmpeg.
    Webp {
        /// Frames per second.
        #[serde(default = "default_fps")]
        fps: u32,
        /// Width in pixels; never wider than the frames.
        #[serde(default = "default_preview_width")]
        width: u32,
    },
    /// One PNG with a grid of thumbnails, each labelled with its frame
    /// number.
    ContactSheet {
        /// Thumbnails per row.
        #[serde(default = "default_columns")]
        columns: u32,
        /// Width of each thumbnail in pixels; never wider than the frames.
        #[serde(default = "default_thumb_width")]
        thumb_width: u32,
    },
}

impl OutputRequest {
    /// Every kind's name, as [`OutputRequest::name`] gives it.
    pub const NAMES: [&'static str; 9] = [
        "jpeg",
        "png16",
        "exr-half",
        "zip",
        "tar",
        "mp4",
        "gif",
        "webp",
        "contact-sheet",
    ];

    /// The output's name, unique within a job: what downloads ask for.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Jpeg { .. } => "jpeg",
            Self::Png16 => "png16",
            Self::ExrHalf => "exr-half",
            Self::Zip => "zip",
            Self::Tar => "tar",
            Self::Mp4 { .. } => "mp4",
            Self::Gif { .. } => "gif",
            Self::Webp { .. } => "webp",
            Self::ContactSheet { .. } => "contact-sheet",
        }
    }

    /// The file's name when downloaded.
    pub fn file_name(&self) -> &'static str {
        match self {
            Self::Jpeg { .. } => "frames-jpeg.zip",
            Self::Png16 => "frames-png16.zip",
            Self::ExrHalf => "frames-exr-half.zip",
            Self::Zip => "frames.zip",
            Self::Tar => "frames.tar",
            Self::Mp4 { .. } => "video.mp4",
            Self::Gif { .. } => "preview.gif",
            Self::Webp { .. } => "preview.webp",
            Self::ContactSheet { .. } => "contact-sheet.png",
        }
    }

    /// The file's media type.
    pub fn media_type(&self) -> &'static str {
        match self {
            Self::Jpeg { .. } | Self::Png16 | Self::ExrHalf | Self::Zip => "application/zip",
            Self::Tar => "application/x-tar",
            Self::Mp4 { .. } => "video/mp4",
            Self::Gif { .. } => "image/gif",
            Self::Webp { .. } => "image/webp",
            Self::ContactSheet { .. } => "image/png",
        }
    }

    /// Whether the file is a zip of one image per frame (which a client
    /// may unpack into a folder).
    pub fn is_sequence(&self) -> bool {
        matches!(self, Self::Jpeg { .. } | Self::Png16 | Self::ExrHalf)
    }

    /// Checks the request's numbers; the error says which is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        let fps_ok = |fps: u32| {
            if (1..=MAX_FPS).contains(&fps) {
                Ok(())
            } else {
                Err(format!("{name}: fps {fps} is not within 1-{MAX_FPS}"))
            }
        };
        let width_ok = |what: &str, w: u32| {
            if (1..=MAX_OUTPUT_WIDTH).contains(&w) {
                Ok(())
            } else {
                Err(format!(
                    "{name}: {what} {w} is not within 1-{MAX_OUTPUT_WIDTH}"
                ))
            }
        };
        match *self {
            Self::Jpeg { quality } if !(1..=100).contains(&quality) => {
                Err(format!("jpeg: quality {quality} is not within 1-100"))
            }
            Self::Mp4 { fps } => fps_ok(fps),
            Self::Gif { fps, width } | Self::Webp { fps, width } => {
                fps_ok(fps)?;
                width_ok("width", width)
            }
            Self::ContactSheet {
                columns,
                thumb_width,
            } => {
                if !(1..=64).contains(&columns) {
                    return Err(format!(
                        "contact-sheet: columns {columns} is not within 1-64"
                    ));
                }
                width_ok("thumb_width", thumb_width)
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for OutputRequest {
    type Err = String;
    /// Parses a name with defaults (`mp4`, `contact-sheet`, …) or a name
    /// and its number: `jpeg:85` (quality), `mp4:30`, `gif:12`, `webp:12`
    /// (frames per second), `contact-sheet:8` (columns).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let num = |default: u32| -> Result<u32, String> {
            arg.map_or(Ok(default), |a| {
                a.trim()
                    .parse()
                    .map_err(|_| format!("output {s:?}: {a:?} is not a number"))
            })
        };
        let request = match name.trim().to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Self::Jpeg {
                quality: u8::try_from(num(u32::from(DEFAULT_JPEG_QUALITY))?).unwrap_or(0),
            },
            "png16" => Self::Png16,
            "exr-half" | "exr_half" => Self::ExrHalf,
            "zip" => Self::Zip,
            "tar" => Self::Tar,
            "mp4" => Self::Mp4 {
                fps: num(DEFAULT_FPS)?,
            },
            "gif" => Self::Gif {
                fps: num(DEFAULT_FPS)?,
                width: DEFAULT_PREVIEW_WIDTH,
            },
            "webp" => Self::Webp {
                fps: num(DEFAULT_FPS)?,
                width: DEFAULT_PREVIEW_WIDTH,
            },
            "contact-sheet" | "contact_sheet" => Self::ContactSheet {
                columns: num(DEFAULT_SHEET_COLUMNS)?,
                thumb_width: DEFAULT_THUMB_WIDTH,
            },
            other => {
                return Err(format!(
                    "unknown output {other:?} (expected one of {})",
                    Self::NAMES.join(", ")
                ))
            }
        };
        if arg.is_some() && matches!(request, Self::Png16 | Self::ExrHalf | Self::Zip | Self::Tar) {
            return Err(format!("output {name:?} takes no number"));
        }
        request.validate()?;
        Ok(request)
    }
}

/// Checks a job's output requests: each valid, at most one of each kind
/// (the name is what downloads ask for).
pub fn validate_requests(requests: &[OutputRequest]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for r in requests {
        r.validate()?;
        if !seen.insert(r.name()) {
            return Err(format!("output {:?} is asked for twice", r.name()));
        }
    }
    Ok(())
}

/// Where one output of a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutputState {
    /// Not made yet: the job runs, or its outputs are being made.
    Pending,
    /// Made and stored.
    Ready {
        /// The file's blob.
        blob: ContentHash,
        /// Its size in bytes.
        size: u64,
    },
    /// Could not be made; the frames are unaffected.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One output of a job as its record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    /// What was asked for.
    pub request: OutputRequest,
    /// Where it is.
    pub state: OutputState,
}

impl JobOutput {
    /// A pending output for `request`.
    pub fn pending(request: OutputRequest) -> Self {
        Self {
            request,
            state: OutputState::Pending,
        }
    }

    /// Its name ([`OutputRequest::name`]).
    pub fn name(&self) -> &'static str {
        self.request.name()
    }

    /// Its blob, once ready.
    pub fn blob(&self) -> Option<ContentHash> {
        match self.state {
            OutputState::Ready { blob, .. } => Some(blob),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_defaults_and_numbers() {
        assert_eq!(
            "mp4".parse::<OutputRequest>(),
            Ok(OutputRequest::Mp4 { fps: DEFAULT_FPS })
        );
        assert_eq!(
            "jpeg:85".parse::<OutputRequest>(),
            Ok(OutputRequest::Jpeg { quality: 85 })
        );
        assert_eq!(
            "contact-sheet:4".parse::<OutputRequest>(),
            Ok(OutputRequest::ContactSheet {
                columns: 4,
                thumb_width: DEFAULT_THUMB_WIDTH
            })
        );
        assert!("jpeg:0".parse::<OutputRequest>().is_err());
        assert!("jpeg:101".parse::<OutputRequest>().is_err());
        assert!("jpeg:300".parse::<OutputRequest>().is_err());
        assert!("mp4:0".parse::<OutputRequest>().is_err());
        assert!("zip:3".parse::<OutputRequest>().is_err());
        assert!("avi".parse::<OutputRequest>().is_err());
        for name in OutputRequest::NAMES {
            assert_eq!(name.parse::<OutputRequest>().unwrap().name(), name);
        }
    }

    #[test]
    fn requests_read_from_json_with_defaults() {
        let r: Vec<OutputRequest> = serde_json::from_str(
            r#"[{"kind":"mp4"},{"kind":"jpeg","quality":70},{"kind":"contact-sheet"}]"#,
        )
        .unwrap();
        assert_eq!(
            r,
            vec![
                OutputRequest::Mp4 { fps: 24 },
                OutputRequest::Jpeg { quality: 70 },
                OutputRequest::ContactSheet {
                    columns: DEFAULT_SHEET_COLUMNS,
                    thumb_width: DEFAULT_THUMB_WIDTH
                },
            ]
        );
        assert!(validate_requests(&r).is_ok());
        let twice = [OutputRequest::Zip, OutputRequest::Zip];
        assert_eq!(
            validate_requests(&twice),
            Err("output \"zip\" is asked for twice".into())
        );
    }

    #[test]
    fn states_round_trip_as_tagged_json() {
        let out = JobOutput {
            request: OutputRequest::Tar,
            state: OutputState::Failed {
                reason: "no ffmpeg".into(),
            },
        };
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["state"]["state"], "failed");
        assert_eq!(v["request"]["kind"], "tar");
        assert_eq!(serde_json::from_value::<JobOutput>(v).unwrap(), out);
        assert_eq!(JobOutput::pending(OutputRequest::Zip).blob(), None);
    }
}
