//! Direct device-to-device sync, sans-IO.
//!
//! Both sides are devices of the same account. The transport (QUIC in
//! kith-net) gives a 32-byte channel binding (a TLS keying-material export,
//! unique per connection); each side proves its device key by signing
//! `"kith-peer-auth-v1" || role || binding` and shows its card (account,
//! device, name) and its membership log (at most
//! `kith_protocol::membership::OPS_PER_MESSAGE_MAX` ops). Each side absorbs
//! the other's log (verified: signatures, authority, order; a fork is
//! refused), so revocations travel peer to peer, then refuses a peer that is
//! not a member of the merged log: a device of another account, a revoked
//! device, or a relayed handshake gets nothing.
//!
//! Conversation (client = the side that connected):
//! 1. client -> `Hello` (card, membership log, signature, per-document heads);
//! 2. server checks it, answers `Hello` with its own heads, then for every
//!    document whose client heads it knows, `Changes` with exactly what the
//!    client lacks, then `EndDirect`;
//! 3. client applies them; for every document whose server heads it knows, it
//!    sends `Changes` the server lacks. Documents where neither side knew the
//!    other's heads (both edited) run Automerge's sync protocol
//!    (`automerge::sync`), client-driven, one `Sync` request/answer at a
//!    time, with the `sync::State` persisted per (peer, document);
//! 4. client -> `Done`, server -> `DoneAck`: everything before was applied.
//!
//! So a reconnect after one new interaction costs one round trip plus the
//! close handshake, and a few hundred bytes. Every merge goes through the
//! store (index + chunk + persisted state in one transaction).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::ChangeHash;
use automerge::sync::{Message as SyncMessage, State as SyncState, SyncDoc};
use ed25519_dalek::Verifier;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{AccountId, DeviceId, MembershipOp, Signature};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use ed25519_dalek::Signer;

use super::device_identity::DeviceIdentity;
use super::pairing::PairingHost;
use super::relay::{apply_with_pending, compress};
use super::tables;
use crate::doc::DocId;
use crate::error::StoreError;
use crate::store::Store;

/// ALPN of the peer protocol.
pub const PEER_ALPN: &[u8] = b"kith-peer/1";
/// Version of the peer protocol.
pub const PEER_VERSION: u16 = 1;
const AUTH_CONTEXT: &[u8] = b"kith-peer-auth-v1";
/// Most Automerge sync exchanges per document in one session.
pub const SYNC_ROUNDS_MAX: u32 = 64;
/// Most documents a Hello may list.
pub const HELLO_DOCS_MAX: usize = 4096;

/// A document id and its heads (32-byte change hashes).
pub type DocHeads = (String, Vec<[u8; 32]>);

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// The side that connected; it drives the exchange.
    Client,
    /// The side that accepted the connection.
    Server,
}

impl PeerRole {
    fn byte(self) -> u8 {
        match self {
            PeerRole::Client => b'c',
            PeerRole::Server => b's',
        }
    }
    fn other(self) -> PeerRole {
        match self {
            PeerRole::Client => PeerRole::Server,
            PeerRole::Server => PeerRole::Client,
        }
    }
}

/// Messages of the peer protocol (postcard, framed like the relay protocol).
/// Variant order is part of the wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// `docs` lists every document (when `base` is all zero), or, when the
    /// sender believes it talks to device `hint` again, only the documents
    /// whose heads moved since the last completed session with it; `base` is
    /// then the digest of that session's record (per document, the heads
    /// both sides had), which the receiver checks against its own record.
    Hello {
        /// The sender's peer protocol version ([`PEER_VERSION`]).
        version: u16,
        /// Who the sender is.
        card: Box<PeerCard>,
        /// The sender's membership log (at most `OPS_PER_MESSAGE_MAX` ops).
        membership: Vec<MembershipOp>,
        /// The sender's device signature over role and channel binding.
        signature: Signature,
        /// The device the sender believes it talks to again, if any.
        hint: Option<DeviceId>,
        /// Digest of the last session's record with `hint`; all zero for a full Hello.
        base: [u8; 8],
        /// Documents and their heads (every one, or those moved since `base`).
        docs: Vec<DocHeads>,
    },
    /// Exactly the changes of `doc` the receiver lacks.
    Changes {
        /// The document id in its string form.
        doc: String,
        /// Automerge changes, in an order they apply.
        changes: Vec<Vec<u8>>,
    },
    /// Server: the direct `Changes` are all sent.
    EndDirect,
    /// One Automerge sync-protocol message for a document both sides edited.
    Sync {
        /// The document id in its string form.
        doc: String,
        /// The encoded sync message; `None` when that side has nothing more to say.
        message: Option<Vec<u8>>,
    },
    /// Client: everything was applied; the server records the session.
    Done,
    /// Server: session recorded; the client records it too.
    DoneAck,
    /// The session is refused; the connection closes.
    Refused {
        /// Why, for the user on the other side.
        reason: String,
    },
    /// A joining device asks for the invitation at `slot` (no Hello needed).
    PairRequest {
        /// The slot derived from the pairing token.
        slot: MailboxSlot,
    },
    /// The sealed invitation at the slot asked for, sent once.
    PairBlob {
        /// The sealed invitation.
        blob: Vec<u8>,
    },
    /// The receiver's record of the last session differs: send a full Hello.
    Resend,
    /// Client, after a completed exchange: keep this connection open and
    /// tell me when you have new changes (live mode). Refused before the
    /// client authenticated on this connection.
    Watch,
    /// Server, to a watching client: I have changes you may lack; run an
    /// exchange. Sent at any time; the client runs one after the current one.
    Changed,
    /// A joining device leaves a sealed pairing blob at `slot` (no Hello
    /// needed; only slots of the host's live invitations are taken).
    PairPut {
        /// The slot derived from the pairing token.
        slot: MailboxSlot,
        /// The sealed join request.
        blob: Vec<u8>,
    },
    /// The blob of a `PairPut` was stored.
    PairStored,
}

/// Who a peer says it is (checked against the membership log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCard {
    /// The account it acts for.
    pub account: AccountId,
    /// Its device id.
    pub device: DeviceId,
    /// Its name.
    pub name: String,
}

/// Why a peer session failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The local store failed; nothing of the failing merge was kept.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer is not a member of this account's membership log.
    #[error("the peer is not a device of this account: {0}")]
    NotMember(String),
    /// The peer's membership log does not fit ours (a fork, or ops that do
    /// not verify): nothing is synced; the user must decide.
    #[error("the peer's membership log does not fit this device's: {0}")]
    Membership(#[from] super::membership::MembershipSyncError),
    /// The peer's handshake signature does not verify: a relayed handshake
    /// or a forged key.
    #[error("the peer's handshake signature does not verify")]
    BadSignature,
    /// The peer speaks another protocol version (the one given); update the older side.
    #[error("the peer speaks peer protocol version {0}, this Kith speaks {PEER_VERSION}")]
    Version(u16),
    /// The peer refused the session; its reason is kept.
    #[error("the peer refused the session: {0}")]
    Refused(String),
    /// The peer was revoked from the account; it is refused for good.
    #[error("the peer {0} was revoked from this account")]
    Revoked(DeviceId),
    /// The peer sent a message out of turn, too many, or malformed.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// Automerge's sync protocol failed on a document.
    #[error("document '{doc}': automerge sync failed: {detail}")]
    Sync {
        /// The document id.
        doc: String,
        /// Automerge's message.
        detail: String,
    },
}

/// Counters of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Automerge changes sent.
    pub changes_sent: usize,
    /// Automerge changes received and applied.
    pub changes_received: usize,
    /// Documents that needed Automerge's sync protocol (both sides edited).
    pub docs_diverged: usize,
    /// Times the client waited for the server (excluding the close handshake).
    pub round_trips: u32,
    /// Contacts changed by merging what was received.
    pub contacts_changed: usize,
    /// Interactions changed by merging what was received.
    pub interactions_changed: usize,
}

tables::redb_errors_into!(PeerError);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitEndDirect,
    Syncing,
    AwaitDoneAck,
    Serving,
    Finished,
}

/// One peer session. Feed it [`PeerMsg`]s, send what [`PeerSync::poll_transmit`] returns.
#[derive(Debug)]
pub struct PeerSync {
    id: DeviceIdentity,
    role: PeerRole,
    binding: [u8; 32],
    phase: Phase,
    peer: Option<PeerCard>,
    their_heads: BTreeMap<String, Vec<ChangeHash>>,
    diverged: BTreeSet<String>,
    rounds: BTreeMap<String, u32>,
    /// Client: the device this address served last time (from the store).
    hint: Option<DeviceId>,
    /// In-session sync states; only their durable part (`encode`) is persisted.
    states: BTreeMap<String, SyncState>,
    out: VecDeque<PeerMsg>,
    stats: PeerStats,
    now_ms: u64,
}

fn sign_bytes(role: PeerRole, binding: &[u8; 32]) -> Vec<u8> {
    let mut v = AUTH_CONTEXT.to_vec();
    v.push(role.byte());
    v.extend_from_slice(binding);
    v
}

fn hashes(v: &[[u8; 32]]) -> Vec<ChangeHash> {
    v.iter().map(|h| ChangeHash(*h)).collect()
}

/// The store's documents and their heads, read from metadata (no loading,
/// except partitions with fresh writes, which fold first so that their
/// heads include them: docs/STORE.md, "Fresh writes").
fn my_docs(store: &mut Store) -> Result<Vec<DocHeads>, StoreError> {
    store.fold_pending()?;
    let mut out = Vec::new();
    for d in store.doc_ids()? {
        if let Some(m) = store.doc_meta(d)? {
            out.push((d.to_string(), m.heads));
        }
    }
    Ok(out)
}

fn parse_doc(name: &str) -> Result<DocId, PeerError> {
    name.parse()
        .map_err(|_| PeerError::Protocol(format!("invalid document id '{name}'")))
}

/// True if every hash is a change the store's copy of `doc` holds.
fn knows_all(store: &mut Store, doc: DocId, heads: &[ChangeHash]) -> Result<bool, StoreError> {
    if heads.is_empty() {
        return Ok(true);
    }
    store.ensure_loaded(doc)?;
    let Some(l) = store.docs.get_mut(&doc) else {
        return Ok(false);
    };
    Ok(heads.iter().all(|h| l.doc.get_change_by_hash(h).is_some()))
}

impl PeerSync {
    /// A session over a connection whose channel binding is `binding`.
    pub fn new(id: DeviceIdentity, role: PeerRole, binding: [u8; 32]) -> Self {
        Self {
            id,
            role,
            binding,
            phase: Phase::AwaitHello,
            peer: None,
            their_heads: BTreeMap::new(),
            diverged: BTreeSet::new(),
            rounds: BTreeMap::new(),
            states: BTreeMap::new(),
            hint: None,
            out: VecDeque::new(),
            stats: PeerStats::default(),
            now_ms: 0,
        }
    }

    /// Client: the device expected at the other end (see [`peer_hint`]);
    /// lets the Hello carry only what changed since the last session.
    pub fn with_hint(mut self, hint: Option<DeviceId>) -> Self {
        self.hint = hint;
        self
    }

    /// Client: queue the Hello.
    pub fn start(&mut self, store: &mut Store, now_ms: u64) -> Result<(), PeerError> {
        self.now_ms = now_ms;
        let hello = self.hello(store, self.hint)?;
        self.out.push_back(hello);
        Ok(())
    }

    /// A Hello relative to the last session with `peer` (if there is a record).
    fn hello(&self, store: &mut Store, peer: Option<DeviceId>) -> Result<PeerMsg, PeerError> {
        let mine = my_docs(store)?;
        let record = match peer {
            Some(p) => load_record(store, &p)?,
            None => BTreeMap::new(),
        };
        let (base, docs) = if record.is_empty() {
            ([0u8; 8], mine)
        } else {
            let changed = mine
                .into_iter()
                .filter(|(d, h)| record.get(d) != Some(h))
                .collect();
            (record_digest(&record), changed)
        };
        Ok(PeerMsg::Hello {
            version: PEER_VERSION,
            card: Box::new(PeerCard {
                account: self.id.account_id(),
                device: self.id.device_id(),
                name: self.id.device_name().to_owned(),
            }),
            membership: {
                let mut ops = super::membership::ops(store)?;
                ops.truncate(kith_protocol::membership::OPS_PER_MESSAGE_MAX);
                ops
            },
            signature: self
                .id
                .device_signing_key()
                .sign(&sign_bytes(self.role, &self.binding)),
            hint: if record.is_empty() { None } else { peer },
            base,
            docs,
        })
    }

    /// The sender's full heads from a Hello: the listed documents over our
    /// record of the last session, if the Hello is relative and the records
    /// agree. `None` when they disagree.
    fn their_full_heads(
        &self,
        store: &mut Store,
        sender: &DeviceId,
        hint: Option<DeviceId>,
        base: [u8; 8],
        docs: Vec<DocHeads>,
    ) -> Result<Option<BTreeMap<String, Vec<ChangeHash>>>, PeerError> {
        let mut full: BTreeMap<String, Vec<[u8; 32]>> = BTreeMap::new();
        if base != [0u8; 8] {
            let record = load_record(store, sender)?;
            if hint != Some(self.id.device_id())
                || record.is_empty()
                || record_digest(&record) != base
            {
                return Ok(None);
            }
            full = record;
        }
        for (d, h) in docs {
            full.insert(d, h);
        }
        Ok(Some(
            full.into_iter().map(|(d, h)| (d, hashes(&h))).collect(),
        ))
    }

    /// The next message to send, if any; the transport sends them in order.
    pub fn poll_transmit(&mut self) -> Option<PeerMsg> {
        self.out.pop_front()
    }

    /// The authenticated peer, once its Hello verified.
    pub fn peer(&self) -> Option<&PeerCard> {
        self.peer.as_ref()
    }

    /// What the session did so far.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// The session completed (client: DoneAck received; server: DoneAck sent).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// No message of this exchange was handled yet (server: waiting for a
    /// Hello). A live connection runs one `PeerSync` per exchange.
    pub fn is_fresh(&self) -> bool {
        self.phase == Phase::AwaitHello && self.peer.is_none() && self.out.is_empty()
    }

    fn check_hello(
        &mut self,
        store: &mut Store,
        version: u16,
        card: &PeerCard,
        membership: &[MembershipOp],
        signature: &Signature,
    ) -> Result<(), PeerError> {
        if version != PEER_VERSION {
            return Err(PeerError::Version(version));
        }
        if card.account != self.id.account_id() {
            return Err(PeerError::NotMember(format!(
                "device {} belongs to account {}, not {}",
                card.device,
                card.account,
                self.id.account_id()
            )));
        }
        let key = card
            .device
            .verifying_key()
            .map_err(|_| PeerError::BadSignature)?;
        key.verify(&sign_bytes(self.role.other(), &self.binding), signature)
            .map_err(|_| PeerError::BadSignature)?;
        if membership.len() > kith_protocol::membership::OPS_PER_MESSAGE_MAX {
            return Err(PeerError::Protocol("too many membership ops".into()));
        }
        // Revocations travel: take what the peer knows (verified), then
        // judge the peer by the merged log.
        let (state, _) = super::membership::absorb(store, &self.id, membership)?;
        if !state.is_member(&self.id.device_id()) {
            return Err(PeerError::Refused(
                "this device was revoked from the account".into(),
            ));
        }
        if state.revoked_at(&card.device).is_some() {
            return Err(PeerError::Revoked(card.device));
        }
        if !state.is_member(&card.device) {
            return Err(PeerError::NotMember(format!(
                "device {} is not in this account's membership log",
                card.device
            )));
        }
        // Name and last-seen time: bookkeeping, so not fsynced here (the
        // exchange's next durable commit, or closing, persists it).
        store.write_tables_lazily(|txn| {
            tables::touch_device(txn, &card.device, Some(&card.name), self.now_ms)
        })?;
        self.peer = Some(card.clone());
        Ok(())
    }

    /// Handles one message. On `Err`, send [`PeerMsg::Refused`] (see
    /// [`PeerSync::refusal`]) and close.
    pub fn handle(
        &mut self,
        store: &mut Store,
        msg: PeerMsg,
        now_ms: u64,
    ) -> Result<(), PeerError> {
        self.now_ms = now_ms;
        match (self.role, self.phase, msg) {
            (_, _, PeerMsg::Refused { reason }) => return Err(PeerError::Refused(reason)),
            (
                PeerRole::Server,
                Phase::AwaitHello,
                PeerMsg::Hello {
                    version,
                    card,
                    membership,
                    signature,
                    hint,
                    base,
                    docs,
                },
            ) => {
                if docs.len() > HELLO_DOCS_MAX {
                    return Err(PeerError::Protocol("too many documents".into()));
                }
                self.check_hello(store, version, &card, &membership, &signature)?;
                let Some(theirs) = self.their_full_heads(store, &card.device, hint, base, docs)?
                else {
                    self.out.push_back(PeerMsg::Resend);
                    return Ok(());
                };
                let relative = base != [0u8; 8];
                let hello = self.hello(store, relative.then_some(card.device))?;
                self.out.push_back(hello);
                for (name, mine) in my_docs(store)? {
                    let their = theirs.get(&name).cloned().unwrap_or_default();
                    self.send_direct(store, &name, &hashes(&mine), &their)?;
                }
                self.out.push_back(PeerMsg::EndDirect);
                self.phase = Phase::Serving;
            }
            (
                PeerRole::Client,
                Phase::AwaitHello,
                PeerMsg::Hello {
                    version,
                    card,
                    membership,
                    signature,
                    hint,
                    base,
                    docs,
                },
            ) => {
                if docs.len() > HELLO_DOCS_MAX {
                    return Err(PeerError::Protocol("too many documents".into()));
                }
                self.check_hello(store, version, &card, &membership, &signature)?;
                self.stats.round_trips += 1;
                self.their_heads = self
                    .their_full_heads(store, &card.device, hint, base, docs)?
                    .ok_or_else(|| {
                        PeerError::Protocol(
                            "the server's record of the last session differs".into(),
                        )
                    })?;
                self.phase = Phase::AwaitEndDirect;
            }
            (PeerRole::Client, Phase::AwaitHello, PeerMsg::Resend) => {
                // Our records of the last session disagree: start over in full.
                self.stats.round_trips += 1;
                self.hint = None;
                let hello = self.hello(store, None)?;
                self.out.push_back(hello);
            }
            (
                _,
                Phase::AwaitEndDirect | Phase::Serving | Phase::Syncing,
                PeerMsg::Changes { doc, changes },
            ) => {
                if self.peer.is_none() {
                    return Err(PeerError::Protocol("changes before hello".into()));
                }
                let d = parse_doc(&doc)?;
                self.stats.changes_received += changes.len();
                let peer = self.peer_device()?;
                let now = self.now_ms;
                let m = apply_with_pending(store, d, changes, |txn| touch_peer(txn, &peer, now))?;
                self.stats.contacts_changed += m.applied.contacts.len();
                self.stats.interactions_changed += m.applied.interactions.len();
            }
            (PeerRole::Client, Phase::AwaitEndDirect, PeerMsg::EndDirect) => {
                let theirs = std::mem::take(&mut self.their_heads);
                let mut names: BTreeSet<String> = theirs.keys().cloned().collect();
                for (n, _) in my_docs(store)? {
                    names.insert(n);
                }
                for name in names {
                    let d = parse_doc(&name)?;
                    let their = theirs.get(&name).cloned().unwrap_or_default();
                    let mine = store
                        .doc_meta(d)?
                        .map(|m| hashes(&m.heads))
                        .unwrap_or_default();
                    if mine == their {
                        continue;
                    }
                    if knows_all(store, d, &their)? {
                        self.send_direct(store, &name, &mine, &their)?;
                    } else {
                        self.diverged.insert(name);
                    }
                }
                self.stats.docs_diverged = self.diverged.len();
                self.phase = Phase::Syncing;
                self.next_sync(store)?;
            }
            (PeerRole::Server, Phase::Serving, PeerMsg::Sync { doc, message }) => {
                let d = parse_doc(&doc)?;
                let peer = self.peer_device()?;
                let mut state = self.take_state(store, &peer, &doc)?;
                if let Some(m) = message {
                    self.receive_sync(store, d, &mut state, &m)?;
                }
                let reply = generate(store, d, &mut state)?;
                save_state(store, &peer, &doc, &state)?;
                self.states.insert(doc.clone(), state);
                self.out.push_back(PeerMsg::Sync {
                    doc,
                    message: reply,
                });
            }
            (PeerRole::Client, Phase::Syncing, PeerMsg::Sync { doc, message }) => {
                self.stats.round_trips += 1;
                let d = parse_doc(&doc)?;
                let peer = self.peer_device()?;
                let mut state = self.take_state(store, &peer, &doc)?;
                let got = message.is_some();
                if let Some(m) = message {
                    self.receive_sync(store, d, &mut state, &m)?;
                }
                let next = generate(store, d, &mut state)?;
                save_state(store, &peer, &doc, &state)?;
                self.states.insert(doc.clone(), state);
                let rounds = self.rounds.entry(doc.clone()).or_insert(0);
                *rounds += 1;
                if *rounds > SYNC_ROUNDS_MAX {
                    return Err(PeerError::Sync {
                        doc,
                        detail: format!("no convergence after {SYNC_ROUNDS_MAX} exchanges"),
                    });
                }
                if next.is_none() && !got {
                    self.diverged.remove(&doc);
                    self.next_sync(store)?;
                } else {
                    self.out.push_back(PeerMsg::Sync { doc, message: next });
                }
            }
            (PeerRole::Server, Phase::Serving, PeerMsg::Done) => {
                let peer = self.peer_device()?;
                save_record(store, &peer)?;
                self.out.push_back(PeerMsg::DoneAck);
                self.phase = Phase::Finished;
            }
            (PeerRole::Client, Phase::AwaitDoneAck, PeerMsg::DoneAck) => {
                let peer = self.peer_device()?;
                save_record(store, &peer)?;
                self.phase = Phase::Finished;
            }
            (_, phase, other) => {
                return Err(PeerError::Protocol(format!(
                    "unexpected {} in phase {phase:?}",
                    msg_name(&other)
                )));
            }
        }
        Ok(())
    }

    /// The message to send before closing after `err`.
    pub fn refusal(err: &PeerError) -> PeerMsg {
        PeerMsg::Refused {
            reason: err.to_string(),
        }
    }

    fn take_state(
        &mut self,
        store: &mut Store,
        peer: &DeviceId,
        doc: &str,
    ) -> Result<SyncState, StoreError> {
        match self.states.remove(doc) {
            Some(s) => Ok(s),
            None => load_state(store, peer, doc),
        }
    }

    fn peer_device(&self) -> Result<DeviceId, PeerError> {
        self.peer
            .as_ref()
            .map(|c| c.device)
            .ok_or_else(|| PeerError::Protocol("message before hello".into()))
    }

    fn send_direct(
        &mut self,
        store: &mut Store,
        name: &str,
        mine: &[ChangeHash],
        their: &[ChangeHash],
    ) -> Result<(), PeerError> {
        let d = parse_doc(name)?;
        if mine == their || !knows_all(store, d, their)? {
            return Ok(());
        }
        let changes = store.changes_since(d, their)?;
        if changes.is_empty() {
            return Ok(());
        }
        self.stats.changes_sent += changes.len();
        self.out.push_back(PeerMsg::Changes {
            doc: name.to_owned(),
            changes: compress(changes),
        });
        Ok(())
    }

    /// Client: start the Automerge sync of the next diverged document, or finish.
    fn next_sync(&mut self, store: &mut Store) -> Result<(), PeerError> {
        if let Some(doc) = self.diverged.first().cloned() {
            let d = parse_doc(&doc)?;
            let peer = self.peer_device()?;
            let mut state = self.take_state(store, &peer, &doc)?;
            let msg = generate(store, d, &mut state)?;
            save_state(store, &peer, &doc, &state)?;
            self.states.insert(doc.clone(), state);
            self.out.push_back(PeerMsg::Sync { doc, message: msg });
            return Ok(());
        }
        self.out.push_back(PeerMsg::Done);
        self.phase = Phase::AwaitDoneAck;
        Ok(())
    }

    /// Applies an Automerge sync message through the store: received into the
    /// in-memory document (so Automerge keeps its queue of changes whose
    /// dependencies are missing and asks for them), then index rows, chunk
    /// and device record commit in one transaction.
    fn receive_sync(
        &mut self,
        store: &mut Store,
        d: DocId,
        state: &mut SyncState,
        bytes: &[u8],
    ) -> Result<(), PeerError> {
        let msg = SyncMessage::decode(bytes).map_err(|e| PeerError::Sync {
            doc: d.to_string(),
            detail: e.to_string(),
        })?;
        let peer = self.peer_device()?;
        let now = self.now_ms;
        let name = d.to_string();
        let applied = store.merge_with(
            d,
            |doc| {
                doc.sync()
                    .receive_sync_message(state, msg)
                    .map_err(|e| StoreError::Automerge {
                        doc: name.clone(),
                        source: crate::error::BackendError::new(e),
                    })
            },
            |txn| touch_peer(txn, &peer, now),
        )?;
        self.stats.contacts_changed += applied.contacts.len();
        self.stats.interactions_changed += applied.interactions.len();
        if applied.heads_before != applied.heads_after {
            self.stats.changes_received += 1;
        }
        Ok(())
    }
}

fn ensure_doc(store: &mut Store, d: DocId) -> Result<(), StoreError> {
    store.ensure_loaded(d)?;
    if !store.docs.contains_key(&d) {
        store.apply_remote_changes(d, &[], |_| Ok(()))?;
    }
    Ok(())
}

fn generate(
    store: &mut Store,
    d: DocId,
    state: &mut SyncState,
) -> Result<Option<Vec<u8>>, PeerError> {
    ensure_doc(store, d)?;
    let Some(l) = store.docs.get_mut(&d) else {
        return Err(StoreError::UnknownDoc(d.to_string()).into());
    };
    Ok(l.doc
        .sync()
        .generate_sync_message(state)
        .map(|m| m.encode()))
}

fn touch_peer(txn: &WriteTransaction, peer: &DeviceId, now_ms: u64) -> Result<(), StoreError> {
    let mut t = txn.open_table(tables::DEVICES)?;
    let rec = t
        .get(peer.as_bytes().as_slice())?
        .map(|v| postcard::from_bytes::<tables::DeviceRecord>(v.value()));
    if let Some(Ok(mut r)) = rec {
        r.last_seen_ms = r.last_seen_ms.max(now_ms);
        let b = postcard::to_allocvec(&r).map_err(|e| tables::damaged("devices", e))?;
        t.insert(peer.as_bytes().as_slice(), b.as_slice())?;
    }
    Ok(())
}

/// The record of the last completed session with `peer`: per document, the
/// heads both sides had.
fn load_record(
    store: &mut Store,
    peer: &DeviceId,
) -> Result<BTreeMap<String, Vec<[u8; 32]>>, StoreError> {
    let txn = store.read_txn()?;
    let Some(t) = tables::open_read(&txn, tables::PEER_HEADS)? else {
        return Ok(BTreeMap::new());
    };
    let key = peer.as_bytes().as_slice();
    let mut out = BTreeMap::new();
    for row in t.range((key, "")..)? {
        let (k, v) = row?;
        let (p, doc) = k.value();
        if p != key {
            break;
        }
        let heads = tables::heads_from_bytes(v.value())?;
        out.insert(doc.to_string(), heads.into_iter().map(|h| h.0).collect());
    }
    Ok(out)
}

/// Records the current heads of every document as the result of a
/// completed session with `peer`.
///
/// Not fsynced: a record lost in a crash only costs the next session a
/// `Resend` (the digests differ) and a full Hello.
fn save_record(store: &mut Store, peer: &DeviceId) -> Result<(), StoreError> {
    let docs = my_docs(store)?;
    store.write_tables_lazily(|txn| {
        let mut t = txn.open_table(tables::PEER_HEADS)?;
        let key = peer.as_bytes().as_slice();
        t.retain_in((key, "")..=(key, "\u{10ffff}"), |_, _| false)?;
        for (doc, heads) in &docs {
            let hs: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
            t.insert((key, doc.as_str()), tables::heads_to_bytes(&hs).as_slice())?;
        }
        Ok(())
    })
}

fn record_digest(record: &BTreeMap<String, Vec<[u8; 32]>>) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (doc, heads) in record {
        h.update(doc.as_bytes());
        h.update([0u8]);
        for x in heads {
            h.update(x);
        }
        h.update([0xffu8]);
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    if out == [0u8; 8] {
        out[0] = 1;
    }
    out
}

/// The device that served at `addr` last time, if known.
pub fn peer_hint(store: &mut Store, addr: &str) -> Result<Option<DeviceId>, StoreError> {
    let txn = store.read_txn()?;
    let Some(t) = tables::open_read(&txn, tables::PEER_ADDRS)? else {
        return Ok(None);
    };
    let v = t.get(addr)?;
    Ok(v.and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
        .map(DeviceId))
}

/// Remembers that `device` served at `addr`.
/// Not fsynced (a lost hint costs one full Hello), and not written at all
/// when unchanged.
pub fn remember_peer(store: &mut Store, addr: &str, device: &DeviceId) -> Result<(), StoreError> {
    if peer_hint(store, addr)? == Some(*device) {
        return Ok(());
    }
    store.write_tables_lazily(|txn| {
        txn.open_table(tables::PEER_ADDRS)?
            .insert(addr, device.as_bytes().as_slice())?;
        Ok(())
    })
}

fn load_state(store: &mut Store, peer: &DeviceId, doc: &str) -> Result<SyncState, StoreError> {
    let txn = store.read_txn()?;
    let Some(t) = tables::open_read(&txn, tables::PEER_STATE)? else {
        return Ok(SyncState::new());
    };
    let v = t.get((peer.as_bytes().as_slice(), doc))?;
    Ok(match v {
        // A damaged state only costs a longer sync: start afresh.
        Some(v) => SyncState::decode(v.value()).unwrap_or_else(|_| SyncState::new()),
        None => SyncState::new(),
    })
}

/// Not fsynced: a lost state only makes the next sync start from scratch.
fn save_state(
    store: &mut Store,
    peer: &DeviceId,
    doc: &str,
    state: &SyncState,
) -> Result<(), StoreError> {
    store.write_tables_lazily(|txn| {
        txn.open_table(tables::PEER_STATE)?
            .insert((peer.as_bytes().as_slice(), doc), state.encode().as_slice())?;
        Ok(())
    })
}

fn msg_name(m: &PeerMsg) -> &'static str {
    match m {
        PeerMsg::Hello { .. } => "Hello",
        PeerMsg::Changes { .. } => "Changes",
        PeerMsg::EndDirect => "EndDirect",
        PeerMsg::Sync { .. } => "Sync",
        PeerMsg::Done => "Done",
        PeerMsg::DoneAck => "DoneAck",
        PeerMsg::Refused { .. } => "Refused",
        PeerMsg::PairRequest { .. } => "PairRequest",
        PeerMsg::PairBlob { .. } => "PairBlob",
        PeerMsg::Resend => "Resend",
        PeerMsg::Watch => "Watch",
        PeerMsg::Changed => "Changed",
        PeerMsg::PairPut { .. } => "PairPut",
        PeerMsg::PairStored => "PairStored",
    }
}

/// Server side of direct pairing: answers a `PairPut` (the joiner's request)
/// from the host's open invitations (one slot, once), or refuses.
pub fn answer_pair_put(
    host: &mut PairingHost,
    slot: MailboxSlot,
    blob: Vec<u8>,
    now_ms: u64,
) -> PeerMsg {
    if host.put(slot, blob, now_ms) {
        PeerMsg::PairStored
    } else {
        PeerMsg::Refused {
            reason:
                "this invitation was already redeemed by another device, expired, or never made"
                    .into(),
        }
    }
}

/// Server side of direct pairing: answers a `PairRequest` (the joiner taking
/// the inviter's reply) from the host's open invitations (one-time), or refuses.
pub fn answer_pair_request(host: &mut PairingHost, slot: &MailboxSlot, now_ms: u64) -> PeerMsg {
    match host.take(slot, now_ms) {
        Some(blob) => PeerMsg::PairBlob { blob },
        None => PeerMsg::Refused {
            reason: "no such invitation: already used, expired, or never made".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc_name() -> impl Strategy<Value = String> {
        prop_oneof![Just("main".to_string()), "log/20[0-9]{2}q[1-4]", ".{0,12}"]
    }

    fn msg() -> impl Strategy<Value = PeerMsg> {
        let id = DeviceIdentity::with_account(
            &crate::identity::KeyMaterial::generate("prop"),
            AccountId([1; 32]),
        );
        let card = PeerCard {
            account: id.account_id(),
            device: id.device_id(),
            name: "prop".into(),
        };
        let sig = id.device_signing_key().sign(b"x");
        let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            (
                any::<u16>(),
                any::<Option<[u8; 32]>>(),
                any::<[u8; 8]>(),
                proptest::collection::vec(
                    (
                        doc_name(),
                        proptest::collection::vec(any::<[u8; 32]>(), 0..3)
                    ),
                    0..4
                )
            )
                .prop_map(move |(version, hint, base, docs)| PeerMsg::Hello {
                    version,
                    card: Box::new(card.clone()),
                    membership: vec![],
                    signature: sig,
                    hint: hint.map(DeviceId),
                    base,
                    docs,
                }),
            (doc_name(), proptest::collection::vec(bytes(), 0..4))
                .prop_map(|(doc, changes)| PeerMsg::Changes { doc, changes }),
            Just(PeerMsg::EndDirect),
            (doc_name(), proptest::option::of(bytes()))
                .prop_map(|(doc, message)| PeerMsg::Sync { doc, message }),
            Just(PeerMsg::Done),
            Just(PeerMsg::DoneAck),
            ".{0,40}".prop_map(|reason| PeerMsg::Refused { reason }),
            any::<[u8; 32]>().prop_map(|slot| PeerMsg::PairRequest { slot }),
            bytes().prop_map(|blob| PeerMsg::PairBlob { blob }),
            Just(PeerMsg::Resend),
            Just(PeerMsg::Watch),
            Just(PeerMsg::Changed),
            (any::<[u8; 32]>(), bytes()).prop_map(|(slot, blob)| PeerMsg::PairPut { slot, blob }),
            Just(PeerMsg::PairStored),
        ]
    }

    proptest! {
        #[test]
        fn every_message_survives_a_frame_round_trip(m in msg()) {
            let f = kith_protocol::encode_frame(&m, kith_protocol::FRAME_BYTES_MAX).unwrap();
            let (back, used) = kith_protocol::decode_frame::<PeerMsg>(&f, kith_protocol::FRAME_BYTES_MAX)
                .unwrap()
                .unwrap();
            prop_assert_eq!(used, f.len());
            prop_assert_eq!(back, m);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = kith_protocol::decode_body::<PeerMsg>(&b);
        }
    }

    #[test]
    fn live_mode_variants_keep_their_wire_numbers() {
        // Variant order is the wire format: Watch = 10, Changed = 11.
        assert_eq!(postcard::to_allocvec(&PeerMsg::Watch).unwrap(), vec![10]);
        assert_eq!(postcard::to_allocvec(&PeerMsg::Changed).unwrap(), vec![11]);
        assert_eq!(postcard::to_allocvec(&PeerMsg::Resend).unwrap(), vec![9]);
    }
}
