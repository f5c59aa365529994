//! The verifier node: checks results from the frames alone (it never sees
//! the scene) and reports a verdict.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::protocol::{Hello, Message, Role, Verdict, VerificationAssignment};
use inferix_core::verify::check_plausible;
use inferix_transport::Transport;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::remote_blob::RemoteBlobStore;
use crate::{frame_codec, session, NodeError};

/// Verifier settings.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Manager address.
    pub manager: String,
    /// Admission token.
    pub token: Option<String>,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Delay before reconnecting.
    pub backoff: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            manager: "manager".into(),
            token: None,
            heartbeat: Duration::from_secs(5),
            backoff: Duration::from_millis(500),
        }
    }
}

/// A verifier, ready to run.
pub struct VerifierNode {
    transport: Arc<dyn Transport>,
    blobs: Option<Arc<dyn BlobStore>>,
    config: VerifierConfig,
}

impl VerifierNode {
    /// A verifier that fetches frames through its manager connection.
    pub fn new(transport: Arc<dyn Transport>, config: VerifierConfig) -> Self {
        Self {
            transport,
            blobs: None,
            config,
        }
    }

    /// Fetches frames from `blobs` directly.
    pub fn with_blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// This verifier's node id.
    pub fn id(&self) -> NodeId {
        self.transport.local_id()
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self.session(&mut shutdown).await {
                Ok(()) => return Ok(()),
                Err(NodeError::Refused(m)) => return Err(NodeError::Refused(m)),
                Err(e) => debug!(error = %e, "verifier session ended; reconnecting"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.backoff) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), NodeError> {
        let hello = Hello {
            role: Role::Verifier,
            node: self.id(),
            ib: 0.0,
            tags: vec![],
            device_class: String::new(),
            token: self.config.token.clone(),
        };
        let (peer, mut pushes) =
            session::open(&*self.transport, &self.config.manager, hello).await?;
        let blobs = RemoteBlobStore::unless_direct(&self.blobs, &peer);
        info!(verifier = ?self.id(), "verifier connected");
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    peer.close("verifier shutting down");
                    return Ok(());
                }
                _ = heartbeat.tick() => peer.push(Message::Heartbeat).await?,
                msg = pushes.recv() => {
                    let Some(env) = msg else { return Err(NodeError::Disconnected) };
                    if let Message::VerifyOffer(a) = env.body {
                        let verdict = verify(&*blobs, &a).await;
                        debug!(task = ?a.task, passed = verdict.passed, "verdict");
                        peer.push(Message::VerifyDone(verdict)).await?;
                    }
                }
            }
        }
    }
}

/// Checks every frame of an assignment: the file decodes, its pixels hash to
/// the committed value, it has the requested size and is not flat.
pub async fn verify(blobs: &dyn BlobStore, a: &VerificationAssignment) -> Verdict {
    let mut reasons = Vec::new();
    for f in &a.frames {
        let bytes = match blobs.get_bytes(f.blob).await {
            Ok(b) => b,
            Err(e) => {
                reasons.push(format!("frame {}: cannot fetch: {e}", f.frame));
                continue;
            }
        };
        let img = match frame_codec::decode(&bytes, a.format) {
            Ok(i) => i,
            Err(e) => {
                reasons.push(format!("frame {}: does not decode: {e}", f.frame));
                continue;
            }
        };
        if img.pixel_hash() != f.pixel_hash {
            reasons.push(format!(
                "frame {}: pixels differ from the committed hash",
                f.frame
            ));
        }
        if let Err(e) = check_plausible(&img, a.width, a.height) {
            reasons.push(format!("frame {}: {e}", f.frame));
        }
    }
    Verdict {
        verification: a.verification,
        task: a.task,
        passed: reasons.is_empty(),
        reasons,
    }
}
