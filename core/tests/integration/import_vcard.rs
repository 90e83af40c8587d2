//! Every real-world vCard fixture imports with the names, emails and phones it
//! holds (values written here by reading the files), and the John Doe exports
//! of different clients agree.

use std::collections::BTreeSet;

use kith_core::import::ContactDraft;
use kith_core::model::{ContactPoint, PartialDate};
use kith_formats::vcard::PhotoSource;
use kith_formats::{VcardLimits, parse_vcards, vcard_drafts};

/// The repository's real-world vCards (tests/fixtures/vcard, with their licence).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/vcard")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn drafts(name: &str) -> Vec<ContactDraft> {
    let batch = vcard_drafts(&fixture(name), &VcardLimits::default(), None).unwrap();
    assert!(batch.errors.is_empty(), "{name}: {:?}", batch.errors);
    batch.drafts
}

fn pts(v: &[(&str, &str)]) -> Vec<ContactPoint> {
    v.iter()
        .map(|(value, label)| ContactPoint {
            value: value.to_string(),
            label: label.to_string(),
        })
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn date(year: Option<i32>, month: u8, day: u8) -> Option<PartialDate> {
    Some(PartialDate { year, month, day })
}

fn n(c: char, count: usize, sep: &str) -> String {
    vec![c.to_string(); count].join(sep)
}

#[test]
fn android_2_1_quoted_printable() {
    let d = drafts("John_Doe_ANDROID.vcf");
    assert_eq!(d.len(), 6);
    // Cards 1 and 2 hold only an email: the email names the contact.
    assert_eq!(d[0].name, "john.doe@company.com");
    assert_eq!(d[0].emails, pts(&[("john.doe@company.com", "")]));
    assert_eq!(d[0].tags, set(&["My Contacts"]));
    assert_eq!(d[1].name, "jane.doe@company.com");
    assert_eq!(d[1].emails, pts(&[("jane.doe@company.com", "")]));

    assert_eq!(d[2].name, n('Ñ', 5, " "));
    assert_eq!(d[2].family_name.as_deref(), Some(n('Ñ', 4, " ").as_str()));
    assert_eq!(d[2].phones, pts(&[("123456789", "mobile")]));
    assert!(d[2].emails.is_empty());

    // QP soft line breaks whose continuation starts with '='.
    assert_eq!(d[3].name, n('Ñ', 11, " "));
    assert_eq!(d[3].family_name, Some(n('Ñ', 11, " ")));
    assert_eq!(
        d[3].phones,
        pts(&[
            ("123456", "mobile"),
            ("234567", "home"),
            ("3456789", "mobile"),
            ("45678901", "home")
        ])
    );
    assert_eq!(d[3].notes.matches('Ñ').count(), 42);

    assert_eq!(d[4].name, n('Ñ', 4, " "));
    assert_eq!(d[4].given_name, Some(n('Ñ', 3, " ")));
    assert_eq!(d[4].family_name, Some(n('Ñ', 2, " ")));
    assert_eq!(
        d[4].phones,
        pts(&[
            ("123456", "mobile"),
            ("123456", "work"),
            ("123456", "work fax")
        ])
    );
    assert_eq!(
        d[4].emails,
        pts(&[("bob@company.com", "work"), (&n('Ñ', 14, ""), "")])
    );
    assert_eq!(d[4].organisation, Some(n('Ñ', 12, "")));
    assert_eq!(
        d[4].urls,
        set(&["www.company.com", "http://www.company.com"])
    );

    assert_eq!(d[5].name, n('Ñ', 4, ""));
    assert_eq!(d[5].phones, pts(&[("55556666", "mobile")]));
    assert_eq!(d[5].emails, pts(&[("henry@company.com", "")]));
    assert_eq!(d[5].organisation, Some(n('Ñ', 44, "")));

    let parsed = parse_vcards(&fixture("John_Doe_ANDROID.vcf"), &VcardLimits::default()).unwrap();
    // The base64 JPEG (folded, ending in a blank line) decodes.
    match &parsed.cards[4].photo.as_ref().unwrap().source {
        PhotoSource::Inline(bytes) => assert_eq!(&bytes[..2], &[0xFF, 0xD8]),
        other => panic!("{other:?}"),
    }
    // A stray 0x80 in UTF-8 QP text falls back to Windows-1252 for that byte.
    assert_eq!(
        parsed.cards[5].organisations[1][0],
        format!("{}€", n('Ñ', 44, ""))
    );
}

#[test]
fn evolution_3_0() {
    let d = drafts("John_Doe_EVOLUTION.vcf");
    assert_eq!(d.len(), 1);
    let c = &d[0];
    assert_eq!(c.name, "Mr. John Richter, James Doe Sr.");
    assert_eq!(c.emails, pts(&[("john.doe@ibm.com", "work")]));
    assert_eq!(
        c.phones,
        pts(&[("905-666-1234", "mobile"), ("905-555-1234", "work")])
    );
    assert_eq!(c.role.as_deref(), Some("Money Counter"));
    assert_eq!(c.tags, set(&["VIP"]));
    assert_eq!(c.urls, set(&["http://www.ibm.com"]));
    assert_eq!(c.birthday, date(Some(1980), 3, 22));
    assert!(c.notes.starts_with("THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS \"AS IS\" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO,"), "{}", c.notes);
    assert!(c.notes.contains("SERVICES; LOSS OF USE, DATA, OR PROFITS;"));
    assert!(c.notes.ends_with("POSSIBILITY OF SUCH DAMAGE."));
    assert!(
        c.import_keys
            .contains("vcard-uid:477343c8e6bf375a9bac1f96a5000837")
    );
    assert!(c.import_keys.iter().any(|k| k.starts_with("vcard-hash:")));
}

#[test]
fn gmail_3_0() {
    let d = drafts("John_Doe_GMAIL.vcf");
    assert_eq!(d.len(), 1);
    let c = &d[0];
    assert_eq!(c.name, "Mr. John Richter, James Doe Sr.");
    assert_eq!(c.emails, pts(&[("john.doe@ibm.com", "home")]));
    assert_eq!(
        c.phones,
        pts(&[("905-555-1234", "mobile"), ("905-666-1234", "home")])
    );
    assert_eq!(c.role.as_deref(), Some("Money Counter"));
    // Google escapes ':' as '\:'.
    assert_eq!(c.urls, set(&["http://www.ibm.com"]));
    assert_eq!(c.birthday, date(Some(1980), 3, 22));
    assert!(
        c.notes.ends_with("SUCH DAMAGE.\nFavotire Color: Blue"),
        "{}",
        c.notes
    );
    assert!(c.notes.contains("CONTRIBUTORS \"AS IS\""));
}

#[test]
fn mac_address_book_3_0() {
    let d = drafts("John_Doe_MAC_ADDRESS_BOOK.vcf");
    assert_eq!(d.len(), 1);
    let c = &d[0];
    assert_eq!(c.name, "Mr. John Richter,James Doe Sr.");
    assert_eq!(c.emails, pts(&[("john.doe@ibm.com", "work")]));
    assert_eq!(
        c.phones,
        pts(&[
            ("905-777-1234", "work"),
            ("905-666-1234", "home"),
            ("905-555-1234", "mobile"),
            ("905-888-1234", "home fax"),
            ("905-999-1234", "work fax"),
            ("905-111-1234", "pager"),
            ("905-222-1234", "AssistantPhone"),
        ])
    );
    assert_eq!(c.urls, set(&["http://www.ibm.com"]));
    assert_eq!(c.birthday, date(Some(2012), 6, 6));
    assert!(c.notes.ends_with("Favotire Color: Blue"));
    assert!(
        c.import_keys
            .contains("vcard-uid:6B29A774-D124-4822-B8D0-2780EC117F60:ABPerson")
    );
    let parsed = parse_vcards(
        &fixture("John_Doe_MAC_ADDRESS_BOOK.vcf"),
        &VcardLimits::default(),
    )
    .unwrap();
    let card = &parsed.cards[0];
    assert_eq!(card.urls[0].custom_label.as_deref(), Some("homepage"));
    match &card.photo.as_ref().unwrap().source {
        PhotoSource::Inline(bytes) => assert!(bytes.len() > 10_000, "{}", bytes.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn john_doe_exports_agree_on_name_and_organisation() {
    let my_org = Some("I.B.M"); // does not normalise to "ibm": outside
    for file in [
        "John_Doe_EVOLUTION.vcf",
        "John_Doe_GMAIL.vcf",
        "John_Doe_MAC_ADDRESS_BOOK.vcf",
    ] {
        let batch = vcard_drafts(&fixture(file), &VcardLimits::default(), my_org).unwrap();
        let c = &batch.drafts[0];
        assert_eq!(c.given_name.as_deref(), Some("John"), "{file}");
        assert_eq!(c.family_name.as_deref(), Some("Doe"), "{file}");
        assert_eq!(c.organisation.as_deref(), Some("IBM"), "{file}");
        assert_eq!(c.inside_org, Some(false), "{file}");
        let inside = vcard_drafts(&fixture(file), &VcardLimits::default(), Some(" ibm ")).unwrap();
        assert_eq!(inside.drafts[0].inside_org, Some(true), "{file}");
    }
}

#[test]
fn outlook_2003() {
    let d = drafts("outlook-2003.vcf");
    assert_eq!(d.len(), 1);
    let c = &d[0];
    assert_eq!(c.name, "John Doe III");
    assert_eq!(c.given_name.as_deref(), Some("John"));
    assert_eq!(c.family_name.as_deref(), Some("Doe"));
    assert_eq!(c.organisation.as_deref(), Some("Company, The"));
    assert_eq!(c.role.as_deref(), Some("The Job Title"));
    assert_eq!(c.emails, pts(&[("jdoe@hotmail.com", "")]));
    assert_eq!(
        c.phones,
        pts(&[
            ("BusinessPhone", "work"),
            ("HomePhone", "home"),
            ("MobilePhone", "mobile"),
            ("BusinessFaxPhone", "work fax"),
        ])
    );
    assert_eq!(c.urls, set(&["http://web-page-address.com"]));
    assert_eq!(c.birthday, date(Some(1980), 3, 21));
    assert_eq!(
        c.notes,
        "This is the note field!!\nSecond line\n\nThird line is empty\n"
    );
}

#[test]
fn fullcontact_4_0() {
    let d = drafts("fullcontact.vcf");
    assert_eq!(d.len(), 1);
    let c = &d[0];
    assert_eq!(c.name, "Prefix FirstName MiddleName LastName Suffix");
    assert_eq!(c.given_name.as_deref(), Some("FirstName"));
    assert_eq!(c.family_name.as_deref(), Some("LastName"));
    assert_eq!(c.organisation.as_deref(), Some("Organization1"));
    assert_eq!(c.role.as_deref(), Some("Title1"));
    assert_eq!(
        c.phones,
        pts(&[
            ("555-555-1111", "home"),
            ("555-555-1112", "work"),
            ("555-555-1113", "mobile"),
            ("555-555-1114", "mobile"),
            ("555-555-1115", ""),
            ("555-555-1116", "home fax"),
            ("555-555-1117", "work fax"),
            ("555-555-1118", ""),
            ("555-555-1119", ""),
        ])
    );
    assert_eq!(
        c.emails,
        pts(&[
            ("home@example.com", "home"),
            ("work@example.com", "work"),
            ("school@example.com", "school"),
            ("other@example.com", "other"),
            ("custom@example.com", "customtype"),
        ])
    );
    assert_eq!(c.birthday, date(Some(2016), 8, 1));
    assert_eq!(c.tags, set(&["Tag"]));
    assert_eq!(c.notes, "Notes line 1\nNotes line 2");
    assert_eq!(
        c.urls,
        set(&[
            "http://www.homepage.com",
            "http://www.blog.com",
            "http://www.other.com",
            "http://www.custom.com"
        ])
    );
    let parsed = parse_vcards(&fixture("fullcontact.vcf"), &VcardLimits::default()).unwrap();
    assert_eq!(
        parsed.cards[0].photo.as_ref().unwrap().source,
        PhotoSource::Uri(
            "https://d3m0kzytmr41b1.cloudfront.net/c335e945d1b60edd9d75eb4837c432f637e95c8a".into()
        )
    );
}

#[test]
fn gmail_list_and_single() {
    let d = drafts("gmail-list.vcf");
    type Row<'a> = (&'a str, Vec<ContactPoint>, Option<&'a str>, Option<&'a str>);
    let got: Vec<Row<'_>> = d
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.emails.clone(),
                c.given_name.as_deref(),
                c.family_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Arnold Smith",
                pts(&[("asmithk@gmail.com", "")]),
                Some("Arnold"),
                Some("Smith")
            ),
            (
                "Chris Beatle",
                pts(&[("chrisy55d@yahoo.com", "")]),
                Some("Chris"),
                Some("Beatle")
            ),
            (
                "Doug White",
                pts(&[("dwhite@gmail.com", "")]),
                Some("Doug"),
                Some("White")
            ),
        ]
    );
    assert!(d.iter().all(|c| c.phones.is_empty()));

    let d = drafts("gmail-single.vcf");
    let c = &d[0];
    assert_eq!(c.name, "Greg Dartmouth");
    assert_eq!(c.given_name.as_deref(), Some("Greg"));
    assert_eq!(c.family_name.as_deref(), Some("Dartmouth"));
    assert_eq!(c.emails, pts(&[("gdartmouth@hotmail.com", "")]));
    assert_eq!(
        c.phones,
        pts(&[
            ("555 555 1111", "mobile"),
            ("555 555 2222", "GRAND_CENTRAL")
        ])
    );
    assert_eq!(c.organisation.as_deref(), Some("TheCompany"));
    assert_eq!(c.role.as_deref(), Some("TheJobTitle"));
    assert_eq!(c.birthday, date(Some(1960), 9, 10));
    assert_eq!(c.urls, set(&["http://TheProfile.com"]));
    assert_eq!(
        c.notes,
        "This is GMail's note field.\nIt should be added as a NOTE type.\nACustomField: CustomField"
    );
}

#[test]
fn rfc_examples() {
    let d = drafts("rfc2426-example.vcf");
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].name, "Frank Dawson");
    assert_eq!(d[0].given_name, None);
    assert_eq!(
        d[0].organisation.as_deref(),
        Some("Lotus Development Corporation")
    );
    assert_eq!(
        d[0].phones,
        pts(&[("+1-919-676-9515", "work"), ("+1-919-676-9564", "fax work")])
    );
    assert_eq!(
        d[0].emails,
        pts(&[
            ("Frank_Dawson@Lotus.com", ""),
            ("fdawson@earthlink.net", "")
        ])
    );
    assert_eq!(d[0].urls, set(&["http://home.earthlink.net/~fdawson"]));
    assert_eq!(d[1].name, "Tim Howes");
    assert_eq!(
        d[1].organisation.as_deref(),
        Some("Netscape Communications Corp.")
    );
    assert_eq!(
        d[1].phones,
        pts(&[("+1-415-937-3419", "work"), ("+1-415-528-4164", "fax work")])
    );
    assert_eq!(d[1].emails, pts(&[("howes@netscape.com", "")]));

    let d = drafts("rfc6350-example.vcf");
    let c = &d[0];
    assert_eq!(c.name, "Simon Perreault");
    assert_eq!(c.given_name.as_deref(), Some("Simon"));
    assert_eq!(c.family_name.as_deref(), Some("Perreault"));
    assert_eq!(c.organisation.as_deref(), Some("Viagenie"));
    assert_eq!(
        c.phones,
        pts(&[
            ("+1-418-656-9254;ext=102", "work"),
            ("+1-418-262-6501", "work mobile video text")
        ])
    );
    assert_eq!(c.emails, pts(&[("simon.perreault@viagenie.ca", "work")]));
    assert_eq!(c.birthday, date(None, 2, 3));
    assert_eq!(c.urls, set(&["http://nomis80.org"]));
}
