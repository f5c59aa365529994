//! Unit tests of the PostgreSQL store that need no server, or only an
//! unreachable one.

use super::*;

#[test]
fn schema_names_are_plain_identifiers() {
    for ok in ["inferix", "_t1", "net_2"] {
        assert!(validate_schema(ok).is_ok(), "{ok}");
    }
    for bad in ["", "1abc", "Upper", "a-b", "a\"b", "pg_x", &"x".repeat(49)] {
        assert!(
            matches!(
                validate_schema(bad),
                Err(PostgresError::InvalidSchema { .. })
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_bad_url_is_refused_before_connecting() {
    let err = PostgresTaskStore::open(PostgresOptions::new("postgres://host:notaport/db"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PostgresError::InvalidUrl { .. }),
        "got {err:?}"
    );
}

#[test]
fn targets_name_host_port_and_database_but_no_password() {
    let config = tokio_postgres::Config::from_str("postgres://u:secret@db.local:6543/net").unwrap();
    let t = describe_target(&config);
    assert_eq!(t, "db.local:6543/net");
    let debug = format!("{:?}", PostgresOptions::new("postgres://u:secret@h/db"));
    assert!(!debug.contains("secret"), "{debug}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error_and_unavailable_to_callers() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let options = PostgresOptions::new("postgres://postgres@127.0.0.1:1/inferix")
        .with_connect_timeout(Duration::from_secs(2));
    let err = PostgresTaskStore::open(options.clone()).await.unwrap_err();
    assert!(
        matches!(err, PostgresError::Unreachable { attempts: 1, ref target, .. } if target == "127.0.0.1:1/inferix"),
        "got {err:?}"
    );
    assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
    let backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        max_elapsed: Duration::from_millis(200),
    };
    let err = PostgresTaskStore::open_with_retry(options, backoff)
        .await
        .unwrap_err();
    match err {
        PostgresError::Unreachable { attempts, .. } => {
            assert!(attempts >= 3, "retried only {attempts} times")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
