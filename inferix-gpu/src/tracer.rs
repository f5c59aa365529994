//! [`PathTracer`]: the cubecl path tracer behind the `Renderer` trait.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use cubecl::prelude::*;
use inferix_core::image::{Image, Rect};
use inferix_core::renderer::{
    Background, RenderError, RenderProgress, RenderRequest, RenderSettings, RenderWarning,
    RenderedFrame, Renderer, SceneFormat,
};

use crate::camera::{self, Camera};
use crate::device::{self, with_client, Device, RuntimeKind};
use crate::environment::{EnvMap, EnvTables};
use crate::gpu_scene::{self, GpuScene};
use crate::kernel::{self, fp, up};
use crate::math::Vec3;
use crate::scene::{self, Scene, MAX_FILE_BYTES};

/// Parsed scenes kept in memory.
const SCENE_CACHE: usize = 8;

/// Identity of a scene file's contents on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// A parsed scene file and what is derived from it once.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) scene: Arc<Scene>,
    /// Flattened data of a static scene (the same for every frame).
    static_data: Option<Arc<GpuScene>>,
    /// Geometry bounds over the whole animation, which the default
    /// camera frames: computed on first need (evaluating the animation at
    /// its key times costs more than a frame), shared by clones.
    bounds: Arc<OnceLock<Result<Bounds, String>>>,
}

/// Axis-aligned bounds, `None` for a scene without triangles.
type Bounds = Option<(Vec3, Vec3)>;

impl Loaded {
    /// Reads and parses the scene file at `path` (no cache).
    pub(crate) fn read(path: &Path) -> Result<Loaded, RenderError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| invalid(path, format!("cannot read scene: {e}")))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(invalid(
                path,
                format!("scene file is {} bytes, over the limit", meta.len()),
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| invalid(path, format!("cannot read scene: {e}")))?;
        let scene = Arc::new(scene::load(&bytes, path).map_err(|e| invalid(path, e.0))?);
        // Once per scene load (the scene is cached): features of the file
        // that are not rendered.
        for w in &scene.warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        let static_data = if scene.is_animated() {
            None
        } else {
            let g = scene.evaluate(0.0).map_err(|e| invalid(path, e.0))?;
            Some(Arc::new(gpu_scene::flatten(&scene, &g)))
        };
        Ok(Loaded {
            scene,
            static_data,
            bounds: Arc::new(OnceLock::new()),
        })
    }

    /// What rendering `request` with this scene substitutes, judged on
    /// the first requested frame.
    pub(crate) fn warnings(
        &self,
        request: &RenderRequest,
    ) -> Result<Vec<RenderWarning>, RenderError> {
        let s = &request.settings;
        let data = match &self.static_data {
            Some(d) => d.clone(),
            None => {
                let frame = request.frames.first().copied().unwrap_or(0);
                Arc::new(frame_data(&self.scene, frame, s).map_err(|e| invalid(&request.scene, e))?)
            }
        };
        let mut out: Vec<RenderWarning> = self
            .scene
            .warnings
            .iter()
            .map(|w| RenderWarning::new("unsupported-feature", w.clone()))
            .collect();
        if data.camera.is_none() {
            out.push(RenderWarning::new(
                "default-camera",
                "the scene has no camera: a default three-quarter view framing the \
                 whole animation is used",
            ));
        }
        if s.environment.is_none() && !data.self_lit {
            out.push(RenderWarning::new(
                "default-environment",
                "the scene has no light and no emissive surface worth sampling: \
                 it is lit by the default studio environment",
            ));
        }
        Ok(out)
    }

    /// The camera the file names at this frame, else the default camera.
    pub(crate) fn camera(
        &self,
        data: &GpuScene,
        s: &RenderSettings,
        path: &Path,
    ) -> Result<Camera, RenderError> {
        if let Some(c) = data.camera {
            return Ok(c);
        }
        let bounds = self
            .bounds
            .get_or_init(|| camera::animation_bounds(&self.scene).map_err(|e| e.0))
            .clone()
            .map_err(|e| invalid(path, e))?;
        Ok(camera::default_camera(
            bounds,
            s.width as f32 / s.height as f32,
        ))
    }
}

struct CachedScene {
    loaded: Loaded,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    scenes: HashMap<FileKey, CachedScene>,
    /// The last environment map read (jobs use one map for all frames).
    env: Option<(FileKey, Arc<EnvTables>)>,
    tick: u64,
}

fn file_key(path: &Path) -> Result<FileKey, std::io::Error> {
    let meta = std::fs::metadata(path)?;
    Ok(FileKey {
        path: path.to_path_buf(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How the tracer draws each pixel's sample values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// Owen-scrambled Sobol points per pixel: stratified, so less noise
    /// for the same samples. The default, and what every node uses.
    #[default]
    LowDiscrepancy,
    /// Independent uniform numbers per sample (the former sampler), kept
    /// to measure what the default gains.
    Independent,
}

/// Deterministic glTF path tracer running cubecl kernels.
///
/// Pixel (x, y) of frame f depends only on the scene, settings, seed, f, x
/// and y, so any crop renders bit-identically to the same region of the full
/// frame on the same [device class](Renderer::device_class).
#[derive(Clone)]
pub struct PathTracer {
    device: Device,
    cache: Arc<Mutex<Cache>>,
    sampler: Sampler,
}

impl std::fmt::Debug for PathTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathTracer")
            .field("device", &self.device.class)
            .finish()
    }
}

const FORMATS: [SceneFormat; 1] = [SceneFormat::Gltf];

impl PathTracer {
    /// Opens the best available runtime: CUDA (feature `cuda`, driver
    /// present), HIP (feature `hip`, driver present), else wgpu.
    pub fn new() -> Result<PathTracer, RenderError> {
        Ok(Self::from_device(device::open_best()?))
    }

    /// Opens a specific runtime.
    pub fn with_runtime(kind: RuntimeKind) -> Result<PathTracer, RenderError> {
        Ok(Self::from_device(device::open(kind)?))
    }

    fn from_device(device: Device) -> PathTracer {
        PathTracer {
            device,
            cache: Arc::new(Mutex::new(Cache::default())),
            sampler: Sampler::default(),
        }
    }

    /// Whether the device is the CPU (a software Vulkan driver): a frame
    /// takes tens of times longer there, so demos and quick previews use
    /// smaller settings on it.
    pub fn is_software(&self) -> bool {
        self.device.software
    }

    /// The same tracer drawing samples with `sampler`. Pixels then differ
    /// from the default's, and so does [`Renderer::device_class`].
    pub fn with_sampler(mut self, sampler: Sampler) -> PathTracer {
        self.sampler = sampler;
        self
    }

    /// Renders synchronously (blocking the calling thread).
    pub fn render_blocking(
        &self,
        request: &RenderRequest,
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        request.validate()?;
        let s = &request.settings;
        let rect = request.crop.unwrap_or(Rect::new(0, 0, s.width, s.height));
        self.render_rects(request, &[rect])
    }

    /// Renders each of `crops` of every frame of `request`, loading the
    /// scene and building each frame's data once for all of them: a
    /// verifier's many small crop challenges cost their pixels, not a
    /// scene upload each. See [`Renderer::render_crops`].
    pub fn render_crops_blocking(
        &self,
        request: &RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        let whole = RenderRequest {
            crop: None,
            progress: None,
            ..request.clone()
        };
        whole.validate_crops(crops)?;
        self.render_rects(&whole, crops)
    }

    /// Every rectangle of every frame, frame by frame.
    fn render_rects(
        &self,
        request: &RenderRequest,
        rects: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        if request.format != SceneFormat::Gltf {
            return Err(RenderError::UnsupportedFormat(request.format));
        }
        let loaded = self.load(&request.scene)?;
        let user_env = self.user_env(s_env(request))?;
        let (scene, static_data) = (&loaded.scene, &loaded.static_data);
        let s = &request.settings;
        let mut out = Vec::with_capacity(request.frames.len() * rects.len());
        for &frame in &request.frames {
            let data = match &static_data {
                Some(d) => d.clone(),
                None => {
                    Arc::new(frame_data(scene, frame, s).map_err(|e| invalid(&request.scene, e))?)
                }
            };
            let cam = loaded.camera(&data, s, &request.scene)?;
            let progress = |fraction: f32| {
                if let Some(tx) = &request.progress {
                    let _ = tx.send(RenderProgress { frame, fraction });
                }
            };
            let lighting = Lighting::choose(&data, user_env.clone());
            let images = with_client!(&self.device.backend, client => render_frame(client, &data, &cam, &lighting, self.sampler, s, frame, rects, &progress))?;
            for mut image in images {
                s.view.apply(&mut image);
                out.push(RenderedFrame { frame, image });
            }
        }
        Ok(out)
    }

    /// What rendering `request` substitutes: see [`Renderer::scene_warnings`].
    /// Judged on the first requested frame.
    pub fn scene_warnings_blocking(
        &self,
        request: &RenderRequest,
    ) -> Result<Vec<RenderWarning>, RenderError> {
        check_request(request)?;
        self.load(&request.scene)?.warnings(request)
    }

    /// Renders flattened scene data (used by tests and the bench).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn render_data(
        &self,
        data: &GpuScene,
        cam: &Camera,
        lighting: &Lighting,
        s: &RenderSettings,
        frame: u32,
        rect: Rect,
        progress: &dyn Fn(f32),
    ) -> Result<Image, RenderError> {
        let images = with_client!(&self.device.backend, client => render_frame(client, data, cam, lighting, self.sampler, s, frame, &[rect], progress))?;
        images
            .into_iter()
            .next()
            .ok_or_else(|| RenderError::Backend("no image rendered".into()))
    }

    /// The sampling tables of the user's environment map, if one is set;
    /// the last one read is cached.
    fn user_env(&self, path: Option<&Path>) -> Result<Option<Arc<EnvTables>>, RenderError> {
        let Some(path) = path else { return Ok(None) };
        let bad = |reason: String| {
            RenderError::InvalidSettings(format!("environment map {}: {reason}", path.display()))
        };
        let key = file_key(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((k, t)) = &cache.env {
                if *k == key {
                    return Ok(Some(t.clone()));
                }
            }
        }
        let map = crate::environment::load_file(path).map_err(bad)?;
        let tables = Arc::new(EnvTables::build(&map));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.env = Some((key, tables.clone()));
        Ok(Some(tables))
    }

    /// Parsed scene and what is derived from it; cached.
    pub(crate) fn load(&self, path: &Path) -> Result<Loaded, RenderError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| invalid(path, format!("cannot read scene: {e}")))?;
        let key = FileKey {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(c) = cache.scenes.get_mut(&key) {
                c.last_used = tick;
                return Ok(c.loaded.clone());
            }
        }
        let loaded = Loaded::read(path)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.scenes.len() >= SCENE_CACHE {
            if let Some(oldest) = cache
                .scenes
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
            {
                cache.scenes.remove(&oldest);
            }
        }
        let tick = cache.tick;
        cache.scenes.insert(
            key,
            CachedScene {
                loaded: loaded.clone(),
                last_used: tick,
            },
        );
        Ok(loaded)
    }
}

fn check_request(request: &RenderRequest) -> Result<(), RenderError> {
    request.validate()?;
    if request.format != SceneFormat::Gltf {
        return Err(RenderError::UnsupportedFormat(request.format));
    }
    Ok(())
}

/// What the path tracer would substitute when rendering `request` (see
/// [`Renderer::scene_warnings`]), without opening a device: clients ask it
/// before submitting a job.
pub fn scene_warnings(request: &RenderRequest) -> Result<Vec<RenderWarning>, RenderError> {
    check_request(request)?;
    Loaded::read(&request.scene)?.warnings(request)
}

fn s_env(request: &RenderRequest) -> Option<&Path> {
    request.settings.environment.as_deref()
}

fn invalid(path: &Path, reason: impl ToString) -> RenderError {
    RenderError::InvalidScene {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Flattened data of frame `frame` (time = frame / fps).
pub(crate) fn frame_data(
    scene: &Scene,
    frame: u32,
    s: &RenderSettings,
) -> Result<GpuScene, String> {
    let t = frame as f32 / s.fps;
    let g = scene.evaluate(t).map_err(|e| e.0)?;
    Ok(gpu_scene::flatten(scene, &g))
}

/// The default studio's tables, built once per process.
fn studio() -> Arc<EnvTables> {
    static STUDIO: std::sync::OnceLock<Arc<EnvTables>> = std::sync::OnceLock::new();
    STUDIO
        .get_or_init(|| Arc::new(EnvTables::build(&EnvMap::studio())))
        .clone()
}

/// How one frame is lit beyond its own lights.
#[derive(Debug, Clone)]
pub(crate) struct Lighting {
    /// The environment, if any: the user's map, or the default studio when
    /// the scene has nothing to sample.
    pub(crate) env: Option<Arc<EnvTables>>,
}

impl Lighting {
    /// The user's environment when given, else the default studio when the
    /// frame has no light and no emissive surface worth sampling.
    pub(crate) fn choose(data: &GpuScene, user: Option<Arc<EnvTables>>) -> Lighting {
        match user {
            Some(env) => Lighting { env: Some(env) },
            None if !data.self_lit => Lighting {
                env: Some(studio()),
            },
            None => Lighting { env: None },
        }
    }

    /// Probability that next-event estimation samples the environment: all
    /// of it without other lights, else its power's share (an environment
    /// of mean radiance L gives irradiance πL over the scene's cross-section,
    /// counted as a directional light is in [`crate::gpu_scene`]).
    fn env_share(&self, data: &GpuScene) -> f32 {
        let Some(env) = &self.env else { return 0.0 };
        if env.mean_luminance <= 0.0 {
            return 0.0;
        }
        if data.light_power <= 0.0 {
            return 1.0;
        }
        let pi = std::f64::consts::PI;
        let e = env.mean_luminance as f64 * pi * pi * (data.extent as f64).powi(2) * 0.25;
        ((e / (e + data.light_power)) as f32).clamp(0.1, 0.9)
    }
}

/// Launches the kernel over each of `rects` in passes and returns their
/// linear RGB, in order. The scene, camera and environment are uploaded
/// once for all of them.
#[allow(clippy::too_many_arguments)]
fn render_frame<R: Runtime>(
    client: &ComputeClient<R>,
    data: &GpuScene,
    cam: &Camera,
    lighting: &Lighting,
    sampler: Sampler,
    s: &RenderSettings,
    frame: u32,
    rects: &[Rect],
    progress: &dyn Fn(f32),
) -> Result<Vec<Image>, RenderError> {
    let fh = device::upload_f32(client, &data.fdata);
    let uh = device::upload_u32(client, &data.udata);
    let mut fpv = data.fp.clone();
    gpu_scene::write_camera(&mut fpv, cam);
    let bg_mode = match s.background {
        Background::Color(c) => {
            fpv[fp::BACKGROUND..fp::BACKGROUND + 3].copy_from_slice(&c);
            0
        }
        Background::Transparent => 2,
        _ => 1,
    };
    fpv[fp::ASPECT] = s.width as f32 / s.height as f32;
    fpv[fp::ENV_PMF] = lighting.env_share(data);
    let fph = device::upload_f32(client, &fpv);
    let empty = [0.0f32];
    let env_buf: &[f32] = lighting.env.as_ref().map_or(&empty, |e| &e.buf);
    let envh = device::upload_f32(client, env_buf);
    let (env_w, env_h) = lighting
        .env
        .as_ref()
        .map_or((0, 0), |e| (e.width, e.height));
    let dim = CubeDim::new_2d(8, 8);
    let inv = 1.0 / s.samples as f32;
    let blank = |r: &Rect| Image {
        width: r.width,
        height: r.height,
        pixels: Vec::new(),
        alpha: (bg_mode == 2).then(Vec::new),
    };
    if rects.iter().all(|r| r.area() == 0) {
        return Ok(rects.iter().map(blank).collect());
    }
    // One launch per rectangle would cost a verifier's many small crops a
    // launch and a sync each, more than their pixels: several rectangles
    // are rendered as one list of pixels. A pixel's value depends only on
    // its position, the frame, the seed and its samples in order, so both
    // ways give the same pixels.
    let pixels: usize = rects.iter().map(|r| r.area() as usize).sum();
    let (launch, listed) = match rects {
        [one] => (*one, Vec::new()),
        _ => {
            let listed: Vec<u32> = rects
                .iter()
                .flat_map(|r| {
                    (r.y..r.y + r.height)
                        .flat_map(move |y| (r.x..r.x + r.width).flat_map(move |x| [x, y]))
                })
                .collect();
            // A square launch: a list as long as an 8K frame (an audit
            // beside the crops) stays within the cube-count limit of
            // 65,535 per dimension.
            let width = (pixels as f64).sqrt().ceil() as u32;
            let rows = (pixels as u32).div_ceil(width);
            (Rect::new(0, 0, width, rows), listed)
        }
    };
    let count_listed = (listed.len() / 2) as u32;
    let pixel_list: &[u32] = if listed.is_empty() { &[0, 0] } else { &listed };
    let listh = device::upload_u32(client, pixel_list);
    let acc = device::upload_f32(client, &vec![0.0f32; pixels * kernel::ACC_F]);
    // Split samples into passes of bounded work; pixel values do not
    // depend on the split because each pass adds its samples one by one,
    // in order.
    let per_pass = ((1usize << 20) / pixels.max(1)).clamp(1, s.samples as usize) as u32;
    let count = CubeCount::Static(launch.width.div_ceil(8), launch.height.div_ceil(8), 1);
    let mut start = 0u32;
    while start < s.samples {
        let n = per_pass.min(s.samples - start);
        let mut upv = data.up.clone();
        upv[up::FULL_W] = s.width;
        upv[up::FULL_H] = s.height;
        upv[up::OFF_X] = launch.x;
        upv[up::OFF_Y] = launch.y;
        upv[up::CROP_W] = launch.width;
        upv[up::CROP_H] = launch.height;
        upv[up::LISTED] = count_listed;
        upv[up::SEED_LO] = s.seed as u32;
        upv[up::SEED_HI] = (s.seed >> 32) as u32;
        upv[up::FRAME] = frame;
        upv[up::SAMPLE_START] = start;
        upv[up::SAMPLE_COUNT] = n;
        upv[up::MAX_BOUNCES] = s.max_bounces.min(1024);
        upv[up::ENV_W] = env_w;
        upv[up::ENV_H] = env_h;
        upv[up::BG_MODE] = bg_mode;
        upv[up::SAMPLER] = u32::from(sampler == Sampler::LowDiscrepancy);
        let uph = device::upload_u32(client, &upv);
        kernel::path_trace_kernel::launch::<R>(
            client,
            count.clone(),
            dim,
            device::array_arg(&fh, data.fdata.len()),
            device::array_arg(&uh, data.udata.len()),
            device::array_arg(&uph, upv.len()),
            device::array_arg(&fph, fpv.len()),
            device::array_arg(&envh, env_buf.len()),
            device::array_arg(&listh, pixel_list.len()),
            device::array_arg(&acc, pixels * kernel::ACC_F),
        );
        start += n;
        cubecl::future::block_on(client.sync())
            .map_err(|e| RenderError::Backend(format!("{e:?}")))?;
        progress(start as f32 / s.samples as f32);
    }
    let sums = device::read_f32(client, acc);
    let mut images = Vec::with_capacity(rects.len());
    let mut rest = sums.as_slice();
    for rect in rects {
        let (mine, after) = rest.split_at(rect.area() as usize * kernel::ACC_F);
        rest = after;
        let alpha = (bg_mode == 2).then(|| {
            mine.chunks_exact(kernel::ACC_F)
                .map(|p| p[3] * inv)
                .collect()
        });
        images.push(Image {
            width: rect.width,
            height: rect.height,
            pixels: mine
                .chunks_exact(kernel::ACC_F)
                .flat_map(|p| [p[0] * inv, p[1] * inv, p[2] * inv])
                .collect(),
            alpha,
        });
    }
    Ok(images)
}

#[async_trait]
impl Renderer for PathTracer {
    fn name(&self) -> &str {
        "cubecl-pt"
    }

    fn formats(&self) -> &[SceneFormat] {
        &FORMATS
    }

    fn device_class(&self) -> String {
        match self.sampler {
            Sampler::LowDiscrepancy => self.device.class.clone(),
            _ => format!("{}+independent-sampler", self.device.class),
        }
    }

    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.render_blocking(&request))
            .await
            .map_err(|e| RenderError::Backend(format!("render task failed: {e}")))?
    }

    async fn render_crops(
        &self,
        request: RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        let this = self.clone();
        let crops = crops.to_vec();
        tokio::task::spawn_blocking(move || this.render_crops_blocking(&request, &crops))
            .await
            .map_err(|e| RenderError::Backend(format!("crop render task failed: {e}")))?
    }

    async fn scene_warnings(
        &self,
        request: &RenderRequest,
    ) -> Result<Vec<RenderWarning>, RenderError> {
        let this = self.clone();
        let request = RenderRequest {
            progress: None,
            ..request.clone()
        };
        tokio::task::spawn_blocking(move || this.scene_warnings_blocking(&request))
            .await
            .map_err(|e| RenderError::Backend(format!("scene check failed: {e}")))?
    }
}
