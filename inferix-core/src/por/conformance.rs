//! The behaviour every [`SceneWatermarker`] must show (feature `testing`):
//! the copy it writes renders with every patch of the lease's key where the
//! key says, the plain scene does not, another key's layout does not pass
//! on the copy, and bad input is a typed error with nothing written.
//!
//! An implementation's tests call [`test_all`] with the watermarker, the
//! deterministic renderer its workers use, and a small scene.

use std::path::PathBuf;

use crate::ids::{JobId, TaskId};
use crate::image::{Rect, Rgb8Image};
use crate::por::key::{ManagerSecret, VerificationKey};
use crate::por::prepare::SceneWatermarker;
use crate::por::watermark::{self, Patch, DEFAULT_PATCHES, DEFAULT_THRESHOLD};
use crate::renderer::{RenderError, RenderRequest, RenderSettings, Renderer, SceneFormat};

/// A scene to watermark and the settings its frames render at.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Scene file on local disk.
    pub scene: PathBuf,
    /// Its format (one of the watermarker's and the renderer's).
    pub format: SceneFormat,
    /// Settings of the lease (frame size decides where patches land);
    /// large enough for the layout to place several patches.
    pub settings: RenderSettings,
    /// Frames to check.
    pub frames: Vec<u32>,
    /// A folder the cases write copies and hostile files into.
    pub scratch: PathBuf,
}

/// The patches of task `n` of a fixed job, as a manager lays them out.
pub fn patches_of_task(n: u32, width: u32, height: u32) -> Vec<Patch> {
    let key = VerificationKey::derive(
        &ManagerSecret(b"watermark conformance".to_vec()),
        TaskId::new(JobId(77), n),
    );
    watermark::layout(&key, width, height, DEFAULT_PATCHES)
}

/// Runs every case.
pub async fn test_all(
    watermarker: &dyn SceneWatermarker,
    renderer: &dyn Renderer,
    fixture: &Fixture,
) {
    assert!(
        watermarker.formats().contains(&fixture.format),
        "the fixture's format {:?} is not among the watermarker's {:?}",
        fixture.format,
        watermarker.formats()
    );
    std::fs::create_dir_all(&fixture.scratch).expect("scratch folder");
    the_copy_shows_its_patches_and_the_plain_scene_does_not(watermarker, renderer, fixture).await;
    patches_outside_the_frame_are_refused(watermarker, fixture).await;
    hostile_scenes_are_typed_errors(watermarker, fixture).await;
}

async fn frames(renderer: &dyn Renderer, fixture: &Fixture, scene: PathBuf) -> Vec<Rgb8Image> {
    let request = RenderRequest {
        scene,
        format: fixture.format,
        frames: fixture.frames.clone(),
        settings: fixture.settings.clone(),
        crop: None,
        progress: None,
    };
    match renderer.render(request).await {
        Ok(frames) => frames.into_iter().map(|f| f.image.to_srgb8()).collect(),
        Err(e) => panic!("{} could not render the fixture: {e}", renderer.name()),
    }
}

/// Every patch of the key is found on every frame of the copy (contrast
/// and the key's own pattern); the plain scene shows at most a quarter of
/// them by chance (a sharp scene edge can reach the contrast threshold);
/// another task's layout fails on the copy.
pub async fn the_copy_shows_its_patches_and_the_plain_scene_does_not(
    watermarker: &dyn SceneWatermarker,
    renderer: &dyn Renderer,
    fixture: &Fixture,
) {
    let (w, h) = (fixture.settings.width, fixture.settings.height);
    let patches = patches_of_task(0, w, h);
    assert!(
        patches.len() >= 4,
        "a {w}x{h} frame leaves room for only {} patches: use a larger fixture",
        patches.len()
    );
    let ext = fixture
        .scene
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("scene");
    let marked = fixture.scratch.join(format!("marked.{ext}"));
    if let Err(e) = watermarker
        .watermark(&fixture.scene, &patches, &fixture.settings, &marked)
        .await
    {
        panic!("watermarking the fixture failed: {e}");
    }
    let with = frames(renderer, fixture, marked).await;
    let without = frames(renderer, fixture, fixture.scene.clone()).await;
    let other = patches_of_task(1, w, h);
    for ((marked, plain), frame) in with.iter().zip(&without).zip(&fixture.frames) {
        if let Err(missing) = watermark::check_patches(marked, &patches, DEFAULT_THRESHOLD) {
            panic!("frame {frame}: patches missing on the watermarked copy: {missing:?}");
        }
        let missing = watermark::check_patches(plain, &patches, DEFAULT_THRESHOLD)
            .err()
            .unwrap_or_default();
        assert!(
            missing.len() * 4 >= patches.len() * 3,
            "frame {frame}: the plain scene shows {} of {} patches",
            patches.len() - missing.len(),
            patches.len()
        );
        // What a verifier checks: contrast and each patch's own pattern.
        assert!(
            watermark::check_patches(marked, &other, DEFAULT_THRESHOLD).is_err(),
            "frame {frame}: another task's patches pass on this copy"
        );
    }
}

/// A patch that does not fit in the frame is refused as a setting, before
/// any output is written.
pub async fn patches_outside_the_frame_are_refused(
    watermarker: &dyn SceneWatermarker,
    fixture: &Fixture,
) {
    let (w, h) = (fixture.settings.width, fixture.settings.height);
    let mut bad = patches_of_task(0, w, h);
    assert!(!bad.is_empty());
    bad[0].rect = Rect::new(w - 2, 0, 5, 5);
    let out = fixture.scratch.join("outside");
    match watermarker
        .watermark(&fixture.scene, &bad, &fixture.settings, &out)
        .await
    {
        Err(RenderError::InvalidSettings(_)) => {}
        Err(e) => panic!("a patch outside the frame: expected InvalidSettings, got {e}"),
        Ok(()) => panic!("a patch outside the frame was accepted"),
    }
    assert!(!out.exists(), "a refused copy left a file behind");
}

/// Garbage and missing scenes are [`RenderError::InvalidScene`].
pub async fn hostile_scenes_are_typed_errors(
    watermarker: &dyn SceneWatermarker,
    fixture: &Fixture,
) {
    let (w, h) = (fixture.settings.width, fixture.settings.height);
    let patches = patches_of_task(0, w, h);
    let ext = fixture
        .scene
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("scene");
    let garbage = fixture.scratch.join(format!("garbage.{ext}"));
    std::fs::write(&garbage, b"not a scene at all, just bytes").expect("write");
    let missing = fixture.scratch.join(format!("missing.{ext}"));
    for (what, scene) in [("garbage", garbage), ("missing", missing)] {
        let out = fixture.scratch.join(format!("{what}-copy.{ext}"));
        match watermarker
            .watermark(&scene, &patches, &fixture.settings, &out)
            .await
        {
            Err(RenderError::InvalidScene { .. }) => {}
            Err(e) => panic!("{what} scene: expected InvalidScene, got {e}"),
            Ok(()) => panic!("{what} scene: watermarked anyway"),
        }
    }
}
