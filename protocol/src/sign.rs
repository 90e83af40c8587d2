//! Signed records of the account/device hierarchy and the relay handshake:
//! device certificates (device key + name + time, signed by the account key),
//! revocation records (signed by the account key) and the challenge answer a
//! device signs to authenticate to one relay.
//!
//! Every signature is over `context string || postcard(body)`, where the
//! context string names the record type and version, so a signature made for
//! one purpose can never be replayed as another.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use crate::keys::{AccountId, DeviceId, KeyError, RelayKey};

/// Context prefix of a device certificate signature.
pub const CONTEXT_DEVICE_CERT: &[u8] = b"kith-device-cert-v1";
/// Context prefix of a revocation record signature.
pub const CONTEXT_REVOCATION: &[u8] = b"kith-revocation-v1";
/// Context prefix of the relay authentication answer.
pub const CONTEXT_RELAY_AUTH: &[u8] = b"kith-relay-auth-v1";
/// Longest accepted device name, in bytes.
pub const DEVICE_NAME_BYTES_MAX: usize = 128;

/// Why a signed record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A key in the record is not a valid ed25519 key.
    #[error("invalid key in signed record: {0}")]
    Key(#[from] KeyError),
    /// The signature does not verify under the expected key.
    #[error("signature does not verify for {what}")]
    Invalid {
        /// Which record failed.
        what: &'static str,
    },
    /// The device name is longer than [`DEVICE_NAME_BYTES_MAX`].
    #[error("device name is {size_bytes} bytes, at most {DEVICE_NAME_BYTES_MAX} allowed")]
    NameTooLong {
        /// The given name length.
        size_bytes: usize,
    },
}

fn signing_bytes<T: Serialize>(context: &[u8], body: &T) -> Vec<u8> {
    let mut out = context.to_vec();
    // postcard of plain structs of fixed-size arrays, ints and strings cannot
    // fail; fall back to the context alone (which then never verifies) rather
    // than panic.
    if let Ok(b) = postcard::to_allocvec(body) {
        out.extend_from_slice(&b);
    }
    out
}

/// A device certificate: the account key vouches for a device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The account that issued the certificate (its public key).
    pub account: AccountId,
    /// The certified device key.
    pub device: DeviceId,
    /// Human name of the device ("Anna's phone"), at most 128 bytes.
    pub name: String,
    /// When the certificate was issued, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// Account-key signature over `CONTEXT_DEVICE_CERT || postcard((account, device, name, issued_at_ms))`.
    pub signature: Signature,
}

impl DeviceCert {
    /// Issues a certificate for `device`, signed by the account key.
    pub fn issue(
        account_key: &SigningKey,
        device: DeviceId,
        name: &str,
        issued_at_ms: u64,
    ) -> Result<Self, SignatureError> {
        if name.len() > DEVICE_NAME_BYTES_MAX {
            return Err(SignatureError::NameTooLong {
                size_bytes: name.len(),
            });
        }
        let account = AccountId::from(account_key.verifying_key());
        let msg = signing_bytes(CONTEXT_DEVICE_CERT, &(account, device, name, issued_at_ms));
        Ok(Self {
            account,
            device,
            name: name.to_owned(),
            issued_at_ms,
            signature: account_key.sign(&msg),
        })
    }

    /// Checks the account signature (the certificate chain is one link long).
    pub fn verify(&self) -> Result<(), SignatureError> {
        if self.name.len() > DEVICE_NAME_BYTES_MAX {
            return Err(SignatureError::NameTooLong {
                size_bytes: self.name.len(),
            });
        }
        let key = self.account.verifying_key()?;
        self.device.verifying_key()?;
        let msg = signing_bytes(
            CONTEXT_DEVICE_CERT,
            &(self.account, self.device, &self.name, self.issued_at_ms),
        );
        key.verify(&msg, &self.signature)
            .map_err(|_| SignatureError::Invalid {
                what: "device certificate",
            })
    }
}

/// A revocation: the account key withdraws a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The account revoking one of its devices.
    pub account: AccountId,
    /// The revoked device.
    pub device: DeviceId,
    /// When it was revoked, ms since the Unix epoch.
    pub revoked_at_ms: u64,
    /// Account-key signature over `CONTEXT_REVOCATION || postcard((account, device, revoked_at_ms))`.
    pub signature: Signature,
}

impl Revocation {
    /// Signs a revocation of `device` with the account key.
    pub fn issue(account_key: &SigningKey, device: DeviceId, revoked_at_ms: u64) -> Self {
        let account = AccountId::from(account_key.verifying_key());
        let msg = signing_bytes(CONTEXT_REVOCATION, &(account, device, revoked_at_ms));
        Self {
            account,
            device,
            revoked_at_ms,
            signature: account_key.sign(&msg),
        }
    }

    /// Checks the account signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        let key = self.account.verifying_key()?;
        let msg = signing_bytes(
            CONTEXT_REVOCATION,
            &(self.account, self.device, self.revoked_at_ms),
        );
        key.verify(&msg, &self.signature)
            .map_err(|_| SignatureError::Invalid { what: "revocation" })
    }
}

/// The exact bytes a device signs to answer a relay challenge:
/// `CONTEXT_RELAY_AUTH || relay public key (32) || challenge (32)`.
/// Binding the relay key means an answer made for one relay is useless at
/// another; the fresh challenge means an answer cannot be replayed.
pub fn auth_message(relay: &RelayKey, challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT_RELAY_AUTH.len() + 64);
    m.extend_from_slice(CONTEXT_RELAY_AUTH);
    m.extend_from_slice(relay.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// Signs the answer to `challenge` from `relay` with the device key.
pub fn sign_auth(device_key: &SigningKey, relay: &RelayKey, challenge: &[u8; 32]) -> Signature {
    device_key.sign(&auth_message(relay, challenge))
}

/// Checks a device's answer to `challenge` against its certificate: the
/// certificate must verify and the signature must be by the certified device.
pub fn verify_auth(
    cert: &DeviceCert,
    relay: &RelayKey,
    challenge: &[u8; 32],
    signature: &Signature,
) -> Result<(), SignatureError> {
    cert.verify()?;
    let key = cert.device.verifying_key()?;
    key.verify(&auth_message(relay, challenge), signature)
        .map_err(|_| SignatureError::Invalid {
            what: "relay challenge answer",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn cert_verifies_and_tampering_fails() {
        let acct = key(1);
        let dev = key(2);
        let cert = DeviceCert::issue(&acct, dev.verifying_key().into(), "phone", 5).unwrap();
        cert.verify().unwrap();
        let mut t = cert.clone();
        t.name = "laptop".into();
        assert!(t.verify().is_err());
        let mut t = cert.clone();
        t.account = key(3).verifying_key().into();
        assert!(t.verify().is_err());
        assert!(DeviceCert::issue(&acct, dev.verifying_key().into(), &"x".repeat(200), 0).is_err());
    }

    #[test]
    fn auth_is_bound_to_relay_and_challenge() {
        let acct = key(1);
        let dev = key(2);
        let cert = DeviceCert::issue(&acct, dev.verifying_key().into(), "phone", 5).unwrap();
        let relay = RelayKey::from(key(9).verifying_key());
        let other = RelayKey::from(key(8).verifying_key());
        let sig = sign_auth(&dev, &relay, &[4; 32]);
        verify_auth(&cert, &relay, &[4; 32], &sig).unwrap();
        assert!(verify_auth(&cert, &other, &[4; 32], &sig).is_err());
        assert!(verify_auth(&cert, &relay, &[5; 32], &sig).is_err());
        // A signature by the account key instead of the device key fails.
        let wrong = sign_auth(&acct, &relay, &[4; 32]);
        assert!(verify_auth(&cert, &relay, &[4; 32], &wrong).is_err());
    }

    #[test]
    fn revocation_verifies() {
        let acct = key(1);
        let r = Revocation::issue(&acct, key(2).verifying_key().into(), 10);
        r.verify().unwrap();
        let mut t = r.clone();
        t.revoked_at_ms = 11;
        assert!(t.verify().is_err());
    }
}
