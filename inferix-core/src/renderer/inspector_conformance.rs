//! The behaviour every [`SceneInspector`] must show (feature `testing`):
//! a manager refuses a job on its word, so a good scene must read, the
//! same way every time, and a hostile one must come back as a typed error
//! rather than a crash or a pass.
//!
//! An implementation's tests call [`test_all`] with the inspector and an
//! [`InspectorFixture`].

use std::path::PathBuf;

use super::conformance::hostile_files;
use crate::renderer::{RenderError, RenderRequest, RenderSettings, SceneFormat, SceneInspector};

/// A scene (and optionally an environment map) the inspector under test
/// reads.
#[derive(Debug, Clone)]
pub struct InspectorFixture {
    /// Scene file on local disk.
    pub scene: PathBuf,
    /// Its format (one of the inspector's).
    pub format: SceneFormat,
    /// Settings a job would carry.
    pub settings: RenderSettings,
    /// A frame of the scene.
    pub frame: u32,
    /// A good environment map, for inspectors that read them.
    pub environment: Option<PathBuf>,
    /// A folder the cases may write hostile files into.
    pub scratch: PathBuf,
}

impl InspectorFixture {
    fn request(&self, scene: PathBuf) -> RenderRequest {
        RenderRequest {
            scene,
            format: self.format,
            frames: vec![self.frame],
            settings: self.settings.clone(),
            crop: None,
            progress: None,
        }
    }
}

/// Runs every case.
pub fn test_all(inspector: &dyn SceneInspector, fixture: &InspectorFixture) {
    assert!(
        inspector.formats().contains(&fixture.format),
        "the fixture's format {:?} is not among the inspector's {:?}",
        fixture.format,
        inspector.formats()
    );
    a_good_scene_reads_the_same_every_time(inspector, fixture);
    hostile_scenes_are_typed_errors(inspector, fixture);
    environment_maps_are_checked(inspector, fixture);
}

/// The fixture reads, and twice gives the same warnings, each once.
pub fn a_good_scene_reads_the_same_every_time(
    inspector: &dyn SceneInspector,
    fixture: &InspectorFixture,
) {
    let read = || match inspector.scene_warnings(&fixture.request(fixture.scene.clone())) {
        Ok(w) => w,
        Err(e) => panic!("the fixture scene does not read: {e}"),
    };
    let first = read();
    assert_eq!(first, read(), "two readings of one scene disagree");
    let mut codes: Vec<&str> = first.iter().map(|w| w.code.as_str()).collect();
    codes.sort_unstable();
    let n = codes.len();
    codes.dedup();
    assert_eq!(codes.len(), n, "a warning is reported more than once");
}

/// Garbage, empty and missing scene files are [`RenderError::InvalidScene`].
pub fn hostile_scenes_are_typed_errors(inspector: &dyn SceneInspector, fixture: &InspectorFixture) {
    let ext = fixture
        .scene
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("scene");
    for (what, path) in hostile_files(&fixture.scratch, "", ext) {
        match inspector.scene_warnings(&fixture.request(path)) {
            Err(RenderError::InvalidScene { .. }) => {}
            Err(e) => panic!("{what} scene: expected InvalidScene, got {e}"),
            Ok(_) => panic!("{what} scene: read as a scene"),
        }
    }
}

/// A good map passes; garbage, empty and missing maps are
/// [`RenderError::InvalidScene`] naming the file. Skipped for inspectors
/// whose fixture has no map.
pub fn environment_maps_are_checked(inspector: &dyn SceneInspector, fixture: &InspectorFixture) {
    let Some(good) = &fixture.environment else {
        return;
    };
    if let Err(e) = inspector.check_environment(good) {
        panic!("the fixture's environment map does not read: {e}");
    }
    let ext = good.extension().and_then(|e| e.to_str()).unwrap_or("hdr");
    for (what, path) in hostile_files(&fixture.scratch, "map-", ext) {
        match inspector.check_environment(&path) {
            Err(RenderError::InvalidScene { path: named, .. }) => assert_eq!(named, path),
            Err(e) => panic!("{what} map: expected InvalidScene, got {e}"),
            Ok(()) => panic!("{what} map: read as a map"),
        }
    }
}
