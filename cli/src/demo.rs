//! `kith demo`: a realistic sample network and a narrated tour of the main flows.
//!
//! The network comes from `kith_synth` (deterministic by seed) and is
//! written with the engine's bulk path (`Store::import_records`: a few
//! transactions, not one durable write per record), so the demo takes seconds
//! even in a debug build. Each step is then run as the real command line it
//! prints (`$ kith log ...`), parsed by the same clap grammar and dispatched
//! to the same handlers as a typed command, so the demo shows exactly what a
//! user would see.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use kith_core::Store;
use kith_core::model::{Circle, Contact};
use kith_synth::{SynthParams, generate};
use serde::Serialize;

use crate::args::{Cli, DemoArgs};
use crate::commands::{self, Contacts, Ctx, op_error, store_failure};
use crate::error::{CliError, CliResult};
use crate::render::Out;
use crate::when::Clock;

/// Bounds that keep the demo a demo (the benches build large networks).
const DEMO_CONTACTS_MAX: usize = 5_000;
const DEMO_INTERACTIONS_MAX: usize = 50_000;

/// The summary of the interaction the tour logs.
const LOGGED_SUMMARY: &str = "Coffee: the formulary business case";

/// JSON of `kith demo --json`: what was built and what the tour did.
#[derive(Debug, Serialize)]
struct DemoSummary {
    /// The data directory (null when it was a temporary one, now removed).
    data_dir: Option<PathBuf>,
    contacts: usize,
    interactions: usize,
    projects: usize,
    goals: usize,
    build_ms: u128,
    /// The command lines the tour ran, in order.
    steps: Vec<String>,
    /// The interaction logged in the "after a meeting" step.
    logged_interaction: String,
    headlines: Vec<kith_insights::Finding>,
}

/// Runs one step: prints `$ kith ARGS` and the command's own output.
fn step(ctx: &mut Ctx, steps: &mut Vec<String>, narration: &str, args: &[String]) -> CliResult<()> {
    let shown: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let line = format!("kith {}", shown.join(" "));
    steps.push(line.clone());
    if !ctx.json {
        ctx.out.line("")?;
        ctx.out.line(format!("== {narration}"))?;
        ctx.out.line(wrap_command(&format!("$ {line}")))?;
    }
    let cli = Cli::try_parse_from(std::iter::once("kith".to_string()).chain(args.iter().cloned()))
        .map_err(|e| {
            CliError::Failure(anyhow::anyhow!("demo step '{line}' does not parse: {e}"))
        })?;
    if ctx.json {
        // Keep stdout a single JSON document: run the step with its output discarded.
        let out = std::mem::replace(&mut ctx.out, Out::sink());
        let r = commands::dispatch(ctx, cli.command);
        ctx.out = out;
        r
    } else {
        commands::dispatch(ctx, cli.command)
    }
}

/// Width past which a shown command line is continued with `\` before a flag.
const COMMAND_WIDTH_MAX: usize = 96;

/// Breaks a long command line before `--flags`, shell-style, for reading.
fn wrap_command(line: &str) -> String {
    let mut out = String::new();
    let mut current = 0usize;
    for (i, part) in line.split(" --").enumerate() {
        let piece = if i == 0 {
            part.to_string()
        } else {
            format!("--{part}")
        };
        let len = piece.chars().count();
        if i > 0 && current + 1 + len > COMMAND_WIDTH_MAX {
            out.push_str(" \\\n    ");
            current = 4;
        } else if i > 0 {
            out.push(' ');
            current += 1;
        }
        out.push_str(&piece);
        current += len;
    }
    out
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The name to type for a contact: its name if that resolves to it, else its id.
fn handle(contacts: &Contacts, c: &Contact) -> String {
    match contacts.resolve(&c.name) {
        Ok(id) if id == c.id => c.name.clone(),
        _ => c.id.to_string(),
    }
}

pub(crate) fn run(
    args: DemoArgs,
    data: Option<&Path>,
    clock: &Clock,
    json: bool,
    out: &mut Out,
) -> CliResult<()> {
    if args.contacts < 5 || args.contacts > DEMO_CONTACTS_MAX {
        return Err(CliError::input(format!(
            "--contacts must be between 5 and {DEMO_CONTACTS_MAX}"
        )));
    }
    if args.interactions < 10 || args.interactions > DEMO_INTERACTIONS_MAX {
        return Err(CliError::input(format!(
            "--interactions must be between 10 and {DEMO_INTERACTIONS_MAX}"
        )));
    }
    let temp;
    let dir: PathBuf = match data {
        Some(d) => {
            if d.join(kith_core::store::STORE_FILE).exists() {
                return Err(CliError::input(format!(
                    "{} already holds a Kith store; the demo needs an empty directory",
                    d.display()
                )));
            }
            if d.exists() && !d.is_dir() {
                return Err(CliError::input(format!(
                    "{} exists and is not a directory",
                    d.display()
                )));
            }
            d.to_path_buf()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("kith-demo-")
                .tempdir()
                .map_err(|e| {
                    CliError::Failure(
                        anyhow::Error::new(e).context("creating a temporary directory"),
                    )
                })?;
            temp.path().to_path_buf()
        }
    };

    let started = Instant::now();
    let net = generate(&SynthParams::new(
        args.contacts,
        args.interactions,
        args.seed,
        clock.now_ms(),
    ));
    let mut store = Store::open(&dir).map_err(store_failure)?;
    store.set_settings(net.settings.clone()).map_err(op_error)?;
    let summary = store
        .import_records(
            net.contacts.clone(),
            net.interactions.clone(),
            net.projects.clone(),
            net.goals.clone(),
        )
        .map_err(op_error)?;
    let build_ms = started.elapsed().as_millis();

    let mut ctx = Ctx {
        store,
        clock: *clock,
        out: std::mem::replace(out, Out::sink()),
        json,
    };
    let result = tour(&mut ctx, &dir, data.is_some(), &net, build_ms, summary);
    *out = std::mem::replace(&mut ctx.out, Out::sink());
    ctx.store.close().map_err(store_failure)?;
    result
}

fn tour(
    ctx: &mut Ctx,
    dir: &Path,
    kept: bool,
    net: &kith_synth::SynthNetwork,
    build_ms: u128,
    summary: kith_core::ImportSummary,
) -> CliResult<()> {
    let mut steps = Vec::new();
    if !ctx.json {
        ctx.out.line(
            "Kith demo: the network of a clinician-manager at a hospital trust (synthetic).",
        )?;
        ctx.out.line(format!(
            "Built {} contacts, {} interactions, {} projects and {} goals in {:.1} s, in {}{}.",
            summary.contacts,
            summary.interactions,
            summary.projects,
            summary.goals,
            build_ms as f64 / 1000.0,
            dir.display(),
            if kept { "" } else { " (temporary)" },
        ))?;
    }

    // The person we just met: a strategic tie with history, the headline case.
    let contacts = Contacts::load(&ctx.store)?;
    let stats = ctx.store.all_contact_stats().map_err(store_failure)?;
    let live: Vec<&Contact> = contacts
        .all
        .iter()
        .filter(|c| !c.archived && c.merged_into.is_none())
        .collect();
    let count = |c: &Contact| stats.get(&c.id).map_or(0, |s| s.interaction_count);
    let met = live
        .iter()
        .filter(|c| c.circles.contains(&Circle::Strategic))
        .max_by_key(|c| (count(c), std::cmp::Reverse(c.id)))
        .or_else(|| {
            live.iter()
                .max_by_key(|c| (count(c), std::cmp::Reverse(c.id)))
        })
        .copied()
        .ok_or_else(|| CliError::Failure(anyhow::anyhow!("the sample network has no contacts")))?;
    let other = live
        .iter()
        .filter(|c| c.id != met.id)
        .max_by_key(|c| (count(c), std::cmp::Reverse(c.id)))
        .copied();
    let who = handle(&contacts, met);
    let mut log = vec![
        "log".to_string(),
        LOGGED_SUMMARY.to_string(),
        "--with".to_string(),
        who.clone(),
    ];
    if let Some(o) = other {
        log.extend(["--with".to_string(), handle(&contacts, o)]);
    }
    log.extend(
        [
            "--kind", "meal", "--at", "-1h", "--initiator", "me",
            "--notes", "Walked through the antimicrobial formulary proposal. Support for a pilot on two wards; suggests presenting to the drugs and therapeutics committee first.",
            "--gave", "information",
        ]
        .map(String::from),
    );
    log.extend([
        "--got".to_string(),
        format!("insight:{who}"),
        "--follow-up".to_string(),
        "Send the audit deck".to_string(),
        "--due".to_string(),
        "friday".to_string(),
        "--follow-up".to_string(),
        "Book a slot at the committee".to_string(),
        "--due".to_string(),
        "+14d".to_string(),
    ]);
    step(
        ctx,
        &mut steps,
        "Right after a meeting: log who, what kind, notes, what was exchanged, follow-ups",
        &log,
    )?;
    // The synthetic history may hold later interactions with the same
    // person, so find ours by its summary rather than by position.
    let logged = ctx
        .store
        .timeline(&kith_core::TimelineQuery {
            contact: Some(met.id),
            limit: 50,
            ..Default::default()
        })
        .map_err(op_error)?
        .into_iter()
        .find(|i| i.summary == LOGGED_SUMMARY)
        .map(|i| i.id.to_string())
        .unwrap_or_default();

    step(
        ctx,
        &mut steps,
        format!("{}'s timeline, newest first", met.name).as_str(),
        &["timeline".into(), who.clone(), "--limit".into(), "6".into()],
    )?;
    step(
        ctx,
        &mut steps,
        "Search is prefix, case- and accent-insensitive",
        &[
            "search".into(),
            "formul".into(),
            "--limit".into(),
            "5".into(),
        ],
    )?;
    step(
        ctx,
        &mut steps,
        "Follow-ups past their due date",
        &[
            "followups".into(),
            "--overdue".into(),
            "--limit".into(),
            "8".into(),
        ],
    )?;

    // Two devices created the same person offline: show detection and merge.
    let email = met.emails.first().map(|e| e.value.clone());
    let mut dup = vec![
        "contact".to_string(),
        "add".to_string(),
        met.name.to_uppercase(),
    ];
    if let Some(e) = &email {
        dup.extend(["--email".to_string(), e.clone()]);
    }
    step(
        ctx,
        &mut steps,
        "A phone offline created the same person again",
        &dup,
    )?;
    step(
        ctx,
        &mut steps,
        "Likely duplicates (same email, phone or name)",
        &["duplicates".into()],
    )?;
    let contacts = Contacts::load(&ctx.store)?;
    let copy = contacts
        .all
        .iter()
        .filter(|c| c.id != met.id && c.merged_into.is_none() && c.name == met.name.to_uppercase())
        .max_by_key(|c| c.created_ms)
        .map(|c| c.id.to_string());
    if let Some(copy) = copy {
        step(
            ctx,
            &mut steps,
            "Merge the copy: its history moves to the kept contact",
            &[
                "contact".into(),
                "merge".into(),
                copy,
                "--into".into(),
                met.id.to_string(),
            ],
        )?;
    }

    let report = crate::commands::insights::compute(ctx)?;
    let findings = kith_insights::headlines(&report);
    if ctx.json {
        let s = DemoSummary {
            data_dir: kept.then(|| dir.to_path_buf()),
            contacts: net.contacts.len(),
            interactions: net.interactions.len(),
            projects: net.projects.len(),
            goals: net.goals.len(),
            build_ms,
            steps,
            logged_interaction: logged,
            headlines: findings,
        };
        ctx.out.json(&s)?;
        return Ok(());
    }
    ctx.out.line("")?;
    ctx.out
        .line("== The shape of the network (kith insights)")?;
    crate::commands::insights::print_headlines(ctx, &findings, 8)?;
    ctx.out.line("")?;
    if kept {
        ctx.out.line(format!(
            "The sample network stays in {}: try `kith --data {} contact list`.",
            dir.display(),
            dir.display()
        ))?;
    } else {
        ctx.out
            .line("The sample lived in a temporary directory and is now gone.")?;
        ctx.out.line(
            "Start your own with `kith init`, or keep a sample with `kith demo --data DIR`.",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_wrap_before_flags() {
        let short = "$ kith timeline zoe --limit 6";
        assert_eq!(wrap_command(short), short);
        let long = format!(
            "$ kith log 'x' --with a --notes '{}' --kind meal",
            "n".repeat(90)
        );
        let wrapped = wrap_command(&long);
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(lines[0], "$ kith log 'x' --with a \\");
        assert!(lines[1].starts_with("    --notes 'nnn"));
        assert_eq!(lines[2], "    --kind meal");
        // Joining the continuation lines gives the command back.
        assert_eq!(wrapped.replace(" \\\n    ", " "), long);
    }
}
