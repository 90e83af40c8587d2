use kith_ffi::{ContactSort, Kith, KithError};

use crate::{contact, met, open};

#[test]
fn a_second_handle_is_locked_out_until_suspend_or_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store").display().to_string();
    let kith = open(&dir);
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    assert!(matches!(
        Kith::open(path.clone()),
        Err(KithError::Locked { .. })
    ));

    kith.suspend().unwrap();
    assert!(kith.is_suspended());
    assert!(matches!(
        kith.get_contact(ana.id.clone()),
        Err(KithError::Locked { .. })
    ));
    let other = Kith::open(path.clone()).unwrap();
    other
        .log_interaction(met("Logged by the share extension", &[&ana.id]))
        .unwrap();
    other.close().unwrap();

    kith.resume().unwrap();
    let timeline = kith.timeline(Some(ana.id.clone()), 0, 10, false).unwrap();
    assert_eq!(timeline[0].summary, "Logged by the share extension");

    kith.close().unwrap();
    kith.close().unwrap();
    assert!(matches!(kith.resume(), Err(KithError::Locked { .. })));
    assert!(matches!(kith.suspend(), Err(KithError::Locked { .. })));
    assert!(matches!(
        kith.list_contacts(ContactSort::Name, 0, 10, false),
        Err(KithError::Locked { .. })
    ));
    let reopened = Kith::open(path).unwrap();
    assert_eq!(reopened.get_contact(ana.id).unwrap().name, "Ana Lima");
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
        .block_on(std::sync::Arc::clone(&kith).search_async("budget".into(), 10))
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
        .block_on(std::sync::Arc::clone(&kith).search_async("x".into(), 0))
        .unwrap_err();
    assert!(matches!(err, KithError::InvalidInput { ref field, .. } if field == "limit"));
}
