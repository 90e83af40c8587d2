//! Signed records of a device and the relay handshake: device cards (device
//! key + sealing key + name + time, signed by the device itself; authority
//! comes from the membership log in [`crate::membership`]) and the
//! challenge answer a device signs to authenticate to one relay.
//!
//! Every signature is over `context string || postcard(body)`, where the
//! context string names the record type and version, so a signature made for
//! one purpose can never be replayed as another.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use crate::keys::{AccountId, DeviceId, KeyError, RelayKey};

/// Context prefix of a device certificate signature.
pub const CONTEXT_DEVICE_CERT: &[u8] = b"kith-device-card-v2";
/// Context prefix of the relay authentication answer.
pub const CONTEXT_RELAY_AUTH: &[u8] = b"kith-relay-auth-v2";
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

/// A device card: the device's own key vouches for its name and its X25519
/// sealing key. It carries NO authority: whether the device belongs to the
/// account is decided by the membership log ([`crate::membership`]); the
/// card only binds a human name and the sealing key to the device key. It
/// travels inside sealed entries and peer handshakes, never to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The account the device says it belongs to.
    pub account: AccountId,
    /// The device key.
    pub device: DeviceId,
    /// The device's X25519 public key (HPKE recipient of epoch keys).
    pub seal_key: [u8; 32],
    /// Human name of the device ("Anna's phone"), at most 128 bytes.
    pub name: String,
    /// When the card was made, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// Device-key signature over `CONTEXT_DEVICE_CERT || postcard((account, device, seal_key, name, issued_at_ms))`.
    pub signature: Signature,
}

impl DeviceCert {
    /// Makes the card of `device_key`, signed by that key.
    pub fn issue(
        device_key: &SigningKey,
        account: AccountId,
        seal_key: [u8; 32],
        name: &str,
        issued_at_ms: u64,
    ) -> Result<Self, SignatureError> {
        if name.len() > DEVICE_NAME_BYTES_MAX {
            return Err(SignatureError::NameTooLong {
                size_bytes: name.len(),
            });
        }
        let device = DeviceId::from(device_key.verifying_key());
        let msg = signing_bytes(
            CONTEXT_DEVICE_CERT,
            &(account, device, seal_key, name, issued_at_ms),
        );
        Ok(Self {
            account,
            device,
            seal_key,
            name: name.to_owned(),
            issued_at_ms,
            signature: device_key.sign(&msg),
        })
    }

    /// Checks the device's own signature (not membership).
    pub fn verify(&self) -> Result<(), SignatureError> {
        if self.name.len() > DEVICE_NAME_BYTES_MAX {
            return Err(SignatureError::NameTooLong {
                size_bytes: self.name.len(),
            });
        }
        self.account.verifying_key()?;
        let key = self.device.verifying_key()?;
        let msg = signing_bytes(
            CONTEXT_DEVICE_CERT,
            &(
                self.account,
                self.device,
                self.seal_key,
                &self.name,
                self.issued_at_ms,
            ),
        );
        key.verify(&msg, &self.signature)
            .map_err(|_| SignatureError::Invalid {
                what: "device card",
            })
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

/// Checks a device's answer to `challenge`: the signature must be by
/// `device`. Whether the device may act for its account is the membership
/// log's question, asked separately.
pub fn verify_auth(
    device: &DeviceId,
    relay: &RelayKey,
    challenge: &[u8; 32],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let key = device.verifying_key()?;
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
    fn card_verifies_and_tampering_fails() {
        let acct = AccountId::from(key(1).verifying_key());
        let dev = key(2);
        let cert = DeviceCert::issue(&dev, acct, [5; 32], "phone", 5).unwrap();
        cert.verify().unwrap();
        let mut t = cert.clone();
        t.name = "laptop".into();
        assert!(t.verify().is_err());
        let mut t = cert.clone();
        t.seal_key = [6; 32];
        assert!(t.verify().is_err());
        let mut t = cert.clone();
        t.account = key(3).verifying_key().into();
        assert!(t.verify().is_err());
        assert!(DeviceCert::issue(&dev, acct, [5; 32], &"x".repeat(200), 0).is_err());
    }

    #[test]
    fn auth_is_bound_to_relay_and_challenge() {
        let dev = key(2);
        let id = DeviceId::from(dev.verifying_key());
        let relay = RelayKey::from(key(9).verifying_key());
        let other = RelayKey::from(key(8).verifying_key());
        let sig = sign_auth(&dev, &relay, &[4; 32]);
        verify_auth(&id, &relay, &[4; 32], &sig).unwrap();
        assert!(verify_auth(&id, &other, &[4; 32], &sig).is_err());
        assert!(verify_auth(&id, &relay, &[5; 32], &sig).is_err());
        let wrong = sign_auth(&key(1), &relay, &[4; 32]);
        assert!(verify_auth(&id, &relay, &[4; 32], &wrong).is_err());
    }
}
