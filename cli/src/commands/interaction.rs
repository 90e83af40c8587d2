//! `kith log` (the headline flow: right after a meeting) and
//! `kith interaction show|edit|delete|undelete`.

use std::collections::BTreeSet;

use kith_core::model::{Direction, ExchangeWhat, Initiator, Interaction, InteractionKind};
use kith_core::{
    ContactId, InteractionId, InteractionPatch, NewExchange, NewFollowUp, NewInteraction,
    ParticipantRef,
};

use super::query::TimelineEntry;
use super::{Contacts, Ctx, misc, op_error, parse_vocab, parse_vocab_opt};
use crate::args::{InteractionCmd, LogArgs};
use crate::error::{CliError, CliResult};
use crate::render::{relative_due, relative_time, when_local};
use crate::resolve::{Named, ResolveError, normalise, resolve};
use crate::when::{parse_date, parse_time};

/// A participant as typed, and what it resolved to.
struct Participant {
    typed: String,
    reference: ParticipantRef,
    /// The existing contact's name, when it resolved to one.
    name: Option<String>,
}

fn participants(
    contacts: &Contacts,
    with: &[String],
    create_missing: bool,
) -> CliResult<Vec<Participant>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for typed in with {
        let found = if create_missing {
            contacts.resolve_exact(typed)?
        } else {
            contacts.resolve_opt(typed)?
        };
        match found {
            Some(id) => {
                let id = contacts.resolve_live(&id.to_string())?;
                out.push(Participant {
                    typed: typed.clone(),
                    reference: ParticipantRef::Id(id),
                    name: Some(contacts.name(id)),
                });
            }
            None if create_missing => {
                if typed.trim().is_empty() {
                    return Err(CliError::input("a participant name must not be empty"));
                }
                out.push(Participant {
                    typed: typed.clone(),
                    reference: ParticipantRef::Name(typed.trim().to_string()),
                    name: None,
                });
            }
            None => missing.push(format!("'{typed}'")),
        }
    }
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "contact"
        } else {
            "contacts"
        };
        return Err(CliError::input(format!(
            "unknown {noun} {} (add with `kith contact add`, or pass --create-missing)",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// Identity of a participant reference: the contact id, or the normalised
/// name a missing contact will be created under (the engine creates one
/// contact per normalised name).
fn participant_key(r: &ParticipantRef) -> String {
    match r {
        ParticipantRef::Id(id) => id.to_string(),
        ParticipantRef::Name(n) => format!("name:{}", normalise(n)),
    }
}

/// `WHAT` or `WHAT:CONTACT`, CONTACT being one of the participants.
fn exchange(spec: &str, direction: Direction, people: &[Participant]) -> CliResult<NewExchange> {
    let (what, with) = match spec.split_once(':') {
        Some((w, c)) => (w, Some(c.trim())),
        None => (spec, None),
    };
    let what = parse_vocab::<ExchangeWhat>(what)?;
    let with = match with {
        None => None,
        Some("") => {
            return Err(CliError::input(format!(
                "'{spec}': name a participant after ':' (or leave out ':' for all)"
            )));
        }
        Some(c) => {
            // Resolve among the participants with the same rules as contacts
            // (id, exact name, prefix, word prefixes); the same person typed
            // twice (`--with zoe --with Zoë`) is one candidate.
            let mut unique: Vec<&Participant> = people.iter().collect();
            unique.sort_by_key(|p| participant_key(&p.reference));
            unique.dedup_by_key(|p| participant_key(&p.reference));
            let candidates: Vec<Named<'_, ParticipantRef>> = unique
                .iter()
                .map(|p| Named {
                    id: match &p.reference {
                        ParticipantRef::Id(id) => id.to_string(),
                        ParticipantRef::Name(_) => String::new(),
                    },
                    name: p.name.as_deref().unwrap_or(p.typed.as_str()),
                    detail: None,
                    item: p.reference.clone(),
                })
                .collect();
            match resolve("participant", c, &candidates) {
                Ok(r) => Some(r),
                Err(ResolveError::Unknown { .. }) => {
                    return Err(CliError::input(format!(
                        "'{spec}': '{c}' is not one of the participants given with --with"
                    )));
                }
                Err(e) => return Err(CliError::input(format!("'{spec}': {e}"))),
            }
        }
    };
    Ok(NewExchange {
        what,
        direction,
        with,
    })
}

pub(super) fn log(ctx: &mut Ctx, a: LogArgs) -> CliResult<()> {
    if a.summary.trim().is_empty() {
        return Err(CliError::input("the summary must not be empty"));
    }
    let kind = parse_vocab::<InteractionKind>(&a.kind)?;
    let initiator = parse_vocab::<Initiator>(&a.initiator)?;
    let at = match &a.at {
        Some(t) => parse_time(t, &ctx.clock)?,
        None => ctx.clock.now_instant(),
    };
    if a.dues.len() > a.follow_ups.len() {
        return Err(CliError::input(
            "--due given without a --follow-up to attach it to",
        ));
    }
    let mut follow_ups = Vec::new();
    for (i, text) in a.follow_ups.iter().enumerate() {
        let due = a
            .dues
            .get(i)
            .map(|d| parse_date(d, &ctx.clock))
            .transpose()?;
        if text.trim().is_empty() {
            return Err(CliError::input("a follow-up must not be empty"));
        }
        follow_ups.push(NewFollowUp {
            text: text.clone(),
            due,
        });
    }
    let project = match &a.project {
        Some(p) => Some(misc::resolve_project(&ctx.store, p)?),
        None => None,
    };
    let contacts = Contacts::load(&ctx.store)?;
    let people = participants(&contacts, &a.with, a.create_missing)?;
    let mut exchanges = Vec::new();
    for g in &a.gave {
        exchanges.push(exchange(g, Direction::Gave, &people)?);
    }
    for g in &a.got {
        exchanges.push(exchange(g, Direction::Received, &people)?);
    }
    let new = NewInteraction {
        at_ms: Some(at.at_ms),
        offset_minutes: at.offset_minutes,
        kind,
        initiator,
        participants: people.iter().map(|p| p.reference.clone()).collect(),
        summary: a.summary,
        notes: a.notes.unwrap_or_default(),
        project,
        exchanges,
        follow_ups,
        create_missing: a.create_missing,
    };
    let i = ctx.store.log_interaction(new).map_err(op_error)?;
    let contacts = Contacts::load(&ctx.store)?;
    if ctx.json {
        ctx.out.json(&TimelineEntry::new(&i, &contacts))?;
        return Ok(());
    }
    let created: Vec<&str> = people
        .iter()
        .filter(|p| p.name.is_none())
        .map(|p| p.typed.trim())
        .collect();
    ctx.out.line(format!(
        "Logged {} with {} ({}, {})",
        i.kind,
        contacts.names(i.participants.iter().copied()).join(", "),
        when_local(i.at_ms, &ctx.clock),
        relative_time(i.at_ms, ctx.clock.now_ms()),
    ))?;
    ctx.out.line(format!("  id {}", i.id))?;
    if !created.is_empty() {
        ctx.out
            .line(format!("  new contacts: {}", created.join(", ")))?;
    }
    print_exchanges_and_followups(ctx, &i, &contacts)?;
    Ok(())
}

fn print_exchanges_and_followups(
    ctx: &mut Ctx,
    i: &Interaction,
    contacts: &Contacts,
) -> CliResult<()> {
    for e in &i.exchanges {
        let verb = match e.direction {
            Direction::Gave => "gave",
            Direction::Received => "received",
        };
        let with = e
            .with
            .map_or_else(|| "everyone".to_string(), |c| contacts.name(c));
        ctx.out.line(format!("  {verb} {} ({with})", e.what))?;
    }
    let today = ctx.clock.today();
    for f in i.follow_ups.values() {
        let due = f.due.map_or_else(String::new, |d| {
            format!(", due {d} ({})", relative_due(d, today))
        });
        let state = if f.done_ms.is_some() { "done" } else { "open" };
        ctx.out.line(format!(
            "  follow-up [{state}] {}{due}  (id {})",
            f.text, f.id
        ))?;
    }
    Ok(())
}

pub(super) fn run(ctx: &mut Ctx, cmd: InteractionCmd) -> CliResult<()> {
    match cmd {
        InteractionCmd::Show { id } => show(ctx, &id),
        InteractionCmd::Edit {
            id,
            summary,
            notes,
            kind,
            at,
            initiator,
            project,
            no_project,
            with,
            without,
            follow_up,
            due,
        } => {
            let id: InteractionId = id.parse()?;
            let current = ctx.store.interaction(id).map_err(op_error)?;
            let mut patch = InteractionPatch {
                summary,
                notes,
                kind: parse_vocab_opt::<InteractionKind>(kind.as_deref())?,
                initiator: parse_vocab_opt::<Initiator>(initiator.as_deref())?,
                ..InteractionPatch::default()
            };
            if patch
                .summary
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err(CliError::input("the summary must not be empty"));
            }
            if let Some(t) = at {
                let at = parse_time(&t, &ctx.clock)?;
                patch.at_ms = Some(at.at_ms);
                patch.offset_minutes = Some(at.offset_minutes);
            }
            if no_project {
                patch.project = Some(None);
            } else if let Some(p) = project {
                patch.project = Some(Some(misc::resolve_project(&ctx.store, &p)?));
            }
            if !with.is_empty() || !without.is_empty() {
                let contacts = Contacts::load(&ctx.store)?;
                let mut set: BTreeSet<ContactId> = current.participants.clone();
                for w in &with {
                    set.insert(contacts.resolve_live(w)?);
                }
                for w in &without {
                    let id = contacts.resolve(w)?;
                    if !set.remove(&id) {
                        return Err(CliError::input(format!(
                            "{} is not a participant",
                            contacts.name(id)
                        )));
                    }
                }
                if set.is_empty() {
                    return Err(CliError::input(
                        "an interaction needs at least one participant",
                    ));
                }
                patch.participants = Some(set);
            }
            let follow_up = match follow_up {
                Some(text) => {
                    if text.trim().is_empty() {
                        return Err(CliError::input("a follow-up must not be empty"));
                    }
                    if text.trim().chars().count() > kith_core::ops::LINE_CHARS_MAX {
                        return Err(CliError::input(format!(
                            "a follow-up must be at most {} characters",
                            kith_core::ops::LINE_CHARS_MAX
                        )));
                    }
                    let due = due.map(|d| parse_date(&d, &ctx.clock)).transpose()?;
                    Some(NewFollowUp { text, due })
                }
                None => None,
            };
            // Validate the follow-up fully before the first write so a rejected
            // command never leaves half of its changes behind.
            let mut i = ctx.store.edit_interaction(id, patch).map_err(op_error)?;
            if let Some(f) = follow_up {
                ctx.store.add_follow_up(id, f).map_err(op_error)?;
                i = ctx.store.interaction(id).map_err(op_error)?;
            }
            let contacts = Contacts::load(&ctx.store)?;
            if ctx.json {
                ctx.out.json(&TimelineEntry::new(&i, &contacts))?;
            } else {
                ctx.out
                    .line(format!("Updated interaction {}: {}", i.id, i.summary))?;
            }
            Ok(())
        }
        InteractionCmd::Delete { id } => {
            let id: InteractionId = id.parse()?;
            let i = ctx.store.delete_interaction(id).map_err(op_error)?;
            let contacts = Contacts::load(&ctx.store)?;
            if ctx.json {
                ctx.out.json(&TimelineEntry::new(&i, &contacts))?;
            } else {
                ctx.out.line(format!(
                    "Deleted interaction {} ({}); `kith interaction undelete {}` brings it back",
                    i.id, i.summary, i.id
                ))?;
            }
            Ok(())
        }
        InteractionCmd::Undelete { id } => {
            let id: InteractionId = id.parse()?;
            let i = ctx.store.undelete_interaction(id).map_err(op_error)?;
            let contacts = Contacts::load(&ctx.store)?;
            if ctx.json {
                ctx.out.json(&TimelineEntry::new(&i, &contacts))?;
            } else {
                ctx.out
                    .line(format!("Restored interaction {} ({})", i.id, i.summary))?;
            }
            Ok(())
        }
    }
}

fn show(ctx: &mut Ctx, id: &str) -> CliResult<()> {
    let id: InteractionId = id.parse()?;
    let i = ctx.store.interaction(id).map_err(op_error)?;
    let contacts = Contacts::load(&ctx.store)?;
    if ctx.json {
        ctx.out.json(&TimelineEntry::new(&i, &contacts))?;
        return Ok(());
    }
    let deleted = if i.is_deleted() { "  [deleted]" } else { "" };
    ctx.out.line(format!("{}{deleted}", i.summary))?;
    ctx.out.line(format!("  id         {}", i.id))?;
    ctx.out.line(format!(
        "  when       {} ({})",
        when_local(i.at_ms, &ctx.clock),
        relative_time(i.at_ms, ctx.clock.now_ms())
    ))?;
    ctx.out.line(format!("  kind       {}", i.kind))?;
    ctx.out.line(format!("  initiator  {}", i.initiator))?;
    ctx.out.line(format!(
        "  with       {}",
        contacts.names(i.participants.iter().copied()).join(", ")
    ))?;
    if let Some(p) = i.project {
        let name = ctx
            .store
            .project(p)
            .map(|p| p.name)
            .unwrap_or_else(|_| p.to_string());
        ctx.out.line(format!("  project    {name}"))?;
    }
    print_exchanges_and_followups(ctx, &i, &contacts)?;
    if !i.notes.trim().is_empty() {
        ctx.out.line("  notes:")?;
        for l in i.notes.lines() {
            ctx.out.line(format!("    {l}"))?;
        }
    }
    for (n, other) in i.notes_conflicts.iter().enumerate() {
        ctx.out.line(format!(
            "  conflicting notes #{} from another device (resolve with `kith interaction edit {} --notes ...`):",
            n + 1,
            i.id
        ))?;
        for l in other.lines() {
            ctx.out.line(format!("    {l}"))?;
        }
    }
    Ok(())
}
