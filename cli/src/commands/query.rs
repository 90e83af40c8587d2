//! The read commands: `kith timeline`, `kith search`, `kith followups`
//! (which also completes and reopens), `kith duplicates`.

use kith_core::model::{FollowUp, Interaction};
use kith_core::{ContactId, FollowUpFilter, FollowUpId, InteractionId, TimelineQuery};
use serde::Serialize;

use super::{Contacts, Ctx, op_error, store_failure};
use crate::args::{FollowupsArgs, SearchArgs, TimelineArgs};
use crate::error::{CliError, CliResult};
use crate::render::{Table, relative_due, relative_time, when_local};
use crate::when::parse_date;

/// JSON of one interaction: the record plus its participants' names.
#[derive(Debug, Serialize)]
pub(crate) struct TimelineEntry<'a> {
    #[serde(flatten)]
    pub(crate) interaction: &'a Interaction,
    /// Names of `participants`, in the same order.
    pub(crate) participant_names: Vec<String>,
}

impl<'a> TimelineEntry<'a> {
    pub(crate) fn new(i: &'a Interaction, contacts: &Contacts) -> TimelineEntry<'a> {
        TimelineEntry {
            interaction: i,
            participant_names: contacts.names(i.participants.iter().copied()),
        }
    }
}

fn timeline_table(ctx: &Ctx, list: &[Interaction], contacts: &Contacts) -> Table {
    let now = ctx.clock.now_ms();
    let mut t = Table::new(&["WHEN", "", "KIND", "WITH", "SUMMARY", "ID"]);
    for i in list {
        let mut summary = i.summary.clone();
        if !i.notes_conflicts.is_empty() {
            summary = format!("[notes conflict] {summary}");
        }
        if i.is_deleted() {
            summary = format!("[deleted] {summary}");
        }
        t.row(vec![
            when_local(i.at_ms, &ctx.clock),
            relative_time(i.at_ms, now),
            i.kind.to_string(),
            contacts.names(i.participants.iter().copied()).join(", "),
            summary,
            i.id.to_string(),
        ]);
    }
    t
}

pub(super) fn timeline(ctx: &mut Ctx, a: TimelineArgs) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let contact = a
        .contact
        .as_deref()
        .map(|c| contacts.resolve(c))
        .transpose()?;
    let list = ctx
        .store
        .timeline(&TimelineQuery {
            contact,
            include_deleted: a.deleted,
            offset: 0,
            limit: a.limit,
        })
        .map_err(op_error)?;
    if ctx.json {
        let rows: Vec<TimelineEntry<'_>> = list
            .iter()
            .map(|i| TimelineEntry::new(i, &contacts))
            .collect();
        ctx.out.json(&rows)?;
        return Ok(());
    }
    if let Some(c) = contact {
        ctx.out.line(format!("Timeline of {}", contacts.name(c)))?;
    }
    if list.is_empty() {
        ctx.out
            .line("No interactions yet: log one with `kith log SUMMARY --with NAME`.")?;
        return Ok(());
    }
    let t = timeline_table(ctx, &list, &contacts);
    ctx.out.table(&t)?;
    Ok(())
}

/// JSON of `kith search`.
#[derive(Debug, Serialize)]
struct SearchView<'a> {
    query: &'a str,
    contacts: &'a [kith_core::model::Contact],
    interactions: Vec<TimelineEntry<'a>>,
}

pub(super) fn search(ctx: &mut Ctx, a: SearchArgs) -> CliResult<()> {
    if a.text.trim().is_empty() {
        return Err(CliError::input("the search text must not be empty"));
    }
    let found = ctx.store.search(&a.text, a.limit).map_err(store_failure)?;
    let contacts = Contacts::load(&ctx.store)?;
    if ctx.json {
        let view = SearchView {
            query: &a.text,
            contacts: &found.contacts,
            interactions: found
                .interactions
                .iter()
                .map(|i| TimelineEntry::new(i, &contacts))
                .collect(),
        };
        ctx.out.json(&view)?;
        return Ok(());
    }
    if found.contacts.is_empty() && found.interactions.is_empty() {
        ctx.out.line(format!("Nothing matches '{}'.", a.text))?;
        return Ok(());
    }
    if !found.contacts.is_empty() {
        ctx.out
            .line(format!("Contacts ({})", found.contacts.len()))?;
        let mut t = Table::new(&["NAME", "ORGANISATION", "ROLE", "ID"]);
        for c in &found.contacts {
            t.row(vec![
                c.name.clone(),
                c.organisation.clone().unwrap_or_default(),
                c.role.clone().unwrap_or_default(),
                c.id.to_string(),
            ]);
        }
        for line in t.render() {
            ctx.out.line(format!("  {line}"))?;
        }
    }
    if !found.interactions.is_empty() {
        if !found.contacts.is_empty() {
            ctx.out.line("")?;
        }
        ctx.out
            .line(format!("Interactions ({})", found.interactions.len()))?;
        let t = timeline_table(ctx, &found.interactions, &contacts);
        for line in t.render() {
            ctx.out.line(format!("  {line}"))?;
        }
    }
    Ok(())
}

/// JSON of one `kith followups` row.
#[derive(Debug, Serialize)]
struct FollowUpRow<'a> {
    #[serde(flatten)]
    follow_up: &'a FollowUp,
    interaction: InteractionId,
    interaction_at_ms: i64,
    summary: &'a str,
    participants: Vec<ContactId>,
    participant_names: Vec<String>,
    overdue: bool,
}

pub(super) fn followups(ctx: &mut Ctx, a: FollowupsArgs) -> CliResult<()> {
    if let Some(id) = a.done.as_deref().or(a.reopen.as_deref()) {
        return set_done(ctx, id, a.done.is_some());
    }
    let today = ctx.clock.today();
    let filter = match (&a.due_by, a.overdue) {
        (Some(d), _) => FollowUpFilter::DueBy(parse_date(d, &ctx.clock)?),
        (None, true) => FollowUpFilter::Overdue { today },
        (None, false) => FollowUpFilter::Open,
    };
    let mut items = ctx.store.follow_ups(filter).map_err(store_failure)?;
    items.truncate(a.limit);
    let contacts = Contacts::load(&ctx.store)?;
    if ctx.json {
        let rows: Vec<FollowUpRow<'_>> = items
            .iter()
            .map(|it| FollowUpRow {
                follow_up: &it.follow_up,
                interaction: it.interaction,
                interaction_at_ms: it.at_ms,
                summary: &it.summary,
                participants: it.participants.iter().copied().collect(),
                participant_names: contacts.names(it.participants.iter().copied()),
                overdue: it.follow_up.due.is_some_and(|d| d < today),
            })
            .collect();
        ctx.out.json(&rows)?;
        return Ok(());
    }
    if items.is_empty() {
        ctx.out.line(match (&a.due_by, a.overdue) {
            (Some(_), _) => "No follow-ups due by then.",
            (None, true) => "No overdue follow-ups.",
            (None, false) => "No open follow-ups.",
        })?;
        return Ok(());
    }
    let mut t = Table::new(&["DUE", "", "FOLLOW-UP", "WITH", "FROM", "ID"]);
    for it in &items {
        t.row(vec![
            it.follow_up
                .due
                .map_or_else(|| "-".into(), |d| d.to_string()),
            it.follow_up
                .due
                .map_or_else(String::new, |d| relative_due(d, today)),
            it.follow_up.text.clone(),
            contacts.names(it.participants.iter().copied()).join(", "),
            it.summary.clone(),
            it.follow_up.id.to_string(),
        ]);
    }
    ctx.out.table(&t)?;
    Ok(())
}

/// The interaction holding follow-up `fid`: the open follow-ups index first
/// (cheap, and where `--done` finds its target), else every interaction (a
/// done follow-up is not in the open index).
fn find_follow_up(ctx: &Ctx, fid: FollowUpId) -> CliResult<Option<InteractionId>> {
    let open = ctx
        .store
        .follow_ups(FollowUpFilter::Open)
        .map_err(store_failure)?;
    if let Some(it) = open.iter().find(|it| it.follow_up.id == fid) {
        return Ok(Some(it.interaction));
    }
    let all = ctx.store.all_interactions().map_err(store_failure)?;
    Ok(all
        .iter()
        .find(|i| i.follow_ups.contains_key(&fid))
        .map(|i| i.id))
}

/// Completes or reopens a follow-up given only its id: the interaction that
/// holds it is found through the index (follow-up ids are unique).
fn set_done(ctx: &mut Ctx, given: &str, done: bool) -> CliResult<()> {
    let fid: FollowUpId = given.parse()?;
    let iid = find_follow_up(ctx, fid)?
        .ok_or_else(|| CliError::input(format!("unknown follow-up '{given}'")))?;
    let f = if done {
        ctx.store.complete_follow_up(iid, fid)
    } else {
        ctx.store.reopen_follow_up(iid, fid)
    }
    .map_err(op_error)?;
    if ctx.json {
        ctx.out
            .json(&serde_json::json!({ "interaction": iid, "follow_up": f }))?;
    } else if done {
        ctx.out.line(format!(
            "Done: {} (`kith followups --reopen {}` reopens it)",
            f.text, f.id
        ))?;
    } else {
        ctx.out.line(format!("Reopened: {}", f.text))?;
    }
    Ok(())
}

/// JSON of one likely-duplicate pair.
#[derive(Debug, Serialize)]
struct DuplicateRow {
    a: ContactId,
    a_name: String,
    b: ContactId,
    b_name: String,
    /// Each reason as `{"kind": "same_email"|"same_phone"|"same_name", "value": ...}`.
    reasons: Vec<Reason>,
}

#[derive(Debug, Serialize)]
struct Reason {
    kind: &'static str,
    value: String,
}

fn reason(r: &kith_core::DuplicateReason) -> Reason {
    use kith_core::DuplicateReason as R;
    match r {
        R::SameEmail(v) => Reason {
            kind: "same_email",
            value: v.clone(),
        },
        R::SamePhone(v) => Reason {
            kind: "same_phone",
            value: v.clone(),
        },
        R::SameName(v) => Reason {
            kind: "same_name",
            value: v.clone(),
        },
    }
}

/// "same email ana@x.org", for sentences.
pub(crate) fn reason_text(r: &kith_core::DuplicateReason) -> String {
    let r = reason(r);
    format!("same {} {}", r.kind.trim_start_matches("same_"), r.value)
}

pub(super) fn duplicates(ctx: &mut Ctx) -> CliResult<()> {
    let pairs = ctx.store.likely_duplicates().map_err(store_failure)?;
    let contacts = Contacts::load(&ctx.store)?;
    let rows: Vec<DuplicateRow> = pairs
        .iter()
        .map(|p| DuplicateRow {
            a: p.a,
            a_name: contacts.name(p.a),
            b: p.b,
            b_name: contacts.name(p.b),
            reasons: p.reasons.iter().map(reason).collect(),
        })
        .collect();
    if ctx.json {
        ctx.out.json(&rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        ctx.out.line("No likely duplicates.")?;
        return Ok(());
    }
    let mut t = Table::new(&["CONTACT", "ID", "LIKELY SAME AS", "ID", "WHY"]);
    for r in &rows {
        let why = r
            .reasons
            .iter()
            .map(|x| x.kind.replace('_', " "))
            .collect::<Vec<_>>()
            .join(", ");
        t.row(vec![
            r.a_name.clone(),
            r.a.to_string(),
            r.b_name.clone(),
            r.b.to_string(),
            why,
        ]);
    }
    ctx.out.table(&t)?;
    ctx.out.line("")?;
    ctx.out
        .line("Merge a pair with `kith contact merge DUPLICATE_ID --into KEPT_ID`.")?;
    Ok(())
}
