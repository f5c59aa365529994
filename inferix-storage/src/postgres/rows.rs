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

/// Tasks as column arrays, for statements that write many tasks at once
/// from `UNNEST` (a job's insert, a batch of updates).
#[derive(Default)]
pub(super) struct TaskRows {
    pub(super) job_ids: Vec<String>,
    pub(super) idxs: Vec<i64>,
    pub(super) statuses: Vec<&'static str>,
    pub(super) deadlines: Vec<Option<i64>>,
    pub(super) workers: Vec<Option<String>>,
    pub(super) managers: Vec<Option<String>>,
    pub(super) versions: Vec<i64>,
    pub(super) records: Vec<String>,
    pub(super) frames: Vec<i32>,
}

impl TaskRows {
    /// Adds `t`'s columns and version, with `record` as its stored JSON.
    pub(super) fn push(&mut self, t: &Task, record: String) {
        let c = TaskColumns::of(t);
        self.job_ids.push(t.id.job.to_string());
        self.idxs.push(i64::from(t.id.index));
        self.statuses.push(c.status);
        self.deadlines.push(c.lease_deadline_ms);
        self.workers.push(c.lease_worker);
        self.managers.push(c.lease_manager);
        self.versions.push(int(t.version));
        self.records.push(record);
        self.frames.push(c.frames);
    }

    /// The nine arrays as statement parameters, in the order every
    /// `UNNEST` over them names its columns: job_id, idx, status,
    /// deadline, worker, manager, version, record, frames.
    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.job_ids,
            &self.idxs,
            &self.statuses,
            &self.deadlines,
            &self.workers,
            &self.managers,
            &self.versions,
            &self.records,
            &self.frames,
        ]
    }
}

/// Decodes `(job_id, idx, record)` rows.
pub(super) fn decode_tasks(rows: &[Row]) -> Result<Vec<Task>, StoreError> {
    rows.iter()
        .map(|r| crate::records::decode_task(r.get(0), r.get(1), r.get::<_, &str>(2)))
        .collect()
}
