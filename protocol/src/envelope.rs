//! The sealed envelopes the relay stores without being able to read them.
//!
//! A [`SealedEntry`] is one change bundle of one device: kith-core encrypts the
//! content (AEAD under the key of the membership epoch named in the envelope,
//! with [`SealedEntry::associated_data`] as associated data, which covers the
//! epoch) and the device key signs the whole envelope. A
//! [`SealedSnapshot`] is the same for a full document state, plus the cursor
//! vector (per device, the last seq it contains) that lets the relay prune the
//! entries it covers. The relay checks only the envelope fields and the device
//! signature; the ciphertext stays opaque to it.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use crate::keys::{AccountId, DeviceId};
use crate::sign::SignatureError;

/// Context prefix of an entry signature and associated data.
pub const CONTEXT_ENTRY: &[u8] = b"kith-sealed-entry-v2";
/// Context prefix of a snapshot signature.
pub const CONTEXT_SNAPSHOT: &[u8] = b"kith-sealed-snapshot-v2";
/// Length of the AEAD nonce (XChaCha20-Poly1305).
pub const NONCE_BYTES: usize = 24;

/// Position in one device's log: the highest seq that is included.
/// Sequence numbers start at 1, so `seq == 0` means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// The device whose log this is.
    pub device: DeviceId,
    /// The last seq included (0 = none).
    pub seq: u64,
}

/// One sealed change bundle in a device's append-only log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEntry {
    /// Owning account.
    pub account: AccountId,
    /// Authoring device.
    pub device: DeviceId,
    /// The membership epoch whose key sealed the content.
    pub epoch: u64,
    /// Position in the device's log, starting at 1, without gaps.
    pub seq: u64,
    /// AEAD nonce.
    pub nonce: [u8; NONCE_BYTES],
    /// AEAD output (ciphertext + tag); opaque to the relay.
    pub ciphertext: Vec<u8>,
    /// Device-key signature over [`SealedEntry::signing_bytes`].
    pub signature: Signature,
}

impl SealedEntry {
    /// Associated data kith-core binds into the AEAD:
    /// `CONTEXT_ENTRY || account (32) || device (32) || epoch (u64 BE) || seq (u64 BE)`.
    pub fn associated_data(
        account: &AccountId,
        device: &DeviceId,
        epoch: u64,
        seq: u64,
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(CONTEXT_ENTRY.len() + 80);
        v.extend_from_slice(CONTEXT_ENTRY);
        v.extend_from_slice(account.as_bytes());
        v.extend_from_slice(device.as_bytes());
        v.extend_from_slice(&epoch.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v
    }

    /// Bytes the device signs: associated data `|| nonce (24) || ciphertext`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut v = Self::associated_data(&self.account, &self.device, self.epoch, self.seq);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.ciphertext);
        v
    }

    /// Builds and signs an envelope around already-encrypted bytes.
    pub fn seal(
        device_key: &SigningKey,
        account: AccountId,
        epoch: u64,
        seq: u64,
        nonce: [u8; NONCE_BYTES],
        ciphertext: Vec<u8>,
    ) -> Self {
        let mut e = Self {
            account,
            device: DeviceId::from(device_key.verifying_key()),
            epoch,
            seq,
            nonce,
            ciphertext,
            signature: Signature::from_bytes(&[0; 64]),
        };
        e.signature = device_key.sign(&e.signing_bytes());
        e
    }

    /// Checks the device signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        let key = self.device.verifying_key()?;
        key.verify(&self.signing_bytes(), &self.signature)
            .map_err(|_| SignatureError::Invalid {
                what: "sealed entry",
            })
    }
}

/// A sealed full state of the account's document, covering a prefix of every
/// device log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSnapshot {
    /// Owning account.
    pub account: AccountId,
    /// Device that made (and signed) the snapshot.
    pub device: DeviceId,
    /// The membership epoch whose key sealed the content.
    pub epoch: u64,
    /// For each device, the last seq whose changes the snapshot contains.
    pub covers: Vec<Cursor>,
    /// AEAD nonce.
    pub nonce: [u8; NONCE_BYTES],
    /// AEAD output; opaque to the relay.
    pub ciphertext: Vec<u8>,
    /// Device-key signature over [`SealedSnapshot::signing_bytes`].
    pub signature: Signature,
}

impl SealedSnapshot {
    /// Associated data for the AEAD: `CONTEXT_SNAPSHOT || account || device ||
    /// epoch (u64 BE) || count (u32 BE) || (device (32) || seq (u64 BE))*` for
    /// every cursor in order.
    pub fn associated_data(
        account: &AccountId,
        device: &DeviceId,
        epoch: u64,
        covers: &[Cursor],
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(CONTEXT_SNAPSHOT.len() + 76 + covers.len() * 40);
        v.extend_from_slice(CONTEXT_SNAPSHOT);
        v.extend_from_slice(account.as_bytes());
        v.extend_from_slice(device.as_bytes());
        v.extend_from_slice(&epoch.to_be_bytes());
        v.extend_from_slice(
            &u32::try_from(covers.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for c in covers {
            v.extend_from_slice(c.device.as_bytes());
            v.extend_from_slice(&c.seq.to_be_bytes());
        }
        v
    }

    /// Bytes the device signs: associated data `|| nonce || ciphertext`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut v = Self::associated_data(&self.account, &self.device, self.epoch, &self.covers);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.ciphertext);
        v
    }

    /// Builds and signs a snapshot envelope around already-encrypted bytes.
    pub fn seal(
        device_key: &SigningKey,
        account: AccountId,
        epoch: u64,
        covers: Vec<Cursor>,
        nonce: [u8; NONCE_BYTES],
        ciphertext: Vec<u8>,
    ) -> Self {
        let mut s = Self {
            account,
            device: DeviceId::from(device_key.verifying_key()),
            epoch,
            covers,
            nonce,
            ciphertext,
            signature: Signature::from_bytes(&[0; 64]),
        };
        s.signature = device_key.sign(&s.signing_bytes());
        s
    }

    /// Checks the device signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        let key = self.device.verifying_key()?;
        key.verify(&self.signing_bytes(), &self.signature)
            .map_err(|_| SignatureError::Invalid {
                what: "sealed snapshot",
            })
    }

    /// Starts checking the signature of a snapshot whose ciphertext is fed
    /// in pieces ([`SnapshotVerifier::update`]) after the envelope's own
    /// `ciphertext`: the relay verifies a fragmented upload part by part,
    /// in bounded memory, instead of assembling it.
    pub fn verifier(&self) -> Result<SnapshotVerifier, SignatureError> {
        let key = self.device.verifying_key()?;
        let mut inner =
            key.verify_stream(&self.signature)
                .map_err(|_| SignatureError::Invalid {
                    what: "sealed snapshot",
                })?;
        inner.update(self.signing_bytes());
        Ok(SnapshotVerifier { inner })
    }
}

/// Streaming check of a snapshot signature ([`SealedSnapshot::verifier`]);
/// accepts exactly what [`SealedSnapshot::verify`] accepts for the same bytes.
pub struct SnapshotVerifier {
    inner: ed25519_dalek::StreamVerifier,
}

impl std::fmt::Debug for SnapshotVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotVerifier")
    }
}

impl SnapshotVerifier {
    /// Feeds the next ciphertext bytes.
    pub fn update(&mut self, piece: &[u8]) {
        self.inner.update(piece);
    }

    /// True if the signature covers everything fed.
    pub fn finish(self) -> Result<(), SignatureError> {
        self.inner
            .finalize_and_verify()
            .map_err(|_| SignatureError::Invalid {
                what: "sealed snapshot",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_signature_covers_every_field() {
        let dev = SigningKey::from_bytes(&[2; 32]);
        let acct = AccountId::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let e = SealedEntry::seal(&dev, acct, 1, 3, [9; 24], vec![1, 2, 3]);
        e.verify().unwrap();
        let mut t = e.clone();
        t.epoch = 2;
        assert!(t.verify().is_err());
        let mut t = e.clone();
        t.seq = 4;
        assert!(t.verify().is_err());
        let mut t = e.clone();
        t.ciphertext.push(0);
        assert!(t.verify().is_err());
        let mut t = e.clone();
        t.nonce[0] ^= 1;
        assert!(t.verify().is_err());
        // Moved to another account (a relay replaying it elsewhere).
        let mut t = e.clone();
        t.account = AccountId::from(SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert!(t.verify().is_err());
        // Claimed by another device, with that device's own signature over
        // the original bytes: still refused, the device is in the bytes too.
        let other = SigningKey::from_bytes(&[8; 32]);
        let mut t = e.clone();
        t.device = DeviceId::from(other.verifying_key());
        t.signature = other.sign(&e.signing_bytes());
        assert!(t.verify().is_err());
    }

    #[test]
    fn snapshot_signature_covers_cursors() {
        let dev = SigningKey::from_bytes(&[2; 32]);
        let acct = AccountId::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let c = Cursor {
            device: DeviceId::from(dev.verifying_key()),
            seq: 7,
        };
        let s = SealedSnapshot::seal(&dev, acct, 1, vec![c], [0; 24], vec![5; 10]);
        s.verify().unwrap();
        let mut t = s.clone();
        t.epoch = 2;
        assert!(t.verify().is_err());
        let mut t = s.clone();
        t.covers[0].seq = 8;
        assert!(t.verify().is_err());
        let mut t = s.clone();
        t.account = AccountId::from(SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert!(t.verify().is_err());
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(t.verify().is_err());
        let mut t = s.clone();
        t.nonce[0] ^= 1;
        assert!(t.verify().is_err());
    }
}
