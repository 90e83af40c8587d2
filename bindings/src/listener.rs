//! Change notification: the `KithListener` callback interface and its registry.
//!
//! Apps register a listener to refresh their UI when data changes. After each
//! local write returns from the store (durable), the `Kith` object builds a
//! [`ChangeSummary`] naming the records the write touched and calls
//! `on_change` on every registered listener, on the thread that made the write
//! and after every internal lock is released, so a listener may call back into
//! `Kith`. Merges from other devices notify the same way, from the thread of
//! kith-ffi's runtime that ran the sync, with the records the merge changed. A listener that throws (or panics) is isolated: the write
//! has already succeeded, the other listeners still run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{KithError, KithResult};

/// Most listeners one `Kith` keeps: an app registers a few screens, not more;
/// a leak of registrations shows up as an error instead of unbounded growth.
pub(crate) const LISTENERS_MAX: usize = 32;

/// Which records a write or a merge from another device changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ChangeSummary {
    /// Contacts created or changed.
    pub contact_ids: Vec<String>,
    /// Interactions created or changed.
    pub interaction_ids: Vec<String>,
    /// Projects created or changed.
    pub project_ids: Vec<String>,
    /// Goals created or changed.
    pub goal_ids: Vec<String>,
    /// The settings changed.
    pub settings: bool,
    /// A merge from another device changed more records than are listed:
    /// refresh every screen.
    pub everything: bool,
}

impl ChangeSummary {
    pub(crate) fn contacts(ids: impl IntoIterator<Item = impl ToString>) -> Self {
        ChangeSummary {
            contact_ids: ids.into_iter().map(|i| i.to_string()).collect(),
            ..Default::default()
        }
    }

    /// An interaction and its participants (their last-met and counts move with it).
    pub(crate) fn interaction(i: &crate::types::Interaction) -> Self {
        ChangeSummary {
            contact_ids: i.participants.clone(),
            interaction_ids: vec![i.id.clone()],
            ..Default::default()
        }
    }

    pub(crate) fn interactions(ids: impl IntoIterator<Item = impl ToString>) -> Self {
        ChangeSummary {
            interaction_ids: ids.into_iter().map(|i| i.to_string()).collect(),
            ..Default::default()
        }
    }
}

/// The state of device sync, as a status line in the app would show it.
/// `KithListener::on_sync_state` hears every transition.
///
/// Its `Display` text is exported, so a state prints readably on every side
/// (Kotlin `toString()` "Retrying in 500 ms: connection refused" instead of
/// `SyncState$Retrying@1b2c3d`, Swift `description`, Python `str()`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum SyncState {
    /// Sync is not set up: this device has no account yet (`create_account`
    /// or `join`), or no relay is configured.
    Disabled,
    /// Set up, not syncing right now (no background sync, no round running).
    Idle,
    /// Opening the connection to the relay.
    Connecting,
    /// Connected and exchanging changes.
    Syncing,
    /// The background sync is connected and every known change is exchanged;
    /// changes from other devices arrive as they are made.
    Live,
    /// The background sync lost (or could not open) its connection and tries
    /// again in `retry_in_ms`; local changes are kept and sent later.
    Retrying {
        /// Why the connection failed.
        reason: String,
        /// Wait before the next attempt.
        retry_in_ms: i64,
    },
    /// The last `sync_now` could not reach the relay; retry later.
    Offline {
        /// Why the relay could not be reached.
        reason: String,
    },
    /// Sync stopped on an error that retrying does not fix (this device was
    /// revoked, the relay refused it, storage failed): see `reason`.
    Error {
        /// What stopped sync, for the user.
        reason: String,
    },
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncState::Disabled => f.write_str("Disabled"),
            SyncState::Idle => f.write_str("Idle"),
            SyncState::Connecting => f.write_str("Connecting"),
            SyncState::Syncing => f.write_str("Syncing"),
            SyncState::Live => f.write_str("Live"),
            SyncState::Retrying {
                reason,
                retry_in_ms,
            } => write!(f, "Retrying in {retry_in_ms} ms: {reason}"),
            SyncState::Offline { reason } => write!(f, "Offline: {reason}"),
            SyncState::Error { reason } => write!(f, "Error: {reason}"),
        }
    }
}

/// Implemented by the app (Kotlin, Swift, Python) to hear about changes.
///
/// The methods return a `Result` so that an exception the app's code throws
/// comes back as an error (logged and ignored: the change happened) rather than
/// as a Rust panic, which would end the process in the `release-ffi` build
/// (`panic = "abort"`). An app's implementation need not declare or throw it.
#[uniffi::export(with_foreign)]
pub trait KithListener: Send + Sync {
    /// Data changed: local writes and merges from other devices.
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError>;
    /// The sync state changed (called on every transition, from a thread of
    /// Kith's runtime). Called once with the current state when the listener
    /// is registered.
    fn on_sync_state(&self, state: SyncState) -> Result<(), KithError>;
}

/// The registered listeners of one `Kith`, by registration handle.
#[derive(Default)]
pub(crate) struct Listeners {
    inner: Mutex<ListenerTable>,
}

#[derive(Default)]
struct ListenerTable {
    next_handle: i64,
    entries: Vec<(i64, Arc<dyn KithListener>)>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.table().entries.len();
        f.debug_struct("Listeners").field("count", &n).finish()
    }
}

impl Listeners {
    fn table(&self) -> std::sync::MutexGuard<'_, ListenerTable> {
        // The table holds no invariant a panic could break halfway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a listener; returns the handle that removes it.
    pub(crate) fn add(&self, listener: Arc<dyn KithListener>) -> KithResult<i64> {
        let mut table = self.table();
        if table.entries.len() >= LISTENERS_MAX {
            return Err(KithError::invalid(
                "listener",
                format!("at most {LISTENERS_MAX} listeners can be registered; remove unused ones"),
            ));
        }
        table.next_handle += 1;
        let handle = table.next_handle;
        table.entries.push((handle, listener));
        Ok(handle)
    }

    /// Removes a listener; `false` when the handle was not registered.
    pub(crate) fn remove(&self, handle: i64) -> bool {
        let mut table = self.table();
        let before = table.entries.len();
        table.entries.retain(|(h, _)| *h != handle);
        table.entries.len() != before
    }

    fn snapshot(&self) -> Vec<Arc<dyn KithListener>> {
        self.table()
            .entries
            .iter()
            .map(|(_, l)| Arc::clone(l))
            .collect()
    }

    /// Tells every listener about a change. Never fails: the change happened.
    pub(crate) fn changed(&self, summary: &ChangeSummary) {
        if summary == &ChangeSummary::default() {
            return;
        }
        for listener in self.snapshot() {
            match catch_unwind(AssertUnwindSafe(|| listener.on_change(summary.clone()))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("a KithListener failed in on_change: {e}"),
                Err(payload) => tracing::warn!(
                    "a KithListener panicked in on_change: {}",
                    crate::guard::panic_message(payload.as_ref())
                ),
            }
        }
    }

    /// Tells every listener the sync state.
    pub(crate) fn sync_state(&self, state: &SyncState) {
        for listener in self.snapshot() {
            Self::sync_state_to(listener.as_ref(), state.clone());
        }
    }

    /// Tells one listener the sync state.
    pub(crate) fn sync_state_to(listener: &dyn KithListener, state: SyncState) {
        match catch_unwind(AssertUnwindSafe(|| listener.on_sync_state(state))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("a KithListener failed in on_sync_state: {e}"),
            Err(payload) => tracing::warn!(
                "a KithListener panicked in on_sync_state: {}",
                crate::guard::panic_message(payload.as_ref())
            ),
        }
    }
}
