//! What every PostgreSQL test binary shares: the test server's URL, a
//! fresh schema per test, and a raw connection to prepare or inspect it.
//! Each binary uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::store::{StatusCount, TaskStore};
use inferix_core::task::Lease;
use inferix_storage::{PostgresOptions, PostgresTaskStore};
use rand::RngCore;
use tokio::sync::broadcast;
use tokio_postgres::NoTls;

/// How long a notification may take to arrive before the test fails.
pub(crate) const NOTIFY_WAIT: Duration = Duration::from_secs(10);

/// The test server's URL; without one, fails under CI and skips locally.
pub(crate) fn pg_url() -> Option<String> {
    match std::env::var("INFERIX_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let msg = "INFERIX_TEST_PG_URL is not set: run `bash scripts/services.sh` and \
                       `source target/services/env` (scripts/test does both)";
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("skipping: {msg}");
            None
        }
    }
}

pub(crate) fn fresh_schema(tag: &str) -> String {
    format!("t_{tag}_{:016x}", rand::thread_rng().next_u64())
}

/// A plain connection for inspecting and preparing the database directly.
pub(crate) async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub(crate) async fn drop_schemas(url: &str, schemas: &[String]) {
    let client = raw(url).await;
    for s in schemas {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
            .await
            .unwrap();
    }
}

pub(crate) async fn open(url: &str, schema: &str) -> PostgresTaskStore {
    PostgresTaskStore::open(PostgresOptions::new(url).with_schema(schema))
        .await
        .unwrap()
}

pub(crate) fn lease(worker: u128, manager: u128, deadline_ms: u64) -> Lease {
    Lease {
        worker: NodeId(worker),
        manager: NodeId(manager),
        deadline_ms,
        scene: None,
    }
}

/// Awaits the next id on `rx`, failing the test after [`NOTIFY_WAIT`].
pub(crate) async fn next_id(rx: &mut broadcast::Receiver<TaskId>) -> TaskId {
    tokio::time::timeout(NOTIFY_WAIT, rx.recv())
        .await
        .expect("no task notification in time")
        .unwrap()
}

/// Asserts that the counters kept for `job` equal a count of its tasks.
pub(crate) async fn assert_counts_match(store: &PostgresTaskStore, job: JobId, when: &str) {
    let tasks = store.tasks_of_job(job).await.unwrap();
    assert_eq!(
        store.status_counts(job).await.unwrap(),
        StatusCount::tally(&tasks),
        "{when}"
    );
}

/// The test server's TLS URL (`sslmode=verify-full` with the test CA);
/// without one, fails under CI and skips locally.
pub(crate) fn pg_tls_url() -> Option<String> {
    match std::env::var("INFERIX_TEST_PG_TLS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let msg = "INFERIX_TEST_PG_TLS_URL is not set: run `bash scripts/services.sh` and \
                       `source target/services/env` (scripts/test does both)";
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("skipping: {msg}");
            None
        }
    }
}
