//! The merge hook for sync: apply changes from another device to one
//! document, update the index for exactly the records Automerge's patches
//! touched, and commit chunk + index + the caller's own table writes (for
//! example sync cursors) in ONE redb transaction. Also the read side: heads,
//! and the changes a peer lacks (all, or only this device's own).
//!
//! A snapshot bootstrap ([`Store::apply_snapshot_docs`]) takes another path:
//! a full save that contains everything the local document has is loaded as
//! is and stored as the document's single chunk (no change-by-change apply,
//! no re-save), the index is rebuilt in one batch exactly like
//! [`Store::reindex`], and documents, index and the caller's bookkeeping
//! commit in one transaction.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use automerge::{AutoCommit, Change, ChangeHash};
use redb::{Durability, WriteTransaction};

use crate::doc::{DocId, LoadedDoc};
use crate::error::StoreError;
use crate::ids::{ContactId, GoalId, InteractionId, ProjectId};
use crate::index;
use crate::schema;

use super::{
    META, META_INDEX, META_INDEX_DEFERRED, Store, rebuild_index, replace_chunks, write_chunk,
    write_raw_chunk,
};

/// What a caller of a remote merge adds to its transaction (sync's cursors and
/// bookkeeping), boxed once at the public entry: the merge and commit
/// functions below are then compiled once instead of once per caller's
/// closure (five to seven copies each, about 0.1 MB of the phone library).
type Extra<'a> = Box<dyn FnOnce(&WriteTransaction) -> Result<(), StoreError> + 'a>;

/// What a remote merge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteApplied {
    /// The document's heads before the merge.
    pub heads_before: Vec<ChangeHash>,
    /// Its heads after; equal to `heads_before` when nothing was new.
    pub heads_after: Vec<ChangeHash>,
    /// Contacts whose record changed.
    pub contacts: Vec<ContactId>,
    /// Interactions whose record changed.
    pub interactions: Vec<InteractionId>,
    /// Projects whose record changed.
    pub projects: Vec<ProjectId>,
    /// Goals whose record changed.
    pub goals: Vec<GoalId>,
    /// Whether the settings changed.
    pub settings: bool,
    /// Some changes wait for dependencies not received yet (they are not stored;
    /// the sync protocol sends them again).
    pub missing_deps: bool,
    /// The document held only its genesis before: every change now in it
    /// came from elsewhere (so this device has none of its own to push).
    pub fresh: bool,
}

impl RemoteApplied {
    /// Whether anything visible changed.
    pub fn is_empty(&self) -> bool {
        self.heads_before == self.heads_after
    }
}

/// Most record ids [`RemoteChangeLog`] keeps between two
/// [`Store::take_remote_changes`]; past it the log only says that more changed.
pub(crate) const REMOTE_LOG_IDS_MAX: usize = 10_000;

/// The records remote merges changed since they were last taken: what a UI
/// refreshes after a sync (the phone bindings' `on_change`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteChanges {
    /// Contacts changed by remote merges.
    pub contacts: Vec<ContactId>,
    /// Interactions changed by remote merges.
    pub interactions: Vec<InteractionId>,
    /// Projects changed by remote merges.
    pub projects: Vec<ProjectId>,
    /// Goals changed by remote merges.
    pub goals: Vec<GoalId>,
    /// Whether remote merges changed the settings.
    pub settings: bool,
    /// More records changed than the log keeps (10,000 ids):
    /// refresh everything.
    pub overflowed: bool,
}

impl RemoteChanges {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        *self == RemoteChanges::default()
    }
}

/// Accumulates [`RemoteChanges`], bounded by [`REMOTE_LOG_IDS_MAX`] ids.
#[derive(Debug, Default)]
pub(crate) struct RemoteChangeLog {
    changes: RemoteChanges,
    ids: usize,
}

impl RemoteChangeLog {
    fn record(&mut self, applied: &RemoteApplied) {
        let c = &mut self.changes;
        c.settings |= applied.settings;
        let n = applied.contacts.len()
            + applied.interactions.len()
            + applied.projects.len()
            + applied.goals.len();
        if c.overflowed || self.ids + n > REMOTE_LOG_IDS_MAX {
            c.overflowed = true;
            return;
        }
        self.ids += n;
        c.contacts.extend(applied.contacts.iter().copied());
        c.interactions.extend(applied.interactions.iter().copied());
        c.projects.extend(applied.projects.iter().copied());
        c.goals.extend(applied.goals.iter().copied());
    }

    /// A bootstrap replaced whole documents: the UI refreshes everything.
    fn record_everything(&mut self) {
        self.changes.overflowed = true;
    }

    fn take(&mut self) -> RemoteChanges {
        let mut c = std::mem::take(&mut self.changes);
        self.ids = 0;
        c.contacts.sort_unstable();
        c.contacts.dedup();
        c.interactions.sort_unstable();
        c.interactions.dedup();
        c.projects.sort_unstable();
        c.projects.dedup();
        c.goals.sort_unstable();
        c.goals.dedup();
        c
    }
}

impl Store {
    /// The records remote merges (relay or peer sync) changed since the last
    /// call, and clears the log. Kept in memory only: a reopened store starts
    /// empty.
    pub fn take_remote_changes(&mut self) -> RemoteChanges {
        self.remote_log.take()
    }
}

/// What a snapshot bootstrap did ([`Store::apply_snapshot_docs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInstalled {
    /// Documents taken over as saved (the local one had nothing else).
    pub replaced: Vec<DocId>,
    /// Of `replaced`, those that held only their genesis (or did not exist)
    /// before: this device has no changes of its own in them.
    pub fresh: Vec<DocId>,
    /// Documents merged into local content the snapshot lacks.
    pub merged: Vec<DocId>,
    /// Records after the bootstrap: contacts of `main`, interactions of each
    /// log document.
    pub records: Vec<(DocId, usize)>,
}

/// Loads and schema-checks the saves of a snapshot on up to
/// [`super::REBUILD_READERS`] threads, biggest first, returning them in the
/// order given. The documents are independent, and at 50,000 interactions
/// their Automerge loads are about a fifth of a new device's time.
fn load_saves(docs: &[(DocId, Vec<u8>)]) -> Vec<Result<AutoCommit, StoreError>> {
    fn load(id: DocId, save: &[u8]) -> Result<AutoCommit, StoreError> {
        let name = id.to_string();
        let doc = AutoCommit::load(save).map_err(|e| StoreError::BadChange {
            doc: name.clone(),
            index: 0,
            detail: format!("snapshot document does not load: {e}"),
        })?;
        schema::check_schema(&doc, &name)?;
        Ok(doc)
    }
    let threads = super::REBUILD_READERS.min(docs.len());
    if threads <= 1 {
        return docs.iter().map(|(id, save)| load(*id, save)).collect();
    }
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(docs.get(i).map_or(0, |(_, s)| s.len())));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        while let Some((i, (id, save))) = order
            .get(next.fetch_add(1, Ordering::Relaxed))
            .and_then(|&i| docs.get(i).map(|d| (i, d)))
        {
            out.push((i, load(*id, save)));
        }
        out
    };
    let done: Vec<(usize, Result<AutoCommit, StoreError>)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for h in helpers {
            // A thread that panicked leaves its documents unanswered: reported below.
            if let Ok(part) = h.join() {
                done.extend(part);
            }
        }
        done
    });
    let mut slots: Vec<Option<Result<AutoCommit, StoreError>>> =
        (0..docs.len()).map(|_| None).collect();
    for (i, r) in done {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
    }
    slots
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::Damaged {
                    what: "snapshot".into(),
                    detail: "a thread loading documents stopped unexpectedly".into(),
                })
            })
        })
        .collect()
}

impl Store {
    /// Bootstraps documents from full saves (a relay snapshot). A save whose
    /// history contains every local head replaces the local document and is
    /// stored, byte for byte, as its only chunk; otherwise it is merged into
    /// the local document. The index is then rebuilt from every document (the
    /// same rows [`Store::reindex`] writes), `extra` runs on the transaction,
    /// and all of it commits durably at once. On error nothing is written and
    /// the affected documents are dropped from memory (they reload as stored).
    pub fn apply_snapshot_docs(
        &mut self,
        docs: Vec<(DocId, Vec<u8>)>,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<SnapshotInstalled, StoreError> {
        let ids: Vec<DocId> = docs.iter().map(|(d, _)| *d).collect();
        let result = self.apply_snapshot_inner(docs, extra);
        if let Err(e) = &result {
            for id in ids {
                self.docs.remove(&id);
            }
            self.after_write_error(e);
        }
        result
    }

    fn apply_snapshot_inner(
        &mut self,
        docs: Vec<(DocId, Vec<u8>)>,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<SnapshotInstalled, StoreError> {
        self.load_all()?;
        let mut out = SnapshotInstalled::default();
        // Saves kept to be written as chunks: (doc, bytes) for replaced documents.
        let mut saves: Vec<(DocId, Vec<u8>)> = Vec::new();
        let loaded = load_saves(&docs);
        for ((id, save), incoming) in docs.into_iter().zip(loaded) {
            let name = id.to_string();
            let mut incoming = incoming?;
            let (replace, fresh) = match self.docs.get_mut(&id) {
                None => (true, true),
                Some(l) => {
                    let heads = l.doc.get_heads();
                    (
                        heads
                            .iter()
                            .all(|h| incoming.get_change_by_hash(h).is_some()),
                        is_genesis(id, &heads),
                    )
                }
            };
            if replace {
                incoming.set_actor(self.actor().clone());
                self.docs.insert(
                    id,
                    LoadedDoc {
                        doc: incoming,
                        saved_heads: Vec::new(),
                    },
                );
                saves.push((id, save));
                out.replaced.push(id);
                if fresh {
                    out.fresh.push(id);
                }
            } else {
                drop(incoming);
                let Some(l) = self.docs.get_mut(&id) else {
                    return Err(StoreError::UnknownDoc(name));
                };
                l.doc
                    .load_incremental(&save)
                    .map_err(|source| StoreError::Automerge {
                        doc: name.clone(),
                        source: crate::error::BackendError::new(source),
                    })?;
                out.merged.push(id);
            }
        }

        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut new_heads = Vec::new();
        for (id, save) in &saves {
            let name = id.to_string();
            let Some(l) = self.docs.get_mut(id) else {
                return Err(StoreError::UnknownDoc(name));
            };
            let heads = l.doc.get_heads();
            replace_chunks(&txn, &name, &heads, save)?;
            new_heads.push((*id, heads));
        }
        for id in &out.merged {
            if let Some(l) = self.docs.get_mut(id)
                && let Some(heads) = write_chunk(&txn, *id, l)?
            {
                new_heads.push((*id, heads));
            }
        }
        out.records = rebuild_index(&txn, &self.docs)?.into_iter().collect();
        extra(&txn)?;
        txn.commit()?;
        for (id, heads) in new_heads {
            if let Some(l) = self.docs.get_mut(&id) {
                l.saved_heads = heads;
            }
        }
        for id in out.merged.clone() {
            self.maybe_compact(id);
        }
        if !out.replaced.is_empty() || !out.merged.is_empty() {
            self.remote_log.record_everything();
        }
        Ok(out)
    }

    /// Makes `doc` present in memory, as its deterministic genesis if the
    /// store lacks it (written with its first merge): what sync checks
    /// received changes' dependencies against.
    pub(crate) fn materialize(&mut self, doc: DocId) -> Result<(), StoreError> {
        self.loaded_or_new(doc).map(|_| ())
    }

    fn loaded_or_new(&mut self, doc: DocId) -> Result<&mut LoadedDoc, StoreError> {
        self.ensure_loaded(doc)?;
        if !self.docs.contains_key(&doc) {
            let fresh = LoadedDoc {
                doc: schema::new_document(doc.kind(), self.actor())?,
                saved_heads: Vec::new(),
            };
            self.docs.insert(doc, fresh);
        }
        self.docs
            .get_mut(&doc)
            .ok_or_else(|| StoreError::UnknownDoc(doc.to_string()))
    }

    /// A read transaction over the store file, for callers' own tables (sync
    /// state). Kith's tables are `meta`, `doc_*` and `idx_*`: use another prefix.
    pub fn read_transaction(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.read_txn()
    }

    /// Runs `f` in one durable write transaction for the caller's own tables
    /// (e.g. sync cursors after a push); aborted if `f` fails.
    pub fn write_tables<T>(
        &mut self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let value = f(&txn)?;
        txn.commit()?;
        Ok(value)
    }

    /// Like [`Store::write_tables`], but the commit is not fsynced (redb
    /// `Durability::None`): it becomes durable with the next durable commit
    /// or when the file is closed, and a crash may lose it (never half of
    /// it). For bookkeeping that is cheap to lose (peer session records,
    /// last-seen times).
    pub(crate) fn write_tables_lazily<T>(
        &mut self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::None)?;
        let value = f(&txn)?;
        txn.commit()?;
        Ok(value)
    }

    /// Current heads of a document (loads it; empty for a document the store lacks).
    pub fn heads(&mut self, doc: DocId) -> Result<Vec<ChangeHash>, StoreError> {
        self.ensure_loaded(doc)?;
        Ok(self
            .docs
            .get_mut(&doc)
            .map(|l| l.doc.get_heads())
            .unwrap_or_default())
    }

    /// Raw changes of `doc` that are not ancestors of `heads` (all when empty).
    pub fn changes_since(
        &mut self,
        doc: DocId,
        heads: &[ChangeHash],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.ensure_loaded(doc)?;
        Ok(match self.docs.get_mut(&doc) {
            Some(l) => l
                .doc
                .get_changes(heads)
                .into_iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
            None => Vec::new(),
        })
    }

    /// Like [`Store::changes_since`], but only the changes this device made
    /// (its own actor): what it pushes to the relay.
    pub fn my_changes_since(
        &mut self,
        doc: DocId,
        heads: &[ChangeHash],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.ensure_loaded(doc)?;
        let me = self.actor().clone();
        Ok(match self.docs.get_mut(&doc) {
            Some(l) => l
                .doc
                .get_changes(heads)
                .into_iter()
                .filter(|c| *c.actor_id() == me)
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
            None => Vec::new(),
        })
    }

    /// Applies raw Automerge changes from another device to `doc`, updates the
    /// index for the records they touched, runs `extra` on the same
    /// transaction, and commits durably. On error nothing is written.
    pub fn apply_remote_changes(
        &mut self,
        doc: DocId,
        changes: &[Vec<u8>],
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<RemoteApplied, StoreError> {
        let mut parsed = Vec::with_capacity(changes.len());
        for (index, bytes) in changes.iter().enumerate() {
            parsed.push(
                Change::from_bytes(bytes.clone()).map_err(|e| StoreError::BadChange {
                    doc: doc.to_string(),
                    index,
                    detail: e.to_string(),
                })?,
            );
        }
        self.apply_remote_parsed(doc, parsed, extra)
    }

    /// [`Store::apply_remote_changes`] for changes the caller already parsed
    /// (sync parses each received change once, to check it, and hands the
    /// parsed form on: parsing checks a SHA-256 and inflates compressed
    /// changes, a tenth of a log bootstrap when it was done three times).
    pub(crate) fn apply_remote_parsed(
        &mut self,
        doc: DocId,
        changes: Vec<Change>,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<RemoteApplied, StoreError> {
        let result = self.apply_parsed(doc, changes, Box::new(extra));
        if let Err(e) = &result {
            self.rollback_docs();
            self.after_write_error(e);
        }
        result
    }

    fn apply_parsed(
        &mut self,
        doc: DocId,
        mut changes: Vec<Change>,
        extra: Extra<'_>,
    ) -> Result<RemoteApplied, StoreError> {
        let deferred = self.index_deferred;
        let l = self.loaded_or_new(doc)?;
        let before = l.doc.get_heads();
        // During a deferred log bootstrap the received changes themselves
        // become the chunk (see `write_raw_chunk`), when the document had
        // nothing unsaved and no changes queued for missing dependencies
        // (this merge could release those too): then they are exactly what
        // moves it past its saved heads (duplicates load as no-ops).
        let nothing_unsaved =
            l.saved_heads == before || (l.saved_heads.is_empty() && is_genesis(doc, &before));
        let raw = (deferred
            && !changes.is_empty()
            && nothing_unsaved
            && l.doc.get_missing_deps(&[]).is_empty())
        .then(|| {
            let mut raw = Vec::with_capacity(changes.iter().map(|c| c.raw_bytes().len()).sum());
            for c in &mut changes {
                raw.extend_from_slice(&c.bytes());
            }
            raw
        });
        l.doc
            .apply_changes(changes)
            .map_err(|source| StoreError::Automerge {
                doc: doc.to_string(),
                source: crate::error::BackendError::new(source),
            })?;
        self.commit_merged(doc, before, raw, extra)
    }

    /// Like [`Store::apply_remote_changes`], but the merge is done by
    /// `mutate` on the in-memory document (the Automerge sync protocol
    /// receives this way, keeping its queue of changes whose dependencies
    /// are missing). On error nothing is written and memory is rolled back.
    pub(crate) fn merge_with(
        &mut self,
        doc: DocId,
        mutate: impl FnOnce(&mut automerge::AutoCommit) -> Result<(), StoreError>,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<RemoteApplied, StoreError> {
        let result = (|| {
            let l = self.loaded_or_new(doc)?;
            let before = l.doc.get_heads();
            mutate(&mut l.doc)?;
            self.commit_merged(doc, before, None, Box::new(extra))
        })();
        if result.is_err() {
            self.rollback_docs();
        }
        result
    }

    /// Commits what was merged into the in-memory document since `before`:
    /// index rows for the records the patches touch, one chunk, and `extra`,
    /// in one durable transaction. `raw`: the merged changes as received,
    /// stored as the chunk while the index is deferred.
    fn commit_merged(
        &mut self,
        doc: DocId,
        before: Vec<ChangeHash>,
        raw: Option<Vec<u8>>,
        extra: Extra<'_>,
    ) -> Result<RemoteApplied, StoreError> {
        let Some(l) = self.docs.get_mut(&doc) else {
            return Err(StoreError::UnknownDoc(doc.to_string()));
        };
        let after = l.doc.get_heads();
        let missing_deps = !l.doc.get_missing_deps(&[]).is_empty();
        if self.index_deferred {
            // Changes still waiting for dependencies are in the received
            // bytes but not in the document: then the chunk is re-encoded.
            let raw = raw.filter(|_| !missing_deps);
            return self.commit_deferred(doc, before, after, missing_deps, raw, extra);
        }
        if is_genesis(doc, &before) {
            return self.commit_fresh(doc, before, after, missing_deps, extra);
        }
        let Some(l) = self.docs.get_mut(&doc) else {
            return Err(StoreError::UnknownDoc(doc.to_string()));
        };
        let patches = l.doc.diff(&before, &after);
        let mut touched = schema::touched_by(&patches);
        for (container, key) in schema::records_written_since(&mut l.doc, &before) {
            match container.as_str() {
                schema::CONTACTS => {
                    touched.contacts.insert(key);
                }
                schema::INTERACTIONS => {
                    touched.interactions.insert(key);
                }
                _ => {}
            }
        }

        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut out = RemoteApplied {
            heads_before: before,
            heads_after: after,
            settings: touched.settings,
            missing_deps,
            ..RemoteApplied::default()
        };
        let Some(l) = self.docs.get_mut(&doc) else {
            return Err(StoreError::UnknownDoc(doc.to_string()));
        };
        let d = &l.doc;
        for k in &touched.contacts {
            if let Some(new) = schema::read_one(d, schema::CONTACTS, k, schema::read_contact)? {
                index::put_contact(&txn, &new)?;
                out.contacts.push(new.id);
            }
        }
        for k in &touched.interactions {
            if let Some(new) =
                schema::read_one(d, schema::INTERACTIONS, k, schema::read_interaction)?
            {
                index::put_interaction(&txn, &new)?;
                out.interactions.push(new.id);
            }
        }
        for k in &touched.projects {
            if let Some(p) = schema::read_one(d, schema::PROJECTS, k, schema::read_project)? {
                index::put_project(&txn, &p)?;
                out.projects.push(p.id);
            }
        }
        for k in &touched.goals {
            if let Some(g) = schema::read_one(d, schema::GOALS, k, schema::read_goal)? {
                index::put_goal(&txn, &g)?;
                out.goals.push(g.id);
            }
        }
        if touched.settings && doc == DocId::Main {
            index::put_settings(&txn, &schema::read_settings(d)?)?;
        }
        self.commit_with_chunk(txn, doc, None, extra)?;
        self.remote_log.record(&out);
        Ok(out)
    }
}

/// True when `heads` are those of a document holding nothing but its
/// deterministic genesis (or of no document at all).
fn is_genesis(doc: DocId, heads: &[ChangeHash]) -> bool {
    use std::sync::OnceLock;
    static MAIN: OnceLock<Option<ChangeHash>> = OnceLock::new();
    static LOG: OnceLock<Option<ChangeHash>> = OnceLock::new();
    let genesis_of = |kind| {
        schema::new_document(kind, &automerge::ActorId::random())
            .ok()
            .and_then(|mut d| d.get_heads().first().copied())
    };
    match heads {
        [] => true,
        [h] => {
            let genesis = match doc.kind() {
                schema::DocKind::Main => MAIN.get_or_init(|| genesis_of(schema::DocKind::Main)),
                schema::DocKind::Log => LOG.get_or_init(|| genesis_of(schema::DocKind::Log)),
            };
            genesis.as_ref() == Some(h)
        }
        _ => false,
    }
}

impl Store {
    /// [`Store::commit_merged`] for a document that held only its genesis
    /// before the merge (a new device's first pull): none of its records can
    /// be in the index, so there is nothing to diff or replace. Every record
    /// is read in one pass and indexed without looking up an old version,
    /// contact statistics are refreshed once at the end (the same rows
    /// `reindex` builds), then the chunk and `extra`, in one transaction.
    fn commit_fresh(
        &mut self,
        doc: DocId,
        before: Vec<ChangeHash>,
        after: Vec<ChangeHash>,
        missing_deps: bool,
        extra: Extra<'_>,
    ) -> Result<RemoteApplied, StoreError> {
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let Some(l) = self.docs.get_mut(&doc) else {
            return Err(StoreError::UnknownDoc(doc.to_string()));
        };
        let mut out = RemoteApplied {
            heads_before: before,
            heads_after: after,
            missing_deps,
            fresh: true,
            ..RemoteApplied::default()
        };
        let d = &l.doc;
        match doc {
            DocId::Main => {
                let mut contacts = schema::read_all(d, schema::CONTACTS, schema::read_contact)?;
                contacts.sort_by_key(|c| c.id);
                index::put_new_contacts(&txn, &contacts)?;
                out.contacts.extend(contacts.iter().map(|c| c.id));
                for p in schema::read_all(d, schema::PROJECTS, schema::read_project)? {
                    index::put_project(&txn, &p)?;
                    out.projects.push(p.id);
                }
                for g in schema::read_all(d, schema::GOALS, schema::read_goal)? {
                    index::put_goal(&txn, &g)?;
                    out.goals.push(g.id);
                }
                index::put_settings(&txn, &schema::read_settings(d)?)?;
                out.settings = true;
            }
            DocId::Log { .. } => {
                let mut all = schema::read_all(d, schema::INTERACTIONS, schema::read_interaction)?;
                all.sort_by_key(|i| i.id);
                let affected = index::put_new_interactions(&txn, &all)?;
                index::refresh_stats(&txn, &affected)?;
                out.interactions = all.iter().map(|i| i.id).collect();
            }
        }
        self.commit_with_chunk(txn, doc, None, extra)?;
        self.remote_log.record(&out);
        Ok(out)
    }
}

impl Store {
    /// The common end of a remote merge's transaction: `doc`'s new changes
    /// as a chunk (`raw` when given: see `write_raw_chunk`), then `extra`,
    /// committed durably with whatever the caller wrote on `txn`; then the
    /// saved heads are recorded and the document is compacted if due.
    fn commit_with_chunk(
        &mut self,
        txn: WriteTransaction,
        doc: DocId,
        raw: Option<&[u8]>,
        extra: Extra<'_>,
    ) -> Result<(), StoreError> {
        let Some(l) = self.docs.get_mut(&doc) else {
            return Err(StoreError::UnknownDoc(doc.to_string()));
        };
        let heads = match raw {
            Some(raw) => write_raw_chunk(&txn, doc, l, raw)?,
            None => write_chunk(&txn, doc, l)?,
        };
        extra(&txn)?;
        txn.commit()?;
        if let (Some(heads), Some(l)) = (heads, self.docs.get_mut(&doc)) {
            l.saved_heads = heads;
        }
        self.maybe_compact(doc);
        Ok(())
    }
}

impl Store {
    /// Stops maintaining the index for remote merges until
    /// [`Store::finish_deferred_index`]: a log bootstrap pulls a whole
    /// account page by page, and indexing each page (and diffing the second
    /// half of every document a page boundary split) cost more than the
    /// merges; one rebuild at the end (two reader threads, like a snapshot
    /// bootstrap) is cheaper. Durable first: `META_INDEX` says "deferred",
    /// so a crash or a cancel before the rebuild leaves a store whose next
    /// open rebuilds the index. Meanwhile searches and listings read the
    /// index as it was before the bootstrap (empty on a new device) and
    /// [`Store::index_deferred`] says so. Local writes still index
    /// themselves (the rebuild replaces those rows with the same ones).
    pub fn defer_index(&mut self) -> Result<(), StoreError> {
        if self.index_deferred {
            return Ok(());
        }
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(META)?
            .insert(META_INDEX, META_INDEX_DEFERRED.as_bytes())?;
        txn.commit()?;
        self.index_deferred = true;
        Ok(())
    }

    /// Whether remote merges are waiting for [`Store::finish_deferred_index`]
    /// (searches and listings then miss what the bootstrap merged so far).
    pub fn index_deferred(&self) -> bool {
        self.index_deferred
    }

    /// Rebuilds the index deferred by [`Store::defer_index`] from every
    /// document in one transaction (as [`Store::reindex`]) and resumes
    /// maintaining it; a no-op (no counts) when nothing is deferred. The UI
    /// refreshes everything ([`Store::take_remote_changes`] reports an
    /// overflow). Returns how many records each document holds (contacts of
    /// the main one, interactions of a log one): what the bootstrap brought,
    /// since the deferred merges did not list their records.
    pub fn finish_deferred_index(&mut self) -> Result<BTreeMap<DocId, usize>, StoreError> {
        if !self.index_deferred {
            return Ok(BTreeMap::new());
        }
        self.load_all()?;
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let counts = rebuild_index(&txn, &self.docs)?;
        txn.commit()?;
        self.index_deferred = false;
        self.remote_log.record_everything();
        Ok(counts)
    }

    /// During a deferred bootstrap, every other document in memory is stored
    /// as one full save and dropped from memory. Why: the pull brings the
    /// account document after document, and a document built change by
    /// change holds far more memory than the same document loaded from a
    /// save (together they were the log path's ~500 MB peak at 50,000
    /// interactions, twice the snapshot path's); the final rebuild then loads
    /// each from its single save, as a snapshot bootstrap does. A page that
    /// comes back to a dropped document reloads it. Best effort: on an error
    /// the document stays in memory and in its incremental chunks.
    fn settle_other_deferred_docs(&mut self, current: DocId) {
        let others: Vec<DocId> = self
            .docs
            .keys()
            .copied()
            .filter(|id| *id != current)
            .collect();
        for id in others {
            // A document that arrived in one page is one full save already.
            let single = self
                .doc_meta(id)
                .is_ok_and(|m| m.is_some_and(|m| m.chunk_count <= 1));
            if single {
                self.docs.remove(&id);
                continue;
            }
            match self.compact(id) {
                Ok(()) => {
                    self.docs.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(doc = %id, error = %e, "could not settle a bootstrapped document")
                }
            }
        }
    }

    /// [`Store::commit_merged`] while the index is deferred: the chunk and
    /// `extra` only, in one durable transaction. The changed records are not
    /// listed (nothing reads them out of the document); the remote log
    /// reports everything instead.
    fn commit_deferred(
        &mut self,
        doc: DocId,
        before: Vec<ChangeHash>,
        after: Vec<ChangeHash>,
        missing_deps: bool,
        raw: Option<Vec<u8>>,
        extra: Extra<'_>,
    ) -> Result<RemoteApplied, StoreError> {
        let fresh = is_genesis(doc, &before);
        let mut txn = self.writable()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        self.commit_with_chunk(txn, doc, raw.as_deref(), extra)?;
        self.settle_other_deferred_docs(doc);
        self.remote_log.record_everything();
        Ok(RemoteApplied {
            heads_before: before,
            heads_after: after,
            missing_deps,
            fresh,
            ..RemoteApplied::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(contacts: usize) -> RemoteApplied {
        RemoteApplied {
            contacts: (0..contacts).map(|_| ContactId::new()).collect(),
            ..RemoteApplied::default()
        }
    }

    #[test]
    fn the_remote_log_dedups_and_stays_bounded() {
        let mut log = RemoteChangeLog::default();
        let a = applied(2);
        log.record(&a);
        log.record(&a);
        let got = log.take();
        assert_eq!(got.contacts.len(), 2);
        assert!(!got.overflowed);
        assert!(log.take().is_empty());

        log.record(&applied(REMOTE_LOG_IDS_MAX));
        log.record(&applied(1));
        let got = log.take();
        assert!(got.overflowed);
        assert_eq!(got.contacts.len(), REMOTE_LOG_IDS_MAX);
        assert!(log.take().is_empty());
    }
}
