//! Fuzzes the iCalendar reader: parsing and expanding any bytes never panics, keeps no more than
//! the input's size, and yields no more occurrences than the caps.
//! Run from core/calendar/: `cargo +nightly fuzz run ics_parse -- -max_total_time=60`.
#![no_main]

use kith_calendar::{IcsCalendar, IcsLimits, Tz};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = IcsLimits {
        input_size_bytes_max: 1 << 20,
        line_length_bytes_max: 4096,
        components_max: 256,
        properties_per_component_max: 128,
        depth_max: 8,
        parameters_per_property_max: 16,
        occurrences_per_series_max: 200,
        occurrences_max: 2_000,
    };
    if let Ok(cal) = IcsCalendar::parse(data, "ics", &limits) {
        let retained: usize = cal
            .components()
            .iter()
            .map(|c| c.retained_size_bytes())
            .sum();
        assert!(retained <= data.len());
        for (from, to) in [(0, 4_102_444_800_000), (i64::MIN, i64::MAX)] {
            if let Ok(got) = cal.events_ending_between(from, to, Tz::Europe__Berlin) {
                assert!(
                    got.events.len()
                        <= limits.occurrences_max + usize::from(limits.occurrences_per_series_max)
                );
                assert!(got.events.iter().all(|e| e.start_ms <= e.end_ms));
            }
        }
    }
});
