//! The relay log client, sans-IO.
//!
//! Data flow (docs/SYNC.md):
//! - connect: `Hello` -> `Welcome` (the relay key must be the pinned one) ->
//!   `Auth` (device certificate + signature over the challenge) -> `AuthOk`,
//!   then `Subscribe`, a `Heads` check, an optional snapshot fetch (a device
//!   that has never pulled starts from the newest snapshot), a pull loop, and
//!   a push loop;
//! - push: this device's own changes per document since the "pushed heads"
//!   are compressed, split into bodies of at most 256 KiB, sealed with
//!   consecutive seqs and written to the redb outbox together with the new
//!   pushed heads and `next_seq` in ONE transaction, and only then sent. The
//!   outbox row is deleted when the relay acknowledges it, so a crash between
//!   sealing and acknowledgement re-sends byte-identical entries: a seq is
//!   never skipped or forked;
//! - pull and live events: every entry is verified (device signature,
//!   certificate chain to this account), decrypted and applied through
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
//! - progress: long transfers (snapshot down/up, pulls) report
//!   [`RelayEvent::Progress`] with what moved of the total when known.
//!
//! Timers out: [`RelaySync::poll_timeout`] (a rate-limited push retry);
//! liveness of the connection is the transport's job (QUIC keep-alive).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::{Change, ChangeHash};
use kith_protocol::envelope::Cursor;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    ClientMsg, DeviceCert, DeviceId, ErrorCode, Event, PROTOCOL_VERSION, PROTOCOL_VERSIONS,
    RelayKey, Request, Response, Revocation, SealedEntry, SealedSnapshot, ServerMsg, sign_auth,
};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::identity::DeviceIdentity;
use super::payload::{self, EntryBody, OpenError, PAYLOAD_VERSION, SnapshotPayload};
use super::tables::{self, Partial};
use crate::doc::DocId;
use crate::error::StoreError;
use crate::identity::CryptoError;
use crate::store::Store;

/// Most snapshot parts uploaded without their acknowledgement.
pub const UPLOAD_PARTS_INFLIGHT_MAX: usize = 4;
/// Largest snapshot ciphertext this client downloads, bytes.
pub const SNAPSHOT_DOWNLOAD_BYTES_MAX: u64 = 1 << 30;
/// Times a ranged download restarts because the relay's snapshot changed
/// under it before the client gives up for this connection.
const SNAPSHOT_RESTARTS_MAX: u32 = 8;
/// Frame bytes a snapshot part request needs besides its bytes.
const PART_OVERHEAD_BYTES: usize = 4096;

/// Tunables of the relay client; defaults suit a phone and a laptop.
#[derive(Debug, Clone)]
pub struct RelayConfig {
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

impl Default for RelayConfig {
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
    /// This device's snapshot was stored; the relay pruned the entries it covers.
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
    /// The relay dropped live events; a pull catches up.
    Lagged,
    /// The relay slowed pushes down; the machine retries by itself.
    RateLimited {
        /// How long the relay asked to wait.
        retry_after_ms: u64,
    },
    /// The relay confirmed a revocation this device sent.
    Revoked {
        /// The revoked device.
        device: DeviceId,
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
    /// An entry failed verification; it is not applied and the cursor stays.
    #[error("entry {device}/{seq} was refused: {reason}")]
    BadEntry {
        /// The device that wrote it, by the envelope.
        device: DeviceId,
        /// Its sequence number.
        seq: u64,
        /// Why it was refused.
        reason: OpenError,
    },
    /// An entry opened but names a document id that is not valid; not applied.
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
    /// The relay has fewer of this device's entries than it acknowledged.
    #[error(
        "the relay expects seq {expected} but this device's unacknowledged entries start at {first}: the relay lost data"
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
    Revoke(DeviceId),
    MailboxPut,
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
    cfg: RelayConfig,
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
    /// The relay's per-device heads from its last `Heads` answer.
    remote_heads: Vec<Cursor>,
    pulled_entries: u64,
    pulled_bytes: u64,
}

fn decode_entry(bytes: &[u8]) -> Result<SealedEntry, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| tables::damaged("sync_outbox", e))
}

/// Opens the sync tables and binds the log state to `relay`: if the store's
/// log state belongs to another relay, it is reset (a new relay starts with
/// an empty log, so everything is pushed again under fresh seqs).
fn bind_relay(store: &mut Store, relay: &RelayKey) -> Result<(), StoreError> {
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    let current = txn
        .open_table(tables::META)?
        .get(tables::META_RELAY)?
        .map(|v| v.value().to_vec());
    if current.as_deref() != Some(relay.as_bytes().as_slice()) {
        if current.is_some() {
            txn.open_table(tables::OUTBOX)?.retain(|_, _| false)?;
            txn.open_table(tables::PUSHED_HEADS)?.retain(|_, _| false)?;
            txn.open_table(tables::CURSORS)?.retain(|_, _| false)?;
            txn.open_table(tables::PARTIAL)?.retain(|_, _| false)?;
            tables::put_u64(&txn, tables::META_NEXT_SEQ, 0)?;
            tables::put_u64(&txn, tables::META_ACKED_SEQ, 0)?;
            tables::put_u64(&txn, tables::META_OWN_CATCHUP_SEQ, 0)?;
        }
        txn.open_table(tables::META)?
            .insert(tables::META_RELAY, relay.as_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Durable sync position of this store (for `kith sync` output and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The relay this store syncs with; `None` before the first relay sync.
    pub relay: Option<RelayKey>,
    /// Seq the next sealed entry gets minus one.
    pub sealed_seq: u64,
    /// Highest seq of this device the relay acknowledged.
    pub acked_seq: u64,
    /// Sealed entries waiting to be pushed.
    pub outbox_entries: u64,
    /// Received changes waiting for their dependencies.
    pub pending_changes: u64,
    /// Received fragments waiting for the rest of their entry.
    pub partial_entries: u64,
    /// Per device, the last seq this store holds (pulled, or covered by a snapshot).
    pub cursors: Vec<Cursor>,
    /// Non-zero once a restored store started pulling its own device's
    /// entries, up to this seq (`sync_meta.own_catchup_seq`).
    pub own_catchup_seq: u64,
}

/// Reads the durable sync position.
pub fn sync_status(store: &mut Store) -> Result<SyncStatus, StoreError> {
    {
        let txn = store.writable()?.begin_write()?;
        tables::create(&txn)?;
        txn.commit()?;
    }
    read_status(store)
}

/// [`sync_status`] for a store whose sync tables exist (a [`RelaySync`]
/// created them): a read transaction only, no durable commit per call.
fn read_status(store: &mut Store) -> Result<SyncStatus, StoreError> {
    let txn = store.writable()?.begin_read()?;
    let meta = txn.open_table(tables::META)?;
    let u = |k: &str| -> Result<u64, StoreError> {
        Ok(match meta.get(k)? {
            Some(v) => <[u8; 8]>::try_from(v.value())
                .map(u64::from_be_bytes)
                .unwrap_or(0),
            None => 0,
        })
    };
    let relay = meta
        .get(tables::META_RELAY)?
        .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
        .map(RelayKey);
    let mut cursors = Vec::new();
    for row in txn.open_table(tables::CURSORS)?.iter()? {
        let (k, v) = row?;
        if let Ok(d) = <[u8; 32]>::try_from(k.value()) {
            cursors.push(Cursor {
                device: DeviceId(d),
                seq: v.value(),
            });
        }
    }
    Ok(SyncStatus {
        relay,
        sealed_seq: u(tables::META_NEXT_SEQ)?.saturating_sub(1),
        acked_seq: u(tables::META_ACKED_SEQ)?,
        outbox_entries: txn.open_table(tables::OUTBOX)?.len()?,
        pending_changes: txn.open_table(tables::PENDING)?.len()?,
        partial_entries: txn.open_table(tables::PARTIAL)?.len()?,
        cursors,
        own_catchup_seq: u(tables::META_OWN_CATCHUP_SEQ)?,
    })
}

/// One merge step: changes for one document plus the sync bookkeeping that
/// must commit with them.
#[derive(Debug, Default)]
struct Step {
    doc: Option<DocId>,
    changes: Vec<Vec<u8>>,
    cursors: Vec<(DeviceId, u64)>,
    partials: Vec<(DeviceId, Option<Partial>)>,
    certs: Vec<DeviceCert>,
}

fn write_bookkeeping(
    txn: &WriteTransaction,
    cursors: &[(DeviceId, u64)],
    partials: &[(DeviceId, Option<Partial>)],
    certs: &[DeviceCert],
    now_ms: u64,
) -> Result<(), StoreError> {
    for (d, s) in cursors {
        tables::set_cursor(txn, d, *s)?;
    }
    if !partials.is_empty() {
        let mut t = txn.open_table(tables::PARTIAL)?;
        for (d, p) in partials {
            match p {
                Some(p) => {
                    let b =
                        postcard::to_allocvec(p).map_err(|e| tables::damaged("sync_partial", e))?;
                    t.insert(d.as_bytes().as_slice(), b.as_slice())?;
                }
                None => {
                    t.remove(d.as_bytes().as_slice())?;
                }
            }
        }
    }
    for c in certs {
        tables::touch_device(txn, c, now_ms)?;
    }
    Ok(())
}

/// Records that this device has no changes of its own to push in `docs` up
/// to the given heads: documents that held only their genesis and received
/// everything from the relay (a bootstrap). Without it the next push would
/// rebuild every change of their history to look for this device's own
/// ones. Only an optimisation hint for `seal_new`: losing it (a crash
/// before this commit) just costs that scan.
fn mark_pushed(store: &mut Store, docs: &[(DocId, Vec<ChangeHash>)]) -> Result<(), StoreError> {
    if docs.is_empty() {
        return Ok(());
    }
    let txn = store.writable()?.begin_write()?;
    {
        let mut t = txn.open_table(tables::PUSHED_HEADS)?;
        for (doc, heads) in docs {
            let name = doc.to_string();
            // Never move a document's pushed heads that this device set itself.
            if t.get(name.as_str())?.is_none() {
                t.insert(name.as_str(), tables::heads_to_bytes(heads).as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Outcome of [`apply_with_pending`].
pub(crate) struct Merged {
    pub(crate) applied: crate::store::RemoteApplied,
    pub(crate) pending: usize,
}

/// Merges `new` changes (plus any pending ones of the document) into `doc`:
/// changes whose dependencies are all present are applied; the rest are kept
/// in the pending table, in the same transaction as the merge and `extra`.
pub(crate) fn apply_with_pending(
    store: &mut Store,
    doc: DocId,
    new: Vec<Vec<u8>>,
    extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
) -> Result<Merged, StoreError> {
    store.ensure_loaded(doc)?;
    if !store.docs.contains_key(&doc) {
        // Materialise the document (its deterministic genesis) so the
        // dependency check below sees the genesis change.
        store.apply_remote_changes(doc, &[], |_| Ok(()))?;
    }
    let name = doc.to_string();
    let mut candidates: Vec<(ChangeHash, Vec<ChangeHash>, Vec<u8>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut had_pending = false;
    {
        let txn = store.read_txn()?;
        if let Ok(t) = txn.open_table(tables::PENDING) {
            for row in t.range((name.as_str(), [].as_slice())..)? {
                let (k, v) = row?;
                if k.value().0 != name {
                    break;
                }
                had_pending = true;
                let bytes = v.value().to_vec();
                if let Ok(c) = Change::from_bytes(bytes.clone())
                    && seen.insert(c.hash())
                {
                    candidates.push((c.hash(), c.deps().to_vec(), bytes));
                }
            }
        }
    }
    for (index, bytes) in new.into_iter().enumerate() {
        let c = Change::from_bytes(bytes.clone()).map_err(|e| StoreError::BadChange {
            doc: name.clone(),
            index,
            detail: e.to_string(),
        })?;
        if seen.insert(c.hash()) {
            candidates.push((c.hash(), c.deps().to_vec(), bytes));
        }
    }
    let Some(l) = store.docs.get_mut(&doc) else {
        return Err(StoreError::UnknownDoc(name));
    };
    // Fixpoint: a change is ready when each dependency is in the document or ready.
    let mut ready: HashSet<ChangeHash> = HashSet::new();
    let mut present: HashMap<ChangeHash, bool> = HashMap::new();
    loop {
        let mut progressed = false;
        for (h, deps, _) in &candidates {
            if ready.contains(h) {
                continue;
            }
            let ok = deps.iter().all(|d| {
                ready.contains(d)
                    || *present
                        .entry(*d)
                        .or_insert_with(|| l.doc.get_change_by_hash(d).is_some())
            });
            if ok {
                ready.insert(*h);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let mut apply = Vec::new();
    let mut waiting = Vec::new();
    for (h, _, bytes) in candidates {
        if ready.contains(&h) {
            apply.push(bytes);
        } else {
            waiting.push((h, bytes));
        }
    }
    let pending = waiting.len();
    let applied = store.apply_remote_changes(doc, &apply, |txn| {
        if had_pending || !waiting.is_empty() {
            let mut t = txn.open_table(tables::PENDING)?;
            t.retain_in(
                (name.as_str(), [].as_slice())..=(name.as_str(), [0xffu8; 33].as_slice()),
                |_, _| false,
            )?;
            for (h, bytes) in &waiting {
                t.insert((name.as_str(), h.0.as_slice()), bytes.as_slice())?;
            }
        }
        extra(txn)
    })?;
    Ok(Merged { applied, pending })
}

/// Compresses raw changes for the wire (`Change::bytes`).
pub(crate) fn compress(raw: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    raw.into_iter()
        .map(|b| match Change::from_bytes(b.clone()) {
            Ok(mut c) => c.bytes().into_owned(),
            Err(_) => b,
        })
        .collect()
}

impl RelaySync {
    /// A client for one connection to `relay`; queues `Hello`.
    pub fn new(
        store: &mut Store,
        id: DeviceIdentity,
        relay: RelayKey,
        cfg: RelayConfig,
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
            remote_heads: Vec::new(),
            pulled_entries: 0,
            pulled_bytes: 0,
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

    /// Queues a revocation for the relay (sent once authenticated).
    pub fn revoke(&mut self, store: &mut Store, r: Revocation) -> Result<(), RelaySyncError> {
        let d = r.device;
        self.queued
            .push_back((Request::Revoke { revocation: r }, Req::Revoke(d)));
        self.idle_reported = false;
        self.drive(store)
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
                self.out.push_back(ClientMsg::Auth {
                    cert: self.id.cert().clone(),
                    signature,
                    token: self.cfg.registration_token.clone(),
                });
                self.phase = Phase::AuthSent;
            }
            (Phase::AuthSent, ServerMsg::AuthOk { registered, .. }) => {
                self.phase = Phase::Ready;
                self.events
                    .push_back(RelayEvent::Authenticated { registered });
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
                self.receive(store, entries, false)?;
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
            (Req::Revoke(device), Response::Revoked) => {
                super::devices::mark_revoked(store, &device, self.now_ms)?;
                self.events.push_back(RelayEvent::Revoked { device });
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
            (Req::Pull, ErrorCode::SnapshotNeeded) => {
                self.snapshot_wanted = true;
                self.pull_wanted = true;
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
                        return Err(RelaySyncError::RelayBehind {
                            expected: *expected,
                            first: f,
                        });
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

    fn outbox_first(&self, store: &mut Store) -> Result<Option<u64>, StoreError> {
        let txn = store.read_txn()?;
        let t = txn.open_table(tables::OUTBOX)?;
        Ok(t.first()?.map(|(k, _)| k.value()))
    }

    fn ack(&mut self, store: &mut Store, seq: u64) -> Result<(), StoreError> {
        let txn = store.writable()?.begin_write()?;
        txn.open_table(tables::OUTBOX)?
            .retain_in(0..=seq, |_, _| false)?;
        let acked = tables::get_u64(&txn, tables::META_ACKED_SEQ)?;
        if seq > acked {
            tables::put_u64(&txn, tables::META_ACKED_SEQ, seq)?;
        }
        let next = tables::get_u64(&txn, tables::META_NEXT_SEQ)?;
        if next <= seq {
            tables::put_u64(&txn, tables::META_NEXT_SEQ, seq + 1)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn on_heads(
        &mut self,
        store: &mut Store,
        heads: &[Cursor],
        floors: &[Cursor],
    ) -> Result<(), RelaySyncError> {
        let me = self.id.device_id();
        self.remote_heads = heads.to_vec();
        let st = read_status(store)?;
        let my_head = heads.iter().find(|c| c.device == me).map_or(0, |c| c.seq);
        if !self.own_head_known {
            self.own_head_known = true;
            if st.sealed_seq < my_head {
                // This store is new but the device key pushed before (restored
                // keys): continue after the relay's head instead of forking,
                // fetch the device's own entries (they may hold changes made
                // after the backup) and re-seal everything the store holds
                // once (changes made before the backup under the former store
                // actor may never have been pushed).
                let txn = store.writable()?.begin_write()?;
                tables::put_u64(&txn, tables::META_NEXT_SEQ, my_head + 1)?;
                tables::put_u64(&txn, tables::META_ACKED_SEQ, my_head)?;
                tables::put_u64(&txn, tables::META_OWN_CATCHUP_SEQ, my_head)?;
                tables::put_u64(&txn, tables::META_SEAL_ALL_ACTORS, 1)?;
                txn.commit().map_err(StoreError::from)?;
                self.pull_wanted = true;
            }
            self.push_wanted = true;
            return Ok(());
        }
        let floor = |d: &DeviceId| floors.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
        let tail: u64 = heads
            .iter()
            .map(|c| c.seq.saturating_sub(floor(&c.device)))
            .sum();
        let worth = tail >= self.cfg.snapshot_tail_entries_min
            || (self.session_bytes >= self.cfg.snapshot_tail_bytes_min && tail >= 2);
        if !worth || self.upload.is_some() {
            return Ok(());
        }
        // Only a fully caught-up device may cover the log: every entry up to
        // the relay's heads is in its documents.
        let cursor = |d: &DeviceId| {
            if *d == me {
                st.acked_seq
            } else {
                st.cursors
                    .iter()
                    .find(|c| c.device == *d)
                    .map_or(0, |c| c.seq)
            }
        };
        let caught_up = heads.iter().all(|h| cursor(&h.device) >= h.seq);
        if !caught_up
            || st.pending_changes > 0
            || st.partial_entries > 0
            || st.outbox_entries > 0
            || self.pull_wanted
        {
            self.events.push_back(RelayEvent::SnapshotSkipped {
                reason: "not fully caught up with the relay".into(),
            });
            return Ok(());
        }
        let covers: Vec<Cursor> = heads.iter().filter(|h| h.seq > 0).copied().collect();
        let snapshot = self.build_snapshot(store, covers)?;
        let size = postcard::experimental::serialized_size(&snapshot).unwrap_or(usize::MAX);
        if size + 64 > self.frame_bytes_max {
            if self.version >= 2 {
                self.start_upload(snapshot);
            } else {
                self.events.push_back(RelayEvent::SnapshotSkipped {
                    reason: format!(
                        "snapshot of {size} bytes exceeds the relay's frame limit of {} bytes (and the relay speaks protocol 1: no fragmented upload)",
                        self.frame_bytes_max
                    ),
                });
            }
            return Ok(());
        }
        self.send(
            Request::PutSnapshot { snapshot },
            Req::PutSnapshot { bytes: size },
        );
        Ok(())
    }

    /// Cuts a snapshot too large for one frame into parts and starts
    /// sending them ([`RelaySync::pump_upload`] keeps it going).
    fn start_upload(&mut self, mut snapshot: SealedSnapshot) {
        let part_bytes = self
            .frame_bytes_max
            .saturating_sub(PART_OVERHEAD_BYTES)
            .max(1);
        let ciphertext = std::mem::take(&mut snapshot.ciphertext);
        let total_bytes = ciphertext.len() as u64;
        let count = ciphertext.len().div_ceil(part_bytes);
        let Some(count) = u32::try_from(count)
            .ok()
            .filter(|c| *c <= kith_protocol::msg::SNAPSHOT_PARTS_MAX)
        else {
            self.events.push_back(RelayEvent::SnapshotSkipped {
                reason: format!("snapshot of {total_bytes} bytes needs too many parts"),
            });
            return;
        };
        let parts: VecDeque<(u32, Vec<u8>)> = ciphertext
            .chunks(part_bytes)
            .zip(0u32..)
            .map(|(p, i)| (i, p.to_vec()))
            .collect();
        // A stable id per snapshot: a re-sent part of the same upload
        // replaces itself at the relay instead of starting over.
        let sig = snapshot.signature.to_bytes();
        let mut id8 = [0u8; 8];
        id8.copy_from_slice(&sig[..8]);
        self.upload = Some(Upload {
            id: u64::from_le_bytes(id8),
            header: snapshot,
            parts,
            count,
            acked: 0,
            total_bytes,
            acked_bytes: 0,
        });
        self.pump_upload();
    }

    /// Sends the next parts (bounded in flight), then the commit.
    fn pump_upload(&mut self) {
        let inflight = self
            .inflight
            .values()
            .filter(|r| matches!(r, Req::SnapshotPart { .. } | Req::CommitSnapshot { .. }))
            .count();
        let Some(u) = self.upload.as_mut() else {
            return;
        };
        let mut sends = Vec::new();
        let mut room = UPLOAD_PARTS_INFLIGHT_MAX.saturating_sub(inflight);
        while room > 0
            && let Some((index, bytes)) = u.parts.pop_front()
        {
            room -= 1;
            let n = bytes.len();
            sends.push((
                Request::PutSnapshotPart {
                    upload: u.id,
                    index,
                    count: u.count,
                    bytes,
                },
                Req::SnapshotPart { bytes: n },
            ));
        }
        if inflight == 0 && sends.is_empty() && u.parts.is_empty() && u.acked >= u.count {
            let bytes = usize::try_from(u.total_bytes).unwrap_or(usize::MAX);
            sends.push((
                Request::CommitSnapshot {
                    upload: u.id,
                    snapshot: u.header.clone(),
                },
                Req::CommitSnapshot { bytes },
            ));
        }
        for (body, kind) in sends {
            self.send(body, kind);
        }
    }

    /// Entries the relay holds after this device's cursors (from the last
    /// `Heads`), if known; 0 when the pull finished.
    fn pull_remaining(&self, store: &mut Store, more: bool) -> Result<Option<u64>, StoreError> {
        if !more {
            return Ok(Some(0));
        }
        if self.remote_heads.is_empty() {
            return Ok(None);
        }
        let cursors = self.pull_cursors(store)?;
        let at = |d: &DeviceId| cursors.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
        Ok(Some(
            self.remote_heads
                .iter()
                .map(|h| h.seq.saturating_sub(at(&h.device)))
                .sum(),
        ))
    }

    /// One range of the relay's snapshot arrived: keep it, ask for the next,
    /// or (complete) verify and apply the whole.
    fn on_snapshot_range(
        &mut self,
        store: &mut Store,
        snapshot: Option<SealedSnapshot>,
        snapshot_id: [u8; 32],
        total_bytes: u64,
        offset: u64,
    ) -> Result<(), RelaySyncError> {
        let Some(part) = snapshot else {
            self.download = None;
            self.snapshot_wanted = false;
            self.pull_wanted = true;
            return Ok(());
        };
        if total_bytes > SNAPSHOT_DOWNLOAD_BYTES_MAX {
            return Err(RelaySyncError::BadSnapshot(format!(
                "the relay's snapshot has {total_bytes} bytes, more than {SNAPSHOT_DOWNLOAD_BYTES_MAX}"
            )));
        }
        let have = self
            .download
            .as_ref()
            .map_or(0, |d| d.snapshot.ciphertext.len() as u64);
        let fits = match &self.download {
            None => offset == 0,
            Some(d) => d.id == snapshot_id && d.total_bytes == total_bytes && offset == have,
        };
        let grows = !part.ciphertext.is_empty() || total_bytes == 0;
        if !fits || !grows || have + part.ciphertext.len() as u64 > total_bytes {
            return Err(RelaySyncError::Protocol(format!(
                "snapshot range at {offset} (+{}) does not continue the download at {have} of {total_bytes}",
                part.ciphertext.len()
            )));
        }
        let d = match self.download.take() {
            Some(mut d) => {
                d.snapshot.ciphertext.extend_from_slice(&part.ciphertext);
                d
            }
            None => Download {
                id: snapshot_id,
                total_bytes,
                snapshot: part,
            },
        };
        let done = d.snapshot.ciphertext.len() as u64;
        self.events.push_back(RelayEvent::Progress {
            transfer: Transfer::SnapshotDownload,
            done_bytes: done,
            total_bytes: Some(total_bytes),
            done_entries: 0,
            total_entries: None,
        });
        if done < total_bytes {
            self.download = Some(d);
            self.snapshot_wanted = true;
            return Ok(());
        }
        self.snapshot_wanted = false;
        self.apply_snapshot(store, &d.snapshot)?;
        self.pull_wanted = true;
        Ok(())
    }

    fn build_snapshot(
        &mut self,
        store: &mut Store,
        covers: Vec<Cursor>,
    ) -> Result<SealedSnapshot, RelaySyncError> {
        store.load_all()?;
        let mut ids: Vec<DocId> = store.docs.keys().copied().collect();
        ids.sort();
        let mut docs = Vec::with_capacity(ids.len());
        for d in ids {
            if let Some(l) = store.docs.get_mut(&d) {
                docs.push((d.to_string(), l.doc.save()));
            }
        }
        let devices = super::devices::list_devices(store)?
            .into_iter()
            .map(|d| d.cert)
            .collect();
        let payload = SnapshotPayload {
            version: PAYLOAD_VERSION,
            cert: self.id.cert().clone(),
            devices,
            docs,
        };
        Ok(payload::seal_snapshot(&self.id, covers, &payload)?)
    }

    fn apply_snapshot(
        &mut self,
        store: &mut Store,
        s: &SealedSnapshot,
    ) -> Result<(), RelaySyncError> {
        let p = payload::open_snapshot(&self.id, s)
            .map_err(|e| RelaySyncError::BadSnapshot(e.to_string()))?;
        let mut certs = p.devices.clone();
        certs.push(p.cert.clone());
        certs.retain(|c| self.id.check_member(c).is_ok());
        let cursors: Vec<(DeviceId, u64)> = s.covers.iter().map(|c| (c.device, c.seq)).collect();
        let n = p.docs.len();
        let bytes: usize = p.docs.iter().map(|(_, save)| save.len()).sum();
        let now = self.now_ms;
        let mut docs = Vec::with_capacity(n);
        for (name, save) in p.docs {
            let doc: DocId = name
                .parse()
                .map_err(|_| RelaySyncError::BadSnapshot(format!("invalid document id {name}")))?;
            docs.push((doc, save));
        }
        // Documents, index, cursors (never lowered) and device records commit
        // together: a crash leaves either the old state or all of it.
        let installed = store
            .apply_snapshot_docs(docs, |txn| {
                write_bookkeeping(txn, &cursors, &[], &certs, now)
            })
            .map_err(|e| match e {
                StoreError::BadChange { doc, detail, .. } => {
                    RelaySyncError::BadSnapshot(format!("document {doc}: {detail}"))
                }
                StoreError::Schema(e) => RelaySyncError::BadSnapshot(e.to_string()),
                other => RelaySyncError::Store(other),
            })?;
        // Only documents that held nothing of this device: a replaced
        // document may contain its own changes that a peer passed on to the
        // snapshot's author and that this device has not pushed yet.
        let mut fresh = Vec::with_capacity(installed.fresh.len());
        for doc in &installed.fresh {
            fresh.push((*doc, store.heads(*doc)?));
        }
        mark_pushed(store, &fresh)?;
        for (doc, records) in installed.records {
            let (contacts, interactions) = match doc {
                DocId::Main => (records, 0),
                DocId::Log { .. } => (0, records),
            };
            self.events.push_back(RelayEvent::Applied {
                doc,
                contacts,
                interactions,
                pending: 0,
            });
        }
        self.events
            .push_back(RelayEvent::SnapshotApplied { docs: n, bytes });
        Ok(())
    }

    fn pull_cursors(&self, store: &mut Store) -> Result<Vec<Cursor>, StoreError> {
        let st = read_status(store)?;
        let me = self.id.device_id();
        let mut cursors = st.cursors;
        let own = cursors.iter().find(|c| c.device == me).map_or(0, |c| c.seq);
        // Catching up on its own log (a restored store): the own cursor is
        // where the pull stands, not what the relay acknowledged.
        let acked = if own < st.own_catchup_seq {
            own
        } else {
            st.acked_seq
        };
        match cursors.iter_mut().find(|c| c.device == me) {
            Some(c) => c.seq = c.seq.max(acked),
            None if acked > 0 => cursors.push(Cursor {
                device: me,
                seq: acked,
            }),
            None => {}
        }
        Ok(cursors)
    }

    /// Verifies and applies received entries in order; stops at a gap (and
    /// asks for a pull), skips duplicates.
    fn receive(
        &mut self,
        store: &mut Store,
        entries: Vec<SealedEntry>,
        live: bool,
    ) -> Result<(), RelaySyncError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Received bytes do not count toward a snapshot: a device that just
        // caught up should not pay for one (the pusher does, and the
        // entry-count rule covers everyone).
        let bytes: usize = entries.iter().map(|e| e.ciphertext.len()).sum();
        self.events.push_back(RelayEvent::Received {
            entries: entries.len(),
            bytes,
            live,
        });
        let mut cursors: HashMap<DeviceId, u64> = self
            .pull_cursors(store)?
            .into_iter()
            .map(|c| (c.device, c.seq))
            .collect();
        let mut partials: HashMap<DeviceId, Partial> = HashMap::new();
        {
            let txn = store.read_txn()?;
            for row in txn.open_table(tables::PARTIAL)?.iter()? {
                let (k, v) = row?;
                if let (Ok(d), Ok(p)) = (
                    <[u8; 32]>::try_from(k.value()),
                    postcard::from_bytes::<Partial>(v.value()),
                ) {
                    partials.insert(DeviceId(d), p);
                }
            }
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut blocked: HashSet<DeviceId> = HashSet::new();
        for e in entries {
            if blocked.contains(&e.device) {
                continue;
            }
            let cur = cursors.get(&e.device).copied().unwrap_or(0);
            if e.seq <= cur {
                continue;
            }
            if e.seq != cur + 1 {
                blocked.insert(e.device);
                self.pull_wanted = true;
                continue;
            }
            let p =
                payload::open_entry(&self.id, &e).map_err(|reason| RelaySyncError::BadEntry {
                    device: e.device,
                    seq: e.seq,
                    reason,
                })?;
            cursors.insert(e.device, e.seq);
            let mut step = Step {
                cursors: vec![(e.device, e.seq)],
                certs: vec![p.cert],
                ..Step::default()
            };
            let body = match p.body {
                EntryBody::Changes { doc, changes } => Some((doc, changes)),
                EntryBody::Fragment {
                    index,
                    count,
                    bytes,
                } => {
                    let mut part = match partials.remove(&e.device) {
                        Some(pt) if pt.next_index == index && pt.count == count => pt,
                        _ if index == 0 => Partial {
                            next_index: 0,
                            count,
                            bytes: Vec::new(),
                        },
                        _ => {
                            return Err(RelaySyncError::BadEntry {
                                device: e.device,
                                seq: e.seq,
                                reason: OpenError::Malformed(format!(
                                    "fragment {index}/{count} out of order"
                                )),
                            });
                        }
                    };
                    part.bytes.extend_from_slice(&bytes);
                    part.next_index = index + 1;
                    if part.next_index >= count {
                        step.partials.push((e.device, None));
                        match postcard::from_bytes::<EntryBody>(&part.bytes) {
                            Ok(EntryBody::Changes { doc, changes }) => Some((doc, changes)),
                            _ => {
                                return Err(RelaySyncError::BadEntry {
                                    device: e.device,
                                    seq: e.seq,
                                    reason: OpenError::Malformed(
                                        "fragments do not reassemble".into(),
                                    ),
                                });
                            }
                        }
                    } else {
                        step.partials.push((e.device, Some(part.clone())));
                        partials.insert(e.device, part);
                        None
                    }
                }
            };
            if let Some((doc, changes)) = body {
                let d: DocId = doc.parse().map_err(|_| RelaySyncError::BadDoc {
                    device: e.device,
                    seq: e.seq,
                    doc: doc.clone(),
                })?;
                step.doc = Some(d);
                step.changes = changes;
            }
            match steps.last_mut() {
                Some(last) if last.doc == step.doc || step.doc.is_none() => {
                    last.changes.extend(step.changes);
                    last.cursors.extend(step.cursors);
                    last.partials.extend(step.partials);
                    last.certs.extend(step.certs);
                }
                _ => steps.push(step),
            }
        }
        let now = self.now_ms;
        let mut fresh = Vec::new();
        for step in steps {
            match step.doc {
                Some(doc) => {
                    let m = apply_with_pending(store, doc, step.changes, |txn| {
                        write_bookkeeping(txn, &step.cursors, &step.partials, &step.certs, now)
                    })?;
                    if m.applied.fresh {
                        fresh.push((doc, m.applied.heads_after.clone()));
                    }
                    self.events.push_back(RelayEvent::Applied {
                        doc,
                        contacts: m.applied.contacts.len(),
                        interactions: m.applied.interactions.len(),
                        pending: m.pending,
                    });
                }
                None => {
                    let txn = store.writable()?.begin_write()?;
                    write_bookkeeping(&txn, &step.cursors, &step.partials, &step.certs, now)?;
                    txn.commit().map_err(StoreError::from)?;
                }
            }
        }
        mark_pushed(store, &fresh)?;
        self.heads_wanted = true;
        Ok(())
    }

    /// Seals this device's new changes into the outbox (one transaction).
    fn seal_new(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        let mut pushed: HashMap<String, Vec<ChangeHash>> = HashMap::new();
        {
            let txn = store.read_txn()?;
            for row in txn.open_table(tables::PUSHED_HEADS)?.iter()? {
                let (k, v) = row?;
                pushed.insert(k.value().to_string(), tables::heads_from_bytes(v.value())?);
            }
        }
        let mut bodies = Vec::new();
        let mut new_heads = Vec::new();
        let all_actors = {
            let txn = store.read_txn()?;
            let meta = txn.open_table(tables::META)?;
            meta.get(tables::META_SEAL_ALL_ACTORS)?
                .is_some_and(|v| v.value().iter().any(|b| *b != 0))
        };
        for doc in store.doc_ids()? {
            let name = doc.to_string();
            let base = pushed.get(&name).cloned().unwrap_or_default();
            let mine = if all_actors {
                store.changes_since(doc, &base)?
            } else {
                store.my_changes_since(doc, &base)?
            };
            let heads = store.heads(doc)?;
            if heads != base {
                new_heads.push((name.clone(), heads));
            }
            if !mine.is_empty() {
                bodies.extend(payload::bodies_for(&name, compress(mine)));
            }
        }
        if bodies.is_empty() && new_heads.is_empty() && !all_actors {
            return Ok(());
        }
        let txn = store.writable()?.begin_write()?;
        if all_actors {
            txn.open_table(tables::META)?
                .remove(tables::META_SEAL_ALL_ACTORS)?;
        }
        let mut next = tables::get_u64(&txn, tables::META_NEXT_SEQ)?.max(1);
        {
            let mut outbox = txn.open_table(tables::OUTBOX)?;
            for body in bodies {
                let e = payload::seal_entry(&self.id, next, body)?;
                let b = postcard::to_allocvec(&e).map_err(|e| tables::damaged("sync_outbox", e))?;
                outbox.insert(next, b.as_slice())?;
                next += 1;
            }
            let mut ph = txn.open_table(tables::PUSHED_HEADS)?;
            for (name, heads) in &new_heads {
                ph.insert(name.as_str(), tables::heads_to_bytes(heads).as_slice())?;
            }
        }
        tables::put_u64(&txn, tables::META_NEXT_SEQ, next)?;
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Sends the oldest outbox entries (sealing new ones first if it is empty).
    fn push(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        if self.outbox_first(store)?.is_none() {
            self.seal_new(store)?;
        }
        let budget = self
            .cfg
            .push_bytes_max
            .min(self.frame_bytes_max.saturating_sub(4096));
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        {
            let txn = store.read_txn()?;
            let t = txn.open_table(tables::OUTBOX)?;
            for row in t.iter()? {
                let (_, v) = row?;
                let e = decode_entry(v.value())?;
                let size = e.ciphertext.len() + 200;
                if !entries.is_empty()
                    && (bytes + size > budget
                        || entries.len() >= kith_protocol::msg::PUSH_ENTRIES_MAX)
                {
                    break;
                }
                bytes += size;
                entries.push(e);
            }
        }
        if entries.is_empty() {
            self.push_wanted = false;
            return Ok(());
        }
        let n = entries.len();
        let b: usize = entries.iter().map(|e| e.ciphertext.len()).sum();
        self.send(
            Request::Push { entries },
            Req::Push {
                entries: n,
                bytes: b,
            },
        );
        Ok(())
    }

    fn drive(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        if self.phase != Phase::Ready {
            return Ok(());
        }
        while let Some((body, kind)) = self.queued.pop_front() {
            self.send(body, kind);
        }
        let snap_inflight = self.has_inflight(|r| *r == Req::GetSnapshot);
        if self.snapshot_wanted && !snap_inflight && !self.has_inflight(|r| *r == Req::Pull) {
            if self.version >= 2 {
                let (snapshot_id, offset) = match &self.download {
                    Some(d) => (Some(d.id), d.snapshot.ciphertext.len() as u64),
                    None => (None, 0),
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
    /// Nothing at the slot; ask for a new invitation.
    #[error("no invitation at this relay for this token (already used, expired, or never made)")]
    NotFound,
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

/// The unauthenticated exchange a joining device runs: `Hello`, then take
/// the invitation blob from the mailbox slot.
#[derive(Debug)]
pub struct MailboxTake {
    relay: RelayKey,
    slot: MailboxSlot,
    out: VecDeque<ClientMsg>,
    result: Option<Result<Vec<u8>, MailboxError>>,
}

impl MailboxTake {
    /// A take from the relay with key `relay` at `slot`; starts with `Hello`.
    pub fn new(relay: RelayKey, slot: MailboxSlot) -> Self {
        let mut out = VecDeque::new();
        out.push_back(ClientMsg::Hello {
            versions: PROTOCOL_VERSIONS.to_vec(),
        });
        Self {
            relay,
            slot,
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
                    body: Request::MailboxTake { slot: self.slot },
                });
                None
            }
            ServerMsg::Response {
                id: 1,
                body: Response::MailboxBlob { blob },
            } => Some(Ok(blob)),
            ServerMsg::Error {
                code: ErrorCode::MailboxNotFound,
                ..
            } => Some(Err(MailboxError::NotFound)),
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
