//! Typed failures of Blender renders, watermarking and packing.

use std::path::PathBuf;

use inferix_core::renderer::RenderError;

use super::version::BlenderVersion;

/// Why a Blender operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlenderError {
    /// No executable was found where one was looked for.
    #[error("blender executable not found (looked in: {searched})")]
    NotFound {
        /// Places that were tried, in order.
        searched: String,
    },
    /// The executable exists but `blender --version` did not work.
    #[error("blender at {path} is not usable: {reason}")]
    Unusable {
        /// Executable.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The executable is older than a job requires.
    #[error("blender {found} is older than the required {required}")]
    TooOld {
        /// Version found.
        found: BlenderVersion,
        /// Minimum version asked for.
        required: BlenderVersion,
    },
    /// The sandbox was required ([`SandboxPolicy::Required`]) and cannot
    /// run here.
    ///
    /// [`SandboxPolicy::Required`]: super::SandboxPolicy::Required
    #[error("Blender's sandbox is required but unavailable: {reason}")]
    NoSandbox {
        /// Why (not installed, namespaces forbidden).
        reason: String,
    },
    /// Blender could not read the scene file (corrupt, truncated, not a .blend).
    #[error("blender cannot read scene {path}: {reason}")]
    UnreadableScene {
        /// Scene file.
        path: PathBuf,
        /// Blender's message.
        reason: String,
    },
    /// The scene refers to external files that are neither packed nor present.
    #[error("scene {path} refers to {} missing file(s): {files:?}", files.len())]
    MissingFiles {
        /// Scene file.
        path: PathBuf,
        /// Absolute paths that do not exist.
        files: Vec<PathBuf>,
    },
    /// The scene names files outside its own folder (absolute paths
    /// elsewhere, `..` escapes, symlinks leading out) that are not packed
    /// into it. Such files are never packed or rendered: on a manager or a
    /// worker they would be the node's own files (keys, database,
    /// credentials, other users' scenes) carried to whoever sent the scene.
    #[error("scene {path} names {} file(s) outside its folder: {}", refs.len(), describe(refs))]
    OutsideFiles {
        /// Scene file.
        path: PathBuf,
        /// Each offending reference.
        refs: Vec<ExternalRef>,
    },
    /// Python code in the scene (text blocks, handlers, drivers) raised.
    #[error("python exception in a script of scene {path}: {traceback}")]
    SceneScript {
        /// Scene file.
        path: PathBuf,
        /// The Python traceback.
        traceback: String,
    },
    /// The scene cannot be rendered or watermarked as asked (no camera,
    /// panoramic camera, depth of field under watermarking, …).
    #[error("scene {path} is not usable: {reason}")]
    InvalidScene {
        /// Scene file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested engine/device is not available (e.g. no GPU for Cycles).
    #[error("no render device: {0}")]
    NoDevice(String),
    /// The process ran past its time limit and was killed.
    #[error("blender ran past its {seconds} s limit and was killed")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
    /// Blender exited abnormally without a reason of its own (crash, signal).
    #[error("blender exited with {status}; last output:\n{log_tail}")]
    Crashed {
        /// Exit status as the OS reported it.
        status: String,
        /// Last lines of its output.
        log_tail: String,
    },
    /// Blender finished but its output image is missing or unreadable.
    #[error("blender output {path} unusable: {reason}")]
    BadOutput {
        /// Output file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Request settings Blender cannot honour.
    #[error("invalid render settings: {0}")]
    InvalidSettings(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One external file reference of a scene.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ExternalRef {
    /// The datablock naming the file, as Blender shows it (e.g.
    /// `image 'ground.png'`, `library 'props.blend'`).
    pub datablock: String,
    /// The file it leads to, with `//`, `..` and symlinks resolved.
    pub path: PathBuf,
}

fn describe(refs: &[ExternalRef]) -> String {
    let mut text: Vec<String> = refs
        .iter()
        .take(10)
        .map(|r| format!("{} -> {}", r.datablock, r.path.display()))
        .collect();
    if refs.len() > 10 {
        text.push(format!("and {} more", refs.len() - 10));
    }
    text.join("; ")
}

impl BlenderError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<BlenderError> for RenderError {
    fn from(e: BlenderError) -> Self {
        match e {
            BlenderError::UnreadableScene { ref path, .. }
            | BlenderError::MissingFiles { ref path, .. }
            | BlenderError::OutsideFiles { ref path, .. }
            | BlenderError::SceneScript { ref path, .. }
            | BlenderError::InvalidScene { ref path, .. } => RenderError::InvalidScene {
                path: path.clone(),
                reason: e.to_string(),
            },
            BlenderError::NotFound { .. }
            | BlenderError::Unusable { .. }
            | BlenderError::TooOld { .. }
            | BlenderError::NoSandbox { .. }
            | BlenderError::NoDevice(_) => RenderError::NoDevice(e.to_string()),
            BlenderError::Timeout { seconds } => RenderError::Timeout { seconds },
            BlenderError::InvalidSettings(s) => RenderError::InvalidSettings(s),
            other => RenderError::Backend(other.to_string()),
        }
    }
}
