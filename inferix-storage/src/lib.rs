//! Storage backends for Inferix: the SQLite [`TaskStore`](inferix_core::store::TaskStore)
//! (the embedded default) and a content-addressed
//! [`BlobStore`](inferix_core::blob::BlobStore) on `object_store` (local
//! filesystem, memory, and any other object_store backend).
//!
//! Both pass the conformance suites in `inferix-core`, so a node can swap
//! them for any other implementation without changing behaviour.

mod blob;
mod sqlite;

pub use blob::{ObjectBlobStore, DEFAULT_MAX_BLOB_SIZE};
pub use sqlite::SqliteTaskStore;
