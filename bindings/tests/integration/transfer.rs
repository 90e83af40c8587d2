//! Insights, import/export and backup on the Rust side of the `Kith` object:
//! a vCard export imported into a second store, a backup restored, and the
//! metric states of an empty store.

use kith_ffi::{KithError, MetricState, restore_backup};

use crate::{contact, met, open};

#[test]
fn a_vcard_export_imports_into_another_store_and_reimports_as_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (open(&a), open(&b));
    src.add_contact(contact("Ana Lima")).unwrap();
    src.add_contact(contact("Bo Chen")).unwrap();
    let vcf = src.export_vcard().unwrap().into_bytes();

    let dry = dst.import_vcard(vcf.clone(), true).unwrap();
    assert_eq!(dry.created.len(), 2);
    assert!(dry.created.iter().all(|c| c.contact_id.is_none()));
    let done = dst.import_vcard(vcf.clone(), false).unwrap();
    let mut names: Vec<String> = done
        .created
        .iter()
        .map(|c| dst.get_contact(c.contact_id.clone().unwrap()).unwrap().name)
        .collect();
    names.sort();
    assert_eq!(names, ["Ana Lima", "Bo Chen"]);
    let again = dst.import_vcard(vcf, false).unwrap();
    assert!(again.created.is_empty());
    assert_eq!(again.already_imported.len(), 2);

    let err = dst
        .import_vcard(b"no cards here".to_vec(), false)
        .unwrap_err();
    assert!(
        matches!(err, KithError::InvalidInput { ref field, .. } if field == "bytes"),
        "{err:?}"
    );
}

/// Two cards of one file for the same person (same email, other UIDs): one
/// contact, the other card reported against the earlier one's line, and
/// against the created contact once applied.
#[test]
fn look_alike_cards_of_one_file_are_reported_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let vcf =
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:Ana Lima\r\nEMAIL:ana@x.org\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:A. Lima\r\nEMAIL:ANA@x.org\r\nEND:VCARD\r\n"
            .to_vec();
    let dry = kith.import_vcard(vcf.clone(), true).unwrap();
    assert_eq!(dry.created.len(), 1);
    assert_eq!(dry.likely_duplicates.len(), 1);
    let dup = &dry.likely_duplicates[0];
    assert_eq!((dup.source_line, dup.same_as_line), (7, Some(1)));
    assert_eq!(dup.merge_into_id, None);

    let done = kith.import_vcard(vcf.clone(), false).unwrap();
    let ana = done.created[0].contact_id.clone().unwrap();
    assert_eq!(done.likely_duplicates[0].merge_into_id, Some(ana.clone()));
    assert_eq!(done.likely_duplicates[0].same_as_line, Some(1));
    let again = kith.import_vcard(vcf, false).unwrap();
    assert!(again.created.is_empty());
    assert_eq!(again.likely_duplicates[0].merge_into_id, Some(ana));
    assert_eq!(again.likely_duplicates[0].same_as_line, None);
}

#[test]
fn a_backup_restores_only_with_its_passphrase() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kith = open(&a);
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    let iid = kith.log_interaction(met("Coffee", &[&ana.id])).unwrap();
    let sealed = kith.backup("a long passphrase".into(), true).unwrap();
    let target = b.path().join("restored").display().to_string();

    let wrong =
        restore_backup(target.clone(), "another one".into(), sealed.clone(), None).unwrap_err();
    assert!(
        matches!(wrong, KithError::InvalidInput { ref field, .. } if field == "passphrase"),
        "{wrong:?}"
    );
    assert!(!b.path().join("restored").exists());

    let restored = restore_backup(target, "a long passphrase".into(), sealed, None).unwrap();
    assert_eq!(restored.get_contact(ana.id).unwrap().name, "Ana Lima");
    assert_eq!(restored.get_interaction(iid).unwrap().summary, "Coffee");
    restored.close().unwrap();
}

#[test]
fn an_empty_store_has_no_data_and_nothing_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let ins = kith.insights(Some(1_767_225_600_000)).unwrap();
    assert_eq!(ins.circle_balance.status.state, MetricState::NoData);
    assert!(ins.circle_balance.status.reason.is_some());
    assert!(ins.reconnect.top.is_empty());
    let json = kith.insights_json(Some(1_767_225_600_000)).unwrap();
    assert!(json.contains("\"no_data\""), "{json}");
}
