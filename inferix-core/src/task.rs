//! The task lifecycle as an explicit state machine.
//!
//! ```text
//! Queued → Leased → Rendered → Verifying → Accepted
//!    ↑        │                     │
//!    └────────┴──── (expiry) ─── Rejected → Queued | Failed
//! ```
//! plus `Cancelled` from any live state and `Failed` once retries run out.
//! Every change goes through [`Task::transition`], so an illegal change is a
//! typed error rather than silent corruption, and every change is recorded
//! in the task's history with its time.

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, TaskId};
use crate::ContentHash;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds a lease on it.
    Leased,
    /// The worker reported a result; not yet checked.
    Rendered,
    /// Verifiers are checking the result.
    Verifying,
    /// Verified and credited (terminal).
    Accepted,
    /// Verification failed; will be re-queued or failed.
    Rejected,
    /// Gave up after too many attempts (terminal).
    Failed,
    /// The job was cancelled (terminal).
    Cancelled,
}

impl TaskStatus {
    /// Every status, for iteration.
    pub const ALL: [TaskStatus; 8] = [
        Self::Queued,
        Self::Leased,
        Self::Rendered,
        Self::Verifying,
        Self::Accepted,
        Self::Rejected,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Accepted | Self::Failed | Self::Cancelled)
    }

    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Queued, Leased)
                | (Leased, Rendered)
                | (Leased, Queued)
                | (Leased, Failed)
                | (Rendered, Verifying)
                | (Rendered, Queued)
                | (Rendered, Failed)
                | (Verifying, Accepted)
                | (Verifying, Rejected)
                | (Verifying, Rendered)
                | (Rejected, Queued)
                | (Rejected, Failed)
        ) || (to == Cancelled && !self.is_terminal())
    }

    /// Stable lower-case name (storage, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Leased => "leased",
            Self::Rendered => "rendered",
            Self::Verifying => "verifying",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown task status {s:?}"))
    }
}

/// An illegal lifecycle change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task:?} cannot go from {from:?} to {to:?}")]
pub struct TransitionError {
    /// The task.
    pub task: TaskId,
    /// Its status.
    pub from: TaskStatus,
    /// The refused target.
    pub to: TaskStatus,
}

/// A worker's time-limited claim on a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Worker holding the task.
    pub worker: NodeId,
    /// Manager that granted the lease.
    pub manager: NodeId,
    /// Milliseconds since the Unix epoch after which the lease is void.
    pub deadline_ms: u64,
    /// The prepared (watermarked) scene copy given with this lease; the
    /// worker's signed result must name it.
    #[serde(default)]
    pub scene: Option<ContentHash>,
}

/// One delivered frame, identified by the hash of its decoded pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameOutput {
    /// Frame number.
    pub frame: u32,
    /// BLAKE3 of the decoded 8-bit pixels (see `Rgb8Image::pixel_hash`).
    pub pixel_hash: ContentHash,
    /// Blob holding the encoded file.
    pub blob: ContentHash,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Merkle root over the frame's pixel tiles (see [`crate::por::merkle`]),
    /// so a challenged region can be checked against the commitment.
    #[serde(default)]
    pub tile_root: ContentHash,
}

/// What a worker reports for a finished task: a commitment to the pixels of
/// every frame, signed with the worker's node key before any challenge is
/// drawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Worker that rendered it.
    pub worker: NodeId,
    /// One entry per frame, in the task's order.
    pub frames: Vec<FrameOutput>,
    /// Wall time the worker spent rendering.
    pub render_ms: u64,
    /// Lease this result answers (the task's attempt number), so a result
    /// of an earlier lease cannot be replayed into a later one.
    #[serde(default)]
    pub attempt: u32,
    /// Scene blob the worker rendered (the prepared, watermarked copy).
    #[serde(default)]
    pub scene: ContentHash,
    /// Renderer device class of the worker (exact crop comparison only
    /// within one class).
    #[serde(default)]
    pub device_class: String,
    /// The worker's ed25519 public key; the worker's node id derives from it.
    #[serde(default)]
    pub public_key: Vec<u8>,
    /// ed25519 signature over [`TaskResult::signing_bytes`].
    #[serde(default)]
    pub signature: Vec<u8>,
}

/// Something that signs with a node's ed25519 key.
pub trait Signer: Send + Sync {
    /// The 32-byte public key.
    fn public_key(&self) -> [u8; 32];
    /// A 64-byte signature of `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

impl TaskResult {
    /// The bytes a worker signs: everything but the signature, bound to the
    /// task, in a fixed, domain-separated encoding.
    pub fn signing_bytes(&self, task: TaskId) -> Vec<u8> {
        #[derive(Serialize)]
        struct Signed<'a> {
            domain: &'static str,
            task: TaskId,
            worker: NodeId,
            attempt: u32,
            scene: ContentHash,
            device_class: &'a str,
            frames: &'a [FrameOutput],
            render_ms: u64,
            public_key: &'a [u8],
        }
        serde_json::to_vec(&Signed {
            domain: "inferix/result/v1",
            task,
            worker: self.worker,
            attempt: self.attempt,
            scene: self.scene,
            device_class: &self.device_class,
            frames: &self.frames,
            render_ms: self.render_ms,
            public_key: &self.public_key,
        })
        .expect("plain data serialises")
    }

    /// The commitment: a hash of the signed bytes. Crop challenges are
    /// drawn from it, so they cannot exist before the worker commits.
    pub fn commitment(&self, task: TaskId) -> ContentHash {
        ContentHash::of(&self.signing_bytes(task))
    }

    /// Fills in the key and signature with `signer`.
    pub fn sign(&mut self, task: TaskId, signer: &dyn Signer) {
        self.public_key = signer.public_key().to_vec();
        self.signature = signer.sign(&self.signing_bytes(task)).to_vec();
    }
}

/// One recorded change of status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// New status.
    pub status: TaskStatus,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why, for humans.
    pub note: String,
}

/// Why a lease ended without an accepted result, which decides who is
/// charged for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Lost through the worker: it vanished, froze, stopped making
    /// progress, handed the task back or sent a result that was refused.
    /// The worker is excluded from the task; the job's retry budget is not
    /// charged, since another worker will most likely succeed.
    Worker(NodeId),
    /// An attempt that failed in a way that may follow the task: the
    /// renderer failed on it, or verifiers rejected its result. The worker
    /// is excluded and the task charged, so a scene that defeats every
    /// renderer fails its job instead of circling forever.
    Attempt(NodeId),
    /// The manager took the task back (to move it to a faster worker, or
    /// because it could not prepare the lease): nobody is excluded or
    /// charged.
    Manager,
}

/// A task as stored: spec, status, lease, result and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// Frames to render.
    pub frames: Vec<u32>,
    /// Current status.
    pub status: TaskStatus,
    /// Set while `Leased`.
    pub lease: Option<Lease>,
    /// Set from `Rendered` on.
    pub result: Option<TaskResult>,
    /// Times the task has been leased (each lease's attempt number).
    pub attempts: u32,
    /// Failed attempts charged to the task itself (see [`Fault::Attempt`]):
    /// the job's retry budget counts these, not leases lost through a
    /// worker, so a vanishing or frozen worker cannot fail a job.
    #[serde(default)]
    pub failures: u32,
    /// Workers that failed or cheated on this task; never offered it again.
    pub excluded: Vec<NodeId>,
    /// The manager holding the task's verification round while it is
    /// `Verifying` (cleared when it leaves): a manager that restarts knows
    /// its own rounds were lost with the old process and opens them again
    /// at once, while other managers' rounds are left to their managers.
    #[serde(default)]
    pub round_manager: Option<NodeId>,
    /// Optimistic-concurrency version, bumped by the store on every update.
    pub version: u64,
    /// Every status change, oldest first.
    pub history: Vec<StatusChange>,
    /// The frames a customer receives, once accepted: the worker's frames
    /// with their watermark rectangles replaced by clean pixels. Empty when
    /// the frames carried no watermark (they are delivered as rendered).
    #[serde(default)]
    pub delivered: Vec<DeliveredFrame>,
    /// Bad-result claims filed on the task's delivered frames. A frame is
    /// claimed at most once, so they never overlap.
    #[serde(default)]
    pub claims: Vec<TaskClaim>,
    /// The account that runs the worker of the current lease and result,
    /// when that worker joined with an account's key: its stake answers
    /// for the result, and none of its verifiers may judge it. Cleared
    /// with the result.
    #[serde(default)]
    pub operator: Option<String>,
    /// For the first tile task of a tile job's chunk, once every tile of
    /// the chunk is accepted: the whole frames stitched from the tiles'
    /// delivered files, which are what the customer receives.
    #[serde(default)]
    pub stitched: Vec<FrameOutput>,
    /// The verifiers whose votes accepted the result, kept so that a
    /// restarted manager can still recall it if its worker is caught
    /// later (see `inferix_manager::recall`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_by: Vec<NodeId>,
}

/// A bad-result claim on frames of one task, as the task store keeps it: a
/// claim outlives the manager that received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskClaim {
    /// The claimed frames (of this task).
    pub frames: Vec<u32>,
    /// What the claimant says is wrong.
    pub reason: String,
    /// When it was filed (ms since the Unix epoch).
    pub filed_ms: u64,
    /// Micro-credits the claimant put up, held until the claim is decided:
    /// returned when upheld, forfeited to the penalty pool when dismissed.
    pub bond: i64,
    /// The ledger account that paid the bond (and gets the refund).
    pub payer: crate::ledger::Account,
    /// `None` while it is checked; then whether it was upheld.
    pub upheld: Option<bool>,
}

impl TaskClaim {
    /// A name unique among the task's claims (frames are claimed once):
    /// the ledger ids of its bond, refund and settlement derive from it.
    pub fn key(&self, task: TaskId) -> String {
        format!(
            "{task}:{}",
            self.frames.first().copied().unwrap_or_default()
        )
    }
}

/// A frame as delivered to the customer (see [`Task::delivered`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredFrame {
    /// Frame number.
    pub frame: u32,
    /// Blob holding the encoded file.
    pub blob: ContentHash,
    /// BLAKE3 of its decoded 8-bit pixels.
    pub pixel_hash: ContentHash,
    /// The verifier whose clean pixels were pasted in (it is paid for them).
    pub verifier: NodeId,
    /// Pixels pasted in.
    pub clean_pixels: u64,
}

impl Task {
    /// A new queued task.
    pub fn new(id: TaskId, frames: Vec<u32>, now_ms: u64) -> Self {
        Self {
            id,
            frames,
            status: TaskStatus::Queued,
            lease: None,
            result: None,
            attempts: 0,
            failures: 0,
            excluded: Vec::new(),
            round_manager: None,
            version: 0,
            history: vec![StatusChange {
                status: TaskStatus::Queued,
                at_ms: now_ms,
                note: "created".into(),
            }],
            delivered: Vec::new(),
            claims: Vec::new(),
            operator: None,
            stitched: Vec::new(),
            passed_by: Vec::new(),
        }
    }

    /// The accepted frames as the customer receives them: each frame of the
    /// result, with the delivered (clean) file where there is one.
    pub fn delivered_frames(&self) -> Vec<FrameOutput> {
        let Some(result) = &self.result else {
            return Vec::new();
        };
        result
            .frames
            .iter()
            .map(
                |f| match self.delivered.iter().find(|d| d.frame == f.frame) {
                    Some(d) => FrameOutput {
                        blob: d.blob,
                        pixel_hash: d.pixel_hash,
                        ..f.clone()
                    },
                    None => f.clone(),
                },
            )
            .collect()
    }

    /// Its frames no claim names yet (a frame is claimed once, by its
    /// owner or by a recall), in order.
    pub fn unclaimed_frames(&self) -> Vec<u32> {
        self.frames
            .iter()
            .copied()
            .filter(|f| !self.claims.iter().any(|c| c.frames.contains(f)))
            .collect()
    }

    /// Moves to `to`, recording it; refuses illegal changes.
    pub fn transition(
        &mut self,
        to: TaskStatus,
        now_ms: u64,
        note: impl Into<String>,
    ) -> Result<(), TransitionError> {
        if !self.status.can_become(to) {
            return Err(TransitionError {
                task: self.id,
                from: self.status,
                to,
            });
        }
        self.status = to;
        if to != TaskStatus::Leased {
            self.lease = None;
        }
        if to != TaskStatus::Verifying {
            self.round_manager = None;
        }
        if matches!(
            to,
            TaskStatus::Queued | TaskStatus::Cancelled | TaskStatus::Failed
        ) {
            self.result = None;
            self.operator = None;
        }
        if to != TaskStatus::Accepted {
            self.delivered.clear();
        }
        self.history.push(StatusChange {
            status: to,
            at_ms: now_ms,
            note: note.into(),
        });
        Ok(())
    }

    /// Leases the task to a worker until `deadline_ms`.
    pub fn lease(&mut self, lease: Lease, now_ms: u64) -> Result<(), TransitionError> {
        let note = format!("leased to {:?} until {}", lease.worker, lease.deadline_ms);
        self.transition(TaskStatus::Leased, now_ms, note)?;
        self.attempts += 1;
        self.lease = Some(lease);
        Ok(())
    }

    /// Records a worker's result. Only the lease holder may report.
    pub fn complete(&mut self, result: TaskResult, now_ms: u64) -> Result<(), TaskError> {
        match &self.lease {
            Some(l) if l.worker == result.worker => {}
            _ => {
                return Err(TaskError::NotLeaseHolder {
                    task: self.id,
                    worker: result.worker,
                })
            }
        }
        let got: Vec<u32> = result.frames.iter().map(|f| f.frame).collect();
        if got != self.frames {
            return Err(TaskError::WrongFrames {
                task: self.id,
                expected: self.frames.clone(),
                got,
            });
        }
        let note = format!("rendered by {:?} in {} ms", result.worker, result.render_ms);
        self.transition(TaskStatus::Rendered, now_ms, note)?;
        self.result = Some(result);
        Ok(())
    }

    /// Whether the lease has run out at `now_ms`.
    pub fn lease_expired(&self, now_ms: u64) -> bool {
        self.status == TaskStatus::Leased
            && self.lease.as_ref().is_some_and(|l| l.deadline_ms <= now_ms)
    }

    /// Puts the task back in the queue after a lease ended without an
    /// accepted result, excluding the worker at fault; fails it instead
    /// once `max_failures` attempts have been charged to the task itself.
    pub fn requeue(
        &mut self,
        now_ms: u64,
        fault: Fault,
        max_failures: u32,
        note: impl Into<String>,
    ) -> Result<TaskStatus, TransitionError> {
        let worker = match fault {
            Fault::Worker(w) | Fault::Attempt(w) => Some(w),
            Fault::Manager => None,
        };
        let charged = matches!(fault, Fault::Attempt(_));
        let failures = self.failures + u32::from(charged);
        let to = if charged && failures >= max_failures {
            TaskStatus::Failed
        } else {
            TaskStatus::Queued
        };
        self.transition(to, now_ms, note)?;
        self.failures = failures;
        if let Some(w) = worker {
            if !self.excluded.contains(&w) {
                self.excluded.push(w);
            }
        }
        Ok(to)
    }

    /// Time the last change to `status` happened.
    pub fn entered(&self, status: TaskStatus) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|c| c.status == status)
            .map(|c| c.at_ms)
    }
}

/// A result refused for reasons other than the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// Lifecycle violation.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The reporting worker does not hold the lease (late, replayed or forged).
    #[error("worker {worker:?} does not hold the lease on {task:?}")]
    NotLeaseHolder {
        /// Task.
        task: TaskId,
        /// Reporter.
        worker: NodeId,
    },
    /// The result covers other frames than the task's.
    #[error("result for {task:?} has frames {got:?}, expected {expected:?}")]
    WrongFrames {
        /// Task.
        task: TaskId,
        /// The task's frames.
        expected: Vec<u32>,
        /// The reported frames.
        got: Vec<u32>,
    },
}

/// The frames a job delivers, from its `tasks`, in frame order: each
/// accepted task's delivered frames, or for a tile job (`tiled`) the whole
/// frames stitched from its tiles, never a tile.
pub fn job_frames(tiled: bool, tasks: &[Task]) -> Vec<FrameOutput> {
    let mut frames: Vec<_> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Accepted)
        .flat_map(|t| match tiled {
            true => t.stitched.clone(),
            false => t.delivered_frames(),
        })
        .collect();
    frames.sort_by_key(|f| f.frame);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn task() -> Task {
        Task::new(TaskId::new(JobId(7), 0), vec![1, 2], 0)
    }

    #[test]
    fn the_round_manager_is_kept_only_while_verifying() {
        let mut t = task();
        t.lease(lease(1), 1).unwrap();
        t.transition(TaskStatus::Rendered, 2, "rendered").unwrap();
        t.transition(TaskStatus::Verifying, 3, "sent").unwrap();
        t.round_manager = Some(NodeId(9));
        let stored: Task = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(stored.round_manager, Some(NodeId(9)));
        t.transition(TaskStatus::Rendered, 4, "round lost").unwrap();
        assert_eq!(t.round_manager, None);
        // Records written before the field existed read as no manager.
        let mut old = serde_json::to_value(&stored).unwrap();
        old.as_object_mut().unwrap().remove("round_manager");
        let old: Task = serde_json::from_value(old).unwrap();
        assert_eq!(old.round_manager, None);
    }

    fn lease(w: u128) -> Lease {
        lease_to(w, 100)
    }

    fn lease_to(w: u128, deadline_ms: u64) -> Lease {
        Lease {
            worker: NodeId(w),
            manager: NodeId(99),
            deadline_ms,
            scene: None,
        }
    }

    fn result(w: u128, frames: &[u32]) -> TaskResult {
        TaskResult {
            worker: NodeId(w),
            frames: frames
                .iter()
                .map(|&f| FrameOutput {
                    frame: f,
                    pixel_hash: ContentHash::of(&[f as u8]),
                    blob: ContentHash::of(&[f as u8, 1]),
                    width: 2,
                    height: 2,
                    tile_root: ContentHash::default(),
                })
                .collect(),
            render_ms: 5,
            attempt: 1,
            scene: ContentHash::default(),
            device_class: String::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn happy_path_is_recorded() {
        let mut t = task();
        t.lease(lease(1), 1).unwrap();
        t.complete(result(1, &[1, 2]), 2).unwrap();
        t.transition(TaskStatus::Verifying, 3, "").unwrap();
        t.transition(TaskStatus::Accepted, 4, "").unwrap();
        let seen: Vec<_> = t.history.iter().map(|c| c.status).collect();
        use TaskStatus::*;
        assert_eq!(seen, vec![Queued, Leased, Rendered, Verifying, Accepted]);
        assert_eq!(t.entered(Verifying), Some(3));
        assert!(t.transition(Queued, 5, "").is_err(), "accepted is terminal");
    }

    #[test]
    fn illegal_transitions_are_typed_errors() {
        let mut t = task();
        let e = t.transition(TaskStatus::Accepted, 1, "").unwrap_err();
        assert_eq!(e.from, TaskStatus::Queued);
        assert_eq!(e.to, TaskStatus::Accepted);
        assert_eq!(
            t.status,
            TaskStatus::Queued,
            "state unchanged after refusal"
        );
        assert!(t.transition(TaskStatus::Rendered, 1, "").is_err());
        for s in TaskStatus::ALL {
            assert!(!TaskStatus::Cancelled.can_become(s));
            assert!(!TaskStatus::Accepted.can_become(s));
            assert!(!TaskStatus::Failed.can_become(s));
        }
    }

    #[test]
    fn only_the_lease_holder_reports_the_right_frames() {
        let mut t = task();
        t.lease(lease(1), 1).unwrap();
        assert!(matches!(
            t.complete(result(2, &[1, 2]), 2),
            Err(TaskError::NotLeaseHolder { .. })
        ));
        assert!(matches!(
            t.complete(result(1, &[1]), 2),
            Err(TaskError::WrongFrames { .. })
        ));
        assert_eq!(t.status, TaskStatus::Leased);
    }

    #[test]
    fn leases_lost_through_workers_exclude_them_but_never_fail_the_task() {
        let mut t = task();
        for w in 1..=10u128 {
            let start = w as u64 * 1_000;
            t.lease(lease_to(w, start + 100), start).unwrap();
            assert!(!t.lease_expired(start + 99));
            assert!(t.lease_expired(start + 100));
            assert_eq!(
                t.requeue(start + 100, Fault::Worker(NodeId(w)), 2, "expired")
                    .unwrap(),
                TaskStatus::Queued
            );
        }
        assert_eq!(t.attempts, 10);
        assert_eq!(t.failures, 0);
        assert_eq!(t.excluded, (1..=10).map(NodeId).collect::<Vec<_>>());
    }

    #[test]
    fn failed_attempts_are_charged_and_fail_the_task_at_the_limit() {
        let mut t = task();
        t.lease(lease(1), 1).unwrap();
        assert_eq!(
            t.requeue(100, Fault::Attempt(NodeId(1)), 2, "renderer crashed")
                .unwrap(),
            TaskStatus::Queued
        );
        assert_eq!((t.failures, t.excluded.clone()), (1, vec![NodeId(1)]));
        // A move by the manager charges and excludes nobody.
        t.lease(lease_to(2, 1_000), 101).unwrap();
        assert_eq!(
            t.requeue(150, Fault::Manager, 2, "moved").unwrap(),
            TaskStatus::Queued
        );
        assert_eq!((t.failures, t.excluded.len()), (1, 1));
        t.lease(lease_to(2, 1_000), 151).unwrap();
        assert_eq!(
            t.requeue(200, Fault::Attempt(NodeId(2)), 2, "renderer crashed")
                .unwrap(),
            TaskStatus::Failed
        );
        assert_eq!(t.failures, 2);
        assert!(t.status.is_terminal());
    }
}
