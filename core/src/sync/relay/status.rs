//! The durable sync position: which relay the log state belongs to
//! (binding to another relay resets it) and the status read for `kith sync`
//! and tests. Reads and writes go through the typed functions of
//! [`super::super::tables`].

use super::*;

/// Opens the sync tables and binds the log state to `relay`: if the store's
/// log state belongs to another relay, it is reset (a new relay starts with
/// an empty log, so everything is pushed again under fresh seqs).
pub(super) fn bind_relay(store: &mut Store, relay: &RelayKey) -> Result<(), StoreError> {
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    let current = tables::bound_relay(&txn)?;
    if current.as_deref() != Some(relay.as_bytes().as_slice()) {
        tables::rebind_relay(&txn, relay, current.is_some())?;
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
    /// Per device, the highest seq pulled and applied.
    pub cursors: Vec<Cursor>,
    /// Non-zero once a restored store started pulling its own device's
    /// entries, up to this seq (`sync_meta.own_catchup_seq`).
    pub own_catchup_seq: u64,
    /// Entries received but skipped because they did not verify, decrypt or
    /// parse (at most 64 kept per device), by device then seq.
    pub quarantined: Vec<QuarantinedEntry>,
}

/// An entry this device skipped (see [`RelayEvent::Quarantined`]), or a
/// snapshot of that device it could not open (seq 0, see
/// [`RelayEvent::SnapshotUnreadable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedEntry {
    /// The device that wrote it, by its envelope.
    pub device: DeviceId,
    /// Its sequence number in that device's log; 0 for a snapshot (entry
    /// seqs start at 1).
    pub seq: u64,
    /// Why it was refused.
    pub reason: String,
    /// When it was skipped (ms since epoch).
    pub at_ms: u64,
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
pub(super) fn read_status(store: &mut Store) -> Result<SyncStatus, StoreError> {
    let txn = store.writable()?.begin_read()?;
    let (outbox_entries, pending_changes, partial_entries) = tables::counts(&txn)?;
    Ok(SyncStatus {
        relay: tables::read_bound_relay(&txn)?,
        sealed_seq: tables::read_u64(&txn, tables::META_NEXT_SEQ)?.saturating_sub(1),
        acked_seq: tables::read_u64(&txn, tables::META_ACKED_SEQ)?,
        outbox_entries,
        pending_changes,
        partial_entries,
        cursors: tables::cursors(&txn)?,
        own_catchup_seq: tables::read_u64(&txn, tables::META_OWN_CATCHUP_SEQ)?,
        quarantined: tables::quarantined(&txn)?
            .into_iter()
            .map(|(device, seq, r)| QuarantinedEntry {
                device,
                seq,
                reason: r.reason,
                at_ms: r.at_ms,
            })
            .collect(),
    })
}
