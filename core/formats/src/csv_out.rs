//! CSV export of contacts and of interactions, for spreadsheets.
//!
//! One row per record, one column per field; sets and lists are joined with
//! "; ", times are RFC 3339, an interaction's participants, project and
//! exchanges are shown by name (ids in their own column). Readable, not
//! lossless: the JSON export is the lossless one.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, FixedOffset, Utc};

use kith_model::ids::{ContactId, ProjectId};
use kith_model::model::{Contact, ContactPoint, Interaction, PartialDate, Project, TimestampMs};

/// A failure writing CSV.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The output could not be written.
    #[error("could not write the export: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV writer failed.
    #[error("could not write CSV: {0}")]
    Csv(#[from] ::csv::Error),
}

/// Column names of [`write_contacts_csv`].
pub const CONTACT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "given_name",
    "family_name",
    "organisation",
    "role",
    "discipline",
    "seniority",
    "inside_org",
    "circles",
    "tags",
    "emails",
    "phones",
    "urls",
    "how_we_met",
    "first_met",
    "birthday",
    "notes",
    "cadence_days",
    "archived",
    "merged_into",
    "created",
    "updated",
];

/// Column names of [`write_interactions_csv`].
pub const INTERACTION_COLUMNS: &[&str] = &[
    "id",
    "at",
    "kind",
    "initiator",
    "participants",
    "participant_ids",
    "summary",
    "notes",
    "project",
    "exchanges",
    "follow_ups",
    "created",
    "updated",
    "deleted",
];

fn utc(ms: TimestampMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn local(ms: TimestampMs, offset_minutes: i16) -> String {
    let offset = FixedOffset::east_opt(i32::from(offset_minutes) * 60);
    match (DateTime::<Utc>::from_timestamp_millis(ms), offset) {
        (Some(t), Some(o)) => t
            .with_timezone(&o)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        _ => utc(ms),
    }
}

fn points(list: &[ContactPoint]) -> String {
    list.iter()
        .map(|p| {
            if p.label.is_empty() {
                p.value.clone()
            } else {
                format!("{} ({})", p.value, p.label)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn partial_date(d: PartialDate) -> String {
    match d.year {
        Some(y) => format!("{y:04}-{:02}-{:02}", d.month, d.day),
        None => format!("--{:02}-{:02}", d.month, d.day),
    }
}

fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Writes contacts, one row each, with a header row of [`CONTACT_COLUMNS`].
pub fn write_contacts_csv<W: Write>(out: W, contacts: &[Contact]) -> Result<(), CsvError> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CONTACT_COLUMNS)?;
    for c in contacts {
        w.write_record([
            c.id.to_string(),
            c.name.clone(),
            opt(c.given_name.as_ref()),
            opt(c.family_name.as_ref()),
            opt(c.organisation.as_ref()),
            opt(c.role.as_ref()),
            opt(c.discipline.as_ref()),
            c.seniority.to_string(),
            opt(c.inside_org),
            join(c.circles.iter().map(|x| x.as_str())),
            join(&c.tags),
            points(&c.emails),
            points(&c.phones),
            join(&c.urls),
            opt(c.how_we_met.as_ref()),
            opt(c.first_met),
            opt(c.birthday.map(partial_date)),
            c.notes.clone(),
            opt(c.cadence_days),
            c.archived.to_string(),
            opt(c.merged_into),
            utc(c.created_ms),
            utc(c.updated_ms),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Writes interactions, one row each, with a header row of
/// [`INTERACTION_COLUMNS`]; `contacts` and `projects` give the names shown.
pub fn write_interactions_csv<W: Write>(
    out: W,
    interactions: &[Interaction],
    contacts: &[Contact],
    projects: &[Project],
) -> Result<(), CsvError> {
    let names: HashMap<ContactId, &str> =
        contacts.iter().map(|c| (c.id, c.name.as_str())).collect();
    let project_names: HashMap<ProjectId, &str> =
        projects.iter().map(|p| (p.id, p.name.as_str())).collect();
    let name_of = |id: &ContactId| {
        names
            .get(id)
            .map_or_else(|| id.to_string(), |n| n.to_string())
    };
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(INTERACTION_COLUMNS)?;
    for i in interactions {
        let exchanges = join(i.exchanges.iter().map(|e| {
            let with = e
                .with
                .as_ref()
                .map_or_else(|| "everyone".to_string(), name_of);
            let dir = match e.direction {
                kith_model::model::Direction::Gave => "gave",
                kith_model::model::Direction::Received => "received",
            };
            let prep = if dir == "gave" { "to" } else { "from" };
            format!("{dir} {} {prep} {with}", e.what)
        }));
        let follow_ups = join(i.follow_ups.values().map(|f| {
            let mut s = f.text.clone();
            if let Some(d) = f.due {
                s.push_str(&format!(" (due {d})"));
            }
            if f.done_ms.is_some() {
                s.push_str(" [done]");
            }
            s
        }));
        w.write_record([
            i.id.to_string(),
            local(i.at_ms, i.offset_minutes),
            i.kind.to_string(),
            i.initiator.to_string(),
            join(i.participants.iter().map(name_of)),
            join(i.participants.iter().map(|p| p.to_string())),
            i.summary.clone(),
            i.notes.clone(),
            i.project
                .map(|p| {
                    project_names
                        .get(&p)
                        .map_or_else(|| p.to_string(), |n| n.to_string())
                })
                .unwrap_or_default(),
            exchanges,
            follow_ups,
            utc(i.created_ms),
            utc(i.updated_ms),
            opt(i.deleted_ms.map(utc)),
        ])?;
    }
    w.flush()?;
    Ok(())
}
