//! Names from every language (issue 21): the table `tests/data/names.tsv`
//! (shared with the CLI, Python and Kotlin tests) of people from many
//! languages with the queries a person types for each, and the pairs of
//! spellings that must be reported as likely duplicates: by the store's
//! duplicate rules and by the import plan. Also: a store whose index an
//! older version built is rebuilt when opened.

use std::collections::{BTreeMap, BTreeSet};

use kith_core::import::plan_import;
use kith_core::store::STORE_FILE;
use kith_core::{ContactId, DuplicateReason, NewContact, NewInteraction, ParticipantRef, Store};
use kith_formats::{VcardLimits, vcard_drafts};
use redb::{ReadableDatabase, ReadableTable};

pub(crate) struct Person {
    pub(crate) language: String,
    pub(crate) name: String,
    pub(crate) queries: Vec<String>,
}

/// The people and the duplicate pairs of the table.
pub(crate) fn table() -> (Vec<Person>, Vec<(String, String)>) {
    let mut people = Vec::new();
    let mut dups = Vec::new();
    for line in include_str!("../data/names.tsv").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["person", language, name, queries] => people.push(Person {
                language: language.to_string(),
                name: name.to_string(),
                queries: queries.split('|').map(String::from).collect(),
            }),
            ["dup", a, b] => dups.push((a.to_string(), b.to_string())),
            _ => panic!("bad line in names.tsv: {line:?}"),
        }
    }
    (people, dups)
}

#[test]
fn the_table_is_as_large_as_promised() {
    let (people, dups) = table();
    let languages: BTreeSet<&str> = people.iter().map(|p| p.language.as_str()).collect();
    assert!(people.len() >= 40, "{} people", people.len());
    assert!(languages.len() >= 15, "{} languages", languages.len());
    assert!(dups.len() >= 10);
}

#[test]
fn every_query_finds_its_person_and_their_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let (people, _) = table();
    let mut ids = Vec::new();
    for p in &people {
        let c = s.add_contact(NewContact::named(p.name.clone())).unwrap();
        let i = s
            .log_interaction(NewInteraction {
                summary: format!("Coffee with {} after the congress", p.name),
                participants: vec![ParticipantRef::Id(c.id)],
                ..NewInteraction::default()
            })
            .unwrap();
        ids.push((c.id, i.id));
    }
    let check = |s: &Store, when: &str| {
        let mut missed = Vec::new();
        for (p, (cid, iid)) in people.iter().zip(&ids) {
            for q in &p.queries {
                let r = s.search(q, 200).unwrap();
                if !r.contacts.iter().any(|c| c.id == *cid) {
                    missed.push(format!("{q:?} -> contact {} ({})", p.name, p.language));
                }
                if !r.interactions.iter().any(|i| i.id == *iid) {
                    missed.push(format!("{q:?} -> meeting with {}", p.name));
                }
            }
        }
        assert!(
            missed.is_empty(),
            "{when}: not found:\n{}",
            missed.join("\n")
        );
    };
    check(&s, "incremental index");
    let incremental = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(incremental, s.index_dump().unwrap(), "index == reindex");
    check(&s, "after reindex");
    // Every person is someone else: folding must not make two look alike.
    assert_eq!(s.likely_duplicates().unwrap(), vec![]);
}

/// Sorted name pairs of the SameName duplicates `s` reports.
fn same_name_pairs(s: &Store) -> BTreeSet<(String, String)> {
    let names: BTreeMap<ContactId, String> = s
        .all_contacts()
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    s.likely_duplicates()
        .unwrap()
        .into_iter()
        .filter(|p| {
            p.reasons
                .iter()
                .any(|r| matches!(r, DuplicateReason::SameName(_)))
        })
        .map(|p| {
            let (a, b) = (names[&p.a].clone(), names[&p.b].clone());
            (a.clone().min(b.clone()), a.max(b))
        })
        .collect()
}

#[test]
fn every_pair_is_a_likely_duplicate_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let (_, dups) = table();
    let names: BTreeSet<&String> = dups.iter().flat_map(|(a, b)| [a, b]).collect();
    for n in &names {
        s.add_contact(NewContact::named(n.to_string())).unwrap();
    }
    let expected: BTreeSet<(String, String)> = dups
        .iter()
        .map(|(a, b)| (a.clone().min(b.clone()), a.clone().max(b.clone())))
        .collect();
    assert_eq!(same_name_pairs(&s), expected);
    // One reason per pair even where several spellings meet.
    for p in s.likely_duplicates().unwrap() {
        assert_eq!(p.reasons.len(), 1, "{p:?}");
    }
}

#[test]
fn an_import_reports_every_spelling_as_a_likely_duplicate() {
    let (_, dups) = table();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut existing: BTreeMap<String, ContactId> = BTreeMap::new();
    for (a, _) in &dups {
        if !existing.contains_key(a) {
            existing.insert(
                a.clone(),
                s.add_contact(NewContact::named(a.clone())).unwrap().id,
            );
        }
    }
    // The other spellings arrive as a phone's address book would send them.
    let mut vcf = String::new();
    for (_, b) in &dups {
        vcf.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{b}\r\nEND:VCARD\r\n"
        ));
    }
    let batch = vcard_drafts(vcf.as_bytes(), &VcardLimits::default(), None).unwrap();
    let plan = plan_import(batch.drafts, &s.all_contacts().unwrap());
    assert!(plan.create.is_empty(), "created: {:?}", plan.create);
    for (a, b) in &dups {
        let want = existing[a];
        let found = plan.likely_duplicates.iter().any(|d| {
            d.draft.name == *b
                && (d.merge_into.existing() == Some(want) || d.other_candidates.contains(&want))
        });
        assert!(found, "{b} is not reported as a likely duplicate of {a}");
    }
}

#[test]
fn a_store_indexed_by_an_older_version_is_rebuilt_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.add_contact(NewContact::named("Søren Kierkegaard"))
            .unwrap();
        s.close().unwrap();
    }
    let meta: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("meta");
    // Index tables are bytes to bytes; a search key starts with its token's bytes.
    let search: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("idx_search");
    // What a store indexed before letter folding looks like: no index
    // version, and no folded tokens ("soren", "soeren").
    let make_old = |version: Option<&[u8]>| {
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut m = txn.open_table(meta).unwrap();
            match version {
                Some(v) => m.insert("index", v).unwrap(),
                None => m.remove("index").unwrap(),
            };
            let mut t = txn.open_table(search).unwrap();
            let folded: Vec<Vec<u8>> = t
                .iter()
                .unwrap()
                .map(|r| r.unwrap().0.value().to_vec())
                .filter(|k| k.starts_with(b"so"))
                .collect();
            assert!(!folded.is_empty());
            for k in folded {
                t.remove(k.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    };
    let index_version = || {
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(meta).unwrap();
        t.get("index").unwrap().map(|v| v.value().to_vec())
    };
    for version in [
        None,
        Some(b"1".as_slice()),
        Some(b"3".as_slice()),
        Some(b"99".as_slice()),
        Some(b"x".as_slice()),
    ] {
        make_old(version);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.search("soren", 10).unwrap().contacts.len(),
            1,
            "{version:?}"
        );
        assert_eq!(s.search("soeren", 10).unwrap().contacts.len(), 1);
        assert!(
            s.loaded_docs().is_empty(),
            "documents unloaded after the rebuild"
        );
        s.close().unwrap();
        assert_eq!(index_version(), Some(b"5".to_vec()));
    }
    // A current index is left as it is (not rebuilt at every open): a row
    // removed behind the store's back stays removed until reindex.
    make_old(Some(b"5"));
    let mut s = Store::open(dir.path()).unwrap();
    assert!(s.search("soren", 10).unwrap().contacts.is_empty());
    s.reindex().unwrap();
    assert_eq!(s.search("soren", 10).unwrap().contacts.len(), 1);
}
