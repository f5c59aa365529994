//! Task rows: their indexed columns, and decoding them (the record forms
//! are shared with the SQLite store, in `records`).

use super::*;

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
        .map(|r| crate::records::decode_task(r.get(0), r.get(1), r.get::<_, &str>(2)))
        .collect()
}
