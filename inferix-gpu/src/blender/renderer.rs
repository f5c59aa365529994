//! The Blender executable and the [`Renderer`] built on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::image::{srgb8_to_linear, Image, Rect};
use inferix_core::renderer::{
    Background, RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::BlenderError;
use super::process::{run_script, ScriptRun};
use super::sandbox::{Sandbox, SandboxPolicy};
use super::version::BlenderVersion;
use crate::codec;

const RENDER_PY: &str = include_str!("render.py");
const PACK_PY: &str = include_str!("pack.py");
const FORMATS: [SceneFormat; 1] = [SceneFormat::Blend];
/// Largest frame number Blender accepts.
const MAX_FRAME: u32 = 1_048_574;
/// Limit of `blender --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// A located Blender executable and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blender {
    executable: PathBuf,
    version: BlenderVersion,
    sandbox: Sandbox,
}

impl Blender {
    /// Finds Blender: `explicit` if given (no fallback when it fails), else
    /// the `BLENDER` environment variable, else `blender` on `PATH`. The
    /// executable must run `--version` and be at least
    /// [`BlenderVersion::MINIMUM_SUPPORTED`].
    pub async fn locate(explicit: Option<&Path>) -> Result<Self, BlenderError> {
        if let Some(p) = explicit {
            return Self::at(p).await;
        }
        if let Some(p) = std::env::var_os("BLENDER").filter(|p| !p.is_empty()) {
            return Self::at(Path::new(&p)).await;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("blender");
            if candidate.is_file() {
                return Self::at(&candidate).await;
            }
        }
        Err(BlenderError::NotFound {
            searched: format!("$BLENDER (unset), PATH ({})", path.to_string_lossy()),
        })
    }

    /// Uses the executable at `path`, checking its version. It runs in the
    /// sandbox when this machine has one ([`SandboxPolicy::Auto`]).
    pub async fn at(path: &Path) -> Result<Self, BlenderError> {
        if !path.is_file() {
            return Err(BlenderError::NotFound {
                searched: path.display().to_string(),
            });
        }
        let unusable = |reason: String| BlenderError::Unusable {
            path: path.to_path_buf(),
            reason,
        };
        let mut cmd = tokio::process::Command::new(path);
        cmd.arg("--factory-startup")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
            .await
            .map_err(|_| unusable("`--version` did not finish within 60 s".into()))?
            .map_err(|e| unusable(format!("cannot run it: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(unusable(format!("`--version` exited with {}", out.status)));
        }
        let version = BlenderVersion::from_version_output(&text).ok_or_else(|| {
            unusable(format!(
                "`--version` printed no version: {:?}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        let blender = Self {
            executable: path.to_path_buf(),
            version,
            sandbox: Sandbox::default(),
        };
        blender.require(BlenderVersion::MINIMUM_SUPPORTED)?;
        blender.with_sandbox(SandboxPolicy::Auto).await
    }

    /// Runs Blender under `policy` from now on; [`SandboxPolicy::Required`]
    /// fails with [`BlenderError::NoSandbox`] on a machine without a
    /// working bubblewrap, so a node that must not run scenes unconfined
    /// refuses to start rather than finding out at its first render.
    pub async fn with_sandbox(mut self, policy: SandboxPolicy) -> Result<Self, BlenderError> {
        self.sandbox = Sandbox::resolve(policy).await?;
        Ok(self)
    }

    /// Whether Blender runs confined (see [`SandboxPolicy`]).
    pub fn is_sandboxed(&self) -> bool {
        self.sandbox.is_confined()
    }

    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The executable.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// Its version.
    pub fn version(&self) -> BlenderVersion {
        self.version
    }

    /// Fails with [`BlenderError::TooOld`] when older than `min`, so that a
    /// job that needs newer features is refused before anything runs.
    pub fn require(&self, min: BlenderVersion) -> Result<(), BlenderError> {
        if self.version < min {
            return Err(BlenderError::TooOld {
                found: self.version,
                required: min,
            });
        }
        Ok(())
    }

    /// Writes a self-contained copy of `scene` to `out`: every external
    /// image, font, sound, volume and linked library packed in. This is
    /// what a client uploads, so workers need nothing but the one file.
    /// Missing referenced files fail with [`BlenderError::MissingFiles`];
    /// files outside the scene's folder fail with
    /// [`BlenderError::OutsideFiles`] and are not packed, so a downloaded
    /// scene cannot pick up the uploader's own files (keep a scene's assets
    /// in or below its folder).
    pub async fn pack_scene(
        &self,
        scene: &Path,
        out: &Path,
        timeout: Duration,
    ) -> Result<(), BlenderError> {
        let dir = job_dir(None)?;
        let tmp_out = dir.path().join("packed.blend");
        run_script(ScriptRun {
            exe: &self.executable,
            sandbox: &self.sandbox,
            readable: scene_folder(scene)?,
            dir: dir.path(),
            script: ("pack.py", PACK_PY),
            job: json!({
                "scene": absolute(scene)?,
                "out": tmp_out,
            }),
            scene,
            allow_scene_scripts: false,
            threads: None,
            timeout,
            progress: None,
        })
        .await?;
        copy_out(&tmp_out, out)
    }
}

/// A fresh private folder for one Blender run, removed when dropped.
pub(crate) fn job_dir(base: Option<&Path>) -> Result<tempfile::TempDir, BlenderError> {
    let mut b = tempfile::Builder::new();
    b.prefix("inferix-blender-");
    match base {
        Some(base) => b.tempdir_in(base),
        None => b.tempdir(),
    }
    .map_err(|e| BlenderError::io("creating a job folder", e))
}

/// `path` made absolute against the current directory (Blender runs in the
/// job folder).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, BlenderError> {
    std::path::absolute(path)
        .map_err(|e| BlenderError::io(format!("resolving {}", path.display()), e))
}

/// What a run on `scene` reads: the scene's folder (scenes may name files
/// inside it; workers keep each scene in a folder of its own).
pub(crate) fn scene_folder(scene: &Path) -> Result<Vec<PathBuf>, BlenderError> {
    let scene = absolute(scene)?;
    Ok(scene.parent().map(Path::to_path_buf).into_iter().collect())
}

/// Copies a finished file from the job folder to where the caller wants it.
pub(crate) fn copy_out(from: &Path, to: &Path) -> Result<(), BlenderError> {
    if !from.is_file() {
        return Err(BlenderError::BadOutput {
            path: from.to_path_buf(),
            reason: "blender wrote no file".into(),
        });
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| BlenderError::io(format!("writing {}", to.display()), e))
}

/// Which Blender render engine (and device) draws the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum BlenderEngine {
    /// Cycles on the CPU: bit-reproducible on one build and CPU kernel.
    #[default]
    CyclesCpu,
    /// Cycles on the first GPU backend that has a device (OptiX, CUDA,
    /// HIP, oneAPI, Metal).
    CyclesGpu,
    /// EEVEE (needs an OpenGL context).
    Eevee,
    /// Workbench (needs an OpenGL context).
    Workbench,
}

impl BlenderEngine {
    fn job_name(self) -> &'static str {
        match self {
            Self::CyclesCpu => "cycles_cpu",
            Self::CyclesGpu => "cycles_gpu",
            Self::Eevee => "eevee",
            Self::Workbench => "workbench",
        }
    }

    fn class_name(self) -> &'static str {
        match self {
            Self::CyclesCpu => "cycles-cpu",
            Self::CyclesGpu => "cycles-gpu",
            Self::Eevee => "eevee",
            Self::Workbench => "workbench",
        }
    }
}

/// The file Blender writes, which is then read back into an [`Image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum BlenderOutput {
    /// 32-bit float OpenEXR: the exact linear render (default).
    #[default]
    Exr,
    /// 8-bit sRGB PNG (Standard view transform, no dither), decoded to
    /// linear; re-encoding it to 8 bits gives back the same bytes.
    Png,
}

/// How a [`BlenderRenderer`] runs Blender.
#[derive(Debug, Clone, PartialEq)]
pub struct BlenderConfig {
    /// Engine and device.
    pub engine: BlenderEngine,
    /// File format of the intermediate frames.
    pub output: BlenderOutput,
    /// Wall-clock limit of one render call (all of its frames); the process
    /// group is killed when it is exceeded.
    pub timeout: Duration,
    /// Render threads; `None` uses every core.
    pub threads: Option<u32>,
    /// Run Python embedded in scenes (text blocks, drivers). Off by default:
    /// scenes come from strangers.
    pub allow_scene_scripts: bool,
    /// Refuse to render unless Blender is at least this version.
    pub min_version: Option<BlenderVersion>,
    /// Where job folders are created; the system temporary folder if `None`.
    pub work_dir: Option<PathBuf>,
}

impl Default for BlenderConfig {
    fn default() -> Self {
        Self {
            engine: BlenderEngine::CyclesCpu,
            output: BlenderOutput::Exr,
            timeout: Duration::from_secs(3600),
            threads: None,
            allow_scene_scripts: false,
            min_version: None,
            work_dir: None,
        }
    }
}

/// Renders `.blend` scenes with a Blender subprocess.
#[derive(Debug, Clone)]
pub struct BlenderRenderer {
    blender: Arc<Blender>,
    config: BlenderConfig,
}

impl BlenderRenderer {
    /// A renderer driving `blender` as `config` says.
    pub fn new(blender: Blender, config: BlenderConfig) -> Self {
        Self {
            blender: Arc::new(blender),
            config,
        }
    }

    /// The same executable with other settings (e.g. a job's engine,
    /// time limit or minimum version).
    pub fn with_config(&self, config: BlenderConfig) -> Self {
        Self {
            blender: self.blender.clone(),
            config,
        }
    }

    /// The executable.
    pub fn blender(&self) -> &Blender {
        &self.blender
    }

    /// Blender's version.
    pub fn version(&self) -> BlenderVersion {
        self.blender.version
    }

    /// Current settings.
    pub fn config(&self) -> &BlenderConfig {
        &self.config
    }

    /// Renders like [`Renderer::render`] with the typed error.
    pub async fn render_blend(
        &self,
        request: RenderRequest,
    ) -> Result<Vec<RenderedFrame>, BlenderError> {
        let regions = vec![request.crop];
        let images = self.render_regions(&request, &regions).await?;
        Ok(images
            .into_iter()
            .map(|c| RenderedFrame {
                frame: c.frame,
                image: c.image,
            })
            .collect())
    }

    /// Like [`Renderer::render_crops`] with the typed error: renders every
    /// crop of every requested frame in one Blender process, so start-up
    /// and scene evaluation are paid once. `request.crop` is ignored. Each
    /// crop is bit-identical to the same region of the full frame. Results
    /// are in frame order, then in the order of `crops`.
    pub async fn render_crops_blend(
        &self,
        request: RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedCrop>, BlenderError> {
        let request = RenderRequest {
            crop: None,
            ..request
        };
        if crops.is_empty() {
            return Err(BlenderError::InvalidSettings("no crops requested".into()));
        }
        crops
            .iter()
            .try_for_each(|c| request.check_crop(*c))
            .map_err(invalid_settings)?;
        let regions: Vec<Option<Rect>> = crops.iter().copied().map(Some).collect();
        self.render_regions(&request, &regions).await
    }

    async fn render_regions(
        &self,
        request: &RenderRequest,
        regions: &[Option<Rect>],
    ) -> Result<Vec<RenderedCrop>, BlenderError> {
        if let Some(min) = self.config.min_version {
            self.blender.require(min)?;
        }
        if request.format != SceneFormat::Blend {
            return Err(BlenderError::InvalidSettings(format!(
                "scene format {:?} is not a .blend",
                request.format
            )));
        }
        request.validate().map_err(invalid_settings)?;
        if request.frames.is_empty() {
            return Err(BlenderError::InvalidSettings("no frames requested".into()));
        }
        if request.settings.environment.is_some() {
            return Err(BlenderError::InvalidSettings(
                "a .blend is lit by its own world; an environment map applies to glTF scenes"
                    .into(),
            ));
        }
        if let Some(f) = request.frames.iter().find(|f| **f > MAX_FRAME) {
            return Err(BlenderError::InvalidSettings(format!(
                "frame {f} beyond Blender's last frame {MAX_FRAME}"
            )));
        }
        let scene = absolute(&request.scene)?;
        if !scene.is_file() {
            return Err(BlenderError::UnreadableScene {
                path: request.scene.clone(),
                reason: "no such file".into(),
            });
        }
        let s = &request.settings;
        let dir = job_dir(self.config.work_dir.as_deref())?;
        let out_dir = dir.path().join("frames");
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| BlenderError::io(format!("creating {}", out_dir.display()), e))?;
        let output = self.config.output;
        let crops: Vec<Option<[u32; 4]>> = regions
            .iter()
            .map(|r| r.map(|c| [c.x, c.y, c.width, c.height]))
            .collect();
        let job = json!({
            "scene": scene,
            "out_dir": out_dir,
            "frames": request.frames,
            "width": s.width,
            "height": s.height,
            "samples": s.samples,
            "max_bounces": s.max_bounces.min(1024),
            "seed": cycles_seed(s.seed),
            "engine": self.config.engine.job_name(),
            "output": match output { BlenderOutput::Exr => "exr", BlenderOutput::Png => "png" },
            "crops": crops,
            // Empty pixels come back transparent unless the scene's own
            // world is the background; a colour is laid under them here.
            "film_transparent": s.background != Background::Environment,
        });
        let result = run_script(ScriptRun {
            exe: &self.blender.executable,
            sandbox: &self.blender.sandbox,
            readable: scene_folder(&scene)?,
            dir: dir.path(),
            script: ("render.py", RENDER_PY),
            job,
            scene: &request.scene,
            allow_scene_scripts: self.config.allow_scene_scripts,
            threads: self.config.threads,
            timeout: self.config.timeout,
            progress: request.progress.clone(),
        })
        .await?;

        let mut images = Vec::with_capacity(request.frames.len() * regions.len());
        for &frame in &request.frames {
            for (index, region) in regions.iter().enumerate() {
                let rect = region.unwrap_or(Rect::new(0, 0, s.width, s.height));
                let path = result
                    .frames
                    .iter()
                    .find(|(f, i, _)| *f == frame && *i == index)
                    .map(|(_, _, p)| p.clone())
                    .ok_or_else(|| BlenderError::BadOutput {
                        path: out_dir.clone(),
                        reason: format!("no image reported for frame {frame}, region {index}"),
                    })?;
                let mut image = tokio::task::spawn_blocking(move || read_image(&path, output))
                    .await
                    .map_err(|e| {
                        BlenderError::io("decoding a frame", std::io::Error::other(e))
                    })??;
                if let Background::Color(c) = s.background {
                    over_colour(&mut image, c);
                }
                // Blender's own view stays Standard (render.py); the
                // network's view is the same curve for every renderer.
                s.view.apply(&mut image);
                if (image.width, image.height) != (rect.width, rect.height) {
                    return Err(BlenderError::BadOutput {
                        path: out_dir.clone(),
                        reason: format!(
                            "frame {frame} region {rect:?} came out {}x{}",
                            image.width, image.height
                        ),
                    });
                }
                images.push(RenderedCrop { frame, rect, image });
            }
        }
        Ok(images)
    }
}

/// A request the shared checks refuse, as Blender's typed error.
fn invalid_settings(e: RenderError) -> BlenderError {
    match e {
        RenderError::InvalidSettings(s) => BlenderError::InvalidSettings(s),
        other => BlenderError::InvalidSettings(other.to_string()),
    }
}

/// One region of one frame from [`BlenderRenderer::render_crops_blend`].
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedCrop {
    /// Frame number.
    pub frame: u32,
    /// Region of the frame.
    pub rect: Rect,
    /// Its linear RGB pixels, `rect`'s size.
    pub image: Image,
}

/// Cycles takes a non-negative 31-bit seed; the 64-bit seed is folded so
/// that every bit of it matters.
fn cycles_seed(seed: u64) -> u32 {
    let folded = seed ^ (seed >> 31) ^ (seed >> 62);
    (folded & 0x7fff_ffff) as u32
}

/// Reads one written frame into linear RGB.
fn read_image(path: &Path, output: BlenderOutput) -> Result<Image, BlenderError> {
    let bad = |reason: String| BlenderError::BadOutput {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    match output {
        BlenderOutput::Exr => codec::decode_exr(&bytes).map_err(|e| bad(e.to_string())),
        BlenderOutput::Png => {
            let img = codec::decode_png(&bytes).map_err(|e| bad(e.to_string()))?;
            // Straight 8-bit alpha back to the premultiplied linear form.
            let cover = |p: usize| img.alpha.as_ref().map_or(1.0, |a| a[p] as f32 / 255.0);
            Ok(Image {
                width: img.width,
                height: img.height,
                pixels: img
                    .pixels
                    .iter()
                    .enumerate()
                    .map(|(i, b)| srgb8_to_linear(*b) * cover(i / 3))
                    .collect(),
                alpha: img
                    .alpha
                    .as_ref()
                    .map(|a| a.iter().map(|&v| v as f32 / 255.0).collect()),
            })
        }
    }
}

/// Lays a linear colour under a premultiplied image, leaving it opaque.
fn over_colour(image: &mut Image, colour: [f32; 3]) {
    let Some(alpha) = image.alpha.take() else {
        return;
    };
    for (p, a) in image.pixels.chunks_exact_mut(3).zip(alpha) {
        for (c, under) in p.iter_mut().zip(colour) {
            *c += (1.0 - a) * under;
        }
    }
}

/// The CPU's instruction-set level, which picks Cycles' CPU kernel and so
/// decides which machines produce bit-identical pixels.
fn cpu_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return "x86_64-avx2";
        }
        if std::arch::is_x86_feature_detected!("sse4.1") {
            return "x86_64-sse41";
        }
        "x86_64"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

#[async_trait]
impl Renderer for BlenderRenderer {
    fn name(&self) -> &str {
        "blender"
    }

    fn formats(&self) -> &[SceneFormat] {
        &FORMATS
    }

    /// `blender-<version>-<engine>`, plus the CPU kernel level for Cycles
    /// CPU (e.g. `blender-3.4.1-cycles-cpu-x86_64-avx2`): frames are
    /// bit-identical within one class.
    fn device_class(&self) -> String {
        let base = format!(
            "blender-{}-{}",
            self.blender.version,
            self.config.engine.class_name()
        );
        match self.config.engine {
            BlenderEngine::CyclesCpu => format!("{base}-{}", cpu_level()),
            _ => base,
        }
    }

    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        if request.format != SceneFormat::Blend {
            return Err(RenderError::UnsupportedFormat(request.format));
        }
        Ok(self.render_blend(request).await?)
    }

    /// All crops of all frames in one Blender process.
    async fn render_crops(
        &self,
        request: RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        if request.format != SceneFormat::Blend {
            return Err(RenderError::UnsupportedFormat(request.format));
        }
        Ok(self
            .render_crops_blend(request, crops)
            .await?
            .into_iter()
            .map(|c| RenderedFrame {
                frame: c.frame,
                image: c.image,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_fills_what_the_render_left_uncovered() {
        let mut img = Image {
            width: 2,
            height: 1,
            pixels: vec![0.5, 0.25, 0.0, 0.0, 0.0, 0.0],
            alpha: Some(vec![0.5, 0.0]),
        };
        over_colour(&mut img, [0.2, 0.4, 0.6]);
        assert_eq!(img.alpha, None);
        assert_eq!(img.pixels, vec![0.6, 0.45, 0.3, 0.2, 0.4, 0.6]);
    }

    #[test]
    fn seeds_fold_into_31_bits() {
        assert_eq!(cycles_seed(0), 0);
        assert_eq!(cycles_seed(7), 7);
        assert!(cycles_seed(u64::MAX) <= 0x7fff_ffff);
        assert_ne!(cycles_seed(1 << 40), cycles_seed(0));
        assert_ne!(cycles_seed(1 << 63), cycles_seed(0));
    }
}
