//! The `BlobStore` trait: scenes and frames addressed by their BLAKE3 hash.
//!
//! Content addressing makes uploads idempotent and lets anyone check what
//! they downloaded; streaming keeps large scenes out of memory.

use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::ContentHash;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

/// A readable byte stream.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Size and address of a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    /// BLAKE3 of the content.
    pub hash: ContentHash,
    /// Length in bytes.
    pub size: u64,
}

/// A stored blob as a listing shows it: what a garbage collector needs to
/// tell an old, unused blob from one that is young or still named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// BLAKE3 of the content.
    pub hash: ContentHash,
    /// Length in bytes.
    pub size: u64,
    /// When the blob was last stored, in milliseconds since the Unix epoch
    /// by the backend's clock. Storing the same content again moves it
    /// forward, so an old blob that someone uploads anew is young again.
    pub modified_ms: u64,
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No blob with this hash.
    #[error("blob {0} not found")]
    NotFound(ContentHash),
    /// The store does not offer this operation (a store reached through a
    /// manager never deletes: its users are strangers).
    #[error("{0} is not supported by this blob store")]
    Unsupported(&'static str),
    /// The blob exceeded a size limit: an upload over the store's (nothing
    /// was kept), or a read over what the reader expects.
    #[error("blob of more than {limit} bytes refused")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The stored bytes do not hash to their address.
    #[error("blob {expected} is corrupt (content hashes to {actual})")]
    Corrupt {
        /// Address.
        expected: ContentHash,
        /// Hash of what was read.
        actual: ContentHash,
    },
    /// Local I/O.
    #[error("blob I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The backend (object store, network) failed.
    #[error("blob backend: {0}")]
    Backend(String),
}

/// Content-addressed storage of scenes and frames.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams `reader` into the store and returns its address. Uploading
    /// the same content twice stores it once, and renews its
    /// [`BlobInfo::modified_ms`]: whoever uploads content is about to name
    /// it, so a garbage collector must not take it for old.
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError>;
    /// Streams a blob out.
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError>;
    /// Size of a blob, `None` when absent.
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError>;
    /// Largest blob accepted by `put`.
    fn max_blob_size(&self) -> u64;
    /// Removes a blob; removing an absent one is not an error. Content is
    /// shared by address, so only its owner may call this on blobs nobody
    /// else can have uploaded (a lease's watermarked copy, say).
    ///
    /// The default is [`BlobError::Unsupported`].
    async fn delete(&self, hash: ContentHash) -> Result<(), BlobError> {
        let _ = hash;
        Err(BlobError::Unsupported("deleting"))
    }
    /// Every stored blob, in no particular order; uploads still in
    /// progress are not blobs yet and are left out. A blob stored or
    /// deleted while the listing runs may or may not be in it.
    ///
    /// A whole `Vec` rather than a stream: an entry is 48 bytes, so even
    /// millions of blobs fit a manager's memory, and the one caller (the
    /// garbage collector) holds a set of every referenced hash of the same
    /// order anyway; a stream would save a constant factor at the price of
    /// a stream type in every backend and wrapper.
    ///
    /// The default is [`BlobError::Unsupported`].
    async fn list(&self) -> Result<Vec<BlobInfo>, BlobError> {
        Err(BlobError::Unsupported("listing"))
    }
}

/// A shared store is a store, so code that takes `impl BlobStore` (the
/// conformance suite, wrappers) accepts the `Arc<dyn BlobStore>` nodes hold.
#[async_trait]
impl<T: BlobStore + ?Sized> BlobStore for std::sync::Arc<T> {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        (**self).put(reader).await
    }
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        (**self).get(hash).await
    }
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        (**self).size(hash).await
    }
    fn max_blob_size(&self) -> u64 {
        (**self).max_blob_size()
    }
    async fn delete(&self, hash: ContentHash) -> Result<(), BlobError> {
        (**self).delete(hash).await
    }
    async fn list(&self) -> Result<Vec<BlobInfo>, BlobError> {
        (**self).list().await
    }
}

/// Conveniences on top of [`BlobStore`].
#[async_trait]
pub trait BlobStoreExt: BlobStore {
    /// Stores a byte slice.
    async fn put_bytes(&self, bytes: Vec<u8>) -> Result<BlobMeta, BlobError> {
        self.put(Box::pin(std::io::Cursor::new(bytes))).await
    }

    /// Stores a local file without reading it whole into memory.
    async fn put_file(&self, path: &Path) -> Result<BlobMeta, BlobError> {
        let f = tokio::fs::File::open(path).await?;
        self.put(Box::pin(f)).await
    }

    /// Reads a whole blob, checking its hash.
    async fn get_bytes(&self, hash: ContentHash) -> Result<Vec<u8>, BlobError> {
        self.get_bytes_at_most(hash, u64::MAX).await
    }

    /// Reads a whole blob of at most `limit` bytes, checking its hash; a
    /// longer one is [`BlobError::TooLarge`] after reading `limit + 1`
    /// bytes of it, so a blob named by someone else (a worker's frame, say)
    /// cannot make the reader hold more than it expects.
    async fn get_bytes_at_most(&self, hash: ContentHash, limit: u64) -> Result<Vec<u8>, BlobError> {
        let r = self.get(hash).await?;
        let mut out = Vec::new();
        r.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .await?;
        if out.len() as u64 > limit {
            return Err(BlobError::TooLarge { limit });
        }
        let actual = ContentHash::of(&out);
        if actual != hash {
            return Err(BlobError::Corrupt {
                expected: hash,
                actual,
            });
        }
        Ok(out)
    }

    /// Streams a blob to a local file, checking its hash on the way.
    ///
    /// The bytes go to a temporary file of this call's own, renamed over
    /// `path` once complete: downloads of one blob to one path may run at
    /// once (several leases of a job preparing its scene), and each must
    /// neither truncate nor move away the others' file.
    async fn get_to_file(&self, hash: ContentHash, path: &Path) -> Result<u64, BlobError> {
        let mut r = self.get(hash).await?;
        let tmp = partial_path(path);
        let mut f = tokio::fs::File::create(&tmp).await?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n]).await?;
            total += n as u64;
        }
        f.flush().await?;
        drop(f);
        let actual = ContentHash(*hasher.finalize().as_bytes());
        if actual != hash {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(BlobError::Corrupt {
                expected: hash,
                actual,
            });
        }
        if let Err(e) = tokio::fs::rename(&tmp, path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(total)
    }

    /// Whether the blob exists.
    async fn contains(&self, hash: ContentHash) -> Result<bool, BlobError> {
        Ok(self.size(hash).await?.is_some())
    }
}

impl<T: BlobStore + ?Sized> BlobStoreExt for T {}

/// A temporary name beside `path` that no other download (of this process
/// or another) uses.
fn partial_path(path: &Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()))
}
