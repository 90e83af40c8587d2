//! The `Kith` object: the app's handle on one store directory.
//!
//! Every handle opened on one folder in this process shares one [`Engine`]
//! (a registry keyed by the canonical path, held weakly, so the engine ends
//! with its last handle): the store, the listeners, the key store and the
//! sync hub. The engine owns `kith_core::Store` behind a mutex: redb allows one
//! writer, and the store's methods take `&mut self`, so foreign threads
//! calling at once are serialised here, never inside the engine. The store
//! is an `Arc<Mutex<Store>>` inside a slot mutex: foreign calls lock the slot
//! then the store; sync tasks on Kith's runtime ([`crate::sync`]) hold a
//! clone of the `Arc` and lock only the store, one step at a time.
//!
//! The phone lifecycle is a counted lease: each handle is in the foreground
//! or the background. When no handle is in the foreground, the engine stops
//! sync, waits (bounded) until the sync tasks let go of the store, and closes
//! it (releasing redb's file lock, which iOS requires of a suspended app);
//! calls then fail with `KithError::Locked` until a handle comes back to the
//! foreground (or a new one opens), which reopens the store and restarts sync
//! if it ran. The last handle's `close()` closes the store for good.
//!
//! Each exported method: run under the panic guard, parse the foreign input,
//! lock the slot, call the engine, map errors, unlock, then (for writes)
//! notify the listeners with what changed and poke background sync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
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
    Project, SearchResults, Settings, non_negative, parse_date, parse_id, to_i64,
};

/// Most records one page or search returns: a phone screen shows a few dozen,
/// and a bound keeps one call's memory and time predictable.
pub const PAGE_LIMIT_MAX: i32 = 1_000;

/// How long releasing or closing the store waits for sync tasks to let go of it,
/// and after how much of it they abort them.
const RELEASE_WAIT_MS: u64 = 5_000;
const RELEASE_ABORT_AFTER_MS: u64 = 1_500;
/// Longest wait `open_waiting` allows for another process's lock: an extension has seconds,
/// not minutes, before the system ends it.
pub(crate) const LOCK_WAIT_MS_MAX: u64 = 10_000;

enum Slot {
    Open(SharedStore),
    Suspended,
    Closed,
}

/// What one store folder has in this process, shared by every [`Kith`] handle opened on it:
/// the engine, the listeners, the key store and sync. Handles hold it through an `Arc`; the
/// registry ([`ENGINES`]) holds it weakly, so it ends with its last handle.
pub(crate) struct Engine {
    data_dir: PathBuf,
    slot: Mutex<Slot>,
    listeners: Arc<Listeners>,
    keys: Arc<dyn KeyStore>,
    sync: Arc<SyncHub>,
    leases: Mutex<Leases>,
}

/// The counted lease: handles open on the engine, and how many of them are in the foreground.
/// The store stays open while at least one handle is in the foreground, and is released
/// (sync stopped, file lock freed) when none is.
#[derive(Debug, Default)]
struct Leases {
    handles: usize,
    foreground: usize,
    /// Background sync ran when the store was released: restart it on the way back.
    sync_on_return: bool,
}

/// Live engines by canonical folder.
static ENGINES: Mutex<Vec<(PathBuf, Weak<Engine>)>> = Mutex::new(Vec::new());

/// Where one handle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandleState {
    Foreground,
    Background,
    Closed,
}

/// An open Kith store: contacts, interactions, follow-ups, projects, goals,
/// and this device's account and sync.
///
/// A handle: every `Kith` opened on the same folder in one process shares one engine (writes
/// through one are seen, and heard by the listeners, through all), so a WorkManager worker or
/// a background task may open its own. Each handle is a lease on the open store (see
/// `enter_background`).
#[derive(uniffi::Object)]
pub struct Kith {
    engine: Arc<Engine>,
    /// The engine's listeners, key store and sync, shared (cloned `Arc`s).
    pub(crate) listeners: Arc<Listeners>,
    /// Where this device's key material lives (file or the app's keychain).
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) sync: Arc<SyncHub>,
    state: Mutex<HandleState>,
    /// Listeners registered through this handle, removed when it closes.
    own_listeners: Mutex<Vec<i64>>,
    /// Invitations made through this handle and not answered yet (their
    /// secrets live only here), with the join request received for each.
    pub(crate) invitations: Mutex<Vec<crate::account::PendingInvitation>>,
}

impl Drop for Kith {
    fn drop(&mut self) {
        // A handle dropped without close() gives its lease back like close() does.
        let _ = self.close_handle();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The background loop holds the store: let it end with the engine.
        let _ = self.sync.stop_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // None of these guards holds an invariant a panic could break halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
            .field("data_dir", &self.engine.data_dir)
            .field("state", &*lock(&self.state))
            .field("listeners", &self.engine.listeners)
            .finish_non_exhaustive()
    }
}

fn check_limit(limit: i32) -> KithResult<usize> {
    if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
        return Err(KithError::invalid(
            "limit",
            format!("must be between 1 and {PAGE_LIMIT_MAX} (got {limit})"),
        ));
    }
    non_negative("limit", limit)
}

impl Engine {
    fn new(data_dir: PathBuf, store: Store, keys: Arc<dyn KeyStore>) -> Engine {
        let listeners = Arc::new(Listeners::default());
        let state = Kith::initial_sync_state(&data_dir, keys.as_ref());
        Engine {
            sync: Arc::new(SyncHub::new(Arc::clone(&listeners), state)),
            data_dir,
            slot: Mutex::new(Slot::Open(Arc::new(Mutex::new(store)))),
            listeners,
            keys,
            leases: Mutex::new(Leases::default()),
        }
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
            // Left released: calls fail with `Locked`; the next foreground retries.
            tracing::error!("reloading the store after a panic failed: {e}");
            return;
        }
        match Store::open(&self.data_dir) {
            Ok(store) => *slot = Slot::Open(Arc::new(Mutex::new(store))),
            Err(e) => tracing::error!("reloading the store after a panic failed: {e}"),
        }
    }

    /// The store as sync tasks share it, or `Locked` when released/closed.
    fn engine_store(&self) -> KithResult<SharedStore> {
        match &*self.slot() {
            Slot::Open(store) => Ok(Arc::clone(store)),
            Slot::Suspended => Err(released()),
            Slot::Closed => Err(KithError::locked("the store is closed (open it again)")),
        }
    }

    /// Gives the store back: stops sync (remembering whether it ran) and closes the file, so
    /// another process may open it. `closing`: for good (the last handle closed).
    fn let_go(&self, closing: bool) -> KithResult<()> {
        let (store, task) = {
            let mut slot = self.slot();
            let running = self.sync.is_running();
            let task = self.sync.stop_all();
            let next = if closing {
                Slot::Closed
            } else {
                Slot::Suspended
            };
            match std::mem::replace(&mut *slot, next) {
                Slot::Open(store) => {
                    lock(&self.leases).sync_on_return = running;
                    (store, task)
                }
                Slot::Suspended | Slot::Closed => return Ok(()),
            }
        };
        // Waited for without the slot lock: a sync task's listener that
        // calls back in gets `Locked` at once instead of blocking the wait.
        release(store, task)?;
        tracing::info!(
            data_dir = %self.data_dir.display(),
            "{}",
            if closing { "store closed" } else { "store released (no handle in the foreground)" }
        );
        Ok(())
    }

    /// Takes the store again after [`Engine::let_go`]; returns whether background sync ran
    /// before and should start again.
    fn retake(&self) -> KithResult<bool> {
        let mut slot = self.slot();
        match &*slot {
            Slot::Open(_) => Ok(false),
            Slot::Closed => Err(KithError::locked("the store is closed (open it again)")),
            Slot::Suspended => {
                let store = Store::open(&self.data_dir)?;
                *slot = Slot::Open(Arc::new(Mutex::new(store)));
                tracing::info!(data_dir = %self.data_dir.display(), "store taken again");
                Ok(std::mem::take(&mut lock(&self.leases).sync_on_return))
            }
        }
    }

    /// Whether the store is released (no handle in the foreground).
    fn is_released(&self) -> bool {
        matches!(*self.slot(), Slot::Suspended)
    }
}

fn released() -> KithError {
    KithError::locked(
        "the store is released while no handle is in the foreground (call enter_foreground())",
    )
}

impl Kith {
    /// A handle over an already open store (a restored backup).
    pub(crate) fn from_store(data_dir: PathBuf, store: Store) -> KithResult<Arc<Kith>> {
        let keys: Arc<dyn KeyStore> = Arc::new(FileKeyStore::in_dir(&data_dir));
        Kith::with_parts(data_dir, store, keys)
    }

    /// A handle over an already open store whose keys live in `keys`.
    pub(crate) fn from_store_with_keys(
        data_dir: PathBuf,
        store: Store,
        keys: Arc<dyn KeyStore>,
    ) -> KithResult<Arc<Kith>> {
        Kith::with_parts(data_dir, store, keys)
    }

    /// A handle on a new engine over `store` (which the caller opened: no engine exists for
    /// the folder), registered for later opens to share.
    fn with_parts(
        data_dir: PathBuf,
        store: Store,
        keys: Arc<dyn KeyStore>,
    ) -> KithResult<Arc<Kith>> {
        let key = canonical(&data_dir)?;
        let engine = Arc::new(Engine::new(data_dir, store, keys));
        let mut engines = lock(&ENGINES);
        engines.retain(|(_, e)| e.strong_count() > 0);
        engines.push((key, Arc::downgrade(&engine)));
        Ok(Kith::handle(engine))
    }

    fn handle(engine: Arc<Engine>) -> Arc<Kith> {
        {
            let mut l = lock(&engine.leases);
            l.handles += 1;
            l.foreground += 1;
        }
        Arc::new(Kith {
            listeners: Arc::clone(&engine.listeners),
            keys: Arc::clone(&engine.keys),
            sync: Arc::clone(&engine.sync),
            engine,
            state: Mutex::new(HandleState::Foreground),
            own_listeners: Mutex::new(Vec::new()),
            invitations: Mutex::new(Vec::new()),
        })
    }

    /// The live engine of `dir` in this process, if any.
    fn engine_of(dir: &Path) -> KithResult<Option<Arc<Engine>>> {
        let key = canonical(dir)?;
        let engines = lock(&ENGINES);
        Ok(engines
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, e)| e.upgrade()))
    }

    fn open_with(
        data_dir: String,
        keys: Option<Arc<dyn KeyStore>>,
        lock_wait_ms: u64,
    ) -> KithResult<Arc<Kith>> {
        if data_dir.trim().is_empty() {
            return Err(KithError::invalid("data_dir", "must not be empty"));
        }
        let path = PathBuf::from(data_dir);
        // Serialises opens: two threads opening one folder get one engine.
        let _opening = lock(&OPENING);
        if let Some(engine) = Kith::engine_of(&path)? {
            let restart_sync = engine.retake()?;
            let handle = Kith::handle(engine);
            if restart_sync {
                handle.restart_sync();
            }
            return Ok(handle);
        }
        let store = Store::open_waiting(&path, lock_wait_ms)?;
        let keys = keys.unwrap_or_else(|| Arc::new(FileKeyStore::in_dir(&path)));
        tracing::info!(data_dir = %path.display(), "store opened");
        Kith::with_parts(path, store, keys)
    }

    /// Background sync ran when the store was released: start it again (failures are logged;
    /// the app sees them in `sync_status`).
    fn restart_sync(&self) {
        if let Err(e) = self.start_sync() {
            tracing::warn!(error = %e, "background sync did not restart");
        }
    }

    pub(crate) fn data_dir_path(&self) -> &Path {
        &self.engine.data_dir
    }

    /// This handle's state, or `Locked` once it is closed.
    fn live(&self) -> KithResult<HandleState> {
        match *lock(&self.state) {
            HandleState::Closed => Err(KithError::locked(
                "this handle is closed (open the store again)",
            )),
            s => Ok(s),
        }
    }

    /// Ends this handle's lease: the store closes with the last handle, and is released when
    /// no handle remains in the foreground.
    fn close_handle(&self) -> KithResult<()> {
        let was = std::mem::replace(&mut *lock(&self.state), HandleState::Closed);
        if was == HandleState::Closed {
            return Ok(());
        }
        for h in std::mem::take(&mut *lock(&self.own_listeners)) {
            self.engine.listeners.remove(h);
        }
        let (last, none_in_front) = {
            let mut l = lock(&self.engine.leases);
            l.handles = l.handles.saturating_sub(1);
            if was == HandleState::Foreground {
                l.foreground = l.foreground.saturating_sub(1);
            }
            (l.handles == 0, l.foreground == 0)
        };
        if last {
            // Unregistered first: an open racing this close starts a fresh engine.
            lock(&ENGINES).retain(|(_, e)| !std::ptr::eq(e.as_ptr(), Arc::as_ptr(&self.engine)));
            self.engine.let_go(true)
        } else if none_in_front {
            self.engine.let_go(false)
        } else {
            Ok(())
        }
    }

    /// The store as sync tasks share it, or `Locked` when this handle is closed or the store
    /// is released.
    pub(crate) fn shared_store(&self) -> KithResult<SharedStore> {
        self.live()?;
        self.engine.engine_store()
    }

    /// After a local write: tell the listeners, and let background sync push it.
    pub(crate) fn local_changed(&self, summary: &ChangeSummary) {
        self.listeners.changed(summary);
        self.sync.local_write();
    }

    /// Runs `f` on the open store, or fails with `Locked` when this handle is closed or the
    /// store is released.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> KithResult<T>,
    ) -> KithResult<T> {
        self.live()?;
        let slot = self.engine.slot();
        match &*slot {
            Slot::Open(store) => f(&mut store.lock().unwrap_or_else(PoisonError::into_inner)),
            Slot::Suspended => Err(released()),
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

/// Held while a handle is being opened (see [`Kith::open_with`]).
static OPENING: Mutex<()> = Mutex::new(());

/// The key under which a folder's engine is registered: its canonical path (created when
/// missing, as opening creates it anyway), so `dir` and `dir/../dir` share one engine.
fn canonical(dir: &Path) -> KithResult<PathBuf> {
    std::fs::create_dir_all(dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|e| KithError::Storage {
            reason: format!("cannot use {} as a data directory: {e}", dir.display()),
        })
}

// Rust API: the blocking implementation. The foreign API (async where this touches the
// disk or the network) is the `ffi_*` façade in crate::api, one method per operation.
impl Kith {
    // ------------------------------------------------------------ lifecycle

    /// Opens (creating when missing) the store in `data_dir`, or a new handle on it when this
    /// process has it open already (every handle shares one engine: see `Kith`). Another
    /// process holding the store for writing (an app extension) makes writes fail with
    /// `Locked`; `open_waiting` waits for it instead.
    #[uniffi::constructor]
    pub fn open(data_dir: String) -> KithResult<Arc<Kith>> {
        guard("open", || Kith::open_with(data_dir, None, 0))
    }

    /// Like `open`, with this device's key material kept by the app's
    /// `key_store` (Keychain, Keystore) instead of `keys.json` in `data_dir`.
    /// A handle on a store this process has open already uses the key store that first
    /// opened it.
    #[uniffi::constructor]
    pub fn open_with_key_store(
        data_dir: String,
        key_store: Arc<dyn crate::account::KithKeyStore>,
    ) -> KithResult<Arc<Kith>> {
        guard("open_with_key_store", || {
            Kith::open_with(
                data_dir,
                Some(Arc::new(crate::account::ForeignKeyStore(key_store))),
                0,
            )
        })
    }

    /// For share sheets, widgets and notification services (another process than the app):
    /// opens the store like `open`, and each later write waits up to `lock_wait_ms` (at most
    /// 10,000) while the main app holds the store, instead of failing with `Locked` at once.
    /// Close it as soon as the work is done: the main app waits for it the same way.
    #[uniffi::constructor]
    pub fn open_waiting(data_dir: String, lock_wait_ms: i64) -> KithResult<Arc<Kith>> {
        guard("open_waiting", || {
            let lock_wait_ms: u64 = non_negative("lock_wait_ms", lock_wait_ms)?;
            if lock_wait_ms > LOCK_WAIT_MS_MAX {
                return Err(KithError::invalid(
                    "lock_wait_ms",
                    format!("must be at most {LOCK_WAIT_MS_MAX}"),
                ));
            }
            Kith::open_with(data_dir, None, lock_wait_ms)
        })
    }

    /// The directory this store lives in.
    pub fn data_dir(&self) -> String {
        self.engine.data_dir.display().to_string()
    }

    /// Closes this handle: its listeners are removed, and later calls on it fail with
    /// `Locked`. The store itself (sync, the file lock) closes with the last handle, and is
    /// released when no other handle is in the foreground. Closing twice is fine.
    pub fn close(&self) -> KithResult<()> {
        guard("close", || self.close_handle())
    }

    /// The app (or this handle's worker) went to the background: this handle gives back its
    /// lease. When no handle of the process is in the foreground any more, background sync
    /// stops and the store's file lock is released (iOS kills suspended apps that hold one),
    /// on Kith's runtime: the caller awaits it and never blocks its thread. Calls on any
    /// handle then fail with `Locked` until one comes back with `enter_foreground`. Another
    /// handle in the foreground (a WorkManager worker) keeps the store open and syncing.
    /// Idempotent.
    pub async fn enter_background(self: Arc<Self>) -> KithResult<()> {
        run_blocking("enter_background", move || {
            let none_in_front = {
                let mut state = lock(&self.state);
                match *state {
                    HandleState::Closed => {
                        return Err(KithError::locked(
                            "this handle is closed (open the store again)",
                        ));
                    }
                    HandleState::Background => return Ok(()),
                    HandleState::Foreground => *state = HandleState::Background,
                }
                let mut l = lock(&self.engine.leases);
                l.foreground = l.foreground.saturating_sub(1);
                l.foreground == 0
            };
            if none_in_front {
                self.engine.let_go(false)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Back in the foreground: this handle takes its lease again, the store reopens if it was
    /// released, and background sync restarts if it ran when the store was released.
    /// Idempotent.
    pub async fn enter_foreground(self: Arc<Self>) -> KithResult<()> {
        run_blocking("enter_foreground", move || {
            {
                let mut state = lock(&self.state);
                match *state {
                    HandleState::Closed => {
                        return Err(KithError::locked(
                            "this handle is closed (open the store again)",
                        ));
                    }
                    HandleState::Foreground => return Ok(()),
                    HandleState::Background => *state = HandleState::Foreground,
                }
                lock(&self.engine.leases).foreground += 1;
            }
            match self.engine.retake() {
                Ok(true) => {
                    self.restart_sync();
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => {
                    // Still in the background as far as the lease goes: a retry counts once.
                    *lock(&self.state) = HandleState::Background;
                    let mut l = lock(&self.engine.leases);
                    l.foreground = l.foreground.saturating_sub(1);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Whether this handle is in the foreground (open and not sent to the background).
    pub fn is_in_foreground(&self) -> bool {
        *lock(&self.state) == HandleState::Foreground
    }

    /// Whether the store is released: no handle of this process is in the foreground, so
    /// calls fail with `Locked` and another process may open it.
    pub fn is_released(&self) -> bool {
        self.engine.is_released()
    }

    // ------------------------------------------------------------ listeners

    /// Registers a listener for changes; it immediately gets the current sync
    /// state. Returns the handle for `remove_listener`.
    pub fn add_listener(&self, listener: Arc<dyn KithListener>) -> KithResult<i64> {
        guard("add_listener", || {
            self.live()?;
            let handle = self.listeners.add(Arc::clone(&listener))?;
            lock(&self.own_listeners).push(handle);
            Listeners::sync_state_to(listener.as_ref(), self.sync.shared.state());
            Ok(handle)
        })
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove_listener(&self, handle: i64) -> bool {
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
    pub fn list_contacts(
        &self,
        sort: ContactSort,
        offset: i32,
        limit: i32,
        include_archived: bool,
    ) -> KithResult<Vec<Contact>> {
        guard("list_contacts", || {
            let q = ContactQuery {
                sort: sort.into(),
                include_archived,
                offset: non_negative("offset", offset)?,
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
    pub fn timeline(
        &self,
        contact_id: Option<String>,
        offset: i32,
        limit: i32,
        include_deleted: bool,
    ) -> KithResult<Vec<Interaction>> {
        guard("timeline", || {
            let q = TimelineQuery {
                contact: contact_id
                    .as_deref()
                    .map(|c| parse_id("contact_id", c))
                    .transpose()?,
                include_deleted,
                offset: non_negative("offset", offset)?,
                limit: check_limit(limit)?,
            };
            self.with_store(|s| Ok(s.timeline(&q)?.into_iter().map(Into::into).collect()))
        })
    }

    /// Prefix search over names, organisations, summaries and notes,
    /// ignoring case and accents.
    pub fn search(&self, text: String, limit: i32) -> KithResult<SearchResults> {
        guard("search", || {
            let limit = check_limit(limit)?;
            self.with_store(|s| Ok(s.search(&text, limit)?.into()))
        })
    }

    // ------------------------------------------------------------ follow-ups

    /// Adds a follow-up to an interaction. `due` is an ISO date.
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
            let mut new = kith_core::model::Settings::try_from(settings)?;
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
                    documents: to_i64(r.documents),
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

/// Hidden test hook (feature `test-hooks`): whether this build aborts on a panic
/// (`release-ffi`, Cargo.toml) instead of unwinding into the guard's
/// `Internal`, so the binding tests know which of the two a panic must do.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
pub fn debug_panic_aborts() -> bool {
    cfg!(panic = "abort")
}

/// What `check_store` found.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoreCheckReport {
    /// Documents examined.
    pub documents: i64,
    /// Nothing damaged and the index matches the documents.
    pub clean: bool,
    /// Documents that fail their checksums ("id: why"): restore from a
    /// backup or another device; `reindex` cannot repair them.
    pub damaged_documents: Vec<String>,
    /// Index tables that differ from the documents ("table: counts"):
    /// `reindex` repairs them.
    pub index_tables_reindex_repairs: Vec<String>,
}
