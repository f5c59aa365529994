//! Quotes: validating a spec, checking its scene, and pricing it (with a probe
//! render when the manager has a renderer).

use std::path::Path;

use inferix_core::renderer::SceneInspector;

use super::*;

/// Prices jobs from a small render of their scene on this machine.
pub(super) struct Prober {
    pub(super) renderer: Arc<dyn Renderer>,
    pub(super) ib: f64,
    pub(super) scratch: PathBuf,
    pub(super) cache: Mutex<HashMap<String, (f64, Vec<RenderWarning>)>>,
}

impl Prober {
    /// Seconds per full frame on an IB 1.0 machine, from a small render,
    /// and what the renderer substitutes in the scene.
    pub(super) async fn seconds_per_frame(
        &self,
        spec: &JobSpec,
        settings: &RenderSettings,
        blobs: &dyn BlobStore,
    ) -> Result<(f64, Vec<RenderWarning>), String> {
        let key = format!("{}:{:?}", spec.scene.blob, settings);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        let path = crate::blob_cache::scene(blobs, &self.scratch, &spec.scene).await?;
        // Two probes at different sample counts, after a warm-up that pays
        // for scene loading and kernel compilation: time = fixed + per-sample
        // cost, so launch overhead is not multiplied up to full size.
        let s = settings;
        let (w, h) = ((s.width / 8).max(16), (s.height / 8).max(16));
        let low = (s.samples / 16).max(1);
        let high = low * 4;
        let mut timed = Vec::new();
        for samples in [low, low, high] {
            let settings = RenderSettings {
                width: w,
                height: h,
                samples,
                ..s.clone()
            };
            let req = RenderRequest {
                scene: path.clone(),
                format: spec.scene.format,
                frames: vec![spec.frames.start],
                settings,
                crop: None,
                progress: None,
            };
            let t = Instant::now();
            self.renderer.render(req).await.map_err(|e| e.to_string())?;
            timed.push(t.elapsed().as_secs_f64());
        }
        let (t_low, t_high) = (timed[1], timed[2]);
        let per_sample = ((t_high - t_low) / (w as f64 * h as f64 * (high - low) as f64)).max(0.0);
        let fixed = (t_low - per_sample * w as f64 * h as f64 * low as f64).max(0.0);
        let full = s.width as f64 * s.height as f64 * s.samples as f64;
        let secs = (fixed + per_sample * full) * self.ib;
        let warnings = self
            .renderer
            .scene_warnings(&RenderRequest {
                scene: path.clone(),
                format: spec.scene.format,
                frames: vec![spec.frames.start],
                settings: s.clone(),
                crop: None,
                progress: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (secs, warnings.clone()));
        Ok((secs, warnings))
    }
}

/// A trial watermark of a job's scene before it is accepted: a scene that
/// cannot carry Proof-of-Render patches cannot be verified, so it is
/// refused at submission with the reason, instead of failing every lease.
pub(super) struct WatermarkTrial {
    pub(super) marker: Arc<dyn SceneWatermarker>,
    pub(super) por: PorConfig,
    pub(super) scratch: PathBuf,
    /// Scenes and frame sizes that passed already.
    pub(super) passed: Arc<Mutex<HashSet<(ContentHash, u32, u32)>>>,
}

impl WatermarkTrial {
    /// Watermarks a copy of `spec`'s scene with a layout of the network's
    /// size; the copy is thrown away.
    pub(super) async fn check(
        &self,
        spec: &JobSpec,
        blobs: &dyn BlobStore,
    ) -> Result<(), (ErrorCode, String)> {
        let s = &spec.settings;
        let key = (spec.scene.blob, s.width, s.height);
        if self
            .passed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let internal = |e: String| (ErrorCode::Internal, e);
        let dir = self
            .scratch
            .join(format!("trial-{}", spec.scene.blob.to_hex()));
        inferix_core::fs::create_private_dir(&dir)
            .map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let name = crate::safe_file_name(&spec.scene.file_name);
        let plain = dir.join(&name);
        if !plain.exists() {
            blobs
                .get_to_file(spec.scene.blob, &plain)
                .await
                .map_err(|e| {
                    (
                        ErrorCode::Unavailable,
                        format!("cannot fetch the scene: {e}"),
                    )
                })?;
        }
        let trial = TaskId::new(JobId(0), 0);
        let patches = patches_for_lease(&self.por, trial, 0, s.width, s.height);
        let out = dir.join(format!("trial-{}x{}-{name}", s.width, s.height));
        let marked = self.marker.watermark(&plain, &patches, s, &out).await;
        let _ = tokio::fs::remove_file(&out).await;
        marked.map_err(|e| {
            (
                ErrorCode::InvalidRequest,
                format!("the scene cannot carry Proof-of-Render watermark patches, so its frames could not be verified: {e}"),
            )
        })?;
        self.passed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }
}

/// What rendering the scene will substitute (no light, no camera,
/// unsupported extensions), read by the manager's inspector without a
/// device, so that a manager without a probe renderer still tells the
/// customer; a scene that does not load is refused with the reason.
async fn inspected_warnings(
    spec: &JobSpec,
    settings: &RenderSettings,
    blobs: &dyn BlobStore,
    scratch: &Path,
    inspector: Arc<dyn SceneInspector>,
) -> Result<Vec<RenderWarning>, (ErrorCode, String)> {
    let path = crate::blob_cache::scene(blobs, scratch, &spec.scene)
        .await
        .map_err(|e| (ErrorCode::Unavailable, e))?;
    let request = RenderRequest {
        scene: path,
        format: spec.scene.format,
        frames: vec![spec.frames.start],
        settings: settings.clone(),
        crop: None,
        progress: None,
    };
    tokio::task::spawn_blocking(move || inspector.scene_warnings(&request))
        .await
        .map_err(|e| (ErrorCode::Internal, format!("scene inspection failed: {e}")))?
        .map_err(|e| {
            (
                ErrorCode::InvalidRequest,
                format!("the scene cannot be rendered: {e}"),
            )
        })
}

/// The job's settings lit by its environment map, once the map is found in
/// blob storage and (when an inspector reads the scene's format) reads as
/// one: a bad map is refused here, at submission, rather than failing on
/// every worker.
async fn environment(
    spec: &JobSpec,
    blobs: &dyn BlobStore,
    scratch: &Path,
    inspector: Option<Arc<dyn SceneInspector>>,
) -> Result<RenderSettings, (ErrorCode, String)> {
    let Some(env) = &spec.environment else {
        return Ok(spec.settings.clone());
    };
    match blobs.contains(env.blob).await {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                ErrorCode::NotFound,
                format!(
                    "environment map {} not found in blob storage; upload it first",
                    env.blob
                ),
            ))
        }
        Err(e) => return Err((ErrorCode::Unavailable, e.to_string())),
    }
    let settings = crate::blob_cache::lit_settings(blobs, scratch, &spec.settings, Some(env))
        .await
        .map_err(|e| (ErrorCode::Unavailable, e))?;
    let Some(inspector) = inspector else {
        return Ok(settings);
    };
    let path = settings.environment.clone().unwrap_or_default();
    tokio::task::spawn_blocking(move || inspector.check_environment(&path))
        .await
        .map_err(|e| {
            (
                ErrorCode::Internal,
                format!("environment check failed: {e}"),
            )
        })?
        .map_err(|e| {
            let reason = match e {
                RenderError::InvalidScene { reason, .. } => reason,
                other => other.to_string(),
            };
            (
                ErrorCode::InvalidRequest,
                format!(
                    "environment map {:?} cannot be read: {reason}",
                    env.file_name
                ),
            )
        })?;
    Ok(settings)
}

/// Validates a spec, checks its scene exists, and prices it.
pub(super) async fn quote(
    spec: &JobSpec,
    blobs: &dyn BlobStore,
    prober: Option<&Prober>,
    inspector: Option<Arc<dyn SceneInspector>>,
    price_per_ibm: u64,
    scratch: &Path,
) -> Result<Quote, (ErrorCode, String)> {
    spec.validate()
        .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
    match blobs.contains(spec.scene.blob).await {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                ErrorCode::NotFound,
                format!(
                    "scene {} not found in blob storage; upload it first",
                    spec.scene.blob
                ),
            ))
        }
        Err(e) => return Err((ErrorCode::Unavailable, e.to_string())),
    }
    let settings = environment(spec, blobs, scratch, inspector.clone()).await?;
    let s = &settings;
    let (seconds_per_frame, warnings) = match prober {
        Some(p) => p.seconds_per_frame(spec, s, blobs).await.map_err(|e| {
            (
                ErrorCode::InvalidRequest,
                format!("probe render failed: {e}"),
            )
        })?,
        None => (
            s.width as f64 * s.height as f64 * s.samples as f64 * SECONDS_PER_PIXEL_SAMPLE,
            match inspector {
                Some(inspector) => inspected_warnings(spec, s, blobs, scratch, inspector).await?,
                None => Vec::new(),
            },
        ),
    };
    let frames = spec.frames.len();
    let estimated_ibm = seconds_per_frame * frames as f64 / 60.0;
    let tasks = frames.div_ceil(spec.chunk_size as u64);
    Ok(Quote {
        estimated_ibm,
        price_per_ibm,
        total_price: (estimated_ibm * price_per_ibm as f64).ceil() as u64,
        frames,
        tasks,
        warnings,
    })
}
