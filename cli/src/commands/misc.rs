//! `kith project ...`, `kith goal ...`, `kith settings ...`, `kith reindex`.

use std::collections::BTreeSet;

use kith_core::model::{Circle, Goal, GoalStatus, Project, ProjectStatus, Settings};
use kith_core::{
    ContactId, GoalId, GoalPatch, NewGoal, NewProject, ProjectId, ProjectPatch, Store,
};
use serde::Serialize;

use super::{Contacts, Ctx, op_error, parse_vocab, parse_vocab_opt, store_failure};
use crate::args::{GoalCmd, ProjectCmd, SettingsCmd};
use crate::error::{CliError, CliResult};
use crate::render::Table;
use crate::resolve::{Named, resolve};

/// Resolves a project given by id or name.
pub(crate) fn resolve_project(store: &Store, given: &str) -> CliResult<ProjectId> {
    let all = store.all_projects().map_err(store_failure)?;
    let candidates: Vec<Named<'_, ProjectId>> = all
        .iter()
        .map(|p| Named {
            id: p.id.to_string(),
            name: &p.name,
            detail: Some(p.status.as_str()),
            item: p.id,
        })
        .collect();
    resolve("project", given, &candidates).map_err(CliError::input)
}

fn resolve_goal(store: &Store, given: &str) -> CliResult<GoalId> {
    let all = store.all_goals().map_err(store_failure)?;
    let candidates: Vec<Named<'_, GoalId>> = all
        .iter()
        .map(|g| Named {
            id: g.id.to_string(),
            name: &g.title,
            detail: Some(g.status.as_str()),
            item: g.id,
        })
        .collect();
    resolve("goal", given, &candidates).map_err(CliError::input)
}

pub(super) fn project(ctx: &mut Ctx, cmd: ProjectCmd) -> CliResult<()> {
    match cmd {
        ProjectCmd::Add {
            name,
            description,
            status,
        } => {
            let status = parse_vocab::<ProjectStatus>(&status)?;
            let p = ctx
                .store
                .add_project(NewProject {
                    name,
                    description,
                    status,
                })
                .map_err(op_error)?;
            if ctx.json {
                ctx.out.json(&p)?;
            } else {
                ctx.out
                    .line(format!("Added project {} ({})", p.name, p.id))?;
            }
        }
        ProjectCmd::Edit {
            project,
            name,
            description,
            status,
        } => {
            let id = resolve_project(&ctx.store, &project)?;
            let patch = ProjectPatch {
                name,
                description,
                status: parse_vocab_opt::<ProjectStatus>(status.as_deref())?,
            };
            let p = ctx.store.edit_project(id, patch).map_err(op_error)?;
            if ctx.json {
                ctx.out.json(&p)?;
            } else {
                ctx.out
                    .line(format!("Updated project {} ({})", p.name, p.id))?;
            }
        }
        ProjectCmd::List => {
            let mut all: Vec<Project> = ctx.store.all_projects().map_err(store_failure)?;
            all.sort_by_key(|p| p.name.to_lowercase());
            if ctx.json {
                ctx.out.json(&all)?;
            } else if all.is_empty() {
                ctx.out
                    .line("No projects yet: add one with `kith project add NAME`.")?;
            } else {
                let mut t = Table::new(&["NAME", "STATUS", "DESCRIPTION", "ID"]);
                for p in &all {
                    t.row(vec![
                        p.name.clone(),
                        p.status.to_string(),
                        p.description.clone(),
                        p.id.to_string(),
                    ]);
                }
                ctx.out.table(&t)?;
            }
        }
    }
    Ok(())
}

/// JSON of one goal: the record plus its contacts' names.
#[derive(Debug, Serialize)]
struct GoalRow<'a> {
    #[serde(flatten)]
    goal: &'a Goal,
    contact_names: Vec<String>,
}

fn resolve_all(contacts: &Contacts, given: &[String]) -> CliResult<BTreeSet<ContactId>> {
    given.iter().map(|c| contacts.resolve_live(c)).collect()
}

pub(super) fn goal(ctx: &mut Ctx, cmd: GoalCmd) -> CliResult<()> {
    let contacts = Contacts::load(&ctx.store)?;
    let (g, verb) = match cmd {
        GoalCmd::Add {
            title,
            priority,
            status,
            contacts: linked,
        } => {
            let new = NewGoal {
                title,
                priority,
                status: parse_vocab::<GoalStatus>(&status)?,
                contacts: resolve_all(&contacts, &linked)?,
            };
            (ctx.store.add_goal(new).map_err(op_error)?, "Added")
        }
        GoalCmd::Edit {
            goal,
            title,
            priority,
            status,
            contacts: add,
            remove_contacts,
        } => {
            let id = resolve_goal(&ctx.store, &goal)?;
            let current = ctx.store.goal(id).map_err(op_error)?;
            let mut patch = GoalPatch {
                title,
                priority,
                status: parse_vocab_opt::<GoalStatus>(status.as_deref())?,
                contacts: None,
            };
            if !add.is_empty() || !remove_contacts.is_empty() {
                let mut set = current.contacts.clone();
                set.extend(resolve_all(&contacts, &add)?);
                for r in &remove_contacts {
                    let cid = contacts.resolve(r)?;
                    if !set.remove(&cid) {
                        return Err(CliError::input(format!(
                            "{} is not linked to goal '{}'",
                            contacts.name(cid),
                            current.title
                        )));
                    }
                }
                patch.contacts = Some(set);
            }
            (ctx.store.edit_goal(id, patch).map_err(op_error)?, "Updated")
        }
        GoalCmd::List => {
            let mut all = ctx.store.all_goals().map_err(store_failure)?;
            all.sort_by(|a, b| {
                (a.status, a.priority, a.title.to_lowercase()).cmp(&(
                    b.status,
                    b.priority,
                    b.title.to_lowercase(),
                ))
            });
            if ctx.json {
                let rows: Vec<GoalRow<'_>> = all
                    .iter()
                    .map(|g| GoalRow {
                        goal: g,
                        contact_names: contacts.names(g.contacts.iter().copied()),
                    })
                    .collect();
                ctx.out.json(&rows)?;
            } else if all.is_empty() {
                ctx.out
                    .line("No goals yet: add one with `kith goal add TITLE --contact NAME`.")?;
            } else {
                let mut t = Table::new(&["P", "GOAL", "STATUS", "PEOPLE WHO CAN HELP", "ID"]);
                for g in &all {
                    t.row(vec![
                        g.priority.to_string(),
                        g.title.clone(),
                        g.status.to_string(),
                        contacts.names(g.contacts.iter().copied()).join(", "),
                        g.id.to_string(),
                    ]);
                }
                ctx.out.table(&t)?;
            }
            return Ok(());
        }
    };
    if ctx.json {
        ctx.out.json(&GoalRow {
            goal: &g,
            contact_names: contacts.names(g.contacts.iter().copied()),
        })?;
    } else {
        ctx.out
            .line(format!("{verb} goal {} ({})", g.title, g.id))?;
    }
    Ok(())
}

/// The setting names `kith settings set` accepts.
const SETTING_KEYS: &str = "my-organisation, my-discipline, my-emails, cadence.operational, cadence.personal, cadence.strategic, strategic-target, core-size";

fn optional_text(value: &str) -> Option<String> {
    let t = value.trim();
    (!t.is_empty() && !t.eq_ignore_ascii_case("none")).then(|| t.to_string())
}

/// Applies `key = value` to a copy of the settings.
fn apply_setting(mut s: Settings, key: &str, value: &str) -> CliResult<Settings> {
    let bad = |why: &str| CliError::input(format!("bad value '{value}' for {key}: {why}"));
    match key.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "my-organisation" | "my-organization" => s.my_organisation = optional_text(value),
        "my-discipline" => s.my_discipline = optional_text(value),
        // My own addresses, comma-separated (replaces the list): calendar attendees with them are me.
        "my-emails" | "my-email" => {
            let mut emails = std::collections::BTreeSet::new();
            for e in value
                .split(',')
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty() && e != "none")
            {
                if !e.contains('@') || e.chars().any(char::is_whitespace) {
                    return Err(bad("expected e-mail addresses separated by commas"));
                }
                emails.insert(e);
            }
            s.my_emails = emails;
        }
        "strategic-target" => {
            s.strategic_target = match optional_text(value) {
                None => None,
                Some(v) => {
                    let f: f64 = v
                        .parse()
                        .map_err(|_| bad("expected a number between 0 and 1"))?;
                    if !(0.0..=1.0).contains(&f) {
                        return Err(bad("expected a number between 0 and 1"));
                    }
                    Some(f)
                }
            }
        }
        "core-size" => {
            let n: u32 = value
                .trim()
                .parse()
                .map_err(|_| bad("expected a whole number from 1 to 1000"))?;
            if !(1..=1000).contains(&n) {
                return Err(bad("expected a whole number from 1 to 1000"));
            }
            s.core_size = n;
        }
        k if k.starts_with("cadence.") => {
            let circle = parse_vocab::<Circle>(&k["cadence.".len()..])?;
            match optional_text(value) {
                None => {
                    s.cadence_days.remove(&circle);
                }
                Some(v) => {
                    let days: u32 = v
                        .parse()
                        .map_err(|_| bad("expected a number of days from 1 to 3650"))?;
                    if !(1..=3650).contains(&days) {
                        return Err(bad("expected a number of days from 1 to 3650"));
                    }
                    s.cadence_days.insert(circle, days);
                }
            }
        }
        _ => {
            return Err(CliError::input(format!(
                "unknown setting '{key}' (expected one of: {SETTING_KEYS})"
            )));
        }
    }
    Ok(s)
}

fn print_settings(ctx: &mut Ctx, s: &Settings) -> CliResult<()> {
    if ctx.json {
        ctx.out.json(s)?;
        return Ok(());
    }
    let none = || "(not set)".to_string();
    let mut t = Table::new(&["SETTING", "VALUE"]);
    t.row(vec![
        "my-organisation".into(),
        s.my_organisation.clone().unwrap_or_else(none),
    ]);
    t.row(vec![
        "my-discipline".into(),
        s.my_discipline.clone().unwrap_or_else(none),
    ]);
    for c in Circle::ALL {
        t.row(vec![
            format!("cadence.{c}"),
            s.cadence_days
                .get(c)
                .map_or_else(none, |d| format!("{d} days")),
        ]);
    }
    t.row(vec![
        "strategic-target".into(),
        s.strategic_target.map_or_else(none, |v| format!("{v}")),
    ]);
    t.row(vec!["core-size".into(), s.core_size.to_string()]);
    t.row(vec![
        "my-emails".into(),
        if s.my_emails.is_empty() {
            none()
        } else {
            s.my_emails.iter().cloned().collect::<Vec<_>>().join(", ")
        },
    ]);
    ctx.out.table(&t)?;
    Ok(())
}

pub(super) fn settings(ctx: &mut Ctx, cmd: SettingsCmd) -> CliResult<()> {
    let current = ctx.store.settings().map_err(store_failure)?;
    match cmd {
        SettingsCmd::Show => print_settings(ctx, &current),
        SettingsCmd::Set { key, value } => {
            let new = apply_setting(current, &key, &value)?;
            let stored = ctx.store.set_settings(new).map_err(op_error)?;
            print_settings(ctx, &stored)
        }
    }
}

pub(super) fn reindex(ctx: &mut Ctx) -> CliResult<()> {
    ctx.store.reindex().map_err(store_failure)?;
    let contacts = ctx.store.all_contacts().map_err(store_failure)?.len();
    let interactions = ctx.store.all_interactions().map_err(store_failure)?.len();
    if ctx.json {
        ctx.out
            .json(&serde_json::json!({ "contacts": contacts, "interactions": interactions }))?;
    } else {
        ctx.out.line(format!(
            "Rebuilt the index: {contacts} contacts, {interactions} interactions"
        ))?;
    }
    Ok(())
}

/// `kith check`: verifies without writing. Exit 0 when clean; an index that
/// differs from the documents is repairable (`kith reindex`); a damaged
/// document is not (restore it from a backup or another device): both are
/// reported and exit 1.
pub(super) fn check(ctx: &mut Ctx) -> CliResult<()> {
    let r = ctx.store.check().map_err(store_failure)?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "documents": r.documents,
            "clean": r.is_clean(),
            "damaged_documents": r.damaged_documents.iter()
                .map(|(d, why)| serde_json::json!({ "document": d, "reason": why }))
                .collect::<Vec<_>>(),
            "index_tables": r.index_tables.iter()
                .map(|t| serde_json::json!({
                    "table": t.table, "missing_rows": t.missing_rows, "extra_rows": t.extra_rows,
                }))
                .collect::<Vec<_>>(),
        }))?;
    } else {
        ctx.out
            .line(format!("Checked {} documents.", r.documents))?;
        for (d, why) in &r.damaged_documents {
            ctx.out.line(format!(
                "Damaged document {d}: {why}. `kith reindex` cannot repair it: restore it from a backup or sync it from another device."
            ))?;
        }
        for t in &r.index_tables {
            ctx.out.line(format!(
                "Index table {}: {} rows missing or altered, {} rows that should not be there; `kith reindex` repairs it.",
                t.table, t.missing_rows, t.extra_rows
            ))?;
        }
        if r.is_clean() {
            ctx.out
                .line("The store is sound: every document verifies and the index matches it.")?;
        }
    }
    if r.is_clean() {
        Ok(())
    } else {
        Err(CliError::Failure(anyhow::anyhow!(
            "the store check found problems (see above)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_keys_parse_and_validate() {
        let s = apply_setting(Settings::default(), "my-organisation", "St Mary's").unwrap();
        assert_eq!(s.my_organisation.as_deref(), Some("St Mary's"));
        let s = apply_setting(s, "my-organisation", "none").unwrap();
        assert_eq!(s.my_organisation, None);
        let s = apply_setting(s, "cadence.strategic", "45").unwrap();
        assert_eq!(s.cadence_days.get(&Circle::Strategic), Some(&45));
        let s = apply_setting(s, "strategic_target", "0.3").unwrap();
        assert_eq!(s.strategic_target, Some(0.3));
        for (k, v) in [
            ("strategic-target", "1.5"),
            ("core-size", "0"),
            ("cadence.strategic", "-3"),
            ("cadence.family", "30"),
            ("colour", "blue"),
        ] {
            assert!(apply_setting(s.clone(), k, v).is_err(), "{k}={v} accepted");
        }
    }
}
