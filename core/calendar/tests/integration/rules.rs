//! One hand-written calendar per rule of the reader: recurrence with overrides and exceptions,
//! zones around a daylight-saving change, floating and all-day times, line ends, `mailto:`
//! spelling, rooms, cancellation, and damaged input that names its line.

use kith_calendar::{EventStatus, IcsCalendar, IcsErrorKind, IcsLimits, Tz};

use crate::{ms, window};

fn cal(body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
        body.replace('\n', "\r\n")
    )
}

#[test]
fn recurring_with_overridden_and_excluded_occurrences() {
    let text = cal("BEGIN:VEVENT
UID:weekly-1
DTSTART;TZID=Europe/Paris:20260105T100000
DTEND;TZID=Europe/Paris:20260105T110000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Paris:20260119T100000
SUMMARY:Standup
ATTENDEE;CN=Zoë:mailto:zoe@example.com
END:VEVENT
BEGIN:VEVENT
UID:weekly-1
RECURRENCE-ID;TZID=Europe/Paris:20260112T100000
DTSTART;TZID=Europe/Paris:20260113T150000
DTEND;TZID=Europe/Paris:20260113T153000
SUMMARY:Standup (moved)
STATUS:CANCELLED
END:VEVENT
");
    let got = window(
        text.as_bytes(),
        "2026-01-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        Tz::UTC,
    );
    let seen: Vec<(&str, Option<&str>, EventStatus)> = got
        .events
        .iter()
        .map(|e| (e.title.as_str(), e.key.recurrence_id.as_deref(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("Standup", Some("20260105T090000Z"), EventStatus::Confirmed),
            (
                "Standup (moved)",
                Some("20260112T090000Z"),
                EventStatus::Cancelled
            ),
            ("Standup", Some("20260126T090000Z"), EventStatus::Confirmed),
            ("Standup", Some("20260202T090000Z"), EventStatus::Confirmed),
            ("Standup", Some("20260209T090000Z"), EventStatus::Confirmed),
        ]
    );
    assert_eq!(got.events[1].start_ms, ms("2026-01-13T14:00:00Z"));
    // The override alone in a window that does not hold its original time.
    let only = window(
        text.as_bytes(),
        "2026-01-13T12:00:00Z",
        "2026-01-14T00:00:00Z",
        Tz::UTC,
    );
    assert_eq!(only.events.len(), 1);
    assert_eq!(only.events[0].title, "Standup (moved)");
}

#[test]
fn weekly_series_across_a_daylight_saving_change() {
    // 09:00 Berlin: 08:00Z in winter, 07:00Z after the change of 29 March 2026.
    let text = cal("BEGIN:VEVENT
UID:dst
DTSTART;TZID=Europe/Berlin:20260322T090000
DURATION:PT1H
RRULE:FREQ=WEEKLY;COUNT=3
ATTENDEE:mailto:a@example.com
END:VEVENT
BEGIN:VEVENT
UID:gap
DTSTART;TZID=Europe/Berlin:20260329T023000
DTEND;TZID=Europe/Berlin:20260329T033000
END:VEVENT
BEGIN:VEVENT
UID:repeat
DTSTART;TZID=Europe/Berlin:20261025T023000
DTEND;TZID=Europe/Berlin:20261025T040000
END:VEVENT
");
    let got = window(
        text.as_bytes(),
        "2026-03-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
        Tz::UTC,
    );
    let times: Vec<(&str, i64, i64)> = got
        .events
        .iter()
        .map(|e| (e.key.uid.as_str(), e.start_ms, e.end_ms))
        .collect();
    assert_eq!(
        times,
        [
            (
                "dst",
                ms("2026-03-22T08:00:00Z"),
                ms("2026-03-22T09:00:00Z")
            ),
            // 02:30 does not exist that night: moved an hour on, to 03:30 CEST.
            (
                "gap",
                ms("2026-03-29T01:30:00Z"),
                ms("2026-03-29T01:30:00Z")
            ),
            (
                "dst",
                ms("2026-03-29T07:00:00Z"),
                ms("2026-03-29T08:00:00Z")
            ),
            (
                "dst",
                ms("2026-04-05T07:00:00Z"),
                ms("2026-04-05T08:00:00Z")
            ),
            // 02:30 happens twice: the first (summer time) is taken.
            (
                "repeat",
                ms("2026-10-25T00:30:00Z"),
                ms("2026-10-25T03:00:00Z")
            ),
        ]
    );
}

#[test]
fn floating_and_all_day_times_in_the_device_zone() {
    let text = cal("BEGIN:VEVENT
UID:float
DTSTART:20260310T120000
DTEND:20260310T130000
END:VEVENT
BEGIN:VEVENT
UID:day
DTSTART;VALUE=DATE:20260311
END:VEVENT
BEGIN:VEVENT
UID:days
DTSTART;VALUE=DATE:20260312
DTEND;VALUE=DATE:20260314
RRULE:FREQ=YEARLY
END:VEVENT
");
    let got = window(
        text.as_bytes(),
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
        Tz::Asia__Tokyo,
    );
    let times: Vec<(&str, bool, i64, i64, Option<&str>)> = got
        .events
        .iter()
        .map(|e| {
            (
                e.key.uid.as_str(),
                e.all_day,
                e.start_ms,
                e.end_ms,
                e.key.recurrence_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            (
                "float",
                false,
                ms("2026-03-10T03:00:00Z"),
                ms("2026-03-10T04:00:00Z"),
                None
            ),
            (
                "day",
                true,
                ms("2026-03-10T15:00:00Z"),
                ms("2026-03-11T15:00:00Z"),
                None
            ),
            (
                "days",
                true,
                ms("2026-03-11T15:00:00Z"),
                ms("2026-03-13T15:00:00Z"),
                Some("20260312")
            ),
        ]
    );
}

#[test]
fn series_since_long_ago_is_expanded_only_in_the_window() {
    let text = cal("BEGIN:VEVENT
UID:old-daily
DTSTART:19900101T090000Z
DURATION:PT30M
RRULE:FREQ=DAILY
RDATE:20260305T200000Z,20260306T200000Z
EXDATE:20260304T090000Z
END:VEVENT
");
    let got = window(
        text.as_bytes(),
        "2026-03-02T00:00:00Z",
        "2026-03-07T00:00:00Z",
        Tz::UTC,
    );
    let ids: Vec<&str> = got
        .events
        .iter()
        .filter_map(|e| e.key.recurrence_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [
            "20260302T090000Z",
            "20260303T090000Z",
            "20260305T090000Z",
            "20260305T200000Z",
            "20260306T090000Z",
            "20260306T200000Z"
        ]
    );
}

#[test]
fn lf_line_ends_mailto_spelling_rooms_and_escapes() {
    let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:lf\nDTSTART:20260310T120000Z\nDTEND:20260310T130000Z\n\
SUMMARY:Lunch\\, then plans\\; more\nLOCATION:Café\\nParis\nCLASS:PRIVATE\n\
ATTENDEE;CN=A:MailTo:A@Example.com\nATTENDEE;CN=B;PARTSTAT=declined:mailto:b@example.com\n\
ATTENDEE;CUTYPE=ROOM;CN=Room 4:mailto:room4@example.com\nATTENDEE:urn:uuid:1234\n\
ORGANIZER;CN=\"Me, Myself\":MAILTO:me@example.com\nEND:VEVENT\nEND:VCALENDAR\n";
    let got = window(
        text.as_bytes(),
        "2026-03-10T00:00:00Z",
        "2026-03-11T00:00:00Z",
        Tz::UTC,
    );
    let ev = &got.events[0];
    assert_eq!(ev.title, "Lunch, then plans; more");
    assert_eq!(ev.location.as_deref(), Some("Café\nParis"));
    assert!(ev.private);
    let emails: Vec<Option<&str>> = ev.attendees.iter().map(|a| a.email.as_deref()).collect();
    assert_eq!(emails, [Some("A@Example.com"), Some("b@example.com"), None]);
    assert_eq!(ev.attendees[1].partstat, kith_calendar::PartStat::Declined);
    assert_eq!(
        ev.organiser.as_ref().unwrap().name.as_deref(),
        Some("Me, Myself")
    );
}

#[test]
fn method_cancel_cancels_every_event() {
    let text = "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:c\r\nDTSTART:20260310T120000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let got = window(
        text.as_bytes(),
        "2026-03-10T00:00:00Z",
        "2026-03-11T00:00:00Z",
        Tz::UTC,
    );
    assert_eq!(got.events[0].status, EventStatus::Cancelled);
}

#[test]
fn damaged_files_name_their_line() {
    let cases: &[(&[u8], usize)] = &[
        (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n", 3),
        (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n", 2),
        (
            b"BEGIN:VCALENDAR\nUID:x\nSUMMARY:\xff\xfe\nEND:VCALENDAR\n",
            3,
        ),
        (b"BEGIN:VCALENDAR\n\nX;Y=\"a:b\n  c\nEND:VCALENDAR\n", 3),
        (b"UID:x\n", 1),
        (b"END:VCALENDAR\n", 1),
        (b"", 0),
        (b"BEGIN:VTODO\nEND:VTODO\n", 0),
    ];
    for (input, line) in cases {
        let err = IcsCalendar::parse(input, "ics", &IcsLimits::default()).unwrap_err();
        assert_eq!(
            err.line,
            *line,
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    // An event damaged in meaning is skipped with its line; the others stay.
    let text = cal("BEGIN:VEVENT
UID:bad-date
DTSTART:2026-03-10
END:VEVENT
BEGIN:VEVENT
UID:bad-zone
DTSTART;TZID=Mars/Olympus:20260310T120000
END:VEVENT
BEGIN:VEVENT
UID:bad-rule
DTSTART:20260310T120000Z
RRULE:FREQ=SOMETIMES
END:VEVENT
BEGIN:VEVENT
UID:good
DTSTART:20260310T120000Z
END:VEVENT
");
    let got = window(
        text.as_bytes(),
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
        Tz::UTC,
    );
    assert_eq!(got.events.len(), 1);
    let lines: Vec<usize> = got.skipped.iter().map(|e| e.line).collect();
    assert_eq!(lines, [5, 9, 14]);
    assert!(matches!(got.skipped[1].kind, IcsErrorKind::UnknownZone(_)));
}

#[test]
fn limits_are_errors_not_allocations() {
    let limits = IcsLimits {
        components_max: 3,
        ..IcsLimits::default()
    };
    let text =
        cal("BEGIN:VEVENT\nEND:VEVENT\nBEGIN:VEVENT\nEND:VEVENT\nBEGIN:VEVENT\nEND:VEVENT\n");
    let err = IcsCalendar::parse(text.as_bytes(), "ics", &limits).unwrap_err();
    assert!(
        matches!(err.kind, IcsErrorKind::TooManyComponents { .. }),
        "{err}"
    );
    let deep = "BEGIN:A\n".repeat(20);
    let err = IcsCalendar::parse(deep.as_bytes(), "ics", &IcsLimits::default()).unwrap_err();
    assert!(matches!(err.kind, IcsErrorKind::TooDeep { .. }));
    let limits = IcsLimits {
        line_length_bytes_max: 100,
        ..IcsLimits::default()
    };
    let long = format!(
        "BEGIN:VCALENDAR\nX-A:{}\n{}\nEND:VCALENDAR\n",
        "a".repeat(60),
        " b".repeat(60)
    );
    let err = IcsCalendar::parse(long.as_bytes(), "ics", &limits).unwrap_err();
    assert_eq!(
        (
            err.line,
            matches!(err.kind, IcsErrorKind::LineTooLong { .. })
        ),
        (2, true)
    );
    // A series cannot yield more than its cap in one window.
    let limits = IcsLimits {
        occurrences_per_series_max: 50,
        ..IcsLimits::default()
    };
    let text =
        cal("BEGIN:VEVENT\nUID:m\nDTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY\nEND:VEVENT\n");
    let c = IcsCalendar::parse(text.as_bytes(), "ics", &limits).unwrap();
    let got = c
        .events_ending_between(
            ms("2026-01-01T00:00:00Z"),
            ms("2026-02-01T00:00:00Z"),
            Tz::UTC,
        )
        .unwrap();
    assert_eq!(got.events.len(), 50);
}
