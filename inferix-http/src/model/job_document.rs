//! The job-file form of a job request: the document `inferix submit
//! job.json` reads (docs/job-files.md), with the scene and environment map
//! named by their uploaded blobs, since the server cannot read the
//! caller's disk.
//!
//! The document is parsed by [`JobFile`] itself, so that the HTTP API and
//! the other front ends cannot disagree on it; the types here only describe
//! it in the OpenAPI document, and a test holds them to [`JobFile`].

use inferix_core::job::JobSpec;
use inferix_core::job_file::JobFile;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::JobRequest;
use crate::error::ApiError;

/// A job to price or run: the flat form (`scene` is the uploaded scene's
/// hash, with `scene_name`), or a job file whose `scene` is
/// `{"blob": HASH, "name": FILE}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JobBody {
    /// The flat form.
    Flat(JobRequest),
    /// A job file.
    File(JobDocument),
}

/// A job file (docs/job-files.md) naming uploaded blobs. Unknown fields are
/// refused by their path, e.g. `render.sampels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDocument {
    /// The uploaded scene (`POST /api/scenes`).
    pub scene: BlobRef,
    /// Frames: `"N"`, `"A-B"`, `"A-B:STEP"`, a frame number or
    /// `{"start", "end", "step"}`; default frame 1.
    #[schema(value_type = Option<String>)]
    pub frames: Option<Value>,
    /// Render settings; each defaults as in `inferix submit`.
    pub render: Option<RenderDocument>,
    /// `png` (default) or `exr`.
    pub format: Option<String>,
    /// Frames per task (default 5).
    pub chunk: Option<u32>,
    /// Higher runs first (default 0).
    pub priority: Option<i32>,
    /// Tags every worker rendering the job must carry.
    pub tags: Option<Vec<String>>,
    /// Minimum Inferix Bench index of its workers (default 0).
    pub min_ib: Option<f64>,
    /// An uploaded `.hdr`/`.exr` environment map lighting a glTF scene.
    pub environment: Option<BlobRef>,
    /// Splits every frame into `COLUMNSxROWS` tiles, e.g. `"4x4"`.
    pub tiles: Option<String>,
    /// Outputs the network makes once every frame is accepted, e.g.
    /// `[{"kind": "mp4", "fps": 24}, {"kind": "zip"}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub outputs: Option<Vec<Value>>,
}

/// An uploaded file and the name the nodes see, whose extension tells its
/// format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    /// The upload's hash.
    pub blob: String,
    /// File name, e.g. `scene.glb` or `studio.hdr`.
    pub name: String,
}

/// The `render` table of a job file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderDocument {
    /// Width in pixels (default 640).
    pub width: Option<u32>,
    /// Height in pixels (default 360).
    pub height: Option<u32>,
    /// Samples per pixel (default 64).
    pub samples: Option<u32>,
    /// Maximum bounces (default 6).
    pub max_bounces: Option<u32>,
    /// Random seed (default 0).
    pub seed: Option<u64>,
    /// Frames per second of the animation (default 24).
    pub fps: Option<f32>,
    /// `environment` (default), `transparent`, `color` or `color:R,G,B`.
    pub background: Option<String>,
    /// How light becomes 8-bit values: `standard` (default) or `filmic`.
    pub view: Option<String>,
}

/// Whether `body` is the flat form: its scene is a hash, or it has the
/// flat form's `scene_name`. Anything else is read as a job file, whose
/// errors then name the field (a path for `scene`, an unknown field).
fn is_flat(body: &Value) -> bool {
    let hash = body
        .get("scene")
        .and_then(Value::as_str)
        .is_some_and(|s| s.parse::<inferix_core::ContentHash>().is_ok());
    hash || body.get("scene_name").is_some()
}

/// The spec a request body describes, in either form; a wrong field is
/// named in the error.
pub(crate) fn job_spec(body: Value) -> Result<JobSpec, ApiError> {
    if is_flat(&body) {
        let req: JobRequest = serde_path_to_error::deserialize(body)
            .map_err(|e| ApiError::invalid(format!("{}: {}", e.path(), e.inner())))?;
        return req.to_spec();
    }
    JobFile::from_json_str(&body.to_string())
        .and_then(|file| file.to_uploaded_spec())
        .map_err(|e| ApiError::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::job_file::JobInput;
    use inferix_core::ContentHash;

    /// The schema types have exactly the job file's fields: a complete job
    /// file reads as a document and a complete document as a job file, both
    /// refusing fields they lack.
    #[test]
    fn the_described_document_is_the_job_file() {
        let blob = |b: &[u8], name: &str| JobInput::Blob {
            blob: ContentHash::of(b),
            name: name.into(),
        };
        let mut file = JobFile::new(blob(b"s", "a.glb"));
        file.environment = Some(blob(b"e", "e.hdr"));
        file.tags = vec!["gpu".into()];
        file.tiles = Some(inferix_core::tiles::TileGrid::new(2, 2));
        file.outputs = vec![inferix_core::outputs::OutputRequest::Zip];
        let json = serde_json::to_value(&file).unwrap();
        let doc: JobDocument = serde_json::from_value(json).unwrap();
        let full = serde_json::to_string(&doc).unwrap();
        assert!(
            !full.contains("null"),
            "a field of the document is not in the file: {full}"
        );
        let back = JobFile::from_json_str(&full).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn each_form_is_recognised() {
        let hash = ContentHash::of(b"s").to_string();
        let flat = serde_json::json!({"scene": hash, "scene_name": "a.glb", "frames": "1"});
        assert!(job_spec(flat).is_ok());
        let file =
            serde_json::json!({"scene": {"blob": hash, "name": "a.glb"}, "render": {"sampels": 2}});
        let e = job_spec(file).unwrap_err();
        assert!(e.message.contains("`render.sampels`"), "{e}");
        let path = serde_json::json!({"scene": "a.glb"});
        let e = job_spec(path).unwrap_err();
        assert!(e.message.contains("`scene`"), "{e}");
        let flat_typo =
            serde_json::json!({"scene": hash, "scene_name": "a.glb", "frames": "1", "colour": 1});
        let e = job_spec(flat_typo).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
    }
}
