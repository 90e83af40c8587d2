//! The account's membership log on this device: creating an account, taking
//! in ops learned from the relay or a peer, and the keys and state the sync
//! machines need (docs/SECURITY.md).
//!
//! Data flow: ops arrive (relay `AuthOk`/`GetMembership`/`Event::Membership`,
//! a peer's handshake, or this device's own op once the relay accepted it)
//! and go through [`absorb`]: `tables::append_membership` verifies them
//! against the stored log (signatures, authority, order, fork) and stores
//! them; then the epoch keys sealed to this device are opened from the log
//! and cached (`sync_epoch_keys`), in the same write transaction. Sealing
//! uses the current epoch's key ([`current_key`]); opening uses
//! [`tables::epoch_keys`] and the verified [`Membership`].
//!
//! Nothing here does I/O besides the store.

use kith_protocol::{AccountId, DeviceId, MemberKeys, Membership, MembershipError, MembershipOp};
use redb::WriteTransaction;

use super::authority::{self, AuthorityError, RecoveryCode};
use super::device_identity::DeviceIdentity;
use super::epochs::{EpochError, EpochKeys};
use super::tables::{self, MembershipStoreError};
use crate::error::StoreError;
use crate::identity::{DataKey, KeyMaterial};
use crate::store::Store;

/// Why a membership change or an incoming op was not taken.
#[derive(Debug, thiserror::Error)]
pub enum MembershipSyncError {
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An op was refused by the log's rules (signature, authority, order,
    /// fork); nothing was written.
    #[error("membership op refused: {0}")]
    Refused(#[from] MembershipError),
    /// An epoch key sealed to this device does not open.
    #[error(transparent)]
    Keys(#[from] EpochError),
    /// Making the op failed (not a member, no current key, wrong code).
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// This device is not a member of the account (revoked, or never added).
    #[error("this device is not a member of the account (revoked or never added)")]
    NotAMember,
    /// The device has no account yet.
    #[error("this device has not joined an account yet: run `kith init` or `kith join`")]
    NoAccount,
    /// The account already exists on this device.
    #[error("this device already belongs to account {0}")]
    AlreadyMember(AccountId),
}

tables::redb_errors_into!(MembershipSyncError);

impl From<MembershipStoreError> for MembershipSyncError {
    fn from(e: MembershipStoreError) -> Self {
        match e {
            MembershipStoreError::Store(s) => Self::Store(s),
            MembershipStoreError::Refused(r) => Self::Refused(r),
        }
    }
}

/// A new account with this device (`keys`) as its only member: writes the
/// genesis and the key of epoch 1 to the store, sets `keys.account`, and
/// returns the identity and the recovery code to show once. The caller
/// persists `keys` afterwards.
pub fn create_account(
    store: &mut Store,
    keys: &mut KeyMaterial,
    now_ms: u64,
) -> Result<(DeviceIdentity, RecoveryCode), MembershipSyncError> {
    if let Some(a) = keys.account {
        return Err(MembershipSyncError::AlreadyMember(AccountId(a)));
    }
    let probe = DeviceIdentity::with_account(keys, AccountId([0; 32]));
    let (code, genesis, key) = authority::create_account(probe.actor(), now_ms)?;
    let account = code.account();
    let id = DeviceIdentity::with_account(keys, account);
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    tables::append_membership(&txn, account, std::slice::from_ref(&genesis))?;
    tables::put_epoch_key(&txn, 1, &key)?;
    tables::touch_device(&txn, &id.device_id(), Some(id.device_name()), now_ms)?;
    txn.commit()?;
    keys.account = Some(account.0);
    Ok((id, code))
}

/// Verifies and stores `ops` (held ones are skipped), then caches the epoch
/// keys sealed to this device. Returns the state after them and how many
/// were new.
pub(crate) fn absorb_in(
    txn: &WriteTransaction,
    id: &DeviceIdentity,
    ops: &[MembershipOp],
) -> Result<(Membership, usize), MembershipSyncError> {
    tables::create(txn)?;
    let (state, all, new) = tables::append_membership(txn, id.account_id(), ops)?;
    if new > 0 {
        // This device's own name is known here, not from sealed data.
        tables::touch_device(txn, &id.device_id(), Some(id.device_name()), 0)?;
        let keys = EpochKeys::from_log(&all, &id.device_id(), id.seal_key())?;
        for e in keys.epochs() {
            if let Some(k) = keys.get(e) {
                tables::put_epoch_key(txn, e, k)?;
            }
        }
    }
    Ok((state, new))
}

/// [`absorb_in`] in its own transaction.
pub fn absorb(
    store: &mut Store,
    id: &DeviceIdentity,
    ops: &[MembershipOp],
) -> Result<(Membership, usize), MembershipSyncError> {
    let txn = store.writable()?.begin_write()?;
    let out = absorb_in(&txn, id, ops)?;
    txn.commit()?;
    Ok(out)
}

/// The stored log of `id`'s account.
pub fn ops(store: &mut Store) -> Result<Vec<MembershipOp>, MembershipSyncError> {
    let txn = store.read_txn()?;
    Ok(tables::membership_ops(&txn)?)
}

/// The verified state of the stored log.
pub fn state(store: &mut Store, account: AccountId) -> Result<Membership, MembershipSyncError> {
    let ops = ops(store)?;
    Ok(Membership::from_ops(account, &ops)?)
}

/// Every epoch key this device holds.
pub fn keys(store: &mut Store) -> Result<EpochKeys, MembershipSyncError> {
    let txn = store.read_txn()?;
    Ok(tables::epoch_keys(&txn)?)
}

/// The current epoch and its key, for sealing; `NotAMember` if this device
/// holds no key of it (it was revoked).
pub fn current_key(
    store: &mut Store,
    id: &DeviceIdentity,
) -> Result<(u64, DataKey), MembershipSyncError> {
    let st = state(store, id.account_id())?;
    if !st.is_member(&id.device_id()) {
        return Err(MembershipSyncError::NotAMember);
    }
    let keys = keys(store)?;
    let epoch = st.epoch();
    let key = keys
        .get(epoch)
        .cloned()
        .ok_or(MembershipSyncError::NotAMember)?;
    Ok((epoch, key))
}

/// The op by which this device revokes `target`, starting a new epoch
/// sealed to the remaining members (not stored: the relay orders it first,
/// then [`absorb`] takes it).
pub fn revoke_op(
    store: &mut Store,
    id: &DeviceIdentity,
    target: DeviceId,
    now_ms: u64,
) -> Result<MembershipOp, MembershipSyncError> {
    let st = state(store, id.account_id())?;
    let keys = keys(store)?;
    Ok(authority::revoke(&st, id.actor(), &keys, target, now_ms)?.0)
}

/// The op by which this device starts a new epoch with the same members
/// (not stored until the relay accepted it).
pub fn rotate_op(
    store: &mut Store,
    id: &DeviceIdentity,
    now_ms: u64,
) -> Result<MembershipOp, MembershipSyncError> {
    let st = state(store, id.account_id())?;
    let keys = keys(store)?;
    Ok(authority::rotate(&st, id.actor(), &keys, now_ms)?.0)
}

/// The op by which this device adds `member`, sealing the current epoch key
/// to it (not stored until the relay accepted it).
pub fn add_op(
    store: &mut Store,
    id: &DeviceIdentity,
    member: MemberKeys,
    now_ms: u64,
) -> Result<MembershipOp, MembershipSyncError> {
    let st = state(store, id.account_id())?;
    let keys = keys(store)?;
    Ok(authority::add(&st, id.actor(), &keys, member, now_ms)?)
}

/// The recovery op: with the code, the members become exactly `keep`, every
/// other device is revoked and a new epoch starts, wrapping every older key
/// this device holds.
pub fn recover_op(
    store: &mut Store,
    id: &DeviceIdentity,
    code: &RecoveryCode,
    keep: Vec<MemberKeys>,
    now_ms: u64,
) -> Result<MembershipOp, MembershipSyncError> {
    let st = state(store, id.account_id())?;
    let keys = keys(store)?;
    Ok(authority::recover(&st, code, keep, &keys, now_ms)?.0)
}
