//! Figure: reading a 5,000-event calendar file with 500 weekly series over three years and
//! listing the occurrences that ended in the last 7 days. Prints milliseconds per run.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kith_calendar::synth::{SynthCalendar, synthetic_ics};
use kith_calendar::{IcsCalendar, IcsLimits, Tz};

fn main() {
    let now_ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let file = synthetic_ics(&SynthCalendar {
        events: 5_000,
        series: 500,
        years: 3,
        people: 2_000,
        end_ms: now_ms,
    });
    let week_ms = 7 * 86_400_000;
    for run in 1..=3 {
        let t = Instant::now();
        let cal = IcsCalendar::parse(file.as_bytes(), "ics", &IcsLimits::default()).expect("parse");
        let parsed = t.elapsed();
        let got = cal
            .events_ending_between(now_ms - week_ms, now_ms, Tz::UTC)
            .expect("expand");
        println!(
            "calendar/expand run {run}: {} bytes, parse {:.1} ms, parse+expand {:.1} ms, {} occurrences in the window, {} skipped",
            file.len(),
            parsed.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3,
            got.events.len(),
            got.skipped.len()
        );
    }
}
