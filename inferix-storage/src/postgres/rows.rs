//! Values to and from table rows: integers, JSON records, task columns.

use super::*;

/// PostgreSQL integers are signed; values past `i64::MAX` (hundreds of
/// millions of years in ms) saturate, which keeps their order.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(
    what: impl FnOnce() -> String,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}

/// The indexed columns of a task row, derived from its record.
pub(super) struct TaskColumns {
    pub(super) status: &'static str,
    pub(super) lease_deadline_ms: Option<i64>,
    pub(super) lease_worker: Option<String>,
    pub(super) lease_manager: Option<String>,
    pub(super) frames: i32,
}

impl TaskColumns {
    pub(super) fn of(t: &Task) -> Self {
        Self {
            status: t.status.as_str(),
            lease_deadline_ms: t.lease.as_ref().map(|l| int(l.deadline_ms)),
            lease_worker: t.lease.as_ref().map(|l| l.worker.to_string()),
            lease_manager: t.lease.as_ref().map(|l| l.manager.to_string()),
            frames: i32::try_from(t.frames.len()).unwrap_or(i32::MAX),
        }
    }
}

/// Decodes `(job_id, idx, record)` rows.
pub(super) fn decode_tasks(rows: &[Row]) -> Result<Vec<Task>, StoreError> {
    rows.iter()
        .map(|r| {
            let job: &str = r.get(0);
            let idx: i64 = r.get(1);
            from_json(|| format!("task {job}-{idx:05}"), r.get::<_, &str>(2))
        })
        .collect()
}
