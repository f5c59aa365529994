//! Versioned protocol messages exchanged between nodes.
//!
//! Every message travels in an [`Envelope`] carrying the protocol version
//! and, for request/response pairs, a correlation id. Messages are plain
//! serde data, so any transport (in-process channels, QUIC frames) and any
//! codec can carry them.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, NodeId, TaskId};
use crate::image::Rect;
use crate::job::{EnvironmentRef, JobSpec, OutputFormat, SceneRef};
use crate::renderer::RenderSettings;
use crate::task::{FrameOutput, TaskResult};
use crate::ContentHash;

/// Version spoken by this build; peers with another version are refused.
/// 2: offers name the job's environment map, failures say their cause.
/// 3: content hashes travel as 32 bytes, not 64 hex digits.
/// 4: clients authenticate with accounts' API keys; jobs have owners;
/// listing jobs and nodes.
/// 5: nodes announce the scene formats they render; verifiers may answer
/// that they could not check (inconclusive).
/// 6–7: operator accounts and forced errors; status in pages.
/// 8: tile tasks (offers and verifications name a region, patches their
/// origin), outputs made by the network (`JobEvent::OutputsFinished`),
/// per-task detail in status, measured IB in node listings.
pub const PROTOCOL_VERSION: u16 = 8;

/// What a node is in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Schedules and tracks work.
    Manager,
    /// Renders.
    Worker,
    /// Checks renders.
    Verifier,
    /// Submits jobs.
    Client,
}

/// A message with its protocol version and correlation id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender's protocol version.
    pub version: u16,
    /// Request id chosen by the requester, echoed in the reply; 0 for
    /// messages that expect no reply.
    pub id: u64,
    /// The message.
    pub body: Message,
}

impl Envelope {
    /// A message that expects no reply.
    pub fn push(body: Message) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id: 0,
            body,
        }
    }
    /// A request or a reply with correlation id `id`.
    pub fn with_id(id: u64, body: Message) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id,
            body,
        }
    }
}

/// A worker's or verifier's introduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Role claimed.
    pub role: Role,
    /// Node id (derived from the node's key by the transport).
    pub node: NodeId,
    /// Inferix Bench index (workers).
    pub ib: f64,
    /// Capability tags.
    pub tags: Vec<String>,
    /// Renderer device class (bit-exact crops only within one class).
    pub device_class: String,
    /// Operator-issued admission token or client API token.
    pub token: Option<String>,
    /// Scene formats the node renders: a worker is leased only tasks of
    /// these, a verifier seated only on rounds whose re-renders need one of
    /// these. Empty for clients and for verifiers without a renderer.
    #[serde(default)]
    pub formats: Vec<crate::renderer::SceneFormat>,
}

/// A task offered to a worker under a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAssignment {
    /// The task.
    pub task: TaskId,
    /// Frames to render.
    pub frames: Vec<u32>,
    /// Scene to render (the prepared copy).
    pub scene: SceneRef,
    /// Image settings.
    pub settings: RenderSettings,
    /// Output file format.
    pub format: OutputFormat,
    /// Lease deadline (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// Attempt number of this lease; the signed result repeats it.
    pub attempt: u32,
    /// The environment map to light the scene with, fetched like the scene.
    #[serde(default)]
    pub environment: Option<EnvironmentRef>,
    /// The tile of each frame to render (a tile job's task), in frame
    /// pixels; `None` renders whole frames. The frame files are then the
    /// tile's size.
    #[serde(default)]
    pub region: Option<Rect>,
}

/// What a worker's failed task ran into, so that the manager charges the
/// failure to the right party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureCause {
    /// The render itself: the renderer, the scene or the device.
    #[default]
    Render,
    /// The blob store: the scene could not be fetched or a frame not
    /// stored. The manager checks its own store before believing it.
    Storage,
}

/// A region of one frame that a verifier re-renders and compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropChallenge {
    /// Frame number.
    pub frame: u32,
    /// Pixels to re-render.
    pub rect: Rect,
}

/// Work for a verifier: the frames to check and what to check them against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationAssignment {
    /// Unique id of this verification request.
    pub verification: u64,
    /// Task whose result is checked.
    pub task: TaskId,
    /// Frames claimed by the worker.
    pub frames: Vec<FrameOutput>,
    /// Expected size of each frame.
    pub width: u32,
    /// Expected size of each frame.
    pub height: u32,
    /// File format the frames are in.
    pub format: OutputFormat,
    /// Watermark patches every frame must show (Proof of Render), when any.
    pub watermark: Vec<crate::por::watermark::Patch>,
    /// Minimum Laplacian-energy contrast of every watermark rectangle.
    pub watermark_threshold: f64,
    /// Crops to re-render, drawn after the worker's commitment.
    pub challenges: Vec<CropChallenge>,
    /// The scene the worker was given (needed only to re-render crops).
    pub scene: Option<SceneRef>,
    /// Settings the worker rendered with.
    pub settings: RenderSettings,
    /// The worker's renderer device class: crops must match exactly within
    /// one class and within `crop_tolerance` across classes.
    pub worker_device_class: String,
    /// Largest per-channel difference (of 255) allowed across device classes.
    pub crop_tolerance: u8,
    /// The scene without watermark patches, when the frames carry them: a
    /// verifier that passes the result re-renders the patches' clean
    /// rectangles ([`crate::por::plan::clean_rects`]) from it, so that the
    /// customer receives frames without marks.
    #[serde(default)]
    pub clean_scene: Option<SceneRef>,
    /// The environment map the worker lit the scene with (for re-renders).
    #[serde(default)]
    pub environment: Option<EnvironmentRef>,
    /// For a tile job's task, the tile in frame pixels: the frames are
    /// then `width`×`height` images of that tile, and the watermark
    /// patches, challenges and clean rectangles are in the tile's own
    /// pixels; re-renders shift them by the tile's corner.
    #[serde(default)]
    pub region: Option<Rect>,
}

/// Clean pixels of one rectangle of one frame, rendered by a verifier from
/// the scene without watermark patches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanCrop {
    /// Frame number.
    pub frame: u32,
    /// Where the pixels go.
    pub rect: Rect,
    /// The pixels, encoded in the job's output format.
    #[serde(with = "serde_bytes")]
    pub image: Vec<u8>,
}

/// A verifier's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Verification request answered.
    pub verification: u64,
    /// Task checked.
    pub task: TaskId,
    /// Whether every frame passed. Meaningless when `inconclusive`.
    pub passed: bool,
    /// Why it failed, per failing check.
    pub reasons: Vec<String>,
    /// When the offer named a clean scene and the result passed: the clean
    /// pixels of every patch rectangle of every frame.
    #[serde(default)]
    pub clean: Vec<CleanCrop>,
    /// The verifier could not do its checks (it cannot render the scene's
    /// format, its render or a download failed), and says why. Not a pass
    /// and not a fail: the manager asks another verifier.
    #[serde(default)]
    pub inconclusive: Option<String>,
}

mod replies;
pub use replies::{
    JobStatus, JobSummary, LedgerTotals, NodeAction, NodeSummary, Quote, TaskDetail, LEDGER_RECENT,
};

/// Something that happened to a job, pushed to watchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEvent {
    /// A task's result was verified and accepted.
    TaskAccepted {
        /// Task.
        task: TaskId,
        /// Worker that rendered it.
        worker: NodeId,
        /// Frames accepted so far.
        accepted_frames: u64,
        /// Frames in the job.
        total_frames: u64,
    },
    /// A task's result failed verification.
    TaskRejected {
        /// Task.
        task: TaskId,
        /// Worker blamed.
        worker: NodeId,
        /// Why.
        reasons: Vec<String>,
    },
    /// A lease expired and the task was re-queued.
    TaskRequeued {
        /// Task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// The job cannot progress for now.
    Waiting {
        /// Why.
        reason: String,
    },
    /// Every frame accepted.
    Completed {
        /// Job.
        job: JobId,
    },
    /// The job failed.
    Failed {
        /// Why.
        reason: String,
    },
    /// The job was cancelled.
    Cancelled,
    /// A bad-result claim was decided.
    ClaimSettled {
        /// Claim number; 0 for a recall (the manager found a result bad
        /// after its worker was caught cheating on another, and refunded
        /// its frames unasked).
        claim: u64,
        /// Frames claimed.
        frames: Vec<u32>,
        /// Whether the re-render confirmed the frames were bad (the worker
        /// is slashed and the user refunded).
        upheld: bool,
        /// What the re-render showed.
        evidence: Vec<String>,
    },
    /// Every output of a completed job was made or failed (its status
    /// lists them); sent only for jobs that asked for outputs.
    OutputsFinished {
        /// Job.
        job: JobId,
        /// How many could not be made.
        failed: u32,
    },
}

impl JobEvent {
    /// The event's kind in snake case, as it is named in JSON, in the HTTP
    /// API's event stream and in metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TaskAccepted { .. } => "task_accepted",
            Self::TaskRejected { .. } => "task_rejected",
            Self::TaskRequeued { .. } => "task_requeued",
            Self::Waiting { .. } => "waiting",
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
            Self::ClaimSettled { .. } => "claim_settled",
            Self::OutputsFinished { .. } => "outputs_finished",
        }
    }
}

/// Machine-readable error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or its values are out of range.
    InvalidRequest,
    /// Unknown job or task.
    NotFound,
    /// Missing or wrong token/identity.
    Unauthorized,
    /// Different protocol version.
    VersionMismatch,
    /// Message not valid in this state or stream.
    UnexpectedMessage,
    /// The manager cannot serve it now (store down); retry later.
    Unavailable,
    /// An upload larger than the store accepts.
    TooLarge,
    /// A bug or backend failure.
    Internal,
    /// The account cannot pay the quote.
    PaymentRequired,
    /// Over one of the account's quotas (active jobs, frames per job).
    LimitExceeded,
    /// The request needs an operator's account.
    Forbidden,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// First message of a worker/verifier/client.
    Hello(Hello),
    /// The manager admitted the peer.
    Welcome {
        /// Manager's id.
        manager: NodeId,
        /// Largest blob the manager's store accepts: a peer that moves
        /// blobs through this connection refuses bigger uploads before
        /// sending a byte.
        max_blob_size: u64,
    },
    /// Manager → worker or verifier, answering its hello instead of a
    /// welcome: render this first ([`AdmissionProbe`]). The node answers
    /// with [`Message::ProbeDone`], which the manager answers with a
    /// welcome or a refusal.
    Probe(AdmissionProbe),
    /// Node → manager: its render of the probe, PNG-encoded.
    ProbeDone {
        /// The frame, PNG.
        png: Vec<u8>,
    },
    /// Liveness signal; also carries the worker's idle state.
    Heartbeat,
    /// Manager → worker.
    TaskOffer(TaskAssignment),
    /// Worker → manager while rendering.
    TaskProgress {
        /// Task.
        task: TaskId,
        /// Frame in progress.
        frame: u32,
        /// Fraction of the task done.
        fraction: f32,
    },
    /// Worker → manager: finished. It names its task, so a result that
    /// arrives after the worker was given another lease is refused instead
    /// of being taken for the new one.
    TaskDone {
        /// The task rendered.
        task: TaskId,
        /// Frames, commitment and signature.
        result: TaskResult,
    },
    /// Worker → manager: could not render.
    TaskFailed {
        /// Task.
        task: TaskId,
        /// Why.
        error: String,
        /// What failed: the render, or the blob store the worker reads
        /// scenes from and writes frames to.
        cause: FailureCause,
    },
    /// Manager → worker: the lease is void (expired or job cancelled);
    /// stop rendering it.
    TaskRevoked {
        /// Task.
        task: TaskId,
    },
    /// Worker → manager: giving the task back (shutdown).
    TaskReleased {
        /// Task.
        task: TaskId,
    },
    /// Manager → verifier.
    VerifyOffer(VerificationAssignment),
    /// Verifier → manager.
    VerifyDone(Verdict),
    /// Client: price a job.
    QuoteRequest {
        /// The job.
        spec: JobSpec,
    },
    /// Manager: the price.
    QuoteReply(Quote),
    /// Client: run a job at the quoted price.
    Submit {
        /// The job.
        spec: JobSpec,
    },
    /// Manager: accepted.
    Submitted {
        /// New job id.
        job: JobId,
        /// The price agreed.
        quote: Quote,
    },
    /// Client: status of a job, with the accepted frames of its tasks from
    /// `from_task` on (a page; the reply says where the next starts).
    StatusRequest {
        /// Job.
        job: JobId,
        /// Index of the first task whose frames the reply lists (0 for the
        /// first page).
        from_task: u32,
    },
    /// Manager: status.
    StatusReply(Box<JobStatus>),
    /// Client: stream events of a job.
    Watch {
        /// Job.
        job: JobId,
    },
    /// Manager → client: an event of a watched job.
    Event {
        /// Job.
        job: JobId,
        /// What happened.
        event: JobEvent,
    },
    /// Client: cancel a job.
    Cancel {
        /// Job.
        job: JobId,
    },
    /// Client: stop leasing a job's tasks (running ones finish).
    Pause {
        /// Job.
        job: JobId,
    },
    /// Client: lease a paused job's tasks again.
    Resume {
        /// Job.
        job: JobId,
    },
    /// Client: claims that accepted frames are bad. Within the job's
    /// confirmation window the frames are re-rendered by another node and
    /// compared; the outcome arrives as [`JobEvent::ClaimSettled`].
    Claim {
        /// Job.
        job: JobId,
        /// Frames claimed bad.
        frames: Vec<u32>,
        /// What the user saw.
        reason: String,
    },
    /// Manager: a claim was filed and is being checked.
    ClaimFiled {
        /// Claim number, repeated in the settlement event.
        claim: u64,
    },
    /// Fetch a blob; answered by `BlobChunk`s with the request's id.
    BlobGet {
        /// Blob address.
        hash: ContentHash,
    },
    /// One chunk of a blob being downloaded.
    BlobChunk {
        /// Bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Whether this is the final chunk.
        last: bool,
    },
    /// One chunk of an upload; every chunk of one upload carries the same
    /// envelope id, and the last is answered by `BlobStored`.
    BlobPut {
        /// Bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Whether this is the final chunk.
        last: bool,
    },
    /// Upload finished.
    BlobStored {
        /// Address of what was stored.
        hash: ContentHash,
        /// Size in bytes.
        size: u64,
    },
    /// Ask for a blob's size.
    BlobSize {
        /// Blob address.
        hash: ContentHash,
    },
    /// A blob's size, `None` when absent.
    BlobSizeReply {
        /// Size in bytes.
        size: Option<u64>,
    },
    /// Client: the jobs of its account, newest first; with `all`, an
    /// operator's request for every account's jobs.
    ListJobs {
        /// Every account's jobs (operators only).
        all: bool,
    },
    /// Manager: jobs.
    JobList(Vec<JobSummary>),
    /// Operator: the connected workers and verifiers.
    ListNodes,
    /// Manager: nodes.
    NodeList(Vec<NodeSummary>),
    /// Operator: drain, undrain, disable or enable a node.
    NodeControl {
        /// The node.
        node: NodeId,
        /// What to do.
        action: NodeAction,
    },
    /// Operator: the ledger's totals.
    LedgerRequest,
    /// Manager: the ledger's totals.
    LedgerReply(LedgerTotals),
    /// Manager: generic success reply.
    Ok,
    /// Any node: the request failed.
    Error {
        /// Kind.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

/// A short render a manager asks of a worker or verifier before admitting
/// it: a small scene it sends inline, at a seed drawn for this probe so the
/// answer cannot be looked up. The manager renders the same and compares:
/// a node that cannot render the format it announced is refused, and the
/// device class its pixels match is the one its results are compared as,
/// whatever class it claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdmissionProbe {
    /// The scene (glTF binary).
    pub scene_glb: Vec<u8>,
    /// Settings to render it with (small size, few samples, a fresh seed).
    pub settings: crate::renderer::RenderSettings,
    /// The frame to render.
    pub frame: u32,
    /// How long the node has to answer, ms.
    pub deadline_ms: u64,
}

impl Message {
    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Welcome { .. } => "welcome",
            Self::Probe(_) => "probe",
            Self::ProbeDone { .. } => "probe_done",
            Self::Heartbeat => "heartbeat",
            Self::TaskOffer(_) => "task_offer",
            Self::TaskProgress { .. } => "task_progress",
            Self::TaskDone { .. } => "task_done",
            Self::TaskFailed { .. } => "task_failed",
            Self::TaskRevoked { .. } => "task_revoked",
            Self::TaskReleased { .. } => "task_released",
            Self::VerifyOffer(_) => "verify_offer",
            Self::VerifyDone(_) => "verify_done",
            Self::QuoteRequest { .. } => "quote_request",
            Self::QuoteReply(_) => "quote_reply",
            Self::Submit { .. } => "submit",
            Self::Submitted { .. } => "submitted",
            Self::StatusRequest { .. } => "status_request",
            Self::StatusReply(_) => "status_reply",
            Self::Watch { .. } => "watch",
            Self::Event { .. } => "event",
            Self::Cancel { .. } => "cancel",
            Self::Claim { .. } => "claim",
            Self::Pause { .. } => "pause",
            Self::Resume { .. } => "resume",
            Self::ClaimFiled { .. } => "claim_filed",
            Self::BlobGet { .. } => "blob_get",
            Self::BlobChunk { .. } => "blob_chunk",
            Self::BlobPut { .. } => "blob_put",
            Self::BlobStored { .. } => "blob_stored",
            Self::BlobSize { .. } => "blob_size",
            Self::BlobSizeReply { .. } => "blob_size_reply",
            Self::ListJobs { .. } => "list_jobs",
            Self::JobList(_) => "job_list",
            Self::ListNodes => "list_nodes",
            Self::NodeList(_) => "node_list",
            Self::NodeControl { .. } => "node_control",
            Self::LedgerRequest => "ledger_request",
            Self::LedgerReply(_) => "ledger_reply",
            Self::Ok => "ok",
            Self::Error { .. } => "error",
        }
    }

    /// An error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_kind_is_its_json_name() {
        let ev = JobEvent::Waiting { reason: "r".into() };
        let json = serde_json::to_value(&ev).unwrap();
        assert!(json.get(ev.kind()).is_some(), "{json}");
        assert_eq!(
            serde_json::to_value(JobEvent::Cancelled).unwrap(),
            "cancelled"
        );
    }

    #[test]
    fn envelopes_round_trip_through_json() {
        let e = Envelope::with_id(9, Message::Cancel { job: JobId(5) });
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&s).unwrap(), e);
        assert!(
            serde_json::from_str::<Envelope>(r#"{"version":1,"id":0,"body":{"nope":{}}}"#).is_err()
        );
    }
}
