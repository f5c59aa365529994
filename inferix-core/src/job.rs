//! What a user asks for: the job spec, its validation, and its split into
//! tasks.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, NodeId, TaskId};
use crate::image::Rect;
use crate::renderer::{RenderSettings, SceneFormat};
use crate::ContentHash;

/// Jobs larger than this are refused outright.
pub const MAX_FRAMES_PER_JOB: u64 = 1_000_000;

/// The most frames one task may hold. A task is one lease, one result and
/// one verification round: the more frames it holds, the more one cheat
/// can hide among honest frames and the more a lost lease costs, while a
/// stake is sized per task.
pub const MAX_CHUNK_SIZE: u32 = 100;

/// An inclusive range of frames with a step, like Blender's start/end/step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRange {
    /// First frame.
    pub start: u32,
    /// Last frame (inclusive); reached only when `(end - start) % step == 0`.
    pub end: u32,
    /// Distance between rendered frames, at least 1.
    pub step: u32,
}

impl FrameRange {
    /// Frames `start..=end` with step 1.
    pub fn new(start: u32, end: u32) -> Self {
        Self {
            start,
            end,
            step: 1,
        }
    }

    /// With another step.
    pub fn with_step(mut self, step: u32) -> Self {
        self.step = step;
        self
    }

    /// Number of frames in the range (0 when reversed or step is 0).
    pub fn len(&self) -> u64 {
        if self.step == 0 || self.end < self.start {
            0
        } else {
            (self.end - self.start) as u64 / self.step as u64 + 1
        }
    }

    /// Whether the range holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frames in order.
    pub fn frames(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.len();
        (0..n).map(move |i| self.start + (i as u32) * self.step)
    }
}

impl std::str::FromStr for FrameRange {
    type Err = JobSpecError;
    /// Parses `7`, `1-24` or `1-24:2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || JobSpecError::UnparsableFrames(s.to_string());
        let (range, step) = match s.split_once(':') {
            Some((r, st)) => (r, st.trim().parse().map_err(|_| bad())?),
            None => (s, 1),
        };
        let (start, end) = match range.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let f = range.trim().parse().map_err(|_| bad())?;
                (f, f)
            }
        };
        Ok(Self { start, end, step })
    }
}

impl std::fmt::Display for FrameRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)?;
        if self.step != 1 {
            write!(f, ":{}", self.step)?;
        }
        Ok(())
    }
}

/// Image file format of delivered frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// 8-bit sRGB PNG.
    Png,
    /// Linear 32-bit float OpenEXR (the `exr-half` output makes half-float
    /// copies).
    Exr,
}

impl OutputFormat {
    /// File extension without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Exr => "exr",
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = JobSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Self::Png),
            "exr" => Ok(Self::Exr),
            _ => Err(JobSpecError::UnknownFormat(s.to_string())),
        }
    }
}

/// A scene already uploaded to blob storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SceneRef {
    /// Content hash of the scene bundle.
    pub blob: ContentHash,
    /// How to read it.
    pub format: SceneFormat,
    /// File name the renderer sees (keeps the extension meaningful).
    pub file_name: String,
}

/// An environment map already uploaded to blob storage: how a network job
/// names the map that lights its scene (a path in
/// [`RenderSettings::environment`] would name a file on the workers' disks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvironmentRef {
    /// Content hash of the map file.
    pub blob: ContentHash,
    /// File name on the nodes, whose extension (`.hdr` or `.exr`) says how
    /// to read it.
    pub file_name: String,
}

impl EnvironmentRef {
    /// The file's extension, lower case, when it is one the renderers read.
    pub fn kind(&self) -> Option<&'static str> {
        environment_kind(&self.file_name)
    }
}

/// The extension of an environment map's file name, lower case, when it is
/// one the renderers read (`hdr` or `exr`).
pub fn environment_kind(file_name: &str) -> Option<&'static str> {
    let ext = std::path::Path::new(file_name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    ["hdr", "exr"].into_iter().find(|k| *k == ext)
}

/// Everything a user specifies about a render job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The scene to render.
    pub scene: SceneRef,
    /// Frames to render.
    pub frames: FrameRange,
    /// Resolution, samples, seed, …
    pub settings: RenderSettings,
    /// File format of delivered frames.
    pub format: OutputFormat,
    /// Frames per task.
    pub chunk_size: u32,
    /// Minimum Inferix Bench index of workers allowed to render.
    pub min_ib: f64,
    /// Higher runs first.
    pub priority: i32,
    /// Tags a worker must all carry to render this job (e.g. `"gpu"`).
    pub tags: Vec<String>,
    /// The environment map lighting a glTF scene, uploaded with the job;
    /// `None` lights it with the scene's own lights, else the default studio.
    #[serde(default)]
    pub environment: Option<EnvironmentRef>,
    /// Splits every frame into this grid of tiles, each a task of its own
    /// (see [`crate::tiles`]); `None` renders whole frames.
    #[serde(default)]
    pub tiles: Option<crate::tiles::TileGrid>,
    /// Files the network makes from the delivered frames once every frame
    /// is accepted (video, archives, previews); empty: the frames alone.
    #[serde(default)]
    pub outputs: Vec<crate::outputs::OutputRequest>,
}

impl JobSpec {
    /// A spec with sensible defaults for everything but the scene and frames.
    pub fn new(scene: SceneRef, frames: FrameRange) -> Self {
        Self {
            scene,
            frames,
            settings: RenderSettings::default(),
            format: OutputFormat::Png,
            chunk_size: 5,
            min_ib: 0.0,
            priority: 0,
            tags: Vec::new(),
            environment: None,
            tiles: None,
            outputs: Vec::new(),
        }
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), JobSpecError> {
        let f = self.frames;
        if f.step == 0 {
            return Err(JobSpecError::ZeroStep);
        }
        if f.end < f.start {
            return Err(JobSpecError::ReversedFrames {
                start: f.start,
                end: f.end,
            });
        }
        if f.len() > MAX_FRAMES_PER_JOB {
            return Err(JobSpecError::TooManyFrames {
                frames: f.len(),
                max: MAX_FRAMES_PER_JOB,
            });
        }
        if self.chunk_size == 0 {
            return Err(JobSpecError::ZeroChunkSize);
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(JobSpecError::ChunkTooLarge {
                chunk: self.chunk_size,
                max: MAX_CHUNK_SIZE,
            });
        }
        if !(self.min_ib.is_finite() && self.min_ib >= 0.0) {
            return Err(JobSpecError::InvalidMinIb(self.min_ib));
        }
        // A path would name a file on the workers' disks, not the client's.
        if self.settings.environment.is_some() {
            return Err(JobSpecError::EnvironmentPath);
        }
        if let Some(env) = &self.environment {
            if self.scene.format != crate::renderer::SceneFormat::Gltf {
                return Err(JobSpecError::EnvironmentNeedsGltf);
            }
            if env.kind().is_none() {
                return Err(JobSpecError::EnvironmentFileName(env.file_name.clone()));
            }
        }
        if let Some(grid) = self.tiles {
            grid.validate(self.settings.width, self.settings.height)?;
        }
        crate::outputs::validate_requests(&self.outputs).map_err(JobSpecError::InvalidOutput)?;
        if self.format != OutputFormat::Exr
            && self
                .outputs
                .contains(&crate::outputs::OutputRequest::ExrHalf)
        {
            return Err(JobSpecError::InvalidOutput(
                "exr-half is made from EXR frames, and this job renders 8-bit PNG (set format = \"exr\")".into(),
            ));
        }
        let probe = crate::renderer::RenderRequest {
            scene: Default::default(),
            format: self.scene.format,
            frames: vec![],
            settings: self.settings.clone(),
            crop: None,
            #[cfg(feature = "runtime")]
            progress: None,
        };
        probe
            .validate()
            .map_err(|e| JobSpecError::InvalidSettings(e.to_string()))?;
        if self.format == OutputFormat::Exr && self.settings.view != crate::renderer::View::Standard
        {
            return Err(JobSpecError::InvalidSettings(format!(
                "view {} shapes 8-bit frames; EXR frames stay scene-linear (use png)",
                self.settings.view
            )));
        }
        Ok(())
    }

    /// How many tasks [`JobSpec::split`] makes, without making them.
    pub fn task_count(&self) -> u64 {
        match u64::from(self.chunk_size) {
            0 => 0,
            chunk => self.frames.len().div_ceil(chunk) * self.tiles_per_frame(),
        }
    }

    /// Tiles each frame is split into (1 without a grid).
    pub fn tiles_per_frame(&self) -> u64 {
        self.tiles.map_or(1, |g| g.count().max(1))
    }

    /// The pixels task `index` renders of each of its frames: `None` for
    /// whole frames. Tasks of a tile job go chunk by chunk, each chunk's
    /// tiles row by row ([`crate::tiles::TileGrid::rects`]), so the region
    /// follows from the index and no task record has to store it.
    pub fn task_region(&self, index: u32) -> Option<Rect> {
        let grid = self.tiles?;
        let rects = grid.rects(self.settings.width, self.settings.height);
        rects.get(index as usize % rects.len().max(1)).copied()
    }

    /// The part of the whole job that `frames` frames of task `index` are,
    /// as `(part, whole)`: `(frames, job frames)` for whole frames, and in frame
    /// pixels for a tile job, so that each tile is paid by its pixel area
    /// and a frame's tiles together are paid what the frame is.
    pub fn task_share(&self, index: u32, frames: usize) -> (usize, u64) {
        let total = self.frames.len();
        match self.task_region(index) {
            Some(r) => {
                let frame = u64::from(self.settings.width) * u64::from(self.settings.height);
                (frames * r.area() as usize, total * frame)
            }
            None => (frames, total),
        }
    }

    /// Splits the job into tasks of at most `chunk_size` frames each, and
    /// each chunk into one task per tile when the job has a grid.
    pub fn split(&self, job: JobId) -> Result<Vec<TaskSpec>, JobSpecError> {
        self.validate()?;
        let frames: Vec<u32> = self.frames.frames().collect();
        let regions: Vec<Option<Rect>> = match self.tiles {
            Some(grid) => grid
                .rects(self.settings.width, self.settings.height)
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None],
        };
        Ok(frames
            .chunks(self.chunk_size as usize)
            .flat_map(|c| regions.iter().map(move |r| (c, *r)))
            .enumerate()
            .map(|(i, (c, region))| TaskSpec {
                id: TaskId::new(job, i as u32),
                frames: c.to_vec(),
                region,
            })
            .collect())
    }
}

/// One task of a split job: the frames one worker renders in one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's id.
    pub id: TaskId,
    /// Its frames, in order.
    pub frames: Vec<u32>,
    /// The tile of each frame it renders; `None` for whole frames.
    pub region: Option<Rect>,
}

/// Why a job spec was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JobSpecError {
    /// `end < start`.
    #[error("frame range {start}-{end} is reversed")]
    ReversedFrames {
        /// First frame asked.
        start: u32,
        /// Last frame asked.
        end: u32,
    },
    /// Step 0.
    #[error("frame step must be at least 1")]
    ZeroStep,
    /// More than [`MAX_FRAMES_PER_JOB`].
    #[error("{frames} frames exceed the limit of {max} per job")]
    TooManyFrames {
        /// Frames asked.
        frames: u64,
        /// Limit.
        max: u64,
    },
    /// Chunk size 0.
    #[error("chunk size must be at least 1 frame")]
    ZeroChunkSize,
    /// More than [`MAX_CHUNK_SIZE`] frames per task.
    #[error("chunk size {chunk} exceeds the limit of {max} frames per task")]
    ChunkTooLarge {
        /// Frames per task asked.
        chunk: u32,
        /// Limit.
        max: u32,
    },
    /// Negative or non-finite minimum IB.
    #[error("minimum IB {0} must be a finite number >= 0")]
    InvalidMinIb(f64),
    /// Not `png` or `exr`.
    #[error("unknown output format {0:?} (expected png or exr)")]
    UnknownFormat(String),
    /// Frame text that does not parse.
    #[error("cannot parse frame range {0:?} (expected N, A-B or A-B:STEP)")]
    UnparsableFrames(String),
    /// Resolution, samples or fps out of range.
    #[error("{0}")]
    InvalidSettings(String),
    /// The settings name an environment map by path, which would be a file
    /// on each worker's disk: a network job uploads the map and names it
    /// in [`JobSpec::environment`].
    #[error(
        "an environment map travels with a network job as an uploaded file \
         (JobSpec::environment), not as a path in its render settings"
    )]
    EnvironmentPath,
    /// An environment map for a scene that is lit by its own world.
    #[error("an environment map applies to glTF scenes; a .blend is lit by its own world")]
    EnvironmentNeedsGltf,
    /// The map's file name does not say `.hdr` or `.exr`.
    #[error("environment map {0:?} must be a .hdr or .exr file")]
    EnvironmentFileName(String),
    /// An output request out of range, or asked for twice.
    #[error("{0}")]
    InvalidOutput(String),
    /// A tile grid with no tile, more tiles than pixels, or too many.
    #[error(transparent)]
    Tiles(#[from] crate::tiles::TileError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frames: FrameRange) -> JobSpec {
        JobSpec::new(
            SceneRef {
                blob: ContentHash::of(b"s"),
                format: SceneFormat::Gltf,
                file_name: "s.glb".into(),
            },
            frames,
        )
    }

    #[test]
    fn splits_1000_frames_into_200_tasks_of_5() {
        let tasks = spec(FrameRange::new(1, 1000)).split(JobId(1)).unwrap();
        assert_eq!(tasks.len(), 200);
        assert!(tasks.iter().all(|t| t.frames.len() == 5));
        assert_eq!(tasks[199].frames, vec![996, 997, 998, 999, 1000]);
        let all: Vec<u32> = tasks.iter().flat_map(|t| t.frames.clone()).collect();
        assert_eq!(all, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn split_respects_step_and_short_last_chunk() {
        let mut s = spec(FrameRange::new(1, 24).with_step(2));
        s.chunk_size = 5;
        let tasks = s.split(JobId(1)).unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[0].frames, vec![1, 3, 5, 7, 9]);
        assert_eq!(tasks[2].frames, vec![21, 23]);
        assert_eq!(s.task_count(), 3);
        s.chunk_size = 1;
        assert_eq!(s.task_count(), s.split(JobId(1)).unwrap().len() as u64);
        s.chunk_size = 0;
        assert_eq!(s.task_count(), 0);
    }

    #[test]
    fn bad_specs_get_typed_errors() {
        assert_eq!(
            spec(FrameRange::new(10, 1)).validate(),
            Err(JobSpecError::ReversedFrames { start: 10, end: 1 })
        );
        assert_eq!(
            spec(FrameRange::new(1, 5).with_step(0)).validate(),
            Err(JobSpecError::ZeroStep)
        );
        assert!(matches!(
            spec(FrameRange::new(0, 1_000_000)).validate(),
            Err(JobSpecError::TooManyFrames {
                frames: 1_000_001,
                ..
            })
        ));
        assert!(spec(FrameRange::new(1, 1_000_000)).validate().is_ok());
        let mut s = spec(FrameRange::new(1, 5));
        s.chunk_size = MAX_CHUNK_SIZE + 1;
        assert_eq!(
            s.validate(),
            Err(JobSpecError::ChunkTooLarge {
                chunk: MAX_CHUNK_SIZE + 1,
                max: MAX_CHUNK_SIZE
            })
        );
        s.chunk_size = 0;
        assert_eq!(s.validate(), Err(JobSpecError::ZeroChunkSize));
        let mut s = spec(FrameRange::new(1, 5));
        s.min_ib = f64::NAN;
        assert!(matches!(s.validate(), Err(JobSpecError::InvalidMinIb(_))));
        let mut s = spec(FrameRange::new(1, 5));
        s.settings.width = 0;
        assert!(matches!(
            s.validate(),
            Err(JobSpecError::InvalidSettings(_))
        ));
        // An environment path names a file on the workers' disks: refused.
        // An uploaded map must say how to read it and light a glTF scene.
        let mut s = spec(FrameRange::new(1, 5));
        s.settings.environment = Some("/etc/passwd".into());
        assert_eq!(s.validate(), Err(JobSpecError::EnvironmentPath));
        let mut s = spec(FrameRange::new(1, 5));
        s.environment = Some(EnvironmentRef {
            blob: ContentHash::of(b"map"),
            file_name: "studio.HDR".into(),
        });
        assert!(s.validate().is_ok());
        s.environment.as_mut().unwrap().file_name = "studio.png".into();
        assert_eq!(
            s.validate(),
            Err(JobSpecError::EnvironmentFileName("studio.png".into()))
        );
        s.environment.as_mut().unwrap().file_name = "studio.exr".into();
        s.scene.format = crate::renderer::SceneFormat::Blend;
        assert_eq!(s.validate(), Err(JobSpecError::EnvironmentNeedsGltf));
        // Transparent and coloured backgrounds travel in the settings.
        let mut s = spec(FrameRange::new(1, 5));
        s.settings.background = crate::renderer::Background::Transparent;
        assert!(s.validate().is_ok());
        s.settings.background = crate::renderer::Background::Color([0.2, 0.3, 0.4]);
        assert!(s.validate().is_ok());
        s.settings.background = crate::renderer::Background::Color([f32::NAN, 0.0, 0.0]);
        assert!(matches!(
            s.validate(),
            Err(JobSpecError::InvalidSettings(_))
        ));
        assert_eq!(
            "tiff".parse::<OutputFormat>(),
            Err(JobSpecError::UnknownFormat("tiff".into()))
        );
        assert_eq!("EXR".parse::<OutputFormat>(), Ok(OutputFormat::Exr));
    }

    #[test]
    fn tile_jobs_split_each_chunk_into_its_tiles() {
        let mut s = spec(FrameRange::new(1, 3));
        s.chunk_size = 2;
        s.settings.width = 64;
        s.settings.height = 48;
        s.tiles = Some("3x2".parse().unwrap());
        let tasks = s.split(JobId(1)).unwrap();
        assert_eq!(tasks.len(), 12);
        assert_eq!(s.task_count(), 12);
        assert_eq!(tasks[0].frames, vec![1, 2]);
        assert_eq!(tasks[6].frames, vec![3]);
        for t in &tasks {
            assert_eq!(t.region, s.task_region(t.id.index));
        }
        let frame: Vec<Rect> = tasks[..6].iter().map(|t| t.region.unwrap()).collect();
        assert_eq!(frame, s.tiles.unwrap().rects(64, 48));
        // Paid by area: the tiles of a chunk are paid what its frames are.
        let parts: usize = tasks[..6]
            .iter()
            .map(|t| s.task_share(t.id.index, t.frames.len()).0)
            .sum();
        assert_eq!(parts as u64 * 3, s.task_share(0, 2).1 * 2);
        s.tiles = None;
        assert_eq!(s.split(JobId(1)).unwrap()[0].region, None);
        assert_eq!(s.task_share(0, 2), (2, 3));
        // Bad grids are refused naming the field.
        for bad in ["0x2", "65x1", "1000x1000"] {
            s.tiles = Some(bad.parse().unwrap());
            let err = s.validate().unwrap_err();
            assert!(matches!(err, JobSpecError::Tiles(_)), "{bad}: {err:?}");
            assert!(err.to_string().starts_with("tiles "), "{err}");
        }
    }

    #[test]
    fn frame_ranges_parse() {
        assert_eq!(
            "1-24".parse::<FrameRange>().unwrap(),
            FrameRange::new(1, 24)
        );
        assert_eq!("7".parse::<FrameRange>().unwrap(), FrameRange::new(7, 7));
        assert_eq!("1-9:2".parse::<FrameRange>().unwrap().len(), 5);
        assert!("a-b".parse::<FrameRange>().is_err());
        assert_eq!(FrameRange::new(5, 1).len(), 0);
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Tasks are queued or running.
    Active,
    /// No new leases until resumed.
    Paused,
    /// Every frame accepted.
    Completed,
    /// A task ran out of attempts.
    Failed,
    /// Cancelled by the user.
    Cancelled,
}

impl JobState {
    /// Whether the job can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Active,
            Self::Paused,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
        .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// What was asked.
    pub spec: JobSpec,
    /// Current state.
    pub state: JobState,
    /// When it was submitted (ms since the Unix epoch).
    pub created_ms: u64,
    /// Price agreed at submission, in micro-credits.
    pub quoted_price: u64,
    /// Why the job is not progressing, when it is waiting (e.g. no worker
    /// meets its minimum IB).
    pub waiting_reason: Option<String>,
    /// Workers caught cheating on this job, or failing it too often: never
    /// offered any of its tasks again.
    #[serde(default)]
    pub blocklist: Vec<NodeId>,
    /// Every change of state, oldest first.
    #[serde(default)]
    pub history: Vec<JobStateChange>,
    /// What the renderer substitutes in the job's scene (default light,
    /// default camera, …), as found when the job was quoted.
    #[serde(default)]
    pub warnings: Vec<crate::renderer::RenderWarning>,
    /// Whether the watermarked scene copies of its accepted tasks were
    /// removed from blob storage (once its claim window closed).
    #[serde(default)]
    pub lease_copies_removed: bool,
    /// The account that submitted it and pays for it; only it and
    /// operators may see or act on the job. Jobs from before accounts have
    /// none and are the operators' alone.
    #[serde(default)]
    pub owner: Option<String>,
    /// The outputs asked for in the spec and where each is: pending until
    /// made after completion, then ready or failed. Kept on the record so
    /// that they survive a manager restart (a pending one is made again).
    #[serde(default)]
    pub outputs: Vec<crate::outputs::JobOutput>,
}

impl Job {
    /// When the job reached its current, terminal state, if it has.
    pub fn finished_ms(&self) -> Option<u64> {
        if !self.state.is_terminal() {
            return None;
        }
        self.history
            .iter()
            .rev()
            .find(|c| c.state == self.state)
            .map(|c| c.at_ms)
    }
}

/// One recorded change of a job's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStateChange {
    /// State entered.
    pub state: JobState,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why.
    pub note: String,
}

impl Job {
    /// Moves the job to `state`, recording when and why.
    pub fn set_state(&mut self, state: JobState, at_ms: u64, note: impl Into<String>) {
        self.state = state;
        self.history.push(JobStateChange {
            state,
            at_ms,
            note: note.into(),
        });
    }
}
