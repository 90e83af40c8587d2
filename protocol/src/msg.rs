//! Every message of relay protocol version 4, as serde types encoded with
//! postcard (see [`crate::frame`] and docs/PROTOCOL.md). Version 3 replaced
//! account-signed certificates with the membership log: versions 1 and 2 are
//! no longer spoken, nor is 3 (version 4 added snapshot confirmation): a
//! `Hello` offering only them is answered with
//! `UnsupportedVersion { supported: [4] }`.
//!
//! Conversation: the client sends [`ClientMsg::Hello`]; the server answers
//! [`ServerMsg::Welcome`] (with a fresh challenge) or an
//! [`ErrorCode::UnsupportedVersion`] error and closes. The client then sends
//! [`ClientMsg::Auth`] (or, for pairing, only mailbox takes), then any number
//! of [`ClientMsg::Request`]s, each answered by one [`ServerMsg::Response`] or
//! [`ServerMsg::Error`] with the same id. After a `Subscribe`, the server also
//! sends [`ServerMsg::Event`]s at any time. Enum variant order is part of the
//! wire format: variants are only ever appended.
//!
//! Fragmented snapshots (since version 2): [`Request::PutSnapshotPart`] +
//! [`Request::CommitSnapshot`] upload a snapshot larger than one frame, and
//! [`Request::GetSnapshotRange`] downloads one in ranges. The relay refuses
//! these on a connection that negotiated version 1.
//!
//! Membership (version 3): `Auth` carries the membership ops the relay may
//! lack (the genesis the first time); [`Request::AppendMembership`] appends
//! ops at the relay's head (the relay orders an account's changes);
//! [`Request::GetMembership`] reads them; subscribers get
//! [`Event::Membership`].
//!
//! Snapshot confirmation (version 4): a stored snapshot stays *pending* (the
//! entries it covers are kept, and so is the previous snapshot) until a
//! device other than its author reports having opened it
//! ([`Request::SnapshotOpened`]) or the relay's safety window passes;
//! [`Request::Snapshots`] lists the pending and the confirmed snapshot, so a
//! device that cannot open one falls back to the other or to the log.

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::envelope::{Cursor, SealedEntry, SealedSnapshot};
use crate::keys::{AccountId, DeviceId, RelayKey};
use crate::membership::MembershipOp;

/// The newest protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 4;
/// Every protocol version this crate speaks, newest first (what a client
/// offers in `Hello`).
pub const PROTOCOL_VERSIONS: &[u16] = &[4];
/// Most parts one fragmented snapshot upload may have.
pub const SNAPSHOT_PARTS_MAX: u32 = 4096;
/// TLS ALPN identifier of the relay protocol.
pub const ALPN: &[u8] = b"kith-relay/1";
/// Default UDP port of a relay.
pub const DEFAULT_PORT: u16 = 7447;
/// Most versions a Hello may list.
pub const HELLO_VERSIONS_MAX: usize = 16;
/// Most entries in one push request.
pub const PUSH_ENTRIES_MAX: usize = 256;
/// Longest registration token accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 128;
/// Mailbox slot id, derived from the invitation secret by [`mailbox_slot`].
pub type MailboxSlot = [u8; 32];
/// Domain separation for [`mailbox_slot`].
pub const CONTEXT_MAILBOX_SLOT: &[u8] = b"kith-mailbox-slot-v1";

/// The mailbox slot for an invitation secret:
/// `SHA-256("kith-mailbox-slot-v1" || secret)`. The relay sees only this
/// hash, never the secret, so it cannot open the (sealed) blob.
pub fn mailbox_slot(invitation_secret: &[u8]) -> MailboxSlot {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(CONTEXT_MAILBOX_SLOT);
    h.update(invitation_secret);
    h.finalize().into()
}

/// Messages from a device to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First frame of every connection; frozen for all versions: the
    /// versions the client speaks, at most [`HELLO_VERSIONS_MAX`].
    Hello {
        /// Supported protocol versions.
        versions: Vec<u16>,
    },
    /// Answer to the challenge in [`ServerMsg::Welcome`].
    Auth {
        /// The account the device acts for.
        account: AccountId,
        /// The device.
        device: DeviceId,
        /// Device signature over [`crate::sign::auth_message`].
        signature: Signature,
        /// Single-use registration token, needed the first time an account
        /// connects to a relay whose policy is `token`.
        token: Option<String>,
        /// Membership ops the relay may not have yet (at most
        /// [`crate::membership::OPS_PER_MESSAGE_MAX`]), in order; the genesis
        /// registers the account. Ops the relay holds are skipped if equal.
        membership: Vec<MembershipOp>,
    },
    /// A request; answered by a response or error with the same id.
    Request {
        /// Client-chosen id, echoed in the answer.
        id: u32,
        /// The request.
        body: Request,
    },
}

/// Requests; all but `MailboxTake` and `Ping` need an authenticated device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Append entries to the sending device's own log: consecutive seqs, the
    /// first one the next after the relay's head (or already-stored re-sends).
    Push {
        /// At most [`PUSH_ENTRIES_MAX`] entries.
        entries: Vec<SealedEntry>,
    },
    /// Entries of every device of the account after the given cursors (a
    /// device not listed is read from the start).
    Pull {
        /// Last seq the client already has, per device.
        cursors: Vec<Cursor>,
        /// Most entries to return (the relay may return fewer).
        entries_max: u32,
        /// Most payload bytes to return (the relay may return fewer).
        bytes_max: u32,
    },
    /// Receive new entries of the account's other devices as events.
    Subscribe,
    /// Store a snapshot; the relay keeps the newest and prunes covered entries.
    PutSnapshot {
        /// The snapshot.
        snapshot: SealedSnapshot,
    },
    /// Fetch the stored snapshot, if any.
    GetSnapshot,
    /// The account's per-device heads and pruning floors.
    Heads,
    /// Append membership ops (add, revoke, rotate, recover) at the relay's
    /// head: the first op's position must be the relay's length + 1.
    AppendMembership {
        /// At most [`crate::membership::OPS_PER_MESSAGE_MAX`] ops, in order.
        ops: Vec<MembershipOp>,
    },
    /// Leave a one-time blob for a pairing device.
    MailboxPut {
        /// [`mailbox_slot`] of the invitation secret.
        slot: MailboxSlot,
        /// Sealed blob.
        blob: Vec<u8>,
        /// Lifetime in seconds; the relay caps it.
        ttl_s: u32,
    },
    /// Take (and delete) a mailbox blob; allowed before authentication.
    MailboxTake {
        /// [`mailbox_slot`] of the invitation secret.
        slot: MailboxSlot,
    },
    /// Liveness check.
    Ping,
    /// (Version 2.) Part `index` of `count` of the ciphertext of a snapshot
    /// too large for one frame. Parts of one upload are invisible until
    /// [`Request::CommitSnapshot`]; a new `upload` id from the same device
    /// discards the parts of its previous unfinished upload.
    PutSnapshotPart {
        /// Client-chosen id of this upload.
        upload: u64,
        /// Position of this part, from 0.
        index: u32,
        /// Number of parts, at most [`SNAPSHOT_PARTS_MAX`]; the same in every part.
        count: u32,
        /// The bytes; the parts concatenate to the snapshot's ciphertext.
        bytes: Vec<u8>,
    },
    /// (Version 2.) Completes a fragmented upload: `snapshot` is the envelope
    /// with an EMPTY ciphertext; the relay concatenates the parts into it,
    /// verifies the signature over the whole and stores it like
    /// [`Request::PutSnapshot`].
    CommitSnapshot {
        /// The upload id used in the parts.
        upload: u64,
        /// The envelope, ciphertext empty.
        snapshot: SealedSnapshot,
    },
    /// (Version 2.) A range of the stored snapshot's ciphertext.
    GetSnapshotRange {
        /// The id from an earlier [`Response::SnapshotRange`] (`None` to
        /// start): if the stored snapshot changed since, the answer is
        /// [`ErrorCode::SnapshotChanged`].
        snapshot_id: Option<[u8; 32]>,
        /// First ciphertext byte wanted.
        offset: u64,
        /// Most ciphertext bytes wanted (the relay may return fewer).
        bytes_max: u32,
    },
    /// (Version 3.) The account's membership ops after position `after`.
    GetMembership {
        /// Ops up to this position are known.
        after: u64,
    },
    /// (Version 4.) The account's stored snapshots: the confirmed one (the
    /// pruning floors are its covers) and a newer pending one, if any.
    Snapshots,
    /// (Version 4.) This device opened (verified, decrypted, parsed) the
    /// stored snapshot `snapshot_id` of another device: the relay may now
    /// prune the entries it covers and drop the previous snapshot.
    SnapshotOpened {
        /// The id from [`Response::Snapshots`] / [`Response::SnapshotRange`].
        snapshot_id: [u8; 32],
    },
}

/// (Version 4.) A stored snapshot, without its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// SHA-256 of its signature: pass it to [`Request::GetSnapshotRange`].
    pub snapshot_id: [u8; 32],
    /// The device that made it.
    pub device: DeviceId,
    /// The epoch it is sealed under.
    pub epoch: u64,
    /// What it covers, per device.
    pub covers: Vec<Cursor>,
    /// Length of its ciphertext, bytes.
    pub total_bytes: u64,
}

/// Messages from the relay to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// A refusal; frozen for all versions so any client can read it.
    Error {
        /// The request it answers, or `None` for a connection-level error
        /// (after which the relay closes the connection).
        id: Option<u32>,
        /// What went wrong, with the data needed to act on it.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// Version accepted; carries the authentication challenge.
    Welcome {
        /// The version chosen (the highest both speak).
        version: u16,
        /// The relay's public key, as the client pinned it.
        relay: RelayKey,
        /// Fresh random challenge for this connection.
        challenge: [u8; 32],
        /// Largest frame the relay accepts, in bytes.
        frame_bytes_max: u32,
    },
    /// Authentication succeeded.
    AuthOk {
        /// The account.
        account: AccountId,
        /// The device.
        device: DeviceId,
        /// True when this connection registered the account.
        registered: bool,
        /// Ops in the account's membership log at the relay.
        membership_len: u64,
        /// The current epoch at the relay.
        epoch: u64,
    },
    /// Answer to a request.
    Response {
        /// The request id.
        id: u32,
        /// The answer.
        body: Response,
    },
    /// Unsolicited message for a subscribed device.
    Event(Event),
}

/// Successful answers, one variant per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Every entry up to `seq` of `device` is durably stored.
    PushAck {
        /// The pushing device.
        device: DeviceId,
        /// The device's head after this push.
        seq: u64,
    },
    /// A batch of entries, ordered by device then seq.
    Entries {
        /// The entries.
        entries: Vec<SealedEntry>,
        /// True if more entries exist after these: pull again with advanced cursors.
        more: bool,
    },
    /// Subscription active.
    Subscribed,
    /// Snapshot stored.
    SnapshotStored {
        /// Entries deleted because the snapshot covers them.
        pruned_entries: u64,
    },
    /// The stored snapshot.
    Snapshot {
        /// `None` if the account has none.
        snapshot: Option<SealedSnapshot>,
    },
    /// Log positions of the account.
    Heads {
        /// Highest stored seq per device.
        heads: Vec<Cursor>,
        /// Highest pruned seq per device (entries up to it are only in the snapshot).
        floors: Vec<Cursor>,
    },
    /// Membership ops appended; revoked devices' connections are closed.
    MembershipAppended {
        /// Ops in the log now.
        len: u64,
    },
    /// Mailbox blob stored.
    MailboxStored,
    /// The mailbox blob, now deleted from the relay.
    MailboxBlob {
        /// The blob.
        blob: Vec<u8>,
    },
    /// Answer to ping.
    Pong,
    /// (Version 2.) A snapshot part is stored (not yet visible).
    SnapshotPartStored {
        /// The upload id.
        upload: u64,
        /// The part stored.
        index: u32,
    },
    /// (Version 2.) A range of the stored snapshot.
    SnapshotRange {
        /// `None` if the account has no snapshot. Otherwise the envelope
        /// whose `ciphertext` holds only the bytes `offset ..` of this range.
        snapshot: Option<SealedSnapshot>,
        /// Identifies the stored snapshot (SHA-256 of its signature).
        snapshot_id: [u8; 32],
        /// Length of the whole ciphertext, in bytes.
        total_bytes: u64,
        /// Offset of this range.
        offset: u64,
    },
    /// (Version 3.) Membership ops, in order.
    Membership {
        /// The ops.
        ops: Vec<MembershipOp>,
        /// True if more follow: ask again after the last.
        more: bool,
    },
    /// (Version 4.) The account's stored snapshots.
    Snapshots {
        /// The snapshot the pruning floors belong to.
        confirmed: Option<SnapshotInfo>,
        /// A newer snapshot nobody but its author has opened yet: the entries
        /// it covers are still stored.
        pending: Option<SnapshotInfo>,
    },
    /// (Version 4.) The snapshot is confirmed (or already was).
    SnapshotConfirmed {
        /// Entries deleted because it covers them.
        pruned_entries: u64,
    },
}

/// Pushes to a subscribed device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// New entries of another device of the account, just stored.
    Entries {
        /// The entries.
        entries: Vec<SealedEntry>,
    },
    /// The device fell behind (its queue overflowed): some events were
    /// dropped; pull to catch up. The subscription stays active.
    Lagged,
    /// (Version 3.) Membership ops just appended by another device.
    Membership {
        /// The new ops, in order.
        ops: Vec<MembershipOp>,
    },
}

/// Error codes; each carries what a client needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// None of the Hello versions is spoken here.
    UnsupportedVersion {
        /// The versions the relay speaks.
        supported: Vec<u16>,
    },
    /// A frame did not decode as a message of this version.
    Malformed,
    /// A frame's length prefix exceeded the limit.
    FrameTooLarge {
        /// The limit.
        size_bytes_max: u32,
    },
    /// A message that is not allowed at this point of the conversation.
    UnexpectedMessage,
    /// The challenge answer did not verify.
    AuthFailed,
    /// The device certificate did not verify.
    BadCertificate,
    /// The device is revoked by its account.
    DeviceRevoked,
    /// The relay registers new accounts only with a token.
    RegistrationRequired,
    /// The registration token is unknown or already used.
    BadToken,
    /// The request needs an authenticated device.
    NotAuthenticated,
    /// The record names another account or device than the connection's.
    WrongAccount,
    /// An entry or snapshot signature did not verify.
    BadSignature,
    /// The push skipped seqs.
    SeqGap {
        /// The seq the relay expects next.
        expected: u64,
    },
    /// A different payload already exists at this seq.
    SeqFork {
        /// The conflicting seq.
        seq: u64,
    },
    /// The account's storage quota would be exceeded.
    QuotaBytes {
        /// The quota.
        limit_bytes: u64,
    },
    /// The account pushed too many entries in the last minute.
    QuotaRate {
        /// The limit.
        entries_per_minute: u32,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// Entries after the cursors were pruned: fetch the snapshot, then pull
    /// after its cursors.
    SnapshotNeeded,
    /// The stored snapshot already covers more than this one.
    SnapshotStale,
    /// The snapshot covers entries the relay does not have, or repeats a device.
    SnapshotInvalid,
    /// The mailbox slot is occupied.
    MailboxTaken,
    /// No blob in that slot (never put, taken, or expired).
    MailboxNotFound,
    /// A request exceeded a size or count limit.
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// Too many requests on an unauthenticated connection.
    RateLimited,
    /// The relay failed internally; retry later.
    Internal,
    /// The relay is shutting down; reconnect later.
    ShuttingDown,
    /// (Version 2.) The stored snapshot is not the one named: restart the
    /// ranged download from offset 0 without an id.
    SnapshotChanged,
    /// (Version 2.) The snapshot upload is unknown (never started, replaced by
    /// a newer upload of the device, or expired) or incomplete.
    SnapshotUploadIncomplete {
        /// Parts the relay holds for this upload.
        parts_stored: u32,
    },
    /// (Version 3.) The device is not a member of the account's membership
    /// log at the relay (never added, or the account is unknown and no
    /// genesis was sent).
    NotAMember,
    /// (Version 3.) A membership op was refused; `position` is the op's.
    MembershipRefused {
        /// The refused op's position.
        position: u64,
    },
    /// (Version 3.) The ops do not start at the relay's head: fetch the ops
    /// after your length, re-check, and make the change again.
    MembershipBehind {
        /// Ops in the relay's log.
        len: u64,
    },
    /// (Version 3.) Entries or a snapshot sealed under an epoch that is not
    /// the current one: fetch the membership and seal under `current`.
    EpochStale {
        /// The current epoch.
        current: u64,
    },
    /// (Version 4.) A device cannot confirm its own snapshot: another
    /// device must have opened it.
    SnapshotOwn,
    /// (Version 4.) The account has as many member devices as the relay
    /// allows; revoke one first.
    TooManyDevices {
        /// Most member devices per account.
        limit: u32,
    },
    /// (Version 4.) This source address registered as many new accounts as
    /// the relay allows per hour; retry later.
    RegistrationLimited {
        /// When to retry.
        retry_after_ms: u64,
    },
}

impl ErrorCode {
    /// True for errors after which the relay closes the connection.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedVersion { .. }
                | ErrorCode::Malformed
                | ErrorCode::FrameTooLarge { .. }
                | ErrorCode::UnexpectedMessage
                | ErrorCode::AuthFailed
                | ErrorCode::BadCertificate
                | ErrorCode::DeviceRevoked
                | ErrorCode::NotAMember
                | ErrorCode::RegistrationRequired
                | ErrorCode::BadToken
                | ErrorCode::RateLimited
                | ErrorCode::ShuttingDown
                | ErrorCode::RegistrationLimited { .. }
        )
    }

    /// A short stable name, used in logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorCode::UnsupportedVersion { .. } => "unsupported_version",
            ErrorCode::Malformed => "malformed",
            ErrorCode::FrameTooLarge { .. } => "frame_too_large",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::BadCertificate => "bad_certificate",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::RegistrationRequired => "registration_required",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::WrongAccount => "wrong_account",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::SeqGap { .. } => "seq_gap",
            ErrorCode::SeqFork { .. } => "seq_fork",
            ErrorCode::QuotaBytes { .. } => "quota_bytes",
            ErrorCode::QuotaRate { .. } => "quota_rate",
            ErrorCode::SnapshotNeeded => "snapshot_needed",
            ErrorCode::SnapshotStale => "snapshot_stale",
            ErrorCode::SnapshotInvalid => "snapshot_invalid",
            ErrorCode::MailboxTaken => "mailbox_taken",
            ErrorCode::MailboxNotFound => "mailbox_not_found",
            ErrorCode::TooLarge { .. } => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::SnapshotChanged => "snapshot_changed",
            ErrorCode::SnapshotUploadIncomplete { .. } => "snapshot_upload_incomplete",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::MembershipRefused { .. } => "membership_refused",
            ErrorCode::MembershipBehind { .. } => "membership_behind",
            ErrorCode::EpochStale { .. } => "epoch_stale",
            ErrorCode::SnapshotOwn => "snapshot_own",
            ErrorCode::TooManyDevices { .. } => "too_many_devices",
            ErrorCode::RegistrationLimited { .. } => "registration_limited",
        }
    }
}

/// QUIC application close codes the relay uses.
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u32 = 0;
    /// Protocol violation (after a fatal error frame).
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The device was revoked while connected.
    pub const REVOKED: u32 = 2;
    /// The relay is shutting down.
    pub const SHUTDOWN: u32 = 3;
}
