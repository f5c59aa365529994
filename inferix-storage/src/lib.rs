//! Storage backends for Inferix: the SQLite [`TaskStore`](inferix_core::store::TaskStore)
//! (the embedded default), the PostgreSQL one for managers sharing a
//! database (feature `postgres`), and a content-addressed
//! [`BlobStore`](inferix_core::blob::BlobStore) on `object_store` (local
//! filesystem, memory, S3-compatible services with feature `s3`, and any
//! other object_store backend).
//!
//! Both pass the conformance suites in `inferix-core`, so a node can swap
//! them for any other implementation without changing behaviour.

mod blob;
mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
mod sqlite;

#[cfg(feature = "s3")]
pub use blob::S3Config;
pub use blob::{ObjectBlobStore, DEFAULT_MAX_BLOB_SIZE};
pub use open::{open_blob_store, open_task_store, OpenError, OpenOptions};
#[cfg(feature = "postgres")]
pub use postgres::{Backoff, PostgresError, PostgresOptions, PostgresTaskStore};
pub use sqlite::SqliteTaskStore;
