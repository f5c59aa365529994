//! An in-process transport over tokio channels, for tests, simulation and
//! the single-process demo. Identities are taken as declared: everything in
//! one process trusts everything else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use inferix_core::ids::NodeId;
use inferix_core::protocol::Envelope;
use tokio::sync::{mpsc, watch};

use crate::{
    Connection, Listener, MessageReceiver, MessageSender, NodeIdentity, Transport, TransportError,
};

/// Messages buffered per direction before senders wait.
const CHANNEL_CAPACITY: usize = 1024;

/// Listeners by address: where to hand new connections, and whose they are.
type Listeners = HashMap<String, (mpsc::Sender<Connection>, NodeId)>;

/// A registry of listeners by name, shared by every transport of one
/// simulated network.
#[derive(Clone, Default)]
pub struct InProcNetwork {
    listeners: Arc<Mutex<Listeners>>,
}

impl InProcNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport for node `id` on this network.
    pub fn transport(&self, id: NodeId) -> InProcTransport {
        InProcTransport {
            network: self.clone(),
            id,
            identity: None,
        }
    }

    /// A transport for the node owning `identity`: its id derives from the
    /// key and it can sign results, as a QUIC node does.
    pub fn node(&self, identity: NodeIdentity) -> InProcTransport {
        InProcTransport {
            network: self.clone(),
            id: identity.node_id(),
            identity: Some(Arc::new(identity)),
        }
    }
}

/// One node's handle on an [`InProcNetwork`].
#[derive(Clone)]
pub struct InProcTransport {
    network: InProcNetwork,
    id: NodeId,
    identity: Option<Arc<NodeIdentity>>,
}

/// Closing either side closes the whole connection, as with a socket.
type CloseSignal = Arc<watch::Sender<Option<String>>>;

struct ChannelSender {
    tx: mpsc::Sender<Envelope>,
    closed: CloseSignal,
}

#[async_trait]
impl MessageSender for ChannelSender {
    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        if let Some(r) = self.closed.borrow().clone() {
            return Err(TransportError::Closed(Some(r)));
        }
        self.tx
            .send(envelope)
            .await
            .map_err(|_| TransportError::Closed(None))
    }

    fn close(&self, reason: &str) {
        self.closed.send_replace(Some(reason.to_string()));
    }
}

struct ChannelReceiver {
    rx: mpsc::Receiver<Envelope>,
    closed: watch::Receiver<Option<String>>,
}

#[async_trait]
impl MessageReceiver for ChannelReceiver {
    async fn recv(&mut self) -> Result<Option<Envelope>, TransportError> {
        // What arrived before the close is still delivered, as a socket
        // delivers data received before its FIN.
        if let Ok(m) = self.rx.try_recv() {
            return Ok(Some(m));
        }
        if self.closed.borrow().is_some() {
            return Ok(None);
        }
        tokio::select! {
            biased;
            m = self.rx.recv() => Ok(m),
            _ = self.closed.wait_for(|c| c.is_some()) => Ok(None),
        }
    }
}

struct InProcListener {
    addr: String,
    rx: mpsc::Receiver<Connection>,
    network: InProcNetwork,
}

impl Drop for InProcListener {
    fn drop(&mut self) {
        self.network
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.addr);
    }
}

#[async_trait]
impl Listener for InProcListener {
    async fn accept(&mut self) -> Result<Connection, TransportError> {
        self.rx.recv().await.ok_or(TransportError::Closed(None))
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Two connected halves: what `a` holds and what `b` holds.
fn pair(a: NodeId, a_addr: &str, b: NodeId, b_addr: &str) -> (Connection, Connection) {
    let (tx_ab, rx_ab) = mpsc::channel(CHANNEL_CAPACITY);
    let (tx_ba, rx_ba) = mpsc::channel(CHANNEL_CAPACITY);
    let closed: CloseSignal = Arc::new(watch::channel(None).0);
    let at_a = Connection {
        peer: b,
        remote_addr: b_addr.to_string(),
        sender: Arc::new(ChannelSender {
            tx: tx_ab,
            closed: closed.clone(),
        }),
        receiver: Box::new(ChannelReceiver {
            rx: rx_ba,
            closed: closed.subscribe(),
        }),
    };
    let at_b = Connection {
        peer: a,
        remote_addr: a_addr.to_string(),
        sender: Arc::new(ChannelSender {
            tx: tx_ba,
            closed: closed.clone(),
        }),
        receiver: Box::new(ChannelReceiver {
            rx: rx_ab,
            closed: closed.subscribe(),
        }),
    };
    (at_a, at_b)
}

#[async_trait]
impl Transport for InProcTransport {
    fn local_id(&self) -> NodeId {
        self.id
    }

    fn signer(&self) -> Option<Arc<NodeIdentity>> {
        self.identity.clone()
    }

    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>, TransportError> {
        let mut map = self
            .network
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.get(addr).is_some_and(|(tx, _)| !tx.is_closed()) {
            return Err(TransportError::AddressInUse(addr.to_string()));
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        map.insert(addr.to_string(), (tx, self.id));
        Ok(Box::new(InProcListener {
            addr: addr.to_string(),
            rx,
            network: self.network.clone(),
        }))
    }

    async fn connect(&self, addr: &str) -> Result<Connection, TransportError> {
        let tx = self
            .network
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(addr)
            .cloned();
        let (tx, server) = tx.ok_or_else(|| TransportError::Unreachable(addr.to_string()))?;
        let me = format!("inproc:{}", self.id);
        // The server learns our id from the connection, as QUIC learns it
        // from the client certificate.
        let (mine, theirs) = pair(self.id, &me, server, addr);
        tx.send(theirs)
            .await
            .map_err(|_| TransportError::Unreachable(addr.to_string()))?;
        Ok(mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inproc_passes_the_transport_conformance_suite() {
        let net = InProcNetwork::new();
        crate::conformance::test_all(
            |i| net.transport(NodeId(1000 + i as u128)),
            |i| format!("listener-{i}"),
        )
        .await;
    }
}
