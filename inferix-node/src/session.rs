//! Opening a session with a manager: connect, say hello, await welcome.

use std::path::Path;
use std::sync::Arc;

use inferix_core::job::OutputFormat;
use inferix_core::protocol::{AdmissionProbe, Envelope, ErrorCode, Hello, Message};
use inferix_core::renderer::{RenderRequest, Renderer, SceneFormat};
use inferix_transport::Transport;
use tokio::sync::mpsc;

use crate::rpc::RpcPeer;
use crate::NodeError;

/// An admitted session with a manager.
pub(crate) struct Session {
    /// Requests and replies.
    pub(crate) peer: Arc<RpcPeer>,
    /// Messages the manager pushes.
    pub(crate) pushes: mpsc::UnboundedReceiver<Envelope>,
    /// Largest blob the manager's store accepts.
    pub(crate) max_blob_size: u64,
}

/// What a node renders an admission probe with: its renderer and a
/// folder for the probe's scene.
pub(crate) struct ProbeRenderer<'a> {
    pub(crate) renderer: &'a dyn Renderer,
    pub(crate) dir: &'a Path,
}

/// Connects to `addr` and completes the hello/welcome exchange, rendering
/// the manager's admission probe on the way when it sends one.
pub(crate) async fn open(
    transport: &dyn Transport,
    addr: &str,
    hello: Hello,
    probe: Option<ProbeRenderer<'_>>,
) -> Result<Session, NodeError> {
    let conn = transport.connect(addr).await?;
    let (peer, pushes) = RpcPeer::start(conn);
    let mut answer = peer.request(Message::Hello(hello)).await?;
    if let Message::Probe(p) = &answer {
        let Some(probe) = &probe else {
            return Err(NodeError::Refused(
                "the manager asks for an admission render and this node has no renderer".into(),
            ));
        };
        let png = render_probe(probe, p)
            .await
            .map_err(|e| NodeError::Refused(format!("cannot render the admission probe: {e}")))?;
        answer = peer.request(Message::ProbeDone { png }).await?;
    }
    match answer {
        Message::Welcome { max_blob_size, .. } => Ok(Session {
            peer: Arc::new(peer),
            pushes,
            max_blob_size,
        }),
        Message::Error {
            code: ErrorCode::Unauthorized | ErrorCode::VersionMismatch,
            message,
        } => Err(NodeError::Refused(message)),
        Message::Error { message, .. } => Err(NodeError::Protocol(message)),
        other => Err(NodeError::Protocol(format!(
            "expected welcome, got {}",
            other.kind()
        ))),
    }
}

/// Renders the manager's probe: its scene, written to the node's folder
/// under its content hash, at its settings; PNG-encoded.
async fn render_probe(probe: &ProbeRenderer<'_>, p: &AdmissionProbe) -> Result<Vec<u8>, String> {
    tokio::fs::create_dir_all(probe.dir)
        .await
        .map_err(|e| e.to_string())?;
    let path = probe.dir.join(format!(
        "probe-{}.glb",
        inferix_core::ContentHash::of(&p.scene_glb)
    ));
    tokio::fs::write(&path, &p.scene_glb)
        .await
        .map_err(|e| e.to_string())?;
    let frames = probe
        .renderer
        .render(RenderRequest {
            scene: path.clone(),
            format: SceneFormat::Gltf,
            frames: vec![p.frame],
            settings: p.settings.clone(),
            crop: None,
            progress: None,
        })
        .await
        .map_err(|e| e.to_string());
    let _ = tokio::fs::remove_file(&path).await;
    let frame = frames?
        .into_iter()
        .next()
        .ok_or("the renderer returned no frame")?;
    crate::frame_codec::encode(&frame.image, OutputFormat::Png).map_err(|e| e.to_string())
}
