//! A deterministic synthetic calendar file for benchmarks and tests: `events` events over
//! `years` years ending at `end`, of which `series` are weekly recurring series (some with an
//! EXDATE and an override), in a few zones, each with 1-4 attendees drawn from `people`
//! addresses `person{i}@example.com`. Owned here so the calendar bench and the engine bench
//! measure the same file.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

/// Parameters of [`synthetic_ics`].
#[derive(Debug, Clone, Copy)]
pub struct SynthCalendar {
    /// The occurrences, sorted by end then key.
    pub events: usize,
    /// How many of them are weekly series.
    pub series: usize,
    /// Span of the calendar, in years.
    pub years: i64,
    /// Distinct attendee addresses.
    pub people: usize,
    /// End of the calendar (UTC ms).
    pub end_ms: i64,
}

/// Builds the file (CRLF, folded attendee lines like real exporters).
pub fn synthetic_ics(p: &SynthCalendar) -> String {
    let end = DateTime::from_timestamp_millis(p.end_ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let begin = end - Duration::days(365 * p.years);
    let span_min = (end - begin).num_minutes().max(1);
    let zones = [
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "Europe/London",
    ];
    let mut s = String::with_capacity(p.events * 600);
    s.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Kith//synthetic//EN\r\n");
    // A small LCG keeps the file identical across runs and platforms.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n.max(1)
    };
    for i in 0..p.events {
        let recurring = i < p.series;
        let offset = if recurring {
            next(60 * 24 * 60) as i64
        } else {
            next(span_min as u64) as i64
        };
        let start = begin + Duration::minutes(offset / 15 * 15);
        let zone = zones[i % zones.len()];
        let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
        let local = start.with_timezone(&tz).naive_local();
        let _ = write!(
            s,
            "BEGIN:VEVENT\r\nUID:synth-{i}@kith.invalid\r\nDTSTAMP:20240101T000000Z\r\n"
        );
        let _ = write!(
            s,
            "DTSTART;TZID={zone}:{}\r\n",
            local.format("%Y%m%dT%H%M%S")
        );
        let _ = write!(s, "DURATION:PT{}M\r\n", 30 + next(4) * 15);
        let title = [
            "Project sync",
            "Lunch with the team",
            "Coffee",
            "Quarterly review",
            "1:1",
        ][i % 5];
        let _ = write!(s, "SUMMARY:{title} #{i}\r\n");
        if i % 7 == 0 {
            s.push_str("LOCATION:https://meet.example.invalid/abc-defg-hij\r\n");
        }
        s.push_str("ORGANIZER;CN=Me:mailto:me@example.com\r\n");
        for _ in 0..=next(4) {
            let who = next(p.people as u64);
            let _ = write!(
                s,
                "ATTENDEE;CN=\"Person {who}\";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=TRUE:\r\n mailto:person{who}@example.com\r\n"
            );
        }
        if recurring {
            s.push_str("RRULE:FREQ=WEEKLY\r\n");
            let ex = local + Duration::weeks(3);
            let _ = write!(s, "EXDATE;TZID={zone}:{}\r\n", ex.format("%Y%m%dT%H%M%S"));
        }
        s.push_str("END:VEVENT\r\n");
        if recurring && i % 10 == 0 {
            let orig = local + Duration::weeks(5);
            let _ = write!(
                s,
                "BEGIN:VEVENT\r\nUID:synth-{i}@kith.invalid\r\nRECURRENCE-ID;TZID={zone}:{o}\r\nDTSTART;TZID={zone}:{n}\r\nDURATION:PT45M\r\nSUMMARY:{title} #{i} (moved)\r\nATTENDEE:mailto:person1@example.com\r\nEND:VEVENT\r\n",
                o = orig.format("%Y%m%dT%H%M%S"),
                n = (orig + Duration::hours(2)).format("%Y%m%dT%H%M%S"),
            );
        }
    }
    s.push_str("END:VCALENDAR\r\n");
    s
}
