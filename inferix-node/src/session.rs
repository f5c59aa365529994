//! Opening a session with a manager: connect, say hello, await welcome.

use std::sync::Arc;

use inferix_core::protocol::{Envelope, ErrorCode, Hello, Message};
use inferix_transport::Transport;
use tokio::sync::mpsc;

use crate::rpc::RpcPeer;
use crate::NodeError;

/// Connects to `addr` and completes the hello/welcome exchange; returns the
/// peer and the stream of pushed messages.
pub(crate) async fn open(
    transport: &dyn Transport,
    addr: &str,
    hello: Hello,
) -> Result<(Arc<RpcPeer>, mpsc::UnboundedReceiver<Envelope>), NodeError> {
    let conn = transport.connect(addr).await?;
    let (peer, pushes) = RpcPeer::start(conn);
    match peer.request(Message::Hello(hello)).await? {
        Message::Welcome { .. } => Ok((Arc::new(peer), pushes)),
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
