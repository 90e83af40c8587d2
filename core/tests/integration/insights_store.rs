//! `Store::insights_records`: what insights read from the index equals the
//! full records minus the interactions' notes, loads no document, and gives
//! the same report as the full records (synthetic network, and after any
//! sequence of operations).

use kith_core::model::Interaction;
use kith_core::{InsightsRecords, Store};
use kith_insights::{InsightsParams, compute_all};
use kith_synth::{SynthParams, generate};
use proptest::prelude::*;

use crate::reindex::{op, run};

const NOW_MS: i64 = 1_790_000_000_000;

fn without_notes(mut v: Vec<Interaction>) -> Vec<Interaction> {
    for i in &mut v {
        i.notes.clear();
        i.notes_conflicts.clear();
    }
    v
}

/// Checks `insights_records` of a freshly opened store against the `all_*` reads.
fn check(dir: &std::path::Path, now_ms: i64) -> Result<(), TestCaseError> {
    let store = Store::open(dir).unwrap();
    let lean: InsightsRecords = store.insights_records().unwrap();
    prop_assert!(store.loaded_docs().is_empty());
    let full = InsightsRecords {
        contacts: store.all_contacts().unwrap(),
        interactions: store.all_interactions().unwrap(),
        goals: store.all_goals().unwrap(),
        settings: store.settings().unwrap(),
    };
    prop_assert_eq!(&lean.contacts, &full.contacts);
    prop_assert_eq!(&lean.goals, &full.goals);
    prop_assert_eq!(&lean.settings, &full.settings);
    prop_assert_eq!(
        &lean.interactions,
        &without_notes(full.interactions.clone())
    );
    let params = InsightsParams::default();
    prop_assert_eq!(
        compute_all(&kith_insights::InsightsInput::from_records(
            &lean, now_ms, params
        )),
        compute_all(&kith_insights::InsightsInput::from_records(
            &full, now_ms, params
        ))
    );
    Ok(())
}

#[test]
fn synthetic_network_reads_lean_and_computes_the_same_report() {
    let net = generate(&SynthParams::new(60, 600, 7, NOW_MS));
    assert!(net.interactions.iter().all(|i| !i.notes.is_empty()));
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.set_settings(net.settings.clone()).unwrap();
    store
        .import_records(
            net.contacts.clone(),
            net.interactions.clone(),
            net.projects.clone(),
            net.goals.clone(),
        )
        .unwrap();
    let id = net.interactions[0].id;
    store.delete_interaction(id).unwrap();
    store.close().unwrap();
    check(dir.path(), NOW_MS).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let lean = store.insights_records().unwrap();
    assert_eq!(lean.interactions.len(), 600);
    assert!(lean.interactions.iter().all(|i| i.notes.is_empty()));
    assert!(
        lean.interactions
            .iter()
            .any(|i| i.id == id && i.is_deleted())
    );
    assert_eq!(lean.settings, net.settings);
}

#[test]
fn empty_store_gives_empty_records() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap().close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = store.insights_records().unwrap();
    assert!(r.contacts.is_empty() && r.interactions.is_empty() && r.goals.is_empty());
    assert_eq!(r.settings, kith_core::model::Settings::default());
}

proptest! {
    #![proptest_config(crate::proptest_cases(12))]

    #[test]
    fn lean_records_match_full_records_after_any_ops(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        run(&mut s, ops);
        s.close().unwrap();
        check(dir.path(), chrono::Utc::now().timestamp_millis())?;
    }
}
