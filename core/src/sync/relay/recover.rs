//! Winning an account back with its recovery code through the relay,
//! sans-IO (docs/SECURITY.md §3.7).
//!
//! The device that recovers may be revoked (a thief revoked it first) or
//! not be a member at all (every device was lost; this one was restored
//! from a backup), so it cannot authenticate as a device. It authenticates
//! with the account's root key instead (`Auth` whose device is the account
//! id, the challenge signed by the key the code derives): the relay then
//! lets it read the membership log and append ops, nothing else.
//!
//! Data flow: `Hello` -> `Welcome` (pinned relay key) -> `Auth` as the root
//! -> `AuthOk` (the relay's log length) -> `GetMembership` pages, each
//! verified and stored (`membership::absorb_in`: the relay cannot slip in an
//! op the log's rules refuse); the epoch keys this device can open are
//! cached, including, when given, those of the *former* identity (the keys
//! of a lost device restored from a backup) -> the `Recover` op made on the
//! relay's head: members exactly `keep`, every other device revoked, a new
//! epoch sealed to `keep` wrapping every older key this device holds ->
//! `AppendMembership` (with any ops of the local log the relay lacks) ->
//! `MembershipAppended`: the op is stored and the session is done. When
//! someone appended first (`MembershipBehind`), the log is fetched again and
//! the op re-made on the new head (bounded).
//!
//! Nothing here does I/O besides the store; no clock (the caller passes
//! `now_ms`).

use std::collections::{BTreeMap, VecDeque};

use kith_protocol::membership::OPS_PER_MESSAGE_MAX;
use kith_protocol::{
    AccountId, Change, ClientMsg, DeviceId, ErrorCode, MemberKeys, MembershipOp, PROTOCOL_VERSIONS,
    RelayKey, Request, Response, ServerMsg, sign_auth,
};

use super::super::authority::{self, AuthorityError, RecoveryCode};
use super::super::device_identity::DeviceIdentity;
use super::super::epochs::EpochKeys;
use super::super::membership::{self, MembershipSyncError};
use super::super::tables;
use crate::error::StoreError;
use crate::store::Store;

/// Times the `Recover` op is re-made on a newer head before giving up.
const RECOVER_RETRIES_MAX: u32 = 8;

/// Why a recovery failed; nothing was changed at the relay unless the case
/// says so.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The code was mistyped, or made the op refused (see the detail).
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The recovery code is valid but belongs to another account than this
    /// device's: find the code written down for this account.
    #[error(
        "this recovery code is for account {code_account}, but this device belongs to account {account}: use the code written down for {account}"
    )]
    OtherAccount {
        /// The account the code opens.
        code_account: AccountId,
        /// The account of this device.
        account: AccountId,
    },
    /// The relay holds no account for this code: another relay, or the code
    /// of an account that never synced there.
    #[error(
        "the relay does not hold account {account}: check the relay address, or whether this recovery code belongs to an account that synced through it"
    )]
    UnknownAccount {
        /// The account of the code.
        account: AccountId,
    },
    /// A device to keep is neither this device nor named in the account's
    /// membership log.
    #[error("device {0} is not in this account's membership log (see `kith devices`)")]
    UnknownDevice(DeviceId),
    /// A recovery must keep at least one device.
    #[error("a recovery must keep at least one device")]
    NothingKept,
    /// The relay presented another key than the pinned one.
    #[error("the relay presented key {got}, but the address pins {expected}")]
    WrongRelay {
        /// The pinned key.
        expected: RelayKey,
        /// The key presented.
        got: RelayKey,
    },
    /// The relay refused (its code says why).
    #[error("the relay refused ({}): {message}", code.name())]
    Relay {
        /// The relay's error code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The relay's log could not be taken (refused by the log's rules, or
    /// a fork with this device's log): nothing was appended.
    #[error(transparent)]
    Membership(#[from] MembershipSyncError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The relay answered out of turn.
    #[error("protocol violation by the relay: {0}")]
    Protocol(String),
}

tables::redb_errors_into!(RecoverError);

/// What a finished recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The members now.
    pub members: Vec<DeviceId>,
    /// Devices that were members before and are revoked by the recovery.
    pub revoked: Vec<DeviceId>,
    /// The new epoch.
    pub epoch: u64,
    /// Older epoch keys the new epoch wraps (what the kept devices can read
    /// of the history).
    pub epochs_wrapped: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    HelloSent,
    AuthSent,
    Fetching,
    Appending,
    Done,
}

/// One recovery session over one relay connection.
#[derive(Debug)]
pub struct RecoverySession {
    relay: RelayKey,
    code: RecoveryCode,
    me: DeviceIdentity,
    former: Option<DeviceIdentity>,
    keep: Vec<DeviceId>,
    phase: Phase,
    out: VecDeque<ClientMsg>,
    next_req: u32,
    relay_len: u64,
    sent: Option<(MembershipOp, Vec<DeviceId>, usize)>,
    retries: u32,
    result: Option<Result<Recovered, RecoverError>>,
}

/// Every device the log ever named with its keys (a revoked one may be
/// kept by a recovery; its card is in the op that added it).
fn cards(ops: &[MembershipOp]) -> BTreeMap<DeviceId, MemberKeys> {
    let mut out = BTreeMap::new();
    for op in ops {
        match &op.body.change {
            Change::Genesis { first, .. } => {
                out.insert(first.device, first.clone());
            }
            Change::Add { member, .. } => {
                out.insert(member.device, member.clone());
            }
            Change::Recover { members, .. } => {
                for m in members {
                    out.insert(m.device, m.clone());
                }
            }
            Change::Revoke { .. } | Change::Rotate { .. } => {}
        }
    }
    out
}

impl RecoverySession {
    /// A session recovering `me`'s account (the code's) at `relay`, keeping
    /// exactly the devices `keep` (this device is `me.device_id()`).
    /// `former`: the identity of a lost device whose keys a backup restored;
    /// the epoch keys sealed to it are opened and carried into the new epoch.
    /// Queues `Hello`.
    pub fn new(
        store: &mut Store,
        relay: RelayKey,
        code: RecoveryCode,
        me: DeviceIdentity,
        former: Option<DeviceIdentity>,
        keep: Vec<DeviceId>,
    ) -> Result<Self, RecoverError> {
        let account = code.account();
        for id in std::iter::once(&me).chain(former.as_ref()) {
            if id.account_id() != account {
                return Err(RecoverError::OtherAccount {
                    code_account: account,
                    account: id.account_id(),
                });
            }
        }
        if keep.is_empty() {
            return Err(RecoverError::NothingKept);
        }
        // A stored log of another account (or a damaged one) is refused here.
        membership::state(store, account)?;
        let mut out = VecDeque::new();
        out.push_back(ClientMsg::Hello {
            versions: PROTOCOL_VERSIONS.to_vec(),
        });
        Ok(Self {
            relay,
            code,
            me,
            former,
            keep,
            phase: Phase::HelloSent,
            out,
            next_req: 1,
            relay_len: 0,
            sent: None,
            retries: 0,
            result: None,
        })
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<ClientMsg> {
        self.out.pop_front()
    }

    /// The outcome, once known (taken once).
    pub fn result(&mut self) -> Option<Result<Recovered, RecoverError>> {
        self.result.take()
    }

    /// True once the session succeeded or failed.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn request(&mut self, body: Request) {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        self.out.push_back(ClientMsg::Request { id, body });
    }

    fn fetch(&mut self, store: &mut Store) -> Result<(), RecoverError> {
        let after = membership::state(store, self.code.account())?.len();
        self.phase = Phase::Fetching;
        self.request(Request::GetMembership { after });
        Ok(())
    }

    /// Feeds one message from the relay; errors end the session (also
    /// reported by [`RecoverySession::result`]).
    pub fn handle(&mut self, store: &mut Store, msg: ServerMsg, now_ms: u64) {
        if self.phase == Phase::Done {
            return;
        }
        match self.step(store, msg, now_ms) {
            Ok(Some(done)) => {
                self.phase = Phase::Done;
                self.result = Some(Ok(done));
            }
            Ok(None) => {}
            Err(e) => {
                self.phase = Phase::Done;
                self.result = Some(Err(e));
            }
        }
    }

    fn step(
        &mut self,
        store: &mut Store,
        msg: ServerMsg,
        now_ms: u64,
    ) -> Result<Option<Recovered>, RecoverError> {
        let account = self.code.account();
        match (self.phase, msg) {
            (
                Phase::AuthSent,
                ServerMsg::Error {
                    id: None,
                    code: ErrorCode::NotAMember,
                    ..
                },
            ) => Err(RecoverError::UnknownAccount { account }),
            (_, ServerMsg::Error { code, message, .. })
                if !matches!(code, ErrorCode::MembershipBehind { .. }) =>
            {
                Err(RecoverError::Relay { code, message })
            }
            (
                Phase::HelloSent,
                ServerMsg::Welcome {
                    relay, challenge, ..
                },
            ) => {
                if relay != self.relay {
                    return Err(RecoverError::WrongRelay {
                        expected: self.relay,
                        got: relay,
                    });
                }
                let root = self.code.root_key();
                self.out.push_back(ClientMsg::Auth {
                    account,
                    // The account id is the root key's public half: the
                    // relay reads this as a recovery session.
                    device: DeviceId(account.0),
                    signature: sign_auth(&root, &relay, &challenge),
                    token: None,
                    membership: Vec::new(),
                });
                self.phase = Phase::AuthSent;
                Ok(None)
            }
            (Phase::AuthSent, ServerMsg::AuthOk { membership_len, .. }) => {
                self.relay_len = membership_len;
                self.fetch(store)?;
                Ok(None)
            }
            (
                Phase::Fetching,
                ServerMsg::Response {
                    body: Response::Membership { ops, more },
                    ..
                },
            ) => {
                self.take_ops(store, &ops)?;
                if more {
                    self.fetch(store)?;
                } else {
                    self.send_op(store, now_ms)?;
                }
                Ok(None)
            }
            (
                Phase::Appending,
                ServerMsg::Response {
                    body: Response::MembershipAppended { .. },
                    ..
                },
            ) => {
                let Some((op, revoked, wrapped)) = self.sent.take() else {
                    return Err(RecoverError::Protocol("an answer to no append".into()));
                };
                let (state, _) = membership::absorb(store, &self.me, std::slice::from_ref(&op))?;
                Ok(Some(Recovered {
                    members: state.members().map(|m| m.keys.device).collect(),
                    revoked,
                    epoch: state.epoch(),
                    epochs_wrapped: wrapped,
                }))
            }
            (
                Phase::Appending,
                ServerMsg::Error {
                    code: ErrorCode::MembershipBehind { len },
                    ..
                },
            ) if self.retries < RECOVER_RETRIES_MAX => {
                // Someone (perhaps the thief) appended first: fetch the new
                // ops and make the recovery again on the new head.
                self.retries += 1;
                self.relay_len = len;
                self.sent = None;
                self.fetch(store)?;
                Ok(None)
            }
            (_, ServerMsg::Error { code, message, .. }) => {
                Err(RecoverError::Relay { code, message })
            }
            (phase, other) => Err(RecoverError::Protocol(format!(
                "unexpected {other:?} in phase {phase:?}"
            ))),
        }
    }

    /// Verifies and stores ops from the relay, then caches the keys the
    /// former identity (a restored lost device) can open from the log.
    fn take_ops(&mut self, store: &mut Store, ops: &[MembershipOp]) -> Result<(), RecoverError> {
        let (_, new) = membership::absorb(store, &self.me, ops)?;
        if new > 0
            && let Some(f) = &self.former
        {
            let all = membership::ops(store)?;
            let keys = EpochKeys::from_log(&all, &f.device_id(), f.seal_key())
                .map_err(MembershipSyncError::from)?;
            let txn = store.writable()?.begin_write()?;
            for e in keys.epochs() {
                if let Some(k) = keys.get(e) {
                    tables::put_epoch_key(&txn, e, k)?;
                }
            }
            txn.commit()?;
        }
        Ok(())
    }

    /// Makes the `Recover` op on the head and sends it with the local ops
    /// the relay lacks.
    fn send_op(&mut self, store: &mut Store, now_ms: u64) -> Result<(), RecoverError> {
        let account = self.code.account();
        let ops = membership::ops(store)?;
        let state = membership::state(store, account)?;
        if state.is_empty() {
            return Err(RecoverError::UnknownAccount { account });
        }
        let known = cards(&ops);
        let mut keep = Vec::with_capacity(self.keep.len());
        for d in &self.keep {
            if *d == self.me.device_id() {
                keep.push(self.me.card());
            } else {
                keep.push(
                    known
                        .get(d)
                        .cloned()
                        .ok_or(RecoverError::UnknownDevice(*d))?,
                );
            }
        }
        let keys = membership::keys(store)?;
        let wrapped = keys.epochs().count();
        let (op, _) = authority::recover(&state, &self.code, keep, &keys, now_ms)?;
        let revoked: Vec<DeviceId> = state
            .members()
            .map(|m| m.keys.device)
            .filter(|d| !self.keep.contains(d))
            .collect();
        // Ops this device holds that the relay lacks (a relay restored from
        // an older backup) go first, so the op extends the relay's log.
        let mut batch: Vec<MembershipOp> = ops
            .into_iter()
            .filter(|o| o.body.position > self.relay_len)
            .collect();
        if batch.len() >= OPS_PER_MESSAGE_MAX {
            return Err(RecoverError::Protocol(format!(
                "the relay lacks {} ops of this device's log; sync another device first",
                batch.len()
            )));
        }
        batch.push(op.clone());
        self.sent = Some((op, revoked, wrapped));
        self.phase = Phase::Appending;
        self.request(Request::AppendMembership { ops: batch });
        Ok(())
    }
}
