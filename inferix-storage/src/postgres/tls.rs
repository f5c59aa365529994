//! TLS to the server, as the connection string's libpq parameters
//! `sslmode` and `sslrootcert` ask (the table of modes, and why `require`
//! checks more than libpq's, is in the [module](super) docs).
//!
//! tokio-postgres knows neither `verify-*` nor `sslrootcert`, so both
//! parameters are taken out of the string before it is parsed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;

use super::PostgresError;

/// What hands tokio-postgres its TLS streams. Every mode uses this one
/// type, so the pool and the listener have one connection type; in
/// plaintext modes tokio-postgres is told `sslmode=disable` and never
/// calls it.
pub(super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// How much TLS the connection string asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsMode {
    /// `disable`, `allow`, `prefer` or no `sslmode`.
    Plain,
    /// `require`.
    Require,
    /// `verify-ca`.
    VerifyCa,
    /// `verify-full`.
    VerifyFull,
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsParams {
    pub(super) mode: TlsMode,
    /// `sslrootcert`: a PEM file of the CA certificates to trust.
    pub(super) root_cert: Option<PathBuf>,
}

impl TlsParams {
    /// tokio-postgres's setting for this mode.
    pub(super) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            TlsMode::Plain => SslMode::Disable,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector for this mode. Reads the root certificates now, so
    /// that a bad file is reported when the store opens rather than as a
    /// failed handshake on every connection.
    pub(super) fn connector(&self) -> Result<Connector, PostgresError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::TlsConfig {
                reason: e.to_string(),
            })?;
        let config = match (self.mode, &self.root_cert) {
            (TlsMode::Plain, _) => builder.with_root_certificates(RootCertStore::empty()),
            (TlsMode::VerifyCa, None) => {
                return Err(PostgresError::MissingRootCert {
                    sslmode: "verify-ca",
                })
            }
            (TlsMode::Require | TlsMode::VerifyCa, Some(path)) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: Arc::new(roots_from_file(path)?),
                    algorithms: provider.signature_verification_algorithms,
                })),
            (TlsMode::VerifyFull, Some(path)) => {
                builder.with_root_certificates(roots_from_file(path)?)
            }
            (TlsMode::Require | TlsMode::VerifyFull, None) => {
                builder.with_root_certificates(system_roots()?)
            }
        };
        Ok(Connector::new(config.with_no_client_auth()))
    }
}

/// Takes `sslmode` and `sslrootcert` out of `url` (a `postgres://` URL
/// or a libpq key=value string): returns the rest, for tokio-postgres,
/// and what they asked for. The last of repeated parameters wins, as in
/// libpq.
pub(super) fn split_tls_params(url: &str) -> Result<(String, TlsParams), PostgresError> {
    let (rest, found) = if is_url(url) {
        strip_url_params(url)?
    } else {
        strip_keyword_params(url)?
    };
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in found {
        match key {
            Param::SslMode => mode = Some(value),
            Param::RootCert => root_cert = Some(PathBuf::from(value)),
        }
    }
    let mode = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => TlsMode::Plain,
        Some("require") => TlsMode::Require,
        Some("verify-ca") => TlsMode::VerifyCa,
        Some("verify-full") => TlsMode::VerifyFull,
        Some(other) => {
            return Err(PostgresError::InvalidUrl {
                reason: format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                ),
            })
        }
    };
    Ok((rest, TlsParams { mode, root_cert }))
}

/// The parameters taken out of a connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    SslMode,
    RootCert,
}

impl Param {
    fn of(key: &str) -> Option<Param> {
        match key {
            "sslmode" => Some(Param::SslMode),
            "sslrootcert" => Some(Param::RootCert),
            _ => None,
        }
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

fn invalid(reason: impl Into<String>) -> PostgresError {
    PostgresError::InvalidUrl {
        reason: reason.into(),
    }
}

/// The query of a URL is what follows the first `?` after the
/// credentials, which end at the first `@` (tokio-postgres splits it the
/// same way, so a `?` in a password does not start the query).
fn strip_url_params(url: &str) -> Result<(String, Vec<(Param, String)>), PostgresError> {
    let after_creds = url.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[after_creds..].find('?').map(|q| after_creds + q) else {
        return Ok((url.to_string(), Vec::new()));
    };
    let (base, query) = (&url[..q], &url[q + 1..]);
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        match Param::of(&percent_decode(key)?) {
            Some(param) => {
                let Some((_, value)) = pair.split_once('=') else {
                    return Err(invalid("unterminated parameter"));
                };
                found.push((param, percent_decode(value)?));
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, found))
}

/// Decodes `%XX` escapes, as tokio-postgres does for URL parameters.
fn percent_decode(s: &str) -> Result<String, PostgresError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a URL parameter is not UTF-8 once decoded"))
}

/// The key=value form: `key = value` pairs separated by whitespace, a
/// value either bare (ending at whitespace) or in single quotes, with `\`
/// escaping the next character in both.
fn strip_keyword_params(s: &str) -> Result<(String, Vec<(Param, String)>), PostgresError> {
    let mut rest = String::with_capacity(s.len());
    let mut found = Vec::new();
    let mut it = s.char_indices().peekable();
    let mut copied_to = 0;
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key_end = s.len();
        while let Some(&(i, c)) = it.peek() {
            if c.is_whitespace() || c == '=' {
                key_end = i;
                break;
            }
            it.next();
        }
        let key = &s[start..key_end];
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        if it.next_if(|&(_, c)| c == '=').is_none() {
            return Err(invalid(format!("expected `=` after {key:?}")));
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match it.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => return Err(invalid("unterminated quoted connection parameter value")),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
        }
        if let Some(param) = Param::of(key) {
            // The separating whitespace goes with the pair.
            while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
            rest.push_str(&s[copied_to..start]);
            copied_to = it.peek().map_or(s.len(), |&(i, _)| i);
            found.push((param, value));
        }
    }
    rest.push_str(&s[copied_to..]);
    Ok((rest, found))
}

/// The CA certificates of a PEM file. Each certificate must parse: a
/// file that is only partly usable is more likely the wrong file than
/// one to trust in part.
fn roots_from_file(path: &Path) -> Result<RootCertStore, PostgresError> {
    let failed = |reason: String| PostgresError::RootCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| failed(format!("not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| failed(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(failed("holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// The operating system's trusted roots, for servers with publicly
/// certified names (hosted databases).
fn system_roots() -> Result<RootCertStore, PostgresError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        return Err(PostgresError::TlsConfig {
            reason: format!(
                "no system root certificates found ({}); name the server's CA with \
                 sslrootcert=PATH",
                if errors.is_empty() {
                    "none installed".to_string()
                } else {
                    errors.join("; ")
                }
            ),
        });
    }
    Ok(roots)
}

/// Checks the server's chain against `roots` but not its name: libpq's
/// `verify-ca`, for servers reached by an address their certificate does
/// not list (a private CA vouches for every server it signed).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
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

/// Why TLS failed, when `e` (from opening a connection) is a TLS failure
/// that retrying will not fix: a certificate the settings reject, a
/// server without TLS. An I/O error in the middle of a handshake (a
/// server restarting) is left to the caller's retry.
pub(super) fn tls_failure(e: &tokio_postgres::Error) -> Option<String> {
    match std::error::Error::source(e) {
        Some(cause) => match cause.downcast_ref::<std::io::Error>() {
            // tokio-rustls reports rustls's errors inside an I/O error.
            Some(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(|tls| tls.to_string()),
            // tokio-postgres's own TLS errors ("server does not support
            // TLS") carry a message only; its kind shows in the text.
            None => e
                .to_string()
                .starts_with("error performing TLS handshake")
                .then(|| cause.to_string()),
        },
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsMode, Option<PathBuf>) {
        let (rest, p) = split_tls_params(url).unwrap();
        (rest, p.mode, p.root_cert)
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        assert_eq!(
            split("postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=/a%20b/ca.pem"),
            (
                "postgres://u:p@h:5/db".into(),
                TlsMode::VerifyFull,
                Some("/a b/ca.pem".into())
            )
        );
        assert_eq!(
            split("postgresql://h/db?application_name=x&sslmode=verify-ca&connect_timeout=3&sslrootcert=ca.pem"),
            (
                "postgresql://h/db?application_name=x&connect_timeout=3".into(),
                TlsMode::VerifyCa,
                Some("ca.pem".into())
            )
        );
        // A `?` in the password is not the query.
        assert_eq!(
            split("postgres://u:p?sslmode=require@h/db?sslmode=disable"),
            (
                "postgres://u:p?sslmode=require@h/db".into(),
                TlsMode::Plain,
                None
            )
        );
        assert_eq!(
            split("postgres://h/db"),
            ("postgres://h/db".into(), TlsMode::Plain, None)
        );
        // The last one wins.
        assert_eq!(
            split("postgres://h/db?sslmode=verify-full&sslmode=require").1,
            TlsMode::Require
        );
        for plain in ["disable", "allow", "prefer"] {
            assert_eq!(
                split(&format!("postgres://h/db?sslmode={plain}")).1,
                TlsMode::Plain
            );
        }
    }

    #[test]
    fn keyword_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, mode, root) = split(
            r"host=h sslmode = verify-full password='a b\'c' sslrootcert='/x y/ca.pem' dbname=d",
        );
        assert_eq!(rest, r"host=h password='a b\'c' dbname=d");
        assert_eq!(mode, TlsMode::VerifyFull);
        assert_eq!(root, Some("/x y/ca.pem".into()));
        let (rest, mode, _) = split(r"sslrootcert=c\ d.pem   sslmode=require");
        assert_eq!(rest, "");
        assert_eq!(mode, TlsMode::Require);
        assert_eq!(split("host=h").0, "host=h");
        // What is left still parses.
        let (rest, _, _) = split("host=h sslmode=verify-ca port=7 sslrootcert=c.pem user=u");
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_ports(), [7]);
        assert_eq!(config.get_user(), Some("u"));
    }

    #[test]
    fn bad_tls_parameters_are_invalid_urls() {
        for bad in [
            "postgres://h/db?sslmode=verify",
            "host=h sslmode=strict",
            "host=h sslrootcert='open",
            "postgres://h/db?sslrootcert",
        ] {
            assert!(
                matches!(split_tls_params(bad), Err(PostgresError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn verify_ca_needs_a_root_certificate_file() {
        let (_, params) = split_tls_params("postgres://h/db?sslmode=verify-ca").unwrap();
        assert!(matches!(
            params.connector(),
            Err(PostgresError::MissingRootCert {
                sslmode: "verify-ca"
            })
        ));
    }

    #[test]
    fn unusable_root_certificate_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let bad_der = dir.path().join("bad.pem");
        std::fs::write(
            &bad_der,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [&missing, &garbage, &bad_der] {
            for mode in ["require", "verify-ca", "verify-full"] {
                let url = format!(
                    "postgres://h/db?sslmode={mode}&sslrootcert={}",
                    path.display()
                );
                let (_, params) = split_tls_params(&url).unwrap();
                match params.connector() {
                    Err(e @ PostgresError::RootCert { .. }) => {
                        assert!(e.to_string().contains(&path.display().to_string()), "{e}")
                    }
                    Err(e) => panic!("{mode} {}: {e}", path.display()),
                    Ok(_) => panic!("{mode} {}: accepted", path.display()),
                }
            }
        }
    }

    #[tokio::test]
    async fn a_server_without_tls_is_a_typed_error_when_tls_is_required() {
        use super::super::{Backoff, PostgresOptions, PostgresTaskStore};
        use std::io::{Read, Write};
        use std::time::Duration;
        // Answers the TLS request the way a server built without TLS does.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).unwrap();
            socket.write_all(b"N").unwrap();
            request
        });
        let ca = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/unrelated-ca.pem"
        );
        let url = format!(
            "postgres://u:hunter2@127.0.0.1:{port}/db?sslmode=verify-full&sslrootcert={ca}"
        );
        let err = PostgresTaskStore::open_with_retry(
            PostgresOptions::new(url).with_connect_timeout(Duration::from_secs(5)),
            Backoff::default(),
        )
        .await
        .unwrap_err();
        // Length 8, then the SSLRequest code 80877103.
        assert_eq!(server.join().unwrap(), [0, 0, 0, 8, 4, 210, 22, 47]);
        match &err {
            PostgresError::Tls { target, reason } => {
                assert_eq!(target.as_str(), format!("127.0.0.1:{port}/db"));
                assert!(reason.contains("does not support TLS"), "{reason}");
            }
            other => panic!("expected a TLS error, got {other:?}"),
        }
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
