//! The membership log of an account: who added and who revoked which device,
//! in one order, verifiable by every device and by the relay without any
//! secret (docs/SECURITY.md explains the design and the threat model).
//!
//! The log is a hash chain of signed [`MembershipOp`]s. Op 1 (`Genesis`) is
//! signed by the account's root key, whose public half IS the account id;
//! the root key is derived from the recovery code shown once at account
//! creation and is kept by no device. Every later op is signed either by a
//! device that is a member in the state left by the ops before it
//! (`Add`, `Revoke`, `Rotate`) or by the root key again (`Recover`). Each op
//! names its position and the hash of the op before it, so the log has one
//! order: an op that does not extend the head a verifier holds is refused
//! (the relay orders concurrent changes; a device merges a peer's log only
//! if one is a prefix of the other, see docs/SECURITY.md §"two offline
//! devices").
//!
//! Data flows one way: ops in (from the relay, a peer, or made locally),
//! [`Membership::apply`] checks each against the state so far and updates
//! it. Whoever holds the state can answer "is this device a member now?",
//! "which epoch is current?", and "which devices must an epoch key be sealed
//! to?". The sealed epoch keys themselves (HPKE, RFC 9180) are opaque here:
//! the state checks only that a new epoch is sealed to exactly the devices
//! that remain, so a revoking device cannot silently leave a member out or
//! keep the revoked one in.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{AccountId, DeviceId};

/// Format version of a membership op; bumped on any change of its encoding.
pub const MEMBERSHIP_FORMAT: u16 = 1;
/// Context prefix of a membership op signature.
pub const CONTEXT_MEMBERSHIP_OP: &[u8] = b"kith-membership-op-v1";
/// Context prefix of a membership op hash (the chain link).
pub const CONTEXT_MEMBERSHIP_HASH: &[u8] = b"kith-membership-hash-v1";
/// Most devices an account may have at once.
pub const MEMBERS_MAX: usize = 64;
/// Most old epoch keys one rotation may wrap.
pub const WRAPPED_KEYS_MAX: usize = 1024;
/// Longest sealed epoch key accepted, bytes (32-byte key + 16-byte tag).
pub const SEALED_KEY_BYTES_MAX: usize = 64;
/// Most ops one request or answer carries.
pub const OPS_PER_MESSAGE_MAX: usize = 256;

/// A device's public keys as the membership certifies them: its ed25519
/// signing key (the device id) and the X25519 key epoch keys are sealed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKeys {
    /// The device id (ed25519 public key).
    pub device: DeviceId,
    /// X25519 public key for HPKE.
    pub seal_key: [u8; 32],
}

/// An epoch key sealed with HPKE (base mode, DHKEM(X25519, HKDF-SHA256),
/// HKDF-SHA256, ChaCha20-Poly1305) to one device's `seal_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEpochKey {
    /// The recipient.
    pub to: DeviceId,
    /// HPKE encapsulated key.
    pub enc: [u8; 32],
    /// HPKE ciphertext of the 32-byte epoch key.
    pub ciphertext: Vec<u8>,
}

/// An older epoch key, sealed (XChaCha20-Poly1305) under the new epoch key,
/// so whoever holds the newest key can read every older epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedEpochKey {
    /// The epoch of the wrapped key.
    pub epoch: u64,
    /// AEAD nonce.
    pub nonce: [u8; 24],
    /// AEAD ciphertext (key + tag).
    pub ciphertext: Vec<u8>,
}

/// A new epoch: its key sealed to every remaining member, older keys wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// One sealed key per member of the new epoch.
    pub keys: Vec<SealedEpochKey>,
    /// Older epoch keys the author held, wrapped under the new key.
    pub wrapped: Vec<WrappedEpochKey>,
}

/// What an op changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The account's first device and first epoch (root-signed, position 1).
    Genesis {
        /// The first device.
        first: MemberKeys,
        /// Epoch 1's key sealed to it.
        rotation: Rotation,
    },
    /// A member adds a device; the current epoch key is sealed to it.
    Add {
        /// The new device.
        member: MemberKeys,
        /// The current epoch key sealed to the new device (one key).
        key: SealedEpochKey,
    },
    /// A member revokes a device and starts a new epoch without it.
    Revoke {
        /// The revoked device.
        device: DeviceId,
        /// The new epoch.
        rotation: Rotation,
    },
    /// A member starts a new epoch (same members).
    Rotate {
        /// The new epoch.
        rotation: Rotation,
    },
    /// The root key (recovery code) sets the members to exactly these
    /// devices, revoking every other, and starts a new epoch.
    Recover {
        /// The devices that stay or come back.
        members: Vec<MemberKeys>,
        /// The new epoch.
        rotation: Rotation,
    },
}

impl Change {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Genesis { .. } => "genesis",
            Change::Add { .. } => "add",
            Change::Revoke { .. } => "revoke",
            Change::Rotate { .. } => "rotate",
            Change::Recover { .. } => "recover",
        }
    }
}

/// Who signed an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Author {
    /// The account root key (from the recovery code).
    Root,
    /// A member device.
    Device(DeviceId),
}

/// Everything an op's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpBody {
    /// [`MEMBERSHIP_FORMAT`].
    pub format: u16,
    /// The account.
    pub account: AccountId,
    /// Position in the log, from 1.
    pub position: u64,
    /// Hash of the op at `position - 1` (zeros for the genesis).
    pub prev: [u8; 32],
    /// The epoch in force after this op.
    pub epoch: u64,
    /// The signer.
    pub author: Author,
    /// When it was made (informational), ms since the Unix epoch.
    pub at_ms: u64,
    /// The change.
    pub change: Change,
}

/// One signed op of the membership log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipOp {
    /// The signed content.
    pub body: OpBody,
    /// Signature over `CONTEXT_MEMBERSHIP_OP || postcard(body)` by the author.
    pub signature: Signature,
}

fn signing_bytes(body: &OpBody) -> Vec<u8> {
    let mut out = CONTEXT_MEMBERSHIP_OP.to_vec();
    // Plain data; postcard cannot fail here. On failure the context alone
    // is signed, which never verifies for a real body.
    if let Ok(b) = postcard::to_allocvec(body) {
        out.extend_from_slice(&b);
    }
    out
}

impl MembershipOp {
    /// Signs `body` with `key` (the root key or the author device's key).
    pub fn sign(body: OpBody, key: &SigningKey) -> Self {
        let signature = key.sign(&signing_bytes(&body));
        Self { body, signature }
    }

    /// The chain link: SHA-256 of the context and the whole signed op.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(CONTEXT_MEMBERSHIP_HASH);
        if let Ok(b) = postcard::to_allocvec(self) {
            h.update(&b);
        }
        h.finalize().into()
    }
}

/// Why an op was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The op's format is not one this code reads.
    #[error(
        "membership op format {found} is not supported (this Kith reads format {MEMBERSHIP_FORMAT})"
    )]
    Format {
        /// The format found.
        found: u16,
    },
    /// The op is for another account.
    #[error("membership op is for account {found}, not {expected}")]
    WrongAccount {
        /// The account of the log.
        expected: AccountId,
        /// The account in the op.
        found: AccountId,
    },
    /// The op is not at the next position: the verifier's log is behind
    /// (fetch the missing ops) or the op was made on an old head.
    #[error("membership op at position {found} does not extend the log of {len} ops")]
    NotNext {
        /// Ops the log holds.
        len: u64,
        /// The op's position.
        found: u64,
    },
    /// The op names another previous op than the log's head: a fork.
    #[error("membership op at position {position} was made on another history (a fork)")]
    Fork {
        /// The op's position.
        position: u64,
    },
    /// The signature does not verify under the author's key.
    #[error("membership op at position {position} has a bad signature")]
    BadSignature {
        /// The op's position.
        position: u64,
    },
    /// The author may not make this change.
    #[error("{author} may not {change} at position {position}: {reason}")]
    NotAllowed {
        /// Who signed.
        author: String,
        /// What it tried.
        change: &'static str,
        /// The op's position.
        position: u64,
        /// Why not.
        reason: String,
    },
    /// The op is inconsistent (epoch numbering, sealed keys, bounds).
    #[error("membership op at position {position} is invalid: {reason}")]
    Invalid {
        /// The op's position.
        position: u64,
        /// What is wrong.
        reason: String,
    },
}

/// A current member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its keys.
    pub keys: MemberKeys,
    /// Position of the op that added it.
    pub added_at: u64,
}

/// The state a membership log leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    account: AccountId,
    len: u64,
    head: [u8; 32],
    epoch: u64,
    members: BTreeMap<DeviceId, Member>,
    /// Device -> position of the op that revoked it.
    revoked: BTreeMap<DeviceId, u64>,
    /// Epoch -> position of the op that started it.
    epochs: BTreeMap<u64, u64>,
}

impl Membership {
    /// The empty log of `account` (nothing is a member until the genesis).
    pub fn new(account: AccountId) -> Self {
        Self {
            account,
            len: 0,
            head: [0; 32],
            epoch: 0,
            members: BTreeMap::new(),
            revoked: BTreeMap::new(),
            epochs: BTreeMap::new(),
        }
    }

    /// The state after `ops`, checking each.
    pub fn from_ops<'a>(
        account: AccountId,
        ops: impl IntoIterator<Item = &'a MembershipOp>,
    ) -> Result<Self, MembershipError> {
        let mut m = Self::new(account);
        for op in ops {
            m.apply(op)?;
        }
        Ok(m)
    }

    /// Signs the op that would come next in this log: position, previous
    /// hash and account filled in. `key` must be the author's key.
    pub fn next_op(
        &self,
        author: Author,
        key: &SigningKey,
        epoch: u64,
        change: Change,
        at_ms: u64,
    ) -> MembershipOp {
        MembershipOp::sign(
            OpBody {
                format: MEMBERSHIP_FORMAT,
                account: self.account,
                position: self.len + 1,
                prev: self.head,
                epoch,
                author,
                at_ms,
                change,
            },
            key,
        )
    }

    /// The account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Number of ops applied.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the genesis.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash of the last op (zeros when empty).
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The current epoch (0 before the genesis).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Position of the op that started `epoch`.
    pub fn epoch_started_at(&self, epoch: u64) -> Option<u64> {
        self.epochs.get(&epoch).copied()
    }

    /// True if `device` is a member now.
    pub fn is_member(&self, device: &DeviceId) -> bool {
        self.members.contains_key(device)
    }

    /// Position of the op that revoked `device`, if it is revoked now.
    pub fn revoked_at(&self, device: &DeviceId) -> Option<u64> {
        self.revoked.get(device).copied()
    }

    /// The current members.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn member(&self, device: &DeviceId) -> Option<&Member> {
        self.members.get(device)
    }

    /// Every device revoked now.
    pub fn revoked(&self) -> impl Iterator<Item = (&DeviceId, &u64)> {
        self.revoked.iter()
    }

    fn check_rotation(
        &self,
        position: u64,
        epoch: u64,
        rotation: &Rotation,
        to: &BTreeSet<DeviceId>,
    ) -> Result<(), MembershipError> {
        let invalid = |reason: String| MembershipError::Invalid { position, reason };
        if epoch != self.epoch + 1 {
            return Err(invalid(format!(
                "a new epoch must be {}, not {epoch}",
                self.epoch + 1
            )));
        }
        let sealed: BTreeSet<DeviceId> = rotation.keys.iter().map(|k| k.to).collect();
        if sealed.len() != rotation.keys.len() || sealed != *to {
            return Err(invalid(
                "the new epoch key must be sealed exactly once to every member of the new epoch"
                    .into(),
            ));
        }
        if rotation
            .keys
            .iter()
            .any(|k| k.ciphertext.len() > SEALED_KEY_BYTES_MAX)
        {
            return Err(invalid("a sealed epoch key is too long".into()));
        }
        if rotation.wrapped.len() > WRAPPED_KEYS_MAX
            || rotation.wrapped.iter().any(|w| {
                w.epoch >= epoch || w.epoch == 0 || w.ciphertext.len() > SEALED_KEY_BYTES_MAX
            })
        {
            return Err(invalid("a wrapped older key is invalid".into()));
        }
        Ok(())
    }

    /// Checks `op` against the state and applies it.
    pub fn apply(&mut self, op: &MembershipOp) -> Result<(), MembershipError> {
        let b = &op.body;
        let position = b.position;
        if b.format != MEMBERSHIP_FORMAT {
            return Err(MembershipError::Format { found: b.format });
        }
        if b.account != self.account {
            return Err(MembershipError::WrongAccount {
                expected: self.account,
                found: b.account,
            });
        }
        if position != self.len + 1 {
            return Err(MembershipError::NotNext {
                len: self.len,
                found: position,
            });
        }
        if b.prev != self.head {
            return Err(MembershipError::Fork { position });
        }
        let key = match b.author {
            Author::Root => self.account.verifying_key(),
            Author::Device(d) => d.verifying_key(),
        }
        .map_err(|_| MembershipError::BadSignature { position })?;
        key.verify(&signing_bytes(b), &op.signature)
            .map_err(|_| MembershipError::BadSignature { position })?;
        let author_name = match b.author {
            Author::Root => "the recovery key".to_string(),
            Author::Device(d) => format!("device {d}"),
        };
        let not_allowed = |reason: &str| MembershipError::NotAllowed {
            author: author_name.clone(),
            change: b.change.name(),
            position,
            reason: reason.to_string(),
        };
        let invalid = |reason: &str| MembershipError::Invalid {
            position,
            reason: reason.to_string(),
        };
        // Device-signed ops need a current member as author.
        if let Author::Device(d) = b.author
            && !self.members.contains_key(&d)
        {
            return Err(not_allowed(if self.revoked.contains_key(&d) {
                "it is revoked"
            } else {
                "it is not a member"
            }));
        }
        let mut next = self.clone();
        match &b.change {
            Change::Genesis { first, rotation } => {
                if position != 1 || b.author != Author::Root {
                    return Err(not_allowed(
                        "only the root key opens the log, at position 1",
                    ));
                }
                first
                    .device
                    .verifying_key()
                    .map_err(|_| invalid("the first device key is not a valid key"))?;
                let to = BTreeSet::from([first.device]);
                self.check_rotation(position, b.epoch, rotation, &to)?;
                next.members.insert(
                    first.device,
                    Member {
                        keys: first.clone(),
                        added_at: position,
                    },
                );
            }
            Change::Add { member, key } => {
                if b.author == Author::Root {
                    return Err(not_allowed("the root key recovers, it does not add"));
                }
                if b.epoch != self.epoch {
                    return Err(invalid("an add keeps the current epoch"));
                }
                member
                    .device
                    .verifying_key()
                    .map_err(|_| invalid("the new device key is not a valid key"))?;
                if self.members.contains_key(&member.device) {
                    return Err(not_allowed("the device is already a member"));
                }
                if self.revoked.contains_key(&member.device) {
                    return Err(not_allowed(
                        "the device was revoked; only the recovery key can bring it back",
                    ));
                }
                if self.members.len() >= MEMBERS_MAX {
                    return Err(invalid("the account has the most devices allowed"));
                }
                if key.to != member.device || key.ciphertext.len() > SEALED_KEY_BYTES_MAX {
                    return Err(invalid("the epoch key must be sealed to the new device"));
                }
                next.members.insert(
                    member.device,
                    Member {
                        keys: member.clone(),
                        added_at: position,
                    },
                );
            }
            Change::Revoke { device, rotation } => {
                if b.author == Author::Root {
                    return Err(not_allowed("the root key revokes through a recovery"));
                }
                if !self.members.contains_key(device) {
                    return Err(not_allowed("the device is not a member"));
                }
                let to: BTreeSet<DeviceId> = self
                    .members
                    .keys()
                    .filter(|d| *d != device)
                    .copied()
                    .collect();
                if to.is_empty() {
                    return Err(not_allowed("the last device cannot be revoked"));
                }
                self.check_rotation(position, b.epoch, rotation, &to)?;
                next.members.remove(device);
                next.revoked.insert(*device, position);
            }
            Change::Rotate { rotation } => {
                if b.author == Author::Root {
                    return Err(not_allowed("the root key rotates through a recovery"));
                }
                let to: BTreeSet<DeviceId> = self.members.keys().copied().collect();
                self.check_rotation(position, b.epoch, rotation, &to)?;
            }
            Change::Recover { members, rotation } => {
                if b.author != Author::Root {
                    return Err(not_allowed("only the recovery key recovers"));
                }
                if members.is_empty() || members.len() > MEMBERS_MAX {
                    return Err(invalid("a recovery keeps between 1 and 64 devices"));
                }
                let to: BTreeSet<DeviceId> = members.iter().map(|m| m.device).collect();
                if to.len() != members.len() {
                    return Err(invalid("a device is listed twice"));
                }
                for m in members {
                    m.device
                        .verifying_key()
                        .map_err(|_| invalid("a kept device key is not a valid key"))?;
                }
                self.check_rotation(position, b.epoch, rotation, &to)?;
                for d in self.members.keys() {
                    if !to.contains(d) {
                        next.revoked.insert(*d, position);
                    }
                }
                next.members.clear();
                for m in members {
                    next.revoked.remove(&m.device);
                    next.members.insert(
                        m.device,
                        Member {
                            keys: m.clone(),
                            added_at: position,
                        },
                    );
                }
            }
        }
        if b.epoch != self.epoch {
            next.epochs.insert(b.epoch, position);
        }
        next.epoch = b.epoch;
        next.len = position;
        next.head = op.hash();
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn mk(d: &SigningKey) -> MemberKeys {
        MemberKeys {
            device: DeviceId::from(d.verifying_key()),
            seal_key: [1; 32],
        }
    }

    fn sealed(to: DeviceId) -> SealedEpochKey {
        SealedEpochKey {
            to,
            enc: [0; 32],
            ciphertext: vec![0; 48],
        }
    }

    fn rot(to: &[&SigningKey]) -> Rotation {
        Rotation {
            keys: to
                .iter()
                .map(|k| sealed(DeviceId::from(k.verifying_key())))
                .collect(),
            wrapped: vec![],
        }
    }

    fn op(
        m: &Membership,
        author: Author,
        epoch: u64,
        change: Change,
        k: &SigningKey,
    ) -> MembershipOp {
        MembershipOp::sign(
            OpBody {
                format: MEMBERSHIP_FORMAT,
                account: m.account(),
                position: m.len() + 1,
                prev: m.head(),
                epoch,
                author,
                at_ms: 1,
                change,
            },
            k,
        )
    }

    fn dev(k: &SigningKey) -> Author {
        Author::Device(DeviceId::from(k.verifying_key()))
    }

    /// root, a (first), b added by a.
    fn setup() -> (SigningKey, SigningKey, SigningKey, Membership) {
        let root = key(1);
        let a = key(2);
        let b = key(3);
        let mut m = Membership::new(AccountId::from(root.verifying_key()));
        let g = op(
            &m,
            Author::Root,
            1,
            Change::Genesis {
                first: mk(&a),
                rotation: rot(&[&a]),
            },
            &root,
        );
        m.apply(&g).unwrap();
        let add = op(
            &m,
            dev(&a),
            1,
            Change::Add {
                member: mk(&b),
                key: sealed(DeviceId::from(b.verifying_key())),
            },
            &a,
        );
        m.apply(&add).unwrap();
        (root, a, b, m)
    }

    #[test]
    fn revoked_device_can_neither_revoke_nor_add_nor_rotate() {
        let (_root, a, b, mut m) = setup();
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Revoke {
                device: DeviceId::from(b.verifying_key()),
                rotation: rot(&[&a]),
            },
            &a,
        );
        m.apply(&r).unwrap();
        assert!(!m.is_member(&DeviceId::from(b.verifying_key())));
        assert_eq!(m.revoked_at(&DeviceId::from(b.verifying_key())), Some(3));
        assert_eq!(m.epoch(), 2);
        // b revokes a: refused, b is revoked.
        let back = op(
            &m,
            dev(&b),
            3,
            Change::Revoke {
                device: DeviceId::from(a.verifying_key()),
                rotation: rot(&[&b]),
            },
            &b,
        );
        assert!(matches!(
            m.apply(&back),
            Err(MembershipError::NotAllowed { .. })
        ));
        // b adds a key it minted: refused.
        let minted = key(9);
        let add = op(
            &m,
            dev(&b),
            2,
            Change::Add {
                member: mk(&minted),
                key: sealed(DeviceId::from(minted.verifying_key())),
            },
            &b,
        );
        assert!(matches!(
            m.apply(&add),
            Err(MembershipError::NotAllowed { .. })
        ));
        // The minted key signing for itself: not a member either.
        let selfadd = op(
            &m,
            dev(&minted),
            2,
            Change::Add {
                member: mk(&minted),
                key: sealed(DeviceId::from(minted.verifying_key())),
            },
            &minted,
        );
        assert!(matches!(
            m.apply(&selfadd),
            Err(MembershipError::NotAllowed { .. })
        ));
        // a cannot re-add the revoked b.
        let readd = op(
            &m,
            dev(&a),
            2,
            Change::Add {
                member: mk(&b),
                key: sealed(DeviceId::from(b.verifying_key())),
            },
            &a,
        );
        assert!(matches!(
            m.apply(&readd),
            Err(MembershipError::NotAllowed { .. })
        ));
    }

    #[test]
    fn backdated_op_of_a_revoked_device_is_a_fork() {
        let (_root, a, b, mut m) = setup();
        let before = m.clone();
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Revoke {
                device: DeviceId::from(b.verifying_key()),
                rotation: rot(&[&a]),
            },
            &a,
        );
        m.apply(&r).unwrap();
        // b signs, on the head before its revocation, a revocation of a.
        let mut forged = op(
            &before,
            dev(&b),
            2,
            Change::Revoke {
                device: DeviceId::from(a.verifying_key()),
                rotation: rot(&[&b]),
            },
            &b,
        );
        assert!(matches!(
            m.apply(&forged),
            Err(MembershipError::NotNext { .. })
        ));
        // ... and at the next position on the old head: a fork.
        forged.body.position = m.len() + 1;
        let forged = MembershipOp::sign(forged.body, &b);
        assert!(matches!(
            m.apply(&forged),
            Err(MembershipError::Fork { .. })
        ));
    }

    #[test]
    fn rotation_must_cover_exactly_the_remaining_members() {
        let (_root, a, b, mut m) = setup();
        // Keeps the revoked device in the new epoch.
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Revoke {
                device: DeviceId::from(b.verifying_key()),
                rotation: rot(&[&a, &b]),
            },
            &a,
        );
        assert!(matches!(m.apply(&r), Err(MembershipError::Invalid { .. })));
        // Leaves a member out of a rotation.
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Rotate {
                rotation: rot(&[&a]),
            },
            &a,
        );
        assert!(matches!(m.apply(&r), Err(MembershipError::Invalid { .. })));
        // Skips an epoch.
        let r = op(
            &m,
            dev(&a),
            3,
            Change::Rotate {
                rotation: rot(&[&a, &b]),
            },
            &a,
        );
        assert!(matches!(m.apply(&r), Err(MembershipError::Invalid { .. })));
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Rotate {
                rotation: rot(&[&a, &b]),
            },
            &a,
        );
        m.apply(&r).unwrap();
        assert_eq!(m.epoch(), 2);
        assert_eq!(m.epoch_started_at(2), Some(3));
    }

    #[test]
    fn recovery_needs_the_root_key_and_restores_a_revoked_device() {
        let (root, a, b, mut m) = setup();
        // b (stolen) revokes a.
        let r = op(
            &m,
            dev(&b),
            2,
            Change::Revoke {
                device: DeviceId::from(a.verifying_key()),
                rotation: rot(&[&b]),
            },
            &b,
        );
        m.apply(&r).unwrap();
        // a cannot recover with its own key.
        let fake = op(
            &m,
            dev(&a),
            3,
            Change::Recover {
                members: vec![mk(&a)],
                rotation: rot(&[&a]),
            },
            &a,
        );
        assert!(m.apply(&fake).is_err());
        let rec = op(
            &m,
            Author::Root,
            3,
            Change::Recover {
                members: vec![mk(&a)],
                rotation: rot(&[&a]),
            },
            &root,
        );
        m.apply(&rec).unwrap();
        assert!(m.is_member(&DeviceId::from(a.verifying_key())));
        assert!(!m.is_member(&DeviceId::from(b.verifying_key())));
        assert_eq!(m.revoked_at(&DeviceId::from(b.verifying_key())), Some(4));
        assert_eq!(m.revoked_at(&DeviceId::from(a.verifying_key())), None);
    }

    #[test]
    fn tampering_and_wrong_account_are_refused() {
        let (_root, a, b, m) = setup();
        let mut r = op(
            &m,
            dev(&a),
            2,
            Change::Rotate {
                rotation: rot(&[&a, &b]),
            },
            &a,
        );
        r.body.at_ms = 99;
        let mut m2 = m.clone();
        assert!(matches!(
            m2.apply(&r),
            Err(MembershipError::BadSignature { .. })
        ));
        let mut other = Membership::new(AccountId::from(key(7).verifying_key()));
        let r = op(
            &m,
            dev(&a),
            2,
            Change::Rotate {
                rotation: rot(&[&a, &b]),
            },
            &a,
        );
        assert!(matches!(
            other.apply(&r),
            Err(MembershipError::WrongAccount { .. })
        ));
        let mut f = r.clone();
        f.body.format = 0;
        assert!(matches!(
            m2.apply(&f),
            Err(MembershipError::Format { found: 0 })
        ));
    }

    use proptest::prelude::*;

    /// One attempted change: who tries (device index or root), what, on whom.
    #[derive(Debug, Clone)]
    enum Try {
        Add {
            by: usize,
            new: usize,
        },
        Revoke {
            by: usize,
            target: usize,
        },
        Rotate {
            by: usize,
        },
        Recover {
            keep: Vec<usize>,
        },
        /// A device signs an op on an older head (a backdated fork).
        Backdate {
            by: usize,
            target: usize,
            back: u64,
        },
    }

    fn tries() -> impl Strategy<Value = Vec<Try>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (0..6usize, 0..6usize).prop_map(|(by, new)| Try::Add { by, new }),
                2 => (0..6usize, 0..6usize).prop_map(|(by, target)| Try::Revoke { by, target }),
                1 => (0..6usize).prop_map(|by| Try::Rotate { by }),
                1 => proptest::collection::vec(0..6usize, 1..3).prop_map(|keep| Try::Recover { keep }),
                1 => (0..6usize, 0..6usize, 1..4u64).prop_map(|(by, target, back)| Try::Backdate { by, target, back }),
            ],
            1..40,
        )
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// Whatever devices try, in whatever order: (1) every verifier that
        /// sees the accepted ops reaches the same state; (2) no op signed by
        /// a device that is not a member at that point is ever accepted (a
        /// revoked device cannot add, revoke or rotate, not even by
        /// backdating onto an older head); (3) every new epoch is sealed to
        /// exactly the members after the op; (4) epochs only grow by one.
        #[test]
        fn random_changes_keep_the_invariants(tries in tries()) {
            let root = key(100);
            let keys: Vec<SigningKey> = (0..6u8).map(|i| key(10 + i)).collect();
            let id = |i: usize| DeviceId::from(keys[i].verifying_key());
            let mut m = Membership::new(AccountId::from(root.verifying_key()));
            let g = op(&m, Author::Root, 1, Change::Genesis { first: mk(&keys[0]), rotation: rot(&[&keys[0]]) }, &root);
            m.apply(&g).unwrap();
            let mut accepted = vec![g];
            let mut history = vec![m.clone()];
            for t in tries {
                let before = m.clone();
                let members: Vec<&SigningKey> = keys.iter().filter(|k| m.is_member(&DeviceId::from(k.verifying_key()))).collect();
                let (o, author) = match t {
                    Try::Add { by, new } => (op(&m, dev(&keys[by]), m.epoch(), Change::Add { member: mk(&keys[new]), key: sealed(id(new)) }, &keys[by]), Some(by)),
                    Try::Revoke { by, target } => {
                        let rest: Vec<&SigningKey> = members.iter().copied().filter(|k| DeviceId::from(k.verifying_key()) != id(target)).collect();
                        (op(&m, dev(&keys[by]), m.epoch() + 1, Change::Revoke { device: id(target), rotation: rot(&rest) }, &keys[by]), Some(by))
                    }
                    Try::Rotate { by } => (op(&m, dev(&keys[by]), m.epoch() + 1, Change::Rotate { rotation: rot(&members) }, &keys[by]), Some(by)),
                    Try::Recover { keep } => {
                        let mut ks: Vec<&SigningKey> = keep.iter().map(|i| &keys[*i]).collect();
                        ks.dedup_by_key(|k| k.verifying_key());
                        let uniq: std::collections::BTreeMap<DeviceId, &SigningKey> = ks.into_iter().map(|k| (DeviceId::from(k.verifying_key()), k)).collect();
                        let ks: Vec<&SigningKey> = uniq.values().copied().collect();
                        (op(&m, Author::Root, m.epoch() + 1, Change::Recover { members: ks.iter().map(|k| mk(k)).collect(), rotation: rot(&ks) }, &root), None)
                    }
                    Try::Backdate { by, target, back } => {
                        let old = &history[history.len().saturating_sub(1 + back as usize)];
                        let rest: Vec<&SigningKey> = keys.iter().filter(|k| old.is_member(&DeviceId::from(k.verifying_key())) && DeviceId::from(k.verifying_key()) != id(target)).collect();
                        let mut o = op(old, dev(&keys[by]), old.epoch() + 1, Change::Revoke { device: id(target), rotation: rot(&rest) }, &keys[by]);
                        // Claim the next position to look current.
                        o.body.position = m.len() + 1;
                        (MembershipOp::sign(o.body, &keys[by]), Some(by))
                    }
                };
                let ok = m.apply(&o).is_ok();
                if ok {
                    // (2) only a current member (or the root) makes changes.
                    if let Some(by) = author {
                        prop_assert!(before.is_member(&id(by)));
                    }
                    // (3) a new epoch is sealed to exactly the members after it.
                    if m.epoch() != before.epoch() {
                        prop_assert_eq!(m.epoch(), before.epoch() + 1);
                        let rotation = match &o.body.change {
                            Change::Revoke { rotation, .. } | Change::Rotate { rotation } | Change::Recover { rotation, .. } => rotation,
                            _ => unreachable!("only rotations change the epoch"),
                        };
                        let to: BTreeSet<DeviceId> = rotation.keys.iter().map(|k| k.to).collect();
                        let now: BTreeSet<DeviceId> = m.members().map(|x| x.keys.device).collect();
                        prop_assert_eq!(to, now);
                    }
                    accepted.push(o);
                    history.push(m.clone());
                } else {
                    prop_assert_eq!(&m, &before, "a refused op changed nothing");
                }
                // Revoked devices are never members.
                for (d, _) in m.revoked() {
                    prop_assert!(!m.is_member(d));
                }
                prop_assert!(m.members().count() >= 1);
            }
            // (1) A fresh verifier of the accepted ops agrees exactly.
            let again = Membership::from_ops(m.account(), &accepted).unwrap();
            prop_assert_eq!(again, m);
            // And the ops survive their wire encoding.
            for o in &accepted {
                let bytes = postcard::to_allocvec(o).unwrap();
                let back: MembershipOp = postcard::from_bytes(&bytes).unwrap();
                prop_assert_eq!(&back, o);
                prop_assert_eq!(back.hash(), o.hash());
            }
        }
    }
}
