//! An in-memory model of the relay's request semantics (kith-relay is the
//! real one), so the client machines can be driven deterministically without
//! sockets: auth by challenge, push with exact-next-seq, idempotent re-sends
//! and gap refusal, pull after cursors in bounded batches, subscribe events,
//! snapshots that prune covered entries, heads/floors, and the mailbox.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kith_protocol::envelope::Cursor;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    AccountId, ClientMsg, DeviceId, ErrorCode, Event, RelayKey, Request, Response, SealedEntry,
    SealedSnapshot, ServerMsg, SigningKey, verify_auth,
};

#[derive(Debug, Default)]
struct Account {
    logs: BTreeMap<DeviceId, BTreeMap<u64, SealedEntry>>,
    heads: BTreeMap<DeviceId, u64>,
    floors: BTreeMap<DeviceId, u64>,
    snapshot: Option<SealedSnapshot>,
    revoked: Vec<DeviceId>,
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
const MEM_RELAY_VERSION: u16 = 1;

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
            .is_some_and(|a| a.snapshot.is_some())
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
                // This relay models protocol 1 (no fragmented snapshots), so
                // core tests also cover the client's fallback to it.
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
                cert, signature, ..
            } => {
                let relay = self.key();
                let revoked = self
                    .accounts
                    .get(&cert.account)
                    .is_some_and(|a| a.revoked.contains(&cert.device));
                let m = if revoked {
                    ServerMsg::Error {
                        id: None,
                        code: ErrorCode::DeviceRevoked,
                        message: String::new(),
                    }
                } else if verify_auth(&cert, &relay, &self.conns[c].challenge, &signature).is_ok() {
                    self.conns[c].auth = Some((cert.account, cert.device));
                    let registered = !self.accounts.contains_key(&cert.account);
                    self.accounts.entry(cert.account).or_default();
                    ServerMsg::AuthOk {
                        account: cert.account,
                        device: cert.device,
                        registered,
                    }
                } else {
                    ServerMsg::Error {
                        id: None,
                        code: ErrorCode::AuthFailed,
                        message: String::new(),
                    }
                };
                self.conns[c].inbox.push_back(m);
            }
            ClientMsg::Request { id, body } => self.request(c, id, body, now_ms),
        }
    }

    fn request(&mut self, c: usize, id: u32, body: Request, now_ms: u64) {
        if let Request::MailboxTake { slot } = body {
            let r = match self.mailbox.remove(&slot) {
                Some((blob, exp)) if exp > now_ms => Ok(Response::MailboxBlob { blob }),
                _ => Err(ErrorCode::MailboxNotFound),
            };
            return self.reply(c, id, r);
        }
        let Some((account, device)) = self.conns[c].auth else {
            return self.reply(c, id, Err(ErrorCode::NotAuthenticated));
        };
        let r = match body {
            Request::Push { entries } => {
                self.pushes_seen += 1;
                let mut fresh = Vec::new();
                let r = (|| {
                    let acct = self.accounts.entry(account).or_default();
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
                let acct = self.accounts.entry(account).or_default();
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
                let acct = self.accounts.entry(account).or_default();
                if snapshot.verify().is_err() || snapshot.account != account {
                    Err(ErrorCode::BadSignature)
                } else if snapshot
                    .covers
                    .iter()
                    .any(|c| acct.heads.get(&c.device).copied().unwrap_or(0) < c.seq)
                {
                    Err(ErrorCode::SnapshotInvalid)
                } else {
                    let mut pruned = 0u64;
                    for cur in &snapshot.covers {
                        if let Some(log) = acct.logs.get_mut(&cur.device) {
                            let before = log.len();
                            log.retain(|s, _| *s > cur.seq);
                            pruned += (before - log.len()) as u64;
                        }
                        let f = acct.floors.entry(cur.device).or_insert(0);
                        *f = (*f).max(cur.seq);
                    }
                    acct.snapshot = Some(snapshot);
                    Ok(Response::SnapshotStored {
                        pruned_entries: pruned,
                    })
                }
            }
            Request::GetSnapshot => Ok(Response::Snapshot {
                snapshot: self.accounts.get(&account).and_then(|a| a.snapshot.clone()),
            }),
            Request::Heads => {
                let acct = self.accounts.entry(account).or_default();
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
            Request::Revoke { revocation } => {
                if revocation.verify().is_err() || revocation.account != account {
                    Err(ErrorCode::BadSignature)
                } else {
                    self.accounts
                        .entry(account)
                        .or_default()
                        .revoked
                        .push(revocation.device);
                    Ok(Response::Revoked)
                }
            }
            Request::MailboxPut { slot, blob, ttl_s } => match self.mailbox.entry(slot) {
                std::collections::hash_map::Entry::Occupied(_) => Err(ErrorCode::MailboxTaken),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((blob, now_ms + u64::from(ttl_s) * 1000));
                    Ok(Response::MailboxStored)
                }
            },
            Request::MailboxTake { .. } => Err(ErrorCode::Internal),
            Request::Ping => Ok(Response::Pong),
            Request::PutSnapshotPart { .. }
            | Request::CommitSnapshot { .. }
            | Request::GetSnapshotRange { .. } => Err(ErrorCode::UnexpectedMessage),
        };
        self.reply(c, id, r);
    }
}
