//! Running one Blender Python script in a job folder: progress parsing,
//! the time limit, killing the whole process group on timeout or when the
//! caller stops waiting, and turning the script's error report into a
//! [`BlenderError`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use inferix_core::renderer::RenderProgress;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::error::{BlenderError, ExternalRef};
use super::sandbox::Sandbox;

/// Helpers every script imports.
const COMMON_PY: &str = include_str!("common.py");
/// Output lines kept for error messages.
const TAIL_LINES: usize = 40;
/// How long to wait for the output pipes to close once Blender has exited.
const DRAIN: Duration = Duration::from_secs(2);

/// One script run.
pub(crate) struct ScriptRun<'a> {
    /// Blender executable.
    pub(crate) exe: &'a Path,
    /// Where it runs: confined or not.
    pub(crate) sandbox: &'a Sandbox,
    /// Files and folders it reads besides its own folder (the scene).
    pub(crate) readable: Vec<PathBuf>,
    /// Private folder of this run; the script, its job file and outputs live here.
    pub(crate) dir: &'a Path,
    /// File name and source of the script.
    pub(crate) script: (&'a str, &'a str),
    /// Job description the script reads.
    pub(crate) job: serde_json::Value,
    /// Scene the job is about (for error messages).
    pub(crate) scene: &'a Path,
    /// Let the scene's own Python run (`--enable-autoexec`).
    pub(crate) allow_scene_scripts: bool,
    /// Render threads (`-t`), `None` for all cores.
    pub(crate) threads: Option<u32>,
    /// Wall-clock limit of the whole process.
    pub(crate) timeout: Duration,
    /// Where to report render progress.
    pub(crate) progress: Option<UnboundedSender<RenderProgress>>,
}

/// What a successful run printed.
#[derive(Debug, Default)]
pub(crate) struct ScriptOutput {
    /// `(frame, region index, path)` of every `INFERIX-FRAME` line.
    pub(crate) frames: Vec<(u32, usize, PathBuf)>,
}

/// The script's own error report.
#[derive(Debug, Deserialize)]
struct ScriptFailure {
    kind: String,
    message: String,
    #[serde(default)]
    files: Vec<PathBuf>,
    #[serde(default)]
    refs: Vec<ExternalRef>,
}

/// Parses Blender's status lines `Fra:12 Mem:… | Sample 3/16` into
/// `(frame, sample, total)`.
pub(crate) fn parse_progress(line: &str) -> Option<(u32, u32, u32)> {
    let rest = line.strip_prefix("Fra:")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let frame: u32 = rest[..end].parse().ok()?;
    let tail = line.rsplit('|').next()?.trim();
    let counts = tail.strip_prefix("Sample ")?;
    let (done, total) = counts.split_once('/')?;
    let done: u32 = done.trim().parse().ok()?;
    let total: u32 = total.split_whitespace().next()?.parse().ok()?;
    (total > 0).then_some((frame, done.min(total), total))
}

/// Parses the script's `INFERIX-FRAME <frame> <region> <path>` lines.
fn parse_frame_line(line: &str) -> Option<(u32, usize, PathBuf)> {
    let rest = line.strip_prefix("INFERIX-FRAME ")?;
    let (frame, rest) = rest.split_once(' ')?;
    let (index, path) = rest.split_once(' ')?;
    Some((
        frame.parse().ok()?,
        index.parse().ok()?,
        PathBuf::from(path),
    ))
}

/// Kills the process group when dropped (timeout, error, or the caller
/// dropping the render future), and stops the output readers.
struct GroupGuard {
    pgid: Option<u32>,
    readers: Vec<tokio::task::AbortHandle>,
}

impl GroupGuard {
    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.pgid.and_then(|p| i32::try_from(p).ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                // ESRCH (nothing left in the group) is the normal case.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
        for r in &self.readers {
            r.abort();
        }
    }
}

fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// What one output pipe carried.
struct PipeOutput {
    /// Its last lines.
    tail: VecDeque<String>,
    /// `(frame, region index, path)` of every `INFERIX-FRAME` line.
    frames: Vec<(u32, usize, PathBuf)>,
}

fn read_lines<R: AsyncRead + Unpin + Send + 'static>(
    pipe: R,
    progress: Option<UnboundedSender<RenderProgress>>,
) -> JoinHandle<PipeOutput> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        let mut tail = VecDeque::new();
        let mut frames = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if let Some((f, index, path)) = parse_frame_line(&line) {
                frames.push((f, index, path));
                if let Some(tx) = &progress {
                    let _ = tx.send(RenderProgress {
                        frame: f,
                        fraction: 1.0,
                    });
                }
            } else if let Some((frame, done, total)) = parse_progress(&line) {
                if let Some(tx) = &progress {
                    let _ = tx.send(RenderProgress {
                        frame,
                        fraction: done as f32 / total as f32,
                    });
                }
            }
            push_tail(&mut tail, line);
        }
        PipeOutput { tail, frames }
    })
}

/// Runs the script to completion and returns what it reported.
pub(crate) async fn run_script(run: ScriptRun<'_>) -> Result<ScriptOutput, BlenderError> {
    let dir = run.dir;
    let write = |name: &str, text: &[u8]| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| BlenderError::io(format!("writing {}", dir.join(name).display()), e))
    };
    write("common.py", COMMON_PY.as_bytes())?;
    write(run.script.0, run.script.1.as_bytes())?;
    let error_file = dir.join("error.json");
    let mut job = run.job;
    job["error_file"] = serde_json::Value::String(error_file.to_string_lossy().into_owned());
    let job_file = dir.join("job.json");
    write(
        "job.json",
        serde_json::to_string(&job)
            .map_err(|e| BlenderError::io("encoding job", std::io::Error::other(e)))?
            .as_bytes(),
    )?;
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)
        .map_err(|e| BlenderError::io(format!("creating {}", tmp.display()), e))?;

    let mut cmd = run.sandbox.command(run.exe, dir, &run.readable);
    cmd.arg("-b")
        .arg("--factory-startup")
        .arg(if run.allow_scene_scripts {
            "--enable-autoexec"
        } else {
            "--disable-autoexec"
        });
    if let Some(t) = run.threads {
        cmd.arg("-t").arg(t.to_string());
    }
    cmd.arg("--python-exit-code")
        .arg("1")
        .arg("--python")
        .arg(dir.join(run.script.0))
        .arg("--")
        .arg(&job_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| BlenderError::io(format!("starting {}", run.exe.display()), e))?;
    let mut guard = GroupGuard {
        pgid: child.id(),
        readers: Vec::new(),
    };
    let out = child.stdout.take().map(|p| read_lines(p, run.progress));
    let err = child.stderr.take().map(|p| read_lines(p, None));
    guard
        .readers
        .extend(out.iter().chain(err.iter()).map(|h| h.abort_handle()));

    let status = match tokio::time::timeout(run.timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| BlenderError::io("waiting for blender", e))?,
        Err(_) => {
            guard.kill();
            let _ = child.wait().await;
            return Err(BlenderError::Timeout {
                seconds: run.timeout.as_secs(),
            });
        }
    };
    // Anything the scene started stays in the group; end it too.
    guard.kill();

    let mut output = ScriptOutput::default();
    let mut tail = VecDeque::new();
    for handle in [out, err].into_iter().flatten() {
        if let Ok(Ok(pipe)) = tokio::time::timeout(DRAIN, handle).await {
            tail.extend(pipe.tail);
            output.frames.extend(pipe.frames);
        }
    }
    let log_tail = || tail.iter().cloned().collect::<Vec<_>>().join("\n");

    if let Ok(text) = std::fs::read_to_string(&error_file) {
        let failure: ScriptFailure =
            serde_json::from_str(&text).map_err(|e| BlenderError::Crashed {
                status: format!("{status} with an unreadable error report ({e})"),
                log_tail: log_tail(),
            })?;
        let path = run.scene.to_path_buf();
        return Err(match failure.kind.as_str() {
            "unreadable_scene" => BlenderError::UnreadableScene {
                path,
                reason: failure.message,
            },
            "missing_files" => BlenderError::MissingFiles {
                path,
                files: failure.files,
            },
            "outside_files" => BlenderError::OutsideFiles {
                path,
                refs: failure.refs,
            },
            "script_error" => BlenderError::SceneScript {
                path,
                traceback: failure.message,
            },
            "no_device" => BlenderError::NoDevice(failure.message),
            _ => BlenderError::InvalidScene {
                path,
                reason: format!("{}: {}", failure.kind, failure.message),
            },
        });
    }
    if !status.success() {
        let code = status.code();
        let mut status = status.to_string();
        if code == Some(1) {
            // --python-exit-code: an exception escaped the script itself.
            status.push_str(" (uncaught Python exception)");
        }
        return Err(BlenderError::Crashed {
            status,
            log_tail: log_tail(),
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let l = "Fra:5 Mem:9.57M (Peak 9.77M) | Time:00:00.00 | Remaining:00:00.00 | \
                 Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Sample 1/8";
        assert_eq!(parse_progress(l), Some((5, 1, 8)));
        assert_eq!(
            parse_progress("Fra:12 Mem:1M | Scene, ViewLayer | Sample 64/64"),
            Some((12, 64, 64))
        );
        assert_eq!(
            parse_progress("Fra:5 Mem:9.52M | Scene, ViewLayer | Updating Film"),
            None
        );
        assert_eq!(parse_progress("Fra:5 | Sample 3/0"), None);
        assert_eq!(parse_progress("Saved: 'x.exr'"), None);
        assert_eq!(parse_progress("Fra:x | Sample 1/2"), None);
        assert_eq!(
            parse_frame_line("INFERIX-FRAME 7 2 /tmp/a b/frame.exr"),
            Some((7, 2, PathBuf::from("/tmp/a b/frame.exr")))
        );
        assert_eq!(parse_frame_line("INFERIX-FRAME 7 /tmp/x.exr"), None);
    }
}
