//! [`BlobStore`] on the `object_store` crate, so one implementation serves
//! the local filesystem, memory and S3-compatible services
//! ([`ObjectBlobStore::s3`], with the `s3` feature).
//!
//! Layout under the store's prefix:
//! - `blobs/<first two hex digits>/<64 hex digits>`: finished blobs. The
//!   fan-out directory keeps any one directory small on filesystems.
//! - `tmp/<random>`: uploads in progress. Content is streamed there while
//!   it is hashed, because the address is only known at the end; then it
//!   is copied to its address. Uploads cancelled by dropping the future may
//!   leave objects here, which are safe to delete once old.
//!
//! [`BlobStore::list`] reads `blobs/` only, and of it only keys that are a
//! blob's address (the local backend's own staging files end in `#<n>`),
//! so an upload in progress is never taken for a blob.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use inferix_core::blob::{BlobError, BlobInfo, BlobMeta, BlobReader, BlobStore};
use inferix_core::ContentHash;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Default upload limit: large enough for production scene bundles.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 4 * 1024 * 1024 * 1024;

/// Size of each multipart part. S3 requires at least 5 MiB per part (bar
/// the last), and this bounds the memory an upload buffers.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploaded concurrently; more only adds buffered memory.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes read from the caller's reader at a time.
const READ_SIZE: usize = 256 * 1024;

/// Where an S3 bucket is and how to sign requests to it, for
/// [`ObjectBlobStore::s3`].
#[cfg(feature = "s3")]
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Region the bucket is in (S3-compatible servers accept any).
    pub region: String,
    /// Server URL for S3-compatible services (`http://127.0.0.1:9000`);
    /// `None` is AWS itself.
    pub endpoint: Option<String>,
    /// Access key id and secret; `None` takes them from the environment's
    /// instance or container credentials.
    pub credentials: Option<(String, String)>,
    /// Permits plain `http://` endpoints (a server on loopback or a
    /// private network).
    pub allow_http: bool,
    /// Key prefix under which this store keeps its objects.
    pub prefix: String,
}

#[cfg(feature = "s3")]
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|(id, _)| id),
            )
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "s3")]
impl S3Config {
    /// The bucket `bucket` on AWS in `us-east-1`, credentials from the
    /// environment, no prefix.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            endpoint: None,
            credentials: None,
            allow_http: false,
            prefix: String::new(),
        }
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Uses the S3-compatible server at `url`; an `http://` URL also
    /// permits plain HTTP.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.allow_http |= url.starts_with("http://");
        self.endpoint = Some(url);
        self
    }

    /// Signs requests with this access key.
    pub fn with_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some((id.into(), secret.into()));
        self
    }

    /// Keeps objects under `prefix` (several stores can share a bucket).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// Content-addressed blobs in any [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    max_blob_size: u64,
    /// The folder of a local store: promoted blobs are synced to disk
    /// there, so an acknowledged upload survives a power cut.
    local_root: Option<std::path::PathBuf>,
}

impl ObjectBlobStore {
    /// Blobs under `prefix` in `store`; any object_store backend works
    /// (S3, GCS, Azure, …) as long as it supports multipart uploads.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<Path>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            local_root: None,
        }
    }

    /// Blobs in the local directory `dir`, created if missing (the embedded
    /// default).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, BlobError> {
        inferix_core::fs::create_private_dir(dir.as_ref())?;
        let fs = LocalFileSystem::new_with_prefix(dir.as_ref()).map_err(backend)?;
        let mut store = Self::new(Arc::new(fs), Path::default());
        store.local_root = Some(dir.as_ref().to_path_buf());
        Ok(store)
    }

    /// Blobs in memory, lost on drop (tests, simulation).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(InMemory::new()), Path::default())
    }

    /// Blobs in an S3 bucket (AWS or any S3-compatible server). Uploads go
    /// up in multipart parts of 8 MiB, so a blob is never whole in memory.
    ///
    /// The HTTP client uses rustls with the ring provider chosen
    /// explicitly, so building one never depends on a process-wide
    /// default provider being installed.
    #[cfg(feature = "s3")]
    pub fn s3(config: &S3Config) -> Result<Self, BlobError> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            // Path-style addressing: S3-compatible servers rarely have
            // per-bucket host names.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some((id, secret)) = &config.credentials {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let store = builder.build().map_err(backend)?;
        Ok(Self::new(
            Arc::new(store),
            Path::from(config.prefix.as_str()),
        ))
    }

    /// Refuses uploads larger than `bytes` with [`BlobError::TooLarge`].
    pub fn with_max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    fn key(&self, hash: ContentHash) -> Path {
        let hex = hash.to_hex();
        self.prefix
            .child("blobs")
            .child(&hex[..2])
            .child(hex.as_str())
    }

    fn tmp_key(&self) -> Path {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        self.prefix.child("tmp").child(hex_string(&id))
    }

    /// Streams `reader` to `tmp`, returning the address and size.
    async fn upload(
        &self,
        reader: &mut BlobReader,
        writer: &mut WriteMultipart,
    ) -> Result<BlobMeta, BlobError> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; READ_SIZE];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > self.max_blob_size {
                return Err(BlobError::TooLarge {
                    limit: self.max_blob_size,
                });
            }
            hasher.update(&buf[..n]);
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(backend)?;
            writer.write(&buf[..n]);
        }
        Ok(BlobMeta {
            hash: ContentHash(*hasher.finalize().as_bytes()),
            size,
        })
    }

    /// Makes the finished upload at `tmp` visible at `key`. An object
    /// already there is overwritten: its bytes are the same when it is
    /// intact and are replaced when a crash tore it or the disk damaged it,
    /// and either way the blob is as new, so a garbage collector that keeps
    /// blobs stored within its retention period keeps content someone just
    /// uploaded again (see [`BlobInfo::modified_ms`]). Object stores copy
    /// atomically (the local one links and renames), so a reader sees the
    /// old object or the new one, never a mix.
    async fn promote(&self, tmp: &Path, key: &Path) -> Result<(), BlobError> {
        self.store.copy(tmp, key).await.map_err(backend)?;
        self.sync(key).await
    }

    /// The blob whose address `location` is, if it is one: the prefix,
    /// `blobs`, the fan-out folder of the hash's first two digits and the
    /// hash in lower-case hex.
    fn blob_at(&self, location: &Path) -> Option<ContentHash> {
        let mut parts = location.prefix_match(&self.prefix)?;
        let (blobs, fan, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || blobs.as_ref() != "blobs" {
            return None;
        }
        let hash: ContentHash = name.as_ref().parse().ok()?;
        let hex = hash.to_hex();
        (hex == name.as_ref() && hex[..2] == *fan.as_ref()).then_some(hash)
    }

    /// Flushes a promoted blob of a local store, and the folders that name
    /// it, to disk; other backends acknowledge only what they have stored.
    async fn sync(&self, key: &Path) -> Result<(), BlobError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = key
            .parts()
            .fold(root.clone(), |p, part| p.join(part.as_ref()));
        let root = root.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            // The fan-out folder holds the new name, and the blobs folder
            // may hold a new fan-out folder.
            let mut dir = file.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Backend(format!("sync task failed: {e}")))??;
        Ok(())
    }

    async fn remove_tmp(&self, tmp: &Path) {
        match self.store.delete(tmp).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(path = %tmp, error = %e, "could not delete temporary upload"),
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, mut reader: BlobReader) -> Result<BlobMeta, BlobError> {
        let tmp = self.tmp_key();
        let upload = self.store.put_multipart(&tmp).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let meta = match self.upload(&mut reader, &mut writer).await {
            Ok(meta) => meta,
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(path = %tmp, error = %abort, "could not abort upload");
                }
                self.remove_tmp(&tmp).await;
                return Err(e);
            }
        };
        let promoted = match writer.finish().await {
            Ok(_) => self.promote(&tmp, &self.key(meta.hash)).await,
            Err(e) => Err(backend(e)),
        };
        self.remove_tmp(&tmp).await;
        promoted.map(|()| meta)
    }

    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        let res = self
            .store
            .get(&self.key(hash))
            .await
            .map_err(|e| not_found_or(e, hash))?;
        Ok(Box::pin(StreamReader {
            stream: res.into_stream(),
            chunk: Bytes::new(),
        }))
    }

    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.key(hash)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn max_blob_size(&self) -> u64 {
        self.max_blob_size
    }

    async fn delete(&self, hash: ContentHash) -> Result<(), BlobError> {
        match self.store.delete(&self.key(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(&self) -> Result<Vec<BlobInfo>, BlobError> {
        let mut objects = self.store.list(Some(&self.prefix.child("blobs")));
        let mut out = Vec::new();
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(backend)?;
            let Some(hash) = self.blob_at(&meta.location) else {
                tracing::debug!(path = %meta.location, "not a blob's address; not listed");
                continue;
            };
            out.push(BlobInfo {
                hash,
                size: meta.size,
                // Before 1970 only on a broken clock, which says nothing
                // about the blob's age: taken as young, since keeping a
                // blob is always safe.
                modified_ms: u64::try_from(meta.last_modified.timestamp_millis())
                    .unwrap_or(u64::MAX),
            });
        }
        Ok(out)
    }
}

fn backend(e: object_store::Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

fn not_found_or(e: object_store::Error, hash: ContentHash) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(hash),
        e => backend(e),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adapts object_store's byte stream to `AsyncRead` so callers can stream
/// a blob without it ever being whole in memory.
struct StreamReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = buf.remaining().min(this.chunk.len());
                buf.put_slice(&this.chunk.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(this.stream.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => this.chunk = bytes,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}
