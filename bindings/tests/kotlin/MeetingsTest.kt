// Meetings to log through the Kotlin bindings, as an Android app uses them after reading
// CalendarContract.Instances: the list with matched and unmatched attendees, logging one
// (creating an attendee), dismissing one, the next meeting's end for the notification, the
// 30-day share, and bad events refused with a typed error. Called from KithTest.kt's main.
package dev.kith.tests

import dev.kith.*

private const val NOW = 1_773_144_000_000L // 2026-03-10T12:00:00Z
private const val HOUR = 3_600_000L

private suspend fun event(uid: String, endedHoursAgo: Long, title: String = "Design review", vararg people: CalendarAttendee) =
    CalendarEvent(
        source = "android:1",
        uid = uid,
        recurrenceId = null,
        title = title,
        startMs = NOW - (endedHoursAgo + 1) * HOUR,
        endMs = NOW - endedHoursAgo * HOUR,
        allDay = false,
        location = null,
        description = null,
        url = null,
        organiser = null,
        attendees = people.toList(),
        status = CalendarEventStatus.CONFIRMED,
        private = false,
    )

suspend fun meetings(kith: Kith): Int {
    var n = 0
    suspend fun ok(c: Boolean, what: suspend () -> String) { n++; if (!c) throw AssertionError(what()) }
    val settings = kith.getSettings()
    kith.setSettings(settings.copy(myEmails = listOf("me@example.com")))
    val zoe = kith.addContact(NewContact(
        name = "Zoë Hart",
        emails = listOf(ContactPoint(value = "zoe@example.com", label = "work")),
    ))
    val me = CalendarAttendee("Me", "ME@example.com", AttendeeStatus.ACCEPTED)
    val z = CalendarAttendee("Zoë", "Zoe@Example.com", AttendeeStatus.ACCEPTED)
    val kai = CalendarAttendee("Kai Berg", "kai@example.org", AttendeeStatus.ACCEPTED)
    val events = listOf(
        event("lunch", 1, "Lunch with Zoë", me, z, kai),
        event("declined", 2, "Standup", CalendarAttendee("Me", "me@example.com", AttendeeStatus.DECLINED), z),
        event("dismiss-me", 3, "Weekly sync", me, z),
        event("later", -2, "Board prep", me, z),
    )
    val list = kith.meetingsToLog(events, NOW)
    ok(list.map { it.event.uid } == listOf("lunch", "dismiss-me")) { "listed ${list.map { it.event.uid }}" }
    val lunch = list[0]
    ok(lunch.suggestedKind == InteractionKind.MEAL) { "kind ${lunch.suggestedKind}" }
    ok(lunch.matched.map { it.contactId } == listOf(zoe.id) && lunch.matched[0].byEmail) { "matched ${lunch.matched}" }
    ok(lunch.unmatched.map { it.displayName } == listOf("Kai Berg")) { "unmatched ${lunch.unmatched}" }

    val id = kith.logMeeting(lunch, MeetingExtra(
        summary = null, kind = null, notes = "Agreed on the pilot", initiator = Initiator.ME, projectId = null,
        exchanges = listOf(), followUps = listOf(NewFollowUp(text = "Send the deck", due = "2026-03-13")),
        create = listOf("kai@example.org"), createAllMissing = false, offsetMinutes = 60,
    ))
    val logged = kith.getInteraction(id)
    ok(logged.participants.size == 2 && logged.atMs == lunch.event.startMs) { "logged $logged" }
    kith.dismissMeeting(list[1].event)
    ok(kith.meetingsToLog(events, NOW).isEmpty()) { "nothing left to log" }
    try {
        kith.logMeeting(lunch, MeetingExtra(null, null, "", null, null, listOf(), listOf(), listOf(), false, 0))
        throw AssertionError("logging twice must fail")
    } catch (e: KithException.Conflict) { n++ }

    val next = kith.nextMeetingEnd(events, NOW)
    ok(next != null && next.event.uid == "later" && next.endMs == NOW + 2 * HOUR && next.people == listOf("Zoë Hart")) { "next $next" }
    val share = kith.meetingLogShare(events, NOW)
    ok(share.meetings == 2 && share.logged == 1 && share.dismissed == 1) { "share $share" }

    // A bad event is refused with a typed error, never a crash.
    try {
        kith.meetingsToLog(listOf(event("bad", 1).copy(endMs = 0)), NOW)
        throw AssertionError("an event ending before it starts must be refused")
    } catch (e: KithException.InvalidInput) { n++ }
    // Settings written by the app keep the dismissed meetings.
    kith.setSettings(kith.getSettings().copy(coreSize = 12))
    ok(kith.meetingsToLog(events, NOW).isEmpty()) { "dismissal survives set_settings" }
    return n
}
