//! `kith contact add|edit|show|list|archive|merge`.

use std::collections::BTreeSet;

use kith_core::model::{Circle, Contact, ContactPoint, Interaction, Seniority};
use kith_core::{ContactPatch, ContactQuery, ContactSort, ContactStats, NewContact, TimelineQuery};
use serde::Serialize;

use super::{Contacts, Ctx, clearable, op_error, parse_vocab, parse_vocab_opt, store_failure};
use crate::args::{ContactCmd, ContactFields};
use crate::error::{CliError, CliResult};
use crate::render::{Table, relative_time, when_local};

/// Interactions shown by `contact show`.
const SHOW_RECENT_MAX: usize = 10;

pub(super) fn run(ctx: &mut Ctx, cmd: ContactCmd) -> CliResult<()> {
    match cmd {
        ContactCmd::Add { name, fields } => add(ctx, name, fields),
        ContactCmd::Edit {
            contact,
            name,
            fields,
            remove_circles,
            remove_tags,
            remove_emails,
            remove_phones,
        } => edit(
            ctx,
            &contact,
            name,
            fields,
            Removals {
                circles: remove_circles,
                tags: remove_tags,
                emails: remove_emails,
                phones: remove_phones,
            },
        ),
        ContactCmd::Show { contact } => show(ctx, &contact),
        ContactCmd::List { all, sort, limit } => list(ctx, all, &sort, limit),
        ContactCmd::Archive { contact, undo } => archive(ctx, &contact, undo),
        ContactCmd::Merge { duplicate, into } => merge(ctx, &duplicate, &into),
        ContactCmd::Unmerge { contact } => unmerge(ctx, &contact),
    }
}

fn circles(list: &[String]) -> CliResult<BTreeSet<Circle>> {
    list.iter().map(|c| parse_vocab::<Circle>(c)).collect()
}

fn points(list: &[String]) -> Vec<ContactPoint> {
    list.iter()
        .map(|v| ContactPoint {
            value: v.clone(),
            label: String::new(),
        })
        .collect()
}

fn inside(fields: &ContactFields) -> Option<bool> {
    match (fields.inside, fields.outside) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

fn add(ctx: &mut Ctx, name: String, f: ContactFields) -> CliResult<()> {
    let new = NewContact {
        name,
        organisation: f.org.clone(),
        role: f.role.clone(),
        discipline: f.discipline.clone(),
        seniority: parse_vocab_opt::<Seniority>(f.seniority.as_deref())?,
        inside_org: inside(&f),
        circles: circles(&f.circles)?,
        tags: f.tags.iter().cloned().collect(),
        emails: points(&f.emails),
        phones: points(&f.phones),
        how_we_met: f.how_we_met.clone(),
        notes: f.notes.clone().unwrap_or_default(),
        cadence_days: f.cadence_days,
        ..NewContact::default()
    };
    let c = ctx.store.add_contact(new).map_err(op_error)?;
    if ctx.json {
        ctx.out.json(&c)?;
        return Ok(());
    }
    ctx.out.line(format!("Added {} ({})", c.name, c.id))?;
    // Say so right away when the new contact looks like someone already there.
    let pairs = ctx.store.likely_duplicates().map_err(store_failure)?;
    let contacts = Contacts::load(&ctx.store)?;
    for p in pairs.iter().filter(|p| p.a == c.id || p.b == c.id) {
        let other = if p.a == c.id { p.b } else { p.a };
        let why: Vec<String> = p.reasons.iter().map(super::query::reason_text).collect();
        ctx.out.line(format!(
            "  looks like {} ({other}): {}\n    merge with `kith contact merge {} --into {other}`",
            contacts.name(other),
            why.join(", "),
            c.id
        ))?;
    }
    Ok(())
}

struct Removals {
    circles: Vec<String>,
    tags: Vec<String>,
    emails: Vec<String>,
    phones: Vec<String>,
}

fn edit(
    ctx: &mut Ctx,
    given: &str,
    name: Option<String>,
    f: ContactFields,
    rm: Removals,
) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let id = contacts.resolve(given)?;
    let current = contacts
        .get(id)
        .cloned()
        .ok_or_else(|| CliError::input(format!("unknown contact '{given}'")))?;
    let mut patch = ContactPatch {
        name,
        organisation: clearable(f.org),
        role: clearable(f.role),
        discipline: clearable(f.discipline),
        seniority: parse_vocab_opt::<Seniority>(f.seniority.as_deref())?,
        how_we_met: clearable(f.how_we_met),
        notes: f.notes,
        ..ContactPatch::default()
    };
    if f.inside || f.outside {
        patch.inside_org = Some(inside_flags(f.inside, f.outside));
    }
    if let Some(days) = f.cadence_days {
        // 0 clears the contact's own cadence (the circle default applies again).
        patch.cadence_days = Some((days > 0).then_some(days));
    }
    let add_c = circles(&f.circles)?;
    let rm_c = circles(&rm.circles)?;
    if !add_c.is_empty() || !rm_c.is_empty() {
        let mut set = current.circles.clone();
        set.extend(add_c);
        set.retain(|c| !rm_c.contains(c));
        patch.circles = Some(set);
    }
    if !f.tags.is_empty() || !rm.tags.is_empty() {
        let mut set = current.tags.clone();
        set.extend(f.tags.iter().map(|t| t.trim().to_string()));
        for t in &rm.tags {
            if !set.remove(t.trim()) {
                return Err(CliError::input(format!(
                    "{} has no tag '{t}'",
                    current.name
                )));
            }
        }
        patch.tags = Some(set);
    }
    patch.emails = edit_points(&current, "email", &current.emails, &f.emails, &rm.emails)?;
    patch.phones = edit_points(&current, "phone", &current.phones, &f.phones, &rm.phones)?;
    let c = ctx.store.edit_contact(id, patch).map_err(op_error)?;
    if ctx.json {
        ctx.out.json(&c)?;
    } else {
        ctx.out.line(format!("Updated {} ({})", c.name, c.id))?;
    }
    Ok(())
}

fn inside_flags(inside: bool, outside: bool) -> Option<bool> {
    match (inside, outside) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

fn edit_points(
    contact: &Contact,
    what: &str,
    current: &[ContactPoint],
    add: &[String],
    remove: &[String],
) -> CliResult<Option<Vec<ContactPoint>>> {
    if add.is_empty() && remove.is_empty() {
        return Ok(None);
    }
    let mut list = current.to_vec();
    for r in remove {
        let before = list.len();
        list.retain(|p| p.value.trim() != r.trim());
        if list.len() == before {
            return Err(CliError::input(format!(
                "{} has no {what} '{r}'",
                contact.name
            )));
        }
    }
    for a in add {
        if !list.iter().any(|p| p.value.trim() == a.trim()) {
            list.push(ContactPoint {
                value: a.clone(),
                label: String::new(),
            });
        }
    }
    Ok(Some(list))
}

/// JSON of `contact show`.
#[derive(Debug, Serialize)]
struct ContactView<'a> {
    contact: &'a Contact,
    stats: &'a ContactStats,
    /// The contact this one was merged into, by name.
    merged_into_name: Option<String>,
    recent: Vec<super::query::TimelineEntry<'a>>,
}

fn show(ctx: &mut Ctx, given: &str) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let id = contacts.resolve(given)?;
    let c = contacts
        .get(id)
        .ok_or_else(|| CliError::input(format!("unknown contact '{given}'")))?;
    let stats = ctx.store.contact_stats(id).map_err(store_failure)?;
    let recent: Vec<Interaction> = ctx
        .store
        .timeline(&TimelineQuery {
            contact: Some(id),
            limit: SHOW_RECENT_MAX,
            ..TimelineQuery::default()
        })
        .map_err(op_error)?;
    let settings = ctx.store.settings().map_err(store_failure)?;
    if ctx.json {
        let view = ContactView {
            contact: c,
            stats: &stats,
            merged_into_name: c.merged_into.map(|m| contacts.name(m)),
            recent: recent
                .iter()
                .map(|i| super::query::TimelineEntry::new(i, &contacts))
                .collect(),
        };
        ctx.out.json(&view)?;
        return Ok(());
    }
    let now = ctx.clock.now_ms();
    let mut t = Table::new(&["", ""]);
    let mut field = |k: &str, v: String| {
        if !v.is_empty() {
            t.row(vec![k.to_string(), v]);
        }
    };
    field("id", c.id.to_string());
    field("organisation", c.organisation.clone().unwrap_or_default());
    field("role", c.role.clone().unwrap_or_default());
    field("discipline", c.discipline.clone().unwrap_or_default());
    field("seniority", c.seniority.to_string());
    field(
        "inside my org",
        match c.inside_org {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
    );
    field("circles", join(c.circles.iter().map(|x| x.to_string())));
    field("tags", join(c.tags.iter().cloned()));
    field("emails", join(c.emails.iter().map(|p| p.value.clone())));
    field("phones", join(c.phones.iter().map(|p| p.value.clone())));
    field("how we met", c.how_we_met.clone().unwrap_or_default());
    field(
        "cadence",
        match (c.cadence_days, settings.cadence_for(c)) {
            (Some(d), _) => format!("every {d} days"),
            (None, Some(d)) => format!("every {d} days (circle default)"),
            (None, None) => String::new(),
        },
    );
    field(
        "last seen",
        stats
            .last_interaction_ms
            .map_or_else(|| "never".to_string(), |ms| relative_time(ms, now)),
    );
    field("interactions", stats.interaction_count.to_string());
    if c.archived {
        field("archived", "yes".into());
    }
    if let Some(m) = c.merged_into {
        field("merged into", format!("{} ({m})", contacts.name(m)));
    }
    if !c.merged_from.is_empty() {
        field(
            "merged from",
            join(
                c.merged_from
                    .iter()
                    .map(|m| format!("{} ({m})", contacts.name(*m))),
            ),
        );
    }
    // Values a merged duplicate got after (or while) it was merged: shown
    // so the user can pick one with `kith contact edit`.
    for k in &c.conflicts {
        let value = k.value.lines().next().unwrap_or_default();
        field(
            "conflict",
            format!(
                "{} is also '{value}' on {} ({})",
                k.field,
                contacts.name(k.from),
                k.from
            ),
        );
    }
    ctx.out.line(&c.name)?;
    // The table's header row is blank for a key/value listing: skip it.
    for line in t.render().into_iter().skip(1) {
        ctx.out.line(format!("  {line}"))?;
    }
    if !c.notes.trim().is_empty() {
        ctx.out.line("  notes:")?;
        for l in c.notes.lines() {
            ctx.out.line(format!("    {l}"))?;
        }
    }
    if !recent.is_empty() {
        ctx.out.line("")?;
        ctx.out.line("Recent interactions")?;
        let mut t = Table::new(&["WHEN", "KIND", "SUMMARY", "ID"]);
        for i in &recent {
            t.row(vec![
                format!(
                    "{} ({})",
                    when_local(i.at_ms, &ctx.clock),
                    relative_time(i.at_ms, now)
                ),
                i.kind.to_string(),
                i.summary.clone(),
                i.id.to_string(),
            ]);
        }
        for line in t.render() {
            ctx.out.line(format!("  {line}"))?;
        }
    }
    Ok(())
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// JSON of one `contact list` row: the record plus its stats.
#[derive(Debug, Serialize)]
struct ListRow<'a> {
    #[serde(flatten)]
    contact: &'a Contact,
    last_interaction_ms: Option<i64>,
    interaction_count: u64,
}

/// Rows of a contact table unless --limit says otherwise (scripts get everything).
const LIST_TABLE_ROWS_DEFAULT: usize = 200;

fn list(ctx: &mut Ctx, all: bool, sort: &str, limit: Option<usize>) -> CliResult<()> {
    let limit = limit.unwrap_or(if ctx.json {
        kith_core::ops::PAGE_MAX
    } else {
        LIST_TABLE_ROWS_DEFAULT
    });
    let q = ContactQuery {
        sort: if sort == "recent" {
            ContactSort::LastInteraction
        } else {
            ContactSort::Name
        },
        include_archived: all,
        offset: 0,
        limit,
    };
    let list = ctx.store.contacts(&q).map_err(store_failure)?;
    let stats = ctx.store.all_contact_stats().map_err(store_failure)?;
    let none = ContactStats {
        last_interaction_ms: None,
        interaction_count: 0,
    };
    if ctx.json {
        let rows: Vec<ListRow<'_>> = list
            .iter()
            .map(|c| {
                let s = stats.get(&c.id).unwrap_or(&none);
                ListRow {
                    contact: c,
                    last_interaction_ms: s.last_interaction_ms,
                    interaction_count: s.interaction_count,
                }
            })
            .collect();
        ctx.out.json(&rows)?;
        return Ok(());
    }
    if list.is_empty() {
        ctx.out
            .line("No contacts yet: add one with `kith contact add NAME`.")?;
        return Ok(());
    }
    let now = ctx.clock.now_ms();
    let mut t = Table::new(&[
        "NAME",
        "ORGANISATION",
        "ROLE",
        "CIRCLES",
        "LAST SEEN",
        "#",
        "ID",
    ]);
    for c in &list {
        let s = stats.get(&c.id).unwrap_or(&none);
        let mut name = c.name.clone();
        if c.merged_into.is_some() {
            name.push_str(" (merged)");
        } else if c.archived {
            name.push_str(" (archived)");
        }
        t.row(vec![
            name,
            c.organisation.clone().unwrap_or_default(),
            c.role.clone().unwrap_or_default(),
            join(c.circles.iter().map(|x| x.to_string())),
            s.last_interaction_ms
                .map_or_else(|| "never".into(), |ms| relative_time(ms, now)),
            s.interaction_count.to_string(),
            c.id.to_string(),
        ]);
    }
    ctx.out.table(&t)?;
    Ok(())
}

fn archive(ctx: &mut Ctx, given: &str, undo: bool) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let id = contacts.resolve(given)?;
    let c = if undo {
        ctx.store.unarchive_contact(id)
    } else {
        ctx.store.archive_contact(id)
    }
    .map_err(op_error)?;
    if ctx.json {
        ctx.out.json(&c)?;
    } else if undo {
        ctx.out.line(format!("Unarchived {} ({})", c.name, c.id))?;
    } else {
        ctx.out.line(format!(
            "Archived {} ({}); `kith contact archive --undo` brings it back",
            c.name, c.id
        ))?;
    }
    Ok(())
}

fn merge(ctx: &mut Ctx, duplicate: &str, into: &str) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let loser = contacts.resolve(duplicate)?;
    let winner = contacts.resolve(into)?;
    let c = ctx.store.merge_contacts(winner, loser).map_err(op_error)?;
    if ctx.json {
        ctx.out.json(&c)?;
    } else {
        ctx.out.line(format!(
            "Merged {} ({loser}) into {} ({}): its history now belongs to {}",
            contacts.name(loser),
            c.name,
            c.id,
            c.name
        ))?;
    }
    Ok(())
}

fn unmerge(ctx: &mut Ctx, given: &str) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let id = contacts.resolve_merged(given)?;
    let c = ctx.store.unmerge_contact(id).map_err(op_error)?;
    if ctx.json {
        ctx.out.json(&c)?;
    } else {
        ctx.out.line(format!(
            "Unmerged {} ({}): it is a separate contact again, with its own history",
            c.name, c.id
        ))?;
    }
    Ok(())
}
