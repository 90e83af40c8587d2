//! Cost of logging an interaction from Rust, the baseline for the binding
//! figures: the same call the Python and Kotlin harnesses time (300-character
//! notes, one participant, warm store), made (a) on `kith_core::Store`
//! directly and (b) on `kith_ffi::Kith` from Rust (input parsing, panic guard,
//! mutex and listener dispatch, but no foreign-language crossing).
//!
//! It also times `Kith::get_contact`, a read that touches no disk, the baseline
//! for the harnesses' get_contact figure (the cost of the crossing itself).
//!
//! With `-- --get-contact-only` (what `scripts/test-bindings.sh --bench` runs) it
//! times only `get_contact`, in nanoseconds per call: the blocking Rust method
//! (Rust direct), and the exported async façade (`ffi_get_contact`, which the
//! Kotlin `suspend fun getContact` calls) awaited from Rust, i.e. the hop onto
//! Kith's runtime without any foreign-language crossing.
//!
//! Run: cargo bench -p kith-ffi --bench log_interaction [--profile release-ffi]
//! Prints microseconds per call; asserts nothing about speed.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kith_core::{
    NewContact as CoreNewContact, NewInteraction as CoreNewInteraction, ParticipantRef, Store,
};
use kith_ffi::{Kith, NewContact, NewInteraction};

const WARM_UP: usize = 20;
const CALLS: usize = 300;
const READS: usize = 2000;

fn ffi_new(summary: String, contact: &str, notes: &str) -> NewInteraction {
    NewInteraction {
        summary,
        participant_ids: vec![contact.to_string()],
        participant_names: vec![],
        create_missing: false,
        kind: None,
        initiator: None,
        at_ms: None,
        offset_minutes: 0,
        notes: notes.to_string(),
        project_id: None,
        exchanges: vec![],
        follow_ups: vec![],
    }
}

/// The contact both benches log against ("Ana Lima").
fn contact(organisation: Option<&str>, notes: String) -> NewContact {
    NewContact {
        name: "Ana Lima".into(),
        given_name: None,
        family_name: None,
        organisation: organisation.map(Into::into),
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
        notes,
        cadence_days: None,
    }
}

/// `get_contact` only, in ns/call: Rust direct, then the async façade awaited from Rust.
fn get_contact_only() {
    let dir = tempfile::tempdir().unwrap();
    let kith = Kith::open(dir.path().display().to_string()).unwrap();
    let new = contact(Some("Acme"), "x".repeat(300));
    let ana = kith.add_contact(new).unwrap().id;
    for _ in 0..WARM_UP {
        std::hint::black_box(kith.get_contact(ana.clone()).unwrap());
    }
    let t0 = Instant::now();
    for _ in 0..READS {
        std::hint::black_box(kith.get_contact(ana.clone()).unwrap());
    }
    let direct_ns = t0.elapsed().as_secs_f64() * 1e9 / READS as f64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..READS {
        let c = rt.block_on(std::sync::Arc::clone(&kith).ffi_get_contact(ana.clone()));
        std::hint::black_box(c.unwrap());
    }
    let facade_ns = t0.elapsed().as_secs_f64() * 1e9 / READS as f64;
    kith.close().unwrap();
    println!(
        "[figure] rust: Kith::get_contact (direct, blocking): {direct_ns:.0} ns/call (n={READS})"
    );
    println!(
        "[figure] rust: Kith::ffi_get_contact (the exported async façade, awaited from Rust): \
         {facade_ns:.0} ns/call (n={READS})"
    );
}

fn main() {
    if std::env::args().any(|a| a == "--get-contact-only") {
        get_contact_only();
        return;
    }
    let notes = "x".repeat(300);

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let ana = store
        .add_contact(CoreNewContact::named("Ana Lima"))
        .unwrap()
        .id;
    let core_new = |i: usize| CoreNewInteraction {
        summary: format!("Meeting {i}"),
        participants: vec![ParticipantRef::Id(ana)],
        notes: notes.clone(),
        ..CoreNewInteraction::default()
    };
    for i in 0..WARM_UP {
        store.log_interaction(core_new(i)).unwrap();
    }
    let t0 = Instant::now();
    for i in 0..CALLS {
        store.log_interaction(core_new(i)).unwrap();
    }
    let core_us = t0.elapsed().as_secs_f64() * 1e6 / CALLS as f64;
    store.close().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kith = Kith::open(dir.path().display().to_string()).unwrap();
    let ana = kith.add_contact(contact(None, String::new())).unwrap().id;
    for i in 0..WARM_UP {
        kith.log_interaction(ffi_new(format!("warm-up {i}"), &ana, &notes))
            .unwrap();
    }
    let t0 = Instant::now();
    for i in 0..CALLS {
        kith.log_interaction(ffi_new(format!("Meeting {i}"), &ana, &notes))
            .unwrap();
    }
    let ffi_us = t0.elapsed().as_secs_f64() * 1e6 / CALLS as f64;
    // A read that touches no disk: the baseline for the bindings' get_contact figure.
    let t0 = Instant::now();
    for _ in 0..READS {
        std::hint::black_box(kith.get_contact(ana.clone()).unwrap());
    }
    let read_us = t0.elapsed().as_secs_f64() * 1e6 / READS as f64;
    kith.close().unwrap();

    println!("[figure] rust: Store::log_interaction: {core_us:.0} us/call (n={CALLS})");
    println!(
        "[figure] rust: Kith::log_interaction (kith-ffi from Rust): {ffi_us:.0} us/call (n={CALLS})"
    );
    println!(
        "[figure] rust: Kith::get_contact (kith-ffi from Rust): {read_us:.1} us/call (n={READS})"
    );
}
