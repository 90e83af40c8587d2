//! The account's devices as this device knows them: every member and
//! revoked device of the membership log it verified (the authority), with
//! the name each announced in sealed data and when it was last heard from.

use kith_protocol::{Change, DeviceId};

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
    /// When the membership op that added it was made (ms since epoch).
    pub added_ms: u64,
    /// When its data or handshake last reached this device (ms since epoch).
    pub last_seen_ms: u64,
    /// When it was revoked (ms since epoch, from the revoking op); `None`
    /// while it is a member.
    pub revoked_at_ms: Option<u64>,
    /// Entries of this device that were skipped because they did not
    /// verify, decrypt or parse (the quarantine keeps at most 64 per
    /// device): non-zero means the device is damaged or hostile, or the
    /// relay's copy of its log is damaged.
    pub quarantined_entries: u64,
}

/// Every device of the membership log, ordered by when it was added.
pub fn list_devices(store: &mut Store) -> Result<Vec<DeviceInfo>, StoreError> {
    {
        let txn = store.writable()?.begin_write()?;
        tables::create(&txn)?;
        txn.commit()?;
    }
    let txn = store.read_txn()?;
    let ops = tables::membership_ops(&txn)?;
    let records = txn.open_table(tables::DEVICES)?;
    let mut out: Vec<DeviceInfo> = Vec::new();
    let add = |out: &mut Vec<DeviceInfo>, id: DeviceId, at_ms: u64| {
        if let Some(d) = out.iter_mut().find(|d| d.id == id) {
            d.revoked_at_ms = None;
        } else {
            out.push(DeviceInfo {
                id,
                name: String::new(),
                added_ms: at_ms,
                last_seen_ms: 0,
                revoked_at_ms: None,
                quarantined_entries: 0,
            });
        }
    };
    for op in &ops {
        let at = op.body.at_ms;
        match &op.body.change {
            Change::Genesis { first, .. } => add(&mut out, first.device, at),
            Change::Add { member, .. } => add(&mut out, member.device, at),
            Change::Revoke { device, .. } => {
                if let Some(d) = out.iter_mut().find(|d| d.id == *device) {
                    d.revoked_at_ms = Some(at);
                }
            }
            Change::Rotate { .. } => {}
            Change::Recover { members, .. } => {
                let keep: Vec<DeviceId> = members.iter().map(|m| m.device).collect();
                for d in out.iter_mut() {
                    if !keep.contains(&d.id) && d.revoked_at_ms.is_none() {
                        d.revoked_at_ms = Some(at);
                    }
                }
                for k in keep {
                    add(&mut out, k, at);
                }
            }
        }
    }
    let mut bad: std::collections::HashMap<DeviceId, u64> = std::collections::HashMap::new();
    for (d, _, _) in tables::quarantined(&txn)? {
        *bad.entry(d).or_default() += 1;
    }
    for d in &mut out {
        d.quarantined_entries = bad.get(&d.id).copied().unwrap_or(0);
        if let Some(v) = records.get(d.id.as_bytes().as_slice())? {
            let r: DeviceRecord =
                postcard::from_bytes(v.value()).map_err(|e| tables::damaged("devices", e))?;
            d.name = r.name;
            d.last_seen_ms = r.last_seen_ms;
        }
    }
    out.sort_by_key(|d| (d.added_ms, d.id));
    Ok(out)
}

/// Records that `device` was seen at `now_ms`, with the name it announced.
pub fn record_device(
    store: &mut Store,
    device: &DeviceId,
    name: Option<&str>,
    now_ms: u64,
) -> Result<(), StoreError> {
    let txn = store.writable()?.begin_write()?;
    tables::create(&txn)?;
    tables::touch_device(&txn, device, name, now_ms)?;
    txn.commit()?;
    Ok(())
}
