//! Operator functions of the redb store that the relay protocol never uses:
//! listing accounts, deleting an account with every row of it, and reading
//! the store format version. They run from the admin socket while the relay
//! serves (`crate::admin`) or from the CLI while it is stopped; redb
//! serialises their write transactions with the relay's writer thread.
//!
//! A deleted account leaves only a tombstone (`deleted_accounts`: its public
//! id and the deletion time) so that its devices are refused instead of
//! silently registering it again under an `open` policy.
//!
//! [`TABLES`] names every table of the store; the backup (`store::backup`)
//! copies exactly these and a test fails when the store gains a table that
//! is missing here (so backups and deletions cannot silently skip one).

use kith_protocol::{AccountId, Membership};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::redb_store::{
    ACCOUNTS, ENTRIES, HEADS, K32, MAILBOX_OWNED, MAILBOX_OWNER, MEMBER_STATE, MEMBERSHIP, META,
    PARTS, SNAPS, SUMS, UPLOADS,
};
use super::{RedbStore, StoreError};

/// Accounts the operator deleted: account -> deleted-at ms.
pub(super) const DELETED_ACCOUNTS: TableDefinition<'_, K32, u64> =
    TableDefinition::new("deleted_accounts");

/// Every table of the store (see [`super::redb_store`]).
pub const TABLES: [&str; 15] = [
    "entries",
    "entry_sums",
    "heads",
    "accounts",
    "membership",
    "membership_state",
    "snapshots_v3",
    "mailbox",
    "mailbox_owner",
    "mailbox_owned",
    "tokens",
    "meta",
    "snapshot_uploads",
    "snapshot_parts_v3",
    "deleted_accounts",
];

/// One account as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The account's public id.
    pub account: AccountId,
    /// When it registered, ms since the epoch.
    pub created_ms: u64,
    /// Devices of its membership log (revoked ones included).
    pub devices: u64,
    /// Of those, revoked.
    pub revoked_devices: u64,
    /// Stored entries (not yet pruned by a snapshot).
    pub entries: u64,
    /// Stored bytes (entries + snapshot), what the quota counts.
    pub stored_bytes: u64,
}

/// What [`RedbStore::delete_account`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedAccount {
    /// Rows removed over all tables.
    pub rows: u64,
}

fn backend<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend {
        op,
        source: Box::new(e.into()),
    }
}

/// True if the operator deleted `account` (checked by registration).
pub(super) fn is_deleted(
    txn: &redb::WriteTransaction,
    account: &AccountId,
) -> Result<bool, redb::Error> {
    let t = txn.open_table(DELETED_ACCOUNTS)?;
    Ok(t.get(account.0)?.is_some())
}

const LO: K32 = [0u8; 32];
const HI: K32 = [0xffu8; 32];

impl RedbStore {
    /// The store format version this file carries (`meta.schema`).
    pub fn format_version(&self) -> Result<u64, StoreError> {
        const OP: &str = "format version";
        let txn = self.db().begin_read().map_err(backend(OP))?;
        let meta = txn.open_table(META).map_err(backend(OP))?;
        Ok(meta
            .get("schema")
            .map_err(backend(OP))?
            .map_or(0, |g| g.value()))
    }

    /// Every registered account, ordered by id.
    pub fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError> {
        const OP: &str = "list accounts";
        let txn = self.db().begin_read().map_err(backend(OP))?;
        let accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
        let states = txn.open_table(MEMBER_STATE).map_err(backend(OP))?;
        let mut out = Vec::new();
        for item in accounts.iter().map_err(backend(OP))? {
            let (k, v) = item.map_err(backend(OP))?;
            let a = k.value();
            let (created_ms, stored_bytes, entries) = v.value();
            let state: Option<Membership> = match states.get(a).map_err(backend(OP))? {
                Some(g) => {
                    Some(
                        postcard::from_bytes(g.value()).map_err(|e| StoreError::Backend {
                            op: OP,
                            source: Box::new(e),
                        })?,
                    )
                }
                None => None,
            };
            let (members, revoked) = state.map_or((0, 0), |m| {
                (m.members().count() as u64, m.revoked().count() as u64)
            });
            out.push(AccountInfo {
                account: AccountId(a),
                created_ms,
                devices: members + revoked,
                revoked_devices: revoked,
                entries,
                stored_bytes,
            });
        }
        Ok(out)
    }

    /// Deletes every row of `account` (entries, heads, devices, revocations,
    /// snapshot, unfinished uploads, the account itself) in one durable
    /// transaction and records the tombstone that refuses its devices from
    /// now on. `None` if no such account is registered.
    pub fn delete_account(
        &self,
        account: &AccountId,
        now_ms: u64,
    ) -> Result<Option<DeletedAccount>, StoreError> {
        const OP: &str = "delete account";
        let a = account.0;
        let txn = self.db().begin_write().map_err(backend(OP))?;
        let mut rows = 0u64;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
            if accounts.remove(a).map_err(backend(OP))?.is_none() {
                drop(accounts);
                txn.abort().map_err(backend(OP))?;
                return Ok(None);
            }
            rows += 1;
            let mut entries = txn.open_table(ENTRIES).map_err(backend(OP))?;
            let before = entries.len().map_err(backend(OP))?;
            entries
                .retain_in((a, LO, 0)..=(a, HI, u64::MAX), |_, _| false)
                .map_err(backend(OP))?;
            rows += before.saturating_sub(entries.len().map_err(backend(OP))?);
            // Their checksums go with them (not counted as rows of their own).
            txn.open_table(SUMS)
                .map_err(backend(OP))?
                .retain_in((a, LO, 0)..=(a, HI, u64::MAX), |_, _| false)
                .map_err(backend(OP))?;
            macro_rules! drop_pairs {
                ($table:expr) => {{
                    let mut t = txn.open_table($table).map_err(backend(OP))?;
                    let before = t.len().map_err(backend(OP))?;
                    t.retain_in((a, LO)..=(a, HI), |_, _| false)
                        .map_err(backend(OP))?;
                    rows += before.saturating_sub(t.len().map_err(backend(OP))?);
                }};
            }
            drop_pairs!(HEADS);
            drop_pairs!(UPLOADS);
            let mut log = txn.open_table(MEMBERSHIP).map_err(backend(OP))?;
            let before = log.len().map_err(backend(OP))?;
            log.retain_in((a, 0)..=(a, u64::MAX), |_, _| false)
                .map_err(backend(OP))?;
            rows += before.saturating_sub(log.len().map_err(backend(OP))?);
            let mut states = txn.open_table(MEMBER_STATE).map_err(backend(OP))?;
            if states.remove(a).map_err(backend(OP))?.is_some() {
                rows += 1;
            }
            let mut parts = txn.open_table(PARTS).map_err(backend(OP))?;
            let before = parts.len().map_err(backend(OP))?;
            parts
                .retain_in((a, LO, 0, 0)..=(a, HI, u64::MAX, u32::MAX), |_, _| false)
                .map_err(backend(OP))?;
            rows += before.saturating_sub(parts.len().map_err(backend(OP))?);
            let mut snaps = txn.open_table(SNAPS).map_err(backend(OP))?;
            let before = snaps.len().map_err(backend(OP))?;
            snaps
                .retain_in((a, 0)..=(a, u8::MAX), |_, _| false)
                .map_err(backend(OP))?;
            rows += before.saturating_sub(snaps.len().map_err(backend(OP))?);
            // Its mailbox blobs stop counting (the blobs expire by themselves).
            let mut owned = txn.open_table(MAILBOX_OWNED).map_err(backend(OP))?;
            let mut slots = Vec::new();
            for item in owned.range((a, LO)..=(a, HI)).map_err(backend(OP))? {
                let (k, _) = item.map_err(backend(OP))?;
                slots.push(k.value().1);
            }
            owned
                .retain_in((a, LO)..=(a, HI), |_, _| false)
                .map_err(backend(OP))?;
            let mut owner = txn.open_table(MAILBOX_OWNER).map_err(backend(OP))?;
            for slot in slots {
                owner.remove(slot).map_err(backend(OP))?;
                rows += 1;
            }
            txn.open_table(DELETED_ACCOUNTS)
                .map_err(backend(OP))?
                .insert(a, now_ms)
                .map_err(backend(OP))?;
        }
        txn.commit().map_err(backend(OP))?;
        Ok(Some(DeletedAccount { rows }))
    }

    /// Rows that mention `account` in any table (0 after a deletion, but for
    /// the tombstone): for tests and the operator's verification.
    pub fn account_rows(&self, account: &AccountId) -> Result<u64, StoreError> {
        const OP: &str = "count account rows";
        let a = account.0;
        let txn = self.db().begin_read().map_err(backend(OP))?;
        let mut n = 0u64;
        let accounts = txn.open_table(ACCOUNTS).map_err(backend(OP))?;
        n += u64::from(accounts.get(a).map_err(backend(OP))?.is_some());
        let snaps = txn.open_table(SNAPS).map_err(backend(OP))?;
        n += snaps
            .range((a, 0)..=(a, u8::MAX))
            .map_err(backend(OP))?
            .count() as u64;
        let owned = txn.open_table(MAILBOX_OWNED).map_err(backend(OP))?;
        n += owned.range((a, LO)..=(a, HI)).map_err(backend(OP))?.count() as u64;
        let entries = txn.open_table(ENTRIES).map_err(backend(OP))?;
        n += entries
            .range((a, LO, 0)..=(a, HI, u64::MAX))
            .map_err(backend(OP))?
            .count() as u64;
        let parts = txn.open_table(PARTS).map_err(backend(OP))?;
        n += parts
            .range((a, LO, 0, 0)..=(a, HI, u64::MAX, u32::MAX))
            .map_err(backend(OP))?
            .count() as u64;
        macro_rules! count_pairs {
            ($table:expr) => {{
                let t = txn.open_table($table).map_err(backend(OP))?;
                n += t.range((a, LO)..=(a, HI)).map_err(backend(OP))?.count() as u64;
            }};
        }
        count_pairs!(HEADS);
        count_pairs!(UPLOADS);
        let log = txn.open_table(MEMBERSHIP).map_err(backend(OP))?;
        n += log
            .range((a, 0)..=(a, u64::MAX))
            .map_err(backend(OP))?
            .count() as u64;
        let states = txn.open_table(MEMBER_STATE).map_err(backend(OP))?;
        n += u64::from(states.get(a).map_err(backend(OP))?.is_some());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kith_protocol::{Cursor, DeviceId, SealedEntry, SealedSnapshot};
    use redb::TableHandle;

    use super::*;
    use crate::store::{RelayStore, WriteOp};

    fn filled(dir: &std::path::Path, seed: u8) -> (RedbStore, AccountId, DeviceId) {
        let store = RedbStore::open(&dir.join("t.redb")).unwrap();
        let acct_key = SigningKey::from_bytes(&[seed; 32]);
        let acct = AccountId::from(acct_key.verifying_key());
        let k = SigningKey::from_bytes(&[seed + 1; 32]);
        let dev = DeviceId::from(k.verifying_key());
        let k2 = SigningKey::from_bytes(&[seed + 2; 32]);
        let dev2 = DeviceId::from(k2.verifying_key());
        let ops = crate::client::placeholder_membership(&acct_key, &[&k, &k2]);
        let revoke = crate::client::placeholder_revoke(&ops, &k, dev2).unwrap();
        let entries: Vec<SealedEntry> = (1..=3)
            .map(|s| SealedEntry::seal(&k, acct, 1, s, [0; 24], vec![s as u8; 10]))
            .collect();
        let snapshot = SealedSnapshot::seal(
            &k,
            acct,
            1,
            vec![Cursor {
                device: dev,
                seq: 1,
            }],
            [0; 24],
            b"s".to_vec(),
        );
        let r = store.apply(vec![
            WriteOp::AppendMembership {
                account: acct,
                ops,
                skip_known: true,
                token_hash: None,
                open_registration: true,
                now_ms: 5,
                members_max: 64,
            },
            WriteOp::Push {
                account: acct,
                device: dev,
                entries,
                quota_bytes: u64::MAX,
            },
            WriteOp::PutSnapshot {
                snapshot,
                quota_bytes: u64::MAX,
                finished_upload: None,
                now_ms: 0,
            },
            WriteOp::PutSnapshotPart {
                account: acct,
                device: dev,
                upload: 9,
                index: 0,
                count: 2,
                bytes: vec![1; 4],
                upload_bytes_max: 1 << 20,
                now_ms: 5,
                quota_bytes: u64::MAX,
            },
            WriteOp::AppendMembership {
                account: acct,
                ops: vec![revoke],
                skip_known: false,
                token_hash: None,
                open_registration: true,
                now_ms: 6,
                members_max: 64,
            },
        ]);
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        (store, acct, dev)
    }

    #[test]
    fn delete_account_removes_every_row_and_refuses_the_account_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let (store, acct, dev) = filled(dir.path(), 1);
        let listed = store.accounts().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].devices, 2);
        assert_eq!(listed[0].revoked_devices, 1);
        // The snapshot is pending (no other device opened it): nothing pruned.
        assert_eq!(listed[0].entries, 3);
        assert!(listed[0].stored_bytes > 0);
        assert!(store.account_rows(&acct).unwrap() >= 8);

        let deleted = store.delete_account(&acct, 7).unwrap().unwrap();
        assert!(deleted.rows >= 8, "{deleted:?}");
        assert_eq!(store.account_rows(&acct).unwrap(), 0);
        assert!(store.accounts().unwrap().is_empty());
        assert_eq!(store.stats().unwrap().accounts, 0);
        assert_eq!(store.delete_account(&acct, 8).unwrap(), None);

        // Its device cannot register it again, even under an open policy.
        let acct_key = SigningKey::from_bytes(&[1; 32]);
        let k = SigningKey::from_bytes(&[2; 32]);
        assert_eq!(DeviceId::from(k.verifying_key()), dev);
        let r = store.apply(vec![WriteOp::AppendMembership {
            account: acct,
            ops: crate::client::placeholder_membership(&acct_key, &[&k]),
            skip_known: true,
            token_hash: None,
            open_registration: true,
            now_ms: 9,
            members_max: 64,
        }]);
        assert!(matches!(r[0], Err(StoreError::AccountDeleted)), "{r:?}");
        assert!(store.membership(&acct).unwrap().is_none());
    }

    #[test]
    fn delete_account_leaves_other_accounts_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, acct, _) = filled(dir.path(), 1);
        let acct_key = SigningKey::from_bytes(&[20; 32]);
        let other = AccountId::from(acct_key.verifying_key());
        let k = SigningKey::from_bytes(&[21; 32]);
        let dev = DeviceId::from(k.verifying_key());
        let r = store.apply(vec![
            WriteOp::AppendMembership {
                account: other,
                ops: crate::client::placeholder_membership(&acct_key, &[&k]),
                skip_known: true,
                token_hash: None,
                open_registration: true,
                now_ms: 5,
                members_max: 64,
            },
            WriteOp::Push {
                account: other,
                device: dev,
                entries: vec![SealedEntry::seal(&k, other, 1, 1, [0; 24], vec![1; 10])],
                quota_bytes: u64::MAX,
            },
        ]);
        assert!(r.iter().all(Result::is_ok));
        let before = store.account_rows(&other).unwrap();
        store.delete_account(&acct, 7).unwrap().unwrap();
        assert_eq!(store.account_rows(&other).unwrap(), before);
        assert_eq!(store.accounts().unwrap().len(), 1);
    }

    #[test]
    fn tables_lists_every_table_the_store_creates() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ..) = filled(dir.path(), 1);
        let txn = store.db().begin_read().unwrap();
        let mut found: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        found.sort();
        let mut want: Vec<String> = TABLES.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(
            found, want,
            "a table was added to the store: add it to store::admin::TABLES, to the backup \
             (store::backup) and, if it holds account rows, to delete_account"
        );
        assert_eq!(
            store.format_version().unwrap(),
            super::super::redb_store::SCHEMA_VERSION
        );
    }
}
