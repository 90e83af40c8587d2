//! Meetings to log against a real store: one case per rule of docs/MEETINGS.md, matching,
//! logging (idempotent, remembered across reopen), dismissing, the insights share, the next meeting's end, and the index upgrade of older stores. Two devices logging one event
//! offline (duplicates and their merge) are in the e2e tests, through a real relay.

use kith_core::meetings::{
    Attendee, CalendarEvent, EventKey, EventStatus, MatchedBy, MeetingError, MeetingExtra,
    PartStat, WINDOW_MS_DEFAULT,
};
use kith_core::model::{ContactPoint, InteractionKind, Settings};
use kith_core::{NewContact, Store};

use crate::fresh;

const HOUR: i64 = 3_600_000;
/// 2026-03-10T12:00:00Z
const NOW: i64 = 1_773_144_000_000;

fn person(name: &str, email: &str, partstat: PartStat) -> Attendee {
    Attendee {
        name: (!name.is_empty()).then(|| name.to_owned()),
        email: (!email.is_empty()).then(|| email.to_owned()),
        partstat,
    }
}

fn event(uid: &str, ended_hours_ago: i64, attendees: Vec<Attendee>) -> CalendarEvent {
    CalendarEvent {
        key: EventKey {
            source: "ics".into(),
            uid: uid.into(),
            recurrence_id: None,
        },
        title: format!("Meeting {uid}"),
        start_ms: NOW - (ended_hours_ago + 1) * HOUR,
        end_ms: NOW - ended_hours_ago * HOUR,
        attendees,
        ..CalendarEvent::default()
    }
}

fn me(partstat: PartStat) -> Attendee {
    person("Me", "Me@Example.com", partstat)
}

fn zoe() -> Attendee {
    person("Zoë Hart", "zoe@example.com", PartStat::Accepted)
}

/// A store whose settings know my address, with Zoë (by e-mail) and Bob (by name) as contacts.
fn store() -> (tempfile::TempDir, Store) {
    let (dir, mut s) = fresh();
    let mut settings = s.settings().unwrap();
    settings.my_emails.insert("me@example.com".into());
    s.set_settings(settings).unwrap();
    let mut z = NewContact::named("Zoë Hart");
    z.emails = vec![ContactPoint {
        value: "ZOE@example.com ".into(),
        label: "work".into(),
    }];
    s.add_contact(z).unwrap();
    s.add_contact(NewContact::named("Bob Stone")).unwrap();
    (dir, s)
}

fn listed(s: &Store, events: &[CalendarEvent]) -> Vec<String> {
    s.meetings_to_log(events, NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .into_iter()
        .map(|c| c.event.key.uid)
        .collect()
}

#[test]
fn each_rule_of_the_list() {
    let (_d, s) = store();
    let mut cancelled = event("cancelled", 1, vec![me(PartStat::Accepted), zoe()]);
    cancelled.status = EventStatus::Cancelled;
    let mut all_day = event("all-day", 1, vec![me(PartStat::Accepted), zoe()]);
    all_day.all_day = true;
    let mut only_me_organising = event("only-me", 1, vec![me(PartStat::Accepted)]);
    only_me_organising.organiser = Some(person("", "me@EXAMPLE.com", PartStat::Accepted));
    let events = vec![
        event("ok", 1, vec![me(PartStat::Accepted), zoe()]),
        event("declined-by-me", 1, vec![me(PartStat::Declined), zoe()]),
        event(
            "others-declined",
            1,
            vec![
                me(PartStat::Accepted),
                person("Zoë", "zoe@example.com", PartStat::Declined),
            ],
        ),
        cancelled,
        all_day,
        only_me_organising,
        event("nobody", 1, vec![]),
        event("too-old", 24 * 8, vec![zoe()]),
        event("not-ended", -1, vec![zoe()]),
        event("tentative-me", 2, vec![me(PartStat::Tentative), zoe()]),
    ];
    assert_eq!(listed(&s, &events), ["ok", "tentative-me"]);
    // Without my address in the settings, "only-me" is a meeting with somebody (me, unknown).
    let (_d2, bare) = fresh();
    assert!(listed(&bare, &events).contains(&"only-me".to_string()));
}

#[test]
fn attendees_are_matched_by_email_then_name() {
    let (_d, mut s) = store();
    s.add_contact(NewContact::named("Ann Lee")).unwrap();
    s.add_contact(NewContact::named("ann  LEE")).unwrap();
    let ev = event(
        "m",
        2,
        vec![
            me(PartStat::Accepted),
            person("Z. Hart (work)", "Zoe@Example.COM", PartStat::Accepted),
            person("bob stone", "bob@elsewhere.org", PartStat::NeedsAction),
            person("Ann Lee", "", PartStat::Accepted),
            person("", "new.person@example.org", PartStat::Accepted),
        ],
    );
    let [c] = s
        .meetings_to_log(&[ev], NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .try_into()
        .unwrap();
    let matched: Vec<(&str, MatchedBy)> = c
        .matched
        .iter()
        .map(|m| (m.contact_name.as_str(), m.by))
        .collect();
    assert_eq!(
        matched,
        [
            ("Zoë Hart", MatchedBy::Email),
            ("Bob Stone", MatchedBy::Name)
        ]
    );
    let unmatched: Vec<(String, usize)> = c
        .unmatched
        .iter()
        .map(|u| (u.display_name(), u.candidates.len()))
        .collect();
    assert_eq!(
        unmatched,
        [("Ann Lee".to_string(), 2), ("new.person".to_string(), 0)]
    );
}

#[test]
fn suggested_kind() {
    let (_d, s) = store();
    let mut call = event("call", 1, vec![zoe()]);
    call.description = Some("Join: https://us02web.ZOOM.us/j/123".into());
    let mut meet = event("meet", 1, vec![zoe()]);
    meet.location = Some("https://meet.google.com/abc-defg-hij".into());
    let mut lunch = event("lunch", 1, vec![zoe()]);
    lunch.title = "Lunch with Zoë".into();
    let mut place = event("place", 1, vec![zoe()]);
    place.location = Some("Café Central, Wien".into());
    let plain = event("plain", 1, vec![zoe()]);
    let mut kinds: Vec<(String, InteractionKind)> = s
        .meetings_to_log(&[call, meet, lunch, place, plain], NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .into_iter()
        .map(|c| (c.event.key.uid, c.suggested_kind))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("call".into(), InteractionKind::Call),
            ("lunch".into(), InteractionKind::Meal),
            ("meet".into(), InteractionKind::Call),
            ("place".into(), InteractionKind::Meal),
            ("plain".into(), InteractionKind::Meeting),
        ]
    );
}

#[test]
fn log_once_then_never_again_even_after_reopen() {
    let (dir, mut s) = store();
    let mut ev = event(
        "weekly",
        3,
        vec![
            me(PartStat::Accepted),
            zoe(),
            person("Kai Berg", "kai@example.org", PartStat::Accepted),
        ],
    );
    ev.key.recurrence_id = Some("20260310T080000Z".into());
    let events = vec![ev.clone()];
    let [c] = s
        .meetings_to_log(&events, NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .try_into()
        .unwrap();
    let extra = MeetingExtra {
        notes: "talked about the grant".into(),
        create: vec!["KAI@example.org".into()],
        ..MeetingExtra::default()
    };
    let logged = s.log_meeting(&c, extra).unwrap();
    assert_eq!(logged.at_ms, ev.start_ms);
    assert_eq!(logged.summary, "Meeting weekly");
    assert_eq!(logged.participants.len(), 2);
    let kai = s.contacts_named("Kai Berg").unwrap();
    assert_eq!(kai.len(), 1);
    assert_eq!(kai[0].emails[0].value, "kai@example.org");
    let remembered = logged.event.clone().unwrap();
    assert_eq!(
        (remembered.uid.as_str(), remembered.recurrence_id.as_deref()),
        ("weekly", Some("20260310T080000Z"))
    );
    // The same file again suggests nothing; logging again is refused.
    assert!(listed(&s, &events).is_empty());
    assert!(
        matches!(s.log_meeting(&c, MeetingExtra::default()), Err(MeetingError::AlreadyLogged(id)) if id == logged.id)
    );
    // Another occurrence of the same series is another meeting.
    let mut next = ev.clone();
    next.key.recurrence_id = Some("20260303T080000Z".into());
    assert_eq!(listed(&s, &[next.clone()]), ["weekly"]);
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(listed(&s, &events).is_empty());
    assert_eq!(s.interaction(logged.id).unwrap().event, Some(remembered));
}

#[test]
fn log_refuses_what_it_cannot_do_and_creates_nothing_then() {
    let (_d, mut s) = store();
    let ev = event(
        "x",
        1,
        vec![person("", "stranger@example.org", PartStat::Accepted)],
    );
    let [c] = s
        .meetings_to_log(&[ev], NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .try_into()
        .unwrap();
    assert!(matches!(
        s.log_meeting(&c, MeetingExtra::default()),
        Err(MeetingError::NobodyToLog)
    ));
    let wrong = MeetingExtra {
        create: vec!["zoe@example.com".into()],
        ..MeetingExtra::default()
    };
    assert!(matches!(
        s.log_meeting(&c, wrong),
        Err(MeetingError::NotAnAttendee(_))
    ));
    let before = s.all_contacts().unwrap().len();
    let all = MeetingExtra {
        create_all_missing: true,
        kind: Some(InteractionKind::Call),
        ..MeetingExtra::default()
    };
    let i = s.log_meeting(&c, all).unwrap();
    assert_eq!(i.kind, InteractionKind::Call);
    assert_eq!(s.all_contacts().unwrap().len(), before + 1);
}

#[test]
fn dismissed_is_not_suggested_and_survives_reopen() {
    let (dir, mut s) = store();
    let events = vec![event("a", 1, vec![zoe()]), event("b", 2, vec![zoe()])];
    s.dismiss_meeting(&events[0].key).unwrap();
    s.dismiss_meeting(&events[0].key).unwrap();
    assert_eq!(listed(&s, &events), ["b"]);
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(listed(&s, &events), ["b"]);
    assert_eq!(s.settings().unwrap().dismissed_events.len(), 1);
}

#[test]
fn share_of_meetings_logged_and_next_meeting_end() {
    let (_d, mut s) = store();
    let events: Vec<CalendarEvent> = (0..4)
        .map(|i| event(&format!("m{i}"), 24 * (i * 9 + 1), vec![zoe()]))
        .collect();
    // m0 (1 day ago), m1 (10 days), m2 (19 days), m3 (28 days): all in the 30-day window.
    let candidates = s.meetings_to_log(&events, NOW, 30 * 86_400_000).unwrap();
    let m1 = candidates.iter().find(|c| c.event.key.uid == "m1").unwrap();
    s.log_meeting(m1, MeetingExtra::default()).unwrap();
    s.dismiss_meeting(&events[2].key).unwrap();
    let share = s.meeting_log_share(&events, NOW).unwrap();
    assert_eq!(
        (
            share.meetings,
            share.logged,
            share.dismissed,
            share.logged_percent()
        ),
        (4, 1, 1, Some(25))
    );
    let mut soon = event("soon", -2, vec![zoe()]);
    let mut sooner_alone = event("alone", -1, vec![me(PartStat::Accepted)]);
    sooner_alone.organiser = None;
    soon.title = "Design review".into();
    let next = s
        .next_meeting_end(&[soon.clone(), sooner_alone], NOW)
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.key.uid.as_str(), next.end_ms),
        ("soon", NOW + 2 * HOUR)
    );
}

#[test]
fn settings_of_meetings_round_trip() {
    let (_d, mut s) = fresh();
    let mut settings = Settings {
        my_emails: ["a@x.org".to_string(), "b@y.org".to_string()].into(),
        ..Settings::default()
    };
    s.set_settings(settings.clone()).unwrap();
    settings.my_emails.remove("a@x.org");
    s.set_settings(settings.clone()).unwrap();
    assert_eq!(s.settings().unwrap().my_emails, settings.my_emails);
}

/// A store whose index was written before meetings (index version 2): index records one
/// field shorter. Opening it rebuilds the index once; without that, reading interactions
/// would fail as damaged.
#[test]
fn older_store_index_is_rebuilt_on_open() {
    let (dir, mut s) = store();
    let ev = event("old", 1, vec![zoe()]);
    let c = s
        .meetings_to_log(&[ev], NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .remove(0);
    let logged = s.log_meeting(&c, MeetingExtra::default()).unwrap();
    let before = s.index_dump().unwrap();
    s.close().unwrap();
    {
        let db = redb::Database::open(dir.path().join(kith_core::store::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("meta");
            txn.open_table(meta)
                .unwrap()
                .insert("index", b"2".as_slice())
                .unwrap();
            // The old layout of an interaction without event is the new one without its
            // last byte (postcard's `None`); corrupt the logged one the same way.
            let t: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("idx_interactions");
            let mut table = txn.open_table(t).unwrap();
            let rows: Vec<(Vec<u8>, Vec<u8>)> = {
                use redb::ReadableTable;
                table
                    .iter()
                    .unwrap()
                    .map(|r| {
                        let (k, v) = r.unwrap();
                        (k.value().to_vec(), v.value().to_vec())
                    })
                    .collect()
            };
            for (k, v) in rows {
                table.insert(k.as_slice(), &v[..v.len() - 1]).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.index_dump().unwrap(), before);
    assert_eq!(s.interaction(logged.id).unwrap().event, logged.event);
}

/// From a calendar file to the list: a weekly series across the spring DST change in Berlin with
/// one occurrence moved and cancelled and one I declined; the same file twice suggests nothing
/// new once logged.
#[test]
fn from_an_ics_file_recurring_overrides_and_dst() {
    use kith_calendar::{IcsCalendar, IcsLimits, Tz};
    let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n\
BEGIN:VEVENT\r\nUID:weekly@x\r\nDTSTART;TZID=Europe/Berlin:20260316T090000\r\nDURATION:PT1H\r\n\
RRULE:FREQ=WEEKLY;COUNT=6\r\nSUMMARY:Ward round\r\nORGANIZER;CN=Me:mailto:me@example.com\r\n\
ATTENDEE;CN=Zoë Hart;PARTSTAT=ACCEPTED:mailto:zoe@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly@x\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260323T090000\r\nDTSTART;TZID=Europe/Berlin:20260324T090000\r\n\
DURATION:PT1H\r\nSTATUS:CANCELLED\r\nSUMMARY:Ward round\r\nATTENDEE:mailto:zoe@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly@x\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260330T090000\r\nDTSTART;TZID=Europe/Berlin:20260330T090000\r\n\
DURATION:PT1H\r\nSUMMARY:Ward round\r\nATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com\r\nATTENDEE:mailto:zoe@example.com\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let (_d, mut s) = store();
    let now = chrono::DateTime::parse_from_rfc3339("2026-04-08T12:00:00Z")
        .unwrap()
        .timestamp_millis();
    let read = || {
        let cal = IcsCalendar::parse(text.as_bytes(), "ics", &IcsLimits::default()).unwrap();
        cal.events_ending_between(now - 30 * 86_400_000, now, Tz::UTC)
            .unwrap()
            .events
    };
    let list = s.meetings_to_log(&read(), now, 30 * 86_400_000).unwrap();
    let got: Vec<(Option<&str>, i64)> = list
        .iter()
        .map(|c| (c.event.key.recurrence_id.as_deref(), c.event.start_ms))
        .collect();
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    // 16 March 09:00 CET = 08:00Z; from 29 March on, 09:00 CEST = 07:00Z. 23 March: cancelled
    // override; 30 March: declined by me.
    assert_eq!(
        got,
        [
            (Some("20260406T070000Z"), at("2026-04-06T07:00:00Z")),
            (Some("20260316T080000Z"), at("2026-03-16T08:00:00Z")),
        ]
    );
    assert_eq!(list[0].matched.len(), 1);
    for c in &list {
        s.log_meeting(c, MeetingExtra::default()).unwrap();
    }
    assert!(
        s.meetings_to_log(&read(), now, 30 * 86_400_000)
            .unwrap()
            .is_empty()
    );
}
