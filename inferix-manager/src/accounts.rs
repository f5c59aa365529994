//! Accounts' rules: which account a client acts as, what it may see, and
//! whether it may submit a job (funds and quotas).
//!
//! Another account's job is answered exactly like a job that does not
//! exist, so a job id learnt elsewhere (every task id names its job, and
//! workers see task ids) tells its holder nothing.

use inferix_core::account::{key_id, AccountRecord};
use inferix_core::job::Job;
use inferix_core::protocol::ErrorCode;

use crate::admission::Refusal;

/// How a client's hello is resolved to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLookup {
    /// Look up the account holding the key with this public id, then check
    /// the key against it ([`check_key`]).
    Key(String),
    /// No key, and the manager admits such clients as this account.
    Guest(String),
}

/// Which account a client presenting `token` acts as. A token that is not
/// an API key is refused before anything is looked up, and so is no token
/// unless the manager has a guest account.
pub fn client_lookup(token: Option<&str>, guest: Option<&str>) -> Result<ClientLookup, Refusal> {
    match (token, guest) {
        (Some(t), _) => key_id(t)
            .map(|id| ClientLookup::Key(id.to_string()))
            .map_err(|_| unauthorized()),
        (None, Some(g)) => Ok(ClientLookup::Guest(g.to_string())),
        (None, None) => Err(unauthorized()),
    }
}

/// Checks a presented key against the account its id belongs to (none: an
/// unknown key). Unknown, wrong and revoked keys get the same refusal.
pub fn check_key(account: Option<&AccountRecord>, key: &str) -> Result<(), Refusal> {
    match account {
        Some(a) if a.accepts(key) => Ok(()),
        _ => Err(unauthorized()),
    }
}

fn unauthorized() -> Refusal {
    Refusal {
        code: ErrorCode::Unauthorized,
        message: "client not admitted: a valid API key is required \
                  (`inferix account create` makes one)"
            .into(),
        close: "unauthorized",
    }
}

/// Whether `account` may see and act on `job`: its owner, or an operator.
pub fn may_see(account: &AccountRecord, job: &Job) -> bool {
    account.operator || job.owner.as_deref() == Some(account.name.as_str())
}

/// The answer for a job the asker may not see: the one for a job that does
/// not exist.
pub fn not_found(job: impl std::fmt::Display) -> (ErrorCode, String) {
    (ErrorCode::NotFound, format!("job {job} not found"))
}

/// What a submission is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submission {
    /// The quoted price, micro-credits.
    pub price: u64,
    /// Frames in the job.
    pub frames: u64,
    /// The account's balance now, micro-credits.
    pub balance: i64,
    /// The account's jobs that are not finished.
    pub active_jobs: u64,
    /// Bytes of the distinct scenes and environment maps of its unfinished
    /// jobs and of this one.
    pub scene_bytes: u64,
}

/// Whether `account` may submit a job: within its quotas, and able to pay
/// the quote from its balance and credit. The refusal names the limit.
pub fn check_submission(account: &AccountRecord, s: Submission) -> Result<(), (ErrorCode, String)> {
    let q = account.quotas;
    if s.frames > q.max_frames_per_job {
        return Err((
            ErrorCode::LimitExceeded,
            format!(
                "the job has {} frames; account {} may submit at most {} per job",
                s.frames, account.name, q.max_frames_per_job
            ),
        ));
    }
    if s.active_jobs >= u64::from(q.max_active_jobs) {
        return Err((
            ErrorCode::LimitExceeded,
            format!(
                "account {} has {} unfinished jobs, its limit; wait for one to finish",
                account.name, s.active_jobs
            ),
        ));
    }
    if s.scene_bytes > q.max_scene_bytes {
        return Err((
            ErrorCode::LimitExceeded,
            format!(
                "the scenes of account {}'s unfinished jobs and this one take {} bytes; \
                 its limit is {} bytes",
                account.name, s.scene_bytes, q.max_scene_bytes
            ),
        ));
    }
    if !account.can_pay(s.balance, s.price) {
        return Err((
            ErrorCode::PaymentRequired,
            format!(
                "the job costs {} micro-credits and account {} has {} \
                 (`inferix account deposit` adds funds)",
                s.price, account.name, s.balance
            ),
        ));
    }
    Ok(())
}
