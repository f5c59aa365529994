//! Videos and animated previews, made by the `ffmpeg` binary (Debian's
//! `ffmpeg` package: libx264 and libwebp included).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use inferix_core::job::OutputFormat;

use super::{OutputError, Sequence};
use crate::frame_codec::FramePixels;

/// What to make.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Mp4 { fps: u32 },
    Gif { fps: u32, width: u32 },
    Webp { fps: u32, width: u32 },
}

/// How much of ffmpeg's stderr a failure keeps.
const STDERR_TAIL: usize = 2_000;

/// Runs ffmpeg over the sequence, numbered 1.. in frame order (a job's
/// frame step leaves gaps ffmpeg's image reader would stop at).
pub(super) fn encode(
    seq: &Sequence,
    kind: Kind,
    work: &Path,
    ffmpeg: &Path,
    out: &Path,
) -> Result<(), OutputError> {
    let input = numbered_pngs(seq, &work.join("ffmpeg-input"))?;
    let (fw, _) = seq.size;
    let mut args: Vec<String> = vec![
        "-nostdin".into(),
        "-y".into(),
        "-loglevel".into(),
        "error".into(),
    ];
    let fps = match kind {
        Kind::Mp4 { fps } | Kind::Gif { fps, .. } | Kind::Webp { fps, .. } => fps,
    };
    args.extend([
        "-framerate".into(),
        fps.to_string(),
        "-start_number".into(),
        "1".into(),
        "-i".into(),
        input.join("%08d.png").to_string_lossy().into_owned(),
    ]);
    match kind {
        // yuv420p (what players expect) needs even sizes: an odd one
        // gains a row or column.
        Kind::Mp4 { .. } => args.extend(
            [
                "-vf",
                "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
            ]
            .map(String::from),
        ),
        Kind::Gif { width, .. } => args.extend([
            "-vf".into(),
            format!(
                "scale={}:-2:flags=lanczos,split[a][b];[a]palettegen[p];[b][p]paletteuse",
                width.min(fw)
            ),
            "-loop".into(),
            "0".into(),
        ]),
        Kind::Webp { width, .. } => args.extend([
            "-vf".into(),
            format!("scale={}:-2:flags=lanczos", width.min(fw)),
            "-c:v".into(),
            "libwebp".into(),
            "-quality".into(),
            "75".into(),
            "-loop".into(),
            "0".into(),
        ]),
    }
    args.push(out.to_string_lossy().into_owned());
    run(ffmpeg, &args)?;
    let _ = std::fs::remove_dir_all(&input);
    Ok(())
}

/// Runs `program` with `args`, waiting for it to exit.
fn run(program: &Path, args: &[String]) -> Result<(), OutputError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| OutputError::FfmpegMissing {
            program: program.to_path_buf(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = {
        let chars: Vec<char> = stderr.trim().chars().collect();
        chars[chars.len().saturating_sub(STDERR_TAIL)..]
            .iter()
            .collect()
    };
    Err(OutputError::FfmpegFailed {
        status: output.status.to_string(),
        stderr: tail,
    })
}

/// The frames as `dir/00000001.png`, … in order: PNG frames linked (or
/// copied), EXR frames converted to 8-bit sRGB PNG.
fn numbered_pngs(seq: &Sequence, dir: &Path) -> Result<PathBuf, OutputError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(OutputError::io(dir))?;
    for (i, (frame, path)) in seq.frames.iter().enumerate() {
        let to = dir.join(format!("{:08}.png", i + 1));
        match seq.format {
            OutputFormat::Png => {
                if std::fs::hard_link(path, &to).is_err() {
                    std::fs::copy(path, &to).map_err(OutputError::io(&to))?;
                }
            }
            OutputFormat::Exr => {
                let bytes = std::fs::read(path).map_err(OutputError::io(path))?;
                let img = FramePixels::decode(&bytes, seq.format, seq.size)
                    .map_err(|e| OutputError::Decode {
                        frame: *frame,
                        reason: e.to_string(),
                    })?
                    .to_srgb8();
                std::fs::write(&to, inferix_codec::encode_png(&img))
                    .map_err(OutputError::io(&to))?;
            }
        }
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::super::test_frames::sequence;
    use super::*;

    #[test]
    fn a_missing_ffmpeg_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 2, 1, (16, 8), OutputFormat::Png);
        let missing = Path::new("/nonexistent/ffmpeg");
        let err = encode(
            &seq,
            Kind::Mp4 { fps: 24 },
            dir.path(),
            missing,
            &dir.path().join("v.mp4"),
        )
        .unwrap_err();
        assert!(matches!(err, OutputError::FfmpegMissing { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/ffmpeg"), "{err}");
    }

    #[test]
    fn a_failing_ffmpeg_reports_its_status_and_stderr() {
        let err = run(
            Path::new("sh"),
            &["-c".into(), "echo broken >&2; exit 3".into()],
        )
        .unwrap_err();
        match err {
            OutputError::FfmpegFailed { status, stderr } => {
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "broken");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn frames_with_a_step_are_numbered_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let seq = sequence(&dir.path().join("f"), 3, 5, (16, 8), OutputFormat::Exr);
        let input = numbered_pngs(&seq, &dir.path().join("in")).unwrap();
        for i in 1..=3 {
            let png = std::fs::read(input.join(format!("{i:08}.png"))).unwrap();
            assert_eq!(inferix_codec::decode_png(&png).unwrap().width, 16);
        }
        assert!(!input.join("00000004.png").exists());
    }
}
