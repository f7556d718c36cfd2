//! TLS 1.3 with raw public keys (RFC 7250): node identity keys, certificate verifiers and the
//! rustls configurations the QUIC endpoint is built from.
//!
//! Both sides present the SubjectPublicKeyInfo of their ed25519 node key instead of an X.509
//! certificate, and both sides authenticate the other:
//!
//! * the dialler ([`PinnedServerVerifier`]) accepts exactly the key it pinned for the node it
//!   dialled;
//! * the listener ([`AllowListClientVerifier`]) accepts any key on the runtime allow-list.
//!
//! Anything else fails the handshake inside rustls, so an unknown key never reaches the
//! application. The CertificateVerify signature is checked with the presented key through
//! [`rustls::crypto::verify_tls13_signature_with_raw_key`] and the provider's verification
//! algorithms. Session resumption and early data are disabled: every connection runs a full
//! handshake, so a key removed from the allow-list cannot come back through a resumed session.

use std::sync::{Arc, Mutex};

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{AlwaysResolvesClientRawPublicKeys, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{AlwaysResolvesServerRawPublicKeys, NoServerSessionStorage};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, PeerMisbehaved,
    SignatureScheme, SupportedCipherSuite,
};

use super::{short_key, AllowList, TransportError, ALPN};

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } followed by the 32 key bytes.
pub(super) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Length of a complete ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI_LEN: usize = ED25519_SPKI_PREFIX.len() + 32;

/// Returns the raw ed25519 key in `spki`, or `None` unless `spki` is exactly an ed25519
/// SubjectPublicKeyInfo (12-byte prefix, 32 key bytes, nothing else).
pub(super) fn parse_ed25519_spki(spki: &[u8]) -> Option<[u8; 32]> {
    if spki.len() != ED25519_SPKI_LEN {
        return None;
    }
    let (prefix, key) = spki.split_at(ED25519_SPKI_PREFIX.len());
    if prefix != ED25519_SPKI_PREFIX {
        return None;
    }
    key.try_into().ok()
}

/// The TLS provider: ring, with its TLS 1.3 cipher suites only.
///
/// The protocol versions are also restricted to TLS 1.3 when the configurations are built;
/// removing the TLS 1.2 suites as well means TLS 1.2 could not be negotiated even if a version
/// list were changed by mistake.
pub(super) fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)));
    Arc::new(provider)
}

/// Builds the raw-public-key identity rustls presents: the SPKI of `identity` as the single
/// "certificate" and the matching ring ed25519 signing key.
pub(super) fn certified_key(identity: &SigningKey) -> Result<Arc<CertifiedKey>, TransportError> {
    // `SecretDocument` zeroizes the PKCS#8 bytes when dropped.
    let pkcs8 = identity
        .to_pkcs8_der()
        .map_err(|e| TransportError::Identity(format!("cannot encode the key as PKCS#8: {e}")))?;
    let spki = identity
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| TransportError::Identity(format!("cannot encode the public key: {e}")))?;
    let signer =
        rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8.as_bytes()))
            .map_err(|e| TransportError::Identity(format!("rustls refused the key: {e}")))?;
    // `CertifiedKey::keys_match` expects an X.509 certificate; compare the SPKIs directly.
    if signer.public_key().as_ref().map(|k| k.as_ref()) != Some(spki.as_bytes()) {
        return Err(TransportError::Identity(
            "the signing key rustls loaded does not match the node's public key".into(),
        ));
    }
    let certified = CertifiedKey::new(vec![CertificateDer::from(spki.into_vec())], signer);
    Ok(Arc::new(certified))
}

/// Why a verifier refused the peer. Carried inside the rustls error, so it shows up in the
/// handshake failure logged by the listener and in the close reason sent to the peer; it only
/// ever contains short key forms.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("peer presented {0} certificates; exactly one ed25519 raw public key is required")]
    ChainLength(usize),
    #[error("client key {0}… is not on the allow-list")]
    NotAllowed(String),
    #[error("server key {0}… is not the key pinned for this address")]
    NotPinned(String),
    #[error("TLS 1.2 is not supported")]
    Tls12,
}

impl From<Refusal> for rustls::Error {
    fn from(refusal: Refusal) -> Self {
        rustls::Error::Other(OtherError(Arc::new(refusal)))
    }
}

/// Strictly parses the single raw public key a peer presented.
fn presented_key(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<[u8; 32], rustls::Error> {
    if !intermediates.is_empty() {
        return Err(Refusal::ChainLength(intermediates.len().saturating_add(1)).into());
    }
    parse_ed25519_spki(end_entity.as_ref()).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))
}

/// Verifies a TLS 1.3 CertificateVerify signature made with the presented raw public key.
fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if parse_ed25519_spki(cert.as_ref()).is_none() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ));
    }
    // Only ED25519 is advertised in `supported_verify_schemes`.
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    rustls::crypto::verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.as_ref()),
        dss,
        algorithms,
    )
}

/// Dialler side: accepts only the key pinned for the node being dialled, and remembers a
/// mismatching key so the caller can report both.
#[derive(Debug)]
pub(super) struct PinnedServerVerifier {
    expected: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: Mutex<Option<[u8; 32]>>,
}

impl PinnedServerVerifier {
    pub(super) fn new(expected: [u8; 32], provider: &CryptoProvider) -> Self {
        Self {
            expected,
            algorithms: provider.signature_verification_algorithms,
            mismatch: Mutex::new(None),
        }
    }

    /// The key the server presented if it was not the pinned one.
    pub(super) fn mismatch(&self) -> Option<[u8; 32]> {
        *self
            .mismatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = presented_key(end_entity, intermediates)?;
        if key != self.expected {
            *self
                .mismatch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(key);
            return Err(Refusal::NotPinned(short_key(&key)).into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Refusal::Tls12.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Listener side: requires a client key and accepts it only if it is on the allow-list at the
/// time of the handshake.
#[derive(Debug)]
pub(super) struct AllowListClientVerifier {
    allow: AllowList,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AllowListClientVerifier {
    pub(super) fn new(allow: AllowList, provider: &CryptoProvider) -> Self {
        Self {
            allow,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AllowListClientVerifier {
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
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = presented_key(end_entity, intermediates)?;
        if !self.allow.contains(&key) {
            return Err(Refusal::NotAllowed(short_key(&key)).into());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Refusal::Tls12.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The listener's rustls configuration: TLS 1.3 only, raw public keys, mandatory client
/// authentication against the allow-list, ALPN required, no resumption and no early data.
pub(super) fn server_config(
    provider: Arc<CryptoProvider>,
    identity: Arc<CertifiedKey>,
    allow: AllowList,
) -> Result<rustls::ServerConfig, TransportError> {
    let verifier = Arc::new(AllowListClientVerifier::new(allow, &provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(identity)));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

/// The dialler's rustls configuration for one connection: TLS 1.3 only, raw public keys, the
/// server must present exactly the pinned key, ALPN required, no SNI, no resumption and no
/// early data.
pub(super) fn client_config(
    provider: Arc<CryptoProvider>,
    identity: Arc<CertifiedKey>,
    verifier: Arc<PinnedServerVerifier>,
) -> Result<rustls::ClientConfig, TransportError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(identity)));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    config.enable_sni = false;
    Ok(config)
}
