//! SQLite errors as store errors, and task rows read back.

use super::*;

pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(super) fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

pub(super) fn lease_deadline(t: &Task) -> Option<i64> {
    t.lease.as_ref().map(|l| int(l.deadline_ms))
}

pub(super) fn frame_count(t: &Task) -> i64 {
    int(t.frames.len() as u64)
}

/// The `balances` key of `account`: its compact JSON, as in the records.
pub(super) fn account_key(account: &Account) -> Result<String, StoreError> {
    to_json(account)
}

/// Reads `(job_id, idx, record)` rows and decodes the tasks.
pub(super) fn query_tasks(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (job_id, idx, record) = row.map_err(sql_err)?;
        out.push(decode_task(&job_id, idx, &record)?);
    }
    Ok(out)
}
