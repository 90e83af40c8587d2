//! Import planning against existing contacts: idempotent re-import, likely
//! duplicates with a suggested merge target, LinkedIn exports.

use kith_core::import::{ContactDraft, MergeTarget, plan_import};
use kith_core::model::{Contact, ContactPoint};
use kith_core::{ContactId, DuplicateReason};
use kith_formats::linkedin::{LinkedinError, LinkedinLimits, parse_linkedin_csv};
use kith_formats::{VcardLimits, vcard_drafts};

use crate::import_vcard::fixture;

fn drafts(name: &str) -> Vec<ContactDraft> {
    vcard_drafts(&fixture(name), &VcardLimits::default(), None)
        .unwrap()
        .drafts
}

fn create_all(drafts: Vec<ContactDraft>) -> Vec<Contact> {
    drafts
        .into_iter()
        .map(|d| d.into_contact(ContactId::new(), 1_000))
        .collect()
}

fn contact(name: &str, email: Option<&str>, phone: Option<&str>) -> Contact {
    let mut d = drafts("gmail-single.vcf").remove(0);
    d.name = name.to_string();
    d.given_name = None;
    d.family_name = None;
    d.import_keys.clear();
    d.emails = email
        .map(|e| ContactPoint {
            value: e.into(),
            label: String::new(),
        })
        .into_iter()
        .collect();
    d.phones = phone
        .map(|p| ContactPoint {
            value: p.into(),
            label: String::new(),
        })
        .into_iter()
        .collect();
    d.into_contact(ContactId::new(), 1_000)
}

#[test]
fn reimporting_a_file_creates_nothing() {
    for file in [
        "John_Doe_ANDROID.vcf",
        "John_Doe_EVOLUTION.vcf",
        "John_Doe_MAC_ADDRESS_BOOK.vcf",
        "gmail-list.vcf",
        "fullcontact.vcf",
        "outlook-2003.vcf",
        "rfc2426-example.vcf",
    ] {
        let first = plan_import(drafts(file), &[]);
        assert_eq!(first.create.len(), first.len(), "{file}: {first:?}");
        let existing = create_all(first.create);
        let again = plan_import(drafts(file), &existing);
        assert_eq!(
            again.already_imported.len(),
            existing.len(),
            "{file}: {again:?}"
        );
        assert!(
            again.create.is_empty() && again.likely_duplicates.is_empty(),
            "{file}"
        );
        for a in &again.already_imported {
            assert!(existing.iter().any(|c| c.id == a.existing));
        }
    }
}

#[test]
fn uid_matches_even_when_the_card_changed_and_merges_are_followed() {
    let existing = create_all(drafts("John_Doe_EVOLUTION.vcf"));
    let mut changed = drafts("John_Doe_EVOLUTION.vcf");
    changed[0].role = Some("Chief Counter".into());
    changed[0]
        .import_keys
        .retain(|k| k.starts_with("vcard-uid:"));
    let plan = plan_import(changed.clone(), &existing);
    assert_eq!(plan.already_imported.len(), 1);
    assert_eq!(
        plan.already_imported[0].key,
        "vcard-uid:477343c8e6bf375a9bac1f96a5000837"
    );
    assert_eq!(plan.already_imported[0].existing, existing[0].id);

    // The imported contact was later merged into another one: that one is the target.
    let mut merged = existing.clone();
    let survivor = contact("John Doe", None, None);
    merged[0].merged_into = Some(survivor.id);
    merged.push(survivor.clone());
    let plan = plan_import(changed, &merged);
    assert_eq!(plan.already_imported[0].existing, survivor.id);
}

#[test]
fn same_email_phone_or_name_is_a_likely_duplicate_with_the_best_target() {
    let by_name = contact("  arnold   SMÎTH ", Some("other@x.org"), None);
    let by_email = contact("A. Smith", Some("ASMITHK@gmail.com"), None);
    let existing = vec![by_name.clone(), by_email.clone()];
    let plan = plan_import(drafts("gmail-list.vcf"), &existing);
    assert_eq!(plan.create.len(), 2, "{plan:?}");
    assert_eq!(plan.likely_duplicates.len(), 1);
    let dup = &plan.likely_duplicates[0];
    assert_eq!(dup.draft.name, "Arnold Smith");
    assert_eq!(dup.merge_into, MergeTarget::Existing(by_email.id));
    assert_eq!(
        dup.reasons,
        vec![DuplicateReason::SameEmail("asmithk@gmail.com".into())]
    );
    assert_eq!(dup.other_candidates, vec![by_name.id]);

    // Phones compare in E.164-like form (the national "(905) 555-1234" takes
    // the calling code 1 of the stored "+1 ..." number), on at least nine digits.
    let by_phone = contact("Somebody Else", None, Some("+1 (905) 555 1234"));
    let plan = plan_import(
        drafts("John_Doe_GMAIL.vcf"),
        std::slice::from_ref(&by_phone),
    );
    assert_eq!(plan.likely_duplicates.len(), 1);
    assert_eq!(
        plan.likely_duplicates[0].merge_into,
        MergeTarget::Existing(by_phone.id)
    );
    assert_eq!(
        plan.likely_duplicates[0].reasons,
        vec![DuplicateReason::SamePhone("19055551234".into())]
    );
    // Merged-away contacts are never suggested.
    let mut gone = by_phone.clone();
    gone.merged_into = Some(ContactId::new());
    let plan = plan_import(drafts("John_Doe_GMAIL.vcf"), &[gone]);
    assert_eq!(plan.create.len(), 1);
}

#[test]
fn a_record_repeated_in_one_input_is_planned_once() {
    let mut twice = fixture("gmail-list.vcf");
    twice.extend_from_slice(b"\r\n");
    twice.extend_from_slice(&fixture("gmail-list.vcf"));
    let d = vcard_drafts(&twice, &VcardLimits::default(), None)
        .unwrap()
        .drafts;
    let plan = plan_import(d, &[]);
    assert_eq!(plan.create.len(), 3);
    assert_eq!(plan.repeated_in_input.len(), 3);
    assert_eq!(plan.repeated_in_input[0].same_as_line, 1);
}

const LINKEDIN: &str = "\u{feff}Notes:\r\n\
\"When exporting your connection data, you may notice that some of the email addresses are missing. You will only see email addresses for connections who have allowed their connections to see or download their email address using this setting https://www.linkedin.com/psettings/privacy/email. You can learn more here https://www.linkedin.com/help/linkedin/answer/261\"\r\n\
\r\n\
First Name,Last Name,URL,Email Address,Company,Position,Connected On\r\n\
Ada,Lovelace,https://www.linkedin.com/in/ada-lovelace,,Analytical Engines,\"Programmer, first\",07 Dec 2025\r\n\
Grace,Hopper,https://www.linkedin.com/in/grace-hopper,grace@navy.mil,US Navy,Rear Admiral,15 Jan 2024\r\n\
,,,,,,\r\n\
Alan,Turing,https://www.linkedin.com/in/alan-turing,,NPL,,sometime\r\n";

#[test]
fn linkedin_connections_with_preamble() {
    let r = parse_linkedin_csv(
        LINKEDIN.as_bytes(),
        &LinkedinLimits::default(),
        Some("us navy"),
    )
    .unwrap();
    assert_eq!(r.drafts.len(), 3);
    let ada = &r.drafts[0];
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.given_name.as_deref(), Some("Ada"));
    assert_eq!(ada.family_name.as_deref(), Some("Lovelace"));
    assert_eq!(ada.organisation.as_deref(), Some("Analytical Engines"));
    assert_eq!(ada.role.as_deref(), Some("Programmer, first"));
    assert!(ada.emails.is_empty());
    assert_eq!(ada.first_met, chrono::NaiveDate::from_ymd_opt(2025, 12, 7));
    assert_eq!(ada.inside_org, Some(false));
    assert!(
        ada.import_keys
            .contains("linkedin:linkedin.com/in/ada-lovelace")
    );
    assert_eq!(ada.source_line, 5);
    let grace = &r.drafts[1];
    assert_eq!(grace.emails[0].value, "grace@navy.mil");
    assert_eq!(grace.inside_org, Some(true));
    assert_eq!(
        grace.first_met,
        chrono::NaiveDate::from_ymd_opt(2024, 1, 15)
    );
    let alan = &r.drafts[2];
    assert_eq!(alan.first_met, None);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].line, 8);
    assert!(r.errors[0].message.contains("sometime"));

    // Idempotent, and a LinkedIn row matching a vCard contact by email is a likely duplicate.
    let existing = create_all(r.drafts.clone());
    let again = plan_import(r.drafts, &existing);
    assert_eq!(again.already_imported.len(), 3);
}

#[test]
fn older_linkedin_exports_without_url_and_bad_files() {
    let old = "First Name,Last Name,Email Address,Company,Position,Connected On\n\
               Jane,Doe,jane@example.com,Acme,CEO,01 Feb 2016\n";
    let r = parse_linkedin_csv(old.as_bytes(), &LinkedinLimits::default(), None).unwrap();
    assert_eq!(r.drafts.len(), 1);
    assert!(r.drafts[0].urls.is_empty());
    assert!(
        r.drafts[0]
            .import_keys
            .iter()
            .all(|k| k.starts_with("linkedin-hash:"))
    );
    let existing = vec![contact("Someone", Some("Jane@Example.com"), None)];
    let plan = plan_import(r.drafts, &existing);
    assert_eq!(plan.likely_duplicates.len(), 1);

    assert!(matches!(
        parse_linkedin_csv(b"Name,Email\nx,y\n", &LinkedinLimits::default(), None),
        Err(LinkedinError::NoHeader { .. })
    ));
    assert!(matches!(
        parse_linkedin_csv(
            b"First Name,Surname\nx,y\n",
            &LinkedinLimits::default(),
            None
        ),
        Err(LinkedinError::MissingColumn("Last Name"))
    ));
    let limits = LinkedinLimits {
        rows_max: 1,
        ..LinkedinLimits::default()
    };
    assert!(matches!(
        parse_linkedin_csv(LINKEDIN.as_bytes(), &limits, None),
        Err(LinkedinError::TooManyRows { rows_max: 1 })
    ));
}

/// A phone stored as "+44 20 7946 0958" and imported as "020 7946 0958" (the
/// trunk prefix) or "0044 20 7946 0958" (the international call prefix) is
/// the same number: the cards are likely duplicates, not new contacts. The
/// file and the store flow through the real vCard parser and a real store.
#[test]
fn trunk_prefix_phone_forms_are_likely_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = kith_core::Store::open(dir.path()).unwrap();
    let stored = contact("Ana Stored", None, Some("+44 20 7946 0958"));
    store
        .import_records(vec![stored.clone()], vec![], vec![], vec![])
        .unwrap();
    let file = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Trunk Form\r\nTEL;TYPE=CELL:020 7946 0958\r\nEND:VCARD\r\n\
                BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Intl Prefix Form\r\nTEL:0044 20 7946 0958\r\nEND:VCARD\r\n\
                BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Different Number\r\nTEL:020 7946 0959\r\nEND:VCARD\r\n";
    let batch = vcard_drafts(file.as_bytes(), &VcardLimits::default(), None).unwrap();
    let plan = kith_core::import::plan_for_store(&store, batch.drafts).unwrap();
    let names = |v: Vec<&ContactDraft>| v.into_iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(plan.likely_duplicates.iter().map(|l| &l.draft).collect()),
        ["Trunk Form", "Intl Prefix Form"]
    );
    for l in &plan.likely_duplicates {
        assert_eq!(l.merge_into, MergeTarget::Existing(stored.id));
        assert_eq!(
            l.reasons,
            vec![DuplicateReason::SamePhone("442079460958".into())]
        );
    }
    assert_eq!(names(plan.create.iter().collect()), ["Different Number"]);
}

/// Normalising never loses a match the digits as written give: a Portuguese
/// number written nationally in a mostly British address book (default
/// calling code 44) still meets its "+351" form.
#[test]
fn a_national_number_of_another_country_still_meets_its_international_form() {
    let pt = contact("Rui Stored", None, Some("+351 912 345 678"));
    let uk1 = contact("Uk One", None, Some("+44 20 7946 0001"));
    let uk2 = contact("Uk Two", None, Some("+44 20 7946 0002"));
    let file = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Rui National\r\nTEL:912 345 678\r\nEND:VCARD\r\n";
    let batch = vcard_drafts(file.as_bytes(), &VcardLimits::default(), None).unwrap();
    let plan = plan_import(batch.drafts, &[pt.clone(), uk1, uk2]);
    assert_eq!(plan.likely_duplicates.len(), 1, "{plan:?}");
    assert_eq!(
        plan.likely_duplicates[0].merge_into,
        MergeTarget::Existing(pt.id)
    );
    assert_eq!(
        plan.likely_duplicates[0].reasons,
        vec![DuplicateReason::SamePhone("912345678".into())]
    );
}
