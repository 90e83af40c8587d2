//! Meetings to log across devices through a real relay: a meeting logged or dismissed on one
//! device is not suggested on the other; the same meeting logged on two offline devices becomes
//! a likely duplicate after sync (in both sync orders), the merge syncs, and concurrent
//! dismissals on both devices all survive.

use kith_core::NewContact;
use kith_core::meetings::{
    Attendee, CalendarEvent, EventKey, MeetingExtra, PartStat, WINDOW_MS_DEFAULT,
};
use kith_core::model::ContactPoint;
use kith_e2e::{Device, TestRelay};

use crate::common::{assert_same, round, rt};

/// 2026-03-10T12:00:00Z
const NOW: i64 = 1_773_144_000_000;
const HOUR: i64 = 3_600_000;

fn event(uid: &str, ended_hours_ago: i64) -> CalendarEvent {
    CalendarEvent {
        key: EventKey {
            source: "ics".into(),
            uid: uid.into(),
            recurrence_id: None,
        },
        title: format!("Meeting {uid}"),
        start_ms: NOW - (ended_hours_ago + 1) * HOUR,
        end_ms: NOW - ended_hours_ago * HOUR,
        attendees: vec![Attendee {
            name: Some("Zoë Hart".into()),
            email: Some("zoe@example.com".into()),
            partstat: PartStat::Accepted,
        }],
        ..CalendarEvent::default()
    }
}

fn listed(d: &Device, events: &[CalendarEvent]) -> Vec<String> {
    d.s()
        .meetings_to_log(events, NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .into_iter()
        .map(|c| c.event.key.uid)
        .collect()
}

fn log(d: &Device, events: &[CalendarEvent], uid: &str, notes: &str) -> kith_core::InteractionId {
    let c = d
        .s()
        .meetings_to_log(events, NOW, WINDOW_MS_DEFAULT)
        .unwrap()
        .into_iter()
        .find(|c| c.event.key.uid == uid)
        .unwrap();
    d.s()
        .log_meeting(
            &c,
            MeetingExtra {
                notes: notes.into(),
                ..MeetingExtra::default()
            },
        )
        .unwrap()
        .id
}

/// Both devices know Zoë (synced once), so matching works everywhere.
async fn two_devices(relay: &TestRelay) -> (Device, Device) {
    let a = Device::first("laptop");
    let b = a.sibling("phone");
    let mut z = NewContact::named("Zoë Hart");
    z.emails = vec![ContactPoint {
        value: "zoe@example.com".into(),
        label: String::new(),
    }];
    a.s().add_contact(z).unwrap();
    round(&a, relay).await;
    round(&b, relay).await;
    (a, b)
}

#[test]
fn logged_and_dismissed_meetings_are_not_suggested_on_the_other_device() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let (a, b) = two_devices(&relay).await;
        let events = vec![event("e1", 1), event("e2", 2), event("e3", 3)];
        assert_eq!(listed(&b, &events), ["e1", "e2", "e3"]);
        log(&a, &events, "e1", "from the laptop");
        a.s().dismiss_meeting(&events[1].key).unwrap();
        round(&a, &relay).await;
        round(&b, &relay).await;
        assert_eq!(listed(&b, &events), ["e3"]);
        // And back: the phone dismisses e3, the laptop stops suggesting it.
        b.s().dismiss_meeting(&events[2].key).unwrap();
        round(&b, &relay).await;
        round(&a, &relay).await;
        assert!(listed(&a, &events).is_empty());
        assert_same(&a, &b);
    });
}

#[test]
fn one_meeting_logged_offline_on_two_devices_is_a_duplicate_in_both_sync_orders() {
    for laptop_first in [true, false] {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let relay = TestRelay::start(dir.path());
            let (a, b) = two_devices(&relay).await;
            let events = vec![event("same", 1), event("d1", 2), event("d2", 3)];
            // Offline on both: the same meeting logged twice, and one dismissal each.
            let ia = log(&a, &events, "same", "laptop notes");
            let ib = log(&b, &events, "same", "phone notes");
            a.s().dismiss_meeting(&events[1].key).unwrap();
            b.s().dismiss_meeting(&events[2].key).unwrap();
            let (first, second) = if laptop_first { (&a, &b) } else { (&b, &a) };
            round(first, &relay).await;
            round(second, &relay).await;
            round(first, &relay).await;
            assert_same(&a, &b);
            for d in [&a, &b] {
                assert!(
                    listed(d, &events).is_empty(),
                    "both dismissals and the log survive"
                );
                let dups = d.s().duplicate_meeting_logs().unwrap();
                assert_eq!(dups.len(), 1, "{dups:?}");
                let pair = [dups[0].keep, dups[0].other];
                assert!(pair.contains(&ia) && pair.contains(&ib));
            }
            let dup = a.s().duplicate_meeting_logs().unwrap().remove(0);
            let merged = second.s().merge_meeting_logs(dup.keep, dup.other).unwrap();
            assert!(merged.notes.contains("laptop notes") && merged.notes.contains("phone notes"));
            round(second, &relay).await;
            round(first, &relay).await;
            for d in [&a, &b] {
                assert!(d.s().duplicate_meeting_logs().unwrap().is_empty());
                assert!(d.s().interaction(dup.other).unwrap().is_deleted());
                assert!(listed(d, &events).is_empty());
            }
            assert_same(&a, &b);
        });
    }
}
