//! The writes a manager makes to the task database: a task's
//! compare-and-set, a ledger transaction, and a batch of them in one SQL
//! transaction. Each takes any client, so a batch runs the same statements
//! inside its transaction.

use deadpool_postgres::GenericClient;
use inferix_core::ledger::Transaction;
use inferix_core::store::{Change, StoreError};
use inferix_core::task::Task;

use super::{int, is_unique_violation, pg_err, to_json, TaskColumns, TaskRows};

/// Writes `task` if its stored version still equals its version; returns
/// it with the version bumped.
pub(super) async fn write_task<C: GenericClient>(
    client: &C,
    task: &Task,
) -> Result<Task, StoreError> {
    let mut next = task.clone();
    next.version += 1;
    let record = to_json(&next)?;
    let c = TaskColumns::of(task);
    // Compare-and-set and the existence check in one round trip. A
    // concurrent claim of the same row waits for this one's commit,
    // then finds the version moved on and updates nothing.
    let stmt = client
        .prepare_cached(
            "WITH updated AS (
                 UPDATE tasks SET status = $3, lease_deadline_ms = $4, lease_worker = $5,
                                  lease_manager = $6, record = $7, frames = $9,
                                  version = version + 1
                 WHERE job_id = $1 AND idx = $2 AND version = $8
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM updated),
                    EXISTS (SELECT 1 FROM tasks WHERE job_id = $1 AND idx = $2)",
        )
        .await
        .map_err(pg_err)?;
    let row = client
        .query_one(
            &stmt,
            &[
                &task.id.job.to_string(),
                &i64::from(task.id.index),
                &c.status,
                &c.lease_deadline_ms,
                &c.lease_worker,
                &c.lease_manager,
                &record,
                &int(task.version),
                &c.frames,
            ],
        )
        .await
        .map_err(pg_err)?;
    let updated: i64 = row.get(0);
    let exists: bool = row.get(1);
    if updated == 1 {
        return Ok(next);
    }
    Err(not_written(task, exists))
}

/// Every change in one SQL transaction: the first that fails rolls back
/// the ones before it.
///
/// The task changes are written in one statement (the count triggers run
/// once for all of them) and the ledger transactions in another, both
/// sent before either answer is awaited: about one round trip. A batch
/// naming one task twice is written change by change, so that the second
/// write of the task meets the first's version.
pub(super) async fn apply(
    client: &mut deadpool_postgres::Client,
    changes: &mut [Change],
) -> Result<(), StoreError> {
    let tx_db = client.transaction().await.map_err(pg_err)?;
    let db = &tx_db;
    let tasks: Vec<&Task> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Task(t) => Some(&**t),
            _ => None,
        })
        .collect();
    let mut ids: Vec<_> = tasks.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let written = if ids.len() == tasks.len() {
        let ledger: Vec<&Transaction> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Transaction(tx) => Some(tx),
                _ => None,
            })
            .collect();
        // Both statements are sent before either answer is awaited; the
        // tasks' error, if any, is the one reported.
        let (next, paid) =
            futures::future::join(write_tasks(db, &tasks), write_transactions(db, &ledger)).await;
        let mut next = next?.into_iter();
        paid?;
        changes
            .iter()
            .map(|c| match c {
                Change::Task(_) => next.next(),
                _ => None,
            })
            .collect()
    } else {
        let mut written = Vec::with_capacity(changes.len());
        for c in changes.iter() {
            written.push(match c {
                Change::Task(t) => Some(write_task(db, t).await?),
                Change::Transaction(tx) => {
                    write_transactions(db, &[tx]).await?;
                    None
                }
                #[allow(unreachable_patterns)]
                other => return Err(StoreError::Backend(format!("unsupported change {other:?}"))),
            });
        }
        written
    };
    tx_db.commit().await.map_err(pg_err)?;
    for (c, w) in changes.iter_mut().zip(written) {
        if let (Change::Task(t), Some(next)) = (c, w) {
            **t = next;
        }
    }
    Ok(())
}

/// Appends balanced transactions whose ids are new, moving their
/// balances, in one statement: the records and their balance changes
/// commit together, and a duplicate id (also within `txs`) fails all of
/// them and moves no balance. Postings are summed per account first,
/// because one upsert may not touch a row twice.
pub(super) async fn write_transactions<C: GenericClient>(
    client: &C,
    txs: &[&Transaction],
) -> Result<(), StoreError> {
    if txs.is_empty() {
        return Ok(());
    }
    let (mut ids, mut records, mut accounts, mut amounts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for tx in txs {
        tx.check_balanced()?;
        ids.push(tx.id.clone());
        records.push(to_json(*tx)?);
        for p in &tx.postings {
            accounts.push(to_json(&p.account)?);
            amounts.push(p.amount);
        }
    }
    let stmt = client
        .prepare_cached(
            "WITH tx AS (
                 INSERT INTO transactions (id, record)
                 SELECT * FROM UNNEST($1::text[], $2::text[])
             )
             INSERT INTO balances (account, amount)
             SELECT account::jsonb, SUM(amount)::bigint
             FROM UNNEST($3::text[], $4::bigint[]) AS p(account, amount)
             GROUP BY 1
             ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount",
        )
        .await
        .map_err(pg_err)?;
    match client
        .execute(&stmt, &[&ids, &records, &accounts, &amounts])
        .await
    {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            what: match ids.as_slice() {
                [one] => format!("transaction {one}"),
                _ => format!(
                    "a transaction among {} ({})",
                    ids.join(", "),
                    e.as_db_error().and_then(|d| d.detail()).unwrap_or("")
                ),
            },
        }),
        other => other.map(drop).map_err(pg_err),
    }
}

/// Writes each of `tasks` (distinct tasks) if its stored version still
/// equals its version, all in one statement; returns them with their
/// versions bumped. When one cannot be written, the first such task in
/// order names the error, and the caller's transaction must not commit.
pub(super) async fn write_tasks<C: GenericClient>(
    client: &C,
    tasks: &[&Task],
) -> Result<Vec<Task>, StoreError> {
    match tasks {
        [] => return Ok(Vec::new()),
        [one] => return Ok(vec![write_task(client, one).await?]),
        _ => {}
    }
    let n = tasks.len();
    let mut next = Vec::with_capacity(n);
    let mut rows = TaskRows::default();
    for task in tasks {
        let mut t = (*task).clone();
        t.version += 1;
        // The columns and the version compared are the task's as given;
        // the record stored is the next version's.
        rows.push(task, to_json(&t)?);
        next.push(t);
    }
    let stmt = client
        .prepare_cached(
            "UPDATE tasks t SET status = u.status, lease_deadline_ms = u.deadline,
                                lease_worker = u.worker, lease_manager = u.manager,
                                record = u.record, frames = u.frames,
                                version = t.version + 1
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                         $6::text[], $7::bigint[], $8::text[], $9::integer[])
                  AS u(job_id, idx, status, deadline, worker, manager, version, record, frames)
             WHERE t.job_id = u.job_id AND t.idx = u.idx AND t.version = u.version
             RETURNING t.job_id, t.idx",
        )
        .await
        .map_err(pg_err)?;
    let updated = client.query(&stmt, &rows.params()).await.map_err(pg_err)?;
    if updated.len() == n {
        return Ok(next);
    }
    let written = updated.len();
    let updated: std::collections::HashSet<(String, i64)> = updated
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let Some(task) = tasks
        .iter()
        .find(|t| !updated.contains(&(t.id.job.to_string(), i64::from(t.id.index))))
    else {
        return Err(StoreError::Backend(format!(
            "updated {written} of {n} distinct tasks"
        )));
    };
    let exists = client
        .query_opt(
            "SELECT 1 FROM tasks WHERE job_id = $1 AND idx = $2",
            &[&task.id.job.to_string(), &i64::from(task.id.index)],
        )
        .await
        .map_err(pg_err)?
        .is_some();
    Err(not_written(task, exists))
}

/// Why `task` was not written: its version moved on, or it is gone.
fn not_written(task: &Task, exists: bool) -> StoreError {
    if exists {
        StoreError::Conflict {
            task: task.id,
            expected: task.version,
        }
    } else {
        StoreError::NotFound {
            what: format!("task {}", task.id),
        }
    }
}
