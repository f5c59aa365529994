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

impl std::fmt::Display for SceneFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gltf => "glTF",
            Self::Blend => ".blend",
        })
    }
}

/// What camera rays that hit nothing show.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Background {
    /// The environment lighting the scene (the default studio when the
    /// scene has no light of its own), or black without one.
    #[default]
    Environment,
    /// A constant linear RGB colour; the environment still lights the scene.
    Color([f32; 3]),
    /// Nothing: such pixels get alpha 0 (PNG RGBA, EXR with an A channel).
    Transparent,
}

impl std::str::FromStr for Background {
    type Err = String;

    /// `environment`, `transparent`, `color` (black) or `color:R,G,B`
    /// (linear values).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("background {s:?}: expected environment, transparent, color or color:R,G,B");
        match s {
            "environment" => Ok(Self::Environment),
            "transparent" => Ok(Self::Transparent),
            "color" => Ok(Self::Color([0.0; 3])),
            _ => {
                let rgb = s.strip_prefix("color:").ok_or_else(bad)?;
                let v: Vec<f32> = rgb
                    .split(',')
                    .map(|c| c.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad())?;
                match v[..] {
                    [r, g, b] if v.iter().all(|c| c.is_finite() && *c >= 0.0) => {
                        Ok(Self::Color([r, g, b]))
                    }
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// How scene-linear light becomes the values of 8-bit frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// Linear values encoded as sRGB: what the scene says, clipped at 1.
    #[default]
    Standard,
    /// A filmic tone curve (the fitted ACES film curve, scaled to approach
    /// white asymptotically): highlights roll off
    /// towards white instead of clipping, so bright lights do not burn out
    /// harshly. Applied by the renderer to every pixel on its own, so crops
    /// and tiles stay exactly the frame's pixels.
    Filmic,
}

impl View {
    /// Maps one premultiplied linear value (alpha `a`) through the view.
    /// Filmic tone-maps the un-premultiplied colour and premultiplies it
    /// again, so a half-covered edge takes half the curve's value.
    pub fn map(self, v: f32, a: f32) -> f32 {
        match self {
            Self::Standard => v,
            Self::Filmic => {
                if a <= 0.0 {
                    return 0.0;
                }
                let x = (v / a).max(0.0);
                let y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14);
                // Scaled so that white is approached, never reached: two
                // very bright lights stay apart instead of both clipping.
                (y * (2.43 / 2.51)).clamp(0.0, 1.0) * a
            }
        }
    }

    /// Applies the view to a rendered image in place.
    pub fn apply(self, img: &mut crate::image::Image) {
        if self == Self::Standard {
            return;
        }
        let alpha = img.alpha.clone();
        for (p, rgb) in img.pixels.chunks_exact_mut(3).enumerate() {
            let a = alpha.as_ref().map_or(1.0, |al| al[p]);
            for c in rgb {
                *c = self.map(*c, a);
            }
        }
    }
}

impl std::fmt::Display for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standard => "standard",
            Self::Filmic => "filmic",
        })
    }
}

impl std::str::FromStr for View {
    type Err = String;

    /// `standard` or `filmic`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standard" => Ok(Self::Standard),
            "filmic" => Ok(Self::Filmic),
            _ => Err(format!("view {s:?}: expected standard or filmic")),
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
    /// An equirectangular `.hdr` or `.exr` radiance map lighting the scene
    /// from all around (with the scene's own lights). Local renders only:
    /// the file does not travel with network jobs.
    #[serde(default)]
    pub environment: Option<PathBuf>,
    /// What pixels that see no geometry show.
    #[serde(default)]
    pub background: Background,
    /// How linear light becomes 8-bit values (EXR frames stay
    /// scene-linear, so a job with another view than standard delivers PNG).
    #[serde(default)]
    pub view: View,
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
            environment: None,
            background: Background::Environment,
            view: View::Standard,
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

/// Something a renderer substituted for, or could not do, in a scene: a
/// render still succeeds, but the customer should know (printed once per
/// scene by `inferix render`, kept in a job's status).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RenderWarning {
    /// Stable identifier for programs, e.g. `"default-environment"`.
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

impl RenderWarning {
    /// A warning from its code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RenderWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
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
    /// The class of what renders `format`: a node with several renderers
    /// signs each result with the class of the one that drew it, so that a
    /// verifier with the same path tracer compares a glTF crop exactly
    /// whether or not either node also has Blender.
    fn device_class_for(&self, format: SceneFormat) -> String {
        let _ = format;
        self.device_class()
    }
    /// Renders every requested frame.
    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError>;

    /// What rendering `request`'s scene with its settings will substitute
    /// or skip (no lights, no camera, unsupported features), each once.
    /// It does not depend on the crop and is meant to be asked once per
    /// scene, not per frame.
    ///
    /// The default reports nothing, for renderers that substitute nothing.
    async fn scene_warnings(
        &self,
        request: &RenderRequest,
    ) -> Result<Vec<RenderWarning>, RenderError> {
        let _ = request;
        Ok(Vec::new())
    }

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

/// Reads scenes and environment maps without a device and without
/// rendering: what a manager checks when a job is submitted, so that a
/// scene no worker can load is refused once, with the reason, instead of
/// failing on every worker it is leased to. Synchronous: callers run it on
/// a blocking thread.
pub trait SceneInspector: Send + Sync {
    /// Scene formats this inspector reads.
    fn formats(&self) -> &[SceneFormat];
    /// What rendering `request`'s scene with its settings will substitute
    /// or skip, as [`Renderer::scene_warnings`] reports it; a scene that
    /// does not load is [`RenderError::InvalidScene`].
    fn scene_warnings(&self, request: &RenderRequest) -> Result<Vec<RenderWarning>, RenderError>;
    /// Checks that `path` reads as an environment map
    /// ([`RenderError::InvalidScene`] naming the file when it does not).
    fn check_environment(&self, path: &std::path::Path) -> Result<(), RenderError>;
}

impl RenderRequest {
    /// Checks settings and crop before any work is done.
    pub fn validate(&self) -> Result<(), RenderError> {
        self.validate_settings()?;
        self.crop.map_or(Ok(()), |c| self.check_crop(c))
    }

    /// Like [`validate`](Self::validate) for
    /// [`Renderer::render_crops`]: the request's own crop is ignored and
    /// each of `crops` is checked instead.
    pub fn validate_crops(&self, crops: &[Rect]) -> Result<(), RenderError> {
        self.validate_settings()?;
        crops.iter().try_for_each(|c| self.check_crop(*c))
    }

    /// Whether crop `c` lies inside the request's frame.
    pub fn check_crop(&self, c: Rect) -> Result<(), RenderError> {
        let s = &self.settings;
        if c.fits_in(s.width, s.height) {
            return Ok(());
        }
        Err(RenderError::InvalidSettings(format!(
            "crop {c:?} outside the {}x{} frame",
            s.width, s.height
        )))
    }

    fn validate_settings(&self) -> Result<(), RenderError> {
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
        if let Background::Color(c) = s.background {
            if !c.iter().all(|v| v.is_finite() && *v >= 0.0) {
                return Err(RenderError::InvalidSettings(format!(
                    "background colour {c:?} must be finite and non-negative"
                )));
            }
        }
        if !(s.fps.is_finite() && s.fps > 0.0) {
            return Err(RenderError::InvalidSettings(format!(
                "fps {} must be positive",
                s.fps
            )));
        }
        Ok(())
    }
}

#[cfg(all(feature = "runtime", any(test, feature = "testing")))]
pub mod conformance;
#[cfg(all(feature = "runtime", any(test, feature = "testing")))]
pub mod inspector_conformance;
#[cfg(all(feature = "runtime", any(test, feature = "testing")))]
pub mod stand_in;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_parses_and_settings_default() {
        assert_eq!("environment".parse(), Ok(Background::Environment));
        assert_eq!("transparent".parse(), Ok(Background::Transparent));
        assert_eq!("color".parse(), Ok(Background::Color([0.0; 3])));
        assert_eq!(
            "color:0.5, 1,2".parse(),
            Ok(Background::Color([0.5, 1.0, 2.0]))
        );
        for bad in ["colour", "color:1,2", "color:1,2,x", "color:-1,0,0", ""] {
            assert!(bad.parse::<Background>().is_err(), "{bad:?}");
        }
        let d = RenderSettings::default();
        assert_eq!(
            (d.environment, d.background),
            (None, Background::Environment)
        );
    }

    #[test]
    fn the_filmic_view_rolls_highlights_off_and_keeps_the_dark_and_edges() {
        assert_eq!("filmic".parse(), Ok(View::Filmic));
        assert_eq!("standard".parse(), Ok(View::Standard));
        assert!("agx".parse::<View>().is_err());
        assert_eq!(RenderSettings::default().view, View::Standard);
        for v in [0.0, 0.2, 3.0, 40.0] {
            assert_eq!(View::Standard.map(v, 1.0), v);
        }
        let f = |v| View::Filmic.map(v, 1.0);
        assert_eq!(f(0.0), 0.0);
        // Monotonic, below white, and never clipped where Standard clips.
        let values = [0.01, 0.1, 0.5, 1.0, 2.0, 8.0, 100.0];
        for w in values.windows(2) {
            assert!(f(w[0]) < f(w[1]), "{w:?}");
        }
        assert!(f(1.0) < 1.0 && f(100.0) <= 1.0 && f(100.0) > 0.95);
        assert!(f(2.0) < f(8.0), "two bright lights stay apart");
        // A half-covered pixel takes half the curve's value.
        assert!((View::Filmic.map(0.5, 0.5) - 0.5 * f(1.0)).abs() < 1e-6);
        assert_eq!(View::Filmic.map(0.0, 0.0), 0.0);
        let mut img = crate::image::Image::new(2, 1);
        img.set(0, 0, [4.0, 0.5, 0.0]);
        View::Filmic.apply(&mut img);
        assert_eq!(&img.pixels[..3], &[f(4.0), f(0.5), 0.0]);
    }
}
