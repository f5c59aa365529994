//! A renderer that reads no scene (feature `testing`): cheap deterministic
//! frames after a modelled time, with optional misbehaviour, so that tests,
//! simulations and benchmarks exercise the network rather than image work.
//! Its frames obey the [`Renderer`] contract a verifier leans on: the same
//! request gives the same pixels, and a crop is the same pixels of the frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedSender;

use crate::image::Image;
use crate::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};

/// How a [`StandInRenderer`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandInBehaviour {
    /// Renders each frame in the modelled time.
    Honest,
    /// Never finishes: a worker that hangs.
    Hang,
    /// Returns flat black frames: a lazy cheater.
    Blank,
    /// Fails every render after its modelled time: a broken device.
    Fail,
}

/// A renderer for tests, simulations and benchmarks; see the module docs.
#[derive(Debug, Clone)]
pub struct StandInRenderer {
    behaviour: StandInBehaviour,
    per_frame: Duration,
    starts: Option<UnboundedSender<tokio::time::Instant>>,
    busy: Arc<AtomicBool>,
}

impl StandInRenderer {
    /// Renders each frame in `per_frame` (of tokio time, so a paused clock
    /// models it without waiting), behaving as `behaviour` says.
    pub fn new(behaviour: StandInBehaviour, per_frame: Duration) -> Self {
        Self {
            behaviour,
            per_frame,
            starts: None,
            busy: Arc::default(),
        }
    }

    /// An honest renderer that answers at once.
    pub fn instant() -> Self {
        Self::new(StandInBehaviour::Honest, Duration::ZERO)
    }

    /// Sends the moment each render starts to `starts` (latency figures).
    pub fn reporting_starts(mut self, starts: UnboundedSender<tokio::time::Instant>) -> Self {
        self.starts = Some(starts);
        self
    }

    /// A flag that is set while a render runs (to kill workers mid-render).
    pub fn busy_flag(&self) -> Arc<AtomicBool> {
        self.busy.clone()
    }
}

#[async_trait]
impl Renderer for StandInRenderer {
    fn name(&self) -> &str {
        "stand-in"
    }
    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }
    fn device_class(&self) -> String {
        "stand-in".into()
    }
    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        if let Some(s) = &self.starts {
            let _ = s.send(tokio::time::Instant::now());
        }
        req.validate()?;
        if !self.formats().contains(&req.format) {
            return Err(RenderError::UnsupportedFormat(req.format));
        }
        if !req.scene.exists() {
            return Err(RenderError::InvalidScene {
                path: req.scene.clone(),
                reason: "missing".into(),
            });
        }
        self.busy.store(true, Ordering::SeqCst);
        let _idle = ClearOnDrop(&self.busy);
        let mut out = Vec::with_capacity(req.frames.len());
        for &frame in &req.frames {
            match self.behaviour {
                StandInBehaviour::Hang => std::future::pending::<()>().await,
                _ if self.per_frame.is_zero() => {}
                _ => tokio::time::sleep(self.per_frame).await,
            }
            if self.behaviour == StandInBehaviour::Fail {
                return Err(RenderError::Backend("simulated device fault".into()));
            }
            let image = match self.behaviour {
                StandInBehaviour::Blank => Image::new(req.settings.width, req.settings.height),
                _ => Image::stand_in(frame, req.settings.width, req.settings.height),
            };
            let image = match req.crop {
                Some(rect) => image.crop(rect),
                None => image,
            };
            out.push(RenderedFrame { frame, image });
        }
        Ok(out)
    }
}

/// Clears the busy flag however the render ends (finished, failed, or its
/// future dropped by a revoked lease).
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Rect;
    use crate::renderer::RenderSettings;

    fn request(scene: std::path::PathBuf, crop: Option<Rect>) -> RenderRequest {
        RenderRequest {
            scene,
            format: SceneFormat::Gltf,
            frames: vec![3, 1],
            settings: RenderSettings {
                width: 12,
                height: 8,
                ..RenderSettings::default()
            },
            crop,
            progress: None,
        }
    }

    #[tokio::test]
    async fn frames_are_deterministic_and_crops_are_their_pixels() {
        let dir = std::env::temp_dir().join(format!("stand-in-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scene = dir.join("s.glb");
        std::fs::write(&scene, b"any").unwrap();
        let r = StandInRenderer::instant();
        let a = r.render(request(scene.clone(), None)).await.unwrap();
        let b = r.render(request(scene.clone(), None)).await.unwrap();
        assert_eq!(a.iter().map(|f| f.frame).collect::<Vec<_>>(), [3, 1]);
        assert!(a[0].image == b[0].image && a[0].image != a[1].image);
        let crop = Rect::new(2, 1, 5, 4);
        let c = r.render(request(scene.clone(), Some(crop))).await.unwrap();
        assert!(c[0].image == a[0].image.crop(crop));
        assert!(!r.busy_flag().load(Ordering::SeqCst));
        let missing = r.render(request(dir.join("none.glb"), None)).await;
        assert!(matches!(missing, Err(RenderError::InvalidScene { .. })));
        let blank = StandInRenderer::new(StandInBehaviour::Blank, Duration::ZERO);
        let flat = blank.render(request(scene, None)).await.unwrap();
        assert!(flat[0].image == Image::new(12, 8));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every case of the renderer suite that does not need a renderer to
    /// read its scene.
    #[tokio::test]
    async fn the_stand_in_passes_the_renderer_cases_that_apply() {
        use crate::renderer::conformance::{self as suite, Fixture};
        let dir = std::env::temp_dir().join(format!("stand-in-suite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scene = dir.join("s.glb");
        std::fs::write(&scene, b"any").unwrap();
        let fixture = Fixture {
            scene,
            format: SceneFormat::Gltf,
            settings: RenderSettings {
                width: 24,
                height: 16,
                ..RenderSettings::default()
            },
            frames: vec![2, 12],
            scratch: dir.join("scratch"),
        };
        let r = StandInRenderer::new(StandInBehaviour::Honest, Duration::from_millis(1));
        suite::frames_come_back_in_order_at_the_requested_size(&r, &fixture).await;
        suite::renders_are_deterministic(&r, &fixture).await;
        suite::a_crop_equals_the_same_pixels_of_the_frame(&r, &fixture).await;
        suite::render_crops_equal_single_crops(&r, &fixture).await;
        suite::bad_settings_are_refused_before_any_work(&r, &fixture).await;
        suite::other_formats_are_refused(&r, &fixture).await;
        suite::a_dropped_render_leaves_the_renderer_usable(&r, &fixture).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
