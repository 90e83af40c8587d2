//! Device sync through the bindings: one round (`sync_now`), the background
//! loop (`start_sync` / `stop_sync`), the status, and the state every
//! `KithListener` hears.
//!
//! Everything network runs on kith-ffi's runtime ([`crate::runtime`]): an
//! exported `async` method spawns its work there and the foreign language
//! awaits the result, so no caller's thread waits on the network. The store is
//! shared with those tasks as `Arc<Mutex<Store>>` (what kith-net takes); the
//! tasks lock it only for each synchronous step, never across a network wait.
//!
//! Flow of one round: [`SyncHub::round`] sets `Connecting`, runs
//! `kith_net::relay_round`, turns each `RelayEvent` into a state transition
//! (`Syncing` once authenticated) and, after each merge, drains the store's
//! log of remotely changed records into an `on_change`; at the end it records
//! the outcome (last sync time or last error) and returns to `Idle`. The loop
//! runs `kith_net::relay_watch` the same way, with `Live` whenever the session
//! is idle and `Retrying` while it waits to reconnect; local writes poke it
//! through a bounded channel so they are pushed at once.
//!
//! Lifecycle: releasing the store (no handle in the foreground) or closing it
//! calls [`SyncHub::stop_all`], which stops the
//! loop and cancels running rounds (a cancelled round loses nothing: every
//! sync step is one store transaction), then wait (bounded) until the tasks
//! have dropped their handle on the store before closing it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kith_core::Store;
use kith_core::sync::{DeviceIdentity, RelayClientConfig, RelayEvent};
use kith_net::relay::Extra;
use kith_protocol::RelayAddress;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{KithError, KithResult};
use crate::listener::{ChangeSummary, Listeners, SyncState};
use crate::types::to_i64;

/// The store as the sync tasks share it.
pub(crate) type SharedStore = Arc<Mutex<Store>>;

/// Longest a round with the relay (pairing and revocation included) may
/// take, unless the app sets another (`set_sync_timeout_ms`, within the bounds).
pub(crate) const ROUND_TIMEOUT_MS_DEFAULT: u64 = 60_000;
pub(crate) const ROUND_TIMEOUT_MS_MIN: u64 = 1_000;
pub(crate) const ROUND_TIMEOUT_MS_MAX: u64 = 600_000;
/// Local-write signals queued for the loop; more are coalesced (one push
/// sends everything new anyway).
const LOCAL_SIGNALS_MAX: usize = 8;
/// First and longest wait before the loop reconnects.
const BACKOFF_INITIAL_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;

/// What one sync round moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Entries (sealed batches of this device's changes) sent to the relay.
    pub pushed_entries: i64,
    /// Entries from other devices received.
    pub received_entries: i64,
    /// Contacts changed by what was received.
    pub contacts_changed: i64,
    /// Interactions changed by what was received.
    pub interactions_changed: i64,
    /// Changes received that wait for changes of other devices not yet at the relay.
    pub pending_changes: i64,
    /// The device started from the relay's snapshot (a new device).
    pub snapshot_applied: bool,
    /// Bytes on the wire, both directions.
    pub bytes_sent: i64,
    /// Bytes received on the wire; see `bytes_sent`.
    pub bytes_received: i64,
    /// Wall time of the round.
    pub elapsed_ms: i64,
    /// The background sync is running: instead of a second connection, it
    /// was asked to push and pull now, and the counts are what that cycle of
    /// the background session moved (changes that arrived live before it are
    /// not counted again).
    pub via_background_sync: bool,
}

impl From<kith_net::RoundReport> for SyncReport {
    fn from(r: kith_net::RoundReport) -> Self {
        SyncReport {
            pushed_entries: to_i64(r.pushed_entries),
            received_entries: to_i64(r.received_entries),
            contacts_changed: to_i64(r.contacts_changed),
            interactions_changed: to_i64(r.interactions_changed),
            pending_changes: to_i64(r.pending_changes),
            snapshot_applied: r.snapshot_applied,
            bytes_sent: to_i64(r.wire_sent_bytes),
            bytes_received: to_i64(r.wire_received_bytes),
            elapsed_ms: to_i64(r.elapsed_ms),
            via_background_sync: false,
        }
    }
}

/// Sync as a settings screen or status line shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// What sync is doing now.
    pub state: SyncState,
    /// The background loop is running (between `start_sync` and `stop_sync`).
    pub background: bool,
    /// When a round last completed (ms since the Unix epoch), if ever since open.
    pub last_sync_ms: Option<i64>,
    /// Why the last round or connection failed, cleared by the next success.
    pub last_error: Option<String>,
    /// Local writes made since the last completed round (since open).
    pub unsent_local_writes: i64,
    /// Sealed entries the relay had not acknowledged at the end of the last
    /// round (read from the store then; 0 before the first round).
    pub unacknowledged_entries: i64,
    /// Changes received that wait for changes of other devices, at the end
    /// of the last round.
    pub pending_changes: i64,
    /// The relay this device syncs with (`kith://KEY@HOST:PORT`), if set.
    pub relay: Option<String>,
    /// Entries received but skipped because they did not verify, decrypt or
    /// parse, at the end of the last round: warn the user, naming the
    /// device (`devices()` has its name). Everything else synced.
    pub quarantined: Vec<QuarantinedEntry>,
}

/// An entry sync skipped because it did not verify, decrypt or parse.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuarantinedEntry {
    /// The device that wrote it (its id, as in `Device.id`).
    pub device: String,
    /// Its sequence number in that device's log; 0 for a snapshot of that
    /// device that could not be opened.
    pub seq: i64,
    /// Why it was refused.
    pub reason: String,
    /// When it was skipped, ms since the Unix epoch.
    pub at_ms: i64,
}

/// Mutable status shared by the tasks.
#[derive(Debug)]
struct Status {
    state: SyncState,
    last_sync_ms: Option<u64>,
    last_error: Option<String>,
    unsent_local_writes: u64,
    /// The store's sync position at the end of the last round: read there,
    /// so that `sync_status()` never touches the store.
    unacknowledged_entries: u64,
    pending_changes: u64,
    quarantined: Vec<QuarantinedEntry>,
}

/// State shared between a `Kith` and its sync tasks.
#[derive(Debug)]
pub(crate) struct SyncShared {
    status: Mutex<Status>,
    listeners: Arc<Listeners>,
    /// Bumped by `stop_all`: running rounds see it and stop.
    cancel: watch::Sender<u64>,
    /// One round at a time: two sessions of one device would push the same
    /// entries twice.
    round_lock: tokio::sync::Mutex<()>,
    pub(crate) round_timeout_ms: AtomicU64,
    /// Registration token for a relay with a token policy
    /// (`set_registration_token`); sent by rounds until the account is
    /// registered (the relay ignores it afterwards).
    pub(crate) registration_token: Mutex<Option<String>>,
    /// Which background loop is the current one: a loop stopped by
    /// `stop_sync` may still be closing its connection when `start_sync`
    /// starts the next, and must not report `Idle` over it.
    loop_generation: AtomicU64,
    /// Background loop tasks not yet finished, the stopped ones still
    /// closing included (tests wait on it instead of sleeping).
    loops_alive: std::sync::atomic::AtomicUsize,
    /// What the background loop moved since its last completed cycle.
    cycle_acc: Mutex<SyncReport>,
    /// Each completed cycle of the background loop (count, what it moved): `sync_now`
    /// waits on it while the loop runs.
    cycles: watch::Sender<(u64, SyncReport)>,
    /// Bumped on every state transition (waits end when the loop goes offline).
    state_changes: watch::Sender<u64>,
}

/// Counts a loop task as alive until it ends, however it ends.
struct LoopAlive(Arc<SyncShared>);

impl Drop for LoopAlive {
    fn drop(&mut self) {
        self.0.loops_alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The background loop while it runs.
#[derive(Debug)]
struct LoopHandle {
    stop: watch::Sender<bool>,
    local: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

/// The sync side of one `Kith`.
#[derive(Debug)]
pub(crate) struct SyncHub {
    pub(crate) shared: Arc<SyncShared>,
    control: Mutex<Option<LoopHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain status fields: always consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SyncShared {
    /// Moves to `state`, telling the listeners when it changed.
    pub(crate) fn set_state(&self, state: SyncState) {
        {
            let mut s = lock(&self.status);
            if s.state == state {
                return;
            }
            s.state = state.clone();
        }
        self.state_changes.send_modify(|n| *n = n.wrapping_add(1));
        self.listeners.sync_state(&state);
    }

    /// Client settings for a round: the registration token, if set.
    fn relay_cfg(&self) -> RelayClientConfig {
        RelayClientConfig {
            registration_token: lock(&self.registration_token).clone(),
            ..RelayClientConfig::default()
        }
    }

    pub(crate) fn state(&self) -> SyncState {
        lock(&self.status).state.clone()
    }

    fn succeeded(&self, writes_at_start: u64) {
        let mut s = lock(&self.status);
        s.last_sync_ms = Some(kith_net::now_ms());
        s.last_error = None;
        s.unsent_local_writes = s.unsent_local_writes.saturating_sub(writes_at_start);
    }

    /// Reads the durable sync position after a round (or a failed one).
    fn record_position(&self, store: &Mutex<Store>) {
        let position = kith_core::sync::sync_status(&mut lock(store));
        match position {
            Ok(p) => {
                let mut s = lock(&self.status);
                s.unacknowledged_entries = p.outbox_entries;
                s.pending_changes = p.pending_changes;
                s.quarantined = p
                    .quarantined
                    .into_iter()
                    .map(|q| QuarantinedEntry {
                        device: q.device.to_string(),
                        seq: to_i64(q.seq),
                        reason: q.reason,
                        at_ms: to_i64(q.at_ms),
                    })
                    .collect();
            }
            Err(e) => tracing::warn!("cannot read the sync position: {e}"),
        }
    }

    fn failed(&self, e: &KithError) {
        lock(&self.status).last_error = Some(e.to_string());
    }

    fn writes(&self) -> u64 {
        lock(&self.status).unsent_local_writes
    }

    /// Tells the listeners what merges from other devices changed.
    fn notify_remote(&self, store: &Mutex<Store>) {
        let changes = lock(store).take_remote_changes();
        if changes.is_empty() {
            return;
        }
        fn ids<T: ToString>(v: &[T]) -> Vec<String> {
            v.iter().map(ToString::to_string).collect()
        }
        self.listeners.changed(&ChangeSummary {
            contact_ids: ids(&changes.contacts),
            interaction_ids: ids(&changes.interactions),
            project_ids: ids(&changes.projects),
            goal_ids: ids(&changes.goals),
            settings: changes.settings,
            everything: changes.overflowed,
        });
    }

    /// The state a relay event moves to (`None`: unchanged).
    fn state_after(event: &RelayEvent, live: bool) -> Option<SyncState> {
        match event {
            RelayEvent::Authenticated { .. }
            | RelayEvent::Received { .. }
            | RelayEvent::Pushed { .. }
            | RelayEvent::SnapshotApplied { .. }
            | RelayEvent::Lagged => Some(SyncState::Syncing),
            RelayEvent::RoundComplete if live => Some(SyncState::Live),
            _ => None,
        }
    }

    /// Handles one event of a session: state, change notifications.
    /// Adds what one event of the background loop moved to the current cycle's report.
    fn count_cycle(&self, event: &RelayEvent) {
        // Saturating: a long-lived loop must not overflow (a panic in debug builds).
        let add = |total: &mut i64, v: usize| *total = total.saturating_add(to_i64(v));
        let mut acc = lock(&self.cycle_acc);
        match event {
            RelayEvent::Pushed { entries, bytes, .. } => {
                add(&mut acc.pushed_entries, *entries);
                add(&mut acc.bytes_sent, *bytes);
            }
            RelayEvent::Received { entries, bytes, .. } => {
                add(&mut acc.received_entries, *entries);
                add(&mut acc.bytes_received, *bytes);
            }
            RelayEvent::Applied {
                contacts,
                interactions,
                pending,
                ..
            } => {
                add(&mut acc.contacts_changed, *contacts);
                add(&mut acc.interactions_changed, *interactions);
                acc.pending_changes = to_i64(*pending);
            }
            RelayEvent::SnapshotApplied { bytes, .. } => {
                acc.snapshot_applied = true;
                add(&mut acc.bytes_received, *bytes);
            }
            _ => {}
        }
    }

    fn on_event(&self, store: &Mutex<Store>, event: &RelayEvent, live: bool) {
        if let RelayEvent::Applied { .. } | RelayEvent::SnapshotApplied { .. } = event {
            self.notify_remote(store);
        }
        if live {
            self.count_cycle(event);
        }
        if live && let RelayEvent::RoundComplete = event {
            self.succeeded(self.writes());
            self.record_position(store);
            let report = std::mem::take(&mut *lock(&self.cycle_acc));
            self.cycles.send_modify(|(n, last)| {
                *n += 1;
                *last = report;
            });
        }
        if let Some(state) = Self::state_after(event, live) {
            self.set_state(state);
        }
    }
}

/// Puts a foreground round's state back to `Idle` when the round is dropped unfinished.
struct AbortedRound {
    shared: Arc<SyncShared>,
    background: bool,
    armed: bool,
}

impl Drop for AbortedRound {
    fn drop(&mut self) {
        if self.armed && !self.background {
            self.shared.set_state(SyncState::Idle);
        }
    }
}

impl SyncHub {
    pub(crate) fn new(listeners: Arc<Listeners>, initial: SyncState) -> SyncHub {
        SyncHub {
            shared: Arc::new(SyncShared {
                status: Mutex::new(Status {
                    state: initial,
                    last_sync_ms: None,
                    last_error: None,
                    unsent_local_writes: 0,
                    unacknowledged_entries: 0,
                    pending_changes: 0,
                    quarantined: Vec::new(),
                }),
                listeners,
                cancel: watch::channel(0).0,
                round_lock: tokio::sync::Mutex::new(()),
                round_timeout_ms: AtomicU64::new(ROUND_TIMEOUT_MS_DEFAULT),
                registration_token: Mutex::new(None),
                loop_generation: AtomicU64::new(0),
                loops_alive: std::sync::atomic::AtomicUsize::new(0),
                cycle_acc: Mutex::new(SyncReport::default()),
                cycles: watch::channel((0, SyncReport::default())).0,
                state_changes: watch::channel(0).0,
            }),
            control: Mutex::new(None),
        }
    }

    pub(crate) fn round_timeout_ms(&self) -> u64 {
        self.shared.round_timeout_ms.load(Ordering::Relaxed)
    }

    /// A local write happened: count it and poke the loop to push it.
    pub(crate) fn local_write(&self) {
        lock(&self.shared.status).unsent_local_writes += 1;
        if let Some(h) = lock(&self.control).as_ref() {
            // Full means a push is already due: it sends this write too.
            let _ = h.local.try_send(());
        }
    }

    /// Background loop tasks that have not finished yet.
    pub(crate) fn loops_alive(&self) -> usize {
        self.shared.loops_alive.load(Ordering::SeqCst)
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.control)
            .as_ref()
            .is_some_and(|h| !h.task.is_finished())
    }

    /// `sync_now` while the background loop runs: no second session; the loop is asked to
    /// push and pull now, and this waits (within the round timeout) for that cycle and
    /// returns what it moved. A loop that is not connected is a `Network` error, so a
    /// pull-to-refresh while offline says so instead of reporting success.
    pub(crate) async fn sync_via_loop(
        shared: Arc<SyncShared>,
        poke: impl FnOnce() -> bool,
    ) -> KithResult<SyncReport> {
        let timeout_ms = shared.round_timeout_ms.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        let offline = |shared: &SyncShared| -> Option<KithError> {
            match shared.state() {
                SyncState::Retrying { reason, .. } | SyncState::Offline { reason } => {
                    Some(KithError::Network { reason })
                }
                SyncState::Error { reason } => Some(KithError::Network { reason }),
                _ => None,
            }
        };
        // Subscribed before the state is read: a transition right after the check is seen.
        let mut states = shared.state_changes.subscribe();
        states.borrow_and_update();
        let mut cycles = shared.cycles.subscribe();
        let seen = cycles.borrow_and_update().0;
        if let Some(e) = offline(&shared) {
            return Err(e);
        }
        if !poke() {
            return Err(KithError::locked("background sync stopped"));
        }
        let wait = async {
            loop {
                if cycles.changed().await.is_err() {
                    return Err(KithError::locked("background sync stopped"));
                }
                let (n, report) = cycles.borrow_and_update().clone();
                if n > seen {
                    return Ok(report);
                }
            }
        };
        let wait_offline = async {
            // Also ends the wait when the loop loses its connection meanwhile.
            loop {
                if states.changed().await.is_err() {
                    return;
                }
                if offline(&shared).is_some() {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            r = wait => r,
            () = wait_offline => Err(offline(&shared).unwrap_or_else(|| KithError::Network {
                reason: "the background session lost its connection".into(),
            })),
            () = tokio::time::sleep(std::time::Duration::from_millis(timeout_ms)) => {
                Err(KithError::Network {
                    reason: format!("the background session did not complete a round within {timeout_ms} ms"),
                })
            }
        };
        outcome.map(|mut r| {
            r.via_background_sync = true;
            r.elapsed_ms = to_i64(started.elapsed().as_millis());
            r
        })
    }

    /// Asks a running loop to push now; `false` when no loop runs.
    pub(crate) fn poke(&self) -> bool {
        match lock(&self.control).as_ref() {
            Some(h) if !h.task.is_finished() => {
                let _ = h.local.try_send(());
                true
            }
            _ => false,
        }
    }

    /// Stops the loop and cancels running rounds; returns the loop's task so
    /// the caller can wait for (or force) its end.
    pub(crate) fn stop_all(&self) -> Option<JoinHandle<()>> {
        self.shared
            .cancel
            .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
        let handle = lock(&self.control).take()?;
        let _ = handle.stop.send(true);
        Some(handle.task)
    }

    /// The status record (from memory: it never waits for the store).
    pub(crate) fn status(&self, relay: Option<String>) -> SyncStatus {
        let background = self.is_running();
        let s = lock(&self.shared.status);
        SyncStatus {
            state: s.state.clone(),
            background,
            last_sync_ms: s.last_sync_ms.map(to_i64),
            last_error: s.last_error.clone(),
            unsent_local_writes: to_i64(s.unsent_local_writes),
            unacknowledged_entries: to_i64(s.unacknowledged_entries),
            pending_changes: to_i64(s.pending_changes),
            relay,
            quarantined: s.quarantined.clone(),
        }
    }

    /// Starts the background loop (no-op when it runs).
    pub(crate) fn start(
        &self,
        store: SharedStore,
        id: DeviceIdentity,
        addr: RelayAddress,
    ) -> KithResult<()> {
        let mut control = lock(&self.control);
        if control.as_ref().is_some_and(|h| !h.task.is_finished()) {
            return Ok(());
        }
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (local_tx, mut local_rx) = mpsc::channel(LOCAL_SIGNALS_MAX);
        let shared = Arc::clone(&self.shared);
        let mut cancel = shared.cancel.subscribe();
        let generation = shared.loop_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let runtime = crate::runtime::runtime()?;
        shared.loops_alive.fetch_add(1, Ordering::SeqCst);
        let alive = LoopAlive(Arc::clone(&shared));
        let task = runtime.spawn(async move {
            let _alive = alive;
            shared.set_state(SyncState::Connecting);
            let opts = kith_net::WatchOptions {
                backoff_initial_ms: BACKOFF_INITIAL_MS,
                backoff_max_ms: BACKOFF_MAX_MS,
                failures_max: None,
            };
            let watching = kith_net::relay_watch(
                &store,
                &id,
                &addr,
                shared.relay_cfg(),
                opts,
                &mut local_rx,
                &mut stop_rx,
                |e| shared.on_event(&store, e, true),
                |e, delay_ms| {
                    // relay_watch retries only network trouble.
                    let err = KithError::Network {
                        reason: e.to_string(),
                    };
                    shared.failed(&err);
                    shared.set_state(SyncState::Retrying {
                        reason: err.to_string(),
                        retry_in_ms: to_i64(delay_ms),
                    });
                },
            );
            let result = tokio::select! {
                r = watching => r.map_err(KithError::from),
                _ = cancel.changed() => Ok(()),
            };
            if let Err(e) = &result {
                shared.failed(e);
            }
            if shared.loop_generation.load(Ordering::SeqCst) != generation {
                return;
            }
            match result {
                Ok(()) => shared.set_state(SyncState::Idle),
                Err(e) => shared.set_state(SyncState::Error {
                    reason: e.to_string(),
                }),
            }
        });
        *control = Some(LoopHandle {
            stop: stop_tx,
            local: local_tx,
            task,
        });
        Ok(())
    }

    /// Stops the loop without waiting for it (it closes its connection and
    /// reports `Idle`). Returns whether one was running.
    pub(crate) fn stop(&self) -> bool {
        match lock(&self.control).take() {
            Some(h) => {
                // Read before the signal: a loop waiting out a backoff ends within
                // microseconds of it, and reading after raced that end.
                let was_running = !h.task.is_finished();
                let _ = h.stop.send(true);
                was_running
            }
            None => false,
        }
    }

    /// One round with the relay (plus `extras`), on the runtime: state
    /// transitions, change notifications, outcome in the status. Cancelled
    /// by `stop_all`.
    pub(crate) async fn round(
        shared: Arc<SyncShared>,
        store: SharedStore,
        id: DeviceIdentity,
        addr: RelayAddress,
        extras: Vec<Extra>,
        background: bool,
    ) -> KithResult<SyncReport> {
        let mut cancel = shared.cancel.subscribe();
        let _one_round = shared.round_lock.lock().await;
        let writes_at_start = shared.writes();
        if !background {
            shared.set_state(SyncState::Connecting);
        }
        // Aborted with its awaiting future (cancelled on the foreign side): the state must not
        // stay `Connecting`/`Syncing`.
        let mut on_abort = AbortedRound {
            shared: Arc::clone(&shared),
            background,
            armed: true,
        };
        let round = kith_net::relay_round(
            &store,
            &id,
            &addr,
            shared.relay_cfg(),
            extras,
            shared.round_timeout_ms.load(Ordering::Relaxed),
            |e| {
                if background {
                    // The loop owns the state; still tell about merges.
                    if let RelayEvent::Applied { .. } | RelayEvent::SnapshotApplied { .. } = e {
                        shared.notify_remote(&store);
                    }
                } else {
                    shared.on_event(&store, e, false);
                }
            },
        );
        let result = tokio::select! {
            r = round => r.map_err(KithError::from),
            _ = cancel.changed() => Err(KithError::locked(
                "sync was stopped: the store was suspended or closed",
            )),
        };
        // Merges of a round that failed half-way are committed: tell them.
        shared.notify_remote(&store);
        shared.record_position(&store);
        match &result {
            Ok(_) => {
                shared.succeeded(writes_at_start);
                if !background {
                    shared.set_state(SyncState::Idle);
                }
            }
            Err(e) => {
                shared.failed(e);
                if !background {
                    shared.set_state(if e.is_network() {
                        SyncState::Offline {
                            reason: e.to_string(),
                        }
                    } else if matches!(e, KithError::Locked { .. }) {
                        SyncState::Idle
                    } else {
                        SyncState::Error {
                            reason: e.to_string(),
                        }
                    });
                }
            }
        }
        on_abort.armed = false;
        result.map(SyncReport::from)
    }
}
