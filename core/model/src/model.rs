//! The domain model: typed records for everything a user's network holds.
//!
//! These are the plain Rust values the rest of Kith works with (queries,
//! insights, import/export, the bindings). They are *materialised views* of the
//! Automerge document: the mapping between these structs and the document lives
//! in kith-core's `schema` module, and nowhere else. The store's index tables hold
//! serialised copies of these records, so queries never walk the document.
//!
//! Times are UTC milliseconds since the Unix epoch (`*_ms`); an interaction also
//! keeps the local UTC offset it was logged in, so "09:00 in Lisbon" stays 09:00.
//! Dates without time (due dates, birthdays) are calendar dates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

/// Error returned when a string does not name a value of one of the model's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{given}' (expected one of: {expected})")]
pub struct UnknownVariant {
    /// Which vocabulary was being parsed ("kind", "circle", ...).
    pub what: &'static str,
    /// The input that did not match.
    pub given: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

/// Declares a closed vocabulary: a fieldless enum with stable snake_case names
/// used in the document, in JSON, on the command line and across the FFI.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal, { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The stable name used in the document, JSON and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
                match norm.as_str() {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownVariant {
                        what: $what,
                        given: s.to_string(),
                        expected: concat!($( $text, " " ),+),
                    }),
                }
            }
        }
    };
}

vocabulary!(
    /// The three forms of networking (Ibarra & Hunter): a contact may be in several.
    Circle, "circle", {
        /// People needed for the current role, inside the organisation.
        Operational => "operational",
        /// Peers outside the organisation: clubs, professional groups, alumni.
        Personal => "personal",
        /// People who bring information, support and resources toward goals.
        Strategic => "strategic",
    }
);

vocabulary!(
    /// Seniority of a contact relative to me.
    Seniority, "seniority", {
        /// More senior than me.
        Senior => "senior",
        /// At about my level.
        Peer => "peer",
        /// Less senior than me.
        Junior => "junior",
        /// Not recorded (the default).
        Unknown => "unknown",
    }
);

vocabulary!(
    /// What kind of interaction took place.
    InteractionKind, "kind", {
        /// Met in person or by video, by arrangement.
        Meeting => "meeting",
        /// A phone or voice call.
        Call => "call",
        /// A chat or text message exchange.
        Message => "message",
        /// An email exchange.
        Email => "email",
        /// Met at a conference, talk or other gathering.
        Event => "event",
        /// Shared a meal or a coffee.
        Meal => "meal",
        /// Doing things together: work on a shared project or activity.
        ProjectWork => "project_work",
        /// Anything else (the default when absent from the document).
        Other => "other",
    }
);

vocabulary!(
    /// Who started an interaction.
    Initiator, "initiator", {
        /// I reached out.
        Me => "me",
        /// They reached out.
        Them => "them",
        /// Arranged together, or neither side in particular.
        Mutual => "mutual",
        /// Not recorded (the default).
        Unknown => "unknown",
    }
);

vocabulary!(
    /// What a network supplies (the article's five functions).
    ExchangeWhat, "exchange", {
        /// Personal support: encouragement, advocacy, help in a hard moment.
        Support => "support",
        /// Honest feedback on my work or behaviour (or theirs).
        Feedback => "feedback",
        /// A new perspective or way of seeing a problem.
        Insight => "insight",
        /// Access to people, money, time or other resources.
        Resources => "resources",
        /// Facts and news: what is going on, who is doing what.
        Information => "information",
    }
);

vocabulary!(
    /// Direction of an exchange, from my point of view.
    Direction, "direction", {
        /// I gave it to them.
        Gave => "gave",
        /// They gave it to me.
        Received => "received",
    }
);

vocabulary!(
    /// Lifecycle of a project.
    ProjectStatus, "project status", {
        /// Under way (the default).
        Active => "active",
        /// On hold; may resume.
        Paused => "paused",
        /// Finished.
        Done => "done",
    }
);

vocabulary!(
    /// Lifecycle of a goal.
    GoalStatus, "goal status", {
        /// Being worked toward (the default).
        Active => "active",
        /// Reached.
        Achieved => "achieved",
        /// Given up; kept for the record.
        Dropped => "dropped",
    }
);

/// An email address or phone number with an optional label ("work", "mobile").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContactPoint {
    /// The address or number as the user gave it.
    pub value: String,
    /// Free-form label; empty when none.
    #[serde(default)]
    pub label: String,
}

/// A calendar date whose year may be unknown (vCard `--MMDD`, Apple's 1604).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartialDate {
    /// The year, when known.
    pub year: Option<i32>,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

/// A person in my network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Stable identity; never reused, even after a merge.
    pub id: ContactId,
    /// Display name; never empty.
    pub name: String,
    /// Given and family name when known separately (vCard N), for export.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name when known separately (vCard N); see `given_name`.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Employer or organisation; `None` when not known.
    pub organisation: Option<String>,
    /// Job title or role; `None` when not known.
    pub role: Option<String>,
    /// Professional discipline ("nursing", "finance"), compared with
    /// [`Settings::my_discipline`] for the discipline reach; `None` when not known.
    pub discipline: Option<String>,
    /// Seniority relative to me; [`Seniority::Unknown`] when not recorded.
    pub seniority: Seniority,
    /// Inside my organisation? `None` when not known.
    pub inside_org: Option<bool>,
    /// The circles the contact belongs to; may be empty or several.
    pub circles: BTreeSet<Circle>,
    /// Free-form tags; add-wins set across devices.
    pub tags: BTreeSet<String>,
    /// Email addresses, sorted by value, no value twice.
    pub emails: Vec<ContactPoint>,
    /// Phone numbers as given, sorted by value, no value twice.
    pub phones: Vec<ContactPoint>,
    /// Web addresses (profiles, homepages).
    #[serde(default)]
    pub urls: BTreeSet<String>,
    /// Free text on how we met; `None` when not recorded.
    pub how_we_met: Option<String>,
    /// The day we first met (LinkedIn's "Connected On" lands here).
    #[serde(default)]
    pub first_met: Option<NaiveDate>,
    /// Birthday, possibly without a year.
    #[serde(default)]
    pub birthday: Option<PartialDate>,
    /// Long-lived notes; collaborative Text in the document.
    pub notes: String,
    /// Keep-in-touch cadence in days; `None` falls back to the circle default.
    pub cadence_days: Option<u32>,
    /// When the contact was created.
    pub created_ms: TimestampMs,
    /// When any field last changed.
    pub updated_ms: TimestampMs,
    /// Hidden from lists and excluded from insights; also set on merged contacts.
    pub archived: bool,
    /// Set when this contact was merged into another (de-duplication). In the
    /// document it is the pointer the merge wrote; in every record a query
    /// returns it is the live survivor the pointer chain resolves to (`None`
    /// for a survivor, even one whose own pointer closed a cycle): see
    /// SCHEMA.md "Merging duplicates".
    pub merged_into: Option<ContactId>,
    /// Keys of the external records this contact was imported from
    /// (`vcard-uid:...`, `vcard-hash:...`, `linkedin:...`), for idempotent re-import.
    #[serde(default)]
    pub import_keys: BTreeSet<String>,
    /// On a merged-away contact: its field values the merge (or a later edit
    /// of the survivor) already took into account, field name -> value as
    /// [`MergeConflict::value`] spells it. A value of the duplicate that
    /// differs from the survivor's and from this one was made after (or
    /// concurrently with) the merge and shows as a conflict on the survivor.
    #[serde(default)]
    pub merge_base: BTreeMap<String, String>,
    /// Derived, never stored in a document: the contacts merged into this
    /// survivor (directly or through a chain), in id order.
    #[serde(default)]
    pub merged_from: Vec<ContactId>,
    /// Derived, never stored in a document: values of merged duplicates that
    /// differ from this survivor's (see [`Contact::merge_base`]). Writing the
    /// field on the survivor resolves them.
    #[serde(default)]
    pub conflicts: Vec<MergeConflict>,
}

/// A value of a merged duplicate that differs from its survivor's and was
/// set after (or concurrently with) the merge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MergeConflict {
    /// The contact field (`organisation`, `role`, `notes`, ...).
    pub field: String,
    /// The duplicate's value, in its document spelling (dates `YYYY-MM-DD`).
    pub value: String,
    /// The merged duplicate holding it.
    pub from: ContactId,
}

/// One exchange within an interaction: what flowed, which way, with whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Identity within its interaction.
    pub id: ExchangeId,
    /// Which of the five functions flowed.
    pub what: ExchangeWhat,
    /// Whether I gave or received it.
    pub direction: Direction,
    /// The participant it flowed with; `None` means "all participants".
    pub with: Option<ContactId>,
}

/// Something to do after an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Identity within its interaction.
    pub id: FollowUpId,
    /// What to do.
    pub text: String,
    /// Due date; `None` means no deadline.
    pub due: Option<NaiveDate>,
    /// When it was marked done; `None` while open.
    pub done_ms: Option<TimestampMs>,
}

/// One logged interaction with one or more contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Identity; also carries the time it was created, which picks its log document.
    pub id: InteractionId,
    /// When it happened (UTC).
    pub at_ms: TimestampMs,
    /// The local UTC offset, in minutes, where it happened.
    pub offset_minutes: i16,
    /// What kind of interaction it was.
    pub kind: InteractionKind,
    /// Who started it.
    pub initiator: Initiator,
    /// The contacts involved; one or more.
    pub participants: BTreeSet<ContactId>,
    /// One line; never empty.
    pub summary: String,
    /// Plain string notes (see docs/SCHEMA.md for why not Text).
    pub notes: String,
    /// Other values of `notes` written concurrently on other devices; non-empty
    /// means a conflict the user should resolve (writing `notes` resolves it).
    #[serde(default)]
    pub notes_conflicts: Vec<String>,
    /// The project this interaction was work on, if any.
    pub project: Option<ProjectId>,
    /// What flowed, which way, with whom.
    pub exchanges: Vec<Exchange>,
    /// Things to do after it, by id.
    pub follow_ups: BTreeMap<FollowUpId, FollowUp>,
    /// When it was logged.
    pub created_ms: TimestampMs,
    /// When any field last changed.
    pub updated_ms: TimestampMs,
    /// Tombstone: set when deleted; clearing it undeletes.
    pub deleted_ms: Option<TimestampMs>,
    /// The calendar event this interaction logs (see docs/MEETINGS.md): no device suggests it
    /// again. Last field: the index's postcard layout (and its lean reader) must follow.
    #[serde(default)]
    pub event: Option<EventRef>,
}

/// One dismissed calendar event as serialised inside [`Settings`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DismissedEvent {
    event: EventRef,
    dismissed_ms: TimestampMs,
}

mod dismissed_list {
    use super::{BTreeMap, DismissedEvent, EventRef, TimestampMs};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        m: &BTreeMap<EventRef, TimestampMs>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(event, at)| DismissedEvent {
            event: event.clone(),
            dismissed_ms: *at,
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<EventRef, TimestampMs>, D::Error> {
        let list = Vec::<DismissedEvent>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|x| (x.event, x.dismissed_ms))
            .collect())
    }
}

/// A calendar event (one occurrence of a recurring one) as a logged or dismissed meeting
/// remembers it: where it comes from, its UID and its recurrence id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventRef {
    /// Where the event came from (a calendar account or file, as the app names it).
    pub source: String,
    /// The event's UID (iCalendar `UID`, or the platform's event id).
    pub uid: String,
    /// The occurrence of a recurring event (`RECURRENCE-ID`); `None` for a single event.
    pub recurrence_id: Option<String>,
}

/// A shared project or activity: relationships grow by doing things together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Stable identity.
    pub id: ProjectId,
    /// Short name shown in lists.
    pub name: String,
    /// Free text; empty when none.
    pub description: String,
    /// Where the project is in its lifecycle.
    pub status: ProjectStatus,
    /// When the project was created.
    pub created_ms: TimestampMs,
    /// When any field last changed.
    pub updated_ms: TimestampMs,
}

/// A goal that strategic networking works toward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    /// Stable identity.
    pub id: GoalId,
    /// What I want to achieve; never empty.
    pub title: String,
    /// 1 (highest) to 3.
    pub priority: u8,
    /// Whether the goal is active, achieved or dropped.
    pub status: GoalStatus,
    /// Contacts who can help toward it (the strategic circle's purpose).
    pub contacts: BTreeSet<ContactId>,
    /// When the goal was created.
    pub created_ms: TimestampMs,
    /// When any field last changed.
    pub updated_ms: TimestampMs,
}

/// Per-user settings that shape defaults and insights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// My organisation, to suggest inside/outside for new contacts.
    pub my_organisation: Option<String>,
    /// My discipline, for the discipline reach (E-I) index.
    pub my_discipline: Option<String>,
    /// Default keep-in-touch cadence per circle, in days.
    pub cadence_days: BTreeMap<Circle, u32>,
    /// Target share of effort in the strategic circle (0..=1); `None` = not set.
    pub strategic_target: Option<f64>,
    /// How many of the strongest ties form "the core" in insights.
    pub core_size: u32,
    /// My own e-mail addresses: calendar attendees with them are me (docs/MEETINGS.md).
    #[serde(default)]
    pub my_emails: BTreeSet<String>,
    /// Calendar events I chose not to log, with when I dismissed them. Serialised as a list of
    /// `{event, dismissed_ms}` (JSON object keys must be strings).
    #[serde(default, with = "dismissed_list")]
    pub dismissed_events: BTreeMap<EventRef, TimestampMs>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            my_organisation: None,
            my_discipline: None,
            cadence_days: BTreeMap::from([
                (Circle::Operational, 30),
                (Circle::Personal, 90),
                (Circle::Strategic, 60),
            ]),
            strategic_target: None,
            core_size: 15,
            my_emails: BTreeSet::new(),
            dismissed_events: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The cadence that applies to a contact: its own, else the shortest default
    /// of its circles, else `None` (not tracked).
    pub fn cadence_for(&self, contact: &Contact) -> Option<u32> {
        contact.cadence_days.or_else(|| {
            contact
                .circles
                .iter()
                .filter_map(|c| self.cadence_days.get(c).copied())
                .min()
        })
    }
}

impl Interaction {
    /// Whether the interaction is deleted (tombstoned).
    pub fn is_deleted(&self) -> bool {
        self.deleted_ms.is_some()
    }
}

/// The records insights are computed from (kith-core's
/// `Store::insights_records` reads them; interactions come without their
/// notes); kith-insights borrows them through `InsightsInput::from_records`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsightsRecords {
    /// Every contact, archived and merged ones included.
    pub contacts: Vec<Contact>,
    /// Every interaction, deleted ones included, notes left empty.
    pub interactions: Vec<Interaction>,
    /// Every goal.
    pub goals: Vec<Goal>,
    /// The network's settings.
    pub settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with dismissed meetings serialise to JSON (the CLI, the JSON export) and to
    /// postcard (the index) and read back equal.
    #[test]
    fn settings_with_dismissed_meetings_round_trip() {
        let mut s = Settings::default();
        s.my_emails.insert("me@example.com".into());
        s.dismissed_events.insert(
            EventRef {
                source: "ics".into(),
                uid: "u".into(),
                recurrence_id: Some("20260101".into()),
            },
            7,
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"dismissed_ms\":7"), "{json}");
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<Settings>(&bytes).unwrap(), s);
    }

    #[test]
    fn vocabulary_round_trips_and_rejects_unknown() {
        for k in InteractionKind::ALL {
            assert_eq!(k.as_str().parse::<InteractionKind>().unwrap(), *k);
        }
        assert_eq!(
            "Project-Work".parse::<InteractionKind>().unwrap(),
            InteractionKind::ProjectWork
        );
        let err = "lunch".parse::<InteractionKind>().unwrap_err();
        assert!(err.to_string().contains("unknown kind 'lunch'"), "{err}");
        assert_eq!(
            serde_json::to_string(&Circle::Strategic).unwrap(),
            "\"strategic\""
        );
    }
}
