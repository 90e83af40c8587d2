//! The embedded redb implementation of [`RelayStore`].
//!
//! Tables (keys are raw 32-byte account/device ids):
//! - `entries`   (account, device, seq) -> postcard(SealedEntry)
//! - `entry_sums` (account, device, seq) -> SHA-256 of the `entries` value as
//!   it was stored: a pull detects a damaged copy (a flipped bit on disk)
//!   and serves an unverifiable placeholder for it, so readers skip that
//!   one entry instead of stalling; a re-push of the original bytes (whose
//!   hash matches) repairs it. Entries stored before this table existed
//!   have no sum and are served as they are.
//! - `heads`     (account, device) -> (head seq, pruned floor seq)
//! - `accounts`  account -> (created ms, stored bytes, stored entries)
//! - `membership` (account, position) -> postcard(MembershipOp): the
//!   account's membership log
//! - `membership_state` account -> postcard(Membership): the state the log
//!   leads to, kept with every append so authentication reads one row
//! - `snapshots_v3` (account, slot) -> postcard([`SnapRow`]): slot 0 the
//!   confirmed snapshot, slot 1 a pending one (envelope without ciphertext,
//!   storage time, the upload that holds its ciphertext, cumulative part
//!   ends for range reads)
//! - `snapshot_uploads` (account, device) -> (upload id, part count, bytes
//!   held, started ms): the device's one unfinished fragmented upload
//! - `snapshot_parts_v3` (account, device, upload, index) -> part bytes:
//!   the parts of unfinished uploads (invisible to readers) and, as they
//!   were uploaded, the ciphertext of stored snapshots (never concatenated:
//!   a commit moves no bytes, a range read loads only the parts it needs)
//! - `mailbox`   slot -> expires-at ms (u64 BE) || blob; after a take, the
//!   expiry alone (a tombstone: the slot stays used until then)
//! - `mailbox_owner` slot -> account, and `mailbox_owned` (account, slot) ->
//!   blob bytes: blobs an authenticated device left count against its
//!   account's quota and blob limit until taken or expired
//! - `tokens`    SHA-256(token) -> created ms
//! - `meta`      "schema" -> version (the store format version: 3; a file
//!   of schema 2 is migrated when opened (its snapshot becomes the confirmed
//!   one, unfinished uploads are dropped); one of schema 1, from before
//!   membership logs, is refused with [`OpenError::OldSchema`])
//! - `deleted_accounts` account -> deleted-at ms (see `store::admin`: an
//!   account the operator deleted cannot register again)
//!
//! A batch of [`WriteOp`]s is one write transaction with redb's default
//! (immediate, fsync'd) durability; the caller acks only after `commit`.
//!
//! I/O errors: after a failed write (a full disk: ENOSPC) redb refuses every
//! later write until the database is reopened, so a failed batch drops the
//! handle and reopens the file (redb recovers to the last commit; nothing
//! acknowledged is lost). While the reopen itself fails, every call retries
//! it first; writes resume by themselves once space is freed, no restart.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use kith_protocol::{
    AccountId, Change, Cursor, DeviceId, Membership, MembershipOp, SealedEntry, SealedSnapshot,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{
    Heads, PullPage, RelayStore, SnapshotRange, StoreError, StoreStats, WriteOp, WriteOutcome,
};

pub(super) type K32 = [u8; 32];

pub(super) const ENTRIES: TableDefinition<'_, (K32, K32, u64), &[u8]> =
    TableDefinition::new("entries");
pub(super) const SUMS: TableDefinition<'_, (K32, K32, u64), &[u8]> =
    TableDefinition::new("entry_sums");
pub(super) const HEADS: TableDefinition<'_, (K32, K32), (u64, u64)> = TableDefinition::new("heads");
pub(super) const ACCOUNTS: TableDefinition<'_, K32, (u64, u64, u64)> =
    TableDefinition::new("accounts");
pub(super) const MEMBERSHIP: TableDefinition<'_, (K32, u64), &[u8]> =
    TableDefinition::new("membership");
pub(super) const MEMBER_STATE: TableDefinition<'_, K32, &[u8]> =
    TableDefinition::new("membership_state");
pub(super) const SNAPS: TableDefinition<'_, (K32, u8), &[u8]> =
    TableDefinition::new("snapshots_v3");
/// Schema 2's snapshot table (migrated and deleted when opened).
const OLD_SNAPSHOTS: TableDefinition<'_, K32, &[u8]> = TableDefinition::new("snapshots");
/// Schema 2's part table (dropped when opened).
const OLD_PARTS: TableDefinition<'_, (K32, K32, u32), &[u8]> =
    TableDefinition::new("snapshot_parts");
pub(super) const MAILBOX_OWNER: TableDefinition<'_, K32, K32> =
    TableDefinition::new("mailbox_owner");
pub(super) const MAILBOX_OWNED: TableDefinition<'_, (K32, K32), u64> =
    TableDefinition::new("mailbox_owned");
pub(super) const MAILBOX: TableDefinition<'_, K32, &[u8]> = TableDefinition::new("mailbox");
pub(super) const TOKENS: TableDefinition<'_, K32, u64> = TableDefinition::new("tokens");
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
pub(super) const UPLOADS: TableDefinition<'_, (K32, K32), (u64, u64, u64, u64)> =
    TableDefinition::new("snapshot_uploads");
pub(super) const PARTS: TableDefinition<'_, (K32, K32, u64, u32), &[u8]> =
    TableDefinition::new("snapshot_parts_v3");

/// Slot of the confirmed snapshot in `snapshots_v3`.
const CONFIRMED: u8 = 0;
/// Slot of the pending snapshot.
const PENDING: u8 = 1;

/// A stored snapshot: its envelope and where its ciphertext is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SnapRow {
    /// The envelope, `ciphertext` empty.
    pub(super) envelope: SealedSnapshot,
    /// When it was stored.
    pub(super) stored_ms: u64,
    /// The upload id under which its parts are kept (in `snapshot_parts_v3`,
    /// under the envelope's device).
    pub(super) upload: u64,
    /// End offset of each part in the ciphertext (cumulative).
    pub(super) part_ends: Vec<u64>,
}

impl SnapRow {
    fn total_bytes(&self) -> u64 {
        self.part_ends.last().copied().unwrap_or(0)
    }

    fn info(&self) -> super::StoredSnapshot {
        super::StoredSnapshot {
            envelope: self.envelope.clone(),
            snapshot_id: super::snapshot_id(&self.envelope),
            total_bytes: self.total_bytes(),
            stored_ms: self.stored_ms,
        }
    }
}

/// Bytes a stored snapshot counts against the quota: its ciphertext and
/// its envelope.
fn snap_bytes(row: &SnapRow) -> u64 {
    row.total_bytes()
        + postcard::experimental::serialized_size(&row.envelope).map_or(0, |n| n as u64)
}

/// Cache of the database file (reads and the write buffer together): bounds
/// the relay's memory however large a snapshot is (redb's default is 1 GiB).
const CACHE_BYTES: usize = 16 << 20;

/// Version of the table layout above: the store format version. A store
/// written by a newer relay is refused ([`OpenError::NewerSchema`]); one of
/// schema 2 is migrated (snapshot rows and parts, see the module doc); one
/// of schema 1 (account certificates, before membership logs) is refused
/// with [`OpenError::OldSchema`]: no release used it, so nothing migrates.
pub const SCHEMA_VERSION: u64 = 3;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database file could not be opened or initialised.
    #[error("cannot open relay database: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The file was written by a newer relay.
    #[error(
        "the relay store has format version {found}, written by a newer kith-relay; this \
         kith-relay reads formats up to {SCHEMA_VERSION}: install the newer kith-relay again, or \
         restore a backup made by this version (`kith-relay restore FILE`)"
    )]
    NewerSchema {
        /// The schema found.
        found: u64,
    },
    /// The file was written by a relay from before membership logs; its
    /// accounts trust account-signed certificates, which this relay no longer
    /// accepts. No release used it, so there is no migration.
    #[error(
        "relay database schema {found} predates membership logs (this relay reads schema {SCHEMA_VERSION}); \
         it cannot be read: move the data directory away and start with an empty one, then let devices sync again"
    )]
    OldSchema {
        /// The schema found.
        found: u64,
    },
}

fn db_open<E: Into<redb::Error>>(e: E) -> OpenError {
    OpenError::Database(Box::new(e.into()))
}

fn backend<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend {
        op,
        source: Box::new(e.into()),
    }
}

fn corrupt(op: &'static str, e: postcard::Error) -> StoreError {
    StoreError::Backend {
        op,
        source: Box::new(e),
    }
}

fn encode<T: serde::Serialize>(op: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| corrupt(op, e))
}

/// The redb-backed relay store.
#[derive(Debug)]
pub struct RedbStore {
    /// The open file; after a reopen that failed, an empty in-memory
    /// placeholder (every call then fails `Backend` and retries the reopen
    /// first: `needs_reopen`). Readers hold the read lock for one call; a
    /// reopen takes the write lock.
    db: std::sync::RwLock<Database>,
    needs_reopen: std::sync::atomic::AtomicBool,
    /// `None` for a store in memory (which never needs a reopen).
    path: Option<std::path::PathBuf>,
}

impl RedbStore {
    /// The database, for the operator functions (`store::admin`, `store::backup`).
    pub(super) fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        if self.needs_reopen.load(std::sync::atomic::Ordering::Acquire) {
            let _ = self.reopen("reopen");
        }
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        // Owner-only whatever the umask (redb would create it 0644 under 022).
        crate::private_fs::prepare_private_file(path)
            .map_err(|e| OpenError::Database(Box::new(e)))?;
        let db = open_db(path).map_err(db_open)?;
        Self::init(db, Some(path.to_path_buf()))
    }

    /// A store in memory (nothing on disk), for other crates' tests: core's
    /// in-memory relay keeps its state here, so the semantics it relies on
    /// are this store's, which the conformance suite checks.
    #[cfg(feature = "test-support")]
    pub fn in_memory() -> Result<Self, OpenError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db_open)?;
        Self::init(db, None)
    }

    /// Checks or writes the schema version and creates every table.
    fn init(db: Database, path: Option<std::path::PathBuf>) -> Result<Self, OpenError> {
        let txn = db.begin_write().map_err(db_open)?;
        {
            let mut meta = txn.open_table(META).map_err(db_open)?;
            let found = meta.get("schema").map_err(db_open)?.map(|g| g.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => return Err(OpenError::NewerSchema { found: v }),
                Some(2) => {
                    drop(meta);
                    migrate_from_2(&txn).map_err(|e| OpenError::Database(Box::new(e)))?;
                    txn.open_table(META)
                        .map_err(db_open)?
                        .insert("schema", SCHEMA_VERSION)
                        .map_err(db_open)?;
                }
                Some(v) if v < SCHEMA_VERSION => return Err(OpenError::OldSchema { found: v }),
                Some(_) => {}
                None => {
                    meta.insert("schema", SCHEMA_VERSION).map_err(db_open)?;
                }
            }
            txn.open_table(ENTRIES).map_err(db_open)?;
            txn.open_table(SUMS).map_err(db_open)?;
            txn.open_table(HEADS).map_err(db_open)?;
            txn.open_table(ACCOUNTS).map_err(db_open)?;
            txn.open_table(MEMBERSHIP).map_err(db_open)?;
            txn.open_table(MEMBER_STATE).map_err(db_open)?;
            txn.open_table(SNAPS).map_err(db_open)?;
            txn.open_table(MAILBOX).map_err(db_open)?;
            txn.open_table(MAILBOX_OWNER).map_err(db_open)?;
            txn.open_table(MAILBOX_OWNED).map_err(db_open)?;
            txn.open_table(TOKENS).map_err(db_open)?;
            txn.open_table(UPLOADS).map_err(db_open)?;
            txn.open_table(PARTS).map_err(db_open)?;
            txn.open_table(super::admin::DELETED_ACCOUNTS)
                .map_err(db_open)?;
        }
        txn.commit().map_err(db_open)?;
        Ok(Self {
            db: std::sync::RwLock::new(db),
            needs_reopen: std::sync::atomic::AtomicBool::new(false),
            path,
        })
    }

    /// Runs `f` on the open database, reopening it first if a failed write
    /// left it closed.
    fn with_db<T>(
        &self,
        _op: &'static str,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db())
    }

    fn read_txn(&self, op: &'static str) -> Result<redb::ReadTransaction, StoreError> {
        self.with_db(op, |db| db.begin_read().map_err(backend(op)))
    }

    /// Drops the database handle (redb needs a reopen after an I/O error)
    /// and opens the file again; on failure an empty in-memory placeholder
    /// stands in and the next call tries again.
    fn reopen(&self, op: &'static str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut g = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let placeholder = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Backend {
                op,
                source: Box::new(redb::Error::from(e)),
            })?;
        // Close first: the file lock must be released before opening again.
        drop(std::mem::replace(&mut *g, placeholder));
        match open_db(path) {
            Ok(db) => {
                tracing::info!(path = %path.display(), "relay database reopened after an error");
                *g = db;
                self.needs_reopen.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.needs_reopen.store(true, Ordering::Release);
                Err(StoreError::Backend {
                    op,
                    source: Box::new(redb::Error::from(e)),
                })
            }
        }
    }

    /// Flips one bit in the middle of a stored entry's bytes, leaving its
    /// checksum as it was: what a damaged disk does (tests only).
    #[cfg(feature = "test-support")]
    pub fn damage_entry_for_tests(&self, account: &AccountId, device: &DeviceId, seq: u64) {
        #![allow(clippy::unwrap_used, clippy::expect_used)]
        let txn = self.db().begin_write().unwrap();
        {
            let mut t = txn.open_table(ENTRIES).unwrap();
            let key = (account.0, device.0, seq);
            let mut v = t.get(key).unwrap().expect("entry stored").value().to_vec();
            let mid = v.len() / 2;
            v[mid] ^= 0x10;
            t.insert(key, v.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }

    fn apply_one(txn: &WriteTransaction, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        match op {
            WriteOp::AppendMembership {
                account,
                ops,
                skip_known,
                token_hash,
                open_registration,
                now_ms,
                members_max,
            } => append_membership(
                txn,
                account,
                ops,
                skip_known,
                (token_hash, open_registration),
                (now_ms, members_max),
            ),
            WriteOp::Push {
                account,
                device,
                entries,
                quota_bytes,
            } => push(txn, account, device, entries, quota_bytes),
            WriteOp::PutSnapshot {
                snapshot,
                quota_bytes,
                finished_upload,
                now_ms,
            } => put_snapshot(txn, snapshot, quota_bytes, finished_upload, now_ms),
            WriteOp::ConfirmSnapshot {
                account,
                device,
                snapshot_id,
            } => confirm_snapshot(txn, &account, Some(&device), &snapshot_id)
                .map(|pruned_entries| WriteOutcome::SnapshotConfirmed { pruned_entries }),
            WriteOp::SnapshotsConfirmDue { stored_before_ms } => {
                const OP: &str = "confirm due snapshots";
                let mut due = Vec::new();
                {
                    let t = txn.open_table(SNAPS).map_err(backend(OP))?;
                    for item in t.iter().map_err(backend(OP))? {
                        let (k, v) = item.map_err(backend(OP))?;
                        let (acct, slot) = k.value();
                        if slot != PENDING {
                            continue;
                        }
                        let row: SnapRow =
                            postcard::from_bytes(v.value()).map_err(|e| corrupt(OP, e))?;
                        if row.stored_ms < stored_before_ms {
                            due.push((AccountId(acct), super::snapshot_id(&row.envelope)));
                        }
                    }
                }
                for (acct, id) in &due {
                    confirm_snapshot(txn, acct, None, id)?;
                }
                Ok(WriteOutcome::SnapshotsConfirmed(due.len() as u64))
            }
            WriteOp::PutSnapshotPart {
                account,
                device,
                upload,
                index,
                count,
                bytes,
                upload_bytes_max,
                now_ms,
                quota_bytes,
            } => put_part(
                txn,
                (account, device),
                (upload, index, count),
                &bytes,
                (upload_bytes_max, quota_bytes),
                now_ms,
            ),
            WriteOp::SnapshotUploadsExpire { started_before_ms } => {
                const OP: &str = "expire uploads";
                let mut stale = Vec::new();
                {
                    let t = txn.open_table(UPLOADS).map_err(backend(OP))?;
                    for item in t.iter().map_err(backend(OP))? {
                        let (k, v) = item.map_err(backend(OP))?;
                        if v.value().3 < started_before_ms {
                            stale.push(k.value());
                        }
                    }
                }
                for (a, d) in &stale {
                    drop_upload(txn, &AccountId(*a), &DeviceId(*d), None)?;
                }
                Ok(WriteOutcome::SnapshotUploadsExpired(stale.len() as u64))
            }
            WriteOp::MailboxPut {
                slot,
                blob,
                expires_at_ms,
                now_ms,
                owner,
            } => {
                const OP: &str = "mailbox put";
                let live = txn
                    .open_table(MAILBOX)
                    .map_err(backend(OP))?
                    .get(slot)
                    .map_err(backend(OP))?
                    .is_some_and(|g| expiry(g.value()) > now_ms);
                if live {
                    return Err(StoreError::MailboxTaken);
                }
                // An expired blob that was never swept stops counting now.
                release_mailbox(txn, &slot)?;
                if let Some(o) = owner {
                    let held = txn
                        .open_table(MAILBOX_OWNED)
                        .map_err(backend(OP))?
                        .range((o.account.0, [0u8; 32])..=(o.account.0, [0xffu8; 32]))
                        .map_err(backend(OP))?
                        .count();
                    if held >= o.blobs_max as usize {
                        return Err(StoreError::MailboxFull { limit: o.blobs_max });
                    }
                    let len = blob.len() as u64;
                    add_account_bytes(txn, &o.account, len, Some(o.quota_bytes))?;
                    txn.open_table(MAILBOX_OWNER)
                        .map_err(backend(OP))?
                        .insert(slot, o.account.0)
                        .map_err(backend(OP))?;
                    txn.open_table(MAILBOX_OWNED)
                        .map_err(backend(OP))?
                        .insert((o.account.0, slot), len)
                        .map_err(backend(OP))?;
                }
                let mut v = expires_at_ms.to_be_bytes().to_vec();
                v.extend_from_slice(&blob);
                txn.open_table(MAILBOX)
                    .map_err(backend(OP))?
                    .insert(slot, v.as_slice())
                    .map_err(backend(OP))?;
                Ok(WriteOutcome::MailboxStored)
            }
            WriteOp::MailboxTake { slot, now_ms } => {
                let mut t = txn.open_table(MAILBOX).map_err(backend("mailbox take"))?;
                let got = t
                    .get(slot)
                    .map_err(backend("mailbox take"))?
                    .map(|g| g.value().to_vec());
                match got {
                    // A blob (not the tombstone of an earlier take) that is still live.
                    Some(v) if expiry(&v) > now_ms && v.len() > 8 => {
                        // The slot stays used until the blob would have expired (the tombstone
                        // is its expiry alone): a later put is `MailboxTaken`, so a second
                        // device redeeming a pairing token is told at once, with no window
                        // between the take and a marker put.
                        t.insert(slot, &v[..8]).map_err(backend("mailbox take"))?;
                        drop(t);
                        release_mailbox(txn, &slot)?;
                        Ok(WriteOutcome::MailboxTaken(v[8..].to_vec()))
                    }
                    _ => Err(StoreError::MailboxNotFound),
                }
            }
            WriteOp::MailboxExpire { now_ms } => {
                const OP: &str = "mailbox expire";
                let mut gone = Vec::new();
                {
                    let t = txn.open_table(MAILBOX).map_err(backend(OP))?;
                    for item in t.iter().map_err(backend(OP))? {
                        let (k, v) = item.map_err(backend(OP))?;
                        if expiry(v.value()) <= now_ms {
                            gone.push(k.value());
                        }
                    }
                }
                let mut t = txn.open_table(MAILBOX).map_err(backend(OP))?;
                for slot in &gone {
                    t.remove(*slot).map_err(backend(OP))?;
                }
                drop(t);
                for slot in &gone {
                    release_mailbox(txn, slot)?;
                }
                Ok(WriteOutcome::MailboxExpired(gone.len() as u64))
            }
            WriteOp::CreateToken { token_hash, now_ms } => {
                let mut t = txn.open_table(TOKENS).map_err(backend("token create"))?;
                t.insert(token_hash, now_ms)
                    .map_err(backend("token create"))?;
                Ok(WriteOutcome::TokenCreated)
            }
        }
    }
}

/// SHA-256 of an entry's stored bytes (the `entry_sums` value).
fn entry_sum(stored: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(stored).into()
}

/// What a pull serves in place of a damaged stored entry: the right account,
/// device and seq (so readers' cursors move on) and a signature that never
/// verifies, so every reader refuses and quarantines it.
fn damaged_placeholder(account: AccountId, device: DeviceId, seq: u64) -> SealedEntry {
    SealedEntry {
        account,
        device,
        epoch: 0,
        seq,
        nonce: [0; kith_protocol::envelope::NONCE_BYTES],
        ciphertext: Vec::new(),
        signature: ed25519_dalek::Signature::from_bytes(&[0; 64]),
    }
}

fn expiry(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn load_state(
    txn: &WriteTransaction,
    account: &AccountId,
) -> Result<Option<Membership>, StoreError> {
    const OP: &str = "membership state";
    let t = txn.open_table(MEMBER_STATE).map_err(backend(OP))?;
    let v = t.get(account.0).map_err(backend(OP))?;
    match v {
        Some(g) => Ok(Some(
            postcard::from_bytes(g.value()).map_err(|e| corrupt(OP, e))?,
        )),
        None => Ok(None),
    }
}

/// The device must be a member now; entries/snapshots sealed under `epoch`
/// must be of the current epoch.
fn check_member(
    txn: &WriteTransaction,
    account: &AccountId,
    device: &DeviceId,
    epochs: impl IntoIterator<Item = u64>,
) -> Result<(), StoreError> {
    let state = load_state(txn, account)?.ok_or(StoreError::UnknownAccount)?;
    if state.revoked_at(device).is_some() {
        return Err(StoreError::Revoked);
    }
    if !state.is_member(device) {
        return Err(StoreError::NotAMember);
    }
    for e in epochs {
        if e != state.epoch() {
            return Err(StoreError::EpochStale {
                current: state.epoch(),
            });
        }
    }
    Ok(())
}

fn append_membership(
    txn: &WriteTransaction,
    account: AccountId,
    ops: Vec<MembershipOp>,
    skip_known: bool,
    (token_hash, open_registration): (Option<[u8; 32]>, bool),
    (now_ms, members_max): (u64, u32),
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "append membership";
    let existing = load_state(txn, &account)?;
    let new_account = existing.is_none();
    // An account the operator deleted cannot be registered again; checked
    // before anything is written.
    if new_account && super::admin::is_deleted(txn, &account).map_err(backend(OP))? {
        return Err(StoreError::AccountDeleted);
    }
    let mut state = existing.unwrap_or_else(|| Membership::new(account));
    let before: Vec<DeviceId> = state.members().map(|m| m.keys.device).collect();
    let mut log = txn.open_table(MEMBERSHIP).map_err(backend(OP))?;
    let mut appended = Vec::new();
    for op in ops {
        let pos = op.body.position;
        if pos <= state.len() {
            let same = log
                .get((account.0, pos))
                .map_err(backend(OP))?
                .is_some_and(|g| encode(OP, &op).is_ok_and(|e| e == g.value()));
            if skip_known && same {
                continue;
            }
            if skip_known {
                return Err(StoreError::Membership(
                    kith_protocol::MembershipError::Fork { position: pos },
                ));
            }
            return Err(StoreError::MembershipBehind { len: state.len() });
        }
        if pos > state.len() + 1 {
            return Err(StoreError::MembershipBehind { len: state.len() });
        }
        state.apply(&op)?;
        appended.push(op);
    }
    if state.is_empty() {
        return Err(StoreError::UnknownAccount);
    }
    let members = state.members().count();
    if members > members_max as usize && members > before.len() {
        return Err(StoreError::TooManyDevices { limit: members_max });
    }
    if new_account {
        // Only a genesis can have made a state out of nothing.
        debug_assert!(matches!(
            appended.first().map(|o| &o.body.change),
            Some(Change::Genesis { .. })
        ));
        if !open_registration {
            let hash = token_hash.ok_or(StoreError::RegistrationRequired)?;
            let mut tokens = txn.open_table(TOKENS).map_err(backend(OP))?;
            if tokens.remove(hash).map_err(backend(OP))?.is_none() {
                return Err(StoreError::BadToken);
            }
        }
        txn.open_table(ACCOUNTS)
            .map_err(backend(OP))?
            .insert(account.0, (now_ms, 0u64, 0u64))
            .map_err(backend(OP))?;
    }
    // Written only now that every check passed: a refused op leaves no row
    // (a batch commits the ops around it).
    for op in &appended {
        let enc = encode(OP, op)?;
        log.insert((account.0, op.body.position), enc.as_slice())
            .map_err(backend(OP))?;
    }
    drop(log);
    let enc = encode(OP, &state)?;
    txn.open_table(MEMBER_STATE)
        .map_err(backend(OP))?
        .insert(account.0, enc.as_slice())
        .map_err(backend(OP))?;
    let revoked = before.into_iter().filter(|d| !state.is_member(d)).collect();
    Ok(WriteOutcome::MembershipAppended {
        new_account,
        appended,
        revoked,
        state: Box::new(state),
    })
}

fn push(
    txn: &WriteTransaction,
    account: AccountId,
    device: DeviceId,
    entries: Vec<SealedEntry>,
    quota_bytes: u64,
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "push";
    check_member(txn, &account, &device, entries.iter().map(|e| e.epoch))?;
    let mut accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
    let (created, bytes, count) = accounts
        .get(account.0)
        .map_err(backend(OP))?
        .map(|g| g.value())
        .ok_or(StoreError::UnknownAccount)?;
    let mut heads = txn.open_table(HEADS).map_err(backend(OP))?;
    let (stored_head, floor) = heads
        .get((account.0, device.0))
        .map_err(backend(OP))?
        .map(|g| g.value())
        .unwrap_or((0, 0));
    let mut table = txn.open_table(ENTRIES).map_err(backend(OP))?;
    let mut sums = txn.open_table(SUMS).map_err(backend(OP))?;

    // Validate everything before writing anything.
    let mut head = stored_head;
    let mut fresh: Vec<(SealedEntry, Vec<u8>)> = Vec::new();
    let mut repairs: Vec<(u64, Vec<u8>, u64)> = Vec::new();
    let mut add_bytes = 0u64;
    for e in entries {
        let enc = encode(OP, &e)?;
        if e.seq == head.saturating_add(1) {
            head = e.seq;
            add_bytes = add_bytes.saturating_add(enc.len() as u64);
            fresh.push((e, enc));
        } else if e.seq == 0 || e.seq > head {
            return Err(StoreError::SeqGap {
                expected: head.saturating_add(1),
            });
        } else if e.seq <= floor {
            // Covered by the snapshot and pruned: nothing left to compare.
        } else if e.seq <= stored_head {
            let key = (account.0, device.0, e.seq);
            let stored = table
                .get(key)
                .map_err(backend(OP))?
                .map(|g| g.value().to_vec());
            if stored.as_deref() == Some(enc.as_slice()) {
                continue;
            }
            // Not the stored bytes: a fork, unless the stored copy is
            // damaged and these are exactly the bytes first stored (their
            // hash is the recorded one): then they repair it.
            let sum = sums
                .get(key)
                .map_err(backend(OP))?
                .map(|g| g.value().to_vec());
            let original = sum.as_deref() == Some(entry_sum(&enc).as_slice());
            let damaged = stored
                .as_deref()
                .is_none_or(|b| sum.as_deref() != Some(entry_sum(b).as_slice()));
            if !(original && damaged) {
                return Err(StoreError::SeqFork { seq: e.seq });
            }
            let old_len = stored.map_or(0, |b| b.len() as u64);
            if !repairs.iter().any(|(seq, ..)| *seq == e.seq) {
                repairs.push((e.seq, enc, old_len));
            }
        } else {
            // A duplicate inside this very batch.
            let same = fresh.iter().any(|(f, fenc)| f.seq == e.seq && *fenc == enc);
            if !same {
                return Err(StoreError::SeqFork { seq: e.seq });
            }
        }
    }
    if !fresh.is_empty() && bytes.saturating_add(add_bytes) > quota_bytes {
        return Err(StoreError::QuotaBytes {
            limit_bytes: quota_bytes,
        });
    }
    for (e, enc) in &fresh {
        let key = (account.0, device.0, e.seq);
        table.insert(key, enc.as_slice()).map_err(backend(OP))?;
        sums.insert(key, entry_sum(enc).as_slice())
            .map_err(backend(OP))?;
    }
    let mut bytes = bytes;
    for (seq, enc, old_len) in &repairs {
        tracing::warn!(
            seq,
            "a damaged stored entry was repaired by its device's re-push"
        );
        table
            .insert((account.0, device.0, *seq), enc.as_slice())
            .map_err(backend(OP))?;
        bytes = bytes
            .saturating_sub(*old_len)
            .saturating_add(enc.len() as u64);
    }
    if !repairs.is_empty() && fresh.is_empty() {
        accounts
            .insert(account.0, (created, bytes, count))
            .map_err(backend(OP))?;
    }
    if !fresh.is_empty() {
        heads
            .insert((account.0, device.0), (head, floor))
            .map_err(backend(OP))?;
        accounts
            .insert(
                account.0,
                (created, bytes + add_bytes, count + fresh.len() as u64),
            )
            .map_err(backend(OP))?;
    }
    Ok(WriteOutcome::Pushed {
        head,
        stored: fresh.into_iter().map(|(e, _)| e).collect(),
    })
}

/// Adds `add` bytes to the account's stored bytes (refused past `quota`,
/// when given) and returns the new total.
fn add_account_bytes(
    txn: &WriteTransaction,
    account: &AccountId,
    add: u64,
    quota: Option<u64>,
) -> Result<u64, StoreError> {
    const OP: &str = "account bytes";
    let mut accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
    let (created, bytes, count) = accounts
        .get(account.0)
        .map_err(backend(OP))?
        .map(|g| g.value())
        .ok_or(StoreError::UnknownAccount)?;
    let new = bytes.saturating_add(add);
    if let Some(limit_bytes) = quota
        && add > 0
        && new > limit_bytes
    {
        return Err(StoreError::QuotaBytes { limit_bytes });
    }
    accounts
        .insert(account.0, (created, new, count))
        .map_err(backend(OP))?;
    Ok(new)
}

/// Subtracts freed bytes (and entries) from the account's totals.
fn sub_account_bytes(
    txn: &WriteTransaction,
    account: &AccountId,
    bytes_freed: u64,
    entries_freed: u64,
) -> Result<(), StoreError> {
    const OP: &str = "account bytes";
    let mut accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
    let row = accounts
        .get(account.0)
        .map_err(backend(OP))?
        .map(|g| g.value());
    if let Some((created, bytes, count)) = row {
        accounts
            .insert(
                account.0,
                (
                    created,
                    bytes.saturating_sub(bytes_freed),
                    count.saturating_sub(entries_freed),
                ),
            )
            .map_err(backend(OP))?;
    }
    Ok(())
}

/// The mailbox blob at `slot` no longer counts against its owner (taken,
/// expired or overwritten after expiry).
fn release_mailbox(txn: &WriteTransaction, slot: &[u8; 32]) -> Result<(), StoreError> {
    const OP: &str = "mailbox release";
    let owner = txn
        .open_table(MAILBOX_OWNER)
        .map_err(backend(OP))?
        .remove(*slot)
        .map_err(backend(OP))?
        .map(|g| g.value());
    if let Some(acct) = owner {
        let len = txn
            .open_table(MAILBOX_OWNED)
            .map_err(backend(OP))?
            .remove((acct, *slot))
            .map_err(backend(OP))?
            .map_or(0, |g| g.value());
        sub_account_bytes(txn, &AccountId(acct), len, 0)?;
    }
    Ok(())
}

fn load_snap<T: ReadableTable<(K32, u8), &'static [u8]>>(
    t: &T,
    account: &AccountId,
    slot: u8,
) -> Result<Option<SnapRow>, StoreError> {
    const OP: &str = "read snapshot";
    match t.get((account.0, slot)).map_err(backend(OP))? {
        Some(g) => Ok(Some(
            postcard::from_bytes(g.value()).map_err(|e| corrupt(OP, e))?,
        )),
        None => Ok(None),
    }
}

/// Deletes the snapshot in `slot` (row and parts); returns the bytes freed.
fn delete_snap(txn: &WriteTransaction, account: &AccountId, slot: u8) -> Result<u64, StoreError> {
    const OP: &str = "delete snapshot";
    let Some(row) = load_snap(&txn.open_table(SNAPS).map_err(backend(OP))?, account, slot)? else {
        return Ok(0);
    };
    txn.open_table(SNAPS)
        .map_err(backend(OP))?
        .remove((account.0, slot))
        .map_err(backend(OP))?;
    let dev = row.envelope.device.0;
    txn.open_table(PARTS)
        .map_err(backend(OP))?
        .retain_in(
            (account.0, dev, row.upload, 0)..=(account.0, dev, row.upload, u32::MAX),
            |_, _| false,
        )
        .map_err(backend(OP))?;
    Ok(snap_bytes(&row))
}

/// True if a stored snapshot of `device` keeps its parts under `upload`.
fn upload_in_use(
    txn: &WriteTransaction,
    account: &AccountId,
    device: &DeviceId,
    upload: u64,
) -> Result<bool, StoreError> {
    const OP: &str = "read snapshot";
    let t = txn.open_table(SNAPS).map_err(backend(OP))?;
    for slot in [CONFIRMED, PENDING] {
        if load_snap(&t, account, slot)?
            .is_some_and(|r| r.envelope.device == *device && r.upload == upload)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn put_snapshot(
    txn: &WriteTransaction,
    snapshot: SealedSnapshot,
    quota_bytes: u64,
    finished_upload: Option<u64>,
    now_ms: u64,
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "put snapshot";
    let (account, device) = (snapshot.account, snapshot.device);
    check_member(txn, &account, &device, [snapshot.epoch])?;
    let acct = account.0;
    {
        let heads = txn.open_table(HEADS).map_err(backend(OP))?;
        let mut seen = HashSet::new();
        for c in &snapshot.covers {
            if !seen.insert(c.device) {
                return Err(StoreError::SnapshotInvalid);
            }
            let (head, _) = heads
                .get((acct, c.device.0))
                .map_err(backend(OP))?
                .map(|g| g.value())
                .unwrap_or((0, 0));
            if c.seq > head {
                return Err(StoreError::SnapshotInvalid);
            }
        }
    }
    let (confirmed, pending) = {
        let t = txn.open_table(SNAPS).map_err(backend(OP))?;
        (
            load_snap(&t, &account, CONFIRMED)?,
            load_snap(&t, &account, PENDING)?,
        )
    };
    let id = super::snapshot_id(&snapshot);
    let newest = pending.as_ref().or(confirmed.as_ref());
    if let Some(old) = newest {
        if super::snapshot_id(&old.envelope) == id {
            // A re-sent snapshot: already stored (its upload's parts, if any
            // are left, go).
            if let Some(u) = finished_upload {
                drop_upload(txn, &account, &device, Some(u))?;
            }
            return Ok(WriteOutcome::SnapshotStored { pruned_entries: 0 });
        }
        for oc in &old.envelope.covers {
            let new_seq = snapshot
                .covers
                .iter()
                .find(|c| c.device == oc.device)
                .map_or(0, |c| c.seq);
            if new_seq < oc.seq {
                return Err(StoreError::SnapshotStale);
            }
        }
    }
    let mut envelope = snapshot;
    let ciphertext = std::mem::take(&mut envelope.ciphertext);
    let envelope_bytes = postcard::experimental::serialized_size(&envelope).map_or(0, |n| n as u64);
    let (upload, part_ends, added) = match finished_upload {
        Some(u) => {
            if !ciphertext.is_empty() {
                return Err(StoreError::SnapshotInvalid);
            }
            let current = txn
                .open_table(UPLOADS)
                .map_err(backend(OP))?
                .get((acct, device.0))
                .map_err(backend(OP))?
                .map(|g| g.value());
            let Some((_, count, _, _)) = current.filter(|c| c.0 == u) else {
                return Err(StoreError::UploadIncomplete { parts_stored: 0 });
            };
            let mut ends = Vec::new();
            let mut end = 0u64;
            {
                let parts = txn.open_table(PARTS).map_err(backend(OP))?;
                for item in parts
                    .range((acct, device.0, u, 0)..=(acct, device.0, u, u32::MAX))
                    .map_err(backend(OP))?
                {
                    let (k, v) = item.map_err(backend(OP))?;
                    if k.value().3 as usize != ends.len() {
                        break;
                    }
                    end += v.value().len() as u64;
                    ends.push(end);
                }
            }
            if ends.len() as u64 != count {
                return Err(StoreError::UploadIncomplete {
                    parts_stored: u32::try_from(ends.len()).unwrap_or(u32::MAX),
                });
            }
            // The parts' bytes were counted as they arrived; they stay as the
            // snapshot's ciphertext, so only the envelope adds.
            (u, ends, envelope_bytes)
        }
        None => {
            let mut id8 = [0u8; 8];
            id8.copy_from_slice(&id[..8]);
            let u = u64::from_le_bytes(id8);
            let ends = if ciphertext.is_empty() {
                Vec::new()
            } else {
                vec![ciphertext.len() as u64]
            };
            (u, ends, envelope_bytes + ciphertext.len() as u64)
        }
    };
    // Everything checked: replace the pending snapshot.
    let freed = delete_snap(txn, &account, PENDING)?;
    let bytes = {
        let accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
        accounts
            .get(acct)
            .map_err(backend(OP))?
            .map(|g| g.value().1)
            .ok_or(StoreError::UnknownAccount)?
    };
    let new_bytes = bytes.saturating_sub(freed).saturating_add(added);
    if new_bytes > quota_bytes && new_bytes > bytes {
        return Err(StoreError::QuotaBytes {
            limit_bytes: quota_bytes,
        });
    }
    sub_account_bytes(txn, &account, freed, 0)?;
    add_account_bytes(txn, &account, added, None)?;
    match finished_upload {
        Some(_) => {
            // The upload is finished: its row goes, its parts stay.
            txn.open_table(UPLOADS)
                .map_err(backend(OP))?
                .remove((acct, device.0))
                .map_err(backend(OP))?;
        }
        None => {
            let in_upload = txn
                .open_table(UPLOADS)
                .map_err(backend(OP))?
                .get((acct, device.0))
                .map_err(backend(OP))?
                .is_some_and(|g| g.value().0 == upload);
            if in_upload {
                drop_upload(txn, &account, &device, Some(upload))?;
            }
            if !ciphertext.is_empty() {
                txn.open_table(PARTS)
                    .map_err(backend(OP))?
                    .insert((acct, device.0, upload, 0), ciphertext.as_slice())
                    .map_err(backend(OP))?;
            }
        }
    }
    let row = SnapRow {
        envelope,
        stored_ms: now_ms,
        upload,
        part_ends,
    };
    let enc = encode(OP, &row)?;
    txn.open_table(SNAPS)
        .map_err(backend(OP))?
        .insert((acct, PENDING), enc.as_slice())
        .map_err(backend(OP))?;
    Ok(WriteOutcome::SnapshotStored { pruned_entries: 0 })
}

/// Makes the pending snapshot `id` the confirmed one: prunes the entries it
/// covers, raises the floors, deletes the previous confirmed snapshot.
/// `by` is the device that opened it (`None`: the safety window passed).
fn confirm_snapshot(
    txn: &WriteTransaction,
    account: &AccountId,
    by: Option<&DeviceId>,
    id: &[u8; 32],
) -> Result<u64, StoreError> {
    const OP: &str = "confirm snapshot";
    let (confirmed, pending) = {
        let t = txn.open_table(SNAPS).map_err(backend(OP))?;
        (
            load_snap(&t, account, CONFIRMED)?,
            load_snap(&t, account, PENDING)?,
        )
    };
    let Some(p) = pending.filter(|p| super::snapshot_id(&p.envelope) == *id) else {
        if confirmed.is_some_and(|c| super::snapshot_id(&c.envelope) == *id) {
            return Ok(0);
        }
        return Err(StoreError::SnapshotChanged);
    };
    if let Some(d) = by {
        check_member(txn, account, d, [])?;
        if *d == p.envelope.device {
            return Err(StoreError::SnapshotOwn);
        }
    }
    let acct = account.0;
    let mut heads = txn.open_table(HEADS).map_err(backend(OP))?;
    let mut table = txn.open_table(ENTRIES).map_err(backend(OP))?;
    let mut sums = txn.open_table(SUMS).map_err(backend(OP))?;
    let (mut pruned, mut pruned_bytes) = (0u64, 0u64);
    for c in &p.envelope.covers {
        let (head, floor) = heads
            .get((acct, c.device.0))
            .map_err(backend(OP))?
            .map(|g| g.value())
            .unwrap_or((0, 0));
        if c.seq <= floor {
            continue;
        }
        let range = (acct, c.device.0, floor + 1)..=(acct, c.device.0, c.seq);
        for item in table.range(range.clone()).map_err(backend(OP))? {
            let (_, v) = item.map_err(backend(OP))?;
            pruned_bytes += v.value().len() as u64;
            pruned += 1;
        }
        table
            .retain_in(range.clone(), |_, _| false)
            .map_err(backend(OP))?;
        sums.retain_in(range, |_, _| false).map_err(backend(OP))?;
        heads
            .insert((acct, c.device.0), (head.max(c.seq), c.seq))
            .map_err(backend(OP))?;
    }
    drop((heads, table, sums));
    let freed = delete_snap(txn, account, CONFIRMED)?;
    sub_account_bytes(txn, account, pruned_bytes + freed, pruned)?;
    let enc = encode(OP, &p)?;
    let mut snaps = txn.open_table(SNAPS).map_err(backend(OP))?;
    snaps.remove((acct, PENDING)).map_err(backend(OP))?;
    snaps
        .insert((acct, CONFIRMED), enc.as_slice())
        .map_err(backend(OP))?;
    Ok(pruned)
}

/// Deletes `device`'s unfinished upload (only if it is `upload`, when given);
/// its bytes stop counting against the account.
fn drop_upload(
    txn: &WriteTransaction,
    account: &AccountId,
    device: &DeviceId,
    upload: Option<u64>,
) -> Result<(), StoreError> {
    const OP: &str = "drop upload";
    let key = (account.0, device.0);
    let mut uploads = txn.open_table(UPLOADS).map_err(backend(OP))?;
    let current = uploads.get(key).map_err(backend(OP))?.map(|g| g.value());
    match current {
        Some((id, _, held, _)) if upload.is_none_or(|u| u == id) => {
            uploads.remove(key).map_err(backend(OP))?;
            drop(uploads);
            txn.open_table(PARTS)
                .map_err(backend(OP))?
                .retain_in(
                    (account.0, device.0, id, 0)..=(account.0, device.0, id, u32::MAX),
                    |_, _| false,
                )
                .map_err(backend(OP))?;
            sub_account_bytes(txn, account, held, 0)?;
        }
        _ => {}
    }
    Ok(())
}

fn put_part(
    txn: &WriteTransaction,
    (account, device): (AccountId, DeviceId),
    (upload, index, count): (u64, u32, u32),
    bytes: &[u8],
    (upload_bytes_max, quota_bytes): (u64, u64),
    now_ms: u64,
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "put snapshot part";
    if count == 0 || count > kith_protocol::msg::SNAPSHOT_PARTS_MAX || index >= count {
        return Err(StoreError::UploadInconsistent { index, count });
    }
    if txn
        .open_table(ACCOUNTS)
        .map_err(backend(OP))?
        .get(account.0)
        .map_err(backend(OP))?
        .is_none()
    {
        return Err(StoreError::UnknownAccount);
    }
    // The parts of a stored snapshot are never written again.
    if upload_in_use(txn, &account, &device, upload)? {
        return Err(StoreError::UploadInconsistent { index, count });
    }
    let key = (account.0, device.0);
    let current = txn
        .open_table(UPLOADS)
        .map_err(backend(OP))?
        .get(key)
        .map_err(backend(OP))?
        .map(|g| g.value());
    let (held, started) = match current {
        Some((id, n, held, started)) if id == upload => {
            if n != u64::from(count) {
                return Err(StoreError::UploadInconsistent { index, count });
            }
            (held, started)
        }
        Some(_) => {
            // A new upload replaces the device's unfinished one.
            drop_upload(txn, &account, &device, None)?;
            (0, now_ms)
        }
        None => (0, now_ms),
    };
    let old = txn
        .open_table(PARTS)
        .map_err(backend(OP))?
        .get((account.0, device.0, upload, index))
        .map_err(backend(OP))?
        .map_or(0, |g| g.value().len() as u64);
    let new_held = held.saturating_sub(old) + bytes.len() as u64;
    if new_held > upload_bytes_max {
        return Err(StoreError::UploadTooLarge {
            limit_bytes: upload_bytes_max,
        });
    }
    // Parts count against the account's quota as they arrive.
    add_account_bytes(
        txn,
        &account,
        (bytes.len() as u64).saturating_sub(old),
        Some(quota_bytes),
    )?;
    sub_account_bytes(txn, &account, old.saturating_sub(bytes.len() as u64), 0)?;
    txn.open_table(PARTS)
        .map_err(backend(OP))?
        .insert((account.0, device.0, upload, index), bytes)
        .map_err(backend(OP))?;
    txn.open_table(UPLOADS)
        .map_err(backend(OP))?
        .insert(key, (upload, u64::from(count), new_held, started))
        .map_err(backend(OP))?;
    Ok(WriteOutcome::SnapshotPartStored)
}

/// Opens the file with a bounded cache ([`CACHE_BYTES`]).
fn open_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
}

/// Schema 2 -> 3: the stored snapshot of each account becomes its confirmed
/// snapshot (its ciphertext one part); unfinished uploads are dropped
/// (devices upload again); mailbox blobs stay (no owner: they count
/// against no account).
fn migrate_from_2(txn: &WriteTransaction) -> Result<(), StoreError> {
    const OP: &str = "migrate schema 2";
    let mut rows = Vec::new();
    {
        let old = txn.open_table(OLD_SNAPSHOTS).map_err(backend(OP))?;
        for item in old.iter().map_err(backend(OP))? {
            let (k, v) = item.map_err(backend(OP))?;
            let s: SealedSnapshot = postcard::from_bytes(v.value()).map_err(|e| corrupt(OP, e))?;
            rows.push((k.value(), s));
        }
    }
    for (acct, mut s) in rows {
        let ciphertext = std::mem::take(&mut s.ciphertext);
        let id = super::snapshot_id(&s);
        let mut id8 = [0u8; 8];
        id8.copy_from_slice(&id[..8]);
        let upload = u64::from_le_bytes(id8);
        let part_ends = if ciphertext.is_empty() {
            Vec::new()
        } else {
            txn.open_table(PARTS)
                .map_err(backend(OP))?
                .insert((acct, s.device.0, upload, 0), ciphertext.as_slice())
                .map_err(backend(OP))?;
            vec![ciphertext.len() as u64]
        };
        let row = SnapRow {
            envelope: s,
            stored_ms: 0,
            upload,
            part_ends,
        };
        let enc = encode(OP, &row)?;
        txn.open_table(SNAPS)
            .map_err(backend(OP))?
            .insert((acct, CONFIRMED), enc.as_slice())
            .map_err(backend(OP))?;
    }
    txn.delete_table(OLD_SNAPSHOTS).map_err(backend(OP))?;
    txn.delete_table(OLD_PARTS).map_err(backend(OP))?;
    let mut uploads = txn.open_table(UPLOADS).map_err(backend(OP))?;
    uploads.retain(|_, _| false).map_err(backend(OP))?;
    Ok(())
}

impl RelayStore for RedbStore {
    fn apply(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        let n = ops.len();
        let fail_all = |op: &'static str, msg: String| {
            (0..n)
                .map(|_| {
                    Err(StoreError::Backend {
                        op,
                        source: msg.clone().into(),
                    })
                })
                .collect::<Vec<_>>()
        };
        let results = self.with_db("begin write", |db| {
            let txn = match db.begin_write() {
                Ok(t) => t,
                Err(e) => return Ok(fail_all("begin write", e.to_string())),
            };
            let mut results = Vec::with_capacity(n);
            for op in ops {
                let r = Self::apply_one(&txn, op);
                if let Err(StoreError::Backend { op, source }) = &r {
                    // A backend failure may have left partial writes: drop the
                    // whole transaction so nothing of the batch is committed.
                    let msg = source.to_string();
                    let op = *op;
                    let _ = txn.abort();
                    return Ok(fail_all(op, msg));
                }
                results.push(r);
            }
            Ok(match txn.commit() {
                Ok(()) => results,
                Err(e) => fail_all("commit", e.to_string()),
            })
        });
        let results = match results {
            Ok(r) => r,
            Err(e) => return fail_all("reopen", e.to_string()),
        };
        if results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Backend { .. })))
        {
            // redb refuses every write after an I/O error until reopened.
            if let Err(e) = self.reopen("reopen") {
                tracing::warn!(error = %e, "relay database could not be reopened yet");
            }
        }
        results
    }

    fn mailbox_live(&self, slot: &[u8; 32], now_ms: u64) -> Result<bool, StoreError> {
        const OP: &str = "mailbox peek";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(MAILBOX).map_err(backend(OP))?;
        // A tombstone (expiry only) holds no blob to take.
        Ok(t.get(*slot)
            .map_err(backend(OP))?
            .is_some_and(|g| g.value().len() > 8 && expiry(g.value()) > now_ms))
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe write";
        let r = self.with_db(OP, |db| {
            let txn = db.begin_write().map_err(backend(OP))?;
            {
                let mut meta = txn.open_table(META).map_err(backend(OP))?;
                let n = meta
                    .get("probe")
                    .map_err(backend(OP))?
                    .map_or(0, |g| g.value());
                meta.insert("probe", n.wrapping_add(1))
                    .map_err(backend(OP))?;
            }
            txn.commit().map_err(backend(OP))
        });
        if r.is_err() {
            let _ = self.reopen(OP);
        }
        r
    }

    fn pull(
        &self,
        account: &AccountId,
        cursors: &[Cursor],
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<PullPage, StoreError> {
        const OP: &str = "pull";
        let txn = self.read_txn(OP)?;
        let heads = txn.open_table(HEADS).map_err(backend(OP))?;
        let wanted: BTreeMap<DeviceId, u64> = cursors.iter().map(|c| (c.device, c.seq)).collect();
        let mut devices = Vec::new();
        for item in heads
            .range((account.0, [0u8; 32])..=(account.0, [0xffu8; 32]))
            .map_err(backend(OP))?
        {
            let (k, v) = item.map_err(backend(OP))?;
            let dev = DeviceId(k.value().1);
            let (head, floor) = v.value();
            let from = wanted.get(&dev).copied().unwrap_or(0);
            if from < floor {
                return Err(StoreError::SnapshotNeeded);
            }
            if from < head {
                devices.push((dev, from, head));
            }
        }
        let table = txn.open_table(ENTRIES).map_err(backend(OP))?;
        let sums = txn.open_table(SUMS).map_err(backend(OP))?;
        let mut out = Vec::new();
        let mut size = 0usize;
        for (dev, from, head) in devices {
            for item in table
                .range((account.0, dev.0, from + 1)..=(account.0, dev.0, head))
                .map_err(backend(OP))?
            {
                let (k, v) = item.map_err(backend(OP))?;
                if out.len() >= entries_max.max(1)
                    || (!out.is_empty() && size + v.value().len() > bytes_max)
                {
                    return Ok(PullPage {
                        entries: out,
                        more: true,
                    });
                }
                size += v.value().len();
                let (_, _, seq) = k.value();
                let sum = sums
                    .get((account.0, dev.0, seq))
                    .map_err(backend(OP))?
                    .map(|g| g.value().to_vec());
                let intact = sum
                    .as_deref()
                    .is_none_or(|s| s == entry_sum(v.value()).as_slice());
                let decoded = if intact {
                    postcard::from_bytes::<SealedEntry>(v.value()).ok()
                } else {
                    None
                };
                match decoded {
                    Some(e) if e.account == *account && e.device == dev && e.seq == seq => {
                        out.push(e);
                    }
                    _ => {
                        // Damaged on disk. One bad entry must not stop the
                        // account: readers get a placeholder that cannot
                        // verify, quarantine it and move on; the writing
                        // device can repair it by re-pushing the original.
                        tracing::error!(
                            device = %dev,
                            seq,
                            "stored entry is damaged (checksum or decoding); serving a placeholder"
                        );
                        out.push(damaged_placeholder(*account, dev, seq));
                    }
                }
            }
        }
        Ok(PullPage {
            entries: out,
            more: false,
        })
    }

    fn heads(&self, account: &AccountId) -> Result<Heads, StoreError> {
        const OP: &str = "heads";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(HEADS).map_err(backend(OP))?;
        let mut h = Heads::default();
        for item in t
            .range((account.0, [0u8; 32])..=(account.0, [0xffu8; 32]))
            .map_err(backend(OP))?
        {
            let (k, v) = item.map_err(backend(OP))?;
            let device = DeviceId(k.value().1);
            let (head, floor) = v.value();
            h.heads.push(Cursor { device, seq: head });
            h.floors.push(Cursor { device, seq: floor });
        }
        Ok(h)
    }

    fn snapshots(&self, account: &AccountId) -> Result<super::Snapshots, StoreError> {
        const OP: &str = "get snapshots";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(SNAPS).map_err(backend(OP))?;
        Ok(super::Snapshots {
            confirmed: load_snap(&t, account, CONFIRMED)?.map(|r| r.info()),
            pending: load_snap(&t, account, PENDING)?.map(|r| r.info()),
        })
    }

    fn snapshot_range(
        &self,
        account: &AccountId,
        snapshot_id: Option<[u8; 32]>,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Option<SnapshotRange>, StoreError> {
        const OP: &str = "snapshot range";
        let txn = self.read_txn(OP)?;
        let row = {
            let t = txn.open_table(SNAPS).map_err(backend(OP))?;
            let (c, p) = (
                load_snap(&t, account, CONFIRMED)?,
                load_snap(&t, account, PENDING)?,
            );
            match snapshot_id {
                None => p.or(c),
                Some(id) => [p, c]
                    .into_iter()
                    .flatten()
                    .find(|r| super::snapshot_id(&r.envelope) == id),
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let total = row.total_bytes();
        let start = offset.min(total);
        let end = start.saturating_add(bytes_max as u64).min(total);
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        // The first part holding `start`; then on until `end`.
        let first = row.part_ends.partition_point(|e| *e <= start);
        let parts = txn.open_table(PARTS).map_err(backend(OP))?;
        let dev = row.envelope.device.0;
        let mut part_start = if first == 0 {
            0
        } else {
            row.part_ends[first - 1]
        };
        for (i, part_end) in row.part_ends.iter().enumerate().skip(first) {
            if part_start >= end {
                break;
            }
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let g = parts
                .get((account.0, dev, row.upload, index))
                .map_err(backend(OP))?
                .ok_or_else(|| StoreError::Backend {
                    op: OP,
                    source: "a stored snapshot misses a part".into(),
                })?;
            let v = g.value();
            let from = usize::try_from(start.saturating_sub(part_start)).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(*part_end) - part_start).unwrap_or(usize::MAX);
            out.extend_from_slice(v.get(from..to).ok_or_else(|| StoreError::Backend {
                op: OP,
                source: "a stored snapshot part has the wrong length".into(),
            })?);
            part_start = *part_end;
        }
        let snapshot_id = super::snapshot_id(&row.envelope);
        let mut snapshot = row.envelope;
        snapshot.ciphertext = out;
        Ok(Some(SnapshotRange {
            snapshot,
            snapshot_id,
            total_bytes: total,
        }))
    }

    fn snapshot_upload(
        &self,
        account: &AccountId,
        device: &DeviceId,
        upload: u64,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, StoreError> {
        const OP: &str = "read snapshot upload";
        let txn = self.read_txn(OP)?;
        let current = txn
            .open_table(UPLOADS)
            .map_err(backend(OP))?
            .get((account.0, device.0))
            .map_err(backend(OP))?
            .map(|g| g.value());
        let Some((_, count, _, _)) = current.filter(|c| c.0 == upload) else {
            return Err(StoreError::UploadIncomplete { parts_stored: 0 });
        };
        let parts = txn.open_table(PARTS).map_err(backend(OP))?;
        let mut total = 0u64;
        let mut n = 0u32;
        for item in parts
            .range((account.0, device.0, upload, 0)..=(account.0, device.0, upload, u32::MAX))
            .map_err(backend(OP))?
        {
            let (k, v) = item.map_err(backend(OP))?;
            if k.value().3 != n {
                break;
            }
            visit(v.value());
            total += v.value().len() as u64;
            n += 1;
        }
        if u64::from(n) != count {
            return Err(StoreError::UploadIncomplete { parts_stored: n });
        }
        Ok(total)
    }

    fn membership(&self, account: &AccountId) -> Result<Option<Membership>, StoreError> {
        const OP: &str = "membership";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(MEMBER_STATE).map_err(backend(OP))?;
        let v = t.get(account.0).map_err(backend(OP))?;
        match v {
            Some(g) => Ok(Some(
                postcard::from_bytes(g.value()).map_err(|e| corrupt(OP, e))?,
            )),
            None => Ok(None),
        }
    }

    fn membership_ops(
        &self,
        account: &AccountId,
        after: u64,
        ops_max: usize,
    ) -> Result<Vec<MembershipOp>, StoreError> {
        const OP: &str = "membership ops";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(MEMBERSHIP).map_err(backend(OP))?;
        let mut out = Vec::new();
        for item in t
            .range((account.0, after.saturating_add(1))..=(account.0, u64::MAX))
            .map_err(backend(OP))?
        {
            if out.len() >= ops_max {
                break;
            }
            let (_, v) = item.map_err(backend(OP))?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| corrupt(OP, e))?);
        }
        Ok(out)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        const OP: &str = "stats";
        let txn = self.read_txn(OP)?;
        let t = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
        let mut s = StoreStats::default();
        for item in t.iter().map_err(backend(OP))? {
            let (_, v) = item.map_err(backend(OP))?;
            let (_, bytes, entries) = v.value();
            s.accounts += 1;
            s.bytes += bytes;
            s.entries += entries;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    //! Model-based property test of the log invariants: whatever sequence of
    //! pushes (in order, re-sends, gaps, forks) and snapshots arrives, the
    //! store agrees with a plain in-memory model of the specification.

    use std::collections::BTreeMap;

    use ed25519_dalek::SigningKey;
    use kith_protocol::{
        AccountId, Author, Cursor, DeviceId, MemberKeys, Rotation, SealedEntry, SealedEpochKey,
        SealedSnapshot,
    };
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push {
            dev: usize,
            from: u64,
            count: u64,
            tweak: bool,
        },
        Snapshot {
            upto: [u64; 2],
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize, 0..12u64, 0..5u64, proptest::bool::weighted(0.15))
                .prop_map(|(dev, from, count, tweak)| Op::Push { dev, from, count, tweak }),
            1 => (0..12u64, 0..12u64).prop_map(|(a, b)| Op::Snapshot { upto: [a, b] }),
        ]
    }

    fn entry(key: &SigningKey, acct: AccountId, seq: u64, tweak: bool) -> SealedEntry {
        let payload = format!("entry {seq} {}", if tweak { "forked" } else { "original" });
        SealedEntry::seal(key, acct, 1, seq, [0; 24], payload.into_bytes())
    }

    /// Genesis (root key `root`) with `first` as the only member, then
    /// `others` added by it: the ops that register an account.
    fn register(root: &SigningKey, first: &SigningKey, others: &[&SigningKey]) -> WriteOp {
        let acct = AccountId::from(root.verifying_key());
        let mk = |k: &SigningKey| MemberKeys {
            device: k.verifying_key().into(),
            seal_key: [0; 32],
        };
        let sealed = |k: &SigningKey| SealedEpochKey {
            to: k.verifying_key().into(),
            enc: [0; 32],
            ciphertext: vec![0; 48],
        };
        let mut m = Membership::new(acct);
        let g = m.next_op(
            Author::Root,
            root,
            1,
            Change::Genesis {
                first: mk(first),
                rotation: Rotation {
                    keys: vec![sealed(first)],
                    wrapped: vec![],
                },
            },
            0,
        );
        m.apply(&g).unwrap();
        let mut ops = vec![g];
        for o in others {
            let add = m.next_op(
                Author::Device(first.verifying_key().into()),
                first,
                1,
                Change::Add {
                    member: mk(o),
                    key: sealed(o),
                },
                0,
            );
            m.apply(&add).unwrap();
            ops.push(add);
        }
        WriteOp::AppendMembership {
            account: acct,
            ops,
            skip_known: true,
            token_hash: None,
            open_registration: true,
            now_ms: 0,
            members_max: 64,
        }
    }

    #[derive(Debug, Default)]
    struct Model {
        head: [u64; 2],
        floor: [u64; 2],
        stored: BTreeMap<(usize, u64), bool>,
        snapshot: Option<[u64; 2]>,
    }

    impl Model {
        /// The specification of a push: Ok(head) or the refusal.
        fn push(&mut self, dev: usize, from: u64, count: u64, tweak: bool) -> Result<u64, String> {
            let mut head = self.head[dev];
            let mut fresh = Vec::new();
            for seq in from..from + count {
                if seq == head + 1 {
                    head = seq;
                    fresh.push(seq);
                } else if seq == 0 || seq > head {
                    return Err(format!("gap {}", head + 1));
                } else if seq <= self.floor[dev] {
                } else if self.stored.get(&(dev, seq)).copied() != Some(tweak)
                    && !fresh.contains(&seq)
                {
                    return Err(format!("fork {seq}"));
                }
            }
            for seq in fresh {
                self.stored.insert((dev, seq), tweak);
            }
            self.head[dev] = head;
            Ok(head)
        }

        fn snapshot(&mut self, upto: [u64; 2]) -> Result<u64, String> {
            if (0..2).any(|d| upto[d] > self.head[d]) {
                return Err("invalid".into());
            }
            if let Some(old) = self.snapshot
                && (0..2).any(|d| upto[d] < old[d])
            {
                return Err("stale".into());
            }
            let before = self.stored.len();
            self.stored.retain(|(d, s), _| *s > upto[*d]);
            for (floor, up) in self.floor.iter_mut().zip(upto) {
                *floor = (*floor).max(up);
            }
            self.snapshot = Some(upto);
            Ok((before - self.stored.len()) as u64)
        }
    }

    fn outcome(r: Result<WriteOutcome, StoreError>) -> Result<u64, String> {
        match r {
            Ok(WriteOutcome::Pushed { head, .. }) => Ok(head),
            Ok(WriteOutcome::SnapshotStored { pruned_entries }) => Ok(pruned_entries),
            Ok(WriteOutcome::SnapshotConfirmed { pruned_entries }) => Ok(pruned_entries),
            Ok(o) => Err(format!("unexpected {o:?}")),
            Err(StoreError::SeqGap { expected }) => Err(format!("gap {expected}")),
            Err(StoreError::SeqFork { seq }) => Err(format!("fork {seq}")),
            Err(StoreError::SnapshotInvalid) => Err("invalid".into()),
            Err(StoreError::SnapshotStale) => Err("stale".into()),
            Err(e) => Err(format!("other {e}")),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn log_matches_the_specification(ops in proptest::collection::vec(op(), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
            let acct_key = SigningKey::from_bytes(&[1; 32]);
            let acct = AccountId::from(acct_key.verifying_key());
            let keys = [SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32])];
            let devs: Vec<DeviceId> = keys.iter().map(|k| k.verifying_key().into()).collect();
            let reg = store.apply(vec![register(&acct_key, &keys[0], &[&keys[1]])]);
            prop_assert!(reg[0].is_ok());
            let mut model = Model::default();
            for op in ops {
                let (want, got) = match op {
                    Op::Push { dev, from, count, tweak } => {
                        let entries = (from..from + count).map(|s| entry(&keys[dev], acct, s, tweak)).collect();
                        let got = store.apply(vec![WriteOp::Push { account: acct, device: devs[dev], entries, quota_bytes: u64::MAX }]);
                        (model.push(dev, from, count, tweak), got)
                    }
                    Op::Snapshot { upto } => {
                        let covers = (0..2).map(|d| Cursor { device: devs[d], seq: upto[d] }).collect();
                        let snapshot = SealedSnapshot::seal(&keys[0], acct, 1, covers, [0; 24], b"s".to_vec());
                        // Stored pending, then opened by the other device: confirmed.
                        let snapshot_id = crate::store::snapshot_id(&snapshot);
                        let mut got = store.apply(vec![
                            WriteOp::PutSnapshot { snapshot, quota_bytes: u64::MAX, finished_upload: None, now_ms: 0 },
                            WriteOp::ConfirmSnapshot { account: acct, device: devs[1], snapshot_id },
                        ]);
                        let confirmed = got.pop().unwrap();
                        let got = if got[0].is_err() { got } else { vec![confirmed] };
                        (model.snapshot(upto), got)
                    }
                };
                let got = outcome(got.into_iter().next().unwrap());
                prop_assert_eq!(got, want);
            }
            // Reading from the floors returns exactly the model's entries.
            let cursors: Vec<Cursor> = (0..2).map(|d| Cursor { device: devs[d], seq: model.floor[d] }).collect();
            let page = store.pull(&acct, &cursors, 10_000, usize::MAX).unwrap();
            prop_assert!(!page.more);
            let mut got: Vec<(usize, u64)> = page.entries.iter().map(|e| (usize::from(e.device != devs[0]), e.seq)).collect();
            got.sort_unstable();
            let want: Vec<(usize, u64)> = model.stored.keys().copied().collect();
            prop_assert_eq!(got, want);
            for e in &page.entries {
                let d = usize::from(e.device != devs[0]);
                prop_assert_eq!(e, &entry(&keys[d], acct, e.seq, model.stored[&(d, e.seq)]));
            }
            prop_assert_eq!(store.stats().unwrap().entries, model.stored.len() as u64);
            // A cursor below a floor needs the snapshot.
            if model.floor[0] > 0 {
                let behind = vec![Cursor { device: devs[0], seq: 0 }, cursors[1]];
                prop_assert!(matches!(store.pull(&acct, &behind, 10, usize::MAX), Err(StoreError::SnapshotNeeded)));
            }
        }
    }

    #[test]
    fn a_failed_op_does_not_block_the_rest_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let acct_key = SigningKey::from_bytes(&[1; 32]);
        let acct = AccountId::from(acct_key.verifying_key());
        let k = SigningKey::from_bytes(&[2; 32]);
        let dev = DeviceId::from(k.verifying_key());
        let push = |from: u64, to: u64| WriteOp::Push {
            account: acct,
            device: dev,
            entries: (from..=to).map(|s| entry(&k, acct, s, false)).collect(),
            quota_bytes: u64::MAX,
        };
        let r = store.apply(vec![
            register(&acct_key, &k, &[]),
            push(1, 2),
            push(5, 6),
            push(3, 3),
        ]);
        assert!(r[0].is_ok() && r[1].is_ok() && r[3].is_ok());
        assert!(matches!(r[2], Err(StoreError::SeqGap { expected: 3 })));
        assert_eq!(store.stats().unwrap().entries, 3);
        // Reopening finds the committed state.
        drop(store);
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(
            store.heads(&acct).unwrap().heads,
            vec![Cursor {
                device: dev,
                seq: 3
            }]
        );
    }

    #[test]
    fn mailbox_sweep_deletes_only_expired_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let put = |slot: u8, expires_at_ms: u64| WriteOp::MailboxPut {
            slot: [slot; 32],
            blob: vec![slot],
            expires_at_ms,
            now_ms: 0,
            owner: None,
        };
        let r = store.apply(vec![put(1, 100), put(2, 1000)]);
        assert!(r.iter().all(Result::is_ok));
        let r = store.apply(vec![WriteOp::MailboxExpire { now_ms: 500 }]);
        assert!(matches!(r[0], Ok(WriteOutcome::MailboxExpired(1))));
        let r = store.apply(vec![
            WriteOp::MailboxTake {
                slot: [1; 32],
                now_ms: 500,
            },
            WriteOp::MailboxTake {
                slot: [2; 32],
                now_ms: 500,
            },
            WriteOp::MailboxTake {
                slot: [2; 32],
                now_ms: 500,
            },
        ]);
        assert!(matches!(r[0], Err(StoreError::MailboxNotFound)));
        assert!(matches!(&r[1], Ok(WriteOutcome::MailboxTaken(b)) if b == &vec![2u8]));
        assert!(matches!(r[2], Err(StoreError::MailboxNotFound)));
    }

    #[test]
    fn pushes_need_a_current_member_and_the_current_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let root = SigningKey::from_bytes(&[1; 32]);
        let acct = AccountId::from(root.verifying_key());
        let a = SigningKey::from_bytes(&[2; 32]);
        let b = SigningKey::from_bytes(&[3; 32]);
        let minted = SigningKey::from_bytes(&[4; 32]);
        let reg = store.apply(vec![register(&root, &a, &[&b])]);
        assert!(reg[0].is_ok());
        let state = store.membership(&acct).unwrap().unwrap();
        // a revokes b (new epoch 2, sealed to a only).
        let revoke = state.next_op(
            Author::Device(a.verifying_key().into()),
            &a,
            2,
            Change::Revoke {
                device: b.verifying_key().into(),
                rotation: Rotation {
                    keys: vec![SealedEpochKey {
                        to: a.verifying_key().into(),
                        enc: [0; 32],
                        ciphertext: vec![0; 48],
                    }],
                    wrapped: vec![],
                },
            },
            5,
        );
        let push = |k: &SigningKey, epoch: u64| WriteOp::Push {
            account: acct,
            device: k.verifying_key().into(),
            entries: vec![SealedEntry::seal(k, acct, epoch, 1, [0; 24], vec![1])],
            quota_bytes: u64::MAX,
        };
        let r = store.apply(vec![
            push(&b, 1),
            WriteOp::AppendMembership {
                account: acct,
                ops: vec![revoke],
                skip_known: false,
                token_hash: None,
                open_registration: true,
                now_ms: 5,
                members_max: 64,
            },
            push(&b, 1),
            push(&b, 2),
            push(&minted, 2),
            push(&a, 1),
            push(&a, 2),
        ]);
        assert!(r[0].is_ok(), "b was a member before the revocation");
        match &r[1] {
            Ok(WriteOutcome::MembershipAppended { revoked, .. }) => {
                assert_eq!(revoked, &vec![DeviceId::from(b.verifying_key())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r[2], Err(StoreError::Revoked)));
        assert!(matches!(r[3], Err(StoreError::Revoked)));
        assert!(matches!(r[4], Err(StoreError::NotAMember)));
        assert!(matches!(r[5], Err(StoreError::EpochStale { current: 2 })));
        assert!(r[6].is_ok());
    }

    #[test]
    fn a_schema_1_file_is_refused_naming_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", 1u64)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::OldSchema { found: 1 }));
        assert!(err.to_string().contains("schema 1"), "{err}");
    }
}
