//! The transport between machines: QUIC with mutual TLS 1.3.
//!
//! Every node presents a self-signed certificate for its ed25519 node key,
//! and both sides require one. There is no certificate authority: a peer is
//! *who holds the key*, so the verifiers below accept any self-signed
//! certificate, check that the handshake was signed by the certificate's
//! key (which proves possession), and derive the peer's [`NodeId`] from that
//! key. Who may talk to whom is then decided by node ids: a listener's
//! allowlist, or a client's pin on the server's id
//! (`"<32-hex node id>@host:port"`).
//!
//! One QUIC connection carries one [`Connection`]; envelopes flow in order on
//! a single long-lived bidirectional stream, framed as described in
//! [`crate::encode_frame`]. The client opens that stream with a short
//! preamble that the server echoes, so that `connect` only returns once the
//! server has admitted this client (QUIC would otherwise report success
//! before the server has checked the client's certificate).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use inferix_core::ids::NodeId;
use inferix_core::protocol::{Envelope, PROTOCOL_VERSION};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ConnectionError, Endpoint, ReadError, ReadExactError, RecvStream, SendStream, VarInt,
    WriteError,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::frame::{
    check_length, decode_body, encode_frame_with, DEFAULT_MAX_FRAME_SIZE, LENGTH_BYTES,
};
use crate::{
    Connection, Listener, MessageReceiver, MessageSender, NodeIdentity, Transport, TransportError,
};

/// ALPN protocol name: keeps non-Inferix QUIC clients from getting a session.
const ALPN: &[u8] = b"inferix";
/// SNI sent by clients. Servers are identified by key, not by name, so every
/// server answers to the same name.
const SERVER_NAME: &str = "inferix.node";
/// First bytes on the envelope stream, both ways.
const PREAMBLE: &[u8; 8] = b"INFERIX\0";
/// Closing reasons longer than this are cut, to keep CONNECTION_CLOSE small.
const MAX_REASON_BYTES: usize = 512;

/// Application error codes carried by CONNECTION_CLOSE.
mod code {
    /// Orderly close (`close` or every handle dropped): the peer's `recv`
    /// returns `None`.
    pub(super) const CLOSED: u32 = 0;
    /// The peer sent a frame that could not be decoded or was too large.
    pub(super) const BAD_FRAME: u32 = 1;
    /// The peer's frames carry another protocol version.
    pub(super) const UNSUPPORTED_VERSION: u32 = 2;
    /// The peer broke the connection protocol (bad preamble).
    pub(super) const PROTOCOL: u32 = 3;
}

mod addr;
mod errors;
mod listener;
mod stream;
mod tls;
mod trust;

use addr::*;
use errors::*;
use listener::*;
use stream::*;
pub use tls::install_crypto_provider;
use tls::*;
pub use trust::ServerTrust;

/// Settings of a [`QuicTransport`], quinn style: start from
/// [`QuicConfig::default`] and adjust with the setters.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    allowlist: Option<Arc<HashSet<NodeId>>>,
    keep_alive_interval: Option<Duration>,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    max_frame_size: u32,
    close_linger: Duration,
    max_udp_payload: u16,
    limits: ConnLimits,
    trust: ServerTrust,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            allowlist: None,
            // A node whose peer died (a manager killed, a worker frozen)
            // learns it within seconds, not after half a minute: pings every
            // 3 s keep a live connection heard; four missed ones end it.
            keep_alive_interval: Some(Duration::from_secs(3)),
            idle_timeout: Duration::from_secs(12),
            handshake_timeout: Duration::from_secs(10),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            close_linger: Duration::from_secs(2),
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
            limits: ConnLimits::default(),
            trust: ServerTrust::Any,
        }
    }
}

impl QuicConfig {
    /// Admits only these nodes on listeners (others fail the TLS handshake),
    /// for closed deployments where the operator knows every node.
    pub fn allow_only(&mut self, ids: impl IntoIterator<Item = NodeId>) -> &mut Self {
        self.allowlist = Some(Arc::new(ids.into_iter().collect()));
        self
    }

    /// Admits any node that proves its key (the default, for an open network
    /// where admission is decided by the node layer).
    pub fn allow_any(&mut self) -> &mut Self {
        self.allowlist = None;
        self
    }

    /// How often an idle connection pings its peer, so that NAT bindings and
    /// the idle timeout do not drop quiet but healthy connections; `None`
    /// disables pings.
    pub fn keep_alive_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long a connection may go without hearing from the peer before it
    /// is considered dead. Keep it above the keep-alive interval.
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// Upper bound on connecting (QUIC and TLS handshakes plus admission):
    /// UDP gives no "connection refused", so an unanswered connect fails
    /// only after this long.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Largest frame accepted from or sent to a peer; larger frames close the
    /// connection before any of their bytes are buffered.
    pub fn max_frame_size(&mut self, bytes: u32) -> &mut Self {
        self.max_frame_size = bytes;
        self
    }

    /// How long `close` waits for the peer to acknowledge what was sent
    /// before it (a worker's last "task handed back", say) before closing
    /// the connection anyway. A live peer acknowledges within a round trip;
    /// the bound only matters for a peer that stopped answering.
    pub fn close_linger(&mut self, linger: Duration) -> &mut Self {
        self.close_linger = linger;
        self
    }

    /// Largest UDP payload this node sends or accepts, the upper bound of
    /// path MTU discovery (see [`DEFAULT_MAX_UDP_PAYLOAD`]); values below
    /// QUIC's minimum of 1200 are raised to it.
    pub fn max_udp_payload_size(&mut self, bytes: u16) -> &mut Self {
        self.max_udp_payload = bytes.max(1200);
        self
    }

    /// Connections (handshaking or open) a listener keeps from one IP
    /// address; further ones are refused at once, before any TLS work.
    /// Default 1,024: a studio's render nodes behind one NAT fit, one
    /// host's connection flood does not.
    pub fn max_connections_per_address(&mut self, n: usize) -> &mut Self {
        self.limits.per_address = n.max(1);
        self
    }

    /// Whom `connect` trusts at an address that names no node id (see
    /// [`ServerTrust`]); pinned addresses are always checked.
    pub fn server_trust(&mut self, trust: ServerTrust) -> &mut Self {
        self.trust = trust;
        self
    }

    /// Connections (handshaking or open) a listener keeps in all; default
    /// 250,000.
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.limits.total = n.max(1);
        self
    }
}

/// Largest UDP payload that path MTU discovery may find by default.
///
/// Connections start at QUIC's safe 1200 bytes and probe upwards; a path
/// that cannot carry a probe just loses it (probes are sent with "don't
/// fragment"), so the bound costs nothing where it is not reached. Where it
/// is (loopback, jumbo-frame LANs), fewer, larger packets mean less work per
/// byte: encryption, acknowledgements and wake-ups are per packet.
///
/// Not higher: the sender batches up to 10 packets into one segmentation
/// offload (GSO) send, and the kernel refuses batches over 64 KiB; packets
/// of 65 000 bytes made every batch fail, which loss detection took for a
/// black hole, dropping the connection to 1200-byte packets for good.
///
/// Where the bound is reached it also sizes memory that every connection
/// keeps for its whole life: quinn's send buffer never shrinks, and grows
/// to fit the largest probe (about 7.5 KiB at this bound, 2.3 KiB at 1452
/// bytes) or, once the connection has sent bulk data, one offload batch of
/// ten packets (about 114 KiB at this bound, 15 KiB at 1452 bytes). Turning
/// the offload off or shortening its batches would shrink the latter, but
/// costs about half (off) or a tenth or more (five packets) of the bulk
/// throughput on loopback.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 6_500;

/// UDP receive buffer requested for every endpoint (bytes).
const SOCKET_RECEIVE_BUFFER: usize = 8 << 20;

/// Counts connections that are closing but may still owe the peer data, so
/// that a process can wait for them before it exits.
#[derive(Debug)]
struct Closing(tokio::sync::watch::Sender<usize>);

impl Closing {
    fn new() -> Arc<Self> {
        Arc::new(Self(tokio::sync::watch::channel(0).0))
    }

    fn begin(self: &Arc<Self>) -> ClosingGuard {
        self.0.send_modify(|n| *n += 1);
        ClosingGuard(self.clone())
    }

    async fn wait_none(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// One closing connection; dropped once its close is sent.
struct ClosingGuard(Arc<Closing>);

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n -= 1);
    }
}

/// A [`Transport`] over QUIC, authenticated by [`NodeIdentity`] keys.
///
/// Cheap to clone. Outgoing connections share one UDP socket per address
/// family, created on first use inside the caller's tokio runtime; use a
/// transport from one runtime only.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

struct Inner {
    identity: NodeIdentity,
    config: QuicConfig,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    provider: Arc<CryptoProvider>,
    client_v4: Mutex<Option<Endpoint>>,
    client_v6: Mutex<Option<Endpoint>>,
    closing: Arc<Closing>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("node_id", &self.inner.identity.node_id())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// A transport speaking as `identity`.
    ///
    /// Fails only if the certificate cannot be built from the key.
    pub fn new(identity: NodeIdentity, config: QuicConfig) -> Result<Self, TransportError> {
        install_crypto_provider();
        let key = PrivatePkcs8KeyDer::from(identity.pkcs8_der()?);
        let cert = self_signed_certificate(&identity, &key)?;
        let inner = Inner {
            identity,
            config,
            cert,
            key,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            client_v4: Mutex::new(None),
            client_v6: Mutex::new(None),
            closing: Closing::new(),
        };
        // Fail now rather than at the first connect on an invalid setting.
        inner.transport_config(true)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The identity this transport presents.
    pub fn identity(&self) -> &NodeIdentity {
        &self.inner.identity
    }

    /// Waits until every connection of this transport that is being closed
    /// has handed the peer what was sent before the close (each at most the
    /// configured [`QuicConfig::close_linger`]), and outgoing connections
    /// have told their peers they are closed.
    ///
    /// Call it before the process exits after closing connections: `close`
    /// finishes in the background, and an exiting process would otherwise
    /// drop a worker's last message or leave the peer to find out by idle
    /// timeout. An outgoing connection that is still open keeps it waiting
    /// until that connection ends, so bound the wait with a timeout.
    pub async fn wait_closed(&self) {
        self.inner.closing.wait_none().await;
        let endpoints: Vec<Endpoint> = [&self.inner.client_v4, &self.inner.client_v6]
            .into_iter()
            .filter_map(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        for e in endpoints {
            e.wait_idle().await;
        }
    }
}

impl Inner {
    fn transport_config(
        &self,
        server: bool,
    ) -> Result<Arc<quinn::TransportConfig>, TransportError> {
        let c = &self.config;
        let idle = quinn::IdleTimeout::try_from(c.idle_timeout).map_err(|_| {
            TransportError::Io(format!("idle timeout {:?} out of range", c.idle_timeout))
        })?;
        let mut t = quinn::TransportConfig::default();
        t.max_idle_timeout(Some(idle))
            .keep_alive_interval(c.keep_alive_interval)
            // Exactly one stream, opened by the client: a peer cannot make us
            // hold state for streams or datagrams we never read.
            .max_concurrent_bidi_streams(VarInt::from_u32(u32::from(server)))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            // Windows sized for bulk blob transfers on fast links. They are
            // limits, not allocations: memory is only used when the
            // application falls behind: an idle connection's resident
            // memory is the same with 64 KiB windows.
            .stream_receive_window(VarInt::from_u32(8 << 20))
            .receive_window(VarInt::from_u32(16 << 20))
            .send_window(16 << 20);
        let mut mtu = quinn::MtuDiscoveryConfig::default();
        mtu.upper_bound(c.max_udp_payload);
        t.mtu_discovery_config(Some(mtu));
        Ok(Arc::new(t))
    }

    /// A UDP endpoint bound to `addr`, serving with `server` when given.
    fn endpoint(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
    ) -> std::io::Result<Endpoint> {
        let mut config = quinn::EndpointConfig::default();
        config
            .max_udp_payload_size(self.config.max_udp_payload)
            .map_err(std::io::Error::other)?;
        let socket = std::net::UdpSocket::bind(addr)?;
        // The default socket buffer (about 200 KiB on Linux) holds a fraction
        // of a millisecond of a fast transfer: a receiver that is descheduled
        // that long drops datagrams, which the sender takes for congestion.
        // Best effort: the kernel caps it (net.core.rmem_max).
        let udp = quinn::udp::UdpSocketState::new((&socket).into())?;
        if let Err(e) = udp.set_recv_buffer_size((&socket).into(), SOCKET_RECEIVE_BUFFER) {
            tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
        }
        Endpoint::new(config, server, socket, Arc::new(quinn::TokioRuntime))
    }

    fn verifier(&self, pin: Option<NodeId>) -> Arc<PeerVerifier> {
        Arc::new(PeerVerifier {
            algorithms: self.provider.signature_verification_algorithms,
            pin,
            allowlist: self.config.allowlist.clone(),
            rejection: Mutex::new(None),
        })
    }

    fn server_config(&self) -> Result<quinn::ServerConfig, TransportError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_client_cert_verifier(self.verifier(None))
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(tls_err)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        // No resumption: a resumed session skips certificate verification,
        // and every connection must re-prove the peer's key.
        tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        tls.send_tls13_tickets = 0;
        let crypto = QuicServerConfig::try_from(tls)
            .map_err(|e| TransportError::Io(format!("QUIC TLS: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(self.transport_config(true)?);
        Ok(config)
    }

    fn client_config(
        &self,
        pin: Option<NodeId>,
    ) -> Result<(quinn::ClientConfig, Arc<PeerVerifier>), TransportError> {
        let verifier = self.verifier(pin);
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(tls_err)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.resumption = rustls::client::Resumption::disabled();
        tls.enable_early_data = false;
        let crypto = QuicClientConfig::try_from(tls)
            .map_err(|e| TransportError::Io(format!("QUIC TLS: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.transport_config(false)?);
        Ok((config, verifier))
    }

    fn client_endpoint(&self, v6: bool) -> Result<Endpoint, TransportError> {
        let slot = if v6 { &self.client_v6 } else { &self.client_v4 };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &*slot {
            return Ok(e.clone());
        }
        let bind: SocketAddr = if v6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = self
            .endpoint(bind, None)
            .map_err(|e| TransportError::Io(format!("binding {bind}: {e}")))?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }
}

#[async_trait]
impl Transport for QuicTransport {
    fn local_id(&self) -> NodeId {
        self.inner.identity.node_id()
    }

    fn signer(&self) -> Option<Arc<NodeIdentity>> {
        Some(Arc::new(self.inner.identity.clone()))
    }

    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>, TransportError> {
        let me = self.local_id();
        let (pin, host) = parse_addr(addr)?;
        if pin.is_some_and(|p| p != me) {
            return Err(TransportError::Io(format!(
                "cannot listen at {addr}: this node is {me}"
            )));
        }
        let socket_addr = resolve(host).await?;
        let server_config = self.inner.server_config()?;
        let endpoint = self
            .inner
            .endpoint(socket_addr, Some(server_config))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    TransportError::AddressInUse(addr.to_string())
                } else {
                    TransportError::Io(format!("binding {socket_addr}: {e}"))
                }
            })?;
        let local = endpoint
            .local_addr()
            .map_err(|e| TransportError::Io(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        let c = &self.inner.config;
        let task = tokio::spawn(accept_loop(
            endpoint.clone(),
            tx,
            c.handshake_timeout,
            c.limits,
            self.inner.conn_settings(),
        ));
        Ok(Box::new(QuicListener {
            endpoint,
            addr: format!("{me}@{local}"),
            incoming: rx,
            task,
        }))
    }

    async fn connect(&self, addr: &str) -> Result<Connection, TransportError> {
        let (named, host) = parse_addr(addr)?;
        let known = match (&self.inner.config.trust, named) {
            (ServerTrust::KnownHosts(path), None) => trust::known_id(path, host)?,
            (ServerTrust::PinnedOnly, None) => {
                return Err(TransportError::Refused(format!(
                    "{addr} names no node id: give it as <id>@{host} (as the manager \
                     prints it), so that nothing is sent to another server"
                )))
            }
            _ => None,
        };
        let pin = named.or(known);
        let socket_addr = resolve(host).await?;
        let endpoint = self.inner.client_endpoint(socket_addr.is_ipv6())?;
        let (config, verifier) = self.inner.client_config(pin)?;
        let connecting = endpoint
            .connect_with(config, socket_addr, SERVER_NAME)
            .map_err(|e| TransportError::Io(format!("{addr}: {e}")))?;
        let setup = async {
            let conn = connecting.await?;
            let (send, recv) = client_stream(&conn).await?;
            Ok::<_, ConnectionOrOther>((conn, send, recv))
        };
        let result = tokio::time::timeout(self.inner.config.handshake_timeout, setup).await;
        // Our own verifier's reason beats the TLS alert it caused.
        if let Some(reason) = verifier.rejection() {
            if let (Some(_), ServerTrust::KnownHosts(path)) = (known, &self.inner.config.trust) {
                return Err(TransportError::Refused(format!(
                    "{reason}: {host} answered with another key than the one recorded in \
                     {} when this node first connected to it; if the manager's key \
                     changed on purpose, delete that line",
                    path.display()
                )));
            }
            return Err(TransportError::Refused(reason));
        }
        let (conn, send, recv) = match result {
            Err(_) => {
                return Err(TransportError::Unreachable(format!(
                    "{addr}: no answer within {:?}",
                    self.inner.config.handshake_timeout
                )))
            }
            Ok(Err(ConnectionOrOther::Connection(e))) => return Err(connect_error(addr, e)),
            Ok(Err(ConnectionOrOther::Other(e))) => {
                return Err(TransportError::Io(format!("{addr}: {e}")))
            }
            Ok(Ok(parts)) => parts,
        };
        let peer = peer_node_id(&conn)?;
        if let (ServerTrust::KnownHosts(path), None) = (&self.inner.config.trust, pin) {
            trust::remember(path, host, peer)?;
        }
        Ok(wrap(conn, send, recv, peer, self.inner.conn_settings()))
    }
}

#[cfg(test)]
#[path = "../quic_tests.rs"]
mod tests;
