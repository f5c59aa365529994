//! The object_store blob store against the shared suite, on disk and in memory.

use std::sync::Arc;

use futures::TryStreamExt;
use inferix_core::blob::conformance::{self, test_all};
use inferix_core::blob::{BlobError, BlobStore, BlobStoreExt};
use inferix_core::ContentHash;
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

/// Only blobs under the store's own prefix are listed: not uploads in
/// progress under `tmp/`, not another store's blobs in the same bucket,
/// not objects that merely sit under `blobs/` without being a blob's
/// address.
#[tokio::test]
async fn a_listing_holds_this_stores_blobs_and_nothing_else() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = ObjectBlobStore::new(inner.clone(), "tenant-a");
    let other = ObjectBlobStore::new(inner.clone(), "tenant-b");
    let meta = store.put_bytes(b"frame".to_vec()).await.unwrap();
    other.put_bytes(b"their frame".to_vec()).await.unwrap();
    let hex = meta.hash.to_hex();
    let misfiled = ContentHash::of(b"misfiled").to_hex();
    for key in [
        "tenant-a/tmp/0123456789abcdef".to_string(),
        "tenant-a/blobs/zz/not-a-hash".to_string(),
        format!("tenant-a/blobs/{}", hex),
        format!("tenant-a/blobs/{}/{}", &hex[..2], hex.to_uppercase()),
        format!(
            "tenant-a/blobs/{}/{misfiled}",
            if &misfiled[..2] == "00" { "01" } else { "00" }
        ),
        format!("tenant-a/blobs/{}/{hex}/extra", &hex[..2]),
        format!("tenant-a-2/blobs/{}/{hex}", &hex[..2]),
    ] {
        inner
            .put(
                &object_store::path::Path::from(key.as_str()),
                b"x".to_vec().into(),
            )
            .await
            .unwrap();
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].hash, listed[0].size), (meta.hash, 5));
}

/// On disk, the files object_store stages a copy in (`<name>#<n>`) and
/// uploads in progress are not blobs.
#[tokio::test]
async fn a_local_listing_skips_staging_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::local(dir.path()).unwrap();
    let meta = store.put_bytes(b"kept".to_vec()).await.unwrap();
    let hex = meta.hash.to_hex();
    let fan = dir.path().join("blobs").join(&hex[..2]);
    std::fs::write(fan.join(format!("{hex}#0")), b"staged").unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp").join("0123"), b"partial").unwrap();
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].hash, listed[0].size), (meta.hash, 4));
}

/// A store nothing was ever stored in (it has no blobs folder yet) lists
/// nothing rather than failing.
#[tokio::test]
async fn an_empty_local_store_lists_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::local(dir.path().join("fresh")).unwrap();
    assert!(store.list().await.unwrap().is_empty());
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

/// A blob torn by a crash mid-write (short) or damaged on disk (same
/// size, other bytes) is not taken for the real one: the next upload of
/// that content replaces it, and reads give the content back.
#[tokio::test]
async fn a_torn_or_damaged_blob_is_replaced_by_the_next_upload() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::local(dir.path()).unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = store.put_bytes(content.clone()).await.unwrap();
    let hex = meta.hash.to_hex();
    let file = dir.path().join("blobs").join(&hex[..2]).join(&hex);
    assert_eq!(std::fs::read(&file).unwrap(), content);

    let mut damaged = content.clone();
    damaged[123_456] ^= 0x40;
    for (what, bytes) in [("torn", content[..4096].to_vec()), ("damaged", damaged)] {
        std::fs::write(&file, &bytes).unwrap();
        let again = store.put_bytes(content.clone()).await.unwrap();
        assert_eq!(again, meta, "{what}");
        assert_eq!(
            store.get_bytes(meta.hash).await.unwrap(),
            content,
            "{what} blob replaced"
        );
    }
}

#[tokio::test]
async fn default_limit_is_generous() {
    assert_eq!(
        ObjectBlobStore::in_memory().max_blob_size(),
        inferix_storage::DEFAULT_MAX_BLOB_SIZE
    );
}

/// The S3 test server from `INFERIX_TEST_S3_*` (`bash scripts/services.sh`
/// starts one and writes them to `target/services/env`), with a fresh
/// prefix per store so cases never see each other's blobs. Without a
/// server: fails under CI, skips locally.
#[cfg(feature = "s3")]
fn s3_config() -> Option<inferix_storage::S3Config> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("INFERIX_TEST_S3_ENDPOINT") else {
        let msg = "INFERIX_TEST_S3_ENDPOINT is not set: run `bash scripts/services.sh` and \
                   `source target/services/env` (scripts/test does both)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return None;
    };
    let prefix = format!("test-{:016x}", rand::random::<u64>());
    Some(
        inferix_storage::S3Config::new(
            var("INFERIX_TEST_S3_BUCKET").unwrap_or_else(|| "inferix-test".into()),
        )
        .with_endpoint(endpoint)
        .with_region(var("INFERIX_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()))
        .with_credentials(
            var("INFERIX_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
            var("INFERIX_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
        )
        .with_prefix(prefix),
    )
}

// Each S3 test runs in a process of its own that installs no rustls crypto
// provider: building the client must not depend on one being installed.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_store_passes_the_conformance_suite() {
    let Some(config) = s3_config() else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    test_all(|| {
        let config = config.clone().with_prefix(format!(
            "{}/{}",
            config.prefix,
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        async move {
            ObjectBlobStore::s3(&config)
                .unwrap()
                .with_max_blob_size(LIMIT)
        }
    })
    .await;
    assert!(n.into_inner() > 0);
    s3_delete_all(&config).await;
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_store_uploads_large_blobs_in_parts_and_leaves_only_the_blob() {
    let Some(config) = s3_config() else { return };
    let store = ObjectBlobStore::s3(&config).unwrap();
    // Three and a half 8 MiB parts.
    let len = 28 * 1024 * 1024;
    let meta = store
        .put(Box::pin(conformance::PatternReader::new(11, len)))
        .await
        .unwrap();
    assert_eq!(meta.hash, conformance::PatternReader::hash(11, len));
    assert_eq!(store.size(meta.hash).await.unwrap(), Some(len));

    // Look at the bucket directly: the blob under its address, no
    // temporary upload left.
    let objects: Vec<(String, u64)> = s3_objects(&config)
        .await
        .into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    let hex = meta.hash.to_hex();
    assert_eq!(
        objects,
        vec![(format!("{}/blobs/{}/{hex}", config.prefix, &hex[..2]), len)]
    );
    s3_delete_all(&config).await;
}

/// The bucket of `config` without the blob layer.
#[cfg(feature = "s3")]
fn raw_s3(config: &inferix_storage::S3Config) -> object_store::aws::AmazonS3 {
    let (id, secret) = config.credentials.clone().unwrap();
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_endpoint(config.endpoint.clone().unwrap())
        .with_allow_http(true)
        .with_access_key_id(id)
        .with_secret_access_key(secret)
        .build()
        .unwrap()
}

/// Every object under the prefix of `config`.
#[cfg(feature = "s3")]
async fn s3_objects(config: &inferix_storage::S3Config) -> Vec<object_store::ObjectMeta> {
    let prefix = object_store::path::Path::from(config.prefix.as_str());
    raw_s3(config)
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap()
}

/// Empties the test's prefix, so the long-running test server does not
/// accumulate every run's blobs.
#[cfg(feature = "s3")]
async fn s3_delete_all(config: &inferix_storage::S3Config) {
    let raw = raw_s3(config);
    for meta in s3_objects(config).await {
        raw.delete(&meta.location).await.unwrap();
    }
    assert!(s3_objects(config).await.is_empty());
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn an_unreachable_s3_server_is_a_backend_error_not_a_panic() {
    // Port 1 on loopback: nothing listens there.
    let config = inferix_storage::S3Config::new("nowhere")
        .with_endpoint("http://127.0.0.1:1")
        .with_credentials("test", "test");
    let store = ObjectBlobStore::s3(&config).unwrap();
    let err = store.put_bytes(b"lost".to_vec()).await.unwrap_err();
    assert!(matches!(err, BlobError::Backend(_)), "got {err:?}");
}
