//! What clients and operators read back: quotes, job status pages,
//! listings of jobs and nodes, ledger totals.

use serde::{Deserialize, Serialize};

use super::Role;
use crate::ids::{JobId, NodeId, TaskId};
use crate::job::Job;
use crate::task::{FrameOutput, StatusChange, TaskStatus};

/// A price offer for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// Estimated IB-minutes of work.
    pub estimated_ibm: f64,
    /// Price per IB-minute in micro-credits.
    pub price_per_ibm: u64,
    /// Total in micro-credits.
    pub total_price: u64,
    /// Frames in the job.
    pub frames: u64,
    /// Tasks the job splits into.
    pub tasks: u64,
    /// What the manager's probe renderer substitutes in the scene (no
    /// lights, no camera, …), when it has one.
    #[serde(default)]
    pub warnings: Vec<crate::renderer::RenderWarning>,
}

/// A snapshot of a job for clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job record.
    pub job: Job,
    /// Tasks per status.
    pub counts: Vec<(TaskStatus, usize)>,
    /// Accepted frames so far, in frame order: those of the tasks from the
    /// page's first task up to `next_task`.
    pub frames: Vec<FrameOutput>,
    /// The task the next page starts at, when the job has more tasks than
    /// one reply carries (`StatusRequest::from_task`); `None` on the last
    /// page.
    #[serde(default)]
    pub next_task: Option<u32>,
    /// The page's tasks one by one, for a view of who renders what and
    /// what verification said; empty from managers that predate it.
    #[serde(default)]
    pub tasks: Vec<TaskDetail>,
}

/// One task of a job as its owner sees it: the per-task detail behind the
/// counts, so a dashboard can show each frame's state, worker and verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task's index in its job.
    pub index: u32,
    /// Frames it renders.
    pub frames: Vec<u32>,
    /// Where it is.
    pub status: TaskStatus,
    /// The worker holding its lease, or the one whose result it carries.
    pub worker: Option<NodeId>,
    /// Times it was leased.
    pub attempts: u32,
    /// Wall time its worker spent rendering the current result.
    pub render_ms: Option<u64>,
    /// Verification verdicts, oldest first: each entry into `Accepted` or
    /// `Rejected`, with its reason.
    pub verdicts: Vec<StatusChange>,
    /// Micro-credits paid out of the job's escrow for it (accepted tasks).
    pub paid: u64,
}

/// One job in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job.
    pub id: JobId,
    /// The account it belongs to.
    pub owner: Option<String>,
    /// Its state.
    pub state: crate::job::JobState,
    /// Higher runs first.
    pub priority: i32,
    /// Tags a worker must carry to render it.
    pub tags: Vec<String>,
    /// Frames in the job.
    pub frames: u64,
    /// Frames accepted so far.
    pub accepted_frames: u64,
    /// The agreed price, micro-credits.
    pub quoted_price: u64,
    /// When it was submitted (ms since the Unix epoch).
    pub created_ms: u64,
    /// Why it waits, when it does.
    pub waiting_reason: Option<String>,
}

/// One connected worker or verifier, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// The node.
    pub node: NodeId,
    /// Worker or verifier.
    pub role: Role,
    /// Inferix Bench index it declared (workers).
    pub declared_ib: f64,
    /// The index the manager measured from its lease-to-result times
    /// (workers that finished a task); it caps the declared one.
    #[serde(default)]
    pub measured_ib: Option<f64>,
    /// Its reputation with this manager.
    pub reputation: f64,
    /// Its stake on record, micro-credits (workers).
    pub stake: i64,
    /// The task it renders, or how many verifications it holds.
    pub task: Option<TaskId>,
    /// Verifications it was offered and has not answered (verifiers).
    pub pending_verifications: u64,
    /// When it last sent anything (ms since the Unix epoch).
    pub last_seen_ms: u64,
    /// `idle`, `busy`, or `silent` (lost a lease without a word).
    pub state: String,
    /// Capability tags it announced.
    pub tags: Vec<String>,
    /// Scene formats it renders (for a verifier: those it has not lost by
    /// failing to render them).
    #[serde(default)]
    pub formats: Vec<crate::renderer::SceneFormat>,
}

/// What an operator does to a connected node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// No new task; the current one finishes (before servicing a machine).
    Drain,
    /// Back into dispatch after a drain.
    Undrain,
    /// Disconnected, and refused when it says hello again, until enabled.
    Disable,
    /// Admitted again after a disable.
    Enable,
}

/// Transactions a ledger reply carries: the recent activity an operator's
/// dashboard lists, not an export of the ledger.
pub const LEDGER_RECENT: usize = 50;

/// Ledger totals, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Everything ever deposited into accounts, micro-credits.
    pub deposited: i64,
    /// What accounts hold now.
    pub account_balances: i64,
    /// Held in escrow by unfinished jobs this manager runs.
    pub escrow: i64,
    /// Slashed stakes not yet paid out to verifiers.
    pub penalty_pool: i64,
    /// Each account's balance, by name; empty from managers that predate
    /// it.
    #[serde(default)]
    pub accounts: Vec<(String, i64)>,
    /// The latest transactions, newest first, at most [`LEDGER_RECENT`].
    #[serde(default)]
    pub recent: Vec<crate::ledger::Transaction>,
}
