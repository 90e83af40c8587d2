//! Export: vCard 4.0 round trip through the importer, JSON lossless and
//! versioned, CSV readable by a CSV reader.

use kith_core::export::{EXPORT_VERSION, JsonReadError, KithExport, read_json, write_json};
use kith_core::import::plan_import;
use kith_core::model::{Contact, Settings};
use kith_formats::csv_out::{
    CONTACT_COLUMNS, INTERACTION_COLUMNS, write_contacts_csv, write_interactions_csv,
};
use kith_formats::vcard_out::LINE_OCTETS_MAX;
use kith_formats::write_vcards;
use kith_formats::{VcardLimits, vcard_drafts};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::strategies;

fn assert_valid_vcard_4(text: &str) {
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "bare CR or LF"
    );
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.last(), Some(&""), "ends with CRLF");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.len() <= LINE_OCTETS_MAX,
            "line {i} has {} octets",
            l.len()
        );
        if *l == "BEGIN:VCARD" {
            assert_eq!(lines.get(i + 1), Some(&"VERSION:4.0"));
        }
    }
}

proptest! {
    #![proptest_config(crate::proptest_cases(256))]

    #[test]
    fn vcard_export_reimports_with_no_loss_of_vcard_fields(contacts in vec(strategies::contact(), 1..4)) {
        let text = write_vcards(&contacts);
        assert_valid_vcard_4(&text);
        let batch = vcard_drafts(text.as_bytes(), &VcardLimits::default(), None).unwrap();
        prop_assert!(batch.errors.is_empty(), "{:?}", batch.errors);
        prop_assert_eq!(batch.drafts.len(), contacts.len());
        for (c, d) in contacts.iter().zip(&batch.drafts) {
            prop_assert_eq!(&d.name, &c.name);
            prop_assert_eq!(&d.given_name, &c.given_name);
            prop_assert_eq!(&d.family_name, &c.family_name);
            prop_assert_eq!(&d.organisation, &c.organisation);
            prop_assert_eq!(&d.role, &c.role);
            prop_assert_eq!(&d.emails, &c.emails);
            prop_assert_eq!(&d.phones, &c.phones);
            prop_assert_eq!(&d.urls, &c.urls);
            prop_assert_eq!(&d.notes, &c.notes);
            prop_assert_eq!(&d.tags, &c.tags);
            prop_assert_eq!(&d.birthday, &c.birthday);
            let uid = format!("vcard-uid:{}", c.id);
            prop_assert!(d.import_keys.contains(&uid));
        }
        // Re-importing an export into the network it came from creates nothing.
        let plan = plan_import(batch.drafts, &contacts);
        prop_assert_eq!(plan.already_imported.len(), contacts.len());
    }

    #[test]
    fn json_export_is_lossless(
        settings in strategies::settings(),
        contacts in vec(strategies::contact(), 0..4),
        interactions in vec(strategies::interaction(), 0..4),
        projects in vec(strategies::project(), 0..3),
        goals in vec(strategies::goal(), 0..3),
        exported_ms in any::<i64>(),
    ) {
        let export = KithExport::new(exported_ms, settings, contacts, interactions, projects, goals);
        let mut bytes = Vec::new();
        write_json(&export, &mut bytes).unwrap();
        let back = read_json(&bytes).unwrap();
        prop_assert_eq!(back, export);
    }
}

#[test]
fn json_reader_refuses_newer_versions_and_other_files() {
    let export = KithExport::new(0, Settings::default(), vec![], vec![], vec![], vec![]);
    let mut v = serde_json::to_value(&export).unwrap();
    v["version"] = serde_json::json!(EXPORT_VERSION + 1);
    let err = read_json(v.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            JsonReadError::NewerVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("update Kith"), "{err}");
    // A newer version is refused even when the rest would not parse at all.
    let err =
        read_json(br#"{"format":"kith-export","version":7,"contacts":"new shape"}"#).unwrap_err();
    assert!(matches!(err, JsonReadError::NewerVersion { found: 7, .. }));
    assert!(matches!(
        read_json(br#"{"format":"other","version":1}"#),
        Err(JsonReadError::NotKithExport)
    ));
    assert!(matches!(
        read_json(b"[1,2]"),
        Err(JsonReadError::NotKithExport)
    ));
    assert!(matches!(
        read_json(b"{not json"),
        Err(JsonReadError::NotJson(_))
    ));
    assert!(matches!(
        read_json(br#"{"format":"kith-export","version":1,"contacts":[]}"#),
        Err(JsonReadError::Malformed(_))
    ));
    assert!(matches!(
        read_json(br#"{"format":"kith-export","version":0}"#),
        Err(JsonReadError::InvalidVersion { found: 0 })
    ));
}

#[test]
fn csv_exports_read_back_with_a_csv_reader() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut contacts: Vec<Contact> = (0..3)
        .map(|_| {
            strategies::contact()
                .new_tree(&mut runner)
                .unwrap()
                .current()
        })
        .collect();
    contacts[0].name = "Ada, \"the\" Countess\nof Lovelace".into();
    let mut interaction = strategies::interaction()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    interaction.participants = [contacts[0].id, contacts[1].id].into_iter().collect();
    interaction.summary = "Lunch; talked, laughed".into();

    let mut out = Vec::new();
    write_contacts_csv(&mut out, &contacts).unwrap();
    let mut r = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        CONTACT_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], contacts[0].id.to_string());
    assert_eq!(&rows[0][1], "Ada, \"the\" Countess\nof Lovelace");

    let mut out = Vec::new();
    write_interactions_csv(&mut out, std::slice::from_ref(&interaction), &contacts, &[]).unwrap();
    let mut r = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        INTERACTION_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][6], "Lunch; talked, laughed");
    let participants = &rows[0][4];
    assert!(
        participants.contains("Ada, \"the\" Countess"),
        "{participants}"
    );
    assert!(participants.contains(&contacts[1].name), "{participants}");
}
