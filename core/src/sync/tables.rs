//! The redb tables of sync, inside the store file so that applying remote
//! changes and advancing the sync position commit in one transaction, and
//! the typed functions the sync machines use to read and write them (outbox,
//! cursors, partials, pending, pushed heads, meta): the relay machine never
//! decodes a row itself.
//!
//! - `sync_meta`: `relay` (pinned key of the relay the log state belongs to),
//!   `next_seq`, `acked_seq` (u64 big-endian).
//! - `sync_outbox`: seq -> postcard `SealedEntry`, sealed and not yet
//!   acknowledged; written before sending, deleted on acknowledgement.
//! - `sync_sent`: seq -> postcard `SealedEntry`, this device's entries the
//!   relay acknowledged, byte for byte: a relay restored from an older
//!   backup lost some of them, and the device pushes exactly these again
//!   (same seqs, same bytes, so other devices' cursors stay valid).
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
//! - `sync_membership`: position -> postcard `MembershipOp`, the account's
//!   membership log as this device verified it (docs/SECURITY.md).
//! - `sync_epoch_keys`: epoch -> 32-byte data key this device holds (a cache:
//!   derivable from the log and the device's X25519 key).
//! - `revoked`: device -> when this device revoked it (also for devices
//!   whose certificate it never saw).
//! - `sync_quarantine`: (device, seq) -> postcard `QuarantineRecord`, an
//!   entry received from the relay that did not verify, decrypt or parse:
//!   skipped (the cursor moved past it), kept here so the user is told which
//!   device wrote it; at most [`QUARANTINE_PER_DEVICE_MAX`] per device.

use std::collections::HashMap;

use automerge::ChangeHash;
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use kith_protocol::{
    AccountId, Cursor, DeviceId, Membership, MembershipError, MembershipOp, RelayKey, SealedEntry,
};

use crate::identity::DataKey;
use crate::sync::epochs::EpochKeys;

use crate::error::StoreError;

pub(crate) const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sync_meta");
pub(crate) const OUTBOX: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("sync_outbox");
pub(crate) const SENT: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("sync_sent");
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
pub(crate) const MEMBERSHIP: TableDefinition<'static, u64, &[u8]> =
    TableDefinition::new("sync_membership");
pub(crate) const EPOCH_KEYS: TableDefinition<'static, u64, &[u8]> =
    TableDefinition::new("sync_epoch_keys");

pub(crate) const QUARANTINE: TableDefinition<'static, (&[u8], u64), &[u8]> =
    TableDefinition::new("sync_quarantine");
/// Records kept per device: a hostile device can write any number of bad
/// entries, the table must stay bounded (the oldest records go first).
pub(crate) const QUARANTINE_PER_DEVICE_MAX: usize = 64;

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
    /// Its name as it announced it in sealed data ("" until heard).
    pub name: String,
    /// When it was first heard of here (ms since epoch).
    pub added_ms: u64,
    pub last_seen_ms: u64,
    pub revoked_at_ms: Option<u64>,
}

/// Why an entry was skipped and when (a `sync_quarantine` row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QuarantineRecord {
    pub reason: String,
    pub at_ms: u64,
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

/// Format of the sync tables this build writes and reads; 1 (no marker)
/// held account certificates and entries sealed under the shared data key.
pub(crate) const SYNC_FORMAT: u64 = 2;
const SYNC_FORMAT_KEY: &str = "sync_format";

/// Creates every sync table (idempotent) so later read transactions find
/// them, and marks them with [`SYNC_FORMAT`]; sync tables of format 1 (they
/// have rows but no marker) are refused, naming the version.
pub(crate) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    {
        let mut meta = txn.open_table(META)?;
        let marker = meta.get(SYNC_FORMAT_KEY)?.map(|v| {
            <[u8; 8]>::try_from(v.value())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        });
        match marker {
            Some(SYNC_FORMAT) => {}
            Some(found) => {
                return Err(StoreError::RetiredSyncFormat {
                    found,
                    supported: SYNC_FORMAT,
                });
            }
            None => {
                let used = meta.len()? > 0 || txn.open_table(DEVICES)?.len()? > 0;
                if used {
                    return Err(StoreError::RetiredSyncFormat {
                        found: 1,
                        supported: SYNC_FORMAT,
                    });
                }
                meta.insert(SYNC_FORMAT_KEY, SYNC_FORMAT.to_be_bytes().as_slice())?;
            }
        }
    }
    txn.open_table(OUTBOX)?;
    txn.open_table(SENT)?;
    txn.open_table(PUSHED_HEADS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(PENDING)?;
    txn.open_table(PARTIAL)?;
    txn.open_table(PEER_STATE)?;
    txn.open_table(DEVICES)?;
    txn.open_table(PEER_HEADS)?;
    txn.open_table(PEER_ADDRS)?;
    txn.open_table(REVOKED)?;
    txn.open_table(MEMBERSHIP)?;
    txn.open_table(EPOCH_KEYS)?;
    txn.open_table(QUARANTINE)?;
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

/// Records that `device` (named `name`, when it said so in sealed data)
/// was seen at `now_ms`, adding it if new.
pub(crate) fn touch_device(
    txn: &WriteTransaction,
    device: &DeviceId,
    name: Option<&str>,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(DEVICES)?;
    let key = device.as_bytes().as_slice();
    let mut rec = match t.get(key)? {
        Some(v) => {
            postcard::from_bytes::<DeviceRecord>(v.value()).map_err(|e| damaged("devices", e))?
        }
        None => DeviceRecord {
            name: String::new(),
            added_ms: now_ms,
            last_seen_ms: 0,
            revoked_at_ms: None,
        },
    };
    rec.last_seen_ms = rec.last_seen_ms.max(now_ms);
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        n.clone_into(&mut rec.name);
    }
    let bytes = postcard::to_allocvec(&rec).map_err(|e| damaged("devices", e))?;
    t.insert(key, bytes.as_slice())?;
    Ok(())
}

// ---- Typed access: the sync machines read and write through these
// functions, never through raw rows (one place knows each encoding).

/// A u64 of `sync_meta` in a read transaction (0 when absent or damaged-short).
pub(crate) fn read_u64(txn: &ReadTransaction, key: &str) -> Result<u64, StoreError> {
    let t = txn.open_table(META)?;
    let v = t.get(key)?;
    Ok(match v {
        Some(v) => <[u8; 8]>::try_from(v.value())
            .map(u64::from_be_bytes)
            .unwrap_or(0),
        None => 0,
    })
}

/// True if the `sync_meta` flag `key` is set.
pub(crate) fn read_flag(txn: &ReadTransaction, key: &str) -> Result<bool, StoreError> {
    let t = txn.open_table(META)?;
    let v = t.get(key)?;
    Ok(v.is_some_and(|v| v.value().iter().any(|b| *b != 0)))
}

/// Clears the `sync_meta` flag `key`.
pub(crate) fn clear_flag(txn: &WriteTransaction, key: &str) -> Result<(), StoreError> {
    txn.open_table(META)?.remove(key)?;
    Ok(())
}

/// The relay the log state belongs to.
pub(crate) fn bound_relay(txn: &WriteTransaction) -> Result<Option<Vec<u8>>, StoreError> {
    let t = txn.open_table(META)?;
    let v = t.get(META_RELAY)?;
    Ok(v.map(|v| v.value().to_vec()))
}

/// The relay the log state belongs to, in a read transaction.
pub(crate) fn read_bound_relay(txn: &ReadTransaction) -> Result<Option<RelayKey>, StoreError> {
    let t = txn.open_table(META)?;
    let v = t.get(META_RELAY)?;
    Ok(v.and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
        .map(RelayKey))
}

/// Binds the log state to `relay`, dropping the state of a previous relay
/// (outbox, pushed heads, cursors, partials, seqs).
pub(crate) fn rebind_relay(
    txn: &WriteTransaction,
    relay: &RelayKey,
    had_other: bool,
) -> Result<(), StoreError> {
    if had_other {
        txn.open_table(OUTBOX)?.retain(|_, _| false)?;
        txn.open_table(SENT)?.retain(|_, _| false)?;
        txn.open_table(PUSHED_HEADS)?.retain(|_, _| false)?;
        txn.open_table(CURSORS)?.retain(|_, _| false)?;
        txn.open_table(PARTIAL)?.retain(|_, _| false)?;
        put_u64(txn, META_NEXT_SEQ, 0)?;
        put_u64(txn, META_ACKED_SEQ, 0)?;
        put_u64(txn, META_OWN_CATCHUP_SEQ, 0)?;
    }
    txn.open_table(META)?
        .insert(META_RELAY, relay.as_bytes().as_slice())?;
    Ok(())
}

/// The relay lost this device's acknowledged entries `from..=to` (it was
/// restored from an older backup): put them back into the outbox from
/// `sync_sent`, byte for byte, and lower `acked_seq` to `from - 1`. Returns
/// false (and changes nothing) if any of them is not kept.
pub(crate) fn requeue_sent(txn: &WriteTransaction, from: u64, to: u64) -> Result<bool, StoreError> {
    if from == 0 || from > to {
        return Ok(from > to);
    }
    let rows: Vec<(u64, Vec<u8>)> = {
        let sent = txn.open_table(SENT)?;
        let mut rows = Vec::new();
        for row in sent.range(from..=to)? {
            let (k, v) = row?;
            rows.push((k.value(), v.value().to_vec()));
        }
        rows
    };
    let complete = rows.len() as u64 == to - from + 1
        && rows.iter().zip(from..=to).all(|((k, _), want)| *k == want);
    if !complete {
        return Ok(false);
    }
    let mut outbox = txn.open_table(OUTBOX)?;
    for (k, v) in &rows {
        outbox.insert(*k, v.as_slice())?;
    }
    put_u64(txn, META_ACKED_SEQ, from - 1)?;
    Ok(true)
}

fn decode_entry(bytes: &[u8]) -> Result<SealedEntry, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| damaged("sync_outbox", e))
}

/// Lowest unacknowledged outbox seq.
pub(crate) fn outbox_first(txn: &ReadTransaction) -> Result<Option<u64>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    Ok(t.first()?.map(|(k, _)| k.value()))
}

/// Every outbox entry, in seq order (bounded by what this device sealed and
/// the relay has not acknowledged).
pub(crate) fn outbox_all(txn: &ReadTransaction) -> Result<Vec<SealedEntry>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(decode_entry(v.value())?);
    }
    Ok(out)
}

/// Stores a sealed entry in the outbox.
pub(crate) fn outbox_put(
    txn: &WriteTransaction,
    seq: u64,
    entry: &SealedEntry,
) -> Result<(), StoreError> {
    let b = postcard::to_allocvec(entry).map_err(|e| damaged("sync_outbox", e))?;
    txn.open_table(OUTBOX)?.insert(seq, b.as_slice())?;
    Ok(())
}

/// The oldest outbox entries, at most `entries_max` and about `bytes_max`
/// (at least one if any; `overhead_bytes` is counted per entry).
pub(crate) fn outbox_batch(
    txn: &ReadTransaction,
    bytes_max: usize,
    entries_max: usize,
    overhead_bytes: usize,
) -> Result<Vec<SealedEntry>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    for row in t.iter()? {
        let (_, v) = row?;
        let e = decode_entry(v.value())?;
        let size = e.ciphertext.len() + overhead_bytes;
        if !entries.is_empty() && (bytes + size > bytes_max || entries.len() >= entries_max) {
            break;
        }
        bytes += size;
        entries.push(e);
    }
    Ok(entries)
}

/// The relay acknowledged every seq up to `seq`: move them from the outbox
/// to `sync_sent` and advance `acked_seq` (and `next_seq` past it).
pub(crate) fn outbox_ack(txn: &WriteTransaction, seq: u64) -> Result<(), StoreError> {
    {
        // Keep what the relay acknowledged, byte for byte (`sync_sent`).
        let mut outbox = txn.open_table(OUTBOX)?;
        let mut sent = txn.open_table(SENT)?;
        for row in outbox.extract_from_if(..=seq, |_, _| true)? {
            let (k, v) = row?;
            sent.insert(k.value(), v.value())?;
        }
    }
    if get_u64(txn, META_ACKED_SEQ)? < seq {
        put_u64(txn, META_ACKED_SEQ, seq)?;
    }
    if get_u64(txn, META_NEXT_SEQ)? <= seq {
        put_u64(txn, META_NEXT_SEQ, seq + 1)?;
    }
    Ok(())
}

/// Every document's pushed heads.
pub(crate) fn pushed_heads(
    txn: &ReadTransaction,
) -> Result<HashMap<String, Vec<ChangeHash>>, StoreError> {
    let mut out = HashMap::new();
    for row in txn.open_table(PUSHED_HEADS)?.iter()? {
        let (k, v) = row?;
        out.insert(k.value().to_string(), heads_from_bytes(v.value())?);
    }
    Ok(out)
}

/// Sets a document's pushed heads (only if unset, with `only_if_unset`).
pub(crate) fn set_pushed_heads(
    txn: &WriteTransaction,
    doc: &str,
    heads: &[ChangeHash],
    only_if_unset: bool,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(PUSHED_HEADS)?;
    if only_if_unset && t.get(doc)?.is_some() {
        return Ok(());
    }
    t.insert(doc, heads_to_bytes(heads).as_slice())?;
    Ok(())
}

/// Every per-device cursor.
pub(crate) fn cursors(txn: &ReadTransaction) -> Result<Vec<Cursor>, StoreError> {
    let mut out = Vec::new();
    for row in txn.open_table(CURSORS)?.iter()? {
        let (k, v) = row?;
        if let Ok(d) = <[u8; 32]>::try_from(k.value()) {
            out.push(Cursor {
                device: DeviceId(d),
                seq: v.value(),
            });
        }
    }
    Ok(out)
}

/// Records that `device`'s entry `seq` was skipped for `reason`, keeping at
/// most [`QUARANTINE_PER_DEVICE_MAX`] records per device.
pub(crate) fn quarantine(
    txn: &WriteTransaction,
    device: &DeviceId,
    seq: u64,
    reason: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(QUARANTINE)?;
    let d = device.as_bytes().as_slice();
    let rec = QuarantineRecord {
        reason: reason.chars().take(500).collect(),
        at_ms: now_ms,
    };
    let b = postcard::to_allocvec(&rec).map_err(|e| damaged("sync_quarantine", e))?;
    t.insert((d, seq), b.as_slice())?;
    let seqs: Vec<u64> = t
        .range((d, 0)..=(d, u64::MAX))?
        .map(|r| r.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for old in seqs
        .iter()
        .take(seqs.len().saturating_sub(QUARANTINE_PER_DEVICE_MAX))
    {
        t.remove((d, *old))?;
    }
    Ok(())
}

/// Drops the record of `device`'s entry `seq` (it was re-fetched and applied
/// after the relay's copy was repaired).
pub(crate) fn unquarantine(
    txn: &WriteTransaction,
    device: &DeviceId,
    seq: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(QUARANTINE)?;
    t.remove((device.as_bytes().as_slice(), seq))?;
    Ok(())
}

/// Every quarantined entry: (device, seq, record), by device then seq.
pub(crate) fn quarantined(
    txn: &ReadTransaction,
) -> Result<Vec<(DeviceId, u64, QuarantineRecord)>, StoreError> {
    let Some(t) = open_read(txn, QUARANTINE)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let (d, seq) = k.value();
        let device = <[u8; 32]>::try_from(d).map_err(|e| damaged("sync_quarantine", e))?;
        let rec: QuarantineRecord =
            postcard::from_bytes(v.value()).map_err(|e| damaged("sync_quarantine", e))?;
        out.push((DeviceId(device), seq, rec));
    }
    Ok(out)
}

/// Every partially received large entry, by device.
pub(crate) fn partials(txn: &ReadTransaction) -> Result<HashMap<DeviceId, Partial>, StoreError> {
    let mut out = HashMap::new();
    for row in txn.open_table(PARTIAL)?.iter()? {
        let (k, v) = row?;
        if let (Ok(d), Ok(p)) = (
            <[u8; 32]>::try_from(k.value()),
            postcard::from_bytes::<Partial>(v.value()),
        ) {
            out.insert(DeviceId(d), p);
        }
    }
    Ok(out)
}

/// Stores (or, with `None`, deletes) a device's partial entry.
pub(crate) fn set_partial(
    txn: &WriteTransaction,
    device: &DeviceId,
    partial: Option<&Partial>,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(PARTIAL)?;
    match partial {
        Some(p) => {
            let b = postcard::to_allocvec(p).map_err(|e| damaged("sync_partial", e))?;
            t.insert(device.as_bytes().as_slice(), b.as_slice())?;
        }
        None => {
            t.remove(device.as_bytes().as_slice())?;
        }
    }
    Ok(())
}

/// Pending changes of `doc` (raw change bytes), if the table exists.
pub(crate) fn pending_of(txn: &ReadTransaction, doc: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    if let Some(t) = open_read(txn, PENDING)? {
        for row in t.range((doc, [].as_slice())..)? {
            let (k, v) = row?;
            if k.value().0 != doc {
                break;
            }
            out.push(v.value().to_vec());
        }
    }
    Ok(out)
}

/// Replaces the pending changes of `doc` with `waiting` (hash, bytes).
pub(crate) fn replace_pending(
    txn: &WriteTransaction,
    doc: &str,
    waiting: &[(ChangeHash, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut t = txn.open_table(PENDING)?;
    t.retain_in(
        (doc, [].as_slice())..=(doc, [0xffu8; 33].as_slice()),
        |_, _| false,
    )?;
    for (h, bytes) in waiting {
        t.insert((doc, h.0.as_slice()), bytes.as_slice())?;
    }
    Ok(())
}

/// Row counts for the status: (outbox, pending, partial).
pub(crate) fn counts(txn: &ReadTransaction) -> Result<(u64, u64, u64), StoreError> {
    Ok((
        txn.open_table(OUTBOX)?.len()?,
        txn.open_table(PENDING)?.len()?,
        txn.open_table(PARTIAL)?.len()?,
    ))
}

/// Why membership ops were not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MembershipStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("membership op refused: {0}")]
    Refused(#[from] MembershipError),
}

/// The stored membership log, in order.
pub(crate) fn membership_ops(txn: &ReadTransaction) -> Result<Vec<MembershipOp>, StoreError> {
    let mut out = Vec::new();
    if let Some(t) = open_read(txn, MEMBERSHIP)? {
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| damaged("sync_membership", e))?);
        }
    }
    Ok(out)
}

/// Verifies `ops` against the stored log of `account` and appends them
/// (ops the log already holds, byte-identical at their position, are
/// skipped; a different op at a held position is a fork and refused).
/// Nothing is written unless every op is accepted. Returns the new state,
/// the whole log and how many ops were new.
pub(crate) fn append_membership(
    txn: &WriteTransaction,
    account: AccountId,
    ops: &[MembershipOp],
) -> Result<(Membership, Vec<MembershipOp>, usize), MembershipStoreError> {
    let mut t = txn.open_table(MEMBERSHIP)?;
    let mut held = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        held.push(
            postcard::from_bytes::<MembershipOp>(v.value())
                .map_err(|e| damaged("sync_membership", e))?,
        );
    }
    let mut state = Membership::from_ops(account, &held)?;
    let mut fresh = Vec::new();
    for op in ops {
        let pos = op.body.position;
        if pos >= 1 && pos <= state.len() {
            let idx = usize::try_from(pos - 1).unwrap_or(usize::MAX);
            if held.get(idx) == Some(op) {
                continue;
            }
            return Err(MembershipError::Fork { position: pos }.into());
        }
        state.apply(op)?;
        fresh.push(op);
    }
    let new = fresh.len();
    for op in fresh {
        let b = postcard::to_allocvec(op).map_err(|e| damaged("sync_membership", e))?;
        t.insert(op.body.position, b.as_slice())?;
        held.push(op.clone());
    }
    Ok((state, held, new))
}

/// Every cached epoch key.
pub(crate) fn epoch_keys(txn: &ReadTransaction) -> Result<EpochKeys, StoreError> {
    let mut keys = EpochKeys::default();
    let Some(t) = open_read(txn, EPOCH_KEYS)? else {
        return Ok(keys);
    };
    for row in t.iter()? {
        let (e, v) = row?;
        let b = <[u8; 32]>::try_from(v.value())
            .map_err(|_| damaged("sync_epoch_keys", "a key is not 32 bytes"))?;
        keys.insert(e.value(), DataKey::from_bytes(b));
    }
    Ok(keys)
}

/// Caches the key of `epoch`.
pub(crate) fn put_epoch_key(
    txn: &WriteTransaction,
    epoch: u64,
    key: &DataKey,
) -> Result<(), StoreError> {
    txn.open_table(EPOCH_KEYS)?
        .insert(epoch, key.as_bytes().as_slice())?;
    Ok(())
}

/// The cached key of `epoch`.
#[cfg(test)]
pub(crate) fn epoch_key(txn: &ReadTransaction, epoch: u64) -> Result<Option<DataKey>, StoreError> {
    let Some(t) = open_read(txn, EPOCH_KEYS)? else {
        return Ok(None);
    };
    let v = t.get(epoch)?;
    match v {
        Some(v) => {
            let b = <[u8; 32]>::try_from(v.value())
                .map_err(|_| damaged("sync_epoch_keys", "a key is not 32 bytes"))?;
            Ok(Some(DataKey::from_bytes(b)))
        }
        None => Ok(None),
    }
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

redb_errors_into!(MembershipStoreError);

#[cfg(test)]
mod tests {
    use kith_protocol::SigningKey;

    use super::*;
    use crate::store::Store;
    use crate::sync::authority::{self, Actor};
    use crate::sync::epochs::{EpochKeys, SealKey};

    /// A hostile device writing bad entries forever cannot grow the
    /// quarantine past its bound; the newest records are the ones kept.
    #[test]
    fn quarantine_keeps_the_newest_records_per_device_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (bad, other) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let n = QUARANTINE_PER_DEVICE_MAX as u64 + 10;
        let txn = store.writable().unwrap().begin_write().unwrap();
        create(&txn).unwrap();
        for seq in 1..=n {
            quarantine(&txn, &bad, seq, "does not decrypt", seq).unwrap();
        }
        quarantine(&txn, &other, 5, "bad signature", 1).unwrap();
        txn.commit().unwrap();
        let rows = quarantined(&store.read_txn().unwrap()).unwrap();
        let of_bad: Vec<u64> = rows
            .iter()
            .filter(|(d, ..)| *d == bad)
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(of_bad, (11..=n).collect::<Vec<_>>());
        assert!(
            rows.iter()
                .any(|(d, s, r)| *d == other && *s == 5 && r.reason == "bad signature")
        );
    }

    /// Sync tables written before the format marker (format 1: account
    /// certificates, one shared data key) are refused naming the version,
    /// and nothing is written; fresh tables get the marker.
    #[test]
    fn sync_tables_of_format_1_are_refused_by_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        {
            let txn = store.writable().unwrap().begin_write().unwrap();
            create(&txn).unwrap();
            txn.commit().unwrap();
        }
        let txn = store.writable().unwrap().begin_write().unwrap();
        create(&txn).unwrap();
        txn.abort().unwrap();
        let old = tempfile::tempdir().unwrap();
        let mut store = Store::open(old.path()).unwrap();
        {
            // What a format-1 device left: a relay binding, no marker.
            let txn = store.writable().unwrap().begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_RELAY, [7u8; 32].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let txn = store.writable().unwrap().begin_write().unwrap();
        let err = create(&txn).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::RetiredSyncFormat {
                    found: 1,
                    supported: SYNC_FORMAT
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("format 1"), "{err}");
    }

    /// The membership log and epoch keys survive a reopen; a fork and an op
    /// by a revoked device are refused and write nothing.
    #[test]
    fn membership_and_epoch_keys_are_stored_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (a_sign, b_sign) = (
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
        );
        let (a_seal, b_seal) = (SealKey::generate(), SealKey::generate());
        let a = Actor {
            sign: &a_sign,
            seal: &a_seal,
        };
        let b = Actor {
            sign: &b_sign,
            seal: &b_seal,
        };
        let (code, genesis, k1) = authority::create_account(a, 1).unwrap();
        let account = code.account();
        let state = Membership::from_ops(account, [&genesis]).unwrap();
        let keys =
            EpochKeys::from_log(std::slice::from_ref(&genesis), &a.device(), &a_seal).unwrap();
        let add = authority::add(&state, a, &keys, b.keys(), 2).unwrap();
        let mut s2 = state.clone();
        s2.apply(&add).unwrap();
        let (revoke_b, _) = authority::revoke(&s2, a, &keys, b.device(), 3).unwrap();
        // What b would sign on the same head: a fork once a's op is stored.
        let (revoke_a, _) = authority::revoke(&s2, b, &keys, a.device(), 3).unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            let txn = store.writable().unwrap().begin_write().unwrap();
            create(&txn).unwrap();
            let (st, _, _) =
                append_membership(&txn, account, &[genesis.clone(), add.clone()]).unwrap();
            assert!(st.is_member(&b.device()));
            // Re-sending held ops is a no-op.
            append_membership(&txn, account, std::slice::from_ref(&genesis)).unwrap();
            append_membership(&txn, account, std::slice::from_ref(&revoke_b)).unwrap();
            put_epoch_key(&txn, 1, &k1).unwrap();
            txn.commit().unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let ops = membership_ops(&store.read_txn().unwrap()).unwrap();
        assert_eq!(ops, vec![genesis.clone(), add, revoke_b]);
        assert_eq!(epoch_key(&store.read_txn().unwrap(), 1).unwrap(), Some(k1));
        assert_eq!(epoch_key(&store.read_txn().unwrap(), 2).unwrap(), None);
        let txn = store.writable().unwrap().begin_write().unwrap();
        assert!(matches!(
            append_membership(&txn, account, &[revoke_a]),
            Err(MembershipStoreError::Refused(MembershipError::Fork { .. }))
        ));
        txn.commit().unwrap();
        assert_eq!(membership_ops(&store.read_txn().unwrap()).unwrap().len(), 3);
    }

    /// Acknowledged entries are kept byte for byte and requeued exactly for
    /// a relay that lost them; a gap in what is kept requeues nothing.
    #[test]
    fn acknowledged_entries_are_kept_and_requeued_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let dev = SigningKey::from_bytes(&[4; 32]);
        let acct = AccountId::from(SigningKey::from_bytes(&[5; 32]).verifying_key());
        let entries: Vec<SealedEntry> = (1..=4)
            .map(|seq| SealedEntry::seal(&dev, acct, 1, seq, [seq as u8; 24], vec![seq as u8; 8]))
            .collect();
        let outbox = |store: &mut Store| -> Vec<SealedEntry> {
            let txn = store.read_txn().unwrap();
            let t = txn.open_table(OUTBOX).unwrap();
            t.iter()
                .unwrap()
                .map(|r| decode_entry(r.unwrap().1.value()).unwrap())
                .collect()
        };
        {
            let txn = store.writable().unwrap().begin_write().unwrap();
            create(&txn).unwrap();
            for e in &entries {
                outbox_put(&txn, e.seq, e).unwrap();
            }
            outbox_ack(&txn, 3).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(outbox(&mut store), entries[3..].to_vec());
        {
            let txn = store.writable().unwrap().begin_write().unwrap();
            assert!(requeue_sent(&txn, 2, 3).unwrap());
            assert_eq!(get_u64(&txn, META_ACKED_SEQ).unwrap(), 1);
            txn.commit().unwrap();
        }
        assert_eq!(outbox(&mut store), entries[1..].to_vec());
        // Acknowledged again: back in sync_sent, the outbox empty.
        {
            let txn = store.writable().unwrap().begin_write().unwrap();
            outbox_ack(&txn, 4).unwrap();
            // A seq that is not kept: nothing is requeued.
            txn.open_table(SENT).unwrap().remove(2).unwrap();
            assert!(!requeue_sent(&txn, 1, 4).unwrap());
            assert_eq!(get_u64(&txn, META_ACKED_SEQ).unwrap(), 4);
            txn.commit().unwrap();
        }
        assert!(outbox(&mut store).is_empty());
    }
}
