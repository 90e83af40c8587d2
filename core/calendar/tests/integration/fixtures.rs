//! The real-world files of tests/fixtures/ics parse with the attendees and times they hold.

use kith_calendar::{EventStatus, IcsCalendar, IcsErrorKind, IcsLimits, PartStat, Tz};

use crate::{ms, window};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ics")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn google_export_event_and_its_alarm_attendee() {
    let data = fixture("alarm_google_future.ics");
    let got = window(
        &data,
        "2024-10-01T00:00:00Z",
        "2024-10-08T00:00:00Z",
        Tz::Europe__London,
    );
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    let [ev] = got.events.as_slice() else {
        panic!("{:?}", got.events)
    };
    assert_eq!(ev.key.uid, "79fs7pkqvht9m5igs0vjv1sfra@google.com");
    assert_eq!(ev.key.recurrence_id, None);
    assert_eq!(ev.title, "event with alarms");
    assert_eq!(
        (ev.start_ms, ev.end_ms),
        (ms("2024-10-04T18:15:00Z"), ms("2024-10-04T19:00:00Z"))
    );
    assert_eq!(ev.status, EventStatus::Confirmed);
    assert!(!ev.all_day && !ev.private);
    // The file's one ATTENDEE is the recipient of the e-mail alarm: it is in the VALARM, not a
    // participant of the meeting.
    assert!(ev.attendees.is_empty());
    let cal = IcsCalendar::parse(&data, "ics", &IcsLimits::default()).unwrap();
    let vevent = cal.components()[0]
        .children
        .iter()
        .find(|c| c.name == "VEVENT")
        .unwrap();
    let alarm_attendees: Vec<&str> = vevent
        .children
        .iter()
        .flat_map(|a| a.props("ATTENDEE"))
        .map(|p| p.value.as_str())
        .collect();
    assert_eq!(alarm_attendees, ["mailto:niccokunzmann@googlemail.com"]);
}

#[test]
fn blackberry_invitation_three_attendees_and_organiser() {
    let data = fixture("property_params.ics");
    let got = window(
        &data,
        "2012-08-10T00:00:00Z",
        "2012-08-20T00:00:00Z",
        Tz::UTC,
    );
    let [ev] = got.events.as_slice() else {
        panic!("{:?}", got)
    };
    assert_eq!(ev.key.uid, "XRIMCAL-628059586-522954492-9750559");
    assert_eq!(ev.title, "Test meeting from BB");
    assert!(ev.all_day);
    assert_eq!(
        (ev.start_ms, ev.end_ms),
        (ms("2012-08-14T00:00:00Z"), ms("2012-08-15T00:00:00Z"))
    );
    let people: Vec<(Option<&str>, Option<&str>, PartStat)> = ev
        .attendees
        .iter()
        .map(|a| (a.name.as_deref(), a.email.as_deref(), a.partstat))
        .collect();
    assert_eq!(
        people,
        [
            (
                Some("RembrandXS"),
                Some("rembrand@xs4all.nl"),
                PartStat::NeedsAction
            ),
            (
                Some("RembrandDX"),
                Some("rembrand@daxlab.com"),
                PartStat::NeedsAction
            ),
            (
                Some("RembrandSB"),
                Some("rembspam@xs4all.nl"),
                PartStat::NeedsAction
            ),
        ]
    );
    let org = ev.organiser.as_ref().unwrap();
    assert_eq!(
        (org.name.as_deref(), org.email.as_deref()),
        (None, Some("rembrand@daxlab.com"))
    );
    assert_eq!(ev.description.as_deref(), Some("Test meeting from BB"));
}

#[test]
fn khal_rdate_periods_in_a_windows_zone() {
    let data = fixture("issue_156_RDATE_with_PERIOD_TZID_khal.ics");
    let got = window(
        &data,
        "2018-03-01T00:00:00Z",
        "2018-08-01T00:00:00Z",
        Tz::UTC,
    );
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    // 8:00-9:00 Chicago daylight time (UTC-5) every Tuesday from 27 March to 31 July.
    assert_eq!(got.events.len(), 19);
    for (i, ev) in got.events.iter().enumerate() {
        let start = ms("2018-03-27T13:00:00Z") + i64::try_from(i).unwrap() * 7 * 86_400_000;
        assert_eq!(
            (ev.start_ms, ev.end_ms),
            (start, start + 3_600_000),
            "occurrence {i}"
        );
        // The file has no UID: one is derived from the event, the same on every read.
        assert!(ev.key.uid.starts_with("kith-derived-"), "{}", ev.key.uid);
        assert_eq!(ev.attendees.len(), 1);
        assert_eq!(ev.attendees[0].name.as_deref(), Some("XYZ"));
        assert_eq!(ev.attendees[0].email.as_deref(), Some("xyz@xyz.com"));
        assert_eq!(ev.attendees[0].partstat, PartStat::Accepted);
    }
    // The window cuts the series: only what ends inside is expanded.
    let april = window(
        &data,
        "2018-04-01T00:00:00Z",
        "2018-04-30T00:00:00Z",
        Tz::UTC,
    );
    assert_eq!(april.events.len(), 4);
}

#[test]
fn vtimezone_under_a_custom_name() {
    let got = window(
        &fixture("america_new_york.ics"),
        "2014-08-29T00:00:00Z",
        "2014-08-30T00:00:00Z",
        Tz::UTC,
    );
    let [ev] = got.events.as_slice() else {
        panic!("{:?}", got)
    };
    assert_eq!(
        (ev.start_ms, ev.end_ms),
        (ms("2014-08-29T12:00:00Z"), ms("2014-08-29T14:00:00Z"))
    );
}

#[test]
fn daily_count_without_end() {
    let data = fixture("issue_1081_event_with_rrule.ics");
    let all = window(
        &data,
        "2024-12-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
        Tz::UTC,
    );
    assert_eq!(all.events.len(), 10);
    let some = window(
        &data,
        "2025-01-03T00:00:00Z",
        "2025-01-05T12:00:00Z",
        Tz::UTC,
    );
    let starts: Vec<i64> = some.events.iter().map(|e| e.start_ms).collect();
    assert_eq!(
        starts,
        [
            ms("2025-01-03T10:00:00Z"),
            ms("2025-01-04T10:00:00Z"),
            ms("2025-01-05T10:00:00Z")
        ]
    );
    assert_eq!(
        some.events[0].key.recurrence_id.as_deref(),
        Some("20250103T100000Z")
    );
    assert!(
        window(
            &data,
            "2025-01-11T00:00:00Z",
            "2025-03-01T00:00:00Z",
            Tz::UTC
        )
        .events
        .is_empty()
    );
}

#[test]
fn rfc6868_parameters_decoded() {
    let cal = IcsCalendar::parse(&fixture("rfc_6868.ics"), "ics", &IcsLimits::default()).unwrap();
    let root = &cal.components()[0];
    let x = root.prop("X-PARAM").unwrap();
    assert_eq!(x.param("NEWLINE"), Some("\n"));
    assert_eq!(x.param("ALL"), Some("^\"\n"));
    assert_eq!(x.param("UNKNOWN"), Some("^a^ ^asd"));
    let attendee = root.children[0].prop("ATTENDEE").unwrap();
    assert_eq!(attendee.param("CN"), Some("George Herman \"Babe\" Ruth"));
    // The VEVENT has neither UID nor DTSTART: it is reported, not invented.
    let got = cal.events_ending_between(0, i64::MAX / 4, Tz::UTC).unwrap();
    assert!(got.events.is_empty());
    assert_eq!(got.skipped.len(), 1);
    assert_eq!(got.skipped[0].line, 3);
}

#[test]
fn byte_order_mark() {
    let cal =
        IcsCalendar::parse(&fixture("bom_calendar.ics"), "ics", &IcsLimits::default()).unwrap();
    assert_eq!(cal.components().len(), 1);
    assert_eq!(cal.components()[0].name, "VCALENDAR");
}

#[test]
fn broken_file_names_the_line() {
    let err =
        IcsCalendar::parse(&fixture("broken_ical.ics"), "ics", &IcsLimits::default()).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(matches!(err.kind, IcsErrorKind::BadContentLine(_)));
    assert!(err.to_string().starts_with("line 4: "), "{err}");
}

/// Every fixture, asked for the widest windows (the fuzzer's first find: the window's start
/// minus an event's length overflowed at the beginning of time).
#[test]
fn every_fixture_in_extreme_windows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ics");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "ics"))
    {
        let data = std::fs::read(path).unwrap();
        let Ok(cal) = IcsCalendar::parse(&data, "ics", &IcsLimits::default()) else {
            continue;
        };
        for (from, to) in [
            (i64::MIN, i64::MAX),
            (i64::MIN, 0),
            (0, i64::MAX),
            (ms("2018-03-27T13:00:00Z"), ms("2018-03-27T13:00:00Z")),
        ] {
            let got = cal
                .events_ending_between(from, to, Tz::Pacific__Kiritimati)
                .unwrap();
            assert!(
                got.events.iter().all(|e| e.start_ms <= e.end_ms),
                "{}",
                path.display()
            );
        }
    }
}
