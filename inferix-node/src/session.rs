//! Opening a session with a manager: connect, say hello, await welcome.

use std::sync::Arc;

use inferix_core::protocol::{Envelope, ErrorCode, Hello, Message};
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

/// Connects to `addr` and completes the hello/welcome exchange.
pub(crate) async fn open(
    transport: &dyn Transport,
    addr: &str,
    hello: Hello,
) -> Result<Session, NodeError> {
    let conn = transport.connect(addr).await?;
    let (peer, pushes) = RpcPeer::start(conn);
    match peer.request(Message::Hello(hello)).await? {
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
