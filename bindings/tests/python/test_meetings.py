"""Meetings to log through the generated Python bindings: the list with matched and unmatched
attendees and the rules (declined by me, cancelled, all-day, not ended), logging one (creating
an attendee), dismissing one, the next meeting's end, the 30-day share, and bad events as a
typed KithError. Real stores in temporary directories."""

import pytest

import kith_ffi as raw_kith_ffi
from blocking import kith_ffi, run
from kith_ffi import (
    AttendeeStatus,
    CalendarAttendee,
    CalendarEvent,
    CalendarEventStatus,
    ContactPoint,
    InteractionKind,
    KithError,
    MeetingExtra,
    NewContact,
)

NOW = 1_773_144_000_000  # 2026-03-10T12:00:00Z
HOUR = 3_600_000
ME = CalendarAttendee(name="Me", email="me@example.com", status=AttendeeStatus.ACCEPTED)
ZOE = CalendarAttendee(name="Zoë", email="ZOE@example.com", status=AttendeeStatus.ACCEPTED)
KAI = CalendarAttendee(name="Kai Berg", email="kai@example.org", status=AttendeeStatus.ACCEPTED)


def event(uid, ended_hours_ago, attendees, title="Design review", **kw):
    fields = dict(
        source="ios:work",
        uid=uid,
        recurrence_id=None,
        title=title,
        start_ms=NOW - (ended_hours_ago + 1) * HOUR,
        end_ms=NOW - ended_hours_ago * HOUR,
        all_day=False,
        location=None,
        description=None,
        url=None,
        organiser=None,
        attendees=attendees,
        status=CalendarEventStatus.CONFIRMED,
        private=False,
    )
    fields.update(kw)
    return CalendarEvent(**fields)


@pytest.fixture
def store(kith):
    s = kith.get_settings()
    s.my_emails = ["Me@Example.com"]
    kith.set_settings(s)
    zoe = kith.add_contact(
        NewContact(name="Zoë Hart", emails=[ContactPoint(value="zoe@example.com", label="work")])
    )
    return kith, zoe


def test_rules_matching_log_dismiss_and_share(store):
    kith, zoe = store
    declined_me = CalendarAttendee(name="Me", email="me@example.com", status=AttendeeStatus.DECLINED)
    events = [
        event("coffee", 1, [ME, ZOE, KAI], title="Coffee with Zoë"),
        event("declined", 2, [declined_me, ZOE]),
        event("cancelled", 3, [ME, ZOE], status=CalendarEventStatus.CANCELLED),
        event("all-day", 4, [ME, ZOE], all_day=True),
        event("call", 5, [ME, ZOE], location="https://meet.google.com/abc-defg-hij"),
        event("later", -2, [ME, ZOE]),
    ]
    listed = kith.meetings_to_log(events, NOW)
    assert [c.event.uid for c in listed] == ["coffee", "call"]
    coffee, call = listed
    assert coffee.suggested_kind == InteractionKind.MEAL
    assert call.suggested_kind == InteractionKind.CALL
    assert [m.contact_id for m in coffee.matched] == [zoe.id] and coffee.matched[0].by_email
    assert [u.display_name for u in coffee.unmatched] == ["Kai Berg"]

    extra = MeetingExtra(notes="Agreed on the pilot", create=["kai@example.org"])
    iid = kith.log_meeting(coffee, extra)
    logged = kith.get_interaction(iid)
    assert logged.at_ms == coffee.event.start_ms and len(logged.participants) == 2
    with pytest.raises(KithError.Conflict):
        kith.log_meeting(coffee, MeetingExtra())
    kith.dismiss_meeting(call.event)
    assert kith.meetings_to_log(events, NOW) == []

    share = kith.meeting_log_share(events, NOW)
    assert (share.meetings, share.logged, share.dismissed) == (2, 1, 1)
    nxt = kith.next_meeting_end(events, NOW)
    assert nxt.event.uid == "later" and nxt.end_ms == NOW + 2 * HOUR and nxt.people == ["Zoë Hart"]
    # Settings written by the app keep the dismissed meetings.
    s = kith.get_settings()
    s.core_size = 12
    kith.set_settings(s)
    assert kith.meetings_to_log(events, NOW) == []


def test_bad_events_are_typed_errors(store):
    kith, _ = store
    with pytest.raises(KithError.InvalidInput):
        kith.meetings_to_log([event("bad", 1, [ZOE], end_ms=0)], NOW)
    with pytest.raises(KithError.InvalidInput):
        kith.meetings_to_log([event("", 1, [ZOE])], NOW)
    with pytest.raises(KithError.InvalidInput):
        kith.meetings_to_log([event("x" * 5000, 1, [ZOE])], NOW)
    listed = kith.meetings_to_log([event("ok", 1, [ZOE])], NOW)
    forged = listed[0]
    forged.matched[0].contact_id = "not-a-ulid"
    with pytest.raises(KithError.InvalidInput):
        kith.log_meeting(forged, MeetingExtra())
