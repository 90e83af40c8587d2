//! Integration tests of kith-core against real redb files in temporary
//! directories: operations and their errors, the store lifecycle (lazy load,
//! compaction, close/reopen, locks), damage handling, crash safety with a
//! SIGKILLed child process, the remote-merge hook, and the reindex property;
//! import (vCard fixtures, LinkedIn, planning, the parser's property test),
//! export (vCard round trip, JSON, CSV) and backup, alone and wired to a store;
//! names from every language (search and duplicates, `names.rs`).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod backup;
mod crash;
mod damage;
mod disk_full;
mod export;
mod fresh_writes;
mod import_apply;
mod import_plan;
mod import_props;
mod import_vcard;
mod insights_store;
mod meetings;
mod merges;
mod names;
mod ops;
mod reindex;
mod store;
mod store_wiring;
mod strategies;
mod sync;

use kith_core::{NewContact, NewInteraction, ParticipantRef, Store};

/// Proptest settings with `floor` cases, raised by `PROPTEST_CASES` when it
/// asks for more: CI stays fast by default, a deep run sets the variable.
/// (`ProptestConfig { cases: n, .. }` alone would ignore the variable.)
pub fn proptest_cases(floor: u32) -> proptest::prelude::ProptestConfig {
    let env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    proptest::prelude::ProptestConfig {
        cases: floor.max(env),
        ..proptest::prelude::ProptestConfig::default()
    }
}

/// A fresh store in a new temporary directory.
pub fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A minimal interaction with the given contacts.
pub fn meeting(summary: &str, with: &[kith_core::ContactId]) -> NewInteraction {
    NewInteraction {
        summary: summary.into(),
        participants: with.iter().map(|c| ParticipantRef::Id(*c)).collect(),
        ..NewInteraction::default()
    }
}

/// Adds a contact by name.
pub fn person(store: &mut Store, name: &str) -> kith_core::model::Contact {
    store.add_contact(NewContact::named(name)).unwrap()
}

/// A contact record (for the bulk import path), not yet stored.
pub fn contact_record(name: &str) -> kith_core::model::Contact {
    kith_core::model::Contact {
        id: kith_core::ContactId::new(),
        name: name.into(),
        given_name: None,
        family_name: None,
        organisation: None,
        role: None,
        discipline: None,
        seniority: kith_core::model::Seniority::Unknown,
        inside_org: None,
        circles: Default::default(),
        tags: Default::default(),
        emails: vec![],
        phones: vec![],
        urls: Default::default(),
        how_we_met: None,
        first_met: None,
        birthday: None,
        notes: String::new(),
        cadence_days: None,
        created_ms: 1,
        updated_ms: 1,
        archived: false,
        merged_into: None,
        import_keys: Default::default(),
        merge_base: Default::default(),
        merged_from: Vec::new(),
        conflicts: Vec::new(),
    }
}
