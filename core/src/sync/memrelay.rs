//! An in-memory relay that drives the client machines deterministically,
//! without sockets or a clock: messages in, messages queued per connection
//! out, `now_ms` given by the test.
//!
//! It owns no relay semantics of its own. Every state change and read goes
//! through the real relay's storage (`kith_relay::RedbStore` on redb's
//! in-memory backend), the code that the `RelayStore` conformance suite
//! checks and that `kith-relay` serves: membership append and verification,
//! pushes only from current members under the current epoch with
//! exact-next-seq, idempotent re-sends, gap and fork refusal, pulls after
//! cursors in bounded pages, snapshots that stay pending until another
//! device confirms them (protocol 4: only then pruned), heads and floors,
//! the one-time mailbox with its tombstones, quotas and device caps at the
//! relay's defaults. What is left here is
//! the per-connection protocol layer of `kith_relay::server` (handshake,
//! challenge-response authentication, the checks done before a request
//! reaches the store, subscriptions and fan-out, closing a revoked device's
//! connections), kept to the same order of checks. Fragmented snapshot
//! uploads (protocol 2's `PutSnapshotPart` / `CommitSnapshot`) are not
//! spoken: the client machines upload whole snapshots at test sizes.

use std::collections::VecDeque;

use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    AccountId, ClientMsg, Cursor, DeviceId, ErrorCode, Event, MembershipOp, RelayKey, Request,
    Response, ServerMsg, SigningKey, verify_auth,
};
use kith_relay::RelayStore;
use kith_relay::store::{StoreError, WriteOp, WriteOutcome};

#[derive(Debug)]
struct Conn {
    challenge: [u8; 32],
    auth: Option<(AccountId, DeviceId)>,
    subscribed: bool,
    inbox: VecDeque<ServerMsg>,
    open: bool,
}

/// The protocol version this in-memory relay speaks.
const MEM_RELAY_VERSION: u16 = 4;
/// Largest mailbox blob taken before authentication (as the relay's
/// `UNAUTH_MAILBOX_BLOB_BYTES_MAX`: a pairing request).
const UNAUTH_MAILBOX_BLOB_BYTES_MAX: usize = kith_relay::server::UNAUTH_MAILBOX_BLOB_BYTES_MAX;
use kith_protocol::membership::OPS_PER_MESSAGE_MAX;

#[derive(Debug)]
pub(crate) struct MemRelay {
    key: SigningKey,
    store: kith_relay::RedbStore,
    conns: Vec<Conn>,
}

impl MemRelay {
    pub(crate) fn new(seed: u8) -> Self {
        #[allow(clippy::expect_used)] // a test fixture: redb's in-memory backend
        let store = kith_relay::RedbStore::in_memory().expect("an in-memory relay store");
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            store,
            conns: Vec::new(),
        }
    }

    pub(crate) fn key(&self) -> RelayKey {
        RelayKey::from(self.key.verifying_key())
    }

    pub(crate) fn connect(&mut self) -> usize {
        let n = self.conns.len() as u8;
        self.conns.push(Conn {
            challenge: [n.wrapping_add(7); 32],
            auth: None,
            subscribed: false,
            inbox: VecDeque::new(),
            open: true,
        });
        self.conns.len() - 1
    }

    pub(crate) fn disconnect(&mut self, c: usize) {
        self.conns[c].open = false;
        self.conns[c].inbox.clear();
    }

    pub(crate) fn recv(&mut self, c: usize) -> Option<ServerMsg> {
        self.conns[c].inbox.pop_front()
    }

    /// Seqs stored for `device` above its pruned floor (for assertions).
    pub(crate) fn log_of(&self, account: &AccountId, device: &DeviceId) -> Vec<u64> {
        let Ok(heads) = self.store.heads(account) else {
            return Vec::new();
        };
        let mut cursors = heads.floors;
        let mut seqs = Vec::new();
        loop {
            let Ok(page) = self.store.pull(account, &cursors, 1024, usize::MAX) else {
                return seqs;
            };
            for e in &page.entries {
                if e.device == *device {
                    seqs.push(e.seq);
                }
                match cursors.iter_mut().find(|c| c.device == e.device) {
                    Some(c) => c.seq = e.seq,
                    None => cursors.push(Cursor {
                        device: e.device,
                        seq: e.seq,
                    }),
                }
            }
            if !page.more || page.entries.is_empty() {
                return seqs;
            }
        }
    }

    pub(crate) fn has_snapshot(&self, account: &AccountId) -> bool {
        matches!(self.store.snapshot(account), Ok(Some(_)))
    }

    /// The pending snapshot's author, if one is pending (for assertions).
    pub(crate) fn pending_snapshot_of(&self, account: &AccountId) -> Option<DeviceId> {
        self.store
            .snapshots(account)
            .ok()
            .and_then(|s| s.pending)
            .map(|p| p.envelope.device)
    }

    /// Applies one op in its own batch (the relay batches many; each op is
    /// validated on its own either way).
    fn write(&self, op: WriteOp) -> Result<WriteOutcome, ErrorCode> {
        match self.store.apply(vec![op]).pop() {
            Some(r) => r.map_err(|e| e.code()),
            None => Err(ErrorCode::Internal),
        }
    }

    fn reply(&mut self, c: usize, id: u32, r: Result<Response, ErrorCode>) {
        let m = match r {
            Ok(body) => ServerMsg::Response { id, body },
            Err(code) => ServerMsg::Error {
                id: Some(id),
                message: code.name().into(),
                code,
            },
        };
        self.conns[c].inbox.push_back(m);
    }

    pub(crate) fn handle(&mut self, c: usize, msg: ClientMsg, now_ms: u64) {
        if !self.conns[c].open {
            return;
        }
        match msg {
            ClientMsg::Hello { versions } => {
                let m = if versions.contains(&MEM_RELAY_VERSION) {
                    ServerMsg::Welcome {
                        version: MEM_RELAY_VERSION,
                        relay: self.key(),
                        challenge: self.conns[c].challenge,
                        frame_bytes_max: kith_protocol::FRAME_BYTES_MAX as u32,
                    }
                } else {
                    ServerMsg::Error {
                        id: None,
                        code: ErrorCode::UnsupportedVersion {
                            supported: vec![MEM_RELAY_VERSION],
                        },
                        message: String::new(),
                    }
                };
                self.conns[c].inbox.push_back(m);
            }
            ClientMsg::Auth {
                account,
                device,
                signature,
                membership,
                token,
            } => {
                let m = match self.authenticate(c, account, device, &signature, membership, token) {
                    Ok(ok) => {
                        self.conns[c].auth = Some((account, device));
                        ok
                    }
                    Err(code) => ServerMsg::Error {
                        id: None,
                        message: code.name().into(),
                        code,
                    },
                };
                self.conns[c].inbox.push_back(m);
            }
            ClientMsg::Request { id, body } => {
                let r = self.request(c, body, now_ms);
                self.reply(c, id, r);
            }
        }
    }

    /// The relay's `authenticate`: the challenge signature, then the
    /// presented membership ops appended (known ones skipped), then the
    /// device must be a current member of the resulting state.
    fn authenticate(
        &mut self,
        c: usize,
        account: AccountId,
        device: DeviceId,
        signature: &kith_protocol::Signature,
        membership: Vec<MembershipOp>,
        token: Option<String>,
    ) -> Result<ServerMsg, ErrorCode> {
        if verify_auth(&device, &self.key(), &self.conns[c].challenge, signature).is_err() {
            return Err(ErrorCode::AuthFailed);
        }
        if membership.len() > OPS_PER_MESSAGE_MAX {
            return Err(ErrorCode::TooLarge {
                limit: OPS_PER_MESSAGE_MAX as u64,
            });
        }
        let mut registered = false;
        let state = if membership.is_empty() {
            self.store.membership(&account).map_err(|e| e.code())?
        } else {
            use sha2::Digest;
            let op = WriteOp::AppendMembership {
                account,
                ops: membership,
                skip_known: true,
                token_hash: token.map(|t| sha2::Sha256::digest(t.trim().as_bytes()).into()),
                open_registration: true,
                now_ms: 0,
                members_max: limits().devices_per_account_max,
            };
            match self.write(op)? {
                WriteOutcome::MembershipAppended {
                    new_account,
                    appended,
                    revoked,
                    state,
                } => {
                    registered = new_account;
                    self.close_devices(&account, &revoked);
                    self.fan_out(c, account, None, Event::Membership { ops: appended });
                    Some(*state)
                }
                _ => return Err(ErrorCode::Internal),
            }
        };
        let state = state.ok_or(ErrorCode::NotAMember)?;
        if state.revoked_at(&device).is_some() {
            return Err(ErrorCode::DeviceRevoked);
        }
        if !state.is_member(&device) {
            return Err(ErrorCode::NotAMember);
        }
        Ok(ServerMsg::AuthOk {
            account,
            device,
            registered,
            membership_len: state.len(),
            epoch: state.epoch(),
        })
    }

    /// Queues `event` to the account's other subscribed connections (not
    /// to the connections of `except_device`, which wrote it).
    fn fan_out(
        &mut self,
        from: usize,
        account: AccountId,
        except_device: Option<DeviceId>,
        event: Event,
    ) {
        if matches!(&event, Event::Membership { ops } if ops.is_empty()) {
            return;
        }
        for (i, other) in self.conns.iter_mut().enumerate() {
            if i != from
                && other.open
                && other.subscribed
                && other
                    .auth
                    .is_some_and(|(a, d)| a == account && Some(d) != except_device)
            {
                other.inbox.push_back(ServerMsg::Event(event.clone()));
            }
        }
    }

    /// A revoked device's connections are closed at once.
    fn close_devices(&mut self, account: &AccountId, devices: &[DeviceId]) {
        for x in &mut self.conns {
            if x.auth
                .is_some_and(|(a, d)| a == *account && devices.contains(&d))
            {
                x.open = false;
                x.inbox.clear();
            }
        }
    }

    fn request(&mut self, c: usize, body: Request, now_ms: u64) -> Result<Response, ErrorCode> {
        if let Request::MailboxTake { slot } = body {
            // As the relay: a read first (an empty slot costs no write),
            // then the take, which leaves a tombstone until expiry.
            if !self
                .store
                .mailbox_live(&slot, now_ms)
                .map_err(|e| e.code())?
            {
                return Err(StoreError::MailboxNotFound.code());
            }
            return match self.write(WriteOp::MailboxTake { slot, now_ms })? {
                WriteOutcome::MailboxTaken(blob) => Ok(Response::MailboxBlob { blob }),
                _ => Err(ErrorCode::Internal),
            };
        }
        let Some((account, device)) = self.conns[c].auth else {
            return match body {
                Request::MailboxPut { slot, blob, ttl_s }
                    if blob.len() <= UNAUTH_MAILBOX_BLOB_BYTES_MAX =>
                {
                    self.mailbox_put(slot, blob, ttl_s, now_ms, None)
                }
                _ => Err(ErrorCode::NotAuthenticated),
            };
        };
        if matches!(
            body,
            Request::Pull { .. }
                | Request::GetSnapshot
                | Request::GetSnapshotRange { .. }
                | Request::Snapshots
                | Request::Heads
                | Request::GetMembership { .. }
                | Request::Subscribe
        ) {
            // Reads re-check membership (a revocation closes the door);
            // writes are checked by the store inside their transaction.
            match self.store.membership(&account).map_err(|e| e.code())? {
                Some(st) if st.is_member(&device) => {}
                Some(st) if st.revoked_at(&device).is_some() => {
                    return Err(ErrorCode::DeviceRevoked);
                }
                _ => return Err(ErrorCode::NotAMember),
            }
        }
        match body {
            Request::Ping => Ok(Response::Pong),
            Request::Push { entries } => {
                for e in &entries {
                    if e.account != account || e.device != device {
                        return Err(ErrorCode::WrongAccount);
                    }
                    if e.verify().is_err() {
                        return Err(ErrorCode::BadSignature);
                    }
                }
                if entries.is_empty() {
                    let heads = self.store.heads(&account).map_err(|e| e.code())?;
                    let seq = heads
                        .heads
                        .iter()
                        .find(|c| c.device == device)
                        .map_or(0, |c| c.seq);
                    return Ok(Response::PushAck { device, seq });
                }
                let op = WriteOp::Push {
                    account,
                    device,
                    entries,
                    quota_bytes: limits().quota_bytes_per_account,
                };
                match self.write(op)? {
                    WriteOutcome::Pushed { head, stored } => {
                        if !stored.is_empty() {
                            let event = Event::Entries { entries: stored };
                            self.fan_out(c, account, Some(device), event);
                        }
                        Ok(Response::PushAck { device, seq: head })
                    }
                    _ => Err(ErrorCode::Internal),
                }
            }
            Request::Pull {
                cursors,
                entries_max,
                bytes_max,
            } => {
                let entries_max = (entries_max as usize).max(1);
                let bytes_max = (bytes_max as usize).max(1);
                let page = self
                    .store
                    .pull(&account, &cursors, entries_max, bytes_max)
                    .map_err(|e| e.code())?;
                Ok(Response::Entries {
                    entries: page.entries,
                    more: page.more,
                })
            }
            Request::Subscribe => {
                self.conns[c].subscribed = true;
                Ok(Response::Subscribed)
            }
            Request::PutSnapshot { snapshot } => {
                if snapshot.account != account || snapshot.device != device {
                    return Err(ErrorCode::WrongAccount);
                }
                if snapshot.verify().is_err() {
                    return Err(ErrorCode::BadSignature);
                }
                let op = WriteOp::PutSnapshot {
                    snapshot,
                    quota_bytes: limits().quota_bytes_per_account,
                    finished_upload: None,
                    now_ms,
                };
                match self.write(op)? {
                    WriteOutcome::SnapshotStored { pruned_entries } => {
                        Ok(Response::SnapshotStored { pruned_entries })
                    }
                    _ => Err(ErrorCode::Internal),
                }
            }
            Request::GetSnapshot => Ok(Response::Snapshot {
                snapshot: self.store.snapshot(&account).map_err(|e| e.code())?,
            }),
            Request::GetSnapshotRange {
                snapshot_id,
                offset,
                bytes_max,
            } => {
                let range = self
                    .store
                    .snapshot_range(&account, snapshot_id, offset, (bytes_max as usize).max(1))
                    .map_err(|e| e.code())?;
                match range {
                    None if snapshot_id.is_some() => Err(ErrorCode::SnapshotChanged),
                    None => Ok(Response::SnapshotRange {
                        snapshot: None,
                        snapshot_id: [0; 32],
                        total_bytes: 0,
                        offset: 0,
                    }),
                    Some(r) if snapshot_id.is_some_and(|id| id != r.snapshot_id) => {
                        Err(ErrorCode::SnapshotChanged)
                    }
                    Some(r) => Ok(Response::SnapshotRange {
                        snapshot: Some(r.snapshot),
                        snapshot_id: r.snapshot_id,
                        total_bytes: r.total_bytes,
                        offset,
                    }),
                }
            }
            Request::Snapshots => {
                let snaps = self.store.snapshots(&account).map_err(|e| e.code())?;
                let info = |s: kith_relay::store::StoredSnapshot| kith_protocol::SnapshotInfo {
                    snapshot_id: s.snapshot_id,
                    device: s.envelope.device,
                    epoch: s.envelope.epoch,
                    covers: s.envelope.covers,
                    total_bytes: s.total_bytes,
                };
                Ok(Response::Snapshots {
                    confirmed: snaps.confirmed.map(info),
                    pending: snaps.pending.map(info),
                })
            }
            Request::SnapshotOpened { snapshot_id } => {
                let op = WriteOp::ConfirmSnapshot {
                    account,
                    device,
                    snapshot_id,
                };
                match self.write(op)? {
                    WriteOutcome::SnapshotConfirmed { pruned_entries } => {
                        Ok(Response::SnapshotConfirmed { pruned_entries })
                    }
                    _ => Err(ErrorCode::Internal),
                }
            }
            Request::Heads => {
                let h = self.store.heads(&account).map_err(|e| e.code())?;
                Ok(Response::Heads {
                    heads: h.heads,
                    floors: h.floors,
                })
            }
            Request::AppendMembership { ops } => {
                if ops.len() > OPS_PER_MESSAGE_MAX {
                    return Err(ErrorCode::TooLarge {
                        limit: OPS_PER_MESSAGE_MAX as u64,
                    });
                }
                if ops.iter().any(|o| o.body.account != account) {
                    return Err(ErrorCode::WrongAccount);
                }
                let op = WriteOp::AppendMembership {
                    account,
                    ops,
                    skip_known: false,
                    token_hash: None,
                    open_registration: false,
                    now_ms,
                    members_max: limits().devices_per_account_max,
                };
                match self.write(op)? {
                    WriteOutcome::MembershipAppended {
                        appended,
                        revoked,
                        state,
                        ..
                    } => {
                        self.close_devices(&account, &revoked);
                        self.fan_out(c, account, None, Event::Membership { ops: appended });
                        Ok(Response::MembershipAppended { len: state.len() })
                    }
                    _ => Err(ErrorCode::Internal),
                }
            }
            Request::GetMembership { after } => {
                let ops = self
                    .store
                    .membership_ops(&account, after, OPS_PER_MESSAGE_MAX + 1)
                    .map_err(|e| e.code())?;
                let more = ops.len() > OPS_PER_MESSAGE_MAX;
                let ops = ops.into_iter().take(OPS_PER_MESSAGE_MAX).collect();
                Ok(Response::Membership { ops, more })
            }
            Request::MailboxPut { slot, blob, ttl_s } => {
                let owner = kith_relay::store::MailboxOwner {
                    account,
                    quota_bytes: limits().quota_bytes_per_account,
                    blobs_max: limits().mailbox_blobs_per_account_max,
                };
                self.mailbox_put(slot, blob, ttl_s, now_ms, Some(owner))
            }
            // Handled before authentication matters, above.
            Request::MailboxTake { .. } => Err(ErrorCode::Internal),
            Request::PutSnapshotPart { .. } | Request::CommitSnapshot { .. } => {
                Err(ErrorCode::UnexpectedMessage)
            }
        }
    }

    fn mailbox_put(
        &mut self,
        slot: MailboxSlot,
        blob: Vec<u8>,
        ttl_s: u32,
        now_ms: u64,
        owner: Option<kith_relay::store::MailboxOwner>,
    ) -> Result<Response, ErrorCode> {
        // An empty blob would read as the tombstone a take leaves.
        if blob.is_empty() {
            return Err(ErrorCode::Malformed);
        }
        // The relay's default cap on a blob's lifetime.
        let ttl_max_s = limits().mailbox_ttl_s_max;
        let ttl_s = if ttl_s == 0 {
            ttl_max_s
        } else {
            ttl_s.min(ttl_max_s)
        };
        let op = WriteOp::MailboxPut {
            slot,
            blob,
            expires_at_ms: now_ms + u64::from(ttl_s) * 1000,
            now_ms,
            owner,
        };
        match self.write(op)? {
            WriteOutcome::MailboxStored => Ok(Response::MailboxStored),
            _ => Err(ErrorCode::Internal),
        }
    }
}

/// The relay's default limits (quotas, caps), which this relay applies too.
fn limits() -> kith_relay::Limits {
    kith_relay::Limits::default()
}
