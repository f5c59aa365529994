//! Scenes and environment maps fetched once into a node's work folder, by
//! content hash, so that every lease and verification of a job reads the
//! same local copy.

use std::path::{Path, PathBuf};

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::job::{EnvironmentRef, SceneRef};
use inferix_core::renderer::RenderSettings;
use inferix_core::ContentHash;

/// The local copy of `scene` under `work_dir`, fetched on first use.
pub(crate) async fn scene(
    blobs: &dyn BlobStore,
    work_dir: &Path,
    scene: &SceneRef,
) -> Result<PathBuf, String> {
    fetch(blobs, work_dir, "scenes", scene.blob, &scene.file_name)
        .await
        .map_err(|e| format!("cannot fetch the scene: {e}"))
}

/// `settings` with the job's environment map, if it has one, as a local
/// file the renderer reads.
pub(crate) async fn lit_settings(
    blobs: &dyn BlobStore,
    work_dir: &Path,
    settings: &RenderSettings,
    environment: Option<&EnvironmentRef>,
) -> Result<RenderSettings, String> {
    let mut settings = settings.clone();
    if let Some(env) = environment {
        let path = fetch(blobs, work_dir, "environments", env.blob, &env.file_name)
            .await
            .map_err(|e| format!("cannot fetch the environment map: {e}"))?;
        settings.environment = Some(path);
    }
    Ok(settings)
}

async fn fetch(
    blobs: &dyn BlobStore,
    work_dir: &Path,
    kind: &str,
    blob: ContentHash,
    file_name: &str,
) -> Result<PathBuf, String> {
    let dir = work_dir.join(kind).join(blob.to_hex());
    inferix_core::fs::create_private_dir(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(crate::safe_file_name(file_name));
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        blobs
            .get_to_file(blob, &path)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(path)
}
