//! `kith-relay migrate --from DIR --to postgres://...`: copies a redb relay's
//! store into empty PostgreSQL shards, so a self-hoster moves to the scaled-out
//! relay without their users re-pairing (the key file moves with it).
//!
//! Data flow: ONE redb read transaction (a consistent snapshot; run it with
//! the redb relay stopped so nothing is written after it) is read table by
//! table; rows go to the shard of their account (mailbox slots: of their
//! slot; tokens: shard 0) as they are stored, byte for byte (entries keep
//! their checksums, snapshots are split into envelope and ciphertext). Each
//! shard's rows are written in one transaction per shard, so a failed
//! migration leaves the target empty and can be run again. Unfinished
//! snapshot uploads are not copied (their devices start them again).
//!
//! Verification: afterwards every account is read back through both stores'
//! [`RelayStore`] reads and compared: membership state and every membership
//! op, heads and floors, the snapshot, and every stored entry of every
//! device log; plus the totals. Any difference fails the migration.

use redb::{ReadableDatabase, ReadableTable};

use kith_protocol::AccountId;

use super::admin::DELETED_ACCOUNTS;
use super::pg_store::{PgStore, shard_of};
use super::redb_store::{
    ACCOUNTS, ENTRIES, HEADS, MAILBOX, MAILBOX_OWNED, MAILBOX_OWNER, MEMBER_STATE, MEMBERSHIP,
    PARTS, SNAPS, SUMS, TOKENS,
};
use super::{RedbStore, RelayStore, StoreError};

/// Rows sent per INSERT.
const ROWS_PER_INSERT: usize = 1000;
/// Entries per page when comparing logs.
const VERIFY_PAGE_ENTRIES: usize = 1000;

/// What a migration copied (and then verified).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Accounts copied.
    pub accounts: u64,
    /// Entries copied.
    pub entries: u64,
    /// Snapshots copied.
    pub snapshots: u64,
    /// Membership ops copied.
    pub membership_ops: u64,
    /// Registration tokens copied.
    pub tokens: u64,
    /// Mailbox slots copied (blobs and tombstones).
    pub mailbox_slots: u64,
}

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds accounts.
    #[error(
        "the target database already holds {accounts} accounts: migrate into empty databases only"
    )]
    TargetNotEmpty {
        /// Accounts found.
        accounts: u64,
    },
    /// Reading the redb store failed.
    #[error("reading the redb store failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing to PostgreSQL failed (nothing of that shard was committed).
    #[error("writing to PostgreSQL failed: {0}")]
    Target(#[source] postgres::Error),
    /// A store read failed during verification.
    #[error("verification could not read a store: {0}")]
    Store(#[from] StoreError),
    /// The copy differs from the original.
    #[error("verification failed for account {account}: {what} differ")]
    Mismatch {
        /// The account.
        account: AccountId,
        /// What differs.
        what: &'static str,
    },
}

fn src<E: Into<redb::Error>>(e: E) -> MigrateError {
    MigrateError::Source(Box::new(e.into()))
}

/// Rows of one table for one shard, flushed in chunks.
struct Rows {
    sql: &'static str,
    cols: Vec<Vec<Vec<u8>>>,
    ints: Vec<Vec<i64>>,
}

impl Rows {
    fn new(sql: &'static str, byte_cols: usize, int_cols: usize) -> Self {
        Self {
            sql,
            cols: vec![Vec::new(); byte_cols],
            ints: vec![Vec::new(); int_cols],
        }
    }

    fn len(&self) -> usize {
        self.cols
            .first()
            .map_or_else(|| self.ints.first().map_or(0, Vec::len), Vec::len)
    }

    fn flush(&mut self, tx: &mut postgres::Transaction<'_>) -> Result<(), MigrateError> {
        if self.len() == 0 {
            return Ok(());
        }
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        for c in &self.cols {
            params.push(c);
        }
        for c in &self.ints {
            params.push(c);
        }
        tx.execute(self.sql, &params)
            .map_err(MigrateError::Target)?;
        for c in &mut self.cols {
            c.clear();
        }
        for c in &mut self.ints {
            c.clear();
        }
        Ok(())
    }

    fn push(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        bytes: Vec<Vec<u8>>,
        ints: Vec<i64>,
    ) -> Result<(), MigrateError> {
        for (c, v) in self.cols.iter_mut().zip(bytes) {
            c.push(v);
        }
        for (c, v) in self.ints.iter_mut().zip(ints) {
            c.push(v);
        }
        if self.len() >= ROWS_PER_INSERT {
            self.flush(tx)?;
        }
        Ok(())
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Copies `from` into the (empty) shards of `to`, then verifies every log.
pub fn migrate(from: &RedbStore, to: &PgStore) -> Result<MigrateReport, MigrateError> {
    let found = to.stats()?.accounts;
    if found > 0 {
        return Err(MigrateError::TargetNotEmpty { accounts: found });
    }
    let shards = to.shard_count();
    let db = from.db();
    let rtx = db.begin_read().map_err(src)?;
    let mut report = MigrateReport::default();
    for shard in 0..shards {
        let mut client = to.connect_shard(shard).map_err(MigrateError::Target)?;
        let mut tx = client.transaction().map_err(MigrateError::Target)?;
        let mine = |a: &[u8; 32]| shard_of(a, shards) == shard;

        let mut rows = Rows::new(
            "INSERT INTO accounts SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[])",
            1,
            3,
        );
        for item in rtx.open_table(ACCOUNTS).map_err(src)?.iter().map_err(src)? {
            let (k, v) = item.map_err(src)?;
            let (a, (created, bytes, entries)) = (k.value(), v.value());
            if mine(&a) {
                report.accounts += 1;
                rows.push(
                    &mut tx,
                    vec![a.to_vec()],
                    vec![i(created), i(bytes), i(entries)],
                )?;
            }
        }
        rows.flush(&mut tx)?;

        let mut rows = Rows::new(
            "INSERT INTO membership_state SELECT * FROM unnest($1::bytea[], $2::bytea[])",
            2,
            0,
        );
        for item in rtx
            .open_table(MEMBER_STATE)
            .map_err(src)?
            .iter()
            .map_err(src)?
        {
            let (k, v) = item.map_err(src)?;
            if mine(&k.value()) {
                rows.push(
                    &mut tx,
                    vec![k.value().to_vec(), v.value().to_vec()],
                    vec![],
                )?;
            }
        }
        rows.flush(&mut tx)?;

        let mut rows = Rows::new(
            "INSERT INTO membership SELECT a, p, o FROM unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS t(a, o, p)",
            2,
            1,
        );
        for item in rtx
            .open_table(MEMBERSHIP)
            .map_err(src)?
            .iter()
            .map_err(src)?
        {
            let (k, v) = item.map_err(src)?;
            let (a, pos) = k.value();
            if mine(&a) {
                report.membership_ops += 1;
                rows.push(&mut tx, vec![a.to_vec(), v.value().to_vec()], vec![i(pos)])?;
            }
        }
        rows.flush(&mut tx)?;

        let mut rows = Rows::new(
            "INSERT INTO heads SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[])",
            2,
            2,
        );
        for item in rtx.open_table(HEADS).map_err(src)?.iter().map_err(src)? {
            let (k, v) = item.map_err(src)?;
            let ((a, d), (head, floor)) = (k.value(), v.value());
            if mine(&a) {
                rows.push(
                    &mut tx,
                    vec![a.to_vec(), d.to_vec()],
                    vec![i(head), i(floor)],
                )?;
            }
        }
        rows.flush(&mut tx)?;

        let sums = rtx.open_table(SUMS).map_err(src)?;
        let mut rows = Rows::new(
            "INSERT INTO entries SELECT a, d, s, b, NULLIF(h, '') FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[]) AS t(a, d, b, h, s)",
            4,
            1,
        );
        for item in rtx.open_table(ENTRIES).map_err(src)?.iter().map_err(src)? {
            let (k, v) = item.map_err(src)?;
            let (a, d, seq) = k.value();
            if mine(&a) {
                report.entries += 1;
                // Entries stored before checksums existed have none (empty → NULL).
                let sum = sums
                    .get((a, d, seq))
                    .map_err(src)?
                    .map(|g| g.value().to_vec())
                    .unwrap_or_default();
                rows.push(
                    &mut tx,
                    vec![a.to_vec(), d.to_vec(), v.value().to_vec(), sum],
                    vec![i(seq)],
                )?;
            }
        }
        rows.flush(&mut tx)?;

        // Snapshots (confirmed and pending) with the parts of their ciphertext,
        // under the same keys.
        let parts = rtx.open_table(PARTS).map_err(src)?;
        for item in rtx.open_table(SNAPS).map_err(src)?.iter().map_err(src)? {
            let (k, v) = item.map_err(src)?;
            let (a, slot) = k.value();
            if !mine(&a) {
                continue;
            }
            report.snapshots += 1;
            let row: super::redb_store::SnapRow =
                postcard::from_bytes(v.value()).map_err(|e| MigrateError::Source(Box::new(e)))?;
            let envelope = postcard::to_allocvec(&row.envelope)
                .map_err(|e| MigrateError::Source(Box::new(e)))?;
            let dev = row.envelope.device.0;
            let ends: Vec<i64> = row.part_ends.iter().map(|e| i(*e)).collect();
            tx.execute(
                "INSERT INTO snapshots_v3 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &a.as_slice(),
                    &i16::from(slot),
                    &envelope,
                    &dev.as_slice(),
                    &i64::from_ne_bytes(row.upload.to_ne_bytes()),
                    &ends,
                    &i(row.stored_ms),
                ],
            )
            .map_err(MigrateError::Target)?;
            for n in 0..row.part_ends.len() {
                let idx = u32::try_from(n).unwrap_or(u32::MAX);
                let g = parts
                    .get((a, dev, row.upload, idx))
                    .map_err(src)?
                    .ok_or_else(|| {
                        MigrateError::Source("a stored snapshot misses a part".into())
                    })?;
                tx.execute(
                    "INSERT INTO snapshot_parts_v3 VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &a.as_slice(),
                        &dev.as_slice(),
                        &i64::from_ne_bytes(row.upload.to_ne_bytes()),
                        &i32::try_from(idx).unwrap_or(i32::MAX),
                        &g.value(),
                    ],
                )
                .map_err(MigrateError::Target)?;
            }
        }

        // Mailbox blobs of accounts count against them on their shard.
        let owner_of = rtx.open_table(MAILBOX_OWNER).map_err(src)?;
        let mailbox = rtx.open_table(MAILBOX).map_err(src)?;
        for item in rtx
            .open_table(MAILBOX_OWNED)
            .map_err(src)?
            .iter()
            .map_err(src)?
        {
            let (k, v) = item.map_err(src)?;
            let (a, slot) = k.value();
            if !mine(&a) {
                continue;
            }
            let expires = mailbox
                .get(slot)
                .map_err(src)?
                .and_then(|g| g.value().get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
                .map_or(0, u64::from_be_bytes);
            tx.execute(
                "INSERT INTO mailbox_owned VALUES ($1, $2, $3, $4)",
                &[&a.as_slice(), &slot.as_slice(), &i(v.value()), &i(expires)],
            )
            .map_err(MigrateError::Target)?;
        }

        for item in rtx.open_table(MAILBOX).map_err(src)?.iter().map_err(src)? {
            let (k, v) = item.map_err(src)?;
            if !mine(&k.value()) {
                continue;
            }
            report.mailbox_slots += 1;
            let v = v.value();
            let expires = v
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            // Expiry alone: the tombstone of a taken blob.
            let blob: Option<&[u8]> = v.get(8..).filter(|b| !b.is_empty());
            let owner = owner_of.get(k.value()).map_err(src)?.map(|g| g.value());
            let owner: Option<&[u8]> = owner.as_ref().map(|o| o.as_slice());
            tx.execute(
                "INSERT INTO mailbox (slot, expires_ms, blob, owner) VALUES ($1, $2, $3, $4)",
                &[&k.value().as_slice(), &i(expires), &blob, &owner],
            )
            .map_err(MigrateError::Target)?;
        }

        if shard == 0 {
            for item in rtx.open_table(TOKENS).map_err(src)?.iter().map_err(src)? {
                let (k, v) = item.map_err(src)?;
                report.tokens += 1;
                tx.execute(
                    "INSERT INTO tokens VALUES ($1, $2)",
                    &[&k.value().as_slice(), &i(v.value())],
                )
                .map_err(MigrateError::Target)?;
            }
        }
        for item in rtx
            .open_table(DELETED_ACCOUNTS)
            .map_err(src)?
            .iter()
            .map_err(src)?
        {
            let (k, v) = item.map_err(src)?;
            if mine(&k.value()) {
                tx.execute(
                    "INSERT INTO deleted_accounts VALUES ($1, $2)",
                    &[&k.value().as_slice(), &i(v.value())],
                )
                .map_err(MigrateError::Target)?;
            }
        }
        tx.commit().map_err(MigrateError::Target)?;
    }
    drop(rtx);
    drop(db);
    verify(from, to)?;
    Ok(report)
}

/// Compares every account of `from` with `to` through the stores' reads.
pub fn verify(from: &RedbStore, to: &PgStore) -> Result<(), MigrateError> {
    for info in from.accounts()? {
        let a = info.account;
        let differ = |what| MigrateError::Mismatch { account: a, what };
        if from.membership(&a)? != to.membership(&a)? {
            return Err(differ("membership states"));
        }
        if from.membership_ops(&a, 0, usize::MAX)? != to.membership_ops(&a, 0, usize::MAX)? {
            return Err(differ("membership logs"));
        }
        let heads = from.heads(&a)?;
        if heads != to.heads(&a)? {
            return Err(differ("heads or floors"));
        }
        if from.snapshots(&a)? != to.snapshots(&a)? || from.snapshot(&a)? != to.snapshot(&a)? {
            return Err(differ("snapshots"));
        }
        // Every device log, page by page, from its floor.
        let mut cursors = heads.floors.clone();
        loop {
            let (x, y) = (
                from.pull(&a, &cursors, VERIFY_PAGE_ENTRIES, usize::MAX)?,
                to.pull(&a, &cursors, VERIFY_PAGE_ENTRIES, usize::MAX)?,
            );
            if x != y {
                return Err(differ("entries"));
            }
            for e in &x.entries {
                if let Some(c) = cursors.iter_mut().find(|c| c.device == e.device) {
                    c.seq = c.seq.max(e.seq);
                }
            }
            if !x.more {
                break;
            }
        }
    }
    if from.stats()? != to.stats()? {
        return Err(MigrateError::Mismatch {
            account: AccountId([0; 32]),
            what: "store totals",
        });
    }
    Ok(())
}
