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

pub mod admin;
pub mod backup;
pub mod redb_store;

use kith_protocol::ErrorCode;
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{
    AccountId, Cursor, DeviceId, Membership, MembershipError, MembershipOp, SealedEntry,
    SealedSnapshot,
};

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
    /// Replace the account snapshot and prune the entries it covers.
    PutSnapshot {
        /// The verified snapshot.
        snapshot: SealedSnapshot,
        /// The account's storage quota.
        quota_bytes: u64,
        /// The fragmented upload (of the snapshot's device) this snapshot
        /// was assembled from: its parts are deleted in the same transaction.
        finished_upload: Option<u64>,
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
    /// Snapshot stored.
    SnapshotStored {
        /// Entries pruned.
        pruned_entries: u64,
    },
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
    /// Stored bytes (entries + snapshots).
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

    /// The stored snapshot of `account`.
    fn snapshot(&self, account: &AccountId) -> Result<Option<SealedSnapshot>, StoreError>;

    /// Bytes `offset .. offset + bytes_max` of the stored snapshot's
    /// ciphertext (fewer at the end), with its envelope.
    fn snapshot_range(
        &self,
        account: &AccountId,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Option<SnapshotRange>, StoreError>;

    /// The concatenated parts of `device`'s upload `upload`, if all are
    /// stored; [`StoreError::UploadIncomplete`] otherwise.
    fn snapshot_upload(
        &self,
        account: &AccountId,
        device: &DeviceId,
        upload: u64,
    ) -> Result<Vec<u8>, StoreError>;

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
}
