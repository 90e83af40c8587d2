//! The `Kith` object: the app's handle on one store directory.
//!
//! It owns the engine (`kith_core::Store`) behind a mutex: redb allows one
//! writer, and the store's methods take `&mut self`, so foreign threads
//! calling at once are serialised here, never inside the engine. The store
//! is an `Arc<Mutex<Store>>` inside a slot mutex: foreign calls lock the slot
//! then the store; sync tasks on Kith's runtime ([`crate::sync`]) hold a
//! clone of the `Arc` and lock only the store, one step at a time. The slot
//! carries the phone lifecycle: `suspend()` stops sync, waits (bounded) until
//! the sync tasks let go of the store, and closes it (releasing redb's file
//! lock, which iOS requires of a suspended app); `resume()` reopens it; calls
//! in between fail with `KithError::Locked`.
//!
//! Each exported method: run under the panic guard, parse the foreign input,
//! lock the slot, call the engine, map errors, unlock, then (for writes)
//! notify the listeners with what changed and poke background sync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kith_core::identity::{FileKeyStore, KeyStore};

use kith_core::ids::{ContactId, FollowUpId, GoalId, InteractionId, ProjectId};
use kith_core::{ContactQuery, FollowUpFilter, Store, TimelineQuery};

use crate::error::{KithError, KithResult};
use crate::guard::guard;
use crate::inputs::{
    ContactPatch, GoalPatch, InteractionPatch, NewContact, NewGoal, NewInteraction, NewProject,
    ProjectPatch,
};
use crate::listener::{ChangeSummary, KithListener, Listeners};
use crate::runtime::run_blocking;
use crate::sync::{SharedStore, SyncHub};
use crate::types::{
    Contact, ContactSort, ContactStats, DuplicatePair, FollowUp, FollowUpItem, Goal, Interaction,
    Project, SearchResults, Settings, parse_date, parse_id,
};

/// Most records one page or search returns: a phone screen shows a few dozen,
/// and a bound keeps one call's memory and time predictable.
pub const PAGE_LIMIT_MAX: u32 = 1_000;

/// How long `suspend()`/`close()` wait for sync tasks to let go of the store,
/// and after how much of it they abort them.
const RELEASE_WAIT_MS: u64 = 5_000;
const RELEASE_ABORT_AFTER_MS: u64 = 1_500;

enum Slot {
    Open(SharedStore),
    Suspended,
    Closed,
}

/// An open Kith store: contacts, interactions, follow-ups, projects, goals,
/// and this device's account and sync.
#[derive(uniffi::Object)]
pub struct Kith {
    data_dir: PathBuf,
    slot: Mutex<Slot>,
    pub(crate) listeners: Arc<Listeners>,
    /// Where this device's key material lives (file or the app's keychain).
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) sync: SyncHub,
}

impl Drop for Kith {
    fn drop(&mut self) {
        // The background loop holds the store: let it end with the handle.
        let _ = self.sync.stop_all();
    }
}

/// Waits until `store` is the last handle on the store, then closes it. A
/// sync task still holding it after the bounded wait (it was stopped and
/// aborted) keeps the file locked until it ends: reported as `Locked`.
fn release(mut store: SharedStore, task: Option<tokio::task::JoinHandle<()>>) -> KithResult<()> {
    let started = Instant::now();
    loop {
        match Arc::try_unwrap(store) {
            Ok(m) => {
                return match m.into_inner() {
                    Ok(s) => s.close().map_err(KithError::from),
                    // Half-changed documents in memory: drop them unsaved.
                    Err(poisoned) => {
                        drop(poisoned.into_inner());
                        Ok(())
                    }
                };
            }
            Err(shared) => store = shared,
        }
        let waited = started.elapsed();
        if waited >= Duration::from_millis(RELEASE_ABORT_AFTER_MS)
            && let Some(t) = &task
        {
            t.abort();
        }
        if waited >= Duration::from_millis(RELEASE_WAIT_MS) {
            return Err(KithError::locked(
                "a sync task still holds the store; it is released when the task ends",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl std::fmt::Debug for Kith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kith")
            .field("data_dir", &self.data_dir)
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

fn check_limit(limit: u32) -> KithResult<usize> {
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(KithError::invalid(
            "limit",
            format!("must be between 1 and {PAGE_LIMIT_MAX} (got {limit})"),
        ));
    }
    Ok(limit as usize)
}

impl Kith {
    /// A handle over an already open store (a restored backup).
    pub(crate) fn from_store(data_dir: PathBuf, store: Store) -> Kith {
        let keys: Arc<dyn KeyStore> = Arc::new(FileKeyStore::in_dir(&data_dir));
        Kith::with_parts(data_dir, store, keys)
    }

    /// A handle over an already open store whose keys live in `keys`.
    pub(crate) fn from_store_with_keys(
        data_dir: PathBuf,
        store: Store,
        keys: Arc<dyn KeyStore>,
    ) -> Kith {
        Kith::with_parts(data_dir, store, keys)
    }

    fn with_parts(data_dir: PathBuf, store: Store, keys: Arc<dyn KeyStore>) -> Kith {
        let listeners = Arc::new(Listeners::default());
        let state = Kith::initial_sync_state(&data_dir, keys.as_ref());
        Kith {
            sync: SyncHub::new(Arc::clone(&listeners), state),
            data_dir,
            slot: Mutex::new(Slot::Open(Arc::new(Mutex::new(store)))),
            listeners,
            keys,
        }
    }

    fn open_with(data_dir: String, keys: Option<Arc<dyn KeyStore>>) -> KithResult<Arc<Kith>> {
        if data_dir.trim().is_empty() {
            return Err(KithError::invalid("data_dir", "must not be empty"));
        }
        let path = PathBuf::from(data_dir);
        let store = Store::open(&path)?;
        let keys = keys.unwrap_or_else(|| Arc::new(FileKeyStore::in_dir(&path)));
        Ok(Arc::new(Kith::with_parts(path, store, keys)))
    }

    pub(crate) fn data_dir_path(&self) -> &Path {
        &self.data_dir
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        let mut slot = match self.slot.lock() {
            Ok(slot) => slot,
            Err(poisoned) => {
                self.slot.clear_poison();
                let mut slot = poisoned.into_inner();
                self.reload(&mut slot);
                return slot;
            }
        };
        // A panic in a sync task while it held the store poisons only the
        // store's mutex.
        if matches!(&*slot, Slot::Open(s) if s.is_poisoned()) {
            self.reload(&mut slot);
        }
        slot
    }

    /// A panic (caught by the guard or the runtime) interrupted an operation
    /// while it held the store. Its redb transaction never committed, so the
    /// file holds the last acknowledged state, but documents in memory may
    /// be half-changed: drop them and reload from disk.
    fn reload(&self, slot: &mut Slot) {
        let Slot::Open(store) = std::mem::replace(slot, Slot::Suspended) else {
            return;
        };
        // Releasing the old store first frees its file lock.
        if let Err(e) = release(store, self.sync.stop_all()) {
            // Left suspended: calls fail with `Locked`; `resume()` retries.
            tracing::error!("reloading the store after a panic failed: {e}");
            return;
        }
        match Store::open(&self.data_dir) {
            Ok(store) => *slot = Slot::Open(Arc::new(Mutex::new(store))),
            Err(e) => tracing::error!("reloading the store after a panic failed: {e}"),
        }
    }

    /// The store as sync tasks share it, or `Locked` when suspended/closed.
    pub(crate) fn shared_store(&self) -> KithResult<SharedStore> {
        match &*self.slot() {
            Slot::Open(store) => Ok(Arc::clone(store)),
            Slot::Suspended => Err(KithError::locked(
                "the store is suspended (call resume() first)",
            )),
            Slot::Closed => Err(KithError::locked("the store is closed (open it again)")),
        }
    }

    /// After a local write: tell the listeners, and let background sync push it.
    pub(crate) fn local_changed(&self, summary: &ChangeSummary) {
        self.listeners.changed(summary);
        self.sync.local_write();
    }

    /// Runs `f` on the open store, or fails with `Locked` when suspended/closed.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> KithResult<T>,
    ) -> KithResult<T> {
        let slot = self.slot();
        match &*slot {
            Slot::Open(store) => f(&mut store.lock().unwrap_or_else(PoisonError::into_inner)),
            Slot::Suspended => Err(KithError::locked(
                "the store is suspended (call resume() first)",
            )),
            Slot::Closed => Err(KithError::locked("the store is closed (open it again)")),
        }
    }

    /// A write: runs `f` on the store, then notifies listeners (lock released).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Store) -> KithResult<T>,
        changed: impl FnOnce(&T) -> ChangeSummary,
    ) -> KithResult<T> {
        let value = self.with_store(f)?;
        self.local_changed(&changed(&value));
        Ok(value)
    }
}

#[uniffi::export]
impl Kith {
    // ------------------------------------------------------------ lifecycle

    /// Opens (creating when missing) the store in `data_dir`. The store
    /// opens for reading and takes the file's exclusive lock at its first
    /// write: `open` fails with `Locked` while another handle (or process)
    /// holds it for writing, and a write fails with `Locked` while another
    /// handle has the file open.
    #[uniffi::constructor]
    pub fn open(data_dir: String) -> KithResult<Arc<Kith>> {
        guard("open", || Kith::open_with(data_dir, None))
    }

    /// Like `open`, with this device's key material kept by the app's
    /// `key_store` (Keychain, Keystore) instead of `keys.json` in `data_dir`.
    #[uniffi::constructor]
    pub fn open_with_key_store(
        data_dir: String,
        key_store: Arc<dyn crate::account::KithKeyStore>,
    ) -> KithResult<Arc<Kith>> {
        guard("open_with_key_store", || {
            Kith::open_with(
                data_dir,
                Some(Arc::new(crate::account::ForeignKeyStore(key_store))),
            )
        })
    }

    /// The directory this store lives in.
    pub fn data_dir(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// Stops sync and closes the store, releasing its file lock. Later calls
    /// fail with `Locked`; closing twice is fine.
    pub fn close(&self) -> KithResult<()> {
        guard("close", || {
            let (store, task) = {
                let mut slot = self.slot();
                let task = self.sync.stop_all();
                match std::mem::replace(&mut *slot, Slot::Closed) {
                    Slot::Open(store) => (store, task),
                    Slot::Suspended | Slot::Closed => return Ok(()),
                }
            };
            // Waited for without the slot lock: a sync task's listener that
            // calls back in gets `Locked` at once instead of blocking the wait.
            release(store, task)
        })
    }

    /// Stops sync (the loop and any running round) and releases the store's
    /// file lock while the app is in the background (iOS kills suspended
    /// apps that hold one). Idempotent. After `resume()`, call
    /// `start_sync()` again.
    pub fn suspend(&self) -> KithResult<()> {
        guard("suspend", || {
            let (store, task) = {
                let mut slot = self.slot();
                let task = self.sync.stop_all();
                match std::mem::replace(&mut *slot, Slot::Suspended) {
                    Slot::Open(store) => (store, task),
                    Slot::Suspended => return Ok(()),
                    Slot::Closed => {
                        *slot = Slot::Closed;
                        return Err(KithError::locked("the store is closed (open it again)"));
                    }
                }
            };
            release(store, task)
        })
    }

    /// Retakes the store after `suspend()`. Idempotent.
    pub fn resume(&self) -> KithResult<()> {
        guard("resume", || {
            let mut slot = self.slot();
            match &*slot {
                Slot::Open(_) => Ok(()),
                Slot::Closed => Err(KithError::locked("the store is closed (open it again)")),
                Slot::Suspended => {
                    let store = Store::open(&self.data_dir)?;
                    *slot = Slot::Open(Arc::new(Mutex::new(store)));
                    Ok(())
                }
            }
        })
    }

    /// Whether the store is suspended.
    pub fn is_suspended(&self) -> bool {
        matches!(*self.slot(), Slot::Suspended)
    }

    // ------------------------------------------------------------ listeners

    /// Registers a listener for changes; it immediately gets the current sync
    /// state. Returns the handle for `remove_listener`.
    pub fn add_listener(&self, listener: Arc<dyn KithListener>) -> KithResult<u64> {
        guard("add_listener", || {
            let handle = self.listeners.add(Arc::clone(&listener))?;
            Listeners::sync_state_to(listener.as_ref(), self.sync.shared.state());
            Ok(handle)
        })
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove_listener(&self, handle: u64) -> bool {
        self.listeners.remove(handle)
    }

    // ------------------------------------------------------------ contacts

    /// Adds a contact.
    pub fn add_contact(&self, contact: NewContact) -> KithResult<Contact> {
        guard("add_contact", || {
            let new = contact.into_op()?;
            self.write(
                |s| Ok(Contact::from(s.add_contact(new)?)),
                |c| ChangeSummary::contacts([&c.id]),
            )
        })
    }

    /// Changes some fields of a contact.
    pub fn edit_contact(&self, id: String, patch: ContactPatch) -> KithResult<Contact> {
        guard("edit_contact", || {
            let id: ContactId = parse_id("id", &id)?;
            let op = patch.into_op()?;
            self.write(
                |s| Ok(Contact::from(s.edit_contact(id, op)?)),
                |c| ChangeSummary::contacts([&c.id]),
            )
        })
    }

    /// One contact (also when archived or merged away).
    pub fn get_contact(&self, id: String) -> KithResult<Contact> {
        guard("get_contact", || {
            let id: ContactId = parse_id("id", &id)?;
            self.with_store(|s| Ok(s.contact(id)?.into()))
        })
    }

    /// A page of the contact list.
    #[uniffi::method(default(offset = 0, limit = 50, include_archived = false))]
    pub fn list_contacts(
        &self,
        sort: ContactSort,
        offset: u32,
        limit: u32,
        include_archived: bool,
    ) -> KithResult<Vec<Contact>> {
        guard("list_contacts", || {
            let q = ContactQuery {
                sort: sort.into(),
                include_archived,
                offset: offset as usize,
                limit: check_limit(limit)?,
            };
            self.with_store(|s| Ok(s.contacts(&q)?.into_iter().map(Into::into).collect()))
        })
    }

    /// How often and how recently I met a contact.
    pub fn contact_stats(&self, id: String) -> KithResult<ContactStats> {
        guard("contact_stats", || {
            let id: ContactId = parse_id("id", &id)?;
            self.with_store(|s| {
                s.contact(id)?;
                Ok(s.contact_stats(id)?.into())
            })
        })
    }

    /// Archives a contact: hidden from the default list, history kept.
    pub fn archive_contact(&self, id: String) -> KithResult<Contact> {
        guard("archive_contact", || {
            let id: ContactId = parse_id("id", &id)?;
            self.write(
                |s| Ok(Contact::from(s.archive_contact(id)?)),
                |c| ChangeSummary::contacts([&c.id]),
            )
        })
    }

    /// Brings an archived contact back.
    pub fn unarchive_contact(&self, id: String) -> KithResult<Contact> {
        guard("unarchive_contact", || {
            let id: ContactId = parse_id("id", &id)?;
            self.write(
                |s| Ok(Contact::from(s.unarchive_contact(id)?)),
                |c| ChangeSummary::contacts([&c.id]),
            )
        })
    }

    /// Merges the contact `duplicate_id` into `keep_id`: every reference
    /// resolves to the kept contact, the duplicate records `merged_into`.
    /// Returns the kept contact. Undo with [`Kith::unmerge_contact`].
    pub fn merge_contacts(&self, keep_id: String, duplicate_id: String) -> KithResult<Contact> {
        guard("merge_contacts", || {
            let keep: ContactId = parse_id("keep_id", &keep_id)?;
            let dup: ContactId = parse_id("duplicate_id", &duplicate_id)?;
            let (kept, moved) = self.with_store(|s| {
                let moved: Vec<InteractionId> = s
                    .timeline(&TimelineQuery {
                        contact: Some(dup),
                        include_deleted: true,
                        offset: 0,
                        limit: kith_core::ops::PAGE_MAX,
                    })?
                    .into_iter()
                    .map(|i| i.id)
                    .collect();
                Ok((Contact::from(s.merge_contacts(keep, dup)?), moved))
            })?;
            self.local_changed(&ChangeSummary {
                contact_ids: vec![kept.id.clone(), dup.to_string()],
                interaction_ids: moved.iter().map(ToString::to_string).collect(),
                ..ChangeSummary::default()
            });
            Ok(kept)
        })
    }

    /// Undoes the merge of `contact_id`: it is a separate contact again, with
    /// its own fields and the interactions, exchanges and goals that name it
    /// (and the contacts merged into it). Syncs like any change. Returns it;
    /// `Conflict` when it is not merged.
    pub fn unmerge_contact(&self, contact_id: String) -> KithResult<Contact> {
        guard("unmerge_contact", || {
            let id: ContactId = parse_id("contact_id", &contact_id)?;
            let (back, survivor, moved) = self.with_store(|s| {
                let survivor = s.contact(id)?.merged_into;
                let back = Contact::from(s.unmerge_contact(id)?);
                let moved: Vec<InteractionId> = s
                    .timeline(&TimelineQuery {
                        contact: Some(id),
                        include_deleted: true,
                        offset: 0,
                        limit: kith_core::ops::PAGE_MAX,
                    })?
                    .into_iter()
                    .map(|i| i.id)
                    .collect();
                Ok((back, survivor, moved))
            })?;
            let mut contact_ids = vec![back.id.clone()];
            contact_ids.extend(survivor.map(|s| s.to_string()));
            self.local_changed(&ChangeSummary {
                contact_ids,
                interaction_ids: moved.iter().map(ToString::to_string).collect(),
                ..ChangeSummary::default()
            });
            Ok(back)
        })
    }

    /// Pairs of contacts that are likely the same person.
    pub fn likely_duplicates(&self) -> KithResult<Vec<DuplicatePair>> {
        guard("likely_duplicates", || {
            self.with_store(|s| Ok(s.likely_duplicates()?.into_iter().map(Into::into).collect()))
        })
    }

    // ------------------------------------------------------------ interactions

    /// Logs an interaction; durable when this returns. Returns its id.
    pub fn log_interaction(&self, interaction: NewInteraction) -> KithResult<String> {
        guard("log_interaction", || {
            let new = interaction.into_op()?;
            let logged = self.with_store(|s| Ok(s.log_interaction(new)?))?;
            // Participants named but missing may have been created in the same write.
            self.local_changed(&ChangeSummary {
                contact_ids: logged
                    .participants
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                interaction_ids: vec![logged.id.to_string()],
                ..ChangeSummary::default()
            });
            Ok(logged.id.to_string())
        })
    }

    /// One interaction (also when deleted).
    pub fn get_interaction(&self, id: String) -> KithResult<Interaction> {
        guard("get_interaction", || {
            let id: InteractionId = parse_id("id", &id)?;
            self.with_store(|s| Ok(s.interaction(id)?.into()))
        })
    }

    /// Changes some fields of an interaction.
    pub fn edit_interaction(&self, id: String, patch: InteractionPatch) -> KithResult<Interaction> {
        guard("edit_interaction", || {
            let id: InteractionId = parse_id("id", &id)?;
            let op = patch.into_op()?;
            self.write(
                |s| Ok(Interaction::from(s.edit_interaction(id, op)?)),
                ChangeSummary::interaction,
            )
        })
    }

    /// Deletes an interaction (a tombstone: `undelete_interaction` restores it).
    pub fn delete_interaction(&self, id: String) -> KithResult<Interaction> {
        guard("delete_interaction", || {
            let id: InteractionId = parse_id("id", &id)?;
            self.write(
                |s| Ok(Interaction::from(s.delete_interaction(id)?)),
                ChangeSummary::interaction,
            )
        })
    }

    /// Restores a deleted interaction.
    pub fn undelete_interaction(&self, id: String) -> KithResult<Interaction> {
        guard("undelete_interaction", || {
            let id: InteractionId = parse_id("id", &id)?;
            self.write(
                |s| Ok(Interaction::from(s.undelete_interaction(id)?)),
                ChangeSummary::interaction,
            )
        })
    }

    /// Interactions newest first, of one contact or (`None`) of everyone.
    #[uniffi::method(default(contact_id = None, offset = 0, limit = 20, include_deleted = false))]
    pub fn timeline(
        &self,
        contact_id: Option<String>,
        offset: u32,
        limit: u32,
        include_deleted: bool,
    ) -> KithResult<Vec<Interaction>> {
        guard("timeline", || {
            let q = TimelineQuery {
                contact: contact_id
                    .as_deref()
                    .map(|c| parse_id("contact_id", c))
                    .transpose()?,
                include_deleted,
                offset: offset as usize,
                limit: check_limit(limit)?,
            };
            self.with_store(|s| Ok(s.timeline(&q)?.into_iter().map(Into::into).collect()))
        })
    }

    /// Prefix search over names, organisations, summaries and notes,
    /// ignoring case and accents.
    #[uniffi::method(default(limit = 20))]
    pub fn search(&self, text: String, limit: u32) -> KithResult<SearchResults> {
        guard("search", || {
            let limit = check_limit(limit)?;
            self.with_store(|s| Ok(s.search(&text, limit)?.into()))
        })
    }

    // ------------------------------------------------------------ follow-ups

    /// Adds a follow-up to an interaction. `due` is an ISO date.
    #[uniffi::method(default(due = None))]
    pub fn add_follow_up(
        &self,
        interaction_id: String,
        text: String,
        due: Option<String>,
    ) -> KithResult<FollowUp> {
        guard("add_follow_up", || {
            let iid: InteractionId = parse_id("interaction_id", &interaction_id)?;
            let new = crate::inputs::NewFollowUp { text, due }.into_op()?;
            self.write(
                |s| Ok(FollowUp::from_model(iid, s.add_follow_up(iid, new)?)),
                |f| ChangeSummary::interactions([&f.interaction_id]),
            )
        })
    }

    /// Marks a follow-up done.
    pub fn complete_follow_up(
        &self,
        interaction_id: String,
        follow_up_id: String,
    ) -> KithResult<FollowUp> {
        guard("complete_follow_up", || {
            let iid: InteractionId = parse_id("interaction_id", &interaction_id)?;
            let fid: FollowUpId = parse_id("follow_up_id", &follow_up_id)?;
            self.write(
                |s| Ok(FollowUp::from_model(iid, s.complete_follow_up(iid, fid)?)),
                |f| ChangeSummary::interactions([&f.interaction_id]),
            )
        })
    }

    /// Marks a done follow-up open again.
    pub fn reopen_follow_up(
        &self,
        interaction_id: String,
        follow_up_id: String,
    ) -> KithResult<FollowUp> {
        guard("reopen_follow_up", || {
            let iid: InteractionId = parse_id("interaction_id", &interaction_id)?;
            let fid: FollowUpId = parse_id("follow_up_id", &follow_up_id)?;
            self.write(
                |s| Ok(FollowUp::from_model(iid, s.reopen_follow_up(iid, fid)?)),
                |f| ChangeSummary::interactions([&f.interaction_id]),
            )
        })
    }

    /// Every open follow-up, soonest due first (undated ones last).
    pub fn open_follow_ups(&self) -> KithResult<Vec<FollowUpItem>> {
        guard("open_follow_ups", || {
            self.with_store(|s| {
                Ok(s.follow_ups(FollowUpFilter::Open)?
                    .into_iter()
                    .map(Into::into)
                    .collect())
            })
        })
    }

    /// Open follow-ups due on or before `date` (ISO `YYYY-MM-DD`).
    pub fn follow_ups_due_by(&self, date: String) -> KithResult<Vec<FollowUpItem>> {
        guard("follow_ups_due_by", || {
            let date = parse_date("date", &date)?;
            self.with_store(|s| {
                Ok(s.follow_ups(FollowUpFilter::DueBy(date))?
                    .into_iter()
                    .map(Into::into)
                    .collect())
            })
        })
    }

    /// Open follow-ups due strictly before `today` (ISO `YYYY-MM-DD`).
    pub fn overdue_follow_ups(&self, today: String) -> KithResult<Vec<FollowUpItem>> {
        guard("overdue_follow_ups", || {
            let today = parse_date("today", &today)?;
            self.with_store(|s| {
                Ok(s.follow_ups(FollowUpFilter::Overdue { today })?
                    .into_iter()
                    .map(Into::into)
                    .collect())
            })
        })
    }

    // ------------------------------------------------------------ projects

    /// Adds a project or shared activity.
    pub fn add_project(&self, project: NewProject) -> KithResult<Project> {
        guard("add_project", || {
            let new = project.into_op();
            self.write(
                |s| Ok(Project::from(s.add_project(new)?)),
                |p| ChangeSummary {
                    project_ids: vec![p.id.clone()],
                    ..ChangeSummary::default()
                },
            )
        })
    }

    /// Changes some fields of a project.
    pub fn edit_project(&self, id: String, patch: ProjectPatch) -> KithResult<Project> {
        guard("edit_project", || {
            let id: ProjectId = parse_id("id", &id)?;
            let op = patch.into_op();
            self.write(
                |s| Ok(Project::from(s.edit_project(id, op)?)),
                |p| ChangeSummary {
                    project_ids: vec![p.id.clone()],
                    ..ChangeSummary::default()
                },
            )
        })
    }

    /// One project.
    pub fn get_project(&self, id: String) -> KithResult<Project> {
        guard("get_project", || {
            let id: ProjectId = parse_id("id", &id)?;
            self.with_store(|s| Ok(s.project(id)?.into()))
        })
    }

    /// Every project.
    pub fn list_projects(&self) -> KithResult<Vec<Project>> {
        guard("list_projects", || {
            self.with_store(|s| Ok(s.all_projects()?.into_iter().map(Into::into).collect()))
        })
    }

    // ------------------------------------------------------------ goals

    /// Adds a goal.
    pub fn add_goal(&self, goal: NewGoal) -> KithResult<Goal> {
        guard("add_goal", || {
            let new = goal.into_op()?;
            self.write(
                |s| Ok(Goal::from(s.add_goal(new)?)),
                |g| ChangeSummary {
                    goal_ids: vec![g.id.clone()],
                    ..ChangeSummary::default()
                },
            )
        })
    }

    /// Changes some fields of a goal.
    pub fn edit_goal(&self, id: String, patch: GoalPatch) -> KithResult<Goal> {
        guard("edit_goal", || {
            let id: GoalId = parse_id("id", &id)?;
            let op = patch.into_op()?;
            self.write(
                |s| Ok(Goal::from(s.edit_goal(id, op)?)),
                |g| ChangeSummary {
                    goal_ids: vec![g.id.clone()],
                    ..ChangeSummary::default()
                },
            )
        })
    }

    /// One goal.
    pub fn get_goal(&self, id: String) -> KithResult<Goal> {
        guard("get_goal", || {
            let id: GoalId = parse_id("id", &id)?;
            self.with_store(|s| Ok(s.goal(id)?.into()))
        })
    }

    /// Every goal.
    pub fn list_goals(&self) -> KithResult<Vec<Goal>> {
        guard("list_goals", || {
            self.with_store(|s| Ok(s.all_goals()?.into_iter().map(Into::into).collect()))
        })
    }

    // ------------------------------------------------------------ settings

    /// The current settings (defaults until changed).
    pub fn get_settings(&self) -> KithResult<Settings> {
        guard("get_settings", || {
            self.with_store(|s| Ok(s.settings()?.into()))
        })
    }

    /// Replaces the settings; returns them as stored (names trimmed).
    pub fn set_settings(&self, settings: Settings) -> KithResult<Settings> {
        guard("set_settings", || {
            let mut new: kith_core::model::Settings = settings.into();
            self.write(
                |s| {
                    new.dismissed_events = s.settings()?.dismissed_events;
                    Ok(Settings::from(s.set_settings(new)?))
                },
                |_| ChangeSummary {
                    settings: true,
                    ..ChangeSummary::default()
                },
            )
        })
    }

    // ------------------------------------------------------------ maintenance (async)

    /// Rebuilds the query index from the documents (after a crash report or a
    /// damaged index). Runs on Kith's runtime: the caller awaits it without
    /// blocking its thread. Listeners hear nothing: the data is unchanged.
    pub async fn reindex(self: Arc<Self>) -> KithResult<()> {
        run_blocking("reindex", move || self.with_store(|s| Ok(s.reindex()?))).await
    }

    /// Verifies the store without writing: every document's chunks against
    /// their checksums and every index table against a rebuild. Index rows
    /// that differ are what `reindex` repairs; damaged documents it cannot
    /// (restore them from a backup or another device).
    pub async fn check_store(self: Arc<Self>) -> KithResult<StoreCheckReport> {
        run_blocking("check_store", move || {
            self.with_store(|s| {
                let r = s.check()?;
                Ok(StoreCheckReport {
                    documents: r.documents as u64,
                    clean: r.is_clean(),
                    damaged_documents: r
                        .damaged_documents
                        .iter()
                        .map(|(d, why)| format!("{d}: {why}"))
                        .collect(),
                    index_tables_reindex_repairs: r
                        .index_tables
                        .iter()
                        .map(|t| {
                            format!(
                                "{}: {} missing or altered rows, {} extra rows",
                                t.table, t.missing_rows, t.extra_rows
                            )
                        })
                        .collect(),
                })
            })
        })
        .await
    }

    /// Search, awaited without blocking the caller's thread (for a search box
    /// that queries on every keystroke from the UI thread).
    #[uniffi::method(default(limit = 20))]
    pub async fn search_async(
        self: Arc<Self>,
        text: String,
        limit: u32,
    ) -> KithResult<SearchResults> {
        run_blocking("search_async", move || self.search(text, limit)).await
    }
}

/// Rust-only (not exported over FFI): lets the Rust tests wait for a
/// stopped background loop to finish closing instead of sleeping.
impl Kith {
    #[doc(hidden)]
    pub fn sync_loops_alive(&self) -> usize {
        self.sync.loops_alive()
    }
}

/// Hidden test hooks, compiled only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
impl Kith {
    /// Panics inside an exported method, to prove the panic guard.
    pub fn debug_panic(&self, message: String) -> KithResult<()> {
        guard("debug_panic", || {
            #[allow(clippy::panic)]
            {
                panic!("{message}")
            }
        })
    }

    /// Panics while holding the store lock, to prove the store stays usable.
    pub fn debug_panic_holding_store(&self) -> KithResult<()> {
        guard("debug_panic_holding_store", || {
            self.with_store(|_| {
                #[allow(clippy::panic)]
                {
                    panic!("panic while holding the store")
                }
            })
        })
    }
}

/// What `check_store` found.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoreCheckReport {
    /// Documents examined.
    pub documents: u64,
    /// Nothing damaged and the index matches the documents.
    pub clean: bool,
    /// Documents that fail their checksums ("id: why"): restore from a
    /// backup or another device; `reindex` cannot repair them.
    pub damaged_documents: Vec<String>,
    /// Index tables that differ from the documents ("table: counts"):
    /// `reindex` repairs them.
    pub index_tables_reindex_repairs: Vec<String>,
}
