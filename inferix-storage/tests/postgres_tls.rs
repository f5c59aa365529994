//! The PostgreSQL task store over TLS, against the test server.
//!
//! The server comes from `INFERIX_TEST_PG_TLS_URL` (`sslmode=verify-full`
//! with the test CA) and `INFERIX_TEST_PG_URL` (the same server in
//! plaintext, for preparing and cleaning up); `bash scripts/services.sh`
//! starts it and writes both to `target/services/env`.
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inferix_core::store::conformance::{sample_job, test_all};
use inferix_core::store::TaskStore;
use inferix_storage::{
    open_task_store, OpenError, OpenOptions, PostgresError, PostgresOptions, PostgresTaskStore,
};

mod postgres_support;
use postgres_support::*;

/// A CA that signed nothing the test server holds.
const UNRELATED_CA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/unrelated-ca.pem"
);

/// Both URLs of the test server, or `None` (after [`pg_tls_url`] has
/// skipped or failed the test).
fn urls() -> Option<(String, String)> {
    let tls = pg_tls_url()?;
    let plain = pg_url()?;
    Some((tls, plain))
}

/// The `sslrootcert` of the TLS URL: the test server's CA.
fn test_ca(tls_url: &str) -> PathBuf {
    let (_, rest) = tls_url
        .split_once("sslrootcert=")
        .expect("INFERIX_TEST_PG_TLS_URL names its sslrootcert");
    PathBuf::from(rest.split('&').next().unwrap())
}

/// A key=value connection string for the test server that presents
/// `tls_host` as the server's name for TLS while connecting to the
/// server's address.
fn keyword_url(plain_url: &str, tls_host: &str, sslmode: &str, ca: &Path) -> String {
    let config: tokio_postgres::Config = plain_url.parse().unwrap();
    let addr = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("INFERIX_TEST_PG_URL is not a TCP address: {other:?}"),
    };
    format!(
        "host={tls_host} hostaddr={addr} port={} user={} dbname={} sslmode={sslmode} \
         sslrootcert='{}'",
        config.get_ports()[0],
        config.get_user().unwrap(),
        config.get_dbname().unwrap(),
        ca.display()
    )
}

async fn open_tls(url: &str, schema: &str) -> Result<PostgresTaskStore, PostgresError> {
    PostgresTaskStore::open(PostgresOptions::new(url).with_schema(schema)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_passes_the_conformance_suite_over_tls() {
    let Some((tls_url, plain_url)) = urls() else {
        return;
    };
    let schemas = std::sync::Mutex::new(Vec::new());
    test_all(|| {
        let schema = fresh_schema("tls_conf");
        schemas.lock().unwrap().push(schema.clone());
        let url = tls_url.clone();
        async move {
            let store = open_tls(&url, &schema).await.unwrap();
            assert!(store.session_is_encrypted().await.unwrap());
            store
        }
    })
    .await;
    drop_schemas(&plain_url, &schemas.into_inner().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_tls_sessions_as_encrypted_and_plaintext_ones_not() {
    let Some((tls_url, plain_url)) = urls() else {
        return;
    };
    let schema = fresh_schema("tls_ssl");
    let full = open_tls(&tls_url, &schema).await.unwrap();
    assert!(full.session_is_encrypted().await.unwrap(), "verify-full");
    // `require` with a root file checks the chain only, as libpq does.
    let require = keyword_url(&plain_url, "127.0.0.1", "require", &test_ca(&tls_url));
    let require = open_tls(&require, &schema).await.unwrap();
    assert!(require.session_is_encrypted().await.unwrap(), "require");
    let plain = open_tls(&plain_url, &schema).await.unwrap();
    assert!(!plain.session_is_encrypted().await.unwrap(), "plaintext");

    // The listening connection speaks TLS too: a change made in plaintext
    // reaches a subscriber of the TLS store.
    let mut rx = full.subscribe().await.unwrap();
    let (job, tasks) = sample_job(0, 1, 2);
    plain.insert_job(&job, &tasks).await.unwrap();
    assert_eq!(next_id(&mut rx).await, tasks[0].id);
    drop_schemas(&plain_url, &[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_skips_the_host_name_and_verify_full_does_not() {
    let Some((tls_url, plain_url)) = urls() else {
        return;
    };
    let ca = test_ca(&tls_url);
    let schema = fresh_schema("tls_name");
    // The certificate names localhost and 127.0.0.1, not this host.
    let verify_ca = keyword_url(&plain_url, "db.invalid", "verify-ca", &ca);
    let store = open_tls(&verify_ca, &schema).await.unwrap();
    assert!(store.session_is_encrypted().await.unwrap());
    let verify_full = keyword_url(&plain_url, "db.invalid", "verify-full", &ca);
    match open_tls(&verify_full, &schema).await {
        Err(PostgresError::Tls { reason, .. }) => {
            assert!(reason.contains("not valid for name"), "{reason}")
        }
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("verify-full accepted a certificate for another name"),
    }
    let localhost = keyword_url(&plain_url, "localhost", "verify-full", &ca);
    open_tls(&localhost, &schema).await.unwrap();
    drop_schemas(&plain_url, &[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_did_not_sign_the_server_is_a_tls_error_without_retries() {
    let Some((tls_url, plain_url)) = urls() else {
        return;
    };
    let url = tls_url.replace(
        &format!("sslrootcert={}", test_ca(&tls_url).display()),
        &format!("sslrootcert={UNRELATED_CA}"),
    );
    assert_ne!(url, tls_url);
    let schema = fresh_schema("tls_wrong_ca");
    let started = Instant::now();
    let opts = OpenOptions::default().with_schema(Some(schema.clone()));
    match open_task_store(&url, &opts).await {
        Err(OpenError::Postgres {
            source: PostgresError::Tls { target, reason },
            ..
        }) => {
            assert!(target.ends_with("/inferix"), "{target}");
            assert!(reason.contains("UnknownIssuer"), "{reason}");
        }
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("trusted a server its CA did not sign"),
    }
    // Unreachable servers are retried for a minute; this is final at once.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "retried a rejected certificate for {:?}",
        started.elapsed()
    );
    // Nothing was created on the way.
    let created = raw(&plain_url)
        .await
        .query_opt(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .unwrap();
    assert!(created.is_none());
}

#[tokio::test]
async fn a_missing_root_certificate_file_is_named_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    // Port 1: nothing listens, so reaching the server would be a
    // different error.
    let url = format!(
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=verify-full&sslrootcert={}",
        missing.display()
    );
    match open_task_store(&url, &OpenOptions::default()).await {
        Err(e @ OpenError::Postgres { .. }) => {
            let text = e.to_string();
            match e {
                OpenError::Postgres {
                    source: PostgresError::RootCert { path, .. },
                    ..
                } => assert_eq!(path, missing),
                other => panic!("expected a root certificate error, got {other:?}"),
            }
            assert!(text.contains(&missing.display().to_string()), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        Err(e) => panic!("expected a root certificate error, got {e:?}"),
        Ok(_) => panic!("opened a store on port 1"),
    }
    let verify_ca = "postgres://u@127.0.0.1:1/db?sslmode=verify-ca";
    assert!(matches!(
        open_task_store(verify_ca, &OpenOptions::default()).await,
        Err(OpenError::Postgres {
            source: PostgresError::MissingRootCert { .. },
            ..
        })
    ));
}
