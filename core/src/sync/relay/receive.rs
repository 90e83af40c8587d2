//! Receiving: pull cursors, verifying, opening and applying entries (pull
//! pages and live events) with the cursor, partial and device bookkeeping in
//! the same transaction as the merge; changes whose dependencies have not
//! arrived wait in the pending table.

use super::*;

/// One merge step: changes for one document plus the sync bookkeeping that
/// must commit with them.
#[derive(Debug, Default)]
pub(super) struct Step {
    doc: Option<DocId>,
    /// Parsed once, when the entry was opened (the check that decides
    /// quarantine), and applied in that form.
    changes: Vec<Change>,
    cursors: Vec<(DeviceId, u64)>,
    partials: Vec<(DeviceId, Option<Partial>)>,
    /// Devices heard from, with the name they announced in sealed data.
    names: Vec<(DeviceId, String)>,
    /// Entries skipped because they did not verify, decrypt or parse.
    quarantined: Vec<(DeviceId, u64, String)>,
}

/// Largest body a device may send in fragments: a hostile device could
/// otherwise make every reader keep an ever-growing partial entry. Far above
/// any real single change (one import's change is a few MiB).
const FRAGMENTED_BODY_BYTES_MAX: usize = 256 << 20;

fn write_quarantined(
    txn: &WriteTransaction,
    quarantined: &[(DeviceId, u64, String)],
    now_ms: u64,
) -> Result<(), StoreError> {
    for (d, seq, reason) in quarantined {
        tables::quarantine(txn, d, *seq, reason, now_ms)?;
    }
    Ok(())
}

/// The changes an opened entry carries, parsed, once complete: `Ok(None)` for a
/// fragment of a larger entry still incomplete (kept in `partials` and in
/// `step`), `Err(reason)` for a body that cannot be used (fragments out of
/// order or not reassembling, an invalid document id, a change that does
/// not parse): the caller quarantines the entry.
#[allow(clippy::type_complexity)]
fn body_of(
    body: EntryBody,
    device: DeviceId,
    partials: &mut HashMap<DeviceId, Partial>,
    step: &mut Step,
) -> Result<Option<(DocId, Vec<Change>)>, String> {
    let (doc, changes) = match body {
        EntryBody::Changes { doc, changes } => (doc, changes),
        EntryBody::Fragment {
            index,
            count,
            bytes,
        } => {
            let mut part = match partials.remove(&device) {
                Some(pt) if pt.next_index == index && pt.count == count => pt,
                _ if index == 0 => Partial {
                    next_index: 0,
                    count,
                    bytes: Vec::new(),
                },
                _ => return Err(format!("fragment {index}/{count} out of order")),
            };
            if part.bytes.len().saturating_add(bytes.len()) > FRAGMENTED_BODY_BYTES_MAX {
                return Err(format!(
                    "fragments exceed {FRAGMENTED_BODY_BYTES_MAX} bytes"
                ));
            }
            part.bytes.extend_from_slice(&bytes);
            part.next_index = index + 1;
            if part.next_index < count {
                step.partials.push((device, Some(part.clone())));
                partials.insert(device, part);
                return Ok(None);
            }
            step.partials.push((device, None));
            match postcard::from_bytes::<EntryBody>(&part.bytes) {
                Ok(EntryBody::Changes { doc, changes }) => (doc, changes),
                _ => return Err("fragments do not reassemble".into()),
            }
        }
    };
    let d: DocId = doc
        .parse()
        .map_err(|_| format!("it names an invalid document: {doc:.80}"))?;
    let mut parsed = Vec::with_capacity(changes.len());
    for (i, c) in changes.into_iter().enumerate() {
        match Change::from_bytes(c) {
            Ok(c) => parsed.push(c),
            Err(e) => return Err(format!("change {i} does not parse: {e}")),
        }
    }
    Ok(Some((d, parsed)))
}

pub(super) fn write_bookkeeping(
    txn: &WriteTransaction,
    cursors: &[(DeviceId, u64)],
    partials: &[(DeviceId, Option<Partial>)],
    names: &[(DeviceId, String)],
    now_ms: u64,
) -> Result<(), StoreError> {
    for (d, s) in cursors {
        tables::set_cursor(txn, d, *s)?;
    }
    for (d, p) in partials {
        tables::set_partial(txn, d, p.as_ref())?;
    }
    for (d, name) in names {
        tables::touch_device(txn, d, Some(name), now_ms)?;
    }
    Ok(())
}

/// Records that this device has no changes of its own to push in `docs` up
/// to the given heads: documents that held only their genesis and received
/// everything from the relay (a bootstrap). Without it the next push would
/// rebuild every change of their history to look for this device's own
/// ones. Only an optimisation hint for `seal_new`: losing it (a crash
/// before this commit) just costs that scan.
pub(super) fn mark_pushed(
    store: &mut Store,
    docs: &[(DocId, Vec<ChangeHash>)],
) -> Result<(), StoreError> {
    if docs.is_empty() {
        return Ok(());
    }
    let txn = store.writable()?.begin_write()?;
    for (doc, heads) in docs {
        // Never move a document's pushed heads that this device set itself.
        tables::set_pushed_heads(&txn, &doc.to_string(), heads, true)?;
    }
    txn.commit()?;
    Ok(())
}

/// Outcome of [`apply_with_pending`].
pub(crate) struct Merged {
    pub(crate) applied: crate::store::RemoteApplied,
    pub(crate) pending: usize,
}

/// Merges `new` changes (plus any pending ones of the document) into `doc`:
/// changes whose dependencies are all present are applied; the rest are kept
/// in the pending table, in the same transaction as the merge and `extra`.
pub(crate) fn apply_with_pending(
    store: &mut Store,
    doc: DocId,
    new: Vec<Vec<u8>>,
    extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
) -> Result<Merged, StoreError> {
    let mut parsed = Vec::with_capacity(new.len());
    for (index, bytes) in new.into_iter().enumerate() {
        parsed.push(
            Change::from_bytes(bytes).map_err(|e| StoreError::BadChange {
                doc: doc.to_string(),
                index,
                detail: e.to_string(),
            })?,
        );
    }
    apply_parsed_with_pending(store, doc, parsed, extra)
}

/// [`apply_with_pending`] for changes already parsed (each received change
/// is parsed once, when its entry is opened).
fn apply_parsed_with_pending(
    store: &mut Store,
    doc: DocId,
    new: Vec<Change>,
    extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
) -> Result<Merged, StoreError> {
    // Materialise the document (its deterministic genesis) so the
    // dependency check below sees the genesis change; in memory only (it is
    // stored with the merge, in that merge's transaction).
    store.materialize(doc)?;
    let name = doc.to_string();
    let mut candidates: Vec<Change> = Vec::new();
    let mut seen = HashSet::new();
    let mut had_pending = false;
    {
        let txn = store.read_txn()?;
        for bytes in tables::pending_of(&txn, &name)? {
            had_pending = true;
            if let Ok(c) = Change::from_bytes(bytes)
                && seen.insert(c.hash())
            {
                candidates.push(c);
            }
        }
    }
    for c in new {
        if seen.insert(c.hash()) {
            candidates.push(c);
        }
    }
    let Some(l) = store.docs.get_mut(&doc) else {
        return Err(StoreError::UnknownDoc(name));
    };
    // Fixpoint: a change is ready when each dependency is in the document or ready.
    let mut ready: HashSet<ChangeHash> = HashSet::new();
    let mut present: HashMap<ChangeHash, bool> = HashMap::new();
    loop {
        let mut progressed = false;
        for c in &candidates {
            let h = c.hash();
            if ready.contains(&h) {
                continue;
            }
            let ok = c.deps().iter().all(|d| {
                ready.contains(d)
                    || *present
                        .entry(*d)
                        .or_insert_with(|| l.doc.get_change_by_hash(d).is_some())
            });
            if ok {
                ready.insert(h);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let mut apply = Vec::new();
    let mut waiting = Vec::new();
    for c in candidates {
        if ready.contains(&c.hash()) {
            apply.push(c);
        } else {
            waiting.push((c.hash(), c.raw_bytes().to_vec()));
        }
    }
    let pending = waiting.len();
    let applied = store.apply_remote_parsed(doc, apply, |txn| {
        if had_pending || !waiting.is_empty() {
            tables::replace_pending(txn, &name, &waiting)?;
        }
        extra(txn)
    })?;
    Ok(Merged { applied, pending })
}

/// Compresses raw changes for the wire (`Change::bytes`).
pub(crate) fn compress(raw: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    raw.into_iter()
        .map(|b| match Change::from_bytes(b.clone()) {
            Ok(mut c) => c.bytes().into_owned(),
            Err(_) => b,
        })
        .collect()
}

impl RelaySync {
    /// Entries the relay holds after this device's cursors (from the last
    /// `Heads`), if known; 0 when the pull finished.
    pub(super) fn pull_remaining(
        &self,
        store: &mut Store,
        more: bool,
    ) -> Result<Option<u64>, StoreError> {
        if !more {
            return Ok(Some(0));
        }
        if self.remote_heads.is_empty() {
            return Ok(None);
        }
        let cursors = self.pull_cursors(store)?;
        let at = |d: &DeviceId| cursors.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
        Ok(Some(
            self.remote_heads
                .iter()
                .map(|h| h.seq.saturating_sub(at(&h.device)))
                .sum(),
        ))
    }

    pub(super) fn pull_cursors(&self, store: &mut Store) -> Result<Vec<Cursor>, StoreError> {
        let st = read_status(store)?;
        let me = self.id.device_id();
        let mut cursors = st.cursors;
        let own = cursors.iter().find(|c| c.device == me).map_or(0, |c| c.seq);
        // Catching up on its own log (a restored store): the own cursor is
        // where the pull stands, not what the relay acknowledged.
        let acked = if own < st.own_catchup_seq {
            own
        } else {
            st.acked_seq
        };
        match cursors.iter_mut().find(|c| c.device == me) {
            Some(c) => c.seq = c.seq.max(acked),
            None if acked > 0 => cursors.push(Cursor {
                device: me,
                seq: acked,
            }),
            None => {}
        }
        Ok(cursors)
    }

    /// Verifies and applies received entries in order; stops at a gap (and
    /// asks for a pull), skips duplicates.
    pub(super) fn receive(
        &mut self,
        store: &mut Store,
        entries: Vec<SealedEntry>,
        live: bool,
    ) -> Result<(), RelaySyncError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Received bytes do not count toward a snapshot: a device that just
        // caught up should not pay for one (the pusher does, and the
        // entry-count rule covers everyone).
        let bytes: usize = entries.iter().map(|e| e.ciphertext.len()).sum();
        self.events.push_back(RelayEvent::Received {
            entries: entries.len(),
            bytes,
            live,
        });
        let mut cursors: HashMap<DeviceId, u64> = self
            .pull_cursors(store)?
            .into_iter()
            .map(|c| (c.device, c.seq))
            .collect();
        let mut partials: HashMap<DeviceId, Partial> = tables::partials(&store.read_txn()?)?;
        let mut steps: Vec<Step> = Vec::new();
        let mut blocked: HashSet<DeviceId> = HashSet::new();
        let members = membership::state(store, self.id.account_id())?;
        let keys = membership::keys(store)?;
        for e in entries {
            if blocked.contains(&e.device) {
                continue;
            }
            let cur = cursors.get(&e.device).copied().unwrap_or(0);
            if e.seq <= cur {
                continue;
            }
            if e.seq != cur + 1 {
                blocked.insert(e.device);
                self.pull_wanted = true;
                continue;
            }
            if e.epoch > members.epoch() {
                // Sealed under an epoch this device has not heard of yet:
                // fetch the membership log, then pull again from here.
                blocked.insert(e.device);
                self.membership_wanted = true;
                self.pull_wanted = true;
                continue;
            }
            // An entry that does not verify, decrypt or parse (or whose
            // author was not a member then) is quarantined: recorded with
            // its device and seq, skipped, and the cursor moves past it, so
            // one bad (hostile or damaged) entry never stops the account.
            // Only an entry from a newer Kith stops the pull: updating Kith
            // makes it readable.
            let opened = match payload::open_entry(&self.id, &members, &keys, &e) {
                Ok(p) => Ok(p),
                Err(reason @ UnsealError::NewerVersion(_)) => {
                    return Err(RelaySyncError::BadEntry {
                        device: e.device,
                        seq: e.seq,
                        reason,
                    });
                }
                Err(reason) => Err(reason.to_string()),
            };
            cursors.insert(e.device, e.seq);
            let mut step = Step {
                cursors: vec![(e.device, e.seq)],
                ..Step::default()
            };
            let body = opened.and_then(|p| {
                step.names.push((e.device, p.name));
                body_of(p.body, e.device, &mut partials, &mut step)
            });
            match body {
                Ok(Some((doc, changes))) => {
                    step.doc = Some(doc);
                    step.changes = changes;
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(device = %e.device, seq = e.seq, %reason, "entry quarantined");
                    // Its name is not trusted, and a large entry it was
                    // part of can never complete.
                    step.names.clear();
                    if partials.remove(&e.device).is_some() {
                        step.partials.retain(|(d, _)| *d != e.device);
                        step.partials.push((e.device, None));
                    }
                    self.events.push_back(RelayEvent::Quarantined {
                        device: e.device,
                        seq: e.seq,
                        reason: reason.clone(),
                    });
                    step.quarantined.push((e.device, e.seq, reason));
                }
            }
            match steps.last_mut() {
                Some(last) if last.doc == step.doc || step.doc.is_none() => {
                    last.changes.extend(step.changes);
                    last.cursors.extend(step.cursors);
                    last.partials.extend(step.partials);
                    last.names.extend(step.names);
                    last.quarantined.extend(step.quarantined);
                }
                _ => steps.push(step),
            }
        }
        let now = self.now_ms;
        let mut fresh = Vec::new();
        for step in steps {
            match step.doc {
                Some(doc) => {
                    let m = apply_parsed_with_pending(store, doc, step.changes, |txn| {
                        write_bookkeeping(txn, &step.cursors, &step.partials, &step.names, now)?;
                        write_quarantined(txn, &step.quarantined, now)
                    })?;
                    if m.applied.fresh {
                        fresh.push((doc, m.applied.heads_after.clone()));
                    }
                    self.events.push_back(RelayEvent::Applied {
                        doc,
                        contacts: m.applied.contacts.len(),
                        interactions: m.applied.interactions.len(),
                        pending: m.pending,
                    });
                }
                None => {
                    let txn = store.writable()?.begin_write()?;
                    write_bookkeeping(&txn, &step.cursors, &step.partials, &step.names, now)?;
                    write_quarantined(&txn, &step.quarantined, now)?;
                    txn.commit().map_err(StoreError::from)?;
                }
            }
        }
        mark_pushed(store, &fresh)?;
        self.heads_wanted = true;
        Ok(())
    }

    /// A quarantined entry pulled again: if it opens and parses now (the
    /// relay's copy was repaired), its changes are applied and its record
    /// dropped in the same transaction. An entry that still fails, or a
    /// fragment of a larger entry (its siblings are gone), stays recorded.
    pub(super) fn retry_quarantined(
        &mut self,
        store: &mut Store,
        e: SealedEntry,
    ) -> Result<(), RelaySyncError> {
        let members = membership::state(store, self.id.account_id())?;
        let keys = membership::keys(store)?;
        let Ok(p) = payload::open_entry(&self.id, &members, &keys, &e) else {
            return Ok(());
        };
        let mut partials = HashMap::new();
        let mut step = Step::default();
        let Ok(Some((doc, changes))) = body_of(p.body, e.device, &mut partials, &mut step) else {
            return Ok(());
        };
        let (device, seq) = (e.device, e.seq);
        let m = apply_parsed_with_pending(store, doc, changes, |txn| {
            tables::unquarantine(txn, &device, seq)
        })?;
        self.events.push_back(RelayEvent::Applied {
            doc,
            contacts: m.applied.contacts.len(),
            interactions: m.applied.interactions.len(),
            pending: m.pending,
        });
        self.events.push_back(RelayEvent::Repaired { device, seq });
        Ok(())
    }
}
