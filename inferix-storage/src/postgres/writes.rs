//! The writes a manager makes to the task database: a task's
//! compare-and-set, a ledger transaction, and a batch of them in one SQL
//! transaction. Each takes any client, so a batch runs the same statements
//! inside its transaction.

use deadpool_postgres::GenericClient;
use inferix_core::ledger::Transaction;
use inferix_core::store::{Change, StoreError};
use inferix_core::task::Task;

use super::{int, is_unique_violation, pg_err, to_json, TaskColumns};

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
    Err(if exists {
        StoreError::Conflict {
            task: task.id,
            expected: task.version,
        }
    } else {
        StoreError::NotFound {
            what: format!("task {}", task.id),
        }
    })
}

/// Appends a balanced transaction whose id is new, moving its balances.
pub(super) async fn write_transaction<C: GenericClient>(
    client: &C,
    tx: &Transaction,
) -> Result<(), StoreError> {
    tx.check_balanced()?;
    let record = to_json(tx)?;
    let mut accounts = Vec::with_capacity(tx.postings.len());
    let mut amounts = Vec::with_capacity(tx.postings.len());
    for p in &tx.postings {
        accounts.push(to_json(&p.account)?);
        amounts.push(p.amount);
    }
    // One statement, so the record and its balance changes commit
    // together: a duplicate id fails the whole statement and moves no
    // balance. Postings are summed per account first, because one
    // upsert may not touch a row twice.
    let stmt = client
        .prepare_cached(
            "WITH tx AS (
                 INSERT INTO transactions (id, record) VALUES ($1, $2)
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
        .execute(&stmt, &[&tx.id, &record, &accounts, &amounts])
        .await
    {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            what: format!("transaction {}", tx.id),
        }),
        other => other.map(drop).map_err(pg_err),
    }
}

/// Every change in one SQL transaction: the first that fails rolls back
/// the ones before it.
pub(super) async fn apply(
    client: &mut deadpool_postgres::Client,
    changes: &mut [Change],
) -> Result<(), StoreError> {
    let db = client.transaction().await.map_err(pg_err)?;
    let mut written = Vec::with_capacity(changes.len());
    for c in changes.iter() {
        match c {
            Change::Task(t) => written.push(Some(write_task(&db, t).await?)),
            Change::Transaction(tx) => {
                write_transaction(&db, tx).await?;
                written.push(None);
            }
            #[allow(unreachable_patterns)]
            other => return Err(StoreError::Backend(format!("unsupported change {other:?}"))),
        }
    }
    db.commit().await.map_err(pg_err)?;
    for (c, w) in changes.iter_mut().zip(written) {
        if let (Change::Task(t), Some(next)) = (c, w) {
            **t = next;
        }
    }
    Ok(())
}
