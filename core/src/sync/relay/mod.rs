//! The relay log client, sans-IO.
//!
//! Data flow (docs/SYNC.md):
//! - connect: `Hello` -> `Welcome` (the relay key must be the pinned one) ->
//!   `Auth` (account, device, signature over the challenge, and this
//!   device's membership log so the relay can register the account or learn
//!   ops it lacks) -> `AuthOk` (the relay's log length and epoch); when the
//!   relay's log is longer, `GetMembership` first (verified and stored by
//!   `sync::membership`, epoch keys sealed to this device opened), then
//!   `Subscribe`, a `Heads` check, an optional snapshot fetch (a device
//!   that has never pulled starts from the newest snapshot), a pull loop, and
//!   a push loop;
//! - push: this device's own changes per document since the "pushed heads"
//!   are compressed, split into bodies of at most 256 KiB, sealed under the
//!   current epoch's key with consecutive seqs and written to the redb outbox together with the new
//!   pushed heads and `next_seq` in ONE transaction, and only then sent. The
//!   outbox row is deleted when the relay acknowledges it, so a crash between
//!   sealing and acknowledgement re-sends byte-identical entries: a seq is
//!   never skipped or forked;
//! - membership: `EpochStale` on a push (someone rotated) fetches the log
//!   and re-seals the outbox under the new epoch (same seqs); live
//!   `Event::Membership` ops are absorbed; a revoke, rotation or add is an op this
//!   device signs on its log's head and sends with `AppendMembership`
//!   (`MembershipBehind`: fetch, re-make on the new head, bounded), stored
//!   locally only once the relay ordered it. A device that finds itself
//!   revoked stops with [`RelaySyncError::Revoked`];
//! - pull and live events: every entry is verified (device signature, its
//!   device a member during the entry's epoch), decrypted and applied through
//!   [`Store::apply_remote_changes`]; the per-device cursor, the pending
//!   table (changes whose dependencies have not arrived, possible because the
//!   relay orders by device) and the device list are written in the same
//!   transaction as the merge. Pending changes are retried with every later
//!   merge of their document;
//! - snapshots: when the relay's tail grows past a threshold and this device
//!   is fully caught up (nothing pending, nothing unacknowledged), it uploads
//!   a sealed save of every document with the cursor vector it covers. A
//!   snapshot larger than one frame goes up in parts (protocol 2:
//!   `PutSnapshotPart` x n, at most [`UPLOAD_PARTS_INFLIGHT_MAX`] in flight,
//!   then `CommitSnapshot`) and comes down in ranges (`GetSnapshotRange`),
//!   reassembled in memory and verified as a whole before anything is
//!   applied. A bootstrap installs the snapshot's documents directly
//!   ([`Store::apply_snapshot_docs`]): documents, index, cursors and device
//!   records in one transaction;
//! - snapshot confirmation (protocol 4): a stored snapshot stays *pending*
//!   at the relay (nothing pruned) until a device other than its author
//!   opened it. A bootstrap asks `Snapshots` first and tries the pending
//!   snapshot, then the confirmed one, then the log: one it cannot open is
//!   reported ([`RelayEvent::SnapshotUnreadable`], recorded in the
//!   quarantine under seq 0) and skipped; one it installed is confirmed
//!   (`SnapshotOpened`). A caught-up device whose relay log grew long asks
//!   `Snapshots` too: it verifies a pending snapshot of another device
//!   (opens it without installing) and confirms it, and measures its own
//!   snapshot's worth against the newest stored one, not the floors;
//! - repair: once caught up, each connection pulls again (one page each,
//!   at most [`REFETCH_PER_CONNECTION_MAX`]) the quarantined entries of
//!   this store; one that now opens (the relay's damaged copy was repaired
//!   by its writer's re-push) is applied and leaves the quarantine
//!   ([`RelayEvent::Repaired`]);
//! - progress: long transfers (snapshot down/up, pulls) report
//!   [`RelayEvent::Progress`] with what moved of the total when known.
//!
//! The machine is split by concern: `receive` (pull and live entries),
//! `push` (outbox, acknowledgements, heads), `snapshot` (build, upload,
//! ranged download, install), `status` (relay binding, durable
//! position) and `recover` (a separate session that wins the account back
//! with the recovery code); storage goes through the typed functions of `sync::tables`.
//!
//! Timers out: [`RelaySync::poll_timeout`] (a rate-limited push retry);
//! liveness of the connection is the transport's job (QUIC keep-alive).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::{Change, ChangeHash};
use kith_protocol::envelope::Cursor;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    ClientMsg, DeviceId, ErrorCode, Event, MemberKeys, MembershipOp, PROTOCOL_VERSION,
    PROTOCOL_VERSIONS, RelayKey, Request, Response, SealedEntry, SealedSnapshot, ServerMsg,
    SnapshotInfo, sign_auth,
};
use redb::{ReadableDatabase, WriteTransaction};

use super::authority::RecoveryCode;
use super::device_identity::DeviceIdentity;
use super::membership::{self, MembershipSyncError};
use super::payload::{self, EntryBody, PAYLOAD_VERSION, SnapshotPayload, UnsealError};
use crate::doc::DocId;
use crate::error::StoreError;
use crate::identity::CryptoError;
use crate::store::Store;
use crate::sync::tables::{self, Partial};

mod push;
mod receive;
pub mod recover;
mod snapshot;
mod status;

pub(crate) use receive::{apply_with_pending, compress};
use receive::{mark_pushed, write_bookkeeping};
pub use recover::{RecoverError, Recovered, RecoverySession};
pub use status::{QuarantinedEntry, SyncStatus, sync_status};
use status::{bind_relay, read_status};

/// Most snapshot parts uploaded without their acknowledgement.
pub const UPLOAD_PARTS_INFLIGHT_MAX: usize = 4;
/// Largest snapshot ciphertext this client downloads, bytes.
pub const SNAPSHOT_DOWNLOAD_BYTES_MAX: u64 = 1 << 30;
/// Times a ranged download restarts because the relay's snapshot changed
/// under it before the client gives up for this connection.
const SNAPSHOT_RESTARTS_MAX: u32 = 8;
/// Frame bytes a snapshot part request needs besides its bytes.
const PART_OVERHEAD_BYTES: usize = 4096;
/// Quarantined entries pulled again per connection (to pick up repairs).
pub const REFETCH_PER_CONNECTION_MAX: usize = 16;
/// Times a membership change is re-made on a newer head before giving up.
const MEMBERSHIP_RETRIES_MAX: u32 = 8;

/// Tunables of the relay client; defaults suit a phone and a laptop.
#[derive(Debug, Clone)]
pub struct RelayClientConfig {
    /// Most entries asked for in one pull.
    pub pull_entries_max: u32,
    /// Most payload bytes asked for in one pull.
    pub pull_bytes_max: u32,
    /// Most entry bytes in one push request.
    pub push_bytes_max: usize,
    /// Upload a snapshot once the relay holds at least this many tail entries...
    pub snapshot_tail_entries_min: u64,
    /// ...or once this device pushed this many entry bytes in this session
    /// (and the tail has at least two entries).
    pub snapshot_tail_bytes_min: u64,
    /// Ask the relay for live events.
    pub subscribe: bool,
    /// Registration token for a relay whose policy is `token`.
    pub registration_token: Option<String>,
}

impl Default for RelayClientConfig {
    fn default() -> Self {
        Self {
            pull_entries_max: 256,
            pull_bytes_max: 768 * 1024,
            push_bytes_max: 768 * 1024,
            snapshot_tail_entries_min: 256,
            snapshot_tail_bytes_min: 256 * 1024,
            subscribe: true,
            registration_token: None,
        }
    }
}

/// What happened, for progress output and UI refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The relay accepted this device's authentication.
    Authenticated {
        /// True when the account was registered by this session (first device).
        registered: bool,
    },
    /// Entries received (pull or live) and verified.
    Received {
        /// Entries in the batch.
        entries: usize,
        /// Their sealed bytes.
        bytes: usize,
        /// True for a live event (subscribed), false for a pull answer.
        live: bool,
    },
    /// A merge into one document committed.
    Applied {
        /// The document merged into.
        doc: DocId,
        /// Contacts whose record changed.
        contacts: usize,
        /// Interactions whose record changed.
        interactions: usize,
        /// Changes of this document still waiting for dependencies.
        pending: usize,
    },
    /// The relay acknowledged this device's entries up to `acked_seq`.
    Pushed {
        /// Entries acknowledged.
        entries: usize,
        /// Their sealed bytes.
        bytes: usize,
        /// This device's highest acknowledged seq.
        acked_seq: u64,
    },
    /// The relay's snapshot was verified and merged (a new or restored device
    /// catching up without pulling the whole log).
    SnapshotApplied {
        /// Documents it held.
        docs: usize,
        /// Its sealed size.
        bytes: usize,
    },
    /// A snapshot stored at the relay could not be opened (it does not
    /// verify, decrypt or parse: its device is damaged or hostile, or the
    /// relay's copy is): it was skipped, this device falls back to an older
    /// snapshot or the log, and the warning is recorded in the quarantine
    /// ([`SyncStatus::quarantined`], seq 0). Show it to the user.
    SnapshotUnreadable {
        /// The device that made the snapshot.
        device: DeviceId,
        /// Why it could not be opened.
        reason: String,
    },
    /// This device opened another device's pending snapshot and the relay
    /// confirmed it (it pruned the entries it covers).
    SnapshotConfirmed {
        /// Entries the relay dropped.
        pruned_entries: u64,
    },
    /// This device's snapshot was stored (pending until another device
    /// opens it; the relay prunes then).
    SnapshotStored {
        /// The snapshot's sealed size.
        bytes: usize,
        /// Entries the relay dropped because the snapshot covers them.
        pruned_entries: u64,
    },
    /// A snapshot was due but not stored; the log keeps growing until a later
    /// round stores one. Not an error.
    SnapshotSkipped {
        /// Why, for logs.
        reason: String,
    },
    /// An entry from `device` did not verify, decrypt or parse: it was
    /// skipped (the rest of the account keeps syncing) and recorded in the
    /// quarantine ([`SyncStatus::quarantined`]). Show it to the user: that
    /// device is damaged or hostile, or the relay's copy is damaged.
    Quarantined {
        /// The device that (by the envelope) wrote the entry.
        device: DeviceId,
        /// Its sequence number.
        seq: u64,
        /// Why it was refused.
        reason: String,
    },
    /// A quarantined entry was pulled again and now opened (the relay's
    /// damaged copy was repaired): it was applied and left the quarantine.
    Repaired {
        /// The device that wrote it.
        device: DeviceId,
        /// Its sequence number.
        seq: u64,
    },
    /// The relay dropped live events; a pull catches up.
    Lagged,
    /// The relay slowed pushes down; the machine retries by itself.
    RateLimited {
        /// How long the relay asked to wait.
        retry_after_ms: u64,
    },
    /// The relay had lost this device's acknowledged entries `from_seq..=to_seq`
    /// (restored from an older backup); they are being pushed again, byte for
    /// byte, from this device's store.
    RelayHealed {
        /// First seq the relay lost.
        from_seq: u64,
        /// Last.
        to_seq: u64,
    },
    /// The relay ordered a revocation this device made (a new epoch started).
    Revoked {
        /// The revoked device.
        device: DeviceId,
    },
    /// The relay ordered a key rotation this device made (a new epoch with
    /// the same members).
    Rotated,
    /// The relay ordered an `Add` this device made.
    Added {
        /// The added device.
        device: DeviceId,
    },
    /// The relay ordered this device's recovery: the members are now the
    /// chosen ones.
    Recovered,
    /// Membership ops were verified and stored (from the relay).
    MembershipChanged {
        /// Ops in the log now.
        len: u64,
        /// The current epoch.
        epoch: u64,
    },
    /// A pairing invitation was stored in the relay's mailbox.
    MailboxStored,
    /// Everything known was pulled and pushed; nothing is in flight.
    RoundComplete,
    /// A long transfer advanced: what moved so far of the total, when known.
    Progress {
        /// Which transfer.
        transfer: Transfer,
        /// Bytes moved so far.
        done_bytes: u64,
        /// Bytes in all; `None` when not known in advance.
        total_bytes: Option<u64>,
        /// Entries moved so far (0 for snapshots).
        done_entries: u64,
        /// Entries in all; `None` when not known in advance.
        total_entries: Option<u64>,
    },
}

/// Which transfer a [`RelayEvent::Progress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The relay's snapshot coming down (bytes of its ciphertext).
    SnapshotDownload,
    /// This device's snapshot going up in parts.
    SnapshotUpload,
    /// Log entries coming down (entries of the relay's tail after this
    /// device's cursors).
    Pull,
}

/// Errors of the relay client; after one, drop the connection and reconnect
/// (with backoff) unless the case says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum RelaySyncError {
    /// The local store failed; what was being merged is not kept (the cursor stays).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing an entry or snapshot failed.
    #[error("cannot seal: {0}")]
    Crypto(#[from] CryptoError),
    /// The relay refused a request or the connection.
    #[error("the relay refused ({}): {message}", code.name())]
    Relay {
        /// The relay's error code; it says whether retrying helps.
        code: ErrorCode,
        /// The relay's message.
        message: String,
    },
    /// The server presented another key than the pinned one: a wrong address
    /// or an impostor; do not retry.
    #[error("the relay presented key {got}, but the address pins {expected}")]
    WrongRelay {
        /// The pinned key.
        expected: RelayKey,
        /// The key presented.
        got: RelayKey,
    },
    /// The relay does not speak our protocol version.
    #[error("the relay chose protocol version {0}, this Kith speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// A message that makes no sense at this point.
    #[error("protocol violation by the relay: {0}")]
    Protocol(String),
    /// An entry was written by a newer Kith (payload version): it is not
    /// applied and the cursor stays until Kith is updated. (Entries that do
    /// not verify, decrypt or parse are quarantined instead, see
    /// [`RelayEvent::Quarantined`].)
    #[error("entry {device}/{seq} was refused: {reason}")]
    BadEntry {
        /// The device that wrote it, by the envelope.
        device: DeviceId,
        /// Its sequence number.
        seq: u64,
        /// Why it was refused.
        reason: UnsealError,
    },
    /// An entry opened but names a document id that is not valid (no longer
    /// returned: such entries are quarantined; kept for API stability).
    #[error("entry {device}/{seq} names an invalid document: {doc}")]
    BadDoc {
        /// The device that wrote it.
        device: DeviceId,
        /// Its sequence number.
        seq: u64,
        /// The document id as written.
        doc: String,
    },
    /// The relay's snapshot failed verification; it is not applied.
    #[error("the relay's snapshot was refused: {0}")]
    BadSnapshot(String),
    /// The membership log could not be taken or changed.
    #[error(transparent)]
    Membership(#[from] MembershipSyncError),
    /// This device is no longer a member of the account (revoked by another
    /// device or by a recovery); it cannot sync with this account again.
    #[error("this device was revoked from the account and cannot sync any more")]
    Revoked,
    /// The relay has fewer of this device's entries than it acknowledged and
    /// this device no longer keeps them all (see `sync_sent`).
    #[error(
        "the relay expects seq {expected} but this device keeps its entries only from seq {first}: the relay lost data this device cannot send again"
    )]
    RelayBehind {
        /// The seq the relay expects next.
        expected: u64,
        /// The first seq this device still holds unacknowledged.
        first: u64,
    },
}

tables::redb_errors_into!(RelaySyncError);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    HelloSent,
    AuthSent,
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    Pull,
    Push { entries: usize, bytes: usize },
    Subscribe,
    GetSnapshot,
    PutSnapshot { bytes: usize },
    SnapshotPart { bytes: usize },
    CommitSnapshot { bytes: usize },
    Heads,
    GetMembership,
    AppendMembership,
    MailboxPut,
    Snapshots,
    SnapshotOpened,
    Refetch { device: DeviceId, seq: u64 },
}

/// A membership change this device wants ordered by the relay; the op is
/// made on the log's head when sent (and re-made if the head moved).
#[derive(Debug, Clone)]
enum Intent {
    Revoke(DeviceId),
    Rotate,
    Add(MemberKeys),
    Recover {
        code: RecoveryCode,
        keep: Vec<MemberKeys>,
    },
}

/// A fragmented snapshot upload in progress.
#[derive(Debug)]
struct Upload {
    id: u64,
    /// The envelope with an empty ciphertext (sent with the commit).
    header: SealedSnapshot,
    /// Parts not sent yet.
    parts: VecDeque<(u32, Vec<u8>)>,
    count: u32,
    acked: u32,
    total_bytes: u64,
    acked_bytes: u64,
}

/// A ranged snapshot download in progress.
#[derive(Debug)]
struct Download {
    id: [u8; 32],
    total_bytes: u64,
    /// The envelope; its ciphertext grows range by range.
    snapshot: SealedSnapshot,
}

/// The relay log client for one connection. Create one per connection;
/// everything durable lives in the store.
#[derive(Debug)]
pub struct RelaySync {
    id: DeviceIdentity,
    relay: RelayKey,
    cfg: RelayClientConfig,
    phase: Phase,
    next_req: u32,
    inflight: BTreeMap<u32, Req>,
    out: VecDeque<ClientMsg>,
    events: VecDeque<RelayEvent>,
    frame_bytes_max: usize,
    queued: VecDeque<(Request, Req)>,
    pull_wanted: bool,
    push_wanted: bool,
    heads_wanted: bool,
    snapshot_wanted: bool,
    own_head_known: bool,
    initial_pull_done: bool,
    push_retry_at_ms: Option<u64>,
    /// Entry bytes this device pushed since its last snapshot (this session).
    session_bytes: u64,
    idle_reported: bool,
    now_ms: u64,
    /// Negotiated protocol version.
    version: u16,
    upload: Option<Upload>,
    download: Option<Download>,
    snapshot_restarts: u32,
    /// The stored snapshot being downloaded (by id), if chosen.
    download_target: Option<SnapshotInfo>,
    /// The download only checks that the snapshot opens (another device's
    /// pending one), it is not installed.
    download_verify_only: bool,
    /// Further snapshots to try if the one being installed cannot be opened.
    install_candidates: VecDeque<SnapshotInfo>,
    /// Snapshots this session found unreadable or already checked.
    tried_snapshots: HashSet<[u8; 32]>,
    /// No stored snapshot could be installed: the log is the only way left.
    snapshots_exhausted: bool,
    /// A `Snapshots` answer decides whether to verify or upload a snapshot.
    snapshot_check_wanted: bool,
    /// The relay's pending snapshot from its last `Snapshots` answer: only
    /// that one is worth confirming once opened.
    pending_snapshot: Option<[u8; 32]>,
    /// Quarantined entries to pull again (filled once per connection).
    refetch: Option<VecDeque<(DeviceId, u64)>>,
    /// The relay's per-device heads from its last `Heads` answer.
    remote_heads: Vec<Cursor>,
    pulled_entries: u64,
    pulled_bytes: u64,
    /// The relay's log is longer than ours: fetch before anything else.
    membership_wanted: bool,
    /// Outbox entries may be sealed under an older epoch.
    reseal_wanted: bool,
    /// Membership changes to send, in order; the first one is in flight
    /// when an `AppendMembership` is.
    intents: VecDeque<Intent>,
    /// The op of the in-flight `AppendMembership`.
    sent_op: Option<MembershipOp>,
    membership_retries: u32,
}

impl RelaySync {
    /// A client for one connection to `relay`; queues `Hello`.
    pub fn new(
        store: &mut Store,
        id: DeviceIdentity,
        relay: RelayKey,
        cfg: RelayClientConfig,
    ) -> Result<Self, RelaySyncError> {
        bind_relay(store, &relay)?;
        let mut s = Self {
            id,
            relay,
            cfg,
            phase: Phase::HelloSent,
            next_req: 1,
            inflight: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            frame_bytes_max: kith_protocol::FRAME_BYTES_MAX,
            queued: VecDeque::new(),
            pull_wanted: false,
            push_wanted: false,
            heads_wanted: false,
            snapshot_wanted: false,
            own_head_known: false,
            initial_pull_done: false,
            push_retry_at_ms: None,
            session_bytes: 0,
            idle_reported: false,
            now_ms: 0,
            version: PROTOCOL_VERSION,
            upload: None,
            download: None,
            snapshot_restarts: 0,
            download_target: None,
            download_verify_only: false,
            install_candidates: VecDeque::new(),
            tried_snapshots: HashSet::new(),
            snapshots_exhausted: false,
            snapshot_check_wanted: false,
            pending_snapshot: None,
            refetch: None,
            remote_heads: Vec::new(),
            pulled_entries: 0,
            pulled_bytes: 0,
            membership_wanted: false,
            reseal_wanted: false,
            intents: VecDeque::new(),
            sent_op: None,
            membership_retries: 0,
        };
        s.out.push_back(ClientMsg::Hello {
            versions: PROTOCOL_VERSIONS.to_vec(),
        });
        Ok(s)
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<ClientMsg> {
        self.out.pop_front()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// When [`RelaySync::handle_timeout`] should be called (ms since epoch).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.push_retry_at_ms
    }

    /// True once authenticated.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// True when authenticated, caught up, and nothing is in flight or waiting.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Ready
            && self.initial_pull_done
            && !self.pull_wanted
            && !self.push_wanted
            && !self.heads_wanted
            && !self.snapshot_wanted
            && self.queued.is_empty()
            && self.push_retry_at_ms.is_none()
            && self.upload.is_none()
            && self.download.is_none()
            && !self.snapshot_check_wanted
            && self.refetch.as_ref().is_some_and(VecDeque::is_empty)
            && !self.membership_wanted
            && self.intents.is_empty()
            && self.inflight.values().all(|r| *r == Req::Subscribe)
    }

    /// The store changed locally: push what is new.
    pub fn local_changed(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        self.push_wanted = true;
        self.idle_reported = false;
        self.drive(store)
    }

    /// Asks for a pull (for example after a reconnect or a manual refresh).
    pub fn request_pull(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        self.pull_wanted = true;
        self.idle_reported = false;
        self.drive(store)
    }

    /// Revokes `device`: a `Revoke` op with a new epoch sealed to the
    /// remaining members, made on the log's head and ordered by the relay
    /// (sent once authenticated; [`RelayEvent::Revoked`] when done).
    pub fn revoke(&mut self, store: &mut Store, device: DeviceId) -> Result<(), RelaySyncError> {
        self.intents.push_back(Intent::Revoke(device));
        self.idle_reported = false;
        self.drive(store)
    }

    /// Starts a new key epoch with the same members (a `Rotate` op ordered
    /// by the relay; [`RelayEvent::Rotated`] when done).
    pub fn rotate(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        self.intents.push_back(Intent::Rotate);
        self.idle_reported = false;
        self.drive(store)
    }

    /// Adds `member` to the account, sealing the current epoch key to it
    /// ([`RelayEvent::Added`] when the relay ordered it).
    pub fn add_member(
        &mut self,
        store: &mut Store,
        member: MemberKeys,
    ) -> Result<(), RelaySyncError> {
        self.intents.push_back(Intent::Add(member));
        self.idle_reported = false;
        self.drive(store)
    }

    /// With the recovery code: makes the members exactly `keep`, revoking
    /// every other device, and starts a new epoch ([`RelayEvent::Recovered`]).
    pub fn recover(
        &mut self,
        store: &mut Store,
        code: RecoveryCode,
        keep: Vec<MemberKeys>,
    ) -> Result<(), RelaySyncError> {
        self.intents.push_back(Intent::Recover { code, keep });
        self.idle_reported = false;
        self.drive(store)
    }

    /// Takes ops from the relay; stops if this device is out.
    fn absorb(&mut self, store: &mut Store, ops: &[MembershipOp]) -> Result<(), RelaySyncError> {
        let (state, new) = membership::absorb(store, &self.id, ops)?;
        if !state.is_member(&self.id.device_id()) {
            return Err(RelaySyncError::Revoked);
        }
        if new > 0 {
            self.reseal_wanted = true;
            self.push_wanted = true;
            self.events.push_back(RelayEvent::MembershipChanged {
                len: state.len(),
                epoch: state.epoch(),
            });
        }
        Ok(())
    }

    /// The op for the first intent, made on the current head.
    fn make_op(&self, store: &mut Store) -> Result<Option<MembershipOp>, RelaySyncError> {
        let now = self.now_ms;
        let op = match self.intents.front() {
            None => return Ok(None),
            Some(Intent::Revoke(d)) => membership::revoke_op(store, &self.id, *d, now)?,
            Some(Intent::Rotate) => membership::rotate_op(store, &self.id, now)?,
            Some(Intent::Add(m)) => membership::add_op(store, &self.id, m.clone(), now)?,
            Some(Intent::Recover { code, keep }) => {
                membership::recover_op(store, &self.id, code, keep.clone(), now)?
            }
        };
        Ok(Some(op))
    }

    /// Queues a pairing mailbox blob (sent once authenticated).
    pub fn mailbox_put(
        &mut self,
        store: &mut Store,
        slot: MailboxSlot,
        blob: Vec<u8>,
        ttl_s: u32,
    ) -> Result<(), RelaySyncError> {
        self.queued
            .push_back((Request::MailboxPut { slot, blob, ttl_s }, Req::MailboxPut));
        self.idle_reported = false;
        self.drive(store)
    }

    /// A retry timer fired.
    pub fn handle_timeout(&mut self, store: &mut Store, now_ms: u64) -> Result<(), RelaySyncError> {
        self.now_ms = now_ms;
        if self.push_retry_at_ms.is_some_and(|t| t <= now_ms) {
            self.push_retry_at_ms = None;
            self.push_wanted = true;
        }
        self.drive(store)
    }

    fn send(&mut self, body: Request, kind: Req) {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        self.inflight.insert(id, kind);
        self.out.push_back(ClientMsg::Request { id, body });
    }

    fn has_inflight(&self, f: impl Fn(&Req) -> bool) -> bool {
        self.inflight.values().any(f)
    }

    /// Handles one message from the relay.
    pub fn handle(
        &mut self,
        store: &mut Store,
        msg: ServerMsg,
        now_ms: u64,
    ) -> Result<(), RelaySyncError> {
        self.now_ms = now_ms;
        match (self.phase, msg) {
            (
                _,
                ServerMsg::Error {
                    id: None,
                    code,
                    message,
                },
            ) => {
                return Err(RelaySyncError::Relay { code, message });
            }
            (
                Phase::HelloSent,
                ServerMsg::Welcome {
                    version,
                    relay,
                    challenge,
                    frame_bytes_max,
                },
            ) => {
                if relay != self.relay {
                    return Err(RelaySyncError::WrongRelay {
                        expected: self.relay,
                        got: relay,
                    });
                }
                if !PROTOCOL_VERSIONS.contains(&version) {
                    return Err(RelaySyncError::Version(version));
                }
                self.version = version;
                self.frame_bytes_max =
                    (frame_bytes_max as usize).min(kith_protocol::FRAME_BYTES_MAX);
                let signature = sign_auth(self.id.device_signing_key(), &relay, &challenge);
                // The relay skips the ops it holds; the genesis registers the
                // account on a relay that does not know it.
                let mut ops = membership::ops(store)?;
                ops.truncate(kith_protocol::membership::OPS_PER_MESSAGE_MAX);
                self.out.push_back(ClientMsg::Auth {
                    account: self.id.account_id(),
                    device: self.id.device_id(),
                    signature,
                    token: self.cfg.registration_token.clone(),
                    membership: ops,
                });
                self.phase = Phase::AuthSent;
            }
            (
                Phase::AuthSent,
                ServerMsg::AuthOk {
                    registered,
                    membership_len,
                    ..
                },
            ) => {
                self.phase = Phase::Ready;
                self.events
                    .push_back(RelayEvent::Authenticated { registered });
                // Other devices learn this device's name from its sealed entries; the device
                // itself knows it, and lists it at once (a device that just joined has pushed
                // nothing yet).
                {
                    let txn = store.writable()?.begin_write()?;
                    tables::create(&txn)?;
                    tables::touch_device(
                        &txn,
                        &self.id.device_id(),
                        Some(self.id.device_name()),
                        self.now_ms,
                    )?;
                    txn.commit()?;
                }
                let local = membership::state(store, self.id.account_id())?;
                if membership_len > local.len() {
                    self.membership_wanted = true;
                }
                self.reseal_wanted = true;
                if self.cfg.subscribe {
                    self.send(Request::Subscribe, Req::Subscribe);
                }
                let st = read_status(store)?;
                // A device that never pulled starts from the newest snapshot.
                self.snapshot_wanted = st.cursors.is_empty();
                self.heads_wanted = true;
                self.pull_wanted = true;
                self.push_wanted = true;
            }
            (Phase::Ready, ServerMsg::Response { id, body }) => {
                let Some(kind) = self.inflight.remove(&id) else {
                    return Err(RelaySyncError::Protocol(format!(
                        "response to unknown request {id}"
                    )));
                };
                self.on_response(store, kind, body)?;
            }
            (
                Phase::Ready,
                ServerMsg::Error {
                    id: Some(id),
                    code,
                    message,
                },
            ) => {
                let Some(kind) = self.inflight.remove(&id) else {
                    return Err(RelaySyncError::Protocol(format!(
                        "error for unknown request {id}"
                    )));
                };
                self.on_error(store, kind, code, message)?;
            }
            (Phase::Ready, ServerMsg::Event(Event::Entries { entries })) => {
                self.idle_reported = false;
                self.receive(store, entries, true)?;
            }
            (Phase::Ready, ServerMsg::Event(Event::Membership { ops })) => {
                self.idle_reported = false;
                let local = membership::state(store, self.id.account_id())?.len();
                match ops.first() {
                    Some(first) if first.body.position <= local + 1 => self.absorb(store, &ops)?,
                    Some(_) => self.membership_wanted = true,
                    None => {}
                }
            }
            (Phase::Ready, ServerMsg::Event(Event::Lagged)) => {
                self.events.push_back(RelayEvent::Lagged);
                self.pull_wanted = true;
                self.idle_reported = false;
            }
            (phase, other) => {
                return Err(RelaySyncError::Protocol(format!(
                    "unexpected {} in phase {phase:?}",
                    msg_name(&other)
                )));
            }
        }
        self.drive(store)
    }

    fn on_response(
        &mut self,
        store: &mut Store,
        kind: Req,
        body: Response,
    ) -> Result<(), RelaySyncError> {
        match (kind, body) {
            (Req::Subscribe, Response::Subscribed) => {}
            (Req::Pull, Response::Entries { entries, more }) => {
                let n = entries.len() as u64;
                let bytes: u64 = entries.iter().map(|e| e.ciphertext.len() as u64).sum();
                // A log bootstrap (nothing pulled yet, more than this page to
                // come): the index is rebuilt once when the pull is done
                // instead of maintained page by page (docs/SYNC.md, "Log
                // bootstrap"). Durable marker first, so a crash rebuilds it.
                if more
                    && n > 0
                    && !store.index_deferred()
                    && tables::cursors(&store.read_txn()?)?.is_empty()
                {
                    store.defer_index()?;
                }
                self.receive(store, entries, false)?;
                if !more {
                    // The deferred merges reported no records; say now what
                    // each document brought (for progress output and a UI's counts).
                    for (doc, n) in store.finish_deferred_index()? {
                        let (contacts, interactions) = match doc {
                            DocId::Main => (n, 0),
                            DocId::Log { .. } => (0, n),
                        };
                        self.events.push_back(RelayEvent::Applied {
                            doc,
                            contacts,
                            interactions,
                            pending: 0,
                        });
                    }
                }
                if n > 0 {
                    self.pulled_entries += n;
                    self.pulled_bytes += bytes;
                    let total_entries = self.pull_remaining(store, more)?;
                    self.events.push_back(RelayEvent::Progress {
                        transfer: Transfer::Pull,
                        done_bytes: self.pulled_bytes,
                        total_bytes: None,
                        done_entries: self.pulled_entries,
                        total_entries: total_entries.map(|r| r + self.pulled_entries),
                    });
                }
                if !more {
                    self.initial_pull_done = true;
                    self.pull_wanted = false;
                } else {
                    self.pull_wanted = true;
                }
            }
            (Req::Push { entries, bytes }, Response::PushAck { device, seq }) => {
                if device != self.id.device_id() {
                    return Err(RelaySyncError::Protocol(
                        "push ack for another device".into(),
                    ));
                }
                self.ack(store, seq)?;
                self.session_bytes += bytes as u64;
                self.events.push_back(RelayEvent::Pushed {
                    entries,
                    bytes,
                    acked_seq: seq,
                });
                self.push_wanted = true;
                self.heads_wanted = true;
            }
            (
                Req::GetSnapshot,
                Response::SnapshotRange {
                    snapshot,
                    snapshot_id,
                    total_bytes,
                    offset,
                },
            ) => self.on_snapshot_range(store, snapshot, snapshot_id, total_bytes, offset)?,
            (Req::SnapshotPart { bytes }, Response::SnapshotPartStored { upload, .. }) => {
                if let Some(u) = self.upload.as_mut().filter(|u| u.id == upload) {
                    u.acked += 1;
                    u.acked_bytes += bytes as u64;
                    self.events.push_back(RelayEvent::Progress {
                        transfer: Transfer::SnapshotUpload,
                        done_bytes: u.acked_bytes,
                        total_bytes: Some(u.total_bytes),
                        done_entries: 0,
                        total_entries: None,
                    });
                }
            }
            (Req::CommitSnapshot { bytes }, Response::SnapshotStored { pruned_entries }) => {
                self.upload = None;
                self.session_bytes = 0;
                self.events.push_back(RelayEvent::SnapshotStored {
                    bytes,
                    pruned_entries,
                });
            }
            (Req::Snapshots, Response::Snapshots { confirmed, pending }) => {
                self.on_snapshots(store, confirmed, pending)?;
            }
            (Req::Refetch { device, seq }, Response::Entries { entries, .. }) => {
                if let Some(e) = entries
                    .into_iter()
                    .find(|e| e.device == device && e.seq == seq)
                {
                    self.retry_quarantined(store, e)?;
                }
            }
            (Req::SnapshotOpened, Response::SnapshotConfirmed { pruned_entries }) => {
                self.events
                    .push_back(RelayEvent::SnapshotConfirmed { pruned_entries });
            }
            (Req::GetSnapshot, Response::Snapshot { snapshot }) => {
                self.snapshot_wanted = false;
                if let Some(s) = snapshot {
                    self.apply_snapshot(store, &s)?;
                }
                self.pull_wanted = true;
            }
            (Req::PutSnapshot { bytes }, Response::SnapshotStored { pruned_entries }) => {
                self.session_bytes = 0;
                self.events.push_back(RelayEvent::SnapshotStored {
                    bytes,
                    pruned_entries,
                });
            }
            (Req::Heads, Response::Heads { heads, floors }) => {
                self.heads_wanted = false;
                self.on_heads(store, &heads, &floors)?;
            }
            (Req::GetMembership, Response::Membership { ops, more }) => {
                self.absorb(store, &ops)?;
                self.membership_wanted = more;
            }
            (Req::AppendMembership, Response::MembershipAppended { .. }) => {
                if let Some(op) = self.sent_op.take() {
                    self.absorb(store, std::slice::from_ref(&op))?;
                }
                self.membership_retries = 0;
                match self.intents.pop_front() {
                    Some(Intent::Revoke(device)) => {
                        self.events.push_back(RelayEvent::Revoked { device })
                    }
                    Some(Intent::Rotate) => self.events.push_back(RelayEvent::Rotated),
                    Some(Intent::Add(m)) => self
                        .events
                        .push_back(RelayEvent::Added { device: m.device }),
                    Some(Intent::Recover { .. }) => self.events.push_back(RelayEvent::Recovered),
                    None => {}
                }
            }
            (Req::MailboxPut, Response::MailboxStored) => {
                self.events.push_back(RelayEvent::MailboxStored);
            }
            (kind, body) => {
                return Err(RelaySyncError::Protocol(format!(
                    "answer {body:?} does not match request {kind:?}"
                )));
            }
        }
        Ok(())
    }

    fn on_error(
        &mut self,
        store: &mut Store,
        kind: Req,
        code: ErrorCode,
        message: String,
    ) -> Result<(), RelaySyncError> {
        match (kind, &code) {
            (Req::AppendMembership, ErrorCode::MembershipBehind { .. })
                if self.membership_retries < MEMBERSHIP_RETRIES_MAX =>
            {
                // Someone changed the membership first: fetch, then re-make
                // the change on the new head (`make_op` re-checks it).
                self.sent_op = None;
                self.membership_retries += 1;
                self.membership_wanted = true;
            }
            (Req::AppendMembership, _) => {
                self.sent_op = None;
                self.intents.pop_front();
                return Err(RelaySyncError::Relay { code, message });
            }
            (
                Req::Push { .. } | Req::PutSnapshot { .. } | Req::CommitSnapshot { .. },
                ErrorCode::EpochStale { .. },
            ) => {
                // A rotation we have not seen: fetch the log, re-seal.
                self.upload = None;
                self.membership_wanted = true;
                self.reseal_wanted = true;
                self.push_wanted = true;
                self.own_head_known = false;
            }
            (Req::Pull, ErrorCode::SnapshotNeeded) if self.snapshots_exhausted => {
                return Err(RelaySyncError::BadSnapshot(
                    "no snapshot the relay holds could be opened, and the log before it was pruned"
                        .into(),
                ));
            }
            (Req::Pull, ErrorCode::SnapshotNeeded) => {
                self.snapshot_wanted = true;
                self.pull_wanted = true;
            }
            (Req::Refetch { .. }, _) => {
                // Pruned meanwhile (covered by a snapshot), or refused: the
                // record stays.
            }
            (Req::SnapshotOpened, _) => {
                // Replaced meanwhile, or this device's own: nothing to confirm.
            }
            (Req::Push { .. }, ErrorCode::SeqGap { expected }) => {
                let first = self.outbox_first(store)?;
                match first {
                    Some(f) if *expected > f => {
                        // The relay stored entries whose acknowledgement we lost.
                        self.ack(store, expected - 1)?;
                        self.push_wanted = true;
                    }
                    Some(f) => {
                        // The relay lost acknowledged entries (restored from
                        // an older backup while this session was open).
                        self.heal_relay(store, *expected, f - 1)?;
                    }
                    None => self.push_wanted = true,
                }
            }
            (Req::Push { .. }, ErrorCode::QuotaRate { retry_after_ms, .. }) => {
                self.push_retry_at_ms = Some(self.now_ms + retry_after_ms.max(&100));
                self.events.push_back(RelayEvent::RateLimited {
                    retry_after_ms: *retry_after_ms,
                });
            }
            (Req::GetSnapshot, ErrorCode::SnapshotChanged) => {
                // Replaced under us: start over (bounded).
                self.download = None;
                self.download_target = None;
                self.install_candidates.clear();
                if std::mem::take(&mut self.download_verify_only) {
                    self.snapshot_wanted = false;
                    return Ok(());
                }
                self.snapshot_restarts += 1;
                if self.snapshot_restarts > SNAPSHOT_RESTARTS_MAX {
                    return Err(RelaySyncError::Relay { code, message });
                }
                self.snapshot_wanted = true;
            }
            (
                Req::SnapshotPart { .. } | Req::CommitSnapshot { .. },
                ErrorCode::SnapshotStale
                | ErrorCode::SnapshotInvalid
                | ErrorCode::SnapshotUploadIncomplete { .. }
                | ErrorCode::TooLarge { .. }
                | ErrorCode::QuotaBytes { .. },
            ) => {
                // Abandon the upload (the relay garbage-collects its parts);
                // answers to parts still in flight are then ignored.
                if self.upload.take().is_some() {
                    self.events.push_back(RelayEvent::SnapshotSkipped {
                        reason: format!("relay said {}: {message}", code.name()),
                    });
                }
            }
            (Req::PutSnapshot { .. }, ErrorCode::SnapshotStale | ErrorCode::SnapshotInvalid) => {
                self.events.push_back(RelayEvent::SnapshotSkipped {
                    reason: format!("relay said {}: {message}", code.name()),
                });
            }
            (
                Req::PutSnapshot { .. },
                ErrorCode::TooLarge { .. } | ErrorCode::QuotaBytes { .. },
            ) => {
                self.events.push_back(RelayEvent::SnapshotSkipped {
                    reason: format!("relay said {}: {message}", code.name()),
                });
            }
            (Req::Heads, _) => {
                self.heads_wanted = false;
                return Err(RelaySyncError::Relay { code, message });
            }
            _ => return Err(RelaySyncError::Relay { code, message }),
        }
        Ok(())
    }

    fn drive(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        if self.phase != Phase::Ready {
            return Ok(());
        }
        while let Some((body, kind)) = self.queued.pop_front() {
            self.send(body, kind);
        }
        // The membership log first: nothing is sealed or opened under an
        // epoch this device has not verified.
        if self.membership_wanted || self.has_inflight(|r| *r == Req::GetMembership) {
            if !self.has_inflight(|r| *r == Req::GetMembership) {
                let after = membership::state(store, self.id.account_id())?.len();
                self.send(Request::GetMembership { after }, Req::GetMembership);
                self.membership_wanted = false;
            }
            return Ok(());
        }
        if !self.intents.is_empty() && !self.has_inflight(|r| *r == Req::AppendMembership) {
            let made = self.make_op(store);
            if made.is_err() {
                // The change no longer makes sense on the new head (target
                // gone, this device no member): drop it, report why.
                self.intents.pop_front();
            }
            if let Some(op) = made? {
                self.sent_op = Some(op.clone());
                self.send(
                    Request::AppendMembership { ops: vec![op] },
                    Req::AppendMembership,
                );
            }
        }
        // Only once the relay's head of our log is known (entries it holds
        // are acknowledged first, never re-sealed into a fork).
        if self.reseal_wanted
            && self.own_head_known
            && !self.has_inflight(|r| matches!(r, Req::Push { .. }))
        {
            self.reseal_outbox(store)?;
            self.reseal_wanted = false;
        }
        let snap_inflight = self.has_inflight(|r| matches!(r, Req::GetSnapshot | Req::Snapshots));
        if self.snapshot_wanted
            && !snap_inflight
            && !self.has_inflight(|r| *r == Req::Pull)
            && self.download.is_none()
            && self.download_target.is_none()
        {
            // Which snapshots the relay holds first: the pending one may be
            // one nobody can open; the confirmed one and the log are the fallbacks.
            self.send(Request::Snapshots, Req::Snapshots);
        } else if self.snapshot_wanted && !snap_inflight && !self.has_inflight(|r| *r == Req::Pull)
        {
            if self.version >= 2 {
                let (snapshot_id, offset) = match &self.download {
                    Some(d) => (Some(d.id), d.snapshot.ciphertext.len() as u64),
                    None => (self.download_target.as_ref().map(|t| t.snapshot_id), 0),
                };
                let bytes_max = u32::try_from(self.frame_bytes_max).unwrap_or(u32::MAX);
                self.send(
                    Request::GetSnapshotRange {
                        snapshot_id,
                        offset,
                        bytes_max,
                    },
                    Req::GetSnapshot,
                );
            } else {
                self.send(Request::GetSnapshot, Req::GetSnapshot);
            }
        } else if self.pull_wanted
            && !self.snapshot_wanted
            && !snap_inflight
            && !self.has_inflight(|r| *r == Req::Pull)
        {
            let cursors = self.pull_cursors(store)?;
            self.send(
                Request::Pull {
                    cursors,
                    entries_max: self.cfg.pull_entries_max,
                    bytes_max: self.cfg.pull_bytes_max,
                },
                Req::Pull,
            );
        }
        if self.push_wanted
            && self.own_head_known
            && self.push_retry_at_ms.is_none()
            && !self.has_inflight(|r| matches!(r, Req::Push { .. }))
        {
            self.push(store)?;
        }
        self.pump_upload();
        if self.initial_pull_done
            && !self.pull_wanted
            && !self.snapshot_wanted
            && !self.has_inflight(|r| matches!(r, Req::Pull | Req::Refetch { .. }))
        {
            if self.refetch.is_none() {
                let st = read_status(store)?;
                self.refetch = Some(
                    st.quarantined
                        .iter()
                        .filter(|q| q.seq > 0)
                        .map(|q| (q.device, q.seq))
                        .take(REFETCH_PER_CONNECTION_MAX)
                        .collect(),
                );
            }
            if let Some((device, seq)) = self.refetch.as_mut().and_then(VecDeque::pop_front) {
                let mut cursors = self.pull_cursors(store)?;
                match cursors.iter_mut().find(|c| c.device == device) {
                    Some(c) => c.seq = seq - 1,
                    None => cursors.push(Cursor {
                        device,
                        seq: seq - 1,
                    }),
                }
                self.send(
                    Request::Pull {
                        cursors,
                        entries_max: 16,
                        bytes_max: self.cfg.pull_bytes_max,
                    },
                    Req::Refetch { device, seq },
                );
            }
        }
        if self.snapshot_check_wanted
            && !self.snapshot_wanted
            && !self.has_inflight(|r| *r == Req::Snapshots)
        {
            self.send(Request::Snapshots, Req::Snapshots);
        }
        let busy = self.has_inflight(|r| !matches!(r, Req::Subscribe | Req::Heads));
        if self.heads_wanted
            && !busy
            && !self.pull_wanted
            && !self.push_wanted
            && self.initial_pull_done
            && !self.has_inflight(|r| *r == Req::Heads)
        {
            self.send(Request::Heads, Req::Heads);
        }
        if !self.own_head_known && !self.has_inflight(|r| *r == Req::Heads) {
            self.send(Request::Heads, Req::Heads);
        }
        if self.is_idle() && !self.idle_reported {
            self.idle_reported = true;
            self.events.push_back(RelayEvent::RoundComplete);
        }
        Ok(())
    }
}

fn msg_name(m: &ServerMsg) -> &'static str {
    match m {
        ServerMsg::Error { .. } => "Error",
        ServerMsg::Welcome { .. } => "Welcome",
        ServerMsg::AuthOk { .. } => "AuthOk",
        ServerMsg::Response { .. } => "Response",
        ServerMsg::Event(_) => "Event",
    }
}

/// Why a mailbox take failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// The relay is not the one the invitation names: a wrong address or an impostor.
    #[error("the relay presented key {got}, but the invitation names relay {expected}")]
    WrongRelay {
        /// The key in the invitation.
        expected: RelayKey,
        /// The key presented.
        got: RelayKey,
    },
    /// Nothing at the slot (yet, already taken, expired, or never made).
    #[error("nothing at this mailbox slot (not yet there, already taken, expired, or never made)")]
    NotFound,
    /// The slot holds another blob already (someone else used the token).
    #[error("this mailbox slot is taken already")]
    Taken,
    /// The relay refused the request.
    #[error("the relay refused ({}): {message}", code.name())]
    Relay {
        /// The relay's error code.
        code: ErrorCode,
        /// The relay's message.
        message: String,
    },
    /// The relay answered out of turn or with the wrong message.
    #[error("protocol violation by the relay: {0}")]
    Protocol(String),
}

/// One unauthenticated mailbox exchange (pairing): `Hello`, then take the
/// blob at a slot, or leave a small one there. A put's result is an empty
/// blob.
#[derive(Debug)]
pub struct MailboxTake {
    relay: RelayKey,
    request: Request,
    out: VecDeque<ClientMsg>,
    result: Option<Result<Vec<u8>, MailboxError>>,
}

impl MailboxTake {
    /// A take from the relay with key `relay` at `slot`; starts with `Hello`.
    pub fn new(relay: RelayKey, slot: MailboxSlot) -> Self {
        Self::with(relay, Request::MailboxTake { slot })
    }

    /// A put of `blob` at `slot` for `ttl_s` seconds.
    pub fn put(relay: RelayKey, slot: MailboxSlot, blob: Vec<u8>, ttl_s: u32) -> Self {
        Self::with(relay, Request::MailboxPut { slot, blob, ttl_s })
    }

    fn with(relay: RelayKey, request: Request) -> Self {
        let mut out = VecDeque::new();
        out.push_back(ClientMsg::Hello {
            versions: PROTOCOL_VERSIONS.to_vec(),
        });
        Self {
            relay,
            request,
            out,
            result: None,
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<ClientMsg> {
        self.out.pop_front()
    }

    /// The outcome, once known.
    pub fn result(&mut self) -> Option<Result<Vec<u8>, MailboxError>> {
        self.result.take()
    }

    /// Feeds one message from the relay.
    pub fn handle(&mut self, msg: ServerMsg) {
        let r = match msg {
            ServerMsg::Welcome { relay, .. } if relay != self.relay => {
                Some(Err(MailboxError::WrongRelay {
                    expected: self.relay,
                    got: relay,
                }))
            }
            ServerMsg::Welcome { .. } => {
                self.out.push_back(ClientMsg::Request {
                    id: 1,
                    body: self.request.clone(),
                });
                None
            }
            ServerMsg::Response {
                id: 1,
                body: Response::MailboxBlob { blob },
            } => Some(Ok(blob)),
            ServerMsg::Response {
                id: 1,
                body: Response::MailboxStored,
            } => Some(Ok(Vec::new())),
            ServerMsg::Error {
                code: ErrorCode::MailboxNotFound,
                ..
            } => Some(Err(MailboxError::NotFound)),
            ServerMsg::Error {
                code: ErrorCode::MailboxTaken,
                ..
            } => Some(Err(MailboxError::Taken)),
            ServerMsg::Error { code, message, .. } => {
                Some(Err(MailboxError::Relay { code, message }))
            }
            other => Some(Err(MailboxError::Protocol(format!(
                "unexpected {}",
                msg_name(&other)
            )))),
        };
        if r.is_some() {
            self.result = r;
        }
    }
}
