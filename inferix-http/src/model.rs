//! The JSON documents of the HTTP API. They are the API's own, not the
//! wire protocol's, so that the protocol can change without breaking HTTP
//! clients; each converts from the protocol's records.

use std::collections::BTreeMap;

use inferix_core::ids::JobId;
use inferix_core::job::{EnvironmentRef, FrameRange, JobSpec, OutputFormat, SceneRef};
use inferix_core::ledger::Account;
use inferix_core::protocol::{JobStatus, JobSummary, NodeSummary, Quote, TaskDetail};
use inferix_core::renderer::SceneFormat;
use inferix_core::ContentHash;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

mod job_document;
pub(crate) use job_document::job_spec;
pub use job_document::{BlobRef, JobBody, JobDocument, RenderDocument};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Kind: `invalid_request`, `not_found`, `unauthorized`, `forbidden`,
    /// `payment_required`, `limit_exceeded`, `too_large`, `unavailable`,
    /// `manager_unreachable`, `internal`, `not_ready` and `output_failed`
    /// (a job output not made yet, or that could not be made).
    pub code: String,
    /// Explanation for people.
    pub message: String,
}

/// An uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UploadView {
    /// Its content hash, which a job request names.
    pub hash: String,
    /// Bytes stored.
    pub size: u64,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    360
}
fn default_samples() -> u32 {
    64
}
fn default_chunk() -> u32 {
    5
}
fn default_format() -> String {
    "png".into()
}

/// A job to price or run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Hash of the uploaded scene (`POST /api/scenes`).
    pub scene: String,
    /// The scene's file name; its extension (`.glb`, `.gltf`, `.blend`)
    /// tells its format.
    pub scene_name: String,
    /// Frames: `N`, `A-B` or `A-B:STEP`.
    pub frames: String,
    /// Width in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Samples per pixel.
    #[serde(default = "default_samples")]
    pub samples: u32,
    /// Frames per task.
    #[serde(default = "default_chunk")]
    pub chunk: u32,
    /// `png` or `exr`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Tags every worker rendering the job must carry.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Minimum Inferix Bench index of its workers.
    #[serde(default)]
    pub min_ib: f64,
    /// Hash of an uploaded `.hdr`/`.exr` environment map lighting a glTF
    /// scene, with its file name in `environment_name`.
    #[serde(default)]
    pub environment: Option<String>,
    /// The environment map's file name.
    #[serde(default)]
    pub environment_name: Option<String>,
}

fn hash(field: &str, text: &str) -> Result<ContentHash, ApiError> {
    text.parse()
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

impl JobRequest {
    /// The job spec it describes; a wrong field is named in the error.
    pub fn to_spec(&self) -> Result<JobSpec, ApiError> {
        let format =
            SceneFormat::from_path(std::path::Path::new(&self.scene_name)).ok_or_else(|| {
                ApiError::invalid(format!(
                    "scene_name {:?}: expected a .glb, .gltf or .blend file",
                    self.scene_name
                ))
            })?;
        let scene = SceneRef {
            blob: hash("scene", &self.scene)?,
            format,
            file_name: self.scene_name.clone(),
        };
        let frames: FrameRange = self
            .frames
            .parse()
            .map_err(|e| ApiError::invalid(format!("frames {:?}: {e}", self.frames)))?;
        let mut spec = JobSpec::new(scene, frames);
        spec.settings.width = self.width;
        spec.settings.height = self.height;
        spec.settings.samples = self.samples;
        spec.chunk_size = self.chunk;
        spec.format = self
            .format
            .parse::<OutputFormat>()
            .map_err(|e| ApiError::invalid(format!("format {:?}: {e}", self.format)))?;
        spec.priority = self.priority;
        spec.tags = self.tags.clone();
        spec.min_ib = self.min_ib;
        spec.environment = match (&self.environment, &self.environment_name) {
            (None, _) => None,
            (Some(h), name) => Some(EnvironmentRef {
                blob: hash("environment", h)?,
                file_name: name.clone().unwrap_or_else(|| "environment.hdr".into()),
            }),
        };
        spec.validate()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(spec)
    }
}

/// A price for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    /// Estimated IB-minutes of work.
    pub estimated_ibm: f64,
    /// Micro-credits per IB-minute.
    pub price_per_ibm: u64,
    /// Total, micro-credits.
    pub total_price: u64,
    /// Frames in the job.
    pub frames: u64,
    /// Tasks it splits into.
    pub tasks: u64,
    /// What the renderer substitutes in the scene (no light, no camera…).
    pub warnings: Vec<String>,
}

impl From<Quote> for QuoteView {
    fn from(q: Quote) -> Self {
        Self {
            estimated_ibm: q.estimated_ibm,
            price_per_ibm: q.price_per_ibm,
            total_price: q.total_price,
            frames: q.frames,
            tasks: q.tasks,
            warnings: q.warnings.iter().map(|w| w.to_string()).collect(),
        }
    }
}

/// A submitted job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubmittedView {
    /// Its id.
    pub job: String,
    /// The price agreed, escrowed from the account.
    pub quote: QuoteView,
}

/// One accepted frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrameView {
    /// Frame number.
    pub frame: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Where to download it.
    pub url: String,
}

/// A job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub owner: Option<String>,
    /// `active`, `paused`, `completed`, `failed` or `cancelled`.
    pub state: String,
    /// Frames in the job.
    pub frames_total: u64,
    /// Frames accepted so far.
    pub frames_accepted: u64,
    /// Tasks per state (`queued`, `leased`, `verifying`, `accepted`, …).
    pub tasks: BTreeMap<String, usize>,
    /// Higher runs first.
    pub priority: i32,
    /// Tags its workers must carry.
    pub tags: Vec<String>,
    /// Price agreed, micro-credits.
    pub quoted_price: u64,
    /// When it was submitted (ms since the Unix epoch).
    pub created_ms: u64,
    /// Why it waits, when it does.
    pub waiting_reason: Option<String>,
    /// What the renderer substitutes in the scene.
    pub warnings: Vec<String>,
    /// Accepted frames, in frame order.
    pub frames: Vec<FrameView>,
    /// Paid so far out of the escrow for accepted tasks, micro-credits.
    pub paid: u64,
    /// The tasks one by one, in task order.
    pub task_details: Vec<TaskView>,
    /// Files made from the frames once the job completed, as asked for.
    #[serde(default)]
    pub outputs: Vec<OutputView>,
}

/// One output of a job (video, archive, preview, contact sheet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputView {
    /// Its name: `mp4`, `zip`, `tar`, `jpeg`, `png16`, `exr-half`, `gif`, `webp` or
    /// `contact-sheet`.
    pub name: String,
    /// The file's name when downloaded.
    pub file_name: String,
    /// `pending`, `ready` or `failed`.
    pub state: String,
    /// Content hash of the file, once ready.
    pub blob: Option<String>,
    /// Its size in bytes, once ready.
    pub size: Option<u64>,
    /// Why it could not be made, when it failed.
    pub reason: Option<String>,
    /// Where to download it, once ready.
    pub url: Option<String>,
}

impl OutputView {
    fn of(job: &str, o: &inferix_core::outputs::JobOutput) -> Self {
        use inferix_core::outputs::OutputState;
        let (state, blob, size, reason) = match &o.state {
            OutputState::Pending => ("pending", None, None, None),
            OutputState::Ready { blob, size } => ("ready", Some(blob.to_hex()), Some(*size), None),
            OutputState::Failed { reason } => ("failed", None, None, Some(reason.clone())),
        };
        Self {
            name: o.name().into(),
            file_name: o.request.file_name().into(),
            state: state.into(),
            url: blob
                .is_some()
                .then(|| format!("/api/jobs/{job}/outputs/{}", o.name())),
            blob,
            size,
            reason,
        }
    }
}

/// One task of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// Its index in the job.
    pub index: u32,
    /// Frames it renders.
    pub frames: Vec<u32>,
    /// `queued`, `leased`, `rendered`, `verifying`, `accepted`,
    /// `rejected`, `failed` or `cancelled`.
    pub state: String,
    /// The worker holding its lease, or whose result it carries.
    pub worker: Option<String>,
    /// Times it was leased.
    pub attempts: u32,
    /// Wall time its worker spent rendering the current result.
    pub render_ms: Option<u64>,
    /// Verification verdicts, oldest first.
    pub verdicts: Vec<VerdictView>,
    /// Paid out of the escrow for it, micro-credits.
    pub paid: u64,
}

/// A verification verdict on a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerdictView {
    /// `accepted` or `rejected`.
    pub state: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why: `verified`, or what failed.
    pub note: String,
}

impl From<TaskDetail> for TaskView {
    fn from(t: TaskDetail) -> Self {
        Self {
            index: t.index,
            frames: t.frames,
            state: t.status.as_str().into(),
            worker: t.worker.map(|w| w.to_string()),
            attempts: t.attempts,
            render_ms: t.render_ms,
            verdicts: t
                .verdicts
                .into_iter()
                .map(|v| VerdictView {
                    state: v.status.as_str().into(),
                    at_ms: v.at_ms,
                    note: v.note,
                })
                .collect(),
            paid: t.paid,
        }
    }
}

impl From<JobStatus> for JobView {
    fn from(s: JobStatus) -> Self {
        let id = s.job.id.to_string();
        Self {
            frames: s
                .frames
                .iter()
                .map(|f| FrameView {
                    frame: f.frame,
                    width: f.width,
                    height: f.height,
                    url: format!("/api/jobs/{id}/frames/{}", f.frame),
                })
                .collect(),
            id,
            owner: s.job.owner.clone(),
            state: s.job.state.as_str().into(),
            frames_total: s.job.spec.frames.len(),
            frames_accepted: s.frames.len() as u64,
            tasks: s
                .counts
                .iter()
                .map(|(st, n)| (st.as_str().to_string(), *n))
                .collect(),
            priority: s.job.spec.priority,
            tags: s.job.spec.tags.clone(),
            quoted_price: s.job.quoted_price,
            created_ms: s.job.created_ms,
            waiting_reason: s.job.waiting_reason.clone(),
            warnings: s.job.warnings.iter().map(|w| w.to_string()).collect(),
            paid: s.tasks.iter().map(|t| t.paid).sum(),
            task_details: s.tasks.into_iter().map(Into::into).collect(),
            outputs: s
                .job
                .outputs
                .iter()
                .map(|o| OutputView::of(&s.job.id.to_string(), o))
                .collect(),
        }
    }
}

/// One job in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSummaryView {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub owner: Option<String>,
    /// Its state.
    pub state: String,
    /// Frames in the job.
    pub frames_total: u64,
    /// Frames accepted so far.
    pub frames_accepted: u64,
    /// Higher runs first.
    pub priority: i32,
    /// Tags its workers must carry.
    pub tags: Vec<String>,
    /// Price agreed, micro-credits.
    pub quoted_price: u64,
    /// When it was submitted (ms since the Unix epoch).
    pub created_ms: u64,
    /// Why it waits, when it does.
    pub waiting_reason: Option<String>,
}

impl From<JobSummary> for JobSummaryView {
    fn from(j: JobSummary) -> Self {
        Self {
            id: j.id.to_string(),
            owner: j.owner,
            state: j.state.as_str().into(),
            frames_total: j.frames,
            frames_accepted: j.accepted_frames,
            priority: j.priority,
            tags: j.tags,
            quoted_price: j.quoted_price,
            created_ms: j.created_ms,
            waiting_reason: j.waiting_reason,
        }
    }
}

/// A connected worker or verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Its id.
    pub node: String,
    /// `worker` or `verifier`.
    pub role: String,
    /// Inferix Bench index it declared (workers).
    pub declared_ib: f64,
    /// The index the manager measured from its lease-to-result times,
    /// once it finished a task (workers); it caps the declared one.
    pub measured_ib: Option<f64>,
    /// Its reputation with this manager.
    pub reputation: f64,
    /// Its stake, micro-credits (workers).
    pub stake: i64,
    /// `idle`, `busy` or `silent`.
    pub state: String,
    /// The task it renders.
    pub task: Option<String>,
    /// Verifications it holds (verifiers).
    pub pending_verifications: u64,
    /// When it last sent anything (ms since the Unix epoch).
    pub last_seen_ms: u64,
    /// Capability tags.
    pub tags: Vec<String>,
    /// Scene formats it renders: `gltf`, `blend`.
    pub formats: Vec<String>,
}

impl From<NodeSummary> for NodeView {
    fn from(n: NodeSummary) -> Self {
        Self {
            node: n.node.to_string(),
            role: format!("{:?}", n.role).to_lowercase(),
            declared_ib: n.declared_ib,
            measured_ib: n.measured_ib,
            reputation: n.reputation,
            stake: n.stake,
            state: n.state,
            task: n.task.map(|t| t.to_string()),
            pending_verifications: n.pending_verifications,
            last_seen_ms: n.last_seen_ms,
            tags: n.tags,
            formats: n
                .formats
                .iter()
                .map(|f| format!("{f:?}").to_lowercase())
                .collect(),
        }
    }
}

/// A claim that accepted frames are bad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Frames claimed bad.
    pub frames: Vec<u32>,
    /// What is wrong with them.
    pub reason: String,
}

/// A filed claim; its outcome arrives as a `claim_settled` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    /// Claim number.
    pub claim: u64,
}

/// What a pause, resume or cancel did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    /// The job.
    pub job: String,
    /// `paused`, `resumed` or `cancelled`.
    pub done: String,
}

/// What an operator did to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeActionView {
    /// The node.
    pub node: String,
    /// `drain`, `undrain`, `disable` or `enable`.
    pub done: String,
}

/// The ledger's totals, micro-credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LedgerView {
    /// Everything ever deposited into accounts.
    pub deposited: i64,
    /// What accounts hold now.
    pub account_balances: i64,
    /// Held in escrow by unfinished jobs.
    pub escrow: i64,
    /// Slashed stakes not yet paid out to verifiers.
    pub penalty_pool: i64,
    /// Each account's balance.
    pub accounts: Vec<BalanceView>,
    /// The latest transactions, newest first.
    pub recent: Vec<TransactionView>,
}

/// An account's balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    /// The account's name.
    pub account: String,
    /// Micro-credits it holds.
    pub balance: i64,
}

/// A ledger transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransactionView {
    /// Its unique id (`pay:<task>`, `deposit:…`).
    pub id: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why.
    pub memo: String,
    /// Its postings, summing to zero.
    pub postings: Vec<PostingView>,
}

/// One line of a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PostingView {
    /// The ledger account: `user:NAME`, `job:ID`, `worker:NODE`,
    /// `verifier:NODE`, `stake:NODE`, `operator_stake:NAME`,
    /// `claim_bond:ID`, `penalty_pool` or `external`.
    pub account: String,
    /// Micro-credits; positive credits the account.
    pub amount: i64,
}

/// A ledger account's name as the API spells it: a kind and its owner,
/// stable for clients (not the Rust debug form).
fn account_name(a: &Account) -> String {
    match a {
        Account::Job(j) => format!("job:{j}"),
        Account::Worker(n) => format!("worker:{n}"),
        Account::Verifier(n) => format!("verifier:{n}"),
        Account::Stake(n) => format!("stake:{n}"),
        Account::PenaltyPool => "penalty_pool".into(),
        Account::User(name) => format!("user:{name}"),
        Account::External => "external".into(),
        Account::ClaimBond(j) => format!("claim_bond:{j}"),
        Account::OperatorStake(name) => format!("operator_stake:{name}"),
    }
}

impl From<inferix_core::protocol::LedgerTotals> for LedgerView {
    fn from(t: inferix_core::protocol::LedgerTotals) -> Self {
        Self {
            deposited: t.deposited,
            account_balances: t.account_balances,
            escrow: t.escrow,
            penalty_pool: t.penalty_pool,
            accounts: t
                .accounts
                .into_iter()
                .map(|(account, balance)| BalanceView { account, balance })
                .collect(),
            recent: t
                .recent
                .into_iter()
                .map(|tx| TransactionView {
                    id: tx.id,
                    at_ms: tx.at_ms,
                    memo: tx.memo,
                    postings: tx
                        .postings
                        .iter()
                        .map(|p| PostingView {
                            account: account_name(&p.account),
                            amount: p.amount,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Parses a job id from a path.
pub(crate) fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("job {text} not found")))
}
