//! The path tracer's reading of a glTF scene and of an environment map,
//! without a device: what a manager that renders nothing checks when a job
//! is submitted.

use std::path::Path;

use inferix_core::renderer::{
    RenderError, RenderRequest, RenderWarning, SceneFormat, SceneInspector,
};

/// Reads glTF scenes and `.hdr`/`.exr` environment maps as the
/// [`PathTracer`](crate::PathTracer) will, on the CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct GltfInspector;

impl SceneInspector for GltfInspector {
    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }

    fn scene_warnings(&self, request: &RenderRequest) -> Result<Vec<RenderWarning>, RenderError> {
        crate::tracer::scene_warnings(request)
    }

    fn check_environment(&self, path: &Path) -> Result<(), RenderError> {
        crate::environment::load_file(path)
            .map(|_| ())
            .map_err(|reason| RenderError::InvalidScene {
                path: path.to_path_buf(),
                reason,
            })
    }
}
