//! The behaviour every [`Renderer`] must show, as reusable async test cases
//! (feature `testing`). Proof of Render leans on all of it: a verifier's
//! crop re-render is only evidence if renders are deterministic and a crop
//! equals the same pixels of the whole frame; a hostile scene must come
//! back as a typed error, not a crash.
//!
//! An implementation's tests call [`test_all`] with a renderer and a small
//! [`Fixture`] scene it can render; renderers that cannot run a case (a
//! stand-in that never reads its scene) call the cases that apply one by
//! one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::Rect;
use crate::renderer::{
    RenderError, RenderRequest, RenderSettings, RenderedFrame, Renderer, SceneFormat,
};

/// A scene the renderer under test can render, with cheap settings.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Scene file on local disk.
    pub scene: PathBuf,
    /// Its format (one of the renderer's).
    pub format: SceneFormat,
    /// Small settings: every case renders a few frames and crops.
    pub settings: RenderSettings,
    /// Two or more frames to render; when the scene is animated, frames
    /// that differ.
    pub frames: Vec<u32>,
    /// A folder the cases may write hostile scene files into.
    pub scratch: PathBuf,
}

impl Fixture {
    fn request(&self, frames: Vec<u32>, crop: Option<Rect>) -> RenderRequest {
        RenderRequest {
            scene: self.scene.clone(),
            format: self.format,
            frames,
            settings: self.settings.clone(),
            crop,
            progress: None,
        }
    }

    /// A crop well inside the frame, on odd coordinates so it cannot line
    /// up with tiles by chance.
    fn inner_crop(&self) -> Rect {
        let (w, h) = (self.settings.width, self.settings.height);
        Rect::new((w / 3) | 1, (h / 3) | 1, (w / 3).max(1), (h / 4).max(1))
    }
}

/// Runs every case.
pub async fn test_all(renderer: &dyn Renderer, fixture: &Fixture) {
    assert!(
        renderer.formats().contains(&fixture.format),
        "the fixture's format {:?} is not among {}'s {:?}",
        fixture.format,
        renderer.name(),
        renderer.formats()
    );
    frames_come_back_in_order_at_the_requested_size(renderer, fixture).await;
    renders_are_deterministic(renderer, fixture).await;
    a_crop_equals_the_same_pixels_of_the_frame(renderer, fixture).await;
    render_crops_equal_single_crops(renderer, fixture).await;
    bad_settings_are_refused_before_any_work(renderer, fixture).await;
    hostile_scenes_are_typed_errors(renderer, fixture).await;
    other_formats_are_refused(renderer, fixture).await;
    a_dropped_render_leaves_the_renderer_usable(renderer, fixture).await;
}

async fn render(renderer: &dyn Renderer, request: RenderRequest) -> Vec<RenderedFrame> {
    match renderer.render(request).await {
        Ok(frames) => frames,
        Err(e) => panic!("{} failed on the fixture: {e}", renderer.name()),
    }
}

/// One image per requested frame, in request order, of the frame's size
/// (or the crop's).
pub async fn frames_come_back_in_order_at_the_requested_size(
    renderer: &dyn Renderer,
    fixture: &Fixture,
) {
    let mut frames = fixture.frames.clone();
    frames.reverse();
    let out = render(renderer, fixture.request(frames.clone(), None)).await;
    assert_eq!(
        out.iter().map(|f| f.frame).collect::<Vec<_>>(),
        frames,
        "frames in request order"
    );
    for f in &out {
        assert_eq!(
            (f.image.width, f.image.height),
            (fixture.settings.width, fixture.settings.height),
            "frame {} has the requested size",
            f.frame
        );
    }
    let crop = fixture.inner_crop();
    let out = render(renderer, fixture.request(vec![frames[0]], Some(crop))).await;
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].image.width, out[0].image.height),
        (crop.width, crop.height)
    );
}

/// The same request gives the same pixels, bit for bit.
pub async fn renders_are_deterministic(renderer: &dyn Renderer, fixture: &Fixture) {
    let a = render(renderer, fixture.request(fixture.frames.clone(), None)).await;
    let b = render(renderer, fixture.request(fixture.frames.clone(), None)).await;
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.image == y.image,
            "frame {} differs between two identical renders",
            x.frame
        );
    }
}

/// A crop's pixels equal the same region of the whole frame.
pub async fn a_crop_equals_the_same_pixels_of_the_frame(
    renderer: &dyn Renderer,
    fixture: &Fixture,
) {
    let frame = fixture.frames[0];
    let whole = render(renderer, fixture.request(vec![frame], None)).await;
    let crop = fixture.inner_crop();
    let part = render(renderer, fixture.request(vec![frame], Some(crop))).await;
    assert!(
        whole[0].image.crop(crop) == part[0].image,
        "crop {crop:?} of frame {frame} differs from the same pixels of the whole frame"
    );
}

/// [`Renderer::render_crops`] returns, frame by frame, what single-crop
/// renders return.
pub async fn render_crops_equal_single_crops(renderer: &dyn Renderer, fixture: &Fixture) {
    let (w, h) = (fixture.settings.width, fixture.settings.height);
    let crops = [
        fixture.inner_crop(),
        Rect::new(0, 0, 1, 1),
        Rect::new(w - 1, h - 1, 1, 1),
    ];
    let frames = fixture.frames[..2.min(fixture.frames.len())].to_vec();
    let batched = match renderer
        .render_crops(fixture.request(frames.clone(), None), &crops)
        .await
    {
        Ok(b) => b,
        Err(e) => panic!("{} failed to render crops: {e}", renderer.name()),
    };
    assert_eq!(batched.len(), frames.len() * crops.len());
    let mut i = 0;
    for &frame in &frames {
        for &crop in &crops {
            let single = render(renderer, fixture.request(vec![frame], Some(crop))).await;
            assert_eq!(batched[i].frame, frame);
            assert!(
                batched[i].image == single[0].image,
                "batched crop {crop:?} of frame {frame} differs from a single render"
            );
            i += 1;
        }
    }
    let outside = Rect::new(w - 1, h - 1, 2, 2);
    match renderer
        .render_crops(fixture.request(frames, None), &[crops[0], outside])
        .await
    {
        Err(RenderError::InvalidSettings(_)) => {}
        other => panic!(
            "{}: a crop outside the frame gave {:?}, not InvalidSettings",
            renderer.name(),
            other.map(|f| f.len())
        ),
    }
}

/// Impossible settings are an [`RenderError::InvalidSettings`].
pub async fn bad_settings_are_refused_before_any_work(renderer: &dyn Renderer, fixture: &Fixture) {
    let (w, h) = (fixture.settings.width, fixture.settings.height);
    let mut zero = fixture.request(fixture.frames.clone(), None);
    zero.settings.width = 0;
    let outside = fixture.request(fixture.frames.clone(), Some(Rect::new(w - 1, h - 1, 2, 2)));
    let mut no_samples = fixture.request(fixture.frames.clone(), None);
    no_samples.settings.samples = 0;
    for (what, request) in [
        ("zero width", zero),
        ("crop outside the frame", outside),
        ("zero samples", no_samples),
    ] {
        match renderer.render(request).await {
            Err(RenderError::InvalidSettings(_)) => {}
            Err(e) => panic!("{what}: expected InvalidSettings, got {e}"),
            Ok(_) => panic!("{what}: rendered anyway"),
        }
    }
}

/// Garbage, empty and missing scene files are [`RenderError::InvalidScene`].
pub async fn hostile_scenes_are_typed_errors(renderer: &dyn Renderer, fixture: &Fixture) {
    let ext = fixture
        .scene
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("scene");
    for (what, path) in hostile_files(&fixture.scratch, "", ext) {
        let mut request = fixture.request(vec![fixture.frames[0]], None);
        request.scene = path;
        match renderer.render(request).await {
            Err(RenderError::InvalidScene { .. }) => {}
            Err(e) => panic!("{what} scene: expected InvalidScene, got {e}"),
            Ok(_) => panic!("{what} scene: rendered anyway"),
        }
    }
}

/// A scene in a format the renderer does not list is refused as such.
pub async fn other_formats_are_refused(renderer: &dyn Renderer, fixture: &Fixture) {
    let other = [SceneFormat::Gltf, SceneFormat::Blend]
        .into_iter()
        .find(|f| !renderer.formats().contains(f));
    let Some(other) = other else {
        return;
    };
    let mut request = fixture.request(vec![fixture.frames[0]], None);
    request.format = other;
    match renderer.render(request).await {
        Err(RenderError::UnsupportedFormat(f)) => assert_eq!(f, other),
        Err(e) => panic!("{other:?}: expected UnsupportedFormat, got {e}"),
        Ok(_) => panic!("{other:?}: rendered a format it does not list"),
    }
}

/// A render whose caller gave up (its future dropped: a revoked lease, a
/// worker shutting down) leaves the renderer able to render again, with the
/// same pixels.
pub async fn a_dropped_render_leaves_the_renderer_usable(
    renderer: &dyn Renderer,
    fixture: &Fixture,
) {
    let before = render(renderer, fixture.request(vec![fixture.frames[0]], None)).await;
    let abandoned = renderer.render(fixture.request(fixture.frames.clone(), None));
    // Polled a little, then dropped mid-way (or after it finished, on a
    // renderer fast enough: either way the next render must be right).
    let _ = tokio::time::timeout(Duration::from_millis(1), abandoned).await;
    let after = render(renderer, fixture.request(vec![fixture.frames[0]], None)).await;
    assert!(
        before[0].image == after[0].image,
        "a render after a dropped one differs"
    );
}

/// A garbage, an empty and a missing file named `{prefix}garbage.{ext}`
/// and so on in `dir`, each with what it is.
pub(super) fn hostile_files(dir: &Path, prefix: &str, ext: &str) -> [(&'static str, PathBuf); 3] {
    std::fs::create_dir_all(dir).expect("scratch folder");
    [
        (
            "garbage",
            write(dir, &format!("{prefix}garbage.{ext}"), &noise(4096)),
        ),
        ("empty", write(dir, &format!("{prefix}empty.{ext}"), &[])),
        ("missing", dir.join(format!("{prefix}missing.{ext}"))),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a hostile scene");
    path
}

/// Deterministic bytes with no structure any scene format accepts.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
