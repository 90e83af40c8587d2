//! Meetings to log: calendar events (from a phone calendar or an iCalendar file, see the
//! `kith-calendar` crate) → the recent meetings with other people that the user has not logged
//! or dismissed yet, each with its attendees matched to contacts, logged with one call.
//!
//! Data flow: [`Store::meetings_to_log`] reads the settings (the user's own addresses and the
//! dismissed events), the contacts (matching keys: normalised email, then normalised name as in
//! the likely-duplicate rules of [`crate::dedup`]) and the interactions that remember an event,
//! then filters the events by the rules of docs/MEETINGS.md. [`Store::log_meeting`] creates the
//! chosen unmatched attendees and logs one interaction that carries the event's [`EventRef`];
//! [`Store::dismiss_meeting`] records the event in the settings. Both live in synced documents,
//! so a meeting handled on one device is never suggested on another. Two devices that log the
//! same event offline produce two interactions with one event: [`Store::duplicate_meeting_logs`]
//! finds them after sync and [`Store::merge_meeting_logs`] folds one into the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use kith_calendar::{Attendee, CalendarEvent, EventKey, EventStatus, PartStat};
use serde::{Deserialize, Serialize};

use crate::error::{OpError, StoreError};
use crate::ids::{ContactId, InteractionId};
use crate::index::text;
use crate::model::{
    Contact, ContactPoint, EventRef, Initiator, Interaction, InteractionKind, Settings, TimestampMs,
};
use crate::ops::{NewContact, NewExchange, NewFollowUp, NewInteraction, ParticipantRef};
use crate::store::Store;

/// The default window: meetings that ended in the last 7 days.
pub const WINDOW_MS_DEFAULT: i64 = 7 * 86_400_000;
/// The window of the insights line (share of meetings logged).
pub const SHARE_WINDOW_MS: i64 = 30 * 86_400_000;
/// Events one call may pass (a phone reads its calendar; a year of a busy one is ~5,000).
pub const EVENTS_MAX: usize = 100_000;
/// Attendees of one event that are matched (a 2,000-person all-hands is not a meeting to log).
pub const ATTENDEES_MAX: usize = 200;

/// How an attendee was matched to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// The attendee's e-mail address (normalised) is one of the contact's.
    Email,
    /// The attendee's name matches the contact's by the likely-duplicate name rules.
    Name,
}

/// An attendee that is a known contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedAttendee {
    /// The attendee as the calendar lists it.
    pub attendee: Attendee,
    /// The contact it matched (a merge survivor, never a merged duplicate).
    pub contact: ContactId,
    /// That contact's display name.
    pub contact_name: String,
    /// Which rule matched.
    pub by: MatchedBy,
}

/// An attendee that matches no contact (offered for creation), or whose name matches several
/// (`candidates`: the user picks one; creating would make a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedAttendee {
    /// The attendee as the calendar lists it.
    pub attendee: Attendee,
    /// Contacts whose name matches (empty: nobody; creating it is safe).
    pub candidates: Vec<ContactId>,
}

impl UnmatchedAttendee {
    /// The name a created contact gets: the CN, else the e-mail's local part.
    pub fn display_name(&self) -> String {
        display_name(&self.attendee)
    }
}

/// One meeting worth logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingCandidate {
    /// The event (one occurrence of a recurring one).
    pub event: CalendarEvent,
    /// Attendees other than me that are contacts.
    pub matched: Vec<MatchedAttendee>,
    /// Attendees other than me that are not (offered for creation).
    pub unmatched: Vec<UnmatchedAttendee>,
    /// The kind the rules suggest (docs/MEETINGS.md): call, meal or meeting.
    pub suggested_kind: InteractionKind,
}

/// What the user adds when logging a meeting. Everything is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeetingExtra {
    /// Replaces the event's title as the summary.
    pub summary: Option<String>,
    /// Replaces the suggested kind.
    pub kind: Option<InteractionKind>,
    /// A few lines of notes (may be empty).
    pub notes: String,
    /// Who started it (`None`: unknown).
    pub initiator: Option<Initiator>,
    /// The shared project it belongs to.
    pub project: Option<crate::ids::ProjectId>,
    /// What was given and received, with whom.
    pub exchanges: Vec<NewExchange>,
    /// Follow-ups to track.
    pub follow_ups: Vec<NewFollowUp>,
    /// Unmatched attendees to create, by e-mail or name (as shown); see `create_all_missing`.
    pub create: Vec<String>,
    /// Create every unmatched attendee that has no candidates.
    pub create_all_missing: bool,
    /// The local UTC offset where the meeting happened, in minutes.
    pub offset_minutes: i16,
}

/// The insights line: of the meetings with people that ended in the window, how many were logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingShare {
    /// Meetings with people that ended in the window.
    pub meetings: u32,
    /// Of those, logged as an interaction.
    pub logged: u32,
    /// Of those, dismissed.
    pub dismissed: u32,
}

impl MeetingShare {
    /// Logged share in percent (`None` with no meetings).
    pub fn logged_percent(&self) -> Option<u32> {
        (self.meetings > 0).then(|| self.logged * 100 / self.meetings)
    }
}

/// Two interactions that log the same calendar event (two devices logged it offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateMeetingLog {
    /// The event both interactions log.
    pub event: EventRef,
    /// The earlier-created one (kept by default).
    pub keep: InteractionId,
    /// The later one (merged into `keep` on request).
    pub other: InteractionId,
}

/// Errors of logging, dismissing or merging meetings.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    /// The event is already logged, here or on another device.
    #[error("this meeting was already logged (interaction {0})")]
    AlreadyLogged(InteractionId),
    /// No attendee matched a contact and none was chosen for creation.
    #[error(
        "nobody to log the meeting with: no attendee matches a contact; choose attendees to create"
    )]
    NobodyToLog,
    /// A name or address to create is not among the unmatched attendees.
    #[error("'{0}' is not an unmatched attendee of this meeting")]
    NotAnAttendee(String),
    /// The attendee to create matches several contacts by name (creating would duplicate).
    #[error("'{name}' matches {} contacts; add them to the interaction by id instead", candidates.len())]
    AmbiguousAttendee {
        /// The attendee's name.
        name: String,
        /// The contacts it could be.
        candidates: Vec<ContactId>,
    },
    /// The two interactions do not log the same event (nothing to merge).
    #[error("interactions {0} and {1} do not log the same calendar event")]
    NotSameEvent(InteractionId, InteractionId),
    /// More events than one call takes ([`EVENTS_MAX`]): pass a narrower range.
    #[error("too many events ({given}); at most {max} per call")]
    TooManyEvents {
        /// Events passed.
        given: usize,
        /// The most one call takes.
        max: usize,
    },
    /// Logging the interaction or creating a contact refused its input.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The model's form of a calendar event key (kith-model does not know kith-calendar).
pub fn event_ref(k: &EventKey) -> EventRef {
    EventRef {
        source: k.source.clone(),
        uid: k.uid.clone(),
        recurrence_id: k.recurrence_id.clone(),
    }
}

fn display_name(a: &Attendee) -> String {
    if let Some(n) = a.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return n.to_owned();
    }
    let email = a.email.as_deref().unwrap_or("").trim();
    email
        .split('@')
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or(email)
        .to_owned()
}

/// The people of an event other than the user, or `None` when the rules say it is not a meeting
/// with people to log: cancelled, all-day, declined by the user, or nobody else who did not
/// decline. Rooms and resources never reach here (the reader drops CUTYPE=ROOM/RESOURCE).
pub fn others_in_meeting<'a>(
    ev: &'a CalendarEvent,
    my_emails: &BTreeSet<String>,
) -> Option<Vec<&'a Attendee>> {
    if ev.status == EventStatus::Cancelled || ev.all_day {
        return None;
    }
    let is_me = |a: &Attendee| {
        a.email
            .as_deref()
            .is_some_and(|e| my_emails.contains(&text::normalise_email(e)))
    };
    if ev
        .attendees
        .iter()
        .any(|a| is_me(a) && a.partstat == PartStat::Declined)
    {
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut others = Vec::new();
    for a in ev.attendees.iter().chain(ev.organiser.iter()) {
        if is_me(a) || a.partstat == PartStat::Declined {
            continue;
        }
        let key = match a.email.as_deref() {
            Some(e) => text::normalise_email(e),
            None => format!(
                "name:{}",
                text::normalise_name(a.name.as_deref().unwrap_or(""))
            ),
        };
        if key == "name:" || !seen.insert(key) {
            continue;
        }
        others.push(a);
        if others.len() >= ATTENDEES_MAX {
            break;
        }
    }
    (!others.is_empty()).then_some(others)
}

/// Video-call hosts whose links make a meeting a call.
const VIDEO_HOSTS: &[&str] = &[
    "zoom.us/",
    "meet.google.com/",
    "teams.microsoft.com/",
    "teams.live.com/",
    "webex.com/",
    "whereby.com/",
    "meet.jit.si/",
    "gotomeeting.com/",
    "facetime.apple.com/",
    "bluejeans.com/",
    "chime.aws/",
    "discord.gg/",
    "skype.com/",
];
const MEAL_WORDS: &[&str] = &[
    "lunch",
    "dinner",
    "breakfast",
    "brunch",
    "coffee",
    "drinks",
    "restaurant",
    "café",
    "cafe",
    "bistro",
    "pizzeria",
    "trattoria",
    "brasserie",
    "pub",
    "bar",
];

/// The suggested kind: a video-call link (in location, URL or description) → call; a meal word
/// in the title or a restaurant-like location → meal; else meeting.
pub fn suggest_kind(ev: &CalendarEvent) -> InteractionKind {
    let link_in = |s: &Option<String>| {
        s.as_deref().is_some_and(|s| {
            let s = s.to_lowercase();
            VIDEO_HOSTS.iter().any(|h| s.contains(h))
        })
    };
    if link_in(&ev.location) || link_in(&ev.url) || link_in(&ev.description) {
        return InteractionKind::Call;
    }
    let words = |s: &str| -> Vec<String> {
        text::normalise(s)
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_owned)
            .collect()
    };
    let meal_word = |s: &str| {
        let ws = words(s);
        MEAL_WORDS
            .iter()
            .any(|m| ws.iter().any(|w| w == &text::normalise(m)))
    };
    if meal_word(&ev.title) || ev.location.as_deref().is_some_and(meal_word) {
        return InteractionKind::Meal;
    }
    InteractionKind::Meeting
}

/// Contacts by their matching keys.
#[derive(Debug, Default)]
struct Matcher {
    by_email: HashMap<String, (ContactId, String)>,
    by_name: HashMap<String, Vec<(ContactId, String)>>,
}

impl Matcher {
    fn new(contacts: &[Contact]) -> Self {
        let mut m = Matcher::default();
        for c in contacts.iter().filter(|c| c.merged_into.is_none()) {
            for e in &c.emails {
                let e = text::normalise_email(&e.value);
                if !e.is_empty() {
                    // Two contacts with one address are likely duplicates; the older id wins.
                    m.by_email
                        .entry(e)
                        .and_modify(|v| {
                            if c.id < v.0 {
                                *v = (c.id, c.name.clone())
                            }
                        })
                        .or_insert((c.id, c.name.clone()));
                }
            }
            let n = text::normalise_name(&c.name);
            if !n.is_empty() {
                m.by_name.entry(n).or_default().push((c.id, c.name.clone()));
            }
        }
        m
    }

    fn split(&self, others: &[&Attendee]) -> (Vec<MatchedAttendee>, Vec<UnmatchedAttendee>) {
        let mut matched: Vec<MatchedAttendee> = Vec::new();
        let mut unmatched = Vec::new();
        for a in others {
            let by_email = a
                .email
                .as_deref()
                .and_then(|e| self.by_email.get(&text::normalise_email(e)));
            let hit = match by_email {
                Some((id, name)) => Some((*id, name.clone(), MatchedBy::Email)),
                None => {
                    let names = a
                        .name
                        .as_deref()
                        .map(text::normalise_name)
                        .filter(|n| !n.is_empty())
                        .and_then(|n| self.by_name.get(&n));
                    match names.map(Vec::as_slice) {
                        Some([(id, name)]) => Some((*id, name.clone(), MatchedBy::Name)),
                        Some(many) if many.len() > 1 => {
                            unmatched.push(UnmatchedAttendee {
                                attendee: (*a).clone(),
                                candidates: many.iter().map(|(id, _)| *id).collect(),
                            });
                            continue;
                        }
                        _ => None,
                    }
                }
            };
            match hit {
                // One contact reached through two addresses is one participant.
                Some((id, _, _)) if matched.iter().any(|m| m.contact == id) => {}
                Some((contact, contact_name, by)) => matched.push(MatchedAttendee {
                    attendee: (*a).clone(),
                    contact,
                    contact_name,
                    by,
                }),
                None => unmatched.push(UnmatchedAttendee {
                    attendee: (*a).clone(),
                    candidates: Vec::new(),
                }),
            }
        }
        (matched, unmatched)
    }
}

/// The events handled already: logged (by any interaction, deleted ones too: the user acted on
/// the meeting) or dismissed.
fn handled(
    settings: &Settings,
    interactions: &[Interaction],
) -> (BTreeSet<EventRef>, BTreeSet<EventRef>) {
    let logged = interactions
        .iter()
        .filter_map(|i| i.event.clone())
        .collect();
    let dismissed = settings.dismissed_events.keys().cloned().collect();
    (logged, dismissed)
}

/// The end of the next meeting with people (ending after `now_ms`), for a phone to schedule
/// its "Log your meeting with …?" notification; `None` when there is none.
pub fn next_meeting_end<'a>(
    events: &'a [CalendarEvent],
    now_ms: TimestampMs,
    my_emails: &BTreeSet<String>,
) -> Option<&'a CalendarEvent> {
    events
        .iter()
        .filter(|e| e.end_ms > now_ms && others_in_meeting(e, my_emails).is_some())
        .min_by_key(|e| (e.end_ms, e.key.clone()))
}

impl Store {
    /// The meetings to log among `events`: ended in `[now_ms - window_ms, now_ms]`, with people,
    /// not handled yet (docs/MEETINGS.md has every rule). Sorted by end, most recent first.
    pub fn meetings_to_log(
        &self,
        events: &[CalendarEvent],
        now_ms: TimestampMs,
        window_ms: i64,
    ) -> Result<Vec<MeetingCandidate>, MeetingError> {
        if events.len() > EVENTS_MAX {
            return Err(MeetingError::TooManyEvents {
                given: events.len(),
                max: EVENTS_MAX,
            });
        }
        let settings = self.settings()?;
        let from_ms = now_ms.saturating_sub(window_ms.max(0));
        let in_window: Vec<&CalendarEvent> = events
            .iter()
            .filter(|e| e.end_ms >= from_ms && e.end_ms <= now_ms)
            .collect();
        if in_window.is_empty() {
            return Ok(Vec::new());
        }
        let (logged, dismissed) = handled(&settings, &self.meeting_logs()?);
        let matcher = Matcher::new(&self.all_contacts()?);
        let my = my_emails(&settings);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for ev in in_window {
            let key = event_ref(&ev.key);
            if logged.contains(&key) || dismissed.contains(&key) || !seen.insert(key) {
                continue;
            }
            let Some(others) = others_in_meeting(ev, &my) else {
                continue;
            };
            let (matched, unmatched) = matcher.split(&others);
            out.push(MeetingCandidate {
                event: ev.clone(),
                matched,
                unmatched,
                suggested_kind: suggest_kind(ev),
            });
        }
        out.sort_by(|a, b| {
            b.event
                .end_ms
                .cmp(&a.event.end_ms)
                .then_with(|| a.event.key.cmp(&b.event.key))
        });
        Ok(out)
    }

    /// Logs a meeting: creates the chosen unmatched attendees (with their e-mail), then one
    /// interaction at the event's start with every matched and created participant, remembering
    /// the event so that no device suggests it again.
    pub fn log_meeting(
        &mut self,
        candidate: &MeetingCandidate,
        extra: MeetingExtra,
    ) -> Result<Interaction, MeetingError> {
        let event = event_ref(&candidate.event.key);
        if let Some(i) = self
            .meeting_logs()?
            .into_iter()
            .find(|i| i.event.as_ref() == Some(&event) && !i.is_deleted())
        {
            return Err(MeetingError::AlreadyLogged(i.id));
        }
        let mut to_create: Vec<&UnmatchedAttendee> = Vec::new();
        for wanted in &extra.create {
            let w = wanted.trim();
            let found = candidate.unmatched.iter().find(|u| {
                u.attendee
                    .email
                    .as_deref()
                    .is_some_and(|e| text::normalise_email(e) == text::normalise_email(w))
                    || text::normalise_name(&u.display_name()) == text::normalise_name(w)
            });
            match found {
                Some(u) if !u.candidates.is_empty() => {
                    return Err(MeetingError::AmbiguousAttendee {
                        name: u.display_name(),
                        candidates: u.candidates.clone(),
                    });
                }
                Some(u) => to_create.push(u),
                None => return Err(MeetingError::NotAnAttendee(w.to_owned())),
            }
        }
        if extra.create_all_missing {
            to_create.extend(
                candidate
                    .unmatched
                    .iter()
                    .filter(|u| u.candidates.is_empty()),
            );
        }
        to_create.sort_by_key(|u| u.display_name());
        to_create.dedup_by_key(|u| u.display_name());
        let mut participants: Vec<ParticipantRef> = candidate
            .matched
            .iter()
            .map(|m| ParticipantRef::Id(m.contact))
            .collect();
        if participants.is_empty() && to_create.is_empty() {
            return Err(MeetingError::NobodyToLog);
        }
        // Validate the interaction's own fields before creating anybody, so a bad follow-up
        // does not leave half a meeting behind.
        let summary = extra
            .summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                let t = candidate.event.title.trim();
                if t.is_empty() {
                    "Meeting".to_owned()
                } else {
                    t.chars().take(200).collect()
                }
            });
        for u in to_create {
            let mut new = NewContact::named(u.display_name());
            if let Some(e) = u.attendee.email.as_deref() {
                new.emails = vec![ContactPoint {
                    value: e.trim().to_owned(),
                    label: String::new(),
                }];
            }
            let c = self.add_contact(new)?;
            participants.push(ParticipantRef::Id(c.id));
        }
        let new = NewInteraction {
            at_ms: Some(candidate.event.start_ms),
            offset_minutes: extra.offset_minutes,
            kind: extra.kind.unwrap_or(candidate.suggested_kind),
            initiator: extra.initiator.unwrap_or(Initiator::Unknown),
            participants,
            summary,
            notes: extra.notes,
            project: extra.project,
            exchanges: extra.exchanges,
            follow_ups: extra.follow_ups,
            create_missing: false,
        };
        Ok(self.log_interaction_for_event(new, Some(event))?)
    }

    /// Dismisses an event: it is not suggested again on any device.
    pub fn dismiss_meeting(&mut self, key: &EventKey) -> Result<(), MeetingError> {
        let mut s = self.settings()?;
        s.dismissed_events
            .entry(event_ref(key))
            .or_insert_with(crate::store::now_ms);
        self.set_settings(s)?;
        Ok(())
    }

    /// Share of the meetings with people that ended in the 30 days before `now_ms` that were
    /// logged (the insights line).
    pub fn meeting_log_share(
        &self,
        events: &[CalendarEvent],
        now_ms: TimestampMs,
    ) -> Result<MeetingShare, MeetingError> {
        let settings = self.settings()?;
        let (logged, dismissed) = handled(&settings, &self.meeting_logs()?);
        let my = my_emails(&settings);
        let from = now_ms.saturating_sub(SHARE_WINDOW_MS);
        let mut seen = BTreeSet::new();
        let mut share = MeetingShare::default();
        for ev in events
            .iter()
            .filter(|e| e.end_ms >= from && e.end_ms <= now_ms)
        {
            let key = event_ref(&ev.key);
            if !seen.insert(key.clone()) || others_in_meeting(ev, &my).is_none() {
                continue;
            }
            share.meetings += 1;
            if logged.contains(&key) {
                share.logged += 1;
            } else if dismissed.contains(&key) {
                share.dismissed += 1;
            }
        }
        Ok(share)
    }

    /// The end of the next meeting with people after `now_ms` (see [`next_meeting_end`]).
    pub fn next_meeting_end(
        &self,
        events: &[CalendarEvent],
        now_ms: TimestampMs,
    ) -> Result<Option<CalendarEvent>, MeetingError> {
        let my = my_emails(&self.settings()?);
        Ok(next_meeting_end(events, now_ms, &my).cloned())
    }

    /// Live interactions that log the same event (two devices logged it offline), oldest kept.
    pub fn duplicate_meeting_logs(&self) -> Result<Vec<DuplicateMeetingLog>, MeetingError> {
        let mut by_event: BTreeMap<EventRef, Vec<&Interaction>> = BTreeMap::new();
        let logs = self.meeting_logs()?;
        for i in logs.iter().filter(|i| !i.is_deleted()) {
            if let Some(e) = &i.event {
                by_event.entry(e.clone()).or_default().push(i);
            }
        }
        let mut out = Vec::new();
        for (event, mut list) in by_event {
            list.sort_by_key(|i| (i.created_ms, i.id));
            if let Some((first, rest)) = list.split_first() {
                for other in rest {
                    out.push(DuplicateMeetingLog {
                        event: event.clone(),
                        keep: first.id,
                        other: other.id,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Folds interaction `other` into `keep` (both must log the same event): participants,
    /// exchanges and follow-ups are united, `other`'s notes are appended, then `other` is deleted
    /// (a tombstone, so a device that still edits it offline loses nothing on sync).
    pub fn merge_meeting_logs(
        &mut self,
        keep: InteractionId,
        other: InteractionId,
    ) -> Result<Interaction, MeetingError> {
        let a = self.interaction(keep)?;
        let b = self.interaction(other)?;
        if keep == other || a.event.is_none() || a.event != b.event {
            return Err(MeetingError::NotSameEvent(keep, other));
        }
        let mut participants = a.participants.clone();
        participants.extend(b.participants.iter().copied());
        let notes = match (a.notes.trim().is_empty(), b.notes.trim().is_empty()) {
            (_, true) => a.notes.clone(),
            (true, false) => b.notes.clone(),
            (false, false) if a.notes.contains(b.notes.trim()) => a.notes.clone(),
            (false, false) => format!("{}\n\n{}", a.notes.trim_end(), b.notes.trim()),
        };
        let mut exchanges = a.exchanges.clone();
        for ex in &b.exchanges {
            if !exchanges
                .iter()
                .any(|e| e.what == ex.what && e.direction == ex.direction && e.with == ex.with)
            {
                exchanges.push(ex.clone());
            }
        }
        let patch = crate::ops::InteractionPatch {
            participants: Some(participants),
            notes: Some(notes),
            exchanges: Some(exchanges),
            project: a
                .project
                .is_none()
                .then_some(b.project)
                .filter(Option::is_some),
            ..Default::default()
        };
        self.edit_interaction(keep, patch)?;
        for fu in b.follow_ups.values() {
            if !a
                .follow_ups
                .values()
                .any(|f| f.text == fu.text && f.due == fu.due)
            {
                self.add_follow_up(
                    keep,
                    NewFollowUp {
                        text: fu.text.clone(),
                        due: fu.due,
                    },
                )?;
            }
        }
        self.delete_interaction(other)?;
        Ok(self.interaction(keep)?)
    }

    /// Interactions that remember a calendar event (deleted ones included).
    fn meeting_logs(&self) -> Result<Vec<Interaction>, StoreError> {
        crate::index::event_logs(&self.read_txn()?)
    }
}

fn my_emails(settings: &Settings) -> BTreeSet<String> {
    settings
        .my_emails
        .iter()
        .map(|e| text::normalise_email(e))
        .filter(|e| !e.is_empty())
        .collect()
}
