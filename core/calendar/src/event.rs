//! The calendar event record: what a phone calendar (Android CalendarContract, iOS EventKit) and
//! an iCalendar file both map to before the engine looks at them. One record is one occurrence:
//! a recurring series arrives as one record per occurrence, each with its recurrence id, so the
//! engine never needs to know about recurrence rules.

use serde::{Deserialize, Serialize};

/// Participation status of an attendee (RFC 5545 PARTSTAT, EventKit/CalendarContract map to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PartStat {
    #[default]
    /// No answer yet.
    NeedsAction,
    /// Accepted.
    Accepted,
    /// Declined.
    Declined,
    /// Tentatively accepted (or a tentative event).
    Tentative,
    /// Delegated to somebody else.
    Delegated,
}

impl PartStat {
    /// Reads a PARTSTAT value; unknown values (x-names, COMPLETED of to-dos) count as no answer.
    pub fn from_ical(value: &str) -> Self {
        match value.trim().to_ascii_uppercase().as_str() {
            "ACCEPTED" => Self::Accepted,
            "DECLINED" => Self::Declined,
            "TENTATIVE" => Self::Tentative,
            "DELEGATED" => Self::Delegated,
            _ => Self::NeedsAction,
        }
    }
}

/// Status of the event as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EventStatus {
    #[default]
    /// Confirmed (the default).
    Confirmed,
    /// Tentatively accepted (or a tentative event).
    Tentative,
    /// Cancelled.
    Cancelled,
}

impl EventStatus {
    /// Reads a STATUS value; anything unknown counts as confirmed (the RFC default).
    pub fn from_ical(value: &str) -> Self {
        match value.trim().to_ascii_uppercase().as_str() {
            "CANCELLED" | "CANCELED" => Self::Cancelled,
            "TENTATIVE" => Self::Tentative,
            _ => Self::Confirmed,
        }
    }
}

/// One person on an event: the organiser or an attendee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Attendee {
    /// Display name (CN), if the calendar has one.
    pub name: Option<String>,
    /// Email address without `mailto:`, as written (matching normalises it).
    pub email: Option<String>,
    /// Their answer to the invitation.
    pub partstat: PartStat,
}

/// Which event (and which occurrence of a recurring one) a record is. This is what a logged or
/// dismissed meeting remembers so that it is never suggested again on any device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct EventKey {
    /// Where the event comes from: a calendar account id on a phone, `ics` for files.
    pub source: String,
    /// The event's UID (iCalendar UID, EventKit calendarItemExternalIdentifier, CalendarContract UID_2445 or _ID).
    pub uid: String,
    /// The occurrence of a recurring event: its original start, UTC `YYYYMMDDTHHMMSSZ` (or
    /// `YYYYMMDD` for all-day). `None` for a single event.
    pub recurrence_id: Option<String>,
}

impl EventKey {
    /// A one-line form for display and command-line selection: `uid` or `uid@recurrence-id`.
    pub fn display_id(&self) -> String {
        match &self.recurrence_id {
            Some(r) => format!("{}@{}", self.uid, r),
            None => self.uid.clone(),
        }
    }
}

/// One occurrence of a calendar event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CalendarEvent {
    /// Which event and occurrence this is.
    pub key: EventKey,
    /// The event's title (SUMMARY).
    pub title: String,
    /// Start, milliseconds since the Unix epoch (UTC). All-day events start at local midnight.
    pub start_ms: i64,
    /// End (exclusive), milliseconds since the Unix epoch (UTC); never before `start_ms`.
    pub end_ms: i64,
    /// Whether it is an all-day event (dates, no times).
    pub all_day: bool,
    /// Where it takes place (a room, an address or a video-call link).
    pub location: Option<String>,
    /// Free text of the event (DESCRIPTION / notes): where video-call links usually are.
    pub description: Option<String>,
    /// The event's URL or conference link (URL, CONFERENCE, X-GOOGLE-CONFERENCE).
    pub url: Option<String>,
    /// Who organised it.
    pub organiser: Option<Attendee>,
    /// The invited people (rooms and resources left out).
    pub attendees: Vec<Attendee>,
    /// Confirmed, tentative or cancelled.
    pub status: EventStatus,
    /// CLASS:PRIVATE or CONFIDENTIAL (phones: an event the owner marked private).
    pub private: bool,
}
