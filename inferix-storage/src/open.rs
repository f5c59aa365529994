//! Opening a backend from one string, the way `object_store::parse_url`
//! does: the CLI, the benchmarks, the Python package and embedders all name
//! their task database and blob storage the same way.
//!
//! | string | task store | blob store |
//! |---|---|---|
//! | `memory:` | in memory (tests) | in memory |
//! | `sqlite:PATH`, or a plain path | SQLite file | — |
//! | `postgres://…`, `postgresql://…` | PostgreSQL (feature `postgres`) | — |
//! | `file:PATH`, `file:///PATH`, or a plain path | — | local folder |
//! | `s3://bucket[/prefix]` | — | S3-compatible (feature `s3`) |

use std::path::PathBuf;
use std::sync::Arc;

use inferix_core::blob::BlobError;
use inferix_core::store::{MemoryTaskStore, StoreError, TaskStore};

use crate::{ObjectBlobStore, SqliteTaskStore};

/// Why a backend named by a string could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The string names a scheme no backend answers to.
    #[error("{url}: unknown storage scheme {scheme:?} (expected {expected})")]
    UnknownScheme {
        /// The string given.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The schemes that would have worked.
        expected: &'static str,
    },
    /// The scheme needs a feature this build left out.
    #[error("{url}: this build has no {feature:?} support (cargo feature `{feature}`)")]
    FeatureDisabled {
        /// The string given.
        url: String,
        /// The missing feature.
        feature: &'static str,
    },
    /// The string is malformed for its scheme.
    #[error("{url}: {reason}")]
    Invalid {
        /// The string given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The task store did not open.
    #[error("task store {url}: {source}")]
    Store {
        /// The string given.
        url: String,
        /// Cause.
        source: StoreError,
    },
    /// The PostgreSQL store did not open.
    #[cfg(feature = "postgres")]
    #[error("task store {url}: {source}")]
    Postgres {
        /// The string given, without its password.
        url: String,
        /// Cause.
        source: crate::PostgresError,
    },
    /// The blob store did not open.
    #[error("blob store {url}: {source}")]
    Blob {
        /// The string given.
        url: String,
        /// Cause.
        source: BlobError,
    },
}

/// Settings that do not fit in the string: a PostgreSQL schema, an S3
/// endpoint and credentials. [`OpenOptions::from_env`] reads the usual
/// `AWS_*` variables.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// PostgreSQL schema of the task tables (default: the connection's).
    pub schema: Option<String>,
    /// URL of an S3-compatible server (default: AWS).
    pub s3_endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    pub s3_region: Option<String>,
    /// S3 access key id and secret.
    pub s3_credentials: Option<(String, String)>,
    /// PostgreSQL password replacing the URL's.
    pub postgres_password: Option<String>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("schema", &self.schema)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field(
                "s3_credentials",
                &self.s3_credentials.as_ref().map(|_| ".."),
            )
            .field(
                "postgres_password",
                &self.postgres_password.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

impl OpenOptions {
    /// Options from the environment: `AWS_ENDPOINT_URL`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID` with
    /// `AWS_SECRET_ACCESS_KEY`.
    pub fn from_env() -> OpenOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        OpenOptions {
            schema: None,
            s3_endpoint: var("AWS_ENDPOINT_URL"),
            s3_region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            s3_credentials: var("AWS_ACCESS_KEY_ID").zip(var("AWS_SECRET_ACCESS_KEY")),
            postgres_password: None,
        }
    }

    /// Connects to PostgreSQL with `password` instead of the URL's.
    pub fn with_postgres_password(mut self, password: Option<String>) -> Self {
        self.postgres_password = password;
        self
    }

    /// Sets the PostgreSQL schema.
    pub fn with_schema(mut self, schema: Option<String>) -> Self {
        self.schema = schema;
        self
    }

    /// Sets the S3-compatible server (keeps the environment's otherwise).
    pub fn with_s3_endpoint(mut self, endpoint: Option<String>) -> Self {
        if endpoint.is_some() {
            self.s3_endpoint = endpoint;
        }
        self
    }
}

/// Splits `scheme:rest`; a Windows drive letter or a plain path has none.
fn scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let plain = scheme.len() < 2
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (!plain).then_some((scheme, rest))
}

/// The path of `file:` / `sqlite:` forms: `x:PATH`, `x://PATH`, `x:///PATH`.
fn local_path(url: &str, rest: &str) -> Result<PathBuf, OpenError> {
    let path = match rest.strip_prefix("//") {
        // `file:///abs` and `file://relative` (no host part is supported).
        Some(p) => p,
        None => rest,
    };
    if path.is_empty() {
        return Err(OpenError::Invalid {
            url: url.to_string(),
            reason: "names no path".into(),
        });
    }
    Ok(PathBuf::from(path))
}

/// Opens the task store `url` names (see the [module](self) table).
pub async fn open_task_store(
    url: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn TaskStore>, OpenError> {
    let sqlite = |path: PathBuf| -> Result<Arc<dyn TaskStore>, OpenError> {
        Ok(Arc::new(SqliteTaskStore::open(&path).map_err(
            |source| OpenError::Store {
                url: url.to_string(),
                source,
            },
        )?))
    };
    match scheme(url) {
        None => sqlite(local_path(url, url)?),
        Some(("memory", "")) => Ok(Arc::new(MemoryTaskStore::new())),
        Some(("sqlite", rest)) => sqlite(local_path(url, rest)?),
        Some(("postgres" | "postgresql", _)) => open_postgres(url, options).await,
        Some((scheme, _)) => Err(OpenError::UnknownScheme {
            url: url.to_string(),
            scheme: scheme.to_string(),
            expected: "memory:, sqlite:PATH, a path, postgres://",
        }),
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, options: &OpenOptions) -> Result<Arc<dyn TaskStore>, OpenError> {
    let mut pg = crate::PostgresOptions::new(url);
    pg.schema = options.schema.clone();
    pg.password = options.postgres_password.clone();
    let store = crate::PostgresTaskStore::open_with_retry(pg, crate::Backoff::default())
        .await
        .map_err(|source| OpenError::Postgres {
            url: redact_password(url),
            source,
        })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str, _: &OpenOptions) -> Result<Arc<dyn TaskStore>, OpenError> {
    Err(OpenError::FeatureDisabled {
        url: redact_password(url),
        feature: "postgres",
    })
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((head, tail)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = tail.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{head}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Opens the blob store `url` names (see the [module](self) table).
pub fn open_blob_store(url: &str, options: &OpenOptions) -> Result<ObjectBlobStore, OpenError> {
    let blob_err = |source| OpenError::Blob {
        url: url.to_string(),
        source,
    };
    match scheme(url) {
        None => ObjectBlobStore::local(local_path(url, url)?).map_err(blob_err),
        Some(("memory", "")) => Ok(ObjectBlobStore::in_memory()),
        Some(("file", rest)) => ObjectBlobStore::local(local_path(url, rest)?).map_err(blob_err),
        Some(("s3", rest)) => open_s3(url, rest, options),
        Some((scheme, _)) => Err(OpenError::UnknownScheme {
            url: url.to_string(),
            scheme: scheme.to_string(),
            expected: "memory:, file:PATH, a path, s3://bucket[/prefix]",
        }),
    }
}

#[cfg(feature = "s3")]
fn open_s3(url: &str, rest: &str, options: &OpenOptions) -> Result<ObjectBlobStore, OpenError> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(OpenError::Invalid {
            url: url.to_string(),
            reason: "names no bucket".into(),
        });
    }
    let mut config = crate::S3Config::new(bucket)
        .with_region(
            options
                .s3_region
                .clone()
                .unwrap_or_else(|| "us-east-1".into()),
        )
        .with_prefix(prefix.trim_end_matches('/'));
    if let Some(endpoint) = &options.s3_endpoint {
        config = config.with_endpoint(endpoint.clone());
    }
    if let Some((id, secret)) = &options.s3_credentials {
        config = config.with_credentials(id.clone(), secret.clone());
    }
    ObjectBlobStore::s3(&config).map_err(|source| OpenError::Blob {
        url: url.to_string(),
        source,
    })
}

#[cfg(not(feature = "s3"))]
fn open_s3(url: &str, _: &str, _: &OpenOptions) -> Result<ObjectBlobStore, OpenError> {
    Err(OpenError::FeatureDisabled {
        url: url.to_string(),
        feature: "s3",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::blob::BlobStoreExt;

    #[tokio::test]
    async fn task_stores_open_from_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::default();
        let plain = dir.path().join("a.sqlite");
        open_task_store(plain.to_str().unwrap(), &opts)
            .await
            .unwrap();
        assert!(plain.is_file(), "a plain path is a SQLite file");
        let url = format!("sqlite:{}", dir.path().join("b.sqlite").display());
        open_task_store(&url, &opts).await.unwrap();
        assert!(dir.path().join("b.sqlite").is_file());
        let url = format!("sqlite://{}", dir.path().join("c.sqlite").display());
        open_task_store(&url, &opts).await.unwrap();
        assert!(dir.path().join("c.sqlite").is_file());
        let memory = open_task_store("memory:", &opts).await.unwrap();
        assert!(memory
            .tasks_of_job(inferix_core::ids::JobId(1))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn unknown_and_malformed_names_are_typed_errors() {
        let opts = OpenOptions::default();
        match open_task_store("mysql://h/db", &opts).await {
            Err(OpenError::UnknownScheme { scheme, .. }) => assert_eq!(scheme, "mysql"),
            other => panic!("expected an unknown scheme, got {:?}", other.map(|_| ())),
        }
        assert!(matches!(
            open_task_store("sqlite:", &opts).await,
            Err(OpenError::Invalid { .. })
        ));
        assert!(matches!(
            open_blob_store("gs://bucket", &opts),
            Err(OpenError::UnknownScheme { .. })
        ));
        assert!(matches!(
            open_blob_store("s3://", &opts),
            Err(OpenError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn blob_stores_open_from_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::default();
        for url in [
            dir.path().join("plain").display().to_string(),
            format!("file:{}", dir.path().join("f1").display()),
            format!("file://{}", dir.path().join("f2").display()),
        ] {
            let store = open_blob_store(&url, &opts).unwrap();
            let hash = store.put_bytes(b"frame".to_vec()).await.unwrap().hash;
            assert_eq!(
                store.get_bytes(hash).await.unwrap(),
                b"frame".to_vec(),
                "{url}"
            );
        }
        assert!(dir.path().join("f2").is_dir());
        let memory = open_blob_store("memory:", &opts).unwrap();
        let hash = memory.put_bytes(b"x".to_vec()).await.unwrap().hash;
        assert!(memory.get_bytes(hash).await.is_ok());
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug_output() {
        assert_eq!(
            redact_password("postgres://inferix:hunter2@db:5432/x"),
            "postgres://inferix:***@db:5432/x"
        );
        assert_eq!(redact_password("postgres://db/x"), "postgres://db/x");
        let opts = OpenOptions {
            s3_credentials: Some(("id".into(), "hunter2".into())),
            ..OpenOptions::default()
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_bad_postgres_setting_names_the_url_without_its_password() {
        // The schema is checked before any connection is tried.
        let opts = OpenOptions::default().with_schema(Some("not a schema!".into()));
        match open_task_store("postgres://u:hunter2@127.0.0.1:1/db", &opts).await {
            Err(e) => {
                assert!(matches!(e, OpenError::Postgres { .. }), "{e}");
                let text = e.to_string();
                assert!(!text.contains("hunter2"), "{text}");
                assert!(text.contains("u:***@127.0.0.1:1"), "{text}");
            }
            Ok(_) => panic!("opened a store on port 1"),
        }
    }
}
