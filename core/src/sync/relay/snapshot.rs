//! Snapshots: building and sealing a full state, uploading it whole or in
//! parts, downloading it in ranges and installing it (documents, index,
//! cursors and device records in one transaction).

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
            self.snapshot_wanted = false;
            self.pull_wanted = true;
            return Ok(());
        };
        if total_bytes > SNAPSHOT_DOWNLOAD_BYTES_MAX {
            return Err(RelaySyncError::BadSnapshot(format!(
                "the relay's snapshot has {total_bytes} bytes, more than {SNAPSHOT_DOWNLOAD_BYTES_MAX}"
            )));
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
        self.apply_snapshot(store, &d.snapshot)?;
        self.pull_wanted = true;
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
