//! Accounts: one row per account, its record (keys and limits) as JSON.

use super::*;

impl PostgresTaskStore {
    pub(super) async fn insert_account_row(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let record = to_json(a)?;
        let client = self.client().await?;
        match client
            .execute(
                "INSERT INTO accounts (name, record) VALUES ($1, $2)",
                &[&a.name, &record],
            )
            .await
        {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
                what: format!("account {}", a.name),
            }),
            other => other.map(|_| ()).map_err(pg_err),
        }
    }

    pub(super) async fn update_account_row(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let record = to_json(a)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE accounts SET record = $2 WHERE name = $1",
                &[&a.name, &record],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("account {}", a.name),
            });
        }
        Ok(())
    }

    pub(super) async fn account_row(
        &self,
        name: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM accounts WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        row.map(|r| from_json(|| format!("account {name}"), r.get::<_, &str>(0)))
            .transpose()
    }

    pub(super) async fn account_rows(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT name, record FROM accounts ORDER BY name", &[])
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let name: &str = r.get(0);
                from_json(|| format!("account {name}"), r.get::<_, &str>(1))
            })
            .collect()
    }

    pub(super) async fn standing_row(
        &self,
        name: &str,
    ) -> Result<Option<NodeStanding>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM node_standing WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        row.map(|r| from_json(|| format!("standing of {name}"), r.get::<_, &str>(0)))
            .transpose()
    }

    /// Writes `standing` if the stored one has its version (none stored:
    /// 0), in one statement: of two managers writing from the same read,
    /// one is refused.
    pub(super) async fn put_standing_row(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        let mut next = standing.clone();
        next.version += 1;
        let record = to_json(&next)?;
        let expected = i64::try_from(standing.version).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let stored_version = "COALESCE((node_standing.record::jsonb ->> 'version')::bigint, 0)";
        let written = if expected == 0 {
            client
                .execute(
                    &format!(
                        "INSERT INTO node_standing (name, record) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET record = excluded.record
                         WHERE {stored_version} = 0"
                    ),
                    &[&name, &record],
                )
                .await
        } else {
            client
                .execute(
                    &format!(
                        "UPDATE node_standing SET record = $2
                         WHERE name = $1 AND {stored_version} = $3"
                    ),
                    &[&name, &record, &expected],
                )
                .await
        }
        .map_err(pg_err)?;
        if written == 0 {
            return Err(StoreError::StandingConflict {
                account: name.to_string(),
                expected: standing.version,
            });
        }
        *standing = next;
        Ok(())
    }
}
