//! Proof-of-Render watermarks for `.blend` scenes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::por::prepare::SceneWatermarker;
use inferix_core::por::watermark::Patch;
use inferix_core::renderer::{RenderError, RenderSettings, SceneFormat};
use serde_json::json;

use super::error::BlenderError;
use super::process::{run_script, ScriptRun};
use super::renderer::{absolute, copy_out, job_dir, scene_folder, Blender};

const WATERMARK_PY: &str = include_str!("watermark.py");
const FORMATS: [SceneFormat; 1] = [SceneFormat::Blend];

/// Linear radiance a patch emits at frame pixel (x, y): the network-wide
/// [`Patch::radiance`], so that verifiers find the same pattern whichever
/// renderer drew it.
pub fn patch_texel(patch: &Patch, x: u32, y: u32) -> f32 {
    patch.radiance(x, y)
}

/// Inserts noise patches into `.blend` scenes (a [`SceneWatermarker`]).
///
/// Each patch becomes an emissive plane parented to the active camera,
/// just past its near clip plane, sized from the camera's view frame so that
/// it covers exactly its rectangle at the given resolution, and visible to
/// camera rays only. The copy is saved with everything packed. Scenes whose
/// camera is panoramic, uses depth of field or has animated intrinsics
/// (lens, sensor, shift), that switch cameras with timeline markers, or
/// that render multi-view are refused, since the patches would not land
/// sharply on their rectangles. Scenes naming files outside their folder
/// are refused with [`BlenderError::OutsideFiles`] before anything is
/// packed: the copy goes to a worker, and those files would be the
/// manager's own.
#[derive(Debug, Clone)]
pub struct BlenderWatermarker {
    blender: Arc<Blender>,
    timeout: Duration,
    work_dir: Option<PathBuf>,
}

impl BlenderWatermarker {
    /// A watermarker running `blender`, each scene limited to 10 minutes.
    pub fn new(blender: Blender) -> Self {
        Self {
            blender: Arc::new(blender),
            timeout: Duration::from_secs(600),
            work_dir: None,
        }
    }

    /// Sets the time limit of one scene.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates job folders under `dir` instead of the system temporary folder.
    pub fn with_work_dir(mut self, dir: PathBuf) -> Self {
        self.work_dir = Some(dir);
        self
    }

    /// Like [`SceneWatermarker::watermark`] with the typed error.
    pub async fn watermark_blend(
        &self,
        scene: &Path,
        patches: &[Patch],
        settings: &RenderSettings,
        out: &Path,
    ) -> Result<(), BlenderError> {
        let (w, h) = (settings.width, settings.height);
        if w == 0 || h == 0 || w > 16384 || h > 16384 {
            return Err(BlenderError::InvalidSettings(format!(
                "resolution {w}x{h} outside 1..=16384"
            )));
        }
        let mut list = Vec::with_capacity(patches.len());
        for p in patches {
            let r = p.rect;
            if !r.fits_in(w, h) || r.area() > 1 << 20 {
                return Err(BlenderError::InvalidSettings(format!(
                    "patch {r:?} outside the {w}x{h} frame or too large"
                )));
            }
            let texels: Vec<f32> = (r.y..r.y + r.height)
                .flat_map(|y| (r.x..r.x + r.width).map(move |x| (x, y)))
                .map(|(x, y)| patch_texel(p, x, y))
                .collect();
            list.push(json!({
                "x": r.x, "y": r.y, "w": r.width, "h": r.height, "texels": texels,
            }));
        }
        let dir = job_dir(self.work_dir.as_deref())?;
        let tmp_out = dir.path().join("watermarked.blend");
        run_script(ScriptRun {
            exe: self.blender.executable(),
            sandbox: self.blender.sandbox(),
            readable: scene_folder(scene)?,
            dir: dir.path(),
            script: ("watermark.py", WATERMARK_PY),
            job: json!({
                "scene": absolute(scene)?,
                "out": tmp_out,
                "width": w,
                "height": h,
                "patches": list,
            }),
            scene,
            allow_scene_scripts: false,
            threads: None,
            timeout: self.timeout,
            progress: None,
        })
        .await?;
        copy_out(&tmp_out, out)
    }
}

#[async_trait]
impl SceneWatermarker for BlenderWatermarker {
    fn formats(&self) -> &[SceneFormat] {
        &FORMATS
    }

    async fn watermark(
        &self,
        scene: &Path,
        patches: &[Patch],
        settings: &RenderSettings,
        out: &Path,
    ) -> Result<(), RenderError> {
        Ok(self.watermark_blend(scene, patches, settings, out).await?)
    }
}
