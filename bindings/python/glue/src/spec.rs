//! Keyword arguments of `quote` and `submit`, checked before any network
//! traffic so mistakes fail fast with `InvalidInput`.

use std::path::PathBuf;

use inferix_core::job::{FrameRange, JobSpec, OutputFormat, SceneRef};
use inferix_core::renderer::SceneFormat;
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::{PyRange, PyRangeMethods, PyString};

use inferix_core::job_file::JobFile;
use inferix_node::Client;

use crate::errors::{Error, Kind, Op};

/// A job as the user described it, scene not yet uploaded.
#[derive(Debug, Clone)]
pub(crate) struct JobRequest {
    /// Local scene file, known to exist.
    pub(crate) scene: PathBuf,
    frames: FrameRange,
    width: u32,
    height: u32,
    samples: u32,
    seed: u64,
    chunk: u32,
    format: OutputFormat,
    min_ib: f64,
    priority: i32,
    tags: Vec<String>,
    tiles: Option<inferix_core::tiles::TileGrid>,
    view: inferix_core::renderer::View,
    outputs: Vec<inferix_core::outputs::OutputRequest>,
}

/// Raw keyword arguments, any Python objects.
pub(crate) struct JobArgs<'a, 'py> {
    pub(crate) scene: &'a Bound<'py, PyAny>,
    pub(crate) frames: Option<&'a Bound<'py, PyAny>>,
    pub(crate) resolution: Option<&'a Bound<'py, PyAny>>,
    pub(crate) samples: Option<&'a Bound<'py, PyAny>>,
    pub(crate) fmt: Option<&'a Bound<'py, PyAny>>,
    pub(crate) chunk: Option<&'a Bound<'py, PyAny>>,
    pub(crate) seed: Option<&'a Bound<'py, PyAny>>,
    pub(crate) min_ib: Option<&'a Bound<'py, PyAny>>,
    pub(crate) priority: Option<&'a Bound<'py, PyAny>>,
    pub(crate) tags: Option<&'a Bound<'py, PyAny>>,
    pub(crate) tiles: Option<&'a Bound<'py, PyAny>>,
    pub(crate) view: Option<&'a Bound<'py, PyAny>>,
    pub(crate) outputs: Option<&'a Bound<'py, PyAny>>,
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Extracts `T`, or says which argument was wrong and what it got.
pub(crate) fn arg<'py, T: FromPyObjectOwned<'py>>(
    name: &str,
    obj: &Bound<'py, PyAny>,
    expected: &str,
) -> Result<T, Error> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(Error::invalid(format!(
            "{name} must be {expected}, got bool"
        )));
    }
    obj.extract::<T>().map_err(|_| {
        Error::invalid(format!(
            "{name} must be {expected}, got {} {}",
            type_name(obj),
            obj.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// A path from `str` or `os.PathLike`.
pub(crate) fn path_arg(name: &str, obj: &Bound<'_, PyAny>) -> Result<PathBuf, Error> {
    let fspath = obj
        .py()
        .import("os")
        .and_then(|os| os.call_method1("fspath", (obj,)));
    match fspath {
        Ok(p) if p.is_instance_of::<PyString>() => Ok(PathBuf::from(p.to_string())),
        _ => Err(Error::invalid(format!(
            "{name} must be a path (str or os.PathLike), got {}",
            type_name(obj)
        ))),
    }
}

fn frames_arg(obj: &Bound<'_, PyAny>) -> Result<FrameRange, Error> {
    const EXPECTED: &str =
        "an int, a \"A-B\" or \"A-B:STEP\" string, a range or an (first, last) tuple";
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_string();
        return s
            .parse::<FrameRange>()
            .map_err(|e| Error::invalid(format!("frames {s:?}: {e} (expected {EXPECTED})")));
    }
    if let Ok(r) = obj.cast::<PyRange>() {
        let bad = || Error::invalid(format!("frames {}: empty or negative range", obj));
        let (start, stop, step) = (
            r.start().map_err(|_| bad())?,
            r.stop().map_err(|_| bad())?,
            r.step().map_err(|_| bad())?,
        );
        if step <= 0 || stop <= start || start < 0 {
            return Err(bad());
        }
        let last = start + (stop - 1 - start) / step * step;
        let conv = |v: isize| u32::try_from(v).map_err(|_| bad());
        return Ok(FrameRange::new(conv(start)?, conv(last)?).with_step(conv(step)?));
    }
    if obj.is_instance_of::<pyo3::types::PyTuple>() {
        let (a, b): (u32, u32) = arg("frames", obj, EXPECTED)?;
        return Ok(FrameRange::new(a, b));
    }
    let n: u32 = arg("frames", obj, EXPECTED)?;
    Ok(FrameRange::new(n, n))
}

impl JobRequest {
    /// Checks every argument; nothing is sent yet.
    pub(crate) fn parse(a: JobArgs<'_, '_>) -> Result<Self, Error> {
        let scene = path_arg("scene", a.scene)?;
        if !scene.is_file() {
            return Err(Error::new(
                Kind::SceneNotFound,
                format!("scene file not found: {}", scene.display()),
            ));
        }
        if SceneFormat::from_path(&scene).is_none() {
            return Err(Error::invalid(format!(
                "cannot tell the scene format of {} (expected .glb, .gltf or .blend)",
                scene.display()
            )));
        }
        let frames = match a.frames {
            Some(f) => frames_arg(f)?,
            None => FrameRange::new(1, 1),
        };
        let (width, height) = match a.resolution {
            Some(r) => {
                const EXPECTED: &str = "a (width, height) pair of ints";
                match arg::<Vec<u32>>("resolution", r, EXPECTED)?[..] {
                    [w, h] => (w, h),
                    _ => return Err(Error::invalid(format!("resolution must be {EXPECTED}"))),
                }
            }
            None => (640, 360),
        };
        let samples = match a.samples {
            Some(s) => arg::<u32>("samples", s, "a positive int")?,
            None => 64,
        };
        let format = match a.fmt {
            Some(f) => arg::<String>("fmt", f, "\"png\" or \"exr\"")?
                .parse::<OutputFormat>()
                .map_err(|e| Error::invalid(format!("fmt: {e} (expected \"png\" or \"exr\")")))?,
            None => OutputFormat::Png,
        };
        let chunk = match a.chunk {
            Some(c) => arg::<u32>("chunk", c, "a positive int")?,
            None => 5,
        };
        let seed = match a.seed {
            Some(s) => arg::<u64>("seed", s, "a non-negative int")?,
            None => 0,
        };
        let min_ib = match a.min_ib {
            Some(m) => arg::<f64>("min_ib", m, "a non-negative number")?,
            None => 0.0,
        };
        let priority = match a.priority {
            Some(p) => arg::<i32>("priority", p, "an int")?,
            None => 0,
        };
        let tags = match a.tags {
            Some(t) => arg::<Vec<String>>("tags", t, "a list of str")?,
            None => Vec::new(),
        };
        let tiles = match a.tiles {
            Some(t) => Some(
                arg::<String>("tiles", t, "\"COLUMNSxROWS\", e.g. \"4x4\"")?
                    .parse()
                    .map_err(|e| Error::invalid(format!("tiles: {e}")))?,
            ),
            None => None,
        };
        let view = match a.view {
            Some(v) => arg::<String>("view", v, "\"standard\" or \"filmic\"")?
                .parse()
                .map_err(|e| Error::invalid(format!("view: {e}")))?,
            None => inferix_core::renderer::View::Standard,
        };
        let outputs = match a.outputs {
            Some(o) => arg::<Vec<String>>("outputs", o, "a list of str such as \"mp4:24\"")?
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|e| Error::invalid(format!("outputs: {s:?}: {e}")))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let req = Self {
            tiles,
            view,
            outputs,
            scene,
            frames,
            width,
            height,
            samples,
            seed,
            chunk,
            format,
            min_ib,
            priority,
            tags,
        };
        // Validate the whole spec now, against a placeholder scene.
        req.spec(SceneRef {
            blob: inferix_core::ContentHash::of(b""),
            format: SceneFormat::Gltf,
            file_name: "scene.glb".into(),
        })
        .validate()
        .map_err(|e| Error::invalid(format!("invalid job: {e}")))?;
        Ok(req)
    }

    /// The spec for an uploaded scene.
    pub(crate) fn spec(&self, scene: SceneRef) -> JobSpec {
        let mut spec = JobSpec::new(scene, self.frames);
        spec.settings.width = self.width;
        spec.settings.height = self.height;
        spec.settings.samples = self.samples;
        spec.settings.seed = self.seed;
        spec.chunk_size = self.chunk;
        spec.format = self.format;
        spec.min_ib = self.min_ib;
        spec.priority = self.priority;
        spec.tags = self.tags.clone();
        spec.tiles = self.tiles;
        spec.settings.view = self.view;
        spec.outputs = self.outputs.clone();
        spec
    }
}

/// A job file (docs/job-files.md) read and checked, its scene known to
/// exist: a bad file fails with its field named before anything is sent.
pub(crate) fn job_file(path: &Bound<'_, PyAny>) -> Result<JobFile, Error> {
    let p = path_arg("path", path)?;
    let file = JobFile::from_path(&p)
        .and_then(|f| f.check().map(|()| f))
        .map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?;
    let scene = file.scene.path().ok_or_else(|| {
        Error::invalid(format!(
            "{}: `scene`: give a file path; a blob reference is for the HTTP API",
            p.display()
        ))
    })?;
    if !scene.is_file() {
        return Err(Error::new(
            Kind::SceneNotFound,
            format!("scene file not found: {}", scene.display()),
        ));
    }
    Ok(file)
}

/// Uploads the scene and environment map a checked job file names, and
/// makes its spec.
pub(crate) async fn upload_job_file(client: &Client, file: &JobFile) -> Result<JobSpec, Error> {
    let upload = |e| Error::client(e, Op::Upload);
    let scene = match file.scene.path() {
        Some(p) => client.upload_scene(p).await.map_err(upload)?,
        None => return Err(Error::invalid("`scene`: give a file path")),
    };
    let environment = match file.environment.as_ref().map(|e| e.path()) {
        Some(Some(p)) => Some(client.upload_environment(p).await.map_err(upload)?),
        Some(None) => return Err(Error::invalid("`environment`: give a file path")),
        None => None,
    };
    file.to_spec(scene, environment)
        .map_err(|e| Error::invalid(e.to_string()))
}
