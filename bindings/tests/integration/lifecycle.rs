use std::sync::{Arc, Mutex};

use kith_ffi::{ChangeSummary, ContactSort, Kith, KithError, KithListener, SyncState};

use crate::{contact, met, open};

/// A future driven to completion on a throwaway runtime, as the foreign executor does.
fn wait<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[derive(Default)]
struct Heard(Mutex<Vec<ChangeSummary>>);

impl KithListener for Heard {
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError> {
        self.0.lock().unwrap().push(summary);
        Ok(())
    }
    fn on_sync_state(&self, _: SyncState) -> Result<(), KithError> {
        Ok(())
    }
}

#[test]
fn handles_on_one_folder_share_one_engine_and_the_store_closes_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let ui = Kith::open(path.display().to_string()).unwrap();
    let heard = Arc::new(Heard::default());
    ui.add_listener(heard.clone()).unwrap();
    ui.add_contact(contact("Ana Lima")).unwrap();
    // The worker opens the same folder by another spelling: one engine, no `Locked`.
    let worker = Kith::open(path.join("..").join("store").display().to_string()).unwrap();
    let bo = worker.add_contact(contact("Bo Chen")).unwrap();
    assert_eq!(ui.get_contact(bo.id.clone()).unwrap().name, "Bo Chen");
    assert!(
        heard
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contact_ids == [bo.id.clone()]),
        "the UI's listener hears the worker's write"
    );
    // Closing one handle leaves the other working.
    worker.close().unwrap();
    assert!(matches!(
        worker.list_contacts(ContactSort::Name, 0, 10, false),
        Err(KithError::Locked { .. })
    ));
    assert_eq!(
        ui.list_contacts(ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        2
    );
    // Still held by this process: another process cannot write.
    assert!(matches!(
        kith_core::Store::open(&path),
        Err(kith_core::StoreError::Locked { .. })
    ));
    ui.close().unwrap();
    ui.close().unwrap();
    let mut other = kith_core::Store::open(&path).unwrap();
    other
        .add_contact(kith_core::NewContact::named("Written by another process"))
        .unwrap();
    other.close().unwrap();
    let again = Kith::open(path.display().to_string()).unwrap();
    assert_eq!(
        again
            .list_contacts(ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn the_store_is_released_only_when_no_handle_is_in_the_foreground() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let ui = Kith::open(path.display().to_string()).unwrap();
    let ana = ui.add_contact(contact("Ana Lima")).unwrap();
    let worker = Kith::open(path.display().to_string()).unwrap();
    // The UI goes to the background while the worker runs: nothing is closed under it.
    wait(Arc::clone(&ui).enter_background()).unwrap();
    wait(Arc::clone(&ui).enter_background()).unwrap(); // idempotent
    assert!(!ui.is_in_foreground() && !ui.is_released());
    worker
        .log_interaction(met("Logged by the worker", &[&ana.id]))
        .unwrap();
    assert_eq!(ui.get_contact(ana.id.clone()).unwrap().name, "Ana Lima");
    // The worker finishes: no handle in front, the store is released for other processes.
    worker.close().unwrap();
    assert!(ui.is_released());
    assert!(matches!(
        ui.get_contact(ana.id.clone()),
        Err(KithError::Locked { .. })
    ));
    let mut extension = kith_core::Store::open(&path).unwrap();
    extension
        .add_contact(kith_core::NewContact::named("From the share sheet"))
        .unwrap();
    extension.close().unwrap();
    wait(Arc::clone(&ui).enter_foreground()).unwrap();
    wait(Arc::clone(&ui).enter_foreground()).unwrap(); // idempotent
    assert!(ui.is_in_foreground() && !ui.is_released());
    assert_eq!(
        ui.timeline(Some(ana.id.clone()), 0, 10, false).unwrap()[0].summary,
        "Logged by the worker"
    );
    assert_eq!(
        ui.list_contacts(ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        2
    );
    // A new handle while the store is released takes it again.
    wait(Arc::clone(&ui).enter_background()).unwrap();
    assert!(ui.is_released());
    let worker = Kith::open(path.display().to_string()).unwrap();
    assert!(!ui.is_released());
    worker.close().unwrap();
    assert!(ui.is_released());
    ui.close().unwrap();
    assert!(matches!(
        wait(Arc::clone(&ui).enter_foreground()),
        Err(KithError::Locked { .. })
    ));
    assert!(matches!(
        wait(Arc::clone(&ui).enter_background()),
        Err(KithError::Locked { .. })
    ));
}

/// Records the library's log lines, so a test can see a wait begin.
struct Waiting(std::sync::mpsc::SyncSender<()>);

impl kith_ffi::KithLogger for Waiting {
    fn log(&self, record: kith_ffi::LogRecord) -> Result<(), KithError> {
        if record.message.contains("waiting for it") {
            let _ = self.0.try_send(());
        }
        Ok(())
    }
}

#[test]
fn an_extension_handle_waits_for_the_apps_lock_then_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // The main app holds the store (here in this process; on a phone, the app's process).
    let mut app = kith_core::Store::open(&path).unwrap();
    app.add_contact(kith_core::NewContact::named("Ana Lima"))
        .unwrap();
    assert!(matches!(
        Kith::open_waiting(path.display().to_string(), 10_001),
        Err(KithError::InvalidInput { ref field, .. }) if field == "lock_wait_ms"
    ));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    kith_ffi::set_logger(Arc::new(Waiting(tx)), kith_ffi::LogLevel::Warn).unwrap();
    let path_text = path.display().to_string();
    let extension = std::thread::spawn(move || {
        let extension = Kith::open_waiting(path_text, 10_000)?;
        extension.add_contact(contact("Shared from Safari"))?;
        extension.close()
    });
    // Released once the extension says it waits: the wait is what is tested.
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the extension waits for the app's lock");
    app.close().unwrap();
    extension.join().unwrap().unwrap();
    kith_ffi::clear_logger();
    let app = kith_core::Store::open(&path).unwrap();
    assert_eq!(app.all_contacts().unwrap().len(), 2);
}

#[test]
fn dropping_the_last_handle_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    kith.add_contact(contact("Ana Lima")).unwrap();
    drop(kith);
    let again = open(&dir);
    assert_eq!(
        again
            .list_contacts(ContactSort::Name, 0, 10, false)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_data_dir_that_is_a_file_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match Kith::open(file.display().to_string()) {
        Err(KithError::Storage { reason }) => assert!(reason.contains("not-a-dir"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn async_methods_complete_from_another_executor() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    kith.log_interaction(met("Budget review", &[&ana.id]))
        .unwrap();
    // The foreign side polls these futures with its own executor; a plain
    // current-thread runtime stands in for it here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let found = rt
        .block_on(std::sync::Arc::clone(&kith).ffi_search("budget".into(), 10))
        .unwrap();
    assert_eq!(found.interactions.len(), 1);
    rt.block_on(std::sync::Arc::clone(&kith).reindex()).unwrap();
    let report = rt
        .block_on(std::sync::Arc::clone(&kith).check_store())
        .unwrap();
    assert!(report.clean, "{report:?}");
    assert!(report.documents >= 2);
    assert!(report.damaged_documents.is_empty() && report.index_tables_reindex_repairs.is_empty());
    let err = rt
        .block_on(std::sync::Arc::clone(&kith).ffi_search("x".into(), 0))
        .unwrap_err();
    assert!(matches!(err, KithError::InvalidInput { ref field, .. } if field == "limit"));
}

/// Records the name of the thread each `on_change` runs on.
#[derive(Default)]
struct Threads(Mutex<Vec<String>>);

impl KithListener for Threads {
    fn on_change(&self, _: ChangeSummary) -> Result<(), KithError> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        self.0.lock().unwrap().push(name);
        Ok(())
    }
    fn on_sync_state(&self, _: SyncState) -> Result<(), KithError> {
        Ok(())
    }
}

/// The threading rule: the exported (`ffi_*`) store calls run on Kith's runtime, not on the
/// caller's thread, so a foreign main thread awaiting them is never blocked by the fsync; the
/// blocking Rust methods run where they are called.
#[test]
fn the_exported_async_calls_run_on_the_kith_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store").display().to_string();
    let kith = wait(Kith::ffi_open(path)).unwrap();
    let threads = Arc::new(Threads::default());
    kith.add_listener(Arc::clone(&threads) as Arc<dyn KithListener>)
        .unwrap();
    let ana = wait(Arc::clone(&kith).ffi_add_contact(contact("Ana Lima"))).unwrap();
    let got = wait(Arc::clone(&kith).ffi_get_contact(ana.id.clone())).unwrap();
    assert_eq!(got, ana);
    kith.add_contact(contact("Bo Chen")).unwrap();
    let names = threads.0.lock().unwrap().clone();
    let caller = std::thread::current().name().unwrap_or("").to_owned();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        names[0], "kith-ffi",
        "the async write ran on {:?}",
        names[0]
    );
    assert_eq!(
        names[1], caller,
        "the blocking Rust call ran on {:?}",
        names[1]
    );
    wait(Arc::clone(&kith).ffi_close()).unwrap();
    assert!(matches!(
        wait(Arc::clone(&kith).ffi_get_contact(ana.id)),
        Err(KithError::Locked { .. })
    ));
}

/// Signed types at the boundary: a negative count, offset, limit or duration is
/// `InvalidInput` naming it, never a wrap-around or a panic.
#[test]
fn negative_counts_offsets_and_durations_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    let field = |r: Result<(), KithError>| match r {
        Err(KithError::InvalidInput { field, .. }) => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let list = |offset, limit| {
        kith.list_contacts(ContactSort::Name, offset, limit, false)
            .map(drop)
    };
    assert_eq!(field(list(-1, 10)), "offset");
    assert_eq!(field(list(0, -10)), "limit");
    assert_eq!(field(list(0, i32::MAX)), "limit");
    assert_eq!(
        field(kith.timeline(None, i32::MIN, 10, false).map(drop)),
        "offset"
    );
    assert_eq!(field(kith.search("ana".into(), -1).map(drop)), "limit");
    assert_eq!(field(kith.set_sync_timeout_ms(-5)), "timeout_ms");
    let mut c = contact("Bo");
    c.cadence_days = Some(-30);
    assert_eq!(field(kith.add_contact(c).map(drop)), "cadence_days");
    let mut c = contact("Cy");
    c.birthday = Some(kith_ffi::PartialDate {
        year: None,
        month: -1,
        day: 300,
    });
    assert_eq!(field(kith.add_contact(c).map(drop)), "birthday");
    let open_waiting =
        Kith::open_waiting(dir.path().join("other").display().to_string(), -1).map(drop);
    assert_eq!(field(open_waiting), "lock_wait_ms");
    assert!(matches!(
        wait(Arc::clone(&kith).invite(-1)),
        Err(KithError::InvalidInput { ref field, .. }) if field == "ttl_minutes"
    ));
    // Nothing was written by the refused calls.
    let names: Vec<_> = kith
        .list_contacts(ContactSort::Name, 0, 10, false)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Ana Lima"]);
    assert_eq!(kith.get_contact(ana.id).unwrap().name, "Ana Lima");
}

/// `SyncState` and `KithError` print their `Display` text on the foreign side (exported).
#[test]
fn sync_states_and_errors_print_readably() {
    let retrying = SyncState::Retrying {
        reason: "connection refused".into(),
        retry_in_ms: 500,
    };
    assert_eq!(
        retrying.to_string(),
        "Retrying in 500 ms: connection refused"
    );
    assert_eq!(SyncState::Live.to_string(), "Live");
    let e = KithError::InvalidInput {
        field: "limit".into(),
        reason: "must be between 1 and 1000 (got 0)".into(),
    };
    assert_eq!(
        e.to_string(),
        "invalid limit: must be between 1 and 1000 (got 0)"
    );
}
