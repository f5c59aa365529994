//! The `Renderer` trait: scene + frames + optional crop → images.
//!
//! Workers render whole frames; verifiers render small crops of the same
//! frames to check them. Both go through this one trait, so a renderer that
//! is deterministic per pixel makes crop challenges exact.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
#[cfg(feature = "runtime")]
use tokio::sync::mpsc::UnboundedSender;

use crate::image::{Image, Rect};

/// What kind of scene file a renderer is asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SceneFormat {
    /// glTF 2.0, binary (`.glb`) or JSON (`.gltf`).
    Gltf,
    /// A Blender `.blend` file.
    Blend,
}

impl SceneFormat {
    /// Guesses the format from a file name.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "glb" | "gltf" => Some(Self::Gltf),
            "blend" => Some(Self::Blend),
            _ => None,
        }
    }
}

/// Settings that, with the scene and frame number, fully determine the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub samples: u32,
    /// Maximum path length in bounces.
    pub max_bounces: u32,
    /// Seed of every random stream; the same seed gives the same pixels.
    pub seed: u64,
    /// Frames per second used to turn frame numbers into animation time.
    pub fps: f32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            samples: 64,
            max_bounces: 6,
            seed: 0,
            fps: 24.0,
        }
    }
}

/// One call to a renderer.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    /// Path to the scene file on local disk (external resources beside it).
    pub scene: PathBuf,
    /// Format of the scene file.
    pub format: SceneFormat,
    /// Frames to render, in order.
    pub frames: Vec<u32>,
    /// Image settings.
    pub settings: RenderSettings,
    /// Render only this region of each frame; the pixels must equal the same
    /// region of the full frame.
    pub crop: Option<Rect>,
    /// Where to report progress, if anyone listens.
    #[cfg(feature = "runtime")]
    pub progress: Option<UnboundedSender<RenderProgress>>,
}

/// Progress of a render, sent while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderProgress {
    /// Frame being rendered.
    pub frame: u32,
    /// Fraction of that frame done, 0..=1.
    pub fraction: f32,
}

/// One rendered frame (or crop of it).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFrame {
    /// Frame number.
    pub frame: u32,
    /// Linear RGB pixels; the crop's size when a crop was asked for.
    pub image: Image,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The scene could not be read or is malformed or hostile.
    #[error("invalid scene {path}: {reason}")]
    InvalidScene {
        /// Scene file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The renderer does not handle this scene format.
    #[error("scene format {0:?} is not supported by this renderer")]
    UnsupportedFormat(SceneFormat),
    /// Settings out of range (zero size, crop outside the frame, …).
    #[error("invalid render settings: {0}")]
    InvalidSettings(String),
    /// No compute device could be used.
    #[error("no render device: {0}")]
    NoDevice(String),
    /// The render ran past its time limit.
    #[error("render timed out after {seconds} s")]
    Timeout {
        /// Limit that was exceeded.
        seconds: u64,
    },
    /// The render was cancelled.
    #[error("render cancelled")]
    Cancelled,
    /// Anything else the backend reports.
    #[error("renderer failed: {0}")]
    Backend(String),
}

/// Something that turns scenes into images.
#[async_trait]
pub trait Renderer: Send + Sync {
    /// Short name for logs and capabilities, e.g. `"cubecl-pt"`.
    fn name(&self) -> &str;
    /// Scene formats this renderer reads.
    fn formats(&self) -> &[SceneFormat];
    /// Identifies the exact build/device class whose output is bit-exact;
    /// verifiers compare crops exactly only within one class.
    fn device_class(&self) -> String;
    /// Renders every requested frame.
    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError>;

    /// Renders each of `crops` of every frame of `request` (whose own `crop`
    /// is ignored): a verifier's crop challenges. Results are in frame
    /// order, then in the order of `crops`; each image has its crop's size.
    ///
    /// The default renders one crop per call. Renderers that pay a large
    /// cost per call (starting a process, loading the scene) override it
    /// to render them all at once.
    async fn render_crops(
        &self,
        request: RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        let mut out = Vec::with_capacity(request.frames.len() * crops.len());
        for &frame in &request.frames {
            for &crop in crops {
                let one = RenderRequest {
                    scene: request.scene.clone(),
                    format: request.format,
                    frames: vec![frame],
                    settings: request.settings.clone(),
                    crop: Some(crop),
                    #[cfg(feature = "runtime")]
                    progress: None,
                };
                out.extend(self.render(one).await?);
            }
        }
        Ok(out)
    }
}

impl RenderRequest {
    /// Checks settings and crop before any work is done.
    pub fn validate(&self) -> Result<(), RenderError> {
        let s = &self.settings;
        if s.width == 0 || s.height == 0 || s.width > 16384 || s.height > 16384 {
            return Err(RenderError::InvalidSettings(format!(
                "resolution {}x{} outside 1..=16384",
                s.width, s.height
            )));
        }
        if s.samples == 0 || s.samples > 1 << 16 {
            return Err(RenderError::InvalidSettings(format!(
                "{} samples outside 1..=65536",
                s.samples
            )));
        }
        if !(s.fps.is_finite() && s.fps > 0.0) {
            return Err(RenderError::InvalidSettings(format!(
                "fps {} must be positive",
                s.fps
            )));
        }
        if let Some(c) = self.crop {
            if !c.fits_in(s.width, s.height) {
                return Err(RenderError::InvalidSettings(format!(
                    "crop {c:?} outside the {}x{} frame",
                    s.width, s.height
                )));
            }
        }
        Ok(())
    }
}
