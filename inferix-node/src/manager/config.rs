//! The manager's settings: what an operator may tune, with defaults that
//! give a working single-machine network.

use std::time::Duration;

/// Manager settings; `Default` gives a working single-machine setup.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Address to listen on.
    pub listen: String,
    /// How long a worker holds a task before it is re-queued.
    pub lease: Duration,
    /// Failed attempts charged to a task (its renderer failed, or its
    /// result was rejected) before it fails its job. Leases lost through a
    /// worker (vanished, frozen, handed back) are charged to the worker
    /// instead: they exclude it from the task, lower its reputation and,
    /// repeated, blocklist it for the job.
    pub max_attempts: u32,
    /// Verifiers that must agree on each result (different nodes, so one
    /// colluding verifier cannot pass a bad result alone).
    pub quorum: usize,
    /// Micro-credits per IB-minute.
    pub price_per_ibm: u64,
    /// A worker silent for this long is dropped and its task re-queued.
    pub heartbeat_timeout: Duration,
    /// A verifier silent on a verification for this long is replaced.
    pub verification_timeout: Duration,
    /// Period of housekeeping (expiry, timeouts, dispatch).
    pub tick: Duration,
    /// Token workers and verifiers must present; `None` admits anyone.
    pub node_token: Option<String>,
    /// Token verifiers must present instead of `node_token` (which then
    /// admits workers only), so that holding the workers' token is not
    /// enough to judge their work.
    pub verifier_token: Option<String>,
    /// The account that clients presenting no API key act as, created
    /// when missing with no credit limit and no quotas: the embedded,
    /// single-machine default. `None` (what `inferix manager` uses) admits
    /// only clients with an API key of an account in the task store.
    pub guest_account: Option<String>,
    /// Reputation multiplier applied to a worker whose result is rejected.
    pub reputation_penalty: f64,
    /// Epoch E in minutes of the stake rule S = 2 · E · IB · P: a worker
    /// must hold S in its stake account to take tasks. `0` disables stakes.
    pub stake_epoch_minutes: f64,
    /// Whether this manager's operator posts the minimum stake for the
    /// workers it admits (once per worker). Otherwise a worker without
    /// enough stake on record is refused.
    pub grant_stake: bool,
    /// Micro-credits paid from the penalty pool to each verifier whose
    /// verdict agrees with the final one, while the pool has funds.
    pub verifier_reward: i64,
    /// Chance, per verification seat, that its verifier also gets a
    /// known-bad result (a forced error) to check; passing one gets a
    /// verifier caught. Needs Proof of Render; 0 turns it off.
    pub forced_error_rate: f64,
    /// Chance that a result every verifier passed, of a worker on
    /// probation (a new or distrusted account, at a quorum of two or
    /// more), is also checked by the manager's own renderer before it is
    /// paid, so that a one-shot fake that colluders passed is rejected.
    /// Needs the manager's own renderer (the admission probe's); without
    /// one, or at 0, the verifiers' votes decide.
    pub probation_audit: f64,
    /// How long after a frame is accepted its user may claim it is bad.
    pub claim_window: Duration,
    /// A worker that reports no progress on its task for this long is
    /// taken to be hung: the task is revoked and leased elsewhere.
    pub progress_timeout: Duration,
    /// Failures (errors, hangs, rejections) after which a worker is
    /// blocklisted for the job.
    pub failures_before_blocklist: u32,
    /// How often finished jobs are looked at for watermarked lease copies
    /// whose claim window has closed, to remove them from blob storage.
    pub lease_copy_sweep: Duration,
    /// How often blob storage is swept for blobs that no job or task names
    /// (uploads never submitted, frames of rejected or superseded results)
    /// and that are older than `blob_retention`, to delete them.
    pub blob_sweep: Duration,
    /// How long an unreferenced blob is kept. It must cover every blob
    /// that is named only after it is stored or only in memory: a scene
    /// between its upload and the job's submission, a frame between its
    /// upload and the worker's result, a lease's scene copy between its
    /// upload and the lease's record (see [`super::blob_sweep`]).
    pub blob_retention: Duration,
    /// A connection that has not been admitted (its hello answered with a
    /// welcome) this long after it opened is closed: a peer cannot hold a
    /// connection without saying who it is.
    pub hello_timeout: Duration,
    /// How long a worker or verifier has to render its admission probe
    /// (see [`ManagerBuilder::admission_probe`](super::ManagerBuilder::admission_probe)).
    pub probe_timeout: Duration,
    /// Jobs one client connection may watch at once; a further Watch is
    /// refused (`InvalidRequest`) until a watched job fails, is cancelled
    /// or the connection closes. Watching a job twice counts once.
    pub max_watches_per_client: usize,
    /// Tasks one job may split into; a larger job is refused
    /// (`LimitExceeded`) when it is quoted or submitted, before any of it
    /// is stored: a million-task job would fill the store and every job
    /// listing for nothing. A larger chunk size fits more frames.
    pub max_tasks_per_job: u64,
    /// Accepted frames one status reply carries at most; a client asks for
    /// the next page from where the reply stopped, so a status of a huge
    /// job neither outgrows a message nor holds up the manager.
    pub status_page_frames: usize,
    /// How old a client connection's copy of its account may be when it
    /// makes a request: older, the account is read again, so a revoked
    /// key stops working on connections already open (and a new quota or
    /// operator right applies) within this time.
    pub account_refresh: Duration,
    /// Idle workers (longest idle first) the scheduler chooses among per
    /// task. Bounds the cost of one decision on a large network; when none
    /// of them is eligible, every idle worker is considered.
    pub scheduler_candidates: usize,
    /// Holds a queued task back from a slow idle worker when a busy worker
    /// is expected to finish it sooner (from the job's measured work per
    /// frame), so the last tasks of a job do not end up on the slowest
    /// machines.
    pub finish_time_aware: bool,
    /// The ffmpeg binary that makes the MP4, GIF and WebP outputs of
    /// finished jobs: `INFERIX_FFMPEG` when set, else `ffmpeg` on the
    /// `PATH`. A wrong one fails those outputs alone, never the job.
    pub ffmpeg: std::path::PathBuf,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            listen: "manager".into(),
            lease: Duration::from_secs(600),
            max_attempts: 5,
            quorum: 2,
            price_per_ibm: 100_000,
            heartbeat_timeout: Duration::from_secs(30),
            verification_timeout: Duration::from_secs(300),
            tick: Duration::from_millis(500),
            node_token: None,
            verifier_token: None,
            guest_account: Some("guest".into()),
            reputation_penalty: 0.5,
            stake_epoch_minutes: 60.0,
            grant_stake: true,
            verifier_reward: 1_000,
            forced_error_rate: inferix_manager::ForcedErrorConfig::default().rate,
            probation_audit: inferix_manager::AuditConfig::default().rate,
            claim_window: Duration::from_secs(72 * 3600),
            progress_timeout: Duration::from_secs(300),
            failures_before_blocklist: 3,
            max_watches_per_client: 1_000,
            max_tasks_per_job: 100_000,
            status_page_frames: 10_000,
            account_refresh: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(120),
            lease_copy_sweep: Duration::from_secs(600),
            blob_sweep: Duration::from_secs(3600),
            blob_retention: Duration::from_secs(7 * 24 * 3600),
            scheduler_candidates: 128,
            finish_time_aware: true,
            ffmpeg: std::env::var_os("INFERIX_FFMPEG").map_or_else(|| "ffmpeg".into(), Into::into),
        }
    }
}
