//! Versioned schema migrations, shipped in the crate (`migrations/*.sql`)
//! and applied when a store opens.
//!
//! The table `inferix_schema_migrations` records which versions ran. All
//! missing migrations run in one transaction under an advisory lock, so
//! managers starting together against a fresh database cannot apply one
//! twice, and a failed upgrade leaves the old schema untouched.

use deadpool_postgres::Client;

use super::{PostgresError, Schema};

/// One migration: its version (its position, from 1), a short name and
/// its SQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration in order. Never edit a released entry: append a new
/// one, so every existing database reaches the same schema by one path.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tables",
        sql: include_str!("../../migrations/0001_tables.sql"),
    },
    Migration {
        version: 2,
        name: "leases_indexes_notify",
        sql: include_str!("../../migrations/0002_leases_indexes_notify.sql"),
    },
    Migration {
        version: 3,
        name: "balances_task_frames",
        sql: include_str!("../../migrations/0003_balances_task_frames.sql"),
    },
    Migration {
        version: 4,
        name: "accounts",
        sql: include_str!("../../migrations/0004_accounts.sql"),
    },
    Migration {
        version: 5,
        name: "node_standing",
        sql: include_str!("../../migrations/0005_node_standing.sql"),
    },
];

/// The table that records applied versions. The first release created it
/// in exactly this form; it may gain columns but never lose these.
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS inferix_schema_migrations (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Brings `schema` (created if missing) up to the newest migration.
pub(crate) async fn migrate(client: &mut Client, schema: &Schema) -> Result<u32, PostgresError> {
    let failed = |version: u32, name: &str, e: tokio_postgres::Error| PostgresError::Migration {
        schema: schema.name().to_string(),
        version,
        name: name.to_string(),
        reason: describe(&e),
    };
    let tx = client
        .transaction()
        .await
        .map_err(|e| failed(0, "begin", e))?;
    // One lock per schema: openers of other schemas proceed in parallel.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('inferix_schema:' || $1::text))",
        &[&schema.name()],
    )
    .await
    .map_err(|e| failed(0, "lock", e))?;
    if let Schema::Named(name) = schema {
        // The name is validated as a plain lower-case identifier.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{name}\""))
            .await
            .map_err(|e| failed(0, "create schema", e))?;
    }
    tx.batch_execute(VERSION_TABLE)
        .await
        .map_err(|e| failed(0, "version table", e))?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM inferix_schema_migrations",
            &[],
        )
        .await
        .map_err(|e| failed(0, "read version", e))?
        .get(0);
    let current = u32::try_from(current).unwrap_or(0);
    let known = latest_version();
    if current > known {
        return Err(PostgresError::SchemaTooNew {
            schema: schema.name().to_string(),
            found: current,
            known,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| failed(m.version, m.name, e))?;
        tx.execute(
            "INSERT INTO inferix_schema_migrations (version, name) VALUES ($1, $2)",
            &[&(m.version as i32), &m.name],
        )
        .await
        .map_err(|e| failed(m.version, m.name, e))?;
        tracing::debug!(
            schema = schema.name(),
            version = m.version,
            name = m.name,
            "applied task store migration"
        );
    }
    tx.commit().await.map_err(|e| failed(known, "commit", e))?;
    Ok(known)
}

/// The schema version this build writes.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The server's message with its detail, or the client error.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(latest_version() as usize, MIGRATIONS.len());
    }
}
