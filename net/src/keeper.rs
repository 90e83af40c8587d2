//! Keeps a long-running process's store out of other processes' way, and
//! notices their writes.
//!
//! A watcher (`kith sync --watch`, `kith serve-peer`, a phone app in the
//! background) shares its [`Store`] with network tasks behind a mutex. The
//! keeper task, every `tick_ms`:
//! 1. parks the store when the file was idle for `idle_ms`, so redb's file
//!    lock is held only for the milliseconds a sync step takes and
//!    `kith log` in another terminal can open the store meanwhile;
//! 2. checks the store file's size and modification time (one `stat`, no
//!    lock); when they moved (or every `full_check_ms` regardless), it reads
//!    [`Store::change_marker`] (a digest of every document's heads, read from
//!    metadata) and calls `on_change` when the marker differs from the last
//!    one seen. The network side turns that into a push (relay) or an
//!    exchange (peer).
//!
//! The marker also moves when this process merges remote changes; the
//! resulting push or exchange finds nothing of its own to send and costs
//! one small round trip at most.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use kith_core::Store;
use tokio::sync::watch;

/// How often the keeper parks and polls.
#[derive(Debug, Clone, Copy)]
pub struct KeeperOptions {
    /// Period of the keeper's loop.
    pub tick_ms: u64,
    /// Park the store after this long without file access.
    pub idle_ms: u64,
    /// Read the change marker at least this often even if the file looks unchanged.
    pub full_check_ms: u64,
}

impl Default for KeeperOptions {
    fn default() -> Self {
        Self {
            tick_ms: 50,
            idle_ms: 100,
            full_check_ms: 2_000,
        }
    }
}

fn file_stamp(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn lock(m: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // Every store write is one redb transaction: a panic elsewhere cannot
    // leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs until `shutdown` turns true. `on_change` is called (from this task)
/// whenever the documents changed since the last check.
pub async fn keep_store(
    store: &Mutex<Store>,
    opts: KeeperOptions,
    shutdown: &mut watch::Receiver<bool>,
    mut on_change: impl FnMut(),
) {
    let path = lock(store).file_path().to_path_buf();
    let mut marker = lock(store).change_marker().ok();
    let mut stamp = file_stamp(&path);
    let mut last_full = Instant::now();
    let tick = Duration::from_millis(opts.tick_ms.max(1));
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            r = shutdown.changed() => if r.is_err() { return },
        }
        let now_stamp = file_stamp(&path);
        let full = last_full.elapsed() >= Duration::from_millis(opts.full_check_ms);
        if now_stamp != stamp || full {
            stamp = now_stamp;
            last_full = Instant::now();
            let m = {
                let st = lock(store);
                st.change_marker()
            };
            match m {
                Ok(m) => {
                    if marker.is_some_and(|old| old != m) {
                        on_change();
                    }
                    marker = Some(m);
                }
                // Locked by another process for longer than the store's
                // lock wait: try again next tick.
                Err(e) => tracing::debug!(error = %e, "change check skipped"),
            }
        }
        let parked = lock(store).park_if_idle(opts.idle_ms);
        if let Err(e) = parked {
            tracing::warn!(error = %e, "could not park the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_core::{NewContact, NewInteraction, ParticipantRef};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn log(store: &mut Store, s: &str) {
        let c = store.add_contact(NewContact::named(s)).unwrap();
        store
            .log_interaction(NewInteraction {
                summary: s.into(),
                participants: vec![ParticipantRef::Id(c.id)],
                ..NewInteraction::default()
            })
            .unwrap();
    }

    #[tokio::test]
    async fn parks_when_idle_and_reports_writes_by_another_opener() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open_waiting(dir.path(), 3_000).unwrap()));
        log(&mut store.lock().unwrap(), "own");
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let seen = Arc::new(AtomicUsize::new(0));
        let (s2, seen2) = (store.clone(), seen.clone());
        let task = tokio::spawn(async move {
            keep_store(&s2, KeeperOptions::default(), &mut stop_rx, || {
                seen2.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.lock().unwrap().is_parked() {
            assert!(Instant::now() < deadline, "never parked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut other = Store::open_waiting(&d, 3_000).unwrap();
            log(&mut other, "other");
            other.close().unwrap();
        })
        .await
        .unwrap();
        while seen.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the other write went unnoticed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            store
                .lock()
                .unwrap()
                .search("other", 10)
                .unwrap()
                .interactions
                .len(),
            1
        );
    }
}
