//! Writes prepared outside the connection's lock and applied inside one
//! transaction: a task's compare-and-set, a ledger append.

use super::*;

/// A task's compare-and-set write, prepared outside the connection's lock.
pub(super) struct TaskWrite {
    pub(super) id: TaskId,
    pub(super) status: TaskStatus,
    pub(super) record: String,
    pub(super) expected: u64,
    pub(super) deadline: Option<i64>,
    pub(super) frames: i64,
}

impl TaskWrite {
    /// The write, and the task as it will be stored.
    pub(super) fn of(task: &Task) -> Result<(Self, Task), StoreError> {
        let mut next = task.clone();
        next.version += 1;
        let write = Self {
            id: task.id,
            status: task.status,
            record: to_json(&next)?,
            expected: task.version,
            deadline: lease_deadline(task),
            frames: frame_count(task),
        };
        Ok((write, next))
    }

    /// Compare-and-set in one statement: the version check and the write
    /// cannot be split by another manager's claim.
    pub(super) fn run(&self, conn: &Connection) -> Result<(), StoreError> {
        let id = self.id;
        let n = conn
            .prepare_cached(
                "UPDATE tasks SET status = ?3, lease_deadline_ms = ?4, record = ?5,
                     frames = ?7, version = version + 1
                 WHERE job_id = ?1 AND idx = ?2 AND version = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.job.to_string(),
                    id.index,
                    self.status.as_str(),
                    self.deadline,
                    self.record,
                    int(self.expected),
                    self.frames
                ])
            })
            .map_err(sql_err)?;
        if n == 1 {
            return Ok(());
        }
        let exists = conn
            .prepare_cached("SELECT 1 FROM tasks WHERE job_id = ?1 AND idx = ?2")
            .and_then(|mut s| s.exists(params![id.job.to_string(), id.index]))
            .map_err(sql_err)?;
        Err(if exists {
            StoreError::Conflict {
                task: id,
                expected: self.expected,
            }
        } else {
            StoreError::NotFound {
                what: format!("task {id}"),
            }
        })
    }
}

/// A ledger transaction's insert and balance changes, to run inside an SQL
/// transaction.
pub(super) struct TxWrite {
    pub(super) id: String,
    pub(super) record: String,
    pub(super) postings: Vec<(String, i64)>,
}

impl TxWrite {
    pub(super) fn of(tx: &Transaction) -> Result<Self, StoreError> {
        tx.check_balanced()?;
        Ok(Self {
            id: tx.id.clone(),
            record: to_json(tx)?,
            postings: tx
                .postings
                .iter()
                .map(|p| Ok((account_key(&p.account)?, p.amount)))
                .collect::<Result<Vec<_>, StoreError>>()?,
        })
    }

    pub(super) fn run(&self, db: &Connection) -> Result<(), StoreError> {
        let res = db
            .prepare_cached("INSERT INTO transactions (id, record) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![self.id, self.record]));
        match res {
            Err(e) if is_constraint(&e) => {
                return Err(StoreError::AlreadyExists {
                    what: format!("transaction {}", self.id),
                })
            }
            other => other.map_err(sql_err)?,
        };
        let mut upsert = db
            .prepare_cached(
                "INSERT INTO balances (account, amount) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount",
            )
            .map_err(sql_err)?;
        for (account, amount) in &self.postings {
            upsert.execute(params![account, amount]).map_err(sql_err)?;
        }
        Ok(())
    }
}
