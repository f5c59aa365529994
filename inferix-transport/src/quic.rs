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

/// The DER of an ed25519 SubjectPublicKeyInfo up to the 32 key bytes
/// (RFC 8410): the only key type a node certificate may carry.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Installs ring as the process's default rustls crypto provider.
///
/// rustls refuses to pick a provider when a build links more than one (ring
/// through quinn and rcgen, aws-lc-rs through some other dependency) and
/// panics when a config is built without one. This transport passes its
/// provider explicitly, but other rustls users in the same binary may not;
/// calling this once from the transport's constructors spares every binary
/// from doing it. A provider installed earlier by someone else is kept.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

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

fn self_signed_certificate(
    identity: &NodeIdentity,
    key: &PrivatePkcs8KeyDer<'_>,
) -> Result<CertificateDer<'static>, TransportError> {
    let err = |e: rcgen::Error| TransportError::Io(format!("building the node certificate: {e}"));
    let key_pair =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(key, &rcgen::PKCS_ED25519).map_err(err)?;
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity.node_id().to_string());
    Ok(params.self_signed(&key_pair).map_err(err)?.der().clone())
}

fn tls_err(e: rustls::Error) -> TransportError {
    TransportError::Io(format!("TLS configuration: {e}"))
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

/// Checks peer certificates on both sides of the handshake.
#[derive(Debug)]
struct PeerVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    /// Client side: the server must be this node.
    pin: Option<NodeId>,
    /// Server side: only these clients are admitted.
    allowlist: Option<Arc<HashSet<NodeId>>>,
    /// Why the certificate was refused, so that `connect` can report
    /// [`TransportError::Refused`] rather than a bare TLS alert.
    rejection: Mutex<Option<String>>,
}

impl PeerVerifier {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let result = self.check_inner(cert);
        if let Err((reason, _)) = &result {
            tracing::debug!(%reason, "peer certificate refused");
            *self.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        }
        result.map_err(|(_, e)| e)
    }

    fn check_inner(&self, cert: &CertificateDer<'_>) -> Result<(), (String, rustls::Error)> {
        // Validity dates and the self-signature are deliberately not checked:
        // the certificate only carries the key, the handshake signature
        // proves possession of it, and strangers' clocks cannot be trusted.
        let id = node_id_of_certificate(cert).map_err(|r| {
            (
                r,
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
            )
        })?;
        let refused = |reason: String| {
            (
                reason,
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            )
        };
        if let Some(pin) = self.pin {
            if id != pin {
                return Err(refused(format!("server is node {id}, expected {pin}")));
            }
        }
        if let Some(allow) = &self.allowlist {
            if !allow.contains(&id) {
                return Err(refused(format!(
                    "node {id} is not on this listener's allowlist"
                )));
            }
        }
        Ok(())
    }

    fn rejection(&self) -> Option<String> {
        self.rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The node id of the ed25519 key a certificate carries.
fn node_id_of_certificate(cert: &CertificateDer<'_>) -> Result<NodeId, String> {
    // Parse with webpki, the same parser that checks the handshake
    // signature, so the key we name the peer by is the key that signed.
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let spki = cert.subject_public_key_info();
    match spki
        .as_ref()
        .split_first_chunk::<{ ED25519_SPKI_PREFIX.len() }>()
    {
        Some((prefix, key)) if *prefix == ED25519_SPKI_PREFIX && key.len() == 32 => {
            Ok(NodeId::from_public_key(key))
        }
        _ => Err("certificate key is not ed25519".into()),
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The authenticated node id of a connection's peer.
fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, TransportError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| TransportError::Refused("peer presented no certificate".into()))?;
    let cert = certs
        .first()
        .ok_or_else(|| TransportError::Refused("peer presented no certificate".into()))?;
    node_id_of_certificate(cert).map_err(TransportError::Refused)
}

/// Splits `"<node id>@host:port"` into the pinned id and `"host:port"`.
fn parse_addr(addr: &str) -> Result<(Option<NodeId>, &str), TransportError> {
    match addr.split_once('@') {
        Some((id, host)) => {
            let id = id
                .parse::<NodeId>()
                .map_err(|e| TransportError::Unreachable(format!("{addr}: {e}")))?;
            Ok((Some(id), host))
        }
        None => Ok((None, addr)),
    }
}

async fn resolve(host: &str) -> Result<SocketAddr, TransportError> {
    tokio::net::lookup_host(host)
        .await
        .map_err(|e| TransportError::Unreachable(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| TransportError::Unreachable(format!("{host}: no address")))
}

fn reason_bytes(reason: &str) -> &[u8] {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

/// Whether a QUIC transport error code is a TLS alert (RFC 9001 §4.8),
/// i.e. the peer's TLS stack refused us.
fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// What a failure while connecting means to the caller.
fn connect_error(addr: &str, e: ConnectionError) -> TransportError {
    match e {
        ConnectionError::ConnectionClosed(c) if is_tls_alert(c.error_code) => {
            TransportError::Refused(format!("{addr} refused the handshake: {c}"))
        }
        ConnectionError::ApplicationClosed(c) => TransportError::Refused(format!(
            "{addr} closed the connection: {}",
            String::from_utf8_lossy(&c.reason)
        )),
        ConnectionError::TimedOut => TransportError::Unreachable(format!("{addr}: no answer")),
        ConnectionError::TransportError(t) if is_tls_alert(t.code) => {
            TransportError::Refused(format!("handshake with {addr} failed: {t}"))
        }
        other => TransportError::Io(format!("{addr}: {other}")),
    }
}

/// What the end of a connection means to a receiver: `None` for an orderly
/// close, an error otherwise.
fn closed_result(e: ConnectionError) -> Result<Option<Envelope>, TransportError> {
    match e {
        ConnectionError::LocallyClosed => Ok(None),
        ConnectionError::ApplicationClosed(c) if c.error_code == VarInt::from_u32(code::CLOSED) => {
            Ok(None)
        }
        ConnectionError::ApplicationClosed(c) => Err(TransportError::Closed(Some(format!(
            "peer closed the connection with code {}: {}",
            c.error_code,
            String::from_utf8_lossy(&c.reason)
        )))),
        ConnectionError::TimedOut => Err(TransportError::Closed(Some(
            "peer stopped answering (idle timeout)".into(),
        ))),
        other => Err(TransportError::Closed(Some(other.to_string()))),
    }
}

fn read_error(e: ReadError) -> Result<Option<Envelope>, TransportError> {
    match e {
        ReadError::ConnectionLost(c) => closed_result(c),
        ReadError::Reset(code) => Err(TransportError::Closed(Some(format!(
            "peer reset the stream (code {code})"
        )))),
        other => Err(TransportError::Io(other.to_string())),
    }
}

fn write_error(e: WriteError) -> TransportError {
    match e {
        WriteError::ConnectionLost(c) => match closed_result(c) {
            Ok(_) => TransportError::Closed(None),
            Err(e) => e,
        },
        WriteError::Stopped(code) => {
            TransportError::Closed(Some(format!("peer stopped reading (code {code})")))
        }
        other => TransportError::Io(other.to_string()),
    }
}

fn preamble_read_error(e: ReadExactError) -> Result<(), ConnectionOrOther> {
    match e {
        ReadExactError::ReadError(ReadError::ConnectionLost(c)) => {
            Err(ConnectionOrOther::Connection(c))
        }
        other => Err(ConnectionOrOther::Other(format!(
            "reading the preamble: {other}"
        ))),
    }
}

fn preamble_write_error(e: WriteError) -> Result<(), ConnectionOrOther> {
    match e {
        WriteError::ConnectionLost(c) => Err(ConnectionOrOther::Connection(c)),
        other => Err(ConnectionOrOther::Other(format!(
            "writing the preamble: {other}"
        ))),
    }
}

/// A failure while setting a connection up.
enum ConnectionOrOther {
    Connection(ConnectionError),
    Other(String),
}

impl From<ConnectionError> for ConnectionOrOther {
    fn from(e: ConnectionError) -> Self {
        Self::Connection(e)
    }
}

/// Client side of the stream setup: open the stream, send the preamble, wait
/// for the server's echo (which also means we were admitted).
async fn client_stream(
    conn: &quinn::Connection,
) -> Result<(SendStream, RecvStream), ConnectionOrOther> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(PREAMBLE)
        .await
        .or_else(preamble_write_error)?;
    let mut echo = [0u8; PREAMBLE.len()];
    recv.read_exact(&mut echo)
        .await
        .or_else(preamble_read_error)?;
    if &echo != PREAMBLE {
        conn.close(VarInt::from_u32(code::PROTOCOL), b"bad preamble");
        return Err(ConnectionOrOther::Other(
            "server answered with a bad preamble".into(),
        ));
    }
    Ok((send, recv))
}

/// Server side: the mirror of [`client_stream`].
async fn server_handshake(
    incoming: quinn::Incoming,
    settings: ConnSettings,
) -> Result<Connection, String> {
    let conn = incoming.await.map_err(|e| format!("handshake: {e}"))?;
    let peer = peer_node_id(&conn).map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| format!("{peer}: {e}"))?;
    let mut preamble = [0u8; PREAMBLE.len()];
    recv.read_exact(&mut preamble)
        .await
        .map_err(|e| format!("{peer}: reading the preamble: {e}"))?;
    if &preamble != PREAMBLE {
        conn.close(VarInt::from_u32(code::PROTOCOL), b"bad preamble");
        return Err(format!("{peer}: bad preamble"));
    }
    send.write_all(PREAMBLE)
        .await
        .map_err(|e| format!("{peer}: writing the preamble: {e}"))?;
    Ok(wrap(conn, send, recv, peer, settings))
}

/// What every connection of a transport shares.
#[derive(Clone)]
struct ConnSettings {
    max_frame_size: u32,
    close_linger: Duration,
    closing: Arc<Closing>,
}

impl Inner {
    fn conn_settings(&self) -> ConnSettings {
        ConnSettings {
            max_frame_size: self.config.max_frame_size,
            close_linger: self.config.close_linger,
            closing: self.closing.clone(),
        }
    }
}

fn wrap(
    conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
    peer: NodeId,
    settings: ConnSettings,
) -> Connection {
    let max_frame_size = settings.max_frame_size;
    Connection {
        peer,
        remote_addr: format!("{peer}@{}", conn.remote_address()),
        sender: Arc::new(QuicSender {
            conn: conn.clone(),
            send: Arc::new(tokio::sync::Mutex::new(send)),
            closed: Mutex::new(None),
            settings,
        }),
        receiver: Box::new(QuicReceiver {
            conn,
            recv,
            max_frame_size,
        }),
    }
}

struct QuicSender {
    conn: quinn::Connection,
    /// Held for a whole frame so that concurrent senders never interleave.
    send: Arc<tokio::sync::Mutex<SendStream>>,
    /// Why `close` was called, once it was: later sends fail at once.
    closed: Mutex<Option<String>>,
    settings: ConnSettings,
}

#[async_trait]
impl MessageSender for QuicSender {
    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        if let Some(reason) = self
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(TransportError::Closed(Some(reason)));
        }
        let frame = encode_frame_with(PROTOCOL_VERSION, &envelope, self.settings.max_frame_size)?;
        // Waits for QUIC flow control: a slow reader slows the sender down.
        self.send
            .lock()
            .await
            .write_chunk(Bytes::from(frame))
            .await
            .map_err(write_error)
    }

    /// Closes like a socket: envelopes sent before still reach the peer
    /// (whose receiver then ends), later sends fail at once. The stream is
    /// finished now and the connection closed once the peer has acknowledged
    /// everything, or after the close linger; [`QuicTransport::wait_closed`]
    /// waits for that.
    fn close(&self, reason: &str) {
        {
            let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            if closed.is_some() {
                return;
            }
            *closed = Some(reason.to_string());
        }
        let conn = self.conn.clone();
        let reason = reason_bytes(reason).to_vec();
        let close = move || conn.close(VarInt::from_u32(code::CLOSED), &reason);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            close();
            return;
        };
        let guard = self.settings.closing.begin();
        let send = self.send.clone();
        let linger = self.settings.close_linger;
        runtime.spawn(async move {
            let delivered = async {
                // Behind any send in progress, so its frame is not cut.
                let mut send = send.lock().await;
                if send.finish().is_ok() {
                    let _ = send.stopped().await;
                }
            };
            let _ = tokio::time::timeout(linger, delivered).await;
            close();
            drop(guard);
        });
    }
}

struct QuicReceiver {
    conn: quinn::Connection,
    recv: RecvStream,
    max_frame_size: u32,
}

impl QuicReceiver {
    /// Closes the connection over a frame we cannot accept and hands the
    /// error back, so that a bad peer costs one connection, not the node.
    fn reject(&self, e: TransportError) -> TransportError {
        let c = match e {
            TransportError::UnsupportedVersion { .. } => code::UNSUPPORTED_VERSION,
            _ => code::BAD_FRAME,
        };
        tracing::debug!(peer = %self.conn.remote_address(), error = %e, "closing connection over a bad frame");
        self.conn
            .close(VarInt::from_u32(c), reason_bytes(&e.to_string()));
        e
    }
}

#[async_trait]
impl MessageReceiver for QuicReceiver {
    async fn recv(&mut self) -> Result<Option<Envelope>, TransportError> {
        let mut prefix = [0u8; LENGTH_BYTES];
        match self.recv.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(ReadExactError::FinishedEarly(_)) => {
                return Err(self.reject(TransportError::BadFrame(
                    "stream ended inside a length prefix".into(),
                )))
            }
            Err(ReadExactError::ReadError(e)) => return read_error(e),
        }
        let len = match check_length(u32::from_be_bytes(prefix), self.max_frame_size) {
            Ok(len) => len,
            Err(e) => return Err(self.reject(e)),
        };
        // Keep the pieces as they arrive (no copy), so that a peer announcing
        // a large frame and sending nothing costs us nothing, then join them
        // with one copy into a buffer of the exact size; a frame that came
        // in one piece, as small messages do, is decoded where it lies.
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut got = 0;
        while got < len {
            match self.recv.read_chunk(len - got, true).await {
                Ok(Some(chunk)) => {
                    got += chunk.bytes.len();
                    pieces.push(chunk.bytes);
                }
                Ok(None) => {
                    return Err(self.reject(TransportError::BadFrame(
                        "stream ended inside a frame".into(),
                    )))
                }
                Err(e) => return read_error(e),
            }
        }
        let decoded = match pieces.as_slice() {
            [one] => decode_body(one),
            many => {
                let mut body = Vec::with_capacity(len);
                for p in many {
                    body.extend_from_slice(p);
                }
                decode_body(&body)
            }
        };
        decoded.map(Some).map_err(|e| self.reject(e))
    }
}

struct QuicListener {
    endpoint: Endpoint,
    addr: String,
    incoming: mpsc::Receiver<Connection>,
    task: JoinHandle<()>,
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.task.abort();
        // Stop answering handshakes; the socket itself lives on while
        // connections accepted through it do.
        self.endpoint.set_server_config(None);
    }
}

#[async_trait]
impl Listener for QuicListener {
    async fn accept(&mut self) -> Result<Connection, TransportError> {
        self.incoming
            .recv()
            .await
            .ok_or(TransportError::Closed(Some("listener stopped".into())))
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Handshakes run in their own tasks, so that a slow or hostile client
/// cannot hold up others; only admitted connections reach `accept`.
async fn accept_loop(
    endpoint: Endpoint,
    tx: mpsc::Sender<Connection>,
    handshake_timeout: Duration,
    settings: ConnSettings,
) {
    while let Some(incoming) = endpoint.accept().await {
        let tx = tx.clone();
        let remote = incoming.remote_address();
        let settings = settings.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, server_handshake(incoming, settings))
                .await
            {
                Ok(Ok(conn)) => {
                    if let Err(mpsc::error::SendError(conn)) = tx.send(conn).await {
                        conn.sender.close("listener stopped");
                    }
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "incoming connection failed"),
                Err(_) => {
                    tracing::debug!(%remote, "incoming connection timed out during the handshake")
                }
            }
        });
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
        let (pin, host) = parse_addr(addr)?;
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
        Ok(wrap(conn, send, recv, peer, self.inner.conn_settings()))
    }
}

#[cfg(test)]
#[path = "quic_tests.rs"]
mod tests;
