//! Accounts: one row per account, its record (keys and limits) as JSON.

use super::*;

impl SqliteTaskStore {
    pub(super) async fn insert_account_row(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let (name, record) = (a.name.clone(), to_json(a)?);
        self.call(move |conn| {
            match conn.execute(
                "INSERT INTO accounts (name, record) VALUES (?1, ?2)",
                params![name, record],
            ) {
                Err(e) if is_constraint(&e) => Err(StoreError::AlreadyExists {
                    what: format!("account {name}"),
                }),
                other => other.map(|_| ()).map_err(sql_err),
            }
        })
        .await
    }

    pub(super) async fn update_account_row(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let (name, record) = (a.name.clone(), to_json(a)?);
        self.call(move |conn| {
            let n = conn
                .execute(
                    "UPDATE accounts SET record = ?2 WHERE name = ?1",
                    params![name, record],
                )
                .map_err(sql_err)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("account {name}"),
                });
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn account_row(
        &self,
        name: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let name = name.to_string();
        self.call(move |conn| {
            let record: Option<String> = conn
                .prepare_cached("SELECT record FROM accounts WHERE name = ?1")
                .and_then(|mut s| s.query_row([&name], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            record
                .map(|r| from_json(|| format!("account {name}"), &r))
                .transpose()
        })
        .await
    }

    pub(super) async fn account_rows(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name, record FROM accounts ORDER BY name")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, record) = row.map_err(sql_err)?;
                out.push(from_json(|| format!("account {name}"), &record)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn standing_row(
        &self,
        name: &str,
    ) -> Result<Option<NodeStanding>, StoreError> {
        let name = name.to_string();
        self.call(move |conn| {
            let record: Option<String> = conn
                .prepare_cached("SELECT record FROM node_standing WHERE name = ?1")
                .and_then(|mut s| s.query_row([&name], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            record
                .map(|r| from_json(|| format!("standing of {name}"), &r))
                .transpose()
        })
        .await
    }

    /// Writes `standing` if the stored one has its version (none stored:
    /// 0), in one immediate transaction, so that an operator's command in
    /// another process cannot slip between the read and the write.
    pub(super) async fn put_standing_row(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        let mut next = standing.clone();
        next.version += 1;
        let (name, record, expected) = (name.to_string(), to_json(&next)?, standing.version);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let stored: Option<String> = tx
                .prepare_cached("SELECT record FROM node_standing WHERE name = ?1")
                .and_then(|mut s| s.query_row([&name], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            let version = match stored {
                Some(r) => from_json::<NodeStanding>(|| format!("standing of {name}"), &r)?.version,
                None => 0,
            };
            if version != expected {
                return Err(StoreError::StandingConflict {
                    account: name,
                    expected,
                });
            }
            tx.execute(
                "INSERT INTO node_standing (name, record) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                params![name, record],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)
        })
        .await?;
        *standing = next;
        Ok(())
    }
}
