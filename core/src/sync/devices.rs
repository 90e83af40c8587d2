//! The account's devices as this device knows them: every certificate seen
//! in an entry, a snapshot or a peer handshake, when that device was last
//! heard from, and whether it was revoked from here.

use kith_protocol::{DeviceCert, DeviceId};
use redb::ReadableTable;

use super::tables::{self, DeviceRecord};
use crate::error::StoreError;
use crate::store::Store;

/// One device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device id (its public key).
    pub id: DeviceId,
    /// Human name of the device ("Ana's phone").
    pub name: String,
    /// When its certificate was issued (ms since epoch).
    pub added_ms: u64,
    /// When its data or handshake last reached this device (ms since epoch).
    pub last_seen_ms: u64,
    /// When it was revoked (ms since epoch); `None` while it may sync.
    pub revoked_at_ms: Option<u64>,
    /// Its certificate, signed by the account key.
    pub cert: DeviceCert,
    /// Entries of this device that were skipped because they did not
    /// verify, decrypt or parse (the quarantine keeps at most 64 per
    /// device): non-zero means the device is damaged or hostile, or the
    /// relay's copy of its log is damaged.
    pub quarantined_entries: u64,
}

/// Every known device, ordered by when it was added.
pub fn list_devices(store: &mut Store) -> Result<Vec<DeviceInfo>, StoreError> {
    {
        let txn = store.writable()?.begin_write()?;
        tables::create(&txn)?;
        txn.commit()?;
    }
    let txn = store.read_txn()?;
    let t = txn.open_table(tables::DEVICES)?;
    let revoked = txn.open_table(tables::REVOKED)?;
    let mut bad: std::collections::HashMap<DeviceId, u64> = std::collections::HashMap::new();
    for (d, _, _) in tables::quarantined(&txn)? {
        *bad.entry(d).or_default() += 1;
    }
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        let r: DeviceRecord =
            postcard::from_bytes(v.value()).map_err(|e| tables::damaged("devices", e))?;
        out.push(DeviceInfo {
            id: r.cert.device,
            name: r.cert.name.clone(),
            added_ms: r.cert.issued_at_ms,
            last_seen_ms: r.last_seen_ms,
            revoked_at_ms: revoked
                .get(r.cert.device.as_bytes().as_slice())?
                .map(|v| v.value())
                .or(r.revoked_at_ms),
            quarantined_entries: bad.get(&r.cert.device).copied().unwrap_or(0),
            cert: r.cert,
        });
    }
    out.sort_by_key(|d| (d.added_ms, d.id));
    Ok(out)
}

/// Records a device certificate (this device's own at init/join, or one
/// learned from a peer) as seen at `now_ms`.
pub fn record_device(store: &mut Store, cert: &DeviceCert, now_ms: u64) -> Result<(), StoreError> {
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    tables::touch_device(&txn, cert, now_ms)?;
    txn.commit()?;
    Ok(())
}

/// Marks a device revoked locally (the relay is told separately); returns
/// whether its certificate was known here.
pub fn mark_revoked(store: &mut Store, device: &DeviceId, now_ms: u64) -> Result<bool, StoreError> {
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    txn.open_table(tables::REVOKED)?
        .insert(device.as_bytes().as_slice(), now_ms)?;
    let found = {
        let mut t = txn.open_table(tables::DEVICES)?;
        let rec = t
            .get(device.as_bytes().as_slice())?
            .map(|v| postcard::from_bytes::<DeviceRecord>(v.value()));
        match rec {
            Some(Ok(mut r)) => {
                r.revoked_at_ms = Some(now_ms);
                let b = postcard::to_allocvec(&r).map_err(|e| tables::damaged("devices", e))?;
                t.insert(device.as_bytes().as_slice(), b.as_slice())?;
                true
            }
            Some(Err(e)) => return Err(tables::damaged("devices", e)),
            None => false,
        }
    };
    txn.commit()?;
    Ok(found)
}

/// True if this device revoked `device`.
pub fn is_revoked(store: &mut Store, device: &DeviceId) -> Result<bool, StoreError> {
    {
        let txn = store.writable()?.begin_write()?;
        tables::create(&txn)?;
        txn.commit()?;
    }
    let txn = store.read_txn()?;
    let t = txn.open_table(tables::REVOKED)?;
    Ok(t.get(device.as_bytes().as_slice())?.is_some())
}
