//! `kith import vcard|linkedin`, `kith export`, `kith backup`, `kith restore`.
//!
//! Parsing, planning, export formats and the backup container live in
//! kith-core (`import`, `export`, `backup`); this module reads and writes the
//! files, asks for the passphrase, and reports. An import is planned first
//! (what is new, what was imported before, what looks like an existing
//! contact) and then applied in one bulk write, so `--dry-run` shows exactly
//! what a real run would do.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use kith_core::Store;
use kith_core::backup::{
    BackupError, BackupParams, StoreBackupError, backup_store, restore_store_with_key_file,
};
use kith_core::export::{KithExport, read_json, write_json};
use kith_core::identity::{FileKeyStore, KeyStore};
use kith_core::import::{
    ApplyOptions, ApplyReport, ContactDraft, ImportPlan, MergeTarget, apply_plan, plan_for_store,
};
use kith_formats::write_vcards;
use kith_formats::{LinkedinLimits, VcardLimits, parse_linkedin_csv, vcard_drafts};
use serde::Serialize;

use super::{Contacts, Ctx, op_error, store_failure};
use crate::args::{BackupArgs, ExportArgs, ImportCmd, ImportOptions, RestoreArgs};
use crate::error::{CliError, CliResult};
use crate::render::{Out, Table};

/// Problems listed per file before "and N more".
const PROBLEMS_SHOWN_MAX: usize = 20;
/// Longest passphrase read from stdin.
const PASSPHRASE_BYTES_MAX: usize = 4096;

fn read_input(path: &Path, size_bytes_max: usize) -> CliResult<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > size_bytes_max as u64 {
        return Err(CliError::input(format!(
            "{} is {} bytes, more than the {size_bytes_max} bytes accepted",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))
}

/// JSON of `kith import ...`.
#[derive(Debug, Serialize)]
struct ImportView {
    dry_run: bool,
    /// Contacts created (or that would be created).
    created: Vec<DraftView>,
    /// Records imported before (matched on their import key): nothing to do.
    already_imported: usize,
    /// Records that look like an existing contact, with the suggested merge target.
    likely_duplicates: Vec<DuplicateView>,
    /// Whether the likely duplicates were created anyway (--create-duplicates).
    duplicates_created: bool,
    /// Records that repeat an earlier record of the same input.
    repeated_in_input: usize,
    /// Lines of the input that could not be read, with why.
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct DraftView {
    name: String,
    organisation: Option<String>,
    source_line: usize,
}

#[derive(Debug, Serialize)]
struct DuplicateView {
    name: String,
    source_line: usize,
    /// The contact to merge into: an existing one, or the one this import
    /// created for an earlier record of the input (`null` in a dry run).
    merge_into: Option<kith_core::ContactId>,
    merge_into_name: String,
    /// Line of the earlier record of the input this one looks like (`null`
    /// when it looks like an existing contact).
    same_as_line: Option<usize>,
    reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Problem {
    file: PathBuf,
    line: usize,
    message: String,
}

fn draft_view(d: &ContactDraft) -> DraftView {
    DraftView {
        name: d.name.clone(),
        organisation: d.organisation.clone(),
        source_line: d.source_line,
    }
}

/// JSON of `kith import json`.
#[derive(Debug, Serialize)]
struct JsonImportView {
    dry_run: bool,
    format_version: u32,
    contacts: usize,
    interactions: usize,
    projects: usize,
    goals: usize,
}

/// Loads a `kith-export` file: read and checked completely before the first write.
fn import_json(ctx: &mut Ctx, file: &Path, dry_run: bool) -> CliResult<()> {
    let bytes = read_input(file, kith_core::export::json::EXPORT_SIZE_BYTES_MAX)?;
    let export =
        read_json(&bytes).map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
    let mut view = JsonImportView {
        dry_run,
        format_version: export.version,
        contacts: export.contacts.len(),
        interactions: export.interactions.len(),
        projects: export.projects.len(),
        goals: export.goals.len(),
    };
    if !dry_run {
        let summary = export.load_into(&mut ctx.store).map_err(op_error)?;
        view.contacts = summary.contacts;
        view.interactions = summary.interactions;
        view.projects = summary.projects;
        view.goals = summary.goals;
    }
    if ctx.json {
        ctx.out.json(&view)?;
    } else {
        ctx.out.line(format!(
            "{} {} contacts, {} interactions, {} projects and {} goals from {} (ids kept: loading it again changes nothing)",
            if dry_run { "Would load" } else { "Loaded" },
            view.contacts,
            view.interactions,
            view.projects,
            view.goals,
            file.display()
        ))?;
    }
    Ok(())
}

pub(super) fn import(ctx: &mut Ctx, cmd: ImportCmd) -> CliResult<()> {
    if let ImportCmd::Json { file, dry_run } = &cmd {
        return import_json(ctx, file, *dry_run);
    }
    let my_org = ctx.store.settings().map_err(store_failure)?.my_organisation;
    let mut drafts = Vec::new();
    let mut problems = Vec::new();
    let options: ImportOptions = match cmd {
        ImportCmd::Vcard { files, options } => {
            let limits = VcardLimits::default();
            for file in &files {
                let bytes = read_input(file, limits.input_size_bytes_max)?;
                let batch = vcard_drafts(&bytes, &limits, my_org.as_deref())
                    .map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
                problems.extend(batch.errors.iter().map(|e| Problem {
                    file: file.clone(),
                    line: e.line,
                    message: e.message.clone(),
                }));
                if batch.errors_dropped > 0 {
                    problems.push(Problem {
                        file: file.clone(),
                        line: 0,
                        message: format!("{} more problems not listed", batch.errors_dropped),
                    });
                }
                drafts.extend(batch.drafts);
            }
            options
        }
        // Handled above: a JSON export is loaded whole, not planned.
        ImportCmd::Json { .. } => return Ok(()),
        ImportCmd::Linkedin { file, options } => {
            let limits = LinkedinLimits::default();
            let bytes = read_input(&file, limits.input_size_bytes_max)?;
            let batch = parse_linkedin_csv(&bytes, &limits, my_org.as_deref())
                .map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
            problems.extend(batch.errors.iter().map(|e| Problem {
                file: file.clone(),
                line: e.line,
                message: e.message.clone(),
            }));
            if batch.errors_dropped > 0 {
                problems.push(Problem {
                    file: file.clone(),
                    line: 0,
                    message: format!("{} more problems not listed", batch.errors_dropped),
                });
            }
            drafts.extend(batch.drafts);
            options
        }
    };
    let plan: ImportPlan = plan_for_store(&ctx.store, drafts).map_err(store_failure)?;
    let mut applied = ApplyReport::default();
    if !options.dry_run && !plan.is_empty() {
        applied = apply_plan(
            &mut ctx.store,
            &plan,
            &ApplyOptions {
                create_likely_duplicates: options.create_duplicates,
                now_ms: ctx.clock.now_ms(),
            },
        )
        .map_err(op_error)?;
    }
    let contacts = Contacts::load(&ctx.store)?;
    let mut created: Vec<DraftView> = plan.create.iter().map(draft_view).collect();
    if options.create_duplicates {
        created.extend(plan.likely_duplicates.iter().map(|d| draft_view(&d.draft)));
    }
    let view = ImportView {
        dry_run: options.dry_run,
        created,
        already_imported: plan.already_imported.len(),
        likely_duplicates: plan
            .likely_duplicates
            .iter()
            .map(|d| {
                let merge_into = applied.merge_target(d.merge_into);
                let merge_into_name = match d.merge_into {
                    MergeTarget::Existing(id) => contacts.name(id),
                    MergeTarget::EarlierDraft { create_index, .. } => plan
                        .create
                        .get(create_index)
                        .map(|e| e.name.clone())
                        .unwrap_or_default(),
                };
                DuplicateView {
                    name: d.draft.name.clone(),
                    source_line: d.draft.source_line,
                    merge_into,
                    merge_into_name,
                    same_as_line: d.merge_into.same_as_line(),
                    reasons: d.reasons.iter().map(super::query::reason_text).collect(),
                }
            })
            .collect(),
        duplicates_created: options.create_duplicates && !options.dry_run,
        repeated_in_input: plan.repeated_in_input.len(),
        problems,
    };
    if ctx.json {
        ctx.out.json(&view)?;
        return Ok(());
    }
    let verb = if view.dry_run {
        "Would create"
    } else {
        "Created"
    };
    ctx.out.line(format!(
        "{verb} {}; {} already imported; {}{}; {} repeated in the input",
        plural(view.created.len(), "contact"),
        view.already_imported,
        plural(view.likely_duplicates.len(), "likely duplicate"),
        if options.create_duplicates {
            " (created anyway)"
        } else {
            " (left out)"
        },
        view.repeated_in_input,
    ))?;
    if !view.likely_duplicates.is_empty() {
        ctx.out.line("")?;
        ctx.out.line("Likely duplicates (merge after importing with --create-duplicates, or add details by hand):")?;
        let mut t = Table::new(&["IN THE FILE", "LINE", "LOOKS LIKE", "WHY"]);
        for d in &view.likely_duplicates {
            t.row(vec![
                d.name.clone(),
                d.source_line.to_string(),
                match d.same_as_line {
                    Some(line) => format!("{} (new, line {line})", d.merge_into_name),
                    None => d.merge_into_name.clone(),
                },
                d.reasons.join(", "),
            ]);
        }
        ctx.out.table(&t)?;
    }
    if !view.problems.is_empty() {
        ctx.out.line("")?;
        ctx.out.line(format!(
            "{} (those records or properties were skipped):",
            plural(view.problems.len(), "problem")
        ))?;
        for p in view.problems.iter().take(PROBLEMS_SHOWN_MAX) {
            ctx.out
                .line(format!("  {}:{}: {}", p.file.display(), p.line, p.message))?;
        }
    }
    Ok(())
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Writes `bytes` to `path` (new file) or to stdout.
fn emit(out: &mut Out, path: Option<&Path>, bytes: &[u8]) -> CliResult<()> {
    match path {
        Some(p) => write_new(p, bytes),
        None => Ok(out.bytes(bytes)?),
    }
}

/// Writes a file that must not exist yet (never overwrite an earlier export or
/// backup), owner-only (0600) whatever the umask: exports hold plaintext notes.
fn write_new(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let mut f = kith_core::private_fs::create_new_private(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::input(format!(
                "{} already exists (choose another file)",
                path.display()
            ))
        } else {
            CliError::Failure(anyhow::Error::new(e).context(format!("creating {}", path.display())))
        }
    })?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| {
        CliError::Failure(anyhow::Error::new(e).context(format!("writing {}", path.display())))
    })
}

pub(super) fn export(ctx: &mut Ctx, a: ExportArgs) -> CliResult<()> {
    if a.interactions && a.format != "csv" {
        return Err(CliError::input(
            "--interactions goes with `kith export csv`",
        ));
    }
    fn export_failure<E: std::error::Error + Send + Sync + 'static>(e: E) -> CliError {
        CliError::Failure(anyhow::Error::new(e))
    }
    let contacts = ctx.store.all_contacts().map_err(store_failure)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut records = contacts.len();
    match a.format.as_str() {
        "vcard" => {
            let live: Vec<_> = contacts
                .iter()
                .filter(|c| c.merged_into.is_none())
                .collect();
            records = live.len();
            buf = write_vcards(live).into_bytes();
        }
        "csv" if a.interactions => {
            let interactions = ctx.store.all_interactions().map_err(store_failure)?;
            let projects = ctx.store.all_projects().map_err(store_failure)?;
            records = interactions.len();
            kith_formats::csv_out::write_interactions_csv(
                &mut buf,
                &interactions,
                &contacts,
                &projects,
            )
            .map_err(export_failure)?;
        }
        "csv" => kith_formats::csv_out::write_contacts_csv(&mut buf, &contacts)
            .map_err(export_failure)?,
        _ => {
            let all = KithExport::new(
                ctx.clock.now_ms(),
                ctx.store.settings().map_err(store_failure)?,
                contacts,
                ctx.store.all_interactions().map_err(store_failure)?,
                ctx.store.all_projects().map_err(store_failure)?,
                ctx.store.all_goals().map_err(store_failure)?,
            );
            records =
                all.contacts.len() + all.interactions.len() + all.projects.len() + all.goals.len();
            write_json(&all, &mut buf).map_err(export_failure)?;
        }
    }
    emit(&mut ctx.out, a.out.as_deref(), &buf)?;
    if let Some(path) = &a.out {
        if ctx.json {
            ctx.out.json(&serde_json::json!({ "file": path, "format": a.format, "records": records, "size_bytes": buf.len() }))?;
        } else {
            ctx.out.line(format!(
                "Exported {records} records as {} to {}",
                a.format,
                path.display()
            ))?;
        }
    }
    Ok(())
}

/// A new backup's passphrase: `KITH_PASSPHRASE`; else, on a terminal, typed
/// twice without echo (the two must match); else the first line of stdin.
/// Too easy to guess (`kith_core::strength`) is an input error, before anything is read
/// from the store.
fn new_passphrase() -> CliResult<String> {
    use std::io::IsTerminal;
    let pass = if std::env::var_os("KITH_PASSPHRASE").is_none() && std::io::stdin().is_terminal() {
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map_err(|e| CliError::input(format!("cannot read the passphrase: {e}")))
        };
        let first = read("Backup passphrase: ")?;
        let again = read("Again, to confirm: ")?;
        if first != again {
            return Err(CliError::input(
                "the two passphrases differ; nothing was written",
            ));
        }
        first
    } else {
        passphrase()?
    };
    kith_core::backup::check_passphrase_strength(&pass).map_err(CliError::input)?;
    Ok(pass)
}

/// The passphrase of an existing backup: `KITH_PASSPHRASE`; else, on a
/// terminal, typed once without echo; else the first line of stdin.
fn existing_passphrase() -> CliResult<String> {
    use std::io::IsTerminal;
    if std::env::var_os("KITH_PASSPHRASE").is_none() && std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Backup passphrase: ")
            .map_err(|e| CliError::input(format!("cannot read the passphrase: {e}")));
    }
    passphrase()
}

/// The passphrase: `KITH_PASSPHRASE`, else the first line of stdin.
fn passphrase() -> CliResult<String> {
    if let Ok(p) = std::env::var("KITH_PASSPHRASE") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(PASSPHRASE_BYTES_MAX as u64)
        .read_line(&mut line)
        .map_err(|e| CliError::input(format!("cannot read the passphrase from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn backup_error(e: StoreBackupError) -> CliError {
    match e {
        StoreBackupError::Backup(BackupError::Random(_) | BackupError::Payload(_))
        | StoreBackupError::Io { .. }
        | StoreBackupError::Keys(_) => CliError::Failure(anyhow::Error::new(e)),
        StoreBackupError::Store(s) => store_failure(s),
        other => CliError::input(other),
    }
}

pub(super) fn backup(ctx: &mut Ctx, a: BackupArgs) -> CliResult<()> {
    if a.file.exists() {
        return Err(CliError::input(format!(
            "{} already exists (choose another file)",
            a.file.display()
        )));
    }
    let pass = new_passphrase()?;
    let params = BackupParams {
        memory_kib: a.kdf.kdf_memory_kib,
        iterations: a.kdf.kdf_iterations,
        parallelism: 1,
    };
    // The device's keys live next to the store (`keys.json`, written by
    // `kith init` / `kith join`); a device that never set up sync has none.
    let keys = if a.no_keys {
        None
    } else {
        FileKeyStore::in_dir(ctx.store.dir())
            .load()
            .map_err(|e| CliError::Failure(anyhow::Error::new(e)))?
    };
    let sealed = backup_store(
        &mut ctx.store,
        &pass,
        &params,
        keys.as_ref(),
        ctx.clock.now_ms(),
    )
    .map_err(backup_error)?;
    write_new(&a.file, &sealed)?;
    let with_keys = keys.is_some();
    if ctx.json {
        ctx.out.json(
            &serde_json::json!({ "file": a.file, "size_bytes": sealed.len(), "keys": with_keys }),
        )?;
    } else {
        let what = if with_keys {
            "the store and this device's keys"
        } else if a.no_keys {
            "the store, without keys (--no-keys)"
        } else {
            "the store (this device has no keys: it never ran `kith init` or `kith join`)"
        };
        ctx.out.line(format!(
            "Backed up {what} to {} ({} KB, encrypted with your passphrase; keep it: without it the file cannot be read)",
            a.file.display(),
            sealed.len().div_ceil(1024)
        ))?;
    }
    Ok(())
}

/// Restores into the data directory (not through [`Ctx`]: there is no store yet).
pub(crate) fn restore(dir: &Path, a: RestoreArgs, json: bool, out: &mut Out) -> CliResult<()> {
    if dir.join(kith_core::store::STORE_FILE).exists() {
        return Err(CliError::input(format!(
            "{} already holds a Kith store: restore into a new or empty directory (--data DIR)",
            dir.display()
        )));
    }
    let bytes = read_input(&a.file, kith_core::backup::BACKUP_SIZE_BYTES_MAX)?;
    let pass = existing_passphrase()?;
    let restored = restore_store_with_key_file(dir, &pass, &bytes).map_err(backup_error)?;
    let keys = restored.keys.is_some();
    let store: Store = restored.store;
    let contacts = store.all_contacts().map_err(store_failure)?.len();
    let interactions = store.all_interactions().map_err(store_failure)?.len();
    store.close().map_err(store_failure)?;
    if json {
        out.json(&serde_json::json!({ "data_dir": dir, "contacts": contacts, "interactions": interactions, "keys": keys }))?;
    } else {
        let and_keys = if keys {
            " with this device's keys"
        } else {
            " (the backup holds no keys: run `kith init` or `kith join` to sync)"
        };
        out.line(format!(
            "Restored {contacts} contacts and {interactions} interactions into {}{and_keys}",
            dir.display()
        ))?;
    }
    Ok(())
}
