//! TLS configuration shared by the relay (server) and the client edge
//! (kith-net), behind the `tls` feature so the core protocol stays IO-free.
//!
//! The relay's TLS identity IS its ed25519 identity key: the relay presents a
//! self-signed X.509 certificate for that key (built here on every start, see
//! [`relay_certificate`]; the certificate carries no other meaning), and the client accepts the
//! handshake only if the certificate's SubjectPublicKeyInfo is exactly the
//! ed25519 key from the `kith://<key>@host:port` address. Names, validity
//! dates and issuers are deliberately ignored: the pin is the whole trust
//! decision. The TLS 1.3 CertificateVerify signature is still checked with
//! that key, so only the holder of the relay's private key can complete the
//! handshake. See docs/PROTOCOL.md ("Transport") for why this was chosen over
//! RFC 7250 raw public keys.
//!
//! Every configuration built from an ed25519 key (the relay's, a device's for
//! peer-to-peer, every client) uses [`ed25519_provider`]: *ring*'s TLS 1.3
//! suites, X25519 key exchange and Ed25519 signatures only. Nothing else can be
//! negotiated with a pinned ed25519 key anyway, and leaving the rest out keeps
//! P-256, P-384 and RSA out of the phone library (issue 15). Only
//! [`server_config_with_chain`], for a relay behind a CA-issued certificate of
//! any key type, uses *ring*'s whole default provider.

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
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// *ring*'s TLS 1.3 cipher suites with X25519 key exchange and Ed25519
/// signatures only (see the module's documentation).
pub fn ed25519_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    Arc::new(CryptoProvider {
        // AES-128-GCM first: QUIC's Initial packets need it whatever is negotiated.
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519],
        signature_verification_algorithms: ED25519_ONLY,
        secure_random: &RingParts,
        key_provider: &RingParts,
    })
}

static ED25519_ONLY: rustls::crypto::WebPkiSupportedAlgorithms =
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[webpki::ring::ED25519],
        mapping: &[(SignatureScheme::ED25519, &[webpki::ring::ED25519])],
    };

/// *ring*'s randomness, and private keys loaded as Ed25519 only.
#[derive(Debug)]
struct RingParts;

impl rustls::crypto::SecureRandom for RingParts {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl rustls::crypto::KeyProvider for RingParts {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        match key_der {
            PrivateKeyDer::Pkcs8(der) => rustls::crypto::ring::sign::any_eddsa_type(&der),
            _ => Err(rustls::Error::General(
                "only Ed25519 keys in PKCS#8 are supported here".into(),
            )),
        }
    }
}

/// One DER element: `tag`, its length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The relay's self-signed certificate and private key for `key`.
///
/// A fixed X.509 v3 template around the key: serial 1, issuer and subject
/// `CN=kith-relay`, valid from 1975 to 4096 (dates mean nothing here: the
/// client pins the key), a subject alternative name `kith-relay`, signed
/// with `key` itself. Built by hand rather than with a certificate crate,
/// whose every-algorithm signer would bring P-256 and RSA back into the
/// phone library; the tests check it with rustls's own parser and a handshake.
pub fn relay_certificate(
    key: &SigningKey,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    use ed25519_dalek::Signer as _;
    const SEQUENCE: u8 = 0x30;
    // AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, no parameters.
    let ed25519 = der(SEQUENCE, &[0x06, 0x03, 0x2b, 0x65, 0x70]);
    // Name: one RDN, commonName (2.5.4.3) as a UTF8String.
    let name = {
        let mut atv = der(0x06, &[0x55, 0x04, 0x03]);
        atv.extend(der(0x0c, SERVER_NAME.as_bytes()));
        der(SEQUENCE, &der(0x31, &der(SEQUENCE, &atv)))
    };
    let validity = {
        let mut times = der(0x17, b"750101000000Z");
        times.extend(der(0x18, b"40960101000000Z"));
        der(SEQUENCE, &times)
    };
    let spki = {
        let mut bits = vec![0];
        bits.extend_from_slice(key.verifying_key().as_bytes());
        let mut content = ed25519.clone();
        content.extend(der(0x03, &bits));
        der(SEQUENCE, &content)
    };
    // Extensions: subjectAltName (2.5.29.17) = dNSName kith-relay.
    let extensions = {
        let mut san = der(0x06, &[0x55, 0x1d, 0x11]);
        san.extend(der(
            0x04,
            &der(SEQUENCE, &der(0x82, SERVER_NAME.as_bytes())),
        ));
        der(0xa3, &der(SEQUENCE, &der(SEQUENCE, &san)))
    };
    let mut tbs = der(0xa0, &der(0x02, &[2])); // version v3
    tbs.extend(der(0x02, &[1])); // serial number
    tbs.extend_from_slice(&ed25519);
    tbs.extend_from_slice(&name);
    tbs.extend(validity);
    tbs.extend_from_slice(&name);
    tbs.extend(spki);
    tbs.extend(extensions);
    let tbs = der(SEQUENCE, &tbs);
    let mut signature = vec![0];
    signature.extend_from_slice(&key.sign(&tbs).to_bytes());
    let mut cert = tbs;
    cert.extend(ed25519);
    cert.extend(der(0x03, &signature));
    let cert = der(SEQUENCE, &cert);

    let pkcs8 = key.to_pkcs8_der().map_err(|_| TlsError::KeyEncoding)?;
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    Ok((CertificateDer::from(cert), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// TLS 1.3 server configuration presenting the relay key, ALPN `kith-relay/1`.
pub fn server_config(key: &SigningKey) -> Result<rustls::ServerConfig, TlsError> {
    let (cert, private) = relay_certificate(key)?;
    server_config_from(ed25519_provider(), vec![cert], private)
}

/// Server configuration from an explicit certificate chain (for example one
/// issued by a CA for a relay behind a real domain name), with a key of any
/// type *ring* supports.
pub fn server_config_with_chain(
    chain: Vec<CertificateDer<'static>>,
    private: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    server_config_from(
        Arc::new(rustls::crypto::ring::default_provider()),
        chain,
        private,
    )
}

fn server_config_from(
    provider: Arc<CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    private: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
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
    let p = ed25519_provider();
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

    /// Runs a TLS handshake in memory between the two configurations.
    fn handshake(
        client: rustls::ClientConfig,
        server: rustls::ServerConfig,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
        let mut s = rustls::ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut to_server).unwrap();
            }
            let mut rd = &to_server[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets()?;
            }
            let mut to_client = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut to_client).unwrap();
            }
            let mut rd = &to_client[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General(
            "the handshake did not finish".into(),
        ))
    }

    #[test]
    fn the_built_certificate_is_valid_x509_and_completes_a_pinned_handshake() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let (cert, _) = relay_certificate(&key).unwrap();
        // rustls's own certificate parser accepts it, and its signature is the key's.
        let parsed = webpki::EndEntityCert::try_from(&cert).unwrap();
        let (_, body, _) = der_next(&cert).unwrap();
        let (_, _, after_tbs) = der_next(body).unwrap();
        let tbs = &body[..body.len() - after_tbs.len()];
        parsed
            .verify_signature(webpki::ring::ED25519, tbs, &cert[cert.len() - 64..])
            .map(|_| ())
            .unwrap_or_else(|e| panic!("self-signature: {e:?}"));
        let pinned = RelayKey::from(key.verifying_key());
        handshake(client_config(pinned).unwrap(), server_config(&key).unwrap()).unwrap();
        // Another key is refused by the pin, and its own signature is checked.
        let other = RelayKey::from(SigningKey::from_bytes(&[8; 32]).verifying_key());
        assert!(handshake(client_config(other).unwrap(), server_config(&key).unwrap()).is_err());
        handshake(
            client_config_any_ed25519(ALPN).unwrap(),
            server_config(&key).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn the_certificate_matches_a_reference_builder_where_it_matters() {
        // rcgen (tests only) builds the same kind of certificate: the same key comes out.
        let key = SigningKey::from_bytes(&[6; 32]);
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let kp =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519).unwrap();
        let reference = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let (ours, _) = relay_certificate(&key).unwrap();
        assert_eq!(
            certificate_ed25519_key(&ours),
            certificate_ed25519_key(reference.der())
        );
        // And a server presenting the reference certificate for the key passes the same pin.
        let server = server_config_from(
            ed25519_provider(),
            vec![reference.der().clone()],
            PrivateKeyDer::Pkcs8(pkcs8),
        )
        .unwrap();
        handshake(
            client_config(RelayKey::from(key.verifying_key())).unwrap(),
            server,
        )
        .unwrap();
    }

    #[test]
    fn only_x25519_and_ed25519_are_negotiated() {
        let key = SigningKey::from_bytes(&[7; 32]);
        // A client that offers only P-256 key exchange finds no common group.
        let mut p256_only = rustls::crypto::ring::default_provider();
        p256_only.kx_groups = vec![rustls::crypto::ring::kx_group::SECP256R1];
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(p256_only))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Ed25519CertVerifier {
                pinned: None,
                algorithms: ED25519_ONLY,
            }))
            .with_no_client_auth();
        let mut client = client;
        client.alpn_protocols = vec![ALPN.to_vec()];
        assert!(handshake(client, server_config(&key).unwrap()).is_err());
        // An ECDSA key cannot be loaded by the Ed25519 provider, but a CA chain of
        // any key type still can through server_config_with_chain.
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .unwrap()
            .self_signed(&ecdsa)
            .unwrap();
        let private = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ecdsa.serialize_der()));
        assert!(
            server_config_from(ed25519_provider(), vec![cert.der().clone()], private()).is_err()
        );
        let ca = server_config_with_chain(vec![cert.der().clone()], private()).unwrap();
        // Kith's clients still refuse it: the pin is an ed25519 key.
        let pinned = RelayKey::from(key.verifying_key());
        assert!(handshake(client_config(pinned).unwrap(), ca).is_err());
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
