//! The records and enums that cross the FFI boundary, and their conversions
//! to and from kith-core's model.
//!
//! Foreign code sees plain values: ids are ULID strings, instants are UTC
//! milliseconds (`*_ms`), calendar dates are ISO `YYYY-MM-DD` strings, sets are
//! lists. Values coming *in* are parsed here into the model's typed values, and
//! anything malformed becomes `KithError::InvalidInput` naming the field, so the
//! engine never sees a bad id or date. Values going *out* are total conversions
//! (a model value always has an FFI form).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use chrono::NaiveDate;
use kith_core::model;

use crate::error::KithError;

/// Declares an FFI enum mirroring a model vocabulary one-to-one, with
/// conversions both ways. A variant added to the model fails to compile here
/// until the bindings handle it.
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident => $model:path { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($variant),+
        }

        impl From<$model> for $name {
            fn from(v: $model) -> Self {
                match v {
                    $(<$model>::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $model {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => <$model>::$variant),+
                }
            }
        }
    };
}

mirror_enum!(
    /// The three forms of networking; a contact may be in several.
    Circle => model::Circle { Operational, Personal, Strategic }
);
mirror_enum!(
    /// Seniority of a contact relative to me.
    Seniority => model::Seniority { Senior, Peer, Junior, Unknown }
);
mirror_enum!(
    /// What kind of interaction took place.
    InteractionKind => model::InteractionKind {
        Meeting, Call, Message, Email, Event, Meal, ProjectWork, Other
    }
);
mirror_enum!(
    /// Who started an interaction.
    Initiator => model::Initiator { Me, Them, Mutual, Unknown }
);
mirror_enum!(
    /// What a network supplies: support, feedback, insight, resources, information.
    ExchangeWhat => model::ExchangeWhat { Support, Feedback, Insight, Resources, Information }
);
mirror_enum!(
    /// Direction of an exchange, from my point of view.
    Direction => model::Direction { Gave, Received }
);
mirror_enum!(
    /// Lifecycle of a project.
    ProjectStatus => model::ProjectStatus { Active, Paused, Done }
);
mirror_enum!(
    /// Lifecycle of a goal.
    GoalStatus => model::GoalStatus { Active, Achieved, Dropped }
);

/// An email address or phone number with an optional label ("work", "mobile").
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ContactPoint {
    pub value: String,
    #[uniffi(default = "")]
    pub label: String,
}

impl From<model::ContactPoint> for ContactPoint {
    fn from(p: model::ContactPoint) -> Self {
        ContactPoint {
            value: p.value,
            label: p.label,
        }
    }
}

impl From<ContactPoint> for model::ContactPoint {
    fn from(p: ContactPoint) -> Self {
        model::ContactPoint {
            value: p.value,
            label: p.label,
        }
    }
}

/// A calendar date whose year may be unknown (birthdays from vCards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct PartialDate {
    pub year: Option<i32>,
    pub month: u8,
    pub day: u8,
}

impl From<model::PartialDate> for PartialDate {
    fn from(d: model::PartialDate) -> Self {
        PartialDate {
            year: d.year,
            month: d.month,
            day: d.day,
        }
    }
}

/// A person in my network, as stored.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub organisation: Option<String>,
    pub role: Option<String>,
    pub discipline: Option<String>,
    pub seniority: Seniority,
    pub inside_org: Option<bool>,
    pub circles: Vec<Circle>,
    pub tags: Vec<String>,
    pub emails: Vec<ContactPoint>,
    pub phones: Vec<ContactPoint>,
    pub urls: Vec<String>,
    pub how_we_met: Option<String>,
    /// ISO date (`YYYY-MM-DD`) of the first meeting, when known.
    pub first_met: Option<String>,
    pub birthday: Option<PartialDate>,
    pub notes: String,
    pub cadence_days: Option<u32>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived: bool,
    /// Set when this contact was merged into another one.
    pub merged_into: Option<String>,
}

impl From<model::Contact> for Contact {
    fn from(c: model::Contact) -> Self {
        Contact {
            id: c.id.to_string(),
            name: c.name,
            given_name: c.given_name,
            family_name: c.family_name,
            organisation: c.organisation,
            role: c.role,
            discipline: c.discipline,
            seniority: c.seniority.into(),
            inside_org: c.inside_org,
            circles: c.circles.into_iter().map(Circle::from).collect(),
            tags: c.tags.into_iter().collect(),
            emails: c.emails.into_iter().map(ContactPoint::from).collect(),
            phones: c.phones.into_iter().map(ContactPoint::from).collect(),
            urls: c.urls.into_iter().collect(),
            how_we_met: c.how_we_met,
            first_met: c.first_met.map(|d| d.to_string()),
            birthday: c.birthday.map(PartialDate::from),
            notes: c.notes,
            cadence_days: c.cadence_days,
            created_ms: c.created_ms,
            updated_ms: c.updated_ms,
            archived: c.archived,
            merged_into: c.merged_into.map(|id| id.to_string()),
        }
    }
}

/// One exchange within an interaction: what flowed, which way, with whom.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Exchange {
    pub id: String,
    pub what: ExchangeWhat,
    pub direction: Direction,
    /// The participant it flowed with; `None` means all participants.
    pub with_contact_id: Option<String>,
}

impl From<model::Exchange> for Exchange {
    fn from(e: model::Exchange) -> Self {
        Exchange {
            id: e.id.to_string(),
            what: e.what.into(),
            direction: e.direction.into(),
            with_contact_id: e.with.map(|id| id.to_string()),
        }
    }
}

/// Something to do after an interaction.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FollowUp {
    pub id: String,
    pub interaction_id: String,
    pub text: String,
    /// ISO date (`YYYY-MM-DD`), when the follow-up has a due date.
    pub due: Option<String>,
    pub done_ms: Option<i64>,
}

impl FollowUp {
    pub(crate) fn from_model(interaction: kith_core::InteractionId, f: model::FollowUp) -> Self {
        FollowUp {
            id: f.id.to_string(),
            interaction_id: interaction.to_string(),
            text: f.text,
            due: f.due.map(|d| d.to_string()),
            done_ms: f.done_ms,
        }
    }
}

/// One logged interaction with one or more contacts.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Interaction {
    pub id: String,
    pub at_ms: i64,
    pub offset_minutes: i16,
    pub kind: InteractionKind,
    pub initiator: Initiator,
    pub participants: Vec<String>,
    pub summary: String,
    pub notes: String,
    /// Concurrent values of `notes` from other devices; non-empty means a
    /// conflict for the user to resolve (updating the notes resolves it).
    pub notes_conflicts: Vec<String>,
    pub project: Option<String>,
    pub exchanges: Vec<Exchange>,
    pub follow_ups: Vec<FollowUp>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
}

impl From<model::Interaction> for Interaction {
    fn from(i: model::Interaction) -> Self {
        let id = i.id;
        Interaction {
            id: id.to_string(),
            at_ms: i.at_ms,
            offset_minutes: i.offset_minutes,
            kind: i.kind.into(),
            initiator: i.initiator.into(),
            participants: i.participants.iter().map(ToString::to_string).collect(),
            summary: i.summary,
            notes: i.notes,
            notes_conflicts: i.notes_conflicts,
            project: i.project.map(|p| p.to_string()),
            exchanges: i.exchanges.into_iter().map(Exchange::from).collect(),
            follow_ups: i
                .follow_ups
                .into_values()
                .map(|f| FollowUp::from_model(id, f))
                .collect(),
            created_ms: i.created_ms,
            updated_ms: i.updated_ms,
            deleted_ms: i.deleted_ms,
        }
    }
}

/// A shared project or activity.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: ProjectStatus,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl From<model::Project> for Project {
    fn from(p: model::Project) -> Self {
        Project {
            id: p.id.to_string(),
            name: p.name,
            description: p.description,
            status: p.status.into(),
            created_ms: p.created_ms,
            updated_ms: p.updated_ms,
        }
    }
}

/// A goal that strategic networking works toward.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Goal {
    pub id: String,
    pub title: String,
    /// 1 (highest) to 3.
    pub priority: u8,
    pub status: GoalStatus,
    pub contacts: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl From<model::Goal> for Goal {
    fn from(g: model::Goal) -> Self {
        Goal {
            id: g.id.to_string(),
            title: g.title,
            priority: g.priority,
            status: g.status.into(),
            contacts: g.contacts.iter().map(ToString::to_string).collect(),
            created_ms: g.created_ms,
            updated_ms: g.updated_ms,
        }
    }
}

/// Parses an id coming from foreign code, naming the field when it is not one.
pub(crate) fn parse_id<T: FromStr>(field: &str, value: &str) -> Result<T, KithError> {
    value.parse::<T>().map_err(|_| KithError::InvalidInput {
        field: field.to_string(),
        reason: format!("'{value}' is not a valid id (expected a 26-character ULID)"),
    })
}

/// Parses a list of ids into a set, naming the field on the first bad one.
pub(crate) fn parse_ids<T: FromStr + Ord>(
    field: &str,
    values: &[String],
) -> Result<BTreeSet<T>, KithError> {
    values.iter().map(|v| parse_id(field, v)).collect()
}

/// Parses an ISO calendar date (`YYYY-MM-DD`), naming the field when invalid.
pub(crate) fn parse_date(field: &str, value: &str) -> Result<NaiveDate, KithError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|e| KithError::InvalidInput {
        field: field.to_string(),
        reason: format!("'{value}' is not a date in YYYY-MM-DD form: {e}"),
    })
}

/// Order of the contact list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ContactSort {
    /// By name, ignoring case and accents.
    Name,
    /// Most recent interaction first; never-met contacts last.
    LastInteraction,
}

impl From<ContactSort> for kith_core::ContactSort {
    fn from(s: ContactSort) -> Self {
        match s {
            ContactSort::Name => kith_core::ContactSort::Name,
            ContactSort::LastInteraction => kith_core::ContactSort::LastInteraction,
        }
    }
}

/// How often and how recently I met a contact (deleted interactions excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ContactStats {
    pub last_interaction_ms: Option<i64>,
    pub interaction_count: u64,
}

impl From<kith_core::ContactStats> for ContactStats {
    fn from(s: kith_core::ContactStats) -> Self {
        ContactStats {
            last_interaction_ms: s.last_interaction_ms,
            interaction_count: s.interaction_count,
        }
    }
}

/// An open follow-up with the interaction it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FollowUpItem {
    pub follow_up: FollowUp,
    /// When the interaction happened.
    pub at_ms: i64,
    /// The interaction's summary.
    pub summary: String,
    pub participant_ids: Vec<String>,
}

impl From<kith_core::FollowUpItem> for FollowUpItem {
    fn from(f: kith_core::FollowUpItem) -> Self {
        FollowUpItem {
            follow_up: FollowUp::from_model(f.interaction, f.follow_up),
            at_ms: f.at_ms,
            summary: f.summary,
            participant_ids: f.participants.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Why two contacts look like the same person.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DuplicateReason {
    /// Both have this email (normalised).
    SameEmail { email: String },
    /// Their phone numbers share these trailing digits.
    SamePhone { digits: String },
    /// Both have this name (ignoring case, accents, spacing).
    SameName { name: String },
}

impl From<kith_core::DuplicateReason> for DuplicateReason {
    fn from(r: kith_core::DuplicateReason) -> Self {
        match r {
            kith_core::DuplicateReason::SameEmail(email) => DuplicateReason::SameEmail { email },
            kith_core::DuplicateReason::SamePhone(digits) => DuplicateReason::SamePhone { digits },
            kith_core::DuplicateReason::SameName(name) => DuplicateReason::SameName { name },
        }
    }
}

/// Two contacts that are likely the same person; `merge_contacts` joins them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DuplicatePair {
    pub contact_a: String,
    pub contact_b: String,
    pub reasons: Vec<DuplicateReason>,
}

impl From<kith_core::DuplicatePair> for DuplicatePair {
    fn from(p: kith_core::DuplicatePair) -> Self {
        DuplicatePair {
            contact_a: p.a.to_string(),
            contact_b: p.b.to_string(),
            reasons: p.reasons.into_iter().map(Into::into).collect(),
        }
    }
}

/// Contacts and interactions matching a search (interactions newest first).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SearchResults {
    pub contacts: Vec<Contact>,
    pub interactions: Vec<Interaction>,
}

impl From<kith_core::SearchResults> for SearchResults {
    fn from(r: kith_core::SearchResults) -> Self {
        SearchResults {
            contacts: r.contacts.into_iter().map(Into::into).collect(),
            interactions: r.interactions.into_iter().map(Into::into).collect(),
        }
    }
}

/// Per-user settings that shape defaults and insights.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Settings {
    /// My organisation, to suggest inside/outside for new contacts.
    pub my_organisation: Option<String>,
    /// My discipline, for the discipline-reach insight.
    pub my_discipline: Option<String>,
    /// Default keep-in-touch cadence per circle, in days (each at least 1).
    pub cadence_days: HashMap<Circle, u32>,
    /// Target share of effort in the strategic circle, 0 to 1.
    pub strategic_target: Option<f64>,
    /// How many of the strongest ties form "the core" in insights (at least 1).
    pub core_size: u32,
    /// My own e-mail addresses: calendar attendees with them are me (meetings to log).
    #[uniffi(default = [])]
    pub my_emails: Vec<String>,
}

impl From<model::Settings> for Settings {
    fn from(s: model::Settings) -> Self {
        Settings {
            my_organisation: s.my_organisation,
            my_discipline: s.my_discipline,
            cadence_days: s
                .cadence_days
                .into_iter()
                .map(|(c, d)| (c.into(), d))
                .collect(),
            strategic_target: s.strategic_target,
            core_size: s.core_size,
            my_emails: s.my_emails.into_iter().collect(),
        }
    }
}

/// Dismissed meetings are not part of the foreign record: `set_settings` keeps the stored ones.
impl From<Settings> for model::Settings {
    fn from(s: Settings) -> Self {
        model::Settings {
            my_organisation: s.my_organisation,
            my_discipline: s.my_discipline,
            cadence_days: s
                .cadence_days
                .into_iter()
                .map(|(c, d)| (c.into(), d))
                .collect(),
            strategic_target: s.strategic_target,
            core_size: s.core_size,
            my_emails: s
                .my_emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
            dismissed_events: Default::default(),
        }
    }
}
