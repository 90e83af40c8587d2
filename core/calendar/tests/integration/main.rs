//! Integration tests of kith-calendar, by area: the real-world fixture files, one hand-written
//! calendar per rule of the reader, and properties (no panic, bounded memory) on any input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;
mod props;
mod rules;

use kith_calendar::{Expanded, IcsCalendar, IcsLimits, Tz};

/// Milliseconds of an RFC 3339 instant.
pub(crate) fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// Parses `text` and lists what ends between the two instants, floating times in `zone`.
pub(crate) fn window(text: &[u8], from: &str, to: &str, zone: Tz) -> Expanded {
    let cal = IcsCalendar::parse(text, "ics", &IcsLimits::default()).unwrap();
    cal.events_ending_between(ms(from), ms(to), zone).unwrap()
}
