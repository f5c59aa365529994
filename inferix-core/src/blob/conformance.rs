//! The conformance suite every [`BlobStore`] backend runs.
//!
//! A backend is done when `test_all` passes with its builder:
//! ```text
//! inferix_core::blob::conformance::test_all(|| async {
//!     MyBlobStore::open_temp().with_max_blob_size(32 << 20)
//! }).await;
//! ```
//! Each case takes a fresh, empty store and panics with a message on the
//! first broken promise. Cases only use what [`BlobStore`] and
//! [`BlobStoreExt`] expose, so they hold for any backend.
//!
//! The builder must return stores whose [`BlobStore::max_blob_size`] lies in
//! [`SUITE_MIN_LIMIT`]`..=`[`SUITE_MAX_LIMIT`]: large enough that the
//! multi-chunk case fits, small enough that exceeding the limit takes a
//! moment rather than gigabytes. Large test data is generated and hashed on
//! the fly, never held in memory whole.
//!
//! One case waits for the clock to move on by a second, so the suite needs
//! a runtime whose time is real, not paused.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{BlobError, BlobInfo, BlobReader, BlobStore, BlobStoreExt};
use crate::ContentHash;

/// Smallest size limit the suite accepts from a builder.
pub const SUITE_MIN_LIMIT: u64 = 32 * 1024 * 1024;
/// Largest size limit the suite accepts from a builder.
pub const SUITE_MAX_LIMIT: u64 = 64 * 1024 * 1024;

/// Size of the multi-chunk case: several 8 MiB parts plus a short tail.
const LARGE_BLOB: u64 = 20 * 1024 * 1024 + 12_345;

/// How far a listed modification time may lie from this machine's clock:
/// a remote server keeps its own time, and some keep it in whole seconds.
/// Far below what a wrong unit (seconds for milliseconds) or a missing
/// time would give.
const CLOCK_SLACK_MS: u64 = 10 * 60 * 1000;

/// Runs every case, each on a fresh store from `build`.
pub async fn test_all<S, F, Fut>(build: F)
where
    S: BlobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let limit = build().await.max_blob_size();
    assert!(
        (SUITE_MIN_LIMIT..=SUITE_MAX_LIMIT).contains(&limit),
        "the conformance builder must set max_blob_size within {SUITE_MIN_LIMIT}..={SUITE_MAX_LIMIT}, got {limit}"
    );
    bytes_round_trip(build().await).await;
    put_is_idempotent(build().await).await;
    address_is_blake3_of_content(build().await).await;
    empty_blob_round_trips(build().await).await;
    large_blob_streams_through(build().await).await;
    missing_blob_is_not_found(build().await).await;
    delete_removes_one_blob_or_is_unsupported(build().await).await;
    list_shows_every_blob_or_is_unsupported(build().await).await;
    put_again_renews_the_modified_time(build().await).await;
    upload_at_the_limit_is_accepted(build().await).await;
    upload_over_the_limit_is_refused_and_leaves_nothing(build().await).await;
    file_round_trip(build().await).await;
    concurrent_puts_of_same_content_succeed(Arc::new(build().await)).await;
    concurrent_downloads_to_one_file_succeed(Arc::new(build().await)).await;
}

/// A deterministic pseudo-random stream of `len` bytes, so large blobs can
/// be uploaded and re-hashed without ever being held in memory.
pub struct PatternReader {
    xof: blake3::OutputReader,
    remaining: u64,
}

impl PatternReader {
    /// `len` bytes derived from `seed`; equal seeds give equal bytes.
    pub fn new(seed: u64, len: u64) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"inferix blob conformance pattern");
        h.update(&seed.to_le_bytes());
        Self {
            xof: h.finalize_xof(),
            remaining: len,
        }
    }

    /// Address of the bytes `PatternReader::new(seed, len)` yields.
    pub fn hash(seed: u64, len: u64) -> ContentHash {
        let mut r = Self::new(seed, len);
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        while r.remaining > 0 {
            let n = r.fill(&mut buf);
            h.update(&buf[..n]);
        }
        ContentHash(*h.finalize().as_bytes())
    }

    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.xof.fill(&mut buf[..n]);
        self.remaining -= n as u64;
        n
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(1 << 16);
        let n = this.fill(buf.initialize_unfilled_to(want));
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

fn pattern(seed: u64, len: u64) -> BlobReader {
    Box::pin(PatternReader::new(seed, len))
}

/// Streams a blob out and returns its length and the hash of what was read.
async fn read_hashed(store: &impl BlobStore, hash: ContentHash) -> (u64, ContentHash) {
    let mut r = store.get(hash).await.unwrap();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    (total, ContentHash(*h.finalize().as_bytes()))
}

/// Bytes put in come back unchanged, and the store knows their size.
pub async fn bytes_round_trip(store: impl BlobStore) {
    let data = b"a scene bundle, or a frame".to_vec();
    let meta = store.put_bytes(data.clone()).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(store.get_bytes(meta.hash).await.unwrap(), data);
    assert_eq!(
        store.size(meta.hash).await.unwrap(),
        Some(data.len() as u64)
    );
    assert!(store.contains(meta.hash).await.unwrap());
}

/// Putting the same content twice gives the same address and one blob.
pub async fn put_is_idempotent(store: impl BlobStore) {
    let a = store.put_bytes(b"same frame".to_vec()).await.unwrap();
    let b = store.put_bytes(b"same frame".to_vec()).await.unwrap();
    assert_eq!(a, b);
    let c = store.put_bytes(b"other frame".to_vec()).await.unwrap();
    assert_ne!(a.hash, c.hash, "different content, different address");
    assert_eq!(store.get_bytes(a.hash).await.unwrap(), b"same frame");
    assert_eq!(store.get_bytes(c.hash).await.unwrap(), b"other frame");
}

/// The address is the BLAKE3 of the content, so anyone can check a download.
pub async fn address_is_blake3_of_content(store: impl BlobStore) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = store.put_bytes(data.clone()).await.unwrap();
    assert_eq!(meta.hash, ContentHash::of(&data));
    assert_eq!(meta.hash.0, *blake3::hash(&data).as_bytes());
}

/// A zero-length blob is a blob like any other.
pub async fn empty_blob_round_trips(store: impl BlobStore) {
    let meta = store.put_bytes(Vec::new()).await.unwrap();
    assert_eq!(meta.hash, ContentHash::of(b""));
    assert_eq!(meta.size, 0);
    assert_eq!(store.size(meta.hash).await.unwrap(), Some(0));
    assert!(store.get_bytes(meta.hash).await.unwrap().is_empty());
}

/// A blob spanning several upload chunks streams in and out intact.
pub async fn large_blob_streams_through(store: impl BlobStore) {
    let expected = PatternReader::hash(1, LARGE_BLOB);
    let meta = store.put(pattern(1, LARGE_BLOB)).await.unwrap();
    assert_eq!(meta.size, LARGE_BLOB);
    assert_eq!(meta.hash, expected);
    assert_eq!(store.size(expected).await.unwrap(), Some(LARGE_BLOB));
    assert_eq!(read_hashed(&store, expected).await, (LARGE_BLOB, expected));
}

/// Unknown hashes are `NotFound` on read and `None` on size.
pub async fn missing_blob_is_not_found(store: impl BlobStore) {
    let hash = ContentHash::of(b"never uploaded");
    match store.get(hash).await {
        Err(BlobError::NotFound(h)) => assert_eq!(h, hash),
        Err(e) => panic!("expected NotFound, got {e:?}"),
        Ok(_) => panic!("expected NotFound, got a reader"),
    }
    assert_eq!(store.size(hash).await.unwrap(), None);
    assert!(!store.contains(hash).await.unwrap());
    assert!(matches!(
        store.get_bytes(hash).await,
        Err(BlobError::NotFound(_))
    ));
}

/// A deleted blob is gone and others stay; deleting it again, or one never
/// stored, is fine. A store that does not delete says so, and keeps
/// everything.
pub async fn delete_removes_one_blob_or_is_unsupported(store: impl BlobStore) {
    let gone = store.put_bytes(b"lease copy".to_vec()).await.unwrap();
    let kept = store.put_bytes(b"customer scene".to_vec()).await.unwrap();
    match store.delete(gone.hash).await {
        Err(BlobError::Unsupported(_)) => {
            assert!(store.contains(gone.hash).await.unwrap());
            return;
        }
        Err(e) => panic!("delete failed: {e}"),
        Ok(()) => {}
    }
    assert_eq!(store.size(gone.hash).await.unwrap(), None);
    assert!(matches!(
        store.get(gone.hash).await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(
        store.get_bytes(kept.hash).await.unwrap(),
        b"customer scene".to_vec()
    );
    store.delete(gone.hash).await.unwrap();
    store
        .delete(ContentHash::of(b"never uploaded"))
        .await
        .unwrap();
    // Stored again after deletion, it is whole again.
    let again = store.put_bytes(b"lease copy".to_vec()).await.unwrap();
    assert_eq!(again, gone);
    assert_eq!(
        store.get_bytes(gone.hash).await.unwrap(),
        b"lease copy".to_vec()
    );
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The listing as `(hash, size)` pairs in hash order.
fn by_hash(listed: &[BlobInfo]) -> Vec<(ContentHash, u64)> {
    let mut pairs: Vec<_> = listed.iter().map(|i| (i.hash, i.size)).collect();
    pairs.sort();
    pairs
}

/// A listing names each stored blob once, with its size and a current
/// modification time, and nothing else: neither what an upload refused
/// for its size left behind nor a deleted blob. A store that does not
/// list says so.
pub async fn list_shows_every_blob_or_is_unsupported(store: impl BlobStore) {
    match store.list().await {
        Err(BlobError::Unsupported(_)) => return,
        Err(e) => panic!("list failed: {e}"),
        Ok(listed) => assert!(listed.is_empty(), "a fresh store lists {listed:?}"),
    }
    let before = now_ms();
    let unused = store
        .put_bytes(b"uploaded, never submitted".to_vec())
        .await
        .unwrap();
    let empty = store.put_bytes(Vec::new()).await.unwrap();
    let chunked = store.put(pattern(5, 300_000)).await.unwrap();
    // Stored twice, listed once.
    store
        .put_bytes(b"uploaded, never submitted".to_vec())
        .await
        .unwrap();
    let limit = store.max_blob_size();
    assert!(matches!(
        store.put(pattern(6, limit + 1)).await,
        Err(BlobError::TooLarge { .. })
    ));
    let after = now_ms();
    let listed = store.list().await.unwrap();
    let mut expected = vec![
        (unused.hash, unused.size),
        (empty.hash, 0),
        (chunked.hash, 300_000),
    ];
    expected.sort();
    assert_eq!(by_hash(&listed), expected);
    for info in &listed {
        assert!(
            info.modified_ms + CLOCK_SLACK_MS >= before
                && info.modified_ms <= after + CLOCK_SLACK_MS,
            "blob {} stored between {before} and {after} ms lists as modified at {} ms",
            info.hash,
            info.modified_ms
        );
    }
    match store.delete(unused.hash).await {
        Err(BlobError::Unsupported(_)) => {}
        Err(e) => panic!("delete failed: {e}"),
        Ok(()) => {
            expected.retain(|(h, _)| *h != unused.hash);
            assert_eq!(by_hash(&store.list().await.unwrap()), expected);
        }
    }
}

/// Storing content that is already there renews its modification time:
/// a worker that renders a frame identical to an old one, or a client that
/// uploads its scene again, is about to name it, and a garbage collector
/// must see it as young.
pub async fn put_again_renews_the_modified_time(store: impl BlobStore) {
    let content = b"a frame rendered twice".to_vec();
    let hash = store.put_bytes(content.clone()).await.unwrap().hash;
    let modified = |listed: Vec<BlobInfo>| {
        let found: Vec<u64> = listed
            .iter()
            .filter(|i| i.hash == hash)
            .map(|i| i.modified_ms)
            .collect();
        assert_eq!(found.len(), 1, "{hash} listed {} times", found.len());
        found[0]
    };
    let first = match store.list().await {
        Err(BlobError::Unsupported(_)) => return,
        Err(e) => panic!("list failed: {e}"),
        Ok(listed) => modified(listed),
    };
    // What is under test is the clock moving on, by more than the one
    // second some servers round modification times to.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(store.put_bytes(content).await.unwrap().hash, hash);
    let second = modified(store.list().await.unwrap());
    assert!(
        second > first,
        "stored again, {hash} still lists as modified at {first} ms (now {second} ms)"
    );
}

/// A blob of exactly `max_blob_size` bytes is accepted (the limit is inclusive).
pub async fn upload_at_the_limit_is_accepted(store: impl BlobStore) {
    let limit = store.max_blob_size();
    let meta = store.put(pattern(2, limit)).await.unwrap();
    assert_eq!(meta.size, limit);
    assert_eq!(store.size(meta.hash).await.unwrap(), Some(limit));
}

/// One byte over the limit is refused with `TooLarge`, and nothing is kept:
/// neither the whole content nor the prefix that fit.
pub async fn upload_over_the_limit_is_refused_and_leaves_nothing(store: impl BlobStore) {
    let limit = store.max_blob_size();
    match store.put(pattern(3, limit + 1)).await {
        Err(BlobError::TooLarge { limit: l }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        store.size(PatternReader::hash(3, limit + 1)).await.unwrap(),
        None
    );
    assert_eq!(
        store.size(PatternReader::hash(3, limit)).await.unwrap(),
        None
    );
    let after = store.put_bytes(b"still usable".to_vec()).await.unwrap();
    assert_eq!(store.get_bytes(after.hash).await.unwrap(), b"still usable");
}

/// `put_file` and `get_to_file` move files through the store unchanged.
pub async fn file_round_trip(store: impl BlobStore) {
    let dir = std::env::temp_dir().join(format!(
        "inferix-blob-conformance-{:016x}",
        rand::thread_rng().next_u64()
    ));
    tokio::fs::create_dir_all(&dir).await.unwrap();
    let src = dir.join("in.bin");
    let dst = dir.join("out.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    tokio::fs::write(&src, &data).await.unwrap();
    let meta = store.put_file(&src).await.unwrap();
    assert_eq!(meta.hash, ContentHash::of(&data));
    let written = store.get_to_file(meta.hash, &dst).await;
    let read_back = tokio::fs::read(&dst).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    assert_eq!(written.unwrap(), data.len() as u64);
    assert!(
        read_back.unwrap() == data,
        "file content differs after get_to_file"
    );
}

/// Several uploads of the same content racing each other all succeed with
/// the same address, and the blob is readable afterwards.
pub async fn concurrent_puts_of_same_content_succeed<S: BlobStore>(store: Arc<S>) {
    let len = 3 * 1024 * 1024 + 17;
    let mut handles = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        handles.push(tokio::spawn(
            async move { store.put(pattern(4, len)).await },
        ));
    }
    let expected = PatternReader::hash(4, len);
    for h in handles {
        let meta = h.await.unwrap().unwrap();
        assert_eq!(meta.hash, expected);
        assert_eq!(meta.size, len);
    }
    assert_eq!(read_hashed(&*store, expected).await, (len, expected));
}

/// Several `get_to_file` calls writing one blob to one path at once (leases
/// of one job fetching its scene) all succeed, and the file is whole.
pub async fn concurrent_downloads_to_one_file_succeed<S: BlobStore>(store: Arc<S>) {
    let dir = std::env::temp_dir().join(format!(
        "inferix-blob-conformance-{:016x}",
        rand::thread_rng().next_u64()
    ));
    tokio::fs::create_dir_all(&dir).await.unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let hash = store.put_bytes(data.clone()).await.unwrap().hash;
    let dst = dir.join("scene.glb");
    let mut handles = Vec::new();
    for _ in 0..6 {
        let (store, dst) = (store.clone(), dst.clone());
        handles.push(tokio::spawn(
            async move { store.get_to_file(hash, &dst).await },
        ));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let read_back = tokio::fs::read(&dst).await;
    let mut left = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir).await.unwrap();
    while let Some(e) = entries.next_entry().await.unwrap() {
        left.push(e.file_name());
    }
    let _ = tokio::fs::remove_dir_all(&dir).await;
    for r in results {
        assert_eq!(
            r.unwrap(),
            data.len() as u64,
            "a concurrent download failed"
        );
    }
    assert!(read_back.unwrap() == data, "file content differs");
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("scene.glb")],
        "temporary files left behind"
    );
}
