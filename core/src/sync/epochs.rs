//! Key epochs: the data keys of an account's membership epochs, sealed to
//! devices with HPKE (RFC 9180) and chained backwards so the newest key
//! opens every older one. docs/SECURITY.md explains the design.
//!
//! Data flow: a device that starts an epoch (genesis, revoke, rotate,
//! recover) draws a fresh 32-byte key, seals it to every member of the new
//! epoch with [`seal_to`] (HPKE base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305; `info` and `aad` name the account, the
//! epoch and the recipient) and wraps the older keys it holds under the new
//! one ([`wrap`]). A device learns its keys from the log alone with
//! [`EpochKeys::from_log`]: it opens what was sealed to its X25519 key, then
//! unwraps older epochs with newer keys. A device revoked at epoch `n` holds
//! nothing sealed to it after `n`, so no key of a later epoch.
//!
//! Nothing here touches storage or the network.

use std::collections::BTreeMap;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use kith_protocol::{
    AccountId, Change, DeviceId, MembershipOp, Rotation, SealedEpochKey, WrappedEpochKey,
};
use rand::RngCore;
use zeroize::Zeroize;

use crate::identity::{DataKey, KEY_LEN_BYTES};

/// Context of the HPKE `info` for sealing an epoch key.
const HPKE_INFO: &[u8] = b"kith-epoch-key-v1";
/// Context of the associated data of a wrapped older key.
const WRAP_CONTEXT: &[u8] = b"kith-epoch-wrap-v1";

/// Why an epoch key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// A public key is not a valid X25519 key.
    #[error("the sealing key of device {device} is not a valid X25519 key")]
    BadSealKey {
        /// The device whose key it is.
        device: DeviceId,
    },
    /// HPKE failed (wrong key, tampered bytes, or a different context).
    #[error("the epoch {epoch} key sealed to this device does not open (wrong key or tampered)")]
    Open {
        /// The epoch of the key.
        epoch: u64,
    },
    /// HPKE sealing failed.
    #[error("sealing the epoch {epoch} key failed")]
    Seal {
        /// The epoch of the key.
        epoch: u64,
    },
}

/// A device's X25519 key pair for receiving epoch keys.
#[derive(Clone)]
pub struct SealKey {
    secret: [u8; KEY_LEN_BYTES],
    public: [u8; KEY_LEN_BYTES],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("public", &crate::identity::hex(&self.public))
            .finish_non_exhaustive()
    }
}

impl Drop for SealKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl SealKey {
    /// A fresh key pair from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut ikm = [0u8; KEY_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut ikm);
        let k = Self::from_secret_seed(&ikm);
        ikm.zeroize();
        k
    }

    /// The key pair derived (RFC 9180 DeriveKeyPair) from 32 secret bytes,
    /// which is what a key store keeps.
    pub fn from_secret_seed(seed: &[u8; KEY_LEN_BYTES]) -> Self {
        let (sk, pk) = X25519HkdfSha256::derive_keypair(seed);
        let mut secret = [0u8; KEY_LEN_BYTES];
        secret.copy_from_slice(&sk.to_bytes());
        let mut public = [0u8; KEY_LEN_BYTES];
        public.copy_from_slice(&pk.to_bytes());
        Self { secret, public }
    }

    /// The public key members seal to.
    pub fn public(&self) -> [u8; KEY_LEN_BYTES] {
        self.public
    }
}

fn info(account: &AccountId, epoch: u64, to: &DeviceId) -> Vec<u8> {
    let mut v = HPKE_INFO.to_vec();
    v.extend_from_slice(account.as_bytes());
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(to.as_bytes());
    v
}

/// Seals `key` (the data key of `epoch`) to device `to` whose X25519 public
/// key is `seal_key`. The HPKE info and associated data bind the account,
/// the epoch and the recipient, so a sealed key cannot be replayed as
/// another epoch's or another device's.
pub fn seal_to(
    account: &AccountId,
    epoch: u64,
    to: DeviceId,
    seal_key: &[u8; KEY_LEN_BYTES],
    key: &DataKey,
) -> Result<SealedEpochKey, EpochError> {
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(seal_key)
        .map_err(|_| EpochError::BadSealKey { device: to })?;
    let ctx = info(account, epoch, &to);
    let (enc, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            &pk,
            &ctx,
            key.as_bytes(),
            &ctx,
            &mut rand::rngs::OsRng,
        )
        .map_err(|_| EpochError::Seal { epoch })?;
    let mut e = [0u8; 32];
    e.copy_from_slice(&enc.to_bytes());
    Ok(SealedEpochKey {
        to,
        enc: e,
        ciphertext,
    })
}

/// Opens an epoch key sealed to this device.
pub fn open_sealed(
    account: &AccountId,
    epoch: u64,
    me: &DeviceId,
    seal: &SealKey,
    sealed: &SealedEpochKey,
) -> Result<DataKey, EpochError> {
    let err = || EpochError::Open { epoch };
    let sk =
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&seal.secret).map_err(|_| err())?;
    let enc =
        <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).map_err(|_| err())?;
    let ctx = info(account, epoch, me);
    let mut plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        &ctx,
        &sealed.ciphertext,
        &ctx,
    )
    .map_err(|_| err())?;
    let key = <[u8; KEY_LEN_BYTES]>::try_from(plain.as_slice()).map_err(|_| err());
    plain.zeroize();
    Ok(DataKey::from_bytes(key?))
}

fn wrap_ad(account: &AccountId, new_epoch: u64, old_epoch: u64) -> Vec<u8> {
    let mut v = WRAP_CONTEXT.to_vec();
    v.extend_from_slice(account.as_bytes());
    v.extend_from_slice(&new_epoch.to_be_bytes());
    v.extend_from_slice(&old_epoch.to_be_bytes());
    v
}

/// Wraps the older key of `old_epoch` under the key of `new_epoch`.
pub fn wrap(
    account: &AccountId,
    new_epoch: u64,
    new_key: &DataKey,
    old_epoch: u64,
    old_key: &DataKey,
) -> Result<WrappedEpochKey, EpochError> {
    let (nonce, ciphertext) = new_key
        .seal_detached(old_key.as_bytes(), &wrap_ad(account, new_epoch, old_epoch))
        .map_err(|_| EpochError::Seal { epoch: new_epoch })?;
    Ok(WrappedEpochKey {
        epoch: old_epoch,
        nonce,
        ciphertext,
    })
}

/// A new epoch for `members` (device, X25519 public key): a fresh key
/// sealed to each, and every key in `older` wrapped under it.
pub fn rotation(
    account: &AccountId,
    epoch: u64,
    members: &[(DeviceId, [u8; KEY_LEN_BYTES])],
    older: &EpochKeys,
) -> Result<(DataKey, Rotation), EpochError> {
    let mut raw = [0u8; KEY_LEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let key = DataKey::from_bytes(raw);
    raw.zeroize();
    let keys = members
        .iter()
        .map(|(d, pk)| seal_to(account, epoch, *d, pk, &key))
        .collect::<Result<Vec<_>, _>>()?;
    let wrapped = older
        .keys
        .iter()
        .filter(|(e, _)| **e < epoch)
        .map(|(e, k)| wrap(account, epoch, &key, *e, k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((key, Rotation { keys, wrapped }))
}

/// The epoch keys one device can read.
#[derive(Clone, Default)]
pub struct EpochKeys {
    keys: BTreeMap<u64, DataKey>,
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("epochs", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EpochKeys {
    /// The key of `epoch`, if this device has it.
    pub fn get(&self, epoch: u64) -> Option<&DataKey> {
        self.keys.get(&epoch)
    }

    /// The epochs this device can read.
    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }

    /// Adds a key (a device that just made an epoch knows its key).
    pub fn insert(&mut self, epoch: u64, key: DataKey) {
        self.keys.insert(epoch, key);
    }

    /// Every key `me` can reach from the (verified) log `ops`: what was
    /// sealed to it, then older keys unwrapped by newer ones. Sealed keys
    /// that do not open are reported, not skipped silently.
    pub fn from_log(
        ops: &[MembershipOp],
        me: &DeviceId,
        seal: &SealKey,
    ) -> Result<Self, EpochError> {
        let mut keys = BTreeMap::new();
        let mut rotations: Vec<(u64, &Rotation)> = Vec::new();
        for op in ops {
            let b = &op.body;
            let sealed = match &b.change {
                Change::Genesis { rotation, .. }
                | Change::Revoke { rotation, .. }
                | Change::Rotate { rotation }
                | Change::Recover { rotation, .. } => {
                    rotations.push((b.epoch, rotation));
                    rotation.keys.iter().find(|k| k.to == *me)
                }
                Change::Add { key, .. } => Some(key).filter(|k| k.to == *me),
            };
            if let Some(s) = sealed {
                keys.insert(b.epoch, open_sealed(&b.account, b.epoch, me, seal, s)?);
            }
        }
        // Newest first: each known key opens what it wraps.
        for (epoch, rotation) in rotations.iter().rev() {
            let Some(key) = keys.get(epoch).cloned() else {
                continue;
            };
            let account = ops.first().map(|o| o.body.account);
            for w in &rotation.wrapped {
                if keys.contains_key(&w.epoch) {
                    continue;
                }
                let Some(account) = account else { continue };
                let raw = key
                    .open_detached(&w.nonce, &w.ciphertext, &wrap_ad(&account, *epoch, w.epoch))
                    .map_err(|_| EpochError::Open { epoch: w.epoch })?;
                let k = <[u8; KEY_LEN_BYTES]>::try_from(raw.as_slice())
                    .map_err(|_| EpochError::Open { epoch: w.epoch })?;
                keys.insert(w.epoch, DataKey::from_bytes(k));
            }
        }
        Ok(Self { keys })
    }
}

#[cfg(test)]
mod tests {
    use kith_protocol::{Author, MemberKeys, Membership, SigningKey};

    use super::*;

    struct Dev {
        sign: SigningKey,
        seal: SealKey,
    }

    impl Dev {
        fn new(b: u8) -> Self {
            Self {
                sign: SigningKey::from_bytes(&[b; 32]),
                seal: SealKey::generate(),
            }
        }
        fn id(&self) -> DeviceId {
            self.sign.verifying_key().into()
        }
        fn member(&self) -> MemberKeys {
            MemberKeys {
                device: self.id(),
                seal_key: self.seal.public(),
            }
        }
    }

    #[test]
    fn sealed_key_opens_only_for_its_device_account_and_epoch() {
        let acct = AccountId::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let a = Dev::new(2);
        let b = Dev::new(3);
        let key = DataKey::from_bytes([7; 32]);
        let s = seal_to(&acct, 4, a.id(), &a.seal.public(), &key).unwrap();
        assert_eq!(open_sealed(&acct, 4, &a.id(), &a.seal, &s).unwrap(), key);
        assert!(open_sealed(&acct, 4, &b.id(), &b.seal, &s).is_err());
        assert!(open_sealed(&acct, 5, &a.id(), &a.seal, &s).is_err());
        let other = AccountId::from(SigningKey::from_bytes(&[9; 32]).verifying_key());
        assert!(open_sealed(&other, 4, &a.id(), &a.seal, &s).is_err());
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(open_sealed(&acct, 4, &a.id(), &a.seal, &t).is_err());
    }

    /// Genesis (a), add b, revoke b (epoch 2), add c: c reads epochs 1 and 2
    /// through the wraps; b keeps epoch 1 only and can read nothing after
    /// its revocation.
    #[test]
    fn a_revoked_device_gets_no_later_key_and_a_new_one_reads_history() {
        let root = SigningKey::from_bytes(&[1; 32]);
        let acct = AccountId::from(root.verifying_key());
        let (a, b, c) = (Dev::new(2), Dev::new(3), Dev::new(4));
        let mut m = Membership::new(acct);
        let mut ops = Vec::new();
        let mut a_keys = EpochKeys::default();
        let (k1, r1) = rotation(&acct, 1, &[(a.id(), a.seal.public())], &a_keys).unwrap();
        a_keys.insert(1, k1.clone());
        let g = m.next_op(
            Author::Root,
            &root,
            1,
            Change::Genesis {
                first: a.member(),
                rotation: r1,
            },
            0,
        );
        m.apply(&g).unwrap();
        ops.push(g);
        let add_b = m.next_op(
            Author::Device(a.id()),
            &a.sign,
            1,
            Change::Add {
                member: b.member(),
                key: seal_to(&acct, 1, b.id(), &b.seal.public(), &k1).unwrap(),
            },
            0,
        );
        m.apply(&add_b).unwrap();
        ops.push(add_b);
        let (k2, r2) = rotation(&acct, 2, &[(a.id(), a.seal.public())], &a_keys).unwrap();
        let rev = m.next_op(
            Author::Device(a.id()),
            &a.sign,
            2,
            Change::Revoke {
                device: b.id(),
                rotation: r2,
            },
            0,
        );
        m.apply(&rev).unwrap();
        ops.push(rev);
        let add_c = m.next_op(
            Author::Device(a.id()),
            &a.sign,
            2,
            Change::Add {
                member: c.member(),
                key: seal_to(&acct, 2, c.id(), &c.seal.public(), &k2).unwrap(),
            },
            0,
        );
        m.apply(&add_c).unwrap();
        ops.push(add_c);

        let for_a = EpochKeys::from_log(&ops, &a.id(), &a.seal).unwrap();
        assert_eq!(for_a.get(2), Some(&k2));
        let for_c = EpochKeys::from_log(&ops, &c.id(), &c.seal).unwrap();
        assert_eq!(for_c.epochs().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(for_c.get(1), Some(&k1));
        let for_b = EpochKeys::from_log(&ops, &b.id(), &b.seal).unwrap();
        assert_eq!(for_b.epochs().collect::<Vec<_>>(), vec![1]);
        // What a member seals under epoch 2 does not open with anything b holds.
        let sealed = k2.seal(b"written after the revocation", b"ad").unwrap();
        for e in for_b.epochs() {
            assert!(for_b.get(e).unwrap().open(&sealed, b"ad").is_err());
        }
    }
}
