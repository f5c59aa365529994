//! The object_store blob store against the shared suite, on disk and in memory.

use std::sync::Arc;

use futures::TryStreamExt;
use inferix_core::blob::conformance::{self, test_all};
use inferix_core::blob::{BlobError, BlobStore, BlobStoreExt};
use inferix_storage::ObjectBlobStore;
use object_store::memory::InMemory;
use object_store::ObjectStore;

const LIMIT: u64 = conformance::SUITE_MIN_LIMIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    test_all(|| {
        let sub = dir.path().join(
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
        async move {
            ObjectBlobStore::local(sub)
                .unwrap()
                .with_max_blob_size(LIMIT)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_passes_the_conformance_suite() {
    test_all(|| async { ObjectBlobStore::in_memory().with_max_blob_size(LIMIT) }).await;
}

#[tokio::test]
async fn prefixed_store_keeps_blobs_under_its_prefix_and_nothing_else() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = ObjectBlobStore::new(inner.clone(), "tenant-a").with_max_blob_size(1024);
    let meta = store.put_bytes(b"frame".to_vec()).await.unwrap();
    let too_big = store.put_bytes(vec![7u8; 1025]).await;
    assert!(
        matches!(too_big, Err(BlobError::TooLarge { limit: 1024 })),
        "got {too_big:?}"
    );
    let keys: Vec<String> = inner
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let hex = meta.hash.to_hex();
    assert_eq!(
        keys,
        vec![format!("tenant-a/blobs/{}/{hex}", &hex[..2])],
        "no temporary objects left"
    );
}

#[tokio::test]
async fn local_store_leaves_no_files_behind_a_refused_upload() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::local(dir.path())
        .unwrap()
        .with_max_blob_size(10 * 1024 * 1024);
    let err = store
        .put(Box::pin(conformance::PatternReader::new(
            9,
            20 * 1024 * 1024,
        )))
        .await;
    assert!(
        matches!(err, Err(BlobError::TooLarge { .. })),
        "got {err:?}"
    );
    let meta = store.put_bytes(b"kept".to_vec()).await.unwrap();
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(
                    p.strip_prefix(dir.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let hex = meta.hash.to_hex();
    assert_eq!(files, vec![format!("blobs/{}/{hex}", &hex[..2])]);
}

#[tokio::test]
async fn default_limit_is_generous() {
    assert_eq!(
        ObjectBlobStore::in_memory().max_blob_size(),
        inferix_storage::DEFAULT_MAX_BLOB_SIZE
    );
}
