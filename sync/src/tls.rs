//! TLS for QUIC: certificates made with rcgen, the relay's certificate pinned by its SHA-256
//! fingerprint (or verified against a CA), and devices identified by their own certificate.
//!
//! Every certificate is verified: a pinned relay certificate must match the fingerprint exactly,
//! and a device must prove it holds the key of the certificate it presents (TLS 1.3
//! CertificateVerify); the relay then looks the certificate's fingerprint up among enrolled
//! devices.

use std::{path::Path, sync::Arc, time::Duration};

use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};
use sha2::{Digest, Sha256};

/// ALPN of DashOffice sync over QUIC: automerge-repo messages in length-delimited frames.
pub const ALPN: &[u8] = b"dashoffice-sync/1";

/// The name the relay's self-signed certificate is issued for (clients that pin a fingerprint
/// connect with it; the fingerprint, not the name, is what is checked).
pub const RELAY_NAME: &str = "dashoffice-relay";

/// Errors of certificate handling.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A fingerprint is malformed.
    #[error("fingerprint: {0}")]
    Fingerprint(String),
    /// rustls or rcgen refused a configuration.
    #[error("tls: {0}")]
    Config(String),
}

/// A certificate and its private key.
pub struct Identity {
    /// DER of the certificate.
    pub cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self { cert: self.cert.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// Loads `{stem}-cert.pem` and `{stem}-key.pem` from `dir`, creating a self-signed pair for
    /// `names` on first use (the key file is readable by the owner only).
    pub fn load_or_create(dir: &Path, stem: &str, names: &[&str]) -> Result<(Self, bool), TlsError> {
        let cert_path = dir.join(format!("{stem}-cert.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        if cert_path.exists() && key_path.exists() {
            return Ok((Self::load(&cert_path, &key_path)?, false));
        }
        dashoffice_core::files::create_private_dir(dir)
            .map_err(|e| TlsError::Io(format!("creating {}: {e}", dir.display())))?;
        let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        write_private(&key_path, ck.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, ck.cert.pem()).map_err(|e| TlsError::Io(format!("{}: {e}", cert_path.display())))?;
        Ok((Self::load(&cert_path, &key_path)?, true))
    }

    /// Loads a PEM certificate (the first of the file) and its key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let cert = CertificateDer::from_pem_file(cert_path)
            .map_err(|e| TlsError::Io(format!("{}: {e}", cert_path.display())))?;
        let key =
            PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Io(format!("{}: {e}", key_path.display())))?;
        Ok(Self { cert, key })
    }

    /// The SHA-256 fingerprint of the certificate, as 64 lower-case hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    dashoffice_core::files::write_private(path, bytes).map_err(|e| TlsError::Io(format!("{}: {e}", path.display())))
}

/// SHA-256 of a certificate's DER, as 64 lower-case hex digits.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a fingerprint written as hex, with or without colons and an optional `sha256:` prefix.
pub fn parse_fingerprint(s: &str) -> Result<String, TlsError> {
    let t = s.trim();
    let t = t.strip_prefix("sha256:").or_else(|| t.strip_prefix("SHA256:")).unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TlsError::Fingerprint(format!(
            "expected the 64 hex digits of a SHA-256 fingerprint, got {:?}",
            s.trim()
        )));
    }
    Ok(hex)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// How a replica trusts the relay.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The relay's certificate must have exactly this SHA-256 fingerprint (hex).
    Pinned(String),
    /// The relay's certificate must chain to one of these CA certificates (PEM file).
    Ca(std::path::PathBuf),
}

/// The TLS handshake signature checks both verifiers share: the peer proves it holds the key of
/// the certificate it presented, checked with the ring provider's algorithms.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

#[derive(Debug)]
struct PinnedRelay {
    fingerprint: String,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedRelay {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }
    signature_checks!();
}

/// Accepts any client certificate whose key the client proves to hold; the relay decides after
/// the handshake whether the certificate belongs to an enrolled device.
#[derive(Debug)]
struct DeviceCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeviceCert {
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
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    signature_checks!();
}

fn transport(idle: Duration, keep_alive: Option<Duration>) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    t.keep_alive_interval(keep_alive);
    if keep_alive.is_some() {
        let mut ack = quinn::AckFrequencyConfig::default();
        ack.ack_eliciting_threshold(0u8.into());
        t.ack_frequency_config(Some(ack));
    }
    // One stream carries the session; no client opens more.
    t.max_concurrent_uni_streams(0u8.into());
    t.max_concurrent_bidi_streams(4u8.into());
    Arc::new(t)
}

/// The relay's QUIC server configuration.
pub fn server_config(identity: &Identity, idle: Duration) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(DeviceCert { algs: algorithms() }))
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport(idle, None));
    Ok(cfg)
}

/// A replica's QUIC client configuration: it trusts the relay as `trust` says and presents the
/// device's certificate.
pub fn client_config(trust: &Trust, device: &Identity, idle: Duration) -> Result<quinn::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match trust {
        Trust::Pinned(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedRelay { fingerprint: fp.clone(), algs: algorithms() })),
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in
                CertificateDer::pem_file_iter(path).map_err(|e| TlsError::Io(format!("{}: {e}", path.display())))?
            {
                let c = c.map_err(|e| TlsError::Io(format!("{}: {e}", path.display())))?;
                roots.add(c).map_err(|e| TlsError::Config(e.to_string()))?;
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut tls = builder
        .with_client_auth_cert(vec![device.cert.clone()], device.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    // A ping every half idle timeout keeps the connection (and UDP NAT bindings, commonly kept
    // 30 s or more) alive; a lost ping is retransmitted long before the timeout. Every ping costs
    // the relay a packet in and out; idle / 3 sent a third more of them for nothing (relay CPU with
    // 1,000 idle replicas: 1.03–1.17 % with idle / 2, 1.17–1.30 % with idle / 3; docs/PERFORMANCE.md).
    cfg.transport_config(transport(idle, Some(idle / 2)));
    Ok(cfg)
}

/// The fingerprint of the certificate the other end of `conn` presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let id = conn.peer_identity()?;
    let certs = id.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| fingerprint(c))
}
