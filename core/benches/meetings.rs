//! Figure (issue 17): listing the meetings to log from a calendar file of 5,000 events with 500
//! weekly series over three years, against a store with 2,000 contacts (and 20,000 interactions,
//! 50 of them logged meetings). Each run: read and parse the file, expand the last 7 days, and
//! `Store::meetings_to_log` on a freshly opened store (goal: under 100 ms in all).
//! `cargo bench -p kith-core --bench meetings`.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench binary reports its figures"
)]

use std::time::Instant;

use kith_calendar::synth::{SynthCalendar, synthetic_ics};
use kith_calendar::{IcsCalendar, IcsLimits, Tz};
use kith_core::Store;
use kith_core::meetings::{MeetingExtra, WINDOW_MS_DEFAULT};
use kith_core::model::ContactPoint;
use kith_synth::{SynthParams, generate};

const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const RUNS: usize = 3;

fn main() {
    let ics = synthetic_ics(&SynthCalendar {
        events: 5_000,
        series: 500,
        years: 3,
        people: 2_000,
        end_ms: NOW_MS,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calendar.ics");
    std::fs::write(&file, &ics).unwrap();
    let store_dir = dir.path().join("store");
    {
        let mut net = generate(&SynthParams::new(
            2_000,
            20_000,
            17,
            NOW_MS - 30 * 86_400_000,
        ));
        // The calendar's attendees are person{i}@example.com: make them the contacts' addresses.
        for (i, c) in net.contacts.iter_mut().enumerate() {
            c.emails = vec![ContactPoint {
                value: format!("person{i}@example.com"),
                label: "work".into(),
            }];
        }
        let mut store = Store::open(&store_dir).unwrap();
        let mut settings = net.settings.clone();
        settings.my_emails.insert("me@example.com".into());
        store.set_settings(settings).unwrap();
        store
            .import_records(net.contacts, net.interactions, net.projects, net.goals)
            .unwrap();
        let cal = IcsCalendar::parse(ics.as_bytes(), "ics", &IcsLimits::default()).unwrap();
        let events = cal
            .events_ending_between(NOW_MS - WINDOW_MS_DEFAULT, NOW_MS, Tz::UTC)
            .unwrap()
            .events;
        let candidates = store
            .meetings_to_log(&events, NOW_MS, WINDOW_MS_DEFAULT)
            .unwrap();
        for c in candidates.iter().take(50) {
            store
                .log_meeting(
                    c,
                    MeetingExtra {
                        create_all_missing: true,
                        ..MeetingExtra::default()
                    },
                )
                .unwrap();
        }
        store.close().unwrap();
    }
    for run in 1..=RUNS {
        let t = Instant::now();
        let bytes = std::fs::read(&file).unwrap();
        let cal = IcsCalendar::parse(&bytes, "ics", &IcsLimits::default()).unwrap();
        let parsed = t.elapsed();
        let events = cal
            .events_ending_between(NOW_MS - WINDOW_MS_DEFAULT, NOW_MS, Tz::UTC)
            .unwrap()
            .events;
        let expanded = t.elapsed();
        let store = Store::open(&store_dir).unwrap();
        let opened = t.elapsed();
        let list = store
            .meetings_to_log(&events, NOW_MS, WINDOW_MS_DEFAULT)
            .unwrap();
        let total = t.elapsed();
        let matched: usize = list.iter().map(|c| c.matched.len()).sum();
        println!(
            "meetings run {run}: total {:.1} ms (read+parse {:.1}, expand {:.1}, open store {:.1}, meetings_to_log {:.1}); {} bytes, {} occurrences in 7 days, {} to log, {matched} attendees matched (goal < 100 ms)",
            total.as_secs_f64() * 1e3,
            parsed.as_secs_f64() * 1e3,
            (expanded - parsed).as_secs_f64() * 1e3,
            (opened - expanded).as_secs_f64() * 1e3,
            (total - opened).as_secs_f64() * 1e3,
            bytes.len(),
            events.len(),
            list.len(),
        );
        store.close().unwrap();
    }
}
