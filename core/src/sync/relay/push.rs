//! Pushing: sealing this device's own new changes into the durable outbox
//! (consecutive seqs, one transaction), sending outbox batches, handling
//! acknowledgements, and the relay's heads (a restored device continues
//! after its own head instead of forking its log).

use super::*;

impl RelaySync {
    pub(super) fn outbox_first(&self, store: &mut Store) -> Result<Option<u64>, StoreError> {
        tables::outbox_first(&store.read_txn()?)
    }

    pub(super) fn ack(&mut self, store: &mut Store, seq: u64) -> Result<(), StoreError> {
        let txn = store.writable()?.begin_write()?;
        tables::outbox_ack(&txn, seq)?;
        txn.commit()?;
        Ok(())
    }

    pub(super) fn on_heads(
        &mut self,
        store: &mut Store,
        heads: &[Cursor],
        floors: &[Cursor],
    ) -> Result<(), RelaySyncError> {
        let me = self.id.device_id();
        self.remote_heads = heads.to_vec();
        let my_head = heads.iter().find(|c| c.device == me).map_or(0, |c| c.seq);
        // The relay holds our entries up to its head: whatever of them is
        // still in the outbox lost its acknowledgement (never re-seal those).
        if self.outbox_first(store)?.is_some_and(|f| f <= my_head) {
            self.ack(store, my_head)?;
        }
        let st = read_status(store)?;
        if !self.own_head_known {
            self.own_head_known = true;
            if st.sealed_seq < my_head {
                // This store is new but the device key pushed before (restored
                // keys): continue after the relay's head instead of forking,
                // fetch the device's own entries (they may hold changes made
                // after the backup) and re-seal everything the store holds
                // once (changes made before the backup under the former store
                // actor may never have been pushed).
                let txn = store.writable()?.begin_write()?;
                tables::put_u64(&txn, tables::META_NEXT_SEQ, my_head + 1)?;
                tables::put_u64(&txn, tables::META_ACKED_SEQ, my_head)?;
                tables::put_u64(&txn, tables::META_OWN_CATCHUP_SEQ, my_head)?;
                tables::put_u64(&txn, tables::META_SEAL_ALL_ACTORS, 1)?;
                txn.commit().map_err(StoreError::from)?;
                self.pull_wanted = true;
            } else if my_head < st.acked_seq {
                // The relay lost entries it had acknowledged (restored from
                // an older backup): push them again, byte for byte.
                self.heal_relay(store, my_head + 1, st.acked_seq)?;
            }
            self.push_wanted = true;
            return Ok(());
        }
        let floor = |d: &DeviceId| floors.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
        let tail: u64 = heads
            .iter()
            .map(|c| c.seq.saturating_sub(floor(&c.device)))
            .sum();
        let worth = tail >= self.cfg.snapshot_tail_entries_min
            || (self.session_bytes >= self.cfg.snapshot_tail_bytes_min && tail >= 2);
        if !worth || self.upload.is_some() {
            return Ok(());
        }
        // The floors stay where they are while a newer snapshot is pending:
        // ask which snapshots the relay holds before making another one
        // (`on_snapshots` then checks a pending one, or measures against
        // the newest and calls `consider_snapshot`).
        self.snapshot_check_wanted = true;
        Ok(())
    }

    /// Uploads a snapshot if the relay's log grew enough past `base` (the
    /// newest stored snapshot's covers) and this device is fully caught up.
    pub(super) fn consider_snapshot(
        &mut self,
        store: &mut Store,
        base: &[Cursor],
    ) -> Result<(), RelaySyncError> {
        let me = self.id.device_id();
        let heads = self.remote_heads.clone();
        let st = read_status(store)?;
        let floor = |d: &DeviceId| base.iter().find(|c| c.device == *d).map_or(0, |c| c.seq);
        let tail: u64 = heads
            .iter()
            .map(|c| c.seq.saturating_sub(floor(&c.device)))
            .sum();
        let worth = tail >= self.cfg.snapshot_tail_entries_min
            || (self.session_bytes >= self.cfg.snapshot_tail_bytes_min && tail >= 2);
        if !worth || self.upload.is_some() {
            return Ok(());
        }
        // Only a fully caught-up device may cover the log: every entry up to
        // the relay's heads is in its documents.
        let cursor = |d: &DeviceId| {
            if *d == me {
                st.acked_seq
            } else {
                st.cursors
                    .iter()
                    .find(|c| c.device == *d)
                    .map_or(0, |c| c.seq)
            }
        };
        let caught_up = heads.iter().all(|h| cursor(&h.device) >= h.seq);
        if !caught_up
            || st.pending_changes > 0
            || st.partial_entries > 0
            || st.outbox_entries > 0
            || self.pull_wanted
        {
            self.events.push_back(RelayEvent::SnapshotSkipped {
                reason: "not fully caught up with the relay".into(),
            });
            return Ok(());
        }
        let covers: Vec<Cursor> = heads.iter().filter(|h| h.seq > 0).copied().collect();
        let snapshot = self.build_snapshot(store, covers)?;
        let size = postcard::experimental::serialized_size(&snapshot).unwrap_or(usize::MAX);
        if size + 64 > self.frame_bytes_max {
            if self.version >= 2 {
                self.start_upload(snapshot);
            } else {
                self.events.push_back(RelayEvent::SnapshotSkipped {
                    reason: format!(
                        "snapshot of {size} bytes exceeds the relay's frame limit of {} bytes (and the relay speaks protocol 1: no fragmented upload)",
                        self.frame_bytes_max
                    ),
                });
            }
            return Ok(());
        }
        self.send(
            Request::PutSnapshot { snapshot },
            Req::PutSnapshot { bytes: size },
        );
        Ok(())
    }

    /// Requeues this device's acknowledged entries `from..=to` (kept in
    /// `sync_sent`) for a relay that lost them; [`RelaySyncError::RelayBehind`]
    /// if they are not all kept.
    pub(super) fn heal_relay(
        &mut self,
        store: &mut Store,
        from: u64,
        to: u64,
    ) -> Result<(), RelaySyncError> {
        let txn = store.writable()?.begin_write()?;
        if !tables::requeue_sent(&txn, from, to)? {
            txn.abort().map_err(StoreError::from)?;
            return Err(RelaySyncError::RelayBehind {
                expected: from,
                first: to + 1,
            });
        }
        txn.commit().map_err(StoreError::from)?;
        self.events.push_back(RelayEvent::RelayHealed {
            from_seq: from,
            to_seq: to,
        });
        self.push_wanted = true;
        Ok(())
    }

    /// Seals this device's new changes into the outbox (one transaction).
    pub(super) fn seal_new(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        let pushed: HashMap<String, Vec<ChangeHash>> = tables::pushed_heads(&store.read_txn()?)?;
        let mut bodies = Vec::new();
        let mut new_heads = Vec::new();
        let all_actors = tables::read_flag(&store.read_txn()?, tables::META_SEAL_ALL_ACTORS)?;
        for doc in store.doc_ids()? {
            let name = doc.to_string();
            let base = pushed.get(&name).cloned().unwrap_or_default();
            let mine = if all_actors {
                store.changes_since(doc, &base)?
            } else {
                store.my_changes_since(doc, &base)?
            };
            let heads = store.heads(doc)?;
            if heads != base {
                new_heads.push((name.clone(), heads));
            }
            if !mine.is_empty() {
                bodies.extend(payload::bodies_for(&name, compress(mine)));
            }
        }
        if bodies.is_empty() && new_heads.is_empty() && !all_actors {
            return Ok(());
        }
        let (epoch, key) = membership::current_key(store, &self.id)?;
        let txn = store.writable()?.begin_write()?;
        if all_actors {
            tables::clear_flag(&txn, tables::META_SEAL_ALL_ACTORS)?;
        }
        let mut next = tables::get_u64(&txn, tables::META_NEXT_SEQ)?.max(1);
        for body in bodies {
            let e = payload::seal_entry(&self.id, epoch, &key, next, body)?;
            tables::outbox_put(&txn, next, &e)?;
            next += 1;
        }
        for (name, heads) in &new_heads {
            tables::set_pushed_heads(&txn, name, heads, false)?;
        }
        tables::put_u64(&txn, tables::META_NEXT_SEQ, next)?;
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Sends the oldest outbox entries (sealing new ones first if it is empty).
    pub(super) fn push(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        if self.outbox_first(store)?.is_none() {
            self.seal_new(store)?;
        }
        let budget = self
            .cfg
            .push_bytes_max
            .min(self.frame_bytes_max.saturating_sub(4096));
        let entries = tables::outbox_batch(
            &store.read_txn()?,
            budget,
            kith_protocol::msg::PUSH_ENTRIES_MAX,
            200,
        )?;
        if entries.is_empty() {
            self.push_wanted = false;
            return Ok(());
        }
        let n = entries.len();
        let b: usize = entries.iter().map(|e| e.ciphertext.len()).sum();
        self.send(
            Request::Push { entries },
            Req::Push {
                entries: n,
                bytes: b,
            },
        );
        Ok(())
    }

    /// Re-seals every outbox entry sealed under an older epoch under the
    /// current one (same seq: the relay refused them, so no fork), after the
    /// relay said `EpochStale` and the membership log caught up.
    pub(super) fn reseal_outbox(&mut self, store: &mut Store) -> Result<(), RelaySyncError> {
        let (epoch, key) = membership::current_key(store, &self.id)?;
        let members = membership::state(store, self.id.account_id())?;
        let keys = membership::keys(store)?;
        let stale: Vec<SealedEntry> = tables::outbox_all(&store.read_txn()?)?
            .into_iter()
            .filter(|e| e.epoch != epoch)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let txn = store.writable()?.begin_write()?;
        for e in stale {
            let p = payload::open_entry(&self.id, &members, &keys, &e).map_err(|reason| {
                RelaySyncError::BadEntry {
                    device: e.device,
                    seq: e.seq,
                    reason,
                }
            })?;
            let fresh = payload::seal_entry(&self.id, epoch, &key, e.seq, p.body)?;
            tables::outbox_put(&txn, e.seq, &fresh)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }
}
