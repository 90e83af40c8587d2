//! The records and enums that cross the FFI boundary, and their conversions
//! to and from kith-core's model.
//!
//! Foreign code sees plain values: ids are ULID strings, instants are UTC
//! milliseconds since the Unix epoch as `i64` (`*_ms`), calendar dates are ISO
//! `YYYY-MM-DD` strings, sets are lists. Every count, offset, limit, duration
//! and instant is signed (`i64`, or `i32` for small counts and limits): Kotlin's
//! `Long`/`Int` and Swift's `Int64`/`Int32` are what apps compute with, and
//! unsigned types there (`ULong`, `UInt`) need conversions at every use. A
//! negative value coming in is `KithError::InvalidInput` naming the argument,
//! never a wrap-around or a panic ([`non_negative`]). Values coming *in* are parsed here into the model's typed values, and
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
    ($(#[$meta:meta])* $name:ident => $model:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
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
    Circle => model::Circle {
        /// People needed for the current role, inside the organisation.
        Operational,
        /// Peers outside the organisation: clubs, professional groups, alumni.
        Personal,
        /// People who bring information, support and resources toward goals.
        Strategic,
    }
);
mirror_enum!(
    /// Seniority of a contact relative to me.
    Seniority => model::Seniority {
        /// More senior than me.
        Senior,
        /// At about my level.
        Peer,
        /// Less senior than me.
        Junior,
        /// Not recorded (the default).
        Unknown,
    }
);
mirror_enum!(
    /// What kind of interaction took place.
    InteractionKind => model::InteractionKind {
        /// Met in person or by video, by arrangement.
        Meeting,
        /// A phone or voice call.
        Call,
        /// A chat or text message exchange.
        Message,
        /// An email exchange.
        Email,
        /// Met at a conference, talk or other gathering.
        Event,
        /// Shared a meal or a coffee.
        Meal,
        /// Doing things together: work on a shared project or activity.
        ProjectWork,
        /// Anything else.
        Other,
    }
);
mirror_enum!(
    /// Who started an interaction.
    Initiator => model::Initiator {
        /// I reached out.
        Me,
        /// They reached out.
        Them,
        /// Arranged together, or neither side in particular.
        Mutual,
        /// Not recorded.
        Unknown,
    }
);
mirror_enum!(
    /// What a network supplies: support, feedback, insight, resources, information.
    ExchangeWhat => model::ExchangeWhat {
        /// Personal support: encouragement, advocacy, help in a hard moment.
        Support,
        /// Honest feedback on my work or behaviour (or theirs).
        Feedback,
        /// A new perspective or way of seeing a problem.
        Insight,
        /// Access to people, money, time or other resources.
        Resources,
        /// Facts and news: what is going on, who is doing what.
        Information,
    }
);
mirror_enum!(
    /// Direction of an exchange, from my point of view.
    Direction => model::Direction {
        /// I gave it to them.
        Gave,
        /// They gave it to me.
        Received,
    }
);
mirror_enum!(
    /// Lifecycle of a project.
    ProjectStatus => model::ProjectStatus {
        /// Under way.
        Active,
        /// On hold; may resume.
        Paused,
        /// Finished.
        Done,
    }
);
mirror_enum!(
    /// Lifecycle of a goal.
    GoalStatus => model::GoalStatus {
        /// Being worked toward.
        Active,
        /// Reached.
        Achieved,
        /// Given up; kept for the record.
        Dropped,
    }
);

/// An email address or phone number with an optional label ("work", "mobile").
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ContactPoint {
    /// The address or number as the user gave it.
    pub value: String,
    /// Free-form label; empty when none.
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
    /// The year, when known.
    pub year: Option<i32>,
    /// 1 to 12.
    pub month: i32,
    /// 1 to 31.
    pub day: i32,
}

impl From<model::PartialDate> for PartialDate {
    fn from(d: model::PartialDate) -> Self {
        PartialDate {
            year: d.year,
            month: d.month.into(),
            day: d.day.into(),
        }
    }
}

/// A person in my network, as stored.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Contact {
    /// Stable id (ULID string).
    pub id: String,
    /// Display name; never empty.
    pub name: String,
    /// Given name when known separately (vCard N).
    pub given_name: Option<String>,
    /// Family name when known separately (vCard N).
    pub family_name: Option<String>,
    /// Employer or organisation; `None` when not known.
    pub organisation: Option<String>,
    /// Job title or role; `None` when not known.
    pub role: Option<String>,
    /// Professional discipline; `None` when not known.
    pub discipline: Option<String>,
    /// Seniority relative to me.
    pub seniority: Seniority,
    /// Inside my organisation; `None` when not known.
    pub inside_org: Option<bool>,
    /// The circles the contact is in; may be empty or several.
    pub circles: Vec<Circle>,
    /// Free-form tags, sorted.
    pub tags: Vec<String>,
    /// Email addresses, sorted by value.
    pub emails: Vec<ContactPoint>,
    /// Phone numbers as given, sorted by value.
    pub phones: Vec<ContactPoint>,
    /// Web addresses, sorted.
    pub urls: Vec<String>,
    /// How we met; `None` when not recorded.
    pub how_we_met: Option<String>,
    /// ISO date (`YYYY-MM-DD`) of the first meeting, when known.
    pub first_met: Option<String>,
    /// Birthday, possibly without a year.
    pub birthday: Option<PartialDate>,
    /// Long-lived notes; empty when none.
    pub notes: String,
    /// Keep-in-touch cadence in days; `None` uses the circle default.
    pub cadence_days: Option<i32>,
    /// When the contact was created.
    pub created_ms: i64,
    /// When any field last changed.
    pub updated_ms: i64,
    /// Hidden from lists and insights; also set on merged contacts.
    pub archived: bool,
    /// Set when this contact was merged into another one: the live contact
    /// it resolves to (after merges made on several devices, the end of the
    /// chain).
    pub merged_into: Option<String>,
    /// Ids of the contacts merged into this one.
    pub merged_from: Vec<String>,
    /// Values merged duplicates got after (or while) being merged that
    /// differ from this contact's; writing the field settles them.
    pub conflicts: Vec<MergeConflict>,
}

/// A merged duplicate's value that differs from the kept contact's.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MergeConflict {
    /// The contact field (`organisation`, `role`, `notes`, ...).
    pub field: String,
    /// The duplicate's value (dates as `YYYY-MM-DD`).
    pub value: String,
    /// The duplicate holding it.
    pub from_contact_id: String,
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
            cadence_days: c.cadence_days.map(to_i32),
            created_ms: c.created_ms,
            updated_ms: c.updated_ms,
            archived: c.archived,
            merged_into: c.merged_into.map(|id| id.to_string()),
            merged_from: c.merged_from.iter().map(ToString::to_string).collect(),
            conflicts: c
                .conflicts
                .into_iter()
                .map(|k| MergeConflict {
                    field: k.field,
                    value: k.value,
                    from_contact_id: k.from.to_string(),
                })
                .collect(),
        }
    }
}

/// One exchange within an interaction: what flowed, which way, with whom.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Exchange {
    /// Id within its interaction.
    pub id: String,
    /// Which of the five functions flowed.
    pub what: ExchangeWhat,
    /// Whether I gave or received it.
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
    /// Id within its interaction.
    pub id: String,
    /// The interaction it belongs to.
    pub interaction_id: String,
    /// What to do.
    pub text: String,
    /// ISO date (`YYYY-MM-DD`), when the follow-up has a due date.
    pub due: Option<String>,
    /// When it was marked done; `None` while open.
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
    /// Stable id (ULID string); its time picks the interaction's partition.
    pub id: String,
    /// When it happened (UTC).
    pub at_ms: i64,
    /// The local UTC offset, in minutes, where it happened.
    pub offset_minutes: i16,
    /// What kind of interaction.
    pub kind: InteractionKind,
    /// Who started it.
    pub initiator: Initiator,
    /// Contact ids of those who took part; at least one.
    pub participants: Vec<String>,
    /// One line; never empty.
    pub summary: String,
    /// Notes; empty when none.
    pub notes: String,
    /// Concurrent values of `notes` from other devices; non-empty means a
    /// conflict for the user to resolve (updating the notes resolves it).
    pub notes_conflicts: Vec<String>,
    /// Id of the project it was work on, if any.
    pub project: Option<String>,
    /// What flowed, which way, with whom.
    pub exchanges: Vec<Exchange>,
    /// Things to do after it.
    pub follow_ups: Vec<FollowUp>,
    /// When it was logged.
    pub created_ms: i64,
    /// When any field last changed.
    pub updated_ms: i64,
    /// When it was deleted; `None` unless deleted (restoring clears it).
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
    /// Stable id (ULID string).
    pub id: String,
    /// Short name.
    pub name: String,
    /// Free text; empty when none.
    pub description: String,
    /// Where the project is in its lifecycle.
    pub status: ProjectStatus,
    /// When it was created.
    pub created_ms: i64,
    /// When any field last changed.
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
    /// Stable id (ULID string).
    pub id: String,
    /// What I want to achieve; never empty.
    pub title: String,
    /// 1 (highest) to 3.
    pub priority: i32,
    /// Active, achieved or dropped.
    pub status: GoalStatus,
    /// Ids of the contacts who can help toward it.
    pub contacts: Vec<String>,
    /// When it was created.
    pub created_ms: i64,
    /// When any field last changed.
    pub updated_ms: i64,
}

impl From<model::Goal> for Goal {
    fn from(g: model::Goal) -> Self {
        Goal {
            id: g.id.to_string(),
            title: g.title,
            priority: g.priority.into(),
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

/// An engine count or instant (unsigned there) in the signed type the bindings
/// use. Values past the signed range cannot occur (2^63 ms is 292 million
/// years; counts are bounded by memory) and would saturate.
pub(crate) fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Like [`to_i64`], for the `i32` counts (records per page, days, lines).
pub(crate) fn to_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// A count, offset, limit, duration or instant from the app as the unsigned
/// type the engine uses: negative (or too large for it) is `InvalidInput`
/// naming `field`.
pub(crate) fn non_negative<T: TryFrom<i64>>(
    field: &str,
    value: impl Into<i64>,
) -> Result<T, KithError> {
    let value = value.into();
    if value < 0 {
        return Err(KithError::invalid(
            field,
            format!("must not be negative (got {value})"),
        ));
    }
    T::try_from(value).map_err(|_| KithError::invalid(field, format!("{value} is too large")))
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
    /// Time of the latest interaction; `None` when never met.
    pub last_interaction_ms: Option<i64>,
    /// Number of interactions.
    pub interaction_count: i64,
}

impl From<kith_core::ContactStats> for ContactStats {
    fn from(s: kith_core::ContactStats) -> Self {
        ContactStats {
            last_interaction_ms: s.last_interaction_ms,
            interaction_count: to_i64(s.interaction_count),
        }
    }
}

/// An open follow-up with the interaction it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FollowUpItem {
    /// The follow-up.
    pub follow_up: FollowUp,
    /// When the interaction happened.
    pub at_ms: i64,
    /// The interaction's summary.
    pub summary: String,
    /// Ids of the interaction's participants.
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
    SameEmail {
        /// The email both have, normalised.
        email: String,
    },
    /// Their phone numbers share these trailing digits.
    SamePhone {
        /// The digits shared.
        digits: String,
    },
    /// Both have this name (ignoring case, accents, punctuation and spacing,
    /// in any of its spellings: folded letters ø→o, ß→ss, ł→l; transcriptions
    /// ö→oe, å→aa; see docs/SCHEMA.md).
    SameName {
        /// The first spelling of the name both share.
        name: String,
    },
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
    /// Id of one contact (the smaller id).
    pub contact_a: String,
    /// Id of the other (the larger id).
    pub contact_b: String,
    /// Why they look alike; never empty.
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
    /// Matching contacts.
    pub contacts: Vec<Contact>,
    /// Matching interactions, newest first.
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
    pub cadence_days: HashMap<Circle, i32>,
    /// Target share of effort in the strategic circle, 0 to 1.
    pub strategic_target: Option<f64>,
    /// How many of the strongest ties form "the core" in insights (at least 1).
    pub core_size: i32,
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
                .map(|(c, d)| (c.into(), to_i32(d)))
                .collect(),
            strategic_target: s.strategic_target,
            core_size: to_i32(s.core_size),
            my_emails: s.my_emails.into_iter().collect(),
        }
    }
}

/// Dismissed meetings are not part of the foreign record: `set_settings` keeps the stored ones.
/// A negative cadence or core size is `InvalidInput`.
impl TryFrom<Settings> for model::Settings {
    type Error = KithError;

    fn try_from(s: Settings) -> Result<Self, KithError> {
        Ok(model::Settings {
            my_organisation: s.my_organisation,
            my_discipline: s.my_discipline,
            cadence_days: s
                .cadence_days
                .into_iter()
                .map(|(c, d)| Ok((c.into(), non_negative("cadence_days", d)?)))
                .collect::<Result<_, KithError>>()?,
            strategic_target: s.strategic_target,
            core_size: non_negative("core_size", s.core_size)?,
            my_emails: s
                .my_emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
            dismissed_events: Default::default(),
        })
    }
}
