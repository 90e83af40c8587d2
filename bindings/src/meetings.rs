//! Meetings to log, for phone apps: the app reads its calendar (Android CalendarContract, iOS
//! EventKit), passes the events here as plain records, and gets back the meetings worth logging
//! with their attendees matched to contacts; it logs or dismisses one with a single call, and
//! asks `next_meeting_end` when to schedule the "Log your meeting with …?" notification.
//!
//! Data flow: foreign `CalendarEvent` records are checked (bounded sizes, end not before start)
//! and converted to `kith_calendar::CalendarEvent`, then the engine (`kith_core::meetings`) does
//! the work under the store lock; results come back as flat records. See bindings/README.md.

use kith_core::meetings as m;

use crate::error::{KithError, KithResult};
use crate::guard::guard;
use crate::inputs::{NewExchange, NewFollowUp};
use crate::kith::Kith;
use crate::listener::ChangeSummary;
use crate::types::to_i32;
use crate::types::{Initiator, InteractionKind, parse_id};

/// Longest identifier (source, uid, recurrence id) an event may carry, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 1_024;
/// Longest free text (title, location, description, url, names) an event may carry, in bytes.
pub const EVENT_TEXT_BYTES_MAX: usize = 16_384;

/// An attendee's answer to the invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AttendeeStatus {
    /// Not answered yet.
    NeedsAction,
    /// Accepted.
    Accepted,
    /// Declined (a meeting I declined is never suggested).
    Declined,
    /// Tentatively accepted.
    Tentative,
    /// Delegated to someone else.
    Delegated,
}

/// The status of a calendar event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CalendarEventStatus {
    /// Confirmed (also what the calendar gives when it does not say).
    Confirmed,
    /// Tentative.
    Tentative,
    /// Cancelled (never suggested).
    Cancelled,
}

/// One person on an event (organiser or attendee).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CalendarAttendee {
    /// The name the calendar shows (iCalendar CN), if any.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// The e-mail address, without `mailto:`, if any.
    #[uniffi(default = None)]
    pub email: Option<String>,
    /// Their answer to the invitation.
    pub status: AttendeeStatus,
}

/// One occurrence of a calendar event, as the phone's calendar gives it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CalendarEvent {
    /// The calendar it comes from (e.g. "android:<calendar id>", "ios:<calendar identifier>").
    pub source: String,
    /// The event's UID (CalendarContract UID_2445 or _ID; EventKit calendarItemExternalIdentifier).
    pub uid: String,
    /// The occurrence of a recurring event (its original start, e.g. Instances.BEGIN in ms).
    #[uniffi(default = None)]
    pub recurrence_id: Option<String>,
    /// The event's title (the suggested summary).
    pub title: String,
    /// Start, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// End, milliseconds since the Unix epoch (UTC); the meeting is logged at its start.
    pub end_ms: i64,
    /// An all-day event (never suggested).
    #[uniffi(default = false)]
    pub all_day: bool,
    /// Where it takes place (a restaurant suggests a meal).
    #[uniffi(default = None)]
    pub location: Option<String>,
    /// The event's description (a video-call link suggests a call).
    #[uniffi(default = None)]
    pub description: Option<String>,
    /// The event's URL, if any (a video-call link suggests a call).
    #[uniffi(default = None)]
    pub url: Option<String>,
    /// Who organised it.
    #[uniffi(default = None)]
    pub organiser: Option<CalendarAttendee>,
    /// Everyone invited (me included; my addresses come from the settings).
    pub attendees: Vec<CalendarAttendee>,
    /// Confirmed, tentative or cancelled.
    pub status: CalendarEventStatus,
    /// Marked private in the calendar.
    #[uniffi(default = false)]
    pub private: bool,
}

/// An attendee that is a known contact.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MatchedAttendee {
    /// The attendee as the calendar lists it.
    pub attendee: CalendarAttendee,
    /// The contact it matched (a merge survivor).
    pub contact_id: String,
    /// That contact's display name.
    pub contact_name: String,
    /// Matched by e-mail (else by name).
    pub by_email: bool,
}

/// An attendee that matches no contact (offer to create it), or several by name (`candidate_ids`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UnmatchedAttendee {
    /// The attendee as the calendar lists it.
    pub attendee: CalendarAttendee,
    /// The name a created contact would get.
    pub display_name: String,
    /// Contacts whose name matches (empty: nobody, creating it is safe).
    pub candidate_ids: Vec<String>,
}

/// A meeting worth logging.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MeetingCandidate {
    /// The event (one occurrence of a recurring one).
    pub event: CalendarEvent,
    /// Attendees other than me that are contacts.
    pub matched: Vec<MatchedAttendee>,
    /// Attendees other than me that are not (offer to create them).
    pub unmatched: Vec<UnmatchedAttendee>,
    /// The kind the rules suggest: call, meal or meeting.
    pub suggested_kind: InteractionKind,
}

/// What the user adds when logging a meeting; everything optional.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetingExtra {
    /// Replaces the event's title as the summary.
    #[uniffi(default = None)]
    pub summary: Option<String>,
    /// Replaces the suggested kind.
    #[uniffi(default = None)]
    pub kind: Option<InteractionKind>,
    /// A few lines of notes.
    #[uniffi(default = "")]
    pub notes: String,
    /// Who started it (`null`: unknown).
    #[uniffi(default = None)]
    pub initiator: Option<Initiator>,
    /// The shared project it belongs to.
    #[uniffi(default = None)]
    pub project_id: Option<String>,
    /// What was given and received, with whom.
    #[uniffi(default = [])]
    pub exchanges: Vec<NewExchange>,
    /// Follow-ups to track.
    #[uniffi(default = [])]
    pub follow_ups: Vec<NewFollowUp>,
    /// Unmatched attendees to create, by e-mail or display name.
    #[uniffi(default = [])]
    pub create: Vec<String>,
    /// Create every unmatched attendee that no contact's name matches.
    #[uniffi(default = false)]
    pub create_all_missing: bool,
    /// The local UTC offset where the meeting happened, in minutes.
    #[uniffi(default = 0)]
    pub offset_minutes: i16,
}

/// When the next meeting with people ends, and who was in it (for the notification text).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NextMeeting {
    /// When it ends, milliseconds since the Unix epoch (schedule the notification then).
    pub end_ms: i64,
    /// The event.
    pub event: CalendarEvent,
    /// Contact names where the attendee is known, else the attendee's name or address.
    pub people: Vec<String>,
}

/// Of the meetings with people in the last 30 days, how many were logged (insights line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct MeetingShare {
    /// Meetings with people that ended in the window.
    pub meetings: i32,
    /// Of those, logged.
    pub logged: i32,
    /// Of those, dismissed.
    pub dismissed: i32,
}

fn text(field: &str, s: &str, max: usize) -> KithResult<()> {
    if s.len() > max {
        return Err(KithError::invalid(
            field,
            format!("longer than {max} bytes"),
        ));
    }
    Ok(())
}

impl CalendarAttendee {
    fn into_core(self, field: &str) -> KithResult<m::Attendee> {
        for s in self.name.iter().chain(self.email.iter()) {
            text(field, s, EVENT_TEXT_BYTES_MAX)?;
        }
        Ok(m::Attendee {
            name: self.name,
            email: self.email,
            partstat: match self.status {
                AttendeeStatus::NeedsAction => m::PartStat::NeedsAction,
                AttendeeStatus::Accepted => m::PartStat::Accepted,
                AttendeeStatus::Declined => m::PartStat::Declined,
                AttendeeStatus::Tentative => m::PartStat::Tentative,
                AttendeeStatus::Delegated => m::PartStat::Delegated,
            },
        })
    }
}

impl From<m::Attendee> for CalendarAttendee {
    fn from(a: m::Attendee) -> Self {
        CalendarAttendee {
            name: a.name,
            email: a.email,
            status: match a.partstat {
                m::PartStat::NeedsAction => AttendeeStatus::NeedsAction,
                m::PartStat::Accepted => AttendeeStatus::Accepted,
                m::PartStat::Declined => AttendeeStatus::Declined,
                m::PartStat::Tentative => AttendeeStatus::Tentative,
                m::PartStat::Delegated => AttendeeStatus::Delegated,
            },
        }
    }
}

impl CalendarEvent {
    fn into_core(self) -> KithResult<m::CalendarEvent> {
        for (field, s) in [("event.source", &self.source), ("event.uid", &self.uid)] {
            text(field, s, EVENT_ID_BYTES_MAX)?;
            if s.trim().is_empty() {
                return Err(KithError::invalid(field, "must not be empty"));
            }
        }
        if let Some(r) = &self.recurrence_id {
            text("event.recurrence_id", r, EVENT_ID_BYTES_MAX)?;
        }
        for s in [
            Some(&self.title),
            self.location.as_ref(),
            self.description.as_ref(),
            self.url.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            text("event", s, EVENT_TEXT_BYTES_MAX)?;
        }
        if self.end_ms < self.start_ms {
            return Err(KithError::invalid("event.end_ms", "before start_ms"));
        }
        if self.attendees.len() > 10_000 {
            return Err(KithError::invalid("event.attendees", "more than 10000"));
        }
        Ok(m::CalendarEvent {
            key: m::EventKey {
                source: self.source,
                uid: self.uid,
                recurrence_id: self.recurrence_id,
            },
            title: self.title,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            all_day: self.all_day,
            location: self.location,
            description: self.description,
            url: self.url,
            organiser: self
                .organiser
                .map(|o| o.into_core("event.organiser"))
                .transpose()?,
            attendees: self
                .attendees
                .into_iter()
                .map(|a| a.into_core("event.attendees"))
                .collect::<KithResult<_>>()?,
            status: match self.status {
                CalendarEventStatus::Confirmed => m::EventStatus::Confirmed,
                CalendarEventStatus::Tentative => m::EventStatus::Tentative,
                CalendarEventStatus::Cancelled => m::EventStatus::Cancelled,
            },
            private: self.private,
        })
    }
}

impl From<m::CalendarEvent> for CalendarEvent {
    fn from(e: m::CalendarEvent) -> Self {
        CalendarEvent {
            source: e.key.source,
            uid: e.key.uid,
            recurrence_id: e.key.recurrence_id,
            title: e.title,
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            all_day: e.all_day,
            location: e.location,
            description: e.description,
            url: e.url,
            organiser: e.organiser.map(Into::into),
            attendees: e.attendees.into_iter().map(Into::into).collect(),
            status: match e.status {
                m::EventStatus::Confirmed => CalendarEventStatus::Confirmed,
                m::EventStatus::Tentative => CalendarEventStatus::Tentative,
                m::EventStatus::Cancelled => CalendarEventStatus::Cancelled,
            },
            private: e.private,
        }
    }
}

impl From<m::MeetingCandidate> for MeetingCandidate {
    fn from(c: m::MeetingCandidate) -> Self {
        MeetingCandidate {
            event: c.event.into(),
            matched: c
                .matched
                .into_iter()
                .map(|x| MatchedAttendee {
                    attendee: x.attendee.into(),
                    contact_id: x.contact.to_string(),
                    contact_name: x.contact_name,
                    by_email: x.by == m::MatchedBy::Email,
                })
                .collect(),
            unmatched: c
                .unmatched
                .into_iter()
                .map(|u| UnmatchedAttendee {
                    display_name: u.display_name(),
                    candidate_ids: u.candidates.iter().map(ToString::to_string).collect(),
                    attendee: u.attendee.into(),
                })
                .collect(),
            suggested_kind: c.suggested_kind.into(),
        }
    }
}

impl MeetingCandidate {
    fn into_core(self) -> KithResult<m::MeetingCandidate> {
        Ok(m::MeetingCandidate {
            event: self.event.into_core()?,
            matched: self
                .matched
                .into_iter()
                .map(|x| {
                    Ok(m::MatchedAttendee {
                        attendee: x.attendee.into_core("matched.attendee")?,
                        contact: parse_id("matched.contact_id", &x.contact_id)?,
                        contact_name: x.contact_name,
                        by: if x.by_email {
                            m::MatchedBy::Email
                        } else {
                            m::MatchedBy::Name
                        },
                    })
                })
                .collect::<KithResult<_>>()?,
            unmatched: self
                .unmatched
                .into_iter()
                .map(|u| {
                    Ok(m::UnmatchedAttendee {
                        attendee: u.attendee.into_core("unmatched.attendee")?,
                        candidates: u
                            .candidate_ids
                            .iter()
                            .map(|id| parse_id("unmatched.candidate_ids", id))
                            .collect::<KithResult<_>>()?,
                    })
                })
                .collect::<KithResult<_>>()?,
            suggested_kind: self.suggested_kind.into(),
        })
    }
}

fn events_into_core(events: Vec<CalendarEvent>) -> KithResult<Vec<m::CalendarEvent>> {
    if events.len() > m::EVENTS_MAX {
        return Err(KithError::invalid(
            "events",
            format!(
                "more than {} events; pass the last weeks only",
                m::EVENTS_MAX
            ),
        ));
    }
    events.into_iter().map(CalendarEvent::into_core).collect()
}

impl From<m::MeetingError> for KithError {
    fn from(e: m::MeetingError) -> Self {
        match e {
            m::MeetingError::Op(o) => o.into(),
            m::MeetingError::Store(s) => s.into(),
            m::MeetingError::AlreadyLogged(_) | m::MeetingError::NotSameEvent(..) => {
                KithError::Conflict {
                    reason: e.to_string(),
                }
            }
            m::MeetingError::TooManyEvents { .. } => KithError::invalid("events", e.to_string()),
            m::MeetingError::NobodyToLog
            | m::MeetingError::NotAnAttendee(_)
            | m::MeetingError::AmbiguousAttendee { .. } => {
                KithError::invalid("extra.create", e.to_string())
            }
        }
    }
}

// Rust API: the blocking implementation. The foreign API (async where this touches the
// disk or the network) is the `ffi_*` façade in crate::api, one method per operation.
impl Kith {
    /// The meetings among `events` that ended in the 7 days before `now_ms`, with people, and
    /// not logged or dismissed on any device; most recent first.
    pub fn meetings_to_log(
        &self,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<Vec<MeetingCandidate>> {
        guard("meetings_to_log", || {
            let events = events_into_core(events)?;
            self.with_store(|s| {
                Ok(s.meetings_to_log(&events, now_ms, m::WINDOW_MS_DEFAULT)?
                    .into_iter()
                    .map(Into::into)
                    .collect())
            })
        })
    }

    /// Logs a meeting from `meetings_to_log` (creating the attendees `extra` asks for). Returns
    /// the interaction's id. The event is never suggested again, on any device.
    pub fn log_meeting(
        &self,
        candidate: MeetingCandidate,
        extra: MeetingExtra,
    ) -> KithResult<String> {
        guard("log_meeting", || {
            let candidate = candidate.into_core()?;
            let extra = m::MeetingExtra {
                summary: extra.summary,
                kind: extra.kind.map(Into::into),
                notes: extra.notes,
                initiator: extra.initiator.map(Into::into),
                project: extra
                    .project_id
                    .as_deref()
                    .map(|p| parse_id("extra.project_id", p))
                    .transpose()?,
                exchanges: extra
                    .exchanges
                    .into_iter()
                    .map(NewExchange::into_op)
                    .collect::<KithResult<_>>()?,
                follow_ups: extra
                    .follow_ups
                    .into_iter()
                    .map(NewFollowUp::into_op)
                    .collect::<KithResult<_>>()?,
                create: extra.create,
                create_all_missing: extra.create_all_missing,
                offset_minutes: extra.offset_minutes,
            };
            let logged = self.with_store(|s| Ok(s.log_meeting(&candidate, extra)?))?;
            self.local_changed(&ChangeSummary {
                contact_ids: logged
                    .participants
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                interaction_ids: vec![logged.id.to_string()],
                ..ChangeSummary::default()
            });
            Ok(logged.id.to_string())
        })
    }

    /// Dismisses a meeting: it is not suggested again, on any device.
    pub fn dismiss_meeting(&self, event: CalendarEvent) -> KithResult<()> {
        guard("dismiss_meeting", || {
            let event = event.into_core()?;
            self.with_store(|s| Ok(s.dismiss_meeting(&event.key)?))?;
            self.local_changed(&ChangeSummary {
                settings: true,
                ..ChangeSummary::default()
            });
            Ok(())
        })
    }

    /// The next meeting with people that ends after `now_ms`: schedule the "Log your meeting
    /// with …?" notification at `end_ms`. `None` when there is none.
    pub fn next_meeting_end(
        &self,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<Option<NextMeeting>> {
        guard("next_meeting_end", || {
            let events = events_into_core(events)?;
            self.with_store(|s| {
                let Some(next) = s.next_meeting_end(&events, now_ms)? else {
                    return Ok(None);
                };
                // Names for the notification: matched contacts where known.
                let window = next.end_ms.saturating_sub(now_ms).max(0);
                let named =
                    s.meetings_to_log(std::slice::from_ref(&next), next.end_ms, window.max(1))?;
                let people = match named.first() {
                    Some(c) => c
                        .matched
                        .iter()
                        .map(|x| x.contact_name.clone())
                        .chain(c.unmatched.iter().map(m::UnmatchedAttendee::display_name))
                        .collect(),
                    None => next
                        .attendees
                        .iter()
                        .filter_map(|a| a.name.clone().or_else(|| a.email.clone()))
                        .collect(),
                };
                Ok(Some(NextMeeting {
                    end_ms: next.end_ms,
                    event: next.into(),
                    people,
                }))
            })
        })
    }

    /// Of the meetings with people among `events` that ended in the 30 days before `now_ms`,
    /// how many were logged (and dismissed).
    pub fn meeting_log_share(
        &self,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<MeetingShare> {
        guard("meeting_log_share", || {
            let events = events_into_core(events)?;
            self.with_store(|s| {
                let share = s.meeting_log_share(&events, now_ms)?;
                Ok(MeetingShare {
                    meetings: to_i32(share.meetings),
                    logged: to_i32(share.logged),
                    dismissed: to_i32(share.dismissed),
                })
            })
        })
    }
}
