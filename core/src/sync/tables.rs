//! The redb tables of sync, inside the store file so that applying remote
//! changes and advancing the sync position commit in one transaction.
//!
//! - `sync_meta`: `relay` (pinned key of the relay the log state belongs to),
//!   `next_seq`, `acked_seq` (u64 big-endian).
//! - `sync_outbox`: seq -> postcard `SealedEntry`, sealed and not yet
//!   acknowledged; written before sending, deleted on acknowledgement.
//! - `sync_pushed_heads`: doc -> heads (32-byte hashes) up to which this
//!   device's own changes are in the outbox or acknowledged.
//! - `sync_cursors`: device -> last seq applied (or skipped as own).
//! - `sync_pending`: (doc, change hash) -> change bytes received whose
//!   dependencies have not arrived yet.
//! - `sync_partial`: device -> postcard `Partial`, the fragments of a large
//!   entry received so far.
//! - `peer_state`: (peer device, doc) -> encoded `automerge::sync::State`.
//! - `peer_heads`: (peer device, doc) -> heads both sides had at the end of
//!   the last completed session (lets a Hello list only what moved since).
//! - `peer_addrs`: peer address -> device id that served there last.
//! - `devices`: device -> postcard `DeviceRecord`.
//! - `revoked`: device -> when this device revoked it (also for devices
//!   whose certificate it never saw).

use automerge::ChangeHash;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use kith_protocol::{DeviceCert, DeviceId};

use crate::error::StoreError;

pub(crate) const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sync_meta");
pub(crate) const OUTBOX: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("sync_outbox");
pub(crate) const PUSHED_HEADS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("sync_pushed_heads");
pub(crate) const CURSORS: TableDefinition<'static, &[u8], u64> =
    TableDefinition::new("sync_cursors");
pub(crate) const PENDING: TableDefinition<'static, (&str, &[u8]), &[u8]> =
    TableDefinition::new("sync_pending");
pub(crate) const PARTIAL: TableDefinition<'static, &[u8], &[u8]> =
    TableDefinition::new("sync_partial");
pub(crate) const PEER_STATE: TableDefinition<'static, (&[u8], &str), &[u8]> =
    TableDefinition::new("peer_state");
pub(crate) const PEER_HEADS: TableDefinition<'static, (&[u8], &str), &[u8]> =
    TableDefinition::new("peer_heads");
pub(crate) const PEER_ADDRS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("peer_addrs");
pub(crate) const REVOKED: TableDefinition<'static, &[u8], u64> = TableDefinition::new("revoked");
pub(crate) const DEVICES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("devices");

pub(crate) const META_RELAY: &str = "relay";
pub(crate) const META_NEXT_SEQ: &str = "next_seq";
pub(crate) const META_ACKED_SEQ: &str = "acked_seq";
/// Set when this store found the relay already holding entries of its own
/// device (a store restored from a backup, or rebuilt, with the device's
/// keys): the relay's own head at that moment. Until the own cursor reaches
/// it, this device pulls its own entries like another device's (they may
/// hold changes made after the backup).
pub(crate) const META_OWN_CATCHUP_SEQ: &str = "own_catchup_seq";
/// Set with [`META_OWN_CATCHUP_SEQ`]: the next seal carries the documents'
/// changes of every actor, not only this store's (changes the device made
/// before the backup under its former store actor may never have reached the
/// relay; duplicates are harmless, Automerge applies a change once).
pub(crate) const META_SEAL_ALL_ACTORS: &str = "seal_all_actors";

/// What this device knows about one device of the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    pub cert: DeviceCert,
    pub last_seen_ms: u64,
    pub revoked_at_ms: Option<u64>,
}

/// Fragments of one large entry received so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Partial {
    pub next_index: u32,
    pub count: u32,
    pub bytes: Vec<u8>,
}

/// Opens a table in a read transaction; `None` when it was never created
/// (a store that has not synced that way yet).
pub(crate) fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'_, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn damaged(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged {
        what: format!("sync table {what}"),
        detail: e.to_string(),
    }
}

/// Creates every sync table (idempotent) so later read transactions find them.
pub(crate) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(PUSHED_HEADS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(PENDING)?;
    txn.open_table(PARTIAL)?;
    txn.open_table(PEER_STATE)?;
    txn.open_table(DEVICES)?;
    txn.open_table(PEER_HEADS)?;
    txn.open_table(PEER_ADDRS)?;
    txn.open_table(REVOKED)?;
    Ok(())
}

pub(crate) fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    let mut v = Vec::with_capacity(heads.len() * 32);
    for h in heads {
        v.extend_from_slice(&h.0);
    }
    v
}

pub(crate) fn heads_from_bytes(b: &[u8]) -> Result<Vec<ChangeHash>, StoreError> {
    if !b.len().is_multiple_of(32) {
        return Err(damaged(
            "sync_pushed_heads",
            "length is not a multiple of 32",
        ));
    }
    Ok(b.chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

pub(crate) fn get_u64(txn: &WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let t = txn.open_table(META)?;
    let v = t.get(key)?;
    match v {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| damaged("sync_meta", format!("{key} is not 8 bytes")))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

pub(crate) fn put_u64(txn: &WriteTransaction, key: &str, v: u64) -> Result<(), StoreError> {
    txn.open_table(META)?
        .insert(key, v.to_be_bytes().as_slice())?;
    Ok(())
}

pub(crate) fn set_cursor(
    txn: &WriteTransaction,
    device: &DeviceId,
    seq: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(CURSORS)?;
    let cur = t.get(device.as_bytes().as_slice())?.map(|v| v.value());
    if cur.is_none_or(|c| c < seq) {
        t.insert(device.as_bytes().as_slice(), seq)?;
    }
    Ok(())
}

/// Records that `cert`'s device was seen at `now_ms` (adding it if new).
pub(crate) fn touch_device(
    txn: &WriteTransaction,
    cert: &DeviceCert,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(DEVICES)?;
    let key = cert.device.as_bytes().as_slice();
    let mut rec = match t.get(key)? {
        Some(v) => {
            postcard::from_bytes::<DeviceRecord>(v.value()).map_err(|e| damaged("devices", e))?
        }
        None => DeviceRecord {
            cert: cert.clone(),
            last_seen_ms: 0,
            revoked_at_ms: None,
        },
    };
    rec.last_seen_ms = rec.last_seen_ms.max(now_ms);
    if cert.issued_at_ms > rec.cert.issued_at_ms {
        rec.cert = cert.clone();
    }
    let bytes = postcard::to_allocvec(&rec).map_err(|e| damaged("devices", e))?;
    t.insert(key, bytes.as_slice())?;
    Ok(())
}

/// redb errors inside sync code become [`StoreError`]s of the wrapping error.
macro_rules! redb_errors_into {
    ($target:ty) => {
        impl From<redb::TransactionError> for $target {
            fn from(e: redb::TransactionError) -> Self {
                crate::error::StoreError::from(e).into()
            }
        }
        impl From<redb::TableError> for $target {
            fn from(e: redb::TableError) -> Self {
                crate::error::StoreError::from(e).into()
            }
        }
        impl From<redb::StorageError> for $target {
            fn from(e: redb::StorageError) -> Self {
                crate::error::StoreError::from(e).into()
            }
        }
        impl From<redb::CommitError> for $target {
            fn from(e: redb::CommitError) -> Self {
                crate::error::StoreError::from(e).into()
            }
        }
    };
}
pub(crate) use redb_errors_into;
