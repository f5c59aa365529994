//! The worker node: connects out to a manager (so it needs no open port),
//! renders what it is offered, uploads the frames and reports a result that
//! commits to the decoded pixels of every frame.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{NodeId, TaskId};
use inferix_core::por::merkle::TileTree;
use inferix_core::protocol::{ErrorCode, FailureCause, Hello, Message, Role, TaskAssignment};
use inferix_core::renderer::{RenderRequest, Renderer};
use inferix_core::task::{FrameOutput, TaskResult};
use inferix_transport::{NodeIdentity, Transport};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn, Instrument};

use crate::blob_cache;
use crate::node_metrics::NodeMetrics;
use crate::reconnect::{follow, Reconnect, SessionNode};
use crate::remote_blob::RemoteBlobStore;
use crate::{frame_codec, session, NodeError};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Manager address, or several separated by commas (the worker moves
    /// to the next when its manager is unreachable).
    pub manager: String,
    /// Inferix Bench index this worker announces.
    pub ib: f64,
    /// Capability tags.
    pub tags: Vec<String>,
    /// Admission token issued by the manager's operator.
    pub token: Option<String>,
    /// Scene cache and scratch space.
    pub work_dir: PathBuf,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            manager: "manager".into(),
            ib: 1.0,
            tags: Vec::new(),
            token: None,
            work_dir: std::env::temp_dir().join("inferix-worker"),
            heartbeat: Duration::from_secs(5),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A worker, ready to run.
pub struct WorkerNode {
    transport: Arc<dyn Transport>,
    blobs: Option<Arc<dyn BlobStore>>,
    renderer: Arc<dyn Renderer>,
    config: WorkerConfig,
    metrics: Arc<NodeMetrics>,
}

impl WorkerNode {
    /// A worker that moves scenes and frames through its manager connection.
    pub fn new(
        transport: Arc<dyn Transport>,
        renderer: Arc<dyn Renderer>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            transport,
            blobs: None,
            renderer,
            config,
            metrics: NodeMetrics::worker(),
        }
    }

    /// This worker's metrics (tasks by outcome, render seconds).
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// Reads scenes from and writes frames to `blobs` directly (a worker
    /// that can reach the network's object store).
    pub fn with_blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// This worker's node id.
    pub fn id(&self) -> NodeId {
        self.transport.local_id()
    }

    /// Runs until `shutdown` turns true, reconnecting with backoff (to the
    /// next manager, when given several) when the manager is unreachable.
    /// On shutdown a task in progress is handed back.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let links = Reconnect::new(
            &self.config.manager,
            self.config.min_backoff,
            self.config.max_backoff,
        );
        follow(&self, links, shutdown).await
    }
}

#[async_trait::async_trait]
impl SessionNode for WorkerNode {
    fn role(&self) -> &'static str {
        "worker"
    }

    async fn session(
        &self,
        links: &mut Reconnect,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let hello = Hello {
            role: Role::Worker,
            node: self.id(),
            ib: self.config.ib,
            tags: self.config.tags.clone(),
            device_class: self.renderer.device_class(),
            token: self.config.token.clone(),
            formats: self.renderer.formats().to_vec(),
        };
        let probe = session::ProbeRenderer {
            renderer: &*self.renderer,
            dir: &self.config.work_dir,
        };
        let session = session::open(&*self.transport, links.address(), hello, Some(probe)).await?;
        links.connected();
        self.metrics.session();
        let (peer, mut pushes) = (session.peer, session.pushes);
        let blobs = RemoteBlobStore::unless_direct(&self.blobs, &peer, session.max_blob_size);
        info!(worker = ?self.id(), manager = %links.address(), "worker connected");
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let mut current: Option<(TaskId, RenderJob)> = None;
        loop {
            let rendering = async {
                match current.as_mut() {
                    Some((_, f)) => f.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => {
                    if let Some((task, _)) = current.take() {
                        let _ = peer.push(Message::TaskReleased { task }).await;
                    }
                    peer.close("worker shutting down");
                    return Ok(());
                }
                _ = heartbeat.tick() => {
                    peer.push(Message::Heartbeat).await?;
                }
                Some((task, frame, fraction)) = progress_rx.recv() => {
                    let _ = peer.push(Message::TaskProgress { task, frame, fraction }).await;
                }
                outcome = rendering => {
                    let (task, _) = current.take().expect("a render was running");
                    let body = match outcome {
                        Ok(result) => {
                            self.metrics.finished("done", Some(result.render_ms as f64 / 1000.0));
                            Message::TaskDone { task, result }
                        }
                        Err((cause, error)) => {
                            warn!(?task, %error, ?cause, "render failed");
                            self.metrics.finished("failed", None);
                            Message::TaskFailed { task, error, cause }
                        }
                    };
                    peer.push(body).await?;
                }
                msg = pushes.recv() => {
                    let Some(env) = msg else { return Err(NodeError::Disconnected) };
                    match env.body {
                        Message::TaskOffer(offer) => {
                            if let Some((busy, _)) = &current {
                                warn!(?busy, offered = ?offer.task, "offered a task while busy; refusing it");
                                let _ = peer.push(Message::TaskReleased { task: offer.task }).await;
                                continue;
                            }
                            info!(worker = ?self.id(), task = ?offer.task, frames = ?offer.frames, "rendering");
                            let task = offer.task;
                            let Some(signer) = self.transport.signer() else {
                                warn!(task = ?offer.task, "this worker has no signing key; refusing the task");
                                let _ = peer.push(Message::TaskFailed { task: offer.task, error: "worker has no signing identity".into(), cause: FailureCause::Render }).await;
                                continue;
                            };
                            // Every log line of this render carries the job and task.
                            let span = tracing::info_span!("task", job = %task.job, task = %task, attempt = offer.attempt);
                            let fut = render_task(signer, offer, blobs.clone(), self.renderer.clone(), self.config.work_dir.clone(), progress_tx.clone()).instrument(span);
                            current = Some((task, Box::pin(fut)));
                        }
                        Message::TaskRevoked { task } => {
                            if current.as_ref().is_some_and(|(t, _)| *t == task) {
                                info!(worker = ?self.id(), ?task, "lease revoked; render abandoned");
                                self.metrics.finished("revoked", None);
                                current = None;
                            }
                        }
                        Message::Error { code, message } => {
                            if code == ErrorCode::UnexpectedMessage {
                                warn!(%message, "manager refused a result");
                            } else {
                                warn!(?code, %message, "manager error");
                            }
                        }
                        Message::Ok | Message::Heartbeat => {}
                        other => debug!(kind = other.kind(), "ignored message"),
                    }
                }
            }
        }
    }
}

/// A render in progress: resolves to the result or what failed and why.
type RenderJob = Pin<Box<dyn Future<Output = Result<TaskResult, (FailureCause, String)>> + Send>>;

/// Fetches the scene, renders, encodes, uploads, and builds the result.
async fn render_task(
    signer: Arc<NodeIdentity>,
    offer: TaskAssignment,
    blobs: Arc<dyn BlobStore>,
    renderer: Arc<dyn Renderer>,
    work_dir: PathBuf,
    progress: mpsc::UnboundedSender<(TaskId, u32, f32)>,
) -> Result<TaskResult, (FailureCause, String)> {
    let started = Instant::now();
    let storage = |e: String| (FailureCause::Storage, e);
    let render = |e: String| (FailureCause::Render, e);
    let scene = blob_cache::scene(&*blobs, &work_dir, &offer.scene)
        .await
        .map_err(storage)?;
    let settings = blob_cache::lit_settings(
        &*blobs,
        &work_dir,
        &offer.settings,
        offer.environment.as_ref(),
    )
    .await
    .map_err(storage)?;
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let task = offer.task;
    let n = offer.frames.len() as f32;
    let frames_list = offer.frames.clone();
    let forward = tokio::spawn(async move {
        while let Some(p) = prx.recv().await {
            let p: inferix_core::renderer::RenderProgress = p;
            let done = frames_list.iter().position(|f| *f == p.frame).unwrap_or(0) as f32;
            let _ = progress.send((task, p.frame, (done + p.fraction) / n));
        }
    });
    let req = RenderRequest {
        scene,
        format: offer.scene.format,
        frames: offer.frames.clone(),
        settings,
        // A tile task renders its tile: the frames' own pixels there.
        crop: offer.region,
        progress: Some(ptx),
    };
    let rendered = renderer.render(req).await.map_err(|e| e.to_string());
    forward.abort();
    let rendered = rendered.map_err(render)?;
    let mut frames = Vec::with_capacity(rendered.len());
    for r in rendered {
        let bytes =
            frame_codec::encode(&r.image, offer.format).map_err(|e| render(e.to_string()))?;
        // Commit to the pixels as any verifier will decode them.
        let decoded = frame_codec::decode(&bytes, offer.format, (r.image.width, r.image.height))
            .map_err(|e| render(e.to_string()))?;
        let meta = blobs
            .put_bytes(bytes)
            .await
            .map_err(|e| storage(format!("upload failed: {e}")))?;
        frames.push(FrameOutput {
            frame: r.frame,
            pixel_hash: decoded.pixel_hash(),
            blob: meta.hash,
            width: decoded.width,
            height: decoded.height,
            tile_root: TileTree::build(&decoded).root(),
        });
    }
    let mut result = TaskResult {
        worker: signer.node_id(),
        frames,
        render_ms: started.elapsed().as_millis() as u64,
        attempt: offer.attempt,
        scene: offer.scene.blob,
        device_class: renderer.device_class_for(offer.scene.format),
        public_key: Vec::new(),
        signature: Vec::new(),
    };
    result.sign(offer.task, &*signer);
    Ok(result)
}
