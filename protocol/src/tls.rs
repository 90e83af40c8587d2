//! TLS configuration shared by the relay (server) and the client edge
//! (kith-net), behind the `tls` feature so the core protocol stays IO-free.
//!
//! The relay's TLS identity IS its ed25519 identity key: the relay presents a
//! self-signed X.509 certificate for that key (made with rcgen on every start;
//! the certificate carries no other meaning), and the client accepts the
//! handshake only if the certificate's SubjectPublicKeyInfo is exactly the
//! ed25519 key from the `kith://<key>@host:port` address. Names, validity
//! dates and issuers are deliberately ignored: the pin is the whole trust
//! decision. The TLS 1.3 CertificateVerify signature is still checked with
//! that key, so only the holder of the relay's private key can complete the
//! handshake. See docs/PROTOCOL.md ("Transport") for why this was chosen over
//! RFC 7250 raw public keys.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::keys::RelayKey;
use crate::msg::ALPN;

/// Server name the client sends in SNI; the verifier ignores it.
pub const SERVER_NAME: &str = "kith-relay";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The ed25519 key could not be encoded as PKCS#8.
    #[error("cannot encode the relay key as PKCS#8")]
    KeyEncoding,
    /// rcgen refused to build the certificate.
    #[error("cannot build the relay certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The relay's self-signed certificate and private key for `key`.
pub fn relay_certificate(
    key: &SigningKey,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let pkcs8 = key.to_pkcs8_der().map_err(|_| TlsError::KeyEncoding)?;
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)?;
    let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
    let cert = params.self_signed(&kp)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// TLS 1.3 server configuration presenting the relay key, ALPN `kith-relay/1`.
pub fn server_config(key: &SigningKey) -> Result<rustls::ServerConfig, TlsError> {
    let (cert, private) = relay_certificate(key)?;
    server_config_with_chain(vec![cert], private)
}

/// Server configuration from an explicit certificate chain (for example one
/// issued by a CA for a relay behind a real domain name).
pub fn server_config_with_chain(
    chain: Vec<CertificateDer<'static>>,
    private: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// TLS 1.3 client configuration that accepts only the pinned relay key.
pub fn client_config(pinned: RelayKey) -> Result<rustls::ClientConfig, TlsError> {
    ed25519_client_config(Some(pinned.0), ALPN)
}

/// TLS 1.3 client configuration that accepts any server certificate carrying
/// an ed25519 key (its handshake signature is still verified), for protocols
/// that authenticate the peer one layer up, bound to this TLS session (the
/// peer-to-peer sync signs a keying-material export with device keys).
pub fn client_config_any_ed25519(alpn: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    ed25519_client_config(None, alpn)
}

fn ed25519_client_config(
    pinned: Option<[u8; 32]>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let p = provider();
    let verifier = Ed25519CertVerifier {
        pinned,
        algorithms: p.signature_verification_algorithms,
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

/// Accepts a certificate for exactly the pinned ed25519 key (whatever the
/// certificate says otherwise), or, without a pin, any ed25519 key.
#[derive(Debug)]
pub struct Ed25519CertVerifier {
    pinned: Option<[u8; 32]>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Ed25519CertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match certificate_ed25519_key(end_entity) {
            Some(k) if self.pinned.is_none_or(|p| p == k) => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
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
        vec![SignatureScheme::ED25519]
    }
}

/// One DER element: (tag, content, rest). `None` on malformed input.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The ed25519 public key in an X.509 certificate's SubjectPublicKeyInfo, or
/// `None` if the certificate is malformed or carries another key type.
pub fn certificate_ed25519_key(cert: &[u8]) -> Option<[u8; 32]> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert, _) = der_next(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = der_next(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    // Optional [0] version, then serial, signature algorithm, issuer,
    // validity, subject; the seventh element is the SubjectPublicKeyInfo.
    let (tag, _, rest) = der_next(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..5 {
        let (_, _, rest) = der_next(tbs)?;
        tbs = rest;
    }
    let (tag, spki, _) = der_next(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, alg, rest) = der_next(spki)?;
    // AlgorithmIdentifier { OID 1.3.101.112 (Ed25519) }, no parameters.
    if tag != SEQUENCE || alg != [0x06, 0x03, 0x2b, 0x65, 0x70] {
        return None;
    }
    let (tag, bits, _) = der_next(rest)?;
    if tag != 0x03 || bits.len() != 33 || bits[0] != 0 {
        return None;
    }
    <[u8; 32]>::try_from(&bits[1..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_relay_key() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let (cert, _) = relay_certificate(&key).unwrap();
        assert_eq!(
            certificate_ed25519_key(&cert),
            Some(key.verifying_key().to_bytes())
        );
        server_config(&key).unwrap();
        client_config(RelayKey::from(key.verifying_key())).unwrap();
    }

    #[test]
    fn spki_parser_survives_garbage() {
        assert_eq!(certificate_ed25519_key(&[]), None);
        assert_eq!(
            certificate_ed25519_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        let key = SigningKey::from_bytes(&[5; 32]);
        let (cert, _) = relay_certificate(&key).unwrap();
        for cut in 0..cert.len() {
            let _ = certificate_ed25519_key(&cert[..cut]);
        }
    }
}
