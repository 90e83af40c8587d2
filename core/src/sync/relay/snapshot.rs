//! Snapshots: building and sealing a full state, uploading it whole or in
//! parts, choosing which stored snapshot to fetch (`Snapshots`: pending,
//! then confirmed, then the log), downloading it in ranges and installing
//! it (documents, index, cursors and device records in one transaction) or
//! only checking that it opens (another device's pending snapshot), then
//! confirming it to the relay. A snapshot that cannot be opened is
//! reported and skipped, never a dead end.

use super::*;

impl RelaySync {
    /// Cuts a snapshot too large for one frame into parts and starts
    /// sending them ([`RelaySync::pump_upload`] keeps it going).
    pub(super) fn start_upload(&mut self, mut snapshot: SealedSnapshot) {
        let part_bytes = self
            .frame_bytes_max
            .saturating_sub(PART_OVERHEAD_BYTES)
            .max(1);
        let ciphertext = std::mem::take(&mut snapshot.ciphertext);
        let total_bytes = ciphertext.len() as u64;
        let count = ciphertext.len().div_ceil(part_bytes);
        let Some(count) = u32::try_from(count)
            .ok()
            .filter(|c| *c <= kith_protocol::msg::SNAPSHOT_PARTS_MAX)
        else {
            self.events.push_back(RelayEvent::SnapshotSkipped {
                reason: format!("snapshot of {total_bytes} bytes needs too many parts"),
            });
            return;
        };
        let parts: VecDeque<(u32, Vec<u8>)> = ciphertext
            .chunks(part_bytes)
            .zip(0u32..)
            .map(|(p, i)| (i, p.to_vec()))
            .collect();
        // A stable id per snapshot: a re-sent part of the same upload
        // replaces itself at the relay instead of starting over.
        let sig = snapshot.signature.to_bytes();
        let mut id8 = [0u8; 8];
        id8.copy_from_slice(&sig[..8]);
        self.upload = Some(Upload {
            id: u64::from_le_bytes(id8),
            header: snapshot,
            parts,
            count,
            acked: 0,
            total_bytes,
            acked_bytes: 0,
        });
        self.pump_upload();
    }

    /// Sends the next parts (bounded in flight), then the commit.
    pub(super) fn pump_upload(&mut self) {
        let inflight = self
            .inflight
            .values()
            .filter(|r| matches!(r, Req::SnapshotPart { .. } | Req::CommitSnapshot { .. }))
            .count();
        let Some(u) = self.upload.as_mut() else {
            return;
        };
        let mut sends = Vec::new();
        let mut room = UPLOAD_PARTS_INFLIGHT_MAX.saturating_sub(inflight);
        while room > 0
            && let Some((index, bytes)) = u.parts.pop_front()
        {
            room -= 1;
            let n = bytes.len();
            sends.push((
                Request::PutSnapshotPart {
                    upload: u.id,
                    index,
                    count: u.count,
                    bytes,
                },
                Req::SnapshotPart { bytes: n },
            ));
        }
        if inflight == 0 && sends.is_empty() && u.parts.is_empty() && u.acked >= u.count {
            let bytes = usize::try_from(u.total_bytes).unwrap_or(usize::MAX);
            sends.push((
                Request::CommitSnapshot {
                    upload: u.id,
                    snapshot: u.header.clone(),
                },
                Req::CommitSnapshot { bytes },
            ));
        }
        for (body, kind) in sends {
            self.send(body, kind);
        }
    }

    /// One range of the relay's snapshot arrived: keep it, ask for the next,
    /// or (complete) verify and apply the whole.
    pub(super) fn on_snapshot_range(
        &mut self,
        store: &mut Store,
        snapshot: Option<SealedSnapshot>,
        snapshot_id: [u8; 32],
        total_bytes: u64,
        offset: u64,
    ) -> Result<(), RelaySyncError> {
        let Some(part) = snapshot else {
            self.download = None;
            self.download_target = None;
            self.download_verify_only = false;
            self.snapshot_wanted = false;
            self.pull_wanted = true;
            return Ok(());
        };
        if total_bytes > SNAPSHOT_DOWNLOAD_BYTES_MAX {
            self.download = None;
            return self.snapshot_unreadable(
                store,
                part.device,
                snapshot_id,
                format!(
                    "the relay's snapshot has {total_bytes} bytes, more than {SNAPSHOT_DOWNLOAD_BYTES_MAX}"
                ),
            );
        }
        let have = self
            .download
            .as_ref()
            .map_or(0, |d| d.snapshot.ciphertext.len() as u64);
        let fits = match &self.download {
            None => offset == 0,
            Some(d) => d.id == snapshot_id && d.total_bytes == total_bytes && offset == have,
        };
        let grows = !part.ciphertext.is_empty() || total_bytes == 0;
        if !fits || !grows || have + part.ciphertext.len() as u64 > total_bytes {
            return Err(RelaySyncError::Protocol(format!(
                "snapshot range at {offset} (+{}) does not continue the download at {have} of {total_bytes}",
                part.ciphertext.len()
            )));
        }
        let d = match self.download.take() {
            Some(mut d) => {
                d.snapshot.ciphertext.extend_from_slice(&part.ciphertext);
                d
            }
            None => Download {
                id: snapshot_id,
                total_bytes,
                snapshot: part,
            },
        };
        let done = d.snapshot.ciphertext.len() as u64;
        self.events.push_back(RelayEvent::Progress {
            transfer: Transfer::SnapshotDownload,
            done_bytes: done,
            total_bytes: Some(total_bytes),
            done_entries: 0,
            total_entries: None,
        });
        if done < total_bytes {
            self.download = Some(d);
            self.snapshot_wanted = true;
            return Ok(());
        }
        self.snapshot_wanted = false;
        self.download_target = None;
        let opened = if std::mem::take(&mut self.download_verify_only) {
            self.check_snapshot(store, &d.snapshot)
        } else {
            self.pull_wanted = true;
            self.apply_snapshot(store, &d.snapshot)
        };
        match opened {
            Ok(()) => {
                self.install_candidates.clear();
                // Another device's pending snapshot opened here: the relay
                // may prune (a confirmed one needs no second write).
                if d.snapshot.device != self.id.device_id() && self.pending_snapshot == Some(d.id) {
                    self.send(
                        Request::SnapshotOpened { snapshot_id: d.id },
                        Req::SnapshotOpened,
                    );
                }
                Ok(())
            }
            Err(RelaySyncError::BadSnapshot(reason)) => {
                self.snapshot_unreadable(store, d.snapshot.device, d.id, reason)
            }
            Err(e) => Err(e),
        }
    }

    /// A stored snapshot could not be opened: record the warning, then try
    /// the next candidate, else fall back to the log.
    pub(super) fn snapshot_unreadable(
        &mut self,
        store: &mut Store,
        device: DeviceId,
        snapshot_id: [u8; 32],
        reason: String,
    ) -> Result<(), RelaySyncError> {
        self.tried_snapshots.insert(snapshot_id);
        let reason = format!("snapshot could not be opened: {reason}");
        {
            let txn = store.writable()?.begin_write()?;
            tables::quarantine(&txn, &device, 0, &reason, self.now_ms)?;
            txn.commit().map_err(StoreError::from)?;
        }
        self.events
            .push_back(RelayEvent::SnapshotUnreadable { device, reason });
        self.download = None;
        self.download_target = None;
        if std::mem::take(&mut self.download_verify_only) {
            // A check only: this device has everything already. Its own next
            // snapshot will replace the unreadable one.
            self.snapshot_wanted = false;
            return Ok(());
        }
        match self.install_candidates.pop_front() {
            Some(next) => {
                self.download_target = Some(next);
                self.snapshot_wanted = true;
            }
            None => {
                self.snapshots_exhausted = true;
                self.snapshot_wanted = false;
                self.pull_wanted = true;
            }
        }
        Ok(())
    }

    /// The relay listed its snapshots: pick the one to install (bootstrap),
    /// or decide whether to check another device's pending one or to upload
    /// one of ours.
    pub(super) fn on_snapshots(
        &mut self,
        store: &mut Store,
        confirmed: Option<SnapshotInfo>,
        pending: Option<SnapshotInfo>,
    ) -> Result<(), RelaySyncError> {
        self.pending_snapshot = pending.as_ref().map(|p| p.snapshot_id);
        if self.snapshot_wanted {
            let tried = &self.tried_snapshots;
            let mut candidates: VecDeque<SnapshotInfo> = [pending, confirmed]
                .into_iter()
                .flatten()
                .filter(|s| !tried.contains(&s.snapshot_id))
                .collect();
            match candidates.pop_front() {
                Some(first) => {
                    self.download_target = Some(first);
                    self.install_candidates = candidates;
                }
                None => {
                    // Nothing (left) to install: the log from the start.
                    self.snapshots_exhausted = !self.tried_snapshots.is_empty();
                    self.snapshot_wanted = false;
                    self.pull_wanted = true;
                }
            }
            return Ok(());
        }
        if !std::mem::take(&mut self.snapshot_check_wanted) {
            return Ok(());
        }
        let me = self.id.device_id();
        if let Some(p) = &pending
            && p.device != me
            && !self.tried_snapshots.contains(&p.snapshot_id)
            && self.upload.is_none()
        {
            // Open it (without installing): a snapshot nobody can open is
            // never confirmed, so the relay keeps the log it covers.
            self.tried_snapshots.insert(p.snapshot_id);
            self.download_target = Some(p.clone());
            self.download_verify_only = true;
            self.snapshot_wanted = true;
            return Ok(());
        }
        let base = pending.or(confirmed).map(|s| s.covers).unwrap_or_default();
        self.consider_snapshot(store, &base)
    }

    /// Opens another device's snapshot without installing it: signature,
    /// membership, decryption, payload and every document's save.
    fn check_snapshot(
        &mut self,
        store: &mut Store,
        s: &SealedSnapshot,
    ) -> Result<(), RelaySyncError> {
        let members = membership::state(store, self.id.account_id())?;
        let keys = membership::keys(store)?;
        let p = payload::open_snapshot(&self.id, &members, &keys, s)
            .map_err(|e| RelaySyncError::BadSnapshot(e.to_string()))?;
        for (name, save) in &p.docs {
            name.parse::<DocId>()
                .map_err(|_| RelaySyncError::BadSnapshot(format!("invalid document id {name}")))?;
            automerge::Automerge::load(save)
                .map_err(|e| RelaySyncError::BadSnapshot(format!("document {name}: {e}")))?;
        }
        Ok(())
    }

    pub(super) fn build_snapshot(
        &mut self,
        store: &mut Store,
        covers: Vec<Cursor>,
    ) -> Result<SealedSnapshot, RelaySyncError> {
        store.load_all()?;
        let mut ids: Vec<DocId> = store.docs.keys().copied().collect();
        ids.sort();
        let mut docs = Vec::with_capacity(ids.len());
        for d in ids {
            if let Some(l) = store.docs.get_mut(&d) {
                docs.push((d.to_string(), l.doc.save()));
            }
        }
        let devices = crate::sync::devices::list_devices(store)?
            .into_iter()
            .filter(|d| !d.name.is_empty())
            .map(|d| (d.id, d.name))
            .collect();
        let payload = SnapshotPayload {
            version: PAYLOAD_VERSION,
            name: self.id.device_name().to_owned(),
            devices,
            docs,
        };
        let (epoch, key) = membership::current_key(store, &self.id)?;
        Ok(payload::seal_snapshot(
            &self.id, epoch, &key, covers, &payload,
        )?)
    }

    pub(super) fn apply_snapshot(
        &mut self,
        store: &mut Store,
        s: &SealedSnapshot,
    ) -> Result<(), RelaySyncError> {
        let members = membership::state(store, self.id.account_id())?;
        let keys = membership::keys(store)?;
        let p = payload::open_snapshot(&self.id, &members, &keys, s)
            .map_err(|e| RelaySyncError::BadSnapshot(e.to_string()))?;
        // Names of devices of this account only (the log decides who is one).
        let mut names = p.devices.clone();
        names.push((s.device, p.name.clone()));
        names.retain(|(d, _)| members.is_member(d) || members.revoked_at(d).is_some());
        let cursors: Vec<(DeviceId, u64)> = s.covers.iter().map(|c| (c.device, c.seq)).collect();
        let n = p.docs.len();
        let bytes: usize = p.docs.iter().map(|(_, save)| save.len()).sum();
        let now = self.now_ms;
        let mut docs = Vec::with_capacity(n);
        for (name, save) in p.docs {
            let doc: DocId = name
                .parse()
                .map_err(|_| RelaySyncError::BadSnapshot(format!("invalid document id {name}")))?;
            docs.push((doc, save));
        }
        // Documents, index, cursors (never lowered) and device records commit
        // together: a crash leaves either the old state or all of it.
        let installed = store
            .apply_snapshot_docs(docs, |txn| {
                write_bookkeeping(txn, &cursors, &[], &names, now)
            })
            .map_err(|e| match e {
                StoreError::BadChange { doc, detail, .. } => {
                    RelaySyncError::BadSnapshot(format!("document {doc}: {detail}"))
                }
                StoreError::Schema(e) => RelaySyncError::BadSnapshot(e.to_string()),
                other => RelaySyncError::Store(other),
            })?;
        // Only documents that held nothing of this device: a replaced
        // document may contain its own changes that a peer passed on to the
        // snapshot's author and that this device has not pushed yet.
        let mut fresh = Vec::with_capacity(installed.fresh.len());
        for doc in &installed.fresh {
            fresh.push((*doc, store.heads(*doc)?));
        }
        mark_pushed(store, &fresh)?;
        for (doc, records) in installed.records {
            let (contacts, interactions) = match doc {
                DocId::Main => (records, 0),
                DocId::Log { .. } => (0, records),
            };
            self.events.push_back(RelayEvent::Applied {
                doc,
                contacts,
                interactions,
                pending: 0,
            });
        }
        self.events
            .push_back(RelayEvent::SnapshotApplied { docs: n, bytes });
        Ok(())
    }
}
