//! How the SQL stores keep records: full records as compact JSON text,
//! integers as SQL's signed 64-bit ones. Shared by the SQLite and
//! PostgreSQL stores so both read and write the same forms.

use inferix_core::store::StoreError;
use inferix_core::task::Task;
use serde::de::DeserializeOwned;

/// SQL integers are signed; values past `i64::MAX` (hundreds of millions
/// of years in ms) saturate, which keeps their order.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A record as stored: compact JSON.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

/// A stored record read back; one that does not decode is `Corrupt`,
/// naming `what` it was.
pub(crate) fn from_json<T: DeserializeOwned>(
    what: impl FnOnce() -> String,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}

/// The task record of row (`job_id`, `idx`).
pub(crate) fn decode_task(job_id: &str, idx: i64, record: &str) -> Result<Task, StoreError> {
    from_json(|| format!("task {job_id}-{idx:05}"), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_saturate_and_bad_records_are_corrupt() {
        assert_eq!(int(5), 5);
        assert_eq!(int(u64::MAX), i64::MAX);
        assert_eq!(to_json(&vec![1, 2]).unwrap(), "[1,2]");
        match decode_task("job-1", 3, "{not json") {
            Err(StoreError::Corrupt { what, .. }) => assert_eq!(what, "task job-1-00003"),
            other => panic!("{other:?}"),
        }
    }
}
