//! Input records: what foreign code passes to create or change records, and
//! their validation into kith-core's operation types.
//!
//! Every field has a default where one makes sense, so a Kotlin or Python
//! caller writes `NewInteraction(summary = "...", participantIds = listOf(id))`.
//! Updates use `Option` fields meaning "leave unchanged"; optional record
//! fields are cleared by naming them in `clear` (a foreign language has no
//! `Option<Option<T>>`). Parsing errors name the offending field.

use std::collections::BTreeSet;

use kith_core::ids::{ContactId, ProjectId};
use kith_core::{model, ops};

use crate::error::{KithError, KithResult};
use crate::types::{
    Circle, ContactPoint, Direction, ExchangeWhat, GoalStatus, Initiator, InteractionKind,
    PartialDate, ProjectStatus, Seniority, non_negative, parse_date, parse_id, parse_ids,
};

/// A new contact; only `name` is required.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewContact {
    /// Display name; must not be blank, at most 500 characters.
    pub name: String,
    /// Given name (vCard N).
    #[uniffi(default = None)]
    pub given_name: Option<String>,
    /// Family name (vCard N).
    #[uniffi(default = None)]
    pub family_name: Option<String>,
    /// Employer or organisation.
    #[uniffi(default = None)]
    pub organisation: Option<String>,
    /// Job title or role.
    #[uniffi(default = None)]
    pub role: Option<String>,
    /// Professional discipline ("nursing", "finance").
    #[uniffi(default = None)]
    pub discipline: Option<String>,
    /// `None` means unknown.
    #[uniffi(default = None)]
    pub seniority: Option<Seniority>,
    /// Inside my organisation; `None` when not known.
    #[uniffi(default = None)]
    pub inside_org: Option<bool>,
    /// Circles the contact belongs to.
    #[uniffi(default = [])]
    pub circles: Vec<Circle>,
    /// Free-form tags.
    #[uniffi(default = [])]
    pub tags: Vec<String>,
    /// Email addresses with labels.
    #[uniffi(default = [])]
    pub emails: Vec<ContactPoint>,
    /// Phone numbers with labels, as the user wrote them.
    #[uniffi(default = [])]
    pub phones: Vec<ContactPoint>,
    /// Web addresses.
    #[uniffi(default = [])]
    pub urls: Vec<String>,
    /// How we met.
    #[uniffi(default = None)]
    pub how_we_met: Option<String>,
    /// ISO date `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub first_met: Option<String>,
    /// Birthday, possibly without a year; must be a real date.
    #[uniffi(default = None)]
    pub birthday: Option<PartialDate>,
    /// Long-lived notes; at most 256 KiB.
    #[uniffi(default = "")]
    pub notes: String,
    /// Keep-in-touch cadence in days; `None` uses the circle default.
    #[uniffi(default = None)]
    pub cadence_days: Option<i32>,
}

impl NewContact {
    pub(crate) fn into_op(self) -> KithResult<ops::NewContact> {
        Ok(ops::NewContact {
            name: self.name,
            given_name: self.given_name,
            family_name: self.family_name,
            organisation: self.organisation,
            role: self.role,
            discipline: self.discipline,
            seniority: self.seniority.map(Into::into),
            inside_org: self.inside_org,
            circles: self.circles.into_iter().map(Into::into).collect(),
            tags: self.tags.into_iter().collect(),
            emails: self.emails.into_iter().map(Into::into).collect(),
            phones: self.phones.into_iter().map(Into::into).collect(),
            urls: self.urls.into_iter().collect(),
            how_we_met: self.how_we_met,
            first_met: self
                .first_met
                .map(|d| parse_date("first_met", &d))
                .transpose()?,
            birthday: self
                .birthday
                .map(|b| b.into_model("birthday"))
                .transpose()?,
            notes: self.notes,
            cadence_days: self
                .cadence_days
                .map(|d| non_negative("cadence_days", d))
                .transpose()?,
            import_keys: BTreeSet::new(),
        })
    }
}

/// Optional contact fields that `ContactPatch.clear` can reset to "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum ContactField {
    /// The given name.
    GivenName,
    /// The family name.
    FamilyName,
    /// The organisation.
    Organisation,
    /// The role.
    Role,
    /// The discipline.
    Discipline,
    /// Inside/outside my organisation (becomes unknown).
    InsideOrg,
    /// How we met.
    HowWeMet,
    /// The first-met date.
    FirstMet,
    /// The birthday.
    Birthday,
    /// The cadence (falls back to the circle default).
    CadenceDays,
}

/// A change to a contact: `None` fields stay as they are; fields listed in
/// `clear` become unset. A field both set and cleared is refused.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ContactPatch {
    /// New display name; must not be blank.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// New given name.
    #[uniffi(default = None)]
    pub given_name: Option<String>,
    /// New family name.
    #[uniffi(default = None)]
    pub family_name: Option<String>,
    /// New organisation.
    #[uniffi(default = None)]
    pub organisation: Option<String>,
    /// New role.
    #[uniffi(default = None)]
    pub role: Option<String>,
    /// New discipline.
    #[uniffi(default = None)]
    pub discipline: Option<String>,
    /// New seniority.
    #[uniffi(default = None)]
    pub seniority: Option<Seniority>,
    /// New inside/outside; unset it with `clear`.
    #[uniffi(default = None)]
    pub inside_org: Option<bool>,
    /// Replaces the circles.
    #[uniffi(default = None)]
    pub circles: Option<Vec<Circle>>,
    /// Replaces the tags.
    #[uniffi(default = None)]
    pub tags: Option<Vec<String>>,
    /// Replaces the email addresses.
    #[uniffi(default = None)]
    pub emails: Option<Vec<ContactPoint>>,
    /// Replaces the phone numbers.
    #[uniffi(default = None)]
    pub phones: Option<Vec<ContactPoint>>,
    /// Replaces the web addresses.
    #[uniffi(default = None)]
    pub urls: Option<Vec<String>>,
    /// New "how we met".
    #[uniffi(default = None)]
    pub how_we_met: Option<String>,
    /// ISO date `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub first_met: Option<String>,
    /// New birthday.
    #[uniffi(default = None)]
    pub birthday: Option<PartialDate>,
    /// Replaces the notes (at most 256 KiB).
    #[uniffi(default = None)]
    pub notes: Option<String>,
    /// New cadence in days.
    #[uniffi(default = None)]
    pub cadence_days: Option<i32>,
    /// Optional fields to unset.
    #[uniffi(default = [])]
    pub clear: Vec<ContactField>,
}

/// `Some(Some(v))` to set, `Some(None)` to clear, `None` to leave unchanged.
fn set_or_clear<T>(
    value: Option<T>,
    field: ContactField,
    clear: &BTreeSet<ContactField>,
    name: &str,
) -> KithResult<Option<Option<T>>> {
    match (value, clear.contains(&field)) {
        (Some(_), true) => Err(KithError::invalid(
            name,
            "is both set and listed in `clear`; do one or the other",
        )),
        (Some(v), false) => Ok(Some(Some(v))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    }
}

impl ContactPatch {
    pub(crate) fn into_op(self) -> KithResult<ops::ContactPatch> {
        use ContactField as F;
        let clear: BTreeSet<ContactField> = self.clear.iter().copied().collect();
        let first_met = self
            .first_met
            .map(|d| parse_date("first_met", &d))
            .transpose()?;
        Ok(ops::ContactPatch {
            name: self.name,
            given_name: set_or_clear(self.given_name, F::GivenName, &clear, "given_name")?,
            family_name: set_or_clear(self.family_name, F::FamilyName, &clear, "family_name")?,
            organisation: set_or_clear(self.organisation, F::Organisation, &clear, "organisation")?,
            role: set_or_clear(self.role, F::Role, &clear, "role")?,
            discipline: set_or_clear(self.discipline, F::Discipline, &clear, "discipline")?,
            seniority: self.seniority.map(Into::into),
            inside_org: set_or_clear(self.inside_org, F::InsideOrg, &clear, "inside_org")?,
            circles: self
                .circles
                .map(|c| c.into_iter().map(Into::into).collect()),
            tags: self.tags.map(|t| t.into_iter().collect()),
            emails: self.emails.map(|e| e.into_iter().map(Into::into).collect()),
            phones: self.phones.map(|p| p.into_iter().map(Into::into).collect()),
            urls: self.urls.map(|u| u.into_iter().collect()),
            how_we_met: set_or_clear(self.how_we_met, F::HowWeMet, &clear, "how_we_met")?,
            first_met: set_or_clear(first_met, F::FirstMet, &clear, "first_met")?,
            birthday: set_or_clear(
                self.birthday
                    .map(|b| b.into_model("birthday"))
                    .transpose()?,
                F::Birthday,
                &clear,
                "birthday",
            )?,
            notes: self.notes,
            cadence_days: set_or_clear(
                self.cadence_days
                    .map(|d| non_negative("cadence_days", d))
                    .transpose()?,
                F::CadenceDays,
                &clear,
                "cadence_days",
            )?,
            import_keys: None,
        })
    }
}

impl PartialDate {
    /// The model's date; a month or day outside its type is `InvalidInput` naming `field`
    /// (the engine checks the calendar).
    pub(crate) fn into_model(self, field: &str) -> KithResult<model::PartialDate> {
        let part = |v: i32| {
            u8::try_from(v).map_err(|_| {
                KithError::invalid(
                    field,
                    format!("month {} / day {} is not a date", self.month, self.day),
                )
            })
        };
        Ok(model::PartialDate {
            year: self.year,
            month: part(self.month)?,
            day: part(self.day)?,
        })
    }
}

/// An exchange within an interaction: what flowed, which way, with whom.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewExchange {
    /// Which of the five functions flowed.
    pub what: ExchangeWhat,
    /// Whether I gave or received it.
    pub direction: Direction,
    /// A participant's contact id; `None` means all participants.
    #[uniffi(default = None)]
    pub with_contact_id: Option<String>,
}

impl NewExchange {
    fn with_id(&self) -> KithResult<Option<ContactId>> {
        self.with_contact_id
            .as_deref()
            .map(|id| parse_id("exchanges.with_contact_id", id))
            .transpose()
    }

    pub(crate) fn into_op(self) -> KithResult<ops::NewExchange> {
        Ok(ops::NewExchange {
            with: self.with_id()?.map(ops::ParticipantRef::Id),
            what: self.what.into(),
            direction: self.direction.into(),
        })
    }

    fn into_model(self) -> KithResult<model::Exchange> {
        Ok(model::Exchange {
            id: kith_core::ExchangeId::new(),
            with: self.with_id()?,
            what: self.what.into(),
            direction: self.direction.into(),
        })
    }
}

/// A follow-up to create with an interaction.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewFollowUp {
    /// What to do; must not be blank.
    pub text: String,
    /// ISO date `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub due: Option<String>,
}

impl NewFollowUp {
    pub(crate) fn into_op(self) -> KithResult<ops::NewFollowUp> {
        Ok(ops::NewFollowUp {
            text: self.text,
            due: self.due.map(|d| parse_date("due", &d)).transpose()?,
        })
    }
}

/// An interaction to log, typically right after a meeting. Only `summary` and
/// at least one participant (by id or by name) are required.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewInteraction {
    /// One line saying what happened.
    pub summary: String,
    /// Participants by contact id.
    #[uniffi(default = [])]
    pub participant_ids: Vec<String>,
    /// Participants by name (matched ignoring case, accents and spacing).
    #[uniffi(default = [])]
    pub participant_names: Vec<String>,
    /// Create a contact for each name in `participant_names` that matches nobody.
    #[uniffi(default = false)]
    pub create_missing: bool,
    /// `None` means a meeting.
    #[uniffi(default = None)]
    pub kind: Option<InteractionKind>,
    /// `None` means unknown.
    #[uniffi(default = None)]
    pub initiator: Option<Initiator>,
    /// When it happened, UTC milliseconds; `None` means now.
    #[uniffi(default = None)]
    pub at_ms: Option<i64>,
    /// The local UTC offset where it happened, in minutes.
    #[uniffi(default = 0)]
    pub offset_minutes: i16,
    /// Notes; at most 256 KiB.
    #[uniffi(default = "")]
    pub notes: String,
    /// Id of the project it was work on; the project must exist.
    #[uniffi(default = None)]
    pub project_id: Option<String>,
    /// What flowed, which way, with whom.
    #[uniffi(default = [])]
    pub exchanges: Vec<NewExchange>,
    /// Things to do after it.
    #[uniffi(default = [])]
    pub follow_ups: Vec<NewFollowUp>,
}

impl NewInteraction {
    pub(crate) fn into_op(self) -> KithResult<ops::NewInteraction> {
        let mut participants = Vec::with_capacity(self.participant_ids.len());
        for id in &self.participant_ids {
            participants.push(ops::ParticipantRef::Id(parse_id("participant_ids", id)?));
        }
        participants.extend(
            self.participant_names
                .into_iter()
                .map(ops::ParticipantRef::Name),
        );
        Ok(ops::NewInteraction {
            at_ms: self.at_ms,
            offset_minutes: self.offset_minutes,
            kind: self
                .kind
                .map_or(model::InteractionKind::Meeting, Into::into),
            initiator: self.initiator.map_or(model::Initiator::Unknown, Into::into),
            participants,
            summary: self.summary,
            notes: self.notes,
            project: self
                .project_id
                .as_deref()
                .map(|p| parse_id::<ProjectId>("project_id", p))
                .transpose()?,
            exchanges: self
                .exchanges
                .into_iter()
                .map(NewExchange::into_op)
                .collect::<KithResult<_>>()?,
            follow_ups: self
                .follow_ups
                .into_iter()
                .map(NewFollowUp::into_op)
                .collect::<KithResult<_>>()?,
            create_missing: self.create_missing,
        })
    }
}

/// A change to an interaction: `None` fields stay as they are.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct InteractionPatch {
    /// New summary; must not be blank.
    #[uniffi(default = None)]
    pub summary: Option<String>,
    /// Writing the notes also resolves a notes conflict.
    #[uniffi(default = None)]
    pub notes: Option<String>,
    /// New kind.
    #[uniffi(default = None)]
    pub kind: Option<InteractionKind>,
    /// New initiator.
    #[uniffi(default = None)]
    pub initiator: Option<Initiator>,
    /// New time, UTC milliseconds.
    #[uniffi(default = None)]
    pub at_ms: Option<i64>,
    /// New local UTC offset, in minutes.
    #[uniffi(default = None)]
    pub offset_minutes: Option<i16>,
    /// Replaces the participants.
    #[uniffi(default = None)]
    pub participant_ids: Option<Vec<String>>,
    /// Links the interaction to this project (must exist).
    #[uniffi(default = None)]
    pub project_id: Option<String>,
    /// Detach the interaction from its project.
    #[uniffi(default = false)]
    pub clear_project: bool,
    /// Replaces the exchanges.
    #[uniffi(default = None)]
    pub exchanges: Option<Vec<NewExchange>>,
}

impl InteractionPatch {
    pub(crate) fn into_op(self) -> KithResult<ops::InteractionPatch> {
        let project = match (self.project_id, self.clear_project) {
            (Some(_), true) => {
                return Err(KithError::invalid(
                    "project_id",
                    "is set while clear_project is true; do one or the other",
                ));
            }
            (Some(p), false) => Some(Some(parse_id::<ProjectId>("project_id", &p)?)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Ok(ops::InteractionPatch {
            at_ms: self.at_ms,
            offset_minutes: self.offset_minutes,
            kind: self.kind.map(Into::into),
            initiator: self.initiator.map(Into::into),
            participants: self
                .participant_ids
                .map(|ids| parse_ids("participant_ids", &ids))
                .transpose()?,
            summary: self.summary,
            notes: self.notes,
            project,
            exchanges: self
                .exchanges
                .map(|list| {
                    list.into_iter()
                        .map(NewExchange::into_model)
                        .collect::<KithResult<Vec<_>>>()
                })
                .transpose()?,
        })
    }
}

/// A new project or shared activity.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewProject {
    /// Short name; must not be blank.
    pub name: String,
    /// Free text.
    #[uniffi(default = "")]
    pub description: String,
    /// `None` means active.
    #[uniffi(default = None)]
    pub status: Option<ProjectStatus>,
}

impl NewProject {
    pub(crate) fn into_op(self) -> ops::NewProject {
        ops::NewProject {
            name: self.name,
            description: self.description,
            status: self.status.map_or(model::ProjectStatus::Active, Into::into),
        }
    }
}

/// A change to a project: `None` fields stay as they are.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ProjectPatch {
    /// New name; must not be blank.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// New description.
    #[uniffi(default = None)]
    pub description: Option<String>,
    /// New status.
    #[uniffi(default = None)]
    pub status: Option<ProjectStatus>,
}

impl ProjectPatch {
    pub(crate) fn into_op(self) -> ops::ProjectPatch {
        ops::ProjectPatch {
            name: self.name,
            description: self.description,
            status: self.status.map(Into::into),
        }
    }
}

/// A new goal that strategic networking works toward.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewGoal {
    /// What I want to achieve; must not be blank.
    pub title: String,
    /// 1 (highest) to 3.
    #[uniffi(default = 2)]
    pub priority: i32,
    /// `None` means active.
    #[uniffi(default = None)]
    pub status: Option<GoalStatus>,
    /// Ids of contacts who can help; each must exist.
    #[uniffi(default = [])]
    pub contact_ids: Vec<String>,
}

impl NewGoal {
    pub(crate) fn into_op(self) -> KithResult<ops::NewGoal> {
        Ok(ops::NewGoal {
            title: self.title,
            priority: non_negative("priority", self.priority)?,
            status: self.status.map_or(model::GoalStatus::Active, Into::into),
            contacts: parse_ids("contact_ids", &self.contact_ids)?,
        })
    }
}

/// A change to a goal: `None` fields stay as they are.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct GoalPatch {
    /// New title; must not be blank.
    #[uniffi(default = None)]
    pub title: Option<String>,
    /// New priority, 1 (highest) to 3; other values are refused.
    #[uniffi(default = None)]
    pub priority: Option<i32>,
    /// New status.
    #[uniffi(default = None)]
    pub status: Option<GoalStatus>,
    /// Replaces the linked contacts.
    #[uniffi(default = None)]
    pub contact_ids: Option<Vec<String>>,
}

impl GoalPatch {
    pub(crate) fn into_op(self) -> KithResult<ops::GoalPatch> {
        Ok(ops::GoalPatch {
            title: self.title,
            priority: self
                .priority
                .map(|p| non_negative("priority", p))
                .transpose()?,
            status: self.status.map(Into::into),
            contacts: self
                .contact_ids
                .map(|ids| parse_ids("contact_ids", &ids))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ids_and_dates_name_their_field() {
        let new = NewInteraction {
            summary: "x".into(),
            participant_ids: vec!["not-an-id".into()],
            participant_names: vec![],
            create_missing: false,
            kind: None,
            initiator: None,
            at_ms: None,
            offset_minutes: 0,
            notes: String::new(),
            project_id: None,
            exchanges: vec![],
            follow_ups: vec![],
        };
        match new.into_op() {
            Err(KithError::InvalidInput { field, .. }) => assert_eq!(field, "participant_ids"),
            other => panic!("unexpected {other:?}"),
        }
        let f = NewFollowUp {
            text: "send slides".into(),
            due: Some("2026-02-30".into()),
        };
        match f.into_op() {
            Err(KithError::InvalidInput { field, .. }) => assert_eq!(field, "due"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_field_both_set_and_cleared_is_refused() {
        let u = ContactPatch {
            role: Some("Head of nursing".into()),
            clear: vec![ContactField::Role],
            ..ContactPatch::default()
        };
        match u.into_op() {
            Err(KithError::InvalidInput { field, .. }) => assert_eq!(field, "role"),
            other => panic!("unexpected {other:?}"),
        }
        let u = ContactPatch {
            clear: vec![ContactField::Role],
            ..ContactPatch::default()
        };
        assert_eq!(u.into_op().unwrap().role, Some(None));
    }
}
