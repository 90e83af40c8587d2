//! Relay storage behind the [`RelayStore`] trait, so another backend (a shared
//! database behind many stateless relays) can replace the embedded redb one
//! without touching protocol code.
//!
//! Writes are expressed as [`WriteOp`]s and applied in batches: the relay's
//! single writer thread drains its queue and hands the store many ops at once,
//! which the backend commits in ONE durable transaction (group commit). Each
//! op is validated on its own against the state left by the ops before it and
//! either takes full effect or none; a refused op never blocks the others.
//! A caller is told an op succeeded only after the commit returned.
//! Reads (pull, heads, snapshot, stats) run concurrently with writes.
//!
//! Snapshots (protocol 4): an account holds at most two. The *confirmed*
//! one is the snapshot the pruning floors belong to; a newer *pending* one
//! prunes nothing and leaves the confirmed one in place until a member
//! device other than its author reports it opened it
//! ([`WriteOp::ConfirmSnapshot`]) or the relay's safety window passes
//! ([`WriteOp::SnapshotsConfirmDue`]): a snapshot nobody can open never
//! makes the log unreachable. A snapshot's ciphertext is kept as the parts
//! it was uploaded in and read back range by range
//! ([`RelayStore::snapshot_range`], [`RelayStore::snapshot_upload`]): no
//! backend call needs a whole snapshot in memory.
//!
//! Quota: every byte a device makes the store keep counts against its
//! account (`quota_bytes` in each op): entries, stored snapshots (ciphertext
//! and envelope), parts of unfinished uploads and the mailbox blobs an
//! authenticated device leaves (until taken or expired).

pub mod admin;
pub mod backup;
pub mod cluster;
pub mod migrate;
pub mod pg_store;
pub mod pg_tls;
pub mod redb_store;

use kith_protocol::ErrorCode;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    AccountId, Cursor, DeviceId, Membership, MembershipError, MembershipOp, SealedEntry,
    SealedSnapshot,
};

pub use pg_store::PgStore;
pub use redb_store::RedbStore;

/// One state change, applied atomically with the others of its batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Append membership ops to an account's log, each checked against the
    /// state the ops before it left ([`Membership::apply`]). A genesis
    /// registers the account (per policy, consuming a token if needed).
    /// With `skip_known`, ops the log already holds (same hash at the same
    /// position) are skipped instead of refused (what `Auth` sends).
    AppendMembership {
        /// The account.
        account: AccountId,
        /// The ops, in order.
        ops: Vec<MembershipOp>,
        /// Skip ops already stored.
        skip_known: bool,
        /// SHA-256 of the presented registration token, if any.
        token_hash: Option<[u8; 32]>,
        /// True when the relay's policy is `open`.
        open_registration: bool,
        /// Registration time.
        now_ms: u64,
        /// Most member devices the account may have after these ops
        /// ([`StoreError::TooManyDevices`] otherwise; ops that do not add a
        /// member are never refused for it).
        members_max: u32,
    },
    /// Append entries to one device log (all verified, all of that device).
    /// Refused unless the device is a member now and every entry is sealed
    /// under the current epoch: checked inside the batch, so a revocation
    /// committed earlier in the same batch already applies.
    Push {
        /// Owning account.
        account: AccountId,
        /// Authoring device.
        device: DeviceId,
        /// Consecutive entries.
        entries: Vec<SealedEntry>,
        /// The account's storage quota.
        quota_bytes: u64,
    },
    /// Store a new *pending* snapshot (replacing a pending one; the
    /// confirmed one and every entry stay). Refused `SnapshotStale` if it
    /// covers less than the newest stored one for some device,
    /// `SnapshotInvalid` if it names a device twice or a seq beyond a head.
    PutSnapshot {
        /// The verified snapshot; with `finished_upload`, its ciphertext is
        /// empty and the upload's parts become its ciphertext as they are.
        snapshot: SealedSnapshot,
        /// The account's storage quota.
        quota_bytes: u64,
        /// The fragmented upload (of the snapshot's device) holding the
        /// ciphertext: all its parts must be stored (`UploadIncomplete`).
        finished_upload: Option<u64>,
        /// Storage time (for the safety window).
        now_ms: u64,
    },
    /// `device` (a current member, not the snapshot's author) opened the
    /// pending snapshot `snapshot_id`: it becomes the confirmed one, the
    /// entries it covers are pruned and the previous confirmed one deleted.
    /// Confirming the confirmed one again changes nothing; any other id is
    /// `SnapshotChanged`; the author is `SnapshotOwn`.
    ConfirmSnapshot {
        /// The account.
        account: AccountId,
        /// The device that opened it.
        device: DeviceId,
        /// [`snapshot_id`] of the snapshot.
        snapshot_id: [u8; 32],
    },
    /// Confirms every pending snapshot stored before `stored_before_ms`
    /// (the relay's safety window passed without a device opening it).
    SnapshotsConfirmDue {
        /// Pending snapshots stored earlier than this are confirmed.
        stored_before_ms: u64,
    },
    /// Store one part of a fragmented snapshot upload (invisible until a
    /// `PutSnapshot` names the upload). A new upload id of the same device
    /// discards the parts of its previous upload.
    PutSnapshotPart {
        /// Owning account.
        account: AccountId,
        /// Uploading device.
        device: DeviceId,
        /// Client-chosen upload id.
        upload: u64,
        /// Part index, below `count`.
        index: u32,
        /// Number of parts.
        count: u32,
        /// The part.
        bytes: Vec<u8>,
        /// Most bytes all parts of one upload may hold.
        upload_bytes_max: u64,
        /// Current time (the upload's start, for expiry).
        now_ms: u64,
        /// The account's storage quota (parts count against it).
        quota_bytes: u64,
    },
    /// Delete the parts of uploads started before `started_before_ms`.
    SnapshotUploadsExpire {
        /// Uploads started earlier than this are abandoned.
        started_before_ms: u64,
    },
    /// Store a one-time pairing blob.
    MailboxPut {
        /// Slot id.
        slot: MailboxSlot,
        /// The blob.
        blob: Vec<u8>,
        /// Expiry time.
        expires_at_ms: u64,
        /// Current time (expired slots count as free).
        now_ms: u64,
        /// The authenticated account leaving it (`None` before
        /// authentication: a small join request, rate-limited per address).
        owner: Option<MailboxOwner>,
    },
    /// Take and delete a pairing blob.
    MailboxTake {
        /// Slot id.
        slot: MailboxSlot,
        /// Current time (an expired blob is not returned).
        now_ms: u64,
    },
    /// Delete expired mailbox blobs.
    MailboxExpire {
        /// Current time.
        now_ms: u64,
    },
    /// Store a registration token (its hash).
    CreateToken {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
        /// Creation time.
        now_ms: u64,
    },
}

/// Whose quota a mailbox blob counts against while it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxOwner {
    /// The account.
    pub account: AccountId,
    /// Its storage quota.
    pub quota_bytes: u64,
    /// Most live blobs the account may hold at once
    /// ([`StoreError::MailboxFull`] otherwise).
    pub blobs_max: u32,
}

/// What a successful [`WriteOp`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Membership ops appended.
    MembershipAppended {
        /// True if this registered the account.
        new_account: bool,
        /// The ops newly stored (for fan-out).
        appended: Vec<MembershipOp>,
        /// Devices that are revoked now and were members before.
        revoked: Vec<DeviceId>,
        /// The state after the ops.
        state: Box<Membership>,
    },
    /// Entries durable up to `head`; `stored` are the ones newly written
    /// (re-sends of stored entries are not in it).
    Pushed {
        /// The device's head seq.
        head: u64,
        /// Newly stored entries, for fan-out to subscribers.
        stored: Vec<SealedEntry>,
    },
    /// Snapshot stored (pending: it prunes nothing yet).
    SnapshotStored {
        /// Entries pruned (0: pruning waits for the confirmation).
        pruned_entries: u64,
    },
    /// The pending snapshot is the confirmed one now (or already was).
    SnapshotConfirmed {
        /// Entries pruned.
        pruned_entries: u64,
    },
    /// Pending snapshots confirmed by the safety window (how many).
    SnapshotsConfirmed(u64),
    /// Snapshot part stored.
    SnapshotPartStored,
    /// Abandoned uploads deleted (how many).
    SnapshotUploadsExpired(u64),
    /// Mailbox blob stored.
    MailboxStored,
    /// Mailbox blob taken.
    MailboxTaken(Vec<u8>),
    /// Expired mailbox blobs deleted.
    MailboxExpired(u64),
    /// Token stored.
    TokenCreated,
}

/// Store failures; all but `Backend` are refusals the client can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The push does not start at the next seq.
    #[error("sequence gap: expected seq {expected}")]
    SeqGap {
        /// The next seq the log accepts.
        expected: u64,
    },
    /// A different entry exists at that seq.
    #[error("a different entry is already stored at seq {seq}")]
    SeqFork {
        /// The conflicting seq.
        seq: u64,
    },
    /// The account's stored bytes would exceed its quota.
    #[error("storage quota of {limit_bytes} bytes exceeded")]
    QuotaBytes {
        /// The quota.
        limit_bytes: u64,
    },
    /// Pull cursors are behind pruned entries.
    #[error("entries after the cursors were pruned; fetch the snapshot")]
    SnapshotNeeded,
    /// A newer snapshot is stored.
    #[error("the stored snapshot covers more")]
    SnapshotStale,
    /// The snapshot covers entries that are not stored, or repeats a device.
    #[error("snapshot cursors are invalid")]
    SnapshotInvalid,
    /// A fragmented upload would hold more than its limit.
    #[error("snapshot upload exceeds {limit_bytes} bytes")]
    UploadTooLarge {
        /// The limit.
        limit_bytes: u64,
    },
    /// A part's index or count does not fit the upload.
    #[error("snapshot part {index} of {count} does not fit this upload")]
    UploadInconsistent {
        /// The part index.
        index: u32,
        /// The part count.
        count: u32,
    },
    /// The upload is unknown (never started, replaced, expired) or misses parts.
    #[error("snapshot upload is unknown or incomplete ({parts_stored} parts stored)")]
    UploadIncomplete {
        /// Parts held for it.
        parts_stored: u32,
    },
    /// Mailbox slot occupied.
    #[error("mailbox slot is taken")]
    MailboxTaken,
    /// Mailbox slot empty or expired.
    #[error("mailbox slot is empty")]
    MailboxNotFound,
    /// Registration needs a token.
    #[error("registration requires a token")]
    RegistrationRequired,
    /// Unknown or used token.
    #[error("registration token is unknown or used")]
    BadToken,
    /// The named snapshot is neither stored snapshot of the account.
    #[error("the snapshot was replaced or removed")]
    SnapshotChanged,
    /// A device tried to confirm its own snapshot.
    #[error("a snapshot is confirmed by another device than its author")]
    SnapshotOwn,
    /// The ops would give the account more member devices than allowed.
    #[error("the account already has the most member devices the relay allows ({limit})")]
    TooManyDevices {
        /// Most member devices per account.
        limit: u32,
    },
    /// The account holds as many live mailbox blobs as allowed.
    #[error("the account holds {limit} mailbox blobs already; wait until they are taken or expire")]
    MailboxFull {
        /// Most live blobs per account.
        limit: u32,
    },
    /// The device is revoked.
    #[error("device is revoked")]
    Revoked,
    /// The device is not a member of the account.
    #[error("device is not a member of the account")]
    NotAMember,
    /// A membership op was refused.
    #[error("membership op refused: {0}")]
    Membership(#[from] MembershipError),
    /// The ops do not start at the log's head.
    #[error("membership ops do not start after the relay's {len} ops")]
    MembershipBehind {
        /// Ops stored.
        len: u64,
    },
    /// Sealed under another epoch than the current one.
    #[error("sealed under an old epoch; the current epoch is {current}")]
    EpochStale {
        /// The current epoch.
        current: u64,
    },
    /// The account is not registered.
    #[error("account is not registered")]
    UnknownAccount,
    /// The relay's operator deleted the account; it cannot register again.
    #[error("this account was deleted by the relay's operator")]
    AccountDeleted,
    /// The backend failed; nothing of the batch was committed.
    #[error("storage backend failed during {op}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The backend error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// The protocol error code a client is sent for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::SeqGap { expected } => ErrorCode::SeqGap {
                expected: *expected,
            },
            StoreError::SeqFork { seq } => ErrorCode::SeqFork { seq: *seq },
            StoreError::QuotaBytes { limit_bytes } => ErrorCode::QuotaBytes {
                limit_bytes: *limit_bytes,
            },
            StoreError::SnapshotNeeded => ErrorCode::SnapshotNeeded,
            StoreError::SnapshotStale => ErrorCode::SnapshotStale,
            StoreError::SnapshotInvalid => ErrorCode::SnapshotInvalid,
            StoreError::MailboxTaken => ErrorCode::MailboxTaken,
            StoreError::MailboxNotFound => ErrorCode::MailboxNotFound,
            StoreError::RegistrationRequired => ErrorCode::RegistrationRequired,
            StoreError::BadToken => ErrorCode::BadToken,
            StoreError::Revoked => ErrorCode::DeviceRevoked,
            StoreError::NotAMember => ErrorCode::NotAMember,
            StoreError::Membership(e) => ErrorCode::MembershipRefused {
                position: match e {
                    kith_protocol::MembershipError::NotNext { found, .. } => *found,
                    kith_protocol::MembershipError::Fork { position }
                    | kith_protocol::MembershipError::BadSignature { position }
                    | kith_protocol::MembershipError::NotAllowed { position, .. }
                    | kith_protocol::MembershipError::Invalid { position, .. } => *position,
                    kith_protocol::MembershipError::Format { .. }
                    | kith_protocol::MembershipError::WrongAccount { .. } => 0,
                },
            },
            StoreError::MembershipBehind { len } => ErrorCode::MembershipBehind { len: *len },
            StoreError::EpochStale { current } => ErrorCode::EpochStale { current: *current },
            StoreError::UnknownAccount => ErrorCode::NotAuthenticated,
            // No dedicated code in the protocol: the device is simply not let in.
            StoreError::AccountDeleted => ErrorCode::AuthFailed,
            StoreError::UploadTooLarge { limit_bytes } => ErrorCode::TooLarge {
                limit: *limit_bytes,
            },
            StoreError::UploadInconsistent { .. } => ErrorCode::SnapshotInvalid,
            StoreError::UploadIncomplete { parts_stored } => ErrorCode::SnapshotUploadIncomplete {
                parts_stored: *parts_stored,
            },
            StoreError::SnapshotChanged => ErrorCode::SnapshotChanged,
            StoreError::SnapshotOwn => ErrorCode::SnapshotOwn,
            StoreError::TooManyDevices { limit } => ErrorCode::TooManyDevices { limit: *limit },
            StoreError::MailboxFull { limit } => ErrorCode::TooLarge {
                limit: u64::from(*limit),
            },
            StoreError::Backend { .. } => ErrorCode::Internal,
        }
    }
}

/// Totals for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Registered accounts.
    pub accounts: u64,
    /// Stored entries.
    pub entries: u64,
    /// Stored bytes counted against quotas (entries, snapshots, upload
    /// parts, mailbox blobs of accounts).
    pub bytes: u64,
}

/// A page of pulled entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPage {
    /// Entries ordered by device id then seq.
    pub entries: Vec<SealedEntry>,
    /// True if more entries follow these.
    pub more: bool,
}

/// Per-device positions of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heads {
    /// Highest stored seq per device.
    pub heads: Vec<Cursor>,
    /// Highest pruned seq per device.
    pub floors: Vec<Cursor>,
}

/// A range of the stored snapshot ([`RelayStore::snapshot_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRange {
    /// The envelope; its `ciphertext` holds only the requested range.
    pub snapshot: SealedSnapshot,
    /// SHA-256 of the snapshot's signature: names this snapshot.
    pub snapshot_id: [u8; 32],
    /// Length of the whole ciphertext.
    pub total_bytes: u64,
}

/// A stored snapshot without its ciphertext ([`RelayStore::snapshots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The envelope, `ciphertext` empty.
    pub envelope: SealedSnapshot,
    /// [`snapshot_id`] of it.
    pub snapshot_id: [u8; 32],
    /// Length of its ciphertext.
    pub total_bytes: u64,
    /// When it was stored.
    pub stored_ms: u64,
}

/// The snapshots of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshots {
    /// The one the pruning floors belong to.
    pub confirmed: Option<StoredSnapshot>,
    /// A newer one no other device has opened yet.
    pub pending: Option<StoredSnapshot>,
}

impl Snapshots {
    /// The newest stored snapshot (pending, else confirmed).
    pub fn newest(&self) -> Option<&StoredSnapshot> {
        self.pending.as_ref().or(self.confirmed.as_ref())
    }
}

/// The id of a stored snapshot: SHA-256 of its signature (which covers
/// everything else in it).
pub fn snapshot_id(s: &SealedSnapshot) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.signature.to_bytes()).into()
}

/// The relay's storage.
pub trait RelayStore: Send + Sync + std::fmt::Debug + 'static {
    /// Applies `ops` in order, atomically and durably as one batch; returns
    /// one result per op. If the commit fails, every result is `Backend`.
    fn apply(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>>;

    /// Entries of `account` after `cursors`, at most `entries_max` and about
    /// `bytes_max` payload bytes (at least one entry if any is available).
    fn pull(
        &self,
        account: &AccountId,
        cursors: &[Cursor],
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<PullPage, StoreError>;

    /// Per-device heads and floors of `account`.
    fn heads(&self, account: &AccountId) -> Result<Heads, StoreError>;

    /// `device`'s entries `from..=to` of `account` in order, at most
    /// `entries_max` and about `bytes_max` (at least one): what a node fans
    /// out for another node's commit. Fewer than asked when some were pruned
    /// or the page is full (the caller then tells subscribers to pull).
    /// Damaged entries come as placeholders, as in [`RelayStore::pull`].
    /// The default reads the heads, then pulls; a networked store answers in
    /// one round trip.
    fn device_entries(
        &self,
        account: &AccountId,
        device: &DeviceId,
        from: u64,
        to: u64,
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        // Every other device's cursor at its head: only `device`'s entries.
        let cursors: Vec<Cursor> = self
            .heads(account)?
            .heads
            .into_iter()
            .map(|c| {
                if c.device == *device {
                    Cursor {
                        device: *device,
                        seq: from.saturating_sub(1),
                    }
                } else {
                    c
                }
            })
            .collect();
        let page = self.pull(account, &cursors, entries_max, bytes_max)?;
        // A later push (of this device or, past the heads read, of others)
        // may be in the page: only what was asked.
        Ok(page
            .entries
            .into_iter()
            .filter(|e| e.device == *device && e.seq >= from && e.seq <= to)
            .collect())
    }

    /// The stored snapshots of `account` (envelopes and sizes only).
    fn snapshots(&self, account: &AccountId) -> Result<Snapshots, StoreError>;

    /// Bytes `offset .. offset + bytes_max` of a stored snapshot's
    /// ciphertext (fewer at the end), with its envelope: the one named
    /// `snapshot_id` (pending or confirmed; `None` if neither has that id),
    /// or the newest when `snapshot_id` is `None`. Reads only the parts
    /// that hold the range.
    fn snapshot_range(
        &self,
        account: &AccountId,
        snapshot_id: Option<[u8; 32]>,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Option<SnapshotRange>, StoreError>;

    /// The newest stored snapshot with its whole ciphertext (for snapshots
    /// known to be small: one frame; tests). Assembled from ranges.
    fn snapshot(&self, account: &AccountId) -> Result<Option<SealedSnapshot>, StoreError> {
        Ok(self
            .snapshot_range(account, None, 0, usize::MAX)?
            .map(|r| r.snapshot))
    }

    /// Feeds the parts of `device`'s upload `upload` to `visit` in order,
    /// one at a time, and returns their total length, if all are stored;
    /// [`StoreError::UploadIncomplete`] otherwise (`visit` may have seen
    /// some parts then).
    fn snapshot_upload(
        &self,
        account: &AccountId,
        device: &DeviceId,
        upload: u64,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, StoreError>;

    /// The membership state of `account` (`None` if it is not registered).
    fn membership(&self, account: &AccountId) -> Result<Option<Membership>, StoreError>;

    /// At most `ops_max` membership ops of `account` after position `after`.
    fn membership_ops(
        &self,
        account: &AccountId,
        after: u64,
        ops_max: usize,
    ) -> Result<Vec<MembershipOp>, StoreError>;

    /// Totals for metrics.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Commits a tiny write (changing nothing a client can see) to learn
    /// whether the store can write now: `/health` answers 503 until it can
    /// (after a full disk, a failing device). A backend that recovers from
    /// I/O errors by reopening does so here too.
    fn probe_write(&self) -> Result<(), StoreError>;

    /// Whether `slot` holds a blob that has not expired at `now_ms`: a read,
    /// so that taking an empty slot (which anyone may try, unauthenticated)
    /// costs no durable write.
    fn mailbox_live(&self, slot: &[u8; 32], now_ms: u64) -> Result<bool, StoreError>;

    /// Counts `n` entries against `account`'s cluster-wide rate window: a
    /// fixed window of `window_ms` starting at its first count, at most
    /// `limit` entries, timed by the store's own clock (so every node of the
    /// relay agrees). `Ok(None)` if counted, `Ok(Some(retry_after_ms))` if
    /// refused (nothing counted). `None` for a store only one relay process
    /// uses: that relay counts in memory.
    fn rate_window_add(
        &self,
        _account: &AccountId,
        _n: u32,
        _limit: u32,
        _window_ms: u64,
    ) -> Option<Result<Option<u64>, StoreError>> {
        None
    }

    /// Counts `add` new accounts against the source-address window `addr`
    /// (an opaque key: a hash of the address) shared by every node: a fixed
    /// window of `window_ms` from its first count, timed by the store's own
    /// clock. `add == 0` only asks. `Ok(None)` while the window holds fewer
    /// than `limit` (before this count), `Ok(Some(retry_after_ms))` once it
    /// holds `limit` or more (an `add` is counted anyway: the account
    /// exists). `None` for a store only one relay process uses: that relay
    /// counts in memory.
    fn registration_window_add(
        &self,
        _addr: &[u8; 32],
        _add: u32,
        _limit: u32,
        _window_ms: u64,
    ) -> Option<Result<Option<u64>, StoreError>> {
        None
    }

    /// How the nodes sharing this store tell each other about commits
    /// (module `cluster`); `None` for a store only one relay process uses.
    fn cluster_bus(&self) -> Option<std::sync::Arc<dyn cluster::ClusterBus>> {
        None
    }

    /// The clock every node sharing this store must read (invitation and
    /// mailbox expiry), used by [`crate::run`] unless a test set its own;
    /// `None`: the system clock (one process, one clock).
    fn shared_clock(&self) -> Option<crate::Clock> {
        None
    }
}
