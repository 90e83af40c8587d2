//! kith-ffi's Rust-side integration tests: the `Kith` object on real stores in
//! temporary directories (lifecycle and locks, listeners, threads, async). The
//! same surface is exercised through the generated bindings by
//! bindings/tests/python and bindings/tests/kotlin.
// A test crate: helpers and listener impls outside #[test] fns may unwrap/panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod lifecycle;
mod listener;
mod sync;
mod threads;
mod transfer;

use std::sync::Arc;

use kith_ffi::{Kith, NewContact, NewInteraction};

pub(crate) fn contact(name: &str) -> NewContact {
    NewContact {
        name: name.into(),
        given_name: None,
        family_name: None,
        organisation: None,
        role: None,
        discipline: None,
        seniority: None,
        inside_org: None,
        circles: vec![],
        tags: vec![],
        emails: vec![],
        phones: vec![],
        urls: vec![],
        how_we_met: None,
        first_met: None,
        birthday: None,
        notes: String::new(),
        cadence_days: None,
    }
}

pub(crate) fn met(summary: &str, ids: &[&str]) -> NewInteraction {
    NewInteraction {
        summary: summary.into(),
        participant_ids: ids.iter().map(|s| s.to_string()).collect(),
        participant_names: vec![],
        create_missing: false,
        kind: None,
        initiator: None,
        at_ms: None,
        offset_minutes: 0,
        notes: String::new(),
        project_id: None,
        exchanges: vec![],
        follow_ups: vec![],
    }
}

pub(crate) fn open(dir: &tempfile::TempDir) -> Arc<Kith> {
    Kith::open(dir.path().join("store").display().to_string()).unwrap()
}
