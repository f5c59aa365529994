//! Pieces shared by the benchmarks: a transport wrapper that counts
//! completed sessions, resident-set reading and the scene every benchmark
//! job renders (workers run the stand-in renderer of `inferix-core`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec, SceneRef};
use inferix_core::protocol::Envelope;
use inferix_core::renderer::SceneFormat;
use inferix_transport::{
    Connection, Listener, MessageReceiver, NodeIdentity, Transport, TransportError,
};
use tokio::sync::watch;

use crate::BenchError;

/// Width and height of the frames benchmark workers deliver: small, so that
/// the figures measure the network's bookkeeping, not image work.
pub(crate) const FRAME_W: u32 = 16;
/// See [`FRAME_W`].
pub(crate) const FRAME_H: u32 = 8;

/// Counts sessions whose first message (the manager's welcome) arrived.
#[derive(Clone)]
pub(crate) struct SessionCounter {
    tx: Arc<watch::Sender<usize>>,
}

impl SessionCounter {
    /// A counter at zero.
    pub(crate) fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(0).0),
        }
    }
    /// Sessions counted so far.
    pub(crate) fn get(&self) -> usize {
        *self.tx.borrow()
    }
    /// Waits until `n` sessions are up, or `limit` passes; returns the count.
    pub(crate) async fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let mut rx = self.tx.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|c| *c >= n)).await;
        self.get()
    }
    /// Wraps `inner` so that its outgoing sessions are counted.
    pub(crate) fn wrap<T: Transport>(&self, inner: T) -> Counted<T> {
        Counted {
            inner,
            counter: self.clone(),
        }
    }
}

/// A transport whose connections count their first received message.
pub(crate) struct Counted<T> {
    inner: T,
    counter: SessionCounter,
}

#[async_trait]
impl<T: Transport> Transport for Counted<T> {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }
    fn signer(&self) -> Option<Arc<NodeIdentity>> {
        self.inner.signer()
    }
    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>, TransportError> {
        self.inner.listen(addr).await
    }
    async fn connect(&self, addr: &str) -> Result<Connection, TransportError> {
        let mut c = self.inner.connect(addr).await?;
        c.receiver = Box::new(CountingReceiver {
            inner: c.receiver,
            counter: Some(self.counter.clone()),
        });
        Ok(c)
    }
}

struct CountingReceiver {
    inner: Box<dyn MessageReceiver>,
    counter: Option<SessionCounter>,
}

#[async_trait]
impl MessageReceiver for CountingReceiver {
    async fn recv(&mut self) -> Result<Option<Envelope>, TransportError> {
        let r = self.inner.recv().await;
        if matches!(r, Ok(Some(_))) {
            if let Some(c) = self.counter.take() {
                c.tx.send_modify(|n| *n += 1);
            }
        }
        r
    }
}

/// A reproducible node identity numbered `n` (one signing key per worker).
pub(crate) fn identity(n: u64) -> NodeIdentity {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0xb3;
    NodeIdentity::from_seed(seed)
}

/// Resident set size of this process in bytes (`/proc/self/statm`, 4 KiB
/// pages), or `None` where that file does not exist.
pub(crate) fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The benchmark scene: uploaded to `blobs` and placed in `work_dir`'s scene
/// cache, so workers sharing `work_dir` start rendering without fetching it
/// (what a warm worker with the scene cached does).
pub(crate) async fn bench_scene(
    blobs: &dyn BlobStore,
    work_dir: &Path,
) -> Result<SceneRef, BenchError> {
    // The smallest valid glTF (the manager reads a scene at submission;
    // the benchmark's renderers never do).
    let bytes = br#"{"asset":{"version":"2.0"},"scenes":[{"nodes":[]}],"scene":0}"#.to_vec();
    let meta = blobs
        .put_bytes(bytes.clone())
        .await
        .map_err(|e| BenchError::Setup(format!("cannot store the scene: {e}")))?;
    let dir: PathBuf = work_dir.join("scenes").join(meta.hash.to_hex());
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Io {
        path: dir.clone(),
        source: e,
    })?;
    let path = dir.join("bench.gltf");
    std::fs::write(&path, &bytes).map_err(|e| BenchError::Io { path, source: e })?;
    Ok(SceneRef {
        blob: meta.hash,
        format: SceneFormat::Gltf,
        file_name: "bench.gltf".into(),
    })
}

/// A job of `frames` tiny frames, `chunk` frames per task.
pub(crate) fn bench_spec(scene: SceneRef, frames: u32, chunk: u32) -> JobSpec {
    let mut spec = JobSpec::new(scene, FrameRange::new(1, frames));
    spec.settings.width = FRAME_W;
    spec.settings.height = FRAME_H;
    spec.settings.samples = 1;
    spec.chunk_size = chunk;
    spec
}

/// The `q`-quantile (0..=1) of sorted `v`.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
