//! Account authority on a device: the recovery code (the account's root
//! key, shown once at creation, kept by no device) and the membership ops a
//! device makes — create the account, add, revoke, rotate, recover — each
//! with its new epoch key sealed to the right devices ([`super::epochs`]).
//! docs/SECURITY.md explains the design.
//!
//! Data flow: the caller holds the verified log state and this device's
//! epoch keys; a builder signs the next op on that head, checks it by
//! applying it to a copy of the state (so a refusal is reported before
//! anything is sent), and returns it with the new epoch key when it made
//! one. Ordering the op (the relay's head) and storing it are the caller's.

use hkdf::Hkdf;
use kith_protocol::{
    AccountId, Author, Change, DeviceId, MemberKeys, Membership, MembershipError, MembershipOp,
    SigningKey,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::epochs::{self, EpochError, EpochKeys, SealKey};
use crate::identity::{DataKey, KEY_LEN_BYTES};

/// Prefix of a recovery code's text form (format 1).
pub const RECOVERY_PREFIX: &str = "kithr1";
const RECOVERY_SALT: &[u8] = b"kith-recovery-v1";
const RECOVERY_LABEL: &[u8] = b"kith recovery root v1";
const CHECKSUM_BYTES: usize = 3;

/// Why an authority action failed; each case says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The recovery code does not decode (typo, bad checksum); the detail says where.
    #[error("this is not a valid recovery code ({0}); check the groups you wrote down")]
    BadCode(String),
    /// A valid recovery code, but of another account: look for the right one.
    #[error("this recovery code is for account {code_account}, not {account}")]
    OtherAccount {
        /// The account the code belongs to.
        code_account: AccountId,
        /// The account being recovered.
        account: AccountId,
    },
    /// This device may not act for the account: re-pair it or use the recovery code.
    #[error("this device is not a member of the account (revoked or never added)")]
    NotAMember,
    /// The device lacks the current epoch key; sync, then try again.
    #[error("this device does not hold the key of the current epoch {epoch}; sync first")]
    NoCurrentKey {
        /// The current epoch.
        epoch: u64,
    },
    /// The op would not apply to the membership log (its rule is named); nothing is sent.
    #[error("the membership change is refused: {0}")]
    Refused(#[from] MembershipError),
    /// Sealing or opening an epoch key failed.
    #[error(transparent)]
    Epoch(#[from] EpochError),
}

/// The recovery code: 32 random bytes, shown once as
/// `kithr1-xxxx-xxxx-...` (base32, 4-character groups, a 3-byte checksum).
/// Its HKDF-derived ed25519 key is the account's root key.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode([u8; KEY_LEN_BYTES]);

impl Drop for RecoveryCode {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl std::fmt::Display for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut b = self.0.to_vec();
        b.extend_from_slice(&Sha256::digest(self.0)[..CHECKSUM_BYTES]);
        let text = kith_protocol::text::base32_lower(&b);
        b.zeroize();
        f.write_str(RECOVERY_PREFIX)?;
        for chunk in text.as_bytes().chunks(4) {
            f.write_str("-")?;
            f.write_str(std::str::from_utf8(chunk).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

impl RecoveryCode {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut b = [0u8; KEY_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(b)
    }

    /// Parses the written-down form; case, spaces and dashes are ignored.
    pub fn parse(text: &str) -> Result<Self, AuthorityError> {
        if text.len() > 256 {
            return Err(AuthorityError::BadCode("it is too long".into()));
        }
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let body = cleaned.strip_prefix(RECOVERY_PREFIX).ok_or_else(|| {
            AuthorityError::BadCode(format!("it must start with {RECOVERY_PREFIX}"))
        })?;
        let mut bytes = kith_protocol::text::base32_decode(body).ok_or_else(|| {
            AuthorityError::BadCode("it contains characters that are not base32".into())
        })?;
        if bytes.len() != KEY_LEN_BYTES + CHECKSUM_BYTES {
            bytes.zeroize();
            return Err(AuthorityError::BadCode(
                "a group is missing or extra".into(),
            ));
        }
        let mut secret = [0u8; KEY_LEN_BYTES];
        secret.copy_from_slice(&bytes[..KEY_LEN_BYTES]);
        let ok = Sha256::digest(secret)[..CHECKSUM_BYTES] == bytes[KEY_LEN_BYTES..];
        bytes.zeroize();
        if !ok {
            secret.zeroize();
            return Err(AuthorityError::BadCode(
                "its checksum does not match (a typo?)".into(),
            ));
        }
        Ok(Self(secret))
    }

    /// The account's root key.
    pub fn root_key(&self) -> SigningKey {
        let hk = Hkdf::<Sha256>::new(Some(RECOVERY_SALT), &self.0);
        let mut out = [0u8; KEY_LEN_BYTES];
        // 32 bytes are always within HKDF-SHA256's output limit.
        let _always_ok = hk.expand(RECOVERY_LABEL, &mut out);
        let k = SigningKey::from_bytes(&out);
        out.zeroize();
        k
    }

    /// The account id (the root key's public half).
    pub fn account(&self) -> AccountId {
        AccountId::from(self.root_key().verifying_key())
    }
}

/// A member device acting: its signing key and its sealing key.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The device's signing key; signs the ops it makes.
    pub sign: &'a SigningKey,
    /// The device's sealing key; epoch keys are sealed to its public half.
    pub seal: &'a SealKey,
}

impl Actor<'_> {
    /// The acting device's id (its signing key's public half).
    pub fn device(&self) -> DeviceId {
        DeviceId::from(self.sign.verifying_key())
    }

    /// The public keys that name this device in the membership log.
    pub fn keys(&self) -> MemberKeys {
        MemberKeys {
            device: self.device(),
            seal_key: self.seal.public(),
        }
    }
}

/// A new account with `first` as its only member: the recovery code to
/// show once, the genesis op and the key of epoch 1.
pub fn create_account(
    first: Actor<'_>,
    now_ms: u64,
) -> Result<(RecoveryCode, MembershipOp, DataKey), AuthorityError> {
    let code = RecoveryCode::generate();
    let root = code.root_key();
    let account = AccountId::from(root.verifying_key());
    let me = first.keys();
    let (key, rotation) = epochs::rotation(
        &account,
        1,
        &[(me.device, me.seal_key)],
        &EpochKeys::default(),
    )?;
    let mut state = Membership::new(account);
    let op = state.next_op(
        Author::Root,
        &root,
        1,
        Change::Genesis {
            first: me,
            rotation,
        },
        now_ms,
    );
    state.apply(&op)?;
    Ok((code, op, key))
}

fn checked(state: &Membership, op: MembershipOp) -> Result<MembershipOp, AuthorityError> {
    state.clone().apply(&op)?;
    Ok(op)
}

fn member_list(state: &Membership, without: Option<&DeviceId>) -> Vec<(DeviceId, [u8; 32])> {
    state
        .members()
        .filter(|m| Some(&m.keys.device) != without)
        .map(|m| (m.keys.device, m.keys.seal_key))
        .collect()
}

/// `by` adds `member`, sealing the current epoch key to it.
pub fn add(
    state: &Membership,
    by: Actor<'_>,
    keys: &EpochKeys,
    member: MemberKeys,
    now_ms: u64,
) -> Result<MembershipOp, AuthorityError> {
    if !state.is_member(&by.device()) {
        return Err(AuthorityError::NotAMember);
    }
    let epoch = state.epoch();
    let current = keys
        .get(epoch)
        .ok_or(AuthorityError::NoCurrentKey { epoch })?;
    let key = epochs::seal_to(
        &state.account(),
        epoch,
        member.device,
        &member.seal_key,
        current,
    )?;
    let op = state.next_op(
        Author::Device(by.device()),
        by.sign,
        epoch,
        Change::Add { member, key },
        now_ms,
    );
    checked(state, op)
}

/// `by` revokes `target` and starts a new epoch without it.
pub fn revoke(
    state: &Membership,
    by: Actor<'_>,
    keys: &EpochKeys,
    target: DeviceId,
    now_ms: u64,
) -> Result<(MembershipOp, DataKey), AuthorityError> {
    if !state.is_member(&by.device()) {
        return Err(AuthorityError::NotAMember);
    }
    let epoch = state.epoch() + 1;
    let (key, rotation) = epochs::rotation(
        &state.account(),
        epoch,
        &member_list(state, Some(&target)),
        keys,
    )?;
    let op = state.next_op(
        Author::Device(by.device()),
        by.sign,
        epoch,
        Change::Revoke {
            device: target,
            rotation,
        },
        now_ms,
    );
    Ok((checked(state, op)?, key))
}

/// `by` starts a new epoch with the same members.
pub fn rotate(
    state: &Membership,
    by: Actor<'_>,
    keys: &EpochKeys,
    now_ms: u64,
) -> Result<(MembershipOp, DataKey), AuthorityError> {
    if !state.is_member(&by.device()) {
        return Err(AuthorityError::NotAMember);
    }
    let epoch = state.epoch() + 1;
    let (key, rotation) =
        epochs::rotation(&state.account(), epoch, &member_list(state, None), keys)?;
    let op = state.next_op(
        Author::Device(by.device()),
        by.sign,
        epoch,
        Change::Rotate { rotation },
        now_ms,
    );
    Ok((checked(state, op)?, key))
}

/// With the recovery code: the members become exactly `keep` (every other
/// device is revoked) and a new epoch starts, wrapping every older key the
/// recovering device holds (`keys`).
pub fn recover(
    state: &Membership,
    code: &RecoveryCode,
    keep: Vec<MemberKeys>,
    keys: &EpochKeys,
    now_ms: u64,
) -> Result<(MembershipOp, DataKey), AuthorityError> {
    if code.account() != state.account() {
        return Err(AuthorityError::OtherAccount {
            code_account: code.account(),
            account: state.account(),
        });
    }
    let epoch = state.epoch() + 1;
    let to: Vec<(DeviceId, [u8; 32])> = keep.iter().map(|m| (m.device, m.seal_key)).collect();
    let (key, rotation) = epochs::rotation(&state.account(), epoch, &to, keys)?;
    let op = state.next_op(
        Author::Root,
        &code.root_key(),
        epoch,
        Change::Recover {
            members: keep,
            rotation,
        },
        now_ms,
    );
    Ok((checked(state, op)?, key))
}

#[cfg(test)]
mod tests;
