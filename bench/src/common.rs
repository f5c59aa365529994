//! Pieces shared by the benchmarks: an instant (or IB-timed) renderer, a
//! transport wrapper that counts completed sessions, resident-set reading
//! and the scene every benchmark job renders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::image::Image;
use inferix_core::job::{FrameRange, JobSpec, SceneRef};
use inferix_core::protocol::Envelope;
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};
use inferix_transport::{
    Connection, Listener, MessageReceiver, NodeIdentity, Transport, TransportError,
};
use tokio::sync::{mpsc, watch};

use crate::BenchError;

/// Width and height of the frames benchmark workers deliver: small, so that
/// the figures measure the network's bookkeeping, not image work.
pub(crate) const FRAME_W: u32 = 16;
/// See [`FRAME_W`].
pub(crate) const FRAME_H: u32 = 8;

/// A renderer that answers at once (or after `work / ib` of possibly
/// virtual time) with a tiny deterministic image, and reports when each
/// render starts.
pub(crate) struct BenchRenderer {
    /// Modelled time per frame; zero answers at once.
    pub(crate) per_frame: Duration,
    /// Receives the moment each render starts.
    pub(crate) starts: Option<mpsc::UnboundedSender<Instant>>,
    /// Set while a render runs (the makespan run kills busy workers).
    pub(crate) busy: Arc<AtomicBool>,
}

impl BenchRenderer {
    /// A renderer that answers at once.
    pub(crate) fn instant() -> Self {
        Self {
            per_frame: Duration::ZERO,
            starts: None,
            busy: Arc::default(),
        }
    }
}

#[async_trait]
impl Renderer for BenchRenderer {
    fn name(&self) -> &str {
        "bench"
    }
    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }
    fn device_class(&self) -> String {
        "bench".into()
    }
    async fn render(&self, req: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        if let Some(s) = &self.starts {
            let _ = s.send(Instant::now());
        }
        req.validate()?;
        self.busy.store(true, Ordering::SeqCst);
        let mut out = Vec::with_capacity(req.frames.len());
        for &frame in &req.frames {
            if !self.per_frame.is_zero() {
                tokio::time::sleep(self.per_frame).await;
            }
            out.push(RenderedFrame {
                frame,
                image: Image::stand_in(frame, req.settings.width, req.settings.height),
            });
        }
        self.busy.store(false, Ordering::SeqCst);
        Ok(out)
    }
}

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
