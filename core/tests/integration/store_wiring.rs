//! Import and backup wired to a real store (redb files in temp directories):
//! idempotent re-import, likely duplicates left for the user, and backup ->
//! restore giving an equal store, index included; bad passphrases and damaged
//! files write nothing.

use std::collections::BTreeSet;

use kith_core::DuplicateReason;
use kith_core::backup::{
    BackupError, BackupParams, StoreBackupError, backup_store, restore_store,
    restore_store_with_key_file,
};
use kith_core::export::{KithExport, read_json, write_json};
use kith_core::identity::{FileKeyStore, KeyStore};
use kith_core::import::{ApplyOptions, MergeTarget, apply_plan, plan_for_store};
use kith_core::model::{Circle, GoalStatus, ProjectStatus, Settings};
use kith_core::sync::DeviceIdentity;
use kith_core::{NewContact, NewGoal, NewInteraction, NewProject, ParticipantRef, Store};
use kith_formats::{VcardLimits, vcard_drafts};

use crate::import_vcard::fixture;

const FAST: BackupParams = BackupParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

const FILES: &[&str] = &[
    "John_Doe_ANDROID.vcf",
    "John_Doe_EVOLUTION.vcf",
    "John_Doe_GMAIL.vcf",
    "John_Doe_MAC_ADDRESS_BOOK.vcf",
    "fullcontact.vcf",
    "gmail-list.vcf",
    "gmail-single.vcf",
    "outlook-2003.vcf",
    "rfc2426-example.vcf",
    "rfc6350-example.vcf",
];

fn import_file(
    store: &mut Store,
    file: &str,
    create_likely_duplicates: bool,
) -> kith_core::import::ApplyReport {
    let my_org = store.settings().unwrap().my_organisation;
    let batch = vcard_drafts(&fixture(file), &VcardLimits::default(), my_org.as_deref()).unwrap();
    let plan = plan_for_store(store, batch.drafts).unwrap();
    apply_plan(
        store,
        &plan,
        &ApplyOptions {
            create_likely_duplicates,
            now_ms: 1_700_000_000_000,
        },
    )
    .unwrap()
}

#[test]
fn reimport_into_the_store_creates_nothing_even_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut created = 0;
    for file in FILES {
        created += import_file(&mut store, file, true).created.len();
    }
    // 6 + 1 + 1 + 1 + 1 + 3 + 1 + 1 + 2 + 1 cards.
    assert_eq!(created, 18);
    assert_eq!(store.all_contacts().unwrap().len(), 18);
    let doe = store
        .contacts_named("Mr. John Richter, James Doe Sr.")
        .unwrap();
    // Evolution, Gmail and Mac Address Book (names compare without punctuation).
    assert_eq!(doe.len(), 3);
    store.close().unwrap();

    let mut store = Store::open(dir.path()).unwrap();
    for file in FILES {
        let report = import_file(&mut store, file, true);
        assert!(report.created.is_empty(), "{file}: {report:?}");
        assert!(report.keys_added.is_empty(), "{file}: {report:?}");
    }
    assert_eq!(store.all_contacts().unwrap().len(), 18);
}

#[test]
fn likely_duplicates_are_left_for_the_user_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut existing = NewContact::named("Greg D.");
    existing.emails.push(kith_core::model::ContactPoint {
        value: "GDartmouth@hotmail.com".into(),
        label: String::new(),
    });
    let greg = store.add_contact(existing).unwrap();
    let report = import_file(&mut store, "gmail-single.vcf", false);
    assert!(report.created.is_empty());
    assert_eq!(report.likely_duplicates_skipped, 1);
    assert_eq!(store.all_contacts().unwrap().len(), 1);
    let plan = plan_for_store(
        &store,
        vcard_drafts(&fixture("gmail-single.vcf"), &VcardLimits::default(), None)
            .unwrap()
            .drafts,
    )
    .unwrap();
    assert_eq!(
        plan.likely_duplicates[0].merge_into,
        MergeTarget::Existing(greg.id)
    );
    let report = import_file(&mut store, "gmail-single.vcf", true);
    assert_eq!(report.created.len(), 1);
    assert_eq!(store.all_contacts().unwrap().len(), 2);
}

/// The John Doe exports of one person by three clients, imported together in
/// one call: one contact is created, the other two cards are reported as
/// likely duplicates of it (no id before applying: the line of the first
/// card), and a re-import of the same input creates nothing.
#[test]
fn look_alike_cards_of_one_input_create_one_contact() {
    let mut input = Vec::new();
    let mut starts = Vec::new();
    for file in [
        "John_Doe_EVOLUTION.vcf",
        "John_Doe_GMAIL.vcf",
        "John_Doe_MAC_ADDRESS_BOOK.vcf",
    ] {
        starts.push(input.iter().filter(|b| **b == b'\n').count() + 1);
        input.extend_from_slice(&fixture(file));
        if !input.ends_with(b"\n") {
            input.extend_from_slice(b"\r\n");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let drafts = || {
        vcard_drafts(&input, &VcardLimits::default(), None)
            .unwrap()
            .drafts
    };
    assert_eq!(drafts().len(), 3);
    let plan = plan_for_store(&store, drafts()).unwrap();
    assert_eq!(plan.create.len(), 1, "{plan:?}");
    assert_eq!(plan.create[0].source_line, starts[0]);
    assert_eq!(plan.likely_duplicates.len(), 2);
    let first = MergeTarget::EarlierDraft {
        create_index: 0,
        source_line: starts[0],
    };
    for (d, start) in plan.likely_duplicates.iter().zip(&starts[1..]) {
        assert_eq!(d.draft.source_line, *start);
        assert_eq!(d.merge_into, first);
        // Gmail and Mac both carry the Evolution card's email and the same name.
        assert!(
            d.reasons
                .contains(&DuplicateReason::SameEmail("john.doe@ibm.com".into())),
            "{d:?}"
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| matches!(r, DuplicateReason::SameName(_)))
        );
    }
    let report = apply_plan(
        &mut store,
        &plan,
        &ApplyOptions {
            create_likely_duplicates: false,
            now_ms: 1_700_000_000_000,
        },
    )
    .unwrap();
    assert_eq!(report.created.len(), 1);
    assert_eq!(report.likely_duplicates_skipped, 2);
    assert_eq!(report.merge_target(first), Some(report.created[0]));
    assert_eq!(store.all_contacts().unwrap().len(), 1);

    // Again: the first card is already imported, the others look like the
    // contact it became.
    let again = plan_for_store(&store, drafts()).unwrap();
    assert!(again.create.is_empty(), "{again:?}");
    assert_eq!(again.already_imported.len(), 1);
    for d in &again.likely_duplicates {
        assert_eq!(d.merge_into, MergeTarget::Existing(report.created[0]));
    }
    assert_eq!(again.likely_duplicates.len(), 2);

    // Asked to, the look-alikes are created too (and can then be merged).
    let fresh = tempfile::tempdir().unwrap();
    let mut store = Store::open(fresh.path()).unwrap();
    let plan = plan_for_store(&store, drafts()).unwrap();
    let report = apply_plan(
        &mut store,
        &plan,
        &ApplyOptions {
            create_likely_duplicates: true,
            now_ms: 1_700_000_000_000,
        },
    )
    .unwrap();
    assert_eq!(report.created.len(), 3);
    assert_eq!(report.merge_target(first), Some(report.created[0]));
    store
        .merge_contacts(report.created[0], report.created[1])
        .unwrap();
}

fn populated_store(dir: &std::path::Path) -> Store {
    let mut store = Store::open(dir).unwrap();
    store
        .set_settings(Settings {
            my_organisation: Some("IBM".into()),
            strategic_target: Some(0.3),
            ..Settings::default()
        })
        .unwrap();
    for file in FILES {
        import_file(&mut store, file, true);
    }
    let contacts = store.all_contacts().unwrap();
    let project = store
        .add_project(NewProject {
            name: "Ward redesign".into(),
            description: "with the nurses".into(),
            status: ProjectStatus::Active,
        })
        .unwrap();
    // Two calendar quarters, so two log documents.
    for (i, at_ms) in [1_700_000_000_000i64, 1_710_000_000_000, 1_720_000_000_000]
        .into_iter()
        .enumerate()
    {
        store
            .log_interaction(NewInteraction {
                at_ms: Some(at_ms),
                participants: vec![
                    ParticipantRef::Id(contacts[i].id),
                    ParticipantRef::Id(contacts[i + 1].id),
                ],
                summary: format!("meeting {i}"),
                notes: "notes é ✓".into(),
                project: Some(project.id),
                ..NewInteraction::default()
            })
            .unwrap();
    }
    store
        .add_goal(NewGoal {
            title: "Find a mentor".into(),
            priority: 1,
            status: GoalStatus::Active,
            contacts: [contacts[3].id].into_iter().collect::<BTreeSet<_>>(),
        })
        .unwrap();
    let mut c = NewContact::named("Strategic Sam");
    c.circles.insert(Circle::Strategic);
    let sam = store.add_contact(c).unwrap();
    store.merge_contacts(contacts[0].id, sam.id).unwrap();
    store
}

#[test]
fn backup_then_restore_gives_an_equal_store_index_included() {
    let dir = tempfile::tempdir().unwrap();
    let original_dir = dir.path().join("original");
    let mut original = populated_store(&original_dir);
    let mut keys = kith_core::identity::KeyMaterial::generate("laptop");
    kith_core::sync::membership::create_account(&mut original, &mut keys, 1_700_000_000_000)
        .unwrap();
    let sealed = backup_store(&mut original, "backup passphrase", &FAST, Some(&keys), 5).unwrap();

    let restored_dir = dir.path().join("restored");
    let restored = restore_store(&restored_dir, "backup passphrase", &sealed).unwrap();
    let back = restored.keys.as_ref().unwrap();
    assert_eq!(back.account, keys.account);
    assert_eq!(back.device_key, keys.device_key);
    assert_eq!(back.seal_key, keys.seal_key);
    // restore_store leaves writing the keys to the caller.
    assert!(!restored_dir.join(FileKeyStore::FILE_NAME).exists());
    let mut restored = restored.store;

    assert_eq!(
        restored.all_contacts().unwrap(),
        original.all_contacts().unwrap()
    );
    assert_eq!(
        restored.all_interactions().unwrap(),
        original.all_interactions().unwrap()
    );
    assert_eq!(
        restored.all_projects().unwrap(),
        original.all_projects().unwrap()
    );
    assert_eq!(restored.all_goals().unwrap(), original.all_goals().unwrap());
    assert_eq!(restored.settings().unwrap(), original.settings().unwrap());
    assert_eq!(
        restored.index_dump().unwrap(),
        original.index_dump().unwrap()
    );
    let ids = original.doc_ids().unwrap();
    assert!(ids.len() >= 3, "main + log partitions: {ids:?}");
    assert_eq!(restored.doc_ids().unwrap(), ids);
    for id in ids {
        assert_eq!(
            restored.heads(id).unwrap(),
            original.heads(id).unwrap(),
            "{id}"
        );
    }
    // The restored store keeps working: a re-import creates nothing.
    let report = import_file(&mut restored, "gmail-list.vcf", true);
    assert!(report.created.is_empty());

    // Without keys.
    let sealed = backup_store(&mut original, "backup passphrase", &FAST, None, 5).unwrap();
    let again = restore_store(&dir.path().join("no-keys"), "backup passphrase", &sealed).unwrap();
    assert!(again.keys.is_none());
}

#[test]
fn json_export_of_a_store_loads_into_another_equal_store() {
    let dir = tempfile::tempdir().unwrap();
    let original = populated_store(&dir.path().join("original"));
    let export = KithExport::from_store(&original, 7).unwrap();
    assert!(export.contacts.iter().any(|c| c.merged_into.is_some()));
    let mut json = Vec::new();
    write_json(&export, &mut json).unwrap();
    let mut copy = Store::open(dir.path().join("copy")).unwrap();
    read_json(&json).unwrap().load_into(&mut copy).unwrap();
    assert_eq!(
        copy.all_contacts().unwrap(),
        original.all_contacts().unwrap()
    );
    assert_eq!(
        copy.all_interactions().unwrap(),
        original.all_interactions().unwrap()
    );
    assert_eq!(
        copy.all_projects().unwrap(),
        original.all_projects().unwrap()
    );
    assert_eq!(copy.all_goals().unwrap(), original.all_goals().unwrap());
    assert_eq!(copy.settings().unwrap(), original.settings().unwrap());
    // Loading the same export again changes nothing.
    read_json(&json).unwrap().load_into(&mut copy).unwrap();
    assert_eq!(
        copy.all_contacts().unwrap(),
        original.all_contacts().unwrap()
    );
    assert_eq!(KithExport::from_store(&copy, 7).unwrap(), export);
}

#[test]
fn wrong_passphrase_damage_or_a_used_directory_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut original = populated_store(&dir.path().join("original"));
    let sealed = backup_store(&mut original, "right horse battery staple", &FAST, None, 5).unwrap();
    let target = dir.path().join("target");

    let err = restore_store(&target, "wrong", &sealed).unwrap_err();
    assert!(
        matches!(err, StoreBackupError::Backup(BackupError::WrongPassphrase)),
        "{err}"
    );
    assert!(!target.exists());

    let mut damaged = sealed.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x10;
    let err = restore_store(&target, "right horse battery staple", &damaged).unwrap_err();
    assert!(
        matches!(err, StoreBackupError::Backup(BackupError::Damaged { .. })),
        "{err}"
    );
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("original")]);

    let err = restore_store(
        &dir.path().join("original"),
        "right horse battery staple",
        &sealed,
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreBackupError::TargetNotEmpty { .. }),
        "{err}"
    );

    // An existing empty directory is fine.
    std::fs::create_dir(&target).unwrap();
    restore_store(&target, "right horse battery staple", &sealed).unwrap();
}

/// A backup with the device keys restores the same device: the key file is
/// byte for byte the original's (owner-only), the identity derived from it is
/// the same, and the store is equal. Without keys, no key material is in the
/// decrypted payload at all.
#[test]
fn backup_with_keys_restores_the_same_device_and_without_keys_holds_none() {
    let dir = tempfile::tempdir().unwrap();
    let original_dir = dir.path().join("original");
    let mut original = populated_store(&original_dir);
    let mut material = kith_core::identity::KeyMaterial::generate("laptop");
    let (identity, _code) = kith_core::sync::membership::create_account(
        &mut original,
        &mut material,
        1_700_000_000_000,
    )
    .unwrap();
    let key_store = FileKeyStore::in_dir(&original_dir);
    key_store.save(&material).unwrap();
    let keys = key_store.load().unwrap().unwrap();
    let sealed = backup_store(
        &mut original,
        "correct horse battery staple",
        &FAST,
        Some(&keys),
        5,
    )
    .unwrap();

    let target = dir.path().join("restored");
    let restored =
        restore_store_with_key_file(&target, "correct horse battery staple", &sealed).unwrap();
    assert_eq!(
        restored.store.index_dump().unwrap(),
        original.index_dump().unwrap()
    );
    let key_file = target.join(FileKeyStore::FILE_NAME);
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        std::fs::read(key_store.path()).unwrap(),
        "identical key files"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The restored data directory and store are owner-only too.
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "restored data directory");
        let mode = std::fs::metadata(target.join("kith.redb"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "restored store");
    }
    let back = FileKeyStore::in_dir(&target).load().unwrap().unwrap();
    let again = DeviceIdentity::from_material(&back).unwrap();
    assert_eq!(again.account_id(), identity.account_id());
    assert_eq!(again.device_id(), identity.device_id());
    // The same X25519 key: epoch keys sealed to the device open again
    // (they are re-derived from the membership log after a restore).
    assert_eq!(again.seal_key().public(), identity.seal_key().public());

    // Without keys: no key material anywhere in the decrypted payload.
    let plain = backup_store(
        &mut original,
        "correct horse battery staple",
        &FAST,
        None,
        5,
    )
    .unwrap();
    let payload = kith_core::backup::open_payload("correct horse battery staple", &plain).unwrap();
    assert!(payload.keys.is_none());
    let bytes = kith_core::backup::open("correct horse battery staple", &plain).unwrap();
    for secret in [keys.device_key, keys.seal_key] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "a raw key is in the payload"
        );
    }
    assert!(
        !bytes
            .windows(b"device_key".len())
            .any(|w| w == b"device_key"),
        "serialised key material is in the payload"
    );
    let target = dir.path().join("restored-no-keys");
    let restored =
        restore_store_with_key_file(&target, "correct horse battery staple", &plain).unwrap();
    assert!(restored.keys.is_none());
    assert!(!target.join(FileKeyStore::FILE_NAME).exists());
    // The keyed backup does contain them (the search above can find them).
    let keyed = kith_core::backup::open("correct horse battery staple", &sealed).unwrap();
    assert!(
        keyed
            .windows(b"device_key".len())
            .any(|w| w == b"device_key")
    );
}

/// Key material that cannot be decoded fails the restore before anything is written.
#[test]
fn bad_key_material_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let payload = kith_core::backup::BackupPayload::new(5, vec![], Some(b"{not keys".to_vec()));
    let sealed =
        kith_core::backup::seal_payload("correct horse battery staple", &payload, &FAST).unwrap();
    let target = dir.path().join("target");
    let err =
        restore_store_with_key_file(&target, "correct horse battery staple", &sealed).unwrap_err();
    assert!(matches!(err, StoreBackupError::BadKeys { .. }), "{err}");
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
