//! Job files: a whole job in one TOML or JSON document, read alike by
//! `inferix submit job.toml`, the Python package and the HTTP API.
//!
//! The document is a schema of its own, not [`JobSpec`]'s serde form: it
//! names the scene by a path (which a client uploads) or by an uploaded
//! blob (what the HTTP API can read), writes frames as `"1-24:2"`, and
//! defaults everything but the scene. Unknown fields are refused, because a
//! misspelt setting quietly left at its default would render, and bill, a
//! job nobody asked for; every error names its field as a path such as
//! `render.samples`, so that the fix is obvious without reading the schema.

use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::job::{EnvironmentRef, FrameRange, JobSpec, JobSpecError, OutputFormat, SceneRef};
use crate::outputs::OutputRequest;
use crate::renderer::{Background, RenderSettings, SceneFormat, View};
use crate::tiles::TileGrid;
use crate::ContentHash;

/// A file a job names: a local path that a client uploads with the job, or
/// a blob already uploaded (the HTTP API cannot read the caller's disk).
///
/// In a document: `"scene.glb"` or `{ path = "scene.glb" }` for a path,
/// `{ blob = "<64 hex digits>", name = "scene.glb" }` for a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobInput {
    /// A file on the submitter's disk; relative paths in a job file read by
    /// [`JobFile::from_path`] are taken from the file's folder.
    Path(PathBuf),
    /// An uploaded blob and the file name the nodes see, whose extension
    /// says how to read it.
    Blob {
        /// Content hash of the upload.
        blob: ContentHash,
        /// File name, e.g. `scene.glb` or `studio.hdr`.
        name: String,
    },
}

impl JobInput {
    /// The file name that tells the format (`.glb`, `.hdr`, …).
    pub fn file_name(&self) -> String {
        match self {
            Self::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Self::Blob { name, .. } => name.clone(),
        }
    }

    /// The path, for a client that uploads it.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Path(p) => Some(p),
            Self::Blob { .. } => None,
        }
    }
}

/// The table form of a [`JobInput`], refused unless it is one or the other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputTable {
    path: Option<PathBuf>,
    blob: Option<ContentHash>,
    name: Option<String>,
}

impl<'de> Deserialize<'de> for JobInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JobInput;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path, { path = \"…\" } or { blob = \"<hash>\", name = \"…\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JobInput, E> {
                Ok(JobInput::Path(v.into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobInput, A::Error> {
                let t = InputTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (t.path, t.blob, t.name) {
                    (Some(p), None, None) => Ok(JobInput::Path(p)),
                    (None, Some(blob), Some(name)) => Ok(JobInput::Blob { blob, name }),
                    (None, Some(_), None) => Err(de::Error::custom(
                        "a blob needs its file `name` (e.g. \"scene.glb\")",
                    )),
                    _ => Err(de::Error::custom(
                        "give either `path`, or `blob` with its file `name`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for JobInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Path(p) => s.collect_str(&p.display()),
            Self::Blob { blob, name } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("blob", blob)?;
                m.serialize_entry("name", name)?;
                m.end()
            }
        }
    }
}

/// `tiles`: `"COLUMNSxROWS"`, e.g. `"4x4"`.
mod tiles_field {
    use super::*;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<TileGrid>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| s.parse().map_err(de::Error::custom)).transpose()
    }

    pub(super) fn serialize<S: Serializer>(g: &Option<TileGrid>, s: S) -> Result<S::Ok, S::Error> {
        match g {
            Some(g) => s.serialize_str(&g.to_string()),
            None => s.serialize_none(),
        }
    }
}

/// `frames`: `"1-24:2"`, a single frame `7`, or `{ start, end, step }`.
mod frames_field {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        start: u32,
        end: Option<u32>,
        #[serde(default = "one")]
        step: u32,
    }

    fn one() -> u32 {
        1
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FrameRange, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FrameRange;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"A-B\", \"A-B:STEP\", a frame number or { start, end, step }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FrameRange, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FrameRange, E> {
                let f = u32::try_from(v).map_err(|_| E::custom(format!("frame {v} too large")))?;
                Ok(FrameRange::new(f, f))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FrameRange, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("frame {v} is negative"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FrameRange, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let end = t.end.unwrap_or(t.start);
                Ok(FrameRange::new(t.start, end).with_step(t.step))
            }
        }
        d.deserialize_any(V)
    }

    pub(super) fn serialize<S: Serializer>(f: &FrameRange, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(f)
    }
}

/// `render.background`: the same words as `--background`.
mod background_field {
    use super::*;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Background, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }

    pub(super) fn serialize<S: Serializer>(b: &Background, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Background::Environment => s.serialize_str("environment"),
            Background::Transparent => s.serialize_str("transparent"),
            Background::Color([r, g, b]) => s.collect_str(&format_args!("color:{r},{g},{b}")),
        }
    }
}

/// The `[render]` table: what determines each frame's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RenderSection {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub samples: u32,
    /// Maximum path length in bounces.
    pub max_bounces: u32,
    /// Seed of every random stream.
    pub seed: u64,
    /// Frames per second, turning frame numbers into animation time.
    pub fps: f32,
    /// What empty pixels show: `environment`, `transparent`, `color` or
    /// `color:R,G,B` (linear).
    #[serde(with = "background_field")]
    pub background: Background,
    /// How light becomes 8-bit values: `standard` or `filmic`.
    pub view: View,
}

impl Default for RenderSection {
    /// [`RenderSettings`]' defaults, so that a file and a flag-built job
    /// agree on what an absent setting means.
    fn default() -> Self {
        let s = RenderSettings::default();
        Self {
            width: s.width,
            height: s.height,
            samples: s.samples,
            max_bounces: s.max_bounces,
            seed: s.seed,
            fps: s.fps,
            background: s.background,
            view: s.view,
        }
    }
}

/// The spec [`JobSpec::new`] makes, whose values are the file's defaults.
fn default_spec() -> JobSpec {
    JobSpec::new(
        SceneRef {
            blob: ContentHash::default(),
            format: SceneFormat::Gltf,
            file_name: "scene.glb".into(),
        },
        FrameRange::new(1, 1),
    )
}

fn default_frames() -> FrameRange {
    default_spec().frames
}
fn default_format() -> OutputFormat {
    default_spec().format
}
fn default_chunk() -> u32 {
    default_spec().chunk_size
}

/// A job as a document. Everything but `scene` has a default (those of
/// [`JobSpec::new`] and [`RenderSettings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobFile {
    /// The scene: a path to upload, or an uploaded blob.
    pub scene: JobInput,
    /// Frames to render (default: frame 1).
    #[serde(default = "default_frames", with = "frames_field")]
    pub frames: FrameRange,
    /// Resolution, samples and the rest of the render settings.
    #[serde(default)]
    pub render: RenderSection,
    /// File format of delivered frames: `png` or `exr`.
    #[serde(default = "default_format")]
    pub format: OutputFormat,
    /// Frames per task.
    #[serde(default = "default_chunk")]
    pub chunk: u32,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Tags every worker rendering the job must carry.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Minimum Inferix Bench index of its workers.
    #[serde(default)]
    pub min_ib: f64,
    /// An equirectangular `.hdr`/`.exr` map lighting a glTF scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<JobInput>,
    /// Splits every frame into `COLUMNSxROWS` tiles, each a task of its
    /// own (e.g. `"4x4"`); whole frames when absent.
    #[serde(default, with = "tiles_field", skip_serializing_if = "Option::is_none")]
    pub tiles: Option<TileGrid>,
    /// What the network makes of the frames once every one is accepted
    /// (`[{ kind = "mp4", fps = 24 }, { kind = "zip" }]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputRequest>,
}

impl JobFile {
    /// A job of frame 1 of `scene` with every default.
    pub fn new(scene: JobInput) -> Self {
        let d = default_spec();
        Self {
            scene,
            frames: d.frames,
            render: RenderSection::default(),
            format: d.format,
            chunk: d.chunk_size,
            priority: d.priority,
            tags: d.tags,
            min_ib: d.min_ib,
            environment: None,
            tiles: d.tiles,
            outputs: d.outputs,
        }
    }

    /// Parses a TOML document; relative paths stay as written.
    pub fn from_toml_str(text: &str) -> Result<Self, JobFileError> {
        let de = toml::Deserializer::parse(text).map_err(|e| JobFileError::Syntax {
            format: "TOML",
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim_end().to_string(),
        })?;
        serde_path_to_error::deserialize(de)
            .map_err(|e| field_error(e.path().to_string(), e.inner().message()))
    }

    /// Parses a JSON document; relative paths stay as written.
    pub fn from_json_str(text: &str) -> Result<Self, JobFileError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let file = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => field_error(path, &json_message(&inner)),
                _ => json_syntax(&inner),
            }
        })?;
        de.end().map_err(|e| json_syntax(&e))?;
        Ok(file)
    }

    /// Reads `path` as TOML or JSON by its extension; relative paths in it
    /// are taken from the file's folder, so a job file and its scene can
    /// move together.
    pub fn from_path(path: &Path) -> Result<Self, JobFileError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse = match ext.as_deref() {
            Some("toml") => Self::from_toml_str,
            Some("json") => Self::from_json_str,
            _ => {
                return Err(JobFileError::Extension {
                    path: path.to_path_buf(),
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| JobFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = parse(&text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        for input in std::iter::once(&mut file.scene).chain(file.environment.as_mut()) {
            if let JobInput::Path(p) = input {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(file)
    }

    /// Whether `path` names a job file rather than a scene (by extension).
    pub fn is_job_file(path: &Path) -> bool {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("toml") || e.eq_ignore_ascii_case("json"))
    }

    /// The spec for the scene and environment map the file names, once
    /// uploaded. Every field of the file is mapped onto the spec here and
    /// nowhere else; a field added to the file belongs in this function.
    pub fn to_spec(
        &self,
        scene: SceneRef,
        environment: Option<EnvironmentRef>,
    ) -> Result<JobSpec, JobFileError> {
        let mut spec = JobSpec::new(scene, self.frames);
        let r = &self.render;
        spec.settings.width = r.width;
        spec.settings.height = r.height;
        spec.settings.samples = r.samples;
        spec.settings.max_bounces = r.max_bounces;
        spec.settings.seed = r.seed;
        spec.settings.fps = r.fps;
        spec.settings.background = r.background;
        spec.settings.view = r.view;
        spec.format = self.format;
        spec.chunk_size = self.chunk;
        spec.priority = self.priority;
        spec.tags = self.tags.clone();
        spec.min_ib = self.min_ib;
        spec.environment = environment;
        spec.tiles = self.tiles;
        spec.outputs = self.outputs.clone();
        spec.validate().map_err(|reason| JobFileError::InvalidJob {
            field: self.field_of(&reason),
            reason,
        })?;
        Ok(spec)
    }

    /// The spec of a document whose scene and map are uploaded blobs (what
    /// the HTTP API accepts); a path is refused by its field.
    pub fn to_uploaded_spec(&self) -> Result<JobSpec, JobFileError> {
        let scene = scene_ref(&self.scene, true)?;
        let environment = match &self.environment {
            Some(e) => Some(environment_ref(e, true)?),
            None => None,
        };
        self.to_spec(scene, environment)
    }

    /// Checks every value before anything is uploaded, with stand-ins for
    /// the uploads: a client fails fast, and submits nothing, on a bad
    /// file.
    pub fn check(&self) -> Result<(), JobFileError> {
        let scene = scene_ref(&self.scene, false)?;
        let environment = match &self.environment {
            Some(e) => Some(environment_ref(e, false)?),
            None => None,
        };
        self.to_spec(scene, environment).map(|_| ())
    }

    /// The field a refusal of [`JobSpec::validate`] is about.
    fn field_of(&self, e: &JobSpecError) -> &'static str {
        use JobSpecError as E;
        match e {
            E::ReversedFrames { .. } | E::ZeroStep | E::TooManyFrames { .. } => "frames",
            E::UnparsableFrames(_) => "frames",
            E::ZeroChunkSize | E::ChunkTooLarge { .. } => "chunk",
            E::InvalidMinIb(_) => "min_ib",
            E::InvalidOutput(_) => "outputs",
            E::UnknownFormat(_) => "format",
            E::Tiles(_) => "tiles",
            E::EnvironmentNeedsGltf | E::EnvironmentFileName(_) | E::EnvironmentPath => {
                "environment"
            }
            E::InvalidSettings(_) => {
                let r = &self.render;
                let pixels = 1..=16384;
                if !pixels.contains(&r.width) {
                    "render.width"
                } else if !pixels.contains(&r.height) {
                    "render.height"
                } else if !(1..=1 << 16).contains(&r.samples) {
                    "render.samples"
                } else if !(r.fps.is_finite() && r.fps > 0.0) {
                    "render.fps"
                } else if matches!(r.background, Background::Color(_)) {
                    "render.background"
                } else if r.view != View::Standard {
                    "render.view"
                } else {
                    "render"
                }
            }
        }
    }
}

/// A scene reference for `input`: the blob itself when `uploaded`, else a
/// stand-in with the real file name (its format is known before upload).
fn scene_ref(input: &JobInput, uploaded: bool) -> Result<SceneRef, JobFileError> {
    let (blob, field) = blob_of(input, "scene", uploaded)?;
    let file_name = input.file_name();
    let format = SceneFormat::from_path(Path::new(&file_name)).ok_or_else(|| {
        JobFileError::InvalidValue {
            field,
            message: format!(
                "cannot tell the format of {file_name:?} (expected .glb, .gltf or .blend)"
            ),
        }
    })?;
    Ok(SceneRef {
        blob,
        format,
        file_name,
    })
}

fn environment_ref(input: &JobInput, uploaded: bool) -> Result<EnvironmentRef, JobFileError> {
    let (blob, _) = blob_of(input, "environment", uploaded)?;
    Ok(EnvironmentRef {
        blob,
        file_name: input.file_name(),
    })
}

/// The blob `input` names (a stand-in for a path to be uploaded), and the
/// field holding its file name; a path where only a blob can be read is
/// refused.
fn blob_of(
    input: &JobInput,
    field: &'static str,
    uploaded: bool,
) -> Result<(ContentHash, String), JobFileError> {
    match input {
        JobInput::Blob { blob, .. } => Ok((*blob, format!("{field}.name"))),
        JobInput::Path(_) if uploaded => Err(JobFileError::InvalidValue {
            field: field.into(),
            message: "a path cannot be read here: upload the file and give \
                      { \"blob\": \"<hash>\", \"name\": \"<file name>\" }"
                .into(),
        }),
        JobInput::Path(_) => Ok((ContentHash::default(), field.into())),
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// serde_json's message without the ` at line L column C` it appends.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

fn json_syntax(e: &serde_json::Error) -> JobFileError {
    JobFileError::Syntax {
        format: "JSON",
        line: Some(e.line()),
        message: json_message(e),
    }
}

/// `name` inside the table at `path` (`.` is the document itself), unless
/// the path already ends with it.
fn child(path: &str, name: &str) -> String {
    if path == name || path.ends_with(&format!(".{name}")) {
        path.to_string()
    } else if path == "." || path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A deserialization failure at `path`: an unknown or missing field (in
/// serde's fixed wording, `unknown field `x`, expected …` and
/// `missing field `x``) or a bad value.
fn field_error(path: String, message: &str) -> JobFileError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            return JobFileError::UnknownField {
                field: child(&path, name),
                expected: expected.trim_start_matches(", ").trim().to_string(),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return JobFileError::MissingField {
                field: child(&path, name),
            };
        }
    }
    JobFileError::InvalidValue {
        field: if path == "." { "?".into() } else { path },
        message: message.trim_end().to_string(),
    }
}

/// Why a job file was refused; all but the reading and syntax errors name
/// the field they are about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobFileError {
    /// The file could not be read.
    #[error("cannot read job file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Neither `.toml` nor `.json`: the extension says how to parse it.
    #[error("job file {} must end in .toml or .json", path.display())]
    Extension {
        /// The file.
        path: PathBuf,
    },
    /// Not a TOML or JSON document at all.
    #[error("not valid {format}{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Syntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// Where the parser stopped, when it says.
        line: Option<usize>,
        /// The parser's explanation.
        message: String,
    },
    /// A field the schema does not have (a misspelling, most often).
    #[error("unknown field `{field}` ({expected})")]
    UnknownField {
        /// Its path, e.g. `render.sampels`.
        field: String,
        /// The fields allowed where it stands.
        expected: String,
    },
    /// A field without a default is absent (`scene`, `frames.start`).
    #[error("missing field `{field}`")]
    MissingField {
        /// Its path.
        field: String,
    },
    /// A value of the wrong type or shape.
    #[error("`{field}`: {message}")]
    InvalidValue {
        /// Its path, e.g. `frames` or `scene.blob`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A value the job spec refuses (reversed frames, chunk of 0, …).
    #[error("`{field}`: {reason}")]
    InvalidJob {
        /// The field, e.g. `chunk` or `render.samples`.
        field: &'static str,
        /// The spec's refusal.
        reason: JobSpecError,
    },
}

impl JobFileError {
    /// The path of the field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownField { field, .. }
            | Self::MissingField { field }
            | Self::InvalidValue { field, .. } => Some(field),
            Self::InvalidJob { field, .. } => Some(field),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "job_file_tests.rs"]
mod tests;
