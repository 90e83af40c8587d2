//! An in-memory model of the relay's protocol-4 request semantics
//! (kith-relay is the real one; the end-to-end tests and kith-net's tests
//! run it on loopback), so the client machines can be driven
//! deterministically without sockets: auth by challenge and membership
//! (the same `Membership::apply` the relay runs), membership append at the
//! head and fetch, pushes and snapshots only from current members under the
//! current epoch, push with exact-next-seq, idempotent re-sends and gap
//! refusal, pull after cursors in bounded batches, subscribe events,
//! snapshots that stay pending until another device reports it opened
//! them (`SnapshotOpened`; only then are covered entries pruned and the
//! previous snapshot dropped; no safety window here), fetched in one range
//! by id or newest, heads and floors, and the mailbox (small blobs may be left before auth, as pairing
//! joiners do).

use std::collections::{BTreeMap, HashMap, VecDeque};

use kith_protocol::envelope::Cursor;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    AccountId, ClientMsg, DeviceId, ErrorCode, Event, Membership, MembershipOp, RelayKey, Request,
    Response, SealedEntry, SealedSnapshot, ServerMsg, SigningKey, verify_auth,
};

#[derive(Debug)]
struct Account {
    logs: BTreeMap<DeviceId, BTreeMap<u64, SealedEntry>>,
    heads: BTreeMap<DeviceId, u64>,
    floors: BTreeMap<DeviceId, u64>,
    /// The snapshot the floors belong to.
    confirmed: Option<SealedSnapshot>,
    /// A newer one nobody but its author opened yet.
    pending: Option<SealedSnapshot>,
    ops: Vec<MembershipOp>,
    state: Membership,
}

impl Account {
    fn new(id: AccountId) -> Self {
        Self {
            logs: BTreeMap::new(),
            heads: BTreeMap::new(),
            floors: BTreeMap::new(),
            confirmed: None,
            pending: None,
            ops: Vec::new(),
            state: Membership::new(id),
        }
    }

    /// Appends `ops`: held ones are skipped if `skip_known` (as `Auth`),
    /// the first new one must be at the head (else `MembershipBehind`).
    fn append(
        &mut self,
        ops: &[MembershipOp],
        skip_known: bool,
    ) -> Result<Vec<MembershipOp>, ErrorCode> {
        let mut state = self.state.clone();
        let mut fresh = Vec::new();
        for op in ops {
            let pos = op.body.position;
            if pos <= state.len() {
                let held = usize::try_from(pos.saturating_sub(1))
                    .ok()
                    .and_then(|i| self.ops.get(i));
                if skip_known && held == Some(op) {
                    continue;
                }
                if skip_known {
                    return Err(ErrorCode::MembershipRefused { position: pos });
                }
                return Err(ErrorCode::MembershipBehind { len: state.len() });
            }
            if pos > state.len() + 1 {
                return Err(ErrorCode::MembershipBehind { len: state.len() });
            }
            state
                .apply(op)
                .map_err(|_| ErrorCode::MembershipRefused { position: pos })?;
            fresh.push(op.clone());
        }
        self.state = state;
        self.ops.extend(fresh.iter().cloned());
        Ok(fresh)
    }

    /// Members only, sealed under the current epoch.
    fn check(
        &self,
        device: &DeviceId,
        epochs: impl IntoIterator<Item = u64>,
    ) -> Result<(), ErrorCode> {
        if self.state.revoked_at(device).is_some() {
            return Err(ErrorCode::DeviceRevoked);
        }
        if !self.state.is_member(device) {
            return Err(ErrorCode::NotAMember);
        }
        for e in epochs {
            if e != self.state.epoch() {
                return Err(ErrorCode::EpochStale {
                    current: self.state.epoch(),
                });
            }
        }
        Ok(())
    }
}

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
/// Largest mailbox blob taken before authentication (a pairing request).
const UNAUTH_MAILBOX_BLOB_BYTES_MAX: usize = 1024;

#[derive(Debug)]
pub(crate) struct MemRelay {
    key: SigningKey,
    accounts: HashMap<AccountId, Account>,
    conns: Vec<Conn>,
    mailbox: HashMap<MailboxSlot, (Vec<u8>, u64)>,
    pub(crate) pushes_seen: usize,
}

impl MemRelay {
    pub(crate) fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            accounts: HashMap::new(),
            conns: Vec::new(),
            mailbox: HashMap::new(),
            pushes_seen: 0,
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

    /// Entries stored for `device` (for assertions).
    pub(crate) fn log_of(&self, account: &AccountId, device: &DeviceId) -> Vec<u64> {
        self.accounts
            .get(account)
            .and_then(|a| a.logs.get(device))
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn has_snapshot(&self, account: &AccountId) -> bool {
        self.accounts
            .get(account)
            .is_some_and(|a| a.pending.is_some() || a.confirmed.is_some())
    }

    /// The pending snapshot's author, if one is pending (for assertions).
    pub(crate) fn pending_snapshot_of(&self, account: &AccountId) -> Option<DeviceId> {
        self.accounts
            .get(account)
            .and_then(|a| a.pending.as_ref())
            .map(|s| s.device)
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
                ..
            } => {
                let relay = self.key();
                let m = if verify_auth(&device, &relay, &self.conns[c].challenge, &signature)
                    .is_err()
                {
                    Err(ErrorCode::AuthFailed)
                } else {
                    let registered = !self.accounts.contains_key(&account);
                    let mut acct = self
                        .accounts
                        .remove(&account)
                        .unwrap_or_else(|| Account::new(account));
                    let r = acct
                        .append(&membership, true)
                        .and_then(|fresh| acct.check(&device, []).map(|()| fresh));
                    let (len, epoch) = (acct.state.len(), acct.state.epoch());
                    if !acct.state.is_empty() {
                        self.accounts.insert(account, acct);
                    }
                    r.map(|fresh| {
                        self.fan_out(c, account, &fresh);
                        ServerMsg::AuthOk {
                            account,
                            device,
                            registered: registered && len > 0,
                            membership_len: len,
                            epoch,
                        }
                    })
                };
                let m = m.unwrap_or_else(|code| ServerMsg::Error {
                    id: None,
                    message: code.name().into(),
                    code,
                });
                if matches!(m, ServerMsg::AuthOk { .. }) {
                    self.conns[c].auth = Some((account, device));
                }
                self.conns[c].inbox.push_back(m);
            }
            ClientMsg::Request { id, body } => self.request(c, id, body, now_ms),
        }
    }

    /// Sends `ops` to the account's other subscribed connections.
    fn fan_out(&mut self, from: usize, account: AccountId, ops: &[MembershipOp]) {
        if ops.is_empty() {
            return;
        }
        for (i, other) in self.conns.iter_mut().enumerate() {
            if i != from
                && other.open
                && other.subscribed
                && other.auth.is_some_and(|(a, _)| a == account)
            {
                other
                    .inbox
                    .push_back(ServerMsg::Event(Event::Membership { ops: ops.to_vec() }));
            }
        }
    }

    fn request(&mut self, c: usize, id: u32, body: Request, now_ms: u64) {
        if let Request::MailboxTake { slot } = body {
            // As the relay: a take leaves the slot used (an empty tombstone) until it expires.
            let r = match self.mailbox.get_mut(&slot) {
                Some((blob, exp)) if *exp > now_ms && !blob.is_empty() => {
                    Ok(Response::MailboxBlob {
                        blob: std::mem::take(blob),
                    })
                }
                _ => Err(ErrorCode::MailboxNotFound),
            };
            return self.reply(c, id, r);
        }
        let Some((account, device)) = self.conns[c].auth else {
            let r = match body {
                Request::MailboxPut { slot, blob, ttl_s }
                    if blob.len() <= UNAUTH_MAILBOX_BLOB_BYTES_MAX =>
                {
                    self.mailbox_put(slot, blob, ttl_s, now_ms)
                }
                _ => Err(ErrorCode::NotAuthenticated),
            };
            return self.reply(c, id, r);
        };
        // Every request re-checks membership (a revocation closes the door).
        let member = self
            .accounts
            .get(&account)
            .map_or(Err(ErrorCode::NotAMember), |a| a.check(&device, []));
        if let Err(code) = member {
            return self.reply(c, id, Err(code));
        }
        let r = match body {
            Request::Push { entries } => {
                self.pushes_seen += 1;
                let mut fresh = Vec::new();
                let r = (|| {
                    let acct = self
                        .accounts
                        .get_mut(&account)
                        .ok_or(ErrorCode::NotAMember)?;
                    acct.check(&device, entries.iter().map(|e| e.epoch))?;
                    let log = acct.logs.entry(device).or_default();
                    let head = acct.heads.entry(device).or_insert(0);
                    for e in &entries {
                        if e.device != device || e.account != account {
                            return Err(ErrorCode::WrongAccount);
                        }
                        if e.verify().is_err() {
                            return Err(ErrorCode::BadSignature);
                        }
                        if e.seq <= *head {
                            let floor = acct.floors.get(&device).copied().unwrap_or(0);
                            if e.seq > floor && log.get(&e.seq) != Some(e) {
                                return Err(ErrorCode::SeqFork { seq: e.seq });
                            }
                            continue;
                        }
                        if e.seq != *head + 1 {
                            return Err(ErrorCode::SeqGap {
                                expected: *head + 1,
                            });
                        }
                        log.insert(e.seq, e.clone());
                        *head = e.seq;
                        fresh.push(e.clone());
                    }
                    Ok(Response::PushAck { device, seq: *head })
                })();
                if !fresh.is_empty() {
                    for (i, other) in self.conns.iter_mut().enumerate() {
                        if i != c
                            && other.open
                            && other.subscribed
                            && other.auth.is_some_and(|(a, d)| a == account && d != device)
                        {
                            other.inbox.push_back(ServerMsg::Event(Event::Entries {
                                entries: fresh.clone(),
                            }));
                        }
                    }
                }
                r
            }
            Request::Pull {
                cursors,
                entries_max,
                bytes_max,
            } => {
                let acct = self
                    .accounts
                    .entry(account)
                    .or_insert_with(|| Account::new(account));
                let mut out = Vec::new();
                let mut bytes = 0usize;
                let mut more = false;
                let mut needed = false;
                'outer: for (d, log) in &acct.logs {
                    let after = cursors.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
                    let floor = acct.floors.get(d).copied().unwrap_or(0);
                    if after < floor {
                        needed = true;
                        break;
                    }
                    for (_, e) in log.range(after + 1..) {
                        if !out.is_empty()
                            && (out.len() as u32 >= entries_max
                                || bytes + e.ciphertext.len() > bytes_max as usize)
                        {
                            more = true;
                            break 'outer;
                        }
                        bytes += e.ciphertext.len();
                        out.push(e.clone());
                    }
                }
                if needed {
                    Err(ErrorCode::SnapshotNeeded)
                } else {
                    Ok(Response::Entries { entries: out, more })
                }
            }
            Request::Subscribe => {
                self.conns[c].subscribed = true;
                Ok(Response::Subscribed)
            }
            Request::PutSnapshot { snapshot } => {
                let acct = self
                    .accounts
                    .entry(account)
                    .or_insert_with(|| Account::new(account));
                if snapshot.verify().is_err() || snapshot.account != account {
                    Err(ErrorCode::BadSignature)
                } else if let Err(code) = acct.check(&device, [snapshot.epoch]) {
                    Err(code)
                } else if snapshot
                    .covers
                    .iter()
                    .any(|c| acct.heads.get(&c.device).copied().unwrap_or(0) < c.seq)
                {
                    Err(ErrorCode::SnapshotInvalid)
                } else if acct
                    .pending
                    .as_ref()
                    .or(acct.confirmed.as_ref())
                    .is_some_and(|old| {
                        old.covers.iter().any(|oc| {
                            snapshot
                                .covers
                                .iter()
                                .find(|c| c.device == oc.device)
                                .map_or(0, |c| c.seq)
                                < oc.seq
                        })
                    })
                {
                    Err(ErrorCode::SnapshotStale)
                } else {
                    // Pending: nothing is pruned until another device opened it.
                    acct.pending = Some(snapshot);
                    Ok(Response::SnapshotStored { pruned_entries: 0 })
                }
            }
            Request::GetSnapshot => Ok(Response::Snapshot {
                snapshot: self
                    .accounts
                    .get(&account)
                    .and_then(|a| a.pending.clone().or_else(|| a.confirmed.clone())),
            }),
            Request::Snapshots => {
                let info = |s: &SealedSnapshot| kith_protocol::SnapshotInfo {
                    snapshot_id: snapshot_id_of(s),
                    device: s.device,
                    epoch: s.epoch,
                    covers: s.covers.clone(),
                    total_bytes: s.ciphertext.len() as u64,
                };
                let acct = self.accounts.get(&account);
                Ok(Response::Snapshots {
                    confirmed: acct.and_then(|a| a.confirmed.as_ref()).map(info),
                    pending: acct.and_then(|a| a.pending.as_ref()).map(info),
                })
            }
            Request::SnapshotOpened { snapshot_id } => {
                let acct = self
                    .accounts
                    .entry(account)
                    .or_insert_with(|| Account::new(account));
                match acct.pending.clone() {
                    Some(p) if snapshot_id_of(&p) == snapshot_id => {
                        if p.device == device {
                            Err(ErrorCode::SnapshotOwn)
                        } else {
                            let mut pruned = 0u64;
                            for cur in &p.covers {
                                if let Some(log) = acct.logs.get_mut(&cur.device) {
                                    let before = log.len();
                                    log.retain(|s, _| *s > cur.seq);
                                    pruned += (before - log.len()) as u64;
                                }
                                let f = acct.floors.entry(cur.device).or_insert(0);
                                *f = (*f).max(cur.seq);
                            }
                            acct.confirmed = acct.pending.take();
                            Ok(Response::SnapshotConfirmed {
                                pruned_entries: pruned,
                            })
                        }
                    }
                    _ if acct
                        .confirmed
                        .as_ref()
                        .is_some_and(|c| snapshot_id_of(c) == snapshot_id) =>
                    {
                        Ok(Response::SnapshotConfirmed { pruned_entries: 0 })
                    }
                    _ => Err(ErrorCode::SnapshotChanged),
                }
            }
            Request::Heads => {
                let acct = self
                    .accounts
                    .entry(account)
                    .or_insert_with(|| Account::new(account));
                Ok(Response::Heads {
                    heads: acct
                        .heads
                        .iter()
                        .map(|(d, s)| Cursor {
                            device: *d,
                            seq: *s,
                        })
                        .collect(),
                    floors: acct
                        .floors
                        .iter()
                        .map(|(d, s)| Cursor {
                            device: *d,
                            seq: *s,
                        })
                        .collect(),
                })
            }
            Request::AppendMembership { ops } => {
                let acct = self
                    .accounts
                    .entry(account)
                    .or_insert_with(|| Account::new(account));
                match acct.append(&ops, false) {
                    Ok(fresh) => {
                        let len = acct.state.len();
                        let gone: Vec<DeviceId> = self
                            .conns
                            .iter()
                            .filter_map(|x| x.auth)
                            .filter(|(a, d)| *a == account && !acct.state.is_member(d))
                            .map(|(_, d)| d)
                            .collect();
                        self.fan_out(c, account, &fresh);
                        // A revoked device's connections are closed at once.
                        for x in &mut self.conns {
                            if x.auth
                                .is_some_and(|(a, d)| a == account && gone.contains(&d))
                            {
                                x.open = false;
                                x.inbox.clear();
                            }
                        }
                        Ok(Response::MembershipAppended { len })
                    }
                    Err(code) => Err(code),
                }
            }
            Request::GetMembership { after } => {
                let ops = self.accounts.get(&account).map_or_else(Vec::new, |a| {
                    a.ops
                        .iter()
                        .filter(|o| o.body.position > after)
                        .cloned()
                        .collect()
                });
                Ok(Response::Membership { ops, more: false })
            }
            Request::MailboxPut { slot, blob, ttl_s } => {
                self.mailbox_put(slot, blob, ttl_s, now_ms)
            }
            Request::MailboxTake { .. } => Err(ErrorCode::Internal),
            Request::Ping => Ok(Response::Pong),
            Request::GetSnapshotRange {
                snapshot_id,
                offset,
                bytes_max,
            } => {
                let snap = self.accounts.get(&account).and_then(|a| match snapshot_id {
                    None => a.pending.clone().or_else(|| a.confirmed.clone()),
                    Some(id) => [a.pending.clone(), a.confirmed.clone()]
                        .into_iter()
                        .flatten()
                        .find(|s| snapshot_id_of(s) == id),
                });
                match snap {
                    None if snapshot_id.is_some() => Err(ErrorCode::SnapshotChanged),
                    None => Ok(Response::SnapshotRange {
                        snapshot: None,
                        snapshot_id: [0; 32],
                        total_bytes: 0,
                        offset: 0,
                    }),
                    Some(mut s) => {
                        let sid = snapshot_id_of(&s);
                        if snapshot_id.is_some_and(|x| x != sid) {
                            Err(ErrorCode::SnapshotChanged)
                        } else {
                            let total = s.ciphertext.len() as u64;
                            let from = usize::try_from(offset.min(total)).unwrap_or(usize::MAX);
                            let to = from
                                .saturating_add(bytes_max as usize)
                                .min(s.ciphertext.len());
                            s.ciphertext = s.ciphertext[from..to].to_vec();
                            Ok(Response::SnapshotRange {
                                snapshot: Some(s),
                                snapshot_id: sid,
                                total_bytes: total,
                                offset,
                            })
                        }
                    }
                }
            }
            Request::PutSnapshotPart { .. } | Request::CommitSnapshot { .. } => {
                Err(ErrorCode::UnexpectedMessage)
            }
        };
        self.reply(c, id, r);
    }

    fn mailbox_put(
        &mut self,
        slot: MailboxSlot,
        blob: Vec<u8>,
        ttl_s: u32,
        now_ms: u64,
    ) -> Result<Response, ErrorCode> {
        if let Some((_, exp)) = self.mailbox.get(&slot)
            && *exp > now_ms
        {
            return Err(ErrorCode::MailboxTaken);
        }
        self.mailbox
            .insert(slot, (blob, now_ms + u64::from(ttl_s) * 1000));
        Ok(Response::MailboxStored)
    }
}

/// A stable id of a stored snapshot (its signature bytes suffice here).
fn snapshot_id_of(s: &SealedSnapshot) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(&s.signature.to_bytes()[..32]);
    id
}
