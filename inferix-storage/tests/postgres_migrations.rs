//! Schema versions of the PostgreSQL task store against a real server: an
//! old schema is upgraded keeping its data, a newer one is refused, and
//! stores opening one fresh schema together migrate it once.
//!
//! The server comes from `INFERIX_TEST_PG_URL`, as in `postgres_store.rs`.
#![cfg(feature = "postgres")]

use inferix_core::ids::NodeId;
use inferix_core::store::conformance::{sample_job, sample_ledger, tricky_accounts};
use inferix_core::store::{StatusCount, StoreError, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_storage::postgres::schema_version;
use inferix_storage::{PostgresError, PostgresOptions, PostgresTaskStore};

mod postgres_support;
use postgres_support::*;

#[tokio::test]
async fn a_version_1_schema_is_upgraded_keeping_its_data() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("v1");
    let (job, tasks) = sample_job(2, 7, 5);
    let mut leased = tasks[1].clone();
    leased.lease(lease(7, 3, 900), 8).unwrap();
    leased.version = 1;
    let stored = vec![tasks[0].clone(), leased.clone(), tasks[2].clone()];
    let accounts = tricky_accounts();
    let ledger = sample_ledger(&accounts);
    {
        // The database as the first release left it: the version table
        // and migration 1, with rows written in that release's layout.
        let client = raw(&url).await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\"; SET search_path = \"{schema}\";
                 CREATE TABLE inferix_schema_migrations (
                     version    INTEGER     PRIMARY KEY,
                     name       TEXT        NOT NULL,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 );
                 {}
                 INSERT INTO inferix_schema_migrations (version, name) VALUES (1, 'tables');",
                include_str!("../migrations/0001_tables.sql")
            ))
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO jobs (id, priority, created_ms, state, record) VALUES ($1, $2, $3, 'active', $4)",
                &[
                    &job.id.to_string(),
                    &job.spec.priority,
                    &(job.created_ms as i64),
                    &serde_json::to_string(&job).unwrap(),
                ],
            )
            .await
            .unwrap();
        for t in [&tasks[0], &leased, &tasks[2]] {
            client
                .execute(
                    "INSERT INTO tasks (job_id, idx, status, lease_deadline_ms, version, record)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &t.id.job.to_string(),
                        &i64::from(t.id.index),
                        &t.status.as_str(),
                        &t.lease.as_ref().map(|l| l.deadline_ms as i64),
                        &(t.version as i64),
                        &serde_json::to_string(t).unwrap(),
                    ],
                )
                .await
                .unwrap();
        }
        for tx in &ledger {
            client
                .execute(
                    "INSERT INTO transactions (id, record) VALUES ($1, $2)",
                    &[&tx.id, &serde_json::to_string(tx).unwrap()],
                )
                .await
                .unwrap();
        }
    }

    let store = open(&url, &schema).await;
    assert_eq!(
        store.stored_schema_version().await.unwrap(),
        schema_version()
    );
    assert!(schema_version() > 1);
    assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(
        store.tasks_of_job(job.id).await.unwrap(),
        vec![tasks[0].clone(), leased.clone(), tasks[2].clone()]
    );
    assert_eq!(
        store.expired_leases(900, 10).await.unwrap(),
        vec![leased.clone()]
    );

    // Migration 3 counted the old tasks' frames and summed the old ledger
    // per account, under keys the store's own lookups match.
    let counts = store.status_counts(job.id).await.unwrap();
    assert_eq!(counts, StatusCount::tally(&stored));
    assert_eq!(StatusCount::frames_in(&counts, TaskStatus::Leased), (2, 5));
    assert_eq!(store.transactions().await.unwrap(), ledger);
    inferix_core::store::conformance::derived_balances_hold(&store, &accounts, &ledger).await;

    // Migration 2 filled the new lease columns from the old records.
    let client = raw(&url).await;
    let row = client
        .query_one(
            &format!("SELECT lease_worker, lease_manager FROM \"{schema}\".tasks WHERE idx = 1"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), Some(NodeId(7).to_string()));
    assert_eq!(row.get::<_, Option<String>>(1), Some(NodeId(3).to_string()));
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM \"{schema}\".inferix_schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=schema_version() as i32).collect::<Vec<_>>());
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".balances"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, accounts.len() as i64);

    // The upgraded schema notifies, and stale writes still conflict.
    let mut rx = store.subscribe().await.unwrap();
    let mut t = tasks[0].clone();
    t.lease(lease(9, 3, 1000), 9).unwrap();
    store.update_task(&mut t).await.unwrap();
    assert_eq!(next_id(&mut rx).await, t.id);
    let mut stale = tasks[1].clone();
    stale.lease(lease(9, 3, 1000), 9).unwrap();
    assert!(matches!(
        store.update_task(&mut stale).await,
        Err(StoreError::Conflict { .. })
    ));
    // The counters filled by the upgrade follow later writes.
    assert_counts_match(&store, job.id, "after a write to the upgraded schema").await;
    assert_eq!(
        StatusCount::frames_in(
            &store.status_counts(job.id).await.unwrap(),
            TaskStatus::Leased
        ),
        (4, 5)
    );

    // Reopening an up-to-date schema changes nothing.
    drop(store);
    let again = open(&url, &schema).await;
    assert_eq!(
        again.stored_schema_version().await.unwrap(),
        schema_version()
    );
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("future");
    drop(open(&url, &schema).await);
    raw(&url)
        .await
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".inferix_schema_migrations (version, name) VALUES ($1, 'future')"
            ),
            &[&(schema_version() as i32 + 1)],
        )
        .await
        .unwrap();
    let err = PostgresTaskStore::open(PostgresOptions::new(&url).with_schema(&schema))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PostgresError::SchemaTooNew { found, known, .. }
            if found == schema_version() + 1 && known == schema_version()),
        "got {err:?}"
    );
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_a_fresh_schema_together_migrate_it_once() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("together");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { open(&url, &schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for h in opens {
        stores.push(h.await.unwrap());
    }
    let rows = raw(&url)
        .await
        .query(
            &format!("SELECT count(*) FROM \"{schema}\".inferix_schema_migrations"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), i64::from(schema_version()));
    let (job, tasks) = sample_job(0, 1, 2);
    stores[0].insert_job(&job, &tasks).await.unwrap();
    assert_eq!(stores[3].tasks_of_job(job.id).await.unwrap(), tasks);
    drop_schemas(&url, &[schema]).await;
}
