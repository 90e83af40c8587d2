//! The redb store: one file (`kith.redb`) holding every document as chunks,
//! the materialised index, and store metadata. docs/STORE.md specifies the
//! layout and its version.
//!
//! Data flow of a local write (`Store::transact`):
//! 1. the documents the write needs are loaded from their chunks (lazily, on
//!    first need; a damaged chunk is reported before anything is written);
//! 2. the store upgrades its read-only redb handle to a writable one (opening
//!    read-only first means a damaged file is never written to);
//! 3. the operation validates its input against the index, changes the
//!    documents and updates the index, inside ONE redb write transaction;
//! 4. each touched document gets one Automerge change and one incremental
//!    chunk (`save_after(saved_heads)`), and the transaction commits with
//!    immediate durability before the call returns;
//! 5. on any error the transaction is dropped (aborted) and every in-memory
//!    document whose heads moved past what the store holds is evicted, so
//!    memory and disk never diverge; the next use reloads it.
//!
//! A new interaction whose partition is not in memory skips steps 1 and 4:
//! it is stored as a fresh write (`pending`) and folds into its partition
//! later, so the phone's first write never waits for a quarter to load.
//!
//! Past a threshold of incremental chunks a document is due for compaction:
//! all its chunks are replaced by one full `save()` in one transaction, off
//! the write path (`compact_due`, run by `park` and `close`).
//!
//! Parking (for long-running commands and apps that sit in the background):
//! redb locks the file for as long as it is open, so a process that keeps a
//! `Store` for hours would lock every other `kith` process out. [`Store::park`]
//! closes the file but keeps the store usable: the next call that touches the
//! file reopens it (writable, waiting up to `lock_wait_ms` for another
//! process to let go). Another process may have written meanwhile, so after
//! any reopen the in-memory documents are checked against the heads on disk
//! before use: an unchanged one is kept, a stale one is dropped and reloads
//! on next need (or, if it holds merged changes not yet written, is rebuilt
//! from disk plus those changes). See docs/STORE.md, "Sharing the file".

mod pending;
mod sync;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ChangeHash};
use redb::{
    Builder, Database, DatabaseError, Durability, ReadOnlyDatabase, ReadTransaction,
    ReadableDatabase, ReadableTable, StorageError, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::doc::{DocId, LoadedDoc};
use crate::error::{OpError, StoreError};
use crate::index;
use crate::schema;

pub use sync::{RemoteApplied, RemoteChanges, SnapshotInstalled};

/// The store file inside the data directory.
pub const STORE_FILE: &str = "kith.redb";
/// Layout version written by this code (docs/STORE.md). A newer major is refused.
///
/// 2.0 added `doc_pending` (fresh writes, see `pending`): a store holding
/// such rows is not complete in its documents alone, so a Kith that does not
/// know the table must not open it. A 1.x store opens as is and becomes 2.0
/// in the transaction of its first fresh write (the migration: the table is
/// created then; nothing else changes).
pub const FORMAT_MAJOR: u32 = 2;
/// Minor layout version: additions an older reader of the same major can
/// ignore. 1.1 added `meta["index"]` (the index version, [`index::VERSION`]).
pub const FORMAT_MINOR: u32 = 0;

/// meta: key -> bytes (format version, device actor id).
pub(crate) const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// doc_chunks: (doc id, seq) -> 16-byte sha256 prefix ++ automerge bytes.
pub(crate) const CHUNKS: TableDefinition<'static, (&str, u64), &[u8]> =
    TableDefinition::new("doc_chunks");
/// doc_meta: doc id -> postcard [`DocMeta`].
pub(crate) const DOC_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("doc_meta");

const META_FORMAT: &str = "format";
const META_ACTOR: &str = "actor";
/// The [`index::VERSION`] the index tables were built by (absent: 1).
pub(crate) const META_INDEX: &str = "index";
/// `META_INDEX` while a log bootstrap defers the index ([`Store::defer_index`]):
/// not a version, so an open after a crash in that window rebuilds the index
/// as it does for an index of another version.
pub(crate) const META_INDEX_DEFERRED: &str = "deferred";
const CHECKSUM_BYTES: usize = 16;
/// Bound on redb compaction passes in [`Store::compact_file`].
const COMPACT_FILE_ROUNDS_MAX: usize = 16;
/// redb page cache: enough for the index's hot pages, small enough for a phone.
const CACHE_SIZE_BYTES: usize = 32 * 1024 * 1024;
/// Pause between two attempts to take a file lock another process holds.
const LOCK_RETRY_PAUSE_MS: u64 = 10;

/// When to fold a document's incremental chunks into one full save.
///
/// Compaction is a full `save()` of the document (tens of milliseconds for
/// a busy quarter), so it runs off the write path: [`Store::compact_due`]
/// compacts every document in memory that is due, and [`Store::park`] and
/// [`Store::close`] call it (an app going to the background, a command
/// ending). A write compacts its document itself only past
/// `write_chunks_max`, a bound for a process that writes for hours without
/// ever parking.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Compaction is due when a document has more chunks than this.
    pub chunks_max: u64,
    /// Compaction is due when incremental chunks exceed both this and the
    /// full save's size.
    pub incremental_bytes_min: u64,
    /// A write compacts its document at once when it has more chunks than
    /// this (and the due rules say so).
    pub write_chunks_max: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            chunks_max: 128,
            incremental_bytes_min: 256 * 1024,
            write_chunks_max: 1024,
        }
    }
}

impl CompactionPolicy {
    /// Whether a document with metadata `meta` is due for compaction.
    fn is_due(&self, meta: &DocMeta) -> bool {
        let over_bytes = meta.incremental_bytes > self.incremental_bytes_min.max(meta.full_bytes);
        meta.chunk_count > self.chunks_max || over_bytes
    }
}

/// What the store knows about one document without loading it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMeta {
    /// Heads covered by the stored chunks.
    pub heads: Vec<[u8; 32]>,
    /// Sequence number the next chunk gets.
    pub next_seq: u64,
    /// Chunks currently stored.
    pub chunk_count: u64,
    /// Size of the full save (the first chunk), in bytes.
    pub full_bytes: u64,
    /// Total size of the incremental chunks after it, in bytes.
    pub incremental_bytes: u64,
}

/// Result of [`Store::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCheck {
    /// Documents examined.
    pub documents: usize,
    /// Documents that do not load (a chunk fails its checksum, history
    /// missing), with why: `reindex` cannot repair these; restore them from
    /// a backup or another device.
    pub damaged_documents: Vec<(String, String)>,
    /// Index tables whose rows differ from a rebuild: `reindex` repairs them.
    pub index_tables: Vec<IndexTableCheck>,
}

impl StoreCheck {
    /// Nothing damaged, index equal to a rebuild.
    pub fn is_clean(&self) -> bool {
        self.damaged_documents.is_empty() && self.index_tables.is_empty()
    }
}

/// One index table that differs from its rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTableCheck {
    /// The table (`contacts`, `search`, ...).
    pub table: String,
    /// Rows a rebuild writes that the table lacks (or holds altered).
    pub missing_rows: usize,
    /// Rows the table holds that a rebuild would not write (or altered).
    pub extra_rows: usize,
}

/// Space used by one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// The table's name.
    pub table: String,
    /// Rows in it.
    pub entries: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of redb's own bookkeeping for it.
    pub metadata_bytes: u64,
    /// Bytes allocated but unused (reclaimed by compaction).
    pub fragmented_bytes: u64,
}

enum Handle {
    Read(ReadOnlyDatabase),
    Write(Database),
    /// Closed by [`Store::park`]: reopened (writable) on next use.
    Parked,
    Closed,
}

/// The open file and when it was last used (behind a mutex so that `&self`
/// reads can reopen a parked store).
struct FileState {
    handle: Handle,
    last_used: Instant,
}

/// The Kith engine over one data directory: documents, store, index, queries.
///
/// Opening reads only metadata; documents load on first need. Every write is
/// durable when the method returns. Close (or drop) releases the file lock.
///
/// ```
/// use kith_core::{Store, NewContact, NewInteraction, ParticipantRef};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut store = Store::open(dir.path())?;
/// let ana = store.add_contact(NewContact::named("Ana Lima"))?;
/// let met = store.log_interaction(NewInteraction {
///     summary: "Coffee about the ward rota".into(),
///     participants: vec![ParticipantRef::Id(ana.id)],
///     ..NewInteraction::default()
/// })?;
/// let recent = store.timeline(&Default::default())?;
/// assert_eq!(recent[0].id, met.id);
/// assert_eq!(store.search("ward", 10)?.interactions.len(), 1);
/// store.close()?;
/// # Ok(()) }
/// ```
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    file: Mutex<FileState>,
    /// Set when the file was reopened: another process may have written, so
    /// the in-memory documents are checked before their next use.
    reopened: AtomicBool,
    /// How long opening waits for a lock another process holds.
    lock_wait_ms: u64,
    actor: ActorId,
    pub(crate) docs: HashMap<DocId, LoadedDoc>,
    /// Partitions whose chunk checksums were checked for fresh writes
    /// since the file was last (re)opened.
    verified: BTreeSet<DocId>,
    compaction: CompactionPolicy,
    /// Records changed by remote merges since the last `take_remote_changes`.
    pub(crate) remote_log: sync::RemoteChangeLog,
    /// A log bootstrap is running with the index deferred: remote merges
    /// skip it and [`Store::finish_deferred_index`] rebuilds it once
    /// (`META_INDEX` holds [`META_INDEX_DEFERRED`] meanwhile).
    pub(crate) index_deferred: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("actor", &self.actor)
            .field("loaded_docs", &self.docs.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn damaged(path: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged {
        what: format!("store file {}", path.display()),
        detail: detail.to_string(),
    }
}

fn map_open_error(path: &Path, e: DatabaseError) -> StoreError {
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_path_buf(),
        },
        DatabaseError::Storage(StorageError::Corrupted(d)) => damaged(path, d),
        DatabaseError::Storage(StorageError::Io(source))
            if source.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            damaged(path, format!("file is truncated ({source})"))
        }
        DatabaseError::Storage(StorageError::Io(source))
            if source.kind() == std::io::ErrorKind::InvalidData =>
        {
            damaged(path, source)
        }
        DatabaseError::UpgradeRequired(v) => damaged(path, format!("unknown redb file format {v}")),
        DatabaseError::Storage(StorageError::Io(source)) => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => StoreError::from(redb::Error::from(other)),
    }
}

/// Runs a redb call that may panic on a damaged file, turning a panic into `Damaged`.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(damaged(path, "the database structure is inconsistent")))
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest[..CHECKSUM_BYTES]);
    out
}

fn sealed_chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKSUM_BYTES + bytes.len());
    out.extend_from_slice(&checksum(bytes));
    out.extend_from_slice(bytes);
    out
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
    v.sort_unstable();
    v
}

/// Reads chunks and doc meta in a read or a write transaction.
pub(crate) trait ChunkRead {
    fn doc_meta(&self, doc: &str) -> Result<Option<DocMeta>, StoreError>;
    fn chunks(&self, doc: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    fn doc_ids(&self) -> Result<Vec<String>, StoreError>;
}

fn decode_meta(doc: &str, bytes: &[u8]) -> Result<DocMeta, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Damaged {
        what: format!("metadata of document {doc}"),
        detail: e.to_string(),
    })
}

macro_rules! impl_chunk_read {
    ($t:ty) => {
        impl ChunkRead for $t {
            fn doc_meta(&self, doc: &str) -> Result<Option<DocMeta>, StoreError> {
                let t = self.open_table(DOC_META)?;
                let v = t.get(doc)?;
                v.map(|v| decode_meta(doc, v.value())).transpose()
            }
            fn chunks(&self, doc: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
                let t = self.open_table(CHUNKS)?;
                let mut out = Vec::new();
                for row in t.range((doc, 0u64)..=(doc, u64::MAX))? {
                    let (k, v) = row?;
                    out.push((k.value().1, v.value().to_vec()));
                }
                Ok(out)
            }
            fn doc_ids(&self) -> Result<Vec<String>, StoreError> {
                let t = self.open_table(DOC_META)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (k, _) = row?;
                    out.push(k.value().to_string());
                }
                Ok(out)
            }
        }
    };
}
impl_chunk_read!(ReadTransaction);
impl_chunk_read!(WriteTransaction);

/// The Automerge bytes of a sealed chunk, after checking its checksum.
fn unsealed<'a>(name: &str, seq: u64, sealed: &'a [u8]) -> Result<&'a [u8], StoreError> {
    let what = || format!("document chunk {name}/{seq}");
    if sealed.len() < CHECKSUM_BYTES {
        return Err(StoreError::Damaged {
            what: what(),
            detail: "chunk is shorter than its checksum".into(),
        });
    }
    let (sum, bytes) = sealed.split_at(CHECKSUM_BYTES);
    if sum != checksum(bytes) {
        return Err(StoreError::Damaged {
            what: what(),
            detail: "checksum mismatch".into(),
        });
    }
    Ok(bytes)
}

/// Loads a document from its chunks, verifying checksums and the saved heads.
/// Returns `None` when the store has no such document.
pub(crate) fn load_doc(
    r: &impl ChunkRead,
    id: DocId,
    actor: &ActorId,
) -> Result<Option<LoadedDoc>, StoreError> {
    let name = id.to_string();
    let Some(meta) = r.doc_meta(&name)? else {
        return Ok(None);
    };
    let chunks = r.chunks(&name)?;
    let mut doc: Option<AutoCommit> = None;
    for (seq, sealed) in &chunks {
        let seq = *seq;
        let what = || format!("document chunk {name}/{seq}");
        let bytes = unsealed(&name, seq, sealed)?;
        let loaded = match doc.as_mut() {
            None => AutoCommit::load(bytes).map(|d| doc = Some(d)),
            Some(d) => d.load_incremental(bytes).map(|_| ()),
        };
        loaded.map_err(|e| StoreError::Damaged {
            what: what(),
            detail: e.to_string(),
        })?;
    }
    let Some(mut doc) = doc else {
        return Err(StoreError::Damaged {
            what: format!("document {name}"),
            detail: "its metadata exists but it has no chunks".into(),
        });
    };
    let heads = doc.get_heads();
    if heads_bytes(&heads) != meta.heads {
        return Err(StoreError::Damaged {
            what: format!("document {name}"),
            detail: "its chunks do not add up to the saved heads (a chunk is missing)".into(),
        });
    }
    schema::check_schema(&doc, &name)?;
    doc.set_actor(actor.clone());
    Ok(Some(LoadedDoc {
        doc,
        saved_heads: heads,
    }))
}

/// The context of one write: the open transaction and the documents.
pub(crate) struct Tx<'a> {
    pub(crate) txn: &'a WriteTransaction,
    docs: &'a mut HashMap<DocId, LoadedDoc>,
    actor: &'a ActorId,
    touched: BTreeSet<DocId>,
    /// Documents whose fresh writes were folded in this transaction.
    folded: BTreeSet<DocId>,
    pub(crate) now_ms: i64,
}

impl Tx<'_> {
    /// Commits the ops made so far on `id` as one Automerge change, inside
    /// the open redb transaction (still written and made durable with the
    /// rest, or rolled back with it). Bulk writes call this every few
    /// thousand records: a change's pending ops take far more memory than
    /// the same ops once committed into the document.
    pub(crate) fn commit_change(&mut self, id: DocId) {
        if let Some(l) = self.docs.get_mut(&id) {
            l.doc
                .commit_with(CommitOptions::default().with_time(now_ms() / 1000));
        }
    }

    /// The document `id` for writing: loaded from the store, or created.
    pub(crate) fn doc_mut(&mut self, id: DocId) -> Result<&mut AutoCommit, StoreError> {
        if !self.docs.contains_key(&id) {
            let loaded = match load_doc(self.txn, id, self.actor)? {
                Some(l) => l,
                None => LoadedDoc {
                    doc: schema::new_document(id.kind(), self.actor)?,
                    saved_heads: Vec::new(),
                },
            };
            self.docs.insert(id, loaded);
        }
        self.touched.insert(id);
        let Some(l) = self.docs.get_mut(&id) else {
            return Err(StoreError::UnknownDoc(id.to_string()));
        };
        // Fresh writes of this partition (this process's, or another's while
        // the document sat in memory) go in before anything else touches it.
        if !self.folded.contains(&id) {
            pending::fold_into(self.txn, id, &mut l.doc)?;
            self.folded.insert(id);
        }
        Ok(&mut l.doc)
    }

    /// Stores `rec`, a new interaction of partition `doc`, as a fresh write
    /// (`pending`) when that partition is not in memory, and returns it as
    /// the partition will read it back. `None`: write it to the partition
    /// (it is in memory already, so that costs no load, or it holds
    /// [`pending::PENDING_PER_DOC_MAX`] fresh writes, which fold now).
    pub(crate) fn put_fresh(
        &mut self,
        doc: DocId,
        rec: &crate::model::Interaction,
    ) -> Result<Option<crate::model::Interaction>, StoreError> {
        if self.docs.contains_key(&doc)
            || pending::count(self.txn, doc)? >= pending::PENDING_PER_DOC_MAX
        {
            return Ok(None);
        }
        migrate_to_current_format(self.txn)?;
        pending::put(self.txn, doc, rec).map(Some)
    }
}

/// Records the current format in `meta` if the store says an older one (a
/// 1.x store's migration to 2.0 is only this: the `doc_pending` table is
/// created by the same transaction's first fresh write).
fn migrate_to_current_format(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let current = format!("{FORMAT_MAJOR}.{FORMAT_MINOR}");
    let stored = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
    if stored.as_deref() != Some(current.as_bytes()) {
        meta.insert(META_FORMAT, current.as_bytes())?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in `dir`. Reads only metadata: documents
    /// load when first needed. The file is opened read-only until the first
    /// write, so a damaged file is never written to.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_waiting(dir, 0)
    }

    /// Like [`Store::open`], but when another process holds the file lock,
    /// retries for up to `lock_wait_ms` before failing with
    /// `StoreError::Locked`. The wait also applies to every later reopen
    /// (after [`Store::park`]) and upgrade to writing.
    pub fn open_waiting(dir: impl AsRef<Path>, lock_wait_ms: u64) -> Result<Store, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        // The store holds plaintext notes: its directory is 0700 and the
        // file 0600 whatever the umask (docs/SECURITY.md, local files).
        crate::private_fs::ensure_private_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let exists = match std::fs::metadata(&path) {
            Ok(m) => m.len() > 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        if exists {
            // A store made by an older Kith under umask 022 is tightened
            // (best effort: a file we do not own is still opened).
            if let Err(e) = crate::private_fs::restrict(&path, crate::private_fs::FILE_MODE) {
                tracing::warn!(path = %path.display(), error = %e, "could not make the store owner-only");
            }
        }
        let mut store = Store {
            dir,
            path: path.clone(),
            file: Mutex::new(FileState {
                handle: Handle::Closed,
                last_used: Instant::now(),
            }),
            reopened: AtomicBool::new(false),
            lock_wait_ms,
            actor: ActorId::random(),
            docs: HashMap::new(),
            verified: BTreeSet::new(),
            compaction: CompactionPolicy::default(),
            remote_log: sync::RemoteChangeLog::default(),
            index_deferred: false,
        };
        if !exists {
            create_file(&store.dir, &path, &store.actor)?;
        }
        let ro = waiting(&path, lock_wait_ms, || match open_read_only(&path) {
            Ok(db) => Ok(Some(db)),
            // Not shut down cleanly (a crash): the writable open below recovers it.
            Err(OpenAttempt::NeedsRecovery) => Ok(None),
            Err(OpenAttempt::Failed(e)) => Err(e),
        })?;
        let handle = match ro {
            Some(db) => Handle::Read(db),
            None => Handle::Write(waiting(&path, lock_wait_ms, || open_writable(&path))?),
        };
        store.file_state().handle = handle;
        let meta = store.read_meta()?;
        match meta {
            Some((actor, index_version)) => {
                store.actor = actor;
                if index_version != index::VERSION {
                    store.rebuild_stale_index(index_version);
                }
            }
            // A valid redb file without Kith's tables (not made by Kith).
            None => {
                let mut txn = store.writable()?.begin_write()?;
                txn.set_durability(Durability::Immediate)?;
                initialise(&txn, &store.actor)?;
                txn.commit()?;
            }
        }
        Ok(store)
    }

    /// Rebuilds an index another Kith version built (its search tokens or
    /// name keys may be spelt differently: searches would miss records
    /// silently). Runs once, at the first open by this version. If it
    /// cannot run now (another process holds the file, a damaged document),
    /// the store stays usable on the old index and the next open retries.
    fn rebuild_stale_index(&mut self, found: u32) {
        let t = Instant::now();
        let result = self.reindex();
        self.unload_documents();
        match result {
            Ok(()) => tracing::info!(
                from = found,
                to = index::VERSION,
                ms = t.elapsed().as_millis() as u64,
                "index rebuilt for this version"
            ),
            Err(e) => tracing::warn!(
                from = found,
                to = index::VERSION,
                error = %e,
                "the index was built by another version and could not be rebuilt now; \
                 searches may miss folded spellings until it is (run reindex)"
            ),
        }
    }

    /// Whether `dir` holds a store (for tools that must not create one by accident).
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        std::fs::metadata(dir.as_ref().join(STORE_FILE)).is_ok_and(|m| m.len() > 0)
    }

    /// Reads and checks the metadata; returns the device actor and the index
    /// version, or `None` for a file that was never initialised.
    fn read_meta(&self) -> Result<Option<(ActorId, u32)>, StoreError> {
        let path = self.path.clone();
        guarded(&path, || {
            let txn = self.read_txn()?;
            let meta = match txn.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let format = meta
                .get(META_FORMAT)?
                .map(|v| String::from_utf8_lossy(v.value()).to_string())
                .ok_or_else(|| damaged(&path, "the format version is missing"))?;
            let (major, minor) = format
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .ok_or_else(|| damaged(&path, format!("bad format version '{format}'")))?;
            if major > FORMAT_MAJOR {
                return Err(StoreError::NewerFormat {
                    found_major: major,
                    found_minor: minor,
                    supported_major: FORMAT_MAJOR,
                });
            }
            let actor = meta
                .get(META_ACTOR)?
                .map(|v| ActorId::from(v.value()))
                .ok_or_else(|| damaged(&path, "the device actor id is missing"))?;
            // Absent before format 1.1 (index version 1); unreadable counts
            // as stale: the index is rebuilt, nothing is lost.
            let index_version = match meta.get(META_INDEX)? {
                None => 1,
                Some(v) => std::str::from_utf8(v.value())
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            };
            Ok(Some((actor, index_version)))
        })
    }

    /// Closes the store and releases the file lock, after compacting the
    /// documents that are due ([`Store::compact_due`]). Dropping releases
    /// the lock too (without compacting), ignoring errors.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.compact_due_quietly();
        self.docs.clear();
        let f = self.file.get_mut().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut f.handle, Handle::Closed) {
            Handle::Read(db) => db.close()?,
            Handle::Write(db) => db.close()?,
            Handle::Parked | Handle::Closed => {}
        }
        Ok(())
    }

    /// Closes the file (releasing its lock, so other processes can open the
    /// store) but keeps the store usable: documents stay in memory and the
    /// next call that needs the file reopens it. A no-op when parked already.
    /// Documents due for compaction are compacted first ([`Store::compact_due`]).
    pub fn park(&mut self) -> Result<(), StoreError> {
        self.compact_due_quietly();
        self.release()
    }

    /// Closes the file without compacting (after a failed write, whose
    /// database refuses writes until reopened).
    fn release(&mut self) -> Result<(), StoreError> {
        let f = self.file.get_mut().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut f.handle, Handle::Parked) {
            Handle::Read(db) => db.close()?,
            Handle::Write(db) => db.close()?,
            Handle::Parked => {}
            Handle::Closed => f.handle = Handle::Closed,
        }
        Ok(())
    }

    /// Parks the store if the file was not used for `idle_ms`; returns
    /// whether it is parked now. Long-running commands call this on a timer.
    pub fn park_if_idle(&mut self, idle_ms: u64) -> Result<bool, StoreError> {
        if self.is_parked() {
            return Ok(true);
        }
        if self.idle_ms() < idle_ms {
            return Ok(false);
        }
        self.park()?;
        Ok(true)
    }

    /// Whether the file is closed by [`Store::park`] (and not reopened since).
    pub fn is_parked(&self) -> bool {
        matches!(self.file_state().handle, Handle::Parked)
    }

    /// Milliseconds since the file was last used.
    pub fn idle_ms(&self) -> u64 {
        u64::try_from(self.file_state().last_used.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long opening waits for a file lock held by another process.
    pub fn set_lock_wait_ms(&mut self, lock_wait_ms: u64) {
        self.lock_wait_ms = lock_wait_ms;
    }

    /// A digest of every document's heads, read from metadata (nothing is
    /// loaded). It changes whenever any document changes, in this process or
    /// another: a watcher polls it to notice writes by other `kith` processes.
    pub fn change_marker(&self) -> Result<[u8; 16], StoreError> {
        let txn = self.read_txn()?;
        let t = txn.open_table(DOC_META)?;
        let mut h = Sha256::new();
        for row in t.iter()? {
            let (k, v) = row?;
            h.update(k.value().as_bytes());
            h.update([0u8]);
            h.update(v.value());
            h.update([0xffu8]);
        }
        // Fresh writes change no document's heads until they fold.
        for (doc, id) in pending::marker_rows(&txn)? {
            h.update(doc.as_bytes());
            h.update([1u8]);
            h.update(id.to_le_bytes());
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        Ok(out)
    }

    /// Path of the store file (a watcher checks its size and modification
    /// time before opening it for [`Store::change_marker`]).
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    fn file_state(&self) -> MutexGuard<'_, FileState> {
        // The state is a handle and a timestamp: a panic cannot leave it half-changed.
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reopens a parked file for writing (a parked store belongs to a
    /// long-running process that writes: opening writable at once means no
    /// other process can slip in between a read and the write after it).
    fn reopen(&self, f: &mut FileState) -> Result<(), StoreError> {
        if matches!(f.handle, Handle::Parked) {
            let db = waiting(&self.path, self.lock_wait_ms, || open_writable(&self.path))?;
            f.handle = Handle::Write(db);
            self.reopened.store(true, Ordering::Release);
        }
        f.last_used = Instant::now();
        Ok(())
    }

    /// After a reopen: drops (or rebuilds) the in-memory documents whose
    /// heads on disk moved, because another process wrote while the file
    /// was closed.
    fn revalidate(&mut self) -> Result<(), StoreError> {
        if !self.reopened.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // Another process may have rewritten chunks: check them again.
        self.verified.clear();
        if self.docs.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        guarded(&path, || {
            let txn = self.read_txn()?;
            let mut stale = Vec::new();
            for (id, l) in &self.docs {
                let on_disk = txn
                    .doc_meta(&id.to_string())?
                    .map(|m| m.heads)
                    .unwrap_or_default();
                if on_disk != heads_bytes(&l.saved_heads) {
                    stale.push(*id);
                }
            }
            for id in stale {
                let Some(mut l) = self.docs.remove(&id) else {
                    continue;
                };
                if l.doc.get_heads() == l.saved_heads {
                    // Nothing unsaved: it reloads from disk on next need.
                    continue;
                }
                // Merged changes not written yet (a merge in progress): take
                // the disk's document and add them, so the chunk written next
                // continues from what is on disk.
                if let Some(mut fresh) = load_doc(&txn, id, &self.actor)? {
                    fresh
                        .doc
                        .merge(&mut l.doc)
                        .map_err(|source| StoreError::Automerge {
                            doc: id.to_string(),
                            source: crate::error::BackendError::new(source),
                        })?;
                    self.docs.insert(id, fresh);
                } else {
                    self.docs.insert(id, l);
                }
            }
            Ok(())
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This device's Automerge actor id (stable across opens).
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// Overrides when documents are compacted (tests and benches).
    pub fn set_compaction_policy(&mut self, policy: CompactionPolicy) {
        self.compaction = policy;
    }

    pub(crate) fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        let mut f = self.file_state();
        self.reopen(&mut f)?;
        let txn = match &f.handle {
            Handle::Read(db) => db.begin_read()?,
            Handle::Write(db) => db.begin_read()?,
            Handle::Parked | Handle::Closed => return Err(StoreError::Closed),
        };
        Ok(txn)
    }

    /// The writable database, upgrading from the read-only handle if needed.
    pub(crate) fn writable(&mut self) -> Result<&Database, StoreError> {
        self.upgrade()?;
        self.revalidate()?;
        let f = self.file.get_mut().unwrap_or_else(|e| e.into_inner());
        match &f.handle {
            Handle::Write(db) => Ok(db),
            _ => Err(StoreError::Closed),
        }
    }

    fn upgrade(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let wait_ms = self.lock_wait_ms;
        let f = self.file.get_mut().unwrap_or_else(|e| e.into_inner());
        f.last_used = Instant::now();
        match &f.handle {
            Handle::Write(_) => return Ok(()),
            Handle::Closed => return Err(StoreError::Closed),
            Handle::Read(_) | Handle::Parked => {}
        }
        let was_read = matches!(f.handle, Handle::Read(_));
        if let Handle::Read(db) = std::mem::replace(&mut f.handle, Handle::Parked) {
            db.close()?;
        }
        match waiting(&path, wait_ms, || open_writable(&path)) {
            Ok(db) => {
                f.handle = Handle::Write(db);
                // Between closing and reopening, another process may have written.
                self.reopened.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Another process holds the file: stay usable for reads.
                if was_read && let Ok(db) = open_read_only(&path) {
                    f.handle = Handle::Read(db);
                    self.reopened.store(true, Ordering::Release);
                }
                Err(e)
            }
        }
    }

    /// Loads `id` into memory if it is not yet (no-op for a document the
    /// store lacks), and folds its fresh writes into it (a write: the
    /// document is complete whenever a reader, such as sync, sees it).
    pub(crate) fn ensure_loaded(&mut self, id: DocId) -> Result<(), StoreError> {
        let has_pending = self.load_only(id)?;
        if has_pending {
            self.fold_doc(id)?;
        }
        Ok(())
    }

    /// Loads `id` into memory if it is not yet, without folding; returns
    /// whether it has fresh writes waiting (`pending`).
    fn load_only(&mut self, id: DocId) -> Result<bool, StoreError> {
        if self.is_parked() {
            self.upgrade()?;
        }
        self.revalidate()?;
        let path = self.path.clone();
        let in_memory = self.docs.contains_key(&id);
        let (loaded, has_pending) = guarded(&path, || {
            let txn = self.read_txn()?;
            let loaded = if in_memory {
                None
            } else {
                load_doc(&txn, id, &self.actor)?
            };
            // Decoded (and so checked) here, before any upgrade to
            // writing: a damaged row is reported with the file untouched.
            Ok((loaded, !pending::read(&txn, id)?.is_empty()))
        })?;
        if let Some(l) = loaded {
            self.docs.insert(id, l);
        }
        Ok(has_pending)
    }

    /// Folds the fresh writes of `id` into it: one change and one chunk, the
    /// rows deleted, in one transaction.
    fn fold_doc(&mut self, id: DocId) -> Result<(), StoreError> {
        match self.transact(&[], |tx| {
            tx.doc_mut(id)?;
            Ok(())
        }) {
            Ok(()) => Ok(()),
            Err(OpError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Damaged {
                what: format!("document {id}"),
                detail: other.to_string(),
            }),
        }
    }

    /// Folds every fresh write into its partition (see `pending`): what an
    /// app calls in the background once the first screen is up and the first
    /// write is done, so that later reads of the partition (sync, an edit)
    /// find it loaded and complete. Sync and every write to a partition fold
    /// by themselves; this only moves the cost off their path. Returns how
    /// many partitions were folded.
    pub fn fold_pending(&mut self) -> Result<usize, StoreError> {
        let docs = {
            let path = self.path.clone();
            guarded(&path, || pending::docs(&self.read_txn()?))?
        };
        for id in &docs {
            self.ensure_loaded(*id)?;
        }
        Ok(docs.len())
    }

    /// Before a fresh write to partition `id` (which does not load it):
    /// checks the checksums of its chunks once per session, in a read
    /// transaction, so that a damaged chunk is reported before the file is
    /// opened for writing, as when a write loads its document. Costs a read
    /// of the chunks and a SHA-256 over them (about 1 ms per 300 KB), far
    /// less than decoding them.
    pub(crate) fn verify_for_fresh_write(&mut self, id: DocId) -> Result<(), StoreError> {
        if self.docs.contains_key(&id) || self.verified.contains(&id) {
            return Ok(());
        }
        if self.is_parked() {
            self.upgrade()?;
        }
        self.revalidate()?;
        let path = self.path.clone();
        guarded(&path, || {
            let txn = self.read_txn()?;
            let name = id.to_string();
            for (seq, sealed) in txn.chunks(&name)? {
                unsealed(&name, seq, &sealed)?;
            }
            Ok(())
        })?;
        self.verified.insert(id);
        Ok(())
    }

    /// Fresh writes not yet folded into their partitions, per partition.
    pub fn pending_writes(&self) -> Result<BTreeMap<DocId, usize>, StoreError> {
        let txn = self.read_txn()?;
        let mut out = BTreeMap::new();
        for id in pending::docs(&txn)? {
            out.insert(id, pending::read(&txn, id)?.len());
        }
        Ok(out)
    }

    /// Runs one write: `f` changes documents (via [`Tx::doc_mut`]) and the
    /// index inside one redb transaction; each touched document then gets one
    /// change and one chunk, and the transaction commits durably. On error
    /// nothing is written and memory is rolled back.
    pub(crate) fn transact<T>(
        &mut self,
        preload: &[DocId],
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        for id in preload {
            self.ensure_loaded(*id)?;
        }
        let result = self.transact_inner(f);
        if let Err(e) = &result {
            self.rollback_docs();
            if let OpError::Store(e) = e {
                self.after_write_error(e);
            }
        }
        result
    }

    /// After a failed write: a database error (a full disk, an I/O error)
    /// leaves redb refusing every later write until the file is reopened, so
    /// the file is parked; the next call reopens it (redb recovers to the last
    /// commit) and writes resume by themselves once the cause is gone.
    pub(crate) fn after_write_error(&mut self, e: &StoreError) {
        if matches!(e, StoreError::Database(_) | StoreError::Io { .. }) {
            tracing::warn!(error = %e, "store write failed; the file is reopened on next use");
            if let Err(e) = self.release() {
                tracing::warn!(error = %e, "closing the store after a failed write");
            }
        }
    }

    fn transact_inner<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let (value, touched) = {
            let mut tx = Tx {
                txn: &txn,
                docs: &mut self.docs,
                actor: &self.actor,
                touched: BTreeSet::new(),
                folded: BTreeSet::new(),
                now_ms: now_ms(),
            };
            let value = f(&mut tx)?;
            (value, tx.touched)
        };
        let mut saved = Vec::new();
        for id in &touched {
            if let Some(l) = self.docs.get_mut(id) {
                l.doc
                    .commit_with(CommitOptions::default().with_time(now_ms() / 1000));
                if let Some(heads) = write_chunk(&txn, *id, l)? {
                    saved.push((*id, heads));
                }
            }
        }
        txn.commit()?;
        for (id, heads) in saved {
            if let Some(l) = self.docs.get_mut(&id) {
                l.saved_heads = heads;
            }
        }
        for id in touched {
            self.maybe_compact(id);
        }
        Ok(value)
    }

    /// Drops uncommitted ops and evicts every document that moved past the store.
    fn rollback_docs(&mut self) {
        self.docs.retain(|_, l| {
            l.doc.rollback();
            l.doc.get_heads() == l.saved_heads
        });
    }

    /// After a write: compacts `id` only past the write-path bound (normally
    /// compaction waits for [`Store::compact_due`]).
    fn maybe_compact(&mut self, id: DocId) {
        let Ok(txn) = self.read_txn() else { return };
        let Ok(Some(meta)) = txn.doc_meta(&id.to_string()) else {
            return;
        };
        drop(txn);
        let p = self.compaction;
        if meta.chunk_count > p.write_chunks_max
            && p.is_due(&meta)
            && let Err(e) = self.compact(id)
        {
            // The data is safe in the incremental chunks; compaction retries later.
            tracing::warn!(doc = %id, error = %e, "compaction failed");
        }
    }

    /// Compacts every document in memory that is due (see
    /// [`CompactionPolicy`]), each in its own transaction. What a process
    /// calls when it is idle; [`Store::park`] and [`Store::close`] call it.
    /// Returns how many documents were compacted.
    pub fn compact_due(&mut self) -> Result<usize, StoreError> {
        if self.docs.is_empty() || !matches!(self.file_state().handle, Handle::Write(_)) {
            // Nothing was written in this session (the file is read-only or
            // parked): documents were compacted when last written.
            return Ok(0);
        }
        let mut due = Vec::new();
        {
            let txn = self.read_txn()?;
            for id in self.docs.keys() {
                if let Some(meta) = txn.doc_meta(&id.to_string())?
                    && self.compaction.is_due(&meta)
                {
                    due.push(*id);
                }
            }
        }
        due.sort();
        for id in &due {
            self.compact(*id)?;
        }
        Ok(due.len())
    }

    /// [`Store::compact_due`] for park and close, which must not fail on it
    /// (the chunks are safe; compaction is retried next time).
    fn compact_due_quietly(&mut self) {
        if let Err(e) = self.compact_due() {
            tracing::warn!(error = %e, "compaction failed");
        }
    }

    /// Replaces all chunks of `id` with one full save, in one transaction.
    pub fn compact(&mut self, id: DocId) -> Result<(), StoreError> {
        self.ensure_loaded(id)?;
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let Some(l) = self.docs.get_mut(&id) else {
            return Ok(());
        };
        let full = l.doc.save();
        let heads = l.doc.get_heads();
        replace_chunks(&txn, &id.to_string(), &heads, &full)?;
        txn.commit()?;
        l.saved_heads = heads;
        Ok(())
    }

    /// Ids of every document in the store, including a partition that so
    /// far holds only fresh writes (it is created when they fold).
    pub fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        let txn = self.read_txn()?;
        // In the order of their names (`log/...` before `main`), as stored:
        // sync seals documents in this order.
        let mut names: BTreeSet<String> = txn.doc_ids()?.into_iter().collect();
        names.extend(pending::docs(&txn)?.iter().map(DocId::to_string));
        names
            .into_iter()
            .map(|s| s.parse().map_err(|_| StoreError::UnknownDoc(s)))
            .collect()
    }

    /// Metadata of one document (chunks, sizes, heads) without loading it.
    pub fn doc_meta(&self, id: DocId) -> Result<Option<DocMeta>, StoreError> {
        self.read_txn()?.doc_meta(&id.to_string())
    }

    /// Loads every document (for reindex, export, full sync).
    pub fn load_all(&mut self) -> Result<(), StoreError> {
        for id in self.doc_ids()? {
            self.ensure_loaded(id)?;
        }
        Ok(())
    }

    /// Drops every document from memory (they are all saved); they reload on
    /// next need. For a phone app going to the background.
    pub fn unload_documents(&mut self) {
        self.docs.clear();
    }

    /// Documents currently in memory.
    pub fn loaded_docs(&self) -> Vec<DocId> {
        let mut v: Vec<DocId> = self.docs.keys().copied().collect();
        v.sort();
        v
    }

    /// Rebuilds every index table from the documents, in one transaction.
    pub fn reindex(&mut self) -> Result<(), StoreError> {
        self.load_all()?;
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        rebuild_index(&txn, &self.docs)?;
        txn.commit()?;
        Ok(())
    }

    /// Verifies the store without writing: every document loads (each
    /// chunk's checksum and the heads recorded for it), and every index
    /// table holds exactly the rows a rebuild from the documents would
    /// write (the rebuild goes to an in-memory database, not the file).
    /// The report says what [`Store::reindex`] would repair (index rows) and
    /// what it cannot (damaged documents: restore from a backup or another
    /// device).
    pub fn check(&mut self) -> Result<StoreCheck, StoreError> {
        let mut report = StoreCheck::default();
        // Loaded without folding fresh writes (check writes nothing): they
        // are applied below to copies of their partitions, in memory only.
        let mut with_pending = Vec::new();
        for id in self.doc_ids()? {
            report.documents += 1;
            match self.load_only(id) {
                Ok(true) => with_pending.push(id),
                Ok(false) => {}
                Err(e) => match e {
                    StoreError::Damaged { .. } | StoreError::BadChange { .. } => {
                        report
                            .damaged_documents
                            .push((id.to_string(), e.to_string()));
                    }
                    other => return Err(other),
                },
            }
        }
        let mut folded: HashMap<DocId, AutoCommit> = HashMap::new();
        {
            let txn = self.read_txn()?;
            for id in with_pending {
                let mut doc = match self.docs.get(&id) {
                    Some(l) => l.doc.clone(),
                    None => schema::new_document(id.kind(), &self.actor)?,
                };
                match pending::read(&txn, id) {
                    Ok(recs) => {
                        pending::apply(&mut doc, &recs)?;
                        folded.insert(id, doc);
                    }
                    Err(e @ StoreError::Damaged { .. }) => {
                        report
                            .damaged_documents
                            .push((format!("{id} (fresh writes)"), e.to_string()));
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        let mut view: Vec<(DocId, &AutoCommit)> = self
            .docs
            .iter()
            .filter(|(id, _)| !folded.contains_key(id))
            .map(|(id, l)| (*id, &l.doc))
            .collect();
        view.extend(folded.iter().map(|(id, d)| (*id, d)));
        let mem = Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Database(crate::error::BackendError::new(e)))?;
        let txn = mem.begin_write()?;
        index::create_tables(&txn)?;
        rebuild_index_from(&txn, view)?;
        txn.commit()?;
        let rebuilt = index::dump(&mem.begin_read()?)?;
        let stored = index::dump(&self.read_txn()?)?;
        for (table, want) in &rebuilt {
            let have = stored.get(table).cloned().unwrap_or_default();
            let want_set: BTreeSet<&String> = want.iter().collect();
            let have_set: BTreeSet<&String> = have.iter().collect();
            let missing = want_set.difference(&have_set).count();
            let extra = have_set.difference(&want_set).count();
            if missing + extra > 0 {
                report.index_tables.push(IndexTableCheck {
                    table: (*table).to_owned(),
                    missing_rows: missing,
                    extra_rows: extra,
                });
            }
        }
        Ok(report)
    }

    /// Every index table as rows (tests compare incremental and rebuilt indexes).
    pub fn index_dump(
        &self,
    ) -> Result<std::collections::BTreeMap<&'static str, Vec<String>>, StoreError> {
        index::dump(&self.read_txn()?)
    }

    /// Rewrites the store file without its free pages (redb compaction), for
    /// after a large import. Returns the file size afterwards, in bytes.
    pub fn compact_file(&mut self) -> Result<u64, StoreError> {
        self.writable()?;
        let f = self.file.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Handle::Write(db) = &mut f.handle {
            // Each call moves pages toward the start; repeat until nothing moves.
            for _ in 0..COMPACT_FILE_ROUNDS_MAX {
                let moved = db
                    .compact()
                    .map_err(|e| StoreError::from(redb::Error::from(e)))?;
                if !moved {
                    break;
                }
            }
        }
        self.size_on_disk_bytes()
    }

    /// Bytes used by each table (stored, metadata, fragmented), for size reports.
    pub fn table_sizes(&self) -> Result<Vec<TableSize>, StoreError> {
        fn size<K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &ReadTransaction,
            def: TableDefinition<'_, K, V>,
        ) -> Result<TableSize, StoreError> {
            let t = txn.open_table(def)?;
            let st = redb::ReadableTableMetadata::stats(&t)?;
            Ok(TableSize {
                table: redb::TableHandle::name(&def).to_string(),
                entries: redb::ReadableTableMetadata::len(&t)?,
                stored_bytes: st.stored_bytes(),
                metadata_bytes: st.metadata_bytes(),
                fragmented_bytes: st.fragmented_bytes(),
            })
        }
        let txn = self.read_txn()?;
        Ok(vec![
            size(&txn, META)?,
            size(&txn, CHUNKS)?,
            size(&txn, DOC_META)?,
            size(&txn, index::CONTACTS.raw())?,
            size(&txn, index::CONTACTS_BY_NAME.raw())?,
            size(&txn, index::CONTACT_STATS.raw())?,
            size(&txn, index::INTERACTIONS.raw())?,
            size(&txn, index::BY_TIME.raw())?,
            size(&txn, index::BY_CONTACT.raw())?,
            size(&txn, index::FOLLOWUPS.raw())?,
            size(&txn, index::SEARCH.raw())?,
            size(&txn, index::PROJECTS.raw())?,
            size(&txn, index::GOALS.raw())?,
            size(&txn, index::SETTINGS.raw())?,
        ])
    }

    /// Size of the store file on disk, in bytes.
    pub fn size_on_disk_bytes(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

enum OpenAttempt {
    NeedsRecovery,
    Failed(StoreError),
}

/// Runs `open` until it does not fail with `Locked`, for at most `wait_ms`.
fn waiting<T>(
    path: &Path,
    wait_ms: u64,
    mut open: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut told = false;
    loop {
        match open() {
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                // Said once, so a person (or a test) sees why the command pauses.
                if !told {
                    told = true;
                    tracing::warn!(
                        path = %path.display(),
                        wait_ms,
                        "the store is open in another process; waiting for it"
                    );
                }
                std::thread::sleep(Duration::from_millis(LOCK_RETRY_PAUSE_MS));
            }
            Err(StoreError::Locked { .. }) => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                });
            }
            other => return other,
        }
    }
}

fn open_read_only(path: &Path) -> Result<ReadOnlyDatabase, OpenAttempt> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut b = Builder::new();
        b.set_cache_size(CACHE_SIZE_BYTES);
        b.open_read_only(path)
    }));
    match r {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::RepairAborted)) => Err(OpenAttempt::NeedsRecovery),
        Ok(Err(e)) => Err(OpenAttempt::Failed(map_open_error(path, e))),
        Err(_) => Err(OpenAttempt::Failed(damaged(
            path,
            "the database structure is inconsistent",
        ))),
    }
}

/// Writes the tables, metadata and the main document of a new store.
fn initialise(txn: &WriteTransaction, actor: &ActorId) -> Result<(), StoreError> {
    {
        let mut meta = txn.open_table(META)?;
        let format = format!("{FORMAT_MAJOR}.{FORMAT_MINOR}");
        meta.insert(META_FORMAT, format.as_bytes())?;
        meta.insert(META_ACTOR, actor.to_bytes())?;
        meta.insert(META_INDEX, index::VERSION.to_string().as_bytes())?;
    }
    txn.open_table(CHUNKS)?;
    txn.open_table(DOC_META)?;
    index::create_tables(txn)?;
    let mut main = LoadedDoc {
        doc: schema::new_document(DocId::Main.kind(), actor)?,
        saved_heads: Vec::new(),
    };
    write_chunk(txn, DocId::Main, &mut main)?;
    index::put_settings(txn, &schema::read_settings(&main.doc)?)?;
    Ok(())
}

/// Creates a new store file atomically: it is built and synced under a
/// temporary name, then renamed into place, so a crash during the first
/// launch leaves either no store or a complete one, never a half-written
/// file that would read as damaged.
fn create_file(dir: &Path, path: &Path, actor: &ActorId) -> Result<(), StoreError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io { path: p, source }
    };
    let tmp = dir.join(format!("{STORE_FILE}.creating"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp)(e)),
        _ => {}
    }
    // redb creates files with the umask's mode; an empty 0600 file made
    // first is initialised in place instead.
    drop(crate::private_fs::create_new_private(&tmp).map_err(io(&tmp))?);
    {
        let db = open_writable(&tmp)?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        initialise(&txn, actor)?;
        txn.commit()?;
        db.close()?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // Make the rename itself durable.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not sync the data directory");
    }
    Ok(())
}

fn open_writable(path: &Path) -> Result<Database, StoreError> {
    guarded(path, || {
        let mut b = Builder::new();
        b.set_cache_size(CACHE_SIZE_BYTES);
        b.create(path).map_err(|e| map_open_error(path, e))
    })
}

fn put_meta(txn: &WriteTransaction, name: &str, meta: &DocMeta) -> Result<(), StoreError> {
    let bytes = postcard::to_allocvec(meta).map_err(|e| StoreError::Damaged {
        what: format!("metadata of document {name}"),
        detail: e.to_string(),
    })?;
    txn.open_table(DOC_META)?.insert(name, bytes.as_slice())?;
    Ok(())
}

/// Clears every index table and rebuilds it from `docs` in `txn` (what
/// [`Store::reindex`] and a snapshot bootstrap do). Returns how many
/// interactions each log document holds and the contacts in the main one.
pub(crate) fn rebuild_index(
    txn: &WriteTransaction,
    docs: &HashMap<DocId, LoadedDoc>,
) -> Result<BTreeMap<DocId, usize>, StoreError> {
    rebuild_index_from(txn, docs.iter().map(|(id, l)| (*id, &l.doc)).collect())
}

/// Threads that read log documents during a rebuild (the calling thread is
/// one of them). Reading records out of Automerge documents and cutting
/// their text into search tokens was most of a new device's bootstrap
/// (docs/STORE.md, "Rebuilding the index"); documents are independent, so
/// two threads halve that part on a two-core phone.
pub(super) const REBUILD_READERS: usize = 2;

/// The interactions of some log documents, with their search rows.
type LogsRead = (
    Vec<(DocId, usize)>,
    Vec<crate::model::Interaction>,
    index::SearchRows,
);

/// Reads every interaction of `docs` and collects its search rows.
fn read_logs(docs: &[(DocId, &AutoCommit)]) -> Result<LogsRead, StoreError> {
    let mut counts = Vec::with_capacity(docs.len());
    let mut interactions = Vec::new();
    let mut search = index::SearchRows::default();
    for (id, doc) in docs {
        let read = schema::read_all(doc, schema::INTERACTIONS, schema::read_interaction)?;
        search.add_interactions(&read);
        counts.push((*id, read.len()));
        interactions.extend(read);
    }
    Ok((counts, interactions, search))
}

/// [`rebuild_index`] over documents given by reference.
fn rebuild_index_from(
    txn: &WriteTransaction,
    mut docs: Vec<(DocId, &AutoCommit)>,
) -> Result<BTreeMap<DocId, usize>, StoreError> {
    index::clear(txn)?;
    docs.sort_by_key(|(id, _)| *id);
    let (mut contacts, mut projects, mut goals) = (Vec::new(), Vec::new(), Vec::new());
    let mut settings = crate::model::Settings::default();
    let mut counts = BTreeMap::new();
    let mut logs: Vec<Vec<(DocId, &AutoCommit)>> = vec![Vec::new(); REBUILD_READERS];
    let mut next = 0;
    for (id, doc) in docs {
        match id {
            DocId::Main => {
                contacts = schema::read_all(doc, schema::CONTACTS, schema::read_contact)?;
                projects = schema::read_all(doc, schema::PROJECTS, schema::read_project)?;
                goals = schema::read_all(doc, schema::GOALS, schema::read_goal)?;
                settings = schema::read_settings(doc)?;
                counts.insert(id, contacts.len());
            }
            DocId::Log { .. } => {
                // Dealt in turn: neighbouring quarters are of similar size.
                if let Some(share) = logs.get_mut(next % REBUILD_READERS) {
                    share.push((id, doc));
                }
                next += 1;
            }
        }
    }
    let (mine, others) = logs
        .split_first()
        .map_or((&[][..], &[][..]), |(m, o)| (m.as_slice(), o));
    let results: Vec<Result<LogsRead, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter()
            .map(|share| scope.spawn(move || read_logs(share)))
            .collect();
        let mut out = vec![read_logs(mine)];
        for h in handles {
            out.push(h.join().unwrap_or_else(|_| {
                Err(StoreError::Damaged {
                    what: "index rebuild".into(),
                    detail: "a thread reading documents stopped unexpectedly".into(),
                })
            }));
        }
        out
    });
    let mut interactions = Vec::new();
    let mut search = index::SearchRows::default();
    for r in results {
        let (c, i, s) = r?;
        counts.extend(c);
        interactions.extend(i);
        search.absorb(s);
    }
    index::rebuild(
        txn,
        contacts,
        interactions,
        projects,
        goals,
        &settings,
        search,
    )?;
    let mut meta = txn.open_table(META)?;
    meta.insert(META_INDEX, index::VERSION.to_string().as_bytes())?;
    Ok(counts)
}

/// Appends the changes of `l` since its saved heads as a chunk. Returns the
/// new heads to record once the transaction commits, or `None` if nothing changed.
pub(crate) fn write_chunk(
    txn: &WriteTransaction,
    id: DocId,
    l: &mut LoadedDoc,
) -> Result<Option<Vec<ChangeHash>>, StoreError> {
    let heads = l.doc.get_heads();
    if heads == l.saved_heads {
        return Ok(None);
    }
    let name = id.to_string();
    let mut meta = txn.doc_meta(&name)?.unwrap_or_default();
    let (bytes, full) = if meta.chunk_count == 0 {
        (l.doc.save(), true)
    } else {
        (l.doc.save_after(&l.saved_heads), false)
    };
    append_chunk(txn, &name, &mut meta, &bytes, full)?;
    meta.heads = heads_bytes(&heads);
    put_meta(txn, &name, &meta)?;
    Ok(Some(heads))
}

/// Stores `bytes` as the next chunk of document `name` and counts it in
/// `meta` as a full save or an incremental one; the caller sets the heads
/// and writes `meta`.
fn append_chunk(
    txn: &WriteTransaction,
    name: &str,
    meta: &mut DocMeta,
    bytes: &[u8],
    full: bool,
) -> Result<(), StoreError> {
    txn.open_table(CHUNKS)?
        .insert((name, meta.next_seq), sealed_chunk(bytes).as_slice())?;
    meta.next_seq += 1;
    meta.chunk_count += 1;
    if full {
        meta.full_bytes = bytes.len() as u64;
    } else {
        meta.incremental_bytes += bytes.len() as u64;
    }
    Ok(())
}

/// Like [`write_chunk`], but the chunk is `raw`: the change chunks the
/// caller just applied to `l` (as received, concatenated), which Automerge
/// loads like a `save_after` of them. Why: during a log bootstrap
/// re-encoding the changes a page brought (`save_after` rebuilds each one
/// from the op set) cost as much as a sixth of the merge. Only valid when
/// `raw` holds every change between the saved heads and the current ones;
/// the caller checks that (for a document not stored yet: from its
/// deterministic genesis, which is then stored first as its own full save,
/// since a chunk of changes alone would lack the genesis they depend on).
pub(crate) fn write_raw_chunk(
    txn: &WriteTransaction,
    id: DocId,
    l: &mut LoadedDoc,
    raw: &[u8],
) -> Result<Option<Vec<ChangeHash>>, StoreError> {
    let heads = l.doc.get_heads();
    if heads == l.saved_heads {
        return Ok(None);
    }
    let name = id.to_string();
    let mut meta = txn.doc_meta(&name)?.unwrap_or_default();
    if meta.chunk_count == 0 {
        let genesis = schema::new_document(id.kind(), l.doc.get_actor())?.save();
        append_chunk(txn, &name, &mut meta, &genesis, true)?;
    }
    append_chunk(txn, &name, &mut meta, raw, false)?;
    meta.heads = heads_bytes(&heads);
    put_meta(txn, &name, &meta)?;
    Ok(Some(heads))
}

/// Replaces every chunk of document `name` with one full save whose heads are
/// `heads` (compaction, or a snapshot taken over as is).
pub(super) fn replace_chunks(
    txn: &WriteTransaction,
    name: &str,
    heads: &[ChangeHash],
    full: &[u8],
) -> Result<(), StoreError> {
    let mut meta = txn.doc_meta(name)?.unwrap_or_default();
    {
        let mut chunks = txn.open_table(CHUNKS)?;
        chunks.retain_in((name, 0u64)..=(name, u64::MAX), |_, _| false)?;
        chunks.insert((name, meta.next_seq), sealed_chunk(full).as_slice())?;
    }
    meta.heads = heads_bytes(heads);
    meta.next_seq += 1;
    meta.chunk_count = 1;
    meta.full_bytes = full.len() as u64;
    meta.incremental_bytes = 0;
    put_meta(txn, name, &meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_can_move_between_threads() {
        // The bindings keep a Store behind a Mutex shared across threads.
        fn assert_send<T: Send>() {}
        assert_send::<Store>();
    }

    fn log(store: &mut Store, summary: &str) {
        let who = store
            .add_contact(crate::NewContact::named(format!("Contact {summary}")))
            .unwrap();
        store
            .log_interaction(crate::NewInteraction {
                summary: summary.into(),
                participants: vec![crate::ParticipantRef::Id(who.id)],
                ..crate::NewInteraction::default()
            })
            .unwrap();
    }

    fn summaries(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = store
            .timeline(&Default::default())
            .unwrap()
            .into_iter()
            .map(|i| i.summary)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_parked_store_lets_another_open_write_and_then_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(dir.path()).unwrap();
        log(&mut a, "from a");
        // Open: a second opener is locked out.
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        a.park().unwrap();
        assert!(a.is_parked());
        let marker = {
            let mut b = Store::open(dir.path()).unwrap();
            let before = b.change_marker().unwrap();
            log(&mut b, "from b");
            assert_ne!(b.change_marker().unwrap(), before);
            b.change_marker().unwrap()
        };
        // Transparent reopen: reads see the other process's write, and a's
        // in-memory log document (stale now) is not written over it.
        assert_eq!(summaries(&a), vec!["from a", "from b"]);
        assert!(!a.is_parked());
        assert_eq!(a.change_marker().unwrap(), marker);
        log(&mut a, "from a again");
        a.close().unwrap();
        let c = Store::open(dir.path()).unwrap();
        assert_eq!(summaries(&c), vec!["from a", "from a again", "from b"]);
        let mut c = c;
        c.reindex().unwrap();
        assert_eq!(summaries(&c), vec!["from a", "from a again", "from b"]);
    }

    #[test]
    fn a_write_after_park_merges_with_what_another_wrote_to_the_same_document() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(dir.path()).unwrap();
        log(&mut a, "one");
        a.load_all().unwrap();
        a.park().unwrap();
        {
            let mut b = Store::open(dir.path()).unwrap();
            log(&mut b, "two");
            b.compact(crate::doc::DocId::Main).unwrap();
        }
        // a's loaded documents are stale; the write must continue from disk.
        log(&mut a, "three");
        a.park().unwrap();
        let mut b = Store::open(dir.path()).unwrap();
        b.load_all().unwrap();
        assert_eq!(summaries(&b), vec!["one", "three", "two"]);
    }

    #[cfg(unix)]
    #[test]
    fn store_directory_and_file_are_owner_only_under_umask_022() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        crate::private_fs::with_umask(0o022, || {
            let mut s = Store::open(&dir).unwrap();
            log(&mut s, "private note");
            s.close().unwrap();
        });
        assert_eq!(crate::private_fs::mode_of(&dir).unwrap(), 0o700);
        assert_eq!(
            crate::private_fs::mode_of(&dir.join(STORE_FILE)).unwrap(),
            0o600
        );
        // A store left world-readable by an older Kith is tightened on open.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(STORE_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        Store::open(&dir).unwrap().close().unwrap();
        assert_eq!(crate::private_fs::mode_of(&dir).unwrap(), 0o700);
        assert_eq!(
            crate::private_fs::mode_of(&dir.join(STORE_FILE)).unwrap(),
            0o600
        );
    }

    /// `check` is clean on a healthy store, names an index table that
    /// differs from its rebuild (which `reindex` then repairs), and names a
    /// document whose chunk fails its checksum (which `reindex` cannot).
    #[test]
    fn check_reports_index_drift_and_damaged_documents() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        log(&mut s, "one");
        log(&mut s, "two");
        let clean = s.check().unwrap();
        assert!(clean.is_clean(), "{clean:?}");
        assert!(clean.documents >= 2);

        // Drop the search rows behind the store's back.
        {
            let txn = s.writable().unwrap().begin_write().unwrap();
            let mut t = index::SEARCH.open(&txn).unwrap();
            assert!(t.len().unwrap() > 0);
            t.clear_rows().unwrap();
            drop(t);
            txn.commit().unwrap();
        }
        let drift = s.check().unwrap();
        assert_eq!(drift.index_tables.len(), 1, "{drift:?}");
        assert_eq!(drift.index_tables[0].table, "search");
        assert!(drift.index_tables[0].missing_rows > 0);
        assert!(drift.damaged_documents.is_empty());
        s.reindex().unwrap();
        assert!(s.check().unwrap().is_clean());

        // Flip a byte inside a stored chunk: that document is reported.
        {
            let txn = s.writable().unwrap().begin_write().unwrap();
            let mut t = txn.open_table(CHUNKS).unwrap();
            let ((doc, seq), mut v) = {
                let first = t.iter().unwrap().next().unwrap().unwrap();
                let (d, q) = first.0.value();
                ((d.to_owned(), q), first.1.value().to_vec())
            };
            let last = v.len() - 1;
            v[last] ^= 0x40;
            t.insert((doc.as_str(), seq), v.as_slice()).unwrap();
            drop(t);
            txn.commit().unwrap();
        }
        s.close().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let damaged = s.check().unwrap();
        assert_eq!(damaged.damaged_documents.len(), 1, "{damaged:?}");
    }

    #[test]
    fn park_if_idle_waits_for_the_idle_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(dir.path()).unwrap();
        log(&mut a, "x");
        assert!(!a.park_if_idle(60_000).unwrap());
        assert!(!a.is_parked());
        assert!(a.park_if_idle(0).unwrap());
        assert!(a.is_parked());
        // close() of a parked store is fine, and a closed store stays closed.
        a.close().unwrap();
    }

    #[test]
    fn opening_waits_a_bounded_time_for_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Store::open(dir.path()).unwrap();
        // A writer holds the lock exclusively (readers share it).
        log(&mut holder, "first");
        let started = Instant::now();
        let r = Store::open_waiting(dir.path(), 150);
        assert!(matches!(r, Err(StoreError::Locked { .. })));
        assert!(started.elapsed() >= Duration::from_millis(150));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            holder.close().unwrap();
        });
        let mut s = Store::open_waiting(dir.path(), 5_000).unwrap();
        t.join().unwrap();
        log(&mut s, "after the wait");
        assert_eq!(summaries(&s), vec!["after the wait", "first"]);
    }

    #[test]
    fn a_parked_store_waits_for_the_lock_when_it_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(dir.path()).unwrap();
        log(&mut a, "a");
        a.park().unwrap();
        let b = Store::open(dir.path()).unwrap();
        a.set_lock_wait_ms(0);
        assert!(matches!(
            a.timeline(&Default::default()),
            Err(crate::OpError::Store(StoreError::Locked { .. }))
        ));
        assert!(a.is_parked(), "a failed reopen leaves it parked");
        a.set_lock_wait_ms(5_000);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            b.close().unwrap();
        });
        log(&mut a, "b");
        t.join().unwrap();
        assert_eq!(summaries(&a), vec!["a", "b"]);
    }

    #[test]
    fn chunk_checksums_detect_any_flip() {
        let sealed = sealed_chunk(b"automerge bytes");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let (sum, bytes) = bad.split_at(CHECKSUM_BYTES);
            assert_ne!(sum, checksum(bytes), "flip at {i} went unnoticed");
        }
    }
}
