//! The PostgreSQL implementation of [`RelayStore`], for relays that run as
//! several stateless nodes in front of one replicated database (docs/RELAY.md,
//! "Scaling out").
//!
//! Layout: one or more shards, each a PostgreSQL database given by one
//! `--store postgres://...` URL. Every relay operation touches one account,
//! so an account lives on exactly one shard: [`shard_of`] maps the account id
//! to a shard with a stable hash (SHA-256 of the id, jump consistent hash over
//! the shard count). Mailbox slots map the same way by slot id. Registration
//! tokens live on shard 0; a registration on another shard takes its token
//! there first (and puts it back if the registration is refused).
//!
//! Tables per shard (ids are 32-byte `bytea`, counters `bigint`) mirror the
//! redb store's (`redb_store.rs`), with the same semantics:
//! `accounts`, `membership_state`, `membership`, `heads`, `entries` (with the
//! SHA-256 `sum` of the stored bytes, for damage detection), `snapshots_v3`
//! (per account slot 0 the confirmed and slot 1 a pending snapshot: the
//! envelope, the key of its parts and their cumulative ends),
//! `snapshot_uploads`, `snapshot_parts_v3` (the parts of unfinished uploads
//! and, as uploaded, the ciphertext of stored snapshots: a commit moves no
//! bytes, a range read loads only the parts it needs), `mailbox` (a taken
//! blob leaves its expiry, `blob` NULL: the tombstone; `owner`: the account
//! whose quota it counts against), `mailbox_owned` (on the owner's shard:
//! its blobs' sizes and expiries), `tokens`, `deleted_accounts`,
//! `kith_meta` (schema version, shard position, probe counter), and the
//! unlogged `rate_windows` (entries per account per minute) and
//! `registration_windows` (new accounts per source address per hour).
//!
//! Mailbox accounting across shards: a blob's slot and its owner account
//! may live on different shards. Then the blob is counted on the owner's
//! shard first (its own transaction), the put follows on the slot's shard,
//! and a refused put is uncounted again; a take releases the count on the
//! owner's shard after its commit. Should a release fail, the owner's
//! shard releases the count at the blob's expiry by itself (every count
//! keeps its expiry), so a count is never held longer than the blob could live.
//!
//! Writes: a batch of [`WriteOp`]s is ONE transaction per shard (group
//! commit). It first takes a transaction-scoped advisory lock per account of
//! the batch, in sorted order, so batches of different relay nodes touching
//! the same account serialise and never deadlock each other. Each op then
//! runs inside a savepoint: a refused op is rolled back to it and the others
//! commit (pushes excepted: they refuse only before their first write, so
//! they need none); a database error aborts the whole batch (every result
//! `Backend`).
//! If the COMMIT itself fails the outcome is unknown; the caller is told
//! `Backend` and the client re-sends, which every op tolerates (pushes of
//! stored entries are idempotent).
//!
//! Async bridge: the trait is synchronous and the relay calls it from its
//! writer thread and from `spawn_blocking`, never from an async task, so this
//! uses the synchronous `postgres` client (each connection drives its own
//! small tokio runtime internally). The writer holds one connection per
//! shard; reads use a bounded pool per shard. A broken connection is
//! dropped and reconnected on the next call.
//!
//! Schema migrations are versioned ([`MIGRATIONS`]) and applied at start
//! under an advisory lock (several nodes may start at once); a database of a
//! newer schema is refused with [`PgOpenError::NewerSchema`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use kith_protocol::{
    AccountId, Change, Cursor, DeviceId, Membership, MembershipOp, SealedEntry, SealedSnapshot,
};
use postgres::types::Type;
use postgres::{Client, Row, Transaction};

use super::pg_tls::{DbConfig, DbTlsError};

use super::{
    Heads, PullPage, RelayStore, SnapshotRange, StoreError, StoreStats, WriteOp, WriteOutcome,
};

/// The schema versions, in order: version `i + 1` is `MIGRATIONS[i]`. Never
/// edit a released entry; add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the tables of the redb store, as rows.
    "CREATE TABLE accounts (
        account bytea PRIMARY KEY,
        created_ms bigint NOT NULL,
        bytes bigint NOT NULL,
        entries bigint NOT NULL);
     CREATE TABLE membership_state (account bytea PRIMARY KEY, state bytea NOT NULL);
     CREATE TABLE membership (
        account bytea NOT NULL, position bigint NOT NULL, op bytea NOT NULL,
        PRIMARY KEY (account, position));
     CREATE TABLE heads (
        account bytea NOT NULL, device bytea NOT NULL,
        head bigint NOT NULL, floor bigint NOT NULL,
        PRIMARY KEY (account, device));
     CREATE TABLE entries (
        account bytea NOT NULL, device bytea NOT NULL, seq bigint NOT NULL,
        body bytea NOT NULL, sum bytea,
        PRIMARY KEY (account, device, seq));
     CREATE TABLE snapshots (
        account bytea PRIMARY KEY,
        envelope bytea NOT NULL,
        ciphertext bytea NOT NULL,
        stored_bytes bigint NOT NULL);
     CREATE TABLE snapshot_uploads (
        account bytea NOT NULL, device bytea NOT NULL,
        upload bigint NOT NULL, part_count bigint NOT NULL,
        held_bytes bigint NOT NULL, started_ms bigint NOT NULL,
        PRIMARY KEY (account, device));
     CREATE INDEX snapshot_uploads_started ON snapshot_uploads (started_ms);
     CREATE TABLE snapshot_parts (
        account bytea NOT NULL, device bytea NOT NULL, idx integer NOT NULL,
        bytes bytea NOT NULL,
        PRIMARY KEY (account, device, idx));
     CREATE TABLE mailbox (slot bytea PRIMARY KEY, expires_ms bigint NOT NULL, blob bytea);
     CREATE INDEX mailbox_expires ON mailbox (expires_ms);
     CREATE TABLE tokens (token_hash bytea PRIMARY KEY, created_ms bigint NOT NULL);
     CREATE TABLE deleted_accounts (account bytea PRIMARY KEY, deleted_ms bigint NOT NULL);",
    // 2: per-account entry rate windows shared by every node. Unlogged: not
    // worth a WAL write or a standby's acknowledgement; a failover or crash
    // empties it, which only resets the current minute's counts.
    "CREATE UNLOGGED TABLE rate_windows (
        account bytea PRIMARY KEY, start_ms bigint NOT NULL, entries bigint NOT NULL);",
    // 3: protocol 4's relay-store contract (redb schema 3). Two snapshots per
    // account (slot 0 confirmed, 1 pending), their ciphertext kept as the
    // parts it was uploaded in (`parts_device`, `upload`; `part_ends`: the
    // cumulative end offset of each part, for range reads). Schema 2's
    // snapshot becomes the confirmed one, its ciphertext one part under its
    // own (all-zero) parts key; unfinished uploads are dropped (devices
    // upload again; their parts never counted against quotas). Mailbox
    // blobs left by an authenticated device record their `owner`, and the
    // owner's shard counts them (`mailbox_owned`) until taken or expired.
    "CREATE TABLE snapshots_v3 (
        account bytea NOT NULL, slot smallint NOT NULL,
        envelope bytea NOT NULL,
        parts_device bytea NOT NULL, upload bigint NOT NULL,
        part_ends bigint[] NOT NULL, stored_ms bigint NOT NULL,
        PRIMARY KEY (account, slot));
     CREATE INDEX snapshots_v3_pending ON snapshots_v3 (stored_ms) WHERE slot = 1;
     CREATE TABLE snapshot_parts_v3 (
        account bytea NOT NULL, device bytea NOT NULL, upload bigint NOT NULL,
        idx integer NOT NULL, bytes bytea NOT NULL,
        PRIMARY KEY (account, device, upload, idx));
     INSERT INTO snapshot_parts_v3
        SELECT account, decode(repeat('00', 32), 'hex'), 0, 0, ciphertext
        FROM snapshots WHERE length(ciphertext) > 0;
     INSERT INTO snapshots_v3
        SELECT account, 0, envelope, decode(repeat('00', 32), 'hex'), 0,
               CASE WHEN length(ciphertext) > 0
                    THEN ARRAY[length(ciphertext)::bigint] ELSE '{}'::bigint[] END, 0
        FROM snapshots;
     DROP TABLE snapshots;
     DROP TABLE snapshot_parts;
     DELETE FROM snapshot_uploads;
     ALTER TABLE mailbox ADD COLUMN owner bytea;
     CREATE TABLE mailbox_owned (
        account bytea NOT NULL, slot bytea NOT NULL,
        bytes bigint NOT NULL, expires_ms bigint NOT NULL,
        PRIMARY KEY (account, slot));
     CREATE INDEX mailbox_owned_expires ON mailbox_owned (expires_ms);
     CREATE UNLOGGED TABLE registration_windows (
        addr bytea PRIMARY KEY, start_ms bigint NOT NULL, accounts bigint NOT NULL);",
];

/// The schema version this relay writes (the number of [`MIGRATIONS`]).
pub const PG_SCHEMA_VERSION: u64 = MIGRATIONS.len() as u64;

/// Advisory lock key under which migrations run (any constant; "kith").
const MIGRATION_LOCK: i64 = 0x6b69_7468;
/// Read connections kept per shard at most (and open at once at most).
const READERS_MAX: usize = 16;
/// Rate windows older than this are deleted by the sweep (a window is a minute).
const RATE_WINDOW_KEEP_MS: u64 = 120_000;
/// Registration windows older than this are deleted by the sweep (a window
/// is an hour).
const REGISTRATION_WINDOW_KEEP_MS: u64 = 2 * 3_600_000;
/// How long connecting to a shard may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Why the PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    /// No shard URL was given.
    #[error("no postgres:// URL given")]
    NoShards,
    /// A URL could not be parsed.
    #[error("shard {shard}: invalid PostgreSQL URL: {source}")]
    BadUrl {
        /// The shard's position in the list.
        shard: usize,
        /// What is wrong with it.
        #[source]
        source: DbTlsError,
    },
    /// The database could not be reached or refused a statement.
    #[error("shard {shard}: PostgreSQL failed while {doing}: {}", error_chain(.source))]
    Database {
        /// The shard's position in the list.
        shard: usize,
        /// What was being done.
        doing: &'static str,
        /// The client error.
        #[source]
        source: postgres::Error,
    },
    /// The database was set up by a newer kith-relay.
    #[error(
        "shard {shard}: the database has relay schema {found}, written by a newer kith-relay; this \
         kith-relay knows schemas up to {PG_SCHEMA_VERSION}: run the newer kith-relay on every node"
    )]
    NewerSchema {
        /// The shard's position in the list.
        shard: usize,
        /// The schema found.
        found: u64,
    },
    /// The database is another shard than its position in the URL list says.
    #[error(
        "shard {shard}: this database was set up as shard {found_shard} of {found_count}, but the \
         --store list makes it shard {shard} of {count}: give the URLs in their original order \
         (adding or removing shards needs a data move, see docs/RELAY.md)"
    )]
    ShardMismatch {
        /// The shard's position in the list.
        shard: usize,
        /// Shards in the list.
        count: usize,
        /// The position recorded in the database.
        found_shard: u64,
        /// The count recorded in the database.
        found_count: u64,
    },
    /// A background thread could not be started.
    #[error("starting a thread of the PostgreSQL store: {0}")]
    Thread(String),
}

fn be(op: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |e| StoreError::Backend {
        op,
        source: Box::new(e),
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

/// A count or time as a `bigint` (saturating: no stored value comes near).
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `bigint` read back (negative only if someone wrote it by hand).
fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A client-chosen 64-bit id stored bit for bit.
fn id64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn col<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    op: &'static str,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(be(op))
}

fn key32(v: &[u8], op: &'static str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v).map_err(|_| StoreError::Backend {
        op,
        source: "a stored id is not 32 bytes".into(),
    })
}

/// The shard (`0 .. shards`) that holds `id` (an account id or mailbox slot):
/// the first 8 bytes of SHA-256(id) as a big-endian u64 fed to the jump
/// consistent hash (Lamping & Veach 2014), so growing from N to N+1 shards
/// would move only 1/(N+1) of the accounts. Stable across versions: changing
/// it would strand every account; docs/RELAY.md documents it.
pub fn shard_of(id: &[u8; 32], shards: usize) -> usize {
    use sha2::{Digest, Sha256};
    let shards = i64::try_from(shards.max(1)).unwrap_or(i64::MAX);
    let digest = Sha256::digest(id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut key = u64::from_be_bytes(first);
    let (mut b, mut j) = (-1i64, 0i64);
    while j < shards {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        {
            j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
        }
    }
    usize::try_from(b).unwrap_or(0)
}

/// One shard: its URL, the writer's connection and the read pool.
struct Shard {
    config: DbConfig,
    /// What the logs show (the URL without its password).
    name: String,
    writer: Mutex<Option<Writer>>,
    readers: Mutex<Readers>,
    reader_free: Condvar,
}

/// The writer connection of a shard and the hot statements prepared on it
/// (parsed and planned once per connection instead of once per push: most
/// of PostgreSQL's per-statement CPU besides the writes themselves).
struct Writer {
    client: Client,
    /// By SQL text; dropped with the connection.
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
}

struct Readers {
    idle: Vec<Client>,
    /// Connections handed out now.
    busy: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("name", &self.name).finish()
    }
}

/// A client error with its causes: `postgres::Error` alone prints only
/// "db error" or "error performing TLS handshake", the reason is its source.
pub(crate) fn error_chain(e: &postgres::Error) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The URL as logs may show it: without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Shard {
    fn connect(&self) -> Result<Client, postgres::Error> {
        self.config.connect()
    }

    /// Runs `f` with a pooled read connection (at most [`READERS_MAX`] at once).
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = {
            let mut r = lock(&self.readers);
            while r.idle.is_empty() && r.busy >= READERS_MAX {
                r = self
                    .reader_free
                    .wait(r)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            r.busy += 1;
            r.idle.pop()
        };
        let client = match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self
                .connect()
                .and_then(|mut c| {
                    // Reads commit nothing; the only writes on these connections
                    // are rate windows, which need no durability.
                    c.batch_execute("SET synchronous_commit TO off")?;
                    Ok(c)
                })
                .map_err(be(op)),
        };
        let (result, back) = match client {
            Ok(mut c) => {
                let r = f(&mut c);
                (r, (!c.is_closed()).then_some(c))
            }
            Err(e) => (Err(e), None),
        };
        let mut r = lock(&self.readers);
        r.busy -= 1;
        if let Some(c) = back {
            r.idle.push(c);
        }
        drop(r);
        self.reader_free.notify_one();
        result
    }
}

/// The PostgreSQL-backed relay store (one or more shards).
#[derive(Debug)]
pub struct PgStore {
    shards: Vec<Shard>,
    bus: std::sync::Arc<PgBus>,
    /// Shard 0's clock minus ours (ms), re-read every [`CLOCK_SAMPLE_MS`]
    /// ([`PgStore::clock`]).
    clock_offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Dropped with the store: ends the clock sampler.
    _clock_stop: std::sync::mpsc::Sender<()>,
}

/// How often a node re-reads the database's clock.
const CLOCK_SAMPLE_MS: u64 = 10_000;
/// A clock sample whose round trip took longer says too little.
const CLOCK_SAMPLE_RTT_MS_MAX: u64 = 1_000;

/// The database's clock minus ours, from one query (`None` if the round trip
/// was too slow to tell).
fn clock_offset_sample(c: &mut Client) -> Result<Option<i64>, postgres::Error> {
    let t0 = crate::server::now_ms();
    let row = c.query_one(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        &[],
    )?;
    let t1 = crate::server::now_ms();
    if t1.saturating_sub(t0) > CLOCK_SAMPLE_RTT_MS_MAX {
        return Ok(None);
    }
    let db: i64 = row.try_get(0)?;
    Ok(Some(db.saturating_sub(i(t0 / 2 + t1 / 2))))
}

/// Keeps `offset` current until the store is dropped (`stop` disconnects).
fn clock_thread(
    config: &DbConfig,
    offset: &std::sync::atomic::AtomicI64,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    let mut conn: Option<Client> = None;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(Duration::from_millis(CLOCK_SAMPLE_MS))
    {
        if conn.as_ref().is_none_or(Client::is_closed) {
            conn = config.connect().ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match clock_offset_sample(c) {
            Ok(Some(v)) => offset.store(v, std::sync::atomic::Ordering::Relaxed),
            Ok(None) => {}
            Err(e) => {
                // The last offset stays in use; time does not stop for a failover.
                tracing::debug!(error = %e, "reading the database clock failed");
                conn = None;
            }
        }
    }
}

impl PgStore {
    /// Connects to every shard (in the given order; the order is part of
    /// the layout), applies pending schema migrations and checks each
    /// database is the shard its position says.
    pub fn connect(urls: &[String]) -> Result<Self, PgOpenError> {
        if urls.is_empty() {
            return Err(PgOpenError::NoShards);
        }
        let mut shards = Vec::with_capacity(urls.len());
        for (n, url) in urls.iter().enumerate() {
            let mut config =
                DbConfig::parse(url).map_err(|source| PgOpenError::BadUrl { shard: n, source })?;
            config
                .pg_mut()
                .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
                .application_name("kith-relay");
            let shard = Shard {
                config,
                name: redact(url),
                writer: Mutex::new(None),
                readers: Mutex::new(Readers {
                    idle: Vec::new(),
                    busy: 0,
                }),
                reader_free: Condvar::new(),
            };
            let mut client = shard.connect().map_err(|source| PgOpenError::Database {
                shard: n,
                doing: "connecting",
                source,
            })?;
            migrate(&mut client, n, urls.len())?;
            *lock(&shard.writer) = Some(Writer {
                client,
                prepared: std::collections::HashMap::new(),
            });
            shards.push(shard);
        }
        let bus = std::sync::Arc::new(PgBus::new(
            shards.iter().map(|s| s.config.clone()).collect(),
        ));
        let offset = {
            let mut w = lock(&shards[0].writer);
            let c = w.as_mut().ok_or(PgOpenError::NoShards)?;
            clock_offset_sample(&mut c.client)
                .map_err(|source| PgOpenError::Database {
                    shard: 0,
                    doing: "reading its clock",
                    source,
                })?
                .unwrap_or(0)
        };
        let clock_offset_ms = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(offset));
        let (clock_stop, stop_rx) = std::sync::mpsc::channel();
        {
            let (config, offset) = (shards[0].config.clone(), clock_offset_ms.clone());
            std::thread::Builder::new()
                .name("kith-pg-clock".into())
                .spawn(move || clock_thread(&config, &offset, &stop_rx))
                .map_err(|e| PgOpenError::Thread(e.to_string()))?;
        }
        Ok(Self {
            shards,
            bus,
            clock_offset_ms,
            _clock_stop: clock_stop,
        })
    }

    /// The clock every node of this relay reads: ours corrected to shard 0's
    /// database clock (for invitation and mailbox expiry; quota windows are
    /// timed in SQL by the database itself).
    pub fn clock(&self) -> crate::Clock {
        crate::Clock::following(self.clock_offset_ms.clone())
    }

    /// The schema version of the shards (all equal after [`connect`](Self::connect)).
    pub fn format_version(&self) -> u64 {
        PG_SCHEMA_VERSION
    }

    /// Every registered account of every shard, ordered by id (`kith-relay
    /// accounts`; the same rows as [`super::RedbStore::accounts`]).
    pub fn accounts(&self) -> Result<Vec<super::admin::AccountInfo>, StoreError> {
        const OP: &str = "list accounts";
        let mut out = Vec::new();
        for shard in &self.shards {
            shard.read(OP, |c| {
                let rows = c
                    .query_typed(
                        "SELECT a.account, a.created_ms, a.bytes, a.entries, m.state
                         FROM accounts a LEFT JOIN membership_state m ON m.account = a.account",
                        &[],
                    )
                    .map_err(be(OP))?;
                for r in rows {
                    let state: Option<&[u8]> = col(&r, 4, OP)?;
                    let state: Option<Membership> = state
                        .map(|b| postcard::from_bytes(b).map_err(|e| corrupt(OP, e)))
                        .transpose()?;
                    let (members, revoked) = state.map_or((0, 0), |m| {
                        (m.members().count() as u64, m.revoked().count() as u64)
                    });
                    out.push(super::admin::AccountInfo {
                        account: AccountId(key32(col(&r, 0, OP)?, OP)?),
                        created_ms: u(col(&r, 1, OP)?),
                        devices: members + revoked,
                        revoked_devices: revoked,
                        entries: u(col(&r, 3, OP)?),
                        stored_bytes: u(col(&r, 2, OP)?),
                    });
                }
                Ok(())
            })?;
        }
        out.sort_by_key(|a| a.account.0);
        Ok(out)
    }

    /// Deletes every row of `account` (entries, heads, membership, snapshots
    /// and their parts, unfinished uploads, its mailbox counts, its rate
    /// window, the account itself) in one transaction on its shard, under
    /// the account's advisory lock (so a push being written by any node
    /// either commits before and is deleted, or runs after and finds no
    /// account), and records the tombstone that refuses its devices from now
    /// on: the same as [`super::RedbStore::delete_account`]. Then tells every
    /// relay node (the `NOTIFY` after the commit, sent before this returns)
    /// to close the account's connections. `None` if no such account.
    pub fn delete_account(
        &self,
        account: &AccountId,
        now_ms: u64,
    ) -> Result<Option<super::admin::DeletedAccount>, StoreError> {
        const OP: &str = "delete account";
        let n = shard_of(&account.0, self.shards.len());
        let acct = account.0.as_slice();
        let deleted = self.account_tx(n, &account.0, OP, |tx| {
            if tx
                .execute("DELETE FROM accounts WHERE account = $1", &[&acct])
                .map_err(be(OP))?
                == 0
            {
                return Ok(None);
            }
            let mut rows = 1u64;
            for table in [
                "entries",
                "heads",
                "snapshot_uploads",
                "membership",
                "membership_state",
                "snapshot_parts_v3",
                "snapshots_v3",
                "rate_windows",
            ] {
                let removed = tx
                    .execute(&format!("DELETE FROM {table} WHERE account = $1"), &[&acct])
                    .map_err(be(OP))?;
                // The rate window is a counter, not a row of the account's data.
                if table != "rate_windows" {
                    rows += removed;
                }
            }
            // Its mailbox blobs stop counting (the blobs expire by themselves);
            // their slots may live on other shards.
            let slots: Vec<Vec<u8>> = tx
                .query(
                    "DELETE FROM mailbox_owned WHERE account = $1 RETURNING slot",
                    &[&acct],
                )
                .map_err(be(OP))?
                .iter()
                .map(|r| col::<Vec<u8>>(r, 0, OP))
                .collect::<Result<_, _>>()?;
            rows += slots.len() as u64;
            tx.execute(
                "INSERT INTO deleted_accounts VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&acct, &i(now_ms)],
            )
            .map_err(be(OP))?;
            Ok(Some((rows, slots)))
        })?;
        let Some((rows, slots)) = deleted else {
            return Ok(None);
        };
        // The blobs' owner column names the account: cleared on the slots'
        // shards (best effort: a take of such a blob releases nothing, since
        // the account's counts are gone already).
        let mut by_shard: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for slot in slots {
            let k = key32(&slot, OP).map_or(0, |s| shard_of(&s, self.shards.len()));
            by_shard.entry(k).or_default().push(slot);
        }
        for (k, slots) in by_shard {
            let r = self.with_writer(k, OP, |c| {
                c.execute(
                    "UPDATE mailbox SET owner = NULL WHERE slot = ANY($1) AND owner = $2",
                    &[&slots, &acct],
                )
                .map_err(be(OP))
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, "clearing a deleted account's mailbox owner failed");
            }
        }
        // Every node closes the account's connections (the listeners of ALL
        // nodes hear it: this store's node id is not a relay's).
        let event = super::cluster::ClusterEvent::AccountDeleted { account: *account };
        if let Err(e) = self.bus.notify_now(n, &event) {
            // The rows are gone either way: a connection left open fails
            // on its next request and cannot authenticate again.
            tracing::warn!(
                error = %e,
                "the relay nodes could not be told to close the deleted account's \
                 connections; they fail on their next request"
            );
        }
        Ok(Some(super::admin::DeletedAccount { rows }))
    }

    /// Rows that mention `account` in any table but the tombstone (0 after
    /// a deletion): for tests and the operator's verification.
    pub fn account_rows(&self, account: &AccountId) -> Result<u64, StoreError> {
        const OP: &str = "count account rows";
        let mut total = 0u64;
        for shard in &self.shards {
            total += shard.read(OP, |c| {
                let row = c
                    .query_one(
                        "SELECT (SELECT count(*) FROM accounts WHERE account = $1)
                          + (SELECT count(*) FROM entries WHERE account = $1)
                          + (SELECT count(*) FROM heads WHERE account = $1)
                          + (SELECT count(*) FROM snapshot_uploads WHERE account = $1)
                          + (SELECT count(*) FROM membership WHERE account = $1)
                          + (SELECT count(*) FROM membership_state WHERE account = $1)
                          + (SELECT count(*) FROM snapshot_parts_v3 WHERE account = $1)
                          + (SELECT count(*) FROM snapshots_v3 WHERE account = $1)
                          + (SELECT count(*) FROM mailbox_owned WHERE account = $1)
                          + (SELECT count(*) FROM rate_windows WHERE account = $1)
                          + (SELECT count(*) FROM mailbox WHERE owner = $1)",
                        &[&account.0.as_slice()],
                    )
                    .map_err(be(OP))?;
                let n: i64 = col(&row, 0, OP)?;
                Ok(u(n))
            })?;
        }
        Ok(total)
    }

    /// A new connection to shard `n` (for `store::migrate`).
    pub(super) fn connect_shard(&self, n: usize) -> Result<Client, postgres::Error> {
        match self.shards.get(n) {
            Some(s) => s.connect(),
            None => self.shards[0].connect(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard(&self, id: &[u8; 32]) -> &Shard {
        // `connect` refuses an empty list, so index 0 always exists.
        &self.shards[shard_of(id, self.shards.len())]
    }

    /// Flips one bit in the middle of a stored entry's bytes, leaving its
    /// checksum as it was: what a damaged disk does (tests only).
    #[cfg(feature = "test-support")]
    pub fn damage_entry_for_tests(&self, account: &AccountId, device: &DeviceId, seq: u64) {
        #![allow(clippy::unwrap_used, clippy::expect_used)]
        self.shard(&account.0)
            .read("damage", |c| {
                let n = c
                    .execute(
                        "UPDATE entries SET body = set_byte(body, length(body) / 2,
                             get_byte(body, length(body) / 2) # 16)
                         WHERE account = $1 AND device = $2 AND seq = $3",
                        &[&account.0.as_slice(), &device.0.as_slice(), &i(seq)],
                    )
                    .map_err(be("damage"))?;
                assert_eq!(n, 1, "entry stored");
                Ok(())
            })
            .unwrap();
    }

    /// Runs `f` on the writer connection of shard `n`, reconnecting first if
    /// it was lost; a connection that broke during `f` is dropped.
    fn with_writer<T>(
        &self,
        n: usize,
        op: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_writer_prepared(n, op, |client, _| f(client))
    }

    /// [`with_writer`](Self::with_writer), also handing out the statements
    /// prepared on the connection.
    fn with_writer_prepared<T>(
        &self,
        n: usize,
        op: &'static str,
        f: impl FnOnce(&mut Client, &mut Prepared) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let shard = &self.shards[n];
        let mut guard = lock(&shard.writer);
        if guard.as_ref().is_none_or(|w| w.client.is_closed()) {
            *guard = None;
            let client = shard.connect().map_err(be(op))?;
            tracing::info!(shard = %shard.name, "connected to PostgreSQL");
            *guard = Some(Writer {
                client,
                prepared: std::collections::HashMap::new(),
            });
        }
        let Some(w) = guard.as_mut() else {
            return Err(StoreError::Backend {
                op,
                source: "no connection".into(),
            });
        };
        let r = f(&mut w.client, &mut w.prepared);
        if w.client.is_closed() {
            *guard = None;
        }
        r
    }

    /// Applies `ops` (all of shard `n`) as one transaction.
    fn apply_shard(
        &self,
        n: usize,
        ops: Vec<WriteOp>,
    ) -> (Vec<Result<WriteOutcome, StoreError>>, Vec<RemoteRelease>) {
        let count = ops.len();
        let fail_all = |op: &'static str, msg: String| {
            (0..count)
                .map(|_| {
                    Err(StoreError::Backend {
                        op,
                        source: msg.clone().into(),
                    })
                })
                .collect::<Vec<_>>()
        };
        let r = self.with_writer_prepared(n, "begin write", |client, prepared| {
            let mut tx = client.transaction().map_err(be("begin write"))?;
            // Accounts of the batch, locked in sorted order (no deadlocks
            // between nodes' batches); released at COMMIT/ROLLBACK.
            let accounts: BTreeSet<i64> = ops.iter().filter_map(op_account).map(lock_key).collect();
            if !accounts.is_empty() {
                let keys: Vec<i64> = accounts.into_iter().collect();
                let lock_all = prepare(
                    &mut tx,
                    prepared,
                    "SELECT pg_advisory_xact_lock(k)
                     FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS sorted",
                    &[Type::INT8_ARRAY],
                    "lock accounts",
                )?;
                tx.execute(&lock_all, &[&keys])
                    .map_err(be("lock accounts"))?;
            }
            let mut results = Vec::with_capacity(count);
            let mut ctx = OpCtx {
                here: n,
                shards: self.shards.len(),
                remote_releases: Vec::new(),
                prepared,
            };
            for op in ops {
                // A push validates everything before its first write and
                // refuses only before it (`push`), so a refused push has
                // nothing to roll back and runs without a savepoint: at
                // load nearly every op is a push, and a savepoint costs a
                // round trip and a subtransaction (its own transaction id,
                // listed in the commit record) each.
                let guarded = !matches!(op, WriteOp::Push { .. });
                if guarded {
                    tx.batch_execute("SAVEPOINT op").map_err(be("savepoint"))?;
                }
                let releases = ctx.remote_releases.len();
                let r = apply_one(&mut tx, op, &mut ctx);
                match &r {
                    Err(StoreError::Backend { op, source }) => {
                        // The transaction is aborted: nothing of the batch commits.
                        let (op, msg) = (*op, source.to_string());
                        let _ = tx.rollback();
                        return Ok((fail_all(op, msg), Vec::new()));
                    }
                    Err(_) => {
                        ctx.remote_releases.truncate(releases);
                        if guarded {
                            tx.batch_execute("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
                                .map_err(be("rollback op"))?;
                        }
                    }
                    Ok(_) if guarded => tx
                        .batch_execute("RELEASE SAVEPOINT op")
                        .map_err(be("savepoint"))?,
                    Ok(_) => {}
                }
                results.push(r);
            }
            tx.commit().map_err(be("commit"))?;
            Ok((results, ctx.remote_releases))
        });
        match r {
            Ok(done) => done,
            Err(StoreError::Backend { op, source }) => {
                (fail_all(op, source.to_string()), Vec::new())
            }
            Err(e) => (fail_all("write", e.to_string()), Vec::new()),
        }
    }

    /// Runs `f` as its own transaction on shard `n`, under the advisory
    /// lock of `account` (the cross-shard steps of mailbox accounting).
    fn account_tx<T>(
        &self,
        n: usize,
        account: &[u8; 32],
        op: &'static str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_writer(n, op, |client| {
            let mut tx = client.transaction().map_err(be(op))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(account)])
                .map_err(be(op))?;
            let r = f(&mut tx)?;
            tx.commit().map_err(be(op))?;
            Ok(r)
        })
    }

    /// True if `slot` holds an unexpired blob, or with `tombstones` also an
    /// unexpired tombstone (a taken slot stays used until its expiry).
    fn mailbox_peek(
        &self,
        slot: &[u8; 32],
        now_ms: u64,
        tombstones: bool,
    ) -> Result<bool, StoreError> {
        const OP: &str = "mailbox peek";
        self.shard(slot).read(OP, |c| {
            Ok(c.query_opt(
                "SELECT 1 FROM mailbox WHERE slot = $1 AND expires_ms > $2 \
                 AND ($3 OR length(blob) > 0)",
                &[&slot.as_slice(), &i(now_ms), &tombstones],
            )
            .map_err(be(OP))?
            .is_some())
        })
    }

    /// Takes registration token `hash` on shard 0 (its own transaction):
    /// its creation time, or `None` if it is unknown or used.
    fn take_token(&self, hash: &[u8; 32]) -> Result<Option<i64>, StoreError> {
        const OP: &str = "take token";
        self.with_writer(0, OP, |c| {
            let row = c
                .query_opt(
                    "DELETE FROM tokens WHERE token_hash = $1 RETURNING created_ms",
                    &[&hash.as_slice()],
                )
                .map_err(be(OP))?;
            row.map(|r| col::<i64>(&r, 0, OP)).transpose()
        })
    }

    fn put_token_back(&self, hash: &[u8; 32], created_ms: i64) {
        const OP: &str = "return token";
        let r = self.with_writer(0, OP, |c| {
            c.execute(
                "INSERT INTO tokens VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&hash.as_slice(), &created_ms],
            )
            .map_err(be(OP))
        });
        if let Err(e) = r {
            tracing::error!(error = %e, "a registration token taken for a refused registration could not be put back");
        }
    }
}

/// The account an op locks, if any.
fn op_account(op: &WriteOp) -> Option<&[u8; 32]> {
    match op {
        WriteOp::AppendMembership { account, .. }
        | WriteOp::Push { account, .. }
        | WriteOp::ConfirmSnapshot { account, .. }
        | WriteOp::PutSnapshotPart { account, .. } => Some(&account.0),
        WriteOp::PutSnapshot { snapshot, .. } => Some(&snapshot.account.0),
        // Locks the owner account while the blob is counted.
        WriteOp::MailboxPut { owner: Some(o), .. } => Some(&o.account.0),
        WriteOp::SnapshotUploadsExpire { .. }
        | WriteOp::SnapshotsConfirmDue { .. }
        | WriteOp::MailboxPut { .. }
        | WriteOp::MailboxTake { .. }
        | WriteOp::MailboxExpire { .. }
        | WriteOp::CreateToken { .. } => None,
    }
}

/// The advisory lock key of an account: its first 8 bytes (ids are public
/// keys, so collisions are rare and only make two accounts wait for each other).
fn lock_key(account: &[u8; 32]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&account[..8]);
    i64::from_be_bytes(b)
}

/// Creates the meta table, then applies the missing migrations, all in one
/// transaction under an advisory lock (nodes starting together wait).
fn migrate(client: &mut Client, shard: usize, count: usize) -> Result<(), PgOpenError> {
    let db = |doing: &'static str| {
        move |source| PgOpenError::Database {
            shard,
            doing,
            source,
        }
    };
    let mut tx = client.transaction().map_err(db("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db("locking for the migration"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS kith_meta (key text PRIMARY KEY, value bigint NOT NULL)",
    )
    .map_err(db("creating kith_meta"))?;
    let get = |tx: &mut Transaction<'_>, key: &str| -> Result<Option<u64>, PgOpenError> {
        let row = tx
            .query_opt("SELECT value FROM kith_meta WHERE key = $1", &[&key])
            .map_err(db("reading kith_meta"))?;
        row.map(|r| r.try_get::<_, i64>(0).map(u))
            .transpose()
            .map_err(db("reading kith_meta"))
    };
    let found = get(&mut tx, "schema")?.unwrap_or(0);
    if found > PG_SCHEMA_VERSION {
        return Err(PgOpenError::NewerSchema { shard, found });
    }
    match (get(&mut tx, "shard")?, get(&mut tx, "shards")?) {
        (Some(s), Some(c)) if (s, c) != (shard as u64, count as u64) => {
            return Err(PgOpenError::ShardMismatch {
                shard,
                count,
                found_shard: s,
                found_count: c,
            });
        }
        (Some(_), Some(_)) => {}
        _ => {
            for (k, v) in [("shard", shard), ("shards", count)] {
                tx.execute(
                    "INSERT INTO kith_meta VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&k, &i(v as u64)],
                )
                .map_err(db("recording the shard"))?;
            }
        }
    }
    for (n, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.batch_execute(sql).map_err(db("migrating the schema"))?;
        tracing::info!(shard, version = n + 1, "relay schema migrated");
    }
    tx.execute(
        "INSERT INTO kith_meta VALUES ('schema', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&i(PG_SCHEMA_VERSION)],
    )
    .map_err(db("recording the schema version"))?;
    tx.commit().map_err(db("committing the migration"))
}

/// Where an op runs: shard `here` of `shards`, and what it leaves for
/// other shards after the commit.
struct OpCtx<'p> {
    here: usize,
    shards: usize,
    /// Mailbox blobs taken here whose owner lives on another shard:
    /// (owner account, slot), released there after this commit.
    remote_releases: Vec<RemoteRelease>,
    /// The statements prepared on the writer connection.
    prepared: &'p mut Prepared,
}

/// Statements prepared on one connection, by SQL text.
type Prepared = std::collections::HashMap<&'static str, postgres::Statement>;

/// The statement `sql` prepared on `tx`'s connection: from `prepared`, or
/// prepared now and kept there (a prepared statement belongs to its
/// session, not to the transaction it was prepared in).
fn prepare(
    tx: &mut Transaction<'_>,
    prepared: &mut Prepared,
    sql: &'static str,
    types: &[Type],
    op: &'static str,
) -> Result<postgres::Statement, StoreError> {
    if let Some(st) = prepared.get(sql) {
        return Ok(st.clone());
    }
    let st = tx.prepare_typed(sql, types).map_err(be(op))?;
    prepared.insert(sql, st.clone());
    Ok(st)
}

/// A mailbox blob's count to give back on its owner's shard: (owner account, slot).
type RemoteRelease = ([u8; 32], [u8; 32]);

impl OpCtx<'_> {
    fn is_local(&self, account: &[u8; 32]) -> bool {
        shard_of(account, self.shards) == self.here
    }
}

fn apply_one(
    tx: &mut Transaction<'_>,
    op: WriteOp,
    ctx: &mut OpCtx<'_>,
) -> Result<WriteOutcome, StoreError> {
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
            tx,
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
        } => push(tx, ctx.prepared, account, device, entries, quota_bytes),
        WriteOp::PutSnapshot {
            snapshot,
            quota_bytes,
            finished_upload,
            now_ms,
        } => put_snapshot(tx, snapshot, quota_bytes, finished_upload, now_ms),
        WriteOp::ConfirmSnapshot {
            account,
            device,
            snapshot_id,
        } => confirm_snapshot(tx, &account, Some(&device), &snapshot_id)
            .map(|pruned_entries| WriteOutcome::SnapshotConfirmed { pruned_entries }),
        WriteOp::SnapshotsConfirmDue { stored_before_ms } => {
            const OP: &str = "confirm due snapshots";
            let due_accounts = |tx: &mut Transaction<'_>| -> Result<Vec<[u8; 32]>, StoreError> {
                tx.query(
                    "SELECT account FROM snapshots_v3 WHERE slot = 1 AND stored_ms < $1",
                    &[&i(stored_before_ms)],
                )
                .map_err(be(OP))?
                .iter()
                .map(|r| key32(col(r, 0, OP)?, OP))
                .collect()
            };
            // The sweep names no account up front: lock the due ones (sorted,
            // like a batch) and read them again under the locks.
            let keys: BTreeSet<i64> = due_accounts(tx)?.iter().map(lock_key).collect();
            if !keys.is_empty() {
                let keys: Vec<i64> = keys.into_iter().collect();
                tx.execute(
                    "SELECT pg_advisory_xact_lock(k)
                     FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS sorted",
                    &[&keys],
                )
                .map_err(be(OP))?;
            }
            let mut n = 0u64;
            for acct in due_accounts(tx)? {
                let account = AccountId(acct);
                if let Some(p) = load_snap(tx, &account, PENDING)? {
                    let id = super::snapshot_id(&p.envelope);
                    confirm_snapshot(tx, &account, None, &id)?;
                    n += 1;
                }
            }
            Ok(WriteOutcome::SnapshotsConfirmed(n))
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
            tx,
            (account, device),
            (upload, index, count),
            &bytes,
            (upload_bytes_max, quota_bytes),
            now_ms,
        ),
        WriteOp::SnapshotUploadsExpire { started_before_ms } => {
            const OP: &str = "expire uploads";
            // Their parts go and stop counting against their accounts.
            let row = tx
                .query_one(
                    "WITH gone AS (
                        DELETE FROM snapshot_uploads WHERE started_ms < $1
                        RETURNING account, device, upload, held_bytes),
                     parts AS (
                        DELETE FROM snapshot_parts_v3 p USING gone
                        WHERE p.account = gone.account AND p.device = gone.device
                          AND p.upload = gone.upload),
                     freed AS (
                        UPDATE accounts a SET bytes = greatest(a.bytes - g.held, 0)
                        FROM (SELECT account, sum(held_bytes)::bigint AS held
                              FROM gone GROUP BY account) g
                        WHERE a.account = g.account)
                     SELECT count(*) FROM gone",
                    &[&i(started_before_ms)],
                )
                .map_err(be(OP))?;
            // The relay's periodic sweep also drops finished rate windows
            // (by the database's clock, as they were started).
            tx.execute(
                "DELETE FROM rate_windows
                 WHERE start_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1",
                &[&i(RATE_WINDOW_KEEP_MS)],
            )
            .map_err(be(OP))?;
            tx.execute(
                "DELETE FROM registration_windows
                 WHERE start_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1",
                &[&i(REGISTRATION_WINDOW_KEEP_MS)],
            )
            .map_err(be(OP))?;
            Ok(WriteOutcome::SnapshotUploadsExpired(u(col(&row, 0, OP)?)))
        }
        WriteOp::MailboxPut {
            slot,
            blob,
            expires_at_ms,
            now_ms,
            owner,
        } => {
            const OP: &str = "mailbox put";
            let row = tx
                .query_opt(
                    "SELECT expires_ms, owner FROM mailbox WHERE slot = $1 FOR UPDATE",
                    &[&slot.as_slice()],
                )
                .map_err(be(OP))?;
            if let Some(r) = &row {
                // A slot whose expiry (blob or tombstone) is still ahead is used.
                if col::<i64>(r, 0, OP)? > i(now_ms) {
                    return Err(StoreError::MailboxTaken);
                }
                // An expired blob that was never swept stops counting now (on
                // another shard its owner's sweep releases it: it is expired).
                if let Some(old) = col::<Option<&[u8]>>(r, 1, OP)? {
                    let old = key32(old, OP)?;
                    if ctx.is_local(&old) {
                        release_mailbox(tx, &old, &slot)?;
                    }
                }
            }
            if let Some(o) = &owner
                && ctx.is_local(&o.account.0)
            {
                reserve_mailbox(tx, o, &slot, blob.len() as u64, expires_at_ms, now_ms)?;
            }
            // (An owner on another shard was reserved there before this batch.)
            let owner_col: Option<&[u8]> = owner.as_ref().map(|o| o.account.0.as_slice());
            tx.execute(
                "INSERT INTO mailbox (slot, expires_ms, blob, owner) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (slot) DO UPDATE SET expires_ms = EXCLUDED.expires_ms,
                   blob = EXCLUDED.blob, owner = EXCLUDED.owner",
                &[&slot.as_slice(), &i(expires_at_ms), &blob, &owner_col],
            )
            .map_err(be(OP))?;
            Ok(WriteOutcome::MailboxStored)
        }
        WriteOp::MailboxTake { slot, now_ms } => {
            const OP: &str = "mailbox take";
            let row = tx
                .query_opt(
                    "SELECT expires_ms, blob, owner FROM mailbox WHERE slot = $1 FOR UPDATE",
                    &[&slot.as_slice()],
                )
                .map_err(be(OP))?;
            let Some(row) = row else {
                return Err(StoreError::MailboxNotFound);
            };
            let expires: i64 = col(&row, 0, OP)?;
            let blob: Option<Vec<u8>> = col(&row, 1, OP)?;
            let owner: Option<&[u8]> = col(&row, 2, OP)?;
            match blob {
                // A blob (not the tombstone of an earlier take) that is still live;
                // the slot stays used until the blob would have expired.
                Some(b) if expires > i(now_ms) && !b.is_empty() => {
                    tx.execute(
                        "UPDATE mailbox SET blob = NULL, owner = NULL WHERE slot = $1",
                        &[&slot.as_slice()],
                    )
                    .map_err(be(OP))?;
                    if let Some(o) = owner {
                        let o = key32(o, OP)?;
                        if ctx.is_local(&o) {
                            release_mailbox(tx, &o, &slot)?;
                        } else {
                            ctx.remote_releases.push((o, slot));
                        }
                    }
                    Ok(WriteOutcome::MailboxTaken(b))
                }
                _ => Err(StoreError::MailboxNotFound),
            }
        }
        WriteOp::MailboxExpire { now_ms } => {
            const OP: &str = "mailbox expire";
            let n = tx
                .execute("DELETE FROM mailbox WHERE expires_ms <= $1", &[&i(now_ms)])
                .map_err(be(OP))?;
            // The blobs this shard's accounts left stop counting at their
            // expiry, wherever their slot lives.
            tx.execute(
                "WITH gone AS (
                    DELETE FROM mailbox_owned WHERE expires_ms <= $1 RETURNING account, bytes)
                 UPDATE accounts a SET bytes = greatest(a.bytes - g.freed, 0)
                 FROM (SELECT account, sum(bytes)::bigint AS freed FROM gone GROUP BY account) g
                 WHERE a.account = g.account",
                &[&i(now_ms)],
            )
            .map_err(be(OP))?;
            Ok(WriteOutcome::MailboxExpired(n))
        }
        WriteOp::CreateToken { token_hash, now_ms } => {
            const OP: &str = "token create";
            tx.execute(
                "INSERT INTO tokens VALUES ($1, $2)
                 ON CONFLICT (token_hash) DO UPDATE SET created_ms = EXCLUDED.created_ms",
                &[&token_hash.as_slice(), &i(now_ms)],
            )
            .map_err(be(OP))?;
            Ok(WriteOutcome::TokenCreated)
        }
    }
}

/// SHA-256 of an entry's stored bytes (the `sum` column).
fn entry_sum(stored: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(stored).into()
}

fn load_state(
    tx: &mut Transaction<'_>,
    account: &AccountId,
) -> Result<Option<Membership>, StoreError> {
    const OP: &str = "membership state";
    let row = tx
        .query_opt(
            "SELECT state FROM membership_state WHERE account = $1",
            &[&account.0.as_slice()],
        )
        .map_err(be(OP))?;
    match row {
        Some(r) => {
            let b: &[u8] = col(&r, 0, OP)?;
            Ok(Some(postcard::from_bytes(b).map_err(|e| corrupt(OP, e))?))
        }
        None => Ok(None),
    }
}

/// The device must be a member now; entries/snapshots sealed under `epoch`
/// must be of the current epoch.
fn check_member(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    device: &DeviceId,
    epochs: impl IntoIterator<Item = u64>,
) -> Result<(), StoreError> {
    let state = load_state(tx, account)?.ok_or(StoreError::UnknownAccount)?;
    member_of(&state, device, epochs)
}

/// [`check_member`] on a loaded membership state.
fn member_of(
    state: &Membership,
    device: &DeviceId,
    epochs: impl IntoIterator<Item = u64>,
) -> Result<(), StoreError> {
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

/// (created ms, stored bytes, stored entries) of a registered account.
fn account_row(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    op: &'static str,
) -> Result<(i64, u64, u64), StoreError> {
    let row = tx
        .query_opt(
            "SELECT created_ms, bytes, entries FROM accounts WHERE account = $1",
            &[&account.0.as_slice()],
        )
        .map_err(be(op))?
        .ok_or(StoreError::UnknownAccount)?;
    Ok((
        col(&row, 0, op)?,
        u(col(&row, 1, op)?),
        u(col(&row, 2, op)?),
    ))
}

fn set_account_totals(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    bytes: u64,
    entries: u64,
    op: &'static str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE accounts SET bytes = $2, entries = $3 WHERE account = $1",
        &[&account.0.as_slice(), &i(bytes), &i(entries)],
    )
    .map_err(be(op))?;
    Ok(())
}

fn append_membership(
    tx: &mut Transaction<'_>,
    account: AccountId,
    ops: Vec<MembershipOp>,
    skip_known: bool,
    (token_hash, open_registration): (Option<[u8; 32]>, bool),
    (now_ms, members_max): (u64, u32),
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "append membership";
    let acct = account.0.as_slice();
    let existing = load_state(tx, &account)?;
    let new_account = existing.is_none();
    // An account the operator deleted cannot be registered again.
    if new_account
        && tx
            .query_opt(
                "SELECT 1 FROM deleted_accounts WHERE account = $1",
                &[&acct],
            )
            .map_err(be(OP))?
            .is_some()
    {
        return Err(StoreError::AccountDeleted);
    }
    let mut state = existing.unwrap_or_else(|| Membership::new(account));
    let before: Vec<DeviceId> = state.members().map(|m| m.keys.device).collect();
    let mut appended = Vec::new();
    for op in ops {
        let pos = op.body.position;
        if pos <= state.len() {
            let stored = tx
                .query_opt(
                    "SELECT op FROM membership WHERE account = $1 AND position = $2",
                    &[&acct, &i(pos)],
                )
                .map_err(be(OP))?;
            let same = match &stored {
                Some(r) => {
                    let b: &[u8] = col(r, 0, OP)?;
                    encode(OP, &op).is_ok_and(|e| e == b)
                }
                None => false,
            };
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
    // Ops that add no member are never refused for the limit.
    let members = state.members().count();
    if members > members_max as usize && members > before.len() {
        return Err(StoreError::TooManyDevices { limit: members_max });
    }
    if new_account {
        debug_assert!(matches!(
            appended.first().map(|o| &o.body.change),
            Some(Change::Genesis { .. })
        ));
        if !open_registration {
            let hash = token_hash.ok_or(StoreError::RegistrationRequired)?;
            let n = tx
                .execute(
                    "DELETE FROM tokens WHERE token_hash = $1",
                    &[&hash.as_slice()],
                )
                .map_err(be(OP))?;
            if n == 0 {
                return Err(StoreError::BadToken);
            }
        }
        tx.execute(
            "INSERT INTO accounts VALUES ($1, $2, 0, 0)",
            &[&acct, &i(now_ms)],
        )
        .map_err(be(OP))?;
    }
    if !appended.is_empty() {
        let positions: Vec<i64> = appended.iter().map(|o| i(o.body.position)).collect();
        let encoded = appended
            .iter()
            .map(|o| encode(OP, o))
            .collect::<Result<Vec<_>, _>>()?;
        tx.execute(
            "INSERT INTO membership SELECT $1, p, o FROM unnest($2::bigint[], $3::bytea[]) AS t(p, o)",
            &[&acct, &positions, &encoded],
        )
        .map_err(be(OP))?;
    }
    let enc = encode(OP, &state)?;
    tx.execute(
        "INSERT INTO membership_state VALUES ($1, $2)
         ON CONFLICT (account) DO UPDATE SET state = EXCLUDED.state",
        &[&acct, &enc],
    )
    .map_err(be(OP))?;
    let revoked = before.into_iter().filter(|d| !state.is_member(d)).collect();
    Ok(WriteOutcome::MembershipAppended {
        new_account,
        appended,
        revoked,
        state: Box::new(state),
    })
}

fn head_row(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    device: &DeviceId,
    op: &'static str,
) -> Result<(u64, u64), StoreError> {
    let row = tx
        .query_opt(
            "SELECT head, floor FROM heads WHERE account = $1 AND device = $2",
            &[&account.0.as_slice(), &device.0.as_slice()],
        )
        .map_err(be(op))?;
    match row {
        Some(r) => Ok((u(col(&r, 0, op)?), u(col(&r, 1, op)?))),
        None => Ok((0, 0)),
    }
}

fn push(
    tx: &mut Transaction<'_>,
    prepared: &mut Prepared,
    account: AccountId,
    device: DeviceId,
    entries: Vec<SealedEntry>,
    quota_bytes: u64,
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "push";
    let (acct, dev) = (account.0.as_slice(), device.0.as_slice());
    // The hot path: membership, account totals and the device's head in ONE
    // round trip, a statement prepared once per connection.
    let state_row = prepare(
        tx,
        prepared,
        "SELECT m.state, a.bytes, a.entries, h.head, h.floor
         FROM accounts a
         LEFT JOIN membership_state m ON m.account = a.account
         LEFT JOIN heads h ON h.account = a.account AND h.device = $2
         WHERE a.account = $1",
        &[Type::BYTEA, Type::BYTEA],
        OP,
    )?;
    let row = tx
        .query_opt(&state_row, &[&acct, &dev])
        .map_err(be(OP))?
        .ok_or(StoreError::UnknownAccount)?;
    let state: Option<&[u8]> = col(&row, 0, OP)?;
    let state: Membership = postcard::from_bytes(state.ok_or(StoreError::UnknownAccount)?)
        .map_err(|e| corrupt(OP, e))?;
    member_of(&state, &device, entries.iter().map(|e| e.epoch))?;
    let (bytes, count) = (u(col(&row, 1, OP)?), u(col(&row, 2, OP)?));
    let (stored_head, floor) = match (
        col::<Option<i64>>(&row, 3, OP)?,
        col::<Option<i64>>(&row, 4, OP)?,
    ) {
        (Some(h), Some(f)) => (u(h), u(f)),
        _ => (0, 0),
    };

    // Validate everything before writing anything: every refusal of this
    // function comes before its first write (`PgStore::apply_shard` runs
    // pushes without a savepoint because of that).
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
            let row = tx
                .query_opt(
                    "SELECT body, sum FROM entries WHERE account = $1 AND device = $2 AND seq = $3",
                    &[&acct, &dev, &i(e.seq)],
                )
                .map_err(be(OP))?;
            let (stored, sum): (Option<Vec<u8>>, Option<Vec<u8>>) = match &row {
                Some(r) => (Some(col(r, 0, OP)?), col(r, 1, OP)?),
                None => (None, None),
            };
            if stored.as_deref() == Some(enc.as_slice()) {
                continue;
            }
            // Not the stored bytes: a fork, unless the stored copy is
            // damaged and these are exactly the bytes first stored.
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
            // A duplicate inside this very push.
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
    let mut bytes = bytes;
    for (seq, enc, old_len) in &repairs {
        tracing::warn!(
            seq,
            "a damaged stored entry was repaired by its device's re-push"
        );
        tx.execute(
            "UPDATE entries SET body = $4 WHERE account = $1 AND device = $2 AND seq = $3",
            &[&acct, &dev, &i(*seq), enc],
        )
        .map_err(be(OP))?;
        bytes = bytes
            .saturating_sub(*old_len)
            .saturating_add(enc.len() as u64);
    }
    if !fresh.is_empty() {
        // The entries, the head and the totals in ONE round trip.
        let seqs: Vec<i64> = fresh.iter().map(|(e, _)| i(e.seq)).collect();
        let sums: Vec<Vec<u8>> = fresh
            .iter()
            .map(|(_, enc)| entry_sum(enc).to_vec())
            .collect();
        let bodies: Vec<&[u8]> = fresh.iter().map(|(_, enc)| enc.as_slice()).collect();
        let (head, floor) = (i(head), i(floor));
        let total_bytes = i(bytes + add_bytes);
        let total_entries = i(count + fresh.len() as u64);
        let store = prepare(
            tx,
            prepared,
            "WITH e AS (
               INSERT INTO entries SELECT $1, $2, s, b, h
               FROM unnest($3::bigint[], $4::bytea[], $5::bytea[]) AS t(s, b, h)),
             hd AS (
               INSERT INTO heads VALUES ($1, $2, $6, $7)
               ON CONFLICT (account, device) DO UPDATE SET head = EXCLUDED.head)
             UPDATE accounts SET bytes = $8, entries = $9 WHERE account = $1",
            &[
                Type::BYTEA,
                Type::BYTEA,
                Type::INT8_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::INT8,
            ],
            OP,
        )?;
        tx.execute(
            &store,
            &[
                &acct,
                &dev,
                &seqs,
                &bodies,
                &sums,
                &head,
                &floor,
                &total_bytes,
                &total_entries,
            ],
        )
        .map_err(be(OP))?;
    } else if !repairs.is_empty() {
        set_account_totals(tx, &account, bytes, count, OP)?;
    }
    Ok(WriteOutcome::Pushed {
        head,
        stored: fresh.into_iter().map(|(e, _)| e).collect(),
    })
}

/// Slot of the confirmed snapshot in `snapshots_v3`.
const CONFIRMED: i16 = 0;
/// Slot of the pending snapshot.
const PENDING: i16 = 1;

/// A stored snapshot: its envelope and where its ciphertext is.
struct SnapRow {
    /// The envelope, `ciphertext` empty.
    envelope: SealedSnapshot,
    /// Length of the stored envelope (counts against the quota).
    envelope_bytes: u64,
    /// The key its parts are stored under in `snapshot_parts_v3`.
    parts_device: [u8; 32],
    upload: u64,
    /// End offset of each part in the ciphertext (cumulative).
    part_ends: Vec<u64>,
    stored_ms: u64,
}

impl SnapRow {
    fn total_bytes(&self) -> u64 {
        self.part_ends.last().copied().unwrap_or(0)
    }

    /// Bytes it counts against the quota: ciphertext and envelope (as redb).
    fn quota_bytes(&self) -> u64 {
        self.total_bytes() + self.envelope_bytes
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

fn load_snap(
    c: &mut impl postgres::GenericClient,
    account: &AccountId,
    slot: i16,
) -> Result<Option<SnapRow>, StoreError> {
    const OP: &str = "read snapshot";
    let row = c
        .query_opt(
            "SELECT envelope, parts_device, upload, part_ends, stored_ms
             FROM snapshots_v3 WHERE account = $1 AND slot = $2",
            &[&account.0.as_slice(), &slot],
        )
        .map_err(be(OP))?;
    let Some(r) = row else { return Ok(None) };
    let env: &[u8] = col(&r, 0, OP)?;
    let envelope: SealedSnapshot = postcard::from_bytes(env).map_err(|e| corrupt(OP, e))?;
    Ok(Some(SnapRow {
        envelope,
        envelope_bytes: env.len() as u64,
        parts_device: key32(col(&r, 1, OP)?, OP)?,
        upload: col::<i64>(&r, 2, OP)? as u64,
        part_ends: col::<Vec<i64>>(&r, 3, OP)?.into_iter().map(u).collect(),
        stored_ms: u(col(&r, 4, OP)?),
    }))
}

/// Adds `add` bytes to the account's stored bytes (refused past `quota`,
/// when given and something is added).
fn add_account_bytes(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    add: u64,
    quota: Option<u64>,
) -> Result<(), StoreError> {
    const OP: &str = "account bytes";
    let (_, bytes, count) = account_row(tx, account, OP)?;
    let new = bytes.saturating_add(add);
    if let Some(limit_bytes) = quota
        && add > 0
        && new > limit_bytes
    {
        return Err(StoreError::QuotaBytes { limit_bytes });
    }
    set_account_totals(tx, account, new, count, OP)
}

/// Subtracts freed bytes (and entries) from the account's totals.
fn sub_account_bytes(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    bytes_freed: u64,
    entries_freed: u64,
) -> Result<(), StoreError> {
    const OP: &str = "account bytes";
    tx.execute(
        "UPDATE accounts SET bytes = greatest(bytes - $2, 0), entries = greatest(entries - $3, 0)
         WHERE account = $1",
        &[&account.0.as_slice(), &i(bytes_freed), &i(entries_freed)],
    )
    .map_err(be(OP))?;
    Ok(())
}

/// Counts a blob left at `slot` against its owner (on the owner's shard):
/// refused `MailboxFull` at the blob limit, `QuotaBytes` past the quota.
fn reserve_mailbox(
    tx: &mut Transaction<'_>,
    owner: &super::MailboxOwner,
    slot: &[u8; 32],
    len: u64,
    expires_at_ms: u64,
    _now_ms: u64,
) -> Result<(), StoreError> {
    const OP: &str = "mailbox reserve";
    let a = owner.account.0.as_slice();
    let row = tx
        .query_one(
            "SELECT count(*) FROM mailbox_owned WHERE account = $1 AND slot <> $2",
            &[&a, &slot.as_slice()],
        )
        .map_err(be(OP))?;
    if u(col(&row, 0, OP)?) >= u64::from(owner.blobs_max) {
        return Err(StoreError::MailboxFull {
            limit: owner.blobs_max,
        });
    }
    release_mailbox(tx, &owner.account.0, slot)?;
    add_account_bytes(tx, &owner.account, len, Some(owner.quota_bytes))?;
    tx.execute(
        "INSERT INTO mailbox_owned VALUES ($1, $2, $3, $4)",
        &[&a, &slot.as_slice(), &i(len), &i(expires_at_ms)],
    )
    .map_err(be(OP))?;
    Ok(())
}

/// The blob at `slot` no longer counts against `owner` (taken, expired or
/// overwritten after expiry).
fn release_mailbox(
    tx: &mut Transaction<'_>,
    owner: &[u8; 32],
    slot: &[u8; 32],
) -> Result<(), StoreError> {
    const OP: &str = "mailbox release";
    let row = tx
        .query_opt(
            "DELETE FROM mailbox_owned WHERE account = $1 AND slot = $2 RETURNING bytes",
            &[&owner.as_slice(), &slot.as_slice()],
        )
        .map_err(be(OP))?;
    if let Some(r) = row {
        sub_account_bytes(tx, &AccountId(*owner), u(col(&r, 0, OP)?), 0)?;
    }
    Ok(())
}

/// Deletes the snapshot in `slot` (row and parts); returns the bytes freed.
fn delete_snap(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    slot: i16,
) -> Result<u64, StoreError> {
    const OP: &str = "delete snapshot";
    let Some(row) = load_snap(tx, account, slot)? else {
        return Ok(0);
    };
    let a = account.0.as_slice();
    tx.execute(
        "DELETE FROM snapshots_v3 WHERE account = $1 AND slot = $2",
        &[&a, &slot],
    )
    .map_err(be(OP))?;
    tx.execute(
        "DELETE FROM snapshot_parts_v3 WHERE account = $1 AND device = $2 AND upload = $3",
        &[&a, &row.parts_device.as_slice(), &id64(row.upload)],
    )
    .map_err(be(OP))?;
    Ok(row.quota_bytes())
}

/// True if a stored snapshot keeps its parts under `device`'s `upload`.
fn upload_in_use(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    device: &DeviceId,
    upload: u64,
) -> Result<bool, StoreError> {
    const OP: &str = "read snapshot";
    Ok(tx
        .query_opt(
            "SELECT 1 FROM snapshots_v3 WHERE account = $1 AND parts_device = $2 AND upload = $3",
            &[&account.0.as_slice(), &device.0.as_slice(), &id64(upload)],
        )
        .map_err(be(OP))?
        .is_some())
}

/// The upload id under which a snapshot sent whole keeps its ciphertext.
fn inline_upload(id: &[u8; 32]) -> u64 {
    let mut id8 = [0u8; 8];
    id8.copy_from_slice(&id[..8]);
    u64::from_le_bytes(id8)
}

fn put_snapshot(
    tx: &mut Transaction<'_>,
    snapshot: SealedSnapshot,
    quota_bytes: u64,
    finished_upload: Option<u64>,
    now_ms: u64,
) -> Result<WriteOutcome, StoreError> {
    const OP: &str = "put snapshot";
    let (account, device) = (snapshot.account, snapshot.device);
    check_member(tx, &account, &device, [snapshot.epoch])?;
    let (acct, dev) = (account.0.as_slice(), device.0.as_slice());
    let mut heads = BTreeMap::new();
    for r in tx
        .query(
            "SELECT device, head FROM heads WHERE account = $1",
            &[&acct],
        )
        .map_err(be(OP))?
    {
        let d: &[u8] = col(&r, 0, OP)?;
        heads.insert(key32(d, OP)?, u(col(&r, 1, OP)?));
    }
    let mut seen = HashSet::new();
    for c in &snapshot.covers {
        if !seen.insert(c.device) {
            return Err(StoreError::SnapshotInvalid);
        }
        if c.seq > heads.get(&c.device.0).copied().unwrap_or(0) {
            return Err(StoreError::SnapshotInvalid);
        }
    }
    let confirmed = load_snap(tx, &account, CONFIRMED)?;
    let pending = load_snap(tx, &account, PENDING)?;
    let id = super::snapshot_id(&snapshot);
    if let Some(old) = pending.as_ref().or(confirmed.as_ref()) {
        if super::snapshot_id(&old.envelope) == id {
            // A re-sent snapshot: already stored (its upload's parts, if any
            // are left, go).
            if let Some(u) = finished_upload {
                drop_upload(tx, &account, &device, Some(u))?;
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
    let env = encode(OP, &envelope)?;
    let envelope_bytes = env.len() as u64;
    let (upload, part_ends, added) = match finished_upload {
        Some(up) => {
            if !ciphertext.is_empty() {
                return Err(StoreError::SnapshotInvalid);
            }
            let current = tx
                .query_opt(
                    "SELECT part_count FROM snapshot_uploads
                     WHERE account = $1 AND device = $2 AND upload = $3",
                    &[&acct, &dev, &id64(up)],
                )
                .map_err(be(OP))?;
            let Some(r) = current else {
                return Err(StoreError::UploadIncomplete { parts_stored: 0 });
            };
            let count = u(col(&r, 0, OP)?);
            let mut ends = Vec::new();
            let mut end = 0u64;
            for r in tx
                .query(
                    "SELECT idx, length(bytes)::bigint FROM snapshot_parts_v3
                     WHERE account = $1 AND device = $2 AND upload = $3 ORDER BY idx",
                    &[&acct, &dev, &id64(up)],
                )
                .map_err(be(OP))?
            {
                if usize::try_from(col::<i32>(&r, 0, OP)?).ok() != Some(ends.len()) {
                    break;
                }
                end += u(col(&r, 1, OP)?);
                ends.push(end);
            }
            if ends.len() as u64 != count {
                return Err(StoreError::UploadIncomplete {
                    parts_stored: u32::try_from(ends.len()).unwrap_or(u32::MAX),
                });
            }
            // The parts' bytes were counted as they arrived; they stay as the
            // snapshot's ciphertext, so only the envelope adds.
            (up, ends, envelope_bytes)
        }
        None => {
            let ends = if ciphertext.is_empty() {
                Vec::new()
            } else {
                vec![ciphertext.len() as u64]
            };
            (
                inline_upload(&id),
                ends,
                envelope_bytes + ciphertext.len() as u64,
            )
        }
    };
    // Everything checked: replace the pending snapshot.
    let freed = delete_snap(tx, &account, PENDING)?;
    let (_, bytes, _) = account_row(tx, &account, OP)?;
    let new_bytes = bytes.saturating_sub(freed).saturating_add(added);
    if new_bytes > quota_bytes && new_bytes > bytes {
        return Err(StoreError::QuotaBytes {
            limit_bytes: quota_bytes,
        });
    }
    sub_account_bytes(tx, &account, freed, 0)?;
    add_account_bytes(tx, &account, added, None)?;
    match finished_upload {
        Some(_) => {
            // The upload is finished: its row goes, its parts stay.
            tx.execute(
                "DELETE FROM snapshot_uploads WHERE account = $1 AND device = $2",
                &[&acct, &dev],
            )
            .map_err(be(OP))?;
        }
        None => {
            drop_upload(tx, &account, &device, Some(upload))?;
            if !ciphertext.is_empty() {
                tx.execute(
                    "INSERT INTO snapshot_parts_v3 VALUES ($1, $2, $3, 0, $4)",
                    &[&acct, &dev, &id64(upload), &ciphertext],
                )
                .map_err(be(OP))?;
            }
        }
    }
    let ends: Vec<i64> = part_ends.iter().map(|e| i(*e)).collect();
    tx.execute(
        "INSERT INTO snapshots_v3 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &acct,
            &PENDING,
            &env,
            &dev,
            &id64(upload),
            &ends,
            &i(now_ms),
        ],
    )
    .map_err(be(OP))?;
    Ok(WriteOutcome::SnapshotStored { pruned_entries: 0 })
}

/// Makes the pending snapshot `id` the confirmed one: prunes the entries it
/// covers, raises the floors, deletes the previous confirmed snapshot.
/// `by` is the device that opened it (`None`: the safety window passed).
fn confirm_snapshot(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    by: Option<&DeviceId>,
    id: &[u8; 32],
) -> Result<u64, StoreError> {
    const OP: &str = "confirm snapshot";
    let pending = load_snap(tx, account, PENDING)?;
    let Some(p) = pending.filter(|p| super::snapshot_id(&p.envelope) == *id) else {
        let confirmed = load_snap(tx, account, CONFIRMED)?;
        if confirmed.is_some_and(|c| super::snapshot_id(&c.envelope) == *id) {
            return Ok(0);
        }
        return Err(StoreError::SnapshotChanged);
    };
    if let Some(d) = by {
        check_member(tx, account, d, [])?;
        if *d == p.envelope.device {
            return Err(StoreError::SnapshotOwn);
        }
    }
    let acct = account.0.as_slice();
    let (mut pruned, mut pruned_bytes) = (0u64, 0u64);
    for c in &p.envelope.covers {
        let (head, floor) = head_row(tx, account, &c.device, OP)?;
        if c.seq <= floor {
            continue;
        }
        let d = c.device.0.as_slice();
        let r = tx
            .query_one(
                "WITH gone AS (
                    DELETE FROM entries WHERE account = $1 AND device = $2 AND seq > $3 AND seq <= $4
                    RETURNING length(body) AS len)
                 SELECT count(*), coalesce(sum(len), 0)::bigint FROM gone",
                &[&acct, &d, &i(floor), &i(c.seq)],
            )
            .map_err(be(OP))?;
        pruned += u(col(&r, 0, OP)?);
        pruned_bytes += u(col(&r, 1, OP)?);
        tx.execute(
            "INSERT INTO heads VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, device) DO UPDATE SET head = EXCLUDED.head, floor = EXCLUDED.floor",
            &[&acct, &d, &i(head.max(c.seq)), &i(c.seq)],
        )
        .map_err(be(OP))?;
    }
    let freed = delete_snap(tx, account, CONFIRMED)?;
    sub_account_bytes(tx, account, pruned_bytes + freed, pruned)?;
    tx.execute(
        "UPDATE snapshots_v3 SET slot = $2 WHERE account = $1 AND slot = $3",
        &[&acct, &CONFIRMED, &PENDING],
    )
    .map_err(be(OP))?;
    Ok(pruned)
}

/// Deletes `device`'s unfinished upload (only if it is `upload`, when
/// given); its bytes stop counting against the account.
fn drop_upload(
    tx: &mut Transaction<'_>,
    account: &AccountId,
    device: &DeviceId,
    upload: Option<u64>,
) -> Result<(), StoreError> {
    const OP: &str = "drop upload";
    let (a, d) = (account.0.as_slice(), device.0.as_slice());
    let row = match upload {
        Some(id) => tx.query_opt(
            "DELETE FROM snapshot_uploads WHERE account = $1 AND device = $2 AND upload = $3
             RETURNING upload, held_bytes",
            &[&a, &d, &id64(id)],
        ),
        None => tx.query_opt(
            "DELETE FROM snapshot_uploads WHERE account = $1 AND device = $2
             RETURNING upload, held_bytes",
            &[&a, &d],
        ),
    }
    .map_err(be(OP))?;
    if let Some(r) = row {
        let (id, held): (i64, i64) = (col(&r, 0, OP)?, col(&r, 1, OP)?);
        tx.execute(
            "DELETE FROM snapshot_parts_v3 WHERE account = $1 AND device = $2 AND upload = $3",
            &[&a, &d, &id],
        )
        .map_err(be(OP))?;
        sub_account_bytes(tx, account, u(held), 0)?;
    }
    Ok(())
}

fn put_part(
    tx: &mut Transaction<'_>,
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
    let (a, d) = (account.0.as_slice(), device.0.as_slice());
    if tx
        .query_opt("SELECT 1 FROM accounts WHERE account = $1", &[&a])
        .map_err(be(OP))?
        .is_none()
    {
        return Err(StoreError::UnknownAccount);
    }
    // The parts of a stored snapshot are never written again.
    if upload_in_use(tx, &account, &device, upload)? {
        return Err(StoreError::UploadInconsistent { index, count });
    }
    let current = tx
        .query_opt(
            "SELECT upload, part_count, held_bytes, started_ms FROM snapshot_uploads
             WHERE account = $1 AND device = $2",
            &[&a, &d],
        )
        .map_err(be(OP))?;
    let (held, started) = match current {
        Some(r) if col::<i64>(&r, 0, OP)? == id64(upload) => {
            if u(col(&r, 1, OP)?) != u64::from(count) {
                return Err(StoreError::UploadInconsistent { index, count });
            }
            (u(col(&r, 2, OP)?), col::<i64>(&r, 3, OP)?)
        }
        Some(_) => {
            // A new upload replaces the device's unfinished one.
            drop_upload(tx, &account, &device, None)?;
            (0, i(now_ms))
        }
        None => (0, i(now_ms)),
    };
    let idx = i64::from(index);
    let old = tx
        .query_opt(
            "SELECT length(bytes) FROM snapshot_parts_v3
             WHERE account = $1 AND device = $2 AND upload = $3 AND idx = $4::bigint::integer",
            &[&a, &d, &id64(upload), &idx],
        )
        .map_err(be(OP))?;
    let old = match old {
        Some(r) => u64::try_from(col::<i32>(&r, 0, OP)?).unwrap_or(0),
        None => 0,
    };
    let len = bytes.len() as u64;
    let held = held.saturating_sub(old) + len;
    if held > upload_bytes_max {
        return Err(StoreError::UploadTooLarge {
            limit_bytes: upload_bytes_max,
        });
    }
    // Parts count against the account's quota as they arrive.
    add_account_bytes(tx, &account, len.saturating_sub(old), Some(quota_bytes))?;
    sub_account_bytes(tx, &account, old.saturating_sub(len), 0)?;
    tx.execute(
        "INSERT INTO snapshot_parts_v3 VALUES ($1, $2, $3, $4::bigint::integer, $5)
         ON CONFLICT (account, device, upload, idx) DO UPDATE SET bytes = EXCLUDED.bytes",
        &[&a, &d, &id64(upload), &idx, &bytes],
    )
    .map_err(be(OP))?;
    tx.execute(
        "INSERT INTO snapshot_uploads VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account, device) DO UPDATE SET upload = EXCLUDED.upload,
           part_count = EXCLUDED.part_count, held_bytes = EXCLUDED.held_bytes,
           started_ms = EXCLUDED.started_ms",
        &[&a, &d, &id64(upload), &i64::from(count), &i(held), &started],
    )
    .map_err(be(OP))?;
    Ok(WriteOutcome::SnapshotPartStored)
}

/// A read-only, repeatable-read transaction: the reads of one call see one
/// committed state, as a redb read transaction does.
fn snapshot_tx<'a>(c: &'a mut Client, op: &'static str) -> Result<Transaction<'a>, StoreError> {
    c.build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(be(op))
}

/// A stored entry as served: decoded, or a placeholder when its bytes do
/// not match their checksum or do not decode to this position.
fn served_entry(
    account: &AccountId,
    dev: DeviceId,
    seq: u64,
    body: &[u8],
    sum: Option<&[u8]>,
) -> SealedEntry {
    let intact = sum.is_none_or(|s| s == entry_sum(body).as_slice());
    let decoded = if intact {
        postcard::from_bytes::<SealedEntry>(body).ok()
    } else {
        None
    };
    match decoded {
        Some(e) if e.account == *account && e.device == dev && e.seq == seq => e,
        _ => {
            tracing::error!(
                device = %dev,
                seq,
                "stored entry is damaged (checksum or decoding); serving a placeholder"
            );
            damaged_placeholder(*account, dev, seq)
        }
    }
}

/// What a pull serves in place of a damaged stored entry (see redb_store).
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

impl RelayStore for PgStore {
    fn apply(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, StoreError>> {
        let n = ops.len();
        let shards = self.shards.len();
        let mut results: Vec<Option<Result<WriteOutcome, StoreError>>> =
            (0..n).map(|_| None).collect();
        // Per shard: (position in `ops`, op); sweeps go to every shard.
        let mut per_shard: Vec<Vec<(usize, WriteOp)>> = (0..shards).map(|_| Vec::new()).collect();
        // Registrations whose token was taken on shard 0: (position, hash, created).
        let mut tokens_taken: Vec<(usize, [u8; 32], i64)> = Vec::new();
        // Mailbox blobs counted against an owner on another shard than their
        // slot's, before the put: (position, owner, slot), undone if refused.
        let mut reserved: Vec<(usize, [u8; 32], [u8; 32])> = Vec::new();
        for (pos, op) in ops.into_iter().enumerate() {
            let target = match &op {
                WriteOp::SnapshotUploadsExpire { .. }
                | WriteOp::MailboxExpire { .. }
                | WriteOp::SnapshotsConfirmDue { .. } => {
                    // Every shard sweeps; the counts are summed below.
                    if shards > 1 {
                        for list in per_shard.iter_mut().skip(1) {
                            list.push((pos, op.clone()));
                        }
                    }
                    0
                }
                WriteOp::MailboxPut { slot, .. } | WriteOp::MailboxTake { slot, .. } => {
                    shard_of(slot, shards)
                }
                WriteOp::ConfirmSnapshot { account, .. } => shard_of(&account.0, shards),
                WriteOp::CreateToken { .. } => 0,
                other => op_account(other).map_or(0, |a| shard_of(a, shards)),
            };
            let op = match op {
                // A registration on another shard than the tokens' takes its
                // token first (its own transaction on shard 0).
                WriteOp::AppendMembership {
                    account,
                    ops,
                    skip_known,
                    token_hash: Some(hash),
                    open_registration: false,
                    now_ms,
                    members_max,
                } if target != 0 => match self.membership(&account) {
                    Ok(Some(_)) => WriteOp::AppendMembership {
                        account,
                        ops,
                        skip_known,
                        token_hash: Some(hash),
                        open_registration: false,
                        now_ms,
                        members_max,
                    },
                    Ok(None) => match self.take_token(&hash) {
                        Ok(Some(created)) => {
                            tokens_taken.push((pos, hash, created));
                            WriteOp::AppendMembership {
                                account,
                                ops,
                                skip_known,
                                token_hash: None,
                                open_registration: true,
                                now_ms,
                                members_max,
                            }
                        }
                        Ok(None) => {
                            // Refused unless the account is fine without a token:
                            // the shard decides with no token to find.
                            WriteOp::AppendMembership {
                                account,
                                ops,
                                skip_known,
                                token_hash: Some(hash),
                                open_registration: false,
                                now_ms,
                                members_max,
                            }
                        }
                        Err(e) => {
                            results[pos] = Some(Err(e));
                            continue;
                        }
                    },
                    Err(e) => {
                        results[pos] = Some(Err(e));
                        continue;
                    }
                },
                WriteOp::MailboxPut {
                    slot,
                    blob,
                    expires_at_ms,
                    now_ms,
                    owner: Some(o),
                } if shard_of(&o.account.0, shards) != target => {
                    let home = shard_of(&o.account.0, shards);
                    let len = blob.len() as u64;
                    // A used slot is refused before anything is counted.
                    match self.mailbox_peek(&slot, now_ms, true) {
                        Ok(false) => {}
                        Ok(true) => {
                            results[pos] = Some(Err(StoreError::MailboxTaken));
                            continue;
                        }
                        Err(e) => {
                            results[pos] = Some(Err(e));
                            continue;
                        }
                    }
                    let r = self.account_tx(home, &o.account.0, "mailbox reserve", |tx| {
                        reserve_mailbox(tx, &o, &slot, len, expires_at_ms, now_ms)
                    });
                    if let Err(e) = r {
                        results[pos] = Some(Err(e));
                        continue;
                    }
                    reserved.push((pos, o.account.0, slot));
                    WriteOp::MailboxPut {
                        slot,
                        blob,
                        expires_at_ms,
                        now_ms,
                        owner: Some(o),
                    }
                }
                other => other,
            };
            per_shard[target].push((pos, op));
        }
        // Shards commit independently (in parallel when there are several).
        let outcomes: Vec<Vec<(usize, Result<WriteOutcome, StoreError>)>> = if shards == 1 {
            let list = std::mem::take(&mut per_shard[0]);
            vec![self.run_shard(0, list)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = per_shard
                    .into_iter()
                    .enumerate()
                    .map(|(k, list)| s.spawn(move || self.run_shard(k, list)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            tracing::error!("a shard writer panicked");
                            Vec::new()
                        })
                    })
                    .collect()
            })
        };
        for (pos, r) in outcomes.into_iter().flatten() {
            let merged = match (results[pos].take(), r) {
                (None, r) => r,
                (
                    Some(Ok(WriteOutcome::SnapshotUploadsExpired(a))),
                    Ok(WriteOutcome::SnapshotUploadsExpired(b)),
                ) => Ok(WriteOutcome::SnapshotUploadsExpired(a + b)),
                (
                    Some(Ok(WriteOutcome::MailboxExpired(a))),
                    Ok(WriteOutcome::MailboxExpired(b)),
                ) => Ok(WriteOutcome::MailboxExpired(a + b)),
                (
                    Some(Ok(WriteOutcome::SnapshotsConfirmed(a))),
                    Ok(WriteOutcome::SnapshotsConfirmed(b)),
                ) => Ok(WriteOutcome::SnapshotsConfirmed(a + b)),
                (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
                (Some(Ok(o)), Ok(_)) => Ok(o),
            };
            results[pos] = Some(merged);
        }
        for (pos, owner, slot) in reserved {
            if !matches!(&results[pos], Some(Ok(_))) {
                let home = shard_of(&owner, shards);
                let r = self.account_tx(home, &owner, "mailbox release", |tx| {
                    release_mailbox(tx, &owner, &slot)
                });
                if let Err(e) = r {
                    tracing::warn!(error = %e, "a refused mailbox blob counts against its owner until its expiry");
                }
            }
        }
        for (pos, hash, created) in tokens_taken {
            let registered = matches!(
                &results[pos],
                Some(Ok(WriteOutcome::MembershipAppended {
                    new_account: true,
                    ..
                }))
            );
            if !registered {
                self.put_token_back(&hash, created);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Backend {
                        op: "write",
                        source: "the shard's writer failed".into(),
                    })
                })
            })
            .collect()
    }

    fn mailbox_live(&self, slot: &[u8; 32], now_ms: u64) -> Result<bool, StoreError> {
        self.mailbox_peek(slot, now_ms, false)
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        const OP: &str = "probe write";
        for n in 0..self.shards.len() {
            self.with_writer(n, OP, |c| {
                c.execute(
                    "INSERT INTO kith_meta VALUES ('probe', 1)
                     ON CONFLICT (key) DO UPDATE SET value = kith_meta.value + 1",
                    &[],
                )
                .map_err(be(OP))
            })?;
        }
        Ok(())
    }

    fn pull(
        &self,
        account: &AccountId,
        cursors: &[Cursor],
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<PullPage, StoreError> {
        const OP: &str = "pull";
        let acct = account.0.as_slice();
        let wanted: BTreeMap<DeviceId, u64> = cursors.iter().map(|c| (c.device, c.seq)).collect();
        self.shard(&account.0).read(OP, |c| {
            let mut tx = snapshot_tx(c, OP)?;
            let mut devices = Vec::new();
            for r in tx
                .query_typed(
                    "SELECT device, head, floor FROM heads WHERE account = $1 ORDER BY device",
                    &[(&acct, Type::BYTEA)],
                )
                .map_err(be(OP))?
            {
                let dev = DeviceId(key32(col(&r, 0, OP)?, OP)?);
                let (head, floor) = (u(col(&r, 1, OP)?), u(col(&r, 2, OP)?));
                let from = wanted.get(&dev).copied().unwrap_or(0);
                if from < floor {
                    return Err(StoreError::SnapshotNeeded);
                }
                if from < head {
                    devices.push((dev, from, head));
                }
            }
            let limit = entries_max.max(1);
            let mut out = Vec::new();
            let mut size = 0usize;
            for (dev, from, head) in devices {
                // At most one row more than the page can take.
                let rows_max = i64::try_from(limit - out.len() + 1).unwrap_or(i64::MAX);
                let rows = tx
                    .query_typed(
                        "SELECT seq, body, sum FROM entries
                         WHERE account = $1 AND device = $2 AND seq > $3 AND seq <= $4
                         ORDER BY seq LIMIT $5",
                        &[
                            (&acct, Type::BYTEA),
                            (&dev.0.as_slice(), Type::BYTEA),
                            (&i(from), Type::INT8),
                            (&i(head), Type::INT8),
                            (&rows_max, Type::INT8),
                        ],
                    )
                    .map_err(be(OP))?;
                for r in rows {
                    let body: &[u8] = col(&r, 1, OP)?;
                    if out.len() >= limit || (!out.is_empty() && size + body.len() > bytes_max) {
                        return Ok(PullPage {
                            entries: out,
                            more: true,
                        });
                    }
                    size += body.len();
                    let seq = u(col(&r, 0, OP)?);
                    out.push(served_entry(account, dev, seq, body, col(&r, 2, OP)?));
                }
            }
            Ok(PullPage {
                entries: out,
                more: false,
            })
        })
    }

    fn device_entries(
        &self,
        account: &AccountId,
        device: &DeviceId,
        from: u64,
        to: u64,
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        const OP: &str = "device entries";
        let rows_max = i64::try_from(entries_max.max(1)).unwrap_or(i64::MAX);
        let (from, to) = (i(from), i(to));
        // One typed statement, one round trip: the fan-out of every commit
        // of another node costs this read on each node with a subscriber.
        self.shard(&account.0).read(OP, |c| {
            let rows = c
                .query_typed(
                    "SELECT seq, body, sum FROM entries
                     WHERE account = $1 AND device = $2 AND seq >= $3 AND seq <= $4
                     ORDER BY seq LIMIT $5",
                    &[
                        (&account.0.as_slice(), Type::BYTEA),
                        (&device.0.as_slice(), Type::BYTEA),
                        (&from, Type::INT8),
                        (&to, Type::INT8),
                        (&rows_max, Type::INT8),
                    ],
                )
                .map_err(be(OP))?;
            let mut out = Vec::with_capacity(rows.len());
            let mut size = 0usize;
            for r in rows {
                let body: &[u8] = col(&r, 1, OP)?;
                if !out.is_empty() && size + body.len() > bytes_max {
                    break;
                }
                size += body.len();
                let seq = u(col(&r, 0, OP)?);
                out.push(served_entry(account, *device, seq, body, col(&r, 2, OP)?));
            }
            Ok(out)
        })
    }

    fn heads(&self, account: &AccountId) -> Result<Heads, StoreError> {
        const OP: &str = "heads";
        self.shard(&account.0).read(OP, |c| {
            let mut h = Heads::default();
            for r in c
                .query_typed(
                    "SELECT device, head, floor FROM heads WHERE account = $1 ORDER BY device",
                    &[(&account.0.as_slice(), Type::BYTEA)],
                )
                .map_err(be(OP))?
            {
                let device = DeviceId(key32(col(&r, 0, OP)?, OP)?);
                h.heads.push(Cursor {
                    device,
                    seq: u(col(&r, 1, OP)?),
                });
                h.floors.push(Cursor {
                    device,
                    seq: u(col(&r, 2, OP)?),
                });
            }
            Ok(h)
        })
    }

    fn snapshots(&self, account: &AccountId) -> Result<super::Snapshots, StoreError> {
        const OP: &str = "get snapshots";
        self.shard(&account.0).read(OP, |c| {
            let mut tx = snapshot_tx(c, OP)?;
            Ok(super::Snapshots {
                confirmed: load_snap(&mut tx, account, CONFIRMED)?.map(|r| r.info()),
                pending: load_snap(&mut tx, account, PENDING)?.map(|r| r.info()),
            })
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
        self.shard(&account.0).read(OP, |c| {
            let mut tx = snapshot_tx(c, OP)?;
            let p = load_snap(&mut tx, account, PENDING)?;
            let cf = load_snap(&mut tx, account, CONFIRMED)?;
            let row = match snapshot_id {
                None => p.or(cf),
                Some(id) => [p, cf]
                    .into_iter()
                    .flatten()
                    .find(|r| super::snapshot_id(&r.envelope) == id),
            };
            let Some(row) = row else { return Ok(None) };
            let total = row.total_bytes();
            let start = offset.min(total);
            let end = start.saturating_add(bytes_max as u64).min(total);
            let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
            // Only the parts that hold the range, one at a time.
            let first = row.part_ends.partition_point(|e| *e <= start);
            let mut part_start = if first == 0 {
                0
            } else {
                row.part_ends[first - 1]
            };
            for (n, part_end) in row.part_ends.iter().enumerate().skip(first) {
                if part_start >= end {
                    break;
                }
                let r = tx
                    .query_opt(
                        "SELECT bytes FROM snapshot_parts_v3
                         WHERE account = $1 AND device = $2 AND upload = $3 AND idx = $4",
                        &[
                            &account.0.as_slice(),
                            &row.parts_device.as_slice(),
                            &id64(row.upload),
                            &i32::try_from(n).unwrap_or(i32::MAX),
                        ],
                    )
                    .map_err(be(OP))?
                    .ok_or_else(|| StoreError::Backend {
                        op: OP,
                        source: "a stored snapshot misses a part".into(),
                    })?;
                let v: &[u8] = col(&r, 0, OP)?;
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
        })
    }

    fn snapshot_upload(
        &self,
        account: &AccountId,
        device: &DeviceId,
        upload: u64,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, StoreError> {
        const OP: &str = "read snapshot upload";
        let (a, d) = (account.0.as_slice(), device.0.as_slice());
        self.shard(&account.0).read(OP, |c| {
            let mut tx = snapshot_tx(c, OP)?;
            let current = tx
                .query_opt(
                    "SELECT part_count FROM snapshot_uploads
                     WHERE account = $1 AND device = $2 AND upload = $3",
                    &[&a, &d, &id64(upload)],
                )
                .map_err(be(OP))?;
            let Some(r) = current else {
                return Err(StoreError::UploadIncomplete { parts_stored: 0 });
            };
            let count = u32::try_from(u(col(&r, 0, OP)?)).unwrap_or(u32::MAX);
            // One part in memory at a time.
            let mut total = 0u64;
            for n in 0..count {
                let r = tx
                    .query_opt(
                        "SELECT bytes FROM snapshot_parts_v3
                         WHERE account = $1 AND device = $2 AND upload = $3 AND idx = $4",
                        &[&a, &d, &id64(upload), &i32::try_from(n).unwrap_or(i32::MAX)],
                    )
                    .map_err(be(OP))?;
                let Some(r) = r else {
                    return Err(StoreError::UploadIncomplete { parts_stored: n });
                };
                let v: &[u8] = col(&r, 0, OP)?;
                visit(v);
                total += v.len() as u64;
            }
            Ok(total)
        })
    }

    fn membership(&self, account: &AccountId) -> Result<Option<Membership>, StoreError> {
        const OP: &str = "membership";
        self.shard(&account.0).read(OP, |c| {
            let row = c
                .query_opt(
                    "SELECT state FROM membership_state WHERE account = $1",
                    &[&account.0.as_slice()],
                )
                .map_err(be(OP))?;
            match row {
                Some(r) => Ok(Some(
                    postcard::from_bytes(col(&r, 0, OP)?).map_err(|e| corrupt(OP, e))?,
                )),
                None => Ok(None),
            }
        })
    }

    fn membership_ops(
        &self,
        account: &AccountId,
        after: u64,
        ops_max: usize,
    ) -> Result<Vec<MembershipOp>, StoreError> {
        const OP: &str = "membership ops";
        let limit = i64::try_from(ops_max).unwrap_or(i64::MAX);
        self.shard(&account.0).read(OP, |c| {
            let mut out = Vec::new();
            for r in c
                .query(
                    "SELECT op FROM membership WHERE account = $1 AND position > $2
                     ORDER BY position LIMIT $3",
                    &[&account.0.as_slice(), &i(after), &limit],
                )
                .map_err(be(OP))?
            {
                out.push(postcard::from_bytes(col(&r, 0, OP)?).map_err(|e| corrupt(OP, e))?);
            }
            Ok(out)
        })
    }

    fn shared_clock(&self) -> Option<crate::Clock> {
        Some(self.clock())
    }

    fn cluster_bus(&self) -> Option<std::sync::Arc<dyn super::cluster::ClusterBus>> {
        Some(self.bus.clone())
    }

    fn registration_window_add(
        &self,
        addr: &[u8; 32],
        add: u32,
        limit: u32,
        window_ms: u64,
    ) -> Option<Result<Option<u64>, StoreError>> {
        const OP: &str = "registration window";
        let (add, limit, window) = (i64::from(add), i64::from(limit), i(window_ms));
        // One statement: start the window (database clock) or add to it;
        // the count before this add decides, as the in-memory window does.
        Some(self.shard(addr).read(OP, |c| {
            let row = c
                .query_one(
                    "INSERT INTO registration_windows AS w
                     SELECT $1::bytea, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                            $2::bigint
                     ON CONFLICT (addr) DO UPDATE SET
                       start_ms = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $3
                                  THEN EXCLUDED.start_ms ELSE w.start_ms END,
                       accounts = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $3
                                  THEN $2 ELSE w.accounts + $2 END
                     RETURNING accounts - $2,
                       start_ms + $3 - (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                    &[&addr.as_slice(), &add, &window],
                )
                .map_err(be(OP))?;
            let before: i64 = col(&row, 0, OP)?;
            if before < limit {
                Ok(None)
            } else {
                Ok(Some(u(col::<i64>(&row, 1, OP)?)))
            }
        }))
    }

    fn rate_window_add(
        &self,
        account: &AccountId,
        n: u32,
        limit: u32,
        window_ms: u64,
    ) -> Option<Result<Option<u64>, StoreError>> {
        const OP: &str = "rate window";
        let (n, limit, window) = (i64::from(n), i64::from(limit), i(window_ms));
        let acct = account.0.as_slice();
        // One statement (its own transaction, on a read connection whose
        // commits do not wait for durability): start or extend the window
        // with the database's clock, unless that would pass the limit.
        Some(self.shard(&account.0).read(OP, |c| {
            let counted = c
                .query_typed_opt(
                    "INSERT INTO rate_windows AS w
                     SELECT $1::bytea, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                            $2::bigint
                     WHERE $2::bigint <= $3::bigint
                     ON CONFLICT (account) DO UPDATE SET
                       start_ms = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $4
                                  THEN EXCLUDED.start_ms ELSE w.start_ms END,
                       entries = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $4
                                 THEN $2 ELSE w.entries + $2 END
                     WHERE (EXCLUDED.start_ms - w.start_ms >= $4)
                        OR w.entries + $2 <= $3
                     RETURNING start_ms",
                    &[
                        (&acct, Type::BYTEA),
                        (&n, Type::INT8),
                        (&limit, Type::INT8),
                        (&window, Type::INT8),
                    ],
                )
                .map_err(be(OP))?;
            if counted.is_some() {
                return Ok(None);
            }
            let row = c
                .query_opt(
                    "SELECT start_ms + $2 - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                     FROM rate_windows WHERE account = $1",
                    &[&acct, &window],
                )
                .map_err(be(OP))?;
            let retry = match row {
                Some(r) => u(col::<i64>(&r, 0, OP)?),
                None => window_ms,
            };
            Ok(Some(retry))
        }))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        const OP: &str = "stats";
        let mut s = StoreStats::default();
        for shard in &self.shards {
            shard.read(OP, |c| {
                let r = c
                    .query_one(
                        "SELECT count(*), coalesce(sum(bytes), 0)::bigint,
                                coalesce(sum(entries), 0)::bigint FROM accounts",
                        &[],
                    )
                    .map_err(be(OP))?;
                s.accounts += u(col(&r, 0, OP)?);
                s.bytes += u(col(&r, 1, OP)?);
                s.entries += u(col(&r, 2, OP)?);
                Ok(())
            })?;
        }
        Ok(s)
    }
}

impl PgStore {
    /// Applies one shard's part of a batch; results keep their positions.
    fn run_shard(
        &self,
        n: usize,
        list: Vec<(usize, WriteOp)>,
    ) -> Vec<(usize, Result<WriteOutcome, StoreError>)> {
        if list.is_empty() {
            return Vec::new();
        }
        let (positions, ops): (Vec<usize>, Vec<WriteOp>) = list.into_iter().unzip();
        let (results, releases) = self.apply_shard(n, ops);
        // Blobs taken here stop counting against owners on other shards
        // (if this fails, the owner's expiry sweep releases them).
        for (owner, slot) in releases {
            let target = shard_of(&owner, self.shards.len());
            let r = self.account_tx(target, &owner, "mailbox release", |tx| {
                release_mailbox(tx, &owner, &slot)
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, "a taken mailbox blob still counts against its owner until it expires");
            }
        }
        positions.into_iter().zip(results).collect()
    }
}

/// The NOTIFY channel of relay events.
const CHANNEL: &str = "kith_relay";
/// Events queued for publishing at most; beyond, they are dropped (counted).
const PUBLISH_QUEUE_EVENTS_MAX: usize = 65_536;
/// Events sent in one NOTIFY round trip at most.
const PUBLISH_BATCH_EVENTS_MAX: usize = 1_000;
/// How long the listener waits for a notification before checking its state.
const LISTEN_POLL_MS: u64 = 500;
/// How often an idle listener pings the server (a half-open TCP connection
/// would otherwise look idle forever).
const LISTEN_PING_MS: u64 = 2_000;
/// Longest wait between reconnection attempts of the listener.
const LISTEN_BACKOFF_MS_MAX: u64 = 2_000;

/// LISTEN/NOTIFY between the relay nodes sharing these databases (module
/// `store::cluster`): each event is notified on its account's shard, by a
/// publisher thread on its own connections, after the data's commit.
#[derive(Debug)]
pub struct PgBus {
    configs: Vec<DbConfig>,
    /// This node's random id: a listener skips the node's own events.
    node: u64,
    publisher: std::sync::OnceLock<std::sync::mpsc::SyncSender<(usize, String)>>,
    /// Events dropped because the publish queue was full or the database
    /// refused them (for metrics and tests).
    pub dropped_events: std::sync::atomic::AtomicU64,
}

impl PgBus {
    fn new(configs: Vec<DbConfig>) -> Self {
        use rand::RngCore;
        Self {
            configs,
            node: rand::rngs::OsRng.next_u64(),
            publisher: std::sync::OnceLock::new(),
            dropped_events: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Notifies `event` on shard `k` now, on a connection of its own (its
    /// own transaction, after the data's commit): for an operator's command
    /// that ends right after, where the publisher thread's queue could be
    /// dropped unsent.
    fn notify_now(
        &self,
        k: usize,
        event: &super::cluster::ClusterEvent,
    ) -> Result<(), postgres::Error> {
        let Some(text) = super::cluster::encode_event(self.node, event) else {
            return Ok(());
        };
        let Some(config) = self.configs.get(k) else {
            return Ok(());
        };
        let mut c = config.connect()?;
        c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text])?;
        Ok(())
    }

    fn drop_events(&self, n: usize) {
        self.dropped_events
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn sender(&self) -> Option<&std::sync::mpsc::SyncSender<(usize, String)>> {
        if let Some(s) = self.publisher.get() {
            return Some(s);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(PUBLISH_QUEUE_EVENTS_MAX);
        let configs = self.configs.clone();
        let spawned = std::thread::Builder::new()
            .name("kith-relay-notify".into())
            .spawn(move || publish_thread(&configs, &rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the notification thread");
            return None;
        }
        Some(self.publisher.get_or_init(|| tx))
    }
}

/// Sends queued events, grouped per shard, one `pg_notify` round trip per
/// group (an autocommit statement: its own transaction).
fn publish_thread(configs: &[DbConfig], rx: &std::sync::mpsc::Receiver<(usize, String)>) {
    let mut conns: Vec<Option<Client>> = configs.iter().map(|_| None).collect();
    while let Ok(first) = rx.recv() {
        let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        groups.entry(first.0).or_default().push(first.1);
        let mut n = 1;
        while n < PUBLISH_BATCH_EVENTS_MAX {
            match rx.try_recv() {
                Ok((k, p)) => {
                    groups.entry(k).or_default().push(p);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        for (k, payloads) in groups {
            let (Some(slot), Some(config)) = (conns.get_mut(k), configs.get(k)) else {
                continue;
            };
            // One retry on a fresh connection: a node restart of the
            // database should not lose the first events after it.
            let mut sent = false;
            for _ in 0..2 {
                if slot.as_ref().is_none_or(Client::is_closed) {
                    *slot = config.connect().ok();
                }
                let Some(c) = slot.as_mut() else { break };
                match c.execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                    &[&CHANNEL, &payloads],
                ) {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "notifying the other relay nodes failed");
                        *slot = None;
                    }
                }
            }
            if !sent {
                tracing::warn!(
                    events = payloads.len(),
                    "events not sent to the other relay nodes; their subscribers catch up on their next pull"
                );
            }
        }
    }
}

/// Listens on one shard, forwarding the other nodes' events; sends `Lost`
/// whenever the connection broke (and again once it is back, since events
/// may have been missed in between). Ends when the relay drops the receiver.
fn listen_thread(
    config: &DbConfig,
    node: u64,
    tx: &tokio::sync::mpsc::Sender<super::cluster::ClusterEvent>,
) {
    use super::cluster::{ClusterEvent, decode_event};
    use postgres::fallible_iterator::FallibleIterator;
    let mut backoff_ms = 50;
    let mut connected_before = false;
    loop {
        if tx.is_closed() {
            return;
        }
        let conn = config.connect().and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(c)
        });
        let mut c = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "relay event listener cannot connect; retrying");
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(LISTEN_BACKOFF_MS_MAX);
                continue;
            }
        };
        backoff_ms = 50;
        if connected_before && tx.blocking_send(ClusterEvent::Lost).is_err() {
            return;
        }
        connected_before = true;
        let mut last_ping = std::time::Instant::now();
        loop {
            let mut broken = false;
            {
                let mut n = c.notifications();
                let mut it = n.timeout_iter(Duration::from_millis(LISTEN_POLL_MS));
                loop {
                    match it.next() {
                        Ok(Some(note)) => {
                            if let Some((from, event)) = decode_event(note.payload())
                                && from != node
                                && tx.blocking_send(event).is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            broken = true;
                            break;
                        }
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
            if !broken && last_ping.elapsed() >= Duration::from_millis(LISTEN_PING_MS) {
                broken = c.is_valid(Duration::from_millis(LISTEN_PING_MS)).is_err();
                last_ping = std::time::Instant::now();
            }
            if broken || c.is_closed() {
                break;
            }
        }
        tracing::warn!("relay event listener lost its connection; subscribers will re-pull");
        if tx.blocking_send(ClusterEvent::Lost).is_err() {
            return;
        }
    }
}

impl super::cluster::ClusterBus for PgBus {
    fn publish(&self, events: Vec<super::cluster::ClusterEvent>) {
        use super::cluster::{ClusterEvent, encode_event};
        let shards = self.configs.len();
        let Some(tx) = self.sender() else {
            self.drop_events(events.len());
            return;
        };
        for e in events {
            let shard = match &e {
                ClusterEvent::Entries { account, .. }
                | ClusterEvent::Membership { account, .. }
                | ClusterEvent::Revoked { account, .. }
                | ClusterEvent::AccountDeleted { account } => shard_of(&account.0, shards),
                ClusterEvent::Lost => continue,
            };
            let Some(text) = encode_event(self.node, &e) else {
                continue;
            };
            if tx.try_send((shard, text)).is_err() {
                self.drop_events(1);
            }
        }
    }

    fn listen(&self) -> tokio::sync::mpsc::Receiver<super::cluster::ClusterEvent> {
        let (tx, rx) = tokio::sync::mpsc::channel(super::cluster::LISTEN_QUEUE_EVENTS_MAX);
        for (k, config) in self.configs.iter().enumerate() {
            let (config, tx, node) = (config.clone(), tx.clone(), self.node);
            let spawned = std::thread::Builder::new()
                .name(format!("kith-relay-listen-{k}"))
                .spawn(move || listen_thread(&config, node, &tx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the relay event listener");
            }
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_an_id_is_stable_and_spread() {
        // Pinned values: changing the mapping would strand stored accounts.
        assert_eq!(shard_of(&[0; 32], 1), 0);
        let spread: Vec<usize> = (0u8..64).map(|b| shard_of(&[b; 32], 4)).collect();
        for k in 0..4 {
            let n = spread.iter().filter(|s| **s == k).count();
            assert!((6..=26).contains(&n), "shard {k} got {n} of 64: {spread:?}");
        }
        // Growing from 4 to 5 shards moves only ids to the new shard.
        for b in 0u8..64 {
            let (four, five) = (shard_of(&[b; 32], 4), shard_of(&[b; 32], 5));
            assert!(
                five == four || five == 4,
                "id {b} moved from {four} to {five}"
            );
        }
    }

    #[test]
    fn urls_are_logged_without_their_password() {
        assert_eq!(
            redact("postgres://kith:s3cret@db.example:5432/relay"),
            "postgres://kith:***@db.example:5432/relay"
        );
        assert_eq!(redact("postgres://db/relay"), "postgres://db/relay");
    }
}
