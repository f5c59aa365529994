//! Node certificates and their verification: a self-signed certificate
//! per node key, accepted by who holds the key, never by an authority.

use super::*;

/// The DER of an ed25519 SubjectPublicKeyInfo up to the 32 key bytes
/// (RFC 8410): the only key type a node certificate may carry.
pub(super) const ED25519_SPKI_PREFIX: [u8; 12] = [
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

pub(super) fn self_signed_certificate(
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

pub(super) fn tls_err(e: rustls::Error) -> TransportError {
    TransportError::Io(format!("TLS configuration: {e}"))
}

/// Checks peer certificates on both sides of the handshake.
#[derive(Debug)]
pub(super) struct PeerVerifier {
    pub(super) algorithms: WebPkiSupportedAlgorithms,
    /// Client side: the server must be this node.
    pub(super) pin: Option<NodeId>,
    /// Server side: only these clients are admitted.
    pub(super) allowlist: Option<Arc<HashSet<NodeId>>>,
    /// Why the certificate was refused, so that `connect` can report
    /// [`TransportError::Refused`] rather than a bare TLS alert.
    pub(super) rejection: Mutex<Option<String>>,
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

    pub(super) fn rejection(&self) -> Option<String> {
        self.rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The node id of the ed25519 key a certificate carries.
pub(super) fn node_id_of_certificate(cert: &CertificateDer<'_>) -> Result<NodeId, String> {
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
pub(super) fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, TransportError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| TransportError::Refused("peer presented no certificate".into()))?;
    let cert = certs
        .first()
        .ok_or_else(|| TransportError::Refused("peer presented no certificate".into()))?;
    node_id_of_certificate(cert).map_err(TransportError::Refused)
}
