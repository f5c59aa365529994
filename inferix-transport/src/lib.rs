//! Transports carry protocol [`Envelope`]s between nodes.
//!
//! A [`Transport`] listens and connects; a [`Connection`] is a pair of
//! halves (a cloneable sender and a receiver) bound to the authenticated
//! identity of the peer. Node code only sees these traits, so the
//! in-process transport used by tests and the demo and the QUIC transport
//! used between machines are interchangeable.

use std::sync::Arc;

use async_trait::async_trait;
use inferix_core::ids::NodeId;
use inferix_core::protocol::Envelope;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod frame;
mod identity;
mod inproc;
pub mod quic;

pub use frame::{decode_frame, encode_frame, DEFAULT_MAX_FRAME_SIZE};
pub use identity::{verify, verify_result, NodeIdentity, ResultSignatureError, KEY_FILE_NAME};
pub use inproc::{InProcNetwork, InProcTransport};
pub use quic::{install_crypto_provider, QuicConfig, QuicTransport, ServerTrust};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Nobody listens at the address.
    #[error("no listener at {0}")]
    Unreachable(String),
    /// The address is already in use.
    #[error("address {0} already in use")]
    AddressInUse(String),
    /// The connection is closed.
    #[error("connection closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    /// The peer could not be authenticated or is not admitted.
    #[error("peer refused: {0}")]
    Refused(String),
    /// A frame could not be decoded, or is too large.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// The peer speaks another protocol version; the connection is closed,
    /// since nothing it sends can be decoded.
    #[error("protocol version {theirs} not supported (this node speaks {ours})")]
    UnsupportedVersion {
        /// Version the peer's frame carried.
        theirs: u16,
        /// Version this build speaks.
        ours: u16,
    },
    /// Socket or TLS failure.
    #[error("transport I/O: {0}")]
    Io(String),
}

/// The sending half of a connection; cheap to clone and share.
#[async_trait]
pub trait MessageSender: Send + Sync {
    /// Sends one envelope, waiting while the peer's buffer is full
    /// (backpressure).
    async fn send(&self, envelope: Envelope) -> Result<(), TransportError>;
    /// Closes the connection; the peer's receiver ends.
    fn close(&self, reason: &str);
}

/// The receiving half of a connection.
#[async_trait]
pub trait MessageReceiver: Send {
    /// The next envelope, or `None` once the peer closed the connection.
    async fn recv(&mut self) -> Result<Option<Envelope>, TransportError>;
}

/// An established connection with an authenticated peer.
pub struct Connection {
    /// Who is at the other end (authenticated by the transport).
    pub peer: NodeId,
    /// Printable remote address.
    pub remote_addr: String,
    /// Sending half.
    pub sender: Arc<dyn MessageSender>,
    /// Receiving half.
    pub receiver: Box<dyn MessageReceiver>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

/// Accepts incoming connections.
#[async_trait]
pub trait Listener: Send {
    /// Waits for the next connection.
    async fn accept(&mut self) -> Result<Connection, TransportError>;
    /// Address others connect to (resolved, e.g. with the real port).
    fn local_addr(&self) -> String;
}

/// A way to reach other nodes.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This node's identity as peers see it.
    fn local_id(&self) -> NodeId;
    /// The key this node signs its results with, when it has one bound to
    /// [`Transport::local_id`]. Managers refuse unsigned task results, so a
    /// worker's transport must have one.
    fn signer(&self) -> Option<Arc<NodeIdentity>> {
        None
    }
    /// Starts listening at `addr`.
    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>, TransportError>;
    /// Connects to a listener at `addr`.
    async fn connect(&self, addr: &str) -> Result<Connection, TransportError>;
}
