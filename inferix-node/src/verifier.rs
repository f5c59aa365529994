//! The verifier node: checks a result against the worker's commitment and
//! reports a verdict.
//!
//! Every verifier checks what the frames alone show: each file decodes, its
//! pixels and tiles hash to the committed values, it has the requested size
//! and is not flat, and (Proof of Render) every watermark rectangle of the
//! lease's key shows a patch. A verifier with a renderer also re-renders
//! the crop challenges drawn after the commitment and compares them with
//! the committed pixels: exactly on the worker's device class, within the
//! network's tolerance across classes. When the frames carry watermark
//! patches and the result passes, it re-renders the patches' rectangles
//! from the clean scene, for the frames the customer receives.
//!
//! A check this verifier cannot do (no renderer for the scene's format, a
//! scene that does not download, a render that fails) makes the verdict
//! inconclusive unless another check already failed: "could not check" is
//! never a pass, and it says nothing against the worker either.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::image::Rgb8Image;
use inferix_core::por::merkle::TileTree;
use inferix_core::por::plan::clean_rects;
use inferix_core::por::watermark;
use inferix_core::protocol::{CleanCrop, Hello, Message, Role, Verdict, VerificationAssignment};
use inferix_core::renderer::{RenderRequest, Renderer};
use inferix_core::verify::{check_plausible, PlausibilityError};
use inferix_transport::Transport;
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::blob_cache;
use crate::node_metrics::NodeMetrics;
use crate::reconnect::{follow, Reconnect, SessionNode};
use crate::remote_blob::RemoteBlobStore;
use crate::{frame_codec, session, NodeError};

/// Verifier settings.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Manager address, or several separated by commas (the verifier moves
    /// to the next when its manager is unreachable).
    pub manager: String,
    /// Admission token.
    pub token: Option<String>,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Folder for scenes fetched to re-render crops.
    pub work_dir: std::path::PathBuf,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            manager: "manager".into(),
            token: None,
            heartbeat: Duration::from_secs(5),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            work_dir: std::env::temp_dir().join("inferix-verifier"),
        }
    }
}

/// A verifier, ready to run.
pub struct VerifierNode {
    transport: Arc<dyn Transport>,
    blobs: Option<Arc<dyn BlobStore>>,
    renderer: Option<Arc<dyn Renderer>>,
    config: VerifierConfig,
    metrics: Arc<NodeMetrics>,
}

impl VerifierNode {
    /// A verifier that fetches frames through its manager connection.
    pub fn new(transport: Arc<dyn Transport>, config: VerifierConfig) -> Self {
        Self {
            transport,
            blobs: None,
            renderer: None,
            config,
            metrics: NodeMetrics::verifier(),
        }
    }

    /// This verifier's metrics (verifications by outcome, their seconds).
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// Re-renders crop challenges with `renderer` (it must be the
    /// deterministic renderer the workers use).
    pub fn with_renderer(mut self, renderer: Arc<dyn Renderer>) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Fetches frames from `blobs` directly.
    pub fn with_blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// This verifier's node id.
    pub fn id(&self) -> NodeId {
        self.transport.local_id()
    }

    /// Runs until `shutdown` turns true, reconnecting with backoff (to the
    /// next manager, when given several) when the manager is unreachable.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let links = Reconnect::new(
            &self.config.manager,
            self.config.min_backoff,
            self.config.max_backoff,
        );
        follow(&self, links, shutdown).await
    }
    fn check(&self, blobs: Arc<dyn BlobStore>, a: VerificationAssignment) -> Check {
        let crops = self.renderer.as_ref().map(|r| CropRenderer {
            renderer: r.clone(),
            work_dir: self.config.work_dir.clone(),
        });
        // Every log line of this check carries the job and task.
        let span = tracing::info_span!("verification", job = %a.task.job, task = %a.task, id = a.verification);
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let started = std::time::Instant::now();
                let verdict = verify(&*blobs, crops.as_ref(), &a).await;
                let outcome = if verdict.passed { "passed" } else { "failed" };
                metrics.finished(outcome, Some(started.elapsed().as_secs_f64()));
                verdict
            }
            .instrument(span),
        )
    }
}

#[async_trait::async_trait]
impl SessionNode for VerifierNode {
    fn role(&self) -> &'static str {
        "verifier"
    }

    async fn session(
        &self,
        links: &mut Reconnect,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let hello = Hello {
            role: Role::Verifier,
            node: self.id(),
            ib: 0.0,
            tags: Vec::new(),
            device_class: self
                .renderer
                .as_ref()
                .map(|r| r.device_class())
                .unwrap_or_default(),
            token: self.config.token.clone(),
            formats: self
                .renderer
                .as_ref()
                .map(|r| r.formats().to_vec())
                .unwrap_or_default(),
        };
        let probe = self.renderer.as_ref().map(|r| session::ProbeRenderer {
            renderer: &**r,
            dir: &self.config.work_dir,
        });
        let session = session::open(&*self.transport, links.address(), hello, probe).await?;
        links.connected();
        self.metrics.session();
        let (peer, mut pushes) = (session.peer, session.pushes);
        let blobs = RemoteBlobStore::unless_direct(&self.blobs, &peer, session.max_blob_size);
        info!(verifier = ?self.id(), "verifier connected");
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        // Offers wait here while one is checked: a check (fetching frames,
        // re-rendering crops) can take minutes on a slow device, and the
        // loop must keep heartbeating meanwhile or the manager drops this
        // verifier as silent.
        let mut waiting: VecDeque<VerificationAssignment> = VecDeque::new();
        let mut current: Option<Check> = None;
        loop {
            if current.is_none() {
                if let Some(a) = waiting.pop_front() {
                    current = Some(self.check(blobs.clone(), a));
                }
            }
            let checking = async {
                match current.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => {
                    peer.close("verifier shutting down");
                    return Ok(());
                }
                _ = heartbeat.tick() => peer.push(Message::Heartbeat).await?,
                verdict = checking => {
                    current = None;
                    debug!(task = ?verdict.task, passed = verdict.passed, "verdict");
                    peer.push(Message::VerifyDone(verdict)).await?;
                }
                msg = pushes.recv() => {
                    let Some(env) = msg else { return Err(NodeError::Disconnected) };
                    if let Message::VerifyOffer(a) = env.body {
                        if waiting.len() >= MAX_WAITING_OFFERS {
                            // The manager replaces votes that are not
                            // answered in time; an overfull queue would
                            // only answer them later still.
                            warn!(task = ?a.task, "too many verifications waiting; offer dropped");
                        } else {
                            waiting.push_back(a);
                        }
                    }
                }
            }
        }
    }
}

/// Offers a verifier keeps while it checks another.
const MAX_WAITING_OFFERS: usize = 256;

type Check = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// A verifier's means to re-render crop challenges.
pub struct CropRenderer {
    /// The deterministic renderer.
    pub renderer: Arc<dyn Renderer>,
    /// Where fetched scenes are kept.
    pub work_dir: std::path::PathBuf,
}

/// Checks every frame of an assignment (see the module documentation);
/// crop challenges are checked only when `crops` is given, and a verdict
/// that needed them without `crops` is inconclusive. Every failed check is
/// a reason in the verdict.
pub async fn verify(
    blobs: &dyn BlobStore,
    crops: Option<&CropRenderer>,
    a: &VerificationAssignment,
) -> Verdict {
    let mut reasons = Vec::new();
    let mut decoded: Vec<(u32, Rgb8Image)> = Vec::new();
    let mut flat: Vec<u32> = Vec::new();
    for f in &a.frames {
        let limit = frame_codec::max_encoded_len(a.width, a.height);
        let bytes = match blobs.get_bytes_at_most(f.blob, limit).await {
            Ok(b) => b,
            Err(e) => {
                reasons.push(format!("frame {}: cannot fetch: {e}", f.frame));
                continue;
            }
        };
        let img = match frame_codec::decode(&bytes, a.format, (a.width, a.height)) {
            Ok(i) => i,
            Err(e) => {
                reasons.push(format!("frame {}: does not decode: {e}", f.frame));
                continue;
            }
        };
        if img.pixel_hash() != f.pixel_hash {
            reasons.push(format!(
                "frame {}: pixels differ from the committed hash",
                f.frame
            ));
        }
        match check_plausible(&img, a.width, a.height) {
            Ok(()) => {}
            // A black scene renders flat frames honestly: judged below by
            // what the verifier's own render of the scene shows.
            Err(PlausibilityError::Flat { .. }) => flat.push(f.frame),
            Err(e) => {
                reasons.push(format!("frame {}: {e}", f.frame));
                continue;
            }
        }
        if TileTree::build(&img).root() != f.tile_root {
            reasons.push(format!(
                "frame {}: tiles differ from the committed Merkle root",
                f.frame
            ));
        }
        if !a.watermark.is_empty() {
            if let Err(missing) =
                watermark::check_patches(&img, &a.watermark, a.watermark_threshold)
            {
                reasons.push(format!(
                    "frame {}: {} of {} watermark patches missing (weakest contrast {:.2}, threshold {}; weakest pattern correlation {:.2})",
                    f.frame,
                    missing.len(),
                    a.watermark.len(),
                    missing.iter().map(|m| m.contrast).fold(f64::INFINITY, f64::min),
                    a.watermark_threshold,
                    missing.iter().map(|m| m.correlation).fold(f64::INFINITY, f64::min),
                ));
            }
        }
        decoded.push((f.frame, img));
    }
    // What this verifier could not check, when nothing else failed.
    let mut unchecked: Option<String> = None;
    if !a.challenges.is_empty() {
        match renderer_for(crops, a) {
            Ok((crops, scene)) => {
                if let Err(e) = check_crops(blobs, crops, scene, a, &decoded, &mut reasons).await {
                    warn!(task = ?a.task, error = %e, "crop challenges not checked");
                    unchecked = Some(format!("crop challenges not checked: {e}"));
                }
            }
            Err(why) => unchecked = Some(format!("crop challenges not checked: {why}")),
        }
    }
    if !flat.is_empty() {
        if let Err(why) = confirm_flat_frames(blobs, crops, a, &decoded, &flat, &mut reasons).await
        {
            unchecked.get_or_insert(why);
        }
    }
    if reasons.is_empty() {
        if let Some(why) = unchecked {
            return Verdict {
                verification: a.verification,
                task: a.task,
                passed: false,
                reasons,
                clean: Vec::new(),
                inconclusive: Some(why),
            };
        }
    }
    let mut clean = Vec::new();
    if let (true, Some(crops), Some(scene)) = (reasons.is_empty(), crops, &a.clean_scene) {
        if !a.watermark.is_empty() {
            match render_clean(blobs, crops, scene, a).await {
                Ok(c) => clean = c,
                // Without them the manager asks other verifiers for the
                // clean pixels; the result itself is not in doubt.
                Err(e) => warn!(task = ?a.task, error = %e, "clean pixels not rendered"),
            }
        }
    }
    Verdict {
        verification: a.verification,
        task: a.task,
        passed: reasons.is_empty(),
        reasons,
        clean,
        inconclusive: None,
    }
}

/// The renderer and scene to re-render `a`'s crops with, or why there is
/// none: no renderer at all, no scene named, or a format it does not
/// render.
fn renderer_for<'a>(
    crops: Option<&'a CropRenderer>,
    a: &'a VerificationAssignment,
) -> Result<(&'a CropRenderer, &'a inferix_core::job::SceneRef), String> {
    let crops = crops.ok_or("this verifier has no renderer")?;
    let scene = a.scene.as_ref().ok_or("the offer names no scene")?;
    if !crops.renderer.formats().contains(&scene.format) {
        return Err(format!(
            "this verifier does not render {} scenes",
            scene.format
        ));
    }
    Ok((crops, scene))
}

/// Renders the clean-delivery rectangles of every frame from the scene
/// without watermark patches (`scene`, the offer's `clean_scene`), encoded
/// in the job's format: what a passing verdict carries. Public so that a
/// node can send clean pixels whatever it votes (tests of verifiers that
/// lie about their verdict only).
pub async fn render_clean(
    blobs: &dyn BlobStore,
    crops: &CropRenderer,
    scene: &inferix_core::job::SceneRef,
    a: &VerificationAssignment,
) -> Result<Vec<CleanCrop>, String> {
    let (path, settings) = fetch_scene(blobs, crops, scene, a).await?;
    let rects = clean_rects(&a.watermark, a.width, a.height);
    let framed = in_frame(a, &rects);
    let mut out = Vec::with_capacity(rects.len() * a.frames.len());
    for f in &a.frames {
        let req = RenderRequest {
            scene: path.clone(),
            format: scene.format,
            frames: vec![f.frame],
            settings: settings.clone(),
            crop: None,
            progress: None,
        };
        let rendered = crops
            .renderer
            .render_crops(req, &framed)
            .await
            .map_err(|e| format!("clean render failed: {e}"))?;
        if rendered.len() != rects.len() {
            return Err(format!(
                "renderer returned {} crops for {} rectangles",
                rendered.len(),
                rects.len()
            ));
        }
        for (rect, r) in rects.iter().zip(rendered) {
            out.push(CleanCrop {
                frame: f.frame,
                rect: *rect,
                image: frame_codec::encode(&r.image, a.format).map_err(|e| e.to_string())?,
            });
        }
    }
    Ok(out)
}

/// `rects` of `a`'s images in frame pixels, where the renderer draws
/// them: shifted by the tile's corner for a tile task's images.
fn in_frame(
    a: &VerificationAssignment,
    rects: &[inferix_core::image::Rect],
) -> Vec<inferix_core::image::Rect> {
    let (dx, dy) = a.region.map_or((0, 0), |r| (r.x, r.y));
    rects
        .iter()
        .map(|r| inferix_core::image::Rect::new(r.x + dx, r.y + dy, r.width, r.height))
        .collect()
}

/// The local copy of `scene`, and the settings lit by the job's
/// environment map, fetched into the verifier's cache once.
async fn fetch_scene(
    blobs: &dyn BlobStore,
    crops: &CropRenderer,
    scene: &inferix_core::job::SceneRef,
    a: &VerificationAssignment,
) -> Result<(std::path::PathBuf, inferix_core::renderer::RenderSettings), String> {
    let path = blob_cache::scene(blobs, &crops.work_dir, scene).await?;
    let settings =
        blob_cache::lit_settings(blobs, &crops.work_dir, &a.settings, a.environment.as_ref())
            .await?;
    Ok((path, settings))
}

/// A flat frame is accepted only when the verifier renders the scene and a
/// central crop of its own render matches the frame. A verifier that cannot
/// render it says why (the verdict is then inconclusive).
async fn confirm_flat_frames(
    blobs: &dyn BlobStore,
    crops: Option<&CropRenderer>,
    a: &VerificationAssignment,
    decoded: &[(u32, Rgb8Image)],
    flat: &[u32],
    reasons: &mut Vec<String>,
) -> Result<(), String> {
    let (crops, scene) = renderer_for(crops, a)
        .map_err(|why| format!("flat frames {flat:?} not confirmed: {why}"))?;
    // A tenth of each side around the centre: a few hundred pixels.
    let (w, h) = ((a.width / 10).max(1), (a.height / 10).max(1));
    let rect = inferix_core::image::Rect::new((a.width - w) / 2, (a.height - h) / 2, w, h);
    let challenges: Vec<inferix_core::protocol::CropChallenge> = flat
        .iter()
        .map(|&frame| inferix_core::protocol::CropChallenge { frame, rect })
        .collect();
    let check = VerificationAssignment {
        challenges,
        ..a.clone()
    };
    let before = reasons.len();
    if let Err(e) = check_crops(blobs, crops, scene, &check, decoded, reasons).await {
        warn!(task = ?a.task, error = %e, "flat frames not confirmed");
        return Err(format!(
            "flat frames {flat:?} not confirmed: the verifier's render failed ({e})"
        ));
    }
    if reasons.len() > before {
        // check_crops named the differing crops; say why they were drawn.
        reasons.push(format!(
            "frames {flat:?} are flat but the scene does not render flat there"
        ));
    }
    Ok(())
}

/// Re-renders each challenged crop and compares it with the committed frame.
async fn check_crops(
    blobs: &dyn BlobStore,
    crops: &CropRenderer,
    scene: &inferix_core::job::SceneRef,
    a: &VerificationAssignment,
    frames: &[(u32, Rgb8Image)],
    reasons: &mut Vec<String>,
) -> Result<(), String> {
    let (path, settings) = fetch_scene(blobs, crops, scene, a).await?;
    let exact = crops.renderer.device_class_for(scene.format) == a.worker_device_class;
    let allowed = if exact { 0 } else { a.crop_tolerance };
    // One call per challenged frame, with all of its crops.
    let mut by_frame: Vec<(u32, Vec<inferix_core::image::Rect>)> = Vec::new();
    for c in &a.challenges {
        let Some((_, img)) = frames.iter().find(|(f, _)| *f == c.frame) else {
            continue;
        };
        if !c.rect.fits_in(img.width, img.height) {
            reasons.push(format!(
                "frame {}: challenge {:?} outside the frame",
                c.frame, c.rect
            ));
            continue;
        }
        match by_frame.iter_mut().find(|(f, _)| *f == c.frame) {
            Some((_, rects)) => rects.push(c.rect),
            None => by_frame.push((c.frame, vec![c.rect])),
        }
    }
    for (frame, rects) in by_frame {
        let Some((_, img)) = frames.iter().find(|(f, _)| *f == frame) else {
            continue;
        };
        let req = RenderRequest {
            scene: path.clone(),
            format: scene.format,
            frames: vec![frame],
            settings: settings.clone(),
            crop: None,
            progress: None,
        };
        let rendered = crops
            .renderer
            .render_crops(req, &in_frame(a, &rects))
            .await
            .map_err(|e| format!("crop render failed: {e}"))?;
        if rendered.len() != rects.len() {
            return Err(format!(
                "renderer returned {} crops for {} challenges",
                rendered.len(),
                rects.len()
            ));
        }
        for (rect, r) in rects.iter().zip(rendered) {
            // Through the job's codec, as the worker's frame went.
            let bytes = frame_codec::encode(&r.image, a.format).map_err(|e| e.to_string())?;
            let mine = frame_codec::decode(&bytes, a.format, (r.image.width, r.image.height))
                .map_err(|e| e.to_string())?;
            let theirs = img.crop(*rect);
            let diff = mine.max_channel_diff(&theirs).unwrap_or(u8::MAX);
            if diff > allowed {
                reasons.push(format!(
                    "frame {frame}: re-rendered crop {rect:?} differs by {diff}/255 (allowed {allowed})"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use inferix_core::blob::BlobStoreExt;
    use inferix_core::ids::{JobId, TaskId};
    use inferix_core::job::OutputFormat;
    use inferix_core::protocol::VerificationAssignment;
    use inferix_core::renderer::RenderSettings;
    use inferix_core::task::FrameOutput;
    use inferix_storage::ObjectBlobStore;

    use super::*;

    /// A "frame" far larger than any file of its size could be is refused
    /// unread: a worker cannot make verifiers hold gigabytes.
    #[tokio::test]
    async fn a_frame_blob_larger_than_its_size_allows_is_not_read() {
        let blobs = ObjectBlobStore::in_memory();
        let (width, height) = (16, 8);
        let limit = frame_codec::max_encoded_len(width, height);
        let huge = blobs
            .put_bytes(vec![7u8; limit as usize + 1])
            .await
            .unwrap();
        let a = VerificationAssignment {
            verification: 1,
            task: TaskId::new(JobId(1), 0),
            frames: vec![FrameOutput {
                frame: 1,
                pixel_hash: huge.hash,
                blob: huge.hash,
                width,
                height,
                tile_root: huge.hash,
            }],
            width,
            height,
            format: OutputFormat::Png,
            watermark: Vec::new(),
            watermark_threshold: 0.0,
            challenges: Vec::new(),
            scene: None,
            settings: RenderSettings::default(),
            worker_device_class: String::new(),
            crop_tolerance: 0,
            clean_scene: None,
            environment: None,
            region: None,
        };
        let verdict = verify(&blobs, None, &a).await;
        assert!(!verdict.passed);
        assert!(
            verdict
                .reasons
                .iter()
                .any(|r| r.contains("cannot fetch") && r.contains(&limit.to_string())),
            "{:?}",
            verdict.reasons
        );
    }
}
