//! Online backup and offline restore of the redb store.
//!
//! Backup: ONE redb read transaction is a consistent snapshot of the whole
//! store (redb is MVCC: the relay's writer keeps committing meanwhile and
//! never waits for it); every table of [`super::admin::TABLES`] is copied
//! from it into a new redb file, together with the relay's identity key
//! (table `backup`), in one write transaction. The file is created 0600 and
//! removed again if anything fails, so a backup file either is complete or
//! does not exist.
//!
//! Restore (relay stopped): the backup is checked (a kith-relay backup, a
//! store format this binary reads, the same relay key as the data directory
//! if it has one), copied beside the store, stripped of its `backup` table,
//! opened once (which migrates an older format) and only then renamed over
//! `relay.redb`; the store it replaces is kept as
//! `relay.redb.before-restore-<ms>`. Devices heal what the backup lacks by
//! pushing it again (docs/RELAY.md, "Backup and restore").

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::admin::DELETED_ACCOUNTS;
use super::redb_store::{
    ACCOUNTS, ENTRIES, HEADS, MAILBOX, MAILBOX_OWNED, MAILBOX_OWNER, MEMBER_STATE, MEMBERSHIP,
    META, OpenError, PARTS, SCHEMA_VERSION, SNAPS, SUMS, TOKENS, UPLOADS,
};
use super::{RedbStore, RelayStore};

/// The backup's own table: "identity" -> the relay's 32-byte key,
/// "created_ms" -> u64 BE.
const BACKUP: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("backup");

/// File names inside a data directory.
pub const KEY_FILE: &str = "relay.key";
/// The store's file name inside a data directory.
pub const DB_FILE: &str = "relay.redb";

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    /// Store format version of the copy.
    pub format_version: u64,
    /// Accounts copied.
    pub accounts: u64,
    /// Entries copied.
    pub entries: u64,
    /// Rows copied over all tables.
    pub rows: u64,
}

/// Why a backup failed (nothing is left at the destination).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists already; backups never overwrite.
    #[error("{path} exists already; choose a new file name")]
    Exists {
        /// The destination.
        path: String,
    },
    /// The destination could not be created or written.
    #[error("cannot write the backup {path}: {source}")]
    Io {
        /// The destination.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be read or the copy written.
    #[error("backup failed: {0}")]
    Database(#[source] redb::Error),
}

/// Why a restore was refused or failed (the data directory is unchanged).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file is not a readable redb database.
    #[error("cannot read the backup {path}: {source}")]
    Unreadable {
        /// The backup.
        path: String,
        /// The cause.
        #[source]
        source: redb::Error,
    },
    /// A redb file, but not one written by `kith-relay backup`.
    #[error("{path} is not a kith-relay backup (no relay identity in it)")]
    NotABackup {
        /// The file.
        path: String,
    },
    /// The backup's store format is newer than this binary reads.
    #[error(
        "the backup has store format {found}, newer than this kith-relay reads ({SCHEMA_VERSION}); \
         restore it with the kith-relay version that made it"
    )]
    NewerFormat {
        /// Its format.
        found: u64,
    },
    /// The data directory belongs to another relay (its devices pin another key).
    #[error(
        "{path} holds a different relay key than the backup; restore into an empty data \
         directory, or move that key away if you really mean to replace this relay"
    )]
    DifferentRelay {
        /// The key file.
        path: String,
    },
    /// The relay is running on this data directory.
    #[error("the relay is running on {path}: stop it first (systemctl stop kith-relay)")]
    RelayRunning {
        /// The data directory.
        path: String,
    },
    /// A file operation failed.
    #[error("restore failed at {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The restored store did not open.
    #[error("the restored store does not open: {0}")]
    Open(#[from] OpenError),
    /// Writing the restored store failed.
    #[error("restore failed: {0}")]
    Database(#[source] redb::Error),
}

fn db_err<E: Into<redb::Error>>(e: E) -> BackupError {
    BackupError::Database(e.into())
}

/// Copies table `def` from `src` to `dst`; returns the rows copied.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<'_, K, V>,
) -> Result<u64, redb::Error> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    let mut n = 0u64;
    for item in from.iter()? {
        let (k, v) = item?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// Creates `path` new with mode 0600 (refusing to overwrite anything).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = OpenOptions::new();
    opts.write(true).read(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

impl RedbStore {
    /// Writes a consistent copy of the store and `identity` to the new file
    /// `dest` (see the module docs). Safe while the relay serves.
    pub fn backup_to(
        &self,
        dest: &Path,
        identity: &SigningKey,
        now_ms: u64,
    ) -> Result<BackupInfo, BackupError> {
        let io = |source| BackupError::Io {
            path: dest.display().to_string(),
            source,
        };
        match create_private(dest) {
            Ok(f) => drop(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists {
                    path: dest.display().to_string(),
                });
            }
            Err(e) => return Err(io(e)),
        }
        let result = self.backup_into(dest, identity, now_ms);
        if result.is_err() {
            // Never leave a partial backup that looks like a real one.
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    fn backup_into(
        &self,
        dest: &Path,
        identity: &SigningKey,
        now_ms: u64,
    ) -> Result<BackupInfo, BackupError> {
        let src = self.db().begin_read().map_err(db_err)?;
        let out = Database::create(dest).map_err(db_err)?;
        let dst = out.begin_write().map_err(db_err)?;
        let mut rows = 0u64;
        rows += copy(&src, &dst, ENTRIES).map_err(db_err)?;
        rows += copy(&src, &dst, SUMS).map_err(db_err)?;
        rows += copy(&src, &dst, HEADS).map_err(db_err)?;
        rows += copy(&src, &dst, ACCOUNTS).map_err(db_err)?;
        rows += copy(&src, &dst, MEMBERSHIP).map_err(db_err)?;
        rows += copy(&src, &dst, MEMBER_STATE).map_err(db_err)?;
        rows += copy(&src, &dst, SNAPS).map_err(db_err)?;
        rows += copy(&src, &dst, MAILBOX).map_err(db_err)?;
        rows += copy(&src, &dst, MAILBOX_OWNER).map_err(db_err)?;
        rows += copy(&src, &dst, MAILBOX_OWNED).map_err(db_err)?;
        rows += copy(&src, &dst, TOKENS).map_err(db_err)?;
        rows += copy(&src, &dst, META).map_err(db_err)?;
        rows += copy(&src, &dst, UPLOADS).map_err(db_err)?;
        rows += copy(&src, &dst, PARTS).map_err(db_err)?;
        rows += copy(&src, &dst, DELETED_ACCOUNTS).map_err(db_err)?;
        let (mut accounts, mut entries) = (0u64, 0u64);
        for item in src
            .open_table(ACCOUNTS)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
        {
            let (_, v) = item.map_err(db_err)?;
            accounts += 1;
            entries += v.value().2;
        }
        let format_version = src
            .open_table(META)
            .map_err(db_err)?
            .get("schema")
            .map_err(db_err)?
            .map_or(SCHEMA_VERSION, |g| g.value());
        {
            let mut b = dst.open_table(BACKUP).map_err(db_err)?;
            b.insert("identity", identity.to_bytes().as_slice())
                .map_err(db_err)?;
            b.insert("created_ms", now_ms.to_be_bytes().as_slice())
                .map_err(db_err)?;
        }
        dst.commit().map_err(db_err)?;
        drop(out);
        Ok(BackupInfo {
            format_version,
            accounts,
            entries,
            rows,
        })
    }
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// Store format of the backup (before any migration).
    pub format_version: u64,
    /// Accounts in the restored store.
    pub accounts: u64,
    /// Where the store that was replaced now is, if there was one.
    pub previous: Option<PathBuf>,
    /// True if the key file was written from the backup.
    pub key_written: bool,
}

/// Reads the relay identity and format of a backup file.
fn inspect(backup: &Path) -> Result<([u8; 32], u64), RestoreError> {
    let unreadable = |e: redb::Error| RestoreError::Unreadable {
        path: backup.display().to_string(),
        source: e,
    };
    let not_backup = || RestoreError::NotABackup {
        path: backup.display().to_string(),
    };
    let db = Database::open(backup).map_err(|e| unreadable(e.into()))?;
    let txn = db.begin_read().map_err(|e| unreadable(e.into()))?;
    let b = match txn.open_table(BACKUP) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Err(not_backup()),
        Err(e) => return Err(unreadable(e.into())),
    };
    let key = b
        .get("identity")
        .map_err(|e| unreadable(e.into()))?
        .and_then(|g| <[u8; 32]>::try_from(g.value()).ok())
        .ok_or_else(not_backup)?;
    let format = match txn.open_table(META) {
        Ok(m) => m
            .get("schema")
            .map_err(|e| unreadable(e.into()))?
            .map(|g| g.value())
            .ok_or_else(not_backup)?,
        Err(_) => return Err(not_backup()),
    };
    Ok((key, format))
}

/// Restores `backup` into `data_dir` (the relay must be stopped); see the
/// module docs. The data directory is created 0700 if missing.
pub fn restore(backup: &Path, data_dir: &Path, now_ms: u64) -> Result<RestoreInfo, RestoreError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RestoreError::Io { path, source }
    };
    let (key, format_version) = inspect(backup)?;
    if format_version > SCHEMA_VERSION {
        return Err(RestoreError::NewerFormat {
            found: format_version,
        });
    }
    if !data_dir.exists() {
        create_private_dir(data_dir).map_err(io(data_dir))?;
    }
    let key_path = data_dir.join(KEY_FILE);
    let key_written = match std::fs::read(&key_path) {
        Ok(existing) => {
            if existing.as_slice() != key.as_slice() {
                return Err(RestoreError::DifferentRelay {
                    path: key_path.display().to_string(),
                });
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(&key_path)(e)),
    };
    let db_path = data_dir.join(DB_FILE);
    if db_path.exists() {
        // The running relay holds redb's lock on its store.
        match Database::create(&db_path) {
            Ok(db) => drop(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(RestoreError::RelayRunning {
                    path: data_dir.display().to_string(),
                });
            }
            Err(e) => {
                // An unreadable current store is no reason to refuse: it is
                // kept aside below, the backup replaces it.
                tracing::warn!(error = %e, "the current store does not open; replacing it");
            }
        }
    }
    // Prepare the new store completely beside the old one.
    let staging = data_dir.join(format!("{DB_FILE}.restoring"));
    let _ = std::fs::remove_file(&staging);
    {
        let mut f = create_private(&staging).map_err(io(&staging))?;
        let mut src = std::fs::File::open(backup).map_err(io(backup))?;
        std::io::copy(&mut src, &mut f).map_err(io(&staging))?;
        f.sync_all().map_err(io(&staging))?;
    }
    let prepared = (|| {
        let db = Database::create(&staging).map_err(|e| RestoreError::Database(e.into()))?;
        let txn = db
            .begin_write()
            .map_err(|e| RestoreError::Database(e.into()))?;
        txn.delete_table(BACKUP)
            .map_err(|e| RestoreError::Database(e.into()))?;
        txn.commit().map_err(|e| RestoreError::Database(e.into()))?;
        drop(db);
        // Opening once migrates an older format and proves the file whole.
        let store = RedbStore::open(&staging)?;
        let accounts = store
            .stats()
            .map_err(|e| RestoreError::Database(redb::Error::Corrupted(e.to_string())))?
            .accounts;
        drop(store);
        Ok::<u64, RestoreError>(accounts)
    })();
    let accounts = match prepared {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    if key_written {
        let mut f = create_private(&key_path).map_err(io(&key_path))?;
        std::io::Write::write_all(&mut f, &key).map_err(io(&key_path))?;
        f.sync_all().map_err(io(&key_path))?;
    }
    let previous = if db_path.exists() {
        let aside = data_dir.join(format!("{DB_FILE}.before-restore-{now_ms}"));
        std::fs::rename(&db_path, &aside).map_err(io(&db_path))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, &db_path).map_err(io(&db_path))?;
    if let Ok(d) = std::fs::File::open(data_dir) {
        let _ = d.sync_all();
    }
    Ok(RestoreInfo {
        format_version,
        accounts,
        previous,
        key_written,
    })
}

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kith_protocol::{AccountId, DeviceId, SealedEntry};

    use super::*;
    use crate::store::WriteOp;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn store_with_entries(path: &Path, n: u64) -> (RedbStore, AccountId, DeviceId) {
        let store = RedbStore::open(path).unwrap();
        let acct_key = SigningKey::from_bytes(&[1; 32]);
        let acct = AccountId::from(acct_key.verifying_key());
        let k = SigningKey::from_bytes(&[2; 32]);
        let dev = DeviceId::from(k.verifying_key());
        let ops = crate::client::placeholder_membership(&acct_key, &[&k]);
        let r = store.apply(vec![
            WriteOp::AppendMembership {
                account: acct,
                ops,
                skip_known: true,
                token_hash: None,
                open_registration: true,
                now_ms: 0,
                members_max: 64,
            },
            WriteOp::Push {
                account: acct,
                device: dev,
                entries: (1..=n)
                    .map(|s| SealedEntry::seal(&k, acct, 1, s, [0; 24], vec![1; 32]))
                    .collect(),
                quota_bytes: u64::MAX,
            },
            WriteOp::CreateToken {
                token_hash: [9; 32],
                now_ms: 0,
            },
        ]);
        assert!(r.iter().all(Result::is_ok));
        (store, acct, dev)
    }

    #[test]
    fn backup_then_restore_gives_back_every_row_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (store, acct, dev) = store_with_entries(&dir.path().join("a.redb"), 5);
        let file = dir.path().join("b.backup");
        let info = store.backup_to(&file, &key(), 1).unwrap();
        assert_eq!((info.accounts, info.entries), (1, 5));
        assert_eq!(info.format_version, SCHEMA_VERSION);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Never overwrites.
        assert!(matches!(
            store.backup_to(&file, &key(), 2),
            Err(BackupError::Exists { .. })
        ));
        // More entries after the backup are not in it.
        let k = SigningKey::from_bytes(&[2; 32]);
        store.apply(vec![WriteOp::Push {
            account: acct,
            device: dev,
            entries: vec![SealedEntry::seal(&k, acct, 1, 6, [0; 24], vec![1; 32])],
            quota_bytes: u64::MAX,
        }]);

        let data = dir.path().join("restored");
        let r = restore(&file, &data, 3).unwrap();
        assert!(r.key_written && r.previous.is_none());
        assert_eq!(
            std::fs::read(data.join(KEY_FILE)).unwrap(),
            key().to_bytes()
        );
        let restored = RedbStore::open(&data.join(DB_FILE)).unwrap();
        let page = restored.pull(&acct, &[], 100, usize::MAX).unwrap();
        assert_eq!(page.entries.len(), 5);
        assert_eq!(
            page.entries,
            store.pull(&acct, &[], 5, usize::MAX).unwrap().entries
        );
        assert_eq!(restored.accounts().unwrap().len(), 1);
        // The backup's own table is gone from the restored store.
        let txn = restored.db().begin_read().unwrap();
        assert!(txn.open_table(BACKUP).is_err());
        drop(txn);

        // Restoring again keeps the store it replaces, and refuses while it is open.
        assert!(matches!(
            restore(&file, &data, 4),
            Err(RestoreError::RelayRunning { .. })
        ));
        drop(restored);
        let again = restore(&file, &data, 4).unwrap();
        assert!(!again.key_written);
        assert!(again.previous.unwrap().exists());
    }

    #[test]
    fn restore_refuses_foreign_keys_newer_formats_and_non_backups() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ..) = store_with_entries(&dir.path().join("a.redb"), 1);
        let file = dir.path().join("b.backup");
        store.backup_to(&file, &key(), 1).unwrap();

        let other = dir.path().join("other");
        create_private_dir(&other).unwrap();
        std::fs::write(other.join(KEY_FILE), [8u8; 32]).unwrap();
        assert!(matches!(
            restore(&file, &other, 2),
            Err(RestoreError::DifferentRelay { .. })
        ));
        assert!(!other.join(DB_FILE).exists());

        // A plain store is not a backup.
        let fresh = dir.path().join("fresh");
        assert!(matches!(
            restore(&dir.path().join("a.redb").with_extension("x"), &fresh, 2),
            Err(RestoreError::Unreadable { .. })
        ));
        drop(store);
        assert!(matches!(
            restore(&dir.path().join("a.redb"), &fresh, 2),
            Err(RestoreError::NotABackup { .. })
        ));
        std::fs::write(dir.path().join("junk"), b"not a database at all").unwrap();
        assert!(matches!(
            restore(&dir.path().join("junk"), &fresh, 2),
            Err(RestoreError::Unreadable { .. })
        ));

        // A backup from a newer store format.
        {
            let db = Database::open(&file).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = restore(&file, &fresh, 2).unwrap_err();
        assert!(matches!(err, RestoreError::NewerFormat { .. }), "{err}");
        assert!(!fresh.join(DB_FILE).exists());
    }

    #[test]
    fn a_newer_store_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        drop(RedbStore::open(&path).unwrap());
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::NewerSchema { .. }));
        assert!(err.to_string().contains("newer kith-relay"), "{err}");
    }
}
