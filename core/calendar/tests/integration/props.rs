//! Properties on any input: the reader never panics, and what it keeps is bounded by the input
//! size (no amplification beyond a small constant per component) and by the occurrence caps.

use kith_calendar::{IcsCalendar, IcsLimits, Tz};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    // PROPTEST_CASES raises this floor.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

const LIMITS: IcsLimits = IcsLimits {
    input_size_bytes_max: 1 << 16,
    line_length_bytes_max: 1024,
    components_max: 64,
    properties_per_component_max: 64,
    depth_max: 6,
    parameters_per_property_max: 8,
    occurrences_per_series_max: 100,
    occurrences_max: 1_000,
};

/// Lines that look like iCalendar, so the cases reach past the first error.
fn ics_like() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("BEGIN:VCALENDAR".to_owned()),
        Just("END:VCALENDAR".to_owned()),
        Just("BEGIN:VEVENT".to_owned()),
        Just("END:VEVENT".to_owned()),
        Just("BEGIN:VALARM".to_owned()),
        Just("END:VALARM".to_owned()),
        Just("UID:u1".to_owned()),
        "DTSTART(;TZID=(Europe/Berlin|\"Central Standard Time\"|X))?(;VALUE=DATE)?:20[0-9]{2}[01][0-9][0-3][0-9](T[0-2][0-9][0-5][0-9][0-5][0-9]Z?)?",
        "DTEND:20[0-9]{6}T[0-9]{6}Z?",
        "DURATION:-?P([0-9]{1,3}[WD])?(T[0-9]{1,3}[HMS])?",
        "RRULE:FREQ=(SECONDLY|MINUTELY|HOURLY|DAILY|WEEKLY|YEARLY)(;COUNT=[0-9]{1,6})?(;INTERVAL=[0-9]{1,3})?(;BYDAY=-?[0-9]?(MO|TU))?",
        "(RDATE|EXDATE|RECURRENCE-ID)(;VALUE=PERIOD)?:20[0-9]{6}T[0-9]{6}Z?(/PT1H)?(,20[0-9]{6})?",
        "ATTENDEE(;CN=\"[^\"\r\n]{0,10}\")?(;PARTSTAT=[A-Z]{0,9})?:(mailto|MAILTO):[a-z]{0,5}@x",
        " [^\r\n]{0,20}",
        "[ -~]{0,30}",
    ];
    (prop::collection::vec(line, 0..40), any::<bool>())
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }).into_bytes())
}

fn check(input: &[u8]) {
    match IcsCalendar::parse(input, "ics", &LIMITS) {
        Ok(cal) => {
            let retained: usize = cal
                .components()
                .iter()
                .map(|c| c.retained_size_bytes())
                .sum();
            assert!(
                retained <= input.len(),
                "{retained} retained from {} bytes",
                input.len()
            );
            for (from, to) in [
                (0, i64::MAX / 2),
                (i64::MIN, i64::MAX),
                (i64::MIN / 2, 0),
                (1_700_000_000_000, 1_800_000_000_000),
            ] {
                if let Ok(got) = cal.events_ending_between(from, to, Tz::Europe__Berlin) {
                    assert!(
                        got.events.len()
                            <= LIMITS.occurrences_max
                                + usize::from(LIMITS.occurrences_per_series_max)
                    );
                    for e in &got.events {
                        assert!(e.start_ms <= e.end_ms);
                    }
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&input);
    }

    #[test]
    fn never_panics_on_ics_like_lines(input in ics_like()) {
        check(&input);
    }
}
