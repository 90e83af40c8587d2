//! Operations and queries on a [`Store`]: typed inputs, validation, typed errors.
//!
//! Every operation validates its input against the index before touching a
//! document, then writes through `Store::transact` (one Automerge change per
//! touched document, chunks and index in one durable redb transaction). The
//! record written is read back from the document through [`crate::schema`] and
//! indexed, so the incremental index equals what `reindex` would build.
//! Queries read only the index.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::doc::DocId;
use crate::error::{OpError, StoreError};
use crate::ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
use crate::index::{self, text};
use crate::model::{
    Circle, Contact, ContactPoint, Direction, Exchange, ExchangeWhat, FollowUp, Goal, GoalStatus,
    Initiator, Interaction, InteractionKind, PartialDate, Project, ProjectStatus, Seniority,
    Settings, TimestampMs,
};
use crate::schema;
use crate::store::{Store, Tx};

pub use kith_model::model::InsightsRecords;

/// Longest accepted name/summary/title, in characters.
pub const LINE_CHARS_MAX: usize = 500;
/// Longest accepted notes, in bytes.
pub const NOTES_BYTES_MAX: usize = 256 * 1024;
/// Most records one query returns.
pub const PAGE_MAX: usize = 10_000;

/// A new contact. `Default` gives an empty one; [`NewContact::named`] a minimal one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewContact {
    /// Display name; trimmed, must not be blank, at most [`LINE_CHARS_MAX`] characters.
    pub name: String,
    /// Given name (vCard N); blank means `None`.
    pub given_name: Option<String>,
    /// Family name (vCard N); blank means `None`.
    pub family_name: Option<String>,
    /// Employer or organisation; blank means `None`.
    pub organisation: Option<String>,
    /// Job title or role; blank means `None`.
    pub role: Option<String>,
    /// Professional discipline; blank means `None`.
    pub discipline: Option<String>,
    /// Seniority relative to me; `None` stores [`Seniority::Unknown`].
    pub seniority: Option<Seniority>,
    /// Inside my organisation; `None` when not known.
    pub inside_org: Option<bool>,
    /// Circles the contact belongs to.
    pub circles: BTreeSet<Circle>,
    /// Free-form tags.
    pub tags: BTreeSet<String>,
    /// Email addresses with labels.
    pub emails: Vec<ContactPoint>,
    /// Phone numbers with labels, as the user wrote them.
    pub phones: Vec<ContactPoint>,
    /// Web addresses.
    pub urls: BTreeSet<String>,
    /// How we met; blank means `None`.
    pub how_we_met: Option<String>,
    /// The day we first met.
    pub first_met: Option<NaiveDate>,
    /// Birthday, possibly without a year; must be a real date.
    pub birthday: Option<PartialDate>,
    /// Long-lived notes; at most [`NOTES_BYTES_MAX`] bytes.
    pub notes: String,
    /// Keep-in-touch cadence in days; `None` uses the circle default.
    pub cadence_days: Option<u32>,
    /// Keys of the external records this contact comes from (import only).
    pub import_keys: BTreeSet<String>,
}

impl NewContact {
    /// A contact with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        NewContact {
            name: name.into(),
            ..NewContact::default()
        }
    }
}

/// A partial update of a contact: `None` leaves a field as it is;
/// `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactPatch {
    /// New display name; trimmed, must not be blank.
    pub name: Option<String>,
    /// `Some(None)` clears the given name.
    pub given_name: Option<Option<String>>,
    /// `Some(None)` clears the family name.
    pub family_name: Option<Option<String>>,
    /// `Some(None)` clears the organisation.
    pub organisation: Option<Option<String>>,
    /// `Some(None)` clears the role.
    pub role: Option<Option<String>>,
    /// `Some(None)` clears the discipline.
    pub discipline: Option<Option<String>>,
    /// New seniority.
    pub seniority: Option<Seniority>,
    /// `Some(None)` makes inside/outside unknown.
    pub inside_org: Option<Option<bool>>,
    /// Replaces the circles.
    pub circles: Option<BTreeSet<Circle>>,
    /// Replaces the tags.
    pub tags: Option<BTreeSet<String>>,
    /// Replaces the email addresses.
    pub emails: Option<Vec<ContactPoint>>,
    /// Replaces the phone numbers.
    pub phones: Option<Vec<ContactPoint>>,
    /// Replaces the web addresses.
    pub urls: Option<BTreeSet<String>>,
    /// `Some(None)` clears how we met.
    pub how_we_met: Option<Option<String>>,
    /// `Some(None)` clears the first-met date.
    pub first_met: Option<Option<NaiveDate>>,
    /// `Some(None)` clears the birthday.
    pub birthday: Option<Option<PartialDate>>,
    /// Replaces the notes (at most [`NOTES_BYTES_MAX`] bytes).
    pub notes: Option<String>,
    /// `Some(None)` falls back to the circle default.
    pub cadence_days: Option<Option<u32>>,
    /// Replaces the import keys.
    pub import_keys: Option<BTreeSet<String>>,
}

/// A participant of a new interaction: an existing contact, or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantRef {
    /// An existing contact (an id merged away is redirected to the contact it
    /// was merged into).
    Id(ContactId),
    /// Matched on the normalised name (case, accents, spacing).
    Name(String),
}

/// An exchange of a new interaction; `with: None` means all participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewExchange {
    /// Which of the five functions flowed.
    pub what: ExchangeWhat,
    /// Whether I gave or received it.
    pub direction: Direction,
    /// The participant it flowed with; must be one of the participants.
    pub with: Option<ParticipantRef>,
}

/// A follow-up of a new interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFollowUp {
    /// What to do; must not be blank.
    pub text: String,
    /// Due date; `None` means no deadline.
    pub due: Option<NaiveDate>,
}

/// A new interaction. `at_ms: None` means now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInteraction {
    /// When it happened (UTC); `None` means now.
    pub at_ms: Option<TimestampMs>,
    /// The local UTC offset, in minutes, where it happened.
    pub offset_minutes: i16,
    /// What kind of interaction.
    pub kind: InteractionKind,
    /// Who started it.
    pub initiator: Initiator,
    /// Who took part; at least one.
    pub participants: Vec<ParticipantRef>,
    /// One line; trimmed, must not be blank, at most [`LINE_CHARS_MAX`] characters.
    pub summary: String,
    /// Notes; at most [`NOTES_BYTES_MAX`] bytes.
    pub notes: String,
    /// The project it was work on; must exist.
    pub project: Option<ProjectId>,
    /// What flowed, which way, with whom.
    pub exchanges: Vec<NewExchange>,
    /// Things to do after it.
    pub follow_ups: Vec<NewFollowUp>,
    /// Create contacts for participant names that match nobody (in the same write).
    pub create_missing: bool,
}

impl Default for NewInteraction {
    fn default() -> Self {
        NewInteraction {
            at_ms: None,
            offset_minutes: 0,
            kind: InteractionKind::Meeting,
            initiator: Initiator::Unknown,
            participants: Vec::new(),
            summary: String::new(),
            notes: String::new(),
            project: None,
            exchanges: Vec::new(),
            follow_ups: Vec::new(),
            create_missing: false,
        }
    }
}

/// A partial update of an interaction (`None` leaves a field unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InteractionPatch {
    /// New time (UTC); the interaction stays in its log document.
    pub at_ms: Option<TimestampMs>,
    /// New local UTC offset, in minutes.
    pub offset_minutes: Option<i16>,
    /// New kind.
    pub kind: Option<InteractionKind>,
    /// New initiator.
    pub initiator: Option<Initiator>,
    /// Replaces the participants; must not be empty.
    pub participants: Option<BTreeSet<ContactId>>,
    /// New summary; trimmed, must not be blank.
    pub summary: Option<String>,
    /// Writing notes also resolves a notes conflict.
    pub notes: Option<String>,
    /// `Some(None)` unlinks the project.
    pub project: Option<Option<ProjectId>>,
    /// Replaces the exchanges.
    pub exchanges: Option<Vec<Exchange>>,
}

/// A new project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// Short name; must not be blank.
    pub name: String,
    /// Free text; may be empty.
    pub description: String,
    /// Initial status.
    pub status: ProjectStatus,
}

/// A partial update of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPatch {
    /// New name; must not be blank.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<ProjectStatus>,
}

/// A new goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGoal {
    /// What I want to achieve; must not be blank.
    pub title: String,
    /// 1 (highest) to 3.
    pub priority: u8,
    /// Initial status.
    pub status: GoalStatus,
    /// Contacts who can help; each must exist.
    pub contacts: BTreeSet<ContactId>,
}

/// A partial update of a goal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalPatch {
    /// New title; must not be blank.
    pub title: Option<String>,
    /// New priority, 1 (highest) to 3; other values are refused.
    pub priority: Option<u8>,
    /// New status.
    pub status: Option<GoalStatus>,
    /// Replaces the linked contacts.
    pub contacts: Option<BTreeSet<ContactId>>,
}

/// Order of the contact list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactSort {
    /// By normalised name.
    #[default]
    Name,
    /// Most recent interaction first; never-met contacts last (by name).
    LastInteraction,
}

/// A page of the contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactQuery {
    /// Order of the list.
    pub sort: ContactSort,
    /// Also list archived (and merged) contacts.
    pub include_archived: bool,
    /// Contacts to skip, for paging.
    pub offset: usize,
    /// Most contacts returned; capped at [`PAGE_MAX`].
    pub limit: usize,
}

impl Default for ContactQuery {
    fn default() -> Self {
        ContactQuery {
            sort: ContactSort::Name,
            include_archived: false,
            offset: 0,
            limit: 100,
        }
    }
}

/// A page of a timeline, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineQuery {
    /// Only interactions with this contact.
    pub contact: Option<ContactId>,
    /// Also list deleted (tombstoned) interactions.
    pub include_deleted: bool,
    /// Interactions to skip, for paging.
    pub offset: usize,
    /// Most interactions returned; capped at [`PAGE_MAX`].
    pub limit: usize,
}

impl Default for TimelineQuery {
    fn default() -> Self {
        TimelineQuery {
            contact: None,
            include_deleted: false,
            offset: 0,
            limit: 20,
        }
    }
}

/// Which open follow-ups to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowUpFilter {
    /// Every open follow-up (undated ones last).
    Open,
    /// Open and due on or before this date.
    DueBy(NaiveDate),
    /// Open and due strictly before `today`.
    Overdue {
        /// Today's date in the user's time zone.
        today: NaiveDate,
    },
}

/// An open follow-up with the interaction it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUpItem {
    /// The interaction it belongs to.
    pub interaction: InteractionId,
    /// When that interaction happened.
    pub at_ms: TimestampMs,
    /// That interaction's summary.
    pub summary: String,
    /// That interaction's participants.
    pub participants: BTreeSet<ContactId>,
    /// The follow-up itself.
    pub follow_up: FollowUp,
}

/// Per-contact interaction stats (non-deleted interactions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactStats {
    /// Time of the latest interaction; `None` when never met.
    pub last_interaction_ms: Option<TimestampMs>,
    /// Number of interactions.
    pub interaction_count: u64,
}

/// Search results: matching contacts (by id) and interactions (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matching contacts, merged-away ones left out.
    pub contacts: Vec<Contact>,
    /// Matching interactions, deleted ones left out.
    pub interactions: Vec<Interaction>,
}

/// What a bulk import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Contacts written.
    pub contacts: usize,
    /// Interactions written.
    pub interactions: usize,
    /// Projects written.
    pub projects: usize,
    /// Goals written.
    pub goals: usize,
}

/// Records per Automerge change in a bulk import.
const IMPORT_BATCH_RECORDS: usize = 5_000;
/// Contacts per Automerge change in a bulk import (all in one redb
/// transaction): bounds the memory of the change's pending ops.
const IMPORT_CHANGE_CONTACTS: usize = 1_000;

fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

fn check_line(what: &'static str, s: &str) -> Result<String, OpError> {
    let t = trimmed(s);
    if t.is_empty() {
        return Err(match what {
            "name" => OpError::EmptyName,
            "summary" => OpError::EmptySummary,
            _ => OpError::EmptyText { what },
        });
    }
    if t.chars().count() > LINE_CHARS_MAX {
        return Err(OpError::Invalid {
            field: what,
            reason: format!("longer than {LINE_CHARS_MAX} characters"),
        });
    }
    Ok(t)
}

fn check_notes(field: &'static str, s: &str) -> Result<(), OpError> {
    if s.len() > NOTES_BYTES_MAX {
        return Err(OpError::Invalid {
            field,
            reason: format!("longer than {NOTES_BYTES_MAX} bytes"),
        });
    }
    Ok(())
}

fn opt_trim(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn check_points(
    field: &'static str,
    points: Vec<ContactPoint>,
) -> Result<Vec<ContactPoint>, OpError> {
    let mut by_value: BTreeMap<String, String> = BTreeMap::new();
    for p in points {
        let v = p.value.trim().to_string();
        if v.is_empty() {
            return Err(OpError::Invalid {
                field,
                reason: "an empty value".into(),
            });
        }
        let entry = by_value.entry(v).or_default();
        if entry.is_empty() {
            *entry = p.label.trim().to_string();
        }
    }
    Ok(by_value
        .into_iter()
        .map(|(value, label)| ContactPoint { value, label })
        .collect())
}

fn check_set(field: &'static str, set: BTreeSet<String>) -> Result<BTreeSet<String>, OpError> {
    let out: BTreeSet<String> = set.into_iter().map(|s| s.trim().to_string()).collect();
    if out.contains("") {
        return Err(OpError::Invalid {
            field,
            reason: "an empty entry".into(),
        });
    }
    Ok(out)
}

fn check_birthday(b: Option<PartialDate>) -> Result<Option<PartialDate>, OpError> {
    if let Some(d) = b {
        let year = d.year.unwrap_or(2000);
        if NaiveDate::from_ymd_opt(year, u32::from(d.month), u32::from(d.day)).is_none() {
            return Err(OpError::Invalid {
                field: "birthday",
                reason: format!("{:?}-{}-{} is not a date", d.year, d.month, d.day),
            });
        }
    }
    Ok(b)
}

fn check_priority(p: u8) -> Result<u8, OpError> {
    if (1..=3).contains(&p) {
        Ok(p)
    } else {
        Err(OpError::BadPriority(p))
    }
}

/// Builds a validated contact record from a [`NewContact`].
fn contact_from_new(id: ContactId, c: NewContact, now: TimestampMs) -> Result<Contact, OpError> {
    check_notes("notes", &c.notes)?;
    Ok(Contact {
        id,
        name: check_line("name", &c.name)?,
        given_name: opt_trim(c.given_name),
        family_name: opt_trim(c.family_name),
        organisation: opt_trim(c.organisation),
        role: opt_trim(c.role),
        discipline: opt_trim(c.discipline),
        seniority: c.seniority.unwrap_or(Seniority::Unknown),
        inside_org: c.inside_org,
        circles: c.circles,
        tags: check_set("tags", c.tags)?,
        emails: check_points("emails", c.emails)?,
        phones: check_points("phones", c.phones)?,
        urls: check_set("urls", c.urls)?,
        how_we_met: opt_trim(c.how_we_met),
        first_met: c.first_met,
        birthday: check_birthday(c.birthday)?,
        notes: c.notes,
        cadence_days: c.cadence_days,
        created_ms: now,
        updated_ms: now,
        archived: false,
        merged_into: None,
        import_keys: check_set("import_keys", c.import_keys)?,
        merge_base: BTreeMap::new(),
        merged_from: Vec::new(),
        conflicts: Vec::new(),
    })
}

/// The contact fields a patch writes (set or cleared), by document name.
fn patch_fields(p: &ContactPatch) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let mut f = |set: bool, name: &'static str| {
        if set {
            out.insert(name);
        }
    };
    f(p.name.is_some(), "name");
    f(p.given_name.is_some(), "given_name");
    f(p.family_name.is_some(), "family_name");
    f(p.organisation.is_some(), "organisation");
    f(p.role.is_some(), "role");
    f(p.discipline.is_some(), "discipline");
    f(p.seniority.is_some(), "seniority");
    f(p.inside_org.is_some(), "inside_org");
    f(p.how_we_met.is_some(), "how_we_met");
    f(p.birthday.is_some(), "birthday");
    f(p.notes.is_some(), "notes");
    f(p.cadence_days.is_some(), "cadence_days");
    out
}

/// Clears one field that [`index::merges::field_values`] names.
fn clear_field(c: &mut Contact, field: &str) {
    match field {
        "given_name" => c.given_name = None,
        "family_name" => c.family_name = None,
        "organisation" => c.organisation = None,
        "role" => c.role = None,
        "discipline" => c.discipline = None,
        "seniority" => c.seniority = Seniority::Unknown,
        "inside_org" => c.inside_org = None,
        "how_we_met" => c.how_we_met = None,
        "birthday" => c.birthday = None,
        "notes" => c.notes.clear(),
        "cadence_days" => c.cadence_days = None,
        _ => {}
    }
}

/// Applies to `raw` (a contact as its document holds it) every field that
/// differs between `seen` (what queries showed) and `edited`.
fn rebase_contact(seen: &Contact, edited: &Contact, raw: &mut Contact) {
    macro_rules! take {
        ($($f:ident),*) => {$(
            if seen.$f != edited.$f {
                raw.$f = edited.$f.clone();
            }
        )*};
    }
    take!(
        name,
        given_name,
        family_name,
        organisation,
        role,
        discipline,
        seniority,
        inside_org,
        circles,
        tags,
        emails,
        phones,
        urls,
        how_we_met,
        first_met,
        birthday,
        notes,
        cadence_days,
        import_keys
    );
}

/// What an edit of a survivor (`seen` -> `edited`, `fields` written by the
/// patch) changes on one of its merged duplicates, so the survivor shows
/// exactly the edit: a cleared field is cleared on the duplicate too (or the
/// duplicate's value would fill it again), a removed set member is removed
/// from it, and a written field takes the duplicate's current value into its
/// merge base (the user chose: no conflict left on that field).
fn rebase_member(
    seen: &Contact,
    edited: &Contact,
    fields: &BTreeSet<&'static str>,
    member: &mut Contact,
) {
    let after = index::merges::field_values(edited);
    let mine = index::merges::field_values(member);
    for f in fields {
        match (after.get(*f), mine.get(*f)) {
            (None, Some(_)) => clear_field(member, f),
            (Some(_), Some(v)) => {
                member.merge_base.insert((*f).to_string(), v.clone());
            }
            _ => {}
        }
    }
    fn drop_removed<T: Ord + Clone>(
        seen: &BTreeSet<T>,
        edited: &BTreeSet<T>,
        member: &mut BTreeSet<T>,
    ) {
        for gone in seen.difference(edited) {
            member.remove(gone);
        }
    }
    drop_removed(&seen.circles, &edited.circles, &mut member.circles);
    drop_removed(&seen.tags, &edited.tags, &mut member.tags);
    drop_removed(&seen.urls, &edited.urls, &mut member.urls);
    drop_removed(
        &seen.import_keys,
        &edited.import_keys,
        &mut member.import_keys,
    );
    let kept = |list: &[ContactPoint], v: &str| list.iter().any(|p| p.value == v);
    member
        .emails
        .retain(|p| !kept(&seen.emails, &p.value) || kept(&edited.emails, &p.value));
    member
        .phones
        .retain(|p| !kept(&seen.phones, &p.value) || kept(&edited.phones, &p.value));
    if seen.first_met != edited.first_met
        && member
            .first_met
            .is_some_and(|d| edited.first_met.is_none_or(|e| d < e))
    {
        member.first_met = None;
    }
}

/// An interaction edited as seen (`old` -> `new`, references resolved),
/// written onto `raw` (as its document holds it): participants and
/// exchanges the edit did not change keep their raw references.
fn rebase_interaction(old: &Interaction, mut new: Interaction, raw: &Interaction) -> Interaction {
    if new.participants == old.participants {
        new.participants = raw.participants.clone();
    }
    for e in &mut new.exchanges {
        let seen = old.exchanges.iter().find(|o| o.id == e.id);
        let stored = raw.exchanges.iter().find(|o| o.id == e.id);
        if let (Some(seen), Some(stored)) = (seen, stored)
            && seen == e
        {
            e.with = stored.with;
        }
    }
    new
}

fn apply_contact_patch(c: &mut Contact, p: ContactPatch) -> Result<(), OpError> {
    if let Some(n) = p.name {
        c.name = check_line("name", &n)?;
    }
    if let Some(v) = p.given_name {
        c.given_name = opt_trim(v);
    }
    if let Some(v) = p.family_name {
        c.family_name = opt_trim(v);
    }
    if let Some(v) = p.organisation {
        c.organisation = opt_trim(v);
    }
    if let Some(v) = p.role {
        c.role = opt_trim(v);
    }
    if let Some(v) = p.discipline {
        c.discipline = opt_trim(v);
    }
    if let Some(v) = p.seniority {
        c.seniority = v;
    }
    if let Some(v) = p.inside_org {
        c.inside_org = v;
    }
    if let Some(v) = p.circles {
        c.circles = v;
    }
    if let Some(v) = p.tags {
        c.tags = check_set("tags", v)?;
    }
    if let Some(v) = p.emails {
        c.emails = check_points("emails", v)?;
    }
    if let Some(v) = p.phones {
        c.phones = check_points("phones", v)?;
    }
    if let Some(v) = p.urls {
        c.urls = check_set("urls", v)?;
    }
    if let Some(v) = p.how_we_met {
        c.how_we_met = opt_trim(v);
    }
    if let Some(v) = p.first_met {
        c.first_met = v;
    }
    if let Some(v) = p.birthday {
        c.birthday = check_birthday(v)?;
    }
    if let Some(v) = p.notes {
        check_notes("notes", &v)?;
        c.notes = v;
    }
    if let Some(v) = p.cadence_days {
        c.cadence_days = v;
    }
    if let Some(v) = p.import_keys {
        c.import_keys = check_set("import_keys", v)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- write helpers on Tx

/// Participant references resolved by position, and the names that matched nobody.
type Resolved = (BTreeMap<usize, ContactId>, Vec<(usize, String)>);

impl Tx<'_> {
    /// A contact as queries see it (merges resolved).
    fn contact(&self, id: ContactId) -> Result<Contact, OpError> {
        index::get_contact(self.txn, id)?.ok_or(OpError::UnknownContact(id))
    }

    /// A contact as the document holds it (what a write diffs against).
    fn raw_contact(&self, id: ContactId) -> Result<Contact, OpError> {
        index::merges::get_raw_contact(self.txn, id)?.ok_or(OpError::UnknownContact(id))
    }

    fn interaction(&self, id: InteractionId) -> Result<Interaction, OpError> {
        index::get_interaction(self.txn, id)?.ok_or(OpError::UnknownInteraction(id))
    }

    fn raw_interaction(&self, id: InteractionId) -> Result<Interaction, OpError> {
        index::get_raw_interaction(self.txn, id)?.ok_or(OpError::UnknownInteraction(id))
    }

    /// Writes a contact (`old` and `new` as the document holds them) to the
    /// main document, indexes what the document now says and returns the
    /// contact as queries see it.
    fn save_contact(&mut self, old: Option<&Contact>, new: &Contact) -> Result<Contact, OpError> {
        let doc = self.doc_mut(DocId::Main)?;
        schema::write_contact(doc, old, new)?;
        let id = new.id.to_string();
        let stored = schema::read_one(doc, schema::CONTACTS, &id, schema::read_contact)?
            .ok_or(OpError::UnknownContact(new.id))?;
        index::put_contact(self.txn, &stored)?;
        self.contact(new.id)
    }

    /// [`Tx::save_contact`] for interactions (`old`, `new` raw).
    fn save_interaction(
        &mut self,
        old: Option<&Interaction>,
        new: &Interaction,
    ) -> Result<Interaction, OpError> {
        let doc = self.doc_mut(DocId::for_interaction(new.id))?;
        schema::write_interaction(doc, old, new)?;
        let id = new.id.to_string();
        let stored = schema::read_one(doc, schema::INTERACTIONS, &id, schema::read_interaction)?
            .ok_or(OpError::UnknownInteraction(new.id))?;
        index::put_interaction(self.txn, &stored)?;
        self.interaction(new.id)
    }

    /// Writes a new interaction: as a fresh write when its partition is not
    /// in memory (indexed exactly as the partition will read it back once
    /// folded), else into the partition like any other write.
    fn save_new_interaction(&mut self, new: &Interaction) -> Result<Interaction, OpError> {
        match self.put_fresh(DocId::for_interaction(new.id), new)? {
            Some(stored) => {
                index::put_interaction(self.txn, &stored)?;
                self.interaction(new.id)
            }
            None => self.save_interaction(None, new),
        }
    }

    fn save_project(&mut self, old: Option<&Project>, new: &Project) -> Result<Project, OpError> {
        let doc = self.doc_mut(DocId::Main)?;
        schema::write_project(doc, old, new)?;
        let stored = schema::read_one(
            doc,
            schema::PROJECTS,
            &new.id.to_string(),
            schema::read_project,
        )?
        .ok_or(OpError::UnknownProject(new.id))?;
        index::put_project(self.txn, &stored)?;
        Ok(stored)
    }

    /// [`Tx::save_contact`] for goals (`old`, `new` raw).
    fn save_goal(&mut self, old: Option<&Goal>, new: &Goal) -> Result<Goal, OpError> {
        let doc = self.doc_mut(DocId::Main)?;
        schema::write_goal(doc, old, new)?;
        let stored = schema::read_one(doc, schema::GOALS, &new.id.to_string(), schema::read_goal)?
            .ok_or(OpError::UnknownGoal(new.id))?;
        index::put_goal(self.txn, &stored)?;
        index::get_goal(self.txn, new.id)?.ok_or(OpError::UnknownGoal(new.id))
    }

    /// Resolves participant references; unknown names are returned separately.
    fn resolve(&self, refs: &[ParticipantRef]) -> Result<Resolved, OpError> {
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            match r {
                ParticipantRef::Id(id) => {
                    let c = self.contact(*id)?;
                    found.insert(i, c.merged_into.unwrap_or(c.id));
                }
                ParticipantRef::Name(name) => {
                    let name = check_line("name", name)?;
                    let ids = index::contacts_named_w(self.txn, &name)?;
                    // Merged-away duplicates share the name; prefer live contacts.
                    let mut live = Vec::new();
                    for id in &ids {
                        let c = self.contact(*id)?;
                        if c.merged_into.is_none() && !c.archived {
                            live.push(c.id);
                        }
                    }
                    let pick = if live.is_empty() { ids } else { live };
                    match pick.as_slice() {
                        [] => missing.push((i, name)),
                        [one] => {
                            found.insert(i, *one);
                        }
                        many => {
                            return Err(OpError::AmbiguousName {
                                name,
                                candidates: many.to_vec(),
                            });
                        }
                    }
                }
            }
        }
        Ok((found, missing))
    }
}

// ---------------------------------------------------------------- operations

impl Store {
    /// Adds a contact.
    pub fn add_contact(&mut self, new: NewContact) -> Result<Contact, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let c = contact_from_new(ContactId::new(), new, tx.now_ms)?;
            tx.save_contact(None, &c)
        })
    }

    /// Changes some fields of a contact. The patch applies to the contact as
    /// queries show it (a survivor with its duplicates' values folded in);
    /// see [`rebase_member`] for what it changes on those duplicates.
    pub fn edit_contact(&mut self, id: ContactId, patch: ContactPatch) -> Result<Contact, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let seen = tx.contact(id)?;
            let fields = patch_fields(&patch);
            let mut edited = seen.clone();
            apply_contact_patch(&mut edited, patch)?;
            let acknowledges = seen
                .conflicts
                .iter()
                .any(|c| fields.contains(c.field.as_str()));
            if edited == seen && !acknowledges {
                return Ok(seen);
            }
            if seen.merged_into.is_none() {
                for m in &seen.merged_from {
                    let old = tx.raw_contact(*m)?;
                    let mut new = old.clone();
                    rebase_member(&seen, &edited, &fields, &mut new);
                    if new != old {
                        new.updated_ms = tx.now_ms;
                        tx.save_contact(Some(&old), &new)?;
                    }
                }
            }
            let old = tx.raw_contact(id)?;
            let mut new = old.clone();
            rebase_contact(&seen, &edited, &mut new);
            if new != old {
                new.updated_ms = tx.now_ms;
                tx.save_contact(Some(&old), &new)?;
            }
            tx.contact(id)
        })
    }

    fn set_archived(&mut self, id: ContactId, archived: bool) -> Result<Contact, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let seen = tx.contact(id)?;
            if let (false, Some(into)) = (archived, seen.merged_into) {
                return Err(OpError::AlreadyMerged { contact: id, into });
            }
            let old = tx.raw_contact(id)?;
            if old.archived == archived {
                return Ok(seen);
            }
            let mut new = old.clone();
            new.archived = archived;
            new.updated_ms = tx.now_ms;
            tx.save_contact(Some(&old), &new)
        })
    }

    /// Archives a contact (hidden from the default list, history kept).
    pub fn archive_contact(&mut self, id: ContactId) -> Result<Contact, OpError> {
        self.set_archived(id, true)
    }

    /// Brings an archived contact back (not one that was merged away).
    pub fn unarchive_contact(&mut self, id: ContactId) -> Result<Contact, OpError> {
        self.set_archived(id, false)
    }

    /// Merges `loser` into `winner`: one write on the loser, its
    /// `merged_into` pointer and its merge base (its current values). No
    /// reference is rewritten: the index resolves every reference to the
    /// survivor and folds the loser's fields into the winner's record
    /// (SCHEMA.md "Merging duplicates"), so a concurrent merge, edit or
    /// interaction on another device resolves the same way once synced, and
    /// [`Store::unmerge_contact`] undoes it. Returns the winner as queries
    /// now show it.
    pub fn merge_contacts(
        &mut self,
        winner: ContactId,
        loser: ContactId,
    ) -> Result<Contact, OpError> {
        if winner == loser {
            return Err(OpError::MergeIntoSelf(winner));
        }
        self.transact(&[DocId::Main], |tx| {
            for id in [winner, loser] {
                if let Some(into) = tx.contact(id)?.merged_into {
                    return Err(OpError::AlreadyMerged { contact: id, into });
                }
            }
            let old = tx.raw_contact(loser)?;
            let mut new = old.clone();
            new.merged_into = Some(winner);
            new.merge_base = index::merges::field_values(&old);
            new.updated_ms = tx.now_ms;
            tx.save_contact(Some(&old), &new)?;
            tx.contact(winner)
        })
    }

    /// Undoes the merge of `id`: it is live again, with its own fields and
    /// every reference that names it (interactions logged with it, exchanges,
    /// goals), and so are the contacts merged into it. One write; it syncs
    /// like any other. When `id`'s survivor was elected to break a cycle of
    /// merges, its own pointer is cleared too, so it does not follow `id`.
    pub fn unmerge_contact(&mut self, id: ContactId) -> Result<Contact, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let Some(survivor) = tx.contact(id)?.merged_into else {
                return Err(OpError::NotMerged(id));
            };
            let old = tx.raw_contact(id)?;
            let mut new = old.clone();
            new.merged_into = None;
            new.merge_base.clear();
            new.archived = false;
            new.updated_ms = tx.now_ms;
            tx.save_contact(Some(&old), &new)?;
            let s_old = tx.raw_contact(survivor)?;
            if s_old.merged_into.is_some() {
                let mut s_new = s_old.clone();
                s_new.merged_into = None;
                s_new.updated_ms = tx.now_ms;
                tx.save_contact(Some(&s_old), &s_new)?;
            }
            tx.contact(id)
        })
    }

    /// Logs an interaction. Participants are ids or names; unknown names fail
    /// with [`OpError::UnknownNames`] unless `create_missing` is set, in which
    /// case those contacts are created in the same write.
    pub fn log_interaction(&mut self, new: NewInteraction) -> Result<Interaction, OpError> {
        self.log_interaction_for_event(new, None)
    }

    /// [`Store::log_interaction`] that remembers the calendar event it logs (meetings).
    pub(crate) fn log_interaction_for_event(
        &mut self,
        new: NewInteraction,
        event: Option<crate::model::EventRef>,
    ) -> Result<Interaction, OpError> {
        let at_ms = new.at_ms.unwrap_or_else(crate::store::now_ms);
        let id = InteractionId::new_at(at_ms);
        // The partition is not loaded for a new interaction: when it is not
        // in memory, the write is a fresh write (store::pending) and costs
        // no load, whatever the size of the quarter.
        let mut preload = Vec::new();
        if new.create_missing {
            preload.push(DocId::Main);
        }
        self.verify_for_fresh_write(DocId::for_interaction(id))?;
        self.transact(&preload, |tx| {
            let summary = check_line("summary", &new.summary)?;
            check_notes("notes", &new.notes)?;
            if new.participants.is_empty() {
                return Err(OpError::NoParticipants);
            }
            let with_refs: Vec<ParticipantRef> = new
                .exchanges
                .iter()
                .filter_map(|e| e.with.clone())
                .collect();
            let all_refs: Vec<ParticipantRef> = new
                .participants
                .iter()
                .chain(with_refs.iter())
                .cloned()
                .collect();
            let (mut found, missing) = tx.resolve(&all_refs)?;
            if !missing.is_empty() {
                if !new.create_missing {
                    let mut names: Vec<String> = missing.into_iter().map(|(_, n)| n).collect();
                    names.dedup();
                    return Err(OpError::UnknownNames { names });
                }
                let mut created: BTreeMap<String, ContactId> = BTreeMap::new();
                for (i, name) in missing {
                    let key = text::normalise_name(&name);
                    let cid = match created.get(&key) {
                        Some(c) => *c,
                        None => {
                            let c = contact_from_new(
                                ContactId::new(),
                                NewContact::named(name),
                                tx.now_ms,
                            )?;
                            tx.save_contact(None, &c)?;
                            created.insert(key, c.id);
                            c.id
                        }
                    };
                    found.insert(i, cid);
                }
            }
            let n = new.participants.len();
            let participants: BTreeSet<ContactId> =
                (0..n).filter_map(|i| found.get(&i).copied()).collect();
            if let Some(p) = new.project
                && index::get_project(tx.txn, p)?.is_none()
            {
                return Err(OpError::UnknownProject(p));
            }
            let mut exchanges = Vec::new();
            let mut wi = n;
            for ex in &new.exchanges {
                let with = match ex.with {
                    Some(_) => {
                        let c = found.get(&wi).copied();
                        wi += 1;
                        c
                    }
                    None => None,
                };
                if let Some(c) = with
                    && !participants.contains(&c)
                {
                    return Err(OpError::ExchangeWithNonParticipant(c));
                }
                exchanges.push(Exchange {
                    id: ExchangeId::new(),
                    what: ex.what,
                    direction: ex.direction,
                    with,
                });
            }
            let mut follow_ups = BTreeMap::new();
            for fu in &new.follow_ups {
                let fid = FollowUpId::new();
                follow_ups.insert(
                    fid,
                    FollowUp {
                        id: fid,
                        text: check_line("follow-up text", &fu.text)?,
                        due: fu.due,
                        done_ms: None,
                    },
                );
            }
            let rec = Interaction {
                id,
                at_ms,
                offset_minutes: new.offset_minutes,
                kind: new.kind,
                initiator: new.initiator,
                participants,
                summary,
                notes: new.notes.clone(),
                notes_conflicts: Vec::new(),
                project: new.project,
                exchanges,
                follow_ups,
                created_ms: tx.now_ms,
                updated_ms: tx.now_ms,
                deleted_ms: None,
                event: event.clone(),
            };
            tx.save_new_interaction(&rec)
        })
    }

    /// Runs `f` on a copy of interaction `id` and saves it if it changed.
    fn update_interaction(
        &mut self,
        id: InteractionId,
        f: impl FnOnce(&mut Tx<'_>, &mut Interaction) -> Result<(), OpError>,
    ) -> Result<Interaction, OpError> {
        let log = DocId::for_interaction(id);
        self.transact(&[log], |tx| {
            // `f` edits what the user sees (references resolved); the write
            // keeps the raw references of every part it did not change, so an
            // unmerge still gives the duplicate its own interactions back.
            let old = tx.interaction(id)?;
            let mut new = old.clone();
            f(tx, &mut new)?;
            if new == old {
                return Ok(old);
            }
            new.updated_ms = tx.now_ms;
            let raw_old = tx.raw_interaction(id)?;
            let raw_new = rebase_interaction(&old, new, &raw_old);
            tx.save_interaction(Some(&raw_old), &raw_new)
        })
    }

    /// Changes some fields of an interaction. Its partition does not move.
    pub fn edit_interaction(
        &mut self,
        id: InteractionId,
        patch: InteractionPatch,
    ) -> Result<Interaction, OpError> {
        self.update_interaction(id, |tx, i| {
            if let Some(v) = patch.at_ms {
                i.at_ms = v;
            }
            if let Some(v) = patch.offset_minutes {
                i.offset_minutes = v;
            }
            if let Some(v) = patch.kind {
                i.kind = v;
            }
            if let Some(v) = patch.initiator {
                i.initiator = v;
            }
            if let Some(v) = patch.participants {
                if v.is_empty() {
                    return Err(OpError::NoParticipants);
                }
                for c in &v {
                    tx.contact(*c)?;
                }
                i.participants = v;
            }
            if let Some(v) = patch.summary {
                i.summary = check_line("summary", &v)?;
            }
            if let Some(v) = patch.notes {
                check_notes("notes", &v)?;
                i.notes = v;
                if !i.notes_conflicts.is_empty() {
                    i.notes_conflicts.clear();
                    i.updated_ms = tx.now_ms;
                }
            }
            if let Some(v) = patch.project {
                if let Some(p) = v
                    && index::get_project(tx.txn, p)?.is_none()
                {
                    return Err(OpError::UnknownProject(p));
                }
                i.project = v;
            }
            if let Some(v) = patch.exchanges {
                i.exchanges = v;
            }
            for ex in &i.exchanges {
                if let Some(c) = ex.with
                    && !i.participants.contains(&c)
                {
                    return Err(OpError::ExchangeWithNonParticipant(c));
                }
            }
            Ok(())
        })
    }

    /// Deletes an interaction (a tombstone: undo with [`Store::undelete_interaction`]).
    pub fn delete_interaction(&mut self, id: InteractionId) -> Result<Interaction, OpError> {
        self.update_interaction(id, |tx, i| {
            if i.deleted_ms.is_none() {
                i.deleted_ms = Some(tx.now_ms);
            }
            Ok(())
        })
    }

    /// Restores a deleted interaction.
    pub fn undelete_interaction(&mut self, id: InteractionId) -> Result<Interaction, OpError> {
        self.update_interaction(id, |_, i| {
            i.deleted_ms = None;
            Ok(())
        })
    }

    /// Adds a follow-up to an interaction.
    pub fn add_follow_up(
        &mut self,
        interaction: InteractionId,
        follow_up: NewFollowUp,
    ) -> Result<FollowUp, OpError> {
        let fid = FollowUpId::new();
        let i = self.update_interaction(interaction, |_, i| {
            let fu = FollowUp {
                id: fid,
                text: check_line("follow-up text", &follow_up.text)?,
                due: follow_up.due,
                done_ms: None,
            };
            i.follow_ups.insert(fid, fu);
            Ok(())
        })?;
        i.follow_ups
            .get(&fid)
            .cloned()
            .ok_or(OpError::UnknownFollowUp {
                interaction,
                follow_up: fid,
            })
    }

    fn set_follow_up_done(
        &mut self,
        interaction: InteractionId,
        follow_up: FollowUpId,
        done: bool,
    ) -> Result<FollowUp, OpError> {
        let i = self.update_interaction(interaction, |tx, i| {
            let fu = i
                .follow_ups
                .get_mut(&follow_up)
                .ok_or(OpError::UnknownFollowUp {
                    interaction,
                    follow_up,
                })?;
            match (done, fu.done_ms) {
                (true, None) => fu.done_ms = Some(tx.now_ms),
                (false, Some(_)) => fu.done_ms = None,
                _ => {}
            }
            Ok(())
        })?;
        i.follow_ups
            .get(&follow_up)
            .cloned()
            .ok_or(OpError::UnknownFollowUp {
                interaction,
                follow_up,
            })
    }

    /// Marks a follow-up done.
    pub fn complete_follow_up(
        &mut self,
        interaction: InteractionId,
        follow_up: FollowUpId,
    ) -> Result<FollowUp, OpError> {
        self.set_follow_up_done(interaction, follow_up, true)
    }

    /// Reopens a completed follow-up.
    pub fn reopen_follow_up(
        &mut self,
        interaction: InteractionId,
        follow_up: FollowUpId,
    ) -> Result<FollowUp, OpError> {
        self.set_follow_up_done(interaction, follow_up, false)
    }

    /// Adds a project.
    pub fn add_project(&mut self, new: NewProject) -> Result<Project, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let p = Project {
                id: ProjectId::new(),
                name: check_line("project name", &new.name)?,
                description: new.description.trim().to_string(),
                status: new.status,
                created_ms: tx.now_ms,
                updated_ms: tx.now_ms,
            };
            check_notes("description", &p.description)?;
            tx.save_project(None, &p)
        })
    }

    /// Changes some fields of a project.
    pub fn edit_project(&mut self, id: ProjectId, patch: ProjectPatch) -> Result<Project, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let old = index::get_project(tx.txn, id)?.ok_or(OpError::UnknownProject(id))?;
            let mut p = old.clone();
            if let Some(v) = patch.name {
                p.name = check_line("project name", &v)?;
            }
            if let Some(v) = patch.description {
                check_notes("description", &v)?;
                p.description = v.trim().to_string();
            }
            if let Some(v) = patch.status {
                p.status = v;
            }
            if p == old {
                return Ok(old);
            }
            p.updated_ms = tx.now_ms;
            tx.save_project(Some(&old), &p)
        })
    }

    /// Adds a goal (priority 1..=3, linked contacts must exist).
    pub fn add_goal(&mut self, new: NewGoal) -> Result<Goal, OpError> {
        self.transact(&[DocId::Main], |tx| {
            for c in &new.contacts {
                tx.contact(*c)?;
            }
            let g = Goal {
                id: GoalId::new(),
                title: check_line("goal title", &new.title)?,
                priority: check_priority(new.priority)?,
                status: new.status,
                contacts: new.contacts.clone(),
                created_ms: tx.now_ms,
                updated_ms: tx.now_ms,
            };
            tx.save_goal(None, &g)
        })
    }

    /// Changes some fields of a goal.
    pub fn edit_goal(&mut self, id: GoalId, patch: GoalPatch) -> Result<Goal, OpError> {
        self.transact(&[DocId::Main], |tx| {
            let view = index::get_goal(tx.txn, id)?.ok_or(OpError::UnknownGoal(id))?;
            let old = index::get_raw_goal(tx.txn, id)?.ok_or(OpError::UnknownGoal(id))?;
            let mut g = old.clone();
            if let Some(v) = patch.title {
                g.title = check_line("goal title", &v)?;
            }
            if let Some(v) = patch.priority {
                g.priority = check_priority(v)?;
            }
            if let Some(v) = patch.status {
                g.status = v;
            }
            if let Some(v) = patch.contacts {
                for c in &v {
                    tx.contact(*c)?;
                }
                // Unchanged as seen: the raw references stay (see unmerge).
                if v != view.contacts {
                    g.contacts = v;
                }
            }
            if g == old {
                return Ok(view);
            }
            g.updated_ms = tx.now_ms;
            tx.save_goal(Some(&old), &g)
        })
    }

    /// The settings (from the index).
    pub fn settings(&self) -> Result<Settings, StoreError> {
        let txn = self.read_txn()?;
        let t = index::SETTINGS.open(&txn)?;
        match t.get(index::SETTINGS_ROW)? {
            Some(v) => index::decode_settings(v.value()),
            None => Ok(Settings::default()),
        }
    }

    /// Replaces the settings (only changed fields are written).
    pub fn set_settings(&mut self, new: Settings) -> Result<Settings, OpError> {
        if let Some(t) = new.strategic_target
            && !(0.0..=1.0).contains(&t)
        {
            return Err(OpError::Invalid {
                field: "strategic_target",
                reason: format!("{t} is not between 0 and 1"),
            });
        }
        if new.core_size == 0 {
            return Err(OpError::Invalid {
                field: "core_size",
                reason: "must be at least 1".into(),
            });
        }
        if new.cadence_days.values().any(|d| *d == 0) {
            return Err(OpError::Invalid {
                field: "cadence_days",
                reason: "a cadence must be at least 1 day".into(),
            });
        }
        let new = Settings {
            my_organisation: opt_trim(new.my_organisation),
            my_discipline: opt_trim(new.my_discipline),
            ..new
        };
        self.transact(&[DocId::Main], |tx| {
            let doc = tx.doc_mut(DocId::Main)?;
            let old = schema::read_settings(doc)?;
            schema::write_settings(doc, &old, &new)?;
            let stored = schema::read_settings(doc)?;
            index::put_settings(tx.txn, &stored)?;
            Ok(stored)
        })
    }

    /// Bulk path (import, demo, benches): upserts many records with one
    /// Automerge change per document per batch (per thousand contacts in the
    /// main document) and one redb transaction per batch (all the contacts,
    /// projects and goals in one). Records keep their ids; interactions land
    /// in the partition of their id. Contacts referenced by interactions or
    /// goals must exist in the store or in this call. Validation is the same
    /// as for single writes.
    pub fn import_records(
        &mut self,
        contacts: Vec<Contact>,
        interactions: Vec<Interaction>,
        projects: Vec<Project>,
        goals: Vec<Goal>,
    ) -> Result<ImportSummary, OpError> {
        let known: BTreeSet<ContactId> = contacts.iter().map(|c| c.id).collect();
        let known_projects: BTreeSet<ProjectId> = projects.iter().map(|p| p.id).collect();
        for c in &contacts {
            check_line("name", &c.name)?;
        }
        for p in &projects {
            check_line("project name", &p.name)?;
        }
        for g in &goals {
            check_line("goal title", &g.title)?;
            check_priority(g.priority)?;
        }
        for i in &interactions {
            check_line("summary", &i.summary)?;
            if i.participants.is_empty() {
                return Err(OpError::NoParticipants);
            }
        }
        let summary = ImportSummary {
            contacts: contacts.len(),
            interactions: interactions.len(),
            projects: projects.len(),
            goals: goals.len(),
        };
        // Main document first, in one batch: later batches reference these contacts.
        self.transact(&[DocId::Main], |tx| {
            let exists = |tx: &Tx<'_>, c: &ContactId| -> Result<bool, OpError> {
                Ok(known.contains(c) || index::get_contact(tx.txn, *c)?.is_some())
            };
            for g in &goals {
                for c in &g.contacts {
                    if !exists(tx, c)? {
                        return Err(OpError::UnknownContact(*c));
                    }
                }
            }
            for i in &interactions {
                for c in &i.participants {
                    if !exists(tx, c)? {
                        return Err(OpError::UnknownContact(*c));
                    }
                }
                if let Some(p) = i.project
                    && !known_projects.contains(&p)
                    && index::get_project(tx.txn, p)?.is_none()
                {
                    return Err(OpError::UnknownProject(p));
                }
            }
            // New contacts are indexed together at the end (sorted, tables
            // opened once), from the record as the reader would return it,
            // computed without reading the document back; an id repeated in
            // this call updates its pending row like a second write would.
            let mut pending: BTreeMap<ContactId, Contact> = BTreeMap::new();
            for (n, c) in contacts.into_iter().enumerate() {
                if n > 0 && n % IMPORT_CHANGE_CONTACTS == 0 {
                    tx.commit_change(DocId::Main);
                }
                let old = match pending.get(&c.id) {
                    Some(p) => Some(p.clone()),
                    None => index::merges::get_raw_contact(tx.txn, c.id)?,
                };
                let doc = tx.doc_mut(DocId::Main)?;
                let obj = schema::write_contact(doc, old.as_ref(), &c)?;
                match old {
                    None => {
                        pending.insert(c.id, schema::new_contact_as_read(c)?);
                    }
                    Some(_) => {
                        // Read back through the record just written (no lookup by id).
                        let stored = schema::read_contact(doc, &obj, &c.id.to_string())?;
                        if let Some(p) = pending.get_mut(&c.id) {
                            *p = stored;
                        } else {
                            index::put_contact(tx.txn, &stored)?;
                        }
                    }
                }
            }
            index::put_new_contacts(tx.txn, pending.values())?;
            for p in &projects {
                let old = index::get_project(tx.txn, p.id)?;
                tx.save_project(old.as_ref(), p)?;
            }
            for g in &goals {
                let old = index::get_raw_goal(tx.txn, g.id)?;
                tx.save_goal(old.as_ref(), g)?;
            }
            Ok(())
        })?;
        let mut by_doc: BTreeMap<DocId, Vec<Interaction>> = BTreeMap::new();
        for i in interactions {
            by_doc
                .entry(DocId::for_interaction(i.id))
                .or_default()
                .push(i);
        }
        for (doc_id, list) in by_doc {
            for batch in list.chunks(IMPORT_BATCH_RECORDS) {
                self.transact(&[doc_id], |tx| {
                    let mut affected = BTreeSet::new();
                    for i in batch {
                        let old = index::get_raw_interaction(tx.txn, i.id)?;
                        let doc = tx.doc_mut(doc_id)?;
                        schema::write_interaction(doc, old.as_ref(), i)?;
                        let stored = schema::read_one(
                            doc,
                            schema::INTERACTIONS,
                            &i.id.to_string(),
                            schema::read_interaction,
                        )?
                        .ok_or(OpError::UnknownInteraction(i.id))?;
                        let (old_view, view) = index::put_interaction_bulk(tx.txn, &stored)?;
                        if let Some(o) = &old_view {
                            affected.extend(o.participants.iter().copied());
                        }
                        affected.extend(view.participants.iter().copied());
                    }
                    index::refresh_stats(tx.txn, &affected)?;
                    Ok(())
                })?;
            }
        }
        Ok(summary)
    }

    // ------------------------------------------------------------ queries

    /// One contact.
    pub fn contact(&self, id: ContactId) -> Result<Contact, OpError> {
        let txn = self.read_txn()?;
        index::get_contact(&txn, id)?.ok_or(OpError::UnknownContact(id))
    }

    /// Contacts whose normalised name equals `name`'s (case, accents, spacing).
    pub fn contacts_named(&self, name: &str) -> Result<Vec<Contact>, StoreError> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for id in index::contacts_named(&txn, name)? {
            if let Some(c) = index::get_contact(&txn, id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// A page of the contact list.
    pub fn contacts(&self, q: &ContactQuery) -> Result<Vec<Contact>, StoreError> {
        let limit = q.limit.min(PAGE_MAX);
        let txn = self.read_txn()?;
        let records = index::CONTACTS.open(&txn)?;
        let keep = |c: &Contact| q.include_archived || !c.archived;
        match q.sort {
            ContactSort::Name => {
                let by_name = index::CONTACTS_BY_NAME.open(&txn)?;
                let mut out = Vec::new();
                let mut skipped = 0;
                for row in by_name.iter()? {
                    let (k, _) = row?;
                    let Some(v) = records.get(k.1)? else {
                        continue;
                    };
                    let c = index::decode_contact(v.value())?;
                    if !keep(&c) {
                        continue;
                    }
                    if skipped < q.offset {
                        skipped += 1;
                        continue;
                    }
                    out.push(c);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            }
            ContactSort::LastInteraction => {
                let stats = self.all_contact_stats()?;
                let mut all: Vec<Contact> = index::all_records::<Contact>(&records, "contacts")?
                    .into_iter()
                    .filter(|c| keep(c))
                    .collect();
                all.sort_by_cached_key(|c| {
                    let last = stats.get(&c.id).and_then(|s| s.last_interaction_ms);
                    (std::cmp::Reverse(last), text::normalise_name(&c.name), c.id)
                });
                Ok(all.into_iter().skip(q.offset).take(limit).collect())
            }
        }
    }

    /// Every contact (archived and merged included), from the index.
    pub fn all_contacts(&self) -> Result<Vec<Contact>, StoreError> {
        let txn = self.read_txn()?;
        index::all_records(&index::CONTACTS.open(&txn)?, "contacts")
    }

    /// Every interaction (deleted included: check `deleted_ms`), from the index.
    pub fn all_interactions(&self) -> Result<Vec<Interaction>, StoreError> {
        let txn = self.read_txn()?;
        index::all_records(&index::INTERACTIONS.open(&txn)?, "interactions")
    }

    /// Every project.
    pub fn all_projects(&self) -> Result<Vec<Project>, StoreError> {
        let txn = self.read_txn()?;
        index::all_records(&index::PROJECTS.open(&txn)?, "projects")
    }

    /// Every goal.
    pub fn all_goals(&self) -> Result<Vec<Goal>, StoreError> {
        let txn = self.read_txn()?;
        index::all_records(&index::GOALS.open(&txn)?, "goals")
    }

    /// What insights read, from the index in one read transaction (no
    /// document is loaded): every contact, every interaction (deleted
    /// included) without its notes (`notes` and `notes_conflicts` empty: no
    /// metric reads them, and they are most of the bytes), every goal, and the
    /// settings. `compute_all` over these gives the same report as over the
    /// full records.
    pub fn insights_records(&self) -> Result<InsightsRecords, StoreError> {
        let txn = self.read_txn()?;
        let contacts = index::all_records(&index::CONTACTS.open(&txn)?, "contacts")?;
        let table = index::INTERACTIONS.open(&txn)?;
        let mut interactions = Vec::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
        for row in table.iter()? {
            let (_, v) = row?;
            interactions.push(index::decode_interaction_lean(v.value())?);
        }
        let goals = index::all_records(&index::GOALS.open(&txn)?, "goals")?;
        let settings = match index::SETTINGS.open(&txn)?.get(index::SETTINGS_ROW)? {
            Some(v) => index::decode_settings(v.value())?,
            None => Settings::default(),
        };
        Ok(InsightsRecords {
            contacts,
            interactions,
            goals,
            settings,
        })
    }

    /// One project.
    pub fn project(&self, id: ProjectId) -> Result<Project, OpError> {
        index::get_project(&self.read_txn()?, id)?.ok_or(OpError::UnknownProject(id))
    }

    /// One goal.
    pub fn goal(&self, id: GoalId) -> Result<Goal, OpError> {
        index::get_goal(&self.read_txn()?, id)?.ok_or(OpError::UnknownGoal(id))
    }

    /// One interaction (also when deleted).
    pub fn interaction(&self, id: InteractionId) -> Result<Interaction, OpError> {
        index::get_interaction(&self.read_txn()?, id)?.ok_or(OpError::UnknownInteraction(id))
    }

    /// Interaction stats of one contact.
    pub fn contact_stats(&self, id: ContactId) -> Result<ContactStats, StoreError> {
        let txn = self.read_txn()?;
        let t = index::CONTACT_STATS.open(&txn)?;
        Ok(match t.get(id.to_u128())? {
            Some(v) => {
                let (last, count) = v;
                ContactStats {
                    last_interaction_ms: Some(last),
                    interaction_count: count,
                }
            }
            None => ContactStats::default(),
        })
    }

    /// Interaction stats of every contact that has any.
    pub fn all_contact_stats(&self) -> Result<BTreeMap<ContactId, ContactStats>, StoreError> {
        let txn = self.read_txn()?;
        let t = index::CONTACT_STATS.open(&txn)?;
        let mut out = BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let (last, count) = v;
            out.insert(
                ContactId::from_u128(k),
                ContactStats {
                    last_interaction_ms: Some(last),
                    interaction_count: count,
                },
            );
        }
        Ok(out)
    }

    /// A page of the timeline (all interactions, or one contact's), newest first.
    pub fn timeline(&self, q: &TimelineQuery) -> Result<Vec<Interaction>, OpError> {
        let limit = q.limit.min(PAGE_MAX);
        let txn = self.read_txn()?;
        let records = index::INTERACTIONS.open(&txn)?;
        let mut ids = Vec::new();
        let mut skipped = 0;
        let mut take = |id: u128, deleted: bool| {
            if deleted && !q.include_deleted {
                return true;
            }
            if skipped < q.offset {
                skipped += 1;
                return true;
            }
            ids.push(id);
            ids.len() < limit
        };
        match q.contact {
            None => {
                let t = index::BY_TIME.open(&txn)?;
                for row in t.iter()?.rev() {
                    let (k, v) = row?;
                    if !take(k.1, v) {
                        break;
                    }
                }
            }
            Some(c) => {
                if index::get_contact(&txn, c)?.is_none() {
                    return Err(OpError::UnknownContact(c));
                }
                let t = index::BY_CONTACT.open(&txn)?;
                let c = c.to_u128();
                for row in t
                    .range((c, i64::MIN, 0u128)..=(c, i64::MAX, u128::MAX))?
                    .rev()
                {
                    let (k, v) = row?;
                    if !take(k.2, v) {
                        break;
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = records.get(id)? {
                out.push(index::decode_interaction(v.value())?);
            }
        }
        Ok(out)
    }

    /// Prefix search over names, organisations, roles, disciplines, emails,
    /// tags, contact notes, summaries, notes and follow-ups; case- and
    /// accent-insensitive; every query word must match a word prefix.
    /// Deleted interactions and merged-away contacts are left out.
    pub fn search(&self, query: &str, limit: usize) -> Result<SearchResults, StoreError> {
        let limit = limit.min(PAGE_MAX);
        let txn = self.read_txn()?;
        let (cids, iids) = index::search_ids(&txn, query, 50_000)?;
        let mut out = SearchResults::default();
        for id in cids {
            if out.contacts.len() >= limit {
                break;
            }
            // A merged-away duplicate is found through its winner.
            if let Some(c) = index::get_contact(&txn, id)?.filter(|c| c.merged_into.is_none()) {
                out.contacts.push(c);
            }
        }
        for id in iids {
            if out.interactions.len() >= limit {
                break;
            }
            if let Some(i) = index::get_interaction(&txn, id)?
                && !i.is_deleted()
            {
                out.interactions.push(i);
            }
        }
        Ok(out)
    }

    /// Open follow-ups, by due date (undated last for [`FollowUpFilter::Open`]).
    pub fn follow_ups(&self, filter: FollowUpFilter) -> Result<Vec<FollowUpItem>, StoreError> {
        let due_max = match filter {
            FollowUpFilter::Open => i32::MAX,
            FollowUpFilter::DueBy(d) => d.num_days_from_ce(),
            FollowUpFilter::Overdue { today } => today.num_days_from_ce() - 1,
        };
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for (_, iid, fid) in index::open_followups(&txn, due_max)? {
            if out.len() >= PAGE_MAX {
                break;
            }
            let Some(i) = index::get_interaction(&txn, iid)? else {
                continue;
            };
            let Some(fu) = i.follow_ups.get(&fid).cloned() else {
                continue;
            };
            out.push(FollowUpItem {
                interaction: iid,
                at_ms: i.at_ms,
                summary: i.summary.clone(),
                participants: i.participants.clone(),
                follow_up: fu,
            });
        }
        Ok(out)
    }
}
